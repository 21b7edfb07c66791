//! One test group per policy, covering the edge cases the collector's own tests cover.
#![allow(clippy::unwrap_used, missing_docs)]

use tailgate_sampler::config::SamplerConfig;
use tailgate_sampler::policy::{
    decide_whole_trace, Decision, Policy, SliceSpans, TraceSummary, TraceView,
};
use tailgate_sampler::testing::{OwnedValue, TestSpan};
use tailgate_sampler::{FinalDecision, SpanKind, StatusCode};

const MS: u64 = 1_000_000;

/// Builds the first policy of a one-policy config written in YAML flow syntax.
fn policy(yaml: &str) -> Policy {
    let (cfg, _) = SamplerConfig::from_yaml_str(&format!("policies: [{yaml}]")).unwrap();
    Policy::build(&cfg.policies[0])
}

fn eval_at(p: &mut Policy, spans: &[TestSpan], now: u64) -> Decision {
    let mut summary = TraceSummary::default();
    spans.iter().for_each(|s| summary.add(s));
    let view = TraceView {
        trace_id: spans.first().map(|s| s.trace_id).unwrap_or_default(),
        summary: &summary,
        spans: &SliceSpans(spans),
    };
    p.evaluate(&view, now)
}

fn eval(p: &mut Policy, spans: &[TestSpan]) -> Decision {
    eval_at(p, spans, 0)
}

fn span() -> TestSpan {
    TestSpan::new(1, 1, 0, MS)
}

#[test]
fn always_sample() {
    assert_eq!(
        eval(&mut policy("{name: p, type: always_sample}"), &[span()]),
        Decision::Sampled
    );
}

#[test]
fn latency_uses_earliest_start_and_latest_end() {
    let mut p = policy("{name: p, type: latency, latency: {threshold_ms: 5000}}");
    // Two short spans far apart make a long trace.
    let a = TestSpan::new(1, 1, 0, 10 * MS);
    let b = TestSpan::new(1, 2, 4_990 * MS, 5_000 * MS);
    assert_eq!(eval(&mut p, std::slice::from_ref(&a)), Decision::NotSampled);
    assert_eq!(
        eval(&mut p, &[a.clone(), b.clone()]),
        Decision::Sampled,
        "exactly the threshold samples"
    );
    let c = TestSpan::new(1, 3, 0, 4_999 * MS);
    assert_eq!(eval(&mut p, &[c]), Decision::NotSampled);
    assert_eq!(eval(&mut p, &[]), Decision::NotSampled);
}

#[test]
fn latency_with_upper_bound_is_inclusive() {
    let mut p =
        policy("{name: p, type: latency, latency: {threshold_ms: 1000, upper_threshold_ms: 2000}}");
    let t = |ms: u64| vec![TestSpan::new(1, 1, 0, ms * MS)];
    assert_eq!(eval(&mut p, &t(999)), Decision::NotSampled);
    assert_eq!(eval(&mut p, &t(1000)), Decision::Sampled);
    assert_eq!(eval(&mut p, &t(2000)), Decision::Sampled);
    assert_eq!(eval(&mut p, &t(2001)), Decision::NotSampled);
}

#[test]
fn numeric_attribute_span_and_resource_ranges() {
    let mut p = policy("{name: p, type: numeric_attribute, numeric_attribute: {key: example, min_value: 100, max_value: 200}}");
    let with = |v: i64| vec![span().attr("example", OwnedValue::Int(v))];
    assert_eq!(eval(&mut p, &with(100)), Decision::Sampled);
    assert_eq!(eval(&mut p, &with(150)), Decision::Sampled);
    assert_eq!(eval(&mut p, &with(200)), Decision::Sampled);
    assert_eq!(eval(&mut p, &with(99)), Decision::NotSampled);
    assert_eq!(eval(&mut p, &with(201)), Decision::NotSampled);
    assert_eq!(eval(&mut p, &[span()]), Decision::NotSampled);
    let res = span().resource_attr("example", OwnedValue::Int(150));
    assert_eq!(eval(&mut p, &[res]), Decision::Sampled);
    // A string attribute reads as 0 (pcommon Value.Int()).
    assert_eq!(
        eval(
            &mut p,
            &[span().attr("example", OwnedValue::Str("150".into()))]
        ),
        Decision::NotSampled
    );
}

