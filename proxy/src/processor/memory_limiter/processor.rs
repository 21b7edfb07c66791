//! Refuses data while the process is above the soft limit, as the collector's memory_limiter does.
//!
//! One checker thread per memory_limiter instance measures RSS every `check_interval` (asking
//! mimalloc to return freed memory first when over a limit, as the collector forces a GC) and
//! publishes one flag; the per-core stages read it with a relaxed load (no shared writes on the data path).

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::config::MemoryLimiterConfig;
use super::machine;
use crate::pipeline::{Consumer, Payload, Refusal};
use crate::telemetry::metrics::Local;
use crate::telemetry::process;

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
    /// The soft limit in bytes (what other stages size their defaults by: tail_sampling's byte
    /// budget).
    pub soft_limit: u64,
    /// Above the soft limit at the last check.
    pub over_soft: AtomicBool,
    /// Last measured usage in bytes.
    pub used: AtomicU64,
}

/// The collector's default `min_gc_interval_when_soft_limited`.
pub const DEFAULT_SOFT_COLLECT_INTERVAL: Duration = Duration::from_secs(10);

/// One memory_limiter's check logic, apart from the clock and the readings so tests can inject both.
///
/// Like the collector (which forces a Go GC): above the hard limit, and above the soft limit at most
/// every `soft_interval`, it asks the allocator to return what it can (`mi_collect(true)`) and
/// measures again before deciding.
#[derive(Debug)]
pub struct Checker {
    /// Limits in bytes.
    pub limits: Limits,
    /// `min_gc_interval_when_soft_limited`.
    pub soft_interval: Duration,
    /// `min_gc_interval_when_hard_limited`.
    pub hard_interval: Duration,
    last_collect: Option<Instant>,
}

impl Checker {
    /// A checker with the collector's intervals (10s soft, 0 hard) unless configured.
    pub fn new(limits: Limits, c: &MemoryLimiterConfig) -> Checker {
        Checker {
            limits,
            soft_interval: c
                .min_gc_interval_when_soft_limited
                .map_or(DEFAULT_SOFT_COLLECT_INTERVAL, |d| d.0),
            hard_interval: c
                .min_gc_interval_when_hard_limited
                .map_or(Duration::ZERO, |d| d.0),
            last_collect: None,
        }
    }

    fn may_collect(&self, now: Instant, interval: Duration) -> bool {
        self.last_collect
            .is_none_or(|t| now.saturating_duration_since(t) >= interval)
    }

    /// Measures with `read`, collects with `collect` when over a limit and allowed, and returns the
    /// usage the decision is based on and whether data must be refused (usage at or above soft).
    pub fn check(
        &mut self,
        now: Instant,
        mut read: impl FnMut() -> Option<u64>,
        mut collect: impl FnMut(),
    ) -> Option<(u64, bool)> {
        let mut used = read()?;
        let interval = if used >= self.limits.hard {
            Some(self.hard_interval)
        } else if used >= self.limits.soft {
            Some(self.soft_interval)
        } else {
            None
        };
        if interval.is_some_and(|i| self.may_collect(now, i)) {
            collect();
            self.last_collect = Some(now);
            let before = used;
            let hard = before >= self.limits.hard;
            used = read().unwrap_or(used);
            tracing::info!(
                before_mib = before / MIB,
                after_mib = used / MIB,
                hard,
                "memory_limiter: asked the allocator to return freed memory"
            );
        }
        Some((used, used >= self.limits.soft))
    }
}

