//! Turning config files, `--set` flags and environment references into one YAML document.
//!
//! Mirrors the collector's confmap: files are merged in order (maps merge key by key, anything else
//! is replaced by the later file), `--set key::path=value` is merged last, then `${env:VAR}`,
//! `${VAR}` and `${env:VAR:-default}` references in string values are expanded (`$$` is a literal `$`).
//! Every key path remembers which source last set it, so problems can name the file.

use std::collections::BTreeMap;

use serde_yaml::{Mapping, Value};

use super::error::{join, ConfigErrors};

/// Where each key path came from: dotted path → file name (or `--set`).
#[derive(Debug, Clone, Default)]
pub struct Origins {
    by_path: BTreeMap<String, String>,
}

impl Origins {
    /// The source that last set `path` or its nearest recorded parent.
    pub fn file_for(&self, path: &str) -> Option<&str> {
        let mut p = path;
        loop {
            if let Some(f) = self.by_path.get(p) {
                return Some(f);
            }
            match p.rfind('.') {
                Some(i) => p = &p[..i],
                None => return None,
            }
        }
    }

    fn record(&mut self, value: &Value, path: &str, source: &str) {
        self.by_path.insert(path.to_owned(), source.to_owned());
        if let Value::Mapping(m) = value {
            for (k, v) in m {
                self.record(v, &join(path, &key_text(k)), source);
            }
        }
    }
}

/// One config source: its display name and YAML text.
#[derive(Debug, Clone)]
pub struct SourceText {
    /// Shown in error messages (the path as given on the command line).
    pub name: String,
    /// The YAML document.
    pub text: String,
}

/// The merged document and where each key came from.
#[derive(Debug, Clone)]
pub struct Merged {
    /// The merged, expanded document.
    pub root: Value,
    /// Source of every key path.
    pub origins: Origins,
    /// Non-fatal notes (unset environment variables) to log as warnings.
    pub warnings: Vec<String>,
}

