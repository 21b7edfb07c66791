//! An OTLP trace sink: a gRPC (and optional HTTP) server that records what it receives.
//!
//! Integration tests start one on `127.0.0.1:0`, point the process under test at
//! [`Sink::grpc_addr`], then [`Sink::wait_for_spans`] and inspect the [`Snapshot`]. Fault
//! injection ([`Faults`]) makes it slow or makes it refuse requests, so exporter retries and
//! failover can be tested. Observations can be written for `check` with
//! [`crate::observations::write`].
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use std::time::Duration;
//! use tailgate_perf::sink::{Sink, SinkConfig};
//! let sink = Sink::start(SinkConfig::default()).await?;
//! let addr = sink.grpc_addr(); // give this to the exporter under test
//! let seen = sink.wait_for_spans(10, Duration::from_secs(5)).await;
//! sink.shutdown().await;
//! # Ok(()) }
//! ```

mod faults;
mod grpc;
mod http;
mod store;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use faults::Faults;
pub use store::{ObservedSpan, RecordMode, SinkStats, Snapshot, SpanKey};

use crate::grpc::GrpcStatus;
use store::Store;

/// Where and how the sink listens and what it keeps.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    /// OTLP/gRPC listen address; port 0 picks a free port.
    pub grpc_addr: SocketAddr,
    /// OTLP/HTTP listen address (`POST /v1/traces`, protobuf), if wanted.
    pub http_addr: Option<SocketAddr>,
    /// How much to keep per span.
    pub record: RecordMode,
    /// Initial fault injection.
    pub faults: Faults,
    /// Largest request accepted, compressed or not (bigger ones get RESOURCE_EXHAUSTED).
    pub max_message_bytes: usize,
}

impl Default for SinkConfig {
    fn default() -> Self {
        SinkConfig {
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            http_addr: None,
            record: RecordMode::Full,
            faults: Faults::none(),
            max_message_bytes: 64 << 20,
        }
    }
}

impl SinkConfig {
    /// Also serve OTLP/HTTP on `127.0.0.1:0`.
    pub fn with_http(mut self) -> Self {
        self.http_addr = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        self
    }
}

/// The sink did not see enough spans before the deadline.
#[derive(Debug, Clone, thiserror::Error)]
#[error("sink saw {seen} spans, wanted {wanted}, before the deadline")]
pub struct WaitTimeout {
    /// Spans accepted when the deadline passed.
    pub seen: u64,
    /// Spans wanted.
    pub wanted: u64,
}

