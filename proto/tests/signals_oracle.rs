//! Property tests of the logs and metrics wire code against prost + opentelemetry-proto: random
//! requests (several resources, scopes and items; every metric data kind with attributes and
//! exemplars), encoded by hand from prost-encoded parts so unknown fields can be injected at every
//! level (request, resource, scope, log record, metric, data message). Counts, checks, splits and
//! re-framed requests are compared with what prost decodes from the input.
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value::Value, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::metrics::v1::exponential_histogram_data_point::Buckets;
use opentelemetry_proto::tonic::metrics::v1::summary_data_point::ValueAtQuantile;
use opentelemetry_proto::tonic::metrics::v1::{
    exemplar, metric::Data, number_data_point, Exemplar, ExponentialHistogram,
    ExponentialHistogramDataPoint, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    Sum, Summary, SummaryDataPoint,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use proptest::prelude::*;
use prost::Message;
use tailgate_proto::{
    check_log_records, check_metrics, count_data_points, count_log_records, count_metrics, items,
    reframe_items, Splitter,
};

mod strategies;

use strategies::{any_value, attributes, id};

// === strategies ===

fn log_record() -> BoxedStrategy<LogRecord> {
    (
        (any::<u64>(), any::<u64>(), 0..25i32, "[A-Z]{0,5}"),
        (
            proptest::option::of(any_value(1)),
            attributes(),
            any::<u32>(),
        ),
        (id(16), id(8), "[a-z.]{0,6}"),
    )
        .prop_map(
            |(
                (time_unix_nano, observed_time_unix_nano, severity_number, severity_text),
                (body, attributes, flags),
                (trace_id, span_id, event_name),
            )| LogRecord {
                time_unix_nano,
                observed_time_unix_nano,
                severity_number,
                severity_text,
                body,
                attributes,
                dropped_attributes_count: 0,
                flags,
                trace_id,
                span_id,
                event_name,
            },
        )
        .boxed()
}

fn double() -> impl Strategy<Value = f64> {
    any::<f64>().prop_filter("NaN != NaN", |f| !f.is_nan())
}

fn exemplars() -> impl Strategy<Value = Vec<Exemplar>> {
    proptest::collection::vec(
        (id(16), id(8), any::<u64>(), attributes(), any::<i64>()).prop_map(
            |(trace_id, span_id, time_unix_nano, filtered_attributes, v)| Exemplar {
                filtered_attributes,
                time_unix_nano,
                span_id,
                trace_id,
                value: Some(exemplar::Value::AsInt(v)),
            },
        ),
        0..2,
    )
}

fn number_points() -> impl Strategy<Value = Vec<NumberDataPoint>> {
    proptest::collection::vec(
        (
            attributes(),
            any::<u64>(),
            double(),
            exemplars(),
            any::<u32>(),
        )
            .prop_map(|(attributes, time_unix_nano, v, exemplars, flags)| {
                NumberDataPoint {
                    attributes,
                    start_time_unix_nano: 1,
                    time_unix_nano,
                    exemplars,
                    flags,
                    value: Some(number_data_point::Value::AsDouble(v)),
                }
            }),
        0..4,
    )
}

fn data() -> impl Strategy<Value = Option<Data>> {
    let histogram = proptest::collection::vec(
        (
            attributes(),
            proptest::collection::vec(any::<u64>(), 0..4),
            exemplars(),
        )
            .prop_map(|(attributes, bucket_counts, exemplars)| {
                let explicit_bounds = (1..bucket_counts.len()).map(|i| i as f64).collect();
                HistogramDataPoint {
                    attributes,
                    count: bucket_counts.iter().fold(0u64, |a, b| a.wrapping_add(*b)),
                    bucket_counts,
                    explicit_bounds,
                    exemplars,
                    sum: Some(1.5),
                    min: None,
                    max: Some(2.0),
                    ..Default::default()
                }
            }),
        0..4,
    );
    let exponential = proptest::collection::vec(
        (attributes(), -10..10i32, exemplars()).prop_map(|(attributes, scale, exemplars)| {
            ExponentialHistogramDataPoint {
                attributes,
                scale,
                zero_count: 1,
                positive: Some(Buckets {
                    offset: scale,
                    bucket_counts: vec![1, 2],
                }),
                exemplars,
                ..Default::default()
            }
        }),
        0..4,
    );
    let summary = proptest::collection::vec(
        (attributes(), any::<u64>()).prop_map(|(attributes, count)| SummaryDataPoint {
            attributes,
            count,
            sum: 3.0,
            quantile_values: vec![ValueAtQuantile {
                quantile: 0.5,
                value: 1.0,
            }],
            ..Default::default()
        }),
        0..4,
    );
    proptest::option::weighted(
        0.9,
        prop_oneof![
            number_points().prop_map(|data_points| Data::Gauge(Gauge { data_points })),
            (number_points(), 0..3i32, any::<bool>()).prop_map(|(data_points, t, m)| {
                Data::Sum(Sum {
                    data_points,
                    aggregation_temporality: t,
                    is_monotonic: m,
                })
            }),
            (histogram, 0..3i32).prop_map(|(data_points, t)| Data::Histogram(Histogram {
                data_points,
                aggregation_temporality: t
            })),
            (exponential, 0..3i32).prop_map(|(data_points, t)| {
                Data::ExponentialHistogram(ExponentialHistogram {
                    data_points,
                    aggregation_temporality: t,
                })
            }),
            summary.prop_map(|data_points| Data::Summary(Summary { data_points })),
        ],
    )
}

fn metric() -> BoxedStrategy<Metric> {
    (
        "[a-c.]{0,4}",
        "[a-z ]{0,6}",
        "[a-z]{0,2}",
        attributes(),
        data(),
    )
        .prop_map(|(name, description, unit, metadata, data)| Metric {
            name,
            description,
            unit,
            metadata,
            data,
        })
        .boxed()
}

/// A scope: its message, schema URL and items.
type ScopeParts<T> = (Option<InstrumentationScope>, String, Vec<T>);

/// A request as parts, so the test can encode it by hand with unknown fields.
#[derive(Debug, Clone)]
struct Req<T> {
    resources: Vec<(Option<Resource>, String, Vec<ScopeParts<T>>)>,
    unknown: bool,
}

fn request<T: std::fmt::Debug + Clone + 'static>(
    item: BoxedStrategy<T>,
) -> impl Strategy<Value = Req<T>> {
    let scope = (
        proptest::option::of(("[a-z.]{0,6}", "[0-9.]{0,3}").prop_map(|(name, version)| {
            InstrumentationScope {
                name,
                version,
                ..Default::default()
            }
        })),
        "[a-z:/]{0,4}",
        proptest::collection::vec(item, 0..5),
    );
    let resource = (
        proptest::option::of((proptest::option::of("[a-c]{1,2}"), attributes()).prop_map(
            |(svc, mut attributes)| {
                if let Some(s) = svc {
                    attributes.insert(0, kv("service.name", Value::StringValue(s)));
                }
                Resource {
                    attributes,
                    ..Default::default()
                }
            },
        )),
        "[a-z:/]{0,4}",
        proptest::collection::vec(scope, 0..3),
    );
    (proptest::collection::vec(resource, 0..4), any::<bool>())
        .prop_map(|(resources, unknown)| Req { resources, unknown })
}

