//! Typed views of the attributes the gateway reads and writes.
//!
//! Each type parses the text after `a=<name>:` and prints it back; parsing is
//! lenient about runs of whitespace, printing is canonical.

use std::fmt;

use crate::error::AttributeError;
use crate::line::{parse_number, Attribute, Connection};

/// A typed attribute value: parsed from and printed as the text after `a=<NAME>:`.
pub trait AttributeValue: Sized + fmt::Display {
    /// The attribute name, e.g. `rtpmap`.
    const NAME: &'static str;

    /// Parses the attribute value.
    fn parse_value(value: &str) -> Result<Self, AttributeError>;

    /// Parses an attribute, which must have this name and a value.
    fn from_attribute(attr: &Attribute) -> Result<Self, AttributeError> {
        let err = |reason| AttributeError {
            attribute: Self::NAME,
            reason,
        };
        if attr.name != Self::NAME {
            return Err(err("different attribute name"));
        }
        Self::parse_value(attr.value.as_deref().ok_or(err("missing value"))?)
    }

    /// The attribute carrying this value.
    fn to_attribute(&self) -> Attribute {
        Attribute::new(Self::NAME, self.to_string())
    }
}

macro_rules! attribute_value {
    ($ty:ty, $name:literal) => {
        impl AttributeValue for $ty {
            const NAME: &'static str = $name;
            fn parse_value(value: &str) -> Result<Self, AttributeError> {
                Self::parse_inner(value).map_err(|reason| AttributeError {
                    attribute: $name,
                    reason,
                })
            }
        }

        impl std::str::FromStr for $ty {
            type Err = AttributeError;
            fn from_str(s: &str) -> Result<Self, AttributeError> {
                <Self as AttributeValue>::parse_value(s)
            }
        }

        impl From<$ty> for Attribute {
            fn from(v: $ty) -> Attribute {
                v.to_attribute()
            }
        }
    };
}

type Res<T> = Result<T, &'static str>;

fn payload_type(s: &str) -> Res<u8> {
    match parse_number::<u8>(s) {
        Some(pt) if pt <= 127 => Ok(pt),
        _ => Err("payload type is not a number 0-127"),
    }
}

fn required<'a>(it: &mut impl Iterator<Item = &'a str>, what: &'static str) -> Res<&'a str> {
    it.next().ok_or(what)
}

/// `a=rtpmap:<payload type> <encoding name>/<clock rate>[/<encoding parameters>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    /// RTP payload type, 0-127.
    pub payload_type: u8,
    /// Encoding name as written (`opus`, `PCMU`, `telephone-event`...).
    pub encoding: String,
    /// Clock rate in Hz.
    pub clock_rate: u32,
    /// Channel count for audio, when given.
    pub channels: Option<u16>,
}

impl RtpMap {
    fn parse_inner(v: &str) -> Res<Self> {
        let (pt, rest) = v
            .trim()
            .split_once(' ')
            .ok_or("expected `<pt> <encoding>`")?;
        let mut parts = rest.trim().split('/');
        let encoding = parts.next().unwrap_or_default();
        if encoding.is_empty() {
            return Err("missing encoding name");
        }
        let clock_rate = parse_number(required(&mut parts, "missing clock rate")?)
            .ok_or("clock rate is not a number")?;
        let channels = match parts.next() {
            Some(c) => Some(parse_number(c).ok_or("channel count is not a number")?),
            None => None,
        };
        if parts.next().is_some() {
            return Err("too many `/` fields");
        }
        Ok(Self {
            payload_type: payload_type(pt)?,
            encoding: encoding.to_owned(),
            clock_rate,
            channels,
        })
    }

    /// The mapping RFC 3551 assigns to a static audio payload type, used when
    /// an offer lists a static payload type without `a=rtpmap`.
    pub fn for_static_payload_type(pt: u8) -> Option<Self> {
        let (encoding, clock_rate) = match pt {
            0 => ("PCMU", 8000),
            3 => ("GSM", 8000),
            4 => ("G723", 8000),
            5 => ("DVI4", 8000),
            6 => ("DVI4", 16000),
            7 => ("LPC", 8000),
            8 => ("PCMA", 8000),
            9 => ("G722", 8000),
            10 | 11 => ("L16", 44100),
            12 => ("QCELP", 8000),
            13 => ("CN", 8000),
            14 => ("MPA", 90000),
            15 => ("G728", 8000),
            16 => ("DVI4", 11025),
            17 => ("DVI4", 22050),
            18 => ("G729", 8000),
            _ => return None,
        };
        Some(Self {
            payload_type: pt,
            encoding: encoding.to_owned(),
            clock_rate,
            channels: if pt == 10 { Some(2) } else { None },
        })
    }
}

