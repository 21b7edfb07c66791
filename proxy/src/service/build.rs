//! One core's pipelines, built from the validated config: exporters first, then each pipeline's
//! processors from last to first, then the receivers' handlers. One factory `match` per component
//! kind; nothing else in the service names a concrete component.
//!
//! Building is all or nothing: a component that cannot be built is a [`StartError`] naming its key
//! path, never a stage quietly left out (a tail_sampling left out would forward every span
//! unsampled; an empty fan-out would answer OK and drop).

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use super::bind::{Bind, Protocol};
use super::error::StartError;
use super::shared::{mesh_key, Shared};
use crate::config::{
    ComponentId, ExporterConfig, Pipeline, ProcessorConfig, ReceiverConfig, Signal,
};
use crate::connector::spanmetrics::kept::KeptOnCore;
use crate::connector::spanmetrics::stage::{Dropped, SpanMetricsStage};
use crate::exporter::debug::exporter::{DebugExporter, NopExporter};
use crate::exporter::loadbalancing::backends::BackendFactory;
use crate::exporter::loadbalancing::exporter::{self as loadbalancing, LoadBalancer};
use crate::exporter::otlp;
use crate::pipeline::{fan_out, Consumer, Drain, Gate, LocalFuture};
use crate::processor::batch::processor::{BatchMetrics, Batcher};
use crate::processor::memory_limiter::processor::MemoryLimiter;
use crate::processor::redaction::processor::RedactionStage;
use crate::processor::tail_sampling::config::default_byte_budget;
use crate::processor::tail_sampling::forward::Forwarder;
use crate::processor::tail_sampling::mark::MarkedEntry;
use crate::processor::tail_sampling::processor::{self as tail_sampling, Part, StageMetrics};
use crate::receiver::in_flight::InFlight;
use crate::receiver::limits::{self, ConnLimits, GrpcLimits, HttpLimits};
use crate::receiver::listener::Handler;
use crate::receiver::metrics::RequestMetrics;
use crate::receiver::otlp::config::ServerLimits;
use crate::receiver::otlp::grpc::GrpcReceiver;
use crate::receiver::otlp::http::HttpReceiver;
use crate::runtime::mesh::Mesh;
use crate::telemetry::metrics::{Kind, Local, Registry};

/// Names a component that fails to build on purpose, for tests of the all-or-nothing start-up:
/// `TAILGATE_FAIL_BUILD=<key path>[@<core>]`, e.g. `processors.tail_sampling@1`. Read once per
/// core at start-up; never set in production.
pub const FAIL_BUILD_ENV: &str = "TAILGATE_FAIL_BUILD";

/// What one core runs: its stages (for the drain), tasks to start once every core is built, and
/// the head of each receiver's pipelines.
pub struct Built {
    /// Stages holding data, in build order (downstream first); drained in reverse.
    pub drains: Vec<Rc<dyn Drain>>,
    /// Background work of the stages (batch timers, route following, spanmetrics flushes),
    /// spawned only once every core has built everything. (tail_sampling starts its mesh readers
    /// and decision timer when it is built: they only act on data, and none arrives before then.)
    pub tasks: Vec<LocalFuture<'static>>,
    /// What each receiver feeds (behind a [`Gate`] closed by `closed`).
    pub receivers: BTreeMap<ComponentId, Rc<dyn Consumer>>,
    /// Where each receiver sends gateway-to-gateway data: the `tail_sampling` stage that set
    /// `membership`, for the receivers of its pipeline (behind the same gate).
    pub marked: BTreeMap<ComponentId, Rc<MarkedEntry>>,
    /// Set at shutdown once the connection grace is over: receivers' requests are refused.
    pub closed: Rc<std::cell::Cell<bool>>,
}

