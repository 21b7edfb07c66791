//! The `memory_limiter` processor.

pub mod config;
pub mod processor;
