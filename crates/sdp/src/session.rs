//! The session description: parse, validate, write, session-level access.

use std::fmt;
use std::str::FromStr;

use crate::attrs::{self, AttributeValue, Direction, ExtMap, Fingerprint, Group, Setup};
use crate::error::{FieldError, ParseError, ParseErrorKind};
use crate::line::{is_digits, Attribute, Connection, Line, Origin};
use crate::media::{Media, MediaDescription};
use crate::section::section_accessors;

/// Bounds on what [`SessionDescription::parse_with_limits`] accepts, so a
/// hostile peer cannot make it allocate without bound. Parsing is linear in
/// the input, and the model holds at most a small constant times its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest input in bytes (default 65 535, the largest SIP message).
    pub max_size: usize,
    /// Most lines (default 4 096; a Chromium audio+video offer has ~170).
    pub max_lines: usize,
    /// Longest line in bytes, without its line ending (default 4 096).
    pub max_line_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_size: 65_535,
            max_lines: 4_096,
            max_line_len: 4_096,
        }
    }
}

/// The line terminator used when writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LineEnding {
    /// `\r\n`, as RFC 8866 requires.
    #[default]
    Crlf,
    /// `\n`, accepted on input and kept for a byte-identical round trip.
    Lf,
}

impl LineEnding {
    /// The terminator.
    pub fn as_str(self) -> &'static str {
        match self {
            LineEnding::Crlf => "\r\n",
            LineEnding::Lf => "\n",
        }
    }
}

/// A session description (RFC 8866): session-level lines, then media sections.
///
/// Parsing keeps every line in order, unknown ones included, so writing an
/// unmodified well-formed description gives back the same bytes. Accessors
/// read typed values on demand; edits go through setters or the public
/// `lines`/`media` fields, and writing is canonical for edited lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    /// Session-level lines in order, starting with `v=0`.
    pub lines: Vec<Line>,
    /// Media sections in order.
    pub media: Vec<MediaDescription>,
    /// Terminator used by [`Display`](fmt::Display): that of the parsed input,
    /// CRLF for a new description.
    pub line_ending: LineEnding,
}

section_accessors!(SessionDescription, ['b', 't', 'r', 'z', 'k', 'a']);

impl SessionDescription {
    /// A minimal description: `v=0`, the origin, `s=-`, `t=0 0`, no media.
    pub fn new(origin: Origin) -> Self {
        Self {
            lines: vec![
                Line::other('v', "0"),
                Line::Origin(origin),
                Line::other('s', "-"),
                Line::other('t', "0 0"),
            ],
            media: Vec::new(),
            line_ending: LineEnding::Crlf,
        }
    }

    /// Parses with the default [`Limits`].
    pub fn parse(input: &str) -> Result<Self, ParseError> {
        Self::parse_with_limits(input, &Limits::default())
    }

    /// Parses a UTF-8 body (such as a SIP message body) with the default [`Limits`].
    pub fn from_bytes(input: &[u8]) -> Result<Self, ParseError> {
        Self::from_bytes_with_limits(input, &Limits::default())
    }

    /// Parses a UTF-8 body with the given limits.
    pub fn from_bytes_with_limits(input: &[u8], limits: &Limits) -> Result<Self, ParseError> {
        if input.len() > limits.max_size {
            return Err(ParseError::new(
                0,
                ParseErrorKind::TooLarge {
                    limit: limits.max_size,
                },
            ));
        }
        let text = std::str::from_utf8(input).map_err(|e| {
            let valid = input.get(..e.valid_up_to()).unwrap_or_default();
            let line = valid.iter().filter(|b| **b == b'\n').count() + 1;
            ParseError::new(line, ParseErrorKind::InvalidUtf8)
        })?;
        Self::parse_with_limits(text, limits)
    }

