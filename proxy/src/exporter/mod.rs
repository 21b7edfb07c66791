//! Exporters: where data leaves tailgate.
//!
//! # Layout
//! - [`otlp`]: OTLP/gRPC, and the sending queue with retry that every network exporter shares.
//! - [`otlphttp`]: OTLP/HTTP over the same queue.
//! - [`loadbalancing`]: routes by trace ID to `otlp` backends found by its resolvers.
//! - [`dial`]: the one way an exporter connects (resolve, TCP, TLS).
//! - [`resolve`]: host names resolved on a resolver thread, off the data-plane cores.
//! - [`debug`], [`prometheus`]: local outputs.

pub mod debug;
pub mod dial;
pub mod loadbalancing;
pub mod otlp;
pub mod otlphttp;
pub mod prometheus;
pub mod resolve;
