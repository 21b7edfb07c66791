//! The load generator's runtime: paces a [`Workload`] onto h2 connections and measures answers.
//!
//! One producer task generates and frames requests, asks the [`Pacer`] when each may go, and
//! hands them round-robin to the connections (so one trace's spans, spread over requests by the
//! workload's interleaving, also spread over connections). Each connection runs up to
//! `in_flight` exports at once and records latency in an HDR histogram. The run ends after
//! `duration` or `max_spans`; then open traces are drained so that the manifest holds exactly
//! the spans sent.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hdrhistogram::Histogram;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::gen::{CorpusKind, ReplayPool, Workload, WorkloadConfig};
use crate::grpc::{self, Compression};
use crate::manifest::ManifestEntry;
use crate::pace::{Clock, MonotonicClock, Pace, Pacer, Rate};
use crate::sender::{SendError, Sender, SenderConfig};

/// Everything a load run needs.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// OTLP/gRPC endpoints to send to. Connection `i` goes to `targets[i % targets.len()]`, and
    /// requests go round-robin over connections: with several targets this is naive round-robin
    /// load balancing (what a plain L4/L7 balancer in front of gateways does).
    pub targets: Vec<SocketAddr>,
    /// TCP connections (h2), requests go round-robin over them. At least one per target.
    pub connections: u32,
    /// Concurrent requests per connection.
    pub in_flight: u32,
    /// Target rate.
    pub rate: Rate,
    /// Stop opening traces after this long.
    pub duration: Option<Duration>,
    /// Stop opening traces once this many spans were made.
    pub max_spans: Option<u64>,
    /// Request compression.
    pub compression: Compression,
    /// Per-request deadline.
    pub timeout: Duration,
    /// Trace shapes and interleaving.
    pub workload: WorkloadConfig,
    /// Build this many requests once and replay them with fresh trace IDs (fast; see
    /// [`crate::gen::replay`]) instead of generating every request live.
    pub replay_pool: Option<usize>,
    /// What the replay pool is built from: the synthetic `workload` or the realistic corpus (from
    /// `workload`'s seed, spans per request and slow threshold); the realistic corpus is only
    /// replayed, so it needs `replay_pool`.
    pub corpus: CorpusKind,
    /// Show a live progress line (indicatif) on stderr.
    pub progress: bool,
    /// Counters to update while running (for a caller that samples them, e.g. to plot the rate
    /// over time); a fresh set when `None`.
    pub counters: Option<Arc<LoadCounters>>,
    /// Stop opening traces once this is set (a caller whose own schedule decides when the load
    /// ends, e.g. after a scenario's event has played out); open traces are then drained.
    pub stop: Option<Arc<std::sync::atomic::AtomicBool>>,
}

impl LoadConfig {
    /// A small run against `target`: defaults with 10 000 spans, unlimited rate, no progress bar.
    pub fn new(target: SocketAddr) -> Self {
        LoadConfig {
            targets: vec![target],
            connections: 2,
            in_flight: 4,
            rate: Rate::Unlimited,
            duration: None,
            max_spans: Some(10_000),
            compression: Compression::None,
            timeout: Duration::from_secs(30),
            workload: WorkloadConfig::default(),
            replay_pool: None,
            corpus: CorpusKind::Synthetic,
            progress: false,
            counters: None,
            stop: None,
        }
    }
}

/// Numbers from one load run.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct LoadSummary {
    /// Spans in requests answered OK.
    pub spans_ok: u64,
    /// Spans in requests answered with an error status or lost to a transport error.
    pub spans_failed: u64,
    /// Requests answered OK.
    pub requests_ok: u64,
    /// Requests answered with a non-OK gRPC status.
    pub requests_refused: u64,
    /// Requests without an answer (connection error, deadline).
    pub requests_lost: u64,
    /// Traces sent (manifest entries).
    pub traces: u64,
    /// Wall time from first send to last answer, seconds.
    pub elapsed_secs: f64,
    /// spans_ok / elapsed.
    pub spans_per_sec: f64,
    /// Request latency percentiles, microseconds: p50, p90, p99, p99.9, max.
    pub latency_us: BTreeMap<String, u64>,
    /// Answers by gRPC status (or `transport`).
    pub statuses: BTreeMap<String, u64>,
    /// Schedule time skipped because sending fell behind the target rate, seconds.
    pub pacer_lag_secs: f64,
    /// Request latency per second of the run (by when the request was sent), for plots over time.
    pub latency_timeline: Vec<LatencyPoint>,
}

/// Latency of the requests sent during one second of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct LatencyPoint {
    /// Seconds since the run started (start of the one-second window).
    pub second: u32,
    /// Requests answered that were sent in this window.
    pub requests: u64,
    /// Median round trip, microseconds.
    pub p50_us: u64,
    /// 99th percentile round trip, microseconds.
    pub p99_us: u64,
}

