//! The relay engine, sans-IO: sessions of two legs, the control API
//! signalling calls, and the packet path.
//!
//! A [`Relay`] owns every session. A session is one call with two
//! [`Side`]s, each a leg on the relay:
//!
//! - a **browser leg** (`UDP/TLS/RTP/SAVPF`): one local port carrying STUN
//!   (ICE-lite), DTLS and SRTP/SRTCP for every bundled media section;
//!   packets are assigned to a section by SSRC, then by the MID header
//!   extension, then by payload type;
//! - a **plain leg** (`RTP/AVP`): per media section an even local port for
//!   RTP and the next one for RTCP (or only the first with `rtcp-mux`);
//!   media goes to the address of the first packet received (symmetric
//!   RTP latching) or, with [`RelayConfig::strict_source`], only to and
//!   from the address in the peer's SDP.
//!
//! The kind of a side's leg follows its SDP's transport; the kind of the
//! side an offer goes to is the opposite one unless
//! [`OfferOptions::peer`] says otherwise (browser↔browser,
//! plain↔plain).
//!
//! Media section `i` of one side is relayed to section `i` of the other;
//! the payload type is rewritten to the receiving side's number for the
//! same codec (e.g. telephone-event 101 on a trunk, 126 in Chromium).
//!
//! The relay is fed datagrams ([`Relay::handle_packet`]) and the time
//! ([`Relay::handle_timeout`] at [`Relay::poll_timeout`]), and answers with
//! [`Outputs`] (datagrams to send from a local port) and
//! [`Relay::poll_event`] / [`Relay::poll_port_change`]. Outputs live in
//! buffers the relay reuses, so the steady-state packet path of plain legs
//! does not allocate (the SRTP library still allocates one buffer per
//! protected packet).

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::ops::{Range, RangeInclusive};
use std::time::{Duration, Instant};

use sdp::{MediaDescription, SessionDescription, Setup};

use crate::cert::{DtlsCertificate, Fingerprint};
use crate::demux::{classify, PacketKind};
use crate::dtls::{DtlsLeg, DtlsRole, DtlsState};
use crate::ice::{IceCredentials, IceLite, CONSENT_TIMEOUT};
use crate::rtp::{self, ReceptionReport};
use crate::sdp_transform::{
    plain_to_webrtc, webrtc_to_plain, TransformError, WebRtcRole, WebRtcTransport,
    DEFAULT_TRUNK_CODECS,
};

/// The RTP header extension that carries the BUNDLE mid (RFC 8843 §15.2).
pub const MID_EXTENSION_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";

/// Relay settings.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// The address put in SDP (`c=`, `o=`, ICE candidates).
    pub advertised_ip: IpAddr,
    /// Local UDP ports to allocate from; RTP takes the even ones.
    pub ports: RangeInclusive<u16>,
    /// A session that received no media for this long, once answered, is
    /// reported with [`RelayEvent::Timeout`].
    pub media_timeout: Duration,
    /// Plain legs accept media only from the address in the peer's SDP
    /// (and send only there) instead of latching to the first source.
    pub strict_source: bool,
    /// Codecs offered to a plain leg when the offer comes from a browser
    /// (see [`webrtc_to_plain`]).
    pub trunk_codecs: Vec<String>,
}

impl RelayConfig {
    /// Defaults: ports 30000–39999, 60 s media timeout, latching,
    /// [`DEFAULT_TRUNK_CODECS`].
    pub fn new(advertised_ip: IpAddr) -> Self {
        Self {
            advertised_ip,
            ports: 30000..=39999,
            media_timeout: Duration::from_secs(60),
            strict_source: false,
            trunk_codecs: DEFAULT_TRUNK_CODECS.iter().map(|s| s.to_string()).collect(),
        }
    }
}

/// Hands out local ports from a range: even ports for RTP, with the next
/// odd one when RTCP needs its own. Allocation goes round the range rather
/// than reusing the port just freed, so late packets of an ended call do
/// not land in a new one.
#[derive(Debug, Clone)]
pub struct PortAllocator {
    first: u16,
    used: Vec<bool>,
    cursor: usize,
    in_use: usize,
}

impl PortAllocator {
    /// An allocator over `range` (its first even port onwards).
    pub fn new(range: RangeInclusive<u16>) -> Self {
        let first = range.start().saturating_add(range.start() % 2);
        let len = if *range.end() >= first {
            usize::from(*range.end() - first) + 1
        } else {
            0
        };
        Self {
            first,
            used: vec![false; len],
            cursor: 0,
            in_use: 0,
        }
    }

    /// An even port, and with `pair` the odd one after it too.
    pub fn allocate(&mut self, pair: bool) -> Option<u16> {
        let slots = self.used.len() / 2 + self.used.len() % 2;
        for step in 0..slots {
            let i = ((self.cursor + step) % slots) * 2;
            let free = !self.used[i] && (!pair || self.used.get(i + 1) == Some(&false));
            if free {
                self.used[i] = true;
                self.in_use += 1;
                if pair {
                    self.used[i + 1] = true;
                    self.in_use += 1;
                }
                self.cursor = (i / 2 + 1) % slots;
                return Some(self.first + i as u16);
            }
        }
        None
    }

    /// Takes `port` itself out of allocation (e.g. while something else
    /// holds it), until [`Self::release`]. False if it is outside the
    /// range or already in use.
    pub fn reserve(&mut self, port: u16) -> bool {
        match self.index(port).and_then(|i| self.used.get_mut(i)) {
            Some(slot) if !*slot => {
                *slot = true;
                self.in_use += 1;
                true
            }
            _ => false,
        }
    }

    /// Whether `port` is handed out or reserved.
    pub fn is_used(&self, port: u16) -> bool {
        self.index(port)
            .and_then(|i| self.used.get(i))
            .is_some_and(|u| *u)
    }

    /// Gives a port back.
    pub fn release(&mut self, port: u16) {
        if let Some(slot) = self.index(port).and_then(|i| self.used.get_mut(i)) {
            if *slot {
                *slot = false;
                self.in_use -= 1;
            }
        }
    }

    /// Ports currently handed out.
    pub fn in_use(&self) -> usize {
        self.in_use
    }

    fn index(&self, port: u16) -> Option<usize> {
        port.checked_sub(self.first)
            .map(usize::from)
            .filter(|i| *i < self.used.len())
    }
}

impl Default for PortAllocator {
    fn default() -> Self {
        Self::new(30000..=39999)
    }
}

/// One of the two sides of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The first side (usually the caller).
    A,
    /// The second side.
    B,
}

impl Side {
    /// The other side.
    pub fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }

    fn index(self) -> usize {
        match self {
            Side::A => 0,
            Side::B => 1,
        }
    }

    fn from_index(i: usize) -> Side {
        if i == 0 {
            Side::A
        } else {
            Side::B
        }
    }
}

/// What kind of transport a leg has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LegKind {
    /// ICE-lite + DTLS-SRTP + BUNDLE + rtcp-mux.
    Browser,
    /// Plain RTP/AVP.
    Plain,
}

