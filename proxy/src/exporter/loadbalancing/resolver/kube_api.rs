//! A minimal Kubernetes API client: list and watch the EndpointSlices of one Service over
//! HTTP/1.1 (hyper) with the pod's service-account token and CA.
//!
//! Why not `kube` + `k8s-openapi`: the resolver needs two GETs and four JSON fields, while those
//! crates add a large dependency tree and several minutes of cold compile on the CI machine
//! (measured figure in `docs/proxy-measurements.md`). This client does only what the resolver uses.
//!
//! Everything the API server sends is bounded before it is kept: a list answer by
//! [`MAX_LIST_BYTES`], one watch event (one line) by [`MAX_EVENT_BYTES`], an error body by
//! [`MAX_ERROR_BODY_BYTES`]. A server past a bound gets a [`KubeError::TooLarge`], never more memory.
//! Deadlines are the caller's (`k8s.rs`): the list under `timeout`, the watch under its idle timeout.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::{Body, Incoming};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use serde::Deserialize;

use crate::config::common::ClientTls;

const MIB: usize = 1024 * 1024;

/// Largest list answer read. EndpointSlices of one Service are a few hundred bytes per endpoint:
/// 32 MiB is some 100,000 endpoints, far past any gateway tier, and bounds what a broken or hostile
/// API server can make the resolver hold.
pub const MAX_LIST_BYTES: usize = 32 * MIB;

/// Largest watch event (one JSON line): one EndpointSlice holds at most 1,000 endpoints.
pub const MAX_EVENT_BYTES: usize = 4 * MIB;

/// Most of an error answer's body read (a Kubernetes `Status` is well under 1 KiB).
pub const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;

/// How much of an error body goes into the error message (logged at every retry).
const ERROR_EXCERPT_BYTES: usize = 1024;

/// `timeoutSeconds` of a watch request: the server ends a healthy watch after this; the resolver
/// then resumes from the last version seen.
pub const WATCH_TIMEOUT_SECS: u64 = 300;

/// Why a call to the API server failed.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// The API server settings cannot be used (URL, CA file, server name).
    #[error("{0}")]
    Setup(String),
    /// `http://` with a service-account token and no explicit opt-in.
    #[error(
        "{url} is plain http:// and the service-account token would be sent unencrypted; use https:// \
         or set tailgate.k8s_allow_insecure_token: true"
    )]
    InsecureToken {
        /// The API server URL.
        url: String,
    },
    /// TCP connect failed.
    #[error("connect {addr}: {source}")]
    Connect {
        /// `host:port` of the API server.
        addr: String,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// The TLS handshake failed.
    #[error("TLS with {addr}: {source}")]
    Tls {
        /// `host:port` of the API server.
        addr: String,
        /// The handshake error.
        #[source]
        source: std::io::Error,
    },
    /// The token file could not be read.
    #[error("reading the token {}: {source}", path.display())]
    Token {
        /// The token file.
        path: PathBuf,
        /// The read error.
        #[source]
        source: std::io::Error,
    },
    /// HTTP/1.1 failed (handshake, request, or reading a body).
    #[error("{what}: {source}")]
    Http {
        /// What was being done.
        what: &'static str,
        /// hyper's error.
        #[source]
        source: hyper::Error,
    },
    /// The request could not be built (a namespace or name that is not valid in a URI).
    #[error("bad request: {0}")]
    Request(#[source] http::Error),
    /// A non-2xx answer; `excerpt` is the start of its body.
    #[error("{path}: HTTP {status}: {excerpt}")]
    Status {
        /// The request path.
        path: String,
        /// The status code.
        status: hyper::StatusCode,
        /// At most [`ERROR_EXCERPT_BYTES`] of the body (lossy UTF-8).
        excerpt: String,
    },
    /// An answer past its bound; nothing of it was used.
    #[error("{what} is larger than {limit} bytes: refused")]
    TooLarge {
        /// `the list` or `a watch event`.
        what: &'static str,
        /// The bound in bytes.
        limit: usize,
    },
    /// A body that is not the JSON expected.
    #[error("decoding {what}: {source}")]
    Decode {
        /// `the list` or `a watch event`.
        what: &'static str,
        /// serde_json's error.
        #[source]
        source: serde_json::Error,
    },
}

const SERVICE_ACCOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Environment variable naming another service-account directory (tests, unusual mounts).
pub const SERVICE_ACCOUNT_ENV: &str = "TAILGATE_K8S_SERVICE_ACCOUNT_DIR";

/// The pod's service-account directory (`ca.crt`, `token`, `namespace`): the standard mount, or
/// `$TAILGATE_K8S_SERVICE_ACCOUNT_DIR` when set.
pub fn service_account_dir() -> PathBuf {
    std::env::var_os(SERVICE_ACCOUNT_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(SERVICE_ACCOUNT))
}

/// One EndpointSlice, only the fields the resolver reads.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct EndpointSlice {
    /// Name and resource version.
    pub metadata: ObjectMeta,
    /// The endpoints (pods) in this slice.
    pub endpoints: Vec<Endpoint>,
}

