//! The tokenizer: contrib's lexer rules (`grammar.go`, `buildLexer`) by hand, with columns.
//!
//! As in contrib, a sign written directly before a digit belongs to the number (`-1`), bytes
//! literals are `0x` and hex digits, a float needs a `.` (`1e3` is not a number), and strings
//! take Go's escapes.

use crate::error::{ParseError, ParseErrorKind};
use crate::value::{CmpOp, MathOp};

/// A token's kind and payload.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// A word: path segment, keyword, function or enum name.
    Ident(String),
    /// A string literal, unescaped.
    Str(String),
    /// An int literal; `signed` when written with a leading `+`/`-`.
    Int {
        value: i64,
        signed: bool,
    },
    /// A float literal; `signed` as for ints.
    Float {
        value: f64,
        signed: bool,
    },
    /// A `0x…` literal.
    Bytes(Vec<u8>),
    /// `==`, `!=`, `<`, `<=`, `>`, `>=`.
    Cmp(CmpOp),
    /// `+`, `-`, `*`, `/`.
    Math(MathOp),
    /// `=` (named arguments).
    Equal,
    LParen,
    RParen,
    LBracket,
    RBracket,
    LBrace,
    RBrace,
    Comma,
    Dot,
    Colon,
    /// End of input.
    End,
}

impl Tok {
    /// How an error message shows the token.
    pub(crate) fn describe(&self) -> String {
        match self {
            Tok::Ident(w) => format!("{w:?}"),
            Tok::Str(s) => format!("string {s:?}"),
            Tok::Int { value, .. } => format!("number {value}"),
            Tok::Float { value, .. } => format!("number {value}"),
            Tok::Bytes(_) => "bytes literal".to_string(),
            Tok::Cmp(op) => format!("{:?}", op.symbol()),
            Tok::Math(op) => format!("{:?}", op.symbol()),
            Tok::Equal => "\"=\"".to_string(),
            Tok::LParen => "\"(\"".to_string(),
            Tok::RParen => "\")\"".to_string(),
            Tok::LBracket => "\"[\"".to_string(),
            Tok::RBracket => "\"]\"".to_string(),
            Tok::LBrace => "\"{\"".to_string(),
            Tok::RBrace => "\"}\"".to_string(),
            Tok::Comma => "\",\"".to_string(),
            Tok::Dot => "\".\"".to_string(),
            Tok::Colon => "\":\"".to_string(),
            Tok::End => "end of input".to_string(),
        }
    }
}

/// A token and the 1-based character column it starts at.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub tok: Tok,
    pub column: usize,
}

/// Splits `text` into tokens, ending with [`Tok::End`].
pub(crate) fn tokenize(text: &str) -> Result<Vec<Token>, ParseError> {
    let chars: Vec<char> = text.chars().collect();
    let mut lx = Lexer { chars, pos: 0 };
    let mut out = Vec::new();
    loop {
        lx.skip_space();
        let column = lx.pos + 1;
        let Some(c) = lx.peek(0) else {
            out.push(Token {
                tok: Tok::End,
                column,
            });
            return Ok(out);
        };
        let tok = lx.token(c).map_err(|kind| ParseError { column, kind })?;
        out.push(Token { tok, column });
    }
}

