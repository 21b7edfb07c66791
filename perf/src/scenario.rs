//! End-to-end scenarios: each starts real `tailgate` processes on loopback with generated
//! configs, drives them with the load generator and judges the result with `check`.
//!
//! None runs yet: the `tailgate` binary is being built. The list and the [`Scenario`] trait fix
//! the shape so each can plug in without changing the CLI: a scenario gets a [`ScenarioContext`]
//! (where the binary is, where results go, how big to run) and returns markdown + JSON.

use std::path::PathBuf;

/// The scenarios the issue asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ScenarioName {
    /// Agent + 3 gateways vs naive round-robin to the same 3 gateways: error/slow traces kept whole.
    Accuracy,
    /// Spans per CPU-second for agent passthrough and gateway sampling (optionally a peer binary).
    Throughput,
    /// Added latency percentiles at 25/50/75% of the maximum rate.
    Latency,
    /// Long run with RSS sampled: memory must stay flat.
    Soak,
}

impl ScenarioName {
    /// Every scenario.
    pub const ALL: [ScenarioName; 4] =
        [Self::Accuracy, Self::Throughput, Self::Latency, Self::Soak];

    /// One line on what it shows.
    pub fn about(self) -> &'static str {
        match self {
            Self::Accuracy => "agent + 3 gateways vs round-robin: error/slow traces kept whole",
            Self::Throughput => "spans per CPU-second, agent passthrough and gateway sampling",
            Self::Latency => "added latency percentiles at 25/50/75% of max rate",
            Self::Soak => "long run, RSS sampled, memory flat",
        }
    }
}

/// What every scenario gets.
#[derive(Debug, Clone)]
pub struct ScenarioContext {
    /// The `tailgate` binary to start.
    pub tailgate: PathBuf,
    /// Where results go.
    pub results_dir: PathBuf,
    /// Small and quick (the `cargo test` smoke run) or full size.
    pub smoke: bool,
}

/// What a scenario produces.
#[derive(Debug, Clone)]
pub struct ScenarioOutput {
    /// Human-readable table(s).
    pub markdown: String,
    /// Machine-readable numbers.
    pub json: serde_json::Value,
}

/// Why a scenario could not run.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The scenario needs something that does not exist yet.
    #[error("scenario {0:?} cannot run yet: {1}")]
    NotAvailable(ScenarioName, &'static str),
}

/// One end-to-end scenario.
pub trait Scenario {
    /// Its name.
    fn name(&self) -> ScenarioName;
    /// Runs it to the end.
    fn run(
        &self,
        ctx: &ScenarioContext,
    ) -> impl std::future::Future<Output = Result<ScenarioOutput, ScenarioError>> + Send;
}

/// Runs a scenario by name. Today every scenario reports that it needs the `tailgate` binary.
pub async fn run(
    name: ScenarioName,
    _ctx: &ScenarioContext,
) -> Result<ScenarioOutput, ScenarioError> {
    Err(ScenarioError::NotAvailable(
        name,
        "the tailgate binary does not run end to end yet",
    ))
}
