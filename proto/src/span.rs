//! Reading one Span message in place: the hot fields and lazily its attributes.
//!
//! [`SpanRef`] is a borrowed span (what the split callback sees); [`SpanFields`] is the result of
//! one walk over a span's top-level fields, stored in a [`crate::view::SpanView`] so the sampler
//! reads ids and times without walking again. Field numbers follow
//! `opentelemetry/proto/trace/v1/trace.proto`.

use crate::attributes::{find_attribute, AnyValue, Attributes};
use crate::error::{InvalidSpan, ScanError, ScanErrorKind, SpanProblem};
use crate::wire::{Field, Fields, FIXED32, FIXED64, LEN, VARINT};

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
const LINKS: u32 = 13;
/// `Status.code`.
const STATUS_CODE: u32 = 3;
/// `Status.message`.
const STATUS_MESSAGE: u32 = 2;
/// `Span.Link.trace_id`, `Span.Link.span_id`.
const LINK_TRACE_ID: u32 = 1;
const LINK_SPAN_ID: u32 = 2;

/// Name and wire type of every `Span` field, indexed by field number (0 is not a field).
const SPAN_SCHEMA: [(&str, u8); 17] = [
    ("", LEN),
    ("trace_id", LEN),
    ("span_id", LEN),
    ("trace_state", LEN),
    ("parent_span_id", LEN),
    ("name", LEN),
    ("kind", VARINT),
    ("start_time_unix_nano", FIXED64),
    ("end_time_unix_nano", FIXED64),
    ("attributes", LEN),
    ("dropped_attributes_count", VARINT),
    ("events", LEN),
    ("dropped_events_count", VARINT),
    ("links", LEN),
    ("dropped_links_count", VARINT),
    ("status", LEN),
    ("flags", FIXED32),
];

/// Name and wire type of every `Span.Link` field, indexed by field number.
const LINK_SCHEMA: [(&str, u8); 7] = [
    ("", LEN),
    ("trace_id", LEN),
    ("span_id", LEN),
    ("trace_state", LEN),
    ("attributes", LEN),
    ("dropped_attributes_count", VARINT),
    ("flags", FIXED32),
];

/// Name and wire type of every `Status` field, indexed by field number (1 is reserved).
const STATUS_SCHEMA: [(&str, u8); 4] = [
    ("", LEN),
    ("", LEN),
    ("status.message", LEN),
    ("status.code", VARINT),
];

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

    /// Absolute offset of the span message in its request.
    pub(crate) fn base(&self) -> usize {
        self.base
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

// === the receivers' check ===

/// What is wrong with one span, before the receiver's walk adds where the span is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SpanFault {
    /// Index in `Span.links` when the field is a link's.
    pub link: Option<u32>,
    /// Field name (see [`InvalidSpan::field`]).
    pub field: &'static str,
    /// What is wrong.
    pub problem: SpanProblem,
    /// Absolute offset.
    pub at: usize,
}

impl SpanFault {
    fn malformed(e: ScanError) -> Self {
        SpanFault {
            link: None,
            field: "",
            problem: SpanProblem::Malformed(e.kind),
            at: e.at,
        }
    }

    /// The fault of span `span` of scope `scope` of resource `resource`.
    pub(crate) fn at(self, resource: u32, scope: u32, span: u32) -> InvalidSpan {
        InvalidSpan {
            resource,
            scope,
            span,
            link: self.link,
            field: self.field,
            problem: self.problem,
            at: self.at,
        }
    }
}

/// Checks one Span message (found at absolute offset `base`) as the collector's pdata does when
/// it unmarshals: trace_id 0 or 16 bytes, span_id and parent_span_id 0 or 8, the same for every
/// link's trace_id and span_id, and the wire type of every known field of the span, its status and
/// its links. That covers everything [`SpanFields::parse`] rejects (so a span that passes here
/// also scans into a view) and allocates nothing.
///
/// Not entered, as the scan does not enter them either: attributes, events, and the contents of
/// strings (pdata does not check UTF-8 either).
pub(crate) fn check(span: &[u8], base: usize) -> Result<(), SpanFault> {
    let pos = fast_prefix(span);
    check_fields(&span[pos..], base + pos)
}

