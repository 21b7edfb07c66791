//! The per-core sending queue of the `otlp` and `otlphttp` exporters: a bounded queue drained by
//! `num_consumers` tasks that export through a [`Transport`] with retry and exponential backoff.

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

/// Counters of one exporter on one core.
#[derive(Clone)]
pub struct ExporterMetrics {
    /// `otelcol_exporter_sent_spans_total`.
    pub sent: Local,
    /// `otelcol_exporter_send_failed_spans_total`.
    pub send_failed: Local,
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
        let mut gauge_labels = labels.to_vec();
        let data_type = signal.to_string();
        gauge_labels.push(("data_type", &data_type));
        let gauge = |metric: &str, help| {
            registry
                .register(metric, help, Kind::Gauge, &gauge_labels)
                .local(core)
        };
        let items = signal.items();
        ExporterMetrics {
            sent: counter(
                &format!("otelcol_exporter_sent_{items}_total"),
                "Items successfully sent to destination.",
            ),
            send_failed: counter(
                &format!("otelcol_exporter_send_failed_{items}_total"),
                "Items in failed attempts to send to destination.",
            ),
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
    for i in 0..consumers.max(1) {
        let worker = Worker {
            busy: busy.clone(),
            pending_spans: pending_spans.clone(),
            rx: rx.clone(),
            client: client.clone(),
            retry: retry.clone(),
            metrics: metrics.clone(),
            name: name.clone(),
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
        self.metrics.send_failed.add(spans);
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
                self.metrics.send_failed.add(spans);
                tracing::warn!(exporter = %self.name, spans, "sending queue is full: dropping");
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
        let started = Instant::now();
        let mut interval = self.retry.initial_interval.0;
        loop {
            let err = match self.client.send(&data.body).await {
                Ok(()) => {
                    self.metrics.sent.add(data.items);
                    return;
                }
                Err(e) => e,
            };
            let max_elapsed = self.retry.max_elapsed_time.0;
            let give_up = !err.retryable
                || !self.retry.enabled
                || (!max_elapsed.is_zero() && started.elapsed() >= max_elapsed);
            if give_up {
                self.metrics.send_failed.add(data.items);
                tracing::warn!(exporter = %self.name, spans = data.items, retryable = err.retryable, "dropping spans: {}", err.message);
                return;
            }
            // exporterhelper waits the longer of its backoff and the server's throttle delay.
            let backoff = self.jitter(interval);
            let wait = err.throttle.map_or(backoff, |t| t.max(backoff));
            tracing::debug!(exporter = %self.name, ?wait, "export failed, retrying: {}", err.message);
            glommio::timer::Timer::new(wait).await;
            interval = Duration::from_secs_f64(
                (interval.as_secs_f64() * self.retry.multiplier)
                    .min(self.retry.max_interval.0.as_secs_f64()),
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
