//! The `debug` exporter logs what it receives; `nop` drops it. Both count spans as sent.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

use super::config::DebugExporterConfig;
use crate::pipeline::{Consumer, Payload, Refusal};
use crate::telemetry::metrics::Local;

/// `debug` on one core.
pub struct DebugExporter {
    /// Settings.
    pub config: DebugExporterConfig,
    /// Exporter id for logs.
    pub name: String,
    /// `otelcol_exporter_sent_spans_total`.
    pub sent: Local,
}

impl Consumer for DebugExporter {
    fn consume(&self, data: Payload) -> Result<(), Refusal> {
        self.sent.add(data.items);
        if self.config.verbosity == "basic" {
            tracing::info!(exporter = %self.name, spans = data.items, "Traces");
            return Ok(());
        }
        // Decoding is slow but this exporter is for debugging, off any production path.
        match ExportTraceServiceRequest::decode(data.body.as_ref()) {
            Ok(req) => {
                for rs in &req.resource_spans {
                    for ss in &rs.scope_spans {
                        for s in &ss.spans {
                            if self.config.verbosity == "detailed" {
                                tracing::info!(exporter = %self.name, "span {:?}", s);
                            } else {
                                tracing::info!(exporter = %self.name, trace_id = %hex(&s.trace_id), span_id = %hex(&s.span_id), name = %s.name, "span");
                            }
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(exporter = %self.name, "cannot decode batch: {e}"),
        }
        Ok(())
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `nop` on one core.
pub struct NopExporter {
    /// `otelcol_exporter_sent_spans_total`.
    pub sent: Local,
}

impl Consumer for NopExporter {
    fn consume(&self, data: Payload) -> Result<(), Refusal> {
        self.sent.add(data.items);
        Ok(())
    }
}
