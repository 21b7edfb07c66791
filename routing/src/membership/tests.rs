//! Unit tests of the rules, case by case (the model test in `tests/membership_model.rs` checks
//! them together over random histories).

use super::*;
use crate::member::Member;
use crate::mode::Mode;

const MS: u64 = 1_000_000;
const S: u64 = 1_000 * MS;

fn cfg() -> RuleConfig {
    // decision_wait 2 s, skew 1 s, margin 1 s, grace 5 s.
    RuleConfig::try_new(2 * S, S, S, 5 * S).expect("valid timing")
}

fn table(members: &[&str]) -> RoutingTable {
    RoutingTable::build(Mode::Slots, members.iter().map(|m| Member::unordered(*m))).expect("valid")
}

fn view(me: &str, members: &[&str], generation: u64) -> Arc<View> {
    Arc::new(View::plain(me, table(members), generation))
}

fn tid(n: u64) -> [u8; 16] {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&crate::hash::fmix64(n).to_le_bytes());
    id[8..].copy_from_slice(&crate::hash::fmix64(!n).to_le_bytes());
    id
}

/// A trace owned by `owner` under `v`.
fn owned_by(v: &View, owner: &str) -> [u8; 16] {
    owned_by_nth(v, owner, 0)
}

fn owned_by_nth(v: &View, owner: &str, nth: usize) -> [u8; 16] {
    (0..)
        .map(tid)
        .filter(|t| v.owner_endpoint(t).map(|e| &**e) == Some(owner))
        .nth(nth)
        .expect("every member owns some traces")
}

const A: &str = "10.0.0.1:4317";
const B: &str = "10.0.0.2:4317";
const C: &str = "10.0.0.3:4317";

fn fwd() -> Mark {
    Mark::Forward {
        reason: Reason::NotOwner,
    }
}

fn peer(e: &str) -> PeerRef {
    PeerRef::endpoint(Arc::from(e))
}

#[test]
fn config_is_checked() {
    assert_eq!(
        RuleConfig::try_new(2 * S, S, S, 3 * S),
        Err(MembershipError::GraceTooShort {
            grace_ns: 3 * S,
            needed_ns: 4 * S
        })
    );
    assert_eq!(
        RuleConfig::try_new(0, 0, 0, S),
        Err(MembershipError::ZeroDecisionWait)
    );
    assert_eq!(cfg().late_window, cfg().grace);
}

#[test]
fn view_knows_its_owner_and_leaving_members_own_nothing() {
    let v = view(A, &[A, B, C], 1);
    assert_eq!(v.me(), Some(0));
    let t = owned_by(&v, A);
    assert!(v.owns(&t));
    assert_eq!(v.hash(), v.effective().fingerprint());
    let leaving = View::new(
        A,
        table(&[A, B, C]),
        Default::default(),
        [A.to_owned()].into(),
        2,
    );
    assert!(!leaving.owns(&t), "a leaving gateway owns nothing");
    assert_ne!(leaving.hash(), v.hash());
    assert!(leaving.is_member(A));
    let outside = view("10.0.0.9:4317", &[A, B], 1);
    assert_eq!(outside.me(), None);
    assert!((0..100).all(|n| !outside.owns(&tid(n))));
}

#[test]
fn rule_1_holding_beats_ownership() {
    let v = view(A, &[A, B], 1);
    let mut r = Rules::new(cfg(), v.clone(), 0);
    let t = owned_by(&v, B);
    let mut out = Vec::new();
    for held in [
        Held::Pending { first_seen: 0 },
        Held::Decided { kept: true, at: 0 },
    ] {
        assert_eq!(
            r.route(S, &t, held, None, None, &mut out),
            Route::Local { not_before: None }
        );
    }
    assert!(out.is_empty());
}

