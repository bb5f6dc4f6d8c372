//! DTLS-SRTP (RFC 5763, RFC 5764) for a browser leg: the DTLS 1.2
//! handshake, peer authentication by the SDP fingerprint, and SRTP keys
//! from the exporter.
//!
//! [`DtlsLeg`] is sans-IO like the rest of the crate: the relay feeds it
//! the DTLS datagrams [`crate::demux`] picks out, drains
//! [`DtlsLeg::poll_transmit`] to the leg's selected address, and calls
//! [`DtlsLeg::handle_timeout`] at [`DtlsLeg::poll_timeout`] for handshake
//! retransmissions. Once [`DtlsLeg::is_connected`], the SRTP contexts are
//! ready: the local one protects what we send, the remote one unprotects
//! what the browser sends (RTP and RTCP alike, rtcp-mux).
//!
//! The peer's certificate must hash to the `a=fingerprint:sha-256` of its
//! SDP. When the fingerprint is known during the handshake, a mismatch
//! fails the handshake with a `bad_certificate` alert. A browser answering
//! our offer can start DTLS before its answer reaches us, so the leg may
//! also be created without it ([`DtlsLeg::set_remote_fingerprint`] later):
//! the handshake then completes, but no SRTP keys come out and the leg is
//! not connected until the certificate has been checked.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use bytes::BytesMut;
use rtc_dtls::cipher_suite::CipherSuiteId;
use rtc_dtls::config::{ClientAuthType, ConfigBuilder, ExtendedMasterSecretType, HandshakeConfig};
use rtc_dtls::crypto_provider::RTCCryptoProvider;
use rtc_dtls::endpoint::{Endpoint, EndpointEvent};
use rtc_dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use rtc_dtls::state::State;
use rtc_shared::error::Error as RtcError;
use rtc_shared::TransportProtocol;
use rtc_srtp::config::LABEL_EXTRACTOR_DTLS_SRTP;

use crate::cert::{DtlsCertificate, Fingerprint};
use crate::demux::{classify, PacketKind};
use crate::srtp::{SrtpContext, SrtpProfile};

/// Which side of the DTLS handshake we are (RFC 5763 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtlsRole {
    /// We send the ClientHello: our SDP says `a=setup:active`.
    Client,
    /// We wait for it: our SDP says `a=setup:passive` (answering a browser).
    Server,
}

impl DtlsRole {
    /// The role our final `a=setup` gives; `actpass` and `holdconn` give
    /// none (an offer's role is settled by the answer).
    pub fn from_local_setup(setup: sdp::Setup) -> Option<Self> {
        match setup {
            sdp::Setup::Active => Some(DtlsRole::Client),
            sdp::Setup::Passive => Some(DtlsRole::Server),
            sdp::Setup::ActPass | sdp::Setup::HoldConn => None,
        }
    }
}

/// Why a leg failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DtlsError {
    /// The DTLS stack refused our configuration.
    #[error("DTLS configuration: {0}")]
    Config(String),
    /// The peer's certificate does not hash to its SDP fingerprint.
    #[error("the peer certificate does not match its SDP fingerprint")]
    FingerprintMismatch,
    /// The handshake failed (a fatal alert either way, no common cipher
    /// suite or SRTP profile...).
    #[error("DTLS handshake failed: {0}")]
    Handshake(String),
    /// The peer stopped answering: retransmissions are exhausted.
    #[error("DTLS handshake timed out")]
    Timeout,
    /// The negotiated SRTP profile is not one we offered, or key export
    /// failed.
    #[error("SRTP keying failed: {0}")]
    Keying(String),
    /// The peer closed the association (close_notify) or we did.
    #[error("DTLS association closed")]
    Closed,
}

/// Where a leg stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DtlsState {
    /// Handshake in progress.
    Handshaking,
    /// Handshake done, but the peer's SDP fingerprint is not known yet.
    AwaitingFingerprint,
    /// Authenticated; SRTP contexts available.
    Connected,
    /// Terminal.
    Failed(DtlsError),
}

