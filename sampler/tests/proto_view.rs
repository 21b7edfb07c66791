//! `SpanData` for proto's `SpanView`, checked against the prost message each view was scanned
//! from, and the gateway reference policies run over real scanned requests.
#![allow(clippy::unwrap_used, missing_docs)]

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value::Value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use tailgate_proto::SpanView;
use tailgate_sampler::config::SamplerConfig;
use tailgate_sampler::span::proto_view::scan_summarized;
use tailgate_sampler::testing::FakeClock;
use tailgate_sampler::{AttrValue, BatchOutput, Engine, SpanData, SpanKind, StatusCode};

const SEC: u64 = 1_000_000_000;
const T0: u64 = 1_700_000_000 * SEC;

// === building requests ===

fn kv(key: &str, v: Option<Value>) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: v }),
    }
}

/// One attribute of every type (and an empty value).
fn all_types(prefix: &str) -> Vec<KeyValue> {
    vec![
        kv(
            &format!("{prefix}.str"),
            Some(Value::StringValue(format!("{prefix}-v"))),
        ),
        kv(&format!("{prefix}.bool"), Some(Value::BoolValue(true))),
        kv(&format!("{prefix}.int"), Some(Value::IntValue(-42))),
        kv(&format!("{prefix}.double"), Some(Value::DoubleValue(2.5))),
        kv(
            &format!("{prefix}.bytes"),
            Some(Value::BytesValue(vec![0, 1, 255])),
        ),
        kv(
            &format!("{prefix}.array"),
            Some(Value::ArrayValue(ArrayValue {
                values: vec![AnyValue {
                    value: Some(Value::IntValue(1)),
                }],
            })),
        ),
        kv(
            &format!("{prefix}.kvlist"),
            Some(Value::KvlistValue(KeyValueList {
                values: vec![kv("inner", Some(Value::BoolValue(false)))],
            })),
        ),
        kv(&format!("{prefix}.empty"), None),
    ]
}

fn id16(n: u128) -> Vec<u8> {
    n.to_be_bytes().to_vec()
}

fn span(trace: &[u8], id: u64, parent: Option<u64>, start: u64, end: u64) -> Span {
    Span {
        trace_id: trace.to_vec(),
        span_id: id.to_be_bytes().to_vec(),
        parent_span_id: parent.map(|p| p.to_be_bytes().to_vec()).unwrap_or_default(),
        name: format!("op-{id}"),
        kind: 2,
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        flags: 1,
        ..Default::default()
    }
}

fn resource_spans(service: &str, scopes: Vec<(&str, Vec<Span>)>) -> ResourceSpans {
    let mut attrs = vec![kv("service.name", Some(Value::StringValue(service.into())))];
    attrs.extend(all_types("res"));
    ResourceSpans {
        resource: Some(Resource {
            attributes: attrs,
            ..Default::default()
        }),
        scope_spans: scopes
            .into_iter()
            .map(|(name, spans)| ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: name.into(),
                    version: "1.0".into(),
                    attributes: all_types("scope"),
                    ..Default::default()
                }),
                spans,
                schema_url: String::new(),
            })
            .collect(),
        schema_url: "https://opentelemetry.io/schemas/1.21.0".into(),
    }
}

fn encode(req: &ExportTraceServiceRequest) -> Bytes {
    Bytes::from(req.encode_to_vec())
}

/// The prost spans in scan order, each with its resource and scope.
fn flat(req: &ExportTraceServiceRequest) -> Vec<(&Resource, &InstrumentationScope, &Span)> {
    let mut out = Vec::new();
    for rs in &req.resource_spans {
        for ss in &rs.scope_spans {
            for s in &ss.spans {
                out.push((rs.resource.as_ref().unwrap(), ss.scope.as_ref().unwrap(), s));
            }
        }
    }
    out
}

