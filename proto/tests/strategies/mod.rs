//! proptest strategies for OTLP trace requests, shared by the property tests (`oracle.rs`,
//! `json_oracle.rs`): several resources, scopes and spans, every attribute value type, events,
//! links.
#![allow(dead_code)]

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value::Value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span::{Event, Link},
    ResourceSpans, ScopeSpans, Span, Status,
};
use proptest::prelude::*;

pub fn any_value(depth: u32) -> BoxedStrategy<AnyValue> {
    let leaf = prop_oneof![
        "[a-z]{0,12}".prop_map(Value::StringValue),
        any::<bool>().prop_map(Value::BoolValue),
        any::<i64>().prop_map(Value::IntValue),
        any::<f64>()
            .prop_filter("NaN != NaN", |f| !f.is_nan())
            .prop_map(Value::DoubleValue),
        proptest::collection::vec(any::<u8>(), 0..8).prop_map(Value::BytesValue),
    ];
    let value = if depth == 0 {
        leaf.boxed()
    } else {
        prop_oneof![
            4 => leaf,
            1 => proptest::collection::vec(any_value(depth - 1), 0..3)
                .prop_map(|values| Value::ArrayValue(ArrayValue { values })),
            1 => proptest::collection::vec(key_value(depth - 1), 0..3)
                .prop_map(|values| Value::KvlistValue(KeyValueList { values })),
        ]
        .boxed()
    };
    proptest::option::weighted(0.95, value)
        .prop_map(|value| AnyValue { value })
        .boxed()
}

pub fn key_value(depth: u32) -> BoxedStrategy<KeyValue> {
    ("[a-e]{1,3}", any_value(depth))
        .prop_map(|(key, value)| KeyValue {
            key,
            value: Some(value),
        })
        .boxed()
}

pub fn attributes() -> impl Strategy<Value = Vec<KeyValue>> {
    proptest::collection::vec(key_value(1), 0..6)
}

pub fn id(n: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![1 => Just(Vec::new()), 6 => proptest::collection::vec(any::<u8>(), n)]
}

pub fn span() -> impl Strategy<Value = Span> {
    let ids = (
        proptest::collection::vec(any::<u8>(), 16),
        id(8),
        id(8),
        "[a-z=,]{0,6}",
    );
    let body = (
        "[a-zA-Z /]{0,16}",
        0..7i32,
        any::<u64>(),
        any::<u64>(),
        any::<u32>(),
        attributes(),
    );
    let events = proptest::collection::vec(
        ("[a-z]{0,6}", any::<u64>(), attributes()).prop_map(
            |(name, time_unix_nano, attributes)| Event {
                name,
                time_unix_nano,
                attributes,
                ..Default::default()
            },
        ),
        0..2,
    );
    let links = proptest::collection::vec(
        (id(16), id(8), attributes(), any::<u32>()).prop_map(
            |(trace_id, span_id, attributes, flags)| Link {
                trace_id,
                span_id,
                attributes,
                flags,
                ..Default::default()
            },
        ),
        0..2,
    );
    let status = proptest::option::of(
        (0..3i32, "[a-z]{0,5}").prop_map(|(code, message)| Status { code, message }),
    );
    (ids, body, events, links, status).prop_map(
        |(
            (trace_id, span_id, parent_span_id, trace_state),
            (name, kind, start, end, flags, attributes),
            events,
            links,
            status,
        )| Span {
            trace_id,
            span_id,
            parent_span_id,
            trace_state,
            name,
            kind,
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            flags,
            attributes,
            events,
            links,
            status,
            dropped_attributes_count: 0,
            dropped_events_count: 0,
            dropped_links_count: 0,
        },
    )
}

/// A scope: its message, schema URL and spans.
pub type ScopeParts = (Option<InstrumentationScope>, String, Vec<Span>);

/// A request as parts, so the test can encode it by hand with unknown fields.
#[derive(Debug, Clone)]
pub struct Req {
    pub resources: Vec<(Option<Resource>, String, Vec<ScopeParts>)>,
    /// Inject unknown fields (field 99/100) at every level.
    pub unknown: bool,
}

pub fn request() -> impl Strategy<Value = Req> {
    let scope = (
        proptest::option::of(("[a-z.]{0,8}", "[0-9.]{0,4}", attributes()).prop_map(
            |(name, version, attributes)| InstrumentationScope {
                name,
                version,
                attributes,
                dropped_attributes_count: 0,
            },
        )),
        "[a-z:/]{0,6}",
        proptest::collection::vec(span(), 0..5),
    );
    let resource = (
        proptest::option::of((proptest::option::of("[a-z]{1,6}"), attributes()).prop_map(
            |(svc, mut attributes)| {
                if let Some(s) = svc {
                    attributes.insert(
                        0,
                        KeyValue {
                            key: "service.name".into(),
                            value: Some(AnyValue {
                                value: Some(Value::StringValue(s)),
                            }),
                        },
                    );
                }
                Resource {
                    attributes,
                    ..Default::default()
                }
            },
        )),
        "[a-z:/]{0,6}",
        proptest::collection::vec(scope, 0..3),
    );
    (proptest::collection::vec(resource, 0..4), any::<bool>())
        .prop_map(|(resources, unknown)| Req { resources, unknown })
}

impl Req {
    /// The request as prost values (the unknown-field flag only matters to hand encoding).
    pub fn message(&self) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: self
                .resources
                .iter()
                .map(|(resource, schema_url, scopes)| ResourceSpans {
                    resource: resource.clone(),
                    scope_spans: scopes
                        .iter()
                        .map(|(scope, schema_url, spans)| ScopeSpans {
                            scope: scope.clone(),
                            spans: spans.clone(),
                            schema_url: schema_url.clone(),
                        })
                        .collect(),
                    schema_url: schema_url.clone(),
                })
                .collect(),
        }
    }
}
