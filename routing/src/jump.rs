//! `jump` mode: jump consistent hash over stable ordinals.
//!
//! Buckets are ordinals `0..=max`, where `max` is the highest ordinal in the member set. A bucket with
//! no usable member (a pod that is not ready, a gap in a static list, a member failed over) is skipped
//! by re-jumping with a key derived from the original one: keys that landed on a usable bucket never
//! move, and the skipped bucket's keys spread evenly over the others.

use crate::error::TableError;
use crate::hash::{jump_hash, rejump_key};
use crate::member::{Member, MAX_ORDINAL};

/// Marks an ordinal without a usable member.
const NONE: u16 = u16::MAX;

/// Re-jumps before falling back to the precomputed nearest usable ordinal. With half the ordinals
/// missing, 64 misses in a row happen for one key in 2^64; the fallback only keeps the loop bounded
/// for pathological sets such as a lone `gateway-9000`.
const MAX_REJUMPS: u32 = 64;

/// Placement for the `jump` mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct JumpTable {
    /// Number of jump buckets: highest ordinal of the whole set (usable or not) plus one, so failing a
    /// member over never changes the bucket count and never moves other members' keys.
    buckets: u32,
    /// Member index per ordinal, `NONE` where no usable member has it.
    by_ordinal: Box<[u16]>,
    /// For each ordinal, the member index of the nearest usable ordinal at or above it (wrapping):
    /// the answer after `MAX_REJUMPS` misses.
    nearest: Box<[u16]>,
}

impl JumpTable {
    /// Builds the table for `members` (sorted, de-duplicated, at least one usable).
    pub(crate) fn build(members: &[Member], usable: &[bool]) -> Result<Self, TableError> {
        let mut max = 0u32;
        for m in members {
            let ordinal = m.ordinal().ok_or_else(|| TableError::MissingOrdinal {
                endpoint: m.endpoint().to_owned(),
            })?;
            if ordinal > MAX_ORDINAL {
                return Err(TableError::OrdinalTooLarge {
                    endpoint: m.endpoint().to_owned(),
                    ordinal,
                    max: MAX_ORDINAL,
                });
            }
            max = max.max(ordinal);
        }
        let buckets = max + 1;
        let mut by_ordinal = vec![NONE; buckets as usize];
        let mut owner: Vec<Option<usize>> = vec![None; buckets as usize];
        for (index, m) in members.iter().enumerate() {
            let ordinal = m.ordinal().unwrap_or_default() as usize; // checked above
            if let Some(first) = owner[ordinal] {
                return Err(TableError::DuplicateOrdinal {
                    ordinal: ordinal as u32,
                    first: members[first].endpoint().to_owned(),
                    second: m.endpoint().to_owned(),
                });
            }
            owner[ordinal] = Some(index);
            if usable[index] {
                by_ordinal[ordinal] = index as u16;
            }
        }
        let nearest = nearest_usable(&by_ordinal);
        Ok(Self {
            buckets,
            by_ordinal: by_ordinal.into_boxed_slice(),
            nearest,
        })
    }

    /// The member index owning `key`.
    #[inline]
    pub(crate) fn route(&self, key: u64) -> usize {
        let mut k = key;
        let mut bucket = 0;
        for attempt in 0..MAX_REJUMPS {
            bucket = jump_hash(k, self.buckets) as usize;
            match self.by_ordinal.get(bucket) {
                Some(&index) if index != NONE => return usize::from(index),
                _ => k = rejump_key(key, attempt),
            }
        }
        self.nearest.get(bucket).map_or(0, |&i| usize::from(i))
    }
}

/// For each ordinal, the usable member at or after it, wrapping around.
fn nearest_usable(by_ordinal: &[u16]) -> Box<[u16]> {
    let wrap = by_ordinal.iter().copied().find(|&i| i != NONE).unwrap_or(0);
    let mut carry = wrap;
    let mut nearest = vec![0u16; by_ordinal.len()];
    for (slot, &index) in nearest.iter_mut().zip(by_ordinal).rev() {
        if index != NONE {
            carry = index;
        }
        *slot = carry;
    }
    nearest.into_boxed_slice()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(ordinals: &[u32]) -> Vec<Member> {
        let mut v: Vec<Member> = ordinals
            .iter()
            .map(|o| Member::new(format!("gw-{o}:4317")))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_gap_moves_only_its_own_keys() {
        let full = members(&[0, 1, 2, 3, 4]);
        let all = JumpTable::build(&full, &[true; 5]).expect("valid");
        let mut usable = [true; 5];
        usable[2] = false; // gw-2 sorts third
        let gap = JumpTable::build(&full, &usable).expect("valid");
        for key in 0..20_000u64 {
            let key = crate::hash::fmix64(key);
            let (before, after) = (all.route(key), gap.route(key));
            assert_ne!(after, 2);
            if before != 2 {
                assert_eq!(before, after);
            }
        }
    }

    #[test]
    fn lone_high_ordinal_still_routes() {
        let set = members(&[9000]);
        let table = JumpTable::build(&set, &[true]).expect("valid");
        for key in 0..100u64 {
            assert_eq!(table.route(key), 0);
        }
    }

    #[test]
    fn nearest_wraps() {
        assert_eq!(
            &*nearest_usable(&[NONE, 3, NONE, 1, NONE]),
            &[3, 3, 1, 1, 3]
        );
    }

    #[test]
    fn rejects_missing_and_duplicate_ordinals() {
        let set = vec![Member::new("10.0.0.1:4317")];
        assert!(matches!(
            JumpTable::build(&set, &[true]),
            Err(TableError::MissingOrdinal { .. })
        ));
        let set = vec![Member::with_ordinal("a:4317", u32::MAX)];
        assert!(matches!(
            JumpTable::build(&set, &[true]),
            Err(TableError::OrdinalTooLarge { .. })
        ));
        let set = vec![Member::new("a-1:4317"), Member::new("b-1:4317")];
        assert!(matches!(
            JumpTable::build(&set, &[true, true]),
            Err(TableError::DuplicateOrdinal { ordinal: 1, .. })
        ));
    }
}
