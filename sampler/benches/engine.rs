//! Insert + decide throughput and memory overhead per buffered span.
//!
//! Workload: the gateway reference config's policies (status ERROR, latency ≥ 1s, 10%
//! probabilistic), 20 spans of 225 bytes per trace, requests of 1000 spans sharing one buffer,
//! and `L` live (undecided) traces in steady state. Spans of a trace are spread over its
//! lifetime (each request holds one span of 1000 different traces), the cache-unfriendly case.
//! Run: `cargo bench -p tailgate-sampler --bench engine`.
// criterion's macros generate undocumented items.
#![allow(missing_docs)]

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tailgate_sampler::config::SamplerConfig;
use tailgate_sampler::testing::FakeClock;
use tailgate_sampler::BatchOutput;
use tailgate_sampler::{
    AttrValue, BufferRef, Engine, InsertOutcome, SpanData, SpanKind, StatusCode,
};

// === resident memory, for the overhead figure (no allocator hooks: the crate denies unsafe) ===

/// CPU time this thread has run (clock_gettime(CLOCK_THREAD_CPUTIME_ID) via `cpu-time`). The
/// machine is shared, so throughput is reported per CPU-second of this thread, not per wall second.
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

// === a view-like span: 16 bytes, fields derived from its position in the stream ===

const SPANS_PER_TRACE: u64 = 20;
const SPAN_BYTES: usize = 225;
const REQUEST_SPANS: u64 = 1000;
const SEC: u64 = 1_000_000_000;
const T0: u64 = 1_700_000_000 * SEC;

/// The request buffer a span pins (its bytes are not materialised; only its identity and size).
struct Request;

/// 16 bytes like a compact view: the pinned buffer plus the fields a view would read at offsets.
#[derive(Clone)]
struct BenchSpan {
    request: Arc<Request>,
    trace: u32,
    pass: u8,
}

impl BenchSpan {
    fn trace(&self) -> u64 {
        u64::from(self.trace)
    }
    fn pass(&self) -> u64 {
        u64::from(self.pass)
    }
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl SpanData for BenchSpan {
    fn trace_id(&self) -> [u8; 16] {
        let t = self.trace();
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&mix(t).to_le_bytes());
        id[8..].copy_from_slice(&mix(t ^ 0x5555).to_le_bytes());
        id
    }
    fn span_id(&self) -> [u8; 8] {
        (self.trace() << 8 | self.pass()).to_le_bytes()
    }
    fn parent_span_id(&self) -> &[u8] {
        if self.pass() == 0 {
            &[]
        } else {
            &[1, 2, 3, 4, 5, 6, 7, 8]
        }
    }
    fn name(&self) -> &str {
        "GET /api"
    }
    fn kind(&self) -> SpanKind {
        SpanKind::Server
    }
    fn start_unix_nanos(&self) -> u64 {
        T0 + self.pass() * 10_000_000
    }
    fn end_unix_nanos(&self) -> u64 {
        // 1 trace in 50 is slow (> 1s).
        T0 + self.pass() * 10_000_000
            + if self.trace() % 50 == 0 {
                2 * SEC
            } else {
                5_000_000
            }
    }
    fn status_code(&self) -> StatusCode {
        if self.trace() % 100 == 7 && self.pass() == 3 {
            StatusCode::Error
        } else {
            StatusCode::Unset
        }
    }
    fn trace_flags(&self) -> u32 {
        1
    }
    fn trace_state(&self) -> &str {
        ""
    }
    fn span_attribute(&self, _key: &str) -> Option<AttrValue<'_>> {
        None
    }
    fn resource_attribute(&self, _key: &str) -> Option<AttrValue<'_>> {
        None
    }
    fn scope_attribute(&self, _key: &str) -> Option<AttrValue<'_>> {
        None
    }
    fn wire_len(&self) -> usize {
        SPAN_BYTES
    }
    fn buffer(&self) -> BufferRef {
        BufferRef {
            id: Arc::as_ptr(&self.request) as u64,
            len: SPAN_BYTES * REQUEST_SPANS as usize,
        }
    }
    fn detach(&self) -> Self {
        BenchSpan {
            request: Arc::new(Request),
            trace: self.trace,
            pass: self.pass,
        }
    }
}

// === the stream ===

struct Stream {
    engine: Engine<BenchSpan, FakeClock>,
    clock: FakeClock,
    live: u64,
    /// Position inside the current generation: pass (0..20) and trace (0..live).
    pass: u64,
    index: u64,
    generation: u64,
    ns_per_span: u64,
    exported: u64,
    /// Use `insert_batch` (one call per request) instead of one `insert` per span.
    batched: bool,
    batch: Vec<BenchSpan>,
    out: BatchOutput<BenchSpan>,
}

const CONFIG: &str = "
decision_wait: 30s
decision_cache: {sampled_cache_size: 0, non_sampled_cache_size: 0}
policies:
  - {name: errors-policy, type: status_code, status_code: {status_codes: [ERROR]}}
  - {name: slow-traces-policy, type: latency, latency: {threshold_ms: 1000}}
  - {name: probabilistic-policy, type: probabilistic, probabilistic: {sampling_percentage: 10}}
