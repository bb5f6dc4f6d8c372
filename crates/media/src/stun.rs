//! STUN (RFC 5389) as an ICE-lite agent needs it (RFC 8445 §2.5): parse a
//! Binding request, authenticate it with the short-term credentials from
//! SDP, and write the success or error response.
//!
//! [`Message::parse`] borrows the datagram and records attribute offsets, so
//! it allocates nothing; [`MessageWriter`] writes into a caller buffer. A
//! STUN datagram is at most one UDP payload, so every step is bounded by the
//! input length, and malformed input is an error, never a panic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

/// The fixed value in bytes 4..8 of every RFC 5389 message.
pub const MAGIC_COOKIE: u32 = 0x2112_A442;
/// Message header length.
pub const HEADER_LEN: usize = 20;
/// The Binding method, the only one ICE uses.
pub const METHOD_BINDING: u16 = 0x0001;
/// XORed into the CRC-32 of FINGERPRINT so STUN cannot be mistaken for
/// another protocol that also uses CRC-32 (RFC 5389 §15.5).
const FINGERPRINT_XOR: u32 = 0x5354_554E;
/// HMAC-SHA1 output length.
const INTEGRITY_LEN: usize = 20;
/// How many unknown comprehension-required attributes a 420 response lists;
/// a legitimate peer sends none, so a few are enough to be useful.
pub const MAX_UNKNOWN: usize = 4;

/// Attribute types used here (RFC 5389 §18.2, RFC 8445 §16.1).
pub mod attr {
    /// MAPPED-ADDRESS.
    pub const MAPPED_ADDRESS: u16 = 0x0001;
    /// USERNAME.
    pub const USERNAME: u16 = 0x0006;
    /// MESSAGE-INTEGRITY (HMAC-SHA1).
    pub const MESSAGE_INTEGRITY: u16 = 0x0008;
    /// ERROR-CODE.
    pub const ERROR_CODE: u16 = 0x0009;
    /// UNKNOWN-ATTRIBUTES.
    pub const UNKNOWN_ATTRIBUTES: u16 = 0x000A;
    /// XOR-MAPPED-ADDRESS.
    pub const XOR_MAPPED_ADDRESS: u16 = 0x0020;
    /// PRIORITY (ICE).
    pub const PRIORITY: u16 = 0x0024;
    /// USE-CANDIDATE (ICE).
    pub const USE_CANDIDATE: u16 = 0x0025;
    /// SOFTWARE.
    pub const SOFTWARE: u16 = 0x8022;
    /// FINGERPRINT.
    pub const FINGERPRINT: u16 = 0x8028;
    /// ICE-CONTROLLED.
    pub const ICE_CONTROLLED: u16 = 0x8029;
    /// ICE-CONTROLLING.
    pub const ICE_CONTROLLING: u16 = 0x802A;
}

/// Message class, encoded in two bits spread over the message type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Request (expects a response).
    Request,
    /// Indication (no response; ICE keepalives).
    Indication,
    /// Success response.
    Success,
    /// Error response.
    Error,
}

impl Class {
    fn bits(self) -> u16 {
        match self {
            Class::Request => 0,
            Class::Indication => 1,
            Class::Success => 2,
            Class::Error => 3,
        }
    }
}

/// The 16-bit message type of a class and method (RFC 5389 §6).
pub fn message_type(class: Class, method: u16) -> u16 {
    let m = method & 0x0FFF;
    let c = class.bits();
    (m & 0x000F) | ((m & 0x0070) << 1) | ((m & 0x0F80) << 2) | ((c & 1) << 4) | ((c & 2) << 7)
}

fn split_message_type(t: u16) -> (Class, u16) {
    let class = match ((t >> 4) & 1) | ((t >> 7) & 2) {
        0 => Class::Request,
        1 => Class::Indication,
        2 => Class::Success,
        _ => Class::Error,
    };
    let method = (t & 0x000F) | ((t >> 1) & 0x0070) | ((t >> 2) & 0x0F80);
    (class, method)
}

/// Why a datagram is not a well-formed STUN message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Shorter than the 20-byte header.
    #[error("shorter than the STUN header")]
    TooShort,
    /// The two leading bits are not zero or the magic cookie is wrong.
    #[error("not an RFC 5389 STUN message")]
    NotStun,
    /// The length field disagrees with the datagram or is not a multiple of 4.
    #[error("message length does not match the datagram")]
    BadLength,
    /// An attribute runs past the end of the message.
    #[error("attribute {0:#06x} is truncated")]
    Truncated(u16),
    /// A known attribute has a value of the wrong size or form.
    #[error("attribute {0:#06x} is malformed")]
    BadAttribute(u16),
    /// Something follows FINGERPRINT, which must be last.
    #[error("attribute after FINGERPRINT")]
    AfterFingerprint,
}

