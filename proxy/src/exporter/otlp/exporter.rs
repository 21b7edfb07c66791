//! The per-core sending queue of the `otlp` and `otlphttp` exporters: a bounded queue drained by
//! `num_consumers` tasks that export through a [`Transport`] with retry and exponential backoff.
//!
//! Retry follows exporterhelper's retry sender: after a retryable failure the consumer waits the
//! longer of its backoff and the delay the server asked for (RetryInfo, Retry-After), unless that
//! wait would end after the retry budget (`max_elapsed_time` since the first attempt): then the
//! batch is given up at once. A server's delay is untrusted input, so the time arithmetic is
//! checked: an absurd delay is past every budget, never an `Instant` overflow (a panic that
//! `panic = "abort"` turns into the loss of the process).

use std::cell::Cell;
use std::future::Future;
use std::rc::Rc;
use std::time::{Duration, Instant};

use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};

use bytes::Bytes;

use super::client::Client;
use super::status::ExportError;
use crate::config::common::RetryOnFailure;
use crate::pipeline::{Consumer, Drain, LocalFuture, Payload, Refusal, Signal};
use crate::telemetry::metrics::{Kind, Local, Registry};

/// One attempt to deliver a serialized `ExportTraceServiceRequest`: what the queue's consumers
/// call, so gRPC and OTLP/HTTP share the queue, retry and metrics.
pub trait Transport {
    /// Sends `payload` once; the error says whether a retry may succeed and how long the server
    /// asked to wait.
    fn send(&self, payload: &Bytes) -> impl Future<Output = Result<(), ExportError>>;
}

impl Transport for Client {
    fn send(&self, payload: &Bytes) -> impl Future<Output = Result<(), ExportError>> {
        self.export(payload)
    }
}

/// Longest server-asked wait for one retry when `max_elapsed_time` is 0 (retry forever): a
/// consumer asked to wait years (or past `Instant`'s range) tries again hourly instead.
/// The collector would wait what was asked (up to Go's ~292-year `time.Duration`).
pub const MAX_UNBUDGETED_WAIT: Duration = Duration::from_secs(3600);

/// At most one warning per this interval per exporter and core about given-up batches, so an
/// outage does not log a line per batch; the warning says how many were given up since the last.
const WARN_INTERVAL: Duration = Duration::from_secs(10);

/// Why spans were given up: the `reason` label of `tailgate_exporter_send_failed_spans_total`.
/// Every span counted in `otelcol_exporter_send_failed_spans_total` is counted here once too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailReason {
    /// The sending queue was full.
    QueueFull,
    /// The backend answered with a status that is not retried.
    Permanent,
    /// A retryable failure with `retry_on_failure.enabled: false`.
    RetryDisabled,
    /// The next retry would have ended after `max_elapsed_time`.
    RetryBudget,
    /// Still queued or in flight when the shutdown deadline passed.
    Shutdown,
}

impl FailReason {
    /// Every reason, in declaration order (so `ALL[r as usize] == r`).
    const ALL: [FailReason; 5] = [
        FailReason::QueueFull,
        FailReason::Permanent,
        FailReason::RetryDisabled,
        FailReason::RetryBudget,
        FailReason::Shutdown,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            FailReason::QueueFull => "queue_full",
            FailReason::Permanent => "permanent",
            FailReason::RetryDisabled => "retry_disabled",
            FailReason::RetryBudget => "retry_budget",
            FailReason::Shutdown => "shutdown",
        }
    }
}

/// Counters of one exporter on one core.
#[derive(Clone)]
pub struct ExporterMetrics {
    /// `otelcol_exporter_sent_spans_total`.
    pub sent: Local,
    /// `otelcol_exporter_send_failed_spans_total`; add through [`ExporterMetrics::failed`].
    pub send_failed: Local,
    /// `tailgate_exporter_send_failed_spans_total{reason}`, indexed by `FailReason as usize`.
    failed_by_reason: [Local; 5],
    /// `otelcol_exporter_enqueue_failed_spans_total`.
    pub enqueue_failed: Local,
    /// `otelcol_exporter_queue_size` (batches).
    pub queue_size: Local,
    /// `otelcol_exporter_queue_capacity`.
    pub queue_capacity: Local,
}

