//! Building requests, and responses to received requests (RFC 3261 §8.2.6).

use crate::edit::{check_name, check_value, push_decimal};
use crate::error::{ErrorKind, ParseError};
use crate::headers::NameAddr;
use crate::limits::Limits;
use crate::message::{HeaderName, Message, Method};
use crate::scan;
use crate::uri::Uri;

/// Writes header lines and a body, and sets Content-Length itself.
#[derive(Clone, Debug, Default)]
struct Lines {
    buf: Vec<u8>,
    body: Option<(String, Vec<u8>)>,
    error: Option<ParseError>,
}

impl Lines {
    fn header(&mut self, name: &str, value: &str) {
        if self.error.is_some() {
            return;
        }
        if let Err(e) = check_name(name.as_bytes()).and_then(|_| check_value(value.as_bytes())) {
            self.error = Some(e);
            return;
        }
        // Content-Length is computed at the end.
        if HeaderName::from_bytes(name.as_bytes()) == HeaderName::ContentLength {
            return;
        }
        self.raw_line(name.as_bytes(), value.as_bytes());
    }

    fn raw_line(&mut self, name: &[u8], value: &[u8]) {
        self.buf.extend_from_slice(name);
        self.buf.extend_from_slice(b": ");
        self.buf.extend_from_slice(value);
        self.buf.extend_from_slice(b"\r\n");
    }

    fn body(&mut self, content_type: &str, body: &[u8]) {
        if let Err(e) = check_value(content_type.as_bytes()) {
            self.error.get_or_insert(e);
        }
        self.body = Some((content_type.to_string(), body.to_vec()));
    }

    fn finish(mut self) -> Result<Vec<u8>, ParseError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let body = match self.body.take() {
            Some((ct, body)) => {
                if !body.is_empty() || !ct.is_empty() {
                    self.raw_line(b"Content-Type", ct.as_bytes());
                }
                body
            }
            None => Vec::new(),
        };
        self.buf.extend_from_slice(b"Content-Length: ");
        push_decimal(&mut self.buf, body.len());
        self.buf.extend_from_slice(b"\r\n\r\n");
        self.buf.extend_from_slice(&body);
        Ok(self.buf)
    }
}

/// Builds a request.
///
/// ```
/// use sip::{Method, RequestBuilder};
/// let m = RequestBuilder::new(Method::Options, "sip:bob@example.com")
///     .header("Via", "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1")
///     .header("Max-Forwards", "70")
///     .header("From", "<sip:alice@example.com>;tag=1")
///     .header("To", "<sip:bob@example.com>")
///     .header("Call-ID", "abc")
///     .header("CSeq", "1 OPTIONS")
///     .build()
///     .unwrap();
/// assert!(m.validate().is_ok());
/// ```
#[derive(Clone, Debug)]
pub struct RequestBuilder {
    lines: Lines,
}

impl RequestBuilder {
    /// Starts `METHOD uri SIP/2.0`. The URI must parse.
    pub fn new(method: Method, uri: &str) -> Self {
        let mut lines = Lines::default();
        if let Err(e) = Uri::parse_str(uri) {
            lines.error = Some(ParseError::new(ErrorKind::BadRequestUri, e.offset));
        }
        lines.buf.reserve(512);
        lines.buf.extend_from_slice(method.as_str().as_bytes());
        lines.buf.push(b' ');
        lines.buf.extend_from_slice(uri.as_bytes());
        lines.buf.extend_from_slice(b" SIP/2.0\r\n");
        RequestBuilder { lines }
    }

    /// Adds a header line. Content-Length is always computed, so one given
    /// here is ignored.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.lines.header(name, value);
        self
    }

    /// Sets the body and its Content-Type.
    pub fn body(mut self, content_type: &str, body: &[u8]) -> Self {
        self.lines.body(content_type, body);
        self
    }

    /// The request bytes.
    pub fn to_bytes(self) -> Result<Vec<u8>, ParseError> {
        self.lines.finish()
    }

    /// The request as a parsed [`Message`].
    pub fn build(self) -> Result<Message, ParseError> {
        Message::parse(self.to_bytes()?, &Limits::unbounded())
    }
}

/// Builds a response to a received request: see [`response_to`].
#[derive(Clone, Debug)]
pub struct ResponseBuilder<'r> {
    req: &'r Message,
    lines: Lines,
    record_route: bool,
}

