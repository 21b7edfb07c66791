//! The `otlp` (gRPC) exporter: `config` keys, `client` (h2 over glommio), `status` (retry rule),
//! `exporter` (queue + consumers).

pub mod client;
pub mod config;
pub mod exporter;
pub mod status;
