//! Start-up of the metrics side: `prometheus` exporters (each a scrape endpoint on its own plain
//! thread) and one merger thread per connector, wired as the metrics pipelines say.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use super::spanmetrics::config::Settings;
use super::spanmetrics::kept::{CandidateDrop, KeptPublisher, DECISION_MARGIN};
use super::spanmetrics::merger::{self, KeptWiring, MergerHandle, MergerMetrics};
use crate::config::{
    ComponentId, Config, ConnectorConfig, ExporterConfig, ProcessorConfig, Signal,
};
use crate::exporter::prometheus::exporter::PrometheusExporter;
use crate::exporter::prometheus::{openmetrics, protobuf};

/// The Prometheus text exposition's content type.
const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
use crate::metrics_data::MetricsConsumer;
use crate::runtime::listen;
use crate::telemetry::admin::{self, Endpoint};
use crate::telemetry::metrics::{Kind, Registry};

/// Binds every `prometheus` exporter used by a metrics pipeline (bound addresses go into `ports`
/// as `exporters::<id>`) and starts each connector's merger. Returns the mergers by connector id,
/// for the cores' pipeline stages.
pub fn start(
    config: &Config,
    registry: &Registry,
    stop: &Arc<AtomicBool>,
    ports: &mut BTreeMap<String, SocketAddr>,
) -> Result<BTreeMap<ComponentId, MergerHandle>, String> {
    let metrics: Vec<_> = config
        .pipelines
        .iter()
        .filter(|p| p.id.signal == Signal::Metrics)
        .collect();
    let mut exporters: BTreeMap<ComponentId, Arc<PrometheusExporter>> = BTreeMap::new();
    for id in metrics.iter().flat_map(|p| p.exporters.iter()) {
        let Some(ExporterConfig::Prometheus(c)) = config.exporters.get(id) else {
            continue;
        };
        if exporters.contains_key(id) {
            continue;
        }
        let key = format!("exporters::{id}");
        let addr = listen::resolve_listen(&c.endpoint)?;
        let l = std::net::TcpListener::bind(addr)
            .map_err(|e| format!("{key}: cannot listen on {addr}: {e}"))?;
        let bound = l.local_addr().map_err(|e| e.to_string())?;
        tracing::info!(%bound, "{key} listening");
        ports.insert(key.clone(), bound);
        let unrenderable = registry
            .register(
                "tailgate_exporter_prometheus_unrenderable_points_total",
                "Points the prometheus exporter dropped because they have no Prometheus rendering (tailgate).",
                Kind::Counter,
                &[("exporter", id.to_string().as_str())],
            )
            .local(0);
        let exporter = Arc::new(
            PrometheusExporter::new((**c).clone()).with_unrenderable_counter(unrenderable),
        );
        let render = exporter.clone();
        admin::serve(
            l,
            Endpoint::Negotiated(Arc::new(move |accept: &str| {
                if protobuf::accepted(accept) {
                    (protobuf::CONTENT_TYPE, render.render_protobuf())
                } else if render.open_metrics() && openmetrics::accepted(accept) {
                    (
                        openmetrics::CONTENT_TYPE,
                        render.render_openmetrics().into_bytes(),
                    )
                } else {
                    (TEXT_CONTENT_TYPE, render.render().into_bytes())
                }
            })),
            stop.clone(),
        )
        .map_err(|e| format!("{key}: {e}"))?;
        exporters.insert(id.clone(), exporter);
    }
    let mut mergers = BTreeMap::new();
    for (id, c) in &config.connectors {
        let ConnectorConfig::SpanMetrics(c) = c;
        let consumers: Vec<Arc<dyn MetricsConsumer>> = metrics
            .iter()
            .filter(|p| p.receivers.contains(id))
            .flat_map(|p| p.exporters.iter())
            .filter_map(|e| exporters.get(e))
            .map(|e| e.clone() as Arc<dyn MetricsConsumer>)
            .collect();
        let name = id.to_string();
        let metrics = merger_metrics(registry, &name);
        let kept = kept_wiring(config, &c.1, registry, &name);
        let handle = merger::start(
            name,
            Arc::new(c.1.clone()),
            consumers,
            stop.clone(),
            kept,
            metrics,
        )
        .map_err(|e| format!("connectors.{id}: cannot start merger thread: {e}"))?;
        mergers.insert(id.clone(), handle);
    }
    Ok(mergers)
}

/// The merger's counters of one connector.
fn merger_metrics(registry: &Registry, connector: &str) -> MergerMetrics {
    let dropped = CandidateDrop::ALL
        .iter()
        .map(|r| {
            registry
                .register(
                    "tailgate_connector_spanmetrics_exemplars_dropped_total",
                    "Exemplar candidates (spans offered by the cores) that did not become exemplars, by reason (tailgate).",
                    Kind::Counter,
                    &[("connector", connector), ("reason", r.label())],
                )
                .local(0)
        })
        .collect();
    MergerMetrics {
        dropped,
        evicted: kept_lost(registry, connector, "evicted").local(0),
    }
}

fn kept_lost(
    registry: &Registry,
    connector: &str,
    reason: &str,
) -> crate::telemetry::metrics::Metric {
    registry.register(
        "tailgate_connector_spanmetrics_kept_decisions_lost_total",
        "Kept trace IDs a tail_sampling published that the spanmetrics merger never saw or forgot early (tailgate).",
        Kind::Counter,
        &[("connector", connector), ("reason", reason)],
    )
}

/// The channel from `tailgate.exemplars_kept_by`'s processor, when set; the wait is its
/// `decision_wait` plus a margin (validation made sure it is a tail_sampling of this config).
fn kept_wiring(
    config: &Config,
    settings: &Settings,
    registry: &Registry,
    connector: &str,
) -> Option<KeptWiring> {
    let pid = settings.exemplars.as_ref()?.kept_by.as_ref()?;
    let Some(ProcessorConfig::TailSampling(p)) = config.processors.get(pid) else {
        return None;
    };
    let (publisher, rx) = KeptPublisher::channel(kept_lost(registry, connector, "channel_full"));
    Some(KeptWiring {
        wait: p.sampler.decision_wait + DECISION_MARGIN,
        publisher,
        rx,
    })
}