/// Builds every traces pipeline of the config on `core`.
pub fn build(
    core: usize,
    shared: &Shared,
    meshes: &mut BTreeMap<String, Mesh<Part>>,
) -> Result<Built, StartError> {
    let mut cx = Cx {
        core,
        shared,
        fail: std::env::var(FAIL_BUILD_ENV).ok(),
        built: Built {
            drains: Vec::new(),
            tasks: Vec::new(),
            receivers: BTreeMap::new(),
            marked: BTreeMap::new(),
            closed: Rc::default(),
        },
        membership_stage: None,
    };
    let traces: Vec<&Pipeline> = shared
        .config
        .pipelines
        .iter()
        .filter(|p| p.id.signal == Signal::Traces)
        .collect();
    let mut exporters: BTreeMap<ComponentId, Rc<dyn Consumer>> = BTreeMap::new();
    for id in traces.iter().flat_map(|p| p.exporters.iter()) {
        if !exporters.contains_key(id) {
            let e = cx.exporter(id)?;
            exporters.insert(id.clone(), e);
        }
    }
    let mut heads: BTreeMap<ComponentId, Vec<Rc<dyn Consumer>>> = BTreeMap::new();
    for p in traces {
        let path = format!("service.pipelines.{}", p.id);
        let outs = p
            .exporters
            .iter()
            .filter_map(|e| exporters.get(e).cloned())
            .collect();
        let mut next = fan_out(outs)
            .ok_or_else(|| StartError::component(format!("{path}.exporters"), "no exporter"))?;
        for pid in p.processors.iter().rev() {
            next = cx.processor(p, pid, next, meshes)?;
        }
        for r in &p.receivers {
            heads.entry(r.clone()).or_default().push(next.clone());
        }
        if let (Some(stage), Some(peers)) = (cx.membership_stage.take(), &shared.peers) {
            for r in &p.receivers {
                let gated = Gate::new(stage.clone(), cx.built.closed.clone());
                let entry = MarkedEntry::new(gated, peers.clone(), &shared.registry, core);
                if cx.built.marked.insert(r.clone(), Rc::new(entry)).is_some() {
                    return Err(StartError::component(
                        format!("receivers.{r}"),
                        "feeds two pipelines whose tail_sampling sets membership: forwarded spans could not tell them apart",
                    ));
                }
            }
        }
    }
    for (id, v) in heads {
        let head = fan_out(v)
            .ok_or_else(|| StartError::component(format!("receivers.{id}"), "feeds no pipeline"))?;
        let gate = Gate::new(head, cx.built.closed.clone());
        cx.built.receivers.insert(id, gate);
    }
    Ok(cx.built)
}

/// The build of one core in progress.
struct Cx<'a> {
    core: usize,
    shared: &'a Shared,
    /// [`FAIL_BUILD_ENV`]'s value.
    fail: Option<String>,
    built: Built,
    /// The `tail_sampling` stage that set `membership`, once built in the current pipeline.
    membership_stage: Option<Rc<dyn Consumer>>,
}

