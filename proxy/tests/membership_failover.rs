//! A gateway that stops answering while still listed (issue 18, docs/membership-design.md §8,
//! step 8): an agent (the loadbalancing exporter with `tailgate.endpoint_health`) routes error
//! traces to three gateways that list each other (membership with the same `endpoint_health`).
//! One gateway is SIGSTOPped mid-run: a stopped process keeps its TCP connections and its listen
//! backlog, so only the probes notice. Traces begun once the probes have had their time must be
//! decided whole by the other two (no split among them, nothing lost), and after SIGCONT the
//! stopped gateway gets its share again.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use support::{export, reserve, Sink, Tailgate};
use tailgate_proto::compression::Compression;

/// The probes of both tiers: down after 2 failed probes 200 ms apart, up after 2 answers and at
/// least 1 s down.
const HEALTH: &str = "{enabled: true, quarantine_duration: 1s, \
    active_probe: {enabled: true, fall: 2, rise: 2, interval: 200ms, timeout: 300ms, jitter: 0.1}}";

fn gateway(me: SocketAddr, members: &str, sink: SocketAddr) -> String {
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
        resolver: {{static: {{hostnames: [{members}]}}}}
        self: {me}
        protocol: {{otlp: {{tls: {{insecure: true}}, timeout: 2s, retry_on_failure: {{initial_interval: 50ms}}}}}}
        grace: 4s
        endpoint_health: {HEALTH}
exporters:
  otlp:
    endpoint: {sink}
    tls: {{insecure: true}}
service:
  telemetry: {{metrics: {{address: 127.0.0.1:0}}}}
  pipelines:
    traces: {{receivers: [otlp], processors: [tail_sampling], exporters: [otlp]}}
"
    )
}

fn agent(members: &str) -> String {
    format!(
        "receivers:
  otlp:
    protocols:
      grpc: {{endpoint: 127.0.0.1:0}}
exporters:
  loadbalancing:
    protocol: {{otlp: {{tls: {{insecure: true}}, timeout: 2s, retry_on_failure: {{initial_interval: 50ms}}}}}}
    resolver: {{static: {{hostnames: [{members}]}}}}
    tailgate: {{endpoint_health: {HEALTH}}}
service:
  telemetry: {{metrics: {{address: 127.0.0.1:0}}}}
  pipelines:
    traces: {{receivers: [otlp], exporters: [loadbalancing]}}
"
    )
}

fn signal(tg: &Tailgate, sig: &str) {
    let pid = tg.child.id().to_string();
    assert!(Command::new("kill")
        .args([sig, &pid])
        .status()
        .unwrap()
        .success());
}

/// Sends one round of `traces` three-span error traces through the agent, the spans of each
/// trace in three requests 150 ms apart; returns them.
async fn round(agent: &Tailgate, seed: u32, traces: usize) -> Vec<ExportTraceServiceRequest> {
    let waves = support::waves(seed, traces);
    for w in &waves {
        let (code, msg) = export(agent.grpc(), w, Compression::Identity).await;
        assert_eq!(code, 0, "round {seed}: {msg}");
        tokio::time::sleep(Duration::from_millis(150)).await; // pacing the load, not sync
    }
    waves
}

