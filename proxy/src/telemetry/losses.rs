//! What the shutdown lost, said once at exit.
//!
//! Spans lost during the drain are counted in the self-metrics like any other loss, but the
//! metrics endpoint ends with the process, and the largest counts (an exporter's queue abandoned
//! at the drain deadline) are made in the last instant before the exit, so no scrape can see
//! them. [`Losses`] takes the by-reason loss counters when the stop is requested and, after every
//! core has stopped, logs one warning per series that grew in between: the same numbers the
//! metrics hold, per component and reason, in the one place left to read them.

use super::metrics::Registry;

/// The counter families that count items lost (never delivered, after the client was answered
/// OK) by reason, with the `reason` values left out because they are sampling decisions, not
/// losses.
const FAMILIES: &[(&str, &[&str])] = &[
    ("tailgate_exporter_send_failed_spans_total", &[]),
    ("tailgate_exporter_send_failed_metric_points_total", &[]),
    ("otelcol_loadbalancer_dropped_spans_total", &[]),
    ("tailgate_processor_dropped_spans_total", &[]),
    (
        "tailgate_tail_sampling_dropped_spans_total",
        &["not_sampled", "dropped_by_policy", "late_not_sampled"],
    ),
    ("tailgate_connector_spanmetrics_dropped_spans_total", &[]),
];

/// One series: its family and labels.
type Key = (&'static str, Vec<(String, String)>);

/// The loss counters at one instant.
#[derive(Debug, Default)]
pub struct Losses {
    counts: Vec<(Key, u64)>,
}

impl Losses {
    /// The loss counters of `registry` now.
    pub fn take(registry: &Registry) -> Losses {
        let mut counts = Vec::new();
        for &(family, decisions) in FAMILIES {
            for (labels, n) in registry.counters(family) {
                let decision = labels
                    .iter()
                    .any(|(k, v)| k == "reason" && decisions.contains(&v.as_str()));
                if !decision {
                    counts.push(((family, labels), n));
                }
            }
        }
        Losses { counts }
    }

    /// What grew since `before`, one line per series, e.g. `shutdown: exporter otlp lost 1000
    /// spans (reason=shutdown)`. A series retired in between (a removed loadbalancing backend
    /// folded into `endpoint="removed"`) is compared as absent: its count moved to the folded
    /// series, which then shows it.
    pub fn since(&self, before: &Losses) -> Vec<String> {
        let mut lines = Vec::new();
        for ((family, labels), now) in &self.counts {
            let was = before
                .counts
                .iter()
                .find(|((f, l), _)| f == family && l == labels)
                .map_or(0, |(_, n)| *n);
            if *now > was {
                lines.push(line(family, labels, now - was));
            }
        }
        lines
    }
}

/// `shutdown: <kind> <component> lost <n> <unit> (reason=<reason>, <other labels>)`.
fn line(family: &str, labels: &[(String, String)], n: u64) -> String {
    let unit = if family.contains("metric_points") {
        "metric points"
    } else {
        "spans"
    };
    let mut component = String::from("component");
    let mut rest = Vec::new();
    for (k, v) in labels {
        match k.as_str() {
            "exporter" | "processor" | "connector" => component = format!("{k} {v}"),
            "reason" => rest.insert(0, format!("reason={v}")),
            _ => rest.push(format!("{k}={v}")),
        }
    }
    format!(
        "shutdown: {component} lost {n} {unit} ({})",
        rest.join(", ")
    )
}

/// Logs what grew since `before` in `registry`, one warning per series; returns the lines.
pub fn report(registry: &Registry, before: &Losses) -> Vec<String> {
    let lines = Losses::take(registry).since(before);
    for l in &lines {
        tracing::warn!("{l}");
    }
    lines
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::telemetry::metrics::Kind;

    #[test]
    fn reports_growth_by_component_and_reason_but_not_sampling_decisions() {
        let reg = Registry::new(2);
        let counter =
            |name: &str, labels: &[(&str, &str)]| reg.register(name, "test", Kind::Counter, labels);
        let abandoned = counter(
            "tailgate_exporter_send_failed_spans_total",
            &[("exporter", "otlp"), ("reason", "shutdown")],
        );
        let unread = counter(
            "tailgate_processor_dropped_spans_total",
            &[("processor", "tail_sampling"), ("reason", "drain_timeout")],
        );
        let not_sampled = counter(
            "tailgate_tail_sampling_dropped_spans_total",
            &[("processor", "tail_sampling"), ("reason", "not_sampled")],
        );
        abandoned.local(0).add(5);
        let before = Losses::take(&reg);
        abandoned.local(1).add(1000);
        unread.local(0).add(7);
        not_sampled.local(0).add(9);
        let mut lines = Losses::take(&reg).since(&before);
        lines.sort();
        assert_eq!(
            lines,
            [
                "shutdown: exporter otlp lost 1000 spans (reason=shutdown)",
                "shutdown: processor tail_sampling lost 7 spans (reason=drain_timeout)",
            ]
        );
    }
}
