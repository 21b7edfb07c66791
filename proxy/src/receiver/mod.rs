//! Receivers: where spans enter tailgate.
//!
//! # Layout
//! - [`otlp`]: the `otlp` receiver (config, gRPC over h2, HTTP over hyper http1).
//! - [`listener`]: per-core accept loop: connection limit, TLS, handshake deadline, counters.
//! - [`limits`]: limit settings resolved from the config (defaults applied).
//! - [`watch`]: per-connection watchdog (idle, age, keepalive, slow clients) on glommio timers.
//! - [`stopping`]: the per-core stop notice that ends open connections gracefully on shutdown.

pub mod limits;
pub mod listener;
pub mod otlp;
pub mod stopping;
pub mod watch;
