//! What the process starts once, before any core: memory_limiter checkers, admin endpoints, the
//! metrics side (connectors' mergers, prometheus exporters), resolvers, TLS material and the core
//! meshes of `tail_sampling`. Cores only read the result ([`Shared`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::bind::{listen_binds, Bind, Protocol};
use super::error::StartError;
use crate::config::{
    ComponentId, Config, ExporterConfig, ExtensionConfig, PipelineId, ProcessorConfig,
    ReceiverConfig, Signal,
};
use crate::connector::spanmetrics::merger::MergerHandle;
use crate::exporter::loadbalancing::routes::Balancer;
use crate::exporter::otlp::occupancy::default_max_bytes;
use crate::processor::memory_limiter::processor::{self as memlimit, Limits, MemoryState};
use crate::processor::tail_sampling::peers::{self, Peers};
use crate::processor::tail_sampling::processor::Part;
use crate::runtime::{listen, mesh, stop};
use crate::telemetry::admin::{self, Endpoint};
use crate::telemetry::metrics::Registry;
use crate::tls::ClientSetup;

/// State every core reads; written only at start-up (and the flags).
pub struct Shared {
    /// The validated configuration.
    pub config: Config,
    /// Self-metrics.
    pub registry: Arc<Registry>,
    /// memory_limiter measurements by processor id.
    pub memory: BTreeMap<ComponentId, Arc<MemoryState>>,
    /// The lowest soft limit of the memory_limiters, bytes (receivers size their default budget
    /// of bytes in flight from it).
    pub memory_soft_limit: Option<u64>,
    /// Cores running pipelines.
    pub cores: usize,
    /// Set by SIGTERM/SIGINT (or a core failing at start-up).
    pub shutdown: Arc<stop::Shutdown>,
    /// Set when the listeners stop: at once after `shutdown`, or after a membership drain's
    /// phases (`tail_sampling::drain`), during which a leaving gateway keeps receiving.
    pub closing: Arc<stop::Latch>,
    /// Set once every core has built every component: listeners accept only after it.
    pub go: Arc<stop::Latch>,
    /// Set once every core runs: the health endpoint's readiness (liveness ignores it).
    pub healthy: Arc<AtomicBool>,
    /// How long open connections may take to finish and close at shutdown
    /// (`service.tailgate.connection_grace`).
    pub connection_grace: Duration,
    /// How long a core may then spend flushing and sending (`service.tailgate.drain_timeout`).
    pub drain_deadline: Duration,
    /// The receivers' listeners, as configured (port 0 resolved by core 0).
    pub binds: Vec<Bind>,
    /// Receiver TLS by bind key (`receivers::otlp::grpc`).
    pub tls_servers: BTreeMap<String, Arc<rustls::ServerConfig>>,
    /// `loadbalancing` exporters' routes and TLS by exporter id.
    pub balancers: BTreeMap<ComponentId, Arc<Balancer>>,
    /// Gateway membership of the `tail_sampling` that sets it (at most one).
    pub peers: Option<Arc<Peers>>,
    /// `spanmetrics` mergers by connector id (cores feed them).
    pub spanmetrics: BTreeMap<ComponentId, MergerHandle>,
    /// Exporter TLS by exporter id (absent: plaintext).
    pub tls_clients: BTreeMap<ComponentId, ClientSetup>,
    /// Core meshes of `tail_sampling` instances, by `pipeline/processor` key ([`mesh_key`]).
    pub meshes: BTreeMap<String, Arc<mesh::MeshSetup<Part>>>,
    /// Byte cap of each exporter's sending queue per core unless the exporter sets
    /// `sending_queue.tailgate.max_bytes_per_core` (`occupancy::default_max_bytes`).
    pub queue_bytes_default: u64,
}

/// The key of one `tail_sampling` instance's mesh: processors are instantiated per pipeline.
pub fn mesh_key(pipeline: &PipelineId, processor: &ComponentId) -> String {
    format!("{pipeline}/{processor}")
}

/// Messages in flight per ordered pair of cores for `tail_sampling` (each a request part).
const MESH_CAPACITY: usize = 256;