/// The fast path of [`check`]: walks the fields an encoder writes for a plain span (one-byte
/// tags in the schema's wire types, ids of a valid length, lengths under 16 KiB, one-byte
/// varints) and returns the offset of the first field it does not handle (links, status, unknown
/// or odd fields, anything wrong), where [`check_fields`] takes over with the full rules and the
/// exact error. It accepts only what [`check_fields`] would accept.
///
/// Shaped for the cost of a walk that must visit every field: the usual head (trace_id, span_id)
/// is recognised with independent loads instead of a chain, and runs of attributes (most of a
/// span's fields) are skipped in a loop of their own without the dispatch.
#[inline(always)]
fn fast_prefix(span: &[u8]) -> usize {
    let mut pos = usual_head(span);
    while let Some(&tag) = span.get(pos) {
        let next = match tag {
            0x0a => id_field(span, pos, 16),
            // span_id, parent_span_id
            0x12 | 0x22 => id_field(span, pos, 8),
            // trace_state, name, events
            0x1a | 0x2a | 0x5a => bytes_field(span, pos),
            0x4a => Some(attribute_run(span, pos)),
            // start_time_unix_nano, end_time_unix_nano
            0x39 | 0x41 => Some(pos + 9),
            // kind, dropped_{attributes,events,links}_count
            0x30 | 0x50 | 0x60 | 0x70 => match span.get(pos + 1) {
                Some(&b) if b < 0x80 => Some(pos + 2),
                _ => None,
            },
            // flags (field 16: a two-byte tag)
            0x85 if span.get(pos + 1) == Some(&0x01) => Some(pos + 6),
            _ => None,
        };
        match next {
            Some(next) if next > pos && next <= span.len() => pos = next,
            _ => return pos,
        }
    }
    pos
}

/// Where the fields after a 16-byte trace_id and an 8-byte span_id start, when the span begins
/// with them (as every encoder writes a span); else 0.
#[inline(always)]
fn usual_head(span: &[u8]) -> usize {
    match span.get(..20) {
        Some([0x0a, 16, .., 0x12, 8]) if span.len() >= 28 => 28,
        _ => 0,
    }
}

/// The end of the length-delimited field at `pos` whose payload must be empty or `want` bytes.
#[inline(always)]
fn id_field(span: &[u8], pos: usize, want: usize) -> Option<usize> {
    let (len, start) = short_len(span, pos + 1)?;
    (len == want || len == 0).then_some(start + len)
}

/// The end of the length-delimited field at `pos` (any payload).
#[inline(always)]
fn bytes_field(span: &[u8], pos: usize) -> Option<usize> {
    let (len, start) = short_len(span, pos + 1)?;
    Some(start + len)
}

/// Skips the run of attributes (tag 0x4a) at `pos`: returns the offset after the last one whose
/// length could be read and that ends inside the span (`pos` itself when the first cannot).
#[inline(always)]
fn attribute_run(span: &[u8], mut pos: usize) -> usize {
    loop {
        let next = match bytes_field(span, pos) {
            Some(next) if next <= span.len() => next,
            _ => return pos,
        };
        pos = next;
        if span.get(pos) != Some(&0x4a) {
            return pos;
        }
    }
}

/// A length of one or two varint bytes at `at`, and where its payload starts.
#[inline(always)]
fn short_len(span: &[u8], at: usize) -> Option<(usize, usize)> {
    let b0 = *span.get(at)?;
    if b0 < 0x80 {
        return Some((usize::from(b0), at + 1));
    }
    let b1 = *span.get(at + 1)?;
    (b1 < 0x80).then(|| (usize::from(b0 & 0x7f) | usize::from(b1) << 7, at + 2))
}

