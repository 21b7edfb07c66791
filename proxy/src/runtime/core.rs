//! What runs on one core: its exporters, pipelines and receivers, built from the shared config.
//!
//! Everything here is `Rc` and single-threaded; the only cross-core state is the metrics slots
//! (one writer each) and the memory_limiter flags (written by their checker threads).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ::http::{HeaderMap, HeaderName, HeaderValue};
use glommio::net::TcpListener;

use super::mesh::Mesh;
use super::Shared;
use crate::config::{ComponentId, ExporterConfig, ProcessorConfig, ReceiverConfig, Signal};
use crate::connector::spanmetrics::stage::SpanMetricsStage;
use crate::exporter::debug::exporter::{DebugExporter, NopExporter};
use crate::exporter::loadbalancing;
use crate::exporter::loadbalancing::backends::BackendFactory;
use crate::exporter::loadbalancing::exporter::LoadBalancer;
use crate::exporter::otlp::client::Client;
use crate::exporter::otlp::exporter::{self as otlp_exporter, ExporterMetrics, OtlpExporter};
use crate::pipeline::{Fanout, TraceConsumer};
use crate::processor::batch::processor::{BatchMetrics, Batcher, Trigger};
use crate::processor::memory_limiter::processor::MemoryLimiter;
use crate::processor::tail_sampling::processor::{
    self as tail_sampling, Part, StageMetrics, TailSampling,
};
use crate::receiver::limits::{GrpcLimits, HttpLimits};
use crate::receiver::listener::{self, ConnMetrics, Handler};
use crate::receiver::otlp::grpc::GrpcReceiver;
use crate::receiver::otlp::http::HttpReceiver;
use crate::telemetry::metrics::Kind;

/// One listener a core binds: its ports-file key, address and what serves it.
#[derive(Debug, Clone)]
pub struct Bind {
    /// `receivers::otlp::grpc`.
    pub key: String,
    /// Receiver id.
    pub receiver: ComponentId,
    /// Address to bind (port 0 only on the first core).
    pub addr: SocketAddr,
    /// Which protocol serves it.
    pub protocol: Protocol,
}

/// A receiver's transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP/gRPC.
    Grpc,
    /// OTLP/HTTP.
    Http,
}

/// What a core reports to the main thread.
#[derive(Debug)]
pub enum Report {
    /// Listeners bound (or why not).
    Bound(usize, Result<Vec<(String, SocketAddr)>, String>),
    /// The core stopped; spans it could not flush.
    Stopped(usize, u64),
}

/// Everything a core owns that shutdown must flush.
struct Built {
    batchers: Vec<Rc<Batcher>>,
    tail: Vec<Rc<TailSampling>>,
    spanmetrics: Vec<Rc<SpanMetricsStage>>,
    otlp: Vec<Rc<OtlpExporter>>,
    balancers: Vec<Rc<LoadBalancer>>,
    receivers: BTreeMap<ComponentId, Rc<dyn TraceConsumer>>,
}

