//! `scale`: do traces stay whole while the gateway set changes (issue 18)?
//!
//! Gateways are real `tailgate` processes on 127.0.0.2, 127.0.0.3, … all on one port, listed under
//! one name by a DNS server this scenario runs ([`crate::dns`]); an agent routes by trace ID over
//! that list (`loadbalancing` with the `dns` resolver and `tailgate.dns_server`), and, with
//! membership, the gateways resolve each other from the same name (`tailgate.membership`). Every
//! gateway process exports to its own sink, so a trace kept by two gateways (or by two
//! incarnations of one address) is visible.
//!
//! Each [`Event`] runs alone: a fresh set of gateways and an agent, steady load (5 % error, 5 %
//! slow traces, a trace's spans spread over about a second), the event after `before`, load for
//! `after` more, then the agent flushes, the gateways decide, and `check` judges every trace of
//! the run whole, partial or lost. Every event runs twice: with `membership` and without it (the
//! collector-like split). Gateways' `/metrics` are read just before each SIGTERM and while the
//! process drains, so what a leaving gateway forwarded is counted.
//!
//! Events, as Kubernetes makes them: `scale-out` (3→4: a ready gateway is added to DNS),
//! `scale-in` (4→3: removed from DNS and SIGTERMed at the same moment), `rolling` (maxSurge 1: a
//! new gateway on a new address is added, then an old one removed and SIGTERMed, for each
//! gateway), `restart-same-address` (StatefulSet: each gateway removed and SIGTERMed, and once it
//! exited a new, empty process on the same address added back), and `steady` (no change: the
//! rig's own noise). Gateways killed (SIGKILL) or stopped (SIGSTOP) while still listed need agents
//! that fail over to the next member, which is not built yet; those events are left out.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use super::configs::{self, DnsDiscovery, Sampling};
use super::process::{ExitReport, Tailgate};
use super::topology::{self, START_DEADLINE, STOP_DEADLINE};
use super::ui::Ui;
use super::{ScenarioContext, ScenarioError, ScenarioOutput, Size};
use crate::check::{self, CheckReport, ClassRow, SinkObservations};
use crate::dns::DnsServer;
use crate::gen::{SpanCount, TraceShape, WorkloadConfig};
use crate::loadgen::{self, LoadConfig, LoadSummary};
use crate::pace::Rate;
use crate::sink::{RecordMode, Sink, SinkConfig};

/// The name the DNS server lists the gateways under.
const HOSTNAME: &str = "gateways.scale.test";
/// The ports-file key of the self-metrics endpoint.
const METRICS: &str = "service::telemetry::metrics";

/// A change of the gateway set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Event {
    /// No change (what the rig itself splits or loses).
    Steady,
    /// One gateway more: started, then added to DNS.
    ScaleOut,
    /// One gateway less: removed from DNS and SIGTERMed at the same moment.
    ScaleIn,
    /// Every gateway replaced, maxSurge 1: add a new address, then remove and SIGTERM an old one.
    Rolling,
    /// Every gateway restarted on its address with empty state (StatefulSet): removed and
    /// SIGTERMed, and once it exited started again and added back.
    RestartSameAddress,
    /// One gateway SIGSTOPped while DNS still lists it (a hung process: its kernel still
    /// accepts connections); SIGCONT only at the end of the run.
    #[value(name = "sigstop")]
    #[serde(rename = "sigstop")]
    Stopped,
    /// One gateway SIGKILLed while DNS still lists it (its node died).
    #[value(name = "sigkill")]
    #[serde(rename = "sigkill")]
    Killed,
}

impl Event {
    /// Every event, in the order they run.
    pub const ALL: [Event; 7] = [
        Event::Steady,
        Event::ScaleOut,
        Event::ScaleIn,
        Event::Rolling,
        Event::RestartSameAddress,
        Event::Stopped,
        Event::Killed,
    ];

    /// Its name in tables and file names.
    pub fn name(self) -> &'static str {
        match self {
            Event::Steady => "steady",
            Event::ScaleOut => "scale-out",
            Event::ScaleIn => "scale-in",
            Event::Rolling => "rolling",
            Event::RestartSameAddress => "restart-same-address",
            Event::Stopped => "sigstop",
            Event::Killed => "sigkill",
        }
    }

    /// A gateway fails while listed: spans it held are lost by nature (a SIGKILLed process's
    /// buffer is gone; a SIGSTOPped one decides only after the run), so the targets are "no split
    /// among the others, no duplicates", not "no trace partial or lost".
    pub fn is_failure(self) -> bool {
        matches!(self, Event::Stopped | Event::Killed)
    }

    /// Gateways running when the load starts (`n` is the scenario's base count).
    fn initial(self, n: usize) -> usize {
        match self {
            Event::ScaleIn => n + 1,
            _ => n,
        }
    }
}

/// Whether gateways run `tailgate.membership`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Gateways forward and claim traces whose owner moved.
    Membership,
    /// Gateways do not know each other (as collectors): a moved trace is decided in pieces.
    Plain,
}