fn kv(key: &str, v: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(opentelemetry_proto::tonic::common::v1::AnyValue { value: Some(v) }),
    }
}

// === hand encoding with unknown fields ===

fn put_len_field(out: &mut Vec<u8>, number: u32, payload: &[u8]) {
    prost::encoding::encode_key(number, prost::encoding::WireType::LengthDelimited, out);
    prost::encoding::encode_varint(payload.len() as u64, out);
    out.extend_from_slice(payload);
}

/// Field 99 varint 42 and field 100 "opaque": unknown to every message here.
fn unknown(out: &mut Vec<u8>, on: bool) {
    if on {
        out.extend_from_slice(&[0x98, 0x06, 0x2a]);
        put_len_field(out, 100, b"opaque");
    }
}

fn encode<T>(req: &Req<T>, item: impl Fn(&T, bool) -> Vec<u8>) -> Vec<u8> {
    let mut out = Vec::new();
    unknown(&mut out, req.unknown);
    for (res, schema, scopes) in &req.resources {
        let mut rs = Vec::new();
        if let Some(r) = res {
            put_len_field(&mut rs, 1, &r.encode_to_vec());
        }
        unknown(&mut rs, req.unknown);
        for (scope, sschema, items) in scopes {
            let mut ss = Vec::new();
            if let Some(s) = scope {
                put_len_field(&mut ss, 1, &s.encode_to_vec());
            }
            for i in items {
                put_len_field(&mut ss, 2, &item(i, req.unknown));
            }
            unknown(&mut ss, req.unknown);
            if !sschema.is_empty() {
                put_len_field(&mut ss, 3, sschema.as_bytes());
            }
            put_len_field(&mut rs, 2, &ss);
        }
        if !schema.is_empty() {
            put_len_field(&mut rs, 3, schema.as_bytes());
        }
        put_len_field(&mut out, 1, &rs);
    }
    out
}