impl LegKind {
    fn opposite(self) -> LegKind {
        match self {
            LegKind::Browser => LegKind::Plain,
            LegKind::Plain => LegKind::Browser,
        }
    }
}

/// Options of [`Relay::offer_with`].
#[derive(Debug, Clone, Copy, Default)]
pub struct OfferOptions {
    /// The kind of leg the offer goes to; by default the opposite of the
    /// offerer's (a browser calls a trunk, a trunk calls a browser).
    pub peer: Option<LegKind>,
}

/// Why a control call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelayError {
    /// The SDP does not parse.
    #[error("unparseable SDP: {0}")]
    Sdp(String),
    /// No media section with a transport the relay speaks.
    #[error("unsupported media transport {0:?}")]
    UnsupportedTransport(String),
    /// The SDP's transport is not the one this side's leg has.
    #[error("this side is a {expected:?} leg")]
    KindMismatch {
        /// The leg's kind.
        expected: LegKind,
    },
    /// A re-offer changed the number of media sections.
    #[error("the re-offer has {given} media sections, the session {expected}")]
    MediaCount {
        /// Sections in the session.
        expected: usize,
        /// Sections in the new SDP.
        given: usize,
    },
    /// No such session.
    #[error("no session {0}")]
    UnknownSession(String),
    /// An answer without an offer from the other side.
    #[error("no offer pending for this side to answer")]
    NoPendingOffer,
    /// The port range is exhausted.
    #[error("no free ports")]
    NoPorts,
    /// The I/O layer could not open the local ports allocated for the
    /// session (another process holds them): nothing was advertised.
    #[error("no media port could be opened")]
    PortsUnavailable,
    /// SDP rewriting failed.
    #[error(transparent)]
    Transform(#[from] TransformError),
    /// The DTLS leg could not be set up.
    #[error("DTLS setup: {0}")]
    Dtls(String),
}

/// Something signalling must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayEvent {
    /// No media for [`RelayConfig::media_timeout`]: end the dialog (BYE).
    Timeout(String),
    /// A browser leg's DTLS failed (handshake timeout, bad fingerprint,
    /// peer closed): no media can flow on it any more.
    LegFailed {
        /// Session id.
        session: String,
        /// Which side.
        side: Side,
        /// What happened.
        reason: String,
    },
}

/// A local port starts or stops being used: the I/O layer binds or closes
/// its socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortChange {
    /// Bind this port.
    Opened(u16),
    /// Close this port.
    Closed(u16),
}

/// Counters and state of one leg for [`Relay::stats`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegStats {
    /// The leg's transport.
    pub kind: LegKind,
    /// Its local ports.
    pub local_ports: Vec<u16>,
    /// Where its media goes (ICE-selected or latched or from SDP), for the
    /// first media section.
    pub remote: Option<SocketAddr>,
    /// Media (RTP and RTCP) packets accepted from the peer.
    pub packets_in: u64,
    /// Their bytes (as received, i.e. with SRTP overhead).
    pub bytes_in: u64,
    /// Media packets sent to the peer.
    pub packets_out: u64,
    /// Their bytes.
    pub bytes_out: u64,
    /// Datagrams dropped: wrong source, failed SRTP, no route, unknown kind.
    pub dropped: u64,
    /// When the last media packet arrived from the peer.
    pub last_packet: Option<Instant>,
    /// The latest RTCP reception report the peer sent: its view of loss
    /// and jitter of the media the relay sends it.
    pub peer_report: Option<ReceptionReport>,
    /// Whether a browser leg's DTLS is connected (always false for plain).
    pub dtls_connected: bool,
}

/// [`Relay::stats`] of one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionStats {
    /// Side A, then side B.
    pub legs: [LegStats; 2],
}

/// One datagram to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datagram<'a> {
    /// The local port to send from.
    pub local_port: u16,
    /// Destination.
    pub to: SocketAddr,
    /// Content.
    pub data: &'a [u8],
}

/// The datagrams one call of [`Relay::handle_packet`] or
/// [`Relay::handle_timeout`] produced; valid until the next call.
#[derive(Debug, Clone, Copy)]
pub struct Outputs<'a> {
    meta: &'a [(u16, SocketAddr, Range<usize>)],
    bytes: &'a [u8],
}

impl<'a> Outputs<'a> {
    /// How many datagrams.
    pub fn len(&self) -> usize {
        self.meta.len()
    }

    /// Nothing to send.
    pub fn is_empty(&self) -> bool {
        self.meta.is_empty()
    }

    /// The datagrams in order.
    pub fn iter(&self) -> impl Iterator<Item = Datagram<'a>> + 'a {
        let bytes = self.bytes;
        self.meta.iter().map(move |(port, to, range)| Datagram {
            local_port: *port,
            to: *to,
            data: &bytes[range.clone()],
        })
    }
}

/// Output arena, cleared at each call and reused.
#[derive(Default)]
struct OutQueue {
    meta: Vec<(u16, SocketAddr, Range<usize>)>,
    bytes: Vec<u8>,
}

impl OutQueue {
    fn clear(&mut self) {
        self.meta.clear();
        self.bytes.clear();
    }

