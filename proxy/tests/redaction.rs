//! The `redaction` processor through the real binary: contrib v0.115.0's documented behaviour
//! (README and processor tests), config → input → what the backend receives.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::process::Command;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::Event;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use support::{export, Sink, Tailgate};
use tailgate_proto::compression::Compression;

/// One pipeline otlp → `processors` → the sink, with `processors_yaml` under `processors:`.
fn config(sink: SocketAddr, processors_yaml: &str, processors: &str) -> String {
    format!(
        "
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
processors:
{processors_yaml}
exporters:
  otlp/sink:
    endpoint: {sink}
    tls: {{insecure: true}}
service:
  telemetry: {{metrics: {{address: 127.0.0.1:0}}}}
  pipelines:
    traces:
      receivers: [otlp]
      processors: [{processors}]
      exporters: [otlp/sink]
"
    )
}

fn s(v: &str) -> any_value::Value {
    any_value::Value::StringValue(v.into())
}

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
    }
}

/// One span with `attrs` under a resource with `resource`; the span has one event with `attrs`.
fn request(resource: Vec<KeyValue>, attrs: Vec<KeyValue>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: resource,
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: vec![7; 16],
                    span_id: vec![1; 8],
                    name: "checkout".into(),
                    attributes: attrs.clone(),
                    events: vec![Event {
                        name: "e".into(),
                        attributes: attrs,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// Sends `req` through a tailgate running `processors_yaml` and returns what the sink received.
async fn through(
    processors_yaml: &str,
    processors: &str,
    req: &ExportTraceServiceRequest,
) -> ExportTraceServiceRequest {
    let sink = Sink::start().await;
    let tg = Tailgate::start(
        &config(sink.addr, processors_yaml, processors),
        &["--cores", "1"],
    );
    let (code, msg) = export(tg.grpc(), req, Compression::Identity).await;
    assert_eq!(code, 0, "{msg}");
    sink.wait_spans(1).await;
    let mut got = sink.requests();
    assert_eq!(got.len(), 1);
    got.remove(0)
}

fn span_attrs(r: &ExportTraceServiceRequest) -> &[KeyValue] {
    &r.resource_spans[0].scope_spans[0].spans[0].attributes
}

fn resource_attrs(r: &ExportTraceServiceRequest) -> &[KeyValue] {
    &r.resource_spans[0].resource.as_ref().unwrap().attributes
}

fn event_attrs(r: &ExportTraceServiceRequest) -> &[KeyValue] {
    &r.resource_spans[0].scope_spans[0].spans[0].events[0].attributes
}

fn int(v: i64) -> any_value::Value {
    any_value::Value::IntValue(v)
}

/// contrib's TestRedactUnknownAttributes: keys off the allow list go, ignored keys stay, the
/// allowed ones pass untouched (summary silent: no `redaction.*` attributes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removes_keys_off_the_allow_list() {
    let yaml =
        "  redaction:\n    allowed_keys: [group, id, name]\n    ignored_keys: [safe_attribute]\n";
    let attrs = vec![
        kv("group", s("temporary")),
        kv("id", int(5)),
        kv("name", s("placeholder")),
        kv("safe_attribute", s("4111111111111112")),
        kv("credit_card", s("4111111111111111")),
    ];
    let got = through(yaml, "redaction", &request(vec![], attrs.clone())).await;
    assert_eq!(span_attrs(&got), &attrs[..4]);
    // v0.115.0 does not process span events: the event keeps everything.
    assert_eq!(event_attrs(&got), &attrs[..]);
}

/// The README's example config with `summary: debug` (contrib's TestRedactSummaryDebug): one key
/// removed, one value masked, one key ignored, and the five summary attributes, on the span and
/// on the resource.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_example_with_debug_summary_on_span_and_resource() {
    let yaml = r#"  redaction:
    allow_all_keys: false
    allowed_keys: [description, group, id, name, "group.id", "member (id)"]
    ignored_keys: [safe_attribute]
    blocked_values:
      - "4[0-9]{12}(?:[0-9]{3})?" ## Visa credit card number
      - "(5[1-5][0-9]{14})"       ## MasterCard number
    summary: debug
"#;
    let attrs = vec![
        kv("id", int(5)),
        kv("group.id", s("some.valid.id")),
        kv("member (id)", s("some other valid id")),
        kv("name", s("placeholder 4111111111111111")),
        kv("safe_attribute", s("harmless 4111111111111112")),
        kv("credit_card", s("4111111111111111")),
    ];
    let resource = vec![
        kv("description", s("card 5105105105105100")),
        kv("host.name", s("db-1")),
    ];
    let got = through(yaml, "redaction", &request(resource, attrs)).await;
    assert_eq!(
        span_attrs(&got),
        &[
            kv("id", int(5)),
            kv("group.id", s("some.valid.id")),
            kv("member (id)", s("some other valid id")),
            kv("name", s("placeholder ****")),
            kv("safe_attribute", s("harmless 4111111111111112")),
            kv("redaction.redacted.keys", s("credit_card")),
            kv("redaction.redacted.count", int(1)),
            kv("redaction.masked.keys", s("name")),
            kv("redaction.masked.count", int(1)),
            kv("redaction.ignored.count", int(1)),
        ][..]
    );
    assert_eq!(
        resource_attrs(&got),
        &[
            kv("description", s("card ****")),
            kv("redaction.redacted.keys", s("host.name")),
            kv("redaction.redacted.count", int(1)),
            kv("redaction.masked.keys", s("description")),
            kv("redaction.masked.count", int(1)),
        ][..]
    );
}

/// `summary: info` writes the counts only; several patterns mask in turn (contrib's
/// TestMultipleBlockValues); `allow_all_keys` keeps every key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_summary_and_several_patterns() {
    let yaml = r#"  redaction:
    allow_all_keys: true
    blocked_values: ["4[0-9]{12}(?:[0-9]{3})?", "(5[1-5][0-9]{3})"]
    summary: info
"#;
    let attrs = vec![
        kv("name", s("placeholder 4111111111111111 52000")),
        kv("other", s("nothing here")),
        kv("count", int(4111111111111111)),
    ];
    let got = through(yaml, "redaction", &request(vec![], attrs)).await;
    assert_eq!(
        span_attrs(&got),
        &[
            kv("name", s("placeholder **** ****")),
            kv("other", s("nothing here")),
            kv("count", int(4111111111111111)),
            kv("redaction.masked.count", int(1)),
        ][..]
    );
}

