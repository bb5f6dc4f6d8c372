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
//!
//! Still to come: DTLS-SRTP (handshake, key export, SRTP/SRTCP protection),
//! RTP/RTCP header handling and payload-type rewriting on the packet path,
//! the session table and control API, and the I/O workers.
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

#![warn(missing_docs)]

pub mod demux;
pub mod ice;
pub mod sdp_transform;
pub mod stun;

pub use demux::{classify, PacketKind};
pub use ice::{CheckOutcome, IceCredentials, IceLite, StunHandled, Transmit};
pub use sdp_transform::{
    payload_type_map, plain_to_webrtc, webrtc_to_plain, PayloadTypeMap, TransformError, WebRtcRole,
    WebRtcTransport, DEFAULT_TRUNK_CODECS,
};
