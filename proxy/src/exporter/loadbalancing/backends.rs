//! One core's backends: an `otlp` exporter per backend endpoint, made when the endpoint appears
//! in a published table and retired when it leaves: its consumers stop retrying and hand what it
//! holds back to the load balancer, which routes it through the current table; once it holds
//! nothing it is dropped (its consumers stop).

use std::cell::Cell;
use std::collections::{BTreeSet, HashMap};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use super::routes::Routes;
use crate::exporter::otlp;
use crate::exporter::otlp::exporter::OtlpExporter;
use crate::pipeline::{Consumer, Payload, Refusal};
use crate::telemetry::metrics::{Histogram, Kind, Local, Registry};

use super::config::Validated;

/// The collector's `otelcol_loadbalancer_backend_latency` buckets (milliseconds).
const LATENCY_BUCKETS: &[f64] = &[
    5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0,
];

/// The `endpoint` label value that removed backends' counters are folded into once drained.
pub const REMOVED_ENDPOINT: &str = "_removed";

/// tailgate's own counter of spans the exporter dropped, by `reason`.
pub const DROPPED: &str = "otelcol_loadbalancer_dropped_spans_total";
/// Its help text.
pub const DROPPED_HELP: &str =
    "Spans dropped before reaching a backend's queue, by reason (tailgate).";

/// Why spans were dropped (the `reason` label of `otelcol_loadbalancer_dropped_spans_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The backend's sending queue was full (it is unreachable or slow).
    QueueFull,
    /// The backend's exporter could not be made (e.g. an invalid TLS server name).
    NoExporter,
    /// The batch could not be split (malformed protobuf).
    Malformed,
    /// Queued for a backend that left the table and could not be routed again (no backend
    /// left, or shutdown came first).
    BackendRemoved,
}

impl DropReason {
    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::NoExporter => "no_exporter",
            DropReason::Malformed => "malformed",
            DropReason::BackendRemoved => "backend_removed",
        }
    }
}

/// One backend on one core: its exporter and the collector's per-endpoint metrics.
pub struct Backend {
    /// What it dials.
    pub endpoint: String,
    /// `None` when the exporter could not be made (spans for it are dropped and counted).
    exporter: Option<Rc<OtlpExporter>>,
    outcome_ok: Local,
    outcome_failed: Local,
    latency: Histogram,
    dropped_queue_full: Local,
    dropped_no_exporter: Local,
    core: usize,
}

impl Backend {
    /// Hands `data` to this backend's queue; the collector's outcome and latency are recorded for
    /// the hand-over (as the collector does with a sending queue).
    pub fn send(&self, data: Payload) -> Result<(), Refusal> {
        let Some(exporter) = &self.exporter else {
            self.outcome_failed.add(1);
            return Err(Refusal::QueueFull);
        };
        let started = Instant::now();
        let result = exporter.consume(data);
        self.latency
            .observe(self.core, started.elapsed().as_millis() as u64);
        match result {
            Ok(()) => self.outcome_ok.add(1),
            Err(_) => self.outcome_failed.add(1),
        }
        result
    }

    /// Counts `spans` for this backend as dropped: refused by its queue, or no exporter at all.
    pub fn drop_spans(&self, spans: u64) {
        if self.exporter.is_some() {
            self.dropped_queue_full.add(spans);
        } else {
            self.dropped_no_exporter.add(spans);
        }
    }

    /// Batches queued or being sent.
    pub fn pending(&self) -> usize {
        self.exporter.as_ref().map_or(0, |e| e.pending())
    }

    /// Counts what is still queued as failed (shutdown deadline); returns the spans.
    pub fn abandon(&self) -> u64 {
        self.exporter.as_ref().map_or(0, |e| e.abandon())
    }

    /// The backend left the table: stop retrying and hand what is held back.
    fn retire(&self) {
        if let Some(e) = &self.exporter {
            e.retire();
        }
    }

    /// What a retired backend handed back since the last call.
    fn take_orphans(&self) -> Vec<Payload> {
        self.exporter
            .as_ref()
            .map_or_else(Vec::new, |e| e.take_orphans())
    }
}

/// What a core needs to make backend exporters.
pub struct BackendFactory {
    /// This core.
    pub core: usize,
    /// Where the metrics of new backends are registered (a mutex, taken only on membership change).
    pub registry: Arc<Registry>,
    /// Exporter id (`loadbalancing`), the `exporter` label.
    pub name: String,
    /// The exporter's settings.
    pub config: Arc<Validated>,
    /// TLS client settings when the backends are dialled with TLS.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Bytes all backends' queues may hold together on this core (`max_bytes_per_core`).
    pub max_bytes: u64,
    /// Each backend's byte cap: `max_bytes` over the number of backends in the table, so one
    /// slow backend cannot take the room of the others. Shared by every backend's queue.
    pub byte_share: Rc<Cell<u64>>,
}

impl BackendFactory {
    /// Makes the exporter for `endpoint` on this core and starts its consumers.
    pub fn make(&self, endpoint: &str) -> Backend {
        let reg = &self.registry;
        let dropped = |reason: DropReason| {
            reg.register(
                DROPPED,
                DROPPED_HELP,
                Kind::Counter,
                &[
                    ("exporter", self.name.as_str()),
                    ("endpoint", endpoint),
                    ("reason", reason.label()),
                ],
            )
            .local(self.core)
        };
        let outcome = |success: &str| {
            reg.register(
                "otelcol_loadbalancer_backend_outcome",
                "Number of successes and failures for each endpoint.",
                Kind::Counter,
                &[("endpoint", endpoint), ("success", success)],
            )
            .local(self.core)
        };
        let exporter = match self.exporter(endpoint) {
            Ok(e) => Some(e),
            Err(e) => {
                tracing::error!(exporter = %self.name, endpoint, "cannot make the backend's exporter; its spans are dropped: {e}");
                None
            }
        };
        Backend {
            endpoint: endpoint.to_owned(),
            exporter,
            outcome_ok: outcome("true"),
            outcome_failed: outcome("false"),
            latency: reg.histogram(
                "otelcol_loadbalancer_backend_latency",
                "Response latency in ms for the backends.",
                &[("endpoint", endpoint)],
                LATENCY_BUCKETS,
            ),
            dropped_queue_full: dropped(DropReason::QueueFull),
            dropped_no_exporter: dropped(DropReason::NoExporter),
            core: self.core,
        }
    }

