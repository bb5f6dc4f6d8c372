//! URIs (RFC 3261 §19.1, RFC 3966 for tel:). [`Uri`] borrows from the
//! message; [`UriBuf`] is the owned form for building.

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::error::{ErrorKind, ParseError};
use crate::scan::{self, check_escaped, pct_decode, pct_eq_ignore_case, split_at_byte};

/// URI scheme. `sip`, `sips` and `tel` are parsed into their parts; any other
/// scheme is kept opaque.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme<'a> {
    /// `sip:`
    Sip,
    /// `sips:`
    Sips,
    /// `tel:` (RFC 3966)
    Tel,
    /// Any other scheme, as written.
    Other(&'a str),
}

impl<'a> Scheme<'a> {
    /// The scheme name (lower case for the known ones).
    pub fn as_str(&self) -> &'a str {
        match self {
            Scheme::Sip => "sip",
            Scheme::Sips => "sips",
            Scheme::Tel => "tel",
            Scheme::Other(s) => s,
        }
    }
}

/// The host part of a URI or Via sent-by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Host<'a> {
    /// A domain name, as written.
    Domain(&'a str),
    /// A dotted-quad IPv4 address.
    Ipv4(Ipv4Addr),
    /// An IPv6 reference, written `[...]`.
    Ipv6(Ipv6Addr),
}

impl fmt::Display for Host<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Domain(d) => f.write_str(d),
            Host::Ipv4(a) => write!(f, "{a}"),
            Host::Ipv6(a) => write!(f, "[{a}]"),
        }
    }
}

/// Parses a host: `[v6]`, dotted-quad IPv4, or a domain name. When
/// `bare_v6` is set an unbracketed IPv6 address is accepted too (as in the
/// Via `received` parameter).
pub(crate) fn parse_host(s: &str, bare_v6: bool) -> Option<Host<'_>> {
    let b = s.as_bytes();
    match b.first()? {
        b'[' => {
            let inner = s.strip_prefix('[')?.strip_suffix(']')?;
            inner.parse().ok().map(Host::Ipv6)
        }
        _ if bare_v6 && b.contains(&b':') => s.parse().ok().map(Host::Ipv6),
        _ => {
            let mut numeric = true;
            for &c in b {
                if !scan::is_host(c) {
                    return None;
                }
                numeric &= c.is_ascii_digit() || c == b'.';
            }
            if numeric {
                s.parse().ok().map(Host::Ipv4)
            } else if b.starts_with(b".") || b.starts_with(b"-") {
                None
            } else {
                Some(Host::Domain(s))
            }
        }
    }
}

/// A parsed URI borrowing from its text. Displays as written.
///
/// Parts are kept as 16-bit offsets into the text so that the value stays
/// small to copy; URIs of 64 KiB or more are rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Uri<'a> {
    raw: &'a str,
    user: Span,
    password: Span,
    host_span: Span,
    params: Span,
    headers: Span,
    port: Option<u16>,
    host: HostRepr,
    scheme: SchemeKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Span {
    start: u16,
    end: u16,
}

impl Span {
    const NONE: Span = Span {
        start: u16::MAX,
        end: u16::MAX,
    };

    /// Where `sub` (a slice of `raw`) lies in `raw`.
    fn of(raw: &str, sub: &str) -> Span {
        let start = (sub.as_ptr() as usize).wrapping_sub(raw.as_ptr() as usize);
        match (
            u16::try_from(start),
            start.checked_add(sub.len()).map(u16::try_from),
        ) {
            (Ok(start), Some(Ok(end))) if end < u16::MAX => Span { start, end },
            _ => Span::NONE,
        }
    }

    fn opt(raw: &str, sub: Option<&str>) -> Span {
        sub.map_or(Span::NONE, |s| Span::of(raw, s))
    }

