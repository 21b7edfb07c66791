//! The gateway: `tail_sampling` with the seed's three policies across 2 cores, on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;
mod traffic;

use std::net::SocketAddr;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use support::{export, http_post, span_set, Sink, Tailgate};
use tailgate_proto::compression::Compression;
use tailgate_sampler::policy::probabilistic::Probabilistic;
use traffic::{
    make_trace, request_of, requests, send_all, tally, workload, Arrivals, Arrived, Class, Rng,
};

/// The seed's gateway config with `decision_wait` shortened and loopback addresses.
fn gateway_config(sink: SocketAddr, decision_wait: &str, extra: &str) -> String {
    format!(
        "
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
processors:
  memory_limiter:
    check_interval: 1s
    limit_mib: 6144
    spike_limit_mib: 1024
  tail_sampling:
    decision_wait: {decision_wait}
    num_traces: 50000
    expected_new_traces_per_sec: 1000
    sampled_cache_size: 100000
    non_sampled_cache_size: 100000
{extra}
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
      processors: [memory_limiter, tail_sampling, batch]
      exporters: [otlp/backend]
"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_slow_and_probabilistic_traces_arrive_whole_once() {
    let sink = Sink::start().await;
    let tg = Tailgate::start(&gateway_config(sink.addr, "2s", ""), &["--cores", "2"]);
    let traces = workload(7, 2000);
    let reqs = requests(&traces, 7, 400, 250);
    send_all(&[tg.grpc()], reqs, 8).await;

    let prob = Probabilistic::new("", 10.0);
    let kept = |t: &traffic::Trace| t.class != Class::Plain || prob.samples(&t.id);
    let expected: usize = traces
        .iter()
        .filter(|t| kept(t))
        .map(|t| t.spans.len())
        .sum();
    tokio::time::timeout(
        std::time::Duration::from_secs(30),
        sink.wait_spans(expected),
    )
    .await
    .expect("kept spans arrive");
    // Nothing more is on its way once every trace is decided.
    let decided = |tg: &Tailgate| {
        ["true", "false"]
            .iter()
            .map(|v| {
                tg.metric(&format!(
                    "otelcol_processor_tail_sampling_global_count_traces_sampled_total{{sampled=\"{v}\"}}"
                ))
                .unwrap_or(0.0)
            })
            .sum::<f64>()
    };
    while decided(&tg) < traces.len() as f64 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let arrivals = Arrivals::from_requests(&sink.requests());
    assert_eq!(arrivals.duplicates(), 0, "no span arrives twice");
    for t in &traces {
        let want = if kept(t) {
            Arrived::Complete
        } else {
            Arrived::None
        };
        assert_eq!(arrivals.state(t), want, "{:?} trace {:02x?}", t.class, t.id);
    }
    let counts = tally(&traces, &arrivals);
    let plain = traces.iter().filter(|t| t.class == Class::Plain).count();
    let plain_kept = counts
        .get(&(Class::Plain, Arrived::Complete))
        .copied()
        .unwrap_or(0);
    let fraction = plain_kept as f64 / plain as f64;
    assert!(
        (0.07..=0.13).contains(&fraction),
        "probabilistic kept {fraction}"
    );

    let errors = traces.iter().filter(|t| t.class == Class::Error).count() as f64;
    let m = |s: &str| tg.metric(s).unwrap_or(-1.0);
    assert_eq!(
        m("otelcol_processor_tail_sampling_count_traces_sampled_total{policy=\"errors-policy\",sampled=\"true\"}"),
        errors
    );
    assert_eq!(
        m("otelcol_processor_tail_sampling_new_trace_id_received_total"),
        traces.len() as f64
    );
    let kept_traces = traces.iter().filter(|t| kept(t)).count() as f64;
    assert_eq!(
        m("otelcol_processor_tail_sampling_global_count_traces_sampled_total{sampled=\"true\"}"),
        kept_traces
    );
    assert_eq!(
        m("otelcol_processor_refused_spans_total{processor=\"tail_sampling\"}"),
        0.0
    );
    assert!(tg.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probabilistic_decisions_equal_the_collectors_go_vectors() {
    let text = include_str!("../../sampler/testdata/probabilistic_vectors.json");
    let v: serde_json::Value = serde_json::from_str(text).unwrap();
    let threshold_10: u64 = v["thresholds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["percentage"].as_f64() == Some(10.0))
        .and_then(|t| t["threshold"].as_str())
        .unwrap()
        .parse()
        .unwrap();
    // Default salt only (the seed's policy has none); the Go hash decides against Go's threshold.
    let mut cases: Vec<([u8; 16], bool)> = v["hashes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["salt"].as_str() == Some(""))
        .map(|h| {
            let hex = h["trace_id"].as_str().unwrap();
            let id: Vec<u8> = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect();
            let hash: u64 = h["hash"].as_str().unwrap().parse().unwrap();
            (id.try_into().unwrap(), hash <= threshold_10)
        })
        .collect();
    cases.sort();
    cases.dedup();
    assert!(
        cases.len() >= 10,
        "only {} default-salt vectors",
        cases.len()
    );
    assert!(cases.iter().any(|c| c.1) && cases.iter().any(|c| !c.1));

    let sink = Sink::start().await;
    let tg = Tailgate::start(&gateway_config(sink.addr, "500ms", ""), &["--cores", "2"]);
    let mut rng = Rng::new(1);
    let traces: Vec<_> = cases
        .iter()
        .map(|(id, _)| make_trace(&mut rng, *id, Class::Plain, 3))
        .collect();
    let req = request_of(traces.iter().flat_map(|t| t.spans.iter()));
    send_all(&[tg.grpc()], vec![req], 1).await;
    let expected: usize = cases.iter().filter(|c| c.1).count() * 3;
    tokio::time::timeout(
        std::time::Duration::from_secs(20),
        sink.wait_spans(expected),
    )
    .await
    .expect("sampled vectors arrive");
    // Let the rest be decided too, then compare trace by trace.
    while tg
        .metric(
            "otelcol_processor_tail_sampling_global_count_traces_sampled_total{sampled=\"false\"}",
        )
        .unwrap_or(0.0)
        < (cases.len() - expected / 3) as f64
    {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let arrivals = Arrivals::from_requests(&sink.requests());
    for (t, (_, sampled)) in traces.iter().zip(&cases) {
        let want = if *sampled {
            Arrived::Complete
        } else {
            Arrived::None
        };
        assert_eq!(arrivals.state(t), want, "trace {:02x?}", t.id);
    }
    drop(tg);
}

/// SIGTERM with traces still waiting: decided early and flushed (default), or dropped with
/// `drop_pending_traces_on_shutdown: true`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_decides_pending_traces_early_unless_told_to_drop_them() {
    for drop_pending in [false, true] {
        let sink = Sink::start().await;
        let extra = format!("    drop_pending_traces_on_shutdown: {drop_pending}");
        let tg = Tailgate::start(&gateway_config(sink.addr, "1h", &extra), &["--cores", "2"]);
        let mut rng = Rng::new(3);
        let traces: Vec<_> = (0..50u8)
            .map(|i| make_trace(&mut rng, [i + 1; 16], Class::Error, 4))
            .collect();
        let reqs = requests(&traces, 3, 50, 20);
        send_all(&[tg.grpc()], reqs, 4).await;
        // Every span is buffered before the signal (the gauge is updated on each tick).
        while tg
            .metric("tailgate_tail_sampling_buffered_spans")
            .unwrap_or(0.0)
            < 200.0
        {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(sink.span_count(), 0);
        assert!(tg.terminate().success());
        let arrivals = Arrivals::from_requests(&sink.requests());
        for t in &traces {
            let want = if drop_pending {
                Arrived::None
            } else {
                Arrived::Complete
            };
            assert_eq!(arrivals.state(t), want, "drop_pending={drop_pending}");
        }
    }
}

// === issue 17 case 3: a span pdata cannot unmarshal ===

/// A gateway on both OTLP transports keeping every trace (`always_sample`), with `processors`.
fn keep_all_config(sink: SocketAddr, processors: &str) -> String {
    format!(
        "
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
      http:
        endpoint: 127.0.0.1:0
processors:
  batch:
    timeout: 300ms
    send_batch_size: 10000
  tail_sampling:
    decision_wait: 200ms
    policies:
      - name: all
        type: always_sample
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
      processors: {processors}
      exporters: [otlp/backend]
"
    )
}

fn span(trace: [u8; 16], id: u8, parent: Option<u8>) -> Span {
    Span {
        trace_id: trace.to_vec(),
        span_id: vec![id; 8],
        parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
        name: format!("op-{id}"),
        start_time_unix_nano: 1_700_000_000_000_000_000,
        end_time_unix_nano: 1_700_000_000_001_000_000,
        ..Default::default()
    }
}

/// A good 3-span trace.
fn good_trace(trace: [u8; 16]) -> Vec<Span> {
    vec![
        span(trace, 1, None),
        span(trace, 2, Some(1)),
        span(trace, 3, Some(1)),
    ]
}

fn one_scope(service: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue(service.into())),
                    }),
                }],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// Case 3 as filed: the good trace and, in the same ScopeSpans, a span with an 8-byte trace id.
fn case_3_request() -> ExportTraceServiceRequest {
    let mut spans = good_trace([0x33; 16]);
    let mut bad = span([0x44; 16], 9, None);
    bad.trace_id.truncate(8);
    spans.push(bad);
    one_scope("cart", spans)
}

const CASE_3_SPAN: &str =
    "resource_spans[0].scope_spans[0].spans[3].trace_id: 8 bytes, want 16 or 0";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_span_pdata_refuses_gets_the_whole_request_refused_on_every_transport() {
    let sink = Sink::start().await;
    let config = keep_all_config(sink.addr, "[tail_sampling, batch]");
    let tg = Tailgate::start(&config, &["--cores", "2"]);

    // gRPC: INVALID_ARGUMENT (3), naming the span.
    let (code, message) = export(tg.grpc(), &case_3_request(), Compression::Identity).await;
    assert_eq!(code, 3, "{message}");
    assert!(message.contains(CASE_3_SPAN), "{message}");

    // HTTP, protobuf and JSON: 400, naming the span.
    let http = tg.addr("receivers::otlp::http");
    let bodies = [
        ("application/x-protobuf", case_3_request().encode_to_vec()),
        (
            "application/json",
            serde_json::to_vec(&case_3_request()).unwrap(),
        ),
    ];
    for (content_type, body) in bodies {
        let (status, text) = tokio::task::spawn_blocking(move || {
            http_post(http, "/v1/traces", &[("content-type", content_type)], &body)
        })
        .await
        .unwrap();
        assert_eq!(status, 400, "{content_type}: {text}");
        assert!(text.contains(CASE_3_SPAN), "{content_type}: {text}");
    }
    let refused = |transport: &str| {
        tg.metric(&format!(
            "otelcol_receiver_refused_spans_total{{receiver=\"otlp\",transport=\"{transport}\"}}"
        ))
    };
    assert_eq!(refused("grpc"), Some(4.0));
    assert_eq!(refused("http"), Some(8.0));

    // Only the good trace: taken, and it reaches the backend whole.
    let good = one_scope("cart", good_trace([0x33; 16]));
    let (code, message) = export(tg.grpc(), &good, Compression::Identity).await;
    assert_eq!(code, 0, "{message}");
    tokio::time::timeout(Duration::from_secs(20), sink.wait_spans(3))
        .await
        .expect("the good trace arrives");
    assert_eq!(span_set(&sink.requests()), span_set(&[good]));
    assert_eq!(
        tg.metric("otelcol_receiver_accepted_spans_total{receiver=\"otlp\",transport=\"grpc\"}"),
        Some(3.0)
    );
    assert!(tg.terminate().success());
}

/// Before: the bad request was answered OK, batched with a second client's good one, and the
/// owner core's scan dropped the whole batch. Now the bad request is refused at the receiver and
/// the second client's trace arrives whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_clients_good_spans_batched_with_a_bad_request_are_not_lost() {
    let sink = Sink::start().await;
    // One core, batch before tail_sampling: both clients' requests share one batch.
    let config = keep_all_config(sink.addr, "[batch, tail_sampling]");
    let tg = Tailgate::start(&config, &["--cores", "1"]);
    let second = one_scope("checkout", good_trace([0x55; 16]));
    let first = case_3_request();
    let (bad, good) = tokio::join!(
        export(tg.grpc(), &first, Compression::Identity),
        export(tg.grpc(), &second, Compression::Identity),
    );
    assert_eq!(good.0, 0, "{}", good.1);
    tokio::time::timeout(Duration::from_secs(20), sink.wait_spans(3))
        .await
        .expect("the second client's trace arrives");
    assert_eq!(span_set(&sink.requests()), span_set(&[second]));
    assert_eq!(bad.0, 3, "{}", bad.1);
    // Nothing was dropped downstream.
    let dropped = tg
        .metric("otelcol_processor_dropped_spans_total{processor=\"tail_sampling\"}")
        .unwrap_or(0.0);
    assert_eq!(dropped, 0.0);
    assert!(tg.terminate().success());
}

// === the byte budget and the engine's drops ===

/// One core, `num_traces: 2`, a long decision wait, and `extra` processors before tail_sampling.
fn small_table_config(sink: SocketAddr, memory_limiter: bool, tailgate: &str) -> String {
    let (limiter, processors) = if memory_limiter {
        (
            "  memory_limiter:\n    check_interval: 1s\n    limit_mib: 6000\n    spike_limit_mib: 1000\n",
            "[memory_limiter, tail_sampling]",
        )
    } else {
        ("", "[tail_sampling]")
    };
    format!(
        "
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
processors:
{limiter}  tail_sampling:
    decision_wait: 1h
    num_traces: 2
{tailgate}    policies:
      - name: all
        type: always_sample
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
      processors: {processors}
      exporters: [otlp/backend]
"
    )
}

const BUDGET: &str = "tailgate_tail_sampling_max_buffered_bytes{processor=\"tail_sampling\"}";

/// Without `tailgate.max_buffered_bytes` the budget is half the memory_limiter's soft limit
/// (6000 − 1000 MiB → 2500 MiB); set, it is what it says; with neither there is none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_byte_budget_is_half_the_memory_limiters_soft_limit() {
    let sink = Sink::start().await;
    for (limiter, tailgate, want) in [
        (true, "", 2500u64 << 20),
        (
            true,
            "    tailgate: {max_buffered_bytes: 1000000}\n",
            1_000_000,
        ),
        (false, "", 0),
    ] {
        let tg = Tailgate::start(
            &small_table_config(sink.addr, limiter, tailgate),
            &["--cores", "2"],
        );
        assert_eq!(
            tg.metric(BUDGET),
            Some(want as f64),
            "{limiter} {tailgate:?}"
        );
    }
}

/// Traces pushed out of a full table before their decision are counted by reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engines_drops_are_exported_by_reason() {
    let sink = Sink::start().await;
    let tg = Tailgate::start(&small_table_config(sink.addr, false, ""), &["--cores", "1"]);
    for t in 1..=5u8 {
        let req = one_scope("cart", good_trace([t; 16]));
        let (code, message) = export(tg.grpc(), &req, Compression::Identity).await;
        assert_eq!(code, 0, "{message}");
    }
    // Five traces into a table of two: three evicted undecided, 3 spans each.
    tg.wait_metric(
        "tailgate_tail_sampling_dropped_spans_total{processor=\"tail_sampling\",reason=\"evicted_too_early\"}",
        9.0,
    )
    .await;
    assert_eq!(
        tg.metric("otelcol_processor_tail_sampling_sampling_trace_dropped_too_early_total"),
        Some(3.0)
    );
    assert_eq!(
        tg.metric("tailgate_tail_sampling_dropped_spans_total{processor=\"tail_sampling\",reason=\"not_sampled\"}"),
        Some(0.0)
    );
}