impl Cx<'_> {
    fn registry(&self) -> &Registry {
        &self.shared.registry
    }

    /// Fails when the test hook names `path` (on every core, or on this one).
    fn check_injected(&self, path: &str) -> Result<(), StartError> {
        let Some(fail) = &self.fail else {
            return Ok(());
        };
        let (target, core) = match fail.split_once('@') {
            Some((t, c)) => (t, c.parse::<usize>().ok()),
            None => (fail.as_str(), None),
        };
        if target == path && core.is_none_or(|c| c == self.core) {
            return Err(StartError::component(
                path,
                format!("failure injected by {FAIL_BUILD_ENV} on core {}", self.core),
            ));
        }
        Ok(())
    }

    /// The spanmetrics connector `name`'s drop counters, one series per reason.
    fn spanmetrics_dropped(&self, name: &str) -> Dropped {
        let by = |reason: &str| {
            self.counter(
                &[("connector", name), ("reason", reason)],
                "tailgate_connector_spanmetrics_dropped_spans_total",
                "Spans the spanmetrics connector could not count, by reason (tailgate).",
            )
        };
        Dropped {
            malformed_span: by("malformed_span"),
            malformed_request: by("malformed_request"),
        }
    }

    fn counter(&self, labels: &[(&str, &str)], metric: &str, help: &'static str) -> Local {
        self.registry()
            .register(metric, help, Kind::Counter, labels)
            .local(self.core)
    }

    fn drain<T: Drain + 'static>(&mut self, stage: &Rc<T>) {
        self.built.drains.push(stage.clone());
    }

    fn exporter(&mut self, id: &ComponentId) -> Result<Rc<dyn Consumer>, StartError> {
        let path = format!("exporters.{id}");
        let missing = || StartError::component(path.clone(), "not configured");
        let name = id.to_string();
        if let Some(merger) = self.shared.spanmetrics.get(id) {
            self.check_injected(&format!("connectors.{id}"))?;
            let labels = [("connector", name.as_str())];
            let s = Rc::new(SpanMetricsStage::new(
                merger.clone(),
                self.counter(
                    &labels,
                    "tailgate_connector_spanmetrics_spans_total",
                    "Spans aggregated by the spanmetrics connector (tailgate).",
                ),
                self.counter(
                    &labels,
                    "tailgate_connector_spanmetrics_failed_requests_total",
                    "Requests the spanmetrics connector could not scan (tailgate).",
                ),
                self.spanmetrics_dropped(&name),
            ));
            self.drain(&s);
            let flushed = Rc::downgrade(&s);
            self.built.tasks.push(Box::pin(async move {
                // Hand over just before each of the merger's flushes, so counts wait at most one
                // interval (plus the margin), not one for the hand-over and one for the flush.
                while let Some(s) = flushed.upgrade() {
                    let wait = s.until_handover(std::time::Instant::now());
                    drop(s);
                    glommio::timer::Timer::new(wait).await;
                    if let Some(s) = flushed.upgrade() {
                        s.flush();
                    }
                }
            }));
            return Ok(s);
        }
        self.check_injected(&path)?;
        let labels = [("exporter", name.as_str())];
        let sent = |cx: &Self| {
            cx.counter(
                &labels,
                "otelcol_exporter_sent_spans_total",
                "Items successfully sent to destination.",
            )
        };
        let tls = self.shared.tls_clients.get(id).cloned();
        let consumer: Rc<dyn Consumer> = match self.shared.config.exporters.get(id) {
            Some(ExporterConfig::Otlp(c)) => {
                let bytes = self.shared.queue_bytes_default;
                let e = otlp::start(self.core, self.registry(), &name, c, tls, bytes);
                self.drain(&e);
                e
            }
            Some(ExporterConfig::OtlpHttp(c)) => {
                let setup = crate::exporter::otlphttp::CoreSetup {
                    core: self.core,
                    registry: self.registry(),
                    name: &name,
                    config: c,
                    tls,
                    default_bytes: self.shared.queue_bytes_default,
                };
                let e = crate::exporter::otlphttp::start(setup);
                self.drain(&e);
                e
            }
            Some(ExporterConfig::Debug(c)) => Rc::new(DebugExporter {
                config: c.clone(),
                name: name.clone(),
                sent: sent(self),
            }),
            Some(ExporterConfig::Nop(_)) => Rc::new(NopExporter { sent: sent(self) }),
            Some(ExporterConfig::LoadBalancing(c)) => {
                let b = self.shared.balancers.get(id).ok_or_else(missing)?;
                let max_bytes = c
                    .keys()
                    .protocol
                    .otlp
                    .sending_queue
                    .shape(self.shared.queue_bytes_default)
                    .max_bytes;
                let factory = BackendFactory {
                    core: self.core,
                    registry: self.shared.registry.clone(),
                    name: name.clone(),
                    config: Arc::new((**c).clone()),
                    tls: b.tls.clone(),
                    max_bytes,
                    byte_share: Rc::new(std::cell::Cell::new(max_bytes)),
                };
                let lb = LoadBalancer::new(
                    b.routes.clone(),
                    b.health.clone(),
                    c.keys().routing_key(),
                    factory,
                );
                self.drain(&lb);
                self.built
                    .tasks
                    .push(Box::pin(loadbalancing::follow_routes(Rc::downgrade(&lb))));
                lb
            }
            // Metrics only (validation keeps it out of traces pipelines).
            Some(ExporterConfig::Prometheus(_)) => {
                return Err(StartError::component(path, "cannot export traces"))
            }
            None => return Err(missing()),
        };
        Ok(consumer)
    }

    fn processor(
        &mut self,
        pipeline: &Pipeline,
        pid: &ComponentId,
        next: Rc<dyn Consumer>,
        meshes: &mut BTreeMap<String, Mesh<Part>>,
    ) -> Result<Rc<dyn Consumer>, StartError> {
        let path = format!("processors.{pid}");
        self.check_injected(&path)?;
        let name = pid.to_string();
        let labels = [("processor", name.as_str())];
        let dropped = |cx: &Self| {
            cx.counter(
                &labels,
                "otelcol_processor_dropped_spans_total",
                "Spans dropped or refused by the processor.",
            )
        };
        let refused = |cx: &Self| {
            cx.counter(
                &labels,
                "otelcol_processor_refused_spans_total",
                "Spans refused by the processor.",
            )
        };
        let stage: Rc<dyn Consumer> = match self.shared.config.processors.get(pid) {
            Some(ProcessorConfig::Batch(c)) => {
                let metrics = BatchMetrics {
                    size_trigger: self.counter(
                        &labels,
                        "otelcol_processor_batch_batch_size_trigger_send_total",
                        "Number of times the batch was sent due to a size trigger.",
                    ),
                    timeout_trigger: self.counter(
                        &labels,
                        "otelcol_processor_batch_timeout_trigger_send_total",
                        "Number of times the batch was sent due to a timeout trigger.",
                    ),
                    send_size: self.registry().histogram(
                        "otelcol_processor_batch_batch_send_size",
                        "Number of units in the batch.",
                        &labels,
                        BATCH_BUCKETS,
                    ),
                    dropped: dropped(self),
                    core: self.core,
                };
                let b = Batcher::new(c.clone(), next, metrics);
                self.drain(&b);
                self.built.tasks.push(Box::pin(b.clone().run_timer()));
                b
            }
            Some(ProcessorConfig::MemoryLimiter(_)) => {
                let state = self.shared.memory.get(pid).ok_or_else(|| {
                    StartError::component(path.clone(), "its memory checker is not running")
                })?;
                Rc::new(MemoryLimiter {
                    state: state.clone(),
                    next,
                    refused: refused(self),
                    dropped: dropped(self),
                })
            }
            Some(ProcessorConfig::Redaction(r)) => {
                RedactionStage::new(r.rules.clone(), next, dropped(self))
            }
            Some(ProcessorConfig::TailSampling(c)) => {
                let key = mesh_key(&pipeline.id, pid);
                let mesh = meshes.remove(&key).ok_or_else(|| {
                    StartError::component(path.clone(), format!("no core mesh for {key}"))
                })?;
                let stage = StageMetrics {
                    refused: refused(self),
                    dropped: dropped(self),
                };
                let mut sampler = c.sampler.clone();
                if sampler.max_buffered_bytes.is_none() {
                    let soft = pipeline
                        .processors
                        .iter()
                        .filter_map(|p| self.shared.memory.get(p))
                        .map(|m| m.soft_limit);
                    sampler.max_buffered_bytes = default_byte_budget(soft);
                    if let (0, Some(b)) = (self.core, sampler.max_buffered_bytes) {
                        tracing::info!(
                            budget_mib = b >> 20,
                            "{path}: tailgate.max_buffered_bytes not set: half the memory_limiter's soft limit"
                        );
                    }
                }
                let forwarder = self.forwarder(pid);
                let members = forwarder.is_some();
                let kept: Vec<_> = (self.shared.spanmetrics.values())
                    .filter_map(|m| m.publisher_for(pid))
                    .collect();
                let kept = KeptOnCore::new(&kept, self.core);
                let links = tail_sampling::Links { forwarder, kept };
                let t = tail_sampling::build(
                    &sampler,
                    mesh,
                    next,
                    &name,
                    self.registry(),
                    stage,
                    links,
                )
                .map_err(|e| StartError::component(path.clone(), e))?;
                self.drain(&t);
                if members {
                    self.membership_stage = Some(t.clone());
                }
                t
            }
            None => return Err(StartError::component(path, "not configured")),
        };
        Ok(stage)
    }
}

