//! A small protobuf walker that finds the spans of an `ExportTraceServiceRequest` without decoding it.
//!
//! The sink must keep up with the process under test on the same two cores, so it does not decode
//! requests with prost (about 0.8 M spans/s here); it walks tags and lengths and keeps each span as a
//! refcounted slice of the request. `tailgate-proto` will own the real zero-copy scanner; this one
//! knows only what the sink needs (trace ID, span ID, the resource and scope a span came under) and is
//! checked against prost in the tests below.

use bytes::Bytes;

/// Why a request could not be walked; `at` is the byte offset in the request where it went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    /// A varint or a length-delimited field runs past the end of its enclosing message.
    #[error("truncated field at byte {at}")]
    Truncated {
        /// Byte offset in the request.
        at: usize,
    },
    /// A wire type that OTLP never uses (groups) or that does not exist.
    #[error("unsupported wire type {wire_type} at byte {at}")]
    WireType {
        /// Byte offset in the request.
        at: usize,
        /// The wire type found.
        wire_type: u8,
    },
    /// A varint longer than ten bytes.
    #[error("varint overflow at byte {at}")]
    Varint {
        /// Byte offset in the request.
        at: usize,
    },
    /// A trace ID that is not 16 bytes or a span ID that is not 8 bytes.
    #[error("trace or span ID with a wrong length at byte {at}")]
    IdLength {
        /// Byte offset in the request.
        at: usize,
    },
}

/// One span found in a request: its IDs and slices of the request it came in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpanView {
    /// The span's trace ID (all zero if the span has none).
    pub trace_id: [u8; 16],
    /// The span's span ID (all zero if the span has none).
    pub span_id: [u8; 8],
    /// The encoded `Resource` message the span came under (empty if the request had none).
    pub resource: Bytes,
    /// The encoded `InstrumentationScope` message the span came under (empty if none).
    pub scope: Bytes,
    /// The encoded `Span` message.
    pub span: Bytes,
}

/// Walks an encoded `ExportTraceServiceRequest` and calls `on_span` for every span in wire order.
///
/// Returns the number of spans found.
pub fn for_each_span(
    request: &Bytes,
    mut on_span: impl FnMut(SpanView),
) -> Result<usize, ScanError> {
    let mut count = 0;
    for field in Fields::new(request.clone(), 0) {
        let field = field?;
        if let (1, Value::Len(rs)) = (field.number, field.value) {
            count += scan_resource_spans(rs, field.at, &mut on_span)?;
        }
    }
    Ok(count)
}

/// Walks a request and returns its spans (see [`for_each_span`]).
pub fn spans(request: &Bytes) -> Result<Vec<SpanView>, ScanError> {
    let mut out = Vec::new();
    for_each_span(request, |s| out.push(s))?;
    Ok(out)
}

/// Counts the spans of a request without keeping them.
pub fn count_spans(request: &Bytes) -> Result<usize, ScanError> {
    for_each_span(request, |_| ())
}

// === ResourceSpans → ScopeSpans → Span ===

fn scan_resource_spans(
    buf: Bytes,
    base: usize,
    on_span: &mut impl FnMut(SpanView),
) -> Result<usize, ScanError> {
    // Fields may come in any order: find the resource first, then walk the scope spans.
    let mut resource = Bytes::new();
    for field in Fields::new(buf.clone(), base) {
        let field = field?;
        if let (1, Value::Len(r)) = (field.number, field.value) {
            resource = r;
        }
    }
    let mut count = 0;
    for field in Fields::new(buf, base) {
        let field = field?;
        if let (2, Value::Len(ss)) = (field.number, field.value) {
            count += scan_scope_spans(ss, field.at, &resource, on_span)?;
        }
    }
    Ok(count)
}

fn scan_scope_spans(
    buf: Bytes,
    base: usize,
    resource: &Bytes,
    on_span: &mut impl FnMut(SpanView),
) -> Result<usize, ScanError> {
    let mut scope = Bytes::new();
    for field in Fields::new(buf.clone(), base) {
        let field = field?;
        if let (1, Value::Len(s)) = (field.number, field.value) {
            scope = s;
        }
    }
    let mut count = 0;
    for field in Fields::new(buf, base) {
        let field = field?;
        if let (2, Value::Len(span)) = (field.number, field.value) {
            let (trace_id, span_id) = span_ids(&span, field.at)?;
            on_span(SpanView {
                trace_id,
                span_id,
                resource: resource.clone(),
                scope: scope.clone(),
                span,
            });
            count += 1;
        }
    }
    Ok(count)
}

fn span_ids(span: &Bytes, base: usize) -> Result<([u8; 16], [u8; 8]), ScanError> {
    let mut trace_id = [0u8; 16];
    let mut span_id = [0u8; 8];
    for field in Fields::new(span.clone(), base) {
        let field = field?;
        match (field.number, field.value) {
            (1, Value::Len(id)) if !id.is_empty() => {
                trace_id = id
                    .as_ref()
                    .try_into()
                    .map_err(|_| ScanError::IdLength { at: field.at })?;
            }
            (2, Value::Len(id)) if !id.is_empty() => {
                span_id = id
                    .as_ref()
                    .try_into()
                    .map_err(|_| ScanError::IdLength { at: field.at })?;
            }
            _ => {}
        }
    }
    Ok((trace_id, span_id))
}

// === Field iterator ===

/// The payload of one protobuf field; only length-delimited payloads are kept.
enum Value {
    Len(Bytes),
    Other,
}

struct Field {
    number: u32,
    value: Value,
    /// Offset of the field's payload in the whole request.
    at: usize,
}

