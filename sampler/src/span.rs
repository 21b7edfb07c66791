//! What the engine needs to know about a span: the [`SpanData`] trait.
//!
//! The engine is generic over the span type so that its logic does not depend on the wire layer.
//! The gateway buffers `tailgate_proto`'s zero-copy `SpanView`, which implements this trait in
//! [`proto_view`] (hot fields read at scan time, attributes scanned lazily); tests and benches
//! also use [`crate::testing::TestSpan`].

pub mod proto_view;

/// A borrowed, typed attribute value, as returned by the lazy attribute lookups.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AttrValue<'a> {
    /// `string_value`.
    Str(&'a str),
    /// `bool_value`.
    Bool(bool),
    /// `int_value`.
    Int(i64),
    /// `double_value`.
    Double(f64),
    /// `bytes_value`.
    Bytes(&'a [u8]),
    /// Arrays, key-value lists and empty values: present, but no policy compares them.
    Other,
}

impl AttrValue<'_> {
    /// The value as the collector's `pcommon.Value.Int()` sees it: 0 unless it is an int.
    pub fn as_int_or_zero(&self) -> i64 {
        match self {
            AttrValue::Int(v) => *v,
            _ => 0,
        }
    }

    /// The value as `pcommon.Value.Str()` sees it for the policies that use it: "" unless a string.
    pub fn as_str_or_empty(&self) -> &str {
        match self {
            AttrValue::Str(s) => s,
            _ => "",
        }
    }

    /// The value as `pcommon.Value.Bool()` sees it: false unless it is a bool.
    pub fn as_bool_or_false(&self) -> bool {
        matches!(self, AttrValue::Bool(true))
    }
}

/// OTLP `Span.SpanKind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SpanKind {
    /// `SPAN_KIND_UNSPECIFIED` (0), also used for unknown codes.
    #[default]
    Unspecified,
    /// `SPAN_KIND_INTERNAL` (1).
    Internal,
    /// `SPAN_KIND_SERVER` (2).
    Server,
    /// `SPAN_KIND_CLIENT` (3).
    Client,
    /// `SPAN_KIND_PRODUCER` (4).
    Producer,
    /// `SPAN_KIND_CONSUMER` (5).
    Consumer,
}

impl SpanKind {
    /// Maps the OTLP enum number; unknown numbers map to `Unspecified`.
    pub fn from_code(code: i32) -> Self {
        match code {
            1 => SpanKind::Internal,
            2 => SpanKind::Server,
            3 => SpanKind::Client,
            4 => SpanKind::Producer,
            5 => SpanKind::Consumer,
            _ => SpanKind::Unspecified,
        }
    }

    /// The OTLP enum number.
    pub fn code(self) -> i64 {
        self as i64
    }
}

/// OTLP `Status.StatusCode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StatusCode {
    /// `STATUS_CODE_UNSET` (0), also used for unknown codes.
    #[default]
    Unset,
    /// `STATUS_CODE_OK` (1).
    Ok,
    /// `STATUS_CODE_ERROR` (2).
    Error,
}

impl StatusCode {
    /// Maps the OTLP enum number; unknown numbers map to `Unset`.
    pub fn from_code(code: i32) -> Self {
        match code {
            1 => StatusCode::Ok,
            2 => StatusCode::Error,
            _ => StatusCode::Unset,
        }
    }

    /// The OTLP enum number.
    pub fn code(self) -> i64 {
        self as i64
    }
}

/// The request buffer a span keeps alive. Memory is accounted per distinct buffer, not per span,
/// because a zero-copy view pins its whole buffer until the last view into it is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferRef {
    /// Identity of the buffer (e.g. its base address); equal for all spans sharing it.
    pub id: u64,
    /// Bytes the buffer holds.
    pub len: usize,
}

