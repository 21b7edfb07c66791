//! Shutdown budgets: `service.tailgate.connection_grace` for open connections to finish, then
//! `service.tailgate.drain_timeout` for stages to flush and queues to send. A request that
//! finishes on a connection still open after the grace is refused (UNAVAILABLE, "tailgate is
//! shutting down"), never taken after batch's flush, where it would be answered OK and lost.
//! What the drain deadline cuts off is counted by component and reason, and said at exit (the
//! metrics endpoint is gone by then): one warning per series, `shutdown: exporter otlp lost 1000
//! spans (reason=shutdown)`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use support::{export, frame, make_request, Sink, Tailgate, EXPORT_PATH};
use tailgate_proto::compression::Compression;
use tailgate_sampler::shard_for;
use tokio::net::TcpStream;

fn config(sink: &Sink) -> String {
    format!(
        "
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: 127.0.0.1:0}}
processors:
  batch: {{timeout: 60s}}
exporters:
  otlp:
    endpoint: {}
    tls: {{insecure: true}}
    compression: none
    timeout: 30s
service:
  tailgate: {{connection_grace: 300ms, drain_timeout: 20s}}
  telemetry: {{metrics: {{address: 127.0.0.1:0}}}}
  pipelines:
    traces: {{receivers: [otlp], processors: [batch], exporters: [otlp]}}
",
        sink.addr
    )
}

