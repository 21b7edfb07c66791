//! The `otlp` (gRPC) exporter: `config` keys, `client` (h2 over glommio), `status` (retry rule),
//! `exporter` (the sending queue + consumers that `otlphttp` and the loadbalancing backends share).

pub mod client;
pub mod config;
pub mod exporter;
pub mod status;

use std::rc::Rc;

use self::client::Client;
use self::config::OtlpExporterConfig;
use self::exporter::{ExporterMetrics, OtlpExporter};
use crate::config::common::header_map;
use crate::exporter::dial::{Dialer, DEFAULT_USER_TIMEOUT};
use crate::pipeline::Signal;
use crate::telemetry::metrics::Registry;
use crate::tls::ClientSetup;

/// Starts one `otlp` exporter on this core: its client and sending queue, metrics labelled
/// `exporter="name"`. The one construction the service and the loadbalancing backends share.
pub fn start(
    core: usize,
    registry: &Registry,
    name: &str,
    config: &OtlpExporterConfig,
    tls: Option<ClientSetup>,
) -> Result<Rc<OtlpExporter>, String> {
    let labels = [("exporter", name)];
    start_labelled(
        core,
        registry,
        name.to_owned(),
        &labels,
        config,
        tls,
        core as u64 + 1,
    )
}

/// [`start`] with the queue's name, metric labels and retry-jitter seed chosen by the caller
/// (a loadbalancing backend adds its `endpoint`).
pub fn start_labelled(
    core: usize,
    registry: &Registry,
    queue_name: String,
    labels: &[(&str, &str)],
    config: &OtlpExporterConfig,
    tls: Option<ClientSetup>,
    seed: u64,
) -> Result<Rc<OtlpExporter>, String> {
    let target = config.dial_target()?;
    let client = Client::new(
        target,
        config.compression().wire(),
        header_map(&config.headers),
        config.timeout.0,
        config.authority.clone(),
        tls,
        Dialer::new(DEFAULT_USER_TIMEOUT),
    );
    let metrics = ExporterMetrics::register(registry, core, labels, Signal::Traces);
    let (queue, consumers) = config.sending_queue.shape();
    Ok(exporter::start(
        queue_name,
        client,
        config.retry_on_failure.clone(),
        queue,
        consumers,
        metrics,
        seed,
    ))
}