/// A span as the sampler sees it. All accessors must be cheap except the attribute lookups,
/// which may scan (they are only called by attribute policies at decision time).
pub trait SpanData: Sized {
    /// The 16-byte trace ID.
    fn trace_id(&self) -> [u8; 16];
    /// The 8-byte span ID.
    fn span_id(&self) -> [u8; 8];
    /// The parent span ID; empty for a root span.
    fn parent_span_id(&self) -> &[u8];
    /// The span name (invalid UTF-8 may be reported as "").
    fn name(&self) -> &str;
    /// The span kind.
    fn kind(&self) -> SpanKind;
    /// Start time, Unix nanoseconds.
    fn start_unix_nanos(&self) -> u64;
    /// End time, Unix nanoseconds.
    fn end_unix_nanos(&self) -> u64;
    /// Status code.
    fn status_code(&self) -> StatusCode;
    /// W3C trace flags (`Span.flags`, low byte); bit 0 is "sampled".
    fn trace_flags(&self) -> u32;
    /// The raw W3C `tracestate` string.
    fn trace_state(&self) -> &str;
    /// Looks up a span attribute by key.
    fn span_attribute(&self, key: &str) -> Option<AttrValue<'_>>;
    /// Looks up an attribute of the span's resource by key.
    fn resource_attribute(&self, key: &str) -> Option<AttrValue<'_>>;
    /// Looks up an attribute of the span's instrumentation scope by key.
    fn scope_attribute(&self, key: &str) -> Option<AttrValue<'_>>;
    /// The span's encoded size in bytes (what it costs to export).
    fn wire_len(&self) -> usize;
    /// The buffer this span keeps alive.
    fn buffer(&self) -> BufferRef;
    /// A copy of this span that pins only its own bytes (used to compact sparse buffers).
    fn detach(&self) -> Self;

    /// Looks up several span attributes at once: calls `found(i, value)` for each `keys[i]` that
    /// [`Self::span_attribute`] finds, with the value it returns. The default looks each key up;
    /// a span type that scans encoded bytes overrides it to walk the attributes once.
    fn span_attributes_of(&self, keys: &[&str], found: &mut dyn FnMut(usize, AttrValue<'_>)) {
        for (i, key) in keys.iter().enumerate() {
            if let Some(v) = self.span_attribute(key) {
                found(i, v);
            }
        }
    }

    /// Looks up several resource attributes at once, as [`Self::span_attributes_of`] does for
    /// [`Self::resource_attribute`].
    fn resource_attributes_of(&self, keys: &[&str], found: &mut dyn FnMut(usize, AttrValue<'_>)) {
        for (i, key) in keys.iter().enumerate() {
            if let Some(v) = self.resource_attribute(key) {
                found(i, v);
            }
        }
    }

    /// True only if `other` certainly has the same resource attributes as this span, so that
    /// the attribute policies look at a resource shared by many spans of a trace once. The
    /// default (`false`) is always correct.
    fn same_resource(&self, _other: &Self) -> bool {
        false
    }

    /// True if the span has no parent.
    fn is_root(&self) -> bool {
        self.parent_span_id().iter().all(|b| *b == 0)
    }

    /// The fields the engine folds into a trace's summary on every insert, read together (a
    /// span type that re-reads its fields from bytes overrides this to walk them once).
    fn summary_fields(&self) -> SummaryFields {
        SummaryFields {
            start_unix_nanos: self.start_unix_nanos(),
            end_unix_nanos: self.end_unix_nanos(),
            status_code: self.status_code(),
            trace_flags: self.trace_flags(),
            is_root: self.is_root(),
        }
    }
}

/// What [`SpanData::summary_fields`] returns: the same values as the single accessors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SummaryFields {
    /// [`SpanData::start_unix_nanos`].
    pub start_unix_nanos: u64,
    /// [`SpanData::end_unix_nanos`].
    pub end_unix_nanos: u64,
    /// [`SpanData::status_code`].
    pub status_code: StatusCode,
    /// [`SpanData::trace_flags`].
    pub trace_flags: u32,
    /// [`SpanData::is_root`].
    pub is_root: bool,
}