/// `metadata` of an object or a list.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ObjectMeta {
    /// Object name (empty for lists).
    pub name: String,
    /// Where a watch resumes.
    pub resource_version: String,
}

/// One endpoint of a slice.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Endpoint {
    /// Addresses (one for IPv4/IPv6 slices).
    pub addresses: Vec<String>,
    /// Readiness.
    pub conditions: Conditions,
    /// Pod host name (StatefulSet pods: `name-N`).
    pub hostname: Option<String>,
}

/// Endpoint conditions.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Conditions {
    /// `None` means unknown, which the API says to treat as ready.
    pub ready: Option<bool>,
}

impl Endpoint {
    /// Ready, or readiness unknown (as the API documents).
    pub fn is_ready(&self) -> bool {
        self.conditions.ready.unwrap_or(true)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SliceList {
    metadata: ObjectMeta,
    items: Vec<EndpointSlice>,
}

/// One watch event.
#[derive(Debug)]
pub enum WatchEvent {
    /// ADDED or MODIFIED.
    Upsert(EndpointSlice),
    /// DELETED.
    Deleted(EndpointSlice),
    /// BOOKMARK: only a newer resource version.
    Bookmark(String),
    /// ERROR (or a type this client does not know); the caller lists again.
    Error {
        /// 410 Gone: the version is too old, an expected end; anything else is a failure.
        gone: bool,
        /// The event type and the `Status` it carried, for the log.
        status: String,
    },
}

#[derive(Debug, Deserialize)]
struct RawEvent {
    #[serde(rename = "type")]
    kind: String,
    object: EventObject,
}

/// A watch event's object, decoded in one pass without an intermediate JSON tree: the fields of an
/// EndpointSlice, and those of the `Status` an ERROR event carries.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct EventObject {
    metadata: ObjectMeta,
    endpoints: Vec<Endpoint>,
    code: Option<u16>,
    reason: Option<String>,
    message: Option<String>,
}

impl EventObject {
    fn into_slice(self) -> EndpointSlice {
        EndpointSlice {
            metadata: self.metadata,
            endpoints: self.endpoints,
        }
    }

