//! Which component types tailgate knows, which it implements, and how each one's keys are parsed.
//!
//! Adding a component: add its `config.rs` beside its implementation, its name to
//! [`Section::implemented`], a variant to the matching enum below and an arm to its section's
//! parser; then a factory arm in `service/build.rs` (docs/proxy.md, "Adding a component").

use serde_yaml::{Mapping, Value};

use super::error::ConfigErrors;
pub use super::keys::parse_keys;
use crate::connector::spanmetrics::config::{Settings as SpanMetricsSettings, SpanMetricsConfig};
use crate::exporter::debug::config::{DebugExporterConfig, NopExporterConfig};
use crate::exporter::loadbalancing::config::{self as loadbalancing, LoadBalancingConfig};
use crate::exporter::otlp::config::{self as otlp, OtlpExporterConfig};
use crate::exporter::otlphttp::config::{self as otlphttp, OtlpHttpExporterConfig};
use crate::exporter::prometheus::config::PrometheusExporterConfig;
use crate::extension::health_check::config::HealthCheckConfig;
use crate::processor::batch::config::BatchConfig;
use crate::processor::memory_limiter::config::MemoryLimiterConfig;
use crate::processor::redaction::config::{Redaction, RedactionConfig};
use crate::processor::tail_sampling::config::{self as tail_sampling, TailSamplingConfig};
use crate::receiver::otlp::config::OtlpReceiverConfig;

/// The kinds of component sections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// `receivers`.
    Receivers,
    /// `processors`.
    Processors,
    /// `exporters`.
    Exporters,
    /// `connectors`.
    Connectors,
    /// `extensions`.
    Extensions,
}

impl Section {
    /// The YAML key.
    pub fn key(self) -> &'static str {
        match self {
            Section::Receivers => "receivers",
            Section::Processors => "processors",
            Section::Exporters => "exporters",
            Section::Connectors => "connectors",
            Section::Extensions => "extensions",
        }
    }

    fn singular(self) -> &'static str {
        match self {
            Section::Receivers => "receiver",
            Section::Processors => "processor",
            Section::Exporters => "exporter",
            Section::Connectors => "connector",
            Section::Extensions => "extension",
        }
    }

    /// Types tailgate implements in this section.
    pub fn implemented(self) -> &'static [&'static str] {
        match self {
            Section::Receivers => &["otlp"],
            Section::Processors => &["memory_limiter", "batch", "tail_sampling", "redaction"],
            Section::Exporters => &[
                "otlp",
                "otlphttp",
                "debug",
                "nop",
                "loadbalancing",
                "prometheus",
            ],
            Section::Connectors => &["spanmetrics"],
            Section::Extensions => &["health_check"],
        }
    }

    /// Types the reference configs or the project plan use that are not implemented yet.
    pub fn planned(self) -> &'static [&'static str] {
        match self {
            Section::Receivers => &[],
            Section::Processors => &[],
            Section::Exporters => &[],
            Section::Connectors => &[],
            Section::Extensions => &[],
        }
    }
}

/// A parsed receiver.
#[derive(Debug, Clone)]
pub enum ReceiverConfig {
    /// `otlp`.
    Otlp(OtlpReceiverConfig),
}

/// A parsed processor.
#[derive(Debug, Clone)]
pub enum ProcessorConfig {
    /// `memory_limiter`.
    MemoryLimiter(MemoryLimiterConfig),
    /// `batch`.
    Batch(BatchConfig),
    /// `tail_sampling`.
    TailSampling(Box<TailSamplingConfig>),
    /// `redaction`.
    Redaction(Box<Redaction>),
}

/// A parsed exporter.
#[derive(Debug, Clone)]
pub enum ExporterConfig {
    /// `otlp` (gRPC).
    Otlp(Box<otlp::Validated>),
    /// `otlphttp`.
    OtlpHttp(Box<otlphttp::Validated>),
    /// `debug`.
    Debug(DebugExporterConfig),
    /// `nop`.
    Nop(NopExporterConfig),
    /// `loadbalancing` (agent mode).
    LoadBalancing(Box<loadbalancing::Validated>),
    /// `prometheus` (metrics pipelines only).
    Prometheus(Box<PrometheusExporterConfig>),
}

/// A parsed connector.
#[derive(Debug, Clone)]
pub enum ConnectorConfig {
    /// `spanmetrics`: traces → metrics; its keys and the settings resolved from them.
    SpanMetrics(Box<(SpanMetricsConfig, SpanMetricsSettings)>),
}

/// A parsed extension.
#[derive(Debug, Clone)]
pub enum ExtensionConfig {
    /// `health_check`.
    HealthCheck(HealthCheckConfig),
}

/// Checks that `kind` is implemented in `section`; records why not otherwise.
pub fn check_kind(section: Section, kind: &str, path: &str, errors: &mut ConfigErrors) -> bool {
    if section.implemented().contains(&kind) {
        return true;
    }
    if section.planned().contains(&kind) {
        errors.push(
            path,
            format!("component type {kind:?} is known but not implemented yet"),
        );
    } else {
        let mut allowed: Vec<String> = section
            .implemented()
            .iter()
            .map(|s| s.to_string())
            .collect();
        allowed.extend(
            section
                .planned()
                .iter()
                .map(|s| format!("{s} (not implemented yet)")),
        );
        let allowed = if allowed.is_empty() {
            "none yet".to_owned()
        } else {
            allowed.join(", ")
        };
        errors.push(
            path,
            format!(
                "unknown {} type {kind:?}; allowed: {allowed}",
                section.singular()
            ),
        );
    }
    false
}