/// Per-second windows kept at most (an hour): later requests fall into the last window.
const TIMELINE_SECONDS: usize = 3600;

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The replay pool could not be built.
    #[error(transparent)]
    Replay(#[from] crate::gen::replay::ReplayError),
    /// The realistic corpus was asked for without a replay pool (it is never generated live: a
    /// corpus request costs milliseconds to make).
    #[error("the realistic corpus is replayed only: give a replay pool")]
    LiveCorpus,
    /// No target was given.
    #[error("no target to send to")]
    NoTarget,
    /// Could not connect to a target.
    #[error("cannot connect to {target}: {source}")]
    Connect {
        /// The target.
        target: SocketAddr,
        /// The cause.
        source: SendError,
    },
}

/// The result of [`run`]: the summary and the ground truth of every trace sent.
#[derive(Debug, Clone)]
pub struct LoadOutcome {
    /// Numbers.
    pub summary: LoadSummary,
    /// One entry per trace sent.
    pub manifest: Vec<ManifestEntry>,
}

/// Live counters shared by the connections, the progress line and whoever else watches a run.
#[derive(Debug, Default)]
pub struct LoadCounters {
    spans_ok: AtomicU64,
    spans_failed: AtomicU64,
    requests_ok: AtomicU64,
    requests_refused: AtomicU64,
    requests_lost: AtomicU64,
}

impl LoadCounters {
    /// Spans in requests answered OK so far.
    pub fn spans_ok(&self) -> u64 {
        self.spans_ok.load(Ordering::Relaxed)
    }

    /// Spans in requests refused or lost so far.
    pub fn spans_failed(&self) -> u64 {
        self.spans_failed.load(Ordering::Relaxed)
    }
}

/// What a connection task hands back at the end.
struct ConnectionResult {
    latency: Histogram<u64>,
    /// One histogram per second of the run, by send time.
    timeline: Vec<Histogram<u64>>,
    statuses: BTreeMap<String, u64>,
}

/// One request on its way: framed body and span count.
struct Job {
    body: Bytes,
    spans: u64,
}

