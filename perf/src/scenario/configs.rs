//! Collector-style configs for the processes a scenario starts.
//!
//! They follow the reference configs (`agent-config.yaml`, `gateway-config.yaml` of the seed)
//! with loopback addresses: receivers on `127.0.0.1:0` (the real ports are read from
//! `--ports-file`), self-metrics on `127.0.0.1:0` so several processes can run side by side,
//! the agent's `loadbalancing` exporter with a `static` resolver naming the gateways, and the
//! gateway's `tail_sampling` with the seed's three policies (`decision_wait` shortened so a run
//! ends quickly). Configs are written as JSON, which is YAML too.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{json, Value};

/// The gateway's sampling settings.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Sampling {
    /// `tail_sampling.decision_wait` (the seed: 30 s).
    pub decision_wait: Duration,
    /// `tail_sampling.num_traces`.
    pub num_traces: u64,
    /// The latency policy's `threshold_ms` (the seed: 1000).
    pub latency_threshold: Duration,
    /// The probabilistic policy's `sampling_percentage` (the seed: 10).
    pub sampling_percentage: f64,
}

impl Default for Sampling {
    fn default() -> Self {
        Sampling {
            decision_wait: Duration::from_secs(2),
            num_traces: 100_000,
            latency_threshold: Duration::from_secs(1),
            sampling_percentage: 10.0,
        }
    }
}

/// `batch` processor settings shared by agent and gateway configs.
const BATCH_TIMEOUT: &str = "200ms";

/// How long a span may sit in a batch processor before it is sent.
pub fn batch_timeout() -> Duration {
    Duration::from_millis(200)
}

fn millis(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

fn service(processors: &[&str], exporter: &str) -> Value {
    json!({
        "telemetry": {
            "metrics": {"address": "127.0.0.1:0"},
            "logs": {"level": "warn"}
        },
        "pipelines": {"traces": {
            "receivers": ["otlp"],
            "processors": processors,
            "exporters": [exporter]
        }}
    })
}

fn receivers() -> Value {
    json!({"otlp": {"protocols": {"grpc": {"endpoint": "127.0.0.1:0"}}}})
}

/// An agent: otlp receiver → batch → loadbalancing (routing by trace ID) over a static list.
pub fn agent(gateways: &[SocketAddr]) -> Value {
    let hostnames: Vec<String> = gateways.iter().map(ToString::to_string).collect();
    json!({
        "receivers": receivers(),
        "processors": {"batch": {"timeout": BATCH_TIMEOUT, "send_batch_size": 8192}},
        "exporters": {"loadbalancing": {
            "routing_key": "traceID",
            "protocol": {"otlp": {"tls": {"insecure": true}, "compression": "none"}},
            "resolver": {"static": {"hostnames": hostnames}}
        }},
        "service": service(&["batch"], "loadbalancing")
    })
}

/// [`agent`] with loadbalancing's `protocol.otlp.compression` set to `compression` (none, gzip,
/// zstd).
pub fn agent_compressed(gateways: &[SocketAddr], compression: &str) -> Value {
    let mut config = agent(gateways);
    config["exporters"]["loadbalancing"]["protocol"]["otlp"]["compression"] = json!(compression);
    config
}

/// A gateway: otlp receiver → tail_sampling (errors, slow, probabilistic) → batch → otlp to the
/// backend.
pub fn gateway(backend: SocketAddr, s: &Sampling) -> Value {
    json!({
        "receivers": receivers(),
        "processors": {
            "tail_sampling": {
                "decision_wait": millis(s.decision_wait),
                "num_traces": s.num_traces,
                "expected_new_traces_per_sec": 1000,
                "policies": [
                    {"name": "errors-policy", "type": "status_code",
                     "status_code": {"status_codes": ["ERROR"]}},
                    {"name": "slow-traces-policy", "type": "latency",
                     "latency": {"threshold_ms": s.latency_threshold.as_millis() as u64}},
                    {"name": "probabilistic-policy", "type": "probabilistic",
                     "probabilistic": {"sampling_percentage": s.sampling_percentage}}
                ]
            },
            "batch": {"timeout": BATCH_TIMEOUT, "send_batch_size": 1000}
        },
        "exporters": {"otlp": otlp_exporter(backend)},
        "service": service(&["tail_sampling", "batch"], "otlp")
    })
}

/// How gateways find each other (`tail_sampling.tailgate.membership`) and agents find gateways:
/// a `dns` resolver on one name, answered by a DNS server the scenario runs.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DnsDiscovery {
    /// The name that lists the gateways.
    pub hostname: String,
    /// The port every gateway listens on (the dns resolver gives every address one port).
    pub port: u16,
    /// The DNS server (`tailgate.dns_server` of agents, `dns_server` of membership).
    pub dns_server: SocketAddr,
    /// The resolvers' `interval`.
    pub interval: Duration,
}

