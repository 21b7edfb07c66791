//! Gateway measurements, not correctness tests: `#[ignore]`d, run by hand (release build):
//! `cargo build --release -p tailgate && TAILGATE_BIN=$CARGO_TARGET_DIR/release/tailgate \
//!  cargo test --release -p tailgate --test gateway_perf -- --ignored --nocapture --test-threads 1`.
//! Reports spans per CPU-second of the tailgate process (utime + stime from /proc) with the seed's
//! three policies, at 1000 new traces/s and flat out, and RSS per buffered span.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;
mod traffic;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use prost::Message;
use support::{frame, Sink, Tailgate};
use tailgate_proto::compression::Compression;
use traffic::{make_trace, request_of, Class, Rng, Trace};

const SPANS_PER_TRACE: usize = 20;
const TRACES_PER_REQUEST: usize = 50;

/// `TAILGATE_PERF_MEMBERSHIP=self`: the gateway runs with `membership` (static resolver, itself
/// the only member), so every trace is classified by the membership rules and stays: the
/// steady-state cost of membership on the hot path (issue 18).
fn membership() -> &'static str {
    match std::env::var("TAILGATE_PERF_MEMBERSHIP").as_deref() {
        Err(_) | Ok("none") => "",
        Ok("self") => {
            "
    tailgate:
      membership:
        resolver: {static: {hostnames: [127.0.0.1:1]}}
        self: 127.0.0.1:1
        protocol: {otlp: {tls: {insecure: true}}}"
        }
        Ok(other) => panic!("TAILGATE_PERF_MEMBERSHIP={other}: expected none or self"),
    }
}

fn config(sink: SocketAddr, decision_wait: &str, num_traces: u64) -> String {
    let membership = membership();
    format!(
        "
receivers: {{otlp: {{protocols: {{grpc: {{endpoint: 127.0.0.1:0}}}}}}}}
processors:
  tail_sampling:
    decision_wait: {decision_wait}
    num_traces: {num_traces}{membership}
    policies:
      - {{name: errors-policy, type: status_code, status_code: {{status_codes: [ERROR]}}}}
      - {{name: slow-traces-policy, type: latency, latency: {{threshold_ms: 1000}}}}
      - {{name: probabilistic-policy, type: probabilistic, probabilistic: {{sampling_percentage: 10}}}}
  batch: {{send_batch_size: 8192, timeout: 200ms}}
exporters: {{otlp: {{endpoint: {sink}, tls: {{insecure: true}}, compression: none, timeout: 60s}}}}
service:
  telemetry: {{metrics: {{address: 127.0.0.1:0}}}}
  pipelines: {{traces: {{receivers: [otlp], processors: [tail_sampling, batch], exporters: [otlp]}}}}
"
    )
}

fn proc_stat(pid: u32) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = stat.rsplit_once(')').unwrap().1;
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    let rss_pages: u64 = f[21].parse().unwrap();
    (ticks / 100.0, rss_pages * 4096)
}

/// Requests of `TRACES_PER_REQUEST` whole traces (spans shuffled), 5 % error, 3 % slow.
fn bodies(seed: u64, traces: usize) -> (Vec<Bytes>, usize) {
    let mut rng = Rng::new(seed);
    let all: Vec<Trace> = (0..traces)
        .map(|_| {
            let mut id = [0u8; 16];
            id[..8].copy_from_slice(&rng.next().to_be_bytes());
            id[8..].copy_from_slice(&rng.next().to_be_bytes());
            let class = match rng.below(100) {
                0..=4 => Class::Error,
                5..=7 => Class::Slow,
                _ => Class::Plain,
            };
            make_trace(&mut rng, id, class, SPANS_PER_TRACE)
        })
        .collect();
    let mut wire = 0;
    let out = all
        .chunks(TRACES_PER_REQUEST)
        .map(|c| {
            let mut spans: Vec<_> = c.iter().flat_map(|t| t.spans.iter()).collect();
            rng.shuffle(&mut spans);
            let payload = request_of(spans.into_iter()).encode_to_vec();
            wire += payload.len();
            frame(&payload, load_compression())
        })
        .collect();
    (out, wire)
}

/// The compression of the load: `TAILGATE_PERF_COMPRESSION` = none (default), gzip or zstd
/// (issue 19's "gateway receiving gzip" rows).
fn load_compression() -> Compression {
    match std::env::var("TAILGATE_PERF_COMPRESSION").as_deref() {
        Err(_) | Ok("none") => Compression::Identity,
        Ok(name) => Compression::from_name(name).unwrap_or_else(|| {
            panic!("TAILGATE_PERF_COMPRESSION={name}: expected none, gzip or zstd")
        }),
    }
}