/// Starts a response to `req` per RFC 3261 §8.2.6: status line, then the
/// request's Via (all, in order), From, To, Call-ID and CSeq copied byte for
/// byte. `to_tag` is added to To when the request's To has no tag and the
/// code is above 100. A 100 also copies Timestamp (§8.2.6.1).
/// Content-Length is added on build.
pub fn response_to<'r>(
    req: &'r Message,
    code: u16,
    reason: &str,
    to_tag: Option<&str>,
) -> ResponseBuilder<'r> {
    let mut lines = Lines::default();
    if !req.is_request() {
        lines.error = Some(ParseError::new(ErrorKind::InvalidValue, 0));
    } else if !(100..=699).contains(&code) {
        lines.error = Some(ParseError::new(ErrorKind::BadStatusCode, 0));
    } else if let Err(e) = check_value(reason.as_bytes()) {
        lines.error = Some(e);
    } else if to_tag.is_some_and(|t| !scan::all_token(t.as_bytes())) {
        lines.error = Some(ParseError::new(ErrorKind::InvalidValue, 0));
    }
    let buf = &mut lines.buf;
    buf.reserve(
        256 + req
            .entries()
            .iter()
            .map(|e| e.line_end - e.name_start)
            .sum::<usize>(),
    );
    buf.extend_from_slice(b"SIP/2.0 ");
    push_decimal(buf, usize::from(code));
    buf.push(b' ');
    buf.extend_from_slice(reason.as_bytes());
    buf.extend_from_slice(b"\r\n");
    for e in req.entries() {
        match e.name() {
            HeaderName::Via | HeaderName::From | HeaderName::CallId | HeaderName::CSeq => {
                buf.extend_from_slice(req.slice(e.line_range()));
            }
            HeaderName::Timestamp if code == 100 => {
                buf.extend_from_slice(req.slice(e.line_range()));
            }
            HeaderName::To => {
                let value = req.value_of(e);
                let has_tag = NameAddr::parse(value).is_ok_and(|n| n.tag().is_some());
                match to_tag {
                    Some(tag) if code > 100 && !has_tag => {
                        buf.extend_from_slice(req.name_of(e));
                        buf.extend_from_slice(b": ");
                        buf.extend_from_slice(value);
                        buf.extend_from_slice(b";tag=");
                        buf.extend_from_slice(tag.as_bytes());
                        buf.extend_from_slice(b"\r\n");
                    }
                    _ => buf.extend_from_slice(req.slice(e.line_range())),
                }
            }
            _ => {}
        }
    }
    ResponseBuilder {
        req,
        lines,
        record_route: false,
    }
}

