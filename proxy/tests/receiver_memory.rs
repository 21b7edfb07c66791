//! Issue 17's receive-side memory figures, measured on the binary (`TAILGATE_BIN`, a release build
//! for figures worth quoting): peak RSS above idle (`VmHWM` minus the idle `VmRSS`, from
//! `/proc/<pid>/status`) for
//! - 1,000 gRPC streams (10 connections × 100) that each send 4 MiB of a message declared 4 MiB
//!   plus one byte, then stall;
//! - the OTLP/JSON gzip bomb (18 KiB inflating to 19.5 MiB of `{"resourceSpans":[{},…]}`).
//!
//! Ignored by default (seconds of loopback traffic, and the figures mean little in a debug build):
//! `scripts/receiver-memory.sh` builds the release binary and runs them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use support::{http_post, Tailgate};

const MIB: u64 = 1 << 20;

fn start() -> Tailgate {
    Tailgate::start(
        "
receivers:
  otlp:
    protocols:
      grpc: {endpoint: 127.0.0.1:0}
      http: {endpoint: 127.0.0.1:0}
exporters:
  nop:
service:
  telemetry: {metrics: {address: 127.0.0.1:0}}
  pipelines:
    traces: {receivers: [otlp], exporters: [nop]}
",
        &["--cores", "2"],
    )
}

/// `field` (`VmHWM`, `VmRSS`) of process `pid`, in bytes.
fn status_bytes(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field}"));
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib << 10
}

/// The idle resident set after start-up (a few samples, the largest).
fn idle_rss(tg: &Tailgate) -> u64 {
    let mut most = 0;
    for _ in 0..5 {
        most = most.max(status_bytes(tg.child.id(), "VmRSS:"));
        std::thread::sleep(Duration::from_millis(100)); // sampling, not synchronising
    }
    most
}

/// The sum of every series whose line starts with `prefix`.
fn sum_series(tg: &Tailgate, prefix: &str) -> f64 {
    let text = support::http_get(tg.addr("service::telemetry::metrics"), "/metrics").1;
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn report(what: &str, tg: &Tailgate, idle: u64) -> u64 {
    let peak = status_bytes(tg.child.id(), "VmHWM:");
    let now = status_bytes(tg.child.id(), "VmRSS:");
    let above = peak.saturating_sub(idle);
    println!(
        "FIGURE {what}: idle {} MiB, peak {} MiB, now {} MiB, peak above idle {} MiB",
        idle / MIB,
        peak / MIB,
        now / MIB,
        above / MIB
    );
    above
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a figure: run by scripts/receiver-memory.sh on a release build"]
async fn peak_rss_of_1000_stalled_grpc_streams_with_4_mib_partial_messages() {
    let tg = start();
    let idle = idle_rss(&tg);
    // The largest message the default config accepts (4 MiB), one byte short.
    let declared = 4 << 20;
    let payload = Bytes::from(vec![0x0a; (4 << 20) - 1]);
    let mut conns = Vec::new();
    let mut streams = Vec::new();
    for _ in 0..10 {
        let tcp = tokio::net::TcpStream::connect(tg.grpc()).await.unwrap();
        let mut b = h2::client::Builder::new();
        b.initial_window_size(1 << 20);
        let (client, conn) = b.handshake(tcp).await.unwrap();
        conns.push(tokio::spawn(async move {
            let _ = conn.await;
        }));
        for _ in 0..100 {
            streams.push(support::stalled_export(&client, tg.grpc(), declared, &payload).await);
        }
    }
    // Give the streams time to send what the server lets them (every stream either answered or
    // its bytes acknowledged), then sample the peak for a few more seconds.
    let until = Instant::now() + Duration::from_secs(10);
    let mut pending = Vec::new();
    for (resp, send) in streams {
        pending.push((tokio::spawn(resp), send));
    }
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(200)).await; // sampling for a while, by design
    }
    // grpc-status of the streams answered so far (-1: reset without a status).
    let mut answered = std::collections::BTreeMap::<i64, usize>::new();
    let mut still = Vec::new();
    for (r, send) in pending {
        if r.is_finished() {
            let code = match r.await.unwrap() {
                Ok(resp) => support::header_status(&resp).map_or(-1, |s| i64::from(s.0)),
                Err(_) => -1,
            };
            *answered.entry(code).or_default() += 1;
        } else {
            still.push((r, send));
        }
    }
    println!(
        "FIGURE stalled streams: answered within 10 s by grpc-status {answered:?}, {} still open; request bytes in flight now {:.1} MiB, peak {:.1} MiB (summed over cores)",
        still.len(),
        sum_series(&tg, "otelcol_receiver_request_bytes_in_flight{") / MIB as f64,
        sum_series(&tg, "otelcol_receiver_request_bytes_in_flight_peak{") / MIB as f64,
    );
    let above = report("1000 stalled gRPC streams × 4 MiB partial", &tg, idle);
    assert!(above < 256 * MIB, "{} MiB above idle", above / MIB);
    drop(still);
    drop(conns);
}

#[test]
#[ignore = "a figure: run by scripts/receiver-memory.sh on a release build"]
fn peak_rss_of_the_json_bomb() {
    let tg = start();
    let mut json = b"{\"resourceSpans\":[".to_vec();
    json.extend_from_slice(&b"{},".repeat(6_500_000));
    json.extend_from_slice(b"{}]}");
    // Best compression, as in the issue: 18 KiB on the wire.
    let body = {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&json).unwrap();
        gz.finish().unwrap()
    };
    println!(
        "FIGURE json bomb: {} KiB of gzip inflating to {:.1} MiB",
        body.len() >> 10,
        json.len() as f64 / MIB as f64
    );
    drop(json);
    let idle = idle_rss(&tg);
    let started = Instant::now();
    let (status, text) = http_post(
        tg.addr("receivers::otlp::http"),
        "/v1/traces",
        &[
            ("content-type", "application/json"),
            ("content-encoding", "gzip"),
        ],
        &body,
    );
    println!(
        "FIGURE json bomb: answered {status} after {:?}: {}",
        started.elapsed(),
        text.trim()
    );
    let above = report("JSON bomb", &tg, idle);
    assert!(above < 96 * MIB, "{} MiB above idle", above / MIB);
}
