//! Editing a parsed message and writing it back out.
//!
//! Edits never touch the received bytes: new lines go to a side buffer and
//! the header index points at them. Serializing copies every untouched line
//! (and runs of adjacent untouched lines in one go) verbatim.

use std::ops::Range;

use bytes::Bytes;

use crate::error::{ErrorKind, ParseError};
use crate::headers::{self, ListItem, NameAddr, Via};
use crate::message::{HeaderEntry, HeaderKey, HeaderName, Message, StartLine};
use crate::scan::{self, Cursor};
use crate::uri::Uri;

pub(crate) fn check_name(name: &[u8]) -> Result<(), ParseError> {
    if scan::all_token(name) {
        Ok(())
    } else {
        Err(ParseError::new(ErrorKind::InvalidValue, 0))
    }
}

/// A value must not contain line breaks: they would end the header early
/// and let the value inject headers.
pub(crate) fn check_value(value: &[u8]) -> Result<(), ParseError> {
    match memchr::memchr2(b'\r', b'\n', value) {
        Some(p) => Err(ParseError::new(ErrorKind::InvalidValue, p)),
        None => Ok(()),
    }
}

/// Formats a decimal number into `buf` without going through `fmt`.
pub(crate) fn decimal(buf: &mut [u8; 20], mut n: usize) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}

/// Appends a decimal number.
pub(crate) fn push_decimal(out: &mut Vec<u8>, n: usize) {
    let mut buf = [0u8; 20];
    out.extend_from_slice(decimal(&mut buf, n));
}

/// Parses the first element of a list value; returns where the rest starts,
/// or `None` when the element is the only one.
fn split_first<'a, T: ListItem<'a>>(value: &'a [u8]) -> Result<Option<usize>, ParseError> {
    let mut c = Cursor::new(value);
    c.skip_lws();
    T::parse_item(value, &mut c.pos)?;
    c.skip_lws();
    if c.is_end() {
        return Ok(None);
    }
    if !c.eat(b',') {
        return Err(c.err(T::KIND));
    }
    c.skip_lws();
    if c.is_end() {
        return Err(c.err(T::KIND));
    }
    Ok(Some(c.pos))
}

impl Message {
    fn base(&self) -> usize {
        self.raw.len() + self.arena.len()
    }

    /// One allocation covers the usual proxy edits.
    fn reserve_arena(&mut self, n: usize) {
        if self.arena.capacity() == 0 {
            self.arena.reserve(n.max(256));
        }
    }

    /// Appends `name: value CRLF` to the side buffer and returns its entry.
    fn push_line(
        &mut self,
        name: HeaderName,
        name_bytes: NameSrc<'_>,
        value: &[u8],
    ) -> HeaderEntry {
        self.reserve_arena(value.len() + 32);
        let name_start = self.base();
        match name_bytes {
            NameSrc::Bytes(b) => self.arena.extend_from_slice(b),
            NameSrc::Range(r) => self.append_range(r),
        }
        let name_end = self.base();
        self.arena.extend_from_slice(b": ");
        let value_start = self.base();
        self.arena.extend_from_slice(value);
        let value_end = self.base();
        self.arena.extend_from_slice(b"\r\n");
        self.edited = true;
        HeaderEntry {
            name,
            name_start,
            name_end,
            value_start,
            value_end,
            line_end: self.base(),
            folded: false,
        }
    }

    /// Copies bytes at a message position (received or edited) to the side buffer.
    fn append_range(&mut self, r: Range<usize>) {
        let n = self.raw.len();
        if r.start >= n {
            let (s, e) = (r.start - n, r.end.saturating_sub(n));
            if s <= e && e <= self.arena.len() {
                self.arena.extend_from_within(s..e);
            }
        } else if let Some(b) = self.raw.get(r) {
            self.arena.extend_from_slice(b);
        }
    }

    fn new_entry(&mut self, name: &str, value: &str) -> Result<HeaderEntry, ParseError> {
        check_name(name.as_bytes())?;
        check_value(value.as_bytes())?;
        Ok(self.push_line(
            HeaderName::from_bytes(name.as_bytes()),
            NameSrc::Bytes(name.as_bytes()),
            value.as_bytes(),
        ))
    }

    /// Inserts a header line at `index` (clamped to the end).
    pub fn insert_header(
        &mut self,
        index: usize,
        name: &str,
        value: &str,
    ) -> Result<(), ParseError> {
        let e = self.new_entry(name, value)?;
        let i = index.min(self.headers.len());
        self.headers.insert(i, e);
        Ok(())
    }