/// Starts what runs once per process and returns what the cores read, with the admin and
/// exporter endpoints already bound (for the ports file).
pub fn start(
    config: Config,
    cores: usize,
    shutdown: Arc<stop::Shutdown>,
    stop_threads: &Arc<AtomicBool>,
) -> Result<(Arc<Shared>, BTreeMap<String, SocketAddr>), StartError> {
    let registry = Registry::new(cores);
    let (memory, memory_soft_limit) = start_memory_limiters(&config, stop_threads)?;
    let queue_bytes_default =
        default_max_bytes(memory_soft_limit, cores, queued_exporters(&config));
    tracing::info!(
        queue_bytes_default,
        "sending queues hold at most this many bytes per exporter and core unless sending_queue.tailgate.max_bytes_per_core is set"
    );
    let healthy = Arc::new(AtomicBool::new(false));
    let mut ports = start_admin(&config, &registry, &healthy, &shutdown, stop_threads)?;
    let spanmetrics = crate::connector::start::start(&config, &registry, stop_threads, &mut ports)
        .map_err(|e| StartError::component("connectors", e))?;
    let binds = listen_binds(&config)?;
    let tls_servers = server_tls(&config)?;
    let tls_clients = client_tls(&config)?;
    let balancers =
        crate::exporter::loadbalancing::resolver::start(&config, &registry, stop_threads)
            .map_err(|e| StartError::component("exporters", e))?;
    let peers = peers::start(&config, &registry, cores, stop_threads)
        .map_err(|e| StartError::component("processors", e))?;
    let meshes = build_meshes(&config, cores);
    let budgets = config.shutdown;
    let shared = Arc::new(Shared {
        meshes,
        config,
        registry,
        memory,
        memory_soft_limit,
        cores,
        shutdown,
        closing: Arc::new(stop::Latch::default()),
        go: Arc::new(stop::Latch::default()),
        healthy,
        connection_grace: budgets.connection_grace.0,
        drain_deadline: budgets.drain_timeout.0,
        binds,
        tls_servers,
        tls_clients,
        balancers,
        peers,
        spanmetrics,
        queue_bytes_default,
    });
    Ok((shared, ports))
}

fn build_meshes(config: &Config, cores: usize) -> BTreeMap<String, Arc<mesh::MeshSetup<Part>>> {
    let mut out = BTreeMap::new();
    for p in config
        .pipelines
        .iter()
        .filter(|p| p.id.signal == Signal::Traces)
    {
        for id in &p.processors {
            if let Some(ProcessorConfig::TailSampling(_)) = config.processors.get(id) {
                out.insert(
                    mesh_key(&p.id, id),
                    Arc::new(mesh::MeshSetup::new(cores, MESH_CAPACITY)),
                );
            }
        }
    }
    out
}

/// Loads every receiver certificate and key once, so a bad file stops start-up with the key path
/// in the message instead of failing per connection.
fn server_tls(config: &Config) -> Result<BTreeMap<String, Arc<rustls::ServerConfig>>, StartError> {
    let mut servers = BTreeMap::new();
    for (id, r) in &config.receivers {
        let ReceiverConfig::Otlp(c) = r;
        let blocks = [
            (
                Protocol::Grpc,
                c.protocols.grpc.as_ref().and_then(|g| g.tls.as_ref()),
            ),
            (
                Protocol::Http,
                c.protocols.http.as_ref().and_then(|h| h.tls.as_ref()),
            ),
        ];
        for (protocol, tls) in blocks {
            let Some(t) = tls else {
                continue;
            };
            let alpn: &[u8] = match protocol {
                Protocol::Grpc => b"h2",
                Protocol::Http => b"http/1.1",
            };
            let cfg = crate::tls::server_config(t, alpn).map_err(|e| {
                StartError::component(
                    format!("receivers.{id}.protocols.{}.tls", protocol.name()),
                    e,
                )
            })?;
            servers.insert(format!("receivers::{id}::{}", protocol.name()), cfg);
        }
    }
    Ok(servers)
}