impl Mode {
    /// Column title.
    pub fn title(self) -> &'static str {
        match self {
            Mode::Membership => "membership",
            Mode::Plain => "without membership",
        }
    }
}

/// The knobs of a scale run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ScaleConfig {
    /// Gateways before the event (scale-in starts with one more).
    pub gateways: usize,
    /// New traces per second.
    pub traces_per_sec: f64,
    /// Load before the event.
    pub before: Duration,
    /// Load after the event has played out.
    pub after: Duration,
    /// Between the steps of a rolling restart (add, remove) and after a restarted gateway is
    /// back (readiness of the new pod before the next one goes).
    pub step_gap: Duration,
    /// Gateways' sampling (`decision_wait`).
    pub sampling: Sampling,
    /// `tailgate.membership.grace`.
    pub grace: Duration,
    /// The dns resolvers' `interval` (agents and gateways).
    pub resolver_interval: Duration,
    /// The traffic.
    pub workload: WorkloadConfig,
    /// Events to run, each with every mode.
    pub events: Vec<Event>,
    /// Modes to run each event with.
    pub modes: Vec<Mode>,
    /// Gateways also run the seed's spanmetrics pipeline beside sampling.
    pub spanmetrics: bool,
}

impl ScaleConfig {
    /// The size for `size`; demo runs every event in both modes in about three minutes on 2
    /// cores (release build).
    pub fn for_size(size: Size) -> Self {
        let (traces_per_sec, before, after): (f64, _, _) = match size {
            Size::Smoke => (100.0, Duration::from_secs(2), Duration::from_secs(2)),
            Size::Demo => (300.0, Duration::from_secs(3), Duration::from_secs(3)),
            Size::Full => (300.0, Duration::from_secs(10), Duration::from_secs(10)),
        };
        // Spans of one trace are drawn at random among `interleave` open traces, so a trace of k
        // spans stays open for about k × interleave / (spans per second) = k / 10 × interleave /
        // (traces per second): with 0.6 s per 10 spans the largest (15-span) traces spread over
        // 0.9 s on average and about 1.2 s at p90, inside decision_wait (2 s) with a wide margin.
        let interleave = (traces_per_sec * 0.6).round().max(1.0) as u32;
        ScaleConfig {
            gateways: 3,
            traces_per_sec,
            before,
            after,
            step_gap: Duration::from_secs(1),
            sampling: Sampling {
                decision_wait: Duration::from_secs(2),
                ..Sampling::default()
            },
            grace: Duration::from_secs(5),
            resolver_interval: Duration::from_secs(1),
            workload: WorkloadConfig {
                shape: TraceShape {
                    spans_per_trace: SpanCount::Uniform { min: 5, max: 15 },
                    error_rate: 0.05,
                    slow_rate: 0.05,
                    slow_threshold: Duration::from_secs(1),
                    ..TraceShape::default()
                },
                spans_per_request: 100,
                interleave,
                seed: 18,
            },
            events: Event::ALL.to_vec(),
            modes: vec![Mode::Membership, Mode::Plain],
            spanmetrics: true,
        }
    }

    /// Spans per second of the load (10 spans per trace on average).
    fn spans_per_sec(&self) -> f64 {
        let (min, max) = match self.workload.shape.spans_per_trace {
            SpanCount::Uniform { min, max } => (min, max),
            _ => (10, 10),
        };
        self.traces_per_sec * f64::from(min + max) / 2.0
    }
}

/// Counters read from one gateway's `/metrics` (series → value; gauges are left out by name).
pub type Metrics = BTreeMap<String, f64>;

/// Parses the Prometheus text format: every sample line's series (name and labels) and value.
/// Comments and lines whose value does not parse are skipped.
pub fn parse_metrics(text: &str) -> Metrics {
    let mut out = Metrics::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        if let Ok(v) = value.parse::<f64>() {
            *out.entry(series.trim().to_string()).or_insert(0.0) += v;
        }
    }
    out
}

/// The sum of every series of metric `name` whose labels contain all of `labels` (`k="v"`).
pub fn sum_of(metrics: &Metrics, name: &str, labels: &[&str]) -> f64 {
    metrics
        .iter()
        .filter(|(series, _)| {
            let (n, rest) = series.split_once('{').unwrap_or((series.as_str(), ""));
            n == name && labels.iter().all(|l| rest.contains(l))
        })
        .map(|(_, v)| v)
        .sum()
}

/// Adds `b`'s series to `a`.
fn add_metrics(a: &mut Metrics, b: &Metrics) {
    for (k, v) in b {
        *a.entry(k.clone()).or_insert(0.0) += v;
    }
}

