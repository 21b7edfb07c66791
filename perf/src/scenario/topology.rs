//! Building blocks the scenarios share: in-process sinks as backends, gateways and an agent as
//! `tailgate` processes, and waiting until the backends stop receiving.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::configs::{self, Sampling};
use super::process::{ExitReport, Tailgate};
use super::{ScenarioContext, ScenarioError};
use crate::check::SinkObservations;
use crate::sink::{RecordMode, Sink, SinkConfig};

/// How long a process may take to start (debug builds on a loaded machine are slow).
pub const START_DEADLINE: Duration = Duration::from_secs(60);
/// How long a process may take to stop after SIGTERM (tailgate drains for up to 10 s).
pub const STOP_DEADLINE: Duration = Duration::from_secs(20);

/// Starts `n` sinks on 127.0.0.1:0 that record span IDs.
pub async fn start_sinks(n: usize, record: RecordMode) -> Result<Vec<Sink>, ScenarioError> {
    let mut sinks = Vec::with_capacity(n);
    for _ in 0..n {
        let sink = Sink::start(SinkConfig {
            record,
            ..SinkConfig::default()
        })
        .await
        .map_err(|e| ScenarioError::Setup(format!("cannot start a sink: {e}")))?;
        sinks.push(sink);
    }
    Ok(sinks)
}

/// The CPU the `i`-th process is pinned to (round-robin over the machine's CPUs).
pub fn cpu_for(i: usize) -> usize {
    i % super::process::cpu_count()
}

/// Starts one gateway per backend; gateway `i` exports to `backends[i]` and is pinned to CPU
/// `cpu_for(first_cpu + i)`. Without `sampling` the gateways only forward (a stand-in that keeps
/// every span, for checking the routing alone).
pub async fn start_gateways(
    ctx: &ScenarioContext,
    prefix: &str,
    backends: &[SocketAddr],
    sampling: Option<&Sampling>,
    first_cpu: usize,
) -> Result<Vec<Tailgate>, ScenarioError> {
    let mut gateways = Vec::with_capacity(backends.len());
    for (i, backend) in backends.iter().enumerate() {
        let config = match sampling {
            Some(s) => configs::gateway(*backend, s),
            None => configs::passthrough(*backend),
        };
        let g = Tailgate::start(
            &ctx.tailgate,
            &ctx.work_dir,
            &format!("{prefix}gateway-{i}"),
            &config,
            Some(cpu_for(first_cpu + i)),
            START_DEADLINE,
        )
        .await?;
        gateways.push(g);
    }
    Ok(gateways)
}

/// Starts an agent that routes by trace ID over `gateways` (static resolver), pinned to `cpu`.
pub async fn start_agent(
    ctx: &ScenarioContext,
    name: &str,
    gateways: &[SocketAddr],
    cpu: usize,
) -> Result<Tailgate, ScenarioError> {
    let config = configs::agent(gateways);
    Ok(Tailgate::start(
        &ctx.tailgate,
        &ctx.work_dir,
        name,
        &config,
        Some(cpu_for(cpu)),
        START_DEADLINE,
    )
    .await?)
}

/// Stops processes one after another (SIGTERM, exit status).
pub async fn stop_all(processes: Vec<Tailgate>) -> Vec<ExitReport> {
    let mut out = Vec::with_capacity(processes.len());
    for p in processes {
        out.push(p.stop(STOP_DEADLINE).await);
    }
    out
}

fn received(sinks: &[Sink]) -> u64 {
    sinks.iter().map(|s| s.stats().accepted_spans).sum()
}

/// Waits until the backends have received nothing for `quiet`, but at least until `earliest`
/// (e.g. the end of the load plus `decision_wait`), and at most until `latest`. Returns whether
/// they went quiet (false: still receiving at `latest`). Polls the counters every 50 ms: the
/// processes in between offer no signal for "everything decided and sent".
pub async fn settle(sinks: &[Sink], earliest: Instant, quiet: Duration, latest: Instant) -> bool {
    let mut last = received(sinks);
    let mut last_change = Instant::now();
    loop {
        let now = Instant::now();
        if now >= earliest && now.duration_since(last_change) >= quiet {
            return true;
        }
        if now >= latest {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let n = received(sinks);
        if n != last {
            last = n;
            last_change = Instant::now();
        }
    }
}

/// Takes what every sink recorded and shuts the sinks down; sink `i` is named `NAME-i`.
pub async fn collect(sinks: Vec<Sink>, name: &str) -> Vec<SinkObservations> {
    let mut out = Vec::with_capacity(sinks.len());
    for (i, sink) in sinks.into_iter().enumerate() {
        let seen = sink.take();
        out.push(SinkObservations {
            name: format!("{name}-{i}"),
            keys: seen.keys,
        });
        sink.shutdown().await;
    }
    out
}