    fn get(self, raw: &str) -> Option<&str> {
        if self == Span::NONE {
            return None;
        }
        raw.get(usize::from(self.start)..usize::from(self.end))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HostRepr {
    None,
    Domain,
    V4(Ipv4Addr),
    V6(Ipv6Addr),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SchemeKind {
    Sip,
    Sips,
    Tel,
    Other,
}

/// The parts while parsing, as slices; compacted into a [`Uri`] at the end.
struct Parts<'a> {
    raw: &'a str,
    user: Option<&'a str>,
    password: Option<&'a str>,
    host: Option<Host<'a>>,
    host_str: &'a str,
    port: Option<u16>,
    params: &'a str,
    headers: Option<&'a str>,
}

fn bad(at: usize) -> ParseError {
    ParseError::new(ErrorKind::BadUri, at)
}

impl<'a> Uri<'a> {
    /// Parses an absolute URI. Error offsets are relative to `input`.
    pub fn parse(input: &'a [u8]) -> Result<Uri<'a>, ParseError> {
        // Non-ASCII text is rejected below by the per-component checks.
        let raw = std::str::from_utf8(input).map_err(|e| bad(e.valid_up_to()))?;
        Self::parse_str(raw)
    }

    /// Parses an absolute URI from a `str`.
    pub fn parse_str(raw: &'a str) -> Result<Uri<'a>, ParseError> {
        let b = raw.as_bytes();
        let colon = memchr::memchr(b':', b).ok_or_else(|| bad(0))?;
        let scheme_str = &raw[..colon];
        let sb = scheme_str.as_bytes();
        if !sb.first().is_some_and(u8::is_ascii_alphabetic)
            || !sb
                .iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
        {
            return Err(bad(0));
        }
        let scheme = if scheme_str.eq_ignore_ascii_case("sip") {
            Scheme::Sip
        } else if scheme_str.eq_ignore_ascii_case("sips") {
            Scheme::Sips
        } else if scheme_str.eq_ignore_ascii_case("tel") {
            Scheme::Tel
        } else {
            Scheme::Other(scheme_str)
        };
        if raw.len() >= usize::from(u16::MAX) {
            return Err(bad(usize::from(u16::MAX)));
        }
        let rest_at = colon + 1;
        let opaque = &raw[rest_at..];
        let mut uri = Parts {
            raw,
            user: None,
            password: None,
            host: None,
            host_str: &raw[raw.len()..],
            port: None,
            params: &raw[raw.len()..],
            headers: None,
        };
        let kind = match scheme {
            Scheme::Sip => SchemeKind::Sip,
            Scheme::Sips => SchemeKind::Sips,
            Scheme::Tel => SchemeKind::Tel,
            Scheme::Other(_) => SchemeKind::Other,
        };
        match scheme {
            Scheme::Sip | Scheme::Sips => uri.parse_sip(rest_at)?,
            Scheme::Tel => uri.parse_tel(rest_at)?,
            Scheme::Other(_) => {
                if opaque.is_empty() {
                    return Err(bad(rest_at));
                }
                if let Some(p) = opaque
                    .bytes()
                    .position(|c| !(0x21..=0x7e).contains(&c) || matches!(c, b'<' | b'>' | b'"'))
                {
                    return Err(bad(rest_at + p));
                }
            }
        }
        let host = match uri.host {
            None => HostRepr::None,
            Some(Host::Domain(_)) => HostRepr::Domain,
            Some(Host::Ipv4(a)) => HostRepr::V4(a),
            Some(Host::Ipv6(a)) => HostRepr::V6(a),
        };
        Ok(Uri {
            raw,
            user: Span::opt(raw, uri.user),
            password: Span::opt(raw, uri.password),
            host_span: Span::of(raw, uri.host_str),
            params: Span::of(raw, uri.params),
            headers: Span::opt(raw, uri.headers),
            port: uri.port,
            host,
            scheme: kind,
        })
    }
}

impl<'a> Parts<'a> {
    fn parse_sip(&mut self, at: usize) -> Result<(), ParseError> {
        let raw = self.raw;
        let s = &raw[at..];
        let b = s.as_bytes();
        // The user part may contain ';' '?' '/' but never '@'; nothing after the
        // host may contain a raw '@', so the first one ends the userinfo.
        let host_at = match memchr::memchr(b'@', b) {
            Some(p) => {
                let userinfo = &s[..p];
                let (user, password) = match split_at_byte(userinfo, b':') {
                    Some((u, p)) => (u, Some(p)),
                    None => (userinfo, None),
                };
                if user.is_empty() {
                    return Err(bad(at));
                }
                check_escaped(user.as_bytes(), scan::is_user).map_err(|e| bad(at + e))?;
                if let Some(pw) = password {
                    check_escaped(pw.as_bytes(), scan::is_password)
                        .map_err(|e| bad(at + user.len() + 1 + e))?;
                }
                self.user = Some(user);
                self.password = password;
                p + 1
            }
            None => 0,
        };
        let hs = &s[host_at..];
        let hb = hs.as_bytes();
        let host_end = if hb.first() == Some(&b'[') {
            memchr::memchr(b']', hb)
                .map(|p| p + 1)
                .ok_or_else(|| bad(at + host_at))?
        } else {
            hb.iter()
                .position(|&c| matches!(c, b':' | b';' | b'?'))
                .unwrap_or(hb.len())
        };
        let host_str = &hs[..host_end];
        self.host = Some(parse_host(host_str, false).ok_or_else(|| bad(at + host_at))?);
        self.host_str = host_str;
        let mut pos = host_end;
        if hb.get(pos) == Some(&b':') {
            let digits_end = hb[pos + 1..]
                .iter()
                .position(|&c| c == b';' || c == b'?')
                .map_or(hb.len(), |p| pos + 1 + p);
            let digits = &hb[pos + 1..digits_end];
            let port = scan::parse_u64(digits)
                .and_then(|n| u16::try_from(n).ok())
                .ok_or_else(|| bad(at + host_at + pos + 1))?;
            self.port = Some(port);
            pos = digits_end;
        }
        self.parse_params_headers(at + host_at + pos)
    }

    fn parse_tel(&mut self, at: usize) -> Result<(), ParseError> {
        let b = &self.raw.as_bytes()[at..];
        let end = b
            .iter()
            .position(|&c| c == b';' || c == b'?')
            .unwrap_or(b.len());
        let number = &self.raw[at..at + end];
        if number.is_empty() {
            return Err(bad(at));
        }
        check_escaped(number.as_bytes(), scan::is_param).map_err(|e| bad(at + e))?;
        self.user = Some(number);
        self.parse_params_headers(at + end)
    }

    /// Parses `*(;param) [?headers]` starting at `at` in `raw`.
    fn parse_params_headers(&mut self, at: usize) -> Result<(), ParseError> {
        let raw = self.raw;
        let b = raw.as_bytes();
        let mut pos = at;
        if b.get(pos) == Some(&b';') {
            let end = memchr::memchr(b'?', &b[pos..]).map_or(b.len(), |p| pos + p);
            let params = &raw[pos + 1..end];
            if params.is_empty() || params.ends_with(';') {
                return Err(bad(end));
            }
            let mut off = pos + 1;
            for UriParam { name, value } in (UriParams { rest: params }) {
                if name.is_empty() {
                    return Err(bad(off));
                }
                check_escaped(name.as_bytes(), scan::is_param).map_err(|e| bad(off + e))?;
                if let Some(v) = value {
                    if v.is_empty() {
                        return Err(bad(off + name.len() + 1));
                    }
                    check_escaped(v.as_bytes(), scan::is_param)
                        .map_err(|e| bad(off + name.len() + 1 + e))?;
                }
                off += name.len() + value.map_or(0, |v| v.len() + 1) + 1;
            }
            self.params = params;
            pos = end;
        }
        match b.get(pos) {
            None => Ok(()),
            Some(b'?') => {
                let headers = &raw[pos + 1..];
                let mut off = pos + 1;
                let mut rest = headers;
                loop {
                    let (h, next) = match split_at_byte(rest, b'&') {
                        Some((h, n)) => (h, Some(n)),
                        None => (rest, None),
                    };
                    let (name, value) = split_at_byte(h, b'=').ok_or_else(|| bad(off))?;
                    let eq = name.len();
                    if name.is_empty() {
                        return Err(bad(off));
                    }
                    check_escaped(name.as_bytes(), scan::is_hnv).map_err(|e| bad(off + e))?;
                    check_escaped(value.as_bytes(), scan::is_hnv)
                        .map_err(|e| bad(off + eq + 1 + e))?;
                    off += h.len() + 1;
                    match next {
                        Some(n) => rest = n,
                        None => break,
                    }
                }
                self.headers = Some(headers);
                Ok(())
            }
            Some(_) => Err(bad(pos)),
        }
    }
}

impl<'a> Uri<'a> {
    /// The URI as written.
    pub fn as_str(&self) -> &'a str {
        self.raw
    }

    /// The scheme.
    pub fn scheme(&self) -> Scheme<'a> {
        match self.scheme {
            SchemeKind::Sip => Scheme::Sip,
            SchemeKind::Sips => Scheme::Sips,
            SchemeKind::Tel => Scheme::Tel,
            SchemeKind::Other => {
                Scheme::Other(split_at_byte(self.raw, b':').map_or("", |(s, _)| s))
            }
        }
    }

    /// True for `sip:` and `sips:`.
    pub fn is_sip(&self) -> bool {
        matches!(self.scheme, SchemeKind::Sip | SchemeKind::Sips)
    }

    /// Everything after `scheme:`.
    pub fn opaque(&self) -> &'a str {
        split_at_byte(self.raw, b':').map_or("", |(_, o)| o)
    }

    /// The user part as written (escapes kept). For tel: the number.
    pub fn user(&self) -> Option<&'a str> {
        self.user.get(self.raw)
    }