/// Reads `/metrics` at `addr` (HTTP/1.0, bounded in time and size).
async fn scrape(addr: SocketAddr) -> std::io::Result<Metrics> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const MAX: u64 = 16 << 20;
    let fetch = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: tailgate\r\n\r\n")
            .await?;
        let mut body = Vec::new();
        s.take(MAX).read_to_end(&mut body).await?;
        Ok::<_, std::io::Error>(body)
    };
    let body = tokio::time::timeout(Duration::from_secs(2), fetch)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "metrics scrape"))??;
    let text = String::from_utf8_lossy(&body);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or(("", ""));
    if !head.starts_with("HTTP/1.") || head.split_whitespace().nth(1) != Some("200") {
        return Err(std::io::Error::other(format!(
            "metrics answered {:?}",
            head.lines().next().unwrap_or("")
        )));
    }
    Ok(parse_metrics(body))
}

/// One gateway process and its own sink.
struct Gateway {
    process: Tailgate,
    ip: Ipv4Addr,
    sink: Sink,
}

/// A gateway after it exited: its last metrics and its sink.
struct Stopped {
    exit: ExitReport,
    metrics: Metrics,
    sink: Sink,
}

/// The gateways of one run, the DNS list and the processes still draining.
struct Fleet<'a> {
    ctx: &'a ScenarioContext,
    config: &'a ScaleConfig,
    mode: Mode,
    tag: String,
    discovery: DnsDiscovery,
    dns: DnsServer,
    live: Vec<Gateway>,
    draining: JoinSet<Stopped>,
    stopped: Vec<Stopped>,
    started: usize,
    /// The gateway a failure event stopped (SIGCONTed before the end of the run).
    failed: Option<nix::unistd::Pid>,
    /// Agent and gateways probe the gateways (`endpoint_health`): with membership.
    health: bool,
}

impl Fleet<'_> {
    fn addr(&self, ip: Ipv4Addr) -> SocketAddr {
        SocketAddr::from((ip, self.discovery.port))
    }

    /// Starts a gateway on `ip` with a fresh sink; it is not in DNS yet.
    async fn start(&mut self, ip: Ipv4Addr) -> Result<Gateway, ScenarioError> {
        let sink = Sink::start(SinkConfig {
            record: RecordMode::Ids,
            ..SinkConfig::default()
        })
        .await
        .map_err(|e| ScenarioError::Setup(format!("cannot start a sink: {e}")))?;
        let grace = (self.mode == Mode::Membership).then_some(self.config.grace);
        let mut config = configs::gateway_member(
            self.addr(ip),
            sink.grpc_addr(),
            &self.config.sampling,
            &self.discovery,
            grace,
        );
        if self.health && grace.is_some() {
            config["processors"]["tail_sampling"]["tailgate"]["membership"]["endpoint_health"] =
                configs::endpoint_health();
        }
        if self.config.spanmetrics {
            configs::with_spanmetrics(&mut config);
        }
        let name = format!("{}-gateway-{}", self.tag, self.started);
        self.started += 1;
        let cpu = topology::cpu_for(self.started);
        let process = Tailgate::start(
            &self.ctx.tailgate,
            &self.ctx.work_dir,
            &name,
            &config,
            Some(cpu),
            START_DEADLINE,
        )
        .await?;
        Ok(Gateway { process, ip, sink })
    }

    /// Publishes the live gateways' addresses.
    fn publish(&self) {
        let ips: Vec<Ipv4Addr> = self.live.iter().map(|g| g.ip).collect();
        self.dns.set(&ips);
    }

    /// Starts a gateway on `ip` and adds it to DNS once it is ready.
    async fn join(&mut self, ip: Ipv4Addr) -> Result<(), ScenarioError> {
        let g = self.start(ip).await?;
        self.live.push(g);
        self.publish();
        Ok(())
    }

    /// Removes the gateway on `ip` from DNS and SIGTERMs it at the same moment (its metrics read
    /// just before); it drains in the background.
    async fn retire(&mut self, ip: Ipv4Addr) {
        let Some(i) = self.live.iter().position(|g| g.ip == ip) else {
            return;
        };
        let g = self.live.remove(i);
        let metrics_addr = g.process.ports().get(METRICS).copied();
        let before = match metrics_addr {
            Some(a) => scrape(a).await.unwrap_or_default(),
            None => Metrics::new(),
        };
        self.publish();
        self.draining
            .spawn(stop_reading_metrics(g, metrics_addr, before));
    }

    /// The end of a run: every live gateway's metrics read, then all SIGTERMed at once with DNS
    /// unchanged (what they forward while shutting down together is not the event's doing).
    async fn finish(&mut self) {
        if let Some(pid) = self.failed.take() {
            // A stopped gateway must run again to exit on SIGTERM (a killed one ignores this).
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT);
        }
        for g in std::mem::take(&mut self.live) {
            let before = match g.process.ports().get(METRICS).copied() {
                Some(a) => scrape(a).await.unwrap_or_default(),
                None => Metrics::new(),
            };
            self.draining.spawn(stop_reading_metrics(g, None, before));
        }
        self.wait_drained().await;
    }

    /// Waits for every draining gateway to exit.
    async fn wait_drained(&mut self) {
        while let Some(done) = self.draining.join_next().await {
            if let Ok(stopped) = done {
                self.stopped.push(stopped);
            }
        }
    }
}

