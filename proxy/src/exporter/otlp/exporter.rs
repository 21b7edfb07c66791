//! The per-core sending queue of the `otlp` and `otlphttp` exporters: a bounded queue drained by
//! `num_consumers` tasks that export through a [`Transport`] with retry and exponential backoff.
//!
//! Retry follows exporterhelper's retry sender: after a retryable failure the consumer waits the
//! longer of its backoff and the delay the server asked for (RetryInfo, Retry-After), unless that
//! wait would end after the retry budget (`max_elapsed_time` since the first attempt): then the
//! batch is given up at once. A server's delay is untrusted input, so the time arithmetic is
//! checked: an absurd delay is past every budget, never an `Instant` overflow (a panic that
//! `panic = "abort"` turns into the loss of the process).
//!
//! The queue is bounded twice (see [`super::occupancy`]): by `queue_size` in the unit of the
//! collector's `sizer` and by a byte cap that is always on, both counting what is being sent
//! until its send is over. A loadbalancing backend that leaves the routing table is *retired*:
//! its consumers stop retrying and hand what they hold back ([`OtlpExporter::take_orphans`]) for
//! the load balancer to route through the current table.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;
use std::time::{Duration, Instant};

use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};

use super::client::Client;
use super::occupancy::{Admit, Full, Held, Occupancy};
use super::status::ExportError;
use crate::config::common::{QueueShape, RetryOnFailure};
use crate::pipeline::{Consumer, Drain, Hop, LocalFuture, Payload, Refusal, Signal};
use crate::runtime::stop::Latch;
use crate::runtime::time::unless;
use crate::telemetry::logging::WarnGate;
use crate::telemetry::metrics::{Kind, Local, Registry};

/// One attempt to deliver a serialized `ExportTraceServiceRequest`: what the queue's consumers
/// call, so gRPC and OTLP/HTTP share the queue, retry and metrics.
pub trait Transport {
    /// Sends `payload` once; the error says whether a retry may succeed and how long the server
    /// asked to wait.
    fn send(&self, data: &Payload) -> impl Future<Output = Result<(), ExportError>>;
}

impl Transport for Client {
    async fn send(&self, data: &Payload) -> Result<(), ExportError> {
        // Only the membership forwarder sets a hop: everything else leaves unmarked. Marked data
        // never leaves unmarked: a receiver would take it for agent data and forward it again.
        let hop = match data.meta.hop.as_ref().map(crate::pipeline::hop_header) {
            None => None,
            Some(Ok(h)) => Some(h),
            Some(Err(e)) => {
                return Err(ExportError {
                    retryable: false,
                    throttle: None,
                    message: format!("cannot mark a forward: {e}"),
                })
            }
        };
        self.export(&data.body, hop.as_ref()).await
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
    /// The sending queue was full (`queue_size` in the sizer's unit).
    QueueFull,
    /// The sending queue's byte cap (`sending_queue.tailgate.max_bytes_per_core`) was reached.
    QueueBytes,
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
    const ALL: [FailReason; 6] = [
        FailReason::QueueFull,
        FailReason::QueueBytes,
        FailReason::Permanent,
        FailReason::RetryDisabled,
        FailReason::RetryBudget,
        FailReason::Shutdown,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            FailReason::QueueFull => "queue_full",
            FailReason::QueueBytes => "queue_byte_limit",
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
    failed_by_reason: [Local; 6],
    /// `otelcol_exporter_enqueue_failed_spans_total`.
    pub enqueue_failed: Local,
    /// `otelcol_exporter_queue_size`, in the sizer's unit (what is being sent included).
    pub queue_size: Local,
    /// `otelcol_exporter_queue_capacity`, in the sizer's unit.
    pub queue_capacity: Local,
    /// `tailgate_exporter_queue_bytes`: bytes queued or being sent.
    pub queue_bytes: Local,
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
            queue_bytes: gauge(
                "tailgate_exporter_queue_bytes",
                "Bytes of serialized requests in the sending queue or being sent.",
            ),
        }
    }

    /// Counts `spans` given up for `reason` (in both the collector's total and tailgate's split).
    pub fn failed(&self, reason: FailReason, spans: u64) {
        self.send_failed.add(spans);
        self.failed_by_reason[reason as usize].add(spans);
    }
}

