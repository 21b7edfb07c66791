//! The per-core batcher: joins request bodies until `send_batch_size` spans or `timeout`.
//!
//! The timeout runs from the first span of a batch: an [`Alarm`] is set when data enters an
//! empty batch and cleared when a size trigger empties it, so an idle core is never woken and a
//! busy one wakes only for batches the size trigger did not already send.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use bytes::BytesMut;

use super::config::BatchConfig;
use crate::pipeline::{wire, Refusal, TraceConsumer, TraceData};
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
    /// `otelcol_processor_dropped_spans_total`: spans the next stage refused after batching.
    pub dropped: Local,
    /// This core's index (for the histogram).
    pub core: usize,
}

/// One batch processor instance on one core.
pub struct Batcher {
    config: BatchConfig,
    next: Rc<dyn TraceConsumer>,
    pending: RefCell<Pending>,
    metrics: BatchMetrics,
    /// Rings `timeout` after the first span of the pending batch.
    alarm: Alarm,
}

#[derive(Default)]
struct Pending {
    /// Concatenated request bodies.
    buf: BytesMut,
    /// Spans in `buf`.
    spans: u64,
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
    pub fn new(
        config: BatchConfig,
        next: Rc<dyn TraceConsumer>,
        metrics: BatchMetrics,
    ) -> Rc<Batcher> {
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

    /// Sends whatever is pending (timer and shutdown).
    pub fn flush(&self, trigger: Trigger) {
        let (body, spans) = {
            let mut p = self.pending.borrow_mut();
            if p.spans == 0 {
                return;
            }
            let spans = std::mem::take(&mut p.spans);
            (p.buf.split().freeze(), spans)
        };
        self.alarm.clear();
        match trigger {
            Trigger::Size => self.metrics.size_trigger.add(1),
            Trigger::Timeout | Trigger::Shutdown => self.metrics.timeout_trigger.add(1),
        }
        let max = u64::from(self.config.send_batch_max_size);
        if max > 0 && spans > max {
            match wire::split(&body, max) {
                Ok(parts) => {
                    for (b, n) in parts {
                        self.send(TraceData { body: b, spans: n });
                    }
                    return;
                }
                // Bodies were walked by the receiver already, so this cannot fail; send whole if it does.
                Err(e) => tracing::error!("batch split failed ({e}); sending unsplit"),
            }
        }
        self.send(TraceData { body, spans });
    }

    fn send(&self, data: TraceData) {
        let spans = data.spans;
        self.metrics.send_size.observe(self.metrics.core, spans);
        if let Err(r) = self.next.consume(data) {
            // Like the collector's batch processor, errors after batching are logged and counted,
            // not returned: the receiver was already answered.
            self.metrics.dropped.add(spans);
            tracing::debug!(spans, "batch refused downstream: {}", r.message());
        }
    }

    /// Timeout flush task; runs until the executor stops.
    pub async fn run_timer(self: Rc<Self>) {
        loop {
            self.alarm.ring().await;
            self.flush(Trigger::Timeout);
        }
    }
}

impl TraceConsumer for Batcher {
    fn consume(&self, data: TraceData) -> Result<(), Refusal> {
        let full = {
            let mut p = self.pending.borrow_mut();
            if p.spans == 0 {
                self.alarm
                    .set_at(std::time::Instant::now() + self.timeout());
            }
            p.buf.extend_from_slice(&data.body);
            p.spans += data.spans;
            p.spans >= u64::from(self.config.send_batch_size)
        };
        if full {
            self.flush(Trigger::Size);
        }
        Ok(())
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
    struct Sink(RefCell<Vec<TraceData>>);
    impl TraceConsumer for Sink {
        fn consume(&self, data: TraceData) -> Result<(), Refusal> {
            self.0.borrow_mut().push(data);
            Ok(())
        }
    }

    fn req(n: usize) -> TraceData {
        let r = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span::default(); n],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        TraceData {
            body: Bytes::from(r.encode_to_vec()),
            spans: n as u64,
        }
    }

    fn batcher(size: u32, max: u32, sink: Rc<Sink>) -> Rc<Batcher> {
        let reg = Registry::new(1);
        let m = |n| reg.register(n, "h", Kind::Counter, &[]).local(0);
        let cfg = BatchConfig {
            send_batch_size: size,
            send_batch_max_size: max,
            timeout: GoDuration(Duration::from_secs(1)),
            ..Default::default()
        };
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
        let sizes: Vec<u64> = sink.0.borrow().iter().map(|d| d.spans).collect();
        assert_eq!(sizes, vec![12, 3]);
        for d in sink.0.borrow().iter() {
            assert_eq!(wire::count_spans(&d.body).unwrap(), d.spans);
        }
        b.consume(req(2)).unwrap();
        b.flush(Trigger::Timeout);
        assert_eq!(sink.0.borrow().last().unwrap().spans, 2);
        b.flush(Trigger::Timeout);
        assert_eq!(sink.0.borrow().len(), 3);
    }

    #[test]
    fn timeout_runs_from_the_first_span_and_only_when_data_waits() {
        on_executor(async {
            let sink = Rc::new(Sink::default());
            let b = batcher(100, 0, sink.clone());
            let b = {
                // A short timeout for the test.
                let mut cfg = b.config.clone();
                cfg.timeout = GoDuration(Duration::from_millis(30));
                Batcher::new(
                    cfg,
                    sink.clone(),
                    BatchMetrics {
                        size_trigger: b.metrics.size_trigger.clone(),
                        timeout_trigger: b.metrics.timeout_trigger.clone(),
                        send_size: b.metrics.send_size.clone(),
                        dropped: b.metrics.dropped.clone(),
                        core: 0,
                    },
                )
            };
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
            assert_eq!(sink.0.borrow()[0].spans, 6);
            assert_eq!(b.alarm.due(), None);
            // A size trigger empties the batch and clears the alarm.
            b.consume(req(100)).unwrap();
            assert_eq!(sink.0.borrow().len(), 2);
            assert_eq!(b.alarm.due(), None);
        });
    }
}
