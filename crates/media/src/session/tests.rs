//! End-to-end tests of the sans-IO relay: a simulated browser (the
//! crate's own DTLS leg as client, STUN checks from the stun writer, SRTP
//! contexts from the handshake) and simulated plain RTP peers.

use super::*;
use crate::srtp::SrtpContext;
use crate::stun::{attr, Class, Message, MessageWriter, METHOD_BINDING};

const RELAY_IP: &str = "192.0.2.10";

fn relay_with(strict_source: bool) -> Relay {
    let mut config = RelayConfig::new(RELAY_IP.parse().unwrap());
    config.ports = 30000..=30099;
    config.media_timeout = Duration::from_secs(30);
    config.strict_source = strict_source;
    Relay::new(config, DtlsCertificate::process().unwrap().clone())
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn fixture(name: &str) -> String {
    let path = format!("{}/../sdp/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path).unwrap()
}

/// A datagram the relay sent.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sent {
    from_port: u16,
    to: SocketAddr,
    data: Vec<u8>,
}

fn collect(outputs: Outputs<'_>) -> Vec<Sent> {
    outputs
        .iter()
        .map(|d| Sent {
            from_port: d.local_port,
            to: d.to,
            data: d.data.to_vec(),
        })
        .collect()
}

fn deliver(relay: &mut Relay, port: u16, from: SocketAddr, data: &[u8], now: Instant) -> Vec<Sent> {
    collect(relay.handle_packet(port, from, data, now))
}

fn rtp(pt: u8, seq: u16, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, pt];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// A receiver report with one block.
fn receiver_report(sender: u32, about: u32, fraction: u8, jitter: u32) -> Vec<u8> {
    let mut p = vec![0x81, 201, 0, 7];
    p.extend_from_slice(&sender.to_be_bytes());
    p.extend_from_slice(&about.to_be_bytes());
    p.extend_from_slice(&[fraction, 0, 0, 3]);
    p.extend_from_slice(&100u32.to_be_bytes());
    p.extend_from_slice(&jitter.to_be_bytes());
    p.extend_from_slice(&[0; 8]);
    p
}

fn with_fingerprint(sdp: &str, fp: Fingerprint) -> String {
    sdp.lines()
        .map(|l| {
            if l.starts_with("a=fingerprint:") {
                format!("a=fingerprint:sha-256 {fp}")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\r\n")
        + "\r\n"
}

fn sdp(text: &str) -> SessionDescription {
    SessionDescription::parse(text).unwrap()
}

/// The browser end: its address, DTLS client and, once connected, SRTP.
struct Browser {
    addr: SocketAddr,
    ufrag: String,
    relay_port: u16,
    relay_ufrag: String,
    relay_pwd: String,
    dtls: DtlsLeg,
}

impl Browser {
    /// From the browser's own ufrag and certificate and the relay's SDP to it.
    fn new(
        addr: SocketAddr,
        ufrag: &str,
        cert: &DtlsCertificate,
        role: DtlsRole,
        relay_sdp: &SessionDescription,
        now: Instant,
    ) -> Self {
        let m = &relay_sdp.media[0];
        let relay_fp = Fingerprint::parse(&m.fingerprint().unwrap().value).unwrap();
        Self {
            addr,
            ufrag: ufrag.to_owned(),
            relay_port: m.port(),
            relay_ufrag: m.ice_ufrag().unwrap().to_owned(),
            relay_pwd: m.ice_pwd().unwrap().to_owned(),
            dtls: DtlsLeg::new(role, cert, Some(relay_fp), now).unwrap(),
        }
    }

    fn binding_request(&self, nominate: bool) -> Vec<u8> {
        let mut buf = [0u8; 256];
        let mut w = MessageWriter::new(&mut buf, Class::Request, METHOD_BINDING, &[7; 12]).unwrap();
        let user = format!("{}:{}", self.relay_ufrag, self.ufrag);
        w.attribute(attr::USERNAME, user.as_bytes()).unwrap();
        w.attribute(attr::PRIORITY, &1_845_501_695u32.to_be_bytes())
            .unwrap();
        w.attribute(attr::ICE_CONTROLLING, &42u64.to_be_bytes())
            .unwrap();
        if nominate {
            w.attribute(attr::USE_CANDIDATE, &[]).unwrap();
        }
        w.message_integrity(self.relay_pwd.as_bytes()).unwrap();
        let len = w.fingerprint().unwrap();
        buf[..len].to_vec()
    }

    /// ICE check, then the DTLS handshake through the relay.
    fn connect(&mut self, relay: &mut Relay, now: Instant) {
        let check = self.binding_request(true);
        let out = deliver(relay, self.relay_port, self.addr, &check, now);
        assert_eq!(out.len(), 1, "one STUN response");
        assert_eq!(out[0].to, self.addr);
        let response = Message::parse(&out[0].data).unwrap();
        assert_eq!(response.class(), Class::Success);
        assert_eq!(response.xor_mapped_address(), Some(self.addr));
        assert!(response.integrity_valid(self.relay_pwd.as_bytes()));

        let mut inbound: Vec<Vec<u8>> = out[1..].iter().map(|s| s.data.clone()).collect();
        for _ in 0..32 {
            for d in inbound.drain(..) {
                let _ = self.dtls.handle_datagram(now, &d);
            }
            let mut moved = false;
            while let Some(d) = self.dtls.poll_transmit() {
                moved = true;
                for s in deliver(relay, self.relay_port, self.addr, &d, now) {
                    assert_eq!((s.from_port, s.to), (self.relay_port, self.addr));
                    inbound.push(s.data);
                }
            }
            if !moved && inbound.is_empty() {
                break;
            }
        }
        assert!(self.dtls.is_connected(), "{:?}", self.dtls.state());
    }

    fn contexts(&mut self) -> (&mut SrtpContext, &mut SrtpContext) {
        self.dtls.srtp_contexts().unwrap()
    }

    fn protect_rtp(&mut self, packet: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        self.contexts().0.protect_rtp(packet, &mut out).unwrap();
        out
    }

    fn protect_rtcp(&mut self, packet: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        self.contexts().0.protect_rtcp(packet, &mut out).unwrap();
        out
    }

    fn unprotect_rtp(&mut self, packet: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        self.contexts().1.unprotect_rtp(packet, &mut out).unwrap();
        out
    }

    fn unprotect_rtcp(&mut self, packet: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        self.contexts().1.unprotect_rtcp(packet, &mut out).unwrap();
        out
    }
}

const TRUNK: &str = "127.0.0.2:10000";
const TRUNK_RTCP: &str = "127.0.0.2:10001";
const BROWSER: &str = "198.51.100.7:50000";

/// Chromium offers (telephone-event 126), the trunk answers (101).
fn browser_calls_trunk(relay: &mut Relay, now: Instant) -> (Browser, u16) {
    let cert = DtlsCertificate::generate().unwrap();
    let offer = with_fingerprint(&fixture("chromium-audio-balanced.sdp"), cert.fingerprint());
    let to_trunk = sdp(&relay.offer("call", Side::A, &offer, now).unwrap());
    let audio = &to_trunk.media[0];
    assert_eq!(audio.proto(), "RTP/AVP");
    assert_eq!(audio.formats(), ["9", "0", "8", "126"]);
    let trunk_port = audio.port();
    assert_eq!(trunk_port % 2, 0);
    assert_eq!(audio.rtcp().unwrap().port, trunk_port + 1);
    assert_eq!(
        to_trunk.connection().unwrap().ip(),
        Some(RELAY_IP.parse().unwrap())
    );

    let to_browser = sdp(&relay
        .answer("call", Side::B, &fixture("pstn-gateway.sdp"), now)
        .unwrap());
    let audio = &to_browser.media[0];
    assert_eq!(audio.proto(), "UDP/TLS/RTP/SAVPF");
    assert_eq!(audio.formats(), ["0", "8", "126"]);
    assert_eq!(audio.setup(), Some(Setup::Passive));
    assert!(to_browser.ice_lite());
    let browser = Browser::new(
        addr(BROWSER),
        "wCLA",
        &cert,
        DtlsRole::Client,
        &to_browser,
        now,
    );
    (browser, trunk_port)
}

#[test]
fn browser_to_trunk_media_both_ways_with_dtmf_remapping() {
    let mut relay = relay_with(false);
    let now = Instant::now();
    let (mut browser, trunk_port) = browser_calls_trunk(&mut relay, now);
    let browser_port = browser.relay_port;
    // No media before ICE and DTLS: nowhere to send it.
    let early = deliver(
        &mut relay,
        trunk_port,
        addr(TRUNK),
        &rtp(0, 1, 7, b"x"),
        now,
    );
    assert!(early.is_empty());

    browser.connect(&mut relay, now);
    let stats = relay.stats("call").unwrap();
    assert!(stats.legs[0].dtls_connected);
    assert_eq!(stats.legs[0].remote, Some(addr(BROWSER)));

    // Trunk → browser: PCMU keeps 0, telephone-event 101 becomes 126.
    for (seq, pt_in, pt_out, payload) in [
        (2u16, 0u8, 0u8, &b"pcmu frame"[..]),
        (3, 101, 126, &[1, 0x8a, 0, 160][..]),
    ] {
        let packet = rtp(pt_in, seq, 0x1111, payload);
        let out = deliver(&mut relay, trunk_port, addr(TRUNK), &packet, now);
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].from_port, out[0].to), (browser_port, addr(BROWSER)));
        assert_ne!(&out[0].data[12..], payload, "encrypted");
        let clear = browser.unprotect_rtp(&out[0].data);
        assert_eq!(clear, rtp(pt_out, seq, 0x1111, payload));
    }

    // Browser → trunk: 126 becomes 101, 0 stays.
    for (seq, pt_in, pt_out, payload) in [
        (10u16, 126u8, 101u8, &[5, 0x0a, 0, 80][..]),
        (11, 0, 0, &b"browser voice"[..]),
    ] {
        let packet = rtp(pt_in, seq, 0x2222, payload);
        let srtp = browser.protect_rtp(&packet);
        let out = deliver(&mut relay, browser_port, addr(BROWSER), &srtp, now);
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].from_port, out[0].to), (trunk_port, addr(TRUNK)));
        assert_eq!(out[0].data, rtp(pt_out, seq, 0x2222, payload));
    }

    // RTCP: the trunk's RR on port+1 reaches the browser as SRTCP...
    let rr = receiver_report(0x1111, 0x2222, 26, 40);
    let out = deliver(&mut relay, trunk_port + 1, addr(TRUNK_RTCP), &rr, now);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].to, addr(BROWSER));
    assert_eq!(browser.unprotect_rtcp(&out[0].data), rr);
    // ... and the browser's SRTCP reaches the trunk's RTCP port in clear.
    let rr = receiver_report(0x2222, 0x1111, 3, 12);
    let srtcp = browser.protect_rtcp(&rr);
    let out = deliver(&mut relay, browser_port, addr(BROWSER), &srtcp, now);
    assert_eq!(
        out,
        [Sent {
            from_port: trunk_port + 1,
            to: addr(TRUNK_RTCP),
            data: rr
        }]
    );

    // A forged SRTP packet is dropped.
    let mut forged = browser.protect_rtp(&rtp(0, 12, 0x2222, b"x"));
    let last = forged.len() - 1;
    forged[last] ^= 1;
    assert!(deliver(&mut relay, browser_port, addr(BROWSER), &forged, now).is_empty());

    let stats = relay.stats("call").unwrap();
    let (b, t) = (&stats.legs[0], &stats.legs[1]);
    assert_eq!((b.kind, t.kind), (LegKind::Browser, LegKind::Plain));
    assert_eq!((b.packets_in, b.packets_out), (3, 3));
    // The trunk's packet before DTLS counts in, and as dropped for want
    // of a route to the browser, like the forged one.
    assert_eq!((t.packets_in, t.packets_out), (4, 3));
    assert_eq!(b.dropped, 2);
    assert_eq!(b.peer_report.unwrap().jitter, 12);
    assert_eq!(t.peer_report.unwrap().fraction_lost, 26);
    assert_eq!(t.peer_report.unwrap().jitter, 40);
    assert_eq!(t.last_packet, Some(now));
    assert_eq!(t.local_ports, [trunk_port, trunk_port + 1]);
}