impl DnsDiscovery {
    fn resolver(&self) -> Value {
        json!({"dns": {
            "hostname": self.hostname,
            "port": self.port,
            "interval": millis(self.interval),
            "timeout": "500ms"
        }})
    }
}

/// An agent whose `loadbalancing` exporter resolves the gateways by DNS (the `dns` resolver with
/// `tailgate.dns_server`), as agents in Kubernetes do through a headless Service.
pub fn agent_dns(discovery: &DnsDiscovery) -> Value {
    let mut config = agent(&[]);
    let lb = &mut config["exporters"]["loadbalancing"];
    lb["resolver"] = discovery.resolver();
    lb["tailgate"] = json!({"dns_server": discovery.dns_server.to_string()});
    config
}

/// `endpoint_health` for both tiers in the scale scenario's failure events: probes every 250 ms
/// with a 400 ms deadline, down after 2 failures, back after 2 answers and 2 s down.
pub fn endpoint_health() -> Value {
    json!({
        "enabled": true,
        "quarantine_duration": "2s",
        "active_probe": {"enabled": true, "fall": 2, "rise": 2, "interval": "250ms", "timeout": "400ms"}
    })
}

/// [`gateway`] with its OTLP/gRPC receiver on `me` (the address DNS lists for it) and, with
/// `grace`, gateway membership: it finds the other gateways through `discovery`, names itself
/// `me` (`self`) and forwards to and claims from them (`tailgate.membership`, `grace` as given).
pub fn gateway_member(
    me: SocketAddr,
    backend: SocketAddr,
    s: &Sampling,
    discovery: &DnsDiscovery,
    grace: Option<Duration>,
) -> Value {
    let mut config = gateway(backend, s);
    config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"] = json!(me.to_string());
    if let Some(grace) = grace {
        config["processors"]["tail_sampling"]["tailgate"] = json!({"membership": {
            "resolver": discovery.resolver(),
            "dns_server": discovery.dns_server.to_string(),
            "self": me.to_string(),
            "protocol": {"otlp": {
                "tls": {"insecure": true},
                "retry_on_failure": {"initial_interval": "50ms"}
            }},
            "grace": millis(grace)
        }});
    }
    config
}

/// Adds the seed's RED-metrics tier beside sampling: a `traces/metrics` pipeline from the same
/// OTLP receiver into the `spanmetrics` connector, whose metrics go to a `prometheus` exporter on
/// 127.0.0.1:0. Every span a gateway receives from an agent is counted once there (forwarded
/// spans enter only the sampling pipeline), which the connector's
/// `tailgate_connector_spanmetrics_spans_total` shows.
pub fn with_spanmetrics(config: &mut Value) {
    config["connectors"] = json!({"spanmetrics": {
        "dimensions": [{"name": "http.method"}],
        "metrics_flush_interval": "1s"
    }});
    config["exporters"]["prometheus"] = json!({"endpoint": "127.0.0.1:0"});
    let pipelines = &mut config["service"]["pipelines"];
    pipelines["traces/metrics"] = json!({"receivers": ["otlp"], "exporters": ["spanmetrics"]});
    pipelines["metrics"] = json!({"receivers": ["spanmetrics"], "exporters": ["prometheus"]});
}

/// Plain forwarding: otlp receiver → batch → otlp exporter (no routing, no sampling).
pub fn passthrough(backend: SocketAddr) -> Value {
    json!({
        "receivers": receivers(),
        "processors": {"batch": {"timeout": BATCH_TIMEOUT, "send_batch_size": 8192}},
        "exporters": {"otlp": otlp_exporter(backend)},
        "service": service(&["batch"], "otlp")
    })
}

