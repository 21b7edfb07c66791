//! Criterion benches of the wire layer: scan, split into 4 by trace id, re-frame, and the same
//! split done the conventional way (prost decode → regroup → encode), on a realistic request
//! (1000 spans of ~225 bytes with 8 attributes) and on a large-attribute request.
//!
//! `json/…` compares OTLP/JSON decoding, streaming against the old value tree.
//! `receive_walk/…` compares the receivers' walk before (`count_spans`) and after (`check_spans`)
//! the pdata check, and prints an alternating before/after figure.
//!
//! `signals/…`: logs and metrics (count, check, the splits into 4 by each routing key, prost's
//! decode for scale), throughput in records or data points.
//!
//! `rewrite/…`: the processors' rewrite primitive (`tailgate_proto::rewrite`) on 1000 spans with
//! 10 attributes: no edit, set one span attribute, delete 2 of the 10, insert a resource
//! attribute, and the set done with prost (decode → edit → encode) for scale; spans/s only.
//!
//! Each benchmark runs twice, once reporting spans/s (`spans/…`) and once MB/s (`bytes/…`).
//! Time is the benchmark thread's *CPU time* (not wall time): the machine these run on is shared
//! with compilers, and spans per CPU-second on one core is the figure that matters.
//! Run: `CARGO_TARGET_DIR=/work/targets/proto cargo bench -p tailgate-proto --bench wire`.

// criterion_group! generates an undocumented pub function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use cpu_time::ThreadTime;
use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value::Value, AnyValue, InstrumentationScope, KeyValue,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use tailgate_proto::attributes::AnyValue as WireValue;
use tailgate_proto::fuzzing::value_tree_json_to_protobuf;
use tailgate_proto::json::json_to_protobuf;
use tailgate_proto::rewrite::{AttrEdits, ResourceCtx, Rewriter, SpanCtx, TraceVisitor, Verdict};
use tailgate_proto::{reframe, scan, Splitter};

/// Criterion measurement: CPU time of the benchmarking thread.
struct CpuTime;

impl Measurement for CpuTime {
    type Intermediate = ThreadTime;
    type Value = Duration;

    fn start(&self) -> ThreadTime {
        ThreadTime::now()
    }
    fn end(&self, start: ThreadTime) -> Duration {
        start.elapsed()
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &CpuFormatter
    }
}

/// Formats CPU nanoseconds and throughput per CPU-second.
struct CpuFormatter;

impl ValueFormatter for CpuFormatter {
    fn scale_values(&self, typical_ns: f64, values: &mut [f64]) -> &'static str {
        let (factor, unit) = match typical_ns {
            t if t < 1e3 => (1.0, "ns cpu"),
            t if t < 1e6 => (1e-3, "µs cpu"),
            t if t < 1e9 => (1e-6, "ms cpu"),
            _ => (1e-9, "s cpu"),
        };
        values.iter_mut().for_each(|v| *v *= factor);
        unit
    }
    fn scale_throughputs(
        &self,
        _typical: f64,
        throughput: &Throughput,
        values: &mut [f64],
    ) -> &'static str {
        // per ns × 1e9 = per second; / 1e6 = millions (or MB): × 1e3 overall.
        let (n, unit) = match *throughput {
            Throughput::Bytes(b) | Throughput::BytesDecimal(b) => (b, "MB/cpu-s"),
            Throughput::Elements(e) => (e, "M items/cpu-s"),
        };
        values.iter_mut().for_each(|v| *v = n as f64 * 1e3 / *v);
        unit
    }
    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

/// Deterministic pseudo-random ids (SplitMix64), so runs are comparable.
struct Ids(u64);

impl Ids {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
    }
}

fn s(v: &str) -> Value {
    Value::StringValue(v.into())
}