/// The trunk calls the browser; Chromium answers `active`, so the relay's
/// DTLS server leg, made with the offer, completes once the answer gives
/// the fingerprint.
#[test]
fn trunk_to_browser_with_relay_offering() {
    let mut relay = relay_with(false);
    let now = Instant::now();
    let to_browser = sdp(&relay
        .offer("in", Side::A, &fixture("pstn-gateway.sdp"), now)
        .unwrap());
    assert_eq!(to_browser.media[0].setup(), Some(Setup::ActPass));
    assert_eq!(to_browser.media[0].formats(), ["0", "8", "101"]);

    let cert = DtlsCertificate::generate().unwrap();
    let answer = with_fingerprint(&fixture("chromium-answer-pstn.sdp"), cert.fingerprint());
    let to_trunk = sdp(&relay.answer("in", Side::B, &answer, now).unwrap());
    let trunk_port = to_trunk.media[0].port();
    assert_eq!(to_trunk.media[0].proto(), "RTP/AVP");
    assert_eq!(to_trunk.media[0].formats(), ["0", "8", "101"]);

    let mut browser = Browser::new(
        addr(BROWSER),
        "FDC6",
        &cert,
        DtlsRole::Client,
        &to_browser,
        now,
    );
    browser.connect(&mut relay, now);
    let out = deliver(
        &mut relay,
        trunk_port,
        addr(TRUNK),
        &rtp(8, 1, 9, b"alaw"),
        now,
    );
    assert_eq!(out.len(), 1);
    assert_eq!(browser.unprotect_rtp(&out[0].data), rtp(8, 1, 9, b"alaw"));
    let srtp = browser.protect_rtp(&rtp(101, 1, 10, b"dtmf"));
    let out = deliver(&mut relay, browser.relay_port, addr(BROWSER), &srtp, now);
    assert_eq!(out[0].data, rtp(101, 1, 10, b"dtmf"));
    assert_eq!(out[0].to, addr(TRUNK));
}

