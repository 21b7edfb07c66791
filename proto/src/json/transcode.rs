//! OTLP/JSON to protobuf in one streaming pass, under a budget.
//!
//! serde_json tokenizes; a schema table per message type ([`super::schema`]) tells the visitors
//! which protobuf field each key is and how to write its value. Bytes go straight into the output
//! buffer: no `serde_json::Value` tree, no prost structs. A nested message is written behind a
//! one-byte length placeholder that is widened in place (the content moved by a few bytes) when
//! the message turns out to be 128 bytes or longer.
//!
//! Work is bounded by [`JsonBudget`]: every JSON object decoded into a message counts against
//! `max_objects`, and the output may not grow past `max_output`; both are checked while parsing,
//! so a body that breaks either stops there. Nesting is bounded by serde_json's recursion limit
//! (128), which also bounds this module's recursion.
//!
//! Semantics (OTLP/JSON, matching the previous serde-derive decoder of opentelemetry-proto 0.31,
//! with the collector's behaviour where that decoder silently lost data):
//! - keys in lowerCamelCase, or the proto field names (snake_case) as the collector also accepts;
//!   unknown keys are skipped (their values must still be valid JSON);
//! - trace/span ids as hex (either case, optional `0x`, any even length; the receiver's scan checks
//!   the length);
//! - enums as integers or as their names (`"SPAN_KIND_SERVER"`);
//! - `fixed64` timestamps as numbers or decimal strings, `intValue` likewise, other integers as
//!   numbers; `bytesValue` as standard padded base64;
//! - `null` means absent for optional messages (`resource`, `scope`, `status`, `value`) and is an
//!   error elsewhere; `resourceSpans`, `KeyValue.key`, `ArrayValue.values`, `KeyValueList.values`
//!   and every `EntityRef` field are required; an `AnyValue` needs at least one known key;
//! - keys are applied in document order with protobuf merge semantics (a repeated key appends, a
//!   repeated scalar's last value wins when decoded); in an `AnyValue` the last known key wins.
//!   The old decoder deduplicated keys into a sorted map first; documents differ only when they
//!   repeat a key or give an `AnyValue` two kinds of value.
//! - A message given as a JSON array (serde's positional form) is refused; the old decoder accepted
//!   it, the collector does not.

use std::fmt;

use base64::Engine as _;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize as _;

use super::schema::{Field, Kind, Msg, REQUEST};
use crate::wire::{put_varint, varint_len, FIXED32, FIXED64, LEN, VARINT};

/// How much one OTLP/JSON body may decode to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonBudget {
    /// JSON objects decoded as messages (requests, resources, spans, attributes, values…).
    pub max_objects: usize,
    /// Bytes of protobuf output.
    pub max_output: usize,
}

/// JSON bytes per object below which a body is refused. The smallest object that carries anything,
/// a `{"key":""}` attribute with its comma, takes 11 bytes, and real requests average far more
/// (attributes ≈ 20, spans ≈ 300); a body averaging under 8 bytes per object is mostly empty
/// objects, such as the 6.5 M `{}` of issue 17's 18 KiB gzip bomb.
pub const BYTES_PER_OBJECT: usize = 8;

impl JsonBudget {
    /// The budget of a JSON text of `len` bytes: one object per [`BYTES_PER_OBJECT`] bytes (plus a
    /// few, for tiny bodies), and twice the text's size of output. Protobuf is smaller than the JSON
    /// it comes from (hex ids halve, keys become one-byte tags); the worst case, negative enums
    /// (`"kind":-1,` is 10 bytes of JSON and 11 of protobuf), stays far below 2×.
    pub const fn for_text(len: usize) -> Self {
        JsonBudget {
            max_objects: len / BYTES_PER_OBJECT + 16,
            max_output: len.saturating_mul(2).saturating_add(64),
        }
    }
}

/// Message of the error a visitor returns when the budget is exhausted (the flag in [`Out`] is
/// what callers test; the text only shows up in messages).
const OVER_BUDGET: &str = "over the decode budget";

/// Message of the error for a message given as a JSON array (serde's positional struct form).
pub(crate) const POSITIONAL: &str = "a JSON array where an OTLP message object is expected";

/// Why a transcode failed: the serde_json error (with its position) and whether the budget ran out.
#[derive(Debug)]
pub(crate) struct Failure {
    /// serde_json's error, positioned.
    pub error: serde_json::Error,
    /// The budget was exhausted (the error is then a consequence, not a schema problem).
    pub over_budget: bool,
}

