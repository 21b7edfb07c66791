//! The OpenMetrics text exposition (`enable_open_metrics: true`, served when the scrape's `Accept`
//! names `application/openmetrics-text`), written as the collector's client_golang encoder writes
//! it, with exemplars: counters carry their last exemplar, each histogram bucket the last exemplar
//! whose value falls in it (first bound ≥ value, else `+Inf`), labels `span_id` and `trace_id` in
//! lowercase hex, value and timestamp (seconds) in Go's float formatting. Exponential histograms
//! (native histograms there) show none in text: client_golang puts their exemplars in the native
//! histogram's own list, which only the protobuf exposition carries.

use std::fmt::Write as _;

use super::sample::{label_text, Sample, Value};
use crate::metrics_data::Exemplar;

/// The content type of the answer (OpenMetrics 1.0.0).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Whether an `Accept` header asks for OpenMetrics (any version the collector serves).
pub fn accepted(accept: &str) -> bool {
    accept.contains("application/openmetrics-text")
}

/// Writes `samples` (ordered by family) in the OpenMetrics text format, ending with `# EOF`.
pub(super) fn encode(samples: &[Sample], send_timestamps: bool) -> String {
    let mut out = String::new();
    let mut family = "";
    for (name, labels, value, time_ms, exemplars) in samples {
        let ts = if send_timestamps {
            format!(" {}", go_float(*time_ms as f64 / 1000.0))
        } else {
            String::new()
        };
        match value {
            Value::Counter(v) => {
                // The family is named without `_total`; the sample always has it.
                let base = name.strip_suffix("_total").unwrap_or(name);
                type_line(&mut out, &mut family, base, "counter");
                let l = label_text(labels, None);
                let e = exemplar_text(exemplars.last());
                let _ = writeln!(out, "{base}_total{l} {}{ts}{e}", go_float(*v as f64));
            }
            Value::Histogram {
                bounds,
                counts,
                sum,
                count,
            } => {
                type_line(&mut out, &mut family, name, "histogram");
                let per_bucket = by_bucket(bounds, counts.len(), exemplars);
                let mut cumulative = 0;
                for (i, c) in counts.iter().enumerate() {
                    cumulative += c;
                    let le = bounds.get(i).map_or("+Inf".to_owned(), |b| go_float(*b));
                    let l = label_text(labels, Some(&le));
                    let e = exemplar_text(per_bucket[i]);
                    let _ = writeln!(out, "{name}_bucket{l} {cumulative}{ts}{e}");
                }
                let l = label_text(labels, None);
                let _ = writeln!(out, "{name}_sum{l} {}{ts}", go_float(*sum));
                let _ = writeln!(out, "{name}_count{l} {count}{ts}");
            }
            Value::Exponential(h) => {
                // A native histogram without classic buckets: only `+Inf`, without exemplars.
                type_line(&mut out, &mut family, name, "histogram");
                let count = h.count();
                let l = label_text(labels, Some("+Inf"));
                let _ = writeln!(out, "{name}_bucket{l} {count}{ts}");
                let l = label_text(labels, None);
                let _ = writeln!(out, "{name}_sum{l} {}{ts}", go_float(h.sum()));
                let _ = writeln!(out, "{name}_count{l} {count}{ts}");
            }
        }
    }
    out.push_str("# EOF\n");
    out
}

fn type_line<'a>(out: &mut String, family: &mut &'a str, name: &'a str, kind: &str) {
    if name != *family {
        let _ = writeln!(out, "# TYPE {name} {kind}");
        *family = name;
    }
}

/// The exemplar each of `n` buckets shows: the last one whose value is at most the bucket's
/// upper bound and above the previous one (client_golang's `NewMetricWithExemplars`).
pub(super) fn by_bucket<'a>(
    bounds: &[f64],
    n: usize,
    exemplars: &'a [Exemplar],
) -> Vec<Option<&'a Exemplar>> {
    let mut out = vec![None; n.max(1)];
    let last = out.len() - 1;
    for e in exemplars {
        let i = bounds.partition_point(|b| *b < e.value).min(last);
        out[i] = Some(e);
    }
    out
}

fn exemplar_text(e: Option<&Exemplar>) -> String {
    let Some(e) = e else {
        return String::new();
    };
    let time = go_float(e.time_unix_nano as f64 / 1e9);
    format!(
        " # {{span_id=\"{}\",trace_id=\"{}\"}} {} {time}",
        hex(&e.span_id),
        hex(&e.trace_id),
        go_float(e.value)
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// client_golang's `writeOpenMetricsFloat`: Go's `strconv.FormatFloat(f, 'g', -1, 64)` with `.0`
/// added to integers (`5.0`, `1e+06`, `+Inf`).
pub fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    let mut s = go_g(f);
    if !s.contains(['e', '.']) {
        s.push_str(".0");
    }
    s
}

/// Go's `'g'` format at the shortest precision: scientific when the decimal exponent is below
/// -4 or at least 6 (`1e+06`, `1.7e+09`), otherwise plain (`0.0001`, `123456`).
fn go_g(f: f64) -> String {
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.to_owned();
    }
    // Rust's `{:e}` and Go both print the shortest digits that read back to `f`.
    let sci = format!("{f:e}");
    let Some((mantissa, exp)) = sci.split_once('e') else {
        return sci;
    };
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..6).contains(&exp) {
        return format!("{f}");
    }
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exp.unsigned_abs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_are_written_as_go_writes_them() {
        let cases = [
            (5.0, "5.0"),
            (0.0, "0.0"),
            (1.0, "1.0"),
            (42.5, "42.5"),
            (700.0, "700.0"),
            (15_000.0, "15000.0"),
            (123_456.0, "123456.0"),
            (1e6, "1e+06"),
            (0.002, "0.002"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1_700_000_000.123_456_7, "1.7000000001234567e+09"),
            (f64::INFINITY, "+Inf"),
        ];
        for (f, want) in cases {
            assert_eq!(go_float(f), want, "{f}");
        }
    }

    #[test]
    fn exemplars_go_to_the_first_bucket_at_or_above_their_value_last_one_wins() {
        let e = |v: f64, id: u8| Exemplar {
            trace_id: [id; 16],
            span_id: [id; 8],
            value: v,
            time_unix_nano: 1_700_000_000_500_000_000,
        };
        let list = [e(10.0, 1), e(5.0, 2), e(50.0, 3), e(5000.0, 4)];
        let got: Vec<Option<u8>> = by_bucket(&[10.0, 100.0], 3, &list)
            .iter()
            .map(|x| x.map(|e| e.trace_id[0]))
            .collect();
        assert_eq!(got, vec![Some(2), Some(3), Some(4)]);
        assert_eq!(
            exemplar_text(Some(&list[0])),
            " # {span_id=\"0101010101010101\",trace_id=\"01010101010101010101010101010101\"} 10.0 1.7000000005e+09"
        );
    }
}