#[test]
fn numeric_attribute_open_bounds_and_inversion() {
    let mut min_only =
        policy("{name: p, type: numeric_attribute, numeric_attribute: {key: k, min_value: 50}}");
    assert_eq!(
        eval(
            &mut min_only,
            &[span().attr("k", OwnedValue::Int(i64::MAX))]
        ),
        Decision::Sampled
    );
    let mut max_only =
        policy("{name: p, type: numeric_attribute, numeric_attribute: {key: k, max_value: 50}}");
    assert_eq!(
        eval(
            &mut max_only,
            &[span().attr("k", OwnedValue::Int(i64::MIN))]
        ),
        Decision::Sampled
    );
    let mut inv = policy("{name: p, type: numeric_attribute, numeric_attribute: {key: k, min_value: 1, max_value: 10, invert_match: true}}");
    assert_eq!(
        eval(&mut inv, &[span().attr("k", OwnedValue::Int(5))]),
        Decision::InvertNotSampled
    );
    assert_eq!(
        eval(&mut inv, &[span().attr("k", OwnedValue::Int(50))]),
        Decision::InvertSampled
    );
    assert_eq!(
        eval(&mut inv, &[span()]),
        Decision::InvertSampled,
        "missing key samples when inverted"
    );
}

#[test]
fn status_code_any_span() {
    let mut p = policy("{name: p, type: status_code, status_code: {status_codes: [ERROR]}}");
    assert_eq!(
        eval(&mut p, &[span(), span().status(StatusCode::Error)]),
        Decision::Sampled
    );
    assert_eq!(
        eval(&mut p, &[span().status(StatusCode::Ok)]),
        Decision::NotSampled
    );
    let mut unset =
        policy("{name: p, type: status_code, status_code: {status_codes: [OK, UNSET]}}");
    assert_eq!(eval(&mut unset, &[span()]), Decision::Sampled);
}

#[test]
fn string_attribute_exact_regex_and_inverted() {
    let mut exact = policy(
        "{name: p, type: string_attribute, string_attribute: {key: example, values: [value, '']}}",
    );
    assert_eq!(
        eval(
            &mut exact,
            &[span().attr("example", OwnedValue::Str("value".into()))]
        ),
        Decision::Sampled
    );
    assert_eq!(
        eval(
            &mut exact,
            &[span().attr("example", OwnedValue::Str("valuex".into()))]
        ),
        Decision::NotSampled
    );
    assert_eq!(
        eval(
            &mut exact,
            &[span().attr("example", OwnedValue::Str("".into()))]
        ),
        Decision::NotSampled,
        "empty values never match"
    );
    assert_eq!(
        eval(
            &mut exact,
            &[span().resource_attr("example", OwnedValue::Str("value".into()))]
        ),
        Decision::Sampled
    );
    assert_eq!(
        eval(&mut exact, &[span().attr("example", OwnedValue::Int(1))]),
        Decision::NotSampled
    );

    let mut re = policy("{name: p, type: string_attribute, string_attribute: {key: url.path, values: ['^/health', 'metr'], enabled_regex_matching: true}}");
    assert_eq!(
        eval(
            &mut re,
            &[span().attr("url.path", OwnedValue::Str("/healthz".into()))]
        ),
        Decision::Sampled
    );
    assert_eq!(
        eval(
            &mut re,
            &[span().attr("url.path", OwnedValue::Str("/x/metrics".into()))]
        ),
        Decision::Sampled,
        "unanchored like Go"
    );
    assert_eq!(
        eval(
            &mut re,
            &[span().attr("url.path", OwnedValue::Str("/api".into()))]
        ),
        Decision::NotSampled
    );

    let mut inv = policy("{name: p, type: string_attribute, string_attribute: {key: team, values: [team_a], invert_match: true}}");
    assert_eq!(
        eval(
            &mut inv,
            &[span().attr("team", OwnedValue::Str("team_a".into()))]
        ),
        Decision::InvertNotSampled
    );
    assert_eq!(
        eval(
            &mut inv,
            &[span().attr("team", OwnedValue::Str("team_b".into()))]
        ),
        Decision::InvertSampled
    );
    assert_eq!(eval(&mut inv, &[span()]), Decision::InvertSampled);
}

#[test]
fn rate_limiting_per_second_strictly_below() {
    let mut p = policy("{name: p, type: rate_limiting, rate_limiting: {spans_per_second: 3}}");
    let two = vec![span(), span()];
    let sec = 1_000_000_000;
    assert_eq!(eval_at(&mut p, &two, 10 * sec), Decision::Sampled);
    // 2 + 1 = 3 is not < 3.
    assert_eq!(
        eval_at(&mut p, &[span()], 10 * sec + 1),
        Decision::NotSampled
    );
    assert_eq!(
        eval_at(&mut p, &two, 11 * sec),
        Decision::Sampled,
        "a new second resets"
    );
}

