//! Typed header values, decoded on demand and borrowing from the message.
//!
//! Decoders take a header value as bytes (as returned by
//! [`Message::header`](crate::Message::header)); folds inside the value are
//! treated as whitespace, so no unfolding copy is needed. Error offsets are
//! relative to the value; the `Message` accessors rebase them to message
//! positions.

use std::borrow::Cow;
use std::marker::PhantomData;
use std::ops::Deref;

use crate::error::{ErrorKind, ParseError};
use crate::message::Method;
use crate::scan::{self, as_str, is_lws, is_token, unescape_quoted, Cursor};
use crate::uri::{parse_host, Host, Uri};

/// One element type of a comma-separated header value.
pub trait ListItem<'a>: Sized {
    /// The error kind for a malformed list of this type.
    const KIND: ErrorKind;
    /// Whether an empty value is an empty list rather than an error.
    const ALLOW_EMPTY: bool;
    /// Parses one element starting at `*pos` (no leading LWS) and advances
    /// `*pos` past it.
    fn parse_item(s: &'a [u8], pos: &mut usize) -> Result<Self, ParseError>;
}

/// Iterator over the elements of one comma-separated header value. Stops
/// after the first error.
#[derive(Clone, Debug)]
pub struct ListIter<'a, T> {
    s: &'a [u8],
    pos: usize,
    started: bool,
    done: bool,
    pending: Option<ParseError>,
    _t: PhantomData<T>,
}

impl<'a, T: ListItem<'a>> ListIter<'a, T> {
    /// Iterates the elements of `value`.
    pub fn new(value: &'a [u8]) -> Self {
        ListIter {
            s: value,
            pos: 0,
            started: false,
            done: false,
            pending: None,
            _t: PhantomData,
        }
    }
}

impl<'a, T: ListItem<'a>> Iterator for ListIter<'a, T> {
    type Item = Result<T, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(e) = self.pending.take() {
            self.done = true;
            return Some(Err(e));
        }
        if self.done {
            return None;
        }
        let mut c = Cursor::at(self.s, self.pos);
        if !self.started {
            self.started = true;
            c.skip_lws();
            if c.is_end() {
                self.done = true;
                return if T::ALLOW_EMPTY {
                    None
                } else {
                    Some(Err(c.err(T::KIND)))
                };
            }
        }
        if c.is_end() {
            self.done = true;
            return None;
        }
        let item = match T::parse_item(self.s, &mut c.pos) {
            Ok(item) => item,
            Err(e) => {
                self.done = true;
                return Some(Err(e));
            }
        };
        c.skip_lws();
        if c.is_end() {
            self.done = true;
        } else if c.eat(b',') {
            c.skip_lws();
            if c.is_end() {
                self.pending = Some(c.err(T::KIND));
            }
        } else {
            self.pending = Some(c.err(T::KIND));
        }
        self.pos = c.pos;
        Some(Ok(item))
    }
}

/// Parses a value that must hold exactly one element.
fn parse_single<'a, T: ListItem<'a>>(s: &'a [u8]) -> Result<T, ParseError> {
    let mut c = Cursor::new(s);
    c.skip_lws();
    if c.is_end() {
        return Err(c.err(T::KIND));
    }
    let item = T::parse_item(s, &mut c.pos)?;
    c.skip_lws();
    if c.is_end() {
        Ok(item)
    } else {
        Err(c.err(T::KIND))
    }
}

#[inline]
fn is_value_char(c: u8) -> bool {
    is_token(c) || matches!(c, b':' | b'[' | b']')
}

/// Scans `*( SEMI generic-param )` (RFC 3261 §25.1) and returns its text.
fn scan_params<'a>(c: &mut Cursor<'a>) -> Result<&'a str, ParseError> {
    let start = c.pos;
    let mut end = start;
    loop {
        let save = c.pos;
        c.skip_lws();
        if !c.eat(b';') {
            c.pos = save;
            break;
        }
        c.skip_lws();
        if c.token().is_none() {
            return Err(c.err(ErrorKind::BadParam));
        }
        let after_name = c.pos;
        c.skip_lws();
        if c.eat(b'=') {
            c.skip_lws();
            if c.peek() == Some(b'"') {
                c.quoted()?;
            } else if c.take_while(is_value_char).is_empty() {
                return Err(c.err(ErrorKind::BadParam));
            }
        } else {
            c.pos = after_name;
        }
        end = c.pos;
    }
    let span = c.s.get(start..end).unwrap_or(&[]);
    std::str::from_utf8(span)
        .map_err(|e| ParseError::new(ErrorKind::BadParam, start + e.valid_up_to()))
}

/// One header parameter (`;name=value`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Param<'a> {
    /// Name as written.
    pub name: &'a str,
    /// Value as written, without surrounding quotes; `None` for a flag.
    pub value: Option<&'a str>,
    /// Whether the value was a quoted-string.
    pub quoted: bool,
}

