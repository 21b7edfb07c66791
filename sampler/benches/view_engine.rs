//! Insert + decide with real scanned [`SpanView`]s: throughput (scan included) and memory per
//! buffered span, against the wire bytes buffered (issues 4 and 7).
//!
//! Workload: like `engine.rs` (gateway reference policies, 20 spans per trace, `L` = 50 000 and
//! 500 000 live traces, each request holds one span of 1000 different traces), but every request
//! is a real OTLP `ExportTraceServiceRequest` encoded with prost (about 225-byte spans) and
//! scanned into views that the engine buffers, as the gateway does: `scan_summarized` (the scan
//! that also hands on each span's parsed summary fields) then `Engine::insert_batch_summarized`.
//! Criterion times insert + decide alone (the engine's `insert_batch_summarized`, `advance` and
//! `drain_decided`, per thread CPU time); the steady-state line printed first (the median of
//! seven generations at 50 000 live traces, five at 500 000, with the lowest and highest; a
//! generation replaces every live trace once) also gives the rate with the request's preparation and scan included. For the
//! steady-state lines alone (about half a minute): `cargo bench -p tailgate-sampler --bench
//! view_engine -- nomatch`. A third case adds the three attribute
//! policies (`string_attribute`, `numeric_attribute`, `boolean_attribute`, none matching, so each
//! decision walks every span's attributes) to the reference policies at 50 000 live traces.
//! Run: `nice -n 10 cargo bench -p tailgate-sampler --bench view_engine`.
// criterion's macros generate undocumented items.
#![allow(missing_docs)]

use std::cell::RefCell;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use tailgate_proto::{scan, SpanView};
use tailgate_sampler::config::SamplerConfig;
use tailgate_sampler::span::proto_view::scan_summarized;
use tailgate_sampler::testing::FakeClock;
use tailgate_sampler::{BatchOutput, Engine, SummaryFields};

const SPANS_PER_TRACE: u64 = 20;
const REQUEST_SPANS: u64 = 1000;
const SEC: u64 = 1_000_000_000;
const T0: u64 = 1_700_000_000 * SEC;

const CONFIG: &str = "
decision_wait: 30s
decision_cache: {sampled_cache_size: 0, non_sampled_cache_size: 0}
policies:
  - {name: errors-policy, type: status_code, status_code: {status_codes: [ERROR]}}
  - {name: slow-traces-policy, type: latency, latency: {threshold_ms: 1000}}
  - {name: probabilistic-policy, type: probabilistic, probabilistic: {sampling_percentage: 10}}
";

/// Attribute policies added to `CONFIG` for the attribute case; none matches the bench's spans.
const ATTRIBUTE_POLICIES: &str = "
  - {name: admin-route, type: string_attribute, string_attribute: {key: http.route, values: [/admin, /debug]}}
  - {name: server-errors, type: numeric_attribute, numeric_attribute: {key: http.response.status_code, min_value: 500, max_value: 599}}
  - {name: debug-flag, type: boolean_attribute, boolean_attribute: {key: app.debug, value: true}}
";

fn thread_cpu() -> Duration {
    cpu_time::ThreadTime::now().as_duration()
}

/// Resident set size in bytes from /proc/self/statm (0 where unavailable).
fn rss_bytes() -> i64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<i64>().ok())
        })
        .map(|pages| pages * 4096)
        .unwrap_or(0)
}

fn kv(key: &str, v: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(v) }),
    }
}

/// A typical server span of about 225 bytes on the wire.
fn template_span(i: u64) -> Span {
    Span {
        trace_id: vec![1; 16],
        span_id: vec![2; 8],
        parent_span_id: vec![3; 8],
        name: "GET /api/v1/items/{id}".into(),
        kind: 2,
        start_time_unix_nano: T0 + i,
        end_time_unix_nano: T0 + i + 2_000_000,
        flags: 1,
        status: Some(Status {
            code: 0,
            message: String::new(),
        }),
        attributes: vec![
            kv("http.request.method", Value::StringValue("GET".into())),
            kv(
                "http.route",
                Value::StringValue("/api/v1/items/{id}".into()),
            ),
            kv("http.response.status_code", Value::IntValue(200)),
            kv(
                "server.address",
                Value::StringValue("backend-17.svc".into()),
            ),
        ],
        ..Default::default()
    }
}

