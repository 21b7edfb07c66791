//! Contexts and paths: what a path written in a statement refers to, resolved at parse time so
//! the caller's [`crate::Source`] sees the same [`Path`] whichever context it was written in.

use std::fmt;

/// The OTTL context a statement or condition runs in (contrib's `ottlresource`, `ottlscope`,
/// `ottlspan`, `ottlspanevent`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Context {
    /// One resource: `attributes` are the resource's.
    Resource,
    /// One instrumentation scope (and its resource).
    Scope,
    /// One span (and its scope and resource).
    Span,
    /// One span event (and its span, scope and resource).
    SpanEvent,
}

impl Context {
    /// The context's name as configs write it.
    pub fn name(self) -> &'static str {
        match self {
            Context::Resource => "resource",
            Context::Scope => "scope",
            Context::Span => "span",
            Context::SpanEvent => "spanevent",
        }
    }

    /// Parses a config's `context:` value.
    pub fn from_name(name: &str) -> Option<Context> {
        Some(match name {
            "resource" => Context::Resource,
            "scope" => Context::Scope,
            "span" => Context::Span,
            "spanevent" => Context::SpanEvent,
            _ => return None,
        })
    }

    /// True if the context has a span (so the span enums `SPAN_KIND_*`, `STATUS_CODE_*` exist).
    pub fn has_span(self) -> bool {
        matches!(self, Context::Span | Context::SpanEvent)
    }
}

/// The telemetry item a path reads or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Entity {
    /// The resource.
    Resource,
    /// The instrumentation scope.
    Scope,
    /// The span.
    Span,
    /// The span event.
    SpanEvent,
}

/// A field of an [`Entity`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Field {
    /// `name` (span, span event, scope): string.
    Name,
    /// `version` (scope): string.
    Version,
    /// `kind` (span): int.
    Kind,
    /// `trace_id`: bytes (16).
    TraceId,
    /// `trace_id.string`: lowercase hex string.
    TraceIdString,
    /// `span_id`: bytes (8).
    SpanId,
    /// `span_id.string`: lowercase hex string.
    SpanIdString,
    /// `parent_span_id`: bytes (8, or empty for a root).
    ParentSpanId,
    /// `parent_span_id.string`: lowercase hex string.
    ParentSpanIdString,
    /// `trace_state`: the raw W3C string.
    TraceState,
    /// `start_time_unix_nano`: int.
    StartTimeUnixNano,
    /// `end_time_unix_nano`: int.
    EndTimeUnixNano,
    /// `start_time`: time.
    StartTime,
    /// `end_time`: time.
    EndTime,
    /// `status.code`: int.
    StatusCode,
    /// `status.message`: string.
    StatusMessage,
    /// `time_unix_nano` (span event): int.
    TimeUnixNano,
    /// `time` (span event): time.
    Time,
    /// `attributes`: the whole map (a target for the map editors; opaque as a value).
    Attributes,
    /// `attributes["key"]`: one attribute, nil when missing.
    Attribute(String),
}

/// A resolved path: which item, which field.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Path {
    /// The item.
    pub entity: Entity,
    /// Its field.
    pub field: Field,
}

impl Path {
    /// True for the whole-map `attributes` paths the map editors take.
    pub fn is_map(&self) -> bool {
        self.field == Field::Attributes
    }
}

impl fmt::Display for Path {
    /// Renders the path as written in the span event context (the one that can name all four
    /// entities), e.g. `span.attributes["k"]`, `resource.attributes`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = match self.entity {
            Entity::Resource => "resource.",
            Entity::Scope => "instrumentation_scope.",
            Entity::Span => "span.",
            Entity::SpanEvent => "spanevent.",
        };
        let field = match &self.field {
            Field::Name => "name",
            Field::Version => "version",
            Field::Kind => "kind",
            Field::TraceId => "trace_id",
            Field::TraceIdString => "trace_id.string",
            Field::SpanId => "span_id",
            Field::SpanIdString => "span_id.string",
            Field::ParentSpanId => "parent_span_id",
            Field::ParentSpanIdString => "parent_span_id.string",
            Field::TraceState => "trace_state",
            Field::StartTimeUnixNano => "start_time_unix_nano",
            Field::EndTimeUnixNano => "end_time_unix_nano",
            Field::StartTime => "start_time",
            Field::EndTime => "end_time",
            Field::StatusCode => "status.code",
            Field::StatusMessage => "status.message",
            Field::TimeUnixNano => "time_unix_nano",
            Field::Time => "time",
            Field::Attributes => "attributes",
            Field::Attribute(k) => {
                return write!(f, "{prefix}attributes[{}]", crate::lexer::quote(k))
            }
        };
        write!(f, "{prefix}{field}")
    }
}

