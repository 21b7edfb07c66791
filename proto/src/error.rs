//! Error values of the wire layer.
//!
//! Every error is a small `Copy` value: a kind plus the byte offset where the input went wrong. They
//! never allocate, so the hot path can return them freely, and the offset lets an operator find the
//! bad byte in a captured request. Offsets are relative to the input the failing call was given
//! (the request buffer, the gRPC stream, the compressed body).

use thiserror::Error;

/// What is wrong with a protobuf-encoded OTLP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScanErrorKind {
    /// A varint ran past ten bytes or its tenth byte overflowed 64 bits.
    BadVarint,
    /// A length, fixed-width value or varint runs past the end of its enclosing message.
    Truncated,
    /// A known field arrived with a wire type its schema does not allow.
    WrongWireType,
    /// The tag carries wire type 6 or 7, which protobuf does not define.
    BadWireType,
    /// The tag carries field number 0, which protobuf forbids.
    BadFieldNumber,
    /// A group (wire types 3/4) is unbalanced or nested deeper than the limit.
    BadGroup,
    /// An id field has a length other than 0 or its fixed size (16 for trace, 8 for span ids).
    BadIdLength,
    /// A message is too large to be addressed with the 32-bit offsets a view stores.
    TooLarge,
}

/// A malformed protobuf message: what is wrong and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Error)]
#[error("malformed protobuf: {kind:?} at byte {at}")]
pub struct ScanError {
    /// What is wrong.
    pub kind: ScanErrorKind,
    /// Byte offset in the scanned buffer.
    pub at: usize,
}

impl ScanError {
    pub(crate) const fn new(kind: ScanErrorKind, at: usize) -> Self {
        Self { kind, at }
    }
}

/// What is wrong with a gRPC length-prefixed message stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameErrorKind {
    /// The compressed-flag byte is neither 0 nor 1.
    BadFlag,
    /// The length prefix announces more than the configured maximum message size.
    Oversize,
    /// The stream ended inside a length prefix or message.
    Truncated,
    /// The compressed flag is set but the stream negotiated no `grpc-encoding`.
    CompressedWithoutEncoding,
}

/// A malformed gRPC message stream: what is wrong and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Error)]
#[error("bad gRPC framing: {kind:?} at stream byte {at}")]
pub struct FrameError {
    /// What is wrong.
    pub kind: FrameErrorKind,
    /// Offset in the stream (all bytes pushed so far) of the message prefix at fault.
    pub at: u64,
}

/// What went wrong while decompressing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DecompressErrorKind {
    /// The compressed bytes are not valid for the codec (bad header, checksum, stream).
    Corrupt,
    /// The compressed stream ended early.
    Truncated,
    /// The decoded output would exceed the maximum decoded size.
    Oversize,
}

/// A body that could not be decompressed: what is wrong and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Error)]
#[error("decompression failed: {kind:?} near compressed byte {at}")]
pub struct DecompressError {
    /// What is wrong.
    pub kind: DecompressErrorKind,
    /// How many compressed input bytes the decoder had consumed when it failed (approximate for
    /// buffered codecs: decoders read ahead in blocks).
    pub at: usize,
}

/// A compression level the codec does not have (`Encoder::new`, `zlib_into`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Error)]
#[error("{codec} has no level {level:?}")]
pub struct LevelError {
    /// The codec's name (`gzip`, `zstd`, `snappy`, `identity`, `zlib`).
    pub codec: &'static str,
    /// The level asked for.
    pub level: crate::compression::Level,
}

/// What is wrong with an OTLP/JSON body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JsonErrorKind {
    /// Not JSON, or JSON that does not match the OTLP schema (including bad hex ids).
    Syntax,
    /// The body holds more objects, or would decode to more protobuf, than its size allows
    /// ([`crate::json::JsonBudget`]): a request made mostly of empty objects.
    OverBudget,
}

/// An OTLP/JSON body that could not be converted: what is wrong and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Error)]
#[error("bad OTLP/JSON: {kind:?} at byte {at}")]
pub struct JsonError {
    /// What is wrong.
    pub kind: JsonErrorKind,
    /// Byte offset in the JSON text (0 for schema errors, as before the streaming decoder).
    pub at: usize,
}

