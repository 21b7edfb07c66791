//! The span arena of one shard: every buffered span lives in a chunk of [`CHUNK`] spans; a
//! trace's spans are a chain of chunks.
//!
//! Chunks are carved from fixed-size blocks (so the arena grows linearly, never copying or
//! doubling what it holds) and recycled through a free stack, so buffering a span never calls the
//! allocator once the arena has warmed up. The links between chunks live in a dense array of
//! their own, apart from the spans: walking a trace reads that small array (usually cached) and
//! then each chunk's spans, so the loads of a trace's chunks do not queue behind one another.

use crate::policy::SpanList;

/// Spans per chunk.
pub const CHUNK: usize = 4;

/// Chunks per block (the unit the arena grows by).
const BLOCK_CHUNKS: usize = 256;

/// "No chunk".
pub const NIL: u32 = u32::MAX;

/// A trace's chain of chunks: the first and the last, and how many spans it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chain {
    /// First chunk ([`NIL`] when empty).
    pub head: u32,
    /// Last chunk, where the next span goes ([`NIL`] when empty).
    pub tail: u32,
    /// Spans held.
    pub len: u32,
}

impl Chain {
    /// No spans.
    pub const EMPTY: Chain = Chain {
        head: NIL,
        tail: NIL,
        len: 0,
    };
}

/// The arena.
#[derive(Debug)]
pub struct SpanArena<S> {
    /// Blocks of `BLOCK_CHUNKS * CHUNK` span places.
    blocks: Vec<Box<[Option<S>]>>,
    /// Next chunk of each chunk's chain ([`NIL`] at the end).
    next: Vec<u32>,
    /// Chunks not in any chain.
    free: Vec<u32>,
}

