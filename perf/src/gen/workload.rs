//! Turns traces into export requests, interleaving the spans of many traces in flight.
//!
//! Real agents do not receive a trace in one piece: its spans finish at different times in
//! different services and arrive mixed with other traces' spans. The workload keeps
//! `interleave` traces open at once and fills each request with spans drawn at random from the
//! open traces (each trace's spans in shuffled order). With `interleave = 1` every trace is sent
//! contiguously; with a large value one trace's spans spread over many requests, hence over
//! time and (requests go round-robin to connections) over connections.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::shape::{make_trace, TraceShape};
use crate::manifest::ManifestEntry;

/// Knobs of the span stream.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WorkloadConfig {
    /// Shape of each trace.
    pub shape: TraceShape,
    /// Spans per export request (the last requests of a run may hold fewer).
    pub spans_per_request: u32,
    /// Traces open at once; their spans are interleaved (see the module docs).
    pub interleave: u32,
    /// Seed: the same seed and config give the same traces and requests.
    pub seed: u64,
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        WorkloadConfig {
            shape: TraceShape::default(),
            spans_per_request: 500,
            interleave: 200,
            seed: 1,
        }
    }
}

/// One export request ready to send.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Encoded `ExportTraceServiceRequest`.
    pub request: Vec<u8>,
    /// Spans in it.
    pub spans: u32,
}

/// A trace whose spans are still being handed out.
#[derive(Debug)]
struct OpenTrace {
    truth: ManifestEntry,
    /// Spans not yet sent, popped from the back (already shuffled).
    pending: Vec<(u32, Span)>,
}

/// A deterministic stream of export requests with its ground truth.
#[derive(Debug)]
pub struct Workload {
    config: WorkloadConfig,
    rng: ChaCha8Rng,
    open: Vec<OpenTrace>,
    finished: Vec<ManifestEntry>,
    resources: Vec<Resource>,
    stopping: bool,
    spans_made: u64,
    traces_made: u64,
}

impl Workload {
    /// A workload; nothing is generated until [`Workload::next_batch`].
    pub fn new(config: WorkloadConfig) -> Self {
        let resources = (0..config.shape.services.max(1))
            .map(|s| Resource {
                attributes: vec![
                    string_kv("service.name", &format!("svc-{s}")),
                    string_kv("host.name", "perf-host"),
                ],
                ..Default::default()
            })
            .collect();
        Workload {
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            config,
            open: Vec::new(),
            finished: Vec::new(),
            resources,
            stopping: false,
            spans_made: 0,
            traces_made: 0,
        }
    }

    /// Stops opening traces; later batches drain the open ones, then `next_batch` gives `None`.
    pub fn stop(&mut self) {
        self.stopping = true;
    }

    /// Whether [`Workload::stop`] was called.
    pub fn is_stopping(&self) -> bool {
        self.stopping
    }

    /// Spans of all traces opened so far.
    pub fn spans_made(&self) -> u64 {
        self.spans_made
    }

    /// Traces opened so far.
    pub fn traces_made(&self) -> u64 {
        self.traces_made
    }

    /// Ground truth of traces whose last span went into a batch since the previous call.
    pub fn take_finished(&mut self) -> Vec<ManifestEntry> {
        std::mem::take(&mut self.finished)
    }

    /// The next request; new traces start at `now_unix_nanos`. `None` once stopped and drained.
    pub fn next_batch(&mut self, now_unix_nanos: u64) -> Option<Batch> {
        let want = self.config.spans_per_request.max(1) as usize;
        let mut picked: Vec<(u32, Span)> = Vec::with_capacity(want);
        while picked.len() < want {
            while !self.stopping && self.open.len() < self.config.interleave.max(1) as usize {
                self.open_trace(now_unix_nanos);
            }
            if self.open.is_empty() {
                break;
            }
            let i = self.rng.gen_range(0..self.open.len());
            if let Some(span) = self.open[i].pending.pop() {
                picked.push(span);
            }
            if self.open[i].pending.is_empty() {
                let done = self.open.swap_remove(i);
                self.finished.push(done.truth);
            }
        }
        if picked.is_empty() {
            return None;
        }
        let spans = picked.len() as u32;
        Some(Batch {
            request: self.encode(picked),
            spans,
        })
    }

