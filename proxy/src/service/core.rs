//! The body of one core's executor: bind the listeners, connect the core meshes, build every
//! pipeline, wait until every core has done the same, accept until told to stop, then drain.
//!
//! Everything a core builds is `Rc` and single-threaded; the only cross-core state is the
//! metrics slots (one writer each), the memory_limiter flags and the published routes.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use glommio::net::TcpListener;

use super::bind::Bind;
use super::build::{build, receiver_handler, Built};
use super::error::StartError;
use super::shared::Shared;
use crate::pipeline::Drain;
use crate::processor::tail_sampling::drain::Phase;
use crate::processor::tail_sampling::peers::Peers;
use crate::processor::tail_sampling::processor::Part;
use crate::receiver::listener;
use crate::receiver::metrics::ConnMetrics;
use crate::runtime::mesh::Mesh;
use crate::runtime::time::{self, unless};

/// What a core reports to the main thread, in this order: `Bound`, `Ready`, `Stopped` (a core
/// that fails skips ahead to `Stopped`).
#[derive(Debug)]
pub enum Report {
    /// Listeners bound (or why not).
    Bound(usize, Result<Vec<(String, SocketAddr)>, StartError>),
    /// Every component of the core built (or the first that could not be).
    Ready(usize, Result<(), StartError>),
    /// The core stopped; spans it could not flush.
    Stopped(usize, u64),
}

/// The body of one core's executor.
pub async fn core_main(
    core: usize,
    shared: Arc<Shared>,
    binds: Vec<Bind>,
    report: std::sync::mpsc::Sender<Report>,
) {
    let stopped = |unflushed| {
        let _ = report.send(Report::Stopped(core, unflushed));
    };
    let listeners = match bind_all(&binds) {
        Ok(l) => l,
        Err(e) => {
            let _ = report.send(Report::Bound(core, Err(e)));
            return stopped(0);
        }
    };
    let bound = listeners
        .iter()
        .map(|(b, l)| (b.key.clone(), l.local_addr().unwrap_or(b.addr)))
        .collect();
    let _ = report.send(Report::Bound(core, Ok(bound)));
    // Every core has been started once core 0 reported: the meshes can connect now. Pipelines
    // are built after, since tail_sampling stages hold connected channels.
    let Some(mut meshes) = unless(connect_meshes(core, &shared), shared.shutdown.wait()).await
    else {
        return stopped(0);
    };
    let built = build(core, &shared, &mut meshes);
    let started = built.and_then(|built| {
        let handlers = listeners
            .into_iter()
            .map(|(bind, listener)| {
                let next = built
                    .receivers
                    .get(&bind.receiver)
                    .cloned()
                    .ok_or_else(|| {
                        StartError::component(
                            format!("receivers.{}", bind.receiver),
                            "feeds no pipeline",
                        )
                    })?;
                let marked = built.marked.get(&bind.receiver).cloned();
                let (handler, limits) = receiver_handler(core, &shared, &bind, next, marked)?;
                Ok((bind, listener, handler, limits))
            })
            .collect::<Result<Vec<_>, StartError>>()?;
        Ok((built, handlers))
    });
    let (built, handlers) = match started {
        Ok(s) => {
            let _ = report.send(Report::Ready(core, Ok(())));
            s
        }
        Err(e) => {
            let _ = report.send(Report::Ready(core, Err(e)));
            return stopped(0);
        }
    };
    // Nothing is accepted until every core has built everything (or start-up failed elsewhere).
    let go = async {
        shared.go.wait().await;
        Some(())
    };
    if unless(go, shared.shutdown.wait()).await.is_none() {
        return stopped(0);
    }
    let Built {
        drains,
        tasks,
        receivers: _,
        marked: _,
        closed,
    } = built;
    // Kept (not detached) so shutdown can wait for their connections to end gracefully.
    let mut accepting = Vec::new();
    for (bind, listener, handler, limits) in handlers {
        let name = bind.receiver.to_string();
        let tls = shared
            .tls_servers
            .get(&bind.key)
            .cloned()
            .map(futures_rustls::TlsAcceptor::from);
        let metrics = Rc::new(ConnMetrics::register(
            &shared.registry,
            core,
            &name,
            bind.protocol.name(),
        ));
        accepting.push(glommio::spawn_local(listener::accept_loop(
            listener,
            handler,
            tls,
            limits,
            metrics,
            shared.closing.clone(),
        )));
    }
    for task in tasks {
        glommio::spawn_local(task).detach();
    }
    shared.shutdown.wait().await;
    if let Some(peers) = &shared.peers {
        membership_drain(peers).await;
    }
    shared.closing.set();
    // Open connections get GOAWAY / close and `connection_grace` to finish their requests, so
    // what they were answered OK for is in the stages that drain flushes. Requests finishing
    // later are refused (the gate), never taken after the flush. Then `drain_timeout` drains.
    let grace_over = Instant::now() + shared.connection_grace;
    let connections_closed = async {
        for listener in accepting {
            listener.await;
        }
        Some(())
    };
    if time::before(grace_over, connections_closed).await.is_none() {
        tracing::info!(
            core,
            "connection grace over with connections still open: their requests are refused from now on"
        );
    }
    closed.set(true);
    let until = Instant::now() + shared.drain_deadline;
    stopped(drain(&drains, until).await);
}

/// A gateway with membership keeps receiving while its drain phases run (each core's membership
/// tick advances them, `tail_sampling::drain`); this waits for `closing`, or for the phases'
/// failsafe deadline should the ticks have stopped.
async fn membership_drain(peers: &Peers) {
    peers.begin_drain(Instant::now());
    let deadline = peers.drain.deadline();
    while peers.drain.phase() < Phase::Closing && deadline.is_none_or(|d| Instant::now() < d) {
        glommio::timer::Timer::new(Duration::from_millis(20)).await;
    }
}

/// Binds every listener of this core.
fn bind_all(binds: &[Bind]) -> Result<Vec<(Bind, TcpListener)>, StartError> {
    binds
        .iter()
        .map(|b| {
            TcpListener::bind(b.addr)
                .map(|l| (b.clone(), l))
                .map_err(|e| StartError::listen(b.key.clone(), b.addr, e.into()))
        })
        .collect()
}

/// Drains the stages upstream first (they were built downstream first), then waits for queues to
/// empty until `until`; returns the items still held then, counted as failed by their stages.
async fn drain(drains: &[Rc<dyn Drain>], until: Instant) -> u64 {
    for d in drains.iter().rev() {
        d.flush(until).await;
    }
    while drains.iter().any(|d| d.pending() > 0) && Instant::now() < until {
        glommio::timer::Timer::new(Duration::from_millis(20)).await;
    }
    drains.iter().map(|d| d.abandon()).sum()
}

/// Connects this core's ends of every tail_sampling mesh.
async fn connect_meshes(core: usize, shared: &Shared) -> BTreeMap<String, Mesh<Part>> {
    let mut out = BTreeMap::new();
    for (key, setup) in &shared.meshes {
        if let Some(ends) = setup.take(core) {
            out.insert(key.clone(), ends.connect(setup).await);
        }
    }
    out
}