/// Any error of an OTLP/HTTP body conversion (decompression, then JSON or protobuf checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Error)]
pub enum BodyError {
    /// `Content-Encoding` names a codec this crate does not support.
    #[error("unsupported content encoding")]
    UnsupportedEncoding,
    /// The uncompressed body is larger than the maximum.
    #[error("body larger than {at} bytes")]
    Oversize {
        /// The limit that was exceeded.
        at: usize,
    },
    /// The body could not be decompressed.
    #[error(transparent)]
    Decompress(#[from] DecompressError),
    /// The JSON body is malformed.
    #[error(transparent)]
    Json(#[from] JsonError),
    /// The protobuf body is malformed.
    #[error(transparent)]
    Scan(#[from] ScanError),
}

/// What is wrong with one span that the collector's pdata refuses when it unmarshals a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpanProblem {
    /// An id whose length is neither 0 (the zero id) nor `want` bytes.
    IdLength {
        /// Bytes found.
        len: usize,
        /// The id's size: 16 for trace ids, 8 for span ids.
        want: u8,
    },
    /// A known field with a wire type its schema does not allow.
    WireType {
        /// Wire type found.
        got: u8,
        /// The schema's wire type.
        want: u8,
    },
    /// The span's own fields do not walk (a bad tag or varint, a length past the span's end).
    Malformed(ScanErrorKind),
}

/// The first span of a request that pdata would refuse: where it is (as indices into the
/// request's repeated fields, as a decoder numbers them), which field, and what is wrong.
///
/// Displays as the path of the field, e.g.
/// `resource_spans[0].scope_spans[0].spans[3].trace_id: 8 bytes, want 16 or 0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InvalidSpan {
    /// Index in `ExportTraceServiceRequest.resource_spans`.
    pub resource: u32,
    /// Index in that `ResourceSpans.scope_spans`.
    pub scope: u32,
    /// Index in that `ScopeSpans.spans`.
    pub span: u32,
    /// Index in `Span.links` when the field is a link's.
    pub link: Option<u32>,
    /// The field's name in `trace.proto` (`status.code` for the status's); empty when the span
    /// itself does not walk.
    pub field: &'static str,
    /// What is wrong.
    pub problem: SpanProblem,
    /// Byte offset of the field (or of the failure) in the request.
    pub at: usize,
}

impl std::fmt::Display for InvalidSpan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "resource_spans[{}].scope_spans[{}].spans[{}]",
            self.resource, self.scope, self.span
        )?;
        if let Some(l) = self.link {
            write!(f, ".links[{l}]")?;
        }
        if !self.field.is_empty() {
            write!(f, ".{}", self.field)?;
        }
        match self.problem {
            SpanProblem::IdLength { len, want } => write!(f, ": {len} bytes, want {want} or 0"),
            SpanProblem::WireType { got, want } => write!(f, ": wire type {got}, want {want}"),
            SpanProblem::Malformed(kind) => {
                write!(f, ": malformed protobuf: {kind:?} at byte {}", self.at)
            }
        }
    }
}

impl std::error::Error for InvalidSpan {}

/// Why a receiver refuses a request ([`crate::scan::check_spans`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Error)]
pub enum RequestError {
    /// The request, a ResourceSpans or a ScopeSpans does not walk: spans cannot be counted.
    #[error(transparent)]
    Malformed(#[from] ScanError),
    /// The structure walks, but a span is one pdata refuses (so the collector refuses the whole
    /// request); `first` is the first such span, `spans` how many spans the request holds.
    #[error("invalid span: {first}")]
    InvalidSpan {
        /// The first bad span.
        first: InvalidSpan,
        /// Spans in the request, bad or not.
        spans: usize,
    },
}

/// Why a `tailgate-hop` or `tailgate-table` value was refused ([`crate::hop`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Error)]
pub enum HopError {
    /// The value is longer than [`crate::hop::MAX_HEADER_LEN`].
    #[error("tailgate-hop is {len} bytes long, at most 512 accepted")]
    TooLong {
        /// Its length.
        len: usize,
    },
    /// A byte outside printable ASCII (`0x21..=0x7e`).
    #[error("tailgate-hop has a byte that is not printable ASCII at {at}")]
    NotPrintable {
        /// Byte offset in the value.
        at: usize,
    },
    /// A `;`-separated field that is not `key=value` with a non-empty key.
    #[error("tailgate-hop field at byte {at} is not key=value")]
    BadField {
        /// Byte offset of the field in the value.
        at: usize,
    },
    /// A known key given twice.
    #[error("tailgate-hop key {key} appears twice")]
    DuplicateKey {
        /// The key.
        key: &'static str,
    },
    /// A key the kind requires is absent.
    #[error("tailgate-hop key {key} is missing")]
    MissingKey {
        /// The key.
        key: &'static str,
    },
    /// A key the kind does not allow (`r` outside `fwd`, `b` outside `fwd`/`handover`).
    #[error("tailgate-hop key {key} is not allowed with k={kind}")]
    Forbidden {
        /// The key.
        key: &'static str,
        /// The header's kind.
        kind: crate::hop::Kind,
    },
    /// `v` is a version this build does not speak: a newer peer (retryable, counted).
    #[error("tailgate-hop version {version} is not supported (this build speaks 1)")]
    UnsupportedVersion {
        /// The version given.
        version: u64,
    },
    /// A value that does not parse.
    #[error("{}: expected {expected}", HopKey(.key))]
    BadValue {
        /// The key (or `tailgate-table` for that header's value).
        key: &'static str,
        /// What the value should look like.
        expected: &'static str,
    },
}

/// Displays a hop key as `tailgate-hop key <k>`, or a header name as itself.
struct HopKey<'a>(&'a str);

