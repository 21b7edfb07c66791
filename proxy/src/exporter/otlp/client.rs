//! One h2 client connection per core per endpoint, re-dialled when it breaks or goes silent.
//!
//! A backend that stops answering without closing the connection (a stopped process whose kernel
//! still ACKs, a dead middlebox: no RST ever comes) would otherwise fail every export until TCP
//! gives up, about 15 minutes. Two rules give such a connection up so the next attempt redials:
//! - keepalive, as grpc-go's client runs it: after `time` without reading anything, PING; when
//!   nothing has been read `timeout` after the PING, the connection is dropped. With no export in
//!   flight the PING waits for the next export unless `permit_without_stream`.
//! - [`MAX_TIMEOUTS`] exports in a row that time out on one connection drop it (keepalive is off
//!   by default, as in the collector, and a peer can answer PINGs yet never a request).
//!
//! The dialer also sets `TCP_USER_TIMEOUT` (the keepalive `timeout`, else 30 s), so the kernel
//! ends a connection whose sent bytes go unacknowledged.

use std::cell::{Cell, RefCell};
use std::future::{pending, poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_lite::{future, AsyncRead, AsyncWrite};
use h2::client::SendRequest;
use http::{HeaderMap, HeaderValue, Method, Request};
use tailgate_proto::compression::{Compression as WireCompression, Encoder};
use tokio_util::compat::FuturesAsyncReadCompatExt;

use super::config::{DialTarget, Keepalive};
use super::status::{classify, code_for_http_status, ExportError};
use crate::exporter::dial::Dialer;
use crate::receiver::otlp::grpc::TRACE_EXPORT_PATH;
use crate::runtime::io::BoxIo;
use crate::telemetry::metrics::Local;
use crate::tls::ClientSetup;

/// Same windows as the receiver: the sending side limits throughput just as much.
const STREAM_WINDOW: u32 = 8 << 20;
const CONN_WINDOW: u32 = 32 << 20;

/// Exports in a row that time out on one connection before it is dropped. One timeout can be a
/// slow batch; a second in a row, with nothing answered in between, is a silent peer.
pub const MAX_TIMEOUTS: u32 = 2;

/// Why a connection was given up: the `reason` label of
/// `tailgate_exporter_connections_dropped_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Nothing was read within the keepalive `timeout` after a PING.
    Keepalive,
    /// [`MAX_TIMEOUTS`] exports in a row timed out.
    ExportTimeouts,
}

impl DropReason {
    /// Every reason, in declaration order (so `ALL[r as usize] == r`).
    pub const ALL: [DropReason; 2] = [DropReason::Keepalive, DropReason::ExportTimeouts];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            DropReason::Keepalive => "keepalive_timeout",
            DropReason::ExportTimeouts => "export_timeouts",
        }
    }
}

/// How the client talks to its endpoint.
pub struct GrpcSettings {
    /// Where to dial.
    pub target: DialTarget,
    /// `:authority` override; `host:port` when `None`.
    pub authority: Option<String>,
    /// `grpc-encoding` of the requests, with the level they are compressed at.
    pub encoder: Encoder,
    /// Configured extra headers.
    pub headers: HeaderMap,
    /// Deadline of one attempt (dial included).
    pub timeout: Duration,
    /// TLS settings; `None` dials plaintext.
    pub tls: Option<ClientSetup>,
    /// h2 PING keepalive; `None` sends no PINGs.
    pub keepalive: Option<Keepalive>,
    /// Resolves (off the core) and connects.
    pub dialer: Dialer,
    /// `tailgate_exporter_connections_dropped_total`, indexed by `DropReason as usize`.
    pub dropped: [Local; 2],
}

/// A lazily connected gRPC client for `TraceService/Export`.
pub struct Client {
    settings: GrpcSettings,
    /// `:authority` of every request.
    authority: String,
    conn: RefCell<Option<Conn>>,
    /// Serialises dialling so concurrent consumers share one connection.
    dialing: glommio::sync::Semaphore,
}

