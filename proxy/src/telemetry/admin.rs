//! The admin endpoints: `/metrics` on `service.telemetry.metrics`, the `prometheus` exporter's
//! `/metrics`, and the `health_check` extension (liveness at its `path`, readiness at
//! `tailgate.readiness_path`).
//!
//! Each listener runs on an ordinary thread of its own, off the data-plane cores, driving a small
//! current-thread tokio runtime: every connection is a task, so a client that trickles its request
//! or reads its answer slowly holds only its own task while probes and scrapes are answered beside
//! it. A connection has [`REQUEST_DEADLINE`] from accept for its whole request head (not per read: a
//! byte every half second would renew a per-read timeout forever) and [`WRITE_TIMEOUT`] for the
//! answer; at most [`MAX_CONNECTIONS`] are open per listener, and a new one closes the oldest, so a
//! flood of idle connections cannot lock probes out. The thread blocks in `accept` when idle.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::metrics::Registry;
use crate::extension::health_check::config::ResponseBody;
use crate::runtime::stop::Shutdown;

/// Connections one admin listener serves at once; accepting one more closes the oldest.
pub const MAX_CONNECTIONS: usize = 32;
/// Time a client has, from accept, to send its whole request head.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(5);
/// Time the answer may take to be written (a large exposition to a slow scraper).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head read; a scrape or probe head is a few hundred bytes.
const MAX_HEAD: usize = 8192;

