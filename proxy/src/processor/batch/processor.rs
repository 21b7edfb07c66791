//! The per-core batcher: joins request bodies until `send_batch_size` items or `timeout`.
//!
//! The timeout runs from the first item of a batch: an [`Alarm`] is set for the earliest pending
//! batch's deadline and cleared when nothing waits, so an idle core is never woken and a busy one
//! wakes only for batches the size trigger did not already send.
//!
//! Payloads are batched apart by their metadata as the collector's batch processor does with
//! `metadata_keys`: one batch per distinct combination of those keys' values (at most
//! `metadata_cardinality_limit` at once; beyond it new combinations are refused), and the batch
//! carries only those keys on. A gateway-to-gateway hop marker always keeps its data apart, so a
//! batch never merges forwarded and local data. The client address is not carried past a batch
//! (the collector drops it there too); the received time is the batch's earliest.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;

use super::config::BatchConfig;
use crate::pipeline::{
    wire, Consumer, Drain, Hop, LocalFuture, Metadata, Payload, Refusal, Signal,
};
use crate::runtime::alarm::Alarm;
use crate::telemetry::metrics::{Histogram, Local};

/// Counters of one batch processor on one core.
pub struct BatchMetrics {
    /// `otelcol_processor_batch_batch_size_trigger_send_total`.
    pub size_trigger: Local,
    /// `otelcol_processor_batch_timeout_trigger_send_total`.
    pub timeout_trigger: Local,
    /// `otelcol_processor_batch_batch_send_size`.
    pub send_size: Histogram,
    /// `otelcol_processor_dropped_spans_total`: items the next stage refused after batching.
    pub dropped: Local,
    /// This core's index (for the histogram).
    pub core: usize,
}

/// One batch processor instance on one core.
pub struct Batcher {
    config: BatchConfig,
    next: Rc<dyn Consumer>,
    pending: RefCell<Pending>,
    metrics: BatchMetrics,
    /// Rings `timeout` after the first item of the oldest pending batch.
    alarm: Alarm,
}

/// What separates batches: the hop marker and the values of `metadata_keys`, in key order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
struct BatchKey {
    signal: Option<Signal>,
    hop: Option<Hop>,
    values: Vec<Vec<String>>,
}

/// One batch being filled.
struct Batch {
    /// Concatenated request bodies.
    buf: BytesMut,
    /// Items in `buf`.
    items: u64,
    /// When it must go out (`timeout` after its first item).
    due: Instant,
    /// What the sent batch carries.
    meta: Metadata,
    signal: Signal,
}

#[derive(Default)]
struct Pending {
    batches: HashMap<BatchKey, Batch>,
}

/// What made a batch go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// `send_batch_size` reached.
    Size,
    /// `timeout` elapsed.
    Timeout,
    /// Shutdown flush.
    Shutdown,
}

impl Batcher {
    /// A batcher feeding `next`. Must be made on the core's executor (its timer).
    pub fn new(config: BatchConfig, next: Rc<dyn Consumer>, metrics: BatchMetrics) -> Rc<Batcher> {
        Rc::new(Batcher {
            config,
            next,
            pending: RefCell::new(Pending::default()),
            metrics,
            alarm: Alarm::new(),
        })
    }

    /// The flush period.
    pub fn timeout(&self) -> Duration {
        self.config.timeout.0
    }

    /// Sends every pending batch (shutdown, or a timeout with one batch).
    pub fn flush(&self, trigger: Trigger) {
        self.flush_where(trigger, |_| true);
    }

    /// Sends the batches whose timeout has passed (the timer).
    fn flush_due(&self) {
        let now = Instant::now();
        self.flush_where(Trigger::Timeout, |b| b.due <= now);
    }

