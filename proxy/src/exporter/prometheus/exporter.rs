//! The `prometheus` exporter: keeps the latest value of every series it was given and renders
//! them in the Prometheus text format with the collector's naming (`prometheustranslator`:
//! `traces_span_metrics_calls_total`, `traces_span_metrics_duration_milliseconds_bucket`).
//!
//! Like the collector's accumulator, delta points are added to what the series already holds and
//! cumulative points replace it, so a scrape shows running totals either way; series not updated
//! for `metric_expiration` disappear.
//!
//! Exponential histograms are rendered as the newest collector releases do (v0.115.0 dropped them
//! with "failed to translate metric"): the collector turns them into Prometheus native
//! histograms, which the text format shows as a histogram with only `le="+Inf"`, `_sum` and
//! `_count`; the buckets themselves are in the protobuf exposition ([`super::protobuf`]).
//! A point the collector cannot convert (scale below −4) is dropped, logged once per exporter
//! and counted in `tailgate_exporter_prometheus_unrenderable_points_total`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::config::PrometheusExporterConfig;
use super::sample::{label_text, Sample, Value};
use crate::metrics_data::exponential::ExponentialHistogram;
use crate::metrics_data::{
    Attributes, Exemplar, ExponentialHistogramPoint, MetricData, MetricsBatch, MetricsConsumer,
    Temporality,
};
use crate::telemetry::metrics::Local;

/// The smallest scale a Prometheus native histogram (schema) can carry.
pub const MIN_NATIVE_SCALE: i32 = -4;

/// A series' identity: family name, sorted labels and the resource it came from. Two resources
/// can map to the same labels (pods of one service without `service.instance.id`); their values
/// are kept apart here, so cumulative points of one never overwrite the other's, and summed when
/// rendered.
type SeriesId = (String, Vec<(String, String)>, Attributes);

#[derive(Debug)]
struct Entry {
    value: Value,
    updated: Instant,
    time_ms: u64,
    /// The latest point's exemplars (the collector's accumulator keeps the latest point whole).
    exemplars: Vec<Exemplar>,
}

/// One `prometheus` exporter instance.
pub struct PrometheusExporter {
    config: PrometheusExporterConfig,
    series: Mutex<BTreeMap<SeriesId, Entry>>,
    /// Points that cannot be rendered (written only under the `series` lock: one writer).
    unrenderable: Option<Local>,
    /// Set once the first unrenderable point was logged.
    warned: AtomicBool,
}

impl PrometheusExporter {
    /// An exporter with nothing to show yet.
    pub fn new(config: PrometheusExporterConfig) -> Self {
        PrometheusExporter {
            config,
            series: Mutex::new(BTreeMap::new()),
            unrenderable: None,
            warned: AtomicBool::new(false),
        }
    }

    /// Counts points that cannot be rendered into `counter`.
    pub fn with_unrenderable_counter(mut self, counter: Local) -> Self {
        self.unrenderable = Some(counter);
        self
    }

