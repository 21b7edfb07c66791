//! The memory available to the process, for `limit_percentage`: the collector's order
//! (`internal/memorylimiter/iruntime.TotalMemory`): the cgroup v2 limit, else the cgroup v1 limit,
//! else the host's `MemTotal`.
//!
//! Every path is read under a root directory (`/` in production) so tests build a fake tree.
//! Like the collector, the limit is read where a container sees its own cgroup: `memory.max` at
//! the cgroup v2 mount point, `memory/memory.limit_in_bytes` under the v1 one (the collector finds
//! v1 through `/proc/self/mountinfo`; containers mount it at `/sys/fs/cgroup/memory`).

use std::path::Path;

/// cgroup v2: the container's memory limit (`max` when none).
const CGROUP_V2_MAX: &str = "sys/fs/cgroup/memory.max";

/// cgroup v1: the container's memory limit (a huge number when none).
const CGROUP_V1_LIMIT: &str = "sys/fs/cgroup/memory/memory.limit_in_bytes";

/// The host's memory (`MemTotal:` line, in kB).
const MEMINFO: &str = "proc/meminfo";

/// A v1 limit at or above this means "no limit". The kernel shows an unset limit as the largest
/// page multiple below 2^63 (9223372036854771712 with 4 KiB pages, the collector's constant;
/// 9223372036854710272 with 64 KiB pages, which the collector's exact comparison misses), and no
/// machine has 4 EiB.
const V1_UNLIMITED_FLOOR: u64 = 1 << 62;

/// Where the total came from (logged at start-up so an operator can tell a cgroup limit from the host's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// cgroup v2 `memory.max`.
    CgroupV2,
    /// cgroup v1 `memory.limit_in_bytes`.
    CgroupV1,
    /// `/proc/meminfo` `MemTotal` (no cgroup limit set or readable).
    Host,
}

/// Memory available to the process, in bytes, and where that figure came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TotalMemory {
    /// Bytes.
    pub bytes: u64,
    /// Which file gave it.
    pub source: Source,
}

/// What a cgroup limit file says.
#[derive(Debug, PartialEq, Eq)]
enum Limit {
    /// A limit in bytes.
    Bytes(u64),
    /// The file exists and says there is no limit (or cannot be parsed: then the host's total,
    /// with a warning, as the collector would fail to start there).
    Unlimited,
}

/// The total memory under `root`: cgroup v2, else v1, else host; `None` when none is readable.
/// A cgroup v2 file decides alone (as the collector: on a v2 system v1 is not consulted).
pub fn total_memory(root: &Path) -> Option<TotalMemory> {
    let cgroup = match read_v2(root) {
        Some(limit) => Some((limit, Source::CgroupV2)),
        None => read_v1(root).map(|limit| (limit, Source::CgroupV1)),
    };
    if let Some((Limit::Bytes(bytes), source)) = cgroup {
        return Some(TotalMemory { bytes, source });
    }
    host_total(root).map(|bytes| TotalMemory {
        bytes,
        source: Source::Host,
    })
}

/// `memory.max`: `max` or bytes; `None` when the file is absent.
fn read_v2(root: &Path) -> Option<Limit> {
    let path = root.join(CGROUP_V2_MAX);
    let text = std::fs::read_to_string(&path).ok()?;
    let text = text.trim();
    if text == "max" {
        return Some(Limit::Unlimited);
    }
    Some(match text.parse::<u64>() {
        Ok(bytes) if bytes > 0 => Limit::Bytes(bytes),
        _ => unreadable(&path, text),
    })
}

/// `memory.limit_in_bytes`: bytes, the huge "unlimited" value, or -1; `None` when absent.
fn read_v1(root: &Path) -> Option<Limit> {
    let path = root.join(CGROUP_V1_LIMIT);
    let text = std::fs::read_to_string(&path).ok()?;
    let text = text.trim();
    Some(match text.parse::<i64>() {
        // -1 is how the limit is written to unset it; the collector treats <= 0 as unset too.
        Ok(v) => match u64::try_from(v) {
            Ok(bytes) if bytes > 0 && bytes < V1_UNLIMITED_FLOOR => Limit::Bytes(bytes),
            _ => Limit::Unlimited,
        },
        Err(_) => unreadable(&path, text),
    })
}

