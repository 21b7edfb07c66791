//! The trace schema as the JSON transcoder needs it: for each message, its keys (lowerCamelCase and
//! the proto name), field numbers and how each value is written.
//!
//! Field numbers and types follow opentelemetry-proto's `trace.proto`, `common.proto`,
//! `resource.proto` and `trace_service.proto`; the property tests in `proto/tests/oracle.rs`
//! check every field against prost's encoding of random requests.

/// How a JSON value becomes protobuf.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    /// Optional message (`null` = absent; written even when empty).
    Message(&'static Msg),
    /// Repeated message: a JSON array of objects.
    Messages(&'static Msg),
    /// A message member of a `oneof` (`AnyValue.arrayValue`, `kvlistValue`): `null` is an error.
    OneofMessage(&'static Msg),
    /// `string`, absent when empty.
    Str,
    /// `string` member of a `oneof`, written even when empty.
    OneofStr,
    /// `repeated string`.
    Strs,
    /// Trace or span id: `bytes` given in hex.
    HexId,
    /// `bytes` member of a `oneof`, given in base64.
    OneofBytes,
    /// `fixed64` as a number or a decimal string.
    Fixed64,
    /// `fixed32` as a number.
    Fixed32,
    /// `uint32` as a number.
    Uint32,
    /// `int32` enum as a number or a name; the slice maps values 0.. to names.
    Enum(&'static [&'static str]),
    /// `bool` member of a `oneof`.
    OneofBool,
    /// `int64` member of a `oneof`, as a number or a decimal string.
    OneofInt,
    /// `double` member of a `oneof`.
    OneofDouble,
}

/// One field of a message.
#[derive(Debug)]
pub(crate) struct Field {
    /// The OTLP/JSON key (lowerCamelCase).
    pub camel: &'static str,
    /// The proto field name, which the collector also accepts.
    pub snake: &'static str,
    /// Protobuf field number.
    pub number: u32,
    /// How the value is written.
    pub kind: Kind,
    /// The old serde-derive decoder refused an object without this key; so do we.
    pub required: bool,
}

/// One message type.
#[derive(Debug)]
pub(crate) struct Msg {
    /// Name used in error messages.
    pub name: &'static str,
    /// Its fields (at most 32: a bit per field records which keys were seen).
    pub fields: &'static [Field],
    /// `AnyValue`: the fields form one `oneof`, and at least one must be given.
    pub oneof: bool,
}

impl Msg {
    /// Index of the field named `key`, in either spelling (lowerCamelCase, the common one, first).
    #[inline]
    pub fn field_index(&self, key: &str) -> Option<usize> {
        (self.fields.iter().position(|f| f.camel == key))
            .or_else(|| self.fields.iter().position(|f| f.snake == key))
    }

    /// Checks that the keys seen (bit i = field i) include every required one.
    pub fn check_seen<E: serde::de::Error>(&self, seen: u32) -> Result<(), E> {
        if self.oneof && seen == 0 {
            return Err(E::custom(format_args!("{}: no known key found", self.name)));
        }
        for (i, f) in self.fields.iter().enumerate() {
            if f.required && seen & (1 << i) == 0 {
                return Err(E::custom(format_args!(
                    "{}: missing field `{}`",
                    self.name, f.camel
                )));
            }
        }
        Ok(())
    }
}

const fn field(camel: &'static str, snake: &'static str, number: u32, kind: Kind) -> Field {
    Field {
        camel,
        snake,
        number,
        kind,
        required: false,
    }
}

const fn required(camel: &'static str, snake: &'static str, number: u32, kind: Kind) -> Field {
    Field {
        camel,
        snake,
        number,
        kind,
        required: true,
    }
}

/// `ExportTraceServiceRequest`.
pub(crate) static REQUEST: Msg = Msg {
    name: "ExportTraceServiceRequest",
    fields: &[required(
        "resourceSpans",
        "resource_spans",
        1,
        Kind::Messages(&RESOURCE_SPANS),
    )],
    oneof: false,
};

static RESOURCE_SPANS: Msg = Msg {
    name: "ResourceSpans",
    fields: &[
        field("resource", "resource", 1, Kind::Message(&RESOURCE)),
        field("scopeSpans", "scope_spans", 2, Kind::Messages(&SCOPE_SPANS)),
        field("schemaUrl", "schema_url", 3, Kind::Str),
    ],
    oneof: false,
};

static RESOURCE: Msg = Msg {
    name: "Resource",
    fields: &[
        field("attributes", "attributes", 1, Kind::Messages(&KEY_VALUE)),
        field(
            "droppedAttributesCount",
            "dropped_attributes_count",
            2,
            Kind::Uint32,
        ),
        field("entityRefs", "entity_refs", 3, Kind::Messages(&ENTITY_REF)),
    ],
    oneof: false,
};

static ENTITY_REF: Msg = Msg {
    name: "EntityRef",
    fields: &[
        required("schemaUrl", "schema_url", 1, Kind::Str),
        required("type", "type", 2, Kind::Str),
        required("idKeys", "id_keys", 3, Kind::Strs),
        required("descriptionKeys", "description_keys", 4, Kind::Strs),
    ],
    oneof: false,
};

static SCOPE_SPANS: Msg = Msg {
    name: "ScopeSpans",
    fields: &[
        field("scope", "scope", 1, Kind::Message(&SCOPE)),
        field("spans", "spans", 2, Kind::Messages(&SPAN)),
        field("schemaUrl", "schema_url", 3, Kind::Str),
    ],
    oneof: false,
};

static SCOPE: Msg = Msg {
    name: "InstrumentationScope",
    fields: &[
        field("name", "name", 1, Kind::Str),
        field("version", "version", 2, Kind::Str),
        field("attributes", "attributes", 3, Kind::Messages(&KEY_VALUE)),
        field(
            "droppedAttributesCount",
            "dropped_attributes_count",
            4,
            Kind::Uint32,
        ),
    ],
    oneof: false,
};

/// `Span.SpanKind` names by value.
const SPAN_KIND: &[&str] = &[
    "SPAN_KIND_UNSPECIFIED",
    "SPAN_KIND_INTERNAL",
    "SPAN_KIND_SERVER",
    "SPAN_KIND_CLIENT",
    "SPAN_KIND_PRODUCER",
    "SPAN_KIND_CONSUMER",
];

/// `Status.StatusCode` names by value.
const STATUS_CODE: &[&str] = &["STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"];

// Keys in the order encoders write them (field-number order), so the linear lookup finds the
// common case quickly.
static SPAN: Msg = Msg {
    name: "Span",
    fields: &[
        field("traceId", "trace_id", 1, Kind::HexId),
        field("spanId", "span_id", 2, Kind::HexId),
        field("traceState", "trace_state", 3, Kind::Str),
        field("parentSpanId", "parent_span_id", 4, Kind::HexId),
        field("flags", "flags", 16, Kind::Fixed32),
        field("name", "name", 5, Kind::Str),
        field("kind", "kind", 6, Kind::Enum(SPAN_KIND)),
        field(
            "startTimeUnixNano",
            "start_time_unix_nano",
            7,
            Kind::Fixed64,
        ),
        field("endTimeUnixNano", "end_time_unix_nano", 8, Kind::Fixed64),
        field("attributes", "attributes", 9, Kind::Messages(&KEY_VALUE)),
        field(
            "droppedAttributesCount",
            "dropped_attributes_count",
            10,
            Kind::Uint32,
        ),
        field("events", "events", 11, Kind::Messages(&EVENT)),
        field(
            "droppedEventsCount",
            "dropped_events_count",
            12,
            Kind::Uint32,
        ),
        field("links", "links", 13, Kind::Messages(&LINK)),
        field("droppedLinksCount", "dropped_links_count", 14, Kind::Uint32),
        field("status", "status", 15, Kind::Message(&STATUS)),
    ],
    oneof: false,
};

static EVENT: Msg = Msg {
    name: "Span.Event",
    fields: &[
        field("timeUnixNano", "time_unix_nano", 1, Kind::Fixed64),
        field("name", "name", 2, Kind::Str),
        field("attributes", "attributes", 3, Kind::Messages(&KEY_VALUE)),
        field(
            "droppedAttributesCount",
            "dropped_attributes_count",
            4,
            Kind::Uint32,
        ),
    ],
    oneof: false,
};

static LINK: Msg = Msg {
    name: "Span.Link",
    fields: &[
        field("traceId", "trace_id", 1, Kind::HexId),
        field("spanId", "span_id", 2, Kind::HexId),
        field("traceState", "trace_state", 3, Kind::Str),
        field("attributes", "attributes", 4, Kind::Messages(&KEY_VALUE)),
        field(
            "droppedAttributesCount",
            "dropped_attributes_count",
            5,
            Kind::Uint32,
        ),
        field("flags", "flags", 6, Kind::Fixed32),
    ],
    oneof: false,
};

static STATUS: Msg = Msg {
    name: "Status",
    fields: &[
        field("message", "message", 2, Kind::Str),
        field("code", "code", 3, Kind::Enum(STATUS_CODE)),
    ],
    oneof: false,
};

static KEY_VALUE: Msg = Msg {
    name: "KeyValue",
    fields: &[
        required("key", "key", 1, Kind::Str),
        field("value", "value", 2, Kind::Message(&ANY_VALUE)),
    ],
    oneof: false,
};

static ANY_VALUE: Msg = Msg {
    name: "AnyValue",
    fields: &[
        field("stringValue", "string_value", 1, Kind::OneofStr),
        field("boolValue", "bool_value", 2, Kind::OneofBool),
        field("intValue", "int_value", 3, Kind::OneofInt),
        field("doubleValue", "double_value", 4, Kind::OneofDouble),
        field(
            "arrayValue",
            "array_value",
            5,
            Kind::OneofMessage(&ARRAY_VALUE),
        ),
        field(
            "kvlistValue",
            "kvlist_value",
            6,
            Kind::OneofMessage(&KEY_VALUE_LIST),
        ),
        field("bytesValue", "bytes_value", 7, Kind::OneofBytes),
    ],
    oneof: true,
};

static ARRAY_VALUE: Msg = Msg {
    name: "ArrayValue",
    fields: &[required("values", "values", 1, Kind::Messages(&ANY_VALUE))],
    oneof: false,
};

static KEY_VALUE_LIST: Msg = Msg {
    name: "KeyValueList",
    fields: &[required("values", "values", 1, Kind::Messages(&KEY_VALUE))],
    oneof: false,
};

/// Every message type.
static ALL: [&Msg; 14] = [
    &REQUEST,
    &RESOURCE_SPANS,
    &RESOURCE,
    &ENTITY_REF,
    &SCOPE_SPANS,
    &SCOPE,
    &SPAN,
    &EVENT,
    &LINK,
    &STATUS,
    &KEY_VALUE,
    &ANY_VALUE,
    &ARRAY_VALUE,
    &KEY_VALUE_LIST,
];

/// Whether `key` is the proto (snake_case) spelling of some field where it differs from the
/// lowerCamelCase one. The old decoder ignored such keys; the fuzz oracle needs to know.
pub(crate) fn is_proto_name_alias(key: &str) -> bool {
    ALL.iter()
        .flat_map(|m| m.fields)
        .any(|f| f.snake == key && f.camel != key)
}
