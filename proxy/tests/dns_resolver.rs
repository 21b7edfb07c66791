//! The dns resolver against a DNS server started by the test (a small UDP responder built on
//! hickory-proto), with gRPC sinks on 127.0.0.2..4 behind one name.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod lb_workload;
mod support;

use std::net::SocketAddr;

use lb_workload::{accepted, ip, metric, sinks_on_one_port, Traffic};
use support::Tailgate;
use tailgate_perf::dns::DnsServer;
use tailgate_perf::sink::Sink;

fn config(dns: SocketAddr, port: u16) -> String {
    format!(
        "
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
processors:
  batch:
    timeout: 20ms
exporters:
  loadbalancing:
    protocol:
      otlp:
        tls: {{insecure: true}}
        compression: none
        retry_on_failure: {{initial_interval: 50ms, max_interval: 100ms}}
    resolver:
      dns:
        hostname: gateways.test
        port: {port}
        interval: 100ms
        timeout: 300ms
    tailgate:
      dns_server: {dns}
service:
  telemetry:
    metrics:
      address: 127.0.0.1:0
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [loadbalancing]
"
    )
}

const BACKENDS: &str = "otelcol_loadbalancer_num_backends{resolver=\"dns\"}";
const UPDATES: &str = "otelcol_loadbalancer_num_backend_updates{resolver=\"dns\"}";
const FAILED: &str = "otelcol_loadbalancer_num_resolutions{resolver=\"dns\",success=\"false\"}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_table_follows_dns_records_and_an_outage_keeps_the_last_list() {
    let (sinks, port) = sinks_on_one_port(3).await;
    let dns = DnsServer::start("gateways.test", &[ip(2)])
        .await
        .expect("dns server starts");
    let tg = Tailgate::start(&config(dns.addr, port), &["--cores", "2"]);
    let mut traffic = Traffic::new(11, tg.grpc());
    traffic
        .until("one backend", || metric(&tg, BACKENDS) == 1.0)
        .await;
    traffic.settle(&sinks).await;
    assert_eq!(accepted(&sinks)[1..], [0, 0], "only 127.0.0.2 is known");

    // Two records added while traffic runs: every backend gets a share.
    dns.set(&[ip(2), ip(3), ip(4)]);
    traffic
        .until("three backends receiving", || {
            metric(&tg, BACKENDS) == 3.0 && accepted(&sinks).iter().all(|&n| n > 0)
        })
        .await;

    // One removed: once the table has it, nothing more reaches it.
    dns.set(&[ip(2), ip(4)]);
    traffic
        .until("two backends", || metric(&tg, BACKENDS) == 2.0)
        .await;
    traffic.settle(&sinks).await;
    let before = accepted(&sinks);
    for _ in 0..30 {
        traffic.send_one().await;
    }
    traffic.settle(&sinks).await;
    let after = accepted(&sinks);
    assert_eq!(after[1], before[1], "removed backend got traffic");
    assert!(
        after[0] > before[0] && after[2] > before[2],
        "{before:?} → {after:?}"
    );

    // Outage: lookups time out; the last list stays and traffic keeps flowing to it.
    let failed = metric(&tg, FAILED);
    dns.set_down(true);
    traffic
        .until("failed resolutions", || metric(&tg, FAILED) >= failed + 2.0)
        .await;
    traffic.settle(&sinks).await;
    let during = accepted(&sinks);
    assert_eq!(metric(&tg, BACKENDS), 2.0);
    assert_eq!(during[1], before[1]);
    assert!(
        during[0] > after[0] && during[2] > after[2],
        "{after:?} → {during:?}"
    );

    // Back up but with no records: also keeps the last list.
    dns.set(&[]);
    dns.set_down(false);
    let failed = metric(&tg, FAILED);
    traffic
        .until("empty answers", || metric(&tg, FAILED) >= failed + 2.0)
        .await;
    assert_eq!(metric(&tg, BACKENDS), 2.0);

    // And records again: the table follows.
    dns.set(&[ip(3)]);
    traffic
        .until("back to one backend", || metric(&tg, BACKENDS) == 1.0)
        .await;
    traffic.settle(&sinks).await;
    let last = accepted(&sinks);
    for _ in 0..10 {
        traffic.send_one().await;
    }
    traffic.settle(&sinks).await;
    let end = accepted(&sinks);
    assert!(
        end[1] > last[1] && end[0] == last[0] && end[2] == last[2],
        "{last:?} → {end:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_agent_config_runs_against_a_local_dns_server() {
    let (sinks, port) = sinks_on_one_port(2).await;
    let dns = DnsServer::start(
        "gateway-collector-headless.observability.svc.cluster.local",
        &[ip(2), ip(3)],
    )
    .await
    .expect("dns server starts");
    let reference = include_str!("fixtures/agent-config.yaml");
    // The file as written; flags only move listeners to free ports and point DNS at the test's server.
    let sets = [
        "--set=receivers::otlp::protocols::grpc::endpoint=127.0.0.1:0".to_owned(),
        "--set=receivers::otlp::protocols::http::endpoint=127.0.0.1:0".to_owned(),
        "--set=service::telemetry::metrics::address=127.0.0.1:0".to_owned(),
        format!(
            "--set=exporters::loadbalancing::tailgate::dns_server={}",
            dns.addr
        ),
        format!("--set=exporters::loadbalancing::resolver::dns::port={port}"),
    ];
    let mut args: Vec<&str> = sets.iter().map(String::as_str).collect();
    args.extend(["--cores", "2"]);
    let tg = Tailgate::start(reference, &args);
    let mut traffic = Traffic::new(3, tg.grpc());
    for _ in 0..50 {
        traffic.send_one().await;
    }
    // The reference batch timeout is 5 s.
    traffic.settle(&sinks).await;
    assert_eq!(metric(&tg, BACKENDS), 2.0);
    let snaps: Vec<_> = sinks.iter().map(Sink::snapshot).collect();
    let a = snaps[0].trace_ids();
    let b = snaps[1].trace_ids();
    assert!(!a.is_empty() && !b.is_empty(), "both gateways get a share");
    assert!(a.is_disjoint(&b), "a trace reached both gateways");
    let status = tg.terminate();
    assert!(status.success(), "{status}");
}

