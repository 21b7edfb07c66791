//! `Engine::next_due` against a small reference model: after random inserts and clock advances
//! (off the tick grid), it must be the earliest deadline among the pending traces, rounded as the
//! wheel rounds, and advancing to just before it must decide nothing, to it something. The model
//! covers every way a trace stops waiting for its deadline: decided by its timer, moved earlier
//! by its root span, decided at once as too large, pushed out by `num_traces`, evicted by the
//! byte budget, and shutdown.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::{BTreeSet, VecDeque};

use proptest::prelude::*;
use tailgate_sampler::config::SamplerConfig;
use tailgate_sampler::testing::{FakeClock, TestSpan};
use tailgate_sampler::{Clock, Engine};

const MS: u64 = 1_000_000;
/// Not on most of the tick grids tried.
const T0: u64 = 1_700_000_000_123 * MS + 456_789;
/// `TestSpan`'s wire size (and buffer size: each span has its own buffer).
const SPAN_BYTES: u64 = 225;

#[derive(Debug, Clone, Copy)]
enum State {
    Pending {
        deadline_tick: u64,
        spans: u64,
        root: bool,
    },
    Decided,
    /// Evicted by the byte budget: forgotten, but its ring slot stays until reused.
    Evicted,
}

#[derive(Debug, Clone)]
struct Settings {
    tick_ms: u64,
    wait_ms: u64,
    after_root_ms: Option<u64>,
    num_traces: usize,
    max_trace_bytes: Option<u64>,
    budget_bytes: Option<u64>,
    drop_pending_on_shutdown: bool,
}

struct Model {
    s: Settings,
    /// Last tick the wheel processed.
    current: u64,
    /// The ring of traces in arrival order.
    table: VecDeque<(u128, State)>,
}

impl Model {
    fn tick_ns(&self) -> u64 {
        self.s.tick_ms * MS
    }

    /// The wheel's rounding: up to the next tick, never the current one or earlier.
    fn tick_for(&self, at_ns: u64) -> u64 {
        at_ns.div_ceil(self.tick_ns()).max(self.current + 1)
    }

    /// Inserts a span; returns the trace if that decided it (too large).
    fn insert(&mut self, trace: u128, root: bool, now: u64) -> Option<u128> {
        let known = self
            .table
            .iter()
            .position(|(t, s)| *t == trace && !matches!(s, State::Evicted));
        let idx = match known {
            Some(i) if matches!(self.table[i].1, State::Decided) => return None,
            Some(i) => i,
            None => {
                if self.table.len() == self.s.num_traces {
                    self.table.pop_front();
                }
                let deadline_tick = self.tick_for(now + self.s.wait_ms * MS);
                let state = State::Pending {
                    deadline_tick,
                    spans: 0,
                    root: false,
                };
                self.table.push_back((trace, state));
                self.table.len() - 1
            }
        };
        let State::Pending {
            deadline_tick,
            spans,
            root: had_root,
        } = self.table[idx].1
        else {
            unreachable!()
        };
        let spans = spans + 1;
        if self
            .s
            .max_trace_bytes
            .is_some_and(|max| spans * SPAN_BYTES > max)
        {
            self.table[idx].1 = State::Decided;
            return Some(trace);
        }
        let mut deadline = deadline_tick;
        if let (true, false, Some(after)) = (root, had_root, self.s.after_root_ms) {
            deadline = deadline.min(self.tick_for(now + after * MS));
        }
        self.table[idx].1 = State::Pending {
            deadline_tick: deadline,
            spans,
            root: root || had_root,
        };
        if let Some(budget) = self.s.budget_bytes {
            while self.pending_spans() * SPAN_BYTES > budget {
                let oldest = self
                    .table
                    .iter_mut()
                    .find(|(_, s)| matches!(s, State::Pending { .. }));
                match oldest {
                    Some((_, s)) => *s = State::Evicted,
                    None => break,
                }
            }
        }
        None
    }

    fn pending_spans(&self) -> u64 {
        self.table
            .iter()
            .map(|(_, s)| match s {
                State::Pending { spans, .. } => *spans,
                _ => 0,
            })
            .sum()
    }

    /// Decides every trace due by `now`, as `Engine::advance` does.
    fn advance(&mut self, now: u64) -> BTreeSet<u128> {
        let target = now / self.tick_ns();
        let mut decided = BTreeSet::new();
        if target <= self.current {
            return decided;
        }
        self.current = target;
        for (t, s) in self.table.iter_mut() {
            if let State::Pending { deadline_tick, .. } = *s {
                if deadline_tick <= target {
                    *s = State::Decided;
                    decided.insert(*t);
                }
            }
        }
        decided
    }

    /// What `Engine::next_due` must say.
    fn next_due(&self) -> Option<u64> {
        self.table
            .iter()
            .filter_map(|(_, s)| match s {
                State::Pending { deadline_tick, .. } => Some(deadline_tick * self.tick_ns()),
                _ => None,
            })
            .min()
    }
}