/// A span like an HTTP server instrumentation emits, with 8 attributes.
fn http_span(ids: &mut Ids, i: u64, big_attr: usize) -> Span {
    let trace = ids
        .next()
        .to_le_bytes()
        .into_iter()
        .chain(ids.next().to_le_bytes())
        .collect();
    let mut attributes = vec![
        kv("http.method", s("GET")),
        kv("http.status_code", Value::IntValue(200)),
        kv("net.peer.port", Value::IntValue(8080)),
        kv("thread.id", Value::IntValue(42)),
        kv("component", s("http")),
        kv("peer.service", s("db")),
        kv("error", Value::BoolValue(false)),
        kv("user.id", s("u42")),
    ];
    if big_attr > 0 {
        attributes.push(kv(
            "db.statement",
            s(&"SELECT * FROM t WHERE id = ? ".repeat(big_attr / 30)),
        ));
    }
    Span {
        trace_id: trace,
        span_id: ids.next().to_le_bytes().to_vec(),
        parent_span_id: ids.next().to_le_bytes().to_vec(),
        name: "GET /users".into(),
        kind: 2,
        start_time_unix_nano: 1_700_000_000_000_000_000 + i * 1000,
        end_time_unix_nano: 1_700_000_000_000_000_000 + i * 1000 + 12_345_678,
        attributes,
        flags: 0x101,
        ..Default::default()
    }
}

fn request(spans: u64, big_attr: usize) -> Bytes {
    let mut ids = Ids(42);
    let resource = Resource {
        attributes: vec![
            kv("service.name", s("users")),
            kv("service.version", s("1.4.2")),
            kv("host.name", s("node-17")),
            kv("k8s.pod.name", s("users-7d9f8b6c5-x2x9z")),
        ],
        ..Default::default()
    };
    let scope = InstrumentationScope {
        name: "io.opentelemetry.okhttp-3.0".into(),
        version: "2.9.0".into(),
        ..Default::default()
    };
    let req = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource),
            scope_spans: vec![ScopeSpans {
                scope: Some(scope),
                spans: (0..spans)
                    .map(|i| http_span(&mut ids, i, big_attr))
                    .collect(),
                schema_url: String::new(),
            }],
            schema_url: "https://opentelemetry.io/schemas/1.24.0".into(),
        }],
    };
    Bytes::from(req.encode_to_vec())
}

/// The destination of a trace id, as an agent would compute it (any hash of the id works here).
fn route(trace_id: &[u8]) -> usize {
    let mut b = [0u8; 8];
    if trace_id.len() == 16 {
        b.copy_from_slice(&trace_id[8..16]);
    }
    (u64::from_le_bytes(b) % 4) as usize
}

/// The conventional path: decode everything, regroup per destination, encode every part.
fn prost_split(buf: &[u8]) -> Vec<Vec<u8>> {
    let Ok(req) = ExportTraceServiceRequest::decode(buf) else {
        return Vec::new();
    };
    let mut parts: Vec<ExportTraceServiceRequest> = (0..4)
        .map(|_| ExportTraceServiceRequest::default())
        .collect();
    for rs in req.resource_spans {
        for ss in rs.scope_spans {
            let mut by_dest: Vec<Vec<Span>> = vec![Vec::new(); 4];
            for span in ss.spans {
                by_dest[route(&span.trace_id)].push(span);
            }
            for (d, spans) in by_dest
                .into_iter()
                .enumerate()
                .filter(|(_, s)| !s.is_empty())
            {
                parts[d].resource_spans.push(ResourceSpans {
                    resource: rs.resource.clone(),
                    scope_spans: vec![ScopeSpans {
                        scope: ss.scope.clone(),
                        spans,
                        schema_url: ss.schema_url.clone(),
                    }],
                    schema_url: rs.schema_url.clone(),
                });
            }
        }
    }
    parts.iter().map(|p| p.encode_to_vec()).collect()
}

