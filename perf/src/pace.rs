//! Pacing of the load generator, sans-IO: the caller brings the time, the pacer says when to send.
//!
//! The schedule is absolute: the k-th span is due at `origin + k / rate`. Asking "may I send
//! this batch now?" returns either [`Pace::Send`] or [`Pace::WaitUntil`]. Because due times are
//! computed from the origin, not from the previous send, rounding and late wake-ups do not
//! accumulate into rate drift. If the sender falls behind by more than `max_burst`, the schedule
//! is moved forward so that it catches up by at most `max_burst` worth of spans (no unbounded
//! burst after a stall); the skipped time is counted in [`Pacer::lag`].

use std::time::{Duration, Instant};

/// Where the time comes from: a monotonic duration since an arbitrary origin.
pub trait Clock {
    /// Now, as time since the clock's origin.
    fn now(&self) -> Duration;
}

/// The real clock.
#[derive(Debug, Clone, Copy)]
pub struct MonotonicClock {
    origin: Instant,
}

impl MonotonicClock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        MonotonicClock {
            origin: Instant::now(),
        }
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for MonotonicClock {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }
}

/// A clock moved by hand, for tests.
#[derive(Debug, Default, Clone)]
pub struct FakeClock {
    now: std::sync::Arc<std::sync::Mutex<Duration>>,
}

impl FakeClock {
    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        *now += by;
    }

    /// Sets the clock.
    pub fn set(&self, to: Duration) {
        *self.now.lock().unwrap_or_else(|e| e.into_inner()) = to;
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Duration {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Target send rate.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Rate {
    /// As fast as the connections take it (open throttle).
    Unlimited,
    /// Spans per second.
    SpansPerSecond(f64),
}

/// The pacer's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// Send now; the spans are counted as sent.
    Send,
    /// Ask again at this time (clock time, not a delay).
    WaitUntil(Duration),
}

/// Absolute-schedule pacer (see the module docs).
#[derive(Debug, Clone)]
pub struct Pacer {
    rate: Rate,
    origin: Duration,
    /// Spans released so far.
    sent: u64,
    max_burst: Duration,
    lag: Duration,
}

impl Pacer {
    /// A pacer whose schedule starts at `now`; `max_burst` bounds catch-up after a stall.
    pub fn new(rate: Rate, now: Duration, max_burst: Duration) -> Self {
        Pacer {
            rate,
            origin: now,
            sent: 0,
            max_burst,
            lag: Duration::ZERO,
        }
    }

    /// Asks whether a batch of `spans` may go at `now`; on [`Pace::Send`] they count as sent.
    pub fn poll(&mut self, now: Duration, spans: u64) -> Pace {
        let Rate::SpansPerSecond(rate) = self.rate else {
            self.sent += spans;
            return Pace::Send;
        };
        let due = self.due(rate, self.sent);
        if now < due {
            return Pace::WaitUntil(due);
        }
        let behind = now - due;
        if behind > self.max_burst {
            // Stalled: forget the time we cannot make up, keep at most max_burst of catch-up.
            let skip = behind - self.max_burst;
            self.origin += skip;
            self.lag += skip;
        }
        self.sent += spans;
        Pace::Send
    }

    fn due(&self, rate: f64, spans: u64) -> Duration {
        if rate <= 0.0 || !rate.is_finite() {
            return Duration::MAX;
        }
        // Rounded to whole nanoseconds so that exact rates give exact schedules.
        let nanos = (spans as f64 * 1e9 / rate).round();
        self.origin + Duration::from_nanos(nanos.min(u64::MAX as f64) as u64)
    }

    /// Spans released so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Total schedule time skipped because the sender fell behind by more than `max_burst`.
    pub fn lag(&self) -> Duration {
        self.lag
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Drives the pacer like the load generator does: wait until told, then send.
    fn run(pacer: &mut Pacer, clock: &FakeClock, batches: usize, batch: u64) -> Vec<Duration> {
        let mut sent_at = Vec::new();
        while sent_at.len() < batches {
            match pacer.poll(clock.now(), batch) {
                Pace::Send => sent_at.push(clock.now()),
                Pace::WaitUntil(t) => clock.set(t),
            }
        }
        sent_at
    }

    #[test]
    fn batches_go_out_on_an_exact_schedule() {
        let clock = FakeClock::default();
        let mut p = Pacer::new(Rate::SpansPerSecond(1000.0), clock.now(), 100 * MS);
        let times = run(&mut p, &clock, 11, 100);
        let expected: Vec<Duration> = (0..11).map(|i| i * 100 * MS).collect();
        assert_eq!(times, expected);
        assert_eq!(p.sent(), 1100);
    }

    #[test]
    fn late_wakeups_do_not_drift_the_rate() {
        let clock = FakeClock::default();
        let mut p = Pacer::new(
            Rate::SpansPerSecond(1000.0),
            clock.now(),
            Duration::from_secs(1),
        );
        // Every wake-up comes 7 ms late; the schedule stays anchored to the origin.
        for _ in 0..100 {
            loop {
                match p.poll(clock.now(), 10) {
                    Pace::Send => break,
                    Pace::WaitUntil(t) => clock.set(t + 7 * MS),
                }
            }
        }
        // 100 batches of 10 at 1000/s: the last one is due at 990 ms, sent at most 7 ms late.
        assert!(clock.now() <= 997 * MS, "{:?}", clock.now());
        assert_eq!(p.lag(), Duration::ZERO);
    }

    #[test]
    fn catch_up_after_a_stall_is_bounded() {
        let clock = FakeClock::default();
        let mut p = Pacer::new(Rate::SpansPerSecond(100.0), clock.now(), 50 * MS);
        assert_eq!(p.poll(clock.now(), 1), Pace::Send);
        clock.advance(Duration::from_secs(10)); // the sender stalled
        let mut burst = 0;
        while p.poll(clock.now(), 1) == Pace::Send {
            burst += 1;
        }
        // 50 ms of catch-up at 100/s is 5 spans (+1 for the one due now).
        assert_eq!(burst, 6);
        assert_eq!(p.lag(), Duration::from_secs(10) - 10 * MS - 50 * MS);
    }

    #[test]
    fn unlimited_always_sends() {
        let mut p = Pacer::new(Rate::Unlimited, Duration::ZERO, MS);
        assert!((0..1000).all(|_| p.poll(Duration::ZERO, 1000) == Pace::Send));
        assert_eq!(p.sent(), 1_000_000);
    }

    #[test]
    fn zero_rate_never_sends() {
        let mut p = Pacer::new(Rate::SpansPerSecond(0.0), Duration::ZERO, MS);
        assert_eq!(
            p.poll(Duration::from_secs(1000), 1),
            Pace::WaitUntil(Duration::MAX)
        );
    }
}
