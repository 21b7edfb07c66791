//! Lookup cost per trace ID in CPU time, for machines where wall-clock benches are disturbed by other
//! load: the thread's own run time comes from `/proc/thread-self/schedstat` (Linux), so time spent
//! waiting for a core is not counted. Criterion (`benches/routing.rs`) remains the reference.
//!
//! `cargo run --release -p tailgate-routing --example cost`

use std::hint::black_box;

use tailgate_routing::measure::{fleet, TraceIds};
use tailgate_routing::{Mode, RoutingTable};

const LOOKUPS: usize = 20_000_000;

/// This thread's CPU run time in nanoseconds, if the kernel reports it.
fn cpu_ns() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    stat.split_whitespace().next()?.parse().ok()
}

/// CPU nanoseconds per call of `f` over `LOOKUPS` calls cycling through `ids`.
fn per_lookup(ids: &[[u8; 16]], mut f: impl FnMut(&[u8; 16]) -> Option<usize>) -> Option<f64> {
    let start = cpu_ns()?;
    let mut sink = 0usize;
    for i in 0..LOOKUPS {
        sink = sink.wrapping_add(f(black_box(&ids[i & 4095])).unwrap_or(0));
    }
    black_box(sink);
    Some((cpu_ns()? - start) as f64 / LOOKUPS as f64)
}

fn main() {
    let ids: Vec<[u8; 16]> = TraceIds::new(1).take(4096).collect();
    let Some(baseline) = per_lookup(&ids, |id| Some(usize::from(id[0]))) else {
        eprintln!("/proc/thread-self/schedstat is not available here");
        return;
    };
    println!(
        "CPU ns per trace-ID lookup ({LOOKUPS} lookups, loop baseline {baseline:.2} ns subtracted)"
    );
    println!();
    println!("| mode | 3 members | 16 members | 64 members |");
    println!("|---|---|---|---|");
    for mode in Mode::ALL {
        let mut row = format!("| {mode} |");
        for n in [3, 16, 64] {
            let Ok(table) = RoutingTable::build(mode, fleet(mode, n)) else {
                continue;
            };
            let ns = per_lookup(&ids, |id| table.route_trace(id)).unwrap_or(f64::NAN);
            row.push_str(&format!(" {:.1} ns |", ns - baseline));
        }
        println!("{row}");
    }
}