/// [`passthrough`] with the otlp exporter's `compression` set to `compression` (none, gzip, zstd).
pub fn passthrough_compressed(backend: SocketAddr, compression: &str) -> Value {
    let mut config = passthrough(backend);
    config["exporters"]["otlp"]["compression"] = json!(compression);
    config
}

fn otlp_exporter(backend: SocketAddr) -> Value {
    json!({"endpoint": backend.to_string(), "tls": {"insecure": true}, "compression": "none"})
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn agent_lists_every_gateway_in_order() {
        let gws: Vec<SocketAddr> = ["127.0.0.1:7001", "127.0.0.1:7002"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let c = agent(&gws);
        let lb = &c["exporters"]["loadbalancing"];
        assert_eq!(lb["routing_key"], "traceID");
        assert_eq!(
            lb["resolver"]["static"]["hostnames"],
            json!(["127.0.0.1:7001", "127.0.0.1:7002"])
        );
        assert_eq!(
            c["service"]["pipelines"]["traces"]["exporters"],
            json!(["loadbalancing"])
        );
        assert_eq!(lb["protocol"]["otlp"]["compression"], "none");
        let c = agent_compressed(&gws, "gzip");
        let otlp = &c["exporters"]["loadbalancing"]["protocol"]["otlp"];
        assert_eq!(
            (&otlp["compression"], &otlp["tls"]["insecure"]),
            (&json!("gzip"), &json!(true))
        );
    }

    #[test]
    fn gateway_has_the_seed_policies_in_order() {
        let c = gateway("127.0.0.1:9".parse().unwrap(), &Sampling::default());
        let ts = &c["processors"]["tail_sampling"];
        assert_eq!(ts["decision_wait"], "2000ms");
        let names: Vec<&str> = ts["policies"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["type"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["status_code", "latency", "probabilistic"]);
        assert_eq!(c["exporters"]["otlp"]["endpoint"], "127.0.0.1:9");
        assert_eq!(
            c["service"]["pipelines"]["traces"]["processors"],
            json!(["tail_sampling", "batch"])
        );
    }
    fn discovery() -> DnsDiscovery {
        DnsDiscovery {
            hostname: "gateways.scale.test".into(),
            port: 7000,
            dns_server: "127.0.0.1:5353".parse().unwrap(),
            interval: Duration::from_secs(1),
        }
    }

    #[test]
    fn dns_agent_and_member_gateway_name_the_same_resolver() {
        let d = discovery();
        let agent = agent_dns(&d);
        let lb = &agent["exporters"]["loadbalancing"];
        let dns = &lb["resolver"]["dns"];
        assert_eq!(
            (&dns["hostname"], &dns["port"], &dns["interval"]),
            (
                &json!("gateways.scale.test"),
                &json!(7000),
                &json!("1000ms")
            )
        );
        assert_eq!(lb["tailgate"]["dns_server"], "127.0.0.1:5353");
        assert!(lb["resolver"].get("static").is_none());

        let me: SocketAddr = "127.0.0.3:7000".parse().unwrap();
        let backend = "127.0.0.1:9".parse().unwrap();
        let s = Sampling::default();
        let g = gateway_member(me, backend, &s, &d, Some(Duration::from_secs(5)));
        assert_eq!(
            g["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"],
            "127.0.0.3:7000"
        );
        let m = &g["processors"]["tail_sampling"]["tailgate"]["membership"];
        assert_eq!(m["resolver"], lb["resolver"]);
        assert_eq!(
            (&m["self"], &m["grace"]),
            (&json!("127.0.0.3:7000"), &json!("5000ms"))
        );
        assert_eq!(m["dns_server"], "127.0.0.1:5353");
        let mut with = g.clone();
        with_spanmetrics(&mut with);
        let p = &with["service"]["pipelines"];
        assert_eq!(p["traces/metrics"]["exporters"], json!(["spanmetrics"]));
        assert_eq!(p["metrics"]["receivers"], json!(["spanmetrics"]));
        assert_eq!(
            p["traces"], g["service"]["pipelines"]["traces"],
            "sampling unchanged"
        );
        let plain = gateway_member(me, backend, &s, &d, None);
        assert!(plain["processors"]["tail_sampling"]
            .get("tailgate")
            .is_none());
    }
}
