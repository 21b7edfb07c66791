//! Keys of the `otlphttp` exporter: otlphttpexporter's own (`traces_endpoint`, `encoding`, ...)
//! plus confighttp's `ClientConfig` squashed in, as in collector v0.115.0.

use std::time::Duration;

use rustls::pki_types::ServerName;
use serde::Deserialize;

use tailgate_proto::compression::Level;

use crate::config::common::{
    check_headers_and_client_tls, ClientTls, CompressionParams, Headers, LevelScale,
    RetryOnFailure, SendingQueue,
};
use crate::config::duration::GoDuration;
use crate::config::error::{join, ConfigErrors};

/// `exporters.otlphttp`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpHttpExporterConfig {
    /// Base URL; `/v1/traces` is appended unless `traces_endpoint` is set.
    pub endpoint: String,
    /// Full URL for traces, used as is.
    pub traces_endpoint: String,
    /// Metrics URL (tailgate exports traces only: accepted, unused).
    pub metrics_endpoint: String,
    /// Logs URL (accepted, unused).
    pub logs_endpoint: String,
    /// Profiles URL of newer collectors (accepted, unused).
    pub profiles_endpoint: String,
    /// `proto` (default) or `json`.
    pub encoding: String,
    /// gzip (default), zstd, snappy, zlib, deflate or none.
    pub compression: String,
    /// The encoder level (collector v0.118.0): gzip/zlib/deflate -2, -1, 1-9; zstd any (mapped
    /// to 1, 3, 7 or 11); absent or 0 is each codec's fast level (the collector's: Go's default).
    pub compression_params: Option<CompressionParams>,
    /// Per-request deadline (default 30s).
    pub timeout: GoDuration,
    /// Extra request headers.
    pub headers: Headers,
    /// TLS settings, used when the URL's scheme is `https`.
    pub tls: ClientTls,
    /// Bounded queue in front of the senders.
    pub sending_queue: SendingQueue,
    /// Retry with exponential backoff.
    pub retry_on_failure: RetryOnFailure,
    /// Socket buffer hint (accepted).
    pub read_buffer_size: Option<u64>,
    /// Socket buffer hint (accepted).
    pub write_buffer_size: Option<u64>,
    /// Idle keep-alive connections kept per core (default 100; 0 = no limit).
    pub max_idle_conns: Option<usize>,
    /// Idle connections per host (one host per exporter: the lower of this and `max_idle_conns`).
    pub max_idle_conns_per_host: Option<usize>,
    /// Connections per host (accepted; `sending_queue.num_consumers` bounds them per core).
    pub max_conns_per_host: Option<usize>,
    /// How long an idle connection is kept (default 90s; 0 = no limit).
    pub idle_conn_timeout: Option<GoDuration>,
    /// A fresh connection per request.
    pub disable_keep_alives: bool,
    /// HTTP/2 pings (accepted; tailgate speaks HTTP/1.1).
    pub http2_read_idle_timeout: Option<GoDuration>,
    /// HTTP/2 pings (accepted; tailgate speaks HTTP/1.1).
    pub http2_ping_timeout: Option<GoDuration>,
    /// HTTP/2 negotiation of newer collectors (accepted; tailgate speaks HTTP/1.1).
    pub force_attempt_http2: Option<bool>,
    /// Forward proxy URL (not implemented: a non-empty value fails validation).
    pub proxy_url: String,
    /// Authenticator extension (not implemented).
    pub auth: Option<serde_yaml::Value>,
    /// Cookie jar (accepted; OTLP backends do not set cookies that matter).
    pub cookies: Option<serde_yaml::Value>,
}