#[test]
fn bytes_limiting_token_bucket() {
    let mut p = policy("{name: p, type: bytes_limiting, bytes_limiting: {bytes_per_second: 450, burst_capacity: 900}}");
    let four = vec![span(), span(), span(), span()]; // 4 × 225 = 900 bytes
    let sec = 1_000_000_000;
    assert_eq!(
        eval_at(&mut p, &four, 0),
        Decision::Sampled,
        "starts with a full burst"
    );
    assert_eq!(eval_at(&mut p, &[span()], 0), Decision::NotSampled);
    assert_eq!(
        eval_at(&mut p, &[span(), span()], sec),
        Decision::Sampled,
        "refilled 450 bytes in 1s"
    );
    let mut small =
        policy("{name: p, type: bytes_limiting, bytes_limiting: {bytes_per_second: 100}}");
    assert_eq!(
        eval_at(&mut small, &[span()], 0),
        Decision::NotSampled,
        "bigger than the default 2× burst"
    );
}

#[test]
fn span_count_inclusive_and_open_max() {
    let mut p = policy("{name: p, type: span_count, span_count: {min_spans: 2, max_spans: 3}}");
    let n = |k: usize| vec![span(); k];
    assert_eq!(eval(&mut p, &n(1)), Decision::NotSampled);
    assert_eq!(eval(&mut p, &n(2)), Decision::Sampled);
    assert_eq!(eval(&mut p, &n(3)), Decision::Sampled);
    assert_eq!(eval(&mut p, &n(4)), Decision::NotSampled);
    let mut open = policy("{name: p, type: span_count, span_count: {min_spans: 2}}");
    assert_eq!(eval(&mut open, &n(1000)), Decision::Sampled);
}

#[test]
fn trace_state_key_values() {
    let mut p =
        policy("{name: p, type: trace_state, trace_state: {key: example, values: [value]}}");
    let with = |ts: &str| {
        let mut s = span();
        s.trace_state = ts.to_string();
        vec![s]
    };
    assert_eq!(eval(&mut p, &with("example=value")), Decision::Sampled);
    assert_eq!(
        eval(&mut p, &with("other=1,example=value")),
        Decision::Sampled
    );
    assert_eq!(eval(&mut p, &with("example=other")), Decision::NotSampled);
    assert_eq!(eval(&mut p, &with("")), Decision::NotSampled);
    assert_eq!(
        eval(&mut p, &with("example=value,bad key=1")),
        Decision::NotSampled,
        "invalid tracestate"
    );
}

#[test]
fn boolean_attribute_and_inverted() {
    let mut p =
        policy("{name: p, type: boolean_attribute, boolean_attribute: {key: flag, value: true}}");
    assert_eq!(
        eval(&mut p, &[span().attr("flag", OwnedValue::Bool(true))]),
        Decision::Sampled
    );
    assert_eq!(
        eval(&mut p, &[span().attr("flag", OwnedValue::Bool(false))]),
        Decision::NotSampled
    );
    assert_eq!(
        eval(
            &mut p,
            &[span().resource_attr("flag", OwnedValue::Bool(true))]
        ),
        Decision::Sampled
    );
    let mut f =
        policy("{name: p, type: boolean_attribute, boolean_attribute: {key: flag, value: false}}");
    // Non-bool values read as false (pcommon Value.Bool()).
    assert_eq!(
        eval(&mut f, &[span().attr("flag", OwnedValue::Str("x".into()))]),
        Decision::Sampled
    );
    let mut inv = policy("{name: p, type: boolean_attribute, boolean_attribute: {key: flag, value: true, invert_match: true}}");
    assert_eq!(
        eval(&mut inv, &[span().attr("flag", OwnedValue::Bool(true))]),
        Decision::InvertNotSampled
    );
    assert_eq!(eval(&mut inv, &[span()]), Decision::InvertSampled);
}

#[test]
fn trace_flags_sampled_bit() {
    let mut p = policy("{name: p, type: trace_flags}");
    let mut s = span();
    assert_eq!(eval(&mut p, std::slice::from_ref(&s)), Decision::NotSampled);
    s.flags = 0x101;
    assert_eq!(eval(&mut p, &[span(), s]), Decision::Sampled);
}

