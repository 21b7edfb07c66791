//! Validation tests: configs are built from text in the test, never from the process environment.
#![allow(clippy::unwrap_used)]

use super::*;

fn no_env(_: &str) -> Option<String> {
    None
}

fn load_one(name: &str, text: &str) -> Result<Config, ConfigErrors> {
    load(
        &[SourceText {
            name: name.into(),
            text: text.into(),
        }],
        &[],
        &no_env,
    )
}

fn messages(e: &ConfigErrors) -> Vec<String> {
    e.problems.iter().map(ToString::to_string).collect()
}

const MINIMAL: &str = "
receivers:
  otlp:
    protocols:
      grpc:
processors:
  batch:
exporters:
  otlp:
    endpoint: sink:4317
    tls:
      insecure: true
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [otlp]
";

#[test]
fn minimal_config_gets_collector_defaults() {
    let c = load_one("m.yaml", MINIMAL).unwrap();
    let ReceiverConfig::Otlp(r) = &c.receivers[&ComponentId::parse("otlp").unwrap()];
    let grpc = r.protocols.grpc.as_ref().unwrap();
    assert_eq!(grpc.endpoint, "localhost:4317");
    assert_eq!(grpc.max_recv_msg_size_mib, 4);
    assert!(r.protocols.http.is_none());
    let ProcessorConfig::Batch(b) = &c.processors[&ComponentId::parse("batch").unwrap()] else {
        panic!("batch")
    };
    assert_eq!(b.timeout.0, std::time::Duration::from_millis(200));
    assert_eq!(b.send_batch_size, 8192);
    assert_eq!(b.send_batch_max_size, 0);
    let ExporterConfig::Otlp(e) = &c.exporters[&ComponentId::parse("otlp").unwrap()] else {
        panic!("otlp")
    };
    assert_eq!(e.compression(), common::Compression::Gzip);
    let e = e.keys();
    assert_eq!(e.timeout.0, std::time::Duration::from_secs(5));
    assert!(e.retry_on_failure.enabled);
    assert_eq!(e.sending_queue.queue_size, 1000);
    assert_eq!(c.metrics_address.as_deref(), Some("localhost:8888"));
    assert_eq!(c.pipelines.len(), 1);
}

#[test]
fn reference_configs_validate() {
    let agent = load_one(
        "agent-config.yaml",
        include_str!("../../tests/fixtures/agent-config.yaml"),
    );
    assert!(agent.is_ok(), "agent-config.yaml: {agent:?}");
    let gw = load_one(
        "gateway-config.yaml",
        include_str!("../../tests/fixtures/gateway-config.yaml"),
    )
    .expect("the seed's gateway config validates");
    // The seed's top-level cache keys are accepted with a warning naming the decision_cache form.
    assert!(
        gw.warnings
            .iter()
            .any(|w| w.starts_with("processors.tail_sampling.sampled_cache_size")),
        "{:?}",
        gw.warnings
    );
    let sm = load_one(
        "gateway-spanmetrics-config.yaml",
        include_str!("../../tests/fixtures/gateway-spanmetrics-config.yaml"),
    );
    assert!(sm.is_ok(), "gateway-spanmetrics-config.yaml: {sm:?}");
}

/// The spanmetrics half of the reference gateway config, with tail_sampling left out.
#[test]
fn spanmetrics_gateway_without_tail_sampling_is_valid() {
    let mut doc: serde_yaml::Value = serde_yaml::from_str(include_str!(
        "../../tests/fixtures/gateway-spanmetrics-config.yaml"
    ))
    .unwrap();
    doc["processors"]
        .as_mapping_mut()
        .unwrap()
        .remove("tail_sampling");
    doc["service"]["pipelines"]["traces/sampling"]["processors"]
        .as_sequence_mut()
        .unwrap()
        .retain(|p| p.as_str() != Some("tail_sampling"));
    let text = serde_yaml::to_string(&doc).unwrap();
    let c = load_one("gw.yaml", &text).unwrap();
    let ConnectorConfig::SpanMetrics(sm) =
        &c.connectors[&ComponentId::parse("spanmetrics").unwrap()];
    let s = &sm.1;
    assert_eq!(
        s.bounds.as_deref(),
        Some(&[100.0, 250.0, 500.0, 1000.0, 5000.0][..])
    );
    assert_eq!(s.dimensions.len(), 2);
    assert_eq!(s.namespace, "traces.span.metrics");
    let ExporterConfig::Prometheus(p) = &c.exporters[&ComponentId::parse("prometheus").unwrap()]
    else {
        panic!("prometheus")
    };
    assert_eq!(p.endpoint, "0.0.0.0:8889");
    assert!(p.add_metric_suffixes);
    assert_eq!(p.metric_expiration.0, std::time::Duration::from_secs(300));
}

