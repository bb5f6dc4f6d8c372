//! The message model: start line, header index and body over the raw bytes.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use bytes::Bytes;

use crate::error::{ErrorKind, ParseError};
use crate::headers::{
    self, CSeq, Contact, ListItem, ListIter, MediaType, NameAddr, SplitValues, Via,
};
use crate::limits::Limits;
use crate::scan::{self, is_lws, is_token};
use crate::uri::Uri;

/// A request method. Matching is case-sensitive (RFC 3261 §7.1): `invite`
/// is an extension method, not INVITE.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// INVITE
    Invite,
    /// ACK
    Ack,
    /// BYE
    Bye,
    /// CANCEL
    Cancel,
    /// REGISTER
    Register,
    /// OPTIONS
    Options,
    /// MESSAGE (RFC 3428)
    Message,
    /// INFO (RFC 6086)
    Info,
    /// PRACK (RFC 3262)
    Prack,
    /// UPDATE (RFC 3311)
    Update,
    /// SUBSCRIBE (RFC 6665)
    Subscribe,
    /// NOTIFY (RFC 6665)
    Notify,
    /// REFER (RFC 3515)
    Refer,
    /// PUBLISH (RFC 3903)
    Publish,
    /// Any other token.
    Other(Box<str>),
}

impl Method {
    /// Parses a method token; `None` if it is empty or not a token.
    pub fn from_bytes(b: &[u8]) -> Option<Method> {
        Some(match b {
            b"INVITE" => Method::Invite,
            b"ACK" => Method::Ack,
            b"BYE" => Method::Bye,
            b"CANCEL" => Method::Cancel,
            b"REGISTER" => Method::Register,
            b"OPTIONS" => Method::Options,
            b"MESSAGE" => Method::Message,
            b"INFO" => Method::Info,
            b"PRACK" => Method::Prack,
            b"UPDATE" => Method::Update,
            b"SUBSCRIBE" => Method::Subscribe,
            b"NOTIFY" => Method::Notify,
            b"REFER" => Method::Refer,
            b"PUBLISH" => Method::Publish,
            _ => {
                if !scan::all_token(b) {
                    return None;
                }
                Method::Other(scan::as_str(b)?.into())
            }
        })
    }

    /// The method name.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Register => "REGISTER",
            Method::Options => "OPTIONS",
            Method::Message => "MESSAGE",
            Method::Info => "INFO",
            Method::Prack => "PRACK",
            Method::Update => "UPDATE",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Refer => "REFER",
            Method::Publish => "PUBLISH",
            Method::Other(s) => s,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Method {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Method, ParseError> {
        Method::from_bytes(s.as_bytes()).ok_or(ParseError::new(ErrorKind::BadMethod, 0))
    }
}

macro_rules! header_names {
    ($( $variant:ident => $canon:literal, $lower:literal $(, $compact:literal)? ; )*) => {
        /// Known header names. Matching is case-insensitive and understands
        /// the compact forms (RFC 3261 §7.3.3).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum HeaderName {
            $( #[doc = $canon] $variant, )*
            /// Any other header; its name is in the header entry.
            Other,
        }

        impl HeaderName {
            /// Canonical spelling; `None` for [`HeaderName::Other`].
            pub const fn canonical_name(&self) -> Option<&'static str> {
                match self {
                    $( HeaderName::$variant => Some($canon), )*
                    HeaderName::Other => None,
                }
            }

            /// Compact form letter, if the header has one.
            pub const fn compact_form(&self) -> Option<char> {
                match self {
                    $( $( HeaderName::$variant => Some($compact), )? )*
                    _ => None,
                }
            }

            /// Every known name, for tests.
            #[cfg(test)]
            const ALL: &'static [(HeaderName, &'static [u8])] = &[ $( (HeaderName::$variant, $lower), )* ];

        }

        pub(crate) fn bad_header_phrase(name: &str) -> &'static str {
            match name {
                $( $canon => concat!("Bad ", $canon), )*
                _ => "Bad Header",
            }
        }

        pub(crate) fn missing_header_phrase(name: &str) -> &'static str {
            match name {
                $( $canon => concat!("Missing ", $canon), )*
                _ => "Missing Header",
            }
        }

        pub(crate) fn duplicate_header_phrase(name: &str) -> &'static str {
            match name {
                $( $canon => concat!("Multiple ", $canon), )*
                _ => "Multiple Values",
            }
        }
    };
}

header_names! {
    Accept => "Accept", b"accept";
    AcceptContact => "Accept-Contact", b"accept-contact", 'a';
    AcceptEncoding => "Accept-Encoding", b"accept-encoding";
    AcceptLanguage => "Accept-Language", b"accept-language";
    AlertInfo => "Alert-Info", b"alert-info";
    Allow => "Allow", b"allow";
    AllowEvents => "Allow-Events", b"allow-events", 'u';
    AuthenticationInfo => "Authentication-Info", b"authentication-info";
    Authorization => "Authorization", b"authorization";
    CallId => "Call-ID", b"call-id", 'i';
    CallInfo => "Call-Info", b"call-info";
    Contact => "Contact", b"contact", 'm';
    ContentDisposition => "Content-Disposition", b"content-disposition";
    ContentEncoding => "Content-Encoding", b"content-encoding", 'e';
    ContentLanguage => "Content-Language", b"content-language";
    ContentLength => "Content-Length", b"content-length", 'l';
    ContentType => "Content-Type", b"content-type", 'c';
    CSeq => "CSeq", b"cseq";
    Date => "Date", b"date";
    ErrorInfo => "Error-Info", b"error-info";
    Event => "Event", b"event", 'o';
    Expires => "Expires", b"expires";
    FlowTimer => "Flow-Timer", b"flow-timer";
    From => "From", b"from", 'f';
    Identity => "Identity", b"identity", 'y';
    IdentityInfo => "Identity-Info", b"identity-info", 'n';
    InReplyTo => "In-Reply-To", b"in-reply-to";
    MaxForwards => "Max-Forwards", b"max-forwards";
    MimeVersion => "MIME-Version", b"mime-version";
    MinExpires => "Min-Expires", b"min-expires";
    MinSe => "Min-SE", b"min-se";
    Organization => "Organization", b"organization";
    PAssertedIdentity => "P-Asserted-Identity", b"p-asserted-identity";
    PPreferredIdentity => "P-Preferred-Identity", b"p-preferred-identity";
    Path => "Path", b"path";
    Priority => "Priority", b"priority";
    Privacy => "Privacy", b"privacy";
    ProxyAuthenticate => "Proxy-Authenticate", b"proxy-authenticate";
    ProxyAuthorization => "Proxy-Authorization", b"proxy-authorization";
    ProxyRequire => "Proxy-Require", b"proxy-require";
    RAck => "RAck", b"rack";
    Reason => "Reason", b"reason";
    RecordRoute => "Record-Route", b"record-route";
    ReferTo => "Refer-To", b"refer-to", 'r';
    ReferredBy => "Referred-By", b"referred-by", 'b';
    RejectContact => "Reject-Contact", b"reject-contact", 'j';
    Replaces => "Replaces", b"replaces";
    ReplyTo => "Reply-To", b"reply-to";
    RequestDisposition => "Request-Disposition", b"request-disposition", 'd';
    Require => "Require", b"require";
    RetryAfter => "Retry-After", b"retry-after";
    Route => "Route", b"route";
    RSeq => "RSeq", b"rseq";
    Server => "Server", b"server";
    ServiceRoute => "Service-Route", b"service-route";
    SessionExpires => "Session-Expires", b"session-expires", 'x';
    SipETag => "SIP-ETag", b"sip-etag";
    SipIfMatch => "SIP-If-Match", b"sip-if-match";
    Subject => "Subject", b"subject", 's';
    SubscriptionState => "Subscription-State", b"subscription-state";
    Supported => "Supported", b"supported", 'k';
    Timestamp => "Timestamp", b"timestamp";
    To => "To", b"to", 't';
    Unsupported => "Unsupported", b"unsupported";
    UserAgent => "User-Agent", b"user-agent";
    Via => "Via", b"via", 'v';
    Warning => "Warning", b"warning";
    WwwAuthenticate => "WWW-Authenticate", b"www-authenticate";
}

