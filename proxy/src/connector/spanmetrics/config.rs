//! Keys of the `spanmetrics` connector (collector-contrib v0.115.0 `spanmetricsconnector`, plus the
//! newer keys it grew later, accepted), and their resolution into [`Settings`].

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::config::duration::GoDuration;
use crate::config::error::{join, ConfigErrors};
use crate::config::{ComponentId, ConnectorConfig, Pipeline, ProcessorConfig, Signal};
use crate::metrics_data::{exponential, Temporality};

/// The collector's default duration buckets, in milliseconds.
pub const DEFAULT_BUCKETS_MS: &[f64] = &[
    2.0, 4.0, 6.0, 8.0, 10.0, 50.0, 100.0, 200.0, 400.0, 800.0, 1000.0, 1400.0, 2000.0, 5000.0,
    10_000.0, 15_000.0,
];
/// The collector's default metric namespace.
pub const DEFAULT_NAMESPACE: &str = "traces.span.metrics";
/// The collector's default `dimensions_cache_size`.
pub const DEFAULT_DIMENSIONS_CACHE_SIZE: i64 = 1000;
/// The collector's default `resource_metrics_cache_size`.
pub const DEFAULT_RESOURCE_METRICS_CACHE_SIZE: i64 = 1000;
/// The collector's default `metrics_flush_interval` (v0.115: 60 s).
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(60);

/// Exemplars per point when `exemplars.max_per_data_point` is unset. The collector has no limit
/// there (every span of the interval becomes an exemplar); tailgate keeps memory bounded.
pub const DEFAULT_MAX_EXEMPLARS: usize = 10;
/// Most exemplars per point whatever `max_per_data_point` says (larger values are clamped).
pub const MAX_EXEMPLARS: usize = 1000;

/// The four dimensions every series carries (unless excluded).
pub const SERVICE_NAME: &str = "service.name";
/// Span name dimension.
pub const SPAN_NAME: &str = "span.name";
/// Span kind dimension.
pub const SPAN_KIND: &str = "span.kind";
/// Status code dimension.
pub const STATUS_CODE: &str = "status.code";

/// `connectors.spanmetrics`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpanMetricsConfig {
    /// Extra dimensions read from span attributes, then resource attributes.
    pub dimensions: Vec<Dimension>,
    /// Newer collectors: dimensions only on the calls metric (accepted, applied to both).
    pub calls_dimensions: Vec<Dimension>,
    /// Default dimensions to leave out (`service.name`, `span.name`, `span.kind`, `status.code`).
    pub exclude_dimensions: Vec<String>,
    /// Bound of the per-core key cache.
    pub dimensions_cache_size: i64,
    /// Bound of the cache of per-resource metrics (accepted; see the deviations).
    pub resource_metrics_cache_size: i64,
    /// Resource attributes that identify a resource's metrics (all when empty).
    pub resource_metrics_key_attributes: Vec<String>,
    /// `AGGREGATION_TEMPORALITY_CUMULATIVE` (default) or `AGGREGATION_TEMPORALITY_DELTA`.
    pub aggregation_temporality: String,
    /// Duration histogram.
    pub histogram: HistogramConfig,
    /// How often aggregates are merged and emitted.
    pub metrics_flush_interval: GoDuration,
    /// Series not updated for this long stop being emitted (0: never).
    pub metrics_expiration: GoDuration,
    /// Delta timestamp cache (accepted).
    pub metric_timestamp_cache_size: Option<i64>,
    /// Metric name prefix.
    pub namespace: String,
    /// Exemplars on the calls and duration points.
    pub exemplars: ExemplarsConfig,
    /// Events metric (accepted only disabled).
    pub events: EventsConfig,
    /// Newer collectors: scope names to include (accepted; not implemented).
    pub include_instrumentation_scope: Vec<String>,
    /// Newer collectors: series limit (accepted; not implemented).
    pub aggregation_cardinality_limit: i64,
    /// tailgate's own keys.
    pub tailgate: TailgateConfig,
}

/// `tailgate`: keys the collector does not have.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TailgateConfig {
    /// A `tail_sampling` processor id: attach only exemplars of traces it kept, so every exemplar
    /// links to a stored trace (they then trail the counts by its `decision_wait`).
    pub exemplars_kept_by: Option<String>,
}

