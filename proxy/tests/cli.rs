//! The binary's command line: validate, version, help, bad flags.
#![allow(clippy::unwrap_used)]

use std::process::Command;

fn tailgate(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tailgate"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn validate_accepts_the_reference_configs() {
    for name in [
        "agent-config.yaml",
        "gateway-config.yaml",
        "gateway-spanmetrics-config.yaml",
    ] {
        let (code, out, err) = tailgate(&["validate", "--config", &fixture(name)]);
        assert_eq!(code, 0, "{name}: {err}");
        assert!(out.contains("configuration is valid"), "{name}: {out}");
    }
}

#[test]
fn validate_accepts_a_good_config_with_set_overrides() {
    let dir = std::env::temp_dir().join(format!("tailgate-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ok.yaml");
    std::fs::write(&path, "receivers: {otlp: {protocols: {grpc: }}}\nexporters: {nop: }\nservice: {pipelines: {traces: {receivers: [otlp], exporters: [nop]}}}\n").unwrap();
    let p = path.to_str().unwrap();
    let (code, out, err) = tailgate(&[
        "validate",
        &format!("--config={p}"),
        "--set=receivers::otlp::protocols::grpc::endpoint=127.0.0.1:0",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("valid"), "{out}");
    let (code, _, err) = tailgate(&[
        "validate",
        "--config",
        p,
        "--set=processors::batch::timeout=soon",
    ]);
    assert_ne!(code, 0);
    assert!(
        err.contains("--set: processors.batch.timeout: invalid duration \"soon\""),
        "{err}"
    );
}

#[test]
fn version_help_and_missing_config() {
    let (code, out, _) = tailgate(&["--version"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("tailgate "), "{out}");
    let (code, out, _) = tailgate(&["--help"]);
    assert_eq!(code, 0);
    for flag in [
        "--config",
        "--set",
        "--feature-gates",
        "--cores",
        "--ports-file",
        "validate",
    ] {
        assert!(out.contains(flag), "{flag} missing from help:\n{out}");
    }
    let (code, _, err) = tailgate(&[]);
    assert_eq!(code, 2);
    assert!(err.contains("--config"), "{err}");
}