    fn status(&self) -> String {
        format!(
            "code {}, reason {}: {}",
            self.code.map_or_else(|| "?".to_owned(), |c| c.to_string()),
            self.reason.as_deref().unwrap_or("?"),
            self.message.as_deref().unwrap_or("")
        )
    }
}

/// Where the API server is and how to authenticate.
#[derive(Debug, Clone)]
pub struct KubeApi {
    host: String,
    port: u16,
    tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
    token_file: Option<PathBuf>,
}

impl KubeApi {
    /// `url` (`tailgate.k8s_api_server`) or the in-cluster API server
    /// (`KUBERNETES_SERVICE_HOST`/`_PORT`); the service account's CA and token when present.
    /// A plain `http://` URL is refused unless `allow_insecure_token` (the token would travel in
    /// clear text; validate refuses the same config with its key path).
    pub fn new(url: Option<&str>, allow_insecure_token: bool) -> Result<Self, KubeError> {
        let (https, host, port) = match url {
            Some(u) => parse_url(u).map_err(KubeError::Setup)?,
            None => {
                let host = std::env::var("KUBERNETES_SERVICE_HOST").map_err(|_| {
                    KubeError::Setup("not running in a Kubernetes pod (KUBERNETES_SERVICE_HOST is unset); set tailgate.k8s_api_server".to_owned())
                })?;
                let port = std::env::var("KUBERNETES_SERVICE_PORT")
                    .ok()
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(443);
                (true, host, port)
            }
        };
        if !https && !allow_insecure_token {
            return Err(KubeError::InsecureToken {
                url: url.unwrap_or_default().to_owned(),
            });
        }
        let sa = service_account_dir();
        let tls = if https {
            let ca = sa.join("ca.crt");
            let settings = ClientTls {
                ca_file: ca.exists().then(|| ca.to_string_lossy().into_owned()),
                ..ClientTls::default()
            };
            let config =
                crate::tls::client_config(&settings, b"http/1.1").map_err(KubeError::Setup)?;
            let name = ServerName::try_from(host.trim_matches(['[', ']']).to_owned())
                .map_err(|e| KubeError::Setup(format!("invalid API server name {host:?}: {e}")))?;
            Some((config, name))
        } else {
            None
        };
        let token = sa.join("token");
        Ok(KubeApi {
            host,
            port,
            tls,
            token_file: token.exists().then_some(token),
        })
    }

    /// Lists the slices of Service `name` in `namespace`; returns the list's resource version.
    /// An answer past [`MAX_LIST_BYTES`] is refused whole.
    pub async fn list(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<(String, Vec<EndpointSlice>), KubeError> {
        let mut body = self.get(&slices_path(namespace, name, None)).await?;
        let bytes = read_list(&mut body).await?;
        let list: SliceList =
            serde_json::from_slice(&bytes).map_err(|source| KubeError::Decode {
                what: "the list",
                source,
            })?;
        Ok((list.metadata.resource_version, list.items))
    }

    /// Starts a watch from `resource_version`.
    pub async fn watch(
        &self,
        namespace: &str,
        name: &str,
        resource_version: &str,
    ) -> Result<Watch, KubeError> {
        let body = self
            .get(&slices_path(namespace, name, Some(resource_version)))
            .await?;
        Ok(Watch {
            body,
            lines: Lines::new(MAX_EVENT_BYTES),
        })
    }

    async fn get(&self, path: &str) -> Result<Incoming, KubeError> {
        let addr = format!("{}:{}", self.host, self.port);
        let tcp = tokio::net::TcpStream::connect(&addr)
            .await
            .map_err(|source| KubeError::Connect {
                addr: addr.clone(),
                source,
            })?;
        let _ = tcp.set_nodelay(true);
        let mut request = hyper::Request::get(path)
            .header("host", &addr)
            .header("accept", "application/json");
        if let Some(file) = &self.token_file {
            // Re-read every time: projected tokens rotate.
            let token = std::fs::read_to_string(file).map_err(|source| KubeError::Token {
                path: file.clone(),
                source,
            })?;
            request = request.header("authorization", format!("Bearer {}", token.trim()));
        }
        let request = request
            .body(Empty::<Bytes>::new())
            .map_err(KubeError::Request)?;
        let response = match &self.tls {
            None => send(TokioIo::new(tcp), request).await?,
            Some((config, name)) => {
                let stream = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|source| KubeError::Tls { addr, source })?;
                send(TokioIo::new(stream), request).await?
            }
        };
        let status = response.status();
        if !status.is_success() {
            let mut body = response.into_body();
            // Best effort: a body that breaks off still leaves the status to report.
            let (bytes, _) = read_up_to(&mut body, MAX_ERROR_BODY_BYTES)
                .await
                .unwrap_or_default();
            return Err(KubeError::Status {
                path: path.to_owned(),
                status,
                excerpt: excerpt(&bytes),
            });
        }
        Ok(response.into_body())
    }
}

async fn send<T>(
    io: T,
    request: hyper::Request<Empty<Bytes>>,
) -> Result<hyper::Response<Incoming>, KubeError>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|source| KubeError::Http {
            what: "HTTP handshake",
            source,
        })?;
    tokio::task::spawn_local(async move {
        let _ = conn.await;
    });
    sender
        .send_request(request)
        .await
        .map_err(|source| KubeError::Http {
            what: "request",
            source,
        })
}

