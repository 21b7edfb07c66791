//! Config parsing and validation against the reference configs and the collector's rules.
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use tailgate_sampler::config::{PolicySpec, SamplerConfig};

fn tail_sampling_block(full: &str) -> serde_yaml::Value {
    let doc: serde_yaml::Value = serde_yaml::from_str(full).unwrap();
    doc["processors"]["tail_sampling"].clone()
}

#[test]
fn gateway_reference_config_parses_with_cache_warnings() {
    let text = include_str!("../testdata/gateway-config.yaml");
    let (cfg, warnings) = SamplerConfig::from_yaml_value(tail_sampling_block(text)).unwrap();
    assert_eq!(cfg.decision_wait, Duration::from_secs(30));
    assert_eq!(cfg.num_traces, 50_000);
    assert_eq!(cfg.expected_new_traces_per_sec, 1000);
    assert_eq!(cfg.sampled_cache_size, 100_000);
    assert_eq!(cfg.non_sampled_cache_size, 100_000);
    assert_eq!(cfg.policies.len(), 3);
    assert!(matches!(
        cfg.policies[0].spec,
        PolicySpec::StatusCode { .. }
    ));
    assert!(matches!(
        cfg.policies[1].spec,
        PolicySpec::Latency {
            threshold_ms: 1000,
            upper_threshold_ms: 0
        }
    ));
    assert!(
        matches!(cfg.policies[2].spec, PolicySpec::Probabilistic { sampling_percentage, .. } if sampling_percentage == 10.0)
    );
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert_eq!(warnings[0].path, "tail_sampling.sampled_cache_size");
    assert!(
        warnings[0]
            .message
            .contains("decision_cache: {sampled_cache_size: 100000}"),
        "{}",
        warnings[0]
    );
    assert_eq!(warnings[1].path, "tail_sampling.non_sampled_cache_size");
}

#[test]
fn every_policy_type_parses() {
    let (cfg, warnings) =
        SamplerConfig::from_yaml_str(include_str!("../testdata/all-policies.yaml")).unwrap();
    assert!(warnings.is_empty());
    assert_eq!(cfg.policies.len(), 18);
    assert_eq!(
        cfg.decision_wait_after_root_received,
        Some(Duration::from_secs(2))
    );
    assert_eq!(cfg.num_shards, 2);
    assert_eq!(cfg.num_traces_per_shard(), 50);
    assert_eq!(cfg.max_buffered_bytes, Some(1 << 30));
    assert_eq!(cfg.timer_tick, Duration::from_millis(50));
    assert!(cfg.drop_pending_traces_on_shutdown);
    let composite = cfg
        .policies
        .iter()
        .find(|p| p.name == "composite-policy-1")
        .unwrap();
    let PolicySpec::Composite { subs, .. } = &composite.spec else {
        panic!()
    };
    // 50% and 25% of 1000; a sub-policy without rate_allocation gets 0 (as the collector).
    let sps: Vec<i64> = subs.iter().map(|(_, s)| *s).collect();
    assert_eq!(sps, vec![500, 250, 0]);
    let PolicySpec::BytesLimiting { burst_capacity, .. } = cfg.policies[8].spec else {
        panic!()
    };
    assert_eq!(burst_capacity, 2_048_000);
}

#[test]
fn defaults_match_the_collector() {
    let (cfg, _) =
        SamplerConfig::from_yaml_str("policies: [{name: a, type: always_sample}]").unwrap();
    assert_eq!(cfg.decision_wait, Duration::from_secs(30));
    assert_eq!(cfg.num_traces, 50_000);
    assert_eq!(cfg.expected_new_traces_per_sec, 0);
    assert_eq!(cfg.sampled_cache_size, 0);
    assert_eq!(cfg.non_sampled_cache_size, 0);
    assert!(
        !cfg.sample_on_first_match
            && !cfg.block_on_overflow
            && !cfg.drop_pending_traces_on_shutdown
    );
    assert_eq!(cfg.decision_wait_after_root_received, None);
    assert_eq!(cfg.maximum_trace_size_bytes, None);
    assert_eq!(cfg.num_shards, 1);
}

#[test]
fn unknown_keys_are_rejected_with_their_path() {
    let err = SamplerConfig::from_yaml_str(
        "policies: [{name: a, type: latency, latency: {treshold_ms: 5}}]",
    )
    .unwrap_err();
    let p = &err.problems[0];
    assert_eq!(p.path, "tail_sampling.policies[0].latency.treshold_ms");
    assert!(
        p.message.contains("unknown field `treshold_ms`"),
        "{}",
        p.message
    );

    let err = SamplerConfig::from_yaml_str("decision_wiat: 5s\npolicies: []").unwrap_err();
    assert!(
        err.to_string().contains("unknown field `decision_wiat`"),
        "{err}"
    );
}

