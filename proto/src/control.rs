//! Control messages between gateways (`claim`, `redirect`, `decisions`, `drain`, `done`):
//! docs/membership-design.md §5.
//!
//! A control message travels as an ordinary OTLP `ExportTraceServiceRequest` on the gateway's
//! OTLP receiver, so it needs no second listener: one `ResourceSpans`, no `ScopeSpans`, and one
//! resource attribute [`ATTRIBUTE`] whose `bytes_value` is the payload. A collector (or an old
//! tailgate) that receives one by mistake decodes a valid request with zero spans and exports
//! nothing. The kind is not in the body: it is the `k` of the `tailgate-hop` header
//! ([`crate::hop`]), so [`parse`] finds the payload and the caller reads it as that kind.
//!
//! Payloads are repeated fixed-layout entries, integers little-endian:
//!
//! | kind | entry | bytes |
//! |---|---|---|
//! | `claim` | `trace_id [16], state u8, ttl_ms u32` | 21 |
//! | `redirect` | `trace_id [16], holder_len u16, holder [holder_len], holder_incarnation u64, holder_state u8` | 28 + holder |
//! | `decisions` | `trace_id [16], kept u8 (0/1), ttl_ms u32` | 21 |
//! | `drain`, `done` | (empty payload) | 0 |
//!
//! `state` has bit 0 *decided* and bit 1 *anchored* (§4.7); other bits must be 0. A holder is an
//! endpoint as `tailgate-hop`'s `f` ([`crate::hop::check_endpoint`]: 1..=253 printable ASCII
//! bytes).
//!
//! Parsing walks the protobuf with [`crate::wire`] (no prost structs), refuses a request holding
//! spans or several resources, and reads entries lazily ([`Entries`]). Every length is checked
//! against the bytes that remain before use, nothing is allocated from a length in the input, and
//! every error carries the byte offset in the body ([`ControlError`]).

use std::marker::PhantomData;

use crate::attributes::{parse_key_value, AnyValue};
use crate::error::{ControlError, EncodeError};
use crate::hop::Kind;
use crate::wire::{put_varint, varint_len, Fields, LEN};

mod entry;

#[cfg(test)]
use entry::FIXED_LEN;
pub use entry::{Claim, Decision, Entry, Redirect, State};

/// The resource attribute that holds the payload.
pub const ATTRIBUTE: &str = "tailgate.control";
/// Default size limit of one encoded body: the OTLP receivers' default message limit.
pub const DEFAULT_MAX_BODY: usize = 4 << 20;

/// Tag of `ExportTraceServiceRequest.resource_spans`, `ResourceSpans.resource`,
/// `Resource.attributes` and `KeyValue.key` (all field 1, length-delimited).
const TAG_1_LEN: u8 = 0x0a;
/// `KeyValue.value` (field 2, length-delimited).
const TAG_KV_VALUE: u8 = 0x12;
/// `AnyValue.bytes_value` (field 7, length-delimited).
const TAG_BYTES_VALUE: u8 = 0x3a;
/// `ResourceSpans.scope_spans`.
const RESOURCE_SPANS_SCOPE_SPANS: u32 = 2;

// === encoding ===

/// Lengths of the nested messages around a payload of `payload` bytes, innermost first:
/// `AnyValue`, `KeyValue`, `Resource`, `ResourceSpans`.
fn nested_lens(payload: usize) -> [usize; 4] {
    let framed = |n: usize| 1 + varint_len(n as u64) + n;
    let any_value = framed(payload);
    let key_value = framed(ATTRIBUTE.len()) + framed(any_value);
    let resource = framed(key_value);
    let resource_spans = framed(resource);
    [any_value, key_value, resource, resource_spans]
}

/// Exact length of a control body whose payload is `payload` bytes.
pub fn body_len(payload: usize) -> usize {
    let resource_spans = nested_lens(payload)[3];
    1 + varint_len(resource_spans as u64) + resource_spans
}

/// Appends a control body around `payload` (any bytes: the entries are not checked). `drain` and
/// `done` use an empty payload.
pub fn encode_payload(payload: &[u8], out: &mut Vec<u8>) {
    write_frame(payload.len(), out);
    out.extend_from_slice(payload);
}

/// Appends a `drain` or `done` body (the empty payload).
pub fn encode_empty(out: &mut Vec<u8>) {
    encode_payload(&[], out);
}

