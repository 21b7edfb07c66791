//! Keys of the `health_check` extension.

use serde::Deserialize;

use crate::config::common::{check_listen_endpoint, ServerTls};
use crate::config::error::{join, ConfigErrors};

/// `extensions.health_check`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthCheckConfig {
    /// Listen address (default `localhost:13133`).
    pub endpoint: String,
    /// Path answered (default `/`).
    pub path: String,
    /// Custom bodies.
    pub response_body: Option<ResponseBody>,
    /// Deprecated pipeline check: accepted and ignored with a warning.
    pub check_collector_pipeline: Option<serde_yaml::Value>,
    /// TLS (not implemented).
    pub tls: Option<ServerTls>,
}

/// `health_check.response_body`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResponseBody {
    /// Body while healthy.
    pub healthy: String,
    /// Body while not healthy.
    pub unhealthy: String,
}

impl Default for HealthCheckConfig {
    fn default() -> Self {
        HealthCheckConfig {
            endpoint: "localhost:13133".to_owned(),
            path: "/".to_owned(),
            response_body: None,
            check_collector_pipeline: None,
            tls: None,
        }
    }
}

impl HealthCheckConfig {
    /// Checks the endpoint and path.
    pub fn validate(&self, path: &str, errors: &mut ConfigErrors, warnings: &mut Vec<String>) {
        check_listen_endpoint(&self.endpoint, &join(path, "endpoint"), errors);
        if !self.path.starts_with('/') {
            errors.push(join(path, "path"), "must start with '/'");
        }
        if self.tls.is_some() {
            errors.push(
                join(path, "tls"),
                "TLS on health_check is not implemented in tailgate yet",
            );
        }
        if self.check_collector_pipeline.is_some() {
            warnings.push(format!(
                "{path}.check_collector_pipeline: deprecated in the collector; ignored"
            ));
        }
    }
}
