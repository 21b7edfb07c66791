//! Property tests: arrival order does not change decisions; no trace is decided twice; every span
//! is exported, dropped with a reason, or still buffered.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::{HashMap, HashSet};

use proptest::prelude::*;
use tailgate_sampler::config::SamplerConfig;
use tailgate_sampler::policy::decide_whole_trace;
use tailgate_sampler::testing::{FakeClock, OwnedValue, TestSpan};
use tailgate_sampler::{Engine, HeldState, InsertOutcome, SpanKind, StatusCode};

const SEC: u64 = 1_000_000_000;
const MS: u64 = 1_000_000;
const T0: u64 = 1_700_000_000 * SEC;

/// Order-independent policies (no rate limits: those depend on decision timing by design).
const POLICIES: &str = r#"
  - {name: err, type: status_code, status_code: {status_codes: [ERROR]}}
  - {name: slow, type: latency, latency: {threshold_ms: 300, upper_threshold_ms: 800}}
  - {name: num, type: numeric_attribute, numeric_attribute: {key: n, min_value: 5, max_value: 7}}
  - {name: str-inv, type: string_attribute, string_attribute: {key: team, values: [a], invert_match: true}}
  - {name: re, type: string_attribute, string_attribute: {key: path, values: ['^/v[12]'], enabled_regex_matching: true}}
  - {name: big, type: span_count, span_count: {min_spans: 6}}
  - {name: prob, type: probabilistic, probabilistic: {sampling_percentage: 20}}
  - {name: flag, type: boolean_attribute, boolean_attribute: {key: f, value: true}}
  - {name: ottl, type: ottl_condition, ottl_condition: {span: ['kind == SPAN_KIND_SERVER and attributes["n"] > 8']}}
  - {name: both, type: and, and: {and_sub_policy: [{name: x, type: status_code, status_code: {status_codes: [OK]}}, {name: y, type: span_count, span_count: {min_spans: 3}}]}}
  - {name: nope, type: not, not: {not_sub_policy: {name: z, type: trace_flags}}}
  - {name: dropper, type: drop, drop: {drop_sub_policy: [{name: h, type: string_attribute, string_attribute: {key: path, values: [/health]}}]}}
"#;

#[derive(Debug, Clone)]
struct SpanSpec {
    status: u8,
    start_ms: u64,
    len_ms: u64,
    n: Option<i64>,
    team: Option<u8>,
    path: Option<u8>,
    flag: Option<bool>,
    server: bool,
    sampled_flag: bool,
}

fn span_spec() -> impl Strategy<Value = SpanSpec> {
    (
        0u8..3,
        0u64..500,
        0u64..600,
        prop::option::of(0i64..10),
        prop::option::of(0u8..2),
        prop::option::of(0u8..4),
        prop::option::of(any::<bool>()),
        any::<bool>(),
        prop::bool::weighted(0.2),
    )
        .prop_map(
            |(status, start_ms, len_ms, n, team, path, flag, server, sampled_flag)| SpanSpec {
                status,
                start_ms,
                len_ms,
                n,
                team,
                path,
                flag,
                server,
                sampled_flag,
            },
        )
}

fn build(trace: u128, i: usize, s: &SpanSpec) -> TestSpan {
    let mut span = TestSpan::new(
        trace,
        i as u64 + 1,
        T0 + s.start_ms * MS,
        T0 + (s.start_ms + s.len_ms) * MS,
    )
    .status(StatusCode::from_code(i32::from(s.status)));
    if i == 0 {
        span = span.root();
    }
    if let Some(n) = s.n {
        span = span.attr("n", OwnedValue::Int(n));
    }
    if let Some(t) = s.team {
        span = span.resource_attr("team", OwnedValue::Str(["a", "b"][t as usize].into()));
    }
    if let Some(p) = s.path {
        span = span.attr(
            "path",
            OwnedValue::Str(["/v1/x", "/v3", "/health", "/v2"][p as usize].into()),
        );
    }
    if let Some(f) = s.flag {
        span = span.attr("f", OwnedValue::Bool(f));
    }
    if s.server {
        span.kind = SpanKind::Server;
    }
    span.flags = u32::from(s.sampled_flag);
    span
}

fn traces() -> impl Strategy<Value = Vec<Vec<SpanSpec>>> {
    prop::collection::vec(prop::collection::vec(span_spec(), 1..9), 1..12)
}

