//! Keys of the `otlp` (gRPC) exporter.

use std::time::Duration;

use rustls::pki_types::ServerName;
use serde::Deserialize;

use tailgate_proto::compression::Encoder;

use crate::config::common::{
    check_headers_and_client_tls, ClientTls, Compression, CompressionParams, Headers,
    RetryOnFailure, SendingQueue,
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
    /// tailgate-only keys (the collector rejects this block).
    pub tailgate: OtlpTailgate,
}

/// `tailgate:` of an `otlp` exporter (and of loadbalancing's `protocol.otlp`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpTailgate {
    /// The encoder level, with the rules of the collector's `otlphttp` key of the same name
    /// (configgrpc has none): gzip -2, -1, 1-9; zstd any (mapped to 1, 3, 7 or 11); absent or
    /// 0 is each codec's fast level.
    pub compression_params: Option<CompressionParams>,
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
            tailgate: OtlpTailgate::default(),
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

/// Parses an `otlp` endpoint: a `http://` scheme means plaintext, `https://` TLS, none follows
/// `insecure` (`tls.insecure`). The one parse of an endpoint: validation runs it for configured
/// exporters, and the loadbalancing exporter for each backend it is handed at run time.
pub fn parse_dial_target(endpoint: &str, insecure: bool) -> Result<DialTarget, String> {
    let (rest, scheme_tls) = if let Some(r) = endpoint.strip_prefix("http://") {
        (r, Some(false))
    } else if let Some(r) = endpoint.strip_prefix("https://") {
        (r, Some(true))
    } else {
        (endpoint, None)
    };
    let rest = rest.trim_end_matches('/');
    if endpoint.is_empty() {
        return Err("is required, e.g. backend:4317".to_owned());
    }
    let (host, port) = crate::config::common::split_host_port(rest).map_err(|_| {
        format!("invalid endpoint {endpoint:?}: expected host:port (gRPC needs an explicit port)")
    })?;
    if host.is_empty() {
        return Err(format!("invalid endpoint {endpoint:?}: the host is empty"));
    }
    Ok(DialTarget {
        host,
        port,
        tls: scheme_tls.unwrap_or(!insecure),
    })
}

/// An `otlp` exporter's keys that passed validation, with what validation parsed from them.
/// Only [`OtlpExporterConfig::validate`] and [`Validated::with_endpoint`] make one, so starting
/// the exporter from it has nothing left to parse.
#[derive(Debug, Clone)]
pub struct Validated {
    /// The keys as written (endpoint included, for messages).
    keys: OtlpExporterConfig,
    /// Parsed `endpoint` (+ `tls.insecure`).
    target: DialTarget,
    /// Parsed `compression`.
    compression: Compression,
    /// The codec with its level (`tailgate.compression_params`).
    encoder: Encoder,
    /// The TLS server name to verify (`None` for plaintext), checked at validation.
    server_name: Option<ServerName<'static>>,
}

impl Validated {
    /// The keys as written.
    pub fn keys(&self) -> &OtlpExporterConfig {
        &self.keys
    }

    /// Where and how to dial.
    pub fn target(&self) -> &DialTarget {
        &self.target
    }

    /// The payload compression.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// The payload's codec and level.
    pub fn encoder(&self) -> Encoder {
        self.encoder
    }

    /// The same settings dialling `endpoint` instead: how a loadbalancing backend gets its
    /// exporter. Fails only on the endpoint (resolvers hand them over at run time).
    pub fn with_endpoint(&self, endpoint: &str) -> Result<Validated, String> {
        let target = parse_dial_target(endpoint, self.keys.tls.insecure)?;
        let server_name = crate::tls::verified_name(&self.keys.tls, target.tls, &target.host)
            .map_err(|(_, e)| e)?;
        let mut keys = self.keys.clone();
        endpoint.clone_into(&mut keys.endpoint);
        Ok(Validated {
            keys,
            target,
            compression: self.compression,
            encoder: self.encoder,
            server_name,
        })
    }

    /// The client TLS to dial with when the endpoint uses TLS (`None` for plaintext). Fails
    /// only on the TLS material (files read now) the name was checked at validation.
    pub fn client_tls(&self) -> Result<Option<crate::tls::ClientSetup>, String> {
        crate::tls::client_setup_named(&self.keys.tls, self.server_name.as_ref(), b"h2")
    }
}

