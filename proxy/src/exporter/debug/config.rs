//! Keys of the `debug` exporter (and the `nop` exporter, which has none).

use serde::Deserialize;

use crate::config::error::{join, ConfigErrors};

/// `exporters.debug`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DebugExporterConfig {
    /// basic (counts), normal (one line per span) or detailed.
    pub verbosity: String,
    /// Log the first N batches each second.
    pub sampling_initial: u32,
    /// Then every Mth batch.
    pub sampling_thereafter: u32,
    /// Log through tailgate's logger (the only option in tailgate).
    pub use_internal_logger: bool,
}

impl Default for DebugExporterConfig {
    fn default() -> Self {
        DebugExporterConfig {
            verbosity: "basic".to_owned(),
            sampling_initial: 2,
            sampling_thereafter: 1,
            use_internal_logger: true,
        }
    }
}

impl DebugExporterConfig {
    /// Checks the verbosity level.
    pub fn validate(&self, path: &str, errors: &mut ConfigErrors) {
        if !matches!(self.verbosity.as_str(), "basic" | "normal" | "detailed") {
            errors.push(
                join(path, "verbosity"),
                format!(
                    "{:?} is not a verbosity; allowed: basic, normal, detailed",
                    self.verbosity
                ),
            );
        }
        if self.sampling_thereafter == 0 {
            errors.push(join(path, "sampling_thereafter"), "must be at least 1");
        }
    }
}

/// `exporters.nop`: no keys.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NopExporterConfig {}
