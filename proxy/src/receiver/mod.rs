//! Receivers: where spans enter tailgate.

pub mod otlp;
