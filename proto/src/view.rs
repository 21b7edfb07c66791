//! Owned span views: what the gateway keeps in its trace table.
//!
//! A [`SpanView`] is the request buffer (a refcounted `Bytes`, never copied), the span's position
//! in it, a shared handle to the request's resource and scope headers, and where the span's trace
//! and parent ids lie; the other hot fields are re-read from the span bytes when asked. Holding a view pins the whole request buffer: the sampler accounts
//! memory per buffer ([`SpanView::buffer_id`], [`SpanView::buffer_len`]) and, when few views of a
//! big buffer survive, calls [`SpanView::detach`] (or [`compact`]) to copy the survivors into a
//! small buffer of their own.

use std::sync::Arc;

use bytes::Bytes;

use crate::attributes::{find_attribute, find_attributes, AnyValue, Attributes};
use crate::error::ScanError;
use crate::scan::{Header, Index};
use crate::span::{SpanFields, SpanKind, SpanRef, StatusCode};
use crate::wire::{Fields, LEN};

/// `ResourceSpans.resource`, `Resource.attributes`.
const RESOURCE: u32 = 1;
const RESOURCE_ATTRIBUTES: u32 = 1;
/// `ScopeSpans.scope` and the `InstrumentationScope` fields.
const SCOPE: u32 = 1;
const SCOPE_NAME: u32 = 1;
const SCOPE_VERSION: u32 = 2;
const SCOPE_ATTRIBUTES: u32 = 3;
/// `Span.attributes`.
const SPAN_ATTRIBUTES: u32 = 9;

/// The headers of one request, shared by all its views.
#[derive(Debug)]
pub(crate) struct Headers {
    /// ResourceSpans headers (everything but `scope_spans`).
    pub resources: Vec<ResourceHeader>,
    /// ScopeSpans headers (everything but `spans`) with the index of their resource.
    pub scopes: Vec<(u32, Bytes)>,
}

/// A resource header with its `service.name` located once, since the sampler and spanmetrics ask
/// for it on every span.
#[derive(Debug)]
pub(crate) struct ResourceHeader {
    /// The header bytes.
    pub bytes: Bytes,
    /// Position of the `service.name` string value within `bytes`.
    pub service_name: Option<(u32, u32)>,
}

impl ResourceHeader {
    fn new(bytes: Bytes) -> Self {
        let service_name = match (ResourceRef {
            header: &bytes,
            service_name: Located::Absent,
        })
        .attribute("service.name")
        {
            // The value borrows `bytes`, so its offset is the distance between the pointers.
            Some(AnyValue::String(v)) => {
                let start = v.as_ptr() as usize - bytes.as_ptr() as usize;
                Some((start as u32, (start + v.len()) as u32))
            }
            _ => None,
        };
        Self {
            bytes,
            service_name,
        }
    }
}

/// A header as a `Bytes`: a slice of the request when contiguous, else a fresh concatenation.
pub(crate) fn header_bytes(buf: &Bytes, header: &Header) -> Bytes {
    match header.ranges.as_slice() {
        [] => Bytes::new(),
        [r] => buf.slice(r.start as usize..r.end as usize),
        _ => {
            let mut out = Vec::with_capacity(header.len());
            header.write(buf, &mut out);
            Bytes::from(out)
        }
    }
}

/// One span of a request, owning a reference to the request buffer.
///
/// 56 bytes: the engine buffers one per span, so only what it reads on every insert is kept
/// inline (the span's position, its scope, and where its trace and parent ids lie); the other
/// hot fields are re-read from the span bytes on demand (one walk of a ~200-byte message).
#[derive(Debug, Clone)]
pub struct SpanView {
    /// The buffer the span lies in (whole request, or a compact copy after [`Self::detach`]).
    buf: Bytes,
    /// Resource and scope headers of the buffer.
    headers: Arc<Headers>,
    /// The span's Span message: `buf[start..end]`.
    start: u32,
    end: u32,
    /// Index into `headers.scopes` (which names the resource).
    scope: u32,
    /// Offset in the span of the trace id's 16 bytes ([`ID_ABSENT`], [`ID_FAR`]).
    trace_id_at: u16,
    /// Offset in the span of the parent span id's 8 bytes ([`ID_ABSENT`], [`ID_FAR`]).
    parent_id_at: u16,
}

