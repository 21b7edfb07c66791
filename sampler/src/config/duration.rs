//! Go `time.ParseDuration` syntax (`30s`, `1m30s`, `500ms`, `1.5h`), as the collector's config uses.
//! The `tailgate` binary's config reads its durations with this same type.

use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// A duration written in Go syntax, or as an integer number of nanoseconds (as mapstructure
/// accepts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct GoDuration(pub Duration);

/// Parses Go duration syntax. Negative durations are rejected (no sampler or proxy setting takes one).
pub fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    let s = s.strip_prefix('+').unwrap_or(s);
    if s.starts_with('-') {
        return Err(format!("negative duration {text:?} is not allowed"));
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err("empty duration; use Go syntax such as 30s, 1m30s or 500ms".to_string());
    }
    let mut total: f64 = 0.0;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(format!("invalid duration {text:?}: expected a number"));
        }
        let number: f64 = rest[..num_len]
            .parse()
            .map_err(|_| format!("invalid duration {text:?}: bad number"))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit_ns = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => {
                return Err(format!(
                    "invalid duration {text:?}: missing unit (ns, us, ms, s, m, h)"
                ))
            }
            other => return Err(format!("invalid duration {text:?}: unknown unit {other:?}")),
        };
        rest = &rest[unit_len..];
        total += number * unit_ns;
    }
    if !total.is_finite() || total > u64::MAX as f64 {
        return Err(format!("invalid duration {text:?}: out of range"));
    }
    Ok(Duration::from_nanos(total.round() as u64))
}

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = GoDuration;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a duration such as 30s, 1m30s or 500ms")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<GoDuration, E> {
                parse_go_duration(v).map(GoDuration).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<GoDuration, E> {
                Ok(GoDuration(Duration::from_nanos(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<GoDuration, E> {
                u64::try_from(v)
                    .map(|n| GoDuration(Duration::from_nanos(n)))
                    .map_err(|_| E::custom("negative duration is not allowed"))
            }
        }
        deserializer.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_forms() {
        let ok = |s: &str, ns: u64| {
            assert_eq!(parse_go_duration(s), Ok(Duration::from_nanos(ns)), "{s}")
        };
        ok("30s", 30_000_000_000);
        ok("1m30s", 90_000_000_000);
        ok("500ms", 500_000_000);
        ok("1.5h", 5_400_000_000_000);
        ok("0", 0);
        ok("10us", 10_000);
        ok("10µs", 10_000);
        ok("1h2m3s4ms5us6ns", 3_723_004_005_006);
        ok("200ms", 200_000_000);
        ok("3ns", 3);
    }

    #[test]
    fn rejects_bad_forms() {
        for bad in ["", "30", "s", "1x", "-1s", "1..5s", "ms5", "1s5", ".s"] {
            assert!(parse_go_duration(bad).is_err(), "{bad}");
        }
    }
}
