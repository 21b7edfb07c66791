//! The per-core `redaction` stage: one rewrite pass over each traces payload.
//!
//! Contrib v0.115.0 redacts resource attributes and span attributes (not scope attributes, not
//! span event attributes: those came in later versions); so does this pass.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use tailgate_proto::rewrite::{AttrEdits, ResourceCtx, Rewriter, SpanCtx, TraceVisitor, Verdict};
use tailgate_proto::ScanError;

use super::rules::Rules;
use crate::pipeline::{Consumer, Payload, Refusal, Signal};
use crate::telemetry::metrics::Local;

/// One `redaction` processor on one core.
pub struct RedactionStage {
    rules: Arc<Rules>,
    next: Rc<dyn Consumer>,
    /// Buffers kept from one payload to the next.
    rewriter: RefCell<Rewriter>,
    /// `otelcol_processor_dropped_spans_total`: spans of payloads that could not be read.
    dropped: Local,
}

impl RedactionStage {
    /// A stage applying `rules` before `next`.
    pub fn new(rules: Arc<Rules>, next: Rc<dyn Consumer>, dropped: Local) -> Rc<Self> {
        Rc::new(RedactionStage {
            rules,
            next,
            rewriter: RefCell::new(Rewriter::new()),
            dropped,
        })
    }

    /// The payload's body redacted, or `None` if nothing changed; an error if it is malformed.
    pub fn redact(&self, body: &[u8]) -> Result<Option<Vec<u8>>, String> {
        let mut pass = Pass {
            rules: &self.rules,
            error: None,
        };
        let mut out = Vec::with_capacity(body.len() + body.len() / 8);
        let stats = self
            .rewriter
            .borrow_mut()
            .rewrite_traces(body, &mut pass, &mut out)
            .map_err(|e| e.to_string())?;
        if let Some(e) = pass.error {
            return Err(e.to_string());
        }
        Ok(stats.changed.then_some(out))
    }
}

impl Consumer for RedactionStage {
    fn consume(&self, data: Payload) -> Result<(), Refusal> {
        // Validation keeps redaction out of other pipelines; pass anything else through.
        if data.signal != Signal::Traces {
            return self.next.consume(data);
        }
        match self.redact(&data.body) {
            Ok(None) => self.next.consume(data),
            Ok(Some(out)) => {
                let redacted = data.with_body(out.into(), data.items);
                self.next.consume(redacted)
            }
            // Fail closed: what could not be read cannot be shown to be redacted. The receiver
            // only counted the spans; contrib's receiver would have refused this request whole.
            Err(e) => {
                self.dropped.add(data.items);
                tracing::warn!(
                    spans = data.items,
                    "redaction: dropped a payload whose attributes are malformed: {e}"
                );
                Ok(())
            }
        }
    }
}

/// The visitor of one rewrite: redacts resource and span attribute lists.
struct Pass<'r> {
    rules: &'r Rules,
    /// The first malformed attribute list met (the rewrite's output is then discarded).
    error: Option<ScanError>,
}

impl Pass<'_> {
    fn list(&mut self, attrs: tailgate_proto::attributes::Attributes<'_>, edits: &mut AttrEdits) {
        if self.error.is_some() {
            return;
        }
        if let Err(e) = self.rules.redact(attrs, edits) {
            self.error = Some(e);
        }
    }
}

impl TraceVisitor for Pass<'_> {
    fn resource(&mut self, resource: &ResourceCtx<'_>, edits: &mut AttrEdits) -> Verdict {
        self.list(resource.attributes(), edits);
        Verdict::Keep
    }

    fn span(&mut self, span: &SpanCtx<'_>, edits: &mut AttrEdits) -> Verdict {
        self.list(span.attributes(), edits);
        Verdict::Keep
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::processor::redaction::rules::Summary;
    use crate::telemetry::metrics::{Kind, Registry};
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use prost::Message;

    struct Nop;
    impl Consumer for Nop {
        fn consume(&self, _: Payload) -> Result<(), Refusal> {
            Ok(())
        }
    }

    fn stage(allow_all: bool, allowed: &[&str], blocked: &[&str]) -> Rc<RedactionStage> {
        let allowed: Vec<String> = allowed.iter().map(|s| s.to_string()).collect();
        let blocked = blocked
            .iter()
            .map(|p| regex::bytes::Regex::new(p).unwrap())
            .collect();
        let rules = Rules::new(allow_all, &allowed, &[], blocked, Summary::Info);
        let r = Registry::new(1);
        let dropped = r.register("d", "", Kind::Counter, &[]).local(0);
        RedactionStage::new(Arc::new(rules), Rc::new(Nop), dropped)
    }

    fn kv(key: &str, v: any_value::Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(v) }),
        }
    }

    fn body(attrs: Vec<KeyValue>) -> Vec<u8> {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span {
                        trace_id: vec![1; 16],
                        attributes: attrs,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec()
    }

    fn span_attrs(out: &[u8]) -> Vec<KeyValue> {
        let r = ExportTraceServiceRequest::decode(out).unwrap();
        r.resource_spans[0].scope_spans[0].spans[0]
            .attributes
            .clone()
    }

    fn str_value(v: &str) -> any_value::Value {
        any_value::Value::StringValue(v.into())
    }

    #[test]
    fn nothing_to_change_forwards_the_input() {
        let s = stage(true, &[], &["secret"]);
        assert_eq!(
            s.redact(&body(vec![kv("a", str_value("fine"))])).unwrap(),
            None
        );
    }

    /// Go's ReplaceAllString ignores an empty match that abuts the previous match: `a*` on
    /// "baaac" is "****b****c****" there, and must be here.
    #[test]
    fn empty_matches_replace_as_go_does() {
        let s = stage(true, &[], &["a*"]);
        let out = s
            .redact(&body(vec![kv("k", str_value("baaac"))]))
            .unwrap()
            .unwrap();
        assert_eq!(span_attrs(&out)[0], kv("k", str_value("****b****c****")));
    }

    /// contrib reads a non-string value as "" (`Value.Str()`): a pattern matching the empty
    /// string turns it into "****"; one that does not leaves it alone.
    #[test]
    fn non_string_values_are_seen_as_empty_strings() {
        let int = any_value::Value::IntValue(42);
        let s = stage(true, &[], &["4"]);
        assert_eq!(s.redact(&body(vec![kv("n", int.clone())])).unwrap(), None);
        let s = stage(true, &[], &["^$"]);
        let out = s.redact(&body(vec![kv("n", int)])).unwrap().unwrap();
        assert_eq!(span_attrs(&out)[0], kv("n", str_value("****")));
    }

    #[test]
    fn malformed_attributes_are_an_error() {
        let s = stage(false, &[], &[]);
        let mut b = body(vec![kv("a", str_value("x"))]);
        // The string's length (the byte before its one byte) now runs past its `AnyValue`.
        let n = b.len();
        assert_eq!((b[n - 2], b[n - 1]), (1, b'x'));
        b[n - 2] = 5;
        assert!(s.redact(&b).is_err());
    }
}
