//! A minimal OTLP trace walker: count spans and split a request into parts of at most N spans.
//!
//! Stop-gap until `tailgate-proto`'s span scanner lands (issue 3); it walks only the three levels
//! it needs (ResourceSpans → ScopeSpans → Span), copies each span once when splitting, and keeps
//! every other field (resource, scope, schema_url, unknown fields) byte for byte.

use bytes::{BufMut, Bytes, BytesMut};

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

/// One field: its number, wire type, the whole field's bytes (tag included) and, for
/// length-delimited fields, the payload range.
struct Field {
    number: u64,
    start: usize,
    end: usize,
    payload: Option<(usize, usize)>,
}

fn varint(buf: &[u8], pos: &mut usize) -> Result<u64, WireError> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos).ok_or(WireError { at: *pos })?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(WireError { at: *pos })
}

fn fields(buf: &[u8], base: usize) -> impl Iterator<Item = Result<Field, WireError>> + '_ {
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        if pos >= buf.len() {
            return None;
        }
        let start = pos;
        let r = (|| {
            let key = varint(buf, &mut pos)?;
            let payload = match key & 7 {
                0 => {
                    varint(buf, &mut pos)?;
                    None
                }
                1 => {
                    pos += 8;
                    None
                }
                5 => {
                    pos += 4;
                    None
                }
                2 => {
                    let len = varint(buf, &mut pos)?;
                    let len = usize::try_from(len).map_err(|_| WireError { at: base + start })?;
                    let s = pos;
                    pos = pos.checked_add(len).ok_or(WireError { at: base + start })?;
                    Some((s, pos))
                }
                _ => return Err(WireError { at: base + start }),
            };
            if pos > buf.len() {
                return Err(WireError { at: base + start });
            }
            Ok(Field {
                number: key >> 3,
                start,
                end: pos,
                payload,
            })
        })();
        if r.is_err() {
            pos = buf.len();
        }
        Some(r)
    })
}

/// Visits every span as (resource header bytes, scope header bytes, span bytes), where headers are
/// the fields of ResourceSpans / ScopeSpans other than their nested lists.
fn walk(
    body: &[u8],
    mut visit: impl FnMut(usize, &[u8], usize, &[u8], &[u8]),
) -> Result<(), WireError> {
    let mut ri = 0;
    let mut si = 0;
    for f in fields(body, 0) {
        let f = f?;
        let (Some((rs, re)), 1) = (f.payload, f.number) else {
            continue;
        };
        let rbuf = &body[rs..re];
        let mut rheader = Vec::new();
        for g in fields(rbuf, rs) {
            let g = g?;
            if g.number != 2 {
                rheader.extend_from_slice(&rbuf[g.start..g.end]);
            }
        }
        for g in fields(rbuf, rs) {
            let g = g?;
            let (Some((ss, se)), 2) = (g.payload, g.number) else {
                continue;
            };
            let sbuf = &rbuf[ss..se];
            let mut sheader = Vec::new();
            for h in fields(sbuf, rs + ss) {
                let h = h?;
                if h.number != 2 {
                    sheader.extend_from_slice(&sbuf[h.start..h.end]);
                }
            }
            for h in fields(sbuf, rs + ss) {
                let h = h?;
                if let (Some((ps, pe)), 2) = (h.payload, h.number) {
                    visit(ri, &rheader, si, &sheader, &sbuf[ps..pe]);
                }
            }
            si += 1;
        }
        ri += 1;
    }
    Ok(())
}

/// Counts the spans of a request.
pub fn count_spans(body: &[u8]) -> Result<u64, WireError> {
    let mut n = 0u64;
    walk(body, |_, _, _, _, _| n += 1)?;
    Ok(n)
}

/// Splits a request into requests of at most `max` spans each (in order), grouped under their
/// original resource and scope.
pub fn split(body: &[u8], max: u64) -> Result<Vec<(Bytes, u64)>, WireError> {
    let max = max.max(1);
    let mut parts = Vec::new();
    let mut out = Writer::default();
    walk(body, |ri, rh, si, sh, span| {
        out.push(ri, rh, si, sh, span);
        if out.spans >= max {
            parts.push(std::mem::take(&mut out).finish());
        }
    })?;
    if out.spans > 0 {
        parts.push(out.finish());
    }
    Ok(parts)
}

/// A ResourceSpans being written: its index in the source, header fields, scopes so far.
struct OpenResource {
    index: usize,
    header: Vec<u8>,
    scopes: Vec<(usize, BytesMut)>,
}

#[derive(Default)]
struct Writer {
    out: BytesMut,
    resource: Option<OpenResource>,
    spans: u64,
}

fn put_len_field(out: &mut BytesMut, number: u64, payload: &[u8]) {
    put_varint(out, (number << 3) | 2);
    put_varint(out, payload.len() as u64);
    out.put_slice(payload);
}

fn put_varint(out: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        out.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    out.put_u8(v as u8);
}

impl Writer {
    fn push(&mut self, ri: usize, rh: &[u8], si: usize, sh: &[u8], span: &[u8]) {
        if self.resource.as_ref().map(|r| r.index) != Some(ri) {
            self.close_resource();
            self.resource = Some(OpenResource {
                index: ri,
                header: rh.to_vec(),
                scopes: Vec::new(),
            });
        }
        if let Some(r) = &mut self.resource {
            if r.scopes.last().map(|s| s.0) != Some(si) {
                let mut b = BytesMut::new();
                b.put_slice(sh);
                r.scopes.push((si, b));
            }
            if let Some((_, b)) = r.scopes.last_mut() {
                put_len_field(b, 2, span);
            }
        }
        self.spans += 1;
    }

    fn close_resource(&mut self) {
        if let Some(open) = self.resource.take() {
            let mut r = BytesMut::new();
            r.put_slice(&open.header);
            for (_, s) in open.scopes {
                put_len_field(&mut r, 2, &s);
            }
            put_len_field(&mut self.out, 1, &r);
        }
    }

    fn finish(mut self) -> (Bytes, u64) {
        self.close_resource();
        (self.out.freeze(), self.spans)
    }
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
