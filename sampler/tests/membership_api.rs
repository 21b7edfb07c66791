//! The engine's membership API (issue 18, docs/membership-design.md §6): hand-over of an
//! undecided trace (`take_pending`), what a shard holds (`holds` / `held`), deferral (`defer`)
//! and imported decisions (`import_decisions`), with the fake clock.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::HashMap;

use proptest::prelude::*;
use tailgate_sampler::config::SamplerConfig;
use tailgate_sampler::testing::{FakeClock, TestSpan};
use tailgate_sampler::{
    BatchOutput, Clock, DecidedTrace, DropReason, Engine, FinalDecision, HeldState, InsertOutcome,
    StatusCode,
};

const SEC: u64 = 1_000_000_000;
const MS: u64 = 1_000_000;
const T0: u64 = 1_700_000_000 * SEC;

/// Order-independent policies: a decision depends only on the set of spans.
const POLICIES: &str =
    "policies: [{name: errors, type: status_code, status_code: {status_codes: [ERROR]}}, \
     {name: big, type: span_count, span_count: {min_spans: 4}}]";

type TestEngine = Engine<TestSpan, FakeClock>;

fn engine_on(yaml: &str, clock: &FakeClock) -> TestEngine {
    let (cfg, _) = SamplerConfig::from_yaml_str(&format!("{yaml}\n{POLICIES}")).unwrap();
    Engine::new(&cfg, clock.clone()).unwrap()
}

fn engine(yaml: &str) -> (TestEngine, FakeClock) {
    let clock = FakeClock::at(T0);
    (engine_on(yaml, &clock), clock)
}

fn span(clock: &FakeClock, trace: u128, id: u64) -> TestSpan {
    let now = clock.now_unix_nanos();
    TestSpan::new(trace, id, now, now + MS)
}

fn id(trace: u128) -> [u8; 16] {
    trace.to_be_bytes()
}

/// A decided trace as comparable data: ID, decision, kept span IDs sorted.
fn summary(d: &DecidedTrace<TestSpan>) -> ([u8; 16], FinalDecision, Vec<[u8; 8]>) {
    let mut spans: Vec<[u8; 8]> = d.spans.iter().map(|s| s.span_id).collect();
    spans.sort();
    (d.trace_id, d.decision, spans)
}

fn decided(e: &mut TestEngine) -> Vec<([u8; 16], FinalDecision, Vec<[u8; 8]>)> {
    let mut v: Vec<_> = e.drain_decided().map(|d| summary(&d)).collect();
    v.sort_by_key(|d| d.0);
    v
}

#[test]
fn take_pending_empties_the_slot_without_pushing_a_trace_out() {
    let (mut e, clock) = engine("decision_wait: 10s\nnum_traces: 2");
    assert!(e.take_pending(&id(1)).is_none(), "nothing held");
    e.insert(span(&clock, 1, 1));
    clock.advance_ms(100);
    e.insert(span(&clock, 2, 1));
    e.insert(span(&clock, 1, 2).status(StatusCode::Error));
    let retained = e.memory().retained_buffer_bytes;

    let taken = e.take_pending(&id(1)).unwrap();
    assert_eq!(taken.first_seen_ns, T0);
    let ids: Vec<_> = taken.spans.iter().map(|s| s.span_id).collect();
    assert_eq!(
        ids,
        vec![1u64.to_be_bytes(), 2u64.to_be_bytes()],
        "arrival order"
    );
    assert_eq!(e.holds(&id(1)), HeldState::No);
    assert!(e.take_pending(&id(1)).is_none(), "taken once");
    let c = e.counters();
    assert_eq!((c.handed_over_traces, c.handed_over_spans), (1, 2));
    assert_eq!((c.spans_buffered, c.sampling_traces_on_memory), (1, 1));
    assert_eq!(e.memory().retained_buffer_bytes, retained - 2 * 225);
    assert_eq!(e.next_due(), Some(T0 + 10_100 * MS), "only trace 2 is due");

    // The emptied slot takes the next new trace: trace 2 is not pushed out.
    e.insert(span(&clock, 3, 1));
    assert_eq!(e.counters().sampling_trace_dropped_too_early, 0);
    assert!(matches!(e.holds(&id(2)), HeldState::Pending { .. }));
    // Trace 1's timer is stale: nothing is decided for it, and no decision is recorded, so a
    // late span of it starts a new trace.
    clock.advance_ms(10_000);
    e.advance();
    let out = decided(&mut e);
    assert_eq!(
        out.iter().map(|d| d.0).collect::<Vec<_>>(),
        vec![id(2), id(3)]
    );
    e.insert(span(&clock, 1, 3));
    assert!(matches!(e.holds(&id(1)), HeldState::Pending { .. }));
    let c = e.counters();
    assert_eq!(
        c.spans_received,
        c.spans_exported + c.spans_dropped.total() + c.spans_buffered + c.handed_over_spans
    );
}

