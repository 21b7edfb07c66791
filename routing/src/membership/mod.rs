//! Sans-IO gateway membership: who decides a trace while the gateway set changes
//! (`docs/membership-design.md` §4).
//!
//! Only the gateway that holds a trace knows that it is in flight, so ownership by table alone
//! splits traces on every change. The rules here keep every span of a trace on one decision point:
//! a gateway that holds a trace it no longer owns *claims* it to the new owner, the owner sends
//! later spans to the claimant, fragments that beat a claim are handed over, and an owner that might
//! still receive a claim defers its decision. Times are `u64` nanoseconds passed in by the caller;
//! nothing here reads a clock, touches a socket or spawns a thread. One [`Rules`] per core and
//! gateway; the shell (the proxy) moves the [`Out`] messages and spans it asks for.
//!
//! # Layout
//! - [`View`] (`view.rs`): one gateway's immutable picture of the tier.
//! - [`Claims`] (`claims.rs`): claims recorded at an owner core, with expiry and incarnations.
//! - [`Deferral`] (`deferral.rs`): the decision-time floor for traces that may have moved.
//! - [`Dedup`] (`dedup.rs`): per-sender sequence windows that drop retried batches.
//! - [`Rules`] (here): the forwarding rule (§4.2) and the claim protocol (§4.3) over the above.

mod claims;
mod dedup;
mod deferral;
mod view;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

pub use claims::{Claims, Expired, IncarnationCheck};
pub use dedup::{Dedup, DEDUP_WINDOW};
pub use deferral::Deferral;
pub use view::View;

use crate::table::RoutingTable;

/// A gateway process's identity across restarts on the same endpoint: chosen at start (unix ns
/// xor random), never reused; a higher one from the same endpoint is a newer process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Incarnation(pub u64);

/// A gateway to send to: its endpoint and, when known (it claimed something), its incarnation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PeerRef {
    /// The endpoint exactly as the resolver lists it.
    pub endpoint: Arc<str>,
    /// The incarnation that made a claim; `None` for an owner taken from the table.
    pub incarnation: Option<Incarnation>,
}

impl PeerRef {
    /// A peer known only by its endpoint.
    pub fn endpoint(endpoint: Arc<str>) -> Self {
        Self {
            endpoint,
            incarnation: None,
        }
    }
}

/// What the local engine knows about a trace (`Engine::holds`, §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Held {
    /// Not held: never seen, or decided and forgotten.
    No,
    /// Spans buffered, no decision yet.
    Pending {
        /// When the first span arrived here.
        first_seen: u64,
    },
    /// Decided; late spans are answered from the decision.
    Decided {
        /// The decision.
        kept: bool,
        /// When it was taken.
        at: u64,
    },
}

/// Why a span was forwarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The receiver is not the trace's owner (rule 4).
    NotOwner,
    /// A claim names another holder (rule 2).
    Claim,
}

/// The `tailgate-hop` / `tailgate-failover` marking of a batch, as far as the rules care.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mark {
    /// Forwarded by a gateway (`k=fwd`).
    Forward {
        /// Why the sender forwarded it.
        reason: Reason,
    },
    /// An undecided fragment handed over (`k=handover`): kept where it lands, unless that core
    /// holds nothing and knows of a keeper that cannot move (see [`Rules::route`]).
    HandOver,
    /// An agent failed these members over (`tailgate-failover`): ownership is evaluated as if
    /// they were down. Agent data: unmarked for the purpose of rules 2, 4 and 5.
    Failover {
        /// The endpoints the agent considers down.
        down: Vec<String>,
    },
}

/// Where a run of same-trace spans goes (the answer of [`Rules::route`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// Insert into the local engine.
    Local {
        /// When the trace starts here with this run: decide it no earlier than this
        /// (`Engine::defer`); `None` = the normal deadline.
        not_before: Option<u64>,
    },
    /// Forward to another gateway, marked `fwd` with the reason.
    Forward {
        /// The destination.
        to: PeerRef,
        /// Why.
        reason: Reason,
    },
    /// Send to the holder, marked `handover` (the span was already forwarded once).
    HandOver {
        /// The holder.
        to: PeerRef,
    },
}

/// One claimed trace in a `claim` message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClaimEntry {
    /// The trace ID.
    pub trace: [u8; 16],
    /// True while the claimant has not decided it.
    pub pending: bool,
    /// The claimant received a hand-over of this trace: its fragment already holds spans that
    /// moved twice, so it never hands the trace away again and wins over an unanchored claim.
    pub anchored: bool,
    /// How long the claimant promises to hold it, from receipt (relative: no clock agreement).
    pub ttl_ms: u32,
}

