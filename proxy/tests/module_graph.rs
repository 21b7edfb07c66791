//! The crate's module graph, checked from the source text: `runtime/` names no component (it holds
//! primitives the service composes components on), and no two source files import each other,
//! directly or through others.
//!
//! Nodes are source files; an edge is a path a file names (`use` trees and inline paths starting
//! with `crate::`, `super::` or `self::`), resolved to the file that defines the item: a name a
//! `mod.rs` re-exports with `pub use` resolves to the file it comes from. `mod` declarations and
//! unit-test modules (`#[cfg(test)]` and after, `tests.rs`) are not edges.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level modules that hold components: `runtime/` may name none of them.
const COMPONENT_MODULES: &[&str] = &[
    "service",
    "receiver",
    "processor",
    "exporter",
    "connector",
    "extension",
];

type ModPath = Vec<String>;

struct Crate {
    /// Module path → file (relative to `src/`).
    files: BTreeMap<ModPath, PathBuf>,
    /// Per `mod.rs`/`lib.rs`: re-exported name → the module path it comes from.
    reexports: BTreeMap<ModPath, BTreeMap<String, ModPath>>,
    /// Per file: the module paths it names.
    names: BTreeMap<ModPath, Vec<ModPath>>,
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// `a/b/mod.rs` → `[a, b]`, `a/b.rs` → `[a, b]`, `lib.rs`/`main.rs` → `[]`.
fn module_of(rel: &Path) -> ModPath {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap_or_default();
    match last.as_str() {
        "mod.rs" | "lib.rs" | "main.rs" => {}
        other => parts.push(other.trim_end_matches(".rs").to_owned()),
    }
    parts
}

/// The text without comments, string literals and unit-test modules.
fn code_of(text: &str) -> String {
    let text = match text.find("#[cfg(test)]") {
        Some(i) => &text[..i],
        None => text,
    };
    let mut out = String::with_capacity(text.len());
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            i += 2;
            while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                i += 1;
            }
            i += 2;
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' && b.get(i + 2) == Some(&b'\'') {
            // A char literal such as '{' (lifetimes have no closing quote two bytes on).
            i += 3;
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Expands a use tree (`a::{b, c::{d, e}}`, `a as b`, `a::*`) into full paths.
fn expand_use(tree: &str, prefix: &[String], out: &mut Vec<ModPath>) {
    let tree = tree.trim();
    if tree.is_empty() {
        return;
    }
    if let Some(inner) = tree.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
        for item in split_top(inner) {
            expand_use(item, prefix, out);
        }
        return;
    }
    match tree.find("::") {
        Some(i) if !tree[..i].contains('{') => {
            let mut p = prefix.to_vec();
            p.push(tree[..i].trim().to_owned());
            expand_use(&tree[i + 2..], &p, out);
        }
        _ => {
            let name = tree.split(" as ").next().unwrap_or(tree).trim();
            let mut p = prefix.to_vec();
            if name != "*" && name != "self" {
                p.push(name.to_owned());
            }
            out.push(p);
        }
    }
}

