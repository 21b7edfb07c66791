//! The structural walk of an `ExportTraceServiceRequest`: where every resource header, scope
//! header and span lies in the buffer.
//!
//! The walk descends `ExportTraceServiceRequest.resource_spans (1)` → `ResourceSpans.scope_spans
//! (2)` → `ScopeSpans.spans (2)` and records byte ranges only; spans themselves are not entered
//! (their fields are read lazily by [`crate::span`]). A *header* is everything in a ResourceSpans or
//! ScopeSpans except its children: the `resource`/`scope` message, `schema_url` and any unknown
//! fields, kept byte for byte. Writing a header followed by a subset of the children gives a
//! message that decodes to the same resource/scope with fewer spans.

use std::ops::Range;

use crate::error::{InvalidSpan, RequestError, ScanError, ScanErrorKind};
use crate::wire::{Fields, LEN};

/// `ExportTraceServiceRequest.resource_spans`.
pub(crate) const REQUEST_RESOURCE_SPANS: u32 = 1;
/// `ResourceSpans.scope_spans`.
pub(crate) const RESOURCE_SPANS_SCOPE_SPANS: u32 = 2;
/// `ScopeSpans.spans`.
pub(crate) const SCOPE_SPANS_SPANS: u32 = 2;

/// The non-child fields of a message, as ranges of the buffer. Encoders write fields in number
/// order, so this is usually one range (`resource`/`scope`) or two (plus `schema_url` after the
/// children).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Header {
    /// Ranges in buffer order; adjacent ranges are merged.
    pub ranges: Vec<Range<u32>>,
    /// Index in `ranges` of the range holding the first `resource`/`scope` field (1), if any:
    /// what the routing views of logs and metrics read attributes from.
    pub message: Option<u32>,
}

impl Header {
    /// Empties the header, keeping its allocation.
    #[inline]
    pub fn clear(&mut self) {
        self.ranges.clear();
        self.message = None;
    }

    /// Adds field `number` at `start..end`, noting the range of the first field 1.
    #[inline]
    pub(crate) fn push_field(&mut self, number: u32, start: usize, end: usize) {
        self.push(start, end);
        if number == 1 && self.message.is_none() {
            self.message = Some((self.ranges.len() - 1) as u32);
        }
    }

    /// Adds the field at `start..end`, merging with the previous range when adjacent.
    #[inline]
    pub(crate) fn push(&mut self, start: usize, end: usize) {
        // Both fit in u32: the buffer length was checked before the walk.
        let (start, end) = (start as u32, end as u32);
        match self.ranges.last_mut() {
            Some(last) if last.end == start => last.end = end,
            _ => self.ranges.push(start..end),
        }
    }

    /// Total header length.
    #[inline]
    pub fn len(&self) -> usize {
        self.ranges.iter().map(|r| (r.end - r.start) as usize).sum()
    }

    /// The range holding the first `resource`/`scope` field (with whatever fields share the
    /// range), or empty.
    #[inline]
    pub fn message<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        match self.message.and_then(|i| self.ranges.get(i as usize)) {
            Some(r) => &buf[r.start as usize..r.end as usize],
            None => &[],
        }
    }

    /// Appends the header bytes (taken from `buf`) to `out`.
    #[inline]
    pub fn write(&self, buf: &[u8], out: &mut Vec<u8>) {
        for r in &self.ranges {
            out.extend_from_slice(&buf[r.start as usize..r.end as usize]);
        }
    }
}

/// One ResourceSpans of the request.
#[derive(Debug, Clone, Default)]
pub(crate) struct ResourceLoc {
    /// Its non-child fields.
    pub header: Header,
    /// Its scopes, as a range of [`Index::scopes`].
    pub scopes: Range<u32>,
}

/// One ScopeSpans of the request.
#[derive(Debug, Clone, Default)]
pub(crate) struct ScopeLoc {
    /// Index of its resource in [`Index::resources`].
    pub resource: u32,
    /// Its non-child fields.
    pub header: Header,
    /// Its spans, as a range of [`Index::spans`].
    pub spans: Range<u32>,
}

/// One span of the request: its payload (the Span message, without tag and length), and where its
/// `spans` field (tag and length included) starts, so split can copy the field as it was.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SpanLoc {
    /// Offset of the field's tag in the buffer.
    pub field: u32,
    /// Offset of the Span message in the buffer.
    pub start: u32,
    /// Offset just past it.
    pub end: u32,
}

