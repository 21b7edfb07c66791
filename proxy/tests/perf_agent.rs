//! A rough agent-mode measurement, not a test of correctness: `#[ignore]`d, run by hand with
//! `TAILGATE_BIN=target/release/tailgate nice -n 10 cargo test -p tailgate --test perf_agent -- --ignored --nocapture`
//! (a release `tailgate` binary; the harness and sinks may stay debug: only tailgate's CPU is counted).
//! It reports spans per CPU-second of the tailgate process (utime + stime from /proc) for
//! receiver → batch → `loadbalancing` (static, 3 backends, `compression: none`) into three
//! in-process sinks that only count.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use prost::Message;
use support::{blast, cpu_seconds, frame, make_request, Tailgate};
use tailgate_perf::sink::{RecordMode, Sink, SinkConfig};
use tailgate_proto::compression::Compression;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn agent_spans_per_cpu_second_routing_to_three_backends() {
    let mut sinks = Vec::new();
    for _ in 0..3 {
        sinks.push(
            Sink::start(SinkConfig {
                record: RecordMode::Count,
                ..SinkConfig::default()
            })
            .await
            .unwrap(),
        );
    }
    let hosts: Vec<String> = sinks
        .iter()
        .map(|s| format!("\"{}\"", s.grpc_addr()))
        .collect();
    let cfg = format!(
        "
receivers: {{otlp: {{protocols: {{grpc: {{endpoint: 127.0.0.1:0}}}}}}}}
processors: {{batch: {{send_batch_size: 8192, timeout: 200ms}}}}
exporters:
  loadbalancing:
    protocol: {{otlp: {{tls: {{insecure: true}}, compression: none}}}}
    resolver: {{static: {{hostnames: [{}]}}}}
service:
  telemetry: {{metrics: {{level: none}}}}
  pipelines: {{traces: {{receivers: [otlp], processors: [batch], exporters: [loadbalancing]}}}}
",
        hosts.join(", ")
    );
    let tg = Tailgate::start(&cfg, &["--cores", "1"]);
    // 1000 spans of ~228 B, each with its own trace ID (the worst case for routing: no runs).
    let payload = make_request(1, 1, 1, 1000).encode_to_vec();
    let body = frame(&payload, Compression::Identity);
    let addr = tg.grpc();
    let pid = tg.child.id();
    let requests = 2000usize;
    let cpu0 = cpu_seconds(pid);
    let t0 = Instant::now();
    blast(addr, body.clone(), requests).await;
    let spans = (requests * 1000) as u64;
    let deadline = Instant::now() + Duration::from_secs(300);
    while sinks.iter().map(|s| s.stats().accepted_spans).sum::<u64>() < spans {
        assert!(Instant::now() < deadline, "sinks did not get every span");
        tokio::time::sleep(Duration::from_millis(20)).await; // polling
    }
    let wall = t0.elapsed();
    let cpu = cpu_seconds(pid) - cpu0;
    let shares: Vec<u64> = sinks.iter().map(|s| s.stats().accepted_spans).collect();
    println!(
        "{spans} spans ({} B/span) in {wall:?} wall, {cpu:.2} tailgate CPU-s: {:.2} M spans per CPU-second; per backend {shares:?}",
        payload.len() / 1000,
        spans as f64 / cpu / 1e6
    );
}
