//! The sink's OTLP/gRPC listener: h2 server, unary Export method, gRPC status in trailers.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use h2::server::SendResponse;
use h2::RecvStream;
use http::{HeaderMap, HeaderValue, Request, Response};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::{Answer, Shared};
use crate::grpc::{self, Compression, GrpcStatus, TRACE_EXPORT_PATH};

/// h2 flow-control windows: large, because the default 64 KiB halves throughput for 1000-span
/// requests (DESIGN.md: 4.3 M vs 8.2 M spans per CPU-second on this machine).
pub(crate) const STREAM_WINDOW: u32 = 8 << 20;
/// Connection-level window.
pub(crate) const CONNECTION_WINDOW: u32 = 32 << 20;
/// Largest HTTP/2 frame we accept.
pub(crate) const MAX_FRAME: u32 = 1 << 20;

/// Accepts connections until `stop` flips; dropping the join set aborts open connections.
pub(super) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    loop {
        let mut backoff = false;
        tokio::select! {
            _ = stop.wait_for(|&s| s) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    shared.connection_opened();
                    conns.spawn(serve_connection(stream, shared.clone()));
                }
                Err(e) => {
                    tracing::warn!("sink: accept failed: {e}");
                    backoff = true;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
        if backoff {
            // Out of file descriptors and the like: wait instead of spinning on accept.
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}

async fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    let handshake = h2::server::Builder::new()
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_frame_size(MAX_FRAME)
        .max_concurrent_streams(1024)
        .handshake::<_, Bytes>(stream)
        .await;
    let mut conn = match handshake {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!("sink: h2 handshake failed: {e}");
            return;
        }
    };
    // Streams run as tasks of this connection so that aborting the connection ends them too.
    let mut streams = JoinSet::new();
    loop {
        tokio::select! {
            next = conn.accept() => match next {
                Some(Ok((request, respond))) => {
                    streams.spawn(serve_stream(request, respond, shared.clone()));
                }
                Some(Err(e)) => {
                    tracing::debug!("sink: h2 connection error: {e}");
                    break;
                }
                None => break,
            },
            Some(_) = streams.join_next(), if !streams.is_empty() => {}
        }
    }
}

async fn serve_stream(
    request: Request<RecvStream>,
    respond: SendResponse<Bytes>,
    shared: Arc<Shared>,
) {
    let answer = answer_request(request, &shared).await;
    if let Err(e) = send_answer(respond, &answer) {
        tracing::debug!("sink: cannot send response: {e}");
    }
}

async fn answer_request(request: Request<RecvStream>, shared: &Shared) -> Answer {
    let (parts, mut body) = request.into_parts();
    if parts.uri.path() != TRACE_EXPORT_PATH {
        return Answer::error(
            GrpcStatus::UNIMPLEMENTED,
            format!("unknown method {}", parts.uri.path()),
        );
    }
    let encoding = match encoding(&parts.headers) {
        Ok(e) => e,
        Err(name) => {
            return Answer::error(
                GrpcStatus::UNIMPLEMENTED,
                format!("grpc-encoding {name} is not supported"),
            )
        }
    };
    let limit = shared.max_message_bytes();
    let raw = match read_body(&mut body, limit + 5).await {
        Ok(b) => b,
        Err(answer) => return answer,
    };
    let wire_bytes = raw.len();
    let messages = match grpc::decode_frames(raw, encoding, limit) {
        Ok(m) => m,
        Err(grpc::FrameError::TooLarge { limit }) => {
            return Answer::error(
                GrpcStatus::RESOURCE_EXHAUSTED,
                format!("message larger than {limit} bytes"),
            )
        }
        Err(e) => return shared.invalid(e.to_string()),
    };
    if messages.len() != 1 {
        // A unary call carries exactly one message; anything else is a broken client.
        return shared.invalid(format!("unary call carried {} messages", messages.len()));
    }
    let message = messages.into_iter().next().unwrap_or_default();
    shared.ingest(message, wire_bytes).await
}

/// `Ok(None)` without a `grpc-encoding` header; `Err(name)` for an encoding we cannot decode.
fn encoding(headers: &HeaderMap) -> Result<Option<Compression>, String> {
    match headers.get("grpc-encoding") {
        None => Ok(None),
        Some(v) => {
            let name = v.to_str().unwrap_or("?");
            Compression::from_header(name)
                .map(Some)
                .ok_or_else(|| name.to_string())
        }
    }
}

async fn read_body(body: &mut RecvStream, limit: usize) -> Result<Bytes, Answer> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(|e| Answer::error(GrpcStatus::CANCELLED, e.to_string()))?;
        // Give the window back at once: the sink never applies backpressure by flow control.
        let _ = body.flow_control().release_capacity(chunk.len());
        if buf.len() + chunk.len() > limit {
            return Err(Answer::error(
                GrpcStatus::RESOURCE_EXHAUSTED,
                format!("request larger than {limit} bytes"),
            ));
        }
        if buf.is_empty() && body.is_end_stream() {
            // Whole body in one chunk: keep it without copying.
            return Ok(chunk);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

fn send_answer(mut respond: SendResponse<Bytes>, answer: &Answer) -> Result<(), h2::Error> {
    let mut response = Response::builder()
        .status(200)
        .header("content-type", "application/grpc")
        .body(())
        .unwrap_or_default();
    if answer.status != GrpcStatus::OK {
        // Trailers-only response: the status travels in the headers and ends the stream.
        put_status(response.headers_mut(), answer);
        respond.send_response(response, true)?;
        return Ok(());
    }
    let mut stream = respond.send_response(response, false)?;
    // An empty ExportTraceServiceResponse encodes to zero bytes.
    stream.send_data(grpc::encode_frame(&[], Compression::None), false)?;
    let mut trailers = HeaderMap::new();
    put_status(&mut trailers, answer);
    stream.send_trailers(trailers)
}

fn put_status(headers: &mut HeaderMap, answer: &Answer) {
    headers.insert("grpc-status", HeaderValue::from(answer.status.0));
    if !answer.message.is_empty() {
        // grpc-message is percent-encoded; ours are plain ASCII, so only non-visible bytes matter.
        let msg: String = answer
            .message
            .chars()
            .map(|c| {
                if c.is_ascii_graphic() || c == ' ' {
                    c
                } else {
                    '?'
                }
            })
            .collect();
        if let Ok(v) = HeaderValue::from_str(&msg) {
            headers.insert("grpc-message", v);
        }
    }
}
