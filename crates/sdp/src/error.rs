//! Error types.

/// Why a description could not be parsed, with the 1-based line it was found on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SDP line {line}: {kind}")]
pub struct ParseError {
    /// 1-based line number; 0 when the error concerns the input as a whole.
    pub line: usize,
    /// What is wrong.
    pub kind: ParseErrorKind,
}

impl ParseError {
    pub(crate) fn new(line: usize, kind: ParseErrorKind) -> Self {
        Self { line, kind }
    }
}

/// What is wrong with an SDP input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// The input has no lines.
    #[error("empty input")]
    Empty,
    /// The input is larger than [`Limits::max_size`](crate::Limits::max_size).
    #[error("input is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The limit in force.
        limit: usize,
    },
    /// The input has more lines than [`Limits::max_lines`](crate::Limits::max_lines).
    #[error("more than the limit of {limit} lines")]
    TooManyLines {
        /// The limit in force.
        limit: usize,
    },
    /// A line is longer than [`Limits::max_line_len`](crate::Limits::max_line_len).
    #[error("line longer than the limit of {limit} bytes")]
    LineTooLong {
        /// The limit in force.
        limit: usize,
    },
    /// The input is not UTF-8.
    #[error("invalid UTF-8")]
    InvalidUtf8,
    /// An empty line before the end of the input.
    #[error("empty line")]
    EmptyLine,
    /// A NUL or a CR that does not end the line.
    #[error("NUL or stray CR character")]
    InvalidCharacter,
    /// The line is not `<letter>=<value>`.
    #[error("expected `<type>=<value>`")]
    MalformedLine,
    /// The first line is not `v=`.
    #[error("first line must be v=0")]
    MissingVersion,
    /// `v=` has a value other than `0`.
    #[error("unsupported protocol version (only v=0 exists)")]
    UnsupportedVersion,
    /// A required session-level line is absent.
    #[error("missing required {0}= line")]
    Missing(char),
    /// A session-level line that may appear only once appears again.
    #[error("duplicate {0}= line")]
    Duplicate(char),
    /// A session-level-only line appears in a media section.
    #[error("{0}= line is not allowed in a media section")]
    NotAllowedInMedia(char),
    /// An `o=`, `c=`, `t=` or `m=` line has an invalid value.
    #[error(transparent)]
    Field(#[from] FieldError),
    /// A known attribute has an invalid value (reported by
    /// [`SessionDescription::validate`](crate::SessionDescription::validate)).
    #[error(transparent)]
    Attribute(#[from] AttributeError),
}

/// An invalid value on a structural line (`o=`, `c=`, `t=`, `m=`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind}= line: {reason}")]
pub struct FieldError {
    /// The line type letter.
    pub kind: char,
    /// What is wrong.
    pub reason: &'static str,
}

/// An attribute value that does not match the syntax of its attribute.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid a={attribute} value: {reason}")]
pub struct AttributeError {
    /// The attribute name.
    pub attribute: &'static str,
    /// What is wrong.
    pub reason: &'static str,
}