/// Parses a receiver of an implemented type.
pub fn parse_receiver(
    kind: &str,
    mut value: Value,
    path: &str,
    errors: &mut ConfigErrors,
    warnings: &mut Vec<String>,
) -> Option<ReceiverConfig> {
    match kind {
        "otlp" => {
            // `grpc:` with nothing under it enables the protocol with defaults.
            if let Some(Value::Mapping(p)) = value.get_mut("protocols") {
                for (_, v) in p.iter_mut() {
                    if v.is_null() {
                        *v = Value::Mapping(Mapping::new());
                    }
                }
            }
            let c: OtlpReceiverConfig = parse_keys(value, path, errors)?;
            c.validate(path, errors, warnings);
            Some(ReceiverConfig::Otlp(c))
        }
        _ => None,
    }
}

/// Parses a processor of an implemented type.
pub fn parse_processor(
    kind: &str,
    value: Value,
    path: &str,
    errors: &mut ConfigErrors,
    warnings: &mut Vec<String>,
) -> Option<ProcessorConfig> {
    match kind {
        "memory_limiter" => {
            let c: MemoryLimiterConfig = parse_keys(value, path, errors)?;
            c.validate(path, errors);
            // min_gc_interval_* rate-limit mi_collect (the forced-GC analogue): used, no warning.
            Some(ProcessorConfig::MemoryLimiter(c))
        }
        "batch" => {
            let c: BatchConfig = parse_keys(value, path, errors)?;
            c.validate(path, errors);
            Some(ProcessorConfig::Batch(c))
        }
        "tail_sampling" => tail_sampling::parse(value, path, errors, warnings)
            .map(|c| ProcessorConfig::TailSampling(Box::new(c))),
        "redaction" => parse_keys::<RedactionConfig>(value, path, errors)?
            .validate(path, errors)
            .map(|r| ProcessorConfig::Redaction(Box::new(r))),
        _ => None,
    }
}

/// Parses an exporter of an implemented type.
pub fn parse_exporter(
    kind: &str,
    value: Value,
    path: &str,
    errors: &mut ConfigErrors,
) -> Option<ExporterConfig> {
    match kind {
        "otlp" => {
            let c: OtlpExporterConfig = parse_keys(value, path, errors)?;
            let v = c.validate(path, errors)?;
            Some(ExporterConfig::Otlp(Box::new(v)))
        }
        "debug" => {
            let c: DebugExporterConfig = parse_keys(value, path, errors)?;
            c.validate(path, errors);
            Some(ExporterConfig::Debug(c))
        }
        "nop" => parse_keys(value, path, errors).map(ExporterConfig::Nop),
        "loadbalancing" => {
            let c: LoadBalancingConfig = parse_keys(value, path, errors)?;
            let v = c.validate(path, errors)?;
            Some(ExporterConfig::LoadBalancing(Box::new(v)))
        }
        _ => None,
    }
}

/// Parses an exporter of an implemented type that may warn (`prometheus`); other types go to
/// [`parse_exporter`].
pub fn parse_exporter_warn(
    kind: &str,
    value: Value,
    path: &str,
    errors: &mut ConfigErrors,
    warnings: &mut Vec<String>,
) -> Option<ExporterConfig> {
    match kind {
        "prometheus" => {
            let c: PrometheusExporterConfig = parse_keys(value, path, errors)?;
            c.validate(path, errors, warnings);
            Some(ExporterConfig::Prometheus(Box::new(c)))
        }
        "otlphttp" => {
            let c: OtlpHttpExporterConfig = parse_keys(value, path, errors)?;
            let v = c.validate(path, errors, warnings)?;
            Some(ExporterConfig::OtlpHttp(Box::new(v)))
        }
        _ => parse_exporter(kind, value, path, errors),
    }
}

/// Parses a connector of an implemented type.
pub fn parse_connector(
    kind: &str,
    value: Value,
    path: &str,
    errors: &mut ConfigErrors,
    warnings: &mut Vec<String>,
) -> Option<ConnectorConfig> {
    match kind {
        "spanmetrics" => {
            let c: SpanMetricsConfig = parse_keys(value, path, errors)?;
            let s = c.resolve(path, errors, warnings);
            Some(ConnectorConfig::SpanMetrics(Box::new((c, s))))
        }
        _ => None,
    }
}

/// Parses an extension of an implemented type.
pub fn parse_extension(
    kind: &str,
    value: Value,
    path: &str,
    errors: &mut ConfigErrors,
    warnings: &mut Vec<String>,
) -> Option<ExtensionConfig> {
    match kind {
        "health_check" => {
            let c: HealthCheckConfig = parse_keys(value, path, errors)?;
            c.validate(path, errors, warnings);
            Some(ExtensionConfig::HealthCheck(c))
        }
        _ => None,
    }
}
