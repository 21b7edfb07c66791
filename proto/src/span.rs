//! Reading one Span message in place: the hot fields and lazily its attributes.
//!
//! [`SpanRef`] is a borrowed span (what the split callback sees); [`SpanFields`] is the result of
//! one walk over a span's top-level fields, stored in a [`crate::view::SpanView`] so the sampler
//! reads ids and times without walking again. Field numbers follow
//! `opentelemetry/proto/trace/v1/trace.proto`.

use crate::attributes::{find_attribute, AnyValue, Attributes};
use crate::error::{ScanError, ScanErrorKind};
use crate::wire::{Fields, FIXED32, FIXED64, LEN, VARINT};

const TRACE_ID: u32 = 1;
const SPAN_ID: u32 = 2;
const TRACE_STATE: u32 = 3;
const PARENT_SPAN_ID: u32 = 4;
const NAME: u32 = 5;
const KIND: u32 = 6;
const START_TIME: u32 = 7;
const END_TIME: u32 = 8;
const ATTRIBUTES: u32 = 9;
const STATUS: u32 = 15;
const FLAGS: u32 = 16;
/// `Status.code`.
const STATUS_CODE: u32 = 3;

/// A span inside some buffer, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct SpanRef<'a> {
    bytes: &'a [u8],
    /// Absolute offset of `bytes` in the request, for error reports.
    base: usize,
}

impl<'a> SpanRef<'a> {
    /// Wraps the bytes of a Span message (without its tag and length) found at offset `base`.
    pub fn new(bytes: &'a [u8], base: usize) -> Self {
        Self { bytes, base }
    }

    /// The encoded Span message.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The trace id bytes (16 in valid spans; empty if absent or malformed).
    ///
    /// Routing hot path: encoders write field 1 first, so this checks that position before
    /// walking. A span carrying the field twice (never produced by an encoder) is routed by the
    /// first occurrence here, while decoders keep the last; that only affects such broken spans.
    #[inline]
    pub fn trace_id(&self) -> &'a [u8] {
        let b = self.bytes;
        if b.len() >= 18 && b[0] == 0x0a && b[1] == 16 {
            return &b[2..18];
        }
        self.fields()
            .map(|f| f.trace_id_in(self.bytes))
            .unwrap_or(&[])
    }

    /// Walks every top-level field once, validating the wire format of the known ones.
    pub fn fields(&self) -> Result<SpanFields, ScanError> {
        SpanFields::parse(self.bytes, self.base)
    }

    /// The span's attributes, in wire order.
    pub fn attributes(&self) -> Attributes<'a> {
        Attributes::new(self.bytes, self.base, ATTRIBUTES)
    }

    /// The first span attribute named `key`, if present and well-formed.
    pub fn attribute(&self, key: &str) -> Option<AnyValue<'a>> {
        find_attribute(self.bytes, self.base, ATTRIBUTES, key.as_bytes())
    }
}

/// `Span.SpanKind` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpanKind {
    /// 0: unspecified.
    Unspecified,
    /// 1: internal.
    Internal,
    /// 2: server.
    Server,
    /// 3: client.
    Client,
    /// 4: producer.
    Producer,
    /// 5: consumer.
    Consumer,
    /// Any other value (proto3 enums are open).
    Other(i32),
}

impl From<i32> for SpanKind {
    fn from(v: i32) -> Self {
        match v {
            0 => SpanKind::Unspecified,
            1 => SpanKind::Internal,
            2 => SpanKind::Server,
            3 => SpanKind::Client,
            4 => SpanKind::Producer,
            5 => SpanKind::Consumer,
            v => SpanKind::Other(v),
        }
    }
}

/// `Status.StatusCode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusCode {
    /// 0: unset.
    Unset,
    /// 1: ok.
    Ok,
    /// 2: error.
    Error,
    /// Any other value.
    Other(i32),
}

impl From<i32> for StatusCode {
    fn from(v: i32) -> Self {
        match v {
            0 => StatusCode::Unset,
            1 => StatusCode::Ok,
            2 => StatusCode::Error,
            v => StatusCode::Other(v),
        }
    }
}

