//! Gateway test traffic: whole traces of known class (error / slow / plain), sent in shuffled
//! order over many connections, and the checks on what a sink received.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{status, ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use tailgate_proto::compression::Compression;

use crate::support::{frame, send_raw, EXPORT_PATH};

/// splitmix64: a small deterministic generator (tests need reproducible traffic, not quality).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }
}

/// What a trace is, which decides whether the seed's policies keep it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Class {
    /// One span has status ERROR (kept by `errors-policy`).
    Error,
    /// Lasts longer than 1 s (kept by `slow-traces-policy`).
    Slow,
    /// Neither: kept only by the probabilistic policy.
    Plain,
}

/// One generated trace.
pub struct Trace {
    pub id: [u8; 16],
    pub class: Class,
    /// (service index, span).
    pub spans: Vec<(usize, Span)>,
}

pub const SERVICES: usize = 3;

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
    }
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// A trace with `n` spans of class `class` and id `id`; the root is span 0.
pub fn make_trace(rng: &mut Rng, id: [u8; 16], class: Class, n: usize) -> Trace {
    let start = now_ns();
    let total_ms = match class {
        Class::Slow => 1_500,
        _ => 10 + rng.below(190),
    };
    let error_at = rng.below(n as u64) as usize;
    let mut spans = Vec::with_capacity(n);
    for i in 0..n {
        let span_id = (rng.next() | 1).to_be_bytes().to_vec();
        // Children stay within the first 200 ms, so only the root makes a trace slow: a fragment
        // without the root is never slow (the naive-scaling test relies on it).
        let child_ms = total_ms.min(200) / 2 + 1;
        let (s, e) = if i == 0 {
            (start, start + total_ms * 1_000_000)
        } else {
            let off = rng.below(child_ms) * 1_000_000;
            (start + off, start + off + rng.below(child_ms) * 1_000_000)
        };
        let code = if class == Class::Error && i == error_at {
            status::StatusCode::Error
        } else {
            status::StatusCode::Ok
        };
        spans.push((
            rng.below(SERVICES as u64) as usize,
            Span {
                trace_id: id.to_vec(),
                span_id,
                parent_span_id: if i == 0 { vec![] } else { vec![7; 8] },
                name: format!("op-{}", i % 7),
                kind: 2,
                start_time_unix_nano: s,
                end_time_unix_nano: e,
                attributes: vec![kv("http.method", "GET"), kv("pad", &"x".repeat(60))],
                status: Some(Status {
                    code: code as i32,
                    message: String::new(),
                }),
                ..Default::default()
            },
        ));
    }
    Trace { id, class, spans }
}

/// `n` traces of 1–50 spans: 5 % error, 3 % slow, the rest plain, random trace IDs.
pub fn workload(seed: u64, n: usize) -> Vec<Trace> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| {
            let mut id = [0u8; 16];
            id[..8].copy_from_slice(&rng.next().to_be_bytes());
            id[8..].copy_from_slice(&rng.next().to_be_bytes());
            let class = match rng.below(100) {
                0..=4 => Class::Error,
                5..=7 => Class::Slow,
                _ => Class::Plain,
            };
            let spans = 1 + rng.below(50) as usize;
            make_trace(&mut rng, id, class, spans)
        })
        .collect()
}

/// Requests of at most `per_request` spans: traces are taken in windows of `window` traces and
/// the spans of each window shuffled (so a trace's spans are spread over several requests, and
/// connections, but all arrive within one window's sending time).
pub fn requests(
    traces: &[Trace],
    seed: u64,
    window: usize,
    per_request: usize,
) -> Vec<ExportTraceServiceRequest> {
    let mut rng = Rng::new(seed ^ 0x5eed);
    let mut out = Vec::new();
    for w in traces.chunks(window) {
        let mut spans: Vec<&(usize, Span)> = w.iter().flat_map(|t| t.spans.iter()).collect();
        rng.shuffle(&mut spans);
        for chunk in spans.chunks(per_request) {
            out.push(request_of(chunk.iter().copied()));
        }
    }
    out
}