/// Converts `json` (an `ExportTraceServiceRequest`) to protobuf within `budget`.
pub(crate) fn transcode(json: &[u8], budget: JsonBudget) -> Result<Vec<u8>, Failure> {
    let mut out = Out {
        // Protobuf is typically under half the JSON; growth past that doubles as usual.
        buf: Vec::with_capacity((json.len() / 2).min(budget.max_output)),
        objects: 0,
        budget,
        over_budget: false,
    };
    let mut de = serde_json::Deserializer::from_slice(json);
    let res = MessageSeed {
        out: &mut out,
        msg: &REQUEST,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end());
    match res {
        Ok(()) => Ok(out.buf),
        Err(error) => Err(Failure {
            error,
            over_budget: out.over_budget,
        }),
    }
}

// === output ===

/// The protobuf being written and the budget it is written under.
struct Out {
    buf: Vec<u8>,
    objects: usize,
    budget: JsonBudget,
    /// Set when a check failed, so the caller can tell a budget error from a schema error.
    over_budget: bool,
}

impl Out {
    fn over<E: de::Error>(&mut self) -> E {
        self.over_budget = true;
        E::custom(OVER_BUDGET)
    }

    /// Counts one more message object.
    fn count_object<E: de::Error>(&mut self) -> Result<(), E> {
        self.objects += 1;
        if self.objects > self.budget.max_objects {
            return Err(self.over());
        }
        self.check_output()
    }

    fn check_output<E: de::Error>(&mut self) -> Result<(), E> {
        if self.buf.len() > self.budget.max_output {
            return Err(self.over());
        }
        Ok(())
    }

    #[inline]
    fn key(&mut self, number: u32, wire_type: u8) {
        put_varint(&mut self.buf, u64::from(number << 3 | u32::from(wire_type)));
    }

    /// Writes a length-delimited field whose payload is known.
    fn bytes(&mut self, number: u32, payload: &[u8]) {
        self.key(number, LEN);
        put_varint(&mut self.buf, payload.len() as u64);
        self.buf.extend_from_slice(payload);
    }

    /// Starts a length-delimited field of unknown length; returns where its payload starts.
    #[inline]
    fn open(&mut self, number: u32) -> usize {
        self.key(number, LEN);
        self.buf.push(0);
        self.buf.len()
    }

    /// Ends the field opened at `start`: writes its length, widening the one-byte placeholder when
    /// the payload is 128 bytes or longer.
    fn close(&mut self, start: usize) {
        let len = self.buf.len() - start;
        if len < 0x80 {
            self.buf[start - 1] = len as u8;
            return;
        }
        let extra = varint_len(len as u64) - 1;
        self.buf.resize(self.buf.len() + extra, 0);
        self.buf.copy_within(start..start + len, start + extra);
        let (mut v, mut at) = (len as u64, start - 1);
        while v >= 0x80 {
            self.buf[at] = (v as u8) | 0x80;
            v >>= 7;
            at += 1;
        }
        self.buf[at] = v as u8;
    }

    fn varint_field(&mut self, number: u32, v: u64) {
        self.key(number, VARINT);
        put_varint(&mut self.buf, v);
    }
}

// === messages ===

/// Decodes one JSON object as the payload of `msg` (the caller wrote the tag and length, if any).
struct MessageSeed<'a> {
    out: &'a mut Out,
    msg: &'static Msg,
}

impl<'de> DeserializeSeed<'de> for MessageSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        // As a struct rather than a map so that an array reaches `visit_seq` and gets its own
        // error (the old decoder accepted that form).
        d.deserialize_struct(self.msg.name, &[], self)
    }
}

impl<'de> Visitor<'de> for MessageSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an OTLP {} object", self.msg.name)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let out = self.out;
        out.count_object()?;
        let start = out.buf.len();
        let mut seen = 0u32;
        while let Some(key) = map.next_key_seed(KeySeed(self.msg))? {
            let Some(i) = key else {
                map.next_value_seed(Skip)?;
                continue;
            };
            seen |= 1 << i;
            if self.msg.oneof {
                // AnyValue holds one value: a later kind replaces an earlier one.
                out.buf.truncate(start);
            }
            let field = &self.msg.fields[i];
            map.next_value_seed(FieldSeed { out, field })?;
        }
        self.msg.check_seen(seen)?;
        out.check_output()
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(POSITIONAL))
    }
}

/// Maps a key to the index of its field in the message's table (`None`: unknown, skip it).
struct KeySeed(&'static Msg);

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Option<usize>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for KeySeed {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Option<usize>, E> {
        Ok(self.0.field_index(key))
    }
}

/// One message in a repeated field, or the value of a `oneof` message field: written even when
/// empty.
struct Item<'a> {
    out: &'a mut Out,
    number: u32,
    msg: &'static Msg,
}

