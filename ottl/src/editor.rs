//! Editors (the statement functions that change telemetry) and the [`Target`] and
//! [`AttributeMap`] traits they change it through.

use std::borrow::Cow;
use std::collections::HashMap;

use regex::{Captures, Regex};

use crate::error::EvalError;
use crate::expr::{sha256_hex, Expr, Pattern, Source};
use crate::path::{Entity, Path};
use crate::value::Value;

/// Write access to the telemetry a statement changes.
pub trait Target: Source {
    /// Sets the field or attribute at `path` (never a whole map). As contrib's setters do, a
    /// value of a type the field does not take is ignored (`Ok`), e.g. a string for `kind`.
    /// `set` never passes `Value::Nil` (contrib's `set` skips nil values), `Value::Map` or
    /// `Value::Slice` (opaque in this subset, so there is nothing to copy).
    fn set(&mut self, path: &Path, value: Value<'static>) -> Result<(), EvalError>;

    /// Runs `edit` on the attribute map of `entity`, then stores the result (an implementation
    /// over encoded bytes decodes before and re-encodes after, once per editor call).
    fn edit_attributes(
        &mut self,
        entity: Entity,
        edit: &mut dyn FnMut(&mut dyn AttributeMap),
    ) -> Result<(), EvalError>;
}

/// An attribute map as the map editors see it. Order is the map's order; keys are unique.
pub trait AttributeMap {
    /// Number of entries.
    fn len(&self) -> usize;

    /// True when there are no entries.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True if `key` is present.
    fn contains_key(&self, key: &str) -> bool;

    /// Keeps the entries (in order) for which `keep(key)` is true.
    fn retain(&mut self, keep: &mut dyn FnMut(&str) -> bool);

    /// For each string-valued entry in order, replaces the value with `update(key, value)`
    /// when that returns `Some`. Other value types are not passed.
    fn update_strings(&mut self, update: &mut dyn FnMut(&str, &str) -> Option<String>);

    /// Renames keys: the result is the map rebuilt in order, each entry under
    /// `rename(key).unwrap_or(key)`, where an entry whose new key is already in the rebuilt map
    /// overwrites that entry's value in place (contrib's `PutEmpty` + `CopyTo`).
    fn rename_keys(&mut self, rename: &mut dyn FnMut(&str) -> Option<String>);
}

/// A plain ordered attribute map: the reference [`AttributeMap`], usable by any caller that
/// decodes attributes into owned values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AttrVec(pub Vec<(String, Value<'static>)>);

impl AttrVec {
    /// The value under `key`, if present.
    pub fn get(&self, key: &str) -> Option<&Value<'static>> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Inserts or replaces (in place) the value under `key`.
    pub fn upsert(&mut self, key: &str, value: Value<'static>) {
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key.to_string(), value)),
        }
    }
}

impl AttributeMap for AttrVec {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    fn retain(&mut self, keep: &mut dyn FnMut(&str) -> bool) {
        self.0.retain(|(k, _)| keep(k));
    }

    fn update_strings(&mut self, update: &mut dyn FnMut(&str, &str) -> Option<String>) {
        for (k, v) in &mut self.0 {
            if let Value::Str(s) = v {
                if let Some(new) = update(k, s) {
                    *v = Value::Str(Cow::Owned(new));
                }
            }
        }
    }

    fn rename_keys(&mut self, rename: &mut dyn FnMut(&str) -> Option<String>) {
        // An index keeps this linear: the entry count comes from the network.
        let mut rebuilt: Vec<(String, Value<'static>)> = Vec::with_capacity(self.0.len());
        let mut index: HashMap<String, usize> = HashMap::with_capacity(self.0.len());
        for (k, v) in std::mem::take(&mut self.0) {
            let key = rename(&k).unwrap_or(k);
            match index.get(&key) {
                Some(&i) => rebuilt[i].1 = v,
                None => {
                    index.insert(key.clone(), rebuilt.len());
                    rebuilt.push((key, v));
                }
            }
        }
        self.0 = rebuilt;
    }
}

/// `replace_all_patterns`' `mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Key,
    Value,
}

/// How a replacement is rendered: plain (`$1` expansion), or through `SHA256` and an optional
/// `replacementFormat` (contrib's optional `function` argument).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Replacement {
    pub text: Expr,
    pub hashed: bool,
    pub format: Option<Expr>,
}

/// The supported editors, arguments bound and checked.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Editor {
    Set {
        target: Path,
        value: Expr,
    },
    DeleteKey {
        target: Entity,
        key: String,
    },
    DeleteMatchingKeys {
        target: Entity,
        pattern: Pattern,
    },
    KeepKeys {
        target: Entity,
        keys: Vec<String>,
    },
    KeepMatchingKeys {
        target: Entity,
        pattern: Pattern,
    },
    ReplacePattern {
        target: Path,
        pattern: Pattern,
        replacement: Replacement,
    },
    ReplaceAllPatterns {
        target: Entity,
        mode: Mode,
        pattern: Pattern,
        replacement: Replacement,
    },
    ReplaceMatch {
        target: Path,
        /// The glob as written (for printing) and its compiled form.
        glob_text: String,
        glob: Pattern,
        replacement: Expr,
    },
    TruncateAll {
        target: Entity,
        limit: usize,
    },
    Limit {
        target: Entity,
        limit: usize,
        priority_keys: Vec<String>,
    },
}

