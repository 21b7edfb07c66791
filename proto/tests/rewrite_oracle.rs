//! Property tests of the rewrite primitive (`tailgate_proto::rewrite`) against prost +
//! opentelemetry-proto as the oracle.
//!
//! Random requests (strategies shared with `oracle.rs`) are encoded by hand with unknown fields
//! injected into random messages (the request, resource and scope envelopes, resources, scopes,
//! spans, span events), each carrying a unique marker. A random edit program (sets, deletes,
//! copies at every level, drops by predicate, a prune mode) runs once as a [`TraceVisitor`] over
//! the bytes and once over the prost-decoded request; the decoded output must equal the prost-side
//! result, every marker of a surviving message must be in the output and no marker of a removed
//! one, and a pass that reports no change must return the input byte for byte.
#![allow(clippy::unwrap_used)]

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value::Value, AnyValue as PValue, InstrumentationScope, KeyValue,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::Span;
use proptest::prelude::*;
use prost::Message;
use tailgate_proto::attributes::AnyValue;
use tailgate_proto::rewrite::{
    AttrEdits, EventCtx, Prune, ResourceCtx, Rewriter, ScopeCtx, SpanCtx, TraceVisitor, Verdict,
};

mod strategies;

use strategies::{request, Req};

// === the edit program ===

#[derive(Debug, Clone)]
enum Val {
    Str(String),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(Vec<u8>),
}

impl Val {
    fn wire(&self) -> AnyValue<'_> {
        match self {
            Val::Str(s) => AnyValue::String(s.as_bytes()),
            Val::Bool(b) => AnyValue::Bool(*b),
            Val::Int(i) => AnyValue::Int(*i),
            Val::Double(d) => AnyValue::Double(*d),
            Val::Bytes(b) => AnyValue::Bytes(b),
        }
    }

    fn prost(&self) -> PValue {
        let value = match self {
            Val::Str(s) => Value::StringValue(s.clone()),
            Val::Bool(b) => Value::BoolValue(*b),
            Val::Int(i) => Value::IntValue(*i),
            Val::Double(d) => Value::DoubleValue(*d),
            Val::Bytes(b) => Value::BytesValue(b.clone()),
        };
        PValue { value: Some(value) }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Set(String, Val),
    Delete(String),
    /// Set `.1` to the value of `.0` as it is in the input, if present.
    Copy(String, String),
}

/// When to drop a message: by its attributes (as in the input) or its name's length.
#[derive(Debug, Clone)]
enum Pred {
    Never,
    HasKey(String),
    CountMod(usize, usize),
    NameLenMod(usize, usize),
}

impl Pred {
    fn eval(&self, count: usize, has: impl Fn(&str) -> bool, name_len: usize) -> bool {
        match self {
            Pred::Never => false,
            Pred::HasKey(k) => has(k),
            Pred::CountMod(m, r) => count % m == *r,
            Pred::NameLenMod(m, r) => name_len % m == *r,
        }
    }
}

#[derive(Debug, Clone)]
struct Program {
    resource: Vec<Op>,
    scope: Vec<Op>,
    span: Vec<Op>,
    event: Vec<Op>,
    drop_resource: Pred,
    drop_scope: Pred,
    drop_span: Pred,
    drop_event: Pred,
    /// Span ops apply only to spans of this kind.
    span_kind: Option<i32>,
    /// Copy this resource attribute (as rewritten) to this span attribute.
    from_resource: Option<(String, String)>,
    events: bool,
    prune: Prune,
}

fn key() -> impl Strategy<Value = String> {
    "[a-c]{1,2}"
}

fn val() -> impl Strategy<Value = Val> {
    prop_oneof![
        "[a-z]{0,6}".prop_map(Val::Str),
        any::<bool>().prop_map(Val::Bool),
        any::<i64>().prop_map(Val::Int),
        any::<f64>()
            .prop_filter("NaN != NaN", |f| !f.is_nan())
            .prop_map(Val::Double),
        proptest::collection::vec(any::<u8>(), 0..4).prop_map(Val::Bytes),
    ]
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        3 => (key(), val()).prop_map(|(k, v)| Op::Set(k, v)),
        2 => key().prop_map(Op::Delete),
        1 => (key(), key()).prop_map(|(a, b)| Op::Copy(a, b)),
    ];
    prop_oneof![1 => Just(Vec::new()), 2 => proptest::collection::vec(op, 1..5)]
}

