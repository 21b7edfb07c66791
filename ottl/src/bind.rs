//! Binding: checks an untyped syntax tree against the supported subset for one context and
//! produces the typed tree (paths resolved, enums valued, function arguments typed, regexes
//! compiled). Everything outside the subset fails here with the construct named.

use std::borrow::Cow;

use regex::RegexBuilder;

use crate::editor::{Editor, Mode, Replacement};
use crate::error::{ParseError, ParseErrorKind};
use crate::expr::{BoolExpr, Converter, Expr, Pattern};
use crate::path::{self, Context, Entity, Path};
use crate::syntax::{Arg, Call, Key, Node, Syn};
use crate::value::Value;

/// Compiled-size cap for one regex: bounds compile time and memory for hostile patterns.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

fn err(column: usize, kind: ParseErrorKind) -> ParseError {
    ParseError { column, kind }
}

fn bad_arg(column: usize, function: &'static str, message: impl Into<String>) -> ParseError {
    err(
        column,
        ParseErrorKind::BadArgument {
            function,
            message: message.into(),
        },
    )
}

/// Binds a condition.
pub(crate) fn condition(cx: Context, node: Node) -> Result<BoolExpr, ParseError> {
    let column = node.column;
    Ok(match node.syn {
        Syn::Or(v) => BoolExpr::Or(
            v.into_iter()
                .map(|n| condition(cx, n))
                .collect::<Result<_, _>>()?,
        ),
        Syn::And(v) => BoolExpr::And(
            v.into_iter()
                .map(|n| condition(cx, n))
                .collect::<Result<_, _>>()?,
        ),
        Syn::Not(inner) => BoolExpr::Not(Box::new(condition(cx, *inner)?)),
        Syn::Cmp(a, op, b) => BoolExpr::Cmp(value(cx, *a)?, op, value(cx, *b)?),
        Syn::Bool(b) => BoolExpr::Const(b),
        Syn::Call(call) => {
            let conv = converter(cx, call, column)?;
            if !matches!(conv, Converter::IsMatch { .. }) {
                return Err(err(
                    column,
                    ParseErrorKind::Misplaced(format!(
                        "converter {} returns a string, not a condition",
                        conv.name()
                    )),
                ));
            }
            BoolExpr::Call(Box::new(conv))
        }
        _ => {
            return Err(err(
                column,
                ParseErrorKind::Expected {
                    expected: "a comparison, true, false or a converter call",
                    found: "a value".to_string(),
                },
            ))
        }
    })
}

/// Binds a value expression.
fn value(cx: Context, node: Node) -> Result<Expr, ParseError> {
    let column = node.column;
    let lit = |v: Value<'static>| Ok(Expr::Literal(v));
    match node.syn {
        Syn::Nil => lit(Value::Nil),
        Syn::Str(s) => lit(Value::Str(Cow::Owned(s))),
        Syn::Int(i) => lit(Value::Int(i)),
        Syn::Float(f) => lit(Value::Double(f)),
        Syn::Bool(b) => lit(Value::Bool(b)),
        Syn::Bytes(b) => lit(Value::Bytes(Cow::Owned(b))),
        Syn::Upper(symbol) => match path::enum_value(cx, &symbol) {
            Some(v) => lit(Value::Int(v)),
            None => Err(err(
                column,
                ParseErrorKind::UnsupportedEnum {
                    symbol,
                    context: cx.name(),
                },
            )),
        },
        Syn::Path {
            words,
            keys,
            keys_mid_path,
        } => path_of(cx, column, &words, keys, keys_mid_path).map(Expr::Path),
        Syn::Call(call) => Ok(Expr::Call(Box::new(converter(cx, call, column)?))),
        Syn::Math(a, op, b) => Ok(Expr::Math(
            Box::new(value(cx, *a)?),
            op,
            Box::new(value(cx, *b)?),
        )),
        Syn::List(_) => Err(err(
            column,
            ParseErrorKind::Unsupported("a list literal outside a function argument"),
        )),
        Syn::Or(_) | Syn::And(_) | Syn::Not(_) | Syn::Cmp(..) => Err(err(
            column,
            ParseErrorKind::Unsupported("a condition used as a value"),
        )),
    }
}