#[test]
fn take_pending_leaves_decided_traces_alone() {
    let (mut e, clock) = engine("decision_wait: 1s");
    e.insert(span(&clock, 1, 1));
    clock.advance_ms(1_000);
    e.advance();
    assert_eq!(decided(&mut e).len(), 1);
    assert!(e.take_pending(&id(1)).is_none());
    assert!(matches!(
        e.holds(&id(1)),
        HeldState::Decided { kept: false, .. }
    ));
}

#[test]
fn holds_and_held_report_pending_and_decided_traces() {
    let (mut e, clock) = engine("decision_wait: 1s");
    e.insert(span(&clock, 1, 1).status(StatusCode::Error));
    e.insert(span(&clock, 2, 1));
    clock.advance_ms(1_000);
    e.advance();
    let at = clock.now_unix_nanos();
    e.insert(span(&clock, 3, 1));
    assert_eq!(e.holds(&id(1)), HeldState::Decided { kept: true, at });
    assert_eq!(e.holds(&id(2)), HeldState::Decided { kept: false, at });
    assert_eq!(e.holds(&id(3)), HeldState::Pending { first_seen: at });
    assert_eq!(e.holds(&id(4)), HeldState::No);
    let mut all = Vec::new();
    e.held(|t, h| all.push((*t, h)));
    all.sort_by_key(|(t, _)| *t);
    assert_eq!(
        all,
        vec![
            (id(1), HeldState::Decided { kept: true, at }),
            (id(2), HeldState::Decided { kept: false, at }),
            (id(3), HeldState::Pending { first_seen: at }),
        ]
    );
}

