//! A minimal Kubernetes API client: list and watch the EndpointSlices of one Service over
//! HTTP/1.1 (hyper) with the pod's service-account token and CA.
//!
//! Why not `kube` + `k8s-openapi`: the resolver needs two GETs and four JSON fields, while those
//! crates add a large dependency tree and several minutes of cold compile on the CI machine
//! (measured figure in `docs/proxy-measurements.md`). This client does only what the resolver uses.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use serde::Deserialize;

use crate::config::common::ClientTls;

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
    /// ERROR: typically 410 Gone (the version is too old); the caller lists again.
    Error(String),
}

#[derive(Debug, Deserialize)]
struct RawEvent {
    #[serde(rename = "type")]
    kind: String,
    object: serde_json::Value,
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
    pub fn new(url: Option<&str>) -> Result<Self, String> {
        let (https, host, port) = match url {
            Some(u) => parse_url(u)?,
            None => {
                let host = std::env::var("KUBERNETES_SERVICE_HOST").map_err(|_| {
                    "not running in a Kubernetes pod (KUBERNETES_SERVICE_HOST is unset); set tailgate.k8s_api_server".to_owned()
                })?;
                let port = std::env::var("KUBERNETES_SERVICE_PORT")
                    .ok()
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(443);
                (true, host, port)
            }
        };
        let sa = service_account_dir();
        let tls = if https {
            let ca = sa.join("ca.crt");
            let settings = ClientTls {
                ca_file: ca.exists().then(|| ca.to_string_lossy().into_owned()),
                ..ClientTls::default()
            };
            let config = crate::tls::client_config(&settings, b"http/1.1")?;
            let name = ServerName::try_from(host.trim_matches(['[', ']']).to_owned())
                .map_err(|e| format!("invalid API server name {host:?}: {e}"))?;
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
    pub async fn list(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<(String, Vec<EndpointSlice>), String> {
        let body = self.get(&slices_path(namespace, name, None)).await?;
        let bytes = body
            .collect()
            .await
            .map_err(|e| format!("reading the list: {e}"))?
            .to_bytes();
        let list: SliceList =
            serde_json::from_slice(&bytes).map_err(|e| format!("decoding the list: {e}"))?;
        Ok((list.metadata.resource_version, list.items))
    }

    /// Starts a watch from `resource_version`.
    pub async fn watch(
        &self,
        namespace: &str,
        name: &str,
        resource_version: &str,
    ) -> Result<Watch, String> {
        let body = self
            .get(&slices_path(namespace, name, Some(resource_version)))
            .await?;
        Ok(Watch {
            body,
            buf: Vec::new(),
        })
    }

    async fn get(&self, path: &str) -> Result<Incoming, String> {
        let addr = format!("{}:{}", self.host, self.port);
        let tcp = tokio::net::TcpStream::connect(&addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let mut request = hyper::Request::get(path)
            .header("host", &addr)
            .header("accept", "application/json");
        if let Some(file) = &self.token_file {
            // Re-read every time: projected tokens rotate.
            let token =
                std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
            request = request.header("authorization", format!("Bearer {}", token.trim()));
        }
        let request = request
            .body(Empty::<Bytes>::new())
            .map_err(|e| format!("bad request: {e}"))?;
        let response = match &self.tls {
            None => send(TokioIo::new(tcp), request).await?,
            Some((config, name)) => {
                let stream = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|e| format!("TLS with {addr}: {e}"))?;
                send(TokioIo::new(stream), request).await?
            }
        };
        let status = response.status();
        if !status.is_success() {
            let body = response
                .into_body()
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            return Err(format!(
                "{path}: HTTP {status}: {}",
                String::from_utf8_lossy(&body)
            ));
        }
        Ok(response.into_body())
    }
}

async fn send<T>(
    io: T,
    request: hyper::Request<Empty<Bytes>>,
) -> Result<hyper::Response<Incoming>, String>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    tokio::task::spawn_local(async move {
        let _ = conn.await;
    });
    sender
        .send_request(request)
        .await
        .map_err(|e| format!("request: {e}"))
}

fn slices_path(namespace: &str, name: &str, watch_from: Option<&str>) -> String {
    let mut path = format!(
        "/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3D{name}"
    );
    if let Some(rv) = watch_from {
        // The server ends a watch after timeoutSeconds; the resolver then resumes from the last
        // version it saw. Bookmarks keep that version fresh while nothing changes.
        path.push_str(&format!(
            "&watch=true&allowWatchBookmarks=true&timeoutSeconds=300&resourceVersion={rv}"
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

/// A running watch: newline-delimited JSON events.
pub struct Watch {
    body: Incoming,
    buf: Vec<u8>,
}

impl Watch {
    /// The next event; `None` when the server ended the watch.
    pub async fn next(&mut self) -> Result<Option<WatchEvent>, String> {
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return parse_event(&line).map(Some);
            }
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
                Some(Err(e)) => return Err(format!("watch stream: {e}")),
                None if self.buf.iter().all(u8::is_ascii_whitespace) => return Ok(None),
                None => {
                    let rest = std::mem::take(&mut self.buf);
                    return parse_event(&rest).map(Some);
                }
            }
        }
    }
}

fn parse_event(line: &[u8]) -> Result<WatchEvent, String> {
    let raw: RawEvent =
        serde_json::from_slice(line).map_err(|e| format!("decoding a watch event: {e}"))?;
    let slice = || -> Result<EndpointSlice, String> {
        serde_json::from_value(raw.object.clone())
            .map_err(|e| format!("decoding an EndpointSlice: {e}"))
    };
    Ok(match raw.kind.as_str() {
        "ADDED" | "MODIFIED" => WatchEvent::Upsert(slice()?),
        "DELETED" => WatchEvent::Deleted(slice()?),
        "BOOKMARK" => WatchEvent::Bookmark(slice()?.metadata.resource_version),
        _ => WatchEvent::Error(raw.object.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_and_urls_parse() {
        let ev = parse_event(br#"{"type":"ADDED","object":{"metadata":{"name":"gw-abc","resourceVersion":"7"},"endpoints":[{"addresses":["10.0.0.1"],"conditions":{"ready":false},"hostname":"gw-0"}]}}"#);
        let Ok(WatchEvent::Upsert(s)) = ev else {
            panic!("{ev:?}")
        };
        assert_eq!(s.metadata.resource_version, "7");
        assert!(!s.endpoints[0].is_ready());
        let ev = parse_event(br#"{"type":"ERROR","object":{"kind":"Status","code":410}}"#);
        assert!(matches!(ev, Ok(WatchEvent::Error(_))), "{ev:?}");
        assert_eq!(
            parse_url("http://127.0.0.1:8080/"),
            Ok((false, "127.0.0.1".to_owned(), 8080))
        );
        assert_eq!(
            parse_url("https://kubernetes.default.svc"),
            Ok((true, "kubernetes.default.svc".to_owned(), 443))
        );
        assert!(slices_path("obs", "gw", Some("5")).contains("watch=true"));
    }
}