impl<'a> Param<'a> {
    /// The value with quoted-pair escapes removed.
    pub fn value_unescaped(&self) -> Option<Cow<'a, str>> {
        let v = self.value?;
        if !self.quoted {
            return Some(Cow::Borrowed(v));
        }
        Some(match unescape_quoted(v.as_bytes()) {
            Cow::Borrowed(_) => Cow::Borrowed(v),
            Cow::Owned(b) => Cow::Owned(String::from_utf8_lossy(&b).into_owned()),
        })
    }
}

/// Iterator over header parameters.
#[derive(Clone, Debug)]
pub struct Params<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Params<'a> {
    pub(crate) fn new(s: &'a str) -> Self {
        Params { s, pos: 0 }
    }
}

impl<'a> Iterator for Params<'a> {
    type Item = Param<'a>;
    fn next(&mut self) -> Option<Param<'a>> {
        // Slices the validated &str by position: no UTF-8 re-checks.
        let b = self.s.as_bytes();
        let mut c = Cursor::at(b, self.pos);
        c.skip_lws();
        if !c.eat(b';') {
            return None;
        }
        c.skip_lws();
        let ns = c.pos;
        if c.take_while(is_token).is_empty() {
            return None;
        }
        let name = self.s.get(ns..c.pos)?;
        let after_name = c.pos;
        c.skip_lws();
        let mut quoted = false;
        let value = if c.eat(b'=') {
            c.skip_lws();
            let vs = c.pos;
            if c.peek() == Some(b'"') {
                quoted = true;
                let inner = c.quoted().ok()?;
                Some(self.s.get(vs + 1..vs + 1 + inner.len())?)
            } else {
                c.take_while(is_value_char);
                Some(self.s.get(vs..c.pos)?)
            }
        } else {
            c.pos = after_name;
            None
        };
        self.pos = c.pos;
        Some(Param {
            name,
            value,
            quoted,
        })
    }
}

fn find_param<'a>(params: &'a str, name: &str) -> Option<Param<'a>> {
    Params::new(params).find(|p| p.name.eq_ignore_ascii_case(name))
}

/// A name-addr or addr-spec (From, To, Contact, Route, Record-Route, Path...).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NameAddr<'a> {
    display: Option<&'a [u8]>,
    quoted: bool,
    uri: Uri<'a>,
    bracketed: bool,
    params: &'a str,
}

impl<'a> NameAddr<'a> {
    /// Parses a value holding exactly one address (From, To).
    pub fn parse(value: &'a [u8]) -> Result<Self, ParseError> {
        parse_single(value)
    }

    /// Iterates a comma-separated list of addresses (Contact, Route...).
    pub fn parse_list(value: &'a [u8]) -> ListIter<'a, NameAddr<'a>> {
        ListIter::new(value)
    }

    /// The display name as written: inside the quotes with escapes kept, or
    /// the unquoted token sequence.
    pub fn display_name(&self) -> Option<&'a [u8]> {
        self.display
    }

    /// Whether the display name was a quoted-string.
    pub fn display_name_quoted(&self) -> bool {
        self.quoted
    }

    /// The display name with quoted-pair escapes removed (may hold any byte).
    pub fn display_name_unescaped(&self) -> Option<Cow<'a, [u8]>> {
        let d = self.display?;
        Some(if self.quoted {
            unescape_quoted(d)
        } else {
            Cow::Borrowed(d)
        })
    }

    /// The unescaped display name as text (invalid UTF-8 replaced).
    pub fn display_name_str(&self) -> Option<Cow<'a, str>> {
        Some(match self.display_name_unescaped()? {
            Cow::Borrowed(b) => String::from_utf8_lossy(b),
            Cow::Owned(v) => Cow::Owned(String::from_utf8_lossy(&v).into_owned()),
        })
    }

    /// The URI.
    pub fn uri(&self) -> &Uri<'a> {
        &self.uri
    }

    /// Whether the URI was enclosed in `<>` (name-addr form).
    pub fn is_bracketed(&self) -> bool {
        self.bracketed
    }

    /// The header parameters as written (starting at the first `;`).
    pub fn params_str(&self) -> &'a str {
        self.params
    }

    /// Header parameters (not URI parameters), in order.
    pub fn params(&self) -> Params<'a> {
        Params::new(self.params)
    }

    /// First header parameter with this name (case-insensitive).
    pub fn param(&self, name: &str) -> Option<Param<'a>> {
        find_param(self.params, name)
    }

    /// The `tag` parameter.
    pub fn tag(&self) -> Option<&'a str> {
        self.param("tag").and_then(|p| p.value)
    }
}