impl fmt::Display for RtpMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}/{}",
            self.payload_type, self.encoding, self.clock_rate
        )?;
        if let Some(c) = self.channels {
            write!(f, "/{c}")?;
        }
        Ok(())
    }
}
attribute_value!(RtpMap, "rtpmap");

/// `a=fmtp:<format> <format specific parameters>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fmtp {
    /// The format (payload type for RTP) the parameters apply to.
    pub format: String,
    /// Parameters as written, e.g. `minptime=10;useinbandfec=1` or `0-16`.
    pub params: String,
}

impl Fmtp {
    fn parse_inner(v: &str) -> Res<Self> {
        let v = v.trim_start();
        let (format, params) = v.split_once(' ').unwrap_or((v, ""));
        if format.is_empty() {
            return Err("missing format");
        }
        Ok(Self {
            format: format.to_owned(),
            params: params.trim().to_owned(),
        })
    }

    /// The format as a payload type, if it is one.
    pub fn payload_type(&self) -> Option<u8> {
        payload_type(&self.format).ok()
    }

    /// The `;`-separated parameters as `(name, value)`; `value` is `None` for
    /// a parameter without `=` (such as telephone-event's `0-16`).
    pub fn parameters(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.params
            .split(';')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim())),
                None => (p, None),
            })
    }

    /// The value of one `name=value` parameter.
    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.parameters()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v)
    }
}

impl fmt::Display for Fmtp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.format)?;
        if !self.params.is_empty() {
            write!(f, " {}", self.params)?;
        }
        Ok(())
    }
}
attribute_value!(Fmtp, "fmtp");

/// `a=rtcp-fb:<format or *> <feedback> [<param>]` (RFC 4585).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtcpFb {
    /// Payload type, or `*` for all.
    pub format: String,
    /// Feedback type: `nack`, `ccm`, `goog-remb`, `transport-cc`...
    pub feedback: String,
    /// Rest of the line: `pli`, `fir`...
    pub param: Option<String>,
}

impl RtcpFb {
    fn parse_inner(v: &str) -> Res<Self> {
        let mut it = v.split_ascii_whitespace();
        let format = required(&mut it, "missing format")?.to_owned();
        let feedback = required(&mut it, "missing feedback type")?.to_owned();
        let rest: Vec<&str> = it.collect();
        Ok(Self {
            format,
            feedback,
            param: (!rest.is_empty()).then(|| rest.join(" ")),
        })
    }
}

impl fmt::Display for RtcpFb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.format, self.feedback)?;
        if let Some(p) = &self.param {
            write!(f, " {p}")?;
        }
        Ok(())
    }
}
attribute_value!(RtcpFb, "rtcp-fb");

/// `a=rtcp:<port> [<nettype> <addrtype> <address>]` (RFC 3605).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rtcp {
    /// RTCP port.
    pub port: u16,
    /// RTCP address, when it differs from the media address.
    pub connection: Option<Connection>,
}

impl Rtcp {
    fn parse_inner(v: &str) -> Res<Self> {
        let v = v.trim();
        let (port, rest) = v.split_once(' ').unwrap_or((v, ""));
        let port = parse_number(port).ok_or("port is not a number 0-65535")?;
        let rest = rest.trim();
        let connection = if rest.is_empty() {
            None
        } else {
            Some(Connection::parse(rest).map_err(|_| "expected `<nettype> <addrtype> <address>`")?)
        };
        Ok(Self { port, connection })
    }
}

impl fmt::Display for Rtcp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.port)?;
        if let Some(c) = &self.connection {
            write!(f, " {c}")?;
        }
        Ok(())
    }
}
attribute_value!(Rtcp, "rtcp");

/// `a=group:<semantics> <mid>...` (RFC 5888), e.g. `BUNDLE 0 1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// `BUNDLE`, `LS`, `FID`...
    pub semantics: String,
    /// Identification tags (`a=mid` values) of the grouped media.
    pub mids: Vec<String>,
}

impl Group {
    fn parse_inner(v: &str) -> Res<Self> {
        let mut it = v.split_ascii_whitespace();
        let semantics = required(&mut it, "missing semantics")?.to_owned();
        Ok(Self {
            semantics,
            mids: it.map(str::to_owned).collect(),
        })
    }

    /// Whether this is a `BUNDLE` group.
    pub fn is_bundle(&self) -> bool {
        self.semantics.eq_ignore_ascii_case("BUNDLE")
    }
}

impl fmt::Display for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.semantics)?;
        for m in &self.mids {
            write!(f, " {m}")?;
        }
        Ok(())
    }
}
attribute_value!(Group, "group");

