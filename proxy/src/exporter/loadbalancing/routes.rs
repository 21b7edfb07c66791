//! The routing state a resolver publishes and the cores read: one [`ArcSwap`] per
//! `loadbalancing` exporter, swapped whole when the member set (or its health) changes.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};
use tailgate_routing::{Member, Mode, ResolverKind, RoutingTable, TableError};

use crate::exporter::loadbalancing::config::dial_endpoint;
use crate::telemetry::metrics::{Kind, Local, Registry};

/// One published routing state. Immutable; a change publishes a new one.
#[derive(Debug)]
pub struct Routes {
    /// Increases with every publication, so a core notices a change with one comparison.
    pub generation: u64,
    /// The table over the resolved members (possibly failed over).
    pub table: RoutingTable,
    /// What to dial for each member index of `table` (`host:port`).
    pub dial: Vec<String>,
}

/// The cell cores read with one atomic load per batch.
#[derive(Debug)]
pub struct RouteCell {
    current: ArcSwap<Routes>,
    generation: AtomicU64,
}

impl Default for RouteCell {
    fn default() -> Self {
        // An empty member set always builds (it routes nothing).
        let empty = RoutingTable::build(Mode::Slots, Vec::new())
            .unwrap_or_else(|e| panic!("empty routing table: {e}"));
        RouteCell {
            current: ArcSwap::from_pointee(Routes {
                generation: 0,
                table: empty,
                dial: Vec::new(),
            }),
            generation: AtomicU64::new(0),
        }
    }
}

impl RouteCell {
    /// The current routes (one atomic load; the guard is cheap to hold for one batch).
    #[inline]
    pub fn load(&self) -> Guard<Arc<Routes>> {
        self.current.load()
    }

    /// The current routes as an owned `Arc` (control plane, tests).
    pub fn snapshot(&self) -> Arc<Routes> {
        self.current.load_full()
    }

    /// Publishes `table`; returns the new generation.
    pub fn publish(&self, table: RoutingTable) -> u64 {
        let dial = table
            .members()
            .iter()
            .map(|m| dial_endpoint(m.endpoint()).unwrap_or_else(|_| m.endpoint().to_owned()))
            .collect();
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        self.current.store(Arc::new(Routes {
            generation,
            table,
            dial,
        }));
        generation
    }
}

/// The collector's resolver metrics, written only by the thread that runs the resolver.
#[derive(Debug, Clone)]
pub struct ResolverMetrics {
    /// `otelcol_loadbalancer_num_resolutions{success="true"}`.
    pub resolutions_ok: Local,
    /// `otelcol_loadbalancer_num_resolutions{success="false"}`.
    pub resolutions_failed: Local,
    /// `otelcol_loadbalancer_num_backends`.
    pub backends: Local,
    /// `otelcol_loadbalancer_num_backend_updates`.
    pub updates: Local,
}

impl ResolverMetrics {
    /// Registers the series for `resolver` (`static`, `dns`, `k8s`). They are written from one
    /// control thread, which uses core slot 0 of series no core writes.
    pub fn register(registry: &Registry, resolver: &str) -> Self {
        let counter = |name: &str, help, success: Option<&str>| {
            let mut labels = vec![("resolver", resolver)];
            if let Some(s) = success {
                labels.push(("success", s));
            }
            registry
                .register(name, help, Kind::Counter, &labels)
                .local(0)
        };
        const RESOLUTIONS: &str = "otelcol_loadbalancer_num_resolutions";
        const RESOLUTIONS_HELP: &str =
            "Number of times the resolver has triggered new resolutions.";
        ResolverMetrics {
            resolutions_ok: counter(RESOLUTIONS, RESOLUTIONS_HELP, Some("true")),
            resolutions_failed: counter(RESOLUTIONS, RESOLUTIONS_HELP, Some("false")),
            backends: registry
                .register(
                    "otelcol_loadbalancer_num_backends",
                    "Current number of backends in use.",
                    Kind::Gauge,
                    &[("resolver", resolver)],
                )
                .local(0),
            updates: counter(
                "otelcol_loadbalancer_num_backend_updates",
                "Number of times the list of backends was updated.",
                None,
            ),
        }
    }
}

