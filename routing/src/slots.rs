//! `slots` mode: a fixed table of slots, each assigned to a member by rendezvous (highest random
//! weight) hashing of slot × member.
//!
//! For unordered address sets (DNS A records of a Deployment) there is no ordinal to jump over. Each
//! slot goes to the member with the highest score `fmix64(member_hash ^ slot_hash)`; the score does not
//! depend on the other members, so the table is a pure function of the member set, adding a member
//! only takes slots (from everyone, evenly) and removing one only gives its own slots away. A lookup
//! is one mix of the trace ID and one load.

use crate::hash::{bytes_key, fmix64};
use crate::member::Member;

/// log2 of the number of slots.
pub const SLOT_BITS: u32 = 16;
/// Number of slots in the table. Balance is bounded by the slot granularity: with `n` members each
/// gets `SLOT_COUNT / n` slots on average with a binomial spread, so more slots means better balance
/// at the cost of table size (2 bytes per slot: 128 KiB, L2 resident) and build time. 2^16 slots
/// keep max/mean under 1.1 up to 64 members (2^13 gave ~1.25, 2^14 1.17; see the crate docs).
pub const SLOT_COUNT: usize = 1 << SLOT_BITS;

/// Salt of the per-slot hash, so slot hashes are unrelated to member hashes.
const SLOT_SALT: u64 = 0x736c_6f74_7461_626c; // "slottabl"

/// Placement for the `slots` mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SlotTable {
    /// Owner (member index) of each slot; a key's slot is the top `SLOT_BITS` bits of its key.
    owners: Box<[u16]>,
}

impl SlotTable {
    /// Builds the table for `members` (sorted, de-duplicated, at least one usable). Slots go to the
    /// usable member with the highest score; a slot whose first choice is unusable therefore goes to
    /// its second choice, which is the failover rule.
    pub(crate) fn build(members: &[Member], usable: &[bool]) -> Self {
        let weights: Vec<(u64, u16)> = members
            .iter()
            .zip(usable)
            .enumerate()
            .filter(|(_, (_, &ok))| ok)
            .map(|(i, (m, _))| (bytes_key(m.endpoint().as_bytes()), i as u16))
            .collect();
        let owners = (0..SLOT_COUNT as u64)
            .map(|slot| {
                let slot_hash = fmix64(slot ^ SLOT_SALT);
                // Ties (one in 2^64) go to the earlier member in sorted order: still deterministic.
                let mut best = (0u64, 0u16);
                for (i, &(member_hash, index)) in weights.iter().enumerate() {
                    let score = fmix64(member_hash ^ slot_hash);
                    if i == 0 || score > best.0 {
                        best = (score, index);
                    }
                }
                best.1
            })
            .collect();
        Self { owners }
    }

    /// The member index owning `key`.
    #[inline]
    pub(crate) fn route(&self, key: u64) -> usize {
        let slot = (key >> (64 - SLOT_BITS)) as usize;
        self.owners.get(slot).map_or(0, |&i| usize::from(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ips(n: usize) -> Vec<Member> {
        let mut v: Vec<Member> = (0..n)
            .map(|i| Member::new(format!("10.0.0.{}:4317", i + 1)))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn every_member_gets_a_fair_share_of_slots() {
        let set = ips(16);
        let table = SlotTable::build(&set, &[true; 16]);
        let mut counts = [0usize; 16];
        for &o in table.owners.iter() {
            counts[usize::from(o)] += 1;
        }
        let mean = SLOT_COUNT / 16;
        assert!(
            counts.iter().all(|&c| c > mean * 3 / 4 && c < mean * 5 / 4),
            "{counts:?}"
        );
    }

    #[test]
    fn an_unusable_member_gives_away_only_its_slots() {
        let set = ips(5);
        let all = SlotTable::build(&set, &[true; 5]);
        let failed = SlotTable::build(&set, &[true, true, false, true, true]);
        for (before, after) in all.owners.iter().zip(failed.owners.iter()) {
            assert_ne!(*after, 2);
            if *before != 2 {
                assert_eq!(before, after);
            }
        }
    }
}