impl HeaderName {
    /// Compact forms (RFC 3261 §7.3.3 and the IANA registry); the unit tests
    /// check this table against `compact_form`.
    fn from_compact(c: u8) -> HeaderName {
        match c {
            b'a' => HeaderName::AcceptContact,
            b'b' => HeaderName::ReferredBy,
            b'c' => HeaderName::ContentType,
            b'd' => HeaderName::RequestDisposition,
            b'e' => HeaderName::ContentEncoding,
            b'f' => HeaderName::From,
            b'i' => HeaderName::CallId,
            b'j' => HeaderName::RejectContact,
            b'k' => HeaderName::Supported,
            b'l' => HeaderName::ContentLength,
            b'm' => HeaderName::Contact,
            b'n' => HeaderName::IdentityInfo,
            b'o' => HeaderName::Event,
            b'r' => HeaderName::ReferTo,
            b's' => HeaderName::Subject,
            b't' => HeaderName::To,
            b'u' => HeaderName::AllowEvents,
            b'v' => HeaderName::Via,
            b'x' => HeaderName::SessionExpires,
            b'y' => HeaderName::Identity,
            _ => HeaderName::Other,
        }
    }

    /// Matches a lower-cased name: dispatch on the first letter keeps each
    /// comparison chain short.
    fn from_lower(lower: &[u8]) -> HeaderName {
        use HeaderName as H;
        let Some(first) = lower.first() else {
            return H::Other;
        };
        match first {
            b'a' => match lower {
                b"accept" => H::Accept,
                b"accept-contact" => H::AcceptContact,
                b"accept-encoding" => H::AcceptEncoding,
                b"accept-language" => H::AcceptLanguage,
                b"alert-info" => H::AlertInfo,
                b"allow" => H::Allow,
                b"allow-events" => H::AllowEvents,
                b"authentication-info" => H::AuthenticationInfo,
                b"authorization" => H::Authorization,
                _ => H::Other,
            },
            b'c' => match lower {
                b"call-id" => H::CallId,
                b"call-info" => H::CallInfo,
                b"contact" => H::Contact,
                b"content-disposition" => H::ContentDisposition,
                b"content-encoding" => H::ContentEncoding,
                b"content-language" => H::ContentLanguage,
                b"content-length" => H::ContentLength,
                b"content-type" => H::ContentType,
                b"cseq" => H::CSeq,
                _ => H::Other,
            },
            b'd' if lower == b"date" => H::Date,
            b'e' => match lower {
                b"error-info" => H::ErrorInfo,
                b"event" => H::Event,
                b"expires" => H::Expires,
                _ => H::Other,
            },
            b'f' => match lower {
                b"flow-timer" => H::FlowTimer,
                b"from" => H::From,
                _ => H::Other,
            },
            b'i' => match lower {
                b"identity" => H::Identity,
                b"identity-info" => H::IdentityInfo,
                b"in-reply-to" => H::InReplyTo,
                _ => H::Other,
            },
            b'm' => match lower {
                b"max-forwards" => H::MaxForwards,
                b"mime-version" => H::MimeVersion,
                b"min-expires" => H::MinExpires,
                b"min-se" => H::MinSe,
                _ => H::Other,
            },
            b'o' if lower == b"organization" => H::Organization,
            b'p' => match lower {
                b"p-asserted-identity" => H::PAssertedIdentity,
                b"p-preferred-identity" => H::PPreferredIdentity,
                b"path" => H::Path,
                b"priority" => H::Priority,
                b"privacy" => H::Privacy,
                b"proxy-authenticate" => H::ProxyAuthenticate,
                b"proxy-authorization" => H::ProxyAuthorization,
                b"proxy-require" => H::ProxyRequire,
                _ => H::Other,
            },
            b'r' => match lower {
                b"rack" => H::RAck,
                b"reason" => H::Reason,
                b"record-route" => H::RecordRoute,
                b"refer-to" => H::ReferTo,
                b"referred-by" => H::ReferredBy,
                b"reject-contact" => H::RejectContact,
                b"replaces" => H::Replaces,
                b"reply-to" => H::ReplyTo,
                b"request-disposition" => H::RequestDisposition,
                b"require" => H::Require,
                b"retry-after" => H::RetryAfter,
                b"route" => H::Route,
                b"rseq" => H::RSeq,
                _ => H::Other,
            },
            b's' => match lower {
                b"server" => H::Server,
                b"service-route" => H::ServiceRoute,
                b"session-expires" => H::SessionExpires,
                b"sip-etag" => H::SipETag,
                b"sip-if-match" => H::SipIfMatch,
                b"subject" => H::Subject,
                b"subscription-state" => H::SubscriptionState,
                b"supported" => H::Supported,
                _ => H::Other,
            },
            b't' => match lower {
                b"timestamp" => H::Timestamp,
                b"to" => H::To,
                _ => H::Other,
            },
            b'u' => match lower {
                b"unsupported" => H::Unsupported,
                b"user-agent" => H::UserAgent,
                _ => H::Other,
            },
            b'v' if lower == b"via" => H::Via,
            b'w' => match lower {
                b"warning" => H::Warning,
                b"www-authenticate" => H::WwwAuthenticate,
                _ => H::Other,
            },
            _ => H::Other,
        }
    }

    /// Classifies a header name (case-insensitive, compact forms included)
    /// without allocating.
    pub fn from_bytes(name: &[u8]) -> HeaderName {
        match name.len() {
            1 => HeaderName::from_compact(name[0].to_ascii_lowercase()),
            2..=24 => {
                let mut buf = [0u8; 24];
                let lower = &mut buf[..name.len()];
                for (d, s) in lower.iter_mut().zip(name) {
                    *d = s.to_ascii_lowercase();
                }
                HeaderName::from_lower(lower)
            }
            _ => HeaderName::Other,
        }
    }

