//! The subset of OTTL that `ottl_condition` supports, parsed at config time.
//!
//! Supported (span context): paths `name`, `kind`, `status.code`, `trace_state`,
//! `attributes["k"]`, `resource.attributes["k"]`, `instrumentation_scope.attributes["k"]`, each
//! optionally prefixed `span.` (`resource.` paths as written); literals: strings, ints, floats,
//! `true`, `false`, `nil`, `SPAN_KIND_*`, `STATUS_CODE_*`; comparisons `==`, `!=`, `<`, `<=`,
//! `>`, `>=`; `and`, `or`, `not`, parentheses. Not supported: functions/converters, span events
//! (`spanevent:` conditions), math, other paths. Comparisons follow OTTL: different types are
//! unequal (ints and floats compare numerically), ordering between different types is false,
//! a missing attribute is `nil`.

use std::cmp::Ordering;

use crate::span::{AttrValue, SpanData};

/// The supported subset, for error messages.
pub const SUPPORTED: &str = "supported OTTL subset: paths name, kind, status.code, trace_state, \
attributes[\"k\"], resource.attributes[\"k\"], instrumentation_scope.attributes[\"k\"] (optionally \
prefixed span.), literals (strings, numbers, true, false, nil, SPAN_KIND_*, STATUS_CODE_*), \
comparisons == != < <= > >=, and, or, not, parentheses; no functions";

/// A parsed condition.
#[derive(Debug, Clone, PartialEq)]
pub enum OttlExpr {
    /// Both.
    And(Box<OttlExpr>, Box<OttlExpr>),
    /// Either.
    Or(Box<OttlExpr>, Box<OttlExpr>),
    /// Negation.
    Not(Box<OttlExpr>),
    /// A comparison.
    Cmp(Operand, CmpOp, Operand),
    /// A boolean literal or boolean-valued path on its own.
    Truthy(Operand),
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

/// A path or a literal.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// `name`.
    Name,
    /// `kind` (an int).
    Kind,
    /// `status.code` (an int).
    StatusCode,
    /// `trace_state` (the raw string).
    TraceState,
    /// `attributes["k"]`.
    SpanAttr(String),
    /// `resource.attributes["k"]`.
    ResourceAttr(String),
    /// `instrumentation_scope.attributes["k"]`.
    ScopeAttr(String),
    /// A string literal.
    Str(String),
    /// An int literal (enums included).
    Int(i64),
    /// A float literal.
    Float(f64),
    /// `true` / `false`.
    Bool(bool),
    /// `nil`.
    Nil,
}

/// A value during evaluation.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Val<'a> {
    Str(&'a str),
    Int(i64),
    Float(f64),
    Bool(bool),
    Bytes(&'a [u8]),
    Nil,
    Other,
}

impl<'a> From<AttrValue<'a>> for Val<'a> {
    fn from(v: AttrValue<'a>) -> Self {
        match v {
            AttrValue::Str(s) => Val::Str(s),
            AttrValue::Bool(b) => Val::Bool(b),
            AttrValue::Int(i) => Val::Int(i),
            AttrValue::Double(d) => Val::Float(d),
            AttrValue::Bytes(b) => Val::Bytes(b),
            AttrValue::Other => Val::Other,
        }
    }
}

impl Operand {
    fn value<'a, S: SpanData>(&'a self, span: &'a S) -> Val<'a> {
        let attr = |v: Option<AttrValue<'a>>| v.map(Val::from).unwrap_or(Val::Nil);
        match self {
            Operand::Name => Val::Str(span.name()),
            Operand::Kind => Val::Int(span.kind().code()),
            Operand::StatusCode => Val::Int(span.status_code().code()),
            Operand::TraceState => Val::Str(span.trace_state()),
            Operand::SpanAttr(k) => attr(span.span_attribute(k)),
            Operand::ResourceAttr(k) => attr(span.resource_attribute(k)),
            Operand::ScopeAttr(k) => attr(span.scope_attribute(k)),
            Operand::Str(s) => Val::Str(s),
            Operand::Int(i) => Val::Int(*i),
            Operand::Float(f) => Val::Float(*f),
            Operand::Bool(b) => Val::Bool(*b),
            Operand::Nil => Val::Nil,
        }
    }
}

