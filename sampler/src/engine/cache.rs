//! Decision caches: trace IDs whose spans are gone but whose decision must still be honoured.
//!
//! Both caches store a 64-bit fingerprint of the trace ID, not the ID, in a FIFO ring plus a
//! hash set (about 8 bytes in the ring and ~16 in the set per entry, versus 16 + overhead for full
//! IDs). A lookup of an ID that was never inserted answers "present" only if its fingerprint
//! collides with one of the `n` stored: probability ≈ n / 2⁶⁴ (≈ 5.4e-15 for n = 100 000).
//! Eviction is FIFO, where the collector's caches are LRU (a hit does not refresh an entry
//! here); with random trace IDs and sizes ≫ num_traces the difference is negligible.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

/// A bounded set of trace-ID fingerprints with FIFO eviction.
#[derive(Debug)]
pub struct DecisionCache {
    ring: Vec<u64>,
    next: usize,
    set: HashSet<u64, BuildHasherDefault<IdentityHasher>>,
    capacity: usize,
}

impl DecisionCache {
    /// A cache of `capacity` entries (0 = disabled).
    pub fn new(capacity: usize) -> Self {
        DecisionCache {
            ring: Vec::new(),
            next: 0,
            set: HashSet::default(),
            capacity,
        }
    }

    /// Remembers a trace ID.
    pub fn put(&mut self, trace_id: &[u8; 16]) {
        if self.capacity == 0 {
            return;
        }
        let fp = fingerprint(trace_id);
        if !self.set.insert(fp) {
            return;
        }
        if self.ring.len() < self.capacity {
            self.ring.push(fp);
        } else {
            let old = std::mem::replace(&mut self.ring[self.next], fp);
            self.set.remove(&old);
            self.next = (self.next + 1) % self.capacity;
        }
    }

    /// Was this trace ID remembered (up to the documented false-positive rate)?
    pub fn contains(&self, trace_id: &[u8; 16]) -> bool {
        // Empty (disabled, or nothing imported yet): no hashing on the insert path.
        !self.set.is_empty() && self.set.contains(&fingerprint(trace_id))
    }

    /// Entries it holds at most (0 = disabled).
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.ring.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }

    /// Heap bytes held (approximate for the set).
    pub fn heap_bytes(&self) -> usize {
        self.ring.capacity() * 8 + self.set.capacity() * 9
    }
}

/// A well-mixed 64-bit fingerprint of a trace ID (trace IDs from tests can be sequential).
#[inline]
pub fn fingerprint(trace_id: &[u8; 16]) -> u64 {
    let mut lo = [0u8; 8];
    let mut hi = [0u8; 8];
    lo.copy_from_slice(&trace_id[..8]);
    hi.copy_from_slice(&trace_id[8..]);
    mix(u64::from_le_bytes(lo) ^ mix(u64::from_le_bytes(hi) ^ 0x9e37_79b9_7f4a_7c15))
}

/// The splitmix64 finaliser.
#[inline]
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A hasher for keys that are already well-mixed `u64`s (or trace IDs, mixed on write).
#[derive(Debug, Default, Clone, Copy)]
pub struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Trace-ID keys arrive here as 16 bytes; mix them (other lengths: fold then mix).
        if let Ok(id) = <&[u8; 16]>::try_from(bytes) {
            self.0 = fingerprint(id);
        } else {
            for b in bytes {
                self.0 = mix(self.0 ^ u64::from(*b));
            }
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
    fn write_usize(&mut self, _n: usize) {
        // Array length prefixes (if any) carry no information for fixed-size keys.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_up_to_capacity_fifo() {
        let mut c = DecisionCache::new(2);
        let id = |n: u8| [n; 16];
        c.put(&id(1));
        c.put(&id(2));
        assert!(c.contains(&id(1)) && c.contains(&id(2)));
        c.put(&id(3));
        assert!(!c.contains(&id(1)));
        assert!(c.contains(&id(2)) && c.contains(&id(3)));
        c.put(&id(3));
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn disabled_cache_remembers_nothing() {
        let mut c = DecisionCache::new(0);
        c.put(&[1; 16]);
        assert!(!c.contains(&[1; 16]));
    }
}