/// One dialled connection: how to open streams on it, and what its task shares with the exports.
struct Conn {
    send: SendRequest<Bytes>,
    link: Rc<Link>,
}

impl Client {
    /// A client; nothing is dialled until the first export.
    pub fn new(settings: GrpcSettings) -> Client {
        let authority = settings
            .authority
            .clone()
            .unwrap_or_else(|| format!("{}:{}", settings.target.host, settings.target.port));
        Client {
            settings,
            authority,
            conn: RefCell::new(None),
            dialing: glommio::sync::Semaphore::new(1),
        }
    }

    /// Sends one serialized `ExportTraceServiceRequest`, bounded by the exporter's timeout.
    /// Consecutive timeouts on one connection drop it ([`MAX_TIMEOUTS`]).
    pub async fn export(
        &self,
        payload: &Bytes,
        hop: Option<&HeaderValue>,
    ) -> Result<(), ExportError> {
        let timeout = self.settings.timeout;
        let used = Cell::new(None);
        let attempt = async { Some(self.export_inner(payload, hop, &used).await) };
        let outcome = match Instant::now().checked_add(timeout) {
            Some(deadline) => crate::runtime::time::before(deadline, attempt).await,
            None => attempt.await,
        };
        let link: Option<Rc<Link>> = used.take();
        match outcome {
            Some(result) => {
                if let Some(link) = link {
                    link.timeouts.set(0);
                }
                result
            }
            None => {
                if let Some(link) = link {
                    link.timed_out();
                }
                Err(ExportError::transport(format!(
                    "export timed out after {timeout:?}"
                )))
            }
        }
    }

