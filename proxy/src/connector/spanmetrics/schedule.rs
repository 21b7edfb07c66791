//! When cores hand their deltas over and when the merger flushes: both on one grid,
//! `epoch + k·interval`, shared by every core and the merger of a connector.
//!
//! The merger flushes at `epoch + k·interval`; each core hands over a [`margin`] earlier, so what
//! a core counted before a hand-over is in the merger before the flush that follows it. A span
//! therefore waits at most one interval for its hand-over and then only the margin for the flush:
//! counts are visible at most one interval plus the margin (≤ 1 s) after the span arrives (plus
//! scheduling jitter), close to the collector's one interval, instead of the up to two intervals
//! two independent timers gave.
//! Pure functions of the clock so the bound is unit-tested without sleeping.

use std::time::{Duration, Instant};

/// Longest margin between a core's hand-over and the merger's flush.
const MAX_MARGIN: Duration = Duration::from_secs(1);

/// How long before each flush the cores hand over: a tenth of the interval, at most 1 s. Long
/// enough for a core busy with a request (well under a millisecond) and the channel to deliver;
/// short enough that it adds nothing to the delay bound (the span that just missed a hand-over
/// waits `interval - margin` for the next and `margin` for the flush).
pub fn margin(interval: Duration) -> Duration {
    (interval / 10).min(MAX_MARGIN)
}

/// The first grid point `epoch + k·interval` (k ≥ 1) strictly after `now`.
pub fn next_flush(epoch: Instant, interval: Duration, now: Instant) -> Instant {
    next_on_grid(epoch + interval, interval, now)
}

/// The first hand-over time `epoch + k·interval - margin` (k ≥ 1) strictly after `now`.
pub fn next_handover(epoch: Instant, interval: Duration, now: Instant) -> Instant {
    next_on_grid(epoch + interval - margin(interval), interval, now)
}

/// The first `first + k·interval` (k ≥ 0) strictly after `now`; `first` when `now` is before it.
fn next_on_grid(first: Instant, interval: Duration, now: Instant) -> Instant {
    let Some(past) = now.checked_duration_since(first) else {
        return first;
    };
    if interval.is_zero() {
        return now;
    }
    // Whole intervals elapsed since `first`; u128 nanoseconds cannot overflow for any uptime.
    let k = past.as_nanos() / interval.as_nanos() + 1;
    let k = u32::try_from(k).unwrap_or(u32::MAX);
    // Past the representable future (no real uptime gets there): one interval from now.
    first
        .checked_add(interval.saturating_mul(k))
        .unwrap_or_else(|| now + interval)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn margin_is_a_tenth_capped_at_one_second() {
        assert_eq!(margin(Duration::from_secs(60)), Duration::from_secs(1));
        assert_eq!(margin(Duration::from_secs(1)), 100 * MS);
        assert_eq!(margin(100 * MS), 10 * MS);
    }

    #[test]
    fn grid_points_are_strictly_after_now() {
        let e = Instant::now();
        let i = Duration::from_secs(60);
        assert_eq!(next_flush(e, i, e), e + i);
        assert_eq!(next_flush(e, i, e + i - MS), e + i);
        assert_eq!(next_flush(e, i, e + i), e + 2 * i);
        assert_eq!(next_flush(e, i, e + 5 * i + MS), e + 6 * i);
        let h = e + i - Duration::from_secs(1);
        assert_eq!(next_handover(e, i, e), h);
        assert_eq!(next_handover(e, i, h), h + i);
    }

    /// The issue-19 bound: a span arriving at any moment is handed over before a flush at most
    /// one interval plus the margin later, with the default interval (60 s, target ≤ 65 s) and a short one. With
    /// the old schedule (hand-over every interval from each core's start, flush every interval
    /// from the merger's) the worst case was two intervals.
    #[test]
    fn a_span_is_flushed_within_one_interval_and_the_margin() {
        let default = Duration::from_secs(60);
        assert!(
            default + margin(default) <= Duration::from_secs(61),
            "target: ≤ 65 s"
        );
        for interval in [default, Duration::from_secs(1), 100 * MS] {
            let e = Instant::now();
            let step = interval / 97; // not a divisor of the interval: lands on many phases
            for n in 0..500u32 {
                let arrival = e + step * n;
                let handover = next_handover(e, interval, arrival);
                // The merger flushes at the first grid point after it receives the deltas.
                let flush = next_flush(e, interval, handover);
                assert!(handover > arrival);
                assert_eq!(
                    flush - handover,
                    margin(interval),
                    "hand-over just before a flush"
                );
                let lag = flush - arrival;
                assert!(
                    lag <= interval + margin(interval),
                    "{interval:?} {n}: {lag:?}"
                );
            }
        }
    }
}
