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
}