/// Where everything lies in one request. Reused across requests to keep the hot path free of
/// allocation once warmed up.
#[derive(Debug, Clone, Default)]
pub(crate) struct Index {
    /// Unknown fields of the request message itself.
    pub extra: Header,
    /// Resources in request order.
    pub resources: Vec<ResourceLoc>,
    /// Scopes in request order (grouped by resource).
    pub scopes: Vec<ScopeLoc>,
    /// Spans in request order (grouped by scope).
    pub spans: Vec<SpanLoc>,
}

impl Index {
    /// Walks `buf`, replacing the previous contents of the index.
    pub fn build(&mut self, buf: &[u8]) -> Result<(), ScanError> {
        self.extra.ranges.clear();
        self.resources.clear();
        self.scopes.clear();
        self.spans.clear();
        if u32::try_from(buf.len()).is_err() {
            return Err(ScanError::new(ScanErrorKind::TooLarge, 0));
        }
        let mut fields = Fields::new(buf, 0);
        while let Some(f) = fields.next_field()? {
            if f.number == REQUEST_RESOURCE_SPANS {
                f.expect(LEN, 0)?;
                self.resource(buf, f.value_start, f.end)?;
            } else {
                self.extra.push(f.start, f.end);
            }
        }
        Ok(())
    }

    /// Walks the ResourceSpans at `buf[start..end]`.
    fn resource(&mut self, buf: &[u8], start: usize, end: usize) -> Result<(), ScanError> {
        let resource = self.resources.len() as u32;
        let first_scope = self.scopes.len() as u32;
        let mut header = Header::default();
        walk_group(
            buf,
            start,
            end,
            RESOURCE_SPANS_SCOPE_SPANS,
            |_, s, e| self.scope(buf, resource, s, e),
            |n, a, b| header.push_field(n, a, b),
        )?;
        let scopes = first_scope..self.scopes.len() as u32;
        self.resources.push(ResourceLoc { header, scopes });
        Ok(())
    }

    /// Walks the ScopeSpans at `buf[start..end]`.
    fn scope(
        &mut self,
        buf: &[u8],
        resource: u32,
        start: usize,
        end: usize,
    ) -> Result<(), ScanError> {
        let first_span = self.spans.len() as u32;
        let mut header = Header::default();
        let spans = &mut self.spans;
        walk_group(
            buf,
            start,
            end,
            SCOPE_SPANS_SPANS,
            |field, s, e| {
                spans.push(SpanLoc {
                    field: field as u32,
                    start: s as u32,
                    end: e as u32,
                });
                Ok(())
            },
            |n, a, b| header.push_field(n, a, b),
        )?;
        let spans = first_span..self.spans.len() as u32;
        self.scopes.push(ScopeLoc {
            resource,
            header,
            spans,
        });
        Ok(())
    }
}

/// Walks the fields of the ResourceSpans or ScopeSpans at `buf[start..end]`, the one walk of
/// [`Index::build`] and [`count_spans`]: each `child_field` (checked to be length-delimited) goes
/// to `child(field_start, value_start, end)`, every other field to `other(field_start, end)`
/// after the `resource`/`scope` (1) and `schema_url` (3) fields are checked to be
/// length-delimited. Offsets are absolute in `buf`.
#[inline(always)]
pub(crate) fn walk_group(
    buf: &[u8],
    start: usize,
    end: usize,
    child_field: u32,
    mut child: impl FnMut(usize, usize, usize) -> Result<(), ScanError>,
    mut other: impl FnMut(u32, usize, usize),
) -> Result<(), ScanError> {
    let mut fields = Fields::new(&buf[start..end], start);
    while let Some(f) = fields.next_field()? {
        if f.number == child_field {
            f.expect(LEN, start)?;
            child(start + f.start, start + f.value_start, start + f.end)?;
        } else {
            if f.number == 1 || f.number == 3 {
                f.expect(LEN, start)?;
            }
            other(f.number, start + f.start, start + f.end);
        }
    }
    Ok(())
}

/// Where one item (span, log record or metric) lies, as [`walk_items`] hands it on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ItemAt {
    /// Index of its resource in the request's repeated resource field.
    pub resource: u32,
    /// Index of its scope in that resource.
    pub scope: u32,
    /// Index of the item in that scope.
    pub item: u32,
    /// Offset of the item's message (after tag and length) in the buffer.
    pub start: usize,
    /// Offset just past it.
    pub end: usize,
}

