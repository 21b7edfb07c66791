//! Engine behaviour with a fake clock: timing, late spans, limits, memory, counters.
#![allow(clippy::unwrap_used, missing_docs)]

use tailgate_sampler::config::SamplerConfig;
use tailgate_sampler::testing::{FakeClock, OwnedValue, TestSpan};
use tailgate_sampler::{
    Clock, DecidedTrace, DecisionCause, DropReason, Engine, FinalDecision, InsertOutcome,
    StatusCode,
};

const SEC: u64 = 1_000_000_000;
const T0: u64 = 1_700_000_000 * SEC;

fn engine(yaml: &str) -> (Engine<TestSpan, FakeClock>, FakeClock) {
    let (cfg, _) = SamplerConfig::from_yaml_str(yaml).unwrap();
    let clock = FakeClock::at(T0);
    (Engine::new(&cfg, clock.clone()).unwrap(), clock)
}

const ERRORS: &str =
    "policies: [{name: errors, type: status_code, status_code: {status_codes: [ERROR]}}]";

fn drain(e: &mut Engine<TestSpan, FakeClock>) -> Vec<DecidedTrace<TestSpan>> {
    e.drain_decided().collect()
}

fn span(trace: u128, id: u64) -> TestSpan {
    TestSpan::new(trace, id, T0, T0 + 1_000)
}

#[test]
fn decides_at_decision_wait_not_before() {
    let (mut e, clock) = engine(&format!("decision_wait: 10s\n{ERRORS}"));
    assert!(matches!(e.insert(span(1, 1)), InsertOutcome::Buffered));
    clock.advance_ms(5_000);
    assert!(matches!(
        e.insert(span(1, 2).status(StatusCode::Error)),
        InsertOutcome::Buffered
    ));
    assert!(matches!(e.insert(span(2, 1)), InsertOutcome::Buffered));
    clock.advance_ms(4_999);
    e.advance();
    assert!(drain(&mut e).is_empty());
    clock.advance_ms(1);
    e.advance();
    let out = drain(&mut e);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].decision, FinalDecision::Sampled);
    assert_eq!(out[0].cause, DecisionCause::Policies);
    assert_eq!(out[0].policy, Some(0));
    assert!(out[0].matched.contains(0));
    let ids: Vec<[u8; 8]> = out[0].spans.iter().map(|s| s.span_id).collect();
    assert_eq!(
        ids,
        vec![1u64.to_be_bytes(), 2u64.to_be_bytes()],
        "arrival order"
    );
    clock.advance_ms(5_000);
    e.advance();
    let out = drain(&mut e);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].decision, FinalDecision::NotSampled);
    assert!(out[0].spans.is_empty());
    let c = e.counters();
    assert_eq!(c.new_trace_id_received, 2);
    assert_eq!(c.global_count_traces_sampled.sampled, 1);
    assert_eq!(c.global_count_traces_sampled.not_sampled, 1);
    assert_eq!(c.policies[0].traces.sampled, 1);
    assert_eq!(c.policies[0].spans.sampled, 2);
    assert_eq!(c.spans_exported, 2);
    assert_eq!(c.spans_dropped.not_sampled, 1);
    assert_eq!(c.sampling_traces_on_memory, 2, "decided traces stay known");
}

#[test]
fn root_span_brings_the_decision_forward() {
    let (mut e, clock) = engine(&format!(
        "decision_wait: 30s\ndecision_wait_after_root_received: 2s\n{ERRORS}"
    ));
    e.insert(span(1, 2));
    clock.advance_ms(1_000);
    e.insert(span(1, 1).root());
    clock.advance_ms(1_999);
    e.advance();
    assert!(drain(&mut e).is_empty());
    clock.advance_ms(1);
    e.advance();
    assert_eq!(drain(&mut e).len(), 1);
    clock.advance_ms(60_000);
    e.advance();
    assert!(
        drain(&mut e).is_empty(),
        "the original timer is stale and does not decide again"
    );
}

/// Advances the engine to Unix ns `at` and returns how many traces it decided.
fn decided_at(e: &mut Engine<TestSpan, FakeClock>, clock: &FakeClock, at: u64) -> usize {
    clock.advance_ns(at - clock.now_unix_nanos());
    e.advance();
    drain(e).len()
}

