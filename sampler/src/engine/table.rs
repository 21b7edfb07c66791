//! The trace table of one shard: a ring of trace slots in arrival order, an index from trace ID
//! to slot, and one slab of span nodes shared by all traces.
//!
//! The ring is the collector's delete queue made structural: the `num_traces`-th newer trace
//! reuses the slot of the oldest, which pushes that trace out (decided or not). Each slot owns its
//! span list, a `Vec` (contiguous, so deciding a trace reads a few cache lines sequentially rather
//! than chasing one pointer per span; a kept trace's list is handed over as the output without a
//! copy). The index ([`TraceIndex`]) stores 8 bytes per trace and confirms hits against the
//! slot's ID.

use super::index::TraceIndex;
use crate::policy::{FinalDecision, SliceSpans, TraceSummary};

/// Where a trace is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotState {
    /// Never used.
    Empty,
    /// Buffering spans, decision pending.
    Pending,
    /// Decided; spans released; the ID and decision stay known for late spans.
    Decided(FinalDecision),
    /// Dropped before its decision by the byte budget; no longer indexed.
    Evicted,
}

/// One trace.
#[derive(Debug)]
pub struct Slot<S> {
    /// Trace ID.
    pub id: [u8; 16],
    /// Arrival sequence number (identifies this use of the slot).
    pub seq: u64,
    /// State.
    pub state: SlotState,
    /// Running aggregates.
    pub summary: TraceSummary,
    /// First span's arrival (ns).
    pub first_seen_ns: u64,
    /// When decided (ns).
    pub decided_ns: u64,
    /// Tick at which the decision is due.
    pub deadline_tick: u64,
    /// The buffered spans, in arrival order.
    pub spans: Vec<S>,
}

impl<S> Slot<S> {
    fn empty() -> Self {
        Slot {
            id: [0; 16],
            seq: 0,
            state: SlotState::Empty,
            summary: TraceSummary::default(),
            first_seen_ns: 0,
            decided_ns: 0,
            deadline_tick: 0,
            spans: Vec::new(),
        }
    }
}

/// The table.
#[derive(Debug)]
pub struct TraceTable<S> {
    /// Trace slots, indexed by `seq % capacity`.
    pub slots: Vec<Slot<S>>,
    capacity: usize,
    /// Sequence number the next new trace gets.
    pub next_seq: u64,
    index: TraceIndex,
    /// Oldest sequence number that may still be pending (everything older is not).
    pending_cursor: u64,
}

impl<S> TraceTable<S> {
    /// A table for `capacity` traces; `expected` sizes the index up front.
    pub fn new(capacity: usize, expected: usize) -> Self {
        TraceTable {
            slots: Vec::with_capacity(expected.min(capacity)),
            capacity,
            next_seq: 0,
            index: TraceIndex::with_capacity(expected.min(capacity)),
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

    /// Does slot `idx` hold trace `id` (pending or decided, hence indexed)?
    #[inline]
    pub fn holds(&self, idx: u32, id: &[u8; 16]) -> bool {
        self.slots.get(idx as usize).is_some_and(|s| {
            &s.id == id && matches!(s.state, SlotState::Pending | SlotState::Decided(_))
        })
    }

    /// The slot a new trace would take, and whether it holds a trace now.
    pub fn next_slot(&self) -> (u32, Option<&Slot<S>>) {
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
        }
        let old = &self.slots[idx];
        if matches!(old.state, SlotState::Pending | SlotState::Decided(_)) {
            self.index.remove(&old.id, idx as u32);
        }
        let slot = &mut self.slots[idx];
        *slot = Slot::empty();
        slot.id = id;
        slot.seq = self.next_seq;
        slot.state = SlotState::Pending;
        slot.first_seen_ns = now_ns;
        self.next_seq += 1;
        self.index.insert(&id, idx as u32);
        idx as u32
    }

    /// Forgets a trace's ID (byte-budget eviction); its slot stays until reused.
    pub fn unindex(&mut self, idx: u32) {
        let id = self.slots[idx as usize].id;
        self.index.remove(&id, idx);
    }

    /// Adds a span to a trace's list.
    #[inline]
    pub fn push_span(&mut self, idx: u32, span: S) {
        self.slots[idx as usize].spans.push(span);
    }

    /// Removes a trace's spans, handing each to `f` in arrival order.
    pub fn take_spans(&mut self, idx: u32, f: impl FnMut(S)) {
        std::mem::take(&mut self.slots[idx as usize].spans)
            .into_iter()
            .for_each(f);
    }

    /// Removes a trace's span list as is.
    pub fn take_span_vec(&mut self, idx: u32) -> Vec<S> {
        std::mem::take(&mut self.slots[idx as usize].spans)
    }

    /// The spans of a trace as a list the policies can scan.
    pub fn spans(&self, idx: u32) -> SliceSpans<'_, S> {
        SliceSpans(&self.slots[idx as usize].spans)
    }

    /// Visits every buffered span of every pending trace mutably (compaction).
    pub fn for_each_pending_span(&mut self, mut f: impl FnMut(&mut S)) {
        for slot in self
            .slots
            .iter_mut()
            .filter(|s| s.state == SlotState::Pending)
        {
            slot.spans.iter_mut().for_each(&mut f);
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

    /// Heap bytes of the table's own structures (slots, index, nodes), spans' heap excluded.
    pub fn heap_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Slot<S>>()
            + self.index.heap_bytes()
            + self
                .slots
                .iter()
                .map(|s| s.spans.capacity() * std::mem::size_of::<S>())
                .sum::<usize>()
    }
}
