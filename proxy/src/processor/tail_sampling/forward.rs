//! The owner core's side of gateway membership (issue 18, docs/membership-design.md §4.2, §7):
//! which spans of a request part stay in this core's engine and which go to another gateway,
//! and the per-peer OTLP clients that carry them, marked so they are never forwarded again.
//!
//! The rules themselves (`tailgate_routing::membership::Rules`) are sans-IO; this module feeds
//! them what the engine holds and turns their answers (`Out`) into requests: spans re-framed and
//! marked, claims / redirects / decisions as control messages (`tailgate_proto::control`), and
//! hand-overs of undecided fragments taken out of the engine (`Engine::take_pending`).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use tailgate_proto::control::{self, Control, State};
use tailgate_proto::hop::Kind as WireKind;
use tailgate_proto::{RequestBuilder, SpanView};
use tailgate_routing::membership::{
    ClaimEntry, DropReason, Held, Incarnation, Mark, Out, PeerRef, Reason, Route, Rules,
};
use tailgate_sampler::{shard_for, Clock, Engine, HeldState, SystemClock};

use super::drain::Phase;
use super::peers::Peers;
use crate::exporter::otlp;
use crate::exporter::otlp::exporter::OtlpExporter;
use crate::pipeline::{Consumer, Hop, HopKind, Metadata, Payload};
use crate::telemetry::metrics::{Kind, Local, Registry};

/// How often each core looks for a new member table (as the agents' load balancer does).
pub const FOLLOW_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);

/// Where one span of a part goes: index 0 is the local engine, `k` the `k`-th destination.
pub type Dest = u16;

/// The spans of one part sorted by destination (see [`Forwarder::classify`]).
#[derive(Default)]
pub struct Plan {
    /// Per span, in part order.
    pub dest: Vec<Dest>,
    /// Destination `k` is `groups[k - 1]`.
    pub groups: Vec<(PeerRef, HopKind)>,
    /// Traces that start here and must not be decided before the instant (Unix ns).
    pub defer: Vec<([u8; 16], u64)>,
    /// Messages the rules asked for (claims of traces this gateway starts holding without
    /// owning them): [`Forwarder::execute`] them once the spans are in.
    pub out: Vec<Out>,
}

impl Plan {
    /// True when every span stays here.
    pub fn all_local(&self) -> bool {
        self.groups.is_empty()
    }
}

/// Counters of one core's forwarder (`tailgate_membership_*`, label `processor`).
struct ForwardMetrics {
    forwarded_not_owner: Local,
    forwarded_claim: Local,
    forwarded_handover: Local,
    received_fwd: Local,
    received_handover: Local,
    failed_queue_full: Local,
    failed_no_peer: Local,
    duplicate_batches: Local,
    duplicate_spans: Local,
    deferred: Local,
    disagreements: Local,
    control_sent: Local,
    control_received: Local,
    control_refused: Local,
    view_changes: Local,
    decisions_sent: Local,
    decisions_received: Local,
    /// `tailgate_membership_drain_phase` (core 0 writes it).
    drain_phase: Local,
}

