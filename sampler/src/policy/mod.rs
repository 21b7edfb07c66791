//! The collector's sampling policies, evaluated over one buffered trace.
//!
//! A [`Policy`] is built from a checked [`PolicySpec`]; stateful ones (rate limits, composite)
//! keep their counters inside. Aggregatable inputs (span count, time window, status codes seen,
//! sampled flag) come precomputed in [`TraceSummary`]; attribute policies scan the spans lazily.

mod attribute;
mod attribute_scan;
mod limits;
pub mod ottl;
pub mod probabilistic;
mod trace_state;

use crate::config::{PolicyConfig, PolicySpec};
use crate::span::{AttrValue, SpanData};

pub use attribute::StringMatcher;
pub use limits::{Composite, RateLimiter, TokenBucket};
pub use probabilistic::Probabilistic;

/// One policy's verdict, with the collector's (deprecated) inverted forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    /// Keep.
    Sampled,
    /// Do not keep (unless another policy keeps).
    NotSampled,
    /// `invert_match` found no match: keeps unless some policy said `NotSampled`.
    InvertSampled,
    /// `invert_match` found a match: not sampled, overriding `Sampled` (but not `Dropped`).
    InvertNotSampled,
    /// A `drop` policy matched: not sampled, overriding everything.
    Dropped,
}

impl Decision {
    /// True for the decisions the collector labels `sampled="true"`.
    pub fn is_sampled_label(self) -> bool {
        matches!(self, Decision::Sampled | Decision::InvertSampled)
    }
}

/// Running aggregates of a trace's spans except their count: what the engine's trace slot stores
/// (the count lives in the slot's span chain) and what [`TraceSummary`] adds the count to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanAggregates {
    /// Sum of the spans' wire sizes.
    pub bytes: u64,
    /// Earliest start (Unix ns); `u64::MAX` before the first span.
    pub min_start: u64,
    /// Latest end (Unix ns).
    pub max_end: u64,
    /// Bit per status code seen (1 << code).
    pub status_seen: u8,
    /// Some span had the W3C sampled flag.
    pub sampled_flag_seen: bool,
    /// The root span arrived.
    pub root_seen: bool,
}

impl SpanAggregates {
    /// No span yet.
    pub const EMPTY: SpanAggregates = SpanAggregates {
        bytes: 0,
        min_start: u64::MAX,
        max_end: 0,
        status_seen: 0,
        sampled_flag_seen: false,
        root_seen: false,
    };

    /// Folds in a span given its summary fields and wire size (read once, e.g. by the scan).
    #[inline]
    pub fn add_fields(&mut self, f: &crate::span::SummaryFields, wire_len: usize) {
        self.bytes += wire_len as u64;
        self.min_start = self.min_start.min(f.start_unix_nanos);
        self.max_end = self.max_end.max(f.end_unix_nanos);
        self.status_seen |= 1 << f.status_code.code();
        self.sampled_flag_seen |= f.trace_flags & 1 != 0;
        self.root_seen |= f.is_root;
    }
}

/// Running aggregates of a trace, updated on every span insert so that the status, latency,
/// span-count and flags policies need no rescan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceSummary {
    /// Spans received.
    pub span_count: u64,
    /// Everything else folded over the spans.
    pub agg: SpanAggregates,
}

impl Default for TraceSummary {
    fn default() -> Self {
        TraceSummary {
            span_count: 0,
            agg: SpanAggregates::EMPTY,
        }
    }
}

impl TraceSummary {
    /// Folds one span in.
    #[inline]
    pub fn add<S: SpanData>(&mut self, span: &S) {
        self.add_fields(&span.summary_fields(), span.wire_len());
    }

    /// Folds in a span given its summary fields and wire size (read once, e.g. by the scan).
    #[inline]
    pub fn add_fields(&mut self, f: &crate::span::SummaryFields, wire_len: usize) {
        self.span_count += 1;
        self.agg.add_fields(f, wire_len);
    }

    /// Latest end minus earliest start, in ns (negative if ends precede starts).
    pub fn duration_ns(&self) -> i128 {
        if self.span_count == 0 {
            return 0;
        }
        i128::from(self.agg.max_end) - i128::from(self.agg.min_start)
    }
}

/// The spans of a trace, for the policies that scan them.
pub trait SpanList<S> {
    /// True if `f` is true for some span (stops at the first).
    fn any(&self, f: &mut dyn FnMut(&S) -> bool) -> bool;