impl Default for SpanMetricsConfig {
    fn default() -> Self {
        SpanMetricsConfig {
            dimensions: Vec::new(),
            calls_dimensions: Vec::new(),
            exclude_dimensions: Vec::new(),
            dimensions_cache_size: DEFAULT_DIMENSIONS_CACHE_SIZE,
            resource_metrics_cache_size: DEFAULT_RESOURCE_METRICS_CACHE_SIZE,
            resource_metrics_key_attributes: Vec::new(),
            aggregation_temporality: "AGGREGATION_TEMPORALITY_CUMULATIVE".to_owned(),
            histogram: HistogramConfig::default(),
            metrics_flush_interval: GoDuration(DEFAULT_FLUSH_INTERVAL),
            metrics_expiration: GoDuration(Duration::ZERO),
            metric_timestamp_cache_size: None,
            namespace: DEFAULT_NAMESPACE.to_owned(),
            exemplars: ExemplarsConfig::default(),
            events: EventsConfig::default(),
            include_instrumentation_scope: Vec::new(),
            aggregation_cardinality_limit: 0,
            tailgate: TailgateConfig::default(),
        }
    }
}

/// One extra dimension.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dimension {
    /// Attribute key.
    pub name: String,
    /// Value when neither the span nor its resource has the attribute (else the label is left out).
    #[serde(default)]
    pub default: Option<String>,
}

/// `histogram`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HistogramConfig {
    /// No duration metric at all.
    pub disable: bool,
    /// `ms` (default) or `s`.
    pub unit: Option<String>,
    /// Exponential buckets (base-2, `max_size` buckets per range).
    pub exponential: Option<ExponentialConfig>,
    /// Explicit buckets.
    pub explicit: Option<ExplicitConfig>,
    /// Newer collectors: dimensions only on the histogram (accepted, applied to both).
    pub dimensions: Vec<Dimension>,
}

/// `histogram.exponential`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExponentialConfig {
    /// Maximum buckets per range (0: 160; clamped to 2..=16384 as go-expohisto does).
    pub max_size: i64,
}

/// `histogram.explicit`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExplicitConfig {
    /// Upper bounds as Go durations (`100ms`, `1s`); the collector's defaults when absent.
    pub buckets: Option<Vec<GoDuration>>,
}

/// `exemplars`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExemplarsConfig {
    /// Attach exemplars (trace and span IDs of spans counted in a point).
    pub enabled: bool,
    /// Exemplars per point and flush: the first ones of the interval (unset: see
    /// [`DEFAULT_MAX_EXEMPLARS`]; 0 or less: none, as in the collector).
    pub max_per_data_point: Option<i64>,
}

/// `events`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    /// Count span events (not implemented: an error when enabled).
    pub enabled: bool,
    /// Event dimensions.
    pub dimensions: Vec<Dimension>,
}

/// Duration unit of the histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Milliseconds (`ms`), the default.
    Milliseconds,
    /// Seconds (`s`).
    Seconds,
}

impl Unit {
    /// UCUM spelling.
    pub fn ucum(self) -> &'static str {
        match self {
            Unit::Milliseconds => "ms",
            Unit::Seconds => "s",
        }
    }

    /// Nanoseconds per unit.
    pub fn nanos(self) -> f64 {
        match self {
            Unit::Milliseconds => 1e6,
            Unit::Seconds => 1e9,
        }
    }
}

/// The resolved settings the runtime runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Extra dimensions in order (name, default).
    pub dimensions: Vec<(String, Option<String>)>,
    /// Which of the four default dimensions are kept: service, name, kind, status.
    pub keep: [bool; 4],
    /// Per-core key cache bound.
    pub cache_size: usize,
    /// Resource attributes forming the resource key (`None`: all).
    pub resource_key_attributes: Option<Vec<String>>,
    /// Temporality of the emitted points.
    pub temporality: Temporality,
    /// Duration histogram bounds in `unit`; `None` when the histogram is off or exponential.
    pub bounds: Option<Vec<f64>>,
    /// `max_size` of the exponential duration histogram, when that is the histogram in use.
    pub exponential_max_size: Option<u32>,
    /// Histogram unit.
    pub unit: Unit,
    /// Flush period.
    pub flush_interval: Duration,
    /// Expiration of idle series (`None`: never).
    pub expiration: Option<Duration>,
    /// Metric name prefix (`traces.span.metrics`); empty means none.
    pub namespace: String,
    /// Exemplars, when enabled.
    pub exemplars: Option<ExemplarSettings>,
}

