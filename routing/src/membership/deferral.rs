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
#[derive(Clone, Debug, Default)]
pub struct Deferral {
    /// When this core applied its current view; `None` before the first change.
    applied_at: Option<u64>,
    /// Views replaced within the last `skew`, with the instant each was replaced, oldest first.
    previous: VecDeque<(u64, Arc<View>)>,
}

impl Deferral {
    /// No history: the first view is not a change (nothing can be held elsewhere yet that this
    /// gateway's claims would not also reach).
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `old` was replaced at `now`.
    pub fn on_view(&mut self, now: u64, old: Arc<View>, cfg: &RuleConfig) {
        self.applied_at = Some(now);
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
        let moved = self
            .previous
            .iter()
            .any(|(_, old)| old.owner_endpoint(trace) != Some(me));
        let from = if from_now {
            now
        } else if moved {
            self.applied_at.unwrap_or(now)
        } else {
            return None;
        };
        let wait_until = from
            .saturating_add(cfg.skew)
            .saturating_add(cfg.margin)
            .min(first_seen.saturating_add(cfg.grace));
        (wait_until > first_seen.saturating_add(cfg.decision_wait)).then_some(wait_until)
    }
}
