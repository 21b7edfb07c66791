//! A subset of the OpenTelemetry Transformation Language (OTTL) with collector-contrib
//! v0.115.0's `pkg/ottl` semantics, shared by the `filter` and `transform` processors, the
//! `routing` connector and the sampler's `ottl_condition` policy.
//!
//! Text is parsed once (at config time) into a [`Condition`] or a [`Statement`] for one
//! [`Context`]; regexes are compiled then. Evaluation runs against the caller's telemetry
//! through [`Source`] (read) and [`Target`] (write) and returns typed [`EvalError`]s; what an
//! error does (`error_mode`) is the caller's choice ([`ErrorMode`]).
//!
//! ```
//! use tailgate_ottl::{parse_condition, Context, EvalError, Field, Path, Source, Value};
//!
//! struct Span { name: &'static str }
//! impl Source for Span {
//!     fn get(&self, path: &Path) -> Result<Value<'_>, EvalError> {
//!         match path.field {
//!             Field::Name => Ok(Value::Str(self.name.into())),
//!             _ => Ok(Value::Nil),
//!         }
//!     }
//! }
//! let c = parse_condition(r#"IsMatch(name, "^GET ") and attributes["x"] == nil"#, Context::Span)?;
//! assert_eq!(c.eval(&Span { name: "GET /" }), Ok(true));
//! # Ok::<(), tailgate_ottl::ParseError>(())
//! ```
//!
//! # The supported subset (everything else fails to parse, naming the construct)
//!
//! **Contexts and paths** (a leading context name, e.g. `span.name` in the span context, is
//! accepted; `attributes` alone is the whole map, `attributes["k"]` one attribute, nil when
//! missing):
//! - `resource`: `attributes`.
//! - `scope`: `name`, `version`, `attributes`, `resource.attributes`.
//! - `span`: `name`, `kind`, `status.code`, `status.message`, `trace_id`, `trace_id.string`,
//!   `span_id`, `span_id.string`, `parent_span_id`, `parent_span_id.string`, `trace_state`,
//!   `start_time_unix_nano`, `end_time_unix_nano`, `start_time`, `end_time`, `attributes`,
//!   `resource.attributes`, `instrumentation_scope.name` / `.version` / `.attributes`
//!   (`scope.` is accepted for `instrumentation_scope.`).
//! - `spanevent`: `name`, `time_unix_nano`, `time`, `attributes`, every span path above
//!   prefixed `span.` (`span.name`, `span.attributes["k"]`, …), `resource.attributes`,
//!   `instrumentation_scope.*`.
//!
//! **Literals**: strings with Go's escapes, ints, floats (`1.5`, `.5`, `1.5e3`; `1e3` is not a
//! number, as in contrib), `true`, `false`, `nil`, bytes `0x…`, and in the span and span event
//! contexts `SPAN_KIND_*` and `STATUS_CODE_*` (ints). Lists `[a, b]` only as function arguments.
//!
//! **Conditions**: comparisons `==` `!=` `<` `<=` `>` `>=`, `and`, `or`, `not`, parentheses,
//! `true` / `false`, and `IsMatch(...)` on its own. A bare path is not a condition (as in
//! contrib). Comparison rules are contrib's: values of different types are unequal and never
//! ordered (ints and floats compare numerically); nil equals only nil; strings, bytes, bools,
//! times and durations order within their type. Maps and slices are opaque (never equal).
//!
//! **Arithmetic**: `+ - * /` with the usual precedence and parentheses, on ints (wrapping),
//! floats (either side float makes a float), times (`time − time` is a duration, `time ±
//! duration` a time) and durations; division by zero and other types are evaluation errors.
//!
//! **Converters**: `IsMatch(target, pattern)`, `Concat([values], delimiter)` (nil prints
//! `<nil>`), `SHA256(value)` (lowercase hex). Converters read values "string-like": numbers
//! and bools as text, bytes as lowercase hex.
//!
//! **Editors** (statements, each with an optional `where <condition>`): `set(target, value)`
//! (a nil value does nothing), `delete_key(map, key)`, `delete_matching_keys(map, regex)`,
//! `keep_keys(map, [keys])`, `keep_matching_keys(map, regex)`, `replace_pattern(target, regex,
//! replacement[, SHA256[, format]])`, `replace_all_patterns(map, "key"|"value", regex,
//! replacement[, SHA256[, format]])`, `replace_match(target, glob, replacement)`,
//! `truncate_all(map, limit)`, `limit(map, limit, [priority_keys])`. Named arguments
//! (`limit = 10`) are accepted after positional ones.
//!
//! **Differences from contrib**, all deliberate: `truncate_all` cuts at the last UTF-8
//! boundary at or below the limit (Go cuts bytes); `x -1` reads as `x - 1` (contrib fails to
//! parse it); bytes convert to strings as hex whether they came from a literal or an
//! attribute (contrib uses base64 for bytes attributes); map and slice values are opaque;
//! `trace_id` compares equal to a bytes literal of the same bytes (contrib needs `TraceID()`).
//!
//! **Bounds**: text at most [`MAX_TEXT_LEN`] bytes, nesting at most [`MAX_DEPTH`], each regex
//! at most 1 MiB compiled; the `regex` crate matches in linear time, so one evaluation's work
//! is linear in the sizes of the values it reads.

mod bind;
mod editor;
mod error;
mod expr;
mod glob;
mod lexer;
mod path;
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
