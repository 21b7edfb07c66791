//! `throughput`: spans per CPU-second of the process under test.
//!
//! For each target, one process is started in front of in-process sinks and loaded at open
//! throttle for a fixed time with 1000-span requests of ~225-byte spans replayed from a pool (the
//! generator would otherwise be the bottleneck). Its CPU time (`utime + stime` from `/proc`) over
//! the load gives spans per CPU-second. Targets: tailgate `passthrough` (otlp → batch → otlp),
//! `agent` (→ `loadbalancing` over 3 backends), `gateway` (→ `tail_sampling` → batch → otlp), and
//! optionally a peer (`--peer-cmd`, e.g. Rotel or a collector) forwarding to one backend.
//! Timelines (spans/s answered, CPU use) are sampled every 250 ms and plotted to SVG.
//!
//! `--compression gzip|zstd` applies to every tailgate target's compressed hops, as the seed's
//! configs have them (the collector's default, gzip, wherever no `compression` key is written):
//! passthrough in and out, the agent's output to its gateways (its input comes from SDKs, sent
//! uncompressed here as before) and the gateway's input (its output to the final backend stays
//! uncompressed). `none` is the default, so figures stay comparable with earlier runs.
//!
//! `--corpus synthetic|realistic` picks what the pool holds: the synthetic workload (the default,
//! for the same reason) or 1000-span requests of the realistic corpus ([`crate::gen::corpus`],
//! seeded with the workload's seed), replayed the same way (fresh trace IDs each round). The
//! throughput check needs span counts only (spans answered, spans the sinks accepted, the exit);
//! the pool's manifest is exact for either corpus but not compared here.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::configs::{self, Sampling};
use super::process::{ExitReport, Managed, Tailgate};
use super::topology::{self, start_sinks, START_DEADLINE, STOP_DEADLINE};
use super::ui::Ui;
use super::{ScenarioContext, ScenarioError, ScenarioOutput, Size};
use crate::gen::{CorpusKind, SpanCount, TraceShape, WorkloadConfig};
use crate::grpc::Compression;
use crate::loadgen::{self, LoadConfig, LoadCounters, LoadSummary};
use crate::pace::Rate;
use crate::plot::{self, Chart, Series};
use crate::sink::{RecordMode, Sink};

/// What is measured.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetKind {
    /// tailgate: otlp → batch → otlp.
    Passthrough,
    /// tailgate: otlp → batch → loadbalancing over 3 backends.
    Agent,
    /// tailgate: otlp → tail_sampling → batch → otlp.
    Gateway,
    /// Another program, started from a command template.
    Peer(PeerCommand),
}

impl TargetKind {
    /// Parses `passthrough`, `agent` or `gateway`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "passthrough" => Some(TargetKind::Passthrough),
            "agent" => Some(TargetKind::Agent),
            "gateway" => Some(TargetKind::Gateway),
            _ => None,
        }
    }

    /// Row label.
    pub fn label(&self) -> String {
        match self {
            TargetKind::Passthrough => "tailgate passthrough (otlp → batch → otlp)".into(),
            TargetKind::Agent => "tailgate agent (→ loadbalancing, 3 backends)".into(),
            TargetKind::Gateway => "tailgate gateway (→ tail_sampling → otlp)".into(),
            TargetKind::Peer(p) => format!("peer: {}", p.program()),
        }
    }

    /// The compression on this target's hops when the run's is `c` (module docs).
    pub fn hops(&self, c: Compression) -> Hops {
        let none = Compression::None;
        let (input, output) = match self {
            TargetKind::Passthrough => (c, Some(c)),
            TargetKind::Agent => (none, Some(c)),
            TargetKind::Gateway => (c, Some(none)),
            TargetKind::Peer(_) => (none, None),
        };
        Hops { input, output }
    }

    fn backends(&self) -> usize {
        match self {
            TargetKind::Agent => 3,
            _ => 1,
        }
    }
}

/// A peer's command line: `{listen}` is replaced by the `host:port` it must receive OTLP/gRPC on,
/// `{listen_port}` by the port alone, `{backend}` by the sink's `host:port`. Run with `sh -c`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PeerCommand(pub String);

impl PeerCommand {
    /// The program's file name (for labels).
    pub fn program(&self) -> &str {
        let first = self.0.split_whitespace().next().unwrap_or("peer");
        first.rsplit('/').next().unwrap_or(first)
    }

