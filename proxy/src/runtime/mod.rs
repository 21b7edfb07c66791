//! The thread-per-core runtime's primitives: one pinned glommio executor per core, a re-armable
//! alarm, io adaptors, the cross-core mesh, stop latches and listen addresses. Nothing here knows
//! a component: [`crate::service`] composes components on these.
//!
//! # Layout
//! - [`executor`]: how many cores to run and a pinned executor thread per core.
//! - [`alarm`]: a per-core timer re-armed to the next instant that has work.
//! - [`io`]: glommio streams as futures/tokio io without zeroing buffers.
//! - [`mesh`]: bounded channels between every ordered pair of cores.
//! - [`stop`]: latches (the stop request, the start-up go-ahead) and the signal thread.
//! - [`time`]: bounding a future by a deadline or a stop signal.
//! - [`listen`]: listen addresses, one OS-chosen port shared by all cores, the ports file.
//! - [`memlock`], [`hugepages`]: process settings checked before executors start.

pub mod alarm;
pub mod executor;
pub mod hugepages;
pub mod io;
pub mod listen;
pub mod memlock;
pub mod mesh;
pub mod stop;
pub mod time;

/// Runs `f` to completion on a fresh glommio executor on this thread (unit tests of per-core code).
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) fn on_test_executor(f: impl std::future::Future<Output = ()> + 'static) {
    glommio::LocalExecutorBuilder::default()
        .make()
        .unwrap()
        .run(f);
}
