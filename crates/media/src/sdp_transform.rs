//! SDP rewriting between a browser leg (ICE-lite, DTLS-SRTP, BUNDLE,
//! `rtcp-mux`) and a trunk leg (plain RTP/AVP), with the relay's address in
//! both.
//!
//! - [`webrtc_to_plain`]: a browser offer or answer → what the trunk sees.
//! - [`plain_to_webrtc`]: a trunk offer or answer → what the browser sees;
//!   when answering, it echoes the browser's mids and BUNDLE and renumbers
//!   payload types to the browser's.
//! - [`payload_type_map`]: how to rewrite the RTP payload type when the two
//!   sides number a codec differently.

use std::net::IpAddr;

use sdp::{
    Attribute, MediaDescription, MediaKind, RtpMap, SessionDescription, Setup, PROTO_RTP_AVP,
    PROTO_WEBRTC,
};

/// Codecs offered to a trunk when the caller has no preference: what every
/// PSTN gateway speaks, plus wideband G.722 and RFC 4733 DTMF.
pub const DEFAULT_TRUNK_CODECS: &[&str] = &["PCMU", "PCMA", "G722", "telephone-event"];

/// Attributes that describe the browser transport (ICE, DTLS, BUNDLE,
/// `rtcp-mux`, SSRC signalling, header extensions, feedback, data channels)
/// or the plain transport (`rtcp`, SDES `crypto`). The relay terminates each
/// transport, so none crosses from one side to the other.
const TRANSPORT_ATTRIBUTES: &[&str] = &[
    "ice-ufrag",
    "ice-pwd",
    "ice-options",
    "ice-lite",
    "ice-pacing",
    "ice-mismatch",
    "remote-candidates",
    "candidate",
    "end-of-candidates",
    "fingerprint",
    "setup",
    "connection",
    "tls-id",
    "identity",
    "rtcp",
    "rtcp-mux",
    "rtcp-mux-only",
    "rtcp-rsize",
    "rtcp-xr",
    "rtcp-fb",
    "mid",
    "group",
    "bundle-only",
    "msid",
    "msid-semantic",
    "ssrc",
    "ssrc-group",
    "extmap",
    "extmap-allow-mixed",
    "rid",
    "simulcast",
    "sctp-port",
    "sctpmap",
    "max-message-size",
    "crypto",
];

/// Whether an attribute belongs to one side's transport and is dropped when
/// crossing the relay.
pub fn is_transport_attribute(name: &str) -> bool {
    TRANSPORT_ATTRIBUTES
        .iter()
        .any(|a| a.eq_ignore_ascii_case(name))
}

/// Why a description could not be rewritten.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransformError {
    /// `ports` must have one entry per media section.
    #[error("{given} ports for {media} media sections")]
    PortCount {
        /// Ports given.
        given: usize,
        /// Media sections.
        media: usize,
    },
    /// An answer must have as many media sections as the offer.
    #[error("the answer has {answer} media sections, the offer {offer}")]
    MediaCount {
        /// Sections in the browser's offer.
        offer: usize,
        /// Sections in the trunk's answer.
        answer: usize,
    },
    /// An answer's media section is of another kind than the offer's.
    #[error("media section {index} is {answer}, the offer has {offer}")]
    KindMismatch {
        /// Section index.
        index: usize,
        /// Kind in the offer.
        offer: String,
        /// Kind in the answer.
        answer: String,
    },
    /// The fingerprint is not 32 hex bytes.
    #[error("fingerprint is not a SHA-256 digest in hex")]
    BadFingerprint,
}