fn path_of(
    cx: Context,
    column: usize,
    words: &[String],
    keys: Vec<Key>,
    keys_mid_path: bool,
) -> Result<Path, ParseError> {
    let written = || {
        let mut s = words.join(".");
        for k in &keys {
            match k {
                Key::Str(k) => s.push_str(&format!("[{k:?}]")),
                Key::Int(i) => s.push_str(&format!("[{i}]")),
            }
        }
        s
    };
    if keys_mid_path {
        return Err(err(
            column,
            ParseErrorKind::Unsupported("a field after an index (e.g. attributes[\"a\"].b)"),
        ));
    }
    if keys.len() > 1 {
        return Err(err(
            column,
            ParseErrorKind::Unsupported("a nested index (e.g. attributes[\"a\"][\"b\"])"),
        ));
    }
    let key = match keys.first() {
        None => None,
        Some(Key::Str(k)) => Some(k.clone()),
        Some(Key::Int(_)) => {
            return Err(err(column, ParseErrorKind::Unsupported("an integer index")))
        }
    };
    let refs: Vec<&str> = words.iter().map(String::as_str).collect();
    path::resolve(cx, &refs, key).ok_or_else(|| {
        err(
            column,
            ParseErrorKind::UnsupportedPath {
                path: written(),
                context: cx.name(),
            },
        )
    })
}

/// Binds a converter call.
fn converter(cx: Context, call: Call, column: usize) -> Result<Converter, ParseError> {
    if call.name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(err(
            column,
            ParseErrorKind::Misplaced(format!(
                "converter names must start with an uppercase letter but got '{}'",
                call.name
            )),
        ));
    }
    if !call.keys.is_empty() {
        return Err(err(
            column,
            ParseErrorKind::Unsupported("indexing a converter's result"),
        ));
    }
    let name = call.name.clone();
    match name.as_str() {
        "IsMatch" => {
            let [target, pattern] = args("IsMatch", column, call.args, &["target", "pattern"], 2)?;
            let target = value(cx, required(target, "IsMatch", column, "target")?)?;
            let pattern = regex_arg(required(pattern, "IsMatch", column, "pattern")?, "IsMatch")?;
            Ok(Converter::IsMatch { target, pattern })
        }
        "Concat" => {
            let [vals, delim] = args("Concat", column, call.args, &["vals", "delimiter"], 2)?;
            let vals = required(vals, "Concat", column, "vals")?;
            let Syn::List(items) = vals.syn else {
                return Err(bad_arg(
                    vals.column,
                    "Concat",
                    "vals must be a list such as [a, b]",
                ));
            };
            let values = items
                .into_iter()
                .map(|n| value(cx, n))
                .collect::<Result<_, _>>()?;
            let delimiter = value(cx, required(delim, "Concat", column, "delimiter")?)?;
            Ok(Converter::Concat { values, delimiter })
        }
        "SHA256" => {
            let [v] = args("SHA256", column, call.args, &["value"], 1)?;
            Ok(Converter::Sha256(value(
                cx,
                required(v, "SHA256", column, "value")?,
            )?))
        }
        _ => Err(err(column, ParseErrorKind::UnsupportedFunction(name))),
    }
}

/// Binds a statement's editor call.
pub(crate) fn editor(cx: Context, node: Node) -> Result<Editor, ParseError> {
    let column = node.column;
    let Syn::Call(call) = node.syn else {
        return Err(err(
            column,
            ParseErrorKind::Expected {
                expected: "an editor call",
                found: "something else".to_string(),
            },
        ));
    };
    if call.name.starts_with(|c: char| c.is_ascii_uppercase()) {
        let kind = match call.name.as_str() {
            "IsMatch" | "Concat" | "SHA256" => ParseErrorKind::Misplaced(format!(
                "editor names must start with a lowercase letter but got '{}'",
                call.name
            )),
            _ => ParseErrorKind::UnsupportedFunction(call.name),
        };
        return Err(err(column, kind));
    }
    if !call.keys.is_empty() {
        return Err(err(
            column,
            ParseErrorKind::Misplaced(format!(
                "only paths and converters may be indexed, not editors, but got {}",
                call.name
            )),
        ));
    }
    let b = EditorArgs { cx, column };
    match call.name.as_str() {
        "set" => b.set(call.args),
        "delete_key" => b.delete_key(call.args),
        "delete_matching_keys" => b.matching_keys("delete_matching_keys", call.args),
        "keep_keys" => b.keep_keys(call.args),
        "keep_matching_keys" => b.matching_keys("keep_matching_keys", call.args),
        "replace_pattern" => b.replace_pattern(call.args),
        "replace_all_patterns" => b.replace_all_patterns(call.args),
        "replace_match" => b.replace_match(call.args),
        "truncate_all" => b.truncate_all(call.args),
        "limit" => b.limit(call.args),
        _ => Err(err(column, ParseErrorKind::UnsupportedFunction(call.name))),
    }
}