    /// Appends a header line after the others.
    pub fn add_header(&mut self, name: &str, value: &str) -> Result<(), ParseError> {
        self.insert_header(usize::MAX, name, value)
    }

    /// Removes the header line at `index`; returns whether there was one.
    pub fn remove_header(&mut self, index: usize) -> bool {
        if index < self.headers.len() {
            self.headers.remove(index);
            self.edited = true;
            true
        } else {
            false
        }
    }

    /// Removes every header line with this name; returns how many.
    pub fn remove_headers<K: HeaderKey>(&mut self, name: K) -> usize {
        let mut removed = 0;
        while let Some(i) = self.position(name.header_key_ref()) {
            self.headers.remove(i);
            removed += 1;
        }
        if removed > 0 {
            self.edited = true;
        }
        removed
    }

    /// Replaces the value of the header line at `index`, keeping its name as
    /// written. Returns `Ok(false)` when there is no such line.
    pub fn replace_header(&mut self, index: usize, value: &str) -> Result<bool, ParseError> {
        check_value(value.as_bytes())?;
        Ok(self.replace_value(index, value.as_bytes()))
    }

    fn replace_value(&mut self, index: usize, value: &[u8]) -> bool {
        let Some(old) = self.headers.get(index) else {
            return false;
        };
        let (name, r) = (old.name, old.name_range());
        let e = self.push_line(name, NameSrc::Range(r), value);
        self.headers[index] = e;
        true
    }

    /// Sets a header to a single line with this value: replaces the first
    /// one, removes the others, or appends one under its canonical name.
    pub fn set_header(&mut self, name: HeaderName, value: &str) -> Result<(), ParseError> {
        check_value(value.as_bytes())?;
        let Some(first) = self.position(name) else {
            let canon = name
                .canonical_name()
                .ok_or(ParseError::new(ErrorKind::InvalidValue, 0))?;
            return self.add_header(canon, value);
        };
        self.replace_value(first, value.as_bytes());
        let mut i = first + 1;
        while i < self.headers.len() {
            if self.headers[i].name == name {
                self.headers.remove(i);
            } else {
                i += 1;
            }
        }
        Ok(())
    }

    /// Adds a Via value on top (RFC 3261 §16.6 step 8), as its own line.
    pub fn prepend_via(&mut self, value: &str) -> Result<(), ParseError> {
        let i = self.position(HeaderName::Via).unwrap_or(0);
        let e = self.named_entry(HeaderName::Via, value)?;
        self.headers.insert(i, e);
        Ok(())
    }

    /// Adds a Record-Route value on top (RFC 3261 §16.6 step 4). Without
    /// Record-Route headers it goes after the Vias.
    pub fn prepend_record_route(&mut self, value: &str) -> Result<(), ParseError> {
        let i = match self.position(HeaderName::RecordRoute) {
            Some(i) => i,
            None => self
                .headers
                .iter()
                .rposition(|e| e.name == HeaderName::Via)
                .map_or(0, |p| p + 1),
        };
        let e = self.named_entry(HeaderName::RecordRoute, value)?;
        self.headers.insert(i, e);
        Ok(())
    }

    fn named_entry(&mut self, name: HeaderName, value: &str) -> Result<HeaderEntry, ParseError> {
        check_value(value.as_bytes())?;
        let canon = name.canonical_name().unwrap_or("");
        Ok(self.push_line(name, NameSrc::Bytes(canon.as_bytes()), value.as_bytes()))
    }

    /// Removes the topmost value of a list header (Via when a proxy forwards
    /// a response, Route when it consumes its own entry). A header line
    /// holding several values keeps the others. Returns whether a value was
    /// removed.
    pub fn remove_first_value(&mut self, name: HeaderName) -> Result<bool, ParseError> {
        let Some(i) = self.position(name) else {
            return Ok(false);
        };
        let e = self.headers[i].clone();
        let value = self.value_of(&e);
        let rest = match name {
            HeaderName::Via => split_first::<Via>(value),
            _ => split_first::<NameAddr>(value),
        }
        .map_err(|err| err.in_header(name, e.value_start))?;
        self.edited = true;
        match rest {
            None => {
                self.headers.remove(i);
            }
            Some(off) => {
                let name_start = self.base();
                self.append_range(e.name_range());
                let name_end = self.base();
                self.arena.extend_from_slice(b": ");
                let value_start = self.base();
                self.append_range(e.value_start + off..e.value_end);
                let value_end = self.base();
                self.arena.extend_from_slice(b"\r\n");
                self.headers[i] = HeaderEntry {
                    name: e.name,
                    name_start,
                    name_end,
                    value_start,
                    value_end,
                    line_end: self.base(),
                    folded: false,
                };
            }
        }
        Ok(true)
    }