/// A parsed STUN message borrowing the datagram.
#[derive(Debug, Clone)]
pub struct Message<'a> {
    raw: &'a [u8],
    class: Class,
    method: u16,
    transaction_id: [u8; 12],
    username: Option<&'a [u8]>,
    /// Offset of the MESSAGE-INTEGRITY attribute header.
    integrity: Option<usize>,
    /// Offset of the FINGERPRINT attribute header.
    fingerprint: Option<usize>,
    priority: Option<u32>,
    use_candidate: bool,
    ice_controlling: Option<u64>,
    ice_controlled: Option<u64>,
    xor_mapped_address: Option<SocketAddr>,
    error_code: Option<u16>,
    unknown: [u16; MAX_UNKNOWN],
    unknown_len: usize,
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl<'a> Message<'a> {
    /// Parses one datagram, which must hold exactly one message.
    ///
    /// Attributes after MESSAGE-INTEGRITY other than FINGERPRINT are ignored
    /// (RFC 5389 §15.4); unknown comprehension-optional attributes are
    /// skipped and unknown comprehension-required ones remembered for a 420.
    pub fn parse(raw: &'a [u8]) -> Result<Self, ParseError> {
        if raw.len() < HEADER_LEN {
            return Err(ParseError::TooShort);
        }
        let msg_type = be16(raw, 0);
        if msg_type & 0xC000 != 0 || be32(raw, 4) != MAGIC_COOKIE {
            return Err(ParseError::NotStun);
        }
        let length = usize::from(be16(raw, 2));
        if length % 4 != 0 || HEADER_LEN + length != raw.len() {
            return Err(ParseError::BadLength);
        }
        let (class, method) = split_message_type(msg_type);
        let mut transaction_id = [0u8; 12];
        transaction_id.copy_from_slice(&raw[8..HEADER_LEN]);
        let mut m = Message {
            raw,
            class,
            method,
            transaction_id,
            username: None,
            integrity: None,
            fingerprint: None,
            priority: None,
            use_candidate: false,
            ice_controlling: None,
            ice_controlled: None,
            xor_mapped_address: None,
            error_code: None,
            unknown: [0; MAX_UNKNOWN],
            unknown_len: 0,
        };
        let mut at = HEADER_LEN;
        while at < raw.len() {
            if raw.len() - at < 4 {
                return Err(ParseError::Truncated(0));
            }
            let typ = be16(raw, at);
            let len = usize::from(be16(raw, at + 2));
            let start = at + 4;
            let next = start + len.next_multiple_of(4);
            if next > raw.len() {
                return Err(ParseError::Truncated(typ));
            }
            if m.fingerprint.is_some() {
                return Err(ParseError::AfterFingerprint);
            }
            let value = &raw[start..start + len];
            if m.integrity.is_some() && typ != attr::FINGERPRINT {
                at = next;
                continue;
            }
            m.attribute(typ, value, at)?;
            at = next;
        }
        Ok(m)
    }

    fn attribute(&mut self, typ: u16, value: &'a [u8], at: usize) -> Result<(), ParseError> {
        let bad = ParseError::BadAttribute(typ);
        match typ {
            attr::USERNAME => {
                // RFC 5389 §15.3: fewer than 513 bytes.
                if value.len() > 512 {
                    return Err(bad);
                }
                self.username = Some(value);
            }
            attr::MESSAGE_INTEGRITY => {
                if value.len() != INTEGRITY_LEN {
                    return Err(bad);
                }
                self.integrity = Some(at);
            }
            attr::FINGERPRINT => {
                if value.len() != 4 {
                    return Err(bad);
                }
                self.fingerprint = Some(at);
            }
            attr::PRIORITY => self.priority = Some(u32_value(value).ok_or(bad)?),
            attr::USE_CANDIDATE => {
                if !value.is_empty() {
                    return Err(bad);
                }
                self.use_candidate = true;
            }
            attr::ICE_CONTROLLING => self.ice_controlling = Some(u64_value(value).ok_or(bad)?),
            attr::ICE_CONTROLLED => self.ice_controlled = Some(u64_value(value).ok_or(bad)?),
            attr::XOR_MAPPED_ADDRESS => {
                self.xor_mapped_address =
                    Some(xor_address(value, &self.transaction_id).ok_or(bad)?);
            }
            attr::ERROR_CODE => {
                if value.len() < 4 {
                    return Err(bad);
                }
                self.error_code = Some(u16::from(value[2] & 0x07) * 100 + u16::from(value[3]));
            }
            attr::MAPPED_ADDRESS | attr::UNKNOWN_ATTRIBUTES | attr::SOFTWARE => {}
            // 0x0000..=0x7FFF are comprehension-required.
            t if t < 0x8000 && self.unknown_len < MAX_UNKNOWN && !self.unknown().contains(&t) => {
                self.unknown[self.unknown_len] = t;
                self.unknown_len += 1;
            }
            _ => {}
        }
        Ok(())
    }

    /// The datagram.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }
    /// The class.
    pub fn class(&self) -> Class {
        self.class
    }
    /// The method (1 = Binding).
    pub fn method(&self) -> u16 {
        self.method
    }
    /// The 96-bit transaction id.
    pub fn transaction_id(&self) -> &[u8; 12] {
        &self.transaction_id
    }
    /// USERNAME, as raw bytes.
    pub fn username(&self) -> Option<&'a [u8]> {
        self.username
    }
    /// PRIORITY.
    pub fn priority(&self) -> Option<u32> {
        self.priority
    }
    /// Whether USE-CANDIDATE is present.
    pub fn use_candidate(&self) -> bool {
        self.use_candidate
    }
    /// The tie-breaker of ICE-CONTROLLING.
    pub fn ice_controlling(&self) -> Option<u64> {
        self.ice_controlling
    }
    /// The tie-breaker of ICE-CONTROLLED.
    pub fn ice_controlled(&self) -> Option<u64> {
        self.ice_controlled
    }
    /// XOR-MAPPED-ADDRESS, decoded.
    pub fn xor_mapped_address(&self) -> Option<SocketAddr> {
        self.xor_mapped_address
    }
    /// The ERROR-CODE number (e.g. 401).
    pub fn error_code(&self) -> Option<u16> {
        self.error_code
    }
    /// Unknown comprehension-required attribute types (at most [`MAX_UNKNOWN`]).
    pub fn unknown(&self) -> &[u16] {
        &self.unknown[..self.unknown_len]
    }
    /// Whether MESSAGE-INTEGRITY is present.
    pub fn has_integrity(&self) -> bool {
        self.integrity.is_some()
    }
    /// Whether FINGERPRINT is present.
    pub fn has_fingerprint(&self) -> bool {
        self.fingerprint.is_some()
    }

    /// Checks FINGERPRINT: `None` when absent.
    pub fn fingerprint_valid(&self) -> Option<bool> {
        let at = self.fingerprint?;
        // FINGERPRINT is last, so the length field already covers it.
        let expected = crc32fast::hash(&self.raw[..at]) ^ FINGERPRINT_XOR;
        Some(be32(self.raw, at + 4) == expected)
    }

    /// Checks MESSAGE-INTEGRITY with a short-term credential key (the ICE
    /// password of the receiving side). False when absent.
    pub fn integrity_valid(&self, key: &[u8]) -> bool {
        let Some(at) = self.integrity else {
            return false;
        };
        // The HMAC covers the message up to MESSAGE-INTEGRITY with the
        // length field counting up to the end of that attribute (§15.4).
        let mut header = [0u8; HEADER_LEN];
        header.copy_from_slice(&self.raw[..HEADER_LEN]);
        let covered = (at + 4 + INTEGRITY_LEN - HEADER_LEN) as u16;
        header[2..4].copy_from_slice(&covered.to_be_bytes());
        let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(key) else {
            return false;
        };
        mac.update(&header);
        mac.update(&self.raw[HEADER_LEN..at]);
        mac.verify_slice(&self.raw[at + 4..at + 4 + INTEGRITY_LEN])
            .is_ok()
    }
}

