//! The grammar (contrib's `grammar.go`) as a recursive-descent parser producing an untyped
//! syntax tree; [`crate::bind`] then checks it against the supported subset.
//!
//! ```text
//! statement  = editor [ "where" condition ]
//! editor     = lowercase-name "(" [ arg { "," arg } ] ")"
//! condition  = term { "or" term }
//! term       = boolean { "and" boolean }
//! boolean    = [ "not" ] ( value cmp value | "true" | "false" | converter | "(" condition ")" )
//! value      = "nil" | string | bytes | "true" | "false" | ENUM | list | map | math
//! math       = product { ("+" | "-") product }
//! product    = factor { ("*" | "/") factor }
//! factor     = int | float | path | converter | "(" math ")"
//! path       = lowercase { "." lowercase } { "[" (string | int) "]" }
//! converter  = Uppercase-name "(" [ arg { "," arg } ] ")" { "[" key "]" }
//! arg        = [ lowercase "=" ] ( value | Uppercase-name )
//! ```

use crate::error::{ParseError, ParseErrorKind};
use crate::lexer::{Tok, Token};
use crate::value::{CmpOp, MathOp};

/// A syntax node and its column.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub syn: Syn,
    pub column: usize,
}

/// An index written after a path or converter.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Key {
    Str(String),
    Int(i64),
}

/// A function call as written.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Call {
    pub name: String,
    pub args: Vec<Arg>,
    /// Indexes after the call's `)`.
    pub keys: Vec<Key>,
}

/// One call argument.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Arg {
    /// `name = ` when given.
    pub name: Option<String>,
    pub value: Node,
}

/// Untyped syntax.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Syn {
    Nil,
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Bytes(Vec<u8>),
    /// An all-uppercase word not followed by `(`: an enum symbol or a function name argument.
    Upper(String),
    Path {
        /// Dotted words.
        words: Vec<String>,
        /// Indexes, with a flag for indexes written before a later `.field`.
        keys: Vec<Key>,
        keys_mid_path: bool,
    },
    Call(Call),
    Math(Box<Node>, MathOp, Box<Node>),
    List(Vec<Node>),
    // Boolean level.
    Or(Vec<Node>),
    And(Vec<Node>),
    Not(Box<Node>),
    Cmp(Box<Node>, CmpOp, Box<Node>),
}

/// A parsed statement before binding.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RawStatement {
    pub editor: Node,
    pub condition: Option<Node>,
}

/// Parses a whole statement.
pub(crate) fn statement(tokens: Vec<Token>) -> Result<RawStatement, ParseError> {
    let mut p = Parser {
        toks: tokens,
        pos: 0,
        depth: 0,
    };
    let editor = p.editor()?;
    let condition = if p.word("where") {
        Some(p.condition()?)
    } else {
        None
    };
    p.expect_end("\"where\" or end of statement")?;
    Ok(RawStatement { editor, condition })
}

/// Parses a whole condition.
pub(crate) fn condition(tokens: Vec<Token>) -> Result<Node, ParseError> {
    let mut p = Parser {
        toks: tokens,
        pos: 0,
        depth: 0,
    };
    let node = p.condition()?;
    p.expect_end("\"and\", \"or\" or end of condition")?;
    Ok(node)
}

struct Parser {
    toks: Vec<Token>,
    pos: usize,
    depth: usize,
}

fn is_lower(word: &str) -> bool {
    word.starts_with(|c: char| c.is_ascii_lowercase())
}

fn is_upper(word: &str) -> bool {
    word.starts_with(|c: char| c.is_ascii_uppercase())
}

const KEYWORDS: &[&str] = &["nil", "true", "false", "and", "or", "not", "where"];

impl Parser {
    fn peek(&self) -> &Tok {
        self.peek_at(0)
    }

    fn peek_at(&self, ahead: usize) -> &Tok {
        self.toks
            .get(self.pos + ahead)
            .map_or(&Tok::End, |t| &t.tok)
    }

    fn column(&self) -> usize {
        self.toks
            .get(self.pos)
            .or_else(|| self.toks.last())
            .map_or(1, |t| t.column)
    }

    fn bump(&mut self) -> Tok {
        let t = self.peek().clone();
        if self.pos < self.toks.len() {
            self.pos += 1;
        }
        t
    }

