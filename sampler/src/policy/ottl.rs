//! `ottl_condition`: span conditions in the shared OTTL subset (`tailgate-ottl`), evaluated over
//! [`SpanData`].
//!
//! The language (paths, literals, comparisons, arithmetic, `IsMatch` / `Concat` / `SHA256`) is
//! the crate's; this module only maps paths onto what [`SpanData`] can read and rejects, at
//! config time, the span-context paths it cannot (`status.message`, `instrumentation_scope.name`
//! / `.version`, whole attribute maps), and span event conditions (spans here carry no events).

use std::borrow::Cow;

use tailgate_ottl::{
    parse_condition, Condition, Context, Entity, ErrorMode, EvalError, Field, Path, Source, Value,
};

use crate::span::{AttrValue, SpanData};

/// What the policy accepts, for error messages.
pub const SUPPORTED: &str = "supported OTTL subset (span context): paths name, kind, status.code, \
trace_id, span_id, parent_span_id (and their .string forms), trace_state, start_time_unix_nano, \
end_time_unix_nano, start_time, end_time, attributes[\"k\"], resource.attributes[\"k\"], \
instrumentation_scope.attributes[\"k\"] (optionally prefixed span.); literals (strings, numbers, \
bytes 0x.., true, false, nil, SPAN_KIND_*, STATUS_CODE_*); comparisons == != < <= > >=; and, or, \
not, parentheses; + - * /; converters IsMatch, Concat, SHA256";

/// One `ottl_condition` policy: its span conditions (OR-ed) and `error_mode`.
#[derive(Debug, Clone)]
pub struct OttlPolicy {
    /// Span conditions; the policy samples a trace when one holds for one span.
    pub span: Vec<Condition>,
    /// What an evaluation error does.
    pub error_mode: ErrorMode,
}

impl OttlPolicy {
    /// True if some condition holds for `span`. With `propagate` (contrib's default) an error
    /// ends the trace's evaluation as not sampled (`Err`); with `ignore` / `silent` the failing
    /// condition counts as false and the next one is tried.
    pub fn matches<S: SpanData>(&self, span: &S) -> Result<bool, EvalError> {
        let src = SpanSource(span);
        for c in &self.span {
            match c.eval(&src) {
                Ok(true) => return Ok(true),
                Ok(false) => {}
                Err(e) if self.error_mode == ErrorMode::Propagate => return Err(e),
                Err(_) => {}
            }
        }
        Ok(false)
    }
}

/// Parses one span condition and checks that every path it reads is one [`SpanData`] has.
pub fn parse(text: &str) -> Result<Condition, String> {
    let condition = parse_condition(text, Context::Span)
        .map_err(|e| format!("cannot parse {text:?}: {e}; {SUPPORTED}"))?;
    let mut missing = None;
    condition.paths(&mut |p| {
        if missing.is_none() && !available(p) {
            missing = Some(p.to_string());
        }
    });
    match missing {
        Some(path) => Err(format!(
            "cannot use {text:?}: path {path} is not available to tail sampling; {SUPPORTED}"
        )),
        None => Ok(condition),
    }
}

/// True for the paths [`SpanSource`] answers.
fn available(path: &Path) -> bool {
    match (path.entity, &path.field) {
        (Entity::Resource | Entity::Scope | Entity::Span, Field::Attribute(_)) => true,
        (Entity::Span, field) => !matches!(field, Field::StatusMessage | Field::Attributes),
        _ => false,
    }
}

/// A span as an OTTL [`Source`].
struct SpanSource<'a, S>(&'a S);

fn attr(v: Option<AttrValue<'_>>) -> Value<'_> {
    match v {
        None => Value::Nil,
        Some(AttrValue::Str(s)) => Value::Str(Cow::Borrowed(s)),
        Some(AttrValue::Bool(b)) => Value::Bool(b),
        Some(AttrValue::Int(i)) => Value::Int(i),
        Some(AttrValue::Double(d)) => Value::Double(d),
        Some(AttrValue::Bytes(b)) => Value::Bytes(Cow::Borrowed(b)),
        // Arrays, kvlists and empty values: present, opaque to the subset.
        Some(AttrValue::Other) => Value::Slice,
    }
}

fn hex(bytes: &[u8]) -> Value<'static> {
    Value::Str(Cow::Owned(
        bytes.iter().map(|b| format!("{b:02x}")).collect(),
    ))
}

/// Unix nanoseconds as OTTL's int (contrib converts the uint64 with `int64(...)`).
fn nanos(n: u64) -> i64 {
    n as i64
}

impl<S: SpanData> Source for SpanSource<'_, S> {
    fn get(&self, path: &Path) -> Result<Value<'_>, EvalError> {
        let span = self.0;
        Ok(match (path.entity, &path.field) {
            (Entity::Span, Field::Attribute(k)) => attr(span.span_attribute(k)),
            (Entity::Resource, Field::Attribute(k)) => attr(span.resource_attribute(k)),
            (Entity::Scope, Field::Attribute(k)) => attr(span.scope_attribute(k)),
            (Entity::Span, Field::Name) => Value::Str(Cow::Borrowed(span.name())),
            (Entity::Span, Field::Kind) => Value::Int(span.kind().code()),
            (Entity::Span, Field::StatusCode) => Value::Int(span.status_code().code()),
            (Entity::Span, Field::TraceState) => Value::Str(Cow::Borrowed(span.trace_state())),
            (Entity::Span, Field::TraceId) => Value::Bytes(Cow::Owned(span.trace_id().to_vec())),
            (Entity::Span, Field::TraceIdString) => hex(&span.trace_id()),
            (Entity::Span, Field::SpanId) => Value::Bytes(Cow::Owned(span.span_id().to_vec())),
            (Entity::Span, Field::SpanIdString) => hex(&span.span_id()),
            (Entity::Span, Field::ParentSpanId) => {
                Value::Bytes(Cow::Borrowed(span.parent_span_id()))
            }
            (Entity::Span, Field::ParentSpanIdString) => hex(span.parent_span_id()),
            (Entity::Span, Field::StartTimeUnixNano) => Value::Int(nanos(span.start_unix_nanos())),
            (Entity::Span, Field::EndTimeUnixNano) => Value::Int(nanos(span.end_unix_nanos())),
            (Entity::Span, Field::StartTime) => Value::Time(nanos(span.start_unix_nanos())),
            (Entity::Span, Field::EndTime) => Value::Time(nanos(span.end_unix_nanos())),
            _ => return Err(EvalError::Unavailable(path.to_string())),
        })
    }
}