    /// Parses with the given limits.
    ///
    /// Accepted: CRLF or bare LF line endings (the first one decides how the
    /// description is written back), a missing final line ending, empty
    /// lines at the end. Checked: `v=0` first; exactly one `o=` and `s=`; at
    /// least one `t=`; at most one session-level `c=`; no `v=`, `o=`, `s=`,
    /// `t=` in media sections; the syntax of `o=`, `c=`, `t=` and `m=`.
    /// Attributes are not checked here (see [`validate`](Self::validate)).
    pub fn parse_with_limits(input: &str, limits: &Limits) -> Result<Self, ParseError> {
        if input.len() > limits.max_size {
            return Err(ParseError::new(
                0,
                ParseErrorKind::TooLarge {
                    limit: limits.max_size,
                },
            ));
        }
        let mut raw: Vec<&str> = Vec::new();
        let mut line_ending = None;
        let mut rest = input;
        while !rest.is_empty() {
            let (line, next) = match rest.split_once('\n') {
                Some((line, next)) => {
                    let crlf = line.ends_with('\r');
                    line_ending.get_or_insert(if crlf {
                        LineEnding::Crlf
                    } else {
                        LineEnding::Lf
                    });
                    (line.strip_suffix('\r').unwrap_or(line), next)
                }
                None => (rest, ""),
            };
            if raw.len() >= limits.max_lines {
                return Err(ParseError::new(
                    raw.len() + 1,
                    ParseErrorKind::TooManyLines {
                        limit: limits.max_lines,
                    },
                ));
            }
            raw.push(line);
            rest = next;
        }
        while raw.last().is_some_and(|l| l.is_empty()) {
            raw.pop();
        }
        if raw.is_empty() {
            return Err(ParseError::new(0, ParseErrorKind::Empty));
        }

        let mut sdp = SessionDescription {
            lines: Vec::new(),
            media: Vec::new(),
            line_ending: line_ending.unwrap_or_default(),
        };
        let (mut seen_o, mut seen_s, mut seen_t, mut seen_c) = (false, false, false, false);
        for (index, text) in raw.iter().enumerate() {
            let n = index + 1;
            let err = |kind| ParseError::new(n, kind);
            if text.len() > limits.max_line_len {
                return Err(err(ParseErrorKind::LineTooLong {
                    limit: limits.max_line_len,
                }));
            }
            if text.contains(['\0', '\r']) {
                return Err(err(ParseErrorKind::InvalidCharacter));
            }
            let (kind, value) = match text.as_bytes() {
                [] => return Err(err(ParseErrorKind::EmptyLine)),
                [k, b'=', ..] if k.is_ascii_alphabetic() => {
                    (*k as char, text.get(2..).unwrap_or_default())
                }
                _ => return Err(err(ParseErrorKind::MalformedLine)),
            };
            if index == 0 {
                if kind != 'v' {
                    return Err(err(ParseErrorKind::MissingVersion));
                }
                if value != "0" {
                    return Err(err(ParseErrorKind::UnsupportedVersion));
                }
                sdp.lines.push(Line::other('v', value));
                continue;
            }
            let in_media = !sdp.media.is_empty();
            if in_media && matches!(kind, 'v' | 'o' | 's' | 't') {
                return Err(err(ParseErrorKind::NotAllowedInMedia(kind)));
            }
            let once = |seen: &mut bool| {
                if std::mem::replace(seen, true) {
                    Err(err(ParseErrorKind::Duplicate(kind)))
                } else {
                    Ok(())
                }
            };
            let line = match kind {
                'v' => return Err(err(ParseErrorKind::Duplicate('v'))),
                'o' => {
                    once(&mut seen_o)?;
                    Line::Origin(Origin::parse(value).map_err(|e| err(e.into()))?)
                }
                's' => {
                    once(&mut seen_s)?;
                    Line::other('s', value)
                }
                't' => {
                    seen_t = true;
                    check_timing(value).map_err(|e| err(e.into()))?;
                    Line::other('t', value)
                }
                'c' => {
                    if !in_media {
                        once(&mut seen_c)?;
                    }
                    Line::Connection(Connection::parse(value).map_err(|e| err(e.into()))?)
                }
                'm' => {
                    let media = Media::parse(value).map_err(|e| err(e.into()))?;
                    sdp.media.push(MediaDescription::new(media));
                    continue;
                }
                'a' => Line::Attribute(Attribute::parse(value)),
                _ => Line::other(kind, value),
            };
            match sdp.media.last_mut() {
                Some(m) => m.lines.push(line),
                None => sdp.lines.push(line),
            }
        }
        for (seen, kind) in [(seen_o, 'o'), (seen_s, 's'), (seen_t, 't')] {
            if !seen {
                return Err(ParseError::new(0, ParseErrorKind::Missing(kind)));
            }
        }
        Ok(sdp)
    }

