//! Lazy, typed reading of `KeyValue` attributes (`opentelemetry/proto/common/v1/common.proto`).
//!
//! Attributes are only looked at when a policy asks, so nothing here runs on the routing path.
//! Lookup walks the repeated `KeyValue` field of the enclosing message and compares keys in place;
//! values are decoded to [`AnyValue`] borrowing the buffer (arrays and kvlists stay raw bytes).

use crate::error::ScanError;
use crate::wire::{Fields, FIXED64, LEN, VARINT};

/// A typed attribute value borrowing its buffer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AnyValue<'a> {
    /// No value set (an empty `AnyValue`).
    Empty,
    /// `string_value`, raw bytes (OTLP strings should be UTF-8; use [`AnyValue::as_str`]).
    String(&'a [u8]),
    /// `bool_value`.
    Bool(bool),
    /// `int_value`.
    Int(i64),
    /// `double_value`.
    Double(f64),
    /// `bytes_value`.
    Bytes(&'a [u8]),
    /// `array_value`: the encoded `ArrayValue` message.
    Array(&'a [u8]),
    /// `kvlist_value`: the encoded `KeyValueList` message.
    KvList(&'a [u8]),
}

impl<'a> AnyValue<'a> {
    /// The string value, if this is a valid UTF-8 string.
    pub fn as_str(&self) -> Option<&'a str> {
        match self {
            AnyValue::String(s) => std::str::from_utf8(s).ok(),
            _ => None,
        }
    }

    /// Decodes an encoded `AnyValue` message (found at absolute offset `base`). As in prost, the
    /// last member of the oneof on the wire wins.
    pub fn parse(msg: &'a [u8], base: usize) -> Result<Self, ScanError> {
        let mut out = AnyValue::Empty;
        let mut fields = Fields::new(msg, base);
        while let Some(f) = fields.next_field()? {
            out = match f.number {
                1 => f
                    .expect(LEN, base)
                    .map(|()| AnyValue::String(f.payload(msg)))?,
                2 => f
                    .expect(VARINT, base)
                    .map(|()| AnyValue::Bool(f.varint != 0))?,
                3 => f
                    .expect(VARINT, base)
                    .map(|()| AnyValue::Int(f.varint as i64))?,
                4 => f
                    .expect(FIXED64, base)
                    .map(|()| AnyValue::Double(f64::from_bits(f.fixed64(msg))))?,
                5 => f
                    .expect(LEN, base)
                    .map(|()| AnyValue::Array(f.payload(msg)))?,
                6 => f
                    .expect(LEN, base)
                    .map(|()| AnyValue::KvList(f.payload(msg)))?,
                7 => f
                    .expect(LEN, base)
                    .map(|()| AnyValue::Bytes(f.payload(msg)))?,
                _ => out,
            };
        }
        Ok(out)
    }
}

/// Iterator over the `KeyValue`s stored in field `field` of a message.
#[derive(Debug, Clone)]
pub struct Attributes<'a> {
    msg: &'a [u8],
    fields: Fields<'a>,
    field: u32,
    failed: bool,
}

impl<'a> Attributes<'a> {
    /// Iterates field `field` (repeated `KeyValue`) of the message `msg` found at offset `base`.
    pub(crate) fn new(msg: &'a [u8], base: usize, field: u32) -> Self {
        Self {
            msg,
            fields: Fields::new(msg, base),
            field,
            failed: false,
        }
    }

    /// An iterator that yields nothing.
    pub(crate) fn empty() -> Self {
        Self::new(&[], 0, 0)
    }

    fn next_kv(&mut self) -> Result<Option<(&'a [u8], AnyValue<'a>)>, ScanError> {
        let base = self.fields.base();
        while let Some(f) = self.fields.next_field()? {
            if f.number == self.field {
                f.expect(LEN, base)?;
                let kv = parse_key_value(f.payload(self.msg), base + f.value_start)?;
                return Ok(Some(kv));
            }
        }
        Ok(None)
    }
}

impl<'a> Iterator for Attributes<'a> {
    type Item = Result<(&'a [u8], AnyValue<'a>), ScanError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let item = self.next_kv().transpose();
        self.failed = matches!(item, Some(Err(_)));
        item
    }
}

/// Decodes a `KeyValue` message into key and value.
pub(crate) fn parse_key_value(kv: &[u8], base: usize) -> Result<(&[u8], AnyValue<'_>), ScanError> {
    let mut key: &[u8] = &[];
    let mut value = AnyValue::Empty;
    let mut fields = Fields::new(kv, base);
    while let Some(f) = fields.next_field()? {
        match f.number {
            1 => {
                f.expect(LEN, base)?;
                key = f.payload(kv);
            }
            2 => {
                f.expect(LEN, base)?;
                value = AnyValue::parse(f.payload(kv), base + f.value_start)?;
            }
            _ => {}
        }
    }
    Ok((key, value))
}

