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
    /// Resident set size from `/proc/self/status` `VmRSS` (0 when unreadable).
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

/// Resident set size of this process: `VmRSS` from `/proc/self/status`.
pub fn resident_bytes() -> Option<u64> {
    resident_bytes_in(std::path::Path::new("/proc/self"))
}

/// [`resident_bytes`] of the `/proc/<pid>` directory `proc_dir` (tests pass a fake one).
///
/// `VmRSS` is in kB whatever the page size; `statm` counts pages, and taking a page as 4 KiB
/// reads a 64 KiB-page kernel (arm64) 16 times too low, so memory_limiter would never fire there.
pub fn resident_bytes_in(proc_dir: &std::path::Path) -> Option<u64> {
    let status = std::fs::read_to_string(proc_dir.join("status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
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

    /// A process on a 64 KiB-page kernel (arm64): 100 resident pages are 6400 kB. Reading pages
    /// and assuming 4 KiB would report 16 times too little, and memory_limiter would never fire.
    #[test]
    fn rss_does_not_assume_the_page_size() {
        let dir = std::env::temp_dir().join(format!("tailgate-rss-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("statm"), "150 100 20 10 0 80 0\n").unwrap();
        std::fs::write(
            dir.join("status"),
            "Name:\ttailgate\nVmHWM:\t    7000 kB\nVmRSS:\t    6400 kB\nThreads:\t4\n",
        )
        .unwrap();
        let rss = resident_bytes_in(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(rss, Some(100 * 64 * 1024));
        // This process: the same figure as the kernel's own kB count, on any page size.
        assert!(resident_bytes().unwrap() > 0);
    }
}
