//! Exporters: where spans leave tailgate.

pub mod debug;
pub mod loadbalancing;
pub mod otlp;
pub mod otlphttp;
pub mod prometheus;
