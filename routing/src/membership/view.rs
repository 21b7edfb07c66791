//! [`View`]: one gateway's picture of the tier at one instant, as the control thread publishes it.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::table::RoutingTable;

/// An immutable membership view: the table agents compute, the members this gateway considers down
/// or leaving, and the *effective* table that ownership is evaluated on.
///
/// The control thread builds a new `View` on every resolver answer, health transition or drain
/// announcement and publishes it whole (`Arc<View>`), so a core never sees half a change.
#[derive(Clone, Debug)]
pub struct View {
    /// This gateway's endpoint exactly as the resolver lists it (`membership.self`).
    self_endpoint: Arc<str>,
    /// The table agents compute from the same member set.
    table: RoutingTable,
    /// Members this gateway's health checks consider down (§8).
    down: BTreeSet<String>,
    /// Members that announced a drain (§9); they own nothing but keep their claims.
    leaving: BTreeSet<String>,
    /// `table.failover(down ∪ leaving)`: what ownership is evaluated on.
    effective: RoutingTable,
    /// The effective table's members as shared strings, so a route builds a [`PeerRef`](super::PeerRef)
    /// without allocating.
    endpoints: Box<[Arc<str>]>,
    /// [`RoutingTable::fingerprint`] of `effective`: the stamp this gateway puts on the wire.
    hash: u64,
    /// Index of `self_endpoint` in the table; `None` while the resolver does not list it.
    me: Option<usize>,
    /// Increases with every published view; lets cores notice a new one with one comparison.
    generation: u64,
}

impl View {
    /// Builds a view. `down` and `leaving` may name endpoints that are not members (ignored).
    pub fn new(
        self_endpoint: &str,
        table: RoutingTable,
        down: BTreeSet<String>,
        leaving: BTreeSet<String>,
        generation: u64,
    ) -> Self {
        // `failover([])` equals the table (a pure function of the sets), so skip the rebuild: a
        // `slots` placement costs milliseconds and every core builds a view per change.
        let effective = if down.is_empty() && leaving.is_empty() {
            table.clone()
        } else {
            table.failover(down.iter().chain(&leaving).map(String::as_str))
        };
        let endpoints = effective
            .members()
            .iter()
            .map(|m| Arc::from(m.endpoint()))
            .collect();
        let hash = effective.fingerprint();
        let me = table.index_of(self_endpoint);
        Self {
            self_endpoint: Arc::from(self_endpoint),
            table,
            down,
            leaving,
            effective,
            endpoints,
            hash,
            me,
            generation,
        }
    }

    /// A view with nobody down or leaving.
    pub fn plain(self_endpoint: &str, table: RoutingTable, generation: u64) -> Self {
        Self::new(
            self_endpoint,
            table,
            BTreeSet::new(),
            BTreeSet::new(),
            generation,
        )
    }

    /// The index of the member owning `trace` under the effective table; `None` for an empty table.
    pub fn owner(&self, trace: &[u8; 16]) -> Option<usize> {
        self.effective.route_trace(trace)
    }

    /// The endpoint of the member owning `trace`.
    pub fn owner_endpoint(&self, trace: &[u8; 16]) -> Option<&Arc<str>> {
        self.owner(trace).and_then(|i| self.endpoints.get(i))
    }

    /// True when this gateway owns `trace` (never while it is not listed, or while it leaves).
    pub fn owns(&self, trace: &[u8; 16]) -> bool {
        self.me.is_some() && self.owner(trace) == self.me
    }

    /// The endpoint of member `index` of the effective table.
    pub fn endpoint(&self, index: usize) -> Option<&Arc<str>> {
        self.endpoints.get(index)
    }

    /// This gateway's endpoint.
    pub fn self_endpoint(&self) -> &Arc<str> {
        &self.self_endpoint
    }

    /// The agents' table (before `down` and `leaving`).
    pub fn table(&self) -> &RoutingTable {
        &self.table
    }

    /// The table ownership is evaluated on.
    pub fn effective(&self) -> &RoutingTable {
        &self.effective
    }

    /// Members considered down.
    pub fn down(&self) -> &BTreeSet<String> {
        &self.down
    }

    /// Members draining.
    pub fn leaving(&self) -> &BTreeSet<String> {
        &self.leaving
    }

    /// The effective table's fingerprint (the table stamp on the wire).
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// This gateway's member index, `None` while it is not listed.
    pub fn me(&self) -> Option<usize> {
        self.me
    }

    /// The publication counter.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// True when `endpoint` is a member of this view (down and leaving members included).
    pub fn is_member(&self, endpoint: &str) -> bool {
        self.table.index_of(endpoint).is_some()
    }
}
