//! The test RTP packets: a 12-byte header (PT 0, PCMU) and a G.711-sized
//! payload that starts with the measurement fields, all big-endian:
//!
//! | bytes  | field                                              |
//! |--------|----------------------------------------------------|
//! | 0..4   | magic `RLB1`                                       |
//! | 4..8   | call index                                         |
//! | 8..12  | packet number within the call                      |
//! | 12..16 | reserved                                           |
//! | 16..24 | generator send time (ns, CLOCK_REALTIME)           |
//! | 24..32 | echo kernel receive time (ns), 0 until echoed      |
//! | 32..40 | echo send time (ns), 0 until echoed                |
//!
//! The rest is G.711 silence (0xFF). A relay decrypts before the echo and
//! encrypts again after it, so the echo reads and writes these fields in
//! the clear.

/// Marks a benchmark packet.
pub const MAGIC: [u8; 4] = *b"RLB1";
/// RTP payload type (PCMU).
pub const PT_PCMU: u8 = 0;
/// SSRC of call `i` is `SSRC_BASE + i`.
pub const SSRC_BASE: u32 = 0x5200_0000;
/// Fields used at the start of the payload.
pub const FIELDS_LEN: usize = 40;

const CALL: usize = 4;
const NUMBER: usize = 8;
const T_SEND: usize = 16;
const T_ECHO_RX: usize = 24;
const T_ECHO_TX: usize = 32;

/// Offset of the RTP payload: after the fixed header, CSRCs and a header
/// extension, if the packet is long enough to hold them.
pub fn rtp_payload_offset(p: &[u8]) -> Option<usize> {
    if p.len() < 12 || p[0] >> 6 != 2 {
        return None;
    }
    let mut off = 12 + 4 * usize::from(p[0] & 0x0f);
    if p[0] & 0x10 != 0 {
        let ext = p.get(off + 2..off + 4)?;
        off += 4 + 4 * usize::from(u16::from_be_bytes([ext[0], ext[1]]));
    }
    (off <= p.len()).then_some(off)
}

/// Writes a packet of `payload_len` payload bytes into `out` and returns
/// its length.
#[allow(clippy::too_many_arguments)]
pub fn write_rtp(
    out: &mut [u8],
    ssrc: u32,
    seq: u16,
    timestamp: u32,
    marker: bool,
    call: u32,
    number: u32,
    t_send: u64,
    payload_len: usize,
) -> usize {
    let len = 12 + payload_len.max(FIELDS_LEN);
    out[0] = 0x80;
    out[1] = PT_PCMU | if marker { 0x80 } else { 0 };
    out[2..4].copy_from_slice(&seq.to_be_bytes());
    out[4..8].copy_from_slice(&timestamp.to_be_bytes());
    out[8..12].copy_from_slice(&ssrc.to_be_bytes());
    let p = &mut out[12..len];
    p[..4].copy_from_slice(&MAGIC);
    p[CALL..CALL + 4].copy_from_slice(&call.to_be_bytes());
    p[NUMBER..NUMBER + 4].copy_from_slice(&number.to_be_bytes());
    p[12..16].fill(0);
    p[T_SEND..T_SEND + 8].copy_from_slice(&t_send.to_be_bytes());
    p[T_ECHO_RX..FIELDS_LEN].fill(0);
    p[FIELDS_LEN..].fill(0xff);
    len
}

/// The measurement fields of a received packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fields {
    /// Call index.
    pub call: u32,
    /// Packet number.
    pub number: u32,
    /// Generator send time.
    pub t_send: u64,
    /// Echo receive time (0: not stamped).
    pub t_echo_rx: u64,
    /// Echo send time (0: not stamped).
    pub t_echo_tx: u64,
}

fn u32_at(p: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([p[at], p[at + 1], p[at + 2], p[at + 3]])
}

fn u64_at(p: &[u8], at: usize) -> u64 {
    let mut b = [0; 8];
    b.copy_from_slice(&p[at..at + 8]);
    u64::from_be_bytes(b)
}

/// Reads the fields of an RTP packet carrying a benchmark payload.
pub fn read(packet: &[u8]) -> Option<Fields> {
    let off = rtp_payload_offset(packet)?;
    let p = packet.get(off..off + FIELDS_LEN)?;
    if p[..4] != MAGIC {
        return None;
    }
    Some(Fields {
        call: u32_at(p, CALL),
        number: u32_at(p, NUMBER),
        t_send: u64_at(p, T_SEND),
        t_echo_rx: u64_at(p, T_ECHO_RX),
        t_echo_tx: u64_at(p, T_ECHO_TX),
    })
}

/// Writes the echo's receive time into a benchmark packet; false when the
/// packet is not one.
pub fn stamp_echo_rx(packet: &mut [u8], t: u64) -> bool {
    let Some(off) = rtp_payload_offset(packet) else {
        return false;
    };
    match packet.get_mut(off..off + FIELDS_LEN) {
        Some(p) if p[..4] == MAGIC => {
            p[T_ECHO_RX..T_ECHO_RX + 8].copy_from_slice(&t.to_be_bytes());
            true
        }
        _ => false,
    }
}

/// Writes the echo's send time; false when the packet is not one.
pub fn stamp_echo_tx(packet: &mut [u8], t: u64) -> bool {
    let Some(off) = rtp_payload_offset(packet) else {
        return false;
    };
    match packet.get_mut(off..off + FIELDS_LEN) {
        Some(p) if p[..4] == MAGIC => {
            p[T_ECHO_TX..T_ECHO_TX + 8].copy_from_slice(&t.to_be_bytes());
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut b = [0u8; 300];
        let n = write_rtp(&mut b, SSRC_BASE + 7, 9, 1440, false, 7, 42, 123_456, 160);
        assert_eq!(n, 172);
        assert!(stamp_echo_rx(&mut b[..n], 5));
        assert!(stamp_echo_tx(&mut b[..n], 6));
        let f = read(&b[..n]).unwrap();
        assert_eq!(
            f,
            Fields {
                call: 7,
                number: 42,
                t_send: 123_456,
                t_echo_rx: 5,
                t_echo_tx: 6
            }
        );
        assert_eq!(b[n - 1], 0xff);
        b[12] = b'X';
        assert!(read(&b[..n]).is_none());
    }
}