    /// The command with the placeholders filled in.
    pub fn render(&self, listen: SocketAddr, backend: SocketAddr) -> String {
        self.0
            .replace("{listen_port}", &listen.port().to_string())
            .replace("{listen}", &listen.to_string())
            .replace("{backend}", &backend.to_string())
    }
}

/// The knobs of a throughput run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ThroughputConfig {
    /// Load time per target.
    pub duration: Duration,
    /// Requests in the replay pool.
    pub pool: usize,
    /// Load generator connections and requests in flight per connection.
    pub connections: u32,
    /// Requests in flight per connection.
    pub in_flight: u32,
    /// The traffic (1000 spans per request, ~225-byte spans).
    pub workload: WorkloadConfig,
    /// What the replay pool holds: `workload`'s requests, or the realistic corpus from its seed
    /// with its spans per request.
    pub corpus: CorpusKind,
    /// Gateway sampling settings.
    pub sampling: Sampling,
    /// Which tailgate configurations to measure (a peer is added from the context).
    pub targets: Vec<TargetKind>,
}

impl ThroughputConfig {
    /// Sized for `size`.
    pub fn for_size(size: Size) -> Self {
        let duration = match size {
            Size::Smoke => Duration::from_secs(2),
            Size::Demo => Duration::from_secs(10),
            Size::Full => Duration::from_secs(30),
        };
        ThroughputConfig {
            duration,
            // The replay stops at a round boundary: keep a round short at smoke rates.
            pool: if size == Size::Smoke { 4 } else { 40 },
            connections: 4,
            in_flight: 4,
            workload: WorkloadConfig {
                shape: TraceShape {
                    spans_per_trace: SpanCount::Uniform { min: 5, max: 15 },
                    attributes: 8,
                    attribute_value_len: 3,
                    ..TraceShape::default()
                },
                spans_per_request: 1000,
                interleave: 200,
                seed: 11,
            },
            corpus: CorpusKind::Synthetic,
            sampling: Sampling {
                decision_wait: Duration::from_secs(2),
                num_traces: 400_000,
                ..Sampling::default()
            },
            targets: vec![
                TargetKind::Passthrough,
                TargetKind::Agent,
                TargetKind::Gateway,
            ],
        }
    }
}

/// One sample of a timeline.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Sample {
    /// Seconds since the load started.
    pub t: f64,
    /// Spans answered OK so far.
    pub spans_ok: u64,
    /// CPU seconds the process used since the load started.
    pub cpu: f64,
    /// Resident memory, bytes.
    pub rss: u64,
}

/// The compression of a target's two hops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Hops {
    /// What the load generator sends (`grpc-encoding`).
    pub input: Compression,
    /// What the target's exporter sends; `None` for a peer, whose own config decides.
    pub output: Option<Compression>,
}

impl Hops {
    /// `gzip → none`, for the table.
    pub fn label(self) -> String {
        let name = |c: Compression| match c {
            Compression::None => "none",
            other => other.header_value(),
        };
        format!(
            "{} → {}",
            name(self.input),
            self.output.map_or("its config", name)
        )
    }
}

/// The numbers of one target.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TargetResult {
    /// What was measured.
    pub target: TargetKind,
    /// Compression in and out.
    pub hops: Hops,
    /// Load summary.
    pub load: LoadSummary,
    /// CPU seconds of the process during the load.
    pub cpu_secs: f64,
    /// spans_ok / cpu_secs.
    pub spans_per_cpu_sec: f64,
    /// Spans the backends received.
    pub spans_out: u64,
    /// Peak RSS seen, bytes.
    pub max_rss: u64,
    /// Timeline samples.
    pub samples: Vec<Sample>,
    /// How it exited.
    pub exit: ExitReport,
}

/// A process under test: tailgate or a peer.
pub(crate) enum UnderTest {
    Tailgate(Tailgate),
    Peer(Managed, SocketAddr),
}

impl UnderTest {
    pub(crate) fn addr(&self) -> SocketAddr {
        match self {
            UnderTest::Tailgate(t) => t.grpc_addr(),
            UnderTest::Peer(_, a) => *a,
        }
    }

    pub(crate) fn process(&self) -> &Managed {
        match self {
            UnderTest::Tailgate(t) => t.process(),
            UnderTest::Peer(m, _) => m,
        }
    }

