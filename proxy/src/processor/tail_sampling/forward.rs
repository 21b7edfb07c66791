//! The owner core's side of gateway membership (issue 18, docs/membership-design.md §4.2, §7):
//! which spans of a request part stay in this core's engine and which go to another gateway,
//! and the per-peer OTLP clients that carry them, marked so they are never forwarded again.
//!
//! The rules themselves (`tailgate_routing::membership::Rules`) are sans-IO; this module feeds
//! them what the engine holds and turns their answers into requests. Claims, redirects and
//! hand-overs (the rules' `Out`) need the control messages of design step 6: until then the
//! static resolver cannot produce them between gateways that list the same members, and any
//! that arise (member lists that differ) are counted as unsent, never silently dropped.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use tailgate_proto::{RequestBuilder, SpanView};
use tailgate_routing::membership::{Held, Mark, Out, PeerRef, Reason, Route, Rules};
use tailgate_sampler::HeldState;

use super::peers::Peers;
use crate::exporter::otlp;
use crate::exporter::otlp::exporter::OtlpExporter;
use crate::pipeline::{Consumer, Hop, HopKind, Metadata, Payload};
use crate::telemetry::metrics::{Kind, Local, Registry};

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
    claims_unsent: Local,
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
            claims_unsent: counter(
                "tailgate_membership_claims_unsent_total",
                "Claims the rules asked for that were not sent: control messages are not built yet (tailgate).",
                &[],
            ),
        }
    }
}

/// One core's membership: its rules, its clients to every peer, and its batch sequence.
pub struct Forwarder {
    peers: Arc<Peers>,
    rules: RefCell<Rules>,
    /// One client per peer endpoint (every member but this gateway).
    clients: BTreeMap<Arc<str>, Rc<OtlpExporter>>,
    core: u16,
    seq: Cell<u64>,
    metrics: ForwardMetrics,
    /// Scratch: destination of each trace seen in the part being classified.
    seen: RefCell<Vec<([u8; 16], Dest)>>,
}

impl Forwarder {
    /// Builds core `core`'s forwarder: one `otlp` client per peer, labelled
    /// `exporter="<processor>/membership"` and `endpoint`. Returns the clients too, for the drain.
    pub fn build(
        peers: Arc<Peers>,
        core: usize,
        registry: &Registry,
        now_ns: u64,
        queue_bytes: u64,
    ) -> Result<(Self, Vec<Rc<OtlpExporter>>), String> {
        let processor = peers.processor.to_string();
        let label = format!("{processor}/membership");
        let view = peers.view.clone();
        let mut clients = BTreeMap::new();
        let share = Rc::new(Cell::new(
            queue_bytes / (view.effective().members().len().max(1) as u64),
        ));
        for m in view.effective().members() {
            let endpoint = m.endpoint();
            if endpoint == &**view.self_endpoint() {
                continue;
            }
            let config = peers.client.backend(endpoint)?;
            let tls = match &peers.tls {
                Some(t) if config.target().tls => Some((
                    t.clone(),
                    crate::tls::server_name(&config.keys().tls, &config.target().host)?,
                )),
                _ => None,
            };
            let client = otlp::start_labelled(
                core,
                registry,
                format!("{label}/{endpoint}"),
                &[("exporter", label.as_str()), ("endpoint", endpoint)],
                &config,
                tls,
                crate::exporter::loadbalancing::backends::seed(core, endpoint),
                share.clone(),
            );
            clients.insert(Arc::<str>::from(endpoint), client);
        }
        let all = clients.values().cloned().collect();
        let rules = Rules::new(peers.rules, view, now_ns);
        let f = Forwarder {
            metrics: ForwardMetrics::register(registry, core, &processor),
            peers,
            rules: RefCell::new(rules),
            clients,
            core: u16::try_from(core).unwrap_or(u16::MAX),
            seq: Cell::new(0),
            seen: RefCell::new(Vec::new()),
        };
        Ok((f, all))
    }

    /// A marked part arrived: true the first time its batch is seen here. A retried forward
    /// whose first attempt arrived (its answer was lost) is counted and not inserted again.
    pub fn accept(&self, hop: &Hop, spans: u64) -> bool {
        let fresh = self.rules.borrow_mut().accept_batch(
            &hop.from,
            tailgate_routing::membership::Incarnation(hop.incarnation),
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
        }
        if hop.table != self.peers.view.hash() {
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
        let mark = hop.map(|h| match h.kind {
            HopKind::Forward(reason) => Mark::Forward { reason },
            HopKind::HandOver => Mark::HandOver,
        });
        let stamp = hop.map(|h| h.table);
        let mut rules = self.rules.borrow_mut();
        let mut seen = self.seen.borrow_mut();
        seen.clear();
        let mut plan = Plan::default();
        let mut out = Vec::new();
        let mut last: Option<([u8; 16], Dest)> = None;
        for v in views {
            let trace = v.trace_id();
            let dest = match last.filter(|(t, _)| *t == trace) {
                Some((_, d)) => d,
                None => match seen.iter().find(|(t, _)| *t == trace) {
                    Some(&(_, d)) => d,
                    None => {
                        let held = held(holds(&trace));
                        let route =
                            rules.route(now_ns, &trace, held, mark.as_ref(), stamp, &mut out);
                        let d = self.place(route, trace, &mut plan);
                        seen.push((trace, d));
                        d
                    }
                },
            };
            last = Some((trace, dest));
            plan.dest.push(dest);
        }
        if !out.is_empty() {
            self.unsent(&out);
        }
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
        let Some(client) = self.clients.get(&to.endpoint) else {
            // Not a member this core has a client for (a rules bug, or a view without it).
            self.metrics.failed_no_peer.add(spans);
            tracing::warn!(peer = %to.endpoint, spans, "no client for a gateway peer; spans dropped");
            return;
        };
        let seq = self.seq.get() + 1;
        self.seq.set(seq);
        let view = &self.peers.view;
        let hop = Hop {
            kind,
            from: view.self_endpoint().clone(),
            incarnation: self.peers.incarnation.0,
            table: view.hash(),
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
            },
            // The client counted the refusal as an exporter failure too.
            Err(_) => self.metrics.failed_queue_full.add(spans),
        }
    }

    /// Claims, redirects and hand-overs the rules asked for: control messages are design step
    /// 6, so they are counted (and warned about) rather than sent.
    fn unsent(&self, out: &[Out]) {
        let n = out.len() as u64;
        self.metrics.claims_unsent.add(n);
        tracing::warn!(
            count = n,
            "gateway membership: claims are not built yet; members' lists may differ (a trace may be split)"
        );
    }
}

/// The rules' view of what the engine holds.
fn held(h: HeldState) -> Held {
    match h {
        HeldState::No => Held::No,
        HeldState::Pending { first_seen } => Held::Pending { first_seen },
        HeldState::Decided { kept, at } => Held::Decided { kept, at },
    }
}