impl ForwardMetrics {
    fn register(registry: &Registry, core: usize, processor: &str) -> Self {
        let counter = |name: &'static str, help: &'static str, extra: &[(&str, &str)]| {
            let mut labels = vec![("processor", processor)];
            labels.extend_from_slice(extra);
            registry
                .register(name, help, Kind::Counter, &labels)
                .local(core)
        };
        const FWD: &str = "tailgate_membership_forwarded_spans_total";
        const FWD_HELP: &str = "Spans this gateway sent to another gateway, by reason (tailgate).";
        const RECV: &str = "tailgate_membership_received_spans_total";
        const RECV_HELP: &str = "Spans other gateways sent here, by kind (tailgate).";
        const FAILED: &str = "tailgate_membership_forward_failed_spans_total";
        const DECISIONS: &str = "tailgate_membership_decisions_handed_over_total";
        const DECISIONS_HELP: &str =
            "Decisions a draining gateway handed to the new owners of its traces, or received (tailgate).";
        const FAILED_HELP: &str =
            "Spans that could not be handed to a peer's sending queue, by reason (tailgate).";
        Self {
            forwarded_not_owner: counter(FWD, FWD_HELP, &[("reason", "not_owner")]),
            forwarded_claim: counter(FWD, FWD_HELP, &[("reason", "claim")]),
            forwarded_handover: counter(FWD, FWD_HELP, &[("reason", "handover")]),
            received_fwd: counter(RECV, RECV_HELP, &[("kind", "fwd")]),
            received_handover: counter(RECV, RECV_HELP, &[("kind", "handover")]),
            failed_queue_full: counter(FAILED, FAILED_HELP, &[("reason", "queue_full")]),
            failed_no_peer: counter(FAILED, FAILED_HELP, &[("reason", "peer_down")]),
            duplicate_batches: counter(
                "tailgate_membership_duplicate_batches_total",
                "Forwarded batches received again (a retry) and not inserted twice (tailgate).",
                &[],
            ),
            duplicate_spans: counter(
                "tailgate_membership_duplicate_spans_total",
                "Spans of forwarded batches received again and not inserted twice (tailgate).",
                &[],
            ),
            deferred: counter(
                "tailgate_membership_decisions_deferred_total",
                "Traces whose decision waits until a claim could have arrived (tailgate).",
                &[],
            ),
            disagreements: counter(
                "tailgate_membership_view_disagreements_total",
                "Marked batches whose sender's routing table differs from this gateway's (tailgate).",
                &[("source", "peer")],
            ),
            control_sent: counter(
                "tailgate_membership_control_messages_total",
                "Control messages (claims, redirects, decisions) sent to or received from peers (tailgate).",
                &[("direction", "sent")],
            ),
            control_received: counter(
                "tailgate_membership_control_messages_total",
                "Control messages (claims, redirects, decisions) sent to or received from peers (tailgate).",
                &[("direction", "received")],
            ),
            view_changes: counter(
                "tailgate_membership_view_changes_total",
                "Member tables this core applied after the first (tailgate).",
                &[],
            ),
            control_refused: counter(
                "tailgate_membership_control_refused_total",
                "Control messages whose payload did not parse; nothing of them applied (tailgate).",
                &[],
            ),
            decisions_sent: counter(
                DECISIONS,
                DECISIONS_HELP,
                &[("direction", "sent")],
            ),
            decisions_received: counter(
                DECISIONS,
                DECISIONS_HELP,
                &[("direction", "received")],
            ),
            drain_phase: registry
                .register(
                    "tailgate_membership_drain_phase",
                    "Drain phase of this gateway: 0 running, 1 announce, 2 deciding, 3 handing over, 4 closing (tailgate).",
                    Kind::Gauge,
                    &[("processor", processor)],
                )
                .local(core),
        }
    }
}

/// One core's membership: its rules, its clients to peers, and its batch sequence.
pub struct Forwarder {
    peers: Arc<Peers>,
    rules: RefCell<Rules>,
    /// One client per peer endpoint, made when first needed (members change with the resolver).
    clients: RefCell<BTreeMap<Arc<str>, Rc<OtlpExporter>>>,
    registry: Arc<Registry>,
    /// Each peer client's byte cap (this core's queue bytes over the members).
    share: Rc<Cell<u64>>,
    queue_bytes: u64,
    core: u16,
    seq: Cell<u64>,
    metrics: ForwardMetrics,
    /// Scratch: destination of each trace seen in the part being classified.
    seen: RefCell<ahash::AHashMap<[u8; 16], Dest>>,
    /// This core has sent its decisions (drain phase 3).
    handed: Cell<bool>,
    /// Cores of this process: a control entry is applied by the core owning its trace.
    cores: usize,
    /// This core's index (`core` is its `u16` for batch IDs).
    index: usize,
}

