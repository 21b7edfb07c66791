//! Health-aware failover (`tailgate.endpoint_health`, docs/membership-design.md §8): a control-
//! thread task probes every backend with an empty OTLP export and publishes the set it considers
//! down; cores route with `table.failover(down)`, so only a dead backend's traces move, each to
//! its next choice, and come back the same way when it answers again.
//!
//! The probe is what notices a stopped process: a SIGKILLed gateway refuses connections at once,
//! but a SIGSTOPped one keeps its TCP connections and its listen backlog and answers nothing, so
//! only a request with a deadline tells. An empty `ExportTraceServiceRequest` is valid OTLP that
//! tailgate and the collector both accept. The gateway membership probes its peers the same way.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tailgate_routing::health::{Hysteresis, Transition};

use super::config::EndpointHealth;
pub use super::routes::Health;
use super::routes::RouteCell;
use crate::telemetry::metrics::{Kind, Local, Registry};

/// The gRPC method a probe calls.
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// How probes run: `active_probe` and `quarantine_duration` of `endpoint_health`.
#[derive(Clone, Copy, Debug)]
pub struct ProbeSettings {
    /// Consecutive failures that take a member down.
    pub fall: u32,
    /// Consecutive successes that bring it back.
    pub rise: u32,
    /// Time between probe rounds.
    pub interval: Duration,
    /// Deadline of one probe.
    pub timeout: Duration,
    /// Random spread of the interval, a fraction in [0, 1).
    pub jitter: f64,
    /// A member that went down stays down at least this long.
    pub quarantine: Duration,
}

impl ProbeSettings {
    /// The settings of a validated `endpoint_health` block.
    pub fn of(h: &EndpointHealth) -> Self {
        let p = &h.active_probe;
        Self {
            fall: p.fall,
            rise: p.rise,
            interval: p.interval.0,
            timeout: p.timeout.0,
            jitter: p.jitter,
            quarantine: h.quarantine_duration.0,
        }
    }
}

/// `tailgate_loadbalancer_*` health series of one exporter, written by the control thread (core
/// slot 0 of series no core writes).
struct HealthMetrics {
    probes_ok: Local,
    probes_failed: Local,
    down: Local,
    went_down: Local,
    came_up: Local,
}

impl HealthMetrics {
    fn register(registry: &Registry, exporter: &str) -> Self {
        let probes = |success| {
            registry
                .register(
                    "tailgate_loadbalancer_probes_total",
                    "Health probes (empty exports) sent to backends, by outcome (tailgate).",
                    Kind::Counter,
                    &[("exporter", exporter), ("success", success)],
                )
                .local(0)
        };
        let transitions = |state| {
            registry
                .register(
                    "tailgate_loadbalancer_backend_transitions_total",
                    "Backends taken out of (down) or put back into (up) the routing table by health probes (tailgate).",
                    Kind::Counter,
                    &[("exporter", exporter), ("state", state)],
                )
                .local(0)
        };
        Self {
            probes_ok: probes("true"),
            probes_failed: probes("false"),
            down: registry
                .register(
                    "tailgate_loadbalancer_backends_down",
                    "Backends the health probes consider down now (tailgate).",
                    Kind::Gauge,
                    &[("exporter", exporter)],
                )
                .local(0),
            went_down: transitions("down"),
            came_up: transitions("up"),
        }
    }
}