// === bounded reading ===

/// Reads `body` until its end or until `limit` bytes; the flag says the body had more (the rest
/// is left unread). Memory held: at most `limit` bytes.
async fn read_up_to<B>(body: &mut B, limit: usize) -> Result<(Vec<u8>, bool), B::Error>
where
    B: Body<Data = Bytes> + Unpin,
{
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue; // trailers
        };
        let room = limit - out.len();
        if data.len() > room {
            out.extend_from_slice(&data[..room]);
            return Ok((out, true));
        }
        out.extend_from_slice(&data);
    }
    Ok((out, false))
}

/// A whole list answer, or [`KubeError::TooLarge`] past [`MAX_LIST_BYTES`] (refused at once when
/// `Content-Length` says so).
async fn read_list<B>(body: &mut B) -> Result<Vec<u8>, KubeError>
where
    B: Body<Data = Bytes, Error = hyper::Error> + Unpin,
{
    let too_large = KubeError::TooLarge {
        what: "the list",
        limit: MAX_LIST_BYTES,
    };
    if body.size_hint().lower() > MAX_LIST_BYTES as u64 {
        return Err(too_large);
    }
    match read_up_to(body, MAX_LIST_BYTES).await {
        Ok((_, true)) => Err(too_large),
        Ok((bytes, false)) => Ok(bytes),
        Err(source) => Err(KubeError::Http {
            what: "reading the list",
            source,
        }),
    }
}

/// The start of an error body for a message: at most [`ERROR_EXCERPT_BYTES`], lossy UTF-8.
fn excerpt(body: &[u8]) -> String {
    let cut = body.len().min(ERROR_EXCERPT_BYTES);
    let mut text = String::from_utf8_lossy(&body[..cut]).into_owned();
    if cut < body.len() {
        text.push_str(" [...]");
    }
    text
}

/// Splits a byte stream into lines of at most `max` bytes (newline excluded), keeping at most
/// `max` bytes of an unfinished line: the framing of a watch (one JSON event per line).
#[derive(Debug)]
struct Lines {
    buf: Vec<u8>,
    /// How much of `buf` is known to hold no newline (so each byte is searched once).
    scanned: usize,
    max: usize,
}

impl Lines {
    fn new(max: usize) -> Self {
        Lines {
            buf: Vec::new(),
            scanned: 0,
            max,
        }
    }

    fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete line; `None` when more bytes are needed. A line longer than `max`, or an
    /// unfinished one already longer, is an error: the caller drops the stream.
    fn next_line(&mut self) -> Result<Option<Vec<u8>>, KubeError> {
        let too_large = KubeError::TooLarge {
            what: "a watch event",
            limit: self.max,
        };
        match self.buf[self.scanned..].iter().position(|b| *b == b'\n') {
            Some(at) => {
                let end = self.scanned + at;
                self.scanned = 0;
                if end > self.max {
                    return Err(too_large);
                }
                let line = self.buf[..end].to_vec();
                self.buf.drain(..=end);
                Ok(Some(line))
            }
            None if self.buf.len() > self.max => Err(too_large),
            None => {
                self.scanned = self.buf.len();
                Ok(None)
            }
        }
    }

    /// What is left when the stream ended (an unterminated last line).
    fn take_rest(&mut self) -> Vec<u8> {
        self.scanned = 0;
        std::mem::take(&mut self.buf)
    }
}

