//! The errors of the logs and metrics walks: what the receivers' checks refuse, with the path and
//! byte offset each reports, and the structural errors the counts share.
#![allow(clippy::unwrap_used)]

use tailgate_proto::{
    check_log_records, check_metrics, count_data_points, count_log_records, count_metrics,
    ScanError, ScanErrorKind, Signal, SignalError, Splitter,
};

/// A length-delimited field with a one-byte tag and length.
fn field(n: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 128);
    [&[(n << 3) | 2, payload.len() as u8][..], payload].concat()
}

/// `resource_* { scope_* { item } }` around one item: the item's payload starts at byte 6.
fn wrap(item: &[u8]) -> Vec<u8> {
    field(1, &field(2, &field(2, item)))
}

fn invalid(r: Result<usize, SignalError>) -> (tailgate_proto::InvalidItem, usize) {
    match r {
        Err(SignalError::Invalid { first, items }) => (first, items),
        other => panic!("expected an invalid item, got {other:?}"),
    }
}

#[test]
fn log_record_with_a_short_trace_id() {
    let good = field(9, &[1; 16]);
    let bad = [field(3, b"INFO"), field(9, &[1; 8])].concat();
    let req = [wrap(&good), wrap(&bad)].concat();
    assert_eq!(count_log_records(&req).unwrap(), 2);
    let (first, items) = invalid(check_log_records(&req));
    assert_eq!(items, 2);
    assert_eq!(first.signal, Signal::Logs);
    assert_eq!((first.resource, first.scope, first.item), (1, 0, 0));
    // The second request starts at 24; its record at 30; trace_id after severity_text (6 bytes).
    assert_eq!(first.at, 36);
    assert_eq!(
        first.to_string(),
        "resource_logs[1].scope_logs[0].log_records[0].trace_id: 8 bytes, want 16 or 0"
    );
}

#[test]
fn log_record_field_of_the_wrong_wire_type() {
    // severity_number (2) as a length-delimited field
    let req = wrap(&field(2, b"x"));
    let (first, _) = invalid(check_log_records(&req));
    assert_eq!(first.at, 6);
    assert_eq!(
        first.to_string(),
        "resource_logs[0].scope_logs[0].log_records[0].severity_number: wire type 2, want 0"
    );
    // The record's own bytes do not walk: a length past its end.
    let (first, _) = invalid(check_log_records(&wrap(&[0x1a, 9])));
    assert_eq!(
        first.to_string(),
        "resource_logs[0].scope_logs[0].log_records[0]: malformed protobuf: Truncated at byte 7"
    );
    // The structural walk does not enter records, so it counts them and splits them.
    assert_eq!(count_log_records(&req).unwrap(), 1);
    let parts = Splitter::new().split_logs(&req, 2, |_| 1).unwrap();
    assert_eq!(&parts[1][..], &req[..]);
}

#[test]
fn structural_errors_have_offsets() {
    // scope_logs declared longer than its resource
    let req = [0x0a, 0x02, 0x12, 0x05, 0, 0, 0];
    let want = ScanError {
        kind: ScanErrorKind::Truncated,
        at: 3,
    };
    assert_eq!(count_log_records(&req), Err(want));
    assert_eq!(check_log_records(&req), Err(SignalError::Malformed(want)));
    assert_eq!(count_metrics(&req), Err(want));
    assert_eq!(check_metrics(&req), Err(SignalError::Malformed(want)));
    // a metric's data field as a varint: the count must enter it, so the request is malformed
    let req = wrap(&[0x38, 0x01]);
    let want = ScanError {
        kind: ScanErrorKind::WrongWireType,
        at: 6,
    };
    assert_eq!(count_metrics(&req).unwrap(), 1);
    assert_eq!(count_data_points(&req), Err(want));
    assert_eq!(check_metrics(&req), Err(SignalError::Malformed(want)));
    assert_eq!(
        Splitter::new()
            .split_data_points(&req, 2, |_| 0)
            .unwrap_err(),
        want
    );
    // data_points as a fixed32, inside a gauge
    let req = wrap(&field(5, &[0x0d, 1, 2, 3, 4]));
    assert_eq!(
        count_data_points(&req),
        Err(ScanError {
            kind: ScanErrorKind::WrongWireType,
            at: 8
        })
    );
}

#[test]
fn metric_faults_name_their_data_point_and_exemplar() {
    // sum { data_points { time_unix_nano as varint } }
    let point = [0x18, 0x01];
    let req = wrap(&[field(1, b"m"), field(7, &field(1, &point))].concat());
    let (first, items) = invalid(check_metrics(&req));
    assert_eq!(items, 1);
    assert_eq!(first.at, 13);
    assert_eq!(
        first.to_string(),
        "resource_metrics[0].scope_metrics[0].metrics[0].sum.data_points[0].time_unix_nano: wire type 0, want 1"
    );
    // histogram { data_points { ok }, data_points { exemplars { ok }, exemplars { span_id 3 bytes } } }
    let exemplar_ok = field(5, &[7; 16]);
    let exemplar_bad = field(4, &[7; 3]);
    let point_bad = [field(8, &exemplar_ok), field(8, &exemplar_bad)].concat();
    let data = [field(1, &[]), field(1, &point_bad), vec![0x10, 0x02]].concat();
    let req = wrap(&field(9, &data));
    let (first, items) = invalid(check_metrics(&req));
    assert_eq!(items, 2);
    assert_eq!(first.data, Some(("histogram", Some(1))));
    assert_eq!(first.exemplar, Some(1));
    assert_eq!(
        first.to_string(),
        "resource_metrics[0].scope_metrics[0].metrics[0].histogram.data_points[1].exemplars[1].span_id: 3 bytes, want 8 or 0"
    );
    // aggregation_temporality (2) as a length-delimited field, in the sum itself
    let req = wrap(&field(7, &field(2, b"x")));
    let (first, _) = invalid(check_metrics(&req));
    assert_eq!(
        first.to_string(),
        "resource_metrics[0].scope_metrics[0].metrics[0].sum.aggregation_temporality: wire type 2, want 0"
    );
    // the metric's name as a varint
    let req = wrap(&[0x08, 0x01]);
    let (first, _) = invalid(check_metrics(&req));
    assert_eq!(
        first.to_string(),
        "resource_metrics[0].scope_metrics[0].metrics[0].name: wire type 0, want 2"
    );
    // packed and unpacked bucket counts are both accepted
    let packed = field(6, &[0; 16]);
    let unpacked = [&[0x31][..], &[0; 8]].concat();
    let req = wrap(&field(
        9,
        &[field(1, &packed), field(1, &unpacked)].concat(),
    ));
    assert_eq!(check_metrics(&req), Ok(2));
}