impl Forwarder {
    /// Builds core `core`'s forwarder over the members published so far.
    pub fn build(
        peers: Arc<Peers>,
        core: usize,
        cores: usize,
        registry: Arc<Registry>,
        now_ns: u64,
        queue_bytes: u64,
    ) -> Self {
        let processor = peers.processor.to_string();
        let view = Arc::new(peers.view());
        let members = view.table().members().len().max(1) as u64;
        Forwarder {
            metrics: ForwardMetrics::register(&registry, core, &processor),
            rules: RefCell::new(Rules::new(peers.rules, view, now_ns)),
            peers,
            clients: RefCell::new(BTreeMap::new()),
            registry,
            share: Rc::new(Cell::new(queue_bytes / members)),
            queue_bytes,
            core: u16::try_from(core).unwrap_or(u16::MAX),
            seq: Cell::new(0),
            seen: RefCell::new(ahash::AHashMap::new()),
            handed: Cell::new(false),
            cores: cores.max(1),
            index: core,
        }
    }

    /// The client for `endpoint`, made on first use (`exporter="<processor>/membership"`,
    /// `endpoint` labels); `None` when it cannot be made (an invalid TLS server name, say).
    fn client(&self, endpoint: &Arc<str>) -> Option<Rc<OtlpExporter>> {
        if let Some(c) = self.clients.borrow().get(endpoint) {
            return Some(c.clone());
        }
        let label = format!("{}/membership", self.peers.processor);
        let made = self.peers.client.backend(endpoint).and_then(|config| {
            let tls = match &self.peers.tls {
                Some(t) if config.target().tls => Some((
                    t.clone(),
                    crate::tls::server_name(&config.keys().tls, &config.target().host)?,
                )),
                _ => None,
            };
            Ok(otlp::start_labelled(
                self.index,
                &self.registry,
                format!("{label}/{endpoint}"),
                &[("exporter", label.as_str()), ("endpoint", endpoint)],
                &config,
                tls,
                crate::exporter::loadbalancing::backends::seed(self.index, endpoint),
                self.share.clone(),
            ))
        });
        match made {
            Ok(c) => {
                self.clients
                    .borrow_mut()
                    .insert(endpoint.clone(), c.clone());
                Some(c)
            }
            Err(e) => {
                tracing::error!(peer = %endpoint, "cannot make the client for a gateway peer: {e}");
                None
            }
        }
    }

    /// Applies a newly published member table (called every [`FOLLOW_INTERVAL`] and before
    /// control messages): every trace this core holds whose owner is now another gateway is
    /// claimed to it (design §4.3), and traces moving here are deferred until their claims can
    /// have arrived.
    pub fn follow(&self, engine: &OwnerEngine) {
        let generation = self.peers.generation();
        if self.rules.borrow().view().generation() == generation {
            return;
        }
        let view = Arc::new(self.peers.view());
        self.peers.note_listed(&view, std::time::Instant::now());
        let members = view.table().members().len().max(1) as u64;
        self.share.set(self.queue_bytes / members);
        let mut held_now = Vec::new();
        engine
            .borrow()
            .held(|id, state| held_now.push((*id, held(state))));
        let now = SystemClock.now_unix_nanos();
        let was_down = self.rules.borrow().view().down().clone();
        let newly_down: Vec<String> = view.down().difference(&was_down).cloned().collect();
        let outs = {
            let mut rules = self.rules.borrow_mut();
            // A peer the probes took down holds nothing any more that spans could join: its
            // claims go, so later spans follow ownership (its traces' next choices).
            for peer in &newly_down {
                rules.drop_peer(peer, DropReason::PeerDown);
            }
            rules.on_view(now, view, held_now)
        };
        self.metrics.view_changes.add(1);
        self.execute(outs, engine);
    }

    /// Queued or in-flight batches of the peer clients (for the drain).
    pub fn pending(&self) -> usize {
        self.clients.borrow().values().map(|c| c.pending()).sum()
    }

    /// Counts what the peer clients still hold as failed (drain deadline); returns the spans.
    pub fn abandon(&self) -> u64 {
        self.clients.borrow().values().map(|c| c.abandon()).sum()
    }

