//! The `prometheus` exporter: keeps the latest value of every series it was given and renders
//! them in the Prometheus text format with the collector's naming (`prometheustranslator`:
//! `traces_span_metrics_calls_total`, `traces_span_metrics_duration_milliseconds_bucket`).
//!
//! Like the collector's accumulator, delta points are added to what the series already holds and
//! cumulative points replace it, so a scrape shows running totals either way; series not updated
//! for `metric_expiration` disappear.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::config::PrometheusExporterConfig;
use crate::metrics_data::{Attributes, MetricData, MetricsBatch, MetricsConsumer, Temporality};

/// A series' identity: family name and sorted labels.
type SeriesId = (String, Vec<(String, String)>);

/// The latest value of one series.
#[derive(Debug, Clone)]
enum Value {
    Counter(u64),
    Histogram {
        bounds: Arc<[f64]>,
        counts: Vec<u64>,
        sum: f64,
        count: u64,
    },
}

#[derive(Debug)]
struct Entry {
    value: Value,
    updated: Instant,
    time_ms: u64,
}

/// One `prometheus` exporter instance.
pub struct PrometheusExporter {
    config: PrometheusExporterConfig,
    series: Mutex<BTreeMap<SeriesId, Entry>>,
}

impl PrometheusExporter {
    /// An exporter with nothing to show yet.
    pub fn new(config: PrometheusExporterConfig) -> Self {
        PrometheusExporter {
            config,
            series: Mutex::new(BTreeMap::new()),
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

    /// Prometheus text exposition format 0.0.4 of every live series.
    pub fn render(&self) -> String {
        let expiration: Duration = self.config.metric_expiration.0;
        let mut all = self.series.lock().unwrap_or_else(|p| p.into_inner());
        all.retain(|_, e| e.updated.elapsed() <= expiration);
        let mut out = String::new();
        let mut family = "";
        for ((name, labels), e) in all.iter() {
            let ts = if self.config.send_timestamps {
                format!(" {}", e.time_ms)
            } else {
                String::new()
            };
            if name != family {
                let kind = match e.value {
                    Value::Counter(_) => "counter",
                    Value::Histogram { .. } => "histogram",
                };
                let _ = writeln!(out, "# TYPE {name} {kind}");
                family = name;
            }
            match &e.value {
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
            }
        }
        out
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
                            let id = (name.clone(), self.labels(&rm.resource, &p.attributes));
                            let e = all.entry(id).or_insert(Entry {
                                value: Value::Counter(0),
                                updated: now,
                                time_ms: 0,
                            });
                            if let Value::Counter(v) = &mut e.value {
                                *v = match temporality {
                                    Temporality::Delta => *v + p.value,
                                    Temporality::Cumulative => p.value,
                                };
                            }
                            e.updated = now;
                            e.time_ms = p.time_unix_nano / 1_000_000;
                        }
                    }
                    MetricData::Histogram {
                        temporality,
                        bounds,
                        points,
                    } => {
                        let name = metric_name(&self.config, &m.name, m.unit, false);
                        for p in points {
                            let id = (name.clone(), self.labels(&rm.resource, &p.attributes));
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
                        }
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

fn label_text(labels: &[(String, String)], le: Option<&str>) -> String {
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

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
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
