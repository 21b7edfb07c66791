//! Property tests of the scanner, split, re-framer and views against prost +
//! opentelemetry-proto as the oracle.
//!
//! Random requests (several resources, scopes and spans, every attribute value type, events, links)
//! are encoded by hand from prost-encoded parts so unknown fields can be injected at every level.
//! Each output is decoded with prost and compared with the input's (resource, scope, span) triples.
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value::Value, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::Span;
use proptest::prelude::*;
use prost::Message;
use tailgate_proto::attributes::AnyValue as WireValue;
use tailgate_proto::{compact, reframe, scan, split, SpanView};

mod strategies;

use strategies::{request, Req};

// === hand encoding with unknown fields ===

fn put_len_field(out: &mut Vec<u8>, number: u32, payload: &[u8]) {
    prost::encoding::encode_key(number, prost::encoding::WireType::LengthDelimited, out);
    prost::encoding::encode_varint(payload.len() as u64, out);
    out.extend_from_slice(payload);
}

fn unknown(out: &mut Vec<u8>, on: bool) {
    if on {
        out.extend_from_slice(&[0x98, 0x06, 0x2a]); // field 99 varint 42
        put_len_field(out, 100, b"opaque");
    }
}

fn encode(req: &Req) -> Vec<u8> {
    let mut out = Vec::new();
    unknown(&mut out, req.unknown);
    for (res, schema, scopes) in &req.resources {
        let mut rs = Vec::new();
        if let Some(r) = res {
            put_len_field(&mut rs, 1, &r.encode_to_vec());
        }
        unknown(&mut rs, req.unknown);
        for (scope, sschema, spans) in scopes {
            let mut ss = Vec::new();
            if let Some(s) = scope {
                put_len_field(&mut ss, 1, &s.encode_to_vec());
            }
            for span in spans {
                let mut sp = span.encode_to_vec();
                unknown(&mut sp, req.unknown);
                put_len_field(&mut ss, 2, &sp);
            }
            unknown(&mut ss, req.unknown);
            if !sschema.is_empty() {
                put_len_field(&mut ss, 3, sschema.as_bytes());
            }
            put_len_field(&mut rs, 2, &ss);
        }
        if !schema.is_empty() {
            put_len_field(&mut rs, 3, schema.as_bytes());
        }
        put_len_field(&mut out, 1, &rs);
    }
    out
}

/// (resource, resource schema, scope, scope schema, span) for every span of a decoded request.
type Triple = (
    Option<Resource>,
    String,
    Option<InstrumentationScope>,
    String,
    Span,
);

fn triples(bytes: &[u8]) -> Vec<Triple> {
    let req = ExportTraceServiceRequest::decode(bytes).unwrap();
    let mut out = Vec::new();
    for rs in req.resource_spans {
        for ss in rs.scope_spans {
            for sp in ss.spans {
                out.push((
                    rs.resource.clone(),
                    rs.schema_url.clone(),
                    ss.scope.clone(),
                    ss.schema_url.clone(),
                    sp,
                ));
            }
        }
    }
    out
}

fn sorted(mut v: Vec<Triple>) -> Vec<Triple> {
    v.sort_by_key(|t| format!("{t:?}"));
    v
}

/// The routing function under test: first trace-id byte, like an agent hashing the trace id.
fn route(trace_id: &[u8], n: usize) -> usize {
    trace_id.first().map_or(0, |&b| usize::from(b) % n)
}

