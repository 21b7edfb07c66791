//! Processors: per-core stages between receivers and exporters.

pub mod batch;
pub mod memory_limiter;
pub mod redaction;
pub mod tail_sampling;
