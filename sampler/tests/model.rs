//! The engine against a small reference model (a FIFO of traces plus FIFO decision caches),
//! driven by random operations: every insert outcome, every decision, and the push-out counters
//! must agree. This pins down the collector's late-span semantics: a decided trace answers late
//! spans until `num_traces` newer traces push it out, then the caches answer, then a new trace
//! starts.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use proptest::prelude::*;
use tailgate_sampler::config::SamplerConfig;
use tailgate_sampler::testing::{FakeClock, TestSpan};
use tailgate_sampler::{DropReason, Engine, InsertOutcome, StatusCode};

const MS: u64 = 1_000_000;
const T0: u64 = 1_700_000_000_000 * MS;
const WAIT_MS: u64 = 1_000;
const TICK_MS: u64 = 100;

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Pending { deadline_ms: u64, error: bool },
    Decided(bool),
}

/// FIFO set with a capacity (0 = disabled), as the engine's caches.
#[derive(Default)]
struct Fifo {
    cap: usize,
    order: VecDeque<u128>,
}

impl Fifo {
    fn put(&mut self, t: u128) {
        if self.cap == 0 || self.order.contains(&t) {
            return;
        }
        if self.order.len() == self.cap {
            self.order.pop_front();
        }
        self.order.push_back(t);
    }
    fn contains(&self, t: u128) -> bool {
        self.order.contains(&t)
    }
}

struct Model {
    num_traces: usize,
    table: VecDeque<(u128, State)>,
    sampled: Fifo,
    non_sampled: Fifo,
    new_traces: u64,
    too_early: u64,
}

#[derive(Debug, PartialEq)]
enum Outcome {
    Buffered,
    Forward,
    Dropped,
}

impl Model {
    fn insert(&mut self, t: u128, error: bool, now_ms: u64) -> Outcome {
        if let Some((_, state)) = self.table.iter_mut().find(|(id, _)| *id == t) {
            return match state {
                State::Pending { error: e, .. } => {
                    *e |= error;
                    Outcome::Buffered
                }
                State::Decided(true) => Outcome::Forward,
                State::Decided(false) => Outcome::Dropped,
            };
        }
        if self.sampled.contains(t) {
            return Outcome::Forward;
        }
        if self.non_sampled.contains(t) {
            return Outcome::Dropped;
        }
        if self.table.len() == self.num_traces {
            if let Some((_, State::Pending { .. })) = self.table.pop_front() {
                self.too_early += 1;
            }
        }
        self.new_traces += 1;
        self.table.push_back((
            t,
            State::Pending {
                deadline_ms: now_ms + WAIT_MS,
                error,
            },
        ));
        Outcome::Buffered
    }

    /// Decides what is due in deadline order, then arrival order (the wheel's order), which
    /// matters for which IDs a small cache keeps.
    fn advance(&mut self, now_ms: u64) -> BTreeMap<u128, bool> {
        let mut due = Vec::new();
        for (t, state) in self.table.iter_mut() {
            if let State::Pending { deadline_ms, error } = *state {
                if deadline_ms <= now_ms {
                    *state = State::Decided(error);
                    due.push((deadline_ms, *t, error));
                }
            }
        }
        due.sort_by_key(|d| d.0);
        let decided: BTreeMap<u128, bool> = due.iter().map(|d| (d.1, d.2)).collect();
        for (_, t, sampled) in &due {
            let (t, sampled) = (t, sampled);
            if *sampled {
                self.sampled.put(*t);
            } else {
                self.non_sampled.put(*t);
            }
        }
        decided
    }
}

#[derive(Debug, Clone)]
enum Op {
    Insert { trace: u128, error: bool },
    Advance { ticks: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u128..24, prop::bool::weighted(0.3)).prop_map(|(trace, error)| Op::Insert { trace, error }),
        1 => (1u64..15).prop_map(|ticks| Op::Advance { ticks }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, .. ProptestConfig::default() })]

    #[test]
    fn engine_matches_the_model(ops in prop::collection::vec(op(), 1..400), num_traces in 1usize..10, sampled_cache in 0usize..6, non_sampled_cache in 0usize..6) {
        let yaml = format!(
            "decision_wait: {WAIT_MS}ms\nnum_traces: {num_traces}\ntailgate: {{timer_tick: {TICK_MS}ms}}\n\
             decision_cache: {{sampled_cache_size: {sampled_cache}, non_sampled_cache_size: {non_sampled_cache}}}\n\
             policies: [{{name: errors, type: status_code, status_code: {{status_codes: [ERROR]}}}}]"
        );
        let (cfg, _) = SamplerConfig::from_yaml_str(&yaml).unwrap();
        let clock = FakeClock::at(T0);
        let mut engine: Engine<TestSpan, FakeClock> = Engine::new(&cfg, clock.clone()).unwrap();
        let mut model = Model {
            num_traces,
            table: VecDeque::new(),
            sampled: Fifo { cap: sampled_cache, ..Fifo::default() },
            non_sampled: Fifo { cap: non_sampled_cache, ..Fifo::default() },
            new_traces: 0,
            too_early: 0,
        };
        let mut now_ms = 0;
        let mut span_id = 0;
        for op in ops {
            match op {
                Op::Insert { trace, error } => {
                    span_id += 1;
                    let status = if error { StatusCode::Error } else { StatusCode::Unset };
                    let span = TestSpan::new(trace, span_id, T0, T0 + MS).status(status);
                    let got = match engine.insert(span) {
                        InsertOutcome::Buffered => Outcome::Buffered,
                        InsertOutcome::Forward(_) => Outcome::Forward,
                        InsertOutcome::Dropped(DropReason::LateNotSampled) => Outcome::Dropped,
                        other => panic!("unexpected {other:?}"),
                    };
                    prop_assert_eq!(got, model.insert(trace, error, now_ms), "trace {}", trace);
                }
                Op::Advance { ticks } => {
                    now_ms += ticks * TICK_MS;
                    clock.advance_ms(ticks * TICK_MS);
                    engine.advance();
                    let got: BTreeMap<u128, bool> = engine
                        .drain_decided()
                        .map(|d| (u128::from_be_bytes(d.trace_id), d.decision.is_sampled()))
                        .collect();
                    prop_assert_eq!(got, model.advance(now_ms));
                }
            }
            let c = engine.counters();
            prop_assert_eq!(c.new_trace_id_received, model.new_traces);
            prop_assert_eq!(c.sampling_trace_dropped_too_early, model.too_early);
            let known: BTreeSet<u128> = model.table.iter().map(|(t, _)| *t).collect();
            prop_assert_eq!(c.sampling_traces_on_memory, known.len() as u64);
        }
    }
}
