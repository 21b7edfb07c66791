//! OTLP/HTTP server: hyper 1 `http1` over a glommio `TcpStream`, `POST /v1/traces` with protobuf or
//! JSON bodies, optionally gzip/zstd/snappy encoded (`tailgate_proto::json::decode_body`).
//!
//! Status codes follow the collector's otlpreceiver: 200 with an empty ExportTraceServiceResponse,
//! 400 for bodies that do not decode (including a span pdata cannot unmarshal, such as an 8-byte
//! trace id: the whole request is refused, naming the span), 413 over `max_request_body_size` or
//! over the JSON decode budget (`tailgate_proto::json::JsonBudget`), 415 for other content types,
//! 404 for other paths, 405 for other methods, 503 when a memory_limiter refuses (clients retry).
//!
//! tailgate's own limits on a request (docs/proxy.md, "Receiver limits"): a memory_limiter that is
//! refusing is asked before the body is read (503), the body is charged to the core's bytes in
//! flight as it is collected (503 past `max_request_bytes_in_flight_per_core`), and it is due
//! `body_timeout` after the request's head was read (408). Each answers at once with
//! `Connection: close`; the rest of a refused body is read and thrown away meanwhile (not that of
//! a body that timed out), so the client reads the answer rather than a connection reset.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;
use futures_lite::future;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body as _, Incoming};
use hyper_util::rt::TokioIo;
use tailgate_proto::error::{BodyError, JsonError, JsonErrorKind};
use tailgate_proto::json::{decode_body, BodyFormat};

use crate::pipeline::wire::{self, RequestError};
use crate::pipeline::{Consumer, Metadata, Payload};
use crate::receiver::in_flight::{Charge, InFlight};
use crate::receiver::limits::HttpLimits;
use crate::receiver::metadata_headers;
use crate::receiver::metrics::{ConnMetrics, RequestMetrics, RequestRefusal};
use crate::receiver::stopping::Stopping;
use crate::receiver::watch::{self, Action, Activity, Phase, Reason, Watched};
use crate::runtime::io::{BoxIo, Unzeroed};
use crate::runtime::time::before;
use crate::telemetry::metrics::Local;

/// Settings and counters one core's HTTP receiver needs.
pub struct HttpReceiver {
    /// The pipelines fed.
    pub next: Rc<dyn Consumer>,
    /// Path of the traces endpoint.
    pub traces_path: String,
    /// Paths answered with "not implemented" (metrics, logs).
    pub other_signal_paths: Vec<String>,
    /// Largest body, compressed or not.
    pub max_body: usize,
    /// Header, body, write and idle limits.
    pub limits: HttpLimits,
    /// `otelcol_receiver_accepted_spans_total{transport="http"}`.
    pub accepted: Local,
    /// `otelcol_receiver_refused_spans_total{transport="http"}`.
    pub refused: Local,
    /// `include_metadata`: keep the request headers as client metadata.
    pub include_metadata: bool,
    /// Requests rejected before spans could be counted.
    pub failed_requests: Local,
    /// Requests refused by a limit (by reason), and the bytes-in-flight gauges.
    pub requests: RequestMetrics,
    /// This core's budget of request bytes in flight for this listener.
    pub in_flight: Rc<InFlight>,
}

/// Serves one HTTP/1.1 connection until the peer closes it or a limit ends it.
pub async fn serve_connection(
    stream: BoxIo,
    peer: Option<SocketAddr>,
    rx: Rc<HttpReceiver>,
    metrics: &ConnMetrics,
    stopping: &Stopping,
) {
    let limits = rx.limits;
    // The first request's head is due `read_header_timeout` after the connection starts.
    let activity = Activity::new(Phase::Head(Instant::now()));
    let io = TokioIo::new(Unzeroed::new(Watched::new(stream, activity.clone())));
    let a = activity.clone();
    let service = hyper::service::service_fn(move |req| {
        let rx = rx.clone();
        let a = a.clone();
        async move { Ok::<_, Infallible>(handle(req, &rx, &a, peer).await) }
    });
    // Deadlines run on the watchdog (no per-request timers): hyper's own header timer is off.
    let conn = hyper::server::conn::http1::Builder::new()
        .header_read_timeout(None)
        .max_header_size(limits.conn.max_header_list_size as usize)
        .serve_connection(io, service);
    let mut conn = std::pin::pin!(conn);
    let _watchdog = glommio::spawn_local(watch::http(activity.clone(), limits));
    let slot = stopping.slot();
    let served = async {
        // On stop: an idle connection closes now, a request in progress is answered with
        // `Connection: close` first (net/http `Shutdown`).
        match future::or(async { Some(conn.as_mut().await) }, async {
            stopping.wait(&slot).await;
            None
        })
        .await
        {
            Some(ended) => ended,
            None => {
                conn.as_mut().graceful_shutdown();
                conn.as_mut().await
            }
        }
    };
    let ended = future::or(async { Ok(served.await) }, async {
        Err(activity.next_action().await)
    })
    .await;
    match ended {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            if e.is_parse_too_large() {
                metrics.closed(Reason::HeaderTooLarge);
            }
            tracing::debug!("http connection ended: {e}");
        }
        Err(Action::Close(reason) | Action::GoAway(reason)) => metrics.closed(reason),
    }
}