/// SIGTERMs `g` and, with `metrics_addr`, reads its metrics every 250 ms until it exits; the last
/// read wins (counters only grow), so what it forwards while draining is counted too.
async fn stop_reading_metrics(
    g: Gateway,
    metrics_addr: Option<SocketAddr>,
    mut last: Metrics,
) -> Stopped {
    let stop = g.process.stop(STOP_DEADLINE);
    tokio::pin!(stop);
    let exit = loop {
        tokio::select! {
            exit = &mut stop => break exit,
            () = tokio::time::sleep(Duration::from_millis(250)) => {
                if let Some(addr) = metrics_addr {
                    if let Ok(m) = scrape(addr).await {
                        last = m;
                    }
                }
            }
        }
    };
    Stopped {
        exit,
        metrics: last,
        sink: g.sink,
    }
}

/// Finds one port free on every address in `ips`; the gateways then bind it, so a process
/// elsewhere could take it in between: the gateway would fail to start and the run says so.
fn common_port(ips: &[Ipv4Addr]) -> Result<u16, ScenarioError> {
    let Some(first) = ips.first() else {
        return Err(ScenarioError::Setup("no gateway address".into()));
    };
    for _ in 0..50 {
        let probe = std::net::TcpListener::bind((*first, 0))
            .map_err(|e| ScenarioError::Setup(format!("cannot bind {first}:0: {e}")))?;
        let port = probe.local_addr().map(|a| a.port()).unwrap_or(0);
        let rest: std::io::Result<Vec<_>> = ips[1..]
            .iter()
            .map(|ip| std::net::TcpListener::bind((*ip, port)))
            .collect();
        if port != 0 && rest.is_ok() {
            return Ok(port);
        }
    }
    Err(ScenarioError::Setup(format!(
        "no port free on all of {ips:?} in 50 tries"
    )))
}

/// The address of the `i`-th gateway address a run uses: 127.0.0.2, 127.0.0.3, …
fn gateway_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 2 + (i as u8))
}

/// Polls the agent's metrics until its dns resolver lists `n` gateways (or 10 s pass).
async fn wait_for_backends(agent: &Tailgate, n: usize) -> bool {
    let Some(addr) = agent.ports().get(METRICS).copied() else {
        return false;
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(m) = scrape(addr).await {
            if sum_of(&m, "otelcol_loadbalancer_num_backends", &[]) == n as f64 {
                return true;
            }
        }
        // Polling: the agent offers no signal for "resolved".
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Plays `event` on `fleet` (the load is running).
async fn play(
    event: Event,
    fleet: &mut Fleet<'_>,
    spare: Option<Gateway>,
) -> Result<(), ScenarioError> {
    let n = fleet.config.gateways;
    let gap = fleet.config.step_gap;
    match event {
        Event::Steady => {}
        Event::ScaleOut => {
            if let Some(g) = spare {
                fleet.live.push(g);
                fleet.publish();
            }
        }
        Event::ScaleIn => {
            if let Some(last) = fleet.live.last().map(|g| g.ip) {
                fleet.retire(last).await;
            }
        }
        Event::Rolling => {
            let old: Vec<Ipv4Addr> = fleet.live.iter().map(|g| g.ip).collect();
            for (i, ip) in old.into_iter().enumerate() {
                fleet.join(gateway_ip(n + i)).await?;
                tokio::time::sleep(gap).await;
                fleet.retire(ip).await;
                tokio::time::sleep(gap).await;
            }
        }
        Event::Stopped | Event::Killed => {
            let signal = if event == Event::Stopped {
                nix::sys::signal::Signal::SIGSTOP
            } else {
                nix::sys::signal::Signal::SIGKILL
            };
            if let Some(g) = fleet.live.last() {
                let pid = nix::unistd::Pid::from_raw(g.process.process().pid() as i32);
                let _ = nix::sys::signal::kill(pid, signal);
                fleet.failed = Some(pid);
            }
        }
        Event::RestartSameAddress => {
            // A StatefulSet restarts the highest ordinal first.
            let old: Vec<Ipv4Addr> = fleet.live.iter().rev().map(|g| g.ip).collect();
            for ip in old {
                fleet.retire(ip).await;
                fleet.wait_drained().await;
                fleet.join(ip).await?;
                tokio::time::sleep(gap).await;
            }
        }
    }
    Ok(())
}

/// One event with one mode.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EventRun {
    /// The event.
    pub event: Event,
    /// With or without membership.
    pub mode: Mode,
    /// The load generator's summary.
    pub load: LoadSummary,
    /// Manifest joined with every gateway's sink.
    pub check: CheckReport,
    /// The judged numbers.
    pub row: EventRow,
    /// Gateways' membership counters and their peer clients' exporter counters, summed over
    /// every process of the run.
    pub membership_metrics: Metrics,
    /// How long the event took to play, seconds.
    pub event_secs: f64,
    /// Whether the sinks went quiet before the deadline.
    pub settled: bool,
    /// Whether the agent had resolved every gateway before the load started.
    pub agent_resolved: bool,
    /// How the processes exited.
    pub exits: Vec<ExitReport>,
    /// Wall time, seconds.
    pub wall_secs: f64,
}

/// What an event did to traces, judged from the check and the gateways' counters.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct EventRow {
    /// Error traces.
    pub error: ClassRow,
    /// Slow traces.
    pub slow: ClassRow,
    /// Kept traces (any span arrived).
    pub kept: u64,
    /// Kept traces whose spans arrived at more than one gateway's sink.
    pub kept_on_several: u64,
    /// Traces with a span that arrived more than once.
    pub duplicated: u64,
    /// Spans forwarded between gateways (every reason).
    pub forwarded_spans: u64,
    /// Forwarded bytes, estimated: spans × the workload's bytes per span (gateways count spans,
    /// not bytes).
    pub forwarded_bytes_est: u64,
    /// Spans a gateway could not hand to a peer.
    pub forward_failed_spans: u64,
    /// Forwarded spans the receiving gateways counted (reads end up to 250 ms before an exit,
    /// so a gateway's last receipts may be missing).
    pub received_spans: u64,
    /// Forwarded spans the gateways' peer clients gave up sending (refused, timed out, dropped at
    /// shutdown: `otelcol_exporter_send_failed_spans_total` of the `…/membership` exporters).
    pub peer_send_failed_spans: u64,
    /// Marked batches a gateway refused (sender not a member, say).
    pub marks_refused: u64,
    /// Control messages (claims, redirects, decisions) sent.
    pub control_sent: u64,
    /// Spans sent by the load generator.
    pub spans_sent: u64,
    /// Spans the gateways' spanmetrics connectors counted (summed over every process; each span
    /// should count exactly once).
    pub spanmetrics_spans: u64,
    /// Meets the targets: no error or slow trace partial or lost, < 0.1 % of kept
    /// traces on more than one gateway, no duplicated span.
    pub meets_targets: bool,
}

