//! Memory accounting by retained buffers.
//!
//! A zero-copy span pins its whole request buffer, so what the engine really holds is the sum of
//! the distinct buffers its buffered spans point into, not the sum of span sizes. The ledger
//! counts, per buffer, how many buffered spans and bytes still use it; a buffer whose live bytes
//! fall below a quarter of its size is "sparse" and its survivors are worth copying out
//! ([`crate::SpanData::detach`]).

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

/// Per-buffer use counts and the totals.
#[derive(Debug, Default)]
pub struct BufferLedger {
    buffers: HashMap<u64, Entry, BuildHasherDefault<IdentityHasher>>,
    retained: u64,
    live: u64,
}

impl BufferLedger {
    /// A span of `wire_len` bytes in `buf` is now buffered.
    #[inline]
    pub fn acquire(&mut self, buf: BufferRef, wire_len: usize) {
        let e = self.buffers.entry(mix_id(buf.id)).or_insert_with(|| {
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
    }

    /// A span is no longer buffered (exported, dropped or replaced by a detached copy).
    #[inline]
    pub fn release(&mut self, buf: BufferRef, wire_len: usize) {
        let key = mix_id(buf.id);
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
    pub fn is_sparse(&self, buf: BufferRef) -> bool {
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
}