/// A message the shell must send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Out {
    /// Claims to a trace's owner (one message per destination).
    Claims {
        /// The owner.
        to: PeerRef,
        /// The claimed traces.
        entries: Vec<ClaimEntry>,
    },
    /// Tell a claimant that another gateway keeps the trace (§4.3 e): it hands its undecided
    /// fragment there.
    Redirect {
        /// The claimant that gives its fragment up.
        to: PeerRef,
        /// The trace.
        trace: [u8; 16],
        /// The gateway that keeps it.
        holder: PeerRef,
        /// The keeper has decided: a decided receiver must not redirect back (a split, counted).
        holder_decided: bool,
        /// The keeper's fragment is anchored (it received a hand-over): an anchored receiver
        /// moves to it, while an unanchored keeper is sent to an anchored receiver instead.
        holder_anchored: bool,
    },
    /// Take the undecided fragment of `trace` out of the local engine (`take_pending`) and send
    /// its spans to `to`, marked `handover`.
    HandOver {
        /// The trace.
        trace: [u8; 16],
        /// The claimant.
        to: PeerRef,
    },
    /// Decisions for a peer's late spans (drain, §9).
    Decisions {
        /// The new owner.
        to: PeerRef,
        /// (trace, kept, ttl_ms).
        entries: Vec<([u8; 16], bool, u32)>,
    },
}

/// Why [`RuleConfig::try_new`] refused a configuration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MembershipError {
    /// `decision_wait` of zero: nothing could ever be deferred or claimed in time.
    #[error("decision_wait must be positive")]
    ZeroDecisionWait,
    /// `grace` shorter than `decision_wait + skew + margin`.
    #[error(
        "grace {grace_ns} ns is shorter than decision_wait + skew + margin = {needed_ns} ns: \
         raise grace or lower the view skew allowed for"
    )]
    GraceTooShort {
        /// The configured grace.
        grace_ns: u64,
        /// The least grace the other settings need.
        needed_ns: u64,
    },
}

/// Timing of the rules, all in nanoseconds (§3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuleConfig {
    /// The sampler's `decision_wait`.
    pub decision_wait: u64,
    /// The largest view skew between any two gateways or agents allowed for.
    pub skew: u64,
    /// Slack over `skew` for message latency and timer ticks.
    pub margin: u64,
    /// How long a gateway keeps serving a trace at most: bounds deferral and the drain.
    pub grace: u64,
    /// How long a decided trace is still claimed and answers late spans (= `grace`).
    pub late_window: u64,
}

impl RuleConfig {
    /// Checks `grace ≥ decision_wait + skew + margin` (what deferral needs) and sets
    /// `late_window = grace`.
    pub fn try_new(
        decision_wait: u64,
        skew: u64,
        margin: u64,
        grace: u64,
    ) -> Result<Self, MembershipError> {
        if decision_wait == 0 {
            return Err(MembershipError::ZeroDecisionWait);
        }
        let needed = decision_wait.saturating_add(skew).saturating_add(margin);
        if grace < needed {
            return Err(MembershipError::GraceTooShort {
                grace_ns: grace,
                needed_ns: needed,
            });
        }
        Ok(Self {
            decision_wait,
            skew,
            margin,
            grace,
            late_window: grace,
        })
    }
}

/// Counters the shell exports as `tailgate_membership_*` (§10); monotonic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Claim entries sent (on view changes and rule 5).
    pub claims_sent: u64,
    /// Claim entries received.
    pub claims_received: u64,
    /// Claims expired after a span went through them.
    pub claims_expired_used: u64,
    /// Claims expired unused.
    pub claims_expired_unused: u64,
    /// Claims dropped because their sender restarted (or an older process spoke).
    pub claims_dropped_incarnation: u64,
    /// Claims dropped because their holder was marked down.
    pub claims_dropped_peer_down: u64,
    /// Claims dropped because their holder finished draining.
    pub claims_dropped_drained: u64,
    /// Second claims answered with a redirect.
    pub claims_dropped_conflict: u64,
    /// Claims that met a fragment already decided here.
    pub splits_decided_before_claim: u64,
    /// Traces whose decision was deferred.
    pub decisions_deferred: u64,
    /// Retried batches dropped by dedup.
    pub duplicate_batches: u64,
    /// Fragments this core was asked to hand over.
    pub fragments_handed_over: u64,
    /// Runs of spans forwarded by rule 4.
    pub forwarded_not_owner: u64,
    /// Runs of spans forwarded through a claim (rule 2).
    pub forwarded_claim: u64,
    /// Runs of spans handed over through a claim (rule 2, marked).
    pub handed_over_claim: u64,
    /// Views applied.
    pub view_changes: u64,
}

/// Why a peer's claims are dropped at once (see [`Rules::drop_peer`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// Health checks marked it down.
    PeerDown,
    /// It announced `done` after its drain.
    Drained,
}