    /// Checks the value of every known attribute (rtpmap, fmtp, rtcp,
    /// candidate, fingerprint, setup, ssrc, extmap, crypto, ptime, flags
    /// without values...). Reports the first invalid one with its line number
    /// in the written form.
    pub fn validate(&self) -> Result<(), ParseError> {
        let mut n = 0;
        let mut check = |line: &Line| {
            n += 1;
            match line {
                Line::Attribute(a) => attrs::check(a).map_err(|e| ParseError::new(n, e.into())),
                _ => Ok(()),
            }
        };
        for line in &self.lines {
            check(line)?;
        }
        for m in &self.media {
            check(&Line::other('m', ""))?;
            for line in &m.lines {
                check(line)?;
            }
        }
        Ok(())
    }

    /// Writes every line, each followed by `ending`.
    pub fn write_to(&self, out: &mut impl fmt::Write, ending: LineEnding) -> fmt::Result {
        let eol = ending.as_str();
        for line in &self.lines {
            write!(out, "{line}{eol}")?;
        }
        for m in &self.media {
            write!(out, "m={}{eol}", m.media)?;
            for line in &m.lines {
                write!(out, "{line}{eol}")?;
            }
        }
        Ok(())
    }

    /// The description as text with the given line ending.
    pub fn to_string_with(&self, ending: LineEnding) -> String {
        let mut s = String::new();
        // Writing into a String cannot fail.
        let _ = self.write_to(&mut s, ending);
        s
    }

    /// The description as bytes with CRLF line endings, ready for a SIP body.
    pub fn to_crlf_bytes(&self) -> Vec<u8> {
        self.to_string_with(LineEnding::Crlf).into_bytes()
    }

    /// `o=`.
    pub fn origin(&self) -> Option<&Origin> {
        self.lines.iter().find_map(|l| match l {
            Line::Origin(o) => Some(o),
            _ => None,
        })
    }

    /// `o=`, for editing.
    pub fn origin_mut(&mut self) -> Option<&mut Origin> {
        self.lines.iter_mut().find_map(|l| match l {
            Line::Origin(o) => Some(o),
            _ => None,
        })
    }

    /// Replaces `o=`, or inserts it after `v=`.
    pub fn set_origin(&mut self, origin: Origin) {
        match self.origin_mut() {
            Some(o) => *o = origin,
            None => {
                let at = usize::from(self.lines.first().is_some_and(|l| l.kind() == 'v'));
                self.lines.insert(at, Line::Origin(origin));
            }
        }
    }

    /// `s=`.
    pub fn session_name(&self) -> Option<&str> {
        self.lines.iter().find_map(|l| match l {
            Line::Other { kind: 's', value } => Some(value.as_str()),
            _ => None,
        })
    }

    /// Every valid `a=group` (BUNDLE, LS, FID...).
    pub fn groups(&self) -> impl Iterator<Item = Group> + '_ {
        self.typed_attributes()
    }

    /// The first `a=group:BUNDLE`.
    pub fn bundle_group(&self) -> Option<Group> {
        self.groups().find(Group::is_bundle)
    }

    /// Whether `a=ice-lite` is present.
    pub fn ice_lite(&self) -> bool {
        self.has_attribute("ice-lite")
    }

    /// The media section with this `a=mid`.
    pub fn media_by_mid(&self, mid: &str) -> Option<&MediaDescription> {
        self.media.iter().find(|m| m.mid() == Some(mid))
    }

    /// The media section with this `a=mid`, for editing.
    pub fn media_by_mid_mut(&mut self, mid: &str) -> Option<&mut MediaDescription> {
        self.media.iter_mut().find(|m| m.mid() == Some(mid))
    }

    /// The direction of a media section: its own, else the session's, else sendrecv.
    pub fn effective_direction(&self, media: &MediaDescription) -> Direction {
        media
            .direction()
            .or_else(|| self.direction())
            .unwrap_or(Direction::SendRecv)
    }

    /// The connection of a media section: its own `c=`, else the session's.
    pub fn effective_connection<'a>(
        &'a self,
        media: &'a MediaDescription,
    ) -> Option<&'a Connection> {
        media.connection().or_else(|| self.connection())
    }

    /// `a=ice-ufrag` of a media section, else the session's.
    pub fn effective_ice_ufrag<'a>(&'a self, media: &'a MediaDescription) -> Option<&'a str> {
        media.ice_ufrag().or_else(|| self.ice_ufrag())
    }

    /// `a=ice-pwd` of a media section, else the session's.
    pub fn effective_ice_pwd<'a>(&'a self, media: &'a MediaDescription) -> Option<&'a str> {
        media.ice_pwd().or_else(|| self.ice_pwd())
    }

    /// `a=fingerprint` of a media section, else the session's.
    pub fn effective_fingerprint(&self, media: &MediaDescription) -> Option<Fingerprint> {
        media.fingerprint().or_else(|| self.fingerprint())
    }

    /// `a=setup` of a media section, else the session's.
    pub fn effective_setup(&self, media: &MediaDescription) -> Option<Setup> {
        media.setup().or_else(|| self.setup())
    }

    /// `a=extmap` of a media section, else the session's.
    pub fn effective_extmaps(&self, media: &MediaDescription) -> Vec<ExtMap> {
        let own: Vec<ExtMap> = media.extmaps().collect();
        if own.is_empty() {
            self.extmaps().collect()
        } else {
            own
        }
    }
}

