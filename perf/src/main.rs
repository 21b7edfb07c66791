//! `tailgate-perf`: load generator, sink, check and demo (see docs/perf.md).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use tailgate_perf::check::{self, SinkObservations};
use tailgate_perf::gen::{CorpusKind, SpanCount, TraceShape, WorkloadConfig};
use tailgate_perf::grpc::{Compression, GrpcStatus};
use tailgate_perf::loadgen::{self, LoadConfig};
use tailgate_perf::manifest::{self, ManifestWriter};
use tailgate_perf::pace::Rate;
use tailgate_perf::scenario::throughput::TargetKind;
use tailgate_perf::scenario::{self, ScenarioContext, ScenarioName, Size};
use tailgate_perf::sink::{Faults, RecordMode, Sink, SinkConfig};
use tailgate_perf::{observations, report};

#[derive(Parser, Debug)]
#[command(
    name = "tailgate-perf",
    version,
    about = "Load generator, sink and checks for OTLP trace pipelines"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Send trace-shaped OTLP/gRPC traffic and write the ground-truth manifest.
    Loadgen(LoadgenArgs),
    /// Receive OTLP (gRPC, optionally HTTP), count spans, write observations on exit.
    Sink(SinkArgs),
    /// Join a manifest with sink observations: complete / partial / missing traces by class.
    Check(CheckArgs),
    /// The README's first command: the accuracy scenario at demo size (agent + 3 gateways vs
    /// round-robin to the same 3 gateways), with live progress, ending with the comparison table.
    Demo(DemoArgs),
    /// Run an end-to-end scenario with real tailgate processes on loopback.
    Scenario(ScenarioArgs),
}

