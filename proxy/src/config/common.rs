//! Settings shared by several components: endpoints, TLS blocks, sending queue, retry, compression.

use std::collections::BTreeMap;

use serde::Deserialize;

use tailgate_proto::compression::Level;

use super::duration::GoDuration;
use super::error::{join, ConfigErrors};

/// Checks a listen endpoint `host:port` (host may be empty, a name, an IPv4 or a bracketed IPv6).
pub fn check_listen_endpoint(endpoint: &str, path: &str, errors: &mut ConfigErrors) {
    if let Err(e) = split_host_port(endpoint) {
        errors.push(path, e);
    }
}

/// Splits `host:port`, accepting `[v6]:port` and an empty host.
pub fn split_host_port(endpoint: &str) -> Result<(String, u16), String> {
    let bad = || {
        format!(
            "invalid endpoint {endpoint:?}: expected host:port, e.g. 0.0.0.0:4317 or localhost:0"
        )
    };
    let (host, port) = endpoint.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.contains('/') || host.contains(' ') {
        return Err(bad());
    }
    Ok((host.to_owned(), port))
}

/// The `tls` block of a server (receiver).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTls {
    /// PEM certificate chain file.
    #[serde(default)]
    pub cert_file: Option<String>,
    /// PEM private key file.
    #[serde(default)]
    pub key_file: Option<String>,
    /// CA file for client certificates (mTLS).
    #[serde(default)]
    pub client_ca_file: Option<String>,
    /// CA file (collector accepts it on servers too).
    #[serde(default)]
    pub ca_file: Option<String>,
    /// Lowest TLS version, "1.2" or "1.3".
    #[serde(default)]
    pub min_version: Option<String>,
    /// Highest TLS version.
    #[serde(default)]
    pub max_version: Option<String>,
    /// How often to re-read `cert_file` / `key_file` (absent or 0: never).
    #[serde(default)]
    pub reload_interval: Option<GoDuration>,
    /// Re-read `client_ca_file` when it changes.
    #[serde(default)]
    pub client_ca_file_reload: bool,
}

/// The `tls` block of a client (exporter). The collector dials TLS unless `insecure: true`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientTls {
    /// Plaintext connection (no TLS at all).
    #[serde(default)]
    pub insecure: bool,
    /// TLS without verifying the server's certificate.
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// CA file to verify the server.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// Client certificate (mTLS).
    #[serde(default)]
    pub cert_file: Option<String>,
    /// Client key (mTLS).
    #[serde(default)]
    pub key_file: Option<String>,
    /// Name to verify instead of the endpoint's host.
    #[serde(default)]
    pub server_name_override: Option<String>,
    /// Lowest TLS version.
    #[serde(default)]
    pub min_version: Option<String>,
    /// Highest TLS version.
    #[serde(default)]
    pub max_version: Option<String>,
    /// How often to re-read the client `cert_file` / `key_file` (absent or 0: never).
    #[serde(default)]
    pub reload_interval: Option<GoDuration>,
    /// Whether to add the system pool to `ca_file`.
    #[serde(default)]
    pub include_system_ca_certs_pool: bool,
}

/// Payload compression of an exporter or accepted by a receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// No compression (`none` or empty string).
    None,
    /// gzip, the collector's default for otlp exporters.
    #[default]
    Gzip,
    /// zstd.
    Zstd,
    /// snappy.
    Snappy,
}

impl Compression {
    /// The wire codec this setting selects.
    pub fn wire(self) -> tailgate_proto::compression::Compression {
        use tailgate_proto::compression::Compression as W;
        match self {
            Compression::None => W::Identity,
            Compression::Gzip => W::Gzip,
            Compression::Zstd => W::Zstd,
            Compression::Snappy => W::Snappy,
        }
    }

    /// Parses the collector's spelling; `None` for anything we do not send.
    pub fn parse(text: &str) -> Option<Compression> {
        match text {
            "" | "none" => Some(Compression::None),
            "gzip" => Some(Compression::Gzip),
            "zstd" => Some(Compression::Zstd),
            "snappy" => Some(Compression::Snappy),
            _ => None,
        }
    }

