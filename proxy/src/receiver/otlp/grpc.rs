//! OTLP/gRPC server: h2 over a glommio `TcpStream`, one task per connection and per stream.
//!
//! Only `TraceService/Export` is served; the metrics and logs services get UNIMPLEMENTED. Status
//! codes follow grpc-go's server (what the collector runs): framing, decompression and structural
//! decoding failures are INTERNAL, oversize messages RESOURCE_EXHAUSTED, memory_limiter refusals
//! UNAVAILABLE. A request holding a span the collector's pdata cannot unmarshal (a trace id of 8
//! bytes, say) is refused whole with INVALID_ARGUMENT, the OTLP specification's non-retryable code
//! for bad data, where the collector answers INTERNAL from grpc-go's codec.
//!
//! tailgate's own limits on a stream (docs/proxy.md, "Receiver limits"): a memory_limiter that is
//! refusing is asked before the body is read (UNAVAILABLE), every chunk read is charged to the
//! core's bytes in flight (UNAVAILABLE past `max_request_bytes_in_flight_per_core`), and the whole
//! body is due `body_timeout` after the stream started (DEADLINE_EXCEEDED). Each answers with a
//! status, after which h2 resets the unread rest of the stream (RST_STREAM NO_ERROR).

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;
use futures_lite::future;
use h2::server::SendResponse;
use http::{HeaderMap, HeaderValue, Request, Response};
use tailgate_proto::compression::Compression;
use tailgate_proto::error::{DecompressErrorKind, FrameError, FrameErrorKind};
use tailgate_proto::grpc::{self, Deframer};

use crate::pipeline::wire::{self, RequestError};
use crate::pipeline::{Consumer, Hop, Metadata, Payload, Refusal, HOP_HEADER};
use crate::processor::tail_sampling::mark::MarkedEntry;
use crate::receiver::in_flight::{Charge, InFlight};
use crate::receiver::limits::GrpcLimits;
use crate::receiver::metadata_headers;
use crate::receiver::metrics::{ConnMetrics, RequestMetrics, RequestRefusal};
use crate::receiver::stopping::Stopping;
use crate::receiver::watch::{self, Action, Activity, Phase, Reason, Watched};
use crate::runtime::io::{BoxIo, Unzeroed};
use crate::runtime::time::before;
use crate::telemetry::metrics::Local;

/// The one method served.
pub const TRACE_EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// gRPC status codes used here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Code {
    /// Success.
    Ok = 0,
    /// Bad request content.
    InvalidArgument = 3,
    /// The body did not arrive in time (`tailgate.body_timeout`).
    DeadlineExceeded = 4,
    /// Too large.
    ResourceExhausted = 8,
    /// The request cannot be served here (gateway-to-gateway data on a receiver without
    /// membership); not retried.
    FailedPrecondition = 9,
    /// Unknown method or encoding.
    Unimplemented = 12,
    /// Broken framing or compression.
    Internal = 13,
    /// Try again later.
    Unavailable = 14,
}

/// Settings and counters one core's gRPC receiver needs.
pub struct GrpcReceiver {
    /// The pipelines fed (a fan-out when the receiver is in several).
    pub next: Rc<dyn Consumer>,
    /// Where data marked by another gateway goes (`tailgate-hop`): the `tail_sampling` that set
    /// `membership`, behind its member gate. `None`: marked requests are refused.
    pub marked: Option<Rc<MarkedEntry>>,
    /// Largest decoded message.
    pub max_message: usize,
    /// Streams, idle, age and keepalive limits.
    pub limits: GrpcLimits,
    /// `otelcol_receiver_accepted_spans_total{transport="grpc"}`.
    pub accepted: Local,
    /// `otelcol_receiver_refused_spans_total{transport="grpc"}`.
    pub refused: Local,
    /// `include_metadata`: keep the request headers as client metadata.
    pub include_metadata: bool,
    /// Requests answered with an error before their spans could be counted.
    pub failed_requests: Local,
    /// Requests refused by a limit (by reason), and the bytes-in-flight gauges.
    pub requests: RequestMetrics,
    /// This core's budget of request bytes in flight for this listener.
    pub in_flight: Rc<InFlight>,
}

/// h2 windows measured in DESIGN.md: 8 MiB per stream / 32 MiB per connection roughly double the
/// receive rate of 1000-span requests over h2's 64 KiB defaults.
const STREAM_WINDOW: u32 = 8 << 20;
const CONN_WINDOW: u32 = 32 << 20;
const MAX_FRAME: u32 = 1 << 20;