#[derive(Args, Debug)]
struct DemoArgs {
    /// No live progress.
    #[arg(long)]
    quiet: bool,
    /// Results directory (markdown + JSON).
    #[arg(long)]
    results: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct ScenarioArgs {
    /// Which scenario.
    #[arg(value_enum)]
    name: ScenarioName,
    /// How big: smoke (seconds), demo (about a minute), full.
    #[arg(long, value_enum, default_value = "demo")]
    size: Size,
    /// throughput: also measure this command, with {listen} (host:port it must receive OTLP/gRPC
    /// on), {listen_port} and {backend} (host:port to forward to) filled in; run with `sh -c`.
    #[arg(long)]
    peer_cmd: Option<String>,
    /// throughput: compression of every target's hops as the seed's configs compress them:
    /// passthrough in and out, agent out (loadbalancing), gateway in (the load): none, gzip or zstd.
    #[arg(long, default_value = "none", value_parser = parse_compression)]
    compression: Compression,
    /// throughput: the replayed requests: synthetic (~225-byte spans, the default, comparable
    /// with earlier figures) or realistic (the corpus: random IDs, varied values, large attributes).
    #[arg(long, default_value = "synthetic", value_parser = parse_corpus)]
    corpus: CorpusKind,
    /// throughput/latency/soak: tailgate configuration to measure: passthrough, agent or gateway
    /// (repeatable; default: all three for throughput, agent for latency, gateway for soak).
    #[arg(long = "target", value_parser = parse_target)]
    targets: Vec<TargetKind>,
    /// scale: run only this event (repeatable; default: all).
    #[arg(long = "event", value_enum)]
    events: Vec<scenario::scale::Event>,
    /// Keep the work directory (configs and every process's log) after a successful run.
    #[arg(long)]
    keep_work: bool,
    /// No live progress.
    #[arg(long)]
    quiet: bool,
    /// Results directory (markdown, JSON, SVG).
    #[arg(long)]
    results: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct LoadgenArgs {
    /// OTLP/gRPC endpoint, host:port. Repeat for naive round-robin over several endpoints
    /// (connection i goes to the i-th target modulo their number).
    #[arg(long = "target", default_value = "127.0.0.1:4317", num_args = 1)]
    targets: Vec<SocketAddr>,
    /// TCP connections.
    #[arg(long, default_value_t = 2)]
    connections: u32,
    /// Concurrent requests per connection.
    #[arg(long, default_value_t = 4)]
    in_flight: u32,
    /// Target spans per second, or `max` for open throttle.
    #[arg(long, default_value = "max")]
    rate: String,
    /// Stop after this long (e.g. 30s, 500ms, 2m).
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Stop after about this many spans (whole traces are finished).
    #[arg(long)]
    spans: Option<u64>,
    /// none, gzip or zstd.
    #[arg(long, default_value = "none", value_parser = parse_compression)]
    compression: Compression,
    /// Services (resources) spans are spread over.
    #[arg(long, default_value_t = 5)]
    services: u32,
    /// Spans per trace: N, MIN..MAX or geo:MEAN:MAX.
    #[arg(long, default_value = "5..15", value_parser = parse_span_count)]
    spans_per_trace: SpanCount,
    /// Attributes per span.
    #[arg(long, default_value_t = 8)]
    attributes: u32,
    /// Attribute value length in bytes (4 gives ~230-byte spans with 8 attributes).
    #[arg(long, default_value_t = 4)]
    value_len: u32,
    /// Fraction of traces with one error span.
    #[arg(long, default_value_t = 0.01)]
    error_rate: f64,
    /// Fraction of slow traces.
    #[arg(long, default_value_t = 0.01)]
    slow_rate: f64,
    /// Root duration above which a trace is slow.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    slow_threshold: Duration,
    /// Upper bound of a normal trace's duration.
    #[arg(long, default_value = "200ms", value_parser = parse_duration)]
    trace_duration: Duration,
    /// Spans per request.
    #[arg(long, default_value_t = 500)]
    spans_per_request: u32,
    /// Traces open at once whose spans are interleaved (1 = each trace sent contiguously).
    #[arg(long, default_value_t = 200)]
    interleave: u32,
    /// Build this many requests once and replay them with fresh trace IDs each round (fast;
    /// stops at a round boundary).
    #[arg(long)]
    replay_pool: Option<usize>,
    /// Seed of the traffic.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Where to write the manifest.
    #[arg(long, default_value = "manifest.tgm")]
    manifest: PathBuf,
    /// Results directory (markdown + JSON).
    #[arg(long)]
    results: Option<PathBuf>,
    /// No live progress line.
    #[arg(long)]
    quiet: bool,
}

#[derive(Args, Debug)]
struct SinkArgs {
    /// OTLP/gRPC listen address.
    #[arg(long, default_value = "127.0.0.1:4317")]
    grpc: SocketAddr,
    /// OTLP/HTTP listen address (optional).
    #[arg(long)]
    http: Option<SocketAddr>,
    /// What to keep per span: count, ids or full.
    #[arg(long, default_value = "ids", value_parser = parse_record)]
    record: RecordMode,
    /// Answer every request after this delay.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    delay: Duration,
    /// Fraction of requests to refuse.
    #[arg(long, default_value_t = 0.0)]
    fail_fraction: f64,
    /// gRPC status of refused requests (name or number).
    #[arg(long, default_value = "unavailable", value_parser = parse_status)]
    fail_status: GrpcStatus,
    /// Exit once this many spans arrived (otherwise run until Ctrl-C).
    #[arg(long)]
    expect_spans: Option<u64>,
    /// Exit after this long even if spans are missing.
    #[arg(long, value_parser = parse_duration)]
    timeout: Option<Duration>,
    /// Also exit when standard input closes (lets a script or test stop the sink cleanly).
    #[arg(long)]
    stop_on_stdin_eof: bool,
    /// Where to write the observations on exit.
    #[arg(long, default_value = "sink.tgo")]
    observations: PathBuf,
}

#[derive(Args, Debug)]
struct CheckArgs {
    /// The manifest written by loadgen.
    #[arg(long)]
    manifest: PathBuf,
    /// Observations files, one per sink.
    #[arg(long = "observations", required = true, num_args = 1..)]
    observations: Vec<PathBuf>,
    /// Results directory (markdown + JSON).
    #[arg(long)]
    results: Option<PathBuf>,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            say_err(&format!(
                "tailgate-perf: cannot start the tokio runtime: {e}"
            ));
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Loadgen(a) => loadgen_cmd(a).await,
            Command::Sink(a) => sink_cmd(a).await,
            Command::Check(a) => check_cmd(a),
            Command::Demo(a) => demo_cmd(a).await,
            Command::Scenario(a) => scenario_cmd(a).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            say_err(&format!("tailgate-perf: {e}"));
            ExitCode::FAILURE
        }
    }
}

type CmdResult = Result<(), Box<dyn std::error::Error>>;