fn unreadable(path: &Path, text: &str) -> Limit {
    tracing::warn!(
        "memory_limiter: {} holds {text:?}, not a limit; using the host's memory",
        path.display()
    );
    Limit::Unlimited
}

/// `MemTotal` from `/proc/meminfo`, in bytes.
fn host_total(root: &Path) -> Option<u64> {
    let info = std::fs::read_to_string(root.join(MEMINFO)).ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::path::PathBuf;

    use super::*;

    const GIB: u64 = 1 << 30;

    /// A fresh fake root holding `files` (path under the root, content).
    fn tree(name: &str, files: &[(&str, &str)]) -> PathBuf {
        let root =
            std::env::temp_dir().join(format!("tailgate-memlimit-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for (path, text) in files {
            let p = root.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        std::fs::create_dir_all(&root).unwrap();
        root
    }

    fn total(name: &str, files: &[(&str, &str)]) -> Option<TotalMemory> {
        let root = tree(name, files);
        let t = total_memory(&root);
        std::fs::remove_dir_all(root).unwrap();
        t
    }

    const HOST: (&str, &str) = (
        MEMINFO,
        "MemTotal:       16384000 kB\nMemFree:         1000 kB\n",
    );
    const HOST_BYTES: u64 = 16_384_000 * 1024;

    fn host() -> Option<TotalMemory> {
        Some(TotalMemory {
            bytes: HOST_BYTES,
            source: Source::Host,
        })
    }

    #[test]
    fn cgroup_v2_limit_then_v1_then_host() {
        let v2 = total("v2", &[(CGROUP_V2_MAX, "2147483648\n"), HOST]);
        assert_eq!(
            v2,
            Some(TotalMemory {
                bytes: 2 * GIB,
                source: Source::CgroupV2
            })
        );
        let v1 = total("v1", &[(CGROUP_V1_LIMIT, "713031680\n"), HOST]);
        assert_eq!(
            v1,
            Some(TotalMemory {
                bytes: 680 << 20,
                source: Source::CgroupV1
            })
        );
        // Both present (a hybrid mount): v2 decides, as in the collector.
        let both = total(
            "both",
            &[
                (CGROUP_V2_MAX, "1073741824\n"),
                (CGROUP_V1_LIMIT, "713031680\n"),
                HOST,
            ],
        );
        assert_eq!(
            both.map(|t| (t.bytes, t.source)),
            Some((GIB, Source::CgroupV2))
        );
        assert_eq!(total("host", &[HOST]), host());
    }

    #[test]
    fn unlimited_cgroups_fall_back_to_the_host() {
        assert_eq!(total("v2max", &[(CGROUP_V2_MAX, "max\n"), HOST]), host());
        // The v1 "unlimited" values with 4 KiB and 64 KiB pages, and an explicit -1.
        for (i, v) in ["9223372036854771712", "9223372036854710272", "-1"]
            .iter()
            .enumerate()
        {
            let t = total(&format!("v1unl{i}"), &[(CGROUP_V1_LIMIT, v), HOST]);
            assert_eq!(t, host(), "{v}");
        }
        // Garbage is not a limit (warned), and a v2 "max" does not consult v1.
        assert_eq!(total("v2bad", &[(CGROUP_V2_MAX, "lots\n"), HOST]), host());
        assert_eq!(
            total(
                "v2maxv1",
                &[
                    (CGROUP_V2_MAX, "max\n"),
                    (CGROUP_V1_LIMIT, "713031680\n"),
                    HOST
                ]
            ),
            host()
        );
    }

    #[test]
    fn nothing_readable_is_none() {
        assert_eq!(total("missing", &[]), None);
        assert_eq!(total("nomemtotal", &[(MEMINFO, "MemFree: 1 kB\n")]), None);
        // A cgroup limit needs no meminfo.
        assert!(total("v1only", &[(CGROUP_V1_LIMIT, "4096")]).is_some());
    }
}