/// Judges a run: the rows the report shows and whether it meets the targets.
pub fn judge(
    check: &CheckReport,
    metrics: &Metrics,
    spans_sent: u64,
    bytes_per_span: f64,
) -> EventRow {
    let class = |name: &str| check.class(name).cloned().unwrap_or_default();
    let (error, slow, all) = (class("error"), class("slow"), class("all"));
    let kept = all.complete + all.partial;
    let forwarded = sum_of(metrics, "tailgate_membership_forwarded_spans_total", &[]) as u64;
    let failed = sum_of(
        metrics,
        "tailgate_membership_forward_failed_spans_total",
        &[],
    ) as u64;
    let broken = error.partial + error.missing + slow.partial + slow.missing;
    // < 0.1 %: several * 1000 < kept.
    let split_ok = check.split_traces.saturating_mul(1000) < kept.max(1);
    EventRow {
        meets_targets: broken == 0 && split_ok && all.duplicated == 0,
        error,
        slow,
        kept,
        kept_on_several: check.split_traces,
        duplicated: all.duplicated,
        forwarded_spans: forwarded,
        forwarded_bytes_est: (forwarded as f64 * bytes_per_span).round() as u64,
        forward_failed_spans: failed,
        received_spans: sum_of(metrics, "tailgate_membership_received_spans_total", &[]) as u64,
        marks_refused: sum_of(metrics, "tailgate_membership_marks_refused_total", &[]) as u64,
        peer_send_failed_spans: sum_of(
            metrics,
            "otelcol_exporter_send_failed_spans_total",
            &["/membership\""],
        ) as u64,
        control_sent: sum_of(
            metrics,
            "tailgate_membership_control_messages_total",
            &["direction=\"sent\""],
        ) as u64,
        spans_sent,
        spanmetrics_spans: sum_of(metrics, "tailgate_connector_spanmetrics_spans_total", &[])
            as u64,
    }
}