    /// The spans as a slice, if they are one (lets the attribute policies scan them together).
    fn as_slice(&self) -> Option<&[S]> {
        None
    }
}

/// A slice of spans as a [`SpanList`].
pub struct SliceSpans<'a, S>(pub &'a [S]);

impl<S> SpanList<S> for SliceSpans<'_, S> {
    fn any(&self, f: &mut dyn FnMut(&S) -> bool) -> bool {
        self.0.iter().any(f)
    }

    fn as_slice(&self) -> Option<&[S]> {
        Some(self.0)
    }
}

/// What a policy sees of a trace.
pub struct TraceView<'a, S> {
    /// Trace ID.
    pub trace_id: [u8; 16],
    /// Aggregates.
    pub summary: &'a TraceSummary,
    /// The buffered spans.
    pub spans: &'a dyn SpanList<S>,
}

/// A runtime policy (with its state).
#[derive(Debug)]
pub enum Policy {
    /// `always_sample`.
    AlwaysSample,
    /// `latency`, bounds in ns.
    Latency {
        /// Lower bound.
        lower_ns: i128,
        /// Upper bound (None = open).
        upper_ns: Option<i128>,
    },
    /// `numeric_attribute`.
    NumericAttribute {
        /// Key.
        key: String,
        /// Min.
        min: i64,
        /// Max.
        max: i64,
        /// Inverted.
        invert: bool,
    },
    /// `probabilistic`.
    Probabilistic(Probabilistic),
    /// `status_code`, bit per code.
    StatusCode {
        /// Mask.
        mask: u8,
    },
    /// `string_attribute`.
    StringAttribute {
        /// Key.
        key: String,
        /// Matcher.
        matcher: StringMatcher,
        /// Inverted.
        invert: bool,
    },
    /// `rate_limiting`.
    RateLimiting(RateLimiter),
    /// `bytes_limiting`.
    BytesLimiting(TokenBucket),
    /// `span_count`.
    SpanCount {
        /// Min.
        min: i64,
        /// Max (0 = none).
        max: i64,
    },
    /// `trace_state`.
    TraceState(trace_state::TraceStateFilter),
    /// `boolean_attribute`.
    BooleanAttribute {
        /// Key.
        key: String,
        /// Value.
        value: bool,
        /// Inverted.
        invert: bool,
    },
    /// `trace_flags`.
    TraceFlags,
    /// `ottl_condition`.
    Ottl(ottl::OttlPolicy),
    /// `and`.
    And(Vec<Policy>),
    /// `not`.
    Not(Box<Policy>),
    /// `drop`.
    Drop(Vec<Policy>),
    /// `composite`.
    Composite(Composite),
}

impl Policy {
    /// Builds the runtime policy for a checked config.
    pub fn build(config: &PolicyConfig) -> Policy {
        Policy::build_for_shard(config, 1)
    }

