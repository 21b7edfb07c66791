//! Keys of the `otlp` receiver (collector `otlpreceiver`, v0.115 and newer).

use std::time::Duration;

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
    /// Keep the request's headers as client metadata (read by `batch`'s `metadata_keys`).
    pub include_metadata: bool,
    /// TLS server settings (not implemented yet).
    pub tls: Option<ServerTls>,
    /// Keepalive pings, idle and age limits (configgrpc `keepalive`).
    pub keepalive: Option<Keepalive>,
    /// Authenticator extension id (not implemented).
    pub auth: Option<serde_yaml::Value>,
    /// tailgate-only limits (the collector rejects this block).
    pub tailgate: ServerLimits,
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
            tailgate: ServerLimits::default(),
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
    /// Keep the request's headers as client metadata (read by `batch`'s `metadata_keys`).
    pub include_metadata: bool,
    /// Largest accepted body in bytes (collector default 20 MiB).
    pub max_request_body_size: u64,
    /// CORS settings (not implemented).
    pub cors: Option<serde_yaml::Value>,
    /// TLS server settings (not implemented yet).
    pub tls: Option<ServerTls>,
    /// Authenticator extension id (not implemented).
    pub auth: Option<serde_yaml::Value>,
    /// Longest wait for a request's headers (0: no limit).
    pub read_header_timeout: GoDuration,
    /// Longest read of a request body, from the end of its headers (0: no limit).
    pub read_timeout: GoDuration,
    /// Longest a response write may stay blocked on a client that does not read (0: no limit).
    pub write_timeout: GoDuration,
    /// Longest wait for the next request on a kept-alive connection (0: `read_timeout`).
    pub idle_timeout: GoDuration,
    /// tailgate-only limits (the collector rejects this block).
    pub tailgate: ServerLimits,
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
            read_header_timeout: GoDuration(Duration::from_secs(60)),
            read_timeout: GoDuration(Duration::from_secs(60)),
            write_timeout: GoDuration(Duration::from_secs(30)),
            idle_timeout: GoDuration(Duration::from_secs(60)),
            tailgate: ServerLimits::default(),
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
            if let Some(k) = &g.keepalive {
                k.validate(&join(&p, "keepalive"), warnings);
            }
            let largest = g.max_recv_msg_size_mib.saturating_mul(1 << 20);
            g.tailgate.validate(&join(&p, "tailgate"), largest, errors);
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
            h.tailgate
                .validate(&join(&p, "tailgate"), h.max_request_body_size, errors);
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

// === keepalive (configgrpc.KeepaliveServerConfig) ===

/// `keepalive` of the gRPC server.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Keepalive {
    /// Pings, idle and age limits the server applies.
    pub server_parameters: Option<KeepaliveServerParameters>,
    /// What the server allows of client pings (accepted, not enforced: see `validate`).
    pub enforcement_policy: Option<KeepaliveEnforcementPolicy>,
}

/// `keepalive.server_parameters` (grpc-go `keepalive.ServerParameters`); 0 or absent means
/// grpc-go's default.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeepaliveServerParameters {
    /// GOAWAY after this long without an open stream (default: never).
    pub max_connection_idle: GoDuration,
    /// GOAWAY after this long in total, ±10% jitter (default: never).
    pub max_connection_age: GoDuration,
    /// After the age GOAWAY, close after this long even with streams open (default: never).
    pub max_connection_age_grace: GoDuration,
    /// Ping the client after this long without reading from it (default 2h).
    pub time: GoDuration,
    /// Close when the ping is not answered within this long (default 20s).
    pub timeout: GoDuration,
}

/// `keepalive.enforcement_policy` (grpc-go `keepalive.EnforcementPolicy`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeepaliveEnforcementPolicy {
    /// Least time between client pings (grpc-go default 5m).
    pub min_time: GoDuration,
    /// Whether clients may ping without open streams.
    pub permit_without_stream: bool,
}

impl Keepalive {
    fn validate(&self, path: &str, warnings: &mut Vec<String>) {
        if self.enforcement_policy.is_some() {
            warnings.push(format!(
                "{path}.enforcement_policy: accepted but not enforced (h2 answers client pings itself)"
            ));
        }
    }
}

// === tailgate: limits the collector has no key for ===

/// Default `tailgate.max_connections_per_core`.
pub const DEFAULT_MAX_CONNECTIONS_PER_CORE: u32 = 4096;
/// Default `tailgate.handshake_timeout`.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `tailgate.max_header_list_size` (bytes).
pub const DEFAULT_MAX_HEADER_LIST_SIZE: u32 = 16 << 10;
/// Default `tailgate.body_timeout`: a request's body must have arrived this long after the
/// request started. OTel SDKs give an export 10 s and the collector's exporters 5 s, so a body
/// still arriving after 30 s belongs to a client that has given up; holding its bytes longer only
/// pins memory. 30 s still lets a 4 MiB message through at ~140 KB/s.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// `tailgate:` under `protocols.grpc` / `protocols.http`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerLimits {
    /// Open connections each core serves; more are closed at once and counted.
    pub max_connections_per_core: u32,
    /// TLS handshake plus (gRPC) the HTTP/2 preface must finish within this long.
    pub handshake_timeout: GoDuration,
    /// Largest request header block in bytes (h2 SETTINGS_MAX_HEADER_LIST_SIZE; HTTP/1 head size).
    pub max_header_list_size: u32,
    /// Bytes of request bodies still arriving that each core holds for this listener; a request
    /// whose next bytes would pass it is refused (retryable). 0: derived (see
    /// `receiver::limits::default_bytes_in_flight`).
    pub max_request_bytes_in_flight_per_core: u64,
    /// A request's whole body must arrive within this long of the request's start.
    pub body_timeout: GoDuration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_connections_per_core: DEFAULT_MAX_CONNECTIONS_PER_CORE,
            handshake_timeout: GoDuration(DEFAULT_HANDSHAKE_TIMEOUT),
            max_header_list_size: DEFAULT_MAX_HEADER_LIST_SIZE,
            max_request_bytes_in_flight_per_core: 0,
            body_timeout: GoDuration(DEFAULT_BODY_TIMEOUT),
        }
    }
}

impl ServerLimits {
    /// `largest` is the largest request the protocol accepts (bytes): a budget below it would
    /// refuse such a request every time.
    fn validate(&self, path: &str, largest: u64, errors: &mut ConfigErrors) {
        if self.max_connections_per_core == 0 {
            errors.push(
                join(path, "max_connections_per_core"),
                "must be greater than zero",
            );
        }
        if self.handshake_timeout.0.is_zero() {
            errors.push(join(path, "handshake_timeout"), "must be greater than zero");
        }
        if self.max_header_list_size < 1024 {
            errors.push(
                join(path, "max_header_list_size"),
                "must be at least 1024 (bytes)",
            );
        }
        let budget = self.max_request_bytes_in_flight_per_core;
        if budget != 0 && budget < largest {
            errors.push(
                join(path, "max_request_bytes_in_flight_per_core"),
                format!(
                    "{budget} is below the largest request this protocol accepts ({largest} bytes), \
                     which would then always be refused; raise it or leave it out (0: derived)"
                ),
            );
        }
        if self.body_timeout.0.is_zero() {
            errors.push(join(path, "body_timeout"), "must be greater than zero");
        }
    }
}
