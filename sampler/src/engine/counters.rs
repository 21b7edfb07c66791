//! Counters mirroring `otelcol_processor_tail_sampling_*`, as plain data the proxy exports.
//!
//! All are cumulative except the gauges noted. Per-policy and global trace counts carry the
//! collector's `sampled` / `decision` labels through [`DecisionCounts`].

use crate::policy::{Decision, FinalDecision};

/// Counts by the collector's decision label: `sampled`, `not_sampled`, `dropped`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecisionCounts {
    /// `decision="sampled"` (sampled="true"; inverted-sampled included).
    pub sampled: u64,
    /// `decision="not_sampled"` (sampled="false"; inverted-not-sampled included).
    pub not_sampled: u64,
    /// `decision="dropped"` (sampled="false").
    pub dropped: u64,
}

impl DecisionCounts {
    fn add_policy(&mut self, d: Decision, n: u64) {
        match d {
            Decision::Sampled | Decision::InvertSampled => self.sampled += n,
            Decision::NotSampled | Decision::InvertNotSampled => self.not_sampled += n,
            Decision::Dropped => self.dropped += n,
        }
    }

    fn add_final(&mut self, d: FinalDecision, n: u64) {
        match d {
            FinalDecision::Sampled => self.sampled += n,
            FinalDecision::NotSampled => self.not_sampled += n,
            FinalDecision::Dropped => self.dropped += n,
        }
    }
}

/// One policy's `count_traces_sampled` / `count_spans_sampled`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyCounters {
    /// The `policy` label.
    pub policy: String,
    /// `otelcol_processor_tail_sampling_count_traces_sampled`.
    pub traces: DecisionCounts,
    /// `otelcol_processor_tail_sampling_count_spans_sampled`.
    pub spans: DecisionCounts,
}

/// A histogram with fixed upper bounds (the last bucket is +Inf).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Histogram {
    /// Inclusive upper bounds.
    pub bounds: &'static [u64],
    /// One count per bound plus the +Inf bucket.
    pub counts: Vec<u64>,
    /// Sum of observations.
    pub sum: u64,
    /// Number of observations.
    pub count: u64,
}

/// Bucket bounds for second-valued histograms (late span age, removal age).
pub const SECONDS_BOUNDS: &[u64] = &[0, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600];
/// The collector's bounds for `sampling_decision_timer_latency`.
pub const LATENCY_BOUNDS: &[u64] = &[
    1, 2, 5, 10, 25, 50, 75, 100, 150, 200, 300, 400, 500, 750, 1000, 2000, 3000, 4000, 5000,
    10000, 20000, 30000, 50000,
];

impl Histogram {
    /// An empty histogram.
    pub fn new(bounds: &'static [u64]) -> Self {
        Histogram {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0,
            count: 0,
        }
    }

    /// Records a value.
    pub fn record(&mut self, v: u64) {
        let i = self.bounds.partition_point(|b| *b < v);
        self.counts[i] += 1;
        self.sum = self.sum.saturating_add(v);
        self.count += 1;
    }
}

/// Why spans left the engine without being exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Their trace was decided not sampled.
    NotSampled,
    /// A `drop` policy matched their trace.
    DroppedByPolicy,
    /// Their trace was pushed out before its decision (`num_traces` or the byte budget).
    EvictedTooEarly,
    /// Their trace exceeded `maximum_trace_size_bytes`.
    TooLarge,
    /// Late span of a trace known (in the table or the cache) as not sampled.
    LateNotSampled,
    /// Undecided at shutdown with `drop_pending_traces_on_shutdown`.
    Shutdown,
}

/// Spans dropped, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DroppedSpans {
    /// [`DropReason::NotSampled`].
    pub not_sampled: u64,
    /// [`DropReason::DroppedByPolicy`].
    pub dropped_by_policy: u64,
    /// [`DropReason::EvictedTooEarly`].
    pub evicted_too_early: u64,
    /// [`DropReason::TooLarge`].
    pub too_large: u64,
    /// [`DropReason::LateNotSampled`].
    pub late_not_sampled: u64,
    /// [`DropReason::Shutdown`].
    pub shutdown: u64,
}

impl DroppedSpans {
    /// Adds `n` spans for `reason`.
    pub fn add(&mut self, reason: DropReason, n: u64) {
        let c = match reason {
            DropReason::NotSampled => &mut self.not_sampled,
            DropReason::DroppedByPolicy => &mut self.dropped_by_policy,
            DropReason::EvictedTooEarly => &mut self.evicted_too_early,
            DropReason::TooLarge => &mut self.too_large,
            DropReason::LateNotSampled => &mut self.late_not_sampled,
            DropReason::Shutdown => &mut self.shutdown,
        };
        *c += n;
    }

    /// All dropped spans.
    pub fn total(&self) -> u64 {
        self.not_sampled
            + self.dropped_by_policy
            + self.evicted_too_early
            + self.too_large
            + self.late_not_sampled
            + self.shutdown
    }
}

