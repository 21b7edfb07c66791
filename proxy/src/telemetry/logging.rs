//! Process logging through `tracing`, at the level `service.telemetry.logs.level` names.

/// Installs the stderr subscriber. `RUST_LOG` overrides the configured level when set.
pub fn init(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    // A second init (tests) is harmless, so the error is ignored on purpose.
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}
