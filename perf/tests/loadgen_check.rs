//! loadgen → sink → check over loopback: the join must account for every trace sent.
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use tailgate_perf::check::{check, SinkObservations};
use tailgate_perf::gen::{SpanCount, TraceShape, WorkloadConfig};
use tailgate_perf::grpc::{Compression, GrpcStatus};
use tailgate_perf::loadgen::{self, LoadConfig};
use tailgate_perf::manifest::{self, ManifestWriter};
use tailgate_perf::observations;
use tailgate_perf::pace::Rate;
use tailgate_perf::sink::{Faults, RecordMode, Sink, SinkConfig};

fn config(target: std::net::SocketAddr) -> LoadConfig {
    LoadConfig {
        max_spans: Some(5_000),
        workload: WorkloadConfig {
            shape: TraceShape {
                spans_per_trace: SpanCount::Uniform { min: 2, max: 12 },
                error_rate: 0.1,
                slow_rate: 0.1,
                ..TraceShape::default()
            },
            spans_per_request: 100,
            interleave: 50,
            seed: 42,
        },
        ..LoadConfig::new(target)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_trace_arrives_complete() {
    let sink = Sink::start(SinkConfig {
        record: RecordMode::Ids,
        ..SinkConfig::default()
    })
    .await
    .unwrap();
    let mut cfg = config(sink.grpc_addr());
    cfg.compression = Compression::Zstd;
    let out = loadgen::run(cfg).await.unwrap();
    let s = &out.summary;
    assert_eq!(
        (s.spans_failed, s.requests_refused, s.requests_lost),
        (0, 0, 0)
    );
    assert!(s.spans_ok >= 5_000);
    assert_eq!(s.traces, out.manifest.len() as u64);
    let sent: u64 = out.manifest.iter().map(|e| u64::from(e.spans)).sum();
    assert_eq!(sent, s.spans_ok);

    let seen = sink
        .wait_for_spans(sent, Duration::from_secs(10))
        .await
        .unwrap();
    let report = check(
        &out.manifest,
        &[SinkObservations {
            name: "sink".into(),
            keys: seen.keys,
        }],
    );
    let all = report.class("all").unwrap();
    assert_eq!(
        (
            all.traces,
            all.complete,
            all.partial,
            all.missing,
            all.duplicated
        ),
        (s.traces, s.traces, 0, 0, 0)
    );
    let errors = out.manifest.iter().filter(|e| e.error).count() as u64;
    assert!(errors > 0, "10% error rate over hundreds of traces");
    assert_eq!(report.class("error").unwrap().complete, errors);
    assert_eq!(report.unknown_spans, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_requests_show_up_as_partial_or_missing_traces() {
    let sink = Sink::start(SinkConfig {
        record: RecordMode::Ids,
        faults: Faults {
            fail_fraction: 0.2,
            fail_status: GrpcStatus::UNAVAILABLE,
            ..Faults::none()
        },
        ..SinkConfig::default()
    })
    .await
    .unwrap();
    let out = loadgen::run(config(sink.grpc_addr())).await.unwrap();
    let s = &out.summary;
    assert!(s.requests_refused > 0);
    assert_eq!(
        s.statuses.get(&GrpcStatus::UNAVAILABLE.to_string()),
        Some(&s.requests_refused)
    );

    // Files on the way, as the CLI does it.
    let dir = std::env::temp_dir().join(format!("tailgate-perf-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut w = ManifestWriter::create(&dir.join("m.tgm")).unwrap();
    for e in &out.manifest {
        w.push(e).unwrap();
    }
    w.finish().unwrap();
    observations::write_file(&dir.join("s.tgo"), &sink.snapshot().keys).unwrap();
    let manifest = manifest::read_file(&dir.join("m.tgm")).unwrap();
    let keys = observations::read_file(&dir.join("s.tgo")).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();

    let report = check(
        &manifest,
        &[SinkObservations {
            name: "s".into(),
            keys,
        }],
    );
    let all = report.class("all").unwrap();
    assert!(all.partial + all.missing > 0);
    assert_eq!(all.complete + all.partial + all.missing, all.traces);
    // Spans that arrived are exactly the spans of accepted requests.
    assert_eq!(report.sinks[0].spans, s.spans_ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paced_run_reports_its_rate_target() {
    let sink = Sink::start(SinkConfig {
        record: RecordMode::Count,
        ..SinkConfig::default()
    })
    .await
    .unwrap();
    let mut cfg = config(sink.grpc_addr());
    // 5000 spans at 50 000/s: a short paced run; the rate itself is not asserted (no timing
    // assertions), only that pacing lets everything through.
    cfg.rate = Rate::SpansPerSecond(50_000.0);
    let out = loadgen::run(cfg).await.unwrap();
    assert_eq!(out.summary.spans_failed, 0);
    assert_eq!(sink.stats().accepted_spans, out.summary.spans_ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_rounds_are_whole_new_traces() {
    let sink = Sink::start(SinkConfig {
        record: RecordMode::Ids,
        ..SinkConfig::default()
    })
    .await
    .unwrap();
    let mut cfg = config(sink.grpc_addr());
    cfg.replay_pool = Some(10);
    let out = loadgen::run(cfg).await.unwrap();
    let s = &out.summary;
    assert!(s.spans_ok >= 5_000 && s.spans_failed == 0);
    let seen = sink
        .wait_for_spans(s.spans_ok, Duration::from_secs(10))
        .await
        .unwrap();
    let report = check(
        &out.manifest,
        &[SinkObservations {
            name: "sink".into(),
            keys: seen.keys,
        }],
    );
    let all = report.class("all").unwrap();
    assert_eq!(
        (all.complete, all.partial, all.missing, all.duplicated),
        (all.traces, 0, 0, 0)
    );
    assert_eq!(all.traces, s.traces);
    assert_eq!(report.unknown_spans, 0);
}

#[tokio::test]
async fn unreachable_target_is_a_connect_error() {
    // Bind then drop a listener to get a port that refuses connections.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let err = loadgen::run(LoadConfig::new(port)).await.unwrap_err();
    assert!(err.to_string().contains("cannot connect"), "{err}");
}
