//! Shutdown budgets: `service.tailgate.connection_grace` for open connections to finish, then
//! `service.tailgate.drain_timeout` for stages to flush and queues to send. A request that
//! finishes on a connection still open after the grace is refused (UNAVAILABLE, "tailgate is
//! shutting down"), never taken after batch's flush, where it would be answered OK and lost.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use prost::Message;
use support::{export, frame, make_request, Sink, Tailgate, EXPORT_PATH};
use tailgate_proto::compression::Compression;
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
    let (client, conn) = h2::client::handshake(tcp).await.unwrap();
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