fn u32_value(v: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(v.try_into().ok()?))
}

fn u64_value(v: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(v.try_into().ok()?))
}

/// The mask XORed into an address: the magic cookie, then the transaction
/// id for the remaining bytes of an IPv6 address.
fn xor_mask(transaction_id: &[u8; 12]) -> [u8; 16] {
    let mut mask = [0u8; 16];
    mask[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    mask[4..].copy_from_slice(transaction_id);
    mask
}

fn xor_address(v: &[u8], transaction_id: &[u8; 12]) -> Option<SocketAddr> {
    let mask = xor_mask(transaction_id);
    let port = be16(v.get(..4)?, 2) ^ (MAGIC_COOKIE >> 16) as u16;
    let ip = match (v[1], v.len()) {
        (0x01, 8) => {
            let mut o = [0u8; 4];
            for (i, b) in o.iter_mut().enumerate() {
                *b = v[4 + i] ^ mask[i];
            }
            IpAddr::V4(Ipv4Addr::from(o))
        }
        (0x02, 20) => {
            let mut o = [0u8; 16];
            for (i, b) in o.iter_mut().enumerate() {
                *b = v[4 + i] ^ mask[i];
            }
            IpAddr::V6(Ipv6Addr::from(o))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// The output buffer cannot hold the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("STUN message does not fit the buffer")]
pub struct BufferTooSmall;

/// Writes a STUN message into a caller buffer, attribute by attribute.
///
/// MESSAGE-INTEGRITY and FINGERPRINT must come last, in that order; the
/// writer keeps the header length field current so each sees the length
/// RFC 5389 §15.4 and §15.5 require.
#[derive(Debug)]
pub struct MessageWriter<'b> {
    buf: &'b mut [u8],
    len: usize,
    /// Padding byte; RFC 5389 allows any, RFC 5769 samples use spaces.
    pad: u8,
}

impl<'b> MessageWriter<'b> {
    /// Starts a message with the given class, method and transaction id.
    pub fn new(
        buf: &'b mut [u8],
        class: Class,
        method: u16,
        transaction_id: &[u8; 12],
    ) -> Result<Self, BufferTooSmall> {
        if buf.len() < HEADER_LEN {
            return Err(BufferTooSmall);
        }
        buf[..2].copy_from_slice(&message_type(class, method).to_be_bytes());
        buf[2..4].fill(0);
        buf[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
        buf[8..HEADER_LEN].copy_from_slice(transaction_id);
        Ok(Self {
            buf,
            len: HEADER_LEN,
            pad: 0,
        })
    }

    fn set_length(&mut self, body: usize) {
        let body = body as u16;
        self.buf[2..4].copy_from_slice(&body.to_be_bytes());
    }

    /// Appends an attribute, padded to a multiple of four bytes.
    pub fn attribute(&mut self, typ: u16, value: &[u8]) -> Result<(), BufferTooSmall> {
        let padded = value.len().next_multiple_of(4);
        let end = self.len + 4 + padded;
        // The length field is 16 bits.
        if end > self.buf.len() || end - HEADER_LEN > usize::from(u16::MAX) {
            return Err(BufferTooSmall);
        }
        let at = self.len;
        self.buf[at..at + 2].copy_from_slice(&typ.to_be_bytes());
        self.buf[at + 2..at + 4].copy_from_slice(&(value.len() as u16).to_be_bytes());
        self.buf[at + 4..at + 4 + value.len()].copy_from_slice(value);
        self.buf[at + 4 + value.len()..end].fill(self.pad);
        self.len = end;
        self.set_length(end - HEADER_LEN);
        Ok(())
    }

    /// Appends XOR-MAPPED-ADDRESS (or another XOR address attribute).
    pub fn xor_address(&mut self, typ: u16, addr: SocketAddr) -> Result<(), BufferTooSmall> {
        let mut tid = [0u8; 12];
        tid.copy_from_slice(&self.buf[8..HEADER_LEN]);
        let mask = xor_mask(&tid);
        let mut v = [0u8; 20];
        let port = addr.port() ^ (MAGIC_COOKIE >> 16) as u16;
        v[2..4].copy_from_slice(&port.to_be_bytes());
        let len = match addr.ip() {
            IpAddr::V4(ip) => {
                v[1] = 0x01;
                for (i, b) in ip.octets().iter().enumerate() {
                    v[4 + i] = b ^ mask[i];
                }
                8
            }
            IpAddr::V6(ip) => {
                v[1] = 0x02;
                for (i, b) in ip.octets().iter().enumerate() {
                    v[4 + i] = b ^ mask[i];
                }
                20
            }
        };
        self.attribute(typ, &v[..len])
    }

    /// Appends ERROR-CODE with a reason phrase (RFC 5389 §15.6).
    pub fn error_code(&mut self, code: u16, reason: &str) -> Result<(), BufferTooSmall> {
        let reason = &reason.as_bytes()[..reason.len().min(128)];
        let mut v = [0u8; 4 + 128];
        v[2] = ((code / 100) & 0x07) as u8;
        v[3] = (code % 100) as u8;
        v[4..4 + reason.len()].copy_from_slice(reason);
        self.attribute(attr::ERROR_CODE, &v[..4 + reason.len()])
    }

    /// Appends UNKNOWN-ATTRIBUTES.
    pub fn unknown_attributes(&mut self, types: &[u16]) -> Result<(), BufferTooSmall> {
        let mut v = [0u8; 2 * MAX_UNKNOWN];
        let types = &types[..types.len().min(MAX_UNKNOWN)];
        for (i, t) in types.iter().enumerate() {
            v[2 * i..2 * i + 2].copy_from_slice(&t.to_be_bytes());
        }
        self.attribute(attr::UNKNOWN_ATTRIBUTES, &v[..2 * types.len()])
    }

    /// Appends MESSAGE-INTEGRITY computed with `key`.
    pub fn message_integrity(&mut self, key: &[u8]) -> Result<(), BufferTooSmall> {
        let end = self.len + 4 + INTEGRITY_LEN;
        if end > self.buf.len() {
            return Err(BufferTooSmall);
        }
        self.set_length(end - HEADER_LEN);
        let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(key) else {
            return Err(BufferTooSmall);
        };
        mac.update(&self.buf[..self.len]);
        let tag = mac.finalize().into_bytes();
        self.attribute(attr::MESSAGE_INTEGRITY, &tag)
    }

    /// Appends FINGERPRINT and returns the message length.
    pub fn fingerprint(mut self) -> Result<usize, BufferTooSmall> {
        let end = self.len + 8;
        if end > self.buf.len() {
            return Err(BufferTooSmall);
        }
        self.set_length(end - HEADER_LEN);
        let crc = crc32fast::hash(&self.buf[..self.len]) ^ FINGERPRINT_XOR;
        self.attribute(attr::FINGERPRINT, &crc.to_be_bytes())?;
        Ok(self.len)
    }

    /// The message length so far, for messages without FINGERPRINT.
    pub fn finish(self) -> usize {
        self.len
    }
}

/// The role the peer claims in a Binding request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerRole {
    /// ICE-CONTROLLING with its tie-breaker: what a full agent facing a
    /// lite one must send.
    Controlling(u64),
    /// ICE-CONTROLLED with its tie-breaker.
    Controlled(u64),
}

/// An authenticated Binding request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindingRequest<'a> {
    /// The transaction id the response echoes.
    pub transaction_id: [u8; 12],
    /// The peer's ufrag: the part of USERNAME after `:`.
    pub remote_ufrag: &'a str,
    /// USE-CANDIDATE: the controlling peer nominates this pair.
    pub use_candidate: bool,
    /// PRIORITY of the peer-reflexive candidate the peer would learn.
    pub priority: Option<u32>,
    /// ICE-CONTROLLING / ICE-CONTROLLED.
    pub role: Option<PeerRole>,
}

/// Why a datagram got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ignored {
    /// Not parseable as STUN.
    Malformed(ParseError),
    /// FINGERPRINT present but wrong: not STUN, or corrupted (§7.3).
    BadFingerprint,
    /// An indication or a response: nothing to answer.
    NotRequest,
    /// The output buffer is too small for the response.
    BufferTooSmall,
}

/// What [`answer_binding`] did with a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer<'a> {
    /// A valid Binding request; the success response is `out[..len]`.
    Success {
        /// Response length.
        len: usize,
        /// The request.
        request: BindingRequest<'a>,
    },
    /// A bad request; the error response is `out[..len]`.
    Error {
        /// Response length.
        len: usize,
        /// 400, 401 or 420.
        code: u16,
    },
    /// Nothing to send.
    Ignored(Ignored),
}

