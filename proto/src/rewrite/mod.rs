//! Rewrite a request in one pass: edit resource, scope, span and span event attributes, drop spans
//! and span events, and copy every byte nothing changed.
//!
//! # Why
//!
//! The agent's and gateway's processors (`attributes`, `resource`, `redaction`, `transform`,
//! `filter`) change a few attributes of some messages, or drop some spans. Decoding the request
//! with prost and encoding it again costs microseconds per span and loses every unknown field.
//! Here a [`TraceVisitor`] is shown each resource, scope, span and (if it asks) span event in
//! place, and answers with [`AttrEdits`] and a [`Verdict`]; only the messages whose bytes change
//! are written anew, and only the fields that change inside them:
//!
//! - an untouched span, scope or resource (and the request's own unknown fields) is copied byte
//!   for byte, including its unknown fields and field order, even its length prefix;
//! - a touched message keeps every other field verbatim and in place; its attribute list is
//!   rewritten as [`AttrEdits`] says; its length prefix, and those of every message up the chain,
//!   are recomputed (minimal varints);
//! - if nothing changes, the output equals the input byte for byte
//!   ([`RewriteStats::changed`] is false, so a caller may forward the input instead).
//!
//! Dropping spans re-frames the request without decoding anything: the dropped span's field is
//! not copied and the enclosing lengths shrink.
//!
//! # Example
//!
//! A filter and a redaction in one pass: drop health checks, remove `password` from every span,
//! mark every resource.
//!
//! ```
//! use tailgate_proto::attributes::AnyValue;
//! use tailgate_proto::rewrite::{
//!     AttrEdits, Prune, ResourceCtx, Rewriter, SpanCtx, TraceVisitor, Verdict,
//! };
//!
//! struct Agent;
//!
//! impl TraceVisitor for Agent {
//!     fn resource(&mut self, _: &ResourceCtx<'_>, edits: &mut AttrEdits) -> Verdict {
//!         edits.set("tailgate.agent", AnyValue::Bool(true));
//!         Verdict::Keep
//!     }
//!
//!     fn span(&mut self, span: &SpanCtx<'_>, edits: &mut AttrEdits) -> Verdict {
//!         if span.name() == b"GET /healthz" {
//!             return Verdict::Drop;
//!         }
//!         edits.delete("password");
//!         Verdict::Keep
//!     }
//! }
//!
//! # use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
//! # use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
//! # use prost::Message;
//! # fn main() -> Result<(), tailgate_proto::RewriteError> {
//! # let span = |name: &str| Span { trace_id: vec![1; 16], name: name.into(), ..Default::default() };
//! # let request = ExportTraceServiceRequest {
//! #     resource_spans: vec![ResourceSpans {
//! #         scope_spans: vec![ScopeSpans {
//! #             spans: vec![span("GET /healthz"), span("GET /cart")],
//! #             ..Default::default()
//! #         }],
//! #         ..Default::default()
//! #     }],
//! # }
//! # .encode_to_vec();
//! let mut rewriter = Rewriter::new().with_prune(Prune::AllEmpty);
//! let mut out = Vec::new();
//! let stats = rewriter.rewrite_traces(&request, &mut Agent, &mut out)?;
//! assert_eq!((stats.items_in, stats.items_out), (2, 1));
//! if stats.resources_out == 0 {
//!     // Nothing left: contrib's filter skips the export here.
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Empty scopes and resources
//!
//! Contrib's `filterprocessor` removes, after its pass, every `ScopeSpans` without spans and every
//! `ResourceSpans` without `ScopeSpans` (`RemoveIf(… ss.Spans().Len() == 0)` then
//! `RemoveIf(… rs.ScopeSpans().Len() == 0)`), including ones that were empty before it ran, and
//! skips the export when no resource is left. [`Prune::AllEmpty`] does exactly that, for the filter
//! processor. The default, [`Prune::Emptied`], removes only what this pass emptied, so a pass that
//! drops nothing returns its input unchanged; [`Prune::Never`] keeps empty groups.
//!
//! # What the visitor sees
//!
//! Levels are visited in request order, each before what it holds: a resource, then each of its
//! scopes, then each of that scope's spans, then (if [`TraceVisitor::visits_events`]) each of that
//! span's events. A scope or span sees its resource (and scope) **as rewritten**, so edits made at
//! the resource level are visible below, as they are when contrib's processors run one after
//! another. A resource or scope message given more than once on the wire is one message to prost
//! (the occurrences merge); the visitor sees them merged, and an edited one is written as one
//! field in place of the first occurrence.
//!
//! The envelope levels (request → resource → scope) are shared by the three signals (their field
//! numbers are the same); the item level is per signal. Traces are implemented; logs and metrics
//! add an item level (see `Items`).