    /// Builds the policy for one of `shards` engines: every rate (`rate_limiting`,
    /// `bytes_limiting`, `composite`) is divided by the shard count, rounded up, so that the
    /// shards together admit what one collector would (assuming traces spread evenly).
    pub fn build_for_shard(config: &PolicyConfig, shards: u32) -> Policy {
        let n = i64::from(shards.max(1));
        let share = |rate: i64| if rate <= 0 { rate } else { (rate + n - 1) / n };
        let sub = |c: &PolicyConfig| Policy::build_for_shard(c, shards);
        match &config.spec {
            PolicySpec::AlwaysSample => Policy::AlwaysSample,
            PolicySpec::Latency {
                threshold_ms,
                upper_threshold_ms,
            } => Policy::Latency {
                lower_ns: i128::from(*threshold_ms) * 1_000_000,
                upper_ns: (*upper_threshold_ms != 0)
                    .then(|| i128::from(*upper_threshold_ms) * 1_000_000),
            },
            PolicySpec::NumericAttribute {
                key,
                min,
                max,
                invert,
            } => Policy::NumericAttribute {
                key: key.clone(),
                min: min.unwrap_or(i64::MIN),
                max: max.unwrap_or(i64::MAX),
                invert: *invert,
            },
            PolicySpec::Probabilistic {
                hash_salt,
                sampling_percentage,
            } => Policy::Probabilistic(Probabilistic::new(hash_salt, *sampling_percentage)),
            PolicySpec::StatusCode { codes } => Policy::StatusCode {
                mask: codes.iter().fold(0, |m, c| m | 1 << c.code()),
            },
            PolicySpec::StringAttribute {
                key,
                values,
                regex,
                invert,
            } => Policy::StringAttribute {
                key: key.clone(),
                matcher: StringMatcher::new(values, *regex),
                invert: *invert,
            },
            PolicySpec::RateLimiting { spans_per_second } => {
                Policy::RateLimiting(RateLimiter::new(share(*spans_per_second)))
            }
            PolicySpec::BytesLimiting {
                bytes_per_second,
                burst_capacity,
            } => Policy::BytesLimiting(TokenBucket::new(
                share(*bytes_per_second),
                share(*burst_capacity),
            )),
            PolicySpec::SpanCount {
                min_spans,
                max_spans,
            } => Policy::SpanCount {
                min: *min_spans,
                max: *max_spans,
            },
            PolicySpec::TraceState { key, values } => {
                Policy::TraceState(trace_state::TraceStateFilter::new(key, values))
            }
            PolicySpec::BooleanAttribute { key, value, invert } => Policy::BooleanAttribute {
                key: key.clone(),
                value: *value,
                invert: *invert,
            },
            PolicySpec::TraceFlags => Policy::TraceFlags,
            PolicySpec::OttlCondition(p) => Policy::Ottl(p.clone()),
            PolicySpec::And(subs) => Policy::And(subs.iter().map(sub).collect()),
            PolicySpec::Not(inner) => Policy::Not(Box::new(sub(inner))),
            PolicySpec::Drop(subs) => Policy::Drop(subs.iter().map(sub).collect()),
            PolicySpec::Composite {
                max_total_spans_per_second,
                subs,
            } => Policy::Composite(Composite::new(
                share(*max_total_spans_per_second),
                subs.iter().map(|(c, sps)| (sub(c), share(*sps))).collect(),
            )),
        }
    }

    /// True for a top-level `drop` policy (evaluated before the others, as the collector does).
    pub fn is_drop(&self) -> bool {
        matches!(self, Policy::Drop(_))
    }

    /// Evaluates the policy; `now_ns` drives the rate-based ones.
    pub fn evaluate<S: SpanData>(&mut self, trace: &TraceView<'_, S>, now_ns: u64) -> Decision {
        self.evaluate_with(trace, now_ns, None)
    }

    /// The key of an attribute policy (`numeric_attribute`, `string_attribute`,
    /// `boolean_attribute`); `None` for the others.
    fn attribute_key(&self) -> Option<&str> {
        match self {
            Policy::NumericAttribute { key, .. }
            | Policy::StringAttribute { key, .. }
            | Policy::BooleanAttribute { key, .. } => Some(key),
            _ => None,
        }
    }

    /// Does an attribute value found on `side` match this attribute policy (before inversion)?
    /// As the collector: a string resource value is matched as is, an empty string span value
    /// never matches; non-matching types read as the collector's zero values. False for the
    /// other policies.
    fn attribute_test(&self, v: &AttrValue<'_>, side: attribute_scan::Side) -> bool {
        match self {
            Policy::NumericAttribute { min, max, .. } => {
                let n = v.as_int_or_zero();
                n >= *min && n <= *max
            }
            Policy::StringAttribute { matcher, .. } => {
                let s = v.as_str_or_empty();
                (side == attribute_scan::Side::Resource || !s.is_empty()) && matcher.matches(s)
            }
            Policy::BooleanAttribute { value, .. } => v.as_bool_or_false() == *value,
            _ => false,
        }
    }