#[test]
fn rule_2_claims_forward_unmarked_and_hand_over_marked() {
    let v = view(A, &[A, B, C], 1);
    let mut r = Rules::new(cfg(), v.clone(), 0);
    let t = owned_by(&v, A);
    let entry = ClaimEntry {
        trace: t,
        pending: true,
        anchored: false,
        ttl_ms: 1000,
    };
    assert!(r
        .on_claims(0, C, Incarnation(7), &[entry], |_| Held::No)
        .is_empty());
    let mut out = Vec::new();
    let holder = PeerRef {
        endpoint: Arc::from(C),
        incarnation: Some(Incarnation(7)),
    };
    assert_eq!(
        r.route(MS, &t, Held::No, None, None, &mut out),
        Route::Forward {
            to: holder.clone(),
            reason: Reason::Claim
        }
    );
    assert_eq!(
        r.route(MS, &t, Held::No, Some(&fwd()), None, &mut out),
        Route::HandOver { to: holder }
    );
    // A hand-over is terminal: it stays even though a claim names someone else.
    assert!(matches!(
        r.route(MS, &t, Held::No, Some(&Mark::HandOver), None, &mut out),
        Route::Local { .. }
    ));
    // Expired: back to ownership, and the claim counts as used.
    assert!(matches!(
        r.route(S + MS, &t, Held::No, None, None, &mut out),
        Route::Local { .. }
    ));
    assert_eq!(r.counters().claims_expired_used, 1);
    assert!(out.is_empty());
}

#[test]
fn rules_3_4_5_owner_keeps_non_owner_forwards_marked_stays_and_claims() {
    let v = view(A, &[A, B], 1);
    // decision_wait 0.5 s < skew + margin, so the deferral shows.
    let quick = RuleConfig::try_new(S / 2, S, S, 5 * S).expect("valid");
    let mut r = Rules::new(quick, v.clone(), 0);
    let mine = owned_by(&v, A);
    let theirs = owned_by(&v, B);
    let mut out = Vec::new();
    assert_eq!(
        r.route(10 * S, &mine, Held::No, None, None, &mut out),
        Route::Local { not_before: None },
        "rule 3, no change: normal deadline"
    );
    assert_eq!(
        r.route(10 * S, &theirs, Held::No, None, None, &mut out),
        Route::Forward {
            to: peer(B),
            reason: Reason::NotOwner
        },
        "rule 4"
    );
    assert!(out.is_empty());
    // Rule 5: the sender thought we own it. Never forwarded again (no loop); claimed to B.
    for mark in [fwd(), Mark::HandOver] {
        let now = 10 * S;
        let route = r.route(now, &theirs, Held::No, Some(&mark), None, &mut out);
        assert_eq!(
            route,
            Route::Local {
                not_before: Some(now + 5 * S)
            },
            "held without owning: deferred to first_seen + grace"
        );
        let Some(Out::Claims { to, entries }) = out.pop() else {
            panic!("rule 5 claims at once: {out:?}");
        };
        assert_eq!(to, peer(B));
        assert_eq!(entries.len(), 1);
        assert!(entries[0].pending);
        assert_eq!(
            u64::from(entries[0].ttl_ms) * MS,
            cfg().grace + cfg().late_window
        );
    }
}