/// Counters of one leg.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DtlsStats {
    /// Datagrams given to [`DtlsLeg::handle_datagram`].
    pub datagrams_in: u64,
    /// Datagrams queued for sending.
    pub datagrams_out: u64,
    /// Ignored: not DTLS, unparseable or unauthentic records, or after
    /// the leg failed.
    pub discarded: u64,
    /// Application data (a data channel the relay does not offer).
    pub application_data: u64,
}

/// Placeholder address of the single association: the relay, not the
/// DTLS stack, knows and latches the peer's address.
const PEER: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 9);

/// DTLS record header: type, version, epoch, sequence number, length.
const RECORD_HEADER: usize = 13;
const CONTENT_ALERT: u8 = 21;
const ALERT_FATAL: u8 = 2;

type Expected = Arc<Mutex<Option<Fingerprint>>>;

/// The DTLS-SRTP state of one browser leg.
pub struct DtlsLeg {
    role: DtlsRole,
    endpoint: Endpoint,
    provider: Arc<dyn RTCCryptoProvider>,
    profiles: Vec<SrtpProfile>,
    expected: Expected,
    state: DtlsState,
    transmits: VecDeque<Vec<u8>>,
    srtp: Option<(SrtpContext, SrtpContext)>,
    stats: DtlsStats,
}