    /// The scale of `compression_params.level` for this codec.
    pub fn level_scale(self) -> LevelScale {
        match self {
            Compression::None => LevelScale::Uncompressed,
            Compression::Gzip => LevelScale::Deflate,
            Compression::Zstd => LevelScale::Zstd,
            Compression::Snappy => LevelScale::None,
        }
    }

    /// The `grpc-encoding` header value, if any.
    pub fn grpc_encoding(self) -> Option<&'static str> {
        match self {
            Compression::None => None,
            Compression::Gzip => Some("gzip"),
            Compression::Zstd => Some("zstd"),
            Compression::Snappy => Some("snappy"),
        }
    }
}

/// `compression_params` (confighttp's `ClientConfig`, collector v0.118.0 and later).
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompressionParams {
    /// The collector's level (Go `int`): 0 or absent means unset.
    pub level: i64,
}

/// Which level scale a `compression` value has, for [`CompressionParams::level`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LevelScale {
    /// No compression: the collector does not check the level.
    Uncompressed,
    /// gzip, zlib, deflate: Go's `compress/flate` levels.
    Deflate,
    /// zstd: any level, mapped to the nearest of klauspost/compress's four encoder speeds.
    Zstd,
    /// snappy: no levels.
    None,
}

/// zstd levels standing for klauspost/compress's encoder speeds, which
/// `zstd.EncoderLevelFromZstd` picks for the collector: fastest (< 3, "roughly zstd 1"),
/// default (3-5, "roughly zstd 3"), better (6-9, "roughly zstd 7"), best (>= 10, "roughly
/// zstd 11").
fn zstd_speed(level: i64) -> i32 {
    match level {
        ..=2 => 1,
        3..=5 => 3,
        6..=9 => 7,
        _ => 11,
    }
}

impl CompressionParams {
    /// The encoder level, by the collector's rules (configcompression `ValidateParams`, and
    /// confighttp's "0 means unset"): gzip/zlib/deflate take -1 (Go's default, level 6), -2
    /// (Huffman only) and 1-9; zstd any level, mapped to the nearest of the collector's
    /// encoder speeds (zstd 1, 3, 7 or 11); snappy none; `none` is not checked. Unset (0) is
    /// tailgate's fast level ([`Level::Fast`]: gzip 1, zstd 1), where the collector uses Go's
    /// default (gzip 6). Refusals are recorded under `path` (the `compression_params` key).
    pub fn level(
        self,
        scale: LevelScale,
        codec: &str,
        path: &str,
        errors: &mut ConfigErrors,
    ) -> Option<Level> {
        let n = self.level;
        let level = match (scale, n) {
            (LevelScale::Uncompressed, _) | (_, 0) => Level::Fast,
            (LevelScale::Deflate, -1) => Level::Numbered(6),
            (LevelScale::Deflate, -2) => Level::HuffmanOnly,
            (LevelScale::Deflate, 1..=9) => Level::Numbered(n as i32),
            (LevelScale::Zstd, _) => Level::Numbered(zstd_speed(n)),
            (LevelScale::Deflate, _) => {
                errors.push(
                    join(path, "level"),
                    format!(
                        "{n} is not a {codec} level; allowed: 1 (fastest) to 9 (smallest), -1 (Go's default, 6), -2 (Huffman only), 0 or absent (tailgate's default, 1)"
                    ),
                );
                return None;
            }
            (LevelScale::None, _) => {
                errors.push(
                    join(path, "level"),
                    format!("{codec} has no levels; remove compression_params or set level 0"),
                );
                return None;
            }
        };
        Some(level)
    }
}

/// What `sending_queue.queue_size` counts (exporterhelper's `sizer`, collector core v0.123.0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sizer {
    /// One per request (batch): the collector's default.
    #[default]
    Requests,
    /// Spans (the collector's items: spans, data points or log records).
    Items,
    /// Bytes of the serialized (uncompressed) OTLP request, as the collector's proto sizer.
    Bytes,
}

impl Sizer {
    /// Parses the collector's spelling.
    pub fn parse(text: &str) -> Option<Sizer> {
        match text {
            "requests" => Some(Sizer::Requests),
            "items" => Some(Sizer::Items),
            "bytes" => Some(Sizer::Bytes),
            _ => None,
        }
    }