    /// A marked part arrived: true the first time its batch is seen here. A retried forward
    /// whose first attempt arrived (its answer was lost) is counted and not inserted again.
    pub fn accept(&self, hop: &Hop, spans: u64) -> bool {
        self.peers.seen(&hop.from, hop.incarnation);
        let fresh = self.rules.borrow_mut().accept_batch(
            &hop.from,
            Incarnation(hop.incarnation),
            hop.batch.0,
            hop.batch.1,
        );
        if !fresh {
            self.metrics.duplicate_batches.add(1);
            self.metrics.duplicate_spans.add(spans);
            return false;
        }
        match hop.kind {
            HopKind::Forward(_) => self.metrics.received_fwd.add(spans),
            HopKind::HandOver => self.metrics.received_handover.add(spans),
            HopKind::Control(_) => {}
        }
        if hop.table != self.rules.borrow().view().hash() {
            self.metrics.disagreements.add(1);
        }
        true
    }

    /// Rule 4.2 for every trace of a part: where each span goes. `holds` is this core's engine.
    /// Each trace is routed once per part (the rules count and claim per decision).
    pub fn classify(
        &self,
        now_ns: u64,
        views: &[SpanView],
        hop: Option<&Hop>,
        holds: impl Fn(&[u8; 16]) -> HeldState,
    ) -> Plan {
        let mark = hop.and_then(|h| match h.kind {
            HopKind::Forward(reason) => Some(Mark::Forward { reason }),
            HopKind::HandOver => Some(Mark::HandOver),
            HopKind::Control(_) => None,
        });
        let stamp = hop.map(|h| h.table);
        let mut rules = self.rules.borrow_mut();
        let mut seen = self.seen.borrow_mut();
        seen.clear();
        let mut plan = Plan::default();
        let mut out = Vec::new();
        let mut last: Option<([u8; 16], Dest)> = None;
        // Agent data in the steady state: an owned trace stays, whatever the engine holds.
        let fast = mark.is_none() && stamp.is_none() && rules.steady(now_ns);
        for v in views {
            let trace = v.trace_id();
            let dest = match last.filter(|(t, _)| *t == trace) {
                Some((_, d)) => d,
                None if fast && rules.view().owns(&trace) => 0,
                None => *seen.entry(trace).or_insert_with(|| {
                    let held = held(holds(&trace));
                    let route = rules.route(now_ns, &trace, held, mark.as_ref(), stamp, &mut out);
                    self.place(route, trace, &mut plan)
                }),
            };
            last = Some((trace, dest));
            plan.dest.push(dest);
        }
        plan.out = out;
        plan
    }

    /// Records where one trace's spans go; returns its destination index.
    fn place(&self, route: Route, trace: [u8; 16], plan: &mut Plan) -> Dest {
        let (to, kind) = match route {
            Route::Local { not_before } => {
                if let Some(at) = not_before {
                    self.metrics.deferred.add(1);
                    plan.defer.push((trace, at));
                }
                return 0;
            }
            Route::Forward { to, reason } => (to, HopKind::Forward(reason)),
            Route::HandOver { to } => (to, HopKind::HandOver),
        };
        let found = plan
            .groups
            .iter()
            .position(|(p, k)| p.endpoint == to.endpoint && *k == kind);
        let index = found.unwrap_or_else(|| {
            plan.groups.push((to, kind));
            plan.groups.len() - 1
        });
        Dest::try_from(index + 1).unwrap_or(Dest::MAX)
    }

    /// Sends the spans of destination `k` of `plan` (`spans` = the part's views) to its peer,
    /// marked; refused or unknown peers are counted.
    pub fn send(&self, plan: &Plan, views: &[SpanView]) {
        for (i, (to, kind)) in plan.groups.iter().enumerate() {
            let k = Dest::try_from(i + 1).unwrap_or(Dest::MAX);
            let mut builder = RequestBuilder::new();
            for (v, _) in views.iter().zip(&plan.dest).filter(|(_, d)| **d == k) {
                builder.push(v);
            }
            let n = builder.span_count() as u64;
            self.send_one(to, *kind, builder.finish(), n);
        }
    }