/// One encoded request of 1000 spans and the offsets of each span's trace id and span id.
struct Template {
    bytes: Vec<u8>,
    /// Offset of each span's message in `bytes` (trace id at +2, span id at +20).
    spans: Vec<usize>,
}

impl Template {
    fn new() -> Self {
        let req = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![
                        kv("service.name", Value::StringValue("checkout".into())),
                        kv("k8s.pod.name", Value::StringValue("checkout-7d9f".into())),
                    ],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "io.opentelemetry.http".into(),
                        version: "1.0".into(),
                        ..Default::default()
                    }),
                    spans: (0..REQUEST_SPANS).map(template_span).collect(),
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        };
        let bytes = req.encode_to_vec();
        let buf = Bytes::from(bytes.clone());
        let views = scan(&buf).expect("template scans");
        let spans = views
            .iter()
            .map(|v| v.span_slice().as_ptr() as usize - buf.as_ptr() as usize)
            .collect();
        Template { bytes, spans }
    }

    /// Average Span message length.
    fn span_len(&self) -> f64 {
        let buf = Bytes::from(self.bytes.clone());
        let views = scan(&buf).expect("template scans");
        views.iter().map(|v| v.wire_len()).sum::<usize>() as f64 / views.len() as f64
    }
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

struct Stream {
    live: u64,
    template: Template,
    /// Thread CPU time spent in the engine (insert, advance, drain) since the last reset.
    engine_cpu: Duration,
    engine: Engine<SpanView, FakeClock>,
    clock: FakeClock,
    pass: u64,
    index: u64,
    generation: u64,
    ns_per_span: u64,
    exported: u64,
    out: BatchOutput<SpanView>,
    views: Vec<SpanView>,
    fields: Vec<SummaryFields>,
}

impl Stream {
    fn new(live: u64, attribute_policies: bool) -> Self {
        let extra = if attribute_policies {
            ATTRIBUTE_POLICIES
        } else {
            ""
        };
        let text = format!(
            "num_traces: {}\nexpected_new_traces_per_sec: {}\n{CONFIG}{extra}",
            2 * live,
            live / 30
        );
        let (cfg, _) = SamplerConfig::from_yaml_str(&text).expect("bench config");
        let clock = FakeClock::at(T0);
        let engine = Engine::new(&cfg, clock.clone()).expect("engine");
        Stream {
            live,
            template: Template::new(),
            engine_cpu: Duration::ZERO,
            engine,
            clock,
            pass: 0,
            index: 0,
            generation: 0,
            ns_per_span: 30 * SEC / (SPANS_PER_TRACE * live),
            exported: 0,
            out: BatchOutput::default(),
            views: Vec::new(),
            fields: Vec::new(),
        }
    }