/// At most this many failover tables (one per distinct down set in agents' marks) are kept.
const FAILOVER_CACHE: usize = 4;

/// The membership rules of one core of one gateway.
#[derive(Debug)]
pub struct Rules {
    /// The current view.
    view: Arc<View>,
    /// Claims recorded here (this core owns their traces' engine slots).
    claims: Claims,
    /// The decision-time floor.
    deferral: Deferral,
    /// Retry detection for forwards and hand-overs received.
    dedup: Dedup,
    /// Timing.
    cfg: RuleConfig,
    /// `view.effective` with an agent's failover set applied, per distinct (sorted) set.
    failover: Vec<(Vec<String>, RoutingTable)>,
    /// Traces this core received a hand-over for (→ until when that matters): an anchored
    /// fragment never moves again (a span moves at most twice).
    anchored: HashMap<u128, u64>,
    /// Fragments this owner core will hand to their claim's holder once its view is settled.
    handovers: Vec<([u8; 16], u64)>,
    /// Decision floors handed out by [`route`](Self::route) (trace → not before), so a held-back
    /// hand-over is released before the fragment's decision.
    deferred: HashMap<u128, u64>,
    /// Metrics.
    counters: Counters,
}

/// A claim's weight in a conflict between two holders: a decided fragment cannot move, an
/// anchored one must not (its spans already moved twice), a plain pending one can.
fn rank(pending: bool, anchored: bool) -> u8 {
    match (pending, anchored) {
        (false, _) => 2,
        (true, true) => 1,
        (true, false) => 0,
    }
}

impl Rules {
    /// Rules of a gateway that starts at `now` with `view`. The start counts as a change (§4.4):
    /// during the first `skew` traces that start here are deferred like moved ones, because a
    /// joining gateway owns traces whose older fragments are about to be claimed to it.
    pub fn new(cfg: RuleConfig, view: Arc<View>, now: u64) -> Self {
        Self {
            view,
            claims: Claims::new(),
            deferral: Deferral::new(now),
            dedup: Dedup::new(),
            cfg,
            failover: Vec::new(),
            anchored: HashMap::new(),
            handovers: Vec::new(),
            deferred: HashMap::new(),
            counters: Counters::default(),
        }
    }

    /// True when this core received a hand-over of `trace` that still matters.
    pub fn is_anchored(&self, trace: &[u8; 16], now: u64) -> bool {
        self.anchored
            .get(&u128::from_le_bytes(*trace))
            .is_some_and(|&until| until > now)
    }

    /// This gateway as a holder in redirects (the receiver learns the incarnation from the
    /// message that carries it).
    fn me(&self) -> PeerRef {
        PeerRef::endpoint(self.view.self_endpoint().clone())
    }

    /// The current view.
    pub fn view(&self) -> &Arc<View> {
        &self.view
    }

    /// The counters so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The timing.
    pub fn config(&self) -> &RuleConfig {
        &self.cfg
    }

    /// Claims recorded at this core (for the `claims_active` gauge and tests).
    pub fn claims(&self) -> &Claims {
        &self.claims
    }

    /// Expires claims due at `now`; every entry point calls it, so the shell need not.
    fn expire(&mut self, now: u64) {
        let e = self.claims.expire(now);
        self.counters.claims_expired_used += e.used;
        self.counters.claims_expired_unused += e.unused;
    }

    /// True when [`Rules::route`] of an unmarked, unstamped run of a trace this gateway owns is
    /// `Local` with no deferral and changes nothing: no claim is live and no view change (or the
    /// start) is within `skew`. The shell may then place such runs without asking: the steady
    /// state's fast path (a trace's ownership is one hash).
    pub fn steady(&mut self, now: u64) -> bool {
        self.claims.is_empty() && self.deferral.quiet(now, &self.cfg)
    }