/// Rewrites a browser description for a trunk: `RTP/AVP`, `o=`/`c=` on the
/// relay, transport attributes removed, `ports[i]` on the i-th media section
/// and `a=rtcp:<port+1>` (the trunk sends RTCP to the next port; saying so
/// helps the few that do not assume it).
///
/// Audio sections keep, in the browser's order, the formats whose codec
/// matches an entry of `codecs` (`NAME` or `NAME/RATE`, case-insensitive;
/// see [`DEFAULT_TRUNK_CODECS`]), and `telephone-event`/`CN` only at a clock
/// rate of a kept voice codec (Chromium also offers telephone-event/48000
/// for Opus). Audio sections left without a voice codec, sections the
/// browser rejected and every non-audio section (video, data channels) get
/// port 0, RFC 3264's rejection. `ptime`, `maxptime`, direction, `rtpmap`,
/// `fmtp` and unknown attributes stay.
pub fn webrtc_to_plain(
    sdp: &SessionDescription,
    relay: IpAddr,
    ports: &[u16],
    codecs: &[&str],
) -> Result<SessionDescription, TransformError> {
    if ports.len() != sdp.media.len() {
        return Err(TransformError::PortCount {
            given: ports.len(),
            media: sdp.media.len(),
        });
    }
    let mut out = sdp.clone();
    out.retain_attributes(|a| !is_transport_attribute(&a.name));
    set_relay_address(&mut out, relay);
    for (m, &port) in out.media.iter_mut().zip(ports) {
        let rejected = is_rejected(m);
        m.media.proto = PROTO_RTP_AVP.to_owned();
        m.remove_connection();
        m.retain_attributes(|a| !is_transport_attribute(&a.name));
        let accepted =
            !rejected && port != 0 && *m.kind() == MediaKind::Audio && filter_codecs(m, codecs);
        if !accepted {
            reject(m, None);
            continue;
        }
        m.set_port(port);
        if let Some(rtcp) = port.checked_add(1) {
            m.add_attribute(Attribute::new("rtcp", rtcp.to_string()));
        }
    }
    Ok(out)
}

/// The relay's browser-side transport for [`plain_to_webrtc`].
#[derive(Debug, Clone, Copy)]
pub struct WebRtcTransport<'a> {
    /// Our `a=ice-ufrag`.
    pub ice_ufrag: &'a str,
    /// Our `a=ice-pwd`.
    pub ice_pwd: &'a str,
    /// SHA-256 of our DTLS certificate in hex, with or without `:`.
    pub fingerprint_sha256: &'a str,
}

/// Which side of the offer/answer exchange with the browser we are.
#[derive(Debug, Clone, Copy)]
pub enum WebRtcRole<'a> {
    /// We offer to the browser (a call from the trunk).
    Offer,
    /// We answer the browser's offer.
    Answer {
        /// The browser's offer, whose mids, BUNDLE, setup and payload types
        /// the answer follows.
        browser_offer: &'a SessionDescription,
    },
}