#[test]
fn a_span_moves_at_most_twice_and_a_forward_never_loops() {
    // Walk a span through three gateways with disagreeing views and claims: whatever the state,
    // a forward is followed by at most a hand-over, and a hand-over by nothing.
    let views = [
        view(A, &[A, B, C], 1),
        view(B, &[A, B], 1),
        view(C, &[B, C], 1),
    ];
    for n in 0..200 {
        let t = tid(n);
        let mut rules: Vec<Rules> = views
            .iter()
            .map(|v| Rules::new(cfg(), v.clone(), 0))
            .collect();
        // Every gateway has a claim naming the next one.
        for (i, r) in rules.iter_mut().enumerate() {
            let next = [A, B, C][(i + 1) % 3];
            let e = ClaimEntry {
                trace: t,
                pending: true,
                anchored: false,
                ttl_ms: 10_000,
            };
            if n % 2 == 0 {
                r.on_claims(0, next, Incarnation(1), &[e], |_| Held::No);
            }
        }
        for start in 0..3 {
            let mut at = start;
            let mut mark: Option<Mark> = None;
            let mut moves = 0;
            loop {
                let mut out = Vec::new();
                let route = rules[at].route(MS, &t, Held::No, mark.as_ref(), None, &mut out);
                let (to, next_mark) = match route {
                    Route::Local { .. } => break,
                    Route::Forward { to, reason } => (to, Mark::Forward { reason }),
                    Route::HandOver { to } => (to, Mark::HandOver),
                };
                assert!(
                    !(matches!(mark, Some(Mark::Forward { .. }))
                        && matches!(next_mark, Mark::Forward { .. })),
                    "forward after forward"
                );
                assert!(
                    !matches!(mark, Some(Mark::HandOver)),
                    "moved after a hand-over"
                );
                moves += 1;
                assert!(moves <= 2, "trace {n}: more than two moves");
                at = [A, B, C]
                    .iter()
                    .position(|e| **e == *to.endpoint)
                    .expect("a member");
                mark = Some(next_mark);
            }
        }
    }
}

#[test]
fn failover_marks_make_the_stand_in_own() {
    let v = view(A, &[A, B, C], 1);
    let mut r = Rules::new(cfg(), v.clone(), 0);
    let mut out = Vec::new();
    let mark = Mark::Failover {
        down: vec![B.to_owned()],
    };
    let failed = v.table().failover([B]);
    // A trace of B that failover gives to A stays here; one it gives to C goes to C.
    for n in 0..400 {
        let t = tid(n);
        if v.owner_endpoint(&t).map(|e| &**e) != Some(B) {
            continue;
        }
        let stand_in = failed.member_for_trace(&t).map(|m| m.endpoint().to_owned());
        let route = r.route(0, &t, Held::No, Some(&mark), None, &mut out);
        match stand_in.as_deref() {
            Some(A) => assert!(matches!(route, Route::Local { .. })),
            Some(C) => assert_eq!(
                route,
                Route::Forward {
                    to: peer(C),
                    reason: Reason::NotOwner
                }
            ),
            other => panic!("failover chose {other:?}"),
        }
    }
    assert!(out.is_empty(), "agent data is not marked: no rule 5");
    assert!(r.failover.len() == 1, "one cached table per down set");
}

#[test]
fn view_changes_claim_every_held_trace_to_its_new_owner_every_time() {
    let v1 = view(A, &[A], 1);
    let mut r = Rules::new(cfg(), v1, 0);
    let v2 = view(A, &[A, B], 2);
    let moved = owned_by(&v2, B);
    let moved_decided = owned_by_nth(&v2, B, 1);
    let old_decided = owned_by_nth(&v2, B, 2);
    let stays = owned_by(&v2, A);
    let now = 3 * S;
    let held = [
        (moved, Held::Pending { first_seen: 2 * S }),
        (
            moved_decided,
            Held::Decided {
                kept: true,
                at: 2 * S,
            },
        ),
        (old_decided, Held::Decided { kept: false, at: 0 }), // decided 3 s ago, window 5 s: claimed
        (stays, Held::Pending { first_seen: 0 }),
    ];
    let out = r.on_view(now, v2, held);
    let [Out::Claims { to, entries }] = out.as_slice() else {
        panic!("one message to B: {out:?}");
    };
    assert_eq!(*to, peer(B));
    let got: Vec<_> = entries
        .iter()
        .map(|e| (e.trace, e.pending, e.ttl_ms))
        .collect();
    assert_eq!(
        got,
        [
            (moved, true, 9_000),          // 2 s + grace 5 s + late 5 s − 3 s
            (moved_decided, false, 4_000), // 2 s + late 5 s − 3 s
            (old_decided, false, 2_000),
        ]
    );
    // A second change that does not move them again re-sends the claims (§4.3).
    let v3 = view(A, &[A, B, C], 3);
    let out = r.on_view(now + S, v3.clone(), held);
    let sent: usize = out
        .iter()
        .map(|o| match o {
            Out::Claims { entries, .. } => entries.len(),
            _ => 0,
        })
        .sum();
    // Every held trace not owned by A under v3 (all still inside their windows at 4 s).
    let expect = held.iter().filter(|(t, _)| !v3.owns(t)).count();
    assert!(expect >= 3, "B kept or C took the three moved traces");
    assert_eq!(sent, expect);
    // Past the late window a decided trace is no longer claimed.
    let v4 = view(A, &[B], 4);
    let out = r.on_view(
        20 * S,
        v4,
        [(moved_decided, Held::Decided { kept: true, at: 0 })],
    );
    assert!(out.is_empty());
}

