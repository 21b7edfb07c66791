//! Keys of the `prometheus` exporter (collector-contrib v0.115.0 `prometheusexporter`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::config::common::check_listen_endpoint;
use crate::config::duration::GoDuration;
use crate::config::error::{join, ConfigErrors};

/// `exporters.prometheus`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrometheusExporterConfig {
    /// `host:port` the scrape endpoint listens on (`/metrics`).
    pub endpoint: String,
    /// Prefix of every metric name (`namespace_`).
    pub namespace: String,
    /// Labels added to every series.
    pub const_labels: BTreeMap<String, String>,
    /// Append each point's timestamp to its line.
    pub send_timestamps: bool,
    /// Series not updated for this long are dropped from scrapes.
    pub metric_expiration: GoDuration,
    /// Resource attributes as labels.
    pub resource_to_telemetry_conversion: ResourceToTelemetry,
    /// Serve OpenMetrics (with exemplars) to scrapers that ask for it.
    pub enable_open_metrics: bool,
    /// Unit and `_total` suffixes (default true).
    pub add_metric_suffixes: bool,
    /// Server TLS: not implemented.
    pub tls: Option<serde_yaml::Value>,
    /// HTTP server settings of confighttp: accepted and ignored with a warning.
    pub cors: Option<serde_yaml::Value>,
    /// See `cors`.
    pub auth: Option<serde_yaml::Value>,
    /// See `cors`.
    pub include_metadata: Option<bool>,
    /// See `cors`.
    pub response_headers: Option<serde_yaml::Value>,
    /// See `cors`.
    pub max_request_body_size: Option<i64>,
    /// See `cors`.
    pub compression_algorithms: Option<serde_yaml::Value>,
    /// See `cors`.
    pub read_timeout: Option<serde_yaml::Value>,
    /// See `cors`.
    pub read_header_timeout: Option<serde_yaml::Value>,
    /// See `cors`.
    pub write_timeout: Option<serde_yaml::Value>,
    /// See `cors`.
    pub idle_timeout: Option<serde_yaml::Value>,
}

/// `resource_to_telemetry_conversion`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResourceToTelemetry {
    /// Copy every resource attribute onto every series as a label.
    pub enabled: bool,
}

impl Default for PrometheusExporterConfig {
    fn default() -> Self {
        PrometheusExporterConfig {
            endpoint: String::new(),
            namespace: String::new(),
            const_labels: BTreeMap::new(),
            send_timestamps: false,
            metric_expiration: GoDuration(Duration::from_secs(300)),
            resource_to_telemetry_conversion: ResourceToTelemetry::default(),
            enable_open_metrics: false,
            add_metric_suffixes: true,
            tls: None,
            cors: None,
            auth: None,
            include_metadata: None,
            response_headers: None,
            max_request_body_size: None,
            compression_algorithms: None,
            read_timeout: None,
            read_header_timeout: None,
            write_timeout: None,
            idle_timeout: None,
        }
    }
}

impl PrometheusExporterConfig {
    /// Checks the keys; notes accepted-but-ignored ones.
    pub fn validate(&self, path: &str, errors: &mut ConfigErrors, warnings: &mut Vec<String>) {
        if self.endpoint.is_empty() {
            errors.push(
                join(path, "endpoint"),
                "is required, e.g. 0.0.0.0:8889 (port 0 picks a free port)",
            );
        } else {
            check_listen_endpoint(&self.endpoint, &join(path, "endpoint"), errors);
        }
        if self.tls.is_some() {
            errors.push(
                join(path, "tls"),
                "TLS on the prometheus endpoint is not implemented in tailgate",
            );
        }
        for k in self.const_labels.keys() {
            if !valid_label_name(k) {
                errors.push(
                    join(path, &format!("const_labels.{k}")),
                    "is not a valid Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)",
                );
            }
        }
        if self.metric_expiration.0.is_zero() {
            errors.push(join(path, "metric_expiration"), "must be greater than 0");
        }
        let ignored = [
            ("cors", self.cors.is_some()),
            ("auth", self.auth.is_some()),
            ("include_metadata", self.include_metadata.is_some()),
            ("response_headers", self.response_headers.is_some()),
            (
                "max_request_body_size",
                self.max_request_body_size.is_some(),
            ),
            (
                "compression_algorithms",
                self.compression_algorithms.is_some(),
            ),
            ("read_timeout", self.read_timeout.is_some()),
            ("read_header_timeout", self.read_header_timeout.is_some()),
            ("write_timeout", self.write_timeout.is_some()),
            ("idle_timeout", self.idle_timeout.is_some()),
        ];
        for (key, set) in ignored {
            if set {
                warnings.push(format!(
                    "{path}.{key}: not implemented on tailgate's scrape endpoint; ignored"
                ));
            }
        }
    }
}

fn valid_label_name(k: &str) -> bool {
    let mut chars = k.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
