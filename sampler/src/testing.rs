//! Test helpers: an owned span type and a hand-driven clock.
//!
//! Public so that integration tests, benches and the proxy's tests can use them; they are small
//! and never used on the hot path of the real pipeline.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;

use crate::clock::Clock;
use crate::span::{AttrValue, BufferRef, SpanData, SpanKind, StatusCode};

/// An owned attribute value for [`TestSpan`].
#[derive(Debug, Clone, PartialEq)]
pub enum OwnedValue {
    /// A string.
    Str(String),
    /// A bool.
    Bool(bool),
    /// An int.
    Int(i64),
    /// A double.
    Double(f64),
    /// Bytes.
    Bytes(Vec<u8>),
}

impl OwnedValue {
    fn borrow(&self) -> AttrValue<'_> {
        match self {
            OwnedValue::Str(s) => AttrValue::Str(s),
            OwnedValue::Bool(b) => AttrValue::Bool(*b),
            OwnedValue::Int(i) => AttrValue::Int(*i),
            OwnedValue::Double(d) => AttrValue::Double(*d),
            OwnedValue::Bytes(b) => AttrValue::Bytes(b),
        }
    }
}

/// Attributes as a list of key/value pairs.
pub type Attrs = Vec<(String, OwnedValue)>;

/// An owned span implementing [`SpanData`]; resource attributes are shared like a real request's.
#[derive(Debug, Clone, PartialEq)]
pub struct TestSpan {
    /// Trace ID.
    pub trace_id: [u8; 16],
    /// Span ID.
    pub span_id: [u8; 8],
    /// Parent span ID; all zeros for a root.
    pub parent_span_id: [u8; 8],
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: SpanKind,
    /// Start, Unix ns.
    pub start: u64,
    /// End, Unix ns.
    pub end: u64,
    /// Status.
    pub status: StatusCode,
    /// W3C trace flags.
    pub flags: u32,
    /// Raw tracestate.
    pub trace_state: String,
    /// Span attributes.
    pub attrs: Attrs,
    /// Resource attributes (shared by the spans of one resource).
    pub resource: Arc<Attrs>,
    /// Scope attributes.
    pub scope: Arc<Attrs>,
    /// Encoded size.
    pub wire_len: usize,
    /// The buffer the span pins (a test can make several spans share one).
    pub buffer: BufferRef,
}

impl TestSpan {
    /// A child span of `trace` with a 225-byte wire size in its own buffer, times in ns.
    pub fn new(trace: u128, span: u64, start: u64, end: u64) -> Self {
        TestSpan {
            trace_id: trace.to_be_bytes(),
            span_id: span.to_be_bytes(),
            parent_span_id: 1u64.to_be_bytes(),
            name: "span".to_string(),
            kind: SpanKind::Internal,
            start,
            end,
            status: StatusCode::Unset,
            flags: 0,
            trace_state: String::new(),
            attrs: Vec::new(),
            resource: Arc::new(Vec::new()),
            scope: Arc::new(Vec::new()),
            wire_len: 225,
            buffer: BufferRef {
                id: (trace as u64) ^ (span << 32) ^ 0x9e37_79b9,
                len: 225,
            },
        }
    }

    /// Makes this span a root (no parent).
    pub fn root(mut self) -> Self {
        self.parent_span_id = [0; 8];
        self
    }

    /// Sets the status.
    pub fn status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// Adds a span attribute.
    pub fn attr(mut self, key: &str, value: OwnedValue) -> Self {
        self.attrs.push((key.to_string(), value));
        self
    }

    /// Adds a resource attribute (copy-on-write of the shared list).
    pub fn resource_attr(mut self, key: &str, value: OwnedValue) -> Self {
        Arc::make_mut(&mut self.resource).push((key.to_string(), value));
        self
    }

    /// Sets the buffer this span pins.
    pub fn in_buffer(mut self, id: u64, len: usize) -> Self {
        self.buffer = BufferRef { id, len };
        self
    }
}

fn lookup<'a>(attrs: &'a Attrs, key: &str) -> Option<AttrValue<'a>> {
    attrs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.borrow())
}

impl SpanData for TestSpan {
    fn trace_id(&self) -> [u8; 16] {
        self.trace_id
    }
    fn span_id(&self) -> [u8; 8] {
        self.span_id
    }
    fn parent_span_id(&self) -> &[u8] {
        &self.parent_span_id
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> SpanKind {
        self.kind
    }
    fn start_unix_nanos(&self) -> u64 {
        self.start
    }
    fn end_unix_nanos(&self) -> u64 {
        self.end
    }
    fn status_code(&self) -> StatusCode {
        self.status
    }
    fn trace_flags(&self) -> u32 {
        self.flags
    }
    fn trace_state(&self) -> &str {
        &self.trace_state
    }
    fn span_attribute(&self, key: &str) -> Option<AttrValue<'_>> {
        lookup(&self.attrs, key)
    }
    fn resource_attribute(&self, key: &str) -> Option<AttrValue<'_>> {
        lookup(&self.resource, key)
    }
    fn scope_attribute(&self, key: &str) -> Option<AttrValue<'_>> {
        lookup(&self.scope, key)
    }
    fn wire_len(&self) -> usize {
        self.wire_len
    }
    fn buffer(&self) -> BufferRef {
        self.buffer
    }
    fn detach(&self) -> Self {
        let mut copy = self.clone();
        // A detached span owns exactly its own bytes; derive a distinct identity from the span.
        copy.buffer = BufferRef {
            id: u64::from_be_bytes(self.span_id)
                ^ 0xdead_beef_0000_0000
                ^ self.buffer.id.rotate_left(17),
            len: self.wire_len,
        };
        copy
    }
}

/// A clock driven by hand; clones share the same time.
#[derive(Debug, Clone, Default)]
pub struct FakeClock {
    now: Rc<Cell<u64>>,
}

impl FakeClock {
    /// A clock at `start_ns`.
    pub fn at(start_ns: u64) -> Self {
        FakeClock {
            now: Rc::new(Cell::new(start_ns)),
        }
    }

    /// Moves time forward.
    pub fn advance_ns(&self, ns: u64) {
        self.now.set(self.now.get().saturating_add(ns));
    }

    /// Moves time forward by milliseconds.
    pub fn advance_ms(&self, ms: u64) {
        self.advance_ns(ms.saturating_mul(1_000_000));
    }
}

impl Clock for FakeClock {
    fn now_unix_nanos(&self) -> u64 {
        self.now.get()
    }
}
