//! Cost of the spanmetrics connector, not a correctness test: `#[ignore]`d, run by hand with
//! `TAILGATE_BIN=target/release/tailgate cargo test --release -p tailgate --test spanmetrics_perf -- --ignored --nocapture --test-threads 1`.
//!
//! - `aggregator_cpu_ns_per_span`: the per-core aggregation alone (scan + key + count), CPU time of
//!   the test thread.
//! - `spanmetrics_pipeline_spans_per_cpu_second`: the binary on one core, receiver → spanmetrics
//!   (→ prometheus), beside receiver → nop as the baseline; spans per tailgate CPU-second.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use prost::Message;
use support::{blast, cpu_seconds, frame, make_request, Tailgate};
use tailgate::config::error::ConfigErrors;
use tailgate::connector::spanmetrics::aggregate::Aggregator;
use tailgate::connector::spanmetrics::config::SpanMetricsConfig;
use tailgate_proto::compression::Compression;

/// CPU nanoseconds this thread has run (first field of schedstat).
fn thread_cpu_ns() -> u64 {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
    s.split_whitespace().next().unwrap().parse().unwrap()
}

/// CPU ns per span of one aggregator over `rounds` consumes of `body`, handing its deltas over
/// every `take_every` rounds (as the stage does at each interval).
fn aggregator_ns(yaml: &str, body: &Bytes, take_every: usize) -> (f64, usize) {
    let c: SpanMetricsConfig = serde_yaml::from_str(yaml).unwrap();
    let settings = Arc::new(c.resolve("x", &mut ConfigErrors::default(), &mut Vec::new()));
    let mut agg = Aggregator::new(settings);
    let mut spill = Vec::new();
    agg.consume(body, &mut spill).unwrap();
    let rounds = 2000;
    let t0 = thread_cpu_ns();
    for r in 0..rounds {
        agg.consume(body, &mut spill).unwrap();
        if (r + 1) % take_every == 0 {
            std::hint::black_box(agg.take());
        }
    }
    let ns = (thread_cpu_ns() - t0) as f64 / (rounds * 1000) as f64;
    (ns, agg.len())
}

#[test]
#[ignore]
fn aggregator_cpu_ns_per_span() {
    let dims = "dimensions: [{name: http.method}, {name: http.status_code}]";
    // 1000 spans of 1000 distinct names (1000 series), ~225 B each.
    let body = Bytes::from(make_request(1, 1, 1, 1000).encode_to_vec());
    let rounds = 2000;
    let scan_t0 = thread_cpu_ns();
    for _ in 0..rounds {
        std::hint::black_box(tailgate_proto::scan(&body).unwrap());
    }
    let scan_ns = (thread_cpu_ns() - scan_t0) as f64 / (rounds * 1000) as f64;
    let on = format!("{dims}\nexemplars: {{enabled: true}}");
    let kept = format!("{on}\ntailgate: {{exemplars_kept_by: tail_sampling}}");
    // Alternated, twice, so a noisy neighbour shows as disagreement between the two passes.
    for pass in 0..2 {
        for (label, yaml, take_every) in [
            ("exemplars off", dims, usize::MAX),
            (
                "exemplars on, caps full (steady state)",
                on.as_str(),
                usize::MAX,
            ),
            (
                "exemplars on, every span a candidate (hand-over each request)",
                on.as_str(),
                1,
            ),
            (
                "exemplars_kept_by, every span a candidate",
                kept.as_str(),
                1,
            ),
            ("exemplars off, hand-over each request", dims, 1),
        ] {
            let (ns, series) = aggregator_ns(yaml, &body, take_every);
            println!(
                "pass {pass}: aggregator, {label}: {ns:.0} ns per span ({:.2} M spans per CPU-second), of which proto::scan {scan_ns:.0} ns; {series} series",
                1e3 / ns,
            );
        }
    }
}

async fn measure(pipeline: &str, extra: &str) -> f64 {
    let cfg = format!(
        "
receivers: {{otlp: {{protocols: {{grpc: {{endpoint: 127.0.0.1:0}}}}}}}}
connectors:
  spanmetrics: {{dimensions: [{{name: http.method}}], metrics_flush_interval: 1s}}
exporters: {{nop: , prometheus: {{endpoint: 127.0.0.1:0}}}}
service:
  telemetry: {{metrics: {{address: 127.0.0.1:0}}}}
  pipelines:
    traces: {{receivers: [otlp], exporters: [{pipeline}]}}
{extra}
"
    );
    let tg = Tailgate::start(&cfg, &["--cores", "1"]);
    let body = frame(
        &make_request(1, 1, 1, 1000).encode_to_vec(),
        Compression::Identity,
    );
    let requests = 2000usize;
    let pid = tg.child.id();
    let cpu0 = cpu_seconds(pid);
    let t0 = Instant::now();
    blast(tg.grpc(), body, requests).await;
    let wall = t0.elapsed();
    let cpu = cpu_seconds(pid) - cpu0;
    let spans = (requests * 1000) as f64;
    let rate = spans / cpu / 1e6;
    println!("{pipeline}: {spans} spans in {wall:?} wall, {cpu:.2} tailgate CPU-s: {rate:.2} M spans per CPU-second");
    rate
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn spanmetrics_pipeline_spans_per_cpu_second() {
    let base = measure("nop", "").await;
    let sm = measure(
        "spanmetrics",
        "    metrics: {receivers: [spanmetrics], exporters: [prometheus]}",
    )
    .await;
    println!(
        "spanmetrics adds {:.0} ns per span over receive → nop",
        1e3 / sm - 1e3 / base
    );
}