#[test]
fn next_due_is_the_next_tick_a_pending_trace_falls_due_at() {
    const MS: u64 = 1_000_000;
    let (mut e, clock) = engine(&format!(
        "decision_wait: 10s\ndecision_wait_after_root_received: 2s\n\
         maximum_trace_size_bytes: 500\ntailgate: {{timer_tick: 100ms}}\n{ERRORS}"
    ));
    assert_eq!(e.next_due(), None);
    clock.advance_ms(50); // off the 100 ms grid: deadlines round up to the next tick
    e.insert(span(1, 1));
    assert_eq!(e.next_due(), Some(T0 + 10_100 * MS));
    clock.advance_ms(1_000);
    e.insert(span(2, 1));
    e.insert(span(2, 2).root());
    assert_eq!(
        e.next_due(),
        Some(T0 + 3_100 * MS),
        "the root moved trace 2 earlier"
    );
    assert_eq!(decided_at(&mut e, &clock, T0 + 3_100 * MS - 1), 0);
    assert_eq!(decided_at(&mut e, &clock, T0 + 3_100 * MS), 1);
    assert_eq!(e.next_due(), Some(T0 + 10_100 * MS));
    e.insert(span(1, 2));
    e.insert(span(1, 3)); // 675 bytes > 500: decided at once
    assert_eq!(drain(&mut e).len(), 1);
    assert_eq!(
        e.next_due(),
        None,
        "nothing is pending: trace 2's first deadline (11.1 s) was moved, trace 1 is decided"
    );

    // After an hour with nothing due (the wheel not advanced, many rotations behind), a new
    // trace is due `decision_wait` after it arrived, not at the wheel's first non-empty bucket.
    clock.advance_ms(3_600_000);
    e.insert(span(3, 1));
    let due = clock.now_unix_nanos() + 10_000 * MS;
    assert_eq!(e.next_due(), Some(due));
    assert_eq!(decided_at(&mut e, &clock, due - 1), 0);
    assert_eq!(decided_at(&mut e, &clock, due), 1);
    assert_eq!(e.next_due(), None);
}

#[test]
fn next_due_forgets_evicted_and_shut_down_traces() {
    let yaml = format!("decision_wait: 10s\ntailgate: {{max_buffered_bytes: 500}}\n{ERRORS}");
    let (mut e, clock) = engine(&yaml);
    e.insert(span(1, 1));
    clock.advance_ms(1_000);
    e.insert(span(2, 1));
    clock.advance_ms(1_000);
    e.insert(span(3, 1)); // 675 bytes > 500: trace 1 is evicted
    assert_eq!(e.counters().sampling_trace_dropped_too_early, 1);
    assert_eq!(e.next_due(), Some(T0 + 11 * SEC));
    e.shutdown();
    assert_eq!(drain(&mut e).len(), 2);
    assert_eq!(e.next_due(), None);
}

#[test]
fn late_spans_follow_the_decision() {
    let (mut e, clock) = engine(&format!("decision_wait: 1s\n{ERRORS}"));
    e.insert(span(1, 1).status(StatusCode::Error));
    e.insert(span(2, 1));
    clock.advance_ms(1_000);
    e.advance();
    assert_eq!(drain(&mut e).len(), 2);
    clock.advance_ms(3_000);
    assert!(
        matches!(e.insert(span(1, 2)), InsertOutcome::Forward(s) if s.span_id == 2u64.to_be_bytes())
    );
    assert!(matches!(
        e.insert(span(2, 2)),
        InsertOutcome::Dropped(DropReason::LateNotSampled)
    ));
    let c = e.counters();
    assert_eq!(c.sampling_late_span_age.count, 2);
    assert_eq!(c.sampling_late_span_age.sum, 6);
    assert_eq!(c.new_trace_id_received, 2);
    assert_eq!(c.spans_exported, 2);
}

#[test]
fn pushed_out_decisions_fall_back_to_the_caches_then_to_a_new_trace() {
    let yaml = format!(
        "decision_wait: 1s\nnum_traces: 2\ndecision_cache: {{sampled_cache_size: 10}}\n{ERRORS}"
    );
    let (mut e, clock) = engine(&yaml);
    e.insert(span(1, 1).status(StatusCode::Error));
    e.insert(span(2, 1));
    clock.advance_ms(1_000);
    e.advance();
    drain(&mut e);
    // Two newer traces push both decided ones out of the table.
    e.insert(span(3, 1));
    e.insert(span(4, 1));
    assert_eq!(
        e.counters().sampling_trace_dropped_too_early,
        0,
        "decided traces leave silently"
    );
    assert!(matches!(e.insert(span(1, 2)), InsertOutcome::Forward(_)));
    assert_eq!(e.counters().early_releases_from_cache_sampled, 1);
    // No non-sampled cache: trace 2's late span starts a new trace (which pushes out trace 3).
    assert!(matches!(e.insert(span(2, 2)), InsertOutcome::Buffered));
    assert_eq!(e.counters().new_trace_id_received, 5);
    assert_eq!(e.counters().sampling_trace_dropped_too_early, 1);
    assert_eq!(e.counters().spans_dropped.evicted_too_early, 1);
    clock.advance_ms(1_000);
    e.advance();
    let decided: Vec<[u8; 16]> = drain(&mut e).iter().map(|d| d.trace_id).collect();
    assert_eq!(
        decided,
        vec![4u128.to_be_bytes(), 2u128.to_be_bytes()],
        "trace 3 was pushed out undecided"
    );
}

