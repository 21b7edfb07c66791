//! Keys of the `loadbalancing` exporter: the collector's (`routing_key`, `protocol.otlp`,
//! `resolver.{static,dns,k8s}`) plus tailgate's own under `tailgate:`.

use std::time::Duration;

use serde::Deserialize;
use tailgate_routing::{Mode, ResolverKind};

use crate::config::duration::GoDuration;
use crate::config::error::{join, ConfigErrors};
use crate::exporter::otlp::config::{self as otlp, OtlpExporterConfig};

/// The port the collector adds to endpoints that have none (`endpointWithPort`).
pub const DEFAULT_PORT: u16 = 4317;

/// `exporters.loadbalancing`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoadBalancingConfig {
    /// `traceID` (default) or `service`.
    pub routing_key: Option<String>,
    /// Settings of the exporter made for each backend.
    pub protocol: Protocol,
    /// Where the backends come from; exactly one resolver.
    pub resolver: ResolverSettings,
    /// tailgate-only keys (the collector rejects this block).
    pub tailgate: TailgateKeys,
}

/// `protocol`: only OTLP, as in the collector.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Protocol {
    /// Any `otlp` exporter settings; `endpoint` is replaced by each backend's.
    pub otlp: OtlpExporterConfig,
}

/// `resolver`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResolverSettings {
    /// `resolver.static`.
    #[serde(rename = "static")]
    pub static_list: Option<StaticResolver>,
    /// `resolver.dns`.
    pub dns: Option<DnsResolver>,
    /// `resolver.k8s`.
    pub k8s: Option<K8sResolver>,
    /// `resolver.aws_cloud_map` (newer collectors): recognised so the error can say so.
    pub aws_cloud_map: Option<serde_yaml::Value>,
}

/// `resolver.static`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StaticResolver {
    /// Backends as `host[:port]` (4317 when no port).
    pub hostnames: Vec<String>,
}

/// A port written as a number or a string (the collector's `port` is a string).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum PortValue {
    /// `port: 4317`.
    Number(u64),
    /// `port: "4317"`.
    Text(String),
}

/// `resolver.dns`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsResolver {
    /// Name whose A/AAAA records are the backends.
    pub hostname: String,
    /// Port added to every address (default 4317).
    pub port: Option<PortValue>,
    /// Re-resolution interval (default 5s).
    pub interval: GoDuration,
    /// Deadline of one resolution (default 1s).
    pub timeout: GoDuration,
}

impl Default for DnsResolver {
    fn default() -> Self {
        DnsResolver {
            hostname: String::new(),
            port: None,
            interval: GoDuration(Duration::from_secs(5)),
            timeout: GoDuration(Duration::from_secs(1)),
        }
    }
}

/// `resolver.k8s`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct K8sResolver {
    /// `name.namespace` (without a namespace: the pod's own, else `default`, as the collector).
    pub service: String,
    /// Ports to send to on every endpoint (default `[4317]`).
    pub ports: Vec<u16>,
    /// Deadline of API calls (default 1s).
    pub timeout: GoDuration,
    /// Use pod host names (`pod.service.namespace`) instead of addresses.
    pub return_hostnames: bool,
}

impl Default for K8sResolver {
    fn default() -> Self {
        K8sResolver {
            service: String::new(),
            ports: vec![DEFAULT_PORT],
            timeout: GoDuration(Duration::from_secs(1)),
            return_hostnames: false,
        }
    }
}