    /// Headers that carry exactly one value (RFC 3261 §7.3.1 lists the rest
    /// as comma-separated lists).
    pub fn is_single_value(&self) -> bool {
        matches!(
            self,
            HeaderName::CallId
                | HeaderName::CSeq
                | HeaderName::From
                | HeaderName::To
                | HeaderName::MaxForwards
                | HeaderName::ContentLength
                | HeaderName::ContentType
                | HeaderName::Expires
                | HeaderName::MinExpires
        )
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.canonical_name().unwrap_or("(extension)"))
    }
}

/// Something that names a header: a [`HeaderName`], or a `&str` (matched
/// case-insensitively, compact forms understood). `HeaderName::Other`
/// matches every extension header.
pub trait HeaderKey {
    /// The classified name plus, for extension headers, the name to match.
    fn header_key(&self) -> (HeaderName, &[u8]);
}

impl HeaderKey for HeaderName {
    fn header_key(&self) -> (HeaderName, &[u8]) {
        (*self, b"")
    }
}

impl HeaderKey for &str {
    fn header_key(&self) -> (HeaderName, &[u8]) {
        (HeaderName::from_bytes(self.as_bytes()), self.as_bytes())
    }
}

impl HeaderKey for &[u8] {
    fn header_key(&self) -> (HeaderName, &[u8]) {
        (HeaderName::from_bytes(self), self)
    }
}

/// The first line of a message. Ranges index the message's bytes (see
/// [`Message::slice`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartLine {
    /// Request-Line.
    Request {
        /// Method.
        method: Method,
        /// Request-URI bytes.
        uri: Range<usize>,
        /// SIP-Version bytes.
        version: Range<usize>,
    },
    /// Status-Line.
    Response {
        /// Status code, 100..=699.
        code: u16,
        /// Reason phrase bytes (may be empty).
        reason: Range<usize>,
        /// SIP-Version bytes.
        version: Range<usize>,
    },
}

/// One header line in the index. Positions index the message's bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderEntry {
    pub(crate) name: HeaderName,
    pub(crate) name_start: usize,
    pub(crate) name_end: usize,
    pub(crate) value_start: usize,
    pub(crate) value_end: usize,
    pub(crate) line_end: usize,
    pub(crate) folded: bool,
}

impl HeaderEntry {
    /// Classified name.
    pub fn name(&self) -> HeaderName {
        self.name
    }

    /// Where the name is.
    pub fn name_range(&self) -> Range<usize> {
        self.name_start..self.name_end
    }

    /// Where the value is: trimmed, spanning any continuation lines.
    pub fn value_range(&self) -> Range<usize> {
        self.value_start..self.value_end
    }

    /// The whole line including continuation lines and the final line break.
    pub fn line_range(&self) -> Range<usize> {
        self.name_start..self.line_end
    }

    /// Whether the value continues on folded lines.
    pub fn is_folded(&self) -> bool {
        self.folded
    }
}

/// A parsed SIP message.
///
/// It keeps the received bytes and an index of where each header is; typed
/// values are decoded on demand and borrow from it. Edits (see the
/// `edit` methods) are recorded beside the original bytes, and
/// [`Message::serialize`] copies untouched lines verbatim.
#[derive(Clone, Debug)]
pub struct Message {
    pub(crate) raw: Bytes,
    /// Bytes written by edits; positions >= raw.len() index into it.
    pub(crate) arena: Vec<u8>,
    pub(crate) start: StartLine,
    /// Start line including its line break.
    pub(crate) start_line: Range<usize>,
    pub(crate) headers: Vec<HeaderEntry>,
    pub(crate) body: Range<usize>,
    /// Start-line irregularities a liberal parse let through; `validate` reports them.
    pub(crate) start_defect: Option<ParseError>,
    /// Content-Length problems found while framing a datagram.
    pub(crate) body_defect: Option<ParseError>,
    pub(crate) edited: bool,
}

/// Finds the line starting at `pos`: returns (end without CR, start of next line).
#[inline]
fn find_line(b: &[u8], pos: usize, limits: &Limits) -> Result<(usize, usize), ParseError> {
    let rest = b.get(pos..).unwrap_or(&[]);
    let window = limits.max_line_len.saturating_add(2).min(rest.len());
    match memchr::memchr(b'\n', &rest[..window]) {
        Some(i) => {
            let nl = pos + i;
            let eol = if i > 0 && b[nl - 1] == b'\r' {
                nl - 1
            } else {
                nl
            };
            if eol - pos > limits.max_line_len {
                return Err(ParseError::new(ErrorKind::HeaderLineTooLong, pos));
            }
            Ok((eol, nl + 1))
        }
        None if rest.len() > limits.max_line_len.saturating_add(1) => {
            Err(ParseError::new(ErrorKind::HeaderLineTooLong, pos))
        }
        None => Err(ParseError::new(ErrorKind::Incomplete, b.len())),
    }
}

/// SIP-Version = "SIP" "/" 1*DIGIT "." 1*DIGIT
fn is_version(v: &[u8]) -> bool {
    let Some(prefix) = v.get(..4) else {
        return false;
    };
    if !prefix.eq_ignore_ascii_case(b"SIP/") {
        return false;
    }
    let rest = &v[4..];
    match rest.iter().position(|&c| c == b'.') {
        Some(dot) => {
            let (major, minor) = (&rest[..dot], &rest[dot + 1..]);
            !major.is_empty()
                && !minor.is_empty()
                && major.iter().all(u8::is_ascii_digit)
                && minor.iter().all(u8::is_ascii_digit)
        }
        None => false,
    }
}

type StartParse = (StartLine, Option<ParseError>);

