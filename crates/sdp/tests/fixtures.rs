//! Real SDP (Chromium offers and answer, a PSTN gateway offer) through the
//! parser, writer and typed accessors. See tests/data/README.md.

use std::fs;
use std::path::{Path, PathBuf};

use sdp::{
    CandidateType, Connection, Direction, LineEnding, MediaKind, Origin, SessionDescription, Setup,
    PROTO_RTP_AVP, PROTO_WEBRTC,
};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

fn read(name: &str) -> String {
    let path = data_dir().join(name);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn load(name: &str) -> SessionDescription {
    let sdp = SessionDescription::parse(&read(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    sdp.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
    sdp
}

fn fixtures() -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(data_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".sdp"))
        .collect();
    names.sort();
    names
}

const CHROMIUM_OFFERS: [&str; 4] = [
    "chromium-audio-balanced.sdp",
    "chromium-audio-max-bundle.sdp",
    "chromium-audio-video-balanced.sdp",
    "chromium-audio-video-max-bundle.sdp",
];

#[test]
fn all_fixtures_are_present() {
    let names = fixtures();
    for n in CHROMIUM_OFFERS
        .iter()
        .chain(&["chromium-answer-pstn.sdp", "pstn-gateway.sdp"])
    {
        assert!(names.iter().any(|x| x == n), "missing fixture {n}");
    }
}

#[test]
fn round_trip_is_byte_identical() {
    for name in fixtures() {
        let text = read(&name);
        assert!(text.ends_with("\r\n"), "{name} is CRLF-terminated");
        let sdp = SessionDescription::parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(sdp.line_ending, LineEnding::Crlf);
        assert_eq!(sdp.to_string(), text, "{name}");
        assert_eq!(sdp.to_crlf_bytes(), text.as_bytes(), "{name}");
        let from_bytes = SessionDescription::from_bytes(text.as_bytes()).unwrap();
        assert_eq!(from_bytes, sdp, "{name}");
    }
}

#[test]
fn round_trip_keeps_bare_lf() {
    for name in fixtures() {
        let text = read(&name).replace("\r\n", "\n");
        let sdp = SessionDescription::parse(&text).unwrap();
        assert_eq!(sdp.line_ending, LineEnding::Lf);
        assert_eq!(sdp.to_string(), text, "{name}");
        assert_eq!(sdp.to_string_with(LineEnding::Crlf), read(&name), "{name}");
    }
}

#[test]
fn all_fixtures_validate() {
    for name in fixtures() {
        load(&name);
    }
}

#[test]
fn chromium_offers_are_webrtc_shaped() {
    for name in CHROMIUM_OFFERS {
        let sdp = load(name);
        let origin = sdp.origin().unwrap();
        assert_eq!(origin.username, "-", "{name}");
        assert_eq!(origin.addr_type, "IP4", "{name}");
        assert_eq!(sdp.session_name(), Some("-"));
        assert!(!sdp.ice_lite(), "{name}");
        assert!(sdp.has_attribute("extmap-allow-mixed"), "{name}");
        assert!(
            sdp.attribute_value("msid-semantic").is_some(),
            "{name}: unknown attribute kept"
        );

        let audio = &sdp.media[0];
        assert_eq!(audio.kind(), &MediaKind::Audio, "{name}");
        assert_eq!(audio.mid(), Some("0"), "{name}");

        for m in &sdp.media {
            assert_eq!(m.proto(), PROTO_WEBRTC, "{name}");
            assert!(m.rtcp_mux(), "{name}");
            assert!(m.has_attribute("rtcp-rsize"), "{name}");
            assert_eq!(m.setup(), Some(Setup::ActPass), "{name}");
            let fp = m.fingerprint().unwrap();
            assert!(fp.is_hash("sha-256"), "{name}");
            assert_eq!(fp.bytes().unwrap().len(), 32, "{name}");
            assert!(m.ice_ufrag().is_some_and(|u| u.len() >= 4), "{name}");
            assert!(m.ice_pwd().is_some_and(|p| p.len() >= 22), "{name}");
            assert_eq!(m.ice_options().collect::<Vec<_>>(), ["trickle"], "{name}");
            assert_eq!(sdp.effective_direction(m), Direction::SendRecv, "{name}");
            let rtcp = m.rtcp().unwrap();
            assert_eq!(rtcp.port, 9, "{name}");
            assert_eq!(rtcp.connection.unwrap().address, "0.0.0.0", "{name}");
            assert!(m.msid().is_some_and(|msid| msid.track.is_some()), "{name}");
            assert!(m.ssrcs().any(|s| s.attribute == "cname"), "{name}");
            assert_eq!(m.cryptos().count(), 0, "{name}: DTLS-SRTP, no SDES");
            assert!(
                m.extmaps()
                    .any(|e| e.uri == "urn:ietf:params:rtp-hdrext:sdes:mid"),
                "{name}"
            );
            // Every payload type has an rtpmap.
            for pt in m.payload_types() {
                assert!(m.rtpmap(pt).is_some(), "{name}: rtpmap for {pt}");
            }
        }

        let opus = audio.rtpmap(111).unwrap();
        assert_eq!(
            (opus.encoding.as_str(), opus.clock_rate, opus.channels),
            ("opus", 48000, Some(2))
        );
        assert_eq!(
            audio.fmtp(111).unwrap().parameter("useinbandfec"),
            Some("1")
        );
        assert_eq!(audio.codec(0).unwrap().encoding, "PCMU");
        assert_eq!(audio.codec(8).unwrap().encoding, "PCMA");
        assert!(audio
            .rtpmaps()
            .any(|r| r.encoding == "telephone-event" && r.clock_rate == 8000));
        assert!(audio
            .extmaps()
            .any(|e| e.id == 1 && e.uri == "urn:ietf:params:rtp-hdrext:ssrc-audio-level"));

        // Captured in a loopback-only namespace: a UDP host candidate on the
        // m-line port, and a TCP active one on the discard port.
        let cands: Vec<_> = audio.candidates().collect();
        assert_eq!(cands.len(), 2, "{name}");
        let udp = cands.iter().find(|c| c.is_udp()).unwrap();
        assert_eq!(udp.component, 1);
        assert_eq!(udp.typ, CandidateType::Host);
        assert_eq!(udp.address, "127.0.0.1");
        assert_eq!(udp.port, audio.port());
        assert!(udp.priority > 0);
        assert_eq!(udp.extension("generation"), Some("0"));
        let tcp = cands.iter().find(|c| !c.is_udp()).unwrap();
        assert_eq!(tcp.extension("tcptype"), Some("active"));
        assert_eq!(tcp.port, 9);
        assert_eq!(
            sdp.effective_connection(audio).unwrap().ip(),
            Some("127.0.0.1".parse().unwrap())
        );
    }
}

#[test]
fn audio_only_offers() {
    for name in [
        "chromium-audio-balanced.sdp",
        "chromium-audio-max-bundle.sdp",
    ] {
        let sdp = load(name);
        assert_eq!(sdp.media.len(), 1, "{name}");
        assert_eq!(sdp.bundle_group().unwrap().mids, ["0"], "{name}");
    }
}

#[test]
fn max_bundle_offer_bundles_video_onto_audio_transport() {
    let sdp = load("chromium-audio-video-max-bundle.sdp");
    assert_eq!(sdp.media.len(), 2);
    let group = sdp.bundle_group().unwrap();
    assert_eq!(group.semantics, "BUNDLE");
    assert_eq!(group.mids, ["0", "1"]);
    let video = sdp.media_by_mid("1").unwrap();
    assert_eq!(video.kind(), &MediaKind::Video);
    // Only the first bundled m-line carries a transport.
    assert_eq!(video.port(), 9);
    assert_eq!(video.candidates().count(), 0);
    assert_eq!(video.connection().unwrap().address, "0.0.0.0");
    let audio = sdp.media_by_mid("0").unwrap();
    assert_eq!(audio.fingerprint(), video.fingerprint());
    assert_eq!(audio.ice_ufrag(), video.ice_ufrag());
}

#[test]
fn balanced_offer_gathers_per_media_line() {
    let sdp = load("chromium-audio-video-balanced.sdp");
    assert_eq!(sdp.bundle_group().unwrap().mids, ["0", "1"]);
    let video = sdp.media_by_mid("1").unwrap();
    assert_ne!(video.port(), 9);
    assert_eq!(video.candidates().count(), 2);
    assert!(video
        .candidates()
        .any(|c| c.is_udp() && c.port == video.port()));
}

#[test]
fn video_section_facts() {
    let sdp = load("chromium-audio-video-max-bundle.sdp");
    let video = &sdp.media[1];
    let vp8 = video
        .rtpmaps()
        .find(|r| r.encoding == "VP8")
        .expect("VP8 offered");
    assert_eq!(vp8.clock_rate, 90000);
    assert!(video.rtpmaps().any(|r| r.encoding == "H264"));
    // Each rtx format points at an offered payload type.
    for r in video.rtpmaps().filter(|r| r.encoding == "rtx") {
        let apt: u8 = video
            .fmtp(r.payload_type)
            .unwrap()
            .parameter("apt")
            .unwrap()
            .parse()
            .unwrap();
        assert!(video.payload_types().any(|pt| pt == apt));
    }
    assert!(video
        .rtcp_fbs()
        .any(|f| f.format == vp8.payload_type.to_string()
            && f.feedback == "nack"
            && f.param.as_deref() == Some("pli")));
    let fid = video.ssrc_groups().next().unwrap();
    assert_eq!(fid.semantics, "FID");
    assert_eq!(fid.ssrcs.len(), 2);
    for id in &fid.ssrcs {
        assert!(video.ssrcs().any(|s| s.id == *id && s.attribute == "cname"));
    }
}

#[test]
fn chromium_answer_to_pstn_style_offer() {
    let sdp = load("chromium-answer-pstn.sdp");
    assert_eq!(sdp.media.len(), 1);
    let audio = &sdp.media[0];
    assert_eq!(audio.formats(), ["0", "8", "101"]);
    assert_eq!(
        audio.setup(),
        Some(Setup::Active),
        "answers an actpass offer"
    );
    assert_eq!(audio.rtpmap(101).unwrap().encoding, "telephone-event");
    assert!(audio.rtcp_mux());
    assert_eq!(sdp.effective_direction(audio), Direction::SendRecv);
    assert!(audio.candidates().any(|c| c.address == "127.0.0.1"));
}

#[test]
fn pstn_gateway_offer() {
    let sdp = load("pstn-gateway.sdp");
    assert_eq!(sdp.origin().unwrap().username, "Sangoma");
    let c = sdp.connection().unwrap();
    assert_eq!(c.ip(), Some("127.0.0.2".parse().unwrap()));
    let audio = &sdp.media[0];
    assert_eq!(audio.port(), 10000);
    assert_eq!(audio.proto(), PROTO_RTP_AVP);
    assert_eq!(audio.payload_types().collect::<Vec<_>>(), [0, 8, 101]);
    assert_eq!(audio.rtpmap(0).unwrap().encoding, "PCMU");
    assert_eq!(audio.rtpmap(8).unwrap().encoding, "PCMA");
    assert_eq!(audio.rtpmap(101).unwrap().encoding, "telephone-event");
    assert_eq!(audio.fmtp(101).unwrap().params, "0-16");
    assert_eq!(audio.ptime(), Some(20));
    assert_eq!(audio.direction(), Some(Direction::SendRecv));
    assert!(!audio.rtcp_mux());
    assert!(audio.fingerprint().is_none());
    assert!(audio.mid().is_none());
    assert_eq!(sdp.effective_connection(audio), Some(c));
}

/// The edits the gateway makes when relaying a browser offer to a trunk.
#[test]
fn rewrite_browser_offer_for_trunk() {
    let mut sdp = load("chromium-audio-video-max-bundle.sdp");
    let relay = "127.0.0.5".parse().unwrap();
    let mut origin = Origin::new("callgate", 7, 1, relay);
    origin.bump_version();
    sdp.set_origin(origin);
    sdp.set_connection_ip(relay);
    sdp.retain_attributes(|a| a.name != "group" && a.name != "msid-semantic");
    sdp.remove_attributes("extmap-allow-mixed");
    sdp.media.retain(|m| m.kind() == &MediaKind::Audio);
    let audio = &mut sdp.media[0];
    audio.media.proto = PROTO_RTP_AVP.to_owned();
    audio.set_port(30000);
    audio.remove_connection();
    audio.retain_formats(|pt| matches!(pt, "0" | "8" | "126"));
    for name in [
        "candidate",
        "ice-ufrag",
        "ice-pwd",
        "ice-options",
        "fingerprint",
        "setup",
        "mid",
        "extmap",
        "msid",
        "ssrc",
        "rtcp-mux",
        "rtcp-rsize",
        "rtcp-xr",
        "rtcp",
    ] {
        audio.remove_attributes(name);
    }
    audio.add_attribute(sdp::Attribute::new("ptime", "20"));

    let text = sdp.to_string();
    assert_eq!(
        text,
        "v=0\r\no=callgate 7 2 IN IP4 127.0.0.5\r\ns=-\r\nc=IN IP4 127.0.0.5\r\nt=0 0\r\n\
         m=audio 30000 RTP/AVP 0 8 126\r\na=sendrecv\r\na=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:8 PCMA/8000\r\na=rtpmap:126 telephone-event/8000\r\na=ptime:20\r\n"
    );
    let again = SessionDescription::parse(&text).unwrap();
    again.validate().unwrap();
    assert_eq!(again, sdp);
}

/// The edits the gateway makes when relaying a trunk offer to a browser.
#[test]
fn rewrite_trunk_offer_for_browser() {
    let mut sdp = load("pstn-gateway.sdp");
    sdp.remove_connection();
    sdp.add_attribute(sdp::Attribute::flag("ice-lite"));
    sdp.add_attribute(sdp::Attribute::new("group", "BUNDLE 0"));
    let audio = &mut sdp.media[0];
    audio.media.proto = PROTO_WEBRTC.to_owned();
    audio.set_connection(Connection::new("127.0.0.1".parse().unwrap()));
    audio.add_attribute(sdp::Attribute::new("mid", "0"));
    audio.add_attribute(Setup::ActPass);
    audio.add_attribute(sdp::Attribute::flag("rtcp-mux"));
    let sdp_text = sdp.to_string();
    let back = SessionDescription::parse(&sdp_text).unwrap();
    back.validate().unwrap();
    let audio = &back.media[0];
    assert!(back.ice_lite());
    assert_eq!(back.bundle_group().unwrap().mids, ["0"]);
    assert_eq!(audio.mid(), Some("0"));
    assert_eq!(audio.setup(), Some(Setup::ActPass));
    assert_eq!(audio.lines[0].kind(), 'c', "c= precedes the attributes");
    assert!(!sdp_text.contains("c=IN IP4 127.0.0.2"));
}