/// A trace-ID-only workload: `n` single-span traces with random IDs, in requests of 1000.
fn single_span_requests(
    seed: u64,
    n: usize,
) -> (
    Vec<[u8; 16]>,
    Vec<opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest>,
) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let ids: Vec<[u8; 16]> = (0..n).map(|_| rng.gen()).collect();
    let spans: Vec<lb_workload::SpanId> = ids
        .iter()
        .map(|&trace| lb_workload::SpanId { trace, index: 0 })
        .collect();
    let requests = spans
        .chunks(1000)
        .map(|c| lb_workload::request(&mut rng, c))
        .collect();
    (ids, requests)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_with_different_histories_route_100k_trace_ids_identically() {
    let (sinks, port) = sinks_on_one_port(3).await;
    let dns = DnsServer::start("gateways.test", &[ip(2)])
        .await
        .expect("dns server starts");
    // Agent A starts first and sees the set grow one member at a time.
    let a = Tailgate::start(&config(dns.addr, port), &["--cores", "2"]);
    lb_workload::wait_metric(&a, BACKENDS, 1.0).await;
    dns.set(&[ip(2), ip(3)]);
    lb_workload::wait_metric(&a, BACKENDS, 2.0).await;
    dns.set(&[ip(4), ip(2), ip(3)]);
    lb_workload::wait_metric(&a, BACKENDS, 3.0).await;
    // Agent B starts later, on one core, and only ever sees the full set (rotated answers).
    let b = Tailgate::start(&config(dns.addr, port), &["--cores", "1"]);
    lb_workload::wait_metric(&b, BACKENDS, 3.0).await;
    assert!(metric(&a, UPDATES) >= 3.0 && metric(&b, UPDATES) == 1.0);

    let (ids, requests) = single_span_requests(99, 100_000);
    for r in &requests {
        for agent in [&a, &b] {
            let (code, msg) = support::export(
                agent.grpc(),
                r,
                tailgate_proto::compression::Compression::Identity,
            )
            .await;
            assert_eq!(code, 0, "{msg}");
        }
    }
    let total = 2 * ids.len() as u64;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while accepted(&sinks).iter().sum::<u64>() < total {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?} of {total}",
            accepted(&sinks)
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await; // polling
    }
    // Each trace ID arrived twice (once per agent), both times at the same sink.
    let mut owner: std::collections::HashMap<[u8; 16], (usize, u32)> =
        std::collections::HashMap::new();
    for (i, sink) in sinks.iter().enumerate() {
        for key in sink.snapshot().keys {
            let e = owner.entry(key.trace_id).or_insert((i, 0));
            assert_eq!(e.0, i, "trace {:02x?} reached two sinks", key.trace_id);
            e.1 += 1;
        }
    }
    assert_eq!(owner.len(), ids.len());
    assert!(owner.values().all(|&(_, n)| n == 2));
}