impl<'de> DeserializeSeed<'de> for Item<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        let start = self.out.open(self.number);
        MessageSeed {
            out: &mut *self.out,
            msg: self.msg,
        }
        .deserialize(d)?;
        self.out.close(start);
        Ok(())
    }
}

/// An optional message field: `null` leaves it absent.
struct Optional<'a>(Item<'a>);

impl<'de> Visitor<'de> for Optional<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an OTLP {} object or null", self.0.msg.name)
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.0.deserialize(d)
    }
}

/// A repeated message field: a JSON array of objects.
struct Repeated<'a>(Item<'a>);

impl<'de> Visitor<'de> for Repeated<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an array of OTLP {} objects", self.0.msg.name)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Item { out, number, msg } = self.0;
        while seq
            .next_element_seed(Item {
                out: &mut *out,
                number,
                msg,
            })?
            .is_some()
        {}
        Ok(())
    }
}

// === scalar fields ===

/// The value of one known key.
struct FieldSeed<'a> {
    out: &'a mut Out,
    field: &'static Field,
}

impl<'de> DeserializeSeed<'de> for FieldSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        let (out, n) = (self.out, self.field.number);
        let item = |out, msg| Item {
            out,
            number: n,
            msg,
        };
        match self.field.kind {
            Kind::Message(msg) => d.deserialize_option(Optional(item(out, msg))),
            Kind::Messages(msg) => d.deserialize_seq(Repeated(item(out, msg))),
            Kind::OneofMessage(msg) => item(out, msg).deserialize(d),
            Kind::Str => d.deserialize_str(Text {
                out,
                number: n,
                keep_empty: false,
            }),
            Kind::OneofStr => d.deserialize_str(Text {
                out,
                number: n,
                keep_empty: true,
            }),
            Kind::Strs => d.deserialize_seq(Texts { out, number: n }),
            Kind::HexId => d.deserialize_str(Hex { out, number: n }),
            Kind::OneofBytes => d.deserialize_str(Base64 { out, number: n }),
            Kind::Fixed64 => {
                let v = d.deserialize_any(U64Visitor)?;
                if v != 0 {
                    out.key(n, FIXED64);
                    out.buf.extend_from_slice(&v.to_le_bytes());
                }
                Ok(())
            }
            Kind::Fixed32 => {
                let v = u32::deserialize(d)?;
                if v != 0 {
                    out.key(n, FIXED32);
                    out.buf.extend_from_slice(&v.to_le_bytes());
                }
                Ok(())
            }
            Kind::Uint32 => {
                let v = u32::deserialize(d)?;
                if v != 0 {
                    out.varint_field(n, u64::from(v));
                }
                Ok(())
            }
            Kind::Enum(names) => {
                let v = d.deserialize_any(EnumVisitor(names))?;
                if v != 0 {
                    // int32 on the wire: negative values are sign-extended to ten bytes.
                    out.varint_field(n, i64::from(v) as u64);
                }
                Ok(())
            }
            Kind::OneofBool => {
                let v = bool::deserialize(d)?;
                out.varint_field(n, u64::from(v));
                Ok(())
            }
            Kind::OneofInt => {
                let v = d.deserialize_any(I64Visitor)?;
                out.varint_field(n, v as u64);
                Ok(())
            }
            Kind::OneofDouble => {
                let v = f64::deserialize(d)?;
                out.key(n, FIXED64);
                out.buf.extend_from_slice(&v.to_le_bytes());
                Ok(())
            }
        }
    }
}

/// A string field (skipped when empty, as proto3 does, unless it is a `oneof` member).
struct Text<'a> {
    out: &'a mut Out,
    number: u32,
    keep_empty: bool,
}

impl Visitor<'_> for Text<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<(), E> {
        if self.keep_empty || !s.is_empty() {
            self.out.bytes(self.number, s.as_bytes());
        }
        Ok(())
    }
}

/// A repeated string field: every element is written, empty ones included.
struct Texts<'a> {
    out: &'a mut Out,
    number: u32,
}

impl<'de> Visitor<'de> for Texts<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of strings")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let number = self.number;
        while let Some(()) = seq.next_element_seed(TextSeed(Text {
            out: &mut *self.out,
            number,
            keep_empty: true,
        }))? {}
        self.out.check_output()
    }
}

/// [`Text`] as a seed, for array elements.
struct TextSeed<'a>(Text<'a>);

impl<'de> DeserializeSeed<'de> for TextSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_str(self.0)
    }
}

