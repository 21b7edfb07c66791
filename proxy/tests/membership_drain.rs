//! A gateway's drain on SIGTERM under membership (issue 18, docs/membership-design.md §9, step 7):
//! three gateways list each other (static resolver; the leaving one stays listed, as it does for
//! agents and peers until the endpoint removal reaches them). Gateway X holds the first spans of
//! traces when it gets SIGTERM; the traces' later spans go to the other two gateways only (as
//! agents that dropped X send them). X must fail readiness at once and keep liveness, keep
//! receiving the spans of the traces it holds (the others forward them to it through its claims),
//! decide each of them whole, hand its decisions to the traces' new owners, and exit 0; a late
//! span that reaches a new owner afterwards is answered from the handed-over decision.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use support::{export, http_get, reserve, span_set, Sink, Tailgate};
use tailgate_proto::compression::Compression;

fn gateway(me: SocketAddr, members: &[SocketAddr], sink: SocketAddr) -> String {
    let list = members
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "receivers:
  otlp:
    protocols:
      grpc:
        endpoint: {me}
processors:
  tail_sampling:
    decision_wait: 1s
    policies: [{{name: errors, type: status_code, status_code: {{status_codes: [ERROR]}}}}]
    tailgate:
      membership:
        resolver: {{static: {{hostnames: [{list}]}}}}
        self: {me}
        protocol: {{otlp: {{tls: {{insecure: true}}, retry_on_failure: {{initial_interval: 50ms}}}}}}
        grace: 4s
exporters:
  otlp:
    endpoint: {sink}
    tls: {{insecure: true}}
extensions:
  health_check: {{endpoint: 127.0.0.1:0}}
service:
  extensions: [health_check]
  telemetry: {{metrics: {{address: 127.0.0.1:0}}}}
  pipelines:
    traces: {{receivers: [otlp], processors: [tail_sampling], exporters: [otlp]}}
"
    )
}

/// Polls `check` until it holds (20 s deadline), describing `what` on failure.
async fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(Instant::now() < deadline, "{what}: not within 20 s");
        tokio::time::sleep(Duration::from_millis(20)).await; // polling, not synchronisation
    }
}

fn metric_sum(gateways: &[&Tailgate], prefix: &str) -> f64 {
    gateways.iter().filter_map(|g| g.metric(prefix)).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_gateway_decides_what_it_holds_whole_and_hands_its_decisions_over() {
    let reserved = [reserve(), reserve(), reserve()];
    let members: Vec<SocketAddr> = reserved.iter().map(|r| r.1).collect();
    let sinks = [
        Sink::start().await,
        Sink::start().await,
        Sink::start().await,
    ];
    let start = |i: usize| {
        Tailgate::start(
            &gateway(members[i], &members, sinks[i].addr),
            &["--cores", "2"],
        )
    };
    let (a, b, x) = (start(0), start(1), start(2));
    drop(reserved);

    // The first spans of 90 traces reach X: it keeps the traces it owns and forwards the rest.
    let sent = support::waves(7, 90);
    let (code, msg) = export(x.grpc(), &sent[0], Compression::Identity).await;
    assert_eq!(code, 0, "{msg}");
    let held_by_x = "tailgate_membership_forwarded_spans_total{processor=\"tail_sampling\",reason=\"not_owner\"}";
    let forwarded = x.metric(held_by_x).unwrap_or(0.0);
    assert!(
        forwarded > 0.0 && forwarded < 90.0,
        "X forwards the traces it does not own ({forwarded} of 90)"
    );

    let pid = x.child.id().to_string();
    let health = x.addr("extensions::health_check");
    assert_eq!(http_get(health, "/ready").0, 200);
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    wait_until("readiness fails after SIGTERM", || {
        http_get(health, "/ready").0 == 503
    })
    .await;
    assert_eq!(
        http_get(health, "/").0,
        200,
        "liveness holds while draining"
    );
    // Announced: X claimed what it holds and told the others it drains.
    let phase = "tailgate_membership_drain_phase{processor=\"tail_sampling\"}";
    wait_until("X announces its drain", || {
        x.metric(phase).is_some_and(|p| p >= 2.0)
    })
    .await;

    // The later spans go to A and B only, as agents that no longer route to X send them.
    for (wave, to) in [(1, &a), (2, &b)] {
        let (code, msg) = export(to.grpc(), &sent[wave], Compression::Identity).await;
        assert_eq!(code, 0, "wave {wave}: {msg}");
    }
    let total = 90 * 3;
    let exported = || sinks.iter().map(Sink::total).sum::<usize>();
    wait_until("every span exported", || exported() >= total).await;
    assert_eq!(
        http_get(health, "/").0,
        200,
        "liveness holds while draining"
    );

    // X exits 0 once it has handed its decisions over.
    let x_log = {
        let log = x.dir.join("stderr.log");
        let status = x.wait_exit();
        let log = std::fs::read_to_string(log).unwrap();
        assert!(status.success(), "X exits 0: {status}\n{log}");
        log
    };
    for phase in ["announce", "deciding", "handing_over", "closing"] {
        let line = x_log
            .lines()
            .any(|l| l.contains("membership drain") && l.contains(phase));
        assert!(line, "X logs its drain phase {phase}:\n{x_log}");
    }

    // Whole: each trace leaves in one export at one gateway, nothing twice or lost.
    let got: Vec<Vec<ExportTraceServiceRequest>> = sinks.iter().map(Sink::requests).collect();
    let all: Vec<ExportTraceServiceRequest> = got.iter().flatten().cloned().collect();
    assert_eq!(exported(), total, "no span exported twice");
    assert_eq!(span_set(&all), span_set(&sent), "every span exported");
    let exports_of = support::exports_per_trace(&all);
    let split = exports_of.values().filter(|e| e.len() > 1).count();
    assert_eq!(split, 0, "traces decided in pieces");
    let at_x = support::exports_per_trace(&got[2]);
    assert!(!at_x.is_empty(), "X decided the traces it held");
    let claimed =
        "tailgate_membership_forwarded_spans_total{processor=\"tail_sampling\",reason=\"claim\"}";
    assert!(
        metric_sum(&[&a, &b], claimed) > 0.0,
        "the others forwarded X's traces' spans to it through its claims"
    );
    let received = "tailgate_membership_decisions_handed_over_total{processor=\"tail_sampling\",direction=\"received\"}";
    // Acknowledged before X exited; applied by the owning cores just after.
    let decided_at_x = at_x.len() as f64;
    wait_until("A and B imported X's decisions", || {
        metric_sum(&[&a, &b], received) >= decided_at_x
    })
    .await;

    // A late span of a trace X kept, sent to A after X left: answered from the handed-over
    // decision (kept → exported), by A or by the owner A forwards it to. Alone (no ERROR span)
    // it would be buffered and dropped.
    let late_trace = at_x.keys().next().unwrap().clone();
    let mut late = support::make_request(99, 1, 1, 1);
    late.resource_spans[0].scope_spans[0].spans[0].trace_id = late_trace.clone();
    let before: BTreeMap<usize, usize> = (0..2).map(|i| (i, sinks[i].total())).collect();
    let (code, msg) = export(a.grpc(), &late, Compression::Identity).await;
    assert_eq!(code, 0, "{msg}");
    wait_until("the late span is exported at A or B", || {
        (0..2).any(|i| sinks[i].total() > before[&i])
    })
    .await;
    // A and B drain in turn (each announces to the other; neither waits on the gone X).
    for g in [a, b] {
        assert!(g.terminate().success());
    }
}
