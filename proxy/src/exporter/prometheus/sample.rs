//! What the exporter's store renders and both expositions (text, protobuf) write: one sample per
//! series with its latest value.

use std::sync::Arc;

use crate::metrics_data::exponential::ExponentialHistogram;
use crate::metrics_data::Exemplar;

/// One rendered series: family, labels, value (summed over resources), newest time in ms, and
/// the exemplars of the latest points (OpenMetrics only).
pub type Sample = (String, Vec<(String, String)>, Value, u64, Vec<Exemplar>);

/// The latest value of one series.
#[derive(Debug, Clone)]
pub enum Value {
    /// A monotonic sum.
    Counter(u64),
    /// An explicit-bucket histogram.
    Histogram {
        /// Upper bounds.
        bounds: Arc<[f64]>,
        /// Per-bucket counts.
        counts: Vec<u64>,
        /// Sum of observations.
        sum: f64,
        /// Observations.
        count: u64,
    },
    /// An exponential histogram (a native histogram in Prometheus terms).
    Exponential(Box<ExponentialHistogram>),
}

/// The `{k="v",…,le="…"}` label set of a sample, escaped as both text formats escape it.
pub(super) fn label_text(labels: &[(String, String)], le: Option<&str>) -> String {
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

/// A label value escaped for the Prometheus text and OpenMetrics formats.
pub(super) fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
