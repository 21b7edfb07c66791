//! The Prometheus protobuf exposition (`application/vnd.google.protobuf;
//! proto=io.prometheus.client.MetricFamily; encoding=delimited`), served when a scraper asks for
//! it: the only format that carries native histograms, so exponential histograms keep their
//! buckets here. The conversion follows the newest collector's (`convertExponentialHistogram`):
//! schema = scale capped at 8 (finer buckets merged), native index = OTLP index + 1, zero
//! threshold 1e-128 (OTLP's implicit zero bucket holds exact zeros only).
//!
//! Exemplars as client_golang's `NewMetricWithExemplars` places them: a counter's last one, each
//! classic bucket's last one with a value up to its bound (a `+Inf` bucket is added for those
//! above every bound), every one in a native histogram's own list.
//!
//! The messages are the subset of `io.prometheus.client` (client_model `metrics.proto`, proto2)
//! this exporter writes, declared with prost's derive.

use prost::Message;

use super::openmetrics::by_bucket;
use super::sample::{Sample, Value};
use crate::metrics_data::Exemplar as Point;

/// The content type of this exposition.
pub const CONTENT_TYPE: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

/// The largest schema a native histogram carries; finer exponential scales are merged down.
pub const MAX_NATIVE_SCHEMA: i32 = 8;
/// The zero threshold the collector gives native histograms when OTLP has none.
pub const DEFAULT_ZERO_THRESHOLD: f64 = 1e-128;

/// `io.prometheus.client.MetricFamily`.
#[derive(Clone, PartialEq, Message)]
pub struct MetricFamily {
    /// Family name.
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    /// `MetricType`: 0 counter, 4 histogram.
    #[prost(int32, optional, tag = "3")]
    pub r#type: Option<i32>,
    /// The series.
    #[prost(message, repeated, tag = "4")]
    pub metric: Vec<PromMetric>,
}

/// `io.prometheus.client.Metric`.
#[derive(Clone, PartialEq, Message)]
pub struct PromMetric {
    /// Labels.
    #[prost(message, repeated, tag = "1")]
    pub label: Vec<LabelPair>,
    /// Counter value.
    #[prost(message, optional, tag = "3")]
    pub counter: Option<Counter>,
    /// Timestamp (with `send_timestamps`).
    #[prost(int64, optional, tag = "6")]
    pub timestamp_ms: Option<i64>,
    /// Histogram value.
    #[prost(message, optional, tag = "7")]
    pub histogram: Option<Histogram>,
}

/// `io.prometheus.client.LabelPair`.
#[derive(Clone, PartialEq, Message)]
pub struct LabelPair {
    /// Label name.
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    /// Label value.
    #[prost(string, optional, tag = "2")]
    pub value: Option<String>,
}

/// `io.prometheus.client.Counter`.
#[derive(Clone, PartialEq, Message)]
pub struct Counter {
    /// The value.
    #[prost(double, optional, tag = "1")]
    pub value: Option<f64>,
    /// The last exemplar.
    #[prost(message, optional, tag = "2")]
    pub exemplar: Option<Exemplar>,
}

/// `io.prometheus.client.Exemplar`.
#[derive(Clone, PartialEq, Message)]
pub struct Exemplar {
    /// `span_id` and `trace_id` (lowercase hex).
    #[prost(message, repeated, tag = "1")]
    pub label: Vec<LabelPair>,
    /// The value.
    #[prost(double, optional, tag = "2")]
    pub value: Option<f64>,
    /// When.
    #[prost(message, optional, tag = "3")]
    pub timestamp: Option<Timestamp>,
}

