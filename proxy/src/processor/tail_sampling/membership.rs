//! `tail_sampling.tailgate.membership`: the gateway's view of its peers (issue 18,
//! docs/membership-design.md §3). Parsed and checked here with the loadbalancing exporter's own
//! resolver and `protocol.otlp` parsers, so both tiers read member lists the same way.
//!
//! Forwarding, claims and hand-overs between gateways, the drain on SIGTERM and health-probed
//! failover of peers are built (design §13, steps 4–8) for every resolver.

use std::time::Duration;

use serde::Deserialize;
use serde_yaml::{Mapping, Value};
use tailgate_routing::mode::Mode;

use crate::config::common::split_host_port;
use crate::config::duration::GoDuration;
use crate::config::error::{join, ConfigErrors};
use crate::config::keys::parse_keys;
use crate::exporter::loadbalancing::config::{
    check_dns_server, EndpointHealth, LoadBalancingConfig, Protocol, ResolverSettings,
    Validated as PeerClient,
};

/// The CoreDNS cache ceiling a dns resolver's answers may lag by (design §3: part of the skew).
const DNS_CACHE_CEILING: Duration = Duration::from_secs(30);
/// How late a k8s watch event may arrive (design §3: part of the skew).
const K8S_PROPAGATION: Duration = Duration::from_secs(5);
/// The smallest safety margin; otherwise four timer ticks (design §3).
const MIN_MARGIN: Duration = Duration::from_secs(1);

/// `tail_sampling.tailgate.membership` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MembershipKeys {
    /// Where the gateways come from: the loadbalancing exporter's resolvers.
    pub resolver: ResolverSettings,
    /// This gateway as the resolver lists it (`host:port`), compared byte for byte.
    #[serde(rename = "self")]
    pub self_endpoint: String,
    /// The client that forwards to peers: any `otlp` exporter settings but `endpoint`.
    pub protocol: Protocol,
    /// `jump`, `slots` or `collector`; as the agents choose when absent.
    pub hashing: Option<String>,
    /// DNS server (`ip:port`) for the dns resolver instead of the system's.
    pub dns_server: Option<String>,
    /// How long a membership change is allowed for (default: decision_wait + skew + margin).
    pub grace: Option<GoDuration>,
    /// Health probes of the peers, the loadbalancing exporter's `tailgate.endpoint_health` keys:
    /// a peer they take down owns nothing and its claims are dropped. Set it as the agents set
    /// theirs, so both tiers fail a dead gateway's traces over to the same stand-ins.
    pub endpoint_health: Option<EndpointHealth>,
}

/// A checked `membership` block with its timing worked out.
#[derive(Debug, Clone)]
pub struct MembershipConfig {
    /// The keys as written.
    pub keys: MembershipKeys,
    /// The `hashing` mode, if set (else by resolver kind, as the agents).
    pub hashing: Option<Mode>,
    /// How far members' views of a change may lag each other.
    pub skew: Duration,
    /// The safety margin added to every wait.
    pub margin: Duration,
    /// `grace`, written or derived.
    pub grace: Duration,
    /// `protocol.otlp` for peers, validated as the loadbalancing exporter validates its own.
    pub client: PeerClient,
}

/// Takes `tailgate.membership` out of a `tail_sampling` mapping, so the sampler (which knows
/// nothing of networking and refuses unknown keys) never sees it.
pub fn take(value: &mut Value) -> Option<Value> {
    let tailgate = value
        .as_mapping_mut()?
        .get_mut("tailgate")?
        .as_mapping_mut()?;
    let block = tailgate.remove("membership")?;
    Some(if block.is_null() {
        Value::Mapping(Mapping::new())
    } else {
        block
    })
}

/// Parses and checks the block at `path` (`processors.tail_sampling/x.tailgate.membership`)
/// against the sampler's `decision_wait` and `timer_tick`.
pub fn parse(
    value: Value,
    path: &str,
    decision_wait: Duration,
    timer_tick: Duration,
    errors: &mut ConfigErrors,
) -> Option<MembershipConfig> {
    let keys: MembershipKeys = parse_keys(value, path, errors)?;
    let before = errors.problems.len();
    let client = check_peers(&keys, path, errors);
    if let Err(e) = split_host_port(&keys.self_endpoint) {
        let e = if keys.self_endpoint.is_empty() {
            "is required: this gateway as the resolver lists it, e.g. \"${env:POD_IP}:4317\""
                .to_owned()
        } else {
            e
        };
        errors.push(join(path, "self"), e);
    }
    let hashing = keys.hashing.as_deref().and_then(|h| {
        h.parse::<Mode>()
            .map_err(|e| errors.push(join(path, "hashing"), e.to_string()))
            .ok()
    });
    let margin = MIN_MARGIN.max(timer_tick.saturating_mul(4));
    let (skew, grace) = match keys.grace {
        None => {
            let skew = resolver_skew(&keys.resolver);
            (skew, decision_wait + skew + margin)
        }
        Some(GoDuration(grace)) => match grace.checked_sub(decision_wait + margin) {
            Some(skew) => (skew, grace),
            None => {
                errors.push(
                    join(path, "grace"),
                    format!(
                        "{grace:?} is shorter than decision_wait ({decision_wait:?}) plus the \
                         margin ({margin:?}): members' views of a change could not differ at all"
                    ),
                );
                (Duration::ZERO, grace)
            }
        },
    };
    let client = client.filter(|_| errors.problems.len() == before)?;
    Some(MembershipConfig {
        keys,
        hashing,
        skew,
        margin,
        grace,
        client,
    })
}

