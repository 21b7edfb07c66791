//! Raw → checked config. Collects every problem with its key path instead of stopping at one.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use tailgate_ottl::ErrorMode;

use super::raw::{RawConfig, RawPolicy};
use super::{
    ConfigError, ConfigWarning, PolicyConfig, PolicySpec, Problem, SamplerConfig,
    DEFAULT_DECISION_WAIT, DEFAULT_NUM_TRACES, DEFAULT_TIMER_TICK,
};
use crate::policy::ottl;
use crate::span::StatusCode;

/// Most top-level policies the engine tracks per decision (matched policies are a bit set).
pub const MAX_POLICIES: usize = 64;

const LEAF_TYPES: &[&str] = &[
    "always_sample",
    "latency",
    "numeric_attribute",
    "probabilistic",
    "status_code",
    "string_attribute",
    "rate_limiting",
    "bytes_limiting",
    "span_count",
    "trace_state",
    "boolean_attribute",
    "ottl_condition",
    "trace_flags",
];

/// Where a policy sits decides which types it may have (as the collector's config structs do).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Top,
    CompositeSub,
    AndSub,
}

impl Level {
    fn compound_allowed(self, kind: &str) -> bool {
        match self {
            Level::Top => matches!(kind, "and" | "not" | "drop" | "composite"),
            Level::CompositeSub => matches!(kind, "and" | "not"),
            Level::AndSub => false,
        }
    }
}

struct Ctx {
    problems: Vec<Problem>,
}

impl Ctx {
    fn problem(&mut self, path: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            path: path.to_string(),
            message: message.into(),
        });
    }
}

impl RawConfig {
    /// Checks everything and returns the runtime config plus warnings, or all problems found.
    pub fn validate(&self) -> Result<(SamplerConfig, Vec<ConfigWarning>), ConfigError> {
        let mut cx = Ctx {
            problems: Vec::new(),
        };
        let mut warnings = Vec::new();
        let root = "tail_sampling";

        let decision_wait = self
            .decision_wait
            .map(|d| d.0)
            .unwrap_or(DEFAULT_DECISION_WAIT);
        if decision_wait.is_zero() {
            cx.problem(
                &format!("{root}.decision_wait"),
                "must be greater than 0 (default 30s)",
            );
        }
        let after_root = self
            .decision_wait_after_root_received
            .map(|d| d.0)
            .filter(|d| !d.is_zero());
        let num_traces = self.num_traces.unwrap_or(DEFAULT_NUM_TRACES);
        if num_traces == 0 {
            cx.problem(
                &format!("{root}.num_traces"),
                "must be greater than 0 (default 50000)",
            );
        }
        if num_traces > u64::from(u32::MAX) / 2 {
            cx.problem(&format!("{root}.num_traces"), "must be at most 2147483647");
        }

        let (sampled_cache_size, non_sampled_cache_size) = self.cache_sizes(&mut warnings);

        match self.sampling_strategy.as_deref() {
            None | Some("") | Some("trace-complete") => {}
            Some("span-ingest") => cx.problem(
                &format!("{root}.sampling_strategy"),
                "\"span-ingest\" is not supported by tailgate yet; use \"trace-complete\" (the default)",
            ),
            Some(other) => cx.problem(
                &format!("{root}.sampling_strategy"),
                format!("unknown strategy {other:?}; supported: \"trace-complete\""),
            ),
        }
        let num_shards = match self.num_shards {
            None | Some(0) => 1,
            Some(n) if n <= 1024 => n as u32,
            Some(_) => {
                cx.problem(&format!("{root}.num_shards"), "must be at most 1024");
                1
            }
        };
        let tailgate = self.tailgate.clone().unwrap_or_default();
        let timer_tick = tailgate
            .timer_tick
            .map(|d| d.0)
            .unwrap_or(DEFAULT_TIMER_TICK);
        if timer_tick < Duration::from_millis(1) {
            cx.problem(
                &format!("{root}.tailgate.timer_tick"),
                "must be at least 1ms",
            );
        }

        let policies = self.check_policies(&mut cx, root);

        if !cx.problems.is_empty() {
            return Err(ConfigError {
                problems: cx.problems,
            });
        }
        let config = SamplerConfig {
            decision_wait,
            decision_wait_after_root_received: after_root,
            num_traces,
            expected_new_traces_per_sec: self.expected_new_traces_per_sec.unwrap_or(0),
            block_on_overflow: self.block_on_overflow.unwrap_or(false),
            sampled_cache_size,
            non_sampled_cache_size,
            sample_on_first_match: self.sample_on_first_match.unwrap_or(false),
            drop_pending_traces_on_shutdown: self.drop_pending_traces_on_shutdown.unwrap_or(false),
            maximum_trace_size_bytes: self.maximum_trace_size_bytes.filter(|b| *b > 0),
            num_shards,
            max_buffered_bytes: tailgate.max_buffered_bytes.filter(|b| *b > 0),
            timer_tick,
            policies,
        };
        Ok((config, warnings))
    }

