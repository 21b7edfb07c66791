//! Start-up of the metrics side: `prometheus` exporters (each a scrape endpoint on its own plain
//! thread) and one merger thread per connector, wired as the metrics pipelines say.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use super::spanmetrics::merger::{self, MergerHandle};
use crate::config::{ComponentId, Config, ConnectorConfig, ExporterConfig, Signal};
use crate::exporter::prometheus::exporter::PrometheusExporter;
use crate::exporter::prometheus::protobuf;

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
        let handle = merger::start(
            id.to_string(),
            Arc::new(c.1.clone()),
            consumers,
            stop.clone(),
        )
        .map_err(|e| format!("connectors.{id}: cannot start merger thread: {e}"))?;
        mergers.insert(id.clone(), handle);
    }
    Ok(mergers)
}