fn parse_start_line(b: &[u8], ls: usize, le: usize) -> Result<StartParse, ParseError> {
    let line = b.get(ls..le).unwrap_or(&[]);
    let bad = |kind, at: usize| ParseError::new(kind, ls + at);
    if line.len() >= 4 && line[..4].eq_ignore_ascii_case(b"SIP/") {
        let sp = memchr::memchr(b' ', line).ok_or(bad(ErrorKind::BadStartLine, line.len()))?;
        if !is_version(&line[..sp]) {
            return Err(bad(ErrorKind::BadVersion, 0));
        }
        let rest = &line[sp + 1..];
        let digits = rest.iter().take_while(|c| c.is_ascii_digit()).count();
        if digits != 3 {
            return Err(bad(ErrorKind::BadStatusCode, sp + 1));
        }
        let code = rest[..3]
            .iter()
            .fold(0u16, |n, &d| n * 10 + u16::from(d - b'0'));
        if !(100..=699).contains(&code) {
            return Err(bad(ErrorKind::BadStatusCode, sp + 1));
        }
        let reason = match rest.get(3) {
            None => le..le,
            Some(b' ') => ls + sp + 5..le,
            Some(_) => return Err(bad(ErrorKind::BadStatusCode, sp + 1)),
        };
        return Ok((
            StartLine::Response {
                code,
                reason,
                version: ls..ls + sp,
            },
            None,
        ));
    }
    let sp1 = memchr::memchr(b' ', line).ok_or(bad(ErrorKind::BadStartLine, line.len()))?;
    let method = Method::from_bytes(&line[..sp1]).ok_or(bad(ErrorKind::BadMethod, 0))?;
    let mut defect = None;
    let mut te = line.len();
    while te > sp1 + 1 && matches!(line[te - 1], b' ' | b'\t') {
        te -= 1;
    }
    let sp2 = line[sp1 + 1..te]
        .iter()
        .rposition(|&c| c == b' ')
        .map(|p| sp1 + 1 + p)
        .ok_or(bad(ErrorKind::BadStartLine, sp1))?;
    if !is_version(&line[sp2 + 1..te]) {
        return Err(bad(ErrorKind::BadVersion, sp2 + 1));
    }
    let mut us = sp1 + 1;
    let mut ue = sp2;
    while us < ue && line[us] == b' ' {
        us += 1;
    }
    while ue > us && line[ue - 1] == b' ' {
        ue -= 1;
    }
    if us == ue {
        return Err(bad(ErrorKind::BadStartLine, sp1));
    }
    // Extra SP between elements or trailing whitespace: accepted so that the
    // element can answer 400, reported by validate().
    if us > sp1 + 1 {
        defect = Some(bad(ErrorKind::BadStartLine, sp1 + 1));
    } else if ue < sp2 {
        defect = Some(bad(ErrorKind::BadStartLine, ue));
    } else if te < line.len() {
        defect = Some(bad(ErrorKind::BadStartLine, te));
    }
    Ok((
        StartLine::Request {
            method,
            uri: ls + us..ls + ue,
            version: ls + sp2 + 1..ls + te,
        },
        defect,
    ))
}

/// Content-Length state while indexing.
enum Cl {
    Absent,
    Value(usize, usize),
    Bad(usize),
    Duplicate(usize),
}

pub(crate) fn parse_content_length(v: &[u8]) -> Option<usize> {
    let v = scan::trim_lws(v);
    if !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    scan::parse_u64(v).and_then(|n| usize::try_from(n).ok())
}

#[inline]
fn finalize(h: &mut HeaderEntry, b: &[u8], cl: &mut Cl) {
    while h.value_start < h.value_end && is_lws(b[h.value_start]) {
        h.value_start += 1;
    }
    while h.value_end > h.value_start && is_lws(b[h.value_end - 1]) {
        h.value_end -= 1;
    }
    if h.name == HeaderName::ContentLength {
        let off = h.value_start;
        *cl = match cl {
            Cl::Absent => match parse_content_length(&b[h.value_start..h.value_end]) {
                Some(n) => Cl::Value(n, off),
                None => Cl::Bad(off),
            },
            Cl::Value(..) | Cl::Duplicate(_) => Cl::Duplicate(off),
            Cl::Bad(o) => Cl::Bad(*o),
        };
    }
}

/// Skips CRLFs before a start line (RFC 3261 §7.5).
pub(crate) fn skip_leading_crlf(b: &[u8]) -> usize {
    b.iter()
        .position(|&c| c != b'\r' && c != b'\n')
        .unwrap_or(b.len())
}

impl Message {
    /// Parses one whole message: a UDP datagram or a WebSocket frame, or a
    /// frame cut by [`StreamFramer`](crate::StreamFramer).
    ///
    /// This indexes the message without judging its contents: problems an
    /// element must answer with 400 (bad Request-URI, Content-Length issues,
    /// missing headers...) are left to [`Message::validate`], so that a
    /// response can still be built from the parsed headers. Parsing fails
    /// only when the bytes cannot be indexed at all or exceed `limits`.
    ///
    /// Datagram body rules (RFC 3261 §18.3): without Content-Length the body
    /// is the rest of the datagram; bytes beyond Content-Length are ignored.
    pub fn parse(data: impl Into<Bytes>, limits: &Limits) -> Result<Message, ParseError> {
        let raw: Bytes = data.into();
        let b: &[u8] = &raw;
        if b.len() > limits.max_message_size {
            return Err(ParseError::new(
                ErrorKind::MessageTooLarge,
                limits.max_message_size,
            ));
        }
        let ls = skip_leading_crlf(b);
        if ls >= b.len() {
            return Err(ParseError::new(ErrorKind::Incomplete, b.len()));
        }
        let (le, mut pos) = find_line(b, ls, limits)?;
        let (start, start_defect) = parse_start_line(b, ls, le)?;
        let start_line = ls..pos;
        let mut headers: Vec<HeaderEntry> = Vec::with_capacity(limits.max_headers.min(32));
        let mut cl = Cl::Absent;
        let body_start = loop {
            let (eol, next) = find_line(b, pos, limits)?;
            if eol == pos {
                break next;
            }
            let first = b[pos];
            if first == b' ' || first == b'\t' {
                match headers.last_mut() {
                    Some(h) => {
                        h.value_end = eol;
                        h.line_end = next;
                        h.folded = true;
                    }
                    None => return Err(ParseError::new(ErrorKind::BadHeaderLine, pos)),
                }
            } else {
                if let Some(h) = headers.last_mut() {
                    finalize(h, b, &mut cl);
                }
                if headers.len() >= limits.max_headers {
                    return Err(ParseError::new(ErrorKind::TooManyHeaders, pos));
                }
                let line = &b[pos..eol];
                let name_len = line
                    .iter()
                    .position(|&c| !is_token(c))
                    .unwrap_or(line.len());
                if name_len == 0 {
                    return Err(ParseError::new(ErrorKind::BadHeaderLine, pos));
                }
                let mut i = name_len;
                while matches!(line.get(i), Some(b' ' | b'\t')) {
                    i += 1;
                }
                if line.get(i) != Some(&b':') {
                    return Err(ParseError::new(ErrorKind::BadHeaderLine, pos + i));
                }
                headers.push(HeaderEntry {
                    name: HeaderName::from_bytes(&line[..name_len]),
                    name_start: pos,
                    name_end: pos + name_len,
                    value_start: pos + i + 1,
                    value_end: eol,
                    line_end: next,
                    folded: false,
                });
            }
            pos = next;
        };
        if let Some(h) = headers.last_mut() {
            finalize(h, b, &mut cl);
        }
        let rest = b.len() - body_start;
        let cl_err =
            |kind, at| Some(ParseError::new(kind, at).in_header(HeaderName::ContentLength, 0));
        let (body, body_defect) = match cl {
            Cl::Absent => (body_start..b.len(), None),
            Cl::Value(n, _) if n <= rest => (body_start..body_start + n, None),
            Cl::Value(_, at) => (
                body_start..b.len(),
                cl_err(ErrorKind::BodyLengthMismatch, at),
            ),
            Cl::Bad(at) => (body_start..b.len(), cl_err(ErrorKind::BadContentLength, at)),
            Cl::Duplicate(at) => (
                body_start..b.len(),
                cl_err(ErrorKind::DuplicateHeader("Content-Length"), at),
            ),
        };
        Ok(Message {
            raw,
            arena: Vec::new(),
            start,
            start_line,
            headers,
            body,
            start_defect,
            body_defect,
            edited: false,
        })
    }