/// One request holding `spans`, grouped by service.
pub fn request_of<'a>(spans: impl Iterator<Item = &'a (usize, Span)>) -> ExportTraceServiceRequest {
    let mut by_service: BTreeMap<usize, Vec<Span>> = BTreeMap::new();
    for (svc, s) in spans {
        by_service.entry(*svc).or_default().push(s.clone());
    }
    ExportTraceServiceRequest {
        resource_spans: by_service
            .into_iter()
            .map(|(svc, spans)| ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", &format!("svc-{svc}"))],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "test".into(),
                        ..Default::default()
                    }),
                    spans,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            })
            .collect(),
    }
}

/// Sends every request, `connections` at a time (a new connection each, so the kernel spreads
/// them over the receiving cores), retrying retryable refusals; `targets` are used round-robin
/// by request index.
pub async fn send_all(
    targets: &[SocketAddr],
    reqs: Vec<ExportTraceServiceRequest>,
    connections: usize,
) {
    let reqs: Vec<(usize, bytes::Bytes)> = reqs
        .into_iter()
        .enumerate()
        .map(|(i, r)| (i, frame(&r.encode_to_vec(), Compression::Identity)))
        .collect();
    let queue = std::sync::Arc::new(std::sync::Mutex::new(reqs.into_iter()));
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let queue = queue.clone();
        let targets = targets.to_vec();
        tasks.push(tokio::spawn(async move {
            loop {
                let next = queue.lock().unwrap().next();
                let Some((i, body)) = next else { return };
                let addr = targets[i % targets.len()];
                let mut delay = Duration::from_millis(5);
                loop {
                    let (code, msg) = send_raw(addr, EXPORT_PATH, &[], body.clone()).await;
                    match code {
                        0 => break,
                        14 => {
                            tokio::time::sleep(delay).await;
                            delay = (delay * 2).min(Duration::from_millis(200));
                        }
                        _ => panic!("export refused with {code}: {msg}"),
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// What arrived at a sink, per trace.
#[derive(Debug, Default)]
pub struct Arrivals {
    /// Trace ID → span IDs received (with multiplicity).
    pub spans: BTreeMap<[u8; 16], Vec<Vec<u8>>>,
}

impl Arrivals {
    pub fn from_requests(reqs: &[ExportTraceServiceRequest]) -> Self {
        let mut a = Arrivals::default();
        for r in reqs {
            for rs in &r.resource_spans {
                for ss in &rs.scope_spans {
                    for s in &ss.spans {
                        let id: [u8; 16] = s.trace_id.as_slice().try_into().unwrap();
                        a.spans.entry(id).or_default().push(s.span_id.clone());
                    }
                }
            }
        }
        a
    }

    /// Spans received more than once.
    pub fn duplicates(&self) -> usize {
        self.spans
            .values()
            .map(|v| v.len() - v.iter().collect::<BTreeSet<_>>().len())
            .sum()
    }

    /// How `t` arrived: 0 = not at all, 1 = partially, 2 = complete.
    pub fn state(&self, t: &Trace) -> Arrived {
        match self.spans.get(&t.id) {
            None => Arrived::None,
            Some(v) => {
                let got: BTreeSet<&Vec<u8>> = v.iter().collect();
                if t.spans.iter().all(|(_, s)| got.contains(&s.span_id)) {
                    Arrived::Complete
                } else {
                    Arrived::Partial
                }
            }
        }
    }
}

/// How much of a trace arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Arrived {
    None,
    Partial,
    Complete,
}

/// Counts of (class, arrival) over `traces`.
pub fn tally(traces: &[Trace], a: &Arrivals) -> BTreeMap<(Class, Arrived), usize> {
    let mut m = BTreeMap::new();
    for t in traces {
        *m.entry((t.class, a.state(t))).or_insert(0) += 1;
    }
    m
}
