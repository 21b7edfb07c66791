//! The collector's `otelcol_process_*` self-metrics on the real binary's metrics endpoint.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use support::Tailgate;

const CONFIG: &str = "
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
processors:
  memory_limiter:
    check_interval: 100ms
    limit_mib: 8000
    min_gc_interval_when_soft_limited: 5s
    min_gc_interval_when_hard_limited: 1s
exporters:
  otlp/sink:
    endpoint: 127.0.0.1:9
    tls:
      insecure: true
service:
  telemetry:
    metrics:
      address: 127.0.0.1:0
  pipelines:
    traces:
      receivers: [otlp]
      processors: [memory_limiter]
      exporters: [otlp/sink]
";

fn value(tg: &Tailgate, name: &str) -> f64 {
    tg.metric(&format!("{name} "))
        .unwrap_or_else(|| panic!("{name} missing from the scrape"))
}

/// `otelcol_process_cpu_seconds_total` lies between the kernel's count for the process read just
/// before and just after the scrape (10 ms ticks in `/proc`, so 20 ms of slack), once the process
/// has used a measurable amount: a series stuck at 0, or counting something else, fails.
fn cpu_seconds_match_the_kernels_count(tg: &Tailgate) {
    let pid = tg.child.id();
    // Scrapes cost the process CPU: scrape until the kernel has counted some (bounded).
    let deadline = Instant::now() + Duration::from_secs(60);
    while support::cpu_seconds(pid) < 0.05 {
        assert!(Instant::now() < deadline, "tailgate used no CPU");
        value(tg, "otelcol_process_cpu_seconds_total");
    }
    let before = support::cpu_seconds(pid);
    let cpu = value(tg, "otelcol_process_cpu_seconds_total");
    let after = support::cpu_seconds(pid);
    assert!(
        before - 0.02 <= cpu && cpu <= after + 0.02,
        "otelcol_process_cpu_seconds_total {cpu}, kernel says {before}..{after}"
    );
}

#[test]
fn process_metrics_are_exposed_with_sane_values() {
    let tg = Tailgate::start(CONFIG, &["--cores", "1"]);
    let rss = value(&tg, "otelcol_process_memory_rss");
    assert!(rss > 1e6, "rss {rss}");
    let heap = value(&tg, "otelcol_process_runtime_heap_alloc_bytes");
    assert!(heap > 0.0 && heap < 8e9, "heap {heap}");
    assert!(value(&tg, "otelcol_process_runtime_total_sys_memory_bytes") >= heap);
    assert!(value(&tg, "otelcol_process_runtime_total_alloc_bytes_total") >= heap);
    cpu_seconds_match_the_kernels_count(&tg);
    let first = value(&tg, "otelcol_process_uptime_total");
    assert!(first > 0.0 && first < 600.0, "uptime {first}");
    // Uptime grows: poll against a deadline.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = value(&tg, "otelcol_process_uptime_total");
        if now > first {
            break;
        }
        assert!(Instant::now() < deadline, "uptime stuck at {first}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = support::http_get(tg.addr("service::telemetry::metrics"), "/metrics").1;
    for (name, kind) in [
        ("otelcol_process_uptime_total", "counter"),
        ("otelcol_process_cpu_seconds_total", "counter"),
        ("otelcol_process_memory_rss", "gauge"),
        ("otelcol_process_runtime_heap_alloc_bytes", "gauge"),
    ] {
        assert!(
            text.contains(&format!("# TYPE {name} {kind}\n")),
            "{name} {kind}"
        );
    }
    assert!(tg.terminate().success());
}
