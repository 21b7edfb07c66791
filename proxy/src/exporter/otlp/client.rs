//! One h2 client connection per core per endpoint, re-dialled when it breaks.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_lite::future;
use h2::client::SendRequest;
use http::{HeaderMap, HeaderValue, Method, Request};
use rustls::pki_types::ServerName;
use tailgate_proto::compression::Compression as WireCompression;
use tokio_util::compat::FuturesAsyncReadCompatExt;

use super::config::DialTarget;
use super::status::{classify, code_for_http_status, ExportError};
use crate::exporter::dial::Dialer;
use crate::receiver::otlp::grpc::TRACE_EXPORT_PATH;

/// Same windows as the receiver: the sending side limits throughput just as much.
const STREAM_WINDOW: u32 = 8 << 20;
const CONN_WINDOW: u32 = 32 << 20;

/// A lazily connected gRPC client for `TraceService/Export`.
pub struct Client {
    target: DialTarget,
    authority: String,
    compression: WireCompression,
    headers: HeaderMap,
    timeout: Duration,
    conn: RefCell<Option<SendRequest<Bytes>>>,
    /// TLS settings; `None` dials plaintext.
    tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
    /// Serialises dialling so concurrent consumers share one connection.
    dialing: glommio::sync::Semaphore,
    /// Resolves (off the core) and connects.
    dialer: Dialer,
}

impl Client {
    /// A client; nothing is dialled until the first export.
    pub fn new(
        target: DialTarget,
        compression: WireCompression,
        headers: HeaderMap,
        timeout: Duration,
        authority: Option<String>,
        tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
        dialer: Dialer,
    ) -> Client {
        let authority = authority.unwrap_or_else(|| format!("{}:{}", target.host, target.port));
        Client {
            target,
            authority,
            compression,
            headers,
            timeout,
            conn: RefCell::new(None),
            tls,
            dialing: glommio::sync::Semaphore::new(1),
            dialer,
        }
    }

    /// Sends one serialized `ExportTraceServiceRequest`, bounded by the exporter's timeout.
    pub async fn export(&self, payload: &Bytes) -> Result<(), ExportError> {
        within(self.timeout, self.export_inner(payload)).await
    }

    async fn export_inner(&self, payload: &Bytes) -> Result<(), ExportError> {
        let body =
            tailgate_proto::grpc::encode_message(payload, self.compression).map_err(|e| {
                ExportError {
                    retryable: false,
                    throttle: None,
                    message: format!("compression failed: {e}"),
                }
            })?;
        let sender = self.sender().await?;
        let mut sender = sender.ready().await.map_err(|e| self.broken(e))?;
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(format!("http://{}{}", self.authority, TRACE_EXPORT_PATH))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header("grpc-timeout", format!("{}m", self.timeout.as_millis()))
            .body(())
            .map_err(|e| ExportError {
                retryable: false,
                throttle: None,
                message: format!("bad request: {e}"),
            })?;
        if let Some(enc) = encoding_name(self.compression) {
            req.headers_mut()
                .insert("grpc-encoding", HeaderValue::from_static(enc));
        }
        for (k, v) in &self.headers {
            req.headers_mut().insert(k.clone(), v.clone());
        }
        let (response, mut stream) = sender
            .send_request(req, false)
            .map_err(|e| self.broken(e))?;
        stream.send_data(body, true).map_err(|e| self.broken(e))?;
        let response = response.await.map_err(|e| self.broken(e))?;
        let (parts, mut body) = response.into_parts();
        if parts.status != http::StatusCode::OK {
            let code = code_for_http_status(parts.status.as_u16());
            return Err(classify(code, &format!("HTTP {}", parts.status), None));
        }
        if let Some(status) = status_of(&parts.headers) {
            return status;
        }
        while let Some(chunk) = body.data().await {
            let chunk =
                chunk.map_err(|e| ExportError::transport(format!("response stream: {e}")))?;
            let _ = body.flow_control().release_capacity(chunk.len());
        }
        let trailers = body
            .trailers()
            .await
            .map_err(|e| ExportError::transport(format!("response trailers: {e}")))?;
        match trailers.as_ref().and_then(status_of) {
            Some(status) => status,
            None => Err(classify(13, "response without grpc-status", None)),
        }
    }

    fn broken(&self, e: h2::Error) -> ExportError {
        // The connection is unusable: forget it so the next attempt dials again.
        self.conn.borrow_mut().take();
        if let Some(reason) = e.reason() {
            if reason == h2::Reason::REFUSED_STREAM {
                return ExportError::transport("stream refused by server");
            }
        }
        ExportError::transport(format!("h2: {e}"))
    }

    async fn sender(&self) -> Result<SendRequest<Bytes>, ExportError> {
        if let Some(s) = self.conn.borrow().as_ref() {
            return Ok(s.clone());
        }
        let _permit = self
            .dialing
            .acquire_permit(1)
            .await
            .map_err(|e| ExportError::transport(format!("dial lock: {e}")))?;
        if let Some(s) = self.conn.borrow().as_ref() {
            return Ok(s.clone());
        }
        let (io, addr) = self
            .dialer
            .dial(&self.target.host, self.target.port, self.tls.as_ref())
            .await?;
        let (send, conn) = h2::client::Builder::new()
            .initial_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONN_WINDOW)
            .max_frame_size(1 << 20)
            .handshake::<_, Bytes>(io.compat())
            .await
            .map_err(|e| ExportError::transport(format!("h2 handshake with {addr}: {e}")))?;
        glommio::spawn_local(async move {
            if let Err(e) = conn.await {
                tracing::debug!("exporter connection to {addr} ended: {e}");
            }
        })
        .detach();
        tracing::debug!("exporter connected to {addr}");
        *self.conn.borrow_mut() = Some(send.clone());
        Ok(send)
    }
}

fn encoding_name(c: WireCompression) -> Option<&'static str> {
    match c {
        WireCompression::Identity => None,
        other => Some(other.name()),
    }
}

fn status_of(headers: &HeaderMap) -> Option<Result<(), ExportError>> {
    let code: u32 = headers
        .get("grpc-status")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    if code == 0 {
        return Some(Ok(()));
    }
    let message = headers
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let details = headers
        .get("grpc-status-details-bin")
        .map(HeaderValue::as_bytes);
    Some(Err(classify(code, message, details)))
}

/// Runs one export attempt, failing it (retryably) if it takes longer than `timeout`: the
/// exporters' `timeout` key.
pub(crate) async fn within(
    timeout: std::time::Duration,
    attempt: impl std::future::Future<Output = Result<(), ExportError>>,
) -> Result<(), ExportError> {
    future::or(attempt, async move {
        glommio::timer::Timer::new(timeout).await;
        Err(ExportError::transport(format!(
            "export timed out after {timeout:?}"
        )))
    })
    .await
}
