//! Keys of the `service` section: extensions, pipelines and self-telemetry.

use serde::Deserialize;

use std::collections::BTreeMap;

use super::duration::GoDuration;
use super::error::{join, ConfigErrors};
use super::registry::{ConnectorConfig, ExporterConfig};
use super::{ComponentId, Pipeline, Signal};

/// Default self-metrics address of collector v0.115.
pub const DEFAULT_METRICS_ADDRESS: &str = "localhost:8888";

/// `service`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// Extension ids to start.
    #[serde(default)]
    pub extensions: Vec<String>,
    /// Pipelines by id (`traces`, `traces/sampling`, ...), kept raw so each is checked with its path.
    #[serde(default)]
    pub pipelines: serde_yaml::Mapping,
    /// Self-telemetry.
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// tailgate-only keys (the collector rejects this block).
    #[serde(default)]
    pub tailgate: ServiceTailgate,
}

/// `service.tailgate`: the shutdown budgets.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceTailgate {
    /// After SIGTERM, how long open connections may take to finish their requests and close
    /// (GOAWAY / `Connection: close`); requests that finish later are refused (UNAVAILABLE).
    pub connection_grace: GoDuration,
    /// After that, how long stages may take to flush and queues to send before what is left is
    /// counted as lost (`reason="shutdown"`).
    pub drain_timeout: GoDuration,
}

/// Default `service.tailgate.connection_grace`.
pub const DEFAULT_CONNECTION_GRACE: std::time::Duration = std::time::Duration::from_secs(5);
/// Default `service.tailgate.drain_timeout`.
pub const DEFAULT_DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

impl Default for ServiceTailgate {
    fn default() -> Self {
        ServiceTailgate {
            connection_grace: GoDuration(DEFAULT_CONNECTION_GRACE),
            drain_timeout: GoDuration(DEFAULT_DRAIN_TIMEOUT),
        }
    }
}

/// One pipeline's component lists.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Receiver or connector ids.
    #[serde(default)]
    pub receivers: Vec<String>,
    /// Processor ids, in order.
    #[serde(default)]
    pub processors: Vec<String>,
    /// Exporter or connector ids.
    #[serde(default)]
    pub exporters: Vec<String>,
}

/// `service.telemetry`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Self-metrics.
    #[serde(default)]
    pub metrics: MetricsTelemetry,
    /// Own logs.
    #[serde(default)]
    pub logs: LogsTelemetry,
    /// Resource attributes of own telemetry (accepted, unused).
    #[serde(default)]
    pub resource: Option<serde_yaml::Value>,
    /// Own traces (not implemented; accepted only when empty).
    #[serde(default)]
    pub traces: Option<serde_yaml::Value>,
}

/// `service.telemetry.metrics`: the old `address` or the newer `readers` form.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsTelemetry {
    /// none, basic, normal (default) or detailed; `none` disables the endpoint.
    #[serde(default)]
    pub level: Option<String>,
    /// `host:port` of the Prometheus endpoint.
    #[serde(default)]
    pub address: Option<String>,
    /// Newer form: `readers: [{pull: {exporter: {prometheus: {host, port}}}}]`.
    #[serde(default)]
    pub readers: Vec<MetricReader>,
}

/// One metric reader; only `pull` with a Prometheus exporter is implemented.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricReader {
    /// A pull reader.
    #[serde(default)]
    pub pull: Option<PullReader>,
    /// A periodic (push) reader: not implemented.
    #[serde(default)]
    pub periodic: Option<serde_yaml::Value>,
}

/// `pull` reader.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullReader {
    /// Its exporter.
    pub exporter: PullExporter,
}

/// `pull.exporter`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullExporter {
    /// The Prometheus exporter.
    pub prometheus: Option<PrometheusReader>,
}

/// `pull.exporter.prometheus`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusReader {
    /// Host to bind.
    #[serde(default)]
    pub host: Option<String>,
    /// Port to bind.
    #[serde(default)]
    pub port: Option<u16>,
    /// Accepted; names always follow the collector's defaults.
    #[serde(default)]
    pub without_type_suffix: Option<bool>,
    /// Accepted; see above.
    #[serde(default)]
    pub without_units: Option<bool>,
    /// Accepted; see above.
    #[serde(default)]
    pub without_scope_info: Option<bool>,
}

/// `service.telemetry.logs`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsTelemetry {
    /// debug, info (default), warn, error.
    #[serde(default)]
    pub level: Option<String>,
    /// console or json (accepted; tailgate logs as text).
    #[serde(default)]
    pub encoding: Option<String>,
    /// Accepted and ignored.
    #[serde(default)]
    pub development: Option<bool>,
    /// Accepted and ignored.
    #[serde(default)]
    pub disable_caller: Option<bool>,
    /// Accepted and ignored.
    #[serde(default)]
    pub disable_stacktrace: Option<bool>,
    /// Only stderr is supported.
    #[serde(default)]
    pub output_paths: Option<Vec<String>>,
    /// Only stderr is supported.
    #[serde(default)]
    pub error_output_paths: Option<Vec<String>>,
    /// Accepted and ignored.
    #[serde(default)]
    pub initial_fields: Option<serde_yaml::Value>,
    /// Accepted and ignored.
    #[serde(default)]
    pub sampling: Option<serde_yaml::Value>,
}