impl std::fmt::Debug for DtlsLeg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DtlsLeg")
            .field("role", &self.role)
            .field("state", &self.state)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl DtlsLeg {
    /// A leg offering both [`SrtpProfile::ALL`]. A client queues its
    /// ClientHello at once (`now` starts its retransmission timer).
    /// `remote_fingerprint` is the peer's `a=fingerprint:sha-256`, if its
    /// SDP is already known.
    pub fn new(
        role: DtlsRole,
        cert: &DtlsCertificate,
        remote_fingerprint: Option<Fingerprint>,
        now: Instant,
    ) -> Result<Self, DtlsError> {
        Self::with_profiles(role, cert, remote_fingerprint, &SrtpProfile::ALL, now)
    }

    /// As [`Self::new`], offering only `profiles`, in preference order.
    pub fn with_profiles(
        role: DtlsRole,
        cert: &DtlsCertificate,
        remote_fingerprint: Option<Fingerprint>,
        profiles: &[SrtpProfile],
        now: Instant,
    ) -> Result<Self, DtlsError> {
        let expected: Expected = Arc::new(Mutex::new(remote_fingerprint));
        let config = Arc::new(handshake_config(role, cert, profiles, expected.clone())?);
        let mut endpoint = match role {
            DtlsRole::Client => Endpoint::new(PEER, TransportProtocol::UDP, None),
            DtlsRole::Server => Endpoint::new(PEER, TransportProtocol::UDP, Some(config.clone())),
        };
        if role == DtlsRole::Client {
            endpoint
                .connect(now, PEER, config, None)
                .map_err(|e| DtlsError::Config(e.to_string()))?;
        }
        let mut leg = Self {
            role,
            endpoint,
            provider: cert.provider().clone(),
            profiles: profiles.to_vec(),
            expected,
            state: DtlsState::Handshaking,
            transmits: VecDeque::new(),
            srtp: None,
            stats: DtlsStats::default(),
        };
        leg.drain_transmits();
        Ok(leg)
    }

    /// Our role.
    pub fn role(&self) -> DtlsRole {
        self.role
    }

    /// Where the leg stands.
    pub fn state(&self) -> &DtlsState {
        &self.state
    }

    /// The handshake is done and the peer authenticated: SRTP is keyed.
    pub fn is_connected(&self) -> bool {
        self.state == DtlsState::Connected
    }

    /// Counters so far.
    pub fn stats(&self) -> DtlsStats {
        self.stats
    }

    /// Gives the peer's `a=fingerprint:sha-256` once its SDP arrives. If
    /// the handshake already completed, the certificate is checked now.
    pub fn set_remote_fingerprint(&mut self, fingerprint: Fingerprint) {
        *lock(&self.expected) = Some(fingerprint);
        if self.state == DtlsState::AwaitingFingerprint {
            self.authenticate_and_key();
        }
    }

    /// Feeds one datagram received on the leg. Non-DTLS datagrams and
    /// records that do not parse or authenticate are counted and ignored
    /// (RFC 6347 §4.1.2.7); the error is the leg's failure, if this
    /// datagram (or an earlier one) made it fail.
    pub fn handle_datagram(&mut self, now: Instant, datagram: &[u8]) -> Result<(), DtlsError> {
        self.stats.datagrams_in += 1;
        if let DtlsState::Failed(e) = &self.state {
            self.stats.discarded += 1;
            return Err(e.clone());
        }
        if classify(datagram) != PacketKind::Dtls {
            self.stats.discarded += 1;
            return Ok(());
        }
        let result = self
            .endpoint
            .read(now, PEER, None, BytesMut::from(datagram));
        let sent_fatal_alert = self.drain_transmits();
        match result {
            Ok(events) => {
                for event in events {
                    match event {
                        EndpointEvent::HandshakeComplete => self.authenticate_and_key(),
                        EndpointEvent::ApplicationData(_) => self.stats.application_data += 1,
                        EndpointEvent::PeerClosed => self.fail(DtlsError::Closed),
                        _ => {}
                    }
                }
                if sent_fatal_alert && self.state == DtlsState::Handshaking {
                    self.fail(DtlsError::Handshake("sent a fatal alert".into()));
                }
            }
            Err(e) => self.on_error(e, sent_fatal_alert),
        }
        match &self.state {
            DtlsState::Failed(e) => Err(e.clone()),
            _ => Ok(()),
        }
    }

    /// The next datagram to send to the peer.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmits.pop_front()
    }

    /// When [`Self::handle_timeout`] is next due (handshake retransmission).
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            DtlsState::Handshaking => self.endpoint.poll_timeout(&PEER),
            _ => None,
        }
    }

    /// Retransmits the last flight when its timer is due; fails the leg
    /// once retransmissions are exhausted.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), DtlsError> {
        if self.state == DtlsState::Handshaking {
            let result = self.endpoint.handle_timeout(PEER, now);
            let sent_fatal_alert = self.drain_transmits();
            if result.is_err() {
                self.fail(DtlsError::Timeout);
            } else if sent_fatal_alert {
                self.fail(DtlsError::Handshake("sent a fatal alert".into()));
            }
        }
        match &self.state {
            DtlsState::Failed(e) => Err(e.clone()),
            _ => Ok(()),
        }
    }

    /// Sends close_notify and ends the leg.
    pub fn close(&mut self, now: Instant) {
        self.endpoint.stop(now, PEER);
        self.drain_transmits();
        self.fail(DtlsError::Closed);
    }

    /// The negotiated SRTP profile, once connected.
    pub fn srtp_profile(&self) -> Option<SrtpProfile> {
        self.srtp.as_ref().map(|(local, _)| local.profile())
    }

    /// `(local, remote)` once connected: `local` protects what we send,
    /// `remote` unprotects what the peer sends.
    pub fn srtp_contexts(&mut self) -> Option<(&mut SrtpContext, &mut SrtpContext)> {
        self.srtp.as_mut().map(|(l, r)| (l, r))
    }

    /// Moves the contexts out, for a packet path that owns them apart from
    /// the handshake state.
    pub fn take_srtp_contexts(&mut self) -> Option<(SrtpContext, SrtpContext)> {
        self.srtp.take()
    }

    fn on_error(&mut self, error: RtcError, sent_fatal_alert: bool) {
        match error {
            RtcError::ErrNoMatchingCertificateFingerprint => {
                self.fail(DtlsError::FingerprintMismatch)
            }
            // A fatal alert from the peer, or its close_notify.
            RtcError::ErrAlertFatalOrClose => self.fail(match self.state {
                DtlsState::Handshaking => {
                    DtlsError::Handshake("the peer sent a fatal alert".into())
                }
                _ => DtlsError::Closed,
            }),
            // Our own fatal alert means the handshake cannot go on; anything
            // else is one bad datagram, which must not let an off-path sender
            // break the leg.
            e if sent_fatal_alert && self.state == DtlsState::Handshaking => {
                self.fail(DtlsError::Handshake(e.to_string()))
            }
            _ => self.stats.discarded += 1,
        }
    }

    fn fail(&mut self, error: DtlsError) {
        if !matches!(self.state, DtlsState::Failed(_)) {
            self.state = DtlsState::Failed(error);
            self.srtp = None;
        }
    }

    /// Checks the peer certificate against the SDP fingerprint (again, for
    /// a handshake that ran before it was known) and derives the keys.
    fn authenticate_and_key(&mut self) {
        let Some(expected) = *lock(&self.expected) else {
            self.state = DtlsState::AwaitingFingerprint;
            return;
        };
        let Some(state) = self.endpoint.get_connection_state(PEER) else {
            self.fail(DtlsError::Closed);
            return;
        };
        if !certificate_matches(&state.peer_certificates, expected) {
            self.fail(DtlsError::FingerprintMismatch);
            return;
        }
        match srtp_contexts(state, &self.profiles, self.provider.as_ref()) {
            Ok(contexts) => {
                self.srtp = Some(contexts);
                self.state = DtlsState::Connected;
            }
            Err(e) => self.fail(e),
        }
    }

    /// Moves the endpoint's output to our queue; tells whether it holds a
    /// plaintext fatal alert (before the handshake completes, our alerts
    /// are not encrypted).
    fn drain_transmits(&mut self) -> bool {
        let mut fatal = false;
        while let Some(t) = self.endpoint.poll_transmit() {
            fatal |= has_plaintext_fatal_alert(&t.message);
            self.stats.datagrams_out += 1;
            self.transmits.push_back(t.message.into());
        }
        fatal
    }
}