async fn handle(
    req: Request<Incoming>,
    rx: &HttpReceiver,
    activity: &Activity,
    peer: Option<SocketAddr>,
) -> Response<Full<Bytes>> {
    activity.set_phase(Phase::Body(Instant::now()));
    let response = respond(req, rx, peer).await;
    activity.set_phase(Phase::Idle(Instant::now()));
    response
}

async fn respond(
    req: Request<Incoming>,
    rx: &HttpReceiver,
    peer: Option<SocketAddr>,
) -> Response<Full<Bytes>> {
    let started = Instant::now();
    let headers = rx.include_metadata.then(|| metadata_headers(req.headers()));
    let path = req.uri().path();
    if path != rx.traces_path {
        rx.failed_requests.add(1);
        if rx.other_signal_paths.iter().any(|p| p == path) {
            return plain(
                StatusCode::NOT_IMPLEMENTED,
                "tailgate forwards traces only; metrics and logs are not implemented",
            );
        }
        return plain(StatusCode::NOT_FOUND, "404 page not found");
    }
    if req.method() != Method::POST {
        rx.failed_requests.add(1);
        return plain(
            StatusCode::METHOD_NOT_ALLOWED,
            &format!("{} method not allowed, supported: [POST]", req.method()),
        );
    }
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(format) = BodyFormat::from_content_type(content_type) else {
        rx.failed_requests.add(1);
        return plain(StatusCode::UNSUPPORTED_MEDIA_TYPE, &format!("{content_type:?} is unsupported, supported: [application/json, application/x-protobuf]"));
    };
    let encoding = req
        .headers()
        .get("content-encoding")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // Held until the body is decoded (dropped with this function).
    let (body, _charge) = match read_limited(req.into_body(), rx, started).await {
        Ok(read) => read,
        Err(answer) => return answer,
    };
    let payload = match decode_body(body, encoding.as_deref(), format, rx.max_body) {
        Ok(p) => p,
        Err(e) => {
            rx.failed_requests.add(1);
            let status = match e {
                // Over the JSON decode budget (a body of mostly empty objects) is "too large to
                // process", like an oversize body: 413, which OTLP clients do not retry.
                BodyError::Oversize { .. }
                | BodyError::Json(JsonError {
                    kind: JsonErrorKind::OverBudget,
                    ..
                }) => StatusCode::PAYLOAD_TOO_LARGE,
                BodyError::UnsupportedEncoding => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                _ => StatusCode::BAD_REQUEST,
            };
            return plain(status, &e.to_string());
        }
    };
    let spans = match wire::check_spans(&payload) {
        Ok(n) => n,
        Err(e @ RequestError::Malformed(_)) => {
            rx.failed_requests.add(1);
            return plain(StatusCode::BAD_REQUEST, &e.to_string());
        }
        Err(e @ RequestError::InvalidSpan { spans, .. }) => {
            // pdata cannot unmarshal it: the collector answers 400 and takes none of it.
            rx.refused.add(spans as u64);
            return plain(
                StatusCode::BAD_REQUEST,
                &format!("{e}; all {spans} spans of the request refused"),
            );
        }
    };
    let data = Payload {
        meta: Metadata {
            client: peer,
            received: Some(started),
            headers,
            hop: None,
        },
        ..Payload::traces(payload, spans)
    };
    match rx.next.consume(data) {
        Ok(()) => {
            rx.accepted.add(spans);
            let (ct, body) = match format {
                BodyFormat::Protobuf => ("application/x-protobuf", Bytes::new()),
                BodyFormat::Json => ("application/json", Bytes::from_static(b"{}")),
            };
            let mut r = Response::new(Full::new(body));
            r.headers_mut()
                .insert("content-type", http::HeaderValue::from_static(ct));
            r
        }
        Err(refusal) => {
            rx.refused.add(spans);
            plain(StatusCode::SERVICE_UNAVAILABLE, refusal.message())
        }
    }
}

