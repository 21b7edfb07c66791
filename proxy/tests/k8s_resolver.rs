//! The k8s resolver against a fake API server started by the test: EndpointSlice list and watch
//! with a not-ready endpoint, a removal, a watch the server ends and a 410 Gone; the in-cluster
//! path (HTTPS with the service account's CA, bearer token re-read after rotation); and a hostile
//! or broken server: a watch that never answers, an oversized list, an oversized watch event and a
//! huge error body.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod lb_workload;
mod support;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Channel, Full};
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use lb_workload::{accepted, ip, metric, sinks_on_one_port, Traffic};
use serde_json::json;
use support::Tailgate;

// === a fake API server ===

#[derive(Default)]
struct ApiState {
    /// Resource version of the latest change.
    rv: u64,
    /// EndpointSlice objects by name.
    slices: BTreeMap<String, serde_json::Value>,
    /// Open watch streams.
    watchers: Vec<http_body_util::channel::Sender<Bytes, Infallible>>,
    lists: u64,
    watches: u64,
    /// `resourceVersion` of each watch request, in order.
    watch_versions: Vec<String>,
    /// The bearer token every request must carry, if any.
    token: Option<String>,
    /// Requests answered 401 for a missing or wrong token.
    unauthorized: u64,
    /// Watch requests get nothing back, not even headers (a connection dropped without a FIN).
    blackhole_watches: bool,
    /// Bytes of padding (an unknown metadata field) added to every list answer.
    list_padding: usize,
    /// Lists are answered 500 with a body of this many bytes.
    list_error_body: Option<usize>,
}

#[derive(Clone, Default)]
struct FakeApi {
    state: Arc<Mutex<ApiState>>,
}

impl FakeApi {
    async fn start(&self) -> SocketAddr {
        self.start_with(None).await
    }

