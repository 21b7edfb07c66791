//! What flows through a metrics pipeline: a connector's aggregated series, handed from its merger
//! thread to the exporters that serve them.
//!
//! Metrics never touch the data-plane cores: cores aggregate spans into plain counters, a merger
//! thread builds a [`MetricsBatch`] every flush interval, and each exporter of the metrics
//! pipeline takes it through [`MetricsConsumer`] (cross-thread, so `Send + Sync`). The shapes follow
//! OTLP's data model (resource → metric → data points, sums, explicit-bucket and base-2
//! exponential histograms) with attribute values already rendered as strings, which is all a
//! Prometheus exporter needs.
//!
//! - [`exponential`]: the exponential histogram aggregation (record, merge, downscale).
//!
//! Points may carry [`Exemplar`]s: spans that contributed to them (OTLP's `Exemplar` with
//! `as_double`, trace and span IDs, and no filtered attributes).

use std::sync::Arc;

pub mod exponential;

use exponential::ExponentialHistogram;

/// Attributes as (key, value) pairs, values rendered as the collector's `Value.AsString` does.
pub type Attributes = Arc<[(String, String)]>;

/// OTLP aggregation temporality.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Temporality {
    /// Each point holds everything since `start_unix_nano`.
    Cumulative,
    /// Each point holds only what happened since the previous point.
    Delta,
}

/// One flush of a connector: metrics grouped by resource.
#[derive(Debug, Clone, Default)]
pub struct MetricsBatch {
    /// Per-resource groups.
    pub resources: Vec<ResourceMetrics>,
}

/// The metrics of one resource.
#[derive(Debug, Clone)]
pub struct ResourceMetrics {
    /// The resource's attributes.
    pub resource: Attributes,
    /// Its metrics.
    pub metrics: Vec<Metric>,
}

/// One metric (a name, a unit, and its points).
#[derive(Debug, Clone)]
pub struct Metric {
    /// OTLP metric name, e.g. `traces.span.metrics.calls`.
    pub name: String,
    /// UCUM unit (`ms`, `s`, `1` or empty).
    pub unit: &'static str,
    /// The points.
    pub data: MetricData,
}

/// A metric's points.
#[derive(Debug, Clone)]
pub enum MetricData {
    /// A monotonic sum (counter).
    Sum {
        /// Cumulative or delta.
        temporality: Temporality,
        /// Points, one per attribute set.
        points: Vec<SumPoint>,
    },
    /// An explicit-bucket histogram.
    Histogram {
        /// Cumulative or delta.
        temporality: Temporality,
        /// Upper bounds (inclusive) of every bucket but the last (`+Inf`).
        bounds: Arc<[f64]>,
        /// Points, one per attribute set.
        points: Vec<HistogramPoint>,
    },
    /// A base-2 exponential histogram.
    ExponentialHistogram {
        /// Cumulative or delta.
        temporality: Temporality,
        /// Points, one per attribute set.
        points: Vec<ExponentialHistogramPoint>,
    },
}

/// One exemplar of a point: a span that contributed to it, so a metric links to a trace.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Exemplar {
    /// The span's trace ID.
    pub trace_id: [u8; 16],
    /// The span's ID.
    pub span_id: [u8; 8],
    /// The measured value (the span's duration in the histogram unit, on every spanmetrics metric,
    /// as the collector records it on both).
    pub value: f64,
    /// Time of the exemplar, Unix nanoseconds (spanmetrics: the flush, as in the collector).
    pub time_unix_nano: u64,
}

/// One point of a sum.
#[derive(Debug, Clone)]
pub struct SumPoint {
    /// Point attributes.
    pub attributes: Attributes,
    /// Start of the aggregation window, Unix nanoseconds.
    pub start_unix_nano: u64,
    /// Time of the point, Unix nanoseconds.
    pub time_unix_nano: u64,
    /// The value.
    pub value: u64,
    /// Exemplars (at most the producer's cap per point).
    pub exemplars: Vec<Exemplar>,
}

/// One point of a histogram.
#[derive(Debug, Clone)]
pub struct HistogramPoint {
    /// Point attributes.
    pub attributes: Attributes,
    /// Start of the aggregation window, Unix nanoseconds.
    pub start_unix_nano: u64,
    /// Time of the point, Unix nanoseconds.
    pub time_unix_nano: u64,
    /// Per-bucket counts (not cumulative), `bounds.len() + 1` of them.
    pub bucket_counts: Vec<u64>,
    /// Sum of the observed values.
    pub sum: f64,
    /// Number of observations.
    pub count: u64,
    /// Exemplars (at most the producer's cap per point).
    pub exemplars: Vec<Exemplar>,
}

/// One point of an exponential histogram: scale, zero count, buckets, sum, count, min and max
/// are those of [`ExponentialHistogram`] (min/max present when the count is not 0).
#[derive(Debug, Clone)]
pub struct ExponentialHistogramPoint {
    /// Point attributes.
    pub attributes: Attributes,
    /// Start of the aggregation window, Unix nanoseconds.
    pub start_unix_nano: u64,
    /// Time of the point, Unix nanoseconds.
    pub time_unix_nano: u64,
    /// The aggregated observations.
    pub histogram: ExponentialHistogram,
    /// Exemplars (at most the producer's cap per point).
    pub exemplars: Vec<Exemplar>,
}

/// Where a metrics pipeline's data goes: an exporter, shared across threads.
pub trait MetricsConsumer: Send + Sync {
    /// Takes one flush of a connector.
    fn consume(&self, batch: &MetricsBatch);
}