/// Rewrites a trunk description for a browser: `UDP/TLS/RTP/SAVPF`,
/// session-level `a=ice-lite`, and on every accepted media section our ICE
/// credentials, `a=fingerprint:sha-256`, `a=setup`, `a=mid`, `a=rtcp-mux`,
/// one host candidate on `relay`:`port` and `a=end-of-candidates`. All
/// sections share the one port (BUNDLE, or a single audio section).
///
/// Offering: `a=setup:actpass`, mids `0`, `1`... and a BUNDLE group of the
/// accepted ones. Answering: `a=setup` per [`answer_setup`], the browser's
/// mids, a BUNDLE group of the accepted sections the browser bundled (if
/// it did), payload types renumbered to the browser's and codecs it did not
/// offer dropped. Rejected sections keep port 0 and their mid.
pub fn plain_to_webrtc(
    sdp: &SessionDescription,
    relay: IpAddr,
    port: u16,
    transport: &WebRtcTransport<'_>,
    role: WebRtcRole<'_>,
) -> Result<SessionDescription, TransformError> {
    let fingerprint = normalize_fingerprint(transport.fingerprint_sha256)?;
    let offer = match role {
        WebRtcRole::Offer => None,
        WebRtcRole::Answer { browser_offer } => Some(browser_offer),
    };
    if let Some(offer) = offer {
        if offer.media.len() != sdp.media.len() {
            return Err(TransformError::MediaCount {
                offer: offer.media.len(),
                answer: sdp.media.len(),
            });
        }
        for (index, (o, a)) in offer.media.iter().zip(&sdp.media).enumerate() {
            if o.kind() != a.kind() {
                return Err(TransformError::KindMismatch {
                    index,
                    offer: o.kind().to_string(),
                    answer: a.kind().to_string(),
                });
            }
        }
    }
    let offered_bundle = offer.and_then(|o| o.bundle_group());
    let bundle = offer.is_none() || offered_bundle.is_some();

    let mut out = sdp.clone();
    out.retain_attributes(|a| !is_transport_attribute(&a.name));
    set_relay_address(&mut out, relay);

    let mut bundled: Vec<String> = Vec::new();
    for (i, m) in out.media.iter_mut().enumerate() {
        let offered = offer.map(|o| &o.media[i]);
        let mid = match offered {
            Some(om) => om.mid().map(str::to_owned),
            None => Some(i.to_string()),
        };
        let rejected = m.port() == 0 || offered.is_some_and(is_rejected);
        m.media.proto = PROTO_WEBRTC.to_owned();
        m.remove_connection();
        m.retain_attributes(|a| !is_transport_attribute(&a.name));
        let mut rejected = rejected;
        if let (false, Some(om)) = (rejected, offered) {
            align_payload_types(m, om);
            if m.formats().is_empty() {
                // No codec in common: reject with a format the browser knows.
                m.media.formats = om.formats().iter().take(1).cloned().collect();
                rejected = true;
            }
        }
        if rejected {
            reject(m, mid.as_deref());
            continue;
        }
        m.set_port(port);
        let setup = match offered {
            None => Setup::ActPass,
            Some(om) => answer_setup(offer.and_then(|o| o.effective_setup(om))),
        };
        if let Some(mid) = &mid {
            m.add_attribute(Attribute::new("mid", mid.clone()));
            let in_offered_group = offered_bundle
                .as_ref()
                .is_none_or(|g| g.mids.iter().any(|x| x == mid));
            if bundle && in_offered_group {
                bundled.push(mid.clone());
            }
        }
        m.add_attribute(Attribute::new("ice-ufrag", transport.ice_ufrag));
        m.add_attribute(Attribute::new("ice-pwd", transport.ice_pwd));
        m.add_attribute(Attribute::new(
            "fingerprint",
            format!("sha-256 {fingerprint}"),
        ));
        m.add_attribute(setup);
        m.add_attribute(Attribute::flag("rtcp-mux"));
        m.add_attribute(Attribute::new(
            "candidate",
            format!("1 1 udp 2130706431 {relay} {port} typ host"),
        ));
        m.add_attribute(Attribute::flag("end-of-candidates"));
    }
    if !bundled.is_empty() {
        out.add_attribute(Attribute::new(
            "group",
            format!("BUNDLE {}", bundled.join(" ")),
        ));
    }
    out.add_attribute(Attribute::flag("ice-lite"));
    Ok(out)
}

/// Our `a=setup` in an answer to the browser (RFC 5763 §5): passive unless
/// the browser insists on passive itself. Being the DTLS server suits a
/// lite agent: the browser has the nominated pair and sends the first
/// flight as soon as ICE connects. A missing attribute means active
/// (RFC 4145 §4).
pub fn answer_setup(offered: Option<Setup>) -> Setup {
    match offered {
        Some(Setup::Passive) => Setup::Active,
        Some(Setup::HoldConn) => Setup::HoldConn,
        Some(Setup::Active | Setup::ActPass) | None => Setup::Passive,
    }
}

/// Payload types of the codecs both sides of the relay negotiated, per
/// direction: a packet from side A carrying `a` goes to side B with `b`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PayloadTypeMap {
    /// `(A's payload type, B's payload type)` for each shared codec.
    pub a_to_b: Vec<(u8, u8)>,
    /// `(B's payload type, A's payload type)` for each shared codec.
    pub b_to_a: Vec<(u8, u8)>,
}

impl PayloadTypeMap {
    /// B's payload type for A's, `None` for a codec B did not negotiate.
    pub fn a_to_b(&self, pt: u8) -> Option<u8> {
        lookup(&self.a_to_b, pt)
    }

    /// A's payload type for B's.
    pub fn b_to_a(&self, pt: u8) -> Option<u8> {
        lookup(&self.b_to_a, pt)
    }

