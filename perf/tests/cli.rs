//! The binary's subcommands, run as processes: sink + loadgen + check chained through files.
#![allow(clippy::unwrap_used, missing_docs)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_tailgate-perf");

#[test]
fn a_closed_stdout_is_not_a_panic() {
    // `tailgate-perf check ... | head -1`: the reader goes away; the command still finishes its
    // work (results files) and exits 0 instead of panicking on EPIPE.
    let dir = std::env::temp_dir().join(format!("tailgate-perf-pipe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = dir.join("m.tgm");
    let obs = dir.join("o.tgo");
    let entries: Vec<_> = (0..50u8)
        .map(|i| tailgate_perf::manifest::ManifestEntry {
            trace_id: [i; 16],
            spans: 1,
            error: i % 2 == 0,
            slow: false,
        })
        .collect();
    let mut w = tailgate_perf::manifest::ManifestWriter::create(&manifest).unwrap();
    for e in &entries {
        w.push(e).unwrap();
    }
    w.finish().unwrap();
    tailgate_perf::observations::write_file(&obs, &[]).unwrap();
    let mut child = Command::new(BIN)
        .args(["check", "--manifest"])
        .arg(&manifest)
        .arg("--observations")
        .arg(&obs)
        .arg("--results")
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.status.success(), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
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
