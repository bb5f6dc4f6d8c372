//! Parse and validation errors.

use std::fmt;

use crate::message::HeaderName;

/// What is wrong with a message. Each variant is specific enough to pick a
/// status code and a reason phrase for the answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The input ends before the start line or the blank line that closes the headers.
    Incomplete,
    /// The message is larger than [`Limits::max_message_size`](crate::Limits).
    MessageTooLarge,
    /// A start or header line is longer than [`Limits::max_line_len`](crate::Limits).
    HeaderLineTooLong,
    /// More header lines than [`Limits::max_headers`](crate::Limits).
    TooManyHeaders,
    /// The start line is neither a Request-Line nor a Status-Line, or its
    /// elements are not separated by exactly one SP.
    BadStartLine,
    /// The method is not a token.
    BadMethod,
    /// The Request-URI is not a valid absolute URI (or carries forbidden parts).
    BadRequestUri,
    /// The protocol version is malformed, or is not SIP/2.0.
    BadVersion,
    /// The status code is not three digits in 100..=699.
    BadStatusCode,
    /// A header line has no colon, its name is not a token, or a
    /// continuation line appears where no header precedes it.
    BadHeaderLine,
    /// The value of a known header is malformed.
    BadHeader {
        /// Canonical header name.
        name: &'static str,
    },
    /// A mandatory header is absent.
    MissingHeader(&'static str),
    /// A header that allows one value has several.
    DuplicateHeader(&'static str),
    /// Content-Length is not a non-negative decimal number.
    BadContentLength,
    /// Content-Length is larger than the bytes that follow the headers.
    BodyLengthMismatch,
    /// The CSeq method differs from the request method.
    CSeqMethodMismatch,
    /// CSeq is malformed or its number does not fit in 32 bits.
    BadCSeq,
    /// A quoted string has no closing quote.
    UnbalancedQuotes,
    /// A URI is malformed.
    BadUri,
    /// A Via value is malformed.
    BadVia,
    /// The Via branch lacks an RFC 3261 transaction identifier.
    BadBranch,
    /// A name-addr / addr-spec value (From, To, Contact, Route...) is malformed.
    BadNameAddr,
    /// A header or URI parameter is malformed.
    BadParam,
    /// A header value does not match its grammar (token lists, media types...).
    BadValue,
    /// Max-Forwards is outside 0..=255.
    MaxForwardsOutOfRange,
    /// A numeric value does not fit its type (for example Expires > 2^32-1).
    ValueOutOfRange,
    /// Max-Forwards is zero, so the request must not be forwarded.
    TooManyHops,
    /// A value handed to an edit or builder would break the message framing
    /// (CR or LF in it, or a name that is not a token).
    InvalidValue,
}

impl ErrorKind {
    /// Short ASCII phrase describing the problem, usable as a 400 reason phrase.
    pub fn reason_phrase(&self) -> &'static str {
        match self {
            ErrorKind::Incomplete => "Incomplete Message",
            ErrorKind::MessageTooLarge => "Message Too Large",
            ErrorKind::HeaderLineTooLong => "Header Line Too Long",
            ErrorKind::TooManyHeaders => "Too Many Headers",
            ErrorKind::BadStartLine => "Bad Start Line",
            ErrorKind::BadMethod => "Bad Method",
            ErrorKind::BadRequestUri => "Bad Request-URI",
            ErrorKind::BadVersion => "Version Not Supported",
            ErrorKind::BadStatusCode => "Bad Status Code",
            ErrorKind::BadHeaderLine => "Bad Header Line",
            ErrorKind::BadHeader { name } => crate::message::bad_header_phrase(name),
            ErrorKind::MissingHeader(name) => crate::message::missing_header_phrase(name),
            ErrorKind::DuplicateHeader(name) => crate::message::duplicate_header_phrase(name),
            ErrorKind::BadContentLength => "Bad Content-Length",
            ErrorKind::BodyLengthMismatch => "Content-Length Mismatch",
            ErrorKind::CSeqMethodMismatch => "CSeq Method Mismatch",
            ErrorKind::BadCSeq => "Bad CSeq",
            ErrorKind::UnbalancedQuotes => "Unbalanced Quotes",
            ErrorKind::BadUri => "Bad URI",
            ErrorKind::BadVia => "Bad Via",
            ErrorKind::BadBranch => "Bad Via Branch",
            ErrorKind::BadNameAddr => "Bad Address",
            ErrorKind::BadParam => "Bad Parameter",
            ErrorKind::BadValue => "Bad Header Value",
            ErrorKind::MaxForwardsOutOfRange => "Bad Max-Forwards",
            ErrorKind::ValueOutOfRange => "Value Out Of Range",
            ErrorKind::TooManyHops => "Too Many Hops",
            ErrorKind::InvalidValue => "Invalid Value",
        }
    }

    /// The status code a server answers a request failing this way with:
    /// 505 for a version it does not speak, 513 for an oversize message,
    /// 483 for Max-Forwards exhausted, 400 otherwise.
    pub fn status_code(&self) -> u16 {
        match self {
            ErrorKind::BadVersion => 505,
            ErrorKind::MessageTooLarge => 513,
            ErrorKind::TooManyHops => 483,
            _ => 400,
        }
    }

    fn describe(&self) -> &'static str {
        match self {
            ErrorKind::Incomplete => "message is incomplete",
            ErrorKind::MessageTooLarge => "message exceeds the size limit",
            ErrorKind::HeaderLineTooLong => "line exceeds the length limit",
            ErrorKind::TooManyHeaders => "too many header lines",
            ErrorKind::BadStartLine => "malformed start line",
            ErrorKind::BadMethod => "method is not a token",
            ErrorKind::BadRequestUri => "malformed Request-URI",
            ErrorKind::BadVersion => "unsupported or malformed SIP version",
            ErrorKind::BadStatusCode => "status code is not three digits in 100..=699",
            ErrorKind::BadHeaderLine => "malformed header line",
            ErrorKind::BadHeader { .. } => "malformed header value",
            ErrorKind::MissingHeader(_) => "mandatory header missing",
            ErrorKind::DuplicateHeader(_) => "single-value header has several values",
            ErrorKind::BadContentLength => "Content-Length is not a non-negative number",
            ErrorKind::BodyLengthMismatch => "Content-Length exceeds the available body",
            ErrorKind::CSeqMethodMismatch => "CSeq method differs from the request method",
            ErrorKind::BadCSeq => "malformed CSeq",
            ErrorKind::UnbalancedQuotes => "unterminated quoted string",
            ErrorKind::BadUri => "malformed URI",
            ErrorKind::BadVia => "malformed Via",
            ErrorKind::BadBranch => "Via branch lacks an RFC 3261 transaction id",
            ErrorKind::BadNameAddr => "malformed address",
            ErrorKind::BadParam => "malformed parameter",
            ErrorKind::BadValue => "malformed header value",
            ErrorKind::MaxForwardsOutOfRange => "Max-Forwards out of range 0..=255",
            ErrorKind::ValueOutOfRange => "number out of range",
            ErrorKind::TooManyHops => "Max-Forwards is zero",
            ErrorKind::InvalidValue => "value would break message framing",
        }
    }
}

