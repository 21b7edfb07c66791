//! The span and span event level of a trace rewrite.

use std::ops::Range;

use super::edits::Action;
use super::{close, open, AttrEdits, Items, ResourceCtx, RewriteStats, ScopeCtx, Verdict};
use crate::attributes::{find_attribute, AnyValue, Attributes};
use crate::error::{RewriteError, ScanError};
use crate::span::{SpanFields, SpanKind, SpanRef, StatusCode};
use crate::wire::{Field, Fields, FIXED64, LEN, VARINT};

/// `Span.attributes`, `Span.events`.
const SPAN_ATTRIBUTES: u32 = 9;
const SPAN_EVENTS: u32 = 11;
/// `Span.Event.time_unix_nano`, `.name`, `.attributes`, `.dropped_attributes_count`.
const EVENT_TIME: u32 = 1;
const EVENT_NAME: u32 = 2;
const EVENT_ATTRIBUTES: u32 = 3;
const EVENT_DROPPED_ATTRIBUTES: u32 = 4;

/// What a trace rewrite asks at each level. Every method has a default that keeps the message
/// unedited, so a visitor implements only the levels it works on.
pub trait TraceVisitor {
    /// Visits a resource: edits go to its attributes; [`Verdict::Drop`] drops the
    /// `ResourceSpans` with everything in it (its scopes and spans are not visited).
    fn resource(&mut self, _resource: &ResourceCtx<'_>, _edits: &mut AttrEdits) -> Verdict {
        Verdict::Keep
    }

    /// Visits a scope (its resource as rewritten is [`ScopeCtx::resource`]): edits go to the
    /// scope's attributes; [`Verdict::Drop`] drops the `ScopeSpans`.
    fn scope(&mut self, _scope: &ScopeCtx<'_>, _edits: &mut AttrEdits) -> Verdict {
        Verdict::Keep
    }

    /// Visits a span: edits go to its attributes; [`Verdict::Drop`] drops it (its events are
    /// not visited).
    fn span(&mut self, _span: &SpanCtx<'_>, _edits: &mut AttrEdits) -> Verdict {
        Verdict::Keep
    }

    /// Whether [`TraceVisitor::event`] is to be called (asked once per request): a visitor that
    /// never looks at events spares the walk over them.
    fn visits_events(&self) -> bool {
        false
    }

    /// Visits an event of a kept span: edits go to the event's attributes; [`Verdict::Drop`]
    /// drops it. As contrib's filter does, `dropped_events_count` is left as it was.
    fn event(&mut self, _event: &EventCtx<'_>, _edits: &mut AttrEdits) -> Verdict {
        Verdict::Keep
    }
}

/// A span as the visitor sees it, with its scope and resource.
#[derive(Debug, Clone, Copy)]
pub struct SpanCtx<'a> {
    scope: ScopeCtx<'a>,
    span: SpanRef<'a>,
    fields: SpanFields,
}

impl<'a> SpanCtx<'a> {
    /// The scope holding the span (as rewritten).
    pub fn scope(&self) -> &ScopeCtx<'a> {
        &self.scope
    }

    /// The resource holding the span (as rewritten).
    pub fn resource(&self) -> &ResourceCtx<'a> {
        self.scope.resource()
    }

    /// The span, borrowed from the input.
    pub fn span(&self) -> &SpanRef<'a> {
        &self.span
    }

    /// The span's hot fields (ids, times, kind, status code, flags).
    pub fn fields(&self) -> &SpanFields {
        &self.fields
    }

    /// The span name.
    pub fn name(&self) -> &'a [u8] {
        self.fields.name_in(self.span.bytes())
    }

    /// The span kind.
    pub fn kind(&self) -> SpanKind {
        self.fields.span_kind()
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.fields.status()
    }

    /// Start time, Unix nanoseconds.
    pub fn start_time_unix_nano(&self) -> u64 {
        self.fields.start_time_unix_nano
    }

    /// End time, Unix nanoseconds.
    pub fn end_time_unix_nano(&self) -> u64 {
        self.fields.end_time_unix_nano
    }

    /// The span's attributes, in wire order (as in the input: the visitor's edits are not
    /// applied yet).
    pub fn attributes(&self) -> Attributes<'a> {
        self.span.attributes()
    }

    /// The first span attribute named `key`, if present and well-formed.
    pub fn attribute(&self, key: &str) -> Option<AnyValue<'a>> {
        self.span.attribute(key)
    }
}

