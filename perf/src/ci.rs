//! What a test does when something it needs is missing (an interpreter, the `tailgate` binary).
//!
//! Outside CI a developer may lack the Python venv or a built binary: the test says loudly that it
//! did not run and passes. Under CI (`CI` set, as `.ci/run` runs) the same gap must fail the run:
//! a test that passes without running checks nothing.

/// Whether this is a CI run: `CI` set to anything but empty, `0` or `false`.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// `test` cannot run because `why`: panics under CI, else prints a loud skip notice.
///
/// Callers return right after it (outside CI).
#[track_caller]
pub fn missing_prerequisite(test: &str, why: &str) {
    assert!(
        !in_ci(),
        "{test}: {why} (CI is set: a missing prerequisite fails the test instead of skipping it)"
    );
    eprintln!("SKIPPED {test}: {why} (this would fail under CI)");
}
