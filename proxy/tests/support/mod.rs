//! Test harness: start the real `tailgate` binary, a gRPC OTLP sink and a gRPC sender (tokio + h2).
//!
//! `tailgate-perf`'s reusable sink/sender had not landed when these tests were written, so this is
//! the minimal version; switch to it once it exists.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use tailgate_proto::compression::Compression;
use tailgate_proto::grpc::Deframer;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

pub mod http_sink;

pub const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

// === the binary ===

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A running `tailgate` process; killed on drop.
pub struct Tailgate {
    pub child: Child,
    pub ports: BTreeMap<String, String>,
    pub dir: PathBuf,
}

/// Opens one OTLP/gRPC Export stream on `client` (connected to `addr`) with its headers sent and
/// no body yet: the caller sends the body and reads the answer.
async fn open_export(
    client: &h2::client::SendRequest<Bytes>,
    addr: SocketAddr,
    headers: &[(&str, &str)],
) -> (h2::client::ResponseFuture, h2::SendStream<Bytes>) {
    let mut c = client.clone().ready().await.unwrap();
    let mut req = http::Request::post(format!("http://{addr}{EXPORT_PATH}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    c.send_request(req.body(()).unwrap(), false).unwrap()
}

/// Starts one OTLP/gRPC Export call with the framed `body` on `client` (connected to `addr`);
/// the caller reads the answer.
pub async fn start_export(
    client: &h2::client::SendRequest<Bytes>,
    addr: SocketAddr,
    body: &Bytes,
) -> h2::client::ResponseFuture {
    start_export_with(client, addr, body, &[]).await
}

/// [`start_export`] with extra request headers (`grpc-encoding` for a compressed body).
pub async fn start_export_with(
    client: &h2::client::SendRequest<Bytes>,
    addr: SocketAddr,
    body: &Bytes,
    headers: &[(&str, &str)],
) -> h2::client::ResponseFuture {
    let (resp, mut stream) = open_export(client, addr, headers).await;
    stream.send_data(body.clone(), true).unwrap();
    resp
}

/// What a test server reads and writes: plain TCP, or TLS over it.
pub trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// Accepts connections on `listener` until the test ends; each one (after a TLS handshake with
/// `tls`, when given; failed handshakes are dropped) goes to `serve` on a task of its own.
pub fn accept_loop<F, Fut>(listener: TcpListener, tls: Option<Arc<rustls::ServerConfig>>, serve: F)
where
    F: Fn(Box<dyn Io>) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let serve = serve.clone();
            tokio::spawn(async move {
                match acceptor {
                    None => serve(Box::new(tcp)).await,
                    Some(a) => {
                        if let Ok(stream) = a.accept(tcp).await {
                            serve(Box::new(stream)).await;
                        }
                    }
                }
            });
        }
    });
}

/// A fresh CA and a server certificate for `san` (a DNS name or an IP address) signed by it:
/// the CA as PEM (what a client trusts) and a rustls server config offering `alpn`.
pub fn test_pki(san: &str, alpn: &[u8]) -> (String, Arc<rustls::ServerConfig>) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec![san.to_owned()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    server.alpn_protocols = vec![alpn.to_vec()];
    (ca.pem(), Arc::new(server))
}

