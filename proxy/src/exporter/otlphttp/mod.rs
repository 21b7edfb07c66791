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
use std::sync::Arc;

use rustls::pki_types::ServerName;

use self::client::{HttpClient, HttpSettings};
use self::config::OtlpHttpExporterConfig;
use crate::exporter::otlp::exporter::{self as queue, ExporterMetrics, OtlpExporter};
use crate::telemetry::metrics::{Kind, Registry};

/// Client TLS of one exporter: the rustls config and the name to verify.
pub type ClientTls = (Arc<rustls::ClientConfig>, ServerName<'static>);

/// Builds the client TLS settings when the URL is `https` (`None` for `http`).
pub fn client_tls(c: &OtlpHttpExporterConfig) -> Result<Option<ClientTls>, String> {
    let url = c.traces_url()?;
    if !url.tls {
        return Ok(None);
    }
    let config = crate::tls::client_config(&c.tls, b"http/1.1")?;
    let name = crate::tls::server_name(&c.tls, &url.host)?;
    Ok(Some((config, name)))
}

/// What one core needs to start an `otlphttp` exporter.
pub struct CoreSetup<'a> {
    /// This core's index.
    pub core: usize,
    /// The shared metrics registry.
    pub registry: &'a Registry,
    /// `otlphttp/name`.
    pub name: &'a str,
    /// The exporter's keys (validated).
    pub config: &'a OtlpHttpExporterConfig,
    /// From [`client_tls`], built once at start.
    pub tls: Option<ClientTls>,
}

/// Starts the exporter's queue consumers on the current core; `None` if the URL is invalid
/// (validation already reported it).
pub fn start(setup: CoreSetup<'_>) -> Option<Rc<OtlpExporter>> {
    let CoreSetup {
        core,
        registry,
        name,
        config: c,
        tls,
    } = setup;
    let url = c.traces_url().ok()?;
    let labels = [("exporter", name)];
    let metrics = ExporterMetrics::register(registry, core, &labels);
    let rejected = registry
        .register(
            "tailgate_exporter_partial_success_rejected_spans_total",
            "Spans the backend reported as rejected in a partial_success answer.",
            Kind::Counter,
            &labels,
        )
        .local(core);
    let settings = HttpSettings {
        url,
        encoding: c.encoding(),
        compression: c.compression(),
        headers: crate::runtime::core::headers(&c.headers),
        timeout: c.timeout.0,
        tls,
        idle_limit: if c.disable_keep_alives {
            0
        } else {
            c.idle_limit()
        },
        idle_timeout: c.idle_timeout(),
    };
    let (queue_size, consumers) = if c.sending_queue.enabled {
        (c.sending_queue.queue_size, c.sending_queue.num_consumers)
    } else {
        (1, 1)
    };
    Some(queue::start(
        name.to_owned(),
        HttpClient::new(settings, rejected),
        c.retry_on_failure.clone(),
        queue_size,
        consumers,
        metrics,
        core as u64 + 1,
    ))
}