fn compare(a: Val<'_>, b: Val<'_>) -> Option<Ordering> {
    match (a, b) {
        (Val::Str(x), Val::Str(y)) => Some(x.cmp(y)),
        (Val::Int(x), Val::Int(y)) => Some(x.cmp(&y)),
        (Val::Float(x), Val::Float(y)) => x.partial_cmp(&y),
        (Val::Int(x), Val::Float(y)) => (x as f64).partial_cmp(&y),
        (Val::Float(x), Val::Int(y)) => x.partial_cmp(&(y as f64)),
        (Val::Bool(x), Val::Bool(y)) => Some(x.cmp(&y)),
        (Val::Bytes(x), Val::Bytes(y)) => Some(x.cmp(y)),
        (Val::Nil, Val::Nil) => Some(Ordering::Equal),
        _ => None,
    }
}

impl OttlExpr {
    /// Evaluates against one span.
    pub fn eval<S: SpanData>(&self, span: &S) -> bool {
        match self {
            OttlExpr::And(a, b) => a.eval(span) && b.eval(span),
            OttlExpr::Or(a, b) => a.eval(span) || b.eval(span),
            OttlExpr::Not(a) => !a.eval(span),
            OttlExpr::Truthy(o) => o.value(span) == Val::Bool(true),
            OttlExpr::Cmp(a, op, b) => {
                let ord = compare(a.value(span), b.value(span));
                match op {
                    CmpOp::Eq => ord == Some(Ordering::Equal),
                    CmpOp::Ne => ord != Some(Ordering::Equal),
                    CmpOp::Lt => ord == Some(Ordering::Less),
                    CmpOp::Le => matches!(ord, Some(Ordering::Less | Ordering::Equal)),
                    CmpOp::Gt => ord == Some(Ordering::Greater),
                    CmpOp::Ge => matches!(ord, Some(Ordering::Greater | Ordering::Equal)),
                }
            }
        }
    }
}

// === tokenizer ===

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(String),
    Op(CmpOp),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Dot,
}