    /// Removes the top Via value.
    pub fn pop_via(&mut self) -> Result<bool, ParseError> {
        self.remove_first_value(HeaderName::Via)
    }

    /// Removes the top Route value.
    pub fn pop_route(&mut self) -> Result<bool, ParseError> {
        self.remove_first_value(HeaderName::Route)
    }

    /// Replaces the Request-URI. The new URI must parse.
    pub fn set_request_uri(&mut self, uri: &str) -> Result<(), ParseError> {
        Uri::parse_str(uri).map_err(|e| ParseError::new(ErrorKind::BadRequestUri, e.offset))?;
        let StartLine::Request {
            method, version, ..
        } = &self.start
        else {
            return Err(ParseError::new(ErrorKind::InvalidValue, 0));
        };
        let (method, version) = (method.clone(), version.clone());
        self.reserve_arena(uri.len() + 32);
        let line_start = self.base();
        self.arena.extend_from_slice(method.as_str().as_bytes());
        self.arena.push(b' ');
        let us = self.base();
        self.arena.extend_from_slice(uri.as_bytes());
        let ue = self.base();
        self.arena.push(b' ');
        let vs = self.base();
        self.append_range(version);
        let ve = self.base();
        self.arena.extend_from_slice(b"\r\n");
        self.start = StartLine::Request {
            method,
            uri: us..ue,
            version: vs..ve,
        };
        self.start_line = line_start..self.base();
        self.start_defect = None;
        self.edited = true;
        Ok(())
    }

    /// Decrements Max-Forwards for forwarding (RFC 3261 §16.6 step 3) and
    /// returns the new value; adds `Max-Forwards: 70` when absent. Fails
    /// with [`ErrorKind::TooManyHops`] when it is already zero.
    pub fn decrement_max_forwards(&mut self) -> Result<u8, ParseError> {
        let Some(i) = self.position(HeaderName::MaxForwards) else {
            self.add_header("Max-Forwards", "70")?;
            return Ok(70);
        };
        let e = &self.headers[i];
        let n = headers::parse_max_forwards(self.value_of(e))
            .map_err(|err| err.in_header(HeaderName::MaxForwards, e.value_start))?;
        if n == 0 {
            return Err(ParseError::new(ErrorKind::TooManyHops, e.value_start)
                .in_header(HeaderName::MaxForwards, 0));
        }
        let mut buf = [0u8; 20];
        let v = decimal(&mut buf, usize::from(n - 1));
        self.replace_value(i, v);
        Ok(n - 1)
    }

    /// Replaces the body and sets Content-Length to match. With a content
    /// type, Content-Type is set too; an empty body without one drops
    /// Content-Type.
    pub fn set_body(&mut self, content_type: Option<&str>, body: &[u8]) -> Result<(), ParseError> {
        if let Some(ct) = content_type {
            self.set_header(HeaderName::ContentType, ct)?;
        } else if body.is_empty() {
            self.remove_headers(HeaderName::ContentType);
        }
        let start = self.base();
        self.arena.extend_from_slice(body);
        self.body = start..self.base();
        self.set_content_length();
        Ok(())
    }

    /// Sets Content-Length to the body length (needed before sending a
    /// datagram-received message over a stream).
    pub fn set_content_length(&mut self) {
        let mut buf = [0u8; 20];
        let v = decimal(&mut buf, self.body.len());
        match self.position(HeaderName::ContentLength) {
            Some(i) if self.value_of(&self.headers[i]) == v => {}
            Some(i) => {
                self.replace_value(i, v);
            }
            None => {
                let e = self.push_line(
                    HeaderName::ContentLength,
                    NameSrc::Bytes(b"Content-Length"),
                    v,
                );
                self.headers.push(e);
            }
        }
        let mut i = self
            .position(HeaderName::ContentLength)
            .map_or(0, |p| p + 1);
        while i < self.headers.len() {
            if self.headers[i].name == HeaderName::ContentLength {
                self.headers.remove(i);
                self.edited = true;
            } else {
                i += 1;
            }
        }
        self.body_defect = None;
    }

    /// Whether the message was edited since it was parsed.
    pub fn is_edited(&self) -> bool {
        self.edited
    }

    /// Exact length of [`Message::serialize`]'s output.
    pub fn serialized_len(&self) -> usize {
        if !self.edited {
            return self.body.end - self.start_line.start;
        }
        self.start_line.len()
            + self
                .headers
                .iter()
                .map(|e| e.line_end - e.name_start)
                .sum::<usize>()
            + 2
            + self.body.len()
    }

