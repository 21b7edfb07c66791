//! The collector's process self-metrics (`otelcol_process_*`), filled from mimalloc and `/proc`.
//!
//! tailgate has no Go runtime: the `runtime_*` series report the global allocator (mimalloc)
//! instead; docs/proxy.md maps each one. Everything is read at scrape time, nothing on the data path.
//!
//! One of the two `unsafe` exceptions in `proxy` (the other is `runtime::io::Unzeroed`; both are
//! recorded in docs/decisions.md): two FFI calls into mimalloc (no pointers kept, SAFETY notes on
//! each), checked by the unit test below and tests/process_metrics.rs.
#![allow(unsafe_code)]

use std::fmt::Write as _;

/// One reading of the allocator and the process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcessReading {
    /// Milliseconds since the allocator initialised (process start).
    pub elapsed_ms: u64,
    /// User plus system CPU time in milliseconds.
    pub cpu_ms: u64,
    /// Resident set size from `/proc/self/statm` (0 when unreadable).
    pub rss: u64,
    /// Memory mimalloc currently has committed (its heap, free pages not yet purged included).
    pub heap_committed: u64,
    /// The most mimalloc ever had committed at once.
    pub heap_peak_committed: u64,
}

/// Reads mimalloc's process info and the RSS.
pub fn read() -> ProcessReading {
    let (mut elapsed, mut user, mut sys) = (0usize, 0usize, 0usize);
    let (mut rss, mut peak_rss, mut commit, mut peak_commit, mut faults) =
        (0usize, 0usize, 0usize, 0usize, 0usize);
    // SAFETY: mi_process_info only writes the eight out-parameters, all valid for writes.
    unsafe {
        libmimalloc_sys::mi_process_info(
            &mut elapsed,
            &mut user,
            &mut sys,
            &mut rss,
            &mut peak_rss,
            &mut commit,
            &mut peak_commit,
            &mut faults,
        );
    }
    ProcessReading {
        elapsed_ms: elapsed as u64,
        cpu_ms: (user + sys) as u64,
        rss: resident_bytes().unwrap_or(0),
        heap_committed: commit as u64,
        heap_peak_committed: peak_commit as u64,
    }
}

/// Resident set size of this process from `/proc/self/statm`.
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Asks mimalloc to free and purge what it can now (the analogue of the collector's forced GC).
pub fn collect_allocator() {
    // SAFETY: mi_collect takes no pointers; it is thread safe.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

/// Appends the `otelcol_process_*` families in Prometheus text (the v0.115.0 collector's names:
/// counters carry `_total`, no unit suffixes).
pub fn render(out: &mut String, r: &ProcessReading) {
    let families: [(&str, &str, &str, String); 6] = [
        (
            "otelcol_process_cpu_seconds_total",
            "counter",
            "Total CPU user and system time in seconds",
            secs(r.cpu_ms),
        ),
        (
            "otelcol_process_memory_rss",
            "gauge",
            "Total physical memory (resident set size)",
            r.rss.to_string(),
        ),
        (
            "otelcol_process_runtime_heap_alloc_bytes",
            "gauge",
            "Bytes of allocated heap objects (tailgate: memory mimalloc has committed)",
            r.heap_committed.to_string(),
        ),
        (
            "otelcol_process_runtime_total_alloc_bytes_total",
            "counter",
            "Cumulative bytes allocated for heap objects (tailgate: peak memory mimalloc committed)",
            r.heap_peak_committed.to_string(),
        ),
        (
            "otelcol_process_runtime_total_sys_memory_bytes",
            "gauge",
            "Total bytes of memory obtained from the OS (tailgate: peak memory mimalloc committed)",
            r.heap_peak_committed.to_string(),
        ),
        (
            "otelcol_process_uptime_total",
            "counter",
            "Uptime of the process",
            secs(r.elapsed_ms),
        ),
    ];
    for (name, kind, help, value) in families {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    }
}

fn secs(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reads_sane_values_and_renders_collector_names() {
        // Unit tests run without the binary's global allocator: allocate from mimalloc directly.
        // SAFETY: a plain allocation, freed below and never read.
        let p = unsafe { libmimalloc_sys::mi_malloc(4 << 20) };
        assert!(!p.is_null());
        let r = read();
        assert!(r.rss > 0);
        assert!(r.heap_committed >= 4 << 20, "{r:?}");
        assert!(r.heap_peak_committed >= r.heap_committed);
        // SAFETY: `p` came from mi_malloc and is freed once.
        unsafe { libmimalloc_sys::mi_free(p) };
        let mut out = String::new();
        render(&mut out, &r);
        assert!(out.contains("# TYPE otelcol_process_uptime_total counter\n"));
        assert!(out.contains(&format!("otelcol_process_memory_rss {}\n", r.rss)));
        assert_eq!(out.lines().filter(|l| !l.starts_with('#')).count(), 6);
        assert_eq!(secs(12_345), "12.345");
    }
}
