//! OTTL values and the language's comparison and arithmetic rules.

use std::borrow::Cow;
use std::cmp::Ordering;

use crate::error::EvalError;

/// A value as OTTL sees it. Strings and bytes borrow from the caller's telemetry where they can.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    /// `nil`: a missing attribute, or the literal.
    Nil,
    /// A string.
    Str(Cow<'a, str>),
    /// A 64-bit signed integer (enums and `kind`/`status.code` included).
    Int(i64),
    /// A 64-bit float.
    Double(f64),
    /// A boolean.
    Bool(bool),
    /// Bytes (`0x…` literals, bytes attributes, IDs).
    Bytes(Cow<'a, [u8]>),
    /// A point in time, Unix nanoseconds (`start_time`, `end_time`, `time`).
    Time(i64),
    /// A duration in nanoseconds (the difference of two times).
    Duration(i64),
    /// A map (a whole attribute map or a kvlist attribute): present but opaque to this subset.
    Map,
    /// An array attribute: present but opaque to this subset.
    Slice,
}

impl Value<'_> {
    /// The value with no borrows, for handing to a setter.
    pub fn into_owned(self) -> Value<'static> {
        match self {
            Value::Nil => Value::Nil,
            Value::Str(s) => Value::Str(Cow::Owned(s.into_owned())),
            Value::Int(i) => Value::Int(i),
            Value::Double(d) => Value::Double(d),
            Value::Bool(b) => Value::Bool(b),
            Value::Bytes(b) => Value::Bytes(Cow::Owned(b.into_owned())),
            Value::Time(t) => Value::Time(t),
            Value::Duration(d) => Value::Duration(d),
            Value::Map => Value::Map,
            Value::Slice => Value::Slice,
        }
    }

    /// The type's name as error messages give it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "nil",
            Value::Str(_) => "string",
            Value::Int(_) => "int",
            Value::Double(_) => "double",
            Value::Bool(_) => "bool",
            Value::Bytes(_) => "bytes",
            Value::Time(_) => "time",
            Value::Duration(_) => "duration",
            Value::Map => "map",
            Value::Slice => "slice",
        }
    }

    /// The value as contrib's `StringLikeGetter` converts it: `None` for nil; numbers and bools
    /// in their usual text; bytes as lowercase hex. Maps and slices (which contrib renders as
    /// JSON) are an error here because this subset keeps them opaque.
    pub fn to_string_like(&self, site: &'static str) -> Result<Option<Cow<'_, str>>, EvalError> {
        Ok(Some(match self {
            Value::Nil => return Ok(None),
            Value::Str(s) => Cow::Borrowed(s.as_ref()),
            Value::Int(i) => Cow::Owned(i.to_string()),
            Value::Double(d) => Cow::Owned(format_double(*d)),
            Value::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
            Value::Bytes(b) => Cow::Owned(hex(b)),
            Value::Time(_) | Value::Duration(_) | Value::Map | Value::Slice => {
                return Err(EvalError::Type {
                    site,
                    expected: "a string-like value",
                    got: self.type_name(),
                })
            }
        }))
    }
}

