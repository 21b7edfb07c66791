//! The per-core half of `spanmetrics`: a [`Consumer`] at the end of a traces pipeline that
//! aggregates every span it sees and hands its deltas to the connector's merger thread just
//! before each of the merger's flushes (see [`super::schedule`]; and when its key cache
//! overflows, and at shutdown).

use std::cell::RefCell;
use std::time::{Duration, Instant};

use super::aggregate::Aggregator;
use super::merger::MergerHandle;
use super::schedule;
use crate::pipeline::{Consumer, Drain, LocalFuture, Payload, Refusal};
use crate::telemetry::metrics::Local;

/// One core's `spanmetrics` connector.
pub struct SpanMetricsStage {
    aggregator: RefCell<Aggregator>,
    merger: MergerHandle,
    /// Spans counted (`otelcol_connector_*`-style accounting is not in the collector; tailgate
    /// counts them as the exporter end of the traces pipeline).
    sent: Local,
    /// Requests that could not be scanned (the receiver accepted them, so they are not refused).
    failed: Local,
    /// Spans not counted, by reason.
    dropped: Dropped,
}

/// `tailgate_connector_spanmetrics_dropped_spans_total{connector,reason}`: every span the
/// connector could not count.
pub struct Dropped {
    /// `malformed_span`: a span whose fields do not parse, left out of its request.
    pub malformed_span: Local,
    /// `malformed_request`: every span of a request whose structure does not walk.
    pub malformed_request: Local,
}

impl SpanMetricsStage {
    /// A stage feeding `merger`.
    pub fn new(merger: MergerHandle, sent: Local, failed: Local, dropped: Dropped) -> Self {
        SpanMetricsStage {
            aggregator: RefCell::new(Aggregator::new(merger.settings.clone())),
            merger,
            sent,
            failed,
            dropped,
        }
    }

    /// Hands everything counted since the last call to the merger.
    pub fn flush(&self) {
        let deltas = self.aggregator.borrow_mut().take();
        if !deltas.is_empty() {
            // The merger only goes away at process exit; nothing to do if it already has.
            let _ = self.merger.tx.send(deltas);
        }
    }

    /// How long from `now` until this core's next hand-over: a margin before the merger's next
    /// flush on the grid they share.
    pub fn until_handover(&self, now: Instant) -> Duration {
        let interval = self.merger.settings.flush_interval;
        schedule::next_handover(self.merger.epoch, interval, now).saturating_duration_since(now)
    }
}

impl Consumer for SpanMetricsStage {
    fn consume(&self, data: Payload) -> Result<(), Refusal> {
        let mut spill = Vec::new();
        let result = self.aggregator.borrow_mut().consume(&data.body, &mut spill);
        match result {
            Ok(done) => {
                self.sent.add(done.counted);
                if done.skipped > 0 {
                    self.dropped.malformed_span.add(done.skipped);
                    tracing::debug!("spanmetrics: {} unreadable spans left out", done.skipped);
                }
            }
            Err(e) => {
                self.failed.add(1);
                self.dropped.malformed_request.add(data.items);
                tracing::debug!("spanmetrics: request not scanned: {e}");
            }
        }
        if !spill.is_empty() {
            let _ = self.merger.tx.send(spill);
        }
        Ok(())
    }
}

impl Drain for SpanMetricsStage {
    fn flush(&self, _until: Instant) -> LocalFuture<'_> {
        SpanMetricsStage::flush(self);
        Box::pin(std::future::ready(()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Arc;

    use bytes::Bytes;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    use super::*;
    use crate::config::error::ConfigErrors;
    use crate::connector::spanmetrics::config::SpanMetricsConfig;
    use crate::telemetry::metrics::{Kind, Metric, Registry};

    fn span(trace_id: Vec<u8>) -> Span {
        Span {
            trace_id,
            span_id: vec![2; 8],
            name: "op".into(),
            start_time_unix_nano: 1,
            end_time_unix_nano: 2,
            ..Default::default()
        }
    }

    fn request(spans: Vec<Span>) -> Bytes {
        let req = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![KeyValue {
                        key: "service.name".into(),
                        value: Some(AnyValue {
                            value: Some(any_value::Value::StringValue("api".into())),
                        }),
                    }],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        Bytes::from(prost::Message::encode_to_vec(&req))
    }

    #[test]
    fn unreadable_spans_are_counted_by_reason_and_the_rest_aggregated() {
        let c: SpanMetricsConfig = serde_yaml::from_str("{}").unwrap();
        let settings = Arc::new(c.resolve("x", &mut ConfigErrors::default(), &mut Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let merger = MergerHandle {
            settings,
            tx,
            epoch: Instant::now(),
            kept: None,
        };
        let registry = Registry::new(1);
        let counter = |name: &str, reason: &str| -> Metric {
            registry.register(name, "test", Kind::Counter, &[("reason", reason)])
        };
        let (sent, failed) = (counter("sent", ""), counter("failed", ""));
        let (span_drops, request_drops) = (counter("d", "span"), counter("d", "request"));
        let stage = SpanMetricsStage::new(
            merger,
            sent.local(0),
            failed.local(0),
            Dropped {
                malformed_span: span_drops.local(0),
                malformed_request: request_drops.local(0),
            },
        );
        // One span with an 8-byte trace ID among good ones: only it is left out.
        let body = request(vec![span(vec![1; 16]), span(vec![7; 8]), span(vec![1; 16])]);
        stage.consume(Payload::traces(body.clone(), 3)).unwrap();
        assert_eq!((sent.total(), span_drops.total()), (2, 1));
        // A request whose structure does not walk: all its spans, and the request.
        let cut = body.slice(..body.len() - 3);
        stage.consume(Payload::traces(cut, 3)).unwrap();
        assert_eq!((failed.total(), request_drops.total()), (1, 3));
        stage.flush();
        let deltas = rx.try_recv().unwrap();
        assert_eq!(deltas.iter().map(|d| d.calls).sum::<u64>(), 2);
    }
}