    /// Appends the message to `out`: untouched lines are copied byte for
    /// byte, edited ones written fresh; one reservation, one pass.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.reserve(self.serialized_len());
        if !self.edited {
            out.extend_from_slice(self.slice(self.start_line.start..self.body.end));
            return;
        }
        out.extend_from_slice(self.slice(self.start_line.clone()));
        let n = self.raw.len();
        let mut run: Option<Range<usize>> = None;
        for e in &self.headers {
            let r = e.line_range();
            match &mut run {
                Some(cur) if cur.end == r.start && (cur.start < n) == (r.start < n) => {
                    cur.end = r.end;
                }
                _ => {
                    if let Some(cur) = run.take() {
                        out.extend_from_slice(self.slice(cur));
                    }
                    run = Some(r);
                }
            }
        }
        if let Some(cur) = run {
            out.extend_from_slice(self.slice(cur));
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(self.body());
    }

    /// The message as bytes (see [`Message::write_to`]).
    pub fn serialize(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.write_to(&mut v);
        v
    }

    /// The message as `Bytes`; without edits this shares the received
    /// buffer instead of copying.
    pub fn to_bytes(&self) -> Bytes {
        if !self.edited {
            return self.raw.slice(self.start_line.start..self.body.end);
        }
        Bytes::from(self.serialize())
    }
}

enum NameSrc<'a> {
    Bytes(&'a [u8]),
    Range(Range<usize>),
}

/// Lets `remove_headers` re-query with the same key.
trait KeyRef {
    fn header_key_ref(&self) -> KeyOwned<'_>;
}

impl<K: HeaderKey> KeyRef for K {
    fn header_key_ref(&self) -> KeyOwned<'_> {
        let (n, b) = self.header_key();
        KeyOwned(n, b)
    }
}

struct KeyOwned<'a>(HeaderName, &'a [u8]);

