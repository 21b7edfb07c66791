//! The admin endpoints: `/metrics` on `service.telemetry.metrics` and the `health_check` extension.
//!
//! They run on one ordinary thread each, off the data-plane cores: scrapes are rare and tiny, so a
//! blocking HTTP/1.0-style responder is enough and keeps glommio executors free of admin work.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::metrics::Registry;

/// Renders `/metrics` for an `Accept` header value: (content type, body).
pub type NegotiatedRender = dyn Fn(&str) -> (&'static str, Vec<u8>) + Send + Sync;

/// The value of the request head's `Accept` header ("" when absent).
fn accept_header(head: &str) -> &str {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("accept"))
        .map_or("", |(_, v)| v.trim())
}

/// What an admin listener answers.
#[derive(Clone)]
pub enum Endpoint {
    /// Prometheus text at `/metrics`.
    Metrics(Arc<Registry>),
    /// Prometheus text at `/metrics`, rendered by a component (the `prometheus` exporter).
    Text(Arc<dyn Fn() -> String + Send + Sync>),
    /// `/metrics` in the format the request's `Accept` header asks for: the component gets the
    /// header's value and returns the content type and the body.
    Negotiated(Arc<NegotiatedRender>),
    /// Health at `path`: 200 while `healthy`, 503 otherwise.
    Health {
        /// Path answered.
        path: String,
        /// Cleared when shutdown starts.
        healthy: Arc<AtomicBool>,
        /// Process start.
        since: Instant,
    },
}

/// Serves `endpoint` on `listener` until `stop` is set (checked after each connection).
///
/// The thread blocks in `accept` rather than polling: an idle gateway then wakes for nothing (a
/// 50 ms poll woke it 20 times a second per endpoint). Nobody joins it: after `stop` it ends with
/// the next connection or with the process.
pub fn serve(
    listener: TcpListener,
    endpoint: Endpoint,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    listener.set_nonblocking(false)?;
    std::thread::Builder::new()
        .name("tailgate-admin".to_owned())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        if let Err(e) = answer(stream, &endpoint) {
                            tracing::debug!("admin request failed: {e}");
                        }
                    }
                    Err(e) => {
                        tracing::warn!("admin accept failed: {e}");
                        std::thread::sleep(Duration::from_millis(200));
                    }
                }
            }
        })
}

fn answer(mut stream: TcpStream, endpoint: &Endpoint) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    // Read the request head only; 8 KiB is plenty for a scrape and caps what a client can send.
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 8192 {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf);
    let mut parts = head.split_whitespace();
    let method = parts.next().unwrap_or("");
    let target = parts.next().unwrap_or("");
    let path = target.split('?').next().unwrap_or("");
    if let Endpoint::Negotiated(render) = endpoint {
        if (method == "GET" || method == "HEAD") && path == "/metrics" {
            let (content_type, body) = render(accept_header(&head));
            return respond(stream, method, "200 OK", content_type, &body);
        }
    }
    let (status, content_type, body) = match endpoint {
        _ if method != "GET" && method != "HEAD" => (
            "405 Method Not Allowed",
            "text/plain",
            "method not allowed\n".to_owned(),
        ),
        Endpoint::Metrics(reg) if path == "/metrics" => {
            let mut body = reg.render();
            crate::telemetry::process::render(&mut body, &crate::telemetry::process::read());
            ("200 OK", "text/plain; version=0.0.4; charset=utf-8", body)
        }
        Endpoint::Text(render) if path == "/metrics" => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            render(),
        ),
        Endpoint::Health {
            path: p,
            healthy,
            since,
        } if path == p => {
            let up = since.elapsed().as_secs();
            if healthy.load(Ordering::Relaxed) {
                (
                    "200 OK",
                    "application/json",
                    format!("{{\"status\":\"Server available\",\"uptime\":\"{up}s\"}}"),
                )
            } else {
                (
                    "503 Service Unavailable",
                    "application/json",
                    format!("{{\"status\":\"Server not available\",\"uptime\":\"{up}s\"}}"),
                )
            }
        }
        _ => ("404 Not Found", "text/plain", "not found\n".to_owned()),
    };
    respond(stream, method, status, content_type, body.as_bytes())
}

fn respond(
    mut stream: TcpStream,
    method: &str,
    status: &str,
    content_type: &str,
    body: &[u8],
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    if method != "HEAD" {
        stream.write_all(body)?;
    }
    stream.flush()
}