/// An id offset meaning "absent or empty" (no payload can start at offset 0 of a span).
const ID_ABSENT: u16 = 0;
/// An id offset meaning "beyond `u16`: walk the span to find it".
const ID_FAR: u16 = u16::MAX;

/// Where an id field's payload of `n` bytes lies in the span, as a `u16` offset.
fn id_offset((start, end): (u32, u32), n: u32) -> u16 {
    if end - start != n {
        ID_ABSENT // validated at scan: empty (absent or zero-length)
    } else if start < u32::from(ID_FAR) {
        start as u16
    } else {
        ID_FAR
    }
}

/// The bytes of an id found by [`id_offset`] (empty when absent).
fn id_bytes(span: &[u8], at: u16, n: usize, slow: impl FnOnce() -> (u32, u32)) -> &[u8] {
    let range = match at {
        ID_ABSENT => return &[],
        ID_FAR => {
            let (s, e) = slow();
            s as usize..e as usize
        }
        at => at as usize..at as usize + n,
    };
    span.get(range).unwrap_or(&[])
}

/// An id's bytes as an array (all zero when absent).
fn id_array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    bytes.try_into().unwrap_or([0; N])
}

/// Scans a request into views of all its spans, validating each span's top-level fields.
pub fn scan(buf: &Bytes) -> Result<Vec<SpanView>, ScanError> {
    let mut index = Index::default();
    index.build(buf)?;
    let mut out = Vec::with_capacity(index.spans.len());
    views_from_index(buf, &index, &mut out, |_| {}, Bad::Fail)?;
    Ok(out)
}

/// Scans a request like [`scan`], appending its views to `views` and, in the same order, what
/// `f` makes of each span's [`SpanFields`] to `fields`. The scan parses every span's top-level
/// fields anyway (to validate them); this hands them on, so a consumer that needs them for every
/// span (the sampler folds times, status and flags into its per-trace aggregates) does not walk
/// the spans again. On error nothing is appended.
pub fn scan_with<T>(
    buf: &Bytes,
    views: &mut Vec<SpanView>,
    fields: &mut Vec<T>,
    mut f: impl FnMut(&SpanFields) -> T,
) -> Result<(), ScanError> {
    let mut index = Index::default();
    index.build(buf)?;
    let (v0, f0) = (views.len(), fields.len());
    views.reserve(index.spans.len());
    fields.reserve(index.spans.len());
    let done = views_from_index(buf, &index, views, |span| fields.push(f(span)), Bad::Fail);
    if done.is_err() {
        views.truncate(v0);
        fields.truncate(f0);
    }
    done.map(|_| ())
}

/// [`scan_with`] for a consumer that must not lose a whole request for one bad span (the
/// gateway's owner core, whose parts batch many clients' spans): a span whose fields do not parse
/// is left out, and the number left out is returned for the caller to count. Only a request whose
/// structure does not walk fails (then nothing is appended). The receivers refuse such spans
/// ([`crate::scan::check_spans`]), so this leaves nothing out unless something else built the
/// request.
pub fn scan_with_skipping<T>(
    buf: &Bytes,
    views: &mut Vec<SpanView>,
    fields: &mut Vec<T>,
    mut f: impl FnMut(&SpanFields) -> T,
) -> Result<usize, ScanError> {
    let mut index = Index::default();
    index.build(buf)?;
    views.reserve(index.spans.len());
    fields.reserve(index.spans.len());
    views_from_index(buf, &index, views, |span| fields.push(f(span)), Bad::Skip)
}

/// What [`views_from_index`] does with a span whose fields do not parse.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Bad {
    /// Fail the whole request.
    Fail,
    /// Leave the span out and count it.
    Skip,
}