/// Loads every exporter's client TLS once (the same rule for `otlp` and `otlphttp`).
fn client_tls(config: &Config) -> Result<BTreeMap<ComponentId, ClientSetup>, StartError> {
    let mut clients = BTreeMap::new();
    for (id, e) in &config.exporters {
        let tls = match e {
            ExporterConfig::Otlp(c) => c.client_tls(),
            ExporterConfig::OtlpHttp(c) => c.client_tls(),
            _ => Ok(None),
        }
        .map_err(|e| StartError::component(format!("exporters.{id}.tls"), e))?;
        if let Some(tls) = tls {
            clients.insert(id.clone(), tls);
        }
    }
    Ok(clients)
}

/// Exporters with a sending queue (each gets its own byte cap per core).
fn queued_exporters(config: &Config) -> usize {
    config
        .exporters
        .values()
        .filter(|e| {
            matches!(
                e,
                ExporterConfig::Otlp(_)
                    | ExporterConfig::OtlpHttp(_)
                    | ExporterConfig::LoadBalancing(_)
            )
        })
        .count()
}

/// Each memory_limiter's measurement by processor id.
type MemoryStates = BTreeMap<ComponentId, Arc<MemoryState>>;

/// Starts one checker per memory_limiter; also returns the lowest soft limit (bytes).
fn start_memory_limiters(
    config: &Config,
    stop: &Arc<AtomicBool>,
) -> Result<(MemoryStates, Option<u64>), StartError> {
    let mut out = BTreeMap::new();
    let mut lowest_soft: Option<u64> = None;
    for (id, p) in &config.processors {
        if let ProcessorConfig::MemoryLimiter(c) = p {
            let path = format!("processors.{id}");
            let limits = Limits::resolve(c, memlimit::total_memory())
                .map_err(|e| StartError::component(path.clone(), e))?;
            tracing::info!(
                hard_mib = limits.hard >> 20,
                soft_mib = limits.soft >> 20,
                "{id} limits"
            );
            let state = memlimit::start_checker(limits, c, stop.clone())
                .map_err(|e| StartError::component(path, format!("cannot start checker: {e}")))?;
            out.insert(id.clone(), state);
            lowest_soft = Some(lowest_soft.map_or(limits.soft, |s| s.min(limits.soft)));
        }
    }
    Ok((out, lowest_soft))
}

fn start_admin(
    config: &Config,
    registry: &Arc<Registry>,
    healthy: &Arc<AtomicBool>,
    shutdown: &Arc<stop::Shutdown>,
    stop: &Arc<AtomicBool>,
) -> Result<BTreeMap<String, SocketAddr>, StartError> {
    let mut ports = BTreeMap::new();
    let mut bind = |key: &str, endpoint: &str, what: Endpoint| -> Result<(), StartError> {
        let addr = listen::resolve_listen(endpoint).map_err(|e| StartError::component(key, e))?;
        let l = std::net::TcpListener::bind(addr).map_err(|e| StartError::listen(key, addr, e))?;
        let bound = l
            .local_addr()
            .map_err(|e| StartError::listen(key, addr, e))?;
        tracing::info!(%bound, "{key} listening");
        ports.insert(key.to_owned(), bound);
        admin::serve(l, what, stop.clone()).map_err(|e| StartError::component(key, e))?;
        Ok(())
    };
    if let Some(a) = &config.metrics_address {
        bind(
            "service::telemetry::metrics",
            a,
            Endpoint::Metrics(registry.clone()),
        )?;
    }
    for id in &config.service_extensions {
        if let Some(ExtensionConfig::HealthCheck(h)) = config.extensions.get(id) {
            bind(
                &format!("extensions::{id}"),
                &h.endpoint,
                Endpoint::Health(Arc::new(admin::Health {
                    path: h.path.clone(),
                    readiness_path: h.tailgate.readiness_path.clone(),
                    bodies: h.response_body.clone(),
                    running: healthy.clone(),
                    shutdown: shutdown.clone(),
                    since: Instant::now(),
                })),
            )?;
        }
    }
    Ok(ports)
}