/// `t=<start> <stop>`, both decimal.
fn check_timing(value: &str) -> Result<(), FieldError> {
    let mut it = value.split_ascii_whitespace();
    match (it.next(), it.next(), it.next()) {
        (Some(start), Some(stop), None) if is_digits(start) && is_digits(stop) => Ok(()),
        _ => Err(FieldError {
            kind: 't',
            reason: "expected `<start time> <stop time>`",
        }),
    }
}

impl fmt::Display for SessionDescription {
    /// Writes the description with its [`line_ending`](Self::line_ending).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_to(f, self.line_ending)
    }
}

impl FromStr for SessionDescription {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, ParseError> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n";

    fn err(input: &str) -> ParseError {
        SessionDescription::parse(input).expect_err(input)
    }

    #[test]
    fn minimal_round_trip() {
        let sdp = SessionDescription::parse(MIN).unwrap();
        assert_eq!(sdp.to_string(), MIN);
        assert_eq!(sdp.line_ending, LineEnding::Crlf);
        assert_eq!(sdp.session_name(), Some("-"));
        assert_eq!(sdp.origin().unwrap().session_version, "2");
        assert!(sdp.media.is_empty());
    }

    #[test]
    fn lf_kept_and_crlf_on_request() {
        let lf = MIN.replace("\r\n", "\n");
        let sdp = SessionDescription::parse(&lf).unwrap();
        assert_eq!(sdp.line_ending, LineEnding::Lf);
        assert_eq!(sdp.to_string(), lf);
        assert_eq!(sdp.to_string_with(LineEnding::Crlf), MIN);
        assert_eq!(sdp.to_crlf_bytes(), MIN.as_bytes());
    }

    #[test]
    fn unterminated_last_line_and_trailing_blank_lines() {
        let sdp = SessionDescription::parse(MIN.trim_end()).unwrap();
        assert_eq!(sdp.to_string(), MIN);
        let sdp = SessionDescription::parse(&format!("{MIN}\r\n\r\n")).unwrap();
        assert_eq!(sdp.to_string(), MIN);
    }

    #[test]
    fn unknown_lines_and_attributes_preserved() {
        let text = format!(
            "{MIN}y=anything at all\r\nb=AS:64\r\na=x-custom:1 2 3\r\na=flag\r\nm=audio 4000 RTP/AVP 0\r\nq=\r\na=x-y:\r\n"
        );
        let sdp = SessionDescription::parse(&text).unwrap();
        assert_eq!(sdp.to_string(), text);
        assert_eq!(sdp.attribute_value("x-custom"), Some("1 2 3"));
        assert!(sdp.has_attribute("flag"));
        assert_eq!(sdp.media[0].lines[0], Line::other('q', ""));
    }