/// Resolves dotted `words` (and an optional single `[key]` on `attributes`) written in `cx`.
/// `None` when the context has no such path.
pub(crate) fn resolve(cx: Context, words: &[&str], key: Option<String>) -> Option<Path> {
    let words = strip_context_prefix(cx, words);
    let (entity, rest) = match (cx, words) {
        (Context::Span | Context::SpanEvent | Context::Scope, ["resource", rest @ ..]) => {
            (Entity::Resource, rest)
        }
        (Context::Span | Context::SpanEvent, ["instrumentation_scope" | "scope", rest @ ..]) => {
            (Entity::Scope, rest)
        }
        (Context::SpanEvent, ["span", rest @ ..]) => (Entity::Span, rest),
        (Context::Resource, rest) => (Entity::Resource, rest),
        (Context::Scope, rest) => (Entity::Scope, rest),
        (Context::Span, rest) => (Entity::Span, rest),
        (Context::SpanEvent, rest) => (Entity::SpanEvent, rest),
    };
    let field = field(entity, rest, key.is_some())?;
    Some(Path {
        entity,
        field: match (field, key) {
            (Field::Attributes, Some(k)) => Field::Attribute(k),
            (f, _) => f,
        },
    })
}

/// Drops a leading context name (`span.name` in the span context), as contrib accepts since
/// context-qualified paths; `resource.` in the scope/span contexts is a real path, not a prefix.
fn strip_context_prefix<'w>(cx: Context, words: &'w [&'w str]) -> &'w [&'w str] {
    let own: &[&str] = match cx {
        Context::Resource => &["resource"],
        Context::Scope => &["scope", "instrumentation_scope"],
        Context::Span => &["span"],
        Context::SpanEvent => &["spanevent"],
    };
    match words {
        [first, rest @ ..] if !rest.is_empty() && own.contains(first) => rest,
        _ => words,
    }
}

fn field(entity: Entity, rest: &[&str], keyed: bool) -> Option<Field> {
    use Field::*;
    if keyed {
        // Only `attributes` takes a key in this subset.
        return (rest == ["attributes"]).then_some(Attributes);
    }
    Some(match (entity, rest) {
        (_, ["attributes"]) => Attributes,
        (Entity::Scope, ["name"]) => Name,
        (Entity::Scope, ["version"]) => Version,
        (Entity::SpanEvent, ["name"]) => Name,
        (Entity::SpanEvent, ["time_unix_nano"]) => TimeUnixNano,
        (Entity::SpanEvent, ["time"]) => Time,
        (Entity::Span, words) => match words {
            ["name"] => Name,
            ["kind"] => Kind,
            ["trace_id"] => TraceId,
            ["trace_id", "string"] => TraceIdString,
            ["span_id"] => SpanId,
            ["span_id", "string"] => SpanIdString,
            ["parent_span_id"] => ParentSpanId,
            ["parent_span_id", "string"] => ParentSpanIdString,
            ["trace_state"] => TraceState,
            ["start_time_unix_nano"] => StartTimeUnixNano,
            ["end_time_unix_nano"] => EndTimeUnixNano,
            ["start_time"] => StartTime,
            ["end_time"] => EndTime,
            ["status", "code"] => StatusCode,
            ["status", "message"] => StatusMessage,
            _ => return None,
        },
        _ => return None,
    })
}

/// The enum symbols a context defines, with their values.
pub(crate) fn enum_value(cx: Context, symbol: &str) -> Option<i64> {
    if !cx.has_span() {
        return None;
    }
    Some(match symbol {
        "SPAN_KIND_UNSPECIFIED" => 0,
        "SPAN_KIND_INTERNAL" => 1,
        "SPAN_KIND_SERVER" => 2,
        "SPAN_KIND_CLIENT" => 3,
        "SPAN_KIND_PRODUCER" => 4,
        "SPAN_KIND_CONSUMER" => 5,
        "STATUS_CODE_UNSET" => 0,
        "STATUS_CODE_OK" => 1,
        "STATUS_CODE_ERROR" => 2,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(entity: Entity, field: Field) -> Option<Path> {
        Some(Path { entity, field })
    }

    #[test]
    fn paths_resolve_per_context() {
        assert_eq!(
            resolve(Context::Span, &["name"], None),
            p(Entity::Span, Field::Name)
        );
        assert_eq!(
            resolve(Context::Span, &["span", "status", "code"], None),
            p(Entity::Span, Field::StatusCode)
        );
        assert_eq!(
            resolve(Context::Span, &["resource", "attributes"], Some("k".into())),
            p(Entity::Resource, Field::Attribute("k".into()))
        );
        assert_eq!(
            resolve(Context::SpanEvent, &["name"], None),
            p(Entity::SpanEvent, Field::Name)
        );
        assert_eq!(
            resolve(Context::SpanEvent, &["span", "name"], None),
            p(Entity::Span, Field::Name)
        );
        assert_eq!(
            resolve(Context::Resource, &["attributes"], None),
            p(Entity::Resource, Field::Attributes)
        );
        assert_eq!(
            resolve(Context::Scope, &["version"], None),
            p(Entity::Scope, Field::Version)
        );
        assert_eq!(resolve(Context::Resource, &["name"], None), None);
        assert_eq!(resolve(Context::Span, &["time"], None), None);
        assert_eq!(resolve(Context::Span, &["name"], Some("k".into())), None);
        assert_eq!(
            resolve(Context::Span, &["span", "span", "name"], None),
            None
        );
    }

    #[test]
    fn display_names_the_entity() {
        let path = Path {
            entity: Entity::Resource,
            field: Field::Attribute("host.name".into()),
        };
        assert_eq!(path.to_string(), r#"resource.attributes["host.name"]"#);
    }
}