/// Resolved `exemplars` (and `tailgate.exemplars_kept_by`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExemplarSettings {
    /// Exemplars per point and flush (0: none).
    pub max_per_point: usize,
    /// The `tail_sampling` whose kept traces alone give exemplars.
    pub kept_by: Option<ComponentId>,
}

impl ExemplarSettings {
    /// Candidates one core keeps per series between hand-overs. Without `kept_by` every candidate
    /// becomes an exemplar, so the point's cap is enough; with it most candidates may belong to
    /// traces that are not kept, so each core offers a few times more.
    pub fn candidates_per_series(&self) -> usize {
        if self.kept_by.is_some() {
            self.max_per_point.saturating_mul(4)
        } else {
            self.max_per_point
        }
    }
}

impl SpanMetricsConfig {
    /// Checks every key, records problems with their paths and returns the runtime settings.
    pub fn resolve(
        &self,
        path: &str,
        errors: &mut ConfigErrors,
        warnings: &mut Vec<String>,
    ) -> Settings {
        let mut dims: Vec<(String, Option<String>)> = Vec::new();
        let reserved = [SERVICE_NAME, SPAN_KIND, STATUS_CODE, SPAN_NAME];
        let lists = [
            ("dimensions", &self.dimensions),
            ("calls_dimensions", &self.calls_dimensions),
            ("histogram.dimensions", &self.histogram.dimensions),
        ];
        for (key, list) in lists {
            for (i, d) in list.iter().enumerate() {
                let dpath = format!("{path}.{key}[{i}].name");
                if reserved.contains(&d.name.as_str()) || dims.iter().any(|(n, _)| *n == d.name) {
                    errors.push(dpath, format!("duplicate dimension name {}", d.name));
                } else if d.name.is_empty() {
                    errors.push(dpath, "must not be empty");
                } else {
                    dims.push((d.name.clone(), d.default.clone()));
                }
            }
        }
        if !self.calls_dimensions.is_empty() || !self.histogram.dimensions.is_empty() {
            warnings.push(format!("{path}: calls_dimensions and histogram.dimensions are added to both metrics in tailgate"));
        }
        let mut keep = [true; 4];
        for (i, d) in self.exclude_dimensions.iter().enumerate() {
            match [SERVICE_NAME, SPAN_NAME, SPAN_KIND, STATUS_CODE]
                .iter()
                .position(|r| r == d)
            {
                Some(p) => keep[p] = false,
                None => warnings.push(format!(
                    "{path}.exclude_dimensions[{i}]: {d:?} is not a default dimension; nothing to exclude"
                )),
            }
        }
        if self.dimensions_cache_size <= 0 {
            errors.push(join(path, "dimensions_cache_size"), format!("invalid cache size: {}, the maximum number of the items in the cache should be positive", self.dimensions_cache_size));
        }
        if self.resource_metrics_cache_size <= 0 {
            errors.push(join(path, "resource_metrics_cache_size"), format!("invalid cache size: {}, the maximum number of the items in the cache should be positive", self.resource_metrics_cache_size));
        }
        let temporality = match self.aggregation_temporality.as_str() {
            "AGGREGATION_TEMPORALITY_CUMULATIVE" => Temporality::Cumulative,
            "AGGREGATION_TEMPORALITY_DELTA" => Temporality::Delta,
            other => {
                // The collector falls back to cumulative silently; a typo deserves a word.
                warnings.push(format!("{path}.aggregation_temporality: {other:?} is neither AGGREGATION_TEMPORALITY_CUMULATIVE nor AGGREGATION_TEMPORALITY_DELTA; cumulative is used, as in the collector"));
                Temporality::Cumulative
            }
        };
        let unit = match self.histogram.unit.as_deref() {
            None | Some("ms") => Unit::Milliseconds,
            Some("s") => Unit::Seconds,
            Some(other) => {
                errors.push(
                    join(path, "histogram.unit"),
                    format!("unknown unit {other:?}; allowed: ms, s"),
                );
                Unit::Milliseconds
            }
        };
        let bounds = self.bounds(path, unit, errors);
        if self.metrics_flush_interval.0.is_zero() {
            errors.push(
                join(path, "metrics_flush_interval"),
                "must be greater than 0",
            );
        }
        let exemplars = self.exemplar_settings(path, errors, warnings);
        if self.events.enabled {
            errors.push(
                join(path, "events.enabled"),
                "the events metric is not implemented in tailgate",
            );
        }
        if !self.include_instrumentation_scope.is_empty() || self.aggregation_cardinality_limit != 0
        {
            warnings.push(format!("{path}: include_instrumentation_scope and aggregation_cardinality_limit are not implemented in tailgate; ignored"));
        }
        if self.metric_timestamp_cache_size.is_some_and(|n| n <= 0) {
            errors.push(
                join(path, "metric_timestamp_cache_size"),
                "must be positive",
            );
        }
        Settings {
            dimensions: dims,
            keep,
            cache_size: usize::try_from(self.dimensions_cache_size.max(1)).unwrap_or(1),
            resource_key_attributes: (!self.resource_metrics_key_attributes.is_empty())
                .then(|| self.resource_metrics_key_attributes.clone()),
            temporality,
            exponential_max_size: self.exponential_max_size(path, warnings),
            bounds,
            unit,
            flush_interval: self.metrics_flush_interval.0,
            expiration: (!self.metrics_expiration.0.is_zero()).then_some(self.metrics_expiration.0),
            namespace: self.namespace.clone(),
            exemplars,
        }
    }