impl HeaderKey for KeyOwned<'_> {
    fn header_key(&self) -> (HeaderName, &[u8]) {
        (self.0, self.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Limits;

    const INVITE: &[u8] = b"INVITE sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bKnashds7\r\n\
MaX-fOrWaRdS: 0070\r\n\
To: Bob <sip:bob@example.com>\r\n\
From: \"Alice\" <sip:alice@example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710\r\n\
CSeq: 314159 INVITE\r\n\
Subject: folded\r\n  subject line\r\n\
Contact: <sip:alice@df7jal23ls0d.invalid;transport=ws;ob>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 5\r\n\r\nv=0\r\n";

    fn parse(b: &[u8]) -> Message {
        Message::parse(b.to_vec(), &Limits::default()).unwrap()
    }

    #[test]
    fn unedited_serializes_identically() {
        let m = parse(INVITE);
        assert_eq!(m.serialize(), INVITE);
        assert_eq!(&m.to_bytes()[..], INVITE);
        // Leading CRLF and trailing datagram noise are not part of the message.
        let mut noisy = b"\r\n".to_vec();
        noisy.extend_from_slice(INVITE);
        noisy.extend_from_slice(b"junk");
        let m = parse(&noisy);
        assert_eq!(m.serialize(), INVITE);
        assert_eq!(m.serialized_len(), INVITE.len());
    }

    #[test]
    fn proxy_edits_keep_untouched_lines() {
        let mut m = parse(INVITE);
        m.prepend_via("SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp1")
            .unwrap();
        m.prepend_record_route("<sip:proxy.example.com;lr>")
            .unwrap();
        m.set_request_uri("sip:bob@192.0.2.4:5060").unwrap();
        assert_eq!(m.decrement_max_forwards(), Ok(69));
        let out = m.serialize();
        assert_eq!(out.len(), m.serialized_len());
        let text = String::from_utf8(out.clone()).unwrap();
        let expected = String::from_utf8(INVITE.to_vec())
            .unwrap()
            .replace("INVITE sip:bob@example.com SIP/2.0\r\n", "INVITE sip:bob@192.0.2.4:5060 SIP/2.0\r\nVia: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp1\r\n")
            .replace(
                "MaX-fOrWaRdS: 0070\r\n",
                "Record-Route: <sip:proxy.example.com;lr>\r\nMaX-fOrWaRdS: 69\r\n",
            );
        assert_eq!(text, expected);
        let again = parse(&out);
        assert_eq!(again.vias().count(), 2);
        assert_eq!(again.top_via_branch(), Some("z9hG4bKp1"));
        assert_eq!(again.max_forwards(), Ok(Some(69)));
        assert_eq!(again.request_uri().unwrap().port(), Some(5060));
        assert_eq!(again.validate(), Ok(()));
        // Accessors on the edited message see the edits.
        assert_eq!(m.top_via_branch(), Some("z9hG4bKp1"));
        assert_eq!(m.request_uri().unwrap().as_str(), "sip:bob@192.0.2.4:5060");
        assert_eq!(m.record_routes().count(), 1);
        // A second rewrite reads the version from the edited start line.
        m.set_request_uri("sip:x@y").unwrap();
        assert_eq!(m.version(), b"SIP/2.0");
        assert!(m.serialize().starts_with(b"INVITE sip:x@y SIP/2.0\r\n"));
    }

    #[test]
    fn add_remove_replace() {
        let mut m = parse(INVITE);
        assert_eq!(m.remove_headers(HeaderName::Subject), 1);
        assert_eq!(m.remove_headers("subject"), 0);
        m.add_header("X-Trace", "abc").unwrap();
        let i = m.position(HeaderName::To).unwrap();
        assert_eq!(m.replace_header(i, "<sip:bob@example.com>;tag=9"), Ok(true));
        assert_eq!(m.replace_header(999, "x"), Ok(false));
        assert!(m.remove_header(0));
        assert!(!m.remove_header(999));
        let out = parse(&m.serialize());
        assert!(!out.has_header(HeaderName::Via));
        assert!(!out.has_header(HeaderName::Subject));
        assert_eq!(out.header("x-trace"), Some(&b"abc"[..]));
        assert_eq!(out.to().unwrap().tag(), Some("9"));
        assert_eq!(
            m.add_header("X-Bad", "a\r\nInjected: 1").unwrap_err().kind,
            ErrorKind::InvalidValue
        );
        assert_eq!(
            m.add_header("Bad Name", "a").unwrap_err().kind,
            ErrorKind::InvalidValue
        );
        assert!(m.prepend_via("x\ny").is_err());
    }

    #[test]
    fn set_body_updates_length() {
        let mut m = parse(INVITE);
        m.set_body(Some("text/plain"), b"hello").unwrap();
        let out = parse(&m.serialize());
        assert_eq!(out.body(), b"hello");
        assert_eq!(out.content_length(), Ok(Some(5)));
        assert!(out.content_type().unwrap().unwrap().is("text", "plain"));
        m.set_body(None, b"").unwrap();
        let out = parse(&m.serialize());
        assert!(out.body().is_empty());
        assert!(!out.has_header(HeaderName::ContentType));
        assert_eq!(out.header_count(HeaderName::ContentLength), 1);
        // No Content-Length at all: one is added.
        let mut m = parse(b"OPTIONS sip:a SIP/2.0\r\nVia: SIP/2.0/UDP h\r\n\r\nabc");
        m.set_content_length();
        assert!(m.serialize().ends_with(b"Content-Length: 3\r\n\r\nabc"));
    }

    #[test]
    fn max_forwards_edges() {
        let mut m = parse(b"OPTIONS sip:a SIP/2.0\r\nMax-Forwards: 0\r\n\r\n");
        assert_eq!(
            m.decrement_max_forwards().unwrap_err().kind,
            ErrorKind::TooManyHops
        );
        assert_eq!(m.decrement_max_forwards().unwrap_err().status_code(), 483);
        let mut m = parse(b"OPTIONS sip:a SIP/2.0\r\n\r\n");
        assert_eq!(m.decrement_max_forwards(), Ok(70));
        assert_eq!(m.max_forwards(), Ok(Some(70)));
    }

    #[test]
    fn pop_values() {
        let mut m = parse(
            b"SIP/2.0 200 OK\r\nv: SIP/2.0/UDP p1;branch=z9hG4bK1 , SIP/2.0/UDP p2;branch=z9hG4bK2\r\nVia: SIP/2.0/UDP c;branch=z9hG4bK3\r\nRoute: <sip:a;lr>\r\n\r\n",
        );
        assert_eq!(m.pop_via(), Ok(true));
        assert_eq!(m.top_via_branch(), Some("z9hG4bK2"));
        assert_eq!(m.pop_via(), Ok(true));
        assert_eq!(m.top_via_branch(), Some("z9hG4bK3"));
        assert_eq!(m.pop_route(), Ok(true));
        assert_eq!(m.pop_route(), Ok(false));
        let out = m.serialize();
        assert_eq!(
            out,
            b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP c;branch=z9hG4bK3\r\n\r\n"
        );
    }

    #[test]
    fn decimal() {
        for n in [0usize, 7, 10, 69, 255, 65535, usize::MAX] {
            let mut v = Vec::new();
            push_decimal(&mut v, n);
            assert_eq!(v, n.to_string().as_bytes());
        }
    }
}
