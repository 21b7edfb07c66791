//! The thread-per-core runtime: one pinned glommio executor per core, each running every receiver,
//! pipeline and exporter on its own; listeners share one address through SO_REUSEPORT.
//!
//! Start-up order: check RLIMIT_MEMLOCK, start memory_limiter checkers and admin endpoints, start
//! core 0 (which binds the configured addresses; port 0 picks a port), then the other cores on the
//! ports core 0 got, then write `--ports-file`. SIGTERM/SIGINT set one flag; each core stops
//! accepting, flushes its batches and drains its exporter queues within a deadline.

pub mod alarm;
pub mod core;
pub mod hugepages;
pub mod io;
pub mod listen;
pub mod memlock;
pub mod mesh;
pub mod stop;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use glommio::{LocalExecutorBuilder, Placement};

use self::core::{Bind, Protocol, Report};
use crate::config::{
    ComponentId, Config, ExtensionConfig, ProcessorConfig, ReceiverConfig, Signal,
};
use crate::processor::memory_limiter::processor::{self as memlimit, Limits, MemoryState};
use crate::telemetry::admin::{self, Endpoint};
use crate::telemetry::metrics::Registry;

/// Options from the command line that shape the runtime.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Executors to start; all usable cores when `None`.
    pub cores: Option<usize>,
    /// Where to write bound addresses.
    pub ports_file: Option<PathBuf>,
}

/// State every core reads; written only at start-up (and the flags).
pub struct Shared {
    /// The validated configuration.
    pub config: Config,
    /// Self-metrics.
    pub registry: Arc<Registry>,
    /// memory_limiter measurements by processor id.
    pub memory: BTreeMap<ComponentId, Arc<MemoryState>>,
    /// Set by SIGTERM/SIGINT (or a core failing at start-up).
    pub shutdown: Arc<stop::Shutdown>,
    /// How long a core may spend flushing at shutdown.
    pub drain_deadline: Duration,
    /// Receiver TLS by bind key (`receivers::otlp::grpc`).
    pub tls_servers: BTreeMap<String, Arc<rustls::ServerConfig>>,
    /// `loadbalancing` exporters' routes and TLS by exporter id.
    pub balancers: BTreeMap<ComponentId, Arc<crate::exporter::loadbalancing::Balancer>>,
    /// `spanmetrics` mergers by connector id (cores feed them).
    pub spanmetrics: BTreeMap<ComponentId, crate::connector::spanmetrics::merger::MergerHandle>,
    /// Exporter TLS by exporter id (absent: plaintext).
    pub tls_clients: BTreeMap<
        ComponentId,
        (
            Arc<rustls::ClientConfig>,
            rustls::pki_types::ServerName<'static>,
        ),
    >,
    /// Core meshes of `tail_sampling` instances, by `pipeline/processor` key ([`mesh_key`]).
    pub meshes:
        BTreeMap<String, Arc<mesh::MeshSetup<crate::processor::tail_sampling::processor::Part>>>,
}

/// The key of one `tail_sampling` instance's mesh: processors are instantiated per pipeline.
pub fn mesh_key(pipeline: &crate::config::PipelineId, processor: &ComponentId) -> String {
    format!("{pipeline}/{processor}")
}

/// Messages in flight per ordered pair of cores for `tail_sampling` (each a request part).
const MESH_CAPACITY: usize = 256;

