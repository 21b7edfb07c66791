//! The `prometheus` exporter: serves a metrics pipeline's series for scraping.
//!
//! - [`config`]: its keys.
//! - [`exporter`]: the series store, the collector's naming and the text rendering; the HTTP side
//!   is `telemetry::admin`'s responder on its own thread.
//! - [`openmetrics`]: the OpenMetrics text exposition with exemplars (`enable_open_metrics`).
//! - [`protobuf`]: the protobuf exposition (native histograms), served when the scraper asks.
//! - [`sample`]: one rendered series, what both expositions write.

pub mod config;
pub mod exporter;
pub mod openmetrics;
pub mod protobuf;
pub mod sample;
