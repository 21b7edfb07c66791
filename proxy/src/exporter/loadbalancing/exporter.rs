//! The per-core `loadbalancing` exporter: one atomic load of the published routes per batch, a
//! `proto` split of the batch by owner, and each part handed to that owner's `otlp` exporter on
//! this core.
//!
//! What a removed backend still held is routed again through the current table (split by trace
//! ID as any batch): consistent hashing has moved that backend's traces to other members, and
//! their new spans already go there, so the queued spans join them instead of being lost or
//! retried against an address that left. This splits no trace that the table change did not
//! split already (what the removed backend received before is there, the rest at the new owner).

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use tailgate_proto::{SpanView, Splitter};
use tailgate_routing::RoutingTable;

use super::backends::{BackendFactory, Backends, DropReason, DROPPED, DROPPED_HELP};
use super::config::RoutingKey;
use super::health::Health;
use super::routes::{RouteCell, Routes};
use crate::pipeline::{Consumer, Drain, LocalFuture, Payload, Refusal};
use crate::telemetry::metrics::{Kind, Local};

/// Scratch state of one core, reused from batch to batch.
#[derive(Default)]
struct Scratch {
    splitter: Splitter,
    /// Per-destination output of the split (taken as `Bytes` when handed over).
    outs: Vec<Vec<u8>>,
    /// Spans per destination in the current batch.
    counts: Vec<u64>,
}

/// The exporter as a pipeline stage on one core.
pub struct LoadBalancer {
    routes: Arc<RouteCell>,
    /// The down set of `tailgate.endpoint_health` (`None`: no failover).
    health: Option<Arc<Health>>,
    /// The table this core routes with: the published one failed over from the down set, made
    /// once per (routes generation, health version).
    effective: RefCell<Option<(u64, u64, Rc<RoutingTable>)>>,
    key: RoutingKey,
    factory: BackendFactory,
    backends: RefCell<Backends>,
    scratch: RefCell<Scratch>,
    /// Batches that could not be split.
    dropped_malformed: Local,
    /// Spans of removed backends that could not be routed again.
    dropped_removed: Local,
    /// `tailgate_loadbalancer_rerouted_spans_total`: spans of removed backends routed again.
    rerouted: Local,
}

impl LoadBalancer {
    /// The exporter on this core; backends are made when the first batch sees the routes.
    pub fn new(
        routes: Arc<RouteCell>,
        health: Option<Arc<Health>>,
        key: RoutingKey,
        factory: BackendFactory,
    ) -> Rc<Self> {
        // Backends removed at the last membership change may finish draining only later.
        factory
            .registry
            .fold_on_scrape("endpoint", super::backends::REMOVED_ENDPOINT);
        let dropped = |reason: DropReason| {
            factory
                .registry
                .register(
                    DROPPED,
                    DROPPED_HELP,
                    Kind::Counter,
                    &[
                        ("exporter", factory.name.as_str()),
                        ("reason", reason.label()),
                    ],
                )
                .local(factory.core)
        };
        let dropped_malformed = dropped(DropReason::Malformed);
        let dropped_removed = dropped(DropReason::BackendRemoved);
        let rerouted = factory
            .registry
            .register(
                "tailgate_loadbalancer_rerouted_spans_total",
                "Spans queued for a backend that left the routing table, routed again through the current table.",
                Kind::Counter,
                &[("exporter", factory.name.as_str())],
            )
            .local(factory.core);
        let lb = Rc::new(LoadBalancer {
            routes,
            health,
            effective: RefCell::new(None),
            key,
            factory,
            backends: RefCell::default(),
            scratch: RefCell::default(),
            dropped_malformed,
            dropped_removed,
            rerouted,
        });
        // Connect to the backends known at start-up before traffic arrives.
        lb.backends
            .borrow_mut()
            .follow(&lb.routes.load(), &lb.factory);
        lb
    }

    /// Batches queued or being sent to the backends, removed ones included (shutdown drain).
    pub fn pending(&self) -> usize {
        self.backends.borrow().pending()
    }

    /// Counts what is still queued as failed (shutdown deadline); returns the spans. What
    /// removed backends handed back and was not routed yet is dropped as `backend_removed`.
    pub fn abandon(&self) -> u64 {
        let mut backends = self.backends.borrow_mut();
        let orphans: u64 = backends.take_orphans().iter().map(|p| p.items).sum();
        self.dropped_removed.add(orphans);
        backends.abandon() + orphans
    }

