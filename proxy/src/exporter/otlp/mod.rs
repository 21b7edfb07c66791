//! The `otlp` (gRPC) exporter: `config` keys, `client` (h2 over glommio), `status` (retry rule),
//! `exporter` (the sending queue + consumers that `otlphttp` and the loadbalancing backends share),
//! `occupancy` (the queue's limits: `queue_size` by sizer, and the byte cap).

pub mod client;
pub mod config;
pub mod exporter;
pub mod occupancy;
pub mod status;

use std::cell::Cell;
use std::rc::Rc;

use self::client::{Client, DropReason, GrpcSettings};
use self::config::Validated;
use self::exporter::{ExporterMetrics, OtlpExporter};
use crate::config::common::header_map;
use crate::exporter::dial::Dialer;
use crate::pipeline::Signal;
use crate::telemetry::metrics::{Kind, Registry};
use crate::tls::ClientSetup;

/// Starts one `otlp` exporter on this core: its client and sending queue, metrics labelled
/// `exporter="name"`. The one construction the service and the loadbalancing backends share.
/// `default_bytes` is the queue's byte cap unless `sending_queue.tailgate.max_bytes_per_core` is set.
pub fn start(
    core: usize,
    registry: &Registry,
    name: &str,
    config: &Validated,
    tls: Option<ClientSetup>,
    default_bytes: u64,
) -> Rc<OtlpExporter> {
    let labels = [("exporter", name)];
    let max_bytes = config.keys().sending_queue.shape(default_bytes).max_bytes;
    start_labelled(
        core,
        registry,
        name.to_owned(),
        &labels,
        config,
        tls,
        core as u64 + 1,
        Rc::new(Cell::new(max_bytes)),
    )
}

/// [`start`] with the queue's name, metric labels, retry-jitter seed and byte cap chosen by the
/// caller (a loadbalancing backend adds its `endpoint` and shares the cap with its siblings).
#[allow(clippy::too_many_arguments)]
pub fn start_labelled(
    core: usize,
    registry: &Registry,
    queue_name: String,
    labels: &[(&str, &str)],
    config: &Validated,
    tls: Option<ClientSetup>,
    seed: u64,
    max_bytes: Rc<Cell<u64>>,
) -> Rc<OtlpExporter> {
    let keys = config.keys();
    let client = Client::new(GrpcSettings {
        target: config.target().clone(),
        authority: keys.authority.clone(),
        encoder: config.encoder(),
        headers: header_map(&keys.headers),
        timeout: keys.timeout.0,
        tls,
        keepalive: keys.keepalive(),
        dialer: Dialer::new(keys.user_timeout()),
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
    // The byte cap comes from `max_bytes`; the shape's own is not used.
    let shape = keys.sending_queue.shape(0);
    exporter::start(
        queue_name,
        client,
        keys.retry_on_failure.clone(),
        shape,
        max_bytes,
        metrics,
        seed,
    )
}
