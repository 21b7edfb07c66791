//! A rough passthrough measurement, not a test of correctness: `#[ignore]`d, run by hand with
//! `TAILGATE_BIN=target/release/tailgate cargo test -p tailgate --test perf_smoke -- --ignored --nocapture`.
//! It reports spans per CPU-second of the tailgate process (utime + stime from /proc) for
//! receiver → batch → otlp exporter (`compression: none`) into an in-process sink.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Instant;

use prost::Message;
use support::{frame, make_request, Sink, Tailgate, EXPORT_PATH};
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
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            // One connection per task, reused: the cost measured is per request, not per handshake.
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
    sink.wait_total(requests * 1000).await;
    let wall = t0.elapsed();
    let cpu = cpu_seconds(pid) - cpu0;
    let spans = (requests * 1000) as f64;
    println!(
        "{spans} spans in {wall:?} wall, {cpu:.2} tailgate CPU-s: {:.2} M spans per CPU-second",
        spans / cpu / 1e6
    );
}