/// Go's `strconv.FormatFloat(d, 'f', -1, 64)`: shortest text that round-trips, no exponent.
fn format_double(d: f64) -> String {
    if d.is_nan() {
        "NaN".to_string()
    } else if d.is_infinite() {
        if d > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else {
        format!("{d}")
    }
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl CmpOp {
    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }

    fn holds(self, ord: Ordering) -> bool {
        match self {
            CmpOp::Eq => ord == Ordering::Equal,
            CmpOp::Ne => ord != Ordering::Equal,
            CmpOp::Lt => ord == Ordering::Less,
            CmpOp::Le => ord != Ordering::Greater,
            CmpOp::Gt => ord == Ordering::Greater,
            CmpOp::Ge => ord != Ordering::Less,
        }
    }
}

/// Compares as contrib's `compare.go` does: nil equals only nil (and `nil <= nil`); ints and
/// floats compare numerically; strings, bytes, bools, times and durations compare within their
/// type; any other pairing is unequal and never ordered (`!=` is its only true operator). Maps
/// and slices are opaque here, so they are never equal to anything (contrib compares contents).
pub fn compare(a: &Value<'_>, b: &Value<'_>, op: CmpOp) -> bool {
    let ord = match (a, b) {
        (Value::Nil, Value::Nil) => Some(Ordering::Equal),
        (Value::Str(x), Value::Str(y)) => Some(x.as_ref().cmp(y.as_ref())),
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(y)),
        (Value::Int(x), Value::Double(y)) => (*x as f64).partial_cmp(y),
        (Value::Double(x), Value::Int(y)) => x.partial_cmp(&(*y as f64)),
        (Value::Double(x), Value::Double(y)) => x.partial_cmp(y),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        (Value::Bytes(x), Value::Bytes(y)) => Some(x.as_ref().cmp(y.as_ref())),
        (Value::Time(x), Value::Time(y)) | (Value::Duration(x), Value::Duration(y)) => {
            Some(x.cmp(y))
        }
        _ => None,
    };
    match ord {
        Some(ord) => op.holds(ord),
        // NaN against a number lands here too: Go's `==` and `<` are false for NaN, `!=` true.
        None => op == CmpOp::Ne,
    }
}

/// An arithmetic operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MathOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
}

impl MathOp {
    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            MathOp::Add => "+",
            MathOp::Sub => "-",
            MathOp::Mul => "*",
            MathOp::Div => "/",
        }
    }
}

/// Applies `op` as contrib's `math.go` does: int with int stays int (wrapping, as Go's int64
/// does); a float on either side makes it float; time − time is a duration; time ± duration is a
/// time; duration ± duration is a duration. Anything else is a type error.
pub fn arithmetic(
    left: &Value<'_>,
    op: MathOp,
    right: &Value<'_>,
) -> Result<Value<'static>, EvalError> {
    match (left, right) {
        (Value::Int(x), Value::Int(y)) => int_op(*x, op, *y).map(Value::Int),
        (Value::Int(x), Value::Double(y)) => float_op(*x as f64, op, *y),
        (Value::Double(x), Value::Int(y)) => float_op(*x, op, *y as f64),
        (Value::Double(x), Value::Double(y)) => float_op(*x, op, *y),
        (Value::Time(x), Value::Time(y)) if op == MathOp::Sub => {
            Ok(Value::Duration(x.wrapping_sub(*y)))
        }
        (Value::Time(x), Value::Duration(y)) if matches!(op, MathOp::Add | MathOp::Sub) => {
            int_op(*x, op, *y).map(Value::Time)
        }
        (Value::Duration(x), Value::Time(y)) if op == MathOp::Add => {
            Ok(Value::Time(x.wrapping_add(*y)))
        }
        (Value::Duration(x), Value::Duration(y)) if matches!(op, MathOp::Add | MathOp::Sub) => {
            int_op(*x, op, *y).map(Value::Duration)
        }
        _ => Err(EvalError::Type {
            site: op.symbol(),
            expected: match left {
                Value::Int(_) | Value::Double(_) => "int or double on both sides",
                Value::Time(_) | Value::Duration(_) => "a time or duration operand it supports",
                _ => "int, double, time or duration",
            },
            got: if matches!(left, Value::Int(_) | Value::Double(_) | Value::Time(_)) {
                right.type_name()
            } else {
                left.type_name()
            },
        }),
    }
}

fn int_op(x: i64, op: MathOp, y: i64) -> Result<i64, EvalError> {
    Ok(match op {
        MathOp::Add => x.wrapping_add(y),
        MathOp::Sub => x.wrapping_sub(y),
        MathOp::Mul => x.wrapping_mul(y),
        MathOp::Div => {
            if y == 0 {
                return Err(EvalError::DivideByZero);
            }
            x.wrapping_div(y)
        }
    })
}