/// A request exercising every accessor: two resources, two scopes, varied spans.
fn varied_request() -> ExportTraceServiceRequest {
    let t = id16(0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10);
    let mut root = span(&t, 1, None, T0, T0 + 5 * SEC);
    root.kind = 1;
    root.trace_state = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE".into();
    root.flags = 0x301; // sampled + SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE | IS_REMOTE
    root.attributes = all_types("span");
    root.status = Some(Status {
        message: "boom".into(),
        code: 2,
    });
    let mut client = span(&t, 2, Some(1), T0 + SEC, T0 + 2 * SEC);
    client.kind = 3;
    client.flags = 0;
    client.status = Some(Status {
        message: String::new(),
        code: 1,
    });
    let mut odd = span(&t, 3, Some(2), T0 + 3, T0 + 4);
    odd.kind = 9; // open enum: unknown kind
    odd.status = Some(Status {
        message: String::new(),
        code: 7,
    });
    odd.name = "ünïcode span".into();
    let mut producer = span(&id16(7), 4, Some(9), 10, 20);
    producer.kind = 4;
    let mut consumer = span(&id16(7), 5, Some(4), 30, 40);
    consumer.kind = 5;
    consumer.attributes = vec![kv("long", Some(Value::StringValue("x".repeat(300))))];
    ExportTraceServiceRequest {
        resource_spans: vec![
            resource_spans(
                "checkout",
                vec![("lib-a", vec![root, client]), ("lib-b", vec![odd])],
            ),
            resource_spans("queue", vec![("lib-c", vec![producer, consumer])]),
        ],
    }
}

// === accessor checks ===

fn expected_attr(v: &AnyValue) -> AttrValue<'_> {
    match &v.value {
        Some(Value::StringValue(s)) => AttrValue::Str(s),
        Some(Value::BoolValue(b)) => AttrValue::Bool(*b),
        Some(Value::IntValue(i)) => AttrValue::Int(*i),
        Some(Value::DoubleValue(d)) => AttrValue::Double(*d),
        Some(Value::BytesValue(b)) => AttrValue::Bytes(b),
        Some(Value::ArrayValue(_)) | Some(Value::KvlistValue(_)) | None => AttrValue::Other,
    }
}

fn check_attrs<'a>(
    attrs: &'a [KeyValue],
    lookup: impl Fn(&str) -> Option<AttrValue<'a>>,
    what: &str,
) {
    for a in attrs {
        let want = expected_attr(a.value.as_ref().unwrap());
        assert_eq!(lookup(&a.key), Some(want), "{what} attribute {}", a.key);
    }
    assert_eq!(lookup("absent.key"), None, "{what}");
}

fn check_view(view: &SpanView, res: &Resource, scope: &InstrumentationScope, s: &Span) {
    assert_eq!(view.trace_id().to_vec(), s.trace_id);
    assert_eq!(SpanData::span_id(view).to_vec(), s.span_id);
    if s.parent_span_id.is_empty() {
        assert!(SpanData::is_root(view));
        assert!(SpanData::parent_span_id(view).iter().all(|b| *b == 0));
    } else {
        assert!(!SpanData::is_root(view));
        assert_eq!(SpanData::parent_span_id(view), s.parent_span_id.as_slice());
    }
    assert_eq!(SpanData::name(view), s.name);
    assert_eq!(SpanData::kind(view), SpanKind::from_code(s.kind));
    assert_eq!(view.start_unix_nanos(), s.start_time_unix_nano);
    assert_eq!(view.end_unix_nanos(), s.end_time_unix_nano);
    let code = s.status.as_ref().map_or(0, |st| st.code);
    assert_eq!(SpanData::status_code(view), StatusCode::from_code(code));
    assert_eq!(view.trace_flags(), s.flags & 0xff);
    assert_eq!(SpanData::trace_state(view), s.trace_state);
    check_attrs(&s.attributes, |k| view.span_attribute(k), "span");
    check_attrs(&res.attributes, |k| view.resource_attribute(k), "resource");
    check_attrs(&scope.attributes, |k| view.scope_attribute(k), "scope");
    let len = s.encoded_len();
    let framed = 1 + prost::encoding::encoded_len_varint(len as u64) + len;
    assert_eq!(SpanData::wire_len(view), framed);
}