impl OtlpExporterConfig {
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

    /// The collector's rules plus what tailgate implements: every problem is recorded; the
    /// parsed settings come back only when there was none.
    pub fn validate(self, path: &str, errors: &mut ConfigErrors) -> Option<Validated> {
        let before = errors.problems.len();
        let target = parse_dial_target(&self.endpoint, self.tls.insecure)
            .map_err(|e| errors.push(join(path, "endpoint"), e))
            .ok();
        let server_name = target.as_ref().and_then(|t| {
            crate::tls::verified_name(&self.tls, t.tls, &t.host)
                .map_err(|(key, e)| errors.push(join(path, key), e))
                .ok()
        });
        check_headers_and_client_tls(&self.headers, &self.tls, path, errors);
        let compression = Compression::parse(&self.compression);
        if compression.is_none() {
            errors.push(
                join(path, "compression"),
                format!(
                    "{:?} is not supported; allowed: gzip, zstd, snappy, none",
                    self.compression
                ),
            );
        }
        let params = join(path, "tailgate.compression_params");
        let encoder = compression.and_then(|c| {
            let level = self.tailgate.compression_params.unwrap_or_default().level(
                c.level_scale(),
                &self.compression,
                &params,
                errors,
            )?;
            encoder_of(c, level, &params, errors)
        });
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
        if errors.problems.len() > before {
            return None;
        }
        Some(Validated {
            target: target?,
            compression: compression?,
            encoder: encoder?,
            server_name: server_name?,
            keys: self,
        })
    }
}