/// Reads the body of a request whose head passed the checks, under the receiver's limits: the
/// pipelines are asked first, the body is charged to the core's bytes in flight and due
/// `body_timeout` after `started`. Returns the body and its charge, which the caller holds until
/// the body is decoded; `Err` is the answer to give.
async fn read_limited(
    mut body: Incoming,
    rx: &HttpReceiver,
    started: Instant,
) -> Result<(Bytes, Charge), Response<Full<Bytes>>> {
    let deadline = started.checked_add(rx.limits.conn.body_timeout);
    // Asked before the body is read: a request the pipelines would refuse costs no bytes.
    if let Err(r) = rx.next.ready() {
        rx.requests.refused(RequestRefusal::from_pipeline(r));
        discard(body, deadline);
        return Err(unread(plain(StatusCode::SERVICE_UNAVAILABLE, r.message())));
    }
    let mut charge = rx.in_flight.charge();
    let read = read_body(&mut body, rx.max_body, &mut charge);
    let read = match deadline {
        Some(d) => before(d, async { Some(read.await) }).await,
        None => Some(read.await),
    };
    let (status, message) = match read {
        Some(Ok(b)) => return Ok((b, charge)),
        Some(Err(BodyFailure::OverBudget)) => {
            rx.requests.refused(RequestRefusal::BytesInFlight);
            discard(body, deadline);
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "receiver is holding its limit of {} bytes of requests in flight on this core \
                     (tailgate.max_request_bytes_in_flight_per_core); retry later",
                    rx.in_flight.limit()
                ),
            )
        }
        None => {
            rx.requests.refused(RequestRefusal::BodyTimeout);
            (
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "request body not received within {:?} (tailgate.body_timeout)",
                    rx.limits.conn.body_timeout
                ),
            )
        }
        Some(Err(BodyFailure::TooLarge)) => {
            rx.failed_requests.add(1);
            discard(body, deadline);
            (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body larger than {} bytes", rx.max_body),
            )
        }
        Some(Err(BodyFailure::Broken(e))) => {
            rx.failed_requests.add(1);
            // The connection is gone: nothing is left to read.
            return Err(plain(
                StatusCode::BAD_REQUEST,
                &format!("failed to read body: {e}"),
            ));
        }
    };
    Err(unread(plain(status, &message)))
}

/// Reads the rest of a refused request's body and throws it away (holding nothing), in its own
/// task until the body ends or `deadline`, while the answer goes out. A client still sending then
/// reads the answer: closing with its bytes unread would make the kernel reset the connection,
/// which can reach the client before the answer does (hyper only drains what it has buffered).
/// A body that stalls is dropped at the deadline, and the connection closes with it.
fn discard(mut body: Incoming, deadline: Option<Instant>) {
    let drain = async move {
        while let Some(frame) = body.frame().await {
            if frame.is_err() {
                break;
            }
        }
        Some(())
    };
    glommio::spawn_local(async move {
        match deadline {
            Some(d) => {
                before(d, drain).await;
            }
            None => {
                drain.await;
            }
        }
    })
    .detach();
}

/// Why a request body could not be read.
enum BodyFailure {
    /// Over `max_request_body_size`.
    TooLarge,
    /// The core's bytes in flight would pass the budget.
    OverBudget,
    /// The connection broke mid-body.
    Broken(hyper::Error),
}

/// Collects a body of at most `max` bytes, charging what it holds to the core's bytes in flight.
///
/// The chunks are copied into one buffer, and the charge is its capacity: what the request really
/// holds. (Keeping hyper's chunks would pin hyper's read buffers, of which a stalled request may
/// hold a small part of each.) The buffer doubles as it fills, up to `max` and up to the declared
/// `Content-Length` (trusted for the capacity only, never reserved ahead), so an honest body ends
/// in a buffer of exactly its size: the payload keeps no slack through the pipelines.
async fn read_body(
    body: &mut Incoming,
    max: usize,
    charge: &mut Charge,
) -> Result<Bytes, BodyFailure> {
    let declared = body
        .size_hint()
        .upper()
        .and_then(|n| usize::try_from(n).ok());
    let mut out: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(BodyFailure::Broken)?.into_data() else {
            continue; // trailers
        };
        let need = out.len().saturating_add(data.len());
        if need > max {
            return Err(BodyFailure::TooLarge);
        }
        if need > out.capacity() {
            let cap = declared.unwrap_or(max).min(max).max(need);
            let want = need.max(out.capacity().saturating_mul(2)).min(cap);
            charge.reach(want).map_err(|_| BodyFailure::OverBudget)?;
            out.reserve_exact(want - out.len());
        }
        out.extend_from_slice(&data);
    }
    if out.capacity() - out.len() > out.len() / 8 {
        out.shrink_to_fit();
    }
    Ok(Bytes::from(out))
}

/// Marks an answer given before the request's body was read: the connection closes after it, as
/// the unread rest of the body would otherwise be taken for the next request (or read in full).
fn unread(mut r: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
    r.headers_mut()
        .insert("connection", http::HeaderValue::from_static("close"));
    r
}

fn plain(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(format!("{message}\n"))));
    *r.status_mut() = status;
    r.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}