    fn send_one(&self, to: &PeerRef, kind: HopKind, body: Bytes, spans: u64) {
        let Some(client) = self.client(&to.endpoint) else {
            // Not a member this core has a client for (a rules bug, or a view without it).
            self.metrics.failed_no_peer.add(spans);
            tracing::warn!(peer = %to.endpoint, spans, "no client for a gateway peer; spans dropped");
            return;
        };
        let seq = self.seq.get() + 1;
        self.seq.set(seq);
        let (from, table) = {
            let rules = self.rules.borrow();
            (rules.view().self_endpoint().clone(), rules.view().hash())
        };
        let hop = Hop {
            kind,
            from,
            incarnation: self.peers.incarnation.0,
            table,
            batch: (self.core, seq),
        };
        let data = Payload {
            meta: Metadata {
                hop: Some(hop),
                ..Metadata::default()
            },
            ..Payload::traces(body, spans)
        };
        match client.consume(data) {
            Ok(()) => match kind {
                HopKind::Forward(Reason::NotOwner) => self.metrics.forwarded_not_owner.add(spans),
                HopKind::Forward(Reason::Claim) => self.metrics.forwarded_claim.add(spans),
                HopKind::HandOver => self.metrics.forwarded_handover.add(spans),
                HopKind::Control(_) => self.metrics.control_sent.add(1),
            },
            // The client counted the refusal as an exporter failure too.
            Err(_) => self.metrics.failed_queue_full.add(spans),
        }
    }
}

/// This core's engine, as the owner side keeps it.
pub type OwnerEngine = RefCell<Engine<SpanView, SystemClock>>;

impl Forwarder {
    /// Applies a control message from a peer: the entries of traces this core owns go to the
    /// rules (claims, redirects) or the engine (decisions); what the rules answer is sent.
    pub fn on_control(&self, hop: &Hop, body: &[u8], engine: &OwnerEngine) {
        let HopKind::Control(kind) = hop.kind else {
            return;
        };
        self.metrics.control_received.add(1);
        self.peers.seen(&hop.from, hop.incarnation);
        // Arbitrate under the newest member table this process has.
        self.follow(engine);
        let now = SystemClock.now_unix_nanos();
        let outs = match self.apply(now, kind, hop, body, engine) {
            Ok(outs) => outs,
            Err(e) => {
                self.metrics.control_refused.add(1);
                tracing::warn!(peer = %hop.from, "a control message from a peer does not parse: {e}");
                return;
            }
        };
        self.execute(outs, engine);
    }

    fn mine(&self, trace: &[u8; 16]) -> bool {
        let shards = u32::try_from(self.cores).unwrap_or(u32::MAX);
        shard_for(trace, shards) as usize % self.cores == self.index
    }

    fn apply(
        &self,
        now: u64,
        kind: WireKind,
        hop: &Hop,
        body: &[u8],
        engine: &OwnerEngine,
    ) -> Result<Vec<Out>, tailgate_proto::error::ControlError> {
        let holds = |t: &[u8; 16]| held(engine.borrow().holds(t));
        let payload = control::parse(body)?;
        let mut rules = self.rules.borrow_mut();
        match payload.read(kind)? {
            Control::Claims(entries) => {
                let mut claims = Vec::new();
                for c in entries {
                    if self.mine(&c.trace_id) {
                        claims.push(ClaimEntry {
                            trace: c.trace_id,
                            pending: !c.state.decided(),
                            anchored: c.state.anchored(),
                            ttl_ms: c.ttl_ms,
                        });
                    }
                }
                let from = Incarnation(hop.incarnation);
                Ok(rules.on_claims(now, &hop.from, from, &claims, holds))
            }
            Control::Redirects(entries) => {
                let mut outs = Vec::new();
                for r in entries {
                    if !self.mine(&r.trace_id) {
                        continue;
                    }
                    let holder = PeerRef {
                        endpoint: Arc::from(r.holder),
                        incarnation: Some(Incarnation(r.holder_incarnation)),
                    };
                    let (decided, anchored) = (r.holder_state.decided(), r.holder_state.anchored());
                    let h = holds(&r.trace_id);
                    outs.extend(rules.on_redirect(now, &r.trace_id, holder, decided, anchored, h));
                }
                Ok(outs)
            }
            Control::Decisions(entries) => {
                let mut mine = Vec::new();
                for d in entries {
                    if self.mine(&d.trace_id) {
                        mine.push((d.trace_id, d.kept));
                    }
                }
                self.metrics.decisions_received.add(mine.len() as u64);
                engine.borrow_mut().import_decisions(&mine);
                Ok(Vec::new())
            }
            Control::Drain => {
                // Every core gets the announcement; the first applies it for the process.
                let at = std::time::Instant::now();
                self.peers.set_leaving(&hop.from, hop.incarnation, at);
                drop(rules);
                self.follow(engine);
                Ok(Vec::new())
            }
            Control::Done => {
                rules.drop_peer(&hop.from, DropReason::Drained);
                Ok(Vec::new())
            }
        }
    }

