//! Cost of the `redaction` processor per span: 10 allowed keys and 2 blocked-value patterns
//! (the gateway figure), over a request of 100 spans with 15 attributes each (10
//! allowed, 5 removed; 1 in 5 spans holds a card number to mask) under a resource with 4
//! attributes. `cargo bench -p tailgate --bench redaction`.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::rc::Rc;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use tailgate::pipeline::{Consumer, Payload, Refusal};
use tailgate::processor::redaction::processor::RedactionStage;
use tailgate::processor::redaction::rules::{Rules, Summary};
use tailgate::telemetry::metrics::{Kind, Registry};

const SPANS: usize = 100;
const ALLOWED: [&str; 10] = [
    "http.method",
    "http.route",
    "http.status_code",
    "http.url",
    "net.peer.name",
    "db.system",
    "db.statement",
    "user.tier",
    "card.note",
    "service.name",
];
const PATTERNS: [&str; 2] = ["4[0-9]{12}(?:[0-9]{3})?", "(5[1-5][0-9]{14})"];

struct Nop;
impl Consumer for Nop {
    fn consume(&self, _: Payload) -> Result<(), Refusal> {
        Ok(())
    }
}

fn kv(key: &str, v: String) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v)),
        }),
    }
}

/// `dirty`: 5 keys to remove per span and a card number in 1 span of 5; else every key allowed
/// and nothing to mask (the request passes unchanged).
fn request(dirty: bool) -> Vec<u8> {
    let spans = (0..SPANS)
        .map(|i| {
            let mut attrs: Vec<KeyValue> = ALLOWED
                .iter()
                .map(|k| kv(k, format!("value of {k} number {i}")))
                .collect();
            if dirty {
                attrs.extend((0..5).map(|j| kv(&format!("custom.key.{j}"), format!("v{i}"))));
                if i % 5 == 0 {
                    attrs[8] = kv("card.note", "paid with 4111111111111111".into());
                }
            }
            Span {
                trace_id: vec![(i % 256) as u8; 16],
                span_id: vec![1; 8],
                name: "GET /cart".into(),
                start_time_unix_nano: 1,
                end_time_unix_nano: 2,
                attributes: attrs,
                ..Default::default()
            }
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", "cart".into()),
                    kv("host.name", "node-1".into()),
                    kv("k8s.pod.name", "cart-1".into()),
                    kv("deployment.environment", "prod".into()),
                ],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

fn bench(c: &mut Criterion) {
    let allowed: Vec<String> = ALLOWED.iter().map(|s| s.to_string()).collect();
    let blocked = PATTERNS
        .iter()
        .map(|p| regex::bytes::Regex::new(p).unwrap())
        .collect();
    let rules = Arc::new(Rules::new(false, &allowed, &[], blocked, Summary::Info));
    let registry = Registry::new(1);
    let dropped = registry.register("d", "", Kind::Counter, &[]).local(0);
    let stage = RedactionStage::new(rules, Rc::new(Nop), dropped);
    let mut g = c.benchmark_group("redaction");
    g.throughput(Throughput::Elements(SPANS as u64));
    for (name, dirty) in [
        ("10_allowed_2_patterns_dirty", true),
        ("10_allowed_2_patterns_clean", false),
    ] {
        let body = request(dirty);
        assert_eq!(stage.redact(&body).unwrap().is_some(), dirty);
        g.bench_function(name, |b| {
            b.iter(|| black_box(stage.redact(black_box(&body)).unwrap()))
        });
    }
    // The alternative the rewrite primitive avoids: decode and encode with prost.
    let body = request(true);
    g.bench_function("prost_decode_encode_only", |b| {
        b.iter(|| {
            let r = ExportTraceServiceRequest::decode(black_box(&body[..])).unwrap();
            black_box(r.encode_to_vec())
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
