//! `soak`: a long paced run through a gateway with its RSS sampled every 250 ms; memory must stay
//! flat once the trace table has filled (after `decision_wait`).
//!
//! Reported: RSS once warmed up (at 25 % of the run), at the end, the peak, and the growth rate
//! over the second half (MiB per minute; near zero when flat), plus an SVG of RSS over time.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use super::configs::Sampling;
use super::throughput::{measure, Sample, TargetKind, TargetResult};
use super::ui::Ui;
use super::{ScenarioContext, ScenarioError, ScenarioOutput, Size};
use crate::gen::WorkloadConfig;
use crate::loadgen::LoadConfig;
use crate::pace::Rate;
use crate::plot::{self, Chart, Series};

/// The knobs of a soak run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SoakConfig {
    /// The tailgate configuration soaked.
    pub target: TargetKind,
    /// Length of the run.
    pub duration: Duration,
    /// Paced rate, spans/s.
    pub rate: f64,
    /// Requests in the replay pool.
    pub pool: usize,
    /// The traffic.
    pub workload: WorkloadConfig,
    /// Gateway sampling settings.
    pub sampling: Sampling,
}

impl SoakConfig {
    /// Sized for `size`.
    pub fn for_size(size: Size) -> Self {
        let t = super::throughput::ThroughputConfig::for_size(size);
        let (duration, rate) = match size {
            Size::Smoke => (Duration::from_secs(3), 5_000.0),
            Size::Demo => (Duration::from_secs(60), 50_000.0),
            Size::Full => (Duration::from_secs(1800), 100_000.0),
        };
        SoakConfig {
            target: TargetKind::Gateway,
            duration,
            rate,
            pool: t.pool,
            workload: t.workload,
            sampling: Sampling {
                decision_wait: Duration::from_secs(2),
                num_traces: 400_000,
                ..Sampling::default()
            },
        }
    }
}

/// Memory figures of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct MemoryTrend {
    /// RSS at a quarter of the run, bytes.
    pub warm: u64,
    /// RSS at the end, bytes.
    pub end: u64,
    /// Peak RSS, bytes.
    pub max: u64,
    /// Least-squares slope of RSS over the second half, MiB per minute.
    pub slope_mib_per_min: f64,
}

/// RSS figures from a timeline.
pub fn memory_trend(samples: &[Sample]) -> MemoryTrend {
    let Some(last) = samples.last() else {
        return MemoryTrend::default();
    };
    let at = |frac: f64| {
        samples
            .iter()
            .find(|s| s.t >= frac * last.t)
            .map_or(0, |s| s.rss)
    };
    let half: Vec<(f64, f64)> = samples
        .iter()
        .filter(|s| s.t >= last.t / 2.0)
        .map(|s| (s.t / 60.0, s.rss as f64 / (1 << 20) as f64))
        .collect();
    MemoryTrend {
        warm: at(0.25),
        end: last.rss,
        max: samples.iter().map(|s| s.rss).max().unwrap_or(0),
        slope_mib_per_min: slope(&half),
    }
}

fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let (mx, my) = points
        .iter()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x / n, b + y / n));
    let (num, den) = points.iter().fold((0.0, 0.0), |(num, den), (x, y)| {
        (num + (x - mx) * (y - my), den + (x - mx) * (x - mx))
    });
    if den == 0.0 {
        0.0
    } else {
        num / den
    }
}

/// Runs the scenario.
pub async fn run(
    ctx: &ScenarioContext,
    config: &SoakConfig,
    ui: Ui,
) -> Result<ScenarioOutput, ScenarioError> {
    let load = LoadConfig {
        connections: 2,
        in_flight: 4,
        rate: Rate::SpansPerSecond(config.rate),
        duration: Some(config.duration),
        max_spans: None,
        workload: config.workload.clone(),
        replay_pool: Some(config.pool),
        ..LoadConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)))
    };
    let r: TargetResult = measure(ctx, &config.target, load, &config.sampling, ui).await?;
    let trend = memory_trend(&r.samples);
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    let mut markdown = String::new();
    let _ = writeln!(
        markdown,
        "| target | spans | seconds | RSS warm MiB | RSS end MiB | RSS max MiB | 2nd-half slope MiB/min | exit |"
    );
    let _ = writeln!(markdown, "|---|---:|---:|---:|---:|---:|---:|---|");
    let _ = writeln!(
        markdown,
        "| {} | {} | {:.0} | {:.1} | {:.1} | {:.1} | {:+.2} | {} |",
        r.target.label(),
        r.load.spans_ok,
        r.load.elapsed_secs,
        mib(trend.warm),
        mib(trend.end),
        mib(trend.max),
        trend.slope_mib_per_min,
        if r.exit.clean() { "clean" } else { "NOT clean" }
    );
    let series = [Series {
        label: r.target.label(),
        points: r.samples.iter().map(|s| (s.t, mib(s.rss))).collect(),
    }];
    let path = ctx.results_dir.join("soak-rss.svg");
    let _ = std::fs::create_dir_all(&ctx.results_dir);
    let plot = plot::line_chart_svg(
        &path,
        &Chart {
            title: "RSS of the process under test",
            x_label: "seconds",
            y_label: "MiB",
            series: &series,
        },
    )
    .map(|()| path.display().to_string())
    .map_err(|e| e.to_string());
    let json = serde_json::json!({ "config": config, "result": r, "memory": trend, "plot": plot });
    Ok(ScenarioOutput {
        name: "soak".into(),
        markdown,
        json,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: f64, rss_mib: u64) -> Sample {
        Sample {
            t,
            spans_ok: 0,
            cpu: 0.0,
            rss: rss_mib << 20,
        }
    }

    #[test]
    fn flat_memory_has_zero_slope() {
        let s: Vec<_> = (0..=120).map(|i| sample(f64::from(i), 100)).collect();
        let t = memory_trend(&s);
        assert_eq!((t.warm, t.end, t.max), (100 << 20, 100 << 20, 100 << 20));
        assert!(t.slope_mib_per_min.abs() < 1e-9);
    }

    #[test]
    fn a_leak_shows_as_slope_per_minute() {
        // 1 MiB per second = 60 MiB per minute.
        let s: Vec<_> = (0..=120u32)
            .map(|i| sample(f64::from(i), 10 + u64::from(i)))
            .collect();
        let t = memory_trend(&s);
        assert!((t.slope_mib_per_min - 60.0).abs() < 1e-6, "{t:?}");
        assert_eq!(t.max, 130 << 20);
    }
}