    fn open_trace(&mut self, now_unix_nanos: u64) {
        let trace = make_trace(&self.config.shape, &mut self.rng, now_unix_nanos);
        let mut pending = trace.spans;
        pending.shuffle(&mut self.rng);
        self.spans_made += pending.len() as u64;
        self.traces_made += 1;
        self.open.push(OpenTrace {
            truth: ManifestEntry {
                trace_id: trace.trace_id,
                spans: pending.len() as u32,
                error: trace.has_error,
                slow: trace.is_slow,
            },
            pending,
        });
    }

    /// Groups spans by service: one `ResourceSpans` per service present, one scope each.
    fn encode(&self, picked: Vec<(u32, Span)>) -> Vec<u8> {
        let mut by_service: Vec<Vec<Span>> = vec![Vec::new(); self.resources.len()];
        for (service, span) in picked {
            by_service[service as usize % self.resources.len()].push(span);
        }
        let resource_spans = by_service
            .into_iter()
            .enumerate()
            .filter(|(_, spans)| !spans.is_empty())
            .map(|(s, spans)| ResourceSpans {
                resource: Some(self.resources[s].clone()),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "tailgate-perf".into(),
                        version: env!("CARGO_PKG_VERSION").into(),
                        ..Default::default()
                    }),
                    spans,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            })
            .collect();
        ExportTraceServiceRequest { resource_spans }.encode_to_vec()
    }
}

fn string_kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::collections::{HashMap, HashSet};

    fn drain(w: &mut Workload, batches_before_stop: usize) -> (Vec<Batch>, Vec<ManifestEntry>) {
        let mut out = Vec::new();
        let mut truth = Vec::new();
        for _ in 0..batches_before_stop {
            out.push(w.next_batch(0).unwrap());
        }
        w.stop();
        while let Some(b) = w.next_batch(0) {
            out.push(b);
        }
        truth.extend(w.take_finished());
        (out, truth)
    }

    #[test]
    fn every_span_is_sent_once_and_the_manifest_counts_them() {
        let mut w = Workload::new(WorkloadConfig {
            spans_per_request: 50,
            interleave: 20,
            ..WorkloadConfig::default()
        });
        let (batches, truth) = drain(&mut w, 30);
        let mut seen: HashMap<[u8; 16], HashSet<[u8; 8]>> = HashMap::new();
        for b in &batches {
            let views = tailgate_proto::scan(&Bytes::from(b.request.clone())).unwrap();
            assert_eq!(views.len() as u32, b.spans);
            for v in views {
                assert!(
                    seen.entry(v.trace_id()).or_default().insert(v.span_id()),
                    "duplicate span"
                );
            }
        }
        assert_eq!(truth.len() as u64, w.traces_made());
        assert_eq!(seen.len(), truth.len());
        for t in &truth {
            assert_eq!(seen[&t.trace_id].len() as u32, t.spans);
        }
        let total: u64 = batches.iter().map(|b| u64::from(b.spans)).sum();
        assert_eq!(total, w.spans_made());
    }

    #[test]
    fn interleave_spreads_traces_over_requests() {
        let requests_per_trace = |interleave| {
            let mut w = Workload::new(WorkloadConfig {
                spans_per_request: 100,
                interleave,
                ..WorkloadConfig::default()
            });
            let (batches, truth) = drain(&mut w, 20);
            let mut in_requests: HashMap<[u8; 16], HashSet<usize>> = HashMap::new();
            for (i, b) in batches.iter().enumerate() {
                for v in tailgate_proto::scan(&Bytes::from(b.request.clone())).unwrap() {
                    in_requests.entry(v.trace_id()).or_default().insert(i);
                }
            }
            let sum: usize = in_requests.values().map(HashSet::len).sum();
            sum as f64 / truth.len() as f64
        };
        let contiguous = requests_per_trace(1);
        let spread = requests_per_trace(100);
        assert!(
            contiguous < 1.2,
            "interleave 1: {contiguous} requests per trace"
        );
        assert!(spread > 3.0, "interleave 100: {spread} requests per trace");
    }

    #[test]
    fn same_seed_same_requests() {
        let run = || {
            let mut w = Workload::new(WorkloadConfig::default());
            (0..3)
                .map(|_| w.next_batch(7).unwrap().request)
                .collect::<Vec<_>>()
        };
        assert_eq!(run(), run());
    }
}
