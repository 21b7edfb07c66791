//! The `prometheus` exporter: serves a metrics pipeline's series for scraping.
//!
//! - [`config`]: its keys.
//! - [`exporter`]: the series store, the collector's naming and the text rendering; the HTTP side
//!   is `telemetry::admin`'s responder on its own thread.

pub mod config;
pub mod exporter;