/// Runs one event with one mode.
pub async fn run_one(
    ctx: &ScenarioContext,
    config: &ScaleConfig,
    event: Event,
    mode: Mode,
    ui: Ui,
) -> Result<EventRun, ScenarioError> {
    let started = Instant::now();
    let n = config.gateways;
    let tag = format!(
        "{}-{}",
        event.name(),
        match mode {
            Mode::Membership => "membership",
            Mode::Plain => "plain",
        }
    );
    // Addresses this run may use: the initial ones, one spare, and a new one per rolled gateway.
    let ips: Vec<Ipv4Addr> = (0..2 * n + 1).map(gateway_ip).collect();
    let port = common_port(&ips)?;
    let initial = event.initial(n);
    // The first gateways are listed from the start, so each finds the others on its first query.
    let listed: Vec<Ipv4Addr> = (0..initial).map(gateway_ip).collect();
    let dns = DnsServer::start(HOSTNAME, &listed)
        .await
        .map_err(|e| ScenarioError::Setup(format!("cannot start the DNS server: {e}")))?;
    let discovery = DnsDiscovery {
        hostname: HOSTNAME.into(),
        port,
        dns_server: dns.addr,
        interval: config.resolver_interval,
    };
    let step = ui.step(format!("{tag}: starting {initial} gateways and an agent"));
    let mut fleet = Fleet {
        ctx,
        config,
        mode,
        tag: tag.clone(),
        discovery,
        dns,
        live: Vec::new(),
        draining: JoinSet::new(),
        stopped: Vec::new(),
        started: 0,
        failed: None,
        health: event.is_failure() && mode == Mode::Membership,
    };
    for i in 0..initial {
        let g = fleet.start(gateway_ip(i)).await?;
        fleet.live.push(g);
    }
    fleet.publish();
    // Scale-out's gateway is up before DNS lists it, as a pod is ready before its endpoint is.
    let spare = match event {
        Event::ScaleOut => Some(fleet.start(gateway_ip(n)).await?),
        _ => None,
    };
    let agent = Tailgate::start(
        &ctx.tailgate,
        &ctx.work_dir,
        &format!("{tag}-agent"),
        &{
            let mut agent = configs::agent_dns(&fleet.discovery);
            if fleet.health {
                agent["exporters"]["loadbalancing"]["tailgate"]["endpoint_health"] =
                    configs::endpoint_health();
            }
            agent
        },
        Some(topology::cpu_for(0)),
        START_DEADLINE,
    )
    .await?;
    let agent_resolved = wait_for_backends(&agent, initial).await;
    // The gateways resolve each other on the same interval; one more interval lets them agree.
    tokio::time::sleep(config.resolver_interval).await;
    step.done(if agent_resolved {
        ""
    } else {
        "the agent did not list every gateway"
    });

    let stop = Arc::new(AtomicBool::new(false));
    let load = LoadConfig {
        targets: vec![agent.grpc_addr()],
        connections: 2,
        rate: Rate::SpansPerSecond(config.spans_per_sec()),
        // A safety net: the run ends the load through `stop`.
        duration: Some(Duration::from_secs(600)),
        max_spans: None,
        workload: config.workload.clone(),
        stop: Some(stop.clone()),
        ..LoadConfig::new(agent.grpc_addr())
    };
    let load_task = tokio::spawn(loadgen::run(load));
    let step = ui.step(format!(
        "{tag}: load, then {} after {:?}",
        event.name(),
        config.before
    ));
    tokio::time::sleep(config.before).await;
    let event_start = Instant::now();
    let played = play(event, &mut fleet, spare).await;
    let event_secs = event_start.elapsed().as_secs_f64();
    tokio::time::sleep(config.after).await;
    stop.store(true, Ordering::Relaxed);
    let load = load_task
        .await
        .map_err(|e| ScenarioError::Setup(format!("the load task failed: {e}")))??;
    step.done(format!("event took {event_secs:.1} s"));
    played?;

    let step = ui.step(format!("{tag}: agent flushes, gateways decide"));
    let load_end = Instant::now();
    let mut exits = vec![agent.stop(STOP_DEADLINE).await];
    // With membership a trace's decision may wait until first_seen + grace.
    let wait = match mode {
        Mode::Membership => config.grace,
        Mode::Plain => config.sampling.decision_wait,
    } + 2 * configs::batch_timeout();
    let live_sinks: Vec<&Sink> = fleet.live.iter().map(|g| &g.sink).collect();
    let settled = settle_refs(
        &live_sinks,
        load_end + wait,
        Duration::from_millis(800),
        load_end + wait + Duration::from_secs(30),
    )
    .await;
    step.done(if settled {
        ""
    } else {
        "still receiving; gave up"
    });
    fleet.wait_drained().await;
    fleet.finish().await;

    let mut metrics = Metrics::new();
    let mut observations = Vec::new();
    for (i, s) in fleet.stopped.into_iter().enumerate() {
        exits.push(s.exit);
        add_metrics(&mut metrics, &s.metrics);
        observations.push(SinkObservations {
            name: format!("{tag}-gateway-{i}"),
            keys: s.sink.take().keys,
        });
        s.sink.shutdown().await;
    }
    let check = check::check(&load.manifest, &observations);
    let bps =
        super::throughput::bytes_per_span(&config.workload, crate::gen::CorpusKind::Synthetic);
    let mut row = judge(
        &check,
        &metrics,
        load.summary.spans_ok + load.summary.spans_failed,
        bps,
    );
    if event.is_failure() {
        row.meets_targets =
            row.duplicated == 0 && check.split_traces.saturating_mul(1000) < row.kept.max(1);
    }
    metrics.retain(|k, _| {
        k.starts_with("tailgate_membership_")
            || k.contains("/membership\"")
            || k.starts_with("tailgate_connector_spanmetrics_spans_total")
    });
    Ok(EventRun {
        event,
        mode,
        load: load.summary,
        check,
        row,
        membership_metrics: metrics,
        event_secs,
        settled,
        agent_resolved,
        exits,
        wall_secs: started.elapsed().as_secs_f64(),
    })
}

