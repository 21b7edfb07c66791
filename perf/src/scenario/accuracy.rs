//! `accuracy`: does tail sampling keep error and slow traces whole when it runs on several
//! gateways?
//!
//! Two runs with the same traffic (same seed: same traces, same error and slow classes):
//! 1. *agent*: loadgen → one agent (`loadbalancing`, routing by trace ID) → 3 gateways;
//! 2. *round-robin*: loadgen → the 3 gateways directly, requests spread round-robin over them
//!    (what a plain load balancer in front of gateways does).
//!
//! Each gateway runs the seed's policies (errors, latency > 1 s, 10 % probabilistic) and exports
//! to its own sink. After the load, the agent is stopped (it flushes), the run waits for the
//! gateways' decisions (`decision_wait`, then until the sinks are quiet), the gateways are
//! stopped, and `check` joins the manifest with the three sinks. With routing, every error/slow
//! trace must arrive whole; with round-robin, a trace's spans are spread over gateways and only
//! the gateway that saw the error span (or the slow root) keeps its part.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use super::configs::{self, Sampling};
use super::process::ExitReport;
use super::topology::{self, collect, settle, start_agent, start_gateways, start_sinks};
use super::ui::Ui;
use super::{ScenarioContext, ScenarioError, ScenarioOutput, Size};
use crate::check::{self, CheckReport, ClassRow};
use crate::gen::{SpanCount, TraceShape, WorkloadConfig};
use crate::loadgen::{self, LoadConfig, LoadSummary};
use crate::pace::Rate;
use crate::sink::RecordMode;

/// The knobs of an accuracy run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AccuracyConfig {
    /// Gateways (and sinks).
    pub gateways: usize,
    /// Spans sent per run (whole traces are finished).
    pub spans: u64,
    /// Sending rate, spans per second.
    pub rate: f64,
    /// Connections of the load generator (round-robin: spread over the gateways).
    pub connections: u32,
    /// The gateways' sampling settings.
    pub sampling: Sampling,
    /// Gateways run `tail_sampling`; when false they only forward (every span is kept), which
    /// checks the routing alone.
    pub tail_sampling: bool,
    /// The traffic.
    pub workload: WorkloadConfig,
}

impl AccuracyConfig {
    /// The size for `size`: smoke (a few thousand spans), demo (well under two minutes on
    /// 2 cores) or full.
    pub fn for_size(size: Size) -> Self {
        let (spans, rate, decision_wait) = match size {
            Size::Smoke => (6_000, 6_000.0, Duration::from_millis(500)),
            Size::Demo => (200_000, 25_000.0, Duration::from_secs(2)),
            Size::Full => (1_000_000, 40_000.0, Duration::from_secs(5)),
        };
        AccuracyConfig {
            gateways: 3,
            spans,
            rate,
            connections: 3,
            sampling: Sampling {
                decision_wait,
                ..Sampling::default()
            },
            tail_sampling: true,
            workload: WorkloadConfig {
                shape: TraceShape {
                    spans_per_trace: SpanCount::Uniform { min: 5, max: 15 },
                    error_rate: 0.02,
                    slow_rate: 0.02,
                    slow_threshold: Duration::from_secs(1),
                    ..TraceShape::default()
                },
                spans_per_request: 200,
                interleave: 200,
                seed: 7,
            },
        }
    }
}

/// How the load reaches the gateways.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Routing {
    /// Through an agent that routes by trace ID.
    Agent,
    /// Straight to the gateways, requests round-robin.
    RoundRobin,
}

impl Routing {
    /// Column title.
    pub fn title(self, gateways: usize) -> String {
        match self {
            Routing::Agent => format!("agent → {gateways} gateways (trace-ID routing)"),
            Routing::RoundRobin => format!("round-robin → {gateways} gateways"),
        }
    }
}

/// One run's numbers.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunResult {
    /// How the load was routed.
    pub routing: Routing,
    /// The load generator's summary.
    pub load: LoadSummary,
    /// Manifest joined with the gateways' sinks.
    pub check: CheckReport,
    /// Whether the sinks went quiet before the deadline.
    pub settled: bool,
    /// How the tailgate processes exited.
    pub exits: Vec<ExitReport>,
    /// Wall time of the run, seconds.
    pub wall_secs: f64,
}

/// Runs the scenario: the agent run, then the round-robin run.
pub async fn run(
    ctx: &ScenarioContext,
    config: &AccuracyConfig,
    ui: Ui,
) -> Result<ScenarioOutput, ScenarioError> {
    let agent = run_one(ctx, config, Routing::Agent, ui).await?;
    let rr = run_one(ctx, config, Routing::RoundRobin, ui).await?;
    let markdown = comparison_markdown(config, &agent, &rr);
    let json = serde_json::json!({ "config": config, "runs": [agent, rr] });
    Ok(ScenarioOutput {
        name: "accuracy".into(),
        markdown,
        json,
    })
}

