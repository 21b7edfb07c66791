//! A hashed timer wheel: O(1) schedule, O(1) amortised expiry.
//!
//! Entries are `(slot, generation)` pairs in the bucket of their deadline tick. Rescheduling (the
//! root span arrived) pushes a second entry; the stale one is recognised at expiry because the
//! trace's recorded deadline no longer equals the bucket's tick (lazy deletion, no search).
//! Buckets keep their allocations, so steady-state scheduling does not allocate.
//!
//! The wheel also answers when the next decision is due ([`TimerWheel::next_due_ns`]): it counts,
//! per tick, the entries that still stand (`LiveTicks`); the owner cancels an entry when its
//! trace stops waiting for it (decided, evicted, or rescheduled earlier). The buckets alone cannot
//! say: the first non-empty one may hold only stale entries or those of a later rotation (a
//! deadline more than one rotation ahead, e.g. after the wheel sat idle).

use std::collections::VecDeque;

/// One scheduled decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerEntry {
    /// Ring slot of the trace.
    pub slot: u32,
    /// Low bits of the trace's sequence number (detects a recycled slot).
    pub generation: u32,
    /// Tick at which it is due.
    pub deadline: u64,
}

/// The wheel.
#[derive(Debug)]
pub struct TimerWheel {
    buckets: Vec<Vec<TimerEntry>>,
    mask: u64,
    tick_ns: u64,
    /// Last tick processed.
    current: u64,
    /// Standing entries per deadline tick, for [`Self::next_due_ns`].
    live: LiveTicks,
}

impl TimerWheel {
    /// A wheel of `tick_ns` resolution covering at least `horizon_ns` in one rotation (longer
    /// deadlines still work; they just stay in their bucket for extra rotations).
    pub fn new(tick_ns: u64, horizon_ns: u64, now_ns: u64) -> Self {
        let tick_ns = tick_ns.max(1);
        let needed = (horizon_ns / tick_ns + 2).clamp(16, 1 << 16) as usize;
        let size = needed.next_power_of_two();
        TimerWheel {
            buckets: (0..size).map(|_| Vec::new()).collect(),
            mask: size as u64 - 1,
            tick_ns,
            current: now_ns / tick_ns,
            live: LiveTicks::default(),
        }
    }

    /// The tick a deadline at `at_ns` falls due (rounded up, never in the past).
    pub fn tick_for(&self, at_ns: u64) -> u64 {
        at_ns.div_ceil(self.tick_ns).max(self.current + 1)
    }

    /// Wall time (ns) from which [`Self::advance`] hands out the earliest entry that still
    /// stands (scheduled and not cancelled): the start of its deadline tick. `None` when none
    /// stands. O(1).
    pub fn next_due_ns(&self) -> Option<u64> {
        self.live
            .first()
            .map(|tick| tick.saturating_mul(self.tick_ns))
    }

    /// Schedules an entry; it stands until [`Self::cancel`]led.
    pub fn schedule(&mut self, entry: TimerEntry) {
        self.buckets[(entry.deadline & self.mask) as usize].push(entry);
        self.live.add(entry.deadline);
    }

    /// Notes that one entry scheduled for `deadline` no longer stands: its trace was decided
    /// (by this entry firing or otherwise), evicted, or rescheduled. The entry itself stays in
    /// its bucket until it expires (lazy deletion); only [`Self::next_due_ns`] forgets it.
    pub fn cancel(&mut self, deadline: u64) {
        self.live.remove(deadline);
    }

    /// Moves time to `now_ns` and hands every due entry to `fire` (stale ones included: the
    /// caller checks them). Entries not yet due stay.
    pub fn advance(&mut self, now_ns: u64, mut fire: impl FnMut(TimerEntry)) {
        let target = now_ns / self.tick_ns;
        if target <= self.current {
            return;
        }
        let steps = (target - self.current).min(self.mask + 1);
        for step in 1..=steps {
            let idx = ((self.current + step) & self.mask) as usize;
            let mut bucket = std::mem::take(&mut self.buckets[idx]);
            bucket.retain(|e| {
                if e.deadline <= target {
                    fire(*e);
                    false
                } else {
                    true
                }
            });
            // Put the (possibly emptied) vector back to keep its allocation.
            if self.buckets[idx].is_empty() {
                self.buckets[idx] = bucket;
            } else {
                self.buckets[idx].append(&mut bucket);
            }
        }
        self.current = target;
    }