#[test]
fn ottl_subset() {
    let mut p = policy(
        r#"{name: p, type: ottl_condition, ottl_condition: {span: ['attributes["k"] == "v" and kind == SPAN_KIND_SERVER', 'resource.attributes["n"] > 10', 'span.status.code == STATUS_CODE_ERROR or not (name != "x")']}}"#,
    );
    let mut server = span().attr("k", OwnedValue::Str("v".into()));
    assert_eq!(
        eval(&mut p, std::slice::from_ref(&server)),
        Decision::NotSampled,
        "internal span"
    );
    server.kind = SpanKind::Server;
    assert_eq!(eval(&mut p, &[server]), Decision::Sampled);
    assert_eq!(
        eval(
            &mut p,
            &[span().resource_attr("n", OwnedValue::Double(10.5))]
        ),
        Decision::Sampled
    );
    assert_eq!(
        eval(
            &mut p,
            &[span().resource_attr("n", OwnedValue::Str("11".into()))]
        ),
        Decision::NotSampled,
        "types differ"
    );
    assert_eq!(
        eval(&mut p, &[span().status(StatusCode::Error)]),
        Decision::Sampled
    );
    let mut named = span();
    named.name = "x".into();
    assert_eq!(eval(&mut p, &[named]), Decision::Sampled);
    let mut nil = policy(
        r#"{name: p, type: ottl_condition, ottl_condition: {span: ['attributes["missing"] == nil']}}"#,
    );
    assert_eq!(eval(&mut nil, &[span()]), Decision::Sampled);
}

#[test]
fn ottl_converters_arithmetic_and_ids() {
    let mut p = policy(
        r#"{name: p, type: ottl_condition, ottl_condition: {span: ['IsMatch(attributes["http.route"], "^/api/") and end_time_unix_nano - start_time_unix_nano > 1000000', 'SHA256(name) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"', 'span_id.string == "0000000000000007"']}}"#,
    );
    let api =
        |end: u64| TestSpan::new(1, 1, 0, end).attr("http.route", OwnedValue::Str("/api/x".into()));
    assert_eq!(
        eval(&mut p, &[api(MS)]),
        Decision::NotSampled,
        "exactly 1 ms"
    );
    assert_eq!(eval(&mut p, &[api(MS + 1)]), Decision::Sampled);
    let mut abc = span();
    abc.name = "abc".into();
    assert_eq!(eval(&mut p, &[abc]), Decision::Sampled);
    assert_eq!(
        eval(&mut p, &[TestSpan::new(1, 7, 0, MS)]),
        Decision::Sampled
    );
}

#[test]
fn ottl_error_mode() {
    // `name + 1` is a type error on every span; the second condition matches.
    let conds =
        r#"span: ['name + 1 > 0', 'kind == SPAN_KIND_INTERNAL or kind == SPAN_KIND_UNSPECIFIED']"#;
    let mut ignore = policy(&format!(
        "{{name: p, type: ottl_condition, ottl_condition: {{error_mode: ignore, {conds}}}}}"
    ));
    assert_eq!(eval(&mut ignore, &[span()]), Decision::Sampled);
    let mut propagate = policy(&format!(
        "{{name: p, type: ottl_condition, ottl_condition: {{error_mode: propagate, {conds}}}}}"
    ));
    assert_eq!(eval(&mut propagate, &[span()]), Decision::NotSampled);
}

#[test]
fn and_not_drop() {
    let mut and = policy("{name: p, type: and, and: {and_sub_policy: [{name: a, type: status_code, status_code: {status_codes: [ERROR]}}, {name: b, type: string_attribute, string_attribute: {key: k, values: [v], invert_match: true}}]}}");
    let err = span().status(StatusCode::Error);
    assert_eq!(
        eval(&mut and, std::slice::from_ref(&err)),
        Decision::Sampled,
        "InvertSampled counts as sampled inside and"
    );
    let err_v = err.clone().attr("k", OwnedValue::Str("v".into()));
    assert_eq!(
        eval(&mut and, &[err_v]),
        Decision::NotSampled,
        "InvertNotSampled becomes NotSampled"
    );
    assert_eq!(eval(&mut and, &[span()]), Decision::NotSampled);

    let mut not = policy("{name: p, type: not, not: {not_sub_policy: {name: a, type: status_code, status_code: {status_codes: [ERROR]}}}}");
    assert_eq!(
        eval(&mut not, std::slice::from_ref(&err)),
        Decision::NotSampled
    );
    assert_eq!(eval(&mut not, &[span()]), Decision::Sampled);

    let mut drop = policy("{name: p, type: drop, drop: {drop_sub_policy: [{name: a, type: string_attribute, string_attribute: {key: url.path, values: [/health]}}]}}");
    assert_eq!(
        eval(
            &mut drop,
            &[span().attr("url.path", OwnedValue::Str("/health".into()))]
        ),
        Decision::Dropped
    );
    assert_eq!(eval(&mut drop, &[span()]), Decision::NotSampled);
}

