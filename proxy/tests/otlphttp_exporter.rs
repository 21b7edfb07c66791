//! The `otlphttp` exporter against an in-process OTLP/HTTP sink: encodings and compressions arrive
//! byte-identical per span; otlphttpexporter's retry rules (503 + Retry-After retried, 400
//! dropped and counted, unreachable endpoint retried then counted); partial success counted; TLS.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use support::http_sink::{Answer, HttpSink};
use support::{export, make_request, span_set, Tailgate};
use tailgate_proto::compression::Compression;

const CORES: [&str; 2] = ["--cores", "1"];

/// A pipeline from the gRPC receiver to every `otlphttp/<name>` exporter given as YAML.
fn config(exporters: &[(&str, String)]) -> String {
    let names: Vec<String> = exporters
        .iter()
        .map(|(n, _)| format!("otlphttp/{n}"))
        .collect();
    let mut blocks = String::new();
    for (n, body) in exporters {
        blocks.push_str(&format!("  otlphttp/{n}:\n{body}"));
    }
    format!(
        "
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
exporters:
{blocks}
service:
  telemetry: {{metrics: {{address: 127.0.0.1:0}}}}
  pipelines:
    traces: {{receivers: [otlp], exporters: [{}]}}
",
        names.join(", ")
    )
}