    /// Drops a point that has no Prometheus rendering: logged once, counted always.
    fn unrenderable(&self, metric: &str, why: &str) {
        if let Some(c) = &self.unrenderable {
            c.add(1);
        }
        if !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                metric,
                "prometheus exporter: dropping a point that cannot be rendered: {why} (logged once; counted in tailgate_exporter_prometheus_unrenderable_points_total)"
            );
        }
    }

    fn labels(&self, resource: &Attributes, point: &Attributes) -> Vec<(String, String)> {
        let mut out: BTreeMap<String, String> = BTreeMap::new();
        if self.config.resource_to_telemetry_conversion.enabled {
            for (k, v) in resource.iter() {
                out.insert(normalize_label(k), v.clone());
            }
        }
        for (k, v) in point.iter() {
            out.insert(normalize_label(k), v.clone());
        }
        let get = |key: &str| resource.iter().find(|(k, _)| k == key).map(|(_, v)| v);
        // The collector's job and instance labels, from service.namespace/name and instance id.
        if let Some(name) = get("service.name") {
            let job = match get("service.namespace") {
                Some(ns) => format!("{ns}/{name}"),
                None => name.clone(),
            };
            out.insert("job".to_owned(), job);
        }
        if let Some(id) = get("service.instance.id") {
            out.insert("instance".to_owned(), id.clone());
        }
        for (k, v) in &self.config.const_labels {
            out.insert(k.clone(), v.clone());
        }
        out.into_iter().collect()
    }

    /// Every live series with the values of resources sharing a label set summed, ordered by
    /// family then labels: (family, labels, value, newest time in ms).
    pub(super) fn collect(&self) -> Vec<Sample> {
        let expiration: Duration = self.config.metric_expiration.0;
        let mut all = self.series.lock().unwrap_or_else(|p| p.into_inner());
        all.retain(|_, e| e.updated.elapsed() <= expiration);
        let mut out: Vec<Sample> = Vec::new();
        // Entries of one label set are adjacent (the map is ordered by family, then labels).
        for ((name, labels, _), e) in all.iter() {
            if let Some(last) = out.last_mut() {
                if &last.0 == name && last.1 == *labels {
                    last.2 = add(last.2.clone(), &e.value);
                    last.3 = last.3.max(e.time_ms);
                    last.4.extend_from_slice(&e.exemplars);
                    continue;
                }
            }
            out.push((
                name.clone(),
                labels.clone(),
                e.value.clone(),
                e.time_ms,
                e.exemplars.clone(),
            ));
        }
        out
    }

    /// Prometheus text exposition format 0.0.4 of every live series.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut family = "";
        let samples = self.collect();
        for (n, l, v, t, _) in &samples {
            self.write_series(&mut out, &mut family, n, l, v, *t);
        }
        out
    }

    /// The OpenMetrics text exposition, with exemplars (`enable_open_metrics`).
    pub fn render_openmetrics(&self) -> String {
        super::openmetrics::encode(&self.collect(), self.config.send_timestamps)
    }

    /// Whether OpenMetrics is served to scrapers that ask for it.
    pub fn open_metrics(&self) -> bool {
        self.config.enable_open_metrics
    }

    /// The Prometheus protobuf exposition (delimited `io.prometheus.client.MetricFamily`), where
    /// exponential histograms are native histograms with their buckets.
    pub fn render_protobuf(&self) -> Vec<u8> {
        super::protobuf::encode(&self.collect(), self.config.send_timestamps)
    }

    fn write_series<'a>(
        &self,
        out: &mut String,
        family: &mut &'a str,
        name: &'a str,
        labels: &[(String, String)],
        value: &Value,
        time_ms: u64,
    ) {
        let ts = if self.config.send_timestamps {
            format!(" {time_ms}")
        } else {
            String::new()
        };
        if name != *family {
            let kind = match value {
                Value::Counter(_) => "counter",
                Value::Histogram { .. } | Value::Exponential(_) => "histogram",
            };
            let _ = writeln!(out, "# TYPE {name} {kind}");
            *family = name;
        }
        match value {
            Value::Counter(v) => {
                let _ = writeln!(out, "{name}{} {v}{ts}", label_text(labels, None));
            }
            Value::Histogram {
                bounds,
                counts,
                sum,
                count,
            } => {
                let mut cumulative = 0;
                for (i, c) in counts.iter().enumerate() {
                    cumulative += c;
                    let le = bounds.get(i).map_or("+Inf".to_owned(), |b| b.to_string());
                    let l = label_text(labels, Some(&le));
                    let _ = writeln!(out, "{name}_bucket{l} {cumulative}{ts}");
                }
                let l = label_text(labels, None);
                let _ = writeln!(out, "{name}_sum{l} {sum}{ts}");
                let _ = writeln!(out, "{name}_count{l} {count}{ts}");
            }
            Value::Exponential(h) => {
                // What the text encoder writes for a native histogram without classic buckets.
                let count = h.count();
                let l = label_text(labels, Some("+Inf"));
                let _ = writeln!(out, "{name}_bucket{l} {count}{ts}");
                let l = label_text(labels, None);
                let _ = writeln!(out, "{name}_sum{l} {}{ts}", h.sum());
                let _ = writeln!(out, "{name}_count{l} {count}{ts}");
            }
        }
    }

    /// Stores the points of one exponential histogram metric.
    fn store_exponential(
        &self,
        all: &mut BTreeMap<SeriesId, Entry>,
        resource: &Attributes,
        name: &str,
        temporality: Temporality,
        points: &[ExponentialHistogramPoint],
        now: Instant,
    ) {
        for p in points {
            let scale = p.histogram.scale();
            if scale < MIN_NATIVE_SCALE {
                let why = format!("exponential histogram scale {scale} is below {MIN_NATIVE_SCALE}, the smallest native histogram schema");
                self.unrenderable(name, &why);
                continue;
            }
            let id = (
                name.to_owned(),
                self.labels(resource, &p.attributes),
                resource.clone(),
            );
            let e = all.entry(id).or_insert_with(|| Entry {
                value: Value::Exponential(Box::new(ExponentialHistogram::new(
                    p.histogram.max_size(),
                ))),
                updated: now,
                time_ms: 0,
                exemplars: Vec::new(),
            });
            match (&mut e.value, temporality) {
                (Value::Exponential(h), Temporality::Delta) => h.merge(&p.histogram),
                (v, _) => *v = Value::Exponential(Box::new(p.histogram.clone())),
            }
            e.updated = now;
            e.time_ms = p.time_unix_nano / 1_000_000;
            e.exemplars.clone_from(&p.exemplars);
        }
    }
}

