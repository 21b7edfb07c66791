//! The `loadbalancing` exporter (agent mode): every span of a trace goes to the same backend
//! (gateway), whichever agent receives it.
//!
//! Control plane: a resolver ([`resolver`]) turns the backend set into a
//! `tailgate_routing::RoutingTable` and publishes it in a [`RouteCell`] (arc-swap). Data plane, per
//! core: [`exporter::LoadBalancer`] loads the cell once per batch, splits the batch by owner with
//! `tailgate_proto::Splitter`, and hands each part to that backend's `otlp` exporter on this core
//! ([`backends`]: one per core per backend, made when the backend appears, dropped when it goes).
//! A part whose backend queue is full is dropped and counted with a reason; the other parts are
//! not resent, and retries stay on the same backend (the `otlp` exporter's retry).
//!
//! # Layout
//! - [`config`]: the collector's keys and the `tailgate:` block.
//! - [`exporter`]: the per-core pipeline stage (split and hand over).
//! - [`backends`]: per-core backend exporters and their metrics.
//! - [`resolver`]: where the backend set comes from (static, dns, k8s), off the data-plane cores.
//! - [`health`]: health probes and the down set cores fail over from (`tailgate.endpoint_health`).
//! - [`routes`]: the published routing state both sides see ([`routes::RouteCell`],
//!   [`routes::Balancer`]) and [`routes::Publisher`] (set → table, the resolver metrics).

pub mod backends;
pub mod config;
pub mod exporter;
pub mod health;
pub mod resolver;
pub mod routes;