fn slices_path(namespace: &str, name: &str, watch_from: Option<&str>) -> String {
    let mut path = format!(
        "/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3D{name}"
    );
    if let Some(rv) = watch_from {
        // The server ends a watch after timeoutSeconds; the resolver then resumes from the last
        // version it saw. Bookmarks keep that version fresh while nothing changes, and show a
        // quiet watch is alive (the resolver's idle timeout).
        path.push_str(&format!(
            "&watch=true&allowWatchBookmarks=true&timeoutSeconds={WATCH_TIMEOUT_SECS}&resourceVersion={rv}"
        ));
    }
    path
}

fn parse_url(url: &str) -> Result<(bool, String, u16), String> {
    let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(format!("{url:?} must start with http:// or https://"));
    };
    let hostport = rest.trim_end_matches('/');
    match crate::config::common::split_host_port(hostport) {
        Ok((host, port)) => Ok((https, host, port)),
        Err(_) => Ok((https, hostport.to_owned(), if https { 443 } else { 80 })),
    }
}

/// A running watch: newline-delimited JSON events, each at most [`MAX_EVENT_BYTES`].
pub struct Watch {
    body: Incoming,
    lines: Lines,
}

impl Watch {
    /// The next event; `None` when the server ended the watch. No deadline of its own: the caller
    /// bounds the wait (a silent connection would otherwise wait forever).
    pub async fn next(&mut self) -> Result<Option<WatchEvent>, KubeError> {
        loop {
            if let Some(line) = self.lines.next_line()? {
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return parse_event(&line).map(Some);
            }
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.lines.push(&data);
                    }
                }
                Some(Err(source)) => {
                    return Err(KubeError::Http {
                        what: "watch stream",
                        source,
                    })
                }
                None => {
                    let rest = self.lines.take_rest();
                    if rest.iter().all(u8::is_ascii_whitespace) {
                        return Ok(None);
                    }
                    return parse_event(&rest).map(Some);
                }
            }
        }
    }
}