/// Everything the engine counts.
#[derive(Debug, Clone)]
pub struct Counters {
    /// `count_traces_sampled` / `count_spans_sampled`, per top-level policy (evaluation order).
    pub policies: Vec<PolicyCounters>,
    /// `global_count_traces_sampled`.
    pub global_count_traces_sampled: DecisionCounts,
    /// `new_trace_id_received`.
    pub new_trace_id_received: u64,
    /// `sampling_trace_dropped_too_early`: traces pushed out before their decision.
    pub sampling_trace_dropped_too_early: u64,
    /// `traces_dropped_too_large` (newer collectors).
    pub traces_dropped_too_large: u64,
    /// `early_releases_from_cache_decision{sampled="true"}` (spans).
    pub early_releases_from_cache_sampled: u64,
    /// `early_releases_from_cache_decision{sampled="false"}` (spans).
    pub early_releases_from_cache_not_sampled: u64,
    /// `sampling_late_span_age` (seconds since the decision).
    pub sampling_late_span_age: Histogram,
    /// `sampling_decision_timer_latency` (ms per timer run, measured with the injected clock).
    pub sampling_decision_timer_latency: Histogram,
    /// `sampling_trace_removal_age` (seconds from arrival to removal from the table).
    pub sampling_trace_removal_age: Histogram,
    /// Gauge `sampling_traces_on_memory`: traces in the table (decided ones included).
    pub sampling_traces_on_memory: u64,
    /// `sampling_policy_evaluation_error` (our policies cannot fail; always 0).
    pub sampling_policy_evaluation_error: u64,
    /// tailgate: spans received.
    pub spans_received: u64,
    /// tailgate: spans handed out for export (decided-kept and late-forwarded).
    pub spans_exported: u64,
    /// tailgate: spans dropped, by reason.
    pub spans_dropped: DroppedSpans,
    /// tailgate: spans refused because the table was full with `block_on_overflow`.
    pub spans_rejected: u64,
    /// tailgate: new traces whose first span ended more than `decision_wait` ago (probably late
    /// spans of a trace already forgotten).
    pub late_spans_new_trace: u64,
    /// tailgate: compaction passes run.
    pub compactions: u64,
    /// tailgate: spans copied out of sparse buffers.
    pub spans_detached: u64,
    /// tailgate gauge: buffered (undecided) spans.
    pub spans_buffered: u64,
    /// tailgate: undecided traces removed by [`crate::Engine::take_pending`] (handed to another
    /// gateway).
    pub handed_over_traces: u64,
    /// tailgate: their spans. With them, every span received is exported, dropped, buffered or
    /// handed over: `spans_received = spans_exported + spans_dropped.total() + spans_buffered +
    /// handed_over_spans`.
    pub handed_over_spans: u64,
    /// tailgate: decisions taken in by [`crate::Engine::import_decisions`] (traces this engine
    /// holds itself excluded).
    pub decisions_imported: u64,
    /// tailgate gauge: bytes of distinct buffers pinned by buffered spans.
    pub retained_buffer_bytes: u64,
}

impl Counters {
    pub(crate) fn new(policy_names: &[String]) -> Self {
        Counters {
            policies: policy_names
                .iter()
                .map(|n| PolicyCounters {
                    policy: n.clone(),
                    ..PolicyCounters::default()
                })
                .collect(),
            global_count_traces_sampled: DecisionCounts::default(),
            new_trace_id_received: 0,
            sampling_trace_dropped_too_early: 0,
            traces_dropped_too_large: 0,
            early_releases_from_cache_sampled: 0,
            early_releases_from_cache_not_sampled: 0,
            sampling_late_span_age: Histogram::new(SECONDS_BOUNDS),
            sampling_decision_timer_latency: Histogram::new(LATENCY_BOUNDS),
            sampling_trace_removal_age: Histogram::new(SECONDS_BOUNDS),
            sampling_traces_on_memory: 0,
            sampling_policy_evaluation_error: 0,
            spans_received: 0,
            spans_exported: 0,
            spans_dropped: DroppedSpans::default(),
            spans_rejected: 0,
            late_spans_new_trace: 0,
            compactions: 0,
            spans_detached: 0,
            spans_buffered: 0,
            handed_over_traces: 0,
            handed_over_spans: 0,
            decisions_imported: 0,
            retained_buffer_bytes: 0,
        }
    }

    pub(crate) fn policy_decision(&mut self, policy: usize, d: Decision, spans: u64) {
        if let Some(p) = self.policies.get_mut(policy) {
            p.traces.add_policy(d, 1);
            p.spans.add_policy(d, spans);
        }
    }

    pub(crate) fn final_decision(&mut self, d: FinalDecision) {
        self.global_count_traces_sampled.add_final(d, 1);
    }
}