/// Renders `/metrics` for an `Accept` header value: (content type, body).
pub type NegotiatedRender = dyn Fn(&str) -> (&'static str, Vec<u8>) + Send + Sync;

/// What an admin listener answers.
#[derive(Clone)]
pub enum Endpoint {
    /// Prometheus text at `/metrics`.
    Metrics(Arc<Registry>),
    /// Prometheus text at `/metrics`, rendered by a component.
    Text(Arc<dyn Fn() -> String + Send + Sync>),
    /// `/metrics` in the format the request's `Accept` header asks for: the component gets the
    /// header's value and returns the content type and the body (the `prometheus` exporter).
    Negotiated(Arc<NegotiatedRender>),
    /// The `health_check` extension.
    Health(Arc<Health>),
}

/// The `health_check` extension's two answers.
///
/// Liveness (the collector's `path`, default `/`): 200 from the moment the cores run until the
/// process exits, drain included, so a kubelet never kills a pod that is still flushing what it
/// holds. Readiness (`readiness_path`, default `/ready`): 200 only while running and not draining,
/// so traffic moves away as soon as SIGTERM arrives. Both answer 503 during start-up.
pub struct Health {
    /// Liveness path: the extension's `path`.
    pub path: String,
    /// Readiness path: the extension's `tailgate.readiness_path`.
    pub readiness_path: String,
    /// The extension's `response_body` (custom bodies instead of the JSON status).
    pub bodies: Option<ResponseBody>,
    /// Set once every core runs.
    pub running: Arc<AtomicBool>,
    /// The process-wide stop request: set when draining starts.
    pub shutdown: Arc<Shutdown>,
    /// Process start, for the `uptime` in the JSON body.
    pub since: Instant,
}

impl Health {
    /// The answer for `path`, or `None` when it is neither health path.
    fn answer(&self, path: &str) -> Option<Answer> {
        let running = self.running.load(Ordering::Relaxed);
        let up = if path == self.path {
            running
        } else if path == self.readiness_path {
            running && !self.shutdown.is_set()
        } else {
            return None;
        };
        let status = if up {
            "200 OK"
        } else {
            "503 Service Unavailable"
        };
        Some(match &self.bodies {
            Some(b) => {
                let body = if up { &b.healthy } else { &b.unhealthy };
                Answer::new(
                    status,
                    "text/plain; charset=utf-8",
                    body.clone().into_bytes(),
                )
            }
            None => {
                let word = if up { "available" } else { "not available" };
                let secs = self.since.elapsed().as_secs();
                let body = format!("{{\"status\":\"Server {word}\",\"uptime\":\"{secs}s\"}}");
                Answer::new(status, "application/json", body.into_bytes())
            }
        })
    }
}

/// Why one admin connection ended without an answer.
#[derive(Debug, thiserror::Error)]
enum AdminError {
    #[error("request head not complete within {REQUEST_DEADLINE:?} of accept")]
    RequestDeadline,
    #[error("answer not written within {WRITE_TIMEOUT:?}")]
    WriteTimeout,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Serves `endpoint` on `listener` until `stop` is set (checked after each accepted connection).
///
/// Nobody joins the thread: after `stop` it ends with the next connection or with the process.
pub fn serve(
    listener: std::net::TcpListener,
    endpoint: Endpoint,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    listener.set_nonblocking(true)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    let listener = {
        let _context = runtime.enter();
        tokio::net::TcpListener::from_std(listener)?
    };
    std::thread::Builder::new()
        .name("tailgate-admin".to_owned())
        .spawn(move || runtime.block_on(accept_loop(listener, Arc::new(endpoint), stop)))
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    endpoint: Arc<Endpoint>,
    stop: Arc<AtomicBool>,
) {
    let mut open = Open::default();
    while !stop.load(Ordering::Relaxed) {
        match listener.accept().await {
            Ok((stream, _)) => {
                let endpoint = endpoint.clone();
                open.admit(tokio::spawn(async move {
                    if let Err(e) = handle(stream, &endpoint).await {
                        tracing::debug!("admin request failed: {e}");
                    }
                }));
            }
            Err(e) => {
                // EMFILE and the like: back off instead of spinning on the error.
                tracing::warn!("admin accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// The connection tasks of one listener, oldest first.
#[derive(Default)]
struct Open(VecDeque<tokio::task::JoinHandle<()>>);

impl Open {
    /// Keeps `task`, closing the oldest open connection if that makes more than [`MAX_CONNECTIONS`].
    fn admit(&mut self, task: tokio::task::JoinHandle<()>) {
        self.0.retain(|t| !t.is_finished());
        while self.0.len() >= MAX_CONNECTIONS {
            if let Some(oldest) = self.0.pop_front() {
                tracing::debug!("admin connection limit reached: closing the oldest connection");
                oldest.abort();
            }
        }
        self.0.push_back(task);
    }
}

async fn handle(mut stream: TcpStream, endpoint: &Endpoint) -> Result<(), AdminError> {
    let head = tokio::time::timeout(REQUEST_DEADLINE, read_head(&mut stream))
        .await
        .map_err(|_| AdminError::RequestDeadline)??;
    let answer = answer(&String::from_utf8_lossy(&head), endpoint);
    tokio::time::timeout(WRITE_TIMEOUT, answer.write(&mut stream))
        .await
        .map_err(|_| AdminError::WriteTimeout)??;
    Ok(())
}

/// Reads until the end of the request head, [`MAX_HEAD`] bytes, or EOF.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while buf.len() < MAX_HEAD {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        // Only the new bytes (and the 3 before them) can complete the terminator.
        let from = buf.len().saturating_sub(3);
        buf.extend_from_slice(&chunk[..n]);
        if buf[from..].windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    Ok(buf)
}

/// One HTTP answer; the connection closes after it.
#[derive(Debug)]
struct Answer {
    status: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
    head_only: bool,
}

impl Answer {
    fn new(status: &'static str, content_type: &'static str, body: Vec<u8>) -> Answer {
        Answer {
            status,
            content_type,
            body,
            head_only: false,
        }
    }

    fn text(status: &'static str, body: &str) -> Answer {
        Answer::new(status, "text/plain", body.as_bytes().to_vec())
    }

    async fn write(&self, stream: &mut TcpStream) -> std::io::Result<()> {
        let head = format!(
            "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.status,
            self.content_type,
            self.body.len()
        );
        stream.write_all(head.as_bytes()).await?;
        if !self.head_only {
            stream.write_all(&self.body).await?;
        }
        stream.shutdown().await
    }
}

/// The value of the request head's `Accept` header ("" when absent).
fn accept_header(head: &str) -> &str {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("accept"))
        .map_or("", |(_, v)| v.trim())
}

/// What `endpoint` answers to the request `head`.
fn answer(head: &str, endpoint: &Endpoint) -> Answer {
    let mut parts = head.split_whitespace();
    let method = parts.next().unwrap_or("");
    let target = parts.next().unwrap_or("");
    let path = target.split('?').next().unwrap_or("");
    if method != "GET" && method != "HEAD" {
        return Answer::text("405 Method Not Allowed", "method not allowed\n");
    }
    const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
    let not_found = || Answer::text("404 Not Found", "not found\n");
    let mut out = match endpoint {
        Endpoint::Metrics(reg) if path == "/metrics" => {
            let mut body = reg.render();
            super::process::render(&mut body, &super::process::read());
            Answer::new("200 OK", PROMETHEUS_TEXT, body.into_bytes())
        }
        Endpoint::Text(render) if path == "/metrics" => {
            Answer::new("200 OK", PROMETHEUS_TEXT, render().into_bytes())
        }
        Endpoint::Negotiated(render) if path == "/metrics" => {
            let (content_type, body) = render(accept_header(head));
            Answer::new("200 OK", content_type, body)
        }
        Endpoint::Health(h) => h.answer(path).unwrap_or_else(not_found),
        _ => not_found(),
    };
    out.head_only = method == "HEAD";
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn health(bodies: Option<ResponseBody>) -> (Arc<Health>, Endpoint) {
        let h = Arc::new(Health {
            path: "/".to_owned(),
            readiness_path: "/ready".to_owned(),
            bodies,
            running: Arc::new(AtomicBool::new(false)),
            shutdown: Arc::new(Shutdown::default()),
            since: Instant::now(),
        });
        (h.clone(), Endpoint::Health(h))
    }

    fn status(endpoint: &Endpoint, path: &str) -> &'static str {
        answer(&format!("GET {path} HTTP/1.1\r\n\r\n"), endpoint).status
    }

    #[test]
    fn liveness_holds_through_the_drain_and_readiness_does_not() {
        let (h, e) = health(None);
        // Start-up: neither.
        assert_eq!(status(&e, "/"), "503 Service Unavailable");
        assert_eq!(status(&e, "/ready"), "503 Service Unavailable");
        h.running.store(true, Ordering::Relaxed);
        assert_eq!(status(&e, "/"), "200 OK");
        assert_eq!(status(&e, "/ready?verbose"), "200 OK");
        // SIGTERM: draining.
        h.shutdown.set();
        assert_eq!(status(&e, "/"), "200 OK");
        assert_eq!(status(&e, "/ready"), "503 Service Unavailable");
        assert_eq!(status(&e, "/other"), "404 Not Found");
    }

    #[test]
    fn response_body_replaces_the_json_status() {
        let (h, e) = health(Some(ResponseBody {
            healthy: "up".to_owned(),
            unhealthy: "down".to_owned(),
        }));
        assert_eq!(answer("GET / HTTP/1.1\r\n\r\n", &e).body, b"down");
        h.running.store(true, Ordering::Relaxed);
        assert_eq!(answer("GET / HTTP/1.1\r\n\r\n", &e).body, b"up");
        let (_, json) = health(None);
        let body = answer("GET / HTTP/1.1\r\n\r\n", &json).body;
        assert!(body.starts_with(b"{\"status\":\"Server not available\""));
    }

    #[test]
    fn methods_other_than_get_and_head_are_refused_and_head_has_no_body() {
        let (h, e) = health(None);
        h.running.store(true, Ordering::Relaxed);
        assert_eq!(
            answer("POST / HTTP/1.1\r\n\r\n", &e).status,
            "405 Method Not Allowed"
        );
        let head = answer("HEAD / HTTP/1.1\r\n\r\n", &e);
        assert_eq!(head.status, "200 OK");
        assert!(head.head_only);
        // A head cut short (EOF before the terminator) is still answered, not a panic.
        assert_eq!(answer("", &e).status, "405 Method Not Allowed");
    }

    #[test]
    fn negotiated_metrics_get_the_accept_header() {
        let e = Endpoint::Negotiated(Arc::new(|accept: &str| {
            ("text/x-test", accept.as_bytes().to_vec())
        }));
        let a = answer(
            "GET /metrics HTTP/1.1\r\nACCEPT: application/vnd.google.protobuf\r\n\r\n",
            &e,
        );
        assert_eq!(a.body, b"application/vnd.google.protobuf");
        assert_eq!(status(&e, "/nope"), "404 Not Found");
    }

    #[test]
    fn the_oldest_connection_is_closed_past_the_limit() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut open = Open::default();
            let mut first = None;
            for i in 0..=MAX_CONNECTIONS {
                let t = tokio::spawn(std::future::pending::<()>());
                if i == 0 {
                    first = Some(t.abort_handle());
                }
                open.admit(t);
            }
            assert_eq!(open.0.len(), MAX_CONNECTIONS);
            let first = first.unwrap();
            // Abort takes effect when the runtime next polls the task: yield until it has.
            let deadline = Instant::now() + Duration::from_secs(10);
            while !first.is_finished() {
                assert!(Instant::now() < deadline, "oldest task not aborted");
                tokio::task::yield_now().await;
            }
            assert!(open.0.iter().all(|t| !t.is_finished()));
        });
    }
}