    /// `exemplars` and `tailgate.exemplars_kept_by` (whether that processor exists is checked
    /// with the whole config, [`crate::config`]).
    fn exemplar_settings(
        &self,
        path: &str,
        errors: &mut ConfigErrors,
        warnings: &mut Vec<String>,
    ) -> Option<ExemplarSettings> {
        let kept_by = self.tailgate.exemplars_kept_by.as_ref().and_then(|id| {
            let key = join(path, "tailgate.exemplars_kept_by");
            if !self.exemplars.enabled {
                errors.push(key, "needs exemplars.enabled: true");
                return None;
            }
            ComponentId::parse(id).map_err(|e| errors.push(key, e)).ok()
        });
        if !self.exemplars.enabled {
            return None;
        }
        let max_per_point = match self.exemplars.max_per_data_point {
            None => DEFAULT_MAX_EXEMPLARS,
            // The collector's `len >= max` check: zero or negative keeps none.
            Some(n) if n <= 0 => 0,
            Some(n) => {
                let n = usize::try_from(n).unwrap_or(usize::MAX);
                if n > MAX_EXEMPLARS {
                    warnings.push(format!(
                        "{path}.exemplars.max_per_data_point: {n} is above tailgate's limit; {MAX_EXEMPLARS} is used"
                    ));
                }
                n.min(MAX_EXEMPLARS)
            }
        };
        Some(ExemplarSettings {
            max_per_point,
            kept_by,
        })
    }

    /// The exponential histogram's bucket limit, when it is the histogram in use (and not disabled).
    fn exponential_max_size(&self, path: &str, warnings: &mut Vec<String>) -> Option<u32> {
        let h = &self.histogram;
        let e = h.exponential.as_ref().filter(|_| !h.disable)?;
        let size = exponential::effective_max_size(e.max_size);
        if e.max_size != 0 && i64::from(size) != e.max_size {
            // go-expohisto clamps silently; say so.
            warnings.push(format!(
                "{path}.histogram.exponential.max_size: {} is outside 2..=16384 (0 means 160); {size} is used, as in the collector",
                e.max_size
            ));
        }
        Some(size)
    }

