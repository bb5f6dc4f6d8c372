//! Cutting a TCP/TLS byte stream into messages (RFC 3261 §18.3) and
//! spotting keep-alives (RFC 5626 §3.5.1).

use bytes::{Bytes, BytesMut};

use crate::error::{ErrorKind, ParseError};
use crate::limits::Limits;
use crate::message::{parse_content_length, HeaderName};

/// What the framer found in the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// One complete message, to hand to [`Message::parse`](crate::Message::parse).
    Message(Bytes),
    /// A CRLFCRLF keep-alive ping; answer it with a single CRLF.
    KeepAlive,
}

/// Incremental framer for stream transports. Feed bytes with
/// [`push`](StreamFramer::push), then call
/// [`next_frame`](StreamFramer::next_frame) until it returns `Ok(None)`.
///
/// Content-Length is mandatory on streams. CRLFs between messages are
/// skipped (RFC 3261 §7.5); a CRLFCRLF is reported as a keep-alive, and a
/// lone CRLF (a pong) is consumed silently. Any error is final: the stream
/// cannot be resynchronised and the connection should be closed.
#[derive(Debug)]
pub struct StreamFramer {
    limits: Limits,
    buf: BytesMut,
    /// A CRLF was consumed at a message boundary; another one makes a ping.
    pending_crlf: bool,
    /// Inside a message: where the header-end search resumes.
    scan_from: usize,
    in_message: bool,
    /// Total length of the current message once its headers are complete.
    total: Option<usize>,
    failed: Option<ParseError>,
}

impl StreamFramer {
    /// A framer enforcing `limits` (max_message_size bounds the buffer).
    pub fn new(limits: Limits) -> Self {
        StreamFramer {
            limits,
            buf: BytesMut::new(),
            pending_crlf: false,
            scan_from: 0,
            in_message: false,
            total: None,
            failed: None,
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, data: &[u8]) {
        if self.failed.is_none() {
            self.buf.extend_from_slice(data);
        }
    }

    /// Bytes held that are not yet part of a returned frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete frame, `Ok(None)` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, ParseError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        match self.step() {
            Err(e) => {
                self.failed = Some(e);
                self.buf.clear();
                Err(e)
            }
            ok => ok,
        }
    }

    fn step(&mut self) -> Result<Option<Frame>, ParseError> {
        if !self.in_message {
            loop {
                let b = &self.buf[..];
                match b {
                    [] => return Ok(None),
                    // A CRLF already consumed makes this one the ping's end,
                    // whatever the read boundaries were.
                    [b'\r', b'\n', ..] if self.pending_crlf => {
                        let _ = self.buf.split_to(2);
                        self.pending_crlf = false;
                        return Ok(Some(Frame::KeepAlive));
                    }
                    [b'\r', b'\n', b'\r', b'\n', ..] => {
                        let _ = self.buf.split_to(4);
                        self.pending_crlf = false;
                        return Ok(Some(Frame::KeepAlive));
                    }
                    [b'\r', b'\n', rest @ ..] => {
                        // Could be the first half of a ping: wait for more.
                        if rest.is_empty() || rest == b"\r" {
                            if rest.is_empty() {
                                let _ = self.buf.split_to(2);
                                self.pending_crlf = true;
                            }
                            return Ok(None);
                        }
                        let _ = self.buf.split_to(2);
                    }
                    [b'\r'] => return Ok(None),
                    [b'\n', ..] => {
                        let _ = self.buf.split_to(1);
                        self.pending_crlf = false;
                    }
                    _ => {
                        self.pending_crlf = false;
                        self.in_message = true;
                        self.scan_from = 0;
                        break;
                    }
                }
            }
        }
        let total = match self.total {
            Some(t) => t,
            None => {
                let Some(body_start) = self.find_header_end() else {
                    if self.buf.len() > self.limits.max_message_size {
                        return Err(ParseError::new(
                            ErrorKind::MessageTooLarge,
                            self.limits.max_message_size,
                        ));
                    }
                    return Ok(None);
                };
                let cl = stream_content_length(&self.buf[..body_start])?;
                let total = body_start
                    .checked_add(cl)
                    .filter(|&t| t <= self.limits.max_message_size)
                    .ok_or(ParseError::new(
                        ErrorKind::MessageTooLarge,
                        self.limits.max_message_size,
                    ))?;
                self.total = Some(total);
                total
            }
        };
        if self.buf.len() < total {
            return Ok(None);
        }
        let frame = self.buf.split_to(total).freeze();
        self.total = None;
        self.in_message = false;
        self.scan_from = 0;
        Ok(Some(Frame::Message(frame)))
    }

    /// Finds the end of the header block (a line break followed by an empty
    /// line); returns where the body starts.
    fn find_header_end(&mut self) -> Option<usize> {
        let b = &self.buf[..];
        let mut i = self.scan_from;
        while let Some(p) = b.get(i..).and_then(|s| memchr::memchr(b'\n', s)) {
            let nl = i + p;
            match (b.get(nl + 1), b.get(nl + 2)) {
                (Some(b'\n'), _) => return Some(nl + 2),
                (Some(b'\r'), Some(b'\n')) => return Some(nl + 3),
                (None, _) | (Some(b'\r'), None) => {
                    self.scan_from = nl;
                    return None;
                }
                _ => i = nl + 1,
            }
        }
        self.scan_from = b.len();
        None
    }
}