/// Orders arguments by parameter (positional first, then `name = value`), checks the count,
/// and returns one slot per parameter.
fn args<const N: usize>(
    function: &'static str,
    column: usize,
    given: Vec<Arg>,
    params: &[&'static str; N],
    required: usize,
) -> Result<[Option<Node>; N], ParseError> {
    let mut slots: [Option<Node>; N] = std::array::from_fn(|_| None);
    let mut named_seen = false;
    for (i, arg) in given.into_iter().enumerate() {
        let at = arg.value.column;
        let index = match &arg.name {
            None if named_seen => {
                return Err(bad_arg(
                    at,
                    function,
                    "positional arguments must come before named ones",
                ))
            }
            None if i < N => i,
            None => {
                return Err(bad_arg(
                    at,
                    function,
                    format!("takes at most {N} arguments"),
                ))
            }
            Some(name) => {
                named_seen = true;
                params.iter().position(|p| p == name).ok_or_else(|| {
                    bad_arg(at, function, format!("has no parameter named {name}"))
                })?
            }
        };
        if slots[index].is_some() {
            return Err(bad_arg(
                at,
                function,
                format!("{} given twice", params[index]),
            ));
        }
        slots[index] = Some(arg.value);
    }
    if let Some(missing) = slots[..required].iter().position(Option::is_none) {
        return Err(bad_arg(
            column,
            function,
            format!("missing argument {}", params[missing]),
        ));
    }
    Ok(slots)
}

fn required(
    slot: Option<Node>,
    function: &'static str,
    column: usize,
    param: &str,
) -> Result<Node, ParseError> {
    slot.ok_or_else(|| bad_arg(column, function, format!("missing argument {param}")))
}

fn string_literal(node: Node, function: &'static str, param: &str) -> Result<String, ParseError> {
    match node.syn {
        Syn::Str(s) => Ok(s),
        _ => Err(bad_arg(
            node.column,
            function,
            format!("{param} must be a string literal"),
        )),
    }
}

fn regex_arg(node: Node, function: &'static str) -> Result<Pattern, ParseError> {
    let column = node.column;
    let pattern = string_literal(node, function, "pattern")?;
    compile(&pattern, function, column)
}

/// Compiles a pattern written in Go's RE2 syntax (see [`crate::go_regex`]).
fn compile(pattern: &str, function: &'static str, column: usize) -> Result<Pattern, ParseError> {
    RegexBuilder::new(&crate::go_regex::translate(pattern))
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map(|regex| Pattern {
            regex,
            text: pattern.to_string(),
        })
        .map_err(|source| {
            err(
                column,
                ParseErrorKind::BadRegex {
                    function,
                    pattern: pattern.to_string(),
                    source,
                },
            )
        })
}

fn int_literal(node: Node, function: &'static str, param: &str) -> Result<i64, ParseError> {
    match node.syn {
        Syn::Int(i) => Ok(i),
        _ => Err(bad_arg(
            node.column,
            function,
            format!("{param} must be an int literal"),
        )),
    }
}

fn string_list(node: Node, function: &'static str, param: &str) -> Result<Vec<String>, ParseError> {
    let column = node.column;
    let Syn::List(items) = node.syn else {
        return Err(bad_arg(
            column,
            function,
            format!("{param} must be a list of string literals"),
        ));
    };
    items
        .into_iter()
        .map(|n| string_literal(n, function, param))
        .collect()
}

struct EditorArgs {
    cx: Context,
    column: usize,
}

impl EditorArgs {
    fn value(&self, node: Node) -> Result<Expr, ParseError> {
        value(self.cx, node)
    }

    /// A settable path (a field or one attribute, never a whole map or a literal).
    fn target(&self, node: Node, function: &'static str) -> Result<Path, ParseError> {
        let column = node.column;
        match self.value(node)? {
            Expr::Path(p) if !p.is_map() => Ok(p),
            Expr::Path(_) => Err(bad_arg(
                column,
                function,
                "target must be a field or one attribute, not a whole map",
            )),
            _ => Err(bad_arg(column, function, "target must be a path")),
        }
    }

    /// A whole attribute map (`attributes`, `resource.attributes`, …).
    fn map_target(&self, node: Node, function: &'static str) -> Result<Entity, ParseError> {
        let column = node.column;
        match self.value(node)? {
            Expr::Path(p) if p.is_map() => Ok(p.entity),
            _ => Err(bad_arg(
                column,
                function,
                "target must be an attribute map such as attributes",
            )),
        }
    }

    fn set(&self, given: Vec<Arg>) -> Result<Editor, ParseError> {
        let [target, v] = args("set", self.column, given, &["target", "value"], 2)?;
        Ok(Editor::Set {
            target: self.target(required(target, "set", self.column, "target")?, "set")?,
            value: self.value(required(v, "set", self.column, "value")?)?,
        })
    }

    fn delete_key(&self, given: Vec<Arg>) -> Result<Editor, ParseError> {
        let f = "delete_key";
        let [target, key] = args(f, self.column, given, &["target", "key"], 2)?;
        Ok(Editor::DeleteKey {
            target: self.map_target(required(target, f, self.column, "target")?, f)?,
            key: string_literal(required(key, f, self.column, "key")?, f, "key")?,
        })
    }

    fn matching_keys(&self, f: &'static str, given: Vec<Arg>) -> Result<Editor, ParseError> {
        let [target, pattern] = args(f, self.column, given, &["target", "pattern"], 2)?;
        let target = self.map_target(required(target, f, self.column, "target")?, f)?;
        let pattern = regex_arg(required(pattern, f, self.column, "pattern")?, f)?;
        Ok(if f == "delete_matching_keys" {
            Editor::DeleteMatchingKeys { target, pattern }
        } else {
            Editor::KeepMatchingKeys { target, pattern }
        })
    }

    fn keep_keys(&self, given: Vec<Arg>) -> Result<Editor, ParseError> {
        let f = "keep_keys";
        let [target, keys] = args(f, self.column, given, &["target", "keys"], 2)?;
        Ok(Editor::KeepKeys {
            target: self.map_target(required(target, f, self.column, "target")?, f)?,
            keys: string_list(required(keys, f, self.column, "keys")?, f, "keys")?,
        })
    }

    /// The optional `function` (only `SHA256`) and `replacementFormat` arguments.
    fn replacement(
        &self,
        f: &'static str,
        text: Node,
        function: Option<Node>,
        format: Option<Node>,
    ) -> Result<Replacement, ParseError> {
        let hashed = match function {
            None => false,
            Some(node) => match &node.syn {
                Syn::Upper(name) if name == "SHA256" => true,
                Syn::Upper(name) => {
                    return Err(err(
                        node.column,
                        ParseErrorKind::UnsupportedFunction(name.clone()),
                    ))
                }
                _ => {
                    return Err(bad_arg(
                        node.column,
                        f,
                        "function must be a function name such as SHA256",
                    ))
                }
            },
        };
        if format.is_some() && !hashed {
            return Err(bad_arg(
                self.column,
                f,
                "replacementFormat needs the function argument",
            ));
        }
        Ok(Replacement {
            text: self.value(text)?,
            hashed,
            format: format.map(|n| self.value(n)).transpose()?,
        })
    }

    fn replace_pattern(&self, given: Vec<Arg>) -> Result<Editor, ParseError> {
        let f = "replace_pattern";
        let params = [
            "target",
            "regex",
            "replacement",
            "function",
            "replacementFormat",
        ];
        let [target, re, repl, func, format] = args(f, self.column, given, &params, 3)?;
        Ok(Editor::ReplacePattern {
            target: self.target(required(target, f, self.column, "target")?, f)?,
            pattern: regex_arg(required(re, f, self.column, "regex")?, f)?,
            replacement: self.replacement(
                f,
                required(repl, f, self.column, "replacement")?,
                func,
                format,
            )?,
        })
    }

    fn replace_all_patterns(&self, given: Vec<Arg>) -> Result<Editor, ParseError> {
        let f = "replace_all_patterns";
        let params = [
            "target",
            "mode",
            "regex",
            "replacement",
            "function",
            "replacementFormat",
        ];
        let [target, mode, re, repl, func, format] = args(f, self.column, given, &params, 4)?;
        let mode_node = required(mode, f, self.column, "mode")?;
        let mode_column = mode_node.column;
        let mode = match string_literal(mode_node, f, "mode")?.as_str() {
            "key" => Mode::Key,
            "value" => Mode::Value,
            other => {
                return Err(bad_arg(
                    mode_column,
                    f,
                    format!("invalid mode {other:?}, must be \"key\" or \"value\""),
                ))
            }
        };
        Ok(Editor::ReplaceAllPatterns {
            target: self.map_target(required(target, f, self.column, "target")?, f)?,
            mode,
            pattern: regex_arg(required(re, f, self.column, "regex")?, f)?,
            replacement: self.replacement(
                f,
                required(repl, f, self.column, "replacement")?,
                func,
                format,
            )?,
        })
    }

    fn replace_match(&self, given: Vec<Arg>) -> Result<Editor, ParseError> {
        let f = "replace_match";
        let params = [
            "target",
            "pattern",
            "replacement",
            "function",
            "replacementFormat",
        ];
        let [target, pattern, repl, func, _format] = args(f, self.column, given, &params, 3)?;
        if let Some(node) = func {
            return Err(err(
                node.column,
                ParseErrorKind::Unsupported("replace_match's function argument"),
            ));
        }
        let pattern_node = required(pattern, f, self.column, "pattern")?;
        let column = pattern_node.column;
        let glob = string_literal(pattern_node, f, "pattern")?;
        let source = crate::glob::to_regex(&glob)
            .map_err(|why| bad_arg(column, f, format!("invalid glob {glob:?}: {why}")))?;
        Ok(Editor::ReplaceMatch {
            target: self.target(required(target, f, self.column, "target")?, f)?,
            glob: compile(&source, f, column)?,
            glob_text: glob,
            replacement: self.value(required(repl, f, self.column, "replacement")?)?,
        })
    }

    fn truncate_all(&self, given: Vec<Arg>) -> Result<Editor, ParseError> {
        let f = "truncate_all";
        let [target, limit] = args(f, self.column, given, &["target", "limit"], 2)?;
        let target = self.map_target(required(target, f, self.column, "target")?, f)?;
        let node = required(limit, f, self.column, "limit")?;
        let column = node.column;
        let limit = int_literal(node, f, "limit")?;
        let limit = usize::try_from(limit).map_err(|_| {
            bad_arg(
                column,
                f,
                format!("invalid limit {limit}, cannot be negative"),
            )
        })?;
        Ok(Editor::TruncateAll { target, limit })
    }

    fn limit(&self, given: Vec<Arg>) -> Result<Editor, ParseError> {
        let f = "limit";
        let params = ["target", "limit", "priority_keys"];
        let [target, limit, keys] = args(f, self.column, given, &params, 3)?;
        let target = self.map_target(required(target, f, self.column, "target")?, f)?;
        let node = required(limit, f, self.column, "limit")?;
        let column = node.column;
        let limit = int_literal(node, f, "limit")?;
        let limit = usize::try_from(limit).map_err(|_| {
            bad_arg(
                column,
                f,
                format!("invalid limit {limit}, cannot be negative"),
            )
        })?;
        let priority_keys = string_list(
            required(keys, f, self.column, "priority_keys")?,
            f,
            "priority_keys",
        )?;
        if limit < priority_keys.len() {
            return Err(bad_arg(
                column,
                f,
                format!(
                    "invalid limit {limit}, cannot be less than the number of priority keys {}",
                    priority_keys.len()
                ),
            ));
        }
        Ok(Editor::Limit {
            target,
            limit,
            priority_keys,
        })
    }
}