    pub(crate) async fn stop(self) -> ExitReport {
        match self {
            UnderTest::Tailgate(t) => t.stop(STOP_DEADLINE).await,
            UnderTest::Peer(m, _) => m.stop(STOP_DEADLINE).await,
        }
    }
}

/// Starts `kind` in front of `sinks` (pinned to CPU 1, the load generator has the rest).
pub(crate) async fn start_target(
    ctx: &ScenarioContext,
    kind: &TargetKind,
    sinks: &[Sink],
    sampling: &Sampling,
) -> Result<UnderTest, ScenarioError> {
    let backends: Vec<SocketAddr> = sinks.iter().map(|s| s.grpc_addr()).collect();
    let cpu = Some(topology::cpu_for(1));
    let out = match kind.hops(ctx.compression).output {
        Some(Compression::None) | None => "none",
        Some(other) => other.header_value(),
    };
    let config = match kind {
        TargetKind::Passthrough => configs::passthrough_compressed(backends[0], out),
        TargetKind::Agent => configs::agent_compressed(&backends, out),
        TargetKind::Gateway => configs::gateway(backends[0], sampling),
        TargetKind::Peer(cmd) => {
            let listen = free_port()?;
            let line = format!("exec {}", cmd.render(listen, backends[0]));
            let args = vec!["-c".to_string(), line];
            let mut m = Managed::spawn("peer", "sh".as_ref(), &args, &ctx.work_dir, cpu)?;
            m.wait_for_port(listen, START_DEADLINE).await?;
            return Ok(UnderTest::Peer(m, listen));
        }
    };
    let name = match kind {
        TargetKind::Passthrough => "passthrough",
        TargetKind::Agent => "agent",
        _ => "gateway",
    };
    let t = Tailgate::start(
        &ctx.tailgate,
        &ctx.work_dir,
        name,
        &config,
        cpu,
        START_DEADLINE,
    )
    .await?;
    Ok(UnderTest::Tailgate(t))
}

/// A loopback port that was free a moment ago (for peers that cannot bind port 0 and report it).
fn free_port() -> Result<SocketAddr, ScenarioError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| ScenarioError::Setup(format!("cannot find a free port: {e}")))?;
    l.local_addr()
        .map_err(|e| ScenarioError::Setup(format!("cannot find a free port: {e}")))
}

/// Samples the load counters and the process every 250 ms until `stop` fires.
pub(crate) async fn sample_timeline(
    counters: Arc<LoadCounters>,
    pid: u32,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) -> Vec<Sample> {
    let started = Instant::now();
    let cpu0 = super::procfs::cpu_time(pid).unwrap_or_default();
    let mut out = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = &mut stop => break,
        }
        let cpu = super::procfs::cpu_time(pid).unwrap_or_default();
        out.push(Sample {
            t: started.elapsed().as_secs_f64(),
            spans_ok: counters.spans_ok(),
            cpu: cpu.saturating_sub(cpu0).as_secs_f64(),
            rss: super::procfs::rss_bytes(pid).unwrap_or(0),
        });
    }
    out
}

/// Runs the load against `target` with `load` settings; returns the target's numbers.
pub(crate) async fn measure(
    ctx: &ScenarioContext,
    kind: &TargetKind,
    load: LoadConfig,
    sampling: &Sampling,
    ui: Ui,
) -> Result<TargetResult, ScenarioError> {
    let sinks = start_sinks(kind.backends(), RecordMode::Count).await?;
    let step = ui.step(format!("starting {}", kind.label()));
    let under_test = start_target(ctx, kind, &sinks, sampling).await?;
    step.done("");
    let pid = under_test.process().pid();
    let counters = Arc::new(LoadCounters::default());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
    let sampler = tokio::spawn(sample_timeline(counters.clone(), pid, stop_rx));
    let cpu0 = under_test.process().cpu_time().unwrap_or_default();
    let hops = kind.hops(ctx.compression);
    let outcome = loadgen::run(LoadConfig {
        targets: vec![under_test.addr()],
        counters: Some(counters),
        progress: ui.enabled(),
        compression: hops.input,
        ..load
    })
    .await;
    if *kind == TargetKind::Gateway {
        // The gateway's work on the last traces (decisions, export) happens up to decision_wait
        // after the load: count it.
        let end = Instant::now();
        let earliest = end + sampling.decision_wait + 2 * configs::batch_timeout();
        topology::settle(
            &sinks,
            earliest,
            Duration::from_millis(600),
            earliest + Duration::from_secs(30),
        )
        .await;
    }
    let cpu = under_test
        .process()
        .cpu_time()
        .unwrap_or_default()
        .saturating_sub(cpu0);
    let _ = stop_tx.send(());
    let samples = sampler.await.unwrap_or_default();
    let outcome = outcome?;
    let exit = under_test.stop().await;
    let spans_out = sinks.iter().map(|s| s.stats().accepted_spans).sum();
    for s in sinks {
        s.shutdown().await;
    }
    let cpu_secs = cpu.as_secs_f64();
    Ok(TargetResult {
        target: kind.clone(),
        hops,
        spans_per_cpu_sec: outcome.summary.spans_ok as f64 / cpu_secs.max(0.01),
        load: outcome.summary,
        cpu_secs,
        spans_out,
        max_rss: samples.iter().map(|s| s.rss).max().unwrap_or(0),
        samples,
        exit,
    })
}