#[test]
fn composite_allocations() {
    let mut p = policy("{name: c, type: composite, composite: {max_total_spans_per_second: 4, policy_order: [a, b], composite_sub_policy: [{name: a, type: status_code, status_code: {status_codes: [ERROR]}}, {name: b, type: always_sample}], rate_allocation: [{policy: a, percent: 50}, {policy: b, percent: 50}]}}");
    let sec = 1_000_000_000;
    let err2 = vec![span().status(StatusCode::Error), span()];
    assert_eq!(
        eval_at(&mut p, &err2, sec),
        Decision::Sampled,
        "a has 2 sps"
    );
    assert_eq!(
        eval_at(&mut p, &err2, sec),
        Decision::NotSampled,
        "a is full; first matching sub decides"
    );
    assert_eq!(
        eval_at(&mut p, &[span(), span()], sec),
        Decision::Sampled,
        "b has its own 2 sps"
    );
    assert_eq!(eval_at(&mut p, &[span()], sec), Decision::NotSampled);
    assert_eq!(
        eval_at(&mut p, &err2, 2 * sec),
        Decision::Sampled,
        "new second"
    );

    let mut unallocated = policy("{name: c, type: composite, composite: {max_total_spans_per_second: 100, composite_sub_policy: [{name: a, type: always_sample}]}}");
    assert_eq!(
        eval(&mut unallocated, &[span()]),
        Decision::NotSampled,
        "no rate_allocation entry = 0 sps, as the collector"
    );
}

#[test]
fn final_decision_rule() {
    let cfg = |yaml: &str| SamplerConfig::from_yaml_str(yaml).unwrap().0.policies;
    let spans = vec![span().attr("k", OwnedValue::Str("v".into()))];
    let sample_and_inverted_match = cfg("policies: [{name: a, type: always_sample}, {name: b, type: string_attribute, string_attribute: {key: k, values: [v], invert_match: true}}]");
    assert_eq!(
        decide_whole_trace(&sample_and_inverted_match, &spans, 0, false),
        FinalDecision::NotSampled,
        "InvertNotSampled beats Sampled"
    );
    let inverted_sample_and_not = cfg("policies: [{name: a, type: status_code, status_code: {status_codes: [ERROR]}}, {name: b, type: string_attribute, string_attribute: {key: k, values: [x], invert_match: true}}]");
    assert_eq!(
        decide_whole_trace(&inverted_sample_and_not, &spans, 0, false),
        FinalDecision::NotSampled,
        "InvertSampled needs no NotSampled"
    );
    let inverted_alone = cfg("policies: [{name: b, type: string_attribute, string_attribute: {key: k, values: [x], invert_match: true}}]");
    assert_eq!(
        decide_whole_trace(&inverted_alone, &spans, 0, false),
        FinalDecision::Sampled
    );
    let drop_wins = cfg("policies: [{name: a, type: always_sample}, {name: d, type: drop, drop: {drop_sub_policy: [{name: x, type: string_attribute, string_attribute: {key: k, values: [v]}}]}}]");
    assert_eq!(
        decide_whole_trace(&drop_wins, &spans, 0, false),
        FinalDecision::Dropped
    );
    assert_eq!(
        decide_whole_trace(&drop_wins, &spans, 0, true),
        FinalDecision::Dropped,
        "drop policies run first even with sample_on_first_match"
    );
    let first_match = cfg("policies: [{name: a, type: always_sample}, {name: b, type: string_attribute, string_attribute: {key: k, values: [v], invert_match: true}}]");
    assert_eq!(
        decide_whole_trace(&first_match, &spans, 0, true),
        FinalDecision::Sampled,
        "stops before the inverted policy"
    );
    let none =
        cfg("policies: [{name: a, type: status_code, status_code: {status_codes: [ERROR]}}]");
    assert_eq!(
        decide_whole_trace(&none, &spans, 0, false),
        FinalDecision::NotSampled
    );
}