/// A request in the queue and what it holds of the queue's limits.
struct Queued {
    data: Payload,
    held: Held,
}

/// What the queue's sending half and its consumers share on one core.
struct QueueState {
    occupancy: Occupancy,
    /// Batches a consumer has taken and not finished (for the shutdown drain).
    busy: Cell<usize>,
    /// Spans queued or being sent (what shutdown reports as lost if the deadline passes).
    pending_spans: Cell<u64>,
    metrics: ExporterMetrics,
    name: String,
    warn: WarnGate,
    /// Set when a loadbalancing backend leaves the table: consumers stop retrying and hand
    /// what they hold to `orphans` instead of sending it.
    retired: Latch,
    /// Requests handed back after retirement, for the load balancer to route again.
    orphans: RefCell<Vec<Payload>>,
}

impl QueueState {
    /// Gives back what a request held once it left the queue for good (sent, failed, orphaned).
    fn finish(&self, items: u64, held: Held) {
        self.occupancy.release(held);
        self.metrics.queue_size.sub(held.size);
        self.metrics.queue_bytes.sub(held.bytes);
        self.pending_spans
            .set(self.pending_spans.get().saturating_sub(items));
    }

    /// Hands `data` back for re-routing (the backend was retired).
    fn orphan(&self, data: Payload, held: Held) {
        self.finish(data.items, held);
        self.orphans.borrow_mut().push(data);
    }
}

/// The queue's sending half, which is what pipelines consume into.
pub struct OtlpExporter {
    queue: LocalSender<Queued>,
    state: Rc<QueueState>,
}