pub fn scratch_dir() -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("tailgate-test-{}-{n}", std::process::id()));
    // A process id is reused across runs: a stale ports file would send a test to dead ports.
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl Tailgate {
    /// Starts the binary with `config` and waits for its ports file.
    pub fn start(config: &str, extra: &[&str]) -> Tailgate {
        Self::start_with_env(config, extra, &[])
    }

    /// [`Tailgate::start`] with extra environment variables for the process.
    pub fn start_with_env(config: &str, extra: &[&str], env: &[(&str, &str)]) -> Tailgate {
        let dir = scratch_dir();
        let cfg = dir.join("config.yaml");
        std::fs::write(&cfg, config).unwrap();
        let ports = dir.join("ports.json");
        let log = std::fs::File::create(dir.join("stderr.log")).unwrap();
        // TAILGATE_BIN lets the (ignored) perf smoke test run a release build.
        let bin = std::env::var("TAILGATE_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_tailgate").to_owned());
        let mut child = Command::new(bin)
            .arg("--config")
            .arg(&cfg)
            .arg("--ports-file")
            .arg(&ports)
            .args(extra)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(text) = std::fs::read_to_string(&ports) {
                let ports: BTreeMap<String, String> = serde_json::from_str(&text).unwrap();
                return Tailgate { child, ports, dir };
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "tailgate exited with {status}: {}",
                    std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "tailgate did not write its ports file"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn addr(&self, key: &str) -> SocketAddr {
        self.ports
            .get(key)
            .unwrap_or_else(|| panic!("no {key} in {:?}", self.ports))
            .parse()
            .unwrap()
    }

    pub fn grpc(&self) -> SocketAddr {
        self.addr("receivers::otlp::grpc")
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default()
    }

    /// Fetches `/metrics` and returns the value of the series whose line starts with `prefix`.
    pub fn metric(&self, prefix: &str) -> Option<f64> {
        let text = http_get(self.addr("service::telemetry::metrics"), "/metrics").1;
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    /// Polls the series whose line starts with `prefix` until it equals `want` (30 s deadline);
    /// fails at once when a core panicked (a debug build keeps serving metrics after a core's
    /// panic, where release's `panic = "abort"` ends the process).
    pub async fn wait_metric(&self, prefix: &str, want: f64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let log = self.stderr();
            assert!(!log.contains("panicked"), "a core panicked:\n{log}");
            let got = self.metric(prefix);
            if got == Some(want) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{prefix}: {got:?}, want {want}\n{log}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await; // polling, not synchronisation
        }
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        self.wait_exit()
    }

    /// Waits (generous deadline) for the process to exit after a signal sent elsewhere.
    pub fn wait_exit(mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "tailgate did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Tailgate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A blocking HTTP/1.1 GET: (status code, body).
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let code = text
        .split_whitespace()
        .nth(1)
        .unwrap_or("0")
        .parse()
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_owned())
        .unwrap_or_default();
    (code, body)
}

/// A config with one pipeline from the gRPC receiver to the one exporter `id` with `body` as its
/// keys (indented four spaces), self-metrics on an OS-chosen port.
pub fn one_exporter(id: &str, body: &str) -> String {
    format!(
        "
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
exporters:
  {id}:
{body}
service:
  telemetry: {{metrics: {{address: 127.0.0.1:0}}}}
  pipelines:
    traces: {{receivers: [otlp], exporters: [{id}]}}
"
    )
}

// === spans ===

/// A request of `resources` × `scopes` × `spans` spans with distinct ids; `seed` keeps them unique.
pub fn make_request(
    seed: u32,
    resources: usize,
    scopes: usize,
    spans: usize,
) -> ExportTraceServiceRequest {
    let mut n = 0u32;
    ExportTraceServiceRequest {
        resource_spans: (0..resources)
            .map(|r| ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", &format!("svc-{seed}-{r}"))],
                    ..Default::default()
                }),
                scope_spans: (0..scopes)
                    .map(|s| ScopeSpans {
                        scope: Some(InstrumentationScope {
                            name: format!("scope-{s}"),
                            version: "1.0".into(),
                            ..Default::default()
                        }),
                        spans: (0..spans)
                            .map(|_| {
                                n += 1;
                                let mut trace_id = [0u8; 16];
                                trace_id[..4].copy_from_slice(&seed.to_be_bytes());
                                trace_id[4..8].copy_from_slice(&n.to_be_bytes());
                                Span {
                                    trace_id: trace_id.to_vec(),
                                    span_id: [&seed.to_be_bytes()[..], &n.to_be_bytes()[..]]
                                        .concat(),
                                    name: format!("op-{n}"),
                                    kind: 2,
                                    start_time_unix_nano: 1_700_000_000_000_000_000 + u64::from(n),
                                    end_time_unix_nano: 1_700_000_000_000_500_000 + u64::from(n),
                                    attributes: vec![
                                        kv("http.method", "GET"),
                                        kv("pad", &"x".repeat(134)),
                                    ],
                                    ..Default::default()
                                }
                            })
                            .collect(),
                        schema_url: String::new(),
                    })
                    .collect(),
                schema_url: "https://opentelemetry.io/schemas/1.21.0".into(),
            })
            .collect(),
    }
}

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
    }
}

