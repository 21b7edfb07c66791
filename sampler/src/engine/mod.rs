//! The engine of one shard: buffers spans per trace, fires decisions from the timer wheel,
//! answers late spans, enforces limits, and reports decided traces.

mod arena;
mod cache;
mod counters;
mod index;
mod ledger;
mod table;
mod wheel;

use crate::clock::Clock;
use crate::config::SamplerConfig;
use crate::policy::{
    combine, evaluate_policies, Decision, Evaluation, FinalDecision, Policy, TraceView,
};
use crate::span::{SpanData, SummaryFields};

pub use cache::{fingerprint, DecisionCache};
pub use counters::{Counters, DecisionCounts, DropReason, DroppedSpans, Histogram, PolicyCounters};
pub use ledger::BufferLedger;
pub use table::SlotState;
pub use wheel::{TimerEntry, TimerWheel};

use table::TraceTable;

const NS_PER_SEC: u64 = 1_000_000_000;

/// Spans of a batch whose cache misses [`Engine::insert_batch`] takes together before inserting
/// them: enough for the CPU to keep as many misses in flight as it can, few enough that the
/// lines fetched stay in L2 until used.
const STAGE_GROUP: usize = 256;

/// Fewest entries of the internal cache [`Engine::import_decisions`] uses when a decision cache
/// is configured at 0.
const MIN_IMPORT_CACHE: usize = 1024;

/// What happened to a span handed to [`Engine::insert`].
#[derive(Debug)]
pub enum InsertOutcome<S> {
    /// Buffered until its trace is decided.
    Buffered,
    /// Its trace is already known as kept: export it now.
    Forward(S),
    /// Dropped (and counted) for this reason.
    Dropped(DropReason),
    /// The table is full of undecided traces and `block_on_overflow` is set: the caller keeps the
    /// span and retries after the next [`Engine::advance`].
    Rejected(S),
}

/// Why a trace was decided when it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecisionCause {
    /// Its timer fired and the policies ran.
    Policies,
    /// It grew past `maximum_trace_size_bytes` (not sampled, policies not run).
    TooLarge,
    /// Pushed out undecided by `num_traces` or the byte budget (spans dropped).
    Evicted,
    /// Decided by [`Engine::shutdown`].
    Shutdown,
}

/// Top-level policies, as a bit per policy index (evaluation order, see
/// [`Engine::policy_names`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PolicySet(pub u64);

impl PolicySet {
    /// Indexes in the set.
    pub fn iter(self) -> impl Iterator<Item = usize> {
        (0..64).filter(move |i| self.0 & (1 << i) != 0)
    }
    /// Is policy `i` in the set?
    pub fn contains(self, i: usize) -> bool {
        i < 64 && self.0 & (1 << i) != 0
    }
}

/// A trace whose fate was settled.
#[derive(Debug)]
pub struct DecidedTrace<S> {
    /// Trace ID.
    pub trace_id: [u8; 16],
    /// The decision.
    pub decision: FinalDecision,
    /// Why now.
    pub cause: DecisionCause,
    /// Policies that voted to keep (or, for `drop` policies, to drop).
    pub matched: PolicySet,
    /// The first policy responsible for the decision (the collector's `tailsampling.policy`).
    pub policy: Option<u16>,
    /// Spans the trace had when decided.
    pub span_count: u64,
    /// The spans, in arrival order, if kept; empty otherwise.
    pub spans: Vec<S>,
}

/// An undecided trace removed by [`Engine::take_pending`].
#[derive(Debug)]
pub struct Taken<S> {
    /// Its spans, in arrival order.
    pub spans: Vec<S>,
    /// When its first span arrived here (Unix ns on the engine's clock).
    pub first_seen_ns: u64,
}

/// What an engine holds of a trace ([`Engine::holds`], [`Engine::held`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeldState {
    /// Undecided, buffering spans since `first_seen` (Unix ns).
    Pending {
        /// When its first span arrived.
        first_seen: u64,
    },
    /// Decided at `at` (Unix ns) and still in the table, so late spans are answered from it.
    Decided {
        /// Kept (sampled)?
        kept: bool,
        /// When decided.
        at: u64,
    },
    /// Not in the table: never seen, pushed out, evicted, or handed over. Decisions known only
    /// from the decision caches (local or imported) are `No` too: the caches keep no time, and
    /// they still answer late spans.
    No,
}

