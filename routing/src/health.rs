//! Fall/rise hysteresis over probe results (docs/membership-design.md §8), sans-IO: the caller
//! probes, this decides when a member is down or up again.
//!
//! A member goes down after `fall` consecutive failures and comes back after `rise` consecutive
//! successes, and not before `quarantine` after the failure that took it down: a gateway that
//! answers a probe between two stalls must not flap traffic back and forth.

use std::collections::BTreeMap;

/// One member's probe history.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct State {
    down: bool,
    /// Consecutive failures (while up) or successes (while down).
    run: u32,
    /// When the member went down (ns on the caller's clock).
    since: u64,
}

/// A change [`Hysteresis::record`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    /// The member is now considered down.
    Down,
    /// The member is up again.
    Up,
}

/// The hysteresis over a set of members, keyed by endpoint.
#[derive(Clone, Debug)]
pub struct Hysteresis {
    fall: u32,
    rise: u32,
    quarantine_ns: u64,
    members: BTreeMap<String, State>,
}

impl Hysteresis {
    /// `fall` and `rise` of at least 1 (0 counts as 1).
    pub fn new(fall: u32, rise: u32, quarantine_ns: u64) -> Self {
        Self {
            fall: fall.max(1),
            rise: rise.max(1),
            quarantine_ns,
            members: BTreeMap::new(),
        }
    }

    /// Records one probe of `endpoint` at `now`; returns the transition it caused, if any.
    pub fn record(&mut self, endpoint: &str, ok: bool, now: u64) -> Option<Transition> {
        let s = match self.members.get_mut(endpoint) {
            Some(s) => s,
            None => self.members.entry(endpoint.to_owned()).or_default(),
        };
        match (s.down, ok) {
            (false, true) => s.run = 0,
            (false, false) => {
                s.run += 1;
                if s.run >= self.fall {
                    *s = State {
                        down: true,
                        run: 0,
                        since: now,
                    };
                    return Some(Transition::Down);
                }
            }
            (true, false) => s.run = 0,
            (true, true) => {
                s.run += 1;
                let quarantined = now.saturating_sub(s.since) < self.quarantine_ns;
                if s.run >= self.rise && !quarantined {
                    *s = State::default();
                    return Some(Transition::Up);
                }
            }
        }
        None
    }

    /// Forgets members not in `endpoints` (they left the table); true if a down one was among them.
    pub fn retain(&mut self, endpoints: &[&str]) -> bool {
        let before = self.down().count();
        self.members.retain(|e, _| endpoints.contains(&e.as_str()));
        self.down().count() != before
    }

    /// The members considered down.
    pub fn down(&self) -> impl Iterator<Item = &str> {
        self.members
            .iter()
            .filter(|(_, s)| s.down)
            .map(|(e, _)| e.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn down_after_fall_failures_in_a_row_up_after_rise_successes() {
        let mut h = Hysteresis::new(2, 2, 0);
        assert_eq!(h.record("a", false, 1), None);
        assert_eq!(h.record("a", true, 2), None, "a success resets the count");
        assert_eq!(h.record("a", false, 3), None);
        assert_eq!(h.record("a", false, 4), Some(Transition::Down));
        assert_eq!(h.down().collect::<Vec<_>>(), ["a"]);
        assert_eq!(h.record("a", true, 5), None);
        assert_eq!(h.record("a", false, 6), None, "a failure resets the rise");
        assert_eq!(h.record("a", true, 7), None);
        assert_eq!(h.record("a", true, 8), Some(Transition::Up));
        assert_eq!(h.down().count(), 0);
    }

    #[test]
    fn quarantine_holds_a_member_down_however_well_it_answers() {
        let mut h = Hysteresis::new(1, 1, 100);
        assert_eq!(h.record("a", false, 1_000), Some(Transition::Down));
        assert_eq!(h.record("a", true, 1_050), None);
        assert_eq!(h.record("a", true, 1_100), Some(Transition::Up));
    }

    #[test]
    fn members_that_leave_are_forgotten() {
        let mut h = Hysteresis::new(1, 1, 0);
        h.record("a", false, 1);
        h.record("b", true, 1);
        assert!(!h.retain(&["a", "b"]));
        assert!(h.retain(&["b"]), "a was down and left");
        assert_eq!(h.down().count(), 0);
    }
}
