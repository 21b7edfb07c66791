//! Sender → sink over loopback, and raw h2 / HTTP/1.1 requests that do not use our sender.
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use tailgate_perf::grpc::{Compression, GrpcStatus, TRACE_EXPORT_PATH};
use tailgate_perf::sender::{Sender, SenderConfig};
use tailgate_perf::sink::{Faults, RecordMode, Sink, SinkConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WAIT: Duration = Duration::from_secs(10);

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
    }
}

/// `services` resources, each with `spans` spans of trace `[trace; 16]`, span IDs numbered.
fn request(trace: u8, services: usize, spans: usize) -> ExportTraceServiceRequest {
    let resource_spans = (0..services)
        .map(|s| ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", &format!("svc-{s}"))],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "lib".into(),
                    ..Default::default()
                }),
                spans: (0..spans)
                    .map(|i| Span {
                        trace_id: vec![trace; 16],
                        span_id: ((s * spans + i) as u64 + 1).to_be_bytes().to_vec(),
                        name: format!("op-{i}"),
                        attributes: (0..8)
                            .map(|a| kv(&format!("attr.{a}"), "value-xx"))
                            .collect(),
                        ..Default::default()
                    })
                    .collect(),
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        })
        .collect();
    ExportTraceServiceRequest { resource_spans }
}

async fn sender(sink: &Sink, compression: Compression) -> Sender {
    let config = SenderConfig {
        compression,
        ..SenderConfig::default()
    };
    Sender::connect(sink.grpc_addr(), config).await.unwrap()
}

#[tokio::test]
async fn spans_arrive_with_their_resource_and_scope() {
    let sink = Sink::start(SinkConfig::default()).await.unwrap();
    let tx = sender(&sink, Compression::None).await;
    let req = request(7, 2, 3);
    let answer = tx.export(&req.encode_to_vec()).await.unwrap();
    assert!(answer.is_ok(), "{answer:?}");

    let seen = sink.wait_for_spans(6, WAIT).await.unwrap();
    assert_eq!(seen.stats.accepted_requests, 1);
    assert_eq!(seen.stats.accepted_spans, 6);
    assert_eq!(seen.spans.len(), 6);
    for (i, span) in seen.spans.iter().enumerate() {
        let expected = &req.resource_spans[i / 3].scope_spans[0].spans[i % 3];
        assert_eq!(&span.decode_span().unwrap(), expected);
        assert_eq!(span.trace_id, [7; 16]);
        assert_eq!(
            span.service_name().as_deref(),
            Some(["svc-0", "svc-1"][i / 3])
        );
        assert_eq!(span.decode_scope().unwrap().name, "lib");
    }
    assert_eq!(seen.trace_ids().len(), 1);
    sink.shutdown().await;
}

#[tokio::test]
async fn gzip_and_zstd_requests_are_decoded() {
    let sink = Sink::start(SinkConfig::default()).await.unwrap();
    for (n, c) in [Compression::Gzip, Compression::Zstd]
        .into_iter()
        .enumerate()
    {
        let tx = sender(&sink, c).await;
        let answer = tx
            .export(&request(n as u8 + 1, 1, 5).encode_to_vec())
            .await
            .unwrap();
        assert!(answer.is_ok(), "{c:?}: {answer:?}");
    }
    let seen = sink.wait_for_spans(10, WAIT).await.unwrap();
    assert_eq!(seen.trace_ids().len(), 2);
    // Compressed on the wire: fewer bytes than the spans' encoded size.
    let span_bytes: usize = seen.spans.iter().map(|s| s.span.len()).sum();
    assert!((seen.stats.wire_bytes as usize) < span_bytes);
}

#[tokio::test]
async fn requests_larger_than_default_windows_and_concurrent_streams() {
    let sink = Sink::start(SinkConfig {
        record: RecordMode::Ids,
        ..SinkConfig::default()
    })
    .await
    .unwrap();
    let tx = sender(&sink, Compression::None).await;
    // 1000 spans with 8 attributes: well above h2's default 64 KiB window.
    let big = request(1, 1, 1000).encode_to_vec();
    assert!(big.len() > 150_000);
    let big = Bytes::from(big);
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (tx, big) = (tx.clone(), big.clone());
        // Concurrent streams on one h2 connection.
        calls.spawn(async move { tx.export(&big).await });
    }
    while let Some(answer) = calls.join_next().await {
        assert!(answer.unwrap().unwrap().is_ok());
    }
    let seen = sink.wait_for_spans(8000, WAIT).await.unwrap();
    assert_eq!(seen.keys.len(), 8000);
    assert!(seen.spans.is_empty(), "ids mode keeps no span bytes");
    assert_eq!(seen.stats.connections, 1);
}