/// `s` as a string literal the lexer reads back as `s` (Go's escapes for quotes, backslashes
/// and control characters).
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\U{:08x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

struct Lexer {
    chars: Vec<char>,
    pos: usize,
}

impl Lexer {
    fn peek(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.pos + ahead).copied()
    }

    fn skip_space(&mut self) {
        while self.peek(0).is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn token(&mut self, c: char) -> Result<Tok, ParseErrorKind> {
        let next = self.peek(1);
        let digit_after = |i: usize| self.peek(i).is_some_and(|d| d.is_ascii_digit());
        if c == '0'
            && matches!(next, Some('x' | 'X'))
            && self.peek(2).is_some_and(|d| d.is_ascii_hexdigit())
        {
            return self.bytes();
        }
        if c.is_ascii_digit()
            || (c == '.' && digit_after(1))
            || (matches!(c, '+' | '-') && (digit_after(1) || (next == Some('.') && digit_after(2))))
        {
            return self.number();
        }
        if c == '"' {
            return self.string();
        }
        if c.is_ascii_alphabetic() || c == '_' {
            let start = self.pos;
            while self
                .peek(0)
                .is_some_and(|d| d.is_ascii_alphanumeric() || d == '_')
            {
                self.pos += 1;
            }
            return Ok(Tok::Ident(self.chars[start..self.pos].iter().collect()));
        }
        let two = |t: Tok, this: &mut Self| {
            this.pos += 2;
            Ok(t)
        };
        match (c, next) {
            ('=', Some('=')) => return two(Tok::Cmp(CmpOp::Eq), self),
            ('!', Some('=')) => return two(Tok::Cmp(CmpOp::Ne), self),
            ('<', Some('=')) => return two(Tok::Cmp(CmpOp::Le), self),
            ('>', Some('=')) => return two(Tok::Cmp(CmpOp::Ge), self),
            _ => {}
        }
        let tok = match c {
            '<' => Tok::Cmp(CmpOp::Lt),
            '>' => Tok::Cmp(CmpOp::Gt),
            '+' => Tok::Math(MathOp::Add),
            '-' => Tok::Math(MathOp::Sub),
            '*' => Tok::Math(MathOp::Mul),
            '/' => Tok::Math(MathOp::Div),
            '=' => Tok::Equal,
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            '[' => Tok::LBracket,
            ']' => Tok::RBracket,
            '{' => Tok::LBrace,
            '}' => Tok::RBrace,
            ',' => Tok::Comma,
            '.' => Tok::Dot,
            ':' => Tok::Colon,
            other => return Err(ParseErrorKind::UnexpectedChar(other)),
        };
        self.pos += 1;
        Ok(tok)
    }

    fn take_while(&mut self, f: impl Fn(char) -> bool) -> String {
        let start = self.pos;
        while self.peek(0).is_some_and(&f) {
            self.pos += 1;
        }
        self.chars[start..self.pos].iter().collect()
    }

    fn bytes(&mut self) -> Result<Tok, ParseErrorKind> {
        self.pos += 2;
        let digits = self.take_while(|d| d.is_ascii_hexdigit());
        if digits.len() % 2 != 0 {
            return Err(ParseErrorKind::BadBytes(format!("0x{digits}")));
        }
        let nibble = |c: char| c.to_digit(16).map_or(0, |d| d as u8);
        let chars: Vec<char> = digits.chars().collect();
        Ok(Tok::Bytes(
            chars
                .chunks(2)
                .map(|pair| (nibble(pair[0]) << 4) | nibble(pair[1]))
                .collect(),
        ))
    }

    fn number(&mut self) -> Result<Tok, ParseErrorKind> {
        let mut text = String::new();
        let signed = matches!(self.peek(0), Some('+' | '-'));
        if signed {
            text.extend(self.peek(0));
            self.pos += 1;
        }
        text.push_str(&self.take_while(|d| d.is_ascii_digit()));
        let is_float =
            self.peek(0) == Some('.') && self.peek(1).is_some_and(|d| d.is_ascii_digit());
        if !is_float {
            return text
                .parse::<i64>()
                .map(|value| Tok::Int { value, signed })
                .map_err(|_| ParseErrorKind::BadNumber(text));
        }
        self.pos += 1;
        text.push('.');
        text.push_str(&self.take_while(|d| d.is_ascii_digit()));
        let exp_sign = matches!(self.peek(1), Some('+' | '-'));
        let exp_digit = self.peek(if exp_sign { 2 } else { 1 });
        if matches!(self.peek(0), Some('e' | 'E')) && exp_digit.is_some_and(|d| d.is_ascii_digit())
        {
            text.push('e');
            self.pos += 1;
            if exp_sign {
                text.extend(self.peek(0));
                self.pos += 1;
            }
            text.push_str(&self.take_while(|d| d.is_ascii_digit()));
        }
        text.parse::<f64>()
            .map(|value| Tok::Float { value, signed })
            .map_err(|_| ParseErrorKind::BadNumber(text))
    }

    fn string(&mut self) -> Result<Tok, ParseErrorKind> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.peek(0) else {
                return Err(ParseErrorKind::UnterminatedString);
            };
            self.pos += 1;
            match c {
                '"' => return Ok(Tok::Str(out)),
                '\\' => out.push(self.escape()?),
                // strconv.Unquote rejects a raw newline inside a double-quoted string.
                '\n' => return Err(ParseErrorKind::UnterminatedString),
                c => out.push(c),
            }
        }
    }

    /// One escape after `\`, as Go's `strconv.Unquote` reads it (octal and `\x` only for
    /// code points below 0x80, because a lone high byte would not be valid UTF-8).
    fn escape(&mut self) -> Result<char, ParseErrorKind> {
        let Some(c) = self.peek(0) else {
            return Err(ParseErrorKind::UnterminatedString);
        };
        self.pos += 1;
        let simple = match c {
            'a' => Some('\x07'),
            'b' => Some('\x08'),
            'f' => Some('\x0c'),
            'n' => Some('\n'),
            'r' => Some('\r'),
            't' => Some('\t'),
            'v' => Some('\x0b'),
            '\\' => Some('\\'),
            '"' => Some('"'),
            '\'' => Some('\''),
            _ => None,
        };
        if let Some(ch) = simple {
            return Ok(ch);
        }
        let (width, radix) = match c {
            'x' => (2, 16),
            'u' => (4, 16),
            'U' => (8, 16),
            '0'..='7' => {
                self.pos -= 1;
                (3, 8)
            }
            other => return Err(ParseErrorKind::BadEscape(format!("\\{other}"))),
        };
        let digits: String = (0..width).filter_map(|i| self.peek(i)).collect();
        let bad = || ParseErrorKind::BadEscape(format!("\\{c}{digits}"));
        if digits.chars().count() != width {
            return Err(bad());
        }
        let code = u32::from_str_radix(&digits, radix).map_err(|_| bad())?;
        self.pos += width;
        if matches!(c, 'x' | '0'..='7') && code >= 0x80 {
            return Err(bad());
        }
        char::from_u32(code).ok_or_else(bad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(text: &str) -> Vec<Tok> {
        tokenize(text)
            .map(|v| v.into_iter().map(|t| t.tok).collect())
            .unwrap_or_default()
    }

    #[test]
    fn numbers_signs_and_bytes() {
        assert_eq!(
            toks("-1 +2.5 .5 0xAB01 a-1 1e3"),
            vec![
                Tok::Int {
                    value: -1,
                    signed: true
                },
                Tok::Float {
                    value: 2.5,
                    signed: true
                },
                Tok::Float {
                    value: 0.5,
                    signed: false
                },
                Tok::Bytes(vec![0xab, 0x01]),
                Tok::Ident("a".into()),
                Tok::Int {
                    value: -1,
                    signed: true
                },
                Tok::Int {
                    value: 1,
                    signed: false
                },
                Tok::Ident("e3".into()),
                Tok::End,
            ]
        );
        assert_eq!(
            toks("1.5e-3"),
            vec![
                Tok::Float {
                    value: 1.5e-3,
                    signed: false
                },
                Tok::End
            ]
        );
    }

    #[test]
    fn strings_take_go_escapes() {
        assert_eq!(
            toks(r#""a\"b\\c\n\x41\u00e9\101""#),
            vec![Tok::Str("a\"b\\c\nAéA".into()), Tok::End]
        );
        let err = tokenize(r#"x == "\d""#)
            .err()
            .map(|e| (e.column, e.to_string()));
        assert_eq!(
            err,
            Some((
                6,
                r#"column 6: invalid escape sequence "\\d" in string literal"#.into()
            ))
        );
        assert!(matches!(
            tokenize("\"abc").map_err(|e| e.kind),
            Err(ParseErrorKind::UnterminatedString)
        ));
    }

    #[test]
    fn operators_and_columns() {
        let t = tokenize("a>=1 != <").unwrap_or_default();
        let cols: Vec<usize> = t.iter().map(|t| t.column).collect();
        assert_eq!(cols, vec![1, 2, 4, 6, 9, 10]);
        assert!(matches!(
            tokenize("a # b").map_err(|e| (e.column, e.kind)),
            Err((3, ParseErrorKind::UnexpectedChar('#')))
        ));
        assert_eq!(toks("0xABC").first(), None, "odd hex digits fail");
    }
}
