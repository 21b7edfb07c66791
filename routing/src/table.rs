//! The routing table: a member set plus the placement of keys on it, built once per membership
//! change (off the hot path) and read per span (on it).

use crate::collector::{ring_hash, ring_hash_16, CollectorRing};
use crate::error::TableError;
use crate::hash::{bytes_key, trace_key};
use crate::jump::JumpTable;
use crate::member::Member;
use crate::mode::Mode;
use crate::slots::SlotTable;

/// The most members a table holds. Member indices are `u16` in the placement tables (small tables
/// stay cache-resident), and a slot table needs several slots per member to balance.
pub const MAX_MEMBERS: usize = 4096;

/// A routing key, as chosen by the exporter's `routing_key`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteKey<'a> {
    /// `routing_key: traceID`: the 16 raw trace ID bytes.
    TraceId(&'a [u8; 16]),
    /// `routing_key: service`: the bytes of the resource's `service.name`.
    Service(&'a [u8]),
}

/// Maps routing keys to members. Immutable: a new member set or a failover builds a new table, which
/// the runtime publishes (e.g. behind an `ArcSwap`) for the data-plane cores to read.
///
/// The table is a pure function of its inputs: the member *set* (order and duplicates do not matter;
/// for `jump`, the ordinals carry the order) and, after [`failover`](Self::failover), the set of
/// unhealthy endpoints. Two agents with different histories therefore route every key identically.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoutingTable {
    /// The hashing mode the placement was built with.
    mode: Mode,
    /// Members sorted by endpoint (byte-wise, as Go's `sort.Strings`); routes return indices into it.
    members: Box<[Member]>,
    /// `false` for members failed over by [`failover`](Self::failover): they own no keys.
    usable: Box<[bool]>,
    /// Where keys go.
    placement: Placement,
}

/// The per-mode lookup structure.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Placement {
    /// No members: every lookup answers `None`.
    Empty,
    /// `jump` mode.
    Jump(JumpTable),
    /// `slots` mode.
    Slots(SlotTable),
    /// `collector` mode.
    Collector(CollectorRing),
}

// === impl RoutingTable ===

impl RoutingTable {
    /// Builds the table for a set of members.
    ///
    /// Members are de-duplicated and sorted, so any order of the same set gives the same table.
    /// Errors say what is wrong with the set (e.g. a member without an ordinal in `jump` mode).
    pub fn build(
        mode: Mode,
        members: impl IntoIterator<Item = Member>,
    ) -> Result<Self, TableError> {
        let members = normalize(members.into_iter().collect())?;
        let usable = vec![true; members.len()].into_boxed_slice();
        Self::assemble(mode, members, usable)
    }

    /// Builds the placement for normalized members and a usability mask with at least one `true`
    /// (or no members at all).
    fn assemble(
        mode: Mode,
        members: Box<[Member]>,
        usable: Box<[bool]>,
    ) -> Result<Self, TableError> {
        let placement = if members.is_empty() {
            Placement::Empty
        } else {
            match mode {
                Mode::Jump => Placement::Jump(JumpTable::build(&members, &usable)?),
                Mode::Slots => Placement::Slots(SlotTable::build(&members, &usable)),
                Mode::Collector => Placement::Collector(CollectorRing::build(&members, &usable)),
            }
        };
        Ok(Self {
            mode,
            members,
            usable,
            placement,
        })
    }

