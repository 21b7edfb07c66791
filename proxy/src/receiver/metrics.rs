//! Counters of one receiver listener on one core (connections opened, refused, closed by reason;
//! requests refused by a limit; request bytes in flight).

use super::watch::Reason;
use crate::telemetry::metrics::{Kind, Local, Registry};

/// Counters of one listener on one core.
pub struct ConnMetrics {
    /// `otelcol_receiver_open_connections` (gauge).
    pub open: Local,
    /// `otelcol_receiver_connections_refused_total{reason="max_connections"}`.
    pub refused_max_connections: Local,
    /// `..._refused_total{reason="handshake_timeout"}`.
    pub handshake_timeout: Local,
    /// `..._refused_total{reason="handshake_failed"}`: TLS errors, no HTTP/2 preface.
    pub handshake_failed: Local,
    /// `otelcol_receiver_connections_closed_total{reason}`, indexed like [`Reason::ALL`].
    closed: Vec<Option<Local>>,
    /// `otelcol_receiver_refused_streams_total`: streams h2 answered itself (gRPC only).
    pub refused_streams: Option<Local>,
}

impl ConnMetrics {
    /// Registers the series of `receiver`'s `transport` listener for `core`.
    pub fn register(registry: &Registry, core: usize, receiver: &str, transport: &str) -> Self {
        let grpc = transport == "grpc";
        let m = |name: &str, help, kind, reason: Option<&str>| {
            let mut labels = vec![("receiver", receiver), ("transport", transport)];
            if let Some(r) = reason {
                labels.push(("reason", r));
            }
            registry.register(name, help, kind, &labels).local(core)
        };
        let refused = |reason| {
            m(
                "otelcol_receiver_connections_refused_total",
                "Connections closed before being served: over the per-core limit, or handshake too slow or broken (tailgate).",
                Kind::Counter,
                Some(reason),
            )
        };
        let closed = Reason::ALL
            .iter()
            .map(|r| {
                let applies = if grpc {
                    r.applies_to_grpc()
                } else {
                    r.applies_to_http()
                };
                applies.then(|| {
                    m(
                        "otelcol_receiver_connections_closed_total",
                        "Connections closed (or sent GOAWAY) by a receiver limit (tailgate).",
                        Kind::Counter,
                        Some(r.label()),
                    )
                })
            })
            .collect();
        ConnMetrics {
            open: m(
                "otelcol_receiver_open_connections",
                "Connections being served (tailgate).",
                Kind::Gauge,
                None,
            ),
            refused_max_connections: refused("max_connections"),
            handshake_timeout: refused("handshake_timeout"),
            handshake_failed: refused("handshake_failed"),
            closed,
            refused_streams: grpc.then(|| {
                m(
                    "otelcol_receiver_refused_streams_total",
                    "HTTP/2 streams answered by h2 without reaching tailgate: over max_concurrent_streams, headers over max_header_list_size, malformed or reset before being read (tailgate).",
                    Kind::Counter,
                    None,
                )
            }),
        }
    }

    /// Counts a connection closed by `reason`.
    pub fn closed(&self, reason: Reason) {
        if let Some(Some(c)) = Reason::ALL
            .iter()
            .position(|r| *r == reason)
            .and_then(|i| self.closed.get(i))
        {
            c.add(1);
        }
    }
}

/// Why a receiver limit refused a request before its spans could be counted: the `reason` label
/// of `otelcol_receiver_refused_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestRefusal {
    /// A memory_limiter of the pipelines fed was refusing when the request started; its body was
    /// not read (gRPC UNAVAILABLE, HTTP 503).
    MemoryLimiter,
    /// Another stage of the pipelines fed said at the request's start that it would refuse.
    PipelineNotReady,
    /// The core's `max_request_bytes_in_flight_per_core` was used up (gRPC UNAVAILABLE, HTTP 503).
    BytesInFlight,
    /// The body did not arrive within `body_timeout` (gRPC DEADLINE_EXCEEDED, HTTP 408).
    BodyTimeout,
}

impl RequestRefusal {
    /// Every reason, in label order.
    pub const ALL: [RequestRefusal; 4] = [
        RequestRefusal::MemoryLimiter,
        RequestRefusal::PipelineNotReady,
        RequestRefusal::BytesInFlight,
        RequestRefusal::BodyTimeout,
    ];

    /// The metric label value.
    pub fn label(self) -> &'static str {
        match self {
            RequestRefusal::MemoryLimiter => "memory_limiter",
            RequestRefusal::PipelineNotReady => "pipeline_not_ready",
            RequestRefusal::BytesInFlight => "bytes_in_flight",
            RequestRefusal::BodyTimeout => "body_timeout",
        }
    }

    /// The reason for a pipeline's answer to [`crate::pipeline::Consumer::ready`].
    pub fn from_pipeline(r: crate::pipeline::Refusal) -> RequestRefusal {
        match r {
            crate::pipeline::Refusal::MemoryLimited => RequestRefusal::MemoryLimiter,
            _ => RequestRefusal::PipelineNotReady,
        }
    }
}

/// Request-level counters and the bytes-in-flight gauges of one receiver listener on one core.
pub struct RequestMetrics {
    /// `otelcol_receiver_refused_requests_total{reason}`, indexed like [`RequestRefusal::ALL`].
    refused: Vec<Local>,
    /// `otelcol_receiver_request_bytes_in_flight` (gauge).
    pub bytes_in_flight: Local,
    /// `otelcol_receiver_request_bytes_in_flight_peak` (gauge: this core's most since start).
    pub bytes_in_flight_peak: Local,
}

impl RequestMetrics {
    /// Registers the series of `receiver`'s `transport` listener for `core`.
    pub fn register(registry: &Registry, core: usize, receiver: &str, transport: &str) -> Self {
        let labels = [("receiver", receiver), ("transport", transport)];
        let refused = RequestRefusal::ALL
            .iter()
            .map(|r| {
                let mut l = labels.to_vec();
                l.push(("reason", r.label()));
                registry
                    .register(
                        "otelcol_receiver_refused_requests_total",
                        "Requests refused by a receiver limit before their body was read or decoded, so their spans are not counted (tailgate).",
                        Kind::Counter,
                        &l,
                    )
                    .local(core)
            })
            .collect();
        let gauge = |name, help| {
            registry
                .register(name, help, Kind::Gauge, &labels)
                .local(core)
        };
        RequestMetrics {
            refused,
            bytes_in_flight: gauge(
                "otelcol_receiver_request_bytes_in_flight",
                "Bytes of request bodies held while they arrive and are decoded (tailgate).",
            ),
            bytes_in_flight_peak: gauge(
                "otelcol_receiver_request_bytes_in_flight_peak",
                "Most bytes of request bodies held at once since start, summed over cores (tailgate).",
            ),
        }
    }

    /// Counts a request refused for `reason`.
    pub fn refused(&self, reason: RequestRefusal) {
        if let Some(c) = RequestRefusal::ALL
            .iter()
            .position(|r| *r == reason)
            .and_then(|i| self.refused.get(i))
        {
            c.add(1);
        }
    }
}
