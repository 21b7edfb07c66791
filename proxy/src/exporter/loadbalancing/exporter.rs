//! The per-core `loadbalancing` exporter: one atomic load of the published routes per batch, a
//! `proto` split of the batch by owner, and each part handed to that owner's `otlp` exporter on
//! this core.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use tailgate_proto::{SpanView, Splitter};
use tailgate_routing::RoutingTable;

use super::backends::{BackendFactory, Backends, DropReason, DROPPED, DROPPED_HELP};
use super::config::RoutingKey;
use super::routes::RouteCell;
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
    key: RoutingKey,
    factory: BackendFactory,
    backends: RefCell<Backends>,
    scratch: RefCell<Scratch>,
    /// Batches that could not be split.
    dropped_malformed: Local,
}

impl LoadBalancer {
    /// The exporter on this core; backends are made when the first batch sees the routes.
    pub fn new(routes: Arc<RouteCell>, key: RoutingKey, factory: BackendFactory) -> Rc<Self> {
        // Backends removed at the last membership change may finish draining only later.
        factory
            .registry
            .fold_on_scrape("endpoint", super::backends::REMOVED_ENDPOINT);
        let dropped_malformed = factory
            .registry
            .register(
                DROPPED,
                DROPPED_HELP,
                Kind::Counter,
                &[
                    ("exporter", factory.name.as_str()),
                    ("reason", DropReason::Malformed.label()),
                ],
            )
            .local(factory.core);
        let lb = Rc::new(LoadBalancer {
            routes,
            key,
            factory,
            backends: RefCell::default(),
            scratch: RefCell::default(),
            dropped_malformed,
        });
        // Connect to the backends known at start-up before traffic arrives.
        lb.backends
            .borrow_mut()
            .follow(&lb.routes.load(), &lb.factory);
        lb
    }

    /// Batches queued or being sent to the current backends (shutdown drain).
    pub fn pending(&self) -> usize {
        self.backends.borrow().pending()
    }

    /// Counts what is still queued as failed (shutdown deadline); returns the spans.
    pub fn abandon(&self) -> u64 {
        self.backends.borrow().abandon()
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
        let routes = lb.routes.load();
        lb.backends.borrow_mut().follow(&routes, &lb.factory);
    }
}

impl Consumer for LoadBalancer {
    fn consume(&self, data: Payload) -> Result<(), Refusal> {
        let routes = self.routes.load();
        let mut backends = self.backends.borrow_mut();
        backends.follow(&routes, &self.factory);
        let table = &routes.table;
        let n = table.len();
        if n == 0 {
            tracing::warn!(exporter = %self.factory.name, spans = data.items, "no backends resolved yet: refusing");
            return Err(Refusal::NoRoute);
        }
        let mut scratch = self.scratch.borrow_mut();
        let scratch = &mut *scratch;
        scratch.outs.resize_with(n, Vec::new);
        scratch.outs.truncate(n);
        scratch.outs.iter_mut().for_each(Vec::clear);
        scratch.counts.clear();
        scratch.counts.resize(n, 0);
        let split = match self.key {
            RoutingKey::TraceId => split_by_trace(scratch, &data.body, table),
            RoutingKey::Service => split_by_service(scratch, &data.body, table),
        };
        if let Err(e) = split {
            tracing::warn!(exporter = %self.factory.name, spans = data.items, "dropping a batch that cannot be split: {e}");
            self.dropped_malformed.add(data.items);
            return Ok(());
        }
        hand_over(scratch, &backends, &data)
    }
}

/// Hands each destination's part to its backend. Refused parts are dropped and counted, except
/// when every part was refused: then nothing was taken and the caller may retry all of it.
fn hand_over(scratch: &mut Scratch, backends: &Backends, data: &Payload) -> Result<(), Refusal> {
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
    if !accepted && !refused.is_empty() {
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
        // Backends' queues send on their own; the drain only waits for them.
        Box::pin(std::future::ready(()))
    }

    fn pending(&self) -> usize {
        LoadBalancer::pending(self)
    }

    fn abandon(&self) -> u64 {
        LoadBalancer::abandon(self)
    }
}
