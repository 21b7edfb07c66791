//! Process logging through `tracing`, at the level `service.telemetry.logs.level` names, and
//! [`WarnGate`], which rate-limits warnings that repeat per request or batch.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// Installs the stderr subscriber. `RUST_LOG` overrides the configured level when set.
pub fn init(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    // A second init (tests) is harmless, so the error is ignored on purpose.
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

/// Rate-limits one kind of warning on one core: at most one line per interval, and that line can
/// say how many occurrences went unlogged since the previous one. For failures that repeat once
/// per request or batch during an outage, where a line each would flood the logs.
#[derive(Debug)]
pub struct WarnGate {
    interval: Duration,
    last: Cell<Option<Instant>>,
    /// Occurrences not logged since the last warning.
    quiet: Cell<u64>,
}

impl WarnGate {
    /// A gate letting one warning through per `interval`.
    pub fn new(interval: Duration) -> Self {
        WarnGate {
            interval,
            last: Cell::new(None),
            quiet: Cell::new(0),
        }
    }

    /// `Some(occurrences not logged since the last warning)` when a warning is due now; `None`
    /// (and one more quiet occurrence) otherwise.
    pub fn due(&self) -> Option<u64> {
        self.due_at(Instant::now())
    }

    fn due_at(&self, now: Instant) -> Option<u64> {
        let due = self
            .last
            .get()
            .is_none_or(|last| now.saturating_duration_since(last) >= self.interval);
        if due {
            self.last.set(Some(now));
            Some(self.quiet.replace(0))
        } else {
            self.quiet.set(self.quiet.get() + 1);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_warning_per_interval_counting_the_quiet_ones() {
        let gate = WarnGate::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(gate.due_at(t0), Some(0));
        assert_eq!(gate.due_at(t0 + Duration::from_secs(1)), None);
        assert_eq!(gate.due_at(t0 + Duration::from_secs(9)), None);
        assert_eq!(gate.due_at(t0 + Duration::from_secs(10)), Some(2));
        assert_eq!(gate.due_at(t0 + Duration::from_secs(11)), None);
    }
}