/// Short-term credentials of one ICE session, as the lite side sees them.
#[derive(Debug, Clone, Copy)]
pub struct Credentials<'a> {
    /// Our `a=ice-ufrag`: the part of USERNAME before `:`.
    pub local_ufrag: &'a str,
    /// Our `a=ice-pwd`: the MESSAGE-INTEGRITY key, both ways.
    pub local_pwd: &'a str,
    /// The peer's `a=ice-ufrag` when its SDP is known; when `None`, any
    /// peer ufrag is accepted (checks can beat the SDP answer), the request
    /// still being authenticated by our password.
    pub remote_ufrag: Option<&'a str>,
}

/// Answers a datagram as an ICE-lite agent: authenticates a Binding request
/// (RFC 5389 §10.1.2, RFC 8445 §7.3) and writes the response into `out`:
/// success with XOR-MAPPED-ADDRESS = `from`, MESSAGE-INTEGRITY and
/// FINGERPRINT; 400 when USERNAME or MESSAGE-INTEGRITY is missing or the
/// method is not Binding, 401 when they do not match (both without
/// MESSAGE-INTEGRITY, as §10.1.2 requires); 420 for unknown
/// comprehension-required attributes. A missing FINGERPRINT is tolerated;
/// a wrong one means the datagram is dropped.
pub fn answer_binding<'a>(
    packet: &'a [u8],
    from: SocketAddr,
    creds: &Credentials<'_>,
    out: &mut [u8],
) -> Answer<'a> {
    let msg = match Message::parse(packet) {
        Ok(m) => m,
        Err(e) => return Answer::Ignored(Ignored::Malformed(e)),
    };
    if msg.fingerprint_valid() == Some(false) {
        return Answer::Ignored(Ignored::BadFingerprint);
    }
    if msg.class() != Class::Request {
        return Answer::Ignored(Ignored::NotRequest);
    }
    let tid = *msg.transaction_id();
    let reject = |out: &mut [u8], code, integrity: Option<&[u8]>, unknown: &[u16]| match write_error(
        out,
        msg.method(),
        &tid,
        code,
        integrity,
        unknown,
    ) {
        Ok(len) => Answer::Error { len, code },
        Err(BufferTooSmall) => Answer::Ignored(Ignored::BufferTooSmall),
    };
    if msg.method() != METHOD_BINDING {
        return reject(out, 400, None, &[]);
    }
    let Some(username) = msg.username() else {
        return reject(out, 400, None, &[]);
    };
    if !msg.has_integrity() {
        return reject(out, 400, None, &[]);
    }
    let Some(remote_ufrag) = split_username(username, creds) else {
        return reject(out, 401, None, &[]);
    };
    let key = creds.local_pwd.as_bytes();
    if !msg.integrity_valid(key) {
        return reject(out, 401, None, &[]);
    }
    if !msg.unknown().is_empty() {
        return reject(out, 420, Some(key), msg.unknown());
    }
    let role = match (msg.ice_controlling(), msg.ice_controlled()) {
        (Some(t), _) => Some(PeerRole::Controlling(t)),
        (None, Some(t)) => Some(PeerRole::Controlled(t)),
        (None, None) => None,
    };
    let request = BindingRequest {
        transaction_id: tid,
        remote_ufrag,
        use_candidate: msg.use_candidate(),
        priority: msg.priority(),
        role,
    };
    match write_binding_success(out, &tid, from, key) {
        Ok(len) => Answer::Success { len, request },
        Err(BufferTooSmall) => Answer::Ignored(Ignored::BufferTooSmall),
    }
}

