//! Smoke runs of every scenario at tiny scale against the real `tailgate` binary.
//!
//! The binary is found as the CLI finds it (`TAILGATE_BIN`, next to the test executable: cargo
//! puts `tailgate` in `target/<profile>/` when the workspace is built, else built with cargo).
//! A scenario configuration that `tailgate validate` rejects fails its test with tailgate's message
//! (a config regression must not turn these green). A binary that cannot be found or built fails
//! under CI (`CI` set) and skips the test, loudly, elsewhere.
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use tailgate_perf::scenario::accuracy::{self, AccuracyConfig};
use tailgate_perf::scenario::binary::{locate_tailgate, Fallback};
use tailgate_perf::scenario::configs::{self, Sampling};
use tailgate_perf::scenario::process::Tailgate;
use tailgate_perf::scenario::throughput::{self, TargetKind, ThroughputConfig};
use tailgate_perf::scenario::{latency, soak, ScenarioContext, Size, Ui};

fn tailgate() -> &'static Result<PathBuf, String> {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(|| match locate_tailgate(Fallback::Build) {
        Ok(Some(p)) => Ok(p),
        Ok(None) => Err("no tailgate binary found".to_owned()),
        Err(e) => Err(format!("no tailgate binary: {e}")),
    })
}

/// The scenario context, or `None` (outside CI only) when there is no binary to run.
fn context(test: &str) -> Option<ScenarioContext> {
    let bin = match tailgate() {
        Ok(p) => p.clone(),
        Err(why) => {
            tailgate_perf::ci::missing_prerequisite(test, why);
            return None;
        }
    };
    let results =
        std::env::temp_dir().join(format!("tailgate-perf-results-{}", std::process::id()));
    Some(ScenarioContext::new(bin, results, Size::Smoke).unwrap())
}

/// Fails the test, with tailgate's message, when this build rejects the `what` scenario config.
fn assert_valid(ctx: &ScenarioContext, what: &str, config: &serde_json::Value) {
    if let Err(msg) = Tailgate::validate(&ctx.tailgate, &ctx.work_dir, what, config) {
        panic!("tailgate rejects the {what} scenario config:\n{msg}");
    }
}

fn addr() -> std::net::SocketAddr {
    "127.0.0.1:9".parse().unwrap()
}