fn parse_event(line: &[u8]) -> Result<WatchEvent, KubeError> {
    let raw: RawEvent = serde_json::from_slice(line).map_err(|source| KubeError::Decode {
        what: "a watch event",
        source,
    })?;
    Ok(match raw.kind.as_str() {
        "ADDED" | "MODIFIED" => WatchEvent::Upsert(raw.object.into_slice()),
        "DELETED" => WatchEvent::Deleted(raw.object.into_slice()),
        "BOOKMARK" => WatchEvent::Bookmark(raw.object.metadata.resource_version),
        _ => WatchEvent::Error {
            gone: raw.object.code == Some(410),
            status: format!("{} event: {}", raw.kind, raw.object.status()),
        },
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use http_body_util::{Full, StreamBody};

    use super::*;

    #[test]
    fn events_and_urls_parse() {
        let ev = parse_event(br#"{"type":"ADDED","object":{"metadata":{"name":"gw-abc","resourceVersion":"7"},"endpoints":[{"addresses":["10.0.0.1"],"conditions":{"ready":false},"hostname":"gw-0"}]}}"#);
        let Ok(WatchEvent::Upsert(s)) = ev else {
            panic!("{ev:?}")
        };
        assert_eq!(s.metadata.resource_version, "7");
        assert!(!s.endpoints[0].is_ready());
        let ev = parse_event(
            br#"{"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired","message":"too old resource version"}}"#,
        );
        let Ok(WatchEvent::Error { gone, status }) = ev else {
            panic!("{ev:?}")
        };
        assert!(gone);
        assert_eq!(
            status,
            "ERROR event: code 410, reason Expired: too old resource version"
        );
        let ev = parse_event(br#"{"type":"ERROR","object":{"kind":"Status","code":500}}"#);
        assert!(
            matches!(ev, Ok(WatchEvent::Error { gone: false, .. })),
            "{ev:?}"
        );
        let ev =
            parse_event(br#"{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"9"}}}"#);
        assert!(
            matches!(ev, Ok(WatchEvent::Bookmark(ref v)) if v == "9"),
            "{ev:?}"
        );
        assert_eq!(
            parse_url("http://127.0.0.1:8080/"),
            Ok((false, "127.0.0.1".to_owned(), 8080))
        );
        assert_eq!(
            parse_url("https://kubernetes.default.svc"),
            Ok((true, "kubernetes.default.svc".to_owned(), 443))
        );
        let watch = slices_path("obs", "gw", Some("5"));
        assert!(watch.contains("watch=true"), "{watch}");
        assert!(watch.contains("allowWatchBookmarks=true"), "{watch}");
    }

    #[test]
    fn plain_http_needs_the_explicit_opt_in() {
        let refused = KubeApi::new(Some("http://127.0.0.1:1"), false);
        assert!(
            matches!(refused, Err(KubeError::InsecureToken { .. })),
            "{refused:?}"
        );
        assert!(KubeApi::new(Some("http://127.0.0.1:1"), true).is_ok());
    }

    #[test]
    fn lines_are_split_across_pushes_and_bounded() {
        let mut lines = Lines::new(8);
        lines.push(b"abc");
        assert_eq!(lines.next_line().unwrap(), None);
        lines.push(b"de\nfg\n\nhij");
        assert_eq!(lines.next_line().unwrap().as_deref(), Some(&b"abcde"[..]));
        assert_eq!(lines.next_line().unwrap().as_deref(), Some(&b"fg"[..]));
        assert_eq!(lines.next_line().unwrap().as_deref(), Some(&b""[..]));
        assert_eq!(lines.next_line().unwrap(), None);
        assert_eq!(lines.take_rest(), b"hij");
        // Exactly `max` bytes is a line; one more is refused, whole or unfinished.
        lines.push(b"12345678\n");
        assert_eq!(
            lines.next_line().unwrap().as_deref(),
            Some(&b"12345678"[..])
        );
        lines.push(b"123456789\n");
        assert!(matches!(
            lines.next_line(),
            Err(KubeError::TooLarge { limit: 8, .. })
        ));
        let mut lines = Lines::new(8);
        lines.push(b"12345");
        assert_eq!(lines.next_line().unwrap(), None);
        lines.push(b"6789");
        assert!(matches!(lines.next_line(), Err(KubeError::TooLarge { .. })));
    }

    fn chunks(
        parts: Vec<Vec<u8>>,
    ) -> impl Body<Data = Bytes, Error = std::convert::Infallible> + Unpin {
        let frames = parts
            .into_iter()
            .map(|p| Ok(hyper::body::Frame::data(Bytes::from(p))));
        StreamBody::new(futures_util::stream::iter(frames.collect::<Vec<_>>()))
    }

    #[tokio::test]
    async fn bodies_are_read_up_to_their_bound() {
        let mut body = chunks(vec![vec![b'a'; 5], vec![b'b'; 5]]);
        let (bytes, more) = read_up_to(&mut body, 10).await.unwrap();
        assert_eq!((bytes.len(), more), (10, false));
        let mut body = chunks(vec![vec![b'a'; 5], vec![b'b'; 5], vec![b'c'; 1]]);
        let (bytes, more) = read_up_to(&mut body, 10).await.unwrap();
        assert_eq!((bytes.len(), more), (10, true));
        // A huge error body: only the bound is read, and only the excerpt is kept for the message.
        let mut body = Full::new(Bytes::from(vec![b'x'; 3 * MAX_ERROR_BODY_BYTES]));
        let (bytes, more) = read_up_to(&mut body, MAX_ERROR_BODY_BYTES).await.unwrap();
        assert_eq!((bytes.len(), more), (MAX_ERROR_BODY_BYTES, true));
        let text = excerpt(&bytes);
        assert_eq!(text.len(), ERROR_EXCERPT_BYTES + " [...]".len());
        assert_eq!(excerpt(b"Forbidden"), "Forbidden");
    }
}