/// `<local ufrag>:<remote ufrag>` → the remote ufrag, if it matches.
fn split_username<'a>(username: &'a [u8], creds: &Credentials<'_>) -> Option<&'a str> {
    let local = creds.local_ufrag.as_bytes();
    let rest = username.strip_prefix(local)?.strip_prefix(b":")?;
    let remote = std::str::from_utf8(rest).ok()?;
    match creds.remote_ufrag {
        Some(expected) if expected != remote => None,
        _ if remote.is_empty() => None,
        _ => Some(remote),
    }
}

/// Writes a Binding success response: XOR-MAPPED-ADDRESS, MESSAGE-INTEGRITY
/// keyed with `key`, FINGERPRINT. Returns its length.
pub fn write_binding_success(
    out: &mut [u8],
    transaction_id: &[u8; 12],
    mapped: SocketAddr,
    key: &[u8],
) -> Result<usize, BufferTooSmall> {
    let mut w = MessageWriter::new(out, Class::Success, METHOD_BINDING, transaction_id)?;
    w.xor_address(attr::XOR_MAPPED_ADDRESS, mapped)?;
    w.message_integrity(key)?;
    w.fingerprint()
}

/// The reason phrase for the error codes used here.
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        400 => "Bad Request",
        401 => "Unauthorized",
        420 => "Unknown Attribute",
        487 => "Role Conflict",
        _ => "Error",
    }
}

