//! Gateway membership with the static resolver (issue 18, docs/membership-design.md step 5):
//! two gateways list each other; an agent that sends every span to gateway A still gets each
//! trace decided whole by its owner, A forwards B's share marked, B never forwards it again,
//! nothing is exported twice, a retried forward is deduplicated, spanmetrics counts every span
//! once across the tier, and marked data from outside the membership is refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use support::{export, frame, reserve, send_raw, span_set, Sink, Tailgate, EXPORT_PATH};
use tailgate_proto::compression::Compression;
use tailgate_routing::{Member, Mode, RoutingTable};

fn gateway(me: SocketAddr, members: &[SocketAddr], sink: SocketAddr) -> String {
    let list = members
        .iter()
        .map(|m| m.to_string())
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
    policies: [{{name: all, type: always_sample}}]
    tailgate:
      membership:
        resolver: {{static: {{hostnames: [{list}]}}}}
        self: {me}
        protocol: {{otlp: {{tls: {{insecure: true}}}}}}
connectors:
  spanmetrics: {{metrics_flush_interval: 200ms}}
exporters:
  otlp:
    endpoint: {sink}
    tls: {{insecure: true}}
  prometheus:
    endpoint: 127.0.0.1:0
service:
  telemetry: {{metrics: {{address: 127.0.0.1:0}}}}
  pipelines:
    traces: {{receivers: [otlp], processors: [tail_sampling], exporters: [otlp]}}
    traces/red: {{receivers: [otlp], exporters: [spanmetrics]}}
    metrics: {{receivers: [spanmetrics], exporters: [prometheus]}}
"
    )
}

/// Which of `members` owns `trace`, as both gateways compute it (static → jump).
fn owner(members: &[SocketAddr], trace: &[u8]) -> SocketAddr {
    let names: Vec<String> = members.iter().map(ToString::to_string).collect();
    let table = RoutingTable::build(Mode::Jump, Member::static_list(&names)).unwrap();
    let id: [u8; 16] = trace.try_into().unwrap();
    table
        .member_for_trace(&id)
        .unwrap()
        .endpoint()
        .parse()
        .unwrap()
}

/// The mark a forwarding gateway `from` writes (as `tailgate::pipeline::hop_header` does), from
/// the highest incarnation (a newer process than the real one at that address, so its batches
/// are not refused as coming from an older one).
fn mark(from: SocketAddr, seq: u64) -> String {
    format!("v=1;k=fwd;r=not_owner;f={from};i=ffffffffffffffff;t=0000000000000000;b=0.{seq}")
}

/// Sends `body` to `to` marked with `header` (as a gateway would); (grpc-status, message).
async fn send_marked(to: SocketAddr, header: &str, body: &[u8]) -> (u32, String) {
    send_raw(
        to,
        EXPORT_PATH,
        &[("tailgate-hop", header)],
        frame(body, Compression::Identity),
    )
    .await
}

/// A sink and two gateways A and B that list each other (static resolver, 2 cores each).
async fn pair() -> (Sink, [SocketAddr; 2], Tailgate, Tailgate) {
    let sink = Sink::start().await;
    let (ra, rb) = (reserve(), reserve());
    let members = [ra.1, rb.1];
    let a = Tailgate::start(&gateway(ra.1, &members, sink.addr), &["--cores", "2"]);
    let b = Tailgate::start(&gateway(rb.1, &members, sink.addr), &["--cores", "2"]);
    drop((ra.0, rb.0));
    (sink, members, a, b)
}

