//! Cost of one evaluation: a filter condition (attribute equality), the duration condition, and
//! three transform statements, over the reference `AttrVec` target. `cargo bench -p tailgate-ottl`.
#![allow(missing_docs)]

use std::borrow::Cow;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use tailgate_ottl::{
    parse_condition, parse_statement, AttrVec, AttributeMap, Context, Entity, EvalError, Field,
    Path, Source, Target, Value,
};

#[derive(Clone)]
struct Span {
    name: String,
    start: i64,
    end: i64,
    attrs: AttrVec,
    resource: AttrVec,
}

impl Span {
    fn map(&mut self, e: Entity) -> &mut AttrVec {
        match e {
            Entity::Resource => &mut self.resource,
            _ => &mut self.attrs,
        }
    }
}

fn attr<'a>(m: &'a AttrVec, k: &str) -> Value<'a> {
    match m.get(k) {
        Some(Value::Str(s)) => Value::Str(Cow::Borrowed(s.as_ref())),
        Some(v) => v.clone(),
        None => Value::Nil,
    }
}

impl Source for Span {
    fn get(&self, path: &Path) -> Result<Value<'_>, EvalError> {
        Ok(match (path.entity, &path.field) {
            (Entity::Resource, Field::Attribute(k)) => attr(&self.resource, k),
            (_, Field::Attribute(k)) => attr(&self.attrs, k),
            (_, Field::Name) => Value::Str(Cow::Borrowed(&self.name)),
            (_, Field::StartTimeUnixNano) => Value::Int(self.start),
            (_, Field::EndTimeUnixNano) => Value::Int(self.end),
            _ => Value::Nil,
        })
    }
}

impl Target for Span {
    fn set(&mut self, path: &Path, value: Value<'static>) -> Result<(), EvalError> {
        match (&path.field, value) {
            (Field::Attribute(k), v) => self.map(path.entity).upsert(k, v),
            (Field::Name, Value::Str(s)) => self.name = s.into_owned(),
            _ => {}
        }
        Ok(())
    }

    fn edit_attributes(
        &mut self,
        entity: Entity,
        edit: &mut dyn FnMut(&mut dyn AttributeMap),
    ) -> Result<(), EvalError> {
        edit(self.map(entity));
        Ok(())
    }
}

fn span() -> Span {
    let s = |v: &str| Value::Str(Cow::Owned(v.to_string()));
    let mut attrs: Vec<(String, Value<'static>)> = (0..10)
        .map(|i| (format!("attr.{i}"), s("some value of moderate length")))
        .collect();
    attrs.push(("http.route".into(), s("/api/v1/users/{id}")));
    attrs.push(("http.target".into(), s("/user/123/list/456")));
    Span {
        name: "GET /api".into(),
        start: 1_000_000_000,
        end: 1_250_000_000,
        attrs: AttrVec(attrs),
        resource: AttrVec(vec![("service.name".into(), s("checkout"))]),
    }
}

fn bench(c: &mut Criterion) {
    let sp = span();
    let filter = parse_condition(r#"attributes["http.route"] == "/health""#, Context::Span)
        .unwrap_or_else(|e| panic!("{e}"));
    c.bench_function("condition_attribute_eq", |b| {
        b.iter(|| black_box(filter.eval(black_box(&sp))))
    });
    let duration = parse_condition(
        "end_time_unix_nano - start_time_unix_nano > 1000000000",
        Context::Span,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    c.bench_function("condition_duration", |b| {
        b.iter(|| black_box(duration.eval(black_box(&sp))))
    });
    let statements: Vec<_> = [
        r#"set(attributes["route"], attributes["http.route"]) where IsMatch(name, "^GET ")"#,
        r#"replace_match(attributes["http.target"], "/user/*/list/*", "/user/{userId}/list/{listId}")"#,
        "truncate_all(attributes, 16)",
    ]
    .iter()
    .map(|t| parse_statement(t, Context::Span).unwrap_or_else(|e| panic!("{e}")))
    .collect();
    c.bench_function("transform_3_statements", |b| {
        b.iter_batched_ref(
            span,
            |s| {
                for st in &statements {
                    let _ = black_box(st.execute(s));
                }
            },
            criterion::BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