    /// One attempt; `used` learns the connection it ran on (for the timeout rule).
    async fn export_inner(
        &self,
        payload: &Bytes,
        hop: Option<&HeaderValue>,
        used: &Cell<Option<Rc<Link>>>,
    ) -> Result<(), ExportError> {
        let body =
            tailgate_proto::grpc::encode_message(payload, self.settings.encoder).map_err(|e| {
                ExportError {
                    retryable: false,
                    throttle: None,
                    message: format!("compression failed: {e}"),
                }
            })?;
        let (sender, link) = self.sender().await?;
        used.set(Some(link.clone()));
        let _stream = link.stream_opened();
        let broken = |e| self.broken(&link, e);
        let mut sender = sender.ready().await.map_err(broken)?;
        let req = self.request(hop)?;
        let (response, mut stream) = sender.send_request(req, false).map_err(broken)?;
        stream.send_data(body, true).map_err(broken)?;
        let response = response.await.map_err(broken)?;
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

    /// The request head of one export; `hop` is the `tailgate-hop` mark of gateway-to-gateway data.
    fn request(&self, hop: Option<&HeaderValue>) -> Result<Request<()>, ExportError> {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(format!("http://{}{}", self.authority, TRACE_EXPORT_PATH))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header(
                "grpc-timeout",
                format!("{}m", self.settings.timeout.as_millis()),
            )
            .body(())
            .map_err(|e| ExportError {
                retryable: false,
                throttle: None,
                message: format!("bad request: {e}"),
            })?;
        if let Some(enc) = encoding_name(self.settings.encoder.codec()) {
            req.headers_mut()
                .insert("grpc-encoding", HeaderValue::from_static(enc));
        }
        for (k, v) in &self.settings.headers {
            req.headers_mut().insert(k.clone(), v.clone());
        }
        if let Some(hop) = hop {
            req.headers_mut()
                .insert(crate::pipeline::HOP_HEADER, hop.clone());
        }
        Ok(req)
    }

    fn broken(&self, link: &Rc<Link>, e: h2::Error) -> ExportError {
        // The connection is unusable: forget it (unless another export already replaced it) so
        // the next attempt dials again.
        let mut conn = self.conn.borrow_mut();
        if conn.as_ref().is_some_and(|c| Rc::ptr_eq(&c.link, link)) {
            conn.take();
        }
        if let Some(reason) = e.reason() {
            if reason == h2::Reason::REFUSED_STREAM {
                return ExportError::transport("stream refused by server");
            }
        }
        ExportError::transport(format!("h2: {e}"))
    }

    /// The current connection if it is still up, else a new one.
    fn current(&self) -> Option<(SendRequest<Bytes>, Rc<Link>)> {
        let mut conn = self.conn.borrow_mut();
        match conn.as_ref() {
            Some(c) if c.link.usable() => Some((c.send.clone(), c.link.clone())),
            Some(_) => {
                conn.take();
                None
            }
            None => None,
        }
    }

    async fn sender(&self) -> Result<(SendRequest<Bytes>, Rc<Link>), ExportError> {
        if let Some(c) = self.current() {
            return Ok(c);
        }
        let _permit = self
            .dialing
            .acquire_permit(1)
            .await
            .map_err(|e| ExportError::transport(format!("dial lock: {e}")))?;
        if let Some(c) = self.current() {
            return Ok(c);
        }
        let s = &self.settings;
        let (io, addr) = s
            .dialer
            .dial(&s.target.host, s.target.port, s.tls.as_ref())
            .await?;
        let link = Rc::new(Link::new());
        let io = Observed {
            io,
            link: link.clone(),
        };
        let (send, mut conn) = h2::client::Builder::new()
            .initial_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONN_WINDOW)
            .max_frame_size(1 << 20)
            .handshake::<_, Bytes>(io.compat())
            .await
            .map_err(|e| ExportError::transport(format!("h2 handshake with {addr}: {e}")))?;
        let ping = conn.ping_pong();
        let watch = watch(link.clone(), s.keepalive, ping);
        let dropped = s.dropped.clone();
        let task_link = link.clone();
        glommio::spawn_local(async move {
            let ended = future::or(async { Ok(conn.await) }, async { Err(watch.await) }).await;
            // Dropping `conn` ends the streams still open on it with an error.
            task_link.ended.set(true);
            match ended {
                Ok(Ok(())) => tracing::debug!("exporter connection to {addr} closed"),
                Ok(Err(e)) => tracing::debug!("exporter connection to {addr} ended: {e}"),
                Err(reason) => {
                    dropped[reason as usize].add(1);
                    tracing::info!(
                        reason = reason.label(),
                        "exporter connection to {addr} dropped: the backend went silent"
                    );
                }
            }
        })
        .detach();
        tracing::debug!("exporter connected to {addr}");
        *self.conn.borrow_mut() = Some(Conn {
            send: send.clone(),
            link: link.clone(),
        });
        Ok((send, link))
    }
}

// === one connection's shared state ===

/// What a connection's exports, its IO wrapper and its watchdog share.
struct Link {
    /// When bytes were last read: any frame is a sign of life, as grpc-go counts it.
    last_read: Cell<Instant>,
    /// Exports in flight on the connection.
    streams: Cell<u32>,
    /// Exports in a row that timed out on it.
    timeouts: Cell<u32>,
    /// Set by the timeout rule; the connection's task drops the connection.
    drop_requested: Cell<Option<DropReason>>,
    /// Set when the connection's task ended; the next export dials again.
    ended: Cell<bool>,
    /// The connection's task while its watchdog waits for an export or a drop request.
    waker: Cell<Option<Waker>>,
}

impl Link {
    fn new() -> Link {
        Link {
            last_read: Cell::new(Instant::now()),
            streams: Cell::new(0),
            timeouts: Cell::new(0),
            drop_requested: Cell::new(None),
            ended: Cell::new(false),
            waker: Cell::new(None),
        }
    }

    /// An export started; the guard ends it when dropped (also when the export is cancelled).
    fn stream_opened(self: &Rc<Self>) -> StreamGuard {
        let before = self.streams.get();
        self.streams.set(before + 1);
        if before == 0 {
            // A dormant keepalive waits for this.
            self.wake();
        }
        StreamGuard(self.clone())
    }

    /// Whether new exports may use the connection: not ended, and not about to be dropped.
    fn usable(&self) -> bool {
        !self.ended.get() && self.drop_requested.get().is_none()
    }