/// Settings the engine uses at run time (derived from [`SamplerConfig`] for one shard).
#[derive(Debug, Clone)]
struct Settings {
    decision_wait_ns: u64,
    after_root_ns: Option<u64>,
    block_on_overflow: bool,
    sample_on_first_match: bool,
    drop_pending_on_shutdown: bool,
    max_trace_bytes: Option<u64>,
    max_buffered_bytes: Option<u64>,
}

/// Why an engine could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// More top-level policies than the matched-policy bit set holds.
    #[error("{0} top-level policies configured; at most 64 are supported")]
    TooManyPolicies(usize),
    /// `num_traces` per shard must fit the table's 32-bit slot numbers.
    #[error("num_traces per shard must be between 1 and 2147483647, got {0}")]
    BadNumTraces(u64),
}

/// Memory the engine holds, for the memory-overhead figure and the proxy's gauges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryStats {
    /// Undecided spans buffered.
    pub spans_buffered: u64,
    /// Bytes of those spans (sum of wire sizes).
    pub span_bytes: u64,
    /// Bytes of the distinct request buffers they pin.
    pub retained_buffer_bytes: u64,
    /// Heap bytes of the engine's own structures (table, index, slab, wheel, caches, ledger).
    pub engine_heap_bytes: u64,
}

/// One shard's tail-sampling engine. Single-threaded; the runtime owns one per core.
pub struct Engine<S, C> {
    settings: Settings,
    clock: C,
    policies: Vec<Policy>,
    policy_names: Vec<String>,
    table: TraceTable<S>,
    wheel: TimerWheel,
    sampled_cache: DecisionCache,
    non_sampled_cache: DecisionCache,
    /// Imported kept decisions when `sampled_cache_size` is 0 (capacity 0 otherwise).
    imported_sampled: DecisionCache,
    /// Imported not-kept decisions when `non_sampled_cache_size` is 0 (capacity 0 otherwise).
    imported_not_sampled: DecisionCache,
    ledger: BufferLedger,
    counters: Counters,
    decided: Vec<DecidedTrace<S>>,
    due: Vec<TimerEntry>,
    hints: Vec<Option<u32>>,
    /// Per batch: each span's index fingerprint.
    fingerprints: Vec<u32>,
    /// Per batch: each span's trace ID.
    ids: Vec<[u8; 16]>,
}

/// Spans handed back by [`Engine::insert_batch`].
#[derive(Debug)]
pub struct BatchOutput<S> {
    /// Late spans of kept traces: export them now.
    pub forward: Vec<S>,
    /// Spans refused because the table is full of undecided traces (`block_on_overflow`).
    pub rejected: Vec<S>,
}

impl<S> Default for BatchOutput<S> {
    fn default() -> Self {
        BatchOutput {
            forward: Vec::new(),
            rejected: Vec::new(),
        }
    }
}

