//! One core's accept loop for one receiver listener: connection limit, TLS with a handshake
//! deadline, then the protocol's serve loop; every limit hit is counted.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::future;
use glommio::net::{TcpListener, TcpStream};

use super::limits::ConnLimits;
use super::metrics::ConnMetrics;
use super::otlp::grpc::{self, GrpcReceiver};
use super::otlp::http::{self, HttpReceiver};
use super::stopping::Stopping;
use crate::runtime::io::BoxIo;
use crate::runtime::time::before;

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
        let peer = stream.peer_addr().ok();
        let Some(io) = self.secure(stream, tls, deadline).await else {
            return;
        };
        match handler {
            Handler::Grpc(rx) => {
                grpc::serve_connection(io, peer, rx, &self.metrics, deadline, &self.stopping).await
            }
            Handler::Http(rx) => {
                http::serve_connection(io, peer, rx, &self.metrics, &self.stopping).await
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
