//! The receivers' check (`check_spans`): what the collector's pdata refuses when it unmarshals a
//! request (id lengths, wire types), against requests prost + opentelemetry-proto encode.
//!
//! Oracle: a request is refused exactly when one of its spans or links carries a trace id that is
//! neither 0 nor 16 bytes or a span/parent id that is neither 0 nor 8 (pdata's `TraceID` /
//! `SpanID` unmarshal rule), and the first such field in wire order is the one named. Whatever
//! the check accepts, the gateway's strict scan accepts too.
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::span::Link;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use proptest::prelude::*;
use prost::Message;
use tailgate_proto::error::SpanProblem;
use tailgate_proto::{check_spans, count_spans, scan, InvalidSpan, RequestError, ScanErrorKind};

mod strategies;

fn good_span(n: u8) -> Span {
    Span {
        trace_id: vec![n; 16],
        span_id: vec![n; 8],
        parent_span_id: vec![n + 1; 8],
        name: format!("op{n}"),
        start_time_unix_nano: 1,
        end_time_unix_nano: 2,
        ..Default::default()
    }
}

fn encode(scopes: Vec<Vec<Span>>) -> Vec<u8> {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: scopes
                .into_iter()
                .map(|spans| ScopeSpans {
                    spans,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

fn refused(buf: &[u8]) -> (InvalidSpan, usize) {
    match check_spans(buf) {
        Err(RequestError::InvalidSpan { first, spans }) => (first, spans),
        other => panic!("not refused for a span: {other:?}"),
    }
}

#[test]
fn an_8_byte_trace_id_beside_a_good_trace_is_refused_naming_the_span() {
    let mut bad = good_span(9);
    bad.trace_id = vec![9; 8];
    let buf = encode(vec![vec![good_span(1), good_span(2), good_span(3), bad]]);
    let (first, spans) = refused(&buf);
    assert_eq!(spans, 4);
    assert_eq!(
        first.to_string(),
        "resource_spans[0].scope_spans[0].spans[3].trace_id: 8 bytes, want 16 or 0"
    );
    assert_eq!(first.problem, SpanProblem::IdLength { len: 8, want: 16 });
    // Structure alone (what the receivers checked before) passes it.
    assert_eq!(count_spans(&buf).unwrap(), 4);
}

#[test]
fn good_spans_and_empty_ids_are_accepted() {
    let mut empty = good_span(4);
    empty.trace_id.clear();
    empty.span_id.clear();
    empty.parent_span_id.clear();
    empty.links = vec![Link::default()];
    let buf = encode(vec![vec![good_span(1)], vec![good_span(2), empty]]);
    assert_eq!(check_spans(&buf).unwrap(), 3);
    // Empty ids are the zero id, as pdata reads them: the scan agrees.
    let views = scan(&Bytes::from(buf)).unwrap();
    assert_eq!(views[2].trace_id(), [0; 16]);
    assert!(views[2].is_root());
}

/// A change to a good span.
type Mutation = Box<dyn Fn(&mut Span)>;

#[test]
fn span_and_parent_ids_and_links_are_checked() {
    let cases: Vec<(Mutation, &str)> = vec![
        (
            Box::new(|s| s.span_id = vec![1; 16]),
            "spans[1].span_id: 16 bytes, want 8 or 0",
        ),
        (
            Box::new(|s| s.parent_span_id = vec![1; 7]),
            "spans[1].parent_span_id: 7 bytes, want 8 or 0",
        ),
        (
            Box::new(|s| {
                s.links = vec![
                    Link {
                        trace_id: vec![1; 16],
                        span_id: vec![1; 8],
                        ..Default::default()
                    },
                    Link {
                        trace_id: vec![1; 16],
                        span_id: vec![1; 3],
                        ..Default::default()
                    },
                ]
            }),
            "spans[1].links[1].span_id: 3 bytes, want 8 or 0",
        ),
        (
            Box::new(|s| {
                s.links = vec![Link {
                    trace_id: vec![1; 17],
                    ..Default::default()
                }]
            }),
            "spans[1].links[0].trace_id: 17 bytes, want 16 or 0",
        ),
    ];
    for (mutate, want) in cases {
        let mut bad = good_span(5);
        mutate(&mut bad);
        let buf = encode(vec![vec![], vec![good_span(1), bad, good_span(2)]]);
        let (first, spans) = refused(&buf);
        assert_eq!(spans, 3);
        assert_eq!(
            first.to_string(),
            format!("resource_spans[0].scope_spans[1].{want}")
        );
    }
}

/// `resource_spans { scope_spans { spans { <span> } } }` around raw span bytes.
fn wrap_span(span: &[u8]) -> Vec<u8> {
    let ss = [&[0x12, span.len() as u8][..], span].concat();
    let rs = [&[0x12, ss.len() as u8][..], &ss].concat();
    [&[0x0a, rs.len() as u8][..], &rs].concat()
}

#[test]
fn wire_types_and_malformed_spans_are_named() {
    let cases: [(&[u8], &str); 6] = [
        // trace_id as a varint
        (&[0x08, 0x01], "spans[0].trace_id: wire type 0, want 2"),
        // name as fixed32
        (&[0x2d, 1, 2, 3, 4], "spans[0].name: wire type 5, want 2"),
        // status { code: "x" } (length-delimited)
        (
            &[0x7a, 3, 0x1a, 1, b'x'],
            "spans[0].status.code: wire type 2, want 0",
        ),
        // links { flags: varint }
        (
            &[0x6a, 2, 0x30, 1],
            "spans[0].links[0].flags: wire type 0, want 5",
        ),
        // a length past the span's end
        (
            &[0x2a, 9, b'a'],
            "spans[0]: malformed protobuf: Truncated at byte 7",
        ),
        // status whose field runs past it
        (
            &[0x7a, 2, 0x12, 5],
            "spans[0].status: malformed protobuf: Truncated at byte 9",
        ),
    ];
    for (span, want) in cases {
        let buf = wrap_span(span);
        let (first, spans) = refused(&buf);
        assert_eq!(spans, 1);
        assert_eq!(
            first.to_string(),
            format!("resource_spans[0].scope_spans[0].{want}"),
            "{span:02x?}"
        );
        // What the check refuses, pdata (and prost) cannot decode either.
        assert!(ExportTraceServiceRequest::decode(&buf[..]).is_err());
    }
    // A broken ScopeSpans is a structural error, not a span's.
    assert_eq!(
        check_spans(&[0x0a, 2, 0x12, 9]),
        Err(RequestError::Malformed(
            count_spans(&[0x0a, 2, 0x12, 9]).unwrap_err()
        ))
    );
    assert!(matches!(
        check_spans(&[0x0a, 2, 0x12, 9]),
        Err(RequestError::Malformed(e)) if e.kind == ScanErrorKind::Truncated
    ));
}

#[test]
fn the_walk_counts_past_the_first_bad_span_and_keeps_the_first() {
    let mut a = good_span(1);
    a.span_id = vec![1];
    let mut b = good_span(2);
    b.trace_id = vec![2];
    b.status = Some(Status::default());
    let buf = encode(vec![vec![good_span(3), a], vec![b, good_span(4)]]);
    let (first, spans) = refused(&buf);
    assert_eq!(spans, 4);
    assert_eq!((first.scope, first.span, first.field), (0, 1, "span_id"));
}

// === properties ===

/// Which id of a span a bad length goes into.
#[derive(Debug, Clone, Copy)]
enum Target {
    Trace,
    Span,
    Parent,
    LinkTrace,
    LinkSpan,
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        Just(Target::Trace),
        Just(Target::Span),
        Just(Target::Parent),
        Just(Target::LinkTrace),
        Just(Target::LinkSpan),
    ]
}

/// (span index, id, new length) for up to three spans.
fn mutations() -> impl Strategy<Value = Vec<(usize, Target, usize)>> {
    proptest::collection::vec((any::<usize>(), target(), 0usize..24), 0..3)
}

fn spans_mut(req: &mut ExportTraceServiceRequest) -> Vec<&mut Span> {
    req.resource_spans
        .iter_mut()
        .flat_map(|r| r.scope_spans.iter_mut())
        .flat_map(|s| s.spans.iter_mut())
        .collect()
}

/// pdata's rule: 0 or the id's size.
fn bad(id: &[u8], size: usize) -> Option<SpanProblem> {
    (!id.is_empty() && id.len() != size).then_some(SpanProblem::IdLength {
        len: id.len(),
        want: size as u8,
    })
}

/// The first bad id of a span in wire order (prost writes fields in number order).
fn first_bad(s: &Span) -> Option<(Option<u32>, &'static str, SpanProblem)> {
    if let Some(p) = bad(&s.trace_id, 16) {
        return Some((None, "trace_id", p));
    }
    if let Some(p) = bad(&s.span_id, 8) {
        return Some((None, "span_id", p));
    }
    if let Some(p) = bad(&s.parent_span_id, 8) {
        return Some((None, "parent_span_id", p));
    }
    for (i, l) in s.links.iter().enumerate() {
        if let Some(p) = bad(&l.trace_id, 16) {
            return Some((Some(i as u32), "trace_id", p));
        }
        if let Some(p) = bad(&l.span_id, 8) {
            return Some((Some(i as u32), "span_id", p));
        }
    }
    None
}

/// The expected answer for a prost request: the span count, or the first bad span's
/// (resource, scope, span, link, field, problem).
type Expected = Result<usize, (u32, u32, u32, Option<u32>, &'static str, SpanProblem)>;

fn expected(req: &ExportTraceServiceRequest) -> Expected {
    let mut first = None;
    let mut total = 0;
    for (r, rs) in req.resource_spans.iter().enumerate() {
        for (s, ss) in rs.scope_spans.iter().enumerate() {
            for (i, span) in ss.spans.iter().enumerate() {
                total += 1;
                if first.is_none() {
                    first =
                        first_bad(span).map(|(l, f, p)| (r as u32, s as u32, i as u32, l, f, p));
                }
            }
        }
    }
    first.map_or(Ok(total), Err)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Random requests with ids of random lengths: refused exactly as pdata would, naming the
    /// first bad id; accepted ones scan into as many views as they hold spans.
    #[test]
    fn refused_exactly_when_pdata_refuses(req in strategies::request(), muts in mutations()) {
        let mut msg = req.message();
        let mut spans = spans_mut(&mut msg);
        if !spans.is_empty() {
            let n = spans.len();
            for (i, target, len) in muts {
                let s = &mut spans[i % n];
                let id = vec![0xab; len];
                match target {
                    Target::Trace => s.trace_id = id,
                    Target::Span => s.span_id = id,
                    Target::Parent => s.parent_span_id = id,
                    Target::LinkTrace | Target::LinkSpan => {
                        if s.links.is_empty() {
                            s.links.push(Link::default());
                        }
                        let k = i % s.links.len();
                        let l = &mut s.links[k];
                        if matches!(target, Target::LinkTrace) { l.trace_id = id } else { l.span_id = id }
                    }
                }
            }
        }
        let buf = msg.encode_to_vec();
        let total = count_spans(&buf).unwrap();
        match (check_spans(&buf), expected(&msg)) {
            (Ok(n), Ok(want)) => {
                prop_assert_eq!(n, want);
                prop_assert_eq!(scan(&Bytes::from(buf)).unwrap().len(), n);
            }
            (Err(RequestError::InvalidSpan { first, spans }), Err(want)) => {
                prop_assert_eq!(spans, total);
                prop_assert_eq!(
                    (first.resource, first.scope, first.span, first.link, first.field, first.problem),
                    want
                );
            }
            (got, want) => prop_assert!(false, "got {:?}, want {:?}", got, want),
        }
    }

    /// Arbitrary damage to a good request: whatever the check accepts the strict scan accepts
    /// with the same count; a refused span leaves the structure countable; a structural error is
    /// `count_spans`'s own.
    #[test]
    fn check_is_at_least_as_strict_as_the_scan(
        req in strategies::request(),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
    ) {
        let mut buf = req.message().encode_to_vec();
        if buf.is_empty() {
            return Ok(());
        }
        let n = buf.len();
        for (at, byte) in edits {
            buf[at % n] = byte;
        }
        let count = count_spans(&buf);
        match check_spans(&buf) {
            Ok(spans) => {
                prop_assert_eq!(count, Ok(spans));
                prop_assert_eq!(scan(&Bytes::from(buf)).map(|v| v.len()), Ok(spans));
            }
            Err(RequestError::InvalidSpan { spans, .. }) => prop_assert_eq!(count, Ok(spans)),
            Err(RequestError::Malformed(e)) => prop_assert_eq!(count, Err(e)),
        }
    }
}
