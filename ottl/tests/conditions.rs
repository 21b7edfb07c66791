//! Conditions: the filter processor README's span and span event examples, the constructs the
//! sampler's `ottl_condition` uses, arithmetic, converters, and parse errors naming what is not
//! supported.

mod common;

use common::{attrs, s, Item};
use tailgate_ottl::{parse_condition, Context, EvalError, ParseErrorKind, Value};

fn eval(text: &str, cx: Context, item: &Item) -> Result<bool, EvalError> {
    match parse_condition(text, cx) {
        Ok(c) => c.eval(item),
        Err(e) => panic!("{text}: {e}"),
    }
}

fn span(text: &str, item: &Item) -> bool {
    eval(text, Context::Span, item).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn parse_error(text: &str, cx: Context) -> String {
    match parse_condition(text, cx) {
        Ok(c) => panic!("{text} parsed: {c:?}"),
        Err(e) => e.to_string(),
    }
}

fn item() -> Item {
    Item {
        resource: attrs(&[("host.name", s("localhost"))]),
        name: "app_3".into(),
        kind: 2,
        status_code: 2,
        start: 1_000_000_000,
        end: 3_500_000_000,
        attrs: attrs(&[
            ("container.name", s("app_container_1")),
            ("http.request.method", s("GET")),
            ("n", Value::Int(10)),
            ("ratio", Value::Double(0.5)),
            ("flag", Value::Bool(true)),
        ]),
        event: common::Event {
            name: "grpc.call".into(),
            time: 2_000_000_000,
            attrs: attrs(&[("grpc", Value::Bool(true))]),
        },
        ..Item::default()
    }
}

#[test]
fn filter_readme_span_examples() {
    let it = item();
    assert!(span(
        r#"attributes["container.name"] == "app_container_1""#,
        &it
    ));
    assert!(span(
        r#"resource.attributes["host.name"] == "localhost""#,
        &it
    ));
    assert!(span(r#"name == "app_3""#, &it));
    assert!(!span(r#"attributes["http.request.method"] == nil"#, &it));
    assert!(span(r#"attributes["http.request.method"] != nil"#, &it));
    let mut other = item();
    other.name = "app_1".into();
    assert!(!span(r#"name == "app_3""#, &other));
}

#[test]
fn filter_readme_spanevent_examples() {
    let it = item();
    let ev = |t: &str| eval(t, Context::SpanEvent, &it).unwrap_or_else(|e| panic!("{t}: {e}"));
    assert!(ev(r#"attributes["grpc"] == true"#));
    assert!(ev(r#"IsMatch(name, ".*grpc.*")"#));
    assert!(ev(r#"span.name == "app_3" and name != "app_3""#));
    assert!(ev("time_unix_nano > span.start_time_unix_nano"));
    assert!(ev(r#"resource.attributes["host.name"] == "localhost""#));
}

#[test]
fn kinds_statuses_and_logic() {
    let it = item();
    assert!(span("kind == SPAN_KIND_SERVER", &it));
    assert!(span("span.status.code == STATUS_CODE_ERROR", &it));
    assert!(span(
        r#"attributes["container.name"] == "x" or (kind == SPAN_KIND_SERVER and not status.code == STATUS_CODE_OK)"#,
        &it
    ));
    assert!(span("true and not false", &it));
    assert!(span(
        r#"attributes["n"] >= 10 and attributes["n"] < 10.5"#,
        &it
    ));
    assert!(!span(r#"attributes["n"] == "10""#, &it), "types differ");
    assert!(span(r#"attributes["n"] != "10""#, &it));
    assert!(
        !span(r#"attributes["n"] > "1""#, &it),
        "no order across types"
    );
    assert!(span(r#"attributes["missing"] == nil"#, &it));
    assert!(!span(r#"attributes["missing"] < 1"#, &it));
    assert!(span(r#"attributes["flag"] == true"#, &it));
    assert!(span(r#"scope.attributes["x"] == nil"#, &it));
}

#[test]
fn duration_arithmetic() {
    let it = item();
    // The filter docs' duration condition: 2.5 s here.
    assert!(span(
        "end_time_unix_nano - start_time_unix_nano > 1000000000",
        &it
    ));
    assert!(!span(
        "(end_time_unix_nano - start_time_unix_nano) / 1000000 > 3000",
        &it
    ));
    assert!(span(
        "end_time_unix_nano - start_time_unix_nano == 2500000000",
        &it
    ));
    assert!(span(r#"attributes["ratio"] * 2 == 1"#, &it));
    assert!(span("2 + 3 * 4 == 14 and (2 + 3) * 4 == 20", &it));
    assert!(span("end_time - start_time > end_time - end_time", &it));
    assert_eq!(
        eval(r#"attributes["n"] / 0 > 1"#, Context::Span, &it),
        Err(EvalError::DivideByZero)
    );
    assert!(matches!(
        eval(r#"name + 1 > 1"#, Context::Span, &it),
        Err(EvalError::Type { got: "string", .. })
    ));
    assert!(matches!(
        eval(r#"attributes["missing"] + 1 > 1"#, Context::Span, &it),
        Err(EvalError::Type { got: "nil", .. })
    ));
}

#[test]
fn converters() {
    let it = item();
    assert!(span(
        r#"IsMatch(attributes["container.name"], "^app_")"#,
        &it
    ));
    assert!(!span(r#"IsMatch(attributes["missing"], ".*")"#, &it));
    assert!(
        span(r#"IsMatch(attributes["n"], "^10$")"#, &it),
        "string-like"
    );
    assert!(span(r#"IsMatch("string", ".*ring")"#, &it));
    assert!(span(r#"not IsMatch(name, "^x")"#, &it));
    assert!(span(
        r#"Concat([attributes["http.request.method"], name], " ") == "GET app_3""#,
        &it
    ));
    assert!(span(
        r#"Concat([name, 1, attributes["nope"]], "-") == "app_3-1-<nil>""#,
        &it
    ));
    assert!(span(
        r#"SHA256("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad""#,
        &it
    ));
    assert!(matches!(
        eval(r#"SHA256(attributes["n"]) == "x""#, Context::Span, &it),
        Err(EvalError::Type {
            site: "SHA256",
            got: "int",
            ..
        })
    ));
}

#[test]
fn literals() {
    let mut it = item();
    it.trace_id = [0xab; 16];
    assert!(span("trace_id == 0xabababababababababababababababab", &it));
    assert!(span(
        r#"trace_id.string == "abababababababababababababababab""#,
        &it
    ));
    assert!(span(r#"-1.5 < .5 and 1.5e3 == 1500"#, &it));
    assert!(span(r#""a\"b" != "a\\b""#, &it));
}

#[test]
fn errors_name_the_unsupported_construct() {
    let cases = [
        (
            r#"ParseJSON(name) == nil"#,
            "column 1: function ParseJSON is not supported",
        ),
        (r#"attributes["a"]["b"] == 1"#, "is not supported"),
        (
            "cache == nil",
            "column 1: path cache is not supported in the span context",
        ),
        (
            "time == nil",
            "path time is not supported in the span context",
        ),
        (
            "kind == SPAN_KIND_NOPE",
            "column 9: enum SPAN_KIND_NOPE is not supported in the span context",
        ),
        (
            r#"attributes["a"] == {"k": 1}"#,
            "a map literal is not supported",
        ),
        (
            r#"attributes["a"]"#,
            "column 16: expected a comparison operator, found end of input",
        ),
        (
            r#"Concat([name], "") "#,
            "converter Concat returns a string, not a condition",
        ),
        (
            r#"isMatch(name, "x")"#,
            "converter names must start with an uppercase letter but got 'isMatch'",
        ),
        (r#"IsMatch(name, "(")"#, "IsMatch: invalid regex \"(\""),
        (
            r#"IsMatch(name, pattern)"#,
            "IsMatch: pattern must be a string literal",
        ),
        (
            r#"name == "x" and"#,
            "column 16: expected a comparison, true, false, a converter call",
        ),
        (r#"name = "x""#, "column 6"),
        (r#"attributes[0] == 1"#, "an integer index is not supported"),
    ];
    for (text, want) in cases {
        let got = parse_error(text, Context::Span);
        assert!(got.contains(want), "{text}: got {got:?}, want {want:?}");
    }
    assert!(
        parse_error(r#"attributes["k"] == SPAN_KIND_SERVER"#, Context::Resource)
            .contains("enum SPAN_KIND_SERVER is not supported in the resource context")
    );
    assert!(parse_error("name == nil", Context::Resource)
        .contains("path name is not supported in the resource context"));
    assert!(matches!(
        parse_condition(&"a".repeat(70_000), Context::Span).map_err(|e| e.kind),
        Err(ParseErrorKind::TooLong(_))
    ));
}

#[test]
fn paths_lists_what_is_read() {
    let c = parse_condition(
        r#"name == "x" or IsMatch(resource.attributes["k"], "y") or end_time_unix_nano - start_time_unix_nano > 1"#,
        Context::Span,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut seen = Vec::new();
    c.paths(&mut |p| seen.push(p.to_string()));
    assert_eq!(
        seen,
        [
            "span.name",
            r#"resource.attributes["k"]"#,
            "span.end_time_unix_nano",
            "span.start_time_unix_nano"
        ]
    );
}

#[test]
fn routing_connector_statements() {
    use tailgate_ottl::parse_route_statement;
    let it = item();
    let c = parse_route_statement(
        r#"route() where attributes["host.name"] == "localhost""#,
        Context::Resource,
    )
    .unwrap_or_else(|e| panic!("{e}"))
    .unwrap_or_else(|| panic!("a condition"));
    let resource_only = Item {
        resource: it.resource.clone(),
        ..Item::default()
    };
    assert_eq!(c.eval(&resource_only), Ok(true));
    assert!(matches!(
        parse_route_statement("route()", Context::Resource),
        Ok(None)
    ));
    let err = |t: &str| {
        parse_route_statement(t, Context::Resource)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    assert_eq!(
        err("drop() where true"),
        "column 1: function drop is not supported"
    );
    assert_eq!(err("route(1)"), "column 7: route: takes no arguments");
}
