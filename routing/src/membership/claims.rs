//! [`Claims`]: which gateway holds which trace, as told to this owner core (§4.3).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

use super::{Incarnation, PeerRef};

/// One recorded claim.
#[derive(Clone, Debug)]
struct Claim {
    /// The gateway that holds the trace, with the incarnation that claimed it.
    holder: PeerRef,
    /// When the claim lapses (the holder's promise, measured on this host's clock).
    expires: u64,
    /// False once the holder said it decided: a decided holder cannot give its fragment up, so
    /// it wins a conflict with an undecided one.
    pending: bool,
    /// The holder received a hand-over of the trace: it never hands it away.
    anchored: bool,
    /// True once a span was routed through it: `claims_expired{used}` tells useful claims from
    /// claims sent "just in case".
    used: bool,
}

/// What a message's incarnation means for the claims of its sender.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IncarnationCheck {
    /// The incarnation already known (or the first one seen) for that endpoint.
    Current,
    /// A restart on the same endpoint: the older process's claims were dropped (how many).
    Newer {
        /// Claims of the older incarnation that were removed.
        dropped: usize,
    },
    /// A message from an incarnation older than one already seen: the process is gone, ignore it.
    Stale,
}

/// Expired claims, split by whether any span went through them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Expired {
    /// Claims that routed at least one span.
    pub used: u64,
    /// Claims that routed nothing.
    pub unused: u64,
}

/// Claims recorded at this owner core: trace → (holder, expiry), with an expiry heap.
///
/// Keyed by the full 128-bit trace ID: a collision would route a span to the wrong holder, and 16
/// bytes a claim is cheap next to the claim's lifetime (seconds). Expiry is lazy: each call site
/// runs [`expire`](Self::expire) with its `now`, so no timer is needed.
#[derive(Clone, Debug, Default)]
pub struct Claims {
    /// Live claims.
    map: HashMap<u128, Claim>,
    /// (expires, trace), earliest first; refreshed claims leave stale entries, skipped when popped.
    queue: BinaryHeap<Reverse<(u64, u128)>>,
    /// The highest incarnation seen per endpoint.
    incarnations: HashMap<Arc<str>, Incarnation>,
}

impl Claims {
    /// No claims.
    pub fn new() -> Self {
        Self::default()
    }

    /// Live claims (after the last [`expire`](Self::expire)).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no claim is recorded: the steady state, one branch on the data path.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The holder named by a live claim for `trace`.
    pub fn holder(&self, trace: &[u8; 16], now: u64) -> Option<&PeerRef> {
        self.map
            .get(&u128::from_le_bytes(*trace))
            .filter(|c| c.expires > now)
            .map(|c| &c.holder)
    }

    /// Notes that a span was routed through the claim for `trace`.
    pub fn mark_used(&mut self, trace: &[u8; 16]) {
        if let Some(c) = self.map.get_mut(&u128::from_le_bytes(*trace)) {
            c.used = true;
        }
    }

    /// Notes that the holder of the claim for `trace` was just sent a hand-over of it (by this
    /// core): it is anchored now, whatever its claim said, so a later conflict weighs it so.
    pub fn anchor(&mut self, trace: &[u8; 16]) {
        if let Some(c) = self.map.get_mut(&u128::from_le_bytes(*trace)) {
            c.anchored = true;
        }
    }

    /// (pending, anchored) of the claim for `trace`; `(true, false)`, the weakest, without one.
    pub fn state(&self, trace: &[u8; 16]) -> (bool, bool) {
        self.map
            .get(&u128::from_le_bytes(*trace))
            .map_or((true, false), |c| (c.pending, c.anchored))
    }

    /// Records or refreshes a claim. A refresh by the same holder keeps the later expiry; another
    /// holder replaces the claim (the caller arbitrated).
    pub fn upsert(
        &mut self,
        trace: &[u8; 16],
        holder: PeerRef,
        pending: bool,
        anchored: bool,
        expires: u64,
    ) {
        let key = u128::from_le_bytes(*trace);
        let claim = self.map.entry(key).or_insert(Claim {
            holder: holder.clone(),
            expires,
            pending,
            anchored,
            used: false,
        });
        if claim.holder.endpoint != holder.endpoint {
            *claim = Claim {
                holder,
                expires,
                pending,
                anchored,
                used: false,
            };
        } else {
            claim.holder.incarnation = holder.incarnation.or(claim.holder.incarnation);
            claim.expires = claim.expires.max(expires);
            claim.pending &= pending;
            claim.anchored |= anchored;
        }
        self.queue.push(Reverse((claim.expires, key)));
    }