impl Cx<'_> {
    /// This core's membership forwarder when `pid` is the `tail_sampling` that sets it (its
    /// peer clients are drained with the stage, which reports their queues).
    fn forwarder(&mut self, pid: &ComponentId) -> Option<Forwarder> {
        let peers = self.shared.peers.clone().filter(|p| p.processor == *pid)?;
        let now = tailgate_sampler::Clock::now_unix_nanos(&tailgate_sampler::SystemClock);
        Some(Forwarder::build(
            peers,
            self.core,
            self.shared.cores,
            self.shared.registry.clone(),
            now,
            self.shared.queue_bytes_default,
        ))
    }
}

/// Builds the handler serving `bind` on `core`, feeding `next` (and `marked` with
/// gateway-to-gateway data, gRPC only: the membership forwarder speaks OTLP/gRPC).
pub fn receiver_handler(
    core: usize,
    shared: &Shared,
    bind: &Bind,
    next: Rc<dyn Consumer>,
    marked: Option<Rc<MarkedEntry>>,
) -> Result<(Handler, ConnLimits), StartError> {
    let id = &bind.receiver;
    let transport = bind.protocol.name();
    let path = format!("receivers.{id}.protocols.{transport}");
    let Some(ReceiverConfig::Otlp(cfg)) = shared.config.receivers.get(id) else {
        return Err(StartError::component(path, "not configured"));
    };
    let name = id.to_string();
    let m = |metric: &str, help| {
        shared
            .registry
            .register(
                metric,
                help,
                Kind::Counter,
                &[("receiver", &name), ("transport", transport)],
            )
            .local(core)
    };
    let accepted = m(
        "otelcol_receiver_accepted_spans_total",
        "Spans successfully pushed into the pipeline.",
    );
    let refused = m(
        "otelcol_receiver_refused_spans_total",
        "Spans that could not be pushed into the pipeline.",
    );
    let failed_requests = m(
        "otelcol_receiver_failed_requests_total",
        "Requests answered with an error before their spans were counted (tailgate).",
    );
    let requests = RequestMetrics::register(&shared.registry, core, &name, transport);
    // This listener's budget on this core, sized from its own largest request.
    let in_flight = |t: &ServerLimits, largest: u64, requests: &RequestMetrics| {
        let limit = limits::bytes_in_flight(
            t.max_request_bytes_in_flight_per_core,
            largest,
            shared.memory_soft_limit,
            shared.cores,
        );
        InFlight::new(
            limit,
            requests.bytes_in_flight.clone(),
            requests.bytes_in_flight_peak.clone(),
        )
    };
    match (
        bind.protocol,
        cfg.protocols.grpc.as_ref(),
        cfg.protocols.http.as_ref(),
    ) {
        (Protocol::Grpc, Some(g), _) => {
            let limits = GrpcLimits::from_config(g);
            let largest = g.max_recv_msg_size_mib.saturating_mul(1 << 20);
            let in_flight = in_flight(&g.tailgate, largest, &requests);
            let handler = Handler::Grpc(Rc::new(GrpcReceiver {
                next,
                marked,
                max_message: usize::try_from(g.max_recv_msg_size_mib.saturating_mul(1 << 20))
                    .unwrap_or(usize::MAX),
                limits,
                accepted,
                refused,
                include_metadata: g.include_metadata,
                failed_requests,
                requests,
                in_flight,
            }));
            Ok((handler, limits.conn))
        }
        (Protocol::Http, _, Some(h)) => {
            let limits = HttpLimits::from_config(h);
            let in_flight = in_flight(&h.tailgate, h.max_request_body_size, &requests);
            let handler = Handler::Http(Rc::new(HttpReceiver {
                next,
                traces_path: h.traces_url_path.clone(),
                other_signal_paths: vec![h.metrics_url_path.clone(), h.logs_url_path.clone()],
                max_body: usize::try_from(h.max_request_body_size).unwrap_or(usize::MAX),
                limits,
                accepted,
                refused,
                include_metadata: h.include_metadata,
                failed_requests,
                requests,
                in_flight,
            }));
            Ok((handler, limits.conn))
        }
        _ => Err(StartError::component(path, "not configured")),
    }
}

/// The collector's batch size buckets.
const BATCH_BUCKETS: &[f64] = &[
    10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2000.0, 3000.0, 4000.0, 5000.0,
    6000.0, 7000.0, 8000.0, 9000.0, 10000.0, 20000.0, 30000.0, 50000.0, 100000.0,
];
