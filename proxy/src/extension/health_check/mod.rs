//! The `health_check` extension.

pub mod config;