/// Bytes per span of the requests `corpus` makes from `workload` (one request).
pub fn bytes_per_span(workload: &WorkloadConfig, corpus: CorpusKind) -> f64 {
    match corpus {
        CorpusKind::Synthetic => {
            let mut w = crate::gen::Workload::new(workload.clone());
            w.next_batch(0)
                .map_or(0.0, |b| b.request.len() as f64 / f64::from(b.spans.max(1)))
        }
        CorpusKind::Realistic => {
            let spans = workload.spans_per_request.max(1);
            let mut corpus = crate::gen::corpus::Corpus::new(workload.seed);
            corpus.next_request_bytes(spans as usize).len() as f64 / f64::from(spans)
        }
    }
}

/// Runs the scenario over every target (and the context's peer).
pub async fn run(
    ctx: &ScenarioContext,
    config: &ThroughputConfig,
    ui: Ui,
) -> Result<ScenarioOutput, ScenarioError> {
    let mut targets = config.targets.clone();
    if let Some(cmd) = &ctx.peer_cmd {
        targets.push(TargetKind::Peer(PeerCommand(cmd.clone())));
    }
    let mut results = Vec::new();
    for kind in &targets {
        let load = LoadConfig {
            connections: config.connections,
            in_flight: config.in_flight,
            rate: Rate::Unlimited,
            duration: Some(config.duration),
            max_spans: None,
            workload: config.workload.clone(),
            replay_pool: Some(config.pool),
            corpus: config.corpus,
            ..LoadConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)))
        };
        results.push(measure(ctx, kind, load, &config.sampling, ui).await?);
    }
    let bps = bytes_per_span(&config.workload, config.corpus);
    let markdown = markdown(&results, config.corpus, bps);
    let plots = write_plots(ctx, &results);
    let json = serde_json::json!({
        "config": config,
        "bytes_per_span": bps,
        "results": results,
        "plots": plots,
    });
    Ok(ScenarioOutput {
        name: "throughput".into(),
        markdown,
        json,
    })
}

fn markdown(results: &[TargetResult], corpus: CorpusKind, bytes_per_span: f64) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| target | corpus | compression | spans in | seconds | spans/s | CPU-s | **spans per CPU-second** | spans out | max RSS MiB | p99 µs | exit |"
    );
    let _ = writeln!(
        s,
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    );
    for r in results {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {:.1} | {:.0} | {:.2} | **{:.0}** | {} | {:.0} | {} | {} |",
            r.target.label(),
            corpus.name(),
            r.hops.label(),
            r.load.spans_ok,
            r.load.elapsed_secs,
            r.load.spans_per_sec,
            r.cpu_secs,
            r.spans_per_cpu_sec,
            r.spans_out,
            r.max_rss as f64 / (1 << 20) as f64,
            r.load.latency_us.get("p99").copied().unwrap_or(0),
            if r.exit.clean() { "clean" } else { "NOT clean" }
        );
    }
    let _ = writeln!(
        s,
        "\n{} corpus, 1000 spans per request, {bytes_per_span:.0} bytes per span on the wire; CPU = utime + stime of the process under test.",
        corpus.name()
    );
    s
}