#[tokio::test]
async fn fault_injection_refuses_a_fraction_and_can_be_changed() {
    let sink = Sink::start(SinkConfig {
        faults: Faults {
            fail_fraction: 0.5,
            fail_status: GrpcStatus::UNAVAILABLE,
            ..Faults::none()
        },
        ..SinkConfig::default()
    })
    .await
    .unwrap();
    let tx = sender(&sink, Compression::None).await;
    let mut statuses = Vec::new();
    for i in 0..4 {
        let answer = tx.export(&request(i, 1, 2).encode_to_vec()).await.unwrap();
        statuses.push(answer.status);
    }
    let (ok, bad) = (GrpcStatus::OK, GrpcStatus::UNAVAILABLE);
    assert_eq!(statuses, vec![ok, bad, ok, bad]);

    sink.set_faults(Faults::fail_all(GrpcStatus::RESOURCE_EXHAUSTED));
    let answer = tx.export(&request(9, 1, 2).encode_to_vec()).await.unwrap();
    assert_eq!(answer.status, GrpcStatus::RESOURCE_EXHAUSTED);
    assert_eq!(answer.message, "refused by fault injection");

    sink.set_faults(Faults::none());
    assert!(tx
        .export(&request(10, 1, 2).encode_to_vec())
        .await
        .unwrap()
        .is_ok());

    let stats = sink.stats();
    assert_eq!(stats.requests, 6);
    assert_eq!(stats.failed_requests, 3);
    assert_eq!(stats.rejected_spans, 6);
    assert_eq!(stats.accepted_spans, 6);
    let traces = sink.snapshot().trace_ids();
    assert_eq!(
        traces.into_iter().map(|t| t[0]).collect::<Vec<_>>(),
        vec![0, 2, 10]
    );
}

#[tokio::test]
async fn slow_sink_still_answers() {
    let sink = Sink::start(SinkConfig {
        faults: Faults {
            delay: Duration::from_millis(50),
            ..Faults::none()
        },
        ..SinkConfig::default()
    })
    .await
    .unwrap();
    let tx = sender(&sink, Compression::None).await;
    assert!(tx
        .export(&request(1, 1, 1).encode_to_vec())
        .await
        .unwrap()
        .is_ok());
}

#[tokio::test]
async fn sender_deadline_is_reported() {
    let sink = Sink::start(SinkConfig {
        faults: Faults {
            delay: Duration::from_secs(60),
            ..Faults::none()
        },
        ..SinkConfig::default()
    })
    .await
    .unwrap();
    let tx = Sender::connect(
        sink.grpc_addr(),
        SenderConfig {
            timeout: Some(Duration::from_millis(20)),
            ..SenderConfig::default()
        },
    )
    .await
    .unwrap();
    let err = tx
        .export(&request(1, 1, 1).encode_to_vec())
        .await
        .unwrap_err();
    assert!(
        matches!(err, tailgate_perf::sender::SendError::Timeout),
        "{err}"
    );
}

#[tokio::test]
async fn wait_for_spans_times_out_with_the_count_seen() {
    let sink = Sink::start(SinkConfig::default()).await.unwrap();
    let tx = sender(&sink, Compression::None).await;
    tx.export(&request(1, 1, 2).encode_to_vec()).await.unwrap();
    let err = sink
        .wait_for_spans(3, Duration::from_millis(10))
        .await
        .unwrap_err();
    assert_eq!((err.seen, err.wanted), (2, 3));
}

// === Raw h2: framing written by hand, not by our sender ===