fn lock(expected: &Expected) -> std::sync::MutexGuard<'_, Option<Fingerprint>> {
    // The guarded value is a plain Copy; a panicking holder cannot leave it
    // half-written.
    expected.lock().unwrap_or_else(PoisonError::into_inner)
}

fn certificate_matches(chain: &[Vec<u8>], expected: Fingerprint) -> bool {
    chain
        .first()
        .is_some_and(|leaf| Fingerprint::of_der(leaf) == expected)
}

fn has_plaintext_fatal_alert(mut datagram: &[u8]) -> bool {
    while datagram.len() >= RECORD_HEADER {
        let epoch = u16::from_be_bytes([datagram[3], datagram[4]]);
        let len = usize::from(u16::from_be_bytes([datagram[11], datagram[12]]));
        let Some(body) = datagram.get(RECORD_HEADER..RECORD_HEADER + len) else {
            return false;
        };
        if datagram[0] == CONTENT_ALERT && epoch == 0 && body.first() == Some(&ALERT_FATAL) {
            return true;
        }
        datagram = &datagram[RECORD_HEADER + len..];
    }
    false
}

fn handshake_config(
    role: DtlsRole,
    cert: &DtlsCertificate,
    profiles: &[SrtpProfile],
    expected: Expected,
) -> Result<HandshakeConfig, DtlsError> {
    // No CA: the callback is the authentication (RFC 8122 §5). It runs for
    // both roles once the peer's Certificate arrives; before the SDP
    // fingerprint is known it lets the handshake finish and
    // `authenticate_and_key` decides.
    let verify = Arc::new(move |chain: &[Vec<u8>], _: &[_]| match *lock(&expected) {
        Some(fp) if !certificate_matches(chain, fp) => {
            Err(RtcError::ErrNoMatchingCertificateFingerprint)
        }
        _ => Ok(()),
    });
    let srtp_profiles = profiles
        .iter()
        .map(|p| match p {
            SrtpProfile::AeadAes128Gcm => SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm,
            SrtpProfile::Aes128CmHmacSha1_80 => SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80,
        })
        .collect();
    ConfigBuilder::default()
        .with_crypto_provider(cert.provider().clone())
        .with_certificates(vec![cert.dtls().clone()])
        // What browsers offer with an ECDSA certificate, AEAD first.
        .with_cipher_suites(vec![
            CipherSuiteId::Tls_Ecdhe_Ecdsa_With_Aes_128_Gcm_Sha256,
            CipherSuiteId::Tls_Ecdhe_Ecdsa_With_ChaCha20_Poly1305_Sha256,
            CipherSuiteId::Tls_Ecdhe_Ecdsa_With_Aes_256_Cbc_Sha,
        ])
        .with_srtp_protection_profiles(srtp_profiles)
        .with_extended_master_secret(ExtendedMasterSecretType::Require)
        // The server must see the browser's certificate to check it.
        .with_client_auth(ClientAuthType::RequireAnyClientCert)
        .with_insecure_skip_verify(true)
        .with_verify_peer_certificate(Some(verify))
        // Set so the stack does not derive SNI from the placeholder address
        // (nor warn about its absence); browsers ignore it.
        .with_server_name("localhost".into())
        .build(role == DtlsRole::Client, None)
        .map_err(|e| DtlsError::Config(e.to_string()))
}