fn bench_request(c: &mut Criterion<CpuTime>, label: &str, buf: &Bytes) {
    let spans = tailgate_proto::count_spans(buf).unwrap_or(0) as u64;
    eprintln!(
        "{label}: {spans} spans, {} bytes, {} B/span",
        buf.len(),
        buf.len() as u64 / spans.max(1)
    );
    let views = scan(buf).unwrap_or_default();
    for (unit, throughput) in [
        ("spans", Throughput::Elements(spans)),
        ("bytes", Throughput::Bytes(buf.len() as u64)),
    ] {
        let mut g = c.benchmark_group(format!("{unit}/{label}"));
        g.throughput(throughput);
        g.warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2))
            .sample_size(20);
        g.bench_function("count_spans", |b| {
            b.iter(|| tailgate_proto::count_spans(black_box(buf)))
        });
        g.bench_function("scan_views", |b| {
            b.iter(|| scan(black_box(buf)).map(|v| v.len()))
        });
        let mut splitter = Splitter::new();
        g.bench_function("split4", |b| {
            b.iter(|| {
                splitter
                    .split(black_box(buf), 4, |s| route(s.trace_id()))
                    .map(|p| p.len())
            })
        });
        // The same with output buffers reused (cleared, capacity kept): shows the allocator's share.
        let mut outs: Vec<Vec<u8>> = vec![Vec::new(); 4];
        g.bench_function("split4_reused_outputs", |b| {
            b.iter(|| {
                outs.iter_mut().for_each(Vec::clear);
                splitter
                    .split_into(black_box(buf), &mut outs, |s| route(s.trace_id()))
                    .map(|()| outs[0].len())
            })
        });
        g.bench_function("reframe", |b| b.iter(|| reframe(black_box(&views)).len()));
        g.bench_function("prost_split4", |b| {
            b.iter(|| prost_split(black_box(buf)).len())
        });
        g.finish();
    }
}

/// The receive path's walk before and after the pdata check: `count_spans` (structure only, what
/// the receivers ran before) against `check_spans` (the same walk checking every span's ids and
/// wire types). Criterion measures each; `alternate` then runs both in interleaved rounds in this
/// process and prints the median CPU ns per span of each, so a busy neighbour slows both alike.
fn bench_receive_walk(c: &mut Criterion<CpuTime>, label: &str, buf: &Bytes) {
    let spans = tailgate_proto::count_spans(buf).unwrap_or(0) as u64;
    let mut g = c.benchmark_group(format!("receive_walk/{label}"));
    g.throughput(Throughput::Elements(spans));
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    g.bench_function("count_spans_before", |b| {
        b.iter(|| tailgate_proto::count_spans(black_box(buf)))
    });
    g.bench_function("check_spans_after", |b| {
        b.iter(|| tailgate_proto::check_spans(black_box(buf)))
    });
    g.finish();
    alternate(label, buf, spans.max(1));
}

/// Interleaved rounds of both walks; prints median CPU ns per span.
fn alternate(label: &str, buf: &[u8], spans: u64) {
    const ROUNDS: usize = 31;
    const ITERS: u64 = 200;
    let per_span = |start: ThreadTime| start.elapsed().as_nanos() as f64 / (ITERS * spans) as f64;
    let (mut before, mut after) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let t = ThreadTime::now();
        for _ in 0..ITERS {
            let _ = black_box(tailgate_proto::count_spans(black_box(buf)));
        }
        before.push(per_span(t));
        let t = ThreadTime::now();
        for _ in 0..ITERS {
            let _ = black_box(tailgate_proto::check_spans(black_box(buf)));
        }
        after.push(per_span(t));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (b, a) = (median(&mut before), median(&mut after));
    eprintln!(
        "receive_walk/{label} alternating ({ROUNDS} rounds × {ITERS}): count_spans {b:.2} ns/span, \
         check_spans {a:.2} ns/span, added {:.2} ns/span",
        a - b
    );
}

/// OTLP/JSON to protobuf: the streaming transcoder against the value-tree decoder it replaced
/// (same process, same text, alternating samples), on the request as opentelemetry-proto's serde
/// writes it.
fn bench_json(c: &mut Criterion<CpuTime>, label: &str, buf: &Bytes) {
    let Ok(req) = ExportTraceServiceRequest::decode(&buf[..]) else {
        return;
    };
    let Ok(json) = serde_json::to_vec(&req) else {
        return;
    };
    let spans = tailgate_proto::count_spans(buf).unwrap_or(0) as u64;
    eprintln!("json/{label}: {spans} spans, {} bytes of JSON", json.len());
    let mut g = c.benchmark_group(format!("json/{label}"));
    g.throughput(Throughput::Elements(spans));
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    g.bench_function("streaming", |b| {
        b.iter(|| json_to_protobuf(black_box(&json)).map(|p| p.len()))
    });
    g.bench_function("value_tree", |b| {
        b.iter(|| value_tree_json_to_protobuf(black_box(&json)).map(|p| p.len()))
    });
    // Reference only: serde straight into the prost structs, then encode. No value tree, but no
    // budget either, and it refuses numeric timestamps (which this text does not have).
    g.bench_function("prost_structs", |b| {
        b.iter(|| {
            serde_json::from_slice::<ExportTraceServiceRequest>(black_box(&json))
                .map(|r| r.encode_to_vec().len())
        })
    });
    g.finish();
}