#[test]
fn every_accessor_returns_what_the_prost_message_holds() {
    let req = varied_request();
    let buf = encode(&req);
    let views = tailgate_proto::scan(&buf).unwrap();
    let expected = flat(&req);
    assert_eq!(views.len(), expected.len());
    for (view, (res, scope, s)) in views.iter().zip(&expected) {
        check_view(view, res, scope, s);
        // Every view pins the one request buffer.
        let b = view.buffer();
        assert_eq!(b.id, buf.as_ptr() as u64);
        assert_eq!(b.len, buf.len());
    }
    // Open enums fall back to the defaults.
    assert_eq!(SpanData::kind(&views[2]), SpanKind::Unspecified);
    assert_eq!(SpanData::status_code(&views[2]), StatusCode::Unset);
    assert_eq!(SpanData::status_code(&views[0]), StatusCode::Error);
    assert_eq!(views[0].trace_flags(), 1);
    // Framed span lengths add up to no more than the request.
    let spans: usize = views.iter().map(SpanData::wire_len).sum();
    assert!(spans < buf.len());
}

#[test]
fn detached_views_are_equivalent_and_pin_only_their_own_bytes() {
    let req = varied_request();
    let buf = encode(&req);
    let views = tailgate_proto::scan(&buf).unwrap();
    for ((view, (res, scope, s)), i) in views.iter().zip(flat(&req)).zip(0..) {
        let copy = SpanData::detach(view);
        check_view(&copy, res, scope, s);
        assert_eq!(copy.span_slice(), view.span_slice());
        let (old, new) = (view.buffer(), copy.buffer());
        assert_ne!(new.id, old.id, "span {i}");
        assert!(new.len < old.len, "span {i}: {} !< {}", new.len, old.len);
        // Re-framed alone, the copy decodes to its resource, scope and span.
        let out = ExportTraceServiceRequest::decode(tailgate_proto::reframe([&copy])).unwrap();
        assert_eq!(out.resource_spans.len(), 1);
        let rs = &out.resource_spans[0];
        assert_eq!(rs.resource.as_ref(), Some(res));
        assert_eq!(rs.scope_spans[0].scope.as_ref(), Some(scope));
        assert_eq!(rs.scope_spans[0].spans, vec![s.clone()]);
    }
}

// === the gateway reference policies over scanned requests ===

fn gateway_engine() -> (Engine<SpanView, FakeClock>, FakeClock) {
    let text = include_str!("../testdata/gateway-config.yaml");
    let doc: serde_yaml::Value = serde_yaml::from_str(text).unwrap();
    let (cfg, _) =
        SamplerConfig::from_yaml_value(doc["processors"]["tail_sampling"].clone()).unwrap();
    let clock = FakeClock::at(T0);
    (Engine::new(&cfg, clock.clone()).unwrap(), clock)
}

/// Trace IDs of the Go vectors for the default salt at 10 %: (sampled, not sampled).
fn probabilistic_ids() -> (Vec<u8>, Vec<u8>) {
    let v: serde_json::Value =
        serde_json::from_str(include_str!("../testdata/probabilistic_vectors.json")).unwrap();
    let pick = |want: bool| {
        let h = v["hashes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["salt"] == "" && h["percentage"] == 10.0 && h["sampled"] == want)
            .unwrap();
        hex::decode(h["trace_id"].as_str().unwrap()).unwrap()
    };
    (pick(true), pick(false))
}

/// A fast trace (10 ms) of `n` spans, all OK, rooted at span `base`.
fn fast_trace(trace: &[u8], base: u64, n: u64) -> Vec<Span> {
    (0..n)
        .map(|i| {
            let parent = (i > 0).then_some(base);
            span(trace, base + i, parent, T0 + i, T0 + 10_000_000)
        })
        .collect()
}

fn request(service: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![resource_spans(service, vec![("lib", spans)])],
    }
}

