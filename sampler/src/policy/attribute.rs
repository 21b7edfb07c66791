//! Shared helpers of the attribute policies (`numeric_attribute`, `string_attribute`,
//! `boolean_attribute`).

use std::collections::HashSet;

use regex::RegexSet;

use super::{Decision, TraceView};
use crate::span::{AttrValue, SpanData};

/// True if some span has `key` among its resource attributes matching `on_resource`, or among its
/// span attributes matching `on_span`. The collector checks each resource once per batch; a
/// per-span check of the span's resource gives the same answer.
pub(super) fn any_attr<S: SpanData>(
    trace: &TraceView<'_, S>,
    key: &str,
    on_resource: impl Fn(&AttrValue<'_>) -> bool,
    on_span: impl Fn(&AttrValue<'_>) -> bool,
) -> bool {
    trace.spans.any(&mut |s| {
        s.resource_attribute(key).is_some_and(|v| on_resource(&v))
            || s.span_attribute(key).is_some_and(|v| on_span(&v))
    })
}

/// The collector's verdicts: without inversion a match samples; with `invert_match` a match
/// gives `InvertNotSampled` and no match `InvertSampled`.
pub(super) fn verdict(hit: bool, invert: bool) -> Decision {
    match (invert, hit) {
        (false, true) => Decision::Sampled,
        (false, false) => Decision::NotSampled,
        (true, true) => Decision::InvertNotSampled,
        (true, false) => Decision::InvertSampled,
    }
}

/// Exact values (empty values ignored, as the collector) or regular expressions (unanchored
/// search, like Go's `MatchString`).
#[derive(Debug, Clone)]
pub enum StringMatcher {
    /// Exact set.
    Exact(HashSet<String>),
    /// Any of the patterns.
    Regex(RegexSet),
}

impl StringMatcher {
    /// Builds a matcher; invalid patterns were rejected by config validation and match nothing.
    pub fn new(values: &[String], regex: bool) -> Self {
        if regex {
            let set = RegexSet::new(values).unwrap_or_else(|_| RegexSet::empty());
            StringMatcher::Regex(set)
        } else {
            StringMatcher::Exact(values.iter().filter(|v| !v.is_empty()).cloned().collect())
        }
    }

    /// Does `s` match?
    pub fn matches(&self, s: &str) -> bool {
        match self {
            StringMatcher::Exact(set) => set.contains(s),
            StringMatcher::Regex(set) => set.is_match(s),
        }
    }
}
