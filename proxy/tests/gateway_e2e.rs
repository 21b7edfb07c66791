//! Issue 7's end-to-end check on loopback: 20,000 traces through 3 gateways, once routed by trace
//! ID (agent with the `loadbalancing` exporter) and once naively round-robin.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;
mod traffic;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use support::{Sink, Tailgate};
use tailgate_sampler::policy::probabilistic::Probabilistic;
use traffic::{requests, send_all, workload, Arrivals, Arrived, Class, Trace};

const TRACES: usize = 20_000;
/// Traces whose spans are shuffled together (and sent well within `decision_wait`).
const WINDOW: usize = 1_000;
const PER_REQUEST: usize = 500;
const CONNECTIONS: usize = 8;

fn gateway_config(sink: SocketAddr) -> String {
    format!(
        "
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
processors:
  tail_sampling:
    decision_wait: 3s
    num_traces: 50000
    expected_new_traces_per_sec: 1000
    sampled_cache_size: 100000
    non_sampled_cache_size: 100000
    policies:
      - name: errors-policy
        type: status_code
        status_code: {{status_codes: [ERROR]}}
      - name: slow-traces-policy
        type: latency
        latency: {{threshold_ms: 1000}}
      - name: probabilistic-policy
        type: probabilistic
        probabilistic: {{sampling_percentage: 10}}
  batch:
    timeout: 50ms
    send_batch_size: 1000
exporters:
  otlp/backend:
    endpoint: {sink}
    tls: {{insecure: true}}
service:
  telemetry:
    metrics:
      address: 127.0.0.1:0
  pipelines:
    traces:
      receivers: [otlp]
      processors: [tail_sampling, batch]
      exporters: [otlp/backend]
"
    )
}

fn start_gateways(sink: SocketAddr) -> Vec<Tailgate> {
    (0..3)
        .map(|_| Tailgate::start(&gateway_config(sink), &["--cores", "2"]))
        .collect()
}