/// Appends everything of a body up to its payload, which must follow with `payload` bytes.
fn write_frame(payload: usize, out: &mut Vec<u8>) {
    let [any_value, key_value, resource, resource_spans] = nested_lens(payload);
    out.reserve(body_len(payload));
    for (tag, len) in [
        (TAG_1_LEN, resource_spans),
        (TAG_1_LEN, resource),
        (TAG_1_LEN, key_value),
        (TAG_1_LEN, ATTRIBUTE.len()),
    ] {
        out.push(tag);
        put_varint(out, len as u64);
    }
    out.extend_from_slice(ATTRIBUTE.as_bytes());
    out.push(TAG_KV_VALUE);
    put_varint(out, any_value as u64);
    out.push(TAG_BYTES_VALUE);
    put_varint(out, payload as u64);
}

/// Appends one body holding all `entries`, whatever its size.
pub fn encode_body<'a, E: Entry<'a>>(entries: &[E], out: &mut Vec<u8>) -> Result<(), EncodeError> {
    check_all(entries)?;
    write_body(entries, out);
    Ok(())
}

fn check_all<'a, E: Entry<'a>>(entries: &[E]) -> Result<(), EncodeError> {
    for (index, e) in entries.iter().enumerate() {
        e.check().map_err(|err| err.at_index(index))?;
    }
    Ok(())
}

fn write_body<'a, E: Entry<'a>>(entries: &[E], out: &mut Vec<u8>) {
    let payload = entries.iter().map(Entry::wire_len).sum();
    write_frame(payload, out);
    for e in entries {
        e.put(out);
    }
}

/// Encodes `entries` into as few bodies as keep each within `max_body` bytes
/// ([`DEFAULT_MAX_BODY`] is the receivers' default), entries in order. No entries, no body.
/// Fails if an entry is invalid, or if one entry alone would not fit.
pub fn encode_bodies<'a, E: Entry<'a>>(
    entries: &[E],
    max_body: usize,
) -> Result<Vec<Vec<u8>>, EncodeError> {
    check_all(entries)?;
    let mut bodies = Vec::new();
    let (mut first, mut payload) = (0, 0);
    for (index, e) in entries.iter().enumerate() {
        let len = e.wire_len();
        if body_len(payload + len) > max_body {
            if index == first {
                return Err(EncodeError::EntryTooLarge { index, max_body });
            }
            bodies.push(body_of(&entries[first..index], payload));
            (first, payload) = (index, 0);
            if body_len(len) > max_body {
                return Err(EncodeError::EntryTooLarge { index, max_body });
            }
        }
        payload += len;
    }
    if first < entries.len() {
        bodies.push(body_of(&entries[first..], payload));
    }
    Ok(bodies)
}

fn body_of<'a, E: Entry<'a>>(entries: &[E], payload: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(body_len(payload));
    write_body(entries, &mut out);
    out
}

// === parsing ===

/// The payload of a control request, found by [`parse`]; read it as the header's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlPayload<'a> {
    bytes: &'a [u8],
    /// Offset of `bytes` in the body, for errors.
    at: usize,
}

/// A payload read as its kind, every entry checked ([`ControlPayload::read`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control<'a> {
    /// `claim` entries.
    Claims(Vec<Claim>),
    /// `redirect` entries.
    Redirects(Vec<Redirect<'a>>),
    /// `decisions` entries.
    Decisions(Vec<Decision>),
    /// A drain announcement.
    Drain,
    /// The sender finished draining.
    Done,
}

impl<'a> ControlPayload<'a> {
    /// The payload bytes.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Offset of the payload in the body.
    pub fn offset(&self) -> usize {
        self.at
    }

    /// The entries, read lazily as `E`.
    pub fn entries<E: Entry<'a>>(&self) -> Entries<'a, E> {
        Entries {
            payload: self.bytes,
            pos: 0,
            base: self.at,
            failed: false,
            entry: PhantomData,
        }
    }

    /// The payload read as `claim` entries.
    pub fn claims(&self) -> Entries<'a, Claim> {
        self.entries()
    }

    /// The payload read as `redirect` entries.
    pub fn redirects(&self) -> Entries<'a, Redirect<'a>> {
        self.entries()
    }

    /// The payload read as `decisions` entries.
    pub fn decisions(&self) -> Entries<'a, Decision> {
        self.entries()
    }

    /// Every entry as `E`, or the first error. The vector never holds more than
    /// `len / E::MIN_LEN` entries, so its size is bounded by the payload's (at most 2× it).
    pub fn collect<E: Entry<'a>>(&self) -> Result<Vec<E>, ControlError> {
        let mut out = Vec::with_capacity(self.bytes.len() / E::MIN_LEN);
        for e in self.entries() {
            out.push(e?);
        }
        Ok(out)
    }

    /// Fails unless the payload is empty (`drain`, `done`).
    pub fn expect_empty(&self) -> Result<(), ControlError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(ControlError::NotEmpty {
                at: self.at,
                len: self.bytes.len(),
            })
        }
    }

    /// The payload read as `kind` (the `tailgate-hop` header's `k`), every entry checked.
    pub fn read(&self, kind: Kind) -> Result<Control<'a>, ControlError> {
        Ok(match kind {
            Kind::Claim => Control::Claims(self.collect()?),
            Kind::Redirect => Control::Redirects(self.collect()?),
            Kind::Decisions => Control::Decisions(self.collect()?),
            Kind::Drain => self.expect_empty().map(|()| Control::Drain)?,
            Kind::Done => self.expect_empty().map(|()| Control::Done)?,
            Kind::Fwd | Kind::HandOver => return Err(ControlError::NotControl { kind }),
        })
    }
}

