//! The service (the collector's name for it): turns a validated [`Config`] into running pipelines
//! on every core, starts them all or none, and drains them on SIGTERM/SIGINT.
//!
//! Start-up order: check RLIMIT_MEMLOCK, start what the process runs once (memory_limiter
//! checkers, admin endpoints, metrics connectors, resolvers, TLS, core meshes: [`shared`]), start
//! core 0 (which binds the configured addresses; port 0 picks a port), then the other cores on the
//! ports core 0 got. Every core then builds its pipelines ([`build`]) and reports; only when every
//! core built every component do listeners start accepting and `--ports-file` get written. A
//! failure anywhere stops every core and the process exits non-zero naming the component's key
//! path ([`StartError`]). On a stop request each core stops accepting, lets open connections
//! finish, and drains its stages ([`crate::pipeline::Drain`]) within a deadline.
//!
//! # Layout
//! - [`bind`]: the receivers' listeners.
//! - [`shared`]: what every core reads, built once before the cores start.
//! - [`core`]: the body of one core's executor: bind, build, accept, drain.
//! - [`build`]: one core's pipelines from the config (one factory `match` per component kind).
//! - [`error`]: typed start-up errors.

pub mod bind;
pub mod build;
pub mod core;
pub mod error;
pub mod shared;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

use self::bind::Bind;
use self::core::Report;
pub use self::error::StartError;
use self::shared::Shared;
use crate::config::Config;
use crate::runtime::executor::{default_cores, spawn_pinned, usable_cpus};
use crate::runtime::{hugepages, listen, memlock, stop};
use crate::telemetry::losses::{self, Losses};

/// Options from the command line that shape the service.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Executors to start; all usable cores when `None`.
    pub cores: Option<usize>,
    /// Where to write bound addresses.
    pub ports_file: Option<PathBuf>,
}

/// Runs the configured pipelines until SIGTERM/SIGINT, then drains and returns. Fails, with every
/// core stopped and no connection accepted, when any component cannot start.
pub fn run(config: Config, options: RunOptions) -> Result<(), StartError> {
    memlock::raise_memlock().map_err(StartError::Environment)?;
    hugepages::disable_unless_configured();
    let cpus = usable_cpus();
    let cores = options
        .cores
        .unwrap_or_else(|| default_cores(cpus.len()))
        .max(1);
    if cores > cpus.len().max(1) {
        tracing::warn!(
            cores,
            usable = cpus.len(),
            "more cores requested than usable: executors will share CPUs"
        );
    }
    let shutdown = Arc::new(stop::Shutdown::default());
    let signals = stop::on_signals(shutdown.clone()).map_err(StartError::Environment)?;
    let stop_threads = Arc::new(AtomicBool::new(false));
    let started = shared::start(config, cores, shutdown.clone(), &stop_threads);
    let (shared, mut ports) = match started {
        Ok(s) => s,
        Err(e) => {
            stop_threads.store(true, Ordering::Relaxed);
            signals.close();
            return Err(e);
        }
    };
    let mut cores_running = Cores::start(&shared, cores, &cpus);
    let result = cores_running.wait_ready();
    let result = result.and_then(|first| {
        for (key, addr) in first {
            tracing::info!(%addr, "{key} listening");
            ports.insert(key, addr);
        }
        // Every component on every core is built: listeners may accept now.
        shared.go.set();
        if let Some(path) = &options.ports_file {
            listen::write_ports_file(path, &ports).map_err(|source| StartError::PortsFile {
                path: path.display().to_string(),
                source,
            })?;
        }
        Ok(())
    });
    if result.is_ok() {
        shared.healthy.store(true, Ordering::Relaxed);
        tracing::info!(cores, "tailgate is running");
        // Cores run until the stop request; the loss counters are taken then, so the exit can
        // say what the drain lost (the metrics endpoint ends with the process).
        futures_lite::future::block_on(shutdown.wait());
    } else {
        shutdown.set();
    }
    let before = Losses::take(&shared.registry);
    let unflushed = cores_running.wait_stopped();
    stop_threads.store(true, Ordering::Relaxed);
    signals.close();
    result?;
    losses::report(&shared.registry, &before);
    if unflushed > 0 {
        tracing::warn!(
            spans = unflushed,
            "shutdown deadline passed with spans still queued; counted in otelcol_exporter_send_failed_spans_total"
        );
    }
    tracing::info!("tailgate stopped");
    Ok(())
}