/// Waits until every gateway has decided every trace it saw, i.e. nothing more is coming.
async fn wait_decided(gateways: &[Tailgate]) {
    let metric = |g: &Tailgate, name: &str| g.metric(name).unwrap_or(0.0);
    loop {
        let done = gateways.iter().all(|g| {
            let new = metric(g, "otelcol_processor_tail_sampling_new_trace_id_received_total");
            let decided: f64 = ["true", "false"]
                .iter()
                .map(|v| {
                    metric(
                        g,
                        &format!("otelcol_processor_tail_sampling_global_count_traces_sampled_total{{sampled=\"{v}\"}}"),
                    )
                })
                .sum();
            new > 0.0 && decided >= new
        });
        if done {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn span_ids(t: &Trace, keep: impl Fn(usize) -> bool) -> BTreeSet<Vec<u8>> {
    t.spans
        .iter()
        .enumerate()
        .filter(|(i, _)| keep(*i))
        .map(|(_, (_, s))| s.span_id.clone())
        .collect()
}

/// Naive scaling: request `i` goes to gateway `i % 3`. Each gateway decides on its fragment of
/// each trace by itself, so what arrives is exactly the union of the fragments it keeps: those
/// holding the error span, the one holding the (slow) root, and every fragment of a trace the
/// probabilistic hash picks (all gateways hash the same trace ID the same way).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_without_the_agent_keeps_fragments_not_traces() {
    let sink = Sink::start().await;
    let gateways = start_gateways(sink.addr);
    let traces = workload(11, TRACES);
    let reqs = requests(&traces, 11, WINDOW, PER_REQUEST);
    let expected = predict_round_robin(&traces, &reqs, gateways.len());
    let targets: Vec<SocketAddr> = gateways.iter().map(Tailgate::grpc).collect();
    let started = std::time::Instant::now();
    send_all(&targets, reqs, CONNECTIONS).await;
    eprintln!("sent in {:?}", started.elapsed());
    wait_decided(&gateways).await;
    let want: usize = expected.values().map(BTreeSet::len).sum();
    tokio::time::timeout(Duration::from_secs(30), sink.wait_spans(want))
        .await
        .expect("kept fragments arrive");
    let arrivals = Arrivals::from_requests(&sink.requests());
    assert_eq!(arrivals.duplicates(), 0);

    let prob = Probabilistic::new("", 10.0);
    let mut pattern: BTreeMap<(Class, bool, Arrived), usize> = BTreeMap::new();
    for t in &traces {
        let got: BTreeSet<Vec<u8>> = arrivals
            .spans
            .get(&t.id)
            .map(|v| v.iter().cloned().collect())
            .unwrap_or_default();
        assert_eq!(got, expected[&t.id], "{:?} trace {:02x?}", t.class, t.id);
        *pattern
            .entry((t.class, prob.samples(&t.id), arrivals.state(t)))
            .or_insert(0) += 1;
    }
    eprintln!("(class, probabilistic pick, arrival) → traces: {pattern:#?}");
    // The pattern, in numbers: probabilistic picks arrive whole whatever their class...
    for ((_, picked, arrived), n) in &pattern {
        if *picked {
            assert_eq!(
                *arrived,
                Arrived::Complete,
                "{n} picked traces arrived {arrived:?}"
            );
        }
    }
    // ...plain traces it does not pick never arrive...
    assert!(!pattern.contains_key(&(Class::Plain, false, Arrived::Partial)));
    assert!(!pattern.contains_key(&(Class::Plain, false, Arrived::Complete)));
    // ...and most error and slow traces it does not pick arrive partial (only single-gateway
    // traces, e.g. one-span ones, arrive whole).
    for class in [Class::Error, Class::Slow] {
        let partial = pattern
            .get(&(class, false, Arrived::Partial))
            .copied()
            .unwrap_or(0);
        let whole = pattern
            .get(&(class, false, Arrived::Complete))
            .copied()
            .unwrap_or(0);
        assert!(
            partial > 3 * whole,
            "{class:?}: {partial} partial, {whole} whole"
        );
        assert!(
            !pattern.contains_key(&(class, false, Arrived::None)),
            "{class:?} lost entirely"
        );
    }
}

/// Which spans of each trace arrive when request `i` goes to gateway `i % gateways`.
fn predict_round_robin(
    traces: &[Trace],
    reqs: &[ExportTraceServiceRequest],
    gateways: usize,
) -> BTreeMap<[u8; 16], BTreeSet<Vec<u8>>> {
    // span ID → gateway (span IDs are random 64-bit values: unique in practice, checked below).
    let mut gateway_of: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
    for (i, r) in reqs.iter().enumerate() {
        for rs in &r.resource_spans {
            for ss in &rs.scope_spans {
                for s in &ss.spans {
                    assert!(gateway_of.insert(s.span_id.clone(), i % gateways).is_none());
                }
            }
        }
    }
    let prob = Probabilistic::new("", 10.0);
    traces
        .iter()
        .map(|t| {
            if prob.samples(&t.id) {
                return (t.id, span_ids(t, |_| true));
            }
            let g = |i: usize| gateway_of[&t.spans[i].1.span_id];
            let mut kept = BTreeSet::new();
            for gw in 0..gateways {
                let fragment: Vec<usize> = (0..t.spans.len()).filter(|i| g(*i) == gw).collect();
                let error = fragment
                    .iter()
                    .any(|i| t.spans[*i].1.status.as_ref().map(|s| s.code) == Some(2));
                // The root carries the trace's whole window; children stay within 200 ms.
                let slow = t.class == Class::Slow && fragment.contains(&0);
                if error || slow {
                    kept.extend(fragment.iter().map(|i| t.spans[*i].1.span_id.clone()));
                }
            }
            (t.id, kept)
        })
        .collect()
}

fn agent_config(gateways: &[SocketAddr]) -> String {
    let hosts: Vec<String> = gateways.iter().map(|g| format!("\"{g}\"")).collect();
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
    send_batch_size: 1000
exporters:
  loadbalancing:
    routing_key: traceID
    protocol:
      otlp:
        tls: {{insecure: true}}
    resolver:
      static:
        hostnames: [{}]
service:
  telemetry:
    metrics:
      address: 127.0.0.1:0
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [loadbalancing]
",
        hosts.join(", ")
    )
}

/// The check: an agent routes by trace ID to 3 gateways; every error and slow trace
/// arrives whole, the probabilistic policy keeps 10 % ± 1.5 % of the rest (exactly the traces the
/// collector's hash picks), nothing arrives partially or twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_routing_by_trace_id_keeps_whole_traces() {
    let sink = Sink::start().await;
    let gateways = start_gateways(sink.addr);
    let targets: Vec<SocketAddr> = gateways.iter().map(Tailgate::grpc).collect();
    let agent = Tailgate::start(&agent_config(&targets), &["--cores", "2"]);
    let traces = workload(13, TRACES);
    let reqs = requests(&traces, 13, WINDOW, PER_REQUEST);
    let started = std::time::Instant::now();
    send_all(&[agent.grpc()], reqs, CONNECTIONS).await;
    eprintln!("sent in {:?}", started.elapsed());

    let prob = Probabilistic::new("", 10.0);
    let kept = |t: &Trace| t.class != Class::Plain || prob.samples(&t.id);
    let want: usize = traces
        .iter()
        .filter(|t| kept(t))
        .map(|t| t.spans.len())
        .sum();
    tokio::time::timeout(Duration::from_secs(40), sink.wait_spans(want))
        .await
        .expect("kept traces arrive");
    wait_decided(&gateways).await;
    let arrivals = Arrivals::from_requests(&sink.requests());
    assert_eq!(arrivals.duplicates(), 0, "no span arrives twice");
    let mut plain = 0usize;
    let mut plain_kept = 0usize;
    for t in &traces {
        let state = arrivals.state(t);
        assert_ne!(
            state,
            Arrived::Partial,
            "{:?} trace {:02x?} partial",
            t.class,
            t.id
        );
        match t.class {
            Class::Error | Class::Slow => assert_eq!(state, Arrived::Complete, "{:?}", t.class),
            Class::Plain => {
                plain += 1;
                if state == Arrived::Complete {
                    plain_kept += 1;
                    assert!(prob.samples(&t.id), "kept a trace the hash does not pick");
                }
            }
        }
    }
    let fraction = plain_kept as f64 / plain as f64;
    eprintln!("plain traces kept: {plain_kept} of {plain} ({fraction:.4})");
    assert!(
        (0.085..=0.115).contains(&fraction),
        "kept fraction {fraction}"
    );
    // Every gateway got a share: the agent spread the traces.
    for g in &gateways {
        let new = g
            .metric("otelcol_processor_tail_sampling_new_trace_id_received_total")
            .unwrap_or(0.0);
        assert!(new > TRACES as f64 / 6.0, "a gateway saw only {new} traces");
    }
}