/// Trace IDs of `reqs`.
fn traces_of(reqs: &[ExportTraceServiceRequest]) -> BTreeSet<Vec<u8>> {
    reqs.iter()
        .flat_map(|r| &r.resource_spans)
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans)
        .map(|s| s.trace_id.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_gateway_s_traces_go_to_their_next_choice_and_come_back() {
    let reserved = [reserve(), reserve(), reserve()];
    let members: Vec<SocketAddr> = reserved.iter().map(|r| r.1).collect();
    let list = members
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let sinks = [
        Sink::start().await,
        Sink::start().await,
        Sink::start().await,
    ];
    let gateways: Vec<Tailgate> = (0..3)
        .map(|i| {
            Tailgate::start(
                &gateway(members[i], &list, sinks[i].addr),
                &["--cores", "1"],
            )
        })
        .collect();
    drop(reserved);
    let agent = Tailgate::start(&agent(&list), &["--cores", "1"]);

    // Healthy: each gateway gets its share.
    let before = round(&agent, 1, 30).await;
    let exported = || sinks.iter().map(Sink::total).sum::<usize>();
    let deadline = Instant::now() + Duration::from_secs(20);
    while exported() < 90 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await; // polling
    }
    assert_eq!(exported(), 90, "healthy round delivered");
    assert!(
        sinks.iter().all(|s| s.total() > 0),
        "every gateway has a share"
    );
    drop(before);

    // Stop gateway 2 while it stays listed. The probes take it down within fall × (interval +
    // timeout) (~1 s) on both tiers, later on a loaded machine; rounds begun from 3 s on must be
    // whole at the other two.
    signal(&gateways[2], "-STOP");
    let stopped = Instant::now();
    let mut settled = Vec::new();
    let mut seed = 10;
    let mut began_at = Vec::new();
    while stopped.elapsed() < Duration::from_secs(6) {
        let began = stopped.elapsed();
        let sent = round(&agent, seed, 20).await;
        if began >= Duration::from_secs(3) {
            began_at.push(began);
            settled.extend(sent);
        }
        seed += 1;
    }
    assert!(!settled.is_empty());
    let want = traces_of(&settled);
    // Everything the two running gateways exported (an export may mix settled traces with
    // earlier ones: the settled traces' spans are picked out of it).
    let done = |sinks: &[Sink]| -> Vec<ExportTraceServiceRequest> {
        sinks[..2].iter().flat_map(Sink::requests).collect()
    };
    let settled_spans = |reqs: &[ExportTraceServiceRequest]| -> usize {
        reqs.iter()
            .flat_map(|r| &r.resource_spans)
            .flat_map(|rs| &rs.scope_spans)
            .flat_map(|ss| &ss.spans)
            .filter(|s| want.contains(&s.trace_id))
            .count()
    };
    let spans = want.len() * 3;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let n = settled_spans(&done(&sinks));
        if n >= spans {
            break;
        }
        if Instant::now() > deadline {
            let mut lines = Vec::new();
            for g in [&agent, &gateways[0], &gateways[1]] {
                let text = support::http_get(g.addr("service::telemetry::metrics"), "/metrics").1;
                lines.push("---".to_owned());
                lines.extend(
                    text.lines()
                        .filter(|l| {
                            (l.starts_with("tailgate_")
                                || l.contains("failed")
                                || l.contains("dropped"))
                                && !l.ends_with(" 0")
                                && !l.starts_with('#')
                        })
                        .map(str::to_owned),
                );
                lines.extend(
                    g.stderr()
                        .lines()
                        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
                        .map(str::to_owned),
                );
            }
            let got: BTreeSet<Vec<u8>> = traces_of(&done(&sinks));
            let per_round: Vec<usize> = settled
                .chunks(3)
                .map(|r| traces_of(r).intersection(&got).count())
                .collect();
            let at_2 = traces_of(&sinks[2].requests()).intersection(&want).count();
            lines.push(format!(
                "traces exported per settled round: {per_round:?}; at the stopped gateway: {at_2}"
            ));
            panic!(
                "{n} of {spans} spans of the settled rounds (begun at {began_at:?} after SIGSTOP at {:?}) exported by the running gateways\n{}",
                std::time::SystemTime::now() - stopped.elapsed(),
                lines.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await; // polling
    }
    assert_eq!(
        settled_spans(&done(&sinks)),
        spans,
        "no settled span exported twice"
    );
    let mut per_trace = support::exports_per_trace(&done(&sinks));
    per_trace.retain(|t, _| want.contains(t));
    assert_eq!(per_trace.len(), want.len(), "every settled trace kept");
    let split = per_trace.values().filter(|e| e.len() > 1).count();
    assert_eq!(
        split, 0,
        "settled traces decided whole by the running gateways"
    );
    assert!(
        agent
            .metric("tailgate_loadbalancer_backends_down{exporter=\"loadbalancing\"}")
            .unwrap_or(0.0)
            >= 1.0,
        "the agent marked the stopped gateway down"
    );

    // SIGCONT: after rise and quarantine the gateway is back, and new traces reach it again.
    signal(&gateways[2], "-CONT");
    let deadline = Instant::now() + Duration::from_secs(20);
    let back = "tailgate_loadbalancer_backends_down{exporter=\"loadbalancing\"}";
    while agent.metric(back).unwrap_or(1.0) > 0.0 {
        assert!(
            Instant::now() < deadline,
            "the agent never put the gateway back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await; // polling
    }
    let at_2 = sinks[2].total();
    let after = round(&agent, 99, 30).await;
    let want = traces_of(&after);
    let deadline = Instant::now() + Duration::from_secs(20);
    while traces_of(&sinks[2].requests()).intersection(&want).count() == 0 {
        assert!(
            Instant::now() < deadline,
            "no new trace reached the gateway after it came back ({at_2} spans before)"
        );
        tokio::time::sleep(Duration::from_millis(50)).await; // polling
    }
}