/// One run with the given routing.
pub async fn run_one(
    ctx: &ScenarioContext,
    config: &AccuracyConfig,
    routing: Routing,
    ui: Ui,
) -> Result<RunResult, ScenarioError> {
    let started = Instant::now();
    let tag = match routing {
        Routing::Agent => "agent",
        Routing::RoundRobin => "round-robin",
    };
    let step = ui.step(format!(
        "{tag}: starting {} gateways{}",
        config.gateways,
        if routing == Routing::Agent {
            " and an agent"
        } else {
            ""
        }
    ));
    let sinks = start_sinks(config.gateways, RecordMode::Ids).await?;
    let backends: Vec<_> = sinks.iter().map(|s| s.grpc_addr()).collect();
    let prefix = format!("{tag}-");
    let sampling = config.tail_sampling.then_some(&config.sampling);
    let gateways = start_gateways(ctx, &prefix, &backends, sampling, 1).await?;
    let gateway_addrs: Vec<_> = gateways.iter().map(|g| g.grpc_addr()).collect();
    let agent = match routing {
        Routing::Agent => Some(start_agent(ctx, "agent", &gateway_addrs, 0).await?),
        Routing::RoundRobin => None,
    };
    step.done("");
    let targets = match &agent {
        Some(a) => vec![a.grpc_addr()],
        None => gateway_addrs.clone(),
    };
    ui.note(format!(
        "{tag}: sending {} spans at {:.0} spans/s ({:.0}% error traces, {:.0}% slow)",
        config.spans,
        config.rate,
        100.0 * config.workload.shape.error_rate,
        100.0 * config.workload.shape.slow_rate
    ));
    let load = loadgen::run(LoadConfig {
        targets,
        connections: config.connections,
        rate: Rate::SpansPerSecond(config.rate),
        max_spans: Some(config.spans),
        workload: config.workload.clone(),
        progress: ui.enabled(),
        ..LoadConfig::new(backends[0])
    })
    .await?;
    let load_end = Instant::now();
    let mut exits = Vec::new();
    if let Some(agent) = agent {
        let step = ui.step(format!(
            "{tag}: stopping the agent (it flushes its batches)"
        ));
        exits.push(agent.stop(topology::STOP_DEADLINE).await);
        step.done("");
    }
    let decisions = if config.tail_sampling {
        config.sampling.decision_wait
    } else {
        Duration::ZERO
    };
    let wait = decisions + 2 * configs::batch_timeout();
    let step = ui.step(format!(
        "{tag}: waiting for the gateways' decisions (decision_wait {:?})",
        config.sampling.decision_wait
    ));
    let settled = settle(
        &sinks,
        load_end + wait,
        Duration::from_millis(600),
        load_end + wait + Duration::from_secs(30),
    )
    .await;
    step.done(if settled {
        ""
    } else {
        "still receiving; gave up"
    });
    exits.extend(topology::stop_all(gateways).await);
    let observations = collect(sinks, &format!("{tag}-gateway")).await;
    let check = check::check(&load.manifest, &observations);
    Ok(RunResult {
        routing,
        load: load.summary,
        check,
        settled,
        exits,
        wall_secs: started.elapsed().as_secs_f64(),
    })
}

fn pct(n: u64, of: u64) -> String {
    if of == 0 {
        return "–".into();
    }
    format!("{n} / {of} ({:.1}%)", 100.0 * n as f64 / of as f64)
}

fn class(r: &RunResult, name: &str) -> ClassRow {
    r.check.class(name).cloned().unwrap_or_default()
}

/// The comparison table (markdown) the demo ends with.
pub fn comparison_markdown(config: &AccuracyConfig, a: &RunResult, b: &RunResult) -> String {
    let mut s = String::new();
    let n = config.gateways;
    let _ = writeln!(
        s,
        "| same traffic, {} spans | {} | {} |",
        a.load.spans_ok + a.load.spans_failed,
        a.routing.title(n),
        b.routing.title(n)
    );
    let _ = writeln!(s, "|---|---:|---:|");
    let mut row = |label: &str, f: &dyn Fn(&RunResult) -> String| {
        let _ = writeln!(s, "| {label} | {} | {} |", f(a), f(b));
    };
    for (name, label) in [("error", "error traces"), ("slow", "slow traces (> 1 s)")] {
        row(&format!("{label} kept whole"), &|r| {
            let c = class(r, name);
            pct(c.complete, c.traces)
        });
        row(&format!("{label} kept partially"), &|r| {
            let c = class(r, name);
            pct(c.partial, c.traces)
        });
        row(&format!("{label} lost"), &|r| {
            let c = class(r, name);
            pct(c.missing, c.traces)
        });
    }
    row(
        &format!(
            "other traces kept (policy: {}%)",
            config.sampling.sampling_percentage
        ),
        &|r| {
            let c = class(r, "other");
            format!(
                "{:.1}% ({:.1}% whole)",
                100.0 * c.kept_fraction,
                100.0 * c.whole_fraction
            )
        },
    );
    row("traces split over gateways", &|r| {
        r.check.split_traces.to_string()
    });
    row("traces with duplicated spans", &|r| {
        class(r, "all").duplicated.to_string()
    });
    row("gateway balance (max/mean spans)", &|r| {
        format!("{:.2}", r.check.balance_max_over_mean)
    });
    row("spans refused or lost on the way in", &|r| {
        r.load.spans_failed.to_string()
    });
    row("processes exited cleanly", &|r| {
        let clean = r.exits.iter().filter(|e| e.clean()).count();
        format!("{clean} / {}", r.exits.len())
    });
    s
}