/// Sums two values of one label set (same family, so the same kind; bounds differ only if the
/// configuration did, and then the first shape wins).
fn add(a: Value, b: &Value) -> Value {
    match (a, b) {
        (Value::Counter(x), Value::Counter(y)) => Value::Counter(x + y),
        (
            Value::Histogram {
                bounds,
                mut counts,
                sum,
                count,
            },
            Value::Histogram {
                bounds: b2,
                counts: c2,
                sum: s2,
                count: n2,
            },
        ) if bounds[..] == b2[..] && counts.len() == c2.len() => {
            for (x, y) in counts.iter_mut().zip(c2) {
                *x += y;
            }
            Value::Histogram {
                bounds,
                counts,
                sum: sum + s2,
                count: count + n2,
            }
        }
        (Value::Exponential(mut x), Value::Exponential(y)) => {
            x.merge(y);
            Value::Exponential(x)
        }
        (a, _) => a,
    }
}

impl MetricsConsumer for PrometheusExporter {
    fn consume(&self, batch: &MetricsBatch) {
        let now = Instant::now();
        let mut all = self.series.lock().unwrap_or_else(|p| p.into_inner());
        for rm in &batch.resources {
            for m in &rm.metrics {
                match &m.data {
                    MetricData::Sum {
                        temporality,
                        points,
                    } => {
                        let name = metric_name(&self.config, &m.name, m.unit, true);
                        for p in points {
                            let id = (
                                name.clone(),
                                self.labels(&rm.resource, &p.attributes),
                                rm.resource.clone(),
                            );
                            let e = all.entry(id).or_insert(Entry {
                                value: Value::Counter(0),
                                updated: now,
                                time_ms: 0,
                                exemplars: Vec::new(),
                            });
                            if let Value::Counter(v) = &mut e.value {
                                *v = match temporality {
                                    Temporality::Delta => *v + p.value,
                                    Temporality::Cumulative => p.value,
                                };
                            }
                            e.updated = now;
                            e.time_ms = p.time_unix_nano / 1_000_000;
                            e.exemplars.clone_from(&p.exemplars);
                        }
                    }
                    MetricData::Histogram {
                        temporality,
                        bounds,
                        points,
                    } => {
                        let name = metric_name(&self.config, &m.name, m.unit, false);
                        for p in points {
                            let id = (
                                name.clone(),
                                self.labels(&rm.resource, &p.attributes),
                                rm.resource.clone(),
                            );
                            let fresh = || Value::Histogram {
                                bounds: bounds.clone(),
                                counts: vec![0; p.bucket_counts.len()],
                                sum: 0.0,
                                count: 0,
                            };
                            let e = all.entry(id).or_insert_with(|| Entry {
                                value: fresh(),
                                updated: now,
                                time_ms: 0,
                                exemplars: Vec::new(),
                            });
                            let same_shape = matches!(&e.value, Value::Histogram { bounds: b, counts, .. }
                                if b[..] == bounds[..] && counts.len() == p.bucket_counts.len());
                            if *temporality == Temporality::Cumulative || !same_shape {
                                e.value = fresh();
                            }
                            if let Value::Histogram {
                                counts, sum, count, ..
                            } = &mut e.value
                            {
                                for (a, b) in counts.iter_mut().zip(&p.bucket_counts) {
                                    *a += b;
                                }
                                *sum += p.sum;
                                *count += p.count;
                            }
                            e.updated = now;
                            e.time_ms = p.time_unix_nano / 1_000_000;
                            e.exemplars.clone_from(&p.exemplars);
                        }
                    }
                    MetricData::ExponentialHistogram {
                        temporality,
                        points,
                    } => {
                        let name = metric_name(&self.config, &m.name, m.unit, false);
                        self.store_exponential(
                            &mut all,
                            &rm.resource,
                            &name,
                            *temporality,
                            points,
                            now,
                        );
                    }
                }
            }
        }
    }
}