/// A `KeyValue`'s value as met by [`walk_attributes`]: still encoded (decoded only when asked) or
/// already decoded (when the `KeyValue` needed a full parse to find its key).
#[derive(Debug, Clone, Copy)]
pub(crate) enum KvValue<'a> {
    /// The encoded `AnyValue` message and its absolute offset; `None` when the field is absent.
    Encoded(Option<(&'a [u8], usize)>),
    /// Decoded by the full parse.
    Decoded(AnyValue<'a>),
}

impl<'a> KvValue<'a> {
    /// The value, or `None` if its bytes are malformed.
    fn decode(self) -> Option<AnyValue<'a>> {
        match self {
            KvValue::Encoded(None) => Some(AnyValue::Empty),
            KvValue::Encoded(Some((msg, base))) => AnyValue::parse(msg, base).ok(),
            KvValue::Decoded(v) => Some(v),
        }
    }
}

/// The key and encoded value of a `KeyValue` in the layout every encoder writes: the key field,
/// then at most one value field, nothing else. Other layouts (repeated or reordered fields,
/// unknown fields) return `None` and take the full parse, which gives protobuf's last-wins answer.
#[inline]
pub(crate) fn usual_key_value(kv: &[u8], base: usize) -> Option<(&[u8], KvValue<'_>)> {
    if kv.first() != Some(&0x0a) {
        return None;
    }
    let (len, at) = crate::wire::varint(kv, 1, base).ok()?;
    let key_end = at.checked_add(usize::try_from(len).ok()?)?;
    let key = kv.get(at..key_end)?;
    if key_end == kv.len() {
        return Some((key, KvValue::Encoded(None)));
    }
    if kv[key_end] != 0x12 {
        return None;
    }
    let (len, at) = crate::wire::varint(kv, key_end + 1, base).ok()?;
    if at.checked_add(usize::try_from(len).ok()?)? != kv.len() {
        return None;
    }
    Some((key, KvValue::Encoded(Some((&kv[at..], base + at)))))
}

/// Calls `visit(key, value)` for each `KeyValue` in field `field` of `msg`, in wire order, until it
/// returns false. Values are decoded only when the visitor asks. The walk stops at malformed
/// bytes: a broken field, or a `KeyValue` whose key cannot be read.
fn walk_attributes<'a>(
    msg: &'a [u8],
    base: usize,
    field: u32,
    mut visit: impl FnMut(&'a [u8], KvValue<'a>) -> bool,
) {
    let mut fields = Fields::new(msg, base);
    while let Ok(Some(f)) = fields.next_field() {
        if f.number != field || f.wire_type != LEN {
            continue;
        }
        let kv = f.payload(msg);
        let kv_base = base + f.value_start;
        let (key, value) = match usual_key_value(kv, kv_base) {
            Some(found) => found,
            None => match parse_key_value(kv, kv_base) {
                Ok((key, value)) => (key, KvValue::Decoded(value)),
                Err(_) => return,
            },
        };
        if !visit(key, value) {
            return;
        }
    }
}

/// The first attribute named `key` in field `field` of `msg`; `None` if absent, if its value is
/// malformed, or if the walk hits malformed bytes before finding it.
pub(crate) fn find_attribute<'a>(
    msg: &'a [u8],
    base: usize,
    field: u32,
    key: &[u8],
) -> Option<AnyValue<'a>> {
    let mut out = None;
    walk_attributes(msg, base, field, |k, v| {
        if k != key {
            return true;
        }
        out = v.decode();
        false
    });
    out
}