fn pred() -> impl Strategy<Value = Pred> {
    prop_oneof![
        4 => Just(Pred::Never),
        1 => key().prop_map(Pred::HasKey),
        1 => (2..4usize).prop_flat_map(|m| (Just(m), 0..m)).prop_map(|(m, r)| Pred::CountMod(m, r)),
        1 => (2..4usize).prop_flat_map(|m| (Just(m), 0..m)).prop_map(|(m, r)| Pred::NameLenMod(m, r)),
    ]
}

fn program() -> impl Strategy<Value = Program> {
    (
        (ops(), ops(), ops(), ops()),
        (pred(), pred(), pred(), pred()),
        (
            proptest::option::weighted(0.3, 0..7i32),
            proptest::option::weighted(0.3, (key(), key())),
            any::<bool>(),
            prop_oneof![
                Just(Prune::Never),
                Just(Prune::Emptied),
                Just(Prune::AllEmpty)
            ],
        ),
    )
        .prop_map(
            |(
                (resource, scope, span, event),
                (drop_resource, drop_scope, drop_span, drop_event),
                (span_kind, from_resource, events, prune),
            )| Program {
                resource,
                scope,
                span,
                event,
                drop_resource,
                drop_scope,
                drop_span,
                drop_event,
                span_kind,
                from_resource,
                events,
                prune,
            },
        )
}

// === the program over the wire ===

struct Wire<'p>(&'p Program);

fn wire_ops<'a>(ops: &[Op], get: impl Fn(&str) -> Option<AnyValue<'a>>, edits: &mut AttrEdits) {
    for op in ops {
        match op {
            Op::Set(k, v) => edits.set(k, v.wire()),
            Op::Delete(k) => edits.delete(k),
            Op::Copy(from, to) => {
                if let Some(v) = get(from) {
                    edits.set(to, v);
                }
            }
        }
    }
}

impl TraceVisitor for Wire<'_> {
    fn resource(&mut self, r: &ResourceCtx<'_>, edits: &mut AttrEdits) -> Verdict {
        let count = r.attributes().count();
        if self
            .0
            .drop_resource
            .eval(count, |k| r.attribute(k).is_some(), 0)
        {
            return Verdict::Drop;
        }
        wire_ops(&self.0.resource, |k| r.attribute(k), edits);
        Verdict::Keep
    }

    fn scope(&mut self, s: &ScopeCtx<'_>, edits: &mut AttrEdits) -> Verdict {
        let count = s.attributes().count();
        if self
            .0
            .drop_scope
            .eval(count, |k| s.attribute(k).is_some(), s.name().len())
        {
            return Verdict::Drop;
        }
        wire_ops(&self.0.scope, |k| s.attribute(k), edits);
        Verdict::Keep
    }

    fn span(&mut self, s: &SpanCtx<'_>, edits: &mut AttrEdits) -> Verdict {
        let count = s.attributes().count();
        if self
            .0
            .drop_span
            .eval(count, |k| s.attribute(k).is_some(), s.name().len())
        {
            return Verdict::Drop;
        }
        if self.0.span_kind.is_none_or(|k| k == s.fields().kind) {
            wire_ops(&self.0.span, |k| s.attribute(k), edits);
        }
        if let Some((from, to)) = &self.0.from_resource {
            if let Some(v) = s.resource().attribute(from) {
                edits.set(to, v);
            }
        }
        Verdict::Keep
    }

    fn visits_events(&self) -> bool {
        self.0.events
    }

    fn event(&mut self, e: &EventCtx<'_>, edits: &mut AttrEdits) -> Verdict {
        let count = e.attributes().count();
        if self
            .0
            .drop_event
            .eval(count, |k| e.attribute(k).is_some(), e.name().len())
        {
            return Verdict::Drop;
        }
        wire_ops(&self.0.event, |k| e.attribute(k), edits);
        Verdict::Keep
    }
}

// === the program over prost values ===

/// An edit resolved against the input list: the key, and the value to set (`None`: delete).
type Resolved = (String, Option<Option<PValue>>);

fn resolve(ops: &[Op], attrs: &[KeyValue]) -> Vec<Resolved> {
    ops.iter()
        .filter_map(|op| match op {
            Op::Set(k, v) => Some((k.clone(), Some(Some(v.prost())))),
            Op::Delete(k) => Some((k.clone(), None)),
            Op::Copy(from, to) => attrs
                .iter()
                .find(|kv| &kv.key == from)
                .map(|kv| (to.clone(), Some(kv.value.clone()))),
        })
        .collect()
}

