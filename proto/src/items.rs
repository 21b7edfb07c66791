//! Owned items of a logs or metrics request: a log record or metric as a slice of its request
//! buffer, with its resource and scope headers, so items of many requests can be held and
//! re-framed ([`crate::reframe::reframe_items`]) as the gateway's span views are. The walk is the
//! structural one of [`crate::scan`] (items are not entered: check them at the receiver with
//! [`crate::logs::check_log_records`] / [`crate::metrics::check_metrics`]).

use bytes::Bytes;

use crate::error::ScanError;
use crate::scan::Index;
use crate::view::header_bytes;

/// One log record or metric of a request, owning a reference to the request buffer.
#[derive(Debug, Clone)]
pub struct Item {
    resource: Bytes,
    scope: Bytes,
    bytes: Bytes,
}

impl Item {
    /// The encoded LogRecord or Metric message (a slice of the request buffer).
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The resource header (ResourceLogs/ResourceMetrics without its scopes), shared by the
    /// request's items of that resource.
    pub fn resource_header(&self) -> &Bytes {
        &self.resource
    }

    /// The scope header (ScopeLogs/ScopeMetrics without its items), shared likewise.
    pub fn scope_header(&self) -> &Bytes {
        &self.scope
    }
}

/// The items of a logs or metrics request (or the spans of a trace request, as raw items), in
/// request order. Headers are slices of `buf` when contiguous (the usual case), else one copy per
/// header shared by its items.
pub fn items(buf: &Bytes) -> Result<Vec<Item>, ScanError> {
    let mut index = Index::default();
    index.build(buf)?;
    let resources: Vec<Bytes> = index
        .resources
        .iter()
        .map(|r| header_bytes(buf, &r.header))
        .collect();
    let mut out = Vec::with_capacity(index.spans.len());
    for scope in &index.scopes {
        let header = header_bytes(buf, &scope.header);
        let resource = &resources[scope.resource as usize];
        for loc in &index.spans[scope.spans.start as usize..scope.spans.end as usize] {
            out.push(Item {
                resource: resource.clone(),
                scope: header.clone(),
                bytes: buf.slice(loc.start as usize..loc.end as usize),
            });
        }
    }
    Ok(out)
}