#[test]
fn go_durations_and_bad_durations() {
    let (cfg, _) = SamplerConfig::from_yaml_str(
        "decision_wait: 1m30s\npolicies: [{name: a, type: always_sample}]",
    )
    .unwrap();
    assert_eq!(cfg.decision_wait, Duration::from_secs(90));
    let err = SamplerConfig::from_yaml_str(
        "decision_wait: 30\npolicies: [{name: a, type: always_sample}]",
    )
    .unwrap();
    // A bare integer is nanoseconds, as mapstructure decodes it.
    assert_eq!(err.0.decision_wait, Duration::from_nanos(30));
    let err = SamplerConfig::from_yaml_str("decision_wait: 30 seconds\npolicies: []").unwrap_err();
    assert_eq!(err.problems[0].path, "tail_sampling.decision_wait");
}

#[test]
fn all_semantic_problems_are_collected_with_paths() {
    let text = r#"
num_traces: 0
sampling_strategy: bogus
policies:
  - {name: a, type: status_code, status_code: {status_codes: [ERROR, FATAL]}}
  - {name: a, type: nonsense}
  - {type: string_attribute, string_attribute: {key: k, values: ["("], enabled_regex_matching: true}}
  - {name: d, type: ottl_condition, ottl_condition: {span: ['ParseJSON(name) == nil'], spanevent: ['name == "e"']}}
  - {name: e, type: and, and: {and_sub_policy: [{name: f, type: composite}]}}
  - {name: g, type: numeric_attribute, numeric_attribute: {key: k}}
"#;
    let err = SamplerConfig::from_yaml_str(text).unwrap_err();
    let paths: Vec<&str> = err.problems.iter().map(|p| p.path.as_str()).collect();
    for want in [
        "tail_sampling.num_traces",
        "tail_sampling.sampling_strategy",
        "tail_sampling.policies[0].status_code.status_codes[1]",
        "tail_sampling.policies[1].name",
        "tail_sampling.policies[1].type",
        "tail_sampling.policies[2].name",
        "tail_sampling.policies[2].string_attribute.values[0]",
        "tail_sampling.policies[3].ottl_condition.spanevent",
        "tail_sampling.policies[3].ottl_condition.span[0]",
        "tail_sampling.policies[4].and.and_sub_policy[0].type",
        "tail_sampling.policies[5].numeric_attribute",
    ] {
        assert!(paths.contains(&want), "missing {want} in {paths:#?}");
    }
    let ottl = err
        .problems
        .iter()
        .find(|p| p.path.ends_with("span[0]"))
        .unwrap();
    assert!(
        ottl.message.contains("supported OTTL subset"),
        "{}",
        ottl.message
    );
    let unknown = err
        .problems
        .iter()
        .find(|p| p.path == "tail_sampling.policies[1].type")
        .unwrap();
    assert!(
        unknown.message.contains("always_sample"),
        "{}",
        unknown.message
    );
}

#[test]
fn policies_are_required() {
    let err = SamplerConfig::from_yaml_str("decision_wait: 5s").unwrap_err();
    assert_eq!(err.problems[0].path, "tail_sampling.policies");
}

#[test]
fn nested_decision_cache_wins_over_top_level_form() {
    let text = "sampled_cache_size: 5\ndecision_cache: {sampled_cache_size: 7}\npolicies: [{name: a, type: always_sample}]";
    let (cfg, warnings) = SamplerConfig::from_yaml_str(text).unwrap();
    assert_eq!(cfg.sampled_cache_size, 7);
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].message.contains("ignored"));
}

#[test]
fn ottl_paths_spans_cannot_provide_are_rejected() {
    let text = r#"
policies:
  - {name: a, type: ottl_condition, ottl_condition: {span: ['status.message == "x"', 'instrumentation_scope.name == "lib"', 'name == "ok"'], error_mode: loud}}
"#;
    let err = SamplerConfig::from_yaml_str(text).unwrap_err();
    let found = |path: &str, needle: &str| {
        err.problems
            .iter()
            .any(|p| p.path == path && p.message.contains(needle))
    };
    assert!(
        found(
            "tail_sampling.policies[0].ottl_condition.span[0]",
            "path span.status.message is not available to tail sampling"
        ),
        "{:#?}",
        err.problems
    );
    assert!(
        found(
            "tail_sampling.policies[0].ottl_condition.span[1]",
            "path instrumentation_scope.name is not available"
        ),
        "{:#?}",
        err.problems
    );
    assert!(
        found(
            "tail_sampling.policies[0].ottl_condition.error_mode",
            "unknown error_mode \"loud\""
        ),
        "{:#?}",
        err.problems
    );
    assert_eq!(err.problems.len(), 3, "{:#?}", err.problems);
}