/// The body of one core's executor.
pub async fn core_main(
    core: usize,
    shared: Arc<Shared>,
    binds: Vec<Bind>,
    report: std::sync::mpsc::Sender<Report>,
) {
    let mut listeners = Vec::new();
    let mut bound = Vec::new();
    for b in &binds {
        match TcpListener::bind(b.addr) {
            Ok(l) => {
                let addr = l.local_addr().unwrap_or(b.addr);
                bound.push((b.key.clone(), addr));
                listeners.push((
                    l,
                    b.receiver.clone(),
                    b.protocol,
                    shared.tls_servers.get(&b.key).cloned(),
                ));
            }
            Err(e) => {
                let _ = report.send(Report::Bound(
                    core,
                    Err(format!("{}: cannot listen on {}: {e}", b.key, b.addr)),
                ));
                return;
            }
        }
    }
    let _ = report.send(Report::Bound(core, Ok(bound)));
    // Every core has been started once core 0 reported: the meshes can connect now. Pipelines
    // are built after, since tail_sampling stages hold connected channels.
    let Some(mut meshes) =
        super::mesh::unless(connect_meshes(core, &shared), shared.shutdown.wait()).await
    else {
        let _ = report.send(Report::Stopped(core, 0));
        return;
    };
    let built = build(core, &shared, &mut meshes);
    // Kept (not detached) so shutdown can wait for their connections to end gracefully.
    let mut accepting = Vec::new();
    for (listener, id, protocol, tls) in listeners {
        let Some(next) = built.receivers.get(&id).cloned() else {
            continue;
        };
        let Some(ReceiverConfig::Otlp(cfg)) = shared.config.receivers.get(&id) else {
            continue;
        };
        let name = id.to_string();
        let transport = match protocol {
            Protocol::Grpc => "grpc",
            Protocol::Http => "http",
        };
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
        let handler = match (
            protocol,
            cfg.protocols.grpc.as_ref(),
            cfg.protocols.http.as_ref(),
        ) {
            (Protocol::Grpc, Some(g), _) => {
                let limits = GrpcLimits::from_config(g);
                let handler = Handler::Grpc(Rc::new(GrpcReceiver {
                    next,
                    max_message: usize::try_from(g.max_recv_msg_size_mib.saturating_mul(1 << 20))
                        .unwrap_or(usize::MAX),
                    limits,
                    accepted,
                    refused,
                    failed_requests,
                }));
                (handler, limits.conn)
            }
            (Protocol::Http, _, Some(h)) => {
                let limits = HttpLimits::from_config(h);
                let handler = Handler::Http(Rc::new(HttpReceiver {
                    next,
                    traces_path: h.traces_url_path.clone(),
                    other_signal_paths: vec![h.metrics_url_path.clone(), h.logs_url_path.clone()],
                    max_body: usize::try_from(h.max_request_body_size).unwrap_or(usize::MAX),
                    limits,
                    accepted,
                    refused,
                    failed_requests,
                }));
                (handler, limits.conn)
            }
            _ => continue,
        };
        let (handler, limits) = handler;
        let tls = tls.map(futures_rustls::TlsAcceptor::from);
        let metrics = Rc::new(ConnMetrics::register(
            &shared.registry,
            core,
            &name,
            transport,
        ));
        accepting.push(glommio::spawn_local(listener::accept_loop(
            listener,
            handler,
            tls,
            limits,
            metrics,
            shared.shutdown.clone(),
        )));
    }
    for b in &built.batchers {
        glommio::spawn_local(b.clone().run_timer()).detach();
    }
    for lb in &built.balancers {
        glommio::spawn_local(loadbalancing::exporter::follow_routes(Rc::downgrade(lb))).detach();
    }
    for s in &built.spanmetrics {
        let s = s.clone();
        glommio::spawn_local(async move {
            loop {
                glommio::timer::Timer::new(s.interval()).await;
                s.flush();
            }
        })
        .detach();
    }
    shared.shutdown.wait().await;
    // Open connections get GOAWAY / close and finish their requests first, so what they were
    // answered OK for is in the batches that drain flushes; the rest of the deadline drains.
    let until = Instant::now() + shared.drain_deadline;
    let connections_closed = async {
        for listener in accepting {
            listener.await;
        }
        Some(())
    };
    let _ = listener::before(until, connections_closed).await;
    let unflushed = drain(&built, until.saturating_duration_since(Instant::now())).await;
    let _ = report.send(Report::Stopped(core, unflushed));
}

/// Flushes batches, then waits for exporter queues to empty until `deadline`; returns spans lost.
async fn drain(built: &Built, deadline: Duration) -> u64 {
    let until = Instant::now() + deadline;
    // Pending traces are decided (or dropped) and handed to the batches before those flush.
    for t in &built.tail {
        t.shutdown(until).await;
    }
    for b in &built.batchers {
        b.flush(Trigger::Shutdown);
    }
    for s in &built.spanmetrics {
        s.flush();
    }
    let pending = || {
        built.otlp.iter().any(|e| e.pending() > 0)
            || built.balancers.iter().any(|b| b.pending() > 0)
    };
    while pending() && Instant::now() < until {
        glommio::timer::Timer::new(Duration::from_millis(20)).await;
    }
    built.otlp.iter().map(|e| e.abandon()).sum::<u64>()
        + built.balancers.iter().map(|b| b.abandon()).sum::<u64>()
}

/// Connects this core's ends of every tail_sampling mesh.
async fn connect_meshes(core: usize, shared: &Shared) -> BTreeMap<String, Mesh<Part>> {
    let mut out = BTreeMap::new();
    for (key, setup) in &shared.meshes {
        if let Some(ends) = setup.take(core) {
            out.insert(key.clone(), ends.connect(setup).await);
        }
    }
    out
}

