//! Hostile and damaged input: the parser returns an error or a description,
//! never panics, and whatever it accepts writes back to something it parses
//! to the same model. A cheap, deterministic stand-in for the fuzz targets.

use std::path::Path;

use sdp::{Limits, ParseErrorKind, SessionDescription};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(name),
    )
    .unwrap()
}

/// Parses and, on success, exercises every accessor and the writer.
fn exercise(input: &[u8]) {
    let Ok(sdp) = SessionDescription::from_bytes(input) else {
        return;
    };
    let _ = sdp.validate();
    let _ = (
        sdp.origin(),
        sdp.session_name(),
        sdp.connection(),
        sdp.ice_lite(),
    );
    let _ = sdp.groups().count() + sdp.extmaps().count();
    let _ = (
        sdp.bundle_group(),
        sdp.fingerprint(),
        sdp.setup(),
        sdp.direction(),
    );
    for m in &sdp.media {
        let _ = (
            m.kind(),
            m.port(),
            m.proto(),
            m.mid(),
            m.rtcp(),
            m.rtcp_mux(),
        );
        let _ = (
            m.ptime(),
            m.maxptime(),
            m.msid(),
            m.ice_ufrag(),
            m.ice_pwd(),
        );
        let _ = m.payload_types().filter_map(|pt| m.codec(pt)).count();
        let _ = m.candidates().count() + m.ssrcs().count() + m.ssrc_groups().count();
        let _ = m.fmtps().count() + m.rtcp_fbs().count() + m.cryptos().count();
        let _ = m.ice_options().count() + m.extmaps().count();
        let _ = sdp.effective_direction(m);
        let _ = sdp.effective_connection(m);
    }
    let written = sdp.to_string();
    let again = SessionDescription::parse(&written)
        .unwrap_or_else(|e| panic!("written form does not parse: {e}\n{written}"));
    assert_eq!(again, sdp, "written form parses differently:\n{written}");
    let mut edited = sdp;
    for m in &mut edited.media {
        m.retain_formats(|f| f.len() % 2 == 0);
        m.set_direction(sdp::Direction::Inactive);
        m.set_port(0);
    }
    let _ = edited.to_string();
}

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const INTERESTING: &[&[u8]] = &[
    b"\r\n",
    b"\n",
    b"\r",
    b"\0",
    b"=",
    b":",
    b" ",
    b"/",
    b"m=",
    b"a=",
    b"c=",
    b"o=",
    b"t=",
    b"v=0",
    b"\xff",
    b"\xe9",
    b"99999999999999999999",
    b"-1",
    b"+1",
    b"typ",
    b"IN IP4",
    b"candidate:",
    b"rtpmap:",
    b"\xf0\x9f\x93\x9e",
];

fn mutate(rng: &mut Rng, input: &mut Vec<u8>) {
    for _ in 0..=rng.below(4) {
        let at = rng.below(input.len() + 1);
        match rng.below(5) {
            0 if !input.is_empty() => {
                let at = at.min(input.len() - 1);
                input[at] = rng.next() as u8;
            }
            1 => {
                let end = (at + rng.below(16)).min(input.len());
                input.drain(at..end);
            }
            2 => {
                let token = INTERESTING[rng.below(INTERESTING.len())];
                input.splice(at..at, token.iter().copied());
            }
            3 if !input.is_empty() => {
                let start = rng.below(input.len());
                let end = (start + rng.below(64)).min(input.len());
                let chunk = input[start..end].to_vec();
                input.splice(at..at, chunk);
            }
            _ => input.truncate(at),
        }
    }
}

#[test]
fn mutated_fixtures_never_panic() {
    let seeds: Vec<Vec<u8>> = [
        "chromium-audio-balanced.sdp",
        "chromium-audio-video-max-bundle.sdp",
        "chromium-answer-pstn.sdp",
        "pstn-gateway.sdp",
    ]
    .iter()
    .map(|n| fixture(n))
    .collect();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut accepted = 0;
    for i in 0..4_000 {
        let mut input = seeds[i % seeds.len()].clone();
        mutate(&mut rng, &mut input);
        if SessionDescription::from_bytes(&input).is_ok() {
            accepted += 1;
        }
        exercise(&input);
    }
    assert!(
        accepted > 100,
        "mutations should often stay parseable ({accepted})"
    );
}

#[test]
fn every_prefix_is_handled() {
    let input = fixture("chromium-audio-balanced.sdp");
    for end in 0..=input.len() {
        exercise(&input[..end]);
    }
}

#[test]
fn hostile_sizes_hit_the_limits() {
    let limits = Limits::default();
    let too_big = "a=x\r\n".repeat(limits.max_size / 5 + 1);
    let e = SessionDescription::parse(&format!("v=0\r\n{too_big}")).unwrap_err();
    assert_eq!(
        e.kind,
        ParseErrorKind::TooLarge {
            limit: limits.max_size
        }
    );

    let many = format!("v=0\r\n{}", "\n".repeat(limits.max_lines + 10));
    let e = SessionDescription::parse(&many).unwrap_err();
    assert_eq!(
        e.kind,
        ParseErrorKind::TooManyLines {
            limit: limits.max_lines
        }
    );

    let long = format!("v=0\r\ns={}\r\n", "x".repeat(limits.max_line_len));
    let e = SessionDescription::parse(&long).unwrap_err();
    assert_eq!(e.line, 2);
    assert_eq!(
        e.kind,
        ParseErrorKind::LineTooLong {
            limit: limits.max_line_len
        }
    );

    // Many small media sections within the limits are fine.
    let mut text = String::from("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n");
    for i in 0..1000 {
        text.push_str(&format!("m=audio {i} RTP/AVP 0\r\n"));
    }
    let sdp = SessionDescription::parse(&text).unwrap();
    assert_eq!(sdp.media.len(), 1000);
    assert_eq!(sdp.to_string(), text);
}

#[test]
fn binary_garbage_is_an_error() {
    let mut rng = Rng(42);
    for len in [1, 2, 7, 100, 4000] {
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        assert!(SessionDescription::from_bytes(&bytes).is_err());
    }
}