    /// Follows the published routes (and the health probes' down set), then routes what
    /// removed or suspended backends handed back through them; returns the table to route with.
    /// Called for every batch and by [`follow_routes`].
    fn follow(&self) -> Rc<RoutingTable> {
        let routes = self.routes.load();
        let mut backends = self.backends.borrow_mut();
        backends.follow(&routes, &self.factory);
        let table = self.effective(&routes, &mut backends);
        let orphans = backends.take_orphans();
        if orphans.is_empty() {
            return table;
        }
        let mut scratch = self.scratch.borrow_mut();
        for data in orphans {
            self.reroute(&mut scratch, &backends, &table, &data);
        }
        table
    }

    /// The published table failed over from the down set (cached until either changes). A
    /// backend that went down is suspended: what it queued comes back as orphans and follows its
    /// traces to their stand-ins, as a removed backend's does.
    fn effective(&self, routes: &Routes, backends: &mut Backends) -> Rc<RoutingTable> {
        let version = self.health.as_ref().map_or(0, |h| h.version());
        if let Some((g, v, t)) = &*self.effective.borrow() {
            if (*g, *v) == (routes.generation, version) {
                return t.clone();
            }
        }
        let down = self.health.as_ref().map(|h| h.down()).unwrap_or_default();
        let table = if down.is_empty() {
            routes.table.clone()
        } else {
            routes.table.failover(down.iter().map(String::as_str))
        };
        backends.suspend(routes, &down, &self.factory);
        let table = Rc::new(table);
        *self.effective.borrow_mut() = Some((routes.generation, version, table.clone()));
        table
    }

    /// Routes one request a removed backend handed back. Parts the new owners' queues refuse
    /// are dropped and counted at those backends (`queue_full`); nobody waits for an answer.
    fn reroute(
        &self,
        scratch: &mut Scratch,
        backends: &Backends,
        table: &RoutingTable,
        data: &Payload,
    ) {
        if table.is_empty() {
            self.dropped_removed.add(data.items);
            return;
        }
        match self.split(scratch, data, table) {
            Ok(()) => {
                self.rerouted.add(data.items);
                // `Whole::Drop` never refuses: every refused part is counted where it was refused.
                let _ = hand_over(scratch, backends, data, Whole::Drop);
            }
            Err(e) => {
                tracing::warn!(exporter = %self.factory.name, spans = data.items, "dropping a removed backend's batch that cannot be split: {e}");
                self.dropped_malformed.add(data.items);
            }
        }
    }

    /// Splits `data` by the routing key into `scratch`, one output per member of `table`.
    fn split(
        &self,
        scratch: &mut Scratch,
        data: &Payload,
        table: &RoutingTable,
    ) -> Result<(), tailgate_proto::ScanError> {
        let n = table.len();
        scratch.outs.resize_with(n, Vec::new);
        scratch.outs.truncate(n);
        scratch.outs.iter_mut().for_each(Vec::clear);
        scratch.counts.clear();
        scratch.counts.resize(n, 0);
        match self.key {
            RoutingKey::TraceId => split_by_trace(scratch, &data.body, table),
            RoutingKey::Service => split_by_service(scratch, &data.body, table),
        }
    }
}

/// How often an idle core looks for a routing change (one atomic load): a core that receives no
/// batch still lets go of removed backends promptly, as the collector shuts them down on change.
const FOLLOW_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);

/// Runs on each core for its balancer: follows routing changes even when no batch arrives, so
/// removed backends drain and their connections and metric series are released. Ends when the
/// balancer is gone.
pub async fn follow_routes(lb: std::rc::Weak<LoadBalancer>) {
    loop {
        glommio::timer::Timer::new(FOLLOW_INTERVAL).await;
        let Some(lb) = lb.upgrade() else {
            return;
        };
        lb.follow();
    }
}