/// For each trace ID, the indexes of the requests that carried its spans: a trace decided once
/// leaves in one export, a trace decided in pieces in several.
pub fn exports_per_trace(
    reqs: &[ExportTraceServiceRequest],
) -> BTreeMap<Vec<u8>, std::collections::BTreeSet<usize>> {
    let mut out = BTreeMap::<Vec<u8>, std::collections::BTreeSet<usize>>::new();
    for (n, r) in reqs.iter().enumerate() {
        let spans = r
            .resource_spans
            .iter()
            .flat_map(|rs| &rs.scope_spans)
            .flat_map(|ss| &ss.spans);
        for s in spans {
            out.entry(s.trace_id.clone()).or_default().insert(n);
        }
    }
    out
}

/// Every span as (resource bytes, scope bytes, schema urls, span bytes), sorted: comparing two of
/// these checks that each span arrived byte-identical under its resource and scope.
/// One span with its context, all as bytes.
pub type SpanKey = (Vec<u8>, Vec<u8>, String, Vec<u8>);

pub fn span_set(reqs: &[ExportTraceServiceRequest]) -> Vec<SpanKey> {
    let mut out = Vec::new();
    for req in reqs {
        for rs in &req.resource_spans {
            for ss in &rs.scope_spans {
                for s in &ss.spans {
                    out.push((
                        rs.resource
                            .as_ref()
                            .map(Message::encode_to_vec)
                            .unwrap_or_default(),
                        ss.scope
                            .as_ref()
                            .map(Message::encode_to_vec)
                            .unwrap_or_default(),
                        format!("{}|{}", rs.schema_url, ss.schema_url),
                        s.encode_to_vec(),
                    ));
                }
            }
        }
    }
    out.sort();
    out
}

// === sink ===

#[derive(Default)]
struct SinkState {
    requests: Vec<ExportTraceServiceRequest>,
    /// Status codes (with an optional `grpc-status-details-bin` value) to answer, in order, before
    /// answering OK.
    script: VecDeque<(u32, Option<String>)>,
    /// Requests answered with an error.
    refused: u64,
    /// `grpc-encoding` values seen.
    encodings: Vec<String>,
    /// Spans accepted so far (cheap to read, unlike comparing span sets).
    total: usize,
    /// Requests whose body was incomplete or undecodable (sender stopped mid-request).
    broken: u64,
}

/// The one request in a gRPC body, or `None` when the body is incomplete or corrupt.
fn decode_export(deframer: &mut Deframer, encoding: &str) -> Option<ExportTraceServiceRequest> {
    let msg = deframer.next_message().ok()??;
    let payload = msg
        .decode(Compression::from_name(encoding)?, 64 << 20)
        .ok()?;
    ExportTraceServiceRequest::decode(payload).ok()
}

