//! [`SpanData`] for the wire layer's zero-copy [`tailgate_proto::SpanView`].
//!
//! This is the span type the gateway really buffers: a refcounted slice of the request, a shared
//! handle to the request's resource/scope headers and the hot fields read once by
//! [`tailgate_proto::scan()`]. The mapping:
//!
//! - **Hot fields**: the trace and parent ids are read at offsets the scanner stored; name, kind,
//!   times, status, flags and tracestate are re-read from the span bytes (one walk of the Span
//!   message per call; [`SpanData::summary_fields`] reads the insert-time ones in one walk).
//!   The view stays 56 bytes instead of 144 (see docs/proto.md).
//! - **Attributes** (span, resource, scope) are looked up lazily in the encoded bytes on each call;
//!   only attribute/OTTL policies ask, at decision time. The first `KeyValue` with the key wins,
//!   like the collector's `Map.Get`.
//! - **Strings**: OTLP strings should be UTF-8 but the scanner does not check. A name, tracestate
//!   or string attribute that is not valid UTF-8 reads as `""` (the trait allows it for names);
//!   the collector would compare the raw bytes.
//! - **Open enums**: kind and status numbers outside the OTLP enums map to `Unspecified` / `Unset`,
//!   as [`SpanKind::from_code`] and [`StatusCode::from_code`] do.
//! - **Flags**: the low byte of `Span.flags` (the W3C trace flags); the OTLP
//!   `SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE` bits above it are not trace flags.
//! - **Wire length**: the span's length in an exported request, i.e. the Span message plus the
//!   tag and length prefix the re-framer writes before it. This is what `bytes_limiting` and
//!   `maximum_trace_size_bytes` add up, and the share of the request buffer the span occupies.
//! - **Buffer**: the address and length of the request buffer the view pins
//!   ([`SpanView::buffer_id`], [`SpanView::buffer_len`]); all views of one request share it.
//! - **Detach**: [`SpanView::detach`] copies the span and its resource/scope headers into a fresh
//!   buffer, so the request buffer is freed once no other view holds it.

use bytes::Bytes;
use tailgate_proto::attributes::AnyValue;
use tailgate_proto::span::{SpanFields, SpanKind as WireKind, StatusCode as WireStatus};
use tailgate_proto::{ScanError, SpanView};

use crate::span::{AttrValue, BufferRef, SpanData, SpanKind, StatusCode, SummaryFields};

/// Tag byte + length varint the re-framer writes before a span of `len` bytes
/// (`ScopeSpans.spans` is field 2, so its tag is one byte).
fn framed_len(len: usize) -> usize {
    let mut prefix = 1;
    let mut n = len as u64;
    loop {
        prefix += 1;
        n >>= 7;
        if n == 0 {
            break;
        }
    }
    prefix + len
}