/// Lazy iterator over a payload's entries; stops after the first error.
#[derive(Debug, Clone)]
pub struct Entries<'a, E> {
    payload: &'a [u8],
    pos: usize,
    base: usize,
    failed: bool,
    entry: PhantomData<E>,
}

impl<'a, E: Entry<'a>> Iterator for Entries<'a, E> {
    type Item = Result<E, ControlError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.payload.len() {
            return None;
        }
        match E::read(self.payload, self.pos, self.base) {
            Ok((e, next)) => {
                self.pos = next;
                Some(Ok(e))
            }
            Err(err) => {
                self.failed = true;
                Some(Err(err))
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.payload.len().saturating_sub(self.pos);
        (
            0,
            Some(if self.failed {
                0
            } else {
                left / E::MIN_LEN + 1
            }),
        )
    }
}

/// Finds the payload of a control request body.
///
/// The body must be an `ExportTraceServiceRequest` with exactly one `ResourceSpans`, no
/// `ScopeSpans` in it, and exactly one resource attribute [`ATTRIBUTE`] with a `bytes_value`.
/// Other resource attributes and unknown fields are ignored (a later version may add some); a
/// `resource` field given twice is read as prost reads it, merged.
pub fn parse(body: &[u8]) -> Result<ControlPayload<'_>, ControlError> {
    let (start, end) = only_resource_spans(body)?;
    let mut found: Option<ControlPayload<'_>> = None;
    let mut fields = Fields::new(&body[start..end], start);
    while let Some(f) = fields.next_field()? {
        match f.number {
            1 => {
                f.expect(LEN, start)?;
                find_attribute(body, start + f.value_start, start + f.end, &mut found)?;
            }
            RESOURCE_SPANS_SCOPE_SPANS => {
                return Err(ControlError::HoldsSpans {
                    at: start + f.start,
                })
            }
            3 => f.expect(LEN, start)?, // schema_url
            _ => {}
        }
    }
    found.ok_or(ControlError::NoAttribute { at: start })
}

/// The value range of the request's only `resource_spans` field.
fn only_resource_spans(body: &[u8]) -> Result<(usize, usize), ControlError> {
    let mut found = None;
    let mut fields = Fields::new(body, 0);
    while let Some(f) = fields.next_field()? {
        if f.number != 1 {
            continue;
        }
        f.expect(LEN, 0)?;
        if found.is_some() {
            return Err(ControlError::SeveralResources { at: f.start });
        }
        found = Some((f.value_start, f.end));
    }
    found.ok_or(ControlError::NoResource { at: body.len() })
}

/// Looks for [`ATTRIBUTE`] in the `Resource` at `body[start..end]`, recording it in `found`.
fn find_attribute<'a>(
    body: &'a [u8],
    start: usize,
    end: usize,
    found: &mut Option<ControlPayload<'a>>,
) -> Result<(), ControlError> {
    let mut fields = Fields::new(&body[start..end], start);
    while let Some(f) = fields.next_field()? {
        if f.number != 1 {
            continue;
        }
        f.expect(LEN, start)?;
        let at = start + f.start;
        let (kv_start, kv_end) = (start + f.value_start, start + f.end);
        let (key, value) = parse_key_value(&body[kv_start..kv_end], kv_start)?;
        if key != ATTRIBUTE.as_bytes() {
            continue;
        }
        if found.is_some() {
            return Err(ControlError::DuplicateAttribute { at });
        }
        let AnyValue::Bytes(bytes) = value else {
            return Err(ControlError::NotBytes { at });
        };
        // `bytes` is a subslice of `body`: its offset is the distance between their starts.
        let offset = bytes.as_ptr() as usize - body.as_ptr() as usize;
        *found = Some(ControlPayload { bytes, at: offset });
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
