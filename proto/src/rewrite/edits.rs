//! Attribute edits: what a visitor asks of one attribute list, and applying them to the encoded
//! message that holds the list.

use std::ops::Range;

use crate::attributes::{parse_key_value, usual_key_value, AnyValue};
use crate::error::ScanError;
use crate::wire::{put_varint, Field, Fields, LEN};

/// `KeyValue.key`, `KeyValue.value` tags.
const KV_KEY_TAG: u8 = 0x0a;
const KV_VALUE_TAG: u8 = 0x12;

/// One edit: a key, and the `KeyValue` to write for it (`None`: delete).
#[derive(Debug, Clone)]
struct Op {
    /// The key, in [`AttrEdits::bytes`].
    key: Range<usize>,
    /// The encoded `KeyValue` message, in [`AttrEdits::bytes`]; `None` deletes the key.
    kv: Option<Range<usize>>,
    /// No later op names the same key (set by [`AttrEdits::resolve`]): only these apply.
    last: bool,
    /// The `KeyValue` has been written during the current [`AttrEdits::apply`].
    written: bool,
}

/// The edits a visitor asks of one attribute list (a resource's, a scope's, a span's or a span
/// event's): set a key to a value, delete a key.
///
/// Semantics, for one list (what `insert`, `update` and `upsert` mean is the caller's: it sees the
/// current attributes and decides whether to call [`AttrEdits::set`]):
/// - the **last** edit naming a key wins (`set` then `delete` deletes; `delete` then `set` sets);
/// - `delete` removes every `KeyValue` with that key (a well-formed map has at most one; with a
///   duplicated key on the wire none survives, so a redaction cannot leak through a duplicate);
/// - `set` replaces the value of the first `KeyValue` with that key where it stands and removes
///   later duplicates; if the key is absent the new `KeyValue` is appended after the last
///   attribute (edits in the order they were made);
/// - a `KeyValue` no edit names is copied byte for byte, unknown fields included. A replaced one is
///   written fresh (key and value only).
///
/// Values are encoded when the edit is made, into one buffer the edits keep between uses, so a
/// warmed-up rewriter does not allocate per span.
#[derive(Debug, Clone, Default)]
pub struct AttrEdits {
    ops: Vec<Op>,
    bytes: Vec<u8>,
    /// The appended `KeyValue` fields of the current [`AttrEdits::apply`], before they are
    /// spliced into the output.
    tail: Vec<u8>,
}

/// What a key's pending edit will do ([`AttrEdits::pending`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pending<'a> {
    /// The key will be deleted.
    Deleted,
    /// The key will be set to this value.
    Set(AnyValue<'a>),
}

impl AttrEdits {
    /// No edits.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` to `value` (arrays and kvlists are written as the encoded messages they hold,
    /// so a value read from the input is copied verbatim; [`AnyValue::Empty`] writes a
    /// `KeyValue` without a value).
    pub fn set(&mut self, key: impl AsRef<[u8]>, value: AnyValue<'_>) {
        let key = key.as_ref();
        let start = self.push_key(key);
        let kv_start = self.bytes.len();
        self.bytes.push(KV_KEY_TAG);
        put_varint(&mut self.bytes, key.len() as u64);
        self.bytes.extend_from_slice(key);
        if value != AnyValue::Empty {
            self.bytes.push(KV_VALUE_TAG);
            put_varint(&mut self.bytes, any_value_len(&value) as u64);
            put_any_value(&mut self.bytes, &value);
        }
        self.push_op(start, key.len(), Some(kv_start..self.bytes.len()));
    }

    /// Sets `key` to a string.
    pub fn set_str(&mut self, key: impl AsRef<[u8]>, value: &str) {
        self.set(key, AnyValue::String(value.as_bytes()));
    }

    /// Sets `key` to an already encoded `AnyValue` message, written as given (opaque: it is not
    /// checked; the caller vouches that it is a valid `AnyValue`).
    pub fn set_encoded(&mut self, key: impl AsRef<[u8]>, any_value: &[u8]) {
        let key = key.as_ref();
        let start = self.push_key(key);
        let kv_start = self.bytes.len();
        self.bytes.push(KV_KEY_TAG);
        put_varint(&mut self.bytes, key.len() as u64);
        self.bytes.extend_from_slice(key);
        self.bytes.push(KV_VALUE_TAG);
        put_varint(&mut self.bytes, any_value.len() as u64);
        self.bytes.extend_from_slice(any_value);
        self.push_op(start, key.len(), Some(kv_start..self.bytes.len()));
    }