    /// Every entry still scheduled, in no particular order (for shutdown).
    pub fn drain_all(&mut self, mut fire: impl FnMut(TimerEntry)) {
        for bucket in self.buckets.iter_mut() {
            bucket.drain(..).for_each(&mut fire);
        }
    }

    /// Heap bytes held by the buckets.
    pub fn heap_bytes(&self) -> usize {
        self.buckets
            .iter()
            .map(|b| b.capacity() * std::mem::size_of::<TimerEntry>())
            .sum::<usize>()
            + self.buckets.capacity() * std::mem::size_of::<Vec<TimerEntry>>()
            + self.live.heap_bytes()
    }
}

/// How many standing entries each deadline tick holds, in tick order.
///
/// A sorted deque rather than a map: deadlines are scheduled mostly in increasing order
/// (arrival plus a constant wait) and cancelled mostly from the earliest (as they fire), so
/// both ends are O(1); a deadline moved earlier by a root span, or one out of order after the
/// clock stepped back, is found by binary search (a new tick inside shifts the shorter side).
#[derive(Debug, Default)]
struct LiveTicks {
    /// `(tick, standing entries)`, ticks strictly increasing. The ends never count 0 (emptied
    /// ends are popped); an emptied tick inside stays until it reaches an end, so the length is
    /// at most the ticks between the earliest and the latest standing deadline.
    counts: VecDeque<(u64, u32)>,
}

impl LiveTicks {
    fn add(&mut self, tick: u64) {
        match self.counts.back_mut() {
            Some((t, n)) if *t == tick => *n = n.saturating_add(1),
            Some((t, _)) if *t > tick => {
                let at = self.counts.partition_point(|(t, _)| *t < tick);
                match self.counts.get_mut(at) {
                    Some((t, n)) if *t == tick => *n = n.saturating_add(1),
                    _ => self.counts.insert(at, (tick, 1)),
                }
            }
            _ => self.counts.push_back((tick, 1)),
        }
    }

    fn remove(&mut self, tick: u64) {
        let at = match self.counts.front() {
            Some((t, _)) if *t == tick => 0,
            _ => self.counts.partition_point(|(t, _)| *t < tick),
        };
        match self.counts.get_mut(at) {
            Some((t, n)) if *t == tick && *n > 0 => *n -= 1,
            _ => debug_assert!(
                false,
                "cancelled an entry at tick {tick} that was not standing"
            ),
        }
        while self.counts.front().is_some_and(|(_, n)| *n == 0) {
            self.counts.pop_front();
        }
        while self.counts.back().is_some_and(|(_, n)| *n == 0) {
            self.counts.pop_back();
        }
    }

    fn first(&self) -> Option<u64> {
        self.counts.front().map(|(t, _)| *t)
    }

