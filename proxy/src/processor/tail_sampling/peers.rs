//! What every core shares about this gateway's membership (issue 18, docs/membership-design.md
//! §7): the member table (published by the loadbalancing exporter's own resolvers on the
//! `tailgate-membership` control thread; each core builds its `View` from it), who may send
//! marked data, this process's incarnation and how to reach peers.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tailgate_routing::membership::{Incarnation, RuleConfig, View};

use super::drain::{DrainState, HANDOVER_TIMEOUT};
use super::membership::MembershipConfig;
use crate::config::common::split_host_port;
use crate::config::{ComponentId, Config, ProcessorConfig};
use crate::exporter::loadbalancing::config::Validated as PeerClient;
use crate::exporter::loadbalancing::health::{Health, ProbeSettings};
use crate::exporter::loadbalancing::resolver::{client_tls, prober, spawn_named, start_one};
use crate::exporter::loadbalancing::routes::{Publisher, ResolverMetrics, RouteCell};
use crate::telemetry::metrics::Registry;

/// The membership of the one `tail_sampling` instance that sets it.
pub struct Peers {
    /// The processor id (`tail_sampling`, `tail_sampling/gw`): the `processor` label.
    pub processor: ComponentId,
    /// This gateway as the resolver lists it.
    pub self_endpoint: String,
    /// The member table, republished by the resolver on every change.
    pub cell: Arc<RouteCell>,
    /// The rules' timing (decision_wait, skew, margin, grace).
    pub rules: RuleConfig,
    /// This process: a restart at the same address is a new member.
    pub incarnation: Incarnation,
    /// Addresses of static members written as host names (resolved once at start).
    named: BTreeSet<IpAddr>,
    /// `protocol.otlp` for peers, validated.
    pub client: Arc<PeerClient>,
    /// TLS client settings when peers are dialled with TLS.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// When each endpoint was last seen in an applied member table (cores note every table they
    /// apply): a member removed less than `grace` ago may still send marked data, whichever
    /// tables a receiving core happened to look at.
    listed: Mutex<HashMap<Arc<str>, Instant>>,
    /// Members that announced a drain: endpoint → (their incarnation, when). They own nothing
    /// while listed here; see [`Peers::set_leaving`].
    leaving: Mutex<BTreeMap<Arc<str>, (u64, Instant)>>,
    /// Bumped whenever the leaving set (or this gateway's own drain) changes: with the member
    /// table's generation it makes [`Peers::generation`].
    leaving_version: AtomicU64,
    /// This gateway's drain on SIGTERM.
    pub drain: DrainState,
    /// Peers the health probes consider down (`membership.endpoint_health`).
    pub health: Arc<Health>,
}

/// How long a member stays in the leaving set at most: its drain is over by then (`grace` +
/// hand-over + the stages' drain), so an entry that outlives it can only be stale.
fn leaving_ttl(grace: Duration) -> Duration {
    grace + HANDOVER_TIMEOUT + Duration::from_secs(15)
}

impl Peers {
    /// Notes that every member of `view` is listed at `now` (called when a core applies it).
    pub fn note_listed(&self, view: &View, now: Instant) {
        let mut listed = self.listed.lock().unwrap_or_else(|e| e.into_inner());
        for m in view.table().members() {
            match listed.get_mut(m.endpoint()) {
                Some(at) => *at = now,
                None => {
                    listed.insert(Arc::from(m.endpoint()), now);
                }
            }
        }
        let grace = Duration::from_nanos(self.rules.grace);
        listed.retain(|_, at| now.saturating_duration_since(*at) < grace);
    }

    /// Members listed at some point in the last `grace` that `view` no longer lists.
    pub fn recently_listed(&self, view: &View, now: Instant) -> Vec<Arc<str>> {
        let grace = Duration::from_nanos(self.rules.grace);
        let listed = self.listed.lock().unwrap_or_else(|e| e.into_inner());
        listed
            .iter()
            .filter(|(e, at)| !view.is_member(e) && now.saturating_duration_since(**at) < grace)
            .map(|(e, _)| e.clone())
            .collect()
    }

    /// The view of the members as published now (each core builds its own and keeps it until
    /// [`Peers::generation`] changes): the resolver's table, with the members that announced a
    /// drain (and this gateway, once it drains) owning nothing.
    pub fn view(&self) -> View {
        let routes = self.cell.snapshot();
        let version = self.leaving_version.load(Ordering::Acquire);
        let down: BTreeSet<String> = self
            .health
            .down()
            .iter()
            .filter(|e| **e != self.self_endpoint)
            .cloned()
            .collect();
        let mut leaving: BTreeSet<String> =
            self.lock_leaving().keys().map(|e| e.to_string()).collect();
        if self.drain.draining() {
            leaving.insert(self.self_endpoint.clone());
        }
        View::new(
            &self.self_endpoint,
            routes.table.clone(),
            down,
            leaving,
            routes
                .generation
                .wrapping_add(version)
                .wrapping_add(self.health.version()),
        )
    }