/// Pushes a view of every span in `index` to `out`, handing each span's parsed fields to `each`;
/// returns how many spans were left out (always 0 with [`Bad::Fail`]).
fn views_from_index(
    buf: &Bytes,
    index: &Index,
    out: &mut Vec<SpanView>,
    mut each: impl FnMut(&SpanFields),
    bad: Bad,
) -> Result<usize, ScanError> {
    let mut skipped = 0;
    let headers = Arc::new(Headers {
        resources: index
            .resources
            .iter()
            .map(|r| ResourceHeader::new(header_bytes(buf, &r.header)))
            .collect(),
        scopes: index
            .scopes
            .iter()
            .map(|s| (s.resource, header_bytes(buf, &s.header)))
            .collect(),
    });
    for (scope_no, scope) in index.scopes.iter().enumerate() {
        for loc in &index.spans[scope.spans.start as usize..scope.spans.end as usize] {
            let (start, end) = (loc.start as usize, loc.end as usize);
            let fields = match SpanFields::parse(&buf[start..end], start) {
                Ok(f) => f,
                Err(_) if bad == Bad::Skip => {
                    skipped += 1;
                    continue;
                }
                Err(e) => return Err(e),
            };
            each(&fields);
            out.push(SpanView {
                buf: buf.clone(),
                headers: Arc::clone(&headers),
                start: loc.start,
                end: loc.end,
                scope: scope_no as u32,
                trace_id_at: id_offset(fields.trace_id_at, 16),
                parent_id_at: id_offset(fields.parent_span_id_at, 8),
            });
        }
    }
    Ok(skipped)
}

impl SpanView {
    /// The encoded Span message (a zero-copy slice of the buffer).
    pub fn span_bytes(&self) -> Bytes {
        self.buf.slice(self.start as usize..self.end as usize)
    }

    /// The encoded Span message, borrowed.
    pub fn span_slice(&self) -> &[u8] {
        &self.buf[self.start as usize..self.end as usize]
    }