/// `tailgate:`: keys the collector does not have.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TailgateKeys {
    /// `jump`, `slots` or `collector`; by resolver kind when absent (see `docs/routing.md`).
    pub hashing: Option<String>,
    /// The old reserved key for health-aware failover: refused, naming `endpoint_health`.
    pub failover_after: Option<GoDuration>,
    /// Health-aware failover (docs/membership-design.md §8), contrib's key names.
    pub endpoint_health: Option<EndpointHealth>,
    /// DNS server (`ip:port`) for the dns resolver instead of the system's (`/etc/resolv.conf`).
    pub dns_server: Option<String>,
    /// Kubernetes API server URL for the k8s resolver instead of the in-cluster / kubeconfig one.
    pub k8s_api_server: Option<String>,
    /// Allows an `http://` `k8s_api_server`, which sends the service-account token unencrypted
    /// (e.g. `kubectl proxy` on loopback). Refused by validate without it.
    pub k8s_allow_insecure_token: bool,
    /// Longest the k8s watch may stay silent (no answer, event or bookmark) before it is dropped
    /// and the slices listed again (default 5m30s: the watch's `timeoutSeconds` plus 30 s).
    pub k8s_watch_idle_timeout: Option<GoDuration>,
    /// Recognised so the error can say where the level goes: next to `compression`, under
    /// `protocol.otlp.tailgate.compression_params`.
    pub compression_params: Option<serde_yaml::Value>,
}

/// `tailgate.endpoint_health`: collector-contrib's `endpoint_health` key names (seen in its source,
/// not in a release), nested under `tailgate:` until the collector ships them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EndpointHealth {
    /// Whether failed backends are taken out of the table (default false).
    pub enabled: bool,
    /// After a passive failure, how long before a probe may bring the backend back (30 s).
    pub quarantine_duration: GoDuration,
    /// Data for a failed backend goes to its stand-in (always, when enabled).
    pub reroute_on_failure: bool,
    /// How many stand-ins a batch may try (1).
    pub max_reroute_attempts: u32,
    /// Empty exports sent to every backend to notice one that hangs.
    pub active_probe: ActiveProbe,
}

impl Default for EndpointHealth {
    fn default() -> Self {
        EndpointHealth {
            enabled: false,
            quarantine_duration: GoDuration(Duration::from_secs(30)),
            reroute_on_failure: true,
            max_reroute_attempts: 1,
            active_probe: ActiveProbe::default(),
        }
    }
}

/// `tailgate.endpoint_health.active_probe`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ActiveProbe {
    /// Whether probes are sent (default false).
    pub enabled: bool,
    /// Consecutive failures that take a backend down (2).
    pub fall: u32,
    /// Consecutive probe successes that bring it back (2).
    pub rise: u32,
    /// Random spread of the probe interval, a fraction in [0, 1) (0.1).
    pub jitter: f64,
    /// Time between probes of one backend (1 s; tailgate's key).
    pub interval: GoDuration,
    /// Deadline of one probe (1 s; tailgate's key).
    pub timeout: GoDuration,
}

impl Default for ActiveProbe {
    fn default() -> Self {
        ActiveProbe {
            enabled: false,
            fall: 2,
            rise: 2,
            jitter: 0.1,
            interval: GoDuration(Duration::from_secs(1)),
            timeout: GoDuration(Duration::from_secs(1)),
        }
    }
}

impl EndpointHealth {
    /// Checks the ranges (under `path`, the block's own) and that an enabled block probes: the
    /// probes are the health signal (a backend is not taken down by failed sends alone).
    pub fn validate(&self, path: &str, errors: &mut ConfigErrors) {
        if self.quarantine_duration.0.is_zero() {
            errors.push(
                join(path, "quarantine_duration"),
                "must be greater than zero",
            );
        }
        if self.max_reroute_attempts != 1 {
            errors.push(
                join(path, "max_reroute_attempts"),
                "only 1 is supported: a batch goes to the failed backend's stand-in, never further",
            );
        }
        if !self.reroute_on_failure {
            errors.push(
                join(path, "reroute_on_failure"),
                "false is not supported: data for a failed backend is always rerouted",
            );
        }
        let probe = join(path, "active_probe");
        let p = &self.active_probe;
        for (key, n) in [("fall", p.fall), ("rise", p.rise)] {
            if n == 0 {
                errors.push(join(&probe, key), "must be at least 1");
            }
        }
        if !(0.0..1.0).contains(&p.jitter) {
            errors.push(
                join(&probe, "jitter"),
                format!("{} is not a fraction in [0, 1)", p.jitter),
            );
        }
        for (key, d) in [("interval", p.interval), ("timeout", p.timeout)] {
            if d.0.is_zero() {
                errors.push(join(&probe, key), "must be greater than zero");
            }
        }
        if self.enabled && !p.enabled {
            errors.push(
                join(path, "enabled"),
                "failover needs the health probes: set active_probe.enabled: true (failures of \
                 ordinary sends do not take a backend down in tailgate; docs/membership-design.md §8)",
            );
        }
    }
}