/// ICE candidate type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CandidateType {
    /// `host`
    Host,
    /// `srflx`
    ServerReflexive,
    /// `prflx`
    PeerReflexive,
    /// `relay`
    Relay,
    /// Any other token.
    Other(String),
}

impl CandidateType {
    /// The SDP token.
    pub fn as_str(&self) -> &str {
        match self {
            CandidateType::Host => "host",
            CandidateType::ServerReflexive => "srflx",
            CandidateType::PeerReflexive => "prflx",
            CandidateType::Relay => "relay",
            CandidateType::Other(s) => s,
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "host" => CandidateType::Host,
            "srflx" => CandidateType::ServerReflexive,
            "prflx" => CandidateType::PeerReflexive,
            "relay" => CandidateType::Relay,
            other => CandidateType::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for CandidateType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `a=candidate:` (RFC 8839): an ICE candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Foundation.
    pub foundation: String,
    /// Component id: 1 RTP, 2 RTCP.
    pub component: u16,
    /// Transport as written: `udp`, `tcp`, `UDP`...
    pub transport: String,
    /// Priority.
    pub priority: u32,
    /// Address: an IP address, or a host name (e.g. an mDNS `.local` name).
    pub address: String,
    /// Port.
    pub port: u16,
    /// Candidate type.
    pub typ: CandidateType,
    /// Related address (`raddr`).
    pub raddr: Option<String>,
    /// Related port (`rport`).
    pub rport: Option<u16>,
    /// Other `name value` pairs in order (`tcptype`, `generation`, `ufrag`...).
    pub extensions: Vec<(String, String)>,
}

impl Candidate {
    fn parse_inner(v: &str) -> Res<Self> {
        let mut it = v.split_ascii_whitespace();
        let foundation = required(&mut it, "missing foundation")?.to_owned();
        let component = parse_number(required(&mut it, "missing component")?)
            .ok_or("component is not a number")?;
        let transport = required(&mut it, "missing transport")?.to_owned();
        let priority = parse_number(required(&mut it, "missing priority")?)
            .ok_or("priority is not a 32-bit number")?;
        let address = required(&mut it, "missing address")?.to_owned();
        let port =
            parse_number(required(&mut it, "missing port")?).ok_or("port is not a number")?;
        if required(&mut it, "missing `typ`")? != "typ" {
            return Err("expected `typ` after the port");
        }
        let typ = CandidateType::parse(required(&mut it, "missing candidate type")?);
        let mut c = Self {
            foundation,
            component,
            transport,
            priority,
            address,
            port,
            typ,
            raddr: None,
            rport: None,
            extensions: Vec::new(),
        };
        while let Some(name) = it.next() {
            let value = required(&mut it, "extension without a value")?;
            match name {
                "raddr" => c.raddr = Some(value.to_owned()),
                "rport" => c.rport = Some(parse_number(value).ok_or("rport is not a number")?),
                _ => c.extensions.push((name.to_owned(), value.to_owned())),
            }
        }
        Ok(c)
    }

    /// The value of an extension such as `tcptype` or `generation`.
    pub fn extension(&self, name: &str) -> Option<&str> {
        self.extensions
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the transport is UDP.
    pub fn is_udp(&self) -> bool {
        self.transport.eq_ignore_ascii_case("udp")
    }
}

impl fmt::Display for Candidate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {} {} {} typ {}",
            self.foundation,
            self.component,
            self.transport,
            self.priority,
            self.address,
            self.port,
            self.typ
        )?;
        if let Some(a) = &self.raddr {
            write!(f, " raddr {a}")?;
        }
        if let Some(p) = self.rport {
            write!(f, " rport {p}")?;
        }
        for (n, v) in &self.extensions {
            write!(f, " {n} {v}")?;
        }
        Ok(())
    }
}
attribute_value!(Candidate, "candidate");

/// `a=fingerprint:<hash function> <hex bytes separated by :>` (RFC 8122).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// Hash function as written, e.g. `sha-256`.
    pub hash: String,
    /// Upper- or lower-case hex pairs separated by `:`.
    pub value: String,
}

impl Fingerprint {
    fn parse_inner(v: &str) -> Res<Self> {
        let mut it = v.split_ascii_whitespace();
        let hash = required(&mut it, "missing hash function")?.to_owned();
        let value = required(&mut it, "missing fingerprint")?.to_owned();
        if it.next().is_some() {
            return Err("trailing text after the fingerprint");
        }
        let f = Self { hash, value };
        if f.bytes().is_none() {
            return Err("fingerprint is not hex pairs separated by `:`");
        }
        Ok(f)
    }

