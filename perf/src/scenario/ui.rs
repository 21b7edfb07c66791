//! Live progress of a scenario on stderr: one spinner line per step (indicatif), finished with the
//! step's duration. Silent when progress is off (tests, `--quiet`).

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// Progress output for one scenario run.
#[derive(Debug, Clone, Copy)]
pub struct Ui {
    enabled: bool,
}

/// One step in progress; finish it with [`Step::done`].
#[derive(Debug)]
pub struct Step {
    bar: Option<ProgressBar>,
    message: String,
    started: Instant,
}

impl Ui {
    /// Progress on stderr when `enabled`.
    pub fn new(enabled: bool) -> Self {
        Ui { enabled }
    }

    /// Whether progress is shown (the load generator's own bar follows this too).
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Starts a step with a spinner.
    pub fn step(&self, message: impl Into<String>) -> Step {
        let message = message.into();
        let bar = self.enabled.then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_message(message.clone());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Step {
            bar,
            message,
            started: Instant::now(),
        }
    }

    /// Prints a line (above any spinner).
    pub fn note(&self, line: impl AsRef<str>) {
        if self.enabled {
            eprintln!("{}", line.as_ref());
        }
    }
}

impl Step {
    /// Updates the spinner's message.
    pub fn update(&self, message: impl AsRef<str>) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!("{} {}", self.message, message.as_ref()));
        }
    }

    /// Ends the step, leaving `✓ message (seconds)` on screen; returns how long it took.
    pub fn done(self, detail: impl AsRef<str>) -> Duration {
        let took = self.started.elapsed();
        if let Some(bar) = self.bar {
            let detail = detail.as_ref();
            let sep = if detail.is_empty() { "" } else { ": " };
            bar.finish_and_clear();
            eprintln!(
                "✓ {}{sep}{detail} ({:.1} s)",
                self.message,
                took.as_secs_f64()
            );
        }
        took
    }
}
