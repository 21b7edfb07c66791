//! Property tests of the streaming OTLP/JSON decoder (`json::json_to_protobuf`), with
//! opentelemetry-proto's serde support and prost as the oracle, and against the value-tree decoder
//! it replaced (`fuzzing::value_tree_json_to_protobuf`).
//!
//! Random requests are serialized to JSON by opentelemetry-proto, optionally respelled (proto key
//! names, enum names, numbers for 64-bit integers, `0x` ids, unknown keys, pretty printing) or
//! mutated at one node, decoded, and the protobuf decoded again with prost.
#![allow(clippy::unwrap_used)]

mod strategies;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, EntityRef, KeyValue};
use proptest::prelude::*;
use prost::Message;
use serde_json::{json, Value as Json};
use tailgate_proto::error::JsonErrorKind;
use tailgate_proto::fuzzing;
use tailgate_proto::json::json_to_protobuf;

use strategies::request;

// === requests the oracle can serialize ===

/// Makes `kvs` serializable and decodable by opentelemetry-proto's serde: an `AnyValue` without a
/// value serializes as `{}`, which its deserializer refuses, and JSON has no infinities.
fn jsonable(kvs: &mut [KeyValue]) {
    for kv in kvs {
        if let Some(v) = kv.value.as_mut() {
            jsonable_value(v);
        }
    }
}

fn jsonable_value(v: &mut AnyValue) {
    match &mut v.value {
        None => v.value = Some(Value::StringValue(String::new())),
        Some(Value::DoubleValue(d)) if !d.is_finite() => *d = 0.0,
        Some(Value::ArrayValue(a)) => a.values.iter_mut().for_each(jsonable_value),
        Some(Value::KvlistValue(l)) => jsonable(&mut l.values),
        Some(_) => {}
    }
}

/// The request with every field the strategies leave at zero set from `extra`'s bits (dropped
/// counts, entity refs, link trace state), and made serializable.
fn decorate(mut req: ExportTraceServiceRequest, extra: u32) -> ExportTraceServiceRequest {
    let bits = |shift: u32, mask: u32| (extra >> shift) & mask;
    for rs in &mut req.resource_spans {
        if let Some(r) = rs.resource.as_mut() {
            r.dropped_attributes_count = bits(0, 3);
            if bits(2, 1) == 1 {
                r.entity_refs.push(EntityRef {
                    schema_url: "https://opentelemetry.io/schemas/1.26.0".into(),
                    r#type: "service".into(),
                    id_keys: vec!["service.name".into(), String::new()],
                    description_keys: Vec::new(),
                });
            }
            jsonable(&mut r.attributes);
        }
        for ss in &mut rs.scope_spans {
            if let Some(s) = ss.scope.as_mut() {
                s.dropped_attributes_count = bits(3, 1);
                jsonable(&mut s.attributes);
            }
            for span in &mut ss.spans {
                span.dropped_attributes_count = bits(4, 7);
                span.dropped_events_count = bits(7, 1);
                span.dropped_links_count = bits(8, 1) * 1000;
                jsonable(&mut span.attributes);
                for e in &mut span.events {
                    e.dropped_attributes_count = bits(9, 1);
                    jsonable(&mut e.attributes);
                }
                for l in &mut span.links {
                    l.dropped_attributes_count = bits(10, 1);
                    if bits(11, 1) == 1 {
                        l.trace_state = "a=b".into();
                    }
                    jsonable(&mut l.attributes);
                }
            }
        }
    }
    req
}

fn decode(pb: &[u8]) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest::decode(pb).unwrap()
}

// === respellings the OTLP/JSON rules allow ===

/// Which respellings to apply.
#[derive(Debug, Clone, Copy)]
struct Respell {
    proto_names: bool,
    enum_names: bool,
    numbers: bool,
    ids: bool,
    unknown: bool,
}

const SPAN_KINDS: [&str; 6] = [
    "SPAN_KIND_UNSPECIFIED",
    "SPAN_KIND_INTERNAL",
    "SPAN_KIND_SERVER",
    "SPAN_KIND_CLIENT",
    "SPAN_KIND_PRODUCER",
    "SPAN_KIND_CONSUMER",
];
const STATUS_CODES: [&str; 3] = ["STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"];