fn engine(extra: &str) -> (Engine<TestSpan, FakeClock>, FakeClock, SamplerConfig) {
    let (cfg, _) = SamplerConfig::from_yaml_str(&format!("{extra}\npolicies:{POLICIES}")).unwrap();
    let clock = FakeClock::at(T0);
    (Engine::new(&cfg, clock.clone()).unwrap(), clock, cfg)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, .. ProptestConfig::default() })]

    /// Spans of many traces arrive interleaved in a random order within the decision wait; every
    /// trace gets exactly one decision, equal to evaluating the whole trace at once.
    #[test]
    fn arrival_order_does_not_change_decisions(specs in traces(), order_seed in any::<u64>(), gaps in prop::collection::vec(0u64..50, 0..100)) {
        let (mut e, clock, cfg) = engine("decision_wait: 5s\nnum_traces: 1000");
        let all: Vec<TestSpan> = specs.iter().enumerate()
            .flat_map(|(t, spans)| spans.iter().enumerate().map(move |(i, s)| build(t as u128 + 1, i, s)))
            .collect();
        let mut shuffled = all.clone();
        shuffle(&mut shuffled, order_seed);
        for (k, span) in shuffled.into_iter().enumerate() {
            prop_assert!(matches!(e.insert(span), InsertOutcome::Buffered));
            // At most 88 spans × 49 ms < decision_wait: every span arrives before its decision.
            clock.advance_ms(gaps.get(k).copied().unwrap_or(1));
            e.advance();
            prop_assert_eq!(e.drain_decided().count(), 0);
        }
        clock.advance_ms(10_000);
        e.advance();
        let mut seen = HashSet::new();
        for d in e.drain_decided() {
            prop_assert!(seen.insert(d.trace_id), "decided twice");
            let t = u128::from_be_bytes(d.trace_id);
            let whole: Vec<TestSpan> = all.iter().filter(|s| u128::from_be_bytes(s.trace_id) == t).cloned().collect();
            prop_assert_eq!(d.decision, decide_whole_trace(&cfg.policies, &whole, 0, false));
            if d.decision.is_sampled() {
                let mut got: Vec<_> = d.spans.iter().map(|s| s.span_id).collect();
                let mut want: Vec<_> = whole.iter().map(|s| s.span_id).collect();
                got.sort();
                want.sort();
                prop_assert_eq!(got, want);
            }
        }
        prop_assert_eq!(seen.len(), specs.len());
    }

    /// Under pressure (tiny table, byte budget, size limit, caches, late spans, random time,
    /// hand-overs, deferrals and imported decisions), every span received is exported, dropped
    /// with a reason, still buffered, or handed over — after every step.
    #[test]
    fn every_span_is_accounted_for(
        steps in prop::collection::vec((0u128..30, 0u64..1500, any::<bool>(), any::<bool>(), 0u8..12), 1..300),
        num_traces in 1u64..12,
        cache in 0u64..8,
        budget in prop::option::of(1_000u64..5_000),
    ) {
        let budget = budget.map(|b| format!("tailgate: {{max_buffered_bytes: {b}}}\n")).unwrap_or_default();
        let extra = format!(
            "decision_wait: 1s\ndecision_wait_after_root_received: 300ms\nnum_traces: {num_traces}\n\
             maximum_trace_size_bytes: 2000\ndecision_cache: {{sampled_cache_size: {cache}, non_sampled_cache_size: {cache}}}\n{budget}"
        );
        let (mut e, clock, _) = engine(&extra);
        let mut exported = 0u64;
        let mut dropped_by_outcome = 0u64;
        let mut handed_over = (0u64, 0u64);
        let mut next_span: HashMap<u128, u64> = HashMap::new();
        for (trace, advance_ms, root, error, op) in steps {
            let trace_id = trace.to_be_bytes();
            match op {
                0 => {
                    let before = e.holds(&trace_id);
                    let buffered = e.counters().spans_buffered;
                    match e.take_pending(&trace_id) {
                        Some(t) => {
                            prop_assert_eq!(before, HeldState::Pending { first_seen: t.first_seen_ns });
                            prop_assert!(!t.spans.is_empty());
                            prop_assert!(t.spans.iter().all(|s| s.trace_id == trace_id));
                            // Arrival order: span IDs are handed out increasing per trace.
                            prop_assert!(t.spans.windows(2).all(|w| w[0].span_id < w[1].span_id));
                            prop_assert_eq!(e.counters().spans_buffered, buffered - t.spans.len() as u64);
                            handed_over.0 += 1;
                            handed_over.1 += t.spans.len() as u64;
                        }
                        None => prop_assert!(!matches!(before, HeldState::Pending { .. }), "pending not taken"),
                    }
                    prop_assert!(!matches!(e.holds(&trace_id), HeldState::Pending { .. }), "still pending");
                }
                1 => {
                    let pending = matches!(e.holds(&trace_id), HeldState::Pending { .. });
                    prop_assert_eq!(e.defer(&trace_id, clock_now(&clock) + advance_ms * MS), pending);
                }
                2 => e.import_decisions(&[(trace_id, error)]),
                _ => {
                    let id = next_span.entry(trace).or_insert(0);
                    *id += 1;
                    let mut span = TestSpan::new(trace, *id, clock_now(&clock), clock_now(&clock) + MS)
                        .status(if error { StatusCode::Error } else { StatusCode::Unset });
                    if root {
                        span = span.root();
                    }
                    match e.insert(span) {
                        InsertOutcome::Forward(_) => exported += 1,
                        InsertOutcome::Dropped(_) => dropped_by_outcome += 1,
                        InsertOutcome::Buffered => {}
                        InsertOutcome::Rejected(_) => prop_assert!(false, "not blocking"),
                    }
                }
            }
            clock.advance_ms(advance_ms);
            e.advance();
            for d in e.drain_decided() {
                prop_assert_eq!(d.spans.len() as u64, if d.decision.is_sampled() { d.span_count } else { 0 });
                exported += d.spans.len() as u64;
            }
            let c = e.counters();
            prop_assert_eq!(c.spans_exported, exported);
            prop_assert_eq!((c.handed_over_traces, c.handed_over_spans), handed_over);
            prop_assert!(c.spans_dropped.total() >= dropped_by_outcome);
            prop_assert_eq!(
                c.spans_received,
                c.spans_exported + c.spans_dropped.total() + c.spans_buffered + c.handed_over_spans
            );
            prop_assert_eq!(e.memory().spans_buffered, c.spans_buffered);
            prop_assert!(c.sampling_traces_on_memory <= num_traces);
            let mut held = 0u64;
            e.held(|_, _| held += 1);
            prop_assert_eq!(held, c.sampling_traces_on_memory);
        }
        e.shutdown();
        let c = e.counters().clone();
        for d in e.drain_decided() {
            exported += d.spans.len() as u64;
        }
        prop_assert_eq!(c.spans_buffered, 0);
        prop_assert_eq!(c.spans_exported, exported);
        prop_assert_eq!(c.spans_received, c.spans_exported + c.spans_dropped.total() + c.handed_over_spans);
        prop_assert_eq!(e.memory().retained_buffer_bytes, 0);
    }
}