    /// The fingerprint bytes.
    pub fn bytes(&self) -> Option<Vec<u8>> {
        self.value
            .split(':')
            .map(|pair| {
                if pair.len() == 2 && pair.bytes().all(|b| b.is_ascii_hexdigit()) {
                    u8::from_str_radix(pair, 16).ok()
                } else {
                    None
                }
            })
            .collect()
    }

    /// Whether the hash function is the given one, ignoring case.
    pub fn is_hash(&self, name: &str) -> bool {
        self.hash.eq_ignore_ascii_case(name)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.hash, self.value)
    }
}
attribute_value!(Fingerprint, "fingerprint");

/// `a=setup:` (RFC 4145): which side opens the DTLS/TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    /// `active`: this side connects.
    Active,
    /// `passive`: this side accepts.
    Passive,
    /// `actpass`: either; offers use this.
    ActPass,
    /// `holdconn`: no connection for now.
    HoldConn,
}

impl Setup {
    fn parse_inner(v: &str) -> Res<Self> {
        match v.trim() {
            "active" => Ok(Setup::Active),
            "passive" => Ok(Setup::Passive),
            "actpass" => Ok(Setup::ActPass),
            "holdconn" => Ok(Setup::HoldConn),
            _ => Err("expected active, passive, actpass or holdconn"),
        }
    }

    /// The SDP token.
    pub fn as_str(self) -> &'static str {
        match self {
            Setup::Active => "active",
            Setup::Passive => "passive",
            Setup::ActPass => "actpass",
            Setup::HoldConn => "holdconn",
        }
    }
}

impl fmt::Display for Setup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
attribute_value!(Setup, "setup");

/// `a=ssrc:<ssrc-id> <attribute>[:<value>]` (RFC 5576).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ssrc {
    /// Synchronization source id.
    pub id: u32,
    /// Source attribute name: `cname`, `msid`...
    pub attribute: String,
    /// Source attribute value.
    pub value: Option<String>,
}

impl Ssrc {
    fn parse_inner(v: &str) -> Res<Self> {
        let v = v.trim();
        let (id, rest) = v.split_once(' ').ok_or("expected `<ssrc> <attribute>`")?;
        let id = parse_number(id).ok_or("ssrc is not a 32-bit number")?;
        let a = Attribute::parse(rest.trim());
        if a.name.is_empty() {
            return Err("missing source attribute");
        }
        Ok(Self {
            id,
            attribute: a.name,
            value: a.value,
        })
    }
}

impl fmt::Display for Ssrc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.id, self.attribute)?;
        if let Some(v) = &self.value {
            write!(f, ":{v}")?;
        }
        Ok(())
    }
}
attribute_value!(Ssrc, "ssrc");

/// `a=ssrc-group:<semantics> <ssrc-id>...` (RFC 5576), e.g. `FID 1 2`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsrcGroup {
    /// `FID`, `SIM`, `FEC`...
    pub semantics: String,
    /// Grouped sources.
    pub ssrcs: Vec<u32>,
}

impl SsrcGroup {
    fn parse_inner(v: &str) -> Res<Self> {
        let mut it = v.split_ascii_whitespace();
        let semantics = required(&mut it, "missing semantics")?.to_owned();
        let ssrcs = it
            .map(|s| parse_number(s).ok_or("ssrc is not a 32-bit number"))
            .collect::<Res<Vec<u32>>>()?;
        Ok(Self { semantics, ssrcs })
    }
}

impl fmt::Display for SsrcGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.semantics)?;
        for s in &self.ssrcs {
            write!(f, " {s}")?;
        }
        Ok(())
    }
}
attribute_value!(SsrcGroup, "ssrc-group");

/// `a=msid:<stream id> [<track id>]` (RFC 8830).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Msid {
    /// Media stream id.
    pub stream: String,
    /// Track id (application data).
    pub track: Option<String>,
}

impl Msid {
    fn parse_inner(v: &str) -> Res<Self> {
        let mut it = v.split_ascii_whitespace();
        let stream = required(&mut it, "missing stream id")?.to_owned();
        let track = it.next().map(str::to_owned);
        if it.next().is_some() {
            return Err("more than two fields");
        }
        Ok(Self { stream, track })
    }
}

impl fmt::Display for Msid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.stream)?;
        if let Some(t) = &self.track {
            write!(f, " {t}")?;
        }
        Ok(())
    }
}
attribute_value!(Msid, "msid");

/// `a=extmap:<id>[/<direction>] <uri> [<attributes>]` (RFC 8285).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtMap {
    /// Header extension id (1-14 one-byte, up to 255 two-byte).
    pub id: u16,
    /// Direction restriction.
    pub direction: Option<Direction>,
    /// Extension URI.
    pub uri: String,
    /// Extension attributes, the rest of the line.
    pub attributes: Option<String>,
}

