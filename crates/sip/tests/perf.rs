//! Rough timing sanity check, not a benchmark. Run with
//! `cargo test -p sip --release --test perf -- --ignored --nocapture`.

use std::hint::black_box;
use std::time::Instant;

use bytes::Bytes;
use sip::{Contacts, Limits, Message};

/// A WebRTC browser INVITE over WSS with an SDP offer, about 1 KB.
const INVITE: &[u8] = b"INVITE sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bK2794107;rport\r\n\
Max-Forwards: 69\r\n\
To: <sip:bob@example.com>\r\n\
From: \"Alice\" <sip:alice@example.com>;tag=hhbrdo4rmc\r\n\
Call-ID: 6qmv5otph1n8gknkj1qv\r\n\
CSeq: 7713 INVITE\r\n\
Contact: <sip:8f2mhuqp@df7jal23ls0d.invalid;transport=ws;ob>\r\n\
Route: <sip:proxy.example.com:443;transport=wss;lr>\r\n\
Allow: INVITE,ACK,CANCEL,BYE,UPDATE,MESSAGE,OPTIONS,REFER,INFO,NOTIFY\r\n\
Supported: timer,ice,replaces,outbound\r\n\
User-Agent: JsSIP 3.10.0\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 494\r\n\
\r\n\
v=0\r\n\
o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n\
s=-\r\n\
t=0 0\r\n\
a=group:BUNDLE 0\r\n\
a=msid-semantic: WMS stream\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111 0 8\r\n\
c=IN IP4 0.0.0.0\r\n\
a=rtcp:9 IN IP4 0.0.0.0\r\n\
a=ice-ufrag:8hhY\r\n\
a=ice-pwd:asd88fgpdd777uzjYhagZg\r\n\
a=fingerprint:sha-256 D2:FA:0E:C3:22:59:5E:14:95:69:92:3D:13:B4:84:24:2C:C2:A2:C0:3E:FD:34:8E:5E:EA:6F:AF:52:CE:E6:0F\r\n\
a=setup:actpass\r\n\
a=mid:0\r\n\
a=sendrecv\r\n\
a=rtcp-mux\r\n\
a=rtpmap:111 opus/48000/2\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=ssrc:1001 cname:abcdefgh\r\n\
a=candidate:1 1 udp 2113937151 192.0.2.10 50000 typ host\r\n";

const REGISTER: &[u8] = b"REGISTER sip:example.com SIP/2.0\r\n\
Via: SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bK1234567;rport\r\n\
Max-Forwards: 69\r\n\
To: <sip:alice@example.com>\r\n\
From: \"Alice\" <sip:alice@example.com>;tag=3v7ngqf3ab\r\n\
Call-ID: ln0ce4m1d8a7lq9v3gnl\r\n\
CSeq: 2 REGISTER\r\n\
Contact: <sip:8f2mhuqp@df7jal23ls0d.invalid;transport=ws>;+sip.ice;reg-id=1;+sip.instance=\"<urn:uuid:6f6c5a3e-4cc0-4e1a-9a43-1f3ee0c0f5a2>\";expires=600\r\n\
Expires: 600\r\n\
Allow: INVITE,ACK,CANCEL,BYE,UPDATE,MESSAGE,OPTIONS,REFER,INFO,NOTIFY\r\n\
Supported: path,gruu,outbound\r\n\
User-Agent: JsSIP 3.10.0\r\n\
Content-Length: 0\r\n\r\n";

/// CPU time this thread has run, from the scheduler: unlike wall time it
/// does not count time spent preempted by other work on a shared machine.
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

fn time(label: &str, iters: u32, mut f: impl FnMut()) -> f64 {
    for _ in 0..iters / 10 {
        f();
    }
    // Best of five rounds: the machine is shared, the minimum is the signal.
    let mut ns = f64::MAX;
    for _ in 0..5 {
        let cpu = thread_cpu_ns();
        let t = Instant::now();
        for _ in 0..iters / 5 {
            f();
        }
        let elapsed = match (cpu, thread_cpu_ns()) {
            (Some(a), Some(b)) => (b - a) as f64,
            _ => t.elapsed().as_nanos() as f64,
        };
        ns = ns.min(elapsed / f64::from(iters / 5));
    }
    println!("{label:<40} {ns:>8.0} ns");
    ns
}

