//! Inputs found by the fuzz targets in `fuzz/` (or while writing them) that
//! broke an invariant, kept so the bug stays fixed. Each test names the
//! target and the invariant.

use sip::{response_to, Frame, Limits, Message, StreamFramer};

/// Feeds `chunks` in order and collects every frame (or the error).
fn frames(chunks: &[&[u8]]) -> Vec<Result<Frame, sip::ErrorKind>> {
    let mut f = StreamFramer::new(Limits::default());
    let mut out = Vec::new();
    for c in chunks {
        f.push(c);
        loop {
            match f.next_frame() {
                Ok(Some(fr)) => out.push(Ok(fr)),
                Ok(None) => break,
                Err(e) => {
                    out.push(Err(e.kind));
                    return out;
                }
            }
        }
    }
    out
}

/// `sip_framer`: the frames must not depend on how the stream was cut into
/// reads. A CRLF left pending at the end of one read was paired with a CRLF
/// after a bare LF in the next read (whole: no keep-alive; split: one), and
/// a pending CRLF was not paired before a following CRLFCRLF (whole: two
/// keep-alives; split: one).
#[test]

fn framer_keepalives_do_not_depend_on_read_boundaries() {
    let cases: [(&[u8], usize); 2] = [(b"\r\n\n\r\n", 2), (b"\r\n\r\n\r\n\r\n", 2)];
    for (stream, at) in cases {
        let whole = frames(&[stream]);
        let (a, b) = stream.split_at(at);
        assert_eq!(frames(&[a, b]), whole, "{stream:?} split at {at}");
        let bytewise: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(frames(&bytewise), whole, "{stream:?} byte by byte");
    }
}

/// `sip_message`: a request whose To carries `tag` without a value
/// validates, and `response_to(.., Some(tag))` then appends a second `tag`
/// (`To: <sip:bob@example.com>;tag;tag=xyz`), so the response's To tag
/// reads as `None`: the UAC gets a final response without a usable To tag.
/// Either fix holds the invariant: `validate` refuses a valueless From/To
/// tag (400), or the response carries the new tag where it is read.
/// Found from RFC 4475 `wsinv.dat` with its To tag value cut off.
#[test]

fn response_to_tag_after_valueless_tag() {
    let req = b"INVITE sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
Max-Forwards: 70\r\n\
To: <sip:bob@example.com>;tag\r\n\
From: <sip:alice@example.com>;tag=1\r\n\
Call-ID: a\r\n\
CSeq: 1 INVITE\r\n\
Content-Length: 0\r\n\r\n";
    let m = Message::parse(req.to_vec(), &Limits::default()).unwrap();
    if m.validate().is_err() {
        return;
    }
    let resp = response_to(&m, 200, "OK", Some("xyz")).build().unwrap();
    resp.validate().unwrap();
    assert_eq!(resp.to().unwrap().tag(), Some("xyz"));
}
