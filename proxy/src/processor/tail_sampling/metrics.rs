//! `otelcol_processor_tail_sampling_*` from the engine's counters, one slot per core, and the
//! stage's own drops by reason ([`Drops`]).
//!
//! The engine keeps plain cumulative counters ([`Counters`]); after each tick the owner core adds
//! what changed since its last publication to its own slots, so several engines (one per core, or
//! one processor id used in two pipelines) add up as the collector's instruments do. Names and
//! labels follow contrib v0.115.0 `processor/tailsamplingprocessor/metadata.yaml` and
//! `processor.go`: `policy` (`<component name>.<policy>` when the component id has a name) and
//! `sampled` ("true"/"false"; `dropped` decisions count as "false").

use std::cell::RefCell;
use std::time::Duration;

use tailgate_sampler::engine::{DecisionCounts, DroppedSpans, Histogram as EngineHistogram};
use tailgate_sampler::Counters;

use crate::telemetry::logging::WarnGate;
use crate::telemetry::metrics::{Histogram, Kind, Local, Registry};

/// A counter with true/false `sampled` series.
struct BySampled {
    yes: Local,
    no: Local,
}

impl BySampled {
    fn add(&self, now: &DecisionCounts, before: &DecisionCounts) {
        self.yes.add(now.sampled.saturating_sub(before.sampled));
        self.no.add(
            (now.not_sampled + now.dropped).saturating_sub(before.not_sampled + before.dropped),
        );
    }
}

/// One core's handles to every series of one `tail_sampling` instance.
pub struct TailMetrics {
    core: usize,
    traces: Vec<BySampled>,
    spans: Vec<BySampled>,
    global: BySampled,
    new_trace: Local,
    too_early: Local,
    too_large: Local,
    early_true: Local,
    early_false: Local,
    eval_error: Local,
    on_memory: Local,
    late_age: Histogram,
    timer_latency: Histogram,
    removal_age: Histogram,
    buffered_spans: Local,
    retained_bytes: Local,
    /// `tailgate_tail_sampling_dropped_spans_total{processor,reason}`, in [`ENGINE_DROPS`] order.
    engine_dropped: Vec<Local>,
    last: RefCell<Counters>,
}

/// Reads one reason's count.
type ReadDrops = fn(&DroppedSpans) -> u64;

/// The engine's reasons for letting spans go unexported (`DroppedSpans`), as `reason` labels,
/// each with its counter.
const ENGINE_DROPS: [(&str, ReadDrops); 6] = [
    ("not_sampled", |d| d.not_sampled),
    ("dropped_by_policy", |d| d.dropped_by_policy),
    ("evicted_too_early", |d| d.evicted_too_early),
    ("too_large", |d| d.too_large),
    ("late_not_sampled", |d| d.late_not_sampled),
    ("shutdown", |d| d.shutdown),
];

const PREFIX: &str = "otelcol_processor_tail_sampling_";