impl ExporterMetrics {
    /// Registers one exporter's series on `core` for `signal`: counters labelled `labels`, the
    /// queue gauges also `data_type` (as the collector labels them). Registering is idempotent,
    /// so callers that hold one of these series already get the same one.
    pub fn register(
        registry: &Registry,
        core: usize,
        labels: &[(&str, &str)],
        signal: Signal,
    ) -> Self {
        let counter = |metric: &str, help| {
            registry
                .register(metric, help, Kind::Counter, labels)
                .local(core)
        };
        let items = signal.items();
        let failed_by_reason = FailReason::ALL.map(|reason| {
            let mut l = labels.to_vec();
            l.push(("reason", reason.label()));
            registry
                .register(
                    &format!("tailgate_exporter_send_failed_{items}_total"),
                    "Items counted in otelcol_exporter_send_failed_*_total, by reason.",
                    Kind::Counter,
                    &l,
                )
                .local(core)
        });
        let mut gauge_labels = labels.to_vec();
        let data_type = signal.to_string();
        gauge_labels.push(("data_type", &data_type));
        let gauge = |metric: &str, help| {
            registry
                .register(metric, help, Kind::Gauge, &gauge_labels)
                .local(core)
        };
        ExporterMetrics {
            sent: counter(
                &format!("otelcol_exporter_sent_{items}_total"),
                "Items successfully sent to destination.",
            ),
            send_failed: counter(
                &format!("otelcol_exporter_send_failed_{items}_total"),
                "Items in failed attempts to send to destination.",
            ),
            failed_by_reason,
            enqueue_failed: counter(
                &format!("otelcol_exporter_enqueue_failed_{items}_total"),
                "Items failed to be added to the sending queue.",
            ),
            queue_size: gauge(
                "otelcol_exporter_queue_size",
                "Current size of the retry queue (in batches).",
            ),
            queue_capacity: gauge(
                "otelcol_exporter_queue_capacity",
                "Fixed capacity of the retry queue (in batches).",
            ),
        }
    }

    /// Counts `spans` given up for `reason` (in both the collector's total and tailgate's split).
    pub fn failed(&self, reason: FailReason, spans: u64) {
        self.send_failed.add(spans);
        self.failed_by_reason[reason as usize].add(spans);
    }
}

/// Rate-limits the warnings about given-up batches of one exporter on one core.
#[derive(Default)]
struct WarnGate {
    last: Cell<Option<Instant>>,
    /// Batches given up without a warning since the last one.
    quiet: Cell<u64>,
}

impl WarnGate {
    /// `Some(batches given up silently since the last warning)` when a warning is due now.
    fn due(&self) -> Option<u64> {
        let now = Instant::now();
        let due = self
            .last
            .get()
            .is_none_or(|last| now.saturating_duration_since(last) >= WARN_INTERVAL);
        if due {
            self.last.set(Some(now));
            Some(self.quiet.replace(0))
        } else {
            self.quiet.set(self.quiet.get() + 1);
            None
        }
    }
}

/// The queue's sending half, which is what pipelines consume into.
pub struct OtlpExporter {
    queue: LocalSender<Payload>,
    /// Batches a consumer has taken and not finished (for the shutdown drain).
    busy: Rc<Cell<usize>>,
    /// Spans queued or being sent (what shutdown reports as lost if the deadline passes).
    pending_spans: Rc<Cell<u64>>,
    metrics: ExporterMetrics,
    name: String,
    warn: Rc<WarnGate>,
}

