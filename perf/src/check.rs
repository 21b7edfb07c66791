//! Joins the manifest (what was sent) with sink observations (what arrived).
//!
//! For every trace in the manifest: the distinct spans that arrived at any sink, compared with
//! the count sent, make it *complete*, *partial* or *missing*; a span that arrived more than
//! once makes it *duplicated* as well. Traces are counted per class: `error` (one span has
//! status ERROR), `slow` (root above the threshold), `other` (neither), and `all`. A trace that
//! is both error and slow counts in both classes. Per sink: spans and traces received, and how
//! many traces arrived at more than one sink (split traces: what trace-ID routing prevents).

use std::collections::HashMap;

use crate::manifest::ManifestEntry;
use crate::sink::SpanKey;

/// The spans one sink received.
#[derive(Debug, Clone, Default)]
pub struct SinkObservations {
    /// Sink name (file stem or label).
    pub name: String,
    /// One key per received span, duplicates included.
    pub keys: Vec<SpanKey>,
}

/// Counts for one class of traces.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ClassRow {
    /// `error`, `slow`, `other` or `all`.
    pub class: String,
    /// Traces of this class in the manifest.
    pub traces: u64,
    /// Every sent span arrived.
    pub complete: u64,
    /// Some but not all spans arrived.
    pub partial: u64,
    /// No span arrived.
    pub missing: u64,
    /// At least one span arrived more than once.
    pub duplicated: u64,
    /// (complete + partial) / traces: traces with anything kept.
    pub kept_fraction: f64,
    /// complete / traces: traces kept whole.
    pub whole_fraction: f64,
}

/// What one sink received.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct SinkRow {
    /// Sink name.
    pub name: String,
    /// Spans received (duplicates included).
    pub spans: u64,
    /// Distinct traces with at least one span here.
    pub traces: u64,
    /// This sink's share of all received spans.
    pub span_share: f64,
}

/// The result of a check.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct CheckReport {
    /// Rows for `error`, `slow`, `other`, `all`, in that order.
    pub classes: Vec<ClassRow>,
    /// Per-sink rows, in the order the sinks were given.
    pub sinks: Vec<SinkRow>,
    /// Traces whose spans arrived at more than one sink.
    pub split_traces: u64,
    /// max / mean spans over sinks (1.0 is perfect balance; 0 with no sinks or spans).
    pub balance_max_over_mean: f64,
    /// Received spans whose trace is not in the manifest.
    pub unknown_spans: u64,
    /// Distinct traces received that are not in the manifest.
    pub unknown_traces: u64,
}

impl CheckReport {
    /// The row of a class (`error`, `slow`, `other`, `all`).
    pub fn class(&self, name: &str) -> Option<&ClassRow> {
        self.classes.iter().find(|r| r.class == name)
    }
}

/// Per-trace tally while joining.
#[derive(Debug, Default)]
struct Arrivals {
    /// span ID → times received.
    spans: HashMap<[u8; 8], u32>,
    /// Bit set of sinks that saw the trace (first 64 sinks; more are folded in).
    sinks: u64,
}

/// Joins the manifest with the observations of every sink.
pub fn check(manifest: &[ManifestEntry], sinks: &[SinkObservations]) -> CheckReport {
    let mut arrivals: HashMap<[u8; 16], Arrivals> = HashMap::with_capacity(manifest.len());
    let mut report = CheckReport::default();
    for (i, sink) in sinks.iter().enumerate() {
        let mut traces_here: HashMap<[u8; 16], ()> = HashMap::new();
        for key in &sink.keys {
            traces_here.insert(key.trace_id, ());
            let a = arrivals.entry(key.trace_id).or_default();
            *a.spans.entry(key.span_id).or_insert(0) += 1;
            a.sinks |= 1u64 << (i % 64);
        }
        report.sinks.push(SinkRow {
            name: sink.name.clone(),
            spans: sink.keys.len() as u64,
            traces: traces_here.len() as u64,
            span_share: 0.0,
        });
    }
    fill_balance(&mut report);
    report.split_traces = arrivals
        .values()
        .filter(|a| a.sinks.count_ones() > 1)
        .count() as u64;

    let mut rows: Vec<ClassRow> = ["error", "slow", "other", "all"]
        .iter()
        .map(|c| ClassRow {
            class: (*c).to_string(),
            ..Default::default()
        })
        .collect();
    for entry in manifest {
        let a = arrivals.remove(&entry.trace_id);
        let distinct = a.as_ref().map_or(0, |a| a.spans.len() as u64);
        let duplicated = a.as_ref().is_some_and(|a| a.spans.values().any(|&n| n > 1));
        let classes = [entry.error, entry.slow, !entry.error && !entry.slow, true];
        for (row, member) in rows.iter_mut().zip(classes) {
            if member {
                tally(row, distinct, u64::from(entry.spans), duplicated);
            }
        }
    }
    for row in &mut rows {
        let t = row.traces.max(1) as f64;
        row.kept_fraction = (row.complete + row.partial) as f64 / t;
        row.whole_fraction = row.complete as f64 / t;
    }
    report.classes = rows;
    // What is left in `arrivals` was never sent by this manifest.
    report.unknown_traces = arrivals.len() as u64;
    report.unknown_spans = arrivals
        .values()
        .map(|a| a.spans.values().map(|&n| u64::from(n)).sum::<u64>())
        .sum();
    report
}

