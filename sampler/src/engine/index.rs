//! The trace index of one shard: trace ID → slot number, in 8 bytes per entry.
//!
//! Open addressing with linear probing over entries of (32-bit fingerprint of the ID, slot
//! number). The fingerprint's high bits are also the entry's home position, so a probe usually
//! reads one cache line, growing never rehashes an ID, and a removal shifts the entries after
//! it back (no tombstones). The index does not hold IDs: a fingerprint hit is confirmed by the
//! caller against the slot's own ID (which the insert reads next anyway). Kept at most half full.

use super::cache::fingerprint;

/// Slot number of a free entry.
const FREE: u32 = u32::MAX;

/// Fewest entries (a power of two).
const MIN_ENTRIES: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    /// High 32 bits of the ID's fingerprint.
    fp: u32,
    /// Slot number, [`FREE`] if the entry is unused.
    slot: u32,
}

const EMPTY: Entry = Entry { fp: 0, slot: FREE };

/// The index.
#[derive(Debug)]
pub struct TraceIndex {
    entries: Vec<Entry>,
    /// Bits of the fingerprint that give the home position (`entries.len() == 1 << bits`).
    bits: u32,
    len: usize,
}

/// The 32-bit fingerprint of a trace ID the index stores.
#[inline]
pub fn id_fingerprint(id: &[u8; 16]) -> u32 {
    (fingerprint(id) >> 32) as u32
}

impl TraceIndex {
    /// An index sized for `expected` IDs without growing.
    pub fn with_capacity(expected: usize) -> Self {
        let n = (expected.saturating_mul(2))
            .max(MIN_ENTRIES)
            .next_power_of_two();
        TraceIndex {
            entries: vec![EMPTY; n],
            bits: n.trailing_zeros(),
            len: 0,
        }
    }

    #[inline]
    fn mask(&self) -> usize {
        self.entries.len() - 1
    }

    /// Home position of fingerprint `fp`: its top bits.
    #[inline]
    fn home(&self, fp: u32) -> usize {
        // `bits` ≥ 4; for tables beyond 2^32 entries the low bits repeat (still correct).
        (u64::from(fp) << 32 >> (64 - self.bits.min(32))) as usize & self.mask()
    }

    /// The slot of `id`, confirming fingerprint hits with `is_id(slot)`.
    #[inline]
    pub fn find(&self, id: &[u8; 16], is_id: impl Fn(u32) -> bool) -> Option<u32> {
        self.find_fp(id_fingerprint(id), is_id)
    }

    /// Reads the cache line where the probe for fingerprint `fp` starts (to take its miss ahead
    /// of the probe; the value is meaningless).
    #[inline]
    pub fn touch(&self, fp: u32) -> u64 {
        u64::from(self.entries[self.home(fp)].slot)
    }

    /// [`Self::find`] given the ID's fingerprint ([`id_fingerprint`]).
    #[inline]
    pub fn find_fp(&self, fp: u32, is_id: impl Fn(u32) -> bool) -> Option<u32> {
        self.probe(fp, is_id).map(|pos| self.entries[pos].slot)
    }

    /// Position of the entry with fingerprint `fp` whose slot passes `is_it`, walking the
    /// cluster from the fingerprint's home position to the first free entry.
    #[inline]
    fn probe(&self, fp: u32, is_it: impl Fn(u32) -> bool) -> Option<usize> {
        let mask = self.mask();
        let mut pos = self.home(fp);
        loop {
            let e = self.entries[pos];
            if e.slot == FREE {
                return None;
            }
            if e.fp == fp && is_it(e.slot) {
                return Some(pos);
            }
            pos = (pos + 1) & mask;
        }
    }

    /// Adds `id` → `slot`. The caller guarantees `id` is not indexed.
    pub fn insert(&mut self, id: &[u8; 16], slot: u32) {
        if (self.len + 1) * 2 > self.entries.len() {
            self.grow();
        }
        self.place(Entry {
            fp: id_fingerprint(id),
            slot,
        });
        self.len += 1;
    }

    fn place(&mut self, e: Entry) {
        let mask = self.mask();
        let mut pos = self.home(e.fp);
        while self.entries[pos].slot != FREE {
            pos = (pos + 1) & mask;
        }
        self.entries[pos] = e;
    }

    fn grow(&mut self) {
        let doubled = vec![EMPTY; self.entries.len() * 2];
        let old = std::mem::replace(&mut self.entries, doubled);
        self.bits += 1;
        for e in old.into_iter().filter(|e| e.slot != FREE) {
            self.place(e);
        }
    }

    /// Removes the entry `id` → `slot`, if present; true if it was.
    pub fn remove(&mut self, id: &[u8; 16], slot: u32) -> bool {
        let Some(pos) = self.probe(id_fingerprint(id), |s| s == slot) else {
            return false;
        };
        let mask = self.mask();
        // Backward shift: move later entries of the cluster into the hole when their home
        // position allows it.
        let mut hole = pos;
        let mut next = (pos + 1) & mask;
        loop {
            let e = self.entries[next];
            if e.slot == FREE {
                break;
            }
            let home = self.home(e.fp);
            // `e` may move to `hole` unless its home lies cyclically in (hole, next].
            if next.wrapping_sub(home) & mask >= next.wrapping_sub(hole) & mask {
                self.entries[hole] = e;
                hole = next;
            }
            next = (next + 1) & mask;
        }
        self.entries[hole] = EMPTY;
        self.len -= 1;
        true
    }

    /// IDs indexed.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Heap bytes.
    pub fn heap_bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<Entry>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn id(n: u64) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&n.to_le_bytes());
        b
    }

    /// Random inserts and removals agree with a `HashMap` (IDs confirmed against the model).
    #[test]
    fn agrees_with_a_map_through_growth_and_removals() {
        let mut index = TraceIndex::with_capacity(4);
        let mut model: HashMap<u32, [u8; 16]> = HashMap::new();
        let mut by_id: HashMap<[u8; 16], u32> = HashMap::new();
        let mut x = 12345u64;
        for step in 0..20_000u32 {
            x = super::super::cache::mix(x.wrapping_add(step as u64));
            let n = x % 3000;
            let key = id(n);
            match by_id.get(&key).copied() {
                Some(slot) if x & 1 == 0 => {
                    assert!(index.remove(&key, slot));
                    model.remove(&slot);
                    by_id.remove(&key);
                }
                Some(_) => {}
                None => {
                    index.insert(&key, step);
                    model.insert(step, key);
                    by_id.insert(key, step);
                }
            }
            if step % 97 == 0 {
                for probe in 0..3000 {
                    let key = id(probe);
                    let found = index.find(&key, |s| model.get(&s) == Some(&key));
                    assert_eq!(found, by_id.get(&key).copied(), "id {probe} at step {step}");
                }
            }
        }
        assert_eq!(index.len(), by_id.len());
    }

    #[test]
    fn remove_of_an_absent_entry_changes_nothing() {
        let mut index = TraceIndex::with_capacity(4);
        index.insert(&id(1), 7);
        assert!(!index.remove(&id(1), 8));
        assert!(!index.remove(&id(2), 7));
        assert_eq!(index.find(&id(1), |s| s == 7), Some(7));
    }
}
