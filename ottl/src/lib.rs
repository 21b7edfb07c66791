#![doc = include_str!("../README.md")]

mod bind;
mod editor;
mod error;
mod expr;
mod glob;
mod go_regex;
mod lexer;
mod path;
mod print;
mod syntax;
mod value;

pub use editor::{AttrVec, AttributeMap, Target};
pub use error::{EvalError, ParseError, ParseErrorKind};
pub use expr::Source;
pub use path::{Context, Entity, Field, Path};
pub use value::{arithmetic, compare, CmpOp, MathOp, Value};

use std::str::FromStr;

/// Longest statement or condition text accepted, in bytes.
pub const MAX_TEXT_LEN: usize = 64 * 1024;

/// Deepest nesting of parentheses, lists and calls accepted.
pub const MAX_DEPTH: usize = 32;

/// A parsed condition for one context.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    context: Context,
    expr: expr::BoolExpr,
}

impl Condition {
    /// Evaluates the condition against `src`.
    pub fn eval<S: Source + ?Sized>(&self, src: &S) -> Result<bool, EvalError> {
        self.expr.eval(src)
    }

    /// The context it was parsed for.
    pub fn context(&self) -> Context {
        self.context
    }

    /// Calls `f` for every path the condition reads, so a caller can reject at validation the
    /// paths its telemetry cannot provide.
    pub fn paths(&self, f: &mut dyn FnMut(&Path)) {
        self.expr.visit_paths(f);
    }
}

/// A parsed statement (editor call and optional `where` condition) for one context.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    context: Context,
    editor: editor::Editor,
    condition: Option<expr::BoolExpr>,
}

impl Statement {
    /// Runs the statement: evaluates the `where` condition (if any) and, when it holds, the
    /// editor. Returns whether the editor ran.
    pub fn execute<T: Target + ?Sized>(&self, target: &mut T) -> Result<bool, EvalError> {
        if let Some(c) = &self.condition {
            if !c.eval(&*target)? {
                return Ok(false);
            }
        }
        self.editor.execute(target)?;
        Ok(true)
    }

    /// The context it was parsed for.
    pub fn context(&self) -> Context {
        self.context
    }

    /// The editor's name (`set`, `keep_keys`, …).
    pub fn editor_name(&self) -> &'static str {
        self.editor.name()
    }

    /// Calls `f` for every path the statement reads or writes (whole maps as
    /// `Field::Attributes`).
    pub fn paths(&self, f: &mut dyn FnMut(&Path)) {
        self.editor.visit_paths(f);
        if let Some(c) = &self.condition {
            c.visit_paths(f);
        }
    }
}

fn check_len(text: &str) -> Result<(), ParseError> {
    if text.len() > MAX_TEXT_LEN {
        return Err(ParseError {
            column: 1,
            kind: ParseErrorKind::TooLong(MAX_TEXT_LEN),
        });
    }
    Ok(())
}

/// Parses a condition (as the filter processor, routing connector and `ottl_condition` take
/// them) for `context`.
pub fn parse_condition(text: &str, context: Context) -> Result<Condition, ParseError> {
    check_len(text)?;
    let node = syntax::condition(lexer::tokenize(text)?)?;
    Ok(Condition {
        context,
        expr: bind::condition(context, node)?,
    })
}

/// Parses a statement (as the transform processor takes them) for `context`.
pub fn parse_statement(text: &str, context: Context) -> Result<Statement, ParseError> {
    check_len(text)?;
    let raw = syntax::statement(lexer::tokenize(text)?)?;
    Ok(Statement {
        context,
        editor: bind::editor(context, raw.editor)?,
        condition: raw
            .condition
            .map(|c| bind::condition(context, c))
            .transpose()?,
    })
}

/// Parses a routing connector `statement`, contrib's `route() where <condition>`, for
/// `context`: the condition, or `None` for a bare `route()` (every item routes).
pub fn parse_route_statement(
    text: &str,
    context: Context,
) -> Result<Option<Condition>, ParseError> {
    check_len(text)?;
    let raw = syntax::statement(lexer::tokenize(text)?)?;
    let column = raw.editor.column;
    match &raw.editor.syn {
        syntax::Syn::Call(call) if call.name == "route" => {
            if let Some(arg) = call.args.first() {
                return Err(ParseError {
                    column: arg.value.column,
                    kind: ParseErrorKind::BadArgument {
                        function: "route",
                        message: "takes no arguments".to_string(),
                    },
                });
            }
        }
        syntax::Syn::Call(call) => {
            return Err(ParseError {
                column,
                kind: ParseErrorKind::UnsupportedFunction(call.name.clone()),
            })
        }
        _ => {
            return Err(ParseError {
                column,
                kind: ParseErrorKind::Expected {
                    expected: "route()",
                    found: "something else".to_string(),
                },
            })
        }
    }
    raw.condition
        .map(|c| {
            Ok(Condition {
                context,
                expr: bind::condition(context, c)?,
            })
        })
        .transpose()
}

/// What a component does with an [`EvalError`] (contrib's `error_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ErrorMode {
    /// Log the error and go on (the condition counts as false, the statement as not run).
    Ignore,
    /// Go on without logging.
    Silent,
    /// Fail the item or batch (contrib's default).
    #[default]
    Propagate,
}

impl FromStr for ErrorMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ignore" => Ok(ErrorMode::Ignore),
            "silent" => Ok(ErrorMode::Silent),
            "propagate" => Ok(ErrorMode::Propagate),
            other => Err(format!(
                "unknown error_mode {other:?}; supported: propagate, ignore, silent"
            )),
        }
    }
}
