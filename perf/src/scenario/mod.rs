//! End-to-end scenarios: each starts real `tailgate` processes on loopback with generated
//! configs, drives them with the load generator and judges the result with `check` or `/proc`.
//!
//! A scenario gets a [`ScenarioContext`] (the binary, where results and work files go, how big to
//! run, whether to show progress) and returns markdown + JSON. Scenarios only talk OTLP to the
//! processes and read `/proc`: nothing here depends on tailgate's internals.
//!
//! # Layout
//! - [`binary`]: finding (or building) the `tailgate` binary.
//! - [`configs`]: the collector-style agent / gateway / passthrough configs.
//! - [`process`]: starting a process, readiness via `--ports-file`, SIGTERM and exit status.
//! - [`procfs`]: CPU time and RSS of a process.
//! - [`topology`]: sinks, gateways and an agent wired together; waiting for quiet backends.
//! - [`ui`]: live progress lines.
//! - [`accuracy`], [`throughput`], [`latency`], [`soak`], [`scale`]: the scenarios.

pub mod accuracy;
pub mod binary;
pub mod configs;
pub mod latency;
pub mod process;
pub mod procfs;
pub mod scale;
pub mod soak;
pub mod throughput;
pub mod topology;
pub mod ui;

use std::path::PathBuf;

pub use ui::Ui;

/// The scenarios the issue asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ScenarioName {
    /// Agent + 3 gateways vs naive round-robin to the same 3 gateways: error/slow traces kept whole.
    Accuracy,
    /// Spans per CPU-second for agent passthrough and gateway sampling (optionally a peer binary).
    Throughput,
    /// Added latency percentiles at 25/50/75% of the maximum rate.
    Latency,
    /// Long run with RSS sampled: memory must stay flat.
    Soak,
    /// Gateways scale out, in and restart under load, with and without membership.
    Scale,
}

impl ScenarioName {
    /// Every scenario.
    pub const ALL: [ScenarioName; 5] = [
        Self::Accuracy,
        Self::Throughput,
        Self::Latency,
        Self::Soak,
        Self::Scale,
    ];

    /// One line on what it shows.
    pub fn about(self) -> &'static str {
        match self {
            Self::Accuracy => "agent + 3 gateways vs round-robin: error/slow traces kept whole",
            Self::Throughput => "spans per CPU-second, agent passthrough and gateway sampling",
            Self::Latency => "added latency percentiles at 25/50/75% of max rate",
            Self::Soak => "long run, RSS sampled, memory flat",
            Self::Scale => {
                "gateways scale and restart under load: traces whole, with and without membership"
            }
        }
    }

    /// Its name on the command line and in result files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accuracy => "accuracy",
            Self::Throughput => "throughput",
            Self::Latency => "latency",
            Self::Soak => "soak",
            Self::Scale => "scale",
        }
    }
}

/// How big a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Size {
    /// Seconds, for `cargo test` (debug binaries).
    Smoke,
    /// The README demo: under two minutes on 2 cores.
    Demo,
    /// Long enough for stable numbers.
    Full,
}

/// What every scenario gets.
#[derive(Debug, Clone)]
pub struct ScenarioContext {
    /// The `tailgate` binary to start.
    pub tailgate: PathBuf,
    /// Where results (markdown, JSON, SVG) go.
    pub results_dir: PathBuf,
    /// Where configs, ports files and process logs go.
    pub work_dir: PathBuf,
    /// How big to run.
    pub size: Size,
    /// Show live progress on stderr.
    pub progress: bool,
    /// `throughput`: a peer to measure side by side (see [`throughput::PeerCommand`]).
    pub peer_cmd: Option<String>,
    /// `throughput`: compression of every target's compressed hops (passthrough in and out, agent
    /// out, gateway in: `throughput::TargetKind::hops`); `none` by default.
    pub compression: crate::grpc::Compression,
    /// `throughput`: what the replay pool is built from; synthetic by default.
    pub corpus: crate::gen::CorpusKind,
    /// `throughput`, `latency`, `soak`: the tailgate configurations to measure instead of the
    /// scenario's default (latency and soak take the first).
    pub targets: Vec<throughput::TargetKind>,
    /// `scale`: the events to run (all when empty).
    pub scale_events: Vec<scale::Event>,
    /// Keep the work directory (configs, process logs) after a successful run.
    pub keep_work: bool,
}

impl ScenarioContext {
    /// A context with a fresh work directory under the system temp dir.
    pub fn new(tailgate: PathBuf, results_dir: PathBuf, size: Size) -> std::io::Result<Self> {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let work_dir =
            std::env::temp_dir().join(format!("tailgate-perf-{}-{stamp}", std::process::id()));
        std::fs::create_dir_all(&work_dir)?;
        Ok(ScenarioContext {
            tailgate,
            results_dir,
            work_dir,
            size,
            progress: false,
            peer_cmd: None,
            compression: crate::grpc::Compression::None,
            corpus: crate::gen::CorpusKind::Synthetic,
            targets: Vec::new(),
            scale_events: Vec::new(),
            keep_work: false,
        })
    }

    /// Removes the work directory (configs, ports files, logs); kept when a run fails so the
    /// logs can be read, and when `keep_work` asks for it.
    pub fn remove_work_dir(&self) {
        if self.keep_work {
            return;
        }
        let _ = std::fs::remove_dir_all(&self.work_dir);
    }

    /// The progress printer of this context.
    pub fn ui(&self) -> Ui {
        Ui::new(self.progress)
    }
}

/// What a scenario produces.
#[derive(Debug, Clone)]
pub struct ScenarioOutput {
    /// Scenario name (result file prefix).
    pub name: String,
    /// Human-readable table(s).
    pub markdown: String,
    /// Machine-readable numbers.
    pub json: serde_json::Value,
}

/// Why a scenario could not run.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// Setting up (sinks, work directory, peer command) failed.
    #[error("{0}")]
    Setup(String),
    /// A process could not be started.
    #[error(transparent)]
    Process(#[from] process::ProcessError),
    /// The load generator could not start.
    #[error(transparent)]
    Load(#[from] crate::loadgen::LoadError),
    /// The tailgate binary could not be found or built.
    #[error(transparent)]
    Locate(#[from] binary::LocateError),
}

/// Runs a scenario by name.
pub async fn run(
    name: ScenarioName,
    ctx: &ScenarioContext,
) -> Result<ScenarioOutput, ScenarioError> {
    let ui = ctx.ui();
    let first = ctx.targets.first().cloned();
    match name {
        ScenarioName::Accuracy => {
            accuracy::run(ctx, &accuracy::AccuracyConfig::for_size(ctx.size), ui).await
        }
        ScenarioName::Throughput => {
            let mut config = throughput::ThroughputConfig::for_size(ctx.size);
            if !ctx.targets.is_empty() {
                config.targets = ctx.targets.clone();
            }
            config.corpus = ctx.corpus;
            throughput::run(ctx, &config, ui).await
        }
        ScenarioName::Latency => {
            let mut config = latency::LatencyConfig::for_size(ctx.size);
            config.target = first.unwrap_or(config.target);
            latency::run(ctx, &config, ui).await
        }
        ScenarioName::Soak => {
            let mut config = soak::SoakConfig::for_size(ctx.size);
            config.target = first.unwrap_or(config.target);
            soak::run(ctx, &config, ui).await
        }
        ScenarioName::Scale => {
            let mut config = scale::ScaleConfig::for_size(ctx.size);
            if !ctx.scale_events.is_empty() {
                config.events = ctx.scale_events.clone();
            }
            scale::run(ctx, &config, ui).await
        }
    }
}
