//! Refuses data while the process is above the soft limit, as the collector's memory_limiter does.
//!
//! One checker thread per memory_limiter instance measures RSS every `check_interval` and publishes
//! one flag; the per-core stages read it with a relaxed load (no shared writes on the data path).

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::config::MemoryLimiterConfig;
use crate::pipeline::{Refusal, TraceConsumer, TraceData};
use crate::telemetry::metrics::Local;

const MIB: u64 = 1024 * 1024;

/// Limits in bytes, resolved from the config and the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Hard limit.
    pub hard: u64,
    /// Soft limit = hard - spike; data is refused above it.
    pub soft: u64,
}

impl Limits {
    /// Resolves MiB or percentage settings; `total` is the memory available (cgroup or host).
    pub fn resolve(c: &MemoryLimiterConfig, total: Option<u64>) -> Result<Limits, String> {
        let (hard, spike) = if c.limit_mib > 0 {
            let hard = u64::from(c.limit_mib) * MIB;
            // The collector's default spike is 20% of the limit.
            let spike = if c.spike_limit_mib > 0 {
                u64::from(c.spike_limit_mib) * MIB
            } else {
                hard / 5
            };
            (hard, spike)
        } else {
            let total =
                total.ok_or("limit_percentage needs the total memory, which could not be read")?;
            let hard = total / 100 * u64::from(c.limit_percentage);
            (hard, total / 100 * u64::from(c.spike_limit_percentage))
        };
        Ok(Limits {
            hard,
            soft: hard.saturating_sub(spike),
        })
    }
}

/// State shared by every core's stage of one memory_limiter.
#[derive(Debug, Default)]
pub struct MemoryState {
    /// Above the soft limit at the last check.
    pub over_soft: AtomicBool,
    /// Last measured usage in bytes.
    pub used: AtomicU64,
}

/// Starts the checker thread; it stops when `stop` is set.
pub fn start_checker(
    limits: Limits,
    interval: Duration,
    stop: Arc<AtomicBool>,
) -> std::io::Result<Arc<MemoryState>> {
    let state = Arc::new(MemoryState::default());
    let s = state.clone();
    let check = move || {
        if let Some(used) = resident_bytes() {
            s.used.store(used, Ordering::Relaxed);
            let over = used > limits.soft;
            if over != s.over_soft.swap(over, Ordering::Relaxed) {
                if over {
                    tracing::warn!(
                        used_mib = used / MIB,
                        soft_limit_mib = limits.soft / MIB,
                        "memory usage is above the soft limit: refusing data"
                    );
                } else {
                    tracing::info!(
                        used_mib = used / MIB,
                        "memory usage is below the soft limit again: accepting data"
                    );
                }
            }
        }
    };
    check();
    std::thread::Builder::new()
        .name("tailgate-memlimit".to_owned())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(interval);
                check();
            }
        })?;
    Ok(state)
}

/// Resident set size of this process from `/proc/self/statm`.
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Memory available to the process: the cgroup v2 limit when set, else the host's MemTotal.
pub fn total_memory() -> Option<u64> {
    if let Ok(max) = std::fs::read_to_string("/sys/fs/cgroup/memory.max") {
        if let Ok(v) = max.trim().parse::<u64>() {
            return Some(v);
        }
    }
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// One core's memory_limiter stage.
pub struct MemoryLimiter {
    /// Shared measurement.
    pub state: Arc<MemoryState>,
    /// Next stage.
    pub next: Rc<dyn TraceConsumer>,
    /// `otelcol_processor_refused_spans_total` for this processor.
    pub refused: Local,
    /// `otelcol_processor_dropped_spans_total` for this processor (refusals count here too, which is
    /// what the seed's dashboards read).
    pub dropped: Local,
}

impl TraceConsumer for MemoryLimiter {
    fn consume(&self, data: TraceData) -> Result<(), Refusal> {
        if self.state.over_soft.load(Ordering::Relaxed) {
            self.refused.add(data.spans);
            self.dropped.add(data.spans);
            return Err(Refusal::MemoryLimited);
        }
        self.next.consume(data)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::config::duration::GoDuration;

    #[test]
    fn resolves_limits_like_the_collector() {
        let c = MemoryLimiterConfig {
            check_interval: GoDuration(Duration::from_secs(1)),
            limit_mib: 512,
            spike_limit_mib: 128,
            ..Default::default()
        };
        assert_eq!(
            Limits::resolve(&c, None).unwrap(),
            Limits {
                hard: 512 * MIB,
                soft: 384 * MIB
            }
        );
        let d = MemoryLimiterConfig {
            limit_mib: 100,
            ..c.clone()
        };
        let d = MemoryLimiterConfig {
            spike_limit_mib: 0,
            ..d
        };
        assert_eq!(Limits::resolve(&d, None).unwrap().soft, 80 * MIB);
        let p = MemoryLimiterConfig {
            limit_mib: 0,
            spike_limit_mib: 0,
            limit_percentage: 50,
            spike_limit_percentage: 10,
            ..c
        };
        assert_eq!(
            Limits::resolve(&p, Some(1000 * MIB)).unwrap(),
            Limits {
                hard: 500 * MIB,
                soft: 400 * MIB
            }
        );
        assert!(Limits::resolve(&p, None).is_err());
        assert!(resident_bytes().unwrap() > 0);
    }
}