/// The spanmetrics calls counted by a gateway's prometheus exporter, summed over series.
fn calls(g: &Tailgate) -> f64 {
    let text = support::http_get(g.addr("exporters::prometheus"), "/metrics").1;
    text.lines()
        .filter(|l| l.starts_with("traces_span_metrics_calls_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn one_trace_request(req: &ExportTraceServiceRequest, trace: &[u8]) -> ExportTraceServiceRequest {
    let mut r = req.clone();
    for rs in &mut r.resource_spans {
        for ss in &mut rs.scope_spans {
            ss.spans.retain(|s| s.trace_id == trace);
        }
    }
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_forwards_what_it_does_not_own_and_each_trace_is_decided_once() {
    let (sink, members, a, b) = pair().await;
    let (ra, rb) = (members[0], members[1]);

    // 40 requests of 50 spans, every span its own trace, all sent to A (an agent whose list
    // names only A): about half the traces are B's.
    let reqs: Vec<_> = (0..40)
        .map(|i| support::make_request(i, 1, 1, 50))
        .collect();
    for r in &reqs {
        assert_eq!(export(a.grpc(), r, Compression::Identity).await.0, 0);
    }
    let total = 40 * 50;
    sink.wait_total(total).await;
    let got = span_set(&sink.requests());
    assert_eq!(got.len(), total, "every span exported exactly once");
    assert_eq!(got, span_set(&reqs));

    let owned_by_b = reqs
        .iter()
        .flat_map(|r| r.resource_spans[0].scope_spans[0].spans.iter())
        .filter(|s| owner(&members, &s.trace_id) == rb)
        .count() as f64;
    assert!(owned_by_b > 0.0 && owned_by_b < total as f64);
    let fwd = "tailgate_membership_forwarded_spans_total{processor=\"tail_sampling\",reason=\"not_owner\"}";
    a.wait_metric(fwd, owned_by_b).await;
    b.wait_metric(
        "tailgate_membership_received_spans_total{processor=\"tail_sampling\",kind=\"fwd\"}",
        owned_by_b,
    )
    .await;
    // B never forwards what it received marked.
    assert_eq!(b.metric(fwd), Some(0.0));
    // spanmetrics counts each span once across the tier: at A, the gateway the agent chose.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while calls(&a) < total as f64 {
        assert!(
            std::time::Instant::now() < deadline,
            "spanmetrics at A: {}",
            calls(&a)
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await; // polling
    }
    assert_eq!(calls(&a), total as f64);
    assert_eq!(
        calls(&b),
        0.0,
        "forwarded spans never reach B's spanmetrics"
    );

    // A retried forward (same sender, incarnation and batch) is inserted once.
    let req = support::make_request(99, 1, 1, 8);
    let spans = &req.resource_spans[0].scope_spans[0].spans;
    let theirs = spans
        .iter()
        .find(|s| owner(&members, &s.trace_id) == rb)
        .expect("one of 8 traces is B's");
    let batch = one_trace_request(&req, &theirs.trace_id);
    let body = Bytes::from(batch.encode_to_vec());
    let header = mark(ra, 1);
    for _ in 0..2 {
        let (code, msg) = send_marked(b.grpc(), &header, &body).await;
        assert_eq!(code, 0, "{msg}");
    }
    b.wait_metric(
        "tailgate_membership_duplicate_batches_total{processor=\"tail_sampling\"}",
        1.0,
    )
    .await;
    sink.wait_total(total + 1).await;

    // Forwarded data is never forwarded again: a marked span B does not own stays at B.
    let mine = spans
        .iter()
        .find(|s| owner(&members, &s.trace_id) == ra)
        .expect("one of 8 traces is A's");
    let batch = one_trace_request(&req, &mine.trace_id);
    let (code, msg) = send_marked(b.grpc(), &mark(ra, 2), &batch.encode_to_vec()).await;
    assert_eq!(code, 0, "{msg}");
    sink.wait_total(total + 2).await;
    assert_eq!(b.metric(fwd), Some(0.0));
    assert_eq!(span_set(&sink.requests()).len(), total + 2);

    // A marked request naming a sender outside the member list is refused, retryably (a new
    // gateway not yet listed by its peers succeeds once it is). (Peer addresses off loopback are
    // checked in `peers::tests`: on loopback every address is the one host.)
    let stranger = mark(SocketAddr::from(([127, 0, 0, 1], 1)), 4);
    let (code, msg) = send_marked(b.grpc(), &stranger, &body).await;
    assert_eq!(code, 14, "{msg}");
    b.wait_metric(
        "tailgate_membership_marks_refused_total{processor=\"tail_sampling\",reason=\"not_member\"}",
        1.0,
    )
    .await;

    // A malformed mark is refused before the body is read (INVALID_ARGUMENT, not retried).
    let (code, msg) = send_marked(b.grpc(), "v=1;k=fwd", &body).await;
    assert_eq!(code, 3, "{msg}");
    assert!(msg.contains("malformed tailgate-hop"), "{msg}");
    b.wait_metric(
        "tailgate_membership_marks_refused_total{processor=\"tail_sampling\",reason=\"malformed\"}",
        1.0,
    )
    .await;
    assert!(a.terminate().success());
    assert!(b.terminate().success());
}

/// Two agents with different views of the tier: each trace's first two spans reach A, the other
/// two reach B. Each trace must still be decided once, by its owner: all of its spans leave in
/// one export (a trace decided in two places leaves in two).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_whose_spans_reach_two_gateways_is_decided_whole_by_its_owner() {
    let (sink, _, a, b) = pair().await;
    let mut sent = Vec::new();
    for i in 0..10 {
        let mut req = support::make_request(i, 1, 1, 40);
        let spans = &mut req.resource_spans[0].scope_spans[0].spans;
        for j in 0..spans.len() {
            let first = spans[j - j % 4].trace_id.clone();
            spans[j].trace_id = first;
        }
        let (mut to_a, mut to_b) = (req.clone(), req.clone());
        let keep = |r: &mut ExportTraceServiceRequest, low: bool| {
            let mut j = 0;
            r.resource_spans[0].scope_spans[0].spans.retain(|_| {
                j += 1;
                ((j - 1) % 4 < 2) == low
            });
        };
        keep(&mut to_a, true);
        keep(&mut to_b, false);
        assert_eq!(export(a.grpc(), &to_a, Compression::Identity).await.0, 0);
        assert_eq!(export(b.grpc(), &to_b, Compression::Identity).await.0, 0);
        sent.push(req);
    }
    sink.wait_total(400).await;
    assert_eq!(span_set(&sink.requests()), span_set(&sent));
    let requests_of = support::exports_per_trace(&sink.requests());
    assert_eq!(requests_of.len(), 100);
    let split: Vec<_> = requests_of.iter().filter(|(_, r)| r.len() > 1).collect();
    assert!(split.is_empty(), "traces exported in pieces: {split:?}");
    let fwd = |g: &Tailgate| {
        g.metric("tailgate_membership_forwarded_spans_total{processor=\"tail_sampling\",reason=\"not_owner\"}")
            .unwrap_or(0.0)
    };
    assert_eq!(
        fwd(&a) + fwd(&b),
        200.0,
        "half of every trace travelled once"
    );
    assert!(a.terminate().success());
    assert!(b.terminate().success());
}

/// A gateway that holds a trace it does not own (spans another gateway forwarded, as one whose
/// view differed would) claims it to the owner; the owner, holding an undecided fragment of the
/// same trace, hands that fragment over (`take_pending`, marked `handover`), and the claimant
/// decides the whole trace once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_makes_the_owner_hand_its_fragment_to_the_holder() {
    let (sink, members, a, b) = pair().await;
    let ra = members[0];
    // A trace of 4 spans owned by A: two reach A from an agent, two reach B marked.
    let mut req = support::make_request(7, 1, 1, 16);
    let spans = &mut req.resource_spans[0].scope_spans[0].spans;
    let t = spans
        .iter()
        .find(|s| owner(&members, &s.trace_id) == ra)
        .expect("one of 16 traces is A's")
        .trace_id
        .clone();
    spans.truncate(4);
    for s in spans.iter_mut() {
        s.trace_id = t.clone();
    }
    let (mut to_a, mut to_b) = (req.clone(), req.clone());
    to_a.resource_spans[0].scope_spans[0].spans.truncate(2);
    to_b.resource_spans[0].scope_spans[0].spans.drain(..2);
    assert_eq!(export(a.grpc(), &to_a, Compression::Identity).await.0, 0);
    let (code, msg) = send_marked(b.grpc(), &mark(ra, 1), &to_b.encode_to_vec()).await;
    assert_eq!(code, 0, "{msg}");
    sink.wait_total(4).await;
    let requests = sink.requests();
    assert_eq!(span_set(&requests), span_set(std::slice::from_ref(&req)));
    let holding: Vec<_> = requests
        .iter()
        .filter(|r| !span_set(std::slice::from_ref(*r)).is_empty())
        .collect();
    assert_eq!(
        holding.len(),
        1,
        "the trace left in one export: {requests:?}"
    );
    a.wait_metric(
        "tailgate_membership_forwarded_spans_total{processor=\"tail_sampling\",reason=\"handover\"}",
        2.0,
    )
    .await;
    b.wait_metric(
        "tailgate_membership_received_spans_total{processor=\"tail_sampling\",kind=\"handover\"}",
        2.0,
    )
    .await;
    assert!(a.terminate().success());
    assert!(b.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marked_data_is_refused_where_no_tail_sampling_sets_membership() {
    let sink = Sink::start().await;
    let plain = Tailgate::start(
        &support::one_exporter(
            "otlp",
            &format!("    endpoint: {}\n    tls: {{insecure: true}}", sink.addr),
        ),
        &[],
    );
    let req = support::make_request(1, 1, 1, 3);
    let header = mark(SocketAddr::from(([127, 0, 0, 1], 1)), 1);
    let (code, msg) = send_marked(plain.grpc(), &header, &req.encode_to_vec()).await;
    assert_eq!(code, 9, "FAILED_PRECONDITION: {msg}");
    // Unmarked data still flows.
    assert_eq!(export(plain.grpc(), &req, Compression::Identity).await.0, 0);
    sink.wait_total(3).await;
    assert!(plain.terminate().success());
}
