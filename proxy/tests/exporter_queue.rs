//! The sending queue's limits against a backend that accepts connections and streams but never
//! answers (a gateway that is ready but stalled): `queue_size` counted in the unit of the
//! collector's `sizer` (requests, items or bytes; what is being sent counts until it is done, as
//! in exporterhelper v0.123.0), and tailgate's byte cap (`sending_queue.tailgate.max_bytes_per_core`)
//! whatever the sizer. Past either, requests are refused (gRPC UNAVAILABLE, "sending queue is
//! full") and counted in `otelcol_exporter_enqueue_failed_spans_total` and
//! `tailgate_exporter_send_failed_spans_total{reason}`; once the backend answers again, everything
//! accepted is delivered.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use prost::Message;
use support::{export, make_request, one_exporter, Sink, Tailgate};
use tailgate_proto::compression::Compression;

const SPANS: u64 = 100;

/// One core, an otlp exporter to `sink` with `queue` as its `sending_queue` and attempts that
/// outlive the test (the stalled sink never answers them).
fn start(sink: &Sink, queue: &str) -> Tailgate {
    let body = format!(
        "    endpoint: {}\n    tls: {{insecure: true}}\n    compression: none\n    timeout: 120s\n    sending_queue: {queue}",
        sink.addr
    );
    Tailgate::start(&one_exporter("otlp", &body), &["--cores", "1"])
}

/// Sends the same request `n` times; returns how many were accepted before the first refusal
/// and checks every later one is refused as a full queue.
async fn fill(tg: &Tailgate, n: usize) -> u64 {
    let req = make_request(7, 1, 1, SPANS as usize);
    let mut accepted = 0;
    let mut refused = 0;
    for _ in 0..n {
        let (code, msg) = export(tg.grpc(), &req, Compression::Identity).await;
        match code {
            0 => {
                assert_eq!(refused, 0, "accepted after a refusal: the queue is stalled");
                accepted += 1;
            }
            14 => {
                assert!(msg.contains("sending queue is full"), "{msg}");
                refused += 1;
            }
            other => panic!("unexpected status {other}: {msg}"),
        }
    }
    assert!(refused > 0, "the queue never refused ({n} requests)");
    accepted
}

fn series(metric: &str, extra: &str) -> String {
    format!("{metric}{{exporter=\"otlp\"{extra}")
}

/// What the refusals were counted as, and that the backend gets every accepted span once freed.
async fn check_counted_then_delivered(
    tg: &Tailgate,
    sink: &Sink,
    sent: u64,
    accepted: u64,
    reason: &str,
) {
    let refused_spans = ((sent - accepted) * SPANS) as f64;
    tg.wait_metric(
        &series("otelcol_exporter_enqueue_failed_spans_total", "}"),
        refused_spans,
    )
    .await;
    tg.wait_metric(
        &series(
            "tailgate_exporter_send_failed_spans_total",
            &format!(",reason=\"{reason}\"}}"),
        ),
        refused_spans,
    )
    .await;
    sink.release();
    sink.wait_total((accepted * SPANS) as usize).await;
    tg.wait_metric(
        &series("otelcol_exporter_sent_spans_total", "}"),
        (accepted * SPANS) as f64,
    )
    .await;
    tg.wait_metric(&series("tailgate_exporter_queue_bytes", ","), 0.0)
        .await;
    tg.wait_metric(&series("otelcol_exporter_queue_size", ","), 0.0)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_backend_fills_the_byte_cap_and_further_data_is_refused_and_counted() {
    let len = make_request(7, 1, 1, SPANS as usize).encoded_len() as u64;
    let cap = 10 * len + len / 2;
    let sink = Sink::start().await;
    sink.stall();
    // Requests sizer with room for 1000: only the byte cap can bind.
    let tg = start(
        &sink,
        &format!("{{queue_size: 1000, num_consumers: 2, tailgate: {{max_bytes_per_core: {cap}}}}}"),
    );
    let sent = 30;
    let accepted = fill(&tg, sent).await;
    assert_eq!(accepted, 10, "{len}-byte requests under a {cap}-byte cap");
    // Two are on the wire to the stalled backend and still count.
    let bytes = tg
        .metric(&series("tailgate_exporter_queue_bytes", ","))
        .unwrap();
    assert_eq!(bytes, (10 * len) as f64);
    assert!(bytes <= cap as f64);
    tg.wait_metric(&series("otelcol_exporter_queue_size", ","), 10.0)
        .await;
    check_counted_then_delivered(&tg, &sink, sent as u64, accepted, "queue_byte_limit").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_items_and_bytes_sizers_count_as_the_collector_does() {
    let len = make_request(7, 1, 1, SPANS as usize).encoded_len() as u64;
    // Each queue has room for exactly 3 requests; what is on the wire (2 consumers) counts too.
    let cases = [
        ("requests", 3, 3.0),
        ("items", 3 * SPANS + SPANS / 2, (3 * SPANS) as f64),
        ("bytes", 3 * len + len / 2, (3 * len) as f64),
    ];
    for (sizer, queue_size, size_when_full) in cases {
        let sink = Sink::start().await;
        sink.stall();
        let tg = start(
            &sink,
            &format!("{{sizer: {sizer}, queue_size: {queue_size}, num_consumers: 2}}"),
        );
        let sent = 6;
        let accepted = fill(&tg, sent).await;
        assert_eq!(accepted, 3, "sizer {sizer}, queue_size {queue_size}");
        tg.wait_metric(&series("otelcol_exporter_queue_size", ","), size_when_full)
            .await;
        tg.wait_metric(
            &series("otelcol_exporter_queue_capacity", ","),
            queue_size as f64,
        )
        .await;
        check_counted_then_delivered(&tg, &sink, sent as u64, accepted, "queue_full").await;
    }
}
