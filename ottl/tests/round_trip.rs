//! Property tests: printing a parsed condition or statement gives text that parses to the same
//! tree (and prints the same again); arbitrary input never panics the parser.

use proptest::prelude::*;
use tailgate_ottl::{parse_condition, parse_statement, Context};

/// A string literal as OTTL text (Go escapes).
fn quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("name".to_string()),
        Just("span.kind".to_string()),
        Just("status.code".to_string()),
        Just("end_time_unix_nano".to_string()),
        Just("start_time".to_string()),
        Just("trace_id".to_string()),
        Just("span_id.string".to_string()),
        Just("instrumentation_scope.version".to_string()),
        "[a-z.é\"\\\\]{0,6}".prop_map(|k| format!("attributes[{}]", quoted(&k))),
        "[a-z.]{0,6}".prop_map(|k| format!("resource.attributes[{}]", quoted(&k))),
        "[a-z]{0,4}".prop_map(|k| format!("scope.attributes[{}]", quoted(&k))),
    ]
}

/// Literals the grammar allows only as whole values (not inside arithmetic).
fn plain_literal() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>().prop_map(|s| quoted(&s)),
        any::<bool>().prop_map(|b| b.to_string()),
        Just("nil".to_string()),
        Just("SPAN_KIND_SERVER".to_string()),
        Just("STATUS_CODE_ERROR".to_string()),
        proptest::collection::vec(any::<u8>(), 1..5).prop_map(|b| format!(
            "0x{}",
            b.iter().map(|x| format!("{x:02X}")).collect::<String>()
        )),
    ]
}

/// Arithmetic: numbers, paths and converters joined by + - * /.
fn math() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        path(),
        any::<i64>().prop_map(|i| i.to_string()),
        (-1e12f64..1e12).prop_map(|f| format!("{f:.3}")),
    ];
    leaf.prop_recursive(3, 16, 3, |inner| {
        prop_oneof![
            (
                inner.clone(),
                prop_oneof![Just("+"), Just("-"), Just("*"), Just("/")],
                inner.clone()
            )
                .prop_map(|(a, op, b)| format!("({a} {op} {b})")),
            (
                inner.clone(),
                prop_oneof![Just("+"), Just("-")],
                inner.clone()
            )
                .prop_map(|(a, op, b)| format!("{a} {op} {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} * {b} - {a}")),
            (plain_literal(), inner.clone())
                .prop_map(|(l, v)| format!("Concat([{l}, {v}], \"-\")")),
            proptest::collection::vec(inner.clone(), 0..3)
                .prop_map(|v| format!("Concat([{}], \"\")", v.join(", "))),
            inner.clone().prop_map(|v| format!("SHA256({v})")),
        ]
    })
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![3 => math(), 1 => plain_literal()]
}

fn condition() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        (
            value(),
            prop_oneof![
                Just("=="),
                Just("!="),
                Just("<"),
                Just("<="),
                Just(">"),
                Just(">=")
            ],
            value()
        )
            .prop_map(|(a, op, b)| format!("{a} {op} {b}")),
        Just("true".to_string()),
        Just("false".to_string()),
        (
            value(),
            prop_oneof![Just("^a"), Just("b.*"), Just("(?i)x\\\\d")]
        )
            .prop_map(|(v, p)| format!("IsMatch({v}, \"{p}\")")),
    ];
    leaf.prop_recursive(4, 24, 3, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} and {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} or {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} or {b}) and {a}")),
            inner.clone().prop_map(|a| format!("not ({a})")),
            inner.clone().prop_map(|a| format!("({a})")),
        ]
    })
}

