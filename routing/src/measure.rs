//! Measuring placements, deterministically: reproducible trace IDs, load balance (max/mean) and the
//! fraction of keys moved between two tables. Used by the tests, the `balance` example that prints
//! the table in the crate docs, and the benches. Not on the hot path.

use crate::member::Member;
use crate::mode::Mode;
use crate::table::RoutingTable;

/// An endless, reproducible stream of random-looking trace IDs (splitmix64, two outputs per ID).
#[derive(Clone, Debug)]
pub struct TraceIds {
    /// splitmix64 state.
    state: u64,
}

impl TraceIds {
    /// The stream for `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

impl Iterator for TraceIds {
    type Item = [u8; 16];

    fn next(&mut self) -> Option<[u8; 16]> {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&self.next_u64().to_be_bytes());
        id[8..].copy_from_slice(&self.next_u64().to_be_bytes());
        Some(id)
    }
}

/// A fleet of `n` gateways as a resolver of the mode's default kind would report them: StatefulSet
/// pod names for `jump`, DNS A-record addresses for `slots` and `collector`.
pub fn fleet(mode: Mode, n: usize) -> Vec<Member> {
    (0..n).map(|i| fleet_member(mode, i)).collect()
}

/// The `i`-th member of [`fleet`].
pub fn fleet_member(mode: Mode, i: usize) -> Member {
    match mode {
        Mode::Jump => Member::new(format!(
            "gateway-{i}.gateway-headless.observability.svc.cluster.local:4317"
        )),
        Mode::Slots | Mode::Collector => {
            Member::new(format!("10.1.{}.{}:4317", i / 200, 10 + i % 200))
        }
    }
}

/// Keys per member for `keys` trace IDs from `seed` (index = member index).
pub fn loads(table: &RoutingTable, keys: usize, seed: u64) -> Vec<u64> {
    let mut counts = vec![0u64; table.len()];
    for id in TraceIds::new(seed).take(keys) {
        if let Some(c) = table.route_trace(&id).and_then(|i| counts.get_mut(i)) {
            *c += 1;
        }
    }
    counts
}

/// The most loaded member's keys over the mean, over the usable members (1.0 is perfect).
pub fn max_over_mean(table: &RoutingTable, keys: usize, seed: u64) -> f64 {
    let counts = loads(table, keys, seed);
    let usable: Vec<u64> = (0..counts.len())
        .filter(|&i| table.is_usable(i))
        .map(|i| counts[i])
        .collect();
    let max = usable.iter().copied().max().unwrap_or(0) as f64;
    let mean = usable.iter().sum::<u64>() as f64 / usable.len().max(1) as f64;
    if mean == 0.0 {
        0.0
    } else {
        max / mean
    }
}

/// The fraction of `keys` trace IDs whose owner (by endpoint) differs between two tables.
pub fn moved_fraction(before: &RoutingTable, after: &RoutingTable, keys: usize, seed: u64) -> f64 {
    // Compare by endpoint, through an index map, since indices differ between the two tables.
    let remap: Vec<Option<usize>> = before
        .members()
        .iter()
        .map(|m| after.index_of(m.endpoint()))
        .collect();
    let moved = TraceIds::new(seed)
        .take(keys)
        .filter(|id| {
            let was = before
                .route_trace(id)
                .and_then(|i| remap.get(i).copied().flatten());
            was != after.route_trace(id)
        })
        .count();
    moved as f64 / keys.max(1) as f64
}

/// One mode's figures for one fleet size.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Figures {
    /// Max/mean load over the fleet.
    pub balance: f64,
    /// Fraction of keys moved when one member is added (ideal `1/(n+1)`).
    pub moved_on_add: f64,
    /// Fraction of keys moved when one member is removed (ideal `1/n`): for `jump` the highest ordinal
    /// (a StatefulSet scale-down), for the others the member in the middle of the sorted set.
    pub moved_on_remove: f64,
}

/// Measures `mode` on a fleet of `n` members with `keys` trace IDs from `seed`.
pub fn measure(mode: Mode, n: usize, keys: usize, seed: u64) -> Figures {
    let build = |members: Vec<Member>| RoutingTable::build(mode, members);
    let (Ok(base), Ok(grown)) = (build(fleet(mode, n)), build(fleet(mode, n + 1))) else {
        return Figures {
            balance: f64::NAN,
            moved_on_add: f64::NAN,
            moved_on_remove: f64::NAN,
        };
    };
    let removed = match mode {
        Mode::Jump => n - 1,
        Mode::Slots | Mode::Collector => n / 2,
    };
    let mut shrunk_set = fleet(mode, n);
    shrunk_set.remove(removed);
    let moved_on_remove = build(shrunk_set)
        .map(|shrunk| moved_fraction(&base, &shrunk, keys, seed))
        .unwrap_or(f64::NAN);
    Figures {
        balance: max_over_mean(&base, keys, seed),
        moved_on_add: moved_fraction(&base, &grown, keys, seed),
        moved_on_remove,
    }
}