    /// Rule 4.2: where a run of spans of `trace` that arrived here goes. `held` is what this core's
    /// engine knows, `mark` the batch's marking, `stamp` the sender's table hash if it sent one.
    /// A trace this gateway starts holding without owning it is claimed to its owner at once:
    /// that claim is pushed onto `out`.
    ///
    /// First match wins: (1) held here → local; (2) a live claim names another holder →
    /// forward (unmarked) or hand over (marked `fwd`); (3) owner → local; (4) unmarked → forward
    /// to the owner; (5) marked, or any hand-over → local, and claim to the owner. Before all of
    /// them, a hand-over reaching this core while it holds nothing goes on to a keeper it knows
    /// of that cannot move (decided, or anchored with a lower endpoint; see `keeper`).
    pub fn route(
        &mut self,
        now: u64,
        trace: &[u8; 16],
        held: Held,
        mark: Option<&Mark>,
        stamp: Option<u64>,
        out: &mut Vec<Out>,
    ) -> Route {
        let handover = matches!(mark, Some(Mark::HandOver));
        if handover && held == Held::No {
            if let Some(to) = self.keeper(trace, now) {
                // A hand-over is terminal except here: this core knows of a keeper elsewhere
                // that cannot give its fragment up (decided, or anchored: this core may have
                // handed it its own fragment), and whoever sent this had not learnt of it. Kept
                // here it would be a second decision point (decided) or pull the keeper's
                // fragment over, moving its spans a third time (anchored). See `keeper`.
                self.counters.handed_over_claim += 1;
                self.claims.mark_used(trace);
                return Route::HandOver { to };
            }
        }
        if handover {
            // Whatever happens below, these spans stay here: the fragment is anchored.
            let until = now
                .saturating_add(self.cfg.grace)
                .saturating_add(self.cfg.late_window);
            self.anchored.insert(u128::from_le_bytes(*trace), until);
        }
        if held != Held::No {
            return Route::Local { not_before: None };
        }
        if !self.claims.is_empty() {
            self.expire(now);
        }
        let forwarded = matches!(mark, Some(Mark::Forward { .. }));
        if !handover {
            let me = self.view.self_endpoint();
            if let Some(holder) = self.claims.holder(trace, now).filter(|h| h.endpoint != *me) {
                let to = holder.clone();
                self.claims.mark_used(trace);
                return if forwarded {
                    self.counters.handed_over_claim += 1;
                    self.claims.anchor(trace);
                    Route::HandOver { to }
                } else {
                    self.counters.forwarded_claim += 1;
                    Route::Forward {
                        to,
                        reason: Reason::Claim,
                    }
                };
            }
        }
        let (owner, owns) = match mark {
            Some(Mark::Failover { down }) => self.failover_owner(trace, down),
            _ => (
                self.view.owner_endpoint(trace).cloned(),
                self.view.owns(trace),
            ),
        };
        if !owns && !handover && !forwarded {
            if let Some(owner) = owner {
                self.counters.forwarded_not_owner += 1;
                return Route::Forward {
                    to: PeerRef::endpoint(owner),
                    reason: Reason::NotOwner,
                };
            }
        }
        let not_before = self
            .deferral
            .not_before(now, &self.view, trace, now, stamp, &self.cfg);
        if let Some(at) = not_before {
            self.counters.decisions_deferred += 1;
            self.deferred.insert(u128::from_le_bytes(*trace), at);
        }
        if !owns {
            if let Some(owner) = owner.filter(|o| o != self.view.self_endpoint()) {
                self.counters.claims_sent += 1;
                out.push(Out::Claims {
                    to: PeerRef::endpoint(owner),
                    entries: vec![ClaimEntry {
                        trace: *trace,
                        pending: true,
                        anchored: handover,
                        ttl_ms: self.pending_ttl_ms(now, now),
                    }],
                });
            }
        }
        Route::Local { not_before }
    }

    /// The holder a hand-over of `trace` reaching this core (holding nothing) is passed on to:
    /// the holder of a live claim that decided the trace, or that is anchored and has a lower
    /// endpoint than this gateway. The second condition makes every pass go to a lower endpoint,
    /// so passes cannot loop (two gateways that handed their fragments to each other at once
    /// both name the other: only the higher one passes on).
    fn keeper(&mut self, trace: &[u8; 16], now: u64) -> Option<PeerRef> {
        if self.claims.is_empty() {
            return None;
        }
        self.expire(now);
        let (pending, anchored) = self.claims.state(trace);
        let me = self.view.self_endpoint();
        self.claims
            .holder(trace, now)
            .filter(|h| h.endpoint != *me)
            .filter(|h| !pending || (anchored && h.endpoint < *me))
            .cloned()
    }

    /// The owner of `trace` when an agent marked `down` as failed, and whether it is this gateway.
    fn failover_owner(&mut self, trace: &[u8; 16], down: &[String]) -> (Option<Arc<str>>, bool) {
        let mut key: Vec<String> = down.to_vec();
        key.sort();
        key.dedup();
        let found = self.failover.iter().position(|(k, _)| *k == key);
        let index = match found {
            Some(i) => i,
            None => {
                let all = self
                    .view
                    .down()
                    .iter()
                    .chain(self.view.leaving())
                    .chain(&key)
                    .map(String::as_str);
                let table = self.view.table().failover(all);
                if self.failover.len() == FAILOVER_CACHE {
                    self.failover.remove(0);
                }
                self.failover.push((key, table));
                self.failover.len() - 1
            }
        };
        let Some((_, table)) = self.failover.get(index) else {
            return (None, false);
        };
        let owner = table
            .member_for_trace(trace)
            .map(|m| Arc::from(m.endpoint()));
        let owns =
            owner.as_deref() == Some(&**self.view.self_endpoint()) && self.view.me().is_some();
        (owner, owns)
    }