/// A logs request: 4 services × 250 records like an application logger emits (severity, a
/// message body, 5 attributes, trace and span ids), about 200 B each.
fn logs_request() -> Bytes {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    let mut ids = Ids(11);
    let resource_logs = (0..4)
        .map(|r| ResourceLogs {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", s(&format!("service-{r}"))),
                    kv("host.name", s("ip-10-0-0-1.ec2.internal")),
                ],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "app.logger".into(),
                    ..Default::default()
                }),
                log_records: (0..250u64)
                    .map(|i| LogRecord {
                        time_unix_nano: 1_700_000_000_000_000_000 + i,
                        observed_time_unix_nano: 1_700_000_000_000_000_100 + i,
                        severity_number: 9,
                        severity_text: "INFO".into(),
                        body: Some(AnyValue {
                            value: Some(s(&format!("request {i} handled in {} ms", i % 97))),
                        }),
                        attributes: vec![
                            kv("http.method", s("GET")),
                            kv("http.route", s("/api/v1/orders/{id}")),
                            kv("http.status_code", Value::IntValue(200)),
                            kv("user.id", s(&format!("u{}", ids.next() % 10_000))),
                            kv("thread.name", s("worker-3")),
                        ],
                        trace_id: [ids.next().to_le_bytes(), ids.next().to_le_bytes()].concat(),
                        span_id: ids.next().to_le_bytes().to_vec(),
                        flags: 1,
                        ..Default::default()
                    })
                    .collect(),
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        })
        .collect();
    Bytes::from(ExportLogsServiceRequest { resource_logs }.encode_to_vec())
}

/// A metrics request: 4 services × 50 metrics × 5 data points (sums and gauges with 3
/// attributes, every fifth metric a 10-bucket histogram), 1000 data points.
fn metrics_request() -> Bytes {
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::metrics::v1::{
        metric::Data, number_data_point, Gauge, Histogram, HistogramDataPoint, Metric,
        NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
    };
    let attrs = |p: u64| {
        vec![
            kv("http.method", s("GET")),
            kv("http.route", s(&format!("/api/v1/r{p}"))),
            kv("http.status_code", Value::IntValue(200)),
        ]
    };
    let number = |p: u64| NumberDataPoint {
        attributes: attrs(p),
        start_time_unix_nano: 1_700_000_000_000_000_000,
        time_unix_nano: 1_700_000_010_000_000_000,
        value: Some(number_data_point::Value::AsDouble(p as f64)),
        ..Default::default()
    };
    let metric = |m: u64| Metric {
        name: format!("app.metric.{m}"),
        description: "a metric".into(),
        unit: "ms".into(),
        data: Some(match m % 5 {
            0 => Data::Histogram(Histogram {
                data_points: (0..5)
                    .map(|p| HistogramDataPoint {
                        attributes: attrs(p),
                        count: 10,
                        sum: Some(12.5),
                        bucket_counts: vec![1; 10],
                        explicit_bounds: (1..10).map(f64::from).collect(),
                        ..Default::default()
                    })
                    .collect(),
                aggregation_temporality: 2,
            }),
            1 | 2 => Data::Sum(Sum {
                data_points: (0..5).map(number).collect(),
                aggregation_temporality: 2,
                is_monotonic: true,
            }),
            _ => Data::Gauge(Gauge {
                data_points: (0..5).map(number).collect(),
            }),
        }),
        ..Default::default()
    };
    let resource_metrics = (0..4)
        .map(|r| ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![kv("service.name", s(&format!("service-{r}")))],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "app.meter".into(),
                    ..Default::default()
                }),
                metrics: (0..50).map(metric).collect(),
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        })
        .collect();
    Bytes::from(ExportMetricsServiceRequest { resource_metrics }.encode_to_vec())
}

