//! Resolvers of the `loadbalancing` exporter: where the backend set comes from, turned into
//! published routing tables.
//!
//! `static` publishes once at start-up. `dns` and `k8s` run on one control thread (a tokio
//! current-thread runtime), off the data-plane cores, and publish a new table whenever the set
//! changes; cores see it at their next batch (one atomic load).
//!
//! # Layout
//! - [`fixed`]: the fixed list of `resolver.static`.
//! - [`dns`]: A/AAAA records re-resolved every `interval` (hickory-resolver, cache capped).
//! - [`k8s`]: ready endpoints of a Service's EndpointSlices (list + watch).
//! - [`kube_api`]: the small Kubernetes API client `k8s` uses (hyper, service-account auth).

pub mod dns;
pub mod fixed;
pub mod k8s;
pub mod kube_api;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use crate::config::{ComponentId, Config, ExporterConfig};
use crate::exporter::loadbalancing::config::{LoadBalancingConfig, ResolverChoice};
use crate::exporter::loadbalancing::health::{probe_loop, Health, ProbeSettings};
use crate::exporter::loadbalancing::routes::{Balancer, Publisher, ResolverMetrics, RouteCell};
use crate::telemetry::metrics::Registry;

/// A resolver task for the control thread; it reports once on `ready` after its first attempt.
pub type Task = Pin<Box<dyn Future<Output = ()>>>;

/// Something that builds a control-thread task (built on that thread: tasks are not `Send`).
pub type TaskMaker = Box<dyn FnOnce(mpsc::Sender<()>) -> Task + Send>;

/// Starts the resolver of every `loadbalancing` exporter. Static sets are published before this
/// returns; dns/k8s resolvers start on a control thread, and this waits (bounded) for each one's
/// first answer so the cores start with backends when they are reachable.
pub fn start(
    config: &Config,
    registry: &Arc<Registry>,
    stop: &Arc<AtomicBool>,
) -> Result<BTreeMap<ComponentId, Arc<Balancer>>, String> {
    let mut out = BTreeMap::new();
    let mut makers: Vec<(TaskMaker, Duration)> = Vec::new();
    for (id, e) in &config.exporters {
        let ExporterConfig::LoadBalancing(c) = e else {
            continue;
        };
        let c = c.keys();
        let path = format!("exporters.{id}");
        let Some(choice) = c.resolver() else {
            return Err(format!("{path}.resolver: no resolver"));
        };
        let cell = Arc::new(RouteCell::default());
        let publisher = Publisher::new(
            id.to_string(),
            cell.clone(),
            choice.kind(),
            c.hashing(),
            ResolverMetrics::register(registry, choice.label()),
        );
        if let Some(maker) = start_one(c, choice, publisher, &path)? {
            makers.push(maker);
        }
        let health = c
            .tailgate
            .endpoint_health
            .as_ref()
            .filter(|h| h.enabled)
            .map(|h| {
                let health = Arc::new(Health::default());
                makers.push(prober(
                    id.to_string(),
                    cell.clone(),
                    health.clone(),
                    ProbeSettings::of(h),
                    registry.clone(),
                ));
                health
            });
        out.insert(
            id.clone(),
            Arc::new(Balancer {
                routes: cell,
                tls: client_tls(c, &path)?,
                health,
            }),
        );
    }
    if !makers.is_empty() {
        spawn_control(makers, stop.clone())?;
    }
    Ok(out)
}

/// The task maker of a health prober (ready at once: it has nothing to wait for).
pub fn prober(
    name: String,
    cell: Arc<RouteCell>,
    health: Arc<Health>,
    settings: ProbeSettings,
    registry: Arc<Registry>,
) -> (TaskMaker, Duration) {
    let maker: TaskMaker = Box::new(move |ready| {
        let _ = ready.send(());
        Box::pin(probe_loop(name, cell, health, settings, registry))
    });
    (maker, Duration::ZERO)
}

/// Publishes a static set now, or returns the task maker of a dynamic resolver (the gateway
/// membership resolves its peers with it too).
pub fn start_one(
    config: &LoadBalancingConfig,
    choice: ResolverChoice<'_>,
    mut publisher: Publisher,
    path: &str,
) -> Result<Option<(TaskMaker, Duration)>, String> {
    match choice {
        ResolverChoice::Static(s) => {
            publisher
                .resolved(fixed::members(&s.hostnames))
                .map_err(|e| format!("{path}.resolver.static.hostnames: {e}"))?;
            Ok(None)
        }
        ResolverChoice::Dns(d) => {
            let server = match &config.tailgate.dns_server {
                Some(s) => Some(
                    s.parse()
                        .map_err(|e| format!("{path}.tailgate.dns_server: {e}"))?,
                ),
                None => None,
            };
            let task = dns::DnsTask::new(d, server, publisher)
                .map_err(|e| format!("{path}.resolver.dns: {e}"))?;
            let maker: TaskMaker = Box::new(move |ready| Box::pin(task.run(ready)));
            Ok(Some((maker, d.timeout.0)))
        }
        ResolverChoice::K8s(k) => {
            let task = k8s::K8sTask::new(k, &config.tailgate, publisher)
                .map_err(|e| format!("{path}.resolver.k8s: {e}"))?;
            let maker: TaskMaker = Box::new(move |ready| Box::pin(task.run(ready)));
            Ok(Some((maker, k.timeout.0)))
        }
    }
}

/// The TLS client settings of `protocol.otlp` (`None`: plaintext); the gateway membership's
/// peer clients use it too.
pub fn client_tls(
    c: &LoadBalancingConfig,
    path: &str,
) -> Result<Option<Arc<rustls::ClientConfig>>, String> {
    let otlp = &c.protocol.otlp;
    if otlp.tls.insecure {
        return Ok(None);
    }
    crate::tls::client_config(&otlp.tls, b"h2")
        .map(Some)
        .map_err(|e| format!("{path}.protocol.otlp.tls: {e}"))
}

/// Runs the dynamic resolvers on one thread with a tokio current-thread runtime until `stop`.
fn spawn_control(makers: Vec<(TaskMaker, Duration)>, stop: Arc<AtomicBool>) -> Result<(), String> {
    spawn_named("tailgate-resolver", makers, stop)
}

/// [`spawn_control`] on a thread called `name` (the gateway membership runs its own).
pub fn spawn_named(
    name: &str,
    makers: Vec<(TaskMaker, Duration)>,
    stop: Arc<AtomicBool>,
) -> Result<(), String> {
    let (ready_tx, ready_rx) = mpsc::channel();
    let count = makers.len();
    let first_deadline =
        makers.iter().map(|(_, d)| *d).max().unwrap_or_default() + Duration::from_secs(1);
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!("cannot start the resolver runtime: {e}");
                    return;
                }
            };
            let local = tokio::task::LocalSet::new();
            for (make, _) in makers {
                local.spawn_local(make(ready_tx.clone()));
            }
            rt.block_on(local.run_until(async move {
                while !stop.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }));
        })
        .map_err(|e| format!("cannot start the resolver thread: {e}"))?;
    let until = std::time::Instant::now() + first_deadline;
    for _ in 0..count {
        let left = until.saturating_duration_since(std::time::Instant::now());
        if ready_rx.recv_timeout(left).is_err() {
            tracing::warn!("a resolver has not answered yet; starting without its backends");
            break;
        }
    }
    Ok(())
}