/// Runs the load; returns once every request was answered.
pub async fn run(config: LoadConfig) -> Result<LoadOutcome, LoadError> {
    let sender_config = SenderConfig {
        compression: config.compression,
        timeout: Some(config.timeout),
        ..SenderConfig::default()
    };
    let source = match (config.replay_pool, config.corpus) {
        (Some(n), kind) => Source::Replay(ReplayPool::of_kind(kind, config.workload.clone(), n)?),
        (None, CorpusKind::Synthetic) => {
            Source::Live(Box::new(Workload::new(config.workload.clone())))
        }
        (None, CorpusKind::Realistic) => return Err(LoadError::LiveCorpus),
    };
    let counters = config.counters.clone().unwrap_or_default();
    let mut queues = Vec::new();
    let mut connections = JoinSet::new();
    if config.targets.is_empty() {
        return Err(LoadError::NoTarget);
    }
    let n_connections = config.connections.max(config.targets.len() as u32);
    // Connecting takes a moment; the timeline starts with the first request, close enough.
    let origin = Instant::now();
    for i in 0..n_connections {
        let target = config.targets[i as usize % config.targets.len()];
        let sender = Sender::connect(target, sender_config.clone())
            .await
            .map_err(|source| LoadError::Connect { target, source })?;
        let (tx, rx) = mpsc::channel::<Job>(config.in_flight.max(1) as usize);
        queues.push(tx);
        connections.spawn(drive_connection(
            sender,
            rx,
            config.in_flight.max(1),
            counters.clone(),
            origin,
        ));
    }
    let progress = config
        .progress
        .then(|| Progress::start(counters.clone(), &config));
    let started = Instant::now();
    let (manifest, lag) = produce(&config, source, queues).await;
    let mut latency = new_histogram();
    let mut timeline: Vec<Histogram<u64>> = Vec::new();
    let mut statuses = BTreeMap::new();
    while let Some(done) = connections.join_next().await {
        if let Ok(done) = done {
            let _ = latency.add(&done.latency);
            merge_timeline(&mut timeline, &done.timeline);
            for (k, v) in done.statuses {
                *statuses.entry(k).or_insert(0) += v;
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    if let Some(p) = progress {
        p.finish();
    }
    let mut summary = summarize(
        &counters,
        manifest.len() as u64,
        elapsed,
        &latency,
        statuses,
        lag,
    );
    summary.latency_timeline = timeline_points(&timeline);
    Ok(LoadOutcome { summary, manifest })
}

/// Generates, paces and distributes requests; returns the manifest and the pacer's lag.
async fn produce(
    config: &LoadConfig,
    mut workload: Source,
    queues: Vec<mpsc::Sender<Job>>,
) -> (Vec<ManifestEntry>, Duration) {
    let clock = MonotonicClock::new();
    let origin = Instant::now();
    let mut pacer = Pacer::new(config.rate, clock.now(), Duration::from_millis(100));
    let mut manifest = Vec::new();
    let mut next = 0usize;
    loop {
        let over_time = config.duration.is_some_and(|d| clock.now() >= d);
        let over_spans = config.max_spans.is_some_and(|m| workload.spans_made() >= m);
        let told = config
            .stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed));
        if (over_time || over_spans || told) && !workload.is_stopping() {
            workload.stop();
        }
        let Some((request, spans)) = workload.next_batch() else {
            break;
        };
        manifest.extend(workload.take_finished());
        let spans = u64::from(spans);
        while let Pace::WaitUntil(t) = pacer.poll(clock.now(), spans) {
            tokio::time::sleep_until((origin + t).into()).await;
        }
        let body = grpc::encode_frame(&request, config.compression);
        // Round-robin; a full queue blocks here, which is the open throttle's backpressure.
        let queue = &queues[next % queues.len()];
        next += 1;
        if queue.send(Job { body, spans }).await.is_err() {
            tracing::warn!("loadgen: a connection task ended early");
        }
    }
    (manifest, pacer.lag())
}

/// Where requests come from: generated live, or replayed from a pool.
enum Source {
    Live(Box<Workload>),
    Replay(ReplayPool),
}

impl Source {
    fn next_batch(&mut self) -> Option<(Vec<u8>, u32)> {
        match self {
            Source::Live(w) => w.next_batch(unix_nanos()).map(|b| (b.request, b.spans)),
            Source::Replay(p) => p.next_batch(),
        }
    }

    fn stop(&mut self) {
        match self {
            Source::Live(w) => w.stop(),
            Source::Replay(p) => p.stop(),
        }
    }

    fn is_stopping(&self) -> bool {
        match self {
            Source::Live(w) => w.is_stopping(),
            Source::Replay(p) => p.is_stopping(),
        }
    }

    fn spans_made(&self) -> u64 {
        match self {
            Source::Live(w) => w.spans_made(),
            Source::Replay(p) => p.spans_made(),
        }
    }

    fn take_finished(&mut self) -> Vec<ManifestEntry> {
        match self {
            Source::Live(w) => w.take_finished(),
            Source::Replay(p) => p.take_finished(),
        }
    }
}

async fn drive_connection(
    sender: Sender,
    mut rx: mpsc::Receiver<Job>,
    in_flight: u32,
    counters: Arc<LoadCounters>,
    origin: Instant,
) -> ConnectionResult {
    let mut latency = new_histogram();
    let mut timeline: Vec<Histogram<u64>> = Vec::new();
    let mut statuses = BTreeMap::new();
    let mut calls = JoinSet::new();
    let mut open = true;
    while open || !calls.is_empty() {
        tokio::select! {
            job = rx.recv(), if open && calls.len() < in_flight as usize => match job {
                Some(job) => {
                    let sender = sender.clone();
                    calls.spawn(async move {
                        let t0 = Instant::now();
                        let answer = sender.export_framed(job.body).await;
                        (answer, job.spans, t0, t0.elapsed())
                    });
                }
                None => open = false,
            },
            Some(done) = calls.join_next(), if !calls.is_empty() => {
                let Ok((answer, spans, sent, took)) = done else { continue };
                let micros = took.as_micros().max(1) as u64;
                let _ = latency.record(micros);
                let second = sent.saturating_duration_since(origin).as_secs() as usize;
                let _ = window(&mut timeline, second).record(micros);
                let key = match &answer {
                    Ok(a) => a.status.to_string(),
                    Err(_) => "transport".to_string(),
                };
                *statuses.entry(key).or_insert(0) += 1;
                let (requests, span_counter) = match answer {
                    Ok(a) if a.is_ok() => (&counters.requests_ok, &counters.spans_ok),
                    Ok(_) => (&counters.requests_refused, &counters.spans_failed),
                    Err(_) => (&counters.requests_lost, &counters.spans_failed),
                };
                requests.fetch_add(1, Ordering::Relaxed);
                span_counter.fetch_add(spans, Ordering::Relaxed);
            }
        }
    }
    ConnectionResult {
        latency,
        timeline,
        statuses,
    }
}

/// The histogram of `second` (capped at [`TIMELINE_SECONDS`]), created on first use.
fn window(timeline: &mut Vec<Histogram<u64>>, second: usize) -> &mut Histogram<u64> {
    let i = second.min(TIMELINE_SECONDS - 1);
    while timeline.len() <= i {
        timeline.push(new_histogram());
    }
    &mut timeline[i]
}

/// Adds a connection's per-second histograms into the run's.
fn merge_timeline(into: &mut Vec<Histogram<u64>>, from: &[Histogram<u64>]) {
    for (second, h) in from.iter().enumerate() {
        let _ = window(into, second).add(h);
    }
}

/// p50 / p99 of every non-empty second.
fn timeline_points(timeline: &[Histogram<u64>]) -> Vec<LatencyPoint> {
    timeline
        .iter()
        .enumerate()
        .filter(|(_, h)| !h.is_empty())
        .map(|(second, h)| LatencyPoint {
            second: second as u32,
            requests: h.len(),
            p50_us: h.value_at_quantile(0.5),
            p99_us: h.value_at_quantile(0.99),
        })
        .collect()
}

fn new_histogram() -> Histogram<u64> {
    // 1 µs .. 1 hour at 3 significant digits.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("constant histogram bounds are valid")
}

fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn summarize(
    c: &LoadCounters,
    traces: u64,
    elapsed: f64,
    latency: &Histogram<u64>,
    statuses: BTreeMap<String, u64>,
    lag: Duration,
) -> LoadSummary {
    let spans_ok = c.spans_ok.load(Ordering::Relaxed);
    let mut latency_us = BTreeMap::new();
    if !latency.is_empty() {
        for (name, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p99.9", 0.999)] {
            latency_us.insert(name.to_string(), latency.value_at_quantile(q));
        }
        latency_us.insert("max".to_string(), latency.max());
    }
    LoadSummary {
        spans_ok,
        spans_failed: c.spans_failed.load(Ordering::Relaxed),
        requests_ok: c.requests_ok.load(Ordering::Relaxed),
        requests_refused: c.requests_refused.load(Ordering::Relaxed),
        requests_lost: c.requests_lost.load(Ordering::Relaxed),
        traces,
        elapsed_secs: elapsed,
        spans_per_sec: if elapsed > 0.0 {
            spans_ok as f64 / elapsed
        } else {
            0.0
        },
        latency_us,
        statuses,
        pacer_lag_secs: lag.as_secs_f64(),
        latency_timeline: Vec::new(),
    }
}

// === Progress line ===

/// A spinner line on stderr refreshed from the counters.
struct Progress {
    bar: indicatif::ProgressBar,
    ticker: tokio::task::JoinHandle<()>,
}

impl Progress {
    fn start(counters: Arc<LoadCounters>, config: &LoadConfig) -> Self {
        let bar = match config.max_spans {
            Some(n) if config.duration.is_none() => indicatif::ProgressBar::new(n),
            _ => indicatif::ProgressBar::new_spinner(),
        };
        let style = indicatif::ProgressStyle::with_template(
            "{spinner} {elapsed_precise} {bar:30} {pos}/{len} spans {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        bar.set_style(style);
        let b = bar.clone();
        let ticker = tokio::spawn(async move {
            let started = Instant::now();
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tick.tick().await;
                let ok = counters.spans_ok.load(Ordering::Relaxed);
                let failed = counters.spans_failed.load(Ordering::Relaxed);
                let rate = ok as f64 / started.elapsed().as_secs_f64().max(1e-3);
                b.set_position(ok + failed);
                b.set_message(format!("| {rate:.0} spans/s | failed {failed}"));
            }
        });
        Progress { bar, ticker }
    }

    fn finish(self) {
        self.ticker.abort();
        self.bar.finish();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn timeline_merges_connections_per_second_and_reports_percentiles() {
        let mut a = Vec::new();
        for us in [100, 200, 300] {
            window(&mut a, 0).record(us).unwrap();
        }
        window(&mut a, 2).record(5_000).unwrap();
        let mut b = Vec::new();
        window(&mut b, 0).record(10_000).unwrap();
        let mut run = Vec::new();
        merge_timeline(&mut run, &a);
        merge_timeline(&mut run, &b);
        let points = timeline_points(&run);
        assert_eq!(
            points.len(),
            2,
            "the empty second 1 is left out: {points:?}"
        );
        assert_eq!((points[0].second, points[0].requests), (0, 4));
        assert_eq!(points[0].p50_us, 200);
        assert!(points[0].p99_us >= 9_990, "{points:?}");
        assert_eq!((points[1].second, points[1].requests), (2, 1));
    }

    #[test]
    fn timeline_windows_are_capped() {
        let mut t = Vec::new();
        window(&mut t, 10 * TIMELINE_SECONDS).record(1).unwrap();
        assert_eq!(t.len(), TIMELINE_SECONDS);
        assert_eq!(timeline_points(&t)[0].second as usize, TIMELINE_SECONDS - 1);
    }
}