    fn flush_where(&self, trigger: Trigger, pick: impl Fn(&Batch) -> bool) {
        let keys: Vec<BatchKey> = self
            .pending
            .borrow()
            .batches
            .iter()
            .filter(|(_, b)| pick(b))
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            self.send_batch(&key, trigger);
        }
        self.rearm();
    }

    /// Sets the alarm for the oldest pending batch, or clears it.
    fn rearm(&self) {
        match self.pending.borrow().batches.values().map(|b| b.due).min() {
            Some(due) => self.alarm.set_at(due),
            None => self.alarm.clear(),
        }
    }

    /// The key `data` is batched under.
    fn key_of(&self, data: &Payload) -> BatchKey {
        BatchKey {
            signal: Some(data.signal),
            hop: data.meta.hop.clone(),
            values: self
                .config
                .metadata_keys
                .iter()
                .map(|k| {
                    data.meta
                        .get(&k.to_ascii_lowercase())
                        .map(str::to_owned)
                        .collect()
                })
                .collect(),
        }
    }

    /// The metadata a batch of `key` carries on: its keys' values and the hop marker.
    fn meta_of(&self, key: &BatchKey, received: Option<Instant>) -> Metadata {
        let headers: Vec<(String, String)> = self
            .config
            .metadata_keys
            .iter()
            .zip(&key.values)
            .flat_map(|(k, vs)| vs.iter().map(move |v| (k.to_ascii_lowercase(), v.clone())))
            .collect();
        Metadata {
            client: None,
            received,
            headers: (!headers.is_empty()).then(|| headers.into()),
            hop: key.hop.clone(),
        }
    }

    /// Takes the batch of `key` out and sends it.
    fn send_batch(&self, key: &BatchKey, trigger: Trigger) {
        let Some(batch) = self.pending.borrow_mut().batches.remove(key) else {
            return;
        };
        match trigger {
            Trigger::Size => self.metrics.size_trigger.add(1),
            Trigger::Timeout | Trigger::Shutdown => self.metrics.timeout_trigger.add(1),
        }
        let whole = Payload {
            signal: batch.signal,
            body: batch.buf.freeze(),
            items: batch.items,
            meta: batch.meta,
        };
        let max = u64::from(self.config.send_batch_max_size);
        if max > 0 && whole.items > max {
            match wire::split(&whole.body, max) {
                Ok(parts) => {
                    for (b, n) in parts {
                        self.send(whole.with_body(b, n));
                    }
                    return;
                }
                // Bodies were walked by the receiver already, so this cannot fail; send whole if it does.
                Err(e) => tracing::error!("batch split failed ({e}); sending unsplit"),
            }
        }
        self.send(whole);
    }

    fn send(&self, data: Payload) {
        let items = data.items;
        self.metrics.send_size.observe(self.metrics.core, items);
        if let Err(r) = self.next.consume(data) {
            // Like the collector's batch processor, errors after batching are logged and counted,
            // not returned: the receiver was already answered.
            self.metrics.dropped.add(items);
            tracing::debug!(items, "batch refused downstream: {}", r.message());
        }
    }

    /// Timeout flush task; runs until the executor stops.
    pub async fn run_timer(self: Rc<Self>) {
        loop {
            self.alarm.ring().await;
            self.flush_due();
        }
    }
}

impl Consumer for Batcher {
    fn consume(&self, data: Payload) -> Result<(), Refusal> {
        let key = self.key_of(&data);
        let full = {
            let mut p = self.pending.borrow_mut();
            let open = p.batches.len();
            let batch = match p.batches.get_mut(&key) {
                Some(b) => b,
                None => {
                    let limit = self.config.metadata_cardinality_limit as usize;
                    if !self.config.metadata_keys.is_empty() && limit > 0 && open >= limit {
                        return Err(Refusal::TooManyBatches);
                    }
                    let due = Instant::now() + self.timeout();
                    self.alarm.set_no_later_than(due);
                    let meta = self.meta_of(&key, data.meta.received);
                    p.batches.entry(key.clone()).or_insert(Batch {
                        buf: BytesMut::new(),
                        items: 0,
                        due,
                        meta,
                        signal: data.signal,
                    })
                }
            };
            batch.buf.extend_from_slice(&data.body);
            batch.items += data.items;
            if let (Some(r), Some(b)) = (data.meta.received, batch.meta.received) {
                batch.meta.received = Some(r.min(b));
            }
            batch.items >= u64::from(self.config.send_batch_size)
        };
        if full {
            self.send_batch(&key, Trigger::Size);
            self.rearm();
        }
        Ok(())
    }
}

