//! Replays the checked-in fuzz corpus (`proto/fuzz/corpus/<target>/`) through the same entry
//! functions the cargo-fuzz targets call, so every finding stays fixed on stable `cargo test`.
//! `cargo test -p tailgate-proto --test fuzz_corpus -- --ignored` rewrites the seed files.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value::Value, AnyValue, InstrumentationScope, KeyValue,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::Link;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use tailgate_proto::control::{self, Claim, Decision, Redirect, State};
use tailgate_proto::{fuzzing, grpc, Compression};

/// A fuzz target: its name and entry function.
type Target = (&'static str, fn(&[u8]));

const TARGETS: [Target; 11] = [
    ("scanner", fuzzing::scan),
    ("grpc_deframer", fuzzing::grpc_deframer),
    ("gzip", fuzzing::gzip),
    ("zstd", fuzzing::zstd),
    ("snappy", fuzzing::snappy),
    ("json", fuzzing::json),
    ("control", fuzzing::control),
    ("hop", fuzzing::hop),
    ("logs_scanner", fuzzing::logs),
    ("metrics_scanner", fuzzing::metrics),
    ("rewrite", fuzzing::rewrite),
];

fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

#[test]
fn replay_corpus() {
    for (target, run) in TARGETS {
        let dir = corpus_dir(target);
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            run(&std::fs::read(&path).unwrap());
            n += 1;
        }
        assert!(n > 0, "no corpus in {}", dir.display());
    }
}

fn request() -> Vec<u8> {
    message().encode_to_vec()
}

fn message() -> ExportTraceServiceRequest {
    let kv = |k: &str, v: Value| KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(v) }),
    };
    let span = |i: u8| Span {
        trace_id: vec![i; 16],
        span_id: vec![i; 8],
        name: format!("GET /api/{i}"),
        kind: 2,
        start_time_unix_nano: 1,
        end_time_unix_nano: 2,
        attributes: vec![
            kv("http.method", Value::StringValue("GET".into())),
            kv("n", Value::IntValue(7)),
        ],
        status: Some(Status {
            code: 2,
            message: "boom".into(),
        }),
        ..Default::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", Value::StringValue("cart".into()))],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "lib".into(),
                    ..Default::default()
                }),
                spans: vec![span(1), span(2), span(3)],
                schema_url: "s".into(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// Issue 17 case 3's shape: good spans and, in the same ScopeSpans, one with an 8-byte trace id
/// and one whose link has a 3-byte span id (what the receivers' check refuses).
fn bad_ids() -> Vec<u8> {
    let mut m = message();
    let spans = &mut m.resource_spans[0].scope_spans[0].spans;
    spans[1].trace_id.truncate(8);
    spans[2].links.push(Link {
        trace_id: vec![4; 16],
        span_id: vec![4; 3],
        ..Default::default()
    });
    m.encode_to_vec()
}

/// JSON seeds: the request as opentelemetry-proto writes it, respelled the ways OTLP/JSON allows,
/// issue 17's bomb shape (small), deep nesting, and forms the decoder refuses.
fn json_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let json = serde_json::to_string(&message()).unwrap();
    let respelled = json
        .replace("\"kind\":2", "\"kind\":\"SPAN_KIND_SERVER\"")
        .replace("\"startTimeUnixNano\":\"1\"", "\"start_time_unix_nano\":1")
        .replace("\"traceId\":\"", "\"trace_id\":\"0x");
    let mut bomb = b"{\"resourceSpans\":[".to_vec();
    bomb.extend_from_slice(&b"{},".repeat(20_000));
    bomb.extend_from_slice(b"{}]}");
    let nest = |depth: usize| {
        let open = "{\"kvlistValue\":{\"values\":[{\"key\":\"k\",\"value\":".repeat(depth);
        let close = "}]}}".repeat(depth);
        format!(
            "{{\"resourceSpans\":[{{\"resource\":{{\"attributes\":[{{\"key\":\"k\",\"value\":{open}{{\"intValue\":1}}{close}}}]}}}}]}}"
        )
        .into_bytes()
    };
    vec![
        ("request", json.clone().into_bytes()),
        ("respelled", respelled.into_bytes()),
        ("truncated", json.as_bytes()[..json.len() / 2].to_vec()),
        ("empty_request", b"{\"resourceSpans\":[]}".to_vec()),
        ("bomb", bomb),
        ("nested_20", nest(20)),
        ("nested_40", nest(40)),
        (
            "positional",
            b"{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"status\":[\"m\",2]}]}]}]}"
                .to_vec(),
        ),
    ]
}