    /// Serves HTTP, or HTTPS with `tls`.
    async fn start_with(&self, tls: Option<Arc<rustls::ServerConfig>>) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let api = self.clone();
        support::accept_loop(listener, tls, move |conn| {
            api.clone().serve(TokioIo::new(conn))
        });
        addr
    }

    async fn serve<T>(self, io: T)
    where
        T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let service = hyper::service::service_fn(move |req| {
            let api = self.clone();
            async move {
                let blackhole = api.state.lock().unwrap().blackhole_watches;
                if blackhole && req.uri().query().unwrap_or("").contains("watch=true") {
                    api.state.lock().unwrap().watches += 1;
                    // Hold the connection open and say nothing, ever.
                    std::future::pending::<()>().await;
                }
                Ok::<_, Infallible>(api.handle(&req))
            }
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(io, service)
            .await;
    }

    /// From now on every request must carry `Authorization: Bearer <token>`.
    fn require_token(&self, token: &str) {
        self.state.lock().unwrap().token = Some(token.to_owned());
    }

    fn handle<B>(&self, req: &hyper::Request<B>) -> hyper::Response<BoxBody<Bytes, Infallible>> {
        {
            let mut st = self.state.lock().unwrap();
            if let Some(token) = &st.token {
                let want = format!("Bearer {token}");
                let got = req.headers().get("authorization").map(|v| v.as_bytes());
                if got != Some(want.as_bytes()) {
                    st.unauthorized += 1;
                    let mut r =
                        hyper::Response::new(Full::new(Bytes::from("Unauthorized")).boxed());
                    *r.status_mut() = hyper::StatusCode::UNAUTHORIZED;
                    return r;
                }
            }
        }
        let path = req.uri().path().to_owned();
        let query = req.uri().query().unwrap_or("").to_owned();
        assert_eq!(
            path,
            "/apis/discovery.k8s.io/v1/namespaces/obs/endpointslices"
        );
        assert!(
            query.contains("labelSelector=kubernetes.io%2Fservice-name%3Dgw"),
            "{query}"
        );
        let mut st = self.state.lock().unwrap();
        if query.contains("watch=true") {
            st.watches += 1;
            let rv = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("resourceVersion="))
                .unwrap_or("")
                .to_owned();
            st.watch_versions.push(rv);
            let (tx, body) = Channel::<Bytes, Infallible>::new(16);
            st.watchers.push(tx);
            return hyper::Response::new(body.boxed());
        }
        st.lists += 1;
        if let Some(size) = st.list_error_body {
            let mut r = hyper::Response::new(Full::new(Bytes::from(vec![b'e'; size])).boxed());
            *r.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
            return r;
        }
        let list = json!({
            "kind": "EndpointSliceList",
            "apiVersion": "discovery.k8s.io/v1",
            "metadata": {"resourceVersion": st.rv.to_string(), "padding": "x".repeat(st.list_padding)},
            "items": st.slices.values().collect::<Vec<_>>(),
        });
        hyper::Response::new(Full::new(Bytes::from(list.to_string())).boxed())
    }

    /// Adds or replaces slice `name`: (address, ready) endpoints.
    fn set_slice(&self, name: &str, endpoints: &[(Ipv4Addr, bool)]) {
        let mut st = self.state.lock().unwrap();
        st.rv += 1;
        let object = json!({
            "metadata": {"name": name, "namespace": "obs", "resourceVersion": st.rv.to_string(),
                         "labels": {"kubernetes.io/service-name": "gw"}},
            "addressType": "IPv4",
            "endpoints": endpoints.iter().map(|(ip, ready)| json!({
                "addresses": [ip.to_string()],
                "conditions": {"ready": ready, "serving": ready, "terminating": false},
            })).collect::<Vec<_>>(),
            "ports": [{"name": "otlp-grpc", "port": 4317, "protocol": "TCP"}],
        });
        let kind = if st.slices.contains_key(name) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        st.slices.insert(name.to_owned(), object.clone());
        broadcast(&mut st, &json!({"type": kind, "object": object}));
    }

    fn delete_slice(&self, name: &str) {
        let mut st = self.state.lock().unwrap();
        st.rv += 1;
        let mut object = st.slices.remove(name).unwrap();
        object["metadata"]["resourceVersion"] = json!(st.rv.to_string());
        broadcast(&mut st, &json!({"type": "DELETED", "object": object}));
    }

    /// Ends every open watch, as the server does when `timeoutSeconds` passes.
    fn end_watches(&self) {
        self.state.lock().unwrap().watchers.clear();
    }

    /// Tells every watcher its version is too old (410 Gone), then ends the watches.
    fn expire_watches(&self) {
        let mut st = self.state.lock().unwrap();
        let gone = json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1",
            "status": "Failure", "reason": "Expired", "code": 410}});
        broadcast(&mut st, &gone);
        st.watchers.clear();
    }

    fn counts(&self) -> (u64, u64) {
        let st = self.state.lock().unwrap();
        (st.lists, st.watches)
    }

    fn open_watches(&self) -> usize {
        self.state.lock().unwrap().watchers.len()
    }
}

fn broadcast(st: &mut ApiState, event: &serde_json::Value) {
    let line = Bytes::from(format!("{event}\n"));
    st.watchers
        .retain_mut(|tx| tx.try_send(Frame::data(line.clone())).is_ok());
}

/// Polls `cond` (a generous deadline) without sending traffic.
async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await; // polling
    }
}

fn config(api: SocketAddr, port: u16) -> String {
    format!(
        "
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
processors:
  batch:
    timeout: 20ms
exporters:
  loadbalancing:
    protocol:
      otlp:
        tls: {{insecure: true}}
        compression: none
        retry_on_failure: {{initial_interval: 50ms, max_interval: 100ms}}
    resolver:
      k8s:
        service: gw.obs
        ports: [{port}]
        timeout: 2s
    tailgate:
      k8s_api_server: http://{api}
      k8s_allow_insecure_token: true
service:
  telemetry:
    metrics:
      address: 127.0.0.1:0
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [loadbalancing]
"
    )
}

const BACKENDS: &str = "otelcol_loadbalancer_num_backends{resolver=\"k8s\"}";
const FAILED: &str = "otelcol_loadbalancer_num_resolutions{resolver=\"k8s\",success=\"false\"}";