    /// Deletes `key`.
    pub fn delete(&mut self, key: impl AsRef<[u8]>) {
        let key = key.as_ref();
        let start = self.push_key(key);
        self.push_op(start, key.len(), None);
    }

    /// What the edits made so far will do to `key`, if any names it: lets a caller applying a
    /// list of actions read the value an earlier action set.
    pub fn pending(&self, key: impl AsRef<[u8]>) -> Option<Pending<'_>> {
        let key = key.as_ref();
        let op = self.ops.iter().rev().find(|op| self.key(op) == key)?;
        Some(match &op.kv {
            None => Pending::Deleted,
            // The bytes were encoded by `set`/`set_encoded`; an opaque value that does not parse
            // reads as empty.
            Some(kv) => Pending::Set(
                parse_key_value(&self.bytes[kv.clone()], 0)
                    .map(|(_, v)| v)
                    .unwrap_or(AnyValue::Empty),
            ),
        })
    }

    /// Whether no edit was made.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Number of edits made.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Forgets every edit, keeping the allocations.
    pub fn clear(&mut self) {
        self.ops.clear();
        self.bytes.clear();
    }

    /// Whether applying the edits to a list with no attributes writes anything (some key's last
    /// edit is a `set`).
    pub(crate) fn adds_to_empty(&mut self) -> bool {
        self.resolve();
        self.ops.iter().any(|op| op.last && op.kv.is_some())
    }

    fn push_key(&mut self, key: &[u8]) -> usize {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(key);
        start
    }

    fn push_op(&mut self, start: usize, len: usize, kv: Option<Range<usize>>) {
        self.ops.push(Op {
            key: start..start + len,
            kv,
            last: false,
            written: false,
        });
    }

    fn key(&self, op: &Op) -> &[u8] {
        &self.bytes[op.key.clone()]
    }

    /// Marks the last edit of every key and resets the written flags. Quadratic in the number of
    /// edits, which is a handful per list.
    fn resolve(&mut self) {
        for i in 0..self.ops.len() {
            let key = &self.bytes[self.ops[i].key.clone()];
            let later = self.ops[i + 1..]
                .iter()
                .any(|op| &self.bytes[op.key.clone()] == key);
            self.ops[i].last = !later;
            self.ops[i].written = false;
        }
    }

    /// The index of the edit that applies to `key`.
    #[inline]
    fn find(&self, key: &[u8]) -> Option<usize> {
        self.ops
            .iter()
            .position(|op| op.last && &self.bytes[op.key.clone()] == key)
    }

    /// Writes `msg` (a message found at offset `base` whose repeated `KeyValue` field `field` is
    /// the list) to `out` with the edits applied. Each other field is classified by `other`
    /// (copied, dropped, or replaced by a new payload under the same number); the appended
    /// `KeyValue`s go after the last attribute, or where the field would stand in number order
    /// when the list is empty. Returns whether the written message differs from `msg`.
    ///
    /// One walk; consecutive fields copied as they are go out as one slice (a span is mostly
    /// such fields), and the appended `KeyValue`s are spliced in at the end, before the few
    /// bytes that follow the attributes.
    pub(crate) fn apply<'o>(
        &mut self,
        msg: &[u8],
        base: usize,
        field: u32,
        out: &mut Vec<u8>,
        mut other: impl FnMut(&Field) -> Action<'o>,
    ) -> Result<bool, ScanError> {
        self.resolve();
        let mut changed = false;
        // `msg[run..]` up to the current field is copied as is, not yet written.
        let mut run = 0usize;
        // Where appended attributes go in `out` (after the last attribute, else before the first
        // field numbered above the list's).
        let mut insert_at: Option<usize> = None;
        let mut fields = Fields::new(msg, base);
        while let Some(f) = fields.next_field()? {
            if f.number != field {
                if f.number > field && insert_at.is_none() {
                    insert_at = Some(out.len() + (f.start - run));
                }
                match other(&f) {
                    Action::Copy => {}
                    Action::Drop => {
                        out.extend_from_slice(&msg[run..f.start]);
                        run = f.end;
                        changed = true;
                    }
                    Action::Replace(payload) => {
                        out.extend_from_slice(&msg[run..f.start]);
                        put_len_field(out, f.number, payload);
                        run = f.end;
                        changed = true;
                    }
                }
                continue;
            }
            f.expect(LEN, base)?;
            if let Some(written) = self.attribute(msg, &f, base, field, run, out)? {
                run = f.end;
                changed |= written;
            }
            insert_at = Some(out.len() + (f.end - run));
        }
        out.extend_from_slice(&msg[run..]);
        let at = insert_at.unwrap_or(out.len());
        changed |= self.insert_rest(field, out, at);
        Ok(changed)
    }

    /// Handles one `KeyValue` field `f` of the list: `None` when it is copied as is (left in the
    /// run), else the run up to it is written, then its replacement (or nothing), and whether
    /// that changed anything.
    #[inline(always)]
    fn attribute(
        &mut self,
        msg: &[u8],
        f: &Field,
        base: usize,
        field: u32,
        run: usize,
        out: &mut Vec<u8>,
    ) -> Result<Option<bool>, ScanError> {
        if self.ops.is_empty() {
            return Ok(None);
        }
        let kv = f.payload(msg);
        let key = match usual_key_value(kv, base + f.value_start) {
            Some((key, _)) => key,
            None => parse_key_value(kv, base + f.value_start)?.0,
        };
        let Some(i) = self.find(key) else {
            return Ok(None);
        };
        let op = &mut self.ops[i];
        match (&op.kv, op.written) {
            (Some(new), false) => {
                op.written = true;
                let new = &self.bytes[new.clone()];
                if new == kv {
                    return Ok(None);
                }
                out.extend_from_slice(&msg[run..f.start]);
                put_len_field(out, field, new);
                Ok(Some(true))
            }
            // Deleted, or a later duplicate of a key already set.
            _ => {
                out.extend_from_slice(&msg[run..f.start]);
                Ok(Some(true))
            }
        }
    }

    /// Inserts every set not written yet at `out[at]`, in edit order; returns whether there was
    /// one.
    fn insert_rest(&mut self, field: u32, out: &mut Vec<u8>, at: usize) -> bool {
        self.tail.clear();
        for op in &mut self.ops {
            if let (true, false, Some(kv)) = (op.last, op.written, &op.kv) {
                op.written = true;
                put_len_field(&mut self.tail, field, &self.bytes[kv.clone()]);
            }
        }
        if self.tail.is_empty() {
            return false;
        }
        if at == out.len() {
            out.extend_from_slice(&self.tail);
        } else {
            out.splice(at..at, self.tail.iter().copied());
        }
        true
    }
}