fn statement() -> impl Strategy<Value = String> {
    let key = "[a-z.]{1,5}".prop_map(|k| quoted(&k));
    let editor = prop_oneof![
        (path(), value()).prop_map(|(p, v)| format!("set({p}, {v})")),
        key.clone()
            .prop_map(|k| format!("delete_key(attributes, {k})")),
        proptest::collection::vec(key.clone(), 0..3)
            .prop_map(|k| format!("keep_keys(resource.attributes, [{}])", k.join(", "))),
        Just(r#"delete_matching_keys(attributes, "(?i).*pass.*")"#.to_string()),
        Just(r#"keep_matching_keys(scope.attributes, "^http")"#.to_string()),
        value().prop_map(|v| format!(r#"replace_pattern(name, "a(b)", {v})"#)),
        Just(r#"replace_pattern(attributes["x"], "^k_(\\w+)", "$1", SHA256, "k.%s")"#.to_string()),
        Just(r#"replace_all_patterns(attributes, "key", "^k_", "k.")"#.to_string()),
        Just(r#"replace_match(attributes["t"], "/u/*/{a,b}", "/u/{id}")"#.to_string()),
        (0i64..5000).prop_map(|n| format!("truncate_all(attributes, {n})")),
        (2i64..50).prop_map(|n| format!(r#"limit(attributes, {n}, ["a", "b"])"#)),
    ];
    (editor, proptest::option::of(condition())).prop_map(|(e, c)| match c {
        Some(c) => format!("{e} where {c}"),
        None => e,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn conditions_round_trip(text in condition()) {
        let first = parse_condition(&text, Context::Span)
            .map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        let printed = first.to_string();
        let second = parse_condition(&printed, Context::Span)
            .map_err(|e| TestCaseError::fail(format!("{printed} (from {text}): {e}")))?;
        prop_assert_eq!(&first, &second, "{} -> {}", text, printed);
        prop_assert_eq!(second.to_string(), printed);
    }

    #[test]
    fn statements_round_trip(text in statement()) {
        let first = parse_statement(&text, Context::Span)
            .map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        let printed = first.to_string();
        let second = parse_statement(&printed, Context::Span)
            .map_err(|e| TestCaseError::fail(format!("{printed} (from {text}): {e}")))?;
        prop_assert_eq!(&first, &second, "{} -> {}", text, printed);
        prop_assert_eq!(second.to_string(), printed);
    }

    #[test]
    fn spanevent_paths_round_trip(text in condition()) {
        // The same text in the span event context reads the event's name/attributes; printing
        // must keep them the event's (and `span.`-prefixed ones the span's).
        if let Ok(first) = parse_condition(&text, Context::SpanEvent) {
            let printed = first.to_string();
            let second = parse_condition(&printed, Context::SpanEvent)
                .map_err(|e| TestCaseError::fail(format!("{printed}: {e}")))?;
            prop_assert_eq!(first, second);
        }
    }

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        let _ = parse_condition(&text, Context::Span);
        let _ = parse_statement(&text, Context::SpanEvent);
    }

    #[test]
    fn token_soup_never_panics(words in proptest::collection::vec(prop_oneof![
        Just("("), Just(")"), Just("["), Just("]"), Just(","), Just("."), Just("=="), Just("-"),
        Just("not"), Just("and"), Just("where"), Just("name"), Just("attributes"), Just("\"k\""),
        Just("1"), Just("-1.5"), Just("0xAB"), Just("IsMatch"), Just("set"), Just("SPAN_KIND_SERVER"),
        Just("{"), Just("}"), Just(":"), Just("="), Just("nil"),
    ], 0..30)) {
        let text = words.join(" ");
        let _ = parse_condition(&text, Context::Span);
        let _ = parse_statement(&text, Context::Span);
        let _ = parse_condition(&words.concat(), Context::Resource);
    }
}

#[test]
fn printing_is_canonical() {
    let c = parse_condition(
        r#"kind == SPAN_KIND_SERVER and (attributes["a\"b"] == 1.0 or not IsMatch(name, "x")) and end_time_unix_nano - start_time_unix_nano * 2 > 0xAB"#,
        Context::Span,
    )
    .map(|c| c.to_string());
    assert_eq!(
        c.ok().as_deref(),
        Some(
            r#"span.kind == 2 and (span.attributes["a\"b"] == 1.0 or not IsMatch(span.name, "x")) and (span.end_time_unix_nano - (span.start_time_unix_nano * 2)) > 0xab"#
        )
    );
    let s = parse_statement(
        r#"replace_pattern(attributes["k"], "a(b)", "$1", SHA256, "h:%s") where true"#,
        Context::SpanEvent,
    )
    .map(|s| s.to_string());
    assert_eq!(
        s.ok().as_deref(),
        Some(
            r#"replace_pattern(spanevent.attributes["k"], "a(b)", "$1", SHA256, "h:%s") where true"#
        )
    );
}