/// Control seeds: the first byte 0 means "a whole body", 1 "a payload to wrap" (see
/// `fuzzing::control`).
fn control_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let claims = [
        Claim {
            trace_id: [1; 16],
            state: State::new(true, false),
            ttl_ms: 5_500,
        },
        Claim {
            trace_id: [2; 16],
            state: State::new(false, true),
            ttl_ms: 0,
        },
    ];
    let redirects = [Redirect {
        trace_id: [3; 16],
        holder: "gw-2.tailgate.svc:4317",
        holder_incarnation: 0x0123_4567_89ab_cdef,
        holder_state: State::new(true, true),
    }];
    let decisions = [Decision {
        trace_id: [4; 16],
        kept: true,
        ttl_ms: 30_000,
    }];
    let body = |write: &dyn Fn(&mut Vec<u8>)| {
        let mut out = vec![0u8];
        write(&mut out);
        out
    };
    let claim_body = body(&|o| control::encode_body(&claims, o).unwrap());
    vec![
        ("claims", claim_body.clone()),
        (
            "redirect",
            body(&|o| control::encode_body(&redirects, o).unwrap()),
        ),
        (
            "decisions",
            body(&|o| control::encode_body(&decisions, o).unwrap()),
        ),
        ("drain", body(&control::encode_empty)),
        ("truncated", claim_body[..claim_body.len() - 5].to_vec()),
        ("with_span", {
            let mut out = vec![0u8];
            out.extend_from_slice(&request());
            out
        }),
        ("payload_redirect", {
            let mut out = vec![1u8, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 2, 0];
            out.extend_from_slice(b"gw");
            out.extend_from_slice(&[0; 8]);
            out.push(3);
            out
        }),
    ]
}

fn hop_seeds() -> Vec<(&'static str, String)> {
    let tail = "f=gw-1.tailgate.svc:4317;i=00000000000000ff;t=0123456789abcdef";
    vec![
        ("fwd", format!("v=1;k=fwd;r=not_owner;{tail};b=3.42")),
        (
            "handover",
            format!("v=1;k=handover;{tail};b=0.18446744073709551615"),
        ),
        ("claim", format!("v=1;k=claim;{tail};x=later")),
        ("v2", format!("v=2;k=drain;{tail}")),
        ("table", "0123456789abcdef".to_string()),
    ]
}

/// Logs seeds: a request with two records (body, attributes, ids), and one whose second record
/// has an 8-byte trace id.
fn logs_request(bad_id: bool) -> Vec<u8> {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    let record = |i: u8| LogRecord {
        time_unix_nano: 1,
        observed_time_unix_nano: 2,
        severity_number: 9,
        severity_text: "INFO".into(),
        body: Some(AnyValue {
            value: Some(Value::StringValue(format!("line {i}"))),
        }),
        attributes: vec![KeyValue {
            key: "k".into(),
            value: Some(AnyValue {
                value: Some(Value::IntValue(i.into())),
            }),
        }],
        trace_id: vec![i; if bad_id && i == 2 { 8 } else { 16 }],
        span_id: vec![i; 8],
        flags: 1,
        ..Default::default()
    };
    let m = message();
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: m.resource_spans[0].resource.clone(),
            scope_logs: vec![ScopeLogs {
                scope: m.resource_spans[0].scope_spans[0].scope.clone(),
                log_records: vec![record(1), record(2)],
                schema_url: "s".into(),
            }],
            schema_url: String::new(),
        }],
    }
    .encode_to_vec()
}