#[test]
fn held_in_chunks_visits_what_held_visits() {
    let (mut e, clock) = engine("decision_wait: 1s\nnum_traces: 20");
    for t in 0..30u128 {
        e.insert(span(&clock, t, 1));
        if t == 12 {
            clock.advance_ms(1_000);
            e.advance();
        }
    }
    e.take_pending(&id(25)).unwrap();
    let mut whole = Vec::new();
    e.held(|t, h| whole.push((*t, h)));
    assert_eq!(whole.len(), 19);
    for chunk in [1, 3, 7, 20, 100] {
        let (mut got, mut from, mut calls) = (Vec::new(), Some(0), 0);
        while let Some(start) = from {
            from = e.held_chunk(start, chunk, |t, h| got.push((*t, h)));
            calls += 1;
        }
        assert_eq!(got, whole, "chunk {chunk}");
        assert_eq!(calls, 20usize.div_ceil(chunk), "chunk {chunk}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, .. ProptestConfig::default() })]

    /// Gateway A buffers a fragment of trace `k` among other traces; B (the claimant) holds the
    /// rest. A hands `k` over (take_pending) and B inserts it. Then A decides every other trace
    /// exactly as an A that never saw `k`, and B decides `k`, with the same kept spans, exactly as
    /// one engine that received all of `k` directly.
    #[test]
    fn take_then_reinsert_elsewhere_equals_never_taken(
        traces in prop::collection::vec((1usize..7, prop::option::of(0usize..7)), 1..10),
        pick in any::<prop::sample::Index>(),
        split in any::<prop::sample::Index>(),
        order in prop::collection::vec(any::<bool>(), 0..80),
        batch in any::<bool>(),
    ) {
        let clock = FakeClock::at(T0);
        let yaml = "decision_wait: 5s\nnum_traces: 1000";
        let (mut a, mut never, mut b, mut whole) =
            (engine_on(yaml, &clock), engine_on(yaml, &clock), engine_on(yaml, &clock), engine_on(yaml, &clock));
        let k = pick.index(traces.len());
        let (k_len, k_err) = traces[k];
        // The first `at_a` spans of `k` reach A, the rest B.
        let at_a = 1 + split.index(k_len);
        let mk = |t: usize, i: usize, err: Option<usize>| {
            let s = span(&clock, t as u128 + 1, i as u64 + 1);
            if err == Some(i) { s.status(StatusCode::Error) } else { s }
        };
        // Every other trace's spans go to A and to `never`; `k`'s to A / B and to `whole`,
        // interleaved in an order drawn from `order`.
        let others: Vec<(usize, usize)> = traces.iter().enumerate()
            .filter(|(t, _)| *t != k)
            .flat_map(|(t, (n, _))| (0..*n).map(move |i| (t, i)))
            .collect();
        let (mut o, mut ki) = (0, 0);
        let mut step = 0;
        let mut first_at_a = None;
        while o < others.len() || ki < k_len {
            let take_k = ki < k_len && (o == others.len() || order.get(step).copied().unwrap_or(true));
            if take_k {
                let s = mk(k, ki, k_err);
                whole.insert(s.clone());
                if ki < at_a {
                    first_at_a.get_or_insert(clock.now_unix_nanos());
                    prop_assert!(matches!(a.insert(s), InsertOutcome::Buffered));
                } else {
                    b.insert(s);
                }
                ki += 1;
            } else {
                let (t, i) = others[o];
                let s = mk(t, i, traces[t].1);
                a.insert(s.clone());
                never.insert(s);
                o += 1;
            }
            step += 1;
            clock.advance_ms(10);
        }
        let taken = a.take_pending(&id(k as u128 + 1)).unwrap();
        prop_assert_eq!(Some(taken.first_seen_ns), first_at_a);
        prop_assert_eq!(taken.spans.len(), at_a);
        let mut spans = taken.spans;
        if batch {
            b.insert_batch(&mut spans, &mut BatchOutput::default());
        } else {
            for s in spans {
                b.insert(s);
            }
        }
        for e in [&mut a, &mut never, &mut b, &mut whole] {
            e.advance();
            prop_assert!(e.drain_decided().next().is_none(), "all within decision_wait");
        }
        clock.advance_ms(10_000);
        for e in [&mut a, &mut never, &mut b, &mut whole] {
            e.advance();
        }
        prop_assert_eq!(decided(&mut a), decided(&mut never));
        prop_assert_eq!(decided(&mut b), decided(&mut whole));
        let (ca, cn) = (a.counters(), never.counters());
        prop_assert_eq!(ca.spans_exported, cn.spans_exported);
        prop_assert_eq!(ca.spans_dropped, cn.spans_dropped);
        prop_assert_eq!(ca.spans_buffered, cn.spans_buffered);
        prop_assert_eq!(ca.sampling_traces_on_memory, cn.sampling_traces_on_memory);
        prop_assert_eq!(ca.spans_received, cn.spans_received + at_a as u64);
        prop_assert_eq!((ca.handed_over_traces, ca.handed_over_spans), (1, at_a as u64));
        prop_assert_eq!(a.memory().retained_buffer_bytes, never.memory().retained_buffer_bytes);
        let (cb, cw) = (b.counters(), whole.counters());
        prop_assert_eq!(cb.spans_exported, cw.spans_exported);
        prop_assert_eq!(cb.spans_dropped, cw.spans_dropped);
    }
}

#[test]
fn defer_moves_the_deadline_later_never_earlier() {
    let (mut e, clock) = engine("decision_wait: 10s\ntailgate: {timer_tick: 100ms}");
    assert!(!e.defer(&id(1), T0 + 20 * SEC), "nothing pending");
    e.insert(span(&clock, 1, 1));
    assert_eq!(e.next_due(), Some(T0 + 10 * SEC));
    assert!(e.defer(&id(1), T0 + 5 * SEC));
    assert_eq!(e.next_due(), Some(T0 + 10 * SEC), "never earlier");
    assert!(e.defer(&id(1), T0 + 15 * SEC + 1));
    assert_eq!(
        e.next_due(),
        Some(T0 + 15_100 * MS),
        "rounded up to the tick"
    );
    clock.advance_ms(10_000);
    e.advance();
    assert!(decided(&mut e).is_empty(), "the old entry is stale");
    clock.advance_ms(5_099);
    e.advance();
    assert!(decided(&mut e).is_empty());
    clock.advance_ms(1);
    e.advance();
    assert_eq!(decided(&mut e).len(), 1);
    assert!(!e.defer(&id(1), T0 + 99 * SEC), "decided");
    assert_eq!(e.next_due(), None);
}

#[test]
fn a_root_span_does_not_bring_a_deferred_trace_before_its_floor() {
    let (mut e, clock) = engine(
        "decision_wait: 10s\ndecision_wait_after_root_received: 1s\ntailgate: {timer_tick: 100ms}",
    );
    e.insert(span(&clock, 1, 2));
    // Earlier than the deadline: the deadline stays, but the floor holds against the root.
    assert!(e.defer(&id(1), T0 + 4 * SEC));
    e.insert(span(&clock, 1, 1).root());
    assert_eq!(e.next_due(), Some(T0 + 4 * SEC));
    clock.advance_ms(3_999);
    e.advance();
    assert!(decided(&mut e).is_empty());
    clock.advance_ms(1);
    e.advance();
    assert_eq!(decided(&mut e).len(), 1);
}

/// A trace in the defer model: its undeferred deadline tick and its floor (ns).
#[derive(Debug, Clone, Copy)]
enum Model {
    Pending { deadline: u64, floor: u64 },
    Decided,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, .. ProptestConfig::default() })]

    /// Random inserts (roots among them), deferrals (earlier or later than the deadline) and
    /// clock steps: no trace is decided before a time it was deferred to, and each is decided at
    /// the first advance at or after max(its undeferred deadline, its latest floor's tick).
    #[test]
    fn defer_never_fires_early(
        steps in prop::collection::vec((0u128..6, 0u8..4, 0u64..3_000, 0u64..700), 1..120),
    ) {
        const TICK: u64 = 100 * MS;
        let (mut e, clock) = engine(
            "decision_wait: 1s\ndecision_wait_after_root_received: 300ms\nnum_traces: 100\n\
             tailgate: {timer_tick: 100ms}",
        );
        let tick_of = |ns: u64| ns.div_ceil(TICK);
        let mut model: HashMap<u128, Model> = HashMap::new();
        let mut span_id = 0;
        let mut last_advance = T0;
        for (trace, op, defer_ms, gap_ms) in steps {
            let now = clock.now_unix_nanos();
            match op {
                0 => {
                    let pending = matches!(model.get(&trace), Some(Model::Pending { .. }));
                    prop_assert_eq!(e.defer(&id(trace), now + defer_ms * MS), pending);
                    if let Some(Model::Pending { floor, .. }) = model.get_mut(&trace) {
                        *floor = (*floor).max(now + defer_ms * MS);
                    }
                }
                op => {
                    span_id += 1;
                    let mut s = span(&clock, trace, span_id);
                    let root = op == 1;
                    if root {
                        s = s.root();
                    }
                    let out = e.insert(s);
                    match model.get_mut(&trace) {
                        Some(Model::Decided) => prop_assert!(!matches!(out, InsertOutcome::Buffered)),
                        Some(Model::Pending { deadline, .. }) => {
                            if root {
                                *deadline = (*deadline).min(tick_of(now + 300 * MS));
                            }
                        }
                        None => {
                            let mut deadline = tick_of(now + SEC);
                            if root {
                                deadline = deadline.min(tick_of(now + 300 * MS));
                            }
                            model.insert(trace, Model::Pending { deadline, floor: 0 });
                        }
                    }
                }
            }
            // Roots only move a deadline earlier once per trace; the model's `min` above matches
            // that only for the first root, so later roots of a trace are no-ops in both.
            clock.advance_ms(gap_ms);
            let now = clock.now_unix_nanos();
            e.advance();
            for d in e.drain_decided() {
                let t = u128::from_be_bytes(d.trace_id);
                let Some(Model::Pending { deadline, floor }) = model.get(&t).copied() else {
                    return Err(TestCaseError::fail(format!("trace {t} decided but not pending")));
                };
                prop_assert!(now >= floor, "trace {} decided at {} before its floor {}", t, now, floor);
                let due = deadline.max(tick_of(floor)) * TICK;
                prop_assert!(now >= due && last_advance < due, "trace {} due {} decided at {} (last advance {})", t, due, now, last_advance);
                model.insert(t, Model::Decided);
            }
            for (t, m) in &model {
                if let Model::Pending { deadline, floor } = m {
                    prop_assert!((*deadline).max(tick_of(*floor)) * TICK > now, "trace {} overdue", t);
                }
            }
            last_advance = now;
        }
    }
}

