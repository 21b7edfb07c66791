//! The span-node slab: fixed-size chunks, so growth never copies and never leaves more than one
//! chunk of slack (a doubling `Vec` would waste up to half of its memory at the peak).

/// "No node".
pub const NIL: u32 = u32::MAX;

const CHUNK_BITS: u32 = 14;
const CHUNK: usize = 1 << CHUNK_BITS;

/// One buffered span in a per-trace singly linked list.
#[derive(Debug)]
pub struct Node<S> {
    /// The span (None while the node is free).
    pub span: Option<S>,
    /// Next node of the same trace, or of the free list.
    pub next: u32,
}

/// Chunked storage of nodes with a free list.
#[derive(Debug)]
pub struct Slab<S> {
    chunks: Vec<Vec<Node<S>>>,
    free: u32,
    len: usize,
}

impl<S> Default for Slab<S> {
    fn default() -> Self {
        Slab {
            chunks: Vec::new(),
            free: NIL,
            len: 0,
        }
    }
}

impl<S> Slab<S> {
    /// Stores a span in a node whose `next` is `next`; returns the node's index.
    #[inline]
    pub fn alloc(&mut self, span: S, next: u32) -> u32 {
        if self.free != NIL {
            let n = self.free;
            let node = self.get_mut(n);
            let after = node.next;
            node.span = Some(span);
            node.next = next;
            self.free = after;
            return n;
        }
        let n = self.len;
        if n % CHUNK == 0 {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        let chunk = self.chunks.len() - 1;
        self.chunks[chunk].push(Node {
            span: Some(span),
            next,
        });
        self.len += 1;
        n as u32
    }

    /// Takes the span out of node `n`, puts the node on the free list, returns (span, next).
    #[inline]
    pub fn release(&mut self, n: u32) -> (Option<S>, u32) {
        let free = self.free;
        let node = self.get_mut(n);
        let span = node.span.take();
        let next = std::mem::replace(&mut node.next, free);
        self.free = n;
        (span, next)
    }

    /// Node `n`.
    #[inline]
    pub fn get(&self, n: u32) -> &Node<S> {
        &self.chunks[(n >> CHUNK_BITS) as usize][(n as usize) & (CHUNK - 1)]
    }

    /// Node `n`, mutably.
    #[inline]
    pub fn get_mut(&mut self, n: u32) -> &mut Node<S> {
        &mut self.chunks[(n >> CHUNK_BITS) as usize][(n as usize) & (CHUNK - 1)]
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.chunks.len() * CHUNK * std::mem::size_of::<Node<S>>()
            + self.chunks.capacity() * std::mem::size_of::<Vec<Node<S>>>()
    }
}
