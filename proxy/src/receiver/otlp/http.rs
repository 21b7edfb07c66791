//! OTLP/HTTP server: hyper 1 `http1` over a glommio `TcpStream`, `POST /v1/traces` with protobuf or
//! JSON bodies, optionally gzip/zstd/snappy encoded (`tailgate_proto::json::decode_body`).
//!
//! Status codes follow the collector's otlpreceiver: 200 with an empty ExportTraceServiceResponse,
//! 400 for bodies that do not decode (including a span pdata cannot unmarshal, such as an 8-byte
//! trace id: the whole request is refused, naming the span), 413 over `max_request_body_size` or
//! over the JSON decode budget (`tailgate_proto::json::JsonBudget`), 415 for other content types,
//! 404 for other paths, 405 for other methods, 503 when a memory_limiter refuses (clients retry).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;
use futures_lite::future;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tailgate_proto::error::{BodyError, JsonError, JsonErrorKind};
use tailgate_proto::json::{decode_body, BodyFormat};

use crate::pipeline::wire::{self, RequestError};
use crate::pipeline::{Consumer, Metadata, Payload};
use crate::receiver::limits::HttpLimits;
use crate::receiver::metadata_headers;
use crate::receiver::metrics::ConnMetrics;
use crate::receiver::stopping::Stopping;
use crate::receiver::watch::{self, Action, Activity, Phase, Reason, Watched};
use crate::runtime::io::{BoxIo, Unzeroed};
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
    let received = Instant::now();
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
    let body = match Limited::new(req.into_body(), rx.max_body).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            rx.failed_requests.add(1);
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                return plain(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!("body larger than {} bytes", rx.max_body),
                );
            }
            return plain(
                StatusCode::BAD_REQUEST,
                &format!("failed to read body: {e}"),
            );
        }
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
            received: Some(received),
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

fn plain(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(format!("{message}\n"))));
    *r.status_mut() = status;
    r.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}
