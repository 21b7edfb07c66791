//! What every core shares about this gateway's membership (issue 18, docs/membership-design.md
//! §7): the view of the gateway set, who may send marked data, this process's incarnation and how
//! to reach peers. Built once at start; with the `static` resolver the view never changes (the
//! `dns` and `k8s` resolvers are refused at validation until claims are built, design step 6).

use std::collections::BTreeSet;
use std::net::{IpAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tailgate_routing::membership::{Incarnation, RuleConfig, View};
use tailgate_routing::{Mode, ResolverKind, RoutingTable};

use super::membership::MembershipConfig;
use crate::config::common::split_host_port;
use crate::config::{ComponentId, Config, ProcessorConfig};
use crate::exporter::loadbalancing::config::Validated as PeerClient;
use crate::exporter::loadbalancing::resolver::{client_tls, fixed};

/// The membership of the one `tail_sampling` instance that sets it.
pub struct Peers {
    /// The processor id (`tail_sampling`, `tail_sampling/gw`): the `processor` label.
    pub processor: ComponentId,
    /// The gateway set as this gateway sees it.
    pub view: Arc<View>,
    /// The rules' timing (decision_wait, skew, margin, grace).
    pub rules: RuleConfig,
    /// This process: a restart at the same address is a new member.
    pub incarnation: Incarnation,
    /// Addresses members connect from: only they may send marked data.
    members: BTreeSet<IpAddr>,
    /// `protocol.otlp` for peers, validated.
    pub client: Arc<PeerClient>,
    /// TLS client settings when peers are dialled with TLS.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl Peers {
    /// Whether `ip` belongs to a member (loopback included when a member is on loopback).
    pub fn is_member_address(&self, ip: IpAddr) -> bool {
        self.members.contains(&ip.to_canonical())
    }
}

/// Builds the shared membership state when a `tail_sampling` sets `tailgate.membership`
/// (validation allows at most one). Host names in the member list are resolved once here, for
/// the member gate; an unresolvable one stops the start naming its key.
pub fn start(config: &Config) -> Result<Option<Arc<Peers>>, String> {
    let found = config.processors.iter().find_map(|(id, p)| match p {
        ProcessorConfig::TailSampling(c) => c.membership.as_ref().map(|m| (id, c, m)),
        _ => None,
    });
    let Some((id, ts, m)) = found else {
        return Ok(None);
    };
    let path = format!("processors.{id}.tailgate.membership");
    let hostnames = static_hostnames(m).ok_or_else(|| {
        format!("{path}.resolver: only the static resolver is built (design step 6)")
    })?;
    let members = fixed::members(hostnames);
    let mode = m
        .hashing
        .unwrap_or_else(|| Mode::default_for(ResolverKind::Static, &members));
    let table = RoutingTable::build(mode, members)
        .map_err(|e| format!("{path}.resolver.static.hostnames: {e}"))?;
    let view = Arc::new(View::plain(&m.keys.self_endpoint, table, 1));
    if view.me().is_none() {
        tracing::warn!(
            "{path}.self: {} is not in the member list: this gateway owns no trace and forwards every span",
            m.keys.self_endpoint
        );
    }
    let rules = RuleConfig::try_new(
        nanos(ts.sampler.decision_wait),
        nanos(m.skew),
        nanos(m.margin),
        nanos(m.grace),
    )
    .map_err(|e| format!("{path}.grace: {e}"))?;
    let members = member_addresses(hostnames, &path)?;
    let tls = client_tls(m.client.keys(), &path)?;
    Ok(Some(Arc::new(Peers {
        processor: id.clone(),
        view,
        rules,
        incarnation: Incarnation(new_incarnation()),
        members,
        client: Arc::new(m.client.clone()),
        tls,
    })))
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
