//! What traces look like: services, spans per trace, span size, errors, slow traces.

use std::time::Duration;

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::{span, status, Span, Status};
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Distribution of the number of spans in a trace.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpanCount {
    /// Every trace has this many spans.
    Fixed(u32),
    /// Uniform in `min..=max`.
    Uniform {
        /// Smallest trace.
        min: u32,
        /// Largest trace.
        max: u32,
    },
    /// Geometric with this mean, capped at `max`: many small traces, a few big ones.
    Geometric {
        /// Mean spans per trace (at least 1).
        mean: f64,
        /// Cap.
        max: u32,
    },
}

impl SpanCount {
    /// Parses `N`, `MIN..MAX` or `geo:MEAN:MAX`.
    pub fn parse(s: &str) -> Option<SpanCount> {
        if let Some(rest) = s.strip_prefix("geo:") {
            let (mean, max) = rest.split_once(':')?;
            let (mean, max) = (mean.parse().ok()?, max.parse().ok()?);
            return (mean >= 1.0 && max >= 1).then_some(SpanCount::Geometric { mean, max });
        }
        if let Some((min, max)) = s.split_once("..") {
            let (min, max) = (min.parse().ok()?, max.parse().ok()?);
            return (1 <= min && min <= max).then_some(SpanCount::Uniform { min, max });
        }
        let n = s.parse().ok()?;
        (n >= 1).then_some(SpanCount::Fixed(n))
    }

    fn sample(self, rng: &mut ChaCha8Rng) -> u32 {
        match self {
            SpanCount::Fixed(n) => n.max(1),
            SpanCount::Uniform { min, max } => rng.gen_range(min.max(1)..=max.max(min.max(1))),
            SpanCount::Geometric { mean, max } => {
                // Number of trials until success with p = 1/mean, by inversion.
                let p = 1.0 / mean.max(1.0);
                let u: f64 = rng.gen_range(f64::EPSILON..1.0);
                let n = (u.ln() / (1.0 - p).ln()).ceil();
                let n = if n.is_finite() { n as u32 } else { 1 };
                n.clamp(1, max.max(1))
            }
        }
    }
}

/// The shape of generated traces. Defaults give ~225-byte spans with 8 attributes.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TraceShape {
    /// Number of services (one resource each) spans are spread over.
    pub services: u32,
    /// Spans per trace.
    pub spans_per_trace: SpanCount,
    /// String attributes per span.
    pub attributes: u32,
    /// Length of each attribute value; with the key this sets the span size.
    pub attribute_value_len: u32,
    /// Fraction of traces with one error span at a random position.
    pub error_rate: f64,
    /// Fraction of traces whose root lasts longer than `slow_threshold`.
    pub slow_rate: f64,
    /// A root duration above this makes a trace slow (match the gateway's latency policy).
    pub slow_threshold: Duration,
    /// Upper bound of a normal trace's root duration (kept below `slow_threshold`).
    pub trace_duration: Duration,
}

impl Default for TraceShape {
    fn default() -> Self {
        TraceShape {
            services: 5,
            spans_per_trace: SpanCount::Uniform { min: 5, max: 15 },
            attributes: 8,
            attribute_value_len: 4,
            error_rate: 0.01,
            slow_rate: 0.01,
            slow_threshold: Duration::from_millis(1000),
            trace_duration: Duration::from_millis(200),
        }
    }
}

/// One generated trace with its ground truth.
#[derive(Debug, Clone, PartialEq)]
pub struct GenTrace {
    /// Trace ID.
    pub trace_id: [u8; 16],
    /// Spans, each with the index of the service it belongs to (root first).
    pub spans: Vec<(u32, Span)>,
    /// One span has status ERROR.
    pub has_error: bool,
    /// The root lasts longer than the slow threshold.
    pub is_slow: bool,
}

const OPERATIONS: [&str; 6] = [
    "GET /api/cart",
    "POST /api/pay",
    "SELECT orders",
    "cache.get",
    "rpc.Lookup",
    "render",
];
const KEYS: [&str; 8] = [
    "http.method",
    "http.route",
    "net.peer",
    "db.system",
    "user.tier",
    "region",
    "retry",
    "code.fn",
];