    /// Borrowed form, for the accessors shared with the split callback.
    pub fn as_span_ref(&self) -> SpanRef<'_> {
        SpanRef::new(self.span_slice(), self.start as usize)
    }

    /// Length of the Span message on the wire (without its tag and length prefix).
    pub fn wire_len(&self) -> usize {
        (self.end - self.start) as usize
    }

    /// Identity of the buffer this view pins (stable while any view holds it); use with
    /// [`Self::buffer_len`] to account retained memory per buffer.
    pub fn buffer_id(&self) -> usize {
        self.buf.as_ptr() as usize
    }

    /// Length of the buffer this view pins.
    pub fn buffer_len(&self) -> usize {
        self.buf.len()
    }

    /// The hot fields, read from the span bytes (one walk; the scan validated them).
    pub fn fields(&self) -> SpanFields {
        SpanFields::parse(self.span_slice(), self.start as usize).unwrap_or_default()
    }

    /// Trace id (all zero if absent).
    pub fn trace_id(&self) -> [u8; 16] {
        id_array(self.trace_id_bytes())
    }

    /// Trace id bytes as on the wire: 16 bytes, or empty if absent.
    pub fn trace_id_bytes(&self) -> &[u8] {
        id_bytes(self.span_slice(), self.trace_id_at, 16, || {
            self.fields().trace_id_at
        })
    }

    /// Span id.
    pub fn span_id(&self) -> [u8; 8] {
        self.fields().span_id
    }

    /// Parent span id (all zero for a root span).
    pub fn parent_span_id(&self) -> [u8; 8] {
        id_array(self.parent_span_id_bytes())
    }

    /// Parent span id bytes as on the wire: 8 bytes, or empty if absent.
    pub fn parent_span_id_bytes(&self) -> &[u8] {
        id_bytes(self.span_slice(), self.parent_id_at, 8, || {
            self.fields().parent_span_id_at
        })
    }

    /// Whether the span has no parent (absent or all-zero parent span id).
    pub fn is_root(&self) -> bool {
        self.parent_span_id_bytes().iter().all(|b| *b == 0)
    }

    /// Span name bytes.
    pub fn name(&self) -> &[u8] {
        let span = self.span_slice();
        self.fields().name_in(span)
    }

    /// W3C trace state bytes.
    pub fn trace_state(&self) -> &[u8] {
        let span = self.span_slice();
        self.fields().trace_state_in(span)
    }

    /// Span kind.
    pub fn kind(&self) -> SpanKind {
        self.fields().span_kind()
    }

    /// Start time, Unix nanoseconds.
    pub fn start_time_unix_nano(&self) -> u64 {
        self.fields().start_time_unix_nano
    }

    /// End time, Unix nanoseconds.
    pub fn end_time_unix_nano(&self) -> u64 {
        self.fields().end_time_unix_nano
    }

    /// Status code.
    pub fn status_code(&self) -> StatusCode {
        self.fields().status()
    }

    /// Span flags.
    pub fn flags(&self) -> u32 {
        self.fields().flags
    }

    /// The first span attribute named `key`.
    pub fn attribute(&self, key: &str) -> Option<AnyValue<'_>> {
        self.as_span_ref().attribute(key)
    }

    /// Several span attributes in one walk: `found(i, value)` for each `keys[i]` that
    /// [`Self::attribute`] would find, with the same value. At most 64 keys.
    pub fn attributes_of<'a>(&'a self, keys: &[&str], found: &mut dyn FnMut(usize, AnyValue<'a>)) {
        let mut done = 0;
        let span = self.span_slice();
        find_attributes(
            span,
            self.start as usize,
            SPAN_ATTRIBUTES,
            keys,
            &mut done,
            found,
        );
    }

    /// True if `other`'s resource header is this view's (same request) or has the same bytes, so
    /// both spans have the same resource attributes.
    pub fn same_resource(&self, other: &SpanView) -> bool {
        let (a, b) = (self.resource_header(), other.resource_header());
        std::ptr::eq(a, b) || a[..] == b[..]
    }

    /// All span attributes.
    pub fn attributes(&self) -> Attributes<'_> {
        self.as_span_ref().attributes()
    }

    /// The span's resource.
    pub fn resource(&self) -> ResourceRef<'_> {
        let res = &self.headers.resources[self.headers.scopes[self.scope as usize].0 as usize];
        ResourceRef {
            header: &res.bytes,
            service_name: match res.service_name {
                Some(at) => Located::At(at),
                None => Located::Absent,
            },
        }
    }

    /// The span's instrumentation scope.
    pub fn scope(&self) -> ScopeRef<'_> {
        ScopeRef {
            header: &self.headers.scopes[self.scope as usize].1,
        }
    }

    /// The resource header (ResourceSpans without its scope_spans) as shared bytes.
    pub fn resource_header(&self) -> &Bytes {
        let res = self.headers.scopes[self.scope as usize].0;
        &self.headers.resources[res as usize].bytes
    }

    /// The scope header (ScopeSpans without its spans) as shared bytes.
    pub fn scope_header(&self) -> &Bytes {
        &self.headers.scopes[self.scope as usize].1
    }

    /// An equivalent view backed by a fresh buffer holding only this span and its headers, so the
    /// original request buffer can be freed once no other view holds it.
    pub fn detach(&self) -> SpanView {
        let mut v = compact(std::slice::from_ref(self));
        match v.pop() {
            Some(view) => view,
            None => self.clone(), // unreachable: compact returns one view per input
        }
    }
}