impl Default for OtlpHttpExporterConfig {
    fn default() -> Self {
        OtlpHttpExporterConfig {
            endpoint: String::new(),
            traces_endpoint: String::new(),
            metrics_endpoint: String::new(),
            logs_endpoint: String::new(),
            profiles_endpoint: String::new(),
            encoding: "proto".to_owned(),
            compression: "gzip".to_owned(),
            compression_params: None,
            timeout: GoDuration(Duration::from_secs(30)),
            headers: Headers::new(),
            tls: ClientTls::default(),
            sending_queue: SendingQueue::default(),
            retry_on_failure: RetryOnFailure::default(),
            read_buffer_size: None,
            write_buffer_size: None,
            max_idle_conns: None,
            max_idle_conns_per_host: None,
            max_conns_per_host: None,
            idle_conn_timeout: None,
            disable_keep_alives: false,
            http2_read_idle_timeout: None,
            http2_ping_timeout: None,
            force_attempt_http2: None,
            proxy_url: String::new(),
            auth: None,
            cookies: None,
        }
    }
}

/// Body encoding of the requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `application/x-protobuf`.
    Proto,
    /// `application/json` (OTLP/JSON).
    Json,
}

impl Encoding {
    /// Parses the collector's spelling.
    pub fn parse(text: &str) -> Option<Encoding> {
        match text {
            "proto" => Some(Encoding::Proto),
            "json" => Some(Encoding::Json),
            _ => None,
        }
    }
}

/// Payload compression as confighttp names it (`Content-Encoding` carries the same name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpCompression {
    /// No `Content-Encoding`.
    None,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
    /// Framed snappy.
    Snappy,
    /// zlib stream, sent as `Content-Encoding: zlib`.
    Zlib,
    /// zlib stream, sent as `Content-Encoding: deflate` (what Go's confighttp writes for it).
    Deflate,
}

impl HttpCompression {
    /// The scale of `compression_params.level` for this codec.
    pub fn level_scale(self) -> LevelScale {
        match self {
            HttpCompression::None => LevelScale::Uncompressed,
            HttpCompression::Gzip | HttpCompression::Zlib | HttpCompression::Deflate => {
                LevelScale::Deflate
            }
            HttpCompression::Zstd => LevelScale::Zstd,
            HttpCompression::Snappy => LevelScale::None,
        }
    }

    /// The wire codec, for those the receivers also speak (`None` for zlib and deflate).
    pub fn wire(self) -> Option<tailgate_proto::compression::Compression> {
        use tailgate_proto::compression::Compression as W;
        match self {
            HttpCompression::None => Some(W::Identity),
            HttpCompression::Gzip => Some(W::Gzip),
            HttpCompression::Zstd => Some(W::Zstd),
            HttpCompression::Snappy => Some(W::Snappy),
            HttpCompression::Zlib | HttpCompression::Deflate => None,
        }
    }

    /// Parses the collector's spelling.
    pub fn parse(text: &str) -> Option<HttpCompression> {
        Some(match text {
            "" | "none" => HttpCompression::None,
            "gzip" => HttpCompression::Gzip,
            "zstd" => HttpCompression::Zstd,
            "snappy" => HttpCompression::Snappy,
            "zlib" => HttpCompression::Zlib,
            "deflate" => HttpCompression::Deflate,
            _ => return None,
        })
    }
}

/// The URL to POST to, split for dialling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TracesUrl {
    /// Host name or address.
    pub host: String,
    /// Port (the scheme's default when the URL has none).
    pub port: u16,
    /// `https`.
    pub tls: bool,
    /// Path and query, e.g. `/v1/traces`.
    pub path: String,
    /// `host[:port]` for the `Host` header.
    pub authority: String,
}

/// An `otlphttp` exporter's keys that passed validation, with what validation parsed from them.
/// Only [`OtlpHttpExporterConfig::validate`] makes one, so starting the exporter from it has
/// nothing left to parse.
#[derive(Debug, Clone)]
pub struct Validated {
    /// The keys as written.
    keys: OtlpHttpExporterConfig,
    /// Parsed `traces_endpoint` or `endpoint`.
    url: TracesUrl,
    /// Parsed `encoding`.
    encoding: Encoding,
    /// Parsed `compression`.
    compression: HttpCompression,
    /// Parsed `compression_params.level`.
    level: Level,
    /// The TLS server name to verify (`None` for plaintext), checked at validation.
    server_name: Option<ServerName<'static>>,
}

impl Validated {
    /// The keys as written.
    pub fn keys(&self) -> &OtlpHttpExporterConfig {
        &self.keys
    }

    /// Where to POST traces.
    pub fn url(&self) -> &TracesUrl {
        &self.url
    }