impl<S: SpanData, C: Clock> Engine<S, C> {
    /// Builds a shard's engine: its table holds `config.num_traces_per_shard()` traces.
    pub fn new(config: &SamplerConfig, clock: C) -> Result<Self, EngineError> {
        if config.policies.len() > 64 {
            return Err(EngineError::TooManyPolicies(config.policies.len()));
        }
        let capacity = config.num_traces_per_shard();
        if capacity == 0 || capacity > u64::from(u32::MAX / 2) {
            return Err(EngineError::BadNumTraces(capacity));
        }
        // Drop policies first, as the collector orders them on load.
        let mut named: Vec<(String, Policy)> = config
            .policies
            .iter()
            .map(|p| {
                (
                    p.name.clone(),
                    Policy::build_for_shard(p, config.num_shards),
                )
            })
            .collect();
        named.sort_by_key(|(_, p)| !p.is_drop());
        let (policy_names, policies): (Vec<String>, Vec<Policy>) = named.into_iter().unzip();
        let decision_wait_ns = duration_ns(config.decision_wait);
        let after_root_ns = config.decision_wait_after_root_received.map(duration_ns);
        let tick_ns = duration_ns(config.timer_tick).max(1);
        let now = clock.now_unix_nanos();
        let shards = u64::from(config.num_shards.max(1));
        let expected = (config
            .expected_new_traces_per_sec
            .saturating_mul(decision_wait_ns / NS_PER_SEC + 1)) as usize;
        let sampled_cache = (config.sampled_cache_size / shards) as usize;
        let non_sampled_cache = (config.non_sampled_cache_size / shards) as usize;
        // Imported decisions need somewhere to live even when the user turned a cache off: a
        // leaving gateway's decisions must answer the late spans that follow them here.
        let import_cache = ((capacity / 4) as usize).max(MIN_IMPORT_CACHE);
        Ok(Engine {
            settings: Settings {
                decision_wait_ns,
                after_root_ns,
                block_on_overflow: config.block_on_overflow,
                sample_on_first_match: config.sample_on_first_match,
                drop_pending_on_shutdown: config.drop_pending_traces_on_shutdown,
                max_trace_bytes: config.maximum_trace_size_bytes,
                max_buffered_bytes: config.max_buffered_bytes.map(|b| b / shards),
            },
            clock,
            counters: Counters::new(&policy_names),
            policies,
            policy_names,
            table: TraceTable::new(capacity as usize, expected / shards as usize),
            wheel: TimerWheel::new(
                tick_ns,
                decision_wait_ns.max(after_root_ns.unwrap_or(0)),
                now,
            ),
            sampled_cache: DecisionCache::new(sampled_cache),
            non_sampled_cache: DecisionCache::new(non_sampled_cache),
            imported_sampled: DecisionCache::new(if sampled_cache == 0 { import_cache } else { 0 }),
            imported_not_sampled: DecisionCache::new(if non_sampled_cache == 0 {
                import_cache
            } else {
                0
            }),
            ledger: BufferLedger::default(),
            decided: Vec::new(),
            due: Vec::new(),
            hints: Vec::new(),
            fingerprints: Vec::new(),
            ids: Vec::new(),
        })
    }

    /// Policy names in evaluation order (drop policies first); [`PolicySet`] bits index this.
    pub fn policy_names(&self) -> &[String] {
        &self.policy_names
    }

    /// The counters (gauges refreshed).
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// When the next decision falls due, as Unix ns on the engine's clock: [`Engine::advance`]
    /// at any earlier time decides no trace by its timer, and at this time or later decides at
    /// least one. The start of the earliest `timer_tick` at which a pending trace's
    /// `decision_wait` (or `decision_wait_after_root_received`) ends; `None` while no trace is
    /// pending. O(1), so a runtime can ask after every insert and sleep until then.
    pub fn next_due(&self) -> Option<u64> {
        self.wheel.next_due_ns()
    }