/// A span event as the visitor sees it, with its span.
#[derive(Debug, Clone, Copy)]
pub struct EventCtx<'a> {
    span: SpanCtx<'a>,
    msg: &'a [u8],
    base: usize,
    name: &'a [u8],
    time_unix_nano: u64,
}

impl<'a> EventCtx<'a> {
    /// The span holding the event (as in the input: the span's own edits are not applied).
    pub fn span(&self) -> &SpanCtx<'a> {
        &self.span
    }

    /// The event name.
    pub fn name(&self) -> &'a [u8] {
        self.name
    }

    /// The event time, Unix nanoseconds.
    pub fn time_unix_nano(&self) -> u64 {
        self.time_unix_nano
    }

    /// The encoded `Span.Event` message.
    pub fn bytes(&self) -> &'a [u8] {
        self.msg
    }

    /// The event's attributes, in wire order.
    pub fn attributes(&self) -> Attributes<'a> {
        Attributes::new(self.msg, self.base, EVENT_ATTRIBUTES)
    }

    /// The first event attribute named `key`, if present and well-formed.
    pub fn attribute(&self, key: &str) -> Option<AnyValue<'a>> {
        find_attribute(self.msg, self.base, EVENT_ATTRIBUTES, key.as_bytes())
    }
}

/// What becomes of one event of a span being rewritten.
#[derive(Debug, Clone)]
enum EventFate {
    Keep,
    Drop,
    /// Rewritten: the new message, in [`SpanScratch::event_bytes`].
    Rewritten(Range<usize>),
}

/// Buffers of the span level, kept between requests.
#[derive(Debug, Default)]
pub(super) struct SpanScratch {
    edits: AttrEdits,
    event_edits: AttrEdits,
    events: Vec<EventFate>,
    event_bytes: Vec<u8>,
}

/// The trace item level: a visitor and the span buffers.
pub(super) struct SpanItems<'v, V: ?Sized> {
    visitor: &'v mut V,
    scratch: &'v mut SpanScratch,
    events: bool,
}

impl<'v, V: TraceVisitor + ?Sized> SpanItems<'v, V> {
    pub(super) fn new(visitor: &'v mut V, scratch: &'v mut SpanScratch) -> Self {
        let events = visitor.visits_events();
        Self {
            visitor,
            scratch,
            events,
        }
    }
}