impl ExtMap {
    fn parse_inner(v: &str) -> Res<Self> {
        let v = v.trim();
        let (id_dir, rest) = v.split_once(' ').ok_or("expected `<id> <uri>`")?;
        let (id, direction) = match id_dir.split_once('/') {
            Some((id, d)) => (
                id,
                Some(Direction::from_name(d).ok_or("unknown direction")?),
            ),
            None => (id_dir, None),
        };
        let id = parse_number(id).ok_or("id is not a number")?;
        let rest = rest.trim();
        let (uri, attributes) = match rest.split_once(' ') {
            Some((u, a)) => (u, Some(a.trim().to_owned())),
            None => (rest, None),
        };
        if uri.is_empty() {
            return Err("missing URI");
        }
        Ok(Self {
            id,
            direction,
            uri: uri.to_owned(),
            attributes,
        })
    }
}

impl fmt::Display for ExtMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.id)?;
        if let Some(d) = self.direction {
            write!(f, "/{d}")?;
        }
        write!(f, " {}", self.uri)?;
        if let Some(a) = &self.attributes {
            write!(f, " {a}")?;
        }
        Ok(())
    }
}
attribute_value!(ExtMap, "extmap");

/// `a=crypto:<tag> <suite> <key params> [<session params>]` (SDES, RFC 4568).
///
/// Read so the gateway can refuse or strip it; SDES keys are never used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crypto {
    /// Tag.
    pub tag: u32,
    /// Crypto suite, e.g. `AES_CM_128_HMAC_SHA1_80`.
    pub suite: String,
    /// Key parameters, split at `;` (e.g. `inline:<key>|2^20|1:32`).
    pub key_params: Vec<String>,
    /// Session parameters, split at whitespace.
    pub session_params: Vec<String>,
}

impl Crypto {
    fn parse_inner(v: &str) -> Res<Self> {
        let mut it = v.split_ascii_whitespace();
        let tag = parse_number(required(&mut it, "missing tag")?).ok_or("tag is not a number")?;
        let suite = required(&mut it, "missing crypto suite")?.to_owned();
        let key_params: Vec<String> = required(&mut it, "missing key parameters")?
            .split(';')
            .map(str::to_owned)
            .collect();
        Ok(Self {
            tag,
            suite,
            key_params,
            session_params: it.map(str::to_owned).collect(),
        })
    }
}

impl fmt::Display for Crypto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}",
            self.tag,
            self.suite,
            self.key_params.join(";")
        )?;
        for p in &self.session_params {
            write!(f, " {p}")?;
        }
        Ok(())
    }
}
attribute_value!(Crypto, "crypto");

/// Media direction: the flag attributes `a=sendrecv`, `a=sendonly`,
/// `a=recvonly`, `a=inactive`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Send and receive (the default when none is given).
    SendRecv,
    /// Send only.
    SendOnly,
    /// Receive only.
    RecvOnly,
    /// Neither.
    Inactive,
}

impl Direction {
    /// All four, in attribute-name order.
    pub const ALL: [Direction; 4] = [
        Direction::SendRecv,
        Direction::SendOnly,
        Direction::RecvOnly,
        Direction::Inactive,
    ];

    /// The attribute name.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// The direction an attribute name stands for.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.as_str() == name)
    }

    /// The direction seen from the other side (sendonly ⇄ recvonly), as an
    /// answer mirrors an offer.
    pub fn reverse(self) -> Self {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            d => d,
        }
    }

    /// Whether this side sends media.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether this side receives media.
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<Direction> for Attribute {
    fn from(d: Direction) -> Attribute {
        Attribute::flag(d.as_str())
    }
}

/// Parses `a=ptime`/`a=maxptime` milliseconds; a fraction is truncated.
pub(crate) fn parse_millis(v: &str) -> Res<u32> {
    let v = v.trim();
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err("not a number of milliseconds");
    }
    parse_number(int).ok_or("not a number of milliseconds")
}

