//! The admin endpoints (`health_check`, `/metrics`) of the real binary under hostile clients, and the
//! health answers across a drain.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{make_request, Sink, Tailgate};
use tailgate_proto::compression::Compression;

fn config(sink: SocketAddr) -> String {
    format!(
        "
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
exporters:
  otlp/sink:
    endpoint: {sink}
    tls:
      insecure: true
extensions:
  health_check:
    endpoint: 127.0.0.1:0
service:
  extensions: [health_check]
  telemetry:
    metrics:
      address: 127.0.0.1:0
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [otlp/sink]
"
    )
}

/// What a kubelet probe does: connect, `GET path`, read the answer, all within `timeout`
/// (`timeoutSeconds: 2` in deploy/). Returns the status code (0: no answer in time) and how long
/// the answer took.
fn probe(addr: SocketAddr, path: &str, timeout: Duration) -> (u16, Duration) {
    let start = Instant::now();
    let answer = || -> std::io::Result<u16> {
        let mut s = TcpStream::connect_timeout(&addr, timeout)?;
        s.set_read_timeout(Some(timeout))?;
        s.set_write_timeout(Some(timeout))?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: probe\r\nUser-Agent: kube-probe/1.30\r\nConnection: close\r\n\r\n"
        )?;
        let mut text = String::new();
        s.read_to_string(&mut text)?;
        Ok(text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0))
    };
    let code = answer().unwrap_or(0);
    (code, start.elapsed())
}

/// Polls `path` until it answers `want` (generous deadline); panics with the last answer otherwise.
fn wait_status(addr: SocketAddr, path: &str, want: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, _) = probe(addr, path, Duration::from_secs(2));
        if code == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{path} answered {code}, want {want}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A client that sends the start of a request head one byte every 500 ms and never finishes it.
struct Trickle {
    /// Bytes the client got out so far.
    sent: Arc<AtomicUsize>,
    /// Set once the server closed the connection (EOF, reset or a failed write).
    closed: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

fn trickle(addr: SocketAddr, stop: Arc<AtomicBool>) -> Trickle {
    let sent = Arc::new(AtomicUsize::new(0));
    let closed = Arc::new(AtomicBool::new(false));
    let (s, c) = (sent.clone(), closed.clone());
    let thread = std::thread::spawn(move || {
        let mut stream = TcpStream::connect(addr).unwrap();
        // Reads only notice the server's close; never block the pacing for long.
        stream
            .set_read_timeout(Some(Duration::from_millis(1)))
            .unwrap();
        let head = b"GET / HTTP/1.1\r\nHost: slow\r\nX-Slow: ";
        let mut i = 0usize;
        // Bounded: 120 bytes is a minute of trickling, far past any deadline the server may set.
        while !stop.load(Ordering::Relaxed) && i < 120 {
            let byte = head.get(i).copied().unwrap_or(b'a');
            if stream.write_all(&[byte]).is_err() {
                break;
            }
            s.fetch_add(1, Ordering::Relaxed);
            i += 1;
            // The attack's pacing, not synchronisation: one byte every half second.
            std::thread::sleep(Duration::from_millis(500));
            let mut buf = [0u8; 256];
            match stream.read(&mut buf) {
                Ok(_) => break, // EOF, or an answer (an error status) then close: cut off either way
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => break,
            }
        }
        if !stop.load(Ordering::Relaxed) {
            c.store(true, Ordering::Relaxed);
        }
    });
    Trickle {
        sent,
        closed,
        thread,
    }
}

/// Issue 17 case 4: three clients trickling header bytes into an admin endpoint held its one
/// blocking thread, and every probe (2 s timeout) failed. Probes must be answered while the trickles
/// hold their connections, and each trickle is cut off by the whole-request deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_are_answered_while_clients_trickle_request_heads() {
    let sink = Sink::start().await;
    let tg = Tailgate::start(&config(sink.addr), &["--cores", "1"]);
    let health = tg.addr("extensions::health_check");
    let metrics = tg.addr("service::telemetry::metrics");
    tokio::task::spawn_blocking(move || {
        wait_status(health, "/", 200);
        let stop = Arc::new(AtomicBool::new(false));
        let trickles: Vec<Trickle> = [health, health, health, metrics, metrics, metrics]
            .into_iter()
            .map(|addr| trickle(addr, stop.clone()))
            .collect();
        // Every trickle has been accepted and is mid-head (two bytes out) before the probes start.
        let deadline = Instant::now() + Duration::from_secs(30);
        while trickles.iter().any(|t| t.sent.load(Ordering::Relaxed) < 2) {
            assert!(Instant::now() < deadline, "trickles did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut latencies = Vec::new();
        for (addr, path) in [
            (health, "/"),
            (health, "/ready"),
            (metrics, "/metrics"),
            (health, "/"),
            (health, "/ready"),
            (metrics, "/metrics"),
            (health, "/"),
            (health, "/"),
        ] {
            let (code, took) = probe(addr, path, Duration::from_secs(2));
            assert_eq!(
                code, 200,
                "{path} probe unanswered after {took:?} while trickles hold"
            );
            latencies.push(took);
        }
        let held = trickles
            .iter()
            .filter(|t| !t.closed.load(Ordering::Relaxed))
            .count();
        latencies.sort();
        eprintln!(
            "probe latency during the trickle ({held} of 6 trickles still open): median {:?}, max {:?}",
            latencies[latencies.len() / 2],
            latencies[latencies.len() - 1]
        );
        // The whole-request deadline cuts each trickle off (a per-read timeout never would: a byte
        // arrives every 500 ms). Bounded wait, well past the deadline.
        let deadline = Instant::now() + Duration::from_secs(40);
        while trickles.iter().any(|t| !t.closed.load(Ordering::Relaxed)) {
            assert!(
                Instant::now() < deadline,
                "a trickling client was never cut off"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        stop.store(true, Ordering::Relaxed);
        for t in trickles {
            t.thread.join().unwrap();
        }
        // Still serving after the attack.
        assert_eq!(probe(health, "/", Duration::from_secs(2)).0, 200);
        assert!(tg.terminate().success());
    })
    .await
    .unwrap();
}

/// Readiness fails as soon as SIGTERM starts the drain while liveness stays OK (a failing liveness
/// probe would make the kubelet kill the draining pod and lose what it still holds).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_while_draining_and_liveness_stays_ok() {
    let sink = Sink::start().await;
    // A stalled backend keeps the export in flight, so the drain lasts its deadline.
    sink.stall();
    let tg = Tailgate::start(&config(sink.addr), &["--cores", "1"]);
    let health = tg.addr("extensions::health_check");
    let req = make_request(1, 1, 1, 5);
    assert_eq!(
        support::export(tg.grpc(), &req, Compression::Identity)
            .await
            .0,
        0
    );
    let pid = tg.child.id();
    let tg = tokio::task::spawn_blocking(move || {
        wait_status(health, "/", 200);
        wait_status(health, "/ready", 200);
        std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        wait_status(health, "/ready", 503);
        let (live, _) = probe(health, "/", Duration::from_secs(2));
        assert_eq!(live, 200, "liveness failed while draining");
        tg
    })
    .await
    .unwrap();
    sink.release();
    tokio::task::spawn_blocking(move || assert!(tg.wait_exit().success()))
        .await
        .unwrap();
}