    /// The user part with %-escapes decoded (may contain any byte, even NUL).
    pub fn user_unescaped(&self) -> Option<Cow<'a, [u8]>> {
        self.user().map(|u| pct_decode(u.as_bytes()))
    }

    /// The password as written.
    pub fn password(&self) -> Option<&'a str> {
        self.password.get(self.raw)
    }

    /// The host (`None` for schemes other than sip/sips).
    pub fn host(&self) -> Option<Host<'a>> {
        match self.host {
            HostRepr::None => None,
            HostRepr::Domain => Some(Host::Domain(self.host_str())),
            HostRepr::V4(a) => Some(Host::Ipv4(a)),
            HostRepr::V6(a) => Some(Host::Ipv6(a)),
        }
    }

    /// The host as written (`[..]` kept for IPv6); empty for other schemes.
    pub fn host_str(&self) -> &'a str {
        self.host_span.get(self.raw).unwrap_or("")
    }

    /// The explicit port.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The URI parameters, in order.
    pub fn params(&self) -> UriParams<'a> {
        UriParams {
            rest: self.params.get(self.raw).unwrap_or(""),
        }
    }

    /// First parameter whose (unescaped) name matches case-insensitively.
    pub fn param(&self, name: &str) -> Option<UriParam<'a>> {
        self.params().find(|p| p.name_is(name))
    }

    /// True when the parameter is present, with or without a value.
    pub fn has_param(&self, name: &str) -> bool {
        self.param(name).is_some()
    }

    /// Value of a parameter (as written).
    pub fn param_value(&self, name: &str) -> Option<&'a str> {
        self.param(name).and_then(|p| p.value)
    }

    /// `transport` parameter.
    pub fn transport(&self) -> Option<&'a str> {
        self.param_value("transport")
    }

    /// `lr` flag (loose routing, RFC 3261 §16.12).
    pub fn lr(&self) -> bool {
        self.has_param("lr")
    }

    /// `maddr` parameter.
    pub fn maddr(&self) -> Option<&'a str> {
        self.param_value("maddr")
    }

    /// `ob` flag (RFC 5626).
    pub fn ob(&self) -> bool {
        self.has_param("ob")
    }

    /// `gr` parameter (RFC 5627); `Some(None)` when present without value.
    pub fn gr(&self) -> Option<Option<&'a str>> {
        self.param("gr").map(|p| p.value)
    }

    /// `r2` flag (RFC 5658 double Record-Route).
    pub fn r2(&self) -> bool {
        self.param("r2")
            .is_some_and(|p| p.value.is_none_or(|v| v.eq_ignore_ascii_case("on")))
    }

    /// `user` parameter (`phone` marks a telephone-subscriber user part).
    pub fn user_param(&self) -> Option<&'a str> {
        self.param_value("user")
    }

    /// The raw `?headers` part, without the `?`.
    pub fn headers_str(&self) -> Option<&'a str> {
        self.headers.get(self.raw)
    }

    /// The embedded headers (`?a=b&c=d`), in order.
    pub fn headers(&self) -> UriHeaders<'a> {
        UriHeaders {
            rest: self.headers_str().unwrap_or(""),
        }
    }

    /// Copies into an owned [`UriBuf`].
    pub fn to_owned(&self) -> UriBuf {
        if !self.is_sip() {
            return UriBuf {
                scheme: self.scheme().as_str().to_ascii_lowercase(),
                opaque: Some(self.opaque().to_string()),
                ..UriBuf::empty()
            };
        }
        UriBuf {
            scheme: self.scheme().as_str().to_string(),
            user: self.user().map(str::to_string),
            password: self.password().map(str::to_string),
            host: self.host_str().to_string(),
            port: self.port,
            params: self
                .params()
                .map(|p| (p.name.to_string(), p.value.map(str::to_string)))
                .collect(),
            headers: self
                .headers()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            opaque: None,
        }
    }
}

