//! Lines of a description: attributes, `o=`, `c=` and everything else verbatim.

use std::fmt;
use std::net::IpAddr;

use crate::error::FieldError;

/// One line of a session or media section, in input order.
///
/// Only the lines the gateway edits structurally are typed; every other line
/// (`v=`, `s=`, `t=`, `b=`, unknown types...) is kept verbatim in [`Line::Other`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// `o=` origin (session level only).
    Origin(Origin),
    /// `c=` connection data.
    Connection(Connection),
    /// `a=` attribute.
    Attribute(Attribute),
    /// Any other line, re-emitted as `<kind>=<value>`.
    Other {
        /// The line type letter.
        kind: char,
        /// Everything after `=`.
        value: String,
    },
}

impl Line {
    /// The line type letter (`a`, `c`, `o`, ...).
    pub fn kind(&self) -> char {
        match self {
            Line::Origin(_) => 'o',
            Line::Connection(_) => 'c',
            Line::Attribute(_) => 'a',
            Line::Other { kind, .. } => *kind,
        }
    }

    /// The attribute, if this is an `a=` line.
    pub fn as_attribute(&self) -> Option<&Attribute> {
        match self {
            Line::Attribute(a) => Some(a),
            _ => None,
        }
    }

    /// A verbatim line of the given type.
    pub fn other(kind: char, value: impl Into<String>) -> Self {
        Line::Other {
            kind,
            value: value.into(),
        }
    }
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Line::Origin(o) => write!(f, "o={o}"),
            Line::Connection(c) => write!(f, "c={c}"),
            Line::Attribute(a) => write!(f, "a={a}"),
            Line::Other { kind, value } => write!(f, "{kind}={value}"),
        }
    }
}

impl From<Attribute> for Line {
    fn from(a: Attribute) -> Self {
        Line::Attribute(a)
    }
}

impl From<Connection> for Line {
    fn from(c: Connection) -> Self {
        Line::Connection(c)
    }
}

impl From<Origin> for Line {
    fn from(o: Origin) -> Self {
        Line::Origin(o)
    }
}

/// An `a=` line: `a=name` (a flag) or `a=name:value`.
///
/// The value is kept as written, so unknown attributes round-trip exactly;
/// typed views parse it on demand (see [`AttributeValue`](crate::AttributeValue)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// Text before the first `:`.
    pub name: String,
    /// Text after the first `:`, `None` for a flag attribute.
    pub value: Option<String>,
}

impl Attribute {
    /// An attribute with a value.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: Some(value.into()),
        }
    }

    /// A flag attribute such as `a=rtcp-mux`.
    pub fn flag(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: None,
        }
    }

    /// Splits the text after `a=` at the first `:`.
    pub fn parse(text: &str) -> Self {
        match text.split_once(':') {
            Some((name, value)) => Self::new(name, value),
            None => Self::flag(text),
        }
    }
}

impl fmt::Display for Attribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => write!(f, "{}:{v}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

fn addr_type(ip: IpAddr) -> &'static str {
    match ip {
        IpAddr::V4(_) => "IP4",
        IpAddr::V6(_) => "IP6",
    }
}

/// `o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>`.
///
/// Fields are kept as text so any well-formed value (leading zeros, ids
/// beyond 64 bits) is re-emitted unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// User name, `-` when none.
    pub username: String,
    /// Session id (digits).
    pub session_id: String,
    /// Session version (digits); must grow on every change of the description.
    pub session_version: String,
    /// Network type, `IN`.
    pub net_type: String,
    /// Address type, `IP4` or `IP6`.
    pub addr_type: String,
    /// Address or host name of the originator.
    pub address: String,
}

impl Origin {
    /// An `IN` origin for the given address.
    pub fn new(username: &str, session_id: u64, session_version: u64, ip: IpAddr) -> Self {
        Self {
            username: username.to_owned(),
            session_id: session_id.to_string(),
            session_version: session_version.to_string(),
            net_type: "IN".to_owned(),
            addr_type: addr_type(ip).to_owned(),
            address: ip.to_string(),
        }
    }

    /// Parses the value of an `o=` line.
    pub fn parse(value: &str) -> Result<Self, FieldError> {
        let err = |reason| FieldError { kind: 'o', reason };
        let mut it = value.split_ascii_whitespace();
        let mut next = || it.next().map(str::to_owned);
        let (Some(username), Some(session_id), Some(session_version)) = (next(), next(), next())
        else {
            return Err(err("expected 6 fields"));
        };
        let (Some(net_type), Some(addr_type), Some(address)) = (next(), next(), next()) else {
            return Err(err("expected 6 fields"));
        };
        if next().is_some() {
            return Err(err("expected 6 fields"));
        }
        if !is_digits(&session_id) {
            return Err(err("session id is not a number"));
        }
        if !is_digits(&session_version) {
            return Err(err("session version is not a number"));
        }
        Ok(Self {
            username,
            session_id,
            session_version,
            net_type,
            addr_type,
            address,
        })
    }

    /// The address as an IP address, if it is one.
    pub fn ip(&self) -> Option<IpAddr> {
        self.address.parse().ok()
    }

    /// Sets the address and address type.
    pub fn set_ip(&mut self, ip: IpAddr) {
        self.net_type = "IN".to_owned();
        self.addr_type = addr_type(ip).to_owned();
        self.address = ip.to_string();
    }

    /// Adds one to the session version, as required after any change.
    pub fn bump_version(&mut self) {
        self.session_version = increment_decimal(&self.session_version);
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {} {} {}",
            self.username,
            self.session_id,
            self.session_version,
            self.net_type,
            self.addr_type,
            self.address
        )
    }
}