    /// Whether no payload type needs rewriting.
    pub fn is_identity(&self) -> bool {
        self.a_to_b.iter().chain(&self.b_to_a).all(|(x, y)| x == y)
    }
}

fn lookup(map: &[(u8, u8)], pt: u8) -> Option<u8> {
    map.iter().find(|(from, _)| *from == pt).map(|(_, to)| *to)
}

/// Matches the codecs of two media sections by encoding name, clock rate
/// and channels (e.g. telephone-event/8000 as 101 on a trunk and 126 in
/// Chromium). Each payload type maps to the first match on the other side.
pub fn payload_type_map(a: &MediaDescription, b: &MediaDescription) -> PayloadTypeMap {
    let codecs = |m: &MediaDescription| -> Vec<(u8, RtpMap)> {
        m.payload_types()
            .filter_map(|pt| m.codec(pt).map(|c| (pt, c)))
            .collect()
    };
    let (ca, cb) = (codecs(a), codecs(b));
    let one_way = |from: &[(u8, RtpMap)], to: &[(u8, RtpMap)]| -> Vec<(u8, u8)> {
        from.iter()
            .filter_map(|(pt, c)| {
                to.iter()
                    .find(|(_, d)| same_codec(c, d))
                    .map(|(q, _)| (*pt, *q))
            })
            .collect()
    };
    PayloadTypeMap {
        a_to_b: one_way(&ca, &cb),
        b_to_a: one_way(&cb, &ca),
    }
}

fn same_codec(a: &RtpMap, b: &RtpMap) -> bool {
    a.encoding.eq_ignore_ascii_case(&b.encoding)
        && a.clock_rate == b.clock_rate
        && a.channels.unwrap_or(1) == b.channels.unwrap_or(1)
}

/// Whether the peer rejected a section: port 0 without `a=bundle-only`
/// (RFC 8843 §6: port 0 with bundle-only is a live bundled section).
fn is_rejected(m: &MediaDescription) -> bool {
    m.port() == 0 && !m.has_attribute("bundle-only")
}

/// Port 0, one format, no attributes but the mid (JSEP keeps it).
fn reject(m: &mut MediaDescription, mid: Option<&str>) {
    m.set_port(0);
    m.media.port_count = None;
    m.media.formats.truncate(1);
    if m.media.formats.is_empty() {
        m.media.formats.push("0".to_owned());
    }
    m.lines.clear();
    if let Some(mid) = mid {
        m.add_attribute(Attribute::new("mid", mid));
    }
}

fn set_relay_address(sdp: &mut SessionDescription, relay: IpAddr) {
    sdp.set_connection_ip(relay);
    if let Some(o) = sdp.origin_mut() {
        o.set_ip(relay);
    }
}

/// DTMF and comfort noise ride along with a voice codec of the same clock.
fn is_auxiliary(c: &RtpMap) -> bool {
    c.encoding.eq_ignore_ascii_case("telephone-event") || c.encoding.eq_ignore_ascii_case("CN")
}

fn codec_allowed(c: &RtpMap, allowed: &[&str]) -> bool {
    allowed.iter().any(|entry| {
        let (name, rate) = match entry.split_once('/') {
            Some((n, r)) => (n, r.parse::<u32>().ok()),
            None => (*entry, None),
        };
        name.eq_ignore_ascii_case(&c.encoding) && rate.is_none_or(|r| r == c.clock_rate)
    })
}

/// Keeps the allowed formats; false when no voice codec is left.
fn filter_codecs(m: &mut MediaDescription, allowed: &[&str]) -> bool {
    let kept: Vec<(String, RtpMap)> = m
        .formats()
        .iter()
        .filter_map(|f| {
            let c = m.codec(f.parse().ok()?)?;
            codec_allowed(&c, allowed).then(|| (f.clone(), c))
        })
        .collect();
    let voice_rates: Vec<u32> = kept
        .iter()
        .filter(|(_, c)| !is_auxiliary(c))
        .map(|(_, c)| c.clock_rate)
        .collect();
    if voice_rates.is_empty() {
        return false;
    }
    let keep: Vec<&str> = kept
        .iter()
        .filter(|(_, c)| !is_auxiliary(c) || voice_rates.contains(&c.clock_rate))
        .map(|(f, _)| f.as_str())
        .collect();
    m.retain_formats(|f| keep.contains(&f));
    true
}