/// Spans/s over time, from the samples' differences.
pub(crate) fn rate_series(label: String, samples: &[Sample]) -> Series {
    let points = samples
        .windows(2)
        .map(|w| {
            let dt = (w[1].t - w[0].t).max(1e-6);
            (w[1].t, (w[1].spans_ok - w[0].spans_ok) as f64 / dt)
        })
        .collect();
    Series { label, points }
}

fn write_plots(ctx: &ScenarioContext, results: &[TargetResult]) -> Vec<String> {
    let rate: Vec<Series> = results
        .iter()
        .map(|r| rate_series(r.target.label(), &r.samples))
        .collect();
    let cpu: Vec<Series> = results
        .iter()
        .map(|r| Series {
            label: r.target.label(),
            points: r
                .samples
                .windows(2)
                .map(|w| (w[1].t, (w[1].cpu - w[0].cpu) / (w[1].t - w[0].t).max(1e-6)))
                .collect(),
        })
        .collect();
    let mut written = Vec::new();
    for (file, title, y, series) in [
        (
            "throughput-rate.svg",
            "spans per second answered",
            "spans/s",
            &rate,
        ),
        (
            "throughput-cpu.svg",
            "CPU of the process under test",
            "cores",
            &cpu,
        ),
    ] {
        let path = ctx.results_dir.join(file);
        let _ = std::fs::create_dir_all(&ctx.results_dir);
        let chart = Chart {
            title,
            x_label: "seconds",
            y_label: y,
            series,
        };
        match plot::line_chart_svg(&path, &chart) {
            Ok(()) => written.push(path.display().to_string()),
            Err(e) => tracing::warn!("{e}"),
        }
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_run_compression_reaches_every_tailgate_target() {
        use crate::grpc::Compression::{Gzip, None as Plain, Zstd};
        for c in [Plain, Gzip, Zstd] {
            let hops = |k: TargetKind| k.hops(c);
            assert_eq!(
                hops(TargetKind::Passthrough),
                Hops {
                    input: c,
                    output: Some(c)
                }
            );
            assert_eq!(
                hops(TargetKind::Agent),
                Hops {
                    input: Plain,
                    output: Some(c)
                }
            );
            assert_eq!(
                hops(TargetKind::Gateway),
                Hops {
                    input: c,
                    output: Some(Plain)
                }
            );
        }
        let peer = TargetKind::Peer(PeerCommand("x".into())).hops(Gzip);
        assert_eq!(peer.label(), "none → its config");
        assert_eq!(TargetKind::Agent.hops(Gzip).label(), "none → gzip");
        assert_eq!(TargetKind::Gateway.hops(Zstd).label(), "zstd → none");
    }

    #[test]
    fn peer_command_placeholders_are_filled() {
        let p = PeerCommand("rotel-agent start --otlp-grpc-endpoint {listen} --otlp-exporter-endpoint http://{backend} --port {listen_port}".into());
        let line = p.render(
            "127.0.0.1:5000".parse().unwrap_or_else(|_| unreachable!()),
            "127.0.0.1:6000".parse().unwrap_or_else(|_| unreachable!()),
        );
        assert_eq!(line, "rotel-agent start --otlp-grpc-endpoint 127.0.0.1:5000 --otlp-exporter-endpoint http://127.0.0.1:6000 --port 5000");
        assert_eq!(p.program(), "rotel-agent");
        assert_eq!(
            PeerCommand("/opt/bin/otelcol --config x".into()).program(),
            "otelcol"
        );
    }

    #[test]
    fn the_realistic_corpus_has_larger_spans() {
        let w = ThroughputConfig::for_size(Size::Smoke).workload;
        let synthetic = bytes_per_span(&w, CorpusKind::Synthetic);
        let realistic = bytes_per_span(&w, CorpusKind::Realistic);
        assert!((215.0..235.0).contains(&synthetic), "{synthetic}");
        // About 0.5 MB per 1000-span request (proto/src/corpus.rs).
        assert!((300.0..1000.0).contains(&realistic), "{realistic}");
    }

    #[test]
    fn rate_series_differences_the_samples() {
        let s = |t, n| Sample {
            t,
            spans_ok: n,
            cpu: 0.0,
            rss: 0,
        };
        let series = rate_series("x".into(), &[s(0.0, 0), s(0.5, 1000), s(1.0, 3000)]);
        assert_eq!(series.points, vec![(0.5, 2000.0), (1.0, 4000.0)]);
    }
}