#[test]
fn claims_cases_a_to_e() {
    let v = view(A, &[A, B, C], 1);
    let mut r = Rules::new(cfg(), v.clone(), 0);
    let e = |n: usize, ttl_ms| ClaimEntry {
        trace: owned_by_nth(&v, A, n),
        pending: true,
        anchored: false,
        ttl_ms,
    };
    // (a) recorded.
    assert!(r
        .on_claims(0, B, Incarnation(1), &[e(0, 1000)], |_| Held::No)
        .is_empty());
    assert_eq!(r.claims().len(), 1);
    // (b) refreshed by the same holder: lives to the new expiry.
    assert!(r
        .on_claims(500 * MS, B, Incarnation(1), &[e(0, 1000)], |_| Held::No)
        .is_empty());
    assert!(r.claims().holder(&e(0, 0).trace, 1400 * MS).is_some());
    // (c) an undecided fragment here goes to the claimant, but only once the view settled
    // (skew + margin / 2 after it was applied; this core started at 0): a stronger claim may
    // still be on its way.
    let held_c = |_: &[u8; 16]| Held::Pending { first_seen: 0 };
    let out = r.on_claims(S, B, Incarnation(1), &[e(1, 10_000)], held_c);
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(r.next_poll(), Some(S + S / 2));
    assert!(r.poll(S, held_c).is_empty());
    let b1 = PeerRef {
        endpoint: Arc::from(B),
        incarnation: Some(Incarnation(1)),
    };
    assert_eq!(
        r.poll(S + S / 2, held_c),
        [Out::HandOver {
            trace: e(1, 0).trace,
            to: b1.clone()
        }]
    );
    assert_eq!(r.next_poll(), None);
    // (d) a decided fragment cannot move: the undecided claimant is sent here instead.
    let decided = |_: &[u8; 16]| Held::Decided { kept: true, at: 0 };
    let out = r.on_claims(2 * S, B, Incarnation(1), &[e(2, 1000)], decided);
    assert_eq!(
        out,
        [Out::Redirect {
            to: b1.clone(),
            trace: e(2, 0).trace,
            holder: peer(A),
            holder_decided: true,
            holder_anchored: false
        }]
    );
    assert_eq!(r.counters().splits_decided_before_claim, 0);
    // Both decided: a split, counted.
    let mut done = e(3, 1000);
    done.pending = false;
    assert!(r
        .on_claims(2 * S, B, Incarnation(1), &[done], decided)
        .is_empty());
    assert_eq!(r.counters().splits_decided_before_claim, 1);
    // The fragment handed to B makes B's claim anchored here: a later pending claim loses to it.
    assert_eq!(r.claims().state(&e(1, 0).trace), (true, true));
    // (e) a second holder of equal rank: the lower endpoint keeps (B < C), whichever came first.
    let c4 = PeerRef {
        endpoint: Arc::from(C),
        incarnation: Some(Incarnation(4)),
    };
    assert!(r
        .on_claims(2 * S, B, Incarnation(1), &[e(4, 1000)], |_| Held::No)
        .is_empty());
    let out = r.on_claims(2 * S, C, Incarnation(4), &[e(4, 1000)], |_| Held::No);
    assert_eq!(
        out,
        [Out::Redirect {
            to: c4.clone(),
            trace: e(4, 0).trace,
            holder: b1.clone(),
            holder_decided: false,
            holder_anchored: false
        }]
    );
    assert_eq!(r.counters().claims_dropped_conflict, 1);
    assert_eq!(r.claims().holder(&e(4, 0).trace, 2 * S), Some(&b1));
    // C first, then B: B still keeps (successive owners must agree whatever order claims came in).
    assert!(r
        .on_claims(2 * S, C, Incarnation(4), &[e(5, 1000)], |_| Held::No)
        .is_empty());
    let out = r.on_claims(2 * S, B, Incarnation(1), &[e(5, 1000)], |_| Held::No);
    assert_eq!(
        out,
        [Out::Redirect {
            to: c4.clone(),
            trace: e(5, 0).trace,
            holder: b1.clone(),
            holder_decided: false,
            holder_anchored: false
        }]
    );
    assert_eq!(r.claims().holder(&e(5, 0).trace, 2 * S), Some(&b1));
    // A newcomer that ranks higher (decided > anchored > pending) wins: the first holder is
    // redirected to it.
    let mut anchored = e(4, 1000);
    anchored.anchored = true;
    let out = r.on_claims(2 * S, C, Incarnation(4), &[anchored], |_| Held::No);
    assert_eq!(
        out,
        [Out::Redirect {
            to: b1,
            trace: e(4, 0).trace,
            holder: c4.clone(),
            holder_decided: false,
            holder_anchored: true
        }]
    );
    assert_eq!(r.claims().holder(&e(4, 0).trace, 2 * S), Some(&c4));
}

