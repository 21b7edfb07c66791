//! The `otlp` (gRPC) exporter: `config` keys, `client` (h2 over glommio), `status` (retry rule),
//! `exporter` (the sending queue + consumers that `otlphttp` and the loadbalancing backends share).

pub mod client;
pub mod config;
pub mod exporter;
pub mod status;

use std::rc::Rc;

use self::client::{Client, DropReason, GrpcSettings};
use self::config::OtlpExporterConfig;
use self::exporter::{ExporterMetrics, OtlpExporter};
use crate::config::common::header_map;
use crate::exporter::dial::Dialer;
use crate::pipeline::Signal;
use crate::telemetry::metrics::{Kind, Registry};
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
    let client = Client::new(GrpcSettings {
        target: config.dial_target()?,
        authority: config.authority.clone(),
        compression: config.compression().wire(),
        headers: header_map(&config.headers),
        timeout: config.timeout.0,
        tls,
        keepalive: config.keepalive(),
        dialer: Dialer::new(config.user_timeout()),
        dropped: DropReason::ALL.map(|reason| {
            let mut l = labels.to_vec();
            l.push(("reason", reason.label()));
            registry
                .register(
                    "tailgate_exporter_connections_dropped_total",
                    "Exporter connections given up because the backend went silent, by reason.",
                    Kind::Counter,
                    &l,
                )
                .local(core)
        }),
    });
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