impl TailMetrics {
    /// Registers (or finds) the series for `component` (its id, e.g. `tail_sampling/gw`) for an
    /// engine whose counters are `initial` (a fresh engine's: policies in evaluation order).
    pub fn register(reg: &Registry, core: usize, component: &str, initial: &Counters) -> Self {
        let policies: Vec<String> = initial.policies.iter().map(|p| p.policy.clone()).collect();
        let name_part = component.split_once('/').map(|(_, n)| n);
        let counter = |metric: &str, help: &'static str, labels: &[(&str, &str)]| {
            reg.register(&format!("{PREFIX}{metric}"), help, Kind::Counter, labels)
                .local(core)
        };
        let by_sampled = |metric: &str, help: &'static str, policy: Option<&str>| {
            let mk = |v: &str| match policy {
                Some(p) => counter(metric, help, &[("policy", p), ("sampled", v)]),
                None => counter(metric, help, &[("sampled", v)]),
            };
            BySampled {
                yes: mk("true"),
                no: mk("false"),
            }
        };
        let label = |p: &str| match name_part {
            Some(n) if !n.is_empty() => format!("{n}.{p}"),
            _ => p.to_owned(),
        };
        let traces = policies
            .iter()
            .map(|p| {
                by_sampled(
                    "count_traces_sampled_total",
                    "Count of traces that were sampled or not per sampling policy",
                    Some(&label(p)),
                )
            })
            .collect();
        let spans = policies
            .iter()
            .map(|p| {
                by_sampled(
                    "count_spans_sampled_total",
                    "Count of spans that were sampled or not per sampling policy",
                    Some(&label(p)),
                )
            })
            .collect();
        let hist = |metric: &str, help: &'static str, bounds: &[u64]| {
            let b: Vec<f64> = bounds.iter().map(|v| *v as f64).collect();
            reg.histogram(&format!("{PREFIX}{metric}"), help, &[], &b)
        };
        let gauge = |metric: &str, help: &'static str| {
            reg.register(metric, help, Kind::Gauge, &[("processor", component)])
                .local(core)
        };
        TailMetrics {
            core,
            traces,
            spans,
            global: by_sampled(
                "global_count_traces_sampled_total",
                "Global count of traces that were sampled or not by at least one policy",
                None,
            ),
            new_trace: counter(
                "new_trace_id_received_total",
                "Counts the arrival of new traces",
                &[],
            ),
            too_early: counter(
                "sampling_trace_dropped_too_early_total",
                "Count of traces that needed to be dropped before the configured wait time",
                &[],
            ),
            too_large: counter(
                "traces_dropped_too_large_total",
                "Count of traces dropped because they exceeded maximum_trace_size_bytes",
                &[],
            ),
            early_true: counter(
                "early_releases_from_cache_decision_total",
                "Number of spans that were able to be immediately released due to a decision cache hit.",
                &[("sampled", "true")],
            ),
            early_false: counter(
                "early_releases_from_cache_decision_total",
                "Number of spans that were able to be immediately released due to a decision cache hit.",
                &[("sampled", "false")],
            ),
            eval_error: counter(
                "sampling_policy_evaluation_error_total",
                "Count of sampling policy evaluation errors",
                &[],
            ),
            on_memory: reg
                .register(
                    &format!("{PREFIX}sampling_traces_on_memory"),
                    "Tracks the number of traces current on memory",
                    Kind::Gauge,
                    &[],
                )
                .local(core),
            late_age: hist(
                "sampling_late_span_age",
                "Time (in seconds) from the sampling decision was taken and the arrival of a late span",
                initial.sampling_late_span_age.bounds,
            ),
            timer_latency: hist(
                "sampling_decision_timer_latency",
                "Latency (in milliseconds) of each run of the sampling decision timer",
                initial.sampling_decision_timer_latency.bounds,
            ),
            removal_age: hist(
                "sampling_trace_removal_age",
                "Time (in seconds) from arrival of a new trace until its removal from memory",
                initial.sampling_trace_removal_age.bounds,
            ),
            buffered_spans: gauge(
                "tailgate_tail_sampling_buffered_spans",
                "Spans buffered in undecided traces (tailgate).",
            ),
            retained_bytes: gauge(
                "tailgate_tail_sampling_retained_buffer_bytes",
                "Bytes of request buffers pinned by buffered spans (tailgate).",
            ),
            engine_dropped: ENGINE_DROPS
                .iter()
                .map(|(reason, _)| {
                    reg.register(
                        "tailgate_tail_sampling_dropped_spans_total",
                        "Spans the engine let go without exporting them, by reason: not sampled, a drop policy, evicted before the decision (num_traces or the byte budget), over maximum_trace_size_bytes, late for a not-sampled trace, undecided at shutdown (tailgate).",
                        Kind::Counter,
                        &[("processor", component), ("reason", reason)],
                    )
                    .local(core)
                })
                .collect(),
            last: RefCell::new(initial.clone()),
        }
    }

    /// Adds what changed since the last call.
    pub fn publish(&self, now: &Counters) {
        let mut last = self.last.borrow_mut();
        let before = &*last;
        for (i, p) in now.policies.iter().enumerate() {
            let b = before.policies.get(i).cloned().unwrap_or_default();
            if let Some(t) = self.traces.get(i) {
                t.add(&p.traces, &b.traces);
            }
            if let Some(s) = self.spans.get(i) {
                s.add(&p.spans, &b.spans);
            }
        }
        self.global.add(
            &now.global_count_traces_sampled,
            &before.global_count_traces_sampled,
        );
        let d = |a: u64, b: u64| a.saturating_sub(b);
        self.new_trace
            .add(d(now.new_trace_id_received, before.new_trace_id_received));
        self.too_early.add(d(
            now.sampling_trace_dropped_too_early,
            before.sampling_trace_dropped_too_early,
        ));
        self.too_large.add(d(
            now.traces_dropped_too_large,
            before.traces_dropped_too_large,
        ));
        self.early_true.add(d(
            now.early_releases_from_cache_sampled,
            before.early_releases_from_cache_sampled,
        ));
        self.early_false.add(d(
            now.early_releases_from_cache_not_sampled,
            before.early_releases_from_cache_not_sampled,
        ));
        self.eval_error.add(d(
            now.sampling_policy_evaluation_error,
            before.sampling_policy_evaluation_error,
        ));
        for ((_, read), c) in ENGINE_DROPS.iter().zip(&self.engine_dropped) {
            c.add(read(&now.spans_dropped).saturating_sub(read(&before.spans_dropped)));
        }
        self.on_memory.set(now.sampling_traces_on_memory);
        self.buffered_spans.set(now.spans_buffered);
        self.retained_bytes.set(now.retained_buffer_bytes);
        self.hist(
            &self.late_age,
            &now.sampling_late_span_age,
            &before.sampling_late_span_age,
        );
        self.hist(
            &self.timer_latency,
            &now.sampling_decision_timer_latency,
            &before.sampling_decision_timer_latency,
        );
        self.hist(
            &self.removal_age,
            &now.sampling_trace_removal_age,
            &before.sampling_trace_removal_age,
        );
        *last = now.clone();
    }

    fn hist(&self, h: &Histogram, now: &EngineHistogram, before: &EngineHistogram) {
        let deltas: Vec<u64> = now
            .counts
            .iter()
            .enumerate()
            .map(|(i, c)| c.saturating_sub(before.counts.get(i).copied().unwrap_or(0)))
            .collect();
        h.add_counts(
            self.core,
            &deltas,
            now.sum.saturating_sub(before.sum),
            now.count.saturating_sub(before.count),
        );
    }
}

