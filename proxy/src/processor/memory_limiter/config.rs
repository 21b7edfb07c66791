//! Keys of the `memory_limiter` processor.

use serde::Deserialize;

use crate::config::duration::GoDuration;
use crate::config::error::{join, ConfigErrors};

/// `processors.memory_limiter`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MemoryLimiterConfig {
    /// How often memory is measured; required, greater than zero.
    pub check_interval: GoDuration,
    /// Hard limit in MiB.
    pub limit_mib: u32,
    /// Hard limit minus this is the soft limit (default 20% of the limit).
    pub spike_limit_mib: u32,
    /// Hard limit as a percentage of total memory (cgroup or host).
    pub limit_percentage: u32,
    /// Spike as a percentage of total memory.
    pub spike_limit_percentage: u32,
    /// Least time between two allocator collects (`mi_collect`) above the soft limit (default 10s).
    pub min_gc_interval_when_soft_limited: Option<GoDuration>,
    /// Least time between two allocator collects above the hard limit (default 0).
    pub min_gc_interval_when_hard_limited: Option<GoDuration>,
}

impl MemoryLimiterConfig {
    /// The collector's rules.
    pub fn validate(&self, path: &str, errors: &mut ConfigErrors) {
        if self.check_interval.0.is_zero() {
            errors.push(
                join(path, "check_interval"),
                "must be greater than zero (e.g. 1s)",
            );
        }
        if self.limit_mib == 0 && self.limit_percentage == 0 {
            errors.push(
                path,
                "either limit_mib or limit_percentage must be greater than zero",
            );
        }
        if self.limit_mib > 0 && self.spike_limit_mib >= self.limit_mib {
            errors.push(
                join(path, "spike_limit_mib"),
                format!("must be smaller than limit_mib ({})", self.limit_mib),
            );
        }
        if self.limit_mib == 0 && self.limit_percentage > 0 {
            if self.limit_percentage > 100 {
                errors.push(join(path, "limit_percentage"), "must be between 1 and 100");
            }
            if self.spike_limit_percentage >= self.limit_percentage {
                errors.push(
                    join(path, "spike_limit_percentage"),
                    format!(
                        "must be smaller than limit_percentage ({})",
                        self.limit_percentage
                    ),
                );
            }
        }
    }
}
