//! First-byte demultiplexing of packets arriving on one UDP port (RFC 7983),
//! and the RTP/RTCP split for `rtcp-mux` (RFC 5761 §4).
//!
//! A browser leg carries STUN, DTLS and SRTP/SRTCP on a single port, so the
//! relay classifies every datagram before anything else. The checks are a
//! couple of byte comparisons and never read past the slice.

/// What a received datagram is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketKind {
    /// STUN (first byte 0..=3): ICE connectivity checks and keepalives.
    Stun,
    /// ZRTP (16..=19): not supported, dropped by the relay.
    Zrtp,
    /// DTLS record (20..=63): the DTLS-SRTP handshake and alerts.
    Dtls,
    /// TURN ChannelData (64..=79): not expected on a relay port.
    TurnChannel,
    /// RTP or SRTP (128..=191, payload type outside 64..=95).
    Rtp,
    /// RTCP or SRTCP (128..=191, packet type 192..=223).
    Rtcp,
    /// Anything else, or too short for the header of its kind.
    Unknown,
}

/// STUN header length (RFC 5389 §6).
const STUN_HEADER: usize = 20;
/// DTLS record header length (RFC 6347 §4.1).
const DTLS_HEADER: usize = 13;
/// Fixed RTP header length (RFC 3550 §5.1).
const RTP_HEADER: usize = 12;
/// RTCP header plus the sender SSRC every packet type starts with.
const RTCP_HEADER: usize = 8;

/// Classifies a datagram by its first byte (RFC 7983 §7) and, for RTP/RTCP,
/// by the second (RFC 5761 §4). Datagrams too short to hold the header of
/// their kind are [`PacketKind::Unknown`], so callers can drop them at once.
pub fn classify(packet: &[u8]) -> PacketKind {
    let Some(&first) = packet.first() else {
        return PacketKind::Unknown;
    };
    let (kind, min_len) = match first {
        0..=3 => (PacketKind::Stun, STUN_HEADER),
        16..=19 => (PacketKind::Zrtp, 1),
        20..=63 => (PacketKind::Dtls, DTLS_HEADER),
        64..=79 => (PacketKind::TurnChannel, 4),
        128..=191 => match packet.get(1) {
            Some(&second) if is_rtcp_packet_type(second) => (PacketKind::Rtcp, RTCP_HEADER),
            Some(_) => (PacketKind::Rtp, RTP_HEADER),
            None => return PacketKind::Unknown,
        },
        _ => return PacketKind::Unknown,
    };
    if packet.len() < min_len {
        PacketKind::Unknown
    } else {
        kind
    }
}

/// Whether the second byte of an RTP-range packet marks RTCP: the packet
/// types 192..=223 (FIR..=XR and the reserved rest) are exactly the bytes
/// whose low seven bits are 64..=95, the RTP payload types RFC 5761 §4
/// forbids under `rtcp-mux`, whatever the marker bit.
pub fn is_rtcp_packet_type(second_byte: u8) -> bool {
    (64..=95).contains(&(second_byte & 0x7f))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(first: u8, second: u8, len: usize) -> Vec<u8> {
        let mut p = vec![0u8; len];
        p[0] = first;
        if len > 1 {
            p[1] = second;
        }
        p
    }

    #[test]
    fn first_byte_ranges() {
        for b in 0..=3 {
            assert_eq!(classify(&packet(b, 1, 20)), PacketKind::Stun);
        }
        for b in 16..=19 {
            assert_eq!(classify(&packet(b, 0, 20)), PacketKind::Zrtp);
        }
        for b in 20..=63 {
            assert_eq!(classify(&packet(b, 0xfe, 13)), PacketKind::Dtls);
        }
        for b in 64..=79 {
            assert_eq!(classify(&packet(b, 0, 8)), PacketKind::TurnChannel);
        }
        for b in 128..=191 {
            assert_eq!(classify(&packet(b, 0, 12)), PacketKind::Rtp);
        }
        for b in (4..=15).chain(80..=127).chain(192..=255) {
            assert_eq!(classify(&packet(b, 0, 64)), PacketKind::Unknown, "{b}");
        }
    }

    #[test]
    fn rtp_versus_rtcp() {
        // SR=200, RR=201, SDES=202, BYE=203, APP=204, RTPFB=205, PSFB=206, XR=207.
        for pt in 192..=223u8 {
            assert_eq!(classify(&packet(0x80, pt, 8)), PacketKind::Rtcp, "{pt}");
        }
        // Audio payload types with and without the marker bit.
        for pt in [0u8, 8, 9, 96, 101, 111, 126, 127] {
            assert_eq!(classify(&packet(0x80, pt, 12)), PacketKind::Rtp);
            assert_eq!(classify(&packet(0x80, pt | 0x80, 12)), PacketKind::Rtp);
        }
        // 64..=95 are RTCP whether the marker bit is set or not.
        assert_eq!(classify(&packet(0x81, 72, 8)), PacketKind::Rtcp);
        assert!(is_rtcp_packet_type(200));
        assert!(!is_rtcp_packet_type(224));
        assert!(!is_rtcp_packet_type(0x80 | 96));
    }

    #[test]
    fn truncated_packets_are_unknown() {
        assert_eq!(classify(&[]), PacketKind::Unknown);
        assert_eq!(classify(&[0x80]), PacketKind::Unknown);
        assert_eq!(classify(&packet(0, 1, 19)), PacketKind::Unknown);
        assert_eq!(classify(&packet(22, 0xfe, 12)), PacketKind::Unknown);
        assert_eq!(classify(&packet(0x80, 0, 11)), PacketKind::Unknown);
        assert_eq!(classify(&packet(0x80, 200, 7)), PacketKind::Unknown);
    }
}
