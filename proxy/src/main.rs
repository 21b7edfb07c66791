//! The `tailgate` binary: parse flags, load the config, run (or just validate).

use std::process::ExitCode;

use clap::Parser;
use tailgate::cli::{Cli, Command};

/// mimalloc instead of glibc malloc: glibc keeps freed blocks (and mmaps every ~230 KB request buffer
/// afresh, paying page faults per request), so RSS overstates live data and memory_limiter would
/// refuse too early. mimalloc reuses its segments and returns idle pages to the OS.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let env = |k: &str| std::env::var(k).ok();
    let sources = match cli.read_sources(&env) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tailgate: {e}");
            return ExitCode::from(2);
        }
    };
    let config = match tailgate::config::load(&sources, &cli.set, &env) {
        Ok(c) => c,
        Err(errors) => {
            eprint!("tailgate: {errors}");
            return ExitCode::from(1);
        }
    };
    tailgate::telemetry::logging::init(&config.log_level);
    if !cli.feature_gates.is_empty() {
        tracing::warn!(gates = ?cli.feature_gates, "--feature-gates is accepted for compatibility and ignored");
    }
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    match cli.command {
        Some(Command::Validate) => {
            println!("tailgate: configuration is valid");
            ExitCode::SUCCESS
        }
        None => {
            let options = tailgate::service::RunOptions {
                cores: cli.cores,
                ports_file: cli.ports_file.clone(),
            };
            match tailgate::service::run(config, options) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e}");
                    eprintln!("tailgate: {e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}