/// The structural walk of a request of any signal, storing nothing: every item goes to `item`
/// with its position, in request order. The checks are [`Index::build`]'s (so the errors are the
/// same); a message over 4 GiB is refused as the index's `u32` offsets would be. Shared by the
/// counting and checking walks of all three signals, whose envelopes have the same field numbers.
#[inline(always)]
pub(crate) fn walk_items(
    buf: &[u8],
    mut item: impl FnMut(ItemAt) -> Result<(), ScanError>,
) -> Result<(), ScanError> {
    if u32::try_from(buf.len()).is_err() {
        return Err(ScanError::new(ScanErrorKind::TooLarge, 0));
    }
    let mut resource = 0u32;
    let mut fields = Fields::new(buf, 0);
    while let Some(f) = fields.next_field()? {
        if f.number != REQUEST_RESOURCE_SPANS {
            continue;
        }
        f.expect(LEN, 0)?;
        let mut scope = 0u32;
        walk_group(
            buf,
            f.value_start,
            f.end,
            RESOURCE_SPANS_SCOPE_SPANS,
            |_, s, e| {
                let mut n = 0u32;
                walk_group(
                    buf,
                    s,
                    e,
                    SCOPE_SPANS_SPANS,
                    |_, start, end| {
                        item(ItemAt {
                            resource,
                            scope,
                            item: n,
                            start,
                            end,
                        })?;
                        n += 1;
                        Ok(())
                    },
                    |_, _, _| {},
                )?;
                scope += 1;
                Ok(())
            },
            |_, _, _| {},
        )?;
        resource += 1;
    }
    Ok(())
}

/// Counts the spans of a request without recording where they are: the walk of
/// [`Index::build`] with the same checks (so the same errors), but nothing stored, so nothing
/// allocated. The receivers count every request this way before handing it on.
pub fn count_spans(buf: &[u8]) -> Result<usize, ScanError> {
    let mut spans = 0;
    walk_items(buf, |_| {
        spans += 1;
        Ok(())
    })?;
    Ok(spans)
}

/// What the receivers run on every request: [`count_spans`]'s walk, and in the same pass every
/// span checked as the collector's pdata checks it when it unmarshals (id lengths, wire types of
/// known span, status and link fields: see [`crate::span`]'s `check`). Returns the span count.
///
/// The collector cannot unmarshal a request holding such a span and refuses it whole, so the
/// receivers do too: [`RequestError::InvalidSpan`] names the first bad span and says how many
/// spans the request holds (the walk goes on counting after the first bad span, checking no
/// more). Anything this accepts, [`crate::view::scan`] accepts too, so nothing downstream finds a
/// span it cannot read.
///
/// Cost: measured against [`count_spans`] in `benches/wire.rs` (`receive_walk/…`), see
/// docs/proto.md. It keeps its own walk rather than [`walk_items`]'s: the shared walk's
/// per-item record and fallible callback cost 3–5 ns per span here (12–19 %, measured
/// alternating against the hand-written loop on 2026-12-02), on every span every receiver takes.
pub fn check_spans(buf: &[u8]) -> Result<usize, RequestError> {
    if u32::try_from(buf.len()).is_err() {
        return Err(ScanError::new(ScanErrorKind::TooLarge, 0).into());
    }
    let mut spans = 0;
    let mut first: Option<InvalidSpan> = None;
    let mut resource = 0u32;
    let mut fields = Fields::new(buf, 0);
    while let Some(f) = fields.next_field()? {
        if f.number != REQUEST_RESOURCE_SPANS {
            continue;
        }
        f.expect(LEN, 0)?;
        let mut scope = 0u32;
        walk_group(
            buf,
            f.value_start,
            f.end,
            RESOURCE_SPANS_SCOPE_SPANS,
            |_, s, e| {
                let mut span = 0u32;
                walk_group(
                    buf,
                    s,
                    e,
                    SCOPE_SPANS_SPANS,
                    |_, start, end| {
                        if first.is_none() {
                            if let Err(fault) = crate::span::check(&buf[start..end], start) {
                                first = Some(fault.at(resource, scope, span));
                            }
                        }
                        span += 1;
                        spans += 1;
                        Ok(())
                    },
                    |_, _, _| {},
                )?;
                scope += 1;
                Ok(())
            },
            |_, _, _| {},
        )?;
        resource += 1;
    }
    match first {
        None => Ok(spans),
        Some(first) => Err(RequestError::InvalidSpan { first, spans }),
    }
}