#[test]
fn gateway_policies_over_scanned_requests() {
    let (mut engine, clock) = gateway_engine();
    let error_t = id16(0xe0e0);
    let slow_t = id16(0x5105);
    let (lucky_t, unlucky_t) = probabilistic_ids();

    // The error trace arrives in two requests, its error span in the second.
    let mut error_spans = fast_trace(&error_t, 100, 6);
    error_spans[4].status = Some(Status {
        message: "failed".into(),
        code: 2,
    });
    let mut slow = fast_trace(&slow_t, 200, 3);
    slow[0].end_time_unix_nano = T0 + 2 * SEC;
    let lucky = fast_trace(&lucky_t, 300, 4);
    let unlucky = fast_trace(&unlucky_t, 400, 4);

    let mut first: Vec<Span> = error_spans[..3].to_vec();
    first.extend(slow.clone());
    first.extend(lucky[..2].to_vec());
    first.extend(unlucky[..2].to_vec());
    let mut second: Vec<Span> = error_spans[3..].to_vec();
    second.extend(lucky[2..].to_vec());
    second.extend(unlucky[2..].to_vec());
    let requests = [request("frontend", first), request("backend", second)];

    let mut out = BatchOutput::default();
    for r in &requests {
        let mut views = tailgate_proto::scan(&encode(r)).unwrap();
        engine.insert_batch(&mut views, &mut out);
        assert!(out.forward.is_empty() && out.rejected.is_empty());
        clock.advance_ms(1_000);
    }
    let memory = engine.memory();
    assert_eq!(memory.spans_buffered, 17);
    // Two request buffers are pinned, whole.
    let total: usize = requests.iter().map(|r| r.encoded_len()).sum();
    assert_eq!(memory.retained_buffer_bytes, total as u64);

    clock.advance_ms(30_000);
    engine.advance();
    let decided: Vec<_> = engine.drain_decided().collect();
    assert_eq!(decided.len(), 4);
    let by_id = |id: &[u8]| {
        decided
            .iter()
            .find(|d| d.trace_id.as_slice() == id)
            .unwrap()
    };

    for (id, spans, sampled) in [
        (&error_t, &error_spans, true),
        (&slow_t, &slow, true),
        (&lucky_t, &lucky, true),
        (&unlucky_t, &unlucky, false),
    ] {
        let d = by_id(id);
        assert_eq!(
            d.decision.is_sampled(),
            sampled,
            "trace {}",
            hex::encode(id)
        );
        if !sampled {
            assert!(d.spans.is_empty());
            continue;
        }
        // Kept whole, and re-framed it decodes back to the original spans.
        assert_eq!(d.spans.len(), spans.len());
        let out = ExportTraceServiceRequest::decode(tailgate_proto::reframe(&d.spans)).unwrap();
        let mut got: Vec<Span> = out
            .resource_spans
            .iter()
            .flat_map(|rs| rs.scope_spans.iter().flat_map(|ss| ss.spans.clone()))
            .collect();
        got.sort_by(|a, b| a.span_id.cmp(&b.span_id));
        assert_eq!(&got, spans);
        for rs in &out.resource_spans {
            let service = rs.resource.as_ref().unwrap().attributes[0].clone();
            assert!(requests.iter().any(|r| r.resource_spans[0]
                .resource
                .as_ref()
                .unwrap()
                .attributes[0]
                == service));
        }
    }
    // The slow trace is kept by the latency policy (index 1), the error trace by status (0).
    assert!(by_id(&error_t).matched.contains(0));
    assert!(by_id(&slow_t).matched.contains(1));
    assert!(by_id(&lucky_t).matched.contains(2));
    // Nothing is pinned once every trace is decided.
    assert_eq!(engine.memory().retained_buffer_bytes, 0);
}

// === scan straight into the engine ===

