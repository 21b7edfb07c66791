//! One core's accept loop for one receiver listener: connection limit, TLS with a handshake
//! deadline, then the protocol's serve loop; every limit hit is counted.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::future;
use glommio::net::{TcpListener, TcpStream};

use super::limits::ConnLimits;
use super::otlp::grpc::{self, GrpcReceiver};
use super::otlp::http::{self, HttpReceiver};
use super::stopping::Stopping;
use super::watch::Reason;
use crate::runtime::io::BoxIo;
use crate::telemetry::metrics::{Kind, Local, Registry};

/// Counters of one listener on one core.
pub struct ConnMetrics {
    /// `otelcol_receiver_open_connections` (gauge).
    pub open: Local,
    /// `otelcol_receiver_connections_refused_total{reason="max_connections"}`.
    pub refused_max_connections: Local,
    /// `..._refused_total{reason="handshake_timeout"}`.
    pub handshake_timeout: Local,
    /// `..._refused_total{reason="handshake_failed"}`: TLS errors, no HTTP/2 preface.
    pub handshake_failed: Local,
    /// `otelcol_receiver_connections_closed_total{reason}`, indexed like [`Reason::ALL`].
    closed: Vec<Option<Local>>,
    /// `otelcol_receiver_refused_streams_total`: streams h2 answered itself (gRPC only).
    pub refused_streams: Option<Local>,
}

impl ConnMetrics {
    /// Registers the series of `receiver`'s `transport` listener for `core`.
    pub fn register(registry: &Registry, core: usize, receiver: &str, transport: &str) -> Self {
        let grpc = transport == "grpc";
        let m = |name: &str, help, kind, reason: Option<&str>| {
            let mut labels = vec![("receiver", receiver), ("transport", transport)];
            if let Some(r) = reason {
                labels.push(("reason", r));
            }
            registry.register(name, help, kind, &labels).local(core)
        };
        let refused = |reason| {
            m(
                "otelcol_receiver_connections_refused_total",
                "Connections closed before being served: over the per-core limit, or handshake too slow or broken (tailgate).",
                Kind::Counter,
                Some(reason),
            )
        };
        let closed = Reason::ALL
            .iter()
            .map(|r| {
                let applies = if grpc {
                    r.applies_to_grpc()
                } else {
                    r.applies_to_http()
                };
                applies.then(|| {
                    m(
                        "otelcol_receiver_connections_closed_total",
                        "Connections closed (or sent GOAWAY) by a receiver limit (tailgate).",
                        Kind::Counter,
                        Some(r.label()),
                    )
                })
            })
            .collect();
        ConnMetrics {
            open: m(
                "otelcol_receiver_open_connections",
                "Connections being served (tailgate).",
                Kind::Gauge,
                None,
            ),
            refused_max_connections: refused("max_connections"),
            handshake_timeout: refused("handshake_timeout"),
            handshake_failed: refused("handshake_failed"),
            closed,
            refused_streams: grpc.then(|| {
                m(
                    "otelcol_receiver_refused_streams_total",
                    "HTTP/2 streams answered by h2 without reaching tailgate: over max_concurrent_streams, headers over max_header_list_size, malformed or reset before being read (tailgate).",
                    Kind::Counter,
                    None,
                )
            }),
        }
    }

    /// Counts a connection closed by `reason`.
    pub fn closed(&self, reason: Reason) {
        if let Some(Some(c)) = Reason::ALL
            .iter()
            .position(|r| *r == reason)
            .and_then(|i| self.closed.get(i))
        {
            c.add(1);
        }
    }
}

/// What serves an accepted connection.
#[derive(Clone)]
pub enum Handler {
    /// OTLP/gRPC.
    Grpc(Rc<GrpcReceiver>),
    /// OTLP/HTTP.
    Http(Rc<HttpReceiver>),
}

/// The TLS acceptor of a listener; the server config is read anew per connection so rotated
/// certificates apply to new connections (see `tls.rs`).
pub type Tls = Option<futures_rustls::TlsAcceptor>;

