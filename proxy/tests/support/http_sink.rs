//! An OTLP/HTTP sink on 127.0.0.1:0 (tokio + hyper http1, optional TLS): decodes every
//! `POST /v1/traces` (protobuf or JSON, any `Content-Encoding` tailgate's receiver reads), keeps the
//! requests, and answers scripted statuses first.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use tailgate_proto::json::{decode_body, BodyFormat};
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// One scripted answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// `Retry-After` header value.
    pub retry_after: Option<String>,
    /// On a 200: spans to report as rejected in `partial_success` (the request is still kept).
    pub rejected: i64,
}

impl Answer {
    pub fn status(status: u16) -> Answer {
        Answer {
            status,
            retry_after: None,
            rejected: 0,
        }
    }
}

/// What one request looked like.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub content_type: String,
    pub content_encoding: String,
    pub user_agent: String,
    pub headers: http::HeaderMap,
    /// When it arrived.
    pub at: Instant,
}

#[derive(Default)]
struct State {
    requests: Vec<ExportTraceServiceRequest>,
    seen: Vec<Seen>,
    script: VecDeque<Answer>,
    refused: u64,
    broken: u64,
    total: usize,
}

/// The sink; clones share state.
#[derive(Clone)]
pub struct HttpSink {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    notify: Arc<Notify>,
}

impl HttpSink {
    pub async fn start() -> HttpSink {
        Self::start_with(None).await
    }

    /// A sink that speaks TLS with `config` (ALPN http/1.1) when given.
    pub async fn start_with(tls: Option<Arc<rustls::ServerConfig>>) -> HttpSink {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sink = HttpSink {
            addr: listener.local_addr().unwrap(),
            state: Arc::default(),
            notify: Arc::new(Notify::new()),
        };
        let s = sink.clone();
        super::accept_loop(listener, tls, move |conn| s.clone().serve(conn));
        sink
    }

    /// Answers the next requests with these before answering 200 again.
    pub fn script(&self, answers: &[Answer]) {
        self.state
            .lock()
            .unwrap()
            .script
            .extend(answers.iter().cloned());
    }

    pub fn requests(&self) -> Vec<ExportTraceServiceRequest> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// Requests answered with a non-200 status.
    pub fn refused(&self) -> u64 {
        self.state.lock().unwrap().refused
    }

    /// Requests whose body could not be read or decoded (answered 400).
    pub fn broken(&self) -> u64 {
        self.state.lock().unwrap().broken
    }

    /// Spans kept.
    pub fn total(&self) -> usize {
        self.state.lock().unwrap().total
    }

    /// Waits (generous deadline) until `n` spans were kept.
    pub async fn wait_total(&self, n: usize) {
        self.wait_until(|s| s.total >= n, &format!("{n} spans"))
            .await;
    }

    /// Waits (generous deadline) until `n` requests arrived (kept or refused).
    pub async fn wait_requests(&self, n: usize) {
        self.wait_until(|s| s.seen.len() >= n, &format!("{n} requests"))
            .await;
    }

    async fn wait_until(&self, done: impl Fn(&State) -> bool, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let notified = self.notify.notified();
            if done(&self.state.lock().unwrap()) {
                return;
            }
            assert!(Instant::now() < deadline, "HTTP sink: no {what} in 30 s");
            let _ = tokio::time::timeout(Duration::from_millis(200), notified).await;
        }
    }

    async fn serve<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static>(
        self,
        io: T,
    ) {
        let service = hyper::service::service_fn(move |req| {
            let s = self.clone();
            async move { Ok::<_, Infallible>(s.handle(req).await) }
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(io), service)
            .await;
    }

    async fn handle(&self, req: http::Request<Incoming>) -> http::Response<Full<Bytes>> {
        let (parts, body) = req.into_parts();
        let header = |name: http::header::HeaderName| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        let seen = Seen {
            path: parts.uri.path().to_owned(),
            content_type: header(http::header::CONTENT_TYPE),
            content_encoding: header(http::header::CONTENT_ENCODING),
            user_agent: header(http::header::USER_AGENT),
            headers: parts.headers.clone(),
            at: Instant::now(),
        };
        let request = match body.collect().await {
            Ok(b) => decode(b.to_bytes(), &seen),
            Err(_) => None,
        };
        let answer = {
            let mut st = self.state.lock().unwrap();
            st.seen.push(seen);
            match request {
                None => {
                    st.broken += 1;
                    Answer::status(400)
                }
                Some(request) => match st.script.pop_front() {
                    Some(a) if a.status != 200 => {
                        st.refused += 1;
                        a
                    }
                    scripted => {
                        st.total += request
                            .resource_spans
                            .iter()
                            .flat_map(|r| r.scope_spans.iter())
                            .map(|s| s.spans.len())
                            .sum::<usize>();
                        st.requests.push(request);
                        scripted.unwrap_or(Answer::status(200))
                    }
                },
            }
        };
        self.notify.notify_waiters();
        respond(&answer)
    }
}

fn decode(body: Bytes, seen: &Seen) -> Option<ExportTraceServiceRequest> {
    let format = BodyFormat::from_content_type(&seen.content_type)?;
    let encoding = (!seen.content_encoding.is_empty()).then_some(seen.content_encoding.as_str());
    let raw = decode_body(body, encoding, format, 64 << 20).ok()?;
    ExportTraceServiceRequest::decode(raw).ok()
}

fn respond(a: &Answer) -> http::Response<Full<Bytes>> {
    let mut b = http::Response::builder()
        .status(a.status)
        .header("content-type", "application/x-protobuf");
    if let Some(r) = &a.retry_after {
        b = b.header("retry-after", r.as_str());
    }
    let body = if a.status == 200 {
        ExportTraceServiceResponse {
            partial_success: (a.rejected > 0).then(|| ExportTracePartialSuccess {
                rejected_spans: a.rejected,
                error_message: "rejected by the test sink".into(),
            }),
        }
        .encode_to_vec()
    } else {
        Vec::new()
    };
    b.body(Full::new(Bytes::from(body))).unwrap()
}