/// A trace or span id in hex, decoded as `const_hex::decode` does (the old decoder's rules): an
/// even number of characters, then an optional `0x`/`0X` prefix, then hex digits of either case.
/// Empty ids are absent.
struct Hex<'a> {
    out: &'a mut Out,
    number: u32,
}

impl Visitor<'_> for Hex<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string representing hex-encoded bytes")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<(), E> {
        let s = s.as_bytes();
        if s.len() % 2 != 0 {
            return Err(E::custom("odd number of hex digits"));
        }
        let digits = match s {
            [b'0', b'x' | b'X', rest @ ..] => rest,
            _ => s,
        };
        if digits.is_empty() {
            return Ok(());
        }
        self.out.key(self.number, LEN);
        put_varint(&mut self.out.buf, (digits.len() / 2) as u64);
        for pair in digits.chunks_exact(2) {
            match (hex_digit(pair[0]), hex_digit(pair[1])) {
                (Some(hi), Some(lo)) => self.out.buf.push(hi << 4 | lo),
                _ => return Err(E::custom("invalid hex digit")),
            }
        }
        Ok(())
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// `bytesValue`: standard base64 with canonical padding (what `base64::decode` accepted).
struct Base64<'a> {
    out: &'a mut Out,
    number: u32,
}

impl Visitor<'_> for Base64<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a base64 string")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<(), E> {
        let start = self.out.open(self.number);
        base64::engine::general_purpose::STANDARD
            .decode_vec(s, &mut self.out.buf)
            .map_err(E::custom)?;
        self.out.close(start);
        Ok(())
    }
}

/// A `fixed64` given as a number or a decimal string.
struct U64Visitor;

impl Visitor<'_> for U64Visitor {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an unsigned 64-bit integer, as a number or a string")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<u64, E> {
        s.parse().map_err(E::custom)
    }
}

/// `intValue`: a signed 64-bit integer as a number or a decimal string.
struct I64Visitor;

impl Visitor<'_> for I64Visitor {
    type Value = i64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a signed 64-bit integer, as a number or a string")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
        Ok(v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
        i64::try_from(v).map_err(E::custom)
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<i64, E> {
        s.parse().map_err(E::custom)
    }
}

/// An enum: an `int32`, or one of its value names (index = value).
struct EnumVisitor(&'static [&'static str]);

impl Visitor<'_> for EnumVisitor {
    type Value = i32;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an enum value, as a 32-bit integer or a name")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i32, E> {
        i32::try_from(v).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i32, E> {
        i32::try_from(v).map_err(E::custom)
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<i32, E> {
        match self.0.iter().position(|name| *name == s) {
            // The tables hold a handful of names.
            Some(i) => Ok(i as i32),
            None => Err(E::custom(format_args!("unknown enum value name {s:?}"))),
        }
    }
}

// === unknown keys ===

/// Skips any JSON value, parsing it fully (strings UTF-8-checked, numbers range-checked) as the old
/// decoder's value tree did, so an unknown key cannot smuggle invalid JSON through.
struct Skip;

impl<'de> DeserializeSeed<'de> for Skip {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Skip {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Skip)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_key_seed(Skip)?.is_some() {
            map.next_value_seed(Skip)?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
    use prost::Message;

    fn decode(json: &str) -> Result<ExportTraceServiceRequest, Failure> {
        let pb = transcode(json.as_bytes(), JsonBudget::for_text(json.len()))?;
        Ok(ExportTraceServiceRequest::decode(&pb[..]).unwrap())
    }