/// Serves one connection until the peer closes it, breaks the protocol or a limit ends it. The
/// HTTP/2 preface must arrive before `deadline` (the handshake timeout). When the process stops, a
/// GOAWAY tells the client to go elsewhere while streams in flight finish (grpc-go `GracefulStop`).
pub async fn serve_connection(
    stream: BoxIo,
    peer: Option<SocketAddr>,
    rx: Rc<GrpcReceiver>,
    metrics: &ConnMetrics,
    deadline: Instant,
    stopping: &Stopping,
) {
    let limits = rx.limits;
    let mut builder = h2::server::Builder::new();
    builder
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONN_WINDOW)
        .max_frame_size(MAX_FRAME)
        .max_header_list_size(limits.conn.max_header_list_size)
        .max_send_buffer_size(1 << 20)
        .max_concurrent_streams(limits.max_concurrent_streams);
    let activity = Activity::new(Phase::Busy);
    let io = Unzeroed::new(Watched::new(stream, activity.clone()));
    let handshake = async { Some(builder.handshake::<_, Bytes>(io).await) };
    let mut conn = match before(deadline, handshake).await {
        Some(Ok(c)) => c,
        Some(Err(e)) => {
            tracing::debug!("h2 handshake failed: {e}");
            metrics.handshake_failed.add(1);
            return;
        }
        None => {
            metrics.handshake_timeout.add(1);
            return;
        }
    };
    // Dropped with this function, which cancels it.
    let _watchdog = glommio::spawn_local(watch::grpc(activity.clone(), limits, conn.ping_pong()));
    let mut last_id = 0u32;
    let slot = stopping.slot();
    let mut told_to_stop = false;
    loop {
        let stop = async {
            if told_to_stop {
                future::pending::<()>().await;
            }
            stopping.wait(&slot).await;
            Event::Stop
        };
        let limit = async { Event::Limit(activity.next_action().await) };
        let next = future::or(
            async { Event::Stream(conn.accept().await) },
            future::or(limit, stop),
        )
        .await;
        match next {
            Event::Stream(Some(Ok((req, respond)))) => {
                // Client stream ids rise by 2; a gap is a stream h2 answered itself.
                let id = u32::from(respond.stream_id());
                let skipped = id.saturating_sub(last_id) / 2;
                if skipped > 1 {
                    if let Some(c) = &metrics.refused_streams {
                        c.add(u64::from(skipped - 1));
                    }
                }
                last_id = id;
                let guard = activity.stream_opened();
                let rx = rx.clone();
                glommio::spawn_local(async move {
                    handle_stream(req, respond, &rx, peer).await;
                    drop(guard);
                })
                .detach();
            }
            Event::Stream(Some(Err(e))) => {
                tracing::debug!("h2 connection ended: {e}");
                return;
            }
            Event::Stream(None) => return,
            Event::Stop => {
                told_to_stop = true;
                conn.graceful_shutdown();
            }
            Event::Limit(Action::GoAway(reason)) => {
                metrics.closed(reason);
                conn.graceful_shutdown();
            }
            Event::Limit(Action::Close(reason)) => {
                // After a GOAWAY the reason was counted already.
                if reason == Reason::KeepaliveTimeout {
                    metrics.closed(reason);
                }
                return;
            }
        }
    }
}

enum Event<T> {
    Stream(Option<Result<T, h2::Error>>),
    Limit(Action),
    Stop,
}