    /// The seed's top-level cache keys are accepted with a warning; `decision_cache` wins.
    fn cache_sizes(&self, warnings: &mut Vec<ConfigWarning>) -> (u64, u64) {
        let nested = self.decision_cache.clone().unwrap_or_default();
        let mut pick = |key: &str, top: Option<u64>, nested: Option<u64>| -> u64 {
            if let Some(value) = top {
                let message = if nested.is_some() {
                    format!(
                        "not a collector key and ignored because decision_cache.{key} is also set; \
                         remove it"
                    )
                } else {
                    format!(
                        "not a collector key (the collector rejects it); accepted here, but write \
                         `decision_cache: {{{key}: {value}}}` instead"
                    )
                };
                warnings.push(ConfigWarning {
                    path: format!("tail_sampling.{key}"),
                    message,
                });
            }
            nested.or(top).unwrap_or(0)
        };
        let sampled = pick(
            "sampled_cache_size",
            self.sampled_cache_size,
            nested.sampled_cache_size,
        );
        let non_sampled = pick(
            "non_sampled_cache_size",
            self.non_sampled_cache_size,
            nested.non_sampled_cache_size,
        );
        (sampled, non_sampled)
    }

    fn check_policies(&self, cx: &mut Ctx, root: &str) -> Vec<PolicyConfig> {
        let path = format!("{root}.policies");
        let Some(list) = self.policies.as_ref().filter(|l| !l.is_empty()) else {
            cx.problem(&path, "at least one policy is required");
            return Vec::new();
        };
        if list.len() > MAX_POLICIES {
            cx.problem(
                &path,
                format!("at most {MAX_POLICIES} top-level policies are supported"),
            );
        }
        check_list(cx, &path, list, Level::Top)
    }
}

fn check_list(cx: &mut Ctx, path: &str, list: &[RawPolicy], level: Level) -> Vec<PolicyConfig> {
    let mut names = HashSet::new();
    let mut out = Vec::new();
    for (i, raw) in list.iter().enumerate() {
        let p = format!("{path}[{i}]");
        if let Some(name) = raw.name.as_deref().filter(|n| !n.is_empty()) {
            if !names.insert(name.to_string()) {
                cx.problem(
                    &format!("{p}.name"),
                    format!("duplicate policy name {name:?}"),
                );
            }
        }
        if let Some(policy) = check_policy(cx, &p, raw, level) {
            out.push(policy);
        }
    }
    out
}

fn check_policy(cx: &mut Ctx, path: &str, raw: &RawPolicy, level: Level) -> Option<PolicyConfig> {
    let name = match raw.name.as_deref() {
        Some(n) if !n.is_empty() => n.to_string(),
        _ => {
            cx.problem(&format!("{path}.name"), "policy name cannot be empty");
            String::new()
        }
    };
    let Some(kind) = raw.kind.as_deref() else {
        cx.problem(&format!("{path}.type"), "missing policy type");
        return None;
    };
    let spec = if LEAF_TYPES.contains(&kind) {
        check_leaf(cx, path, raw, kind)?
    } else if level.compound_allowed(kind) {
        check_compound(cx, path, raw, kind)?
    } else if matches!(kind, "and" | "not" | "drop" | "composite") {
        cx.problem(
            &format!("{path}.type"),
            format!("a {kind:?} policy is not allowed at this level"),
        );
        return None;
    } else {
        cx.problem(
            &format!("{path}.type"),
            format!(
                "unknown sampling policy type {kind:?}; supported: {}, and, not, drop, composite",
                LEAF_TYPES.join(", ")
            ),
        );
        return None;
    };
    Some(PolicyConfig { name, spec })
}

