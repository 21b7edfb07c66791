//! Limits against abusive or broken clients, resolved from the receiver config into plain values
//! (defaults applied, 0 turned into "no limit" where the collector does so).
//!
//! Where grpc-go / confighttp have no safe default, tailgate picks one on purpose (docs/proxy.md,
//! "Receiver limits"): streams per connection, connections per core, handshake timeout, header size
//! and the HTTP timeouts that the collector's OTLP receiver turns off.

use std::time::Duration;

use super::otlp::config::{GrpcServerConfig, HttpServerConfig, ServerLimits};

/// grpc-go's keepalive `time` default: ping after two hours without reading from the client.
pub const DEFAULT_KEEPALIVE_TIME: Duration = Duration::from_secs(2 * 60 * 60);
/// grpc-go's keepalive `timeout` default.
pub const DEFAULT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// tailgate's `max_concurrent_streams` when the config leaves it 0 (grpc-go: unlimited).
pub const DEFAULT_MAX_CONCURRENT_STREAMS: u32 = 100;
/// After an idle GOAWAY, how long a connection may linger before it is closed outright (the
/// client has no stream open, so this only covers a peer that never answers the GOAWAY's ping).
pub const IDLE_GOAWAY_GRACE: Duration = Duration::from_secs(10);

/// Limits every accepted connection gets, whatever its protocol.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// Open connections per core and listener.
    pub max_connections: u32,
    /// TLS handshake plus, for gRPC, the HTTP/2 preface.
    pub handshake_timeout: Duration,
    /// Largest request header block, bytes.
    pub max_header_list_size: u32,
    /// A request's body must have arrived this long after the request started.
    pub body_timeout: Duration,
}

impl From<&ServerLimits> for ConnLimits {
    fn from(t: &ServerLimits) -> Self {
        ConnLimits {
            max_connections: t.max_connections_per_core.max(1),
            handshake_timeout: t.handshake_timeout.0,
            max_header_list_size: t.max_header_list_size,
            body_timeout: t.body_timeout.0,
        }
    }
}

/// `tailgate.max_request_bytes_in_flight_per_core` when the config leaves it 0 and no
/// memory_limiter is configured: 16 whole 4 MiB gRPC messages, or three 20 MiB HTTP bodies, per
/// core and listener; at the receive rate measured in DESIGN.md (~1.8 GB/s per core) that is
/// ~35 ms of data, far more than a LAN's bandwidth-delay product.
pub const DEFAULT_BYTES_IN_FLIGHT: u64 = 64 << 20;

/// The per-core budget of request bytes in flight for one listener.
///
/// - Configured (non-zero): as written, but never below `largest` plus the gRPC prefix (5 bytes),
///   so the largest request the listener accepts always fits (validation refuses values below
///   `largest`).
/// - Derived: [`DEFAULT_BYTES_IN_FLIGHT`], lowered with a memory_limiter to a quarter of its soft
///   limit shared by the cores (`soft / 4 / cores`), so partial requests alone cannot push the
///   process to the point where memory_limiter refuses everything; again never below `largest`.
pub fn bytes_in_flight(
    configured: u64,
    largest: u64,
    memory_soft_limit: Option<u64>,
    cores: usize,
) -> u64 {
    let floor = largest.saturating_add(tailgate_proto::grpc::PREFIX_LEN as u64);
    if configured != 0 {
        return configured.max(floor);
    }
    let cores = u64::try_from(cores.max(1)).unwrap_or(u64::MAX);
    let derived = memory_soft_limit.map_or(DEFAULT_BYTES_IN_FLIGHT, |soft| {
        (soft / 4 / cores).min(DEFAULT_BYTES_IN_FLIGHT)
    });
    derived.max(floor)
}

/// gRPC (h2) connection limits: configgrpc keys with grpc-go's meaning.
#[derive(Debug, Clone, Copy)]
pub struct GrpcLimits {
    /// Common limits.
    pub conn: ConnLimits,
    /// SETTINGS_MAX_CONCURRENT_STREAMS, enforced by h2.
    pub max_concurrent_streams: u32,
    /// GOAWAY after this long without open streams.
    pub max_connection_idle: Option<Duration>,
    /// GOAWAY after this long (jitter added per connection).
    pub max_connection_age: Option<Duration>,
    /// Close this long after the age GOAWAY.
    pub max_connection_age_grace: Option<Duration>,
    /// Ping after this long without reading anything.
    pub keepalive_time: Duration,
    /// Close when the ping is not answered within this long.
    pub keepalive_timeout: Duration,
}