/// The wire layer's value as the sampler's borrowed value.
fn attr_value(v: AnyValue<'_>) -> AttrValue<'_> {
    match v {
        AnyValue::String(s) => AttrValue::Str(std::str::from_utf8(s).unwrap_or("")),
        AnyValue::Bool(b) => AttrValue::Bool(b),
        AnyValue::Int(i) => AttrValue::Int(i),
        AnyValue::Double(d) => AttrValue::Double(d),
        AnyValue::Bytes(b) => AttrValue::Bytes(b),
        AnyValue::Empty | AnyValue::Array(_) | AnyValue::KvList(_) => AttrValue::Other,
    }
}

fn kind(k: WireKind) -> SpanKind {
    match k {
        WireKind::Unspecified | WireKind::Other(_) => SpanKind::Unspecified,
        WireKind::Internal => SpanKind::Internal,
        WireKind::Server => SpanKind::Server,
        WireKind::Client => SpanKind::Client,
        WireKind::Producer => SpanKind::Producer,
        WireKind::Consumer => SpanKind::Consumer,
    }
}

fn status(s: WireStatus) -> StatusCode {
    match s {
        WireStatus::Unset | WireStatus::Other(_) => StatusCode::Unset,
        WireStatus::Ok => StatusCode::Ok,
        WireStatus::Error => StatusCode::Error,
    }
}

impl SpanData for SpanView {
    fn trace_id(&self) -> [u8; 16] {
        SpanView::trace_id(self)
    }

    fn span_id(&self) -> [u8; 8] {
        SpanView::span_id(self)
    }

    /// The id's bytes as on the wire: empty when absent, all zero if the span says so;
    /// [`SpanData::is_root`] treats both alike.
    fn parent_span_id(&self) -> &[u8] {
        self.parent_span_id_bytes()
    }

    fn name(&self) -> &str {
        std::str::from_utf8(SpanView::name(self)).unwrap_or("")
    }

    fn kind(&self) -> SpanKind {
        kind(SpanView::kind(self))
    }

    fn start_unix_nanos(&self) -> u64 {
        self.start_time_unix_nano()
    }

    fn end_unix_nanos(&self) -> u64 {
        self.end_time_unix_nano()
    }

    fn status_code(&self) -> StatusCode {
        status(SpanView::status_code(self))
    }

    fn trace_flags(&self) -> u32 {
        self.flags() & 0xff
    }

    fn trace_state(&self) -> &str {
        std::str::from_utf8(SpanView::trace_state(self)).unwrap_or("")
    }

    fn span_attribute(&self, key: &str) -> Option<AttrValue<'_>> {
        self.attribute(key).map(attr_value)
    }

    fn resource_attribute(&self, key: &str) -> Option<AttrValue<'_>> {
        self.resource().attribute(key).map(attr_value)
    }

    fn scope_attribute(&self, key: &str) -> Option<AttrValue<'_>> {
        self.scope().attribute(key).map(attr_value)
    }

    /// One walk of the span's attributes for all the keys.
    fn span_attributes_of(&self, keys: &[&str], found: &mut dyn FnMut(usize, AttrValue<'_>)) {
        for (at, chunk) in keys.chunks(64).enumerate() {
            self.attributes_of(chunk, &mut |i, v| found(at * 64 + i, attr_value(v)));
        }
    }

    /// One walk of the resource's attributes for all the keys.
    fn resource_attributes_of(&self, keys: &[&str], found: &mut dyn FnMut(usize, AttrValue<'_>)) {
        let resource = self.resource();
        for (at, chunk) in keys.chunks(64).enumerate() {
            resource.attributes_of(chunk, &mut |i, v| found(at * 64 + i, attr_value(v)));
        }
    }

    /// Same request and resource, or byte-equal resource headers.
    fn same_resource(&self, other: &Self) -> bool {
        SpanView::same_resource(self, other)
    }

    fn wire_len(&self) -> usize {
        framed_len(SpanView::wire_len(self))
    }

    fn buffer(&self) -> BufferRef {
        BufferRef {
            id: self.buffer_id() as u64,
            len: self.buffer_len(),
        }
    }

    fn detach(&self) -> Self {
        SpanView::detach(self)
    }

    fn is_root(&self) -> bool {
        SpanView::is_root(self)
    }

    /// One walk of the span for the fields the engine reads on every insert.
    fn summary_fields(&self) -> SummaryFields {
        summary_of(&self.fields())
    }
}

/// The engine's insert-time fields of a span, from the fields the wire layer parsed: the same
/// values as [`SpanData::summary_fields`] of its view.
pub fn summary_of(f: &SpanFields) -> SummaryFields {
    SummaryFields {
        start_unix_nanos: f.start_time_unix_nano,
        end_unix_nanos: f.end_time_unix_nano,
        status_code: status(f.status()),
        trace_flags: f.flags & 0xff,
        is_root: f.is_root(),
    }
}

/// Scans a request into views (appended to `views`) and their [`SummaryFields`] (appended to
/// `fields`, same order), parsing each span once, for
/// [`crate::Engine::insert_batch_summarized`]. A span whose fields do not parse is left out and
/// counted in the result (the caller counts the drop), so one bad span never costs the others
/// (`tailgate_proto::view::scan_with_skipping`). A request whose structure does not walk is an
/// error, and then nothing is appended.
pub fn scan_summarized(
    buf: &Bytes,
    views: &mut Vec<SpanView>,
    fields: &mut Vec<SummaryFields>,
) -> Result<usize, ScanError> {
    tailgate_proto::view::scan_with_skipping(buf, views, fields, summary_of)
}

#[cfg(test)]
mod tests {
    use super::framed_len;

    #[test]
    fn framing_adds_tag_and_varint_length() {
        assert_eq!(framed_len(0), 2);
        assert_eq!(framed_len(127), 129);
        assert_eq!(framed_len(128), 131);
        assert_eq!(framed_len(16_383), 16_386);
        assert_eq!(framed_len(16_384), 16_388);
    }
}
