//! Typed errors: [`ParseError`] (at configuration time, with the column) and [`EvalError`] (per
//! evaluation; what to do with one is the caller's `error_mode`).

/// A statement or condition that cannot be parsed or is outside the supported subset.
#[derive(Debug, Clone, thiserror::Error)]
#[error("column {column}: {kind}")]
pub struct ParseError {
    /// 1-based character column where the offending construct starts.
    pub column: usize,
    /// What is wrong.
    #[source]
    pub kind: ParseErrorKind,
}

/// What a [`ParseError`] is about.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ParseErrorKind {
    /// A string literal without its closing quote.
    #[error("unterminated string literal")]
    UnterminatedString,
    /// An escape sequence Go's `strconv.Unquote` does not accept.
    #[error("invalid escape sequence {0:?} in string literal")]
    BadEscape(String),
    /// A character that starts no token.
    #[error("unexpected character {0:?}")]
    UnexpectedChar(char),
    /// A number literal out of range or malformed.
    #[error("invalid number literal {0:?}")]
    BadNumber(String),
    /// A `0x…` literal with an odd number of hex digits.
    #[error("invalid bytes literal {0:?}: odd number of hex digits")]
    BadBytes(String),
    /// The grammar expected something else here.
    #[error("expected {expected}, found {found}")]
    Expected {
        /// What the grammar allows here.
        expected: &'static str,
        /// What the text has.
        found: String,
    },
    /// A function (editor or converter) outside the supported subset.
    #[error("function {0} is not supported")]
    UnsupportedFunction(String),
    /// A path the context does not have, or one outside the supported subset.
    #[error("path {path} is not supported in the {context} context")]
    UnsupportedPath {
        /// The path as written.
        path: String,
        /// The context's name.
        context: &'static str,
    },
    /// An enum symbol the context does not define.
    #[error("enum {symbol} is not supported in the {context} context")]
    UnsupportedEnum {
        /// The symbol as written.
        symbol: String,
        /// The context's name.
        context: &'static str,
    },
    /// A grammar construct outside the supported subset (named).
    #[error("{0} is not supported")]
    Unsupported(&'static str),
    /// A converter used as a statement or an editor used as a value.
    #[error("{0}")]
    Misplaced(String),
    /// A regex argument that does not compile.
    #[error("{function}: invalid regex {pattern:?}")]
    BadRegex {
        /// The function whose argument it is.
        function: &'static str,
        /// The pattern as written.
        pattern: String,
        /// The regex crate's reason.
        #[source]
        source: regex::Error,
    },
    /// An argument of the wrong kind, or missing, or out of range.
    #[error("{function}: {message}")]
    BadArgument {
        /// The function whose argument it is.
        function: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// Parentheses, lists or calls nested deeper than [`crate::MAX_DEPTH`].
    #[error("nested deeper than {0} levels")]
    TooDeep(usize),
    /// Input longer than [`crate::MAX_TEXT_LEN`].
    #[error("text longer than {0} bytes")]
    TooLong(usize),
}

/// Why one evaluation failed. The caller's `error_mode` decides whether this drops the item,
/// is logged, or is ignored.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvalError {
    /// A value of the wrong type reached a function or operator.
    #[error("{site} expected {expected} but got {got}")]
    Type {
        /// The function or operator.
        site: &'static str,
        /// The type it accepts.
        expected: &'static str,
        /// The type it got.
        got: &'static str,
    },
    /// Integer or float division by zero (contrib: "attempted to divide by 0").
    #[error("attempted to divide by 0")]
    DivideByZero,
    /// The caller's telemetry cannot provide or change this path (the caller should reject such
    /// paths when it validates; see `Condition::paths`).
    #[error("path {0} is not available here")]
    Unavailable(String),
    /// The caller's target failed to apply a change.
    #[error("target: {0}")]
    Target(String),
}
