//! A hashed timer wheel: O(1) schedule, O(1) amortised expiry.
//!
//! Entries are `(slot, generation)` pairs in the bucket of their deadline tick. Rescheduling (the
//! root span arrived) pushes a second entry; the stale one is recognised at expiry because the
//! trace's recorded deadline no longer equals the bucket's tick (lazy deletion, no search).
//! Buckets keep their allocations, so steady-state scheduling does not allocate.

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
        }
    }

    /// The tick a deadline at `at_ns` falls due (rounded up, never in the past).
    pub fn tick_for(&self, at_ns: u64) -> u64 {
        at_ns.div_ceil(self.tick_ns).max(self.current + 1)
    }

    /// Wall time (ns) at which the next tick becomes due.
    pub fn next_tick_ns(&self) -> u64 {
        (self.current + 1).saturating_mul(self.tick_ns)
    }

    /// Schedules an entry.
    pub fn schedule(&mut self, entry: TimerEntry) {
        self.buckets[(entry.deadline & self.mask) as usize].push(entry);
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
}