/// A replacement evaluated once per editor call (as contrib gets it once).
struct Rendered {
    text: String,
    hashed: bool,
    format: Option<String>,
}

impl Replacement {
    fn render<S: Source + ?Sized>(
        &self,
        src: &S,
        site: &'static str,
    ) -> Result<Rendered, EvalError> {
        Ok(Rendered {
            text: self.text.eval_string(src, site)?.into_owned(),
            hashed: self.hashed,
            format: match &self.format {
                Some(f) => Some(f.eval_string(src, site)?.into_owned()),
                None => None,
            },
        })
    }
}

impl Rendered {
    /// Replaces every match of `re` in `input`; `None` when nothing matched.
    fn apply(&self, re: &Regex, input: &str) -> Option<String> {
        if !re.is_match(input) {
            return None;
        }
        if !self.hashed {
            return Some(re.replace_all(input, self.text.as_str()).into_owned());
        }
        // contrib expands each match, hashes the expansion, formats it, and then replaces
        // every occurrence of that match's text in the whole string.
        let mut out = input.to_string();
        for caps in re.captures_iter(input) {
            let whole = caps.get(0).map_or("", |m| m.as_str());
            let new = self.hash_and_format(&caps);
            out = out.replace(whole, &new);
        }
        Some(out)
    }

    fn hash_and_format(&self, caps: &Captures<'_>) -> String {
        let mut expanded = String::new();
        caps.expand(&self.text, &mut expanded);
        let hashed = sha256_hex(&expanded);
        match &self.format {
            Some(f) => go_sprintf_s(f, &hashed),
            None => hashed,
        }
    }
}

/// Go's `fmt.Sprintf(format, s)` for the `%s`-only formats `replacementFormat` takes: the first
/// `%s` becomes `s`, `%%` becomes `%`.
fn go_sprintf_s(format: &str, s: &str) -> String {
    let mut out = String::with_capacity(format.len() + s.len());
    let mut used = false;
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('%', Some('%')) => {
                chars.next();
                out.push('%');
            }
            ('%', Some('s')) if !used => {
                chars.next();
                out.push_str(s);
                used = true;
            }
            _ => out.push(c),
        }
    }
    out
}