#[test]
fn a_holder_that_does_not_own_the_trace_is_no_arbiter() {
    // Views disagree: B thinks A owns t, A thinks B does; both hold a fragment and claim to
    // each other. Neither hands over (they would swap fragments); A records the claim, and
    // arbitrates once a view makes it the owner.
    let v = view(A, &[A, B], 1);
    let mut r = Rules::new(cfg(), v.clone(), 0);
    let t = owned_by(&v, B);
    let entry = ClaimEntry {
        trace: t,
        pending: true,
        anchored: false,
        ttl_ms: 10_000,
    };
    let held = |_: &[u8; 16]| Held::Pending { first_seen: 0 };
    assert!(r.on_claims(0, B, Incarnation(1), &[entry], held).is_empty());
    assert_eq!(r.next_poll(), None);
    // A view that gives t to A (B leaves) makes A the arbiter: the claim is honoured once settled.
    let out = r.on_view(S, view(A, &[A], 2), [(t, Held::Pending { first_seen: 0 })]);
    assert!(out.is_empty());
    let at = r.next_poll().expect("scheduled");
    assert!(
        at < 2 * S,
        "before the fragment's own deadline (first_seen + decision_wait)"
    );
    assert!(matches!(
        r.poll(at, held).as_slice(),
        [Out::HandOver { .. }]
    ));
}

#[test]
fn a_view_that_takes_the_trace_away_carries_out_the_chosen_hand_over() {
    // A owns t, holds a young fragment and B's claim: it chose B and holds the hand-over back
    // until its view settles. A view that gives t to B makes B the arbiter; A's choice stands, is
    // carried out at once, and A claims nothing (claiming let B order the opposite hand-over).
    let v = view(A, &[A, B], 1);
    let mut r = Rules::new(cfg(), v.clone(), 0);
    let t = owned_by(&v, A); // and B owns every trace once A leaves
    let entry = ClaimEntry {
        trace: t,
        pending: true,
        anchored: false,
        ttl_ms: 10_000,
    };
    let held = |_: &[u8; 16]| Held::Pending { first_seen: 0 };
    assert!(r.on_claims(0, B, Incarnation(1), &[entry], held).is_empty());
    assert!(r.next_poll().is_some(), "held back until settled");
    let out = r.on_view(
        S / 2,
        view(A, &[B], 2),
        [(t, Held::Pending { first_seen: 0 })],
    );
    assert_eq!(
        out,
        [Out::HandOver {
            trace: t,
            to: PeerRef {
                endpoint: Arc::from(B),
                incarnation: Some(Incarnation(1)),
            },
        }]
    );
    assert_eq!(r.next_poll(), None, "released once");
    assert_eq!(r.claims().state(&t), (true, true), "B is anchored now");
}