/// The endpoint `protocol.otlp` is validated with: each backend's replaces it.
const STAND_IN_ENDPOINT: &str = "backend:4317";

/// A `loadbalancing` exporter's keys that passed validation, with its backends' `otlp` settings
/// validated once. Only [`LoadBalancingConfig::validate`] makes one.
#[derive(Debug, Clone)]
pub struct Validated {
    /// The keys as written.
    keys: LoadBalancingConfig,
    /// `protocol.otlp` validated with a stand-in endpoint; [`Validated::backend`] swaps in each
    /// backend's.
    backend: otlp::Validated,
}

impl Validated {
    /// The keys as written.
    pub fn keys(&self) -> &LoadBalancingConfig {
        &self.keys
    }

    /// The exporter settings of the backend at `endpoint` (as the resolver hands it over, with
    /// its port). Fails only on the endpoint, which resolvers produce at run time.
    pub fn backend(&self, endpoint: &str) -> Result<otlp::Validated, String> {
        self.backend.with_endpoint(endpoint)
    }
}

/// What routes a span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoutingKey {
    /// The 16-byte trace ID.
    TraceId,
    /// The resource's `service.name`.
    Service,
}

/// The one configured resolver.
#[derive(Debug, Clone, Copy)]
pub enum ResolverChoice<'a> {
    /// `resolver.static`.
    Static(&'a StaticResolver),
    /// `resolver.dns`.
    Dns(&'a DnsResolver),
    /// `resolver.k8s`.
    K8s(&'a K8sResolver),
}

impl ResolverChoice<'_> {
    /// The routing crate's resolver kind (decides the default hashing mode).
    pub fn kind(self) -> ResolverKind {
        match self {
            ResolverChoice::Static(_) => ResolverKind::Static,
            ResolverChoice::Dns(_) => ResolverKind::Dns,
            ResolverChoice::K8s(_) => ResolverKind::K8s,
        }
    }

    /// The `resolver` label of the collector's metrics.
    pub fn label(self) -> &'static str {
        match self {
            ResolverChoice::Static(_) => "static",
            ResolverChoice::Dns(_) => "dns",
            ResolverChoice::K8s(_) => "k8s",
        }
    }
}

impl LoadBalancingConfig {
    /// The routing key (validated).
    pub fn routing_key(&self) -> RoutingKey {
        match self.routing_key.as_deref() {
            Some("service") => RoutingKey::Service,
            _ => RoutingKey::TraceId,
        }
    }

