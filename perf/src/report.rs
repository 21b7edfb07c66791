//! Results as a markdown table (for people and the README) and JSON (for scripts), written under
//! `perf/results/` (git-ignored).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::check::CheckReport;
use crate::loadgen::LoadSummary;

/// The default results directory: `perf/results` in the source tree.
pub fn default_results_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("results")
}

/// Writes `<dir>/<name>-<unix seconds>.md` and `.json`; returns both paths.
pub fn write_results(
    dir: &Path,
    name: &str,
    markdown: &str,
    json: &serde_json::Value,
) -> std::io::Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir)?;
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let md = dir.join(format!("{name}-{stamp}.md"));
    let js = dir.join(format!("{name}-{stamp}.json"));
    std::fs::write(&md, markdown)?;
    std::fs::write(&js, serde_json::to_string_pretty(json).unwrap_or_default())?;
    Ok((md, js))
}

/// The check report as markdown: a class table, then a sink table.
pub fn check_markdown(r: &CheckReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| class | traces | complete | partial | missing | duplicated | kept | kept whole |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|");
    for c in &r.classes {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {:.1}% | {:.1}% |",
            c.class,
            c.traces,
            c.complete,
            c.partial,
            c.missing,
            c.duplicated,
            100.0 * c.kept_fraction,
            100.0 * c.whole_fraction
        );
    }
    if !r.sinks.is_empty() {
        let _ = writeln!(s, "\n| sink | spans | traces | share |");
        let _ = writeln!(s, "|---|---:|---:|---:|");
        for k in &r.sinks {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.1}% |",
                k.name,
                k.spans,
                k.traces,
                100.0 * k.span_share
            );
        }
        let _ = writeln!(
            s,
            "\nsplit traces (seen at more than one sink): {}; balance max/mean: {:.3}; unknown traces: {} ({} spans)",
            r.split_traces, r.balance_max_over_mean, r.unknown_traces, r.unknown_spans
        );
    }
    s
}

/// The load summary as a markdown table.
pub fn load_markdown(l: &LoadSummary) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "| spans ok | spans failed | requests ok | refused | lost | traces | seconds | spans/s | p50 µs | p99 µs | max µs |");
    let _ = writeln!(
        s,
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let lat = |k: &str| l.latency_us.get(k).map_or("-".to_string(), u64::to_string);
    let _ = writeln!(
        s,
        "| {} | {} | {} | {} | {} | {} | {:.2} | {:.0} | {} | {} | {} |",
        l.spans_ok,
        l.spans_failed,
        l.requests_ok,
        l.requests_refused,
        l.requests_lost,
        l.traces,
        l.elapsed_secs,
        l.spans_per_sec,
        lat("p50"),
        lat("p99"),
        lat("max")
    );
    if l.pacer_lag_secs > 0.0 {
        let _ = writeln!(
            s,
            "\nthe sender fell behind the target rate by {:.2} s in total",
            l.pacer_lag_secs
        );
    }
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::check::{check, SinkObservations};
    use crate::manifest::ManifestEntry;

    #[test]
    fn markdown_has_a_row_per_class_and_sink() {
        let manifest = [ManifestEntry {
            trace_id: [1; 16],
            spans: 1,
            error: true,
            slow: false,
        }];
        let r = check(
            &manifest,
            &[SinkObservations {
                name: "g0".into(),
                keys: vec![],
            }],
        );
        let md = check_markdown(&r);
        for needle in [
            "| error | 1 | 0 | 0 | 1 |",
            "| slow | 0 |",
            "| all | 1 |",
            "| g0 | 0 | 0 |",
        ] {
            assert!(md.contains(needle), "{needle} missing in\n{md}");
        }
    }

    #[test]
    fn results_are_written_as_markdown_and_json() {
        let dir = std::env::temp_dir().join(format!("tailgate-perf-report-{}", std::process::id()));
        let (md, js) = write_results(&dir, "t", "# hi\n", &serde_json::json!({"a": 1})).unwrap();
        assert_eq!(std::fs::read_to_string(md).unwrap(), "# hi\n");
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(js).unwrap()).unwrap();
        assert_eq!(v["a"], 1);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