async fn loadgen_cmd(a: LoadgenArgs) -> CmdResult {
    let rate = match a.rate.as_str() {
        "max" => Rate::Unlimited,
        r => Rate::SpansPerSecond(
            r.parse()
                .map_err(|_| format!("--rate {r:?}: want spans per second or `max`"))?,
        ),
    };
    if a.duration.is_none() && a.spans.is_none() {
        return Err("give --duration or --spans (or both)".into());
    }
    let config = LoadConfig {
        targets: a.targets.clone(),
        connections: a.connections,
        in_flight: a.in_flight,
        rate,
        duration: a.duration,
        max_spans: a.spans,
        compression: a.compression,
        timeout: Duration::from_secs(30),
        workload: WorkloadConfig {
            shape: TraceShape {
                services: a.services,
                spans_per_trace: a.spans_per_trace,
                attributes: a.attributes,
                attribute_value_len: a.value_len,
                error_rate: a.error_rate,
                slow_rate: a.slow_rate,
                slow_threshold: a.slow_threshold,
                trace_duration: a.trace_duration,
            },
            spans_per_request: a.spans_per_request,
            interleave: a.interleave,
            seed: a.seed,
        },
        replay_pool: a.replay_pool,
        corpus: CorpusKind::Synthetic,
        progress: !a.quiet,
        counters: None,
        stop: None,
    };
    let outcome = loadgen::run(config.clone()).await?;
    let mut writer = ManifestWriter::create(&a.manifest)?;
    for e in &outcome.manifest {
        writer.push(e)?;
    }
    writer.finish()?;
    let md = report::load_markdown(&outcome.summary);
    say(&format!(
        "{md}\nmanifest: {} ({} traces)",
        a.manifest.display(),
        outcome.manifest.len()
    ));
    let json = serde_json::json!({ "summary": outcome.summary, "workload": config.workload, "targets": config.targets.iter().map(ToString::to_string).collect::<Vec<_>>() });
    let dir = a.results.unwrap_or_else(report::default_results_dir);
    let (md_path, _) = report::write_results(&dir, "loadgen", &md, &json)?;
    say(&format!("results: {}", md_path.display()));
    Ok(())
}