/// `AttrEdits`' documented semantics: the last edit of a key wins; delete removes every
/// occurrence; set replaces the first in place and removes the rest, or appends.
fn apply_list(attrs: &[KeyValue], ops: &[Resolved]) -> Vec<KeyValue> {
    let last: Vec<bool> = (0..ops.len())
        .map(|i| !ops[i + 1..].iter().any(|o| o.0 == ops[i].0))
        .collect();
    let find = |key: &str| (0..ops.len()).find(|&i| last[i] && ops[i].0 == key);
    let mut written = vec![false; ops.len()];
    let mut out = Vec::new();
    for kv in attrs {
        match find(&kv.key) {
            None => out.push(kv.clone()),
            Some(i) => {
                if let Some(v) = &ops[i].1 {
                    if !written[i] {
                        written[i] = true;
                        out.push(KeyValue {
                            key: kv.key.clone(),
                            value: v.clone(),
                        });
                    }
                }
            }
        }
    }
    for i in 0..ops.len() {
        if let (true, false, Some(v)) = (last[i], written[i], &ops[i].1) {
            out.push(KeyValue {
                key: ops[i].0.clone(),
                value: v.clone(),
            });
        }
    }
    out
}

fn has(attrs: &[KeyValue], key: &str) -> bool {
    attrs.iter().any(|kv| kv.key == key)
}

/// Marker ids of one request's messages (`None`: no unknown field injected).
#[derive(Debug, Default)]
struct Ids {
    request: Option<u32>,
    resources: Vec<ResourceIds>,
}

#[derive(Debug, Default)]
struct ResourceIds {
    envelope: Option<u32>,
    message: Option<u32>,
    scopes: Vec<ScopeIds>,
}

#[derive(Debug, Default)]
struct ScopeIds {
    envelope: Option<u32>,
    message: Option<u32>,
    spans: Vec<(Option<u32>, Vec<Option<u32>>)>,
}

/// What the prost side expects.
#[derive(Debug, Default)]
struct Expected {
    request: ExportTraceServiceRequest,
    survivors: Vec<u32>,
    spans_in: usize,
    spans_out: usize,
    events_dropped: usize,
}

fn expected(req: &ExportTraceServiceRequest, p: &Program, ids: &Ids) -> Expected {
    let mut exp = Expected::default();
    exp.survivors.extend(ids.request);
    for (rs, rids) in req.resource_spans.iter().zip(&ids.resources) {
        let spans: usize = rs.scope_spans.iter().map(|s| s.spans.len()).sum();
        exp.spans_in += spans;
        let attrs = rs.resource.as_ref().map_or(&[][..], |r| &r.attributes);
        if p.drop_resource.eval(attrs.len(), |k| has(attrs, k), 0) {
            continue;
        }
        let mut rs = rs.clone();
        let new_attrs = apply_list(attrs, &resolve(&p.resource, attrs));
        match rs.resource.as_mut() {
            Some(r) => r.attributes = new_attrs,
            None if !new_attrs.is_empty() => {
                rs.resource = Some(Resource {
                    attributes: new_attrs,
                    ..Default::default()
                })
            }
            None => {}
        }
        let res_attrs = rs
            .resource
            .as_ref()
            .map_or(Vec::new(), |r| r.attributes.clone());
        let scopes_in = rs.scope_spans.len();
        let mut survivors = vec![];
        survivors.extend(rids.envelope);
        survivors.extend(rids.message);
        let mut scopes = Vec::new();
        for (ss, sids) in rs.scope_spans.iter().zip(&rids.scopes) {
            let scope_attrs = ss.scope.as_ref().map_or(&[][..], |s| &s.attributes);
            let name_len = ss.scope.as_ref().map_or(0, |s| s.name.len());
            if p.drop_scope
                .eval(scope_attrs.len(), |k| has(scope_attrs, k), name_len)
            {
                continue;
            }
            let mut ss = ss.clone();
            let new_attrs = apply_list(scope_attrs, &resolve(&p.scope, scope_attrs));
            match ss.scope.as_mut() {
                Some(s) => s.attributes = new_attrs,
                None if !new_attrs.is_empty() => {
                    ss.scope = Some(InstrumentationScope {
                        attributes: new_attrs,
                        ..Default::default()
                    })
                }
                None => {}
            }
            let spans_in = ss.spans.len();
            let mut scope_survivors = vec![];
            scope_survivors.extend(sids.envelope);
            scope_survivors.extend(sids.message);
            let mut spans = Vec::new();
            for (span, (span_id, event_ids)) in ss.spans.iter().zip(&sids.spans) {
                let Some(span) = expected_span(
                    span,
                    p,
                    &res_attrs,
                    event_ids,
                    &mut exp,
                    &mut scope_survivors,
                ) else {
                    continue;
                };
                scope_survivors.extend(*span_id);
                spans.push(span);
            }
            let remove = match p.prune {
                Prune::Never => false,
                Prune::Emptied => spans_in > 0 && spans.is_empty(),
                Prune::AllEmpty => spans.is_empty(),
            };
            if remove {
                continue;
            }
            exp.spans_out += spans.len();
            ss.spans = spans;
            survivors.extend(scope_survivors);
            scopes.push(ss);
        }
        let remove = match p.prune {
            Prune::Never => false,
            Prune::Emptied => scopes_in > 0 && scopes.is_empty(),
            Prune::AllEmpty => scopes.is_empty(),
        };
        if remove {
            continue;
        }
        rs.scope_spans = scopes;
        exp.survivors.extend(survivors);
        exp.request.resource_spans.push(rs);
    }
    exp
}

