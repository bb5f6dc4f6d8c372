//! SDP (RFC 8866) model, sans-IO.
//!
//! [`SessionDescription::parse`] keeps every line in order — unknown line
//! types and attributes included — so writing an unmodified, well-formed
//! description reproduces the input byte for byte, with its CRLF or LF line
//! endings. Typed views of what a WebRTC ⇄ RTP gateway needs (ICE, DTLS
//! fingerprint and setup, BUNDLE and mid, rtpmap/fmtp, ssrc, extmap,
//! direction, SDES crypto...) are parsed on demand from the stored
//! attributes, and setters make the usual edits (connection, origin, port,
//! direction, attribute add/remove, format filtering).
//!
//! ```
//! use sdp::{Direction, SessionDescription};
//!
//! let offer = "v=0\r\no=- 1 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\n\
//!              m=audio 4000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n";
//! let mut sdp = SessionDescription::parse(offer)?;
//! assert_eq!(sdp.to_string(), offer);
//!
//! let audio = &mut sdp.media[0];
//! assert_eq!(audio.codec(8).unwrap().encoding, "PCMA");
//! audio.retain_formats(|pt| pt != "8");
//! audio.set_direction(Direction::SendOnly);
//! sdp.set_connection_ip("127.0.0.1".parse().unwrap());
//! # Ok::<(), sdp::ParseError>(())
//! ```
//!
//! # Limits
//!
//! Parsing never panics and is bounded by [`Limits`]: by default at most
//! 65 535 bytes, 4 096 lines and 4 096 bytes per line. Exceeding one is a
//! [`ParseError`] naming the limit.
//!
//! # Strictness
//!
//! [`SessionDescription::parse`] checks the structure (`v=0` first, one `o=`
//! and `s=`, at least one `t=`, valid `o=`/`c=`/`t=`/`m=`) and accepts any
//! attribute, since a single odd attribute should not fail a call. Typed
//! accessors skip malformed attribute values; [`SessionDescription::validate`]
//! reports the first one with its line number.

#![warn(missing_docs)]

mod attrs;
mod error;
mod line;
mod media;
mod section;
mod session;

pub use attrs::{
    AttributeValue, Candidate, CandidateType, Crypto, Direction, ExtMap, Fingerprint, Fmtp, Group,
    Msid, Rtcp, RtcpFb, RtpMap, Setup, Ssrc, SsrcGroup,
};
pub use error::{AttributeError, FieldError, ParseError, ParseErrorKind};
pub use line::{Attribute, Connection, Line, Origin};
pub use media::{Media, MediaDescription, MediaKind, PROTO_RTP_AVP, PROTO_WEBRTC};
pub use session::{Limits, LineEnding, SessionDescription};
