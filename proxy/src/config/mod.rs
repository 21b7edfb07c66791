//! Collector-style YAML configuration, in three stages.
//!
//! 1. [`source`]: files, `--set` flags and `${env:VAR}` references become one YAML document.
//! 2. [`registry`] + each component's `config.rs`: serde structs with `deny_unknown_fields` per
//!    component type, then `validate()` methods that record *every* problem with its key path.
//! 3. [`Config`]: plain resolved values the service (`crate::service`) builds the pipelines from.
//!
//! Problems are attributed to the file that last set the offending key, so a merged config still
//! points the user at the right file.

pub mod common;
pub mod duration;
pub mod error;
pub mod id;
pub mod keys;
pub mod registry;
pub mod service;
pub mod source;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde_yaml::Value;

pub use error::{ConfigErrors, Problem};
pub use id::{ComponentId, PipelineId, Signal};
pub use registry::{
    ConnectorConfig, ExporterConfig, ExtensionConfig, ProcessorConfig, ReceiverConfig, Section,
};
pub use source::SourceText;

use error::join;
use registry::check_kind;
use service::{PipelineConfig, ServiceConfig};
use source::{key_text, Origins};

/// A validated configuration: what the runtime builds.
#[derive(Debug, Clone)]
pub struct Config {
    /// Receivers by id.
    pub receivers: BTreeMap<ComponentId, ReceiverConfig>,
    /// Processors by id.
    pub processors: BTreeMap<ComponentId, ProcessorConfig>,
    /// Exporters by id.
    pub exporters: BTreeMap<ComponentId, ExporterConfig>,
    /// Connectors by id.
    pub connectors: BTreeMap<ComponentId, ConnectorConfig>,
    /// Extensions by id (only those listed in `service.extensions` are started).
    pub extensions: BTreeMap<ComponentId, ExtensionConfig>,
    /// Extensions to start, in order.
    pub service_extensions: Vec<ComponentId>,
    /// Pipelines in config order.
    pub pipelines: Vec<Pipeline>,
    /// Self-metrics listen address; `None` when `level: none`.
    pub metrics_address: Option<String>,
    /// Log level from `service.telemetry.logs.level`.
    pub log_level: String,
    /// Shutdown budgets (`service.tailgate`).
    pub shutdown: service::ServiceTailgate,
    /// Non-fatal notes to log at start (ignored keys, unset variables).
    pub warnings: Vec<String>,
}

/// One pipeline with its references resolved.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// `traces`, `traces/sampling`, ...
    pub id: PipelineId,
    /// Receivers (or connectors) feeding it.
    pub receivers: Vec<ComponentId>,
    /// Processors in order.
    pub processors: Vec<ComponentId>,
    /// Exporters (or connectors) it feeds.
    pub exporters: Vec<ComponentId>,
}

