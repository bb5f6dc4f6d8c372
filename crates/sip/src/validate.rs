//! Checks a proxy or registrar relies on before acting on a message.

use crate::error::{ErrorKind, ParseError};
use crate::headers::{NameAddr, Via};
use crate::message::{Contacts, HeaderName, Message, StartLine};
use crate::scan;
use crate::uri::Uri;

/// Options for [`Message::validate_with`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validation {
    /// Requests must carry Max-Forwards (RFC 3261 §8.1.1). Off accepts
    /// RFC 2543 requests, which lack it (RFC 4475 §3.4.1).
    pub require_max_forwards: bool,
    /// The top Via of a request must carry an RFC 3261 branch (magic cookie
    /// plus an identifier). Off leaves the choice to fall back to RFC 2543
    /// transaction matching to the transaction layer (RFC 4475 §3.2.1).
    pub require_rfc3261_branch: bool,
}

impl Default for Validation {
    fn default() -> Self {
        Validation {
            require_max_forwards: true,
            require_rfc3261_branch: false,
        }
    }
}

impl Validation {
    /// Accepts what RFC 2543 elements send: no Max-Forwards, no branch.
    pub const fn rfc2543_compatible() -> Self {
        Validation {
            require_max_forwards: false,
            require_rfc3261_branch: false,
        }
    }
}

const SINGLE: [HeaderName; 5] = [
    HeaderName::From,
    HeaderName::To,
    HeaderName::CallId,
    HeaderName::CSeq,
    HeaderName::MaxForwards,
];

fn is_callid(v: &[u8]) -> bool {
    let mut parts = v.splitn(2, |&c| c == b'@');
    parts.all(|p| !p.is_empty() && p.iter().all(|&c| scan::is_word(c)))
}

impl Message {
    /// Validates with [`Validation::default`].
    pub fn validate(&self) -> Result<(), ParseError> {
        self.validate_with(&Validation::default())
    }

    /// Checks, in this order, and reports the first problem found:
    /// version is SIP/2.0 (error status 505); Request-Line spacing;
    /// Request-URI syntax (no embedded headers in a SIP Request-URI);
    /// Content-Length (a number, once, not beyond the datagram); mandatory
    /// headers (Via, From, To, Call-ID, CSeq, and Max-Forwards for
    /// requests); single-value headers appearing once; then that Via, From,
    /// To, Call-ID, CSeq (method matching the request), Max-Forwards
    /// (0..=255), Contact, Route, Record-Route, Path and Content-Type parse.
    pub fn validate_with(&self, opts: &Validation) -> Result<(), ParseError> {
        let (version_at, uri_range) = match &self.start {
            StartLine::Request { uri, version, .. } => (version.start, Some(uri.clone())),
            StartLine::Response { version, .. } => (version.start, None),
        };
        if !self.version().eq_ignore_ascii_case(b"SIP/2.0") {
            return Err(ParseError::new(ErrorKind::BadVersion, version_at));
        }
        if let Some(e) = self.start_defect {
            return Err(e);
        }
        if let Some(r) = uri_range {
            let bytes = self.slice(r.clone());
            let uri = Uri::parse(bytes)
                .map_err(|e| ParseError::new(ErrorKind::BadRequestUri, r.start + e.offset))?;
            // RFC 3261 §19.1.1: headers are not allowed in a Request-URI.
            if uri.is_sip() && uri.headers_str().is_some() {
                let q = memchr::memchr(b'?', bytes).unwrap_or(0);
                return Err(ParseError::new(ErrorKind::BadRequestUri, r.start + q));
            }
        }
        if let Some(e) = self.body_defect {
            return Err(e);
        }
        let is_request = self.is_request();
        let mut counts = [0usize; SINGLE.len()];
        let mut has_via = false;
        for e in &self.headers {
            if e.name == HeaderName::Via {
                has_via = true;
            } else if let Some(i) = SINGLE.iter().position(|n| *n == e.name) {
                counts[i] += 1;
            }
        }
        let missing = |name: &'static str| {
            Err(ParseError::new(
                ErrorKind::MissingHeader(name),
                self.start_line.end,
            ))
        };
        if !has_via {
            return missing("Via");
        }
        for (name, count) in SINGLE.iter().zip(counts) {
            let canon = name.canonical_name().unwrap_or("");
            let required =
                *name != HeaderName::MaxForwards || (is_request && opts.require_max_forwards);
            if count == 0 && required {
                return missing(canon);
            }
        }
        for (name, count) in SINGLE.iter().zip(counts) {
            if count > 1 {
                let second = self
                    .headers
                    .iter()
                    .filter(|e| e.name == *name)
                    .nth(1)
                    .map_or(0, |e| e.name_start);
                return Err(ParseError::new(
                    ErrorKind::DuplicateHeader(name.canonical_name().unwrap_or("")),
                    second,
                ));
            }
        }

