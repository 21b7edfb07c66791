//! The binary's subcommands, run as processes: sink + loadgen + check chained through files.
#![allow(clippy::unwrap_used, missing_docs)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_tailgate-perf");

#[test]
fn demo_is_a_clear_placeholder() {
    let out = Command::new(BIN).arg("demo").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("PLACEHOLDER"));
}

#[test]
fn scenarios_say_they_cannot_run_yet() {
    let out = Command::new(BIN)
        .args(["scenario", "accuracy"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot run yet"));
}

#[test]
fn sink_loadgen_check_chain() {
    let dir = std::env::temp_dir().join(format!("tailgate-perf-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let obs = dir.join("g0.tgo");
    let manifest = dir.join("run.tgm");
    let mut sink = Command::new(BIN)
        .args([
            "sink",
            "--grpc",
            "127.0.0.1:0",
            "--timeout",
            "60s",
            "--stop-on-stdin-eof",
        ])
        .arg("--observations")
        .arg(&obs)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // The sink prints its bound address first; read it instead of guessing a port.
    let mut lines = BufReader::new(sink.stderr.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let addr = first.rsplit(' ').next().unwrap().to_string();
    assert!(first.starts_with("sink: OTLP/gRPC on"), "{first}");

    let load = Command::new(BIN)
        .args([
            "loadgen",
            "--quiet",
            "--spans",
            "2000",
            "--spans-per-request",
            "100",
            "--target",
            &addr,
        ])
        .arg("--manifest")
        .arg(&manifest)
        .arg("--results")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        load.status.success(),
        "{}",
        String::from_utf8_lossy(&load.stderr)
    );
    // Every request was answered, so the sink has recorded everything: stop it by closing stdin.
    drop(sink.stdin.take());
    assert!(sink.wait().unwrap().success());

    let check = Command::new(BIN)
        .args(["check", "--manifest"])
        .arg(&manifest)
        .arg("--observations")
        .arg(&obs)
        .arg("--results")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let table = String::from_utf8_lossy(&check.stdout);
    let all = table.lines().find(|l| l.starts_with("| all |")).unwrap();
    let cells: Vec<&str> = all.split('|').map(str::trim).collect();
    // | all | traces | complete | partial | missing | ...
    assert_eq!(cells[3], cells[2], "every trace complete: {all}");
    assert_eq!(cells[4], "0");
    let written = std::fs::read_dir(&dir).unwrap().count();
    assert!(written >= 6, "manifest, observations, 2 × (md + json)");
    std::fs::remove_dir_all(&dir).unwrap();
}