    fn push(&mut self, local_port: u16, to: SocketAddr, data: &[u8]) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(data);
        self.meta.push((local_port, to, start..self.bytes.len()));
    }

    fn view(&self) -> Outputs<'_> {
        Outputs {
            meta: &self.meta,
            bytes: &self.bytes,
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Counters {
    packets_in: u64,
    bytes_in: u64,
    packets_out: u64,
    bytes_out: u64,
    dropped: u64,
    last_packet: Option<Instant>,
    peer_report: Option<ReceptionReport>,
}

/// A payload type rewrite table for one direction of one media section:
/// `PASS` keeps the payload type.
type PtTable = [u8; 128];
const PASS: u8 = 0xff;

/// The browser leg of a session.
struct BrowserLeg {
    port: u16,
    ice: IceLite,
    dtls: Option<DtlsLeg>,
    failure_reported: bool,
    remote_fingerprint: Option<Fingerprint>,
    bundle: Bundle,
}

/// What assigns a bundled packet to its media section.
#[derive(Default)]
struct Bundle {
    mids: Vec<Option<String>>,
    payload_types: Vec<Vec<u8>>,
    active: Vec<bool>,
    mid_extension: Option<u8>,
    ssrcs: Vec<(u32, usize)>,
}

/// Learned SSRCs kept per browser leg.
const MAX_LEARNED_SSRCS: usize = 32;

impl Bundle {
    fn stream_of_rtp(&mut self, packet: &[u8]) -> Option<usize> {
        let ssrc = rtp::ssrc(packet)?;
        if let Some((_, s)) = self.ssrcs.iter().find(|(x, _)| *x == ssrc) {
            return Some(*s);
        }
        let by_mid = self.mid_extension.and_then(|id| {
            let mid = rtp::header_extension(packet, id)?;
            self.mids
                .iter()
                .position(|m| m.as_deref().map(str::as_bytes) == Some(mid))
        });
        let stream = by_mid.or_else(|| {
            let pt = rtp::payload_type(packet)?;
            let mut hits = self
                .payload_types
                .iter()
                .enumerate()
                .filter(|(i, pts)| self.active[*i] && pts.contains(&pt));
            match (hits.next(), hits.next()) {
                (Some((i, _)), None) => Some(i),
                _ => None,
            }
        })?;
        if self.active.get(stream) != Some(&true) {
            return None;
        }
        if self.ssrcs.len() < MAX_LEARNED_SSRCS {
            self.ssrcs.push((ssrc, stream));
        }
        Some(stream)
    }

    fn stream_of_rtcp(&self, packet: &[u8]) -> Option<usize> {
        let ssrc = rtp::rtcp_sender_ssrc(packet);
        self.ssrcs
            .iter()
            .find(|(x, _)| Some(*x) == ssrc)
            .map(|(_, s)| *s)
            .or_else(|| self.active.iter().position(|a| *a))
    }
}

/// One media section of a plain leg.
#[derive(Debug, Default, Clone)]
struct PlainStream {
    /// 0: no port (rejected section).
    rtp_port: u16,
    /// The RTCP port, `None` with rtcp-mux.
    rtcp_port: Option<u16>,
    sdp_rtp: Option<SocketAddr>,
    sdp_rtcp: Option<SocketAddr>,
    remote_mux: bool,
    latched_rtp: Option<SocketAddr>,
    latched_rtcp: Option<SocketAddr>,
}

struct PlainLeg {
    streams: Vec<PlainStream>,
}

enum Transport {
    Browser(Box<BrowserLeg>),
    Plain(PlainLeg),
}

/// One side of a session.
struct Leg {
    transport: Transport,
    /// The SDP this side's peer sent.
    remote_sdp: Option<SessionDescription>,
    /// The SDP the relay gave it.
    local_sdp: Option<SessionDescription>,
    counters: Counters,
}

impl Leg {
    fn kind(&self) -> LegKind {
        match self.transport {
            Transport::Browser(_) => LegKind::Browser,
            Transport::Plain(_) => LegKind::Plain,
        }
    }

    fn ports(&self) -> Vec<u16> {
        match &self.transport {
            Transport::Browser(b) => vec![b.port],
            Transport::Plain(p) => p
                .streams
                .iter()
                .filter(|s| s.rtp_port != 0)
                .flat_map(|s| std::iter::once(s.rtp_port).chain(s.rtcp_port))
                .collect(),
        }
    }
}

/// One call.
struct Session {
    id: String,
    legs: [Leg; 2],
    /// The side whose offer awaits an answer.
    pending_offer: Option<Side>,
    answered: bool,
    last_media: Instant,
    timed_out: bool,
    /// `pt_maps[from side][section]`.
    pt_maps: [Vec<PtTable>; 2],
    /// Order of creation ([`Relay::sessions_created`] when created).
    serial: u64,
}

#[derive(Debug, Clone, Copy)]
struct PortOwner {
    slot: u32,
    side: u8,
    stream: u16,
    rtcp: bool,
}

/// The relay: sessions, ports, and the packet path.
pub struct Relay {
    config: RelayConfig,
    cert: DtlsCertificate,
    rng: ring::rand::SystemRandom,
    allocator: PortAllocator,
    owners: Vec<Option<PortOwner>>,
    owners_first: u16,
    sessions: Vec<Option<Session>>,
    free_slots: Vec<usize>,
    by_id: HashMap<String, usize>,
    out: OutQueue,
    scratch: Vec<u8>,
    scratch2: Vec<u8>,
    stun_buf: Vec<u8>,
    events: VecDeque<RelayEvent>,
    port_changes: VecDeque<PortChange>,
    /// Ports kept out of allocation, and until when. Each is marked used
    /// in the allocator: by its session, else reserved.
    quarantine: Vec<(u16, Instant)>,
    /// Refuse every port allocation (see [`Relay::hold_allocations`]).
    allocations_held: bool,
    sessions_created: u64,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("config", &self.config)
            .field("sessions", &self.by_id.len())
            .field("ports_in_use", &self.allocator.in_use())
            .finish_non_exhaustive()
    }
}

impl Relay {
    /// A relay with no sessions; `cert` is the DTLS certificate of every
    /// browser leg (usually [`DtlsCertificate::process`]).
    pub fn new(config: RelayConfig, cert: DtlsCertificate) -> Self {
        let allocator = PortAllocator::new(config.ports.clone());
        let owners_first = allocator.first;
        let owners = vec![None; allocator.used.len()];
        Self {
            config,
            cert,
            rng: ring::rand::SystemRandom::new(),
            allocator,
            owners,
            owners_first,
            sessions: Vec::new(),
            free_slots: Vec::new(),
            by_id: HashMap::new(),
            out: OutQueue::default(),
            scratch: Vec::with_capacity(2048),
            scratch2: Vec::with_capacity(2048),
            stun_buf: vec![0; 1500],
            events: VecDeque::new(),
            port_changes: VecDeque::new(),
            quarantine: Vec::new(),
            allocations_held: false,
            sessions_created: 0,
        }
    }

    /// The settings.
    pub fn config(&self) -> &RelayConfig {
        &self.config
    }

    /// Sessions in the table.
    pub fn session_count(&self) -> usize {
        self.by_id.len()
    }

    /// Local ports in use by sessions.
    pub fn ports_in_use(&self) -> usize {
        let reserved = self
            .quarantine
            .iter()
            .filter(|(port, _)| self.owner(*port).is_none())
            .count();
        self.allocator.in_use() - reserved
    }

    /// Keeps local `port` out of allocation until `until`: the I/O layer
    /// could not bind it (another process holds it), so it must not be
    /// advertised again soon. A port a session holds stays out once the
    /// session frees it. Quarantines end at the first allocation or
    /// [`Self::handle_timeout`] from `until` on; quarantining a port again
    /// extends it. False for a port outside the range.
    pub fn quarantine_port(&mut self, port: u16, until: Instant) -> bool {
        if self.allocator.index(port).is_none() {
            return false;
        }
        if let Some(q) = self.quarantine.iter_mut().find(|(p, _)| *p == port) {
            q.1 = q.1.max(until);
            return true;
        }
        // A free port is reserved now; one in use stays so on release.
        self.allocator.reserve(port);
        self.quarantine.push((port, until));
        true
    }

    /// Ports in quarantine ([`Self::quarantine_port`]).
    pub fn quarantined_ports(&self) -> usize {
        self.quarantine.len()
    }

    /// Whether `port` is in quarantine.
    pub fn is_quarantined(&self, port: u16) -> bool {
        self.quarantine.iter().any(|(p, _)| *p == port)
    }

    /// Ends the quarantines due at `now`.
    fn end_quarantines(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.quarantine.len() {
            let (port, until) = self.quarantine[i];
            if until > now {
                i += 1;
                continue;
            }
            self.quarantine.swap_remove(i);
            if self.owner(port).is_none() {
                self.allocator.release(port);
            }
        }
    }