    /// [`Message::parse`] followed by [`Message::validate`].
    pub fn parse_strict(data: impl Into<Bytes>, limits: &Limits) -> Result<Message, ParseError> {
        let m = Message::parse(data, limits)?;
        m.validate()?;
        Ok(m)
    }

    /// Bytes at `range`; positions past the received bytes address bytes
    /// added by edits. Out-of-range positions give an empty slice.
    pub fn slice(&self, range: Range<usize>) -> &[u8] {
        let n = self.raw.len();
        if range.start >= n && !(range.start == n && range.end == n) {
            self.arena
                .get(range.start - n..range.end.saturating_sub(n))
                .unwrap_or(&[])
        } else {
            self.raw.get(range).unwrap_or(&[])
        }
    }

    /// The bytes the message was parsed from (untouched by edits; may hold
    /// leading CRLFs or trailing datagram bytes beyond the message).
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    /// The start line.
    pub fn start_line(&self) -> &StartLine {
        &self.start
    }

    /// Whether this is a request.
    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    /// Whether this is a response.
    pub fn is_response(&self) -> bool {
        !self.is_request()
    }

    /// The method of a request.
    pub fn method(&self) -> Option<&Method> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// The Request-URI bytes of a request.
    pub fn request_uri_bytes(&self) -> Option<&[u8]> {
        match &self.start {
            StartLine::Request { uri, .. } => Some(self.slice(uri.clone())),
            StartLine::Response { .. } => None,
        }
    }

    /// The parsed Request-URI; `None` for a response or an unparsable URI
    /// (`validate` says why).
    pub fn request_uri(&self) -> Option<Uri<'_>> {
        Uri::parse(self.request_uri_bytes()?).ok()
    }

    /// The SIP-Version as written.
    pub fn version(&self) -> &[u8] {
        match &self.start {
            StartLine::Request { version, .. } | StartLine::Response { version, .. } => {
                self.slice(version.clone())
            }
        }
    }

    /// The status code of a response.
    pub fn status(&self) -> Option<u16> {
        match self.start {
            StartLine::Response { code, .. } => Some(code),
            StartLine::Request { .. } => None,
        }
    }

    /// The reason phrase of a response (raw bytes; may be UTF-8 or empty).
    pub fn reason(&self) -> Option<&[u8]> {
        match &self.start {
            StartLine::Response { reason, .. } => Some(self.slice(reason.clone())),
            StartLine::Request { .. } => None,
        }
    }

    /// The header index, in wire order.
    pub fn entries(&self) -> &[HeaderEntry] {
        &self.headers
    }

    /// The name of an entry as written.
    pub fn name_of(&self, e: &HeaderEntry) -> &[u8] {
        self.slice(e.name_range())
    }

    /// The value of an entry as written (folds kept).
    pub fn value_of(&self, e: &HeaderEntry) -> &[u8] {
        self.slice(e.value_range())
    }

    /// The value of an entry with each fold replaced by one SP.
    pub fn value_unfolded(&self, e: &HeaderEntry) -> Cow<'_, [u8]> {
        scan::unfold(self.value_of(e))
    }

    fn matches(&self, e: &HeaderEntry, key: (HeaderName, &[u8])) -> bool {
        match key {
            (HeaderName::Other, name) if !name.is_empty() => {
                e.name == HeaderName::Other && self.name_of(e).eq_ignore_ascii_case(name)
            }
            (n, _) => e.name == n,
        }
    }

    /// Index of the first entry with this name.
    pub fn position<K: HeaderKey>(&self, name: K) -> Option<usize> {
        let key = name.header_key();
        self.headers.iter().position(|e| self.matches(e, key))
    }

    /// The first entry with this name.
    pub fn entry<K: HeaderKey>(&self, name: K) -> Option<&HeaderEntry> {
        self.position(name).and_then(|i| self.headers.get(i))
    }

    /// Value of the first header with this name (as written, folds kept).
    pub fn header<K: HeaderKey>(&self, name: K) -> Option<&[u8]> {
        self.entry(name).map(|e| self.value_of(e))
    }

    /// Value of the first header with this name as text; `None` when absent
    /// or not UTF-8.
    pub fn header_str<K: HeaderKey>(&self, name: K) -> Option<&str> {
        self.header(name).and_then(scan::as_str)
    }

    /// Whether a header with this name is present.
    pub fn has_header<K: HeaderKey>(&self, name: K) -> bool {
        self.position(name).is_some()
    }

    /// Values of every header with this name, in wire order.
    pub fn headers<'s, K: HeaderKey + 's>(
        &'s self,
        name: K,
    ) -> impl Iterator<Item = &'s [u8]> + 's {
        self.headers
            .iter()
            .filter(move |e| self.matches(e, name.header_key()))
            .map(move |e| self.value_of(e))
    }

    /// Number of header lines with this name.
    pub fn header_count<K: HeaderKey>(&self, name: K) -> usize {
        let key = name.header_key();
        self.headers.iter().filter(|e| self.matches(e, key)).count()
    }

    /// Every comma-separated element of every header with this name,
    /// trimmed. Commas inside quoted strings and `<...>` do not split.
    pub fn header_values<'s, K: HeaderKey + 's>(
        &'s self,
        name: K,
    ) -> impl Iterator<Item = &'s [u8]> + 's {
        self.headers(name).flat_map(SplitValues::new)
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        self.slice(self.body.clone())
    }

    /// Where the body is.
    pub fn body_range(&self) -> Range<usize> {
        self.body.clone()
    }

    /// Typed elements of every header with this name (comma lists and
    /// repeated headers alike), in wire order.
    pub fn list<'s, T: ListItem<'s>>(&'s self, name: HeaderName) -> HeaderList<'s, T> {
        HeaderList {
            msg: self,
            name,
            idx: 0,
            cur: None,
            done: false,
        }
    }

    fn single<'s, T>(
        &'s self,
        name: HeaderName,
        f: impl FnOnce(&'s [u8]) -> Result<T, ParseError>,
    ) -> Result<Option<T>, ParseError> {
        match self.entry(name) {
            None => Ok(None),
            Some(e) => f(self.value_of(e))
                .map(Some)
                .map_err(|err| err.in_header(name, e.value_start)),
        }
    }

    fn required<'s, T>(
        &'s self,
        name: HeaderName,
        f: impl FnOnce(&'s [u8]) -> Result<T, ParseError>,
    ) -> Result<T, ParseError> {
        self.single(name, f)?.ok_or_else(|| {
            ParseError::new(
                ErrorKind::MissingHeader(name.canonical_name().unwrap_or("")),
                self.start_line.end,
            )
        })
    }

    /// Call-ID (first one), trimmed.
    pub fn call_id(&self) -> Option<&str> {
        self.header_str(HeaderName::CallId)
    }

    /// CSeq.
    pub fn cseq(&self) -> Result<CSeq, ParseError> {
        self.required(HeaderName::CSeq, CSeq::parse)
    }

    /// The topmost Via value.
    pub fn top_via(&self) -> Result<Via<'_>, ParseError> {
        match self.vias().next() {
            Some(r) => r,
            None => Err(ParseError::new(
                ErrorKind::MissingHeader("Via"),
                self.start_line.end,
            )),
        }
    }

    /// Branch of the topmost Via.
    pub fn top_via_branch(&self) -> Option<&str> {
        self.top_via().ok()?.branch()
    }

    /// Every Via value, top first.
    pub fn vias(&self) -> HeaderList<'_, Via<'_>> {
        self.list(HeaderName::Via)
    }

    /// From.
    pub fn from(&self) -> Result<NameAddr<'_>, ParseError> {
        self.required(HeaderName::From, NameAddr::parse)
    }

    /// To.
    pub fn to(&self) -> Result<NameAddr<'_>, ParseError> {
        self.required(HeaderName::To, NameAddr::parse)
    }

    /// Contact values; [`Contacts::Wildcard`] for `Contact: *`.
    pub fn contacts(&self) -> Result<Contacts<'_>, ParseError> {
        let mut star = None;
        let mut count = 0;
        for e in self
            .headers
            .iter()
            .filter(|e| e.name == HeaderName::Contact)
        {
            count += 1;
            if self.value_of(e) == b"*" {
                star = Some(e.value_start);
            }
        }
        match star {
            Some(_) if count == 1 => Ok(Contacts::Wildcard),
            Some(at) => Err(
                ParseError::new(ErrorKind::BadHeader { name: "Contact" }, at)
                    .in_header(HeaderName::Contact, 0),
            ),
            None => Ok(Contacts::List(self.list(HeaderName::Contact))),
        }
    }

    /// Route values, top first.
    pub fn routes(&self) -> HeaderList<'_, NameAddr<'_>> {
        self.list(HeaderName::Route)
    }

    /// Record-Route values, top first.
    pub fn record_routes(&self) -> HeaderList<'_, NameAddr<'_>> {
        self.list(HeaderName::RecordRoute)
    }

    /// Path values (RFC 3327), top first.
    pub fn paths(&self) -> HeaderList<'_, NameAddr<'_>> {
        self.list(HeaderName::Path)
    }

    /// Max-Forwards, if present.
    pub fn max_forwards(&self) -> Result<Option<u8>, ParseError> {
        self.single(HeaderName::MaxForwards, headers::parse_max_forwards)
    }

    /// Expires, if present.
    pub fn expires(&self) -> Result<Option<u32>, ParseError> {
        self.single(HeaderName::Expires, headers::parse_delta_seconds)
    }

    /// Min-Expires, if present.
    pub fn min_expires(&self) -> Result<Option<u32>, ParseError> {
        self.single(HeaderName::MinExpires, headers::parse_delta_seconds)
    }

    /// Content-Length as written, if present.
    pub fn content_length(&self) -> Result<Option<usize>, ParseError> {
        self.single(HeaderName::ContentLength, |v| {
            parse_content_length(v).ok_or(ParseError::new(ErrorKind::BadContentLength, 0))
        })
    }

    /// Content-Type, if present.
    pub fn content_type(&self) -> Result<Option<MediaType<'_>>, ParseError> {
        self.single(HeaderName::ContentType, |v| {
            MediaType::parse(v).map_err(|e| ParseError {
                kind: ErrorKind::BadHeader {
                    name: "Content-Type",
                },
                ..e
            })
        })
    }

    /// Option tags of a token-list header (Supported, Require,
    /// Proxy-Require, Unsupported, Allow...).
    pub fn option_tags(&self, name: HeaderName) -> HeaderList<'_, &str> {
        self.list(name)
    }

    /// Option tags in `name` (Require or Proxy-Require) that are not in
    /// `supported`: what a 420 response lists in Unsupported. Malformed
    /// elements are skipped; `validate` reports them.
    pub fn unsupported_tags<'s>(
        &'s self,
        name: HeaderName,
        supported: &'s [&'s str],
    ) -> impl Iterator<Item = &'s str> + 's {
        self.option_tags(name)
            .filter_map(Result::ok)
            .filter(move |t| !supported.iter().any(|s| s.eq_ignore_ascii_case(t)))
    }

    /// Whether the Accept header admits `type/subtype`. Without Accept,
    /// only application/sdp is assumed acceptable (RFC 3261 §20.1).
    pub fn accepts(&self, mtype: &str, subtype: &str) -> bool {
        if !self.has_header(HeaderName::Accept) {
            return mtype.eq_ignore_ascii_case("application")
                && subtype.eq_ignore_ascii_case("sdp");
        }
        self.list::<MediaType>(HeaderName::Accept)
            .filter_map(Result::ok)
            .any(|m| m.matches(mtype, subtype))
    }
}