fn check_leaf(cx: &mut Ctx, path: &str, raw: &RawPolicy, kind: &str) -> Option<PolicySpec> {
    let spec = match kind {
        "always_sample" => PolicySpec::AlwaysSample,
        "trace_flags" => PolicySpec::TraceFlags,
        "latency" => {
            let c = raw.latency.clone().unwrap_or_default();
            if c.threshold_ms < 0 || c.upper_threshold_ms < 0 {
                cx.problem(
                    &format!("{path}.latency"),
                    "thresholds must not be negative",
                );
            }
            PolicySpec::Latency {
                threshold_ms: c.threshold_ms,
                upper_threshold_ms: c.upper_threshold_ms,
            }
        }
        "numeric_attribute" => {
            let c = raw.numeric_attribute.clone().unwrap_or_default();
            let min = (c.min_value != 0).then_some(c.min_value);
            let max = (c.max_value != 0).then_some(c.max_value);
            if min.is_none() && max.is_none() {
                cx.problem(
                    &format!("{path}.numeric_attribute"),
                    "at least one of min_value or max_value must be set (non-zero)",
                );
            }
            if let (Some(lo), Some(hi)) = (min, max) {
                if hi < lo {
                    cx.problem(
                        &format!("{path}.numeric_attribute.max_value"),
                        "must be greater than or equal to min_value",
                    );
                }
            }
            PolicySpec::NumericAttribute {
                key: c.key,
                min,
                max,
                invert: c.invert_match,
            }
        }
        "probabilistic" => {
            let c = raw.probabilistic.clone().unwrap_or_default();
            if !c.sampling_percentage.is_finite() {
                cx.problem(
                    &format!("{path}.probabilistic.sampling_percentage"),
                    "must be a number",
                );
            }
            PolicySpec::Probabilistic {
                hash_salt: c.hash_salt,
                sampling_percentage: c.sampling_percentage,
            }
        }
        "status_code" => {
            let c = raw.status_code.clone().unwrap_or_default();
            let p = format!("{path}.status_code.status_codes");
            if c.status_codes.is_empty() {
                cx.problem(&p, "expected at least one status code to filter on");
            }
            let mut codes = Vec::new();
            for (i, code) in c.status_codes.iter().enumerate() {
                match code.as_str() {
                    "OK" => codes.push(StatusCode::Ok),
                    "ERROR" => codes.push(StatusCode::Error),
                    "UNSET" => codes.push(StatusCode::Unset),
                    other => cx.problem(
                        &format!("{p}[{i}]"),
                        format!("unknown status code {other:?}, supported: OK, ERROR, UNSET"),
                    ),
                }
            }
            PolicySpec::StatusCode { codes }
        }
        "string_attribute" => {
            let c = raw.string_attribute.clone().unwrap_or_default();
            if c.enabled_regex_matching {
                for (i, v) in c.values.iter().enumerate() {
                    if let Err(e) = regex::Regex::new(v) {
                        cx.problem(
                            &format!("{path}.string_attribute.values[{i}]"),
                            format!("invalid regular expression: {e}"),
                        );
                    }
                }
            }
            PolicySpec::StringAttribute {
                key: c.key,
                values: c.values,
                regex: c.enabled_regex_matching,
                invert: c.invert_match,
            }
        }
        "rate_limiting" => {
            let c = raw.rate_limiting.clone().unwrap_or_default();
            PolicySpec::RateLimiting {
                spans_per_second: c.spans_per_second,
            }
        }
        "bytes_limiting" => {
            let c = raw.bytes_limiting.clone().unwrap_or_default();
            if c.bytes_per_second <= 0 {
                cx.problem(
                    &format!("{path}.bytes_limiting.bytes_per_second"),
                    "must be greater than 0",
                );
            }
            if c.burst_capacity < 0 {
                cx.problem(
                    &format!("{path}.bytes_limiting.burst_capacity"),
                    "must not be negative",
                );
            }
            let burst = if c.burst_capacity > 0 {
                c.burst_capacity
            } else {
                c.bytes_per_second.saturating_mul(2)
            };
            PolicySpec::BytesLimiting {
                bytes_per_second: c.bytes_per_second,
                burst_capacity: burst,
            }
        }
        "span_count" => {
            let c = raw.span_count.clone().unwrap_or_default();
            if c.min_spans < 0 || c.max_spans < 0 {
                cx.problem(
                    &format!("{path}.span_count"),
                    "span counts must not be negative",
                );
            }
            PolicySpec::SpanCount {
                min_spans: c.min_spans,
                max_spans: c.max_spans,
            }
        }
        "trace_state" => {
            let c = raw.trace_state.clone().unwrap_or_default();
            PolicySpec::TraceState {
                key: c.key,
                values: c.values,
            }
        }
        "boolean_attribute" => {
            let c = raw.boolean_attribute.clone().unwrap_or_default();
            PolicySpec::BooleanAttribute {
                key: c.key,
                value: c.value,
                invert: c.invert_match,
            }
        }
        "ottl_condition" => check_ottl(cx, path, raw),
        _ => return None,
    };
    Some(spec)
}

