//! `sip_framer`: a TCP/TLS byte stream cut into messages, the input fed
//! whole, split at a pseudo-random point, and in small pieces.

use sip::{ErrorKind, Frame, Limits, Message, StreamFramer};

/// What a framer made of a whole stream.
#[derive(Debug)]
struct Outcome {
    frames: Vec<Frame>,
    /// The error that ended the stream, if any (its kind: offsets are
    /// relative to the framer's buffer and depend on how bytes arrived).
    error: Option<ErrorKind>,
    /// Bytes left over after the last frame, when no error. Not compared:
    /// a CRLF at the end of a read is consumed as half a ping, while the
    /// same CRLF in the middle of a read waits in the buffer.
    buffered: usize,
}

impl PartialEq for Outcome {
    fn eq(&self, other: &Self) -> bool {
        self.frames == other.frames && self.error == other.error
    }
}

fn small_limits() -> Limits {
    // Small enough for the fuzzer to reach the size checks.
    Limits {
        max_message_size: 4096,
        max_headers: 32,
        max_line_len: 1024,
    }
}

/// Feeds `chunks` one after the other, taking frames after each.
fn run<'a>(limits: Limits, chunks: impl IntoIterator<Item = &'a [u8]>) -> Outcome {
    let mut f = StreamFramer::new(limits);
    let mut frames = Vec::new();
    for chunk in chunks {
        f.push(chunk);
        loop {
            match f.next_frame() {
                Ok(Some(fr)) => frames.push(fr),
                Ok(None) => break,
                Err(e) => {
                    // An error is final.
                    assert_eq!(f.next_frame(), Err(e), "framer error is not sticky");
                    f.push(b"OPTIONS sip:a SIP/2.0\r\nContent-Length: 0\r\n\r\n");
                    assert_eq!(f.next_frame(), Err(e), "framer recovers after an error");
                    return Outcome {
                        frames,
                        error: Some(e.kind),
                        buffered: 0,
                    };
                }
            }
        }
    }
    Outcome {
        frames,
        error: None,
        buffered: f.buffered(),
    }
}

/// Invariants:
/// - the framer never panics;
/// - the frames do not depend on how the stream was cut into reads: the
///   input pushed whole, split at a point chosen from the input, in 7-byte
///   pieces and (when short) byte by byte gives the same frames and the
///   same final error;
/// - an error is final;
/// - every message frame is within the size limit, does not start with a
///   line break, and the frames take no more bytes than the input had;
/// - when a message frame parses, the parser's body is exactly the
///   Content-Length the framer cut it by.
pub fn sip_framer(data: &[u8]) {
    for limits in [Limits::default(), small_limits()] {
        let whole = run(limits, [data]);
        let at = (crate::input_hash(data) % (data.len() as u64 + 1)) as usize;
        let (a, b) = data.split_at(at);
        let split = run(limits, [a, b]);
        assert_eq!(split, whole, "split at {at} differs from the whole input");
        if data.len() <= 4096 {
            let pieces = run(limits, data.chunks(7));
            assert_eq!(pieces, whole, "7-byte pieces differ from the whole input");
        }
        if data.len() <= 512 {
            let bytes = run(limits, data.chunks(1));
            assert_eq!(bytes, whole, "byte-by-byte differs from the whole input");
        }
        check_frames(&whole, data.len(), &limits);
    }
}

fn check_frames(o: &Outcome, input_len: usize, limits: &Limits) {
    let mut used = o.buffered;
    for fr in &o.frames {
        match fr {
            Frame::KeepAlive => used += 2,
            Frame::Message(m) => {
                used += m.len();
                assert!(!m.is_empty(), "empty message frame");
                assert!(
                    m.len() <= limits.max_message_size,
                    "frame over the size limit"
                );
                // CRLFs between messages are consumed (a stray lone CR is
                // left to the parser, which skips it).
                assert!(
                    m[0] != b'\n' && !m.starts_with(b"\r\n"),
                    "message frame starts with CRLF: {m:?}"
                );
                check_message_frame(m, limits);
            }
        }
    }
    assert!(
        used <= input_len,
        "frames hold more bytes ({used}) than the input ({input_len})"
    );
}

fn check_message_frame(frame: &[u8], limits: &Limits) {
    let Ok(msg) = Message::parse(frame.to_vec(), limits) else {
        return;
    };
    let body = msg.body_range();
    assert_eq!(
        body.end,
        frame.len(),
        "parser's body does not end the frame"
    );
    if let Ok(Some(cl)) = msg.content_length() {
        assert_eq!(
            body.len(),
            cl,
            "framer and parser disagree on the body: {:?}",
            String::from_utf8_lossy(frame)
        );
    }
}
