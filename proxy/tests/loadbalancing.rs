//! Agent mode: the real binary with a `loadbalancing` exporter over static backends (gRPC sinks
//! on 127.0.0.1 port 0).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod lb_workload;
mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;

use lb_workload::{request, requests, workload};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use rand::rngs::StdRng;
use rand::SeedableRng;
use support::{export, Sink, Tailgate};
use tailgate_proto::compression::Compression;
use tailgate_routing::{Member, Mode, RoutingTable};

fn agent_config(hostnames: &[String], exporter_extra: &str, processors: &str) -> String {
    let list = hostnames
        .iter()
        .map(|h| format!("\"{h}\""))
        .collect::<Vec<_>>()
        .join(", ");
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
    send_batch_size: 500
exporters:
  loadbalancing:
    routing_key: traceID
    protocol:
      otlp:
        tls: {{insecure: true}}
        compression: none
{exporter_extra}
    resolver:
      static:
        hostnames: [{list}]
service:
  telemetry:
    metrics:
      address: 127.0.0.1:0
  pipelines:
    traces:
      receivers: [otlp]
      processors: [{processors}]
      exporters: [loadbalancing]
"
    )
}

/// Trace ID → (sink index → span indices received there).
type Received = HashMap<[u8; 16], BTreeMap<usize, Vec<u32>>>;