    /// The TTL of a claim for a pending trace first seen at `first_seen`: its latest possible
    /// decision (`first_seen + grace`, which bounds deferral) plus the late window.
    fn pending_ttl_ms(&self, now: u64, first_seen: u64) -> u32 {
        let until = first_seen
            .saturating_add(self.cfg.grace)
            .saturating_add(self.cfg.late_window);
        ttl_ms(until.saturating_sub(now))
    }

    /// Applies a new view (§4.3): every trace held here — pending, or decided less than
    /// `late_window` ago — that the new view does not give to this gateway is claimed to its new
    /// owner, whether or not the owner changed this time (it may have moved twice). Returns one
    /// `Out::Claims` per owner.
    pub fn on_view(
        &mut self,
        now: u64,
        view: Arc<View>,
        held: impl IntoIterator<Item = ([u8; 16], Held)>,
    ) -> Vec<Out> {
        self.expire(now);
        let old = std::mem::replace(&mut self.view, view);
        self.deferral.on_view(now, old, &self.cfg);
        self.failover.clear();
        self.anchored.retain(|_, until| *until > now);
        self.deferred.retain(|_, at| *at > now);
        self.counters.view_changes += 1;
        let mut by_owner: BTreeMap<Arc<str>, Vec<ClaimEntry>> = BTreeMap::new();
        let mut redirects = Vec::new();
        for (trace, h) in held {
            if let Some(out) = self.release_on_losing_ownership(now, &trace, h) {
                redirects.push(out);
                continue;
            }
            let entry = match h {
                Held::No => continue,
                Held::Pending { first_seen } => ClaimEntry {
                    trace,
                    pending: true,
                    anchored: self.is_anchored(&trace, now),
                    ttl_ms: self.pending_ttl_ms(now, first_seen),
                },
                Held::Decided { at, .. } => {
                    let until = at.saturating_add(self.cfg.late_window);
                    if until <= now {
                        continue;
                    }
                    ClaimEntry {
                        trace,
                        pending: false,
                        anchored: self.is_anchored(&trace, now),
                        ttl_ms: ttl_ms(until - now),
                    }
                }
            };
            if self.view.owns(&trace) {
                // Now the arbiter of a trace it holds: a claim recorded while it was not (a
                // holder whose view made this gateway the owner first) is decided here, once
                // the view settles, as if it had just arrived.
                let other = self
                    .claims
                    .holder(&trace, now)
                    .filter(|h| h.endpoint != *self.view.self_endpoint())
                    .cloned();
                if let (Some(holder), false) = (&other, entry.pending) {
                    // Decided here meanwhile: the other holder's fragment comes here.
                    let (claim_pending, _) = self.claims.state(&trace);
                    if claim_pending {
                        redirects.push(Out::Redirect {
                            to: holder.clone(),
                            trace,
                            holder: self.me(),
                            holder_decided: true,
                            holder_anchored: false,
                        });
                    }
                }
                if other.is_some()
                    && entry.pending
                    && !self.handovers.iter().any(|(t, _)| *t == trace)
                {
                    let floor = self
                        .deferred
                        .get(&u128::from_le_bytes(trace))
                        .copied()
                        .unwrap_or(0);
                    let first_seen = match h {
                        Held::Pending { first_seen } => first_seen,
                        _ => now,
                    };
                    let deadline = first_seen.saturating_add(self.cfg.decision_wait).max(floor);
                    let release = self
                        .deferral
                        .settled_at(&self.cfg)
                        .min(deadline.saturating_sub(1));
                    self.handovers.push((trace, release));
                }
                continue;
            }
            let Some(owner) = self.view.owner_endpoint(&trace) else {
                continue;
            };
            if owner == self.view.self_endpoint() {
                continue;
            }
            by_owner.entry(owner.clone()).or_default().push(entry);
        }
        let mut out: Vec<Out> = by_owner
            .into_iter()
            .map(|(owner, entries)| {
                self.counters.claims_sent += entries.len() as u64;
                Out::Claims {
                    to: PeerRef::endpoint(owner),
                    entries,
                }
            })
            .collect();
        out.append(&mut redirects);
        out
    }