    /// An export on this connection timed out.
    fn timed_out(&self) {
        let n = self.timeouts.get().saturating_add(1);
        self.timeouts.set(n);
        if n >= MAX_TIMEOUTS {
            self.drop_requested.set(Some(DropReason::ExportTimeouts));
            self.wake();
        }
    }

    fn wake(&self) {
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    /// Resolves once `ready` holds; re-checked whenever the link wakes its task.
    fn until<'a>(&'a self, ready: impl Fn(&Link) -> bool + 'a) -> impl Future<Output = ()> + 'a {
        poll_fn(move |cx| {
            if ready(self) {
                return Poll::Ready(());
            }
            self.waker.set(Some(cx.waker().clone()));
            Poll::Pending
        })
    }
}

/// Ends an export in [`Link::streams`] when dropped.
struct StreamGuard(Rc<Link>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let l = &self.0;
        l.streams.set(l.streams.get().saturating_sub(1));
    }
}

/// The connection's IO, recording in its [`Link`] when bytes were read.
struct Observed {
    io: BoxIo,
    link: Rc<Link>,
}

impl AsyncRead for Observed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            if n > 0 {
                self.link.last_read.set(Instant::now());
            }
        }
        r
    }
}

impl AsyncWrite for Observed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_close(cx)
    }
}

// === the connection's watchdog ===

/// Resolves with the reason once the connection should be dropped: by the timeout rule, or by
/// an unanswered keepalive PING.
async fn watch(
    link: Rc<Link>,
    keepalive: Option<Keepalive>,
    ping: Option<h2::PingPong>,
) -> DropReason {
    let requested = async {
        link.until(|l| l.drop_requested.get().is_some()).await;
        link.drop_requested
            .get()
            .unwrap_or(DropReason::ExportTimeouts)
    };
    let pings = async {
        match (keepalive, ping) {
            (Some(k), Some(ping)) => keep_alive(&link, k, ping).await,
            _ => pending().await,
        }
    };
    future::or(requested, pings).await
}

/// What the keepalive does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Nothing is due before then.
    SleepUntil(Instant),
    /// Silent for `time`, but no export in flight and no `permit_without_stream`: dormant until an
    /// export starts, then PING at once (the line has been silent for `time` already), as grpc-go.
    WaitForExport,
    /// PING now.
    Ping,
    /// A `time` past `Instant`'s range: never PING.
    Never,
}

/// grpc-go's client keepalive rule, given when something was last read and the exports in flight.
fn next_step(k: &Keepalive, now: Instant, last_read: Instant, streams: u32) -> Step {
    match last_read.checked_add(k.time) {
        None => Step::Never,
        Some(quiet_until) if now < quiet_until => Step::SleepUntil(quiet_until),
        Some(_) if streams == 0 && !k.permit_without_stream => Step::WaitForExport,
        Some(_) => Step::Ping,
    }
}

/// grpc-go's client keepalive loop over [`next_step`]: [`DropReason::Keepalive`] once nothing was
/// read within `timeout` of a PING.
async fn keep_alive(link: &Link, k: Keepalive, mut ping: h2::PingPong) -> DropReason {
    loop {
        match next_step(&k, Instant::now(), link.last_read.get(), link.streams.get()) {
            Step::SleepUntil(t) => sleep_until(t).await,
            Step::WaitForExport => link.until(|l| l.streams.get() > 0).await,
            Step::Never => return pending().await,
            Step::Ping => {
                let sent = Instant::now();
                // Any bytes read since the PING are as good as its ACK (grpc-go counts reads).
                if !pong_within(&mut ping, k.timeout).await && link.last_read.get() <= sent {
                    return DropReason::Keepalive;
                }
            }
        }
    }
}

/// Sends a PING (or keeps waiting for one still unanswered) and waits `timeout` for its ACK.
async fn pong_within(ping: &mut h2::PingPong, timeout: Duration) -> bool {
    // An error means a PING is still outstanding (its ACK is awaited below) or the connection is
    // gone (then the connection's task ends on its own).
    let _ = ping.send_ping(h2::Ping::opaque());
    let pong = async {
        let _ = poll_fn(|cx| ping.poll_pong(cx)).await;
        true
    };
    let late = async {
        glommio::timer::Timer::new(timeout).await;
        false
    };
    future::or(pong, late).await
}

