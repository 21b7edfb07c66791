//! Real OpenTelemetry clients (Python SDK gRPC + HTTP exporters, raw grpcio) → tailgate → sink.
//!
//! Needs `TAILGATE_PYTHON` (set by scripts/test.sh, which installs scripts/requirements-interop.txt
//! into a venv). Without it each test fails under CI (`CI` set) and is skipped, loudly, elsewhere.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;

use support::{Sink, Tailgate};

fn python(test: &str) -> Option<String> {
    match std::env::var("TAILGATE_PYTHON") {
        Ok(p) if !p.is_empty() => Some(p),
        _ => {
            tailgate_perf::ci::missing_prerequisite(
                test,
                "TAILGATE_PYTHON is not set (scripts/test.sh sets it)",
            );
            None
        }
    }
}

fn config(sink: std::net::SocketAddr) -> String {
    format!(
        "
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: 127.0.0.1:0}}
      http: {{endpoint: 127.0.0.1:0}}
processors:
  batch: {{timeout: 20ms}}
exporters:
  otlp: {{endpoint: {sink}, tls: {{insecure: true}}}}
service:
  telemetry: {{metrics: {{level: none}}}}
  pipelines:
    traces: {{receivers: [otlp], processors: [batch], exporters: [otlp]}}
"
    )
}

async fn run_client(mode: &str, key: &str, count: usize) {
    let Some(python) = python(&format!("interop {mode}")) else {
        return;
    };
    let sink = Sink::start().await;
    let tg = Tailgate::start(&config(sink.addr), &["--cores", "2"]);
    let addr = tg.addr(key).to_string();
    let script = format!("{}/tests/interop/client.py", env!("CARGO_MANIFEST_DIR"));
    let prefix = format!("{mode}-span");
    let out = tokio::process::Command::new(python)
        .args([script.as_str(), mode, &addr, &count.to_string(), &prefix])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{mode} client failed:\n{}\n{}\ntailgate:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        tg.stderr()
    );
    sink.wait_spans(count).await;
    let names: BTreeSet<String> = sink
        .requests()
        .iter()
        .flat_map(|r| r.resource_spans.iter())
        .flat_map(|rs| rs.scope_spans.iter())
        .flat_map(|ss| ss.spans.iter())
        .map(|s| s.name.clone())
        .collect();
    let expected: BTreeSet<String> = (0..count).map(|i| format!("{prefix}-{i}")).collect();
    assert_eq!(names, expected);
    assert_eq!(sink.span_count(), count, "no span duplicated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_grpc_exporter() {
    run_client("sdk-grpc", "receivers::otlp::grpc", 300).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_http_exporter() {
    run_client("sdk-http", "receivers::otlp::http", 300).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_grpcio_client() {
    run_client("grpcio", "receivers::otlp::grpc", 100).await;
}
