//! Printing bound conditions and statements back to OTTL text that parses to the same tree
//! (for logs and config dumps; the round trip is property-tested). Enums print as their ints,
//! paths with their entity prefix (`span.name`), arithmetic fully parenthesised.

use std::fmt::{self, Display, Formatter, Write};

use crate::editor::{Editor, Mode, Replacement};
use crate::expr::{BoolExpr, Converter, Expr};
use crate::lexer::quote;
use crate::path::{Entity, Field, Path};
use crate::value::{hex, Value};
use crate::{Condition, Statement};

impl Display for Condition {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        self.expr.fmt(f)
    }
}

impl Display for Statement {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        self.editor.fmt(f)?;
        if let Some(c) = &self.condition {
            write!(f, " where {c}")?;
        }
        Ok(())
    }
}

/// Prints `e`, in parentheses when it is an `and`/`or` list (or, under `not`, another `not`),
/// so that the nesting survives re-parsing.
fn grouped(e: &BoolExpr, f: &mut Formatter<'_>, under_not: bool) -> fmt::Result {
    match e {
        BoolExpr::Or(_) | BoolExpr::And(_) => write!(f, "({e})"),
        BoolExpr::Not(_) if under_not => write!(f, "({e})"),
        _ => e.fmt(f),
    }
}

impl Display for BoolExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let joined = |f: &mut Formatter<'_>, items: &[BoolExpr], sep: &str| {
            for (i, e) in items.iter().enumerate() {
                if i > 0 {
                    f.write_str(sep)?;
                }
                grouped(e, f, false)?;
            }
            Ok(())
        };
        match self {
            BoolExpr::Or(v) => joined(f, v, " or "),
            BoolExpr::And(v) => joined(f, v, " and "),
            BoolExpr::Not(e) => {
                f.write_str("not ")?;
                grouped(e, f, true)
            }
            BoolExpr::Cmp(a, op, b) => write!(f, "{a} {} {b}", op.symbol()),
            BoolExpr::Const(b) => write!(f, "{b}"),
            BoolExpr::Call(c) => c.fmt(f),
        }
    }
}

impl Display for Expr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Literal(v) => literal(v, f),
            Expr::Path(p) => p.fmt(f),
            Expr::Call(c) => c.fmt(f),
            Expr::Math(a, op, b) => write!(f, "({a} {} {b})", op.symbol()),
        }
    }
}

fn literal(v: &Value<'_>, f: &mut Formatter<'_>) -> fmt::Result {
    match v {
        Value::Nil => f.write_str("nil"),
        Value::Str(s) => f.write_str(&quote(s)),
        Value::Int(i) => write!(f, "{i}"),
        Value::Double(d) => {
            // Rust prints the shortest round-tripping digits without an exponent; the lexer
            // needs a `.` to read a float.
            let text = format!("{d}");
            f.write_str(&text)?;
            if !text.contains('.') {
                f.write_str(".0")?;
            }
            Ok(())
        }
        Value::Bool(b) => write!(f, "{b}"),
        Value::Bytes(b) => write!(f, "0x{}", hex(b)),
        // Not produced by the parser (no literal syntax); printed for completeness.
        Value::Time(n) | Value::Duration(n) => write!(f, "{n}"),
        Value::Map => f.write_str("{}"),
        Value::Slice => f.write_str("[]"),
    }
}

impl Display for Converter {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Converter::IsMatch { target, pattern } => {
                write!(f, "IsMatch({target}, {})", quote(&pattern.text))
            }
            Converter::Concat { values, delimiter } => {
                f.write_str("Concat([")?;
                for (i, v) in values.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    v.fmt(f)?;
                }
                write!(f, "], {delimiter})")
            }
            Converter::Sha256(e) => write!(f, "SHA256({e})"),
        }
    }
}

fn map(entity: Entity) -> Path {
    Path {
        entity,
        field: Field::Attributes,
    }
}

fn strings(keys: &[String]) -> String {
    let mut out = String::from("[");
    for (i, k) in keys.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&quote(k));
    }
    out.push(']');
    out
}

fn replacement(r: &Replacement) -> String {
    let mut out = r.text.to_string();
    if r.hashed {
        out.push_str(", SHA256");
        if let Some(format) = &r.format {
            let _ = write!(out, ", {format}");
        }
    }
    out
}

impl Display for Editor {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let name = self.name();
        match self {
            Editor::Set { target, value } => write!(f, "{name}({target}, {value})"),
            Editor::DeleteKey { target, key } => {
                write!(f, "{name}({}, {})", map(*target), quote(key))
            }
            Editor::DeleteMatchingKeys { target, pattern }
            | Editor::KeepMatchingKeys { target, pattern } => {
                write!(f, "{name}({}, {})", map(*target), quote(&pattern.text))
            }
            Editor::KeepKeys { target, keys } => {
                write!(f, "{name}({}, {})", map(*target), strings(keys))
            }
            Editor::ReplacePattern {
                target,
                pattern,
                replacement: r,
            } => write!(
                f,
                "{name}({target}, {}, {})",
                quote(&pattern.text),
                replacement(r)
            ),
            Editor::ReplaceAllPatterns {
                target,
                mode,
                pattern,
                replacement: r,
            } => write!(
                f,
                "{name}({}, {}, {}, {})",
                map(*target),
                quote(match mode {
                    Mode::Key => "key",
                    Mode::Value => "value",
                }),
                quote(&pattern.text),
                replacement(r)
            ),
            Editor::ReplaceMatch {
                target,
                glob_text,
                replacement,
                ..
            } => write!(f, "{name}({target}, {}, {replacement})", quote(glob_text)),
            Editor::TruncateAll { target, limit } => {
                write!(f, "{name}({}, {limit})", map(*target))
            }
            Editor::Limit {
                target,
                limit,
                priority_keys,
            } => write!(
                f,
                "{name}({}, {limit}, {})",
                map(*target),
                strings(priority_keys)
            ),
        }
    }
}