mod edits;
mod traces;

pub use edits::{AttrEdits, Pending};
pub use traces::{EventCtx, SpanCtx, TraceVisitor};

use crate::attributes::{find_attribute, AnyValue, Attributes};
use crate::error::{RewriteError, ScanError};
use crate::scan::{REQUEST_RESOURCE_SPANS, RESOURCE_SPANS_SCOPE_SPANS, SCOPE_SPANS_SPANS};
use crate::wire::{Field, Fields, LEN};

use edits::{put_len_field, Action};

/// `ResourceSpans.resource`, `ScopeSpans.scope` (and their logs and metrics counterparts).
const GROUP_MESSAGE: u32 = 1;
/// `ResourceSpans.schema_url`, `ScopeSpans.schema_url`.
const GROUP_SCHEMA_URL: u32 = 3;
/// `Resource.attributes`.
const RESOURCE_ATTRIBUTES: u32 = 1;
/// `InstrumentationScope.name`, `.version`, `.attributes`.
const SCOPE_NAME: u32 = 1;
const SCOPE_VERSION: u32 = 2;
const SCOPE_ATTRIBUTES: u32 = 3;

/// What to do with the message just visited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verdict {
    /// Keep it (with the edits made).
    #[default]
    Keep,
    /// Drop it and everything it holds (edits made to it are ignored).
    Drop,
}

/// Which groups left without children are removed (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Prune {
    /// Keep every group that the visitor did not drop.
    Never,
    /// Remove a scope whose spans this pass all dropped, and a resource whose scopes this pass all
    /// removed: a pass that drops nothing changes no envelope.
    #[default]
    Emptied,
    /// Remove every scope without spans and every resource without scopes after the pass, empty
    /// before or not: contrib's `filterprocessor`.
    AllEmpty,
}

/// What one rewrite did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RewriteStats {
    /// Items (spans) in the input.
    pub items_in: usize,
    /// Items written to the output.
    pub items_out: usize,
    /// Span events dropped (events of dropped spans are not counted).
    pub events_dropped: usize,
    /// Scopes in the input that are not in the output (dropped or pruned).
    pub scopes_removed: usize,
    /// Resources in the input that are not in the output (dropped or pruned).
    pub resources_removed: usize,
    /// Resources in the output: 0 is the case contrib's filter skips the export for.
    pub resources_out: usize,
    /// Whether the output differs from the input (if not, it equals it byte for byte).
    pub changed: bool,
}

/// A resource as the visitor sees it: the (merged) `Resource` message, possibly as rewritten.
#[derive(Debug, Clone, Copy)]
pub struct ResourceCtx<'a> {
    msg: &'a [u8],
    base: usize,
    present: bool,
}

impl<'a> ResourceCtx<'a> {
    /// The encoded `Resource` message (empty when absent).
    pub fn bytes(&self) -> &'a [u8] {
        self.msg
    }

    /// Whether the `ResourceSpans` has a `resource` field.
    pub fn is_present(&self) -> bool {
        self.present
    }

    /// The resource's attributes, in wire order.
    pub fn attributes(&self) -> Attributes<'a> {
        Attributes::new(self.msg, self.base, RESOURCE_ATTRIBUTES)
    }

    /// The first resource attribute named `key`, if present and well-formed.
    pub fn attribute(&self, key: &str) -> Option<AnyValue<'a>> {
        find_attribute(self.msg, self.base, RESOURCE_ATTRIBUTES, key.as_bytes())
    }
}