/// Metrics seeds: one metric of each kind (with exemplars), optionally a 3-byte exemplar span id.
fn metrics_request(bad_id: bool) -> Vec<u8> {
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::metrics::v1::{
        exponential_histogram_data_point::Buckets, metric::Data, number_data_point,
        summary_data_point::ValueAtQuantile, Exemplar, ExponentialHistogram,
        ExponentialHistogramDataPoint, Gauge, Histogram, HistogramDataPoint, Metric,
        NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, Summary, SummaryDataPoint,
    };
    let attrs = vec![KeyValue {
        key: "k".into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue("v".into())),
        }),
    }];
    let exemplar = Exemplar {
        trace_id: vec![1; 16],
        span_id: vec![2; if bad_id { 3 } else { 8 }],
        ..Default::default()
    };
    let number = NumberDataPoint {
        attributes: attrs.clone(),
        time_unix_nano: 5,
        exemplars: vec![exemplar.clone()],
        value: Some(number_data_point::Value::AsInt(3)),
        ..Default::default()
    };
    let metric = |name: &str, data: Data| Metric {
        name: name.into(),
        unit: "1".into(),
        data: Some(data),
        ..Default::default()
    };
    let m = message();
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: m.resource_spans[0].resource.clone(),
            scope_metrics: vec![ScopeMetrics {
                scope: m.resource_spans[0].scope_spans[0].scope.clone(),
                metrics: vec![
                    metric(
                        "g",
                        Data::Gauge(Gauge {
                            data_points: vec![number.clone()],
                        }),
                    ),
                    metric(
                        "s",
                        Data::Sum(Sum {
                            data_points: vec![number.clone(), number],
                            aggregation_temporality: 2,
                            is_monotonic: true,
                        }),
                    ),
                    metric(
                        "h",
                        Data::Histogram(Histogram {
                            data_points: vec![HistogramDataPoint {
                                attributes: attrs.clone(),
                                count: 3,
                                bucket_counts: vec![1, 2],
                                explicit_bounds: vec![1.0],
                                exemplars: vec![exemplar.clone()],
                                ..Default::default()
                            }],
                            aggregation_temporality: 1,
                        }),
                    ),
                    metric(
                        "e",
                        Data::ExponentialHistogram(ExponentialHistogram {
                            data_points: vec![ExponentialHistogramDataPoint {
                                attributes: attrs.clone(),
                                scale: -2,
                                positive: Some(Buckets {
                                    offset: 1,
                                    bucket_counts: vec![4],
                                }),
                                exemplars: vec![exemplar],
                                ..Default::default()
                            }],
                            aggregation_temporality: 1,
                        }),
                    ),
                    metric(
                        "q",
                        Data::Summary(Summary {
                            data_points: vec![SummaryDataPoint {
                                attributes: attrs,
                                count: 1,
                                quantile_values: vec![ValueAtQuantile {
                                    quantile: 0.5,
                                    value: 2.0,
                                }],
                                ..Default::default()
                            }],
                        }),
                    ),
                ],
                schema_url: String::new(),
            }],
            schema_url: "r".into(),
        }],
    }
    .encode_to_vec()
}

/// A metric carrying `sum`, `sum`, `gauge`: prost merges the sums, then the gauge replaces them.
fn metrics_oneof() -> Vec<u8> {
    let field =
        |n: u8, payload: &[u8]| [&[(n << 3) | 2, payload.len() as u8][..], payload].concat();
    let point = field(1, &[0x19, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f]); // time_unix_nano
    let metric = [
        field(1, b"m"),
        field(7, &point),
        field(7, &[point.clone(), point.clone()].concat()),
        field(5, &point),
    ]
    .concat();
    field(1, &field(2, &field(2, &metric)))
}