/// An OTLP/gRPC sink on 127.0.0.1:0.
#[derive(Clone)]
pub struct Sink {
    pub addr: SocketAddr,
    state: Arc<Mutex<SinkState>>,
    notify: Arc<Notify>,
    /// While `true`, requests are held unanswered (their bodies unread): a stalled backend.
    stall: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Sink {
    pub async fn start() -> Sink {
        Self::start_with(None).await
    }

    /// A sink that speaks TLS with `config` (its ALPN should offer h2).
    pub async fn start_with(tls: Option<Arc<rustls::ServerConfig>>) -> Sink {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sink = Sink {
            addr: listener.local_addr().unwrap(),
            state: Arc::default(),
            notify: Arc::new(Notify::new()),
            stall: Arc::new(tokio::sync::watch::channel(false).0),
        };
        let s = sink.clone();
        accept_loop(listener, tls, move |conn| s.clone().serve(conn));
        sink
    }

    /// Holds every request (new and in progress) unanswered until [`Sink::release`].
    pub fn stall(&self) {
        self.stall.send_replace(true);
    }

    /// Answers held and new requests again.
    pub fn release(&self) {
        self.stall.send_replace(false);
    }

    /// Answers the next requests with these gRPC codes before answering OK again.
    pub fn script(&self, codes: &[u32]) {
        self.state
            .lock()
            .unwrap()
            .script
            .extend(codes.iter().map(|&c| (c, None)));
    }

    /// Answers the next request with `code` and `details_bin` as `grpc-status-details-bin`.
    pub fn script_details(&self, code: u32, details_bin: &str) {
        let mut st = self.state.lock().unwrap();
        st.script.push_back((code, Some(details_bin.to_owned())));
    }

    pub fn requests(&self) -> Vec<ExportTraceServiceRequest> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn refused(&self) -> u64 {
        self.state.lock().unwrap().refused
    }

    /// Requests whose body was incomplete or corrupt (counted, never a panic).
    pub fn broken(&self) -> u64 {
        self.state.lock().unwrap().broken
    }

    pub fn encodings(&self) -> Vec<String> {
        self.state.lock().unwrap().encodings.clone()
    }

    /// Spans accepted (requests past 100k spans are counted, not kept).
    pub fn total(&self) -> usize {
        self.state.lock().unwrap().total
    }

    /// Waits (generous deadline) until `n` spans were accepted, by count only.
    pub async fn wait_total(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.total() < n {
            assert!(
                Instant::now() < deadline,
                "sink got {} of {n} spans",
                self.total()
            );
            let _ = tokio::time::timeout(Duration::from_millis(200), self.notify.notified()).await;
        }
    }

    pub fn span_count(&self) -> usize {
        span_set(&self.requests()).len()
    }

    /// Waits (generous deadline) until at least `n` spans arrived.
    pub async fn wait_spans(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.span_count() < n {
            assert!(
                Instant::now() < deadline,
                "sink got {} of {n} spans",
                self.span_count()
            );
            let _ = tokio::time::timeout(Duration::from_millis(200), self.notify.notified()).await;
        }
    }

    async fn serve<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(self, tcp: T) {
        let Ok(mut conn) = h2::server::handshake(tcp).await else {
            return;
        };
        while let Some(Ok((req, mut respond))) = conn.accept().await {
            let sink = self.clone();
            tokio::spawn(async move {
                let enc = req
                    .headers()
                    .get("grpc-encoding")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("identity")
                    .to_owned();
                let _ = sink.stall.subscribe().wait_for(|stalled| !*stalled).await;
                let mut body = req.into_body();
                let mut deframer = Deframer::new(64 << 20);
                while let Some(Ok(chunk)) = body.data().await {
                    let _ = body.flow_control().release_capacity(chunk.len());
                    deframer.push(chunk);
                }
                // A body cut short (the sender was stopped mid-request) is counted, not fatal.
                let Some(request) = decode_export(&mut deframer, &enc) else {
                    sink.state.lock().unwrap().broken += 1;
                    sink.notify.notify_waiters();
                    return;
                };
                let (code, details) = {
                    let mut st = sink.state.lock().unwrap();
                    st.encodings.push(enc);
                    match st.script.pop_front() {
                        Some(answer) => {
                            st.refused += 1;
                            answer
                        }
                        None => {
                            st.total += request
                                .resource_spans
                                .iter()
                                .flat_map(|r| r.scope_spans.iter())
                                .map(|s| s.spans.len())
                                .sum::<usize>();
                            if st.total <= 100_000 {
                                st.requests.push(request);
                            }
                            (0, None)
                        }
                    }
                };
                sink.notify.notify_waiters();
                let mut resp = http::Response::builder()
                    .header("content-type", "application/grpc")
                    .header("grpc-status", code.to_string());
                if let Some(details) = details {
                    resp = resp.header("grpc-status-details-bin", details);
                }
                let resp = resp.body(()).unwrap();
                let _ = respond.send_response(resp, true);
            });
        }
    }
}

// === sender ===

/// Sends one framed gRPC body to `path` with `headers`; returns (grpc-status, grpc-message).
pub async fn send_raw(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> (u32, String) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    send_on(tcp, addr, path, headers, body).await.unwrap()
}

/// Exports `req` over TLS with `config`; `Err` when the handshake or the h2 exchange fails.
pub async fn export_tls(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    req: &ExportTraceServiceRequest,
) -> Result<(u32, String), String> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    send_on(
        tls,
        addr,
        EXPORT_PATH,
        &[],
        frame(&req.encode_to_vec(), Compression::Identity),
    )
    .await
}