/// Checks a view's typed attribute lookup against the prost attributes (first occurrence wins).
fn check_attrs<'a>(found: impl Fn(&str) -> Option<WireValue<'a>>, attrs: &[KeyValue]) {
    for kv in attrs {
        let first = attrs.iter().find(|a| a.key == kv.key).unwrap();
        let got = found(&kv.key).unwrap();
        let want = first.value.as_ref().and_then(|v| v.value.as_ref());
        let ok = match (got, want) {
            (WireValue::Empty, None) => true,
            (WireValue::String(s), Some(Value::StringValue(w))) => s == w.as_bytes(),
            (WireValue::Bool(b), Some(Value::BoolValue(w))) => b == *w,
            (WireValue::Int(i), Some(Value::IntValue(w))) => i == *w,
            (WireValue::Double(d), Some(Value::DoubleValue(w))) => d == *w,
            (WireValue::Bytes(b), Some(Value::BytesValue(w))) => b == &w[..],
            (WireValue::Array(b), Some(Value::ArrayValue(w))) => {
                ArrayValue::decode(b).unwrap() == *w
            }
            (WireValue::KvList(b), Some(Value::KvlistValue(w))) => {
                KeyValueList::decode(b).unwrap() == *w
            }
            _ => false,
        };
        assert!(ok, "attribute {:?}: got {got:?}, want {want:?}", kv.key);
    }
    assert!(found("no-such-key").is_none());
}