/// Starts the consumers of one exporter on the current core. `max_bytes` is the byte cap,
/// read at each admission (a loadbalancing exporter's backends share one and it changes with
/// their number); `shape.max_bytes` is not used here.
#[allow(clippy::too_many_arguments)]
pub fn start<T: Transport + 'static>(
    name: String,
    client: T,
    retry: RetryOnFailure,
    shape: QueueShape,
    max_bytes: Rc<Cell<u64>>,
    metrics: ExporterMetrics,
    seed: u64,
) -> Rc<OtlpExporter> {
    // Unbounded as a channel: the occupancy bounds it, in the sizer's unit and in bytes.
    let (tx, rx) = local_channel::new_unbounded();
    metrics.queue_capacity.set(shape.capacity);
    let rx = Rc::new(rx);
    let client = Rc::new(client);
    let state = Rc::new(QueueState {
        occupancy: Occupancy::new(&shape, max_bytes),
        busy: Cell::new(0),
        pending_spans: Cell::new(0),
        metrics,
        name,
        warn: WarnGate::new(WARN_INTERVAL),
        retired: Latch::default(),
        orphans: RefCell::default(),
    });
    for i in 0..shape.consumers.max(1) {
        let worker = Worker {
            state: state.clone(),
            rx: rx.clone(),
            client: client.clone(),
            retry: retry.clone(),
            rng: seed ^ (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        };
        glommio::spawn_local(worker.run()).detach();
    }
    Rc::new(OtlpExporter { queue: tx, state })
}

impl OtlpExporter {
    /// Batches waiting in the queue.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Batches queued, being sent, or handed back after retirement and not taken yet.
    pub fn pending(&self) -> usize {
        self.queue.len() + self.state.busy.get() + self.state.orphans.borrow().len()
    }

    /// Bytes queued or being sent.
    pub fn bytes(&self) -> u64 {
        self.state.occupancy.bytes()
    }

    /// Counts the spans still queued or in flight as failed (shutdown deadline passed); returns them.
    pub fn abandon(&self) -> u64 {
        let spans = self.state.pending_spans.replace(0);
        self.state.metrics.failed(FailReason::Shutdown, spans);
        spans
    }

    /// Stops retrying: from now on the consumers hand what they take, and what fails or waits
    /// for a retry, to [`OtlpExporter::take_orphans`] instead (a removed loadbalancing backend).
    /// An attempt already on the wire finishes (cutting it could deliver the spans twice).
    pub fn retire(&self) {
        self.state.retired.set();
    }

    /// Requests handed back since the last call (see [`OtlpExporter::retire`]).
    pub fn take_orphans(&self) -> Vec<Payload> {
        std::mem::take(&mut *self.state.orphans.borrow_mut())
    }

    /// Counts `spans` refused at the queue for `full`, warning at most every 10 s.
    fn refuse(&self, spans: u64, full: Full) -> Refusal {
        let s = &self.state;
        let reason = match full {
            Full::Capacity => FailReason::QueueFull,
            Full::Bytes => FailReason::QueueBytes,
        };
        s.metrics.enqueue_failed.add(spans);
        s.metrics.failed(reason, spans);
        if let Some(quiet) = s.warn.due() {
            tracing::warn!(exporter = %s.name, spans, reason = reason.label(), batches_given_up_since_last_warning = quiet, "sending queue is full: dropping");
        }
        Refusal::QueueFull
    }
}

impl Consumer for OtlpExporter {
    fn consume(&self, data: Payload) -> Result<(), Refusal> {
        let s = &self.state;
        let spans = data.items;
        // A gateway's control message holds no spans but must still be sent: it takes one unit.
        let units = if data.meta.hop.as_ref().is_some_and(Hop::is_control) {
            1
        } else {
            spans
        };
        let held = match s.occupancy.admit(units, data.body.len() as u64) {
            Admit::Taken(held) => held,
            Admit::Empty => return Ok(()),
            Admit::Full(full) => return Err(self.refuse(spans, full)),
        };
        match self.queue.try_send(Queued { data, held }) {
            Ok(()) => {
                s.metrics.queue_size.add(held.size);
                s.metrics.queue_bytes.add(held.bytes);
                s.pending_spans.set(s.pending_spans.get() + spans);
                Ok(())
            }
            Err(_) => {
                // Unbounded: only a closed channel refuses, which a live sender never sees.
                s.occupancy.release(held);
                Err(self.refuse(spans, Full::Capacity))
            }
        }
    }
}

struct Worker<T> {
    state: Rc<QueueState>,
    rx: Rc<LocalReceiver<Queued>>,
    client: Rc<T>,
    retry: RetryOnFailure,
    rng: u64,
}

impl<T: Transport> Worker<T> {
    async fn run(mut self) {
        while let Some(Queued { data, held }) = self.rx.recv().await {
            if self.state.retired.is_set() {
                self.state.orphan(data, held);
                continue;
            }
            self.state.busy.set(self.state.busy.get() + 1);
            let spans = data.items;
            let orphan = self.send(data).await;
            self.state.busy.set(self.state.busy.get() - 1);
            match orphan {
                Some(data) => self.state.orphan(data, held),
                None => self.state.finish(spans, held),
            }
        }
    }

    /// Sends with retries; `Some(data)` when the exporter was retired before the data was
    /// delivered or given up (it is then routed again by the load balancer).
    async fn send(&mut self, data: Payload) -> Option<Payload> {
        // The retry budget's end; `None`: retry forever (0, or a budget past `Instant`'s range).
        let deadline = Some(self.retry.max_elapsed_time.0)
            .filter(|d| !d.is_zero())
            .and_then(|d| Instant::now().checked_add(d));
        let mut interval = self.retry.initial_interval.0;
        loop {
            let err = match self.client.send(&data).await {
                Ok(()) => {
                    self.state.metrics.sent.add(data.items);
                    return None;
                }
                Err(e) => e,
            };
            if self.state.retired.is_set() {
                return Some(data);
            }
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
                Err(reason) => {
                    self.give_up(&data, reason, &err);
                    return None;
                }
            };
            tracing::debug!(exporter = %self.state.name, ?wait, "export failed, retrying: {}", err.message);
            let waited = unless(glommio::timer::Timer::new(wait), self.state.retired.wait()).await;
            if waited.is_none() {
                return Some(data);
            }
            interval = Duration::from_secs_f64(
                (interval.as_secs_f64() * self.retry.multiplier)
                    .min(self.retry.max_interval.0.as_secs_f64()),
            );
        }
    }

    fn give_up(&self, data: &Payload, reason: FailReason, err: &ExportError) {
        self.state.metrics.failed(reason, data.items);
        if let Some(quiet) = self.state.warn.due() {
            tracing::warn!(
                exporter = %self.state.name,
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
}