async fn send_on<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static>(
    io: T,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Result<(u32, String), String> {
    let (client, conn) = h2::client::handshake(io).await.map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    request_on(client, addr, path, headers, body).await
}

/// Exports `req` on an existing h2 connection; returns (grpc-status, message).
pub async fn send_on_client(
    client: h2::client::SendRequest<Bytes>,
    addr: SocketAddr,
    req: &ExportTraceServiceRequest,
) -> (u32, String) {
    let body = frame(&req.encode_to_vec(), Compression::Identity);
    request_on(client, addr, EXPORT_PATH, &[], body)
        .await
        .unwrap_or_else(|e| (u32::MAX, e))
}

/// Longest a test waits for one answer: a core that panicked or hangs fails the test with a
/// message instead of holding it until the harness gives up.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

async fn request_on(
    client: h2::client::SendRequest<Bytes>,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Result<(u32, String), String> {
    tokio::time::timeout(ANSWER_TIMEOUT, exchange(client, addr, path, headers, body))
        .await
        .unwrap_or_else(|_| Err(format!("no answer from {addr} within {ANSWER_TIMEOUT:?}")))
}

async fn exchange(
    client: h2::client::SendRequest<Bytes>,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Result<(u32, String), String> {
    let mut client = client.ready().await.map_err(|e| e.to_string())?;
    let mut req = http::Request::builder()
        .method("POST")
        .uri(format!("http://{addr}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let (resp, mut stream) = client
        .send_request(req.body(()).unwrap(), false)
        .map_err(|e| e.to_string())?;
    stream.send_data(body, true).map_err(|e| e.to_string())?;
    let resp = resp.await.map_err(|e| e.to_string())?;
    let (parts, mut body) = resp.into_parts();
    let status = |h: &http::HeaderMap| {
        h.get("grpc-status").map(|v| {
            (
                v.to_str().unwrap().parse::<u32>().unwrap(),
                h.get("grpc-message")
                    .map(|m| m.to_str().unwrap().to_owned())
                    .unwrap_or_default(),
            )
        })
    };
    if let Some(s) = status(&parts.headers) {
        return Ok(s);
    }
    while let Some(Ok(c)) = body.data().await {
        let _ = body.flow_control().release_capacity(c.len());
    }
    let trailers = body
        .trailers()
        .await
        .map_err(|e| e.to_string())?
        .unwrap_or_default();
    status(&trailers).ok_or_else(|| "no grpc-status in trailers".to_owned())
}

/// Opens an Export stream on `client` whose one message declares `declared` payload bytes but
/// carries only `payload` (shared, not copied, so a thousand streams cost the client one buffer),
/// then stalls with the stream open. Keep the returned send half alive: dropping both halves
/// resets the stream.
pub async fn stalled_export(
    client: &h2::client::SendRequest<Bytes>,
    addr: SocketAddr,
    declared: u32,
    payload: &Bytes,
) -> (h2::client::ResponseFuture, h2::SendStream<Bytes>) {
    let (resp, mut stream) = open_export(client, addr, &[]).await;
    let mut prefix = BytesMut::with_capacity(5);
    prefix.put_u8(0);
    prefix.put_u32(declared);
    stream.send_data(prefix.freeze(), false).unwrap();
    stream.send_data(payload.clone(), false).unwrap();
    (resp, stream)
}

/// The grpc-status and grpc-message of a response whose status is in its headers (a
/// trailers-only answer, as refusals are); `None` when the headers carry no status.
pub fn header_status(resp: &http::Response<h2::RecvStream>) -> Option<(u32, String)> {
    let h = resp.headers();
    let code = h.get("grpc-status")?.to_str().ok()?.parse().ok()?;
    let message = h
        .get("grpc-message")
        .and_then(|m| m.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    Some((code, message))
}

/// Frames a payload: compressed with `encoding` unless it is identity.
pub fn frame(payload: &[u8], encoding: Compression) -> Bytes {
    let (flag, data) = match encoding {
        Compression::Identity => (0u8, payload.to_vec()),
        other => (1u8, other.compress(payload).unwrap()),
    };
    let mut b = BytesMut::new();
    b.put_u8(flag);
    b.put_u32(data.len() as u32);
    b.put_slice(&data);
    b.freeze()
}

/// Exports a request with `encoding`; returns (grpc-status, message).
pub async fn export(
    addr: SocketAddr,
    req: &ExportTraceServiceRequest,
    encoding: Compression,
) -> (u32, String) {
    let body = frame(&req.encode_to_vec(), encoding);
    let name = encoding.name();
    let headers: Vec<(&str, &str)> = if encoding == Compression::Identity {
        vec![]
    } else {
        vec![("grpc-encoding", name)]
    };
    send_raw(addr, EXPORT_PATH, &headers, body).await
}

/// A blocking HTTP/1.1 POST: (status code, body).
pub fn http_post(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let code = text
        .split_whitespace()
        .nth(1)
        .unwrap_or("0")
        .parse()
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_owned())
        .unwrap_or_default();
    (code, body)
}

/// utime + stime of process `pid` in seconds, from `/proc/PID/stat` (the perf tests' CPU measure).
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = stat.rsplit_once(')').unwrap().1;
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// Sends `requests` copies of the framed export `body` to `addr` over 8 h2 connections (8 MiB stream
/// / 32 MiB connection windows), each request answered before the next on its connection; panics on
/// any non-OK answer. The load loop of the perf tests.
pub async fn blast(addr: std::net::SocketAddr, body: Bytes, requests: usize) {
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (client, conn) = h2::client::Builder::new()
                .initial_window_size(8 << 20)
                .initial_connection_window_size(32 << 20)
                .handshake::<_, Bytes>(tcp)
                .await
                .unwrap();
            tokio::spawn(conn);
            for _ in 0..requests / 8 {
                let resp = start_export(&client, addr, &body).await;
                let mut resp = resp.await.unwrap().into_body();
                while let Some(chunk) = resp.data().await {
                    let _ = resp.flow_control().release_capacity(chunk.unwrap().len());
                }
                let trailers = resp.trailers().await.unwrap().unwrap();
                assert_eq!(trailers.get("grpc-status").unwrap(), "0");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// Holds a loopback port for a gateway that has not started yet: bound with SO_REUSEPORT and
/// never listening, so the gateway's own SO_REUSEPORT listeners can bind it (and no other test
/// can) while nothing is accepted on this socket. Gateways listing each other must know every port up front.
pub struct Reserved(pub socket2::Socket, pub SocketAddr);

pub fn reserve() -> Reserved {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.set_reuse_port(true).unwrap();
    s.set_reuse_address(true).unwrap();
    s.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    let addr = s.local_addr().unwrap().as_socket().unwrap();
    Reserved(s, addr)
}

/// `traces` traces of 3 spans each, as 3 requests (first, second and third spans); each first
/// span has status ERROR, so each whole trace is kept and a span without its trace is not.
pub fn waves(seed: u32, traces: usize) -> Vec<ExportTraceServiceRequest> {
    let mut req = make_request(seed, 1, 1, traces * 3);
    let spans = &mut req.resource_spans[0].scope_spans[0].spans;
    for j in 0..spans.len() {
        let first = spans[j - j % 3].trace_id.clone();
        spans[j].trace_id = first;
        spans[j].status = (j % 3 == 0).then(|| opentelemetry_proto::tonic::trace::v1::Status {
            code: 2,
            message: String::new(),
        });
    }
    (0..3)
        .map(|wave| {
            let mut r = req.clone();
            let mut j = 0;
            r.resource_spans[0].scope_spans[0].spans.retain(|_| {
                j += 1;
                (j - 1) % 3 == wave
            });
            r
        })
        .collect()
}
