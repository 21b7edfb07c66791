//! HTTP/1.1 client for `POST /v1/traces`: hyper 1 `http1` connections over glommio streams, kept
//! in a small per-core idle pool (keep-alive) like Go's `http.Transport`.

use std::cell::RefCell;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::pipeline::Payload;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request};
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use rustls::pki_types::ServerName;
use tokio_util::compat::FuturesAsyncReadCompatExt;

use tailgate_proto::compression::{Encoder, Level};

use super::config::{Encoding, HttpCompression, TracesUrl};
use super::status::{classify, partial_success};
use crate::exporter::dial::Dialer;
use crate::exporter::otlp::exporter::Transport;
use crate::exporter::otlp::status::ExportError;
use crate::telemetry::metrics::Local;

/// Response bytes read for an error message or a partial success, as the collector.
const MAX_RESPONSE_READ: usize = 64 * 1024;

type Sender = SendRequest<Full<Bytes>>;

/// An idle keep-alive connection and when it became idle.
struct Idle {
    sender: Sender,
    since: Instant,
}

/// How the client talks to its endpoint.
pub struct HttpSettings {
    /// Where to POST.
    pub url: TracesUrl,
    /// proto or json bodies.
    pub encoding: Encoding,
    /// `Content-Encoding` of the bodies.
    pub compression: HttpCompression,
    /// The level they are compressed at.
    pub level: Level,
    /// Configured extra headers.
    pub headers: HeaderMap,
    /// Deadline of one attempt (connect, send, response).
    pub timeout: Duration,
    /// TLS settings; `None` dials plaintext (`http://`).
    pub tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
    /// Idle connections kept (0: none kept, as with `disable_keep_alives`).
    pub idle_limit: usize,
    /// How long an idle connection may be reused.
    pub idle_timeout: Option<Duration>,
    /// Resolves (off the core) and connects.
    pub dialer: Dialer,
}

/// A lazily connected OTLP/HTTP trace client.
pub struct HttpClient {
    settings: HttpSettings,
    /// Headers of every request, built once.
    request_headers: HeaderMap,
    idle: RefCell<Vec<Idle>>,
    /// Spans a backend reported as rejected in a `partial_success` (tailgate's own counter).
    rejected: Local,
}

impl HttpClient {
    /// A client; nothing is dialled until the first export.
    pub fn new(settings: HttpSettings, rejected: Local) -> HttpClient {
        let request_headers = request_headers(&settings);
        HttpClient {
            settings,
            request_headers,
            idle: RefCell::new(Vec::new()),
            rejected,
        }
    }

    /// Sends one serialized `ExportTraceServiceRequest`, bounded by the exporter's timeout.
    pub async fn export(&self, payload: &Bytes) -> Result<(), ExportError> {
        crate::exporter::otlp::client::within(self.settings.timeout, self.attempt(payload)).await
    }

    async fn attempt(&self, payload: &Bytes) -> Result<(), ExportError> {
        let s = &self.settings;
        let body = encode_body(payload, s.encoding, s.compression, s.level)?;
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(self.settings.url.path.as_str())
            .body(Full::new(body))
            .map_err(|e| permanent(format!("bad request: {e}")))?;
        *request.headers_mut() = self.request_headers.clone();
        let (mut sender, reused) = self.sender().await?;
        let response = match sender.try_send_request(request).await {
            Ok(r) => r,
            Err(mut e) => {
                // A kept-alive connection the server closed while idle: nothing was sent, so
                // send again on a fresh connection (Go's transport does the same).
                match (reused, e.take_message()) {
                    (true, Some(request)) => {
                        let mut fresh = self.dial().await?;
                        fresh
                            .send_request(request)
                            .await
                            .map_err(|e| ExportError::transport(format!("HTTP: {e}")))?
                    }
                    _ => {
                        return Err(ExportError::transport(format!("HTTP: {}", e.error())));
                    }
                }
            }
        };
        let (parts, body) = response.into_parts();
        // Read up to 64 KiB; a longer body is not worth keeping the connection for.
        let body = Limited::new(body, MAX_RESPONSE_READ).collect().await;
        let body = match body {
            Ok(b) => {
                self.release(sender);
                b.to_bytes()
            }
            Err(_) => Bytes::new(),
        };
        if !parts.status.is_success() {
            return Err(classify(parts.status, &parts.headers, &body));
        }
        let content_type = parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        if let Some((rejected, message)) = partial_success(content_type, &body) {
            self.rejected.add(rejected);
            tracing::warn!(rejected, "partial success response: {message}");
        }
        Ok(())
    }

    /// An idle connection that is still open, or a new one; `true` when reused.
    async fn sender(&self) -> Result<(Sender, bool), ExportError> {
        loop {
            let Some(idle) = self.idle.borrow_mut().pop() else {
                break;
            };
            let fresh = self
                .settings
                .idle_timeout
                .is_none_or(|t| idle.since.elapsed() < t);
            if fresh && !idle.sender.is_closed() && idle.sender.is_ready() {
                return Ok((idle.sender, true));
            }
        }
        Ok((self.dial().await?, false))
    }

    /// Keeps a connection whose exchange completed, within the idle limit.
    fn release(&self, sender: Sender) {
        let mut idle = self.idle.borrow_mut();
        if idle.len() < self.settings.idle_limit && !sender.is_closed() {
            idle.push(Idle {
                sender,
                since: Instant::now(),
            });
        }
    }