#[test]
fn imported_decisions_answer_late_spans_like_local_ones() {
    let yaml = "decision_wait: 1s\nnum_traces: 2\n\
                decision_cache: {sampled_cache_size: 10, non_sampled_cache_size: 10}";
    // Local: traces 1 (kept) and 2 (not kept) decided here, then pushed out of the table by two
    // newer traces, so that their late spans are answered from the caches.
    let (mut local, clock) = engine(yaml);
    local.insert(span(&clock, 1, 1).status(StatusCode::Error));
    local.insert(span(&clock, 2, 1));
    clock.advance_ms(1_000);
    local.advance();
    local.drain_decided().for_each(drop);
    local.insert(span(&clock, 3, 1));
    local.insert(span(&clock, 4, 1));
    // Imported: the same decisions taken in from elsewhere, two pending traces of its own.
    let mut imported = engine_on(yaml, &clock);
    imported.insert(span(&clock, 3, 1));
    imported.insert(span(&clock, 4, 1));
    imported.import_decisions(&[(id(1), true), (id(2), false)]);
    assert_eq!(imported.counters().decisions_imported, 2);
    assert_eq!(
        imported.holds(&id(1)),
        HeldState::No,
        "imports take no slot"
    );
    assert_eq!(imported.counters().sampling_traces_on_memory, 2);
    assert_eq!(imported.counters().sampling_trace_dropped_too_early, 0);

    for e in [&mut local, &mut imported] {
        assert!(
            matches!(e.insert(span(&clock, 1, 9)), InsertOutcome::Forward(s) if s.span_id == 9u64.to_be_bytes())
        );
        assert!(matches!(
            e.insert(span(&clock, 2, 9)),
            InsertOutcome::Dropped(DropReason::LateNotSampled)
        ));
    }
    let (l, i) = (local.counters(), imported.counters());
    assert_eq!(
        (
            l.early_releases_from_cache_sampled,
            l.early_releases_from_cache_not_sampled
        ),
        (1, 1)
    );
    assert_eq!(
        (
            i.early_releases_from_cache_sampled,
            i.early_releases_from_cache_not_sampled
        ),
        (1, 1)
    );
    assert_eq!(i.spans_dropped.late_not_sampled, 1);
    assert_eq!(
        i.new_trace_id_received, 2,
        "no new trace for the late spans"
    );
}

