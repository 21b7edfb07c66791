//! A backend asks for a retry delay: the `otlp` exporter through `google.rpc.RetryInfo` in
//! `grpc-status-details-bin`, the `otlphttp` exporter through `Retry-After`. Absurd delays (2^62 s,
//! u64::MAX s) must neither panic a core (an `Instant` overflow, which `panic = "abort"` turns into
//! the loss of the process) nor hold a consumer for ever, and a delay that ends after
//! `max_elapsed_time` (a day against the default 5 min) gives the batch up at once, counted as
//! failed with reason `retry_budget`, as exporterhelper's retry sender does; the exporter keeps
//! delivering the next batch.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use base64::Engine as _;
use prost::Message;
use support::http_sink::{Answer, HttpSink};
use support::{export, make_request, one_exporter, Sink, Tailgate};
use tailgate_proto::compression::Compression;

const CORES: [&str; 2] = ["--cores", "1"];
const DAY: u64 = 86_400;

/// The first batch is answered with the scripted delay and must be given up without a retry; the
/// second is delivered (`delivered` waits until the sink holds its 4 spans).
async fn gives_up_then_delivers(
    tg: &Tailgate,
    exporter: &str,
    delivered: impl std::future::Future<Output = ()>,
) {
    let failed = format!("otelcol_exporter_send_failed_spans_total{{exporter=\"{exporter}\"");
    let budget = format!(
        "tailgate_exporter_send_failed_spans_total{{exporter=\"{exporter}\",reason=\"retry_budget\""
    );
    let sent = format!("otelcol_exporter_sent_spans_total{{exporter=\"{exporter}\"");
    let first = make_request(1, 1, 1, 3);
    assert_eq!(export(tg.grpc(), &first, Compression::Identity).await.0, 0);
    tg.wait_metric(&failed, 3.0).await;
    tg.wait_metric(&budget, 3.0).await;
    let second = make_request(2, 1, 1, 4);
    assert_eq!(export(tg.grpc(), &second, Compression::Identity).await.0, 0);
    delivered.await;
    tg.wait_metric(&sent, 4.0).await;
    tg.wait_metric(&failed, 3.0).await;
}

// === otlp (gRPC) ===

#[derive(Clone, PartialEq, Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<Any>,
}

#[derive(Clone, PartialEq, Message)]
struct Any {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
struct RetryInfo {
    #[prost(message, optional, tag = "1")]
    retry_delay: Option<ProtoDuration>,
}

#[derive(Clone, PartialEq, Message)]
struct ProtoDuration {
    #[prost(int64, tag = "1")]
    seconds: i64,
    #[prost(int32, tag = "2")]
    nanos: i32,
}

/// `grpc-status-details-bin` for UNAVAILABLE with a RetryInfo of `seconds`.
fn retry_info(seconds: i64) -> String {
    let status = RpcStatus {
        code: 14,
        message: "come back later".into(),
        details: vec![Any {
            type_url: "type.googleapis.com/google.rpc.RetryInfo".into(),
            value: RetryInfo {
                retry_delay: Some(ProtoDuration { seconds, nanos: 0 }),
            }
            .encode_to_vec(),
        }],
    };
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(status.encode_to_vec())
}

async fn otlp_backend_asks_for(seconds: i64) {
    let sink = Sink::start().await;
    sink.script_details(14, &retry_info(seconds));
    let body = format!(
        "    endpoint: {}\n    tls: {{insecure: true}}\n    retry_on_failure: {{initial_interval: 10ms, max_interval: 50ms}}\n",
        sink.addr
    );
    let tg = Tailgate::start(&one_exporter("otlp/r", &body), &CORES);
    gives_up_then_delivers(&tg, "otlp/r", sink.wait_total(4)).await;
    assert_eq!(sink.refused(), 1, "the refused batch was not retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_retry_info_of_2_pow_62_seconds_gives_up_without_panic() {
    otlp_backend_asks_for(1 << 62).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_retry_info_of_a_day_gives_up_at_once() {
    otlp_backend_asks_for(DAY as i64).await;
}

// === otlphttp ===

async fn otlphttp_backend_asks_for(retry_after: &str) {
    let sink = HttpSink::start().await;
    sink.script(&[Answer {
        status: 503,
        retry_after: Some(retry_after.into()),
        rejected: 0,
    }]);
    let body = format!(
        "    endpoint: http://{}\n    retry_on_failure: {{initial_interval: 10ms, max_interval: 50ms}}\n",
        sink.addr
    );
    let tg = Tailgate::start(&one_exporter("otlphttp/r", &body), &CORES);
    gives_up_then_delivers(&tg, "otlphttp/r", sink.wait_total(4)).await;
    assert_eq!(sink.refused(), 1, "the refused batch was not retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlphttp_retry_after_of_u64_max_seconds_gives_up_without_panic() {
    otlphttp_backend_asks_for(&u64::MAX.to_string()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlphttp_retry_after_of_a_day_gives_up_at_once() {
    otlphttp_backend_asks_for(&DAY.to_string()).await;
}