#[derive(Debug, Clone)]
enum Op {
    Insert {
        trace: u128,
        root: bool,
    },
    Advance {
        ns: u64,
    },
    /// Advance to just before `next_due` (nothing may be decided), then to it (something must).
    ToNextDue,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u128..16, prop::bool::weighted(0.2)).prop_map(|(trace, root)| Op::Insert { trace, root }),
        2 => (0u64..1_500 * MS).prop_map(|ns| Op::Advance { ns }),
        1 => Just(Op::ToNextDue),
    ]
}

fn settings() -> impl Strategy<Value = Settings> {
    (
        1u64..=200,
        1u64..=3_000,
        prop::option::of(1u64..=3_000),
        1usize..12,
        prop::option::of(1u64..6),
        prop::option::of(1u64..10),
        any::<bool>(),
    )
        .prop_map(
            |(
                tick_ms,
                wait_ms,
                after_root_ms,
                num_traces,
                max_spans,
                budget_spans,
                drop_pending_on_shutdown,
            )| {
                Settings {
                    drop_pending_on_shutdown,
                    tick_ms,
                    wait_ms,
                    after_root_ms,
                    num_traces,
                    max_trace_bytes: max_spans.map(|n| n * SPAN_BYTES + 1),
                    budget_bytes: budget_spans.map(|n| n * SPAN_BYTES + 1),
                }
            },
        )
}

fn engine(s: &Settings, clock: &FakeClock) -> Engine<TestSpan, FakeClock> {
    let mut yaml = format!(
        "decision_wait: {}ms\nnum_traces: {}\n\
         decision_cache: {{sampled_cache_size: 0, non_sampled_cache_size: 0}}\n\
         drop_pending_traces_on_shutdown: {}\n\
         policies: [{{name: all, type: always_sample}}]\n",
        s.wait_ms, s.num_traces, s.drop_pending_on_shutdown
    );
    if let Some(after) = s.after_root_ms {
        yaml += &format!("decision_wait_after_root_received: {after}ms\n");
    }
    if let Some(max) = s.max_trace_bytes {
        yaml += &format!("maximum_trace_size_bytes: {max}\n");
    }
    yaml += &format!("tailgate: {{timer_tick: {}ms", s.tick_ms);
    if let Some(budget) = s.budget_bytes {
        yaml += &format!(", max_buffered_bytes: {budget}");
    }
    yaml += "}\n";
    let (cfg, _) = SamplerConfig::from_yaml_str(&yaml).unwrap();
    Engine::new(&cfg, clock.clone()).unwrap()
}

fn decided(engine: &mut Engine<TestSpan, FakeClock>) -> BTreeSet<u128> {
    engine
        .drain_decided()
        .map(|d| u128::from_be_bytes(d.trace_id))
        .collect()
}

/// Moves the clock to `to` and advances engine and model; both must decide the same traces.
fn step(
    engine: &mut Engine<TestSpan, FakeClock>,
    model: &mut Model,
    clock: &FakeClock,
    to: u64,
) -> Result<usize, TestCaseError> {
    clock.advance_ns(to - clock.now_unix_nanos());
    engine.advance();
    let want = model.advance(to);
    prop_assert_eq!(decided(engine), want.clone());
    Ok(want.len())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn next_due_is_the_earliest_pending_deadline(
        s in settings(),
        ops in prop::collection::vec(op(), 1..300),
    ) {
        let clock = FakeClock::at(T0);
        let mut engine = engine(&s, &clock);
        let mut model = Model { current: T0 / (s.tick_ms * MS), s, table: VecDeque::new() };
        let mut span_id = 0;
        for op in ops {
            let now = clock.now_unix_nanos();
            match op {
                Op::Insert { trace, root } => {
                    span_id += 1;
                    let mut span = TestSpan::new(trace, span_id, T0, T0 + MS);
                    if root {
                        span = span.root();
                    }
                    engine.insert(span);
                    let want: BTreeSet<u128> = model.insert(trace, root, now).into_iter().collect();
                    prop_assert_eq!(decided(&mut engine), want);
                }
                Op::Advance { ns } => {
                    step(&mut engine, &mut model, &clock, now + ns)?;
                }
                Op::ToNextDue => {
                    if let Some(at) = engine.next_due() {
                        if at > now {
                            prop_assert_eq!(step(&mut engine, &mut model, &clock, at - 1)?, 0);
                        }
                        let to = at.max(now);
                        prop_assert!(step(&mut engine, &mut model, &clock, to)? > 0);
                    }
                }
            }
            prop_assert_eq!(engine.next_due(), model.next_due());
        }
        let pending = model.table.iter().filter(|(_, s)| matches!(s, State::Pending { .. })).count();
        let drop_pending = model.s.drop_pending_on_shutdown;
        engine.shutdown();
        prop_assert_eq!(decided(&mut engine).len(), if drop_pending { 0 } else { pending });
        prop_assert_eq!(engine.next_due(), None);
    }
}
