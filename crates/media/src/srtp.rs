//! SRTP/SRTCP protection (RFC 3711, RFC 7714 for GCM) on one direction of
//! a browser leg, over `rtc-srtp`'s contexts.
//!
//! A [`SrtpContext`] is one-way: the local one (our write keys) protects
//! what we send, the remote one (the peer's write keys, with replay
//! protection) unprotects what we receive. [`crate::dtls::DtlsLeg`] makes
//! both from the DTLS exporter; [`SrtpContext::new`] takes keys directly.
//!
//! Failures never panic: each returns an [`SrtpError`] and is counted in
//! [`SrtpStats`], so the packet path can drop the packet and move on.

use std::collections::HashSet;

use rtc_shared::error::Error as RtcError;
use rtc_srtp::context::Context;
use rtc_srtp::crypto::RTCCrypto;
use rtc_srtp::option::{srtcp_replay_protection, srtp_replay_protection};
use rtc_srtp::protection_profile::ProtectionProfile;

/// Replay window for inbound SRTP and SRTCP, in packets. libsrtp's default
/// of 128 is too small for video, whose retransmissions and pacing reorder
/// packets further than that; browsers use 1024 too.
pub const REPLAY_WINDOW: usize = 1024;

/// Distinct SSRCs one context keeps state for. The underlying context
/// creates per-SSRC state before authenticating a packet, so without a cap
/// forged packets with random SSRCs would grow it without bound. A call
/// has a handful of SSRCs (audio, video, RTX, simulcast layers).
pub const MAX_SSRCS: usize = 64;

/// The SRTP protection profiles a browser leg negotiates (RFC 5764 §4.1.2,
/// RFC 7714 §14.2), in our order of preference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SrtpProfile {
    /// `SRTP_AEAD_AES_128_GCM`: authenticated encryption, a 16-byte tag.
    AeadAes128Gcm,
    /// `SRTP_AES128_CM_HMAC_SHA1_80`: the profile every browser supports.
    Aes128CmHmacSha1_80,
}

impl SrtpProfile {
    /// Both, GCM first: it is cheaper per packet with AES-NI/PMULL.
    pub const ALL: [SrtpProfile; 2] =
        [SrtpProfile::AeadAes128Gcm, SrtpProfile::Aes128CmHmacSha1_80];

    /// Master key length in bytes.
    pub fn key_len(self) -> usize {
        self.rtc().key_len()
    }

    /// Master salt length in bytes.
    pub fn salt_len(self) -> usize {
        self.rtc().salt_len()
    }

    /// Bytes protection adds to an RTP packet.
    pub fn rtp_overhead(self) -> usize {
        let p = self.rtc();
        p.rtp_auth_tag_len() + p.aead_auth_tag_len()
    }

    pub(crate) fn rtc(self) -> ProtectionProfile {
        match self {
            SrtpProfile::AeadAes128Gcm => ProtectionProfile::AeadAes128Gcm,
            SrtpProfile::Aes128CmHmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
        }
    }
}

/// Why a packet was not (un)protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SrtpError {
    /// Too short or not parseable as RTP/RTCP.
    #[error("malformed packet")]
    Malformed,
    /// The authentication tag did not verify.
    #[error("authentication failed")]
    Authentication,
    /// Already received, or older than the replay window.
    #[error("replayed packet")]
    Replayed,
    /// A new SSRC beyond [`MAX_SSRCS`].
    #[error("too many SSRCs")]
    TooManySsrcs,
    /// Keys exhausted (2^48 packets) or an internal cipher failure.
    #[error("SRTP failure")]
    Other,
}

/// The keys could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad SRTP keys: {0}")]
pub struct SrtpKeyError(pub String);

/// Counters of one context.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SrtpStats {
    /// RTP packets protected or unprotected.
    pub rtp_packets: u64,
    /// RTCP packets protected or unprotected.
    pub rtcp_packets: u64,
    /// [`SrtpError::Malformed`].
    pub malformed: u64,
    /// [`SrtpError::Authentication`].
    pub authentication_failures: u64,
    /// [`SrtpError::Replayed`].
    pub replayed: u64,
    /// [`SrtpError::TooManySsrcs`].
    pub too_many_ssrcs: u64,
    /// [`SrtpError::Other`].
    pub other_failures: u64,
}