    /// Changes whenever [`Peers::view`] would build another view: the table's generation plus
    /// the leaving set's and the down set's versions (all only grow, so their sum changes with
    /// any).
    pub fn generation(&self) -> u64 {
        let version = self.leaving_version.load(Ordering::Acquire);
        self.cell
            .load()
            .generation
            .wrapping_add(version)
            .wrapping_add(self.health.version())
    }

    /// SIGTERM: this gateway starts draining and owns nothing from now on.
    pub fn begin_drain(&self, now: Instant) {
        if !self.drain.draining() {
            self.drain.begin(now);
            self.leaving_version.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// `endpoint` (incarnation `incarnation`) announced its drain. A later message from another
    /// incarnation at that address (a restart) takes it out again ([`Peers::seen`]).
    pub fn set_leaving(&self, endpoint: &Arc<str>, incarnation: u64, now: Instant) {
        let mut leaving = self.lock_leaving();
        if leaving.get(endpoint).is_none_or(|(i, _)| *i != incarnation) {
            leaving.insert(endpoint.clone(), (incarnation, now));
            self.leaving_version.fetch_add(1, Ordering::AcqRel);
            tracing::info!(peer = %endpoint, "a gateway peer drains: it owns no trace from now on");
        }
    }

    /// A marked message from `endpoint` with `incarnation` arrived: if that address was leaving
    /// under another incarnation, the new process is a member like any other.
    pub fn seen(&self, endpoint: &str, incarnation: u64) {
        if self.leaving_version.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut leaving = self.lock_leaving();
        if leaving
            .get(endpoint)
            .is_some_and(|(i, _)| *i != incarnation)
        {
            leaving.remove(endpoint);
            self.leaving_version.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Forgets leaving members that are no longer listed or whose drain must be over.
    pub fn expire_leaving(&self, now: Instant) {
        if self.leaving_version.load(Ordering::Acquire) == 0 {
            return;
        }
        let table = self.cell.snapshot();
        let ttl = leaving_ttl(Duration::from_nanos(self.rules.grace));
        let mut leaving = self.lock_leaving();
        let before = leaving.len();
        leaving.retain(|e, (_, since)| {
            table.table.index_of(e).is_some() && now.saturating_duration_since(*since) < ttl
        });
        if leaving.len() != before {
            self.leaving_version.fetch_add(1, Ordering::AcqRel);
        }
    }

    fn lock_leaving(&self) -> std::sync::MutexGuard<'_, BTreeMap<Arc<str>, (u64, Instant)>> {
        self.leaving.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The addresses members connect from under `view`: each member's host when it is an IP,
    /// plus the static host names resolved at start.
    pub fn member_addresses(&self, view: &View) -> BTreeSet<IpAddr> {
        let mut out = self.named.clone();
        for m in view.table().members() {
            if let Ok((host, _)) = split_host_port(m.endpoint()) {
                if let Ok(ip) = host.trim_matches(['[', ']']).parse::<IpAddr>() {
                    out.insert(ip.to_canonical());
                }
            }
        }
        out
    }
}

/// Whether a connection from `ip` comes from a member with one of `members`' addresses. The
/// loopback network is one host: any 127.0.0.0/8 (or ::1) peer matches a loopback member, since
/// a connection between two local addresses leaves from 127.0.0.1 whatever the member's address.
pub fn is_member_address(members: &BTreeSet<IpAddr>, ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    members.contains(&ip) || (ip.is_loopback() && members.iter().any(IpAddr::is_loopback))
}

/// Builds the shared membership state when a `tail_sampling` sets `tailgate.membership`
/// (validation allows at most one) and starts its resolver: a static list is published at
/// once, `dns` and `k8s` run on their own control thread until `stop`. Host names in a static
/// list are resolved once here, for the member gate; an unresolvable one stops the start.
pub fn start(
    config: &Config,
    registry: &Arc<Registry>,
    cores: usize,
    stop: &Arc<AtomicBool>,
) -> Result<Option<Arc<Peers>>, String> {
    let found = config.processors.iter().find_map(|(id, p)| match p {
        ProcessorConfig::TailSampling(c) => c.membership.as_ref().map(|m| (id, c, m)),
        _ => None,
    });
    let Some((id, ts, m)) = found else {
        return Ok(None);
    };
    let path = format!("processors.{id}.tailgate.membership");
    let keys = m.client.keys();
    let choice = keys
        .resolver()
        .ok_or_else(|| format!("{path}.resolver: no resolver"))?;
    let cell = Arc::new(RouteCell::default());
    let publisher = Publisher::new(
        id.to_string(),
        cell.clone(),
        choice.kind(),
        m.hashing,
        ResolverMetrics::register(registry, choice.label()),
    );
    let mut lb = keys.clone();
    lb.tailgate.dns_server = m.keys.dns_server.clone();
    let health = Arc::new(Health::default());
    let mut makers: Vec<_> = start_one(&lb, choice, publisher, &path)?
        .into_iter()
        .collect();
    if let Some(h) = m.keys.endpoint_health.as_ref().filter(|h| h.enabled) {
        makers.push(prober(
            format!("{id}/membership"),
            cell.clone(),
            health.clone(),
            ProbeSettings::of(h),
            registry.clone(),
        ));
    }
    if !makers.is_empty() {
        spawn_named("tailgate-membership", makers, stop.clone())?;
    }
    let rules = RuleConfig::try_new(
        nanos(ts.sampler.decision_wait),
        nanos(m.skew),
        nanos(m.margin),
        nanos(m.grace),
    )
    .map_err(|e| format!("{path}.grace: {e}"))?;
    let named = match static_hostnames(m) {
        Some(h) => member_addresses(h, &path)?,
        None => BTreeSet::new(),
    };
    let tls = client_tls(keys, &path)?;
    let peers = Peers {
        processor: id.clone(),
        self_endpoint: m.keys.self_endpoint.clone(),
        cell,
        rules,
        incarnation: Incarnation(new_incarnation()),
        named,
        client: Arc::new(m.client.clone()),
        tls,
        listed: Mutex::new(HashMap::new()),
        leaving: Mutex::new(BTreeMap::new()),
        leaving_version: AtomicU64::new(0),
        drain: DrainState::new(cores, m.grace),
        health,
    };
    peers.note_listed(&peers.view(), Instant::now());
    if peers.view().me().is_none() {
        tracing::warn!(
            "{path}.self: {} is not among the members resolved so far: this gateway owns no trace until it is",
            m.keys.self_endpoint
        );
    }
    Ok(Some(Arc::new(peers)))
}

/// The static member list, if that is the resolver.
fn static_hostnames(m: &MembershipConfig) -> Option<&[String]> {
    m.keys
        .resolver
        .static_list
        .as_ref()
        .map(|s| s.hostnames.as_slice())
}

/// Every address the member host names resolve to (IPs stay as written).
fn member_addresses(hostnames: &[String], path: &str) -> Result<BTreeSet<IpAddr>, String> {
    let mut out = BTreeSet::new();
    for h in hostnames {
        let (host, port) = split_host_port(h)
            .map_err(|e| format!("{path}.resolver.static.hostnames: {h}: {e}"))?;
        let addrs = (host.trim_matches(['[', ']']), port)
            .to_socket_addrs()
            .map_err(|e| format!("{path}.resolver.static.hostnames: cannot resolve {h}: {e}"))?;
        out.extend(addrs.map(|a| a.ip().to_canonical()));
    }
    Ok(out)
}

/// Unix ns xor a random word (std's per-process random hash keys, seeded by the OS): distinct
/// across restarts even when the clock steps back.
fn new_incarnation() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(now);
    now ^ h.finish().rotate_left(17)
}

fn nanos(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ips: &[[u8; 4]]) -> BTreeSet<IpAddr> {
        ips.iter().map(|&ip| IpAddr::from(ip)).collect()
    }

    #[test]
    fn only_members_addresses_pass_and_loopback_is_one_host() {
        let pods = set(&[[10, 0, 0, 7], [10, 0, 0, 8]]);
        assert!(is_member_address(&pods, [10, 0, 0, 8].into()));
        assert!(!is_member_address(&pods, [10, 0, 0, 9].into()));
        assert!(!is_member_address(&pods, [127, 0, 0, 1].into()));
        // IPv4-mapped IPv6 peers (a dual-stack listener) are the same host.
        let mapped: IpAddr = "::ffff:10.0.0.7".parse().unwrap_or(IpAddr::from([0; 4]));
        assert!(is_member_address(&pods, mapped));
        let local = set(&[[127, 0, 0, 2], [127, 0, 0, 3]]);
        assert!(is_member_address(&local, [127, 0, 0, 1].into()));
        assert!(!is_member_address(&local, [10, 0, 0, 7].into()));
    }
}
