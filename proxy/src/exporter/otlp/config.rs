//! Keys of the `otlp` (gRPC) exporter.

use std::time::Duration;

use serde::Deserialize;

use crate::config::common::{
    check_headers_and_client_tls, ClientTls, Compression, Headers, RetryOnFailure, SendingQueue,
};
use crate::config::duration::GoDuration;
use crate::config::error::{join, ConfigErrors};
use crate::exporter::dial::DEFAULT_USER_TIMEOUT;

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
    /// h2 PING keepalive; absent (the collector's default for this exporter) sends no PINGs.
    pub keepalive: Option<KeepaliveClient>,
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

/// grpc-go's keepalive `timeout` when the key is 0 or absent.
pub const DEFAULT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// `keepalive` of the gRPC client (configgrpc `KeepaliveClientConfig`, which the collector hands
/// to grpc-go as `keepalive.ClientParameters`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeepaliveClient {
    /// PING after this long without reading anything from the backend; 0 never (grpc-go's
    /// infinity).
    pub time: GoDuration,
    /// Drop the connection when nothing is read this long after a PING; 0 means 20 s.
    pub timeout: GoDuration,
    /// Also PING while no export is in flight (grpc-go's `PermitWithoutStream`).
    pub permit_without_stream: bool,
}

/// The keepalive a client runs, resolved from [`KeepaliveClient`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    /// Silence after which a PING goes out.
    pub time: Duration,
    /// How long after the PING something must have been read.
    pub timeout: Duration,
    /// PING with no export in flight too.
    pub permit_without_stream: bool,
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

    /// The keepalive to run: `None` without a `keepalive` block or with `time: 0`, as grpc-go.
    /// (grpc-go raises a `time` below 10 s to 10 s; tailgate uses it as written.)
    pub fn keepalive(&self) -> Option<Keepalive> {
        let k = self.keepalive.as_ref()?;
        if k.time.0.is_zero() {
            return None;
        }
        Some(Keepalive {
            time: k.time.0,
            timeout: if k.timeout.0.is_zero() {
                DEFAULT_KEEPALIVE_TIMEOUT
            } else {
                k.timeout.0
            },
            permit_without_stream: k.permit_without_stream,
        })
    }

    /// `TCP_USER_TIMEOUT` of the exporter's sockets: the keepalive `timeout` when keepalive is on
    /// (as grpc-go sets it), else [`DEFAULT_USER_TIMEOUT`].
    pub fn user_timeout(&self) -> Duration {
        self.keepalive().map_or(DEFAULT_USER_TIMEOUT, |k| k.timeout)
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::config::registry::parse_keys;

    fn parse(yaml: &str) -> Result<OtlpExporterConfig, Vec<String>> {
        let mut errors = ConfigErrors::default();
        let v: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap();
        let c: Option<OtlpExporterConfig> = parse_keys(v, "exporters.otlp", &mut errors);
        if errors.problems.is_empty() {
            Ok(c.unwrap())
        } else {
            Err(errors.problems.iter().map(ToString::to_string).collect())
        }
    }

    #[test]
    fn keepalive_follows_grpc_go_client_parameters() {
        // No block: no PINGs (the collector's otlp exporter default), the default user timeout.
        let c = parse("endpoint: gw:4317").unwrap();
        assert_eq!(c.keepalive(), None);
        assert_eq!(c.user_timeout(), DEFAULT_USER_TIMEOUT);
        // `time` alone: grpc-go's 20 s timeout; TCP_USER_TIMEOUT follows the keepalive timeout.
        let c = parse("endpoint: gw:4317\nkeepalive: {time: 30s}").unwrap();
        let k = Keepalive {
            time: Duration::from_secs(30),
            timeout: DEFAULT_KEEPALIVE_TIMEOUT,
            permit_without_stream: false,
        };
        assert_eq!(c.keepalive(), Some(k));
        assert_eq!(c.user_timeout(), DEFAULT_KEEPALIVE_TIMEOUT);
        let c = parse(
            "endpoint: gw:4317\nkeepalive: {time: 10s, timeout: 5s, permit_without_stream: true}",
        )
        .unwrap();
        let k = Keepalive {
            time: Duration::from_secs(10),
            timeout: Duration::from_secs(5),
            permit_without_stream: true,
        };
        assert_eq!(c.keepalive(), Some(k));
        assert_eq!(c.user_timeout(), Duration::from_secs(5));
        // `time: 0` is grpc-go's infinity: no PINGs.
        let c = parse("endpoint: gw:4317\nkeepalive: {time: 0s, timeout: 5s}").unwrap();
        assert_eq!(c.keepalive(), None);
    }

    #[test]
    fn unknown_keepalive_keys_are_refused() {
        let errs = parse("endpoint: gw:4317\nkeepalive: {tme: 10s}").unwrap_err();
        assert!(
            errs.iter()
                .any(|e| e.starts_with("exporters.otlp.keepalive.tme: unknown field")),
            "{errs:?}"
        );
    }
}