fn clock_now(clock: &FakeClock) -> u64 {
    use tailgate_sampler::Clock;
    clock.now_unix_nanos()
}

/// Fisher–Yates with a splitmix64 stream (deterministic per seed).
fn shuffle<T>(v: &mut [T], mut seed: u64) {
    for i in (1..v.len()).rev() {
        seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        v.swap(i, (z % (i as u64 + 1)) as usize);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    /// `insert_batch` behaves exactly like one `insert` per span, pushes-out within a batch
    /// included; batches beyond the engine's stage group (256 spans) included.
    #[test]
    fn batches_match_single_inserts(
        spans in prop::collection::vec((0u128..30, any::<bool>(), any::<bool>()), 1..800),
        chunk in prop_oneof![1usize..40, 200usize..800],
        num_traces in 1u64..12,
        cache in 0u64..4,
    ) {
        let extra = format!(
            "decision_wait: 1s\nnum_traces: {num_traces}\ndecision_wait_after_root_received: 200ms\n\
             decision_cache: {{sampled_cache_size: {cache}, non_sampled_cache_size: {cache}}}"
        );
        let (mut single, clock_a, _) = engine(&extra);
        let (mut batched, clock_b, _) = engine(&extra);
        let mut forwarded_single = 0;
        let mut out = tailgate_sampler::BatchOutput::default();
        let mut batch = Vec::new();
        let mut decided_a = Vec::new();
        let mut decided_b = Vec::new();
        for (k, group) in spans.chunks(chunk).enumerate() {
            for (i, (trace, root, error)) in group.iter().enumerate() {
                let mut span = TestSpan::new(*trace, (k * 1000 + i) as u64, T0, T0 + MS)
                    .status(if *error { StatusCode::Error } else { StatusCode::Unset });
                if *root {
                    span = span.root();
                }
                if matches!(single.insert(span.clone()), InsertOutcome::Forward(_)) {
                    forwarded_single += 1;
                }
                batch.push(span);
            }
            batched.insert_batch(&mut batch, &mut out);
            prop_assert!(batch.is_empty());
            clock_a.advance_ms(150);
            clock_b.advance_ms(150);
            single.advance();
            batched.advance();
            decided_a.extend(single.drain_decided().map(|d| (d.trace_id, d.decision, d.spans.len())));
            decided_b.extend(batched.drain_decided().map(|d| (d.trace_id, d.decision, d.spans.len())));
        }
        prop_assert_eq!(out.forward.len(), forwarded_single);
        prop_assert_eq!(decided_a, decided_b);
        let (a, b) = (single.counters(), batched.counters());
        prop_assert_eq!(a.new_trace_id_received, b.new_trace_id_received);
        prop_assert_eq!(a.sampling_trace_dropped_too_early, b.sampling_trace_dropped_too_early);
        prop_assert_eq!(a.spans_exported, b.spans_exported);
        prop_assert_eq!(a.spans_dropped, b.spans_dropped);
        prop_assert_eq!(a.spans_buffered, b.spans_buffered);
    }
}