/// The encoder of `codec` at `level`; the level rules only produce levels the codec has, so a
/// refusal here is a rule out of step with the codec, reported rather than hidden.
pub(crate) fn encoder_of(
    codec: Compression,
    level: tailgate_proto::compression::Level,
    path: &str,
    errors: &mut ConfigErrors,
) -> Option<Encoder> {
    Encoder::new(codec.wire(), level)
        .map_err(|e| errors.push(join(path, "level"), e.to_string()))
        .ok()
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

    fn validated(yaml: &str) -> Result<Validated, Vec<String>> {
        let c = parse(yaml)?;
        let mut errors = ConfigErrors::default();
        let v = c.validate("exporters.otlp", &mut errors);
        if errors.problems.is_empty() {
            Ok(v.unwrap())
        } else {
            assert!(v.is_none(), "a config with problems must not validate");
            Err(errors.problems.iter().map(ToString::to_string).collect())
        }
    }

    #[test]
    fn validation_carries_the_parsed_target_and_compression() {
        let v = validated("endpoint: gw:4317\ncompression: zstd").unwrap();
        let want = DialTarget {
            host: "gw".into(),
            port: 4317,
            tls: true,
        };
        assert_eq!(v.target(), &want);
        assert_eq!(v.compression(), Compression::Zstd);
        // A scheme decides TLS over `tls.insecure`; IPv6 brackets are stripped.
        let v = validated("endpoint: \"http://[::1]:4317/\"").unwrap();
        assert_eq!(
            (v.target().host.as_str(), v.target().port, v.target().tls),
            ("::1", 4317, false)
        );
        let v = validated("endpoint: gw:4317\ntls: {insecure: true}").unwrap();
        assert!(!v.target().tls);
        // Plaintext needs no TLS material.
        assert!(v.client_tls().unwrap().is_none());
        // The same settings for another endpoint: only the target changes.
        let b = v.with_endpoint("10.0.0.2:4318").unwrap();
        assert_eq!(
            (b.target().host.as_str(), b.target().port, b.target().tls),
            ("10.0.0.2", 4318, false)
        );
        assert_eq!(b.compression(), Compression::Gzip);
        assert!(v.with_endpoint("no-port").is_err());
    }

    #[test]
    fn the_level_follows_the_collector_rules_under_tailgate() {
        use tailgate_proto::compression::{Compression as W, Encoder, Level};
        let enc =
            |yaml: &str| validated(&format!("endpoint: gw:4317\n{yaml}")).map(|v| v.encoder());
        let level = |compression: &str, n: i64| {
            enc(&format!(
                "compression: {compression}\ntailgate: {{compression_params: {{level: {n}}}}}"
            ))
        };
        // Absent, empty and 0 are each codec's fast level: today's default.
        assert_eq!(enc("").unwrap(), Encoder::fast(W::Gzip));
        assert_eq!(enc("tailgate: {}").unwrap(), Encoder::fast(W::Gzip));
        assert_eq!(level("gzip", 0).unwrap(), Encoder::fast(W::Gzip));
        assert_eq!(level("zstd", 0).unwrap(), Encoder::fast(W::Zstd));
        // gzip: 1-9 as written, -1 is Go's default (6), -2 Huffman only.
        let gzip = |l| Encoder::new(W::Gzip, l).unwrap();
        for n in 1..=9 {
            assert_eq!(level("gzip", n).unwrap(), gzip(Level::Numbered(n as i32)));
        }
        assert_eq!(level("gzip", -1).unwrap(), gzip(Level::Numbered(6)));
        assert_eq!(level("gzip", -2).unwrap(), gzip(Level::HuffmanOnly));
        // zstd: any level, to the nearest of the collector's encoder speeds.
        for (n, want) in [
            (-5, 1),
            (1, 1),
            (2, 1),
            (3, 3),
            (5, 3),
            (6, 7),
            (9, 7),
            (10, 11),
            (22, 11),
            (99, 11),
        ] {
            let e = Encoder::new(W::Zstd, Level::Numbered(want)).unwrap();
            assert_eq!(level("zstd", n).unwrap(), e, "zstd {n}");
        }
        // Uncompressed: not checked, as the collector.
        assert_eq!(level("none", 42).unwrap(), Encoder::fast(W::Identity));
        // Refused, under the key path.
        for (compression, n, text) in [
            (
                "gzip",
                10,
                "10 is not a gzip level; allowed: 1 (fastest) to 9",
            ),
            ("gzip", -3, "-3 is not a gzip level"),
            (
                "snappy",
                1,
                "snappy has no levels; remove compression_params or set level 0",
            ),
        ] {
            let errs = level(compression, n).unwrap_err();
            assert_eq!(errs.len(), 1, "{errs:?}");
            let want = format!("exporters.otlp.tailgate.compression_params.level: {text}");
            assert!(errs[0].starts_with(&want), "{errs:?}");
        }
        assert_eq!(level("snappy", 0).unwrap(), Encoder::fast(W::Snappy));
        // Unknown keys and a level that is no number are refused where they are.
        let errs = enc("tailgate: {compression_params: {levle: 1}}").unwrap_err();
        assert!(
            errs[0].starts_with("exporters.otlp.tailgate.compression_params.levle: unknown field"),
            "{errs:?}"
        );
        let errs = enc("tailgate: {compression_params: {level: fast}}").unwrap_err();
        assert!(
            errs[0].starts_with("exporters.otlp.tailgate.compression_params.level"),
            "{errs:?}"
        );
        // The collector's place for it is otlphttp's; on otlp it is unknown.
        let errs = enc("compression_params: {level: 1}").unwrap_err();
        assert!(
            errs[0].starts_with("exporters.otlp.compression_params: unknown field"),
            "{errs:?}"
        );
    }

    #[test]
    fn every_problem_is_reported_and_nothing_validates() {
        let errs = validated("endpoint: gw\ncompression: lz4\ntimeout: 0s").unwrap_err();
        for key in ["endpoint", "compression", "timeout"] {
            let prefix = format!("exporters.otlp.{key}:");
            assert!(
                errs.iter().any(|e| e.starts_with(&prefix)),
                "{key}: {errs:?}"
            );
        }
        assert_eq!(errs.len(), 3, "{errs:?}");
        // A problem outside the parsed keys also keeps the value from being made.
        let errs = validated("endpoint: gw:4317\ntimeout: 0s").unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
    }

    #[test]
    fn the_tls_server_name_is_checked_and_kept_by_validation() {
        let errs = validated("endpoint: gw:4317\ntls: {server_name_override: \"not a name\"}")
            .unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].starts_with("exporters.otlp.tls.server_name_override: invalid TLS server name"),
            "{errs:?}"
        );
        let v = validated("endpoint: gw:4317").unwrap();
        assert_eq!(
            v.server_name,
            Some(ServerName::try_from("gw").unwrap().to_owned())
        );
        // Plaintext dials verify no name.
        let v = validated("endpoint: http://gw:4317").unwrap();
        assert_eq!(v.server_name, None);
    }
}
