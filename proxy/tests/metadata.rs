//! Client metadata survives batching as in the collector: the receiver's `include_metadata` keeps
//! request headers, and `batch`'s `metadata_keys` keeps payloads with different values apart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use prost::Message;
use support::{frame, make_request, send_raw, Sink, Tailgate, EXPORT_PATH};
use tailgate_proto::compression::Compression;

fn config(sink: std::net::SocketAddr, include_metadata: bool) -> String {
    format!(
        "
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
        include_metadata: {include_metadata}
processors:
  batch:
    timeout: 2s
    send_batch_size: 10000
    metadata_keys: [X-Tenant]
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
      processors: [batch]
      exporters: [otlp/backend]
"
    )
}

/// Sends tenant a, b, a (3 + 4 + 2 spans) and returns the span counts of the requests the
/// backend received, sorted.
async fn batches_seen(include_metadata: bool) -> Vec<usize> {
    let sink = Sink::start().await;
    let tg = Tailgate::start(&config(sink.addr, include_metadata), &["--cores", "1"]);
    for (seed, tenant, spans) in [(1, "a", 3), (2, "b", 4), (3, "a", 2)] {
        let body = frame(
            &make_request(seed, 1, 1, spans).encode_to_vec(),
            Compression::Identity,
        );
        let (code, message) = send_raw(tg.grpc(), EXPORT_PATH, &[("x-tenant", tenant)], body).await;
        assert_eq!(code, 0, "{message}");
    }
    sink.wait_spans(9).await;
    assert!(tg.terminate().success());
    let mut sizes: Vec<usize> = sink
        .requests()
        .iter()
        .map(|r| {
            r.resource_spans
                .iter()
                .flat_map(|rs| rs.scope_spans.iter())
                .map(|ss| ss.spans.len())
                .sum()
        })
        .collect();
    sizes.sort_unstable();
    sizes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_are_batched_apart_with_include_metadata() {
    assert_eq!(batches_seen(true).await, vec![4, 5]);
}

/// Without `include_metadata` the receiver keeps no headers, so every request has the same (empty)
/// value of `x-tenant` and one batch carries all: the collector behaves the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_include_metadata_one_batch_carries_every_tenant() {
    assert_eq!(batches_seen(false).await, vec![9]);
}