impl fmt::Display for Uri<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.raw)
    }
}

/// One URI parameter as written (escapes kept).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UriParam<'a> {
    /// Name as written.
    pub name: &'a str,
    /// Value as written; `None` for a flag parameter.
    pub value: Option<&'a str>,
}

impl<'a> UriParam<'a> {
    /// Compares the unescaped name with `name`, case-insensitively.
    pub fn name_is(&self, name: &str) -> bool {
        pct_eq_ignore_case(self.name.as_bytes(), name.as_bytes())
    }

    /// Name with %-escapes decoded.
    pub fn name_unescaped(&self) -> Cow<'a, [u8]> {
        pct_decode(self.name.as_bytes())
    }

    /// Value with %-escapes decoded (once: "%2541" gives "%41").
    pub fn value_unescaped(&self) -> Option<Cow<'a, [u8]>> {
        self.value.map(|v| pct_decode(v.as_bytes()))
    }
}

/// Iterator over URI parameters.
#[derive(Clone, Debug)]
pub struct UriParams<'a> {
    rest: &'a str,
}

impl<'a> Iterator for UriParams<'a> {
    type Item = UriParam<'a>;
    fn next(&mut self) -> Option<UriParam<'a>> {
        if self.rest.is_empty() {
            return None;
        }
        let (item, rest) = split_at_byte(self.rest, b';').unwrap_or((self.rest, ""));
        self.rest = rest;
        Some(match split_at_byte(item, b'=') {
            Some((name, value)) => UriParam {
                name,
                value: Some(value),
            },
            None => UriParam {
                name: item,
                value: None,
            },
        })
    }
}

