//! Cost of routing: one lookup per key (the agent's per-span hot path) for each mode, and building a
//! table (done off the hot path on every membership change), for 3, 16 and 64 members.
//!
//! `cargo bench -p tailgate-routing --bench routing`; figures are in the crate docs.

// criterion_group! generates an undocumented pub function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion};
use tailgate_routing::measure::{fleet, TraceIds};
use tailgate_routing::{Mode, RoutingTable};

const SIZES: [usize; 3] = [3, 16, 64];

fn lookup(c: &mut Criterion) {
    // 4096 distinct trace IDs, cycled, so the lookups touch the table like real traffic does.
    let ids: Vec<[u8; 16]> = TraceIds::new(1).take(4096).collect();
    let mut group = c.benchmark_group("lookup_trace");
    // The loop alone (pick the next ID): subtract it from the figures below. On a loaded machine it
    // also shows how much the wall-clock figures are inflated.
    group.bench_function("baseline", |b| {
        let mut i = 0usize;
        b.iter(|| {
            i = (i + 1) & 4095;
            black_box(&ids[i])
        });
    });
    for mode in Mode::ALL {
        for n in SIZES {
            let table = RoutingTable::build(mode, fleet(mode, n)).expect("valid fleet");
            group.bench_with_input(BenchmarkId::new(mode.name(), n), &table, |b, table| {
                let mut i = 0usize;
                b.iter(|| {
                    i = (i + 1) & 4095;
                    black_box(table.route_trace(black_box(&ids[i])))
                });
            });
        }
    }
    group.finish();

    let mut group = c.benchmark_group("lookup_service");
    for mode in Mode::ALL {
        let table = RoutingTable::build(mode, fleet(mode, 16)).expect("valid fleet");
        group.bench_function(BenchmarkId::new(mode.name(), 16), |b| {
            b.iter(|| black_box(table.route_service(black_box(b"checkout-service"))));
        });
    }
    group.finish();
}

fn build(c: &mut Criterion) {
    let mut group = c.benchmark_group("build");
    for mode in Mode::ALL {
        for n in SIZES {
            group.bench_function(BenchmarkId::new(mode.name(), n), |b| {
                b.iter_batched(
                    || fleet(mode, n),
                    |members| black_box(RoutingTable::build(mode, members)),
                    BatchSize::SmallInput,
                );
            });
        }
    }
    // Failover rebuilds the same placement with two members marked unhealthy.
    for mode in Mode::ALL {
        let table = RoutingTable::build(mode, fleet(mode, 16)).expect("valid fleet");
        let sick = [table.members()[1].endpoint(), table.members()[7].endpoint()];
        group.bench_function(
            BenchmarkId::new(format!("{}_failover", mode.name()), 16),
            |b| {
                b.iter(|| black_box(table.failover(sick)));
            },
        );
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    targets = lookup, build
}
criterion_main!(benches);