/// The probing task of one exporter (`name`) over the members `cell` publishes, run on a control
/// thread until the process stops; writes `health`.
pub async fn probe_loop(
    name: String,
    cell: Arc<RouteCell>,
    health: Arc<Health>,
    settings: ProbeSettings,
    registry: Arc<Registry>,
) {
    let metrics = HealthMetrics::register(&registry, &name);
    let quarantine = u64::try_from(settings.quarantine.as_nanos()).unwrap_or(u64::MAX);
    let mut hysteresis = Hysteresis::new(settings.fall, settings.rise, quarantine);
    let started = Instant::now();
    let mut round: u64 = 0;
    loop {
        round += 1;
        tokio::time::sleep(jittered(settings.interval, settings.jitter, round)).await;
        let routes = cell.snapshot();
        let members: Vec<(String, String)> = routes
            .table
            .members()
            .iter()
            .zip(&routes.dial)
            .map(|(m, dial)| (m.endpoint().to_owned(), dial.clone()))
            .collect();
        let endpoints: Vec<&str> = members.iter().map(|(e, _)| e.as_str()).collect();
        let mut changed = hysteresis.retain(&endpoints);
        let probes: Vec<_> = members
            .iter()
            .map(|(_, dial)| tokio::task::spawn_local(probe(dial.clone(), settings.timeout)))
            .collect();
        let now = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        for ((endpoint, _), p) in members.iter().zip(probes) {
            let ok = p.await.unwrap_or(false);
            if ok {
                metrics.probes_ok.add(1);
            } else {
                metrics.probes_failed.add(1);
            }
            match hysteresis.record(endpoint, ok, now) {
                Some(Transition::Down) => {
                    tracing::warn!(exporter = %name, %endpoint, "backend does not answer its health probes: its traces go to their next choice");
                    metrics.went_down.add(1);
                    changed = true;
                }
                Some(Transition::Up) => {
                    tracing::info!(exporter = %name, %endpoint, "backend answers again: its traces come back to it");
                    metrics.came_up.add(1);
                    changed = true;
                }
                None => {}
            }
        }
        if changed {
            let down: BTreeSet<String> = hysteresis.down().map(str::to_owned).collect();
            metrics.down.set(down.len() as u64);
            health.publish(down);
        }
    }
}

/// `interval` spread by up to ±`jitter` (a deterministic sequence per round: probes of many
/// agents drift apart with their start times anyway).
fn jittered(interval: Duration, jitter: f64, round: u64) -> Duration {
    let x = round.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11;
    let unit = (x as f64) / ((1u64 << 53) as f64); // [0, 1)
    let factor = 1.0 + jitter.clamp(0.0, 0.99) * (2.0 * unit - 1.0);
    interval.mul_f64(factor.max(0.01))
}

/// One probe of `dial` (`host:port`): an empty OTLP/gRPC export over a fresh plaintext HTTP/2
/// connection, answered `grpc-status: 0` within `timeout`.
pub async fn probe(dial: String, timeout: Duration) -> bool {
    tokio::time::timeout(timeout, export_empty(&dial))
        .await
        .unwrap_or(false)
}

async fn export_empty(dial: &str) -> bool {
    let Ok(tcp) = tokio::net::TcpStream::connect(dial).await else {
        return false;
    };
    let _ = tcp.set_nodelay(true);
    let Ok((client, conn)) = h2::client::handshake(tcp).await else {
        return false;
    };
    tokio::task::spawn_local(async move {
        let _ = conn.await;
    });
    let Ok(mut client) = client.ready().await else {
        return false;
    };
    let request = http::Request::post(format!("http://{dial}{EXPORT_PATH}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(());
    let Ok(request) = request else {
        return false;
    };
    let Ok((response, mut body)) = client.send_request(request, false) else {
        return false;
    };
    // One gRPC frame: uncompressed, length 0 (an ExportTraceServiceRequest with no spans).
    if body
        .send_data(bytes::Bytes::from_static(&[0; 5]), true)
        .is_err()
    {
        return false;
    }
    let Ok(response) = response.await else {
        return false;
    };
    if let Some(status) = response.headers().get("grpc-status") {
        return status.as_bytes() == b"0";
    }
    let mut body = response.into_body();
    // Trailers come after the (empty) response message; the data is read and released.
    while let Some(chunk) = body.data().await {
        match chunk {
            Ok(c) => {
                let _ = body.flow_control().release_capacity(c.len());
            }
            Err(_) => return false,
        }
    }
    matches!(body.trailers().await, Ok(Some(t)) if t.get("grpc-status").is_some_and(|s| s.as_bytes() == b"0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_its_fraction() {
        let i = Duration::from_secs(1);
        for round in 0..1000 {
            let d = jittered(i, 0.1, round);
            assert!(
                d >= Duration::from_millis(900) && d <= Duration::from_millis(1100),
                "{d:?}"
            );
        }
        assert_eq!(jittered(i, 0.0, 7), i);
    }
}