fn check_ottl(cx: &mut Ctx, path: &str, raw: &RawPolicy) -> PolicySpec {
    let c = raw.ottl_condition.clone().unwrap_or_default();
    let error_mode = match c.error_mode.as_deref().map(str::parse::<ErrorMode>) {
        None => ErrorMode::default(),
        Some(Ok(mode)) => mode,
        Some(Err(e)) => {
            cx.problem(&format!("{path}.ottl_condition.error_mode"), e);
            ErrorMode::default()
        }
    };
    if !c.spanevent.is_empty() {
        cx.problem(
            &format!("{path}.ottl_condition.spanevent"),
            format!(
                "span event conditions are not supported by tailgate; {}",
                ottl::SUPPORTED
            ),
        );
    }
    if c.span.is_empty() && c.spanevent.is_empty() {
        cx.problem(
            &format!("{path}.ottl_condition"),
            "at least one span condition is required",
        );
    }
    let mut span = Vec::new();
    for (i, text) in c.span.iter().enumerate() {
        match ottl::parse(text) {
            Ok(e) => span.push(e),
            Err(e) => cx.problem(&format!("{path}.ottl_condition.span[{i}]"), e),
        }
    }
    PolicySpec::OttlCondition(ottl::OttlPolicy { span, error_mode })
}

fn check_compound(cx: &mut Ctx, path: &str, raw: &RawPolicy, kind: &str) -> Option<PolicySpec> {
    let spec = match kind {
        "and" => {
            let subs = raw.and.clone().unwrap_or_default().and_sub_policy;
            let p = format!("{path}.and.and_sub_policy");
            if subs.is_empty() {
                cx.problem(&p, "at least one sub-policy is required");
            }
            PolicySpec::And(check_list(cx, &p, &subs, Level::AndSub))
        }
        "drop" => {
            let subs = raw.drop.clone().unwrap_or_default().drop_sub_policy;
            let p = format!("{path}.drop.drop_sub_policy");
            if subs.is_empty() {
                cx.problem(&p, "at least one sub-policy is required");
            }
            PolicySpec::Drop(check_list(cx, &p, &subs, Level::AndSub))
        }
        "not" => {
            let p = format!("{path}.not.not_sub_policy");
            let Some(sub) = raw.not.clone().unwrap_or_default().not_sub_policy else {
                cx.problem(&p, "a sub-policy is required");
                return None;
            };
            PolicySpec::Not(Box::new(check_policy(cx, &p, &sub, Level::AndSub)?))
        }
        "composite" => check_composite(cx, path, raw),
        _ => return None,
    };
    Some(spec)
}

fn check_composite(cx: &mut Ctx, path: &str, raw: &RawPolicy) -> PolicySpec {
    let c = raw.composite.clone().unwrap_or_default();
    let p = format!("{path}.composite");
    if c.max_total_spans_per_second <= 0 {
        cx.problem(
            &format!("{p}.max_total_spans_per_second"),
            "must be greater than 0",
        );
    }
    if c.composite_sub_policy.is_empty() {
        cx.problem(
            &format!("{p}.composite_sub_policy"),
            "at least one sub-policy is required",
        );
    }
    let subs = check_list(
        cx,
        &format!("{p}.composite_sub_policy"),
        &c.composite_sub_policy,
        Level::CompositeSub,
    );
    let total = c.max_total_spans_per_second as f64;
    let default_sps = total / c.composite_sub_policy.len().max(1) as f64;
    // As the collector: a sub-policy without a rate_allocation entry gets 0 spans per second.
    let mut alloc: HashMap<&str, f64> = HashMap::new();
    for a in &c.rate_allocation {
        let sps = if a.percent > 0 {
            a.percent as f64 / 100.0 * total
        } else {
            default_sps
        };
        alloc.insert(a.policy.as_str(), sps);
    }
    let subs = subs
        .into_iter()
        .map(|s| {
            let sps = alloc.get(s.name.as_str()).copied().unwrap_or(0.0) as i64;
            (s, sps)
        })
        .collect();
    PolicySpec::Composite {
        max_total_spans_per_second: c.max_total_spans_per_second,
        subs,
    }
}