/// [`check`]'s full rules over the fields of `span` (at absolute offset `base`).
fn check_fields(span: &[u8], base: usize) -> Result<(), SpanFault> {
    let mut fields = Fields::new(span, base);
    let mut links = 0u32;
    while let Some(f) = fields.next_field().map_err(SpanFault::malformed)? {
        let Some(&(name, want)) = SPAN_SCHEMA.get(f.number as usize) else {
            continue; // unknown fields are kept as they are
        };
        expect(&f, name, want, base)?;
        match f.number {
            TRACE_ID => id_len(&f, name, 16, base)?,
            SPAN_ID | PARENT_SPAN_ID => id_len(&f, name, 8, base)?,
            STATUS => check_status(f.payload(span), base + f.value_start)?,
            LINKS => {
                check_link(f.payload(span), base + f.value_start).map_err(|e| SpanFault {
                    link: Some(links),
                    ..e
                })?;
                links += 1;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Checks the wire type of a known field.
#[inline(always)]
fn expect(f: &Field, name: &'static str, want: u8, base: usize) -> Result<(), SpanFault> {
    if f.wire_type == want {
        return Ok(());
    }
    Err(SpanFault {
        link: None,
        field: name,
        problem: SpanProblem::WireType {
            got: f.wire_type,
            want,
        },
        at: base + f.start,
    })
}

/// Checks the length of an id field (already known to be length-delimited).
#[inline(always)]
fn id_len(f: &Field, name: &'static str, want: u8, base: usize) -> Result<(), SpanFault> {
    let len = f.end - f.value_start;
    if len == 0 || len == usize::from(want) {
        return Ok(());
    }
    Err(SpanFault {
        link: None,
        field: name,
        problem: SpanProblem::IdLength { len, want },
        at: base + f.start,
    })
}

/// Checks a `Status` message: the wire types [`status_code`] checks.
fn check_status(status: &[u8], base: usize) -> Result<(), SpanFault> {
    let mut fields = Fields::new(status, base);
    let malformed = |e| SpanFault {
        field: "status",
        ..SpanFault::malformed(e)
    };
    while let Some(f) = fields.next_field().map_err(malformed)? {
        if let Some(&(name, want)) = STATUS_SCHEMA.get(f.number as usize) {
            if !name.is_empty() {
                expect(&f, name, want, base)?;
            }
        }
    }
    Ok(())
}

/// Checks a `Span.Link` message: id lengths and the wire types of its known fields. The fault's
/// `link` is set by the caller.
fn check_link(link: &[u8], base: usize) -> Result<(), SpanFault> {
    let mut fields = Fields::new(link, base);
    while let Some(f) = fields.next_field().map_err(SpanFault::malformed)? {
        let Some(&(name, want)) = LINK_SCHEMA.get(f.number as usize) else {
            continue;
        };
        expect(&f, name, want, base)?;
        match f.number {
            LINK_TRACE_ID => id_len(&f, name, 16, base)?,
            LINK_SPAN_ID => id_len(&f, name, 8, base)?,
            _ => {}
        }
    }
    Ok(())
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
            STATUS_MESSAGE => f.expect(LEN, base)?,
            _ => {}
        }
    }
    Ok(code)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::trace::v1::span::Link;
    use opentelemetry_proto::tonic::trace::v1::{Span, Status};
    use proptest::prelude::*;
    use prost::Message;

    fn encoded_span() -> Vec<u8> {
        Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            parent_span_id: vec![3; 8],
            trace_state: "a=b".into(),
            name: "GET /".into(),
            kind: 2,
            start_time_unix_nano: 1,
            end_time_unix_nano: 2,
            dropped_attributes_count: 1,
            links: vec![Link {
                trace_id: vec![4; 16],
                span_id: vec![5; 8],
                ..Default::default()
            }],
            status: Some(Status {
                code: 2,
                message: "x".into(),
            }),
            flags: 0x101,
            ..Default::default()
        }
        .encode_to_vec()
    }

    proptest! {
        /// The fast path changes nothing: any damage to a span gives the same verdict (and the
        /// same fault) as the full rules alone.
        #[test]
        fn fast_path_agrees_with_the_full_rules(
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
            cut in any::<usize>(),
        ) {
            let mut span = encoded_span();
            let n = span.len();
            for (at, b) in edits {
                span[at % n] = b;
            }
            span.truncate(cut % (n + 1));
            prop_assert_eq!(check(&span, 7), check_fields(&span, 7));
        }
    }

    #[test]
    fn a_plain_span_takes_the_fast_path_to_its_links() {
        let span = encoded_span();
        let links_at = span.iter().position(|&b| b == 0x6a).unwrap();
        assert_eq!(fast_prefix(&span), links_at);
        assert_eq!(check(&span, 0), Ok(()));
    }
}
