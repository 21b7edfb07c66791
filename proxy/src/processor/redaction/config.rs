//! Keys of the `redaction` processor, as contrib v0.115.0 reads them, and their validation.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;
use serde_yaml::Value;

use super::rules::{Rules, Summary};
use crate::config::error::{join, ConfigErrors};
use crate::config::{ComponentId, Pipeline, ProcessorConfig, Signal};

/// `processors.redaction`.
///
/// Contrib v0.115.0's `Config` has exactly `allow_all_keys`, `allowed_keys`, `ignored_keys`,
/// `blocked_values` and `summary`; the other keys below came later and are parsed only so that
/// validation can name them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedactionConfig {
    /// Keep every key (the allow list is not applied); blocked values are still masked.
    pub allow_all_keys: bool,
    /// Keys kept; every other key is removed (fails closed: empty removes all).
    pub allowed_keys: Vec<String>,
    /// Keys neither removed nor masked.
    pub ignored_keys: Vec<String>,
    /// Regular expressions (RE2 syntax) whose matches in string values become `****`.
    pub blocked_values: Vec<String>,
    /// `debug`, `info` or `silent` (absent: silent, as contrib's default config).
    pub summary: Option<String>,
    /// Contrib after v0.115.0.
    pub allowed_values: Option<Value>,
    /// Contrib after v0.115.0.
    pub blocked_key_patterns: Option<Value>,
    /// Contrib after v0.115.0.
    pub hash_function: Option<Value>,
    /// Contrib after v0.115.0 (goes with `hash_function`).
    pub hmac_key: Option<Value>,
    /// Contrib after v0.115.0.
    pub redact_all_types: Option<Value>,
    /// Contrib after v0.115.0.
    pub url_sanitization: Option<Value>,
    /// Contrib after v0.115.0.
    pub ignored_key_patterns: Option<Value>,
    /// Contrib after v0.115.0.
    pub db_sanitizer: Option<Value>,
}

/// A validated `redaction`: its keys and the rules compiled from them once.
#[derive(Debug, Clone)]
pub struct Redaction {
    /// The keys as given.
    pub config: RedactionConfig,
    /// The compiled rules, shared by every core.
    pub rules: Arc<Rules>,
}

impl RedactionConfig {
    /// Checks the keys and compiles the rules; every problem is recorded under its key path.
    pub fn validate(self, path: &str, errors: &mut ConfigErrors) -> Option<Redaction> {
        let before = errors.problems.len();
        let newer = [
            ("allowed_values", self.allowed_values.is_some()),
            ("blocked_key_patterns", self.blocked_key_patterns.is_some()),
            ("hash_function", self.hash_function.is_some()),
            ("hmac_key", self.hmac_key.is_some()),
            ("redact_all_types", self.redact_all_types.is_some()),
            ("url_sanitization", self.url_sanitization.is_some()),
            ("ignored_key_patterns", self.ignored_key_patterns.is_some()),
            ("db_sanitizer", self.db_sanitizer.is_some()),
        ];
        for (key, _) in newer.iter().filter(|(_, set)| *set) {
            errors.push(
                join(path, key),
                "not supported by tailgate yet (tailgate implements contrib v0.115.0's redaction, which has no such key)",
            );
        }
        let summary = match self.summary.as_deref() {
            None | Some("silent") => Summary::Silent,
            Some("info") => Summary::Info,
            Some("debug") => Summary::Debug,
            Some(other) => {
                errors.push(
                    join(path, "summary"),
                    format!("\"{other}\" is not one of debug, info, silent"),
                );
                Summary::Silent
            }
        };
        let mut blocked = Vec::with_capacity(self.blocked_values.len());
        for (i, pattern) in self.blocked_values.iter().enumerate() {
            match regex::bytes::Regex::new(pattern) {
                Ok(re) => blocked.push(re),
                Err(e) => errors.push(
                    format!("{path}.blocked_values[{i}]"),
                    format!("invalid regular expression: {e}"),
                ),
            }
        }
        if errors.problems.len() > before {
            return None;
        }
        let rules = Rules::new(
            self.allow_all_keys,
            &self.allowed_keys,
            &self.ignored_keys,
            blocked,
            summary,
        );
        Some(Redaction {
            config: self,
            rules: Arc::new(rules),
        })
    }
}

/// Refuses a `redaction` in a pipeline of another signal, by name: tailgate's redaction
/// processes traces only (contrib's also takes logs and metrics).
pub fn check_traces_only(
    processors: &BTreeMap<ComponentId, ProcessorConfig>,
    pipelines: &[Pipeline],
    errors: &mut ConfigErrors,
) {
    for p in pipelines.iter().filter(|p| p.id.signal != Signal::Traces) {
        for (i, pid) in p.processors.iter().enumerate() {
            if matches!(processors.get(pid), Some(ProcessorConfig::Redaction(_))) {
                errors.push(
                    format!("service.pipelines.{}.processors[{i}]", p.id),
                    format!(
                        "\"{pid}\": redaction processes traces only in tailgate; not supported by tailgate yet in {} pipelines",
                        p.id.signal
                    ),
                );
            }
        }
    }
}