    /// While `hold` is set, every port allocation fails with
    /// [`RelayError::PortsUnavailable`]: the drivers run a control call
    /// that way after its ports could not be bound, so that it reports an
    /// error rather than advertising ports.
    pub(crate) fn hold_allocations(&mut self, hold: bool) {
        self.allocations_held = hold;
    }

    /// Sessions created so far; with [`Self::port_session`], tells the
    /// sessions a control call created from those it found.
    pub(crate) fn sessions_created(&self) -> u64 {
        self.sessions_created
    }

    /// The id and creation serial of the session owning local `port`.
    pub(crate) fn port_session(&self, port: u16) -> Option<(&str, u64)> {
        let owner = self.owner(port)?;
        let session = self.sessions.get(owner.slot as usize)?.as_ref()?;
        Some((&session.id, session.serial))
    }

    fn owner(&self, port: u16) -> Option<PortOwner> {
        port.checked_sub(self.owners_first)
            .and_then(|i| self.owners.get(usize::from(i)).copied().flatten())
    }

    /// `side` offers `sdp`; returns the SDP to give the other side. Creates
    /// the session on its first offer; a later offer (re-INVITE) keeps the
    /// legs and ports.
    pub fn offer(
        &mut self,
        session_id: &str,
        side: Side,
        sdp: &str,
        now: Instant,
    ) -> Result<String, RelayError> {
        self.offer_with(session_id, side, sdp, OfferOptions::default(), now)
    }

    /// [`Self::offer`] choosing the kind of the receiving leg.
    pub fn offer_with(
        &mut self,
        session_id: &str,
        side: Side,
        sdp: &str,
        options: OfferOptions,
        now: Instant,
    ) -> Result<String, RelayError> {
        let remote = parse(sdp)?;
        let kind = leg_kind(&remote)?;
        let slot = match self.by_id.get(session_id) {
            Some(&slot) => {
                let s = self.sessions[slot].as_ref().expect("indexed session");
                let expected = s.legs[side.index()].kind();
                if expected != kind {
                    return Err(RelayError::KindMismatch { expected });
                }
                let n = s.pt_maps[0].len();
                if remote.media.len() != n {
                    return Err(RelayError::MediaCount {
                        expected: n,
                        given: remote.media.len(),
                    });
                }
                slot
            }
            None => {
                let peer = options.peer.unwrap_or(kind.opposite());
                self.create_session(session_id, side, kind, peer, &remote, now)?
            }
        };
        let ip = self.config.advertised_ip;
        let codecs: Vec<&str> = self
            .config
            .trunk_codecs
            .iter()
            .map(String::as_str)
            .collect();
        let fingerprint = self.cert.fingerprint().to_string();
        let session = self.sessions[slot].as_mut().expect("live session");
        let (offerer, peer) = pair_mut(&mut session.legs, side);
        apply_remote(offerer, &remote);
        let out = match &mut peer.transport {
            Transport::Plain(p) => {
                let ports: Vec<u16> = p.streams.iter().map(|s| s.rtp_port).collect();
                let mut out = match offerer.kind() {
                    LegKind::Browser => webrtc_to_plain(&remote, ip, &ports, &codecs)?,
                    LegKind::Plain => plain_to_plain(&remote, ip, &ports),
                };
                set_plain_rtcp(&mut out, p);
                out
            }
            Transport::Browser(b) => {
                let creds = b.ice.local().clone();
                let transport = WebRtcTransport {
                    ice_ufrag: &creds.ufrag,
                    ice_pwd: &creds.pwd,
                    fingerprint_sha256: &fingerprint,
                };
                let out = plain_to_webrtc(&remote, ip, b.port, &transport, WebRtcRole::Offer)?;
                if b.dtls.is_none() {
                    // The browser answers `active` almost always and may
                    // start DTLS before its answer reaches us: be ready as
                    // the server; an answer saying `passive` replaces this.
                    let dtls = DtlsLeg::new(DtlsRole::Server, &self.cert, None, now)
                        .map_err(|e| RelayError::Dtls(e.to_string()))?;
                    b.dtls = Some(dtls);
                }
                out
            }
        };
        peer.local_sdp = Some(out.clone());
        offerer.remote_sdp = Some(remote);
        session.pending_offer = Some(side);
        self.sync_after_negotiation(slot);
        Ok(out.to_string())
    }

    /// `side` answers the other side's offer with `sdp`; returns the SDP to
    /// give the offerer. Starts the media timeout clock.
    pub fn answer(
        &mut self,
        session_id: &str,
        side: Side,
        sdp: &str,
        now: Instant,
    ) -> Result<String, RelayError> {
        let remote = parse(sdp)?;
        let slot = *self
            .by_id
            .get(session_id)
            .ok_or_else(|| RelayError::UnknownSession(session_id.to_owned()))?;
        let ip = self.config.advertised_ip;
        let fingerprint = self.cert.fingerprint().to_string();
        let session = self.sessions[slot].as_mut().expect("live session");
        if session.pending_offer != Some(side.other()) {
            return Err(RelayError::NoPendingOffer);
        }
        let expected = session.legs[side.index()].kind();
        if leg_kind(&remote)? != expected {
            return Err(RelayError::KindMismatch { expected });
        }
        let (answerer, offerer) = pair_mut(&mut session.legs, side);
        if remote.media.len() != answerer.local_sdp.as_ref().map_or(0, |s| s.media.len()) {
            return Err(RelayError::MediaCount {
                expected: answerer.local_sdp.as_ref().map_or(0, |s| s.media.len()),
                given: remote.media.len(),
            });
        }
        apply_remote(answerer, &remote);
        if let Transport::Browser(b) = &mut answerer.transport {
            // Our role is the opposite of the browser's answer (RFC 5763):
            // `passive` makes us the client; `active` (or nothing, which
            // means active) the server.
            let first = first_live(&remote);
            let their = first.and_then(|m| remote.effective_setup(m));
            let role = if their == Some(Setup::Passive) {
                DtlsRole::Client
            } else {
                DtlsRole::Server
            };
            ensure_dtls(b, role, &self.cert, now)?;
        }
        let offer = offerer
            .remote_sdp
            .clone()
            .ok_or(RelayError::NoPendingOffer)?;
        let out = match &mut offerer.transport {
            Transport::Plain(p) => {
                let ports: Vec<u16> = p.streams.iter().map(|s| s.rtp_port).collect();
                let mut out = match answerer.kind() {
                    LegKind::Browser => {
                        // Keep what the offerer offered; the browser chose.
                        let names = codec_names(&offer);
                        let names: Vec<&str> = names.iter().map(String::as_str).collect();
                        webrtc_to_plain(&remote, ip, &ports, &names)?
                    }
                    LegKind::Plain => plain_to_plain(&remote, ip, &ports),
                };
                set_plain_rtcp(&mut out, p);
                out
            }
            Transport::Browser(b) => {
                let creds = b.ice.local().clone();
                let transport = WebRtcTransport {
                    ice_ufrag: &creds.ufrag,
                    ice_pwd: &creds.pwd,
                    fingerprint_sha256: &fingerprint,
                };
                let out = plain_to_webrtc(
                    &remote,
                    ip,
                    b.port,
                    &transport,
                    WebRtcRole::Answer {
                        browser_offer: &offer,
                    },
                )?;
                let setup = first_live(&out).and_then(|m| m.setup());
                let role = if setup == Some(Setup::Active) {
                    DtlsRole::Client
                } else {
                    DtlsRole::Server
                };
                ensure_dtls(b, role, &self.cert, now)?;
                out
            }
        };
        offerer.local_sdp = Some(out.clone());
        answerer.remote_sdp = Some(remote);
        session.pending_offer = None;
        if !session.answered {
            session.answered = true;
            session.last_media = now;
        }
        self.sync_after_negotiation(slot);
        Ok(out.to_string())
    }

