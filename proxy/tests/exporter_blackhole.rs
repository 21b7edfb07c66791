//! A blackholed backend: a peer that accepts the TCP connection (the kernel keeps ACKing, as a
//! stopped process or a half-dead middlebox does) and then never answers anything. No RST ever
//! comes, so only the exporter itself can notice: the `otlp` exporter by an unanswered h2 PING
//! (`keepalive`) or by consecutive export timeouts, the `otlphttp` exporter by its request
//! timeout. Each test waits until the exporter has dropped the silent connection and dialled a
//! new one, and prints how long the first connection lived (the time to notice).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{export, make_request, one_exporter, Tailgate};
use tailgate_proto::compression::Compression;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

/// One accepted connection: when it was accepted and when the exporter closed it.
#[derive(Debug, Clone, Copy)]
struct Seen {
    accepted: Instant,
    closed: Option<Instant>,
}

/// A loopback server that reads (so the kernel's buffers never push back) and never writes.
struct Blackhole {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Blackhole {
    async fn start() -> Blackhole {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let i = {
                    let mut log = log.lock().unwrap();
                    log.push(Seen {
                        accepted: Instant::now(),
                        closed: None,
                    });
                    log.len() - 1
                };
                let log = log.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    while matches!(conn.read(&mut buf).await, Ok(n) if n > 0) {}
                    log.lock().unwrap()[i].closed = Some(Instant::now());
                });
            }
        });
        Blackhole { addr, seen }
    }

    /// Polls (30 s deadline) until the first connection was closed by the exporter and a second
    /// one was dialled; returns how long the first one lived.
    async fn wait_redial(&self, tg: &Tailgate) -> Duration {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let seen = self.seen.lock().unwrap().clone();
            if let [first, _second, ..] = seen.as_slice() {
                if let Some(closed) = first.closed {
                    return closed - first.accepted;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the silent connection was not dropped and re-dialled: {seen:?}\n{}",
                tg.stderr()
            );
            tokio::time::sleep(Duration::from_millis(20)).await; // polling, not synchronisation
        }
    }
}

/// Retries soon, so a test waits for the exporter's rule, not for its backoff.
const QUICK_RETRY: &str = "    retry_on_failure: {initial_interval: 50ms, max_interval: 100ms}\n";

/// Starts tailgate exporting to a blackhole with `keys`, sends one batch, and returns the time
/// the exporter took to drop the silent connection (it has redialled by then).
/// `counted`: the `reason` of `tailgate_exporter_connections_dropped_total` expected (otlp only).
async fn time_to_notice(
    id: &str,
    endpoint: impl Fn(SocketAddr) -> String,
    keys: &str,
    counted: Option<&str>,
) -> Duration {
    let hole = Blackhole::start().await;
    let body = format!("    endpoint: {}\n{keys}", endpoint(hole.addr));
    let tg = Tailgate::start(&one_exporter(id, &body), &["--cores", "1"]);
    let req = make_request(1, 1, 1, 3);
    assert_eq!(export(tg.grpc(), &req, Compression::Identity).await.0, 0);
    let lived = hole.wait_redial(&tg).await;
    eprintln!("{id} noticed the silent peer after {lived:?} ({keys:?})");
    if let Some(reason) = counted {
        let series = format!(
            "tailgate_exporter_connections_dropped_total{{exporter=\"{id}\",reason=\"{reason}\"}}"
        );
        // Counted as the connection is dropped, before the peer sees it close.
        let dropped = tg.metric(&series).unwrap_or(0.0);
        assert!(dropped >= 1.0, "{series}: {dropped}\n{}", tg.stderr());
    }
    lived
}

fn grpc_endpoint(addr: SocketAddr) -> String {
    format!("{addr}\n    tls: {{insecure: true}}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_keepalive_ping_drops_a_silent_connection() {
    // The export's own timeout (1 min) is far beyond the test's deadline: only the PING can act.
    time_to_notice(
        "otlp/k",
        grpc_endpoint,
        &format!("{QUICK_RETRY}    timeout: 1m\n    keepalive: {{time: 300ms, timeout: 300ms}}\n"),
        Some("keepalive_timeout"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_consecutive_export_timeouts_drop_a_silent_connection() {
    // No keepalive (the collector's default): two timed-out attempts on one connection drop it.
    time_to_notice(
        "otlp/t",
        grpc_endpoint,
        &format!("{QUICK_RETRY}    timeout: 300ms\n"),
        Some("export_timeouts"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlphttp_request_timeout_drops_a_silent_connection() {
    time_to_notice(
        "otlphttp/t",
        |addr| format!("http://{addr}"),
        &format!("{QUICK_RETRY}    timeout: 300ms\n"),
        None,
    )
    .await;
}

/// The figure for the report with the collector's `NewDefaultKeepaliveClientConfig` (10 s / 10 s)
/// (the export timeout raised so the PING alone acts): `cargo test --test exporter_blackhole -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow: about 20 s; run for the time-to-notice figure"]
async fn otlp_time_to_notice_with_collector_default_keepalive() {
    time_to_notice(
        "otlp/d",
        grpc_endpoint,
        "    timeout: 1m\n    keepalive: {time: 10s, timeout: 10s}\n",
        Some("keepalive_timeout"),
    )
    .await;
}

/// The same without `keepalive` (the collector's otlp exporter default): two 5 s timeouts, the
/// default backoff (5 s ± 50 %) between them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow: about 15 s; run for the time-to-notice figure"]
async fn otlp_time_to_notice_without_keepalive() {
    time_to_notice("otlp/n", grpc_endpoint, "", Some("export_timeouts")).await;
}
