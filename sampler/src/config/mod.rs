//! Configuration: the collector's `tail_sampling` keys in, checked runtime settings out.
//!
//! Stages, as in the style guide: YAML → [`raw`] serde structs (unknown keys rejected with their
//! key path) → [`RawConfig::validate`] (every problem collected with its key path) → [`SamplerConfig`].

pub mod duration;
pub mod raw;
mod validate;

use std::fmt;
use std::time::Duration;

use crate::policy::ottl::OttlPolicy;
use crate::span::StatusCode;

pub use duration::{parse_go_duration, GoDuration};
pub use raw::RawConfig;

/// The collector's default `decision_wait`.
pub const DEFAULT_DECISION_WAIT: Duration = Duration::from_secs(30);
/// The collector's default `num_traces`.
pub const DEFAULT_NUM_TRACES: u64 = 50_000;
/// Default resolution of the decision timer wheel (tailgate-specific).
pub const DEFAULT_TIMER_TICK: Duration = Duration::from_millis(100);

/// Checked settings of one `tail_sampling` processor.
#[derive(Debug, Clone)]
pub struct SamplerConfig {
    /// Wait after a trace's first span before deciding.
    pub decision_wait: Duration,
    /// Wait after the root span arrives, if set (decides earlier than `decision_wait`).
    pub decision_wait_after_root_received: Option<Duration>,
    /// Traces kept in memory (decided ones included, until newer traces push them out).
    pub num_traces: u64,
    /// Sizing hint.
    pub expected_new_traces_per_sec: u64,
    /// When full, refuse new traces (the caller retries) instead of evicting the oldest.
    pub block_on_overflow: bool,
    /// Size of the sampled-decision cache (0 = off).
    pub sampled_cache_size: u64,
    /// Size of the non-sampled-decision cache (0 = off).
    pub non_sampled_cache_size: u64,
    /// Stop evaluating at the first policy that samples.
    pub sample_on_first_match: bool,
    /// On shutdown, drop undecided traces instead of deciding them.
    pub drop_pending_traces_on_shutdown: bool,
    /// A trace larger than this is not sampled at once (None = no limit).
    pub maximum_trace_size_bytes: Option<u64>,
    /// Independent shards the runtime should create (each gets its share of `num_traces`).
    pub num_shards: u32,
    /// tailgate-specific: byte budget for retained buffers (None = no budget).
    pub max_buffered_bytes: Option<u64>,
    /// tailgate-specific: timer wheel resolution.
    pub timer_tick: Duration,
    /// Top-level policies in evaluation order as written (drop policies are moved first by the
    /// engine, as the collector does).
    pub policies: Vec<PolicyConfig>,
}

impl SamplerConfig {
    /// Parses and validates a `tail_sampling:` block given as YAML text.
    pub fn from_yaml_str(text: &str) -> Result<(SamplerConfig, Vec<ConfigWarning>), ConfigError> {
        let deserializer = serde_yaml::Deserializer::from_str(text);
        let raw: RawConfig = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            ConfigError::single(path_or_root(&e.path().to_string()), e.inner().to_string())
        })?;
        raw.validate()
    }

    /// Parses and validates a `tail_sampling:` block already parsed as YAML.
    pub fn from_yaml_value(
        value: serde_yaml::Value,
    ) -> Result<(SamplerConfig, Vec<ConfigWarning>), ConfigError> {
        let raw: RawConfig = serde_path_to_error::deserialize(value).map_err(|e| {
            ConfigError::single(path_or_root(&e.path().to_string()), e.inner().to_string())
        })?;
        raw.validate()
    }

    /// `num_traces` for one of `num_shards` shards (rounded up).
    pub fn num_traces_per_shard(&self) -> u64 {
        self.num_traces.div_ceil(u64::from(self.num_shards.max(1)))
    }
}