/// Turns resolver answers into published tables: de-duplicates, ignores unchanged sets, picks the
/// hashing mode, counts the collector's metrics.
#[derive(Debug)]
pub struct Publisher {
    cell: Arc<RouteCell>,
    kind: ResolverKind,
    forced: Option<Mode>,
    /// The last member set published, sorted (what "unchanged" compares against).
    last: Option<Vec<Member>>,
    metrics: ResolverMetrics,
    /// Exporter id, for logs.
    name: String,
}

impl Publisher {
    /// A publisher into `cell` for a resolver of `kind`; `forced` is `tailgate.hashing`.
    pub fn new(
        name: String,
        cell: Arc<RouteCell>,
        kind: ResolverKind,
        forced: Option<Mode>,
        metrics: ResolverMetrics,
    ) -> Self {
        Publisher {
            cell,
            kind,
            forced,
            last: None,
            metrics,
            name,
        }
    }

    /// A successful resolution. Publishes a new table when the set changed; an empty answer keeps
    /// the last set (a resolver hiccup must not drop every backend). Returns whether it published.
    pub fn resolved(&mut self, mut members: Vec<Member>) -> Result<bool, TableError> {
        self.metrics.resolutions_ok.add(1);
        members.sort();
        members.dedup();
        if members.is_empty() && self.last.is_some() {
            tracing::warn!(exporter = %self.name, "resolver answered no backends; keeping the last list");
            return Ok(false);
        }
        if self.last.as_ref() == Some(&members) {
            return Ok(false);
        }
        let mode = self
            .forced
            .unwrap_or_else(|| Mode::default_for(self.kind, &members));
        let table = RoutingTable::build(mode, members.clone()).inspect_err(|e| {
            tracing::warn!(exporter = %self.name, "cannot route to the resolved backends, keeping the last list: {e}");
        })?;
        let endpoints: Vec<&str> = members.iter().map(Member::endpoint).collect();
        tracing::info!(exporter = %self.name, %mode, backends = ?endpoints, "backends changed");
        self.metrics.backends.set(members.len() as u64);
        self.metrics.updates.add(1);
        self.cell.publish(table);
        self.last = Some(members);
        Ok(true)
    }

    /// A failed resolution: counted and logged; the last list stays.
    pub fn failed(&mut self, error: &str) {
        self.metrics.resolutions_failed.add(1);
        tracing::warn!(exporter = %self.name, "resolution failed, keeping the last list: {error}");
    }

    /// The cell this publisher writes.
    pub fn cell(&self) -> &Arc<RouteCell> {
        &self.cell
    }
}

/// What the cores share about one `loadbalancing` exporter: its routes and TLS settings.
#[derive(Debug, Clone)]
pub struct Balancer {
    /// The published routes (written by the resolver).
    pub routes: Arc<RouteCell>,
    /// TLS client settings, loaded once, when backends are dialled with TLS.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// The backends health probes consider down (`tailgate.endpoint_health`; `None`: disabled).
    pub health: Option<Arc<Health>>,
}

/// The members one exporter (or the gateway membership) considers down, shared by every core.
#[derive(Debug, Default)]
pub struct Health {
    down: ArcSwap<BTreeSet<String>>,
    version: AtomicU64,
}

impl Health {
    /// The endpoints (as the resolver lists them) considered down now.
    pub fn down(&self) -> Arc<BTreeSet<String>> {
        self.down.load_full()
    }

    /// Changes whenever the down set does (cores compare it once per batch).
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// Publishes a new down set (the probing task).
    pub fn publish(&self, down: BTreeSet<String>) {
        self.down.store(Arc::new(down));
        self.version.fetch_add(1, Ordering::AcqRel);
    }
}
