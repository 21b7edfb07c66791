//! Processes a scenario starts: `tailgate` with a generated config, or a peer command.
//!
//! A `tailgate` process gets `--config NAME.yaml --cores 1 --ports-file NAME.ports.json` in the
//! run's work directory, its stderr goes to `NAME.log`, and it is ready once the ports file names
//! its OTLP/gRPC receiver and that port accepts a connection. Readiness is polled (every 20 ms)
//! against a deadline: a child process offers no other signal. Each process is pinned to one CPU
//! with `taskset` when available, spread round-robin, because glommio pins its executor to the
//! first CPU the process may use and every process would otherwise share CPU 0.
//! Processes are stopped with SIGTERM (the exit status is reported) and killed if they do not
//! exit in time; dropping a handle kills the process, so a failed run leaves nothing behind.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use super::procfs;

/// The ports-file key of the OTLP/gRPC receiver.
pub const GRPC_RECEIVER: &str = "receivers::otlp::grpc";

/// Why a process could not be started or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// Writing the config or creating the log failed.
    #[error("{name}: {path}: {source}")]
    Io {
        /// Process name.
        name: String,
        /// File involved.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The process could not be spawned.
    #[error("{name}: cannot start {program}: {source}")]
    Spawn {
        /// Process name.
        name: String,
        /// The program.
        program: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The process exited before it was ready.
    #[error("{name} exited during start-up ({status}); its log ({log}) ends with:\n{tail}")]
    EarlyExit {
        /// Process name.
        name: String,
        /// Its exit status.
        status: ExitStatus,
        /// Its log file.
        log: PathBuf,
        /// The last lines of the log.
        tail: String,
    },
    /// The process did not become ready in time.
    #[error("{name} was not ready after {waited:?}; its log ({log}) ends with:\n{tail}")]
    NotReady {
        /// Process name.
        name: String,
        /// How long we waited.
        waited: Duration,
        /// Its log file.
        log: PathBuf,
        /// The last lines of the log.
        tail: String,
    },
}

/// How a process ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ExitReport {
    /// Process name.
    pub name: String,
    /// Exit code (`None` when killed by a signal).
    pub code: Option<i32>,
    /// We had to kill it after SIGTERM did not stop it in time.
    pub killed: bool,
}

impl ExitReport {
    /// Exited by itself with code 0.
    pub fn clean(&self) -> bool {
        self.code == Some(0) && !self.killed
    }
}

/// A child process with a name and a log file.
#[derive(Debug)]
pub struct Managed {
    name: String,
    child: Child,
    pid: u32,
    log: PathBuf,
}

