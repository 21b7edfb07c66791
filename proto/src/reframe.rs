//! Build an `ExportTraceServiceRequest` from any set of span views, or an
//! `ExportLogsServiceRequest` / `ExportMetricsServiceRequest` from any set of [`Item`]s.
//!
//! Views are grouped by resource header, then scope header (by identity of the shared header
//! bytes, so views scanned from one request regroup exactly as they were); each group is written
//! once with fresh length prefixes, headers verbatim, and every span copied once. The sampler uses
//! this to emit the spans of sampled traces, which come from many requests.

use std::collections::HashMap;

use bytes::Bytes;

use crate::items::Item;
use crate::scan::{REQUEST_RESOURCE_SPANS, RESOURCE_SPANS_SCOPE_SPANS, SCOPE_SPANS_SPANS};
use crate::view::SpanView;
use crate::wire::{put_varint, varint_len};

/// Identity of a header: its address and length (headers are shared `Bytes`).
type Key = (usize, usize);

fn key(b: &Bytes) -> Key {
    (b.as_ptr() as usize, b.len())
}

#[derive(Debug)]
struct ScopeGroup<'a> {
    header: &'a [u8],
    spans: Vec<&'a [u8]>,
    /// Encoded length of header + span fields.
    body: usize,
}

#[derive(Debug)]
struct ResourceGroup<'a> {
    header: &'a [u8],
    scopes: Vec<ScopeGroup<'a>>,
}

/// Accumulates views, then writes them as one request.
#[derive(Debug, Default)]
pub struct RequestBuilder<'a> {
    resources: Vec<ResourceGroup<'a>>,
    /// (resource key, scope key) → (resource group, scope group).
    groups: HashMap<(Key, Key), (usize, usize)>,
    /// Resource key → resource group.
    res_groups: HashMap<Key, usize>,
    /// The last group used: consecutive views usually share it, which skips the hash lookups.
    last: Option<((Key, Key), (usize, usize))>,
    spans: usize,
}

impl<'a> RequestBuilder<'a> {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a span to the request.
    pub fn push(&mut self, view: &'a SpanView) {
        self.push_parts(
            view.resource_header(),
            view.scope_header(),
            view.span_slice(),
        );
    }

    /// Adds a log record or metric ([`Item`]) to the request: a builder holds items of one
    /// signal (the envelopes have the same field numbers, so the encoding is the same).
    pub fn push_item(&mut self, item: &'a Item) {
        self.push_parts(item.resource_header(), item.scope_header(), item.bytes());
    }

    /// Adds an item given as its resource header, scope header (grouped by identity of the shared
    /// bytes) and message.
    fn push_parts(&mut self, resource: &'a Bytes, scope: &'a Bytes, span: &'a [u8]) {
        let rk = key(resource);
        let sk = key(scope);
        let (r, s) = match self.last {
            Some((k, g)) if k == (rk, sk) => g,
            _ => self.group(resource, scope, rk, sk),
        };
        self.last = Some(((rk, sk), (r, s)));
        let scope = &mut self.resources[r].scopes[s];
        scope.body += 1 + varint_len(span.len() as u64) + span.len();
        scope.spans.push(span);
        self.spans += 1;
    }

    fn group(&mut self, resource: &'a Bytes, scope: &'a Bytes, rk: Key, sk: Key) -> (usize, usize) {
        if let Some(&g) = self.groups.get(&(rk, sk)) {
            return g;
        }
        let r = *self.res_groups.entry(rk).or_insert_with(|| {
            self.resources.push(ResourceGroup {
                header: resource,
                scopes: Vec::new(),
            });
            self.resources.len() - 1
        });
        let header: &'a [u8] = scope;
        let scopes = &mut self.resources[r].scopes;
        scopes.push(ScopeGroup {
            header,
            spans: Vec::new(),
            body: header.len(),
        });
        let g = (r, scopes.len() - 1);
        self.groups.insert((rk, sk), g);
        g
    }

    /// Number of spans (or items) added.
    pub fn span_count(&self) -> usize {
        self.spans
    }

    /// Encoded length of each resource group's body.
    fn resource_body(res: &ResourceGroup<'_>) -> usize {
        res.header.len()
            + res
                .scopes
                .iter()
                .map(|s| 1 + varint_len(s.body as u64) + s.body)
                .sum::<usize>()
    }

    /// Exact length of the encoded request.
    pub fn encoded_len(&self) -> usize {
        self.resources
            .iter()
            .map(|r| {
                let b = Self::resource_body(r);
                1 + varint_len(b as u64) + b
            })
            .sum()
    }

    /// Appends the encoded request to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.reserve(self.encoded_len());
        for res in &self.resources {
            out.push(((REQUEST_RESOURCE_SPANS << 3) | 2) as u8);
            put_varint(out, Self::resource_body(res) as u64);
            out.extend_from_slice(res.header);
            for scope in &res.scopes {
                out.push(((RESOURCE_SPANS_SCOPE_SPANS << 3) | 2) as u8);
                put_varint(out, scope.body as u64);
                out.extend_from_slice(scope.header);
                for span in &scope.spans {
                    out.push(((SCOPE_SPANS_SPANS << 3) | 2) as u8);
                    put_varint(out, span.len() as u64);
                    out.extend_from_slice(span);
                }
            }
        }
    }

    /// The encoded request.
    pub fn finish(&self) -> Bytes {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.write_to(&mut out);
        Bytes::from(out)
    }
}

/// Encodes `views` as one request, grouped by resource and scope.
pub fn reframe<'a>(views: impl IntoIterator<Item = &'a SpanView>) -> Bytes {
    let mut b = RequestBuilder::new();
    for v in views {
        b.push(v);
    }
    b.finish()
}

/// Encodes `items` (log records, or metrics, of any requests) as one request of their signal,
/// grouped by resource and scope.
pub fn reframe_items<'a>(items: impl IntoIterator<Item = &'a Item>) -> Bytes {
    let mut b = RequestBuilder::new();
    for i in items {
        b.push_item(i);
    }
    b.finish()
}
