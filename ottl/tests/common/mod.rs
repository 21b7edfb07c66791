//! An owned span (with its resource, scope and one event) implementing `Source` and `Target`.

#![allow(dead_code)]

use std::borrow::Cow;

use tailgate_ottl::{AttrVec, AttributeMap, Entity, EvalError, Field, Path, Source, Target, Value};

/// One span event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Event {
    pub name: String,
    pub time: i64,
    pub attrs: AttrVec,
}

/// A span and what it hangs off.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Item {
    pub resource: AttrVec,
    pub scope_name: String,
    pub scope_version: String,
    pub scope: AttrVec,
    pub name: String,
    pub kind: i64,
    pub status_code: i64,
    pub status_message: String,
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub trace_state: String,
    pub start: i64,
    pub end: i64,
    pub attrs: AttrVec,
    pub event: Event,
}

pub fn s(v: &str) -> Value<'static> {
    Value::Str(Cow::Owned(v.to_string()))
}

pub fn attrs(pairs: &[(&str, Value<'static>)]) -> AttrVec {
    AttrVec(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    )
}

impl Item {
    fn map(&self, e: Entity) -> &AttrVec {
        match e {
            Entity::Resource => &self.resource,
            Entity::Scope => &self.scope,
            Entity::Span => &self.attrs,
            Entity::SpanEvent => &self.event.attrs,
        }
    }

    fn map_mut(&mut self, e: Entity) -> &mut AttrVec {
        match e {
            Entity::Resource => &mut self.resource,
            Entity::Scope => &mut self.scope,
            Entity::Span => &mut self.attrs,
            Entity::SpanEvent => &mut self.event.attrs,
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Source for Item {
    fn get(&self, path: &Path) -> Result<Value<'_>, EvalError> {
        let str = |v: &str| Value::Str(Cow::Owned(v.to_string()));
        Ok(match (&path.entity, &path.field) {
            (e, Field::Attribute(k)) => self.map(*e).get(k).cloned().unwrap_or(Value::Nil),
            (_, Field::Attributes) => Value::Map,
            (Entity::Scope, Field::Name) => str(&self.scope_name),
            (Entity::Scope, Field::Version) => str(&self.scope_version),
            (Entity::SpanEvent, Field::Name) => str(&self.event.name),
            (Entity::SpanEvent, Field::TimeUnixNano) => Value::Int(self.event.time),
            (Entity::SpanEvent, Field::Time) => Value::Time(self.event.time),
            (Entity::Span, Field::Name) => str(&self.name),
            (Entity::Span, Field::Kind) => Value::Int(self.kind),
            (Entity::Span, Field::StatusCode) => Value::Int(self.status_code),
            (Entity::Span, Field::StatusMessage) => str(&self.status_message),
            (Entity::Span, Field::TraceId) => Value::Bytes(Cow::Owned(self.trace_id.to_vec())),
            (Entity::Span, Field::TraceIdString) => str(&hex(&self.trace_id)),
            (Entity::Span, Field::SpanId) => Value::Bytes(Cow::Owned(self.span_id.to_vec())),
            (Entity::Span, Field::SpanIdString) => str(&hex(&self.span_id)),
            (Entity::Span, Field::TraceState) => str(&self.trace_state),
            (Entity::Span, Field::StartTimeUnixNano) => Value::Int(self.start),
            (Entity::Span, Field::EndTimeUnixNano) => Value::Int(self.end),
            (Entity::Span, Field::StartTime) => Value::Time(self.start),
            (Entity::Span, Field::EndTime) => Value::Time(self.end),
            _ => return Err(EvalError::Unavailable(path.to_string())),
        })
    }
}

impl Target for Item {
    fn set(&mut self, path: &Path, value: Value<'static>) -> Result<(), EvalError> {
        match (&path.entity, &path.field, value) {
            (e, Field::Attribute(k), v) => self.map_mut(*e).upsert(k, v),
            (Entity::Span, Field::Name, Value::Str(v)) => self.name = v.into_owned(),
            (Entity::Span, Field::StatusCode, Value::Int(v)) => self.status_code = v,
            (Entity::Span, Field::StatusMessage, Value::Str(v)) => {
                self.status_message = v.into_owned()
            }
            (Entity::Span, Field::Kind, Value::Int(v)) => self.kind = v,
            (Entity::SpanEvent, Field::Name, Value::Str(v)) => self.event.name = v.into_owned(),
            _ => {}
        }
        Ok(())
    }

    fn edit_attributes(
        &mut self,
        entity: Entity,
        edit: &mut dyn FnMut(&mut dyn AttributeMap),
    ) -> Result<(), EvalError> {
        edit(self.map_mut(entity));
        Ok(())
    }
}
