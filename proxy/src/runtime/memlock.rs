//! RLIMIT_MEMLOCK and io_uring checks done before any executor starts.

/// glommio's io_uring rings need at least this much lockable memory.
pub const MIN_MEMLOCK: u64 = 512 * 1024;

/// Raises the soft RLIMIT_MEMLOCK to the hard limit; fails with advice when still too low.
pub fn raise_memlock() -> Result<u64, String> {
    let (soft, hard) = rlimit::Resource::MEMLOCK
        .get()
        .map_err(|e| format!("cannot read RLIMIT_MEMLOCK: {e}"))?;
    if soft < hard {
        if let Err(e) = rlimit::Resource::MEMLOCK.set(hard, hard) {
            tracing::warn!("cannot raise RLIMIT_MEMLOCK soft limit from {soft} to {hard}: {e}");
        }
    }
    let (soft, _) = rlimit::Resource::MEMLOCK
        .get()
        .map_err(|e| format!("cannot read RLIMIT_MEMLOCK: {e}"))?;
    if soft < MIN_MEMLOCK {
        return Err(format!(
            "RLIMIT_MEMLOCK is {soft} bytes (hard limit {hard}); io_uring needs at least {MIN_MEMLOCK}. \
             Raise it: `ulimit -l 8192` in the shell, `LimitMEMLOCK=8M` in a systemd unit, \
             `--ulimit memlock=8388608` for docker, or the container runtime's default ulimits in Kubernetes."
        ));
    }
    Ok(soft)
}

/// Explains a failure to create an executor, which almost always means io_uring is blocked.
pub fn explain_executor_error(e: &dyn std::fmt::Display) -> String {
    let disabled = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "absent".to_owned());
    format!(
        "cannot start a glommio executor (io_uring setup failed: {e}). tailgate needs io_uring. Check: \
         kernel.io_uring_disabled (now {disabled}; must be 0, or 1 with this process in the io_uring group); \
         a seccomp profile that blocks io_uring_setup/io_uring_enter/io_uring_register (Docker's and \
         containerd's default profiles do: use deploy/'s profile or Unconfined); RLIMIT_MEMLOCK; kernel >= 5.8."
    )
}