/// Splits on commas outside braces.
fn split_top(s: &str) -> Vec<&str> {
    let (mut depth, mut start, mut out) = (0i32, 0, Vec::new());
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

/// Makes `path` (as written in the file of module `at`) absolute; `None` for external crates.
fn absolute(path: &[String], at: &ModPath, is_mod_file: bool) -> Option<ModPath> {
    let (first, rest) = path.split_first()?;
    match first.as_str() {
        "crate" => Some(rest.to_vec()),
        "self" => Some(at.iter().chain(rest).cloned().collect()),
        "super" => {
            let _ = is_mod_file;
            let mut base = at.clone();
            base.pop()?;
            let mut rest = rest;
            while rest.first().is_some_and(|s| s == "super") {
                base.pop()?;
                rest = &rest[1..];
            }
            Some(base.iter().chain(rest).cloned().collect())
        }
        _ => None,
    }
}

/// Every path the code names: use trees, and inline `crate::`/`super::`/`self::` chains.
fn named_paths(code: &str) -> (Vec<ModPath>, Vec<(bool, ModPath)>) {
    let mut uses = Vec::new();
    // (is a `pub use`, path)
    let mut exported = Vec::new();
    let mut rest = code;
    let mut inline_text = String::new();
    while let Some(i) = rest.find("use ") {
        let before = &rest[..i];
        let boundary = before
            .chars()
            .last()
            .is_none_or(|c| !is_ident(c) && c != ':');
        inline_text.push_str(before);
        if !boundary {
            inline_text.push_str("use ");
            rest = &rest[i + 4..];
            continue;
        }
        let Some(end) = rest[i..].find(';') else {
            break;
        };
        let stmt = &rest[i + 4..i + end];
        let public = before.trim_end().ends_with("pub") || before.trim_end().ends_with(')');
        let mut paths = Vec::new();
        expand_use(
            &stmt.split_whitespace().collect::<Vec<_>>().join(" "),
            &[],
            &mut paths,
        );
        for p in paths {
            exported.push((public, p.clone()));
            uses.push(p);
        }
        rest = &rest[i + end + 1..];
    }
    inline_text.push_str(rest);
    for start in ["crate::", "super::", "self::"] {
        let mut from = 0;
        while let Some(i) = inline_text[from..].find(start) {
            let at = from + i;
            from = at + start.len();
            if inline_text[..at]
                .chars()
                .last()
                .is_some_and(|c| is_ident(c) || c == ':')
            {
                continue;
            }
            let chain: String = inline_text[at..]
                .chars()
                .take_while(|&c| is_ident(c) || c == ':')
                .collect();
            let parts: Vec<String> = chain
                .split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            uses.push(parts);
        }
    }
    (uses, exported)
}

fn load() -> Crate {
    let src = src_dir();
    let mut paths = Vec::new();
    walk(&src, &mut paths);
    let mut krate = Crate {
        files: BTreeMap::new(),
        reexports: BTreeMap::new(),
        names: BTreeMap::new(),
    };
    let mut texts = Vec::new();
    for p in paths {
        let rel = p.strip_prefix(&src).expect("under src").to_path_buf();
        if rel
            .file_name()
            .is_some_and(|n| n == "tests.rs" || n == "main.rs")
        {
            continue;
        }
        let m = module_of(&rel);
        let text = std::fs::read_to_string(&p).expect("readable source");
        krate.files.insert(m.clone(), rel.clone());
        texts.push((m, rel, code_of(&text)));
    }
    for (m, rel, code) in &texts {
        let is_mod = rel
            .file_name()
            .is_some_and(|n| n == "mod.rs" || n == "lib.rs");
        let (uses, exported) = named_paths(code);
        let mut named = Vec::new();
        for p in uses {
            let Some(abs) = absolute(&p, m, is_mod).or_else(|| {
                // `use child::X` in a mod.rs names its own child module.
                krate
                    .files
                    .contains_key(&m.iter().chain(p.first()).cloned().collect::<Vec<_>>())
                    .then(|| m.iter().chain(&p).cloned().collect())
            }) else {
                continue;
            };
            named.push(abs);
        }
        if is_mod {
            let map = krate.reexports.entry(m.clone()).or_default();
            for (public, p) in exported {
                let child_relative = m.iter().chain(&p).cloned().collect::<Vec<_>>();
                let abs = absolute(&p, m, is_mod).or_else(|| {
                    krate
                        .files
                        .contains_key(&child_relative[..m.len() + 1])
                        .then(|| child_relative.clone())
                });
                if let (true, Some(abs), Some(name)) = (public, abs, p.last()) {
                    map.insert(name.clone(), abs);
                }
            }
        }
        krate.names.insert(m.clone(), named);
    }
    krate
}

impl Crate {
    /// The file that defines what `path` names (following `pub use` re-exports, bounded).
    fn resolve(&self, path: &ModPath) -> Option<ModPath> {
        let mut path = path.clone();
        for _ in 0..8 {
            let module = (0..=path.len())
                .rev()
                .map(|n| path[..n].to_vec())
                .find(|p| self.files.contains_key(p))?;
            let next = path.get(module.len());
            match next.and_then(|n| self.reexports.get(&module)?.get(n)) {
                Some(target) if target != &path => {
                    path = target
                        .iter()
                        .chain(&path[module.len() + 1..])
                        .cloned()
                        .collect();
                }
                _ => return Some(module),
            }
        }
        None
    }

    fn edges(&self) -> BTreeMap<ModPath, BTreeSet<ModPath>> {
        let mut out: BTreeMap<ModPath, BTreeSet<ModPath>> = BTreeMap::new();
        for (from, named) in &self.names {
            let set = out.entry(from.clone()).or_default();
            for n in named {
                if let Some(to) = self.resolve(n).filter(|to| to != from) {
                    set.insert(to);
                }
            }
        }
        out
    }
}

fn show(m: &ModPath, krate: &Crate) -> String {
    krate
        .files
        .get(m)
        .map_or_else(|| m.join("::"), |p| p.display().to_string())
}

#[test]
fn runtime_names_no_component() {
    let krate = load();
    let mut offences = Vec::new();
    for (from, named) in &krate.names {
        if from.first().is_none_or(|f| f != "runtime") {
            continue;
        }
        for n in named {
            if n.first()
                .is_some_and(|f| COMPONENT_MODULES.contains(&f.as_str()))
            {
                offences.push(format!("{} names {}", show(from, &krate), n.join("::")));
            }
        }
    }
    assert!(
        krate
            .names
            .keys()
            .any(|m| m.first().is_some_and(|f| f == "runtime")),
        "no runtime module found: the check would pass vacuously"
    );
    assert!(
        offences.is_empty(),
        "runtime/ must not name a component:\n{}",
        offences.join("\n")
    );
}

#[test]
fn no_import_cycles_between_files() {
    let krate = load();
    let edges = krate.edges();
    assert!(
        edges.values().map(BTreeSet::len).sum::<usize>() > 100,
        "too few edges found: the parser is broken and the check would pass vacuously"
    );
    // Iterative DFS with colours; the first back edge found is reported with its cycle.
    let mut colour: BTreeMap<&ModPath, u8> = BTreeMap::new();
    let mut cycles = Vec::new();
    for start in edges.keys() {
        if colour.get(start).copied().unwrap_or(0) != 0 {
            continue;
        }
        let mut stack: Vec<(&ModPath, Vec<&ModPath>)> =
            vec![(start, edges[start].iter().collect())];
        colour.insert(start, 1);
        while let Some((node, next)) = stack.last_mut() {
            let node = *node;
            match next.pop() {
                Some(to) => match colour.get(to).copied().unwrap_or(0) {
                    0 => {
                        colour.insert(to, 1);
                        let succ = edges
                            .get(to)
                            .map(|s| s.iter().collect())
                            .unwrap_or_default();
                        stack.push((to, succ));
                    }
                    1 => {
                        let from = stack.iter().position(|(n, _)| *n == to).unwrap_or(0);
                        let mut cycle: Vec<String> =
                            stack[from..].iter().map(|(n, _)| show(n, &krate)).collect();
                        cycle.push(show(to, &krate));
                        cycles.push(cycle.join(" -> "));
                    }
                    _ => {}
                },
                None => {
                    colour.insert(node, 2);
                    stack.pop();
                }
            }
        }
    }
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_parser_sees_use_trees_and_inline_paths() {
    let (uses, exported) = named_paths(&code_of(
        "use crate::{a, b::{c, d as e}};\npub use self::f::G;\nfn x() { crate::h::i(); super::j::K; }\n// crate::not::this\n",
    ));
    let flat: Vec<String> = uses.iter().map(|p| p.join("::")).collect();
    for want in [
        "crate::a",
        "crate::b::c",
        "crate::b::d",
        "self::f::G",
        "crate::h::i",
        "super::j::K",
    ] {
        assert!(
            flat.contains(&want.to_owned()),
            "{want} missing from {flat:?}"
        );
    }
    assert!(!flat.iter().any(|p| p.contains("not")), "{flat:?}");
    assert!(exported
        .iter()
        .any(|(public, p)| *public && p.join("::") == "self::f::G"));
}