#[test]
fn unauthenticated_sources_cannot_reach_a_browser_leg() {
    let mut relay = relay_with(false);
    let now = Instant::now();
    let (mut browser, _) = browser_calls_trunk(&mut relay, now);
    browser.connect(&mut relay, now);
    let port = browser.relay_port;
    let srtp = browser.protect_rtp(&rtp(0, 1, 0x2222, b"voice"));
    // The right keys from an address ICE did not select: dropped.
    let stranger = addr("203.0.113.9:4000");
    assert!(deliver(&mut relay, port, stranger, &srtp, now).is_empty());
    // A check with a wrong ufrag gets a 401, not a selection.
    browser.ufrag = "nope".into();
    let out = deliver(
        &mut relay,
        port,
        stranger,
        &browser.binding_request(true),
        now,
    );
    assert_eq!(
        Message::parse(&out[0].data).unwrap().error_code(),
        Some(401)
    );
    assert_eq!(
        relay.stats("call").unwrap().legs[0].remote,
        Some(addr(BROWSER))
    );
}

const PLAIN_A: &str = "v=0\r\no=a 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
m=audio 20000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n";
const PLAIN_B: &str = "v=0\r\no=b 1 1 IN IP4 10.0.0.2\r\ns=-\r\nc=IN IP4 10.0.0.2\r\nt=0 0\r\n\
m=audio 22000 RTP/AVP 0 126\r\na=rtpmap:126 telephone-event/8000\r\n";