/// [`settle`] over borrowed sinks.
async fn settle_refs(sinks: &[&Sink], earliest: Instant, quiet: Duration, latest: Instant) -> bool {
    let received = || sinks.iter().map(|s| s.stats().accepted_spans).sum::<u64>();
    let mut last = received();
    let mut last_change = Instant::now();
    loop {
        let now = Instant::now();
        if now >= earliest && now.duration_since(last_change) >= quiet {
            return true;
        }
        if now >= latest {
            return false;
        }
        // Polling: the processes in between offer no signal for "everything decided and sent".
        tokio::time::sleep(Duration::from_millis(50)).await;
        let n = received();
        if n != last {
            last = n;
            last_change = Instant::now();
        }
    }
}

/// Runs every event with every mode.
pub async fn run(
    ctx: &ScenarioContext,
    config: &ScaleConfig,
    ui: Ui,
) -> Result<ScenarioOutput, ScenarioError> {
    let mut runs = Vec::new();
    for &event in &config.events {
        for &mode in &config.modes {
            runs.push(run_one(ctx, config, event, mode, ui).await?);
        }
    }
    let markdown = markdown(config, &runs);
    let json = serde_json::json!({ "config": config, "runs": runs });
    Ok(ScenarioOutput {
        name: "scale".into(),
        markdown,
        json,
    })
}

fn frac(n: u64, of: u64) -> String {
    if of == 0 {
        return "–".into();
    }
    format!("{n} / {of}")
}

