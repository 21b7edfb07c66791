//! Start-up is all or nothing: a component that cannot be built on any core stops the process
//! with its key path before a listener accepts, so a gateway can never run its pipeline without
//! `tail_sampling` (forwarding every span unsampled) or an exporter.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::trace::v1::Status;
use support::{make_request, scratch_dir, Sink, Tailgate};
use tailgate_proto::compression::Compression;

/// A gateway: tail_sampling that keeps nothing but errors, on a fixed loopback port `port` (0
/// lets the OS choose), exporting to `sink`.
fn gateway(port: u16, sink: SocketAddr) -> String {
    format!(
        "
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{port}
processors:
  tail_sampling:
    decision_wait: 1s
    policies:
      - name: errors-only
        type: status_code
        status_code: {{status_codes: [ERROR]}}
  batch:
    timeout: 50ms
exporters:
  otlp/backend:
    endpoint: {sink}
    tls: {{insecure: true}}
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp]
      processors: [tail_sampling, batch]
      exporters: [otlp/backend]
"
    )
}

/// A loopback port nobody listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// What a failed start-up left behind.
struct Failed {
    status: ExitStatus,
    stderr: String,
    ports_file_written: bool,
    /// Export calls (plain spans, no errors) answered by the process while it ran.
    answered: usize,
}

/// Runs tailgate with `fail` injected into the build and keeps sending an Export call to `port`
/// until the process exits (bounded).
fn run_failing(config: &str, port: u16, fail: &str) -> Failed {
    let dir = scratch_dir();
    let cfg = dir.join("config.yaml");
    std::fs::write(&cfg, config).unwrap();
    let ports = dir.join("ports.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tailgate"))
        .arg("--config")
        .arg(&cfg)
        .arg("--ports-file")
        .arg(&ports)
        .args(["--cores", "2"])
        .env("TAILGATE_FAIL_BUILD", fail)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut answered = 0;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "tailgate did not exit");
        if export_answered(SocketAddr::from(([127, 0, 0, 1], port))) {
            answered += 1;
        }
    };
    Failed {
        status,
        stderr: std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default(),
        ports_file_written: ports.exists(),
        answered,
    }
}

/// Sends one plain (cleartext HTTP/2, prior knowledge) Export request and says whether any HTTP/2
/// response header block came back within a short bound.
fn export_answered(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(50)) else {
        std::thread::sleep(Duration::from_millis(10));
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(100)));
    // Preface + empty SETTINGS: a server that accepted would answer with its SETTINGS frame.
    let _ = s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00");
    let mut buf = [0u8; 9];
    matches!(s.read(&mut buf), Ok(n) if n > 0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_sampling_failing_on_one_core_stops_the_process_before_any_listener_accepts() {
    let sink = Sink::start().await;
    let port = free_port();
    let config = gateway(port, sink.addr);
    let failed = tokio::task::spawn_blocking(move || {
        run_failing(&config, port, "processors.tail_sampling@1")
    })
    .await
    .unwrap();
    assert_eq!(failed.status.code(), Some(1), "stderr: {}", failed.stderr);
    assert!(
        failed.stderr.contains("processors.tail_sampling")
            && failed.stderr.contains("injected")
            && failed.stderr.contains("core 1"),
        "the message names the component: {}",
        failed.stderr
    );
    assert!(
        !failed.ports_file_written,
        "no ports file on a failed start"
    );
    assert_eq!(
        failed.answered, 0,
        "a listener answered before start-up completed"
    );
    // Nothing reached the backend: no span was forwarded unsampled.
    assert_eq!(sink.span_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exporter_failing_to_build_stops_the_process_with_its_key_path() {
    let sink = Sink::start().await;
    let port = free_port();
    let config = gateway(port, sink.addr);
    let failed =
        tokio::task::spawn_blocking(move || run_failing(&config, port, "exporters.otlp/backend"))
            .await
            .unwrap();
    assert_eq!(failed.status.code(), Some(1), "stderr: {}", failed.stderr);
    assert!(
        failed.stderr.contains("exporters.otlp/backend"),
        "{}",
        failed.stderr
    );
    assert!(!failed.ports_file_written);
    assert_eq!(failed.answered, 0);
}

/// The same config without the injected failure starts and samples: plain spans are dropped,
/// so the tests above fail for the reason they name, not a broken config.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_gateway_starts_and_samples_without_the_failure() {
    let sink = Sink::start().await;
    let tg = Tailgate::start(&gateway(0, sink.addr), &["--cores", "2"]);
    let plain = make_request(1, 1, 1, 3);
    let mut error = make_request(2, 1, 1, 2);
    for span in &mut error.resource_spans[0].scope_spans[0].spans {
        span.status = Some(Status {
            code: 2,
            ..Default::default()
        });
    }
    for req in [&plain, &error] {
        let (code, message) = support::export(tg.grpc(), req, Compression::Identity).await;
        assert_eq!(code, 0, "{message}");
    }
    sink.wait_spans(2).await;
    let status = tg.terminate();
    assert!(status.success());
    assert_eq!(sink.span_count(), 2, "only the error trace is kept");
}