/// A plain ↔ plain call; returns the relay's ports for A and for B.
fn plain_call(relay: &mut Relay, now: Instant) -> (u16, u16) {
    let options = OfferOptions {
        peer: Some(LegKind::Plain),
    };
    let to_b = sdp(&relay
        .offer_with("pp", Side::A, PLAIN_A, options, now)
        .unwrap());
    let to_a = sdp(&relay.answer("pp", Side::B, PLAIN_B, now).unwrap());
    for s in [&to_a, &to_b] {
        assert_eq!(
            s.connection().unwrap().ip(),
            Some(RELAY_IP.parse().unwrap())
        );
        assert_eq!(s.origin().unwrap().ip(), Some(RELAY_IP.parse().unwrap()));
    }
    assert_eq!(to_b.media[0].formats(), ["0", "101"]);
    (to_a.media[0].port(), to_b.media[0].port())
}

#[test]
fn plain_legs_latch_to_the_first_source() {
    let mut relay = relay_with(false);
    let now = Instant::now();
    let (port_a, port_b) = plain_call(&mut relay, now);
    assert_ne!(port_a, port_b);

    // A is behind NAT: it sends from elsewhere than its SDP says.
    let nat = addr("203.0.113.5:41000");
    let out = deliver(&mut relay, port_a, nat, &rtp(101, 1, 1, b"dtmf"), now);
    // B has sent nothing: its SDP address, with B's DTMF number.
    assert_eq!(
        out,
        [Sent {
            from_port: port_b,
            to: addr("10.0.0.2:22000"),
            data: rtp(126, 1, 1, b"dtmf")
        }]
    );
    // B's media goes back to where A's came from, renumbered.
    let out = deliver(
        &mut relay,
        port_b,
        addr("10.0.0.2:22000"),
        &rtp(126, 1, 2, b"d"),
        now,
    );
    assert_eq!((out[0].from_port, out[0].to), (port_a, nat));
    assert_eq!(out[0].data, rtp(101, 1, 2, b"d"));

    // Once latched, another source is dropped.
    let stranger = addr("198.51.100.66:5000");
    assert!(deliver(&mut relay, port_a, stranger, &rtp(0, 2, 1, b"x"), now).is_empty());
    // RTCP latches on its own port.
    let rr = receiver_report(1, 2, 0, 5);
    let out = deliver(&mut relay, port_a + 1, addr("203.0.113.5:41001"), &rr, now);
    assert_eq!(
        (out[0].from_port, out[0].to),
        (port_b + 1, addr("10.0.0.2:22001"))
    );
    // STUN, DTLS and RTP on the RTCP port are not media.
    assert!(deliver(&mut relay, port_a + 1, nat, &rtp(0, 3, 1, b"x"), now).is_empty());

    let stats = relay.stats("pp").unwrap();
    assert_eq!(stats.legs[0].remote, Some(nat));
    assert_eq!(stats.legs[0].packets_in, 2);
    assert_eq!(stats.legs[0].dropped, 2);
    assert_eq!(stats.legs[1].packets_out, 2);
}

