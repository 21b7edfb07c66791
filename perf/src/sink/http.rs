//! The sink's OTLP/HTTP listener: `POST /v1/traces` with a protobuf body (hyper 1, HTTP/1.1).

use std::convert::Infallible;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::{Answer, Shared};
use crate::grpc::{Compression, GrpcStatus};

/// The OTLP/HTTP traces path.
pub(crate) const TRACES_PATH: &str = "/v1/traces";

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
                    let shared = shared.clone();
                    conns.spawn(async move {
                        let service = service_fn(move |req| handle(req, shared.clone()));
                        let served = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                        if let Err(e) = served {
                            tracing::debug!("sink: http connection error: {e}");
                        }
                    });
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

async fn handle(
    request: Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let answer = answer(request, &shared).await;
    let status = answer.status.to_http();
    let body = if answer.status == GrpcStatus::OK {
        // An empty ExportTraceServiceResponse.
        Bytes::new()
    } else {
        encode_rpc_status(&answer)
    };
    let response = Response::builder()
        .status(status)
        .header("content-type", "application/x-protobuf")
        .body(Full::new(body))
        .unwrap_or_default();
    Ok(response)
}

async fn answer(request: Request<Incoming>, shared: &Shared) -> Answer {
    if request.uri().path() != TRACES_PATH || request.method() != http::Method::POST {
        return Answer::error(GrpcStatus::UNIMPLEMENTED, "only POST /v1/traces is served");
    }
    let content_type = request
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/x-protobuf") {
        return shared.invalid(format!(
            "content-type {content_type:?} is not supported (protobuf only)"
        ));
    }
    let encoding = request
        .headers()
        .get("content-encoding")
        .map(|v| v.to_str().unwrap_or("?").to_string());
    let compression = match encoding.as_deref().map(Compression::from_header) {
        None => Compression::None,
        Some(Some(c)) => c,
        Some(None) => return shared.invalid("content-encoding is not supported"),
    };
    let limit = shared.max_message_bytes();
    let raw = match Limited::new(request.into_body(), limit).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return Answer::error(GrpcStatus::RESOURCE_EXHAUSTED, e.to_string()),
    };
    let wire_bytes = raw.len();
    let message = match compression {
        Compression::None => raw,
        c => match c.decompress(&raw, limit) {
            Ok(m) => Bytes::from(m),
            Err(e) => return shared.invalid(e.to_string()),
        },
    };
    shared.ingest(message, wire_bytes).await
}

/// Encodes a `google.rpc.Status { code = 1, message = 2 }` by hand (two fields, no dependency).
fn encode_rpc_status(answer: &Answer) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_u8(0x08);
    prost::encoding::encode_varint(u64::from(answer.status.0), &mut buf);
    buf.put_u8(0x12);
    prost::encoding::encode_varint(answer.message.len() as u64, &mut buf);
    buf.put_slice(answer.message.as_bytes());
    buf.freeze()
}