/// Copies `views` into one fresh buffer (spans and each distinct header once) and returns
/// equivalent views backed by it, in the same order. The sampler uses this to release a large
/// request buffer of which only a few spans are still held.
pub fn compact(views: &[SpanView]) -> Vec<SpanView> {
    // Distinct (resource, scope) header pairs, by identity of the shared header bytes.
    let mut res_keys: Vec<(usize, usize)> = Vec::new();
    let mut scope_keys: Vec<(usize, usize, u32)> = Vec::new();
    let mut buf = Vec::with_capacity(views.iter().map(|v| v.wire_len()).sum::<usize>() + 256);
    let mut resources: Vec<(usize, usize)> = Vec::new();
    let mut scopes: Vec<(u32, usize, usize)> = Vec::new();
    let mut placed: Vec<(u32, usize, usize)> = Vec::with_capacity(views.len());
    for v in views {
        let rh = v.resource_header();
        let rkey = (rh.as_ptr() as usize, rh.len());
        let res = match res_keys.iter().position(|k| *k == rkey) {
            Some(i) => i as u32,
            None => {
                res_keys.push(rkey);
                resources.push((buf.len(), buf.len() + rh.len()));
                buf.extend_from_slice(rh);
                (res_keys.len() - 1) as u32
            }
        };
        let sh = v.scope_header();
        let skey = (sh.as_ptr() as usize, sh.len(), res);
        let scope = match scope_keys.iter().position(|k| *k == skey) {
            Some(i) => i as u32,
            None => {
                scope_keys.push(skey);
                scopes.push((res, buf.len(), buf.len() + sh.len()));
                buf.extend_from_slice(sh);
                (scope_keys.len() - 1) as u32
            }
        };
        placed.push((scope, buf.len(), buf.len() + v.wire_len()));
        buf.extend_from_slice(v.span_slice());
    }
    let buf = Bytes::from(buf);
    let headers = Arc::new(Headers {
        resources: resources
            .iter()
            .map(|&(s, e)| ResourceHeader::new(buf.slice(s..e)))
            .collect(),
        scopes: scopes
            .iter()
            .map(|&(r, s, e)| (r, buf.slice(s..e)))
            .collect(),
    });
    views
        .iter()
        .zip(placed)
        .map(|(v, (scope, s, e))| SpanView {
            buf: buf.clone(),
            headers: Arc::clone(&headers),
            start: s as u32,
            end: e as u32,
            scope,
            trace_id_at: v.trace_id_at,
            parent_id_at: v.parent_id_at,
        })
        .collect()
}

/// Where a resource's `service.name` string lies in its header.
#[derive(Debug, Clone, Copy)]
enum Located {
    /// Located at scan time: absent, or not a string.
    Absent,
    /// Located at scan time: these bytes of the header.
    At((u32, u32)),
    /// Not looked for yet (the routing views of logs and metrics): looked up when asked.
    Unknown,
}

/// A resource header, borrowed from a view (or, for the routing views of logs and metrics, the
/// part of the header that holds the `resource` field).
#[derive(Debug, Clone, Copy)]
pub struct ResourceRef<'a> {
    header: &'a [u8],
    /// `service.name`, located at scan time or not yet.
    service_name: Located,
}

impl<'a> ResourceRef<'a> {
    /// A resource header whose `service.name` has not been located: looked up on each ask.
    pub(crate) fn unlocated(header: &'a [u8]) -> Self {
        Self {
            header,
            service_name: Located::Unknown,
        }
    }