    /// Traces decided since the last call, with their spans if kept.
    pub fn drain_decided(&mut self) -> std::vec::Drain<'_, DecidedTrace<S>> {
        self.decided.drain(..)
    }

    /// Memory held now.
    pub fn memory(&self) -> MemoryStats {
        MemoryStats {
            spans_buffered: self.counters.spans_buffered,
            span_bytes: self.ledger.live_bytes(),
            retained_buffer_bytes: self.ledger.retained_bytes(),
            engine_heap_bytes: (self.table.heap_bytes()
                + self.wheel.heap_bytes()
                + self.sampled_cache.heap_bytes()
                + self.non_sampled_cache.heap_bytes()
                + self.imported_sampled.heap_bytes()
                + self.imported_not_sampled.heap_bytes()
                + self.ledger.heap_bytes()) as u64,
        }
    }

    // === insert ===

    /// Takes one span.
    pub fn insert(&mut self, span: S) -> InsertOutcome<S> {
        let now = self.clock.now_unix_nanos();
        let found = self.table.find(&span.trace_id());
        let fields = span.summary_fields();
        self.insert_at(span, fields, found, now)
    }

    /// Takes a batch of spans (e.g. one request's), leaving `spans` empty. Kept-trace late spans
    /// go to `out.forward`, refused ones (`block_on_overflow`) to `out.rejected`; dropped ones
    /// are counted. Faster than [`Engine::insert`] per span: all index probes of the batch are
    /// issued first, so their cache misses overlap instead of queueing one behind another.
    pub fn insert_batch(&mut self, spans: &mut Vec<S>, out: &mut BatchOutput<S>) {
        self.insert_batch_summarized(spans, &mut Vec::new(), out);
    }

    /// [`Engine::insert_batch`] with each span's [`SummaryFields`] already read, `fields[i]`
    /// being those of `spans[i]` (e.g. by the scan that made the spans:
    /// [`crate::span::proto_view::scan_summarized`]), so that inserting reads nothing of a span
    /// but its trace ID, size and buffer. A span without an entry in `fields` has its fields
    /// read. Leaves both lists empty.
    pub fn insert_batch_summarized(
        &mut self,
        spans: &mut Vec<S>,
        fields: &mut Vec<SummaryFields>,
        out: &mut BatchOutput<S>,
    ) {
        let now = self.clock.now_unix_nanos();
        let mut hints = std::mem::take(&mut self.hints);
        hints.clear();
        // Pass 1, in stages whose loads do not depend on one another within a stage, so the
        // CPU overlaps their cache (and TLB) misses: the IDs and fingerprints (no misses: the
        // spans were just scanned), the index lines, the probes (which read the slots), then the
        // chunk places the spans go to. Each miss-taking loop is kept tight, so that many of its
        // iterations fit in the CPU's reorder window and their misses are in flight together.
        let mut fingerprints = std::mem::take(&mut self.fingerprints);
        fingerprints.clear();
        let mut ids = std::mem::take(&mut self.ids);
        ids.clear();
        for span in spans.iter() {
            let id = span.trace_id();
            fingerprints.push(TraceTable::<S>::fingerprint(&id));
            ids.push(id);
        }
        // The stages and the work run a group of spans at a time, so that what the stages
        // brought into the cache is still there (in L2) when the work needs it.
        let mut given = fields.drain(..);
        let mut spans = spans.drain(..);
        for (ids, fps) in ids
            .chunks(STAGE_GROUP)
            .zip(fingerprints.chunks(STAGE_GROUP))
        {
            hints.clear();
            let mut touch = 0u64;
            for fp in fps.iter() {
                touch ^= self.table.touch_index(*fp);
            }
            for (id, fp) in ids.iter().zip(fps.iter()) {
                hints.push(self.table.find_fp(*fp, id));
            }
            for idx in hints.iter().flatten() {
                touch ^= self.table.touch(*idx);
            }
            std::hint::black_box(touch);
            // Pass 2: the real work. A hint is trusted only if its slot still holds this trace
            // (earlier spans of the batch may have pushed traces out); otherwise probe again.
            for (hint, id) in hints.iter().copied().zip(ids.iter().copied()) {
                // As many spans as IDs: `spans` is not exhausted here.
                let Some(span) = spans.next() else { break };
                let summary = given.next().unwrap_or_else(|| span.summary_fields());
                let found = match hint {
                    Some(idx) if self.table.holds(idx, &id) => Some(idx),
                    _ => self.table.find(&id),
                };
                match self.insert_at(span, summary, found, now) {
                    InsertOutcome::Forward(s) => out.forward.push(s),
                    InsertOutcome::Rejected(s) => out.rejected.push(s),
                    InsertOutcome::Buffered | InsertOutcome::Dropped(_) => {}
                }
            }
        }
        drop(spans);
        self.fingerprints = fingerprints;
        drop(given);
        self.hints = hints;
        self.ids = ids;
    }

    /// `insert` with the index probe already done (`found` = the trace's slot, if indexed) and
    /// the span's summary fields read.
    fn insert_at(
        &mut self,
        span: S,
        fields: SummaryFields,
        found: Option<u32>,
        now: u64,
    ) -> InsertOutcome<S> {
        self.counters.spans_received += 1;
        if let Some(idx) = found {
            let slot = &self.table.slots[idx as usize];
            return match slot.state {
                SlotState::Pending => self.buffer(idx, span, fields, now),
                SlotState::Decided(d) => {
                    let decided_ns = self.table.times[idx as usize].decided_ns;
                    let age = now.saturating_sub(decided_ns) / NS_PER_SEC;
                    self.counters.sampling_late_span_age.record(age);
                    self.late(span, d.is_sampled())
                }
                SlotState::Empty | SlotState::Evicted => self.new_trace(span, fields, now),
            };
        }
        let id = span.trace_id();
        if self.sampled_cache.contains(&id) {
            self.counters.early_releases_from_cache_sampled += 1;
            return self.late(span, true);
        }
        if self.non_sampled_cache.contains(&id) {
            self.counters.early_releases_from_cache_not_sampled += 1;
            return self.late(span, false);
        }
        // Empty until something is imported (one compare each).
        if self.imported_sampled.contains(&id) {
            self.counters.early_releases_from_cache_sampled += 1;
            return self.late(span, true);
        }
        if self.imported_not_sampled.contains(&id) {
            self.counters.early_releases_from_cache_not_sampled += 1;
            return self.late(span, false);
        }
        self.new_trace(span, fields, now)
    }

    fn late(&mut self, span: S, sampled: bool) -> InsertOutcome<S> {
        if sampled {
            self.counters.spans_exported += 1;
            InsertOutcome::Forward(span)
        } else {
            self.counters
                .spans_dropped
                .add(DropReason::LateNotSampled, 1);
            InsertOutcome::Dropped(DropReason::LateNotSampled)
        }
    }

    fn new_trace(&mut self, span: S, fields: SummaryFields, now: u64) -> InsertOutcome<S> {
        let (_, occupant) = self.table.next_slot();
        if let Some(old) = occupant {
            if old.state == SlotState::Pending && self.settings.block_on_overflow {
                self.counters.spans_received -= 1;
                self.counters.spans_rejected += 1;
                return InsertOutcome::Rejected(span);
            }
        }
        let (next, occupant) = self.table.next_slot();
        if let Some(old) = occupant {
            let (state, first_seen) = (old.state, self.table.times[next as usize].first_seen_ns);
            if state == SlotState::Pending {
                self.evict(next, now);
            }
            if state != SlotState::Evicted {
                self.counters
                    .sampling_trace_removal_age
                    .record(now.saturating_sub(first_seen) / NS_PER_SEC);
            }
        }
        if fields
            .end_unix_nanos
            .saturating_add(self.settings.decision_wait_ns)
            < now
        {
            self.counters.late_spans_new_trace += 1;
        }
        let idx = self.table.claim(span.trace_id(), now);
        self.counters.new_trace_id_received += 1;
        let deadline = self
            .wheel
            .tick_for(now.saturating_add(self.settings.decision_wait_ns));
        self.schedule(idx, deadline);
        self.refresh_gauges();
        self.buffer(idx, span, fields, now)
    }

    fn schedule(&mut self, idx: u32, deadline: u64) {
        let times = &mut self.table.times[idx as usize];
        times.deadline_tick = deadline;
        self.wheel.schedule(TimerEntry {
            slot: idx,
            generation: times.seq as u32,
            deadline,
        });
    }

    /// Tells the wheel that a pending trace stops waiting for its deadline (it is being decided
    /// or evicted), so that [`Engine::next_due`] no longer counts it.
    fn unschedule(&mut self, idx: u32) {
        self.wheel
            .cancel(self.table.times[idx as usize].deadline_tick);
    }

    fn buffer(&mut self, idx: u32, span: S, fields: SummaryFields, now: u64) -> InsertOutcome<S> {
        let is_root = fields.is_root;
        let wire_len = span.wire_len();
        self.ledger.acquire(span.buffer(), wire_len);
        let slot = &mut self.table.slots[idx as usize];
        let had_root = slot.summary.root_seen;
        slot.summary.add_fields(&fields, wire_len);
        let bytes = slot.summary.bytes;
        self.table.push_span(idx, span);
        self.counters.spans_buffered += 1;

        if let Some(limit) = self.settings.max_trace_bytes {
            if bytes > limit {
                self.counters.traces_dropped_too_large += 1;
                self.settle(
                    idx,
                    FinalDecision::NotSampled,
                    DecisionCause::TooLarge,
                    PolicySet::default(),
                    None,
                    now,
                );
                return InsertOutcome::Buffered;
            }
        }
        if is_root && !had_root {
            if let Some(after) = self.settings.after_root_ns {
                let times = self.table.times[idx as usize];
                // Never before a floor set by `defer` (`decided_ns` while pending).
                let earlier = self
                    .wheel
                    .tick_for(now.saturating_add(after).max(times.decided_ns));
                let deadline = times.deadline_tick;
                if earlier < deadline {
                    self.wheel.cancel(deadline);
                    self.schedule(idx, earlier);
                }
            }
        }
        if let Some(budget) = self.settings.max_buffered_bytes {
            if self.ledger.retained_bytes() > budget {
                self.enforce_budget(budget, now);
            }
        }
        InsertOutcome::Buffered
    }

    // === membership: hand-over, holdings, deferral, imported decisions ===

    /// Removes an undecided trace and returns its spans (in arrival order) and when it was first
    /// seen, to hand it to another gateway; `None` unless the trace is pending here. Its slot
    /// becomes empty without pushing another trace out, its timer is cancelled, its bytes leave
    /// the ledger, and no decision is recorded (a late span of it here starts a new trace).
    /// Counted in [`Counters::handed_over_traces`] / [`Counters::handed_over_spans`].
    pub fn take_pending(&mut self, id: &[u8; 16]) -> Option<Taken<S>> {
        let idx = self.table.find(id)?;
        if self.table.slots[idx as usize].state != SlotState::Pending {
            return None;
        }
        // The wheel entry stays in its bucket and is recognised as stale when it expires (the
        // slot is no longer pending), as for a trace decided early or evicted.
        self.unschedule(idx);
        let first_seen_ns = self.table.times[idx as usize].first_seen_ns;
        let spans = self.table.vacate(idx);
        let ledger = &mut self.ledger;
        spans
            .iter()
            .for_each(|s| ledger.release(s.buffer(), s.wire_len()));
        let n = spans.len() as u64;
        self.counters.spans_buffered -= n;
        self.counters.handed_over_traces += 1;
        self.counters.handed_over_spans += n;
        self.refresh_gauges();
        Some(Taken {
            spans,
            first_seen_ns,
        })
    }

    /// What the table holds of a trace (one index probe).
    pub fn holds(&self, id: &[u8; 16]) -> HeldState {
        match self.table.find(id) {
            Some(idx) => self.held_at(idx as usize),
            None => HeldState::No,
        }
    }

    /// Visits every trace in the table, pending or decided, with what is held of it, in slot
    /// order. Walks the whole ring (`num_traces` per shard slots); [`Engine::held_chunk`] does
    /// the same walk a piece at a time, for a runtime that must not stall that long.
    pub fn held(&self, mut f: impl FnMut(&[u8; 16], HeldState)) {
        let mut from = Some(0);
        while let Some(start) = from {
            from = self.held_chunk(start, usize::MAX, &mut f);
        }
    }

    /// [`Engine::held`] over at most `slots` ring slots from slot `from`; returns where the next
    /// chunk starts, `None` once the ring is done. Between chunks the table may change: a trace
    /// that arrives or moves meanwhile may be missed or visited twice, which a claim scan
    /// tolerates (claims are re-sent on every change).
    pub fn held_chunk(
        &self,
        from: usize,
        slots: usize,
        mut f: impl FnMut(&[u8; 16], HeldState),
    ) -> Option<usize> {
        let all = &self.table.slots;
        let end = from.saturating_add(slots.max(1)).min(all.len());
        for (idx, slot) in all.iter().enumerate().take(end).skip(from) {
            if matches!(slot.state, SlotState::Pending | SlotState::Decided(_)) {
                f(&slot.id, self.held_at(idx));
            }
        }
        (end < all.len()).then_some(end)
    }

    fn held_at(&self, idx: usize) -> HeldState {
        let times = &self.table.times[idx];
        match self.table.slots[idx].state {
            SlotState::Pending => HeldState::Pending {
                first_seen: times.first_seen_ns,
            },
            SlotState::Decided(d) => HeldState::Decided {
                kept: d.is_sampled(),
                at: times.decided_ns,
            },
            SlotState::Empty | SlotState::Evicted => HeldState::No,
        }
    }

    /// Makes sure a pending trace is not decided before `not_before_ns` (Unix ns): its deadline
    /// moves later if it falls earlier, never earlier, and a root span arriving afterwards does
    /// not bring it before `not_before_ns` either. Returns whether the trace is pending here.
    /// Limits still apply: a deferred trace can be pushed out, evicted or decided at shutdown.
    pub fn defer(&mut self, id: &[u8; 16], not_before_ns: u64) -> bool {
        let Some(idx) = self.table.find(id) else {
            return false;
        };
        if self.table.slots[idx as usize].state != SlotState::Pending {
            return false;
        }
        let times = &mut self.table.times[idx as usize];
        times.decided_ns = times.decided_ns.max(not_before_ns);
        let later = self.wheel.tick_for(not_before_ns);
        let deadline = times.deadline_tick;
        if later > deadline {
            // A new entry; the old one no longer matches the trace's deadline, so it is
            // recognised as stale when it expires (as when a root span moves it earlier).
            self.wheel.cancel(deadline);
            self.schedule(idx, later);
        }
        true
    }

    /// Takes in decisions taken elsewhere (`(trace ID, kept)`), e.g. from a gateway that leaves,
    /// so that late spans of those traces are forwarded or dropped here as if decided here:
    /// they take the decision caches' path (`early_releases_from_cache_decision`). Kept ones go
    /// to the sampled cache, the others to the non-sampled one; when that cache is configured
    /// at 0, to a small internal cache (`num_traces` per shard / 4 entries, at least 1,024).
    /// Never takes a ring slot, so it never pushes an undecided trace out. A trace the table
    /// holds (pending or decided) is skipped: its own record answers its spans.
    pub fn import_decisions(&mut self, entries: &[([u8; 16], bool)]) {
        for (id, kept) in entries {
            if self.table.find(id).is_some() {
                continue;
            }
            // The internal caches have capacity only when the configured one has none.
            let cache = match (*kept, self.imported_sampled.capacity() > 0) {
                (true, true) => &mut self.imported_sampled,
                (true, false) => &mut self.sampled_cache,
                (false, _) if self.imported_not_sampled.capacity() > 0 => {
                    &mut self.imported_not_sampled
                }
                (false, _) => &mut self.non_sampled_cache,
            };
            cache.put(id);
            self.counters.decisions_imported += 1;
        }
    }

    // === decisions ===

    /// Fires every decision due by the clock's now; then compacts sparse buffers if worthwhile.
    pub fn advance(&mut self) {
        let now = self.clock.now_unix_nanos();
        // Reuse one vector for due entries so that steady-state ticks do not allocate.
        let mut due = std::mem::take(&mut self.due);
        self.wheel.advance(now, |e| due.push(e));
        // Touch every due slot and its first span up front: independent loads the CPU overlaps,
        // instead of one cache miss after another inside the decision loop.
        let mut touch = 0u64;
        for e in due.iter() {
            let slot = &self.table.slots[e.slot as usize];
            touch ^= slot.span_count()
                ^ self
                    .table
                    .first_span(e.slot)
                    .map_or(0, |s| s.wire_len() as u64);
        }
        std::hint::black_box(touch);
        for e in due.drain(..) {
            self.fire(e, now);
        }
        self.due = due;
        let after = self.clock.now_unix_nanos();
        self.counters
            .sampling_decision_timer_latency
            .record(after.saturating_sub(now) / 1_000_000);
        self.maybe_compact();
        self.refresh_gauges();
    }

    fn fire(&mut self, e: TimerEntry, now: u64) {
        let (slot, times) = (
            &self.table.slots[e.slot as usize],
            &self.table.times[e.slot as usize],
        );
        // Stale entries: slot reused, trace already decided/evicted, or rescheduled.
        if times.seq as u32 != e.generation
            || slot.state != SlotState::Pending
            || times.deadline_tick != e.deadline
        {
            return;
        }
        self.decide(e.slot, now, DecisionCause::Policies);
    }

    fn decide(&mut self, idx: u32, now: u64, cause: DecisionCause) {
        let slot = &self.table.slots[idx as usize];
        let summary = table::to_summary(slot.summary, slot.chain.len);
        let view = TraceView {
            trace_id: slot.id,
            summary: &summary,
            spans: &self.table.spans(idx),
        };
        let counters = &mut self.counters;
        let Evaluation {
            seen,
            matched,
            first,
        } = evaluate_policies(
            &mut self.policies,
            &view,
            now,
            self.settings.sample_on_first_match,
            |i, d| counters.policy_decision(i, d, summary.span_count),
        );
        let matched = PolicySet(matched);
        let decision = combine(seen);
        let policy = match decision {
            FinalDecision::Dropped => first[Decision::Dropped as usize],
            FinalDecision::Sampled => {
                first[Decision::Sampled as usize].or(first[Decision::InvertSampled as usize])
            }
            FinalDecision::NotSampled => None,
        };
        self.settle(idx, decision, cause, matched, policy, now);
    }

    /// Records a decision, releases the spans (to the output if kept) and updates the caches.
    fn settle(
        &mut self,
        idx: u32,
        decision: FinalDecision,
        cause: DecisionCause,
        matched: PolicySet,
        policy: Option<u16>,
        now: u64,
    ) {
        self.counters.final_decision(decision);
        self.unschedule(idx);
        let slot = &mut self.table.slots[idx as usize];
        slot.state = SlotState::Decided(decision);
        let trace_id = slot.id;
        let span_count = slot.span_count();
        self.table.times[idx as usize].decided_ns = now;
        let mut spans = Vec::new();
        let ledger = &mut self.ledger;
        if decision.is_sampled() {
            // The trace's own list becomes the output: no copy.
            spans = self.table.take_span_vec(idx);
            spans
                .iter()
                .for_each(|s| ledger.release(s.buffer(), s.wire_len()));
            self.counters.spans_exported += span_count;
            self.sampled_cache.put(&trace_id);
        } else {
            self.table
                .take_spans(idx, |s| ledger.release(s.buffer(), s.wire_len()));
            let reason = match (decision, cause) {
                (_, DecisionCause::TooLarge) => DropReason::TooLarge,
                (FinalDecision::Dropped, _) => DropReason::DroppedByPolicy,
                _ => DropReason::NotSampled,
            };
            self.counters.spans_dropped.add(reason, span_count);
            self.non_sampled_cache.put(&trace_id);
        }
        self.counters.spans_buffered -= span_count;
        self.decided.push(DecidedTrace {
            trace_id,
            decision,
            cause,
            matched,
            policy,
            span_count,
            spans,
        });
    }

    /// Drops an undecided trace's spans (pushed out by a limit), as the collector does.
    fn evict(&mut self, idx: u32, _now: u64) {
        self.unschedule(idx);
        let n = self.table.slots[idx as usize].span_count();
        let ledger = &mut self.ledger;
        self.table
            .take_spans(idx, |s| ledger.release(s.buffer(), s.wire_len()));
        self.table.slots[idx as usize].state = SlotState::Evicted;
        self.table.unindex(idx);
        self.counters.sampling_trace_dropped_too_early += 1;
        self.counters
            .spans_dropped
            .add(DropReason::EvictedTooEarly, n);
        self.counters.spans_buffered -= n;
    }

    fn enforce_budget(&mut self, budget: u64, now: u64) {
        self.maybe_compact();
        while self.ledger.retained_bytes() > budget {
            match self.table.oldest_pending() {
                Some(idx) => self.evict(idx, now),
                None => break,
            }
        }
    }

    /// Copies spans out of sparse buffers when the pinned bytes are more than twice the live
    /// bytes (and the excess is worth a pass over the buffered spans).
    fn maybe_compact(&mut self) {
        let retained = self.ledger.retained_bytes();
        let live = self.ledger.live_bytes();
        if retained <= live.saturating_mul(2) || retained - live < 1 << 20 {
            return;
        }
        self.counters.compactions += 1;
        let ledger = &mut self.ledger;
        let mut detached = 0;
        self.table.for_each_pending_span(|span| {
            let buf = span.buffer();
            if ledger.is_sparse(buf) {
                let copy = span.detach();
                ledger.acquire(copy.buffer(), copy.wire_len());
                ledger.release(buf, span.wire_len());
                *span = copy;
                detached += 1;
            }
        });
        self.counters.spans_detached += detached;
    }

    /// Decides (or, with `drop_pending_traces_on_shutdown`, drops) every undecided trace.
    pub fn shutdown(&mut self) {
        let now = self.clock.now_unix_nanos();
        let mut due = Vec::new();
        self.wheel.drain_all(|e| due.push(e));
        due.sort_by_key(|e| e.deadline);
        for e in due {
            let (slot, times) = (
                &self.table.slots[e.slot as usize],
                &self.table.times[e.slot as usize],
            );
            if times.seq as u32 != e.generation
                || slot.state != SlotState::Pending
                || times.deadline_tick != e.deadline
            {
                continue;
            }
            if self.settings.drop_pending_on_shutdown {
                let n = slot.span_count();
                self.wheel.cancel(e.deadline);
                let ledger = &mut self.ledger;
                self.table
                    .take_spans(e.slot, |s| ledger.release(s.buffer(), s.wire_len()));
                self.table.slots[e.slot as usize].state = SlotState::Evicted;
                self.table.unindex(e.slot);
                self.counters.spans_dropped.add(DropReason::Shutdown, n);
                self.counters.spans_buffered -= n;
            } else {
                self.decide(e.slot, now, DecisionCause::Shutdown);
            }
        }
        self.refresh_gauges();
    }

    fn refresh_gauges(&mut self) {
        self.counters.sampling_traces_on_memory = self.table.len() as u64;
        self.counters.retained_buffer_bytes = self.ledger.retained_bytes();
    }
}

fn duration_ns(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
