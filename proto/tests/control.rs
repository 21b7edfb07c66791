//! Property tests of the control codec (`tailgate_proto::control`) with prost +
//! opentelemetry-proto as the oracle: what the encoder writes is a valid
//! `ExportTraceServiceRequest` holding exactly the `tailgate.control` attribute and no spans, the
//! parser reads back what was encoded, splitting respects the limit, and damaged bodies never
//! panic the parser.
#![allow(clippy::unwrap_used)]

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use proptest::prelude::*;
use prost::Message;
use tailgate_proto::control::{
    self, body_len, encode_bodies, encode_body, Claim, Control, Decision, Entry, Redirect, State,
};
use tailgate_proto::hop::Kind;

fn state() -> impl Strategy<Value = State> {
    (any::<bool>(), any::<bool>()).prop_map(|(d, a)| State::new(d, a))
}

fn claims() -> impl Strategy<Value = Vec<Claim>> {
    proptest::collection::vec(
        (any::<[u8; 16]>(), state(), any::<u32>()).prop_map(|(trace_id, state, ttl_ms)| Claim {
            trace_id,
            state,
            ttl_ms,
        }),
        0..40,
    )
}

fn decisions() -> impl Strategy<Value = Vec<Decision>> {
    proptest::collection::vec(
        (any::<[u8; 16]>(), any::<bool>(), any::<u32>()).prop_map(|(trace_id, kept, ttl_ms)| {
            Decision {
                trace_id,
                kept,
                ttl_ms,
            }
        }),
        0..40,
    )
}

/// Redirect entries own nothing, so the holders are generated beside them.
fn redirects() -> impl Strategy<Value = Vec<([u8; 16], String, u64, State)>> {
    proptest::collection::vec(
        (any::<[u8; 16]>(), "[!-:<>-~]{1,253}", any::<u64>(), state()),
        0..20,
    )
}

fn as_redirects(raw: &[([u8; 16], String, u64, State)]) -> Vec<Redirect<'_>> {
    raw.iter()
        .map(|(trace_id, holder, inc, st)| Redirect {
            trace_id: *trace_id,
            holder,
            holder_incarnation: *inc,
            holder_state: *st,
        })
        .collect()
}

/// What a collector sees: the request decodes, has one ResourceSpans without spans, and its
/// resource holds exactly one attribute, `tailgate.control`, with the payload as bytes.
fn collector_sees(body: &[u8]) -> Result<Vec<u8>, TestCaseError> {
    let req = ExportTraceServiceRequest::decode(body)
        .map_err(|e| TestCaseError::fail(format!("prost refused the body: {e}")))?;
    prop_assert_eq!(req.resource_spans.len(), 1);
    let rs = &req.resource_spans[0];
    prop_assert!(rs.scope_spans.is_empty());
    let spans: usize = req
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum();
    prop_assert_eq!(spans, 0);
    prop_assert_eq!(tailgate_proto::count_spans(body), Ok(0));
    let attrs = &rs.resource.as_ref().unwrap().attributes;
    prop_assert_eq!(attrs.len(), 1);
    prop_assert_eq!(&attrs[0].key, control::ATTRIBUTE);
    match attrs[0].value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(Value::BytesValue(b)) => Ok(b.clone()),
        other => Err(TestCaseError::fail(format!("value {other:?}"))),
    }
}

/// Encodes `entries` in one body, checks it with prost, and reads it back as `kind`.
fn round_trip<'a, E: Entry<'a> + std::fmt::Debug>(
    entries: &[E],
    body: &'a mut Vec<u8>,
) -> Result<Control<'a>, TestCaseError> {
    encode_body(entries, body).unwrap();
    let payload_len: usize = entries.iter().map(Entry::wire_len).sum();
    prop_assert_eq!(body.len(), body_len(payload_len));
    let payload = collector_sees(body)?;
    let parsed = control::parse(body).unwrap();
    prop_assert_eq!(parsed.bytes(), &payload[..]);
    prop_assert_eq!(parsed.offset(), body.len() - payload.len());
    Ok(parsed.read(E::KIND).unwrap())
}

proptest! {
    #[test]
    fn claims_round_trip(entries in claims()) {
        let mut body = Vec::new();
        prop_assert_eq!(round_trip(&entries, &mut body)?, Control::Claims(entries.clone()));
    }

    #[test]
    fn decisions_round_trip(entries in decisions()) {
        let mut body = Vec::new();
        prop_assert_eq!(round_trip(&entries, &mut body)?, Control::Decisions(entries.clone()));
    }

    #[test]
    fn redirects_round_trip(raw in redirects()) {
        let entries = as_redirects(&raw);
        let mut body = Vec::new();
        prop_assert_eq!(round_trip(&entries, &mut body)?, Control::Redirects(entries.clone()));
    }

    #[test]
    fn drain_and_done_are_empty(kind in prop_oneof![Just(Kind::Drain), Just(Kind::Done)]) {
        let mut body = Vec::new();
        control::encode_empty(&mut body);
        prop_assert_eq!(collector_sees(&body)?, Vec::<u8>::new());
        let read = control::parse(&body).unwrap().read(kind).unwrap();
        prop_assert_eq!(read, if kind == Kind::Drain { Control::Drain } else { Control::Done });
    }

    /// Split bodies each fit the limit, each is a valid request, and together they hold the
    /// entries in order.
    #[test]
    fn bodies_split_within_the_limit(raw in redirects(), slack in 0usize..600) {
        let entries = as_redirects(&raw);
        let max = body_len(253 + 27) + slack;
        let bodies = encode_bodies(&entries, max).unwrap();
        let mut back = Vec::new();
        for b in &bodies {
            prop_assert!(b.len() <= max);
            collector_sees(b)?;
            back.extend(control::parse(b).unwrap().collect::<Redirect<'_>>().unwrap());
        }
        prop_assert_eq!(back, entries);
        // no two neighbouring bodies could have been one
        for pair in bodies.windows(2) {
            let first = control::parse(&pair[0]).unwrap().bytes().len();
            let next = control::parse(&pair[1])
                .unwrap()
                .redirects()
                .next()
                .unwrap()
                .unwrap()
                .wire_len();
            prop_assert!(body_len(first + next) > max);
        }
    }

    /// Arbitrary payloads reach the entry readers directly (wrapped in a valid body): never a
    /// panic, and the entries that read re-encode to their bytes (`fuzzing::control`'s oracles).
    #[test]
    fn arbitrary_payloads_never_panic(
        payload in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        tailgate_proto::fuzzing::control(&[&[1u8][..], &payload].concat());
    }

    /// Damaged bodies (bytes changed, cut short) never panic the parser or the entry readers,
    /// and errors point inside the body.
    #[test]
    fn damaged_bodies_never_panic(
        entries in claims(),
        raw in redirects(),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        cut in any::<usize>(),
        which in any::<bool>(),
    ) {
        let mut body = Vec::new();
        if which {
            encode_body(&entries, &mut body).unwrap();
        } else {
            encode_body(&as_redirects(&raw), &mut body).unwrap();
        }
        let n = body.len();
        for (at, b) in edits {
            body[at % n] = b;
        }
        body.truncate(cut % (n + 1));
        tailgate_proto::fuzzing::control(&[&[0u8][..], &body].concat());
        tailgate_proto::fuzzing::control(&[&[1u8][..], &body].concat());
    }
}