impl<'a> ListItem<'a> for NameAddr<'a> {
    const KIND: ErrorKind = ErrorKind::BadNameAddr;
    const ALLOW_EMPTY: bool = false;

    fn parse_item(s: &'a [u8], pos: &mut usize) -> Result<Self, ParseError> {
        let mut c = Cursor::at(s, *pos);
        let start = c.pos;
        let mut display = None;
        let mut quoted = false;
        match c.peek() {
            Some(b'"') => {
                display = Some(c.quoted()?);
                quoted = true;
                c.skip_lws();
                if c.peek() != Some(b'<') {
                    return Err(c.err(ErrorKind::BadNameAddr));
                }
            }
            Some(b'<') => {}
            _ => {
                // *(token LWS) followed by '<' is a display name; anything else
                // is an addr-spec.
                let mut probe = Cursor::at(s, start);
                let mut end = start;
                while !probe.take_while(is_token).is_empty() {
                    end = probe.pos;
                    probe.skip_lws();
                }
                if end > start && probe.peek() == Some(b'<') {
                    display = s.get(start..end);
                    c.pos = probe.pos;
                }
            }
        }
        let (uri, bracketed) = if c.eat(b'<') {
            let open = c.pos;
            let rest = s.get(open..).unwrap_or(&[]);
            let len = memchr::memchr(b'>', rest)
                .ok_or_else(|| ParseError::new(ErrorKind::BadNameAddr, open))?;
            let ub = rest.get(..len).unwrap_or(&[]);
            if ub.first().is_some_and(|&b| is_lws(b)) || ub.last().is_some_and(|&b| is_lws(b)) {
                return Err(ParseError::new(ErrorKind::BadNameAddr, open));
            }
            let uri = Uri::parse(ub).map_err(|e| e.shifted(open))?;
            c.pos = open + len + 1;
            (uri, true)
        } else {
            let st = c.pos;
            let ub = c.take_while(|b| !is_lws(b) && b != b';' && b != b',');
            if ub.is_empty() {
                return Err(ParseError::new(ErrorKind::BadNameAddr, st));
            }
            // A URI holding '?' (or ',' ';') must be in name-addr form (§20).
            if let Some(p) = ub
                .iter()
                .position(|&b| matches!(b, b'?' | b'<' | b'>' | b'"'))
            {
                return Err(ParseError::new(ErrorKind::BadNameAddr, st + p));
            }
            let uri = Uri::parse(ub).map_err(|e| ParseError {
                kind: ErrorKind::BadNameAddr,
                ..e.shifted(st)
            })?;
            (uri, false)
        };
        let params = scan_params(&mut c)?;
        *pos = c.pos;
        Ok(NameAddr {
            display,
            quoted,
            uri,
            bracketed,
            params,
        })
    }
}

/// A Contact value: an address plus the registration parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Contact<'a>(pub NameAddr<'a>);

impl<'a> Deref for Contact<'a> {
    type Target = NameAddr<'a>;
    fn deref(&self) -> &NameAddr<'a> {
        &self.0
    }
}

fn param_u32(p: Option<Param<'_>>) -> Result<Option<u32>, ParseError> {
    match p.and_then(|p| p.value) {
        None => Ok(None),
        Some(v) => scan::parse_u32_checked(v.as_bytes())
            .map(Some)
            .map_err(|k| ParseError::new(k, 0)),
    }
}

fn unangle(v: &str) -> &str {
    v.strip_prefix('<')
        .and_then(|v| v.strip_suffix('>'))
        .unwrap_or(v)
}

impl<'a> Contact<'a> {
    /// `expires` parameter in seconds.
    pub fn expires(&self) -> Result<Option<u32>, ParseError> {
        param_u32(self.param("expires"))
    }

    /// `q` parameter in thousandths (0..=1000).
    pub fn q(&self) -> Result<Option<u16>, ParseError> {
        match self.param("q").and_then(|p| p.value) {
            None => Ok(None),
            Some(v) => parse_qvalue(v.as_bytes())
                .map(Some)
                .ok_or(ParseError::new(ErrorKind::BadParam, 0)),
        }
    }

    /// `+sip.instance` (RFC 5626), without quotes and angle brackets.
    pub fn sip_instance(&self) -> Option<&'a str> {
        self.param("+sip.instance")
            .and_then(|p| p.value)
            .map(unangle)
    }

    /// `reg-id` (RFC 5626).
    pub fn reg_id(&self) -> Result<Option<u32>, ParseError> {
        param_u32(self.param("reg-id"))
    }

    /// `pub-gruu` (RFC 5627), without quotes.
    pub fn pub_gruu(&self) -> Option<&'a str> {
        self.param("pub-gruu").and_then(|p| p.value)
    }

    /// `temp-gruu` (RFC 5627), without quotes.
    pub fn temp_gruu(&self) -> Option<&'a str> {
        self.param("temp-gruu").and_then(|p| p.value)
    }
}

impl<'a> ListItem<'a> for Contact<'a> {
    const KIND: ErrorKind = ErrorKind::BadNameAddr;
    const ALLOW_EMPTY: bool = false;
    fn parse_item(s: &'a [u8], pos: &mut usize) -> Result<Self, ParseError> {
        NameAddr::parse_item(s, pos).map(Contact)
    }
}

/// qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ), in thousandths.
pub fn parse_qvalue(v: &[u8]) -> Option<u16> {
    let (int, frac) = match v.iter().position(|&c| c == b'.') {
        Some(p) => (v.get(..p)?, v.get(p + 1..)?),
        None => (v, &[][..]),
    };
    if frac.len() > 3 || !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut thousandths: u16 = 0;
    for i in 0..3 {
        thousandths = thousandths * 10 + frac.get(i).map_or(0, |d| u16::from(d - b'0'));
    }
    match int {
        b"0" => Some(thousandths),
        b"1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// `rport` (RFC 3581) as found in a Via.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rport {
    /// Present without a value: the client asks for it to be filled in.
    Flag,
    /// Filled in with the source port.
    Port(u16),
}

/// One Via value (RFC 3261 §20.42).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Via<'a> {
    protocol: &'a str,
    version: &'a str,
    transport: &'a str,
    host: Host<'a>,
    host_str: &'a str,
    port: Option<u16>,
    params: &'a str,
    branch: Option<&'a str>,
}

/// The RFC 3261 branch prefix.
pub const BRANCH_MAGIC: &str = "z9hG4bK";

impl<'a> Via<'a> {
    /// Parses a value holding exactly one Via.
    pub fn parse(value: &'a [u8]) -> Result<Self, ParseError> {
        parse_single(value)
    }

    /// Iterates every Via in a comma-separated value.
    pub fn parse_list(value: &'a [u8]) -> ListIter<'a, Via<'a>> {
        ListIter::new(value)
    }

    /// Protocol name, normally "SIP".
    pub fn protocol(&self) -> &'a str {
        self.protocol
    }

    /// Protocol version, normally "2.0".
    pub fn version(&self) -> &'a str {
        self.version
    }

    /// Transport as written (UDP, TCP, TLS, SCTP, WS, WSS or an extension).
    pub fn transport(&self) -> &'a str {
        self.transport
    }

    /// sent-by host.
    pub fn host(&self) -> Host<'a> {
        self.host
    }

    /// sent-by host as written.
    pub fn host_str(&self) -> &'a str {
        self.host_str
    }

    /// sent-by port.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// Parameters as written.
    pub fn params_str(&self) -> &'a str {
        self.params
    }

    /// Parameters in order.
    pub fn params(&self) -> Params<'a> {
        Params::new(self.params)
    }

    /// First parameter with this name (case-insensitive).
    pub fn param(&self, name: &str) -> Option<Param<'a>> {
        find_param(self.params, name)
    }

    /// `branch` parameter.
    pub fn branch(&self) -> Option<&'a str> {
        self.branch
    }

    /// True when the branch starts with the RFC 3261 magic cookie and has
    /// something after it (RFC 4475 §3.2.1 shows a bare cookie).
    pub fn has_rfc3261_branch(&self) -> bool {
        self.branch().is_some_and(|b| {
            b.len() > BRANCH_MAGIC.len()
                && b.as_bytes()
                    .get(..BRANCH_MAGIC.len())
                    .is_some_and(|p| p == BRANCH_MAGIC.as_bytes())
        })
    }

    /// `received` parameter.
    pub fn received(&self) -> Option<&'a str> {
        self.param("received").and_then(|p| p.value)
    }

    /// `rport` parameter.
    pub fn rport(&self) -> Option<Rport> {
        let p = self.param("rport")?;
        Some(match p.value {
            None => Rport::Flag,
            Some(v) => Rport::Port(v.parse().ok()?),
        })
    }

    /// `maddr` parameter.
    pub fn maddr(&self) -> Option<&'a str> {
        self.param("maddr").and_then(|p| p.value)
    }

    /// `ttl` parameter.
    pub fn ttl(&self) -> Option<u8> {
        self.param("ttl").and_then(|p| p.value)?.parse().ok()
    }

    /// `alias` flag (RFC 5923).
    pub fn alias(&self) -> bool {
        self.param("alias").is_some()
    }
}

