//! Command line: the collector's flags (`--config`, `--set`, `--feature-gates`) plus tailgate's own
//! (`--cores`, `--ports-file`), and the `validate` subcommand.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::SourceText;

/// tailgate: a thread-per-core OTLP proxy that reads OpenTelemetry Collector YAML.
#[derive(Debug, Parser)]
#[command(name = "tailgate", version, about)]
pub struct Cli {
    /// What to do; runs the pipelines when absent.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Config file (repeatable; later files merge over earlier ones). `file:PATH` and `env:VAR` also work.
    #[arg(long = "config", value_name = "FILE", global = true)]
    pub config: Vec<String>,
    /// Override a key, e.g. `--set=receivers::otlp::protocols::grpc::endpoint=127.0.0.1:0` (repeatable).
    #[arg(long = "set", value_name = "KEY::PATH=VALUE", global = true)]
    pub set: Vec<String>,
    /// Collector feature gates: accepted for compatibility and ignored with a warning.
    #[arg(long = "feature-gates", value_name = "GATES", global = true)]
    pub feature_gates: Vec<String>,
    /// Number of cores (one pinned executor each); default: the CPUs this process may use, capped by
    /// its cgroup CPU quota (a pod limited to 2 CPUs starts 2 reactors).
    #[arg(long, value_name = "N", global = true)]
    pub cores: Option<usize>,
    /// Write the bound listen addresses as JSON to this file once every listener is up.
    #[arg(long = "ports-file", value_name = "PATH", global = true)]
    pub ports_file: Option<PathBuf>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the configuration, print every problem and exit non-zero if there is any.
    Validate,
}

impl Cli {
    /// Reads the config sources named on the command line. `env` looks up `env:VAR` sources.
    pub fn read_sources(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Vec<SourceText>, String> {
        if self.config.is_empty() {
            return Err("at least one --config FILE is required".to_owned());
        }
        self.config
            .iter()
            .map(|uri| {
                if let Some(var) = uri.strip_prefix("env:") {
                    let text = env(var).ok_or_else(|| format!("--config {uri}: environment variable {var:?} is not set"))?;
                    return Ok(SourceText { name: uri.clone(), text });
                }
                if uri.starts_with("yaml:") || uri.starts_with("http:") || uri.starts_with("https:") {
                    return Err(format!("--config {uri}: only files (optionally file:PATH) and env:VAR are supported"));
                }
                let path = uri.strip_prefix("file:").unwrap_or(uri);
                std::fs::read_to_string(path)
                    .map(|text| SourceText { name: path.to_owned(), text })
                    .map_err(|e| format!("--config {path}: cannot read: {e}"))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_collector_style_flags() {
        let cli = Cli::try_parse_from([
            "tailgate",
            "--config",
            "a.yaml",
            "--config=b.yaml",
            "--set=processors::batch::timeout=1s",
            "--feature-gates=-component.UseLocalHostAsDefaultHost",
            "--cores",
            "2",
            "--ports-file",
            "/tmp/p.json",
        ])
        .unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.config, ["a.yaml", "b.yaml"]);
        assert_eq!(cli.set.len(), 1);
        assert_eq!(cli.cores, Some(2));
        let v = Cli::try_parse_from(["tailgate", "validate", "--config", "x.yaml"]).unwrap();
        assert!(matches!(v.command, Some(Command::Validate)));
        assert_eq!(v.config, ["x.yaml"]);
    }

    #[test]
    fn env_sources_and_missing_config() {
        let cli = Cli::try_parse_from(["tailgate", "--config", "env:CFG"]).unwrap();
        let s = cli
            .read_sources(&|k| (k == "CFG").then(|| "a: 1".to_owned()))
            .unwrap();
        assert_eq!(s[0].text, "a: 1");
        let none = Cli::try_parse_from(["tailgate"]).unwrap();
        assert!(none
            .read_sources(&|_| None)
            .unwrap_err()
            .contains("--config"));
    }
}