/// What [`AttrEdits::apply`] does with a field that is not an attribute.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Action<'a> {
    /// Copy it as it is.
    Copy,
    /// Leave it out.
    Drop,
    /// Write this payload under the field's number instead.
    Replace(&'a [u8]),
}

/// Appends a length-delimited field.
#[inline]
pub(crate) fn put_len_field(out: &mut Vec<u8>, number: u32, payload: &[u8]) {
    put_varint(out, (u64::from(number) << 3) | u64::from(LEN));
    put_varint(out, payload.len() as u64);
    out.extend_from_slice(payload);
}

/// Encoded length of the `AnyValue` message holding `value`.
fn any_value_len(value: &AnyValue<'_>) -> usize {
    let len_field = |n: usize| 1 + crate::wire::varint_len(n as u64) + n;
    match value {
        AnyValue::Empty => 0,
        AnyValue::String(s) | AnyValue::Bytes(s) | AnyValue::Array(s) | AnyValue::KvList(s) => {
            len_field(s.len())
        }
        AnyValue::Bool(_) => 2,
        AnyValue::Int(i) => 1 + crate::wire::varint_len(*i as u64),
        AnyValue::Double(_) => 9,
    }
}

/// Appends the `AnyValue` message holding `value` (field numbers of `common.proto`).
fn put_any_value(out: &mut Vec<u8>, value: &AnyValue<'_>) {
    let mut len_field = |tag: u8, payload: &[u8]| {
        out.push(tag);
        put_varint(out, payload.len() as u64);
        out.extend_from_slice(payload);
    };
    match value {
        AnyValue::Empty => {}
        AnyValue::String(s) => len_field(0x0a, s),
        AnyValue::Array(a) => len_field(0x2a, a),
        AnyValue::KvList(k) => len_field(0x32, k),
        AnyValue::Bytes(b) => len_field(0x3a, b),
        AnyValue::Bool(b) => out.extend_from_slice(&[0x10, u8::from(*b)]),
        AnyValue::Int(i) => {
            out.push(0x18);
            put_varint(out, *i as u64);
        }
        AnyValue::Double(d) => {
            out.push(0x21);
            out.extend_from_slice(&d.to_le_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::attributes::Attributes;

    /// A message with an unrelated field 1, attributes (field 9) `kvs`, then field 15.
    fn message(kvs: &[(&str, i64)]) -> Vec<u8> {
        let mut out = vec![0x08, 0x01];
        for (k, v) in kvs {
            let mut e = AttrEdits::new();
            e.set(k, AnyValue::Int(*v));
            let kv = &e.bytes[e.ops[0].kv.clone().unwrap()];
            put_len_field(&mut out, 9, kv);
        }
        out.extend_from_slice(&[0x7a, 0x00]);
        out
    }

    fn attrs(msg: &[u8]) -> Vec<(String, AnyValue<'_>)> {
        Attributes::new(msg, 0, 9)
            .map(|r| {
                let (k, v) = r.unwrap();
                (String::from_utf8(k.to_vec()).unwrap(), v)
            })
            .collect()
    }

    fn apply(e: &mut AttrEdits, msg: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::new();
        let changed = e.apply(msg, 0, 9, &mut out, |_| Action::Copy).unwrap();
        (out, changed)
    }

    #[test]
    fn set_replaces_in_place_and_appends_after_the_last_attribute() {
        let msg = message(&[("a", 1), ("b", 2)]);
        let mut e = AttrEdits::new();
        e.set("a", AnyValue::Int(10));
        e.set_str("c", "x");
        let (out, changed) = apply(&mut e, &msg);
        assert!(changed);
        assert_eq!(
            attrs(&out),
            vec![
                ("a".into(), AnyValue::Int(10)),
                ("b".into(), AnyValue::Int(2)),
                ("c".into(), AnyValue::String(b"x")),
            ]
        );
        // The unrelated fields stay where they were.
        assert_eq!(&out[..2], &[0x08, 0x01]);
        assert_eq!(&out[out.len() - 2..], &[0x7a, 0x00]);
    }

    #[test]
    fn the_last_edit_of_a_key_wins_and_delete_removes_duplicates() {
        let msg = message(&[("a", 1), ("b", 2), ("a", 3)]);
        let mut e = AttrEdits::new();
        e.set("b", AnyValue::Int(5));
        e.delete("b");
        e.delete("a");
        e.set("a", AnyValue::Bool(true));
        let (out, _) = apply(&mut e, &msg);
        assert_eq!(attrs(&out), vec![("a".into(), AnyValue::Bool(true))]);
        assert_eq!(e.pending("a"), Some(Pending::Set(AnyValue::Bool(true))));
        assert_eq!(e.pending("b"), Some(Pending::Deleted));
        assert_eq!(e.pending("z"), None);
    }

    #[test]
    fn setting_the_same_value_or_deleting_a_missing_key_changes_nothing() {
        let msg = message(&[("a", 1)]);
        let mut e = AttrEdits::new();
        e.set("a", AnyValue::Int(1));
        e.delete("zz");
        let (out, changed) = apply(&mut e, &msg);
        assert!(!changed);
        assert_eq!(out, msg);
    }

    #[test]
    fn an_empty_list_gets_the_new_attribute_in_number_order() {
        let msg = vec![0x08, 0x01, 0x7a, 0x00];
        let mut e = AttrEdits::new();
        e.set("k", AnyValue::Double(1.5));
        let (out, changed) = apply(&mut e, &msg);
        assert!(changed);
        assert_eq!(&out[..2], &[0x08, 0x01]);
        assert_eq!(out[2], 0x4a);
        assert_eq!(attrs(&out), vec![("k".into(), AnyValue::Double(1.5))]);
    }
}
