//! Keys of the `otlp` (gRPC) exporter.

use std::time::Duration;

use serde::Deserialize;

use crate::config::common::{
    check_headers_and_client_tls, ClientTls, Compression, Headers, RetryOnFailure, SendingQueue,
};
use crate::config::duration::GoDuration;
use crate::config::error::{join, ConfigErrors};

/// `exporters.otlp` (configgrpc.ClientConfig + exporterhelper settings).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpExporterConfig {
    /// `host:port`, optionally with `http://` (plaintext) or `https://`.
    pub endpoint: String,
    /// gzip (default), zstd, snappy or none.
    pub compression: String,
    /// Per-attempt deadline (default 5s).
    pub timeout: GoDuration,
    /// Extra request headers.
    pub headers: Headers,
    /// TLS settings; absent means TLS with system roots, as the collector does.
    pub tls: ClientTls,
    /// Bounded queue in front of the senders.
    pub sending_queue: SendingQueue,
    /// Retry with exponential backoff.
    pub retry_on_failure: RetryOnFailure,
    /// Client keepalive (accepted; see docs).
    pub keepalive: Option<serde_yaml::Value>,
    /// Load-balancing policy name (accepted; one connection per core).
    pub balancer_name: Option<String>,
    /// `:authority` override.
    pub authority: Option<String>,
    /// Authenticator extension (not implemented).
    pub auth: Option<serde_yaml::Value>,
    /// Socket buffer hint (accepted).
    pub read_buffer_size: Option<u64>,
    /// Socket buffer hint (accepted).
    pub write_buffer_size: Option<u64>,
    /// Wait for the connection to be ready (accepted).
    pub wait_for_ready: bool,
}

impl Default for OtlpExporterConfig {
    fn default() -> Self {
        OtlpExporterConfig {
            endpoint: String::new(),
            compression: "gzip".to_owned(),
            timeout: GoDuration(Duration::from_secs(5)),
            headers: Headers::new(),
            tls: ClientTls::default(),
            sending_queue: SendingQueue::default(),
            retry_on_failure: RetryOnFailure::default(),
            keepalive: None,
            balancer_name: None,
            authority: None,
            auth: None,
            read_buffer_size: None,
            write_buffer_size: None,
            wait_for_ready: false,
        }
    }
}

/// Where and how to dial, after validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialTarget {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Whether the connection uses TLS.
    pub tls: bool,
}

impl OtlpExporterConfig {
    /// The client TLS to dial with when the endpoint uses TLS (`None` for plaintext).
    pub fn client_tls(&self) -> Result<Option<crate::tls::ClientSetup>, String> {
        let target = self.dial_target()?;
        if !target.tls {
            return Ok(None);
        }
        crate::tls::client_setup(&self.tls, &target.host, b"h2").map(Some)
    }

    /// Parses the endpoint: a `http://` scheme means plaintext, `https://` TLS, none follows `tls.insecure`.
    pub fn dial_target(&self) -> Result<DialTarget, String> {
        let (rest, scheme_tls) = if let Some(r) = self.endpoint.strip_prefix("http://") {
            (r, Some(false))
        } else if let Some(r) = self.endpoint.strip_prefix("https://") {
            (r, Some(true))
        } else {
            (self.endpoint.as_str(), None)
        };
        let rest = rest.trim_end_matches('/');
        if self.endpoint.is_empty() {
            return Err("is required, e.g. backend:4317".to_owned());
        }
        let (host, port) = crate::config::common::split_host_port(rest).map_err(|_| {
            format!(
                "invalid endpoint {:?}: expected host:port (gRPC needs an explicit port)",
                self.endpoint
            )
        })?;
        if host.is_empty() {
            return Err(format!(
                "invalid endpoint {:?}: the host is empty",
                self.endpoint
            ));
        }
        Ok(DialTarget {
            host,
            port,
            tls: scheme_tls.unwrap_or(!self.tls.insecure),
        })
    }

    /// Parsed compression (validated).
    pub fn compression(&self) -> Compression {
        Compression::parse(&self.compression).unwrap_or_default()
    }

    /// The collector's rules plus what tailgate implements.
    pub fn validate(&self, path: &str, errors: &mut ConfigErrors) {
        if let Err(e) = self.dial_target() {
            errors.push(join(path, "endpoint"), e);
        }
        check_headers_and_client_tls(&self.headers, &self.tls, path, errors);
        if Compression::parse(&self.compression).is_none() {
            errors.push(
                join(path, "compression"),
                format!(
                    "{:?} is not supported; allowed: gzip, zstd, snappy, none",
                    self.compression
                ),
            );
        }
        if self.timeout.0.is_zero() {
            errors.push(join(path, "timeout"), "must be greater than zero");
        }
        if self.auth.is_some() {
            errors.push(
                join(path, "auth"),
                "exporter authentication is not implemented in tailgate yet",
            );
        }
        self.sending_queue
            .validate(&join(path, "sending_queue"), errors);
        self.retry_on_failure
            .validate(&join(path, "retry_on_failure"), errors);
    }
}