#[test]
fn a_decided_holder_that_bounces_a_redirect_tells_the_owner() {
    // A decided t; C (an arbiter that had not heard of it) redirects A to B. A sends B here and
    // claims the decided trace to its owner, so the owner stops naming B.
    let v = view(A, &[A, B, C], 1);
    let mut r = Rules::new(cfg(), v.clone(), 0);
    let t = owned_by(&v, C);
    let decided = Held::Decided { kept: true, at: S };
    let out = r.on_redirect(2 * S, &t, peer(B), false, false, decided);
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(matches!(&out[0], Out::Redirect { to, holder_decided: true, .. } if to == &peer(B)));
    match &out[1] {
        Out::Claims { to, entries } => {
            assert_eq!(to, &peer(C));
            assert_eq!(entries.len(), 1);
            assert!(!entries[0].pending);
            assert_eq!(entries[0].trace, t);
        }
        other => panic!("expected a claim, got {other:?}"),
    }
}

#[test]
fn a_hand_over_meeting_a_decided_claim_follows_it() {
    // B told A it decided t (a redirect); a hand-over of t that reaches A afterwards, while A
    // holds nothing, would start a second decision point: it follows the claim to B.
    let v = view(A, &[A, B, C], 1);
    let mut r = Rules::new(cfg(), v.clone(), 0);
    let t = owned_by(&v, C);
    assert!(r
        .on_redirect(S, &t, peer(B), true, false, Held::No)
        .is_empty());
    let mut out = Vec::new();
    let route = r.route(S, &t, Held::No, Some(&Mark::HandOver), None, &mut out);
    assert_eq!(route, Route::HandOver { to: peer(B) });
    assert!(out.is_empty());
    // A pending claimant does not attract hand-overs: they stay terminal.
    let u = owned_by_nth(&v, C, 1);
    assert!(r
        .on_redirect(S, &u, peer(B), false, false, Held::No)
        .is_empty());
    let route = r.route(S, &u, Held::No, Some(&Mark::HandOver), None, &mut out);
    assert!(matches!(route, Route::Local { .. }), "{route:?}");
}

#[test]
fn a_hand_over_follows_an_anchored_keeper_only_to_a_lower_endpoint() {
    // B learnt that A (a lower endpoint) keeps t anchored; a hand-over of t reaching B while B
    // holds nothing goes on to A instead of starting a fragment that would pull A's over.
    let v = view(B, &[A, B, C], 1);
    let mut b = Rules::new(cfg(), v.clone(), 0);
    let t = owned_by(&v, C);
    assert!(b
        .on_redirect(S, &t, peer(A), false, true, Held::No)
        .is_empty());
    let mut out = Vec::new();
    let route = b.route(S, &t, Held::No, Some(&Mark::HandOver), None, &mut out);
    assert_eq!(route, Route::HandOver { to: peer(A) });
    // A, naming B the same way, keeps it: passes only go down, so two gateways that handed
    // their fragments to each other cannot pass them back and forth.
    let mut a = Rules::new(cfg(), view(A, &[A, B, C], 1), 0);
    assert!(a
        .on_redirect(S, &t, peer(B), false, true, Held::No)
        .is_empty());
    let route = a.route(S, &t, Held::No, Some(&Mark::HandOver), None, &mut out);
    assert!(matches!(route, Route::Local { .. }), "{route:?}");
}

