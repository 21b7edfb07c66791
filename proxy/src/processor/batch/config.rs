//! Keys of the `batch` processor.

use std::time::Duration;

use serde::Deserialize;

use crate::config::duration::GoDuration;
use crate::config::error::{join, ConfigErrors};

/// `processors.batch`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    /// Flush a partial batch after this long (default 200ms).
    pub timeout: GoDuration,
    /// Flush when this many spans are buffered (default 8192).
    pub send_batch_size: u32,
    /// Split batches larger than this (0: no limit).
    pub send_batch_max_size: u32,
    /// Client metadata keys (case-insensitive) whose values keep batches apart.
    pub metadata_keys: Vec<String>,
    /// Limit on distinct metadata combinations batched at once (0: none).
    pub metadata_cardinality_limit: u32,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            timeout: GoDuration(Duration::from_millis(200)),
            send_batch_size: 8192,
            send_batch_max_size: 0,
            metadata_keys: Vec::new(),
            metadata_cardinality_limit: 1000,
        }
    }
}

impl BatchConfig {
    /// The collector's rules plus what tailgate implements.
    pub fn validate(&self, path: &str, errors: &mut ConfigErrors) {
        if self.send_batch_max_size > 0 && self.send_batch_max_size < self.send_batch_size {
            errors.push(
                join(path, "send_batch_max_size"),
                format!(
                    "must be greater or equal to send_batch_size ({}) or 0",
                    self.send_batch_size
                ),
            );
        }
        let mut seen = std::collections::BTreeSet::new();
        for k in &self.metadata_keys {
            if !seen.insert(k.to_ascii_lowercase()) {
                errors.push(
                    join(path, "metadata_keys"),
                    format!("duplicate entry in metadata_keys: {k:?} (case-insensitive)"),
                );
            }
        }
    }
}