    fn error(&self, kind: ParseErrorKind) -> ParseError {
        ParseError {
            column: self.column(),
            kind,
        }
    }

    fn expected(&self, expected: &'static str) -> ParseError {
        self.error(ParseErrorKind::Expected {
            expected,
            found: self.peek().describe(),
        })
    }

    fn expect(&mut self, tok: Tok, expected: &'static str) -> Result<(), ParseError> {
        if *self.peek() == tok {
            self.bump();
            Ok(())
        } else {
            Err(self.expected(expected))
        }
    }

    fn expect_end(&self, expected: &'static str) -> Result<(), ParseError> {
        if *self.peek() == Tok::End {
            Ok(())
        } else {
            Err(self.expected(expected))
        }
    }

    fn word(&mut self, w: &str) -> bool {
        if matches!(self.peek(), Tok::Ident(x) if x == w) {
            self.bump();
            true
        } else {
            false
        }
    }

    /// Guards recursion so hostile input cannot exhaust the stack.
    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > crate::MAX_DEPTH {
            return Err(self.error(ParseErrorKind::TooDeep(crate::MAX_DEPTH)));
        }
        Ok(())
    }

    fn editor(&mut self) -> Result<Node, ParseError> {
        let column = self.column();
        match (self.peek().clone(), self.peek_at(1)) {
            (Tok::Ident(name), Tok::LParen) if !KEYWORDS.contains(&name.as_str()) => {
                let call = self.call(name)?;
                Ok(Node {
                    syn: Syn::Call(call),
                    column,
                })
            }
            _ => Err(self.expected("an editor call such as set(...)")),
        }
    }

    fn condition(&mut self) -> Result<Node, ParseError> {
        self.enter()?;
        let column = self.column();
        let mut terms = vec![self.term()?];
        while self.word("or") {
            terms.push(self.term()?);
        }
        self.depth -= 1;
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Node {
                syn: Syn::Or(terms),
                column,
            }
        })
    }

    fn term(&mut self) -> Result<Node, ParseError> {
        let column = self.column();
        let mut values = vec![self.boolean()?];
        while self.word("and") {
            values.push(self.boolean()?);
        }
        Ok(if values.len() == 1 {
            values.remove(0)
        } else {
            Node {
                syn: Syn::And(values),
                column,
            }
        })
    }

    fn boolean(&mut self) -> Result<Node, ParseError> {
        let column = self.column();
        if self.word("not") {
            let inner = self.boolean_value()?;
            return Ok(Node {
                syn: Syn::Not(Box::new(inner)),
                column,
            });
        }
        self.boolean_value()
    }

    /// A comparison is tried first (as contrib's grammar does); failing that, a constant, a
    /// converter or a parenthesised condition. The error reported is the one that got furthest.
    fn boolean_value(&mut self) -> Result<Node, ParseError> {
        let (start, depth) = (self.pos, self.depth);
        let column = self.column();
        let cmp_err = match self.comparison() {
            Ok(node) => return Ok(node),
            Err(e) => e,
        };
        (self.pos, self.depth) = (start, depth);
        let other = match self.peek().clone() {
            Tok::LParen => {
                self.bump();
                self.condition().and_then(|inner| {
                    self.expect(Tok::RParen, "\")\"")?;
                    Ok(inner)
                })
            }
            Tok::Ident(w) if w == "true" || w == "false" => {
                self.bump();
                Ok(Node {
                    syn: Syn::Bool(w == "true"),
                    column,
                })
            }
            Tok::Ident(w)
                if matches!(self.peek_at(1), Tok::LParen) && !KEYWORDS.contains(&w.as_str()) =>
            {
                self.call(w).map(|call| Node {
                    syn: Syn::Call(call),
                    column,
                })
            }
            _ => Err(self.expected("a comparison, true, false, a converter call or \"(\"")),
        };
        match other {
            Ok(node) => Ok(node),
            Err(e) if e.column >= cmp_err.column => Err(e),
            Err(_) => Err(cmp_err),
        }
    }

    fn comparison(&mut self) -> Result<Node, ParseError> {
        let column = self.column();
        let left = self.value()?;
        let Tok::Cmp(op) = *self.peek() else {
            return Err(self.expected("a comparison operator"));
        };
        self.bump();
        let right = self.value()?;
        Ok(Node {
            syn: Syn::Cmp(Box::new(left), op, Box::new(right)),
            column,
        })
    }

    fn value(&mut self) -> Result<Node, ParseError> {
        let column = self.column();
        let leaf = |syn| Ok(Node { syn, column });
        match self.peek().clone() {
            Tok::Ident(w) if w == "nil" => {
                self.bump();
                leaf(Syn::Nil)
            }
            Tok::Ident(w) if w == "true" || w == "false" => {
                self.bump();
                leaf(Syn::Bool(w == "true"))
            }
            Tok::Str(s) => {
                self.bump();
                leaf(Syn::Str(s))
            }
            Tok::Bytes(b) => {
                self.bump();
                leaf(Syn::Bytes(b))
            }
            Tok::LBracket => self.list(),
            Tok::LBrace => Err(self.error(ParseErrorKind::Unsupported("a map literal"))),
            Tok::Ident(w) if is_upper(&w) && !matches!(self.peek_at(1), Tok::LParen) => {
                self.bump();
                leaf(Syn::Upper(w))
            }
            _ => self.math(),
        }
    }

    fn list(&mut self) -> Result<Node, ParseError> {
        let column = self.column();
        self.enter()?;
        self.bump();
        let mut items = Vec::new();
        if *self.peek() != Tok::RBracket {
            items.push(self.value()?);
            while *self.peek() == Tok::Comma {
                self.bump();
                items.push(self.value()?);
            }
        }
        self.expect(Tok::RBracket, "\",\" or \"]\"")?;
        self.depth -= 1;
        Ok(Node {
            syn: Syn::List(items),
            column,
        })
    }

    fn math(&mut self) -> Result<Node, ParseError> {
        let mut left = self.product()?;
        loop {
            let column = self.column();
            let op = match self.peek().clone() {
                Tok::Math(op @ (MathOp::Add | MathOp::Sub)) => {
                    self.bump();
                    op
                }
                // `x -1`: contrib's lexer makes `-1` one token (and then fails to parse); we
                // read it as `x - 1`, which is what was meant.
                Tok::Int { signed: true, .. } | Tok::Float { signed: true, .. } => MathOp::Add,
                _ => return Ok(left),
            };
            let right = self.product()?;
            left = Node {
                syn: Syn::Math(Box::new(left), op, Box::new(right)),
                column,
            };
        }
    }

    fn product(&mut self) -> Result<Node, ParseError> {
        let mut left = self.factor()?;
        while let Tok::Math(op @ (MathOp::Mul | MathOp::Div)) = *self.peek() {
            let column = self.column();
            self.bump();
            let right = self.factor()?;
            left = Node {
                syn: Syn::Math(Box::new(left), op, Box::new(right)),
                column,
            };
        }
        Ok(left)
    }

    fn factor(&mut self) -> Result<Node, ParseError> {
        let column = self.column();
        match self.peek().clone() {
            Tok::Int { value, .. } => {
                self.bump();
                Ok(Node {
                    syn: Syn::Int(value),
                    column,
                })
            }
            Tok::Float { value, .. } => {
                self.bump();
                Ok(Node {
                    syn: Syn::Float(value),
                    column,
                })
            }
            Tok::LParen => {
                self.enter()?;
                self.bump();
                let inner = self.math()?;
                self.expect(Tok::RParen, "\")\" or an arithmetic operator")?;
                self.depth -= 1;
                Ok(inner)
            }
            Tok::Ident(w) if KEYWORDS.contains(&w.as_str()) => Err(self.expected("a value")),
            Tok::Ident(w) if matches!(self.peek_at(1), Tok::LParen) => {
                let call = self.call(w)?;
                Ok(Node {
                    syn: Syn::Call(call),
                    column,
                })
            }
            Tok::Ident(w) if is_lower(&w) => self.path(),
            _ => Err(self.expected("a value")),
        }
    }

    fn path(&mut self) -> Result<Node, ParseError> {
        let column = self.column();
        let mut words = Vec::new();
        let mut keys = Vec::new();
        let mut keys_mid_path = false;
        loop {
            match self.bump() {
                Tok::Ident(w) if is_lower(&w) && !KEYWORDS.contains(&w.as_str()) => words.push(w),
                _ => {
                    self.pos -= 1;
                    return Err(self.expected("a path field"));
                }
            }
            let keys_before = keys.len();
            keys.extend(self.keys()?);
            if *self.peek() != Tok::Dot {
                break;
            }
            keys_mid_path |= keys.len() > keys_before;
            self.bump();
        }
        Ok(Node {
            syn: Syn::Path {
                words,
                keys,
                keys_mid_path,
            },
            column,
        })
    }

    fn keys(&mut self) -> Result<Vec<Key>, ParseError> {
        let mut keys = Vec::new();
        while *self.peek() == Tok::LBracket {
            self.bump();
            let key = match self.bump() {
                Tok::Str(s) => Key::Str(s),
                Tok::Int { value, .. } => Key::Int(value),
                _ => {
                    self.pos -= 1;
                    return Err(self.expected("a string or int key"));
                }
            };
            self.expect(Tok::RBracket, "\"]\"")?;
            keys.push(key);
        }
        Ok(keys)
    }

    fn call(&mut self, name: String) -> Result<Call, ParseError> {
        self.enter()?;
        self.bump(); // name
        self.bump(); // (
        let mut args = Vec::new();
        if *self.peek() != Tok::RParen {
            args.push(self.arg()?);
            while *self.peek() == Tok::Comma {
                self.bump();
                args.push(self.arg()?);
            }
        }
        self.expect(Tok::RParen, "\",\" or \")\"")?;
        let keys = self.keys()?;
        self.depth -= 1;
        Ok(Call { name, args, keys })
    }

    fn arg(&mut self) -> Result<Arg, ParseError> {
        let name = match (self.peek().clone(), self.peek_at(1)) {
            (Tok::Ident(n), Tok::Equal) => {
                self.bump();
                self.bump();
                Some(n)
            }
            _ => None,
        };
        let value = self.value()?;
        Ok(Arg { name, value })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lexer::tokenize;

    fn cond(text: &str) -> Result<Node, ParseError> {
        condition(tokenize(text)?)
    }

    fn shape(n: &Node) -> String {
        match &n.syn {
            Syn::Or(v) => format!("or({})", v.iter().map(shape).collect::<Vec<_>>().join(",")),
            Syn::And(v) => format!("and({})", v.iter().map(shape).collect::<Vec<_>>().join(",")),
            Syn::Not(i) => format!("not({})", shape(i)),
            Syn::Cmp(a, op, b) => format!("({}{}{})", shape(a), op.symbol(), shape(b)),
            Syn::Math(a, op, b) => format!("[{}{}{}]", shape(a), op.symbol(), shape(b)),
            Syn::Path { words, .. } => words.join("."),
            Syn::Int(i) => i.to_string(),
            Syn::Bool(b) => b.to_string(),
            Syn::Call(c) => format!("{}/{}", c.name, c.args.len()),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn precedence() {
        let n = cond("a == 1 or not b == 2 and (c == 3 or true)").map(|n| shape(&n));
        assert_eq!(
            n.ok().as_deref(),
            Some("or((a==1),and(not((b==2)),or((c==3),true)))")
        );
        let n = cond("(end - start) / 2 > 1 + 2 * 3").map(|n| shape(&n));
        assert_eq!(n.ok().as_deref(), Some("([[end-start]/2]>[1+[2*3]])"));
        let n = cond("x -1 == 0").map(|n| shape(&n));
        assert_eq!(n.ok().as_deref(), Some("([x+-1]==0)"));
        let n = cond("IsMatch(name, \"x\")").map(|n| shape(&n));
        assert_eq!(n.ok().as_deref(), Some("IsMatch/2"));
    }

    #[test]
    fn errors_point_at_the_furthest_failure() {
        let e = cond("name == ").err().map(|e| (e.column, e.to_string()));
        assert_eq!(
            e,
            Some((9, "column 9: expected a value, found end of input".into()))
        );
        let e = cond("name ==\"x\" and").err().map(|e| e.column);
        assert_eq!(e, Some(15));
        let e = cond("(name == \"x\"").err().map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("column 13: expected \")\", found end of input")
        );
        let e = cond("attributes[\"a\"] == {}").err().map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("column 20: a map literal is not supported")
        );
    }

    #[test]
    fn depth_is_bounded() {
        let deep = format!("{}true{}", "(".repeat(200), ")".repeat(200));
        assert!(matches!(
            cond(&deep).map_err(|e| e.kind),
            Err(ParseErrorKind::TooDeep(_))
        ));
    }
}