#[test]
fn an_anchored_fragment_is_not_redirected_to_an_unanchored_one() {
    // A received a hand-over of t (anchored); the owner C, ranking a claim A sent before that,
    // redirects A to B (pending, unanchored). A keeps t, sends B here and tells C it is anchored.
    let v = view(A, &[A, B, C], 1);
    let mut r = Rules::new(cfg(), v.clone(), 0);
    let t = owned_by(&v, C);
    let mut out = Vec::new();
    let route = r.route(S, &t, Held::No, Some(&Mark::HandOver), None, &mut out);
    assert!(matches!(route, Route::Local { .. }));
    let held = Held::Pending { first_seen: S };
    let out = r.on_redirect(S + 100 * MS, &t, peer(B), false, false, held);
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(matches!(
        &out[0],
        Out::Redirect { to, holder_anchored: true, holder_decided: false, .. } if to == &peer(B)
    ));
    assert!(matches!(
        &out[1],
        Out::Claims { to, entries } if to == &peer(C) && entries[0].anchored && entries[0].pending
    ));
    // An anchored holder does move to another anchored one (the owner's tie-break chose it).
    let out = r.on_redirect(S + 200 * MS, &t, peer(B), false, true, held);
    assert!(matches!(out.as_slice(), [Out::HandOver { .. }]), "{out:?}");
}

#[test]
fn redirect_hands_the_fragment_to_the_first_holder() {
    let v = view(C, &[A, B, C], 1);
    let mut r = Rules::new(cfg(), v.clone(), 0);
    let t = owned_by(&v, A);
    let out = r.on_redirect(
        0,
        &t,
        peer(B),
        false,
        false,
        Held::Pending { first_seen: 0 },
    );
    assert_eq!(
        out,
        [Out::HandOver {
            trace: t,
            to: peer(B)
        }]
    );
    let mut o = Vec::new();
    assert_eq!(
        r.route(MS, &t, Held::No, None, None, &mut o),
        Route::Forward {
            to: peer(B),
            reason: Reason::Claim
        },
        "later spans follow the holder"
    );
}

#[test]
fn claims_expire_and_restarts_drop_them() {
    let v = view(A, &[A, B], 1);
    let mut r = Rules::new(cfg(), v.clone(), 0);
    let t = owned_by(&v, A);
    let u = owned_by_nth(&v, A, 1);
    let entry = |trace| ClaimEntry {
        trace,
        pending: false,
        anchored: false,
        ttl_ms: 100,
    };
    r.on_claims(0, B, Incarnation(1), &[entry(t)], |_| Held::No);
    r.on_claims(0, B, Incarnation(1), &[entry(u)], |_| Held::No);
    // A restarted B (same endpoint, higher incarnation) drops the old process's claims.
    r.on_claims(50 * MS, B, Incarnation(2), &[], |_| Held::No);
    assert!(r.claims().is_empty());
    assert_eq!(r.counters().claims_dropped_incarnation, 2);
    // A late message of the old process is ignored.
    r.on_claims(60 * MS, B, Incarnation(1), &[entry(t)], |_| Held::No);
    assert!(r.claims().is_empty());
    // Expiry, unused.
    r.on_claims(60 * MS, B, Incarnation(2), &[entry(t)], |_| Held::No);
    let mut out = Vec::new();
    r.route(160 * MS, &t, Held::No, None, None, &mut out);
    assert_eq!(r.counters().claims_expired_unused, 1);
    // Peer down / drained.
    r.on_claims(0, B, Incarnation(2), &[entry(t)], |_| Held::No);
    r.drop_peer(B, DropReason::PeerDown);
    assert!(r.claims().is_empty());
    assert_eq!(r.counters().claims_dropped_peer_down, 1);
}