    /// Ends a session: its ports are freed ([`PortChange::Closed`]).
    /// Returns whether it existed.
    pub fn delete(&mut self, session_id: &str) -> bool {
        let Some(slot) = self.by_id.remove(session_id) else {
            return false;
        };
        let Some(session) = self.sessions[slot].take() else {
            return false;
        };
        for leg in &session.legs {
            for port in leg.ports() {
                self.release_port(port);
            }
        }
        self.free_slots.push(slot);
        true
    }

    /// Per-leg counters of a session.
    pub fn stats(&self, session_id: &str) -> Option<SessionStats> {
        let slot = *self.by_id.get(session_id)?;
        let session = self.sessions[slot].as_ref()?;
        let leg_stats = |leg: &Leg| {
            let c = leg.counters;
            let (remote, dtls_connected) = match &leg.transport {
                Transport::Browser(b) => (
                    b.ice.selected(),
                    b.dtls.as_ref().is_some_and(DtlsLeg::is_connected),
                ),
                Transport::Plain(p) => (
                    p.streams
                        .iter()
                        .find(|s| s.rtp_port != 0)
                        .and_then(|s| s.latched_rtp.or(s.sdp_rtp)),
                    false,
                ),
            };
            LegStats {
                kind: leg.kind(),
                local_ports: leg.ports(),
                remote,
                packets_in: c.packets_in,
                bytes_in: c.bytes_in,
                packets_out: c.packets_out,
                bytes_out: c.bytes_out,
                dropped: c.dropped,
                last_packet: c.last_packet,
                peer_report: c.peer_report,
                dtls_connected,
            }
        };
        Some(SessionStats {
            legs: [leg_stats(&session.legs[0]), leg_stats(&session.legs[1])],
        })
    }

    /// The next event for signalling.
    pub fn poll_event(&mut self) -> Option<RelayEvent> {
        self.events.pop_front()
    }

    /// The next port to bind or close.
    pub fn poll_port_change(&mut self) -> Option<PortChange> {
        self.port_changes.pop_front()
    }

