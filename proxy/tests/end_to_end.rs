//! The real binary on 127.0.0.1 port 0 between a gRPC sender and a gRPC sink.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;

use support::{export, make_request, send_raw, span_set, Sink, Tailgate, EXPORT_PATH};
use tailgate_proto::compression::Compression;

fn config(sink: SocketAddr, processors: &str, exporter_extra: &str) -> String {
    format!(
        "
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
processors:
  batch:
    timeout: 50ms
    send_batch_size: 300
    send_batch_max_size: 400
  memory_limiter:
    check_interval: 100ms
    limit_mib: 8000
exporters:
  otlp/sink:
    endpoint: {sink}
    tls:
      insecure: true
    retry_on_failure:
      initial_interval: 10ms
      max_interval: 50ms
{exporter_extra}
extensions:
  health_check:
    endpoint: 127.0.0.1:0
service:
  extensions: [health_check]
  telemetry:
    metrics:
      address: 127.0.0.1:0
  pipelines:
    traces:
      receivers: [otlp]
      processors: [{processors}]
      exporters: [otlp/sink]
"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_arrive_byte_identical_with_every_compression() {
    let sink = Sink::start().await;
    let tg = Tailgate::start(
        &config(sink.addr, "memory_limiter, batch", "    compression: zstd"),
        &["--cores", "2"],
    );
    let mut sent = Vec::new();
    for (i, enc) in [
        Compression::Identity,
        Compression::Gzip,
        Compression::Zstd,
        Compression::Snappy,
    ]
    .into_iter()
    .enumerate()
    {
        for j in 0..5u32 {
            let req = make_request(i as u32 * 100 + j, 2, 2, 25);
            let (code, msg) = export(tg.grpc(), &req, enc).await;
            assert_eq!(code, 0, "{enc:?}: {msg}");
            sent.push(req);
        }
    }
    let expected = span_set(&sent);
    sink.wait_spans(expected.len()).await;
    assert_eq!(span_set(&sink.requests()), expected);
    assert!(
        sink.encodings().iter().all(|e| e == "zstd"),
        "{:?}",
        sink.encodings()
    );
    // send_batch_max_size splits: no request to the sink holds more than 400 spans.
    assert!(sink
        .requests()
        .iter()
        .all(|r| span_set(std::slice::from_ref(r)).len() <= 400));
    assert_eq!(
        tg.metric("otelcol_receiver_accepted_spans_total{receiver=\"otlp\",transport=\"grpc\"}"),
        Some(expected.len() as f64)
    );
    assert_eq!(
        tg.metric("otelcol_exporter_sent_spans_total{exporter=\"otlp/sink\"}"),
        Some(expected.len() as f64)
    );
    let (status, body) = support::http_get(tg.addr("extensions::health_check"), "/");
    assert_eq!(status, 200, "{body}");
    let status = tg.terminate();
    assert!(status.success(), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_receiver_feeds_every_pipeline() {
    let a = Sink::start().await;
    let b = Sink::start().await;
    let cfg = format!(
        "
receivers: {{otlp: {{protocols: {{grpc: {{endpoint: 127.0.0.1:0}}}}}}}}
exporters:
  otlp/a: {{endpoint: {}, tls: {{insecure: true}}, compression: none}}
  otlp/b: {{endpoint: 'http://{}'}}
service:
  telemetry: {{metrics: {{level: none}}}}
  pipelines:
    traces/a: {{receivers: [otlp], exporters: [otlp/a]}}
    traces/b: {{receivers: [otlp], exporters: [otlp/b]}}
",
        a.addr, b.addr
    );
    let tg = Tailgate::start(&cfg, &["--cores", "1"]);
    let req = make_request(7, 1, 1, 10);
    assert_eq!(export(tg.grpc(), &req, Compression::Identity).await.0, 0);
    a.wait_spans(10).await;
    b.wait_spans(10).await;
    assert_eq!(
        span_set(&a.requests()),
        span_set(std::slice::from_ref(&req))
    );
    assert_eq!(span_set(&b.requests()), span_set(&[req]));
    assert!(a.encodings().iter().all(|e| e == "identity"));
    assert!(
        b.encodings().iter().all(|e| e == "gzip"),
        "gzip is the default compression"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exporter_retries_retryable_codes_and_drops_permanent_ones() {
    let sink = Sink::start().await;
    let tg = Tailgate::start(&config(sink.addr, "batch", ""), &["--cores", "1"]);
    // UNAVAILABLE twice, then OK: the batch arrives once.
    sink.script(&[14, 14]);
    let first = make_request(1, 1, 1, 10);
    assert_eq!(export(tg.grpc(), &first, Compression::Identity).await.0, 0);
    sink.wait_spans(10).await;
    assert_eq!(sink.refused(), 2);
    assert_eq!(span_set(&sink.requests()), span_set(&[first]));
    // INVALID_ARGUMENT is permanent: dropped after one attempt and counted.
    sink.script(&[3]);
    let second = make_request(2, 1, 1, 10);
    assert_eq!(export(tg.grpc(), &second, Compression::Identity).await.0, 0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while tg.metric("otelcol_exporter_send_failed_spans_total{exporter=\"otlp/sink\"}")
        != Some(10.0)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "send_failed never reached 10"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(sink.refused(), 3);
    assert_eq!(sink.span_count(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_the_right_status_and_the_process_keeps_serving() {
    let sink = Sink::start().await;
    let tg = Tailgate::start(&config(sink.addr, "batch", ""), &["--cores", "1"]);
    let addr = tg.grpc();
    let good = make_request(3, 1, 1, 5);
    // Unknown method and the metrics service: UNIMPLEMENTED.
    let body = support::frame(b"", Compression::Identity);
    assert_eq!(
        send_raw(addr, "/foo.Bar/Baz", &[], body.clone()).await.0,
        12
    );
    let (code, msg) = send_raw(
        addr,
        "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
        &[],
        body,
    )
    .await;
    assert_eq!(code, 12);
    assert!(msg.contains("traces only"), "{msg}");
    // Corrupt protobuf: INTERNAL.
    let corrupt = support::frame(&[0x0a, 0xff, 0x01, 0x02], Compression::Identity);
    assert_eq!(send_raw(addr, EXPORT_PATH, &[], corrupt).await.0, 13);
    // Compressed flag with bytes that are not gzip: INTERNAL.
    let mut bad_gzip = support::frame(b"not gzip at all", Compression::Identity).to_vec();
    bad_gzip[0] = 1;
    assert_eq!(
        send_raw(
            addr,
            EXPORT_PATH,
            &[("grpc-encoding", "gzip")],
            bad_gzip.into()
        )
        .await
        .0,
        13
    );
    // Unknown encoding: UNIMPLEMENTED.
    assert_eq!(
        send_raw(
            addr,
            EXPORT_PATH,
            &[("grpc-encoding", "lz4")],
            support::frame(b"", Compression::Identity)
        )
        .await
        .0,
        12
    );
    // Over max_recv_msg_size_mib (4 MiB): RESOURCE_EXHAUSTED.
    let big = make_request(4, 1, 1, 60_000);
    assert_eq!(export(addr, &big, Compression::Identity).await.0, 8);
    // A gzip bomb over the limit after decompression: RESOURCE_EXHAUSTED.
    let bomb = support::frame(&vec![0u8; 5 << 20], Compression::Gzip);
    assert_eq!(
        send_raw(addr, EXPORT_PATH, &[("grpc-encoding", "gzip")], bomb)
            .await
            .0,
        8
    );
    // An abrupt disconnect mid-request.
    {
        use tokio::io::AsyncWriteExt;
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        tcp.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00")
            .await
            .unwrap();
    }
    // Still serving.
    assert_eq!(export(addr, &good, Compression::Identity).await.0, 0);
    sink.wait_spans(5).await;
    assert_eq!(span_set(&sink.requests()), span_set(&[good]));
    assert_eq!(
        tg.metric("otelcol_receiver_failed_requests_total"),
        Some(7.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_limiter_refuses_with_unavailable_above_the_soft_limit() {
    let sink = Sink::start().await;
    // 2 MiB limit: any process is above it, so every request is refused.
    let cfg = config(sink.addr, "memory_limiter, batch", "")
        .replace("limit_mib: 8000", "limit_mib: 2\n    spike_limit_mib: 1");
    let tg = Tailgate::start(&cfg, &["--cores", "1"]);
    let (code, msg) = export(tg.grpc(), &make_request(5, 1, 1, 10), Compression::Identity).await;
    assert_eq!(code, 14, "{msg}");
    assert!(msg.contains("memory"), "{msg}");
    // Refused when the request started, before its body was read: its spans are never counted,
    // the request is (issue 17: the limiter is asked before decoding).
    let text = support::http_get(tg.addr("service::telemetry::metrics"), "/metrics").1;
    let refused_at_start = text
        .lines()
        .find(|l| {
            l.starts_with("otelcol_receiver_refused_requests_total{")
                && l.contains("transport=\"grpc\"")
                && l.contains("reason=\"memory_limiter\"")
        })
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok());
    assert_eq!(refused_at_start, Some(1.0), "{text}");
    assert_eq!(tg.metric("otelcol_receiver_refused_spans_total"), Some(0.0));
    assert_eq!(
        tg.metric("otelcol_receiver_accepted_spans_total"),
        Some(0.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_flushes_pending_batches_and_exits_zero() {
    let sink = Sink::start().await;
    let cfg = config(sink.addr, "batch", "").replace("timeout: 50ms", "timeout: 1h");
    let tg = Tailgate::start(&cfg, &["--cores", "2"]);
    let req = make_request(6, 1, 2, 10);
    assert_eq!(export(tg.grpc(), &req, Compression::Identity).await.0, 0);
    let status = tokio::task::spawn_blocking(move || tg.terminate())
        .await
        .unwrap();
    assert!(status.success(), "{status}");
    assert_eq!(span_set(&sink.requests()), span_set(&[req]));
}
