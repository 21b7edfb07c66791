//! `resolver.k8s`: the ready endpoints of a Service's EndpointSlices, kept current with a watch
//! on the control thread.
//!
//! List, then watch from the list's resource version; apply each event to a per-slice map and
//! publish the union of ready endpoints × `ports`. A watch the server ends (timeout) resumes from
//! the last version seen; an ERROR event (410 Gone: too old) lists again at once. A watch that
//! fails (cannot start, breaks, sends something refused, or stays silent past its idle timeout)
//! and a failed list are counted, keep the last set, and list again after a pause.
//!
//! Why an idle timeout: a connection the network drops without a FIN or RST (a NAT or firewall
//! forgetting it, an API server host gone) leaves the watch waiting forever, and the member list
//! frozen. A healthy watch always says something within `timeoutSeconds` (the server ends it) and
//! usually sooner (bookmarks, about once a minute), so nothing for longer means the connection is dead.

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::time::Duration;

use tailgate_routing::Member;

use super::kube_api::{EndpointSlice, KubeApi, WatchEvent, WATCH_TIMEOUT_SECS};
use crate::exporter::loadbalancing::config::{K8sResolver, TailgateKeys};
use crate::exporter::loadbalancing::routes::Publisher;

/// The default of `tailgate.k8s_watch_idle_timeout`: the watch's `timeoutSeconds` plus a margin
/// for the server's own lateness, so a healthy but quiet watch is never cut.
pub const DEFAULT_WATCH_IDLE_TIMEOUT: Duration = Duration::from_secs(WATCH_TIMEOUT_SECS + 30);

/// Pause after a failed list or watch before listing again (no tight loop against a broken server).
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// One k8s resolver's state.
pub struct K8sTask {
    name: String,
    namespace: String,
    ports: Vec<u16>,
    /// Deadline of a list (`resolver.k8s.timeout`).
    timeout: Duration,
    /// Longest a watch may stay silent (no headers, event or bookmark) before it is dropped.
    idle: Duration,
    return_hostnames: bool,
    api: KubeApi,
    publisher: Publisher,
    /// Ready endpoints (address or host name) per slice name.
    slices: BTreeMap<String, Vec<String>>,
}

/// Why a watch ended.
enum WatchEnd {
    /// 410 Gone (the version is too old): list again at once; expected now and then.
    Expired(String),
    /// The watch failed: counted as a failed resolution, then list again after [`RETRY_PAUSE`].
    Failed(String),
}

impl K8sTask {
    /// A resolver for `config` with the `tailgate:` keys `keys` (API server, insecure-token
    /// opt-in, watch idle timeout).
    pub fn new(
        config: &K8sResolver,
        keys: &TailgateKeys,
        publisher: Publisher,
    ) -> Result<Self, String> {
        let (name, namespace) = config.name_and_namespace();
        let namespace = match namespace {
            Some(ns) => ns.to_owned(),
            // The collector's rule: the pod's own namespace, else "default".
            None => {
                std::fs::read_to_string(super::kube_api::service_account_dir().join("namespace"))
                    .map(|s| s.trim().to_owned())
                    .unwrap_or_else(|_| "default".to_owned())
            }
        };
        let api = KubeApi::new(
            keys.k8s_api_server.as_deref(),
            keys.k8s_allow_insecure_token,
        )
        .map_err(|e| e.to_string())?;
        Ok(K8sTask {
            name: name.to_owned(),
            namespace,
            ports: config.ports.clone(),
            timeout: config.timeout.0,
            idle: keys
                .k8s_watch_idle_timeout
                .map_or(DEFAULT_WATCH_IDLE_TIMEOUT, |d| d.0),
            return_hostnames: config.return_hostnames,
            api,
            publisher,
            slices: BTreeMap::new(),
        })
    }