    /// When [`Self::handle_timeout`] is next due: DTLS retransmissions and
    /// media timeouts. Scans every session.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let timeout = self.config.media_timeout;
        self.sessions
            .iter()
            .flatten()
            .flat_map(|s| {
                let media = (s.answered && !s.timed_out).then(|| s.last_media + timeout);
                let dtls = s.legs.iter().filter_map(|l| match &l.transport {
                    Transport::Browser(b) => b.dtls.as_ref().and_then(DtlsLeg::poll_timeout),
                    Transport::Plain(_) => None,
                });
                media.into_iter().chain(dtls)
            })
            .min()
    }

    /// Runs due timers: DTLS retransmissions (returned as outputs) and the
    /// media timeout ([`RelayEvent::Timeout`]).
    pub fn handle_timeout(&mut self, now: Instant) -> Outputs<'_> {
        if !self.quarantine.is_empty() {
            self.end_quarantines(now);
        }
        self.out.clear();
        let timeout = self.config.media_timeout;
        for session in self.sessions.iter_mut().flatten() {
            for (i, leg) in session.legs.iter_mut().enumerate() {
                let Transport::Browser(b) = &mut leg.transport else {
                    continue;
                };
                let Some(dtls) = b.dtls.as_mut() else {
                    continue;
                };
                if dtls.poll_timeout().is_some_and(|t| t <= now) {
                    let _ = dtls.handle_timeout(now);
                    flush_dtls(b, &mut self.out);
                    report_failure(b, &session.id, Side::from_index(i), &mut self.events);
                }
            }
            if session.answered
                && !session.timed_out
                && now.saturating_duration_since(session.last_media) >= timeout
            {
                session.timed_out = true;
                self.events
                    .push_back(RelayEvent::Timeout(session.id.clone()));
            }
        }
        self.out.view()
    }

    /// Handles a datagram received on `local_port` from `from` at `now`.
    pub fn handle_packet(
        &mut self,
        local_port: u16,
        from: SocketAddr,
        data: &[u8],
        now: Instant,
    ) -> Outputs<'_> {
        self.out.clear();
        let Some(owner) = self.owner(local_port) else {
            return self.out.view();
        };
        let Some(session) = self
            .sessions
            .get_mut(owner.slot as usize)
            .and_then(Option::as_mut)
        else {
            return self.out.view();
        };
        let side = Side::from_index(usize::from(owner.side));
        let strict = self.config.strict_source;
        let mut ctx = PathCtx {
            out: &mut self.out,
            scratch: &mut self.scratch,
            scratch2: &mut self.scratch2,
            now,
        };
        let kind = classify(data);
        let Session {
            id,
            legs,
            pt_maps,
            last_media,
            ..
        } = session;
        let (leg, other) = pair_mut(legs, side);
        let stream = match &mut leg.transport {
            Transport::Browser(b) => match kind {
                PacketKind::Stun => {
                    let h = b.ice.handle_stun(data, from, now, &mut self.stun_buf);
                    if let Some(t) = h.transmit {
                        ctx.out.push(b.port, t.to, &self.stun_buf[..t.len]);
                    }
                    if h.selected_changed.is_some() {
                        flush_dtls(b, ctx.out);
                    }
                    None
                }
                PacketKind::Dtls if b.ice.selected() == Some(from) => {
                    if let Some(dtls) = b.dtls.as_mut() {
                        let _ = dtls.handle_datagram(now, data);
                        flush_dtls(b, ctx.out);
                        report_failure(b, id, side, &mut self.events);
                    }
                    None
                }
                PacketKind::Rtp | PacketKind::Rtcp if b.ice.selected() == Some(from) => {
                    let rtcp = kind == PacketKind::Rtcp;
                    let ok = match b.dtls.as_mut().and_then(|d| d.srtp_contexts()) {
                        Some((_, remote)) if rtcp => {
                            remote.unprotect_rtcp(data, ctx.scratch).is_ok()
                        }
                        Some((_, remote)) => remote.unprotect_rtp(data, ctx.scratch).is_ok(),
                        None => false,
                    };
                    let stream = if !ok {
                        None
                    } else if rtcp {
                        b.bundle.stream_of_rtcp(ctx.scratch)
                    } else {
                        b.bundle.stream_of_rtp(ctx.scratch)
                    };
                    stream.map(|s| (s, rtcp))
                }
                _ => None,
            },
            Transport::Plain(p) => {
                let index = usize::from(owner.stream);
                match (kind, p.streams.get_mut(index)) {
                    (PacketKind::Rtp | PacketKind::Rtcp, Some(s)) => {
                        let rtcp = kind == PacketKind::Rtcp;
                        let accepted = if rtcp {
                            accept_source(&mut s.latched_rtcp, s.sdp_rtcp, from, strict)
                        } else {
                            !owner.rtcp
                                && accept_source(&mut s.latched_rtp, s.sdp_rtp, from, strict)
                        };
                        if accepted {
                            ctx.scratch.clear();
                            ctx.scratch.extend_from_slice(data);
                            Some((index, rtcp))
                        } else {
                            None
                        }
                    }
                    _ => None,
                }
            }
        };
        let Some((stream, rtcp)) = stream else {
            if !matches!(kind, PacketKind::Stun | PacketKind::Dtls) {
                leg.counters.dropped += 1;
            }
            return self.out.view();
        };
        leg.counters.packets_in += 1;
        leg.counters.bytes_in += data.len() as u64;
        leg.counters.last_packet = Some(now);
        *last_media = now;
        if rtcp {
            if let Some(r) = rtp::first_reception_report(ctx.scratch) {
                leg.counters.peer_report = Some(r);
            }
        } else if let Some(table) = pt_maps[side.index()].get(stream) {
            if let Some(pt) = rtp::payload_type(ctx.scratch) {
                let to = table[usize::from(pt)];
                if to != PASS {
                    rtp::set_payload_type(ctx.scratch, to);
                }
            }
        }
        if !forward(other, stream, rtcp, strict, &mut ctx) {
            other.counters.dropped += 1;
        }
        self.out.view()
    }

    fn create_session(
        &mut self,
        session_id: &str,
        side: Side,
        kind: LegKind,
        peer: LegKind,
        remote: &SessionDescription,
        now: Instant,
    ) -> Result<usize, RelayError> {
        if !self.quarantine.is_empty() {
            self.end_quarantines(now);
        }
        let n = remote.media.len();
        let live: Vec<bool> = remote.media.iter().map(is_live).collect();
        let mux: Vec<bool> = remote.media.iter().map(|m| m.rtcp_mux()).collect();
        let mut taken = Vec::new();
        let offerer = self.new_leg(kind, &live, &mux, &mut taken);
        let no_mux = vec![false; n];
        let answerer =
            offerer.and_then(|o| Ok((o, self.new_leg(peer, &live, &no_mux, &mut taken)?)));
        let (offerer, answerer) = match answerer {
            Ok(legs) => legs,
            Err(e) => {
                for port in taken {
                    self.allocator.release(port);
                }
                return Err(e);
            }
        };
        let legs = if side == Side::A {
            [offerer, answerer]
        } else {
            [answerer, offerer]
        };
        let slot = self.free_slots.pop().unwrap_or_else(|| {
            self.sessions.push(None);
            self.sessions.len() - 1
        });
        let session = Session {
            id: session_id.to_owned(),
            legs,
            pending_offer: None,
            answered: false,
            last_media: now,
            timed_out: false,
            pt_maps: [vec![[PASS; 128]; n], vec![[PASS; 128]; n]],
            serial: self.sessions_created,
        };
        self.sessions_created += 1;
        for (i, leg) in session.legs.iter().enumerate() {
            match &leg.transport {
                Transport::Browser(b) => self.own_port(b.port, slot, i, 0, false),
                Transport::Plain(p) => {
                    for (s, stream) in p.streams.iter().enumerate() {
                        if stream.rtp_port != 0 {
                            self.own_port(stream.rtp_port, slot, i, s, false);
                        }
                        if let Some(port) = stream.rtcp_port {
                            self.own_port(port, slot, i, s, true);
                        }
                    }
                }
            }
        }
        self.sessions[slot] = Some(session);
        self.by_id.insert(session_id.to_owned(), slot);
        Ok(slot)
    }

    fn new_leg(
        &mut self,
        kind: LegKind,
        live: &[bool],
        mux: &[bool],
        taken: &mut Vec<u16>,
    ) -> Result<Leg, RelayError> {
        if self.allocations_held {
            return Err(RelayError::PortsUnavailable);
        }
        let transport = match kind {
            LegKind::Browser => {
                let port = self.allocator.allocate(false).ok_or(RelayError::NoPorts)?;
                taken.push(port);
                let mut random = [0u8; IceCredentials::RANDOM_LEN];
                ring::rand::SecureRandom::fill(&self.rng, &mut random)
                    .map_err(|_| RelayError::Dtls("no randomness for ICE credentials".into()))?;
                Transport::Browser(Box::new(BrowserLeg {
                    port,
                    ice: IceLite::new(IceCredentials::from_random(&random)),
                    dtls: None,
                    failure_reported: false,
                    remote_fingerprint: None,
                    bundle: Bundle {
                        active: live.to_vec(),
                        mids: vec![None; live.len()],
                        payload_types: vec![Vec::new(); live.len()],
                        ..Bundle::default()
                    },
                }))
            }
            LegKind::Plain => {
                let mut streams = Vec::with_capacity(live.len());
                for (&live, &mux) in live.iter().zip(mux) {
                    let mut s = PlainStream::default();
                    if live {
                        let port = self.allocator.allocate(!mux).ok_or(RelayError::NoPorts)?;
                        taken.push(port);
                        s.rtp_port = port;
                        if !mux {
                            taken.push(port + 1);
                            s.rtcp_port = Some(port + 1);
                        }
                    }
                    streams.push(s);
                }
                Transport::Plain(PlainLeg { streams })
            }
        };
        Ok(Leg {
            transport,
            remote_sdp: None,
            local_sdp: None,
            counters: Counters::default(),
        })
    }

    fn own_port(&mut self, port: u16, slot: usize, side: usize, stream: usize, rtcp: bool) {
        if let Some(o) = port
            .checked_sub(self.owners_first)
            .and_then(|i| self.owners.get_mut(usize::from(i)))
        {
            *o = Some(PortOwner {
                slot: slot as u32,
                side: side as u8,
                stream: stream as u16,
                rtcp,
            });
        }
        self.port_changes.push_back(PortChange::Opened(port));
    }

    fn release_port(&mut self, port: u16) {
        if !self.is_quarantined(port) {
            self.allocator.release(port);
        }
        if let Some(o) = port
            .checked_sub(self.owners_first)
            .and_then(|i| self.owners.get_mut(usize::from(i)))
        {
            *o = None;
        }
        self.port_changes.push_back(PortChange::Closed(port));
    }

    /// After an offer or answer: frees the ports of sections either side's
    /// SDP rejects, updates the bundle tables and payload type maps.
    fn sync_after_negotiation(&mut self, slot: usize) {
        let Some(session) = self.sessions[slot].as_mut() else {
            return;
        };
        let n = session.pt_maps[0].len();
        let mut freed = Vec::new();
        for i in 0..n {
            let rejected = session.legs.iter().any(|leg| {
                [&leg.local_sdp, &leg.remote_sdp]
                    .into_iter()
                    .flatten()
                    .any(|sdp| sdp.media.get(i).is_some_and(|m| !is_live(m)))
            });
            for leg in &mut session.legs {
                match &mut leg.transport {
                    Transport::Plain(p) if rejected => {
                        let s = &mut p.streams[i];
                        if s.rtp_port != 0 {
                            freed.push(s.rtp_port);
                        }
                        freed.extend(s.rtcp_port.take());
                        s.rtp_port = 0;
                    }
                    Transport::Browser(b) => {
                        b.bundle.active[i] = !rejected;
                        let mut pts: Vec<u8> = Vec::new();
                        for sdp in [&leg.local_sdp, &leg.remote_sdp].into_iter().flatten() {
                            if let Some(m) = sdp.media.get(i) {
                                pts.extend(m.payload_types());
                            }
                        }
                        pts.sort_unstable();
                        pts.dedup();
                        b.bundle.payload_types[i] = pts;
                    }
                    Transport::Plain(_) => {}
                }
            }
        }
        for from in [Side::A, Side::B] {
            let (x, y) = (
                &session.legs[from.index()],
                &session.legs[from.other().index()],
            );
            for i in 0..n {
                session.pt_maps[from.index()][i] = pt_table(x, y, i);
            }
        }
        for port in freed {
            self.release_port(port);
        }
    }
}

