//! Unit tests of the control codec: the exact bytes, and one test per error with its offset.
//! Property tests against prost live in `proto/tests/control.rs`.

use super::*;
use crate::error::{ScanError, ScanErrorKind};

fn claim(i: u8, state: State) -> Claim {
    Claim {
        trace_id: [i; 16],
        state,
        ttl_ms: 0x0102_0304,
    }
}

fn body_of_payload(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_payload(payload, &mut out);
    out
}

/// A body holding one claim, and the offset of its payload.
fn one_claim() -> (Vec<u8>, usize) {
    let mut out = Vec::new();
    encode_body(&[claim(7, State::new(true, false))], &mut out).unwrap();
    let at = out.len() - FIXED_LEN;
    (out, at)
}

#[test]
fn the_bytes_are_the_documented_layout() {
    let (body, at) = one_claim();
    let mut want = vec![0x0a, 47, 0x0a, 45, 0x0a, 43, 0x0a, 16];
    want.extend_from_slice(b"tailgate.control");
    want.extend_from_slice(&[0x12, 23, 0x3a, 21]);
    want.extend_from_slice(&[7; 16]);
    want.extend_from_slice(&[1, 4, 3, 2, 1]);
    assert_eq!(body, want);
    assert_eq!(body_len(FIXED_LEN), body.len());
    let p = parse(&body).unwrap();
    assert_eq!(p.offset(), at);
    assert_eq!(
        p.read(Kind::Claim).unwrap(),
        Control::Claims(vec![claim(7, State::new(true, false))])
    );
}

#[test]
fn state_bits() {
    assert_eq!(State::new(true, true).bits(), 3);
    assert_eq!(State::from_bits(2), Some(State::new(false, true)));
    assert!(State::from_bits(2).unwrap().anchored());
    assert!(!State::PENDING.decided());
    assert_eq!(State::from_bits(4), None);
}

#[test]
fn each_entry_kind_round_trips() {
    let redirects = [Redirect {
        trace_id: [1; 16],
        holder: "10.0.0.2:4317",
        holder_incarnation: u64::MAX - 1,
        holder_state: State::new(true, true),
    }];
    let decisions = [
        Decision {
            trace_id: [2; 16],
            kept: true,
            ttl_ms: 9,
        },
        Decision {
            trace_id: [3; 16],
            kept: false,
            ttl_ms: 0,
        },
    ];
    let mut out = Vec::new();
    encode_body(&redirects, &mut out).unwrap();
    assert_eq!(
        parse(&out).unwrap().read(Kind::Redirect).unwrap(),
        Control::Redirects(redirects.to_vec())
    );
    out.clear();
    encode_body(&decisions, &mut out).unwrap();
    let p = parse(&out).unwrap();
    assert_eq!(p.decisions().count(), 2);
    assert_eq!(
        p.read(Kind::Decisions).unwrap(),
        Control::Decisions(decisions.to_vec())
    );
    out.clear();
    encode_empty(&mut out);
    assert_eq!(
        parse(&out).unwrap().read(Kind::Drain).unwrap(),
        Control::Drain
    );
    assert_eq!(
        parse(&out).unwrap().read(Kind::Done).unwrap(),
        Control::Done
    );
}

#[test]
fn bodies_split_at_the_limit() {
    let claims: Vec<Claim> = (0..10).map(|i| claim(i, State::PENDING)).collect();
    let max = body_len(3 * FIXED_LEN);
    let bodies = encode_bodies(&claims, max).unwrap();
    assert_eq!(bodies.len(), 4);
    assert!(bodies.iter().all(|b| b.len() <= max));
    let back: Vec<Claim> = bodies
        .iter()
        .flat_map(|b| parse(b).unwrap().collect::<Claim>().unwrap())
        .collect();
    assert_eq!(back, claims);
    assert_eq!(
        encode_bodies::<Claim>(&[], max).unwrap(),
        Vec::<Vec<u8>>::new()
    );
    assert_eq!(
        encode_bodies(&claims, body_len(FIXED_LEN) - 1),
        Err(EncodeError::EntryTooLarge {
            index: 0,
            max_body: body_len(FIXED_LEN) - 1
        })
    );
}