/// Sends `bodies` over `connections` reused h2 connections; `pace` spaces requests per connection.
async fn send(addr: SocketAddr, bodies: Vec<Bytes>, connections: usize, pace: Option<Duration>) {
    let per = bodies.len().div_ceil(connections);
    let mut tasks = Vec::new();
    for chunk in bodies.chunks(per) {
        let chunk = chunk.to_vec();
        tasks.push(tokio::spawn(async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (client, conn) = h2::client::Builder::new()
                .initial_window_size(8 << 20)
                .initial_connection_window_size(32 << 20)
                .handshake::<_, Bytes>(tcp)
                .await
                .unwrap();
            tokio::spawn(conn);
            let start = Instant::now();
            for (i, body) in chunk.into_iter().enumerate() {
                if let Some(p) = pace {
                    let at = start + p * i as u32;
                    tokio::time::sleep_until(at.into()).await;
                }
                loop {
                    let encoding = load_compression();
                    let headers: &[(&str, &str)] = if encoding == Compression::Identity {
                        &[]
                    } else {
                        &[("grpc-encoding", encoding.name())]
                    };
                    let resp = support::start_export_with(&client, addr, &body, headers).await;
                    let (parts, mut resp) = resp.await.unwrap().into_parts();
                    // A refusal is trailers-only: the status comes in the headers.
                    let status = match parts.headers.get("grpc-status") {
                        Some(s) => s.clone(),
                        None => {
                            while let Some(chunk) = resp.data().await {
                                let _ = resp.flow_control().release_capacity(chunk.unwrap().len());
                            }
                            let trailers = resp.trailers().await.unwrap().unwrap();
                            trailers.get("grpc-status").unwrap().clone()
                        }
                    };
                    match status.to_str().unwrap() {
                        "0" => break,
                        "14" => tokio::time::sleep(Duration::from_millis(5)).await,
                        other => panic!("status {other}"),
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

async fn run(cores: &str, traces: usize, rate: Option<usize>) {
    let sink = Sink::start().await;
    let tg = Tailgate::start(&config(sink.addr, "2s", 200_000), &["--cores", cores]);
    let (bodies, wire) = bodies(5, traces);
    let spans = traces * SPANS_PER_TRACE;
    let connections = 8;
    // rate = new traces per second: each connection sends one request every `pace`.
    let pace =
        rate.map(|r| Duration::from_secs_f64((TRACES_PER_REQUEST * connections) as f64 / r as f64));
    let pid = tg.child.id();
    let (cpu0, _) = proc_stat(pid);
    let t0 = Instant::now();
    send(tg.grpc(), bodies, connections, pace).await;
    let sent = t0.elapsed();
    let (cpu_sent, _) = proc_stat(pid);
    // Every trace decided and its kept spans exported.
    while tg
        .metric("otelcol_processor_tail_sampling_sampling_traces_on_memory")
        .is_none()
        || tg
            .metric("tailgate_tail_sampling_buffered_spans")
            .unwrap_or(1.0)
            > 0.0
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let exported = tg
        .metric("otelcol_exporter_sent_spans_total")
        .unwrap_or(0.0);
    let (cpu1, _) = proc_stat(pid);
    let cpu = cpu1 - cpu0;
    println!(
        "cores {cores}, rate {}, load {}, membership {}: {spans} spans ({} B/span uncompressed) sent in {sent:?}, \
         {exported} exported, {cpu:.2} tailgate CPU-s (incl. the decision wait; {:.2} of them while \
         sending): {:.2} M spans per CPU-second",
        rate.map_or("max".to_owned(), |r| format!("{r} traces/s")),
        load_compression().name(),
        if membership().is_empty() { "none" } else { "self" },
        wire / spans,
        cpu_sent - cpu0,
        spans as f64 / cpu / 1e6
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn gateway_spans_per_cpu_second() {
    run("1", 20_000, Some(1000)).await;
    run("1", 100_000, None).await;
    run("2", 100_000, None).await;
}

/// The 1000 new traces/s run alone (`gateway_spans_per_cpu_second` includes it), for profiling.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn gateway_spans_per_cpu_second_at_1000_traces() {
    run("1", 20_000, Some(1000)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn gateway_rss_per_buffered_span() {
    let sink = Sink::start().await;
    let tg = Tailgate::start(&config(sink.addr, "1h", 400_000), &["--cores", "2"]);
    let pid = tg.child.id();
    let traces = 100_000;
    let (bodies, wire) = bodies(9, traces);
    let spans = (traces * SPANS_PER_TRACE) as f64;
    // Warm up allocator arenas and connections with a small batch of other traces first.
    let (warm, _) = bodies_for_warmup();
    send(tg.grpc(), warm, 8, None).await;
    let (_, rss0) = proc_stat(pid);
    let buffered0 = tg
        .metric("tailgate_tail_sampling_buffered_spans")
        .unwrap_or(0.0);
    send(tg.grpc(), bodies, 8, None).await;
    let want = buffered0 + spans;
    while tg
        .metric("tailgate_tail_sampling_buffered_spans")
        .unwrap_or(0.0)
        < want
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, rss1) = proc_stat(pid);
    let retained = tg
        .metric("tailgate_tail_sampling_retained_buffer_bytes")
        .unwrap_or(0.0);
    let grown = (rss1 - rss0) as f64;
    println!(
        "{spans} spans buffered, {wire} B on the wire ({:.0} B/span), retained buffers {retained:.0} B; \
         RSS grew {grown:.0} B = {:.0} B/span = {:.2}x the wire bytes",
        wire as f64 / spans,
        grown / spans,
        grown / wire as f64
    );
}

fn bodies_for_warmup() -> (Vec<Bytes>, usize) {
    bodies(77, 5_000)
}