/// [`config`] with `tailgate.k8s_watch_idle_timeout: idle`.
fn config_with_idle(api: SocketAddr, port: u16, idle: &str) -> String {
    config(api, port).replace(
        "k8s_allow_insecure_token: true\n",
        &format!("k8s_allow_insecure_token: true\n      k8s_watch_idle_timeout: {idle}\n"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_table_follows_endpointslices_through_watch_restarts() {
    let (sinks, port) = sinks_on_one_port(3).await;
    let api = FakeApi::default();
    api.set_slice("gw-a", &[(ip(2), true), (ip(3), false)]);
    let api_addr = api.start().await;
    let tg = Tailgate::start(&config(api_addr, port), &["--cores", "2"]);
    let mut traffic = Traffic::new(5, tg.grpc());

    // The not-ready endpoint is left out.
    traffic
        .until("one ready backend", || metric(&tg, BACKENDS) == 1.0)
        .await;
    traffic.settle(&sinks).await;
    assert_eq!(accepted(&sinks)[1..], [0, 0]);

    // It becomes ready, and a second slice appears: every backend gets a share.
    api.set_slice("gw-a", &[(ip(2), true), (ip(3), true)]);
    api.set_slice("gw-b", &[(ip(4), true)]);
    traffic
        .until("three backends receiving", || {
            metric(&tg, BACKENDS) == 3.0 && accepted(&sinks).iter().all(|&n| n > 0)
        })
        .await;

    // A slice is deleted: its backend gets nothing more.
    api.delete_slice("gw-b");
    traffic
        .until("two backends", || metric(&tg, BACKENDS) == 2.0)
        .await;
    traffic.settle(&sinks).await;
    let before = accepted(&sinks);
    for _ in 0..20 {
        traffic.send_one().await;
    }
    traffic.settle(&sinks).await;
    let after = accepted(&sinks);
    assert_eq!(after[2], before[2], "deleted slice's backend got traffic");

    // The server ends the watch: the resolver resumes from the last version, without listing.
    let (lists, watches) = api.counts();
    api.end_watches();
    wait_for("a new watch", || api.counts().1 > watches).await;
    let last_rv = api.state.lock().unwrap().rv.to_string();
    assert_eq!(
        api.state.lock().unwrap().watch_versions.last(),
        Some(&last_rv)
    );
    assert_eq!(api.counts().0, lists, "resuming a watch needs no list");
    api.set_slice("gw-a", &[(ip(2), true), (ip(3), false)]);
    traffic
        .until("one backend after the restart", || {
            metric(&tg, BACKENDS) == 1.0
        })
        .await;

    // 410 Gone: the resolver lists again and keeps following.
    api.expire_watches();
    wait_for("a new list", || api.counts().0 > lists).await;
    api.set_slice("gw-c", &[(ip(4), true)]);
    traffic
        .until("two backends after the relist", || {
            metric(&tg, BACKENDS) == 2.0
        })
        .await;
    traffic.settle(&sinks).await;
    let status = tg.terminate();
    assert!(status.success(), "{status}");
}

/// In a pod: no `k8s_api_server`, so `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`
/// with the service account's CA, token and namespace (here from a test directory named by
/// `TAILGATE_K8S_SERVICE_ACCOUNT_DIR`). The token is rotated mid-run: the next request must carry
/// the new one (the API answers 401 to anything else).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_cluster_https_uses_the_service_account_ca_token_and_namespace() {
    let (sinks, port) = sinks_on_one_port(2).await;
    let (ca_pem, server_tls) = support::test_pki("127.0.0.1", b"http/1.1");
    let sa = support::scratch_dir();
    std::fs::write(sa.join("ca.crt"), ca_pem).unwrap();
    std::fs::write(sa.join("token"), "token-1\n").unwrap();
    std::fs::write(sa.join("namespace"), "obs\n").unwrap();
    let api = FakeApi::default();
    api.require_token("token-1");
    api.set_slice("gw-a", &[(ip(2), true)]);
    let api_addr = api.start_with(Some(server_tls)).await;
    // The in-cluster form: no namespace in `service`, no `tailgate.k8s_api_server`.
    let config = config(api_addr, port)
        .replace("service: gw.obs", "service: gw")
        .replace(
            &format!("    tailgate:\n      k8s_api_server: http://{api_addr}\n      k8s_allow_insecure_token: true\n"),
            "",
        );
    assert!(!config.contains("k8s_api_server"), "{config}");
    let api_port = api_addr.port().to_string();
    let tg = Tailgate::start_with_env(
        &config,
        &["--cores", "2"],
        &[
            ("KUBERNETES_SERVICE_HOST", "127.0.0.1"),
            ("KUBERNETES_SERVICE_PORT", &api_port),
            ("TAILGATE_K8S_SERVICE_ACCOUNT_DIR", sa.to_str().unwrap()),
        ],
    );
    let mut traffic = Traffic::new(4, tg.grpc());
    traffic
        .until("one backend over HTTPS", || metric(&tg, BACKENDS) == 1.0)
        .await;
    for _ in 0..20 {
        traffic.send_one().await;
    }
    traffic.settle(&sinks).await;
    assert!(accepted(&sinks)[0] > 0);

    // Rotation: the kubelet rewrites the token file; the next watch must present the new token.
    std::fs::write(sa.join("token"), "token-2\n").unwrap();
    api.require_token("token-2");
    let (_, watches) = api.counts();
    api.end_watches();
    wait_for("a new watch", || api.counts().1 > watches).await;
    api.set_slice("gw-b", &[(ip(3), true)]);
    traffic
        .until("two backends after the token rotation", || {
            metric(&tg, BACKENDS) == 2.0 && accepted(&sinks).iter().all(|&n| n > 0)
        })
        .await;
    assert_eq!(
        api.state.lock().unwrap().unauthorized,
        0,
        "a request without the current token"
    );
    traffic.settle(&sinks).await;
    assert_eq!(accepted(&sinks).iter().sum::<u64>(), traffic.sent);
}

// === a hostile or broken API server ===

/// A fake API server holding slice `gw-a` (one ready endpoint) with `prepare` applied to its
/// state, and tailgate (one core) following it with the config `yaml` makes from its address.
/// Returns once tailgate has listed (`gw-a` published, or the first list failed with `prepare`).
async fn follow_gw_a(
    port: u16,
    prepare: impl FnOnce(&mut ApiState),
    yaml: impl FnOnce(SocketAddr, u16) -> String,
) -> (FakeApi, Tailgate) {
    let api = FakeApi::default();
    api.set_slice("gw-a", &[(ip(2), true)]);
    prepare(&mut api.state.lock().unwrap());
    let api_addr = api.start().await;
    let tg = Tailgate::start(&yaml(api_addr, port), &["--cores", "1"]);
    wait_for("a first list", || api.counts().0 >= 1).await;
    (api, tg)
}

/// Lists, watches and counted failures at one moment, to wait for what follows.
struct Seen {
    lists: u64,
    watches: u64,
    failed: f64,
}

impl Seen {
    /// Waits until gw-a is published and a watch is open, then takes the counts.
    async fn watching(api: &FakeApi, tg: &Tailgate) -> Seen {
        wait_for("one backend", || metric(tg, BACKENDS) == 1.0).await;
        wait_for("an open watch", || api.open_watches() >= 1).await;
        let (lists, watches) = api.counts();
        Seen {
            lists,
            watches,
            failed: metric(tg, FAILED),
        }
    }

    /// Waits for a counted failure and a list after it; the last set must have been kept.
    async fn refused_then_listed(&self, api: &FakeApi, tg: &Tailgate, what: &str) {
        wait_for(what, || {
            api.counts().0 > self.lists && metric(tg, FAILED) > self.failed
        })
        .await;
        assert_eq!(metric(tg, BACKENDS), 1.0, "{what}: the answer was used");
    }
}

/// A watch request answered with nothing at all (the TCP connection open, not a byte back), as
/// after a connection a NAT forgot: after `k8s_watch_idle_timeout` the resolver gives the watch up,
/// counts it, and lists again, so a change the watch never delivered still arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_watch_is_given_up_after_its_idle_timeout_and_the_slices_listed_again() {
    let (_sinks, port) = sinks_on_one_port(2).await;
    let (api, tg) = follow_gw_a(
        port,
        |st| st.blackhole_watches = true,
        |api, port| config_with_idle(api, port, "500ms"),
    )
    .await;
    wait_for("one backend", || metric(&tg, BACKENDS) == 1.0).await;
    wait_for("a watch request", || api.counts().1 >= 1).await;
    // A change only a new list can bring: the silent watch never tells.
    api.set_slice("gw-b", &[(ip(3), true)]);
    wait_for("two backends, from a new list", || {
        metric(&tg, BACKENDS) == 2.0
    })
    .await;
    assert!(api.counts().0 >= 2, "lists: {:?}", api.counts());
    assert!(
        metric(&tg, FAILED) >= 1.0,
        "the stalled watch is not counted"
    );
    let status = tg.terminate();
    assert!(status.success(), "{status}");
}

/// A list answer past 32 MiB (here valid JSON, padded by an unknown field) is refused whole: the
/// failure is counted and the last set kept. Once the server answers sanely the list is taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_list_is_refused_and_the_last_set_kept() {
    let (_sinks, port) = sinks_on_one_port(2).await;
    let (api, tg) = follow_gw_a(port, |_| {}, config).await;
    let seen = Seen::watching(&api, &tg).await;
    api.state.lock().unwrap().list_padding = 33 << 20;
    // 410 Gone makes the resolver list again; the change after it reaches no watch.
    api.expire_watches();
    api.set_slice("gw-b", &[(ip(3), true)]);
    seen.refused_then_listed(&api, &tg, "a refused list").await;
    api.state.lock().unwrap().list_padding = 0;
    wait_for("two backends once the list is sane", || {
        metric(&tg, BACKENDS) == 2.0
    })
    .await;
    let status = tg.terminate();
    assert!(status.success(), "{status}");
}