/// Starts the consumers of one exporter on the current core.
pub fn start<T: Transport + 'static>(
    name: String,
    client: T,
    retry: RetryOnFailure,
    queue_size: usize,
    consumers: usize,
    metrics: ExporterMetrics,
    seed: u64,
) -> Rc<OtlpExporter> {
    let (tx, rx) = local_channel::new_bounded(queue_size.max(1));
    metrics.queue_capacity.set(queue_size as u64);
    let rx = Rc::new(rx);
    let client = Rc::new(client);
    let busy = Rc::new(Cell::new(0));
    let pending_spans = Rc::new(Cell::new(0));
    let warn = Rc::new(WarnGate::default());
    for i in 0..consumers.max(1) {
        let worker = Worker {
            busy: busy.clone(),
            pending_spans: pending_spans.clone(),
            rx: rx.clone(),
            client: client.clone(),
            retry: retry.clone(),
            metrics: metrics.clone(),
            name: name.clone(),
            warn: warn.clone(),
            rng: seed ^ (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        };
        glommio::spawn_local(worker.run()).detach();
    }
    Rc::new(OtlpExporter {
        queue: tx,
        busy,
        pending_spans,
        metrics,
        name,
        warn,
    })
}

impl OtlpExporter {
    /// Batches waiting in the queue.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Batches queued or being sent.
    pub fn pending(&self) -> usize {
        self.queue.len() + self.busy.get()
    }

    /// Counts the spans still queued or in flight as failed (shutdown deadline passed); returns them.
    pub fn abandon(&self) -> u64 {
        let spans = self.pending_spans.replace(0);
        self.metrics.failed(FailReason::Shutdown, spans);
        spans
    }
}

impl Consumer for OtlpExporter {
    fn consume(&self, data: Payload) -> Result<(), Refusal> {
        let spans = data.items;
        match self.queue.try_send(data) {
            Ok(()) => {
                self.metrics.queue_size.add(1);
                self.pending_spans.set(self.pending_spans.get() + spans);
                Ok(())
            }
            Err(_) => {
                self.metrics.enqueue_failed.add(spans);
                self.metrics.failed(FailReason::QueueFull, spans);
                if let Some(quiet) = self.warn.due() {
                    tracing::warn!(exporter = %self.name, spans, batches_given_up_since_last_warning = quiet, "sending queue is full: dropping");
                }
                Err(Refusal::QueueFull)
            }
        }
    }
}

struct Worker<T> {
    busy: Rc<Cell<usize>>,
    pending_spans: Rc<Cell<u64>>,
    rx: Rc<LocalReceiver<Payload>>,
    client: Rc<T>,
    retry: RetryOnFailure,
    metrics: ExporterMetrics,
    name: String,
    warn: Rc<WarnGate>,
    rng: u64,
}

impl<T: Transport> Worker<T> {
    async fn run(mut self) {
        while let Some(data) = self.rx.recv().await {
            self.metrics.queue_size.sub(1);
            self.busy.set(self.busy.get() + 1);
            let spans = data.items;
            self.send(data).await;
            self.busy.set(self.busy.get() - 1);
            self.pending_spans
                .set(self.pending_spans.get().saturating_sub(spans));
        }
    }

    async fn send(&mut self, data: Payload) {
        // The retry budget's end; `None`: retry forever (0, or a budget past `Instant`'s range).
        let deadline = Some(self.retry.max_elapsed_time.0)
            .filter(|d| !d.is_zero())
            .and_then(|d| Instant::now().checked_add(d));
        let mut interval = self.retry.initial_interval.0;
        loop {
            let err = match self.client.send(&data.body).await {
                Ok(()) => {
                    self.metrics.sent.add(data.items);
                    return;
                }
                Err(e) => e,
            };
            let next = if !err.retryable {
                Err(FailReason::Permanent)
            } else if !self.retry.enabled {
                Err(FailReason::RetryDisabled)
            } else {
                let backoff = self.jitter(interval);
                next_wait(Instant::now(), deadline, backoff, err.throttle)
            };
            let wait = match next {
                Ok(wait) => wait,
                Err(reason) => return self.give_up(&data, reason, &err),
            };
            tracing::debug!(exporter = %self.name, ?wait, "export failed, retrying: {}", err.message);
            glommio::timer::Timer::new(wait).await;
            interval = Duration::from_secs_f64(
                (interval.as_secs_f64() * self.retry.multiplier)
                    .min(self.retry.max_interval.0.as_secs_f64()),
            );
        }
    }

    fn give_up(&self, data: &Payload, reason: FailReason, err: &ExportError) {
        self.metrics.failed(reason, data.items);
        if let Some(quiet) = self.warn.due() {
            tracing::warn!(
                exporter = %self.name,
                spans = data.items,
                reason = reason.label(),
                throttle = ?err.throttle,
                batches_given_up_since_last_warning = quiet,
                "dropping spans: {}",
                err.message
            );
        }
    }

    /// `interval` scaled by a random factor in [1 - r, 1 + r] (xorshift; quality is irrelevant).
    fn jitter(&mut self, interval: Duration) -> Duration {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let unit = (self.rng >> 11) as f64 / (1u64 << 53) as f64;
        let r = self.retry.randomization_factor;
        interval.mul_f64((1.0 - r + 2.0 * r * unit).max(0.0))
    }
}

impl Drain for OtlpExporter {
    fn flush(&self, _until: Instant) -> LocalFuture<'_> {
        // The queue sends on its own; the drain only waits for it.
        Box::pin(std::future::ready(()))
    }

    fn pending(&self) -> usize {
        OtlpExporter::pending(self)
    }

    fn abandon(&self) -> u64 {
        OtlpExporter::abandon(self)
    }
}