fn build(core: usize, shared: &Shared, meshes: &mut BTreeMap<String, Mesh<Part>>) -> Built {
    let config = &shared.config;
    let reg = &shared.registry;
    let traces: Vec<_> = config
        .pipelines
        .iter()
        .filter(|p| p.id.signal == Signal::Traces)
        .collect();
    let mut exporters: BTreeMap<ComponentId, Rc<dyn TraceConsumer>> = BTreeMap::new();
    let mut otlp = Vec::new();
    let mut balancers = Vec::new();
    let mut spanmetrics = Vec::new();
    for id in traces.iter().flat_map(|p| p.exporters.iter()) {
        if exporters.contains_key(id) {
            continue;
        }
        if let Some(merger) = shared.spanmetrics.get(id) {
            let s = spanmetrics_stage(core, shared, id, merger.clone());
            spanmetrics.push(s.clone());
            exporters.insert(id.clone(), s);
            continue;
        }
        let name = id.to_string();
        let labels = [("exporter", name.as_str())];
        let counter = |metric: &str, help| {
            reg.register(metric, help, Kind::Counter, &labels)
                .local(core)
        };
        let sent = counter(
            "otelcol_exporter_sent_spans_total",
            "Spans successfully sent to destination.",
        );
        let consumer: Rc<dyn TraceConsumer> = match config.exporters.get(id) {
            Some(ExporterConfig::Otlp(c)) => {
                let metrics = ExporterMetrics::register(reg, core, &labels);
                let Ok(target) = c.dial_target() else {
                    continue;
                };
                let client = Client::new(
                    target,
                    wire_compression(c.compression()),
                    headers(&c.headers),
                    c.timeout.0,
                    c.authority.clone(),
                    shared.tls_clients.get(id).cloned(),
                );
                let (queue, consumers) = if c.sending_queue.enabled {
                    (c.sending_queue.queue_size, c.sending_queue.num_consumers)
                } else {
                    (1, 1)
                };
                let e = otlp_exporter::start(
                    name.clone(),
                    client,
                    c.retry_on_failure.clone(),
                    queue,
                    consumers,
                    metrics,
                    core as u64 + 1,
                );
                otlp.push(e.clone());
                e
            }
            Some(ExporterConfig::OtlpHttp(c)) => {
                let setup = crate::exporter::otlphttp::CoreSetup {
                    core,
                    registry: reg,
                    name: &name,
                    config: c,
                    tls: shared.tls_clients.get(id).cloned(),
                };
                let Some(e) = crate::exporter::otlphttp::start(setup) else {
                    continue;
                };
                otlp.push(e.clone());
                e
            }
            Some(ExporterConfig::Debug(c)) => Rc::new(DebugExporter {
                config: c.clone(),
                name: name.clone(),
                sent,
            }),
            Some(ExporterConfig::Nop(_)) => Rc::new(NopExporter { sent }),
            Some(ExporterConfig::LoadBalancing(c)) => {
                let Some(b) = shared.balancers.get(id) else {
                    continue;
                };
                let factory = BackendFactory {
                    core,
                    registry: shared.registry.clone(),
                    name: name.clone(),
                    config: Arc::new((**c).clone()),
                    tls: b.tls.clone(),
                };
                let lb = LoadBalancer::new(b.routes.clone(), c.routing_key(), factory);
                balancers.push(lb.clone());
                lb
            }
            // Metrics only: started by `connector::start`, never in a traces pipeline.
            Some(ExporterConfig::Prometheus(_)) | None => continue,
        };
        exporters.insert(id.clone(), consumer);
    }
    let mut batchers = Vec::new();
    let mut tail = Vec::new();
    let mut heads: BTreeMap<ComponentId, Vec<Rc<dyn TraceConsumer>>> = BTreeMap::new();
    for p in traces {
        let outs: Vec<Rc<dyn TraceConsumer>> = p
            .exporters
            .iter()
            .filter_map(|e| exporters.get(e).cloned())
            .collect();
        let mut next: Rc<dyn TraceConsumer> = one_or_fanout(outs);
        for pid in p.processors.iter().rev() {
            let name = pid.to_string();
            let labels = [("processor", name.as_str())];
            let counter = |metric: &str, help| {
                reg.register(metric, help, Kind::Counter, &labels)
                    .local(core)
            };
            next = match config.processors.get(pid) {
                Some(ProcessorConfig::Batch(c)) => {
                    let b = Batcher::new(
                        c.clone(),
                        next,
                        BatchMetrics {
                            size_trigger: counter(
                                "otelcol_processor_batch_batch_size_trigger_send_total",
                                "Number of times the batch was sent due to a size trigger.",
                            ),
                            timeout_trigger: counter(
                                "otelcol_processor_batch_timeout_trigger_send_total",
                                "Number of times the batch was sent due to a timeout trigger.",
                            ),
                            send_size: reg.histogram(
                                "otelcol_processor_batch_batch_send_size",
                                "Number of units in the batch.",
                                &labels,
                                BATCH_BUCKETS,
                            ),
                            dropped: counter(
                                "otelcol_processor_dropped_spans_total",
                                "Spans dropped or refused by the processor.",
                            ),
                            core,
                        },
                    );
                    batchers.push(b.clone());
                    b
                }
                Some(ProcessorConfig::MemoryLimiter(_)) => match shared.memory.get(pid) {
                    Some(state) => Rc::new(MemoryLimiter {
                        state: state.clone(),
                        next,
                        refused: counter(
                            "otelcol_processor_refused_spans_total",
                            "Spans refused by the processor (memory_limiter).",
                        ),
                        dropped: counter(
                            "otelcol_processor_dropped_spans_total",
                            "Spans dropped or refused by the processor.",
                        ),
                    }),
                    None => next,
                },
                Some(ProcessorConfig::TailSampling(c)) => {
                    let key = super::mesh_key(&p.id, pid);
                    let Some(mesh) = meshes.remove(&key) else {
                        tracing::error!("{key}: no core mesh; tail_sampling not started");
                        continue;
                    };
                    let stage = StageMetrics {
                        refused: counter(
                            "otelcol_processor_refused_spans_total",
                            "Spans refused by the processor (memory_limiter).",
                        ),
                        dropped: counter(
                            "otelcol_processor_dropped_spans_total",
                            "Spans dropped or refused by the processor.",
                        ),
                    };
                    match tail_sampling::build(&c.sampler, mesh, next.clone(), &name, reg, stage) {
                        Ok(t) => {
                            tail.push(t.clone());
                            t
                        }
                        Err(e) => {
                            tracing::error!("{pid}: {e}; tail_sampling not started");
                            next
                        }
                    }
                }
                None => next,
            };
        }
        for r in &p.receivers {
            heads.entry(r.clone()).or_default().push(next.clone());
        }
    }
    let receivers = heads
        .into_iter()
        .map(|(id, v)| (id, one_or_fanout(v)))
        .collect();
    Built {
        batchers,
        tail,
        spanmetrics,
        otlp,
        balancers,
        receivers,
    }
}