/// `c=<nettype> <addrtype> <connection-address>`, also the optional address
/// part of `a=rtcp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// Network type, `IN`.
    pub net_type: String,
    /// Address type, `IP4` or `IP6`.
    pub addr_type: String,
    /// Address as written, including any multicast `/ttl/count` suffix.
    pub address: String,
}

impl Connection {
    /// An `IN` connection for the given address.
    pub fn new(ip: IpAddr) -> Self {
        Self {
            net_type: "IN".to_owned(),
            addr_type: addr_type(ip).to_owned(),
            address: ip.to_string(),
        }
    }

    /// Parses the value of a `c=` line.
    pub fn parse(value: &str) -> Result<Self, FieldError> {
        let err = FieldError {
            kind: 'c',
            reason: "expected `<nettype> <addrtype> <address>`",
        };
        let mut it = value.split_ascii_whitespace();
        match (it.next(), it.next(), it.next(), it.next()) {
            (Some(n), Some(t), Some(a), None) => Ok(Self {
                net_type: n.to_owned(),
                addr_type: t.to_owned(),
                address: a.to_owned(),
            }),
            _ => Err(err),
        }
    }

    /// The address without a multicast suffix, as an IP address if it is one.
    pub fn ip(&self) -> Option<IpAddr> {
        self.address.split('/').next()?.parse().ok()
    }

    /// Sets the address and address type.
    pub fn set_ip(&mut self, ip: IpAddr) {
        *self = Self::new(ip);
    }
}

impl From<IpAddr> for Connection {
    fn from(ip: IpAddr) -> Self {
        Self::new(ip)
    }
}

impl fmt::Display for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.net_type, self.addr_type, self.address)
    }
}

/// Non-empty and only ASCII digits (unlike `str::parse`, refuses a sign).
pub(crate) fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Parses an unsigned number written as digits only.
pub(crate) fn parse_number<T: std::str::FromStr>(s: &str) -> Option<T> {
    if is_digits(s) {
        s.parse().ok()
    } else {
        None
    }
}

/// Decimal string plus one, any length; a non-number becomes `1`.
fn increment_decimal(s: &str) -> String {
    if !is_digits(s) {
        return "1".to_owned();
    }
    let mut digits = s.as_bytes().to_vec();
    for d in digits.iter_mut().rev() {
        if *d == b'9' {
            *d = b'0';
        } else {
            *d += 1;
            return String::from_utf8(digits).unwrap_or_else(|_| "1".to_owned());
        }
    }
    digits.insert(0, b'1');
    String::from_utf8(digits).unwrap_or_else(|_| "1".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_split_at_first_colon() {
        let a = Attribute::parse("fingerprint:sha-256 AB:CD");
        assert_eq!(a.name, "fingerprint");
        assert_eq!(a.value.as_deref(), Some("sha-256 AB:CD"));
        assert_eq!(a.to_string(), "fingerprint:sha-256 AB:CD");
        let flag = Attribute::parse("rtcp-mux");
        assert_eq!(flag, Attribute::flag("rtcp-mux"));
        assert_eq!(Attribute::parse("x:").value.as_deref(), Some(""));
        assert_eq!(Attribute::parse("x:").to_string(), "x:");
    }

    #[test]
    fn origin_parse_and_edit() {
        let mut o = Origin::parse("- 4696043547252484820 2 IN IP4 127.0.0.1").unwrap();
        assert_eq!(o.username, "-");
        assert_eq!(o.session_id, "4696043547252484820");
        assert_eq!(o.session_version, "2");
        assert_eq!(o.ip(), Some("127.0.0.1".parse().unwrap()));
        o.bump_version();
        assert_eq!(o.session_version, "3");
        o.set_ip("::1".parse().unwrap());
        assert_eq!(o.to_string(), "- 4696043547252484820 3 IN IP6 ::1");
        assert!(Origin::parse("- 1 2 IN IP4").is_err());
        assert!(Origin::parse("- 1 2 IN IP4 a b").is_err());
        assert!(Origin::parse("- x 2 IN IP4 a").is_err());
        assert!(Origin::parse("- 1 +2 IN IP4 a").is_err());
    }

    #[test]
    fn bump_version_carries() {
        assert_eq!(increment_decimal("0"), "1");
        assert_eq!(increment_decimal("199"), "200");
        assert_eq!(
            increment_decimal("99999999999999999999"),
            "100000000000000000000"
        );
        assert_eq!(increment_decimal("x"), "1");
    }

    #[test]
    fn connection_parse_and_edit() {
        let mut c = Connection::parse("IN IP4 224.2.1.1/127/3").unwrap();
        assert_eq!(c.address, "224.2.1.1/127/3");
        assert_eq!(c.ip(), Some("224.2.1.1".parse().unwrap()));
        c.set_ip("127.0.0.5".parse().unwrap());
        assert_eq!(c.to_string(), "IN IP4 127.0.0.5");
        assert!(Connection::parse("IN IP4").is_err());
        assert!(Connection::parse("IN IP4 1.2.3.4 x").is_err());
        assert_eq!(Connection::parse("IN IP4 host.example").unwrap().ip(), None);
    }

    #[test]
    fn line_display() {
        assert_eq!(Line::other('s', "-").to_string(), "s=-");
        assert_eq!(
            Line::from(Attribute::flag("ice-lite")).to_string(),
            "a=ice-lite"
        );
        assert_eq!(Line::other('b', "AS:30").kind(), 'b');
    }
}