    /// Sends what the rules asked for; a hand-over takes the undecided fragment out of the engine
    /// and sends its spans to the claimant.
    pub fn execute(&self, outs: Vec<Out>, engine: &OwnerEngine) {
        for out in outs {
            match out {
                Out::Claims { to, entries } => {
                    let claims: Vec<control::Claim> = entries
                        .iter()
                        .map(|e| control::Claim {
                            trace_id: e.trace,
                            state: State::new(!e.pending, e.anchored),
                            ttl_ms: e.ttl_ms,
                        })
                        .collect();
                    self.send_control(&to, WireKind::Claim, &claims);
                }
                Out::Redirect {
                    to,
                    trace,
                    holder,
                    holder_decided,
                    holder_anchored,
                } => {
                    let r = control::Redirect {
                        trace_id: trace,
                        holder: &holder.endpoint,
                        holder_incarnation: holder.incarnation.map_or(0, |i| i.0),
                        holder_state: State::new(holder_decided, holder_anchored),
                    };
                    self.send_control(&to, WireKind::Redirect, &[r]);
                }
                Out::Decisions { to, entries } => {
                    let d: Vec<control::Decision> = entries
                        .iter()
                        .map(|&(trace_id, kept, ttl_ms)| control::Decision {
                            trace_id,
                            kept,
                            ttl_ms,
                        })
                        .collect();
                    self.send_control(&to, WireKind::Decisions, &d);
                }
                Out::HandOver { trace, to } => {
                    let taken = engine.borrow_mut().take_pending(&trace);
                    if let Some(taken) = taken {
                        let mut builder = RequestBuilder::new();
                        for v in &taken.spans {
                            builder.push(v);
                        }
                        let n = builder.span_count() as u64;
                        self.send_one(&to, HopKind::HandOver, builder.finish(), n);
                    }
                }
            }
        }
    }

    /// Encodes `entries` (split at the receivers' default body limit) and sends them to `to`.
    fn send_control<'a, E: control::Entry<'a>>(&self, to: &PeerRef, kind: WireKind, entries: &[E]) {
        match control::encode_bodies(entries, control::DEFAULT_MAX_BODY) {
            Ok(bodies) => {
                for b in bodies {
                    self.send_one(to, HopKind::Control(kind), Bytes::from(b), 0);
                }
            }
            Err(e) => {
                self.metrics.control_refused.add(1);
                tracing::warn!(peer = %to.endpoint, "cannot encode a control message: {e}");
            }
        }
    }

    /// Releases the hand-overs the rules held back until this core's view settled.
    pub fn poll(&self, now: u64, engine: &OwnerEngine) {
        let outs = {
            let mut rules = self.rules.borrow_mut();
            if rules.next_poll().is_none_or(|at| at > now) {
                return;
            }
            rules.poll(now, |t| held(engine.borrow().holds(t)))
        };
        self.execute(outs, engine);
    }

    /// When [`Forwarder::poll`] next has work (Unix ns).
    pub fn next_poll(&self) -> Option<u64> {
        self.rules.borrow().next_poll()
    }
}

