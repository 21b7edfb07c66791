//! tailgate-perf: the bench rig that checks tailgate's claims, and that a user can point at their
//! own setup.
//!
//! Tail sampling is only right when every span of a trace reaches the gateway that decides it.
//! Claims such as "error traces are kept whole" or "N spans per CPU-second" need traffic whose truth
//! is known, a backend that records what arrived, and a join of the two. This crate provides those
//! pieces, talking plain OTLP so they work against tailgate, a collector or any other proxy; it
//! does not depend on tailgate's internals.
//!
//! The sink and sender are also a library for other crates' integration tests: start a
//! [`sink::Sink`] on port 0, point the process under test at it, send with [`sender::Sender`],
//! then [`sink::Sink::wait_for_spans`] and look at the [`sink::Snapshot`].
//!
//! # Layout
//! - [`grpc`]: gRPC status codes, message framing and compression shared by sink and sender.
//! - [`sink`]: OTLP/gRPC + OTLP/HTTP server that records spans; fault injection.
//! - [`sender`]: OTLP/gRPC client over h2 with optional gzip/zstd.
//! - [`gen`]: trace-shaped traffic with known truth (sans-IO, seeded).
//! - [`pace`]: the sans-IO pacer and its clocks (real and fake).
//! - [`loadgen`]: the runtime that paces a workload onto connections and measures answers.
//! - [`manifest`]: ground truth file (trace ID → span count, error, slow).
//! - [`observations`]: what a sink received, as a file.
//! - [`check`]: joins manifest and observations into complete / partial / missing by class.
//! - [`dns`]: a DNS server for one name whose records change (for dns resolvers).
//! - [`ci`]: tests' treatment of missing prerequisites (fail under CI, skip loudly elsewhere).
//! - [`report`]: markdown + JSON results under `perf/results/`.
//! - [`scenario`]: end-to-end scenarios that start tailgate processes (accuracy, throughput,
//!   latency, soak, scale) and the demo's accuracy run.
//! - [`plot`]: SVG line charts of runs over time.

pub mod check;
pub mod ci;
pub mod dns;
pub mod gen;
pub mod grpc;
pub mod loadgen;
pub mod manifest;
pub mod observations;
pub mod pace;
pub mod plot;
pub mod report;
pub mod scenario;
pub mod sender;
pub mod sink;