async fn handle_stream(
    req: Request<h2::RecvStream>,
    mut respond: SendResponse<Bytes>,
    rx: &GrpcReceiver,
    peer: Option<SocketAddr>,
) {
    let started = Instant::now();
    let hop = match req.headers().get(HOP_HEADER) {
        None => None,
        Some(value) => match admit_mark(rx, value.as_bytes(), peer) {
            Ok(hop) => Some(hop),
            Err((code, message)) => {
                rx.failed_requests.add(1);
                return send_status(&mut respond, code, &message);
            }
        },
    };
    let meta = Metadata {
        client: peer,
        received: Some(started),
        headers: rx.include_metadata.then(|| metadata_headers(req.headers())),
        hop,
    };
    // The whole body is due `body_timeout` after the stream started; dropping `receive` on the
    // deadline drops the body (h2 resets the stream once the status is sent) and the charge.
    let deadline = started.checked_add(rx.limits.conn.body_timeout);
    let received = match deadline {
        Some(d) => before(d, async { Some(receive(req, rx).await) }).await,
        None => Some(receive(req, rx).await),
    };
    let failure = match received {
        Some(Ok(data)) => return consume(Payload { meta, ..data }, rx, &mut respond),
        Some(Err(f)) => f,
        None => Failure::Refused(
            RequestRefusal::BodyTimeout,
            Code::DeadlineExceeded,
            format!(
                "request body not received within {:?} (tailgate.body_timeout)",
                rx.limits.conn.body_timeout
            ),
        ),
    };
    let (code, message) = match failure {
        Failure::Bad(code, message) => {
            rx.failed_requests.add(1);
            (code, message)
        }
        Failure::Refused(reason, code, message) => {
            rx.requests.refused(reason);
            (code, message)
        }
        Failure::InvalidSpans(spans, message) => {
            rx.refused.add(spans);
            (Code::InvalidArgument, message)
        }
    };
    send_status(&mut respond, code, &message);
}

/// Checks a `tailgate-hop` mark before the body is read: the status and message to refuse with.
/// Refusals a retry may cure (a new member not yet listed, a newer mark version) are UNAVAILABLE.
fn admit_mark(
    rx: &GrpcReceiver,
    value: &[u8],
    peer: Option<SocketAddr>,
) -> Result<Hop, (Code, String)> {
    let Some(entry) = &rx.marked else {
        return Err((
            Code::FailedPrecondition,
            "gateway-to-gateway data, but this receiver feeds no tail_sampling with membership"
                .to_owned(),
        ));
    };
    entry.admit(value, peer).map_err(|(reason, message)| {
        let code = if reason.retryable() {
            Code::Unavailable
        } else {
            Code::InvalidArgument
        };
        (code, message)
    })
}

/// Hands a request's spans to the pipelines (marked data: to the membership's stage) and answers.
fn consume(data: Payload, rx: &GrpcReceiver, respond: &mut SendResponse<Bytes>) {
    let spans = data.items;
    let next = match (&data.meta.hop, &rx.marked) {
        (Some(_), Some(entry)) => &entry.next,
        _ => &rx.next,
    };
    match next.consume(data) {
        Ok(()) => {
            rx.accepted.add(spans);
            send_ok(respond);
        }
        Err(r) => {
            rx.refused.add(spans);
            let code = match r {
                Refusal::MemoryLimited
                | Refusal::QueueFull
                | Refusal::NoRoute
                | Refusal::TooManyBatches
                | Refusal::ShuttingDown
                | Refusal::Overloaded => Code::Unavailable,
            };
            send_status(respond, code, r.message());
        }
    }
}

/// Why a request was not taken: answered with the status, counted as a failed request (`Bad`),
/// as refused by a limit with its reason (`Refused`), or as refused spans (`InvalidSpans`: a span
/// pdata cannot unmarshal refuses the whole request, INVALID_ARGUMENT).
enum Failure {
    Bad(Code, String),
    Refused(RequestRefusal, Code, String),
    InvalidSpans(u64, String),
}

impl From<(Code, String)> for Failure {
    fn from((code, message): (Code, String)) -> Self {
        Failure::Bad(code, message)
    }
}