fn tally(row: &mut ClassRow, distinct: u64, sent: u64, duplicated: bool) {
    row.traces += 1;
    match distinct {
        0 => row.missing += 1,
        d if d >= sent => row.complete += 1,
        _ => row.partial += 1,
    }
    row.duplicated += u64::from(duplicated);
}

fn fill_balance(report: &mut CheckReport) {
    let total: u64 = report.sinks.iter().map(|s| s.spans).sum();
    if total == 0 || report.sinks.is_empty() {
        return;
    }
    for s in &mut report.sinks {
        s.span_share = s.spans as f64 / total as f64;
    }
    let mean = total as f64 / report.sinks.len() as f64;
    let max = report.sinks.iter().map(|s| s.spans).max().unwrap_or(0) as f64;
    report.balance_max_over_mean = max / mean;
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn entry(t: u8, spans: u32, error: bool, slow: bool) -> ManifestEntry {
        ManifestEntry {
            trace_id: [t; 16],
            spans,
            error,
            slow,
        }
    }

    fn keys(t: u8, span_ids: &[u8]) -> Vec<SpanKey> {
        span_ids
            .iter()
            .map(|&s| SpanKey {
                trace_id: [t; 16],
                span_id: [s; 8],
            })
            .collect()
    }

    fn sink(name: &str, parts: &[Vec<SpanKey>]) -> SinkObservations {
        SinkObservations {
            name: name.into(),
            keys: parts.concat(),
        }
    }

    #[test]
    fn classifies_complete_partial_missing_duplicated() {
        let manifest = [
            entry(1, 3, true, false),  // error, complete
            entry(2, 3, true, false),  // error, partial
            entry(3, 2, false, true),  // slow, missing
            entry(4, 2, false, false), // other, complete with a duplicate
            entry(5, 1, true, true),   // error + slow, complete
        ];
        let sinks = [sink(
            "a",
            &[
                keys(1, &[1, 2, 3]),
                keys(2, &[1]),
                keys(4, &[1, 2, 2]),
                keys(5, &[9]),
            ],
        )];
        let r = check(&manifest, &sinks);
        let e = r.class("error").unwrap();
        assert_eq!(
            (e.traces, e.complete, e.partial, e.missing, e.duplicated),
            (3, 2, 1, 0, 0)
        );
        let s = r.class("slow").unwrap();
        assert_eq!((s.traces, s.complete, s.partial, s.missing), (2, 1, 0, 1));
        let o = r.class("other").unwrap();
        assert_eq!((o.traces, o.complete, o.duplicated), (1, 1, 1));
        let all = r.class("all").unwrap();
        assert_eq!(
            (
                all.traces,
                all.complete,
                all.partial,
                all.missing,
                all.duplicated
            ),
            (5, 3, 1, 1, 1)
        );
        assert!((all.kept_fraction - 0.8).abs() < 1e-9);
        assert!((all.whole_fraction - 0.6).abs() < 1e-9);
        assert_eq!((r.unknown_traces, r.unknown_spans), (0, 0));
    }

    #[test]
    fn split_traces_and_balance_across_sinks() {
        let manifest = [
            entry(1, 4, false, false),
            entry(2, 2, false, false),
            entry(3, 2, true, false),
        ];
        let sinks = [
            sink("g0", &[keys(1, &[1, 2]), keys(2, &[1, 2])]),
            sink("g1", &[keys(1, &[3, 4])]),
            sink("g2", &[keys(3, &[1, 2]), keys(9, &[1])]),
        ];
        let r = check(&manifest, &sinks);
        assert_eq!(r.split_traces, 1);
        assert_eq!(r.class("all").unwrap().complete, 3);
        assert_eq!(
            r.sinks
                .iter()
                .map(|s| (s.spans, s.traces))
                .collect::<Vec<_>>(),
            vec![(4, 2), (2, 1), (3, 2)]
        );
        // 9 spans over 3 sinks: mean 3, max 4.
        assert!((r.balance_max_over_mean - 4.0 / 3.0).abs() < 1e-9);
        assert_eq!((r.unknown_traces, r.unknown_spans), (1, 1));
    }

    #[test]
    fn same_span_at_two_sinks_is_a_duplicate() {
        let manifest = [entry(1, 2, false, false)];
        let sinks = [sink("a", &[keys(1, &[1, 2])]), sink("b", &[keys(1, &[2])])];
        let r = check(&manifest, &sinks);
        let all = r.class("all").unwrap();
        assert_eq!((all.complete, all.duplicated), (1, 1));
    }

    #[test]
    fn empty_inputs_give_zero_rows() {
        let r = check(&[], &[]);
        assert_eq!(r.class("all").unwrap().traces, 0);
        assert_eq!(r.balance_max_over_mean, 0.0);
    }
}
