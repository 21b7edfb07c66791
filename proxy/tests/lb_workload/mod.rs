//! Workload shared by the agent-mode tests: random traces of 1..=50 spans, shuffled, cut into
//! requests over 1..=3 resources.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::time::{Duration, Instant};
use tailgate_proto::compression::Compression;

use crate::support::{export, Tailgate};
use tailgate_perf::sink::{RecordMode, Sink, SinkConfig};

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

// === sinks on 127.0.0.2.. sharing one port ===

/// `count` sinks on 127.0.0.2, 127.0.0.3, ... all on the same (free) port.
pub async fn sinks_on_one_port(count: u8) -> (Vec<Sink>, u16) {
    'retry: for _ in 0..10 {
        let first = start_sink(SocketAddr::from(([127, 0, 0, 2], 0)))
            .await
            .unwrap();
        let port = first.grpc_addr().port();
        let mut sinks = vec![first];
        for i in 1..count {
            match start_sink(SocketAddr::from(([127, 0, 0, 2 + i], port))).await {
                Ok(s) => sinks.push(s),
                Err(_) => continue 'retry,
            }
        }
        return (sinks, port);
    }
    panic!("no port free on 127.0.0.2..{}", 1 + count);
}

async fn start_sink(addr: SocketAddr) -> std::io::Result<Sink> {
    Sink::start(SinkConfig {
        grpc_addr: addr,
        record: RecordMode::Ids,
        ..SinkConfig::default()
    })
    .await
}

pub fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, last)
}

pub fn accepted(sinks: &[Sink]) -> Vec<u64> {
    sinks.iter().map(|s| s.stats().accepted_spans).collect()
}

// === traffic ===

/// Sends requests of 20 whole traces while polling `done`; panics after a generous deadline.
pub struct Traffic {
    rng: StdRng,
    /// Spans accepted by the agent so far.
    pub sent: u64,
    agent: SocketAddr,
}

impl Traffic {
    pub fn new(seed: u64, agent: SocketAddr) -> Self {
        Traffic {
            rng: StdRng::seed_from_u64(seed),
            sent: 0,
            agent,
        }
    }

    pub async fn send_one(&mut self) {
        let (_, spans) = workload(&mut self.rng, 20);
        let req = request(&mut self.rng, &spans);
        let (code, msg) = export(self.agent, &req, Compression::Identity).await;
        assert_eq!(code, 0, "{msg}");
        self.sent += spans.len() as u64;
    }

    /// Keeps traffic running until `done()` holds.
    pub async fn until(&mut self, what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for: {what}");
            self.send_one().await;
        }
    }

    /// Waits (no new traffic) until the sinks hold every span sent.
    pub async fn settle(&self, sinks: &[Sink]) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while accepted(sinks).iter().sum::<u64>() < self.sent {
            assert!(
                Instant::now() < deadline,
                "sinks hold {:?}, sent {}",
                accepted(sinks),
                self.sent
            );
            tokio::time::sleep(Duration::from_millis(20)).await; // polling
        }
        assert_eq!(
            accepted(sinks).iter().sum::<u64>(),
            self.sent,
            "no duplicates"
        );
    }
}

pub fn metric(tg: &Tailgate, series: &str) -> f64 {
    tg.metric(series).unwrap_or(0.0)
}

/// Polls a metric of `tg` until it equals `value` (generous deadline).
pub async fn wait_metric(tg: &Tailgate, series: &str, value: f64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while metric(tg, series) != value {
        assert!(
            Instant::now() < deadline,
            "{series} is {}, want {value}",
            metric(tg, series)
        );
        tokio::time::sleep(Duration::from_millis(20)).await; // polling
    }
}