    /// Removes every claim whose expiry is at or before `now`.
    pub fn expire(&mut self, now: u64) -> Expired {
        let mut expired = Expired::default();
        while let Some(&Reverse((at, key))) = self.queue.peek() {
            if at > now {
                break;
            }
            self.queue.pop();
            // Only the entry matching the claim's current expiry removes it (refreshes leave stale ones).
            if self.map.get(&key).is_some_and(|c| c.expires == at) {
                if let Some(c) = self.map.remove(&key) {
                    if c.used {
                        expired.used += 1;
                    } else {
                        expired.unused += 1;
                    }
                }
            }
        }
        expired
    }

    /// Drops every claim held by `endpoint` (peer down, drained); returns how many.
    pub fn drop_peer(&mut self, endpoint: &str) -> usize {
        let before = self.map.len();
        self.map.retain(|_, c| &*c.holder.endpoint != endpoint);
        before - self.map.len()
    }

    /// Checks a sender's incarnation; a newer one drops the claims of the older process.
    pub fn observe_incarnation(
        &mut self,
        endpoint: &Arc<str>,
        incarnation: Incarnation,
    ) -> IncarnationCheck {
        match self.incarnations.get(endpoint) {
            Some(&known) if known == incarnation => IncarnationCheck::Current,
            Some(&known) if known > incarnation => IncarnationCheck::Stale,
            Some(_) => {
                self.incarnations.insert(endpoint.clone(), incarnation);
                let before = self.map.len();
                self.map.retain(|_, c| {
                    *c.holder.endpoint != **endpoint
                        || c.holder.incarnation.is_none_or(|i| i >= incarnation)
                });
                IncarnationCheck::Newer {
                    dropped: before - self.map.len(),
                }
            }
            None => {
                self.incarnations.insert(endpoint.clone(), incarnation);
                IncarnationCheck::Current
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(name: &str, inc: u64) -> PeerRef {
        PeerRef {
            endpoint: Arc::from(name),
            incarnation: Some(Incarnation(inc)),
        }
    }

    #[test]
    fn claims_expire_at_their_ttl_and_refresh_extends() {
        let mut c = Claims::new();
        c.upsert(&[1; 16], peer("a:1", 1), true, false, 100);
        c.upsert(&[2; 16], peer("a:1", 1), true, false, 50);
        assert_eq!(c.holder(&[1; 16], 99).map(|p| &*p.endpoint), Some("a:1"));
        c.mark_used(&[2; 16]);
        assert_eq!(c.expire(50), Expired { used: 1, unused: 0 });
        c.upsert(&[1; 16], peer("a:1", 1), false, false, 200); // refresh
        assert_eq!(
            c.expire(150),
            Expired::default(),
            "the stale heap entry must not remove it"
        );
        assert!(c.holder(&[1; 16], 150).is_some());
        assert_eq!(c.expire(200), Expired { used: 0, unused: 1 });
        assert!(c.is_empty());
    }

    #[test]
    fn a_newer_incarnation_drops_the_older_claims_and_a_stale_one_is_ignored() {
        let mut c = Claims::new();
        let a: Arc<str> = Arc::from("a:1");
        assert_eq!(
            c.observe_incarnation(&a, Incarnation(5)),
            IncarnationCheck::Current
        );
        c.upsert(&[1; 16], peer("a:1", 5), true, false, 100);
        c.upsert(&[2; 16], peer("b:1", 1), true, false, 100);
        assert_eq!(
            c.observe_incarnation(&a, Incarnation(5)),
            IncarnationCheck::Current
        );
        assert_eq!(
            c.observe_incarnation(&a, Incarnation(9)),
            IncarnationCheck::Newer { dropped: 1 }
        );
        assert!(c.holder(&[1; 16], 0).is_none());
        assert!(c.holder(&[2; 16], 0).is_some());
        assert_eq!(
            c.observe_incarnation(&a, Incarnation(5)),
            IncarnationCheck::Stale
        );
        assert_eq!(c.drop_peer("b:1"), 1);
        assert!(c.is_empty());
    }
}
