//! `resolver.k8s`: the ready endpoints of a Service's EndpointSlices, kept current with a watch
//! on the control thread.
//!
//! List, then watch from the list's resource version; apply each event to a per-slice map and
//! publish the union of ready endpoints × `ports`. A watch the server ends (timeout) resumes from
//! the last version seen; an ERROR event (410 Gone: too old) or a broken stream lists again. A failed
//! list keeps the last set and retries after a second.

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::time::Duration;

use tailgate_routing::Member;

use super::kube_api::{EndpointSlice, KubeApi, WatchEvent};
use crate::exporter::loadbalancing::config::K8sResolver;
use crate::exporter::loadbalancing::routes::Publisher;

/// One k8s resolver's state.
pub struct K8sTask {
    name: String,
    namespace: String,
    ports: Vec<u16>,
    timeout: Duration,
    return_hostnames: bool,
    api: KubeApi,
    publisher: Publisher,
    /// Ready endpoints (address or host name) per slice name.
    slices: BTreeMap<String, Vec<String>>,
}

/// Why a watch ended.
enum WatchEnd {
    /// List again (410 Gone, broken stream).
    Relist(String),
}

impl K8sTask {
    /// A resolver for `config` talking to `api_server` (or the in-cluster API server).
    pub fn new(
        config: &K8sResolver,
        api_server: Option<&str>,
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
        Ok(K8sTask {
            name: name.to_owned(),
            namespace,
            ports: config.ports.clone(),
            timeout: config.timeout.0,
            return_hostnames: config.return_hostnames,
            api: KubeApi::new(api_server)?,
            publisher,
            slices: BTreeMap::new(),
        })
    }

    /// Lists and watches until the thread stops; reports on `ready` after the first list.
    pub async fn run(mut self, ready: mpsc::Sender<()>) {
        let mut ready = Some(ready);
        loop {
            let listed =
                tokio::time::timeout(self.timeout, self.api.list(&self.namespace, &self.name))
                    .await;
            let rv = match listed {
                Ok(Ok((rv, items))) => {
                    self.slices = items
                        .iter()
                        .map(|s| (s.metadata.name.clone(), self.ready_of(s)))
                        .collect();
                    self.publish();
                    Some(rv)
                }
                Ok(Err(e)) => {
                    self.publisher.failed(&format!(
                        "listing EndpointSlices of {}: {e}",
                        self.service()
                    ));
                    None
                }
                Err(_) => {
                    self.publisher.failed(&format!(
                        "listing EndpointSlices of {}: timed out",
                        self.service()
                    ));
                    None
                }
            };
            if let Some(r) = ready.take() {
                let _ = r.send(());
            }
            match rv {
                Some(rv) => {
                    let WatchEnd::Relist(why) = self.watch(rv).await;
                    tracing::debug!(service = %self.service(), "listing again: {why}");
                }
                None => tokio::time::sleep(Duration::from_secs(1)).await,
            }
        }
    }

    /// Applies watch events until the watch cannot continue from a known version.
    async fn watch(&mut self, mut rv: String) -> WatchEnd {
        loop {
            let mut watch = match self.api.watch(&self.namespace, &self.name, &rv).await {
                Ok(w) => w,
                Err(e) => return WatchEnd::Relist(e),
            };
            loop {
                let event = match watch.next().await {
                    Ok(Some(e)) => e,
                    Ok(None) => break, // the server ended the watch: resume from `rv`
                    Err(e) => return WatchEnd::Relist(e),
                };
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
                    WatchEvent::Bookmark(v) => rv = v,
                    WatchEvent::Error(e) => return WatchEnd::Relist(e),
                }
            }
        }
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
        let mut task = K8sTask::new(&config, Some("http://127.0.0.1:1"), publisher).unwrap();
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