/// One span through the program (`None`: dropped); kept events' markers go to `survivors`.
fn expected_span(
    span: &Span,
    p: &Program,
    res_attrs: &[KeyValue],
    event_ids: &[Option<u32>],
    exp: &mut Expected,
    survivors: &mut Vec<u32>,
) -> Option<Span> {
    let attrs = &span.attributes;
    if p.drop_span
        .eval(attrs.len(), |k| has(attrs, k), span.name.len())
    {
        return None;
    }
    let mut span = span.clone();
    let mut ops = Vec::new();
    if p.span_kind.is_none_or(|k| k == span.kind) {
        ops = resolve(&p.span, attrs);
    }
    if let Some((from, to)) = &p.from_resource {
        if let Some(kv) = res_attrs.iter().find(|kv| &kv.key == from) {
            ops.push((to.clone(), Some(kv.value.clone())));
        }
    }
    span.attributes = apply_list(attrs, &ops);
    let mut events = Vec::new();
    for (e, id) in span.events.iter().zip(event_ids) {
        if p.events {
            if p.drop_event
                .eval(e.attributes.len(), |k| has(&e.attributes, k), e.name.len())
            {
                exp.events_dropped += 1;
                continue;
            }
            let mut e = e.clone();
            e.attributes = apply_list(&e.attributes, &resolve(&p.event, &e.attributes));
            events.push(e);
        } else {
            events.push(e.clone());
        }
        survivors.extend(*id);
    }
    span.events = events;
    Some(span)
}

/// Top-level attribute values set to an empty `AnyValue` read as absent (pdata makes no
/// difference, and a rewrite writes an empty value as no value field).
fn normalise(req: &mut ExportTraceServiceRequest) {
    fn list(attrs: &mut [KeyValue]) {
        for kv in attrs {
            if matches!(&kv.value, Some(PValue { value: None })) {
                kv.value = None;
            }
        }
    }
    for rs in &mut req.resource_spans {
        if let Some(r) = rs.resource.as_mut() {
            list(&mut r.attributes);
        }
        for ss in &mut rs.scope_spans {
            if let Some(s) = ss.scope.as_mut() {
                list(&mut s.attributes);
            }
            for span in &mut ss.spans {
                list(&mut span.attributes);
                for e in &mut span.events {
                    list(&mut e.attributes);
                }
            }
        }
    }
}

// === hand encoding with markers ===

fn put_len_field(out: &mut Vec<u8>, number: u32, payload: &[u8]) {
    prost::encoding::encode_key(number, prost::encoding::WireType::LengthDelimited, out);
    prost::encoding::encode_varint(payload.len() as u64, out);
    out.extend_from_slice(payload);
}

fn marker(id: u32) -> Vec<u8> {
    format!("UNKNOWN-MARKER-{id:05}").into_bytes()
}

/// Injects an unknown field (number 100, the message's marker) where `mask` says.
struct Enc {
    mask: u64,
    next: u32,
}

impl Enc {
    fn unknown(&mut self, out: &mut Vec<u8>) -> Option<u32> {
        let id = self.next;
        self.next += 1;
        if (self.mask >> (id % 64)) & 1 == 0 {
            return None;
        }
        put_len_field(out, 100, &marker(id));
        Some(id)
    }
}

/// The attributes as (all, none), or with `split` as (first half, second half).
fn split_half(attrs: &[KeyValue], split: bool) -> (Vec<KeyValue>, Vec<KeyValue>) {
    let k = if split { attrs.len() / 2 } else { attrs.len() };
    (attrs[..k].to_vec(), attrs[k..].to_vec())
}

