//! [`Dedup`]: drops retried forwards and hand-overs (§4.5).

use std::collections::HashMap;
use std::sync::Arc;

use super::Incarnation;

/// How many sequence numbers below the highest one each sender core is remembered for.
pub const DEDUP_WINDOW: u64 = 1024;

/// Words in the window bitmap.
const WORDS: usize = (DEDUP_WINDOW / 64) as usize;

/// The window of one sender core: bit `k` set ↔ sequence `highest − k` was accepted.
#[derive(Clone, Debug)]
struct Window {
    /// The incarnation the sequence numbers belong to.
    incarnation: Incarnation,
    /// The highest sequence accepted.
    highest: u64,
    /// Accepted sequences at and below `highest`.
    bits: [u64; WORDS],
}

impl Window {
    fn new(incarnation: Incarnation, seq: u64) -> Self {
        let mut bits = [0; WORDS];
        bits[0] = 1;
        Self {
            incarnation,
            highest: seq,
            bits,
        }
    }

    /// Moves the window up by `n` sequence numbers (bit k → bit k + n).
    fn shift(&mut self, n: u64) {
        if n >= DEDUP_WINDOW {
            self.bits = [0; WORDS];
            return;
        }
        let words = (n / 64) as usize;
        let bits = (n % 64) as u32;
        for i in (0..WORDS).rev() {
            let lo = i.checked_sub(words).map_or(0, |s| self.bits[s]);
            let carry = match i.checked_sub(words + 1) {
                Some(s) if bits > 0 => self.bits[s] >> (64 - bits),
                _ => 0,
            };
            self.bits[i] = (lo << bits) | carry;
        }
    }

    fn accept(&mut self, seq: u64) -> bool {
        if seq > self.highest {
            self.shift(seq - self.highest);
            self.highest = seq;
            self.bits[0] |= 1;
            return true;
        }
        let k = self.highest - seq;
        if k >= DEDUP_WINDOW {
            // Older than the window: it cannot be told apart from a retry, and a retry this late
            // is far more likely than a first delivery 1024 batches late. Dropping it is counted.
            return false;
        }
        let (word, bit) = ((k / 64) as usize, k % 64);
        let seen = self.bits[word] & (1 << bit) != 0;
        self.bits[word] |= 1 << bit;
        !seen
    }
}

/// Per-sender sequence windows: `(endpoint, sender core)` → highest sequence and a
/// [`DEDUP_WINDOW`]-entry bitmap, for the sender's current incarnation.
#[derive(Clone, Debug, Default)]
pub struct Dedup {
    /// Per sender endpoint, one window per sender core (indexed by core).
    senders: HashMap<Arc<str>, Vec<Option<Window>>>,
}

impl Dedup {
    /// Nothing seen.
    pub fn new() -> Self {
        Self::default()
    }

    /// True the first time `(endpoint, incarnation, core, seq)` is seen; false for a retry of an
    /// accepted batch, a batch older than the window, or a batch of an older incarnation than one
    /// already seen (that process is gone). A newer incarnation starts a fresh window.
    pub fn accept(
        &mut self,
        endpoint: &str,
        incarnation: Incarnation,
        core: u16,
        seq: u64,
    ) -> bool {
        // `get_mut` by `&str` first: the steady state is a known sender and allocates nothing.
        let cores = match self.senders.get_mut(endpoint) {
            Some(cores) => cores,
            None => self.senders.entry(Arc::from(endpoint)).or_default(),
        };
        let core = usize::from(core);
        if cores.len() <= core {
            cores.resize(core + 1, None);
        }
        match &mut cores[core] {
            Some(w) if w.incarnation == incarnation => w.accept(seq),
            Some(w) if w.incarnation > incarnation => false,
            slot => {
                *slot = Some(Window::new(incarnation, seq));
                true
            }
        }
    }

    /// Forgets a sender that left (bounds memory across many rolling restarts).
    pub fn forget(&mut self, endpoint: &str) {
        self.senders.remove(endpoint);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_are_dropped_and_reordering_is_accepted() {
        let mut d = Dedup::new();
        let i = Incarnation(1);
        assert!(d.accept("a:1", i, 0, 5));
        assert!(!d.accept("a:1", i, 0, 5), "retry");
        assert!(d.accept("a:1", i, 0, 3), "reordered, first time");
        assert!(!d.accept("a:1", i, 0, 3));
        assert!(
            d.accept("a:1", i, 1, 5),
            "another core has its own sequence"
        );
        assert!(d.accept("b:1", i, 0, 5), "another sender");
        assert!(d.accept("a:1", i, 0, 70), "a jump across a word boundary");
        assert!(
            !d.accept("a:1", i, 0, 5),
            "still remembered after the shift"
        );
        assert!(!d.accept("a:1", i, 0, 3));
        assert!(d.accept("a:1", i, 0, 4));
    }

    #[test]
    fn the_window_is_1024_entries() {
        let mut d = Dedup::new();
        let i = Incarnation(1);
        assert!(d.accept("a:1", i, 0, 0));
        assert!(d.accept("a:1", i, 0, DEDUP_WINDOW - 1));
        assert!(!d.accept("a:1", i, 0, 0), "inside the window: a retry");
        assert!(d.accept("a:1", i, 0, DEDUP_WINDOW));
        assert!(
            !d.accept("a:1", i, 0, 0),
            "outside the window: refused, too old to tell"
        );
        assert!(d.accept("a:1", i, 0, 1), "inside, never seen");
        assert!(
            d.accept("a:1", i, 0, 10 * DEDUP_WINDOW),
            "a far jump clears the window"
        );
        assert!(!d.accept("a:1", i, 0, 10 * DEDUP_WINDOW));
    }

    #[test]
    fn every_shift_matches_a_set_model() {
        // The bitmap against a plain set over a walk with gaps of every size up to 2 words.
        let mut d = Dedup::new();
        let mut seen = std::collections::BTreeSet::new();
        let mut seq = 0u64;
        for step in 0..600u64 {
            seq += step % 131;
            for probe in [seq, seq.saturating_sub(step % 97), seq.saturating_sub(63)] {
                let highest = seen.iter().next_back().copied().unwrap_or(0).max(probe);
                let expect = !seen.contains(&probe) && highest - probe < DEDUP_WINDOW;
                assert_eq!(
                    d.accept("a:1", Incarnation(1), 0, probe),
                    expect,
                    "seq {probe}"
                );
                seen.insert(probe);
            }
        }
    }

    #[test]
    fn incarnations_restart_the_window() {
        let mut d = Dedup::new();
        assert!(d.accept("a:1", Incarnation(1), 0, 7));
        assert!(
            d.accept("a:1", Incarnation(2), 0, 7),
            "a restarted sender counts from anew"
        );
        assert!(
            !d.accept("a:1", Incarnation(1), 0, 8),
            "the old process is gone"
        );
        d.forget("a:1");
        assert!(d.accept("a:1", Incarnation(1), 0, 8));
    }
}