    /// The configured resolver; `None` only for a config that failed validation.
    pub fn resolver(&self) -> Option<ResolverChoice<'_>> {
        let r = &self.resolver;
        r.static_list
            .as_ref()
            .map(ResolverChoice::Static)
            .or(r.dns.as_ref().map(ResolverChoice::Dns))
            .or(r.k8s.as_ref().map(ResolverChoice::K8s))
    }

    /// The hashing mode forced by `tailgate.hashing`, if any (validated).
    pub fn hashing(&self) -> Option<Mode> {
        self.tailgate
            .hashing
            .as_deref()
            .and_then(|h| h.parse().ok())
    }

    /// The collector's rules plus tailgate's; every problem with its key path. The validated
    /// settings come back only when there was none.
    pub fn validate(self, path: &str, errors: &mut ConfigErrors) -> Option<Validated> {
        let before = errors.problems.len();
        match self.routing_key.as_deref() {
            None | Some("traceID") | Some("service") => {}
            Some(other) => errors.push(
                join(path, "routing_key"),
                format!(
                    "{other:?} is not supported for traces; allowed: traceID (default), service"
                ),
            ),
        }
        // The backend endpoint replaces `endpoint`; check everything else with a stand-in.
        let mut template = self.protocol.otlp.clone();
        STAND_IN_ENDPOINT.clone_into(&mut template.endpoint);
        let backend = template.validate(&join(path, "protocol.otlp"), errors);
        self.validate_resolver(&join(path, "resolver"), backend.as_ref(), errors);
        self.validate_tailgate(&join(path, "tailgate"), errors);
        if errors.problems.len() > before {
            return None;
        }
        Some(Validated {
            backend: backend?,
            keys: self,
        })
    }

    fn validate_resolver(
        &self,
        path: &str,
        backend: Option<&otlp::Validated>,
        errors: &mut ConfigErrors,
    ) {
        let r = &self.resolver;
        if r.aws_cloud_map.is_some() {
            errors.push(
                join(path, "aws_cloud_map"),
                "the aws_cloud_map resolver is not implemented in tailgate; use static, dns or k8s",
            );
        }
        let count = [r.static_list.is_some(), r.dns.is_some(), r.k8s.is_some()]
            .iter()
            .filter(|x| **x)
            .count();
        if count == 0 && r.aws_cloud_map.is_none() {
            errors.push(path, "no resolver specified; set one of static, dns, k8s");
        }
        if count > 1 {
            errors.push(
                path,
                "more than one resolver specified; set exactly one of static, dns, k8s",
            );
        }
        if let Some(s) = &r.static_list {
            validate_static(s, &join(path, "static"), backend, errors);
        }
        if let Some(d) = &r.dns {
            validate_dns(d, &join(path, "dns"), errors);
        }
        if let Some(k) = &r.k8s {
            validate_k8s(k, &join(path, "k8s"), errors);
        }
    }

    fn validate_tailgate(&self, path: &str, errors: &mut ConfigErrors) {
        let t = &self.tailgate;
        if let Some(h) = &t.endpoint_health {
            h.validate(&join(path, "endpoint_health"), errors);
            if h.enabled && !self.protocol.otlp.tls.insecure {
                errors.push(
                    join(path, "endpoint_health.enabled"),
                    "health probes are sent in plaintext only for now: with TLS to the backends \
                     set enabled: false",
                );
            }
        }
        if t.compression_params.is_some() {
            errors.push(
                join(path, "compression_params"),
                "the level goes next to the compression it sets: protocol.otlp.tailgate.compression_params",
            );
        }
        if let Some(h) = &t.hashing {
            if let Err(e) = h.parse::<Mode>() {
                errors.push(join(path, "hashing"), e.to_string());
            }
        }
        if t.failover_after.is_some() {
            // The routing crate computes failover tables; the health signal that would drive them
            // is not wired yet, and a key that silently did nothing would mislead.
            errors.push(
                join(path, "failover_after"),
                "health-aware failover is not implemented in tailgate yet; remove failover_after \
                 (its successor is tailgate.endpoint_health)",
            );
        }
        check_dns_server(t.dns_server.as_deref(), &self.resolver, path, errors);
        self.validate_k8s_keys(path, errors);
    }

    fn validate_k8s_keys(&self, path: &str, errors: &mut ConfigErrors) {
        let t = &self.tailgate;
        let k8s = self.resolver.k8s.is_some();
        if let Some(s) = &t.k8s_api_server {
            let at = join(path, "k8s_api_server");
            if s.starts_with("http://") {
                if !t.k8s_allow_insecure_token {
                    errors.push(
                        at.clone(),
                        format!(
                            "{s:?} is plain http: the service-account token would be sent unencrypted; \
                             use https://, or set {} (e.g. kubectl proxy on loopback)",
                            join(path, "k8s_allow_insecure_token: true")
                        ),
                    );
                }
            } else if !s.starts_with("https://") {
                errors.push(
                    at.clone(),
                    format!("{s:?} must be an http:// or https:// URL"),
                );
            }
            if !k8s {
                errors.push(at, "only applies to resolver.k8s");
            }
        }
        if t.k8s_allow_insecure_token && !k8s {
            errors.push(
                join(path, "k8s_allow_insecure_token"),
                "only applies to resolver.k8s",
            );
        }
        if let Some(idle) = t.k8s_watch_idle_timeout {
            let at = join(path, "k8s_watch_idle_timeout");
            if idle.0.is_zero() {
                errors.push(at.clone(), "must be greater than zero (default 5m30s)");
            }
            if !k8s {
                errors.push(at, "only applies to resolver.k8s");
            }
        }
    }
}

