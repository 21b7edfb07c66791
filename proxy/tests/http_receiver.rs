//! OTLP/HTTP into the real binary, out over gRPC to a sink.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use prost::Message;
use support::{http_post, make_request, span_set, Sink, Tailgate};
use tailgate_proto::compression::Compression;

fn config(sink: std::net::SocketAddr) -> String {
    format!(
        "
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:0
        max_request_body_size: 1048576
processors:
  batch:
    timeout: 20ms
exporters:
  otlp:
    endpoint: {sink}
    tls: {{insecure: true}}
service:
  telemetry: {{metrics: {{address: 127.0.0.1:0}}}}
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [otlp]
"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_gzip_and_json_bodies_arrive_byte_identical() {
    let sink = Sink::start().await;
    let tg = Tailgate::start(&config(sink.addr), &["--cores", "2"]);
    let addr = tg.addr("receivers::otlp::http");
    let a = make_request(11, 1, 2, 10);
    let b = make_request(12, 2, 1, 10);
    let c = make_request(13, 1, 1, 10);
    let (pa, pb) = (
        a.encode_to_vec(),
        Compression::Gzip.compress(&b.encode_to_vec()).unwrap(),
    );
    let json = serde_json::to_vec(&c).unwrap();
    let results = tokio::task::spawn_blocking(move || {
        vec![
            http_post(
                addr,
                "/v1/traces",
                &[("Content-Type", "application/x-protobuf")],
                &pa,
            ),
            http_post(
                addr,
                "/v1/traces",
                &[
                    ("Content-Type", "application/x-protobuf"),
                    ("Content-Encoding", "gzip"),
                ],
                &pb,
            ),
            http_post(
                addr,
                "/v1/traces",
                &[("Content-Type", "application/json")],
                &json,
            ),
        ]
    })
    .await
    .unwrap();
    for (code, body) in &results {
        assert_eq!(*code, 200, "{body}");
    }
    assert_eq!(results[2].1, "{}");
    let expected = span_set(&[a, b, c]);
    sink.wait_spans(expected.len()).await;
    assert_eq!(span_set(&sink.requests()), expected);
    assert_eq!(
        tg.metric("otelcol_receiver_accepted_spans_total{receiver=\"otlp\",transport=\"http\"}"),
        Some(expected.len() as f64)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_http_requests_get_the_collectors_status_codes() {
    let sink = Sink::start().await;
    let tg = Tailgate::start(&config(sink.addr), &["--cores", "1"]);
    let addr = tg.addr("receivers::otlp::http");
    let good = make_request(14, 1, 1, 3).encode_to_vec();
    let pb = ("Content-Type", "application/x-protobuf");
    let codes = tokio::task::spawn_blocking(move || {
        vec![
            http_post(addr, "/v1/traces", &[("Content-Type", "text/plain")], &good).0,
            http_post(
                addr,
                "/v1/traces",
                &[pb, ("Content-Encoding", "gzip")],
                b"not gzip",
            )
            .0,
            http_post(addr, "/v1/traces", &[pb], &[0x0a, 0xff, 0x01]).0,
            http_post(
                addr,
                "/v1/traces",
                &[("Content-Type", "application/json")],
                b"{\"resourceSpans\": [",
            )
            .0,
            http_post(addr, "/v1/metrics", &[pb], &good).0,
            http_post(addr, "/nope", &[pb], &good).0,
            http_post(addr, "/v1/traces", &[pb], &vec![0u8; 2 << 20]).0,
            support::http_get(addr, "/v1/traces").0,
            http_post(addr, "/v1/traces", &[pb], &good).0,
        ]
    })
    .await
    .unwrap();
    assert_eq!(codes, vec![415, 400, 400, 400, 501, 404, 413, 405, 200]);
    sink.wait_spans(3).await;
}
