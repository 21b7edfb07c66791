//! The `debug` and `nop` exporters.

pub mod config;
pub mod exporter;