    /// The encoded header (the ResourceSpans fields other than `scope_spans`; for the routing
    /// views of logs and metrics, the contiguous part of the header that holds the `resource`
    /// field).
    pub fn header(&self) -> &'a [u8] {
        self.header
    }

    /// The first resource attribute named `key`.
    pub fn attribute(&self, key: &str) -> Option<AnyValue<'a>> {
        sub_messages(self.header, RESOURCE)
            .find_map(|(m, base)| find_attribute(m, base, RESOURCE_ATTRIBUTES, key.as_bytes()))
    }

    /// Several resource attributes in one walk: `found(i, value)` for each `keys[i]` that
    /// [`Self::attribute`] would find, with the same value. At most 64 keys.
    pub fn attributes_of(&self, keys: &[&str], found: &mut dyn FnMut(usize, AnyValue<'a>)) {
        // As `attribute`'s `find_map`: a later `resource` field still answers a key whose value
        // was malformed in an earlier one.
        let mut answered = 0u64;
        for (m, base) in sub_messages(self.header, RESOURCE) {
            let mut done = answered;
            find_attributes(
                m,
                base,
                RESOURCE_ATTRIBUTES,
                keys,
                &mut done,
                &mut |i, v| {
                    answered |= 1 << i;
                    found(i, v);
                },
            );
        }
    }

    /// The resource's `service.name`, if it is a string (for span views located at scan time: no
    /// walk; for the routing views of logs and metrics, one attribute lookup).
    pub fn service_name(&self) -> Option<&'a [u8]> {
        match self.service_name {
            Located::At((s, e)) => self.header.get(s as usize..e as usize),
            Located::Absent => None,
            Located::Unknown => match self.attribute("service.name") {
                Some(AnyValue::String(s)) => Some(s),
                _ => None,
            },
        }
    }

    /// All resource attributes (of the first `resource` field; encoders write one).
    pub fn attributes(&self) -> Attributes<'a> {
        match sub_messages(self.header, RESOURCE).next() {
            Some((m, base)) => Attributes::new(m, base, RESOURCE_ATTRIBUTES),
            None => Attributes::empty(),
        }
    }
}

/// A scope header, borrowed from a view (or the part of it holding the `scope` field).
#[derive(Debug, Clone, Copy)]
pub struct ScopeRef<'a> {
    header: &'a [u8],
}

impl<'a> ScopeRef<'a> {
    /// A scope header (or the part of one holding its `scope` field).
    pub(crate) fn new(header: &'a [u8]) -> Self {
        Self { header }
    }

    /// The encoded header (the ScopeSpans fields other than `spans`; for the routing views of logs
    /// and metrics, the contiguous part of the header that holds the `scope` field).
    pub fn header(&self) -> &'a [u8] {
        self.header
    }

    /// The scope name.
    pub fn name(&self) -> &'a [u8] {
        self.string_field(SCOPE_NAME)
    }

    /// The scope version.
    pub fn version(&self) -> &'a [u8] {
        self.string_field(SCOPE_VERSION)
    }

    /// The first scope attribute named `key`.
    pub fn attribute(&self, key: &str) -> Option<AnyValue<'a>> {
        sub_messages(self.header, SCOPE)
            .find_map(|(m, base)| find_attribute(m, base, SCOPE_ATTRIBUTES, key.as_bytes()))
    }

    /// All scope attributes (of the first `scope` field).
    pub fn attributes(&self) -> Attributes<'a> {
        match sub_messages(self.header, SCOPE).next() {
            Some((m, base)) => Attributes::new(m, base, SCOPE_ATTRIBUTES),
            None => Attributes::empty(),
        }
    }

    fn string_field(&self, number: u32) -> &'a [u8] {
        let mut last: &'a [u8] = &[];
        for (m, base) in sub_messages(self.header, SCOPE) {
            let mut fields = Fields::new(m, base);
            while let Ok(Some(f)) = fields.next_field() {
                if f.number == number && f.wire_type == LEN {
                    last = f.payload(m);
                }
            }
        }
        last
    }
}

/// The payloads of the LEN fields numbered `number` in `msg`, with their offsets in `msg`.
fn sub_messages(msg: &[u8], number: u32) -> impl Iterator<Item = (&[u8], usize)> {
    let mut fields = Fields::new(msg, 0);
    std::iter::from_fn(move || loop {
        match fields.next_field() {
            Ok(Some(f)) if f.number == number && f.wire_type == LEN => {
                return Some((f.payload(msg), f.value_start))
            }
            Ok(Some(_)) => continue,
            _ => return None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::SpanView;

    /// The gateway buffers one view per span: keep it within issue 4's budget.
    #[test]
    fn view_is_at_most_56_bytes() {
        assert!(std::mem::size_of::<SpanView>() <= 56);
    }
}
