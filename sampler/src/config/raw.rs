//! The `tail_sampling:` YAML block as serde structs: the collector's keys, unknown keys rejected.
//!
//! These mirror the user's text; [`RawConfig::validate`] turns them into checked runtime settings.

use serde::Deserialize;

use super::duration::GoDuration;

/// The whole `tail_sampling` processor block.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    /// Wait after a trace's first span before deciding (default 30s).
    pub decision_wait: Option<GoDuration>,
    /// Wait after the root span arrives (newer collectors); 0 or absent = off.
    pub decision_wait_after_root_received: Option<GoDuration>,
    /// Traces kept in memory (default 50000).
    pub num_traces: Option<u64>,
    /// Sizing hint only.
    pub expected_new_traces_per_sec: Option<u64>,
    /// Refuse new traces when full instead of evicting the oldest.
    pub block_on_overflow: Option<bool>,
    /// Decision caches.
    pub decision_cache: Option<RawDecisionCache>,
    /// The seed article's top-level form (not accepted by the real collector): warned about.
    pub sampled_cache_size: Option<u64>,
    /// The seed article's top-level form (not accepted by the real collector): warned about.
    pub non_sampled_cache_size: Option<u64>,
    /// Stop evaluating at the first policy that samples.
    pub sample_on_first_match: Option<bool>,
    /// On shutdown, drop undecided traces instead of deciding them with what has arrived.
    pub drop_pending_traces_on_shutdown: Option<bool>,
    /// A trace that grows past this many bytes is not sampled at once.
    pub maximum_trace_size_bytes: Option<u64>,
    /// `trace-complete` (default) is supported.
    pub sampling_strategy: Option<String>,
    /// Number of independent engine shards (per-core tables).
    pub num_shards: Option<u64>,
    /// The policies (required).
    pub policies: Option<Vec<RawPolicy>>,
    /// tailgate-specific settings (not a collector key).
    pub tailgate: Option<RawTailgate>,
}

/// `decision_cache:`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawDecisionCache {
    /// Sampled trace IDs remembered after their spans are gone.
    pub sampled_cache_size: Option<u64>,
    /// Not-sampled trace IDs remembered after their spans are gone.
    pub non_sampled_cache_size: Option<u64>,
}

/// `tailgate:` — settings the collector does not have.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawTailgate {
    /// Byte budget for retained request buffers; over it the oldest undecided trace is dropped.
    pub max_buffered_bytes: Option<u64>,
    /// Resolution of the decision timer wheel (default 100ms).
    pub timer_tick: Option<GoDuration>,
}

/// One policy; the same struct serves top-level, `and`, `drop`, `not` and `composite` sub-policies
/// (validation rejects the nestings the collector does not allow).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawPolicy {
    /// Policy name (required, unique among top-level policies).
    pub name: Option<String>,
    /// Policy type.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// `latency:`.
    pub latency: Option<RawLatency>,
    /// `numeric_attribute:`.
    pub numeric_attribute: Option<RawNumericAttribute>,
    /// `probabilistic:`.
    pub probabilistic: Option<RawProbabilistic>,
    /// `status_code:`.
    pub status_code: Option<RawStatusCode>,
    /// `string_attribute:`.
    pub string_attribute: Option<RawStringAttribute>,
    /// `rate_limiting:`.
    pub rate_limiting: Option<RawRateLimiting>,
    /// `bytes_limiting:`.
    pub bytes_limiting: Option<RawBytesLimiting>,
    /// `span_count:`.
    pub span_count: Option<RawSpanCount>,
    /// `trace_state:`.
    pub trace_state: Option<RawTraceState>,
    /// `boolean_attribute:`.
    pub boolean_attribute: Option<RawBooleanAttribute>,
    /// `ottl_condition:`.
    pub ottl_condition: Option<RawOttl>,
    /// `trace_flags:` (takes no settings).
    pub trace_flags: Option<serde_yaml::Value>,
    /// `and:`.
    pub and: Option<RawAnd>,
    /// `not:`.
    pub not: Option<RawNot>,
    /// `drop:`.
    pub drop: Option<RawDrop>,
    /// `composite:`.
    pub composite: Option<RawComposite>,
}