impl<'a> ListItem<'a> for Via<'a> {
    const KIND: ErrorKind = ErrorKind::BadVia;
    const ALLOW_EMPTY: bool = false;

    fn parse_item(s: &'a [u8], pos: &mut usize) -> Result<Self, ParseError> {
        let mut c = Cursor::at(s, *pos);
        let bad = |c: &Cursor<'_>| c.err(ErrorKind::BadVia);
        let protocol = c.token().ok_or_else(|| bad(&c))?;
        if !c.eat_sep(b'/') {
            return Err(bad(&c));
        }
        let version = c.token().ok_or_else(|| bad(&c))?;
        if !c.eat_sep(b'/') {
            return Err(bad(&c));
        }
        let transport = c.token().ok_or_else(|| bad(&c))?;
        if !c.skip_lws() {
            return Err(bad(&c));
        }
        let hs = c.pos;
        if c.peek() == Some(b'[') {
            let len = memchr::memchr(b']', s.get(hs..).unwrap_or(&[])).ok_or_else(|| bad(&c))?;
            c.pos = hs + len + 1;
        } else {
            c.take_while(scan::is_host);
        }
        let host_str = s.get(hs..c.pos).and_then(as_str).unwrap_or("");
        let host =
            parse_host(host_str, false).ok_or_else(|| ParseError::new(ErrorKind::BadVia, hs))?;
        let mut port = None;
        if c.eat_sep(b':') {
            let ps = c.pos;
            let digits = c.take_while(|b| b.is_ascii_digit());
            port = Some(
                scan::parse_u64(digits)
                    .and_then(|n| u16::try_from(n).ok())
                    .ok_or_else(|| ParseError::new(ErrorKind::BadVia, ps))?,
            );
        }
        let pstart = c.pos;
        let params = scan_params(&mut c).map_err(|e| ParseError {
            kind: ErrorKind::BadVia,
            ..e
        })?;
        let mut branch = None;
        for p in Params::new(params) {
            let ok = if p.name.eq_ignore_ascii_case("branch") {
                if branch.is_none() {
                    branch = p.value;
                }
                p.value.is_some_and(|v| !p.quoted && !v.is_empty())
            } else if p.name.eq_ignore_ascii_case("rport") {
                p.value.is_none_or(|v| v.parse::<u16>().is_ok())
            } else if p.name.eq_ignore_ascii_case("ttl") {
                p.value.is_some_and(|v| v.parse::<u8>().is_ok())
            } else if p.name.eq_ignore_ascii_case("received") {
                p.value.is_some_and(|v| parse_host(v, true).is_some())
            } else {
                true
            };
            if !ok {
                return Err(ParseError::new(ErrorKind::BadVia, pstart));
            }
        }
        *pos = c.pos;
        Ok(Via {
            protocol,
            version,
            transport,
            host,
            host_str,
            port,
            params,
            branch,
        })
    }
}

/// CSeq (RFC 3261 §20.16).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CSeq {
    /// Sequence number.
    pub seq: u32,
    /// Method.
    pub method: Method,
}

impl CSeq {
    /// Parses a CSeq value. Numbers above 2^32-1 are rejected (RFC 4475 §3.1.2.4).
    pub fn parse(value: &[u8]) -> Result<CSeq, ParseError> {
        let mut c = Cursor::new(value);
        c.skip_lws();
        let ds = c.pos;
        let digits = c.take_while(|b| b.is_ascii_digit());
        let seq = scan::parse_u64(digits)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| ParseError::new(ErrorKind::BadCSeq, ds))?;
        if !c.skip_lws() {
            return Err(c.err(ErrorKind::BadCSeq));
        }
        let ms = c.pos;
        let m = c.take_while(is_token);
        let method =
            Method::from_bytes(m).ok_or_else(|| ParseError::new(ErrorKind::BadCSeq, ms))?;
        c.skip_lws();
        if !c.is_end() {
            return Err(c.err(ErrorKind::BadCSeq));
        }
        Ok(CSeq { seq, method })
    }
}

/// Parses Max-Forwards (0..=255; leading zeros allowed).
pub fn parse_max_forwards(value: &[u8]) -> Result<u8, ParseError> {
    let v = scan::trim_lws(value);
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return Err(ParseError::new(
            ErrorKind::BadHeader {
                name: "Max-Forwards",
            },
            0,
        ));
    }
    scan::parse_u64(v)
        .and_then(|n| u8::try_from(n).ok())
        .ok_or(ParseError::new(ErrorKind::MaxForwardsOutOfRange, 0))
}

/// Parses a delta-seconds value (Expires, Min-Expires) as u32.
pub fn parse_delta_seconds(value: &[u8]) -> Result<u32, ParseError> {
    scan::parse_u32_checked(scan::trim_lws(value)).map_err(|k| {
        ParseError::new(
            match k {
                ErrorKind::ValueOutOfRange => k,
                _ => ErrorKind::BadHeader { name: "Expires" },
            },
            0,
        )
    })
}

/// A media type (Content-Type, or one Accept element): `type/subtype;params`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MediaType<'a> {
    mtype: &'a str,
    subtype: &'a str,
    params: &'a str,
}

/// Content-Type value.
pub type ContentType<'a> = MediaType<'a>;

impl<'a> MediaType<'a> {
    /// Parses one media type.
    pub fn parse(value: &'a [u8]) -> Result<Self, ParseError> {
        parse_single(value)
    }

    /// Type, as written.
    pub fn mtype(&self) -> &'a str {
        self.mtype
    }

    /// Subtype, as written.
    pub fn subtype(&self) -> &'a str {
        self.subtype
    }

    /// Case-insensitive comparison with `type/subtype`.
    pub fn is(&self, mtype: &str, subtype: &str) -> bool {
        self.mtype.eq_ignore_ascii_case(mtype) && self.subtype.eq_ignore_ascii_case(subtype)
    }

    /// Whether this media range (with `*` wildcards) admits `type/subtype`.
    pub fn matches(&self, mtype: &str, subtype: &str) -> bool {
        (self.mtype == "*" || self.mtype.eq_ignore_ascii_case(mtype))
            && (self.subtype == "*" || self.subtype.eq_ignore_ascii_case(subtype))
    }

    /// Parameters in order.
    pub fn params(&self) -> Params<'a> {
        Params::new(self.params)
    }

    /// First parameter with this name (e.g. `boundary`).
    pub fn param(&self, name: &str) -> Option<Param<'a>> {
        find_param(self.params, name)
    }
}

