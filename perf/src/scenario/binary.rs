//! Finding the `tailgate` binary a scenario starts.
//!
//! In order: `$TAILGATE_BIN`; a `tailgate` next to the running executable (or one directory up,
//! which is where cargo puts binaries when the running executable is a test in `deps/`); else
//! build it with cargo from this source tree, saying so on stderr, and use the executable cargo
//! reports. The build uses the profile this executable was built with (release for
//! `cargo run --release`, debug for `cargo test`), so it shares that profile's artifacts.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Why the binary could not be found or built.
#[derive(Debug, thiserror::Error)]
pub enum LocateError {
    /// `$TAILGATE_BIN` names a file that does not exist.
    #[error("TAILGATE_BIN={0} does not exist")]
    EnvMissing(PathBuf),
    /// cargo could not be run or the build failed.
    #[error("cannot build tailgate (`{command}` in {dir}): {detail}")]
    Build {
        /// The command line.
        command: String,
        /// Where it ran.
        dir: PathBuf,
        /// What went wrong.
        detail: String,
    },
}

/// How to look for the binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// Build it with cargo when not found.
    Build,
    /// Give up when not found (returns `Ok(None)`).
    NoBuild,
}

/// Finds the `tailgate` binary, building it if allowed and needed.
pub fn locate_tailgate(fallback: Fallback) -> Result<Option<PathBuf>, LocateError> {
    if let Some(p) = std::env::var_os("TAILGATE_BIN") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(Some(p))
        } else {
            Err(LocateError::EnvMissing(p))
        };
    }
    if let Some(p) = next_to_current_exe() {
        return Ok(Some(p));
    }
    match fallback {
        Fallback::NoBuild => Ok(None),
        Fallback::Build => build_tailgate().map(Some),
    }
}

fn next_to_current_exe() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    let found = [Some(dir), dir.parent()]
        .into_iter()
        .flatten()
        .map(|d| d.join("tailgate"))
        .find(|p| p.is_file());
    found
}

/// The workspace root of this source tree (perf's parent), when it is still there.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn build_tailgate() -> Result<PathBuf, LocateError> {
    let dir = workspace_root();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut args = vec![
        "build",
        "-p",
        "tailgate",
        "--message-format=json-render-diagnostics",
    ];
    if !cfg!(debug_assertions) {
        args.push("--release");
    }
    let command = format!("cargo {}", args.join(" "));
    let err = |detail: String| LocateError::Build {
        command: command.clone(),
        dir: dir.clone(),
        detail,
    };
    eprintln!("tailgate-perf: no tailgate binary found (TAILGATE_BIN, next to this executable); building it: {command}");
    let out = Command::new(cargo)
        .args(&args)
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| err(e.to_string()))?;
    if !out.status.success() {
        return Err(err(format!("cargo exited with {}", out.status)));
    }
    executable_from_messages(&String::from_utf8_lossy(&out.stdout))
        .ok_or_else(|| err("cargo reported no `tailgate` executable".into()))
}

/// Picks the `tailgate` executable out of cargo's JSON messages.
fn executable_from_messages(stdout: &str) -> Option<PathBuf> {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "tailgate")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executable_is_read_from_cargo_messages() {
        let msgs = r#"{"reason":"compiler-artifact","target":{"name":"tailgate_proto"},"executable":null}
{"reason":"compiler-artifact","target":{"name":"tailgate"},"executable":"/t/release/tailgate"}
{"reason":"build-finished","success":true}"#;
        assert_eq!(
            executable_from_messages(msgs),
            Some(PathBuf::from("/t/release/tailgate"))
        );
        assert_eq!(executable_from_messages("not json\n"), None);
    }
}