/// Contact header contents.
#[derive(Debug)]
pub enum Contacts<'a> {
    /// `Contact: *` (REGISTER removing all bindings).
    Wildcard,
    /// The listed contacts (possibly none).
    List(HeaderList<'a, Contact<'a>>),
}

/// Typed elements across all headers of one name. Stops after the first
/// error; error offsets are message positions.
#[derive(Debug)]
pub struct HeaderList<'a, T> {
    msg: &'a Message,
    name: HeaderName,
    idx: usize,
    cur: Option<(ListIter<'a, T>, usize)>,
    done: bool,
}

impl<'a, T: ListItem<'a>> Iterator for HeaderList<'a, T> {
    type Item = Result<T, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            if let Some((it, base)) = &mut self.cur {
                match it.next() {
                    Some(Ok(v)) => return Some(Ok(v)),
                    Some(Err(e)) => {
                        self.done = true;
                        return Some(Err(e.in_header(self.name, *base)));
                    }
                    None => self.cur = None,
                }
            }
            let msg = self.msg;
            match msg
                .headers
                .get(self.idx..)
                .and_then(|rest| rest.iter().position(|e| e.name == self.name))
            {
                Some(off) => {
                    let e = &msg.headers[self.idx + off];
                    self.idx += off + 1;
                    self.cur = Some((ListIter::new(msg.value_of(e)), e.value_start));
                }
                None => self.done = true,
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &[u8]) -> Message {
        Message::parse(s.to_vec(), &Limits::default()).unwrap()
    }

    fn err(s: &[u8]) -> ErrorKind {
        Message::parse(s.to_vec(), &Limits::default())
            .unwrap_err()
            .kind
    }

    const REG: &[u8] = b"REGISTER sip:example.com SIP/2.0\r\n\
Via: SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bKabc;rport\r\n\
v: SIP/2.0/UDP 192.0.2.1 , SIP/2.0/TCP [2001:db8::1]:5060;branch=z9hG4bK2\r\n\
Max-Forwards: 70\r\n\
To: <sip:alice@example.com>\r\n\
f: \"Alice\" <sip:alice@example.com>;tag=abc\r\n\
i: 123@host\r\n\
CSeq: 2 REGISTER\r\n\
m: <sip:alice@df7jal23ls0d.invalid;transport=ws>;expires=600;+sip.instance=\"<urn:uuid:1>\";reg-id=1\r\n\
Supported: path, outbound,\r\n gruu\r\n\
X-Custom: one\r\n\
x-custom: two, \"three, four\"\r\n\
l: 0\r\n\r\n";

    #[test]
    fn header_names_classify() {
        assert_eq!(HeaderName::from_bytes(b"v"), HeaderName::Via);
        assert_eq!(HeaderName::from_bytes(b"V"), HeaderName::Via);
        assert_eq!(
            HeaderName::from_bytes(b"MaX-fOrWaRdS"),
            HeaderName::MaxForwards
        );
        assert_eq!(
            HeaderName::from_bytes(b"WWW-Authenticate"),
            HeaderName::WwwAuthenticate
        );
        assert_eq!(HeaderName::from_bytes(b"call-id"), HeaderName::CallId);
        assert_eq!(HeaderName::from_bytes(b"i"), HeaderName::CallId);
        assert_eq!(HeaderName::from_bytes(b"C%6Fntact"), HeaderName::Other);
        assert_eq!(HeaderName::from_bytes(b"q"), HeaderName::Other);
        assert_eq!(HeaderName::from_bytes(b""), HeaderName::Other);
        assert_eq!(HeaderName::from_bytes(&[b'a'; 200]), HeaderName::Other);
        for (n, lower) in HeaderName::ALL {
            let canon = n.canonical_name().unwrap();
            assert_eq!(canon.to_ascii_lowercase().as_bytes(), *lower);
            assert_eq!(HeaderName::from_bytes(canon.as_bytes()), *n, "{canon}");
            assert_eq!(
                HeaderName::from_bytes(&canon.to_uppercase().into_bytes()),
                *n
            );
            if let Some(c) = n.compact_form() {
                assert_eq!(HeaderName::from_bytes(&[c as u8]), *n);
            }
        }
        for (c, n) in [
            ('a', HeaderName::AcceptContact),
            ('b', HeaderName::ReferredBy),
            ('c', HeaderName::ContentType),
            ('d', HeaderName::RequestDisposition),
            ('e', HeaderName::ContentEncoding),
            ('f', HeaderName::From),
            ('i', HeaderName::CallId),
            ('j', HeaderName::RejectContact),
            ('k', HeaderName::Supported),
            ('l', HeaderName::ContentLength),
            ('m', HeaderName::Contact),
            ('n', HeaderName::IdentityInfo),
            ('o', HeaderName::Event),
            ('r', HeaderName::ReferTo),
            ('s', HeaderName::Subject),
            ('t', HeaderName::To),
            ('u', HeaderName::AllowEvents),
            ('v', HeaderName::Via),
            ('x', HeaderName::SessionExpires),
            ('y', HeaderName::Identity),
        ] {
            assert_eq!(HeaderName::from_bytes(&[c as u8]), n);
            assert_eq!(n.compact_form(), Some(c));
            let canon = n.canonical_name().unwrap();
            assert_eq!(HeaderName::from_bytes(canon.as_bytes()), n);
            assert_eq!(HeaderName::from_bytes(canon.to_uppercase().as_bytes()), n);
        }
    }

    #[test]
    fn methods_are_case_sensitive() {
        assert_eq!(Method::from_bytes(b"INVITE"), Some(Method::Invite));
        assert_eq!(
            Method::from_bytes(b"invite"),
            Some(Method::Other("invite".into()))
        );
        assert_eq!(Method::from_bytes(b"IN VITE"), None);
        assert_eq!(Method::from_bytes(b""), None);
        assert_eq!("PUBLISH".parse::<Method>().unwrap(), Method::Publish);
        assert_eq!(Method::Other("FOO".into()).to_string(), "FOO");
    }

    #[test]
    fn index_and_accessors() {
        let m = parse(REG);
        assert_eq!(m.method(), Some(&Method::Register));
        assert_eq!(m.request_uri().unwrap().as_str(), "sip:example.com");
        assert_eq!(m.version(), b"SIP/2.0");
        assert_eq!(m.entries().len(), 12);
        assert_eq!(m.header_count(HeaderName::Via), 2);
        assert_eq!(m.vias().count(), 3);
        let hosts: Vec<String> = m.vias().map(|v| v.unwrap().host().to_string()).collect();
        assert_eq!(
            hosts,
            ["df7jal23ls0d.invalid", "192.0.2.1", "[2001:db8::1]"]
        );
        assert_eq!(m.top_via_branch(), Some("z9hG4bKabc"));
        assert_eq!(m.call_id(), Some("123@host"));
        assert_eq!(m.cseq().unwrap().seq, 2);
        assert_eq!(m.from().unwrap().tag(), Some("abc"));
        assert_eq!(m.to().unwrap().tag(), None);
        assert_eq!(m.max_forwards(), Ok(Some(70)));
        assert_eq!(m.content_length(), Ok(Some(0)));
        let Contacts::List(mut cs) = m.contacts().unwrap() else {
            panic!("wildcard")
        };
        let c = cs.next().unwrap().unwrap();
        assert_eq!(c.expires(), Ok(Some(600)));
        assert_eq!(c.sip_instance(), Some("urn:uuid:1"));
        assert!(cs.next().is_none());
        let tags: Vec<_> = m
            .option_tags(HeaderName::Supported)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(tags, ["path", "outbound", "gruu"]);
        // Folded value: raw keeps the fold, unfolded replaces it.
        let e = m.entry(HeaderName::Supported).unwrap();
        assert!(e.is_folded());
        assert_eq!(m.value_of(e), b"path, outbound,\r\n gruu");
        assert_eq!(&*m.value_unfolded(e), b"path, outbound, gruu");
        // Extension headers by name, case-insensitively; repeated and comma-split.
        assert_eq!(m.header("x-CUSTOM"), Some(&b"one"[..]));
        assert_eq!(m.headers("X-Custom").count(), 2);
        let vals: Vec<_> = m.header_values("X-Custom").collect();
        assert_eq!(vals, [&b"one"[..], b"two", b"\"three, four\""]);
        assert_eq!(m.header_values(HeaderName::Other).count(), 3);
        assert_eq!(m.header("Content-Length"), Some(&b"0"[..]));
        assert_eq!(m.header("l"), Some(&b"0"[..]));
        assert!(m.body().is_empty());
        assert!(m.validate().is_ok());
    }

    #[test]
    fn responses() {
        let m = parse(b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(m.status(), Some(180));
        assert_eq!(m.reason(), Some(&b"Ringing"[..]));
        let m = parse(b"SIP/2.0 100\r\n\r\n");
        assert_eq!(m.reason(), Some(&b""[..]));
        assert_eq!(err(b"SIP/2.0 1000 x\r\n\r\n"), ErrorKind::BadStatusCode);
        assert_eq!(err(b"SIP/2.0 099 x\r\n\r\n"), ErrorKind::BadStatusCode);
        assert_eq!(err(b"SIP/2.0 20 x\r\n\r\n"), ErrorKind::BadStatusCode);
        assert_eq!(err(b"SIP/2.0 200x\r\n\r\n"), ErrorKind::BadStatusCode);
        assert_eq!(err(b"SIP/2 200 OK\r\n\r\n"), ErrorKind::BadVersion);
        assert_eq!(err(b"SIP/2.0\r\n\r\n"), ErrorKind::BadStartLine);
    }

    #[test]
    fn structural_errors() {
        assert_eq!(err(b""), ErrorKind::Incomplete);
        assert_eq!(err(b"\r\n\r\n"), ErrorKind::Incomplete);
        assert_eq!(
            err(b"OPTIONS sip:a SIP/2.0\r\nVia: x\r\n"),
            ErrorKind::Incomplete
        );
        assert_eq!(err(b"OPTIONS sip:a SIP/2.0"), ErrorKind::Incomplete);
        assert_eq!(err(b"GET / HTTP/1.1\r\n\r\n"), ErrorKind::BadVersion);
        assert_eq!(err(b"OPTIONS\r\n\r\n"), ErrorKind::BadStartLine);
        assert_eq!(err(b"OPTIONS SIP/2.0\r\n\r\n"), ErrorKind::BadStartLine);
        assert_eq!(err(b"OPT(IONS sip:a SIP/2.0\r\n\r\n"), ErrorKind::BadMethod);
        assert_eq!(
            err(b"OPTIONS sip:a SIP/2.0\r\n folded\r\n\r\n"),
            ErrorKind::BadHeaderLine
        );
        assert_eq!(
            err(b"OPTIONS sip:a SIP/2.0\r\nNoColon\r\n\r\n"),
            ErrorKind::BadHeaderLine
        );
        assert_eq!(
            err(b"OPTIONS sip:a SIP/2.0\r\nBad Name: x\r\n\r\n"),
            ErrorKind::BadHeaderLine
        );
        assert_eq!(
            err(b"OPTIONS sip:a SIP/2.0\r\n: x\r\n\r\n"),
            ErrorKind::BadHeaderLine
        );
        let limits = Limits {
            max_headers: 2,
            ..Limits::default()
        };
        let e = Message::parse(
            &b"OPTIONS sip:a SIP/2.0\r\na: 1\r\nb: 2\r\nc: 3\r\n\r\n"[..],
            &limits,
        )
        .unwrap_err();
        assert_eq!(e.kind, ErrorKind::TooManyHeaders);
        let limits = Limits {
            max_line_len: 10,
            ..Limits::default()
        };
        let e = Message::parse(&b"OPTIONS sip:a SIP/2.0\r\n\r\n"[..], &limits).unwrap_err();
        assert_eq!(e.kind, ErrorKind::HeaderLineTooLong);
        let e = Message::parse(&b"OPTIONS sip:a SIP/2.0"[..], &limits).unwrap_err();
        assert_eq!(e.kind, ErrorKind::HeaderLineTooLong);
        let limits = Limits {
            max_message_size: 10,
            ..Limits::default()
        };
        let e = Message::parse(&b"OPTIONS sip:a SIP/2.0\r\n\r\n"[..], &limits).unwrap_err();
        assert_eq!(e.kind, ErrorKind::MessageTooLarge);
    }

    #[test]
    fn leading_crlf_and_bare_lf() {
        let m = parse(b"\r\n\r\nOPTIONS sip:a SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\n\nbody");
        assert_eq!(m.method(), Some(&Method::Options));
        assert_eq!(m.top_via_branch(), Some("z9hG4bK1"));
        assert_eq!(m.body(), b"body");
    }

    #[test]
    fn datagram_body_rules() {
        let m = parse(b"OPTIONS sip:a SIP/2.0\r\nl: 3\r\n\r\nabcdef");
        assert_eq!(m.body(), b"abc");
        assert!(m.body_defect.is_none());
        let m = parse(b"OPTIONS sip:a SIP/2.0\r\n\r\nabcdef");
        assert_eq!(m.body(), b"abcdef");
        let m = parse(b"OPTIONS sip:a SIP/2.0\r\nContent-Length: 10\r\n\r\nabc");
        assert_eq!(m.body_defect.unwrap().kind, ErrorKind::BodyLengthMismatch);
        let m = parse(b"OPTIONS sip:a SIP/2.0\r\nContent-Length: five\r\n\r\nabc");
        assert_eq!(m.body_defect.unwrap().kind, ErrorKind::BadContentLength);
        assert_eq!(
            m.content_length().unwrap_err().kind,
            ErrorKind::BadContentLength
        );
        let m = parse(b"OPTIONS sip:a SIP/2.0\r\nContent-Length: 99999999999999999999999\r\n\r\n");
        assert_eq!(m.body_defect.unwrap().kind, ErrorKind::BadContentLength);
        let m = parse(b"OPTIONS sip:a SIP/2.0\r\nl: 1\r\nContent-Length: 1\r\n\r\nx");
        assert_eq!(
            m.body_defect.unwrap().kind,
            ErrorKind::DuplicateHeader("Content-Length")
        );
    }

    #[test]
    fn start_line_defects_are_deferred() {
        let m = parse(b"INVITE  sip:a@b  SIP/2.0\r\n\r\n");
        assert_eq!(m.request_uri_bytes(), Some(&b"sip:a@b"[..]));
        assert_eq!(m.start_defect.unwrap().kind, ErrorKind::BadStartLine);
        let m = parse(b"INVITE sip:a@b SIP/2.0  \r\n\r\n");
        assert_eq!(m.version(), b"SIP/2.0");
        assert_eq!(m.start_defect.unwrap().kind, ErrorKind::BadStartLine);
        let m = parse(b"INVITE sip:a@b; lr SIP/2.0\r\n\r\n");
        assert_eq!(m.request_uri_bytes(), Some(&b"sip:a@b; lr"[..]));
        assert!(m.request_uri().is_none());
    }

    #[test]
    fn list_errors_carry_message_offsets() {
        let m = parse(b"OPTIONS sip:a SIP/2.0\r\nVia: SIP/2.0/UDP h;;\r\n\r\n");
        let e = m.top_via().unwrap_err();
        assert_eq!(e.kind, ErrorKind::BadVia);
        assert_eq!(e.header, Some(HeaderName::Via));
        assert_eq!(e.offset, 42);
        assert_eq!(e.reason_phrase(), "Bad Via");
    }

    #[test]
    fn accepts_defaults_to_sdp() {
        let m = parse(b"OPTIONS sip:a SIP/2.0\r\n\r\n");
        assert!(m.accepts("application", "sdp"));
        assert!(!m.accepts("text", "plain"));
        let m = parse(b"OPTIONS sip:a SIP/2.0\r\nAccept: text/*\r\n\r\n");
        assert!(!m.accepts("application", "sdp"));
        assert!(m.accepts("text", "plain"));
    }

    #[test]
    fn contact_wildcard() {
        let m = parse(b"REGISTER sip:a SIP/2.0\r\nContact: *\r\n\r\n");
        assert!(matches!(m.contacts(), Ok(Contacts::Wildcard)));
        let m = parse(b"REGISTER sip:a SIP/2.0\r\nContact: *\r\nContact: <sip:b@c>\r\n\r\n");
        assert!(m.contacts().is_err());
    }
}