/// The one-walk lookup of several keys (each key, a repeated key, a missing key) answers as the
/// single-key lookup does.
fn check_attrs_of<'a>(
    attrs: &[KeyValue],
    one: impl Fn(&str) -> Option<WireValue<'a>>,
    many: impl FnOnce(&[&str], &mut dyn FnMut(usize, WireValue<'a>)),
) {
    let mut keys: Vec<&str> = attrs.iter().map(|a| a.key.as_str()).rev().collect();
    keys.push("no-such-key");
    let mut got = vec![None; keys.len()];
    many(&keys, &mut |i, v| {
        assert!(got[i].is_none(), "key {i} answered twice");
        got[i] = Some(v);
    });
    let want: Vec<_> = keys.iter().map(|k| one(k)).collect();
    assert_eq!(got, want);
}

fn check_view(v: &SpanView, t: &Triple) {
    let span = &t.4;
    let pad = |b: &[u8], n: usize| if b.is_empty() { vec![0; n] } else { b.to_vec() };
    assert_eq!(v.trace_id().to_vec(), span.trace_id);
    assert_eq!(v.span_id().to_vec(), pad(&span.span_id, 8));
    assert_eq!(v.parent_span_id().to_vec(), pad(&span.parent_span_id, 8));
    assert_eq!(v.trace_id_bytes(), span.trace_id.as_slice());
    assert_eq!(v.parent_span_id_bytes(), span.parent_span_id.as_slice());
    assert_eq!(v.is_root(), span.parent_span_id.iter().all(|b| *b == 0));
    assert_eq!(v.name(), span.name.as_bytes());
    assert_eq!(v.trace_state(), span.trace_state.as_bytes());
    assert_eq!(v.fields().kind, span.kind);
    assert_eq!(v.start_time_unix_nano(), span.start_time_unix_nano);
    assert_eq!(v.end_time_unix_nano(), span.end_time_unix_nano);
    assert_eq!(
        v.fields().status_code,
        span.status.as_ref().map_or(0, |s| s.code)
    );
    assert_eq!(v.flags(), span.flags);
    assert_eq!(Span::decode(v.span_slice()).unwrap(), *span);
    assert_eq!(v.wire_len(), v.span_slice().len());
    check_attrs(|k| v.attribute(k), &span.attributes);
    check_attrs_of(
        &span.attributes,
        |k| v.attribute(k),
        |keys, f| v.attributes_of(keys, f),
    );
    assert_eq!(v.attributes().count(), span.attributes.len());
    let res_attrs =
        t.0.as_ref()
            .map(|r| r.attributes.clone())
            .unwrap_or_default();
    check_attrs(|k| v.resource().attribute(k), &res_attrs);
    check_attrs_of(
        &res_attrs,
        |k| v.resource().attribute(k),
        |keys, f| v.resource().attributes_of(keys, f),
    );
    let svc = res_attrs
        .iter()
        .find(|a| a.key == "service.name")
        .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some(s.as_bytes().to_vec()),
            _ => None,
        });
    assert_eq!(v.resource().service_name().map(<[u8]>::to_vec), svc);
    let scope = t.2.clone().unwrap_or_default();
    assert_eq!(v.scope().name(), scope.name.as_bytes());
    assert_eq!(v.scope().version(), scope.version.as_bytes());
    check_attrs(|k| v.scope().attribute(k), &scope.attributes);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn split_partitions_like_the_oracle(req in request(), n in 1usize..6) {
        let input = encode(&req);
        let expected = triples(&input);
        let parts = split(&input, n, |s| route(s.trace_id(), n)).unwrap();
        prop_assert_eq!(parts.len(), n);
        let mut union = Vec::new();
        for (d, part) in parts.iter().enumerate() {
            for t in triples(part) {
                prop_assert_eq!(route(&t.4.trace_id, n), d);
                union.push(t);
            }
        }
        prop_assert_eq!(sorted(union), sorted(expected));
        // Byte for byte: every output span (with its unknown fields) is an input span.
        let mut in_spans: Vec<Bytes> = scan(&Bytes::from(input.clone())).unwrap().iter().map(|v| v.span_bytes()).collect();
        let mut out_spans: Vec<Bytes> = parts.iter().flat_map(|p| scan(p).unwrap()).map(|v| v.span_bytes()).collect();
        in_spans.sort();
        out_spans.sort();
        prop_assert_eq!(in_spans, out_spans);
        // Batching by concatenation: all parts appended decode to the same spans again.
        prop_assert_eq!(sorted(triples(&parts.concat())), sorted(triples(&input)));
    }

    #[test]
    fn views_read_what_prost_decodes(req in request()) {
        let input = Bytes::from(encode(&req));
        let expected = triples(&input);
        let views = scan(&input).unwrap();
        prop_assert_eq!(views.len(), expected.len());
        prop_assert_eq!(tailgate_proto::count_spans(&input).unwrap(), expected.len());
        for (v, t) in views.iter().zip(&expected) {
            check_view(v, t);
            prop_assert_eq!(v.buffer_len(), input.len());
            prop_assert_eq!(v.buffer_id(), input.as_ptr() as usize);
        }
    }

    #[test]
    fn reframe_and_detach_preserve_spans_and_headers(req in request(), keep in any::<u64>()) {
        let input = Bytes::from(encode(&req));
        let views = scan(&input).unwrap();
        let expected = triples(&input);
        // All views: the same triples in the same order (groups are regrouped as they were).
        let all = reframe(&views);
        prop_assert_eq!(triples(&all), expected.clone());
        // A subset, chosen by bits of `keep`.
        let pick = |i: usize| keep.rotate_left(i as u32) & 1 == 1;
        let subset: Vec<&SpanView> = views.iter().enumerate().filter(|(i, _)| pick(*i)).map(|(_, v)| v).collect();
        let want: Vec<Triple> = expected.iter().enumerate().filter(|(i, _)| pick(*i)).map(|(_, t)| t.clone()).collect();
        prop_assert_eq!(sorted(triples(&reframe(subset.iter().copied()))), sorted(want.clone()));
        // Detached and compacted views: same fields, small buffers, same re-framed content.
        let detached: Vec<SpanView> = subset.iter().map(|v| v.detach()).collect();
        let compacted = compact(&subset.iter().map(|v| (*v).clone()).collect::<Vec<_>>());
        for ((d, c), (v, t)) in detached.iter().zip(&compacted).zip(subset.iter().zip(&want)) {
            check_view(d, t);
            check_view(c, t);
            prop_assert_eq!(d.resource_header(), v.resource_header());
            prop_assert_eq!(c.scope_header(), v.scope_header());
            prop_assert!(d.buffer_len() == d.wire_len() + d.resource_header().len() + d.scope_header().len());
        }
        prop_assert_eq!(sorted(triples(&reframe(&detached))), sorted(want.clone()));
        prop_assert_eq!(sorted(triples(&reframe(&compacted))), sorted(want));
    }
}

#[test]
fn empty_and_zero_destinations() {
    assert!(split(&[], 3, |_| 0).unwrap().iter().all(|p| p.is_empty()));
    assert!(split(&[], 0, |_| 0).unwrap().is_empty());
    assert!(scan(&Bytes::new()).unwrap().is_empty());
    assert!(reframe(&[]).is_empty());
}