/// A parse or validation failure: what is wrong and where.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ParseError {
    /// What is wrong.
    pub kind: ErrorKind,
    /// Byte position in the message (or in the value given to a standalone
    /// decoder) where the problem was found.
    pub offset: usize,
    /// The header the problem was found in, when it was found in one.
    pub header: Option<HeaderName>,
}

impl ParseError {
    /// An error of `kind` at `offset`, outside any header.
    pub fn new(kind: ErrorKind, offset: usize) -> Self {
        ParseError {
            kind,
            offset,
            header: None,
        }
    }

    pub(crate) fn in_header(mut self, name: HeaderName, base: usize) -> Self {
        self.offset = self.offset.saturating_add(base);
        if self.header.is_none() {
            self.header = Some(name);
        }
        self
    }

    pub(crate) fn shifted(mut self, base: usize) -> Self {
        self.offset = self.offset.saturating_add(base);
        self
    }

    /// Short ASCII reason phrase for the error response (for example "Bad CSeq",
    /// "Bad From"). It names the header when the error was found in one.
    pub fn reason_phrase(&self) -> &'static str {
        match (self.kind, self.header) {
            (
                ErrorKind::BadNameAddr
                | ErrorKind::UnbalancedQuotes
                | ErrorKind::BadUri
                | ErrorKind::BadParam
                | ErrorKind::BadValue
                | ErrorKind::ValueOutOfRange,
                Some(h),
            ) => match h.canonical_name() {
                Some(name) => crate::message::bad_header_phrase(name),
                None => self.kind.reason_phrase(),
            },
            _ => self.kind.reason_phrase(),
        }
    }

    /// Status code to answer a request with (see [`ErrorKind::status_code`]).
    pub fn status_code(&self) -> u16 {
        self.kind.status_code()
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.describe())?;
        match self.kind {
            ErrorKind::BadHeader { name }
            | ErrorKind::MissingHeader(name)
            | ErrorKind::DuplicateHeader(name) => write!(f, " ({name})")?,
            _ => {}
        }
        if let Some(h) = self.header {
            match h.canonical_name() {
                Some(name) => write!(f, " in {name} header")?,
                None => f.write_str(" in extension header")?,
            }
        }
        write!(f, " at byte {}", self.offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_problem_and_position() {
        let e = ParseError::new(ErrorKind::BadCSeq, 42);
        assert_eq!(e.to_string(), "malformed CSeq at byte 42");
        let e = ParseError::new(ErrorKind::MissingHeader("Call-ID"), 7);
        assert_eq!(
            e.to_string(),
            "mandatory header missing (Call-ID) at byte 7"
        );
        let e = ParseError::new(ErrorKind::BadNameAddr, 3).in_header(HeaderName::From, 10);
        assert_eq!(e.to_string(), "malformed address in From header at byte 13");
    }

    #[test]
    fn reason_phrases_are_short_ascii() {
        let e = ParseError::new(ErrorKind::BadCSeq, 0);
        assert_eq!(e.reason_phrase(), "Bad CSeq");
        let e = ParseError::new(ErrorKind::BadNameAddr, 0).in_header(HeaderName::To, 0);
        assert_eq!(e.reason_phrase(), "Bad To");
        assert_eq!(
            ErrorKind::MissingHeader("Call-ID").reason_phrase(),
            "Missing Call-ID"
        );
        assert_eq!(ErrorKind::BadVersion.status_code(), 505);
        for k in [
            ErrorKind::Incomplete,
            ErrorKind::BadHeader { name: "Expires" },
            ErrorKind::DuplicateHeader("CSeq"),
            ErrorKind::InvalidValue,
        ] {
            let p = k.reason_phrase();
            assert!(p.is_ascii() && !p.is_empty() && p.len() < 40, "{p}");
        }
    }
}