impl Forwarder {
    /// This core's part of the drain (called every [`FOLLOW_INTERVAL`]; see [`super::drain`]):
    /// reports whether the engine holds a pending trace, announces the drain (core 0), sends
    /// this core's decisions when `handing over` starts, and `done` once every core has (core 0).
    pub fn drain_tick(&self, engine: &OwnerEngine) {
        let drain = &self.peers.drain;
        let now = std::time::Instant::now();
        self.peers.expire_leaving(now);
        if !drain.draining() {
            return;
        }
        // Picks up the view without this gateway (claims every held trace to its new owner).
        self.follow(engine);
        drain.report_pending(self.index, engine.borrow().next_due().is_some());
        match drain.phase() {
            Phase::Announce if self.index == 0 => {
                self.broadcast(WireKind::Drain);
                drain.announced();
            }
            Phase::HandingOver if !self.handed.get() => {
                self.hand_over_decisions(engine);
                self.handed.set(true);
                drain.handed_over();
            }
            _ => {}
        }
        if self.index == 0 && drain.phase() == Phase::HandingOver && drain.all_handed() {
            self.broadcast(WireKind::Done);
            drain.done_sent();
        }
        drain.advance(std::time::Instant::now());
        if self.index == 0 {
            self.metrics.drain_phase.set(drain.phase() as u64);
        }
    }

    /// A span entered this core's engine (the drain's `deciding` waits for quiet).
    pub fn note_inserted(&self) {
        if self.peers.drain.draining() {
            self.peers.drain.note_insert(std::time::Instant::now());
        }
    }

    /// Sends an empty control message of `kind` to every other member that is not itself
    /// leaving (a drained peer may be gone: a message queued for it would hold this drain up
    /// until its deadline).
    fn broadcast(&self, kind: WireKind) {
        let view = self.rules.borrow().view().clone();
        let mut body = Vec::new();
        control::encode_empty(&mut body);
        let body = Bytes::from(body);
        for m in view.table().members() {
            let e = m.endpoint();
            if e == &**view.self_endpoint() || view.leaving().contains(e) || view.down().contains(e)
            {
                continue;
            }
            let to = PeerRef::endpoint(Arc::from(m.endpoint()));
            self.send_one(&to, HopKind::Control(kind), body.clone(), 0);
        }
    }

    /// Sends the decisions of the traces this core decided less than the late window ago to
    /// their owners, who answer late spans from them once this gateway is gone.
    fn hand_over_decisions(&self, engine: &OwnerEngine) {
        let now = SystemClock.now_unix_nanos();
        let (view, window) = {
            let rules = self.rules.borrow();
            (rules.view().clone(), rules.config().late_window)
        };
        let mut by_owner: BTreeMap<Arc<str>, Vec<DecisionEntry>> = BTreeMap::new();
        engine.borrow().held(|id, state| {
            let HeldState::Decided { kept, at } = state else {
                return;
            };
            let until = at.saturating_add(window);
            if until <= now {
                return;
            }
            if let Some(owner) = view.owner_endpoint(id) {
                let ttl = u32::try_from((until - now).div_ceil(1_000_000)).unwrap_or(u32::MAX);
                by_owner
                    .entry(owner.clone())
                    .or_default()
                    .push((*id, kept, ttl));
            }
        });
        let outs = by_owner
            .into_iter()
            .filter(|(owner, _)| owner != view.self_endpoint())
            .map(|(owner, entries)| {
                self.metrics.decisions_sent.add(entries.len() as u64);
                Out::Decisions {
                    to: PeerRef::endpoint(owner),
                    entries,
                }
            })
            .collect();
        self.execute(outs, engine);
    }
}

/// One handed-over decision: (trace, kept, ttl_ms), as `Out::Decisions` carries it.
type DecisionEntry = ([u8; 16], bool, u32);

/// The rules' view of what the engine holds.
fn held(h: HeldState) -> Held {
    match h {
        HeldState::No => Held::No,
        HeldState::Pending { first_seen } => Held::Pending { first_seen },
        HeldState::Decided { kept, at } => Held::Decided { kept, at },
    }
}