    /// The policies nested in this one (`and`, `not`, `drop`, `composite`).
    fn sub_policies(&self) -> SubPolicies<'_> {
        match self {
            Policy::And(subs) | Policy::Drop(subs) => SubPolicies::List(subs.iter()),
            Policy::Not(sub) => SubPolicies::List(std::slice::from_ref(&**sub).iter()),
            Policy::Composite(c) => SubPolicies::Composite(c.policies()),
            _ => SubPolicies::List([].iter()),
        }
    }

    /// An attribute policy's verdict, from `hits` if the scan answered it, else by scanning.
    fn attribute_verdict<S: SpanData>(
        &self,
        trace: &TraceView<'_, S>,
        hits: Option<&attribute_scan::AttributeHits>,
    ) -> Decision {
        let (key, invert) = match self {
            Policy::NumericAttribute { key, invert, .. }
            | Policy::StringAttribute { key, invert, .. }
            | Policy::BooleanAttribute { key, invert, .. } => (key, *invert),
            _ => return Decision::NotSampled, // not an attribute policy: never called
        };
        let hit = match hits.and_then(|h| h.get(self)) {
            Some(hit) => hit,
            None => attribute_scan::scan_one(self, key, trace),
        };
        attribute::verdict(hit, invert)
    }

    /// Evaluates the policy, taking attribute policies' answers from `hits` where it has them.
    fn evaluate_with<S: SpanData>(
        &mut self,
        trace: &TraceView<'_, S>,
        now_ns: u64,
        hits: Option<&attribute_scan::AttributeHits>,
    ) -> Decision {
        let sampled = |b: bool| {
            if b {
                Decision::Sampled
            } else {
                Decision::NotSampled
            }
        };
        match self {
            Policy::AlwaysSample => Decision::Sampled,
            Policy::Latency { lower_ns, upper_ns } => {
                let d = trace.summary.duration_ns();
                sampled(
                    trace.summary.span_count > 0
                        && d >= *lower_ns
                        && upper_ns.is_none_or(|u| d <= u),
                )
            }
            Policy::Probabilistic(p) => sampled(p.samples(&trace.trace_id)),
            Policy::StatusCode { mask } => sampled(trace.summary.agg.status_seen & *mask != 0),
            Policy::RateLimiting(r) => sampled(r.allow(trace.summary.span_count, now_ns)),
            Policy::BytesLimiting(b) => sampled(b.allow(trace.summary.agg.bytes, now_ns)),
            Policy::SpanCount { min, max } => {
                let n = trace.summary.span_count as i64;
                sampled(n >= *min && (*max == 0 || n <= *max))
            }
            Policy::TraceState(f) => sampled(trace.spans.any(&mut |s| f.matches(s.trace_state()))),
            Policy::TraceFlags => sampled(trace.summary.agg.sampled_flag_seen),
            Policy::NumericAttribute { .. }
            | Policy::StringAttribute { .. }
            | Policy::BooleanAttribute { .. } => self.attribute_verdict(trace, hits),
            Policy::Ottl(p) => {
                // An evaluation error under `propagate` ends the scan: not sampled (contrib
                // returns the policy's Error decision, which samples nothing).
                let mut failed = false;
                let hit = trace.spans.any(&mut |s| match p.matches(s) {
                    Ok(hit) => hit,
                    Err(_) => {
                        failed = true;
                        true
                    }
                });
                sampled(hit && !failed)
            }
            Policy::And(subs) => {
                for sub in subs.iter_mut() {
                    if matches!(
                        sub.evaluate_with(trace, now_ns, hits),
                        Decision::NotSampled | Decision::InvertNotSampled
                    ) {
                        return Decision::NotSampled;
                    }
                }
                Decision::Sampled
            }
            Policy::Drop(subs) => {
                for sub in subs.iter_mut() {
                    if matches!(
                        sub.evaluate_with(trace, now_ns, hits),
                        Decision::NotSampled | Decision::InvertNotSampled
                    ) {
                        return Decision::NotSampled;
                    }
                }
                Decision::Dropped
            }
            Policy::Not(sub) => match sub.evaluate_with(trace, now_ns, hits) {
                Decision::Sampled => Decision::NotSampled,
                Decision::NotSampled => Decision::Sampled,
                other => other,
            },
            Policy::Composite(c) => c.evaluate_with(trace, now_ns, hits),
        }
    }
}

/// The policies nested in a policy ([`Policy::sub_policies`]), without allocating.
enum SubPolicies<'a> {
    /// `and`, `drop`, `not` (one), or none.
    List(std::slice::Iter<'a, Policy>),
    /// `composite`.
    Composite(limits::CompositeSubs<'a>),
}

impl<'a> Iterator for SubPolicies<'a> {
    type Item = &'a Policy;

    fn next(&mut self) -> Option<&'a Policy> {
        match self {
            SubPolicies::List(it) => it.next(),
            SubPolicies::Composite(it) => it.next(),
        }
    }
}