/// Starts the checker thread; it stops when `stop` is set.
pub fn start_checker(
    limits: Limits,
    config: &MemoryLimiterConfig,
    stop: Arc<AtomicBool>,
) -> std::io::Result<Arc<MemoryState>> {
    let state = Arc::new(MemoryState {
        soft_limit: limits.soft,
        ..MemoryState::default()
    });
    let s = state.clone();
    let interval = config.check_interval.0;
    let mut checker = Checker::new(limits, config);
    let mut check = move || {
        let Some((used, over)) =
            checker.check(Instant::now(), resident_bytes, process::collect_allocator)
        else {
            return;
        };
        s.used.store(used, Ordering::Relaxed);
        if over != s.over_soft.swap(over, Ordering::Relaxed) {
            let heap_mib = process::read().heap_committed / MIB;
            if over {
                tracing::warn!(
                    used_mib = used / MIB,
                    heap_mib,
                    soft_limit_mib = limits.soft / MIB,
                    "memory usage is above the soft limit: refusing data"
                );
            } else {
                tracing::info!(
                    used_mib = used / MIB,
                    heap_mib,
                    "memory usage is below the soft limit again: accepting data"
                );
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

pub use crate::telemetry::process::resident_bytes;

/// Memory available to the process (for `limit_percentage`): the cgroup v2 limit, else the
/// cgroup v1 limit, else the host's MemTotal (see [`machine`]).
pub fn total_memory() -> Option<u64> {
    let total = machine::total_memory(std::path::Path::new("/"))?;
    tracing::info!(
        total_mib = total.bytes / MIB,
        source = ?total.source,
        "memory_limiter: total memory"
    );
    Some(total.bytes)
}

/// One core's memory_limiter stage.
pub struct MemoryLimiter {
    /// Shared measurement.
    pub state: Arc<MemoryState>,
    /// Next stage.
    pub next: Rc<dyn Consumer>,
    /// `otelcol_processor_refused_spans_total` for this processor.
    pub refused: Local,
    /// `otelcol_processor_dropped_spans_total` for this processor (refusals count here too, which is
    /// what the seed's dashboards read).
    pub dropped: Local,
}

impl Consumer for MemoryLimiter {
    fn consume(&self, data: Payload) -> Result<(), Refusal> {
        if self.state.over_soft.load(Ordering::Relaxed) {
            self.refused.add(data.items);
            self.dropped.add(data.items);
            return Err(Refusal::MemoryLimited);
        }
        self.next.consume(data)
    }

    /// Refusing while over the soft limit, so receivers refuse before reading a body (the
    /// refusal is counted by the receiver: it has no spans to count yet).
    fn ready(&self) -> Result<(), Refusal> {
        if self.state.over_soft.load(Ordering::Relaxed) {
            return Err(Refusal::MemoryLimited);
        }
        Ok(())
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

    fn checker(soft_secs: u64, hard_secs: u64) -> Checker {
        let c = MemoryLimiterConfig {
            min_gc_interval_when_soft_limited: Some(GoDuration(Duration::from_secs(soft_secs))),
            min_gc_interval_when_hard_limited: Some(GoDuration(Duration::from_secs(hard_secs))),
            ..Default::default()
        };
        let limits = Limits {
            hard: 100 * MIB,
            soft: 80 * MIB,
        };
        Checker::new(limits, &c)
    }

    /// Runs one check where the allocator's collect lowers usage from `before` to `after`.
    fn run(c: &mut Checker, now: Instant, before: u64, after: u64) -> (u64, bool, bool) {
        let collected = std::cell::Cell::new(false);
        let (used, refuse) = c
            .check(
                now,
                || Some(MIB * if collected.get() { after } else { before }),
                || collected.set(true),
            )
            .unwrap();
        (used / MIB, refuse, collected.get())
    }

    #[test]
    fn decides_like_the_collector_with_injected_readings() {
        let t0 = Instant::now();
        let mut c = checker(10, 0);
        // Below soft: accept, no collect.
        assert_eq!(run(&mut c, t0, 50, 50), (50, false, false));
        // Above soft: collect first; the re-read decides (freed memory returned: accept).
        assert_eq!(run(&mut c, t0, 85, 70), (70, false, true));
        // Above soft again within the soft interval: no collect, refuse.
        assert_eq!(
            run(&mut c, t0 + Duration::from_secs(5), 85, 70),
            (85, true, false)
        );
        // Exactly at soft refuses (the collector compares with >=).
        assert_eq!(
            run(&mut c, t0 + Duration::from_secs(6), 80, 80),
            (80, true, false)
        );
        // Above hard: hard interval 0 lets it collect at once, still above soft: refuse.
        assert_eq!(
            run(&mut c, t0 + Duration::from_secs(6), 120, 90),
            (90, true, true)
        );
        // Soft interval elapsed since the last collect: collect again.
        assert_eq!(
            run(&mut c, t0 + Duration::from_secs(16), 85, 60),
            (60, false, true)
        );
        // Hard interval respected when configured.
        let mut h = checker(10, 30);
        assert_eq!(run(&mut h, t0, 120, 110), (110, true, true));
        assert_eq!(
            run(&mut h, t0 + Duration::from_secs(29), 120, 110),
            (120, true, false)
        );
        assert_eq!(
            run(&mut h, t0 + Duration::from_secs(30), 120, 10),
            (10, false, true)
        );
        // No reading: no decision (the flag keeps its last value).
        assert!(h.check(t0, || None, || {}).is_none());
    }

    #[test]
    fn ready_answers_from_the_flag_without_counting() {
        use crate::telemetry::metrics::{Kind, Registry};
        struct Nop;
        impl Consumer for Nop {
            fn consume(&self, _: Payload) -> Result<(), Refusal> {
                Ok(())
            }
        }
        let r = Registry::new(1);
        let refused = r.register("r", "", Kind::Counter, &[]);
        let m = MemoryLimiter {
            state: Arc::new(MemoryState::default()),
            next: Rc::new(Nop),
            refused: refused.local(0),
            dropped: r.register("d", "", Kind::Counter, &[]).local(0),
        };
        assert_eq!(m.ready(), Ok(()));
        m.state.over_soft.store(true, Ordering::Relaxed);
        assert_eq!(m.ready(), Err(Refusal::MemoryLimited));
        assert_eq!(refused.total(), 0);
        m.state.over_soft.store(false, Ordering::Relaxed);
        assert_eq!(m.ready(), Ok(()));
    }

    #[test]
    fn collector_default_intervals() {
        let c = Checker::new(Limits { hard: 2, soft: 1 }, &MemoryLimiterConfig::default());
        assert_eq!(c.soft_interval, Duration::from_secs(10));
        assert_eq!(c.hard_interval, Duration::ZERO);
    }
}