/// A running sink. Dropping it stops the listeners; [`Sink::shutdown`] also waits for them.
#[derive(Debug)]
pub struct Sink {
    grpc_addr: SocketAddr,
    http_addr: Option<SocketAddr>,
    shared: Arc<Shared>,
    /// Flipped to `true` to stop the accept loops (their connection tasks are aborted with them).
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Sink {
    /// Binds the listeners and starts serving on the current tokio runtime.
    pub async fn start(config: SinkConfig) -> std::io::Result<Sink> {
        let shared = Arc::new(Shared::new(&config));
        let (stop, stop_rx) = watch::channel(false);
        let grpc = TcpListener::bind(config.grpc_addr).await?;
        let grpc_addr = grpc.local_addr()?;
        let mut tasks = vec![tokio::spawn(grpc::serve(
            grpc,
            shared.clone(),
            stop_rx.clone(),
        ))];
        let mut http_addr = None;
        if let Some(addr) = config.http_addr {
            let http = TcpListener::bind(addr).await?;
            http_addr = Some(http.local_addr()?);
            tasks.push(tokio::spawn(http::serve(http, shared.clone(), stop_rx)));
        }
        Ok(Sink {
            grpc_addr,
            http_addr,
            shared,
            stop,
            tasks,
        })
    }

    /// The OTLP/gRPC address (with the port actually bound).
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    /// The OTLP/HTTP address, if HTTP was asked for.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// `http://` URL of the gRPC listener, as exporter configs want it.
    pub fn grpc_endpoint(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    /// Changes fault injection for requests that arrive from now on.
    pub fn set_faults(&self, faults: Faults) {
        *lock(&self.shared.faults) = faults;
    }

    /// The counters so far.
    pub fn stats(&self) -> SinkStats {
        lock(&self.shared.store).stats
    }

    /// A copy of everything observed so far.
    pub fn snapshot(&self) -> Snapshot {
        lock(&self.shared.store).snapshot()
    }

    /// Moves out the spans observed so far (counters keep counting from where they are).
    pub fn take(&self) -> Snapshot {
        lock(&self.shared.store).take()
    }

    /// Waits until at least `spans` spans were accepted in total, then returns a snapshot.
    pub async fn wait_for_spans(
        &self,
        spans: u64,
        timeout: Duration,
    ) -> Result<Snapshot, WaitTimeout> {
        let mut seen = self.shared.accepted_spans.subscribe();
        let reached = tokio::time::timeout(timeout, seen.wait_for(|&n| n >= spans)).await;
        match reached {
            Ok(Ok(_)) => Ok(self.snapshot()),
            _ => Err(WaitTimeout {
                seen: self.stats().accepted_spans,
                wanted: spans,
            }),
        }
    }

    /// Waits until at least `requests` requests (accepted or refused) arrived.
    pub async fn wait_for_requests(&self, requests: u64, timeout: Duration) -> bool {
        let mut seen = self.shared.requests.subscribe();
        let reached = tokio::time::timeout(timeout, seen.wait_for(|&n| n >= requests)).await;
        matches!(reached, Ok(Ok(_)))
    }

    /// Stops listening, closes connections and waits for the server tasks to end.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        for task in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

// === Shared state and the ingest path common to gRPC and HTTP ===

/// State shared by the server tasks and the [`Sink`] handle.
#[derive(Debug)]
pub(crate) struct Shared {
    store: Mutex<Store>,
    faults: Mutex<Faults>,
    /// Total accepted spans, watched by [`Sink::wait_for_spans`] (no polling with sleeps).
    accepted_spans: watch::Sender<u64>,
    /// Total well-formed requests, watched by [`Sink::wait_for_requests`].
    requests: watch::Sender<u64>,
    max_message_bytes: usize,
}

/// The answer to one export request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    pub(crate) status: GrpcStatus,
    pub(crate) message: String,
}

impl Answer {
    fn ok() -> Self {
        Answer {
            status: GrpcStatus::OK,
            message: String::new(),
        }
    }

    pub(crate) fn error(status: GrpcStatus, message: impl Into<String>) -> Self {
        Answer {
            status,
            message: message.into(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave the counters half-updated in a way that
    // matters for a test sink, so a poisoned lock is used as is.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn new(config: &SinkConfig) -> Self {
        Shared {
            store: Mutex::new(Store::new(config.record)),
            faults: Mutex::new(config.faults),
            accepted_spans: watch::channel(0).0,
            requests: watch::channel(0).0,
            max_message_bytes: config.max_message_bytes,
        }
    }

    pub(crate) fn max_message_bytes(&self) -> usize {
        self.max_message_bytes
    }

    pub(crate) fn connection_opened(&self) {
        lock(&self.store).stats.connections += 1;
    }

    pub(crate) fn invalid(&self, message: impl Into<String>) -> Answer {
        lock(&self.store).stats.invalid_requests += 1;
        Answer::error(GrpcStatus::INVALID_ARGUMENT, message)
    }

    /// Handles one decoded `ExportTraceServiceRequest`: applies faults, records spans.
    pub(crate) async fn ingest(&self, message: Bytes, wire_bytes: usize) -> Answer {
        let faults = *lock(&self.faults);
        if !faults.delay.is_zero() {
            tokio::time::sleep(faults.delay).await;
        }
        let mode = lock(&self.store).mode;
        let mut views = Vec::new();
        let scanned = if mode == RecordMode::Count {
            tailgate_proto::count_spans(&message)
        } else {
            tailgate_proto::scan(&message).map(|v| {
                views = v;
                views.len()
            })
        };
        let count = match scanned {
            Ok(n) => n,
            Err(e) => return self.invalid(format!("malformed ExportTraceServiceRequest: {e}")),
        };
        let (answer, accepted, requests) = {
            let mut store = lock(&self.store);
            let index = store.stats.requests;
            store.stats.requests += 1;
            store.stats.wire_bytes += wire_bytes as u64;
            let answer = if faults.fails(index) {
                store.stats.failed_requests += 1;
                store.stats.rejected_spans += count as u64;
                Answer::error(faults.fail_status, "refused by fault injection")
            } else {
                store.record(views, count);
                Answer::ok()
            };
            (answer, store.stats.accepted_spans, store.stats.requests)
        };
        // Two requests can publish out of order (the counts are read under the lock, published
        // after it): keep the larger value so a stale count never overwrites a newer one.
        raise(&self.accepted_spans, accepted);
        raise(&self.requests, requests);
        answer
    }
}

/// Publishes `value` on `to` unless it already holds a larger one (counts only grow).
fn raise(to: &watch::Sender<u64>, value: u64) {
    to.send_if_modified(|v| {
        let newer = value > *v;
        if newer {
            *v = value;
        }
        newer
    });
}