/// Checks each static backend as a backend's exporter will dial it (the same parse as at run
/// time), when the `protocol.otlp` settings are valid.
fn validate_static(
    s: &StaticResolver,
    path: &str,
    backend: Option<&otlp::Validated>,
    errors: &mut ConfigErrors,
) {
    if s.hostnames.is_empty() {
        errors.push(
            join(path, "hostnames"),
            "must list at least one backend, e.g. [gateway-0:4317]",
        );
    }
    for (i, h) in s.hostnames.iter().enumerate() {
        let at = format!("{}[{i}]", join(path, "hostnames"));
        let dialled = dial_endpoint(h).and_then(|d| match backend {
            Some(b) => b.with_endpoint(&d).map(drop),
            None => Ok(()),
        });
        if let Err(e) = dialled {
            errors.push(at, e);
        }
    }
}

fn validate_dns(d: &DnsResolver, path: &str, errors: &mut ConfigErrors) {
    if d.hostname.is_empty() {
        errors.push(
            join(path, "hostname"),
            "is required: the name whose A/AAAA records are the backends",
        );
    }
    if let Err(e) = d.port() {
        errors.push(join(path, "port"), e);
    }
    if d.interval.0.is_zero() {
        errors.push(join(path, "interval"), "must be greater than zero");
    }
    if d.timeout.0.is_zero() {
        errors.push(join(path, "timeout"), "must be greater than zero");
    }
}

fn validate_k8s(k: &K8sResolver, path: &str, errors: &mut ConfigErrors) {
    if k.service.is_empty() {
        errors.push(
            join(path, "service"),
            "is required: name.namespace of the backends' Service",
        );
    }
    if k.ports.is_empty() {
        errors.push(join(path, "ports"), "must list at least one port");
    }
    if k.ports.contains(&0) {
        errors.push(join(path, "ports"), "ports must be between 1 and 65535");
    }
    if k.timeout.0.is_zero() {
        errors.push(join(path, "timeout"), "must be greater than zero");
    }
}

impl DnsResolver {
    /// The port added to each address.
    pub fn port(&self) -> Result<u16, String> {
        let bad = |v: &dyn std::fmt::Display| format!("{v} is not a port between 1 and 65535");
        match &self.port {
            None => Ok(DEFAULT_PORT),
            Some(PortValue::Number(n)) => u16::try_from(*n)
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| bad(n)),
            Some(PortValue::Text(t)) if t.is_empty() => Ok(DEFAULT_PORT),
            Some(PortValue::Text(t)) => t
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| bad(&format!("{t:?}"))),
        }
    }
}

impl K8sResolver {
    /// `(name, namespace)`; the namespace is `None` when not written (the pod's own).
    pub fn name_and_namespace(&self) -> (&str, Option<&str>) {
        match self.service.split_once('.') {
            Some((n, ns)) => (n, Some(ns)),
            None => (self.service.as_str(), None),
        }
    }
}

/// Checks a `dns_server` key (under `path`): an `ip:port` address, set only with `resolver.dns`.
/// Agents' `tailgate.dns_server` and the gateway membership's `dns_server` share it.
pub fn check_dns_server(
    dns_server: Option<&str>,
    resolver: &ResolverSettings,
    path: &str,
    errors: &mut ConfigErrors,
) {
    let Some(s) = dns_server else {
        return;
    };
    if s.parse::<std::net::SocketAddr>().is_err() {
        errors.push(
            join(path, "dns_server"),
            format!("{s:?} is not an ip:port address, e.g. 127.0.0.1:53"),
        );
    }
    if resolver.dns.is_none() {
        errors.push(join(path, "dns_server"), "only applies to resolver.dns");
    }
}

