//! An OTLP/gRPC client: sends encoded `ExportTraceServiceRequest`s over one h2 connection.
//!
//! One [`Sender`] is one TCP connection; requests on it are multiplexed as h2 streams, so calls
//! to [`Sender::export`] may run concurrently (clone the sender or share it by reference).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use h2::client::SendRequest;
use http::{HeaderMap, Request};
use tokio::net::TcpStream;

use crate::grpc::{self, Compression, GrpcStatus, TRACE_EXPORT_PATH};

/// How the sender talks.
#[derive(Debug, Clone)]
pub struct SenderConfig {
    /// Compression of request messages (`grpc-encoding`).
    pub compression: Compression,
    /// Per-request deadline (`grpc-timeout` is sent too); `None` waits forever.
    pub timeout: Option<Duration>,
    /// h2 stream window (large by default: see [`crate::sink`]'s note on windows).
    pub stream_window: u32,
    /// h2 connection window.
    pub connection_window: u32,
}

impl Default for SenderConfig {
    fn default() -> Self {
        SenderConfig {
            compression: Compression::None,
            timeout: Some(Duration::from_secs(30)),
            stream_window: 8 << 20,
            connection_window: 32 << 20,
        }
    }
}

/// The server's answer to one export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportResponse {
    /// `grpc-status` from trailers (or headers for trailers-only answers).
    pub status: GrpcStatus,
    /// `grpc-message`, if any.
    pub message: String,
    /// `partial_success.rejected_spans` of the response message (0 when absent).
    pub rejected_spans: i64,
}

impl ExportResponse {
    /// Whether the export succeeded.
    pub fn is_ok(&self) -> bool {
        self.status == GrpcStatus::OK
    }
}

/// A transport failure: no gRPC status was received.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// TCP connect or I/O failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// HTTP/2 protocol error or reset.
    #[error("h2: {0}")]
    H2(#[from] h2::Error),
    /// The answer was not a valid gRPC response.
    #[error("bad response: {0}")]
    Protocol(String),
    /// The per-request deadline passed.
    #[error("deadline exceeded")]
    Timeout,
}

/// One h2 connection to an OTLP/gRPC server.
#[derive(Debug, Clone)]
pub struct Sender {
    send: SendRequest<Bytes>,
    authority: String,
    config: SenderConfig,
}

impl Sender {
    /// Connects and performs the h2 handshake. The connection is driven by a tokio task that ends
    /// when the last clone of the sender is dropped.
    pub async fn connect(addr: SocketAddr, config: SenderConfig) -> Result<Sender, SendError> {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let (send, conn) = h2::client::Builder::new()
            .initial_window_size(config.stream_window)
            .initial_connection_window_size(config.connection_window)
            .max_frame_size(1 << 20)
            .handshake::<_, Bytes>(tcp)
            .await?;
        // The connection future finishes once every SendRequest handle is gone.
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("sender: connection ended: {e}");
            }
        });
        Ok(Sender {
            send,
            authority: addr.to_string(),
            config,
        })
    }

    /// Sends one encoded `ExportTraceServiceRequest` and waits for the status.
    pub async fn export(&self, request: &[u8]) -> Result<ExportResponse, SendError> {
        let body = grpc::encode_frame(request, self.config.compression);
        self.export_framed(body).await
    }

    /// Sends an already framed (and maybe compressed with this sender's compression) body.
    pub async fn export_framed(&self, body: Bytes) -> Result<ExportResponse, SendError> {
        let call = self.call(body);
        match self.config.timeout {
            Some(t) => tokio::time::timeout(t, call)
                .await
                .map_err(|_| SendError::Timeout)?,
            None => call.await,
        }
    }

    /// The compression this sender uses.
    pub fn compression(&self) -> Compression {
        self.config.compression
    }

    async fn call(&self, body: Bytes) -> Result<ExportResponse, SendError> {
        let mut send = self.send.clone().ready().await?;
        let mut builder = Request::builder()
            .method("POST")
            .uri(format!("http://{}{}", self.authority, TRACE_EXPORT_PATH))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header("user-agent", "tailgate-perf");
        if self.config.compression != Compression::None {
            builder = builder.header("grpc-encoding", self.config.compression.header_value());
        }
        if let Some(t) = self.config.timeout {
            builder = builder.header("grpc-timeout", format!("{}m", t.as_millis()));
        }
        let request = builder
            .body(())
            .map_err(|e| SendError::Protocol(e.to_string()))?;
        let (response, mut stream) = send.send_request(request, false)?;
        send_body(&mut stream, body).await?;
        let response = response.await?;
        let (parts, mut recv) = response.into_parts();
        if parts.status != http::StatusCode::OK {
            return Err(SendError::Protocol(format!("HTTP status {}", parts.status)));
        }
        if let Some(status) = status_of(&parts.headers) {
            // Trailers-only answer.
            return Ok(ExportResponse {
                status,
                message: message_of(&parts.headers),
                rejected_spans: 0,
            });
        }
        let mut data = BytesMut::new();
        while let Some(chunk) = recv.data().await {
            let chunk = chunk?;
            let _ = recv.flow_control().release_capacity(chunk.len());
            data.extend_from_slice(&chunk);
        }
        let trailers = recv.trailers().await?.unwrap_or_default();
        let status = status_of(&trailers)
            .ok_or_else(|| SendError::Protocol("no grpc-status in trailers".into()))?;
        Ok(ExportResponse {
            status,
            message: message_of(&trailers),
            rejected_spans: rejected_spans(data.freeze(), &parts.headers),
        })
    }
}

/// Sends the body respecting the peer's flow-control window.
async fn send_body(stream: &mut h2::SendStream<Bytes>, mut body: Bytes) -> Result<(), SendError> {
    if body.is_empty() {
        stream.send_data(body, true)?;
        return Ok(());
    }
    while !body.is_empty() {
        stream.reserve_capacity(body.len());
        let granted = std::future::poll_fn(|cx| stream.poll_capacity(cx))
            .await
            .ok_or_else(|| SendError::Protocol("stream closed while sending".into()))??;
        let chunk = body.split_to(granted.min(body.len()));
        stream.send_data(chunk, body.is_empty())?;
    }
    Ok(())
}

fn status_of(headers: &HeaderMap) -> Option<GrpcStatus> {
    headers
        .get("grpc-status")?
        .to_str()
        .ok()?
        .parse()
        .ok()
        .map(GrpcStatus)
}

fn message_of(headers: &HeaderMap) -> String {
    headers
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

fn rejected_spans(body: Bytes, headers: &HeaderMap) -> i64 {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
    use prost::Message;
    let encoding = headers
        .get("grpc-encoding")
        .and_then(|v| v.to_str().ok())
        .and_then(Compression::from_header);
    let Ok(messages) = grpc::decode_frames(body, encoding, 16 << 20) else {
        return 0;
    };
    messages
        .first()
        .and_then(|m| ExportTraceServiceResponse::decode(m.clone()).ok())
        .and_then(|r| r.partial_success)
        .map_or(0, |p| p.rejected_spans)
}