impl Editor {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Editor::Set { .. } => "set",
            Editor::DeleteKey { .. } => "delete_key",
            Editor::DeleteMatchingKeys { .. } => "delete_matching_keys",
            Editor::KeepKeys { .. } => "keep_keys",
            Editor::KeepMatchingKeys { .. } => "keep_matching_keys",
            Editor::ReplacePattern { .. } => "replace_pattern",
            Editor::ReplaceAllPatterns { .. } => "replace_all_patterns",
            Editor::ReplaceMatch { .. } => "replace_match",
            Editor::TruncateAll { .. } => "truncate_all",
            Editor::Limit { .. } => "limit",
        }
    }

    pub(crate) fn execute<T: Target + ?Sized>(&self, t: &mut T) -> Result<(), EvalError> {
        match self {
            Editor::Set { target, value } => {
                let v = value.eval(&*t)?.into_owned();
                // contrib skips nil. Maps and slices are opaque here (no content to copy), so
                // setting one would write an empty value: skipped too (documented difference).
                if matches!(v, Value::Nil | Value::Map | Value::Slice) {
                    return Ok(());
                }
                t.set(target, v)
            }
            Editor::DeleteKey { target, key } => {
                t.edit_attributes(*target, &mut |m| m.retain(&mut |k| k != key))
            }
            Editor::DeleteMatchingKeys { target, pattern } => t
                .edit_attributes(*target, &mut |m| {
                    m.retain(&mut |k| !pattern.regex.is_match(k))
                }),
            Editor::KeepKeys { target, keys } => t.edit_attributes(*target, &mut |m| {
                m.retain(&mut |k| keys.iter().any(|want| want == k))
            }),
            Editor::KeepMatchingKeys { target, pattern } => t.edit_attributes(*target, &mut |m| {
                m.retain(&mut |k| pattern.regex.is_match(k))
            }),
            Editor::ReplacePattern {
                target,
                pattern,
                replacement,
            } => {
                let rendered = replacement.render(&*t, "replace_pattern")?;
                let new = match t.get(target)? {
                    Value::Str(s) => rendered.apply(&pattern.regex, &s),
                    _ => None,
                };
                match new {
                    Some(s) => t.set(target, Value::Str(Cow::Owned(s))),
                    None => Ok(()),
                }
            }
            Editor::ReplaceAllPatterns {
                target,
                mode,
                pattern,
                replacement,
            } => {
                let rendered = replacement.render(&*t, "replace_all_patterns")?;
                t.edit_attributes(*target, &mut |m| match mode {
                    Mode::Value => m.update_strings(&mut |_, v| rendered.apply(&pattern.regex, v)),
                    Mode::Key => m.rename_keys(&mut |k| rendered.apply(&pattern.regex, k)),
                })
            }
            Editor::ReplaceMatch {
                target,
                glob,
                replacement,
                ..
            } => {
                let replacement = replacement.eval_string(&*t, "replace_match")?.into_owned();
                let matched = matches!(t.get(target)?, Value::Str(s) if glob.regex.is_match(&s));
                if matched {
                    t.set(target, Value::Str(Cow::Owned(replacement)))
                } else {
                    Ok(())
                }
            }
            Editor::TruncateAll { target, limit } => t.edit_attributes(*target, &mut |m| {
                m.update_strings(&mut |_, v| truncate(v, *limit))
            }),
            Editor::Limit {
                target,
                limit,
                priority_keys,
            } => t.edit_attributes(*target, &mut |m| {
                limit_map(m, *limit, priority_keys);
            }),
        }
    }

    pub(crate) fn visit_paths(&self, f: &mut dyn FnMut(&Path)) {
        let map = |entity: &Entity| Path {
            entity: *entity,
            field: crate::path::Field::Attributes,
        };
        match self {
            Editor::Set { target, value } => {
                f(target);
                value.visit_paths(f);
            }
            Editor::ReplacePattern {
                target,
                replacement,
                ..
            } => {
                f(target);
                replacement.text.visit_paths(f);
                if let Some(e) = &replacement.format {
                    e.visit_paths(f);
                }
            }
            Editor::ReplaceMatch {
                target,
                replacement,
                ..
            } => {
                f(target);
                replacement.visit_paths(f);
            }
            Editor::ReplaceAllPatterns {
                target,
                replacement,
                ..
            } => {
                f(&map(target));
                replacement.text.visit_paths(f);
                if let Some(e) = &replacement.format {
                    e.visit_paths(f);
                }
            }
            Editor::DeleteKey { target, .. }
            | Editor::DeleteMatchingKeys { target, .. }
            | Editor::KeepKeys { target, .. }
            | Editor::KeepMatchingKeys { target, .. }
            | Editor::TruncateAll { target, .. }
            | Editor::Limit { target, .. } => f(&map(target)),
        }
    }
}

/// `truncate_all`: contrib cuts at `limit` bytes; a Rust string must stay UTF-8, so the cut
/// moves back to the previous character boundary.
fn truncate(v: &str, limit: usize) -> Option<String> {
    if v.len() <= limit {
        return None;
    }
    let mut end = limit;
    while !v.is_char_boundary(end) {
        end -= 1;
    }
    Some(v[..end].to_string())
}

/// `limit`: keeps at most `limit` entries, the priority keys first, then the earliest others.
fn limit_map(m: &mut dyn AttributeMap, limit: usize, priority_keys: &[String]) {
    if m.len() <= limit {
        return;
    }
    let mut count = priority_keys.iter().filter(|k| m.contains_key(k)).count();
    m.retain(&mut |k| {
        if priority_keys.iter().any(|p| p == k) {
            return true;
        }
        if count < limit {
            count += 1;
            return true;
        }
        false
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Value<'static> {
        Value::Str(Cow::Owned(v.to_string()))
    }

    #[test]
    fn rename_overwrites_in_place() {
        let mut m = AttrVec(vec![
            ("a.x".into(), s("1")),
            ("b".into(), s("2")),
            ("a.b".into(), s("3")),
        ]);
        // "a.x" -> "x", "a.b" -> "b" which already exists: its value becomes "3" in b's slot.
        m.rename_keys(&mut |k| k.strip_prefix("a.").map(str::to_string));
        assert_eq!(m, AttrVec(vec![("x".into(), s("1")), ("b".into(), s("3"))]));
    }

    #[test]
    fn truncate_keeps_utf8() {
        assert_eq!(truncate("héllo", 2), Some("h".into()));
        assert_eq!(truncate("hello", 3), Some("hel".into()));
        assert_eq!(truncate("he", 3), None);
    }

    #[test]
    fn limit_keeps_priority_then_first() {
        let mut m = AttrVec(
            ["a", "b", "c", "d"]
                .iter()
                .map(|k| (k.to_string(), Value::Int(1)))
                .collect(),
        );
        limit_map(&mut m, 2, &["d".to_string()]);
        let keys: Vec<&str> = m.0.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["a", "d"]);
    }

    #[test]
    fn sprintf_s() {
        assert_eq!(go_sprintf_s("h:%s%%", "x"), "h:x%");
    }
}
