//! Statements: the transform processor README's trace statements and the ottlfuncs README's
//! examples for each supported editor, with expected output, and statement parse errors.

mod common;

use common::{attrs, s, Item};
use tailgate_ottl::{parse_statement, AttrVec, Context, Value};

fn run(cx: Context, statements: &[&str], item: &mut Item) {
    for text in statements {
        let st = parse_statement(text, cx).unwrap_or_else(|e| panic!("{text}: {e}"));
        st.execute(item).unwrap_or_else(|e| panic!("{text}: {e}"));
    }
}

fn keys(m: &AttrVec) -> Vec<&str> {
    m.0.iter().map(|(k, _)| k.as_str()).collect()
}

fn parse_error(text: &str) -> String {
    match parse_statement(text, Context::Span) {
        Ok(st) => panic!("{text} parsed: {st:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn transform_readme_resource_statements() {
    let mut it = Item {
        resource: attrs(&[
            ("service.name", s("checkout")),
            ("host.name", s("h1")),
            ("process.command_line", s("app --password=secret --v")),
            ("cloud.region", s(&"x".repeat(5000))),
        ]),
        ..Item::default()
    };
    run(
        Context::Resource,
        &[
            r#"keep_keys(attributes, ["service.name", "service.namespace", "cloud.region", "process.command_line"])"#,
            r#"replace_pattern(attributes["process.command_line"], "password\\=[^\\s]*(\\s?)", "password=***")"#,
            "limit(attributes, 100, [])",
            "truncate_all(attributes, 4096)",
        ],
        &mut it,
    );
    assert_eq!(
        keys(&it.resource),
        ["service.name", "process.command_line", "cloud.region"]
    );
    assert_eq!(
        it.resource.get("process.command_line"),
        Some(&s("app --password=***--v"))
    );
    assert_eq!(it.resource.get("cloud.region"), Some(&s(&"x".repeat(4096))));
}

#[test]
fn transform_readme_span_statements() {
    let mut it = Item {
        name: "GET".into(),
        attrs: attrs(&[
            ("http.path", s("/health")),
            ("http.route", s("/health/{id}")),
            ("http.target", s("/user/123/list/456")),
        ]),
        ..Item::default()
    };
    run(
        Context::Span,
        &[
            r#"set(status.code, 1) where attributes["http.path"] == "/health""#,
            r#"set(name, attributes["http.route"])"#,
            r#"replace_match(attributes["http.target"], "/user/*/list/*", "/user/{userId}/list/{listId}")"#,
            "limit(attributes, 100, [])",
            "truncate_all(attributes, 4096)",
        ],
        &mut it,
    );
    assert_eq!(it.status_code, 1);
    assert_eq!(it.name, "/health/{id}");
    assert_eq!(
        it.attrs.get("http.target"),
        Some(&s("/user/{userId}/list/{listId}"))
    );
}

#[test]
fn where_clause_gates_the_editor() {
    let mut it = Item {
        attrs: attrs(&[("http.path", s("/other"))]),
        ..Item::default()
    };
    let st = parse_statement(
        r#"set(status.code, 1) where attributes["http.path"] == "/health""#,
        Context::Span,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(st.execute(&mut it), Ok(false));
    assert_eq!(it.status_code, 0);
    assert_eq!(st.editor_name(), "set");
}

#[test]
fn rename_and_combine_attributes() {
    let mut it = Item {
        attrs: attrs(&[
            ("k8s.namespace.name", s("prod")),
            ("foo", s("a")),
            ("bar", s("b")),
        ]),
        ..Item::default()
    };
    run(
        Context::Span,
        &[
            r#"set(attributes["namespace"], attributes["k8s.namespace.name"])"#,
            r#"delete_key(attributes, "k8s.namespace.name")"#,
            r#"set(attributes["test"], Concat([attributes["foo"], attributes["bar"]], " "))"#,
            r#"set(attributes["missing"], attributes["nope"])"#,
            r#"set(attributes["map"], attributes)"#,
            r#"set(attributes["hashed"], SHA256(attributes["foo"]))"#,
        ],
        &mut it,
    );
    assert_eq!(
        keys(&it.attrs),
        ["foo", "bar", "namespace", "test", "hashed"]
    );
    assert_eq!(it.attrs.get("namespace"), Some(&s("prod")));
    assert_eq!(it.attrs.get("test"), Some(&s("a b")));
    assert_eq!(
        it.attrs.get("hashed"),
        Some(&s(
            "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"
        ))
    );
}

#[test]
fn matching_keys_editors() {
    let base = attrs(&[
        ("http.method", s("GET")),
        ("db.password", s("x")),
        ("user.Password", s("y")),
        ("http.url", s("/")),
    ]);
    let mut it = Item {
        attrs: base.clone(),
        ..Item::default()
    };
    run(
        Context::Span,
        &[r#"delete_matching_keys(attributes, "(?i).*password.*")"#],
        &mut it,
    );
    assert_eq!(keys(&it.attrs), ["http.method", "http.url"]);
    let mut it = Item {
        attrs: base,
        ..Item::default()
    };
    run(
        Context::Span,
        &[r#"keep_matching_keys(attributes, "^http")"#],
        &mut it,
    );
    assert_eq!(keys(&it.attrs), ["http.method", "http.url"]);
    run(Context::Span, &["keep_keys(attributes, [])"], &mut it);
    assert!(it.attrs.0.is_empty());
}

#[test]
fn replace_pattern_and_all_patterns() {
    let mut it = Item {
        name: "kube_pod_status".into(),
        attrs: attrs(&[
            ("path", s("/account/1234/x")),
            ("kube_node_name", s("n1")),
            ("n", Value::Int(4)),
            ("other", s("/account/9999")),
        ]),
        ..Item::default()
    };
    run(
        Context::Span,
        &[
            r#"replace_pattern(name, "^kube_([0-9A-Za-z]+_)", "k8s.$1.")"#,
            r#"replace_all_patterns(attributes, "value", "/account/\\d{4}", "/account/{accountId}")"#,
            r#"replace_all_patterns(attributes, "key", "^kube_([0-9A-Za-z]+_)", "k8s.$1.")"#,
        ],
        &mut it,
    );
    assert_eq!(it.name, "k8s.pod_.status");
    assert_eq!(keys(&it.attrs), ["path", "k8s.node_.name", "n", "other"]);
    assert_eq!(it.attrs.get("path"), Some(&s("/account/{accountId}/x")));
    assert_eq!(it.attrs.get("other"), Some(&s("/account/{accountId}")));
    assert_eq!(it.attrs.get("n"), Some(&Value::Int(4)));
}

#[test]
fn replace_pattern_with_sha256_and_format() {
    let mut it = Item {
        attrs: attrs(&[("cmd", s("kube_abc def"))]),
        ..Item::default()
    };
    run(
        Context::Span,
        &[r#"replace_pattern(attributes["cmd"], "^kube_([0-9A-Za-z]+)", "$1", SHA256, "k8s.%s")"#],
        &mut it,
    );
    // SHA-256 of "abc".
    assert_eq!(
        it.attrs.get("cmd"),
        Some(&s(
            "k8s.ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad def"
        ))
    );
}

#[test]
fn limit_and_truncate() {
    let mut it = Item {
        resource: attrs(&[
            ("a", s("1")),
            ("http.host", s("h")),
            ("b", s("2")),
            ("http.method", s("GET")),
            ("c", s("3")),
        ]),
        attrs: attrs(&[("long", s("abcdef")), ("n", Value::Int(123456))]),
        ..Item::default()
    };
    run(
        Context::Span,
        &[
            r#"limit(resource.attributes, 3, ["http.host", "http.method"])"#,
            "truncate_all(attributes, 3)",
        ],
        &mut it,
    );
    assert_eq!(keys(&it.resource), ["a", "http.host", "http.method"]);
    assert_eq!(it.attrs.get("long"), Some(&s("abc")));
    assert_eq!(it.attrs.get("n"), Some(&Value::Int(123456)));
}

#[test]
fn spanevent_and_scope_statements() {
    let mut it = Item {
        scope_name: "lib".into(),
        ..Item::default()
    };
    run(
        Context::SpanEvent,
        &[r#"set(attributes["span"], span.name) where name == """#],
        &mut it,
    );
    assert_eq!(it.event.attrs.get("span"), Some(&s("")));
    run(
        Context::Scope,
        &[r#"set(attributes["lib"], name) where version == """#],
        &mut it,
    );
    assert_eq!(it.scope.get("lib"), Some(&s("lib")));
}

#[test]
fn named_arguments() {
    let mut it = Item {
        attrs: attrs(&[("a", s("1")), ("b", s("2"))]),
        ..Item::default()
    };
    run(
        Context::Span,
        &[r#"limit(attributes, priority_keys = ["b"], limit = 1)"#],
        &mut it,
    );
    assert_eq!(keys(&it.attrs), ["b"]);
}

#[test]
fn statement_errors_name_the_construct() {
    let cases = [
        (
            r#"merge_maps(attributes, attributes, "upsert")"#,
            "column 1: function merge_maps is not supported",
        ),
        (
            r#"set(attributes["x"], ParseJSON(name))"#,
            "column 22: function ParseJSON is not supported",
        ),
        (
            r#"Concat([name], "")"#,
            "editor names must start with a lowercase letter but got 'Concat'",
        ),
        (
            r#"set(attributes["x"], concat([name], ""))"#,
            "converter names must start with an uppercase letter",
        ),
        (
            "truncate_all(attributes, -1)",
            "truncate_all: invalid limit -1, cannot be negative",
        ),
        (
            "limit(attributes, 1, [\"a\", \"b\"])",
            "cannot be less than the number of priority keys 2",
        ),
        (
            r#"keep_keys(attributes["a"], ["a"])"#,
            "keep_keys: target must be an attribute map",
        ),
        (
            r#"set(attributes, "x")"#,
            "set: target must be a field or one attribute",
        ),
        (
            r#"replace_all_patterns(attributes, "both", "a", "b")"#,
            "invalid mode \"both\"",
        ),
        (
            r#"replace_pattern(name, "a", "b", MD5)"#,
            "function MD5 is not supported",
        ),
        (
            r#"set(name, "x") where"#,
            "column 21: expected a comparison",
        ),
        (
            r#"set(name, "x") when true"#,
            "expected \"where\" or end of statement",
        ),
        (r#"set(name)"#, "set: missing argument value"),
        (r#"set(name, "a", "b")"#, "set: takes at most 2 arguments"),
        (
            r#"delete_key(attributes, key)"#,
            "delete_key: key must be a string literal",
        ),
        (
            r#"replace_match(name, "{a", "b")"#,
            "replace_match: invalid glob",
        ),
        (
            r#"set(cache["x"], 1)"#,
            "path cache[\"x\"] is not supported in the span context",
        ),
    ];
    for (text, want) in cases {
        let got = parse_error(text);
        assert!(got.contains(want), "{text}: got {got:?}, want {want:?}");
    }
}
