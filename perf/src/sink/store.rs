//! What the sink keeps: counters, span keys and (optionally) the spans themselves.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use opentelemetry_proto::tonic::common::v1::{any_value, InstrumentationScope};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use tailgate_proto::SpanView;

/// How much the sink keeps per received span.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordMode {
    /// Counters only: for long throughput runs where memory must stay flat.
    Count,
    /// Counters plus (trace ID, span ID) per span, 24 bytes each: enough for `check`.
    Ids,
    /// Everything: IDs plus the span, resource and scope bytes (pins request buffers). For tests.
    #[default]
    Full,
}

/// The identity of one received span.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpanKey {
    /// Trace ID.
    pub trace_id: [u8; 16],
    /// Span ID.
    pub span_id: [u8; 8],
}

/// One received span with the resource and scope it came under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedSpan {
    /// Trace ID.
    pub trace_id: [u8; 16],
    /// Span ID.
    pub span_id: [u8; 8],
    /// The `ResourceSpans` the span came under without its `scope_spans`: a valid encoded
    /// `ResourceSpans` holding the resource, `schema_url` and unknown fields (tailgate-proto's header).
    pub resource_spans: Bytes,
    /// The `ScopeSpans` the span came under without its `spans` (scope, `schema_url`, unknown fields).
    pub scope_spans: Bytes,
    /// Encoded `Span`.
    pub span: Bytes,
    /// Index of the accepted request that carried it (0-based, in acceptance order).
    pub request: u64,
}

impl ObservedSpan {
    /// Decodes the span.
    pub fn decode_span(&self) -> Result<Span, prost::DecodeError> {
        Span::decode(self.span.clone())
    }

    /// Decodes the resource (the default resource when the request had none).
    pub fn decode_resource(&self) -> Result<Resource, prost::DecodeError> {
        Ok(ResourceSpans::decode(self.resource_spans.clone())?
            .resource
            .unwrap_or_default())
    }

    /// Decodes the instrumentation scope (the default scope when the request had none).
    pub fn decode_scope(&self) -> Result<InstrumentationScope, prost::DecodeError> {
        Ok(ScopeSpans::decode(self.scope_spans.clone())?
            .scope
            .unwrap_or_default())
    }

    /// The resource's `service.name` string attribute, if present.
    pub fn service_name(&self) -> Option<String> {
        let resource = self.decode_resource().ok()?;
        resource
            .attributes
            .into_iter()
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| match kv.value?.value? {
                any_value::Value::StringValue(s) => Some(s),
                _ => None,
            })
    }

    /// The span's key.
    pub fn key(&self) -> SpanKey {
        SpanKey {
            trace_id: self.trace_id,
            span_id: self.span_id,
        }
    }
}

/// The sink's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SinkStats {
    /// Well-formed export requests received (accepted + failed by fault injection).
    pub requests: u64,
    /// Requests answered OK.
    pub accepted_requests: u64,
    /// Requests refused by fault injection (their spans are not recorded).
    pub failed_requests: u64,
    /// Requests refused as malformed (bad framing, compression or protobuf).
    pub invalid_requests: u64,
    /// Spans in accepted requests.
    pub accepted_spans: u64,
    /// Spans in requests refused by fault injection.
    pub rejected_spans: u64,
    /// Bytes of accepted and failed request bodies as received (before decompression).
    pub wire_bytes: u64,
    /// Connections accepted (gRPC and HTTP).
    pub connections: u64,
}

/// A copy of what the sink observed so far.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Counters.
    pub stats: SinkStats,
    /// One key per accepted span in arrival order (empty in [`RecordMode::Count`]).
    pub keys: Vec<SpanKey>,
    /// Full spans in arrival order (only in [`RecordMode::Full`]).
    pub spans: Vec<ObservedSpan>,
}

impl Snapshot {
    /// Distinct trace IDs seen.
    pub fn trace_ids(&self) -> BTreeSet<[u8; 16]> {
        self.keys.iter().map(|k| k.trace_id).collect()
    }

    /// Number of spans received per trace (duplicates counted).
    pub fn spans_per_trace(&self) -> BTreeMap<[u8; 16], usize> {
        let mut out = BTreeMap::new();
        for k in &self.keys {
            *out.entry(k.trace_id).or_insert(0) += 1;
        }
        out
    }

    /// Full spans of one trace, in arrival order (empty unless [`RecordMode::Full`]).
    pub fn spans_of(&self, trace_id: [u8; 16]) -> Vec<&ObservedSpan> {
        self.spans
            .iter()
            .filter(|s| s.trace_id == trace_id)
            .collect()
    }
}

/// The mutable state behind the sink's lock.
#[derive(Debug, Default)]
pub(crate) struct Store {
    pub(crate) mode: RecordMode,
    pub(crate) stats: SinkStats,
    pub(crate) keys: Vec<SpanKey>,
    pub(crate) spans: Vec<ObservedSpan>,
}

impl Store {
    pub(crate) fn new(mode: RecordMode) -> Self {
        Store {
            mode,
            ..Default::default()
        }
    }

    /// Records the spans of one accepted request.
    pub(crate) fn record(&mut self, views: Vec<SpanView>, span_count: usize) {
        let request = self.stats.accepted_requests;
        self.stats.accepted_requests += 1;
        self.stats.accepted_spans += span_count as u64;
        if self.mode == RecordMode::Count {
            return;
        }
        self.keys.extend(views.iter().map(|v| SpanKey {
            trace_id: v.trace_id(),
            span_id: v.span_id(),
        }));
        if self.mode == RecordMode::Full {
            self.spans.extend(views.into_iter().map(|v| ObservedSpan {
                trace_id: v.trace_id(),
                span_id: v.span_id(),
                resource_spans: v.resource_header().clone(),
                scope_spans: v.scope_header().clone(),
                span: v.span_bytes(),
                request,
            }));
        }
    }

    pub(crate) fn snapshot(&self) -> Snapshot {
        Snapshot {
            stats: self.stats,
            keys: self.keys.clone(),
            spans: self.spans.clone(),
        }
    }

    /// Moves the recorded spans out, keeping the counters.
    pub(crate) fn take(&mut self) -> Snapshot {
        Snapshot {
            stats: self.stats,
            keys: std::mem::take(&mut self.keys),
            spans: std::mem::take(&mut self.spans),
        }
    }
}