/// RFC 5764 §4.2: client write key, server write key, client salt, server
/// salt, from the `EXTRACTOR-dtls_srtp` exporter.
fn srtp_contexts(
    state: &State,
    offered: &[SrtpProfile],
    provider: &dyn RTCCryptoProvider,
) -> Result<(SrtpContext, SrtpContext), DtlsError> {
    let profile = match state.srtp_protection_profile() {
        SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm => SrtpProfile::AeadAes128Gcm,
        SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80 => SrtpProfile::Aes128CmHmacSha1_80,
        other => return Err(DtlsError::Keying(format!("negotiated {other:?}"))),
    };
    if !offered.contains(&profile) {
        return Err(DtlsError::Keying(format!("{profile:?} was not offered")));
    }
    let mut config = rtc_srtp::config::Config {
        profile: profile.rtc(),
        ..Default::default()
    };
    let material = state
        .export_keying_material(LABEL_EXTRACTOR_DTLS_SRTP, &[], config.keying_material_len())
        .map_err(|e| DtlsError::Keying(e.to_string()))?;
    config
        .set_session_keys_from_keying_material(material.as_ref(), state.is_client())
        .map_err(|e| DtlsError::Keying(e.to_string()))?;
    let keys = &config.keys;
    let crypto = provider.crypto();
    let local = SrtpContext::new(
        profile,
        &keys.local_master_key,
        &keys.local_master_salt,
        false,
        crypto,
    );
    let remote = SrtpContext::new(
        profile,
        &keys.remote_master_key,
        &keys.remote_master_salt,
        true,
        crypto,
    );
    match (local, remote) {
        (Ok(l), Ok(r)) => Ok((l, r)),
        (Err(e), _) | (_, Err(e)) => Err(DtlsError::Keying(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::srtp::SrtpError;
    use std::time::Duration;

    fn certs() -> (DtlsCertificate, DtlsCertificate) {
        (
            DtlsCertificate::generate().unwrap(),
            DtlsCertificate::generate().unwrap(),
        )
    }

    /// Passes datagrams both ways until neither side has anything to send.
    fn pump(a: &mut DtlsLeg, b: &mut DtlsLeg, now: Instant) {
        for _ in 0..64 {
            let mut moved = false;
            while let Some(d) = a.poll_transmit() {
                moved = true;
                let _ = b.handle_datagram(now, &d);
            }
            while let Some(d) = b.poll_transmit() {
                moved = true;
                let _ = a.handle_datagram(now, &d);
            }
            if !moved {
                return;
            }
        }
        panic!("handshake did not settle");
    }

    fn connected_pair(
        client_profiles: &[SrtpProfile],
        server_profiles: &[SrtpProfile],
    ) -> (DtlsLeg, DtlsLeg) {
        let (cc, sc) = certs();
        let now = Instant::now();
        let mut server = DtlsLeg::with_profiles(
            DtlsRole::Server,
            &sc,
            Some(cc.fingerprint()),
            server_profiles,
            now,
        )
        .unwrap();
        let mut client = DtlsLeg::with_profiles(
            DtlsRole::Client,
            &cc,
            Some(sc.fingerprint()),
            client_profiles,
            now,
        )
        .unwrap();
        assert!(server.poll_transmit().is_none(), "a server waits");
        pump(&mut client, &mut server, now);
        assert_eq!(client.state(), &DtlsState::Connected);
        assert_eq!(server.state(), &DtlsState::Connected);
        (client, server)
    }

    /// `from` protects, `to` unprotects, RTP and RTCP.
    fn check_media(from: &mut DtlsLeg, to: &mut DtlsLeg, ssrc: u32) {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let (tx, _) = from.srtp_contexts().unwrap();
        let rtp = crate::srtp::tests::rtp(ssrc, 1000, b"some audio");
        tx.protect_rtp(&rtp, &mut a).unwrap();
        let (_, rx) = to.srtp_contexts().unwrap();
        rx.unprotect_rtp(&a, &mut b).unwrap();
        assert_eq!(b, rtp);

        let (tx, _) = from.srtp_contexts().unwrap();
        let rtcp = crate::srtp::tests::rtcp_rr(ssrc);
        tx.protect_rtcp(&rtcp, &mut a).unwrap();
        let (_, rx) = to.srtp_contexts().unwrap();
        rx.unprotect_rtcp(&a, &mut b).unwrap();
        assert_eq!(b, rtcp);

        // The direction's keys are not the other direction's.
        let (tx, _) = from.srtp_contexts().unwrap();
        tx.protect_rtp(&crate::srtp::tests::rtp(ssrc, 1001, b"x"), &mut a)
            .unwrap();
        let (_, rx) = from.srtp_contexts().unwrap();
        assert_eq!(rx.unprotect_rtp(&a, &mut b), Err(SrtpError::Authentication));
    }

    #[test]
    fn handshake_and_media_for_each_profile() {
        for profile in SrtpProfile::ALL {
            let (mut client, mut server) = connected_pair(&[profile], &SrtpProfile::ALL);
            assert_eq!(client.srtp_profile(), Some(profile));
            assert_eq!(server.srtp_profile(), Some(profile));
            check_media(&mut client, &mut server, 0x1111);
            check_media(&mut server, &mut client, 0x2222);
            assert_eq!(client.poll_timeout(), None);
        }
    }

    #[test]
    fn gcm_is_preferred_when_both_are_offered() {
        let (client, server) = connected_pair(&SrtpProfile::ALL, &SrtpProfile::ALL);
        assert_eq!(client.srtp_profile(), Some(SrtpProfile::AeadAes128Gcm));
        assert_eq!(server.srtp_profile(), Some(SrtpProfile::AeadAes128Gcm));
    }

    #[test]
    fn no_common_profile_fails() {
        let (cc, sc) = certs();
        let now = Instant::now();
        let mut server = DtlsLeg::with_profiles(
            DtlsRole::Server,
            &sc,
            Some(cc.fingerprint()),
            &[SrtpProfile::AeadAes128Gcm],
            now,
        )
        .unwrap();
        let mut client = DtlsLeg::with_profiles(
            DtlsRole::Client,
            &cc,
            Some(sc.fingerprint()),
            &[SrtpProfile::Aes128CmHmacSha1_80],
            now,
        )
        .unwrap();
        pump(&mut client, &mut server, now);
        assert!(matches!(server.state(), DtlsState::Failed(_)), "{server:?}");
        assert!(matches!(client.state(), DtlsState::Failed(_)), "{client:?}");
        assert!(server.srtp_contexts().is_none());
    }

    #[test]
    fn wrong_fingerprint_fails_the_handshake_either_way() {
        let wrong = Fingerprint([0xab; 32]);
        for client_is_wrong in [true, false] {
            let (cc, sc) = certs();
            let now = Instant::now();
            let (server_expects, client_expects) = if client_is_wrong {
                (wrong, sc.fingerprint())
            } else {
                (cc.fingerprint(), wrong)
            };
            let mut server =
                DtlsLeg::new(DtlsRole::Server, &sc, Some(server_expects), now).unwrap();
            let mut client =
                DtlsLeg::new(DtlsRole::Client, &cc, Some(client_expects), now).unwrap();
            pump(&mut client, &mut server, now);
            let (checker, other) = if client_is_wrong {
                (&mut server, &mut client)
            } else {
                (&mut client, &mut server)
            };
            assert_eq!(
                checker.state(),
                &DtlsState::Failed(DtlsError::FingerprintMismatch)
            );
            assert!(checker.srtp_contexts().is_none());
            // The other side got the alert, or at least never connected.
            assert!(!other.is_connected(), "{other:?}");
        }
    }

    #[test]
    fn fingerprint_learnt_after_the_handshake() {
        let (cc, sc) = certs();
        let now = Instant::now();
        let mut server = DtlsLeg::new(DtlsRole::Server, &sc, None, now).unwrap();
        let mut client = DtlsLeg::new(DtlsRole::Client, &cc, Some(sc.fingerprint()), now).unwrap();
        pump(&mut client, &mut server, now);
        assert!(client.is_connected());
        assert_eq!(server.state(), &DtlsState::AwaitingFingerprint);
        assert!(server.srtp_contexts().is_none());
        server.set_remote_fingerprint(cc.fingerprint());
        assert!(server.is_connected());
        check_media(&mut client, &mut server, 7);

        let mut server = DtlsLeg::new(DtlsRole::Server, &sc, None, now).unwrap();
        let mut client = DtlsLeg::new(DtlsRole::Client, &cc, Some(sc.fingerprint()), now).unwrap();
        pump(&mut client, &mut server, now);
        server.set_remote_fingerprint(Fingerprint([0; 32]));
        assert_eq!(
            server.state(),
            &DtlsState::Failed(DtlsError::FingerprintMismatch)
        );
    }

    #[test]
    fn lost_flights_are_retransmitted() {
        let (cc, sc) = certs();
        let t0 = Instant::now();
        let mut server = DtlsLeg::new(DtlsRole::Server, &sc, Some(cc.fingerprint()), t0).unwrap();
        let mut client = DtlsLeg::new(DtlsRole::Client, &cc, Some(sc.fingerprint()), t0).unwrap();
        // The first ClientHello is lost.
        while client.poll_transmit().is_some() {}
        let due = client.poll_timeout().expect("a retransmission timer");
        assert!(due > t0);
        client.handle_timeout(due).unwrap();
        pump(&mut client, &mut server, due);
        assert!(client.is_connected() && server.is_connected());
    }

    #[test]
    fn silent_peer_times_out() {
        let (cc, sc) = certs();
        let mut now = Instant::now();
        let mut client = DtlsLeg::new(DtlsRole::Client, &cc, Some(sc.fingerprint()), now).unwrap();
        for _ in 0..100 {
            while client.poll_transmit().is_some() {}
            match client.poll_timeout() {
                Some(due) => now = due.max(now + Duration::from_millis(1)),
                None => break,
            }
            let _ = client.handle_timeout(now);
        }
        assert_eq!(client.state(), &DtlsState::Failed(DtlsError::Timeout));
    }

    #[test]
    fn garbage_datagrams_do_not_panic_or_break_the_handshake() {
        let (cc, sc) = certs();
        let now = Instant::now();
        let mut server = DtlsLeg::new(DtlsRole::Server, &sc, Some(cc.fingerprint()), now).unwrap();
        let mut client = DtlsLeg::new(DtlsRole::Client, &cc, Some(sc.fingerprint()), now).unwrap();
        let mut seed = 0x2545_f491_u32;
        let mut junk = |len: usize, first: u8| -> Vec<u8> {
            let mut v: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    seed as u8
                })
                .collect();
            if let Some(b) = v.first_mut() {
                *b = first;
            }
            v
        };
        let feed_junk = |leg: &mut DtlsLeg, junk: &mut dyn FnMut(usize, u8) -> Vec<u8>| {
            for len in [0, 1, 12, 13, 14, 25, 60, 200, 1200] {
                for first in [0, 20, 21, 22, 23, 63, 128, 255] {
                    let d = junk(len, first);
                    let _ = leg.handle_datagram(now, &d);
                }
            }
            // Well-framed handshake records with random bodies.
            for len in [0u16, 1, 12, 40, 300] {
                let mut d = vec![22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 9];
                d.extend_from_slice(&len.to_be_bytes());
                d.extend(junk(usize::from(len), 1));
                let _ = leg.handle_datagram(now, &d);
            }
        };
        feed_junk(&mut server, &mut junk);
        assert_eq!(server.state(), &DtlsState::Handshaking);
        // Whatever the junk provoked is not part of the handshake.
        while server.poll_transmit().is_some() {}

        // Junk between every flight does not stop the handshake.
        for _ in 0..64 {
            let mut moved = false;
            while let Some(d) = client.poll_transmit() {
                moved = true;
                let _ = server.handle_datagram(now, &d);
                feed_junk(&mut server, &mut junk);
            }
            while let Some(d) = server.poll_transmit() {
                moved = true;
                let _ = client.handle_datagram(now, &d);
                feed_junk(&mut client, &mut junk);
            }
            if !moved {
                break;
            }
        }
        assert!(client.is_connected(), "{client:?}");
        assert!(server.is_connected(), "{server:?}");
        check_media(&mut client, &mut server, 99);

        // And once connected.
        feed_junk(&mut client, &mut junk);
        feed_junk(&mut server, &mut junk);
        assert!(client.is_connected() && server.is_connected());
        assert!(server.stats().discarded > 0);
    }

    #[test]
    fn close_notify_ends_both_sides() {
        let (mut client, mut server) = connected_pair(&SrtpProfile::ALL, &SrtpProfile::ALL);
        let now = Instant::now();
        client.close(now);
        assert_eq!(client.state(), &DtlsState::Failed(DtlsError::Closed));
        pump(&mut client, &mut server, now);
        assert_eq!(server.state(), &DtlsState::Failed(DtlsError::Closed));
        assert!(server.srtp_contexts().is_none());
    }

    #[test]
    fn role_from_setup() {
        assert_eq!(
            DtlsRole::from_local_setup(sdp::Setup::Passive),
            Some(DtlsRole::Server)
        );
        assert_eq!(
            DtlsRole::from_local_setup(sdp::Setup::Active),
            Some(DtlsRole::Client)
        );
        assert_eq!(DtlsRole::from_local_setup(sdp::Setup::ActPass), None);
    }

    #[test]
    fn plaintext_fatal_alerts_are_spotted() {
        let alert = |epoch: u8, level: u8| {
            vec![21, 0xfe, 0xfd, 0, epoch, 0, 0, 0, 0, 0, 0, 0, 2, level, 42]
        };
        assert!(has_plaintext_fatal_alert(&alert(0, 2)));
        assert!(!has_plaintext_fatal_alert(&alert(0, 1)));
        assert!(!has_plaintext_fatal_alert(&alert(1, 2)));
        let mut two = vec![22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0];
        two.extend(alert(0, 2));
        assert!(has_plaintext_fatal_alert(&two));
        assert!(!has_plaintext_fatal_alert(&two[..20]));
    }
}
