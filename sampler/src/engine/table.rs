//! The trace table of one shard: a ring of trace slots in arrival order, an index from trace ID
//! to slot, and the span arena that holds every trace's spans.
//!
//! The ring is the collector's delete queue made structural: the `num_traces`-th newer trace
//! reuses the slot of the oldest, which pushes that trace out (decided or not). Each slot holds
//! its trace's chain of span chunks in the shard's [`SpanArena`] (no allocation per trace or per
//! span once warm; deciding a trace reads a few chunks of contiguous spans). The index
//! ([`TraceIndex`]) stores 8 bytes per trace and confirms hits against the slot's ID.

use super::arena::{Chain, ChainSpans, SpanArena};
use super::index::{id_fingerprint, TraceIndex};
use crate::policy::{FinalDecision, SpanAggregates, TraceSummary};

/// Where a trace is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotState {
    /// Never used, or its trace was handed over ([`crate::Engine::take_pending`]).
    Empty,
    /// Buffering spans, decision pending.
    Pending,
    /// Decided; spans released; the ID and decision stay known for late spans.
    Decided(FinalDecision),
    /// Dropped before its decision by the byte budget; no longer indexed.
    Evicted,
}

/// One trace: what inserting a span reads and writes, in one cache line (the rest of the
/// trace's record, needed only when it starts, is decided or times out, is its [`SlotTimes`]).
#[derive(Debug)]
#[repr(align(64))]
pub struct Slot {
    /// Trace ID.
    pub id: [u8; 16],
    /// Running aggregates (the span count is `chain.len`).
    pub summary: SlotSummary,
    /// The buffered spans, in arrival order, in the table's arena.
    pub chain: Chain,
    /// State.
    pub state: SlotState,
}

/// A trace's running aggregates as its slot stores them: without the span count, which the
/// slot's chain holds.
pub type SlotSummary = SpanAggregates;

/// The policies' [`TraceSummary`] of a slot's aggregates and its `span_count` spans.
pub fn to_summary(agg: SlotSummary, span_count: u32) -> TraceSummary {
    TraceSummary {
        span_count: u64::from(span_count),
        agg,
    }
}

impl Slot {
    fn empty() -> Self {
        Slot {
            id: [0; 16],
            summary: SlotSummary::EMPTY,
            chain: Chain::EMPTY,
            state: SlotState::Empty,
        }
    }

    /// Spans buffered.
    #[inline]
    pub fn span_count(&self) -> u64 {
        u64::from(self.chain.len)
    }
}

/// The part of a trace's record that inserting a span does not read.
#[derive(Debug, Clone, Copy, Default)]
pub struct SlotTimes {
    /// Arrival sequence number (identifies this use of the slot).
    pub seq: u64,
    /// First span's arrival (ns).
    pub first_seen_ns: u64,
    /// When decided (ns). While the trace is pending: the earliest time its decision may be
    /// taken ([`crate::Engine::defer`]), 0 for none. One field serves both so that the record
    /// stays 32 bytes (a pending trace has no decision time, a decided one no floor).
    pub decided_ns: u64,
    /// Tick at which the decision is due.
    pub deadline_tick: u64,
}

/// The table.
#[derive(Debug)]
pub struct TraceTable<S> {
    /// Trace slots, indexed by `seq % capacity`.
    pub slots: Vec<Slot>,
    /// The rest of each slot's record (same index).
    pub times: Vec<SlotTimes>,
    capacity: usize,
    /// Sequence number the next new trace gets.
    pub next_seq: u64,
    index: TraceIndex,
    arena: SpanArena<S>,
    /// Oldest sequence number that may still be pending (everything older is not).
    pending_cursor: u64,
}

impl<S> TraceTable<S> {
    /// A table for `capacity` traces; `expected` sizes the index up front.
    pub fn new(capacity: usize, expected: usize) -> Self {
        TraceTable {
            slots: Vec::with_capacity(expected.min(capacity)),
            times: Vec::with_capacity(expected.min(capacity)),
            capacity,
            next_seq: 0,
            index: TraceIndex::with_capacity(expected.min(capacity)),
            arena: SpanArena::default(),
            pending_cursor: 0,
        }
    }

    /// Slot of a known trace (pending or decided).
    #[inline]
    pub fn find(&self, id: &[u8; 16]) -> Option<u32> {
        self.index.find(id, |slot| {
            self.slots.get(slot as usize).is_some_and(|s| &s.id == id)
        })
    }

    /// The fingerprint [`Self::find_fp`] takes.
    #[inline]
    pub fn fingerprint(id: &[u8; 16]) -> u32 {
        id_fingerprint(id)
    }

    /// [`Self::find`] with the ID's [`Self::fingerprint`] computed already.
    #[inline]
    pub fn find_fp(&self, fp: u32, id: &[u8; 16]) -> Option<u32> {
        self.index.find_fp(fp, |slot| {
            self.slots.get(slot as usize).is_some_and(|s| &s.id == id)
        })
    }

    /// Reads the index line a probe for `fp` starts at (the value is meaningless).
    #[inline]
    pub fn touch_index(&self, fp: u32) -> u64 {
        self.index.touch(fp)
    }