#[test]
fn strict_source_drops_strangers() {
    let mut relay = relay_with(true);
    let now = Instant::now();
    let (port_a, port_b) = plain_call(&mut relay, now);
    let nat = addr("203.0.113.5:41000");
    assert!(deliver(&mut relay, port_a, nat, &rtp(0, 1, 1, b"x"), now).is_empty());
    let out = deliver(
        &mut relay,
        port_a,
        addr("10.0.0.1:20000"),
        &rtp(0, 2, 1, b"y"),
        now,
    );
    assert_eq!(
        (out[0].from_port, out[0].to),
        (port_b, addr("10.0.0.2:22000"))
    );
    assert_eq!(relay.stats("pp").unwrap().legs[0].dropped, 1);
}

#[test]
fn inactivity_is_reported_once() {
    let mut relay = relay_with(false);
    let t0 = Instant::now();
    let (port_a, _) = plain_call(&mut relay, t0);
    let timeout = Duration::from_secs(30);
    assert_eq!(relay.poll_timeout(), Some(t0 + timeout));
    assert!(relay.handle_timeout(t0 + timeout / 2).is_empty());
    assert_eq!(relay.poll_event(), None);

    // Media moves the deadline.
    let t1 = t0 + Duration::from_secs(20);
    deliver(
        &mut relay,
        port_a,
        addr("10.0.0.1:20000"),
        &rtp(0, 1, 1, b"x"),
        t1,
    );
    assert_eq!(relay.poll_timeout(), Some(t1 + timeout));
    relay.handle_timeout(t0 + timeout + Duration::from_secs(1));
    assert_eq!(relay.poll_event(), None);

    relay.handle_timeout(t1 + timeout);
    assert_eq!(relay.poll_event(), Some(RelayEvent::Timeout("pp".into())));
    relay.handle_timeout(t1 + timeout * 2);
    assert_eq!(relay.poll_event(), None);
    assert_eq!(relay.poll_timeout(), None);
}

#[test]
fn delete_frees_ports() {
    let mut relay = relay_with(false);
    let now = Instant::now();
    let (port_a, port_b) = plain_call(&mut relay, now);
    assert_eq!(relay.ports_in_use(), 4);
    let opened: Vec<PortChange> = std::iter::from_fn(|| relay.poll_port_change()).collect();
    assert_eq!(
        opened,
        [port_a, port_a + 1, port_b, port_b + 1].map(PortChange::Opened)
    );
    assert!(relay.delete("pp"));
    assert!(!relay.delete("pp"));
    assert_eq!(relay.ports_in_use(), 0);
    assert_eq!(relay.session_count(), 0);
    let closed = std::iter::from_fn(|| relay.poll_port_change()).count();
    assert_eq!(closed, 4);
    assert!(deliver(
        &mut relay,
        port_a,
        addr("10.0.0.1:20000"),
        &rtp(0, 1, 1, b"x"),
        now
    )
    .is_empty());
    assert!(relay.stats("pp").is_none());
}