/// Renumbers `m`'s payload types to those `offered` uses for the same
/// codec, dropping codecs the offer lacks (RFC 3264 §6.1: answer with the
/// offer's numbers, which is what browsers expect).
fn align_payload_types(m: &mut MediaDescription, offered: &MediaDescription) {
    let map = payload_type_map(m, offered).a_to_b;
    let mut formats: Vec<String> = Vec::new();
    for pt in m.payload_types() {
        if let Some(to) = lookup(&map, pt) {
            let to = to.to_string();
            if !formats.contains(&to) {
                formats.push(to);
            }
        }
    }
    // Drop lines of the formats that go away, then renumber the rest in
    // one pass so swapped numbers (101 ↔ 126) cannot collide.
    let old: Vec<String> = map.iter().map(|(from, _)| from.to_string()).collect();
    m.retain_formats(|f| old.iter().any(|o| o == f));
    for line in &mut m.lines {
        let sdp::Line::Attribute(Attribute {
            name,
            value: Some(v),
        }) = line
        else {
            continue;
        };
        if name != "rtpmap" && name != "fmtp" {
            continue;
        }
        let (pt, rest) = v.split_once(' ').unwrap_or((v.as_str(), ""));
        if let Some(to) = pt.parse().ok().and_then(|pt| lookup(&map, pt)) {
            *v = format!("{to} {rest}");
        }
    }
    m.media.formats = formats;
}