/// The collector's `prometheustranslator.BuildCompliantName`: name tokens joined by `_`, unit
/// word and `total` appended (when `add_metric_suffixes`), exporter namespace first.
pub fn metric_name(
    config: &PrometheusExporterConfig,
    name: &str,
    unit: &str,
    counter: bool,
) -> String {
    let mut tokens: Vec<String> = name
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    if config.add_metric_suffixes {
        if let Some(word) = unit_word(unit) {
            if !tokens.iter().any(|t| t == word) {
                tokens.push(word.to_owned());
            }
        }
        if counter && tokens.last().map(String::as_str) != Some("total") {
            tokens.push("total".to_owned());
        }
    }
    let mut out = tokens.join("_");
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    if config.namespace.is_empty() {
        out
    } else {
        format!("{}_{out}", config.namespace)
    }
}

/// Unit words of the translator's unit map (the ones connectors here produce, and common others).
fn unit_word(unit: &str) -> Option<&'static str> {
    Some(match unit {
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "By" => "bytes",
        "%" => "percent",
        _ => return None,
    })
}

/// The collector's `NormalizeLabel`: invalid characters become `_`; a leading digit gets `key_`,
/// a single leading `_` gets `key`.
pub fn normalize_label(k: &str) -> String {
    let mut out: String = k
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert_str(0, "key_");
    } else if out.starts_with('_') && !out.starts_with("__") {
        out.insert_str(0, "key");
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::metrics_data::{HistogramPoint, Metric, ResourceMetrics, SumPoint};

    fn attrs(kv: &[(&str, &str)]) -> Attributes {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
            .into()
    }

    fn batch(t: Temporality, calls: u64, counts: Vec<u64>) -> MetricsBatch {
        let a = attrs(&[("service.name", "api"), ("span.kind", "SPAN_KIND_SERVER")]);
        MetricsBatch {
            resources: vec![ResourceMetrics {
                resource: attrs(&[("service.name", "api"), ("host.name", "h1")]),
                metrics: vec![
                    Metric {
                        name: "traces.span.metrics.calls".into(),
                        unit: "",
                        data: MetricData::Sum {
                            temporality: t,
                            points: vec![SumPoint {
                                attributes: a.clone(),
                                start_unix_nano: 0,
                                time_unix_nano: 5_000_000,
                                value: calls,
                                exemplars: Vec::new(),
                            }],
                        },
                    },
                    Metric {
                        name: "traces.span.metrics.duration".into(),
                        unit: "ms",
                        data: MetricData::Histogram {
                            temporality: t,
                            bounds: vec![10.0, 100.0].into(),
                            points: vec![HistogramPoint {
                                attributes: a,
                                start_unix_nano: 0,
                                time_unix_nano: 5_000_000,
                                count: counts.iter().sum(),
                                bucket_counts: counts,
                                sum: 42.5,
                                exemplars: Vec::new(),
                            }],
                        },
                    },
                ],
            }],
        }
    }

    #[test]
    fn names_and_labels_follow_the_collector() {
        let mut c = PrometheusExporterConfig::default();
        c.const_labels.insert("region".into(), "eu".into());
        let e = PrometheusExporter::new(c);
        e.consume(&batch(Temporality::Cumulative, 3, vec![1, 1, 1]));
        e.consume(&batch(Temporality::Cumulative, 4, vec![2, 1, 1]));
        let text = e.render();
        let l = "job=\"api\",region=\"eu\",service_name=\"api\",span_kind=\"SPAN_KIND_SERVER\"";
        assert!(
            text.contains(&format!("traces_span_metrics_calls_total{{{l}}} 4\n")),
            "{text}"
        );
        assert!(text.contains("# TYPE traces_span_metrics_duration_milliseconds histogram\n"));
        assert!(text.contains(&format!(
            "traces_span_metrics_duration_milliseconds_bucket{{{l},le=\"10\"}} 2\n"
        )));
        assert!(text.contains(&format!(
            "traces_span_metrics_duration_milliseconds_bucket{{{l},le=\"+Inf\"}} 4\n"
        )));
        assert!(text.contains(&format!(
            "traces_span_metrics_duration_milliseconds_count{{{l}}} 4\n"
        )));
        assert!(!text.contains("host_name"));
    }

    #[test]
    fn deltas_accumulate_and_resource_labels_convert() {
        let c = PrometheusExporterConfig {
            namespace: "gw".into(),
            resource_to_telemetry_conversion: super::super::config::ResourceToTelemetry {
                enabled: true,
            },
            ..Default::default()
        };
        let e = PrometheusExporter::new(c);
        e.consume(&batch(Temporality::Delta, 3, vec![1, 1, 1]));
        e.consume(&batch(Temporality::Delta, 4, vec![2, 1, 1]));
        let text = e.render();
        assert!(text.contains("gw_traces_span_metrics_calls_total{host_name=\"h1\",job=\"api\",service_name=\"api\",span_kind=\"SPAN_KIND_SERVER\"} 7\n"), "{text}");
        assert!(text.contains("_sum{host_name=\"h1\",job=\"api\",service_name=\"api\",span_kind=\"SPAN_KIND_SERVER\"} 85\n"), "{text}");
    }

    #[test]
    fn resources_with_the_same_labels_are_summed_not_overwritten() {
        let e = PrometheusExporter::new(PrometheusExporterConfig::default());
        let mut b2 = batch(Temporality::Cumulative, 10, vec![5, 5, 0]);
        b2.resources[0].resource = attrs(&[("service.name", "api"), ("host.name", "h2")]);
        for _ in 0..2 {
            e.consume(&batch(Temporality::Cumulative, 3, vec![1, 1, 1]));
            e.consume(&b2);
        }
        let text = e.render();
        let l = "job=\"api\",service_name=\"api\",span_kind=\"SPAN_KIND_SERVER\"";
        assert!(
            text.contains(&format!("traces_span_metrics_calls_total{{{l}}} 13\n")),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "traces_span_metrics_duration_milliseconds_bucket{{{l},le=\"10\"}} 6\n"
            )),
            "{text}"
        );
        assert_eq!(text.matches("# TYPE").count(), 2, "{text}");
    }

    fn exponential_batch(t: Temporality, values: &[f64], max_size: u32) -> MetricsBatch {
        let mut h = ExponentialHistogram::new(max_size);
        values.iter().for_each(|v| h.record(*v));
        MetricsBatch {
            resources: vec![ResourceMetrics {
                resource: attrs(&[("service.name", "api")]),
                metrics: vec![Metric {
                    name: "traces.span.metrics.duration".into(),
                    unit: "ms",
                    data: MetricData::ExponentialHistogram {
                        temporality: t,
                        points: vec![ExponentialHistogramPoint {
                            attributes: attrs(&[("span.name", "x")]),
                            start_unix_nano: 0,
                            time_unix_nano: 5_000_000,
                            histogram: h,
                            exemplars: Vec::new(),
                        }],
                    },
                }],
            }],
        }
    }

    #[test]
    fn exponential_histograms_render_as_native_histograms_do_in_text() {
        let e = PrometheusExporter::new(PrometheusExporterConfig::default());
        e.consume(&exponential_batch(Temporality::Delta, &[1.5, 3.0], 160));
        e.consume(&exponential_batch(Temporality::Delta, &[0.0, 10.0], 160));
        let text = e.render();
        let n = "traces_span_metrics_duration_milliseconds";
        let l = "job=\"api\",span_name=\"x\"";
        assert_eq!(
            text,
            format!(
                "# TYPE {n} histogram\n{n}_bucket{{{l},le=\"+Inf\"}} 4\n{n}_sum{{{l}}} 14.5\n{n}_count{{{l}}} 4\n"
            )
        );
        // Cumulative points replace.
        e.consume(&exponential_batch(Temporality::Cumulative, &[2.0], 160));
        assert!(e.render().contains(&format!("{n}_count{{{l}}} 1\n")));
    }

    #[test]
    fn unrenderable_points_are_counted_and_dropped() {
        let registry = crate::telemetry::metrics::Registry::new(1);
        let counter = registry.register(
            "x_total",
            "x",
            crate::telemetry::metrics::Kind::Counter,
            &[],
        );
        let e = PrometheusExporter::new(PrometheusExporterConfig::default())
            .with_unrenderable_counter(counter.local(0));
        // 1e-300 .. 1e300 in 2 buckets needs scale -10, below native histograms' -4.
        let b = exponential_batch(Temporality::Cumulative, &[1e-300, 1e300], 2);
        e.consume(&b);
        e.consume(&b);
        assert_eq!(counter.total(), 2);
        assert_eq!(e.render(), "");
    }

    #[test]
    fn label_and_name_normalisation() {
        assert_eq!(normalize_label("http.status_code"), "http_status_code");
        assert_eq!(normalize_label("0abc"), "key_0abc");
        assert_eq!(normalize_label("_x"), "key_x");
        let mut c = PrometheusExporterConfig::default();
        assert_eq!(metric_name(&c, "calls", "", true), "calls_total");
        assert_eq!(
            metric_name(&c, "a.duration", "s", false),
            "a_duration_seconds"
        );
        c.add_metric_suffixes = false;
        assert_eq!(metric_name(&c, "a.duration", "s", false), "a_duration");
    }
}
