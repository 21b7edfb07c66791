//! `tailgate`: a thread-per-core OTLP proxy that reads the OpenTelemetry Collector's YAML.
//!
//! It exists so that tail sampling can scale horizontally: agents route spans by trace ID, gateways
//! buffer whole traces. This crate is the shell: it moves bytes between sockets and the sans-IO
//! crates (`tailgate-proto`, `tailgate-sampler`), one glommio executor per core.
//!
//! # Layout
//! - [`cli`]: the command line (clap), collector-compatible flags.
//! - [`config`]: collector YAML → validated [`config::Config`] (files, `--set`, `${env:VAR}`).
//! - [`service`]: the composition root: validated config → per-core pipelines, all-or-nothing
//!   start-up, drain on stop.
//! - [`runtime`]: primitives only (pinned executors, alarm, io, core mesh, latches, listen
//!   addresses); it names no component.
//! - [`pipeline`]: what flows between stages on a core ([`pipeline::Payload`], any signal) and
//!   the stage traits ([`pipeline::Consumer`], [`pipeline::Drain`]).
//! - [`receiver`], [`processor`], [`exporter`], [`extension`]: components by the collector's names,
//!   each folder with a `config.rs` of its keys beside its implementation.
//! - [`connector`]: connectors (`spanmetrics`); [`metrics_data`]: what metrics pipelines carry.
//! - [`tls`]: the collector's `tls` blocks as rustls configurations.
//! - [`telemetry`]: logs, per-core metrics summed on scrape, admin endpoints (metrics, health).

pub mod cli;
pub mod config;
pub mod connector;
pub mod exporter;
pub mod extension;
pub mod metrics_data;
pub mod pipeline;
pub mod processor;
pub mod receiver;
pub mod runtime;
pub mod service;
pub mod telemetry;
pub mod tls;