impl<V: TraceVisitor + ?Sized> Items for SpanItems<'_, V> {
    fn resource(&mut self, ctx: &ResourceCtx<'_>, edits: &mut AttrEdits) -> Verdict {
        self.visitor.resource(ctx, edits)
    }

    fn scope(&mut self, ctx: &ScopeCtx<'_>, edits: &mut AttrEdits) -> Verdict {
        self.visitor.scope(ctx, edits)
    }

    fn item(
        &mut self,
        buf: &[u8],
        f: &Field,
        scope: &ScopeCtx<'_>,
        out: &mut Vec<u8>,
        stats: &mut RewriteStats,
    ) -> Result<Option<bool>, RewriteError> {
        stats.items_in += 1;
        let bytes = &buf[f.value_start..f.end];
        let base = f.value_start;
        let ctx = SpanCtx {
            scope: *scope,
            span: SpanRef::new(bytes, base),
            fields: SpanFields::parse(bytes, base)?,
        };
        let s = &mut *self.scratch;
        s.edits.clear();
        if self.visitor.span(&ctx, &mut s.edits) == Verdict::Drop {
            return Ok(None);
        }
        stats.items_out += 1;
        let events_changed = self.events && visit_events(&mut *self.visitor, &ctx, s, stats)?;
        if s.edits.is_empty() && !events_changed {
            out.extend_from_slice(&buf[f.start..f.end]);
            return Ok(Some(false));
        }
        let mark = open(out, &buf[f.start..f.value_start]);
        let mut next_event = 0usize;
        let (fates, event_bytes) = (&s.events, &s.event_bytes);
        let changed = s.edits.apply(bytes, base, SPAN_ATTRIBUTES, out, |g| {
            if g.number != SPAN_EVENTS || !events_changed {
                return Action::Copy;
            }
            let fate = fates.get(next_event).cloned().unwrap_or(EventFate::Keep);
            next_event += 1;
            match fate {
                EventFate::Keep => Action::Copy,
                EventFate::Drop => Action::Drop,
                EventFate::Rewritten(r) => Action::Replace(&event_bytes[r]),
            }
        })?;
        close(out, mark, f.number, changed);
        Ok(Some(changed))
    }
}

/// Shows the visitor every event of the span; records each one's fate in `s.events` (rewritten
/// events in `s.event_bytes`). Returns whether any event changes.
fn visit_events<V: TraceVisitor + ?Sized>(
    visitor: &mut V,
    span: &SpanCtx<'_>,
    s: &mut SpanScratch,
    stats: &mut RewriteStats,
) -> Result<bool, ScanError> {
    s.events.clear();
    s.event_bytes.clear();
    let bytes = span.span.bytes();
    let base = span.fields_base();
    let mut any = false;
    let mut fields = Fields::new(bytes, base);
    while let Some(f) = fields.next_field()? {
        if f.number != SPAN_EVENTS {
            continue;
        }
        let msg = f.payload(bytes);
        let msg_base = base + f.value_start;
        let (name, time_unix_nano) = event_fields(msg, msg_base)?;
        let ctx = EventCtx {
            span: *span,
            msg,
            base: msg_base,
            name,
            time_unix_nano,
        };
        s.event_edits.clear();
        let fate = if visitor.event(&ctx, &mut s.event_edits) == Verdict::Drop {
            stats.events_dropped += 1;
            EventFate::Drop
        } else if s.event_edits.is_empty() {
            EventFate::Keep
        } else {
            let start = s.event_bytes.len();
            let changed =
                s.event_edits
                    .apply(msg, msg_base, EVENT_ATTRIBUTES, &mut s.event_bytes, |_| {
                        Action::Copy
                    })?;
            if changed {
                EventFate::Rewritten(start..s.event_bytes.len())
            } else {
                s.event_bytes.truncate(start);
                EventFate::Keep
            }
        };
        any |= !matches!(fate, EventFate::Keep);
        s.events.push(fate);
    }
    Ok(any)
}

/// Reads an event's name and time, checking the wire types of its known fields as prost does.
fn event_fields(msg: &[u8], base: usize) -> Result<(&[u8], u64), ScanError> {
    let mut name: &[u8] = &[];
    let mut time = 0;
    let mut fields = Fields::new(msg, base);
    while let Some(f) = fields.next_field()? {
        match f.number {
            EVENT_TIME => {
                f.expect(FIXED64, base)?;
                time = f.fixed64(msg);
            }
            EVENT_NAME => {
                f.expect(LEN, base)?;
                name = f.payload(msg);
            }
            EVENT_ATTRIBUTES => f.expect(LEN, base)?,
            EVENT_DROPPED_ATTRIBUTES => f.expect(VARINT, base)?,
            _ => {}
        }
    }
    Ok((name, time))
}

impl SpanCtx<'_> {
    /// Absolute offset of the span message in the request.
    fn fields_base(&self) -> usize {
        self.span.base()
    }
}
