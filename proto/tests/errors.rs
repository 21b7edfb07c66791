//! One test per scanner error kind, with the byte offset each one reports.
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use tailgate_proto::{count_spans, scan, split, ScanError, ScanErrorKind};

/// `resource_spans { scope_spans { spans { <span> } } }` around raw span bytes.
fn wrap_span(span: &[u8]) -> Vec<u8> {
    let ss = [&[0x12, span.len() as u8][..], span].concat();
    let rs = [&[0x12, ss.len() as u8][..], &ss].concat();
    [&[0x0a, rs.len() as u8][..], &rs].concat()
}

fn err(buf: &[u8]) -> ScanError {
    scan(&Bytes::copy_from_slice(buf)).unwrap_err()
}

#[test]
fn wrong_wire_type_for_a_known_field() {
    // resource_spans as a varint
    assert_eq!(
        err(&[0x08, 0x01]),
        ScanError {
            kind: ScanErrorKind::WrongWireType,
            at: 0
        }
    );
    // span name (field 5) as fixed32, at offset 6 of the request
    let buf = wrap_span(&[0x2d, 1, 2, 3, 4]);
    assert_eq!(
        err(&buf),
        ScanError {
            kind: ScanErrorKind::WrongWireType,
            at: 6
        }
    );
    // the structural walk (split's) does not enter spans, so it accepts this
    assert_eq!(count_spans(&buf).unwrap(), 1);
}

#[test]
fn bad_id_length() {
    let buf = wrap_span(&[0x0a, 3, 1, 2, 3]);
    assert_eq!(
        err(&buf),
        ScanError {
            kind: ScanErrorKind::BadIdLength,
            at: 6
        }
    );
    // routing sees an empty trace id instead of failing
    let parts = split(&buf, 2, |s| s.trace_id().len()).unwrap();
    assert_eq!(count_spans(&parts[0]).unwrap(), 1);
}

#[test]
fn truncated_length_and_varint() {
    assert_eq!(
        err(&[0x0a, 0x05, 0x00]),
        ScanError {
            kind: ScanErrorKind::Truncated,
            at: 1
        }
    );
    assert_eq!(
        err(&[0x0a, 0x80]),
        ScanError {
            kind: ScanErrorKind::Truncated,
            at: 2
        }
    );
    // a length past the end of the enclosing message, not just of the buffer
    let buf = [0x0a, 0x02, 0x12, 0x05, 0, 0, 0, 0, 0];
    assert_eq!(
        err(&buf),
        ScanError {
            kind: ScanErrorKind::Truncated,
            at: 3
        }
    );
}

#[test]
fn bad_varint_wire_type_field_number_group() {
    let mut buf = vec![0x08];
    buf.extend([0xff; 10]);
    assert_eq!(
        err(&buf),
        ScanError {
            kind: ScanErrorKind::BadVarint,
            at: 1
        }
    );
    assert_eq!(
        err(&[0x0f]),
        ScanError {
            kind: ScanErrorKind::BadWireType,
            at: 0
        }
    );
    assert_eq!(
        err(&[0x0a, 0x01, 0x02]),
        ScanError {
            kind: ScanErrorKind::BadFieldNumber,
            at: 2
        }
    );
    assert_eq!(
        err(&[0x0a, 0x01, 0x0c]),
        ScanError {
            kind: ScanErrorKind::BadGroup,
            at: 3
        }
    );
}

#[test]
fn unknown_fields_and_groups_are_skipped() {
    // request-level unknown group, resource-level unknown fixed32, span-level unknown fixed64
    let mut buf = vec![0xa3, 0x06, 0x08, 0x01, 0xa4, 0x06]; // group 100 { field 1 = 1 }
    let span = [
        0x0a, 16, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 0xa1, 0x06, 1, 2, 3, 4, 5, 6, 7,
        8,
    ];
    buf.extend(wrap_span(&span));
    let views = scan(&Bytes::from(buf.clone())).unwrap();
    assert_eq!(views[0].trace_id(), [7; 16]);
    assert_eq!(views[0].span_slice(), &span[..]);
    let parts = split(&buf, 1, |_| 0).unwrap();
    assert_eq!(
        &parts[0][..6],
        &buf[..6],
        "request-level unknown field kept"
    );
}