/// FNV-1a of some byte strings, modulo 4: a routing key over names and attributes.
fn fnv4(parts: &[&[u8]]) -> usize {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for p in parts {
        for b in *p {
            h = (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    (h % 4) as usize
}

/// Logs and metrics: the receivers' walks (count, check), the splits into 4 the loadbalancing
/// exporter's routing keys need, and prost's decode for scale. Per record / per data point.
fn bench_signals(c: &mut Criterion<CpuTime>) {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    let logs = logs_request();
    let records = tailgate_proto::count_log_records(&logs).unwrap_or(0) as u64;
    let metrics = metrics_request();
    let points = tailgate_proto::count_data_points(&metrics).unwrap_or(0) as u64;
    eprintln!(
        "signals: logs {records} records, {} B ({} B/record); metrics {points} points, {} B ({} B/point)",
        logs.len(),
        logs.len() as u64 / records.max(1),
        metrics.len(),
        metrics.len() as u64 / points.max(1)
    );
    let mut splitter = Splitter::new();
    let mut outs: Vec<Vec<u8>> = vec![Vec::new(); 4];
    let mut g = c.benchmark_group("signals/logs_1000");
    g.throughput(Throughput::Elements(records));
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    g.bench_function("count", |b| {
        b.iter(|| tailgate_proto::count_log_records(black_box(&logs)))
    });
    g.bench_function("check", |b| {
        b.iter(|| tailgate_proto::check_log_records(black_box(&logs)))
    });
    g.bench_function("split4_trace_id", |b| {
        b.iter(|| {
            outs.iter_mut().for_each(Vec::clear);
            splitter
                .split_logs_into(black_box(&logs), &mut outs, |r| route(r.trace_id()))
                .map(|()| outs[0].len())
        })
    });
    // Keyed by service name, computed once per resource (the index says when it changes).
    g.bench_function("split4_service", |b| {
        b.iter(|| {
            outs.iter_mut().for_each(Vec::clear);
            let mut cached = (u32::MAX, 0);
            splitter
                .split_logs_into(black_box(&logs), &mut outs, |r| {
                    if cached.0 != r.resource_index() {
                        let svc = r.resource().service_name().unwrap_or_default();
                        cached = (r.resource_index(), fnv4(&[svc]));
                    }
                    cached.1
                })
                .map(|()| outs[0].len())
        })
    });
    g.bench_function("prost_decode", |b| {
        b.iter(|| {
            ExportLogsServiceRequest::decode(black_box(&logs[..])).map(|r| r.resource_logs.len())
        })
    });
    g.finish();
    let mut g = c.benchmark_group("signals/metrics_1000_points");
    g.throughput(Throughput::Elements(points));
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    g.bench_function("count_points", |b| {
        b.iter(|| tailgate_proto::count_data_points(black_box(&metrics)))
    });
    g.bench_function("check", |b| {
        b.iter(|| tailgate_proto::check_metrics(black_box(&metrics)))
    });
    g.bench_function("split4_metric_name", |b| {
        b.iter(|| {
            outs.iter_mut().for_each(Vec::clear);
            splitter
                .split_metrics_into(black_box(&metrics), &mut outs, |m| fnv4(&[m.name()]))
                .map(|()| outs[0].len())
        })
    });
    // streamID: the metric's name and the point's attributes (keys and string values here).
    g.bench_function("split4_stream", |b| {
        b.iter(|| {
            outs.iter_mut().for_each(Vec::clear);
            splitter
                .split_data_points_into(black_box(&metrics), &mut outs, |p| {
                    let mut h = fnv4(&[p.metric().name()]);
                    for (k, v) in p.attributes().flatten() {
                        let v = match v {
                            tailgate_proto::attributes::AnyValue::String(v) => v,
                            _ => &[],
                        };
                        h = h.wrapping_mul(31).wrapping_add(fnv4(&[k, v]));
                    }
                    h % 4
                })
                .map(|()| outs[0].len())
        })
    });
    g.bench_function("prost_decode", |b| {
        b.iter(|| {
            ExportMetricsServiceRequest::decode(black_box(&metrics[..]))
                .map(|r| r.resource_metrics.len())
        })
    });
    g.finish();
}

/// `request(spans, 0)` with two more attributes per span (10 in all), as the rewrite benches
/// assume.
fn request_10_attrs(spans: u64) -> Bytes {
    let mut req = ExportTraceServiceRequest::decode(&request(spans, 0)[..]).expect("decodes");
    for span in req
        .resource_spans
        .iter_mut()
        .flat_map(|r| &mut r.scope_spans)
        .flat_map(|s| &mut s.spans)
    {
        span.attributes
            .push(kv("http.url", s("https://users/api/v1/42")));
        span.attributes.push(kv("password", s("hunter2")));
    }
    Bytes::from(req.encode_to_vec())
}

/// The rewrite benches' edit programs.
#[derive(Clone, Copy)]
enum Program {
    NoEdit,
    SetSpanAttribute,
    DeleteTwo,
    ResourceInsert,
}

impl TraceVisitor for Program {
    fn resource(&mut self, _: &ResourceCtx<'_>, edits: &mut AttrEdits) -> Verdict {
        if let Program::ResourceInsert = self {
            edits.set_str("deployment.environment", "prod");
        }
        Verdict::Keep
    }

    fn span(&mut self, _: &SpanCtx<'_>, edits: &mut AttrEdits) -> Verdict {
        match self {
            Program::SetSpanAttribute => edits.set("user.id", WireValue::String(b"redacted")),
            Program::DeleteTwo => {
                edits.delete("user.id");
                edits.delete("password");
            }
            Program::NoEdit | Program::ResourceInsert => {}
        }
        Verdict::Keep
    }
}

fn bench_rewrite(c: &mut Criterion<CpuTime>) {
    let spans = 1000;
    let buf = request_10_attrs(spans);
    let mut g = c.benchmark_group("rewrite");
    g.throughput(Throughput::Elements(spans));
    let mut rewriter = Rewriter::new();
    let mut out = Vec::with_capacity(buf.len() * 2);
    for (name, program) in [
        ("no_edit", Program::NoEdit),
        ("set_span_attribute", Program::SetSpanAttribute),
        ("delete_2_of_10", Program::DeleteTwo),
        ("resource_insert", Program::ResourceInsert),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                let mut program = program;
                rewriter
                    .rewrite_traces(black_box(&buf), &mut program, &mut out)
                    .map(|s| s.items_out)
            })
        });
    }
    g.bench_function("prost_set_span_attribute", |b| {
        b.iter(|| {
            let mut req = ExportTraceServiceRequest::decode(black_box(&buf[..])).expect("decodes");
            for span in req
                .resource_spans
                .iter_mut()
                .flat_map(|r| &mut r.scope_spans)
                .flat_map(|s| &mut s.spans)
            {
                if let Some(kv) = span.attributes.iter_mut().find(|kv| kv.key == "user.id") {
                    kv.value = Some(AnyValue {
                        value: Some(s("redacted")),
                    });
                }
            }
            req.encode_to_vec()
        })
    });
    g.finish();
}

fn benches(c: &mut Criterion<CpuTime>) {
    bench_rewrite(c);
    bench_signals(c);
    bench_request(c, "realistic_1000x225B", &request(1000, 0));
    bench_request(c, "large_attr_100x4KiB", &request(100, 4096));
    bench_receive_walk(c, "realistic_1000x225B", &request(1000, 0));
    bench_receive_walk(c, "large_attr_100x4KiB", &request(100, 4096));
    bench_json(c, "realistic_1000x225B", &request(1000, 0));
    bench_json(c, "large_attr_100x4KiB", &request(100, 4096));
}

criterion_group! {
    name = wire;
    config = Criterion::default().with_measurement(CpuTime);
    targets = benches
}
criterion_main!(wire);