#[test]
fn non_sampled_cache_drops_late_spans() {
    let yaml = format!("decision_wait: 1s\nnum_traces: 1\ndecision_cache: {{non_sampled_cache_size: 10}}\n{ERRORS}");
    let (mut e, clock) = engine(&yaml);
    e.insert(span(1, 1));
    clock.advance_ms(1_000);
    e.advance();
    e.insert(span(2, 1));
    assert!(matches!(
        e.insert(span(1, 2)),
        InsertOutcome::Dropped(DropReason::LateNotSampled)
    ));
    assert_eq!(e.counters().early_releases_from_cache_not_sampled, 1);
}

#[test]
fn block_on_overflow_refuses_instead_of_evicting() {
    let yaml = format!("decision_wait: 1s\nnum_traces: 1\nblock_on_overflow: true\n{ERRORS}");
    let (mut e, clock) = engine(&yaml);
    e.insert(span(1, 1));
    assert!(matches!(e.insert(span(2, 1)), InsertOutcome::Rejected(_)));
    assert_eq!(e.counters().spans_rejected, 1);
    clock.advance_ms(1_000);
    e.advance();
    assert!(matches!(e.insert(span(2, 1)), InsertOutcome::Buffered));
    assert_eq!(e.counters().sampling_trace_dropped_too_early, 0);
}

#[test]
fn too_large_traces_are_not_sampled_at_once() {
    let yaml = "decision_wait: 1s\nmaximum_trace_size_bytes: 500\npolicies: [{name: all, type: always_sample}]";
    let (mut e, clock) = engine(yaml);
    e.insert(span(1, 1));
    e.insert(span(1, 2));
    assert!(drain(&mut e).is_empty());
    e.insert(span(1, 3)); // 675 bytes > 500
    let out = drain(&mut e);
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].decision, out[0].cause),
        (FinalDecision::NotSampled, DecisionCause::TooLarge)
    );
    assert_eq!(e.counters().traces_dropped_too_large, 1);
    assert_eq!(e.counters().spans_dropped.too_large, 3);
    assert!(matches!(
        e.insert(span(1, 4)),
        InsertOutcome::Dropped(DropReason::LateNotSampled)
    ));
    clock.advance_ms(2_000);
    e.advance();
    assert!(drain(&mut e).is_empty());
}

#[test]
fn drop_policy_wins_and_is_reported() {
    let yaml = "decision_wait: 1s\npolicies: [{name: all, type: always_sample}, {name: no-health, type: drop, drop: {drop_sub_policy: [{name: h, type: string_attribute, string_attribute: {key: url.path, values: [/health]}}]}}]";
    let (mut e, clock) = engine(yaml);
    assert_eq!(
        e.policy_names(),
        ["no-health", "all"],
        "drop policies are evaluated first"
    );
    e.insert(span(1, 1).attr("url.path", OwnedValue::Str("/health".into())));
    clock.advance_ms(1_000);
    e.advance();
    let out = drain(&mut e);
    assert_eq!(out[0].decision, FinalDecision::Dropped);
    assert_eq!(out[0].policy, Some(0));
    assert_eq!(e.counters().global_count_traces_sampled.dropped, 1);
    assert_eq!(e.counters().policies[0].traces.dropped, 1);
    assert_eq!(
        e.counters().policies[1].traces.sampled,
        0,
        "evaluation stops at a drop"
    );
    assert_eq!(e.counters().spans_dropped.dropped_by_policy, 1);
}

#[test]
fn byte_budget_evicts_the_oldest_undecided_trace() {
    let yaml = format!("decision_wait: 10s\ntailgate: {{max_buffered_bytes: 1000}}\n{ERRORS}");
    let (mut e, _clock) = engine(&yaml);
    for t in 1..=4 {
        e.insert(span(t, 1)); // 225 bytes each, own buffer
    }
    assert_eq!(e.memory().retained_buffer_bytes, 900);
    e.insert(span(5, 1));
    assert_eq!(e.counters().sampling_trace_dropped_too_early, 1);
    assert_eq!(e.memory().retained_buffer_bytes, 900);
    // The evicted trace is forgotten: its next span starts a new trace.
    assert!(matches!(e.insert(span(1, 2)), InsertOutcome::Buffered));
    assert_eq!(e.counters().new_trace_id_received, 6);
}