impl Drain for Batcher {
    fn flush(&self, _until: Instant) -> LocalFuture<'_> {
        Batcher::flush(self, Trigger::Shutdown);
        Box::pin(std::future::ready(()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::config::duration::GoDuration;
    use crate::telemetry::metrics::{Kind, Registry};
    use bytes::Bytes;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use prost::Message;

    #[derive(Default)]
    struct Sink(RefCell<Vec<Payload>>);
    impl Consumer for Sink {
        fn consume(&self, data: Payload) -> Result<(), Refusal> {
            self.0.borrow_mut().push(data);
            Ok(())
        }
    }

    fn req(n: usize) -> Payload {
        let r = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span::default(); n],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        Payload::traces(Bytes::from(r.encode_to_vec()), n as u64)
    }

    fn batcher(size: u32, max: u32, sink: Rc<Sink>) -> Rc<Batcher> {
        batcher_with(
            BatchConfig {
                send_batch_size: size,
                send_batch_max_size: max,
                timeout: GoDuration(Duration::from_secs(1)),
                ..Default::default()
            },
            sink,
        )
    }

    fn batcher_with(cfg: BatchConfig, sink: Rc<Sink>) -> Rc<Batcher> {
        let reg = Registry::new(1);
        let m = |n| reg.register(n, "h", Kind::Counter, &[]).local(0);
        Batcher::new(
            cfg,
            sink,
            BatchMetrics {
                size_trigger: m("a"),
                timeout_trigger: m("b"),
                send_size: reg.histogram("c", "h", &[], &[10.0]),
                dropped: m("d"),
                core: 0,
            },
        )
    }

    use crate::runtime::on_test_executor as on_executor;

    #[test]
    fn flushes_on_size_and_splits_at_max() {
        on_executor(async { size_and_max() });
    }

    fn size_and_max() {
        let sink = Rc::new(Sink::default());
        let b = batcher(10, 12, sink.clone());
        b.consume(req(4)).unwrap();
        assert!(sink.0.borrow().is_empty());
        b.consume(req(4)).unwrap();
        b.consume(req(7)).unwrap();
        let sizes: Vec<u64> = sink.0.borrow().iter().map(|d| d.items).collect();
        assert_eq!(sizes, vec![12, 3]);
        for d in sink.0.borrow().iter() {
            assert_eq!(wire::count_spans(&d.body).unwrap(), d.items);
        }
        b.consume(req(2)).unwrap();
        b.flush(Trigger::Timeout);
        assert_eq!(sink.0.borrow().last().unwrap().items, 2);
        b.flush(Trigger::Timeout);
        assert_eq!(sink.0.borrow().len(), 3);
    }

    #[test]
    fn timeout_runs_from_the_first_span_and_only_when_data_waits() {
        on_executor(async {
            let sink = Rc::new(Sink::default());
            // A short timeout for the test.
            let b = batcher_with(
                BatchConfig {
                    send_batch_size: 100,
                    timeout: GoDuration(Duration::from_millis(30)),
                    ..Default::default()
                },
                sink.clone(),
            );
            glommio::spawn_local(b.clone().run_timer()).detach();
            // Nothing pending: no alarm.
            assert_eq!(b.alarm.due(), None);
            let start = std::time::Instant::now();
            b.consume(req(3)).unwrap();
            let due = b.alarm.due().unwrap();
            assert!(due >= start + Duration::from_millis(30));
            // More data does not move it.
            b.consume(req(3)).unwrap();
            assert_eq!(b.alarm.due(), Some(due));
            while sink.0.borrow().is_empty() {
                glommio::timer::Timer::new(Duration::from_millis(5)).await;
            }
            assert!(std::time::Instant::now() >= due);
            assert_eq!(sink.0.borrow()[0].items, 6);
            assert_eq!(b.alarm.due(), None);
            // A size trigger empties the batch and clears the alarm.
            b.consume(req(100)).unwrap();
            assert_eq!(sink.0.borrow().len(), 2);
            assert_eq!(b.alarm.due(), None);
        });
    }

    fn with_meta(n: usize, tenant: &str, hop: Option<Hop>) -> Payload {
        let mut p = req(n);
        p.meta = Metadata {
            client: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 4000))),
            received: Some(Instant::now()),
            headers: Some(
                vec![
                    ("x-tenant".to_owned(), tenant.to_owned()),
                    ("x-other".to_owned(), "o".to_owned()),
                ]
                .into(),
            ),
            hop,
        };
        p
    }

    fn keyed(keys: &[&str], limit: u32, sink: Rc<Sink>) -> Rc<Batcher> {
        batcher_with(
            BatchConfig {
                send_batch_size: 10,
                metadata_keys: keys.iter().map(|k| (*k).to_owned()).collect(),
                metadata_cardinality_limit: limit,
                ..Default::default()
            },
            sink,
        )
    }

    #[test]
    fn metadata_keys_keep_batches_apart_and_carry_only_those_keys() {
        on_executor(async {
            let sink = Rc::new(Sink::default());
            let b = keyed(&["X-Tenant"], 2, sink.clone());
            b.consume(with_meta(3, "a", None)).unwrap();
            b.consume(with_meta(4, "b", None)).unwrap();
            b.consume(with_meta(2, "a", None)).unwrap();
            // A third combination while two batches wait: refused, retryably.
            assert_eq!(
                b.consume(with_meta(1, "c", None)).unwrap_err(),
                Refusal::TooManyBatches
            );
            b.flush(Trigger::Shutdown);
            type Sent = (u64, Vec<(String, String)>, Option<std::net::SocketAddr>);
            let mut out: Vec<Sent> = sink
                .0
                .borrow()
                .iter()
                .map(|d| {
                    let h = d.meta.headers.as_deref().unwrap_or_default().to_vec();
                    (d.items, h, d.meta.client)
                })
                .collect();
            out.sort();
            assert_eq!(
                out,
                vec![
                    (4, vec![("x-tenant".to_owned(), "b".to_owned())], None),
                    (5, vec![("x-tenant".to_owned(), "a".to_owned())], None),
                ]
            );
            // Sent batches no longer count against the limit.
            b.consume(with_meta(1, "c", None)).unwrap();
        });
    }

    fn hop() -> Hop {
        Hop {
            kind: crate::pipeline::HopKind::HandOver,
            from: "10.0.0.2:4317".into(),
            incarnation: 1,
            table: 7,
            batch: (0, 1),
        }
    }

    #[test]
    fn a_hop_marker_is_never_merged_with_local_data() {
        on_executor(async {
            let sink = Rc::new(Sink::default());
            let b = batcher(100, 0, sink.clone());
            b.consume(with_meta(3, "a", None)).unwrap();
            b.consume(with_meta(2, "a", Some(hop()))).unwrap();
            b.consume(with_meta(1, "a", None)).unwrap();
            b.flush(Trigger::Shutdown);
            let mut out: Vec<(u64, Option<Hop>)> = sink
                .0
                .borrow()
                .iter()
                .map(|d| (d.items, d.meta.hop.clone()))
                .collect();
            out.sort_by_key(|o| o.0);
            assert_eq!(out, vec![(2, Some(hop())), (4, None)]);
            // Without metadata_keys no header is carried on.
            assert!(sink.0.borrow().iter().all(|d| d.meta.headers.is_none()));
        });
    }
}