impl TelemetryConfig {
    /// Resolves the self-metrics listen address: `None` when disabled (`level: none`).
    pub fn metrics_address(&self, path: &str, errors: &mut ConfigErrors) -> Option<String> {
        let m = &self.metrics;
        let mpath = join(path, "metrics");
        if let Some(level) = &m.level {
            match level.as_str() {
                "none" => return None,
                "basic" | "normal" | "detailed" => {}
                other => errors.push(
                    join(&mpath, "level"),
                    format!("{other:?} is not a level; allowed: none, basic, normal, detailed"),
                ),
            }
        }
        if m.address.is_some() && !m.readers.is_empty() {
            errors.push(&mpath, "set either address or readers, not both");
        }
        if let Some(a) = &m.address {
            super::common::check_listen_endpoint(a, &join(&mpath, "address"), errors);
            return Some(a.clone());
        }
        let mut found = None;
        for (i, r) in m.readers.iter().enumerate() {
            let rpath = format!("{mpath}.readers[{i}]");
            if r.periodic.is_some() {
                errors.push(format!("{rpath}.periodic"), "periodic (push) readers are not implemented in tailgate; use pull with prometheus");
            }
            let prom = r.pull.as_ref().and_then(|p| p.exporter.prometheus.as_ref());
            match prom {
                Some(p) if found.is_none() => {
                    let host = p.host.clone().unwrap_or_else(|| "localhost".to_owned());
                    let port = p.port.unwrap_or(8888);
                    found = Some(if host.contains(':') {
                        format!("[{host}]:{port}")
                    } else {
                        format!("{host}:{port}")
                    });
                }
                Some(_) => errors.push(&rpath, "only one prometheus pull reader is supported"),
                None if r.pull.is_some() => errors.push(
                    format!("{rpath}.pull.exporter"),
                    "only the prometheus exporter is supported",
                ),
                None => {}
            }
        }
        if !m.readers.is_empty() {
            return found;
        }
        Some(DEFAULT_METRICS_ADDRESS.to_owned())
    }

    /// Checks the logs block; returns the log level.
    pub fn log_level(&self, path: &str, errors: &mut ConfigErrors) -> String {
        let lpath = join(path, "logs");
        let level = self.logs.level.clone().unwrap_or_else(|| "info".to_owned());
        let level = level.to_ascii_lowercase();
        if !matches!(level.as_str(), "debug" | "info" | "warn" | "error") {
            errors.push(
                join(&lpath, "level"),
                format!("{level:?} is not a level; allowed: debug, info, warn, error"),
            );
        }
        for (key, v) in [
            ("output_paths", &self.logs.output_paths),
            ("error_output_paths", &self.logs.error_output_paths),
        ] {
            if let Some(paths) = v {
                if paths.iter().any(|p| p != "stderr" && p != "stdout") {
                    errors.push(join(&lpath, key), "only stderr and stdout are supported");
                }
            }
        }
        if self.traces.is_some() {
            errors.push(
                join(path, "traces"),
                "tailgate does not export its own traces; remove this block",
            );
        }
        level
    }
}

/// Checks that each component sits in a pipeline of the signal it handles: `prometheus` only
/// exports metrics; `spanmetrics` is an exporter of traces pipelines and a receiver of metrics
/// pipelines; metrics pipelines take no processors (none is implemented for metrics).
pub fn check_signal_flow(
    pipelines: &[Pipeline],
    exporters: &BTreeMap<ComponentId, ExporterConfig>,
    connectors: &BTreeMap<ComponentId, ConnectorConfig>,
    errors: &mut ConfigErrors,
) {
    for p in pipelines {
        let path = format!("service.pipelines.{}", p.id);
        let metrics = p.id.signal == Signal::Metrics;
        for (i, e) in p.exporters.iter().enumerate() {
            let at = format!("{path}.exporters[{i}]");
            match (exporters.get(e), connectors.get(e)) {
                (Some(ExporterConfig::Prometheus(_)), _) if !metrics => errors.push(at, format!("exporter \"{e}\" exports metrics; use it in a metrics pipeline, e.g. metrics: {{receivers: [spanmetrics], exporters: [{e}]}}")),
                (_, Some(ConnectorConfig::SpanMetrics(_))) if p.id.signal != Signal::Traces => errors.push(at, format!("connector \"{e}\" consumes traces: it is an exporter of traces pipelines only")),
                _ => {}
            }
        }
        for (i, r) in p.receivers.iter().enumerate() {
            if matches!(connectors.get(r), Some(ConnectorConfig::SpanMetrics(_))) && !metrics {
                errors.push(format!("{path}.receivers[{i}]"), format!("connector \"{r}\" produces metrics: it is a receiver of metrics pipelines only"));
            }
        }
        if metrics && !p.processors.is_empty() {
            errors.push(join(&path, "processors"), "processors in metrics pipelines are not implemented in tailgate; connect the receiver straight to the exporters");
        }
    }
}