/// Iterator over URI headers as written `(name, value)`; decode with
/// [`pct_decode`].
#[derive(Clone, Debug)]
pub struct UriHeaders<'a> {
    rest: &'a str,
}

impl<'a> Iterator for UriHeaders<'a> {
    type Item = (&'a str, &'a str);
    fn next(&mut self) -> Option<(&'a str, &'a str)> {
        if self.rest.is_empty() {
            return None;
        }
        let (item, rest) = split_at_byte(self.rest, b'&').unwrap_or((self.rest, ""));
        self.rest = rest;
        Some(split_at_byte(item, b'=').unwrap_or((item, "")))
    }
}

/// An owned URI for building. `sip`/`sips` URIs are held as parts; other
/// schemes as scheme plus opaque text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UriBuf {
    scheme: String,
    user: Option<String>,
    password: Option<String>,
    host: String,
    port: Option<u16>,
    params: Vec<(String, Option<String>)>,
    headers: Vec<(String, String)>,
    opaque: Option<String>,
}

fn push_escaped(out: &mut String, s: &str, allowed: fn(u8) -> bool) {
    for &c in s.as_bytes() {
        if allowed(c) && c != b'%' {
            out.push(char::from(c));
        } else {
            let _ = write!(out, "%{c:02X}");
        }
    }
}

impl UriBuf {
    fn empty() -> Self {
        UriBuf {
            scheme: String::new(),
            user: None,
            password: None,
            host: String::new(),
            port: None,
            params: Vec::new(),
            headers: Vec::new(),
            opaque: None,
        }
    }

    fn with_host(scheme: &str, host: &str) -> Self {
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        UriBuf {
            scheme: scheme.to_string(),
            host,
            ..UriBuf::empty()
        }
    }

    /// `sip:host`. An IPv6 address gets its brackets added.
    pub fn sip(host: &str) -> Self {
        Self::with_host("sip", host)
    }

    /// `sips:host`.
    pub fn sips(host: &str) -> Self {
        Self::with_host("sips", host)
    }