/// A scope as the visitor sees it: the (merged) `InstrumentationScope` message, possibly as
/// rewritten, and its resource.
#[derive(Debug, Clone, Copy)]
pub struct ScopeCtx<'a> {
    resource: ResourceCtx<'a>,
    msg: &'a [u8],
    base: usize,
    present: bool,
}

impl<'a> ScopeCtx<'a> {
    /// The resource holding this scope.
    pub fn resource(&self) -> &ResourceCtx<'a> {
        &self.resource
    }

    /// The encoded `InstrumentationScope` message (empty when absent).
    pub fn bytes(&self) -> &'a [u8] {
        self.msg
    }

    /// Whether the `ScopeSpans` has a `scope` field.
    pub fn is_present(&self) -> bool {
        self.present
    }

    /// The scope name (empty if absent or malformed).
    pub fn name(&self) -> &'a [u8] {
        last_bytes_field(self.msg, self.base, SCOPE_NAME)
    }

    /// The scope version (empty if absent or malformed).
    pub fn version(&self) -> &'a [u8] {
        last_bytes_field(self.msg, self.base, SCOPE_VERSION)
    }

    /// The scope's attributes, in wire order.
    pub fn attributes(&self) -> Attributes<'a> {
        Attributes::new(self.msg, self.base, SCOPE_ATTRIBUTES)
    }

    /// The first scope attribute named `key`, if present and well-formed.
    pub fn attribute(&self, key: &str) -> Option<AnyValue<'a>> {
        find_attribute(self.msg, self.base, SCOPE_ATTRIBUTES, key.as_bytes())
    }
}

/// The payload of the last length-delimited field `number` of `msg` (protobuf: the last wins).
fn last_bytes_field(msg: &[u8], base: usize, number: u32) -> &[u8] {
    let mut out: &[u8] = &[];
    let mut fields = Fields::new(msg, base);
    while let Ok(Some(f)) = fields.next_field() {
        if f.number == number && f.wire_type == LEN {
            out = f.payload(msg);
        }
    }
    out
}

/// Reusable buffers of one envelope level.
#[derive(Debug, Default)]
struct GroupScratch {
    edits: AttrEdits,
    /// The occurrences of a message given more than once, concatenated (what prost merges).
    merged: Vec<u8>,
    /// The message as rewritten.
    rewritten: Vec<u8>,
}

/// Rewrites requests; holds the buffers reused from one request to the next.
#[derive(Debug)]
pub struct Rewriter {
    prune: Prune,
    max_output: usize,
    resource: GroupScratch,
    scope: GroupScratch,
    spans: traces::SpanScratch,
}

impl Default for Rewriter {
    fn default() -> Self {
        Self::new()
    }
}

impl Rewriter {
    /// A rewriter with [`Prune::Emptied`] and an output limit of 4 GiB − 1 (what the scanner's
    /// 32-bit offsets address).
    pub fn new() -> Self {
        Self {
            prune: Prune::default(),
            max_output: u32::MAX as usize,
            resource: GroupScratch::default(),
            scope: GroupScratch::default(),
            spans: traces::SpanScratch::default(),
        }
    }

    /// Sets which empty groups are removed.
    pub fn with_prune(mut self, prune: Prune) -> Self {
        self.prune = prune;
        self
    }

    /// Sets the largest output a rewrite may write before failing with
    /// [`RewriteError::TooLarge`].
    pub fn with_max_output(mut self, max_output: usize) -> Self {
        self.max_output = max_output;
        self
    }

    /// The output limit.
    pub fn max_output(&self) -> usize {
        self.max_output
    }

    /// Rewrites the `ExportTraceServiceRequest` `buf`, appending the result to `out`.
    ///
    /// Checks what it walks as [`crate::scan::count_spans`] does, and every span's known fields
    /// as [`crate::span::SpanFields::parse`] does; an attribute list or event is parsed only when
    /// edited or visited. On error `out` holds a partial request.
    pub fn rewrite_traces<V: TraceVisitor + ?Sized>(
        &mut self,
        buf: &[u8],
        visitor: &mut V,
        out: &mut Vec<u8>,
    ) -> Result<RewriteStats, RewriteError> {
        let settings = Settings {
            prune: self.prune,
            max_output: self.max_output,
            out_start: out.len(),
        };
        let mut items = traces::SpanItems::new(visitor, &mut self.spans);
        rewrite_request(
            buf,
            &mut items,
            settings,
            &mut self.resource,
            &mut self.scope,
            out,
        )
    }
}