#[test]
fn components_must_sit_in_pipelines_of_their_signal() {
    let text = "
receivers: {otlp: {protocols: {grpc: }}}
processors: {batch: }
connectors: {spanmetrics: , spanmetrics/b: }
exporters: {prometheus: {endpoint: 'localhost:0'}, nop: }
service:
  pipelines:
    traces:
      receivers: [otlp, spanmetrics/b]
      exporters: [spanmetrics, prometheus]
    metrics:
      receivers: [spanmetrics, otlp]
      processors: [batch]
      exporters: [prometheus, nop, spanmetrics/b]
";
    let m = messages(&load_one("c.yaml", text).unwrap_err());
    for expected in [
        "c.yaml: service.pipelines.metrics.receivers: receiver \"otlp\" only carries traces in tailgate; metrics pipelines are not implemented",
        "c.yaml: service.pipelines.metrics.exporters: exporter \"nop\" only carries traces in tailgate; metrics pipelines are not implemented",
        "c.yaml: service.pipelines.traces.exporters[1]: exporter \"prometheus\" exports metrics; use it in a metrics pipeline, e.g. metrics: {receivers: [spanmetrics], exporters: [prometheus]}",
        "c.yaml: service.pipelines.traces.receivers[1]: connector \"spanmetrics/b\" produces metrics: it is a receiver of metrics pipelines only",
        "c.yaml: service.pipelines.metrics.exporters[2]: connector \"spanmetrics/b\" consumes traces: it is an exporter of traces pipelines only",
        "c.yaml: service.pipelines.metrics.processors: processors in metrics pipelines are not implemented in tailgate; connect the receiver straight to the exporters",
    ] {
        assert!(m.iter().any(|x| x == expected), "missing {expected:?} in {m:#?}");
    }
    assert_eq!(m.len(), 6, "{m:#?}");
    // A connector in processors is still named as such.
    let text = "
receivers: {otlp: {protocols: {grpc: }}}
connectors: {spanmetrics: }
exporters: {prometheus: {endpoint: 'localhost:0', tls: {}}, nop: }
service:
  pipelines:
    traces: {receivers: [otlp], processors: [spanmetrics], exporters: [nop]}
    metrics: {receivers: [spanmetrics], exporters: [prometheus]}
";
    let m = messages(&load_one("p.yaml", text).unwrap_err());
    assert!(
        m.iter()
            .any(|x| x.contains("processors[0]: \"spanmetrics\" is a connector")),
        "{m:#?}"
    );
    assert!(m.iter().any(|x| x == "p.yaml: exporters.prometheus.tls: TLS on the prometheus endpoint is not implemented in tailgate"), "{m:#?}");
}