/// Checks the value of a known attribute; unknown names always pass.
pub(crate) fn check(attr: &Attribute) -> Result<(), AttributeError> {
    fn typed<T: AttributeValue>(a: &Attribute) -> Result<(), AttributeError> {
        T::from_attribute(a).map(drop)
    }
    fn flag(a: &Attribute, name: &'static str) -> Result<(), AttributeError> {
        match a.value {
            None => Ok(()),
            Some(_) => Err(AttributeError {
                attribute: name,
                reason: "flag attribute has a value",
            }),
        }
    }
    fn text(a: &Attribute, name: &'static str) -> Result<(), AttributeError> {
        match a.value.as_deref().map(str::trim) {
            Some(v) if !v.is_empty() => Ok(()),
            _ => Err(AttributeError {
                attribute: name,
                reason: "missing value",
            }),
        }
    }
    fn millis(a: &Attribute, name: &'static str) -> Result<(), AttributeError> {
        let err = |reason| AttributeError {
            attribute: name,
            reason,
        };
        parse_millis(a.value.as_deref().ok_or(err("missing value"))?)
            .map(drop)
            .map_err(err)
    }
    match attr.name.as_str() {
        "rtpmap" => typed::<RtpMap>(attr),
        "fmtp" => typed::<Fmtp>(attr),
        "rtcp-fb" => typed::<RtcpFb>(attr),
        "rtcp" => typed::<Rtcp>(attr),
        "group" => typed::<Group>(attr),
        "candidate" => typed::<Candidate>(attr),
        "fingerprint" => typed::<Fingerprint>(attr),
        "setup" => typed::<Setup>(attr),
        "ssrc" => typed::<Ssrc>(attr),
        "ssrc-group" => typed::<SsrcGroup>(attr),
        "msid" => typed::<Msid>(attr),
        "extmap" => typed::<ExtMap>(attr),
        "crypto" => typed::<Crypto>(attr),
        "ptime" => millis(attr, "ptime"),
        "maxptime" => millis(attr, "maxptime"),
        "mid" => text(attr, "mid"),
        "ice-ufrag" => text(attr, "ice-ufrag"),
        "ice-pwd" => text(attr, "ice-pwd"),
        "ice-options" => text(attr, "ice-options"),
        "rtcp-mux" => flag(attr, "rtcp-mux"),
        "ice-lite" => flag(attr, "ice-lite"),
        "end-of-candidates" => flag(attr, "end-of-candidates"),
        "sendrecv" => flag(attr, "sendrecv"),
        "sendonly" => flag(attr, "sendonly"),
        "recvonly" => flag(attr, "recvonly"),
        "inactive" => flag(attr, "inactive"),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T: AttributeValue + fmt::Debug + PartialEq>(text: &str) -> T {
        let v = T::parse_value(text).unwrap();
        assert_eq!(v.to_string(), text, "canonical print of {text:?}");
        assert_eq!(T::parse_value(&v.to_string()).unwrap(), v);
        v
    }

    fn bad<T: AttributeValue + fmt::Debug>(text: &str) -> AttributeError {
        let e = T::parse_value(text).expect_err(text);
        assert_eq!(e.attribute, T::NAME);
        e
    }

    #[test]
    fn rtpmap() {
        let m: RtpMap = round_trip("111 opus/48000/2");
        assert_eq!(
            m,
            RtpMap {
                payload_type: 111,
                encoding: "opus".into(),
                clock_rate: 48000,
                channels: Some(2)
            }
        );
        let m: RtpMap = round_trip("101 telephone-event/8000");
        assert_eq!(m.channels, None);
        bad::<RtpMap>("128 x/8000");
        bad::<RtpMap>("96 H264");
        bad::<RtpMap>("96 /90000");
        bad::<RtpMap>("96 H264/x");
        bad::<RtpMap>("96 opus/48000/2/1");
        bad::<RtpMap>("opus/48000");
        assert_eq!(
            RtpMap::parse_value(" 0  PCMU/8000 ").unwrap().encoding,
            "PCMU"
        );
    }

    #[test]
    fn static_payload_types() {
        assert_eq!(
            RtpMap::for_static_payload_type(0).unwrap().to_string(),
            "0 PCMU/8000"
        );
        assert_eq!(RtpMap::for_static_payload_type(8).unwrap().encoding, "PCMA");
        assert_eq!(
            RtpMap::for_static_payload_type(18).unwrap().encoding,
            "G729"
        );
        assert!(RtpMap::for_static_payload_type(96).is_none());
    }

    #[test]
    fn fmtp() {
        let f: Fmtp = round_trip("111 minptime=10;useinbandfec=1");
        assert_eq!(f.payload_type(), Some(111));
        assert_eq!(
            f.parameters().collect::<Vec<_>>(),
            [("minptime", Some("10")), ("useinbandfec", Some("1"))]
        );
        assert_eq!(f.parameter("USEINBANDFEC"), Some("1"));
        let f: Fmtp = round_trip("101 0-16");
        assert_eq!(f.parameters().collect::<Vec<_>>(), [("0-16", None)]);
        assert_eq!(f.parameter("0-16"), None);
        let f = Fmtp::parse_value("webrtc-datachannel").unwrap();
        assert_eq!(f.payload_type(), None);
        assert_eq!(f.params, "");
        bad::<Fmtp>("");
    }

    #[test]
    fn rtcp_fb() {
        let f: RtcpFb = round_trip("96 nack pli");
        assert_eq!((f.format.as_str(), f.feedback.as_str()), ("96", "nack"));
        assert_eq!(f.param.as_deref(), Some("pli"));
        let f: RtcpFb = round_trip("* transport-cc");
        assert_eq!(f.param, None);
        bad::<RtcpFb>("96");
    }

    #[test]
    fn rtcp() {
        let r: Rtcp = round_trip("9 IN IP4 0.0.0.0");
        assert_eq!(r.port, 9);
        assert_eq!(r.connection.unwrap().address, "0.0.0.0");
        let r: Rtcp = round_trip("53001");
        assert_eq!(r.connection, None);
        bad::<Rtcp>("x");
        bad::<Rtcp>("70000");
        bad::<Rtcp>("9 IN IP4");
    }

    #[test]
    fn group() {
        let g: Group = round_trip("BUNDLE 0 1");
        assert!(g.is_bundle());
        assert_eq!(g.mids, ["0", "1"]);
        let g: Group = round_trip("LS a");
        assert!(!g.is_bundle());
        assert!(round_trip::<Group>("BUNDLE").mids.is_empty());
        bad::<Group>(" ");
    }

    #[test]
    fn candidate() {
        let c: Candidate = round_trip(
            "4073788528 1 udp 2122260223 127.0.0.1 45891 typ host generation 0 network-id 1 network-cost 50",
        );
        assert_eq!(c.foundation, "4073788528");
        assert_eq!(c.component, 1);
        assert!(c.is_udp());
        assert_eq!(c.priority, 2122260223);
        assert_eq!(c.address, "127.0.0.1");
        assert_eq!(c.port, 45891);
        assert_eq!(c.typ, CandidateType::Host);
        assert_eq!(c.extension("network-cost"), Some("50"));
        assert_eq!(c.extensions.len(), 3);
        let c: Candidate = round_trip(
            "842163049 1 udp 1677729535 203.0.113.7 46154 typ srflx raddr 10.0.0.2 rport 46154 generation 0",
        );
        assert_eq!(c.typ, CandidateType::ServerReflexive);
        assert_eq!(c.raddr.as_deref(), Some("10.0.0.2"));
        assert_eq!(c.rport, Some(46154));
        let c: Candidate = round_trip("1 1 TCP 1 h.local 9 typ relay tcptype active");
        assert_eq!(c.typ, CandidateType::Relay);
        assert_eq!(c.extension("tcptype"), Some("active"));
        assert!(!c.is_udp());
        let c: Candidate = round_trip("1 2 udp 1 ::1 9 typ prflx");
        assert_eq!(c.typ, CandidateType::PeerReflexive);
        let c: Candidate = round_trip("1 1 udp 1 ::1 9 typ future");
        assert_eq!(c.typ.as_str(), "future");
        bad::<Candidate>("1 1 udp 1 ::1 9 host");
        bad::<Candidate>("1 1 udp 1 ::1 9 typ");
        bad::<Candidate>("1 x udp 1 ::1 9 typ host");
        bad::<Candidate>("1 1 udp 99999999999 ::1 9 typ host");
        bad::<Candidate>("1 1 udp 1 ::1 99999 typ host");
        bad::<Candidate>("1 1 udp 1 ::1 9 typ host generation");
        bad::<Candidate>("1 1 udp 1 ::1 9 typ host rport x");
    }

    #[test]
    fn fingerprint() {
        let f: Fingerprint = round_trip("sha-256 57:2E:ac:7C");
        assert!(f.is_hash("SHA-256"));
        assert_eq!(f.bytes().unwrap(), [0x57, 0x2e, 0xac, 0x7c]);
        bad::<Fingerprint>("sha-256");
        bad::<Fingerprint>("sha-256 5:2E");
        bad::<Fingerprint>("sha-256 ZZ:2E");
        bad::<Fingerprint>("sha-256 AB:CD x");
    }

    #[test]
    fn setup() {
        for s in ["active", "passive", "actpass", "holdconn"] {
            assert_eq!(round_trip::<Setup>(s).as_str(), s);
        }
        assert_eq!(Setup::parse_value("actpass").unwrap(), Setup::ActPass);
        bad::<Setup>("ACTIVE");
    }

    #[test]
    fn ssrc() {
        let s: Ssrc = round_trip("3991049362 cname:T7pCvmU+f4LFYSYh");
        assert_eq!(s.id, 3991049362);
        assert_eq!(s.attribute, "cname");
        assert_eq!(s.value.as_deref(), Some("T7pCvmU+f4LFYSYh"));
        let s: Ssrc = round_trip("1 msid:stream track");
        assert_eq!(s.value.as_deref(), Some("stream track"));
        let s: Ssrc = round_trip("1 flag");
        assert_eq!(s.value, None);
        bad::<Ssrc>("1");
        bad::<Ssrc>("4294967296 cname:x");
        bad::<Ssrc>("1 :x");
    }

    #[test]
    fn ssrc_group() {
        let g: SsrcGroup = round_trip("FID 1106219504 1890793297");
        assert_eq!(g.semantics, "FID");
        assert_eq!(g.ssrcs, [1106219504, 1890793297]);
        bad::<SsrcGroup>("FID 1 x");
        bad::<SsrcGroup>("");
    }

    #[test]
    fn msid() {
        let m: Msid = round_trip("stream track");
        assert_eq!(m.stream, "stream");
        assert_eq!(m.track.as_deref(), Some("track"));
        assert_eq!(round_trip::<Msid>("-").track, None);
        bad::<Msid>("a b c");
        bad::<Msid>("");
    }

    #[test]
    fn extmap() {
        let e: ExtMap = round_trip("1 urn:ietf:params:rtp-hdrext:ssrc-audio-level");
        assert_eq!(e.id, 1);
        assert_eq!(e.direction, None);
        assert_eq!(e.uri, "urn:ietf:params:rtp-hdrext:ssrc-audio-level");
        let e: ExtMap = round_trip("2/recvonly urn:x vad=on");
        assert_eq!(e.direction, Some(Direction::RecvOnly));
        assert_eq!(e.attributes.as_deref(), Some("vad=on"));
        bad::<ExtMap>("1");
        bad::<ExtMap>("x urn:x");
        bad::<ExtMap>("1/sideways urn:x");
    }

    #[test]
    fn crypto() {
        let c: Crypto = round_trip(
            "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32",
        );
        assert_eq!(c.tag, 1);
        assert_eq!(c.suite, "AES_CM_128_HMAC_SHA1_80");
        assert_eq!(c.key_params.len(), 1);
        assert!(c.key_params[0].starts_with("inline:"));
        let c: Crypto = round_trip("2 AES_CM_128_HMAC_SHA1_32 inline:a;inline:b UNENCRYPTED_SRTCP");
        assert_eq!(c.key_params, ["inline:a", "inline:b"]);
        assert_eq!(c.session_params, ["UNENCRYPTED_SRTCP"]);
        bad::<Crypto>("1 AES_CM_128_HMAC_SHA1_80");
        bad::<Crypto>("x AES inline:a");
    }

    #[test]
    fn direction() {
        for d in Direction::ALL {
            assert_eq!(Direction::from_name(d.as_str()), Some(d));
            assert_eq!(d.reverse().reverse(), d);
        }
        assert_eq!(Direction::SendOnly.reverse(), Direction::RecvOnly);
        assert!(Direction::SendRecv.sends() && Direction::SendRecv.receives());
        assert!(!Direction::Inactive.sends() && !Direction::Inactive.receives());
        assert!(Direction::RecvOnly.receives() && !Direction::RecvOnly.sends());
        assert_eq!(Direction::from_name("both"), None);
        assert_eq!(Attribute::from(Direction::Inactive).to_string(), "inactive");
    }

    #[test]
    fn millis() {
        assert_eq!(parse_millis("20"), Ok(20));
        assert_eq!(parse_millis(" 30.5"), Ok(30));
        assert!(parse_millis("x").is_err());
        assert!(parse_millis("20.x").is_err());
        assert!(parse_millis("").is_err());
    }

    #[test]
    fn from_attribute_checks_name_and_value() {
        assert!(RtpMap::from_attribute(&Attribute::new("fmtp", "0 PCMU/8000")).is_err());
        assert!(RtpMap::from_attribute(&Attribute::flag("rtpmap")).is_err());
        let a = RtpMap::for_static_payload_type(8).unwrap().to_attribute();
        assert_eq!(a.to_string(), "rtpmap:8 PCMA/8000");
        assert_eq!(RtpMap::from_attribute(&a).unwrap().payload_type, 8);
        assert_eq!("sha-1 AB".parse::<Fingerprint>().unwrap().hash, "sha-1");
    }

    #[test]
    fn check_known_attributes() {
        assert!(check(&Attribute::new("rtpmap", "x")).is_err());
        assert!(check(&Attribute::flag("rtpmap")).is_err());
        assert!(check(&Attribute::new("rtcp-mux", "1")).is_err());
        assert!(check(&Attribute::new("mid", " ")).is_err());
        assert!(check(&Attribute::new("ptime", "x")).is_err());
        assert!(check(&Attribute::new("ptime", "20")).is_ok());
        assert!(check(&Attribute::new("x-unknown", "anything")).is_ok());
    }
}