#[test]
fn memory_counts_shared_buffers_once_and_compacts_sparse_ones() {
    let (mut e, clock) = engine(&format!("decision_wait: 1s\n{ERRORS}"));
    // Twenty traces whose first spans share one 2 MiB request buffer.
    let big = 2 << 20;
    for t in 1..=20 {
        e.insert(span(t, 1).in_buffer(7, big));
    }
    assert_eq!(e.memory().retained_buffer_bytes, big as u64);
    assert_eq!(e.memory().span_bytes, 20 * 225);
    clock.advance_ms(500);
    e.insert(span(21, 1)); // decided later than the others
    clock.advance_ms(500);
    e.advance();
    // All twenty decided and released: the buffer is freed with its last span.
    assert_eq!(e.memory().retained_buffer_bytes, 225);

    // Now a long trace keeps one span in a big buffer whose other spans are all released.
    let (mut e, clock) = engine(&format!(
        "decision_wait: 10s\ndecision_wait_after_root_received: 1s\n{ERRORS}"
    ));
    for t in 1..=10 {
        e.insert(span(t, 1).root().in_buffer(9, big));
    }
    e.insert(span(99, 1).in_buffer(9, big));
    clock.advance_ms(1_000);
    e.advance();
    assert_eq!(e.counters().compactions, 1);
    assert_eq!(e.counters().spans_detached, 1);
    assert_eq!(
        e.memory().retained_buffer_bytes,
        225,
        "the survivor was copied out of the sparse buffer"
    );
    clock.advance_ms(9_000);
    e.advance();
    let out = drain(&mut e);
    assert_eq!(out.last().unwrap().trace_id, 99u128.to_be_bytes());
    assert_eq!(e.memory().retained_buffer_bytes, 0);
}

#[test]
fn shutdown_decides_or_drops_pending_traces() {
    let (mut e, _clock) = engine(&format!("decision_wait: 10s\n{ERRORS}"));
    e.insert(span(1, 1).status(StatusCode::Error));
    e.insert(span(2, 1));
    e.shutdown();
    let out = drain(&mut e);
    assert_eq!(out.len(), 2);
    assert!(out.iter().all(|d| d.cause == DecisionCause::Shutdown));
    assert_eq!(out[0].decision, FinalDecision::Sampled);

    let (mut e, _clock) = engine(&format!(
        "decision_wait: 10s\ndrop_pending_traces_on_shutdown: true\n{ERRORS}"
    ));
    e.insert(span(1, 1).status(StatusCode::Error));
    e.shutdown();
    assert!(drain(&mut e).is_empty());
    assert_eq!(e.counters().spans_dropped.shutdown, 1);
    assert_eq!(e.counters().spans_buffered, 0);
}

#[test]
fn a_long_pause_decides_everything_due() {
    let (mut e, clock) = engine(&format!("decision_wait: 1s\n{ERRORS}"));
    for t in 0..100 {
        e.insert(span(t, 1));
        clock.advance_ms(37);
    }
    clock.advance_ms(3_600_000);
    e.advance();
    assert_eq!(drain(&mut e).len(), 100);
}

#[test]
fn sample_on_first_match_and_shards() {
    let yaml = "decision_wait: 1s\nsample_on_first_match: true\nnum_shards: 4\nnum_traces: 8\npolicies: [{name: a, type: always_sample}, {name: b, type: always_sample}]";
    let (cfg, _) = SamplerConfig::from_yaml_str(yaml).unwrap();
    assert_eq!(cfg.num_traces_per_shard(), 2);
    let (mut e, clock) = engine(yaml);
    e.insert(span(1, 1));
    clock.advance_ms(1_000);
    e.advance();
    let out = drain(&mut e);
    assert!(out[0].matched.contains(0) && !out[0].matched.contains(1));
    assert_eq!(e.counters().policies[1].traces, Default::default());
    let shards: std::collections::HashSet<u32> = (0..1000u128)
        .map(|t| tailgate_sampler::shard_for(&t.to_be_bytes(), 4))
        .collect();
    assert_eq!(shards.len(), 4);
}

#[test]
fn rates_are_divided_among_shards() {
    let yaml = "decision_wait: 1s\nnum_shards: 2\npolicies: [{name: r, type: rate_limiting, rate_limiting: {spans_per_second: 6}}]";
    let (mut e, clock) = engine(yaml);
    // Each shard admits fewer than 3 spans per second.
    for t in 1..=3 {
        e.insert(span(t, 1));
    }
    clock.advance_ms(1_000);
    e.advance();
    let kept = drain(&mut e)
        .iter()
        .filter(|d| d.decision == FinalDecision::Sampled)
        .count();
    assert_eq!(kept, 2);
}
