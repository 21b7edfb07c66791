//! Component and pipeline identifiers: `type` or `type/name`, as the collector spells them.

use std::fmt;

/// A component instance id such as `otlp` or `otlp/backend`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ComponentId {
    /// The component type (`otlp`, `batch`, ...), which selects the implementation.
    pub kind: String,
    /// The optional instance name after the slash.
    pub name: Option<String>,
}

impl ComponentId {
    /// Parses `type` or `type/name`; the type must be non-empty and made of `[a-zA-Z0-9_]`, the name
    /// must be non-empty (the collector's rules).
    pub fn parse(text: &str) -> Result<ComponentId, String> {
        let (kind, name) = match text.split_once('/') {
            Some((k, n)) => (k, Some(n)),
            None => (text, None),
        };
        if kind.is_empty() || !kind.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!(
                "invalid component id {text:?}: the type before '/' must be non-empty letters, digits or '_'"
            ));
        }
        if let Some(n) = name {
            if n.trim().is_empty() {
                return Err(format!(
                    "invalid component id {text:?}: the name after '/' must not be empty"
                ));
            }
        }
        Ok(ComponentId {
            kind: kind.to_owned(),
            name: name.map(str::to_owned),
        })
    }
}

impl fmt::Display for ComponentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(n) => write!(f, "{}/{}", self.kind, n),
            None => f.write_str(&self.kind),
        }
    }
}

/// The telemetry signal a pipeline carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Signal {
    /// Spans: the signal tailgate exists for.
    Traces,
    /// Metrics (only connector output such as spanmetrics is planned).
    Metrics,
    /// Logs (not planned).
    Logs,
}

impl Signal {
    /// What the collector's self-metrics call one item of this signal, as in
    /// `otelcol_exporter_sent_{items}_total`.
    pub fn items(self) -> &'static str {
        match self {
            Signal::Traces => "spans",
            Signal::Metrics => "metric_points",
            Signal::Logs => "log_records",
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Signal::Traces => "traces",
            Signal::Metrics => "metrics",
            Signal::Logs => "logs",
        })
    }
}

/// A pipeline id such as `traces` or `traces/sampling`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PipelineId {
    /// The signal, taken from the part before the slash.
    pub signal: Signal,
    /// The optional name after the slash.
    pub name: Option<String>,
}

impl PipelineId {
    /// Parses `traces`, `metrics`, `logs`, optionally followed by `/name`.
    pub fn parse(text: &str) -> Result<PipelineId, String> {
        let id = ComponentId::parse(text)?;
        let signal = match id.kind.as_str() {
            "traces" => Signal::Traces,
            "metrics" => Signal::Metrics,
            "logs" => Signal::Logs,
            other => {
                return Err(format!(
                    "unknown pipeline signal {other:?}; allowed: traces, metrics, logs (optionally followed by /name)"
                ))
            }
        };
        Ok(PipelineId {
            signal,
            name: id.name,
        })
    }
}

impl fmt::Display for PipelineId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(n) => write!(f, "{}/{}", self.signal, n),
            None => write!(f, "{}", self.signal),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ids() {
        let id = ComponentId::parse("otlp/backend").expect("valid");
        assert_eq!(id.kind, "otlp");
        assert_eq!(id.name.as_deref(), Some("backend"));
        assert_eq!(id.to_string(), "otlp/backend");
        assert!(ComponentId::parse("otlp/").is_err());
        assert!(ComponentId::parse("/x").is_err());
        let p = PipelineId::parse("traces/sampling").expect("valid");
        assert_eq!(p.signal, Signal::Traces);
        assert!(PipelineId::parse("spans").is_err());
    }
}