fn encode_log(r: &LogRecord, unknown_on: bool) -> Vec<u8> {
    let mut out = r.encode_to_vec();
    unknown(&mut out, unknown_on);
    out
}

/// A metric with unknown fields in the metric and in its data message (after the data points).
fn encode_metric(m: &Metric, unknown_on: bool) -> Vec<u8> {
    let mut out = Metric {
        data: None,
        ..m.clone()
    }
    .encode_to_vec();
    if let Some(d) = &m.data {
        let (number, mut data) = match d {
            Data::Gauge(g) => (5, g.encode_to_vec()),
            Data::Sum(s) => (7, s.encode_to_vec()),
            Data::Histogram(h) => (9, h.encode_to_vec()),
            Data::ExponentialHistogram(e) => (10, e.encode_to_vec()),
            Data::Summary(s) => (11, s.encode_to_vec()),
        };
        unknown(&mut data, unknown_on);
        put_len_field(&mut out, number, &data);
    }
    unknown(&mut out, unknown_on);
    out
}

// === what prost decodes ===

/// (resource, resource schema, scope, scope schema, item) for every item of a decoded request.
type Triple<T> = (
    Option<Resource>,
    String,
    Option<InstrumentationScope>,
    String,
    T,
);

fn log_triples(bytes: &[u8]) -> Vec<Triple<LogRecord>> {
    let req = ExportLogsServiceRequest::decode(bytes).unwrap();
    let mut out = Vec::new();
    for rl in req.resource_logs {
        for sl in rl.scope_logs {
            for r in sl.log_records {
                out.push((
                    rl.resource.clone(),
                    rl.schema_url.clone(),
                    sl.scope.clone(),
                    sl.schema_url.clone(),
                    r,
                ));
            }
        }
    }
    out
}

fn metric_triples(bytes: &[u8]) -> Vec<Triple<Metric>> {
    let req = ExportMetricsServiceRequest::decode(bytes).unwrap();
    let mut out = Vec::new();
    for rm in req.resource_metrics {
        for sm in rm.scope_metrics {
            for m in sm.metrics {
                out.push((
                    rm.resource.clone(),
                    rm.schema_url.clone(),
                    sm.scope.clone(),
                    sm.schema_url.clone(),
                    m,
                ));
            }
        }
    }
    out
}

/// A metric as its envelope (the metric with its data's points removed) and its points, each
/// encoded as on the wire.
fn metric_points(m: &Metric) -> (Metric, Vec<Vec<u8>>) {
    let mut env = m.clone();
    let points = match &mut env.data {
        None => Vec::new(),
        Some(Data::Gauge(g)) => std::mem::take(&mut g.data_points)
            .iter()
            .map(Message::encode_to_vec)
            .collect(),
        Some(Data::Sum(s)) => std::mem::take(&mut s.data_points)
            .iter()
            .map(Message::encode_to_vec)
            .collect(),
        Some(Data::Histogram(h)) => std::mem::take(&mut h.data_points)
            .iter()
            .map(Message::encode_to_vec)
            .collect(),
        Some(Data::ExponentialHistogram(e)) => std::mem::take(&mut e.data_points)
            .iter()
            .map(Message::encode_to_vec)
            .collect(),
        Some(Data::Summary(s)) => std::mem::take(&mut s.data_points)
            .iter()
            .map(Message::encode_to_vec)
            .collect(),
    };
    (env, points)
}