#[test]
fn a_bad_holder_is_not_encoded() {
    let ok = Redirect {
        trace_id: [1; 16],
        holder: "a",
        holder_incarnation: 1,
        holder_state: State::PENDING,
    };
    let long = "h".repeat(254);
    for holder in ["", "a;b", "a b", long.as_str()] {
        let bad = Redirect { holder, ..ok };
        assert_eq!(
            encode_bodies(&[ok, bad], DEFAULT_MAX_BODY),
            Err(EncodeError::BadHolder { index: 1 }),
            "{holder:?}"
        );
    }
}

// === parse errors, one each ===

#[test]
fn malformed_protobuf() {
    assert_eq!(
        parse(&[0x0a, 5, 0]),
        Err(ControlError::Malformed(ScanError::new(
            ScanErrorKind::Truncated,
            1
        )))
    );
    // resource_spans as a varint
    assert_eq!(
        parse(&[0x08, 1]),
        Err(ControlError::Malformed(ScanError::new(
            ScanErrorKind::WrongWireType,
            0
        )))
    );
}

#[test]
fn no_resource() {
    assert_eq!(parse(&[]), Err(ControlError::NoResource { at: 0 }));
    // only an unknown field
    assert_eq!(parse(&[0x10, 1]), Err(ControlError::NoResource { at: 2 }));
}

#[test]
fn several_resources() {
    let (mut body, _) = one_claim();
    let n = body.len();
    body.extend_from_slice(&[0x0a, 0]);
    assert_eq!(parse(&body), Err(ControlError::SeveralResources { at: n }));
}

/// `one_claim()` with `extra` appended inside its ResourceSpans.
fn with_resource_field(extra: &[u8]) -> Vec<u8> {
    let (body, _) = one_claim();
    let mut rs = body[2..].to_vec();
    rs.extend_from_slice(extra);
    let mut out = vec![0x0a, rs.len() as u8];
    out.extend_from_slice(&rs);
    out
}

#[test]
fn holds_spans() {
    let body = with_resource_field(&[0x12, 0]);
    assert_eq!(parse(&body), Err(ControlError::HoldsSpans { at: 49 }));
}

#[test]
fn unknown_fields_and_schema_url_are_ignored() {
    let body = with_resource_field(&[0x1a, 1, b's', 0x98, 0x06, 0x2a]);
    assert_eq!(parse(&body).unwrap().claims().count(), 1);
    let body = with_resource_field(&[0x1a, 1, b's']);
    assert_eq!(parse(&body).unwrap().offset(), 28);
    // schema_url as a varint
    let body = with_resource_field(&[0x18, 1]);
    assert!(matches!(parse(&body), Err(ControlError::Malformed(_))));
}

#[test]
fn no_attribute() {
    // one ResourceSpans holding an empty Resource
    assert_eq!(
        parse(&[0x0a, 2, 0x0a, 0]),
        Err(ControlError::NoAttribute { at: 2 })
    );
    // an attribute with another key
    let mut body = one_claim().0;
    body[8] = b'T';
    assert_eq!(parse(&body), Err(ControlError::NoAttribute { at: 2 }));
}

#[test]
fn duplicate_attribute() {
    // the resource field twice (prost merges them), each with the attribute
    let (body, _) = one_claim();
    let resource = &body[2..];
    let mut rs = resource.to_vec();
    rs.extend_from_slice(resource);
    let mut out = vec![0x0a, rs.len() as u8];
    out.extend_from_slice(&rs);
    assert_eq!(
        parse(&out),
        Err(ControlError::DuplicateAttribute { at: 51 })
    );
}

#[test]
fn not_bytes() {
    let mut body = one_claim().0;
    body[26] = 0x0a; // bytes_value (7) -> string_value (1)
    assert_eq!(parse(&body), Err(ControlError::NotBytes { at: 4 }));
}

#[test]
fn truncated_entries() {
    let body = body_of_payload(&[0; 30]);
    let p = parse(&body).unwrap();
    let at = p.offset();
    let mut claims = p.claims();
    assert!(claims.next().unwrap().is_ok());
    assert_eq!(
        claims.next(),
        Some(Err(ControlError::Truncated {
            at: at + 21,
            need: 21,
            have: 9
        }))
    );
    assert_eq!(claims.next(), None, "stops after an error");
    let mut redirect = vec![0; 16];
    redirect.extend_from_slice(&5u16.to_le_bytes());
    redirect.extend_from_slice(b"abcde");
    let body = body_of_payload(&redirect);
    let p = parse(&body).unwrap();
    assert_eq!(
        p.collect::<Redirect<'_>>(),
        Err(ControlError::Truncated {
            at: p.offset(),
            need: 32,
            have: 23
        })
    );
    let body = body_of_payload(&[0; 17]);
    let p = parse(&body).unwrap();
    assert_eq!(
        p.collect::<Redirect<'_>>(),
        Err(ControlError::Truncated {
            at: p.offset(),
            need: 28,
            have: 17
        })
    );
}

