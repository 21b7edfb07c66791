//! Workload shared by the agent-mode tests: random traces of 1..=50 spans, shuffled, cut into
//! requests over 1..=3 resources.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;

/// One span of the workload: which trace, which span of it.
#[derive(Clone, Copy)]
pub struct SpanId {
    /// Its trace.
    pub trace: [u8; 16],
    /// Its position in the trace (also the low half of its span ID).
    pub index: u32,
}

/// `traces` traces of 1..=50 spans with random IDs; returns the span count of each trace.
pub fn workload(rng: &mut StdRng, traces: usize) -> (BTreeMap<[u8; 16], u32>, Vec<SpanId>) {
    let mut sizes = BTreeMap::new();
    let mut spans = Vec::new();
    while sizes.len() < traces {
        let id: [u8; 16] = rng.gen();
        let n = rng.gen_range(1..=50u32);
        if sizes.insert(id, n).is_none() {
            spans.extend((0..n).map(|index| SpanId { trace: id, index }));
        }
    }
    spans.shuffle(rng);
    (sizes, spans)
}

/// A request of `spans` spread over 1..=3 resources (services) as the random generator picks.
pub fn request(rng: &mut StdRng, spans: &[SpanId]) -> ExportTraceServiceRequest {
    let resources = rng.gen_range(1..=3usize).min(spans.len());
    let per = spans.len().div_ceil(resources);
    ExportTraceServiceRequest {
        resource_spans: spans
            .chunks(per)
            .enumerate()
            .map(|(r, chunk)| ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![KeyValue {
                        key: "service.name".into(),
                        value: Some(AnyValue {
                            value: Some(any_value::Value::StringValue(format!("svc-{r}"))),
                        }),
                    }],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: chunk
                        .iter()
                        .map(|s| Span {
                            trace_id: s.trace.to_vec(),
                            span_id: [&s.trace[..4], &s.index.to_be_bytes()[..]].concat(),
                            name: format!("op-{}", s.index),
                            start_time_unix_nano: 1_700_000_000_000_000_000,
                            end_time_unix_nano: 1_700_000_000_000_100_000,
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect(),
    }
}

/// Requests of 1..=`max` spans each, covering `spans` in order.
pub fn requests(rng: &mut StdRng, spans: &[SpanId], max: usize) -> Vec<ExportTraceServiceRequest> {
    let mut out = Vec::new();
    let mut rest = spans;
    while !rest.is_empty() {
        let n = rng.gen_range(1..=max).min(rest.len());
        out.push(request(rng, &rest[..n]));
        rest = &rest[n..];
    }
    out
}