    #[test]
    fn builds_a_description() {
        let ip = "127.0.0.2".parse().unwrap();
        let mut sdp = SessionDescription::new(Origin::new("callgate", 42, 1, ip));
        sdp.set_connection(Connection::new(ip));
        let mut m = MediaDescription::new(Media::new(
            crate::MediaKind::Audio,
            30000,
            crate::PROTO_RTP_AVP,
            &["0", "101"],
        ));
        m.add_attribute(crate::RtpMap::for_static_payload_type(0).unwrap());
        m.add_attribute(Attribute::new("rtpmap", "101 telephone-event/8000"));
        m.add_attribute(Attribute::new("fmtp", "101 0-16"));
        m.add_attribute(Attribute::new("ptime", "20"));
        m.set_direction(Direction::SendRecv);
        sdp.media.push(m);
        let text = sdp.to_string();
        assert_eq!(
            text,
            "v=0\r\no=callgate 42 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\n\
             m=audio 30000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
             a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n"
        );
        let back = SessionDescription::parse(&text).unwrap();
        assert_eq!(back, sdp);
        back.validate().unwrap();
    }

    #[test]
    fn session_level_edits_and_fallbacks() {
        let text = format!(
            "{MIN}c=IN IP4 127.0.0.3\r\na=ice-lite\r\na=ice-ufrag:s\r\na=ice-pwd:spwd\r\n\
             a=fingerprint:sha-256 AB:CD\r\na=setup:passive\r\na=recvonly\r\na=extmap:1 urn:x\r\n\
             a=group:LS 1\r\na=group:BUNDLE a b\r\n\
             m=audio 4000 RTP/AVP 0\r\na=mid:a\r\n\
             m=video 4002 RTP/AVP 31\r\nc=IN IP4 127.0.0.4\r\na=mid:b\r\na=ice-ufrag:m\r\na=ice-pwd:mpwd\r\n\
             a=fingerprint:sha-1 EF\r\na=setup:active\r\na=inactive\r\na=extmap:2 urn:y\r\n"
        );
        let mut sdp = SessionDescription::parse(&text).unwrap();
        assert!(sdp.ice_lite());
        assert_eq!(sdp.groups().count(), 2);
        assert_eq!(sdp.bundle_group().unwrap().mids, ["a", "b"]);
        let (a, b) = (&sdp.media[0], &sdp.media[1]);
        assert_eq!(sdp.effective_connection(a).unwrap().address, "127.0.0.3");
        assert_eq!(sdp.effective_connection(b).unwrap().address, "127.0.0.4");
        assert_eq!(sdp.effective_ice_ufrag(a), Some("s"));
        assert_eq!(sdp.effective_ice_ufrag(b), Some("m"));
        assert_eq!(sdp.effective_ice_pwd(a), Some("spwd"));
        assert_eq!(sdp.effective_ice_pwd(b), Some("mpwd"));
        assert_eq!(sdp.effective_fingerprint(a).unwrap().hash, "sha-256");
        assert_eq!(sdp.effective_fingerprint(b).unwrap().hash, "sha-1");
        assert_eq!(sdp.effective_setup(a), Some(Setup::Passive));
        assert_eq!(sdp.effective_setup(b), Some(Setup::Active));
        assert_eq!(sdp.effective_direction(a), Direction::RecvOnly);
        assert_eq!(sdp.effective_direction(b), Direction::Inactive);
        assert_eq!(sdp.effective_extmaps(a)[0].uri, "urn:x");
        assert_eq!(sdp.effective_extmaps(b)[0].uri, "urn:y");
        assert_eq!(sdp.media_by_mid("b").unwrap().port(), 4002);
        assert!(sdp.media_by_mid("zz").is_none());
        sdp.media_by_mid_mut("a").unwrap().set_port(5000);
        assert_eq!(sdp.media[0].port(), 5000);

        sdp.set_connection(Connection::new("127.0.0.9".parse().unwrap()));
        sdp.remove_attributes("ice-lite");
        sdp.set_direction(Direction::SendRecv);
        let o = sdp.origin_mut().unwrap();
        o.set_ip("127.0.0.9".parse().unwrap());
        o.bump_version();
        let out = sdp.to_string();
        assert!(out.starts_with(
            "v=0\r\no=- 1 3 IN IP4 127.0.0.9\r\ns=-\r\nt=0 0\r\nc=IN IP4 127.0.0.9\r\na=ice-ufrag:s\r\n"
        ));
        assert!(out.contains("a=setup:passive\r\na=sendrecv\r\na=extmap"));
        assert!(out.contains("m=audio 5000 RTP/AVP 0\r\n"));
    }

