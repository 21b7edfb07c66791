//! Go `time.ParseDuration` syntax (`200ms`, `1m30s`, `1.5h`), which collector configs use.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// A duration read from config in Go syntax. Bare integers are nanoseconds, as Go's config decoder
/// treats them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct GoDuration(pub Duration);

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Text(String),
        }
        match Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom("expected a duration such as \"200ms\", \"5s\" or \"1m30s\"")
        })? {
            Raw::Int(ns) => Ok(GoDuration(Duration::from_nanos(ns))),
            Raw::Text(s) => parse_go_duration(&s)
                .map(GoDuration)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// Parses Go duration syntax: one or more `<decimal><unit>` terms, units ns, us, µs, ms, s, m, h.
/// Negative durations are rejected: no collector setting we accept means anything by them.
pub fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "invalid duration {text:?}: expected Go syntax such as \"200ms\", \"5s\" or \"1m30s\""
        )
    };
    let s = text.trim();
    let s = s.strip_prefix('+').unwrap_or(s);
    if s.starts_with('-') {
        return Err(format!("invalid duration {text:?}: must not be negative"));
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(bad());
    }
    let mut total: f64 = 0.0;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if num_len == 0 {
            return Err(bad());
        }
        let value: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per_unit = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total += value * nanos_per_unit;
    }
    if !total.is_finite() || total > u64::MAX as f64 {
        return Err(format!("invalid duration {text:?}: too large"));
    }
    Ok(Duration::from_nanos(total.round() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_forms() {
        let cases = [
            ("0", 0),
            ("200ms", 200_000_000),
            ("5s", 5_000_000_000),
            ("1m30s", 90_000_000_000),
            ("1.5h", 5_400_000_000_000),
            ("10us", 10_000),
            ("10µs", 10_000),
            ("3ns", 3),
        ];
        for (text, nanos) in cases {
            assert_eq!(
                parse_go_duration(text),
                Ok(Duration::from_nanos(nanos)),
                "{text}"
            );
        }
    }

    #[test]
    fn rejects_bad_forms() {
        for text in ["", "5", "s", "5x", "-1s", "1s5", ".s"] {
            let err = parse_go_duration(text).expect_err(text);
            assert!(err.contains("duration"), "{err}");
        }
    }
}