#[test]
fn every_problem_is_reported_with_path_and_allowed_values() {
    let text = "
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 0.0.0.0:4317
        max_recv_msg_size: 4
  kafka:
processors:
  batch:
    send_batch_size: 100
    send_batch_max_size: 10
exporters:
  otlp:
    endpoint: nohost
    compression: lz9
    headers: {'bad header': x}
    tls: {insecure: true}
bogus: 1
service:
  pipelines:
    traces:
      receivers: [otlp, jaeger]
      processors: [batch, batch]
      exporters: []
    spans:
      receivers: [otlp]
      exporters: [otlp]
";
    let m = messages(&load_one("bad.yaml", text).unwrap_err());
    let expect = [
        "bad.yaml: bogus: unknown top-level key; allowed: receivers, processors, exporters, connectors, extensions, service",
        "bad.yaml: receivers.otlp.protocols.grpc.max_recv_msg_size: unknown field `max_recv_msg_size`, expected one of",
        "bad.yaml: receivers.kafka: unknown receiver type \"kafka\"; allowed: otlp",
        "bad.yaml: processors.batch.send_batch_max_size: must be greater or equal to send_batch_size (100) or 0",
        "bad.yaml: exporters.otlp.endpoint: invalid endpoint \"nohost\"",
        "bad.yaml: exporters.otlp.compression: \"lz9\" is not supported; allowed: gzip, zstd, snappy, none",
        "bad.yaml: exporters.otlp.headers.bad header: is not a valid HTTP header name and value",
        "bad.yaml: service.pipelines.traces.receivers[1]: references \"jaeger\" which is not configured; configured receivers: otlp, kafka",
        "bad.yaml: service.pipelines.traces.processors[1]: references \"batch\" more than once",
        "bad.yaml: service.pipelines.traces.exporters: must have at least one exporter",
        "bad.yaml: service.pipelines.spans: unknown pipeline signal \"spans\"",
    ];
    for e in expect {
        assert!(
            m.iter().any(|x| x.starts_with(e)),
            "missing {e:?} in {m:#?}"
        );
    }
    assert_eq!(m.len(), expect.len(), "{m:#?}");
}

#[test]
fn merged_files_attribute_problems_to_their_file() {
    let base = SourceText {
        name: "base.yaml".into(),
        text: MINIMAL.into(),
    };
    let over = SourceText {
        name: "over.yaml".into(),
        text: "processors:\n  batch:\n    timeout: 5 seconds\n".into(),
    };
    let e = load(&[base, over], &[], &no_env).unwrap_err();
    let m = messages(&e);
    assert_eq!(m.len(), 1, "{m:#?}");
    assert!(
        m[0].starts_with("over.yaml: processors.batch.timeout: invalid duration \"5 seconds\""),
        "{}",
        m[0]
    );
}

#[test]
fn set_and_env_feed_validation() {
    let base = SourceText {
        name: "base.yaml".into(),
        text: MINIMAL.replace("sink:4317", "${env:SINK}").replace(
            "      grpc:\n",
            "      grpc:\n        endpoint: ${HOST}:0\n",
        ),
    };
    let env = |k: &str| match k {
        "SINK" => Some("127.0.0.1:9999".to_owned()),
        "HOST" => Some("127.0.0.1".to_owned()),
        _ => None,
    };
    let sets = vec!["processors::batch::send_batch_size=10".to_owned()];
    let c = load(&[base], &sets, &env).unwrap();
    let ExporterConfig::Otlp(e) = &c.exporters[&ComponentId::parse("otlp").unwrap()] else {
        panic!()
    };
    assert_eq!(e.keys().endpoint, "127.0.0.1:9999");
    // What the exporter dials is the substituted endpoint, parsed once by validation.
    assert_eq!(
        (e.target().host.as_str(), e.target().port),
        ("127.0.0.1", 9999)
    );
    let ReceiverConfig::Otlp(r) = &c.receivers[&ComponentId::parse("otlp").unwrap()];
    assert_eq!(r.protocols.grpc.as_ref().unwrap().endpoint, "127.0.0.1:0");
    let ProcessorConfig::Batch(b) = &c.processors[&ComponentId::parse("batch").unwrap()] else {
        panic!()
    };
    assert_eq!(b.send_batch_size, 10);
}

#[test]
fn one_receiver_feeds_named_pipelines_and_readers_form_is_accepted() {
    let text = "
receivers:
  otlp:
    protocols: {grpc: {endpoint: 127.0.0.1:0}}
exporters:
  debug: {verbosity: detailed}
  nop:
extensions:
  health_check:
service:
  extensions: [health_check]
  telemetry:
    metrics:
      readers:
        - pull: {exporter: {prometheus: {host: 127.0.0.1, port: 0}}}
  pipelines:
    traces/a: {receivers: [otlp], exporters: [debug]}
    traces/b: {receivers: [otlp], exporters: [nop]}
";
    let c = load_one("p.yaml", text).unwrap();
    assert_eq!(c.pipelines.len(), 2);
    assert_eq!(c.pipelines[1].id.to_string(), "traces/b");
    assert_eq!(c.metrics_address.as_deref(), Some("127.0.0.1:0"));
    assert_eq!(c.service_extensions.len(), 1);
}