fn float_op(x: f64, op: MathOp, y: f64) -> Result<Value<'static>, EvalError> {
    Ok(Value::Double(match op {
        MathOp::Add => x + y,
        MathOp::Sub => x - y,
        MathOp::Mul => x * y,
        MathOp::Div => {
            if y == 0.0 {
                return Err(EvalError::DivideByZero);
            }
            x / y
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Value<'_> {
        Value::Str(Cow::Borrowed(v))
    }

    #[test]
    fn different_types_are_unequal_and_unordered() {
        for op in [CmpOp::Eq, CmpOp::Lt, CmpOp::Le, CmpOp::Gt, CmpOp::Ge] {
            assert!(!compare(&s("1"), &Value::Int(1), op), "{op:?}");
            assert!(!compare(&Value::Nil, &Value::Int(1), op), "{op:?}");
        }
        assert!(compare(&s("1"), &Value::Int(1), CmpOp::Ne));
        assert!(compare(&Value::Nil, &s(""), CmpOp::Ne));
    }

    #[test]
    fn nil_equals_nil_inclusively() {
        for (op, want) in [
            (CmpOp::Eq, true),
            (CmpOp::Ne, false),
            (CmpOp::Le, true),
            (CmpOp::Ge, true),
            (CmpOp::Lt, false),
            (CmpOp::Gt, false),
        ] {
            assert_eq!(compare(&Value::Nil, &Value::Nil, op), want, "{op:?}");
        }
    }

    #[test]
    fn ints_and_doubles_compare_numerically() {
        assert!(compare(&Value::Int(10), &Value::Double(10.0), CmpOp::Eq));
        assert!(compare(&Value::Double(10.5), &Value::Int(10), CmpOp::Gt));
        assert!(compare(&s("a"), &s("b"), CmpOp::Lt));
        assert!(compare(&Value::Bool(false), &Value::Bool(true), CmpOp::Lt));
        assert!(compare(
            &Value::Bytes(Cow::Borrowed(&[1])),
            &Value::Bytes(Cow::Borrowed(&[2])),
            CmpOp::Lt
        ));
        assert!(!compare(&Value::Map, &Value::Map, CmpOp::Eq));
    }

    #[test]
    fn arithmetic_follows_the_operand_types() {
        assert_eq!(
            arithmetic(&Value::Int(7), MathOp::Div, &Value::Int(2)),
            Ok(Value::Int(3))
        );
        assert_eq!(
            arithmetic(&Value::Int(1), MathOp::Add, &Value::Double(0.5)),
            Ok(Value::Double(1.5))
        );
        assert_eq!(
            arithmetic(&Value::Time(10), MathOp::Sub, &Value::Time(4)),
            Ok(Value::Duration(6))
        );
        assert_eq!(
            arithmetic(&Value::Time(10), MathOp::Add, &Value::Duration(4)),
            Ok(Value::Time(14))
        );
        assert_eq!(
            arithmetic(&Value::Int(1), MathOp::Div, &Value::Int(0)),
            Err(EvalError::DivideByZero)
        );
        assert!(matches!(
            arithmetic(&s("a"), MathOp::Add, &Value::Int(1)),
            Err(EvalError::Type { got: "string", .. })
        ));
        assert!(matches!(
            arithmetic(&Value::Int(1), MathOp::Add, &Value::Nil),
            Err(EvalError::Type { got: "nil", .. })
        ));
    }

    #[test]
    fn string_like_conversion() {
        assert_eq!(
            Value::Double(1.5)
                .to_string_like("t")
                .ok()
                .flatten()
                .as_deref(),
            Some("1.5")
        );
        assert_eq!(
            Value::Bytes(Cow::Borrowed(&[0xab, 1]))
                .to_string_like("t")
                .ok()
                .flatten()
                .as_deref(),
            Some("ab01")
        );
        assert_eq!(Value::Nil.to_string_like("t"), Ok(None));
    }
}
