//! The trace table of one shard: a ring of trace slots in arrival order, an index from trace ID
//! to slot, and one slab of span nodes shared by all traces.
//!
//! The ring is the collector's delete queue made structural: the `num_traces`-th newer trace
//! reuses the slot of the oldest, which pushes that trace out (decided or not). Spans live in a
//! singly linked list per trace inside the slab (newest first), so buffering a span never allocates once the
//! slab has grown to the working set, and a trace costs no allocation of its own.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use super::cache::IdentityHasher;
use crate::policy::{FinalDecision, SpanList, TraceSummary};

use super::slab::Slab;
pub use super::slab::NIL;

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
#[derive(Debug, Clone)]
pub struct Slot {
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
    /// Most recent span node: the list runs newest first, so an append touches only the new
    /// node (no cache miss on the previous tail); outputs reverse it back to arrival order.
    pub head: u32,
}

impl Slot {
    fn empty() -> Self {
        Slot {
            id: [0; 16],
            seq: 0,
            state: SlotState::Empty,
            summary: TraceSummary::default(),
            first_seen_ns: 0,
            decided_ns: 0,
            deadline_tick: 0,
            head: NIL,
        }
    }
}

/// The table.
#[derive(Debug)]
pub struct TraceTable<S> {
    /// Trace slots, indexed by `seq % capacity`.
    pub slots: Vec<Slot>,
    capacity: usize,
    /// Sequence number the next new trace gets.
    pub next_seq: u64,
    index: HashMap<[u8; 16], u32, BuildHasherDefault<IdentityHasher>>,
    nodes: Slab<S>,
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
            index: HashMap::with_capacity_and_hasher(
                expected.min(capacity),
                BuildHasherDefault::default(),
            ),
            nodes: Slab::default(),
            pending_cursor: 0,
        }
    }

    /// Slot of a known trace (pending or decided).
    #[inline]
    pub fn find(&self, id: &[u8; 16]) -> Option<u32> {
        self.index.get(id).copied()
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
        }
        let old = &self.slots[idx];
        if matches!(old.state, SlotState::Pending | SlotState::Decided(_))
            && self.index.get(&old.id) == Some(&(idx as u32))
        {
            self.index.remove(&old.id);
        }
        let slot = &mut self.slots[idx];
        *slot = Slot::empty();
        slot.id = id;
        slot.seq = self.next_seq;
        slot.state = SlotState::Pending;
        slot.first_seen_ns = now_ns;
        self.next_seq += 1;
        self.index.insert(id, idx as u32);
        idx as u32
    }

    /// Forgets a trace's ID (byte-budget eviction); its slot stays until reused.
    pub fn unindex(&mut self, idx: u32) {
        let id = self.slots[idx as usize].id;
        if self.index.get(&id) == Some(&idx) {
            self.index.remove(&id);
        }
    }

    /// Adds a span to a trace's list.
    #[inline]
    pub fn push_span(&mut self, idx: u32, span: S) {
        let slot = &mut self.slots[idx as usize];
        slot.head = self.nodes.alloc(span, slot.head);
    }

    /// Removes a trace's spans, handing each to `f` newest first, and frees their nodes.
    pub fn take_spans(&mut self, idx: u32, mut f: impl FnMut(S)) {
        let mut n = std::mem::replace(&mut self.slots[idx as usize].head, NIL);
        while n != NIL {
            let (span, next) = self.nodes.release(n);
            if let Some(span) = span {
                f(span);
            }
            n = next;
        }
    }

    /// The spans of a trace as a list the policies can scan.
    pub fn spans(&self, idx: u32) -> NodeList<'_, S> {
        NodeList {
            nodes: &self.nodes,
            head: self.slots[idx as usize].head,
        }
    }

    /// Visits every buffered span of every pending trace mutably (compaction).
    pub fn for_each_pending_span(&mut self, mut f: impl FnMut(&mut S)) {
        for slot in self.slots.iter().filter(|s| s.state == SlotState::Pending) {
            let mut n = slot.head;
            while n != NIL {
                let node = self.nodes.get_mut(n);
                if let Some(span) = node.span.as_mut() {
                    f(span);
                }
                n = node.next;
            }
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
        self.slots.capacity() * std::mem::size_of::<Slot>()
            + self.index.capacity() * (std::mem::size_of::<([u8; 16], u32)>() + 1)
            + self.nodes.heap_bytes()
    }
}

/// A trace's span list inside the slab.
pub struct NodeList<'a, S> {
    nodes: &'a Slab<S>,
    head: u32,
}

impl<S> SpanList<S> for NodeList<'_, S> {
    fn any(&self, f: &mut dyn FnMut(&S) -> bool) -> bool {
        let mut n = self.head;
        while n != NIL {
            let node = self.nodes.get(n);
            if node.span.as_ref().is_some_and(&mut *f) {
                return true;
            }
            n = node.next;
        }
        false
    }
}