/// Accepts until `shutdown`, serving each connection in its own task; then tells the open
/// connections to end gracefully (GOAWAY / close when idle) and returns when they have.
pub async fn accept_loop(
    listener: TcpListener,
    handler: Handler,
    tls: Tls,
    limits: ConnLimits,
    metrics: Rc<ConnMetrics>,
    shutdown: Arc<crate::runtime::stop::Shutdown>,
) {
    let open = Rc::new(Cell::new(0u32));
    let stopping = Rc::new(Stopping::default());
    loop {
        let next = future::or(async { Some(listener.accept().await) }, async {
            shutdown.wait().await;
            None
        })
        .await;
        match next {
            None => {
                stopping.stop();
                // Returns once every connection has ended; shutdown bounds the wait.
                while open.get() > 0 {
                    glommio::timer::Timer::new(Duration::from_millis(20)).await;
                }
                return;
            }
            Some(Ok(stream)) => {
                if open.get() >= limits.max_connections {
                    // Closing at once (not leaving it in the backlog) lets the client retry,
                    // possibly on a core with room.
                    metrics.refused_max_connections.add(1);
                    drop(stream);
                    continue;
                }
                let _ = stream.set_nodelay(true);
                let conn = Conn::new(open.clone(), metrics.clone(), stopping.clone());
                let (handler, tls) = (handler.clone(), tls.clone());
                glommio::spawn_local(async move { conn.serve(stream, handler, tls, limits).await })
                    .detach();
            }
            Some(Err(e)) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!("accept failed: {e}");
                glommio::timer::Timer::new(Duration::from_millis(50)).await;
            }
        }
    }
}

/// One accepted connection's place in the open count (given back on drop).
struct Conn {
    open: Rc<Cell<u32>>,
    metrics: Rc<ConnMetrics>,
    stopping: Rc<Stopping>,
}

impl Conn {
    /// Takes a place (at accept time, so a burst of accepts cannot overshoot the limit).
    fn new(open: Rc<Cell<u32>>, metrics: Rc<ConnMetrics>, stopping: Rc<Stopping>) -> Conn {
        open.set(open.get() + 1);
        metrics.open.add(1);
        Conn {
            open,
            metrics,
            stopping,
        }
    }

    async fn serve(self, stream: TcpStream, handler: Handler, tls: Tls, limits: ConnLimits) {
        let deadline = Instant::now() + limits.handshake_timeout;
        let Some(io) = self.secure(stream, tls, deadline).await else {
            return;
        };
        match handler {
            Handler::Grpc(rx) => {
                grpc::serve_connection(io, rx, &self.metrics, deadline, &self.stopping).await
            }
            Handler::Http(rx) => {
                http::serve_connection(io, rx, &self.metrics, &self.stopping).await
            }
        }
    }

    /// Wraps the stream in TLS when configured; `None` when the handshake fails or misses the
    /// deadline (a client that connects and stalls must not hold a task forever).
    async fn secure(&self, stream: TcpStream, tls: Tls, deadline: Instant) -> Option<BoxIo> {
        let Some(acceptor) = tls else {
            return Some(Box::new(stream));
        };
        let handshake = async { Some(acceptor.accept(stream).await) };
        match before(deadline, handshake).await {
            Some(Ok(s)) => Some(Box::new(s)),
            Some(Err(e)) => {
                tracing::debug!("TLS handshake failed: {e}");
                self.metrics.handshake_failed.add(1);
                None
            }
            None => {
                self.metrics.handshake_timeout.add(1);
                None
            }
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.open.set(self.open.get().saturating_sub(1));
        self.metrics.open.sub(1);
    }
}

/// `fut`'s output, or `None` once `deadline` has passed.
pub async fn before<T>(
    deadline: Instant,
    fut: impl std::future::Future<Output = Option<T>>,
) -> Option<T> {
    let late = async {
        let now = Instant::now();
        if deadline > now {
            glommio::timer::Timer::new(deadline - now).await;
        }
        None
    };
    future::or(fut, late).await
}