/// CPUs this machine has, for spreading processes.
pub fn cpu_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn taskset_available() -> bool {
    std::process::Command::new("taskset")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Managed {
    /// Spawns `program args` (pinned to `cpu` when given and `taskset` exists) with stdout and
    /// stderr going to `dir/NAME.log`.
    pub fn spawn(
        name: &str,
        program: &Path,
        args: &[String],
        dir: &Path,
        cpu: Option<usize>,
    ) -> Result<Managed, ProcessError> {
        let log = dir.join(format!("{name}.log"));
        let io_err = |source| ProcessError::Io {
            name: name.into(),
            path: log.clone(),
            source,
        };
        let out = std::fs::File::create(&log).map_err(io_err)?;
        let err = out.try_clone().map_err(io_err)?;
        let mut cmd = match cpu.filter(|_| taskset_available()) {
            Some(cpu) => {
                let mut c = Command::new("taskset");
                c.arg("-c").arg(cpu.to_string()).arg(program);
                c
            }
            None => Command::new(program),
        };
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true);
        let child = cmd.spawn().map_err(|source| ProcessError::Spawn {
            name: name.into(),
            program: program.display().to_string(),
            source,
        })?;
        // taskset execs the program, so the pid is the program's.
        let pid = child.id().unwrap_or(0);
        Ok(Managed {
            name: name.into(),
            child,
            pid,
            log,
        })
    }

    /// The process name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// CPU time used so far (user + system, all threads).
    pub fn cpu_time(&self) -> Option<Duration> {
        procfs::cpu_time(self.pid)
    }

    /// Resident memory now.
    pub fn rss_bytes(&self) -> Option<u64> {
        procfs::rss_bytes(self.pid)
    }

    /// The last lines of its log.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log, 12)
    }

    /// Err if the process has already exited.
    fn check_alive(&mut self) -> Result<(), ProcessError> {
        match self.child.try_wait() {
            Ok(Some(status)) => Err(ProcessError::EarlyExit {
                name: self.name.clone(),
                status,
                log: self.log.clone(),
                tail: self.log_tail(),
            }),
            _ => Ok(()),
        }
    }

    fn not_ready(&self, waited: Duration) -> ProcessError {
        ProcessError::NotReady {
            name: self.name.clone(),
            waited,
            log: self.log.clone(),
            tail: self.log_tail(),
        }
    }

    /// Waits until `addr` accepts a TCP connection (or the process dies or `deadline` passes).
    pub async fn wait_for_port(
        &mut self,
        addr: SocketAddr,
        deadline: Duration,
    ) -> Result<(), ProcessError> {
        let started = Instant::now();
        loop {
            self.check_alive()?;
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return Ok(());
            }
            if started.elapsed() > deadline {
                return Err(self.not_ready(started.elapsed()));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends SIGTERM and waits up to `deadline` for the exit; kills it after that.
    pub async fn stop(mut self, deadline: Duration) -> ExitReport {
        let pid = nix::unistd::Pid::from_raw(self.pid as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let (status, killed) = match tokio::time::timeout(deadline, self.child.wait()).await {
            Ok(status) => (status.ok(), false),
            Err(_) => {
                let _ = self.child.kill().await;
                (self.child.wait().await.ok(), true)
            }
        };
        ExitReport {
            name: self.name,
            code: status.and_then(|s| s.code()),
            killed,
        }
    }
}

fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A running `tailgate` process and the ports it bound.
#[derive(Debug)]
pub struct Tailgate {
    process: Managed,
    ports: BTreeMap<String, SocketAddr>,
}

impl Tailgate {
    /// Writes `config` to `dir/NAME.yaml`, starts `bin` on one core and waits (up to `deadline`)
    /// until its OTLP/gRPC receiver accepts connections.
    pub async fn start(
        bin: &Path,
        dir: &Path,
        name: &str,
        config: &serde_json::Value,
        cpu: Option<usize>,
        deadline: Duration,
    ) -> Result<Tailgate, ProcessError> {
        let config_path = dir.join(format!("{name}.yaml"));
        let ports_path = dir.join(format!("{name}.ports.json"));
        let io_err = |path: &Path, source| ProcessError::Io {
            name: name.into(),
            path: path.to_path_buf(),
            source,
        };
        let text = serde_json::to_string_pretty(config).unwrap_or_default();
        std::fs::write(&config_path, text).map_err(|e| io_err(&config_path, e))?;
        let _ = std::fs::remove_file(&ports_path);
        let args = vec![
            "--config".to_string(),
            config_path.display().to_string(),
            "--cores".to_string(),
            "1".to_string(),
            "--ports-file".to_string(),
            ports_path.display().to_string(),
        ];
        let mut process = Managed::spawn(name, bin, &args, dir, cpu)?;
        let started = Instant::now();
        let ports = loop {
            process.check_alive()?;
            if let Some(ports) = read_ports(&ports_path).filter(|p| p.contains_key(GRPC_RECEIVER)) {
                break ports;
            }
            if started.elapsed() > deadline {
                return Err(process.not_ready(started.elapsed()));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let grpc = ports[GRPC_RECEIVER];
        process
            .wait_for_port(grpc, deadline.saturating_sub(started.elapsed()))
            .await?;
        Ok(Tailgate { process, ports })
    }

    /// Runs `bin validate` on `config` (written to `dir/NAME.yaml`): Ok, or tailgate's message
    /// (e.g. a component this build does not implement yet).
    pub fn validate(
        bin: &Path,
        dir: &Path,
        name: &str,
        config: &serde_json::Value,
    ) -> Result<(), String> {
        let path = dir.join(format!("{name}.yaml"));
        let text = serde_json::to_string_pretty(config).unwrap_or_default();
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        let out = std::process::Command::new(bin)
            .arg("validate")
            .arg("--config")
            .arg(&path)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    }

    /// The OTLP/gRPC receiver's address.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.ports[GRPC_RECEIVER]
    }

    /// Every bound address by ports-file key.
    pub fn ports(&self) -> &BTreeMap<String, SocketAddr> {
        &self.ports
    }

    /// The process.
    pub fn process(&self) -> &Managed {
        &self.process
    }

    /// Stops it (SIGTERM, then kill after `deadline`).
    pub async fn stop(self, deadline: Duration) -> ExitReport {
        self.process.stop(deadline).await
    }
}

/// Reads a ports file (`{"key": "ip:port"}`); `None` while it is absent or unreadable.
pub fn read_ports(path: &Path) -> Option<BTreeMap<String, SocketAddr>> {
    let text = std::fs::read_to_string(path).ok()?;
    let raw: BTreeMap<String, String> = serde_json::from_str(&text).ok()?;
    raw.into_iter()
        .map(|(k, v)| v.parse().ok().map(|a| (k, a)))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ports_file_is_parsed() {
        let dir = std::env::temp_dir().join(format!("tailgate-perf-ports-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("p.json");
        assert!(read_ports(&p).is_none());
        std::fs::write(
            &p,
            r#"{"receivers::otlp::grpc": "127.0.0.1:4317", "service::telemetry::metrics": "127.0.0.1:8888"}"#,
        )
        .unwrap();
        let ports = read_ports(&p).unwrap();
        assert_eq!(ports[GRPC_RECEIVER], "127.0.0.1:4317".parse().unwrap());
        std::fs::write(&p, "{\"a\": \"not an address\"}").unwrap();
        assert!(read_ports(&p).is_none());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn a_process_that_exits_at_once_is_reported_with_its_log() {
        let dir = std::env::temp_dir().join(format!("tailgate-perf-proc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let args = vec!["-c".to_string(), "echo boom >&2; exit 3".to_string()];
        let mut p = Managed::spawn("sh", Path::new("sh"), &args, &dir, None).unwrap();
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let err = p
            .wait_for_port(addr, Duration::from_secs(20))
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("exited during start-up"), "{text}");
        assert!(text.contains("boom"), "{text}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn stop_sends_sigterm_and_reports_the_exit() {
        let dir = std::env::temp_dir().join(format!("tailgate-perf-stop-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let args = vec!["30".to_string()];
        let p = Managed::spawn("sleep", Path::new("sleep"), &args, &dir, None).unwrap();
        assert!(p.cpu_time().is_some());
        let report = p.stop(Duration::from_secs(20)).await;
        // SIGTERM ended it (no exit code: terminated by the signal), no kill was needed.
        assert_eq!((report.code, report.killed), (None, false), "{report:?}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