/// Every data point of a decoded request with its resource, scope and metric envelope.
fn point_triples(bytes: &[u8]) -> Vec<Triple<(Metric, Vec<u8>)>> {
    let mut out = Vec::new();
    for (r, rs, s, ss, m) in metric_triples(bytes) {
        let (env, points) = metric_points(&m);
        for p in points {
            out.push((
                r.clone(),
                rs.clone(),
                s.clone(),
                ss.clone(),
                (env.clone(), p),
            ));
        }
    }
    out
}

fn sorted<T: std::fmt::Debug>(mut v: Vec<T>) -> Vec<T> {
    v.sort_by_cached_key(|t| format!("{t:?}"));
    v
}

/// A routing key a test can compute from prost values as well as from the wire views.
fn hash(parts: &[&[u8]], n: usize) -> usize {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for p in parts {
        for b in *p {
            h = (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
        h = (h ^ 0xff).wrapping_mul(0x100_0000_01b3);
    }
    (h % n as u64) as usize
}

fn service_name(r: &Option<Resource>) -> Vec<u8> {
    r.iter()
        .flat_map(|r| &r.attributes)
        .find(|a| a.key == "service.name")
        .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some(s.as_bytes().to_vec()),
            _ => None,
        })
        .unwrap_or_default()
}

fn scope_name(s: &Option<InstrumentationScope>) -> Vec<u8> {
    s.as_ref()
        .map(|s| s.name.as_bytes().to_vec())
        .unwrap_or_default()
}