/// The resolver and `protocol.otlp`, through the loadbalancing exporter's validation (so the
/// key paths and messages are the agents'), and `dns_server`; the validated client.
fn check_peers(keys: &MembershipKeys, path: &str, errors: &mut ConfigErrors) -> Option<PeerClient> {
    let as_agent = LoadBalancingConfig {
        protocol: keys.protocol.clone(),
        resolver: keys.resolver.clone(),
        ..LoadBalancingConfig::default()
    };
    // The only tailgate-block keys the membership has are checked below, at their own paths.
    let client = as_agent.validate(path, errors);
    check_dns_server(keys.dns_server.as_deref(), &keys.resolver, path, errors);
    if let Some(h) = &keys.endpoint_health {
        let at = join(path, "endpoint_health");
        h.validate(&at, errors);
        if h.enabled && !keys.protocol.otlp.tls.insecure {
            errors.push(
                join(&at, "enabled"),
                "health probes are sent in plaintext only for now: with TLS between gateways \
                 set enabled: false",
            );
        }
    }
    client
}

/// The view skew a resolver allows for (design §3): dns re-resolves every `interval` within
/// `timeout`, behind a cache of up to 30 s; a k8s watch propagates within ~5 s plus its timeout;
/// a static list never changes.
fn resolver_skew(r: &ResolverSettings) -> Duration {
    if let Some(d) = &r.dns {
        return d.interval.0 + d.timeout.0 + DNS_CACHE_CEILING;
    }
    if let Some(k) = &r.k8s {
        return K8S_PROPAGATION + k.timeout.0;
    }
    Duration::ZERO
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::processor::tail_sampling::config::parse as parse_tail_sampling;

    const PATH: &str = "processors.tail_sampling";

    /// The whole `tail_sampling` block through the processor's parser: the membership result and
    /// every problem reported.
    fn run(yaml: &str) -> (Option<MembershipConfig>, Vec<String>) {
        let mut errors = ConfigErrors::default();
        let mut warnings = Vec::new();
        let v: Value = serde_yaml::from_str(yaml).unwrap();
        let c = parse_tail_sampling(v, PATH, &mut errors, &mut warnings);
        let problems = errors.problems.iter().map(ToString::to_string).collect();
        (c.and_then(|c| c.membership), problems)
    }

    #[test]
    fn the_seed_shape_derives_grace_and_is_accepted() {
        let (m, problems) = run(
            "decision_wait: 30s\npolicies: [{name: all, type: always_sample}]\n\
             tailgate:\n  membership:\n    resolver: {dns: {hostname: gw-headless.obs.svc.cluster.local, port: 4317}}\n    \
             self: 10.0.0.7:4317\n    protocol: {otlp: {tls: {insecure: true}}}\n",
        );
        let m = m.unwrap();
        // dns: interval 5 s + timeout 1 s + the 30 s cache ceiling; margin max(1 s, 4 × 100 ms).
        assert_eq!(m.skew, Duration::from_secs(36));
        assert_eq!(m.margin, Duration::from_secs(1));
        assert_eq!(m.grace, Duration::from_secs(67));
        assert_eq!(m.hashing, None);
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn a_written_grace_sets_the_skew_and_must_leave_room_for_one() {
        let base = "decision_wait: 2s\npolicies: [{name: all, type: always_sample}]\n\
                    tailgate:\n  membership:\n    resolver: {static: {hostnames: [a:4317, b:4317]}}\n    \
                    self: a:4317\n    hashing: slots\n";
        let (m, _) = run(&format!("{base}    grace: 5s\n"));
        let m = m.unwrap();
        assert_eq!(
            (m.skew, m.grace),
            (Duration::from_secs(2), Duration::from_secs(5))
        );
        assert_eq!(m.hashing, Some(Mode::Slots));
        let (m, problems) = run(&format!("{base}    grace: 2500ms\n"));
        assert!(m.is_none());
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("processors.tail_sampling.tailgate.membership.grace: ")),
            "{problems:?}"
        );
    }

    #[test]
    fn every_problem_is_named_at_its_key_path() {
        let (m, problems) = run(
            "policies: [{name: all, type: always_sample}]\n\
             tailgate:\n  membership:\n    resolver: {static: {hostnames: [a:4317]}, dns: {hostname: x}}\n    \
             hashing: ring\n    dns_server: nowhere\n    protocol: {otlp: {compression: lz4}}\n",
        );
        assert!(m.is_none());
        let at = "processors.tail_sampling.tailgate.membership";
        for key in [
            "resolver:",
            "self:",
            "hashing:",
            "dns_server:",
            "protocol.otlp.compression:",
        ] {
            assert!(
                problems
                    .iter()
                    .any(|p| p.starts_with(&format!("{at}.{key}"))),
                "{key}: {problems:?}"
            );
        }
        let (_, problems) = run(
            "policies: [{name: all, type: always_sample}]\ntailgate:\n  membership: {seif: a:1}\n",
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("membership") && p.contains("seif")),
            "{problems:?}"
        );
    }

    #[test]
    fn without_the_block_nothing_changes() {
        let (m, problems) =
            run("policies: [{name: all, type: always_sample}]\ntailgate: {timer_tick: 50ms}\n");
        assert!(m.is_none());
        assert!(problems.is_empty(), "{problems:?}");
    }
}
