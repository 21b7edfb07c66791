//! The one-scan evaluation of attribute policies (`policy::evaluate_policies`) gives the same
//! verdicts, in the same order, as evaluating each policy alone with its own attribute lookups,
//! for random traces and random policy lists (attribute policies also nested in `and`, `not`,
//! `drop` and `composite`), over both `TestSpan`s and real scanned `SpanView`s.
#![allow(clippy::unwrap_used, missing_docs)]

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use proptest::prelude::*;
use prost::Message;
use tailgate_proto::SpanView;
use tailgate_sampler::config::SamplerConfig;
use tailgate_sampler::policy::{
    evaluate_policies, order_drop_first, Decision, Evaluation, Policy, SliceSpans, TraceSummary,
    TraceView,
};
use tailgate_sampler::testing::{OwnedValue, TestSpan};
use tailgate_sampler::SpanData;

const KEYS: [&str; 3] = ["k1", "k2", "k.three"];

/// An attribute value of the model.
#[derive(Debug, Clone)]
enum Val {
    Str(&'static str),
    Int(i64),
    Bool(bool),
    Double(f64),
}

fn val() -> impl Strategy<Value = Val> {
    prop_oneof![
        prop::sample::select(vec!["", "a", "b", "ab"]).prop_map(Val::Str),
        prop::sample::select(vec![-1i64, 0, 5, 10, 600]).prop_map(Val::Int),
        any::<bool>().prop_map(Val::Bool),
        Just(Val::Double(5.0)),
    ]
}

type Attrs = Vec<(&'static str, Val)>;

fn attrs(max: usize) -> impl Strategy<Value = Attrs> {
    prop::collection::vec((prop::sample::select(KEYS.to_vec()), val()), 0..max)
}

/// A trace: resources and, per span, the index of its resource and its attributes; each span
/// arrives in its own request (`spread`) or all spans in one request.
#[derive(Debug, Clone)]
struct Model {
    resources: Vec<Attrs>,
    spans: Vec<(usize, Attrs)>,
    spread: bool,
}

fn model() -> impl Strategy<Value = Model> {
    (prop::collection::vec(attrs(4), 1..4), any::<bool>())
        .prop_flat_map(|(resources, spread)| {
            let n = resources.len();
            let spans = prop::collection::vec((0..n, attrs(5)), 0..6);
            (Just(resources), spans, Just(spread))
        })
        .prop_map(|(resources, spans, spread)| Model {
            resources,
            spans,
            spread,
        })
}

fn owned(v: &Val) -> OwnedValue {
    match v {
        Val::Str(s) => OwnedValue::Str((*s).to_string()),
        Val::Int(i) => OwnedValue::Int(*i),
        Val::Bool(b) => OwnedValue::Bool(*b),
        Val::Double(d) => OwnedValue::Double(*d),
    }
}

fn test_spans(m: &Model) -> Vec<TestSpan> {
    m.spans
        .iter()
        .enumerate()
        .map(|(i, (r, a))| {
            let mut s = TestSpan::new(7, i as u64 + 1, 0, 1);
            for (k, v) in &m.resources[*r] {
                s = s.resource_attr(k, owned(v));
            }
            for (k, v) in a {
                s = s.attr(k, owned(v));
            }
            s
        })
        .collect()
}

fn kv(k: &str, v: &Val) -> KeyValue {
    let value = match v {
        Val::Str(s) => any_value::Value::StringValue((*s).to_string()),
        Val::Int(i) => any_value::Value::IntValue(*i),
        Val::Bool(b) => any_value::Value::BoolValue(*b),
        Val::Double(d) => any_value::Value::DoubleValue(*d),
    };
    KeyValue {
        key: k.to_string(),
        value: Some(AnyValue { value: Some(value) }),
    }
}

/// The model's spans as scanned views, one request per span or one for all (one
/// `ResourceSpans` per span, so resources repeat byte for byte).
fn views(m: &Model) -> Vec<SpanView> {
    let resource_spans = |i: usize, (r, a): &(usize, Attrs)| ResourceSpans {
        resource: Some(Resource {
            attributes: m.resources[*r].iter().map(|(k, v)| kv(k, v)).collect(),
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans: vec![Span {
                trace_id: vec![7; 16],
                span_id: (i as u64 + 1).to_be_bytes().to_vec(),
                attributes: a.iter().map(|(k, v)| kv(k, v)).collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let scan = |rs: Vec<ResourceSpans>| {
        let req = ExportTraceServiceRequest { resource_spans: rs };
        tailgate_proto::scan(&Bytes::from(req.encode_to_vec())).unwrap()
    };
    let all: Vec<ResourceSpans> = m
        .spans
        .iter()
        .enumerate()
        .map(|(i, s)| resource_spans(i, s))
        .collect();
    if m.spread {
        all.into_iter().flat_map(|rs| scan(vec![rs])).collect()
    } else {
        scan(all)
    }
}

/// An attribute policy in YAML flow syntax.
fn attribute_policy() -> impl Strategy<Value = String> {
    let key = prop::sample::select(KEYS.to_vec());
    (key, 0..4u8, any::<bool>(), any::<bool>()).prop_map(|(key, kind, flag, invert)| {
        match kind {
            0 => format!(
                "{{name: s, type: string_attribute, string_attribute: {{key: {key}, values: [a, ''], invert_match: {invert}}}}}"
            ),
            1 => format!(
                "{{name: r, type: string_attribute, string_attribute: {{key: {key}, values: ['^a', 'b$', '^$'], enabled_regex_matching: true, invert_match: {invert}}}}}"
            ),
            2 => format!(
                "{{name: n, type: numeric_attribute, numeric_attribute: {{key: {key}, min_value: 0, max_value: 10, invert_match: {invert}}}}}"
            ),
            _ => format!(
                "{{name: b, type: boolean_attribute, boolean_attribute: {{key: {key}, value: {flag}, invert_match: {invert}}}}}"
            ),
        }
    })
}

/// A leaf policy: mostly attribute policies, some others.
fn leaf() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => attribute_policy(),
        1 => Just("{name: all, type: always_sample}".to_string()),
        1 => Just("{name: err, type: status_code, status_code: {status_codes: [ERROR]}}".to_string()),
    ]
}

/// A top-level policy: a leaf, or attribute policies nested in and / not / drop / composite.
fn top_policy() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => leaf(),
        1 => prop::collection::vec(leaf(), 1..3)
            .prop_map(|s| format!("{{name: and, type: and, and: {{and_sub_policy: [{}]}}}}", s.join(", "))),
        1 => leaf().prop_map(|s| format!("{{name: not, type: not, not: {{not_sub_policy: {s}}}}}")),
        1 => prop::collection::vec(leaf(), 1..3)
            .prop_map(|s| format!("{{name: drop, type: drop, drop: {{drop_sub_policy: [{}]}}}}", s.join(", "))),
        1 => (leaf(), leaf()).prop_map(|(a, b)| {
            let rename = |s: &str, n: &str| format!("{{name: {n}{}", &s[s.find(',').unwrap()..]);
            format!(
                "{{name: comp, type: composite, composite: {{max_total_spans_per_second: 1000, policy_order: [XX, YY], composite_sub_policy: [{}, {}], rate_allocation: [{{policy: XX, percent: 50}}, {{policy: YY, percent: 50}}]}}}}",
                rename(&a, "XX"),
                rename(&b, "YY")
            )
        }),
    ]
}

/// Makes the policy names unique (the config rejects duplicates): a composite's sub-policies
/// become `x<i>` / `y<i>` for the `i`th top-level policy, every other name gets a `_<n>` suffix.
fn unique_names(yaml: &[String]) -> String {
    let mut n = 0;
    let mut out = Vec::new();
    for (i, p) in yaml.iter().enumerate() {
        let p = p
            .replace("XX", &format!("x{i}"))
            .replace("YY", &format!("y{i}"));
        let mut parts = p.split("{name: ");
        let mut renamed = parts.next().unwrap_or_default().to_string();
        for part in parts {
            let end = part.find(',').unwrap();
            let (name, rest) = part.split_at(end);
            renamed.push_str("{name: ");
            renamed.push_str(name);
            if !name.starts_with(['x', 'y']) {
                renamed.push_str(&format!("_{n}"));
                n += 1;
            }
            renamed.push_str(rest);
        }
        out.push(renamed);
    }
    format!("policies: [{}]", out.join(", "))
}

fn policies(yaml: &[String]) -> Vec<Policy> {
    let text = unique_names(yaml);
    let (cfg, _) = SamplerConfig::from_yaml_str(&text).unwrap();
    let mut out: Vec<Policy> = cfg.policies.iter().map(Policy::build).collect();
    order_drop_first(&mut out);
    out
}

/// Each policy evaluated alone (its own attribute lookups), as the engine did before the scan.
fn one_by_one<S: SpanData>(
    policies: &mut [Policy],
    view: &TraceView<'_, S>,
    first_match: bool,
) -> (Evaluation, Vec<(usize, Decision)>) {
    let mut out = Evaluation::default();
    let mut calls = Vec::new();
    for (i, p) in policies.iter_mut().enumerate() {
        let d = p.evaluate(view, 0);
        calls.push((i, d));
        out.seen.insert(d);
        if matches!(
            d,
            Decision::Sampled | Decision::InvertSampled | Decision::Dropped
        ) {
            out.matched |= 1 << i;
        }
        out.first[d as usize].get_or_insert(i as u16);
        if d == Decision::Dropped || (first_match && d == Decision::Sampled) {
            break;
        }
    }
    (out, calls)
}

fn check<S: SpanData>(spans: &[S], yaml: &[String], first_match: bool) {
    let mut summary = TraceSummary::default();
    spans.iter().for_each(|s| summary.add(s));
    let view = TraceView {
        trace_id: [7; 16],
        summary: &summary,
        spans: &SliceSpans(spans),
    };
    let want = one_by_one(&mut policies(yaml), &view, first_match);
    let mut calls = Vec::new();
    let got = evaluate_policies(&mut policies(yaml), &view, 0, first_match, |i, d| {
        calls.push((i, d))
    });
    assert_eq!((got, calls), want, "policies {yaml:#?}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn one_scan_matches_one_by_one(
        m in model(),
        yaml in prop::collection::vec(top_policy(), 1..5),
        first_match in any::<bool>(),
    ) {
        check(&test_spans(&m), &yaml, first_match);
        check(&views(&m), &yaml, first_match);
    }
}

/// A nested attribute policy is answered by the scan too: the first attribute with the key wins,
/// in spans and in resources, and a resource seen again is not needed to answer.
#[test]
fn nested_policies_and_first_attribute_wins() {
    let m = Model {
        resources: vec![vec![("k1", Val::Int(600)), ("k1", Val::Int(5))]],
        spans: vec![
            (0, vec![("k2", Val::Str("")), ("k2", Val::Str("a"))]),
            (0, vec![("k.three", Val::Bool(true))]),
        ],
        spread: true,
    };
    let yaml: Vec<String> = vec![
        "{name: and, type: and, and: {and_sub_policy: [{name: n, type: numeric_attribute, numeric_attribute: {key: k1, min_value: 0, max_value: 10}}]}}".into(),
        "{name: not, type: not, not: {not_sub_policy: {name: s, type: string_attribute, string_attribute: {key: k2, values: [a]}}}}".into(),
        "{name: b, type: boolean_attribute, boolean_attribute: {key: k.three, value: true, invert_match: true}}".into(),
    ];
    for first_match in [false, true] {
        check(&test_spans(&m), &yaml, first_match);
        check(&views(&m), &yaml, first_match);
    }
    let views = views(&m);
    let mut summary = TraceSummary::default();
    views.iter().for_each(|s| summary.add(s));
    let view = TraceView {
        trace_id: [7; 16],
        summary: &summary,
        spans: &SliceSpans(&views),
    };
    let got = evaluate_policies(&mut policies(&yaml), &view, 0, false, |_, _| {});
    // k1's first resource value is 600 (out of range), k2's first span value is "" (never
    // matches), k.three matches and is inverted.
    assert!(got.seen.has(Decision::NotSampled));
    assert!(got.seen.has(Decision::Sampled), "not(no match) samples");
    assert!(got.seen.has(Decision::InvertNotSampled));
    assert_eq!(got.matched, 0b010);
}