fn decode_all(m: &Message) {
    for v in m.vias() {
        black_box(v.unwrap().branch());
    }
    black_box(m.from().unwrap().tag());
    black_box(m.to().unwrap().tag());
    black_box(m.call_id());
    black_box(m.cseq().unwrap());
    if let Contacts::List(cs) = m.contacts().unwrap() {
        for c in cs {
            black_box(c.unwrap().uri().host());
        }
    }
    for r in m.routes() {
        black_box(r.unwrap().uri().lr());
    }
    black_box(m.max_forwards().unwrap());
}

#[test]
#[ignore = "timing; run in release"]
fn timings() {
    assert_eq!(
        Message::parse(INVITE, &Limits::default())
            .unwrap()
            .body()
            .len(),
        494
    );
    let limits = Limits::default();
    let invite = Bytes::from_static(INVITE);
    let register = Bytes::from_static(REGISTER);
    println!(
        "INVITE {} bytes, REGISTER {} bytes",
        INVITE.len(),
        REGISTER.len()
    );
    time("parse INVITE", 500_000, || {
        black_box(Message::parse(black_box(invite.clone()), &limits).unwrap());
    });
    time("parse REGISTER", 500_000, || {
        black_box(Message::parse(black_box(register.clone()), &limits).unwrap());
    });
    let m = Message::parse(invite.clone(), &limits).unwrap();
    time("decode Via..Max-Forwards (INVITE)", 500_000, || {
        decode_all(black_box(&m))
    });
    let r = Message::parse(register.clone(), &limits).unwrap();
    time("decode Via..Max-Forwards (REGISTER)", 500_000, || {
        decode_all(black_box(&r))
    });
    time("validate INVITE", 500_000, || {
        black_box(m.validate()).unwrap();
    });
    let parse_ns = time("parse INVITE (again)", 500_000, || {
        black_box(Message::parse(black_box(invite.clone()), &limits).unwrap());
    });
    let mut buf = Vec::with_capacity(2048);
    let edit_ns = time("parse + proxy edits + serialize", 500_000, || {
        let mut m = Message::parse(black_box(invite.clone()), &limits).unwrap();
        m.prepend_via("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKproxy1")
            .unwrap();
        m.prepend_record_route("<sip:192.0.2.1;lr>").unwrap();
        m.set_request_uri("sip:bob@192.0.2.44:5060").unwrap();
        m.decrement_max_forwards().unwrap();
        buf.clear();
        m.write_to(&mut buf);
        black_box(&buf);
    });
    println!(
        "{:<40} {:>8.0} ns",
        "  => edits + serialize",
        edit_ns - parse_ns
    );
    let mut p = Message::parse(invite.clone(), &limits).unwrap();
    p.prepend_via("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKproxy1")
        .unwrap();
    p.prepend_record_route("<sip:192.0.2.1;lr>").unwrap();
    p.set_request_uri("sip:bob@192.0.2.44:5060").unwrap();
    time("serialize proxied (write_to)", 1_000_000, || {
        buf.clear();
        black_box(&p).write_to(&mut buf);
        black_box(&buf);
    });
    time("serialize proxied (new Vec)", 1_000_000, || {
        black_box(black_box(&p).serialize());
    });
}

#[test]
#[ignore = "timing; run in release"]
fn timings_breakdown() {
    let limits = Limits::default();
    let m = Message::parse(Bytes::from_static(INVITE), &limits).unwrap();
    time("vias", 500_000, || {
        for v in black_box(&m).vias() {
            black_box(v.unwrap().branch());
        }
    });
    time("from+tag", 500_000, || {
        black_box(black_box(&m).from().unwrap().tag());
    });
    time("to+tag", 500_000, || {
        black_box(black_box(&m).to().unwrap().tag());
    });
    time("call_id", 500_000, || {
        black_box(black_box(&m).call_id());
    });
    time("cseq", 500_000, || {
        black_box(black_box(&m).cseq().unwrap());
    });
    time("contacts", 500_000, || {
        if let Contacts::List(cs) = black_box(&m).contacts().unwrap() {
            for c in cs {
                black_box(c.unwrap().uri().host());
            }
        }
    });
    time("routes", 500_000, || {
        for r in black_box(&m).routes() {
            black_box(r.unwrap().uri().lr());
        }
    });
    time("max_forwards", 500_000, || {
        black_box(black_box(&m).max_forwards().unwrap());
    });
    time("uri parse", 500_000, || {
        black_box(
            sip::Uri::parse(black_box(
                b"sip:8f2mhuqp@df7jal23ls0d.invalid;transport=ws;ob",
            ))
            .unwrap(),
        );
    });
}