fn received(sinks: &[Sink]) -> Received {
    let mut out: Received = HashMap::new();
    for (i, sink) in sinks.iter().enumerate() {
        for req in sink.requests() {
            for rs in &req.resource_spans {
                for ss in &rs.scope_spans {
                    for s in &ss.spans {
                        let id: [u8; 16] = s.trace_id.as_slice().try_into().unwrap();
                        let index = u32::from_be_bytes(s.span_id[4..8].try_into().unwrap());
                        out.entry(id).or_default().entry(i).or_default().push(index);
                    }
                }
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_trace_arrives_whole_at_exactly_one_backend() {
    let sinks = vec![
        Sink::start().await,
        Sink::start().await,
        Sink::start().await,
    ];
    let hostnames: Vec<String> = sinks.iter().map(|s| s.addr.to_string()).collect();
    let tg = Tailgate::start(&agent_config(&hostnames, "", "batch"), &["--cores", "2"]);
    let mut rng = StdRng::seed_from_u64(0x5eed);
    let (sizes, spans) = workload(&mut rng, 10_000);
    let total = spans.len();
    // Many requests of random size, spread over 4 concurrent clients.
    let requests = requests(&mut rng, &spans, 400);
    let clients = 4;
    let mut tasks = Vec::new();
    for c in 0..clients {
        let mine: Vec<ExportTraceServiceRequest> =
            requests.iter().skip(c).step_by(clients).cloned().collect();
        let addr = tg.grpc();
        tasks.push(tokio::spawn(async move {
            for r in &mine {
                let (code, msg) = export(addr, r, Compression::Identity).await;
                assert_eq!(code, 0, "{msg}");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    wait_all(&sinks, total).await;

    let got = received(&sinks);
    assert_eq!(got.len(), sizes.len(), "every trace arrived");
    let mut per_sink = [0usize; 3];
    for (id, by_sink) in &got {
        assert_eq!(
            by_sink.len(),
            1,
            "trace {id:02x?} split over sinks {:?}",
            by_sink.keys()
        );
        let (&sink, indices) = by_sink.iter().next().unwrap();
        let unique: BTreeSet<u32> = indices.iter().copied().collect();
        assert_eq!(indices.len(), unique.len(), "duplicated spans in {id:02x?}");
        assert_eq!(unique.len() as u32, sizes[id], "trace {id:02x?} incomplete");
        per_sink[sink] += 1;
    }
    assert!(
        per_sink.iter().all(|&n| n > 0),
        "every sink gets a share: {per_sink:?}"
    );
    // The agent places traces exactly as the routing crate does for this static list.
    let table = RoutingTable::build(Mode::Jump, Member::static_list(&hostnames)).unwrap();
    for (id, by_sink) in &got {
        let owner = table.member_for_trace(id).unwrap().endpoint();
        let sink = *by_sink.keys().next().unwrap();
        assert_eq!(owner, hostnames[sink]);
    }
    assert_eq!(
        tg.metric("otelcol_loadbalancer_num_backends{resolver=\"static\"}"),
        Some(3.0)
    );
    for h in &hostnames {
        let sent = tg
            .metric(&format!(
                "otelcol_exporter_sent_spans_total{{exporter=\"loadbalancing\",endpoint=\"{h}\"}}"
            ))
            .unwrap_or(0.0);
        assert!(sent > 0.0, "sent to {h}: {sent}");
        let ok = tg
            .metric(&format!(
                "otelcol_loadbalancer_backend_outcome{{endpoint=\"{h}\",success=\"true\"}}"
            ))
            .unwrap_or(0.0);
        assert!(ok > 0.0, "outcome of {h}: {ok}");
    }
    let status = tg.terminate();
    assert!(status.success(), "{status}");
}

async fn wait_all(sinks: &[Sink], total: usize) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let got: usize = sinks.iter().map(Sink::total).sum();
        if got >= total {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "sinks got {got} of {total} spans"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await; // polling, generous deadline
    }
}

fn dead_address() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
    // dropped here: connections to it are refused
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_backend_drops_beyond_its_queue_and_the_others_are_not_resent() {
    let live = Sink::start().await;
    let dead = dead_address();
    let hostnames = vec![live.addr.to_string(), dead.to_string()];
    let extra = "        sending_queue: {queue_size: 2, num_consumers: 1}
        retry_on_failure: {initial_interval: 10s, max_interval: 10s}";
    // No batch processor: every request is split and handed over on its own.
    let tg = Tailgate::start(&agent_config(&hostnames, extra, ""), &["--cores", "1"]);
    let table = RoutingTable::build(Mode::Jump, Member::static_list(&hostnames)).unwrap();
    let mut rng = StdRng::seed_from_u64(7);
    let (sizes, spans) = workload(&mut rng, 400);
    let mut expected_live = 0usize;
    let mut expected_dead = 0u64;
    for (id, n) in &sizes {
        if table.member_for_trace(id).unwrap().endpoint() == hostnames[0] {
            expected_live += *n as usize;
        } else {
            expected_dead += u64::from(*n);
        }
    }
    let mut live_so_far = 0;
    for chunk in spans.chunks(spans.len().div_ceil(20)) {
        let (code, msg) = export(tg.grpc(), &request(&mut rng, chunk), Compression::Identity).await;
        assert_eq!(code, 0, "a partly routable request is accepted: {msg}");
        // The live backend's 2-batch queue drains before the next request, so every request has
        // a part with room and only the dead backend refuses (else a request can find both
        // queues full and be refused whole, retryably, which is right but not this test).
        live_so_far += chunk
            .iter()
            .filter(|s| table.member_for_trace(&s.trace).unwrap().endpoint() == hostnames[0])
            .count();
        live.wait_total(live_so_far).await;
    }
    assert_eq!(live_so_far, expected_live);
    let got = received(std::slice::from_ref(&live));
    for (id, by_sink) in &got {
        let indices = &by_sink[&0];
        assert_eq!(indices.len() as u32, sizes[id], "whole, once: {id:02x?}");
        assert_eq!(table.member_for_trace(id).unwrap().endpoint(), hostnames[0]);
    }
    let dropped = tg
        .metric(&format!(
            "otelcol_loadbalancer_dropped_spans_total{{exporter=\"loadbalancing\",endpoint=\"{dead}\",reason=\"queue_full\"}}"
        ))
        .unwrap_or(0.0);
    assert!(
        dropped > 0.0 && dropped < expected_dead as f64,
        "dropped {dropped} of {expected_dead} (3 batches are queued or retrying)"
    );
    let failed = tg
        .metric(&format!(
            "otelcol_loadbalancer_backend_outcome{{endpoint=\"{dead}\",success=\"false\"}}"
        ))
        .unwrap_or(0.0);
    assert!(failed > 0.0);
    assert_eq!(
        live.total(),
        expected_live,
        "nothing was resent to the live backend"
    );
}

#[test]
fn the_deploy_agent_configs_validate() {
    for file in [
        "../deploy/k8s/base/config/agent.yaml",
        "../deploy/k8s/overlays/statefulset/agent.yaml",
        "tests/fixtures/agent-config.yaml",
    ] {
        let path = format!("{}/{file}", env!("CARGO_MANIFEST_DIR"));
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tailgate"))
            .args(["validate", "--config", &path])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_key_service_keeps_each_service_on_one_backend() {
    let sinks = vec![
        Sink::start().await,
        Sink::start().await,
        Sink::start().await,
    ];
    let hostnames: Vec<String> = sinks.iter().map(|s| s.addr.to_string()).collect();
    let cfg = agent_config(&hostnames, "", "batch")
        .replace("routing_key: traceID", "routing_key: service");
    let tg = Tailgate::start(&cfg, &["--cores", "2"]);
    let mut rng = StdRng::seed_from_u64(21);
    let (_, spans) = workload(&mut rng, 500);
    // Services svc-0..svc-2 (lb_workload::request names resources by position).
    for r in requests(&mut rng, &spans, 300) {
        let (code, msg) = export(tg.grpc(), &r, Compression::Identity).await;
        assert_eq!(code, 0, "{msg}");
    }
    wait_all(&sinks, spans.len()).await;
    let table = RoutingTable::build(Mode::Jump, Member::static_list(&hostnames)).unwrap();
    let mut services = BTreeSet::new();
    for (i, sink) in sinks.iter().enumerate() {
        for req in sink.requests() {
            for rs in &req.resource_spans {
                let attr = &rs.resource.as_ref().unwrap().attributes[0];
                let Some(opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(
                    name,
                )) = attr.value.as_ref().and_then(|v| v.value.as_ref())
                else {
                    panic!("no service.name")
                };
                let owner = table.route_service(name.as_bytes()).unwrap();
                assert_eq!(
                    owner,
                    table.index_of(&hostnames[i]).unwrap(),
                    "{name} at sink {i}"
                );
                services.insert(name.clone());
            }
        }
    }
    assert_eq!(services.len(), 3, "{services:?}");
}

/// A backend that is ready but never answers may hold only its share of the exporter's byte cap
/// per core (the cap over the number of backends): its parts beyond that are dropped and counted,
/// and the other backend keeps receiving every span of its traces. Before the cap, the slow
/// backend's queue grew to 1,000 batches and pushed the agent to its memory limit, where it
/// refused every client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_backend_holds_only_its_share_of_the_byte_cap() {
    let live = Sink::start().await;
    let slow = Sink::start().await;
    slow.stall();
    let hostnames = vec![live.addr.to_string(), slow.addr.to_string()];
    const CAP: u64 = 100_000;
    let extra = format!(
        "        timeout: 60s
        sending_queue: {{queue_size: 1000, num_consumers: 1, tailgate: {{max_bytes_per_core: {CAP}}}}}"
    );
    let tg = Tailgate::start(&agent_config(&hostnames, &extra, ""), &["--cores", "1"]);
    let table = RoutingTable::build(Mode::Jump, Member::static_list(&hostnames)).unwrap();
    let mut rng = StdRng::seed_from_u64(9);
    let (_, spans) = workload(&mut rng, 400);
    let to_live = |s: &&lb_workload::SpanId| {
        table.member_for_trace(&s.trace).unwrap().endpoint() == hostnames[0]
    };
    let mut live_so_far = 0;
    for chunk in spans.chunks(spans.len().div_ceil(20)) {
        let (code, msg) = export(tg.grpc(), &request(&mut rng, chunk), Compression::Identity).await;
        assert_eq!(code, 0, "the live backend's part is taken: {msg}");
        live_so_far += chunk.iter().filter(to_live).count();
        live.wait_total(live_so_far).await;
    }
    let slow_ep = &hostnames[1];
    let held = tg
        .metric(&format!(
            "tailgate_exporter_queue_bytes{{exporter=\"loadbalancing\",endpoint=\"{slow_ep}\""
        ))
        .unwrap();
    assert!(
        held > 0.0 && held <= (CAP / 2) as f64,
        "the slow backend holds {held} bytes, its share is {}",
        CAP / 2
    );
    let dropped = tg
        .metric(&format!(
            "otelcol_loadbalancer_dropped_spans_total{{exporter=\"loadbalancing\",endpoint=\"{slow_ep}\",reason=\"queue_full\"}}"
        ))
        .unwrap_or(0.0);
    let refused_bytes = tg
        .metric(&format!(
            "tailgate_exporter_send_failed_spans_total{{exporter=\"loadbalancing\",endpoint=\"{slow_ep}\",reason=\"queue_byte_limit\"}}"
        ))
        .unwrap_or(0.0);
    assert!(dropped > 0.0, "nothing dropped for the slow backend");
    assert_eq!(dropped, refused_bytes, "every drop was the byte cap's");
    assert_eq!(
        live.total(),
        live_so_far,
        "the live backend got each span once"
    );
}
