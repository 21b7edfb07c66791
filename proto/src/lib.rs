//! Sans-IO OTLP wire layer for tailgate: read, route and rebuild OTLP trace, logs and metrics
//! requests without decoding them into structs.
//!
//! # Why
//!
//! An agent's job is to split every `ExportTraceServiceRequest` by trace id and forward the parts;
//! a gateway's is to hold spans until a trace is decided and forward the sampled ones. Neither
//! needs the spans as objects. Decoding with prost, regrouping and re-encoding costs microseconds
//! per span; walking protobuf tags and copying span bytes costs tens of nanoseconds (see
//! [`split`] for measured figures).
//! So this crate treats a request as bytes: a scanner finds where resources, scopes and spans lie,
//! a span view is a refcounted slice of the request plus its hot fields, and output requests are
//! written from those slices with fresh length prefixes. Unknown fields survive byte for byte
//! because nothing is ever decoded and re-encoded.
//!
//! Everything here is sans-IO (no runtime, no sockets): the proxy moves bytes between sockets and
//! these functions. Malformed input yields a small `Copy` error with a byte offset, never a panic,
//! and no allocation is sized by an untrusted length before it is checked.
//!
//! # Layout
//!
//! - [`wire`]: protobuf primitives (varints, tags, a field iterator with prost's validation rules).
//! - [`scan`]: the structural walk of a request (resource/scope headers, span ranges),
//!   [`scan::count_spans`] and the receivers' [`scan::check_spans`] (pdata's rules for every span).
//! - [`span`]: reading one span in place: [`span::SpanRef`] (borrowed, for routing) and
//!   [`span::SpanFields`] (hot fields read in one walk).
//! - [`attributes`]: lazy typed attribute lookup ([`attributes::AnyValue`]).
//! - [`view`]: owned [`view::SpanView`]s for the sampler, [`view::scan`], detach/compaction.
//! - [`reframe`]: build a request from any views ([`reframe::RequestBuilder`]).
//! - [`rewrite`]: edit resource, scope, span and span event attributes and drop spans or events in
//!   one pass, copying every byte nothing changed (the processors' primitive).
//! - [`split`]: partition a request into N by a function of each span (the agent's hot path),
//!   log record, metric or data point.
//! - [`logs`], [`metrics`]: what is particular to logs and metrics requests (their items' fields,
//!   counting in the collector's units, the receivers' checks, the routing views); their
//!   envelopes share the trace request's field numbers, so the scan, split and re-frame machinery
//!   is shared.
//! - [`items`]: owned log records and metrics, for [`reframe::reframe_items`].
//! - [`grpc`]: gRPC 5-byte message framing over arbitrary chunks ([`grpc::Deframer`]).
//! - [`compression`]: `grpc-encoding` / `Content-Encoding` codecs with a bounded decoder.
//! - [`json`]: OTLP/HTTP bodies, OTLP/JSON to protobuf.
//! - [`hop`]: the `tailgate-hop` / `tailgate-table` gRPC metadata values gateways mark requests with.
//! - [`control`]: gateway control messages (claims, redirects, decisions, drain) as OTLP bodies.
//! - [`corpus`]: realistic requests generated from a seed, for the codec bench and the perf rig.
//! - [`error`]: the error values.
//! - [`fuzzing`]: entry points shared by the fuzz targets and the corpus-replay test.
//!
//! Design notes, benchmark figures and fuzzing results: `docs/proto.md`.

pub mod attributes;
pub mod compression;
pub mod control;
pub mod corpus;
pub mod error;
pub mod fuzzing;
pub mod grpc;
pub mod hop;
pub mod items;
pub mod json;
pub mod logs;
pub mod metrics;
pub mod reframe;
pub mod rewrite;
pub mod scan;
mod schema;
pub mod span;
pub mod split;
pub mod view;
pub mod wire;

pub use compression::{Compression, DEFAULT_MAX_DECODED_SIZE};
pub use error::{
    ControlError, EncodeError, HopError, InvalidItem, InvalidSpan, RequestError, RewriteError,
    ScanError, ScanErrorKind, Signal, SignalError,
};
pub use items::{items, Item};
pub use logs::{check_log_records, count_log_records, LogRecordRef};
pub use metrics::{
    check_metrics, count_data_points, count_metrics, DataKind, DataPointRef, MetricRef,
};
pub use reframe::{reframe, reframe_items, RequestBuilder};
pub use rewrite::{AttrEdits, Prune, Rewriter, TraceVisitor, Verdict};
pub use scan::{check_spans, count_spans};
pub use span::SpanRef;
pub use split::{split, Splitter};
pub use view::{compact, scan, SpanView};