impl ResponseBuilder<'_> {
    /// Also copies the request's Record-Route values (RFC 3261 §12.1.1, for
    /// responses that establish a dialog).
    pub fn copy_record_route(mut self) -> Self {
        if !self.record_route {
            self.record_route = true;
            for e in self.req.entries() {
                if e.name() == HeaderName::RecordRoute {
                    self.lines
                        .buf
                        .extend_from_slice(self.req.slice(e.line_range()));
                }
            }
        }
        self
    }

    /// Adds a header line (Contact, Allow, Unsupported, WWW-Authenticate...).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.lines.header(name, value);
        self
    }

    /// Sets the body and its Content-Type.
    pub fn body(mut self, content_type: &str, body: &[u8]) -> Self {
        self.lines.body(content_type, body);
        self
    }

    /// The response bytes.
    pub fn to_bytes(self) -> Result<Vec<u8>, ParseError> {
        self.lines.finish()
    }

    /// The response as a parsed [`Message`].
    pub fn build(self) -> Result<Message, ParseError> {
        Message::parse(self.to_bytes()?, &Limits::unbounded())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQ: &[u8] = b"INVITE sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKnashds8;received=192.0.2.1\r\n\
v: SIP/2.0/UDP  bigbox3.site3.atlanta.com;branch=z9hG4bK77ef4c2312983.1\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.com>\r\n\
From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710\r\n\
CSeq: 314159 INVITE\r\n\
Record-Route: <sip:p1.example.com;lr>\r\n\
Timestamp: 54\r\n\
Contact: <sip:alice@pc33.atlanta.com>\r\n\
Content-Length: 0\r\n\r\n";

    fn req() -> Message {
        Message::parse(REQ.to_vec(), &Limits::default()).unwrap()
    }

    #[test]
    fn response_copies_section_8_2_6_headers() {
        let req = req();
        let r = response_to(&req, 180, "Ringing", Some("a6c85cf"))
            .build()
            .unwrap();
        assert_eq!(r.status(), Some(180));
        assert_eq!(r.reason(), Some(&b"Ringing"[..]));
        let vias: Vec<_> = r.headers(HeaderName::Via).collect();
        assert_eq!(vias, req.headers(HeaderName::Via).collect::<Vec<_>>());
        assert_eq!(r.header(HeaderName::From), req.header(HeaderName::From));
        assert_eq!(r.header(HeaderName::CallId), req.header(HeaderName::CallId));
        assert_eq!(r.header(HeaderName::CSeq), req.header(HeaderName::CSeq));
        assert_eq!(r.to().unwrap().tag(), Some("a6c85cf"));
        assert_eq!(r.to().unwrap().uri(), req.to().unwrap().uri());
        assert_eq!(r.content_length(), Ok(Some(0)));
        assert!(!r.has_header(HeaderName::RecordRoute));
        assert!(!r.has_header(HeaderName::Timestamp));
        assert!(!r.has_header(HeaderName::MaxForwards));
        assert_eq!(r.validate(), Ok(()));
        // Byte-for-byte copies of the Via lines, compact form included.
        let text = r.serialize();
        assert!(text.windows(18).any(|w| w == b"v: SIP/2.0/UDP  bi"));
    }

    #[test]
    fn trying_gets_no_tag_but_timestamp() {
        let req = req();
        let r = response_to(&req, 100, "Trying", Some("x")).build().unwrap();
        assert_eq!(r.to().unwrap().tag(), None);
        assert_eq!(r.header(HeaderName::Timestamp), Some(&b"54"[..]));
    }

    #[test]
    fn existing_tag_is_kept() {
        let raw = String::from_utf8(REQ.to_vec()).unwrap().replace(
            "To: Bob <sip:bob@biloxi.com>",
            "To: Bob <sip:bob@biloxi.com>;tag=old",
        );
        let req = Message::parse(raw.into_bytes(), &Limits::default()).unwrap();
        let r = response_to(&req, 200, "OK", Some("new")).build().unwrap();
        assert_eq!(r.to().unwrap().tag(), Some("old"));
    }

    #[test]
    fn dialog_response_with_body_and_record_route() {
        let req = req();
        let r = response_to(&req, 200, "OK", Some("t"))
            .copy_record_route()
            .header("Contact", "<sip:bob@192.0.2.4>")
            .header("Content-Length", "999")
            .body("application/sdp", b"v=0\r\n")
            .build()
            .unwrap();
        assert_eq!(r.record_routes().count(), 1);
        assert_eq!(r.body(), b"v=0\r\n");
        assert_eq!(r.content_length(), Ok(Some(5)));
        assert_eq!(r.header_count(HeaderName::ContentLength), 1);
        assert!(r.content_type().unwrap().unwrap().is("application", "sdp"));
    }

    #[test]
    fn response_errors() {
        let req = req();
        assert_eq!(
            response_to(&req, 99, "x", None).build().unwrap_err().kind,
            ErrorKind::BadStatusCode
        );
        assert_eq!(
            response_to(&req, 200, "O\r\nK", None)
                .build()
                .unwrap_err()
                .kind,
            ErrorKind::InvalidValue
        );
        assert_eq!(
            response_to(&req, 200, "OK", Some("a b"))
                .build()
                .unwrap_err()
                .kind,
            ErrorKind::InvalidValue
        );
        let resp = response_to(&req, 200, "OK", None).build().unwrap();
        assert!(response_to(&resp, 200, "OK", None).build().is_err());
        assert!(response_to(&req, 200, "OK", None)
            .header("X", "a\nb")
            .build()
            .is_err());
    }

    #[test]
    fn request_builder() {
        let m = RequestBuilder::new(Method::Message, "sip:bob@example.com")
            .header("Via", "SIP/2.0/TCP 192.0.2.1;branch=z9hG4bK1")
            .header("Max-Forwards", "70")
            .header("From", "<sip:alice@example.com>;tag=1")
            .header("To", "<sip:bob@example.com>")
            .header("Call-ID", "abc")
            .header("CSeq", "1 MESSAGE")
            .body("text/plain", b"hi")
            .build()
            .unwrap();
        assert_eq!(m.validate(), Ok(()));
        assert_eq!(m.body(), b"hi");
        assert_eq!(m.content_length(), Ok(Some(2)));
        assert!(RequestBuilder::new(Method::Invite, "not a uri")
            .build()
            .is_err());
        assert!(RequestBuilder::new(Method::Invite, "sip:a@b")
            .header("To", "x\r\ny")
            .build()
            .is_err());
    }
}
