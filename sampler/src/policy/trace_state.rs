//! `trace_state`: a key of the W3C `tracestate` header has one of the listed values.

use std::collections::HashSet;

/// Most list members a valid tracestate may have (W3C).
const MAX_MEMBERS: usize = 32;

/// The configured key and values.
#[derive(Debug, Clone)]
pub struct TraceStateFilter {
    key: String,
    values: HashSet<String>,
}

impl TraceStateFilter {
    /// As the collector, a value whose `key=value` member would exceed 256 characters is ignored.
    pub fn new(key: &str, values: &[String]) -> Self {
        TraceStateFilter {
            key: key.to_string(),
            values: values
                .iter()
                .filter(|v| key.len() + v.len() < 256)
                .cloned()
                .collect(),
        }
    }

    /// Does this raw tracestate match? An unparsable tracestate matches nothing; an absent key
    /// reads as "" (which matches only if "" is listed), as the collector's `TraceState.Get`.
    pub fn matches(&self, raw: &str) -> bool {
        match get(raw, &self.key) {
            Ok(value) => self.values.contains(value),
            Err(()) => false,
        }
    }
}

/// Parses a W3C tracestate and returns the value of `key` ("" if absent).
fn get<'a>(raw: &'a str, key: &str) -> Result<&'a str, ()> {
    let mut found = "";
    let mut members = 0;
    for member in raw.split(',') {
        let member = member.trim_matches(|c| c == ' ' || c == '\t');
        if member.is_empty() {
            continue;
        }
        members += 1;
        if members > MAX_MEMBERS {
            return Err(());
        }
        let (k, v) = member.split_once('=').ok_or(())?;
        if !valid_key(k) || !valid_value(v) {
            return Err(());
        }
        if k == key && found.is_empty() {
            found = v;
        }
    }
    Ok(found)
}

fn valid_key(k: &str) -> bool {
    let simple = |s: &str, max: usize| {
        !s.is_empty()
            && s.len() <= max
            && s.as_bytes()[0].is_ascii_lowercase() | s.as_bytes()[0].is_ascii_digit()
            && s.bytes().all(|b| {
                b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || matches!(b, b'_' | b'-' | b'*' | b'/')
            })
    };
    match k.split_once('@') {
        None => simple(k, 256),
        Some((tenant, system)) => simple(tenant, 241) && simple(system, 14),
    }
}

fn valid_value(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 256
        && v.bytes()
            .all(|b| (0x20..=0x7e).contains(&b) && b != b',' && b != b'=')
        && !v.ends_with(' ')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_members() {
        assert_eq!(get("a=1,b=2", "b"), Ok("2"));
        assert_eq!(get("a=1, b=2 ", "b"), Ok("2"));
        assert_eq!(get("a=1", "b"), Ok(""));
        assert_eq!(get("t@sys=x", "t@sys"), Ok("x"));
        assert_eq!(get("A=1", "A"), Err(()));
        assert_eq!(get("a", "a"), Err(()));
        assert_eq!(get("", "a"), Ok(""));
    }

    #[test]
    fn filter_matches_listed_values() {
        let f = TraceStateFilter::new("key3", &["value1".to_string(), "value2".to_string()]);
        assert!(f.matches("key3=value1"));
        assert!(f.matches("x=y,key3=value2"));
        assert!(!f.matches("key3=value3"));
        assert!(!f.matches("key3=value1,="));
        let long = "v".repeat(300);
        assert!(
            !TraceStateFilter::new("k", std::slice::from_ref(&long)).matches(&format!("k={long}"))
        );
    }
}
