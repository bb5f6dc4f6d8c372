//! Sans-IO foundation of callgate's media relay.
//!
//! # The relay (planned)
//!
//! callgate bridges browsers (WebRTC) and SIP trunks. Media will not go
//! browser-to-trunk directly: neither side speaks the other's transport, so
//! a relay inside the gateway binary terminates both, the way rtpengine
//! does for Kamailio:
//!
//! - **Sessions and legs.** A session is one call; it has two legs. A
//!   browser leg is ICE-lite (the relay only answers checks) + DTLS-SRTP +
//!   BUNDLE + `rtcp-mux` on a single UDP port. A trunk leg is plain RTP/AVP
//!   on an even port with RTCP on the next one. Packets received on one leg
//!   are decrypted or not, their payload type rewritten when the legs number
//!   a codec differently, re-encrypted or not, and sent to the other leg's
//!   latched remote address.
//! - **Control API.** The signalling side drives the relay with
//!   `offer(call, leg, sdp) -> sdp`, `answer(call, leg, sdp) -> sdp`,
//!   `delete(call)` and `stats(call)` (packets, bytes, losses, last-packet
//!   times for timeouts). Offer and answer allocate ports and rewrite the
//!   SDP with [`sdp_transform`].
//! - **I/O.** A few worker threads, each owning a share of the sockets, run
//!   io_uring (multishot receive, registered buffers) where the kernel
//!   allows it, and fall back to epoll with `recvmmsg`/`sendmmsg`. The
//!   protocol code stays free of sockets and clocks: it is fed datagrams,
//!   source addresses and the current time, and returns what to send, so it
//!   is tested without a network and works under either backend.
//!
//! # What this crate has so far
//!
//! - [`demux`]: RFC 7983 classification of a datagram (STUN, DTLS, RTP,
//!   RTCP...) with the RFC 5761 RTP/RTCP split.
//! - [`stun`]: an ICE-lite STUN responder: Binding request parsing,
//!   USERNAME / MESSAGE-INTEGRITY / FINGERPRINT checks, success and 400,
//!   401, 420 error responses with XOR-MAPPED-ADDRESS (IPv4 and IPv6),
//!   tested against the RFC 5769 vectors.
//! - [`ice`]: per-leg ICE-lite state: local credentials from caller-given
//!   random bytes, remote credentials from SDP, latching of the selected
//!   remote address on nomination, ICE restarts, consent expiry.
//! - [`sdp_transform`]: browser ⇄ trunk SDP rewriting on top of the `sdp`
//!   crate, and payload-type maps.
//! - [`cert`]: the process-wide self-signed ECDSA P-256 DTLS certificate and
//!   SHA-256 fingerprints in SDP form.
//! - [`dtls`]: DTLS-SRTP of a browser leg: DTLS 1.2 as client or server,
//!   the peer authenticated by its SDP fingerprint, SRTP keys from the
//!   RFC 5764 exporter (`SRTP_AEAD_AES_128_GCM`,
//!   `SRTP_AES128_CM_HMAC_SHA1_80`).
//! - [`srtp`]: SRTP/SRTCP protect and unprotect with caller buffers and
//!   counted, never panicking, failures.
//!
//! Still to come: RTP/RTCP header handling and payload-type rewriting on
//! the packet path, the session table and control API, and the I/O
//! workers.
//!
//! # Why STUN is written here
//!
//! The available crates were considered: `stun-types` 2.0 pulls in `rand`,
//! `tracing`, `smallvec` and an older RustCrypto generation (`hmac` 0.12,
//! `sha1` 0.10) than the one this workspace builds; `stun_codec` 0.4 brings
//! `bytecodec`/`trackable` and the same older crypto; webrtc-rs `stun` is
//! async-oriented and part of a large dependency tree. An ICE-lite agent
//! needs one request and two responses, so a few hundred lines give a
//! parser that borrows the datagram and a writer that fills a caller
//! buffer (no allocation per check), with only `hmac`, `sha1` and
//! `crc32fast` as dependencies.

//! # Why DTLS and SRTP come from `rtc-dtls` and `rtc-srtp`
//!
//! webrtc-rs's `webrtc-dtls` (last release 0.12, since renamed `dtls`) and
//! `webrtc-srtp` are async: the handshake runs on a tokio task over a
//! `Conn`, so a leg would need a runtime, channels and a task per call,
//! against the relay's own I/O workers. The same project's sans-IO
//! rewrite, `rtc-dtls` and `rtc-srtp` (0.21, what its `webrtc` 0.20+ is
//! built on), puts the project's DTLS and SRTP behind an endpoint that is
//! fed datagrams and the time and polled for output, exactly this crate's
//! model, so [`dtls::DtlsLeg`] needs no runtime, task or channel. Both use ring (as the workspace's rustls does) and the rcgen 0.14
//! the transport crate already builds; no OpenSSL. `webrtc-dtls` 0.12 would
//! also have brought a second rcgen and webrtc-util generation.

#![warn(missing_docs)]

pub mod cert;
pub mod demux;
pub mod dtls;
pub mod ice;
pub mod sdp_transform;
pub mod srtp;
pub mod stun;

pub use cert::{CertError, DtlsCertificate, Fingerprint};
pub use demux::{classify, PacketKind};
pub use dtls::{DtlsError, DtlsLeg, DtlsRole, DtlsState, DtlsStats};
pub use ice::{CheckOutcome, IceCredentials, IceLite, StunHandled, Transmit};
pub use sdp_transform::{
    payload_type_map, plain_to_webrtc, webrtc_to_plain, PayloadTypeMap, TransformError, WebRtcRole,
    WebRtcTransport, DEFAULT_TRUNK_CODECS,
};
pub use srtp::{SrtpContext, SrtpError, SrtpProfile, SrtpStats};