async fn sink_cmd(a: SinkArgs) -> CmdResult {
    let sink = Sink::start(SinkConfig {
        grpc_addr: a.grpc,
        http_addr: a.http,
        record: a.record,
        faults: Faults {
            delay: a.delay,
            fail_fraction: a.fail_fraction,
            fail_status: a.fail_status,
        },
        ..SinkConfig::default()
    })
    .await?;
    say_err(&format!("sink: OTLP/gRPC on {}", sink.grpc_addr()));
    if let Some(http) = sink.http_addr() {
        say_err(&format!("sink: OTLP/HTTP on http://{http}/v1/traces"));
    }
    let timeout = a.timeout.unwrap_or(Duration::MAX);
    let wait = async {
        match a.expect_spans {
            Some(n) => {
                let _ = sink.wait_for_spans(n, timeout).await;
            }
            None => {
                let _ = tokio::time::timeout(timeout, std::future::pending::<()>()).await;
            }
        }
    };
    let stdin_closed = async {
        if a.stop_on_stdin_eof {
            let mut sink_buf = Vec::new();
            let _ =
                tokio::io::AsyncReadExt::read_to_end(&mut tokio::io::stdin(), &mut sink_buf).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        _ = wait => {}
        _ = stdin_closed => {}
        _ = terminated() => say_err("sink: interrupted"),
    }
    let seen = sink.take();
    observations::write_file(&a.observations, &seen.keys)?;
    say(&serde_json::to_string_pretty(&seen.stats)?);
    say_err(&format!(
        "sink: {} span keys written to {}",
        seen.keys.len(),
        a.observations.display()
    ));
    sink.shutdown().await;
    Ok(())
}

/// Ctrl-C or SIGTERM.
async fn terminated() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

fn check_cmd(a: CheckArgs) -> CmdResult {
    let manifest =
        manifest::read_file(&a.manifest).map_err(|e| format!("{}: {e}", a.manifest.display()))?;
    let mut sinks = Vec::new();
    for path in &a.observations {
        let keys = observations::read_file(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let name = path
            .file_stem()
            .map_or("sink".into(), |s| s.to_string_lossy().into_owned());
        sinks.push(SinkObservations { name, keys });
    }
    let r = check::check(&manifest, &sinks);
    let md = report::check_markdown(&r);
    say(&md);
    let dir = a.results.unwrap_or_else(report::default_results_dir);
    let (md_path, _) = report::write_results(&dir, "check", &md, &serde_json::to_value(&r)?)?;
    say(&format!("results: {}", md_path.display()));
    Ok(())
}

async fn scenario_cmd(a: ScenarioArgs) -> CmdResult {
    let tailgate = locate()?;
    let results = a.results.unwrap_or_else(report::default_results_dir);
    let mut ctx = ScenarioContext::new(tailgate, results, a.size)?;
    ctx.progress = !a.quiet;
    ctx.peer_cmd = a.peer_cmd;
    ctx.targets = a.targets;
    ctx.compression = a.compression;
    ctx.corpus = a.corpus;
    ctx.scale_events = a.events;
    ctx.keep_work = a.keep_work;
    if ctx.keep_work {
        say(&format!("work files: {}", ctx.work_dir.display()));
    }
    let started = std::time::Instant::now();
    let out = scenario::run(a.name, &ctx).await?;
    finish_scenario(&ctx, &out, started.elapsed())
}

async fn demo_cmd(a: DemoArgs) -> CmdResult {
    let started = std::time::Instant::now();
    let tailgate = locate()?;
    let results = a.results.unwrap_or_else(report::default_results_dir);
    let mut ctx = ScenarioContext::new(tailgate, results, Size::Demo)?;
    ctx.progress = !a.quiet;
    ctx.ui().note(format!(
        "tailgate-perf demo: the same traffic twice into 3 tail-sampling gateways (keep errors, slow > 1 s, 10% of the rest):\n  1. through a tailgate agent that routes every span by trace ID\n  2. round-robin, as a plain load balancer would\n(tailgate: {}; work files: {})",
        ctx.tailgate.display(),
        ctx.work_dir.display()
    ));
    let out = scenario::run(ScenarioName::Accuracy, &ctx).await?;
    finish_scenario(&ctx, &out, started.elapsed())?;
    say("With round-robin, a trace's spans land on several gateways; each decides on the part it holds,\nso error and slow traces arrive in pieces. Routing by trace ID keeps every trace on one gateway.");
    Ok(())
}

fn locate() -> Result<PathBuf, Box<dyn std::error::Error>> {
    scenario::binary::locate_tailgate(scenario::binary::Fallback::Build)?
        .ok_or_else(|| "no tailgate binary".into())
}

fn finish_scenario(
    ctx: &ScenarioContext,
    out: &scenario::ScenarioOutput,
    took: Duration,
) -> CmdResult {
    say(&format!("\n{}", out.markdown));
    let (md_path, _) =
        report::write_results(&ctx.results_dir, &out.name, &out.markdown, &out.json)?;
    say(&format!(
        "results: {} (+ .json); wall time {:.0} s",
        md_path.display(),
        took.as_secs_f64()
    ));
    ctx.remove_work_dir();
    Ok(())
}

/// Prints to stdout, ignoring a closed pipe (`tailgate-perf check ... | head`): the command's
/// work (files, exit status) must not depend on whether someone still reads its output.
fn say(text: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

/// Prints to stderr, ignoring a closed pipe (see [`say`]).
fn say_err(text: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

// === Argument parsers ===

fn parse_duration(s: &str) -> Result<Duration, String> {
    let err = || format!("{s:?}: want a duration like 500ms, 30s, 2m");
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((s, "s"), |i| s.split_at(i));
    let n: f64 = num.parse().map_err(|_| err())?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(err()),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| err())
}

fn parse_corpus(s: &str) -> Result<CorpusKind, String> {
    CorpusKind::parse(s).ok_or_else(|| format!("{s:?}: want synthetic or realistic"))
}

fn parse_compression(s: &str) -> Result<Compression, String> {
    Compression::parse(s).ok_or_else(|| format!("{s:?}: want none, gzip or zstd"))
}

fn parse_span_count(s: &str) -> Result<SpanCount, String> {
    SpanCount::parse(s)
        .ok_or_else(|| format!("{s:?}: want N, MIN..MAX or geo:MEAN:MAX (all at least 1)"))
}

fn parse_status(s: &str) -> Result<GrpcStatus, String> {
    GrpcStatus::parse(s)
        .ok_or_else(|| format!("{s:?}: want a gRPC status name (unavailable) or number"))
}

fn parse_target(s: &str) -> Result<TargetKind, String> {
    TargetKind::parse(s).ok_or_else(|| format!("{s:?}: want passthrough, agent or gateway"))
}

fn parse_record(s: &str) -> Result<RecordMode, String> {
    match s {
        "count" => Ok(RecordMode::Count),
        "ids" => Ok(RecordMode::Ids),
        "full" => Ok(RecordMode::Full),
        _ => Err(format!("{s:?}: want count, ids or full")),
    }
}
