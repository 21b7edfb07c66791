//! `collector` mode: the OpenTelemetry Collector contrib `loadbalancing` exporter's hash ring,
//! reproduced exactly (checked against v0.115.0), so agents running tailgate and agents running the
//! collector send every trace to the same gateway while a fleet is migrated node by node.
//!
//! The collector's ring, as read in `exporter/loadbalancingexporter/consistent_hashing.go` and the
//! resolvers that call it:
//! - the resolvers sort the endpoint strings byte-wise before building the ring (`sort.Strings`);
//! - each endpoint gets [`POINTS_PER_ENDPOINT`] points: crc32 IEEE of the endpoint bytes followed by one
//!   byte `i` (0..=99), modulo [`RING_POSITIONS`]; a position that is already taken, by an endpoint
//!   earlier in sorted order or by an earlier point of the same endpoint, is skipped;
//! - a key (the 16 raw trace ID bytes, or the service name's bytes) is hashed with crc32 IEEE modulo
//!   [`RING_POSITIONS`] and owned by the first point at or after that position, wrapping to the first.
//!
//! Because positions are only 0..36000, the whole ring is flattened here into one owner per position:
//! a lookup is crc32 of 16 bytes, one modulo and one load, instead of the collector's binary search.
//! `testdata/collector_ring.go` re-implements the collector's ring (including its recursive search)
//! with Go's standard library and its output is checked in `tests/collector_vectors.rs`.

use crate::member::Member;

/// Positions on the collector's ring ("360 degrees with two decimal places").
pub const RING_POSITIONS: u32 = 36_000;
/// Points per endpoint (the collector's `defaultWeight`).
pub const POINTS_PER_ENDPOINT: u8 = 100;

/// Marks a position without a point while building.
const NONE: u16 = u16::MAX;

/// Placement for the `collector` mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CollectorRing {
    /// Owner (member index) of every ring position, already resolved to the next point.
    owners: Box<[u16]>,
    /// Number of points on the ring (after skipping taken positions), for diagnostics and tests.
    points: usize,
}

impl CollectorRing {
    /// Builds the ring for `members` (sorted byte-wise by endpoint, de-duplicated, at least one
    /// usable). Unusable members still claim their positions first, exactly as in the full ring, and
    /// their points are then dropped: their keys go to the next usable point and no other key moves.
    pub(crate) fn build(members: &[Member], usable: &[bool]) -> Self {
        let mut points = vec![NONE; RING_POSITIONS as usize];
        let mut count = 0;
        for (index, m) in members.iter().enumerate() {
            for i in 0..POINTS_PER_ENDPOINT {
                let mut h = crc32fast::Hasher::new();
                h.update(m.endpoint().as_bytes());
                h.update(&[i]);
                let pos = (h.finalize() % RING_POSITIONS) as usize;
                if points[pos] == NONE {
                    points[pos] = index as u16;
                    count += 1;
                }
            }
        }
        for p in points.iter_mut() {
            if *p != NONE && !usable[usize::from(*p)] {
                *p = NONE;
            }
        }
        Self {
            owners: resolve_successors(&points),
            points: count,
        }
    }

    /// The member index owning a crc32 `hash` of the key.
    #[inline]
    pub(crate) fn route_hash(&self, hash: u32) -> usize {
        let pos = (hash % RING_POSITIONS) as usize;
        self.owners.get(pos).map_or(0, |&i| usize::from(i))
    }

    /// Number of points on the ring, as the collector's `len(ring.items)`.
    pub(crate) fn points(&self) -> usize {
        self.points
    }
}

/// The collector's ring hash of a key: crc32 IEEE (Go's `crc32.NewIEEE`).
#[inline]
pub(crate) fn ring_hash(key: &[u8]) -> u32 {
    crc32fast::hash(key)
}

/// CRC-32 IEEE of exactly 16 bytes (a trace ID), slice-by-16: one table lookup per byte, all
/// independent, instead of crc32fast's general path (measured ~13 ns for 16 bytes, most of it
/// dispatch and setup). Equal to [`ring_hash`] on every input (tested).
#[inline]
pub(crate) fn ring_hash_16(id: &[u8; 16]) -> u32 {
    let word = |i: usize| u32::from_le_bytes([id[i], id[i + 1], id[i + 2], id[i + 3]]);
    let words = [word(0) ^ u32::MAX, word(4), word(8), word(12)];
    let mut crc = 0u32;
    for (w, word) in words.iter().enumerate() {
        for byte in 0..4 {
            // Byte `4w + byte` of the block is `15 - (4w + byte)` bytes from the end.
            let table = &CRC_TABLES[15 - (4 * w + byte)];
            crc ^= table[((word >> (8 * byte)) & 0xff) as usize];
        }
    }
    !crc
}

/// Slice-by-16 tables for CRC-32 IEEE (reflected polynomial 0xedb88320): `CRC_TABLES[0]` is the
/// classic byte table, `CRC_TABLES[k][b]` is the CRC of byte `b` followed by `k` zero bytes.
static CRC_TABLES: [[u32; 256]; 16] = crc_tables();

const fn crc_tables() -> [[u32; 256]; 16] {
    let mut t = [[0u32; 256]; 16];
    let mut n = 0;
    while n < 256 {
        let mut c = n as u32;
        let mut bit = 0;
        while bit < 8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            bit += 1;
        }
        t[0][n] = c;
        n += 1;
    }
    let mut k = 1;
    while k < 16 {
        let mut n = 0;
        while n < 256 {
            let prev = t[k - 1][n];
            t[k][n] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            n += 1;
        }
        k += 1;
    }
    t
}

/// Replaces every position by the owner of the first point at or after it, wrapping around.
fn resolve_successors(points: &[u16]) -> Box<[u16]> {
    let wrap = points.iter().copied().find(|&i| i != NONE).unwrap_or(0);
    let mut carry = wrap;
    let mut owners = vec![0u16; points.len()];
    for (slot, &p) in owners.iter_mut().zip(points).rev() {
        if p != NONE {
            carry = p;
        }
        *slot = carry;
    }
    owners.into_boxed_slice()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_is_go_ieee() {
        // crc32.ChecksumIEEE([]byte("123456789")) == 0xcbf43926, the standard check value.
        assert_eq!(ring_hash(b"123456789"), 0xcbf4_3926);
    }

    #[test]
    fn sixteen_byte_crc_equals_the_general_one() {
        let mut state = 0x1234_5678_9abc_def0u64;
        for _ in 0..10_000 {
            let mut id = [0u8; 16];
            for b in id.iter_mut() {
                state = crate::hash::fmix64(state.wrapping_add(1));
                *b = state as u8;
            }
            assert_eq!(ring_hash_16(&id), ring_hash(&id), "{id:02x?}");
        }
        for id in [[0u8; 16], [0xff; 16]] {
            assert_eq!(ring_hash_16(&id), ring_hash(&id));
        }
    }

    #[test]
    fn successor_wraps_to_the_first_point() {
        let points = [NONE, 1, NONE, NONE, 0, NONE];
        assert_eq!(&*resolve_successors(&points), &[1, 1, 0, 0, 0, 1]);
    }
}