impl Consumer for LoadBalancer {
    fn consume(&self, data: Payload) -> Result<(), Refusal> {
        let table = self.follow();
        let table = &*table;
        if table.is_empty() {
            tracing::warn!(exporter = %self.factory.name, spans = data.items, "no backends resolved yet: refusing");
            return Err(Refusal::NoRoute);
        }
        let backends = self.backends.borrow();
        let mut scratch = self.scratch.borrow_mut();
        if let Err(e) = self.split(&mut scratch, &data, table) {
            tracing::warn!(exporter = %self.factory.name, spans = data.items, "dropping a batch that cannot be split: {e}");
            self.dropped_malformed.add(data.items);
            return Ok(());
        }
        hand_over(&mut scratch, &backends, &data, Whole::Refuse)
    }
}

/// What [`hand_over`] does when every part is refused.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Whole {
    /// Refuse the whole request uncounted (the client is answered and may retry all of it).
    Refuse,
    /// Drop and count every part (nobody to answer: a removed backend's data routed again).
    Drop,
}

/// Hands each destination's part to its backend. Refused parts are dropped and counted, except
/// when every part was refused and `whole` is [`Whole::Refuse`]: then nothing was taken and the
/// caller may retry all of it.
fn hand_over(
    scratch: &mut Scratch,
    backends: &Backends,
    data: &Payload,
    whole: Whole,
) -> Result<(), Refusal> {
    let mut accepted = false;
    let mut refused: Vec<(usize, u64)> = Vec::new();
    for (d, out) in scratch.outs.iter_mut().enumerate() {
        let spans = scratch.counts[d];
        if spans == 0 {
            continue;
        }
        let body = Bytes::from(std::mem::take(out));
        let sent = match backends.get(d) {
            Some(b) => b.send(data.with_body(body, spans)),
            None => Err(Refusal::QueueFull),
        };
        match sent {
            Ok(()) => accepted = true,
            Err(_) => refused.push((d, spans)),
        }
    }
    if !accepted && !refused.is_empty() && whole == Whole::Refuse {
        return Err(Refusal::QueueFull);
    }
    for (d, spans) in refused {
        if let Some(b) = backends.get(d) {
            b.drop_spans(spans);
        }
    }
    Ok(())
}

/// Splits by trace ID, looking the owner up once per run of same-trace spans (they are usually
/// adjacent). A trace ID that is not 16 bytes routes as zero-padded (an empty one as all zeros).
fn split_by_trace(
    scratch: &mut Scratch,
    body: &[u8],
    table: &RoutingTable,
) -> Result<(), tailgate_proto::ScanError> {
    let counts = &mut scratch.counts;
    let mut last: Option<([u8; 16], usize)> = None;
    scratch
        .splitter
        .split_into(body, &mut scratch.outs, |span| {
            let raw = span.trace_id();
            let mut id = [0u8; 16];
            let len = raw.len().min(16);
            id[..len].copy_from_slice(&raw[..len]);
            let d = match last {
                Some((prev, d)) if prev == id => d,
                _ => {
                    let d = table.route_trace(&id).unwrap_or(0);
                    last = Some((id, d));
                    d
                }
            };
            counts[d] += 1;
            d
        })
}

/// Splits by the resource's `service.name` (absent: the empty name). Goes through span views
/// and re-framing: slower than the trace-ID split, but this key is rare for traces.
fn split_by_service(
    scratch: &mut Scratch,
    body: &Bytes,
    table: &RoutingTable,
) -> Result<(), tailgate_proto::ScanError> {
    let views = tailgate_proto::scan(body)?;
    let mut parts: Vec<Vec<&SpanView>> = vec![Vec::new(); scratch.outs.len()];
    for v in &views {
        let name = v.resource().service_name().unwrap_or(b"");
        let d = table.route_service(name).unwrap_or(0);
        parts[d].push(v);
        scratch.counts[d] += 1;
    }
    for (d, part) in parts.into_iter().enumerate() {
        if !part.is_empty() {
            scratch.outs[d] = tailgate_proto::reframe(part).to_vec();
        }
    }
    Ok(())
}

impl Drain for LoadBalancer {
    fn flush(&self, _until: std::time::Instant) -> LocalFuture<'_> {
        // Backends' queues send on their own; what removed backends handed back is routed now.
        self.follow();
        Box::pin(std::future::ready(()))
    }

    fn pending(&self) -> usize {
        LoadBalancer::pending(self)
    }

    fn abandon(&self) -> u64 {
        LoadBalancer::abandon(self)
    }
}