    fn bounds(&self, path: &str, unit: Unit, errors: &mut ConfigErrors) -> Option<Vec<f64>> {
        let h = &self.histogram;
        if h.explicit.is_some() && h.exponential.is_some() {
            errors.push(
                join(path, "histogram"),
                "use either `explicit` or `exponential` buckets histogram",
            );
        }
        if h.disable {
            return None;
        }
        if h.exponential.is_some() {
            return None;
        }
        let explicit = h.explicit.as_ref().and_then(|e| e.buckets.as_ref());
        let Some(buckets) = explicit else {
            let scale = match unit {
                Unit::Milliseconds => 1.0,
                Unit::Seconds => 1000.0,
            };
            return Some(DEFAULT_BUCKETS_MS.iter().map(|b| b / scale).collect());
        };
        let out: Vec<f64> = buckets
            .iter()
            .map(|d| d.0.as_nanos() as f64 / unit.nanos())
            .collect();
        if out.windows(2).any(|w| w[0] >= w[1]) {
            errors.push(
                join(path, "histogram.explicit.buckets"),
                "bucket bounds must be strictly increasing",
            );
        }
        Some(out)
    }
}

/// Checks each `tailgate.exemplars_kept_by` against the whole config: it must name a
/// `tail_sampling` processor that runs in a traces pipeline of this process (the decisions it
/// publishes are the only ones the connector learns).
pub fn check_kept_by(
    connectors: &BTreeMap<ComponentId, ConnectorConfig>,
    processors: &BTreeMap<ComponentId, ProcessorConfig>,
    pipelines: &[Pipeline],
    errors: &mut ConfigErrors,
) {
    for (id, c) in connectors {
        let ConnectorConfig::SpanMetrics(c) = c;
        let Some(pid) = c.1.exemplars.as_ref().and_then(|x| x.kept_by.as_ref()) else {
            continue;
        };
        let key = format!("connectors.{id}.tailgate.exemplars_kept_by");
        if !matches!(processors.get(pid), Some(ProcessorConfig::TailSampling(_))) {
            errors.push(
                key,
                format!("\"{pid}\" is not a tail_sampling processor of this config"),
            );
            continue;
        }
        let used = pipelines
            .iter()
            .any(|p| p.id.signal == Signal::Traces && p.processors.contains(pid));
        if !used {
            errors.push(
                key,
                format!("processor \"{pid}\" is in no traces pipeline: none of its decisions would arrive"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse(text: &str) -> (Settings, ConfigErrors, Vec<String>) {
        let v: serde_yaml::Value = serde_yaml::from_str(text).unwrap();
        let c: SpanMetricsConfig = serde_yaml::from_value(v).unwrap();
        let mut e = ConfigErrors::default();
        let mut w = Vec::new();
        let s = c.resolve("connectors.spanmetrics", &mut e, &mut w);
        (s, e, w)
    }

    #[test]
    fn defaults_are_the_collectors() {
        let (s, e, w) = parse("{}");
        assert!(e.is_empty() && w.is_empty());
        assert_eq!(s.bounds.as_deref(), Some(DEFAULT_BUCKETS_MS));
        assert_eq!(s.temporality, Temporality::Cumulative);
        assert_eq!(s.flush_interval, Duration::from_secs(60));
        assert_eq!(s.namespace, "traces.span.metrics");
        assert_eq!(s.cache_size, 1000);
        assert_eq!(s.keep, [true; 4]);
        assert!(s.expiration.is_none());
        assert!(s.exponential_max_size.is_none());
        assert!(s.exemplars.is_none());
    }

    #[test]
    fn exemplars_are_capped_even_when_unlimited_in_the_collector() {
        let (s, e, w) = parse("exemplars: {enabled: true}");
        assert!(e.is_empty() && w.is_empty(), "{e} {w:?}");
        let x = s.exemplars.unwrap();
        assert_eq!((x.max_per_point, x.kept_by), (DEFAULT_MAX_EXEMPLARS, None));
        let (s, _, w) = parse("exemplars: {enabled: true, max_per_data_point: 3}");
        assert_eq!((s.exemplars.unwrap().max_per_point, w.len()), (3, 0));
        let (s, _, _) = parse("exemplars: {enabled: true, max_per_data_point: -1}");
        assert_eq!(s.exemplars.unwrap().max_per_point, 0);
        let (s, _, w) = parse("exemplars: {enabled: true, max_per_data_point: 5000}");
        assert_eq!(
            (s.exemplars.unwrap().max_per_point, w.len()),
            (MAX_EXEMPLARS, 1)
        );
        let (s, _, _) = parse("exemplars: {max_per_data_point: 3}");
        assert!(s.exemplars.is_none(), "off unless enabled");
    }

    #[test]
    fn exemplars_kept_by_names_a_processor_and_needs_exemplars() {
        let (s, e, _) = parse(
            "exemplars: {enabled: true}\ntailgate: {exemplars_kept_by: tail_sampling/errors}",
        );
        assert!(e.is_empty(), "{e}");
        let x = s.exemplars.unwrap();
        assert_eq!(
            x.kept_by.as_ref().unwrap().to_string(),
            "tail_sampling/errors"
        );
        assert_eq!(x.candidates_per_series(), 4 * DEFAULT_MAX_EXEMPLARS);
        let (_, e, _) = parse("tailgate: {exemplars_kept_by: tail_sampling}");
        assert_eq!(
            e.problems[0].to_string(),
            "connectors.spanmetrics.tailgate.exemplars_kept_by: needs exemplars.enabled: true"
        );
    }

    #[test]
    fn exponential_replaces_the_explicit_buckets() {
        let (s, e, w) = parse("histogram: {exponential: {}}");
        assert!(e.is_empty() && w.is_empty(), "{w:?}");
        assert_eq!((s.bounds, s.exponential_max_size), (None, Some(160)));
        let (s, _, w) = parse("histogram: {exponential: {max_size: 1}}");
        assert_eq!(s.exponential_max_size, Some(2));
        assert_eq!(w.len(), 1, "{w:?}");
        let (s, _, w) = parse("histogram: {exponential: {max_size: 20}}");
        assert_eq!((s.exponential_max_size, w.len()), (Some(20), 0));
        let (s, _, _) = parse("histogram: {disable: true, exponential: {max_size: 20}}");
        assert_eq!((s.bounds, s.exponential_max_size), (None, None));
    }

    #[test]
    fn explicit_buckets_are_go_durations_in_the_unit() {
        let (s, e, _) = parse("histogram: {explicit: {buckets: [100ms, 250ms, 1s, 5s]}}");
        assert!(e.is_empty());
        assert_eq!(s.bounds.unwrap(), vec![100.0, 250.0, 1000.0, 5000.0]);
        let (s, _, _) = parse("histogram: {unit: s, explicit: {buckets: [100ms, 2s]}}");
        assert_eq!(s.bounds.unwrap(), vec![0.1, 2.0]);
        let (s, _, _) = parse("histogram: {unit: s}");
        assert_eq!(s.bounds.unwrap()[0], 0.002);
    }

    #[test]
    fn problems_name_their_keys() {
        let (_, e, w) = parse(
            "dimensions: [{name: span.kind}, {name: a}, {name: a}]
dimensions_cache_size: 0
histogram: {unit: h, explicit: {buckets: [1s]}, exponential: {max_size: 10}}
aggregation_temporality: DELTA
exemplars: {enabled: true}
exclude_dimensions: [status.code]",
        );
        let m: Vec<String> = e.problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            m,
            vec![
                "connectors.spanmetrics.dimensions[0].name: duplicate dimension name span.kind",
                "connectors.spanmetrics.dimensions[2].name: duplicate dimension name a",
                "connectors.spanmetrics.dimensions_cache_size: invalid cache size: 0, the maximum number of the items in the cache should be positive",
                "connectors.spanmetrics.histogram.unit: unknown unit \"h\"; allowed: ms, s",
                "connectors.spanmetrics.histogram: use either `explicit` or `exponential` buckets histogram",
            ]
        );
        assert_eq!(w.len(), 1, "{w:?}");
    }

    #[test]
    fn exclusions_and_delta() {
        let (s, e, _) = parse(
            "exclude_dimensions: [status.code, span.kind]
aggregation_temporality: AGGREGATION_TEMPORALITY_DELTA
metrics_expiration: 5m
dimensions: [{name: http.method, default: GET}]",
        );
        assert!(e.is_empty());
        assert_eq!(s.keep, [true, true, false, false]);
        assert_eq!(s.temporality, Temporality::Delta);
        assert_eq!(s.expiration, Some(Duration::from_secs(300)));
        assert_eq!(
            s.dimensions,
            vec![("http.method".to_owned(), Some("GET".to_owned()))]
        );
    }
}