#[test]
fn scan_summarized_hands_on_each_views_summary_fields() {
    let req = varied_request();
    let buf = encode(&req);
    let (mut views, mut fields) = (Vec::new(), Vec::new());
    scan_summarized(&buf, &mut views, &mut fields).unwrap();
    let plain = tailgate_proto::scan(&buf).unwrap();
    assert_eq!(views.len(), plain.len());
    assert_eq!(fields.len(), views.len());
    for ((v, f), p) in views.iter().zip(&fields).zip(&plain) {
        assert_eq!(v.span_slice(), p.span_slice());
        assert_eq!(*f, v.summary_fields());
        assert_eq!(f.is_root, SpanData::is_root(v));
    }
    assert!(fields.iter().any(|f| f.is_root) && fields.iter().any(|f| !f.is_root));
    // A malformed request appends nothing.
    let bad = Bytes::from(buf[..buf.len() - 3].to_vec());
    assert!(scan_summarized(&bad, &mut views, &mut fields).is_err());
    assert_eq!((views.len(), fields.len()), (plain.len(), plain.len()));
}

/// One span pdata would refuse (an 8-byte trace id) costs that span only: the others of its
/// request are scanned and the bad one is counted as left out.
#[test]
fn scan_summarized_leaves_out_only_the_bad_span() {
    let t = id16(0xabc);
    let mut spans = fast_trace(&t, 100, 3);
    let mut bad = span(&t, 9, Some(100), T0, T0 + SEC);
    bad.trace_id = vec![7; 8];
    spans.insert(1, bad);
    let buf = encode(&request("cart", spans));
    assert!(tailgate_proto::scan(&buf).is_err(), "the strict scan fails");
    let (mut views, mut fields) = (Vec::new(), Vec::new());
    assert_eq!(scan_summarized(&buf, &mut views, &mut fields).unwrap(), 1);
    assert_eq!((views.len(), fields.len()), (3, 3));
    assert!(views.iter().all(|v| v.trace_id_bytes() == t.as_slice()));
}

#[test]
fn summarized_batches_decide_like_plain_batches() {
    let (mut plain, plain_clock) = gateway_engine();
    let (mut summarized, summarized_clock) = gateway_engine();
    let (lucky_t, unlucky_t) = probabilistic_ids();
    let mut error_spans = fast_trace(&id16(0xe0e0), 100, 5);
    error_spans[3].status = Some(Status {
        message: "failed".into(),
        code: 2,
    });
    let mut first = error_spans[..2].to_vec();
    first.extend(fast_trace(&lucky_t, 300, 3));
    let mut second = error_spans[2..].to_vec();
    second.extend(fast_trace(&unlucky_t, 400, 3));
    let mut out = BatchOutput::default();
    for r in [request("a", first), request("b", second)] {
        let buf = encode(&r);
        let mut views = tailgate_proto::scan(&buf).unwrap();
        plain.insert_batch(&mut views, &mut out);
        let (mut views, mut fields) = (Vec::new(), Vec::new());
        scan_summarized(&buf, &mut views, &mut fields).unwrap();
        summarized.insert_batch_summarized(&mut views, &mut fields, &mut out);
        assert!(views.is_empty() && fields.is_empty());
        plain_clock.advance_ms(1_000);
        summarized_clock.advance_ms(1_000);
    }
    assert_eq!(plain.memory(), summarized.memory());
    for (engine, clock) in [
        (&mut plain, &plain_clock),
        (&mut summarized, &summarized_clock),
    ] {
        clock.advance_ms(30_000);
        engine.advance();
    }
    let outcome = |e: &mut Engine<SpanView, FakeClock>| {
        let mut d: Vec<_> = e
            .drain_decided()
            .map(|d| {
                (
                    d.trace_id,
                    d.decision,
                    d.matched,
                    d.span_count,
                    d.spans.len(),
                )
            })
            .collect();
        d.sort_by_key(|t| t.0);
        d
    };
    let expected = outcome(&mut plain);
    assert_eq!(expected.len(), 3);
    assert_eq!(outcome(&mut summarized), expected);
}