fn path_or_root(path: &str) -> String {
    if path == "." || path.is_empty() {
        "tail_sampling".to_string()
    } else {
        format!("tail_sampling.{path}")
    }
}

/// A named, checked policy.
#[derive(Debug, Clone)]
pub struct PolicyConfig {
    /// The policy's name (used in counters and outputs).
    pub name: String,
    /// What it does.
    pub spec: PolicySpec,
}

/// A checked policy of one of the collector's types.
#[derive(Debug, Clone)]
pub enum PolicySpec {
    /// `always_sample`.
    AlwaysSample,
    /// `latency`: trace duration (latest end − earliest start) in `[threshold, upper]`.
    Latency {
        /// Lower bound, ms, inclusive.
        threshold_ms: i64,
        /// Upper bound, ms, inclusive; 0 = none.
        upper_threshold_ms: i64,
    },
    /// `numeric_attribute`.
    NumericAttribute {
        /// Key.
        key: String,
        /// Inclusive minimum (None = unbounded).
        min: Option<i64>,
        /// Inclusive maximum (None = unbounded).
        max: Option<i64>,
        /// Inverted decision.
        invert: bool,
    },
    /// `probabilistic`.
    Probabilistic {
        /// Salt (empty = default salt).
        hash_salt: String,
        /// Percentage.
        sampling_percentage: f64,
    },
    /// `status_code`.
    StatusCode {
        /// Codes that sample.
        codes: Vec<StatusCode>,
    },
    /// `string_attribute`.
    StringAttribute {
        /// Key.
        key: String,
        /// Values (or patterns).
        values: Vec<String>,
        /// Values are regular expressions.
        regex: bool,
        /// Inverted decision.
        invert: bool,
    },
    /// `rate_limiting`.
    RateLimiting {
        /// Spans per second.
        spans_per_second: i64,
    },
    /// `bytes_limiting`.
    BytesLimiting {
        /// Rate.
        bytes_per_second: i64,
        /// Bucket size.
        burst_capacity: i64,
    },
    /// `span_count`.
    SpanCount {
        /// Min, inclusive.
        min_spans: i64,
        /// Max, inclusive; 0 = none.
        max_spans: i64,
    },
    /// `trace_state`.
    TraceState {
        /// Key.
        key: String,
        /// Values.
        values: Vec<String>,
    },
    /// `boolean_attribute`.
    BooleanAttribute {
        /// Key.
        key: String,
        /// Value.
        value: bool,
        /// Inverted decision.
        invert: bool,
    },
    /// `trace_flags`: the sampled flag is set on some span.
    TraceFlags,
    /// `ottl_condition` (the shared OTTL subset, parsed, with its `error_mode`).
    OttlCondition(OttlPolicy),
    /// `and`.
    And(Vec<PolicyConfig>),
    /// `not`.
    Not(Box<PolicyConfig>),
    /// `drop`.
    Drop(Vec<PolicyConfig>),
    /// `composite`.
    Composite {
        /// `max_total_spans_per_second`.
        max_total_spans_per_second: i64,
        /// Sub-policies with their allocated spans per second.
        subs: Vec<(PolicyConfig, i64)>,
    },
}

/// One problem found in a config, with the key path it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Key path, e.g. `tail_sampling.policies[2].latency.threshold_ms`.
    pub path: String,
    /// What is wrong and what to write instead.
    pub message: String,
}

/// Every problem found in a `tail_sampling` block.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid tail_sampling config:{}", render(.problems))]
pub struct ConfigError {
    /// The problems, in document order.
    pub problems: Vec<Problem>,
}

fn render(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("\n  - {}: {}", p.path, p.message))
        .collect()
}

impl ConfigError {
    fn single(path: String, message: String) -> Self {
        ConfigError {
            problems: vec![Problem { path, message }],
        }
    }
}

/// Something accepted but worth telling the user (returned as data; the caller logs it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    /// Key path.
    pub path: String,
    /// The advice.
    pub message: String,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}