/// Rewrite seeds: the request (its `n` and `http.method` attributes are what the fixed program
/// edits), one with what the program drops (a span named `drop…`, an `exception` event, a
/// `secret` resource attribute, a duplicated key) and an empty scope, and damaged forms.
fn rewrite_seeds() -> Vec<(&'static str, Vec<u8>)> {
    use opentelemetry_proto::tonic::trace::v1::span::Event;
    let kv = |k: &str, v: Value| KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(v) }),
    };
    let mut m = message();
    let rs = &mut m.resource_spans[0];
    if let Some(r) = rs.resource.as_mut() {
        r.attributes
            .push(kv("secret", Value::StringValue("s3cr3t".into())));
    }
    let spans = &mut rs.scope_spans[0].spans;
    spans[0].name = "drop me".into();
    spans[1].attributes.push(kv("n", Value::BoolValue(true)));
    spans[2].events = vec![
        Event {
            name: "exception".into(),
            ..Default::default()
        },
        Event {
            name: "log".into(),
            attributes: vec![kv("e", Value::IntValue(2))],
            ..Default::default()
        },
    ];
    rs.scope_spans.push(ScopeSpans::default());
    let edited = m.encode_to_vec();
    let req = request();
    vec![
        ("request", req.clone()),
        ("edited", edited.clone()),
        ("truncated", edited[..edited.len() / 2].to_vec()),
        ("bad_ids", bad_ids()),
        ("empty", Vec::new()),
    ]
}

#[test]
#[ignore = "rewrites the seed corpus files"]
fn write_seed_corpus() {
    let req = request();
    let mut seeds: Vec<(&str, &str, Vec<u8>)> = vec![
        ("scanner", "request", req.clone()),
        ("scanner", "truncated", req[..req.len() / 2].to_vec()),
        ("scanner", "empty", Vec::new()),
        ("scanner", "group", vec![0xa3, 0x06, 0x08, 0x01, 0xa4, 0x06]),
        ("scanner", "bad_ids", bad_ids()),
    ];
    let framed = grpc::encode_message(&req, Compression::Identity).unwrap();
    let zipped = grpc::encode_message(&req, Compression::Gzip).unwrap();
    seeds.push(("grpc_deframer", "one", [&[7u8][..], &framed].concat()));
    seeds.push((
        "grpc_deframer",
        "two_gzip",
        [&[3u8][..], &framed, &zipped].concat(),
    ));
    seeds.push(("grpc_deframer", "bad_flag", vec![1, 9, 0, 0, 0, 1, 0]));
    for (target, codec) in [
        ("gzip", Compression::Gzip),
        ("zstd", Compression::Zstd),
        ("snappy", Compression::Snappy),
    ] {
        let z = codec.compress(&req).unwrap();
        seeds.push((target, "request", z.clone()));
        seeds.push((target, "truncated", z[..z.len() / 2].to_vec()));
        seeds.push((target, "zeros", codec.compress(&[0u8; 4096]).unwrap()));
    }
    for (name, data) in json_seeds() {
        seeds.push(("json", name, data));
    }
    for (name, data) in control_seeds() {
        seeds.push(("control", name, data));
    }
    for (target, request) in [
        ("logs_scanner", logs_request(false)),
        ("metrics_scanner", metrics_request(false)),
    ] {
        seeds.push((target, "request", request.clone()));
        seeds.push((target, "truncated", request[..request.len() / 2].to_vec()));
        seeds.push((target, "empty", Vec::new()));
    }
    seeds.push(("logs_scanner", "bad_ids", logs_request(true)));
    seeds.push(("metrics_scanner", "bad_ids", metrics_request(true)));
    seeds.push(("metrics_scanner", "oneof", metrics_oneof()));
    for (name, data) in hop_seeds() {
        seeds.push(("hop", name, data.into_bytes()));
    }
    for (name, data) in rewrite_seeds() {
        seeds.push(("rewrite", name, data));
    }
    for (target, name, data) in seeds {
        let dir = corpus_dir(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("seed-{name}")), data).unwrap();
    }
}