    fn one_span(span: Span) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![span],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    fn span_json(fields: &str) -> String {
        format!(r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{{fields}}}]}}]}}]}}"#)
    }

    fn attr(key: &str, v: Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(v) }),
        }
    }

    #[test]
    fn proto_names_enum_names_and_prefixed_ids_are_read() {
        let json = r#"{"resource_spans":[{"scope_spans":[{"spans":[{"trace_id":"0X5B8EFFF798038103d269b633813fc60c",
            "kind":"SPAN_KIND_SERVER","start_time_unix_nano":5,"end_time_unix_nano":"6",
            "status":{"code":"STATUS_CODE_ERROR"}}]}]}]}"#;
        let want = one_span(Span {
            trace_id: hex::decode("5b8efff798038103d269b633813fc60c").unwrap(),
            kind: 2,
            start_time_unix_nano: 5,
            end_time_unix_nano: 6,
            status: Some(Status {
                code: 2,
                message: String::new(),
            }),
            ..Default::default()
        });
        assert_eq!(decode(json).unwrap(), want);
    }

    #[test]
    fn values_follow_the_old_decoder() {
        let span = |attrs: &str| decode(&span_json(&format!(r#""attributes":[{attrs}]"#)));
        // In an AnyValue the last known key wins; unknown keys are skipped.
        let got = span(r#"{"key":"a","value":{"intValue":1,"x":[],"stringValue":"s"}}"#).unwrap();
        let want = one_span(Span {
            attributes: vec![attr("a", Value::StringValue("s".into()))],
            ..Default::default()
        });
        assert_eq!(got, want);
        let got = span(r#"{"key":"a","value":{"stringValue":"s","intValue":"-7"}}"#).unwrap();
        assert_eq!(
            got.resource_spans[0].scope_spans[0].spans[0].attributes[0],
            attr("a", Value::IntValue(-7))
        );
        // A null value is an attribute without value; a value without a known key is an error,
        // and so is an attribute without key.
        let got = span(r#"{"key":"a","value":null}"#).unwrap();
        assert_eq!(
            got.resource_spans[0].scope_spans[0].spans[0].attributes[0],
            KeyValue {
                key: "a".into(),
                value: None
            }
        );
        assert!(span(r#"{"key":"a","value":{}}"#).is_err());
        assert!(span(r#"{"key":"a","value":{"other":1}}"#).is_err());
        assert!(span(r#"{"value":{"intValue":1}}"#).is_err());
        // Empty oneof members are written (proto3 keeps a set oneof even at its default).
        let got = span(
            r#"{"key":"a","value":{"boolValue":false}},{"key":"b","value":{"bytesValue":""}}"#,
        )
        .unwrap();
        assert_eq!(
            got.resource_spans[0].scope_spans[0].spans[0].attributes,
            vec![
                attr("a", Value::BoolValue(false)),
                attr("b", Value::BytesValue(Vec::new()))
            ]
        );
    }

    #[test]
    fn what_the_old_decoder_refused_stays_refused() {
        for bad in [
            r#"{}"#,
            r#"{"resourceSpans":null}"#,
            r#"{"resourceSpans":[null]}"#,
            r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"kind":"SPAN_KIND_NOPE"}]}]}]}"#,
            r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"kind":1.0}]}]}]}"#,
            r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"abc"}]}]}]}"#,
            r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"startTimeUnixNano":-1}]}]}]}"#,
            r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"droppedLinksCount":"1"}]}]}]}"#,
            r#"{"resourceSpans":[{"resource":{"entityRefs":[{"type":"t"}]}}]}"#,
        ] {
            assert!(decode(bad).is_err(), "{bad}");
        }
        // An unknown key's value is still parsed as JSON: invalid UTF-8 in it is refused.
        let mut json = br#"{"resourceSpans":[],"x":""#.to_vec();
        json.extend_from_slice(&[0xff, b'"', b'}']);
        assert!(transcode(&json, JsonBudget::for_text(json.len())).is_err());
    }

    #[test]
    fn a_message_given_as_an_array_is_refused() {
        let err = decode(&span_json(r#""status":[]"#)).unwrap_err();
        assert!(
            err.error.to_string().starts_with(POSITIONAL),
            "{}",
            err.error
        );
        assert!(!err.over_budget);
    }

    #[test]
    fn negative_enums_are_sign_extended_and_repeated_keys_append() {
        let got = decode(&span_json(
            r#""kind":-1,"attributes":[{"key":"a"}],"attributes":[{"key":"b"}]"#,
        ))
        .unwrap();
        let span = &got.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(span.kind, -1);
        assert_eq!(span.attributes.len(), 2);
    }

    #[test]
    fn long_messages_get_wide_length_prefixes() {
        for len in [0, 1, 127, 128, 16_383, 16_384, 2_097_152] {
            let name = "n".repeat(len);
            let got = decode(&span_json(&format!(r#""name":"{name}""#))).unwrap();
            let want = one_span(Span {
                name,
                ..Default::default()
            });
            assert_eq!(got, want, "name of {len} bytes");
        }
    }

    #[test]
    fn the_budget_is_checked_while_parsing() {
        let json = r#"{"resourceSpans":[{},{},{}]}"#.as_bytes();
        let exact = JsonBudget {
            max_objects: 4,
            max_output: 6,
        };
        assert_eq!(transcode(json, exact).unwrap(), [0x0a, 0, 0x0a, 0, 0x0a, 0]);
        for tight in [
            JsonBudget {
                max_objects: 3,
                ..exact
            },
            JsonBudget {
                max_output: 5,
                ..exact
            },
        ] {
            let err = transcode(json, tight).unwrap_err();
            assert!(err.over_budget, "{tight:?}");
        }
    }
}
