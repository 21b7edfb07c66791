//! `latency`: the latency a tailgate hop adds, at 25/50/75 % of its maximum rate.
//!
//! First an open-throttle run finds the target's maximum rate. Then, per level, a paced run
//! through the target and a paced run straight to a sink (the baseline: the same client, the same
//! requests, no hop) record request round-trip percentiles in HDR histograms; the difference is
//! what the hop adds. The latency is the exporter-facing answer time (tailgate answers once a
//! request is accepted into its pipeline), not the time until spans reach the backend.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use super::throughput::{measure, rate_series, TargetKind, TargetResult};
use super::topology::start_sinks;
use super::ui::Ui;
use super::{ScenarioContext, ScenarioError, ScenarioOutput, Size};
use crate::gen::WorkloadConfig;
use crate::loadgen::{self, LoadConfig, LoadSummary};
use crate::pace::Rate;
use crate::plot::{self, Chart};
use crate::sink::RecordMode;

/// The knobs of a latency run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LatencyConfig {
    /// The tailgate configuration measured.
    pub target: TargetKind,
    /// Length of the max-rate run and of each paced run.
    pub duration: Duration,
    /// Fractions of the max rate.
    pub levels: Vec<f64>,
    /// Requests in the replay pool.
    pub pool: usize,
    /// The traffic.
    pub workload: WorkloadConfig,
}

impl LatencyConfig {
    /// Sized for `size`.
    pub fn for_size(size: Size) -> Self {
        let t = super::throughput::ThroughputConfig::for_size(size);
        LatencyConfig {
            target: TargetKind::Agent,
            duration: match size {
                Size::Smoke => Duration::from_secs(1),
                Size::Demo => Duration::from_secs(5),
                Size::Full => Duration::from_secs(20),
            },
            levels: vec![0.25, 0.5, 0.75],
            pool: t.pool,
            workload: t.workload,
        }
    }

    fn load(&self, rate: Rate) -> LoadConfig {
        LoadConfig {
            connections: 4,
            in_flight: 4,
            rate,
            duration: Some(self.duration),
            max_spans: None,
            workload: self.workload.clone(),
            replay_pool: Some(self.pool),
            ..LoadConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)))
        }
    }
}

/// One level's numbers.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LevelResult {
    /// Fraction of the max rate.
    pub level: f64,
    /// Target rate, spans/s.
    pub rate: f64,
    /// Through the target.
    pub through: TargetResult,
    /// Straight to a sink.
    pub baseline: LoadSummary,
}

/// Runs the scenario.
pub async fn run(
    ctx: &ScenarioContext,
    config: &LatencyConfig,
    ui: Ui,
) -> Result<ScenarioOutput, ScenarioError> {
    let sampling = super::configs::Sampling::default();
    ui.note("latency: finding the maximum rate (open throttle)");
    let max = measure(
        ctx,
        &config.target,
        config.load(Rate::Unlimited),
        &sampling,
        ui,
    )
    .await?;
    let max_rate = max.load.spans_per_sec.max(1.0);
    let mut levels = Vec::new();
    for &level in &config.levels {
        let rate = level * max_rate;
        ui.note(format!(
            "latency: {:.0}% of max = {rate:.0} spans/s",
            100.0 * level
        ));
        let load = config.load(Rate::SpansPerSecond(rate));
        let through = measure(ctx, &config.target, load.clone(), &sampling, ui).await?;
        let baseline = direct(load, ui).await?;
        levels.push(LevelResult {
            level,
            rate,
            through,
            baseline,
        });
    }
    let markdown = markdown(config, max_rate, &levels);
    let series: Vec<_> = levels
        .iter()
        .map(|l| {
            rate_series(
                format!("{:.0}% of max", 100.0 * l.level),
                &l.through.samples,
            )
        })
        .collect();
    let path = ctx.results_dir.join("latency-rate.svg");
    let _ = std::fs::create_dir_all(&ctx.results_dir);
    let plot = plot::line_chart_svg(
        &path,
        &Chart {
            title: "paced load through the target",
            x_label: "seconds",
            y_label: "spans/s",
            series: &series,
        },
    )
    .map(|()| path.display().to_string())
    .map_err(|e| e.to_string());
    let latency_plot = latency_over_time(ctx, &levels);
    let json = serde_json::json!({
        "config": config, "max_rate": max_rate, "max_run": max, "levels": levels, "plot": plot,
        "latency_plot": latency_plot,
    });
    Ok(ScenarioOutput {
        name: "latency".into(),
        markdown,
        json,
    })
}

/// p50 and p99 round trip (ms) per second of each paced run through the target: `latency-time.svg`.
fn latency_over_time(ctx: &ScenarioContext, levels: &[LevelResult]) -> Result<String, String> {
    let mut series = Vec::new();
    for l in levels {
        let points = &l.through.load.latency_timeline;
        for (name, pick) in [("p50", 0usize), ("p99", 1)] {
            series.push(plot::Series {
                label: format!("{name} at {:.0}% of max", 100.0 * l.level),
                points: points
                    .iter()
                    .map(|p| {
                        let us = if pick == 0 { p.p50_us } else { p.p99_us };
                        (f64::from(p.second), us as f64 / 1000.0)
                    })
                    .collect(),
            });
        }
    }
    let path = ctx.results_dir.join("latency-time.svg");
    plot::line_chart_svg(
        &path,
        &Chart {
            title: "request round trip through the target, per second of each paced run",
            x_label: "seconds",
            y_label: "ms",
            series: &series,
        },
    )
    .map(|()| path.display().to_string())
    .map_err(|e| e.to_string())
}

/// The same paced load straight into a sink.
async fn direct(load: LoadConfig, ui: Ui) -> Result<LoadSummary, ScenarioError> {
    let sinks = start_sinks(1, RecordMode::Count).await?;
    let outcome = loadgen::run(LoadConfig {
        targets: vec![sinks[0].grpc_addr()],
        progress: ui.enabled(),
        ..load
    })
    .await;
    for s in sinks {
        s.shutdown().await;
    }
    Ok(outcome?.summary)
}

fn markdown(config: &LatencyConfig, max_rate: f64, levels: &[LevelResult]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{}: max {max_rate:.0} spans/s at open throttle. Request round trip, µs (through / straight to a sink):\n",
        config.target.label()
    );
    let _ = writeln!(
        s,
        "| load | spans/s | p50 | p90 | p99 | p99.9 | added p50 | added p99 |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|");
    for l in levels {
        let q = |sum: &LoadSummary, k: &str| sum.latency_us.get(k).copied().unwrap_or(0);
        let both = |k: &str| format!("{} / {}", q(&l.through.load, k), q(&l.baseline, k));
        let added = |k: &str| q(&l.through.load, k) as i64 - q(&l.baseline, k) as i64;
        let _ = writeln!(
            s,
            "| {:.0}% | {:.0} | {} | {} | {} | {} | {} | {} |",
            100.0 * l.level,
            l.through.load.spans_per_sec,
            both("p50"),
            both("p90"),
            both("p99"),
            both("p99.9"),
            added("p50"),
            added("p99")
        );
    }
    s
}