    fn heap_bytes(&self) -> usize {
        self.counts.capacity() * std::mem::size_of::<(u64, u32)>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_at_deadline_not_before() {
        let mut w = TimerWheel::new(100, 1_000, 0);
        let d = w.tick_for(550);
        assert_eq!(d, 6);
        w.schedule(TimerEntry {
            slot: 1,
            generation: 0,
            deadline: d,
        });
        let mut fired = Vec::new();
        w.advance(599, |e| fired.push(e.slot));
        assert!(fired.is_empty());
        w.advance(600, |e| fired.push(e.slot));
        assert_eq!(fired, vec![1]);
    }

    #[test]
    fn long_deadlines_survive_rotations_and_big_jumps_fire_everything() {
        let mut w = TimerWheel::new(1, 10, 0);
        let far = 100;
        w.schedule(TimerEntry {
            slot: 7,
            generation: 0,
            deadline: far,
        });
        w.schedule(TimerEntry {
            slot: 8,
            generation: 0,
            deadline: 3,
        });
        let mut fired = Vec::new();
        w.advance(50, |e| fired.push(e.slot));
        assert_eq!(fired, vec![8]);
        w.advance(10_000, |e| fired.push(e.slot));
        assert_eq!(fired, vec![8, 7]);
    }

    fn entry(slot: u32, deadline: u64) -> TimerEntry {
        TimerEntry {
            slot,
            generation: 0,
            deadline,
        }
    }

    #[test]
    fn next_due_is_the_earliest_standing_deadline_not_the_first_bucket() {
        let mut w = TimerWheel::new(100, 1_000, 0);
        assert_eq!(w.next_due_ns(), None);
        // A deadline several rotations ahead (16 buckets) sits in bucket 4, before bucket 9.
        w.schedule(entry(1, 100 + 4));
        w.schedule(entry(2, 9));
        assert_eq!(w.next_due_ns(), Some(900));
        // Rescheduled earlier: the old entry stays in its bucket but no longer counts.
        w.schedule(entry(2, 7));
        w.cancel(9);
        assert_eq!(w.next_due_ns(), Some(700));
        let mut fired = Vec::new();
        w.advance(699, |e| fired.push(e));
        assert!(fired.is_empty());
        w.advance(700, |e| fired.push(e));
        assert_eq!(fired, vec![entry(2, 7)]);
        w.cancel(7);
        assert_eq!(w.next_due_ns(), Some(10_400));
        w.cancel(104);
        assert_eq!(w.next_due_ns(), None);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Schedule { after_ns: u64 },
        CancelNth(usize),
        Advance { ns: u64 },
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            3 => (1u64..6_000).prop_map(|after_ns| Op::Schedule { after_ns }),
            1 => (0usize..64).prop_map(Op::CancelNth),
            2 => (0u64..3_000).prop_map(|ns| Op::Advance { ns }),
        ]
    }

    /// Advances `w` to `to_ns` and cancels the standing entries it hands out, as the engine
    /// does when it decides their traces; returns how many there were.
    fn fire(w: &mut TimerWheel, standing: &mut Vec<TimerEntry>, to_ns: u64) -> usize {
        let mut fired = Vec::new();
        w.advance(to_ns, |e| fired.push(e));
        let mut decided = 0;
        for e in fired {
            if let Some(i) = standing.iter().position(|s| *s == e) {
                standing.remove(i);
                w.cancel(e.deadline);
                decided += 1;
            }
        }
        decided
    }

    proptest::proptest! {
        /// Against a list of standing entries: `next_due_ns` is the start of the earliest
        /// standing deadline's tick, and advancing to just before it hands out no standing
        /// entry, to it at least one (stale ones may come out any time).
        #[test]
        fn next_due_matches_the_standing_entries(
            ops in proptest::collection::vec(op(), 1..200),
        ) {
            const TICK: u64 = 100;
            let mut w = TimerWheel::new(TICK, 1_000, 0);
            let (mut now, mut next_slot) = (0u64, 0u32);
            let mut standing: Vec<TimerEntry> = Vec::new();
            for op in ops {
                match op {
                    Op::Schedule { after_ns } => {
                        // Up to 60 ticks ahead: several rotations of the 16 buckets.
                        let e = entry(next_slot, w.tick_for(now + after_ns));
                        next_slot += 1;
                        w.schedule(e);
                        standing.push(e);
                    }
                    Op::CancelNth(i) if !standing.is_empty() => {
                        let e = standing.remove(i % standing.len());
                        w.cancel(e.deadline);
                    }
                    Op::CancelNth(_) => {}
                    Op::Advance { ns } => {
                        let target = now + ns;
                        match w.next_due_ns() {
                            Some(at) if at > now && at <= target => {
                                proptest::prop_assert_eq!(fire(&mut w, &mut standing, at - 1), 0);
                                proptest::prop_assert!(fire(&mut w, &mut standing, at) > 0);
                                fire(&mut w, &mut standing, target);
                            }
                            _ => {
                                let before = w.next_due_ns();
                                let fired = fire(&mut w, &mut standing, target);
                                proptest::prop_assert_eq!(fired > 0, before.is_some_and(|at| at <= target));
                            }
                        }
                        now = target;
                    }
                }
                let want = standing.iter().map(|e| e.deadline * TICK).min();
                proptest::prop_assert_eq!(w.next_due_ns(), want);
            }
        }
    }
}