fn assert_target_valid(ctx: &ScenarioContext, kind: &TargetKind) {
    let config = match kind {
        TargetKind::Passthrough => configs::passthrough(addr()),
        TargetKind::Agent => configs::agent_compressed(&[addr()], "gzip"),
        TargetKind::Gateway => configs::gateway(addr(), &Sampling::default()),
        TargetKind::Peer(_) => return,
    };
    assert_valid(ctx, &format!("{kind:?}").to_lowercase(), &config);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accuracy_smoke_routing_keeps_error_and_slow_traces_whole() {
    let Some(ctx) = context("accuracy_smoke_routing") else {
        return;
    };
    assert_valid(&ctx, "agent", &configs::agent(&[addr()]));
    assert_valid(
        &ctx,
        "gateway",
        &configs::gateway(addr(), &Sampling::default()),
    );
    let config = AccuracyConfig::for_size(Size::Smoke);
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        accuracy::run(&ctx, &config, Ui::new(false)),
    )
    .await
    .expect("accuracy smoke run took over 2 minutes")
    .unwrap();
    println!("{}", out.markdown);
    ctx.remove_work_dir();
    let runs = out.json["runs"].as_array().unwrap();
    let (agent, rr) = (&runs[0], &runs[1]);
    assert_eq!(agent["routing"], "agent");
    assert_eq!(rr["routing"], "round-robin");
    for class in ["error", "slow"] {
        let row = |run: &serde_json::Value| {
            run["check"]["classes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["class"] == class)
                .unwrap()
                .clone()
        };
        let a = row(agent);
        assert!(a["traces"].as_u64().unwrap() > 0, "{class}: no traces");
        assert_eq!(
            a["complete"], a["traces"],
            "agent keeps {class} traces whole: {a}"
        );
    }
    assert_eq!(
        agent["check"]["split_traces"], 0,
        "routing never splits a trace"
    );
    assert!(
        rr["check"]["split_traces"].as_u64().unwrap() > 0,
        "round-robin splits traces"
    );
    for run in runs {
        for exit in run["exits"].as_array().unwrap() {
            assert_eq!(exit["code"], 0, "{exit}");
        }
    }
    assert!(out.markdown.contains("error traces kept whole"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accuracy_smoke_with_forwarding_gateways_checks_the_routing_alone() {
    let Some(ctx) = context("accuracy_smoke_forwarding") else {
        return;
    };
    assert_valid(&ctx, "agent", &configs::agent(&[addr()]));
    let config = AccuracyConfig {
        tail_sampling: false,
        ..AccuracyConfig::for_size(Size::Smoke)
    };
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        accuracy::run(&ctx, &config, Ui::new(false)),
    )
    .await
    .expect("accuracy smoke run took over 2 minutes")
    .unwrap();
    println!("{}", out.markdown);
    ctx.remove_work_dir();
    let runs = out.json["runs"].as_array().unwrap();
    for run in runs {
        // Forwarding gateways keep everything, whatever the routing.
        let all = &run["check"]["classes"][3];
        assert_eq!(all["class"], "all");
        assert_eq!(all["complete"], all["traces"], "{}: {all}", run["routing"]);
        assert_eq!(all["duplicated"], 0);
        let balance = run["check"]["balance_max_over_mean"].as_f64().unwrap();
        assert!(
            (1.0..1.5).contains(&balance),
            "{}: balance {balance}",
            run["routing"]
        );
    }
    assert_eq!(
        runs[0]["check"]["split_traces"], 0,
        "routing never splits a trace"
    );
    let traces = runs[1]["check"]["classes"][3]["traces"].as_u64().unwrap();
    let split = runs[1]["check"]["split_traces"].as_u64().unwrap();
    assert!(
        split * 2 > traces,
        "round-robin splits most multi-request traces: {split} of {traces}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_smoke_counts_spans_per_cpu_second() {
    let Some(ctx) = context("throughput_smoke") else {
        return;
    };
    let mut config = ThroughputConfig::for_size(Size::Smoke);
    config.duration = Duration::from_secs(1);
    for k in &config.targets {
        assert_target_valid(&ctx, k);
    }
    let out = throughput::run(&ctx, &config, Ui::new(false))
        .await
        .unwrap();
    let results = out.json["results"].as_array().unwrap();
    assert_eq!(results.len(), config.targets.len());
    for r in results {
        let spans = r["load"]["spans_ok"].as_u64().unwrap();
        assert!(spans >= 1000, "{r}");
        assert!(r["cpu_secs"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["spans_per_cpu_sec"].as_f64().unwrap() > 0.0);
        assert_eq!(r["exit"]["code"], 0, "{}", r["exit"]);
        if r["target"] != "gateway" {
            assert_eq!(r["spans_out"].as_u64().unwrap(), spans, "forwarded all");
        }
    }
    let bps = out.json["bytes_per_span"].as_f64().unwrap();
    assert!((215.0..235.0).contains(&bps), "~225-byte spans, got {bps}");
    assert_eq!(out.json["plots"].as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_smoke_reports_percentiles_per_level() {
    let Some(ctx) = context("latency_smoke") else {
        return;
    };
    let mut config = latency::LatencyConfig::for_size(Size::Smoke);
    assert_target_valid(&ctx, &config.target);
    config.levels = vec![0.25, 0.5];
    let out = latency::run(&ctx, &config, Ui::new(false)).await.unwrap();
    println!("{}", out.markdown);
    ctx.remove_work_dir();
    let levels = out.json["levels"].as_array().unwrap();
    assert_eq!(levels.len(), 2);
    for l in levels {
        assert!(l["through"]["load"]["latency_us"]["p99"].as_u64().unwrap() > 0);
        assert!(l["baseline"]["latency_us"]["p50"].as_u64().unwrap() > 0);
        let timeline = l["through"]["load"]["latency_timeline"].as_array().unwrap();
        assert!(!timeline.is_empty(), "no latency over time: {l}");
        assert!(timeline.iter().all(|p| p["p99_us"].as_u64().unwrap() > 0));
    }
    // A Result serialises as {"Ok": path} or {"Err": why}.
    let plot = out.json["latency_plot"]["Ok"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", out.json["latency_plot"]));
    assert!(plot.ends_with("latency-time.svg"), "{plot}");
    assert!(out.markdown.contains("| 25% |"), "{}", out.markdown);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_smoke_samples_rss() {
    let Some(ctx) = context("soak_smoke") else {
        return;
    };
    let mut config = soak::SoakConfig::for_size(Size::Smoke);
    assert_target_valid(&ctx, &config.target);
    config.duration = Duration::from_secs(2);
    let out = soak::run(&ctx, &config, Ui::new(false)).await.unwrap();
    println!("{}", out.markdown);
    ctx.remove_work_dir();
    assert!(out.json["memory"]["max"].as_u64().unwrap() > 0);
    assert!(out.json["result"]["samples"].as_array().unwrap().len() >= 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_the_build_refuses_is_reported_with_tailgates_message() {
    let Some(ctx) = context("refused_config") else {
        return;
    };
    let bad = serde_json::json!({"receivers": {"nope": {}}});
    let err = Tailgate::start(
        &ctx.tailgate,
        &ctx.work_dir,
        "bad",
        &bad,
        None,
        Duration::from_secs(60),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("exited during start-up"), "{err}");
    assert!(
        err.contains("nope"),
        "tailgate's own message is shown: {err}"
    );
}

/// The scale scenario's configs (a DNS-routing agent, gateways with and without membership) are
/// accepted by this build; the scenario itself is a perf command (`tailgate-perf scenario scale`),
/// too long for `cargo test`.
#[test]
fn scale_configs_are_valid() {
    let Some(ctx) = context("scale_configs_are_valid") else {
        return;
    };
    let config = tailgate_perf::scenario::scale::ScaleConfig::for_size(Size::Demo);
    let discovery = configs::DnsDiscovery {
        hostname: "gateways.scale.test".into(),
        port: 4317,
        dns_server: "127.0.0.1:53".parse().unwrap(),
        interval: config.resolver_interval,
    };
    let me = "127.0.0.2:4317".parse().unwrap();
    assert_valid(&ctx, "scale-agent", &configs::agent_dns(&discovery));
    for (what, grace) in [("scale-member", Some(config.grace)), ("scale-plain", None)] {
        let mut gw = configs::gateway_member(me, addr(), &config.sampling, &discovery, grace);
        assert!(
            config.spanmetrics,
            "the scenario runs spanmetrics beside sampling"
        );
        configs::with_spanmetrics(&mut gw);
        assert_valid(&ctx, what, &gw);
    }
    ctx.remove_work_dir();
}