/// An empty allow list with `allow_all_keys: false` removes every attribute (fails closed),
/// resource attributes included; `silent` writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_allow_list_removes_everything() {
    let yaml = "  redaction:\n    summary: silent\n";
    let got = through(
        yaml,
        "redaction",
        &request(
            vec![kv("service.name", s("cart"))],
            vec![kv("a", s("1")), kv("b", int(2))],
        ),
    )
    .await;
    assert!(span_attrs(&got).is_empty());
    assert!(resource_attrs(&got).is_empty());
}

/// Two redactions in a row: the second keeps the first's summary (its keys are always allowed),
/// merges the key lists sorted and adds the counts (contrib's addMetaAttrs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chained_redactions_merge_their_summaries() {
    let yaml = r#"  redaction/first:
    allowed_keys: [keep, zeta_key, alpha_key]
    summary: debug
  redaction/second:
    allowed_keys: [keep]
    summary: debug
"#;
    let attrs = vec![
        kv("keep", s("x")),
        kv("zeta_key", s("1")),
        kv("beta", s("2")),
        kv("alpha_key", s("3")),
    ];
    let got = through(
        yaml,
        "redaction/first, redaction/second",
        &request(vec![], attrs),
    )
    .await;
    assert_eq!(
        span_attrs(&got),
        &[
            kv("keep", s("x")),
            kv("redaction.redacted.keys", s("alpha_key,beta,zeta_key")),
            kv("redaction.redacted.count", int(3)),
        ][..]
    );
}

fn validate(config: &str) -> (bool, String) {
    let dir = support::scratch_dir();
    let path = dir.join("c.yaml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tailgate"))
        .args(["validate", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// Keys contrib added after v0.115.0 fail validation by name, as do a bad pattern and summary.
#[test]
fn newer_keys_and_bad_values_fail_validation_by_name() {
    let sink: SocketAddr = "127.0.0.1:4317".parse().unwrap();
    for (key, yaml) in [
        ("allowed_values", "allowed_values: [\"x\"]"),
        (
            "blocked_key_patterns",
            "blocked_key_patterns: [\".*token.*\"]",
        ),
        ("hash_function", "hash_function: sha3"),
        ("redact_all_types", "redact_all_types: true"),
        ("url_sanitization", "url_sanitization: {enabled: true}"),
    ] {
        let (ok, text) = validate(&config(
            sink,
            &format!("  redaction:\n    {yaml}\n"),
            "redaction",
        ));
        assert!(!ok, "{key} passed: {text}");
        assert!(
            text.contains(&format!(
                "processors.redaction.{key}: not supported by tailgate yet"
            )),
            "{key}: {text}"
        );
    }
    let (ok, text) = validate(&config(
        sink,
        "  redaction:\n    blocked_values: [\"(\"]\n",
        "redaction",
    ));
    assert!(!ok);
    assert!(
        text.contains("processors.redaction.blocked_values[0]: invalid regular expression"),
        "{text}"
    );
    let (ok, text) = validate(&config(
        sink,
        "  redaction:\n    summary: loud\n",
        "redaction",
    ));
    assert!(!ok);
    assert!(text.contains("processors.redaction.summary"), "{text}");
    let (ok, text) = validate(&config(
        sink,
        "  redaction:\n    allow_all_keys: true\n",
        "redaction",
    ));
    assert!(ok, "{text}");
    // Traces only: a logs pipeline with a redaction is refused naming the processor.
    let logs = config(
        sink,
        "  redaction:\n    allow_all_keys: true\n",
        "redaction",
    )
    .replace("    traces:\n", "    logs:\n");
    let (ok, text) = validate(&logs);
    assert!(!ok);
    assert!(
        text.contains(
            "service.pipelines.logs.processors[0]: \"redaction\": redaction processes traces only"
        ),
        "{text}"
    );
}
