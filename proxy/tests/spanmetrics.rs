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
use support::{export, http_get, Sink, Tailgate};
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
    /// Every duration sent, in ms, per series (for the exponential histogram).
    durations: BTreeMap<Series, Vec<u64>>,
}

/// `n` requests; request `i` holds spans of every series, with durations cycling.
fn traffic(n: usize, expected: &mut Expected) -> Vec<ExportTraceServiceRequest> {
    traffic_with(n, expected, |_| true)
}

/// As [`traffic`], with error spans only in the requests (traces) where `errors(i)` holds.
fn traffic_with(
    n: usize,
    expected: &mut Expected,
    errors: impl Fn(usize) -> bool,
) -> Vec<ExportTraceServiceRequest> {
    let mut out = Vec::new();
    let mut d = 0usize;
    for i in 0..n {
        let mut resource_spans = Vec::new();
        for (si, svc) in SERVICES.iter().enumerate() {
            let mut spans = Vec::new();
            for ni in 0..NAMES.len() {
                for ki in 0..KINDS.len() {
                    for st in 0..STATUSES.len() {
                        if st == 1 && !errors(i) {
                            continue;
                        }
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
                            expected
                                .durations
                                .entry(series.clone())
                                .or_default()
                                .push(ms);
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
    config_with(temporality, "{explicit: {buckets: [10ms, 100ms, 1s]}}")
}

fn config_with(temporality: &str, histogram: &str) -> String {
    format!(
        "
receivers: {{otlp: {{protocols: {{grpc: {{endpoint: 127.0.0.1:0}}}}}}}}
connectors:
  spanmetrics:
    histogram: {histogram}
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

/// The reference gateway shape: one receiver feeds `spanmetrics` and `tail_sampling`; the metrics
/// count every span while only the error traces reach the backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spanmetrics_counts_every_span_before_sampling() {
    let sink = Sink::start().await;
    let cfg = format!(
        "
receivers: {{otlp: {{protocols: {{grpc: {{endpoint: 127.0.0.1:0}}}}}}}}
processors:
  tail_sampling:
    decision_wait: 300ms
    policies: [{{name: errors-policy, type: status_code, status_code: {{status_codes: [ERROR]}}}}]
  batch: {{timeout: 50ms}}
connectors:
  spanmetrics:
    histogram: {{explicit: {{buckets: [10ms, 100ms, 1s]}}}}
    dimensions: [{{name: http.method}}]
    metrics_flush_interval: 100ms
exporters:
  otlp/backend: {{endpoint: {}, tls: {{insecure: true}}}}
  prometheus: {{endpoint: 127.0.0.1:0, const_labels: {{tier: gw}}}}
service:
  telemetry: {{metrics: {{address: 127.0.0.1:0}}}}
  pipelines:
    traces/metrics: {{receivers: [otlp], exporters: [spanmetrics]}}
    traces/sampling: {{receivers: [otlp], processors: [tail_sampling, batch], exporters: [otlp/backend]}}
    metrics: {{receivers: [spanmetrics], exporters: [prometheus]}}
",
        sink.addr
    );
    let tg = Tailgate::start(&cfg, &["--cores", "2"]);
    let mut expected = Expected::default();
    let reqs = traffic_with(40, &mut expected, |i| i % 4 == 0);
    let spans_in = |r: &ExportTraceServiceRequest| -> usize {
        r.resource_spans
            .iter()
            .flat_map(|rs| &rs.scope_spans)
            .map(|ss| ss.spans.len())
            .sum()
    };
    let kept: usize = reqs.iter().step_by(4).map(spans_in).sum();
    let sent: usize = reqs.iter().map(spans_in).sum();
    send_all(tg.grpc(), reqs).await;
    check(
        &scrape_until(tg.addr("exporters::prometheus"), &expected),
        &expected,
    );
    assert_eq!(expected.calls.values().sum::<u64>(), sent as u64);
    sink.wait_spans(kept).await;
    assert!(tg.terminate().success());
    assert_eq!(
        sink.span_count(),
        kept,
        "only the error traces are exported"
    );
    assert!(kept < sent / 2);
}

/// `histogram.exponential` end to end through the binary: the prometheus text shows what the
/// collector's native-histogram conversion shows in text (`le="+Inf"`, `_sum`, `_count`), and
/// those equal the spans and durations sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exponential_histogram_counts_every_span_over_two_cores() {
    let tg = Tailgate::start(
        &config_with(
            "AGGREGATION_TEMPORALITY_CUMULATIVE",
            "{exponential: {max_size: 20}}",
        ),
        &["--cores", "2"],
    );
    let prom = tg.addr("exporters::prometheus");
    let mut expected = Expected::default();
    send_all(tg.grpc(), traffic(40, &mut expected)).await;
    let s = scrape_until(prom, &expected);
    assert_eq!(expected.calls.len(), 16);
    for (series, calls) in &expected.calls {
        let l = series.labels();
        let name = "traces_span_metrics_duration_milliseconds";
        let inf = format!("{name}_bucket{{{l},le=\"+Inf\"}}");
        assert_eq!(s.get(&inf), Some(&(*calls as f64)), "{inf}");
        let count = format!("{name}_count{{{l}}}");
        assert_eq!(s.get(&count), Some(&(*calls as f64)), "{count}");
        let sum = format!("{name}_sum{{{l}}}");
        assert_eq!(
            s.get(&sum),
            Some(&(expected.sum_ms[series] as f64)),
            "{sum}"
        );
    }
    assert!(
        !s.keys().any(|k| k.contains("le=\"10\"")),
        "no explicit buckets"
    );
    let (_, body) = http_get(prom, "/metrics");
    assert!(body.contains("# TYPE traces_span_metrics_duration_milliseconds histogram\n"));
    assert_eq!(
        tg.metric(
            "tailgate_exporter_prometheus_unrenderable_points_total{exporter=\"prometheus\"}"
        ),
        Some(0.0)
    );
    check_native_histograms(prom, &expected);
    assert!(tg.terminate().success());
}

/// The largest scale ≤ 20 at which `durations` span fewer than `max_size` buckets.
fn expected_scale(durations: &[u64], max_size: i32) -> i32 {
    let lo = *durations.iter().min().unwrap();
    let hi = *durations.iter().max().unwrap();
    (-10..=20)
        .rev()
        .find(|s| bucket_index(hi, *s) - bucket_index(lo, *s) < max_size)
        .unwrap()
}

/// The bucket of a duration at a scale: `ceil(log2(ms)·2^scale) − 1` (no test duration is a
/// power of two, so the formula needs no care).
fn bucket_index(ms: u64, scale: i32) -> i32 {
    ((ms as f64).log2() * f64::from(scale).exp2()).ceil() as i32 - 1
}

/// Scrapes the protobuf exposition (what Prometheus asks for with native histograms on) and
/// checks every series' native buckets against the durations sent: schema = scale, native index
/// = OTLP index + 1.
fn check_native_histograms(addr: SocketAddr, expected: &Expected) {
    use prost::Message as _;
    use std::io::{Read as _, Write as _};
    use tailgate::exporter::prometheus::protobuf::MetricFamily;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    assert!(head.contains("io.prometheus.client.MetricFamily"), "{head}");
    let mut body = &raw[split + 4..];
    let mut families = Vec::new();
    while !body.is_empty() {
        families.push(MetricFamily::decode_length_delimited(&mut body).unwrap());
    }
    let hist = families
        .iter()
        .find(|f| f.name.as_deref() == Some("traces_span_metrics_duration_milliseconds"))
        .expect("duration family");
    assert_eq!(hist.r#type, Some(4), "histogram");
    assert_eq!(hist.metric.len(), 16);
    for m in &hist.metric {
        let label = |k: &str| {
            m.label
                .iter()
                .find(|l| l.name.as_deref() == Some(k))
                .and_then(|l| l.value.clone())
                .unwrap()
        };
        let series = Series {
            service: SERVICES
                .iter()
                .position(|s| *s == label("service_name"))
                .unwrap(),
            name: NAMES.iter().position(|s| *s == label("span_name")).unwrap(),
            kind: KINDS
                .iter()
                .position(|k| k.1 == label("span_kind"))
                .unwrap(),
            status: STATUSES
                .iter()
                .position(|k| k.1 == label("status_code"))
                .unwrap(),
        };
        let h = m.histogram.as_ref().unwrap();
        let durations = &expected.durations[&series];
        assert_eq!(h.sample_count, Some(durations.len() as u64));
        let scale = expected_scale(durations, 20);
        assert_eq!(h.schema, Some(scale), "{series:?}");
        assert_eq!(h.zero_count, Some(0));
        assert_eq!(h.positive_span.len(), 1);
        let first = h.positive_span[0].offset.unwrap();
        let mut counts = Vec::new();
        let mut c = 0i64;
        for d in &h.positive_delta {
            c += d;
            counts.push(c as u64);
        }
        let mut want = vec![0u64; counts.len()];
        for d in durations {
            want[(bucket_index(*d, scale) + 1 - first) as usize] += 1;
        }
        assert_eq!(counts, want, "{series:?}");
    }
}

/// The exponential buckets themselves (the text exposition does not show them): the same
/// traffic through two cores' aggregators and the merger, in process. Every series' point holds
/// each duration in the bucket `ceil(log2(ms)·2^scale) − 1`, at the largest scale ≤ 20 where the
/// series' durations span fewer than `max_size` buckets, across two cumulative flushes.
#[test]
fn exponential_buckets_match_the_durations_sent() {
    use std::sync::Arc;
    use tailgate::config::error::ConfigErrors;
    use tailgate::connector::spanmetrics::aggregate::Aggregator;
    use tailgate::connector::spanmetrics::config::SpanMetricsConfig;
    use tailgate::connector::spanmetrics::merger::MergeState;
    use tailgate::metrics_data::MetricData;

    let c: SpanMetricsConfig = serde_yaml::from_str(
        "{histogram: {exponential: {max_size: 20}}, dimensions: [{name: http.method}]}",
    )
    .unwrap();
    let mut errors = ConfigErrors::default();
    let settings = Arc::new(c.resolve("spanmetrics", &mut errors, &mut Vec::new()));
    assert!(errors.is_empty(), "{errors}");
    let mut cores = [
        Aggregator::new(settings.clone()),
        Aggregator::new(settings.clone()),
    ];
    let mut merger = MergeState::new(settings, 0);
    let mut expected = Expected::default();
    let t = Instant::now();
    for round in 0..2 {
        for (i, r) in traffic(30, &mut expected).iter().enumerate() {
            let body = bytes::Bytes::from(prost::Message::encode_to_vec(r));
            let mut spill = Vec::new();
            cores[i % 2].consume(&body, &mut spill).unwrap();
            assert!(spill.is_empty());
        }
        for core in &mut cores {
            merger.apply(core.take(), t, 1);
        }
        let batch = merger.flush(t, 2 + round);
        let mut seen = 0;
        for rm in &batch.resources {
            for m in &rm.metrics {
                let MetricData::ExponentialHistogram { points, .. } = &m.data else {
                    continue;
                };
                assert_eq!(m.name, "traces.span.metrics.duration");
                assert_eq!(m.unit, "ms");
                for p in points {
                    let series = expected_series(&rm.resource, &p.attributes);
                    let durations = &expected.durations[&series];
                    let h = &p.histogram;
                    assert_eq!(h.count(), expected.calls[&series]);
                    assert_eq!(h.sum(), expected.sum_ms[&series] as f64);
                    let lo = *durations.iter().min().unwrap();
                    let hi = *durations.iter().max().unwrap();
                    assert_eq!(h.min_max(), Some((lo as f64, hi as f64)));
                    // None of the durations is a power of two, so the formula needs no care.
                    let index = |v: u64, s: i32| {
                        ((v as f64).log2() * f64::from(s).exp2()).ceil() as i32 - 1
                    };
                    let scale = (-10..=20)
                        .rev()
                        .find(|s| index(hi, *s) - index(lo, *s) < 20)
                        .unwrap();
                    assert_eq!(h.scale(), scale, "{series:?}");
                    let b = h.positive();
                    let mut counts = vec![0u64; (index(hi, scale) - index(lo, scale) + 1) as usize];
                    for d in durations {
                        counts[(index(*d, scale) - b.offset) as usize] += 1;
                    }
                    assert_eq!(b.offset, index(lo, scale));
                    assert_eq!(b.counts, counts, "{series:?}");
                    assert_eq!(h.zero_count(), 0);
                    seen += 1;
                }
            }
        }
        assert_eq!(seen, 16, "one point per series");
    }
}

/// The test series of a point, from its resource and attributes.
fn expected_series(resource: &[(String, String)], attributes: &[(String, String)]) -> Series {
    let get = |k: &str| {
        attributes
            .iter()
            .chain(resource)
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .unwrap()
    };
    Series {
        service: SERVICES
            .iter()
            .position(|s| *s == get("service.name"))
            .unwrap(),
        name: NAMES.iter().position(|s| *s == get("span.name")).unwrap(),
        kind: KINDS.iter().position(|k| k.1 == get("span.kind")).unwrap(),
        status: STATUSES
            .iter()
            .position(|k| k.1 == get("status.code"))
            .unwrap(),
    }
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

/// `tailgate.exemplars_kept_by` is checked against the whole config, errors at its key path.
#[test]
fn exemplars_kept_by_errors_name_their_keys() {
    let dir = support::scratch_dir();
    let path = dir.join("kept.yaml");
    std::fs::write(
        &path,
        "
receivers: {otlp: {protocols: {grpc: }}}
processors:
  tail_sampling: {policies: [{name: all, type: always_sample}]}
  tail_sampling/unused: {policies: [{name: all, type: always_sample}]}
  batch:
connectors:
  spanmetrics/a: {exemplars: {enabled: true}, tailgate: {exemplars_kept_by: tail_sampling/unused}}
  spanmetrics/b: {exemplars: {enabled: true}, tailgate: {exemplars_kept_by: batch}}
  spanmetrics/c: {exemplars: {enabled: true}, tailgate: {exemplars_kept_by: tail_sampling/nowhere}}
  spanmetrics/d: {tailgate: {exemplars_kept_by: tail_sampling}}
  spanmetrics/ok: {exemplars: {enabled: true}, tailgate: {exemplars_kept_by: tail_sampling}}
exporters:
  prometheus: {endpoint: 127.0.0.1:0}
  nop:
service:
  pipelines:
    traces: {receivers: [otlp], exporters: [spanmetrics/a, spanmetrics/b, spanmetrics/c, spanmetrics/d, spanmetrics/ok]}
    traces/sampled: {receivers: [otlp], processors: [tail_sampling, batch], exporters: [nop]}
    metrics: {receivers: [spanmetrics/a, spanmetrics/b, spanmetrics/c, spanmetrics/d, spanmetrics/ok], exporters: [prometheus]}
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
        "connectors.spanmetrics/a.tailgate.exemplars_kept_by: processor \"tail_sampling/unused\" is in no traces pipeline",
        "connectors.spanmetrics/b.tailgate.exemplars_kept_by: \"batch\" is not a tail_sampling processor",
        "connectors.spanmetrics/c.tailgate.exemplars_kept_by: \"tail_sampling/nowhere\" is not a tail_sampling processor",
        "connectors.spanmetrics/d.tailgate.exemplars_kept_by: needs exemplars.enabled: true",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
    assert!(!err.contains("spanmetrics/ok"), "{err}");
}

/// One span named `name` of service `lag`.
fn one_span(name: &str) -> ExportTraceServiceRequest {
    let start = 1_700_000_000_000_000_000u64;
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "lag")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: [7; 16].to_vec(),
                    span_id: [9; 8].to_vec(),
                    name: name.into(),
                    kind: 2,
                    start_time_unix_nano: start,
                    end_time_unix_nano: start + 1_000_000,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// The timestamp of every `lag` calls series on the scrape (with `send_timestamps`), by span
/// name: with delta temporality a series with one span is in exactly one flush, so its stamp is
/// the time of the flush that first carried it.
fn flush_times(addr: SocketAddr) -> BTreeMap<String, u64> {
    let (code, body) = http_get(addr, "/metrics");
    assert_eq!(code, 200, "{body}");
    let prefix = "traces_span_metrics_calls_total{job=\"lag\",";
    body.lines()
        .filter_map(|l| l.strip_prefix(prefix))
        .map(|l| {
            let (labels, rest) = l.split_once("} ").unwrap();
            let name = labels.split("span_name=\"").nth(1).unwrap();
            let name = name.split('"').next().unwrap();
            let (value, ts) = rest.split_once(' ').expect("a timestamp");
            assert_eq!(value, "1", "{l}");
            (name.to_owned(), ts.parse().unwrap())
        })
        .collect()
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Issue 19: counts show at most one interval (plus the hand-over margin, a tenth) after the
/// spans arrive, not two. One span every tenth of an interval for two intervals covers every
/// phase of the flush grid, including the worst one (just after a hand-over: two independent
/// timers showed such spans nearly two intervals later). The delay is read off the merger's own
/// flush stamps against the send time (one clock), so it does not depend on how fast the test
/// polls; the threshold, 1.5 intervals against a bound of 1.1, leaves 0.8 s for a stalled core.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_show_within_one_interval_of_the_spans() {
    const INTERVAL_MS: u64 = 2000;
    const SPANS: u64 = 20;
    let yaml = format!(
        "
receivers: {{otlp: {{protocols: {{grpc: {{endpoint: 127.0.0.1:0}}}}}}}}
connectors:
  spanmetrics:
    metrics_flush_interval: {INTERVAL_MS}ms
    aggregation_temporality: AGGREGATION_TEMPORALITY_DELTA
exporters:
  prometheus: {{endpoint: 127.0.0.1:0, send_timestamps: true}}
service:
  telemetry: {{metrics: {{address: 127.0.0.1:0}}}}
  pipelines:
    traces: {{receivers: [otlp], exporters: [spanmetrics]}}
    metrics: {{receivers: [spanmetrics], exporters: [prometheus]}}
"
    );
    let tg = Tailgate::start(&yaml, &["--cores", "2"]);
    let prom = tg.addr("exporters::prometheus");
    let mut sent = BTreeMap::new();
    for i in 0..SPANS {
        let name = format!("span-{i:02}");
        sent.insert(name.clone(), unix_ms());
        let (code, msg) = export(tg.grpc(), &one_span(&name), Compression::Identity).await;
        assert_eq!(code, 0, "{msg}");
        // Pacing, not synchronisation: spreads the sends over the phases of the grid.
        tokio::time::sleep(Duration::from_millis(INTERVAL_MS / 10)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let shown = loop {
        let shown = flush_times(prom);
        if shown.len() == sent.len() {
            break shown;
        }
        assert!(Instant::now() < deadline, "not all shown: {shown:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let lags: Vec<(String, i64)> = sent
        .iter()
        .map(|(name, at)| (name.clone(), shown[name] as i64 - *at as i64))
        .collect();
    let worst = lags.iter().map(|(_, l)| *l).max().unwrap();
    eprintln!("worst delay {worst} ms (interval {INTERVAL_MS} ms): {lags:?}");
    assert!(lags.iter().all(|(_, l)| *l >= 0), "{lags:?}");
    assert!(
        worst < (INTERVAL_MS * 3 / 2) as i64,
        "a span showed {worst} ms after it was sent (interval {INTERVAL_MS} ms): {lags:?}"
    );
    assert!(tg.terminate().success());
}

// === exemplars (OpenMetrics) ===

/// The Accept header Prometheus sends by default (OpenMetrics preferred).
const OPENMETRICS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// GET /metrics asking for OpenMetrics: (response head, body).
fn scrape_openmetrics(addr: SocketAddr) -> (String, String) {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAccept: {OPENMETRICS_ACCEPT}\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (head.to_owned(), body.to_owned())
}

/// One exemplar as a scrape shows it.
#[derive(Debug, Clone, PartialEq)]
struct Shown {
    /// `name{labels}` of the sample it is on.
    sample: String,
    /// The sample's value.
    value: String,
    trace_id: String,
    span_id: String,
    exemplar_value: f64,
}

/// Every exemplar of an OpenMetrics body (`sample value # {span_id="..",trace_id=".."} v ts`).
fn exemplars_shown(body: &str) -> Vec<Shown> {
    body.lines()
        .filter_map(|l| l.split_once(" # "))
        .filter(|(s, _)| !s.starts_with('#'))
        .map(|(s, e)| {
            let (sample, value) = s.rsplit_once(' ').unwrap();
            let (labels, rest) = e.split_once("} ").unwrap();
            let label = |k: &str| {
                let start = labels.find(&format!("{k}=\"")).unwrap() + k.len() + 2;
                labels[start..start + labels[start..].find('"').unwrap()].to_owned()
            };
            let (v, ts) = rest.split_once(' ').unwrap();
            assert!(
                ts.parse::<f64>().unwrap() > 1.6e9,
                "a Unix time in seconds: {e}"
            );
            Shown {
                sample: sample.to_owned(),
                value: value.to_owned(),
                trace_id: label("trace_id"),
                span_id: label("span_id"),
                exemplar_value: v.parse().unwrap(),
            }
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A span of service `ex` with a trace ID of `trace` and a span ID of `span` (each byte repeated).
fn ex_span(name: &str, trace: u8, span: u8, ms: u64, error: bool) -> Span {
    let start = 1_700_000_000_000_000_000u64;
    Span {
        trace_id: vec![trace; 16],
        span_id: vec![span; 8],
        name: name.into(),
        kind: 2,
        start_time_unix_nano: start,
        end_time_unix_nano: start + ms * 1_000_000,
        status: error.then(|| Status {
            code: status::StatusCode::Error as i32,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn ex_request(spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "ex")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// `exemplars` end to end: the spans' trace and span IDs and durations reach the OpenMetrics
/// scrape (`enable_open_metrics`), `max_per_data_point: 1` keeps each series' first span of the
/// interval, on the counter and in the bucket its duration falls in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exemplars_reach_the_openmetrics_scrape_capped_per_point() {
    let cfg = "
receivers: {otlp: {protocols: {grpc: {endpoint: 127.0.0.1:0}}}}
connectors:
  spanmetrics:
    histogram: {explicit: {buckets: [10ms, 100ms, 1s]}}
    metrics_flush_interval: 2s
    exemplars: {enabled: true, max_per_data_point: 1}
exporters:
  prometheus: {endpoint: 127.0.0.1:0, enable_open_metrics: true}
service:
  telemetry: {metrics: {address: 127.0.0.1:0}}
  pipelines:
    traces: {receivers: [otlp], exporters: [spanmetrics]}
    metrics: {receivers: [spanmetrics], exporters: [prometheus]}
";
    let tg = Tailgate::start(cfg, &["--cores", "2"]);
    let prom = tg.addr("exporters::prometheus");
    // One request (one core, one hand-over): series `a` gets spans 1, 3, 5, 7, `b` 2, 4, 6, 8.
    let ms = [5, 50, 700, 3000, 7, 70, 900, 4000];
    let spans = (0..8u8)
        .map(|i| {
            let name = if i % 2 == 0 { "a" } else { "b" };
            ex_span(name, i + 1, i + 1, ms[usize::from(i)], false)
        })
        .collect();
    let (code, msg) = export(tg.grpc(), &ex_request(spans), Compression::Identity).await;
    assert_eq!(code, 0, "{msg}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let (head, body) = loop {
        let (head, body) = scrape_openmetrics(prom);
        let complete = ["a", "b"].iter().all(|n| {
            body.lines().any(|l| {
                l.starts_with("traces_span_metrics_calls_total{")
                    && l.contains(&format!("span_name=\"{n}\""))
                    && l.contains("} 4.0")
            })
        });
        if complete {
            break (head, body);
        }
        assert!(Instant::now() < deadline, "never complete:\n{body}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        head.contains("application/openmetrics-text; version=1.0.0"),
        "{head}"
    );
    assert!(body.ends_with("# EOF\n"), "{body}");
    assert!(
        body.contains("# TYPE traces_span_metrics_calls counter"),
        "{body}"
    );
    let shown = exemplars_shown(&body);
    let on = |kind: &str, name: &str| -> Vec<&Shown> {
        shown
            .iter()
            .filter(|s| {
                s.sample.starts_with(kind) && s.sample.contains(&format!("span_name=\"{name}\""))
            })
            .collect()
    };
    // Series a: its first span is span 1 (5 ms); b: span 2 (50 ms). The cap keeps only those,
    // so the counter's exemplar (the last one kept) is the first span, not the last.
    for (name, id, value, le) in [("a", 1u8, 5.0, "10.0"), ("b", 2, 50.0, "100.0")] {
        let calls = on("traces_span_metrics_calls_total", name);
        assert_eq!(calls.len(), 1, "{body}");
        assert_eq!(
            (
                calls[0].trace_id.as_str(),
                calls[0].span_id.as_str(),
                calls[0].exemplar_value
            ),
            (hex(&[id; 16]).as_str(), hex(&[id; 8]).as_str(), value),
            "{body}"
        );
        let buckets = on("traces_span_metrics_duration_milliseconds_bucket", name);
        assert_eq!(buckets.len(), 1, "one exemplar, in one bucket: {body}");
        assert!(
            buckets[0].sample.contains(&format!("le=\"{le}\"")),
            "{body}"
        );
        assert_eq!(buckets[0].trace_id, hex(&[id; 16]));
    }
    // The 0.0.4 text (no Accept) has no exemplars.
    let (_, plain) = http_get(prom, "/metrics");
    assert!(!plain.contains(" # {"), "{plain}");
    assert!(tg.terminate().success());
}

/// `tailgate.exemplars_kept_by`: with a status_code ERROR policy only the error traces are kept,
/// and only their spans give exemplars, on the error series and on the OK series alike; the OK
/// traces' candidates are counted as `not_kept`. Traces are spread over two cores, so decisions
/// are made on other cores than the ones that counted the spans.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exemplars_kept_by_show_only_kept_traces() {
    let cfg = "
receivers: {otlp: {protocols: {grpc: {endpoint: 127.0.0.1:0}}}}
processors:
  tail_sampling:
    decision_wait: 1s
    policies: [{name: errors, type: status_code, status_code: {status_codes: [ERROR]}}]
connectors:
  spanmetrics:
    histogram: {explicit: {buckets: [10ms, 100ms, 1s]}}
    metrics_flush_interval: 500ms
    exemplars: {enabled: true}
    tailgate: {exemplars_kept_by: tail_sampling}
exporters:
  prometheus: {endpoint: 127.0.0.1:0, enable_open_metrics: true}
  nop:
service:
  telemetry: {metrics: {address: 127.0.0.1:0}}
  pipelines:
    traces/metrics: {receivers: [otlp], exporters: [spanmetrics]}
    traces/sampling: {receivers: [otlp], processors: [tail_sampling], exporters: [nop]}
    metrics: {receivers: [spanmetrics], exporters: [prometheus]}
";
    let tg = Tailgate::start(cfg, &["--cores", "2"]);
    let prom = tg.addr("exporters::prometheus");
    // Trace t (ID byte t) has a `work` span (span byte 100 + t); every fourth also a failing
    // `fail` span (span byte 200 + t). Kept traces come first in each request, so an unfiltered
    // "last exemplar" would show an OK trace.
    let traces: Vec<u8> = (1..=24).collect();
    let kept: Vec<u8> = traces.iter().copied().filter(|t| t % 4 == 0).collect();
    let mut reqs = Vec::new();
    for chunk in traces.chunks(6) {
        let mut spans = Vec::new();
        for &t in chunk.iter().filter(|t| *t % 4 == 0) {
            spans.push(ex_span("fail", t, 200 + t, 20, true));
        }
        for &t in chunk {
            spans.push(ex_span("work", t, 100 + t, 5, false));
        }
        reqs.push(ex_request(spans));
    }
    send_all(tg.grpc(), reqs).await;
    let not_kept =
        "tailgate_connector_spanmetrics_exemplars_dropped_total{connector=\"spanmetrics\",reason=\"not_kept\"}";
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen: Vec<Shown> = Vec::new();
    loop {
        seen.extend(exemplars_shown(&scrape_openmetrics(prom).1));
        let on = |name: &str| {
            seen.iter()
                .any(|s| s.sample.contains(&format!("span_name=\"{name}\"")))
        };
        if on("fail") && on("work") && tg.metric(not_kept) == Some(18.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not all seen: {seen:#?}, not_kept {:?}",
            tg.metric(not_kept)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for s in &seen {
        let t = kept
            .iter()
            .copied()
            .find(|t| s.trace_id == hex(&[*t; 16]))
            .unwrap_or_else(|| panic!("an exemplar of a trace that was not kept: {s:?}"));
        let span = if s.sample.contains("span_name=\"fail\"") {
            200 + t
        } else {
            100 + t
        };
        assert_eq!(s.span_id, hex(&[span; 8]), "{s:?}");
    }
    for reason in ["max_per_data_point", "overflow", "no_point"] {
        let m = format!("tailgate_connector_spanmetrics_exemplars_dropped_total{{connector=\"spanmetrics\",reason=\"{reason}\"}}");
        assert_eq!(tg.metric(&m), Some(0.0), "{m}");
    }
    assert!(tg.terminate().success());
}
