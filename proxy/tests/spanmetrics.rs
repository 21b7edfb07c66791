//! spanmetrics → prometheus end to end: the real binary on loopback, known spans in, scrape out.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::needless_range_loop)]

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{status, ResourceSpans, ScopeSpans, Span, Status};
use support::{export, http_get, Tailgate};
use tailgate_proto::compression::Compression;

const SERVICES: [&str; 2] = ["checkout", "db"];
const NAMES: [&str; 2] = ["GET /cart", "SELECT"];
/// (wire value, label)
const KINDS: [(i32, &str); 2] = [(2, "SPAN_KIND_SERVER"), (3, "SPAN_KIND_CLIENT")];
const STATUSES: [(i32, &str); 2] = [(0, "STATUS_CODE_UNSET"), (2, "STATUS_CODE_ERROR")];
/// Span durations in ms, against buckets [10ms, 100ms, 1s]: 5 → le 10, 10 → le 10 (inclusive),
/// 50 → le 100, 700 → le 1000, 3000 → +Inf.
const DURATIONS_MS: [u64; 5] = [5, 10, 50, 700, 3000];
const BOUNDS: [&str; 4] = ["10", "100", "1000", "+Inf"];

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
    }
}

/// One label set of the test traffic.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Series {
    service: usize,
    name: usize,
    kind: usize,
    status: usize,
}

impl Series {
    /// The Prometheus labels the collector would render (sorted by name; `http_method` only on
    /// server spans, which carry the attribute).
    fn labels(&self) -> String {
        let mut l = Vec::new();
        if self.kind == 0 {
            l.push("http_method=\"GET\"".to_owned());
        }
        l.push(format!("job=\"{}\"", SERVICES[self.service]));
        l.push(format!("service_name=\"{}\"", SERVICES[self.service]));
        l.push(format!("span_kind=\"{}\"", KINDS[self.kind].1));
        l.push(format!("span_name=\"{}\"", NAMES[self.name]));
        l.push(format!("status_code=\"{}\"", STATUSES[self.status].1));
        l.push("tier=\"gw\"".to_owned());
        l.join(",")
    }
}

/// What was sent: per series, the calls and the per-bucket counts.
#[derive(Default)]
struct Expected {
    calls: BTreeMap<Series, u64>,
    buckets: BTreeMap<Series, [u64; 4]>,
    sum_ms: BTreeMap<Series, u64>,
}

/// `n` requests; request `i` holds spans of every series, with durations cycling.
fn traffic(n: usize, expected: &mut Expected) -> Vec<ExportTraceServiceRequest> {
    let mut out = Vec::new();
    let mut d = 0usize;
    for i in 0..n {
        let mut resource_spans = Vec::new();
        for (si, svc) in SERVICES.iter().enumerate() {
            let mut spans = Vec::new();
            for ni in 0..NAMES.len() {
                for ki in 0..KINDS.len() {
                    for st in 0..STATUSES.len() {
                        // Vary the multiplicity per series so a mix-up between series shows.
                        for _ in 0..=((i + si + ni + ki + st) % 3) {
                            let ms = DURATIONS_MS[d % DURATIONS_MS.len()];
                            d += 1;
                            let series = Series {
                                service: si,
                                name: ni,
                                kind: ki,
                                status: st,
                            };
                            *expected.calls.entry(series.clone()).or_default() += 1;
                            *expected.sum_ms.entry(series.clone()).or_default() += ms;
                            let b = BOUNDS[..3]
                                .iter()
                                .position(|b| ms <= b.parse::<u64>().unwrap())
                                .unwrap_or(3);
                            expected.buckets.entry(series).or_default()[b] += 1;
                            let start = 1_700_000_000_000_000_000u64 + (d as u64) * 1000;
                            spans.push(Span {
                                trace_id: [(i as u8).wrapping_add(1); 16].to_vec(),
                                span_id: (d as u64 + 1).to_be_bytes().to_vec(),
                                name: NAMES[ni].into(),
                                kind: KINDS[ki].0,
                                start_time_unix_nano: start,
                                end_time_unix_nano: start + ms * 1_000_000,
                                attributes: if ki == 0 {
                                    vec![kv("http.method", "GET")]
                                } else {
                                    vec![]
                                },
                                status: (STATUSES[st].0 != 0).then(|| Status {
                                    code: status::StatusCode::Error as i32,
                                    ..Default::default()
                                }),
                                ..Default::default()
                            });
                        }
                    }
                }
            }
            resource_spans.push(ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", svc), kv("host.name", "h1")],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            });
        }
        out.push(ExportTraceServiceRequest { resource_spans });
    }
    out
}

fn config(temporality: &str) -> String {
    format!(
        "
receivers: {{otlp: {{protocols: {{grpc: {{endpoint: 127.0.0.1:0}}}}}}}}
connectors:
  spanmetrics:
    histogram: {{explicit: {{buckets: [10ms, 100ms, 1s]}}}}
    dimensions: [{{name: http.method}}]
    metrics_flush_interval: 100ms
    aggregation_temporality: {temporality}
exporters:
  prometheus: {{endpoint: 127.0.0.1:0, const_labels: {{tier: gw}}}}
service:
  telemetry: {{metrics: {{address: 127.0.0.1:0}}}}
  pipelines:
    traces: {{receivers: [otlp], exporters: [spanmetrics]}}
    metrics: {{receivers: [spanmetrics], exporters: [prometheus]}}
"
    )
}

/// Scrapes `addr` into series line → value.
fn scrape(addr: SocketAddr) -> BTreeMap<String, f64> {
    let (code, body) = http_get(addr, "/metrics");
    assert_eq!(code, 200, "{body}");
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap();
            (k.to_owned(), v.parse().unwrap())
        })
        .collect()
}