impl SrtpStats {
    fn count(&mut self, error: SrtpError) {
        let counter = match error {
            SrtpError::Malformed => &mut self.malformed,
            SrtpError::Authentication => &mut self.authentication_failures,
            SrtpError::Replayed => &mut self.replayed,
            SrtpError::TooManySsrcs => &mut self.too_many_ssrcs,
            SrtpError::Other => &mut self.other_failures,
        };
        *counter += 1;
    }
}

/// One direction of SRTP + SRTCP (rtcp-mux: same keys, RFC 5764 §4.1.2).
pub struct SrtpContext {
    inner: Context,
    profile: SrtpProfile,
    rtp_ssrcs: HashSet<u32>,
    rtcp_ssrcs: HashSet<u32>,
    stats: SrtpStats,
}

impl std::fmt::Debug for SrtpContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtpContext")
            .field("profile", &self.profile)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl SrtpContext {
    /// A context from a master key and salt. `inbound` turns on replay
    /// protection, which only makes sense when unprotecting.
    pub fn new(
        profile: SrtpProfile,
        master_key: &[u8],
        master_salt: &[u8],
        inbound: bool,
        crypto: &dyn RTCCrypto,
    ) -> Result<Self, SrtpKeyError> {
        let (rtp_opt, rtcp_opt) = if inbound {
            (
                Some(srtp_replay_protection(REPLAY_WINDOW)),
                Some(srtcp_replay_protection(REPLAY_WINDOW)),
            )
        } else {
            (None, None)
        };
        let inner = Context::new(
            master_key,
            master_salt,
            profile.rtc(),
            rtp_opt,
            rtcp_opt,
            crypto,
        )
        .map_err(|e| SrtpKeyError(e.to_string()))?;
        Ok(Self {
            inner,
            profile,
            rtp_ssrcs: HashSet::new(),
            rtcp_ssrcs: HashSet::new(),
            stats: SrtpStats::default(),
        })
    }

    /// The negotiated profile.
    pub fn profile(&self) -> SrtpProfile {
        self.profile
    }

    /// Counters so far.
    pub fn stats(&self) -> SrtpStats {
        self.stats
    }

    /// Protects the RTP packet `rtp` into `out` (cleared first, so one
    /// buffer can serve every packet).
    pub fn protect_rtp(&mut self, rtp: &[u8], out: &mut Vec<u8>) -> Result<(), SrtpError> {
        let result = self.run(rtp, out, Kind::Rtp, |ctx, p| ctx.encrypt_rtp(p));
        self.tally(result, Kind::Rtp)
    }

    /// Unprotects the SRTP packet `srtp` into `out`.
    pub fn unprotect_rtp(&mut self, srtp: &[u8], out: &mut Vec<u8>) -> Result<(), SrtpError> {
        let result = self.run(srtp, out, Kind::Rtp, |ctx, p| ctx.decrypt_rtp(p));
        self.tally(result, Kind::Rtp)
    }

    /// Protects the RTCP compound packet `rtcp` into `out`.
    pub fn protect_rtcp(&mut self, rtcp: &[u8], out: &mut Vec<u8>) -> Result<(), SrtpError> {
        let result = self.run(rtcp, out, Kind::Rtcp, |ctx, p| ctx.encrypt_rtcp(p));
        self.tally(result, Kind::Rtcp)
    }

    /// Unprotects the SRTCP packet `srtcp` into `out`.
    pub fn unprotect_rtcp(&mut self, srtcp: &[u8], out: &mut Vec<u8>) -> Result<(), SrtpError> {
        let result = if self.unauthenticated_rtcp(srtcp) {
            out.clear();
            Err(SrtpError::Authentication)
        } else {
            self.run(srtcp, out, Kind::Rtcp, |ctx, p| ctx.decrypt_rtcp(p))
        };
        self.tally(result, Kind::Rtcp)
    }

    /// rtc-srtp 0.21 returns an AES-CM SRTCP packet whose E flag is clear
    /// (RFC 3711 §3.4: not encrypted, but still authenticated) without
    /// checking its tag, so anyone could inject RTCP. Browsers always
    /// encrypt SRTCP, so such packets are refused instead.
    fn unauthenticated_rtcp(&self, srtcp: &[u8]) -> bool {
        const INDEX_AND_TAG: usize = 4 + 10;
        self.profile == SrtpProfile::Aes128CmHmacSha1_80
            && srtcp.len() >= 8 + INDEX_AND_TAG
            && srtcp[srtcp.len() - INDEX_AND_TAG] & 0x80 == 0
    }

    fn run(
        &mut self,
        packet: &[u8],
        out: &mut Vec<u8>,
        kind: Kind,
        op: impl FnOnce(&mut Context, &[u8]) -> rtc_shared::error::Result<bytes::BytesMut>,
    ) -> Result<(), SrtpError> {
        out.clear();
        // The sender SSRC: bytes 8..12 of RTP, 4..8 of (the first packet of
        // a compound) RTCP.
        let ssrc_at = match kind {
            Kind::Rtp => 8,
            Kind::Rtcp => 4,
        };
        let ssrc = packet
            .get(ssrc_at..ssrc_at + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or(SrtpError::Malformed)?;
        let ssrcs = match kind {
            Kind::Rtp => &mut self.rtp_ssrcs,
            Kind::Rtcp => &mut self.rtcp_ssrcs,
        };
        if !ssrcs.contains(&ssrc) {
            if ssrcs.len() >= MAX_SSRCS {
                return Err(SrtpError::TooManySsrcs);
            }
            ssrcs.insert(ssrc);
        }
        let result = op(&mut self.inner, packet).map_err(classify)?;
        out.extend_from_slice(&result);
        Ok(())
    }

    fn tally(&mut self, result: Result<(), SrtpError>, kind: Kind) -> Result<(), SrtpError> {
        match result {
            Ok(()) => match kind {
                Kind::Rtp => self.stats.rtp_packets += 1,
                Kind::Rtcp => self.stats.rtcp_packets += 1,
            },
            Err(e) => self.stats.count(e),
        }
        result
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Rtp,
    Rtcp,
}

fn classify(error: RtcError) -> SrtpError {
    match error {
        RtcError::SrtpSsrcDuplicated(..) | RtcError::SrtcpSsrcDuplicated(..) => SrtpError::Replayed,
        RtcError::ErrFailedToVerifyAuthTag
        | RtcError::RtpFailedToVerifyAuthTag
        | RtcError::RtcpFailedToVerifyAuthTag => SrtpError::Authentication,
        RtcError::ErrExceededMaxPackets | RtcError::Crypto(_) | RtcError::Other(_) => {
            SrtpError::Other
        }
        // Everything else is a length or header parsing error.
        _ => SrtpError::Malformed,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rtc_srtp::crypto::providers::RingProvider;
    use rtc_srtp::crypto::RTCCryptoProvider;

    pub(crate) fn rtp(ssrc: u32, seq: u16, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x80, 111];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&(u32::from(seq) * 960).to_be_bytes());
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    pub(crate) fn rtcp_rr(ssrc: u32) -> Vec<u8> {
        // An empty receiver report: V=2, RC=0, PT=201, length 1.
        let mut p = vec![0x80, 201, 0, 1];
        p.extend_from_slice(&ssrc.to_be_bytes());
        p
    }

    fn pair(profile: SrtpProfile) -> (SrtpContext, SrtpContext) {
        let provider = RingProvider::new();
        let key: Vec<u8> = (0..profile.key_len() as u8).collect();
        let salt: Vec<u8> = (0..profile.salt_len() as u8).map(|b| b ^ 0x5a).collect();
        let tx = SrtpContext::new(profile, &key, &salt, false, provider.crypto()).unwrap();
        let rx = SrtpContext::new(profile, &key, &salt, true, provider.crypto()).unwrap();
        (tx, rx)
    }

    #[test]
    fn round_trip_replay_and_tamper() {
        for profile in SrtpProfile::ALL {
            let (mut tx, mut rx) = pair(profile);
            let (mut a, mut b) = (Vec::new(), Vec::new());
            let packet = rtp(0x1234_5678, 7, b"opus frame");
            tx.protect_rtp(&packet, &mut a).unwrap();
            assert_eq!(a.len(), packet.len() + profile.rtp_overhead());
            assert_ne!(&a[12..22], b"opus frame");
            rx.unprotect_rtp(&a, &mut b).unwrap();
            assert_eq!(b, packet);
            assert_eq!(rx.unprotect_rtp(&a, &mut b), Err(SrtpError::Replayed));

            tx.protect_rtp(&rtp(0x1234_5678, 8, b"x"), &mut a).unwrap();
            let last = a.len() - 1;
            a[last] ^= 1;
            assert_eq!(rx.unprotect_rtp(&a, &mut b), Err(SrtpError::Authentication));

            let report = rtcp_rr(0x1234_5678);
            tx.protect_rtcp(&report, &mut a).unwrap();
            rx.unprotect_rtcp(&a, &mut b).unwrap();
            assert_eq!(b, report);
            assert_eq!(rx.unprotect_rtcp(&a, &mut b), Err(SrtpError::Replayed));

            let stats = rx.stats();
            assert_eq!(
                (stats.rtp_packets, stats.rtcp_packets, stats.replayed),
                (1, 1, 2),
                "{profile:?}"
            );
            assert_eq!(stats.authentication_failures, 1);
            assert_eq!(tx.stats().rtp_packets, 2);
        }
    }

    #[test]
    fn srtcp_without_the_encrypted_flag_is_not_accepted_unauthenticated() {
        for profile in SrtpProfile::ALL {
            let (mut tx, mut rx) = pair(profile);
            let (mut a, mut b) = (Vec::new(), Vec::new());
            tx.protect_rtcp(&rtcp_rr(5), &mut a).unwrap();
            // A forged BYE with E = 0, index 1 and a made-up tag.
            let mut forged = vec![0x81, 203, 0, 1, 0, 0, 0, 5, 0, 0, 0, 1];
            forged.extend_from_slice(&[0x55; 16]);
            assert_eq!(
                rx.unprotect_rtcp(&forged, &mut b),
                Err(SrtpError::Authentication)
            );
            assert!(b.is_empty());
            // Clearing E on a genuine packet: CM refuses it; GCM (whose
            // tag covers the content, with E taken as set) can only ever
            // yield the genuine content.
            let flag = match profile {
                SrtpProfile::AeadAes128Gcm => a.len() - 4,
                SrtpProfile::Aes128CmHmacSha1_80 => a.len() - 14,
            };
            a[flag] &= 0x7f;
            match rx.unprotect_rtcp(&a, &mut b) {
                Ok(()) => {
                    assert_eq!(profile, SrtpProfile::AeadAes128Gcm);
                    assert_eq!(b, rtcp_rr(5));
                }
                Err(e) => assert_eq!(e, SrtpError::Authentication),
            }
        }
    }

    #[test]
    fn ssrc_state_is_capped() {
        let (mut tx, mut rx) = pair(SrtpProfile::AeadAes128Gcm);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for ssrc in 0..MAX_SSRCS as u32 {
            let forged = rtp(ssrc, 1, &[0; 40]);
            assert_eq!(
                rx.unprotect_rtp(&forged, &mut b),
                Err(SrtpError::Authentication)
            );
        }
        tx.protect_rtp(&rtp(0xdead, 1, b"late"), &mut a).unwrap();
        assert_eq!(rx.unprotect_rtp(&a, &mut b), Err(SrtpError::TooManySsrcs));
        assert_eq!(rx.stats().too_many_ssrcs, 1);
    }

    #[test]
    fn garbage_is_counted_not_panicking() {
        for profile in SrtpProfile::ALL {
            let (mut tx, mut rx) = pair(profile);
            let mut out = Vec::new();
            let mut seed = 0x9e37_79b9_u32;
            for len in 0..200usize {
                let mut junk: Vec<u8> = (0..len)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 17;
                        seed ^= seed << 5;
                        seed as u8
                    })
                    .collect();
                if len > 1 {
                    // Keep SSRCs few so the cap does not hide the parsers.
                    junk[0] = 0x80 | (junk[0] & 0x3f);
                    let ssrc = [0, 0, 0, (len % 4) as u8];
                    if len >= 8 {
                        junk[4..8].copy_from_slice(&ssrc);
                    }
                    if len >= 12 {
                        junk[8..12].copy_from_slice(&ssrc);
                    }
                }
                let _ = rx.unprotect_rtp(&junk, &mut out);
                let _ = rx.unprotect_rtcp(&junk, &mut out);
                let _ = tx.protect_rtp(&junk, &mut out);
                let _ = tx.protect_rtcp(&junk, &mut out);
            }
            let s = rx.stats();
            assert_eq!((s.rtp_packets, s.rtcp_packets, s.too_many_ssrcs), (0, 0, 0));
            assert_eq!(
                s.malformed + s.authentication_failures + s.replayed + s.other_failures,
                400
            );
        }
    }

    #[test]
    fn wrong_key_lengths_are_errors() {
        let provider = RingProvider::new();
        let e = SrtpContext::new(
            SrtpProfile::AeadAes128Gcm,
            &[0; 16],
            &[0; 14],
            true,
            provider.crypto(),
        );
        assert!(e.is_err(), "GCM wants a 12-byte salt");
    }
}