/// One watch event past 4 MiB is refused (counted), the watch dropped and the slices listed again:
/// the event's slice (which the server's list does not hold) never becomes a backend, and the
/// next watch delivers events as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_watch_event_is_refused_and_the_slices_listed_again() {
    let (_sinks, port) = sinks_on_one_port(3).await;
    let (api, tg) = follow_gw_a(port, |_| {}, config).await;
    let seen = Seen::watching(&api, &tg).await;
    let big = json!({"type": "ADDED", "object": {
        "metadata": {"name": "gw-big", "resourceVersion": "99", "padding": "x".repeat(4 << 20)},
        "endpoints": [{"addresses": [ip(3).to_string()], "conditions": {"ready": true}}],
    }});
    broadcast(&mut api.state.lock().unwrap(), &big);
    seen.refused_then_listed(&api, &tg, "a refused event and a new list")
        .await;
    wait_for("a new watch", || {
        api.counts().1 > seen.watches && api.open_watches() >= 1
    })
    .await;
    api.set_slice("gw-c", &[(ip(4), true)]);
    wait_for("two backends from the new watch", || {
        metric(&tg, BACKENDS) == 2.0
    })
    .await;
    let status = tg.terminate();
    assert!(status.success(), "{status}");
}

/// A 500 with a 16 MiB body: the resolver reads at most 64 KiB of it and logs 1 KiB, so each
/// failure costs a bounded amount of memory and log (the log would hold the whole body otherwise).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_error_body_is_read_only_up_to_its_bound() {
    let (_sinks, port) = sinks_on_one_port(2).await;
    let (api, tg) = follow_gw_a(port, |st| st.list_error_body = Some(16 << 20), config).await;
    wait_for("two failed lists", || metric(&tg, FAILED) >= 2.0).await;
    let log = tg.stderr();
    assert!(log.contains("HTTP 500"), "{}", &log[..log.len().min(4096)]);
    assert!(
        log.len() < 1 << 20,
        "{} bytes of log for two failures",
        log.len()
    );
    api.state.lock().unwrap().list_error_body = None;
    wait_for("one backend once lists succeed", || {
        metric(&tg, BACKENDS) == 1.0
    })
    .await;
    let status = tg.terminate();
    assert!(status.success(), "{status}");
}