/// `otlphttp/<name>`'s value of `metric`, polled until it equals `want`.
async fn wait_metric(tg: &Tailgate, metric: &str, name: &str, want: f64) {
    tg.wait_metric(&format!("{metric}{{exporter=\"otlphttp/{name}\""), want)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proto_and_json_gzip_and_none_arrive_byte_identical() {
    let cases = [
        ("proto", "gzip"),
        ("proto", "none"),
        ("json", "gzip"),
        ("json", "none"),
        ("proto", "zstd"),
    ];
    let mut sinks = Vec::new();
    let mut exporters = Vec::new();
    for (i, (encoding, compression)) in cases.iter().enumerate() {
        let sink = HttpSink::start().await;
        exporters.push((
            format!("e{i}"),
            format!(
                "    endpoint: http://{}\n    encoding: {encoding}\n    compression: {compression}\n",
                sink.addr
            ),
        ));
        sinks.push(sink);
    }
    let exporters: Vec<(&str, String)> = exporters
        .iter()
        .map(|(n, b)| (n.as_str(), b.clone()))
        .collect();
    let tg = Tailgate::start(&config(&exporters), &CORES);
    let req = make_request(1, 2, 2, 25);
    assert_eq!(export(tg.grpc(), &req, Compression::Identity).await.0, 0);
    for ((encoding, compression), sink) in cases.iter().zip(&sinks) {
        sink.wait_total(100).await;
        assert_eq!(
            span_set(&sink.requests()),
            span_set(std::slice::from_ref(&req)),
            "{encoding}/{compression}"
        );
        let seen = &sink.seen()[0];
        assert_eq!(seen.path, "/v1/traces");
        let want_type = if *encoding == "json" {
            "application/json"
        } else {
            "application/x-protobuf"
        };
        assert_eq!(seen.content_type, want_type);
        let want_encoding = if *compression == "none" {
            ""
        } else {
            compression
        };
        assert_eq!(seen.content_encoding, want_encoding);
        assert!(
            seen.user_agent.starts_with("tailgate/"),
            "{}",
            seen.user_agent
        );
    }
    for (i, _) in cases.iter().enumerate() {
        wait_metric(
            &tg,
            "otelcol_exporter_sent_spans_total",
            &format!("e{i}"),
            100.0,
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_endpoint_and_headers_are_used_as_is() {
    let sink = HttpSink::start().await;
    let body = format!(
        "    endpoint: http://127.0.0.1:1\n    traces_endpoint: http://{}/custom/path\n    headers: {{x-tenant: acme}}\n    compression: none\n",
        sink.addr
    );
    let tg = Tailgate::start(&config(&[("t", body)]), &CORES);
    assert_eq!(
        export(tg.grpc(), &make_request(2, 1, 1, 3), Compression::Identity)
            .await
            .0,
        0
    );
    sink.wait_total(3).await;
    let seen = &sink.seen()[0];
    assert_eq!(seen.path, "/custom/path");
    assert_eq!(seen.headers.get("x-tenant").unwrap(), "acme");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_with_retry_after_is_retried_after_that_delay() {
    let sink = HttpSink::start().await;
    sink.script(&[Answer {
        status: 503,
        retry_after: Some("1".into()),
        rejected: 0,
    }]);
    let body = format!(
        "    endpoint: http://{}\n    retry_on_failure: {{initial_interval: 10ms, randomization_factor: 0}}\n",
        sink.addr
    );
    let tg = Tailgate::start(&config(&[("r", body)]), &CORES);
    let req = make_request(3, 1, 1, 10);
    assert_eq!(export(tg.grpc(), &req, Compression::Identity).await.0, 0);
    sink.wait_total(10).await;
    let seen = sink.seen();
    assert_eq!(seen.len(), 2, "one refusal, one retry");
    let gap = seen[1].at - seen[0].at;
    // The backoff alone would wait 10 ms; Retry-After asks for a second.
    assert!(gap >= Duration::from_millis(950), "retried after {gap:?}");
    assert_eq!(span_set(&sink.requests()), span_set(&[req]));
    wait_metric(&tg, "otelcol_exporter_sent_spans_total", "r", 10.0).await;
    wait_metric(&tg, "otelcol_exporter_send_failed_spans_total", "r", 0.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_400_is_dropped_without_retry_and_counted() {
    let sink = HttpSink::start().await;
    sink.script(&[Answer::status(400)]);
    let body = format!(
        "    endpoint: http://{}\n    retry_on_failure: {{initial_interval: 10ms}}\n",
        sink.addr
    );
    let tg = Tailgate::start(&config(&[("p", body)]), &CORES);
    assert_eq!(
        export(tg.grpc(), &make_request(4, 1, 1, 7), Compression::Identity)
            .await
            .0,
        0
    );
    wait_metric(&tg, "otelcol_exporter_send_failed_spans_total", "p", 7.0).await;
    wait_metric(&tg, "otelcol_exporter_sent_spans_total", "p", 0.0).await;
    // A later batch still goes through on the same exporter, and the 400 was never re-sent.
    assert_eq!(
        export(tg.grpc(), &make_request(5, 1, 1, 2), Compression::Identity)
            .await
            .0,
        0
    );
    sink.wait_total(2).await;
    assert_eq!((sink.seen().len(), sink.refused()), (2, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_endpoint_is_retried_then_counted() {
    // A port that was just free: connecting is refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let body = format!(
        "    endpoint: http://127.0.0.1:{port}\n    retry_on_failure: {{initial_interval: 20ms, max_interval: 50ms, max_elapsed_time: 400ms}}\n"
    );
    let yaml = config(&[("u", body)]).replace("telemetry: {", "telemetry: {logs: {level: debug}, ");
    let tg = Tailgate::start(&yaml, &CORES);
    assert_eq!(
        export(tg.grpc(), &make_request(6, 1, 1, 4), Compression::Identity)
            .await
            .0,
        0
    );
    wait_metric(&tg, "otelcol_exporter_send_failed_spans_total", "u", 4.0).await;
    wait_metric(&tg, "otelcol_exporter_sent_spans_total", "u", 0.0).await;
    let log = tg.stderr();
    assert!(log.matches("export failed, retrying").count() >= 2, "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_success_rejections_are_counted() {
    let sink = HttpSink::start().await;
    sink.script(&[Answer {
        status: 200,
        retry_after: None,
        rejected: 3,
    }]);
    let body = format!("    endpoint: http://{}\n", sink.addr);
    let tg = Tailgate::start(&config(&[("s", body)]), &CORES);
    assert_eq!(
        export(tg.grpc(), &make_request(7, 1, 1, 8), Compression::Identity)
            .await
            .0,
        0
    );
    sink.wait_total(8).await;
    wait_metric(&tg, "otelcol_exporter_sent_spans_total", "s", 8.0).await;
    wait_metric(
        &tg,
        "tailgate_exporter_partial_success_rejected_spans_total",
        "s",
        3.0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_to_a_tls_sink_verifies_the_chain() {
    let dir = support::scratch_dir();
    let (ca_pem, server) = support::test_pki("localhost", b"http/1.1");
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca_pem).unwrap();
    let sink = HttpSink::start_with(Some(server)).await;
    let body = format!(
        "    endpoint: https://127.0.0.1:{}\n    tls: {{ca_file: {}, server_name_override: localhost}}\n",
        sink.addr.port(),
        ca_file.display()
    );
    let tg = Tailgate::start(&config(&[("tls", body)]), &CORES);
    let req = make_request(8, 1, 2, 5);
    assert_eq!(export(tg.grpc(), &req, Compression::Identity).await.0, 0);
    sink.wait_total(10).await;
    assert_eq!(span_set(&sink.requests()), span_set(&[req]));
    wait_metric(&tg, "otelcol_exporter_sent_spans_total", "tls", 10.0).await;
}
