//! Media sections: the `m=` line and the lines after it.

use std::fmt;

use crate::attrs::{
    parse_millis, AttributeValue, Candidate, Crypto, Direction, ExtMap, Fingerprint, Fmtp, Msid,
    Rtcp, RtcpFb, RtpMap, Setup, Ssrc, SsrcGroup,
};
use crate::error::FieldError;
use crate::line::{parse_number, Attribute, Connection, Line};
use crate::section::section_accessors;

/// `RTP/AVP`: plain RTP, as SIP trunks and PSTN gateways send.
pub const PROTO_RTP_AVP: &str = "RTP/AVP";
/// `UDP/TLS/RTP/SAVPF`: DTLS-SRTP with feedback, as WebRTC sends.
pub const PROTO_WEBRTC: &str = "UDP/TLS/RTP/SAVPF";

/// The media type of an `m=` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaKind {
    /// `audio`
    Audio,
    /// `video`
    Video,
    /// `text`
    Text,
    /// `application` (e.g. WebRTC data channels)
    Application,
    /// `message`
    Message,
    /// `image` (T.38 fax)
    Image,
    /// Any other token.
    Other(String),
}

impl MediaKind {
    /// The SDP token.
    pub fn as_str(&self) -> &str {
        match self {
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
            MediaKind::Text => "text",
            MediaKind::Application => "application",
            MediaKind::Message => "message",
            MediaKind::Image => "image",
            MediaKind::Other(s) => s,
        }
    }

    /// The kind a token stands for.
    pub fn parse(s: &str) -> Self {
        match s {
            "audio" => MediaKind::Audio,
            "video" => MediaKind::Video,
            "text" => MediaKind::Text,
            "application" => MediaKind::Application,
            "message" => MediaKind::Message,
            "image" => MediaKind::Image,
            other => MediaKind::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for MediaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `m=<media> <port>[/<number of ports>] <proto> <fmt> ...`.
///
/// Numbers are printed without leading zeros; everything else as parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    /// Media type.
    pub kind: MediaKind,
    /// Transport port; 0 rejects or disables the stream.
    pub port: u16,
    /// Number of ports, when given (`/2`).
    pub port_count: Option<u16>,
    /// Transport protocol, e.g. [`PROTO_RTP_AVP`] or [`PROTO_WEBRTC`].
    pub proto: String,
    /// Formats: RTP payload type numbers, or other tokens for non-RTP protos.
    pub formats: Vec<String>,
}

impl Media {
    /// An `m=` line.
    pub fn new(kind: MediaKind, port: u16, proto: &str, formats: &[&str]) -> Self {
        Self {
            kind,
            port,
            port_count: None,
            proto: proto.to_owned(),
            formats: formats.iter().map(|f| (*f).to_owned()).collect(),
        }
    }

    /// Parses the value of an `m=` line.
    pub fn parse(value: &str) -> Result<Self, FieldError> {
        let err = |reason| FieldError { kind: 'm', reason };
        let mut it = value.split_ascii_whitespace();
        let kind = it.next().ok_or(err("missing media type"))?;
        let port = it.next().ok_or(err("missing port"))?;
        let proto = it.next().ok_or(err("missing transport protocol"))?;
        let (port, port_count) = match port.split_once('/') {
            Some((p, n)) => (
                p,
                Some(parse_number(n).ok_or(err("number of ports is not a number 0-65535"))?),
            ),
            None => (port, None),
        };
        Ok(Self {
            kind: MediaKind::parse(kind),
            port: parse_number(port).ok_or(err("port is not a number 0-65535"))?,
            port_count,
            proto: proto.to_owned(),
            formats: it.map(str::to_owned).collect(),
        })
    }
}

impl fmt::Display for Media {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind, self.port)?;
        if let Some(n) = self.port_count {
            write!(f, "/{n}")?;
        }
        write!(f, " {}", self.proto)?;
        for fmt in &self.formats {
            write!(f, " {fmt}")?;
        }
        Ok(())
    }
}