    #[test]
    fn default_direction_is_sendrecv() {
        let sdp = SessionDescription::parse(&format!("{MIN}m=audio 1 RTP/AVP 0\r\n")).unwrap();
        assert_eq!(sdp.effective_direction(&sdp.media[0]), Direction::SendRecv);
        assert_eq!(sdp.effective_connection(&sdp.media[0]), None);
    }

    #[test]
    fn set_origin_inserts_after_version() {
        let mut sdp = SessionDescription::parse(MIN).unwrap();
        sdp.lines.retain(|l| l.kind() != 'o');
        assert!(sdp.origin().is_none());
        sdp.set_origin(Origin::new("x", 5, 6, "::1".parse().unwrap()));
        assert_eq!(sdp.lines[1].to_string(), "o=x 5 6 IN IP6 ::1");
        sdp.set_origin(Origin::new("y", 5, 7, "::1".parse().unwrap()));
        assert_eq!(sdp.origin().unwrap().username, "y");
        assert_eq!(sdp.lines.len(), 4);
    }

    #[test]
    fn session_connection_goes_before_timing() {
        let mut sdp = SessionDescription::parse(MIN).unwrap();
        sdp.set_connection(Connection::new("127.0.0.1".parse().unwrap()));
        assert_eq!(sdp.lines[3].kind(), 'c');
        assert_eq!(sdp.lines[4].kind(), 't');
    }

    #[test]
    fn errors_name_the_line() {
        let cases: &[(&str, usize, ParseErrorKind)] = &[
            ("", 0, ParseErrorKind::Empty),
            ("\r\n\r\n", 0, ParseErrorKind::Empty),
            ("o=- 1 2 IN IP4 h\r\n", 1, ParseErrorKind::MissingVersion),
            ("v=1\r\n", 1, ParseErrorKind::UnsupportedVersion),
            ("v=0\r\nv=0\r\n", 2, ParseErrorKind::Duplicate('v')),
            ("v=0\r\nbad\r\n", 2, ParseErrorKind::MalformedLine),
            ("v=0\r\n1=x\r\n", 2, ParseErrorKind::MalformedLine),
            ("v=0\r\na\r\n", 2, ParseErrorKind::MalformedLine),
            ("v=0\r\n\r\ns=-\r\n", 2, ParseErrorKind::EmptyLine),
            ("v=0\r\ns=a\rb\r\n", 2, ParseErrorKind::InvalidCharacter),
            ("v=0\r\ns=a\0\r\n", 2, ParseErrorKind::InvalidCharacter),
            ("v=0\r\ns=-\r\nt=0 0\r\n", 0, ParseErrorKind::Missing('o')),
            (
                "v=0\r\no=- 1 2 IN IP4 h\r\nt=0 0\r\n",
                0,
                ParseErrorKind::Missing('s'),
            ),
            (
                "v=0\r\no=- 1 2 IN IP4 h\r\ns=-\r\n",
                0,
                ParseErrorKind::Missing('t'),
            ),
            (
                "v=0\r\no=- 1 2 IN IP4 h\r\no=- 1 2 IN IP4 h\r\n",
                3,
                ParseErrorKind::Duplicate('o'),
            ),
            ("v=0\r\ns=-\r\ns=-\r\n", 3, ParseErrorKind::Duplicate('s')),
            (
                "v=0\r\nc=IN IP4 a\r\nc=IN IP4 b\r\n",
                3,
                ParseErrorKind::Duplicate('c'),
            ),
        ];
        for (input, line, kind) in cases {
            let e = err(input);
            assert_eq!((e.line, &e.kind), (*line, kind), "{input:?}");
        }
        let field = |input: &str, line: usize, kind: char| {
            let e = err(input);
            assert_eq!(e.line, line, "{input:?}");
            assert!(
                matches!(e.kind, ParseErrorKind::Field(FieldError { kind: k, .. }) if k == kind),
                "{e}"
            );
        };
        field("v=0\r\no=- 1 2 IN IP4\r\n", 2, 'o');
        field("v=0\r\nc=IN\r\n", 2, 'c');
        field("v=0\r\nt=0\r\n", 2, 't');
        field("v=0\r\nt=now later\r\n", 2, 't');
        field(&format!("{MIN}m=audio 99999 RTP/AVP 0\r\n"), 5, 'm');
        let e = err(&format!("{MIN}m=audio 1 RTP/AVP 0\r\ns=-\r\n"));
        assert_eq!(
            (e.line, e.kind),
            (6, ParseErrorKind::NotAllowedInMedia('s'))
        );
        let e = err(&format!("{MIN}m=audio 1 RTP/AVP 0\r\no=- 1 2 IN IP4 h\r\n"));
        assert_eq!(
            (e.line, e.kind),
            (6, ParseErrorKind::NotAllowedInMedia('o'))
        );
    }