    fn exporter(&self, endpoint: &str) -> Result<Rc<OtlpExporter>, String> {
        let c = self.config.backend(endpoint)?;
        let tls = if c.target().tls {
            let config = self
                .tls
                .clone()
                .ok_or("TLS is enabled but no TLS client settings were loaded")?;
            Some((
                config,
                crate::tls::server_name(&c.keys().tls, &c.target().host)?,
            ))
        } else {
            None
        };
        Ok(otlp::start_labelled(
            self.core,
            &self.registry,
            format!("{}/{endpoint}", self.name),
            &[("exporter", self.name.as_str()), ("endpoint", endpoint)],
            &c,
            tls,
            seed(self.core, endpoint),
            self.byte_share.clone(),
        ))
    }
}

/// A per-core, per-backend seed for retry jitter (FNV-1a of the endpoint, mixed with the core);
/// the gateway membership's peer clients use it too.
pub fn seed(core: usize, endpoint: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in endpoint.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h ^ (core as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1
}

/// A core's backends, indexed like the table they were built for.
#[derive(Default)]
pub struct Backends {
    /// Generation of the routes these backends follow.
    generation: u64,
    /// `by_index[i]` serves member `i` of the current table.
    by_index: Vec<Rc<Backend>>,
    /// Backends that left the table and still hold data (queued, in flight or handed back).
    retired: Vec<Rc<Backend>>,
    /// Member endpoints whose backend was suspended because health probes took it down.
    suspended: BTreeSet<String>,
}

impl Backends {
    /// Follows `routes` if it is newer: keeps the backends whose endpoint stays, makes the new
    /// ones, drops the rest (whose queues then drain).
    pub fn follow(&mut self, routes: &Routes, factory: &BackendFactory) {
        if self.generation == routes.generation {
            return;
        }
        let mut old: HashMap<String, Rc<Backend>> = self
            .by_index
            .drain(..)
            .map(|b| (b.endpoint.clone(), b))
            .collect();
        self.by_index = routes
            .dial
            .iter()
            .map(|endpoint| {
                old.remove(endpoint)
                    .unwrap_or_else(|| Rc::new(factory.make(endpoint)))
            })
            .collect();
        for (endpoint, gone) in old {
            tracing::debug!(exporter = %factory.name, %endpoint, core = factory.core, "backend removed; what it holds is routed again");
            gone.retire();
            self.retired.push(gone);
        }
        let share = factory.max_bytes / self.by_index.len().max(1) as u64;
        factory.byte_share.set(share);
        // Series of backends gone on every core whose queues have drained are folded into
        // `endpoint="_removed"`: the output stays bounded under churn and totals stay correct.
        factory.registry.fold_unused("endpoint", REMOVED_ENDPOINT);
        self.generation = routes.generation;
    }

    /// Suspends the backends of members that went `down` since the last call: each is retired
    /// (stops retrying, hands back what it holds, which the caller routes through the failed-over
    /// table) and replaced by a fresh one, which gets traffic again once the member is back up.
    pub fn suspend(&mut self, routes: &Routes, down: &BTreeSet<String>, factory: &BackendFactory) {
        self.suspended.retain(|e| down.contains(e));
        for (i, m) in routes.table.members().iter().enumerate() {
            let endpoint = m.endpoint();
            if !down.contains(endpoint) || self.suspended.contains(endpoint) {
                continue;
            }
            let Some(slot) = self.by_index.get_mut(i) else {
                continue;
            };
            tracing::debug!(exporter = %factory.name, %endpoint, core = factory.core, "backend down; what it holds is routed to its stand-ins");
            let fresh = Rc::new(factory.make(&slot.endpoint));
            let gone = std::mem::replace(slot, fresh);
            gone.retire();
            self.retired.push(gone);
            self.suspended.insert(endpoint.to_owned());
        }
    }

    /// The backend of member `index`.
    #[inline]
    pub fn get(&self, index: usize) -> Option<&Rc<Backend>> {
        self.by_index.get(index)
    }

    /// Batches queued or being sent over all backends, retired ones included.
    pub fn pending(&self) -> usize {
        self.all().map(|b| b.pending()).sum()
    }

    /// Counts what is still queued as failed; returns the spans.
    pub fn abandon(&self) -> u64 {
        self.all().map(|b| b.abandon()).sum()
    }

    /// What retired backends handed back; retired backends that hold nothing more are dropped
    /// (their consumers then stop and their metric series can be folded).
    pub fn take_orphans(&mut self) -> Vec<Payload> {
        let mut out = Vec::new();
        for b in &self.retired {
            out.extend(b.take_orphans());
        }
        let before = self.retired.len();
        self.retired.retain(|b| b.pending() > 0);
        if self.retired.len() != before {
            tracing::debug!(retired = self.retired.len(), "removed backends drained");
        }
        out
    }

    fn all(&self) -> impl Iterator<Item = &Rc<Backend>> {
        self.by_index.iter().chain(&self.retired)
    }
}
