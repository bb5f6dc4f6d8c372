//! Mutates the RFC 4475 messages and drives every parser, accessor, edit
//! and the stream framer over the results: nothing may panic, and what
//! parsed must write back consistently.

use bytes::Bytes;
use sip::{response_to, Contacts, Frame, HeaderName, Limits, Message, StreamFramer};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const INTERESTING: &[u8] = b"\r\n \t:;,\"<>\\@?%=/[]*0123456789\x00\xff";

fn mutate(rng: &mut Rng, src: &[u8]) -> Vec<u8> {
    let mut v = src.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(v.len() + 1);
        match rng.below(6) {
            0 if at < v.len() => v[at] = INTERESTING[rng.below(INTERESTING.len())],
            1 => v.insert(at, INTERESTING[rng.below(INTERESTING.len())]),
            2 if at < v.len() => {
                v.remove(at);
            }
            3 => v.truncate(at),
            4 if at < v.len() => {
                let end = (at + rng.below(40)).min(v.len());
                let chunk = v[at..end].to_vec();
                let to = rng.below(v.len() + 1);
                v.splice(to..to, chunk);
            }
            _ if at < v.len() => v[at] = (rng.next() & 0xff) as u8,
            _ => {}
        }
    }
    v
}

fn exercise(bytes: Vec<u8>) {
    let limits = Limits::default();
    let Ok(mut m) = Message::parse(bytes.clone(), &limits) else {
        return;
    };
    let _ = m.validate();
    let _ = m.request_uri().map(|u| {
        let _ = (u.user_unescaped(), u.params().count(), u.headers().count());
        u.to_owned().to_string()
    });
    let _ = (m.reason(), m.version(), m.body(), m.call_id());
    let _ = (m.cseq(), m.from(), m.to(), m.max_forwards(), m.expires());
    let _ = (m.content_length(), m.content_type(), m.top_via_branch());
    for v in m.vias().flatten() {
        let _ = (
            v.branch(),
            v.rport(),
            v.received(),
            v.ttl(),
            v.params().count(),
        );
    }
    if let Ok(Contacts::List(cs)) = m.contacts() {
        for c in cs.flatten() {
            let _ = (c.expires(), c.q(), c.sip_instance(), c.reg_id());
            let _ = (c.display_name_str(), c.uri().user_unescaped());
            for p in c.params() {
                let _ = p.value_unescaped();
            }
        }
    }
    let _ = m.routes().count() + m.record_routes().count() + m.paths().count();
    let _ = m.option_tags(HeaderName::Supported).count();
    let _ = m.accepts("application", "sdp");
    for e in m.entries() {
        let _ = (m.name_of(e), m.value_unfolded(e));
    }
    let _ = m.header_values(HeaderName::Other).count();
    let out = m.serialize();
    assert_eq!(out.len(), m.serialized_len());
    assert_eq!(&m.to_bytes()[..], out.as_slice());
    assert!(Message::parse(out, &Limits::unbounded()).is_ok());
    if m.is_request() {
        let _ = response_to(&m, 400, "Bad Request", Some("t")).to_bytes();
    }

    let _ = m.prepend_via("SIP/2.0/UDP p.example.com;branch=z9hG4bKx");
    let _ = m.prepend_record_route("<sip:p.example.com;lr>");
    let _ = m.set_request_uri("sip:x@192.0.2.1");
    let _ = m.decrement_max_forwards();
    let _ = m.pop_route();
    let _ = m.pop_via();
    let _ = m.remove_headers("Subject");
    m.set_body(Some("text/plain"), b"x").unwrap();
    let out = m.serialize();
    assert_eq!(out.len(), m.serialized_len());
    let again = Message::parse(out, &Limits::unbounded()).expect("edited output parses");
    assert_eq!(again.body(), b"x");
}

fn frame_randomly(rng: &mut Rng, bytes: &[u8]) {
    let mut f = StreamFramer::new(Limits::default());
    let mut pos = 0;
    while pos < bytes.len() {
        let n = 1 + rng.below(64);
        let end = (pos + n).min(bytes.len());
        f.push(&bytes[pos..end]);
        pos = end;
        loop {
            match f.next_frame() {
                Ok(Some(Frame::Message(b))) => exercise(b.to_vec()),
                Ok(Some(Frame::KeepAlive)) => {}
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
}

#[test]
fn mutated_torture_messages_never_panic() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/rfc4475");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "dat"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 49);
    // SIP_MUTATIONS raises the count for a longer local run.
    let iters: usize = std::env::var("SIP_MUTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let seed = std::env::var("SIP_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x9e37_79b9_7f4a_7c15);
    let mut rng = Rng(seed);
    for path in files {
        let src = std::fs::read(&path).unwrap();
        exercise(src.clone());
        frame_randomly(&mut rng, &src);
        for _ in 0..iters {
            let m = mutate(&mut rng, &src);
            exercise(m.clone());
            if rng.below(8) == 0 {
                frame_randomly(&mut rng, &m);
            }
        }
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(42);
    for _ in 0..2000 {
        let len = rng.below(300);
        let mut v: Vec<u8> = (0..len)
            .map(|_| INTERESTING[rng.below(INTERESTING.len())])
            .collect();
        if rng.below(2) == 0 {
            let mut head = b"INVITE sip:a@b SIP/2.0\r\n".to_vec();
            head.append(&mut v);
            v = head;
        }
        exercise(v.clone());
        let mut f = StreamFramer::new(Limits::default());
        f.push(&v);
        while let Ok(Some(_)) = f.next_frame() {}
        let _ = sip::Uri::parse(&v);
        let _ = sip::NameAddr::parse(&v);
        let _ = sip::Via::parse_list(&v).count();
        let _ = sip::CSeq::parse(&v);
        let _ = sip::MediaType::parse(&v);
    }
    let _ = Message::parse(Bytes::new(), &Limits::default());
}