/// The item level of one signal: visits the envelope levels' messages and rewrites items.
trait Items {
    /// Visits a resource.
    fn resource(&mut self, ctx: &ResourceCtx<'_>, edits: &mut AttrEdits) -> Verdict;
    /// Visits a scope.
    fn scope(&mut self, ctx: &ScopeCtx<'_>, edits: &mut AttrEdits) -> Verdict;
    /// Rewrites the item field `f` (offsets absolute in `buf`) to `out`; `None` drops it, else
    /// whether it changed.
    fn item(
        &mut self,
        buf: &[u8],
        f: &Field,
        scope: &ScopeCtx<'_>,
        out: &mut Vec<u8>,
        stats: &mut RewriteStats,
    ) -> Result<Option<bool>, RewriteError>;
}

/// What every level of one rewrite needs to know.
#[derive(Debug, Clone, Copy)]
struct Settings {
    prune: Prune,
    max_output: usize,
    /// Where this rewrite's output starts in the output buffer.
    out_start: usize,
}

/// A field with offsets made absolute in the whole buffer.
#[inline]
fn absolute(f: Field, base: usize) -> Field {
    Field {
        start: f.start + base,
        value_start: f.value_start + base,
        end: f.end + base,
        ..f
    }
}

/// The request level, shared by the signals: resources go through [`group`] twice nested (resource,
/// then scope), whose children are `items`; every other field of the request is copied. A request
/// over 4 GiB is refused as the scanner refuses it.
fn rewrite_request<I: Items>(
    buf: &[u8],
    items: &mut I,
    settings: Settings,
    resource_scratch: &mut GroupScratch,
    scope_scratch: &mut GroupScratch,
    out: &mut Vec<u8>,
) -> Result<RewriteStats, RewriteError> {
    if u32::try_from(buf.len()).is_err() {
        return Err(ScanError::new(crate::error::ScanErrorKind::TooLarge, 0).into());
    }
    let mut stats = RewriteStats::default();
    let mut fields = Fields::new(buf, 0);
    while let Some(f) = fields.next_field()? {
        if f.number != REQUEST_RESOURCE_SPANS {
            out.extend_from_slice(&buf[f.start..f.end]);
            continue;
        }
        f.expect(LEN, 0)?;
        let kept = group(
            buf,
            &f,
            Level::Resource,
            resource_scratch,
            settings,
            items,
            out,
            &mut stats,
            |items: &mut I, msg, base, present, edits| {
                items.resource(&ResourceCtx { msg, base, present }, edits)
            },
            |items: &mut I, g, msg, base, present, out, stats| {
                let resource = ResourceCtx { msg, base, present };
                let kept = group(
                    buf,
                    g,
                    Level::Scope,
                    scope_scratch,
                    settings,
                    items,
                    out,
                    stats,
                    |items: &mut I, msg, base, present, edits| {
                        let scope = ScopeCtx {
                            resource,
                            msg,
                            base,
                            present,
                        };
                        items.scope(&scope, edits)
                    },
                    |items: &mut I, g, msg, base, present, out, stats| {
                        let scope = ScopeCtx {
                            resource,
                            msg,
                            base,
                            present,
                        };
                        items.item(buf, g, &scope, out, stats)
                    },
                )?;
                if kept.is_none() {
                    stats.scopes_removed += 1;
                }
                Ok(kept)
            },
        )?;
        match kept {
            Some(changed) => {
                stats.changed |= changed;
                stats.resources_out += 1;
            }
            None => {
                stats.changed = true;
                stats.resources_removed += 1;
            }
        }
        check_size(out, settings)?;
    }
    Ok(stats)
}

/// Fails once this rewrite's output is over the limit.
#[inline]
fn check_size(out: &[u8], settings: Settings) -> Result<(), RewriteError> {
    let len = out.len() - settings.out_start;
    if len > settings.max_output {
        return Err(RewriteError::TooLarge {
            len,
            limit: settings.max_output,
        });
    }
    Ok(())
}

/// Which envelope level [`group`] walks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Resource,
    Scope,
}

impl Level {
    /// The field number of its children (scopes, items).
    fn child_field(self) -> u32 {
        match self {
            Level::Resource => RESOURCE_SPANS_SCOPE_SPANS,
            Level::Scope => SCOPE_SPANS_SPANS,
        }
    }