/// Polls the scrape until the calls of every series reach `expected` (flushes are periodic), then
/// returns the scrape; fails after 20 s with what was seen.
fn scrape_until(addr: SocketAddr, expected: &Expected) -> BTreeMap<String, f64> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = scrape(addr);
        let done = expected.calls.iter().all(|(series, n)| {
            s.get(&format!(
                "traces_span_metrics_calls_total{{{}}}",
                series.labels()
            )) == Some(&(*n as f64))
        });
        if done {
            return s;
        }
        assert!(Instant::now() < deadline, "scrape never matched: {s:#?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn check(s: &BTreeMap<String, f64>, expected: &Expected) {
    let total: u64 = expected.calls.values().sum();
    assert_eq!(expected.calls.len(), 16);
    let calls: Vec<_> = s
        .keys()
        .filter(|k| k.starts_with("traces_span_metrics_calls_total"))
        .collect();
    assert_eq!(calls.len(), 16, "one series per label set: {calls:#?}");
    for (series, buckets) in &expected.buckets {
        let l = series.labels();
        let mut cumulative = 0;
        for (i, le) in BOUNDS.iter().enumerate() {
            cumulative += buckets[i];
            let key =
                format!("traces_span_metrics_duration_milliseconds_bucket{{{l},le=\"{le}\"}}");
            assert_eq!(s.get(&key), Some(&(cumulative as f64)), "{key}");
        }
        let count = format!("traces_span_metrics_duration_milliseconds_count{{{l}}}");
        assert_eq!(s.get(&count), Some(&(expected.calls[series] as f64)));
        let sum = format!("traces_span_metrics_duration_milliseconds_sum{{{l}}}");
        assert_eq!(s.get(&sum), Some(&(expected.sum_ms[series] as f64)));
    }
    assert!(total > 0);
}

async fn send_all(addr: SocketAddr, reqs: Vec<ExportTraceServiceRequest>) {
    // One connection per request, several at once: SO_REUSEPORT spreads them over the cores.
    let mut tasks = Vec::new();
    for chunk in reqs.chunks(reqs.len().div_ceil(8)) {
        let chunk = chunk.to_vec();
        tasks.push(tokio::spawn(async move {
            for r in chunk {
                let (code, msg) = export(addr, &r, Compression::Identity).await;
                assert_eq!(code, 0, "{msg}");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

async fn counts_every_span(temporality: &str) {
    let tg = Tailgate::start(&config(temporality), &["--cores", "2"]);
    let prom = tg.addr("exporters::prometheus");
    let mut expected = Expected::default();
    let first = traffic(40, &mut expected);
    send_all(tg.grpc(), first).await;
    check(&scrape_until(prom, &expected), &expected);
    // A second round: totals keep growing (delta points are accumulated by the exporter, as the
    // collector's prometheus exporter does).
    let second = traffic(25, &mut expected);
    send_all(tg.grpc(), second).await;
    check(&scrape_until(prom, &expected), &expected);
    let sent: u64 = expected.calls.values().sum();
    assert_eq!(
        tg.metric("tailgate_connector_spanmetrics_spans_total{connector=\"spanmetrics\"}"),
        Some(sent as f64)
    );
    assert!(tg.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cumulative_counts_every_span_over_two_cores() {
    counts_every_span("AGGREGATION_TEMPORALITY_CUMULATIVE").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_counts_every_span_over_two_cores() {
    counts_every_span("AGGREGATION_TEMPORALITY_DELTA").await;
}

#[test]
fn config_errors_name_their_keys() {
    let dir = support::scratch_dir();
    let path = dir.join("bad.yaml");
    std::fs::write(
        &path,
        "
receivers: {otlp: {protocols: {grpc: }}}
connectors:
  spanmetrics:
    histogram: {unit: h, explicit: {buckets: [1s, 100ms]}}
    dimensions: [{name: service.name}]
    dimensions_cache_size: -1
exporters:
  prometheus: {namespace: x}
service:
  pipelines:
    traces: {receivers: [otlp], exporters: [spanmetrics, prometheus]}
    metrics: {receivers: [spanmetrics], processors: [], exporters: [prometheus]}
",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tailgate"))
        .args(["validate", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "connectors.spanmetrics.dimensions[0].name: duplicate dimension name service.name",
        "connectors.spanmetrics.dimensions_cache_size: invalid cache size: -1",
        "connectors.spanmetrics.histogram.unit: unknown unit \"h\"; allowed: ms, s",
        "connectors.spanmetrics.histogram.explicit.buckets: bucket bounds must be strictly increasing",
        "exporters.prometheus.endpoint: is required",
        "service.pipelines.traces.exporters[1]: exporter \"prometheus\" exports metrics",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
}
