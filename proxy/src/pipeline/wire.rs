//! Span counting (and the receivers' check) and splitting of OTLP trace requests for the
//! pipeline, on `tailgate-proto`'s scanner (`count_spans`, `check_spans`) and splitter: one piece of wire code for the receivers, the batch
//! processor and the rest of the crate. Splitting copies each span once and keeps every other
//! field (resource, scope, schema_url, unknown fields) byte for byte.

use bytes::Bytes;

/// Why a body is not a well-formed `ExportTraceServiceRequest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireError {
    /// Byte offset in the body where walking failed.
    pub at: usize,
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed protobuf at byte {}", self.at)
    }
}

impl From<tailgate_proto::ScanError> for WireError {
    fn from(e: tailgate_proto::ScanError) -> Self {
        WireError { at: e.at }
    }
}

/// Counts the spans of a request.
pub fn count_spans(body: &[u8]) -> Result<u64, WireError> {
    Ok(tailgate_proto::count_spans(body)? as u64)
}

pub use tailgate_proto::RequestError;

/// The receivers' one walk of a request: counts its spans and checks every span as the
/// collector's pdata does when it unmarshals (trace ids 0 or 16 bytes, span ids 0 or 8, links'
/// too, wire types). A request holding a bad span is refused whole, as the collector refuses it;
/// the error names the first bad span and says how many spans the request holds.
pub fn check_spans(body: &[u8]) -> Result<u64, RequestError> {
    Ok(tailgate_proto::check_spans(body)? as u64)
}

/// Splits a request into requests of at most `max` spans each (in order), grouped under their
/// original resource and scope.
pub fn split(body: &[u8], max: u64) -> Result<Vec<(Bytes, u64)>, WireError> {
    let max = max.max(1);
    let total = count_spans(body)?;
    let parts = usize::try_from(total.div_ceil(max)).map_err(|_| WireError { at: 0 })?;
    let mut next = 0u64;
    let bodies = tailgate_proto::split(body, parts, |_| {
        let part = next / max;
        next += 1;
        part as usize
    })?;
    Ok(bodies
        .into_iter()
        .zip(0u64..)
        .map(|(b, k)| (b, max.min(total - k * max)))
        .collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use prost::Message;

    fn request(shape: &[&[usize]]) -> ExportTraceServiceRequest {
        let mut id = 0u8;
        ExportTraceServiceRequest {
            resource_spans: shape
                .iter()
                .map(|scopes| ResourceSpans {
                    resource: None,
                    scope_spans: scopes
                        .iter()
                        .enumerate()
                        .map(|(i, n)| ScopeSpans {
                            scope: Some(InstrumentationScope {
                                name: format!("s{i}"),
                                ..Default::default()
                            }),
                            spans: (0..*n)
                                .map(|_| {
                                    id += 1;
                                    Span {
                                        name: format!("span{id}"),
                                        trace_id: vec![id; 16],
                                        ..Default::default()
                                    }
                                })
                                .collect(),
                            schema_url: "u".into(),
                        })
                        .collect(),
                    schema_url: String::new(),
                })
                .collect(),
        }
    }

    fn names(r: &ExportTraceServiceRequest) -> Vec<(String, String)> {
        r.resource_spans
            .iter()
            .flat_map(|rs| rs.scope_spans.iter())
            .flat_map(|ss| {
                ss.spans
                    .iter()
                    .map(move |s| (ss.scope.as_ref().unwrap().name.clone(), s.name.clone()))
            })
            .collect()
    }

    #[test]
    fn counts_and_splits_preserving_grouping() {
        let req = request(&[&[3, 2], &[4]]);
        let body = req.encode_to_vec();
        assert_eq!(count_spans(&body).unwrap(), 9);
        let parts = split(&body, 4).unwrap();
        assert_eq!(parts.iter().map(|p| p.1).collect::<Vec<_>>(), vec![4, 4, 1]);
        let mut all = Vec::new();
        for (b, n) in &parts {
            let r = ExportTraceServiceRequest::decode(b.as_ref()).unwrap();
            assert_eq!(names(&r).len() as u64, *n);
            all.extend(names(&r));
        }
        assert_eq!(all, names(&req));
    }

    #[test]
    fn concatenation_merges_requests() {
        let a = request(&[&[2]]).encode_to_vec();
        let b = request(&[&[1, 1]]).encode_to_vec();
        let joined = [a, b].concat();
        assert_eq!(count_spans(&joined).unwrap(), 4);
        assert_eq!(
            ExportTraceServiceRequest::decode(joined.as_slice())
                .unwrap()
                .resource_spans
                .len(),
            2
        );
    }

    #[test]
    fn rejects_truncated_input_without_panicking() {
        let body = request(&[&[3]]).encode_to_vec();
        for cut in 1..body.len() {
            let _ = count_spans(&body[..cut]);
        }
        assert!(count_spans(&body[..body.len() - 1]).is_err());
        assert!(count_spans(&[0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]).is_err());
    }
}