/// Loads, merges and validates config sources. `env` looks up environment variables (tests pass a
/// closure instead of touching the process environment).
pub fn load(
    sources: &[SourceText],
    sets: &[String],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigErrors> {
    let merged = source::merge_sources(sources, sets, env)?;
    let mut config = from_value(merged.root, &merged.origins)?;
    let mut warnings = merged.warnings;
    warnings.append(&mut config.warnings);
    config.warnings = warnings;
    Ok(config)
}

/// Validates a merged document; problems are attributed with `origins`.
pub fn from_value(root: Value, origins: &Origins) -> Result<Config, ConfigErrors> {
    let mut errors = ConfigErrors::default();
    let config = build(root, &mut errors);
    for p in &mut errors.problems {
        if p.file.is_none() {
            p.file = Some(origins.file_for(&p.path).unwrap_or("config").to_owned());
        }
    }
    errors.into_result(config)
}

const TOP_LEVEL: &[&str] = &[
    "receivers",
    "processors",
    "exporters",
    "connectors",
    "extensions",
    "service",
];

fn build(root: Value, errors: &mut ConfigErrors) -> Config {
    let mut warnings = Vec::new();
    let mut top = match root {
        Value::Mapping(m) => m,
        Value::Null => Default::default(),
        _ => {
            errors.push("", "the document must be a mapping");
            Default::default()
        }
    };
    for (k, _) in top.iter() {
        let key = key_text(k);
        if !TOP_LEVEL.contains(&key.as_str()) {
            errors.push(
                key.clone(),
                format!("unknown top-level key; allowed: {}", TOP_LEVEL.join(", ")),
            );
        }
    }
    let mut section = |s: Section| -> Vec<(ComponentId, Value, String)> {
        let key = s.key();
        match top.remove(key) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Mapping(m)) => m
                .into_iter()
                .filter_map(|(k, v)| {
                    let name = key_text(&k);
                    let path = join(key, &name);
                    match ComponentId::parse(&name) {
                        Ok(id) => Some((id, v, path)),
                        Err(e) => {
                            errors.push(path, e);
                            None
                        }
                    }
                })
                .collect(),
            Some(_) => {
                errors.push(key, "must be a mapping of component ids to their settings");
                Vec::new()
            }
        }
    };
    let raw_receivers = section(Section::Receivers);
    let raw_processors = section(Section::Processors);
    let raw_exporters = section(Section::Exporters);
    let raw_connectors = section(Section::Connectors);
    let raw_extensions = section(Section::Extensions);
    let raw_service = top.remove("service");

    let mut known = Known::default();
    let mut receivers = BTreeMap::new();
    for (id, v, path) in raw_receivers {
        known.receivers.push(id.clone());
        if check_kind(Section::Receivers, &id.kind, &path, errors) {
            if let Some(c) = registry::parse_receiver(&id.kind, v, &path, errors, &mut warnings) {
                receivers.insert(id, c);
            }
        }
    }
    let mut processors = BTreeMap::new();
    for (id, v, path) in raw_processors {
        known.processors.push(id.clone());
        if check_kind(Section::Processors, &id.kind, &path, errors) {
            if let Some(c) = registry::parse_processor(&id.kind, v, &path, errors, &mut warnings) {
                processors.insert(id, c);
            }
        }
    }
    one_membership(&processors, errors);
    let mut exporters = BTreeMap::new();
    for (id, v, path) in raw_exporters {
        known.exporters.push(id.clone());
        if check_kind(Section::Exporters, &id.kind, &path, errors) {
            if let Some(c) =
                registry::parse_exporter_warn(&id.kind, v, &path, errors, &mut warnings)
            {
                exporters.insert(id, c);
            }
        }
    }
    let mut connectors = BTreeMap::new();
    for (id, v, path) in raw_connectors {
        known.connectors.push(id.clone());
        if check_kind(Section::Connectors, &id.kind, &path, errors) {
            if let Some(c) = registry::parse_connector(&id.kind, v, &path, errors, &mut warnings) {
                connectors.insert(id, c);
            }
        }
    }
    let mut extensions = BTreeMap::new();
    for (id, v, path) in raw_extensions {
        known.extensions.push(id.clone());
        if check_kind(Section::Extensions, &id.kind, &path, errors) {
            if let Some(c) = registry::parse_extension(&id.kind, v, &path, errors, &mut warnings) {
                extensions.insert(id, c);
            }
        }
    }

    let service: ServiceConfig = match raw_service {
        None | Some(Value::Null) => {
            errors.push("service", "is required: it lists the pipelines to run");
            ServiceConfig::default()
        }
        Some(v) => registry::parse_keys(v, "service", errors).unwrap_or_default(),
    };
    let service_extensions = resolve_extensions(&service, &known, errors);
    let pipelines = resolve_pipelines(&service, &known, &receivers, &exporters, errors);
    service::check_signal_flow(&pipelines, &exporters, &connectors, errors);
    crate::processor::redaction::config::check_traces_only(&processors, &pipelines, errors);
    crate::connector::spanmetrics::config::check_kept_by(
        &connectors,
        &processors,
        &pipelines,
        errors,
    );
    let metrics_address = service
        .telemetry
        .metrics_address("service.telemetry", errors);
    let log_level = service.telemetry.log_level("service.telemetry", errors);

    Config {
        receivers,
        processors,
        exporters,
        connectors,
        extensions,
        service_extensions,
        pipelines,
        metrics_address,
        log_level,
        shutdown: service.tailgate,
        warnings,
    }
}

/// At most one `tail_sampling` per process may set `tailgate.membership`: spans forwarded between
/// gateways carry no instance name, so a second instance could not tell its peers' spans apart.
fn one_membership(processors: &BTreeMap<ComponentId, ProcessorConfig>, errors: &mut ConfigErrors) {
    let mut with = processors.iter().filter_map(|(id, p)| match p {
        ProcessorConfig::TailSampling(c) if c.membership.is_some() => Some(id),
        _ => None,
    });
    let Some(first) = with.next() else {
        return;
    };
    for id in with {
        errors.push(
            format!("processors.{id}.tailgate.membership"),
            format!(
                "only one tail_sampling per process may set membership (processors.{first} does): \
                 forwarded spans do not name the instance they are for"
            ),
        );
    }
}

/// Every id defined per section, implemented or not, so references can be checked.
#[derive(Default)]
struct Known {
    receivers: Vec<ComponentId>,
    processors: Vec<ComponentId>,
    exporters: Vec<ComponentId>,
    connectors: Vec<ComponentId>,
    extensions: Vec<ComponentId>,
}