#[test]
fn imports_use_an_internal_cache_when_the_decision_caches_are_off() {
    let yaml = "decision_wait: 1s\nnum_traces: 8\n\
                decision_cache: {sampled_cache_size: 0, non_sampled_cache_size: 0}";
    let (mut e, clock) = engine(yaml);
    e.insert(span(&clock, 5_000, 1));
    // 1,100 of each kind: more than the 1,024-entry minimum keeps, so the oldest are gone.
    let entries: Vec<([u8; 16], bool)> = (0..2_200u128).map(|t| (id(t), t % 2 == 0)).collect();
    e.import_decisions(&entries);
    // A trace held here keeps its own record.
    e.import_decisions(&[(id(5_000), true)]);
    assert_eq!(e.counters().decisions_imported, 2_200);
    assert!(matches!(e.holds(&id(5_000)), HeldState::Pending { .. }));
    assert_eq!(e.counters().sampling_traces_on_memory, 1);
    for t in 2_200 - 2 * 1_024..2_200u128 {
        let out = e.insert(span(&clock, t, 2));
        if t % 2 == 0 {
            assert!(matches!(out, InsertOutcome::Forward(_)), "trace {t}");
        } else {
            assert!(
                matches!(out, InsertOutcome::Dropped(DropReason::LateNotSampled)),
                "trace {t}"
            );
        }
    }
    assert!(
        matches!(e.insert(span(&clock, 0, 2)), InsertOutcome::Buffered),
        "pushed out FIFO"
    );
    clock.advance_ms(1_000);
    e.advance();
    let out = decided(&mut e);
    assert!(out
        .iter()
        .any(|d| d.0 == id(5_000) && d.1 == FinalDecision::NotSampled));
}