async fn raw_call(
    sink: &Sink,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> (String, String) {
    let tcp = tokio::net::TcpStream::connect(sink.grpc_addr())
        .await
        .unwrap();
    let (send, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(conn);
    let mut send = send.ready().await.unwrap();
    let mut req = http::Request::builder()
        .method("POST")
        .uri(format!("http://{}{path}", sink.grpc_addr()))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let (resp, mut stream) = send.send_request(req.body(()).unwrap(), false).unwrap();
    stream.send_data(body, true).unwrap();
    let resp = resp.await.unwrap();
    let (parts, mut recv) = resp.into_parts();
    assert_eq!(parts.status, 200);
    let mut data = Vec::new();
    while let Some(chunk) = recv.data().await {
        data.extend_from_slice(&chunk.unwrap());
    }
    let trailers = recv.trailers().await.unwrap().unwrap_or_default();
    let get = |name: &str| {
        parts
            .headers
            .get(name)
            .or_else(|| trailers.get(name))
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    if get("grpc-status") == "0" {
        assert_eq!(data, vec![0, 0, 0, 0, 0], "one empty response message");
    }
    (get("grpc-status"), get("grpc-message"))
}

fn hand_frame(flag: u8, payload: &[u8]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_u8(flag);
    b.put_u32(payload.len() as u32);
    b.put_slice(payload);
    b.freeze()
}

#[tokio::test]
async fn raw_h2_requests_get_the_right_status() {
    let sink = Sink::start(SinkConfig::default()).await.unwrap();
    let good = request(3, 1, 2).encode_to_vec();

    let (status, _) = raw_call(&sink, TRACE_EXPORT_PATH, &[], hand_frame(0, &good)).await;
    assert_eq!(status, "0");

    let (status, _) = raw_call(&sink, "/other.Service/Export", &[], hand_frame(0, &good)).await;
    assert_eq!(status, "12");

    let garbage = [0x0a, 0xff, 0xff, 0x01];
    let (status, message) = raw_call(&sink, TRACE_EXPORT_PATH, &[], hand_frame(0, &garbage)).await;
    assert_eq!(status, "3");
    assert!(message.contains("malformed"), "{message}");

    let (status, _) = raw_call(
        &sink,
        TRACE_EXPORT_PATH,
        &[("grpc-encoding", "br")],
        hand_frame(1, &good),
    )
    .await;
    assert_eq!(status, "12");

    let truncated = hand_frame(0, &good).slice(..10);
    let (status, _) = raw_call(&sink, TRACE_EXPORT_PATH, &[], truncated).await;
    assert_eq!(status, "3");

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &good).unwrap();
    let gz = gz.finish().unwrap();
    let (status, _) = raw_call(
        &sink,
        TRACE_EXPORT_PATH,
        &[("grpc-encoding", "gzip")],
        hand_frame(1, &gz),
    )
    .await;
    assert_eq!(status, "0");

    let stats = sink.stats();
    assert_eq!((stats.accepted_requests, stats.invalid_requests), (2, 2));
    assert_eq!(stats.accepted_spans, 4);
}

#[tokio::test]
async fn oversized_request_is_resource_exhausted() {
    let sink = Sink::start(SinkConfig {
        max_message_bytes: 1000,
        ..SinkConfig::default()
    })
    .await
    .unwrap();
    let big = request(1, 1, 100).encode_to_vec();
    let (status, _) = raw_call(&sink, TRACE_EXPORT_PATH, &[], hand_frame(0, &big)).await;
    assert_eq!(status, "8");
}

// === Raw HTTP/1.1 ===

async fn raw_http(
    addr: std::net::SocketAddr,
    path: &str,
    extra: &str,
    body: &[u8],
) -> (u16, Vec<u8>) {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: sink\r\ncontent-type: application/x-protobuf\r\n{extra}content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(body).await.unwrap();
    let mut out = Vec::new();
    tcp.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out);
    let status = text[9..12].parse().unwrap();
    let body_at = text.find("\r\n\r\n").unwrap() + 4;
    (status, out[body_at..].to_vec())
}

#[tokio::test]
async fn otlp_http_posts_are_recorded() {
    let sink = Sink::start(SinkConfig::default().with_http())
        .await
        .unwrap();
    let addr = sink.http_addr().unwrap();
    let good = request(5, 1, 3).encode_to_vec();
    assert_eq!(raw_http(addr, "/v1/traces", "", &good).await.0, 200);

    let gz = Compression::Gzip.compress(&good);
    assert_eq!(
        raw_http(addr, "/v1/traces", "content-encoding: gzip\r\n", &gz)
            .await
            .0,
        200
    );

    assert_eq!(raw_http(addr, "/v1/metrics", "", &good).await.0, 404);
    assert_eq!(raw_http(addr, "/v1/traces", "", &[0x0a, 0xff]).await.0, 400);

    sink.set_faults(Faults::fail_all(GrpcStatus::UNAVAILABLE));
    let (status, body) = raw_http(addr, "/v1/traces", "", &good).await;
    assert_eq!(status, 503);
    assert_eq!(body[..2], [0x08, 14], "google.rpc.Status with code 14");

    let seen = sink.wait_for_spans(6, WAIT).await.unwrap();
    assert_eq!(seen.spans_per_trace().get(&[5; 16]), Some(&6));
}
