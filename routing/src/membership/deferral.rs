//! [`Deferral`]: no decision before a claim can have arrived (§4.4).

use std::collections::VecDeque;
use std::sync::Arc;

use super::{RuleConfig, View};

/// The recent view history of one core: enough to tell whether a trace may have a fragment held
/// elsewhere whose claim is still on its way.
///
/// A claim reaches the owner at most `skew` + one message latency (< `margin`) after the change
/// that made it the owner, because every holder applies every change within `skew` and claims at
/// once. So a trace that starts here is safe to decide on its normal timer only if this gateway
/// owned it under every view that was current during the last `skew`; otherwise its decision
/// waits until `skew + margin` after the last change (or after now, when the evidence is a
/// disagreeing stamp or not owning it at all), never beyond `first_seen + grace`.
#[derive(Clone, Debug)]
pub struct Deferral {
    /// When this core applied its current view (its start counts as the first change).
    applied_at: u64,
    /// When this gateway started: everything it owns then may have moved to it (a join).
    started_at: u64,
    /// Views replaced within the last `skew`, with the instant each was replaced, oldest first.
    previous: VecDeque<(u64, Arc<View>)>,
}

impl Deferral {
    /// A gateway that started at `now`. Its start counts as a change that moved every trace to
    /// it: a gateway joining a running tier owns traces whose old owners are about to claim them.
    pub fn new(now: u64) -> Self {
        Self {
            applied_at: now,
            started_at: now,
            previous: VecDeque::new(),
        }
    }

    /// When this core's current view is settled: every gateway applied the change within `skew`
    /// and its claims took less than `margin / 2` to arrive.
    pub fn settled_at(&self, cfg: &RuleConfig) -> u64 {
        self.applied_at
            .saturating_add(cfg.skew)
            .saturating_add(cfg.margin / 2)
    }

    /// Records that `old` was replaced at `now`.
    pub fn on_view(&mut self, now: u64, old: Arc<View>, cfg: &RuleConfig) {
        self.applied_at = now;
        self.previous.push_back((now, old));
        self.prune(now, cfg);
    }

    /// Drops views replaced `skew` or longer ago.
    fn prune(&mut self, now: u64, cfg: &RuleConfig) {
        while self
            .previous
            .front()
            .is_some_and(|(at, _)| at.saturating_add(cfg.skew) <= now)
        {
            self.previous.pop_front();
        }
    }

    /// True when no trace can be deferred now: no view was applied within `skew` and the start
    /// is older than `skew` ([`Deferral::not_before`] answers `None` for every unstamped trace
    /// this gateway owns).
    pub fn quiet(&mut self, now: u64, cfg: &RuleConfig) -> bool {
        self.prune(now, cfg);
        self.previous.is_empty() && now >= self.started_at.saturating_add(cfg.skew)
    }

    /// The earliest instant the decision of `trace`, first seen at `first_seen` on this gateway
    /// under `view`, may be taken; `None` when its normal deadline (`first_seen + decision_wait`)
    /// is already late enough. `stamp` is the sender's table fingerprint, when it sent one.
    pub fn not_before(
        &mut self,
        now: u64,
        view: &View,
        trace: &[u8; 16],
        first_seen: u64,
        stamp: Option<u64>,
        cfg: &RuleConfig,
    ) -> Option<u64> {
        self.prune(now, cfg);
        let me = view.self_endpoint();
        // Not the owner (a marked span, a hand-over) or the sender sees another table: the
        // disagreement is happening now, so the wait counts from now.
        let from_now = !view.owns(trace) || stamp.is_some_and(|s| s != view.hash());
        let just_started = now < self.started_at.saturating_add(cfg.skew);
        let moved = just_started
            || self
                .previous
                .iter()
                .any(|(_, old)| old.owner_endpoint(trace) != Some(me));
        if !(from_now || moved) {
            return None;
        }
        // Deferred traces wait for `first_seen + grace` (= decision_wait + skew + margin after
        // their start), not only `skew + margin` after this gateway's last change: a second
        // change inside the window can send an older holder's claim to the *next* owner (a
        // resolver may skip the view in between), and this gateway only learns of that change,
        // and re-claims to the same arbiter, up to `skew` later. Found by the model test.
        let wait_until = first_seen.saturating_add(cfg.grace);
        (wait_until > first_seen.saturating_add(cfg.decision_wait)).then_some(wait_until)
    }
}