#[test]
fn bad_state() {
    let mut payload = vec![0; 21];
    payload[16] = 4;
    let body = body_of_payload(&payload);
    let p = parse(&body).unwrap();
    assert_eq!(
        p.read(Kind::Claim),
        Err(ControlError::BadState {
            at: p.offset() + 16,
            state: 4
        })
    );
}

#[test]
fn bad_kept() {
    let mut payload = vec![0; 21];
    payload[16] = 2;
    let body = body_of_payload(&payload);
    let p = parse(&body).unwrap();
    assert_eq!(
        p.read(Kind::Decisions),
        Err(ControlError::BadKept {
            at: p.offset() + 16,
            kept: 2
        })
    );
}

fn redirect_payload(holder: &[u8], len: u16, state: u8) -> Vec<u8> {
    let mut p = vec![9; 16];
    p.extend_from_slice(&len.to_le_bytes());
    p.extend_from_slice(holder);
    p.extend_from_slice(&7u64.to_le_bytes());
    p.push(state);
    p
}

#[test]
fn bad_holder_length() {
    for len in [0u16, 254, u16::MAX] {
        let body = body_of_payload(&redirect_payload(b"x", len, 0));
        let p = parse(&body).unwrap();
        assert_eq!(
            p.read(Kind::Redirect),
            Err(ControlError::BadHolderLength {
                at: p.offset() + 16,
                len
            })
        );
    }
}

#[test]
fn bad_holder() {
    for holder in [&b"a;b"[..], b"a=b", b"a b", b"\xff\xfe"] {
        let payload = redirect_payload(holder, holder.len() as u16, 0);
        let body = body_of_payload(&payload);
        let p = parse(&body).unwrap();
        assert_eq!(
            p.read(Kind::Redirect),
            Err(ControlError::BadHolder {
                at: p.offset() + 18
            })
        );
    }
    let body = body_of_payload(&redirect_payload(b"gw", 2, 8));
    let p = parse(&body).unwrap();
    assert_eq!(
        p.read(Kind::Redirect),
        Err(ControlError::BadState {
            at: p.offset() + 28,
            state: 8
        })
    );
}

#[test]
fn not_empty_and_not_control() {
    let body = body_of_payload(&[1]);
    let p = parse(&body).unwrap();
    for kind in [Kind::Drain, Kind::Done] {
        assert_eq!(
            p.read(kind),
            Err(ControlError::NotEmpty {
                at: p.offset(),
                len: 1
            })
        );
    }
    for kind in [Kind::Fwd, Kind::HandOver] {
        assert_eq!(p.read(kind), Err(ControlError::NotControl { kind }));
    }
}

#[test]
fn collected_entries_stay_within_twice_the_payload() {
    let body = body_of_payload(&redirect_payload(b"a", 1, 0).repeat(100));
    let p = parse(&body).unwrap();
    let v = p.collect::<Redirect<'_>>().unwrap();
    assert_eq!(v.len(), 100);
    assert!(v.capacity() * std::mem::size_of::<Redirect<'_>>() <= 2 * p.bytes().len());
    let body = body_of_payload(&[0; 21 * 50]);
    let p = parse(&body).unwrap();
    let v = p.collect::<Claim>().unwrap();
    assert!(v.capacity() * std::mem::size_of::<Claim>() <= 2 * p.bytes().len());
}

#[test]
fn errors_read_well() {
    assert_eq!(
        ControlError::Truncated {
            at: 40,
            need: 21,
            have: 3
        }
        .to_string(),
        "control entry at byte 40 needs 21 bytes, 3 left"
    );
    assert_eq!(
        ControlError::NotControl { kind: Kind::Fwd }.to_string(),
        "k=fwd is not a control message"
    );
}