#[test]
fn browser_offer_rejects_video_and_frees_its_ports() {
    let mut relay = relay_with(false);
    let now = Instant::now();
    let offer = fixture("chromium-audio-video-balanced.sdp");
    let to_trunk = sdp(&relay.offer("av", Side::A, &offer, now).unwrap());
    assert_eq!(to_trunk.media[1].port(), 0);
    // The browser port and the audio pair; the video pair went back.
    assert_eq!(relay.ports_in_use(), 3);
    let mut answer = fixture("pstn-gateway.sdp");
    answer.push_str("m=video 0 RTP/AVP 96\r\n");
    let to_browser = sdp(&relay.answer("av", Side::B, &answer, now).unwrap());
    assert_eq!(to_browser.media[1].port(), 0);
    assert_eq!(to_browser.bundle_group().unwrap().mids, ["0"]);
}

#[test]
fn control_errors() {
    let mut relay = relay_with(false);
    let now = Instant::now();
    assert!(matches!(
        relay.answer("nope", Side::B, PLAIN_B, now),
        Err(RelayError::UnknownSession(_))
    ));
    assert!(matches!(
        relay.offer("x", Side::A, "garbage", now),
        Err(RelayError::Sdp(_))
    ));
    let savp = PLAIN_A.replace("RTP/AVP", "RTP/SAVP");
    assert!(matches!(
        relay.offer("x", Side::A, &savp, now),
        Err(RelayError::UnsupportedTransport(_))
    ));
    plain_call(&mut relay, now);
    // Nothing pending any more.
    assert_eq!(
        relay.answer("pp", Side::B, PLAIN_B, now),
        Err(RelayError::NoPendingOffer)
    );
    // A re-offer keeps the ports; a browser SDP on a plain leg is refused.
    let before = relay.ports_in_use();
    relay.offer("pp", Side::B, PLAIN_B, now).unwrap();
    assert_eq!(relay.ports_in_use(), before);
    let browser = fixture("chromium-audio-balanced.sdp");
    assert_eq!(
        relay.offer("pp", Side::A, &browser, now),
        Err(RelayError::KindMismatch {
            expected: LegKind::Plain
        })
    );
}

#[test]
fn ports_run_out_cleanly() {
    let mut config = RelayConfig::new(RELAY_IP.parse().unwrap());
    config.ports = 40000..=40003;
    let mut relay = Relay::new(config, DtlsCertificate::process().unwrap().clone());
    let options = OfferOptions {
        peer: Some(LegKind::Plain),
    };
    let now = Instant::now();
    relay
        .offer_with("one", Side::A, PLAIN_A, options, now)
        .unwrap();
    assert_eq!(
        relay.offer_with("two", Side::A, PLAIN_A, options, now),
        Err(RelayError::NoPorts)
    );
    assert_eq!(relay.ports_in_use(), 4);
    relay.delete("one");
    relay
        .offer_with("two", Side::A, PLAIN_A, options, now)
        .unwrap();
}

#[test]
fn port_allocator() {
    let mut a = PortAllocator::new(30001..=30008);
    assert_eq!(a.allocate(true), Some(30002));
    assert_eq!(a.allocate(false), Some(30004));
    assert_eq!(a.allocate(true), Some(30006));
    // 30008 has no odd partner in range.
    assert_eq!(a.allocate(true), None);
    assert_eq!(a.allocate(false), Some(30008));
    assert_eq!(a.in_use(), 6);
    a.release(30004);
    a.release(30004);
    assert_eq!(a.in_use(), 5);
    assert_eq!(a.allocate(false), Some(30004));
    assert_eq!(PortAllocator::default().allocate(true), Some(30000));

    // Reserved ports are skipped, alone or as half of a pair.
    let mut a = PortAllocator::new(30000..=30007);
    assert!(a.reserve(30000));
    assert!(a.reserve(30003));
    assert!(!a.reserve(30003), "already reserved");
    assert!(!a.reserve(30008), "outside the range");
    assert!(a.is_used(30003) && !a.is_used(30002));
    assert_eq!(a.allocate(true), Some(30004));
    assert_eq!(a.allocate(false), Some(30006));
    assert_eq!(a.allocate(false), Some(30002));
    assert_eq!(a.allocate(false), None);
    a.release(30000);
    assert_eq!(a.allocate(true), Some(30000));
}

