//! CPU time and resident memory of a process, from `/proc` (Linux only).
//!
//! CPU is `utime + stime` of `/proc/PID/stat` (fields 14 and 15), which covers every thread of
//! the process, in clock ticks of `USER_HZ` = 100 on every Linux architecture we run on. RSS is
//! `VmRSS` of `/proc/PID/status`.

use std::time::Duration;

/// Ticks per second of `/proc/PID/stat` times (`USER_HZ`).
const USER_HZ: u64 = 100;

/// CPU time (user + system) a process has used so far, or `None` if it cannot be read.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_cpu_ticks(&stat).map(|t| Duration::from_millis(t * 1000 / USER_HZ))
}

/// Resident set size in bytes, or `None` if it cannot be read.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_rss(&status)
}

/// utime + stime in ticks. The command name (field 2) is in parentheses and may hold spaces, so
/// fields are counted after its closing parenthesis: there utime and stime are the 12th and 13th.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let after = stat.rsplit_once(')')?.1;
    let mut f = after.split_whitespace().skip(11);
    let utime: u64 = f.next()?.parse().ok()?;
    let stime: u64 = f.next()?.parse().ok()?;
    Some(utime + stime)
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let stat =
            "4242 (tail gate) S 1 4242 4242 0 -1 4194560 500 0 0 0 250 30 0 0 20 0 3 0 100 0 0";
        assert_eq!(parse_cpu_ticks(stat), Some(280));
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }

    #[test]
    fn vm_rss_is_read_in_kilobytes() {
        let status = "Name:\ttailgate\nVmPeak:\t  9000 kB\nVmRSS:\t    1234 kB\nThreads:\t3\n";
        assert_eq!(parse_vm_rss(status), Some(1234 * 1024));
        assert_eq!(parse_vm_rss("Name: x\n"), None);
    }

    #[test]
    fn this_process_has_cpu_time_and_memory() {
        let me = std::process::id();
        assert!(cpu_time(me).is_some());
        assert!(rss_bytes(me).unwrap() > 0);
    }
}
