//! Time, injected: the engine never reads the system clock itself.

/// A source of the current time.
pub trait Clock {
    /// Now, as Unix nanoseconds. Must not go backwards (the engine treats a step back as no time
    /// passing).
    fn now_unix_nanos(&self) -> u64;
}

/// The system's real-time clock, for the runtime shell.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_unix_nanos(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }
}
