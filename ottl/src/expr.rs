//! Bound expressions (typed, regexes compiled) and their evaluation against a [`Source`].

use std::borrow::Cow;
use std::fmt;

use regex::Regex;
use sha2::{Digest, Sha256};

use crate::error::EvalError;
use crate::path::Path;
use crate::value::{arithmetic, compare, hex, CmpOp, MathOp, Value};

/// Read access to the telemetry a condition looks at. The sampler implements it over its decoded
/// spans, the proxy over its wire view.
pub trait Source {
    /// The value at `path`: `Value::Nil` for a missing attribute, the field's value otherwise.
    /// A path the implementation cannot provide is `Err(EvalError::Unavailable)`; callers
    /// should reject such paths at validation time (see [`crate::Condition::paths`]).
    fn get(&self, path: &Path) -> Result<Value<'_>, EvalError>;
}

/// A compiled regex and the pattern as written; compares by the text (so bound trees can
/// derive `PartialEq`).
#[derive(Clone)]
pub(crate) struct Pattern {
    pub regex: Regex,
    pub text: String,
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}/", self.text)
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

/// A value expression.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    Literal(Value<'static>),
    Path(Path),
    Call(Box<Converter>),
    Math(Box<Expr>, MathOp, Box<Expr>),
}

/// A boolean expression.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum BoolExpr {
    Or(Vec<BoolExpr>),
    And(Vec<BoolExpr>),
    Not(Box<BoolExpr>),
    Cmp(Expr, CmpOp, Expr),
    Const(bool),
    /// A converter that returns a bool (`IsMatch`).
    Call(Box<Converter>),
}

/// The supported converters.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Converter {
    /// `IsMatch(target, pattern)`: bool; nil target is false.
    IsMatch { target: Expr, pattern: Pattern },
    /// `Concat(values, delimiter)`: string; nil values print `<nil>`.
    Concat { values: Vec<Expr>, delimiter: Expr },
    /// `SHA256(value)`: lowercase hex string of the digest of a string.
    Sha256(Expr),
}

impl Converter {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Converter::IsMatch { .. } => "IsMatch",
            Converter::Concat { .. } => "Concat",
            Converter::Sha256(_) => "SHA256",
        }
    }
}

impl Expr {
    pub(crate) fn eval<'s, S: Source + ?Sized>(
        &'s self,
        src: &'s S,
    ) -> Result<Value<'s>, EvalError> {
        match self {
            Expr::Literal(v) => Ok(borrow(v)),
            Expr::Path(p) => src.get(p),
            Expr::Call(c) => c.eval(src),
            Expr::Math(a, op, b) => {
                let (a, b) = (a.eval(src)?, b.eval(src)?);
                arithmetic(&a, *op, &b)
            }
        }
    }

    /// Calls `f` for every path in the expression.
    pub(crate) fn visit_paths(&self, f: &mut dyn FnMut(&Path)) {
        match self {
            Expr::Literal(_) => {}
            Expr::Path(p) => f(p),
            Expr::Call(c) => c.visit_paths(f),
            Expr::Math(a, _, b) => {
                a.visit_paths(f);
                b.visit_paths(f);
            }
        }
    }

    /// Evaluates to a string (contrib's `StringGetter`): anything else is a type error.
    pub(crate) fn eval_string<'s, S: Source + ?Sized>(
        &'s self,
        src: &'s S,
        site: &'static str,
    ) -> Result<Cow<'s, str>, EvalError> {
        match self.eval(src)? {
            Value::Str(s) => Ok(s),
            other => Err(EvalError::Type {
                site,
                expected: "string",
                got: other.type_name(),
            }),
        }
    }
}

/// A literal's value borrowed for the evaluation's lifetime (no copy of literal strings).
fn borrow<'s>(v: &'s Value<'static>) -> Value<'s> {
    match v {
        Value::Str(s) => Value::Str(Cow::Borrowed(s.as_ref())),
        Value::Bytes(b) => Value::Bytes(Cow::Borrowed(b.as_ref())),
        other => other.clone(),
    }
}

impl Converter {
    fn eval<'s, S: Source + ?Sized>(&'s self, src: &'s S) -> Result<Value<'s>, EvalError> {
        match self {
            Converter::IsMatch { target, pattern } => {
                let v = target.eval(src)?;
                let s = v.to_string_like("IsMatch")?;
                Ok(Value::Bool(s.is_some_and(|s| pattern.regex.is_match(&s))))
            }
            Converter::Concat { values, delimiter } => {
                let delimiter = delimiter.eval_string(src, "Concat")?;
                let mut out = String::new();
                for (i, e) in values.iter().enumerate() {
                    if i > 0 {
                        out.push_str(&delimiter);
                    }
                    let v = e.eval(src)?;
                    match v.to_string_like("Concat")? {
                        Some(s) => out.push_str(&s),
                        None => out.push_str("<nil>"),
                    }
                }
                Ok(Value::Str(Cow::Owned(out)))
            }
            Converter::Sha256(e) => {
                let s = e.eval_string(src, "SHA256")?;
                Ok(Value::Str(Cow::Owned(sha256_hex(&s))))
            }
        }
    }

    fn visit_paths(&self, f: &mut dyn FnMut(&Path)) {
        match self {
            Converter::IsMatch { target, .. } => target.visit_paths(f),
            Converter::Concat { values, delimiter } => {
                values.iter().for_each(|v| v.visit_paths(f));
                delimiter.visit_paths(f);
            }
            Converter::Sha256(e) => e.visit_paths(f),
        }
    }
}

/// Lowercase hex SHA-256 of `s` (contrib's `SHA256` converter).
pub(crate) fn sha256_hex(s: &str) -> String {
    hex(&Sha256::digest(s.as_bytes()))
}

impl BoolExpr {
    pub(crate) fn eval<S: Source + ?Sized>(&self, src: &S) -> Result<bool, EvalError> {
        Ok(match self {
            // Short-circuits as contrib does: a later operand's error is not seen when an
            // earlier one decides.
            BoolExpr::Or(v) => {
                for e in v {
                    if e.eval(src)? {
                        return Ok(true);
                    }
                }
                false
            }
            BoolExpr::And(v) => {
                for e in v {
                    if !e.eval(src)? {
                        return Ok(false);
                    }
                }
                true
            }
            BoolExpr::Not(e) => !e.eval(src)?,
            BoolExpr::Cmp(a, op, b) => compare(&a.eval(src)?, &b.eval(src)?, *op),
            BoolExpr::Const(b) => *b,
            BoolExpr::Call(c) => match c.eval(src)? {
                Value::Bool(b) => b,
                other => {
                    return Err(EvalError::Type {
                        site: c.name(),
                        expected: "bool",
                        got: other.type_name(),
                    })
                }
            },
        })
    }

    pub(crate) fn visit_paths(&self, f: &mut dyn FnMut(&Path)) {
        match self {
            BoolExpr::Or(v) | BoolExpr::And(v) => v.iter().for_each(|e| e.visit_paths(f)),
            BoolExpr::Not(e) => e.visit_paths(f),
            BoolExpr::Cmp(a, _, b) => {
                a.visit_paths(f);
                b.visit_paths(f);
            }
            BoolExpr::Const(_) => {}
            BoolExpr::Call(c) => c.visit_paths(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_matches_the_standard_vector() {
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