/// Reads Content-Length from a complete header block (start line included).
fn stream_content_length(block: &[u8]) -> Result<usize, ParseError> {
    let mut found: Option<usize> = None;
    // Skip the start line.
    let mut pos = memchr::memchr(b'\n', block).map_or(block.len(), |p| p + 1);
    while pos < block.len() {
        let end = memchr::memchr(b'\n', &block[pos..]).map_or(block.len(), |p| pos + p + 1);
        let line = &block[pos..end];
        let name_len = line
            .iter()
            .position(|&c| matches!(c, b':' | b' ' | b'\t' | b'\r' | b'\n'))
            .unwrap_or(line.len());
        if name_len > 0 && HeaderName::from_bytes(&line[..name_len]) == HeaderName::ContentLength {
            // The value runs to the end of the logical line (folds included).
            let mut vend = end;
            while matches!(block.get(vend), Some(b' ' | b'\t')) {
                vend = memchr::memchr(b'\n', &block[vend..]).map_or(block.len(), |p| vend + p + 1);
            }
            let colon = line.iter().position(|&c| c == b':');
            let value = colon.map_or(&[][..], |c| &block[pos + c + 1..vend]);
            let n = parse_content_length(value)
                .ok_or(ParseError::new(ErrorKind::BadContentLength, pos))?;
            if found.is_some() {
                return Err(ParseError::new(
                    ErrorKind::DuplicateHeader("Content-Length"),
                    pos,
                ));
            }
            found = Some(n);
            pos = vend;
            continue;
        }
        pos = end;
    }
    found.ok_or(ParseError::new(
        ErrorKind::MissingHeader("Content-Length"),
        0,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Message;

    const MSG: &[u8] = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nContent-Length: 5\r\n\r\nhello";

    fn framer() -> StreamFramer {
        StreamFramer::new(Limits::default())
    }

    fn drain(f: &mut StreamFramer) -> Vec<Frame> {
        let mut out = Vec::new();
        while let Some(fr) = f.next_frame().unwrap() {
            out.push(fr);
        }
        out
    }

    #[test]
    fn whole_and_back_to_back() {
        let mut f = framer();
        let mut data = MSG.to_vec();
        data.extend_from_slice(MSG);
        f.push(&data);
        let frames = drain(&mut f);
        assert_eq!(frames, vec![Frame::Message(Bytes::from_static(MSG)); 2]);
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn byte_by_byte() {
        let mut f = framer();
        let mut frames = Vec::new();
        let mut data = b"\r\n\r\n".to_vec();
        data.extend_from_slice(MSG);
        data.extend_from_slice(b"\r\n\r\n\r\n");
        data.extend_from_slice(MSG);
        for b in &data {
            f.push(std::slice::from_ref(b));
            frames.extend(drain(&mut f));
        }
        assert_eq!(
            frames,
            vec![
                Frame::KeepAlive,
                Frame::Message(Bytes::from_static(MSG)),
                Frame::KeepAlive,
                Frame::Message(Bytes::from_static(MSG)),
            ]
        );
        let m = Message::parse(Bytes::from_static(MSG), &Limits::default()).unwrap();
        assert_eq!(m.body(), b"hello");
    }

    #[test]
    fn keepalives() {
        let mut f = framer();
        f.push(b"\r\n\r\n\r\n\r\n");
        assert_eq!(drain(&mut f), vec![Frame::KeepAlive, Frame::KeepAlive]);
        // A pong: consumed, nothing reported, nothing left buffered.
        f.push(b"\r\n");
        assert_eq!(drain(&mut f), vec![]);
        assert_eq!(f.buffered(), 0);
        // A ping split in two.
        f.push(b"\r\n");
        assert_eq!(f.next_frame(), Ok(Some(Frame::KeepAlive)));
        // A stray CRLF before a message is skipped.
        f.push(b"\r\n");
        f.push(MSG);
        assert_eq!(drain(&mut f), vec![Frame::Message(Bytes::from_static(MSG))]);
    }

    #[test]
    fn partial_headers_and_body() {
        let mut f = framer();
        f.push(&MSG[..30]);
        assert_eq!(f.next_frame(), Ok(None));
        assert_eq!(f.buffered(), 30);
        f.push(&MSG[30..MSG.len() - 2]);
        assert_eq!(f.next_frame(), Ok(None));
        f.push(&MSG[MSG.len() - 2..]);
        assert_eq!(
            f.next_frame(),
            Ok(Some(Frame::Message(Bytes::from_static(MSG))))
        );
    }

    #[test]
    fn folded_and_compact_content_length() {
        let msg = b"OPTIONS sip:a SIP/2.0\r\nl:\r\n 3\r\n\r\nabc";
        let mut f = framer();
        f.push(msg);
        assert_eq!(
            drain(&mut f),
            vec![Frame::Message(Bytes::copy_from_slice(msg))]
        );
    }

    #[test]
    fn errors_are_final() {
        let mut f = framer();
        f.push(b"OPTIONS sip:a SIP/2.0\r\nVia: x\r\n\r\n");
        assert_eq!(
            f.next_frame().unwrap_err().kind,
            ErrorKind::MissingHeader("Content-Length")
        );
        f.push(MSG);
        assert!(f.next_frame().is_err());

        let mut f = framer();
        f.push(b"OPTIONS sip:a SIP/2.0\r\nContent-Length: -999\r\n\r\n");
        assert_eq!(
            f.next_frame().unwrap_err().kind,
            ErrorKind::BadContentLength
        );

        let mut f = framer();
        f.push(b"OPTIONS sip:a SIP/2.0\r\nl: 1\r\nContent-Length: 1\r\n\r\nx");
        assert_eq!(
            f.next_frame().unwrap_err().kind,
            ErrorKind::DuplicateHeader("Content-Length")
        );
    }

    #[test]
    fn oversize() {
        let limits = Limits {
            max_message_size: 100,
            ..Limits::default()
        };
        let mut f = StreamFramer::new(limits);
        f.push(b"OPTIONS sip:a SIP/2.0\r\nContent-Length: 1000\r\n\r\n");
        assert_eq!(f.next_frame().unwrap_err().kind, ErrorKind::MessageTooLarge);
        let mut f = StreamFramer::new(limits);
        f.push(&[b'x'; 101]);
        assert_eq!(f.next_frame().unwrap_err().kind, ErrorKind::MessageTooLarge);
        assert_eq!(f.buffered(), 0);
        let mut f = StreamFramer::new(limits);
        f.push(b"OPTIONS sip:a SIP/2.0\r\nContent-Length: 99999999999999999999999\r\n\r\n");
        assert_eq!(
            f.next_frame().unwrap_err().kind,
            ErrorKind::BadContentLength
        );
        let mut f = StreamFramer::new(limits);
        f.push(b"OPTIONS sip:a SIP/2.0\r\nContent-Length: 18446744073709551615\r\n\r\n");
        assert_eq!(f.next_frame().unwrap_err().kind, ErrorKind::MessageTooLarge);
    }
}
