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
    /// Liveness path (default `/`): healthy from start until exit, drain included.
    pub path: String,
    /// Custom bodies (both health paths), instead of the JSON status.
    pub response_body: Option<ResponseBody>,
    /// Deprecated pipeline check: accepted and ignored with a warning.
    pub check_collector_pipeline: Option<serde_yaml::Value>,
    /// TLS (not implemented).
    pub tls: Option<ServerTls>,
    /// tailgate-only keys (the collector rejects this block).
    pub tailgate: HealthCheckTailgate,
}

/// `health_check.tailgate`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthCheckTailgate {
    /// Readiness path (default `/ready`): healthy while running and not draining. With the
    /// collector's default `path: /`, the collector answers this path too (its handler serves the
    /// whole `/` subtree), so one manifest probes either binary.
    pub readiness_path: String,
}

impl Default for HealthCheckTailgate {
    fn default() -> Self {
        HealthCheckTailgate {
            readiness_path: "/ready".to_owned(),
        }
    }
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
            tailgate: HealthCheckTailgate::default(),
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
        let readiness = &self.tailgate.readiness_path;
        if !readiness.starts_with('/') {
            errors.push(join(path, "tailgate.readiness_path"), "must start with '/'");
        } else if *readiness == self.path {
            errors.push(
                join(path, "tailgate.readiness_path"),
                format!(
                    "{readiness:?} is also the liveness `path`; set a different readiness path"
                ),
            );
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