/// Buffers of the packet path.
struct PathCtx<'a> {
    out: &'a mut OutQueue,
    scratch: &'a mut Vec<u8>,
    scratch2: &'a mut Vec<u8>,
    now: Instant,
}

/// Sends the packet in `ctx.scratch` (plain RTP or RTCP) out of `leg`'s
/// media section `stream`. False when it could not go.
fn forward(leg: &mut Leg, stream: usize, rtcp: bool, strict: bool, ctx: &mut PathCtx<'_>) -> bool {
    let sent = match &mut leg.transport {
        Transport::Browser(b) => {
            if b.bundle.active.get(stream) != Some(&true)
                || b.ice.consent_expired(ctx.now, CONSENT_TIMEOUT)
            {
                return false;
            }
            let Some(to) = b.ice.selected() else {
                return false;
            };
            let Some((local, _)) = b.dtls.as_mut().and_then(|d| d.srtp_contexts()) else {
                return false;
            };
            let ok = if rtcp {
                local.protect_rtcp(ctx.scratch, ctx.scratch2).is_ok()
            } else {
                local.protect_rtp(ctx.scratch, ctx.scratch2).is_ok()
            };
            if !ok {
                return false;
            }
            ctx.out.push(b.port, to, ctx.scratch2);
            ctx.scratch2.len()
        }
        Transport::Plain(p) => {
            let Some(s) = p.streams.get(stream).filter(|s| s.rtp_port != 0) else {
                return false;
            };
            let rtp_to = if strict {
                s.sdp_rtp
            } else {
                s.latched_rtp.or(s.sdp_rtp)
            };
            let (from, to) = match (rtcp, s.rtcp_port) {
                (false, _) => (s.rtp_port, rtp_to),
                (true, None) => (s.rtp_port, rtp_to),
                (true, Some(port)) => {
                    let to = if strict {
                        s.sdp_rtcp
                    } else if s.remote_mux {
                        s.latched_rtcp.or(rtp_to)
                    } else {
                        s.latched_rtcp.or(s.sdp_rtcp)
                    };
                    (port, to)
                }
            };
            let Some(to) = to else {
                return false;
            };
            ctx.out.push(from, to, ctx.scratch);
            ctx.scratch.len()
        }
    };
    leg.counters.packets_out += 1;
    leg.counters.bytes_out += sent as u64;
    true
}

/// Symmetric RTP: the first source is latched; with `strict`, only the
/// SDP's address is accepted.
fn accept_source(
    latched: &mut Option<SocketAddr>,
    sdp: Option<SocketAddr>,
    from: SocketAddr,
    strict: bool,
) -> bool {
    if strict {
        return sdp == Some(from);
    }
    match latched {
        Some(addr) => *addr == from,
        None => {
            *latched = Some(from);
            true
        }
    }
}

fn flush_dtls(b: &mut BrowserLeg, out: &mut OutQueue) {
    let Some(dtls) = b.dtls.as_mut() else {
        return;
    };
    let to = b.ice.selected();
    while let Some(d) = dtls.poll_transmit() {
        // Without a selected address there is nowhere to send: the
        // retransmission timer resends the flight later.
        if let Some(to) = to {
            out.push(b.port, to, &d);
        }
    }
}

fn report_failure(b: &mut BrowserLeg, id: &str, side: Side, events: &mut VecDeque<RelayEvent>) {
    if b.failure_reported {
        return;
    }
    if let Some(DtlsState::Failed(e)) = b.dtls.as_ref().map(DtlsLeg::state) {
        b.failure_reported = true;
        events.push_back(RelayEvent::LegFailed {
            session: id.to_owned(),
            side,
            reason: e.to_string(),
        });
    }
}

fn ensure_dtls(
    b: &mut BrowserLeg,
    role: DtlsRole,
    cert: &DtlsCertificate,
    now: Instant,
) -> Result<(), RelayError> {
    let keep = b
        .dtls
        .as_ref()
        .is_some_and(|d| d.role() == role && !matches!(d.state(), DtlsState::Failed(_)));
    if !keep {
        let dtls = DtlsLeg::new(role, cert, b.remote_fingerprint, now)
            .map_err(|e| RelayError::Dtls(e.to_string()))?;
        b.dtls = Some(dtls);
        b.failure_reported = false;
    }
    if let (Some(d), Some(fp)) = (b.dtls.as_mut(), b.remote_fingerprint) {
        d.set_remote_fingerprint(fp);
    }
    Ok(())
}