/// `AB:CD:...` in upper case from hex with or without colons.
fn normalize_fingerprint(hex: &str) -> Result<String, TransformError> {
    let digits: Vec<u8> = hex.bytes().filter(|b| *b != b':').collect();
    if digits.len() != 64 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return Err(TransformError::BadFingerprint);
    }
    let pairs: Vec<String> = digits
        .chunks(2)
        .map(|p| String::from_utf8_lossy(p).to_ascii_uppercase())
        .collect();
    Ok(pairs.join(":"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> SessionDescription {
        let path = format!("{}/../sdp/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap();
        SessionDescription::parse(&text).unwrap()
    }

    const CHROMIUM_OFFERS: [&str; 4] = [
        "chromium-audio-balanced.sdp",
        "chromium-audio-max-bundle.sdp",
        "chromium-audio-video-balanced.sdp",
        "chromium-audio-video-max-bundle.sdp",
    ];

    const RELAY: &str = "192.0.2.10";
    const FINGERPRINT: &str = "fa2606975a0b059c8062596db97a8afa5956ff54e0c2820e7f2fe92f8c70443b";

    fn relay() -> IpAddr {
        RELAY.parse().unwrap()
    }

    fn transport() -> WebRtcTransport<'static> {
        WebRtcTransport {
            ice_ufrag: "Rlay",
            ice_pwd: "relaypassword0123456789x",
            fingerprint_sha256: FINGERPRINT,
        }
    }

    /// Writes and parses again, so what is checked is what goes on the wire.
    fn reparse(sdp: &SessionDescription) -> SessionDescription {
        let text = sdp.to_string();
        let again = SessionDescription::parse(&text).unwrap();
        again.validate().unwrap();
        assert_eq!(again.to_string(), text);
        again
    }

    fn attribute_names(sdp: &SessionDescription) -> Vec<String> {
        sdp.attributes()
            .chain(sdp.media.iter().flat_map(|m| m.attributes()))
            .map(|a| a.name.clone())
            .collect()
    }

    fn ports(sdp: &SessionDescription, first: u16) -> Vec<u16> {
        (0..sdp.media.len() as u16).map(|i| first + 2 * i).collect()
    }

    #[test]
    fn chromium_offers_to_trunk() {
        for name in CHROMIUM_OFFERS {
            let offer = fixture(name);
            let plain =
                webrtc_to_plain(&offer, relay(), &ports(&offer, 30000), DEFAULT_TRUNK_CODECS)
                    .unwrap();
            let plain = reparse(&plain);
            let text = plain.to_string();

            for attr in attribute_names(&plain) {
                assert!(
                    attr == "rtcp" || !is_transport_attribute(&attr),
                    "{name}: {attr} left"
                );
            }
            assert!(!text.contains("SAVPF"), "{name}");
            assert_eq!(plain.origin().unwrap().ip(), Some(relay()));
            assert_eq!(plain.connection().unwrap().ip(), Some(relay()));

            let audio = &plain.media[0];
            assert_eq!(audio.proto(), PROTO_RTP_AVP);
            assert_eq!(audio.port(), 30000);
            assert_eq!(audio.formats(), ["9", "0", "8", "126"], "{name}");
            assert_eq!(audio.rtpmap(126).unwrap().clock_rate, 8000);
            assert!(audio.rtpmap(111).is_none() && audio.rtpmap(110).is_none());
            assert_eq!(audio.attribute_value("rtcp"), Some("30001"));
            assert_eq!(audio.direction(), Some(sdp::Direction::SendRecv));
            assert!(audio.connection().is_none());
            assert!(audio.fmtp(111).is_none());

            if let Some(video) = plain.media.get(1) {
                assert_eq!(*video.kind(), MediaKind::Video);
                assert_eq!(video.port(), 0);
                assert_eq!(video.proto(), PROTO_RTP_AVP);
                assert_eq!(video.formats().len(), 1);
                assert!(video.lines.is_empty());
            }
        }
    }

    #[test]
    fn chromium_answer_to_trunk() {
        let answer = fixture("chromium-answer-pstn.sdp");
        let plain =
            reparse(&webrtc_to_plain(&answer, relay(), &[40000], DEFAULT_TRUNK_CODECS).unwrap());
        let audio = &plain.media[0];
        assert_eq!(audio.formats(), ["0", "8", "101"]);
        assert_eq!(audio.port(), 40000);
        assert!(!plain.to_string().contains("ssrc"));
    }

    #[test]
    fn codec_choice() {
        let offer = fixture("chromium-audio-balanced.sdp");
        let opus = webrtc_to_plain(&offer, relay(), &[1000], &["opus", "telephone-event"]).unwrap();
        assert_eq!(opus.media[0].formats(), ["111", "110"]);
        let rated =
            webrtc_to_plain(&offer, relay(), &[1000], &["PCMA", "telephone-event/8000"]).unwrap();
        assert_eq!(rated.media[0].formats(), ["8", "126"]);
        // Only DTMF allowed: no voice codec, so the stream is rejected.
        let none = webrtc_to_plain(&offer, relay(), &[1000], &["telephone-event"]).unwrap();
        assert_eq!(none.media[0].port(), 0);
        assert_eq!(none.media[0].formats().len(), 1);
    }

    #[test]
    fn port_count_must_match() {
        let offer = fixture("chromium-audio-video-balanced.sdp");
        assert_eq!(
            webrtc_to_plain(&offer, relay(), &[1000], DEFAULT_TRUNK_CODECS).unwrap_err(),
            TransformError::PortCount { given: 1, media: 2 }
        );
    }

    fn check_webrtc_section(m: &MediaDescription, port: u16, setup: Setup) {
        assert_eq!(m.proto(), PROTO_WEBRTC);
        assert_eq!(m.port(), port);
        assert_eq!(m.ice_ufrag(), Some("Rlay"));
        assert_eq!(m.ice_pwd(), Some("relaypassword0123456789x"));
        let fp = m.fingerprint().unwrap();
        assert!(fp.is_hash("sha-256"));
        assert_eq!(fp.value, normalize_fingerprint(FINGERPRINT).unwrap());
        assert_eq!(fp.bytes().unwrap().len(), 32);
        assert_eq!(m.setup(), Some(setup));
        assert!(m.rtcp_mux());
        assert!(m.rtcp().is_none());
        let c: Vec<_> = m.candidates().collect();
        assert_eq!(c.len(), 1);
        assert_eq!(
            m.attribute_value("candidate"),
            Some(format!("1 1 udp 2130706431 {RELAY} {port} typ host").as_str())
        );
        assert!(m.end_of_candidates());
    }

    #[test]
    fn trunk_answer_to_chromium_offer() {
        for name in [
            "chromium-audio-balanced.sdp",
            "chromium-audio-max-bundle.sdp",
        ] {
            let offer = fixture(name);
            let trunk = fixture("pstn-gateway.sdp");
            let answer = plain_to_webrtc(
                &trunk,
                relay(),
                50000,
                &transport(),
                WebRtcRole::Answer {
                    browser_offer: &offer,
                },
            )
            .unwrap();
            let answer = reparse(&answer);
            assert!(answer.ice_lite());
            assert_eq!(answer.bundle_group().unwrap().mids, ["0"]);
            assert_eq!(answer.origin().unwrap().ip(), Some(relay()));
            assert_eq!(answer.connection().unwrap().ip(), Some(relay()));
            let audio = &answer.media[0];
            check_webrtc_section(audio, 50000, Setup::Passive);
            assert_eq!(audio.mid(), Some("0"));
            // The trunk's 101 becomes the browser's 126, with its fmtp.
            assert_eq!(audio.formats(), ["0", "8", "126"]);
            assert_eq!(audio.rtpmap(126).unwrap().encoding, "telephone-event");
            assert!(audio.rtpmap(101).is_none());
            assert_eq!(audio.fmtp(126).unwrap().params, "0-16");
            assert_eq!(audio.ptime(), Some(20));
            assert_eq!(audio.direction(), Some(sdp::Direction::SendRecv));

            // The relay rewrites 101 ↔ 126 between the legs.
            let map = payload_type_map(&trunk.media[0], audio);
            assert_eq!(map.a_to_b(101), Some(126));
            assert_eq!(map.b_to_a(126), Some(101));
            assert_eq!(map.a_to_b(0), Some(0));
            assert_eq!(map.a_to_b(9), None);
            assert!(!map.is_identity());
        }
    }

    /// Browser audio+video offer → trunk (video rejected) → the trunk's
    /// answer → browser answer: mids echoed, video rejected with its mid,
    /// BUNDLE only over what was accepted.
    #[test]
    fn audio_video_round_trip_echoes_mids_and_bundle() {
        for name in [
            "chromium-audio-video-balanced.sdp",
            "chromium-audio-video-max-bundle.sdp",
        ] {
            let offer = fixture(name);
            let to_trunk =
                webrtc_to_plain(&offer, relay(), &[30000, 30002], DEFAULT_TRUNK_CODECS).unwrap();
            let mut trunk_answer = to_trunk.clone();
            trunk_answer.media[0].retain_formats(|f| f == "0" || f == "126");
            let answer = plain_to_webrtc(
                &trunk_answer,
                relay(),
                50000,
                &transport(),
                WebRtcRole::Answer {
                    browser_offer: &offer,
                },
            )
            .unwrap();
            let answer = reparse(&answer);
            assert_eq!(answer.media.len(), 2);
            assert_eq!(answer.bundle_group().unwrap().mids, ["0"], "{name}");
            let audio = &answer.media[0];
            check_webrtc_section(audio, 50000, Setup::Passive);
            assert_eq!(audio.mid(), Some("0"));
            assert_eq!(audio.formats(), ["0", "126"]);
            let video = &answer.media[1];
            assert_eq!(video.port(), 0);
            assert_eq!(video.mid(), Some("1"));
            assert_eq!(video.proto(), PROTO_WEBRTC);
            assert_eq!(video.formats(), ["96"]);
            assert!(payload_type_map(&trunk_answer.media[0], audio).is_identity());
        }
    }

    #[test]
    fn trunk_offer_to_browser() {
        let trunk = fixture("pstn-gateway.sdp");
        let offer = reparse(
            &plain_to_webrtc(&trunk, relay(), 50000, &transport(), WebRtcRole::Offer).unwrap(),
        );
        assert!(offer.ice_lite());
        assert_eq!(offer.bundle_group().unwrap().mids, ["0"]);
        let audio = &offer.media[0];
        check_webrtc_section(audio, 50000, Setup::ActPass);
        assert_eq!(audio.mid(), Some("0"));
        assert_eq!(audio.formats(), ["0", "8", "101"]);
        assert_eq!(audio.ptime(), Some(20));
        assert_eq!(offer.session_name(), Some("Sangoma Media Gateway"));

        // The browser's answer to it maps straight back for the trunk.
        let browser = fixture("chromium-answer-pstn.sdp");
        let plain = webrtc_to_plain(&browser, relay(), &[40000], DEFAULT_TRUNK_CODECS).unwrap();
        assert!(payload_type_map(&trunk.media[0], &plain.media[0]).is_identity());
    }

    #[test]
    fn answer_setup_roles() {
        assert_eq!(answer_setup(Some(Setup::ActPass)), Setup::Passive);
        assert_eq!(answer_setup(Some(Setup::Active)), Setup::Passive);
        assert_eq!(answer_setup(None), Setup::Passive);
        assert_eq!(answer_setup(Some(Setup::Passive)), Setup::Active);

        let mut offer = fixture("chromium-audio-balanced.sdp");
        offer.media[0].set_attribute(Setup::Passive);
        let answer = plain_to_webrtc(
            &fixture("pstn-gateway.sdp"),
            relay(),
            50000,
            &transport(),
            WebRtcRole::Answer {
                browser_offer: &offer,
            },
        )
        .unwrap();
        assert_eq!(answer.media[0].setup(), Some(Setup::Active));
    }

    #[test]
    fn answer_errors() {
        let trunk = fixture("pstn-gateway.sdp");
        let av = fixture("chromium-audio-video-balanced.sdp");
        let answer = WebRtcRole::Answer { browser_offer: &av };
        assert_eq!(
            plain_to_webrtc(&trunk, relay(), 1, &transport(), answer).unwrap_err(),
            TransformError::MediaCount {
                offer: 2,
                answer: 1
            }
        );
        let bad = WebRtcTransport {
            fingerprint_sha256: "AB:CD",
            ..transport()
        };
        assert_eq!(
            plain_to_webrtc(&trunk, relay(), 1, &bad, WebRtcRole::Offer).unwrap_err(),
            TransformError::BadFingerprint
        );
    }

    #[test]
    fn trunk_codecs_the_browser_did_not_offer_are_dropped() {
        let offer = fixture("chromium-audio-balanced.sdp");
        let mut trunk = fixture("pstn-gateway.sdp");
        trunk.media[0].media.formats = vec!["18".into(), "8".into(), "101".into()];
        let answer = plain_to_webrtc(
            &trunk,
            relay(),
            50000,
            &transport(),
            WebRtcRole::Answer {
                browser_offer: &offer,
            },
        )
        .unwrap();
        assert_eq!(answer.media[0].formats(), ["8", "126"]);
        assert!(answer.media[0].rtpmap(0).is_none());

        // Nothing in common: rejected, with one of the browser's formats.
        trunk.media[0].media.formats = vec!["18".into()];
        let answer = plain_to_webrtc(
            &trunk,
            relay(),
            50000,
            &transport(),
            WebRtcRole::Answer {
                browser_offer: &offer,
            },
        )
        .unwrap();
        let audio = &reparse(&answer).media[0];
        assert_eq!(audio.port(), 0);
        assert_eq!(audio.formats(), ["111"]);
        assert_eq!(audio.mid(), Some("0"));
        assert!(answer.bundle_group().is_none());
    }

    #[test]
    fn fingerprint_forms() {
        let colons = normalize_fingerprint(
            "FA:26:06:97:5A:0B:05:9C:80:62:59:6D:B9:7A:8A:FA:59:56:FF:54:E0:C2:82:0E:7F:2F:E9:2F:8C:70:44:3B",
        )
        .unwrap();
        assert_eq!(colons, normalize_fingerprint(FINGERPRINT).unwrap());
        assert!(normalize_fingerprint(&"g".repeat(64)).is_err());
    }
}