    #[test]
    fn error_messages_are_readable() {
        assert_eq!(
            err("v=1").to_string(),
            "SDP line 1: unsupported protocol version (only v=0 exists)"
        );
        assert_eq!(
            err("v=0\nc=IN").to_string(),
            "SDP line 2: invalid c= line: expected `<nettype> <addrtype> <address>`"
        );
    }

    #[test]
    fn media_level_connections_may_repeat() {
        let text = format!(
            "{MIN}m=audio 1 RTP/AVP 0\r\nc=IN IP4 224.2.1.1/127\r\nc=IN IP4 224.2.1.2/127\r\n"
        );
        let sdp = SessionDescription::parse(&text).unwrap();
        assert_eq!(sdp.to_string(), text);
    }

    #[test]
    fn limits() {
        let small = Limits {
            max_size: 1000,
            max_lines: 5,
            max_line_len: 40,
        };
        let e = SessionDescription::parse_with_limits(&"a".repeat(1001), &small).unwrap_err();
        assert_eq!(
            (e.line, e.kind),
            (0, ParseErrorKind::TooLarge { limit: 1000 })
        );
        let six = format!("{MIN}a=1\r\na=2\r\n");
        let e = SessionDescription::parse_with_limits(&six, &small).unwrap_err();
        assert_eq!(
            (e.line, e.kind),
            (6, ParseErrorKind::TooManyLines { limit: 5 })
        );
        let long = format!("{MIN}a={}\r\n", "x".repeat(39));
        let e = SessionDescription::parse_with_limits(&long, &small).unwrap_err();
        assert_eq!(
            (e.line, e.kind),
            (5, ParseErrorKind::LineTooLong { limit: 40 })
        );
        let ok = format!("{MIN}a={}\r\n", "x".repeat(38));
        SessionDescription::parse_with_limits(&ok, &small).unwrap();
        let e = SessionDescription::from_bytes_with_limits(&[b'v'; 1001], &small).unwrap_err();
        assert_eq!(e.kind, ParseErrorKind::TooLarge { limit: 1000 });
    }

    #[test]
    fn bytes_must_be_utf8() {
        let mut bytes = MIN.as_bytes().to_vec();
        bytes.extend_from_slice(b"a=caf\xe9\r\n");
        let e = SessionDescription::from_bytes(&bytes).unwrap_err();
        assert_eq!((e.line, e.kind), (5, ParseErrorKind::InvalidUtf8));
        let ok =
            SessionDescription::from_bytes("v=0\no=- 1 2 IN IP4 h\ns=café\nt=0 0\n".as_bytes())
                .unwrap();
        assert_eq!(ok.session_name(), Some("café"));
    }

    #[test]
    fn validate_reports_attribute_line() {
        let text = format!(
            "{MIN}a=group:BUNDLE 0\r\nm=audio 1 RTP/AVP 0\r\na=mid:0\r\na=rtpmap:0 PCMU\r\n"
        );
        let sdp = SessionDescription::parse(&text).unwrap();
        let e = sdp.validate().unwrap_err();
        assert_eq!(e.line, 8);
        assert!(matches!(e.kind, ParseErrorKind::Attribute(ref a) if a.attribute == "rtpmap"));
        assert_eq!(
            e.to_string(),
            "SDP line 8: invalid a=rtpmap value: missing clock rate"
        );
        let sdp = SessionDescription::parse(&format!("{MIN}a=rtcp-mux:yes\r\n")).unwrap();
        assert_eq!(sdp.validate().unwrap_err().line, 5);
    }

    #[test]
    fn from_str_parses() {
        let sdp: SessionDescription = MIN.parse().unwrap();
        assert_eq!(sdp.to_string(), MIN);
    }
}