        let mut first_via: Option<Via<'_>> = None;
        for v in self.vias() {
            let v = v?;
            first_via.get_or_insert(v);
        }
        if is_request && opts.require_rfc3261_branch {
            if let Some(v) = first_via {
                if !v.has_rfc3261_branch() {
                    let at = self.entry(HeaderName::Via).map_or(0, |e| e.value_start);
                    return Err(
                        ParseError::new(ErrorKind::BadBranch, at).in_header(HeaderName::Via, 0)
                    );
                }
            }
        }
        // A tag without a value is no tag: a response could not add one.
        for (name, na) in [
            (HeaderName::From, self.from()?),
            (HeaderName::To, self.to()?),
        ] {
            if na
                .param("tag")
                .is_some_and(|p| p.value.is_none_or(str::is_empty))
            {
                let at = self.entry(name).map_or(0, |e| e.value_range().start);
                return Err(ParseError::new(ErrorKind::BadNameAddr, at).in_header(name, at));
            }
        }
        if let Some(e) = self.entry(HeaderName::CallId) {
            if !is_callid(self.value_of(e)) {
                return Err(ParseError::new(
                    ErrorKind::BadHeader { name: "Call-ID" },
                    e.value_start,
                )
                .in_header(HeaderName::CallId, 0));
            }
        }
        let cseq = self.cseq()?;
        if let StartLine::Request { method, .. } = &self.start {
            if cseq.method != *method {
                let at = self.entry(HeaderName::CSeq).map_or(0, |e| e.value_start);
                return Err(ParseError::new(ErrorKind::CSeqMethodMismatch, at)
                    .in_header(HeaderName::CSeq, 0));
            }
        }
        self.max_forwards()?;
        if let Contacts::List(list) = self.contacts()? {
            for c in list {
                c?;
            }
        }
        for name in [HeaderName::Route, HeaderName::RecordRoute, HeaderName::Path] {
            for (i, r) in self.list::<NameAddr>(name).enumerate() {
                let r = r?;
                // route-param = name-addr: the URI must be in <> so that its
                // parameters (lr) are not taken for header parameters.
                if !r.is_bracketed() {
                    let at = self
                        .headers
                        .iter()
                        .filter(|e| e.name == name)
                        .nth(i)
                        .map_or(0, |e| e.value_start);
                    return Err(ParseError::new(ErrorKind::BadNameAddr, at).in_header(name, 0));
                }
            }
        }
        self.content_type()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Limits;

    fn check(s: &str) -> Result<(), ParseError> {
        Message::parse(s.as_bytes().to_vec(), &Limits::default())
            .unwrap()
            .validate()
    }

    const OK: &str = "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
Max-Forwards: 70\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\n";

    fn with(extra: &str) -> Result<(), ParseError> {
        if extra.is_empty() {
            check(&format!("{OK}\r\n"))
        } else {
            check(&format!("{OK}{extra}\r\n\r\n"))
        }
    }

    #[test]
    fn accepts_minimal_request() {
        assert_eq!(with(""), Ok(()));
        assert_eq!(with("Route: <sip:p1;lr>, <sip:p2;lr>"), Ok(()));
        assert_eq!(with("Contact: *"), Ok(()));
    }

    #[test]
    fn reports_specific_problems() {
        let kind = |r: Result<(), ParseError>| r.unwrap_err().kind;
        assert_eq!(kind(with("Route: sip:p1;lr")), ErrorKind::BadNameAddr);
        assert_eq!(
            kind(with("Max-Forwards: 1")),
            ErrorKind::DuplicateHeader("Max-Forwards")
        );
        assert_eq!(
            kind(with("Content-Type: nonsense")),
            ErrorKind::BadHeader {
                name: "Content-Type"
            }
        );
        assert_eq!(kind(with("Contact: <sip:a@b>;;")), ErrorKind::BadParam);
        assert_eq!(
            kind(check(
                &(OK.replace("CSeq: 1 OPTIONS", "CSeq: 1 INVITE") + "\r\n")
            )),
            ErrorKind::CSeqMethodMismatch
        );
        assert_eq!(
            kind(check(&(OK.replace("Call-ID: c1", "Call-ID: a b") + "\r\n"))),
            ErrorKind::BadHeader { name: "Call-ID" }
        );
        assert_eq!(
            kind(check(
                &(OK.replace("Max-Forwards: 70", "Max-Forwards: 256") + "\r\n")
            )),
            ErrorKind::MaxForwardsOutOfRange
        );
        assert_eq!(
            kind(check(&(OK.replace("Max-Forwards: 70\r\n", "") + "\r\n"))),
            ErrorKind::MissingHeader("Max-Forwards")
        );
        let no_mf = OK.replace("Max-Forwards: 70\r\n", "") + "\r\n";
        let m = Message::parse(no_mf.into_bytes(), &Limits::default()).unwrap();
        assert_eq!(m.validate_with(&Validation::rfc2543_compatible()), Ok(()));
        let bare = OK.replace("z9hG4bK1", "z9hG4bK") + "\r\n";
        let m = Message::parse(bare.into_bytes(), &Limits::default()).unwrap();
        assert_eq!(m.validate(), Ok(()));
        let strict = Validation {
            require_rfc3261_branch: true,
            ..Validation::default()
        };
        assert_eq!(
            m.validate_with(&strict).unwrap_err().kind,
            ErrorKind::BadBranch
        );
    }

    #[test]
    fn responses_need_no_max_forwards() {
        let r = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:x@y>;tag=1\r\n\
To: <sip:a@b>;tag=2\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\n\r\n";
        assert_eq!(check(r), Ok(()));
        let r = r.replace("SIP/2.0 200", "SIP/3.0 200");
        assert_eq!(check(&r).unwrap_err().kind, ErrorKind::BadVersion);
    }
}