fn snake(key: &str) -> String {
    let mut out = String::new();
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Rewrites a serialized request in place with the chosen respellings.
fn respell(v: &mut Json, r: Respell) {
    match v {
        Json::Array(items) => items.iter_mut().for_each(|i| respell(i, r)),
        Json::Object(map) => {
            let entries = std::mem::take(map);
            for (key, mut value) in entries {
                respell_value(&key, &mut value, r);
                respell(&mut value, r);
                let key = if r.proto_names { snake(&key) } else { key };
                map.insert(key, value);
            }
            if r.unknown {
                map.insert(
                    "someFutureField".into(),
                    json!({"a": [1, -2.5, null, true, "x", {"spans": "not these"}]}),
                );
            }
        }
        _ => {}
    }
}

fn respell_value(key: &str, value: &mut Json, r: Respell) {
    let as_number = |s: &str| s.parse::<i128>().ok().map(|n| json!(n));
    match (key, &*value) {
        ("kind", Json::Number(n)) if r.enum_names => {
            if let Some(name) = n.as_u64().and_then(|i| SPAN_KINDS.get(i as usize)) {
                *value = json!(name);
            }
        }
        ("code", Json::Number(n)) if r.enum_names => {
            if let Some(name) = n.as_u64().and_then(|i| STATUS_CODES.get(i as usize)) {
                *value = json!(name);
            }
        }
        (
            "startTimeUnixNano" | "endTimeUnixNano" | "timeUnixNano" | "intValue",
            Json::String(s),
        ) if r.numbers => {
            if let Some(n) = as_number(s) {
                *value = n;
            }
        }
        ("traceId" | "spanId" | "parentSpanId", Json::String(s)) if r.ids && !s.is_empty() => {
            *value = json!(format!("0x{}", s.to_ascii_uppercase()));
        }
        _ => {}
    }
}

// === mutations ===

/// Values a mutation puts in place of one node of the JSON tree.
fn replacements() -> Vec<Option<Json>> {
    vec![
        None, // remove the key (or array element)
        Some(json!(null)),
        Some(json!(true)),
        Some(json!(0)),
        Some(json!(1)),
        Some(json!(-1)),
        Some(json!(1.5)),
        Some(json!(1e300)),
        Some(json!(u64::MAX)),
        Some(json!(i64::MIN)),
        Some(json!(2147483648u64)),
        Some(json!("")),
        Some(json!("x")),
        Some(json!("12")),
        Some(json!("-7")),
        Some(json!("0x")),
        Some(json!("zz")),
        Some(json!("AQID")),
        Some(json!("AQI")),
        Some(json!([])),
        Some(json!([{}])),
        Some(json!(["a", 1])),
        Some(json!({})),
        Some(json!({"stringValue": "a"})),
        Some(json!({"intValue": "1", "stringValue": "b"})),
        Some(json!({"values": []})),
        Some(json!({"key": "k"})),
        Some(json!({"unknown": [1, {"a": null}]})),
    ]
}

/// Replaces (or removes) the `n`-th node of `v` in pre-order; the root is node 0 and is never
/// removed. Returns whether the node was found.
fn mutate(v: &mut Json, n: &mut usize, with: &Option<Json>) -> bool {
    if *n == 0 {
        if let Some(w) = with {
            *v = w.clone();
        }
        return true;
    }
    *n -= 1;
    match v {
        Json::Array(items) => {
            for i in 0..items.len() {
                if *n == 0 && with.is_none() {
                    items.remove(i);
                    return true;
                }
                if mutate(&mut items[i], n, with) {
                    return true;
                }
            }
        }
        Json::Object(map) => {
            let keys: Vec<String> = map.keys().cloned().collect();
            for k in keys {
                if *n == 0 && with.is_none() {
                    map.remove(&k);
                    return true;
                }
                if mutate(map.get_mut(&k).unwrap(), n, with) {
                    return true;
                }
            }
        }
        _ => {}
    }
    false
}

fn count_nodes(v: &Json) -> usize {
    1 + match v {
        Json::Array(items) => items.iter().map(count_nodes).sum(),
        Json::Object(map) => map.values().map(count_nodes).sum(),
        _ => 0,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn json_decodes_to_the_request_it_was_serialized_from(req in request(), extra in any::<u32>()) {
        let msg = decorate(req.message(), extra);
        let json = serde_json::to_vec(&msg).unwrap();
        let pb = json_to_protobuf(&json).unwrap();
        prop_assert_eq!(decode(&pb), msg.clone());
        // The oracle agrees with itself: the old decoder read the same text to the same request.
        prop_assert_eq!(fuzzing::value_tree_json_to_protobuf(&json).unwrap(), msg.encode_to_vec());
        fuzzing::json(&json);
    }

    #[test]
    fn every_spelling_the_rules_allow_decodes_alike(
        req in request(),
        extra in any::<u32>(),
        flags in any::<[bool; 6]>(),
    ) {
        let msg = decorate(req.message(), extra);
        let mut tree = serde_json::to_value(&msg).unwrap();
        let r = Respell {
            proto_names: flags[0],
            enum_names: flags[1],
            numbers: flags[2],
            ids: flags[3],
            unknown: flags[4],
        };
        respell(&mut tree, r);
        let text = if flags[5] {
            serde_json::to_vec_pretty(&tree).unwrap()
        } else {
            serde_json::to_vec(&tree).unwrap()
        };
        let pb = json_to_protobuf(&text).unwrap();
        prop_assert_eq!(decode(&pb), msg);
        fuzzing::json(&text);
    }

    /// One node replaced or removed: the decoder refuses it, or decodes it as the value-tree
    /// decoder did (`fuzzing::json` asserts that), and never accepts what the old one refused.
    #[test]
    fn a_mutated_request_is_refused_or_decoded_like_before(
        req in request(),
        extra in any::<u32>(),
        at in any::<prop::sample::Index>(),
        with in 0..28usize,
    ) {
        let msg = decorate(req.message(), extra);
        let mut tree = serde_json::to_value(&msg).unwrap();
        let mut n = at.index(count_nodes(&tree));
        let with = &replacements()[with];
        prop_assert!(mutate(&mut tree, &mut n, with));
        let text = serde_json::to_vec(&tree).unwrap();
        fuzzing::json(&text);
        if fuzzing::value_tree_json_to_protobuf(&text).is_err() {
            let err = json_to_protobuf(&text).unwrap_err();
            prop_assert_eq!(err.kind, JsonErrorKind::Syntax);
        }
    }
}