/// Polls the process's log for `line` (generous deadline).
async fn wait_log(tg: &Tailgate, line: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !tg.stderr().contains(line) {
        assert!(
            Instant::now() < deadline,
            "no {line:?} in:\n{}",
            tg.stderr()
        );
        tokio::time::sleep(Duration::from_millis(20)).await; // polling, not synchronisation
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_finishing_after_the_connection_grace_is_refused_not_lost() {
    let sink = Sink::start().await;
    // The drain then waits for the queue, so the late request meets a running process.
    sink.stall();
    let tg = Tailgate::start(&config(&sink), &["--cores", "1"]);
    let early = make_request(1, 1, 1, 5);
    assert_eq!(export(tg.grpc(), &early, Compression::Identity).await.0, 0);

    // A second request whose body is half sent when SIGTERM arrives.
    let late = frame(
        &make_request(2, 1, 1, 7).encode_to_vec(),
        Compression::Identity,
    );
    let (head, tail) = late.split_at(late.len() / 2);
    let addr = tg.grpc();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (client, mut conn) = h2::client::handshake(tcp).await.unwrap();
    let mut ping = conn
        .ping_pong()
        .expect("a fresh connection has its ping_pong");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut client = client.ready().await.unwrap();
    let req = http::Request::post(format!("http://{addr}{EXPORT_PATH}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
    let (resp, mut stream) = client.send_request(req, false).unwrap();
    stream
        .send_data(Bytes::copy_from_slice(head), false)
        .unwrap();
    // The server answers a PING after reading the frames sent before it, so the stream is open
    // there before SIGTERM (else its GOAWAY would refuse the stream and close the connection).
    tokio::time::timeout(Duration::from_secs(20), ping.ping(h2::Ping::opaque()))
        .await
        .expect("no PING answer within 20 s")
        .unwrap();

    let pid = tg.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    wait_log(&tg, "connection grace over").await;
    stream
        .send_data(Bytes::copy_from_slice(tail), true)
        .unwrap();
    let answer = async {
        let (parts, mut body) = resp.await.map_err(|e| e.to_string())?.into_parts();
        match parts.headers.get("grpc-status") {
            Some(_) => Ok(parts.headers),
            None => body
                .trailers()
                .await
                .map(Option::unwrap_or_default)
                .map_err(|e| e.to_string()),
        }
    };
    let trailers = tokio::time::timeout(Duration::from_secs(15), answer)
        .await
        .expect("no answer to the late request within 15 s")
        .unwrap();
    let status = trailers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let message = trailers
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert_eq!(status, "14", "refused as UNAVAILABLE: {message}");
    assert!(message.contains("shutting down"), "{message}");

    // The early request, flushed by batch at shutdown, is delivered within the drain budget.
    sink.release();
    sink.wait_total(5).await;
    assert!(tg.wait_exit().success());
    assert_eq!(sink.total(), 5, "only the early request was taken");
}

// === what the drain deadline cuts off is counted with a reason ===

/// The spans of every `shutdown: … lost N spans (…)` line in `log`, and those lines.
fn losses(log: &str) -> (u64, Vec<&str>) {
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("shutdown: ") && l.contains(" lost "))
        .collect();
    let n = lines
        .iter()
        .filter_map(|l| {
            l.split(" lost ")
                .nth(1)?
                .split(' ')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    (n, lines)
}

/// Sends SIGTERM and waits for the exit; the process must exit 0.
fn terminate(tg: Tailgate) -> String {
    let pid = tg.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let dir = tg.dir.clone();
    assert!(tg.wait_exit().success());
    std::fs::read_to_string(dir.join("stderr.log")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_an_exporter_still_holds_at_the_drain_deadline_are_counted_with_a_reason() {
    // One backend takes the request and never answers; the other is down (its port was bound
    // and released, so the dial is refused and the batch waits for its retry).
    let stalled = Sink::start().await;
    stalled.stall();
    let down = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let config = format!(
        "
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: 127.0.0.1:0}}
exporters:
  otlp/stalled:
    endpoint: {}
    tls: {{insecure: true}}
    timeout: 30s
  otlp/down:
    endpoint: {down}
    tls: {{insecure: true}}
service:
  tailgate: {{connection_grace: 100ms, drain_timeout: 500ms}}
  telemetry: {{metrics: {{address: 127.0.0.1:0}}}}
  pipelines:
    traces: {{receivers: [otlp], exporters: [otlp/stalled, otlp/down]}}
",
        stalled.addr
    );
    let tg = Tailgate::start(&config, &["--cores", "1"]);
    let req = make_request(1, 1, 1, 1000);
    assert_eq!(export(tg.grpc(), &req, Compression::Identity).await.0, 0);
    // Answered OK: both sending queues hold the 1000 spans from here on.
    let log = terminate(tg);
    for exporter in ["otlp/stalled", "otlp/down"] {
        let line = format!("shutdown: exporter {exporter} lost 1000 spans (reason=shutdown)");
        assert!(log.contains(&line), "no {line:?} in:\n{log}");
    }
    assert_eq!(losses(&log).0, 2000, "{log}");
    assert_eq!(stalled.total(), 0);
}

/// `n` trace IDs (from `seed`) that tail_sampling on `cores` cores gives to core `owner`.
fn owned_by(owner: u32, cores: u32, seed: u32, n: usize) -> Vec<[u8; 16]> {
    (0u32..)
        .map(|i| {
            let mut id = [0u8; 16];
            id[..4].copy_from_slice(&seed.to_be_bytes());
            id[4..8].copy_from_slice(&i.to_be_bytes());
            id[15] = 1;
            id
        })
        .filter(|id| shard_for(id, cores) % cores == owner)
        .take(n)
        .collect()
}

/// One span per trace in `ids`.
fn one_span_each(ids: &[[u8; 16]]) -> ExportTraceServiceRequest {
    let spans = ids
        .iter()
        .map(|id| Span {
            trace_id: id.to_vec(),
            span_id: id[..8].iter().map(|b| b ^ 0x5a).collect(),
            name: "op".into(),
            start_time_unix_nano: 1_700_000_000_000_000_000,
            end_time_unix_nano: 1_700_000_000_001_000_000,
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// tail_sampling on two cores, every trace owned by core 0, whose table (10 traces) is full of
/// undecided traces (`decision_wait: 1h`) with `block_on_overflow`: core 0 holds the spans it
/// had no room for and stops reading its inbound channel, so what core 1 accepts for it waits
/// there. At SIGTERM those parts are still unread when the drain deadline passes. Every span
/// answered OK must then be delivered or counted lost with a reason, none silently gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_sampling_spans_buffered_at_sigterm_are_delivered_or_counted_with_a_reason() {
    let sink = Sink::start().await;
    let config = format!(
        "
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: 127.0.0.1:0}}
processors:
  tail_sampling:
    decision_wait: 1h
    num_traces: 20
    block_on_overflow: true
    policies: [{{name: all, type: always_sample}}]
exporters:
  otlp:
    endpoint: {}
    tls: {{insecure: true}}
service:
  tailgate: {{connection_grace: 100ms, drain_timeout: 1s}}
  telemetry: {{metrics: {{address: 127.0.0.1:0}}}}
  pipelines:
    traces: {{receivers: [otlp], processors: [tail_sampling], exporters: [otlp]}}
",
        sink.addr
    );
    let tg = Tailgate::start(&config, &["--cores", "2"]);
    // A core that panicked answers nothing: bound every export and show the log.
    let send = |ids: &[[u8; 16]]| {
        let (addr, req) = (tg.grpc(), one_span_each(ids));
        async move {
            tokio::time::timeout(
                Duration::from_secs(10),
                export(addr, &req, Compression::Identity),
            )
            .await
            .map(|answer| answer.0)
        }
    };
    let ids = owned_by(0, 2, 7, 30 + 5 * 200);
    // 30 traces for a table of 10: core 0 is full and holds the rest, whichever core took them.
    let (first, rest) = ids.split_at(30);
    let status = send(first).await;
    assert_eq!(status, Ok(0), "{}", tg.stderr());
    let mut accepted = first.len() as u64;
    // Each export is a new connection, which SO_REUSEPORT gives to either core: core 0 refuses
    // (it holds spans), core 1 takes the request and passes it to core 0's channel.
    let mut taken_later = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    for chunk in rest.chunks(5) {
        if taken_later == 4 {
            break;
        }
        assert!(Instant::now() < deadline, "core 1 took too few requests");
        let status = send(chunk).await;
        assert!(status.is_ok(), "no answer within 10 s:\n{}", tg.stderr());
        if status == Ok(0) {
            accepted += chunk.len() as u64;
            taken_later += 1;
        }
    }
    assert_eq!(taken_later, 4, "core 1 took too few requests");
    let log = terminate(tg);
    let (lost, lines) = losses(&log);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("processor tail_sampling lost")
                && l.contains("reason=drain_timeout")),
        "parts unread at the deadline are counted: {lines:#?}\n{log}"
    );
    let delivered = sink.total() as u64;
    // At least: a batch the exporter was sending at the deadline may have arrived although it
    // was counted as abandoned.
    assert!(
        delivered + lost >= accepted,
        "{accepted} spans answered OK, {delivered} delivered, {lost} counted lost: {lines:#?}\n{log}"
    );
    // tail_sampling gives up waiting halfway through the drain budget, so what it decides then
    // still has time to reach the backend (before, the exporter was left no time at all).
    assert!(
        delivered > 0,
        "the spans decided at shutdown were not delivered: {lines:#?}\n{log}"
    );
}