#[test]
fn deferral_holds_moved_traces_for_grace() {
    let v1 = view(A, &[A, B], 1);
    let mut r = Rules::new(cfg(), v1.clone(), 0);
    let mut out = Vec::new();
    let t = owned_by(&v1, A);
    // The start is a change (a joiner), so only after `skew` do A's own traces decide as usual.
    assert_eq!(
        r.route(S / 2, &t, Held::No, None, None, &mut out),
        Route::Local {
            not_before: Some(S / 2 + 5 * S)
        }
    );
    assert_eq!(
        r.route(S + S, &t, Held::No, None, None, &mut out),
        Route::Local { not_before: None }
    );
    // B leaves at 10 s: its traces move to A and wait for first_seen + grace while the change
    // is younger than `skew`; A's own traces decide as usual.
    let change = 10 * S;
    r.on_view(change, view(A, &[A], 2), []);
    let moved = owned_by(&v1, B);
    let now = change + 100 * MS;
    assert_eq!(
        r.route(now, &moved, Held::No, None, None, &mut out),
        Route::Local {
            not_before: Some(now + 5 * S)
        }
    );
    assert_eq!(
        r.route(now, &t, Held::No, None, None, &mut out),
        Route::Local { not_before: None },
        "not moved"
    );
    // A different stamp defers even a trace that did not move.
    assert_eq!(
        r.route(now, &t, Held::No, None, Some(0xdead), &mut out),
        Route::Local {
            not_before: Some(now + 5 * S)
        }
    );
    // Once the change is `skew` old, moved traces decide as usual.
    assert_eq!(
        r.route(change + S, &moved, Held::No, None, None, &mut out),
        Route::Local { not_before: None }
    );
    assert_eq!(r.counters().decisions_deferred, 3);
}

#[test]
fn a_joining_gateway_defers_during_its_first_skew() {
    // Its start is a change: the traces it owns may have older fragments on their old owners.
    let v = view(A, &[A, B], 1);
    let mut r = Rules::new(cfg(), v.clone(), 7 * S);
    let t = owned_by(&v, A);
    let mut out = Vec::new();
    assert_eq!(
        r.route(7 * S, &t, Held::No, None, None, &mut out),
        Route::Local {
            not_before: Some(12 * S)
        }
    );
    assert_eq!(
        r.route(8 * S, &t, Held::No, None, None, &mut out),
        Route::Local { not_before: None }
    );
}

#[test]
fn deferral_never_exceeds_grace() {
    let c = RuleConfig::try_new(S, 3 * S, S, 5 * S).expect("valid");
    let v = view(A, &[A, B], 1);
    let mut r = Rules::new(c, v.clone(), 0);
    let theirs = owned_by(&v, B);
    let mut out = Vec::new();
    let Route::Local {
        not_before: Some(nb),
    } = r.route(7 * S, &theirs, Held::No, Some(&fwd()), None, &mut out)
    else {
        panic!("deferred");
    };
    assert_eq!(nb, 7 * S + c.grace);
}

#[test]
fn dedup_counts_retries() {
    let v = view(A, &[A, B], 1);
    let mut r = Rules::new(cfg(), v, 0);
    assert!(r.accept_batch(B, Incarnation(1), 0, 1));
    assert!(!r.accept_batch(B, Incarnation(1), 0, 1));
    assert_eq!(r.counters().duplicate_batches, 1);
}

#[test]
fn steady_only_without_claims_and_outside_the_skew_of_a_change() {
    let v = view(A, &[A, B], 1);
    let c = cfg();
    let mut r = Rules::new(c, v.clone(), 0);
    // The start is a change: not steady until `skew` has passed.
    assert!(!r.steady(0));
    let t0 = c.skew + 1;
    assert!(r.steady(t0));
    // Whenever steady, an unmarked run of an owned trace is local with no deferral.
    let mine = owned_by(&v, A);
    let mut out = Vec::new();
    assert_eq!(
        r.route(t0, &mine, Held::No, None, None, &mut out),
        Route::Local { not_before: None }
    );
    assert!(out.is_empty());
    // A claim makes it unsteady until the claim expires.
    let theirs = owned_by(&v, A);
    let claim = ClaimEntry {
        trace: theirs,
        pending: true,
        anchored: false,
        ttl_ms: 1_000,
    };
    let _ = r.on_claims(t0, B, Incarnation(1), &[claim], |_| Held::No);
    assert!(!r.steady(t0));
    // So does a view change, for `skew`.
    let mut r = Rules::new(c, v, 0);
    let t1 = c.skew + 1;
    let _ = r.on_view(t1, view(A, &[A, B, C], 2), Vec::new());
    assert!(!r.steady(t1));
    assert!(r.steady(t1 + c.skew + 1));
}
