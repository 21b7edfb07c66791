//! Executors: how many cores to run, and one pinned glommio executor thread per core.

use std::future::Future;

use glommio::{LocalExecutorBuilder, Placement};

/// The CPUs this process may run on (its affinity mask), in order.
pub fn usable_cpus() -> Vec<usize> {
    core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .collect()
}

/// Executors to start without `--cores`: the CPUs this process may run on (its affinity mask), capped
/// by its CPU quota. In a pod with `cpu: "1"` on a 64-core node the affinity mask still lists 64 CPUs,
/// but the cgroup's `cpu.max` quota allows one; std's `available_parallelism` reads that quota (cgroup
/// v1 and v2), so one reactor starts instead of 64 that would be throttled.
pub fn default_cores(affinity: usize) -> usize {
    let quota = std::thread::available_parallelism().map_or(affinity, |n| n.get());
    if affinity == 0 {
        quota
    } else {
        affinity.min(quota)
    }
}

/// Starts a thread named `tailgate-core-{core}` running one glommio executor (pinned to `cpu` when
/// given) that runs `body` to completion. `on_error` is called on that thread with a message when
/// the executor cannot be made (io_uring refused, memlock too low).
pub fn spawn_pinned<F, Fut>(
    core: usize,
    cpu: Option<usize>,
    body: F,
    on_error: impl FnOnce(String) + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<()>>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    std::thread::Builder::new()
        .name(format!("tailgate-core-{core}"))
        .spawn(move || {
            let placement = cpu.map_or(Placement::Unbound, Placement::Fixed);
            match LocalExecutorBuilder::new(placement)
                .name(&format!("core-{core}"))
                .make()
            {
                Ok(executor) => executor.run(body()),
                Err(e) => on_error(super::memlock::explain_executor_error(&e)),
            }
        })
}