/// Iterates the fields of one message; `base` is the message's offset in the request.
struct Fields {
    buf: Bytes,
    pos: usize,
    base: usize,
    failed: bool,
}

impl Fields {
    fn new(buf: Bytes, base: usize) -> Self {
        Fields {
            buf,
            pos: 0,
            base,
            failed: false,
        }
    }

    fn varint(&mut self) -> Result<u64, ScanError> {
        let mut value = 0u64;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(ScanError::Truncated {
                    at: self.base + self.pos,
                });
            };
            self.pos += 1;
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(ScanError::Varint {
            at: self.base + self.pos,
        })
    }

    fn skip(&mut self, n: usize) -> Result<(), ScanError> {
        if self.buf.len() - self.pos < n {
            return Err(ScanError::Truncated {
                at: self.base + self.pos,
            });
        }
        self.pos += n;
        Ok(())
    }

    fn field(&mut self) -> Result<Field, ScanError> {
        let tag_at = self.base + self.pos;
        let tag = self.varint()?;
        let number = u32::try_from(tag >> 3).unwrap_or(u32::MAX);
        let wire_type = (tag & 7) as u8;
        let value = match wire_type {
            0 => self.varint().map(|_| Value::Other)?,
            1 => self.skip(8).map(|_| Value::Other)?,
            5 => self.skip(4).map(|_| Value::Other)?,
            2 => {
                let len = usize::try_from(self.varint()?).unwrap_or(usize::MAX);
                let start = self.pos;
                self.skip(len)?;
                Value::Len(self.buf.slice(start..start + len))
            }
            _ => {
                return Err(ScanError::WireType {
                    at: tag_at,
                    wire_type,
                })
            }
        };
        let at = match value {
            Value::Len(ref b) => self.base + self.pos - b.len(),
            Value::Other => tag_at,
        };
        Ok(Field { number, value, at })
    }
}

impl Iterator for Fields {
    type Item = Result<Field, ScanError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.buf.len() {
            return None;
        }
        let field = self.field();
        self.failed = field.is_err();
        Some(field)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use proptest::prelude::*;
    use prost::Message;

    fn request(shape: &[Vec<Vec<(u8, u8)>>]) -> ExportTraceServiceRequest {
        let resource_spans = shape
            .iter()
            .enumerate()
            .map(|(r, scopes)| ResourceSpans {
                resource: Some(Resource {
                    dropped_attributes_count: r as u32 + 1,
                    ..Default::default()
                }),
                scope_spans: scopes
                    .iter()
                    .enumerate()
                    .map(|(s, spans)| ScopeSpans {
                        scope: Some(InstrumentationScope {
                            name: format!("scope-{r}-{s}"),
                            ..Default::default()
                        }),
                        spans: spans
                            .iter()
                            .map(|&(t, i)| Span {
                                trace_id: vec![t; 16],
                                span_id: vec![i; 8],
                                name: "op".repeat(usize::from(i % 5)),
                                ..Default::default()
                            })
                            .collect(),
                        schema_url: String::new(),
                    })
                    .collect(),
                schema_url: "x".into(),
            })
            .collect();
        ExportTraceServiceRequest { resource_spans }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn scan_matches_prost(shape in prop::collection::vec(
            prop::collection::vec(prop::collection::vec((1u8..=255, 1u8..=255), 0..6), 0..4), 0..4)) {
            let req = request(&shape);
            let bytes = Bytes::from(req.encode_to_vec());
            let views = spans(&bytes).unwrap();
            let expected: Vec<_> = req.resource_spans.iter().flat_map(|rs| {
                rs.scope_spans.iter().flat_map(move |ss| ss.spans.iter().map(move |sp| (rs, ss, sp)))
            }).collect();
            prop_assert_eq!(views.len(), expected.len());
            for (v, (rs, ss, sp)) in views.iter().zip(expected) {
                prop_assert_eq!(&v.trace_id[..], &sp.trace_id[..]);
                prop_assert_eq!(&v.span_id[..], &sp.span_id[..]);
                prop_assert_eq!(&Span::decode(v.span.clone()).unwrap(), sp);
                prop_assert_eq!(Resource::decode(v.resource.clone()).unwrap(), rs.resource.clone().unwrap());
                prop_assert_eq!(InstrumentationScope::decode(v.scope.clone()).unwrap(), ss.scope.clone().unwrap());
            }
        }

        #[test]
        fn truncation_never_panics(cut in 0usize..400) {
            let req = request(&[vec![vec![(1, 2), (3, 4)], vec![(5, 6)]], vec![vec![(7, 8)]]]);
            let bytes = Bytes::from(req.encode_to_vec());
            let cut = cut.min(bytes.len());
            let _ = spans(&bytes.slice(..cut));
        }
    }

    #[test]
    fn truncated_request_reports_offset() {
        let req = request(&[vec![vec![(1, 2)]]]);
        let bytes = Bytes::from(req.encode_to_vec());
        let cut = bytes.slice(..bytes.len() - 3);
        assert!(matches!(spans(&cut), Err(ScanError::Truncated { .. })));
    }

    #[test]
    fn wrong_id_length_is_an_error() {
        let mut req = request(&[vec![vec![(1, 2)]]]);
        req.resource_spans[0].scope_spans[0].spans[0].trace_id = vec![1; 15];
        let bytes = Bytes::from(req.encode_to_vec());
        assert!(matches!(spans(&bytes), Err(ScanError::IdLength { .. })));
    }

    #[test]
    fn group_wire_type_is_rejected() {
        let bytes = Bytes::from_static(&[0x0b]);
        assert_eq!(
            spans(&bytes),
            Err(ScanError::WireType {
                at: 0,
                wire_type: 3
            })
        );
    }
}