fn some(d: Duration) -> Option<Duration> {
    (!d.is_zero()).then_some(d)
}

impl GrpcLimits {
    /// Resolves defaults: 0 means grpc-go's default (never, 2h, 20s), except streams (100).
    pub fn from_config(g: &GrpcServerConfig) -> GrpcLimits {
        let sp = g
            .keepalive
            .as_ref()
            .and_then(|k| k.server_parameters.clone())
            .unwrap_or_default();
        GrpcLimits {
            conn: ConnLimits::from(&g.tailgate),
            max_concurrent_streams: if g.max_concurrent_streams == 0 {
                DEFAULT_MAX_CONCURRENT_STREAMS
            } else {
                g.max_concurrent_streams
            },
            max_connection_idle: some(sp.max_connection_idle.0),
            max_connection_age: some(sp.max_connection_age.0),
            max_connection_age_grace: some(sp.max_connection_age_grace.0),
            keepalive_time: some(sp.time.0).unwrap_or(DEFAULT_KEEPALIVE_TIME),
            keepalive_timeout: some(sp.timeout.0).unwrap_or(DEFAULT_KEEPALIVE_TIMEOUT),
        }
    }
}

/// HTTP/1 connection limits: confighttp keys with Go `http.Server` meaning (0: none).
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Common limits.
    pub conn: ConnLimits,
    /// From the first byte of a request (or the connection's start) to the end of its headers.
    pub read_header: Option<Duration>,
    /// From the end of the headers to the end of the body.
    pub read: Option<Duration>,
    /// Longest a response write may stay blocked.
    pub write: Option<Duration>,
    /// Longest wait for the next request.
    pub idle: Option<Duration>,
}

impl HttpLimits {
    /// As Go's `http.Server`: no header timeout falls back to `read_timeout`, and so does idle.
    pub fn from_config(h: &HttpServerConfig) -> HttpLimits {
        let read = some(h.read_timeout.0);
        HttpLimits {
            conn: ConnLimits::from(&h.tailgate),
            read_header: some(h.read_header_timeout.0).or(read),
            read,
            write: some(h.write_timeout.0),
            idle: some(h.idle_timeout.0).or(read),
        }
    }

    /// The shortest limit set: how long a watchdog may sleep without missing a phase change.
    pub fn period(&self) -> Option<Duration> {
        [self.read_header, self.read, self.write, self.idle]
            .into_iter()
            .flatten()
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bytes_in_flight_budget_is_derived_below_the_memory_limit_and_fits_the_largest_request() {
        const MIB: u64 = 1 << 20;
        let grpc = 4 * MIB;
        // No memory_limiter: the fixed default.
        assert_eq!(bytes_in_flight(0, grpc, None, 2), 64 * MIB);
        // A quarter of the soft limit shared by the cores, capped by the default.
        assert_eq!(bytes_in_flight(0, grpc, Some(544 * MIB), 2), 64 * MIB);
        assert_eq!(bytes_in_flight(0, grpc, Some(400 * MIB), 2), 50 * MIB);
        assert_eq!(bytes_in_flight(0, grpc, Some(544 * MIB), 4), 34 * MIB);
        // Never below the largest request (+ the gRPC prefix), however small the limit.
        assert_eq!(bytes_in_flight(0, grpc, Some(8 * MIB), 8), grpc + 5);
        assert_eq!(
            bytes_in_flight(0, 20 * MIB, Some(100 * MIB), 2),
            20 * MIB + 5
        );
        // Configured: as written, above the floor.
        assert_eq!(bytes_in_flight(10 * MIB, grpc, Some(8 * MIB), 8), 10 * MIB);
        assert_eq!(bytes_in_flight(grpc, grpc, None, 1), grpc + 5);
    }
}