/// What the exporter dials for a member endpoint: the endpoint with `:4317` added when it has no
/// port (the collector's `endpointWithPort`). The member keeps the endpoint as written, which is
/// what the collector's ring hashes.
pub fn dial_endpoint(endpoint: &str) -> Result<String, String> {
    if endpoint.is_empty() {
        return Err("is empty; expected host[:port]".to_owned());
    }
    let with_port = if endpoint.contains(':') && !is_bare_ipv6(endpoint) {
        endpoint.to_owned()
    } else if is_bare_ipv6(endpoint) {
        format!("[{endpoint}]:{DEFAULT_PORT}")
    } else {
        format!("{endpoint}:{DEFAULT_PORT}")
    };
    crate::config::common::split_host_port(&with_port)
        .map(|_| with_port.clone())
        .map_err(|_| format!("invalid backend {endpoint:?}: expected host[:port]"))
}

fn is_bare_ipv6(s: &str) -> bool {
    s.parse::<std::net::Ipv6Addr>().is_ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::config::registry::parse_keys;

    fn validated(yaml: &str) -> Result<Validated, Vec<String>> {
        let mut errors = ConfigErrors::default();
        let v: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap();
        let c: Option<LoadBalancingConfig> = parse_keys(v, "exporters.loadbalancing", &mut errors);
        let c = c.and_then(|c| c.validate("exporters.loadbalancing", &mut errors));
        if errors.problems.is_empty() {
            Ok(c.unwrap())
        } else {
            Err(errors.problems.iter().map(ToString::to_string).collect())
        }
    }

    fn parse(yaml: &str) -> Result<LoadBalancingConfig, Vec<String>> {
        validated(yaml).map(|v| v.keys().clone())
    }

    #[test]
    fn reference_agent_block_parses_with_collector_defaults() {
        let c = parse(
            "routing_key: traceID\nprotocol: {otlp: {tls: {insecure: true}}}\nresolver:\n  dns: {hostname: gw.svc, port: 4317, interval: 5s, timeout: 1s}",
        )
        .unwrap();
        assert_eq!(c.routing_key(), RoutingKey::TraceId);
        let Some(ResolverChoice::Dns(d)) = c.resolver() else {
            panic!("dns")
        };
        assert_eq!(d.port(), Ok(4317));
        assert_eq!(d.interval.0, Duration::from_secs(5));
        assert_eq!(c.protocol.otlp.compression, "gzip");
        assert_eq!(c.hashing(), None);
    }

    #[test]
    fn protocol_keepalive_reaches_every_backend() {
        let c = validated(
            "protocol: {otlp: {keepalive: {time: 10s, timeout: 5s}}}\nresolver: {static: {hostnames: [a:4317]}}",
        )
        .unwrap();
        let backend = c.backend("a:4317").unwrap();
        let k = backend.keys().keepalive().unwrap();
        assert_eq!(
            (k.time, k.timeout),
            (Duration::from_secs(10), Duration::from_secs(5))
        );
        assert_eq!(backend.keys().user_timeout(), Duration::from_secs(5));
    }

    #[test]
    fn defaults_and_string_ports() {
        let c = parse("resolver: {dns: {hostname: gw, port: \"4318\"}}").unwrap();
        let Some(ResolverChoice::Dns(d)) = c.resolver() else {
            panic!("dns")
        };
        assert_eq!(d.port(), Ok(4318));
        assert_eq!(d.timeout.0, Duration::from_secs(1));
        let c = parse("resolver: {k8s: {service: gw.obs}}").unwrap();
        let Some(ResolverChoice::K8s(k)) = c.resolver() else {
            panic!("k8s")
        };
        assert_eq!(k.ports, vec![4317]);
        assert_eq!(k.name_and_namespace(), ("gw", Some("obs")));
        assert!(!k.return_hostnames);
    }

    #[test]
    fn problems_name_their_key_paths() {
        let errs = parse(
            "routing_key: metric\nprotocol: {otlp: {compression: lz4}}\nresolver: {static: {hostnames: []}, dns: {hostname: \"\", port: 70000}}\ntailgate: {hashing: ring, failover_after: 0s}",
        )
        .unwrap_err();
        for expected in [
            "exporters.loadbalancing.routing_key: \"metric\" is not supported",
            "exporters.loadbalancing.protocol.otlp.compression:",
            "exporters.loadbalancing.resolver: more than one resolver",
            "exporters.loadbalancing.resolver.static.hostnames: must list",
            "exporters.loadbalancing.resolver.dns.hostname: is required",
            "exporters.loadbalancing.resolver.dns.port: 70000 is not a port",
            "exporters.loadbalancing.tailgate.hashing:",
            "exporters.loadbalancing.tailgate.failover_after: health-aware failover is not implemented",
        ] {
            assert!(
                errs.iter().any(|e| e.starts_with(expected)),
                "missing {expected:?} in {errs:#?}"
            );
        }
        let errs = parse("resolver: {}").unwrap_err();
        assert!(errs[0].contains("no resolver specified"), "{errs:?}");
        let errs =
            parse("resolver: {static: {hostnames: [a]}}\ntailgate: {colour: red}").unwrap_err();
        assert!(
            errs[0].starts_with("exporters.loadbalancing.tailgate.colour: unknown field"),
            "{errs:?}"
        );
    }

    #[test]
    fn the_token_is_not_sent_over_plain_http_without_the_opt_in() {
        let k8s = "resolver: {k8s: {service: gw.obs}}\ntailgate: ";
        let errs = parse(&format!(
            "{k8s}{{k8s_api_server: \"http://10.0.0.1:8080\"}}"
        ))
        .unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].starts_with("exporters.loadbalancing.tailgate.k8s_api_server: \"http://10.0.0.1:8080\" is plain http")
                && errs[0].contains("exporters.loadbalancing.tailgate.k8s_allow_insecure_token: true"),
            "{errs:?}"
        );
        let c = parse(&format!(
            "{k8s}{{k8s_api_server: \"http://127.0.0.1:8001\", k8s_allow_insecure_token: true}}"
        ))
        .unwrap();
        assert!(c.tailgate.k8s_allow_insecure_token);
        parse(&format!("{k8s}{{k8s_api_server: \"https://10.0.0.1\"}}")).unwrap();
        let errs = parse(
            "resolver: {dns: {hostname: gw}}\ntailgate: {k8s_allow_insecure_token: true, k8s_watch_idle_timeout: 1m}",
        )
        .unwrap_err();
        assert_eq!(errs.len(), 2, "{errs:?}");
        let errs = parse(&format!("{k8s}{{k8s_watch_idle_timeout: 0s}}")).unwrap_err();
        assert!(
            errs[0].starts_with("exporters.loadbalancing.tailgate.k8s_watch_idle_timeout: must be greater than zero"),
            "{errs:?}"
        );
        let c = parse(&format!("{k8s}{{k8s_watch_idle_timeout: 90s}}")).unwrap();
        assert_eq!(
            c.tailgate.k8s_watch_idle_timeout.map(|d| d.0),
            Some(Duration::from_secs(90))
        );
    }

    #[test]
    fn dial_endpoints_get_the_default_port() {
        assert_eq!(dial_endpoint("gw-0").unwrap(), "gw-0:4317");
        assert_eq!(dial_endpoint("gw-0:1234").unwrap(), "gw-0:1234");
        assert_eq!(dial_endpoint("10.0.0.1:4317").unwrap(), "10.0.0.1:4317");
        assert_eq!(dial_endpoint("[::1]:4317").unwrap(), "[::1]:4317");
        assert_eq!(dial_endpoint("::1").unwrap(), "[::1]:4317");
        assert!(dial_endpoint("gw:port").is_err());
    }

    #[test]
    fn the_level_under_protocol_otlp_reaches_every_backend() {
        use tailgate_proto::compression::{Compression as W, Encoder, Level};
        let c = validated(
            "protocol: {otlp: {compression: zstd, tailgate: {compression_params: {level: 4}}}}\nresolver: {static: {hostnames: [gw-0]}}",
        )
        .unwrap();
        let want = Encoder::new(W::Zstd, Level::Numbered(3)).unwrap();
        assert_eq!(c.backend("gw-1:4317").unwrap().encoder(), want);
        // Default: gzip at its fast level.
        let c = validated("resolver: {static: {hostnames: [gw-0]}}").unwrap();
        assert_eq!(
            c.backend("gw-1:4317").unwrap().encoder(),
            Encoder::fast(W::Gzip)
        );
        // Refusals name the key path; the exporter's own `tailgate:` points to the right place.
        let errs = validated(
            "protocol: {otlp: {tailgate: {compression_params: {level: 10}}}}\nresolver: {static: {hostnames: [gw-0]}}\ntailgate: {compression_params: {level: 1}}",
        )
        .unwrap_err();
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(
            errs[0].starts_with(
                "exporters.loadbalancing.protocol.otlp.tailgate.compression_params.level: 10 is not a gzip level"
            ),
            "{errs:?}"
        );
        assert!(
            errs[1].starts_with("exporters.loadbalancing.tailgate.compression_params: the level goes next to the compression it sets: protocol.otlp.tailgate.compression_params"),
            "{errs:?}"
        );
    }

    #[test]
    fn endpoint_health_is_checked_and_needs_probes() {
        let base = "resolver: {static: {hostnames: [a:4317]}}\ntailgate:\n  endpoint_health:";
        // Disabled (contrib's default): accepted, with every default.
        assert!(validated(&format!("{base} {{enabled: false}}")).is_ok());
        let errs = validated(&format!(
            "{base}\n    enabled: true\n    quarantine_duration: 0s\n    max_reroute_attempts: 2\n    \
             active_probe: {{fall: 0, rise: 1, jitter: 1.5, interval: 0s, timeout: 1s}}"
        ))
        .unwrap_err();
        let at = "exporters.loadbalancing.tailgate.endpoint_health";
        for key in [
            "enabled: failover needs the health probes",
            "quarantine_duration:",
            "max_reroute_attempts:",
            "active_probe.fall:",
            "active_probe.jitter:",
            "active_probe.interval:",
        ] {
            assert!(
                errs.iter().any(|e| e.starts_with(&format!("{at}.{key}"))),
                "{key}: {errs:?}"
            );
        }
        // ...and probes are plaintext only.
        assert!(errs
            .iter()
            .any(|e| e.starts_with(&format!("{at}.enabled: health probes"))));
        assert_eq!(errs.len(), 7, "{errs:?}");
        let on = "protocol: {otlp: {tls: {insecure: true}}}\nresolver: {static: {hostnames: [a:4317]}}\n\
                  tailgate: {endpoint_health: {enabled: true, active_probe: {enabled: true}}}";
        assert!(validated(on).is_ok());
        let errs = validated(&format!("{base} {{enable: true}}")).unwrap_err();
        assert!(errs.iter().any(|e| e.contains("enable")), "{errs:?}");
    }

    #[test]
    fn backends_get_the_validated_settings_with_their_own_target() {
        let c = validated(
            "protocol: {otlp: {compression: zstd, tls: {insecure: true}}}\nresolver: {static: {hostnames: [gw-0]}}",
        )
        .unwrap();
        let b = c.backend("gw-0:4317").unwrap();
        let want = otlp::DialTarget {
            host: "gw-0".into(),
            port: 4317,
            tls: false,
        };
        assert_eq!(b.target(), &want);
        assert_eq!(b.keys().endpoint, "gw-0:4317");
        assert_eq!(b.compression(), crate::config::common::Compression::Zstd);
        // Endpoints from resolvers stay fallible at run time, through the same parse.
        assert!(c
            .backend(":4317")
            .unwrap_err()
            .contains("the host is empty"));
        // A static backend that would fail that parse is refused at validation.
        let errs = validated("resolver: {static: {hostnames: [a, \":4317\"]}}").unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].starts_with("exporters.loadbalancing.resolver.static.hostnames[1]: invalid endpoint \":4317\": the host is empty"),
            "{errs:?}"
        );
    }
}