/// Encodes `req` with unknown fields where `mask` says; bit 63 also splits every resource and
/// scope message in two occurrences (the second after the children).
fn encode(req: &Req, mask: u64) -> (Vec<u8>, Ids) {
    let split = mask >> 63 == 1;
    let mut enc = Enc { mask, next: 0 };
    let mut ids = Ids::default();
    let mut out = Vec::new();
    ids.request = enc.unknown(&mut out);
    for (res, schema, scopes) in &req.resources {
        let mut rids = ResourceIds::default();
        let mut rs = Vec::new();
        // With `split`, the resource's second half of attributes is a second `resource` field
        // after the scopes: prost merges the two, so the request means the same.
        let mut resource_tail = None;
        if let Some(r) = res {
            let (head, tail) = split_half(&r.attributes, split);
            let mut m = Resource {
                attributes: head,
                ..r.clone()
            }
            .encode_to_vec();
            rids.message = enc.unknown(&mut m);
            put_len_field(&mut rs, 1, &m);
            if !tail.is_empty() {
                resource_tail = Some(
                    Resource {
                        attributes: tail,
                        ..Default::default()
                    }
                    .encode_to_vec(),
                );
            }
        }
        rids.envelope = enc.unknown(&mut rs);
        for (scope, sschema, spans) in scopes {
            let mut sids = ScopeIds::default();
            let mut ss = Vec::new();
            sids.envelope = enc.unknown(&mut ss);
            let mut scope_tail = None;
            if let Some(s) = scope {
                let (head, tail) = split_half(&s.attributes, split);
                let mut m = InstrumentationScope {
                    attributes: head,
                    ..s.clone()
                }
                .encode_to_vec();
                sids.message = enc.unknown(&mut m);
                put_len_field(&mut ss, 1, &m);
                if !tail.is_empty() {
                    scope_tail = Some(
                        InstrumentationScope {
                            attributes: tail,
                            ..Default::default()
                        }
                        .encode_to_vec(),
                    );
                }
            }
            for span in spans {
                let mut sp = Span {
                    events: Vec::new(),
                    ..span.clone()
                }
                .encode_to_vec();
                let mut event_ids = Vec::new();
                for e in &span.events {
                    let mut m = e.encode_to_vec();
                    event_ids.push(enc.unknown(&mut m));
                    put_len_field(&mut sp, 11, &m);
                }
                let id = enc.unknown(&mut sp);
                sids.spans.push((id, event_ids));
                put_len_field(&mut ss, 2, &sp);
            }
            if !sschema.is_empty() {
                put_len_field(&mut ss, 3, sschema.as_bytes());
            }
            rids.scopes.push(sids);
            if let Some(t) = scope_tail {
                put_len_field(&mut ss, 1, &t);
            }
            put_len_field(&mut rs, 2, &ss);
        }
        if !schema.is_empty() {
            put_len_field(&mut rs, 3, schema.as_bytes());
        }
        if let Some(t) = resource_tail {
            put_len_field(&mut rs, 1, &t);
        }
        ids.resources.push(rids);
        put_len_field(&mut out, 1, &rs);
    }
    (out, ids)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A visitor that edits nothing but visits everything.
struct Identity;

impl TraceVisitor for Identity {
    fn visits_events(&self) -> bool {
        true
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn rewrite_matches_prost(req in request(), p in program(), mask in any::<u64>()) {
        let (buf, ids) = encode(&req, mask);
        let mut rewriter = Rewriter::new().with_prune(p.prune);
        let mut out = vec![7u8]; // output is appended: a prefix stays
        let stats = rewriter.rewrite_traces(&buf, &mut Wire(&p), &mut out).unwrap();
        prop_assert_eq!(out[0], 7);
        let out = &out[1..];
        let input = ExportTraceServiceRequest::decode(&buf[..]).unwrap();
        let mut exp = expected(&input, &p, &ids);
        let mut got = ExportTraceServiceRequest::decode(out).unwrap();
        normalise(&mut got);
        normalise(&mut exp.request);
        prop_assert_eq!(&got, &exp.request);
        prop_assert_eq!(stats.items_in, exp.spans_in);
        prop_assert_eq!(stats.items_out, exp.spans_out);
        prop_assert_eq!(stats.events_dropped, exp.events_dropped);
        prop_assert_eq!(stats.resources_out, exp.request.resource_spans.len());
        if !stats.changed {
            prop_assert_eq!(out, &buf[..]);
        }
        for id in 0..64 * 8 {
            let survives = exp.survivors.contains(&id);
            prop_assert_eq!(
                contains(out, &marker(id)),
                survives,
                "marker {} (survives: {})", id, survives
            );
        }
    }

    #[test]
    fn a_pass_without_edits_returns_the_input(req in request(), mask in any::<u64>(), prune in 0..2u8) {
        let (buf, _) = encode(&req, mask);
        let prune = if prune == 0 { Prune::Never } else { Prune::Emptied };
        let mut out = Vec::new();
        let stats = Rewriter::new()
            .with_prune(prune)
            .rewrite_traces(&buf, &mut Identity, &mut out)
            .unwrap();
        prop_assert!(!stats.changed);
        prop_assert_eq!(out, buf);
    }

    #[test]
    fn damaged_requests_never_panic(req in request(), cuts in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4)) {
        let (mut buf, _) = encode(&req, u64::MAX);
        if buf.is_empty() {
            return Ok(());
        }
        for (at, byte) in cuts {
            let i = at.index(buf.len());
            buf[i] = byte;
        }
        tailgate_proto::fuzzing::rewrite(&buf);
        let cut = buf.len() / 2;
        tailgate_proto::fuzzing::rewrite(&buf[..cut]);
    }

    #[test]
    fn the_fuzz_program_holds_on_valid_requests(req in request(), mask in any::<u64>()) {
        let (buf, _) = encode(&req, mask);
        tailgate_proto::fuzzing::rewrite(&buf);
    }
}

/// A length prefix written with a redundant byte (a valid, non-minimal varint) is kept when
/// nothing changes, and replaced by a minimal one when its message changes.
#[test]
fn non_minimal_length_prefixes() {
    let span = Span {
        trace_id: vec![1; 16],
        span_id: vec![2; 8],
        name: "s".into(),
        ..Default::default()
    }
    .encode_to_vec();
    // ScopeSpans { spans: [span] } with the span's length as two bytes.
    let mut ss = vec![0x12, (span.len() as u8) | 0x80, 0x00];
    ss.extend_from_slice(&span);
    let mut rs = Vec::new();
    put_len_field(&mut rs, 2, &ss);
    let mut req = Vec::new();
    put_len_field(&mut req, 1, &rs);

    let mut out = Vec::new();
    let stats = Rewriter::new()
        .rewrite_traces(&req, &mut Identity, &mut out)
        .unwrap();
    assert!(!stats.changed);
    assert_eq!(out, req);

    struct SetOne;
    impl TraceVisitor for SetOne {
        fn span(&mut self, _: &SpanCtx<'_>, edits: &mut AttrEdits) -> Verdict {
            edits.set("k", AnyValue::Int(1));
            Verdict::Keep
        }
    }
    let mut out = Vec::new();
    let stats = Rewriter::new()
        .rewrite_traces(&req, &mut SetOne, &mut out)
        .unwrap();
    assert!(stats.changed);
    let got = ExportTraceServiceRequest::decode(&out[..]).unwrap();
    let span = &got.resource_spans[0].scope_spans[0].spans[0];
    assert_eq!(span.name, "s");
    assert_eq!(span.attributes.len(), 1);
    assert_eq!(
        out.len(),
        req.len() - 1 + span.attributes[0].encoded_len() + 2
    );
}

/// The output limit stops a rewrite that grows a request past it.
#[test]
fn the_output_limit_is_enforced() {
    let (buf, _) = encode(
        &Req {
            resources: vec![(
                None,
                String::new(),
                vec![(
                    None,
                    String::new(),
                    vec![
                        Span {
                            trace_id: vec![1; 16],
                            ..Default::default()
                        };
                        10
                    ],
                )],
            )],
            unknown: false,
        },
        0,
    );
    struct Grow;
    impl TraceVisitor for Grow {
        fn span(&mut self, _: &SpanCtx<'_>, edits: &mut AttrEdits) -> Verdict {
            edits.set("big", AnyValue::Bytes(&[0; 1000]));
            Verdict::Keep
        }
    }
    let mut out = Vec::new();
    let err = Rewriter::new()
        .with_max_output(5000)
        .rewrite_traces(&buf, &mut Grow, &mut out)
        .unwrap_err();
    assert!(matches!(
        err,
        tailgate_proto::RewriteError::TooLarge { limit: 5000, len } if len > 5000 && len < 6100
    ));
}
