//! Overload: senders faster than the exporter (the backend is stalled) → memory_limiter refuses
//! with gRPC UNAVAILABLE and HTTP 503, the process's peak RSS stays under `limit_mib`, and every
//! span tailgate accepted is either at the sink or counted as failed in its self-metrics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use prost::Message;
use support::{frame, http_post, make_request, Sink, Tailgate};
use tailgate_proto::compression::Compression;

const LIMIT_MIB: u64 = 160;
const SPIKE_MIB: u64 = 60;
const SENDERS: usize = 4;
const SPANS_PER_REQUEST: u64 = 1000;

fn config(sink: SocketAddr) -> String {
    format!(
        "
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: 127.0.0.1:0}}
      http: {{endpoint: 127.0.0.1:0}}
processors:
  memory_limiter: {{check_interval: 20ms, limit_mib: {LIMIT_MIB}, spike_limit_mib: {SPIKE_MIB}}}
  batch: {{timeout: 20ms, send_batch_size: 1000}}
exporters:
  otlp:
    endpoint: {sink}
    tls: {{insecure: true}}
    compression: none
    timeout: 60s
    # The default byte cap (half the soft limit over cores and exporters) would keep the queue
    # below the point where memory_limiter refuses; this test is about memory_limiter.
    sending_queue: {{queue_size: 5000, num_consumers: 2, tailgate: {{max_bytes_per_core: 4294967296}}}}
service:
  telemetry: {{metrics: {{address: 127.0.0.1:0}}}}
  pipelines:
    traces: {{receivers: [otlp], processors: [memory_limiter, batch], exporters: [otlp]}}
"
    )
}

/// What the senders saw.
#[derive(Default)]
struct Tally {
    accepted_spans: AtomicU64,
    refused_unavailable: AtomicU64,
    other: AtomicU64,
}

/// One connection sending `body` back to back until `stop`, counting answers.
async fn sender(addr: SocketAddr, body: Bytes, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (client, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    while !stop.load(Ordering::Relaxed) {
        let resp = support::start_export(&client, addr, &body).await;
        let resp = resp.await.unwrap();
        let (parts, mut body_in) = resp.into_parts();
        let mut code = parts
            .headers
            .get("grpc-status")
            .map(|v| v.to_str().unwrap().to_owned());
        if code.is_none() {
            while let Some(chunk) = body_in.data().await {
                let _ = body_in
                    .flow_control()
                    .release_capacity(chunk.unwrap().len());
            }
            let trailers = body_in.trailers().await.unwrap().unwrap_or_default();
            code = trailers
                .get("grpc-status")
                .map(|v| v.to_str().unwrap().to_owned());
        }
        match code.as_deref() {
            Some("0") => tally
                .accepted_spans
                .fetch_add(SPANS_PER_REQUEST, Ordering::Relaxed),
            Some("14") => tally.refused_unavailable.fetch_add(1, Ordering::Relaxed),
            _ => tally.other.fetch_add(1, Ordering::Relaxed),
        };
    }
}

/// `VmHWM` (peak resident set) of `pid` in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

fn metric_sum(tg: &Tailgate, name: &str) -> f64 {
    let text = support::http_get(tg.addr("service::telemetry::metrics"), "/metrics").1;
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_backend_makes_memory_limiter_refuse_and_nothing_accepted_is_lost() {
    let sink = Sink::start().await;
    sink.stall();
    let tg = Tailgate::start(&config(sink.addr), &["--cores", "1"]);
    let pid = tg.child.id();
    let payload = make_request(1, 1, 1, SPANS_PER_REQUEST as usize).encode_to_vec();
    let body = frame(&payload, Compression::Identity);

    // Load until the limiter has refused a good number of requests (or a deadline).
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let tasks: Vec<_> = (0..SENDERS)
        .map(|_| tokio::spawn(sender(tg.grpc(), body.clone(), stop.clone(), tally.clone())))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    while tally.refused_unavailable.load(Ordering::Relaxed) < 20 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let refused = tally.refused_unavailable.load(Ordering::Relaxed);
    assert!(
        refused >= 20,
        "memory_limiter refused only {refused} requests\n{}",
        tg.stderr()
    );
    assert_eq!(
        tally.other.load(Ordering::Relaxed),
        0,
        "answers other than OK / UNAVAILABLE"
    );

    // The backend is still stalled, so memory is still above the soft limit: HTTP gets 503.
    let http = tg.addr("receivers::otlp::http");
    let (status, _) = tokio::task::spawn_blocking(move || {
        http_post(
            http,
            "/v1/traces",
            &[("content-type", "application/x-protobuf")],
            &payload,
        )
    })
    .await
    .unwrap();
    assert_eq!(status, 503);

    let peak = peak_rss(pid);
    assert!(
        peak < LIMIT_MIB << 20,
        "peak RSS {} MiB is over limit_mib {LIMIT_MIB}",
        peak >> 20
    );

    // Let the backend go: everything accepted reaches it or is counted as failed.
    sink.release();
    let accepted = tally.accepted_spans.load(Ordering::Relaxed);
    assert!(accepted > 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let failed = metric_sum(&tg, "otelcol_exporter_send_failed_spans_total") as u64;
        let at_sink = sink.total() as u64;
        if at_sink + failed == accepted {
            break;
        }
        assert!(
            at_sink + failed < accepted,
            "more spans out ({at_sink} at the sink + {failed} failed) than accepted ({accepted})"
        );
        assert!(
            Instant::now() < deadline,
            "{accepted} accepted, {at_sink} at the sink, {failed} counted as failed\n{}",
            tg.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        metric_sum(&tg, "otelcol_receiver_accepted_spans_total") as u64,
        accepted
    );
    // Every UNAVAILABLE is counted: as spans by memory_limiter (the flag rose after the request
    // started) or as a request the receiver refused before reading its body.
    let text = support::http_get(tg.addr("service::telemetry::metrics"), "/metrics").1;
    let at_start: f64 = text
        .lines()
        .filter(|l| {
            l.starts_with("otelcol_receiver_refused_requests_total{")
                && l.contains("reason=\"memory_limiter\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(
        metric_sum(&tg, "otelcol_processor_refused_spans_total") as u64
            + at_start as u64 * SPANS_PER_REQUEST
            >= refused * SPANS_PER_REQUEST
    );
    assert!(tg.terminate().success());
    assert_eq!(sink.broken(), 0);
}