    /// The attribute list's field number in its message.
    fn attributes_field(self) -> u32 {
        match self {
            Level::Resource => RESOURCE_ATTRIBUTES,
            Level::Scope => SCOPE_ATTRIBUTES,
        }
    }
}

/// Where a group's message (`resource`/`scope`) lies, and how many children it has.
#[derive(Debug, Default)]
struct Occurrences {
    /// Occurrences of the message field.
    count: usize,
    /// The first one's payload.
    first: (usize, usize),
    /// Children (scopes or items).
    children: usize,
}

/// Walks a group once to check it and find its message's occurrences, before the visitor runs.
fn occurrences(body: &[u8], base: usize, level: Level) -> Result<Occurrences, ScanError> {
    let mut occ = Occurrences::default();
    let mut fields = Fields::new(body, base);
    while let Some(g) = fields.next_field()? {
        if g.number == level.child_field() {
            g.expect(LEN, base)?;
            occ.children += 1;
        } else if g.number == GROUP_MESSAGE || g.number == GROUP_SCHEMA_URL {
            g.expect(LEN, base)?;
            if g.number == GROUP_MESSAGE {
                if occ.count == 0 {
                    occ.first = (base + g.value_start, base + g.end);
                }
                occ.count += 1;
            }
        }
    }
    Ok(occ)
}

/// Rewrites the ResourceSpans or ScopeSpans field `f` (`level`) to `out`: `None` when it is
/// removed, else whether it changed. `visit(items, message, base, present, edits)` is the
/// visitor's call for the group's message; `child(items, field, message, base, present, out,
/// stats)` rewrites one child given the message as rewritten.
#[allow(clippy::too_many_arguments)]
fn group<I>(
    buf: &[u8],
    f: &Field,
    level: Level,
    scratch: &mut GroupScratch,
    settings: Settings,
    items: &mut I,
    out: &mut Vec<u8>,
    stats: &mut RewriteStats,
    visit: impl FnOnce(&mut I, &[u8], usize, bool, &mut AttrEdits) -> Verdict,
    mut child: impl FnMut(
        &mut I,
        &Field,
        &[u8],
        usize,
        bool,
        &mut Vec<u8>,
        &mut RewriteStats,
    ) -> Result<Option<bool>, RewriteError>,
) -> Result<Option<bool>, RewriteError> {
    let body = &buf[f.value_start..f.end];
    let base = f.value_start;
    let occ = occurrences(body, base, level)?;
    let GroupScratch {
        edits,
        merged,
        rewritten,
    } = scratch;
    let msg: &[u8] = match occ.count {
        0 => &[],
        1 => &buf[occ.first.0..occ.first.1],
        _ => {
            merged.clear();
            let mut fields = Fields::new(body, base);
            while let Some(g) = fields.next_field()? {
                if g.number == GROUP_MESSAGE {
                    merged.extend_from_slice(g.payload(body));
                }
            }
            merged
        }
    };
    let msg_base = occ.first.0;
    edits.clear();
    if visit(items, msg, msg_base, occ.count > 0, edits) == Verdict::Drop {
        count_removed(buf, f, level, stats)?;
        return Ok(None);
    }
    // Rewrite the message if edited, and keep the rewrite only if it differs.
    let mut msg_changed = false;
    if !edits.is_empty() && (occ.count > 0 || edits.adds_to_empty()) {
        rewritten.clear();
        msg_changed = edits.apply(msg, msg_base, level.attributes_field(), rewritten, |_| {
            Action::Copy
        })?;
    }
    let (view, present): (&[u8], bool) = if msg_changed {
        (rewritten, true)
    } else {
        (msg, occ.count > 0)
    };

    // Write the group: its message in place of the first occurrence (first, when it had none),
    // children rewritten, every other field verbatim.
    let mark = open(out, &buf[f.start..f.value_start]);
    let mut changed = msg_changed;
    let mut wrote_msg = false;
    if msg_changed && occ.count == 0 {
        put_len_field(out, GROUP_MESSAGE, view);
        wrote_msg = true;
    }
    let mut children_out = 0usize;
    let mut fields = Fields::new(body, base);
    while let Some(g) = fields.next_field()? {
        let g = absolute(g, base);
        if g.number == level.child_field() {
            match child(items, &g, view, msg_base, present, out, stats)? {
                Some(c) => {
                    children_out += 1;
                    changed |= c;
                }
                None => changed = true,
            }
            check_size(out, settings)?;
        } else if g.number == GROUP_MESSAGE && msg_changed {
            if !wrote_msg {
                put_len_field(out, GROUP_MESSAGE, view);
                wrote_msg = true;
            }
        } else {
            out.extend_from_slice(&buf[g.start..g.end]);
        }
    }
    let remove = match settings.prune {
        Prune::Never => false,
        Prune::Emptied => occ.children > 0 && children_out == 0,
        Prune::AllEmpty => children_out == 0,
    };
    if remove {
        out.truncate(mark.at);
        return Ok(None);
    }
    close(out, mark, f.number, changed);
    Ok(Some(changed))
}

/// Counts what a dropped group held into `stats`.
fn count_removed(
    buf: &[u8],
    f: &Field,
    level: Level,
    stats: &mut RewriteStats,
) -> Result<(), ScanError> {
    let body = &buf[f.value_start..f.end];
    let mut fields = Fields::new(body, f.value_start);
    while let Some(g) = fields.next_field()? {
        match level {
            Level::Resource if g.number == RESOURCE_SPANS_SCOPE_SPANS => {
                stats.scopes_removed += 1;
                count_removed(buf, &absolute(g, f.value_start), Level::Scope, stats)?;
            }
            Level::Scope if g.number == SCOPE_SPANS_SPANS => {
                g.expect(LEN, f.value_start)?;
                stats.items_in += 1;
            }
            _ => {}
        }
    }
    Ok(())
}

/// A length-delimited field being written: where its tag starts and how long its original tag and
/// length were.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mark {
    at: usize,
    header_len: usize,
}