/// Makes one trace with `rng`; `start_unix_nanos` is the root's start time.
pub fn make_trace(shape: &TraceShape, rng: &mut ChaCha8Rng, start_unix_nanos: u64) -> GenTrace {
    let mut trace_id = [0u8; 16];
    rng.fill(&mut trace_id[..]);
    trace_id[0] |= 1; // never the invalid all-zero ID
    let n = shape.spans_per_trace.sample(rng) as usize;
    let has_error = rng.gen_bool(shape.error_rate.clamp(0.0, 1.0));
    let is_slow = rng.gen_bool(shape.slow_rate.clamp(0.0, 1.0));
    let root_nanos = root_duration(shape, rng, is_slow);
    let error_at = rng.gen_range(0..n);
    let mut ids: Vec<[u8; 8]> = Vec::with_capacity(n);
    let mut spans = Vec::with_capacity(n);
    for i in 0..n {
        let mut span_id = [0u8; 8];
        rng.fill(&mut span_id[..]);
        span_id[0] |= 1;
        let (parent, start, end) = if i == 0 {
            (Vec::new(), start_unix_nanos, start_unix_nanos + root_nanos)
        } else {
            // Children sit inside the root's window, so the root decides the trace duration.
            let a = rng.gen_range(0..root_nanos.max(1));
            let b = rng.gen_range(a..=root_nanos);
            (
                ids[rng.gen_range(0..i)].to_vec(),
                start_unix_nanos + a,
                start_unix_nanos + b,
            )
        };
        let service = if i == 0 {
            0
        } else {
            rng.gen_range(0..shape.services.max(1))
        };
        let status = (has_error && i == error_at).then(|| Status {
            message: String::new(),
            code: status::StatusCode::Error as i32,
        });
        spans.push((
            service,
            Span {
                trace_id: trace_id.to_vec(),
                span_id: span_id.to_vec(),
                parent_span_id: parent,
                name: (*OPERATIONS.choose(rng).unwrap_or(&"op")).to_string(),
                kind: if i == 0 {
                    span::SpanKind::Server
                } else {
                    span::SpanKind::Internal
                } as i32,
                start_time_unix_nano: start,
                end_time_unix_nano: end,
                attributes: attributes(shape, rng),
                status,
                ..Default::default()
            },
        ));
        ids.push(span_id);
    }
    GenTrace {
        trace_id,
        spans,
        has_error,
        is_slow,
    }
}

fn root_duration(shape: &TraceShape, rng: &mut ChaCha8Rng, slow: bool) -> u64 {
    let threshold = shape.slow_threshold.as_nanos() as u64;
    if slow {
        rng.gen_range(threshold + threshold / 2 + 1..=threshold * 3 + 1)
    } else {
        let cap = (shape.trace_duration.as_nanos() as u64).min(threshold.saturating_sub(1));
        rng.gen_range(cap / 2..=cap)
    }
}

fn attributes(shape: &TraceShape, rng: &mut ChaCha8Rng) -> Vec<KeyValue> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..shape.attributes as usize)
        .map(|a| {
            let value: String = (0..shape.attribute_value_len)
                .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
                .collect();
            KeyValue {
                key: KEYS[a % KEYS.len()].to_string(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(value)),
                }),
            }
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use prost::Message;
    use rand::SeedableRng;

    #[test]
    fn default_spans_are_about_225_bytes() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let shape = TraceShape::default();
        let (mut bytes, mut count) = (0, 0);
        for _ in 0..200 {
            for (_, span) in make_trace(&shape, &mut rng, 1_700_000_000_000_000_000).spans {
                bytes += span.encoded_len();
                count += 1;
            }
        }
        let mean = bytes / count;
        assert!((215..=240).contains(&mean), "mean span size {mean}");
    }

    #[test]
    fn ground_truth_matches_the_spans() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let shape = TraceShape {
            error_rate: 0.5,
            slow_rate: 0.5,
            ..TraceShape::default()
        };
        for _ in 0..300 {
            let t = make_trace(&shape, &mut rng, 1_000_000_000);
            let errors = t
                .spans
                .iter()
                .filter(|(_, s)| s.status.as_ref().is_some_and(|st| st.code == 2))
                .count();
            assert_eq!(errors, usize::from(t.has_error));
            let root = &t.spans[0].1;
            let dur = root.end_time_unix_nano - root.start_time_unix_nano;
            assert_eq!(dur > shape.slow_threshold.as_nanos() as u64, t.is_slow);
            assert!(t.spans.iter().all(|(_, s)| s.trace_id == t.trace_id));
            assert!(t.spans[1..]
                .iter()
                .all(|(_, s)| s.start_time_unix_nano >= root.start_time_unix_nano
                    && s.end_time_unix_nano <= root.end_time_unix_nano));
        }
    }

    #[test]
    fn span_count_parses_and_stays_in_range() {
        assert_eq!(SpanCount::parse("7"), Some(SpanCount::Fixed(7)));
        assert_eq!(
            SpanCount::parse("2..9"),
            Some(SpanCount::Uniform { min: 2, max: 9 })
        );
        assert_eq!(
            SpanCount::parse("geo:4:50"),
            Some(SpanCount::Geometric { mean: 4.0, max: 50 })
        );
        assert_eq!(SpanCount::parse("0"), None);
        assert_eq!(SpanCount::parse("9..2"), None);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let geo = SpanCount::Geometric { mean: 4.0, max: 50 };
        let samples: Vec<u32> = (0..20_000).map(|_| geo.sample(&mut rng)).collect();
        assert!(samples.iter().all(|&n| (1..=50).contains(&n)));
        let mean = samples.iter().map(|&n| f64::from(n)).sum::<f64>() / samples.len() as f64;
        assert!((3.7..4.3).contains(&mean), "geometric mean {mean}");
    }

    #[test]
    fn same_seed_same_traces() {
        let shape = TraceShape::default();
        let a = make_trace(&shape, &mut ChaCha8Rng::seed_from_u64(9), 5);
        let b = make_trace(&shape, &mut ChaCha8Rng::seed_from_u64(9), 5);
        assert_eq!(a, b);
    }
}
