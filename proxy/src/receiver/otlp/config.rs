//! Keys of the `otlp` receiver (collector `otlpreceiver`, v0.115 and newer).

use serde::Deserialize;

use crate::config::common::{check_listen_endpoint, ServerTls};
use crate::config::duration::GoDuration;
use crate::config::error::{join, ConfigErrors};

/// Default gRPC endpoint: v0.115's `localhostgate` makes it `localhost:4317`.
pub const DEFAULT_GRPC_ENDPOINT: &str = "localhost:4317";
/// Default HTTP endpoint: `localhost:4318`.
pub const DEFAULT_HTTP_ENDPOINT: &str = "localhost:4318";

/// `receivers.otlp`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpReceiverConfig {
    /// Enabled protocols; a protocol is enabled by being present (even with no keys).
    #[serde(default)]
    pub protocols: Protocols,
}

/// `receivers.otlp.protocols`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Protocols {
    /// OTLP/gRPC server.
    #[serde(default)]
    pub grpc: Option<GrpcServerConfig>,
    /// OTLP/HTTP server.
    #[serde(default)]
    pub http: Option<HttpServerConfig>,
}

/// `receivers.otlp.protocols.grpc` (configgrpc.ServerConfig).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrpcServerConfig {
    /// Listen address `host:port`.
    pub endpoint: String,
    /// Only `tcp` is supported.
    pub transport: String,
    /// Largest accepted message after decompression, MiB (grpc-go default 4).
    pub max_recv_msg_size_mib: u64,
    /// HTTP/2 streams allowed per connection.
    pub max_concurrent_streams: u32,
    /// Socket read buffer hint (accepted; glommio sizes its own buffers).
    pub read_buffer_size: Option<u64>,
    /// Socket write buffer hint (accepted; see above).
    pub write_buffer_size: Option<u64>,
    /// Copy request metadata into the context: ignored with a warning (nothing downstream reads it).
    pub include_metadata: bool,
    /// TLS server settings (not implemented yet).
    pub tls: Option<ServerTls>,
    /// Keepalive settings (accepted; see docs/proxy.md).
    pub keepalive: Option<serde_yaml::Value>,
    /// Authenticator extension id (not implemented).
    pub auth: Option<serde_yaml::Value>,
}

impl Default for GrpcServerConfig {
    fn default() -> Self {
        GrpcServerConfig {
            endpoint: DEFAULT_GRPC_ENDPOINT.to_owned(),
            transport: "tcp".to_owned(),
            max_recv_msg_size_mib: 4,
            max_concurrent_streams: 0,
            read_buffer_size: None,
            write_buffer_size: None,
            include_metadata: false,
            tls: None,
            keepalive: None,
            auth: None,
        }
    }
}

/// `receivers.otlp.protocols.http` (confighttp.ServerConfig + URL paths).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpServerConfig {
    /// Listen address `host:port`.
    pub endpoint: String,
    /// Path for traces (default `/v1/traces`).
    pub traces_url_path: String,
    /// Path for metrics (refused: traces only).
    pub metrics_url_path: String,
    /// Path for logs (refused: traces only).
    pub logs_url_path: String,
    /// Copy request metadata into the context: ignored with a warning.
    pub include_metadata: bool,
    /// Largest accepted body in bytes (collector default 20 MiB).
    pub max_request_body_size: u64,
    /// CORS settings (not implemented).
    pub cors: Option<serde_yaml::Value>,
    /// TLS server settings (not implemented yet).
    pub tls: Option<ServerTls>,
    /// Authenticator extension id (not implemented).
    pub auth: Option<serde_yaml::Value>,
    /// Header-read timeout.
    pub read_header_timeout: Option<GoDuration>,
    /// Idle keep-alive timeout.
    pub idle_timeout: Option<GoDuration>,
}

impl Default for HttpServerConfig {
    fn default() -> Self {
        HttpServerConfig {
            endpoint: DEFAULT_HTTP_ENDPOINT.to_owned(),
            traces_url_path: "/v1/traces".to_owned(),
            metrics_url_path: "/v1/metrics".to_owned(),
            logs_url_path: "/v1/logs".to_owned(),
            include_metadata: false,
            max_request_body_size: 20 * 1024 * 1024,
            cors: None,
            tls: None,
            auth: None,
            read_header_timeout: None,
            idle_timeout: None,
        }
    }
}

impl OtlpReceiverConfig {
    /// Checks the collector's rules and what tailgate implements so far.
    pub fn validate(&self, path: &str, errors: &mut ConfigErrors, warnings: &mut Vec<String>) {
        let protocols = join(path, "protocols");
        if self.protocols.grpc.is_none() && self.protocols.http.is_none() {
            errors.push(
                protocols.clone(),
                "must specify at least one protocol when using the OTLP receiver; allowed: grpc, http",
            );
        }
        if let Some(g) = &self.protocols.grpc {
            let p = join(&protocols, "grpc");
            check_listen_endpoint(&g.endpoint, &join(&p, "endpoint"), errors);
            if g.transport != "tcp" {
                errors.push(
                    join(&p, "transport"),
                    format!("{:?} is not supported; allowed: tcp", g.transport),
                );
            }
            if g.max_recv_msg_size_mib == 0 {
                errors.push(
                    join(&p, "max_recv_msg_size_mib"),
                    "must be greater than zero",
                );
            }
            if g.include_metadata {
                warnings.push(format!(
                    "{p}.include_metadata: ignored (nothing in tailgate reads request metadata)"
                ));
            }
            if g.keepalive.is_some() {
                warnings.push(format!("{p}.keepalive: accepted but not applied yet"));
            }
            if g.tls.as_ref().is_some_and(|t| t.reload_interval.is_some()) {
                warnings.push(format!(
                    "{p}.tls.reload_interval: certificates are read once at start-up"
                ));
            }
            not_yet(
                &g.auth.as_ref().map(|_| ()),
                &join(&p, "auth"),
                "receiver authentication",
                errors,
            );
        }
        if let Some(h) = &self.protocols.http {
            let p = join(&protocols, "http");
            check_listen_endpoint(&h.endpoint, &join(&p, "endpoint"), errors);
            for (key, value) in [
                ("traces_url_path", &h.traces_url_path),
                ("metrics_url_path", &h.metrics_url_path),
                ("logs_url_path", &h.logs_url_path),
            ] {
                if !value.starts_with('/') {
                    errors.push(join(&p, key), format!("{value:?} must start with '/'"));
                }
            }
            if h.include_metadata {
                warnings.push(format!(
                    "{p}.include_metadata: ignored (nothing in tailgate reads request metadata)"
                ));
            }
            not_yet(
                &h.auth.as_ref().map(|_| ()),
                &join(&p, "auth"),
                "receiver authentication",
                errors,
            );
            not_yet(
                &h.cors.as_ref().map(|_| ()),
                &join(&p, "cors"),
                "CORS",
                errors,
            );
        }
    }
}

fn not_yet(present: &Option<()>, path: &str, what: &str, errors: &mut ConfigErrors) {
    if present.is_some() {
        errors.push(
            path,
            format!("{what} is not implemented in tailgate yet; remove this block"),
        );
    }
}
