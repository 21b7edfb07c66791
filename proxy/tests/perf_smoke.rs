//! A rough passthrough measurement, not a test of correctness: `#[ignore]`d, run by hand with
//! `TAILGATE_BIN=target/release/tailgate cargo test -p tailgate --test perf_smoke -- --ignored --nocapture`.
//! It reports spans per CPU-second of the tailgate process (utime + stime from /proc) for
//! receiver → batch → otlp exporter (`compression: none`) into an in-process sink.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Instant;

use prost::Message;
use support::{blast, cpu_seconds, frame, make_request, Sink, Tailgate};
use tailgate_proto::compression::Compression;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn passthrough_spans_per_cpu_second() {
    let sink = Sink::start().await;
    let cfg = format!(
        "
receivers: {{otlp: {{protocols: {{grpc: {{endpoint: 127.0.0.1:0}}}}}}}}
processors: {{batch: {{send_batch_size: 8192, timeout: 200ms}}}}
exporters: {{otlp: {{endpoint: {}, tls: {{insecure: true}}, compression: none}}}}
service:
  telemetry: {{metrics: {{level: none}}}}
  pipelines: {{traces: {{receivers: [otlp], processors: [batch], exporters: [otlp]}}}}
",
        sink.addr
    );
    let tg = Tailgate::start(&cfg, &["--cores", "1"]);
    let req = make_request(1, 1, 1, 1000);
    let payload = req.encode_to_vec();
    println!(
        "request: {} bytes, {} bytes/span",
        payload.len(),
        payload.len() / 1000
    );
    let body = frame(&payload, Compression::Identity);
    let addr = tg.grpc();
    let pid = tg.child.id();
    let requests = 1000usize;
    let cpu0 = cpu_seconds(pid);
    let t0 = Instant::now();
    blast(addr, body.clone(), requests).await;
    sink.wait_total(requests * 1000).await;
    let wall = t0.elapsed();
    let cpu = cpu_seconds(pid) - cpu0;
    let spans = (requests * 1000) as f64;
    println!(
        "{spans} spans in {wall:?} wall, {cpu:.2} tailgate CPU-s: {:.2} M spans per CPU-second",
        spans / cpu / 1e6
    );
}