impl std::fmt::Display for HopKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.len() == 1 {
            write!(f, "tailgate-hop key {}", self.0)
        } else {
            f.write_str(self.0)
        }
    }
}

/// Why a control request body was refused ([`crate::control`]). Offsets are bytes in the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Error)]
pub enum ControlError {
    /// The protobuf does not walk.
    #[error(transparent)]
    Malformed(#[from] ScanError),
    /// The request holds no `ResourceSpans`.
    #[error("control request holds no ResourceSpans (body is {at} bytes)")]
    NoResource {
        /// The body's length.
        at: usize,
    },
    /// A second `ResourceSpans`.
    #[error("control request holds a second ResourceSpans at byte {at}")]
    SeveralResources {
        /// Offset of its field.
        at: usize,
    },
    /// The `ResourceSpans` holds a `ScopeSpans`: a control request carries no spans.
    #[error("control request holds a ScopeSpans at byte {at}")]
    HoldsSpans {
        /// Offset of its field.
        at: usize,
    },
    /// The resource has no `tailgate.control` attribute.
    #[error("control request has no tailgate.control attribute (ResourceSpans at byte {at})")]
    NoAttribute {
        /// Offset of the ResourceSpans message.
        at: usize,
    },
    /// A second `tailgate.control` attribute.
    #[error("control request has a second tailgate.control attribute at byte {at}")]
    DuplicateAttribute {
        /// Offset of its field.
        at: usize,
    },
    /// The `tailgate.control` value is not a `bytes_value`.
    #[error("tailgate.control at byte {at} is not a bytes_value")]
    NotBytes {
        /// Offset of the attribute's field.
        at: usize,
    },
    /// The payload ends inside an entry.
    #[error("control entry at byte {at} needs {need} bytes, {have} left")]
    Truncated {
        /// Offset of the entry.
        at: usize,
        /// Bytes the entry needs (as far as its length is known).
        need: usize,
        /// Bytes left in the payload from the entry on.
        have: usize,
    },
    /// A `state` byte with bits other than 0 (decided) and 1 (anchored).
    #[error("control entry state {state:#04x} at byte {at} has unknown bits")]
    BadState {
        /// Offset of the byte.
        at: usize,
        /// Its value.
        state: u8,
    },
    /// A decision's `kept` byte other than 0 or 1.
    #[error("decision kept byte {kept} at byte {at}, want 0 or 1")]
    BadKept {
        /// Offset of the byte.
        at: usize,
        /// Its value.
        kept: u8,
    },
    /// A redirect's `holder_len` of 0 or more than 253.
    #[error("redirect holder length {len} at byte {at}, want 1 to 253")]
    BadHolderLength {
        /// Offset of the length.
        at: usize,
        /// Its value.
        len: u16,
    },
    /// A redirect's holder that is not printable ASCII (or holds `;`/`=`).
    #[error(
        "redirect holder at byte {at} is not an endpoint (printable ASCII without ';' or '=')"
    )]
    BadHolder {
        /// Offset of the holder.
        at: usize,
    },
    /// A `drain` or `done` payload that is not empty.
    #[error("{len}-byte payload at byte {at} where an empty one is expected")]
    NotEmpty {
        /// Offset of the payload.
        at: usize,
        /// Its length.
        len: usize,
    },
    /// The header's kind carries spans, not a control payload.
    #[error("k={kind} is not a control message")]
    NotControl {
        /// The kind asked for.
        kind: crate::hop::Kind,
    },
}

/// Why control entries could not be encoded ([`crate::control::encode_bodies`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Error)]
pub enum EncodeError {
    /// A redirect's holder the parser would refuse (empty, over 253 bytes, not printable ASCII,
    /// or holding `;`/`=`).
    #[error("redirect entry {index}: holder is not an endpoint")]
    BadHolder {
        /// Index of the entry.
        index: usize,
    },
    /// One entry alone makes a body larger than the limit.
    #[error("control entry {index} does not fit in a {max_body}-byte body")]
    EntryTooLarge {
        /// Index of the entry.
        index: usize,
        /// The limit.
        max_body: usize,
    },
}