    /// Parses and copies a URI.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        Uri::parse_str(s).map(|u| u.to_owned())
    }

    /// Sets the user part from its unescaped form (escaping what needs it).
    pub fn with_user(mut self, user: &str) -> Self {
        let mut u = String::with_capacity(user.len());
        push_escaped(&mut u, user, scan::is_user);
        self.user = Some(u);
        self
    }

    /// Sets the port.
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Adds or replaces a parameter (name compared case-insensitively); the
    /// value is given unescaped.
    pub fn with_param(mut self, name: &str, value: Option<&str>) -> Self {
        self.set_param(name, value);
        self
    }

    /// Adds or replaces a parameter in place.
    pub fn set_param(&mut self, name: &str, value: Option<&str>) {
        let mut n = String::with_capacity(name.len());
        push_escaped(&mut n, name, scan::is_param);
        let v = value.map(|v| {
            let mut s = String::with_capacity(v.len());
            push_escaped(&mut s, v, scan::is_param);
            s
        });
        match self
            .params
            .iter_mut()
            .find(|(pn, _)| pct_eq_ignore_case(pn.as_bytes(), name.as_bytes()))
        {
            Some(slot) => slot.1 = v,
            None => self.params.push((n, v)),
        }
    }

    /// Removes a parameter; returns whether it was present.
    pub fn remove_param(&mut self, name: &str) -> bool {
        let before = self.params.len();
        self.params
            .retain(|(pn, _)| !pct_eq_ignore_case(pn.as_bytes(), name.as_bytes()));
        self.params.len() != before
    }

    /// Adds a URI header (`?name=value`), value given unescaped.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        let mut n = String::new();
        push_escaped(&mut n, name, scan::is_hnv);
        let mut v = String::new();
        push_escaped(&mut v, value, scan::is_hnv);
        self.headers.push((n, v));
        self
    }

    /// Drops all URI headers.
    pub fn clear_headers(&mut self) {
        self.headers.clear();
    }

    /// The host as written.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The user part as written (escaped).
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// Value of a parameter as written; `Some(None)` for a flag.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params
            .iter()
            .find(|(pn, _)| pct_eq_ignore_case(pn.as_bytes(), name.as_bytes()))
            .map(|(_, v)| v.as_deref())
    }
}