/// Merges `sources` then `sets`, then expands environment references with `env`.
pub fn merge_sources(
    sources: &[SourceText],
    sets: &[String],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Merged, ConfigErrors> {
    let mut errors = ConfigErrors::default();
    let mut root = Value::Mapping(Mapping::new());
    let mut origins = Origins::default();
    for src in sources {
        match serde_yaml::from_str::<Value>(&src.text) {
            Ok(Value::Null) => {}
            Ok(doc @ Value::Mapping(_)) => {
                origins.record(&doc, "", &src.name);
                merge_into(&mut root, doc);
            }
            Ok(_) => errors.push_in_file(&src.name, "", "the document must be a mapping"),
            Err(e) => errors.push_in_file(&src.name, "", format!("invalid YAML: {e}")),
        }
    }
    for set in sets {
        match parse_set(set) {
            Ok(doc) => {
                origins.record(&doc, "", "--set");
                merge_into(&mut root, doc);
            }
            Err(e) => errors.push_in_file("--set", "", e),
        }
    }
    let mut warnings = Vec::new();
    expand_env(&mut root, "", env, &mut errors, &mut warnings, &origins);
    errors.into_result(Merged {
        root,
        origins,
        warnings,
    })
}

/// Merges `over` into `base`: maps key by key, everything else replaced.
pub fn merge_into(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(existing) => merge_into(existing, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

/// Parses `a::b::c=value` into `{a: {b: {c: value}}}`; the value is read as YAML, as the collector does.
pub fn parse_set(set: &str) -> Result<Value, String> {
    let (path, value) = set.split_once('=').ok_or_else(|| {
        format!("{set:?}: expected key::path=value, e.g. receivers::otlp::protocols::grpc::endpoint=127.0.0.1:0")
    })?;
    if path.is_empty() || path.split("::").any(str::is_empty) {
        return Err(format!(
            "{set:?}: empty key in path (separate keys with '::')"
        ));
    }
    let mut node: Value = if value.is_empty() {
        Value::Null
    } else {
        serde_yaml::from_str(value).map_err(|e| format!("{set:?}: value is not valid YAML: {e}"))?
    };
    for key in path.rsplit("::") {
        let mut m = Mapping::new();
        m.insert(Value::String(key.to_owned()), node);
        node = Value::Mapping(m);
    }
    Ok(node)
}

/// Text of a mapping key for paths and messages.
pub(crate) fn key_text(k: &Value) -> String {
    match k {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".to_owned(),
        other => format!("{other:?}"),
    }
}

fn expand_env(
    value: &mut Value,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
    errors: &mut ConfigErrors,
    warnings: &mut Vec<String>,
    origins: &Origins,
) {
    match value {
        Value::Mapping(m) => {
            for (k, v) in m.iter_mut() {
                let child = join(path, &key_text(k));
                expand_env(v, &child, env, errors, warnings, origins);
            }
        }
        Value::Sequence(seq) => {
            for (i, v) in seq.iter_mut().enumerate() {
                expand_env(v, &format!("{path}[{i}]"), env, errors, warnings, origins);
            }
        }
        Value::String(s) if s.contains('$') => match expand_str(s, env) {
            Ok(expanded) => {
                for name in expanded.unset {
                    warnings.push(format!(
                        "{path}: environment variable {name:?} is not set; using an empty string"
                    ));
                }
                *value = expanded.value;
            }
            Err(e) => {
                let file = origins.file_for(path).unwrap_or("config").to_owned();
                errors.push_in_file(&file, path, e);
            }
        },
        _ => {}
    }
}

struct Expanded {
    value: Value,
    unset: Vec<String>,
}

/// Expands references in one string. A string that is exactly one reference takes the variable's
/// value read as YAML (so `${env:PORT}` can be a number); embedded references are spliced as text.
fn expand_str(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Expanded, String> {
    let mut out = String::with_capacity(s.len());
    let mut unset = Vec::new();
    let mut rest = s;
    let mut whole_ref: Option<String> = None;
    // A string that is exactly one `${...}` keeps the variable's YAML type.
    let is_whole = s.starts_with("${") && s.find('}') == Some(s.len() - 1);
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body_start) = after.strip_prefix('{') {
            let end = body_start
                .find('}')
                .ok_or_else(|| format!("unterminated reference in {s:?}: missing '}}'"))?;
            let body = &body_start[..end];
            let (var, default) = parse_reference(body)?;
            let val = match env(var) {
                Some(v) => v,
                None => match default {
                    Some(d) => d.to_owned(),
                    None => {
                        unset.push(var.to_owned());
                        String::new()
                    }
                },
            };
            if is_whole {
                whole_ref = Some(val.clone());
            }
            out.push_str(&val);
            rest = &body_start[end + 1..];
        } else {
            // A bare `$NAME` is left as is: the collector no longer expands it.
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    let value = match whole_ref {
        Some(v) if !v.is_empty() => serde_yaml::from_str::<Value>(&v)
            .ok()
            .filter(|y| matches!(y, Value::Bool(_) | Value::Number(_) | Value::String(_)))
            .unwrap_or(Value::String(v)),
        _ => Value::String(out),
    };
    Ok(Expanded { value, unset })
}

/// Splits `env:NAME`, `NAME` or either with `:-default`.
fn parse_reference(body: &str) -> Result<(&str, Option<&str>), String> {
    let body = match body.split_once(':') {
        Some(("env", rest)) => rest,
        Some((scheme, _)) if !scheme.contains('-') && !body.starts_with(&format!("{scheme}:-")) => {
            return Err(format!(
                "unsupported reference scheme {scheme:?} in ${{{body}}}; only env is supported"
            ))
        }
        _ => body,
    };
    let (name, default) = match body.split_once(":-") {
        Some((n, d)) => (n, Some(d)),
        None => (body, None),
    };
    let valid = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if !valid {
        return Err(format!(
            "invalid environment variable name {name:?} in ${{{body}}}"
        ));
    }
    Ok((name, default))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "PORT" => Some("4317".into()),
            "HOST" => Some("10.0.0.1".into()),
            _ => None,
        }
    }

    fn src(name: &str, text: &str) -> SourceText {
        SourceText {
            name: name.into(),
            text: text.into(),
        }
    }

    #[test]
    fn later_files_merge_over_earlier() {
        let a = src("a.yaml", "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: a:1\nexporters:\n  nop:\n");
        let b = src(
            "b.yaml",
            "receivers:\n  otlp:\n    protocols:\n      http:\n        endpoint: b:2\n",
        );
        let m = merge_sources(&[a, b], &[], &env).unwrap();
        let protocols = &m.root["receivers"]["otlp"]["protocols"];
        assert_eq!(protocols["grpc"]["endpoint"], Value::from("a:1"));
        assert_eq!(protocols["http"]["endpoint"], Value::from("b:2"));
        assert_eq!(
            m.origins.file_for("receivers.otlp.protocols.http.endpoint"),
            Some("b.yaml")
        );
        assert_eq!(
            m.origins.file_for("receivers.otlp.protocols.grpc.endpoint"),
            Some("a.yaml")
        );
        assert_eq!(m.origins.file_for("exporters.nop"), Some("a.yaml"));
    }

    #[test]
    fn set_overrides_with_double_colon_paths() {
        let a = src(
            "a.yaml",
            "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: a:1\n",
        );
        let sets = vec![
            "receivers::otlp::protocols::grpc::endpoint=127.0.0.1:0".to_owned(),
            "service::pipelines::traces::exporters=[nop]".to_owned(),
        ];
        let m = merge_sources(&[a], &sets, &env).unwrap();
        assert_eq!(
            m.root["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"],
            Value::from("127.0.0.1:0")
        );
        assert_eq!(
            m.root["service"]["pipelines"]["traces"]["exporters"][0],
            Value::from("nop")
        );
        assert_eq!(
            m.origins.file_for("receivers.otlp.protocols.grpc.endpoint"),
            Some("--set")
        );
        assert!(parse_set("novalue")
            .unwrap_err()
            .contains("key::path=value"));
    }

    #[test]
    fn env_references_expand() {
        let a = src(
            "a.yaml",
            "a: ${env:HOST}:${PORT}\nb: ${env:PORT}\nc: ${env:MISSING:-dflt}\nd: $$HOME\ne: ${MISSING}\n",
        );
        let m = merge_sources(&[a], &[], &env).unwrap();
        assert_eq!(m.root["a"], Value::from("10.0.0.1:4317"));
        assert_eq!(m.root["b"], Value::from(4317));
        assert_eq!(m.root["c"], Value::from("dflt"));
        assert_eq!(m.root["d"], Value::from("$HOME"));
        assert_eq!(m.root["e"], Value::from(""));
        assert_eq!(m.warnings.len(), 1);
        assert!(m.warnings[0].contains("MISSING"));
    }

    #[test]
    fn bad_references_and_yaml_are_reported_with_file() {
        let a = src("a.yaml", "a: ${file:/etc/x}\n");
        let b = src("b.yaml", "a: [\n");
        let err = merge_sources(&[b, a], &[], &env).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("b.yaml: invalid YAML"), "{text}");
        assert!(
            text.contains("a.yaml: a: unsupported reference scheme \"file\""),
            "{text}"
        );
    }
}