/// One markdown table per event, membership and plain side by side.
pub fn markdown(config: &ScaleConfig, runs: &[EventRun]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} gateways, {:.0} traces/s ({:.0} spans/s; {:.0} % error, {:.0} % slow traces), \
         decision_wait {:?}, grace {:?}, resolver interval {:?}; load {:?} before each event and \
         {:?} after it.\n",
        config.gateways,
        config.traces_per_sec,
        config.spans_per_sec(),
        100.0 * config.workload.shape.error_rate,
        100.0 * config.workload.shape.slow_rate,
        config.sampling.decision_wait,
        config.grace,
        config.resolver_interval,
        config.before,
        config.after,
    );
    for &event in &config.events {
        let of: Vec<&EventRun> = runs.iter().filter(|r| r.event == event).collect();
        if of.is_empty() {
            continue;
        }
        let _ = writeln!(s, "**{}**\n", event.name());
        let _ = write!(s, "| |");
        for r in &of {
            let _ = write!(s, " {} |", r.mode.title());
        }
        let _ = write!(s, "\n|---|");
        for _ in &of {
            let _ = write!(s, "---:|");
        }
        let _ = writeln!(s);
        let mut row = |label: &str, f: &dyn Fn(&EventRun) -> String| {
            let _ = write!(s, "| {label} |");
            for r in &of {
                let _ = write!(s, " {} |", f(r));
            }
            let _ = writeln!(s);
        };
        for name in ["error", "slow"] {
            row(&format!("{name} traces whole / partial / lost"), &|r| {
                let c = if name == "error" {
                    &r.row.error
                } else {
                    &r.row.slow
                };
                format!("{} / {} / {}", c.complete, c.partial, c.missing)
            });
        }
        row("kept traces on more than one gateway", &|r| {
            frac(r.row.kept_on_several, r.row.kept)
        });
        row("traces with duplicated spans", &|r| {
            r.row.duplicated.to_string()
        });
        row("spans forwarded between gateways", &|r| {
            format!(
                "{} ({:.1} % of {} sent)",
                r.row.forwarded_spans,
                100.0 * r.row.forwarded_spans as f64 / r.row.spans_sent.max(1) as f64,
                r.row.spans_sent
            )
        });
        row("bytes forwarded (≈ spans × bytes/span)", &|r| {
            format!("{:.0} kB", r.row.forwarded_bytes_est as f64 / 1e3)
        });
        row("forwarded spans received by a gateway", &|r| {
            r.row.received_spans.to_string()
        });
        row(
            "forwarded but never received (forwarded − received)",
            &|r| {
                r.row
                    .forwarded_spans
                    .saturating_sub(r.row.received_spans)
                    .to_string()
            },
        );
        row("forwarded spans peers' clients gave up on", &|r| {
            r.row.peer_send_failed_spans.to_string()
        });
        row("marked batches refused", &|r| {
            r.row.marks_refused.to_string()
        });
        row("control messages sent (claims, …)", &|r| {
            r.row.control_sent.to_string()
        });
        row("forwards that failed (spans)", &|r| {
            r.row.forward_failed_spans.to_string()
        });
        row("spans refused or lost on the way in", &|r| {
            r.load.spans_failed.to_string()
        });
        row("spanmetrics: spans counted / sent", &|r| {
            format!("{} / {}", r.row.spanmetrics_spans, r.row.spans_sent)
        });
        row("processes exited cleanly", &|r| {
            let clean = r.exits.iter().filter(|e| e.clean()).count();
            format!("{clean} / {}", r.exits.len())
        });
        row("event took", &|r| format!("{:.1} s", r.event_secs));
        let target = if event.is_failure() {
            "meets the issue's targets (a failed gateway: no split among the others, no duplicates)"
        } else {
            "meets the issue's targets"
        };
        row(target, &|r| {
            if r.row.meets_targets { "yes" } else { "**no**" }.to_string()
        });
        let _ = writeln!(s);
    }
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn class(name: &str, complete: u64, partial: u64, missing: u64) -> ClassRow {
        ClassRow {
            class: name.into(),
            traces: complete + partial + missing,
            complete,
            partial,
            missing,
            ..ClassRow::default()
        }
    }

    fn report(error: ClassRow, slow: ClassRow, all: ClassRow, split: u64) -> CheckReport {
        CheckReport {
            classes: vec![error, slow, all],
            split_traces: split,
            ..CheckReport::default()
        }
    }

    const TEXT: &str = "# HELP tailgate_membership_forwarded_spans_total Spans.\n\
        # TYPE tailgate_membership_forwarded_spans_total counter\n\
        tailgate_membership_forwarded_spans_total{processor=\"tail_sampling\",reason=\"not_owner\"} 120\n\
        tailgate_membership_forwarded_spans_total{processor=\"tail_sampling\",reason=\"claim\"} 30\n\
        tailgate_membership_forward_failed_spans_total{processor=\"tail_sampling\",reason=\"queue_full\"} 2\n\
        otelcol_loadbalancer_num_backends{resolver=\"dns\"} 3\n\
        broken_line_without_value\n\
        odd{a=\"b c\"} not-a-number\n";

    #[test]
    fn metrics_text_is_parsed_and_summed_by_name_and_labels() {
        let m = parse_metrics(TEXT);
        assert_eq!(m.len(), 4, "{m:?}");
        let fwd = "tailgate_membership_forwarded_spans_total";
        assert_eq!(sum_of(&m, fwd, &[]), 150.0);
        assert_eq!(sum_of(&m, fwd, &["reason=\"claim\""]), 30.0);
        assert_eq!(
            sum_of(&m, "tailgate_membership_forwarded", &[]),
            0.0,
            "whole names only"
        );
        assert_eq!(sum_of(&m, "otelcol_loadbalancer_num_backends", &[]), 3.0);
        let mut total = m.clone();
        add_metrics(&mut total, &m);
        assert_eq!(sum_of(&total, fwd, &[]), 300.0);
    }

    #[test]
    fn a_clean_event_meets_the_targets() {
        let r = report(
            class("error", 50, 0, 0),
            class("slow", 40, 0, 0),
            class("all", 1000, 0, 0),
            0,
        );
        let row = judge(&r, &parse_metrics(TEXT), 10_000, 200.0);
        assert!(row.meets_targets, "{row:?}");
        assert_eq!(
            (row.kept, row.forwarded_spans, row.forward_failed_spans),
            (1000, 150, 2)
        );
        assert_eq!(row.forwarded_bytes_est, 30_000);
    }

    #[test]
    fn a_partial_or_lost_error_or_slow_trace_fails_the_targets() {
        let all = class("all", 1000, 0, 0);
        let partial = report(
            class("error", 49, 1, 0),
            class("slow", 40, 0, 0),
            all.clone(),
            0,
        );
        assert!(!judge(&partial, &Metrics::new(), 1, 1.0).meets_targets);
        let lost = report(class("error", 50, 0, 0), class("slow", 39, 0, 1), all, 0);
        assert!(!judge(&lost, &Metrics::new(), 1, 1.0).meets_targets);
    }

    #[test]
    fn kept_on_several_gateways_fails_at_a_tenth_of_a_percent() {
        let ok = |split| {
            let r = report(
                class("error", 1, 0, 0),
                class("slow", 1, 0, 0),
                class("all", 2000, 0, 0),
                split,
            );
            judge(&r, &Metrics::new(), 1, 1.0).meets_targets
        };
        assert!(ok(1), "1 in 2000 is 0.05 %");
        assert!(!ok(2), "2 in 2000 is 0.1 %");
        let mut dup = class("all", 2000, 0, 0);
        dup.duplicated = 1;
        let r = report(class("error", 1, 0, 0), class("slow", 1, 0, 0), dup, 0);
        assert!(
            !judge(&r, &Metrics::new(), 1, 1.0).meets_targets,
            "a duplicated span fails"
        );
    }

    #[test]
    fn events_start_with_the_right_number_of_gateways() {
        assert_eq!(Event::ScaleIn.initial(3), 4);
        assert_eq!(Event::Stopped.initial(3), 3);
        assert!(Event::Stopped.is_failure() && Event::Killed.is_failure());
        assert!(!Event::RestartSameAddress.is_failure());
        assert_eq!(Event::ScaleOut.initial(3), 3);
        assert_eq!(Event::Rolling.initial(3), 3);
        assert_eq!(gateway_ip(0), Ipv4Addr::new(127, 0, 0, 2));
    }
}
