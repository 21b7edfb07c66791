//! Counters of one receiver listener on one core (connections opened, refused, closed by reason).

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