#[test]
fn quarantined_ports_stay_out_of_allocation() {
    let mut config = RelayConfig::new(RELAY_IP.parse().unwrap());
    config.ports = 40000..=40011;
    let mut relay = Relay::new(config, DtlsCertificate::process().unwrap().clone());
    let options = OfferOptions {
        peer: Some(LegKind::Plain),
    };
    let now = Instant::now();
    let later = now + Duration::from_secs(60);
    let ports = |relay: &Relay, id: &str| {
        let s = relay.stats(id).unwrap();
        [s.legs[0].local_ports.clone(), s.legs[1].local_ports.clone()]
    };
    assert!(!relay.quarantine_port(39999, later));
    assert!(relay.quarantine_port(40000, later));
    assert!(relay.quarantine_port(40005, later));
    assert!(relay.quarantine_port(40005, later), "again: extended");
    assert_eq!(relay.quarantined_ports(), 2);
    assert_eq!(relay.ports_in_use(), 0);
    // The pairs of 40000 and 40005 are skipped.
    relay
        .offer_with("q", Side::A, PLAIN_A, options, now)
        .unwrap();
    assert_eq!(ports(&relay, "q"), [vec![40002, 40003], vec![40006, 40007]]);
    assert_eq!(relay.port_session(40006).map(|(id, _)| id), Some("q"));
    assert_eq!(relay.ports_in_use(), 4);

    // A port a session holds stays out once the session frees it.
    assert!(relay.quarantine_port(40002, later));
    assert!(relay.is_quarantined(40002));
    assert!(relay.delete("q"));
    assert_eq!(relay.ports_in_use(), 0);
    relay
        .offer_with("r", Side::A, PLAIN_A, options, now)
        .unwrap();
    assert_eq!(ports(&relay, "r"), [vec![40008, 40009], vec![40010, 40011]]);
    // Round the range again: only 40006 is free.
    assert_eq!(
        relay.offer_with("s", Side::A, PLAIN_A, options, now),
        Err(RelayError::NoPorts)
    );

    // Quarantines end with the time.
    let _ = relay.handle_timeout(later);
    assert_eq!(relay.quarantined_ports(), 0);
    relay
        .offer_with("s", Side::A, PLAIN_A, options, later)
        .unwrap();
    assert_eq!(ports(&relay, "s"), [vec![40000, 40001], vec![40002, 40003]]);
    assert_eq!(relay.ports_in_use(), 8);

    // Held allocations refuse new sessions, and nothing else.
    relay.delete("s");
    relay.hold_allocations(true);
    assert_eq!(
        relay.offer_with("t", Side::A, PLAIN_A, options, later),
        Err(RelayError::PortsUnavailable)
    );
    relay.offer("r", Side::A, PLAIN_A, later).unwrap();
    relay.hold_allocations(false);
    relay
        .offer_with("t", Side::A, PLAIN_A, options, later)
        .unwrap();
}

#[test]
fn bundle_demux_by_ssrc_mid_and_payload_type() {
    let mut bundle = Bundle {
        mids: vec![Some("a".into()), Some("v".into())],
        payload_types: vec![vec![0, 111], vec![96, 111]],
        active: vec![true, true],
        mid_extension: Some(4),
        ssrcs: vec![(77, 1)],
    };
    // Signalled SSRC.
    assert_eq!(bundle.stream_of_rtp(&rtp(0, 1, 77, b"")), Some(1));
    // MID header extension, then learned by SSRC.
    let mut p = vec![0x90, 111, 0, 1, 0, 0, 0, 0, 0, 0, 0, 5];
    p.extend_from_slice(&[0xBE, 0xDE, 0, 1, 0x40, b'v', 0, 0]);
    assert_eq!(bundle.stream_of_rtp(&p), Some(1));
    assert_eq!(bundle.stream_of_rtp(&rtp(111, 2, 5, b"")), Some(1));
    // A payload type unique to one section.
    assert_eq!(bundle.stream_of_rtp(&rtp(0, 1, 6, b"")), Some(0));
    // Ambiguous and unknown ones are dropped.
    assert_eq!(bundle.stream_of_rtp(&rtp(111, 1, 8, b"")), None);
    assert_eq!(bundle.stream_of_rtp(&rtp(9, 1, 9, b"")), None);
    // RTCP by sender SSRC, else the first live section.
    assert_eq!(bundle.stream_of_rtcp(&receiver_report(5, 1, 0, 0)), Some(1));
    assert_eq!(
        bundle.stream_of_rtcp(&receiver_report(99, 1, 0, 0)),
        Some(0)
    );
}