async fn sleep_until(deadline: Instant) {
    let now = Instant::now();
    if deadline > now {
        glommio::timer::Timer::new(deadline - now).await;
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::exporter::dial::DEFAULT_USER_TIMEOUT;
    use crate::runtime::on_test_executor;
    use crate::telemetry::metrics::{Kind, Registry};

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn keepalive_steps_follow_grpc_go() {
        let k = Keepalive {
            time: 10 * SEC,
            timeout: 5 * SEC,
            permit_without_stream: false,
        };
        let t0 = Instant::now();
        // Read recently: nothing before `time` after that read.
        assert_eq!(
            next_step(&k, t0 + 3 * SEC, t0, 1),
            Step::SleepUntil(t0 + 10 * SEC)
        );
        // Silent for `time` with an export in flight: PING.
        assert_eq!(next_step(&k, t0 + 10 * SEC, t0, 1), Step::Ping);
        // Silent and idle: dormant until an export starts, unless permit_without_stream.
        assert_eq!(next_step(&k, t0 + 10 * SEC, t0, 0), Step::WaitForExport);
        let permit = Keepalive {
            permit_without_stream: true,
            ..k
        };
        assert_eq!(next_step(&permit, t0 + 10 * SEC, t0, 0), Step::Ping);
        // A `time` past `Instant`'s range never comes (no overflow).
        let forever = Keepalive {
            time: Duration::MAX,
            ..k
        };
        assert_eq!(next_step(&forever, t0, t0, 1), Step::Never);
    }

    /// A settings block for `addr` with `keepalive` and the export `timeout`.
    fn settings(
        addr: std::net::SocketAddr,
        keepalive: Option<Keepalive>,
        timeout: Duration,
    ) -> GrpcSettings {
        let registry = Registry::new(1);
        GrpcSettings {
            target: DialTarget {
                host: addr.ip().to_string(),
                port: addr.port(),
                tls: false,
            },
            authority: None,
            encoder: Encoder::fast(WireCompression::Identity),
            headers: HeaderMap::new(),
            timeout,
            tls: None,
            keepalive,
            dialer: Dialer::new(DEFAULT_USER_TIMEOUT),
            dropped: DropReason::ALL.map(|r| {
                registry
                    .register("dropped", "", Kind::Counter, &[("reason", r.label())])
                    .local(0)
            }),
        }
    }

    /// The keepalive must count the PING ACKs of a live peer: a backend that answers PINGs but
    /// is slow with an export keeps its connection, and the export ends by its own timeout.
    #[test]
    fn a_peer_that_answers_pings_keeps_its_connection() {
        on_test_executor(async {
            let listener = glommio::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            // An h2 server that takes requests and never answers them (h2 ACKs PINGs itself).
            let server = glommio::spawn_local(async move {
                let tcp = listener.accept().await.unwrap();
                let mut conn = h2::server::handshake(tcp.compat()).await.unwrap();
                let mut held = Vec::new();
                while let Some(Ok(request)) = conn.accept().await {
                    held.push(request);
                }
            })
            .detach();
            let keepalive = Keepalive {
                time: Duration::from_millis(20),
                timeout: Duration::from_millis(200),
                permit_without_stream: false,
            };
            // Many PING rounds fit in the export's timeout.
            let client = Client::new(settings(addr, Some(keepalive), Duration::from_millis(500)));
            let err = client
                .export(&Bytes::from_static(b"x"), None)
                .await
                .unwrap_err();
            assert!(err.message.contains("timed out"), "{}", err.message);
            let conn = client.conn.borrow();
            let link = &conn.as_ref().expect("the connection was kept").link;
            assert!(!link.ended.get());
            assert_eq!(link.timeouts.get(), 1);
            assert!(link.drop_requested.get().is_none());
            drop(server);
        });
    }
}