#[test]
fn connectors_are_checked_for_placement_and_signals() {
    let text = "
receivers: {otlp: {protocols: {grpc: }}}
processors: {memory_limiter: {check_interval: 0s, limit_mib: 10, spike_limit_mib: 20}}
exporters: {nop: }
connectors: {spanmetrics: }
service:
  pipelines:
    traces: {receivers: [otlp], processors: [spanmetrics, memory_limiter], exporters: [nop]}
    metrics: {receivers: [otlp], exporters: [nop]}
";
    let m = messages(&load_one("c.yaml", text).unwrap_err());
    let expect = [
        "c.yaml: processors.memory_limiter.check_interval: must be greater than zero",
        "c.yaml: processors.memory_limiter.spike_limit_mib: must be smaller than limit_mib (10)",
        "c.yaml: service.pipelines.traces.processors[0]: \"spanmetrics\" is a connector: a connector goes in the exporters of one pipeline and the receivers of another, not in processors",
        "c.yaml: service.pipelines.metrics.receivers: receiver \"otlp\" only carries traces in tailgate",
        "c.yaml: service.pipelines.metrics.exporters: exporter \"nop\" only carries traces in tailgate",
    ];
    for e in expect {
        assert!(
            m.iter().any(|x| x.starts_with(e)),
            "missing {e:?} in {m:#?}"
        );
    }
    assert_eq!(m.len(), expect.len(), "{m:#?}");
}

#[test]
fn receiver_limits_are_typed_with_defaults_and_key_paths() {
    use crate::receiver::limits::{GrpcLimits, HttpLimits};
    use std::time::Duration;
    let c = load_one("m.yaml", MINIMAL).unwrap();
    let ReceiverConfig::Otlp(r) = &c.receivers[&ComponentId::parse("otlp").unwrap()];
    let g = GrpcLimits::from_config(r.protocols.grpc.as_ref().unwrap());
    assert_eq!(g.max_concurrent_streams, 100);
    assert_eq!(g.max_connection_idle, None);
    assert_eq!(g.keepalive_time, Duration::from_secs(7200));
    assert_eq!(g.keepalive_timeout, Duration::from_secs(20));
    assert_eq!(g.conn.max_connections, 4096);
    assert_eq!(g.conn.handshake_timeout, Duration::from_secs(10));
    assert_eq!(g.conn.body_timeout, Duration::from_secs(30));
    let h = HttpLimits::from_config(&Default::default());
    assert_eq!(h.read_header, Some(Duration::from_secs(60)));
    assert_eq!(h.write, Some(Duration::from_secs(30)));

    let text = MINIMAL.replace(
        "      grpc:\n",
        "      grpc:
        max_concurrent_streams: 7
        keepalive:
          server_parameters: {max_connection_idle: 1s, time: 30s, timeout: 0s}
          enforcement_policy: {min_time: 10s, permit_without_stream: true}
        tailgate: {max_connections_per_core: 9, handshake_timeout: 2s}
      http:
        read_timeout: 5s
        idle_timeout: 0s
        read_header_timeout: 0s
",
    );
    let c = load_one("k.yaml", &text).unwrap();
    let ReceiverConfig::Otlp(r) = &c.receivers[&ComponentId::parse("otlp").unwrap()];
    let g = GrpcLimits::from_config(r.protocols.grpc.as_ref().unwrap());
    assert_eq!(g.max_concurrent_streams, 7);
    assert_eq!(g.max_connection_idle, Some(Duration::from_secs(1)));
    assert_eq!(g.keepalive_time, Duration::from_secs(30));
    assert_eq!(g.keepalive_timeout, Duration::from_secs(20));
    assert_eq!(g.conn.max_connections, 9);
    // Go's http.Server: header and idle timeouts fall back to read_timeout.
    let h = HttpLimits::from_config(r.protocols.http.as_ref().unwrap());
    assert_eq!(h.read_header, Some(Duration::from_secs(5)));
    assert_eq!(h.idle, Some(Duration::from_secs(5)));

    let bad = MINIMAL.replace(
        "      grpc:\n",
        "      grpc:
        keepalive:
          server_parameters: {max_conection_idle: 1s}
        tailgate: {max_connections_per_core: 0, colour: red}
",
    );
    let m = messages(&load_one("b.yaml", &bad).unwrap_err());
    assert!(
        m.iter().any(|x| x.starts_with("b.yaml: receivers.otlp.protocols.grpc.keepalive.server_parameters.max_conection_idle: unknown field")),
        "{m:#?}"
    );
    let bad = MINIMAL.replace(
        "      grpc:\n",
        "      grpc:\n        tailgate: {max_connections_per_core: 0, handshake_timeout: 0s, body_timeout: 0s, max_request_bytes_in_flight_per_core: 4194303}\n",
    );
    let m = messages(&load_one("b.yaml", &bad).unwrap_err());
    for e in [
        "b.yaml: receivers.otlp.protocols.grpc.tailgate.max_connections_per_core: must be greater than zero",
        "b.yaml: receivers.otlp.protocols.grpc.tailgate.handshake_timeout: must be greater than zero",
        "b.yaml: receivers.otlp.protocols.grpc.tailgate.body_timeout: must be greater than zero",
        "b.yaml: receivers.otlp.protocols.grpc.tailgate.max_request_bytes_in_flight_per_core: 4194303 is below the largest request this protocol accepts (4194304 bytes)",
    ] {
        assert!(m.iter().any(|x| x.starts_with(e)), "missing {e:?} in {m:#?}");
    }
}