fn tokenize(text: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some(&(i, c)) = chars.peek() {
        match c {
            ' ' | '\t' | '\n' | '\r' => {
                chars.next();
            }
            '(' | ')' | '[' | ']' | '.' => {
                chars.next();
                out.push(match c {
                    '(' => Tok::LParen,
                    ')' => Tok::RParen,
                    '[' => Tok::LBracket,
                    ']' => Tok::RBracket,
                    _ => Tok::Dot,
                });
            }
            '"' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None => return Err(format!("unterminated string starting at byte {i}")),
                        Some((_, '"')) => break,
                        Some((_, '\\')) => match chars.next() {
                            Some((_, e @ ('"' | '\\'))) => s.push(e),
                            Some((_, 'n')) => s.push('\n'),
                            Some((_, 't')) => s.push('\t'),
                            _ => return Err(format!("bad escape in string starting at byte {i}")),
                        },
                        Some((_, ch)) => s.push(ch),
                    }
                }
                out.push(Tok::Str(s));
            }
            '=' | '!' | '<' | '>' => {
                chars.next();
                let eq = chars.peek().map(|p| p.1) == Some('=');
                if eq {
                    chars.next();
                }
                let op = match (c, eq) {
                    ('=', true) => CmpOp::Eq,
                    ('!', true) => CmpOp::Ne,
                    ('<', false) => CmpOp::Lt,
                    ('<', true) => CmpOp::Le,
                    ('>', false) => CmpOp::Gt,
                    ('>', true) => CmpOp::Ge,
                    _ => return Err(format!("unexpected {c:?} at byte {i}")),
                };
                out.push(Tok::Op(op));
            }
            c if c.is_ascii_digit() || c == '-' => {
                let mut s = String::new();
                while let Some(&(_, d)) = chars.peek() {
                    if d.is_ascii_digit()
                        || d == '.'
                        || d == '-'
                        || d == 'e'
                        || d == 'E'
                        || d == '+'
                    {
                        s.push(d);
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push(Tok::Num(s));
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let mut s = String::new();
                while let Some(&(_, d)) = chars.peek() {
                    if d.is_ascii_alphanumeric() || d == '_' {
                        s.push(d);
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push(Tok::Ident(s));
            }
            other => return Err(format!("unexpected {other:?} at byte {i}")),
        }
    }
    Ok(out)
}

// === parser ===

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

/// Parses a condition; the error says what is supported.
pub fn parse(text: &str) -> Result<OttlExpr, String> {
    let mut p = Parser {
        toks: tokenize(text).map_err(|e| format!("{e}; {SUPPORTED}"))?,
        pos: 0,
    };
    let expr = p
        .or()
        .map_err(|e| format!("cannot parse {text:?}: {e}; {SUPPORTED}"))?;
    if p.pos != p.toks.len() {
        return Err(format!(
            "cannot parse {text:?}: unexpected trailing input; {SUPPORTED}"
        ));
    }
    Ok(expr)
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn keyword(&mut self, word: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Ident(w)) if w == word) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<OttlExpr, String> {
        let mut left = self.and()?;
        while self.keyword("or") {
            left = OttlExpr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<OttlExpr, String> {
        let mut left = self.unary()?;
        while self.keyword("and") {
            left = OttlExpr::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<OttlExpr, String> {
        if self.keyword("not") {
            return Ok(OttlExpr::Not(Box::new(self.unary()?)));
        }
        if self.peek() == Some(&Tok::LParen) {
            self.pos += 1;
            let e = self.or()?;
            if self.next() != Some(Tok::RParen) {
                return Err("expected ')'".to_string());
            }
            return Ok(e);
        }
        let left = self.operand()?;
        if let Some(Tok::Op(op)) = self.peek().cloned() {
            self.pos += 1;
            let right = self.operand()?;
            return Ok(OttlExpr::Cmp(left, op, right));
        }
        Ok(OttlExpr::Truthy(left))
    }

    fn bracket_key(&mut self) -> Result<String, String> {
        if self.next() != Some(Tok::LBracket) {
            return Err("expected [\"key\"] after attributes".to_string());
        }
        let Some(Tok::Str(k)) = self.next() else {
            return Err("expected a string key in attributes[...]".to_string());
        };
        if self.next() != Some(Tok::RBracket) {
            return Err("expected ']'".to_string());
        }
        Ok(k)
    }

    fn dotted(&mut self) -> Result<Vec<String>, String> {
        let mut parts = Vec::new();
        loop {
            match self.next() {
                Some(Tok::Ident(w)) => parts.push(w),
                _ => return Err("expected a path".to_string()),
            }
            if self.peek() == Some(&Tok::Dot) {
                self.pos += 1;
            } else {
                return Ok(parts);
            }
        }
    }

    fn operand(&mut self) -> Result<Operand, String> {
        match self.peek().cloned() {
            Some(Tok::Str(s)) => {
                self.pos += 1;
                Ok(Operand::Str(s))
            }
            Some(Tok::Num(n)) => {
                self.pos += 1;
                if let Ok(i) = n.parse::<i64>() {
                    Ok(Operand::Int(i))
                } else {
                    n.parse::<f64>()
                        .map(Operand::Float)
                        .map_err(|_| format!("bad number {n:?}"))
                }
            }
            Some(Tok::Ident(_)) => self.path_or_literal(),
            other => Err(format!("unexpected {other:?}")),
        }
    }

    fn path_or_literal(&mut self) -> Result<Operand, String> {
        let parts = self.dotted()?;
        let mut words: Vec<&str> = parts.iter().map(String::as_str).collect();
        if words.len() == 1 {
            if let Some(lit) = literal(words[0]) {
                return Ok(lit);
            }
        }
        if words.first() == Some(&"span") && words.len() > 1 {
            words.remove(0);
        }
        match words.as_slice() {
            ["name"] => Ok(Operand::Name),
            ["kind"] => Ok(Operand::Kind),
            ["status", "code"] => Ok(Operand::StatusCode),
            ["trace_state"] => Ok(Operand::TraceState),
            ["attributes"] => Ok(Operand::SpanAttr(self.bracket_key()?)),
            ["resource", "attributes"] => Ok(Operand::ResourceAttr(self.bracket_key()?)),
            ["instrumentation_scope", "attributes"] | ["scope", "attributes"] => {
                Ok(Operand::ScopeAttr(self.bracket_key()?))
            }
            _ => Err(format!("unsupported path or literal {:?}", parts.join("."))),
        }
    }
}

fn literal(word: &str) -> Option<Operand> {
    Some(match word {
        "true" => Operand::Bool(true),
        "false" => Operand::Bool(false),
        "nil" => Operand::Nil,
        "SPAN_KIND_UNSPECIFIED" => Operand::Int(0),
        "SPAN_KIND_INTERNAL" => Operand::Int(1),
        "SPAN_KIND_SERVER" => Operand::Int(2),
        "SPAN_KIND_CLIENT" => Operand::Int(3),
        "SPAN_KIND_PRODUCER" => Operand::Int(4),
        "SPAN_KIND_CONSUMER" => Operand::Int(5),
        "STATUS_CODE_UNSET" => Operand::Int(0),
        "STATUS_CODE_OK" => Operand::Int(1),
        "STATUS_CODE_ERROR" => Operand::Int(2),
        _ => return None,
    })
}