/// Takes in what the peer's SDP says about its transport.
fn apply_remote(leg: &mut Leg, sdp: &SessionDescription) {
    match &mut leg.transport {
        Transport::Browser(b) => {
            if let Some(m) = first_live(sdp) {
                if let (Some(u), Some(p)) = (sdp.effective_ice_ufrag(m), sdp.effective_ice_pwd(m)) {
                    b.ice.set_remote(IceCredentials::new(u, p));
                }
                let fp = sdp
                    .effective_fingerprint(m)
                    .filter(|f| f.is_hash("sha-256"))
                    .and_then(|f| Fingerprint::parse(&f.value).ok());
                if let Some(fp) = fp {
                    b.remote_fingerprint = Some(fp);
                    if let Some(d) = b.dtls.as_mut() {
                        d.set_remote_fingerprint(fp);
                    }
                }
                b.bundle.mid_extension = sdp
                    .effective_extmaps(m)
                    .iter()
                    .find(|e| e.uri == MID_EXTENSION_URI)
                    .and_then(|e| u8::try_from(e.id).ok());
            }
            for (i, m) in sdp.media.iter().enumerate() {
                if let Some(slot) = b.bundle.mids.get_mut(i) {
                    *slot = m.mid().map(str::to_owned);
                }
                for ssrc in m.ssrcs() {
                    let known = b.bundle.ssrcs.iter().any(|(x, _)| *x == ssrc.id);
                    if !known && b.bundle.ssrcs.len() < MAX_LEARNED_SSRCS {
                        b.bundle.ssrcs.push((ssrc.id, i));
                    }
                }
            }
        }
        Transport::Plain(p) => {
            for (s, m) in p.streams.iter_mut().zip(&sdp.media) {
                let ip = sdp
                    .effective_connection(m)
                    .and_then(|c| c.ip())
                    .filter(|ip| !ip.is_unspecified());
                let rtp = ip
                    .filter(|_| m.port() != 0)
                    .map(|ip| SocketAddr::new(ip, m.port()));
                let rtcp = match m.rtcp() {
                    Some(r) => r
                        .connection
                        .as_ref()
                        .and_then(|c| c.ip())
                        .or(ip)
                        .map(|ip| SocketAddr::new(ip, r.port)),
                    None if m.rtcp_mux() => rtp,
                    None => rtp.map(|a| SocketAddr::new(a.ip(), a.port().wrapping_add(1))),
                };
                if rtp != s.sdp_rtp {
                    // A new address (re-INVITE): latch again.
                    s.latched_rtp = None;
                    s.latched_rtcp = None;
                }
                s.sdp_rtp = rtp;
                s.sdp_rtcp = rtcp;
                s.remote_mux = m.rtcp_mux();
            }
        }
    }
}

/// `a=rtcp` or `a=rtcp-mux` on each section of an SDP for a plain leg,
/// from the ports the leg has.
fn set_plain_rtcp(sdp: &mut SessionDescription, leg: &PlainLeg) {
    for (m, s) in sdp.media.iter_mut().zip(&leg.streams) {
        if m.port() == 0 || s.rtp_port == 0 {
            continue;
        }
        m.remove_attributes("rtcp");
        m.remove_attributes("rtcp-mux");
        match s.rtcp_port {
            Some(port) => m.add_attribute(sdp::Attribute::new("rtcp", port.to_string())),
            None => m.add_attribute(sdp::Attribute::flag("rtcp-mux")),
        }
    }
}

/// A plain SDP for a plain peer: the relay's address and ports, transport
/// attributes of the other leg removed.
fn plain_to_plain(sdp: &SessionDescription, ip: IpAddr, ports: &[u16]) -> SessionDescription {
    let mut out = sdp.clone();
    out.set_connection_ip(ip);
    if let Some(o) = out.origin_mut() {
        o.set_ip(ip);
    }
    for (m, &port) in out.media.iter_mut().zip(ports) {
        m.remove_connection();
        m.retain_attributes(|a| {
            !matches!(
                a.name.as_str(),
                "rtcp" | "rtcp-mux" | "candidate" | "crypto" | "ice-ufrag" | "ice-pwd"
            )
        });
        let live = m.port() != 0 && port != 0;
        m.set_port(if live { port } else { 0 });
    }
    out
}

/// Encoding names of every live section, for [`webrtc_to_plain`]'s filter.
fn codec_names(sdp: &SessionDescription) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for m in sdp.media.iter().filter(|m| is_live(m)) {
        for pt in m.payload_types() {
            if let Some(c) = m.codec(pt) {
                if !names.iter().any(|n| n.eq_ignore_ascii_case(&c.encoding)) {
                    names.push(c.encoding);
                }
            }
        }
    }
    names
}

/// The rewrite table for packets from leg `x` to leg `y` on section `i`:
/// a payload type `x` sends (numbered as in its own SDP, else as in ours
/// to it) becomes `y`'s number for the same codec (its own SDP first,
/// else ours to it); unknown ones pass unchanged.
fn pt_table(x: &Leg, y: &Leg, i: usize) -> PtTable {
    let mut table = [PASS; 128];
    fn section(sdp: &Option<SessionDescription>, i: usize) -> Option<&MediaDescription> {
        sdp.as_ref().and_then(|s| s.media.get(i))
    }
    let x_sdps = [section(&x.remote_sdp, i), section(&x.local_sdp, i)];
    let y_sdps = [section(&y.remote_sdp, i), section(&y.local_sdp, i)];
    for (pt, slot) in table.iter_mut().enumerate() {
        let pt = pt as u8;
        let codec = x_sdps
            .iter()
            .flatten()
            .filter(|m| m.payload_types().any(|p| p == pt))
            .find_map(|m| m.codec(pt));
        let Some(codec) = codec else {
            continue;
        };
        let target = y_sdps.iter().flatten().find_map(|m| {
            m.payload_types().find(|q| {
                m.codec(*q).is_some_and(|c| {
                    c.encoding.eq_ignore_ascii_case(&codec.encoding)
                        && c.clock_rate == codec.clock_rate
                        && c.channels.unwrap_or(1) == codec.channels.unwrap_or(1)
                })
            })
        });
        if let Some(q) = target {
            *slot = q;
        }
    }
    table
}

fn pair_mut(legs: &mut [Leg; 2], side: Side) -> (&mut Leg, &mut Leg) {
    let [a, b] = legs;
    match side {
        Side::A => (a, b),
        Side::B => (b, a),
    }
}

fn parse(sdp: &str) -> Result<SessionDescription, RelayError> {
    SessionDescription::parse(sdp).map_err(|e| RelayError::Sdp(e.to_string()))
}

/// A section the peer did not reject (port 0 with `bundle-only` is live).
fn is_live(m: &MediaDescription) -> bool {
    m.port() != 0 || m.has_attribute("bundle-only")
}

fn first_live(sdp: &SessionDescription) -> Option<&MediaDescription> {
    sdp.media.iter().find(|m| is_live(m))
}

/// The leg kind an SDP's transport asks for.
fn leg_kind(sdp: &SessionDescription) -> Result<LegKind, RelayError> {
    let m = first_live(sdp)
        .or(sdp.media.first())
        .ok_or_else(|| RelayError::UnsupportedTransport(String::new()))?;
    let proto = m.proto();
    if proto.eq_ignore_ascii_case("RTP/AVP") {
        Ok(LegKind::Plain)
    } else if proto.to_ascii_uppercase().starts_with("UDP/TLS/RTP/SAVP") {
        Ok(LegKind::Browser)
    } else {
        Err(RelayError::UnsupportedTransport(proto.to_owned()))
    }
}

#[cfg(test)]
mod tests;