#[test]
fn retry_intervals_of_zero_and_a_blocking_queue_are_refused_with_key_paths() {
    let text = MINIMAL.replace(
        "    tls:\n      insecure: true\n",
        "    tls:\n      insecure: true\n    retry_on_failure: {initial_interval: 0s, max_interval: 0s}\n    sending_queue: {blocking: true}\n",
    );
    let m = messages(&load_one("q.yaml", &text).unwrap_err());
    let expect = [
        "q.yaml: exporters.otlp.retry_on_failure.initial_interval: must be greater than zero",
        "q.yaml: exporters.otlp.retry_on_failure.max_interval: must be greater than zero",
        "q.yaml: exporters.otlp.sending_queue.blocking: true is not supported in tailgate yet",
    ];
    for e in expect {
        assert!(
            m.iter().any(|x| x.starts_with(e)),
            "missing {e:?} in {m:#?}"
        );
    }
    assert_eq!(m.len(), expect.len(), "{m:#?}");
    // With retry disabled the intervals are unused, as in the collector; `blocking: false` is fine.
    let text = MINIMAL.replace(
        "    tls:\n      insecure: true\n",
        "    tls:\n      insecure: true\n    retry_on_failure: {enabled: false, initial_interval: 0s, max_interval: 0s}\n    sending_queue: {blocking: false}\n",
    );
    assert!(load_one("ok.yaml", &text).is_ok());
}

/// MINIMAL with `keys` (one YAML line, four-space indent) added to the otlp exporter.
fn with_exporter_keys(keys: &str) -> String {
    MINIMAL.replace(
        "    tls:\n      insecure: true\n",
        &format!("    tls:\n      insecure: true\n{keys}\n"),
    )
}

fn otlp_exporter(c: &Config) -> &crate::exporter::otlp::config::OtlpExporterConfig {
    match &c.exporters[&ComponentId::parse("otlp").unwrap()] {
        ExporterConfig::Otlp(e) => e.keys(),
        _ => panic!("not an otlp exporter"),
    }
}