    /// The size of one request of `items` items and `bytes` bytes in this unit.
    pub fn size_of(self, items: u64, bytes: u64) -> u64 {
        match self {
            Sizer::Requests => 1,
            Sizer::Items => items,
            Sizer::Bytes => bytes,
        }
    }

    /// The unit's name, as written in the config.
    pub fn name(self) -> &'static str {
        match self {
            Sizer::Requests => "requests",
            Sizer::Items => "items",
            Sizer::Bytes => "bytes",
        }
    }
}

/// `sending_queue` of an exporter (exporterhelper's QueueConfig).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SendingQueue {
    /// Whether requests are queued (false: the pipeline waits for each send).
    pub enabled: bool,
    /// Concurrent senders draining the queue (per core in tailgate).
    pub num_consumers: usize,
    /// Queue capacity per core, in the unit of `sizer`; what is being sent counts until it is done.
    pub queue_size: u64,
    /// Block instead of refusing when full (deprecated name): not supported, rejected by validate.
    pub blocking: bool,
    /// Block instead of refusing when full (collector v0.123.0): rejected by validate.
    pub block_on_overflow: bool,
    /// Persistent storage extension id: not supported.
    pub storage: Option<String>,
    /// What `queue_size` counts: `requests` (default), `items` or `bytes`.
    pub sizer: Option<String>,
    /// tailgate-only limits (the collector rejects this block).
    pub tailgate: QueueLimits,
}

/// `sending_queue.tailgate`: limits the collector does not have.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueLimits {
    /// Bytes (serialized requests) one exporter may hold queued or in flight on one core,
    /// whatever the sizer. A loadbalancing exporter's backends share it on each core. Absent:
    /// derived from the memory_limiter's soft limit, else [`DEFAULT_QUEUE_BYTES_PER_CORE`].
    pub max_bytes_per_core: Option<u64>,
}

/// The byte cap of one exporter's queue on one core without a memory_limiter to size it by.
pub const DEFAULT_QUEUE_BYTES_PER_CORE: u64 = 256 << 20;

/// The capacity of one exporter's queue on one core, resolved from the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueShape {
    /// What `capacity` counts.
    pub sizer: Sizer,
    /// `queue_size` in `sizer` units.
    pub capacity: u64,
    /// Consumer tasks.
    pub consumers: usize,
    /// Bytes held at most (queued and in flight), whatever the sizer.
    pub max_bytes: u64,
}

impl SendingQueue {
    /// The queue's shape per core; `default_bytes` is the byte cap when `tailgate.max_bytes_per_core`
    /// is absent. A disabled queue holds one request waiting and one being sent.
    pub fn shape(&self, default_bytes: u64) -> QueueShape {
        let max_bytes = self.tailgate.max_bytes_per_core.unwrap_or(default_bytes);
        if self.enabled {
            QueueShape {
                sizer: self.sizer(),
                capacity: self.queue_size,
                consumers: self.num_consumers,
                max_bytes,
            }
        } else {
            QueueShape {
                sizer: Sizer::Requests,
                capacity: 2,
                consumers: 1,
                max_bytes,
            }
        }
    }

    /// The configured sizer (validated; the default when absent).
    pub fn sizer(&self) -> Sizer {
        self.sizer
            .as_deref()
            .and_then(Sizer::parse)
            .unwrap_or_default()
    }
}

impl Default for SendingQueue {
    fn default() -> Self {
        SendingQueue {
            enabled: true,
            num_consumers: 10,
            queue_size: 1000,
            blocking: false,
            block_on_overflow: false,
            storage: None,
            sizer: None,
            tailgate: QueueLimits::default(),
        }
    }
}