/// One core's `spanmetrics` stage with its self-metrics.
fn spanmetrics_stage(
    core: usize,
    shared: &Shared,
    id: &ComponentId,
    merger: crate::connector::spanmetrics::merger::MergerHandle,
) -> Rc<SpanMetricsStage> {
    let name = id.to_string();
    let labels = [("connector", name.as_str())];
    let counter = |metric: &str, help| {
        shared
            .registry
            .register(metric, help, Kind::Counter, &labels)
            .local(core)
    };
    Rc::new(SpanMetricsStage::new(
        merger,
        counter(
            "tailgate_connector_spanmetrics_spans_total",
            "Spans aggregated by the spanmetrics connector (tailgate).",
        ),
        counter(
            "tailgate_connector_spanmetrics_failed_requests_total",
            "Requests the spanmetrics connector could not scan (tailgate).",
        ),
    ))
}

/// The collector's batch size buckets.
const BATCH_BUCKETS: &[f64] = &[
    10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2000.0, 3000.0, 4000.0, 5000.0,
    6000.0, 7000.0, 8000.0, 9000.0, 10000.0, 20000.0, 30000.0, 50000.0, 100000.0,
];

fn one_or_fanout(mut v: Vec<Rc<dyn TraceConsumer>>) -> Rc<dyn TraceConsumer> {
    if v.len() == 1 {
        if let Some(one) = v.pop() {
            return one;
        }
    }
    Rc::new(Fanout { consumers: v })
}

pub(crate) fn wire_compression(
    c: crate::config::common::Compression,
) -> tailgate_proto::compression::Compression {
    use crate::config::common::Compression as C;
    use tailgate_proto::compression::Compression as W;
    match c {
        C::None => W::Identity,
        C::Gzip => W::Gzip,
        C::Zstd => W::Zstd,
        C::Snappy => W::Snappy,
    }
}

pub(crate) fn headers(h: &crate::config::common::Headers) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (k, v) in h {
        match (
            HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()),
            HeaderValue::from_str(v),
        ) {
            (Ok(k), Ok(v)) => {
                out.insert(k, v);
            }
            _ => tracing::warn!("header {k:?} is not a valid HTTP header; not sent"),
        }
    }
    out
}
