//! Sans-IO foundation of callgate's media relay.
//!
//! # The relay
//!
//! callgate bridges browsers (WebRTC) and SIP trunks. Media does not go
//! browser-to-trunk directly: neither side speaks the other's transport, so
//! a relay inside the gateway binary terminates both, the way rtpengine
//! does for Kamailio:
//!
//! - **Sessions and legs** ([`session`]). A session is one call; it has two
//!   legs. A browser leg is ICE-lite (the relay only answers checks) +
//!   DTLS-SRTP + BUNDLE + `rtcp-mux` on a single UDP port. A plain leg is
//!   RTP/AVP on an even port per media section with RTCP on the next one
//!   (or `rtcp-mux`), latching to the first source or, with
//!   `strict_source`, only talking to the SDP's address. Packets received
//!   on one leg are decrypted or not, their payload type rewritten when the
//!   legs number a codec differently, re-encrypted or not, and sent to the
//!   other leg's selected or latched remote address. Browser↔browser and
//!   plain↔plain sessions work the same way.
//! - **Control API.** The signalling side drives the relay with
//!   [`Relay::offer`] / [`Relay::offer_with`], [`Relay::answer`],
//!   [`Relay::delete`] and [`Relay::stats`] (packets, bytes, drops, the
//!   peers' RTCP loss and jitter, last-packet times), and reads
//!   [`Relay::poll_event`] for media timeouts ([`RelayEvent::Timeout`]: end
//!   the dialog) and DTLS failures. Offer and answer allocate ports
//!   ([`PortAllocator`]) and rewrite the SDP with [`sdp_transform`].
//! - **I/O.** The protocol code stays free of sockets and clocks: it is fed
//!   datagrams, source addresses and the current time, and returns what to
//!   send, so it is tested without a network and works under any backend.
//!   [`driver`] runs it: on io_uring, worker threads (one per core by
//!   default) each own a shard of the sessions, their sockets, a multishot
//!   `RecvMsg` per port on a provided-buffer ring and batched `SendMsg`;
//!   where io_uring is unavailable, a tokio (epoll) fallback with a socket
//!   and receive task per port. [`driver::RelayHandle`] has async control
//!   methods and [`driver::RelayHandle::with_session`], the synchronous
//!   access the signalling core's media hook uses.
//!
//! # Modules
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
//! - [`rtp`]: the RTP/RTCP fields the packet path reads: payload type,
//!   SSRC, header extensions (BUNDLE MID), RTCP reception reports.
//! - [`session`]: the sans-IO relay engine described above.
//! - [`driver`]: the io_uring workers and the tokio UDP fallback.
//!
//! # Not done yet
//!
//! - **Workers are not pinned** to CPUs and socket receive buffers keep the
//!   kernel default; the fallback driver serialises everything behind one
//!   lock.
//! - **Timers scale linearly**: [`Relay::poll_timeout`] and
//!   [`Relay::handle_timeout`] scan every session; a timer wheel or heap
//!   is needed for thousands of calls.
//! - **BUNDLE MID extension**: the demux reads `urn:ietf:params:rtp-hdrext:sdes:mid`
//!   when the browser's SDP maps it, but [`sdp_transform`] drops `a=extmap`
//!   from our answers, so browsers do not send it; bundled sections are
//!   told apart by signalled/learned SSRC and unique payload types.
//!   Only audio reaches trunks; video relays only browser↔browser and
//!   is untested there.
//! - **Renegotiation**: a re-offer keeps legs and ports, updates addresses
//!   (plain latches reset when the SDP address changes) and ICE
//!   credentials (restart), and rebuilds payload-type maps; a changed DTLS
//!   fingerprint or setup role on an established browser leg does not
//!   start a new handshake, and a change in the number of media sections
//!   is refused.
//! - **No SSRC or sequence rewriting**, no transcoding, no RTCP
//!   generation or termination (RTCP is relayed end to end; browser
//!   feedback such as transport-cc reaches trunks as is), no SDES-SRTP
//!   (`RTP/SAVP`) trunks, no TURN.
//! - **Plain latching** is to the first packet only, with no re-latch
//!   after a quiet period (rtpengine-style) and no RTCP-based latching of
//!   the RTP address.
//! - **ICE consent** expiry stops media towards a browser but is not yet
//!   reported as an event; DTLS close_notify is not sent on delete.
//! - **SRTP allocates** one buffer per packet inside `rtc-srtp`; the rest
//!   of the packet path reuses the relay's buffers.
//! - The driver logs and skips a port it cannot bind; the relay does not
//!   yet learn of it to move the leg elsewhere.
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
pub mod driver;
pub mod dtls;
pub mod ice;
pub mod rtp;
pub mod sdp_transform;
pub mod session;
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
pub use session::{
    Datagram, LegKind, LegStats, OfferOptions, Outputs, PortAllocator, PortChange, Relay,
    RelayConfig, RelayError, RelayEvent, SessionStats, Side,
};
pub use srtp::{SrtpContext, SrtpError, SrtpProfile, SrtpStats};