/// Combines top-level verdicts into the final decision, as the collector does: any `Dropped`
/// wins; then any `InvertNotSampled` → not sampled; then any `Sampled` → sampled; then any
/// `InvertSampled` with no `NotSampled` → sampled; else not sampled.
pub fn combine(seen: DecisionSet) -> FinalDecision {
    if seen.has(Decision::Dropped) {
        FinalDecision::Dropped
    } else if seen.has(Decision::InvertNotSampled) {
        FinalDecision::NotSampled
    } else if seen.has(Decision::Sampled)
        || (seen.has(Decision::InvertSampled) && !seen.has(Decision::NotSampled))
    {
        FinalDecision::Sampled
    } else {
        FinalDecision::NotSampled
    }
}

/// Which verdicts occurred among the evaluated policies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecisionSet(u8);

impl DecisionSet {
    /// Records a verdict.
    pub fn insert(&mut self, d: Decision) {
        self.0 |= 1 << d as u8;
    }
    /// Was this verdict seen?
    pub fn has(self, d: Decision) -> bool {
        self.0 & (1 << d as u8) != 0
    }
}

/// A trace's final fate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FinalDecision {
    /// Exported.
    Sampled,
    /// Not exported.
    NotSampled,
    /// Not exported because a `drop` policy matched.
    Dropped,
}

impl FinalDecision {
    /// True if the spans are exported.
    pub fn is_sampled(self) -> bool {
        self == FinalDecision::Sampled
    }
}

/// What evaluating a trace's top-level policies gave ([`evaluate_policies`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Evaluation {
    /// The verdicts that occurred.
    pub seen: DecisionSet,
    /// Bit `i`: top-level policy `i` voted to keep (`Sampled`, `InvertSampled`) or to drop
    /// (`Dropped`); policies past the 64th are not recorded.
    pub matched: u64,
    /// The first policy that gave each verdict, indexed by `Decision as usize`.
    pub first: [Option<u16>; 5],
}

/// Evaluates `policies` (drop policies first) in order over a trace, calling `each(i, verdict)`
/// for every policy evaluated, and stops after a `Dropped`, or after a `Sampled` when
/// `sample_on_first_match`. Attribute policies (also nested ones) are answered by one scan of
/// the trace's attributes, made when the first policy holding one is reached.
pub fn evaluate_policies<S: SpanData>(
    policies: &mut [Policy],
    trace: &TraceView<'_, S>,
    now_ns: u64,
    sample_on_first_match: bool,
    mut each: impl FnMut(usize, Decision),
) -> Evaluation {
    let mut out = Evaluation::default();
    let mut hits = None;
    let mut scanned = false;
    for i in 0..policies.len() {
        if !scanned && attribute_scan::has_attribute_policy(&policies[i]) {
            scanned = true;
            hits = attribute_scan::scan(&policies[i..], trace);
        }
        let d = policies[i].evaluate_with(trace, now_ns, hits.as_ref());
        each(i, d);
        out.seen.insert(d);
        if matches!(
            d,
            Decision::Sampled | Decision::InvertSampled | Decision::Dropped
        ) && i < 64
        {
            out.matched |= 1 << i;
        }
        out.first[d as usize].get_or_insert(i as u16);
        if d == Decision::Dropped || (sample_on_first_match && d == Decision::Sampled) {
            break;
        }
    }
    out
}

/// Evaluates a whole trace given as a slice with fresh policies built from `configs`: the
/// reference the engine's incremental path is tested against.
pub fn decide_whole_trace<S: SpanData>(
    configs: &[PolicyConfig],
    spans: &[S],
    now_ns: u64,
    sample_on_first_match: bool,
) -> FinalDecision {
    let mut policies: Vec<Policy> = configs.iter().map(Policy::build).collect();
    order_drop_first(&mut policies);
    let mut summary = TraceSummary::default();
    spans.iter().for_each(|s| summary.add(s));
    let trace_id = spans.first().map(|s| s.trace_id()).unwrap_or_default();
    let view = TraceView {
        trace_id,
        summary: &summary,
        spans: &SliceSpans(spans),
    };
    let evaluation = evaluate_policies(
        &mut policies,
        &view,
        now_ns,
        sample_on_first_match,
        |_, _| {},
    );
    combine(evaluation.seen)
}

/// Moves drop policies first, keeping the relative order (the collector does this on load).
pub fn order_drop_first(policies: &mut [Policy]) {
    policies.sort_by_key(|p| !p.is_drop());
}