/// A media section: its `m=` line and the lines after it, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    /// The `m=` line.
    pub media: Media,
    /// The lines after `m=` (`i=`, `c=`, `b=`, `a=`...), in order.
    pub lines: Vec<Line>,
}

section_accessors!(MediaDescription, ['b', 'k', 'a']);

impl MediaDescription {
    /// A section with only its `m=` line.
    pub fn new(media: Media) -> Self {
        Self {
            media,
            lines: Vec::new(),
        }
    }

    /// The media type.
    pub fn kind(&self) -> &MediaKind {
        &self.media.kind
    }

    /// The transport port.
    pub fn port(&self) -> u16 {
        self.media.port
    }

    /// Sets the transport port.
    pub fn set_port(&mut self, port: u16) {
        self.media.port = port;
    }

    /// The transport protocol.
    pub fn proto(&self) -> &str {
        &self.media.proto
    }

    /// The formats of the `m=` line.
    pub fn formats(&self) -> &[String] {
        &self.media.formats
    }

    /// The formats that are RTP payload types (0-127), in `m=` order.
    pub fn payload_types(&self) -> impl Iterator<Item = u8> + '_ {
        self.media
            .formats
            .iter()
            .filter_map(|f| parse_number::<u8>(f).filter(|pt| *pt <= 127))
    }

    /// Every valid `a=rtpmap`.
    pub fn rtpmaps(&self) -> impl Iterator<Item = RtpMap> + '_ {
        self.typed_attributes()
    }

    /// The `a=rtpmap` of a payload type.
    pub fn rtpmap(&self, payload_type: u8) -> Option<RtpMap> {
        self.rtpmaps().find(|m| m.payload_type == payload_type)
    }

    /// The codec of a payload type: its `a=rtpmap`, else the RFC 3551
    /// static assignment (trunks often omit rtpmap for 0 and 8).
    pub fn codec(&self, payload_type: u8) -> Option<RtpMap> {
        self.rtpmap(payload_type)
            .or_else(|| RtpMap::for_static_payload_type(payload_type))
    }

    /// Every valid `a=fmtp`.
    pub fn fmtps(&self) -> impl Iterator<Item = Fmtp> + '_ {
        self.typed_attributes()
    }

    /// The `a=fmtp` of a payload type.
    pub fn fmtp(&self, payload_type: u8) -> Option<Fmtp> {
        self.fmtps()
            .find(|f| f.payload_type() == Some(payload_type))
    }

    /// Every valid `a=rtcp-fb`.
    pub fn rtcp_fbs(&self) -> impl Iterator<Item = RtcpFb> + '_ {
        self.typed_attributes()
    }

    /// Whether `a=rtcp-mux` is present.
    pub fn rtcp_mux(&self) -> bool {
        self.has_attribute("rtcp-mux")
    }

    /// `a=rtcp`.
    pub fn rtcp(&self) -> Option<Rtcp> {
        self.typed_attribute()
    }

    /// `a=mid`, the identification tag used by `a=group`.
    pub fn mid(&self) -> Option<&str> {
        self.attribute_value("mid").map(str::trim)
    }

    /// Every valid `a=candidate`.
    pub fn candidates(&self) -> impl Iterator<Item = Candidate> + '_ {
        self.typed_attributes()
    }

    /// Whether `a=end-of-candidates` is present.
    pub fn end_of_candidates(&self) -> bool {
        self.has_attribute("end-of-candidates")
    }

    /// Every valid `a=ssrc`.
    pub fn ssrcs(&self) -> impl Iterator<Item = Ssrc> + '_ {
        self.typed_attributes()
    }

    /// Every valid `a=ssrc-group`.
    pub fn ssrc_groups(&self) -> impl Iterator<Item = SsrcGroup> + '_ {
        self.typed_attributes()
    }

    /// The first valid `a=msid`.
    pub fn msid(&self) -> Option<Msid> {
        self.typed_attribute()
    }

    /// Every valid `a=msid`.
    pub fn msids(&self) -> impl Iterator<Item = Msid> + '_ {
        self.typed_attributes()
    }

    /// Every valid `a=crypto` (SDES).
    pub fn cryptos(&self) -> impl Iterator<Item = Crypto> + '_ {
        self.typed_attributes()
    }

    /// `a=ptime` in milliseconds.
    pub fn ptime(&self) -> Option<u32> {
        parse_millis(self.attribute_value("ptime")?).ok()
    }

    /// `a=maxptime` in milliseconds.
    pub fn maxptime(&self) -> Option<u32> {
        parse_millis(self.attribute_value("maxptime")?).ok()
    }

    /// Keeps the formats for which `keep` is true, in order, and drops the
    /// `a=rtpmap`, `a=fmtp` and `a=rtcp-fb` lines of the others (`rtcp-fb:*`
    /// stays). Dependent formats (an `rtx` whose `apt` was dropped) are up to
    /// the caller; an `m=` line left with no format is invalid SDP.
    pub fn retain_formats(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.media.formats.retain(|f| keep(f));
        let formats = &self.media.formats;
        self.lines.retain(|l| match l {
            Line::Attribute(Attribute {
                name,
                value: Some(v),
            }) if matches!(name.as_str(), "rtpmap" | "fmtp" | "rtcp-fb") => {
                let format = v.split_ascii_whitespace().next().unwrap_or_default();
                format == "*" || formats.iter().any(|f| f == format)
            }
            _ => true,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(text: &str) -> MediaDescription {
        let mut lines = text.lines();
        let m = lines.next().unwrap().strip_prefix("m=").unwrap();
        let mut md = MediaDescription::new(Media::parse(m).unwrap());
        for l in lines {
            let (k, v) = l.split_once('=').unwrap();
            md.lines.push(match k {
                "a" => Line::Attribute(Attribute::parse(v)),
                "c" => Line::Connection(Connection::parse(v).unwrap()),
                _ => Line::other(k.chars().next().unwrap(), v),
            });
        }
        md
    }

    const WEBRTC: &str = "m=audio 45891 UDP/TLS/RTP/SAVPF 111 63 0 126
c=IN IP4 127.0.0.1
a=rtcp:9 IN IP4 0.0.0.0
a=candidate:1 1 udp 2122260223 127.0.0.1 45891 typ host generation 0
a=candidate:bad
a=candidate:2 1 tcp 1518280447 127.0.0.1 9 typ host tcptype active
a=end-of-candidates
a=ice-ufrag:d0LJ
a=ice-pwd:iC/12AnvxoAdMNVCkUfiuS1y
a=ice-options:trickle renomination
a=fingerprint:sha-256 57:2E
a=setup:actpass
a=mid:0
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level
a=extmap:4/sendonly urn:ietf:params:rtp-hdrext:sdes:mid
a=sendrecv
a=msid:stream track
a=rtcp-mux
a=rtpmap:111 opus/48000/2
a=rtcp-fb:111 transport-cc
a=rtcp-fb:* nack
a=fmtp:111 minptime=10;useinbandfec=1
a=rtpmap:63 red/48000/2
a=fmtp:63 111/111
a=rtpmap:126 telephone-event/8000
a=ssrc-group:FID 1 2
a=ssrc:1 cname:abc
a=ssrc:1 msid:stream track
a=ptime:20
a=maxptime:120
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:key|2^20|1:32";

    #[test]
    fn media_line() {
        let m = Media::parse("audio 45891 UDP/TLS/RTP/SAVPF 111 0").unwrap();
        assert_eq!(m.kind, MediaKind::Audio);
        assert_eq!(m.port, 45891);
        assert_eq!(m.port_count, None);
        assert_eq!(m.proto, PROTO_WEBRTC);
        assert_eq!(m.formats, ["111", "0"]);
        assert_eq!(m.to_string(), "audio 45891 UDP/TLS/RTP/SAVPF 111 0");
        let m = Media::parse("video 49170/2 RTP/AVP 31").unwrap();
        assert_eq!(m.port_count, Some(2));
        assert_eq!(m.to_string(), "video 49170/2 RTP/AVP 31");
        let m = Media::parse("image 4000 udptl t38").unwrap();
        assert_eq!(m.kind, MediaKind::Image);
        let m = Media::parse("application 9 UDP/DTLS/SCTP webrtc-datachannel").unwrap();
        assert_eq!(m.kind, MediaKind::Application);
        assert_eq!(Media::parse("x 0 y").unwrap().kind.as_str(), "x");
        assert!(Media::parse("audio 70000 RTP/AVP 0").is_err());
        assert!(Media::parse("audio -1 RTP/AVP 0").is_err());
        assert!(Media::parse("audio 1/x RTP/AVP 0").is_err());
        assert!(Media::parse("audio 1").is_err());
        assert!(Media::parse("").is_err());
        let built = Media::new(MediaKind::Audio, 4000, PROTO_RTP_AVP, &["0", "8"]);
        assert_eq!(built.to_string(), "audio 4000 RTP/AVP 0 8");
    }

    #[test]
    fn typed_accessors() {
        let m = section(WEBRTC);
        assert_eq!(m.kind(), &MediaKind::Audio);
        assert_eq!(m.port(), 45891);
        assert_eq!(m.proto(), PROTO_WEBRTC);
        assert_eq!(m.payload_types().collect::<Vec<_>>(), [111, 63, 0, 126]);
        assert_eq!(m.connection().unwrap().address, "127.0.0.1");
        let rtcp = m.rtcp().unwrap();
        assert_eq!(rtcp.port, 9);
        assert_eq!(rtcp.connection.unwrap().address, "0.0.0.0");
        let cands: Vec<_> = m.candidates().collect();
        assert_eq!(cands.len(), 2, "the malformed candidate is skipped");
        assert_eq!(cands[1].extension("tcptype"), Some("active"));
        assert!(m.end_of_candidates());
        assert_eq!(m.ice_ufrag(), Some("d0LJ"));
        assert_eq!(m.ice_pwd(), Some("iC/12AnvxoAdMNVCkUfiuS1y"));
        assert_eq!(
            m.ice_options().collect::<Vec<_>>(),
            ["trickle", "renomination"]
        );
        assert_eq!(m.fingerprint().unwrap().hash, "sha-256");
        assert_eq!(m.fingerprints().count(), 1);
        assert_eq!(m.setup(), Some(Setup::ActPass));
        assert_eq!(m.mid(), Some("0"));
        let ext: Vec<_> = m.extmaps().collect();
        assert_eq!(ext.len(), 2);
        assert_eq!(ext[1].direction, Some(Direction::SendOnly));
        assert_eq!(m.direction(), Some(Direction::SendRecv));
        assert_eq!(m.msid().unwrap().track.as_deref(), Some("track"));
        assert_eq!(m.msids().count(), 1);
        assert!(m.rtcp_mux());
        assert_eq!(m.rtpmaps().count(), 3);
        assert_eq!(m.rtpmap(111).unwrap().channels, Some(2));
        assert_eq!(m.rtpmap(0), None);
        assert_eq!(m.codec(0).unwrap().encoding, "PCMU");
        assert_eq!(m.codec(126).unwrap().encoding, "telephone-event");
        assert_eq!(m.fmtp(111).unwrap().parameter("useinbandfec"), Some("1"));
        assert_eq!(m.fmtp(0), None);
        assert_eq!(m.fmtps().count(), 2);
        assert_eq!(m.rtcp_fbs().count(), 2);
        assert_eq!(m.ssrc_groups().next().unwrap().ssrcs, [1, 2]);
        assert_eq!(m.ssrcs().count(), 2);
        assert_eq!(m.ssrcs().next().unwrap().value.as_deref(), Some("abc"));
        assert_eq!(m.ptime(), Some(20));
        assert_eq!(m.maxptime(), Some(120));
        let c: Vec<_> = m.cryptos().collect();
        assert_eq!(c[0].suite, "AES_CM_128_HMAC_SHA1_80");
    }

    #[test]
    fn absent_attributes() {
        let m = section("m=audio 4000 RTP/AVP 0");
        assert_eq!(m.connection(), None);
        assert_eq!(m.rtcp(), None);
        assert!(!m.rtcp_mux());
        assert_eq!(m.mid(), None);
        assert_eq!(m.direction(), None);
        assert_eq!(m.setup(), None);
        assert_eq!(m.fingerprint(), None);
        assert_eq!(m.ice_ufrag(), None);
        assert_eq!(m.ptime(), None);
        assert_eq!(m.candidates().count(), 0);
    }

    #[test]
    fn retain_formats_drops_their_lines() {
        let mut m = section(WEBRTC);
        m.retain_formats(|f| f == "111" || f == "126");
        assert_eq!(m.formats(), ["111", "126"]);
        assert_eq!(
            m.rtpmaps().map(|r| r.payload_type).collect::<Vec<_>>(),
            [111, 126]
        );
        assert!(m.fmtp(63).is_none());
        assert!(m.fmtp(111).is_some());
        assert_eq!(m.rtcp_fbs().count(), 2, "rtcp-fb:* stays");
        m.retain_formats(|f| f == "126");
        assert_eq!(m.rtcp_fbs().map(|f| f.format).collect::<Vec<_>>(), ["*"]);
        assert_eq!(m.fmtps().count(), 0);
        assert!(m.rtcp_mux(), "other attributes stay");
    }

    #[test]
    fn edits() {
        let mut m = section(WEBRTC);
        m.set_port(30000);
        assert_eq!(
            m.media.to_string(),
            "audio 30000 UDP/TLS/RTP/SAVPF 111 63 0 126"
        );
        assert_eq!(m.remove_attributes("candidate"), 3);
        assert_eq!(m.remove_attributes("candidate"), 0);
        m.set_direction(Direction::RecvOnly);
        assert_eq!(m.direction(), Some(Direction::RecvOnly));
        assert!(!m.has_attribute("sendrecv"));
        m.add_attribute(Direction::Inactive);
        m.set_direction(Direction::SendOnly);
        assert_eq!(
            m.attributes()
                .filter(|a| Direction::from_name(&a.name).is_some())
                .count(),
            1
        );
        m.set_attribute(Setup::Passive);
        assert_eq!(m.setup(), Some(Setup::Passive));
        assert_eq!(m.attributes().filter(|a| a.name == "setup").count(), 1);
        m.set_attribute(Attribute::flag("ice-lite"));
        assert!(m.has_attribute("ice-lite"));
        m.retain_attributes(|a| a.name != "ssrc");
        assert_eq!(m.ssrcs().count(), 0);
        m.set_connection(Connection::new("127.0.0.9".parse().unwrap()));
        assert_eq!(m.connection().unwrap().address, "127.0.0.9");
        m.connection_mut().unwrap().address = "127.0.0.10".into();
        assert_eq!(m.connection().unwrap().address, "127.0.0.10");
        assert!(m.remove_connection());
        assert!(!m.remove_connection());
        m.lines.insert(0, Line::other('i', "info"));
        m.lines.insert(1, Line::other('b', "AS:64"));
        m.set_connection(Connection::new("::1".parse().unwrap()));
        assert_eq!(
            m.lines[1].to_string(),
            "c=IN IP6 ::1",
            "after i=, before b="
        );
    }

    #[test]
    fn set_connection_replaces_all() {
        let mut m =
            section("m=audio 1 RTP/AVP 0\nc=IN IP4 224.2.1.1/127\nc=IN IP4 224.2.1.2/127\na=x");
        m.set_connection(Connection::new("127.0.0.1".parse().unwrap()));
        let lines: Vec<_> = m.lines.iter().map(ToString::to_string).collect();
        assert_eq!(lines, ["c=IN IP4 127.0.0.1", "a=x"]);
        let mut m = section("m=audio 1 RTP/AVP 0\na=x");
        m.set_connection(Connection::new("127.0.0.1".parse().unwrap()));
        assert_eq!(m.lines[0].kind(), 'c');
    }
}