    async fn dial(&self) -> Result<Sender, ExportError> {
        let url = &self.settings.url;
        let (io, addr) = self
            .settings
            .dialer
            .dial(&url.host, url.port, self.settings.tls.as_ref())
            .await?;
        let (sender, conn) = http1::handshake(TokioIo::new(io.compat()))
            .await
            .map_err(|e| ExportError::transport(format!("HTTP handshake with {addr}: {e}")))?;
        glommio::spawn_local(async move {
            if let Err(e) = conn.await {
                tracing::debug!("otlphttp connection to {addr} ended: {e}");
            }
        })
        .detach();
        let mut sender = sender;
        sender
            .ready()
            .await
            .map_err(|e| ExportError::transport(format!("HTTP connection to {addr}: {e}")))?;
        tracing::debug!("otlphttp exporter connected to {addr}");
        Ok(sender)
    }
}

impl Transport for HttpClient {
    fn send(&self, data: &Payload) -> impl Future<Output = Result<(), ExportError>> {
        self.export(&data.body)
    }
}

fn permanent(message: String) -> ExportError {
    ExportError {
        retryable: false,
        throttle: None,
        message,
    }
}

fn request_headers(s: &HttpSettings) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&s.url.authority) {
        h.insert(http::header::HOST, v);
    }
    let content_type = match s.encoding {
        Encoding::Proto => "application/x-protobuf",
        Encoding::Json => "application/json",
    };
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    if let Some(name) = content_encoding(s.compression) {
        h.insert(
            http::header::CONTENT_ENCODING,
            HeaderValue::from_static(name),
        );
    }
    h.insert(
        http::header::USER_AGENT,
        HeaderValue::from_static(concat!("tailgate/", env!("CARGO_PKG_VERSION"))),
    );
    if s.idle_limit == 0 {
        h.insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    }
    for (k, v) in &s.headers {
        h.insert(k.clone(), v.clone());
    }
    h
}

fn content_encoding(c: HttpCompression) -> Option<&'static str> {
    match c {
        HttpCompression::None => None,
        HttpCompression::Gzip => Some("gzip"),
        HttpCompression::Zstd => Some("zstd"),
        HttpCompression::Snappy => Some("snappy"),
        HttpCompression::Zlib => Some("zlib"),
        HttpCompression::Deflate => Some("deflate"),
    }
}

/// The request body: protobuf as it came, or OTLP/JSON; then compressed. Failures are permanent
/// (the same bytes would fail again).
pub fn encode_body(
    payload: &Bytes,
    encoding: Encoding,
    compression: HttpCompression,
    level: Level,
) -> Result<Bytes, ExportError> {
    let raw = match encoding {
        Encoding::Proto => payload.clone(),
        Encoding::Json => {
            let request = ExportTraceServiceRequest::decode(payload.as_ref())
                .map_err(|e| permanent(format!("cannot decode spans for JSON: {e}")))?;
            Bytes::from(
                serde_json::to_vec(&request)
                    .map_err(|e| permanent(format!("JSON encoding failed: {e}")))?,
            )
        }
    };
    if compression == HttpCompression::None {
        return Ok(raw);
    }
    let failed = |e: &dyn std::fmt::Display| permanent(format!("compression failed: {e}"));
    let mut out = Vec::with_capacity(raw.len() / 2 + 64);
    match compression.wire() {
        Some(codec) => Encoder::new(codec, level)
            .map_err(|e| failed(&e))?
            .compress_into(&raw, &mut out),
        None => tailgate_proto::compression::zlib_into(&raw, level, &mut out),
    }
    .map_err(|e| failed(&e))?;
    Ok(Bytes::from(out))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn bodies_decode_at_every_level_of_every_codec() {
        let payload = Bytes::from(
            (0..50_000u32)
                .flat_map(|i| format!("span {} ", i % 300).into_bytes())
                .collect::<Vec<u8>>(),
        );
        let deflate: Vec<Level> = [Level::Fast, Level::HuffmanOnly]
            .into_iter()
            .chain((0..=9).map(Level::Numbered))
            .collect();
        let zstd: Vec<Level> = [1, 3, 7, 11].map(Level::Numbered).to_vec();
        let cases = [
            (HttpCompression::Gzip, deflate.clone()),
            (HttpCompression::Zlib, deflate.clone()),
            (HttpCompression::Deflate, deflate),
            (HttpCompression::Zstd, zstd),
            (HttpCompression::Snappy, vec![Level::Fast]),
            (HttpCompression::None, vec![Level::Fast]),
        ];
        for (compression, levels) in cases {
            for level in levels {
                let body = encode_body(&payload, Encoding::Proto, compression, level).unwrap();
                let back = match compression.wire() {
                    Some(codec) => codec.decompress(&body, payload.len()).unwrap(),
                    None => {
                        let mut out = Vec::new();
                        flate2::read::ZlibDecoder::new(body.as_ref())
                            .read_to_end(&mut out)
                            .unwrap();
                        out
                    }
                };
                assert_eq!(back, payload.as_ref(), "{compression:?} {level:?}");
            }
        }
        // A level the codec lacks fails permanently instead of sending something else.
        let err = encode_body(
            &payload,
            Encoding::Proto,
            HttpCompression::Snappy,
            Level::Numbered(3),
        )
        .unwrap_err();
        assert!(
            !err.retryable && err.message.starts_with("compression failed"),
            "{err:?}"
        );
    }
}