/// Starts writing a message field, with its original tag and length (`header`) as placeholder.
#[inline]
pub(crate) fn open(out: &mut Vec<u8>, header: &[u8]) -> Mark {
    let at = out.len();
    out.extend_from_slice(header);
    Mark {
        at,
        header_len: header.len(),
    }
}

/// Finishes a message field opened with [`open`]: if its body changed, writes a fresh tag and
/// length (moving the body when the length's size differs); if not, the body is the original and
/// so is the placeholder, which stays.
#[inline]
pub(crate) fn close(out: &mut Vec<u8>, mark: Mark, number: u32, changed: bool) {
    if !changed {
        return;
    }
    let body_start = mark.at + mark.header_len;
    let len = out.len() - body_start;
    let mut header = [0u8; 20];
    let mut n = put_varint_at(&mut header, 0, (u64::from(number) << 3) | u64::from(LEN));
    n = put_varint_at(&mut header, n, len as u64);
    if n != mark.header_len {
        let body_end = out.len();
        if n > mark.header_len {
            out.resize(body_end + (n - mark.header_len), 0);
        }
        out.copy_within(body_start..body_end, mark.at + n);
        out.truncate(mark.at + n + len);
    }
    out[mark.at..mark.at + n].copy_from_slice(&header[..n]);
}

/// Writes `v` as a varint at `buf[at..]` (which has room: at most 10 bytes), returning the
/// position after it.
#[inline]
fn put_varint_at(buf: &mut [u8; 20], mut at: usize, mut v: u64) -> usize {
    while v >= 0x80 {
        buf[at] = (v as u8) | 0x80;
        v >>= 7;
        at += 1;
    }
    buf[at] = v as u8;
    at + 1
}