/// Reads and checks one request; the error is the status to answer with.
async fn receive(req: Request<h2::RecvStream>, rx: &GrpcReceiver) -> Result<Payload, Failure> {
    let path = req.uri().path();
    if path != TRACE_EXPORT_PATH {
        let what = if path.starts_with("/opentelemetry.proto.collector.metrics.")
            || path.starts_with("/opentelemetry.proto.collector.logs.")
        {
            "tailgate forwards traces only; metrics and logs are not implemented"
        } else {
            "unknown method"
        };
        return Err((Code::Unimplemented, format!("{what}: {path}")).into());
    }
    let encoding = match req
        .headers()
        .get("grpc-encoding")
        .map(|v| v.to_str().unwrap_or("?"))
    {
        None => Compression::Identity,
        Some(name) => Compression::from_name(name).ok_or_else(|| {
            (
                Code::Unimplemented,
                format!("grpc: decompressor is not installed for grpc-encoding {name:?}"),
            )
        })?,
    };
    // Asked before the body is read: a request the pipelines would refuse costs no bytes.
    if let Err(r) = rx.next.ready() {
        return Err(Failure::Refused(
            RequestRefusal::from_pipeline(r),
            Code::Unavailable,
            r.message().to_owned(),
        ));
    }
    // Held until the message is decoded (dropped with this function).
    let mut charge = rx.in_flight.charge();
    let message = read_message(req.into_body(), rx, &mut charge).await?;
    let payload = message
        .decode(encoding, rx.max_message)
        .map_err(|e| match e {
            grpc::MessageError::Decompress(d) if d.kind == DecompressErrorKind::Oversize => (
                Code::ResourceExhausted,
                format!(
                    "grpc: received message after decompression larger than max ({})",
                    rx.max_message
                ),
            ),
            other => (
                Code::Internal,
                format!("grpc: failed to decompress the received message: {other}"),
            ),
        })?;
    let spans = wire::check_spans(&payload).map_err(|e| match e {
        RequestError::Malformed(e) => Failure::Bad(
            Code::Internal,
            format!("grpc: error unmarshalling request: {e}"),
        ),
        RequestError::InvalidSpan { spans, .. } => Failure::InvalidSpans(
            spans as u64,
            format!("{e}; all {spans} spans of the request refused"),
        ),
    })?;
    Ok(Payload::traces(payload, spans))
}

/// Reads the stream's one message, charging what it holds to the core's bytes in flight.
async fn read_message(
    mut body: h2::RecvStream,
    rx: &GrpcReceiver,
    charge: &mut Charge,
) -> Result<grpc::Message, Failure> {
    let mut deframer = Deframer::new(rx.max_message);
    let mut message: Option<grpc::Message> = None;
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(|e| (Code::Internal, format!("stream error: {e}")))?;
        let len = chunk.len();
        deframer.push(chunk);
        while let Some(m) = deframer
            .next_message()
            .map_err(|e| frame_status(e, rx.max_message))?
        {
            if message.is_some() {
                return Err((
                    Code::Unimplemented,
                    "more than one message on a unary method".to_owned(),
                )
                    .into());
            }
            message = Some(m);
        }
        // An incomplete message is held in a buffer of its declared size (reserved, so charged
        // whole); a complete one until it is decoded.
        let holds = deframer.held() + message.as_ref().map_or(0, |m| m.payload.len());
        if charge.reach(holds).is_err() {
            return Err(Failure::Refused(
                RequestRefusal::BytesInFlight,
                Code::Unavailable,
                format!(
                    "receiver is holding its limit of {} bytes of requests in flight on this \
                     core (tailgate.max_request_bytes_in_flight_per_core); retry later",
                    rx.in_flight.limit()
                ),
            ));
        }
        let _ = body.flow_control().release_capacity(len);
    }
    deframer
        .finish()
        .map_err(|e| frame_status(e, rx.max_message))?;
    message.ok_or_else(|| Failure::Bad(Code::Internal, "grpc: request has no message".to_owned()))
}

fn frame_status(e: FrameError, max: usize) -> (Code, String) {
    if e.kind == FrameErrorKind::Oversize {
        (
            Code::ResourceExhausted,
            format!("grpc: received message larger than max ({max} bytes)"),
        )
    } else {
        (Code::Internal, format!("grpc: {e}"))
    }
}

fn grpc_headers() -> Response<()> {
    let mut r = Response::new(());
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/grpc"));
    r.headers_mut().insert(
        "grpc-accept-encoding",
        HeaderValue::from_static("identity,gzip,zstd,snappy"),
    );
    r
}

/// An empty `ExportTraceServiceResponse` (no partial_success) and status OK in the trailers.
fn send_ok(respond: &mut SendResponse<Bytes>) {
    let Ok(mut stream) = respond.send_response(grpc_headers(), false) else {
        return;
    };
    let _ = stream.send_data(Bytes::from_static(&[0, 0, 0, 0, 0]), false);
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    let _ = stream.send_trailers(trailers);
}

/// A trailers-only error response.
fn send_status(respond: &mut SendResponse<Bytes>, code: Code, message: &str) {
    let mut r = grpc_headers();
    r.headers_mut()
        .insert("grpc-status", HeaderValue::from((code as u8) as u16));
    if let Ok(v) = HeaderValue::from_str(&percent_encode(message)) {
        r.headers_mut().insert("grpc-message", v);
    }
    let _ = respond.send_response(r, true);
}

/// grpc-message is percent-encoded (gRPC spec: bytes outside 0x20..0x7E and '%').
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
