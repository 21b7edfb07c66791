//! Costs of the rig itself, so we know it is not the bottleneck of a measurement:
//! generating + encoding requests, and the sink's span walk. Throughput is per span.
#![allow(missing_docs)]

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tailgate_perf::gen::{Workload, WorkloadConfig};
use tailgate_perf::grpc::{self, Compression};

fn workload(c: &mut Criterion) {
    let config = WorkloadConfig {
        spans_per_request: 1000,
        ..WorkloadConfig::default()
    };
    let mut group = c.benchmark_group("workload");
    group.throughput(Throughput::Elements(1000));
    let mut w = Workload::new(config);
    group.bench_function("next_batch_1000_spans", |b| {
        b.iter(|| {
            let batch = w.next_batch(1_700_000_000_000_000_000);
            let _ = w.take_finished();
            batch
        })
    });
    group.finish();
}

fn sink_path(c: &mut Criterion) {
    let mut w = Workload::new(WorkloadConfig {
        spans_per_request: 1000,
        ..WorkloadConfig::default()
    });
    let request = w.next_batch(0).map(|b| b.request).unwrap_or_default();
    let bytes = Bytes::from(request.clone());
    let mut group = c.benchmark_group("sink");
    group.throughput(Throughput::Elements(1000));
    group.bench_function("scan_ids_1000_spans", |b| {
        b.iter(|| tailgate_proto::scan(&bytes).map(|v| v.len()))
    });
    group.bench_function("count_1000_spans", |b| {
        b.iter(|| tailgate_proto::count_spans(&bytes))
    });
    let gz = grpc::encode_frame(&request, Compression::Gzip);
    group.bench_function("gunzip_deframe_1000_spans", |b| {
        b.iter(|| {
            grpc::decode_frames(gz.clone(), Some(Compression::Gzip), 64 << 20).map(|m| m.len())
        })
    });
    group.finish();
}

criterion_group!(benches, workload, sink_path);
criterion_main!(benches);