/// exporterhelper's rule for the wait before the next attempt: the longer of `backoff` and the
/// server's `throttle`; `Err(RetryBudget)` when that wait would end after `deadline` (or past
/// `Instant`'s range). Without a deadline the server's delay is cut to [`MAX_UNBUDGETED_WAIT`].
fn next_wait(
    now: Instant,
    deadline: Option<Instant>,
    backoff: Duration,
    throttle: Option<Duration>,
) -> Result<Duration, FailReason> {
    let Some(deadline) = deadline else {
        // Only the server's part is cut: the configured backoff is bounded by the config.
        return Ok(throttle.map_or(backoff, |t| t.min(MAX_UNBUDGETED_WAIT).max(backoff)));
    };
    let wait = throttle.map_or(backoff, |t| t.max(backoff));
    match now.checked_add(wait) {
        Some(at) if at <= deadline => Ok(wait),
        _ => Err(FailReason::RetryBudget),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn the_longer_of_backoff_and_throttle_is_waited_within_the_budget() {
        let now = Instant::now();
        let deadline = now.checked_add(300 * SEC);
        assert_eq!(next_wait(now, deadline, 5 * SEC, None), Ok(5 * SEC));
        assert_eq!(next_wait(now, deadline, 5 * SEC, Some(SEC)), Ok(5 * SEC));
        assert_eq!(
            next_wait(now, deadline, 5 * SEC, Some(60 * SEC)),
            Ok(60 * SEC)
        );
        // Ending exactly at the deadline is still in budget (the collector gives up only after).
        assert_eq!(next_wait(now, deadline, 300 * SEC, None), Ok(300 * SEC));
    }

    #[test]
    fn a_wait_past_the_budget_gives_up_now() {
        let now = Instant::now();
        let deadline = now.checked_add(300 * SEC);
        let over = Err(FailReason::RetryBudget);
        assert_eq!(next_wait(now, deadline, 5 * SEC, Some(86_400 * SEC)), over);
        assert_eq!(next_wait(now, deadline, 301 * SEC, None), over);
        // Late in the budget, a backoff that fitted at the start no longer does.
        let late = now.checked_add(299 * SEC).unwrap();
        assert_eq!(next_wait(late, deadline, 5 * SEC, None), over);
    }

    #[test]
    fn absurd_delays_do_not_overflow() {
        let now = Instant::now();
        let deadline = now.checked_add(300 * SEC);
        let over = Err(FailReason::RetryBudget);
        for absurd in [
            Duration::MAX,
            Duration::from_secs(u64::MAX),
            Duration::from_secs(1 << 62),
        ] {
            assert_eq!(next_wait(now, deadline, SEC, Some(absurd)), over);
            assert_eq!(
                next_wait(now, None, SEC, Some(absurd)),
                Ok(MAX_UNBUDGETED_WAIT)
            );
        }
    }

    #[test]
    fn without_a_budget_the_server_is_obeyed_up_to_the_cap() {
        let now = Instant::now();
        assert_eq!(next_wait(now, None, SEC, Some(60 * SEC)), Ok(60 * SEC));
        assert_eq!(next_wait(now, None, 30 * SEC, None), Ok(30 * SEC));
        // The configured backoff is not the server's to cut.
        let long = 2 * MAX_UNBUDGETED_WAIT;
        assert_eq!(next_wait(now, None, long, Some(Duration::MAX)), Ok(long));
        assert_eq!(
            next_wait(now, None, SEC, Some(86_400 * SEC)),
            Ok(MAX_UNBUDGETED_WAIT)
        );
    }

    #[test]
    fn reasons_index_their_counters() {
        for (i, r) in FailReason::ALL.into_iter().enumerate() {
            assert_eq!(r as usize, i, "{}", r.label());
        }
    }

    #[test]
    fn warnings_are_rate_limited_and_count_the_quiet_ones() {
        let gate = WarnGate::default();
        assert_eq!(gate.due(), Some(0));
        assert_eq!(gate.due(), None);
        assert_eq!(gate.due(), None);
        // Pretend the interval passed.
        gate.last.set(Instant::now().checked_sub(WARN_INTERVAL));
        assert_eq!(gate.due(), Some(2));
    }
}