impl<'a> ListItem<'a> for MediaType<'a> {
    const KIND: ErrorKind = ErrorKind::BadValue;
    const ALLOW_EMPTY: bool = true;
    fn parse_item(s: &'a [u8], pos: &mut usize) -> Result<Self, ParseError> {
        let mut c = Cursor::at(s, *pos);
        let mtype = c.token().ok_or_else(|| c.err(ErrorKind::BadValue))?;
        if !c.eat_sep(b'/') {
            return Err(c.err(ErrorKind::BadValue));
        }
        let subtype = c.token().ok_or_else(|| c.err(ErrorKind::BadValue))?;
        let params = scan_params(&mut c)?;
        *pos = c.pos;
        Ok(MediaType {
            mtype,
            subtype,
            params,
        })
    }
}

/// One token of a token list (Supported, Require, Proxy-Require,
/// Unsupported, Allow...).
impl<'a> ListItem<'a> for &'a str {
    const KIND: ErrorKind = ErrorKind::BadValue;
    const ALLOW_EMPTY: bool = true;
    fn parse_item(s: &'a [u8], pos: &mut usize) -> Result<Self, ParseError> {
        let mut c = Cursor::at(s, *pos);
        let t = c.token().ok_or_else(|| c.err(ErrorKind::BadValue))?;
        *pos = c.pos;
        Ok(t)
    }
}

/// Iterates the option tags (tokens) of a value.
pub fn parse_tokens(value: &[u8]) -> ListIter<'_, &str> {
    ListIter::new(value)
}

/// Splits a header value at commas that are outside quoted strings and
/// `<...>`; yields each element trimmed, skipping empty ones.
#[derive(Clone, Debug)]
pub struct SplitValues<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> SplitValues<'a> {
    /// Splits `value`.
    pub fn new(value: &'a [u8]) -> Self {
        SplitValues { s: value, pos: 0 }
    }
}