    /// The failover table: the same members, with the keys of every member whose endpoint is in
    /// `unhealthy` given to a deterministic fallback owner, and every other key left where it was.
    ///
    /// Fallback owners, per mode (each is what the mode does when the member is absent, except that
    /// the rest of the placement is frozen):
    /// - `jump`: the unhealthy ordinal is skipped by re-jumping with a derived key, the bucket count
    ///   stays the same, so the keys spread evenly over the healthy members;
    /// - `slots`: each of its slots goes to the slot's next-highest rendezvous score among healthy
    ///   members, again spreading evenly;
    /// - `collector`: its ring points are dropped, so each key goes to the next healthy point clockwise.
    ///   (Collector agents do not fail over: in a mixed fleet only tailgate agents move these keys.)
    ///
    /// The result depends only on the member set and the `unhealthy` set (earlier failovers are
    /// forgotten), so every agent that agrees on both computes the same owners. Unknown endpoints are
    /// ignored. If every member is unhealthy nothing is failed over: there is nowhere better to send
    /// the keys, so they stay with their owners (and the exporter's retry and queue deal with it).
    pub fn failover<'a>(&self, unhealthy: impl IntoIterator<Item = &'a str>) -> RoutingTable {
        let mut usable = vec![true; self.members.len()];
        for endpoint in unhealthy {
            if let Some(index) = self.index_of(endpoint) {
                usable[index] = false;
            }
        }
        if !usable.iter().any(|&u| u) {
            usable.fill(true);
        }
        Self::assemble(self.mode, self.members.clone(), usable.into_boxed_slice())
            // The same members built successfully before, and usability never makes a set invalid.
            .unwrap_or_else(|_| self.clone())
    }

    /// The member index owning a trace ID (`routing_key: traceID`); `None` only for an empty table.
    #[inline]
    pub fn route_trace(&self, trace_id: &[u8; 16]) -> Option<usize> {
        match &self.placement {
            Placement::Jump(t) => Some(t.route(trace_key(trace_id))),
            Placement::Slots(t) => Some(t.route(trace_key(trace_id))),
            Placement::Collector(r) => Some(r.route_hash(ring_hash_16(trace_id))),
            Placement::Empty => None,
        }
    }

    /// The member index owning a service name (`routing_key: service`); `None` only for an empty
    /// table.
    #[inline]
    pub fn route_service(&self, service_name: &[u8]) -> Option<usize> {
        match &self.placement {
            Placement::Jump(t) => Some(t.route(bytes_key(service_name))),
            Placement::Slots(t) => Some(t.route(bytes_key(service_name))),
            Placement::Collector(r) => Some(r.route_hash(ring_hash(service_name))),
            Placement::Empty => None,
        }
    }

    /// The member index owning `key`; `None` only for an empty table.
    #[inline]
    pub fn route(&self, key: RouteKey<'_>) -> Option<usize> {
        match key {
            RouteKey::TraceId(id) => self.route_trace(id),
            RouteKey::Service(name) => self.route_service(name),
        }
    }

    /// The member owning a trace ID.
    pub fn member_for_trace(&self, trace_id: &[u8; 16]) -> Option<&Member> {
        self.route_trace(trace_id).and_then(|i| self.members.get(i))
    }

    /// The hashing mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The members, sorted by endpoint; route results index this slice.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// True when the table has no members (every lookup answers `None`).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The index of the member with this endpoint.
    pub fn index_of(&self, endpoint: &str) -> Option<usize> {
        self.members
            .binary_search_by(|m| m.endpoint().cmp(endpoint))
            .ok()
    }

    /// False when the member at `index` was failed over and owns no keys.
    pub fn is_usable(&self, index: usize) -> bool {
        self.usable.get(index).copied().unwrap_or(false)
    }

    /// A stable 64-bit hash of the *effective* table: the mode, every member (endpoint and ordinal)
    /// and which members are usable after [`failover`](Self::failover).
    ///
    /// The placement is a pure function of exactly those inputs, so two tables with the same
    /// fingerprint route every key alike (up to hash collisions), whichever process built them and
    /// in whichever order it saw the members. Gateways and agents put it on the wire (the table stamp
    /// of `docs/membership-design.md` §5) to notice view disagreements, so the formula is frozen:
    /// FNV-1a 64 over a length-prefixed encoding, finished with MurmurHash3's `fmix64`. Changing it
    /// only makes mixed versions count disagreements, never misroute.
    pub fn fingerprint(&self) -> u64 {
        let mut h = Fnv::new();
        h.bytes(self.mode.name().as_bytes());
        h.u64(self.members.len() as u64);
        for (member, &usable) in self.members.iter().zip(self.usable.iter()) {
            // Length-prefixed so `("ab", "c")` and `("a", "bc")` differ.
            h.u64(member.endpoint().len() as u64);
            h.bytes(member.endpoint().as_bytes());
            match member.ordinal() {
                Some(ordinal) => {
                    h.bytes(&[1]);
                    h.u64(u64::from(ordinal));
                }
                None => h.bytes(&[0]),
            }
            h.bytes(&[u8::from(usable)]);
        }
        crate::hash::fmix64(h.0)
    }

    /// Number of points on the ring in `collector` mode (the collector's `len(ring.items)`).
    pub fn ring_points(&self) -> Option<usize> {
        match &self.placement {
            Placement::Collector(r) => Some(r.points()),
            _ => None,
        }
    }
}

