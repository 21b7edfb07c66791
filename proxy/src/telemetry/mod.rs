//! Self-telemetry: logs, per-core counters summed on scrape, the admin HTTP endpoints.

pub mod admin;
pub mod logging;
pub mod losses;
pub mod metrics;
pub mod process;