#[test]
fn sending_queue_sizers_parse_as_the_collector_spells_them() {
    use crate::config::common::Sizer;
    let c = load_one("m.yaml", MINIMAL).unwrap();
    let q = &otlp_exporter(&c).sending_queue;
    assert_eq!(q.sizer(), Sizer::Requests, "the collector's default");
    assert_eq!(q.tailgate.max_bytes_per_core, None);
    for (text, sizer) in [
        ("requests", Sizer::Requests),
        ("items", Sizer::Items),
        ("bytes", Sizer::Bytes),
    ] {
        let keys = format!(
            "    sending_queue: {{sizer: {text}, queue_size: 5000, tailgate: {{max_bytes_per_core: 1048576}}}}"
        );
        let c = load_one("s.yaml", &with_exporter_keys(&keys)).unwrap();
        let shape = otlp_exporter(&c).sending_queue.shape(7);
        assert_eq!(
            (shape.sizer, shape.capacity, shape.max_bytes),
            (sizer, 5000, 1 << 20)
        );
    }
    // Without the tailgate key, the default handed in (from memory_limiter) applies.
    let c = load_one(
        "d.yaml",
        &with_exporter_keys("    sending_queue: {sizer: items}"),
    )
    .unwrap();
    assert_eq!(otlp_exporter(&c).sending_queue.shape(7).max_bytes, 7);
}

#[test]
fn a_bad_sizer_a_zero_byte_cap_and_block_on_overflow_are_refused_with_key_paths() {
    let keys = "    sending_queue: {sizer: spans, block_on_overflow: true, tailgate: {max_bytes_per_core: 0}}";
    let m = messages(&load_one("q.yaml", &with_exporter_keys(keys)).unwrap_err());
    let expect = [
        "q.yaml: exporters.otlp.sending_queue.sizer: invalid sizer \"spans\"; allowed: requests (default), items, bytes",
        "q.yaml: exporters.otlp.sending_queue.block_on_overflow: true is not supported in tailgate yet",
        "q.yaml: exporters.otlp.sending_queue.tailgate.max_bytes_per_core: must be greater than zero",
    ];
    for e in expect {
        assert!(
            m.iter().any(|x| x.starts_with(e)),
            "missing {e:?} in {m:#?}"
        );
    }
    assert_eq!(m.len(), expect.len(), "{m:#?}");
    // The loadbalancing exporter's backends take the same block.
    let lb = "
receivers: {otlp: {protocols: {grpc: }}}
exporters:
  loadbalancing:
    protocol: {otlp: {sending_queue: {sizer: Bytes}}}
    resolver: {static: {hostnames: [a]}}
service: {pipelines: {traces: {receivers: [otlp], exporters: [loadbalancing]}}}
";
    let m = messages(&load_one("lb.yaml", lb).unwrap_err());
    assert!(
        m.iter().any(|x| x.starts_with(
            "lb.yaml: exporters.loadbalancing.protocol.otlp.sending_queue.sizer: invalid sizer \"Bytes\""
        )),
        "{m:#?}"
    );
}

#[test]
fn an_initial_interval_of_zero_alone_is_refused() {
    let keys = "    retry_on_failure: {initial_interval: 0s}";
    let m = messages(&load_one("r.yaml", &with_exporter_keys(keys)).unwrap_err());
    assert_eq!(
        m,
        ["r.yaml: exporters.otlp.retry_on_failure.initial_interval: must be greater than zero"],
        "{m:#?}"
    );
}

#[test]
fn health_check_readiness_path_defaults_and_is_checked() {
    let text = |ext: &str| {
        format!("{MINIMAL}extensions:\n  health_check: {ext}\n")
            .replace("service:\n", "service:\n  extensions: [health_check]\n")
    };
    let c = load_one("h.yaml", &text("")).unwrap();
    let Some(ExtensionConfig::HealthCheck(h)) = c.extensions.values().next() else {
        panic!("no health_check in {:?}", c.extensions.keys());
    };
    assert_eq!(
        (h.path.as_str(), h.tailgate.readiness_path.as_str()),
        ("/", "/ready")
    );

    let m = messages(&load_one("h.yaml", &text("{path: /ready}")).unwrap_err());
    assert!(
        m.iter().any(|x| x.starts_with("h.yaml: extensions.health_check.tailgate.readiness_path: \"/ready\" is also the liveness `path`")),
        "{m:#?}"
    );
    let m =
        messages(&load_one("h.yaml", &text("{tailgate: {readiness_path: ready}}")).unwrap_err());
    assert!(
        m.iter().any(|x| x.starts_with(
            "h.yaml: extensions.health_check.tailgate.readiness_path: must start with '/'"
        )),
        "{m:#?}"
    );
}