fn list(ids: &[ComponentId]) -> String {
    if ids.is_empty() {
        "none".to_owned()
    } else {
        ids.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn resolve_extensions(
    service: &ServiceConfig,
    known: &Known,
    errors: &mut ConfigErrors,
) -> Vec<ComponentId> {
    let mut out = Vec::new();
    for (i, name) in service.extensions.iter().enumerate() {
        let path = format!("service.extensions[{i}]");
        match ComponentId::parse(name) {
            Ok(id) if known.extensions.contains(&id) => out.push(id),
            Ok(id) => errors.push(
                path,
                format!("references extension \"{id}\" which is not configured; configured extensions: {}", list(&known.extensions)),
            ),
            Err(e) => errors.push(path, e),
        }
    }
    out
}

fn resolve_pipelines(
    service: &ServiceConfig,
    known: &Known,
    receivers: &BTreeMap<ComponentId, ReceiverConfig>,
    exporters: &BTreeMap<ComponentId, ExporterConfig>,
    errors: &mut ConfigErrors,
) -> Vec<Pipeline> {
    if service.pipelines.is_empty() {
        errors.push("service.pipelines", "at least one pipeline is required, e.g. traces: {receivers: [otlp], exporters: [otlp]}");
    }
    let mut out = Vec::new();
    // Connector id → (used as exporter, used as receiver), for the collector's pairing rule.
    let mut connector_use: BTreeMap<ComponentId, (bool, bool)> = BTreeMap::new();
    for (k, v) in &service.pipelines {
        let name = key_text(k);
        let path = join("service.pipelines", &name);
        let id = match PipelineId::parse(&name) {
            Ok(id) => id,
            Err(e) => {
                errors.push(path, e);
                continue;
            }
        };
        let Some(raw): Option<PipelineConfig> = registry::parse_keys(v.clone(), &path, errors)
        else {
            continue;
        };
        let recv = resolve_refs(
            &raw.receivers,
            &path,
            "receivers",
            &[&known.receivers, &known.connectors],
            errors,
        );
        let procs = resolve_refs(
            &raw.processors,
            &path,
            "processors",
            // Connectors pass here so the check below can say what they are.
            &[&known.processors, &known.connectors],
            errors,
        );
        let exps = resolve_refs(
            &raw.exporters,
            &path,
            "exporters",
            &[&known.exporters, &known.connectors],
            errors,
        );
        if raw.receivers.is_empty() {
            errors.push(join(&path, "receivers"), "must have at least one receiver");
        }
        if raw.exporters.is_empty() {
            errors.push(join(&path, "exporters"), "must have at least one exporter");
        }
        for (i, p) in procs.iter().enumerate() {
            if known.connectors.contains(p) && !known.processors.contains(p) {
                errors.push(format!("{path}.processors[{i}]"), format!("\"{p}\" is a connector: a connector goes in the exporters of one pipeline and the receivers of another, not in processors"));
            }
        }
        for r in &recv {
            if known.connectors.contains(r) && !known.receivers.contains(r) {
                connector_use.entry(r.clone()).or_default().1 = true;
            }
        }
        for e in &exps {
            if known.connectors.contains(e) && !known.exporters.contains(e) {
                connector_use.entry(e.clone()).or_default().0 = true;
            }
        }
        if id.signal != Signal::Traces {
            // Implemented components only forward traces; planned ones already failed above.
            for r in recv.iter().filter(|r| receivers.contains_key(*r)) {
                errors.push(join(&path, "receivers"), format!("receiver \"{r}\" only carries traces in tailgate; {} pipelines are not implemented", id.signal));
            }
            // Metrics exporters (prometheus) are checked by service::check_signal_flow.
            let traces_only = |e: &&ComponentId| {
                exporters
                    .get(*e)
                    .is_some_and(|x| !matches!(x, ExporterConfig::Prometheus(_)))
            };
            for e in exps.iter().filter(traces_only) {
                errors.push(join(&path, "exporters"), format!("exporter \"{e}\" only carries traces in tailgate; {} pipelines are not implemented", id.signal));
            }
        }
        out.push(Pipeline {
            id,
            receivers: recv,
            processors: procs,
            exporters: exps,
        });
    }
    for (c, (as_exporter, as_receiver)) in connector_use {
        if as_exporter && !as_receiver {
            errors.push("service.pipelines", format!("connector \"{c}\" is used as an exporter but not as a receiver of any pipeline"));
        }
        if as_receiver && !as_exporter {
            errors.push("service.pipelines", format!("connector \"{c}\" is used as a receiver but not as an exporter of any pipeline"));
        }
    }
    out
}

fn resolve_refs(
    names: &[String],
    pipeline_path: &str,
    key: &str,
    pools: &[&Vec<ComponentId>],
    errors: &mut ConfigErrors,
) -> Vec<ComponentId> {
    let mut out: Vec<ComponentId> = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let path = format!("{pipeline_path}.{key}[{i}]");
        let id = match ComponentId::parse(name) {
            Ok(id) => id,
            Err(e) => {
                errors.push(path, e);
                continue;
            }
        };
        if out.contains(&id) {
            errors.push(path, format!("references \"{id}\" more than once"));
            continue;
        }
        if !pools.iter().any(|p| p.contains(&id)) {
            let configured: Vec<ComponentId> =
                pools.iter().flat_map(|p| p.iter().cloned()).collect();
            errors.push(
                path,
                format!(
                    "references \"{id}\" which is not configured; configured {key}: {}",
                    list(&configured)
                ),
            );
            continue;
        }
        out.push(id);
    }
    out
}