    /// The body encoding.
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// The payload compression.
    pub fn compression(&self) -> HttpCompression {
        self.compression
    }

    /// The level the payload is compressed at.
    pub fn level(&self) -> Level {
        self.level
    }

    /// The client TLS to dial with when the URL is `https` (`None` for `http`). Fails only on
    /// the TLS material (files read now) the name was checked at validation.
    pub fn client_tls(&self) -> Result<Option<crate::tls::ClientSetup>, String> {
        crate::tls::client_setup_named(&self.keys.tls, self.server_name.as_ref(), b"http/1.1")
    }
}

impl OtlpHttpExporterConfig {
    /// The traces URL: `traces_endpoint` as is, else `endpoint` + `/v1/traces`.
    pub fn traces_url(&self) -> Result<TracesUrl, String> {
        let (text, append) = if !self.traces_endpoint.is_empty() {
            (self.traces_endpoint.as_str(), false)
        } else if !self.endpoint.is_empty() {
            (self.endpoint.as_str(), true)
        } else {
            return Err(
                "endpoint or traces_endpoint is required, e.g. https://backend:4318".into(),
            );
        };
        let uri: http::Uri = text
            .parse()
            .map_err(|e| format!("{text:?} is not a valid URL: {e}"))?;
        let tls = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => {
                return Err(format!(
                    "{text:?}: the URL needs an http:// or https:// scheme"
                ))
            }
        };
        let Some(authority) = uri.authority() else {
            return Err(format!("{text:?}: the URL has no host"));
        };
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("{text:?}: the URL has no host"));
        }
        let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let path = if append {
            format!("{}/v1/traces", uri.path().trim_end_matches('/'))
        } else {
            path.to_owned()
        };
        Ok(TracesUrl {
            host: host.to_owned(),
            port,
            tls,
            path,
            authority: authority.as_str().to_owned(),
        })
    }

    /// Idle connections kept per core: `max_idle_conns` (default 100) capped by
    /// `max_idle_conns_per_host` when set; 0 in either means no limit, as in Go's transport.
    pub fn idle_limit(&self) -> usize {
        let all = match self.max_idle_conns.unwrap_or(100) {
            0 => usize::MAX,
            n => n,
        };
        match self.max_idle_conns_per_host {
            Some(n) if n > 0 => all.min(n),
            _ => all,
        }
    }

    /// How long an idle connection is kept (`None`: for ever).
    pub fn idle_timeout(&self) -> Option<Duration> {
        let d = self
            .idle_conn_timeout
            .map_or(Duration::from_secs(90), |d| d.0);
        (!d.is_zero()).then_some(d)
    }

    /// The collector's rules plus what tailgate implements; accepted-but-unused keys warn.
    /// Every problem is recorded; the parsed settings come back only when there was none.
    pub fn validate(
        self,
        path: &str,
        errors: &mut ConfigErrors,
        warnings: &mut Vec<String>,
    ) -> Option<Validated> {
        let before = errors.problems.len();
        let url = self
            .traces_url()
            .map_err(|e| {
                let key = if self.traces_endpoint.is_empty() {
                    "endpoint"
                } else {
                    "traces_endpoint"
                };
                errors.push(join(path, key), e);
            })
            .ok();
        let server_name = url.as_ref().and_then(|u| {
            crate::tls::verified_name(&self.tls, u.tls, &u.host)
                .map_err(|(key, e)| errors.push(join(path, key), e))
                .ok()
        });
        let encoding = Encoding::parse(&self.encoding);
        if encoding.is_none() {
            errors.push(
                join(path, "encoding"),
                format!("{:?} is not supported; allowed: proto, json", self.encoding),
            );
        }
        let compression = HttpCompression::parse(&self.compression);
        if compression.is_none() {
            errors.push(
                join(path, "compression"),
                format!(
                    "{:?} is not supported; allowed: gzip, zstd, snappy, zlib, deflate, none",
                    self.compression
                ),
            );
        }
        let params = join(path, "compression_params");
        let level = compression.and_then(|c| {
            let level = self.compression_params.unwrap_or_default().level(
                c.level_scale(),
                &self.compression,
                &params,
                errors,
            )?;
            // The rules only produce levels the codec has; checked so a slip shows here. zlib
            // and deflate run gzip's deflate levels.
            use tailgate_proto::compression::{Compression as W, Encoder};
            Encoder::new(c.wire().unwrap_or(W::Gzip), level)
                .map_err(|e| errors.push(join(&params, "level"), e.to_string()))
                .ok()?;
            Some(level)
        });
        check_headers_and_client_tls(&self.headers, &self.tls, path, errors);
        if self.timeout.0.is_zero() {
            errors.push(join(path, "timeout"), "must be greater than zero");
        }
        if self.auth.is_some() {
            errors.push(
                join(path, "auth"),
                "exporter authentication is not implemented in tailgate yet",
            );
        }
        if !self.proxy_url.is_empty() {
            errors.push(
                join(path, "proxy_url"),
                "forward proxies are not implemented in tailgate yet",
            );
        }
        self.sending_queue
            .validate(&join(path, "sending_queue"), errors);
        self.retry_on_failure
            .validate(&join(path, "retry_on_failure"), errors);
        self.warn_unused(path, warnings);
        if errors.problems.len() > before {
            return None;
        }
        Some(Validated {
            server_name: server_name?,
            url: url?,
            encoding: encoding?,
            compression: compression?,
            level: level?,
            keys: self,
        })
    }

    fn warn_unused(&self, path: &str, warnings: &mut Vec<String>) {
        let ignored = [
            (
                "metrics_endpoint",
                !self.metrics_endpoint.is_empty(),
                "tailgate exports traces only",
            ),
            (
                "logs_endpoint",
                !self.logs_endpoint.is_empty(),
                "tailgate exports traces only",
            ),
            (
                "profiles_endpoint",
                !self.profiles_endpoint.is_empty(),
                "tailgate exports traces only",
            ),
            (
                "read_buffer_size",
                self.read_buffer_size.is_some(),
                "the kernel's socket buffers are used",
            ),
            (
                "write_buffer_size",
                self.write_buffer_size.is_some(),
                "the kernel's socket buffers are used",
            ),
            (
                "max_conns_per_host",
                self.max_conns_per_host.is_some(),
                "sending_queue.num_consumers bounds connections per core",
            ),
            (
                "http2_read_idle_timeout",
                self.http2_read_idle_timeout.is_some(),
                "tailgate's otlphttp client speaks HTTP/1.1",
            ),
            (
                "http2_ping_timeout",
                self.http2_ping_timeout.is_some(),
                "tailgate's otlphttp client speaks HTTP/1.1",
            ),
            (
                "force_attempt_http2",
                self.force_attempt_http2.is_some(),
                "tailgate's otlphttp client speaks HTTP/1.1",
            ),
            ("cookies", self.cookies.is_some(), "no cookie jar"),
        ];
        for (key, set, why) in ignored {
            if set {
                warnings.push(format!("{}: accepted and ignored ({why})", join(path, key)));
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn with(endpoint: &str, traces: &str) -> OtlpHttpExporterConfig {
        OtlpHttpExporterConfig {
            endpoint: endpoint.into(),
            traces_endpoint: traces.into(),
            ..Default::default()
        }
    }

    #[test]
    fn endpoint_gets_v1_traces_and_traces_endpoint_is_used_as_is() {
        let u = with("https://backend:4318", "").traces_url().unwrap();
        assert_eq!((u.host.as_str(), u.port, u.tls), ("backend", 4318, true));
        assert_eq!(u.path, "/v1/traces");
        let u = with("http://b/prefix/", "").traces_url().unwrap();
        assert_eq!(
            (u.port, u.tls, u.path.as_str()),
            (80, false, "/prefix/v1/traces")
        );
        let u = with("http://ignored:1", "http://b:9/custom?x=1")
            .traces_url()
            .unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("b", 9, "/custom?x=1")
        );
        assert!(with("backend:4318", "").traces_url().is_err());
        assert!(with("", "").traces_url().is_err());
    }

    #[test]
    fn unknown_encoding_and_compression_are_errors_and_unused_keys_warn() {
        let mut c = with("http://b:4318", "");
        c.encoding = "xml".into();
        c.compression = "brotli".into();
        c.http2_ping_timeout = Some(GoDuration(Duration::from_secs(1)));
        let mut errors = ConfigErrors::default();
        let mut warnings = Vec::new();
        let v = c.validate("exporters.otlphttp", &mut errors, &mut warnings);
        assert!(v.is_none());
        let text = format!("{errors:?}");
        assert!(
            text.contains("encoding") && text.contains("compression"),
            "{text}"
        );
        assert_eq!(warnings.len(), 1, "{warnings:?}");
    }

    #[test]
    fn compression_params_follow_the_collector_rules() {
        use crate::config::common::CompressionParams;
        let level = |compression: &str, n: i64| {
            let mut c = with("http://b:4318", "");
            c.compression = compression.into();
            c.compression_params = Some(CompressionParams { level: n });
            let mut errors = ConfigErrors::default();
            let mut warnings = Vec::new();
            let v = c.validate("exporters.otlphttp", &mut errors, &mut warnings);
            assert!(warnings.is_empty(), "{warnings:?}");
            v.map(|v| v.level()).ok_or_else(|| {
                errors
                    .problems
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
            })
        };
        for c in ["gzip", "zlib", "deflate"] {
            assert_eq!(level(c, 0).unwrap(), Level::Fast);
            assert_eq!(level(c, 9).unwrap(), Level::Numbered(9));
            assert_eq!(level(c, -1).unwrap(), Level::Numbered(6));
            assert_eq!(level(c, -2).unwrap(), Level::HuffmanOnly);
            let errs = level(c, 11).unwrap_err();
            let want =
                format!("exporters.otlphttp.compression_params.level: 11 is not a {c} level");
            assert!(errs.len() == 1 && errs[0].starts_with(&want), "{errs:?}");
        }
        assert_eq!(level("zstd", 7).unwrap(), Level::Numbered(7));
        assert_eq!(level("zstd", 12).unwrap(), Level::Numbered(11));
        assert_eq!(level("none", -7).unwrap(), Level::Fast);
        let errs = level("snappy", 2).unwrap_err();
        assert!(
            errs[0]
                .starts_with("exporters.otlphttp.compression_params.level: snappy has no levels"),
            "{errs:?}"
        );
        // Absent: the fast level, with no warning any more.
        let mut errors = ConfigErrors::default();
        let v = with("http://b:4318", "")
            .validate("e", &mut errors, &mut Vec::new())
            .unwrap();
        assert_eq!(v.level(), Level::Fast);
    }

    #[test]
    fn validation_carries_the_parsed_url_encoding_and_compression() {
        let mut c = with("https://backend:4318/base", "");
        c.encoding = "json".into();
        c.compression = "zlib".into();
        let mut errors = ConfigErrors::default();
        let v = c
            .validate("exporters.otlphttp", &mut errors, &mut Vec::new())
            .unwrap();
        assert!(errors.problems.is_empty(), "{errors:?}");
        let want = TracesUrl {
            host: "backend".into(),
            port: 4318,
            tls: true,
            path: "/base/v1/traces".into(),
            authority: "backend:4318".into(),
        };
        assert_eq!(v.url(), &want);
        assert_eq!(v.encoding(), Encoding::Json);
        assert_eq!(v.compression(), HttpCompression::Zlib);
        // Defaults: proto and gzip; plaintext needs no TLS material.
        let v = with("http://b:4318", "")
            .validate("exporters.otlphttp", &mut errors, &mut Vec::new())
            .unwrap();
        assert_eq!(
            (v.encoding(), v.compression()),
            (Encoding::Proto, HttpCompression::Gzip)
        );
        assert!(v.client_tls().unwrap().is_none());
        // A bad URL is reported under the key it came from, and nothing validates.
        let v = with("http://ignored:1", "b:9").validate("e", &mut errors, &mut Vec::new());
        assert!(v.is_none());
        assert!(
            errors.problems[0]
                .to_string()
                .starts_with("e.traces_endpoint:"),
            "{errors:?}"
        );
    }
}
