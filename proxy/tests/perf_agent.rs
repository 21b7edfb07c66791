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
use support::{frame, make_request, Tailgate, EXPORT_PATH};
use tailgate_perf::sink::{RecordMode, Sink, SinkConfig};
use tailgate_proto::compression::Compression;

fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = stat.rsplit_once(')').unwrap().1;
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0
}

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
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (client, conn) = h2::client::Builder::new()
                .initial_window_size(8 << 20)
                .initial_connection_window_size(32 << 20)
                .handshake::<_, bytes::Bytes>(tcp)
                .await
                .unwrap();
            tokio::spawn(conn);
            for _ in 0..requests / 8 {
                let mut c = client.clone().ready().await.unwrap();
                let req = http::Request::post(format!("http://{addr}{EXPORT_PATH}"))
                    .header("content-type", "application/grpc")
                    .header("te", "trailers")
                    .body(())
                    .unwrap();
                let (resp, mut stream) = c.send_request(req, false).unwrap();
                stream.send_data(body.clone(), true).unwrap();
                let mut resp = resp.await.unwrap().into_body();
                while let Some(chunk) = resp.data().await {
                    let _ = resp.flow_control().release_capacity(chunk.unwrap().len());
                }
                let trailers = resp.trailers().await.unwrap().unwrap();
                assert_eq!(trailers.get("grpc-status").unwrap(), "0");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
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