/// Whether every item message of a request (the innermost LEN field payloads found by `f`)
/// carries the unknown fields the encoder injected.
fn all_carry_unknown(msgs: &[Bytes]) -> bool {
    msgs.iter().all(|m| m.windows(6).any(|w| w == b"opaque"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn logs_count_check_split_and_reframe_like_prost(req in request(log_record()), n in 1usize..5) {
        let input = encode(&req, encode_log);
        let expected = log_triples(&input);
        prop_assert_eq!(count_log_records(&input).unwrap(), expected.len());
        prop_assert_eq!(check_log_records(&input).unwrap(), expected.len());
        // Split by service name, scope name and trace id, all read from the routing view.
        let route = |svc: &[u8], scope: &[u8], trace: &[u8]| hash(&[svc, scope, trace], n);
        let parts = Splitter::new()
            .split_logs(&input, n, |r| {
                route(r.resource().service_name().unwrap_or_default(), r.scope().name(), r.trace_id())
            })
            .unwrap();
        prop_assert_eq!(parts.len(), n);
        let mut union = Vec::new();
        for (d, part) in parts.iter().enumerate() {
            for t in log_triples(part) {
                prop_assert_eq!(route(&service_name(&t.0), &scope_name(&t.2), &t.4.trace_id), d);
                union.push(t);
            }
            prop_assert_eq!(count_log_records(part).unwrap(), log_triples(part).len());
        }
        prop_assert_eq!(sorted(union), sorted(expected.clone()));
        prop_assert_eq!(sorted(log_triples(&parts.concat())), sorted(expected.clone()));
        // Byte for byte: every output record (with its unknown fields) is an input record.
        let bytes = |b: &[u8]| -> Vec<Bytes> {
            let mut v: Vec<Bytes> = items(&Bytes::copy_from_slice(b)).unwrap().iter().map(|i| i.bytes().clone()).collect();
            v.sort();
            v
        };
        let out: Vec<Bytes> = sorted(parts.iter().flat_map(|p| bytes(p)).collect());
        prop_assert_eq!(&out, &sorted(bytes(&input)));
        if req.unknown {
            prop_assert!(all_carry_unknown(&out));
        }
        // Items and re-frame: all in order, then a subset.
        let input = Bytes::from(input);
        let all = items(&input).unwrap();
        // Sorted: items whose headers are both empty share a group (the same resource), as spans do.
        prop_assert_eq!(sorted(log_triples(&reframe_items(&all))), sorted(expected.clone()));
        let keep: Vec<_> = all.iter().step_by(2).collect();
        let want: Vec<_> = expected.iter().step_by(2).cloned().collect();
        prop_assert_eq!(sorted(log_triples(&reframe_items(keep))), sorted(want));
    }

    #[test]
    fn metrics_split_whole_like_prost(req in request(metric()), n in 1usize..5) {
        let input = encode(&req, encode_metric);
        let expected = metric_triples(&input);
        let points: usize = expected.iter().map(|t| metric_points(&t.4).1.len()).sum();
        prop_assert_eq!(count_metrics(&input).unwrap(), expected.len());
        prop_assert_eq!(count_data_points(&input).unwrap(), points);
        prop_assert_eq!(check_metrics(&input).unwrap(), points);
        let route = |svc: &[u8], name: &[u8]| hash(&[svc, name], n);
        let parts = Splitter::new()
            .split_metrics(&input, n, |m| {
                route(m.resource().service_name().unwrap_or_default(), m.name())
            })
            .unwrap();
        let mut union = Vec::new();
        for (d, part) in parts.iter().enumerate() {
            for t in metric_triples(part) {
                prop_assert_eq!(route(&service_name(&t.0), t.4.name.as_bytes()), d);
                union.push(t);
            }
        }
        prop_assert_eq!(sorted(union), sorted(expected.clone()));
        let total: usize = parts.iter().map(|p| count_data_points(p).unwrap()).sum();
        prop_assert_eq!(total, points);
        let bytes = |b: &[u8]| -> Vec<Bytes> {
            items(&Bytes::copy_from_slice(b)).unwrap().iter().map(|i| i.bytes().clone()).collect()
        };
        let out = sorted(parts.iter().flat_map(|p| bytes(p)).collect::<Vec<_>>());
        prop_assert_eq!(&out, &sorted(bytes(&input)));
        let input = Bytes::from(input);
        let all = items(&input).unwrap();
        prop_assert_eq!(sorted(metric_triples(&reframe_items(&all))), sorted(expected.clone()));
        let keep: Vec<_> = all.iter().skip(1).step_by(2).collect();
        let want: Vec<_> = expected.iter().skip(1).step_by(2).cloned().collect();
        prop_assert_eq!(sorted(metric_triples(&reframe_items(keep))), sorted(want));
    }

    #[test]
    fn metrics_split_by_data_point_like_prost(req in request(metric()), n in 1usize..5) {
        let input = encode(&req, encode_metric);
        let expected = point_triples(&input);
        // The stream: metric name and the point's attributes, as the encoded point holds them.
        let route = |name: &[u8], point: &[u8]| hash(&[name, point], n);
        let parts = Splitter::new()
            .split_data_points(&input, n, |p| route(p.metric().name(), p.bytes()))
            .unwrap();
        let mut union = Vec::new();
        for (d, part) in parts.iter().enumerate() {
            for t in point_triples(part) {
                prop_assert_eq!(route(t.4.0.name.as_bytes(), &t.4.1), d);
                union.push(t);
            }
            prop_assert_eq!(count_data_points(part).unwrap(), point_triples(part).len());
            prop_assert!(check_metrics(part).is_ok());
            // Unknown fields of the metric and of its data message travel with every copy.
            if req.unknown {
                let metrics: Vec<Bytes> = items(&Bytes::copy_from_slice(part)).unwrap().iter().map(|i| i.bytes().clone()).collect();
                prop_assert!(all_carry_unknown(&metrics));
                for m in &metrics {
                    prop_assert!(m.windows(6).filter(|w| w == b"opaque").count() >= 2, "data message's unknown field lost");
                }
            }
        }
        prop_assert_eq!(sorted(union), sorted(expected.clone()));
        prop_assert_eq!(sorted(point_triples(&parts.concat())), sorted(expected));
        // Attribute lookup on the point view agrees with prost (first occurrence).
        Splitter::new().split_data_points(&input, 1, |p| {
            let want = metric_points_attrs(p.bytes(), p.kind());
            let got: Vec<Vec<u8>> = p.attributes().map(|kv| kv.unwrap().0.to_vec()).collect();
            assert_eq!(got, want);
            0
        }).unwrap();
    }
}

/// Flips bytes of `input` and cuts it short: what the fuzz targets see.
fn damage(mut input: Vec<u8>, edits: &[(usize, u8)], cut: usize) -> Vec<u8> {
    let n = input.len();
    if n > 0 {
        for &(at, b) in edits {
            input[at % n] = b;
        }
    }
    input.truncate(cut % (n + 1));
    input
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// The fuzz targets' oracles (prost agreement, check and count agreement, splits keeping
    /// counts) on random requests, whole or damaged.
    #[test]
    fn fuzz_oracles_hold_on_damaged_requests(
        logs in request(log_record()),
        metrics in request(metric()),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..3),
        cut in any::<usize>(),
        whole in any::<bool>(),
    ) {
        let (logs, metrics) = (encode(&logs, encode_log), encode(&metrics, encode_metric));
        let (cut_l, cut_m) = if whole { (logs.len(), metrics.len()) } else { (cut, cut) };
        tailgate_proto::fuzzing::logs(&damage(logs, &edits, cut_l));
        tailgate_proto::fuzzing::metrics(&damage(metrics, &edits, cut_m));
    }
}

/// The attribute keys of an encoded data point of `kind`, decoded by prost.
fn metric_points_attrs(point: &[u8], kind: tailgate_proto::DataKind) -> Vec<Vec<u8>> {
    use tailgate_proto::DataKind as K;
    let attrs = match kind {
        K::Gauge | K::Sum => NumberDataPoint::decode(point).unwrap().attributes,
        K::Histogram => HistogramDataPoint::decode(point).unwrap().attributes,
        K::ExponentialHistogram => {
            ExponentialHistogramDataPoint::decode(point)
                .unwrap()
                .attributes
        }
        K::Summary => SummaryDataPoint::decode(point).unwrap().attributes,
    };
    attrs.into_iter().map(|kv| kv.key.into_bytes()).collect()
}

/// Two data fields of the same kind merge in prost; a different kind after them replaces them:
/// counting and the data point split follow.
#[test]
fn repeated_data_fields_follow_prosts_oneof() {
    let point = |v: f64| NumberDataPoint {
        value: Some(number_data_point::Value::AsDouble(v)),
        ..Default::default()
    };
    let sum = |pts: Vec<NumberDataPoint>| {
        Sum {
            data_points: pts,
            aggregation_temporality: 2,
            is_monotonic: true,
        }
        .encode_to_vec()
    };
    let gauge = Gauge {
        data_points: vec![point(9.0)],
    }
    .encode_to_vec();
    let wrap = |fields: &[(u32, Vec<u8>)]| {
        let mut m = Vec::new();
        put_len_field(&mut m, 1, b"m");
        for (n, f) in fields {
            put_len_field(&mut m, *n, f);
        }
        let mut sm = Vec::new();
        put_len_field(&mut sm, 2, &m);
        let mut rm = Vec::new();
        put_len_field(&mut rm, 2, &sm);
        let mut req = Vec::new();
        put_len_field(&mut req, 1, &rm);
        req
    };
    for fields in [
        vec![
            (7, sum(vec![point(1.0)])),
            (7, sum(vec![point(2.0), point(3.0)])),
        ],
        vec![(7, sum(vec![point(1.0)])), (5, gauge.clone())],
        vec![
            (5, gauge.clone()),
            (7, sum(vec![point(1.0)])),
            (7, sum(vec![point(2.0)])),
        ],
    ] {
        let req = wrap(&fields);
        let want = point_triples(&req);
        assert_eq!(count_data_points(&req).unwrap(), want.len());
        assert_eq!(check_metrics(&req).unwrap(), want.len());
        let parts = Splitter::new()
            .split_data_points(&req, 2, |p| p.bytes().len() % 2)
            .unwrap();
        let got: Vec<_> = parts.iter().flat_map(|p| point_triples(p)).collect();
        assert_eq!(sorted(got), sorted(want));
    }
}

#[test]
fn empty_requests_and_zero_destinations() {
    let mut s = Splitter::new();
    assert!(s
        .split_logs(&[], 3, |_| 0)
        .unwrap()
        .iter()
        .all(|p| p.is_empty()));
    assert!(s.split_metrics(&[], 0, |_| 0).unwrap().is_empty());
    assert!(s
        .split_data_points(&[], 2, |_| 0)
        .unwrap()
        .iter()
        .all(|p| p.is_empty()));
    assert_eq!(count_log_records(&[]).unwrap(), 0);
    assert_eq!(count_data_points(&[]).unwrap(), 0);
    assert!(reframe_items(&[]).is_empty());
}