/// Writes an error response with ERROR-CODE, UNKNOWN-ATTRIBUTES when
/// given, MESSAGE-INTEGRITY when `key` is given, and FINGERPRINT.
pub fn write_error(
    out: &mut [u8],
    method: u16,
    transaction_id: &[u8; 12],
    code: u16,
    key: Option<&[u8]>,
    unknown: &[u16],
) -> Result<usize, BufferTooSmall> {
    let mut w = MessageWriter::new(out, Class::Error, method, transaction_id)?;
    w.error_code(code, reason_phrase(code))?;
    if !unknown.is_empty() {
        w.unknown_attributes(unknown)?;
    }
    if let Some(key) = key {
        w.message_integrity(key)?;
    }
    w.fingerprint()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWORD: &str = "VOkJxbRl1RmTxUk/WvJxBt";

    /// RFC 5769 §2.1: Binding request with SOFTWARE, PRIORITY,
    /// ICE-CONTROLLED, USERNAME "evtj:h6vY", MESSAGE-INTEGRITY, FINGERPRINT.
    const RFC5769_REQUEST: [u8; 108] = [
        0x00, 0x01, 0x00, 0x58, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6,
        0x86, 0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x10, 0x53, 0x54, 0x55, 0x4e, 0x20, 0x74,
        0x65, 0x73, 0x74, 0x20, 0x63, 0x6c, 0x69, 0x65, 0x6e, 0x74, 0x00, 0x24, 0x00, 0x04, 0x6e,
        0x00, 0x01, 0xff, 0x80, 0x29, 0x00, 0x08, 0x93, 0x2f, 0xf9, 0xb1, 0x51, 0x26, 0x3b, 0x36,
        0x00, 0x06, 0x00, 0x09, 0x65, 0x76, 0x74, 0x6a, 0x3a, 0x68, 0x36, 0x76, 0x59, 0x20, 0x20,
        0x20, 0x00, 0x08, 0x00, 0x14, 0x9a, 0xea, 0xa7, 0x0c, 0xbf, 0xd8, 0xcb, 0x56, 0x78, 0x1e,
        0xf2, 0xb5, 0xb2, 0xd3, 0xf2, 0x49, 0xc1, 0xb5, 0x71, 0xa2, 0x80, 0x28, 0x00, 0x04, 0xe5,
        0x7a, 0x3b, 0xcf,
    ];

    /// RFC 5769 §2.2: success response, SOFTWARE "test vector",
    /// XOR-MAPPED-ADDRESS 192.0.2.1:32853.
    const RFC5769_IPV4_RESPONSE: [u8; 80] = [
        0x01, 0x01, 0x00, 0x3c, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6,
        0x86, 0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76,
        0x65, 0x63, 0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47, 0xe1,
        0x12, 0xa6, 0x43, 0x00, 0x08, 0x00, 0x14, 0x2b, 0x91, 0xf5, 0x99, 0xfd, 0x9e, 0x90, 0xc3,
        0x8c, 0x74, 0x89, 0xf9, 0x2a, 0xf9, 0xba, 0x53, 0xf0, 0x6b, 0xe7, 0xd7, 0x80, 0x28, 0x00,
        0x04, 0xc0, 0x7d, 0x4c, 0x96,
    ];

    /// RFC 5769 §2.3: the same with XOR-MAPPED-ADDRESS
    /// [2001:db8:1234:5678:11:2233:4455:6677]:32853.
    const RFC5769_IPV6_RESPONSE: [u8; 92] = [
        0x01, 0x01, 0x00, 0x48, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6,
        0x86, 0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76,
        0x65, 0x63, 0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x14, 0x00, 0x02, 0xa1, 0x47, 0x01,
        0x13, 0xa9, 0xfa, 0xa5, 0xd3, 0xf1, 0x79, 0xbc, 0x25, 0xf4, 0xb5, 0xbe, 0xd2, 0xb9, 0xd9,
        0x00, 0x08, 0x00, 0x14, 0xa3, 0x82, 0x95, 0x4e, 0x4b, 0xe6, 0x7b, 0xf1, 0x17, 0x84, 0xc9,
        0x7c, 0x82, 0x92, 0xc2, 0x75, 0xbf, 0xe3, 0xed, 0x41, 0x80, 0x28, 0x00, 0x04, 0xc8, 0xfb,
        0x0b, 0x4c,
    ];

    const TID: [u8; 12] = [
        0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
    ];

    fn creds() -> Credentials<'static> {
        Credentials {
            local_ufrag: "evtj",
            local_pwd: PASSWORD,
            remote_ufrag: Some("h6vY"),
        }
    }

    fn from() -> SocketAddr {
        "192.0.2.1:32853".parse().unwrap()
    }

    #[test]
    fn message_type_bits() {
        assert_eq!(message_type(Class::Request, METHOD_BINDING), 0x0001);
        assert_eq!(message_type(Class::Indication, METHOD_BINDING), 0x0011);
        assert_eq!(message_type(Class::Success, METHOD_BINDING), 0x0101);
        assert_eq!(message_type(Class::Error, METHOD_BINDING), 0x0111);
        for t in [0x0001, 0x0011, 0x0101, 0x0111, 0x0003, 0x3EEF] {
            let (c, m) = split_message_type(t);
            assert_eq!(message_type(c, m), t);
        }
    }

    #[test]
    fn rfc5769_sample_request() {
        let m = Message::parse(&RFC5769_REQUEST).unwrap();
        assert_eq!(m.class(), Class::Request);
        assert_eq!(m.method(), METHOD_BINDING);
        assert_eq!(m.transaction_id(), &TID);
        assert_eq!(m.username(), Some(&b"evtj:h6vY"[..]));
        assert_eq!(m.priority(), Some(0x6e00_01ff));
        assert_eq!(m.ice_controlled(), Some(0x932f_f9b1_5126_3b36));
        assert_eq!(m.ice_controlling(), None);
        assert!(!m.use_candidate());
        assert!(m.unknown().is_empty());
        assert_eq!(m.fingerprint_valid(), Some(true));
        assert!(m.integrity_valid(PASSWORD.as_bytes()));
        assert!(!m.integrity_valid(b"VOkJxbRl1RmTxUk/WvJxBu"));
    }

    #[test]
    fn rfc5769_sample_responses_parse_and_verify() {
        for (bytes, addr) in [
            (&RFC5769_IPV4_RESPONSE[..], "192.0.2.1:32853"),
            (
                &RFC5769_IPV6_RESPONSE[..],
                "[2001:db8:1234:5678:11:2233:4455:6677]:32853",
            ),
        ] {
            let m = Message::parse(bytes).unwrap();
            assert_eq!(m.class(), Class::Success);
            assert_eq!(m.xor_mapped_address(), Some(addr.parse().unwrap()));
            assert_eq!(m.fingerprint_valid(), Some(true));
            assert!(m.integrity_valid(PASSWORD.as_bytes()));
        }
    }

    /// The writer reproduces the RFC 5769 responses byte for byte (with the
    /// samples' space padding and SOFTWARE attribute).
    #[test]
    fn rfc5769_sample_responses_written_exactly() {
        for (expected, addr) in [
            (&RFC5769_IPV4_RESPONSE[..], "192.0.2.1:32853"),
            (
                &RFC5769_IPV6_RESPONSE[..],
                "[2001:db8:1234:5678:11:2233:4455:6677]:32853",
            ),
        ] {
            let mut buf = [0u8; 128];
            let mut w = MessageWriter::new(&mut buf, Class::Success, METHOD_BINDING, &TID).unwrap();
            w.pad = b' ';
            w.attribute(attr::SOFTWARE, b"test vector").unwrap();
            w.xor_address(attr::XOR_MAPPED_ADDRESS, addr.parse().unwrap())
                .unwrap();
            w.message_integrity(PASSWORD.as_bytes()).unwrap();
            let len = w.fingerprint().unwrap();
            assert_eq!(&buf[..len], expected);
        }
    }

    #[test]
    fn answers_rfc5769_request() {
        let mut out = [0u8; 256];
        let Answer::Success { len, request } =
            answer_binding(&RFC5769_REQUEST, from(), &creds(), &mut out)
        else {
            panic!("not answered")
        };
        assert_eq!(request.remote_ufrag, "h6vY");
        assert_eq!(request.priority, Some(0x6e00_01ff));
        assert_eq!(
            request.role,
            Some(PeerRole::Controlled(0x932f_f9b1_5126_3b36))
        );
        assert!(!request.use_candidate);
        let r = Message::parse(&out[..len]).unwrap();
        assert_eq!(r.class(), Class::Success);
        assert_eq!(r.transaction_id(), &TID);
        assert_eq!(r.xor_mapped_address(), Some(from()));
        assert!(r.integrity_valid(PASSWORD.as_bytes()));
        assert_eq!(r.fingerprint_valid(), Some(true));
        // Same attributes as the §2.2 sample minus SOFTWARE.
        assert_eq!(len, RFC5769_IPV4_RESPONSE.len() - 16);

        let v6: SocketAddr = "[2001:db8::1]:5000".parse().unwrap();
        let Answer::Success { len, .. } = answer_binding(&RFC5769_REQUEST, v6, &creds(), &mut out)
        else {
            panic!("not answered")
        };
        assert_eq!(
            Message::parse(&out[..len]).unwrap().xor_mapped_address(),
            Some(v6)
        );
    }

    /// A request as a browser sends it, built with the writer.
    fn request(username: &str, key: &str, extra: &[(u16, &[u8])]) -> Vec<u8> {
        let mut buf = [0u8; 512];
        let mut w = MessageWriter::new(&mut buf, Class::Request, METHOD_BINDING, &TID).unwrap();
        w.attribute(attr::USERNAME, username.as_bytes()).unwrap();
        w.attribute(attr::ICE_CONTROLLING, &7u64.to_be_bytes())
            .unwrap();
        w.attribute(attr::PRIORITY, &1_845_501_695u32.to_be_bytes())
            .unwrap();
        for (t, v) in extra {
            w.attribute(*t, v).unwrap();
        }
        w.message_integrity(key.as_bytes()).unwrap();
        let len = w.fingerprint().unwrap();
        buf[..len].to_vec()
    }

    fn error_code_of(out: &[u8], answer: Answer<'_>) -> (u16, bool) {
        let Answer::Error { len, code } = answer else {
            panic!("expected an error response, got {answer:?}")
        };
        let m = Message::parse(&out[..len]).unwrap();
        assert_eq!(m.class(), Class::Error);
        assert_eq!(m.error_code(), Some(code));
        assert_eq!(m.fingerprint_valid(), Some(true));
        (code, m.has_integrity())
    }

    #[test]
    fn use_candidate_and_controlling() {
        let req = request("evtj:h6vY", PASSWORD, &[(attr::USE_CANDIDATE, &[])]);
        let mut out = [0u8; 256];
        let Answer::Success { request, .. } = answer_binding(&req, from(), &creds(), &mut out)
        else {
            panic!()
        };
        assert!(request.use_candidate);
        assert_eq!(request.role, Some(PeerRole::Controlling(7)));
        assert_eq!(request.priority, Some(1_845_501_695));
    }

    #[test]
    fn unknown_remote_ufrag_is_accepted_when_sdp_unknown() {
        let req = request("evtj:zzzz", PASSWORD, &[]);
        let mut out = [0u8; 256];
        let c = Credentials {
            remote_ufrag: None,
            ..creds()
        };
        let Answer::Success { request, .. } = answer_binding(&req, from(), &c, &mut out) else {
            panic!()
        };
        assert_eq!(request.remote_ufrag, "zzzz");
    }

    #[test]
    fn error_responses() {
        let mut out = [0u8; 256];
        // Wrong local ufrag, wrong remote ufrag, empty remote: 401.
        for user in ["evtX:h6vY", "evtj:h6vZ", "evtj:", "evtj", "evtjh6vY"] {
            let req = request(user, PASSWORD, &[]);
            let a = answer_binding(&req, from(), &creds(), &mut out);
            assert_eq!(error_code_of(&out, a), (401, false), "{user}");
        }
        // Wrong password: 401 without MESSAGE-INTEGRITY.
        let req = request("evtj:h6vY", "wrong", &[]);
        let a = answer_binding(&req, from(), &creds(), &mut out);
        assert_eq!(error_code_of(&out, a), (401, false));
        // No USERNAME: 400.
        let mut buf = [0u8; 128];
        let mut w = MessageWriter::new(&mut buf, Class::Request, METHOD_BINDING, &TID).unwrap();
        w.message_integrity(PASSWORD.as_bytes()).unwrap();
        let len = w.fingerprint().unwrap();
        let a = answer_binding(&buf[..len], from(), &creds(), &mut out);
        assert_eq!(error_code_of(&out, a), (400, false));
        // No MESSAGE-INTEGRITY: 400.
        let mut w = MessageWriter::new(&mut buf, Class::Request, METHOD_BINDING, &TID).unwrap();
        w.attribute(attr::USERNAME, b"evtj:h6vY").unwrap();
        let len = w.fingerprint().unwrap();
        let a = answer_binding(&buf[..len], from(), &creds(), &mut out);
        assert_eq!(error_code_of(&out, a), (400, false));
        // Not Binding: 400.
        let w = MessageWriter::new(&mut buf, Class::Request, 0x003, &TID).unwrap();
        let len = w.fingerprint().unwrap();
        let a = answer_binding(&buf[..len], from(), &creds(), &mut out);
        assert_eq!(error_code_of(&out, a), (400, false));
        // Unknown comprehension-required attribute: 420, authenticated.
        let req = request("evtj:h6vY", PASSWORD, &[(0x7777, b"x")]);
        let a = answer_binding(&req, from(), &creds(), &mut out);
        let Answer::Error { len, .. } = a else {
            panic!()
        };
        assert_eq!(error_code_of(&out, a), (420, true));
        let m = Message::parse(&out[..len]).unwrap();
        assert!(m.integrity_valid(PASSWORD.as_bytes()));
        // Unknown comprehension-optional attributes are fine.
        let req = request("evtj:h6vY", PASSWORD, &[(0xC057, b"abcd")]);
        let a = answer_binding(&req, from(), &creds(), &mut out);
        assert!(matches!(a, Answer::Success { .. }));
    }

    #[test]
    fn ignored_datagrams() {
        let mut out = [0u8; 256];
        let mut bad = RFC5769_REQUEST;
        bad[107] ^= 1;
        assert_eq!(
            answer_binding(&bad, from(), &creds(), &mut out),
            Answer::Ignored(Ignored::BadFingerprint)
        );
        assert_eq!(
            answer_binding(&RFC5769_IPV4_RESPONSE, from(), &creds(), &mut out),
            Answer::Ignored(Ignored::NotRequest)
        );
        let mut buf = [0u8; 64];
        let w = MessageWriter::new(&mut buf, Class::Indication, METHOD_BINDING, &TID).unwrap();
        let len = w.fingerprint().unwrap();
        assert_eq!(
            answer_binding(&buf[..len], from(), &creds(), &mut out),
            Answer::Ignored(Ignored::NotRequest)
        );
        assert_eq!(
            answer_binding(&RFC5769_REQUEST, from(), &creds(), &mut out[..40]),
            Answer::Ignored(Ignored::BufferTooSmall)
        );
    }

    #[test]
    fn parse_errors() {
        assert_eq!(Message::parse(&[0; 19]).unwrap_err(), ParseError::TooShort);
        let mut m = RFC5769_REQUEST;
        m[4] = 0;
        assert_eq!(Message::parse(&m).unwrap_err(), ParseError::NotStun);
        assert_eq!(
            Message::parse(&RFC5769_REQUEST[..104]).unwrap_err(),
            ParseError::BadLength
        );
        // An attribute claiming more bytes than the message holds.
        let mut m = RFC5769_REQUEST;
        m[23] = 0xff;
        assert!(matches!(
            Message::parse(&m).unwrap_err(),
            ParseError::Truncated(attr::SOFTWARE)
        ));
        // PRIORITY of the wrong size.
        let mut buf = [0u8; 64];
        let mut w = MessageWriter::new(&mut buf, Class::Request, METHOD_BINDING, &TID).unwrap();
        w.attribute(attr::PRIORITY, &[1, 2]).unwrap();
        let len = w.finish();
        assert_eq!(
            Message::parse(&buf[..len]).unwrap_err(),
            ParseError::BadAttribute(attr::PRIORITY)
        );
        // Something after FINGERPRINT.
        let mut w = MessageWriter::new(&mut buf, Class::Request, METHOD_BINDING, &TID).unwrap();
        w.attribute(attr::FINGERPRINT, &[0; 4]).unwrap();
        w.attribute(attr::SOFTWARE, b"x").unwrap();
        let len = w.finish();
        assert_eq!(
            Message::parse(&buf[..len]).unwrap_err(),
            ParseError::AfterFingerprint
        );
    }

    /// Every prefix and every single-byte corruption of valid messages
    /// parses or fails cleanly, and never panics.
    #[test]
    fn mutations_never_panic() {
        let mut out = [0u8; 256];
        for sample in [
            &RFC5769_REQUEST[..],
            &RFC5769_IPV4_RESPONSE[..],
            &RFC5769_IPV6_RESPONSE[..],
        ] {
            for cut in 0..sample.len() {
                let _ = answer_binding(&sample[..cut], from(), &creds(), &mut out);
            }
            for i in 0..sample.len() {
                for v in [0x00, 0x01, 0x7f, 0x80, 0xff] {
                    let mut m = sample.to_vec();
                    m[i] = v;
                    let _ = answer_binding(&m, from(), &creds(), &mut out);
                    if let Ok(p) = Message::parse(&m) {
                        let _ = p.integrity_valid(PASSWORD.as_bytes());
                        let _ = p.fingerprint_valid();
                    }
                }
            }
        }
    }
}
