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
    fn successor_wraps_to_the_first_point() {
        let points = [NONE, 1, NONE, NONE, 0, NONE];
        assert_eq!(&*resolve_successors(&points), &[1, 1, 0, 0, 0, 1]);
    }
}
