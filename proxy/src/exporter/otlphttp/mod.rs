//! The `otlphttp` exporter: OTLP/HTTP `POST /v1/traces` (protobuf or JSON, compressed), with the
//! `otlp` exporter's sending queue, retry and self-metrics (`otlp::exporter`), and
//! otlphttpexporter's status rules (`status`).
//!
//! Files as in the `otlp` exporter: `config` (keys), `client` (HTTP/1.1 over glommio), `status`
//! (retry rule, partial success); the queue is `otlp::exporter` over the [`Transport`] trait.
//!
//! [`Transport`]: crate::exporter::otlp::exporter::Transport

pub mod client;
pub mod config;
pub mod status;

use std::rc::Rc;

use crate::tls::ClientSetup;

use self::client::{HttpClient, HttpSettings};
use self::config::Validated;
use crate::exporter::dial::{Dialer, DEFAULT_USER_TIMEOUT};
use crate::exporter::otlp::exporter::{self as queue, ExporterMetrics, OtlpExporter};
use crate::telemetry::metrics::{Kind, Registry};

/// What one core needs to start an `otlphttp` exporter.
pub struct CoreSetup<'a> {
    /// This core's index.
    pub core: usize,
    /// The shared metrics registry.
    pub registry: &'a Registry,
    /// `otlphttp/name`.
    pub name: &'a str,
    /// The exporter's keys (validated).
    pub config: &'a Validated,
    /// From the config's `client_tls`, built once at start.
    pub tls: Option<ClientSetup>,
    /// The queue's byte cap unless `sending_queue.tailgate.max_bytes_per_core` is set.
    pub default_bytes: u64,
}

/// Starts the exporter's queue consumers on the current core.
pub fn start(setup: CoreSetup<'_>) -> Rc<OtlpExporter> {
    let CoreSetup {
        core,
        registry,
        name,
        config: v,
        tls,
        default_bytes,
    } = setup;
    let c = v.keys();
    let labels = [("exporter", name)];
    let metrics =
        ExporterMetrics::register(registry, core, &labels, crate::pipeline::Signal::Traces);
    let rejected = registry
        .register(
            "tailgate_exporter_partial_success_rejected_spans_total",
            "Spans the backend reported as rejected in a partial_success answer.",
            Kind::Counter,
            &labels,
        )
        .local(core);
    let settings = HttpSettings {
        url: v.url().clone(),
        encoding: v.encoding(),
        compression: v.compression(),
        level: v.level(),
        headers: crate::config::common::header_map(&c.headers),
        timeout: c.timeout.0,
        tls,
        idle_limit: if c.disable_keep_alives {
            0
        } else {
            c.idle_limit()
        },
        idle_timeout: c.idle_timeout(),
        dialer: Dialer::new(DEFAULT_USER_TIMEOUT),
    };
    let shape = c.sending_queue.shape(default_bytes);
    queue::start(
        name.to_owned(),
        HttpClient::new(settings, rejected),
        c.retry_on_failure.clone(),
        shape,
        Rc::new(std::cell::Cell::new(shape.max_bytes)),
        metrics,
        core as u64 + 1,
    )
}