/// The loadbalancing exporter's per-endpoint series in `/metrics`: (distinct endpoints other
/// than the `_removed` aggregate, sum of `otelcol_exporter_sent_spans_total` over all of them).
fn endpoint_series(tg: &Tailgate) -> (usize, f64) {
    let text = support::http_get(tg.addr("service::telemetry::metrics"), "/metrics").1;
    let mut endpoints = std::collections::BTreeSet::new();
    let mut sent = 0.0;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(start) = line.find("endpoint=\"") else {
            continue;
        };
        let rest = &line[start + 10..];
        let endpoint = &rest[..rest.find('"').unwrap()];
        if endpoint != "_removed" {
            endpoints.insert(endpoint.to_owned());
        }
        if line.starts_with("otelcol_exporter_sent_spans_total{") {
            sent += line.rsplit(' ').next().unwrap().parse::<f64>().unwrap();
        }
    }
    (endpoints.len(), sent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_backends_series_are_folded_and_totals_still_add_up() {
    let (sinks, port) = sinks_on_one_port(8).await;
    let dns = DnsServer::start("gateways.test", &[ip(2), ip(3)])
        .await
        .expect("dns server starts");
    let tg = Tailgate::start(&config(dns.addr, port), &["--cores", "2"]);
    let mut traffic = Traffic::new(12, tg.grpc());
    // Twelve changes, each swapping both backends for two others (sinks 0..8 in turn).
    for change in 0..12usize {
        let (a, b) = ((2 * change) % 8, (2 * change + 1) % 8);
        dns.set(&[ip(2 + a as u8), ip(2 + b as u8)]);
        let base = accepted(&sinks);
        traffic
            .until("both new backends receiving", || {
                let now = accepted(&sinks);
                now[a] > base[a] && now[b] > base[b]
            })
            .await;
    }
    traffic.settle(&sinks).await;
    // One more change after the last queues drained: everything older is folded.
    dns.set(&[ip(2), ip(3)]);
    let base = accepted(&sinks);
    traffic
        .until("back on the first two", || {
            let now = accepted(&sinks);
            now[0] > base[0] && now[1] > base[1]
        })
        .await;
    traffic.settle(&sinks).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (endpoints, sent) = endpoint_series(&tg);
        // The current two: the two just removed are folded by a scrape once drained.
        if endpoints <= 2 && sent == traffic.sent as f64 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{endpoints} endpoints in /metrics, sent {sent}, want {}",
            traffic.sent
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await; // polling
    }
    assert_eq!(accepted(&sinks).iter().sum::<u64>(), traffic.sent);
}

/// A backend removed from the table while data for it waits (queued, or in a retry backoff after
/// its address refused the connection): that data is routed through the current table at once
/// (consistent hashing moved its traces to the remaining backend, where their new spans go too),
/// counted in `tailgate_loadbalancer_rerouted_spans_total`, and arrives exactly once; nothing is
/// retried against the removed address until `max_elapsed_time` and nothing is dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_backends_queued_spans_are_routed_through_the_current_table() {
    let (sinks, port) = sinks_on_one_port(1).await;
    // 127.0.0.3 on that port has no listener: connections are refused.
    let dead = format!("{}:{port}", ip(3));
    let dns = DnsServer::start("gateways.test", &[ip(2), ip(3)])
        .await
        .expect("dns server starts");
    let config = config(dns.addr, port).replace(
        "retry_on_failure: {initial_interval: 50ms, max_interval: 100ms}",
        "retry_on_failure: {initial_interval: 10s, max_interval: 10s}\n        sending_queue: {num_consumers: 1}",
    );
    let tg = Tailgate::start(&config, &["--cores", "1"]);
    let mut traffic = Traffic::new(13, tg.grpc());
    traffic
        .until("two backends", || metric(&tg, BACKENDS) == 2.0)
        .await;
    // One batch in a 10 s backoff, the rest queued behind it.
    let queued =
        format!("otelcol_exporter_queue_size{{exporter=\"loadbalancing\",endpoint=\"{dead}\"");
    traffic
        .until("batches waiting for the dead backend", || {
            metric(&tg, &queued) >= 3.0
        })
        .await;
    let live_before = accepted(&sinks)[0];
    assert!(traffic.sent > live_before, "some spans wait for {dead}");
    dns.set(&[ip(2)]);
    // Well within the first 10 s backoff, and far within max_elapsed_time (300 s).
    let started = std::time::Instant::now();
    traffic.settle(&sinks).await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(8),
        "took {:?}: the removed backend's data waited for its retry",
        started.elapsed()
    );
    let rerouted = metric(
        &tg,
        "tailgate_loadbalancer_rerouted_spans_total{exporter=\"loadbalancing\"}",
    );
    assert!(rerouted > 0.0, "nothing counted as rerouted");
    assert!(rerouted <= (traffic.sent - live_before) as f64);
    let dropped = metric(
        &tg,
        "otelcol_loadbalancer_dropped_spans_total{exporter=\"loadbalancing\",reason=\"backend_removed\"}",
    );
    assert_eq!(dropped, 0.0);
    let failed = metric(
        &tg,
        &format!("otelcol_exporter_send_failed_spans_total{{exporter=\"loadbalancing\",endpoint=\"{dead}\"}}"),
    );
    assert_eq!(failed, 0.0, "nothing given up at the removed backend");
}
