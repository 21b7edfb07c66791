//! The `spanmetrics` connector: calls and duration histograms from every span of a traces
//! pipeline, emitted into a metrics pipeline (collector-contrib v0.115.0 semantics).
//!
//! - [`config`]: keys, defaults, validation, resolved [`config::Settings`].
//! - [`aggregate`]: one core's aggregation (sans-IO, single-threaded).
//! - [`stage`]: the per-core pipeline stage and its flush.
//! - [`merger`]: the per-connector thread merging cores and emitting batches.
//! - [`kept`]: exemplars only of traces a `tail_sampling` kept (`tailgate.exemplars_kept_by`).
//! - [`schedule`]: the shared grid of hand-overs and flushes (counts lag at most one interval).

pub mod aggregate;
pub mod config;
pub mod kept;
pub mod merger;
pub mod schedule;
pub mod stage;