impl<'a> Iterator for SplitValues<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        while self.pos < self.s.len() {
            let start = self.pos;
            let mut i = start;
            let mut in_quote = false;
            let mut in_angle = false;
            while let Some(&c) = self.s.get(i) {
                if in_quote {
                    match c {
                        b'\\' => i += 1,
                        b'"' => in_quote = false,
                        _ => {}
                    }
                } else {
                    match c {
                        b'"' => in_quote = true,
                        b'<' => in_angle = true,
                        b'>' => in_angle = false,
                        b',' if !in_angle => break,
                        _ => {}
                    }
                }
                i += 1;
            }
            let end = i.min(self.s.len());
            self.pos = end.saturating_add(1);
            let item = scan::trim_lws(self.s.get(start..end).unwrap_or(&[]));
            if !item.is_empty() {
                return Some(item);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uri::Scheme;
    use std::net::Ipv4Addr;

    #[test]
    fn name_addr_forms() {
        let n = NameAddr::parse(
            br#""J Rosenberg \\\""       <sip:jdrosen@example.com>  ;  tag = 98asjd8"#,
        )
        .unwrap();
        assert_eq!(n.display_name(), Some(&br#"J Rosenberg \\\""#[..]));
        assert_eq!(
            n.display_name_unescaped().as_deref(),
            Some(&br#"J Rosenberg \""#[..])
        );
        assert_eq!(n.uri().user(), Some("jdrosen"));
        assert_eq!(n.tag(), Some("98asjd8"));
        assert!(n.is_bracketed());

        let n = NameAddr::parse(b"caller<sip:caller@example.com>;tag=323").unwrap();
        assert_eq!(n.display_name(), Some(&b"caller"[..]));
        assert!(!n.display_name_quoted());

        let n =
            NameAddr::parse(b"sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n").unwrap();
        assert_eq!(n.display_name(), None);
        assert!(!n.is_bracketed());
        assert_eq!(n.tag(), Some("1918181833n"));
        assert!(!n.uri().has_param("tag"));

        let n = NameAddr::parse(b"token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;tag=x")
            .unwrap();
        assert_eq!(
            n.display_name(),
            Some(&b"token1~` token2'+_ token3*%!.-"[..])
        );

        let n = NameAddr::parse(b"<sip:+1@gw;unknownparam>").unwrap();
        assert!(n.uri().has_param("unknownparam"));
        assert!(n.param("unknownparam").is_none());
        let n = NameAddr::parse(b"sip:+1@gw;unknownparam").unwrap();
        assert!(!n.uri().has_param("unknownparam"));
        assert_eq!(n.param("unknownparam").map(|p| p.value), Some(None));

        let n = NameAddr::parse(b"isbn:2983792873").unwrap();
        assert_eq!(n.uri().scheme(), Scheme::Other("isbn"));
    }

    #[test]
    fn name_addr_errors() {
        let e = |v: &[u8]| NameAddr::parse(v).unwrap_err().kind;
        assert_eq!(
            e(b"\"Mr. J. User <sip:j.user@example.com>"),
            ErrorKind::UnbalancedQuotes
        );
        assert_eq!(
            e(b"Bell, Alexander <sip:a.g.bell@example.com>;tag=43"),
            ErrorKind::BadNameAddr
        );
        assert_eq!(
            e(b"\"Watson, Thomas\" < sip:t.watson@example.org >"),
            ErrorKind::BadNameAddr
        );
        assert_eq!(
            e(b"sip:user@example.com?Route=%3Csip:sip.example.com%3E"),
            ErrorKind::BadNameAddr
        );
        assert_eq!(e(b"\"Joe\" <sip:joe@example.org>;;;;"), ErrorKind::BadParam);
        assert_eq!(e(b"<sip:a@b>, <sip:c@d>"), ErrorKind::BadNameAddr);
        assert_eq!(e(b"<sip:a@b"), ErrorKind::BadNameAddr);
        assert_eq!(e(b""), ErrorKind::BadNameAddr);
        assert_eq!(e(b"<sip:a@b>;p=\"x"), ErrorKind::UnbalancedQuotes);
        assert_eq!(e(b"<sip:a b@c>"), ErrorKind::BadUri);
    }

    #[test]
    fn name_addr_lists_respect_quotes_and_brackets() {
        let v = br#""a, b" <sip:x,y@h;p=1>, <sip:y@h>;q=0.5 ,sip:z@h"#;
        let items: Vec<_> = NameAddr::parse_list(v).collect::<Result<_, _>>().unwrap();
        assert_eq!(items.len(), 3);
        assert_eq!(items[0].display_name(), Some(&b"a, b"[..]));
        assert_eq!(items[1].param("q").unwrap().value, Some("0.5"));
        assert_eq!(items[2].uri().user(), Some("z"));
        let r: Vec<_> = NameAddr::parse_list(b"<sip:a@b>,").collect();
        assert!(r[0].is_ok() && r[1].is_err() && r.len() == 2);
        let r: Vec<_> = NameAddr::parse_list(b"<sip:a@b> junk").collect();
        assert!(r[0].is_ok() && r[1].is_err());
    }

    #[test]
    fn contact_params() {
        let c: Vec<Contact> = ListIter::new(
            br#"<sip:a@192.0.2.1;ob>;expires=3600;q=0.7;+sip.instance="<urn:uuid:00000000-0000-1000-8000-000A95A0E128>";reg-id=1;pub-gruu="sip:a@ex;gr=urn:uuid:1""#,
        )
        .collect::<Result<_, _>>()
        .unwrap();
        let c = &c[0];
        assert!(c.uri().ob());
        assert_eq!(c.expires(), Ok(Some(3600)));
        assert_eq!(c.q(), Ok(Some(700)));
        assert_eq!(
            c.sip_instance(),
            Some("urn:uuid:00000000-0000-1000-8000-000A95A0E128")
        );
        assert_eq!(c.reg_id(), Ok(Some(1)));
        assert_eq!(c.pub_gruu(), Some("sip:a@ex;gr=urn:uuid:1"));
        assert_eq!(c.temp_gruu(), None);
        let c = Contact(NameAddr::parse(b"<sip:a@b>;expires=280297596632815;q=2").unwrap());
        assert_eq!(c.expires().unwrap_err().kind, ErrorKind::ValueOutOfRange);
        assert!(c.q().is_err());
    }

    #[test]
    fn qvalues() {
        assert_eq!(parse_qvalue(b"0.33"), Some(330));
        assert_eq!(parse_qvalue(b"1"), Some(1000));
        assert_eq!(parse_qvalue(b"1.000"), Some(1000));
        assert_eq!(parse_qvalue(b"0"), Some(0));
        assert_eq!(parse_qvalue(b"0.001"), Some(1));
        assert_eq!(parse_qvalue(b"1.5"), None);
        assert_eq!(parse_qvalue(b"0.1234"), None);
        assert_eq!(parse_qvalue(b"2"), None);
    }

    #[test]
    fn via_values() {
        let v = Via::parse(
            b"SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776;received=192.0.2.9;rport=5062;alias",
        )
        .unwrap();
        assert_eq!(v.transport(), "UDP");
        assert_eq!(v.host(), Host::Ipv4(Ipv4Addr::new(192, 0, 2, 1)));
        assert_eq!(v.port(), Some(5060));
        assert_eq!(v.branch(), Some("z9hG4bK776"));
        assert!(v.has_rfc3261_branch());
        assert_eq!(v.received(), Some("192.0.2.9"));
        assert_eq!(v.rport(), Some(Rport::Port(5062)));
        assert!(v.alias());
        let v = Via::parse(b"SIP/2.0/WSS df7jal23ls0d.invalid;rport;branch=z9hG4bKx").unwrap();
        assert_eq!(v.transport(), "WSS");
        assert_eq!(v.rport(), Some(Rport::Flag));
        let v = Via::parse(b"SIP/2.0/TCP [2001:db8::1]:5060;received=2001:db8::2;branch=z9hG4bKx")
            .unwrap();
        assert_eq!(v.host_str(), "[2001:db8::1]");
        assert_eq!(v.received(), Some("2001:db8::2"));
        let v = Via::parse(b"SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw").unwrap();
        assert_eq!(
            (v.protocol(), v.version(), v.transport()),
            ("SIP", "2.0", "UDP")
        );
        assert!(!v.has_rfc3261_branch());

        let list: Vec<_> = Via::parse_list(
            b"SIP  / 2.0  / TCP     spindle.example.com   ;\r\n  branch  =   z9hG4bK9ikj8  ,\r\n SIP  /    2.0   / UDP  192.168.255.111   ; branch=\r\n z9hG4bK30239",
        )
        .collect::<Result<_, _>>()
        .unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].branch(), Some("z9hG4bK9ikj8"));
        assert_eq!(list[1].branch(), Some("z9hG4bK30239"));

        for bad in [
            &b"SIP/2.0/UDP 192.0.2.15;;,;,,"[..],
            b"SIP/2.0/UDP",
            b"SIP/2.0/UDPhost",
            b"SIP/2.0 host",
            b"SIP/2.0/UDP host:99999",
            b"SIP/2.0/UDP host;branch",
            b"SIP/2.0/UDP host;rport=x",
            b"SIP/2.0/UDP host;received=[::1",
            b"SIP/2.0/UDP host, ",
        ] {
            let r: Result<Vec<_>, _> = Via::parse_list(bad).collect();
            assert_eq!(
                r.unwrap_err().kind,
                ErrorKind::BadVia,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn cseq_and_numbers() {
        let c = CSeq::parse(b"0009\r\n  INVITE").unwrap();
        assert_eq!(c.seq, 9);
        assert_eq!(c.method, Method::Invite);
        assert_eq!(
            CSeq::parse(b"36893488147419103232 REGISTER")
                .unwrap_err()
                .kind,
            ErrorKind::BadCSeq
        );
        assert_eq!(
            CSeq::parse(b"1INVITE").unwrap_err().kind,
            ErrorKind::BadCSeq
        );
        assert_eq!(
            CSeq::parse(b"1 INVITE x").unwrap_err().kind,
            ErrorKind::BadCSeq
        );
        assert_eq!(
            CSeq::parse(b"4294967295 FOO").unwrap().method,
            Method::Other("FOO".into())
        );
        assert_eq!(parse_max_forwards(b" 0068 "), Ok(68));
        assert_eq!(
            parse_max_forwards(b"300").unwrap_err().kind,
            ErrorKind::MaxForwardsOutOfRange
        );
        assert_eq!(
            parse_max_forwards(b"99999999999999999999999")
                .unwrap_err()
                .kind,
            ErrorKind::MaxForwardsOutOfRange
        );
        assert!(matches!(
            parse_max_forwards(b"-1").unwrap_err().kind,
            ErrorKind::BadHeader { .. }
        ));
        assert_eq!(parse_delta_seconds(b"3600"), Ok(3600));
        assert_eq!(
            parse_delta_seconds(b"10000000000000000000000")
                .unwrap_err()
                .kind,
            ErrorKind::ValueOutOfRange
        );
    }

    #[test]
    fn media_types_and_tokens() {
        let ct = MediaType::parse(b"multipart/mixed;boundary=7a9cbec02ceef655").unwrap();
        assert!(ct.is("Multipart", "MIXED"));
        assert_eq!(
            ct.param("boundary").unwrap().value,
            Some("7a9cbec02ceef655")
        );
        let ct = MediaType::parse(b"text/plain; charset=\"utf-8\"").unwrap();
        assert_eq!(
            ct.param("charset").unwrap().value_unescaped().as_deref(),
            Some("utf-8")
        );
        assert!(MediaType::parse(b"application").is_err());
        let accept: Vec<_> = ListIter::<MediaType>::new(b"application/sdp, */*;q=0.1")
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(accept[1].matches("text", "html"));
        let tags: Vec<_> = parse_tokens(b"nothingSupportsThis, nothingSupportsThisEither")
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(tags, ["nothingSupportsThis", "nothingSupportsThisEither"]);
        assert_eq!(parse_tokens(b"").count(), 0);
        assert!(parse_tokens(b"a,,b").any(|r| r.is_err()));
    }

    #[test]
    fn comma_splitting() {
        let v: Vec<_> = SplitValues::new(br#"a, "b, \"c" <sip:d@e;x=1,2>;p, , f"#).collect();
        assert_eq!(v, [&b"a"[..], br#""b, \"c" <sip:d@e;x=1,2>;p"#, b"f"]);
        assert_eq!(SplitValues::new(b";;,,;;,;").count(), 3);
        assert_eq!(SplitValues::new(b"").count(), 0);
        assert_eq!(SplitValues::new(b"\"unterminated, x").count(), 1);
    }
}