/// Looks up several keys in one walk of field `field` of `msg`: calls `found(i, value)` for the
/// first `KeyValue` named `keys[i]`, with the value [`find_attribute`] would return (not called
/// where it would return `None`). Bit `i` of `done` marks `keys[i]` as settled (found, or its
/// first value malformed); settled keys are skipped and the walk ends when all are. At most 64
/// keys (later ones are ignored).
pub(crate) fn find_attributes<'a>(
    msg: &'a [u8],
    base: usize,
    field: u32,
    keys: &[&str],
    done: &mut u64,
    found: &mut dyn FnMut(usize, AnyValue<'a>),
) {
    let keys = &keys[..keys.len().min(64)];
    let all = u64::MAX >> (64 - keys.len().max(1));
    if keys.is_empty() || *done & all == all {
        return;
    }
    walk_attributes(msg, base, field, |k, v| {
        for (i, key) in keys.iter().enumerate() {
            let bit = 1u64 << i;
            if *done & bit == 0 && key.as_bytes() == k {
                *done |= bit;
                if let Some(v) = v.decode() {
                    found(i, v);
                }
            }
        }
        *done & all != all
    });
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::{find_attribute, find_attributes, AnyValue, Attributes};

    /// A `Span`-like message holding `kvs` as field 9, each given as raw `KeyValue` bytes.
    fn message(kvs: &[&[u8]]) -> Vec<u8> {
        let mut out = vec![0x08, 0x01]; // an unrelated varint field first
        for kv in kvs {
            out.push(0x4a);
            out.push(kv.len() as u8);
            out.extend_from_slice(kv);
        }
        out
    }

    fn key(k: &[u8]) -> Vec<u8> {
        let mut out = vec![0x0a, k.len() as u8];
        out.extend_from_slice(k);
        out
    }

    fn int_value(n: u8) -> Vec<u8> {
        vec![0x12, 0x02, 0x18, n]
    }

    /// Each lookup agrees with the full parse of the `Attributes` iterator (first key wins).
    fn check(msg: &[u8], keys: &[&str]) {
        let parsed: Vec<_> = Attributes::new(msg, 0, 9).map_while(Result::ok).collect();
        let mut got = vec![None; keys.len()];
        let mut done = 0;
        find_attributes(msg, 0, 9, keys, &mut done, &mut |i, v| got[i] = Some(v));
        for (i, k) in keys.iter().enumerate() {
            let want = parsed
                .iter()
                .find(|(pk, _)| *pk == k.as_bytes())
                .map(|(_, v)| *v);
            assert_eq!(find_attribute(msg, 0, 9, k.as_bytes()), want, "key {k}");
            assert_eq!(got[i], want, "key {k} in one walk");
        }
    }

    #[test]
    fn usual_and_unusual_layouts_agree_with_the_full_parse() {
        let usual = [key(b"a"), int_value(1)].concat();
        let longer_key = [key(b"abc"), int_value(2)].concat();
        let no_value = key(b"empty");
        let value_first = [int_value(3), key(b"vf")].concat();
        // Two key fields: protobuf keeps the last, so this is "b2", not "b1".
        let two_keys = [key(b"b1"), int_value(4), key(b"b2")].concat();
        let unknown_field = [key(b"u"), int_value(5), vec![0x18, 0x01]].concat();
        let repeated = [key(b"a"), int_value(6)].concat();
        let msg = message(&[
            &usual,
            &longer_key,
            &no_value,
            &value_first,
            &two_keys,
            &unknown_field,
            &repeated,
        ]);
        check(
            &msg,
            &["a", "abc", "empty", "vf", "b1", "b2", "u", "zz", "a", ""],
        );
        assert_eq!(find_attribute(&msg, 0, 9, b"a"), Some(AnyValue::Int(1)));
        assert_eq!(find_attribute(&msg, 0, 9, b"empty"), Some(AnyValue::Empty));
    }

    #[test]
    fn malformed_value_answers_none_for_its_key_only() {
        // The first "a" has a truncated value: "a" is None (first key wins), "b" is still found.
        let bad = [key(b"a"), vec![0x12, 0x02, 0x18, 0x80]].concat();
        let good = [key(b"b"), int_value(7)].concat();
        let again = [key(b"a"), int_value(8)].concat();
        let msg = message(&[&bad, &good, &again]);
        assert_eq!(find_attribute(&msg, 0, 9, b"a"), None);
        assert_eq!(find_attribute(&msg, 0, 9, b"b"), Some(AnyValue::Int(7)));
        let mut got = vec![None; 2];
        let mut done = 0;
        find_attributes(&msg, 0, 9, &["a", "b"], &mut done, &mut |i, v| {
            got[i] = Some(v)
        });
        assert_eq!(got, vec![None, Some(AnyValue::Int(7))]);
        assert_eq!(done, 0b11);
    }

    #[test]
    fn unreadable_key_stops_the_walk() {
        let broken = vec![0x0a, 0x05, b'x']; // key length past the end
        let later = [key(b"c"), int_value(9)].concat();
        let msg = message(&[&broken, &later]);
        assert_eq!(find_attribute(&msg, 0, 9, b"c"), None);
        let mut calls = 0;
        let mut done = 0;
        find_attributes(&msg, 0, 9, &["c"], &mut done, &mut |_, _| calls += 1);
        assert_eq!(calls, 0);
    }
}