#[test]
fn shutdown_budgets_default_and_parse_under_service_tailgate() {
    use crate::config::service::{DEFAULT_CONNECTION_GRACE, DEFAULT_DRAIN_TIMEOUT};
    let c = load_one("m.yaml", MINIMAL).unwrap();
    assert_eq!(c.shutdown.connection_grace.0, DEFAULT_CONNECTION_GRACE);
    assert_eq!(c.shutdown.drain_timeout.0, DEFAULT_DRAIN_TIMEOUT);
    let text = MINIMAL.replace(
        "service:\n",
        "service:\n  tailgate: {connection_grace: 2s, drain_timeout: 1m}\n",
    );
    let c = load_one("s.yaml", &text).unwrap();
    assert_eq!(c.shutdown.connection_grace.0.as_secs(), 2);
    assert_eq!(c.shutdown.drain_timeout.0.as_secs(), 60);
    let bad = MINIMAL.replace("service:\n", "service:\n  tailgate: {grace: 2s}\n");
    let m = messages(&load_one("b.yaml", &bad).unwrap_err());
    assert!(
        m.iter()
            .any(|x| x.starts_with("b.yaml: service.tailgate.grace: unknown field")),
        "{m:#?}"
    );
}

#[test]
fn compression_levels_load_and_bad_ones_name_their_key_paths() {
    use tailgate_proto::compression::{Compression as W, Encoder, Level};
    let with_level = MINIMAL.replace(
        "    endpoint: sink:4317\n",
        "    endpoint: sink:4317\n    compression: zstd\n    tailgate: {compression_params: {level: 6}}\n",
    );
    let c = load_one("l.yaml", &with_level).unwrap();
    let ExporterConfig::Otlp(e) = &c.exporters[&ComponentId::parse("otlp").unwrap()] else {
        panic!("otlp")
    };
    assert_eq!(
        e.encoder(),
        Encoder::new(W::Zstd, Level::Numbered(7)).unwrap()
    );
    let bad = MINIMAL.replace(
        "  otlp:\n    endpoint: sink:4317\n",
        "  otlp:\n    endpoint: sink:4317\n    tailgate: {compression_params: {level: 12}}\n  otlphttp:\n    endpoint: http://sink:4318\n    compression: snappy\n    compression_params: {level: 1}\n",
    );
    let m = messages(&load_one("b.yaml", &bad).unwrap_err());
    for e in [
        "b.yaml: exporters.otlp.tailgate.compression_params.level: 12 is not a gzip level",
        "b.yaml: exporters.otlphttp.compression_params.level: snappy has no levels",
    ] {
        assert!(
            m.iter().any(|x| x.starts_with(e)),
            "missing {e:?} in {m:#?}"
        );
    }
}

#[test]
fn only_one_tail_sampling_may_set_membership() {
    let membership =
        "tailgate:\n      membership: {resolver: {static: {hostnames: [a:4317]}}, self: a:4317}";
    let text = format!(
        "receivers: {{otlp: {{protocols: {{grpc: {{endpoint: 127.0.0.1:0}}}}}}}}\n\
         processors:\n  \
           tail_sampling/a:\n    policies: [{{name: all, type: always_sample}}]\n    {membership}\n  \
           tail_sampling/b:\n    policies: [{{name: all, type: always_sample}}]\n    {membership}\n\
         exporters: {{nop: {{}}}}\n\
         service:\n  pipelines:\n    traces/a: {{receivers: [otlp], processors: [tail_sampling/a], exporters: [nop]}}\n    \
           traces/b: {{receivers: [otlp], processors: [tail_sampling/b], exporters: [nop]}}\n"
    );
    let errs = messages(&load_one("m.yaml", &text).unwrap_err());
    assert!(
        errs.iter().any(|e| e.starts_with(
            "m.yaml: processors.tail_sampling/b.tailgate.membership: only one tail_sampling per process"
        )),
        "{errs:#?}"
    );
    assert!(
        !errs
            .iter()
            .any(|e| e.contains("tail_sampling/a.tailgate.membership: only one")),
        "{errs:#?}"
    );
}
