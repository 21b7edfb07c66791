//! Connectors: the exporter end of one pipeline and the receiver end of another.
//!
//! - [`spanmetrics`]: traces → metrics (calls and duration histograms).
//! - [`start`]: start-up of mergers and metrics exporters, as the metrics pipelines wire them.

pub mod spanmetrics;
pub mod start;