    /// A view that takes `trace` away from this core while a hand-over it chose as arbiter is
    /// still held back: the choice stands and is carried out now, and this core does not claim
    /// the trace (it gave it up: it is no contender). Waiting served only to collect claims as
    /// the arbiter, which this core no longer is; claiming instead let the next arbiter order the
    /// opposite hand-over (the model test's swap: both fired, two fragments decided apart).
    fn release_on_losing_ownership(&mut self, now: u64, trace: &[u8; 16], h: Held) -> Option<Out> {
        if self.view.owns(trace) || !matches!(h, Held::Pending { .. }) {
            return None;
        }
        let i = self.handovers.iter().position(|(t, _)| t == trace)?;
        let to = self
            .claims
            .holder(trace, now)
            .filter(|p| p.endpoint != *self.view.self_endpoint())
            .cloned()?;
        if self.is_anchored(trace, now) {
            return None;
        }
        self.handovers.swap_remove(i);
        self.claims.anchor(trace);
        self.counters.fragments_handed_over += 1;
        Some(Out::HandOver { trace: *trace, to })
    }

    /// Receives claims from `from` (§4.3 a–e). `held` answers for each claimed trace what this
    /// core's engine holds. Returns the hand-overs and redirects to send.
    pub fn on_claims(
        &mut self,
        now: u64,
        from: &str,
        incarnation: Incarnation,
        entries: &[ClaimEntry],
        mut held: impl FnMut(&[u8; 16]) -> Held,
    ) -> Vec<Out> {
        self.expire(now);
        let from: Arc<str> = Arc::from(from);
        self.counters.claims_received += entries.len() as u64;
        match self.claims.observe_incarnation(&from, incarnation) {
            IncarnationCheck::Current => {}
            IncarnationCheck::Newer { dropped } => {
                self.counters.claims_dropped_incarnation += dropped as u64;
            }
            IncarnationCheck::Stale => {
                self.counters.claims_dropped_incarnation += entries.len() as u64;
                return Vec::new();
            }
        }
        if from == *self.view.self_endpoint() {
            return Vec::new();
        }
        let claimant = PeerRef {
            endpoint: from,
            incarnation: Some(incarnation),
        };
        let mut out = Vec::new();
        for entry in entries {
            let trace = &entry.trace;
            let incoming = rank(entry.pending, entry.anchored);
            // (e) Another holder claimed first: the owner arbitrates. The first claim wins unless
            // the newcomer ranks higher (decided > anchored > pending): those cannot move.
            if let Some(first) = self.claims.holder(trace, now).cloned() {
                if first.endpoint != claimant.endpoint {
                    self.counters.claims_dropped_conflict += 1;
                    let (first_pending, first_anchored) = self.claims.state(trace);
                    let standing = rank(first_pending, first_anchored);
                    // Equal ranks at the owner: the lower endpoint keeps, not the first claim to
                    // arrive. Successive owners see claims in different orders; "first wins" let
                    // two of them redirect each holder to the other (model test: the fragments
                    // crossed and spans moved three times). A core that does not own the trace
                    // keeps "first wins": it never moves the standing holder on a tie, which
                    // the owner (that may have arbitrated otherwise) would not learn of.
                    let tie_to_standing =
                        !self.view.owns(trace) || first.endpoint < claimant.endpoint;
                    let standing_wins =
                        incoming < standing || (incoming == standing && tie_to_standing);
                    if standing_wins {
                        // (Both decided: the claimant counts the split when the redirect lands.)
                        out.push(Out::Redirect {
                            to: claimant.clone(),
                            trace: *trace,
                            holder: first,
                            holder_decided: !first_pending,
                            holder_anchored: first_anchored,
                        });
                        continue;
                    }
                    out.push(Out::Redirect {
                        to: first,
                        trace: *trace,
                        holder: claimant.clone(),
                        holder_decided: !entry.pending,
                        holder_anchored: entry.anchored,
                    });
                }
            }
            let h = held(trace);
            let mut handed = false;
            let mine = match h {
                Held::No => None,
                Held::Pending { .. } => Some(rank(true, self.is_anchored(trace, now))),
                Held::Decided { .. } => Some(2),
            };
            if let Some(mine) = mine {
                // This core holds a fragment too. The owner's own fragment is the younger one
                // (c): it goes to the claimant, unless it ranks higher. A holder that does not
                // own the trace is no arbiter (views disagree: the claimant thinks it owns): it
                // only records the claim and leaves the choice to its own owner, to which it
                // claimed, or to itself once a view makes it the owner (`on_view`). Two holders
                // arbitrating at once was found by the model test to cross hand-overs.
                let keep = mine > incoming;
                let arbiter = self.view.owns(trace) || incoming == 2;
                if mine == 2 && incoming == 2 {
                    // (d) Both decided: too late, counted.
                    self.counters.splits_decided_before_claim += 1;
                } else if keep {
                    out.push(Out::Redirect {
                        to: claimant.clone(),
                        trace: *trace,
                        holder: self.me(),
                        holder_decided: mine == 2,
                        holder_anchored: self.is_anchored(trace, now),
                    });
                    continue;
                } else if arbiter {
                    // Claims of other holders may still be on their way: a fragment handed to
                    // this claimant now could have to move again when a stronger one arrives.
                    // Hand it to whoever holds the claim once every claim can have arrived (the
                    // view settled), but before the fragment's own decision.
                    let first_seen = match h {
                        Held::Pending { first_seen } => first_seen,
                        _ => now,
                    };
                    let floor = self
                        .deferred
                        .get(&u128::from_le_bytes(*trace))
                        .copied()
                        .unwrap_or(0);
                    let deadline = first_seen.saturating_add(self.cfg.decision_wait).max(floor);
                    let release = self
                        .deferral
                        .settled_at(&self.cfg)
                        .min(deadline.saturating_sub(1));
                    // A decided claimant cannot lose any later arbitration: no reason to wait.
                    if now >= release || incoming == 2 {
                        handed = true;
                        self.counters.fragments_handed_over += 1;
                        out.push(Out::HandOver {
                            trace: *trace,
                            to: claimant.clone(),
                        });
                    } else if !self.handovers.iter().any(|(t, _)| t == trace) {
                        self.handovers.push((*trace, release));
                    }
                }
            }
            // (a) record, (b) refresh.
            let expires = now.saturating_add(u64::from(entry.ttl_ms).saturating_mul(1_000_000));
            self.claims.upsert(
                trace,
                claimant.clone(),
                entry.pending,
                entry.anchored || handed,
                expires,
            );
        }
        out
    }

