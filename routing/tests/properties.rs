//! Deterministic properties of every mode (fixed member names, fixed seeds): balance, keys moved on
//! membership changes, and independence from the order and history that produced the member set.
//! The full 1 M-key table is printed by `cargo run --release -p tailgate-routing --example balance`;
//! these tests use fewer keys so `cargo test` stays quick, with bounds loose enough for that noise.

use tailgate_routing::measure::{fleet, fleet_member, max_over_mean, moved_fraction, TraceIds};
use tailgate_routing::{Member, Mode, RoutingTable};

const KEYS: usize = 100_000;
const SEED: u64 = 0x7e57;

fn build(mode: Mode, members: Vec<Member>) -> RoutingTable {
    RoutingTable::build(mode, members).expect("valid fleet")
}

/// Upper bound on max/mean load at 100 k keys, per mode. Jump is exact up to sampling noise; slots
/// add the slot granularity; the collector's 100 points per member on 36,000 positions are coarse.
fn balance_bound(mode: Mode) -> f64 {
    match mode {
        Mode::Jump => 1.10,
        Mode::Slots => 1.35,
        Mode::Collector => 2.0,
    }
}

#[test]
fn balance_for_2_to_64_members() {
    for mode in Mode::ALL {
        for n in [2, 3, 5, 8, 16, 33, 64] {
            let b = max_over_mean(&build(mode, fleet(mode, n)), KEYS, SEED);
            assert!(
                b >= 1.0 && b < balance_bound(mode),
                "{mode} n={n}: max/mean {b:.3}"
            );
        }
    }
}

#[test]
fn adding_a_member_moves_keys_only_to_it_and_about_one_in_n_plus_one() {
    for mode in Mode::ALL {
        for n in [2, 3, 8, 16, 64] {
            let before = build(mode, fleet(mode, n));
            let after = build(mode, fleet(mode, n + 1));
            let newcomer = fleet_member(mode, n);
            for id in TraceIds::new(SEED).take(KEYS) {
                let (b, a) = (before.member_for_trace(&id), after.member_for_trace(&id));
                if b.map(Member::endpoint) != a.map(Member::endpoint) {
                    assert_eq!(
                        a,
                        Some(&newcomer),
                        "{mode} n={n}: a key moved between old members"
                    );
                }
            }
            let ratio = moved_fraction(&before, &after, KEYS, SEED) * (n + 1) as f64;
            assert!(
                (0.5..1.6).contains(&ratio),
                "{mode} n={n}: moved/ideal {ratio:.3}"
            );
        }
    }
}

#[test]
fn removing_a_member_moves_only_its_keys() {
    for mode in Mode::ALL {
        for n in [3, 8, 16, 64] {
            let full = fleet(mode, n);
            let before = build(mode, full.clone());
            // Remove a member in the middle: for jump that leaves a gap in the ordinals.
            let gone = full[n / 2].clone();
            let rest: Vec<Member> = full.into_iter().filter(|m| *m != gone).collect();
            let after = build(mode, rest);
            for id in TraceIds::new(SEED).take(KEYS) {
                let (b, a) = (before.member_for_trace(&id), after.member_for_trace(&id));
                if b != Some(&gone) {
                    assert_eq!(
                        b.map(Member::endpoint),
                        a.map(Member::endpoint),
                        "{mode} n={n}: a key of a remaining member moved"
                    );
                }
            }
            let ratio = moved_fraction(&before, &after, KEYS, SEED) * n as f64;
            assert!(
                (0.5..1.6).contains(&ratio),
                "{mode} n={n}: moved/ideal {ratio:.3}"
            );
        }
    }
}

/// A tiny deterministic shuffle so the test needs no RNG crate.
fn shuffled(mut v: Vec<Member>, seed: u64) -> Vec<Member> {
    let mut ids = TraceIds::new(seed);
    for i in (1..v.len()).rev() {
        let r = ids.next().map_or(0, |id| {
            u64::from_le_bytes([id[0], id[1], id[2], id[3], id[4], id[5], id[6], id[7]])
        });
        v.swap(i, (r % (i as u64 + 1)) as usize);
    }
    v
}

/// Agent A saw the fleet grow one member at a time and then lose two; agent B started late and
/// resolved the final set at once, in another order, with a duplicate record. Both route 100,000
/// trace IDs identically, in every mode, and their failover tables agree too.
#[test]
fn agents_with_different_histories_agree() {
    for mode in Mode::ALL {
        let all = fleet(mode, 12);
        let final_set: Vec<Member> = all
            .iter()
            .filter(|m| **m != all[4] && **m != all[9])
            .cloned()
            .collect();

        // Agent A: incremental history, rebuilding on every change like a resolver would.
        let mut seen: Vec<Member> = Vec::new();
        let mut a = build(mode, Vec::new());
        for m in &all {
            seen.push(m.clone());
            a = build(mode, seen.clone());
        }
        for gone in [&all[9], &all[4]] {
            seen.retain(|m| m != gone);
            a = build(mode, seen.clone());
        }
        // Agent B: one resolution, shuffled, with a duplicated A record.
        let mut answer = shuffled(final_set.clone(), 99);
        answer.push(final_set[3].clone());
        let b = build(mode, answer);

        assert_eq!(a, b, "{mode}: tables differ");
        for id in TraceIds::new(SEED).take(KEYS) {
            assert_eq!(
                a.member_for_trace(&id).map(Member::endpoint),
                b.member_for_trace(&id).map(Member::endpoint),
                "{mode}"
            );
        }
        let sick = [final_set[0].endpoint(), final_set[7].endpoint()];
        assert_eq!(
            a.failover(sick),
            b.failover([sick[1], sick[0]]),
            "{mode}: failover differs"
        );
    }
}

#[test]
fn jump_static_list_order_is_the_ordinal() {
    // A static list is ordered: its positions are the ordinals, appending only moves keys to the new one.
    let three = Member::static_list(&["c:4317", "a:4317", "b:4317"]);
    let four = Member::static_list(&["c:4317", "a:4317", "b:4317", "d:4317"]);
    let (t3, t4) = (build(Mode::Jump, three), build(Mode::Jump, four));
    for id in TraceIds::new(SEED).take(KEYS) {
        let (b, a) = (t3.member_for_trace(&id), t4.member_for_trace(&id));
        if b.map(Member::endpoint) != a.map(Member::endpoint) {
            assert_eq!(a.map(Member::endpoint), Some("d:4317"));
        }
    }
}

/// Full-size run of the balance check: 1 M trace IDs for every size from 2 to 64.
#[test]
#[ignore = "slow in debug builds; run with --release -- --ignored"]
fn balance_1m_keys_2_to_64_members() {
    for mode in Mode::ALL {
        for n in 2..=64 {
            let b = max_over_mean(&build(mode, fleet(mode, n)), 1_000_000, SEED);
            assert!(b < balance_bound(mode), "{mode} n={n}: max/mean {b:.3}");
        }
    }
}