/// `latency:`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLatency {
    /// Lower bound, ms (inclusive).
    pub threshold_ms: i64,
    /// Upper bound, ms (inclusive); 0 = none.
    pub upper_threshold_ms: i64,
}

/// `numeric_attribute:`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawNumericAttribute {
    /// Attribute key.
    pub key: String,
    /// Inclusive minimum; 0 or absent = unbounded (as newer collectors).
    pub min_value: i64,
    /// Inclusive maximum; 0 or absent = unbounded (as newer collectors).
    pub max_value: i64,
    /// Invert the match (deprecated inverted decisions).
    pub invert_match: bool,
}

/// `probabilistic:`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawProbabilistic {
    /// Salt; empty = the collector's default salt.
    pub hash_salt: String,
    /// Percentage 0..=100.
    pub sampling_percentage: f64,
}

/// `status_code:`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawStatusCode {
    /// Codes: OK, ERROR, UNSET.
    pub status_codes: Vec<String>,
}

/// `string_attribute:`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawStringAttribute {
    /// Attribute key.
    pub key: String,
    /// Values or regular expressions.
    pub values: Vec<String>,
    /// Treat values as regular expressions.
    pub enabled_regex_matching: bool,
    /// Accepted for compatibility; our regex matcher needs no result cache.
    pub cache_max_size: i64,
    /// Invert the match.
    pub invert_match: bool,
}

/// `rate_limiting:`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRateLimiting {
    /// Spans per second.
    pub spans_per_second: i64,
}

/// `bytes_limiting:`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawBytesLimiting {
    /// Sustained rate.
    pub bytes_per_second: i64,
    /// Bucket size; 0 = 2 × bytes_per_second.
    pub burst_capacity: i64,
}

/// `span_count:`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSpanCount {
    /// Minimum spans (inclusive).
    pub min_spans: i64,
    /// Maximum spans (inclusive); 0 = none.
    pub max_spans: i64,
}

/// `trace_state:`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawTraceState {
    /// tracestate key.
    pub key: String,
    /// Accepted values.
    pub values: Vec<String>,
}

/// `boolean_attribute:`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawBooleanAttribute {
    /// Attribute key.
    pub key: String,
    /// Value to match.
    pub value: bool,
    /// Invert the match.
    pub invert_match: bool,
}

/// `ottl_condition:`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawOttl {
    /// `propagate`, `ignore` or `silent`.
    pub error_mode: Option<String>,
    /// Span conditions (OR-ed).
    pub span: Vec<String>,
    /// Span event conditions (not supported: rejected when non-empty).
    pub spanevent: Vec<String>,
}

/// `and:`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAnd {
    /// Sub-policies, all of which must sample.
    pub and_sub_policy: Vec<RawPolicy>,
}

/// `not:`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawNot {
    /// The policy whose decision is inverted.
    pub not_sub_policy: Option<Box<RawPolicy>>,
}

/// `drop:`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawDrop {
    /// Sub-policies, all of which must match for the trace to be dropped.
    pub drop_sub_policy: Vec<RawPolicy>,
}

/// `composite:`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawComposite {
    /// Overall span rate.
    pub max_total_spans_per_second: i64,
    /// Accepted; the collector evaluates sub-policies in list order and so do we.
    pub policy_order: Vec<String>,
    /// Sub-policies.
    pub composite_sub_policy: Vec<RawPolicy>,
    /// Per sub-policy share of the rate.
    pub rate_allocation: Vec<RawRateAllocation>,
}

/// One `rate_allocation` entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRateAllocation {
    /// Sub-policy name.
    pub policy: String,
    /// Percent of `max_total_spans_per_second`.
    pub percent: i64,
}
