//! Memory accounting by retained buffers.
//!
//! A zero-copy span pins its whole request buffer, so what the engine really holds is the sum of
//! the distinct buffers its buffered spans point into, not the sum of span sizes. The ledger
//! counts, per buffer, how many buffered spans and bytes still use it; a buffer whose live bytes
//! fall below a quarter of its size is "sparse" and its survivors are worth copying out
//! ([`crate::SpanData::detach`]).
//!
//! The spans of one request arrive one after another with the same buffer, so the ledger keeps
//! the counts of the buffer acquired last apart and folds them into its map only when another
//! buffer comes or that buffer's entry is read: one map probe per run of spans of one buffer,
//! not one per span. The totals are always exact.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use super::cache::IdentityHasher;
use crate::span::BufferRef;

/// Buffers smaller than this are never worth compacting.
const MIN_COMPACT_BUFFER: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Entry {
    len: usize,
    live_spans: u32,
    live_bytes: usize,
}

/// Acquisitions of one buffer not yet folded into the ledger's map.
#[derive(Debug, Clone, Copy)]
struct Run {
    key: u64,
    spans: u32,
    bytes: usize,
}

/// Per-buffer use counts and the totals.
#[derive(Debug, Default)]
pub struct BufferLedger {
    buffers: HashMap<u64, Entry, BuildHasherDefault<IdentityHasher>>,
    /// The buffer acquired last and the spans and bytes acquired since its entry was updated
    /// (its entry is in `buffers` already).
    run: Option<Run>,
    retained: u64,
    live: u64,
}

impl BufferLedger {
    /// A span of `wire_len` bytes in `buf` is now buffered.
    #[inline]
    pub fn acquire(&mut self, buf: BufferRef, wire_len: usize) {
        let key = mix_id(buf.id);
        if let Some(run) = self.run.as_mut().filter(|r| r.key == key) {
            run.spans += 1;
            run.bytes += wire_len;
            self.live += wire_len as u64;
            return;
        }
        self.settle_run();
        let e = self.buffers.entry(key).or_insert_with(|| {
            self.retained += buf.len as u64;
            Entry {
                len: buf.len,
                live_spans: 0,
                live_bytes: 0,
            }
        });
        e.live_spans += 1;
        e.live_bytes += wire_len;
        self.live += wire_len as u64;
        self.run = Some(Run {
            key,
            spans: 0,
            bytes: 0,
        });
    }

    /// Folds the pending run of acquisitions into its buffer's entry.
    #[inline]
    fn settle_run(&mut self) {
        if let Some(run) = self.run.take() {
            if let Some(e) = self.buffers.get_mut(&run.key) {
                e.live_spans += run.spans;
                e.live_bytes += run.bytes;
            }
        }
    }

    /// A span is no longer buffered (exported, dropped or replaced by a detached copy).
    #[inline]
    pub fn release(&mut self, buf: BufferRef, wire_len: usize) {
        let key = mix_id(buf.id);
        if self.run.is_some_and(|r| r.key == key) {
            self.settle_run();
        }
        let Some(e) = self.buffers.get_mut(&key) else {
            return;
        };
        e.live_spans = e.live_spans.saturating_sub(1);
        e.live_bytes = e.live_bytes.saturating_sub(wire_len);
        self.live = self.live.saturating_sub(wire_len as u64);
        if e.live_spans == 0 {
            self.retained = self.retained.saturating_sub(e.len as u64);
            self.buffers.remove(&key);
        }
    }

    /// Is this buffer mostly released (worth copying its survivors out)?
    pub fn is_sparse(&mut self, buf: BufferRef) -> bool {
        self.settle_run();
        self.buffers
            .get(&mix_id(buf.id))
            .is_some_and(|e| e.len >= MIN_COMPACT_BUFFER && e.live_bytes * 4 < e.len)
    }

    /// Bytes of the distinct buffers still pinned.
    pub fn retained_bytes(&self) -> u64 {
        self.retained
    }

    /// Bytes of the buffered spans themselves.
    pub fn live_bytes(&self) -> u64 {
        self.live
    }

    /// Distinct buffers pinned.
    pub fn buffers(&self) -> usize {
        self.buffers.len()
    }

    /// Heap bytes of the ledger itself (approximate).
    pub fn heap_bytes(&self) -> usize {
        self.buffers.capacity() * (std::mem::size_of::<(u64, Entry)>() + 1)
    }
}

/// Buffer IDs are often addresses (aligned, clustered): mix them before the identity hasher.
#[inline]
fn mix_id(id: u64) -> u64 {
    super::cache::mix(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_each_buffer_once_and_frees_it_with_its_last_span() {
        let mut l = BufferLedger::default();
        let b = BufferRef { id: 1, len: 10_000 };
        l.acquire(b, 200);
        l.acquire(b, 300);
        assert_eq!(l.retained_bytes(), 10_000);
        assert_eq!(l.live_bytes(), 500);
        assert!(l.is_sparse(b));
        l.release(b, 200);
        assert_eq!(l.retained_bytes(), 10_000);
        l.release(b, 300);
        assert_eq!(l.retained_bytes(), 0);
        assert_eq!(l.buffers(), 0);
    }

    /// Runs of one buffer (folded lazily) count as span-by-span acquisitions would.
    #[test]
    fn runs_of_one_buffer_count_like_single_acquisitions() {
        let mut l = BufferLedger::default();
        let a = BufferRef { id: 1, len: 8_000 };
        let b = BufferRef { id: 2, len: 9_000 };
        for _ in 0..3 {
            l.acquire(a, 100);
        }
        l.acquire(b, 50);
        l.acquire(a, 100);
        l.acquire(a, 100);
        assert_eq!(l.retained_bytes(), 17_000);
        assert_eq!(l.live_bytes(), 550);
        for _ in 0..4 {
            l.release(a, 100);
        }
        assert_eq!(l.retained_bytes(), 17_000);
        assert!(l.is_sparse(a));
        l.release(a, 100);
        assert_eq!(l.retained_bytes(), 9_000);
        assert_eq!(l.buffers(), 1);
        l.release(b, 50);
        assert_eq!((l.retained_bytes(), l.live_bytes(), l.buffers()), (0, 0, 0));
    }
}