fn build_meshes(
    config: &Config,
    cores: usize,
) -> BTreeMap<String, Arc<mesh::MeshSetup<crate::processor::tail_sampling::processor::Part>>> {
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

/// Executors to start without `--cores`: the CPUs this process may run on (its affinity mask), capped
/// by its CPU quota. In a pod with `cpu: "1"` on a 64-core node the affinity mask still lists 64 CPUs,
/// but the cgroup's `cpu.max` quota allows one; std's `available_parallelism` reads that quota (cgroup
/// v1 and v2), so one reactor starts instead of 64 that would be throttled.
fn default_cores(affinity: usize) -> usize {
    let quota = std::thread::available_parallelism().map_or(affinity, |n| n.get());
    if affinity == 0 {
        quota
    } else {
        affinity.min(quota)
    }
}

/// Runs the configured pipelines until SIGTERM/SIGINT, then flushes and returns.
pub fn run(config: Config, options: RunOptions) -> Result<(), String> {
    memlock::raise_memlock()?;
    hugepages::disable_unless_configured();
    let cpus: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .collect();
    let cores = options
        .cores
        .unwrap_or_else(|| default_cores(cpus.len()))
        .max(1);
    if cores > cpus.len().max(1) {
        tracing::warn!(
            cores,
            usable = cpus.len(),
            "more cores requested than usable: executors will share CPUs"
        );
    }
    let shutdown = Arc::new(stop::Shutdown::default());
    let signals = stop::on_signals(shutdown.clone())?;
    let stop_threads = Arc::new(AtomicBool::new(false));
    let registry = Registry::new(cores);
    let memory = start_memory_limiters(&config, &stop_threads)?;
    let healthy = Arc::new(AtomicBool::new(false));
    let mut ports = start_admin(&config, &registry, &healthy, &shutdown, &stop_threads)?;
    let spanmetrics =
        crate::connector::start::start(&config, &registry, &stop_threads, &mut ports)?;
    let binds = listen_binds(&config)?;
    let (tls_servers, tls_clients) = build_tls(&config)?;
    let balancers = crate::resolver::start(&config, &registry, &stop_threads)?;

    let meshes = build_meshes(&config, cores);
    let shared = Arc::new(Shared {
        meshes,
        config,
        registry,
        memory,
        shutdown: shutdown.clone(),
        drain_deadline: Duration::from_secs(10),
        tls_servers,
        tls_clients,
        balancers,
        spanmetrics,
    });
    let (tx, rx) = mpsc::channel();
    let mut threads = Vec::new();
    // Core 0 first: it resolves port 0 to a real port the others then bind too.
    threads.push(spawn_core(
        0,
        cpus.first().copied(),
        shared.clone(),
        binds.clone(),
        tx.clone(),
    )?);
    let first = wait_bound(&rx, &shutdown)?;
    let fixed: Vec<Bind> = binds
        .iter()
        .map(|b| {
            let addr = first
                .iter()
                .find(|(k, _)| *k == b.key)
                .map_or(b.addr, |(_, a)| *a);
            Bind { addr, ..b.clone() }
        })
        .collect();
    for core in 1..cores {
        let cpu = if cpus.is_empty() {
            None
        } else {
            Some(cpus[core % cpus.len()])
        };
        threads.push(spawn_core(
            core,
            cpu,
            shared.clone(),
            fixed.clone(),
            tx.clone(),
        )?);
    }
    for _ in 1..cores {
        wait_bound(&rx, &shutdown)?;
    }
    for (key, addr) in first {
        tracing::info!(%addr, "{key} listening");
        ports.insert(key, addr);
    }
    if let Some(path) = &options.ports_file {
        listen::write_ports_file(path, &ports)
            .map_err(|e| format!("cannot write --ports-file {}: {e}", path.display()))?;
    }
    healthy.store(true, Ordering::Relaxed);
    tracing::info!(cores, "tailgate is running");

    let mut unflushed = 0;
    let mut stopped = 0;
    while stopped < cores {
        match rx.recv() {
            Ok(Report::Stopped(_, n)) => {
                unflushed += n;
                stopped += 1;
            }
            Ok(Report::Bound(..)) => {}
            Err(_) => break,
        }
    }
    for t in threads {
        let _ = t.join();
    }
    stop_threads.store(true, Ordering::Relaxed);
    signals.close();
    if unflushed > 0 {
        tracing::warn!(
            spans = unflushed,
            "shutdown deadline passed with spans still queued; counted in otelcol_exporter_send_failed_spans_total"
        );
    }
    tracing::info!("tailgate stopped");
    Ok(())
}

fn spawn_core(
    core: usize,
    cpu: Option<usize>,
    shared: Arc<Shared>,
    binds: Vec<Bind>,
    tx: mpsc::Sender<Report>,
) -> Result<std::thread::JoinHandle<()>, String> {
    std::thread::Builder::new()
        .name(format!("tailgate-core-{core}"))
        .spawn(move || {
            let placement = cpu.map_or(Placement::Unbound, Placement::Fixed);
            let executor = match LocalExecutorBuilder::new(placement)
                .name(&format!("core-{core}"))
                .make()
            {
                Ok(e) => e,
                Err(e) => {
                    let _ = tx.send(Report::Bound(
                        core,
                        Err(memlock::explain_executor_error(&e)),
                    ));
                    return;
                }
            };
            executor.run(core::core_main(core, shared, binds, tx));
        })
        .map_err(|e| format!("cannot start core thread: {e}"))
}

/// Waits for one core's bind report; a failure anywhere stops every core.
fn wait_bound(
    rx: &mpsc::Receiver<Report>,
    shutdown: &stop::Shutdown,
) -> Result<Vec<(String, SocketAddr)>, String> {
    let result = match rx.recv() {
        Ok(Report::Bound(_, r)) => r,
        Ok(Report::Stopped(core, _)) => Err(format!("core {core} stopped during start-up")),
        Err(_) => Err("a core exited during start-up".to_owned()),
    };
    if result.is_err() {
        shutdown.set();
    }
    result
}

fn listen_binds(config: &Config) -> Result<Vec<Bind>, String> {
    let mut binds = Vec::new();
    for (id, r) in &config.receivers {
        if !used_by_traces(config, id) {
            continue;
        }
        let ReceiverConfig::Otlp(c) = r;
        if let Some(g) = &c.protocols.grpc {
            let addr = listen::resolve_listen(&g.endpoint)?;
            binds.push(Bind {
                key: format!("receivers::{id}::grpc"),
                receiver: id.clone(),
                addr,
                protocol: Protocol::Grpc,
            });
        }
        if let Some(h) = &c.protocols.http {
            let addr = listen::resolve_listen(&h.endpoint)?;
            binds.push(Bind {
                key: format!("receivers::{id}::http"),
                receiver: id.clone(),
                addr,
                protocol: Protocol::Http,
            });
        }
    }
    Ok(binds)
}

type ClientTlsMap = BTreeMap<
    ComponentId,
    (
        Arc<rustls::ClientConfig>,
        rustls::pki_types::ServerName<'static>,
    ),
>;

/// Loads every certificate and key named in the config once, so a bad file stops start-up with
/// the key path in the message instead of failing per connection.
fn build_tls(
    config: &Config,
) -> Result<(BTreeMap<String, Arc<rustls::ServerConfig>>, ClientTlsMap), String> {
    let mut servers = BTreeMap::new();
    for (id, r) in &config.receivers {
        let ReceiverConfig::Otlp(c) = r;
        if let Some(t) = c.protocols.grpc.as_ref().and_then(|g| g.tls.as_ref()) {
            let cfg = crate::tls::server_config(t, b"h2")
                .map_err(|e| format!("receivers.{id}.protocols.grpc.tls: {e}"))?;
            servers.insert(format!("receivers::{id}::grpc"), cfg);
        }
        if let Some(t) = c.protocols.http.as_ref().and_then(|h| h.tls.as_ref()) {
            let cfg = crate::tls::server_config(t, b"http/1.1")
                .map_err(|e| format!("receivers.{id}.protocols.http.tls: {e}"))?;
            servers.insert(format!("receivers::{id}::http"), cfg);
        }
    }
    let mut clients = BTreeMap::new();
    for (id, e) in &config.exporters {
        if let crate::config::ExporterConfig::Otlp(c) = e {
            let Ok(target) = c.dial_target() else {
                continue;
            };
            if target.tls {
                let path = format!("exporters.{id}.tls");
                let cfg =
                    crate::tls::client_config(&c.tls, b"h2").map_err(|e| format!("{path}: {e}"))?;
                let name = crate::tls::server_name(&c.tls, &target.host)
                    .map_err(|e| format!("{path}: {e}"))?;
                clients.insert(id.clone(), (cfg, name));
            }
        }
        if let crate::config::ExporterConfig::OtlpHttp(c) = e {
            let tls = crate::exporter::otlphttp::client_tls(c)
                .map_err(|e| format!("exporters.{id}.tls: {e}"))?;
            if let Some(tls) = tls {
                clients.insert(id.clone(), tls);
            }
        }
    }
    Ok((servers, clients))
}

fn used_by_traces(config: &Config, id: &ComponentId) -> bool {
    config
        .pipelines
        .iter()
        .any(|p| p.id.signal == Signal::Traces && p.receivers.contains(id))
}

fn start_memory_limiters(
    config: &Config,
    stop: &Arc<AtomicBool>,
) -> Result<BTreeMap<ComponentId, Arc<MemoryState>>, String> {
    let mut out = BTreeMap::new();
    for (id, p) in &config.processors {
        if let ProcessorConfig::MemoryLimiter(c) = p {
            let limits = Limits::resolve(c, memlimit::total_memory())
                .map_err(|e| format!("processors.{id}: {e}"))?;
            tracing::info!(
                hard_mib = limits.hard >> 20,
                soft_mib = limits.soft >> 20,
                "{id} limits"
            );
            let state = memlimit::start_checker(limits, c, stop.clone())
                .map_err(|e| format!("processors.{id}: cannot start checker: {e}"))?;
            out.insert(id.clone(), state);
        }
    }
    Ok(out)
}

fn start_admin(
    config: &Config,
    registry: &Arc<Registry>,
    healthy: &Arc<AtomicBool>,
    shutdown: &Arc<stop::Shutdown>,
    stop: &Arc<AtomicBool>,
) -> Result<BTreeMap<String, SocketAddr>, String> {
    let mut ports = BTreeMap::new();
    let mut bind = |key: &str, endpoint: &str, what: Endpoint| -> Result<(), String> {
        let addr = listen::resolve_listen(endpoint)?;
        let l = std::net::TcpListener::bind(addr)
            .map_err(|e| format!("{key}: cannot listen on {addr}: {e}"))?;
        let bound = l.local_addr().map_err(|e| e.to_string())?;
        tracing::info!(%bound, "{key} listening");
        ports.insert(key.to_owned(), bound);
        admin::serve(l, what, stop.clone()).map_err(|e| format!("{key}: {e}"))?;
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

/// Runs `f` to completion on a fresh glommio executor on this thread (unit tests of per-core code).
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) fn on_test_executor(f: impl std::future::Future<Output = ()> + 'static) {
    glommio::LocalExecutorBuilder::default()
        .make()
        .unwrap()
        .run(f);
}