    /// One request: the template with fresh trace and span ids, scanned and inserted, then a
    /// timer run.
    fn request(&mut self) {
        let mut bytes = self.template.bytes.clone();
        for &at in &self.template.spans {
            let trace = self.generation * self.live + self.index;
            let t = mix(trace);
            bytes[at + 2..at + 10].copy_from_slice(&t.to_le_bytes());
            bytes[at + 10..at + 18].copy_from_slice(&trace.to_le_bytes());
            bytes[at + 20..at + 28].copy_from_slice(&(trace * 32 + self.pass + 1).to_le_bytes());
            self.index += 1;
            if self.index == self.live {
                self.index = 0;
                self.pass += 1;
                if self.pass == SPANS_PER_TRACE {
                    self.pass = 0;
                    self.generation += 1;
                }
            }
        }
        scan_summarized(&Bytes::from(bytes), &mut self.views, &mut self.fields)
            .expect("request scans");
        self.clock.advance_ns(self.ns_per_span * REQUEST_SPANS);
        let start = thread_cpu();
        self.engine
            .insert_batch_summarized(&mut self.views, &mut self.fields, &mut self.out);
        self.out.forward.clear();
        self.engine.advance();
        for d in self.engine.drain_decided() {
            self.exported += d.spans.len() as u64;
        }
        self.engine_cpu += thread_cpu() - start;
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("views_insert_decide");
    group.throughput(Throughput::Elements(REQUEST_SPANS));
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(8));
    for (live, attributes) in [(50_000, false), (500_000, false), (50_000, true)] {
        let rss_before = rss_bytes();
        let stream = RefCell::new(Stream::new(live, attributes));
        let warm = 2 * SPANS_PER_TRACE * live / REQUEST_SPANS;
        for _ in 0..warm {
            stream.borrow_mut().request();
        }
        report_memory(&stream.borrow(), rss_before);
        let name = if attributes {
            format!("live_traces_{live}_attribute_policies")
        } else {
            format!("live_traces_{live}")
        };
        steady_state(&mut stream.borrow_mut(), &name);
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut s = stream.borrow_mut();
                s.engine_cpu = Duration::ZERO;
                for _ in 0..iters {
                    s.request();
                }
                s.engine_cpu
            })
        });
        drop(stream);
    }
    group.finish();
}

/// Steady-state generations timed per case at 50 000 live traces (a million spans each).
const SMALL_GENERATIONS: u64 = 7;

/// Steady-state generations timed per case at 500 000 live traces (ten million spans each).
const LARGE_GENERATIONS: u64 = 5;

/// Times several steady-state generations (every live trace replaced once: its 20 spans
/// inserted and its decision made; the decisions come in a burst at the start of a generation,
/// so only whole generations compare) and prints the median rate with the lowest and highest,
/// so that a burst of other work on the machine does not decide the figure.
fn steady_state(s: &mut Stream, name: &str) {
    let requests = SPANS_PER_TRACE * s.live / REQUEST_SPANS;
    let generations = if s.live > 100_000 {
        LARGE_GENERATIONS
    } else {
        SMALL_GENERATIONS
    };
    let spans = (requests * REQUEST_SPANS) as f64;
    let mut engine = Vec::new();
    let mut whole = Vec::new();
    for _ in 0..generations {
        s.engine_cpu = Duration::ZERO;
        let t = thread_cpu();
        for _ in 0..requests {
            s.request();
        }
        whole.push(spans / (thread_cpu() - t).as_secs_f64() / 1e6);
        engine.push(spans / s.engine_cpu.as_secs_f64() / 1e6);
    }
    engine.sort_by(f64::total_cmp);
    whole.sort_by(f64::total_cmp);
    let median = |v: &[f64]| v[v.len() / 2];
    eprintln!(
        "views {name}: steady state, {generations} generations of {spans} spans: median {:.2} M \
         spans per CPU-second insert + decide (min {:.2}, max {:.2}), median {:.2} M with the \
         request's preparation and scan",
        median(&engine),
        engine[0],
        engine[engine.len() - 1],
        median(&whole),
    );
}

fn report_memory(s: &Stream, rss_before: i64) {
    let m = s.engine.memory();
    let rss = (rss_bytes() - rss_before) as f64;
    let spans = m.spans_buffered as f64;
    let view = std::mem::size_of::<SpanView>();
    eprintln!(
        "views live={}: size_of::<SpanView>() = {view} B; Span message {:.1} B; buffered spans {}; \
         engine heap {:.1} B/span beyond the view ({:.1} with it); \
         wire bytes {:.1} B/span, retained buffers {:.1} B/span; \
         RSS growth {:.1} B/span = {:.2}x the wire bytes; exported {}",
        s.live,
        s.template.span_len(),
        m.spans_buffered,
        m.engine_heap_bytes as f64 / spans - view as f64,
        m.engine_heap_bytes as f64 / spans,
        m.span_bytes as f64 / spans,
        m.retained_buffer_bytes as f64 / spans,
        rss / spans,
        rss / m.span_bytes as f64,
        s.exported,
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