    /// Lists and watches until the thread stops; reports on `ready` after the first list.
    pub async fn run(mut self, ready: mpsc::Sender<()>) {
        let mut ready = Some(ready);
        loop {
            let rv = self.list().await;
            if let Some(r) = ready.take() {
                let _ = r.send(());
            }
            let Some(rv) = rv else {
                tokio::time::sleep(RETRY_PAUSE).await;
                continue;
            };
            match self.watch(rv).await {
                WatchEnd::Expired(why) => {
                    tracing::debug!(service = %self.service(), "listing again: {why}");
                }
                WatchEnd::Failed(why) => {
                    self.publisher.failed(&format!(
                        "watching EndpointSlices of {}: {why}",
                        self.service()
                    ));
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
            }
        }
    }

    /// Lists the slices and publishes them; the list's resource version, or `None` after a failure
    /// (counted; the last set stays).
    async fn list(&mut self) -> Option<String> {
        let listed =
            tokio::time::timeout(self.timeout, self.api.list(&self.namespace, &self.name)).await;
        let why = match listed {
            Ok(Ok((rv, items))) => {
                self.slices = items
                    .iter()
                    .map(|s| (s.metadata.name.clone(), self.ready_of(s)))
                    .collect();
                self.publish();
                return Some(rv);
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("timed out after {:?}", self.timeout),
        };
        self.publisher.failed(&format!(
            "listing EndpointSlices of {}: {why}",
            self.service()
        ));
        None
    }

    /// Applies watch events until the watch cannot continue from a known version. Every wait
    /// (the answer to the watch request, each next event) is bounded by the idle timeout.
    async fn watch(&mut self, mut rv: String) -> WatchEnd {
        let silent = |idle: Duration| {
            WatchEnd::Failed(format!(
                "nothing received for {idle:?} (tailgate.k8s_watch_idle_timeout): the connection is presumed dead"
            ))
        };
        loop {
            let started =
                tokio::time::timeout(self.idle, self.api.watch(&self.namespace, &self.name, &rv))
                    .await;
            let mut watch = match started {
                Ok(Ok(w)) => w,
                Ok(Err(e)) => return WatchEnd::Failed(e.to_string()),
                Err(_) => return silent(self.idle),
            };
            loop {
                let event = match tokio::time::timeout(self.idle, watch.next()).await {
                    Ok(Ok(Some(e))) => e,
                    Ok(Ok(None)) => break, // the server ended the watch: resume from `rv`
                    Ok(Err(e)) => return WatchEnd::Failed(e.to_string()),
                    Err(_) => return silent(self.idle),
                };
                if let Some(end) = self.apply(event, &mut rv) {
                    return end;
                }
            }
        }
    }

    /// Applies one event; `Some` when the watch must end.
    fn apply(&mut self, event: WatchEvent, rv: &mut String) -> Option<WatchEnd> {
        match event {
            WatchEvent::Upsert(s) => {
                rv.clone_from(&s.metadata.resource_version);
                let ready = self.ready_of(&s);
                self.slices.insert(s.metadata.name, ready);
                self.publish();
            }
            WatchEvent::Deleted(s) => {
                rv.clone_from(&s.metadata.resource_version);
                self.slices.remove(&s.metadata.name);
                self.publish();
            }
            WatchEvent::Bookmark(v) => *rv = v,
            WatchEvent::Error { gone: true, status } => return Some(WatchEnd::Expired(status)),
            WatchEvent::Error {
                gone: false,
                status,
            } => return Some(WatchEnd::Failed(status)),
        }
        None
    }

    /// The ready endpoints of a slice: addresses, or `hostname.service.namespace` with
    /// `return_hostnames` (endpoints without a host name are skipped and counted as a failure).
    fn ready_of(&mut self, slice: &EndpointSlice) -> Vec<String> {
        let mut out = Vec::new();
        for e in slice.endpoints.iter().filter(|e| e.is_ready()) {
            if self.return_hostnames {
                match &e.hostname {
                    Some(h) if !h.is_empty() => out.push(format!("{h}.{}.{}", self.name, self.namespace)),
                    _ => self.publisher.failed(&format!(
                        "{}: endpoint {:?} has no hostname (return_hostnames needs a StatefulSet with a serviceName)",
                        self.service(),
                        e.addresses
                    )),
                }
            } else if let Some(a) = e.addresses.first() {
                out.push(a.clone());
            }
        }
        out
    }

    fn publish(&mut self) {
        let mut members = Vec::new();
        for host in self.slices.values().flatten() {
            for port in &self.ports {
                let endpoint = if host.contains(':') {
                    format!("[{host}]:{port}")
                } else {
                    format!("{host}:{port}")
                };
                members.push(Member::new(endpoint));
            }
        }
        let _ = self.publisher.resolved(members);
    }

    fn service(&self) -> String {
        format!("{}.{}", self.name, self.namespace)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Arc;

    use tailgate_routing::{Mode, ResolverKind};

    use super::super::kube_api::{Conditions, Endpoint, ObjectMeta};
    use super::*;
    use crate::exporter::loadbalancing::routes::{ResolverMetrics, RouteCell};
    use crate::telemetry::metrics::Registry;

    fn endpoint(ip: &str, host: &str, ready: bool) -> Endpoint {
        Endpoint {
            addresses: vec![ip.to_owned()],
            conditions: Conditions { ready: Some(ready) },
            hostname: Some(host.to_owned()),
        }
    }

    #[test]
    fn pod_host_names_give_ordinals_and_jump_hashing() {
        let cell = Arc::new(RouteCell::default());
        let registry = Registry::new(1);
        let publisher = Publisher::new(
            "loadbalancing".to_owned(),
            cell.clone(),
            ResolverKind::K8s,
            None,
            ResolverMetrics::register(&registry, "k8s"),
        );
        let config = K8sResolver {
            service: "gw.obs".to_owned(),
            return_hostnames: true,
            ..K8sResolver::default()
        };
        let keys = TailgateKeys {
            k8s_api_server: Some("http://127.0.0.1:1".to_owned()),
            k8s_allow_insecure_token: true,
            ..TailgateKeys::default()
        };
        let mut task = K8sTask::new(&config, &keys, publisher).unwrap();
        let slice = EndpointSlice {
            metadata: ObjectMeta {
                name: "gw-x".to_owned(),
                resource_version: "1".to_owned(),
            },
            endpoints: vec![
                endpoint("10.0.0.2", "gw-1", true),
                endpoint("10.0.0.1", "gw-0", true),
                endpoint("10.0.0.3", "gw-2", false),
            ],
        };
        let ready = task.ready_of(&slice);
        task.slices.insert("gw-x".to_owned(), ready);
        task.publish();
        let routes = cell.snapshot();
        assert_eq!(routes.table.mode(), Mode::Jump);
        let endpoints: Vec<&str> = routes
            .table
            .members()
            .iter()
            .map(|m| m.endpoint())
            .collect();
        assert_eq!(endpoints, ["gw-0.gw.obs:4317", "gw-1.gw.obs:4317"]);
        assert_eq!(routes.dial, ["gw-0.gw.obs:4317", "gw-1.gw.obs:4317"]);
    }
}