impl<S> Default for SpanArena<S> {
    fn default() -> Self {
        SpanArena {
            blocks: Vec::new(),
            next: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<S> SpanArena<S> {
    #[inline]
    fn place(&mut self, chunk: u32, i: usize) -> &mut Option<S> {
        let c = chunk as usize;
        &mut self.blocks[c / BLOCK_CHUNKS][(c % BLOCK_CHUNKS) * CHUNK + i]
    }

    #[inline]
    fn chunk(&self, chunk: u32, len: usize) -> &[Option<S>] {
        let c = chunk as usize;
        let at = (c % BLOCK_CHUNKS) * CHUNK;
        &self.blocks[c / BLOCK_CHUNKS][at..at + len]
    }

    #[inline]
    fn chunk_mut(&mut self, chunk: u32, len: usize) -> &mut [Option<S>] {
        let c = chunk as usize;
        let at = (c % BLOCK_CHUNKS) * CHUNK;
        &mut self.blocks[c / BLOCK_CHUNKS][at..at + len]
    }

    /// A free chunk (a new block's worth when none is left).
    fn alloc(&mut self) -> u32 {
        if let Some(c) = self.free.pop() {
            return c;
        }
        let first = self.next.len();
        let block: Box<[Option<S>]> = (0..BLOCK_CHUNKS * CHUNK).map(|_| None).collect();
        self.blocks.push(block);
        self.next.resize(first + BLOCK_CHUNKS, NIL);
        // Hand out the block's chunks in address order.
        self.free
            .extend((first as u32 + 1..(first + BLOCK_CHUNKS) as u32).rev());
        first as u32
    }

    /// Appends `span` to `chain`.
    #[inline]
    pub fn push(&mut self, chain: &mut Chain, span: S) {
        let at = chain.len as usize % CHUNK;
        if at == 0 {
            let c = self.alloc();
            self.next[c as usize] = NIL;
            if chain.tail == NIL {
                chain.head = c;
            } else {
                self.next[chain.tail as usize] = c;
            }
            chain.tail = c;
        }
        *self.place(chain.tail, at) = Some(span);
        chain.len += 1;
    }

    /// Chunks of `chain` with the number of spans each holds, in order.
    fn chunks(&self, chain: Chain) -> impl Iterator<Item = (u32, usize)> + '_ {
        let mut c = chain.head;
        let mut left = chain.len as usize;
        std::iter::from_fn(move || {
            if left == 0 || c == NIL {
                return None;
            }
            let n = left.min(CHUNK);
            let here = c;
            left -= n;
            c = self.next[c as usize];
            Some((here, n))
        })
    }

    /// Removes the spans of `chain` (leaving it empty), handing each to `f` in order.
    pub fn take(&mut self, chain: &mut Chain, mut f: impl FnMut(S)) {
        let mut c = chain.head;
        let mut left = chain.len as usize;
        while left > 0 && c != NIL {
            let n = left.min(CHUNK);
            for place in self.chunk_mut(c, n) {
                if let Some(s) = place.take() {
                    f(s);
                }
            }
            self.free.push(c);
            left -= n;
            c = self.next[c as usize];
        }
        *chain = Chain::EMPTY;
    }

    /// Visits the spans of `chain` mutably.
    pub fn for_each_mut(&mut self, chain: Chain, mut f: impl FnMut(&mut S)) {
        let mut c = chain.head;
        let mut left = chain.len as usize;
        while left > 0 && c != NIL {
            let n = left.min(CHUNK);
            self.chunk_mut(c, n).iter_mut().flatten().for_each(&mut f);
            left -= n;
            c = self.next[c as usize];
        }
    }

    /// Reads the place the next span of `chain` goes when it is inside the tail chunk (to warm
    /// the cache before the push; the value is meaningless).
    #[inline]
    pub fn touch_tail(&self, chain: Chain) -> u64 {
        let at = chain.len as usize % CHUNK;
        if at == 0 || chain.tail == NIL {
            return 0;
        }
        u64::from(self.chunk(chain.tail, at + 1)[at].is_some())
    }

    /// The first span of `chain`, if any (to warm the cache before a decision).
    pub fn first(&self, chain: Chain) -> Option<&S> {
        if chain.len == 0 || chain.head == NIL {
            return None;
        }
        self.chunk(chain.head, 1)[0].as_ref()
    }

    /// The spans of `chain` as a list the policies can scan.
    pub fn list(&self, chain: Chain) -> ChainSpans<'_, S> {
        ChainSpans { arena: self, chain }
    }

    /// Heap bytes: every block (free chunks included), the links and the free stack.
    pub fn heap_bytes(&self) -> usize {
        self.blocks.len() * BLOCK_CHUNKS * CHUNK * std::mem::size_of::<Option<S>>()
            + self.blocks.capacity() * std::mem::size_of::<Box<[Option<S>]>>()
            + self.next.capacity() * 4
            + self.free.capacity() * 4
    }
}

/// A trace's spans in the arena, as a [`SpanList`].
pub struct ChainSpans<'a, S> {
    arena: &'a SpanArena<S>,
    chain: Chain,
}

impl<S> SpanList<S> for ChainSpans<'_, S> {
    fn any(&self, f: &mut dyn FnMut(&S) -> bool) -> bool {
        self.arena
            .chunks(self.chain)
            .any(|(c, n)| self.arena.chunk(c, n).iter().flatten().any(&mut *f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_keep_order_and_recycle_chunks() {
        let mut arena = SpanArena::default();
        let mut a = Chain::EMPTY;
        let mut b = Chain::EMPTY;
        for i in 0..(3 * CHUNK as u32 + 1) {
            arena.push(&mut a, i);
            arena.push(&mut b, 100 + i);
        }
        let mut seen = Vec::new();
        assert!(!arena.list(a).any(&mut |s| {
            seen.push(*s);
            false
        }));
        assert_eq!(seen, (0..(3 * CHUNK as u32 + 1)).collect::<Vec<_>>());
        assert_eq!(arena.first(b), Some(&100));
        let heap = arena.heap_bytes();
        let mut taken = Vec::new();
        arena.take(&mut a, |s| taken.push(s));
        assert_eq!(taken, seen);
        assert_eq!(a, Chain::EMPTY);
        // The freed chunks serve the next chain: no growth.
        for i in 0..(3 * CHUNK as u32 + 1) {
            arena.push(&mut a, i);
        }
        assert_eq!(arena.heap_bytes(), heap);
        arena.for_each_mut(b, |s| *s += 1);
        assert!(arena.list(b).any(&mut |s| *s == 101));
        assert!(!arena.list(b).any(&mut |s| *s == 100));
    }
}