/// `google.protobuf.Timestamp`.
#[derive(Clone, PartialEq, Message)]
pub struct Timestamp {
    /// Unix seconds.
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    /// Nanoseconds within the second.
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

/// `io.prometheus.client.Histogram` (classic and native fields).
#[derive(Clone, PartialEq, Message)]
pub struct Histogram {
    /// Observations.
    #[prost(uint64, optional, tag = "1")]
    pub sample_count: Option<u64>,
    /// Sum of observations.
    #[prost(double, optional, tag = "2")]
    pub sample_sum: Option<f64>,
    /// Classic buckets (cumulative).
    #[prost(message, repeated, tag = "3")]
    pub bucket: Vec<Bucket>,
    /// Native schema (the OTLP scale, at most 8).
    #[prost(sint32, optional, tag = "5")]
    pub schema: Option<i32>,
    /// Native zero bucket width.
    #[prost(double, optional, tag = "6")]
    pub zero_threshold: Option<f64>,
    /// Native zero bucket count.
    #[prost(uint64, optional, tag = "7")]
    pub zero_count: Option<u64>,
    /// Native negative spans.
    #[prost(message, repeated, tag = "9")]
    pub negative_span: Vec<BucketSpan>,
    /// Native negative bucket counts, delta-encoded.
    #[prost(sint64, repeated, packed = "false", tag = "10")]
    pub negative_delta: Vec<i64>,
    /// Native positive spans.
    #[prost(message, repeated, tag = "12")]
    pub positive_span: Vec<BucketSpan>,
    /// Native positive bucket counts, delta-encoded.
    #[prost(sint64, repeated, packed = "false", tag = "13")]
    pub positive_delta: Vec<i64>,
    /// Native histograms' exemplars.
    #[prost(message, repeated, tag = "16")]
    pub exemplars: Vec<Exemplar>,
}

/// `io.prometheus.client.Bucket`.
#[derive(Clone, PartialEq, Message)]
pub struct Bucket {
    /// Observations at or below `upper_bound`.
    #[prost(uint64, optional, tag = "1")]
    pub cumulative_count: Option<u64>,
    /// Inclusive upper bound.
    #[prost(double, optional, tag = "2")]
    pub upper_bound: Option<f64>,
    /// The bucket's exemplar.
    #[prost(message, optional, tag = "3")]
    pub exemplar: Option<Exemplar>,
}

/// `io.prometheus.client.BucketSpan`.
#[derive(Clone, PartialEq, Message)]
pub struct BucketSpan {
    /// Gap to the previous span (or the first index).
    #[prost(sint32, optional, tag = "1")]
    pub offset: Option<i32>,
    /// Consecutive buckets.
    #[prost(uint32, optional, tag = "2")]
    pub length: Option<u32>,
}

/// Native spans and deltas of one OTLP bucket range at `scale` (downscaled to the native schema).
fn native_buckets(offset: i32, counts: &[u64], scale: i32) -> (Vec<BucketSpan>, Vec<i64>) {
    let shift = (scale - MAX_NATIVE_SCHEMA).max(0);
    let mut merged: Vec<(i32, u64)> = Vec::new();
    for (i, &c) in counts.iter().enumerate() {
        let index = ((offset + i as i32) >> shift) + 1;
        match merged.last_mut() {
            Some((last, n)) if *last == index => *n += c,
            _ => merged.push((index, c)),
        }
    }
    let Some(&(first, _)) = merged.first() else {
        return (Vec::new(), Vec::new());
    };
    // One dense span: the OTLP range is dense already (empty buckets as 0).
    let span = BucketSpan {
        offset: Some(first),
        length: Some(merged.len() as u32),
    };
    let mut prev = 0i64;
    let deltas = merged
        .iter()
        .map(|&(_, c)| {
            let c = c as i64;
            let d = c - prev;
            prev = c;
            d
        })
        .collect();
    (vec![span], deltas)
}

/// An exemplar as client_golang encodes the collector's conversion of one.
fn exemplar(e: &Point) -> Exemplar {
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let pair = |k: &str, v: String| LabelPair {
        name: Some(k.to_owned()),
        value: Some(v),
    };
    Exemplar {
        label: vec![
            pair("span_id", hex(&e.span_id)),
            pair("trace_id", hex(&e.trace_id)),
        ],
        value: Some(e.value),
        timestamp: Some(Timestamp {
            seconds: (e.time_unix_nano / 1_000_000_000) as i64,
            nanos: (e.time_unix_nano % 1_000_000_000) as i32,
        }),
    }
}

fn histogram_of(value: &Value, exemplars: &[Point]) -> Histogram {
    match value {
        Value::Histogram {
            bounds,
            counts,
            sum,
            count,
        } => {
            let mut cumulative = 0;
            let placed = by_bucket(bounds, counts.len(), exemplars);
            let mut bucket: Vec<Bucket> = bounds
                .iter()
                .zip(counts)
                .zip(&placed)
                .map(|((b, c), e)| {
                    cumulative += c;
                    Bucket {
                        cumulative_count: Some(cumulative),
                        upper_bound: Some(*b),
                        exemplar: e.map(exemplar),
                    }
                })
                .collect();
            // Above every bound: client_golang adds the `+Inf` bucket to carry it.
            if let Some(e) = placed.get(bounds.len()).copied().flatten() {
                bucket.push(Bucket {
                    cumulative_count: Some(*count),
                    upper_bound: Some(f64::INFINITY),
                    exemplar: Some(exemplar(e)),
                });
            }
            Histogram {
                sample_count: Some(*count),
                sample_sum: Some(*sum),
                bucket,
                ..Default::default()
            }
        }
        Value::Exponential(h) => {
            let scale = h.scale();
            let (positive_span, positive_delta) =
                native_buckets(h.positive().offset, &h.positive().counts, scale);
            let (negative_span, negative_delta) =
                native_buckets(h.negative().offset, &h.negative().counts, scale);
            Histogram {
                sample_count: Some(h.count()),
                sample_sum: Some(h.sum()),
                schema: Some(scale.min(MAX_NATIVE_SCHEMA)),
                zero_threshold: Some(DEFAULT_ZERO_THRESHOLD),
                zero_count: Some(h.zero_count()),
                positive_span,
                positive_delta,
                negative_span,
                negative_delta,
                exemplars: exemplars.iter().map(exemplar).collect(),
                ..Default::default()
            }
        }
        Value::Counter(_) => Histogram::default(),
    }
}

/// Encodes `samples` (ordered by family) as delimited `MetricFamily` messages.
pub(super) fn encode(samples: &[Sample], send_timestamps: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut family: Option<MetricFamily> = None;
    for (name, labels, value, time_ms, exemplars) in samples {
        if family.as_ref().and_then(|f| f.name.as_deref()) != Some(name.as_str()) {
            if let Some(f) = family.take() {
                let _ = f.encode_length_delimited(&mut out);
            }
            let kind = match value {
                Value::Counter(_) => 0,
                Value::Histogram { .. } | Value::Exponential(_) => 4,
            };
            family = Some(MetricFamily {
                name: Some(name.clone()),
                r#type: Some(kind),
                metric: Vec::new(),
            });
        }
        let label = labels
            .iter()
            .map(|(k, v)| LabelPair {
                name: Some(k.clone()),
                value: Some(v.clone()),
            })
            .collect();
        let mut m = PromMetric {
            label,
            timestamp_ms: send_timestamps.then_some(*time_ms as i64),
            ..Default::default()
        };
        match value {
            Value::Counter(v) => {
                m.counter = Some(Counter {
                    value: Some(*v as f64),
                    exemplar: exemplars.last().map(exemplar),
                })
            }
            other => m.histogram = Some(histogram_of(other, exemplars)),
        }
        if let Some(f) = family.as_mut() {
            f.metric.push(m);
        }
    }
    if let Some(f) = family {
        let _ = f.encode_length_delimited(&mut out);
    }
    out
}

/// Whether an `Accept` header asks for this exposition.
pub fn accepted(accept: &str) -> bool {
    accept.contains("application/vnd.google.protobuf")
        && accept.contains("io.prometheus.client.MetricFamily")
        && accept.contains("encoding=delimited")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn native_buckets_shift_by_one_and_merge_above_schema_8() {
        // Scale 3: OTLP index 4 is native index 5.
        let (s, d) = native_buckets(4, &[2, 0, 5], 3);
        assert_eq!(s[0].offset, Some(5));
        assert_eq!(s[0].length, Some(3));
        assert_eq!(d, vec![2, -2, 5]);
        // Scale 9 → schema 8: pairs merge (index 10, 11 → 5; 12 → 6), then +1.
        let (s, d) = native_buckets(10, &[1, 2, 3], 9);
        assert_eq!((s[0].offset, s[0].length), (Some(6), Some(2)));
        assert_eq!(d, vec![3, 0]);
        assert!(native_buckets(0, &[], 3).0.is_empty());
    }

    #[test]
    fn exemplars_go_on_the_counter_the_buckets_and_an_added_inf_bucket() {
        let e = |v: f64, id: u8| Point {
            trace_id: [id; 16],
            span_id: [id; 8],
            value: v,
            time_unix_nano: 1_700_000_000_250_000_000,
        };
        let list = vec![e(5.0, 1), e(500.0, 2)];
        let h = Value::Histogram {
            bounds: vec![10.0, 100.0].into(),
            counts: vec![1, 0, 1],
            sum: 505.0,
            count: 2,
        };
        let out = histogram_of(&h, &list);
        let ids: Vec<Option<String>> = out
            .bucket
            .iter()
            .map(|b| b.exemplar.as_ref().and_then(|x| x.label[1].value.clone()))
            .collect();
        assert_eq!(
            ids,
            vec![Some("01".repeat(16)), None, Some("02".repeat(16))]
        );
        assert_eq!(out.bucket[2].upper_bound, Some(f64::INFINITY));
        assert_eq!(out.bucket[2].cumulative_count, Some(2));
        let t = out.bucket[0]
            .exemplar
            .as_ref()
            .unwrap()
            .timestamp
            .clone()
            .unwrap();
        assert_eq!((t.seconds, t.nanos), (1_700_000_000, 250_000_000));
        let samples = vec![(
            "c_total".to_owned(),
            Vec::new(),
            Value::Counter(3),
            0,
            list.clone(),
        )];
        let mut bytes = &encode(&samples, false)[..];
        let f = MetricFamily::decode_length_delimited(&mut bytes).unwrap();
        let c = f.metric[0].counter.as_ref().unwrap();
        assert_eq!(
            c.exemplar.as_ref().unwrap().value,
            Some(500.0),
            "the last one"
        );
    }

    #[test]
    fn the_accept_header_of_a_native_histogram_scrape_is_recognised() {
        assert!(accepted("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3"));
        assert!(!accepted("text/plain;version=0.0.4;q=0.5,*/*;q=0.1"));
    }
}
