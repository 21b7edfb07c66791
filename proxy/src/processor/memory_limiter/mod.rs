//! The `memory_limiter` processor.

pub mod config;
pub mod machine;
pub mod processor;