    /// Receives a redirect (§4.3 e): `holder` keeps `trace`. An undecided fragment held here is
    /// handed to it, and later spans arriving here follow it (the redirect is recorded as a claim
    /// lasting `grace + late_window`, the longest any claim lasts).
    pub fn on_redirect(
        &mut self,
        now: u64,
        trace: &[u8; 16],
        holder: PeerRef,
        holder_decided: bool,
        holder_anchored: bool,
        held: Held,
    ) -> Vec<Out> {
        self.expire(now);
        if holder.endpoint == *self.view.self_endpoint() {
            return Vec::new();
        }
        let theirs = rank(!holder_decided, holder_anchored);
        let mine = match held {
            Held::No => None,
            Held::Pending { .. } => Some(rank(true, self.is_anchored(trace, now))),
            Held::Decided { .. } => Some(2),
        };
        let mut out = Vec::new();
        if let Some(mine) = mine {
            if mine == 2 && theirs == 2 {
                // Both decided: two decision points exist, counted here and nowhere else.
                self.counters.splits_decided_before_claim += 1;
            } else if mine == 2 {
                // A decided fragment cannot move: the other fragment comes here instead. The
                // answer says "decided", so it never bounces back. (An anchored fragment does
                // move when redirected: keeping it, with a tie-break between anchored ones,
                // halved the extra hops in the model test but let two fragments decide apart.)
                out.push(Out::Redirect {
                    to: holder,
                    trace: *trace,
                    holder: self.me(),
                    holder_decided: mine == 2,
                    holder_anchored: mine == 1,
                });
                // The arbiter that sent the redirect still names the other holder: tell the
                // owner this one decided, so it sends later spans and its own fragment here
                // (model test: the owner released its fragment to the redirected holder, which
                // had handed everything here, and a second decision point grew there).
                if let Held::Decided { at, .. } = held {
                    out.extend(self.decided_claim(now, trace, at));
                }
                return out;
            } else if mine > theirs {
                // An anchored fragment (its spans may have moved twice already) redirected to an
                // unanchored one: the arbiter ranked a claim sent before the hand-over landed
                // here. The unanchored fragment comes here instead, and the owner learns the
                // rank, so it redirects that holder too and names this one for later spans.
                out.push(Out::Redirect {
                    to: holder,
                    trace: *trace,
                    holder: self.me(),
                    holder_decided: false,
                    holder_anchored: true,
                });
                if let Held::Pending { first_seen } = held {
                    out.extend(self.anchored_claim(now, trace, first_seen));
                }
                return out;
            } else {
                self.counters.fragments_handed_over += 1;
                out.push(Out::HandOver {
                    trace: *trace,
                    to: holder.clone(),
                });
            }
        }
        let ttl = self.cfg.grace.saturating_add(self.cfg.late_window);
        // A holder this core just handed its fragment to is anchored from now on.
        let handed = matches!(out.last(), Some(Out::HandOver { .. }));
        self.claims.upsert(
            trace,
            holder,
            !holder_decided,
            holder_anchored || handed,
            now.saturating_add(ttl),
        );
        out
    }

