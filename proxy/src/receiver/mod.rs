//! Receivers: where spans enter tailgate.
//!
//! # Layout
//! - [`otlp`]: the `otlp` receiver (config, gRPC over h2, HTTP over hyper http1).
//! - [`listener`]: per-core accept loop: connection limit, TLS, handshake deadline, counters.
//! - [`metrics`]: per-listener connection and request counters.
//! - [`limits`]: limit settings resolved from the config (defaults applied).
//! - [`in_flight`]: the per-core budget of request bytes still arriving.
//! - [`watch`]: per-connection watchdog (idle, age, keepalive, slow clients) on glommio timers.
//! - [`stopping`]: the per-core stop notice that ends open connections gracefully on shutdown.

pub mod in_flight;
pub mod limits;
pub mod listener;
pub mod metrics;
pub mod otlp;
pub mod stopping;
pub mod watch;

use std::rc::Rc;

/// A request's headers as client metadata (`include_metadata`): names lower case, every value
/// that is valid text, in order. Bounded by the receiver's header-size limit.
pub fn metadata_headers(headers: &http::HeaderMap) -> Rc<[(String, String)]> {
    headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect()
}
