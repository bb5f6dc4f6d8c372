//! Every seed passes every target it is meant for, and a few hundred cheap
//! mutations of them too: a quick check that the targets' invariants hold on
//! valid input before spending fuzzing time.

use std::path::{Path, PathBuf};

fn data(dir: &str, ext: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(dir);
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .map(|p| {
            let d = std::fs::read(&p).unwrap();
            (p, d)
        })
        .collect();
    out.sort();
    out
}

/// Each seed, then each seed with one byte changed, dropped or truncated.
fn run_with_mutations(target: callgate_fuzz::Target, seeds: &[(PathBuf, Vec<u8>)]) {
    for (path, seed) in seeds {
        eprintln!("{}", path.display());
        target(seed);
        for i in (0..seed.len()).step_by(7) {
            target(&seed[..i]);
            let mut m = seed.clone();
            m[i] ^= 0x20;
            target(&m);
            m.remove(i);
            target(&m);
        }
    }
}

#[test]
fn sdp_seeds() {
    run_with_mutations(callgate_fuzz::sdp, &data("crates/sdp/tests/data", "sdp"));
}

#[test]
fn sip_digest_seeds() {
    let seeds: Vec<(PathBuf, Vec<u8>)> = [
        &b"Digest username=\"alice\", realm=\"example.com\", nonce=\"abc\", uri=\"sip:example.com\", response=\"6629fae49393a05397450978507c4ef1\", algorithm=MD5, cnonce=\"0a4f113b\", qop=auth, nc=00000001, opaque=\"x\""[..],
        b"Digest realm=\"example.com\", nonce=\"abc\", qop=\"auth,auth-int\", algorithm=SHA-256, opaque=\"o\", stale=TRUE, domain=\"sip:a sip:b\"",
        b"Digest realm=\"a\\\"b\", nonce=\"n\\\\\", algorithm=MD5-sess",
    ]
    .iter()
    .map(|s| (PathBuf::from("inline"), s.to_vec()))
    .collect();
    run_with_mutations(callgate_fuzz::sip_digest, &seeds);
}

fn sip_seeds() -> Vec<(PathBuf, Vec<u8>)> {
    let mut seeds = data("crates/sip/tests/data/rfc4475", "dat");
    let bench = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/bench/parsers/data");
    if bench.is_dir() {
        seeds.extend(data("tests/bench/parsers/data", "sip"));
    }
    seeds
}

#[test]
fn sip_message_seeds() {
    run_with_mutations(callgate_fuzz::sip_message, &sip_seeds());
}

#[test]
fn sip_framer_seeds() {
    let seeds = sip_seeds();
    let mut stream = b"\r\n\r\n".to_vec();
    for (_, s) in &seeds {
        stream.extend_from_slice(s);
    }
    callgate_fuzz::sip_framer(&stream);
    run_with_mutations(callgate_fuzz::sip_framer, &seeds);
}

#[test]
fn sip_uri_seeds() {
    let seeds = sip_seeds();
    for (_, s) in &seeds {
        // Request-URI and every <...> of each message.
        let first = s.split(|&c| c == b'\n').next().unwrap_or_default();
        let mut uris: Vec<&[u8]> = first.split(|&c| c == b' ').skip(1).take(1).collect();
        for part in s.split(|&c| c == b'<').skip(1) {
            if let Some(end) = part.iter().position(|&c| c == b'>') {
                uris.push(&part[..end]);
            }
        }
        let owned: Vec<(PathBuf, Vec<u8>)> = uris
            .iter()
            .map(|u| (PathBuf::from("uri"), u.to_vec()))
            .collect();
        run_with_mutations(callgate_fuzz::sip_uri, &owned);
    }
}