";

impl Stream {
    fn new(live: u64, batched: bool) -> Self {
        let text = format!(
            "num_traces: {}\nexpected_new_traces_per_sec: {}\n{CONFIG}",
            2 * live,
            live / 30
        );
        let (cfg, _) = SamplerConfig::from_yaml_str(&text).expect("bench config");
        let clock = FakeClock::at(T0);
        let engine = Engine::new(&cfg, clock.clone()).expect("engine");
        // One generation of `live` traces × 20 spans spans the 30 s decision wait.
        let ns_per_span = 30 * SEC / (SPANS_PER_TRACE * live);
        Stream {
            engine,
            clock,
            live,
            pass: 0,
            index: 0,
            generation: 0,
            ns_per_span,
            exported: 0,
            batched,
            batch: Vec::with_capacity(REQUEST_SPANS as usize),
            out: BatchOutput::default(),
        }
    }

    /// Next position: one span of every live trace per pass, 20 passes per generation.
    fn step(&mut self) {
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

    /// One request of 1000 spans, then a timer run.
    fn request(&mut self) {
        let request = Arc::new(Request);
        for _ in 0..REQUEST_SPANS {
            let span = BenchSpan {
                request: request.clone(),
                trace: (self.generation * self.live + self.index) as u32,
                pass: self.pass as u8,
            };
            self.step();
            if self.batched {
                self.batch.push(span);
            } else if let InsertOutcome::Forward(s) = self.engine.insert(span) {
                drop(s);
            }
        }
        if self.batched {
            self.engine.insert_batch(&mut self.batch, &mut self.out);
            self.out.forward.clear();
        }
        drop(request);
        self.clock.advance_ns(self.ns_per_span * REQUEST_SPANS);
        self.engine.advance();
        for d in self.engine.drain_decided() {
            self.exported += d.spans.len() as u64;
        }
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("insert_decide");
    group.throughput(Throughput::Elements(REQUEST_SPANS));
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(8));
    for (live, batched) in [
        (50_000u64, false),
        (50_000, true),
        (500_000, false),
        (500_000, true),
    ] {
        let mode = if batched { "batch" } else { "single" };
        let rss_before = rss_bytes();
        let stream = RefCell::new(Stream::new(live, batched));
        // Warm up to steady state: two generations.
        let warm = 2 * SPANS_PER_TRACE * live / REQUEST_SPANS;
        let t = thread_cpu();
        for _ in 0..warm {
            stream.borrow_mut().request();
        }
        let warm_secs = (thread_cpu() - t).as_secs_f64();
        report_memory(live, &stream.borrow(), rss_before, warm, warm_secs);
        // Steady state over one more generation (every trace inserted and decided once).
        let per_generation = SPANS_PER_TRACE * live / REQUEST_SPANS;
        let t = thread_cpu();
        for _ in 0..per_generation {
            stream.borrow_mut().request();
        }
        let secs = (thread_cpu() - t).as_secs_f64();
        eprintln!(
            "live={live} {mode}: steady state {:.2} M spans per CPU-second over {} spans",
            (per_generation * REQUEST_SPANS) as f64 / secs / 1e6,
            per_generation * REQUEST_SPANS
        );
        group.bench_function(format!("live_traces_{live}_{mode}"), |b| {
            b.iter_custom(|iters| {
                let mut s = stream.borrow_mut();
                let start = thread_cpu();
                for _ in 0..iters {
                    s.request();
                }
                thread_cpu() - start
            })
        });
    }
    group.finish();
}

fn report_memory(live: u64, s: &Stream, rss_before: i64, warm: u64, warm_secs: f64) {
    let m = s.engine.memory();
    let rss = (rss_bytes() - rss_before) as f64;
    let spans = m.spans_buffered as f64;
    let c = s.engine.counters();
    eprintln!(
        "live={live}: warm-up {:.2} M spans per CPU-second; buffered spans {} in {} traces on memory; \
         engine heap {:.1} B/span beyond the {}-byte view ({:.1} with it; slots, span lists, index, wheel, ledger); \
         RSS growth {:.1} B/span; retained buffers {} MiB for {} MiB of spans; \
         exported {} dropped {} too-early {}",
        (warm * REQUEST_SPANS) as f64 / warm_secs / 1e6,
        m.spans_buffered,
        c.sampling_traces_on_memory,
        m.engine_heap_bytes as f64 / spans - std::mem::size_of::<BenchSpan>() as f64,
        std::mem::size_of::<BenchSpan>(),
        m.engine_heap_bytes as f64 / spans,
        rss / spans,
        m.retained_buffer_bytes >> 20,
        m.span_bytes >> 20,
        s.exported,
        c.spans_dropped.total(),
        c.sampling_trace_dropped_too_early,
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