impl EncodeError {
    /// The same error for entry `index`.
    pub(crate) fn at_index(self, index: usize) -> Self {
        match self {
            EncodeError::BadHolder { .. } => EncodeError::BadHolder { index },
            EncodeError::EntryTooLarge { max_body, .. } => {
                EncodeError::EntryTooLarge { index, max_body }
            }
        }
    }
}

/// The signal of an [`InvalidItem`]: it names the repeated fields of the item's path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signal {
    /// `ExportLogsServiceRequest`: the item is a `LogRecord`.
    Logs,
    /// `ExportMetricsServiceRequest`: the item is a `Metric` (and the fault may lie in one of its
    /// data points).
    Metrics,
}

/// The first log record or metric of a request that pdata would refuse (the logs and metrics
/// counterpart of [`InvalidSpan`]): where it is, which field, and what is wrong.
///
/// Displays as the path of the field, e.g.
/// `resource_logs[0].scope_logs[1].log_records[3].trace_id: 8 bytes, want 16 or 0` or
/// `resource_metrics[0].scope_metrics[0].metrics[2].sum.data_points[5].exemplars[0].span_id: 3
/// bytes, want 8 or 0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InvalidItem {
    /// Logs or metrics.
    pub signal: Signal,
    /// Index in the request's `resource_logs` / `resource_metrics`.
    pub resource: u32,
    /// Index in that resource's `scope_logs` / `scope_metrics`.
    pub scope: u32,
    /// Index in that scope's `log_records` / `metrics`.
    pub item: u32,
    /// For a metric's fault inside its data: the data field's name (`gauge`, `sum`, `histogram`,
    /// `exponential_histogram`, `summary`) and the data point's index in it, if the fault is in
    /// one.
    pub data: Option<(&'static str, Option<u32>)>,
    /// Index in the data point's `exemplars` when the field is an exemplar's.
    pub exemplar: Option<u32>,
    /// The field's name in the `.proto` file; empty when the message itself does not walk.
    pub field: &'static str,
    /// What is wrong.
    pub problem: SpanProblem,
    /// Byte offset of the field (or of the failure) in the request.
    pub at: usize,
}

impl std::fmt::Display for InvalidItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (r, s, i) = match self.signal {
            Signal::Logs => ("resource_logs", "scope_logs", "log_records"),
            Signal::Metrics => ("resource_metrics", "scope_metrics", "metrics"),
        };
        write!(
            f,
            "{r}[{}].{s}[{}].{i}[{}]",
            self.resource, self.scope, self.item
        )?;
        if let Some((data, point)) = self.data {
            write!(f, ".{data}")?;
            if let Some(p) = point {
                write!(f, ".data_points[{p}]")?;
            }
        }
        if let Some(e) = self.exemplar {
            write!(f, ".exemplars[{e}]")?;
        }
        if !self.field.is_empty() {
            write!(f, ".{}", self.field)?;
        }
        match self.problem {
            SpanProblem::IdLength { len, want } => write!(f, ": {len} bytes, want {want} or 0"),
            SpanProblem::WireType { got, want } => write!(f, ": wire type {got}, want {want}"),
            SpanProblem::Malformed(kind) => {
                write!(f, ": malformed protobuf: {kind:?} at byte {}", self.at)
            }
        }
    }
}

impl std::error::Error for InvalidItem {}

/// Why a receiver refuses a logs or metrics request ([`crate::logs::check_log_records`],
/// [`crate::metrics::check_metrics`]): the counterpart of [`RequestError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Error)]
pub enum SignalError {
    /// The request's structure does not walk: its items cannot be counted.
    #[error(transparent)]
    Malformed(#[from] ScanError),
    /// The structure walks, but an item is one pdata refuses (so the collector refuses the whole
    /// request); `first` is the first such item, `items` how many the request holds in the unit
    /// the collector counts (log records; data points for metrics).
    #[error("invalid item: {first}")]
    Invalid {
        /// The first bad item.
        first: InvalidItem,
        /// Log records or data points in the request, bad or not.
        items: usize,
    },
}

/// Why a rewrite ([`crate::rewrite`]) failed. The input is left as it was; the output buffer may
/// hold a partial request and must be discarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Error)]
pub enum RewriteError {
    /// The request, one of its envelopes, a span, an event or an attribute list that had to be
    /// edited does not walk (offsets are bytes in the input; inside a resource or scope message
    /// given more than once they point at its first occurrence).
    #[error(transparent)]
    Malformed(#[from] ScanError),
    /// The rewritten request would be larger than the rewriter's limit
    /// ([`crate::rewrite::Rewriter::max_output`]): edits that add bytes to every span can grow a
    /// request past what the next hop accepts.
    #[error("rewritten request reached {len} bytes, over the limit of {limit}")]
    TooLarge {
        /// Bytes written when the limit was crossed.
        len: usize,
        /// The limit.
        limit: usize,
    },
}