/// FNV-1a 64, the streaming core of [`RoutingTable::fingerprint`].
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    fn bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }
}

/// Sorts and de-duplicates a member list and checks it.
fn normalize(mut members: Vec<Member>) -> Result<Box<[Member]>, TableError> {
    members.sort();
    members.dedup();
    if members.iter().any(|m| m.endpoint().is_empty()) {
        return Err(TableError::EmptyEndpoint);
    }
    for pair in members.windows(2) {
        if let [a, b] = pair {
            if a.endpoint() == b.endpoint() {
                return Err(TableError::ConflictingOrdinals {
                    endpoint: a.endpoint().to_owned(),
                    first: a.ordinal().unwrap_or_default(),
                    second: b.ordinal().unwrap_or_default(),
                });
            }
        }
    }
    if members.len() > MAX_MEMBERS {
        return Err(TableError::TooManyMembers {
            count: members.len(),
            max: MAX_MEMBERS,
        });
    }
    Ok(members.into_boxed_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tid(n: u64) -> [u8; 16] {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&crate::hash::fmix64(n).to_le_bytes());
        id[8..].copy_from_slice(&crate::hash::fmix64(!n).to_le_bytes());
        id
    }

    #[test]
    fn empty_table_routes_nowhere() {
        for mode in Mode::ALL {
            let t = RoutingTable::build(mode, []).expect("empty is valid");
            assert!(t.is_empty());
            assert_eq!(t.route_trace(&[1; 16]), None);
            assert_eq!(t.route_service(b"svc"), None);
            assert!(t.failover(["x"]).is_empty());
        }
    }

    #[test]
    fn members_are_a_set() {
        let a = RoutingTable::build(
            Mode::Slots,
            ["b:1", "a:1", "b:1"].into_iter().map(Member::new),
        )
        .expect("valid");
        assert_eq!(a.len(), 2);
        assert_eq!(a.members()[0].endpoint(), "a:1");
        assert_eq!(a.index_of("b:1"), Some(1));
        assert_eq!(a.index_of("c:1"), None);
    }

    #[test]
    fn bad_sets_are_explained() {
        let conflict = [Member::with_ordinal("a", 1), Member::with_ordinal("a", 2)];
        assert!(matches!(
            RoutingTable::build(Mode::Jump, conflict),
            Err(TableError::ConflictingOrdinals { .. })
        ));
        assert_eq!(
            RoutingTable::build(Mode::Slots, [Member::new("")]),
            Err(TableError::EmptyEndpoint)
        );
        let many = (0..=MAX_MEMBERS).map(|i| Member::new(format!("10.{i}:1")));
        assert!(matches!(
            RoutingTable::build(Mode::Collector, many),
            Err(TableError::TooManyMembers { .. })
        ));
        let err = RoutingTable::build(Mode::Jump, [Member::new("10.0.0.1:4317")])
            .expect_err("no ordinal");
        assert!(err.to_string().contains("slots"), "{err}");
    }

    #[test]
    fn failover_moves_only_unhealthy_keys_in_every_mode() {
        for mode in Mode::ALL {
            let members = (0..6).map(|i| Member::new(format!("gw-{i}.gw:4317")));
            let table = RoutingTable::build(mode, members).expect("valid");
            let sick = ["gw-1.gw:4317", "gw-4.gw:4317", "not-a-member:1"];
            let degraded = table.failover(sick);
            let sick_idx = [table.index_of(sick[0]), table.index_of(sick[1])];
            assert!(!degraded.is_usable(1) && !degraded.is_usable(4));
            for n in 0..20_000 {
                let before = table.route_trace(&tid(n));
                let after = degraded.route_trace(&tid(n));
                assert!(
                    !sick_idx.contains(&after),
                    "{mode}: routed to a sick member"
                );
                if !sick_idx.contains(&before) {
                    assert_eq!(before, after, "{mode}: a healthy member's key moved");
                }
            }
            // Pure function of (set, unhealthy set): recovering restores the original table.
            assert_eq!(degraded.failover([]), table);
        }
    }

    #[test]
    fn fingerprint_is_a_function_of_the_effective_table() {
        for mode in Mode::ALL {
            let names = ["gw-0.gw:4317", "gw-1.gw:4317", "gw-2.gw:4317"];
            let a =
                RoutingTable::build(mode, names.iter().map(|n| Member::new(*n))).expect("valid");
            let b = RoutingTable::build(mode, names.iter().rev().map(|n| Member::new(*n)))
                .expect("valid");
            assert_eq!(
                a.fingerprint(),
                b.fingerprint(),
                "{mode}: order must not matter"
            );

            let grown = RoutingTable::build(
                mode,
                names
                    .iter()
                    .chain(&["gw-3.gw:4317"])
                    .map(|n| Member::new(*n)),
            )
            .expect("valid");
            assert_ne!(a.fingerprint(), grown.fingerprint(), "{mode}: a join");
            let shrunk = RoutingTable::build(mode, names[..2].iter().map(|n| Member::new(*n)))
                .expect("valid");
            assert_ne!(a.fingerprint(), shrunk.fingerprint(), "{mode}: a leave");

            let failed = a.failover(["gw-1.gw:4317"]);
            assert_ne!(a.fingerprint(), failed.fingerprint(), "{mode}: a failover");
            assert_eq!(
                failed.failover([]).fingerprint(),
                a.fingerprint(),
                "{mode}: recovery"
            );
        }
        let slots = RoutingTable::build(Mode::Slots, [Member::new("a:1")]).expect("valid");
        let jump =
            RoutingTable::build(Mode::Jump, [Member::with_ordinal("a:1", 0)]).expect("valid");
        assert_ne!(
            slots.fingerprint(),
            jump.fingerprint(),
            "the mode is part of the table"
        );
        // Same endpoint, another ordinal: another jump placement, another fingerprint.
        let jump1 =
            RoutingTable::build(Mode::Jump, [Member::with_ordinal("a:1", 1)]).expect("valid");
        assert_ne!(jump.fingerprint(), jump1.fingerprint());
    }

    /// `fingerprint()` of a one-member slots table, pinned when the formula was introduced.
    const FROZEN_FINGERPRINT: u64 = 0xb924_ca73_4854_0af5;

    #[test]
    fn fingerprint_is_frozen() {
        // On the wire between versions: a change here makes mixed fleets count disagreements.
        let t = RoutingTable::build(Mode::Slots, [Member::new("10.0.0.1:4317")]).expect("valid");
        assert_eq!(t.fingerprint(), FROZEN_FINGERPRINT);
        let empty = RoutingTable::build(Mode::Slots, []).expect("valid");
        assert_ne!(empty.fingerprint(), t.fingerprint());
    }

    #[test]
    fn all_unhealthy_fails_nothing_over() {
        let table = RoutingTable::build(Mode::Slots, [Member::new("a:1"), Member::new("b:1")])
            .expect("valid");
        assert_eq!(table.failover(["a:1", "b:1"]), table);
    }

    #[test]
    fn service_keys_route() {
        for mode in Mode::ALL {
            let members = (0..4).map(|i| Member::new(format!("gw-{i}:4317")));
            let t = RoutingTable::build(mode, members).expect("valid");
            let key = RouteKey::Service(b"checkout");
            assert_eq!(t.route(key), t.route_service(b"checkout"));
            assert!(t.route(key).is_some_and(|i| i < 4));
        }
    }
}