impl SendingQueue {
    /// Checks the collector's rules and what tailgate implements.
    pub fn validate(&self, path: &str, errors: &mut ConfigErrors) {
        if self.enabled && self.queue_size == 0 {
            errors.push(
                join(path, "queue_size"),
                "must be greater than zero when the queue is enabled",
            );
        }
        if self.enabled && self.num_consumers == 0 {
            errors.push(join(path, "num_consumers"), "must be greater than zero");
        }
        // A pipeline hands a batch to the queue without waiting (a full queue refuses it, counted
        // in otelcol_exporter_enqueue_failed_spans_total): silently ignoring `blocking: true` would
        // drop what the user asked to keep.
        for (key, on) in [
            ("blocking", self.blocking),
            ("block_on_overflow", self.block_on_overflow),
        ] {
            if on {
                errors.push(
                    join(path, key),
                    "true is not supported in tailgate yet (a full queue refuses the batch); remove it or set it to false",
                );
            }
        }
        if self.storage.is_some() {
            errors.push(
                join(path, "storage"),
                "persistent queues are not implemented in tailgate; remove storage",
            );
        }
        if let Some(s) = &self.sizer {
            if Sizer::parse(s).is_none() {
                errors.push(
                    join(path, "sizer"),
                    format!("invalid sizer {s:?}; allowed: requests (default), items, bytes"),
                );
            }
        }
        if self.tailgate.max_bytes_per_core == Some(0) {
            errors.push(
                join(path, "tailgate.max_bytes_per_core"),
                "must be greater than zero (bytes)",
            );
        }
    }
}

/// `retry_on_failure` of an exporter (exporterhelper's BackOffConfig).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryOnFailure {
    /// Whether failed sends with retryable codes are retried.
    pub enabled: bool,
    /// First backoff.
    pub initial_interval: GoDuration,
    /// Jitter: each interval is multiplied by a random factor in [1-r, 1+r].
    pub randomization_factor: f64,
    /// Growth of the interval per attempt.
    pub multiplier: f64,
    /// Cap on one interval.
    pub max_interval: GoDuration,
    /// Give up after this long (0: never).
    pub max_elapsed_time: GoDuration,
}

impl Default for RetryOnFailure {
    fn default() -> Self {
        use std::time::Duration;
        RetryOnFailure {
            enabled: true,
            initial_interval: GoDuration(Duration::from_secs(5)),
            randomization_factor: 0.5,
            multiplier: 1.5,
            max_interval: GoDuration(Duration::from_secs(30)),
            max_elapsed_time: GoDuration(Duration::from_secs(300)),
        }
    }
}

impl RetryOnFailure {
    /// Checks ranges as the collector does.
    pub fn validate(&self, path: &str, errors: &mut ConfigErrors) {
        if !(0.0..=1.0).contains(&self.randomization_factor) {
            errors.push(
                join(path, "randomization_factor"),
                "must be between 0 and 1",
            );
        }
        if self.multiplier < 1.0 || !self.multiplier.is_finite() {
            errors.push(join(path, "multiplier"), "must be at least 1");
        }
        // The collector accepts 0 for both, which retries in a tight loop: tailgate refuses it.
        if self.enabled && self.initial_interval.0.is_zero() {
            errors.push(join(path, "initial_interval"), "must be greater than zero");
        }
        if self.enabled && self.max_interval.0.is_zero() {
            errors.push(join(path, "max_interval"), "must be greater than zero");
        }
    }
}

/// Headers sent with every request.
pub type Headers = BTreeMap<String, String>;

/// The `headers` of an exporter as HTTP headers (names lower-cased). Validation checked every
/// name and value with the same rules, so nothing is skipped for a validated config.
pub fn header_map(h: &Headers) -> ::http::HeaderMap {
    use ::http::{HeaderName, HeaderValue};
    let mut out = ::http::HeaderMap::new();
    for (k, v) in h {
        match (
            HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()),
            HeaderValue::from_str(v),
        ) {
            (Ok(k), Ok(v)) => {
                out.insert(k, v);
            }
            _ => tracing::warn!("header {k:?} is not a valid HTTP header; not sent"),
        }
    }
    out
}

/// Checks an exporter's `headers` (each a valid HTTP header name and value) and that `tls`
/// names a client certificate and its key together; errors under `path`.
pub fn check_headers_and_client_tls(
    headers: &Headers,
    tls: &ClientTls,
    path: &str,
    errors: &mut ConfigErrors,
) {
    for (name, value) in headers {
        let ok = http::HeaderName::from_bytes(name.as_bytes()).is_ok()
            && http::HeaderValue::from_str(value).is_ok();
        if !ok {
            errors.push(
                join(&join(path, "headers"), name),
                "is not a valid HTTP header name and value",
            );
        }
    }
    if tls.cert_file.is_some() != tls.key_file.is_some() {
        errors.push(
            join(path, "tls"),
            "cert_file and key_file must be set together",
        );
    }
}