    /// The owner of `trace` when it is another gateway (the one a claim goes to).
    fn other_owner(&self, trace: &[u8; 16]) -> Option<Arc<str>> {
        if self.view.owns(trace) {
            return None;
        }
        let owner = self.view.owner_endpoint(trace)?.clone();
        (owner != *self.view.self_endpoint()).then_some(owner)
    }

    /// A claim for a trace decided here at `at`, to its owner; `None` when this gateway is the
    /// owner (it arbitrates itself) or the late window is over.
    fn decided_claim(&mut self, now: u64, trace: &[u8; 16], at: u64) -> Option<Out> {
        let owner = self.other_owner(trace)?;
        let until = at.saturating_add(self.cfg.late_window);
        if until <= now {
            return None;
        }
        self.counters.claims_sent += 1;
        Some(Out::Claims {
            to: PeerRef::endpoint(owner),
            entries: vec![ClaimEntry {
                trace: *trace,
                pending: false,
                anchored: self.is_anchored(trace, now),
                ttl_ms: ttl_ms(until - now),
            }],
        })
    }

    /// A claim for an anchored pending fragment first seen at `first_seen`, to its owner; `None`
    /// when this gateway is the owner.
    fn anchored_claim(&mut self, now: u64, trace: &[u8; 16], first_seen: u64) -> Option<Out> {
        let owner = self.other_owner(trace)?;
        self.counters.claims_sent += 1;
        Some(Out::Claims {
            to: PeerRef::endpoint(owner),
            entries: vec![ClaimEntry {
                trace: *trace,
                pending: true,
                anchored: true,
                ttl_ms: self.pending_ttl_ms(now, first_seen),
            }],
        })
    }

    /// When [`poll`](Self::poll) has hand-overs to release; `None` when it has none.
    pub fn next_poll(&self) -> Option<u64> {
        self.handovers.iter().map(|(_, at)| *at).min()
    }

    /// Releases the hand-overs held back until this core's view settled (`skew + margin / 2`
    /// after it was applied: every holder has applied the change and its claim has arrived), or
    /// until just before the fragment's decision. Each goes to the holder its claim names *now*,
    /// after every conflict was arbitrated; a fragment that decided meanwhile keeps the trace and
    /// redirects the holder to itself.
    pub fn poll(&mut self, now: u64, mut held: impl FnMut(&[u8; 16]) -> Held) -> Vec<Out> {
        if self.next_poll().is_none_or(|at| at > now) {
            return Vec::new();
        }
        self.expire(now);
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.handovers)
            .into_iter()
            .partition(|(_, at)| *at <= now);
        self.handovers = later;
        let mut out = Vec::new();
        for (trace, _) in due {
            let Some(to) = self.claims.holder(&trace, now).cloned() else {
                continue; // the claim lapsed: the fragment stays and decides here
            };
            if to.endpoint == *self.view.self_endpoint() {
                continue;
            }
            // Released even if a later view moved the trace away: the choice was made as its
            // arbiter, and withdrawing it left both fragments in place until both decided (the
            // model test measured more splits that way than extra hops the other way).
            match held(&trace) {
                Held::Pending { .. } if !self.is_anchored(&trace, now) => {
                    self.claims.anchor(&trace);
                    self.counters.fragments_handed_over += 1;
                    out.push(Out::HandOver { trace, to });
                }
                h @ (Held::Pending { .. } | Held::Decided { .. }) => out.push(Out::Redirect {
                    to,
                    trace,
                    holder: self.me(),
                    holder_decided: matches!(h, Held::Decided { .. }),
                    holder_anchored: self.is_anchored(&trace, now),
                }),
                Held::No => {}
            }
        }
        out
    }

    /// Drops every claim of `endpoint` at once (its process is down, or it finished draining).
    pub fn drop_peer(&mut self, endpoint: &str, reason: DropReason) {
        let n = self.claims.drop_peer(endpoint) as u64;
        match reason {
            DropReason::PeerDown => self.counters.claims_dropped_peer_down += n,
            DropReason::Drained => {
                self.counters.claims_dropped_drained += n;
                self.dedup.forget(endpoint);
            }
        }
    }

    /// §4.5: true the first time a forwarded or handed-over batch part is seen; a retry is
    /// counted and refused.
    pub fn accept_batch(
        &mut self,
        from: &str,
        incarnation: Incarnation,
        core: u16,
        seq: u64,
    ) -> bool {
        let fresh = self.dedup.accept(from, incarnation, core, seq);
        if !fresh {
            self.counters.duplicate_batches += 1;
        }
        fresh
    }
}

/// Nanoseconds to a `ttl_ms` field, rounded up (a claim must not lapse before its promise) and
/// saturated at `u32::MAX` ms (49 days).
fn ttl_ms(ns: u64) -> u32 {
    u32::try_from(ns.div_ceil(1_000_000)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests;