    /// Does slot `idx` hold trace `id` (pending or decided, hence indexed)?
    #[inline]
    pub fn holds(&self, idx: u32, id: &[u8; 16]) -> bool {
        self.slots.get(idx as usize).is_some_and(|s| {
            &s.id == id && matches!(s.state, SlotState::Pending | SlotState::Decided(_))
        })
    }

    /// The slot a new trace would take, and whether it holds a trace now.
    pub fn next_slot(&self) -> (u32, Option<&Slot>) {
        let idx = (self.next_seq % self.capacity as u64) as usize;
        (
            idx as u32,
            self.slots.get(idx).filter(|s| s.state != SlotState::Empty),
        )
    }

    /// Takes the next ring slot for `id`. The caller has already dealt with its previous
    /// occupant (see [`Self::next_slot`]); this only unindexes it.
    pub fn claim(&mut self, id: [u8; 16], now_ns: u64) -> u32 {
        let idx = (self.next_seq % self.capacity as u64) as usize;
        if idx == self.slots.len() {
            self.slots.push(Slot::empty());
            self.times.push(SlotTimes::default());
        }
        let old = &mut self.slots[idx];
        if matches!(old.state, SlotState::Pending | SlotState::Decided(_)) {
            self.index.remove(&old.id, idx as u32);
        }
        // Released by the caller already; a leftover would only be dropped.
        self.arena.take(&mut old.chain, drop);
        *old = Slot::empty();
        old.id = id;
        old.state = SlotState::Pending;
        self.times[idx] = SlotTimes {
            seq: self.next_seq,
            first_seen_ns: now_ns,
            decided_ns: 0,
            deadline_tick: 0,
        };
        self.next_seq += 1;
        self.index.insert(&id, idx as u32);
        idx as u32
    }

    /// Forgets a trace's ID (byte-budget eviction); its slot stays until reused.
    pub fn unindex(&mut self, idx: u32) {
        let id = self.slots[idx as usize].id;
        self.index.remove(&id, idx);
    }

    /// Empties a pending trace's slot without giving it to another trace: unindexes the trace,
    /// hands its spans back in arrival order, and marks the slot [`SlotState::Empty`] (reused
    /// when the ring comes round to it, like any slot).
    pub fn vacate(&mut self, idx: u32) -> Vec<S> {
        self.unindex(idx);
        let spans = self.take_span_vec(idx);
        self.slots[idx as usize] = Slot::empty();
        spans
    }

    /// Adds a span to a trace's list.
    #[inline]
    pub fn push_span(&mut self, idx: u32, span: S) {
        self.arena.push(&mut self.slots[idx as usize].chain, span);
    }

    /// Removes a trace's spans, handing each to `f` in arrival order.
    pub fn take_spans(&mut self, idx: u32, f: impl FnMut(S)) {
        self.arena.take(&mut self.slots[idx as usize].chain, f);
    }

    /// Removes a trace's spans as a list, in arrival order.
    pub fn take_span_vec(&mut self, idx: u32) -> Vec<S> {
        let chain = &mut self.slots[idx as usize].chain;
        let mut spans = Vec::with_capacity(chain.len as usize);
        self.arena.take(chain, |s| spans.push(s));
        spans
    }

    /// The spans of a trace as a list the policies can scan.
    pub fn spans(&self, idx: u32) -> ChainSpans<'_, S> {
        self.arena.list(self.slots[idx as usize].chain)
    }

    /// Reads a trace's slot and the place its next span goes, so that the cache misses of a
    /// batch's inserts can be taken together ahead of the inserts (the value is meaningless).
    #[inline]
    pub fn touch(&self, idx: u32) -> u64 {
        let chain = self.slots[idx as usize].chain;
        self.arena.touch_tail(chain) ^ u64::from(chain.len)
    }

    /// A trace's first span, if any.
    pub fn first_span(&self, idx: u32) -> Option<&S> {
        self.arena.first(self.slots[idx as usize].chain)
    }

    /// Visits every buffered span of every pending trace mutably (compaction).
    pub fn for_each_pending_span(&mut self, mut f: impl FnMut(&mut S)) {
        for slot in self.slots.iter().filter(|s| s.state == SlotState::Pending) {
            self.arena.for_each_mut(slot.chain, &mut f);
        }
    }
    /// The oldest pending trace, if any (amortised O(1): the cursor only moves forward).
    pub fn oldest_pending(&mut self) -> Option<u32> {
        let oldest_live = self.next_seq.saturating_sub(self.slots.len() as u64);
        self.pending_cursor = self.pending_cursor.max(oldest_live);
        while self.pending_cursor < self.next_seq {
            let idx = (self.pending_cursor % self.capacity as u64) as usize;
            if self.slots[idx].state == SlotState::Pending {
                return Some(idx as u32);
            }
            self.pending_cursor += 1;
        }
        None
    }

    /// Traces in the table (pending and decided).
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Heap bytes of the table's own structures (slots, index, arena), spans' own heap excluded.
    pub fn heap_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Slot>()
            + self.times.capacity() * std::mem::size_of::<SlotTimes>()
            + self.index.heap_bytes()
            + self.arena.heap_bytes()
    }
}