/// The hot fields of a span, read in one walk. Strings are stored as offsets into the span so the
/// struct stays `Copy` and small.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpanFields {
    /// Trace id (all zero if absent).
    pub trace_id: [u8; 16],
    /// Span id (all zero if absent).
    pub span_id: [u8; 8],
    /// Parent span id (all zero for a root span).
    pub parent_span_id: [u8; 8],
    /// Start time, Unix nanoseconds.
    pub start_time_unix_nano: u64,
    /// End time, Unix nanoseconds.
    pub end_time_unix_nano: u64,
    /// `SpanKind` as on the wire.
    pub kind: i32,
    /// `Status.code` as on the wire (0 = unset).
    pub status_code: i32,
    /// W3C trace flags plus the OTLP `SPAN_FLAGS_CONTEXT_*` bits.
    pub flags: u32,
    /// Position of the name in the span bytes.
    pub(crate) name: (u32, u32),
    /// Position of the W3C trace state in the span bytes.
    pub(crate) trace_state: (u32, u32),
    /// Position of the last trace id field (for [`SpanRef::trace_id`]'s slow path).
    pub(crate) trace_id_at: (u32, u32),
    /// Position of the last parent span id field (empty range if absent).
    pub(crate) parent_span_id_at: (u32, u32),
}

impl SpanFields {
    /// Walks the Span message `span` (found at absolute offset `base`).
    pub fn parse(span: &[u8], base: usize) -> Result<Self, ScanError> {
        let mut out = SpanFields::default();
        let mut fields = Fields::new(span, base);
        let range = |s: usize, e: usize| (s as u32, e as u32);
        while let Some(f) = fields.next_field()? {
            match f.number {
                TRACE_ID => {
                    f.expect(LEN, base)?;
                    out.trace_id = id(f.payload(span), base + f.start)?;
                    out.trace_id_at = range(f.value_start, f.end);
                }
                SPAN_ID => {
                    f.expect(LEN, base)?;
                    out.span_id = id(f.payload(span), base + f.start)?;
                }
                PARENT_SPAN_ID => {
                    f.expect(LEN, base)?;
                    out.parent_span_id = id(f.payload(span), base + f.start)?;
                    out.parent_span_id_at = range(f.value_start, f.end);
                }
                TRACE_STATE => {
                    f.expect(LEN, base)?;
                    out.trace_state = range(f.value_start, f.end);
                }
                NAME => {
                    f.expect(LEN, base)?;
                    out.name = range(f.value_start, f.end);
                }
                KIND => {
                    f.expect(VARINT, base)?;
                    out.kind = f.varint as i32;
                }
                START_TIME => {
                    f.expect(FIXED64, base)?;
                    out.start_time_unix_nano = f.fixed64(span);
                }
                END_TIME => {
                    f.expect(FIXED64, base)?;
                    out.end_time_unix_nano = f.fixed64(span);
                }
                FLAGS => {
                    f.expect(FIXED32, base)?;
                    out.flags = f.fixed32(span);
                }
                STATUS => {
                    f.expect(LEN, base)?;
                    if let Some(code) = status_code(f.payload(span), base + f.value_start)? {
                        out.status_code = code;
                    }
                }
                ATTRIBUTES | 11 | 13 => f.expect(LEN, base)?,
                10 | 12 | 14 => f.expect(VARINT, base)?,
                _ => {}
            }
        }
        Ok(out)
    }

    /// The span name bytes, given the span these fields were parsed from.
    pub fn name_in<'a>(&self, span: &'a [u8]) -> &'a [u8] {
        &span[self.name.0 as usize..self.name.1 as usize]
    }

    /// The trace state bytes, given the span these fields were parsed from.
    pub fn trace_state_in<'a>(&self, span: &'a [u8]) -> &'a [u8] {
        &span[self.trace_state.0 as usize..self.trace_state.1 as usize]
    }

    fn trace_id_in<'a>(&self, span: &'a [u8]) -> &'a [u8] {
        &span[self.trace_id_at.0 as usize..self.trace_id_at.1 as usize]
    }

    /// The span kind.
    pub fn span_kind(&self) -> SpanKind {
        SpanKind::from(self.kind)
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        StatusCode::from(self.status_code)
    }

    /// Whether the span has no parent.
    pub fn is_root(&self) -> bool {
        self.parent_span_id == [0; 8]
    }
}

/// An id field: empty means absent (all zero), else exactly `N` bytes, as the collector's pdata
/// requires.
fn id<const N: usize>(payload: &[u8], at: usize) -> Result<[u8; N], ScanError> {
    let mut out = [0u8; N];
    match payload.len() {
        0 => Ok(out),
        n if n == N => {
            out.copy_from_slice(payload);
            Ok(out)
        }
        _ => Err(ScanError::new(ScanErrorKind::BadIdLength, at)),
    }
}

/// The `code` of a Status message, if it sets one.
fn status_code(status: &[u8], base: usize) -> Result<Option<i32>, ScanError> {
    let mut code = None;
    let mut fields = Fields::new(status, base);
    while let Some(f) = fields.next_field()? {
        match f.number {
            STATUS_CODE => {
                f.expect(VARINT, base)?;
                code = Some(f.varint as i32);
            }
            2 => f.expect(LEN, base)?,
            _ => {}
        }
    }
    Ok(code)
}