impl fmt::Display for UriBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.scheme)?;
        f.write_char(':')?;
        if let Some(o) = &self.opaque {
            return f.write_str(o);
        }
        if let Some(u) = &self.user {
            f.write_str(u)?;
            if let Some(p) = &self.password {
                write!(f, ":{p}")?;
            }
            f.write_char('@')?;
        }
        f.write_str(&self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        for (n, v) in &self.params {
            write!(f, ";{n}")?;
            if let Some(v) = v {
                write!(f, "={v}")?;
            }
        }
        for (i, (n, v)) in self.headers.iter().enumerate() {
            f.write_char(if i == 0 { '?' } else { '&' })?;
            write!(f, "{n}={v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Uri<'_> {
        Uri::parse(s.as_bytes()).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn sip_uri_parts() {
        let u = p("sip:alice:secret@example.com:5070;transport=tcp;lr?subject=hi&x=y");
        assert_eq!(u.scheme(), Scheme::Sip);
        assert_eq!(u.user(), Some("alice"));
        assert_eq!(u.password(), Some("secret"));
        assert_eq!(u.host(), Some(Host::Domain("example.com")));
        assert_eq!(u.port(), Some(5070));
        assert_eq!(u.transport(), Some("tcp"));
        assert!(u.lr());
        assert!(u.has_param("LR"));
        assert!(!u.r2());
        assert!(p("sip:p1;lr;r2=on").r2());
        assert_eq!(p("sip:+1@h;user=phone").user_param(), Some("phone"));
        assert_eq!(
            u.headers().collect::<Vec<_>>(),
            vec![("subject", "hi"), ("x", "y")]
        );
        assert_eq!(u.to_string(), u.as_str());
    }

    #[test]
    fn hosts() {
        let u = p("sips:[2001:db8::1]:5061;transport=tls");
        assert_eq!(u.scheme(), Scheme::Sips);
        assert_eq!(u.host(), Some(Host::Ipv6("2001:db8::1".parse().unwrap())));
        assert_eq!(u.host_str(), "[2001:db8::1]");
        assert_eq!(u.port(), Some(5061));
        let u = p("sip:[::1]");
        assert_eq!(u.host(), Some(Host::Ipv6(Ipv6Addr::LOCALHOST)));
        assert_eq!(u.port(), None);
        let u = p("sip:bob@192.0.2.4");
        assert_eq!(u.host(), Some(Host::Ipv4(Ipv4Addr::new(192, 0, 2, 4))));
        assert_eq!(u.host_str(), "192.0.2.4");
        let u = Uri::parse_str("sip:127.0.0.1").unwrap();
        assert_eq!(u.host_str(), "127.0.0.1");
        assert_ne!(u, Uri::parse_str("sip:other.example").unwrap());
        let u = p("sip:df7jal23ls0d.invalid;transport=ws");
        assert_eq!(u.host(), Some(Host::Domain("df7jal23ls0d.invalid")));
        assert_eq!(u.user(), None);
        for bad in [
            "sip:[::1",
            "sip:[zz]",
            "sip:256.1.1.1",
            "sip:host:99999",
            "sip:host:",
            "sip:",
            "sip:@host",
            "sip:a b@host",
            "sip:host;;x",
            "sip:host;x=",
            "sip:host?a",
            "sip:user@host>",
            "<sip:user@host>",
            "1sip:x",
            "nocolon",
        ] {
            assert!(Uri::parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn escapes() {
        let u = p("sip:sips%3Auser%40example.com@example.net");
        assert_eq!(
            u.user_unescaped().as_deref(),
            Some(&b"sips:user@example.com"[..])
        );
        assert_eq!(u.host(), Some(Host::Domain("example.net")));
        let u = p("sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31");
        assert!(u.lr());
        let name = u.param("name").unwrap();
        assert_eq!(&*name.value_unescaped().unwrap(), b"value%41");
        assert_eq!(&*name.name_unescaped(), b"name");
        assert!(Uri::parse(b"sip:a%4@host").is_err());
        let u = p("sip:user;par=u%40example.net@example.com");
        assert_eq!(u.user(), Some("user;par=u%40example.net"));
        assert_eq!(
            u.user_unescaped().as_deref(),
            Some(&b"user;par=u@example.net"[..])
        );
    }

    #[test]
    fn other_schemes() {
        let u = p("tel:+1-201-555-0123;phone-context=example.com");
        assert_eq!(u.scheme(), Scheme::Tel);
        assert_eq!(u.user(), Some("+1-201-555-0123"));
        assert_eq!(u.param_value("phone-context"), Some("example.com"));
        let u = p("soap.beep://192.0.2.103:3002");
        assert_eq!(u.scheme(), Scheme::Other("soap.beep"));
        assert_eq!(u.opaque(), "//192.0.2.103:3002");
        assert_eq!(u.host(), None);
        let u = p("urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6");
        assert_eq!(u.scheme().as_str(), "urn");
        assert!(Uri::parse(b"x:").is_err());
    }

    #[test]
    fn owned_form() {
        let b = UriBuf::sip("example.com")
            .with_user("a b@c")
            .with_port(5060)
            .with_param("transport", Some("tcp"))
            .with_param("lr", None)
            .with_header("Route", "<sip:x>");
        assert_eq!(
            b.to_string(),
            "sip:a%20b%40c@example.com:5060;transport=tcp;lr?Route=%3Csip:x%3E"
        );
        let s = b.to_string();
        let u = Uri::parse(s.as_bytes()).unwrap();
        assert_eq!(u.user_unescaped().as_deref(), Some(&b"a b@c"[..]));
        assert_eq!(u.to_owned(), b);
        assert_eq!(UriBuf::sip("::1").to_string(), "sip:[::1]");
        let mut b = UriBuf::parse("sip:x@h;transport=udp").unwrap();
        b.set_param("TRANSPORT", Some("tls"));
        assert_eq!(b.to_string(), "sip:x@h;transport=tls");
        assert!(b.remove_param("transport"));
        assert_eq!(b.to_string(), "sip:x@h");
        assert_eq!(
            UriBuf::parse("tel:+123;x=y").unwrap().to_string(),
            "tel:+123;x=y"
        );
    }
}