/// The core threads and the channel they report on.
struct Cores {
    threads: Vec<std::thread::JoinHandle<()>>,
    rx: mpsc::Receiver<Report>,
    /// Cores that have not reported `Stopped` yet.
    running: usize,
    /// Why start-up failed, when it did before all cores were spawned.
    failed: Option<StartError>,
    /// Core 0's bound addresses (the others bind the same).
    first: Vec<(String, SocketAddr)>,
}

impl Cores {
    /// Starts core 0, waits for its listeners (port 0 resolved), then starts the others on the
    /// same addresses.
    fn start(shared: &Arc<Shared>, cores: usize, cpus: &[usize]) -> Cores {
        let (tx, rx) = mpsc::channel();
        let mut this = Cores {
            threads: Vec::new(),
            rx,
            running: 0,
            failed: None,
            first: Vec::new(),
        };
        let cpu = |core: usize| (!cpus.is_empty()).then(|| cpus[core % cpus.len()]);
        if let Err(e) = this.spawn(0, cpu(0), shared, shared.binds.clone(), &tx) {
            this.failed = Some(e);
            return this;
        }
        match this.recv_bound() {
            Ok(first) => this.first = first,
            Err(e) => {
                this.failed = Some(e);
                return this;
            }
        }
        let fixed: Vec<Bind> = shared
            .binds
            .iter()
            .map(|b| {
                let addr = this
                    .first
                    .iter()
                    .find(|(k, _)| *k == b.key)
                    .map_or(b.addr, |(_, a)| *a);
                Bind { addr, ..b.clone() }
            })
            .collect();
        for core in 1..cores {
            if let Err(e) = this.spawn(core, cpu(core), shared, fixed.clone(), &tx) {
                this.failed = Some(e);
                return this;
            }
        }
        this
    }

    fn spawn(
        &mut self,
        core: usize,
        cpu: Option<usize>,
        shared: &Arc<Shared>,
        binds: Vec<Bind>,
        tx: &mpsc::Sender<Report>,
    ) -> Result<(), StartError> {
        let (body_shared, body_tx, err_tx) = (shared.clone(), tx.clone(), tx.clone());
        let thread = spawn_pinned(
            core,
            cpu,
            move || core::core_main(core, body_shared, binds, body_tx),
            move |message| {
                let _ = err_tx.send(Report::Bound(core, Err(StartError::Environment(message))));
                let _ = err_tx.send(Report::Stopped(core, 0));
            },
        )
        .map_err(|e| StartError::Environment(format!("cannot start core thread: {e}")))?;
        self.threads.push(thread);
        self.running += 1;
        Ok(())
    }

    /// Waits for core 0's bind report (a core reports `Bound` first, or stops).
    fn recv_bound(&mut self) -> Result<Vec<(String, SocketAddr)>, StartError> {
        match self.rx.recv() {
            Ok(Report::Bound(_, r)) => r,
            Ok(Report::Stopped(core, _)) => {
                self.running -= 1;
                Err(StartError::CoreLost { core })
            }
            Ok(Report::Ready(core, r)) => r.and(Err(StartError::CoreLost { core })),
            Err(_) => Err(StartError::CoreLost { core: 0 }),
        }
    }

    /// Waits until every core bound its listeners and built its pipelines; the first failure
    /// wins. Returns core 0's bound addresses.
    fn wait_ready(&mut self) -> Result<Vec<(String, SocketAddr)>, StartError> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        let mut ready = 0;
        while ready < self.running {
            match self.rx.recv() {
                Ok(Report::Bound(_, r)) => {
                    r?;
                }
                Ok(Report::Ready(_, r)) => {
                    r?;
                    ready += 1;
                }
                Ok(Report::Stopped(core, _)) => {
                    self.running -= 1;
                    return Err(StartError::CoreLost { core });
                }
                Err(_) => return Err(StartError::CoreLost { core: 0 }),
            }
        }
        Ok(std::mem::take(&mut self.first))
    }

    /// Waits for every core to stop (after a stop request); returns spans they could not flush.
    fn wait_stopped(self) -> u64 {
        let mut unflushed = 0;
        let mut running = self.running;
        while running > 0 {
            match self.rx.recv() {
                Ok(Report::Stopped(_, n)) => {
                    unflushed += n;
                    running -= 1;
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        for t in self.threads {
            let _ = t.join();
        }
        unflushed
    }
}