// === spans the stage itself drops ===

/// Why the stage (not the engine's policies) dropped spans: the `reason` label of
/// `tailgate_processor_dropped_spans_total`. Every span counted there is counted once in
/// `otelcol_processor_dropped_spans_total{processor}` too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// A span whose fields do not parse, left out of its part (the others are inserted). The
    /// receivers refuse such spans, so this counts only what came some other way.
    MalformedSpan,
    /// A request or part whose structure does not walk (cannot be split or scanned at all).
    MalformedRequest,
    /// Kept spans the next stage refused: decided spans have nowhere to wait.
    NextRefused,
    /// A part for a core that had already stopped (shutdown).
    CoreStopped,
    /// A part still unread in a cross-core channel when the drain deadline passed.
    DrainTimeout,
}

impl DropReason {
    /// Every reason, in declaration order (so `ALL[r as usize] == r`).
    pub const ALL: [DropReason; 5] = [
        DropReason::MalformedSpan,
        DropReason::MalformedRequest,
        DropReason::NextRefused,
        DropReason::CoreStopped,
        DropReason::DrainTimeout,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            DropReason::MalformedSpan => "malformed_span",
            DropReason::MalformedRequest => "malformed_request",
            DropReason::NextRefused => "next_stage_refused",
            DropReason::CoreStopped => "core_stopped",
            DropReason::DrainTimeout => "drain_timeout",
        }
    }
}

/// At most one warning per this interval per core about dropped spans.
const DROP_WARN_INTERVAL: Duration = Duration::from_secs(10);

/// Counts the stage's drops by reason and warns about them, rate-limited.
pub struct Drops {
    component: String,
    /// `otelcol_processor_dropped_spans_total{processor}`.
    total: Local,
    /// `tailgate_processor_dropped_spans_total{processor,reason}`, indexed by `DropReason as usize`.
    by_reason: [Local; DropReason::ALL.len()],
    warn: WarnGate,
}

impl Drops {
    /// Registers the by-reason series of `component` on `core`; `total` is the collector's
    /// `otelcol_processor_dropped_spans_total` series of the same processor.
    pub fn register(reg: &Registry, core: usize, component: &str, total: Local) -> Self {
        let by_reason = DropReason::ALL.map(|r| {
            reg.register(
                "tailgate_processor_dropped_spans_total",
                "Spans counted in otelcol_processor_dropped_spans_total, by reason (tailgate).",
                Kind::Counter,
                &[("processor", component), ("reason", r.label())],
            )
            .local(core)
        });
        Drops {
            component: component.to_owned(),
            total,
            by_reason,
            warn: WarnGate::new(DROP_WARN_INTERVAL),
        }
    }

    /// Counts `spans` dropped for `reason` and warns (at most once per interval; the line says
    /// how many drops went unlogged since the last one).
    pub fn count(&self, reason: DropReason, spans: u64, detail: &dyn std::fmt::Display) {
        self.total.add(spans);
        self.by_reason[reason as usize].add(spans);
        if let Some(quiet) = self.warn.due() {
            tracing::warn!(
                processor = %self.component,
                spans,
                reason = reason.label(),
                drops_since_last_warning = quiet,
                "tail_sampling dropped spans: {detail}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::DropReason;

    #[test]
    fn reasons_index_their_counters() {
        for (i, r) in DropReason::ALL.into_iter().enumerate() {
            assert_eq!(r as usize, i, "{}", r.label());
        }
    }
}
