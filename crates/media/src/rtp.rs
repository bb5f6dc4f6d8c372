//! The few RTP and RTCP header fields the relay reads or rewrites on the
//! packet path: payload type, SSRC, header extensions (RFC 8285) for the
//! BUNDLE MID, and the first reception report of a compound RTCP packet
//! for loss and jitter statistics.
//!
//! Everything borrows the datagram, never reads past it and never
//! allocates.

/// Fixed RTP header length (RFC 3550 §5.1).
pub const RTP_HEADER: usize = 12;

/// The payload type (without the marker bit) of an RTP packet.
pub fn payload_type(packet: &[u8]) -> Option<u8> {
    (packet.len() >= RTP_HEADER).then(|| packet[1] & 0x7f)
}

/// Rewrites the payload type, keeping the marker bit.
pub fn set_payload_type(packet: &mut [u8], pt: u8) {
    if let Some(b) = packet.get_mut(1) {
        *b = (*b & 0x80) | (pt & 0x7f);
    }
}

/// The SSRC of an RTP packet.
pub fn ssrc(packet: &[u8]) -> Option<u32> {
    be32(packet, 8)
}

/// The sender SSRC of (the first packet of) a compound RTCP packet.
pub fn rtcp_sender_ssrc(packet: &[u8]) -> Option<u32> {
    be32(packet, 4)
}

fn be32(p: &[u8], at: usize) -> Option<u32> {
    let b = p.get(at..at + 4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn be16(p: &[u8], at: usize) -> Option<u16> {
    let b = p.get(at..at + 2)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

/// The value of header extension `id` (one-byte or two-byte form,
/// RFC 8285 §4), if the packet has it.
pub fn header_extension(packet: &[u8], id: u8) -> Option<&[u8]> {
    if packet.len() < RTP_HEADER || packet[0] & 0x10 == 0 || id == 0 {
        return None;
    }
    let csrcs = usize::from(packet[0] & 0x0f);
    let at = RTP_HEADER + 4 * csrcs;
    let profile = be16(packet, at)?;
    let words = usize::from(be16(packet, at + 2)?);
    let body = packet.get(at + 4..at + 4 + 4 * words)?;
    let mut i = 0;
    match profile {
        0xBEDE => {
            while i < body.len() {
                let b = body[i];
                let (eid, len) = (b >> 4, usize::from(b & 0x0f) + 1);
                if eid == 0 {
                    i += 1; // padding
                    continue;
                }
                if eid == 15 {
                    return None;
                }
                let value = body.get(i + 1..i + 1 + len)?;
                if eid == id {
                    return Some(value);
                }
                i += 1 + len;
            }
            None
        }
        p if p & 0xfff0 == 0x1000 => {
            while i < body.len() {
                let eid = body[i];
                if eid == 0 {
                    i += 1;
                    continue;
                }
                let len = usize::from(*body.get(i + 1)?);
                let value = body.get(i + 2..i + 2 + len)?;
                if eid == id {
                    return Some(value);
                }
                i += 2 + len;
            }
            None
        }
        _ => None,
    }
}

/// One RTCP reception report block (RFC 3550 §6.4.1): what the sender of
/// the report received of the stream `ssrc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceptionReport {
    /// The reported-on source.
    pub ssrc: u32,
    /// Fraction lost since the previous report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative packets lost (signed: duplicates can make it negative).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received.
    pub highest_sequence: u32,
    /// Interarrival jitter, in timestamp units.
    pub jitter: u32,
}

const RTCP_SR: u8 = 200;
const RTCP_RR: u8 = 201;

/// The first reception report block of the SR or RR packets in a compound
/// RTCP packet.
pub fn first_reception_report(mut compound: &[u8]) -> Option<ReceptionReport> {
    while compound.len() >= 8 {
        if compound[0] >> 6 != 2 {
            return None;
        }
        let count = usize::from(compound[0] & 0x1f);
        let len = (usize::from(be16(compound, 2)?) + 1) * 4;
        let packet = compound.get(..len)?;
        let blocks_at = match packet[1] {
            RTCP_SR => Some(28),
            RTCP_RR => Some(8),
            _ => None,
        };
        if let (Some(at), true) = (blocks_at, count > 0) {
            let b = packet.get(at..at + 24)?;
            let lost = u32::from_be_bytes([0, b[5], b[6], b[7]]);
            // Sign-extend the 24-bit count.
            let cumulative_lost = ((lost << 8) as i32) >> 8;
            return Some(ReceptionReport {
                ssrc: be32(b, 0)?,
                fraction_lost: b[4],
                cumulative_lost,
                highest_sequence: be32(b, 8)?,
                jitter: be32(b, 12)?,
            });
        }
        compound = &compound[len..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_type_keeps_marker() {
        let mut p = [0x80, 0x80 | 101, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9];
        assert_eq!(payload_type(&p), Some(101));
        set_payload_type(&mut p, 126);
        assert_eq!(p[1], 0x80 | 126);
        assert_eq!(ssrc(&p), Some(9));
        assert_eq!(payload_type(&p[..11]), None);
    }

    #[test]
    fn one_and_two_byte_extensions() {
        // One-byte form: id 1 (1 byte), padding, id 4 = "0" (mid).
        let mut p = vec![0x90, 111, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
        p.extend_from_slice(&[0xBE, 0xDE, 0, 2]);
        p.extend_from_slice(&[0x10, 0xAA, 0, 0x40, b'0', 0, 0, 0]);
        p.extend_from_slice(b"payload");
        assert_eq!(header_extension(&p, 4), Some(&b"0"[..]));
        assert_eq!(header_extension(&p, 1), Some(&[0xAA][..]));
        assert_eq!(header_extension(&p, 3), None);
        // Two-byte form.
        let mut q = vec![0x90, 111, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
        q.extend_from_slice(&[0x10, 0x00, 0, 1, 7, 2, b'a', b'v']);
        assert_eq!(header_extension(&q, 7), Some(&b"av"[..]));
        // No X bit, truncated.
        assert_eq!(header_extension(&q[..14], 7), None);
        q[0] = 0x80;
        assert_eq!(header_extension(&q, 7), None);
    }

    #[test]
    fn reception_report_from_compound() {
        // RR with one block, then an SDES.
        let mut rr = vec![0x81, 201, 0, 7, 0, 0, 0, 1];
        rr.extend_from_slice(&[0, 0, 0, 2]); // reported ssrc
        rr.extend_from_slice(&[64, 0xff, 0xff, 0xfe]); // 25 %, -2
        rr.extend_from_slice(&[0, 1, 0, 5]);
        rr.extend_from_slice(&[0, 0, 0, 80]);
        rr.extend_from_slice(&[0; 8]);
        rr.extend_from_slice(&[0x81, 202, 0, 1, 0, 0, 0, 1]);
        let r = first_reception_report(&rr).unwrap();
        assert_eq!(r.ssrc, 2);
        assert_eq!(r.fraction_lost, 64);
        assert_eq!(r.cumulative_lost, -2);
        assert_eq!(r.highest_sequence, 65541);
        assert_eq!(r.jitter, 80);
        assert_eq!(first_reception_report(&rr[..20]), None);
        assert_eq!(first_reception_report(&rr[32..]), None);
        // An empty RR has no block.
        assert_eq!(first_reception_report(&[0x80, 201, 0, 1, 0, 0, 0, 1]), None);
    }
}
