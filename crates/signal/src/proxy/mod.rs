//! The SIP core: a stateful proxy (RFC 3261 §16) with a registrar, digest
//! authentication, forking, record-routing across transports and dialog
//! tracking. Sans-IO: the driver feeds received messages, flow closures and
//! the time; the core queues [`Output`]s (bytes to send, bindings to
//! persist) for the driver to carry out.
//!
//! Media: without a [`MediaHook`] SDP bodies pass through untouched
//! (browsers talk directly). With one ([`Core::set_media`]) the media relay
//! rewrites them: the offer in an INVITE's body when it is forwarded
//! (`forward`: dialog-forming INVITEs and re-INVITEs of a tracked call),
//! the answer in the 18x/2xx bodies that pass in `branch_response`, and the
//! session is deleted when the call ends (BYE, CANCEL or a final non-2xx).
//! One relay session serves all forks of a call; the first answer wins. A
//! refused offer or 2xx answer is answered 488 Not Acceptable Here.
//!
//! Not rewritten yet: an offer in a 2xx to an INVITE without SDP (its
//! answer comes in the ACK, forwarded statelessly), UPDATE/PRACK bodies,
//! and forks that mix browser and SIP targets (the relay's second leg is
//! made for the first target's kind).

use crate::auth::{AuthConfig, Authenticator, Directory, Verdict};
use crate::registrar::{Binding, Change, Location, Origin, RegistrarConfig};
use crate::transaction::{
    self as tx, Action, ClientKey, RequestMeta, RequestRoute, ResponseMeta, TableConfig,
    TableError, TransactionId, TransactionTable,
};
use crate::trunk::{
    CallRecord, Dialplan, Direction, Disposition, LegMedia, RegistrationState, TrunkStatus,
};
use crate::Transport;
use bytes::Bytes;
use sip::{response_to, HeaderName, Message, Method, RequestBuilder, Uri};
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Where a message came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    pub transport: Transport,
    /// Connection id for connection-oriented transports.
    pub flow: Option<u64>,
    pub addr: SocketAddr,
    pub local: SocketAddr,
}

/// Where to send a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dest {
    /// Over this connection only.
    Flow(u64),
    /// To an address, reusing a connection to it if there is one.
    Addr(Transport, SocketAddr),
}

impl Dest {
    /// Connections are reliable; UDP needs retransmissions.
    pub fn is_reliable(self) -> bool {
        match self {
            Dest::Flow(_) => true,
            Dest::Addr(t, _) => t.is_reliable(),
        }
    }
}

/// Something for the driver to do.
// Outputs are drained right away; boxing the rare binding variant would
// only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Output {
    Send {
        dest: Dest,
        data: Bytes,
    },
    /// Persist a registrar change.
    Binding(Change),
    /// A call ended: write its CDR.
    CallEnded(CallRecord),
    /// The answer to [`Core::ping_trunk`]: the final status and round-trip
    /// time, or why there was none.
    PingResult {
        id: u64,
        result: Result<(u16, Duration), String>,
    },
}

mod trunking;

/// State of a call in the call list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallState {
    Trying,
    Ringing,
    Active,
}

/// One entry of the call list.
#[derive(Debug, Clone)]
pub struct CallInfo {
    pub call_id: String,
    pub from_tag: String,
    pub to_tag: Option<String>,
    pub from: String,
    pub to: String,
    pub source: SocketAddr,
    pub transport: Transport,
    pub started_unix: u64,
    pub answered_unix: Option<u64>,
    pub state: CallState,
    /// Route set learnt from the 2xx Record-Route.
    pub route_set: Vec<String>,
    /// Highest CSeq seen from the caller and from the callee.
    pub cseq_caller: u32,
    pub cseq_callee: u32,
    pub direction: Direction,
    /// The number or user dialled, before normalization.
    pub dialled: String,
    pub caller_user: Option<String>,
    pub callee_user: Option<String>,
    /// The trunk the call uses.
    pub trunk: Option<String>,
    /// Added to the caller's CSeq toward the callee: the INVITE was re-sent
    /// with credentials for the trunk, which took CSeq numbers.
    pub cseq_offset: u32,
    /// Per-leg media counters (caller, callee), filled by
    /// [`Core::calls_with_media`].
    pub media: Option<(LegMedia, LegMedia)>,
    /// Dialog state for requests the gateway itself sends (BYE on media
    /// timeout or shutdown).
    pub(crate) dialog: DialogInfo,
}

/// What the gateway needs to end an established call by itself.
#[derive(Debug, Clone, Default)]
pub(crate) struct DialogInfo {
    pub caller_dest: Option<Dest>,
    pub caller_contact: Option<String>,
    pub callee_dest: Option<Dest>,
    pub callee_contact: Option<String>,
    /// From as forwarded to the callee.
    pub from_hdr: String,
    /// To as the callee answered it (with its tag).
    pub to_hdr: Option<String>,
}

/// Facts about a call the routing decision knows and `forward` records.
#[derive(Debug, Clone, Default)]
struct CallMeta {
    direction: Option<Direction>,
    dialled: String,
    caller_user: Option<String>,
    callee_user: Option<String>,
    trunk: Option<String>,
}

/// Which party of a call an SDP body comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaSide {
    /// The party that sent the dialog-forming INVITE.
    Caller,
    /// The party it reached.
    Callee,
}

impl MediaSide {
    /// The other party.
    pub fn other(self) -> MediaSide {
        match self {
            MediaSide::Caller => MediaSide::Callee,
            MediaSide::Callee => MediaSide::Caller,
        }
    }
}

/// What an offer is forwarded to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaPeer {
    /// A browser (reached over WebSocket): ICE-lite, DTLS-SRTP.
    Browser,
    /// A SIP endpoint or trunk: plain RTP.
    Plain,
}

/// The media relay as the core sees it: synchronous calls that rewrite SDP.
/// Implementations must not block on I/O (they run on the core's task).
/// `call` identifies the relay session (stable for a call: Call-ID and the
/// caller's From tag).
pub trait MediaHook {
    /// `from` offers `sdp` to a `to` endpoint; returns the SDP to forward.
    fn offer(
        &mut self,
        call: &str,
        from: MediaSide,
        to: MediaPeer,
        sdp: &[u8],
        now: Instant,
    ) -> Result<Vec<u8>, String>;
    /// `from` answers the other side's offer; returns the SDP to forward.
    fn answer(
        &mut self,
        call: &str,
        from: MediaSide,
        sdp: &[u8],
        now: Instant,
    ) -> Result<Vec<u8>, String>;
    /// The call ended (or never formed): release its media.
    fn delete(&mut self, call: &str);
    /// Media counters of the call's legs (caller, callee), if relayed.
    fn stats(&mut self, _call: &str) -> Option<(LegMedia, LegMedia)> {
        None
    }
}

/// The relay session name of a call key (Call-ID, caller's From tag).
fn media_session(key: &(String, String)) -> String {
    format!("{};{}", key.0, key.1)
}

/// Whether a message carries an SDP body.
fn has_sdp(msg: &Message) -> bool {
    if msg.body().is_empty() {
        return false;
    }
    match msg.content_type() {
        Ok(Some(ct)) => ct.is("application", "sdp"),
        Ok(None) => true,
        Err(_) => false,
    }
}

/// The offer/answer in flight on a proxied INVITE.
struct MediaNeg {
    key: (String, String),
    offerer: MediaSide,
    /// The branch whose answer was taken, its SDP as received and as
    /// rewritten (reused for the 2xx after a 183 and for retransmissions).
    answered: Option<(TransactionId, Vec<u8>, Vec<u8>)>,
}

/// Counters for operators.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub received: u64,
    pub unparsable_dropped: u64,
    pub bad_requests: u64,
    pub responses_dropped: u64,
    pub auth_failures: u64,
    pub forwarded: u64,
    /// SIP messages by direction, transport and kind; see
    /// [`Stats::message_counts`].
    pub messages: MessageCounts,
}

impl Stats {
    /// The non-zero message counters, as totals since start.
    pub fn message_counts(&self) -> impl Iterator<Item = MessageCount> + '_ {
        self.messages.iter()
    }
}

/// One counter of [`Stats::message_counts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageCount {
    /// "in" (received) or "out" (queued to send).
    pub direction: &'static str,
    /// "udp", "tcp", "tls", "ws", "wss", or "flow" for a send on a
    /// connection the core has not seen a message on.
    pub transport: &'static str,
    /// The request method ("INVITE", ..., "OTHER" for extension methods),
    /// the response class ("1xx" to "6xx"), or "invalid" for received bytes
    /// that did not parse.
    pub kind: &'static str,
    pub total: u64,
}

const MSG_DIRECTIONS: [&str; 2] = ["in", "out"];
const MSG_TRANSPORTS: [&str; 6] = ["udp", "tcp", "tls", "ws", "wss", "flow"];
const MSG_KINDS: [&str; 22] = [
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "REGISTER",
    "OPTIONS",
    "MESSAGE",
    "INFO",
    "PRACK",
    "UPDATE",
    "SUBSCRIBE",
    "NOTIFY",
    "REFER",
    "PUBLISH",
    "OTHER",
    "1xx",
    "2xx",
    "3xx",
    "4xx",
    "5xx",
    "6xx",
    "invalid",
];
const MSG_SLOTS: usize = MSG_DIRECTIONS.len() * MSG_TRANSPORTS.len() * MSG_KINDS.len();
/// Index of "OTHER" in [`MSG_KINDS`].
const KIND_OTHER: usize = 14;
/// Index of "1xx" in [`MSG_KINDS`].
const KIND_1XX: usize = 15;
/// Index of "invalid" in [`MSG_KINDS`].
const KIND_INVALID: usize = 21;

/// Message counters in a fixed table: counting allocates nothing.
#[derive(Clone)]
pub struct MessageCounts([u64; MSG_SLOTS]);

impl Default for MessageCounts {
    fn default() -> Self {
        MessageCounts([0; MSG_SLOTS])
    }
}

impl std::fmt::Debug for MessageCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl MessageCounts {
    /// The non-zero counters.
    pub fn iter(&self) -> impl Iterator<Item = MessageCount> + '_ {
        self.0
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(i, n)| {
                let kinds = MSG_KINDS.len();
                let per_direction = MSG_TRANSPORTS.len() * kinds;
                MessageCount {
                    direction: MSG_DIRECTIONS[i / per_direction],
                    transport: MSG_TRANSPORTS[i % per_direction / kinds],
                    kind: MSG_KINDS[i % kinds],
                    total: *n,
                }
            })
    }

    /// The count of one combination (labels as in [`MessageCount`]).
    pub fn get(&self, direction: &str, transport: &str, kind: &str) -> u64 {
        let pos = |all: &[&str], v: &str| all.iter().position(|x| *x == v);
        match (
            pos(&MSG_DIRECTIONS, direction),
            pos(&MSG_TRANSPORTS, transport),
            pos(&MSG_KINDS, kind),
        ) {
            (Some(d), Some(t), Some(k)) => self.0[Self::slot(d, t, k)],
            _ => 0,
        }
    }

    fn slot(direction: usize, transport: usize, kind: usize) -> usize {
        (direction * MSG_TRANSPORTS.len() + transport) * MSG_KINDS.len() + kind
    }

    /// `transport`: `None` for an unknown flow.
    fn count(&mut self, out: bool, transport: Option<Transport>, kind: usize) {
        let t = match transport {
            Some(Transport::Udp) => 0,
            Some(Transport::Tcp) => 1,
            Some(Transport::Tls) => 2,
            Some(Transport::Ws) => 3,
            Some(Transport::Wss) => 4,
            None => 5,
        };
        self.0[Self::slot(usize::from(out), t, kind)] += 1;
    }
}

/// The [`MSG_KINDS`] index of a method.
fn method_kind(m: &Method) -> usize {
    match m {
        Method::Invite => 0,
        Method::Ack => 1,
        Method::Bye => 2,
        Method::Cancel => 3,
        Method::Register => 4,
        Method::Options => 5,
        Method::Message => 6,
        Method::Info => 7,
        Method::Prack => 8,
        Method::Update => 9,
        Method::Subscribe => 10,
        Method::Notify => 11,
        Method::Refer => 12,
        Method::Publish => 13,
        Method::Other(_) => KIND_OTHER,
    }
}

/// The [`MSG_KINDS`] index of a status code's class.
fn status_kind(code: u16) -> usize {
    match code {
        100..=699 => KIND_1XX + usize::from(code / 100 - 1),
        _ => KIND_INVALID,
    }
}

/// The [`MSG_KINDS`] index of a serialized message, from its start line.
fn wire_kind(data: &[u8]) -> usize {
    if let Some(rest) = data.strip_prefix(b"SIP/2.0 ") {
        return match rest.first() {
            Some(d @ b'1'..=b'6') => KIND_1XX + usize::from(d - b'1'),
            _ => KIND_INVALID,
        };
    }
    let token = data.split(|b| *b == b' ').next().unwrap_or_default();
    Method::from_bytes(token).map_or(KIND_INVALID, |m| method_kind(&m))
}

#[derive(Debug, Clone)]
pub struct CoreConfig {
    pub domain: String,
    /// Bound listeners, for Via/Record-Route and recognising our own URIs.
    pub listeners: Vec<(Transport, SocketAddr)>,
    /// Address written into Via/Record-Route when a listener is bound to a
    /// wildcard address.
    pub advertised: Option<IpAddr>,
    pub registrar: RegistrarConfig,
    pub nonce_max_age: u64,
    pub max_auth_failures: u32,
    pub auth_failure_window: u64,
    /// Digest challenge algorithms, in order of preference.
    pub digest_algorithms: Vec<sip::digest::Algorithm>,
    pub transactions: TableConfig,
    /// Let authenticated users reach non-local domains.
    pub allow_relay: bool,
    pub limits: sip::Limits,
}

impl CoreConfig {
    pub fn new(domain: &str, listeners: Vec<(Transport, SocketAddr)>) -> Self {
        CoreConfig {
            domain: domain.to_owned(),
            listeners,
            advertised: None,
            registrar: RegistrarConfig {
                domain: domain.to_owned(),
                ..Default::default()
            },
            nonce_max_age: 300,
            max_auth_failures: 10,
            auth_failure_window: 60,
            digest_algorithms: vec![sip::digest::Algorithm::Sha256, sip::digest::Algorithm::Md5],
            transactions: TableConfig::default(),
            allow_relay: false,
            limits: sip::Limits::default(),
        }
    }
}

struct ServerCtx {
    reply: Dest,
    request: Message,
    to_tag: String,
    proxy: Option<u64>,
    /// §16.6 step 8 loop hash of the request as received (before our Route
    /// entries are popped): what forwarding puts in the branch and what
    /// loop detection compares against, so both must see the same request.
    loop_hash: u64,
}

struct ClientCtx {
    dest: Dest,
    /// The request as sent, to build ACK and CANCEL from.
    request: Message,
    proxy: Option<u64>,
    /// The trunk this branch goes to (its challenges are answered).
    trunk: Option<String>,
    /// Credentials were already sent on this branch: another challenge
    /// is passed on as a failure.
    auth_tried: bool,
    /// A REGISTER toward this trunk.
    register: Option<String>,
    /// An OPTIONS ping (id, sent at) whose answer is reported.
    ping: Option<(u64, Instant)>,
}

struct Branch {
    client: TransactionId,
    provisional: bool,
    final_status: Option<u16>,
    /// A CANCEL is wanted for this branch.
    cancelled: bool,
    /// The CANCEL went out; it waits for a provisional response (§9.1).
    cancel_sent: bool,
}

struct ProxyCtx {
    server: TransactionId,
    branches: Vec<Branch>,
    best: Option<(u16, Option<Message>)>,
    final_sent: bool,
    invite: bool,
    call: Option<(String, String)>,
    media: Option<MediaNeg>,
}

const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE, INFO, NOTIFY, REFER, UPDATE, PRACK, SUBSCRIBE, REGISTER";
/// Prefix of the branches we generate, to recognise our own Vias.
const BRANCH_PREFIX: &str = "z9hG4bKcg";
const PURGE_EVERY: Duration = Duration::from_secs(10);

/// The signalling core.
pub struct Core {
    cfg: CoreConfig,
    table: TransactionTable,
    location: Location,
    users: Directory,
    auth: Authenticator,
    servers: HashMap<TransactionId, ServerCtx>,
    clients: HashMap<TransactionId, ClientCtx>,
    proxies: HashMap<u64, ProxyCtx>,
    next_proxy: u64,
    calls: HashMap<(String, String), CallInfo>,
    flows: HashSet<u64>,
    /// Flows closed since the last event, whose transactions are yet to be
    /// failed (`flow_closed` has no clock; the next `on_timer` does it).
    closed: Vec<u64>,
    /// The latest `now` seen, to make that `on_timer` due at once.
    last_now: Option<Instant>,
    out: VecDeque<Output>,
    rng: u64,
    /// Key of the Record-Route tokens, derived from the node secret.
    route_key: [u8; 32],
    next_purge: Option<Instant>,
    media: Option<Box<dyn MediaHook + Send>>,
    /// Rewritten 2xx answers by call, for 2xx retransmissions that arrive
    /// after their transaction (forwarded statelessly).
    media_answers: HashMap<(String, String), (Vec<u8>, Vec<u8>)>,
    dialplan: Dialplan,
    trunk_regs: HashMap<String, trunking::TrunkReg>,
    /// Set by a routing decision for the `forward` that follows.
    next_call: Option<CallMeta>,
    /// Trunk challenges to answer once the current batch is handled.
    auth_retries: Vec<(u64, TransactionId, Message)>,
    /// A graceful stop is under way: no new calls.
    draining: bool,
    pub stats: Stats,
    /// The transport of each flow a message arrived on, to label what is
    /// sent over it.
    flow_transports: HashMap<u64, Transport>,
}

impl Core {
    /// `secret` signs nonces; `seed` feeds tag and branch generation.
    pub fn new(cfg: CoreConfig, secret: [u8; 32], seed: u64) -> Self {
        let auth = Authenticator::new(
            AuthConfig {
                realm: cfg.domain.clone(),
                nonce_max_age: cfg.nonce_max_age,
                max_failures: cfg.max_auth_failures,
                failure_window: cfg.auth_failure_window,
                algorithms: cfg.digest_algorithms.clone(),
            },
            secret,
        );
        Core {
            table: TransactionTable::new(cfg.transactions),
            cfg,
            location: Location::default(),
            users: Directory::default(),
            auth,
            servers: HashMap::new(),
            clients: HashMap::new(),
            proxies: HashMap::new(),
            next_proxy: 1,
            calls: HashMap::new(),
            flows: HashSet::new(),
            closed: Vec::new(),
            last_now: None,
            out: VecDeque::new(),
            rng: seed | 1,
            route_key: {
                use sha2::Digest;
                let mut h = sha2::Sha256::new();
                h.update(b"callgate record-route key");
                h.update(secret);
                h.finalize().into()
            },
            next_purge: None,
            media: None,
            media_answers: HashMap::new(),
            dialplan: Dialplan::default(),
            trunk_regs: HashMap::new(),
            next_call: None,
            auth_retries: Vec::new(),
            draining: false,
            stats: Stats::default(),
            flow_transports: HashMap::new(),
        }
    }

    /// Routes SDP bodies through a media relay (see the module docs).
    pub fn set_media(&mut self, hook: Box<dyn MediaHook + Send>) {
        self.media = Some(hook);
    }

    /// Whether a media relay is set.
    pub fn has_media(&self) -> bool {
        self.media.is_some()
    }

    /// Releases a call's media session.
    fn end_media(&mut self, key: &(String, String)) {
        self.media_answers.remove(key);
        if let Some(m) = self.media.as_mut() {
            m.delete(&media_session(key));
        }
    }

    /// Replaces the user directory (after a store change).
    /// Registrations of users that no longer exist are dropped with them.
    pub fn set_users(&mut self, users: Directory) {
        self.users = users;
        let domain = format!("@{}", self.cfg.domain);
        let gone: Vec<String> = self
            .location
            .all()
            .map(|b| b.aor.clone())
            .filter(|aor| {
                let user = aor
                    .strip_prefix("sip:")
                    .and_then(|a| a.strip_suffix(domain.as_str()))
                    .unwrap_or("");
                self.users.find(user).is_none()
            })
            .collect();
        for aor in gone {
            for b in self.location.remove_aor(&aor) {
                self.out.push_back(Output::Binding(Change::Remove(b)));
            }
        }
    }

    /// Restores a persisted binding at start-up. Bindings on connection
    /// flows come back flowless until the client registers again.
    pub fn restore_binding(&mut self, mut b: Binding) {
        b.flow = None;
        self.location.restore(b);
    }

    pub fn location(&self) -> &Location {
        &self.location
    }

    /// Whether a binding can be reached now.
    pub fn binding_reachable(&self, b: &Binding) -> bool {
        match b.flow {
            Some(f) => self.flows.contains(&f),
            // WebSocket clients can only be reached over their flow.
            None => !matches!(b.transport, Transport::Ws | Transport::Wss),
        }
    }

    /// The current calls.
    pub fn calls(&self) -> Vec<CallInfo> {
        let mut v: Vec<_> = self.calls.values().cloned().collect();
        v.sort_by_key(|c| c.started_unix);
        v
    }

    /// Open transactions.
    pub fn transaction_count(&self) -> usize {
        self.table.len()
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        let reap = self.last_now.filter(|_| !self.closed.is_empty());
        [
            self.table.next_deadline(),
            self.next_purge,
            reap,
            self.next_registration(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// A connection ended: bindings on it become unreachable, and the
    /// transactions waiting on it are failed at the next `on_timer` (which
    /// `next_deadline` makes due at once).
    pub fn flow_closed(&mut self, flow: u64) {
        self.flows.remove(&flow);
        self.flow_transports.remove(&flow);
        if self.last_now.is_some() && !self.closed.contains(&flow) {
            self.closed.push(flow);
        }
    }

    /// Fails what waits on closed flows: a branch toward one gets no answer
    /// any more (480, as a new request to that binding would), and the
    /// phones a vanished caller made ring are cancelled.
    fn reap_closed_flows(&mut self, now: Instant, unix: u64) {
        if self.closed.is_empty() {
            return;
        }
        let closed = std::mem::take(&mut self.closed);
        let dead = |d: &Dest| matches!(d, Dest::Flow(f) if closed.contains(f));
        let mut clients: Vec<(TransactionId, Option<u64>)> = self
            .clients
            .iter()
            .filter(|(_, c)| dead(&c.dest))
            .map(|(id, c)| (*id, c.proxy))
            .collect();
        clients.sort_by_key(|(id, _)| *id);
        for (cid, pid) in clients {
            let pending = pid.and_then(|p| self.proxies.get(&p)).is_some_and(|p| {
                p.branches
                    .iter()
                    .any(|b| b.client == cid && b.final_status.is_none())
            });
            if pending {
                self.branch_response(cid, 480, None, now, unix);
            }
            // Ends the machine; its own TransportError is moot by now.
            let _ = self.table.on_transport_error(cid);
            self.drain(None, now, unix);
        }
        let mut orphaned: Vec<(TransactionId, u64)> = self
            .servers
            .iter()
            .filter(|(_, s)| dead(&s.reply))
            .filter_map(|(id, s)| s.proxy.map(|p| (*id, p)))
            .collect();
        orphaned.sort();
        for (_, pid) in orphaned {
            self.cancel_branches(pid, None, now, unix);
        }
    }

    /// Drives timers.
    pub fn on_timer(&mut self, now: Instant, unix: u64) {
        self.last_now = Some(now);
        self.reap_closed_flows(now, unix);
        self.table.poll_timers(now);
        self.drain(None, now, unix);
        self.registration_timers(now, unix);
        match self.next_purge {
            Some(t) if t > now => {}
            _ => {
                for b in self.location.purge(unix) {
                    self.out.push_back(Output::Binding(Change::Remove(b)));
                }
                self.next_purge = Some(now + PURGE_EVERY);
            }
        }
    }

    /// Handles one received message.
    pub fn on_message(&mut self, src: Source, data: Bytes, now: Instant, unix: u64) {
        self.last_now = Some(now);
        self.reap_closed_flows(now, unix);
        self.stats.received += 1;
        if let Some(f) = src.flow {
            self.flows.insert(f);
            self.flow_transports.insert(f, src.transport);
        }
        let msg = match Message::parse(data, &self.cfg.limits) {
            Ok(m) => m,
            Err(_) => {
                // Not even a start line and headers: nothing to answer to.
                self.stats.unparsable_dropped += 1;
                self.stats
                    .messages
                    .count(false, Some(src.transport), KIND_INVALID);
                return;
            }
        };
        let kind = match (msg.method(), msg.status()) {
            (Some(m), _) => method_kind(m),
            (None, Some(code)) => status_kind(code),
            (None, None) => KIND_INVALID,
        };
        self.stats.messages.count(false, Some(src.transport), kind);
        if msg.is_response() {
            self.on_response(msg, now, unix);
        } else {
            self.on_request(src, msg, now, unix);
        }
    }

    // ----- helpers -------------------------------------------------------

    fn random(&mut self) -> u64 {
        // splitmix64: tags and branches need uniqueness, not secrecy.
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn new_tag(&mut self) -> String {
        format!("{:016x}", self.random())
    }

    /// Our host and port for a transport, as written in Via/Record-Route.
    fn local_hostport(&self, transport: Transport, fallback: IpAddr) -> String {
        let l = self
            .cfg
            .listeners
            .iter()
            .find(|(t, _)| *t == transport)
            .map(|(_, a)| *a);
        let port = l.map(|a| a.port()).unwrap_or(5060);
        let ip = match l {
            Some(a) if !a.ip().is_unspecified() => a.ip(),
            _ => self.cfg.advertised.unwrap_or(fallback),
        };
        match ip {
            IpAddr::V6(v6) => format!("[{v6}]:{port}"),
            IpAddr::V4(v4) => format!("{v4}:{port}"),
        }
    }

    /// Whether a URI designates this gateway (domain or one of our
    /// addresses).
    fn is_local_uri(&self, uri: &Uri<'_>, local: SocketAddr) -> bool {
        let host = uri.host_str();
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.eq_ignore_ascii_case(&self.cfg.domain) {
            // With an explicit port that is none of ours, the URI names
            // another element on that host: a UA's contact when the domain
            // is an address the UAs share (127.0.0.1, a single-host setup).
            return uri
                .port()
                .is_none_or(|p| self.cfg.listeners.iter().any(|(_, a)| a.port() == p));
        }
        let Ok(ip) = host.parse::<IpAddr>() else {
            return false;
        };
        let port_ok = |p: u16| {
            uri.port().is_none_or(|up| up == p)
                || (uri.port().is_none() && (p == 5060 || p == 5061))
        };
        self.cfg.listeners.iter().any(|(_, a)| {
            let ip_ok = a.ip() == ip
                || (a.ip().is_unspecified()
                    && (ip == local.ip() || Some(ip) == self.cfg.advertised || ip.is_loopback()));
            ip_ok && port_ok(a.port())
        })
    }

    /// Response destination per RFC 3261 §18.2.2 and RFC 3581.
    fn reply_dest(src: &Source) -> Dest {
        match src.flow {
            Some(f) if src.transport.is_reliable() => Dest::Flow(f),
            _ => Dest::Addr(src.transport, src.addr),
        }
    }

    fn send(&mut self, dest: Dest, data: Bytes) {
        let transport = match dest {
            Dest::Addr(t, _) => Some(t),
            Dest::Flow(f) => self.flow_transports.get(&f).copied(),
        };
        self.stats.messages.count(true, transport, wire_kind(&data));
        self.out.push_back(Output::Send { dest, data });
    }

    /// Answers a request without a transaction (it could not get one, or is
    /// malformed).
    fn reply_stateless(&mut self, src: &Source, msg: &Message, code: u16, reason: &str) {
        // An ACK is never answered (§17.2.1), however broken.
        if matches!(msg.method(), Some(Method::Ack)) {
            return;
        }
        // The Via lines are copied back verbatim, so even a Via we cannot
        // parse (RFC 4475 badinv01) can carry the 400 back to its sender.
        if !msg.has_header(HeaderName::Via) {
            self.stats.unparsable_dropped += 1;
            return;
        }
        let tag = self.new_tag();
        if let Ok(bytes) = response_to(msg, code, reason, Some(&tag)).to_bytes() {
            self.send(Self::reply_dest(src), Bytes::from(bytes));
        }
    }

    /// Answers on a server transaction with a locally generated response.
    fn reply(
        &mut self,
        id: TransactionId,
        code: u16,
        reason: &str,
        headers: &[(&str, String)],
        now: Instant,
        unix: u64,
    ) {
        let Some(ctx) = self.servers.get(&id) else {
            return;
        };
        let mut b = response_to(&ctx.request, code, reason, Some(&ctx.to_tag));
        for (n, v) in headers {
            b = b.header(n, v);
        }
        if let Ok(bytes) = b.to_bytes() {
            let _ = self.table.respond(id, code, Bytes::from(bytes), now);
        }
        self.drain(None, now, unix);
    }

    fn challenge(&mut self, id: TransactionId, proxy: bool, stale: bool, now: Instant, unix: u64) {
        let salt = self.random().to_le_bytes();
        let values = self.auth.challenges(unix, salt, stale);
        let name = if proxy {
            "Proxy-Authenticate"
        } else {
            "WWW-Authenticate"
        };
        let (code, reason) = if proxy {
            (407, "Proxy Authentication Required")
        } else {
            (401, "Unauthorized")
        };
        let headers: Vec<(&str, String)> = values.into_iter().map(|v| (name, v)).collect();
        self.reply(id, code, reason, &headers, now, unix);
    }

    /// Runs digest auth; on anything but success it has answered already.
    fn authenticate(
        &mut self,
        id: TransactionId,
        src: &Source,
        proxy: bool,
        now: Instant,
        unix: u64,
    ) -> Option<String> {
        let verdict = {
            let msg = &self.servers.get(&id)?.request;
            self.auth
                .check(msg, proxy, &self.users, src.addr.ip(), unix)
        };
        match verdict {
            Verdict::Ok(user) => Some(user),
            Verdict::Challenge { stale } => {
                self.challenge(id, proxy, stale, now, unix);
                None
            }
            Verdict::Forbidden(reason) => {
                self.stats.auth_failures += 1;
                self.reply(id, 403, reason, &[], now, unix);
                None
            }
            Verdict::Blocked => {
                self.stats.auth_failures += 1;
                self.reply(id, 403, "Too Many Failed Attempts", &[], now, unix);
                None
            }
            Verdict::BadRequest(reason) => {
                self.stats.auth_failures += 1;
                self.reply(id, 400, reason, &[], now, unix);
                None
            }
        }
    }

    // ----- requests ------------------------------------------------------

    fn on_request(&mut self, src: Source, mut msg: Message, now: Instant, unix: u64) {
        // RFC 4475 §3.4: RFC 2543 requests (no Max-Forwards, old branches)
        // are still served.
        if let Err(e) = msg.validate_with(&sip::Validation::rfc2543_compatible()) {
            self.stats.bad_requests += 1;
            self.reply_stateless(&src, &msg, e.status_code(), e.reason_phrase());
            return;
        }
        // RFC 3581 / §18.2.1: note where it really came from, so responses
        // and in-dialog requests find the way back through NAT.
        stamp_received(&mut msg, &src);
        let Some(meta) = request_meta(&msg) else {
            self.stats.bad_requests += 1;
            self.reply_stateless(&src, &msg, 400, "Bad Request");
            return;
        };
        match self
            .table
            .on_request(&meta, src.transport.is_reliable(), now)
        {
            Err(TableError::Full { .. }) => {
                self.reply_stateless(&src, &msg, 503, "Service Unavailable");
            }
            Err(_) => {}
            Ok(RequestRoute::Matched(_)) => self.drain(None, now, unix),
            Ok(RequestRoute::UnmatchedAck) => self.forward_ack(&src, msg, unix),
            Ok(RequestRoute::New(id)) => {
                let tag = self.new_tag();
                self.servers.insert(
                    id,
                    ServerCtx {
                        reply: Self::reply_dest(&src),
                        request: msg.clone(),
                        to_tag: tag,
                        proxy: None,
                        loop_hash: loop_hash(&msg),
                    },
                );
                self.drain(None, now, unix);
                if matches!(msg.method(), Some(Method::Cancel)) {
                    self.on_cancel(id, &meta, now, unix);
                } else {
                    self.process(id, src, msg, now, unix);
                }
            }
        }
    }

    fn on_cancel(&mut self, id: TransactionId, meta: &RequestMeta, now: Instant, unix: u64) {
        let target = self.table.cancel_target(meta);
        let Some(target) = target else {
            self.reply(id, 481, "Call/Transaction Does Not Exist", &[], now, unix);
            return;
        };
        self.reply(id, 200, "OK", &[], now, unix);
        let proxy = self.servers.get(&target).and_then(|s| s.proxy);
        match proxy {
            Some(p) => self.cancel_branches(p, None, now, unix),
            None => self.reply(target, 487, "Request Terminated", &[], now, unix),
        }
    }

    /// Route processing and the routing decision for a new request.
    fn process(
        &mut self,
        id: TransactionId,
        src: Source,
        mut msg: Message,
        now: Instant,
        unix: u64,
    ) {
        let method = msg.method().cloned().unwrap_or(Method::Other("".into()));
        // §16.3 step 3: Max-Forwards.
        let mf = msg.max_forwards().ok().flatten();
        let ruri_local = msg
            .request_uri()
            .is_some_and(|u| self.is_local_uri(&u, src.local));
        // §16.3 step 3: only a request for the proxy itself (no user part)
        // may be answered at Max-Forwards 0.
        let for_us = ruri_local && msg.request_uri().is_some_and(|u| u.user().is_none());
        if mf == Some(0) {
            if method == Method::Options && for_us {
                self.reply_options(id, now, unix);
            } else {
                self.reply(id, 483, "Too Many Hops", &[], now, unix);
            }
            return;
        }
        // §16.3 step 1: a scheme we cannot route gets 416, before anything
        // else is asked of the sender.
        if !msg.request_uri().is_some_and(|u| {
            matches!(
                u.scheme(),
                sip::Scheme::Sip | sip::Scheme::Sips | sip::Scheme::Tel
            )
        }) {
            self.reply(id, 416, "Unsupported URI Scheme", &[], now, unix);
            return;
        }
        // §16.3 step 5: Proxy-Require.
        let unsupported: Vec<String> = msg
            .unsupported_tags(HeaderName::ProxyRequire, &[])
            .map(str::to_owned)
            .collect();
        if !unsupported.is_empty() {
            let v = unsupported.join(", ");
            self.reply(id, 420, "Bad Extension", &[("Unsupported", v)], now, unix);
            return;
        }
        // §16.3 step 4: loop detection, by our own Via with the same loop hash.
        let hash = match self.servers.get(&id) {
            Some(s) => s.loop_hash,
            None => loop_hash(&msg),
        };
        let looped = msg.vias().filter_map(Result::ok).any(|v| {
            v.branch()
                .is_some_and(|b| b.starts_with(BRANCH_PREFIX) && b.contains(&format!("-{hash:x}-")))
        });
        if looped {
            self.reply(id, 482, "Loop Detected", &[], now, unix);
            return;
        }
        // §16.4: strict-router compatibility — a Request-URI we placed in a
        // Record-Route means the previous hop was a strict router.
        if ruri_local && msg.request_uri().is_some_and(|u| u.lr()) {
            let last = msg
                .routes()
                .filter_map(Result::ok)
                .last()
                .map(|r| r.uri().as_str().to_owned());
            if let Some(last) = last {
                if msg.set_request_uri(&last).is_ok() {
                    remove_last_route(&mut msg);
                }
            }
        }
        // §16.4: pop our own Route entries (two with r2=on).
        let signed_route = self.pop_own_routes(&mut msg, src.local);
        let in_dialog = msg.to().ok().and_then(|t| t.tag()).is_some();
        // In-dialog requests are relayed only along a route set we signed
        // for this Call-ID, or to one of our registered users: a made-up To
        // tag must not turn the gateway into an open relay.
        if in_dialog && !signed_route {
            let target = msg
                .routes()
                .next()
                .and_then(Result::ok)
                .map(|r| r.uri().as_str().to_owned())
                .or_else(|| msg.request_uri().map(|u| u.as_str().to_owned()))
                .unwrap_or_default();
            let to_local_user = self.location.by_contact(&target, unix).is_some();
            let to_us = msg.routes().next().is_none()
                && msg
                    .request_uri()
                    .is_some_and(|u| self.is_local_uri(&u, src.local));
            if !to_local_user && !to_us {
                self.reply(id, 403, "Not In A Dialog Of Ours", &[], now, unix);
                return;
            }
        }
        if let Some(ctx) = self.servers.get_mut(&id) {
            ctx.request = msg.clone();
        }
        if self.draining && !in_dialog && method == Method::Invite {
            let retry = ("Retry-After", "60".to_owned());
            self.reply(id, 503, "Shutting Down", &[retry], now, unix);
            return;
        }
        // A trunk calling one of our DIDs needs no credentials: its source
        // address is trusted, and the call can only reach a local user.
        if !in_dialog && method == Method::Invite && msg.routes().next().is_none() {
            if let Some(inbound) = self.inbound_did(&src, &msg) {
                self.inbound_from_trunk(id, src, msg, inbound, now, unix);
                return;
            }
        }
        // Remaining Route: forward to it (in-dialog, or pre-loaded).
        let next_route = msg
            .routes()
            .next()
            .and_then(Result::ok)
            .map(|r| r.uri().as_str().to_owned());
        if let Some(route) = next_route {
            if !in_dialog && self.authenticate(id, &src, true, now, unix).is_none() {
                return;
            }
            match self.resolve(&route, unix) {
                Some(dest) => {
                    self.forward(id, &src, msg, vec![(None, dest, Vec::new())], now, unix)
                }
                None => self.reply(id, 404, "Route Not Resolvable", &[], now, unix),
            }
            return;
        }
        let ruri_local = msg
            .request_uri()
            .is_some_and(|u| self.is_local_uri(&u, src.local));
        if ruri_local {
            if in_dialog {
                // A GRUU a UA put in its Contact (RFC 5627 §8.1) names our
                // domain but one registered instance: route to it.
                let gruu = msg
                    .request_uri()
                    .filter(|u| u.param_value("gr").is_some())
                    .and_then(|u| self.location.by_contact(u.as_str(), unix))
                    .filter(|b| self.binding_reachable(b))
                    .map(|b| (b.contact.clone(), self.binding_dest(b)));
                if let Some((contact, Some(dest))) = gruu {
                    let target = (Some(contact), dest, Vec::new());
                    self.forward(id, &src, msg, vec![target], now, unix);
                    return;
                }
                // Addressed to us inside a dialog we are not a party to.
                self.reply(id, 481, "Call/Transaction Does Not Exist", &[], now, unix);
                return;
            }
            self.local_request(id, src, msg, method, now, unix);
            return;
        }
        if in_dialog {
            let target = msg.request_uri().map(|u| u.as_str().to_owned());
            match target.and_then(|t| self.resolve(&t, unix)) {
                Some(dest) => {
                    self.forward(id, &src, msg, vec![(None, dest, Vec::new())], now, unix)
                }
                None => self.reply(id, 480, "Temporarily Unavailable", &[], now, unix),
            }
            return;
        }
        // Out of dialog, for another domain.
        if method == Method::Register {
            self.reply(id, 403, "Not Our Domain", &[], now, unix);
            return;
        }
        if self.authenticate(id, &src, true, now, unix).is_none() {
            return;
        }
        if !self.cfg.allow_relay {
            self.reply(id, 403, "Relaying Denied", &[], now, unix);
            return;
        }
        let target = msg.request_uri().map(|u| u.as_str().to_owned());
        match target.and_then(|t| self.resolve(&t, unix)) {
            Some(dest) => self.forward(id, &src, msg, vec![(None, dest, Vec::new())], now, unix),
            None => self.reply(id, 404, "Not Found", &[], now, unix),
        }
    }

    fn reply_options(&mut self, id: TransactionId, now: Instant, unix: u64) {
        self.reply(
            id,
            200,
            "OK",
            &[
                ("Allow", ALLOW.into()),
                ("Accept", "application/sdp".into()),
                ("Supported", "path, gruu, outbound".into()),
            ],
            now,
            unix,
        );
    }

    /// A request whose Request-URI is this gateway.
    fn local_request(
        &mut self,
        id: TransactionId,
        src: Source,
        msg: Message,
        method: Method,
        now: Instant,
        unix: u64,
    ) {
        let user = msg.request_uri().and_then(|u| {
            u.user_unescaped()
                .map(|c| String::from_utf8_lossy(&c).into_owned())
        });
        if method == Method::Register {
            self.register(id, src, &msg, now, unix);
            return;
        }
        if method == Method::Options && user.is_none() {
            self.reply_options(id, now, unix);
            return;
        }
        let Some(user) = user else {
            self.reply(id, 404, "Not Found", &[], now, unix);
            return;
        };
        let mut caller = None;
        if method != Method::Options {
            let Some(who) = self.authenticate(id, &src, true, now, unix) else {
                return;
            };
            // The authenticated user must be who the From claims to be.
            let from_user = msg
                .from()
                .ok()
                .and_then(|f| f.uri().user().map(str::to_owned))
                .unwrap_or_default();
            if self.users.find(&from_user).map(|u| u.username.as_str()) != Some(who.as_str()) {
                self.reply(id, 403, "From Does Not Match Credentials", &[], now, unix);
                return;
            }
            caller = Some(who);
        }
        let Some(target_user) = self.users.find(&user).cloned() else {
            // Not a local user: a number for a trunk, but only for an
            // authenticated caller (the toll-fraud line).
            match caller {
                Some(who) if method == Method::Invite => {
                    self.route_to_trunk(id, &src, msg, &user, &who, now, unix)
                }
                _ => self.reply(id, 404, "Not Found", &[], now, unix),
            }
            return;
        };
        let aor = format!("sip:{}@{}", target_user.username, self.cfg.domain);
        // A GRUU targets one instance (RFC 5627).
        let gr = msg
            .request_uri()
            .and_then(|u| u.param_value("gr").map(str::to_owned));
        let bindings: Vec<Binding> = match gr {
            Some(instance) => self
                .location
                .by_gruu(&aor, &instance, unix)
                .cloned()
                .into_iter()
                .collect(),
            None => self
                .location
                .lookup(&aor, unix)
                .into_iter()
                .cloned()
                .collect(),
        };
        let targets: Vec<(Option<String>, Dest, Vec<String>)> = bindings
            .iter()
            .filter(|b| self.binding_reachable(b))
            .filter_map(|b| {
                self.binding_dest(b)
                    .map(|d| (Some(b.contact.clone()), d, b.path.clone()))
            })
            .collect();
        if targets.is_empty() {
            self.reply(id, 480, "Temporarily Unavailable", &[], now, unix);
            return;
        }
        if method == Method::Invite {
            let over = |u: Option<&crate::auth::UserRecord>, core: &Core| {
                u.and_then(|u| u.max_calls.map(|m| (m, &u.username)))
                    .is_some_and(|(m, name)| core.user_calls(name) >= m)
            };
            if over(caller.as_deref().and_then(|c| self.users.find(c)), self) {
                self.reply(id, 403, "Call Limit Reached", &[], now, unix);
                return;
            }
            if over(Some(&target_user), self) {
                self.reply(id, 486, "Busy Here", &[], now, unix);
                return;
            }
        }
        self.next_call = Some(CallMeta {
            direction: Some(Direction::Internal),
            dialled: user,
            caller_user: caller,
            callee_user: Some(target_user.username.clone()),
            trunk: None,
        });
        self.forward(id, &src, msg, targets, now, unix);
    }

    fn binding_dest(&self, b: &Binding) -> Option<Dest> {
        if let Some(f) = b.flow.filter(|f| self.flows.contains(f)) {
            return Some(Dest::Flow(f));
        }
        match b.transport {
            Transport::Udp => Some(Dest::Addr(Transport::Udp, b.source)),
            Transport::Ws | Transport::Wss => None,
            t => uri_addr(&b.contact).map(|a| Dest::Addr(t, a)),
        }
    }

    /// Resolves a URI to a destination: a registered contact goes over its
    /// flow; `.invalid` hosts are never resolved; otherwise IP literals.
    fn resolve(&self, uri: &str, unix: u64) -> Option<Dest> {
        if let Some(b) = self.location.by_contact(uri, unix) {
            return self.binding_dest(b);
        }
        let u = Uri::parse_str(uri).ok()?;
        let host = u.host_str();
        if host.ends_with(".invalid") {
            return None;
        }
        let transport = u.transport().and_then(Transport::from_token).unwrap_or(
            if matches!(u.scheme(), sip::Scheme::Sips) {
                Transport::Tls
            } else {
                Transport::Udp
            },
        );
        let addr = uri_addr(uri)?;
        Some(Dest::Addr(transport, addr))
    }

    fn register(&mut self, id: TransactionId, src: Source, msg: &Message, now: Instant, unix: u64) {
        let Some(who) = self.authenticate(id, &src, false, now, unix) else {
            return;
        };
        let to_user = msg
            .to()
            .ok()
            .and_then(|t| t.uri().user().map(str::to_owned))
            .unwrap_or_default();
        let Some(user) = self.users.find(&to_user).cloned() else {
            self.reply(id, 404, "Not Found", &[], now, unix);
            return;
        };
        if user.username != who {
            self.reply(id, 403, "Cannot Register Another User", &[], now, unix);
            return;
        }
        let aor = format!("sip:{}@{}", user.username, self.cfg.domain);
        let origin = Origin {
            transport: src.transport,
            source: src.addr,
            local: src.local,
            flow: src.flow,
        };
        let (reply, changes) = self
            .location
            .register(&self.cfg.registrar, msg, &aor, origin, unix);
        for c in changes {
            self.out.push_back(Output::Binding(c));
        }
        self.reply(id, reply.status, reply.reason, &reply.headers, now, unix);
    }

    /// Forwards a request statefully to one or more targets (forking in
    /// parallel). A target is (new Request-URI, destination, Route set).
    fn forward(
        &mut self,
        id: TransactionId,
        src: &Source,
        mut msg: Message,
        targets: Vec<(Option<String>, Dest, Vec<String>)>,
        now: Instant,
        unix: u64,
    ) {
        let meta = self.next_call.take().unwrap_or_default();
        let is_invite = matches!(msg.method(), Some(Method::Invite));
        let dialog_forming = matches!(msg.method(), Some(Method::Invite | Method::Subscribe))
            && msg.to().ok().and_then(|t| t.tag()).is_none();
        let pid = self.next_proxy;
        self.next_proxy += 1;
        let hash = match self.servers.get(&id) {
            Some(s) => s.loop_hash,
            None => loop_hash(&msg),
        };
        let mut in_dialog_call = None;
        let mut branch_trunk = meta.trunk.clone();
        let call_key = if is_invite && dialog_forming {
            let key = (
                msg.call_id().unwrap_or_default().to_owned(),
                msg.from()
                    .ok()
                    .and_then(|f| f.tag())
                    .unwrap_or_default()
                    .to_owned(),
            );
            let caller_dest = self.servers.get(&id).map(|s| s.reply);
            let caller_contact = first_contact(&msg);
            let dialled = if meta.dialled.is_empty() {
                msg.request_uri()
                    .and_then(|u| u.user().map(str::to_owned))
                    .unwrap_or_default()
            } else {
                meta.dialled.clone()
            };
            self.calls.insert(
                key.clone(),
                CallInfo {
                    direction: meta.direction.unwrap_or(Direction::Internal),
                    dialled,
                    caller_user: meta.caller_user.clone(),
                    callee_user: meta.callee_user.clone(),
                    trunk: meta.trunk.clone(),
                    cseq_offset: 0,
                    media: None,
                    dialog: DialogInfo {
                        caller_dest,
                        caller_contact,
                        from_hdr: msg.header_str(HeaderName::From).unwrap_or("").to_owned(),
                        ..Default::default()
                    },
                    call_id: key.0.clone(),
                    from_tag: key.1.clone(),
                    to_tag: None,
                    from: msg
                        .from()
                        .map(|f| f.uri().as_str().to_owned())
                        .unwrap_or_default(),
                    to: msg
                        .to()
                        .map(|f| f.uri().as_str().to_owned())
                        .unwrap_or_default(),
                    source: src.addr,
                    transport: src.transport,
                    started_unix: unix,
                    answered_unix: None,
                    state: CallState::Trying,
                    route_set: Vec::new(),
                    cseq_caller: msg.cseq().map(|c| c.seq).unwrap_or(0),
                    cseq_callee: 0,
                },
            );
            Some(key)
        } else {
            // The caller's requests follow the CSeq numbers the trunk's
            // challenge made the INVITE skip (before a BYE ends the call).
            if let Some(k) = self.caller_call_key(&msg) {
                self.apply_cseq_offset(&k, &mut msg);
                // A trunk may challenge in-dialog requests too.
                branch_trunk = self.calls.get(&k).and_then(|c| c.trunk.clone());
            }
            let tracked = self.track_in_dialog(&msg, unix);
            // A re-INVITE of a call whose media is relayed re-offers.
            in_dialog_call = tracked.filter(|_| is_invite);
            None
        };
        // The offer, rewritten once per kind of target.
        let mut media: Option<MediaNeg> = None;
        let mut offers: Vec<(MediaPeer, Vec<u8>)> = Vec::new();
        let negotiation = match (&call_key, in_dialog_call) {
            (Some(k), _) if is_invite => Some((k.clone(), MediaSide::Caller)),
            (None, Some((k, side))) => Some((k, side)),
            _ => None,
        };
        if let (Some((key, offerer)), true) = (negotiation, self.media.is_some() && has_sdp(&msg)) {
            let session = media_session(&key);
            let mut failed = None;
            for (_, dest, _) in &targets {
                let peer = peer_kind(self.out_transport(*dest, src));
                if offers.iter().any(|(p, _)| *p == peer) {
                    continue;
                }
                let hook = self.media.as_mut().expect("media hook");
                match hook.offer(&session, offerer, peer, msg.body(), now) {
                    Ok(sdp) => offers.push((peer, sdp)),
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            if let Some(e) = failed {
                if let Some(k) = &call_key {
                    self.finish_call(k, Disposition::Failed, "488 media refused", unix);
                }
                let warning = ("Warning", media_warning(&e));
                self.reply(id, 488, "Not Acceptable Here", &[warning], now, unix);
                return;
            }
            media = Some(MediaNeg {
                key,
                offerer,
                answered: None,
            });
        }
        let mut branches = Vec::new();
        for (ruri, dest, route) in targets {
            let out_transport = self.out_transport(dest, src);
            let mut m = msg.clone();
            let peer = peer_kind(out_transport);
            if let Some((_, sdp)) = offers.iter().find(|(p, _)| *p == peer) {
                if m.set_body(None, sdp).is_err() {
                    continue;
                }
            }
            if let Some(r) = &ruri {
                if m.set_request_uri(r).is_err() {
                    continue;
                }
            }
            if m.decrement_max_forwards().is_err() {
                let _ = m.add_header("Max-Forwards", "70");
            }
            // A UDP request may lack Content-Length; streams need it.
            if !m.has_header(HeaderName::ContentLength) {
                m.set_content_length();
            }
            for r in &route {
                let _ = m.add_header("Route", &format!("<{r}>"));
            }
            if dialog_forming {
                // One entry when both sides use the same transport, two
                // (r2=on) when they differ, so each side gets an address it
                // can reach (RFC 5658).
                let token = self.route_token(msg.call_id().unwrap_or(""));
                let inbound = self.rr_uri(
                    src.transport,
                    src.local.ip(),
                    src.transport != out_transport,
                    &token,
                );
                if src.transport != out_transport {
                    let outbound = self.rr_uri(out_transport, src.local.ip(), true, &token);
                    let _ = m.prepend_record_route(&format!("<{inbound}>"));
                    let _ = m.prepend_record_route(&format!("<{outbound}>"));
                } else {
                    let _ = m.prepend_record_route(&format!("<{inbound}>"));
                }
            }
            let branch = format!("{BRANCH_PREFIX}-{hash:x}-{:x}", self.random());
            let via = format!(
                "SIP/2.0/{} {};branch={branch};rport",
                out_transport.via_token(),
                self.local_hostport(out_transport, src.local.ip())
            );
            if m.prepend_via(&via).is_err() {
                continue;
            }
            let bytes = m.to_bytes();
            let method = tx::Method::parse(m.method().map(|m| m.as_str()).unwrap_or(""));
            let key = ClientKey::new(branch, method);
            let Ok(cid) = self
                .table
                .start_client(key, bytes.clone(), dest.is_reliable(), now)
            else {
                continue;
            };
            // Keep the sent form for ACK/CANCEL; reparsing is cheap and keeps
            // one source of truth.
            let sent = Message::parse(bytes, &sip::Limits::unbounded()).unwrap_or(m);
            self.clients.insert(
                cid,
                ClientCtx {
                    dest,
                    request: sent,
                    proxy: Some(pid),
                    trunk: branch_trunk.clone(),
                    auth_tried: false,
                    register: None,
                    ping: None,
                },
            );
            branches.push(Branch {
                client: cid,
                provisional: false,
                final_status: None,
                cancelled: false,
                cancel_sent: false,
            });
            self.stats.forwarded += 1;
        }
        if branches.is_empty() {
            if let Some(k) = &call_key {
                self.finish_call(k, Disposition::Failed, "500 could not forward", unix);
            }
            self.reply(id, 500, "Could Not Forward", &[], now, unix);
            return;
        }
        if let Some(s) = self.servers.get_mut(&id) {
            s.proxy = Some(pid);
        }
        self.proxies.insert(
            pid,
            ProxyCtx {
                server: id,
                branches,
                best: None,
                final_sent: false,
                invite: is_invite,
                call: call_key,
                media,
            },
        );
        self.drain(None, now, unix);
    }

    /// The transport a request to `dest` leaves on.
    fn out_transport(&self, dest: Dest, src: &Source) -> Transport {
        match dest {
            Dest::Addr(t, _) => t,
            Dest::Flow(f) => self
                .location
                .all()
                .find(|b| b.flow == Some(f))
                .map(|b| b.transport)
                .unwrap_or(src.transport),
        }
    }

    /// Pops our own entries from the top of the Route set (§16.4; two with
    /// r2=on). Returns whether one carried a valid token for this Call-ID.
    fn pop_own_routes(&self, msg: &mut Message, local: SocketAddr) -> bool {
        let expected = self.route_token(msg.call_id().unwrap_or(""));
        let mut signed = false;
        loop {
            let top = msg
                .routes()
                .next()
                .and_then(Result::ok)
                .filter(|r| self.is_local_uri(r.uri(), local))
                .map(|r| r.uri().param_value("cgt").map(str::to_owned));
            match top {
                Some(token) => {
                    signed |= token.is_some_and(|t| t == expected);
                    let _ = msg.pop_route();
                }
                None => return signed,
            }
        }
    }

    /// Keyed MAC of a Call-ID carried in our Record-Route entries.
    fn route_token(&self, call_id: &str) -> String {
        use hmac::{KeyInit, Mac};
        let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&self.route_key)
            .expect("HMAC takes any key length");
        mac.update(call_id.as_bytes());
        let tag = mac.finalize().into_bytes();
        tag[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    fn rr_uri(&self, transport: Transport, fallback: IpAddr, r2: bool, token: &str) -> String {
        let hp = self.local_hostport(transport, fallback);
        let t = transport.uri_param();
        let r2 = if r2 { ";r2=on" } else { "" };
        format!("sip:{hp}{t}{r2};lr;cgt={token}")
    }

    /// Updates the call list for in-dialog requests (BYE ends a call).
    /// Returns the call's key and whether the caller sent the request.
    fn track_in_dialog(
        &mut self,
        msg: &Message,
        unix: u64,
    ) -> Option<((String, String), MediaSide)> {
        let call_id = msg.call_id()?;
        let (Ok(from), Ok(to)) = (msg.from(), msg.to()) else {
            return None;
        };
        let (ft, tt) = (from.tag().unwrap_or(""), to.tag().unwrap_or(""));
        let seq = msg.cseq().map(|c| c.seq).unwrap_or(0);
        let bye = matches!(msg.method(), Some(Method::Bye));
        for key in [
            (call_id.to_owned(), ft.to_owned()),
            (call_id.to_owned(), tt.to_owned()),
        ] {
            let caller_side = key.1 == ft;
            if let Some(c) = self.calls.get_mut(&key) {
                if caller_side {
                    c.cseq_caller = c.cseq_caller.max(seq);
                } else {
                    c.cseq_callee = c.cseq_callee.max(seq);
                }
                if bye {
                    let who = if caller_side { "caller" } else { "callee" };
                    self.finish_call(
                        &key,
                        Disposition::Answered,
                        &format!("BYE from {who}"),
                        unix,
                    );
                }
                let side = if caller_side {
                    MediaSide::Caller
                } else {
                    MediaSide::Callee
                };
                return Some((key, side));
            }
        }
        None
    }

    /// ACK for a 2xx: its own transaction-less hop-by-hop forward (§16.11
    /// stateless handling of the end-to-end ACK).
    fn forward_ack(&mut self, src: &Source, mut msg: Message, unix: u64) {
        let signed_route = self.pop_own_routes(&mut msg, src.local);
        let target = msg
            .routes()
            .next()
            .and_then(Result::ok)
            .map(|r| r.uri().as_str().to_owned())
            .or_else(|| msg.request_uri().map(|u| u.as_str().to_owned()));
        let Some(target) = target else { return };
        if msg
            .request_uri()
            .is_some_and(|u| self.is_local_uri(&u, src.local))
            && msg.routes().next().is_none()
        {
            // A GRUU (RFC 5627) is retargeted to its instance's contact.
            let contact = msg
                .request_uri()
                .filter(|u| u.param_value("gr").is_some())
                .and_then(|u| self.location.by_contact(u.as_str(), unix))
                .map(|b| b.contact.clone());
            match contact {
                Some(c) if msg.set_request_uri(&c).is_ok() => {}
                // For us: an ACK to a locally generated 2xx; nothing to do.
                _ => return,
            }
        }
        if !signed_route && self.location.by_contact(&target, unix).is_none() {
            return; // not along a route set of ours: not relayed (see process)
        }
        let Some(dest) = self.resolve(&target, unix) else {
            return;
        };
        let out_t = self.out_transport(dest, src);
        if msg.decrement_max_forwards().is_err() {
            return;
        }
        if let Some(key) = self.caller_call_key(&msg) {
            self.apply_cseq_offset(&key, &mut msg);
        }
        // Stateless: the branch is derived from the incoming one, so a
        // retransmitted ACK gets the same branch (§16.11).
        let incoming = msg.top_via_branch().unwrap_or("").to_owned();
        let branch = format!("{BRANCH_PREFIX}-a-{:x}", fnv(incoming.as_bytes()));
        let via = format!(
            "SIP/2.0/{} {};branch={branch};rport",
            out_t.via_token(),
            self.local_hostport(out_t, src.local.ip())
        );
        if msg.prepend_via(&via).is_ok() {
            self.send(dest, msg.to_bytes());
        }
    }

    // ----- responses -----------------------------------------------------

    fn on_response(&mut self, mut msg: Message, now: Instant, unix: u64) {
        let (Some(status), Ok(cseq)) = (msg.status(), msg.cseq()) else {
            self.stats.responses_dropped += 1;
            return;
        };
        let Some(branch) = msg.top_via_branch().map(str::to_owned) else {
            self.stats.responses_dropped += 1;
            return;
        };
        if !branch.starts_with(BRANCH_PREFIX) {
            // Not one of our Vias (§16.7 step 1 / §18.1.2): drop.
            self.stats.responses_dropped += 1;
            return;
        }
        let meta = ResponseMeta {
            status,
            branch: Some(branch),
            cseq_method: tx::Method::parse(cseq.method.as_str()),
        };
        match self.table.on_response(&meta, now) {
            Some(_) => self.drain(Some(&msg), now, unix),
            None => {
                // A 2xx retransmission after the transaction ended goes on
                // statelessly along the Vias (§16.7 / RFC 6026).
                if (200..300).contains(&status) && cseq.method == Method::Invite {
                    let _ = msg.pop_via();
                    self.reuse_media_answer(&mut msg);
                    self.forward_response_stateless(msg);
                } else {
                    self.stats.responses_dropped += 1;
                }
            }
        }
    }

    /// A 2xx retransmitted after its transaction carries the answer the
    /// relay already rewrote: the same rewrite goes out again.
    fn reuse_media_answer(&self, msg: &mut Message) {
        if self.media_answers.is_empty() {
            return;
        }
        let key = (
            msg.call_id().unwrap_or_default().to_owned(),
            msg.from()
                .ok()
                .and_then(|f| f.tag())
                .unwrap_or_default()
                .to_owned(),
        );
        if let Some((raw, out)) = self.media_answers.get(&key) {
            if raw.as_slice() == msg.body() {
                let _ = msg.set_body(None, out);
            }
        }
    }

    fn forward_response_stateless(&mut self, msg: Message) {
        let Ok(via) = msg.top_via() else { return };
        let Some(t) = Transport::from_token(via.transport()) else {
            return;
        };
        let ip = via
            .received()
            .and_then(|r| r.parse::<IpAddr>().ok())
            .or_else(|| via.host_str().parse().ok());
        let port = match via.rport() {
            Some(sip::Rport::Port(p)) => p,
            _ => via.port().unwrap_or(5060),
        };
        if let Some(ip) = ip {
            self.send(Dest::Addr(t, SocketAddr::new(ip, port)), msg.to_bytes());
        }
    }

    /// Processes transaction events; `current` is the message just fed to
    /// the table (for PassResponse / SendAck).
    fn drain(&mut self, current: Option<&Message>, now: Instant, unix: u64) {
        // Take the events queued so far before handling any: handling one
        // can re-enter `drain` (relaying a final answers the server
        // transaction), and that nested call must not swallow the events
        // that need `current` — the SendAck after a non-2xx PassResponse,
        // or the ACK would never be sent. Later batches are not about
        // `current`.
        let mut current = current;
        loop {
            let batch: Vec<_> = std::iter::from_fn(|| self.table.poll_event()).collect();
            if batch.is_empty() {
                break;
            }
            for (id, action) in batch {
                self.handle_event(id, action, current, now, unix);
            }
            current = None;
        }
        for (pid, cid, challenge) in std::mem::take(&mut self.auth_retries) {
            if !self.retry_with_trunk_auth(pid, cid, &challenge, now, unix) {
                // Could not answer after all: the challenge goes upstream.
                if let Some(c) = self.clients.get_mut(&cid) {
                    c.auth_tried = true;
                }
                let status = challenge.status().unwrap_or(500);
                self.branch_response(cid, status, Some(challenge), now, unix);
            }
        }
    }

    fn handle_event(
        &mut self,
        id: TransactionId,
        action: Action,
        current: Option<&Message>,
        now: Instant,
        unix: u64,
    ) {
        match action {
            Action::Transmit(bytes) => {
                let dest = self
                    .servers
                    .get(&id)
                    .map(|s| s.reply)
                    .or_else(|| self.clients.get(&id).map(|c| c.dest));
                if let Some(dest) = dest {
                    self.send(dest, bytes);
                }
            }
            Action::PassRequest => {}
            Action::PassResponse { status } => {
                if let Some((ping, sent)) = self.clients.get_mut(&id).and_then(|c| {
                    if status >= 200 {
                        c.ping.take()
                    } else {
                        None
                    }
                }) {
                    let result = Ok((status, now.saturating_duration_since(sent)));
                    self.out.push_back(Output::PingResult { id: ping, result });
                } else if let Some(name) = self.clients.get(&id).and_then(|c| c.register.clone()) {
                    self.register_response(&name, id, status, current, now, unix);
                } else if let Some(m) = current {
                    self.branch_response(id, status, Some(m.clone()), now, unix);
                }
            }
            Action::SendAck { .. } => {
                if let (Some(resp), Some(c)) = (current, self.clients.get(&id)) {
                    if let Some(ack) = build_ack(&c.request, resp) {
                        let _ = self.table.send_ack(id, ack);
                    }
                }
            }
            Action::SendTrying => {
                if let Some(s) = self.servers.get(&id) {
                    if let Ok(b) = response_to(&s.request, 100, "Trying", None).to_bytes() {
                        let _ = self.table.respond(id, 100, Bytes::from(b), now);
                    }
                }
            }
            Action::Timeout | Action::TransportError => {
                let status = if matches!(action, Action::Timeout) {
                    408
                } else {
                    503
                };
                if let Some((ping, _)) = self.clients.get_mut(&id).and_then(|c| c.ping.take()) {
                    let why = if status == 408 {
                        "no answer"
                    } else {
                        "unreachable"
                    };
                    self.out.push_back(Output::PingResult {
                        id: ping,
                        result: Err(why.to_owned()),
                    });
                } else if let Some(name) = self.clients.get(&id).and_then(|c| c.register.clone()) {
                    self.register_response(&name, id, status, None, now, unix);
                } else if self.clients.contains_key(&id) {
                    self.branch_response(id, status, None, now, unix);
                }
            }
            Action::Terminated => {
                self.servers.remove(&id);
                if let Some(c) = self.clients.remove(&id) {
                    if let Some(p) = c.proxy {
                        self.maybe_drop_proxy(p);
                    }
                }
            }
        }
    }

    fn maybe_drop_proxy(&mut self, pid: u64) {
        let done = self.proxies.get(&pid).is_some_and(|p| {
            p.branches
                .iter()
                .all(|b| !self.clients.contains_key(&b.client))
        });
        if done {
            self.proxies.remove(&pid);
        }
    }

    /// A response (or a synthesised one: `msg` None) on a client branch.
    fn branch_response(
        &mut self,
        cid: TransactionId,
        status: u16,
        msg: Option<Message>,
        now: Instant,
        unix: u64,
    ) {
        let Some(pid) = self.clients.get(&cid).and_then(|c| c.proxy) else {
            return;
        };
        if matches!(status, 401 | 407) {
            if let Some(m) = &msg {
                // Re-sent with credentials once the batch is handled, so
                // the challenge's ACK leaves first (strict peers want it).
                if self.can_answer_trunk_challenge(pid, cid) {
                    self.auth_retries.push((pid, cid, m.clone()));
                    return;
                }
            }
        }
        let Some(p) = self.proxies.get_mut(&pid) else {
            return;
        };
        let server = p.server;
        // A branch ends once: a timeout or transport error synthesised
        // after its final response (or a 480 for its closed flow) is moot.
        if msg.is_none()
            && p.branches
                .iter()
                .any(|b| b.client == cid && b.final_status.is_some())
        {
            return;
        }
        let mut fwd = msg;
        if let Some(m) = fwd.as_mut() {
            if m.pop_via().is_err() {
                return;
            }
            self.restore_cseq(server, cid, m);
        }
        let Some(p) = self.proxies.get_mut(&pid) else {
            return;
        };
        let mut cancel_now = false;
        if let Some(b) = p.branches.iter_mut().find(|b| b.client == cid) {
            if status < 200 {
                // Any provisional, 100 included, lets a pending CANCEL go.
                b.provisional = true;
                if b.cancelled && !b.cancel_sent {
                    b.cancel_sent = true;
                    cancel_now = true;
                }
            } else {
                b.final_status = Some(status);
            }
        }
        if cancel_now {
            self.send_cancel(cid, now, unix);
        }
        if status == 100 {
            return;
        }
        let Some(p) = self.proxies.get_mut(&pid) else {
            return;
        };
        if status < 200 {
            if p.final_sent {
                return;
            }
            if let Some(k) = &p.call {
                if let Some(c) = self.calls.get_mut(k) {
                    if status >= 180 {
                        c.state = CallState::Ringing;
                    }
                }
            }
            if let Some(mut m) = fwd {
                if self.media_answer(pid, cid, &mut m, now).is_err() {
                    // Early media the relay cannot take: the 18x goes on
                    // without it.
                    if m.set_body(None, b"").is_err() {
                        return;
                    }
                }
                let _ = self.table.respond(server, status, m.to_bytes(), now);
                self.drain(None, now, unix);
            }
            return;
        }
        if (200..300).contains(&status) {
            let first = !p.final_sent;
            p.final_sent = true;
            let call = p.call.clone();
            if let Some(mut m) = fwd {
                if let Err(e) = self.media_answer(pid, cid, &mut m, now) {
                    if first {
                        // The caller gets a 488; the callee, never ACKed,
                        // ends its side (§13.3.1.4).
                        if let Some(k) = &call {
                            self.finish_call(k, Disposition::Failed, "488 media refused", unix);
                        }
                        let warning = ("Warning", media_warning(&e));
                        self.reply(server, 488, "Not Acceptable Here", &[warning], now, unix);
                        self.cancel_branches(pid, Some(cid), now, unix);
                    }
                    return;
                }
                let callee_dest = self.clients.get(&cid).map(|c| c.dest);
                if let Some(c) = call.and_then(|k| self.calls.get_mut(&k)) {
                    if c.answered_unix.is_none() {
                        c.answered_unix = Some(unix);
                        c.dialog.callee_dest = callee_dest;
                        c.dialog.callee_contact = first_contact(&m);
                        c.dialog.to_hdr = m.header_str(HeaderName::To).map(str::to_owned);
                    }
                    c.state = CallState::Active;
                    c.to_tag = m.to().ok().and_then(|t| t.tag()).map(str::to_owned);
                    c.route_set = m
                        .record_routes()
                        .filter_map(Result::ok)
                        .map(|r| r.uri().as_str().to_owned())
                        .collect();
                }
                let bytes = m.to_bytes();
                let sent = self
                    .table
                    .respond(server, status, bytes.clone(), now)
                    .is_ok();
                if !sent {
                    // Another branch's 2xx after ours (forking) or a late
                    // retransmission: still goes upstream, statelessly.
                    self.forward_response_stateless(m);
                }
                self.drain(None, now, unix);
            }
            if first {
                self.cancel_branches(pid, Some(cid), now, unix);
            }
            return;
        }
        // 3xx–6xx: keep the best, answer when every branch is done.
        if p.final_sent {
            return;
        }
        let better = match &p.best {
            None => true,
            Some((s, _)) => rank(status) < rank(*s),
        };
        if better {
            p.best = Some((status, fwd));
        }
        let six = status >= 600;
        let all_done = p.branches.iter().all(|b| b.final_status.is_some());
        if six {
            self.cancel_branches(pid, Some(cid), now, unix);
        }
        if six || all_done {
            self.send_best(pid, now, unix);
        }
    }

    /// Rewrites the SDP answer in a response on branch `cid` of proxy
    /// `pid` through the media hook. The first answer with SDP is taken;
    /// the same SDP again (183 then 200, retransmissions) reuses its
    /// rewrite; another branch's answer after it passes untouched (the
    /// caller ends that dialog).
    fn media_answer(
        &mut self,
        pid: u64,
        cid: TransactionId,
        m: &mut Message,
        now: Instant,
    ) -> Result<(), String> {
        if self.media.is_none() || !has_sdp(m) {
            return Ok(());
        }
        let Some(neg) = self.proxies.get_mut(&pid).and_then(|p| p.media.as_mut()) else {
            return Ok(());
        };
        let sdp = match &neg.answered {
            Some((c, raw, out)) if *c == cid && raw.as_slice() == m.body() => out.clone(),
            Some(_) => return Ok(()),
            None => {
                let hook = self.media.as_mut().expect("media hook");
                let session = media_session(&neg.key);
                let out = hook.answer(&session, neg.offerer.other(), m.body(), now)?;
                neg.answered = Some((cid, m.body().to_vec(), out.clone()));
                out
            }
        };
        if m.status().is_some_and(|s| (200..300).contains(&s)) {
            let key = neg.key.clone();
            self.media_answers
                .insert(key, (m.body().to_vec(), sdp.clone()));
        }
        m.set_body(None, &sdp).map_err(|e| e.to_string())
    }

    fn send_best(&mut self, pid: u64, now: Instant, unix: u64) {
        let Some(p) = self.proxies.get_mut(&pid) else {
            return;
        };
        if p.final_sent {
            return;
        }
        p.final_sent = true;
        let server = p.server;
        let best = p.best.take();
        if let Some(k) = p.call.take() {
            let status = best.as_ref().map_or(500, |(s, _)| *s);
            let reason = match &best {
                Some((_, Some(m))) => format!(
                    "{status} {}",
                    String::from_utf8_lossy(m.reason().unwrap_or_default())
                ),
                _ => status.to_string(),
            };
            self.finish_call(&k, Disposition::from_status(status), reason.trim(), unix);
        }
        match best {
            // §16.7 step 6: a 503 from downstream is not passed on as 503.
            Some((503, _)) => self.reply(server, 500, "Server Internal Error", &[], now, unix),
            Some((s, Some(m))) => {
                let _ = self.table.respond(server, s, m.to_bytes(), now);
                self.drain(None, now, unix);
            }
            Some((408, None)) => self.reply(server, 408, "Request Timeout", &[], now, unix),
            Some((480, None)) => self.reply(server, 480, "Temporarily Unavailable", &[], now, unix),
            Some((s, None)) => self.reply(server, s, "Service Unavailable", &[], now, unix),
            None => self.reply(server, 500, "Server Internal Error", &[], now, unix),
        }
    }

    /// CANCELs every pending INVITE branch except `except` (§16.10).
    fn cancel_branches(
        &mut self,
        pid: u64,
        except: Option<TransactionId>,
        now: Instant,
        unix: u64,
    ) {
        let Some(p) = self.proxies.get_mut(&pid) else {
            return;
        };
        if !p.invite {
            return;
        }
        let mut to_cancel = Vec::new();
        for b in p.branches.iter_mut() {
            if Some(b.client) != except && b.final_status.is_none() && !b.cancelled {
                b.cancelled = true;
                // §9.1: no CANCEL before a provisional response; one that
                // comes later sends it (branch_response), a final makes it
                // moot, and timer B ends a branch that never answers.
                if b.provisional {
                    b.cancel_sent = true;
                    to_cancel.push(b.client);
                }
            }
        }
        for cid in to_cancel {
            self.send_cancel(cid, now, unix);
        }
    }

    /// Sends a CANCEL for the INVITE of client transaction `cid` (§9.1).
    fn send_cancel(&mut self, cid: TransactionId, now: Instant, unix: u64) {
        let Some(c) = self.clients.get(&cid) else {
            return;
        };
        let dest = c.dest;
        let Some(cancel) = build_cancel(&c.request) else {
            return;
        };
        let branch = c.request.top_via_branch().unwrap_or("").to_owned();
        let key = ClientKey::new(branch, tx::Method::Cancel);
        if let Ok(id) = self
            .table
            .start_client(key, cancel.clone(), dest.is_reliable(), now)
        {
            if let Ok(m) = Message::parse(cancel, &sip::Limits::unbounded()) {
                self.clients.insert(
                    id,
                    ClientCtx {
                        dest,
                        request: m,
                        proxy: None,
                        trunk: None,
                        auth_tried: false,
                        register: None,
                        ping: None,
                    },
                );
            }
        }
        self.drain(None, now, unix);
    }
}

/// A Warning header value (RFC 3261 §20.43, code 399) for a relay error.
fn media_warning(error: &str) -> String {
    let text: String = error
        .chars()
        .filter(|c| !c.is_control())
        .map(|c| if c == '"' || c == '\\' { '\'' } else { c })
        .take(200)
        .collect();
    format!("399 callgate \"media relay: {text}\"")
}

fn peer_kind(t: Transport) -> MediaPeer {
    match t {
        Transport::Ws | Transport::Wss => MediaPeer::Browser,
        _ => MediaPeer::Plain,
    }
}

/// Lower is better (§16.7 step 6): 6xx, then 2xx (handled apart), then the
/// lowest class; within a class the challenge responses win so the caller
/// can authenticate.
fn rank(status: u16) -> u32 {
    let class = u32::from(status / 100);
    let class_rank = if class == 6 { 0 } else { class };
    let pref = match status {
        401 | 407 => 0,
        486 | 600 => 1,
        _ => 2,
    };
    class_rank * 1000 + pref * 100 + u32::from(status % 100)
}

fn fnv(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The §16.6 step 8 loop-detection hash: what makes this request this
/// request at this hop.
fn loop_hash(msg: &Message) -> u64 {
    let mut s = Vec::with_capacity(256);
    s.extend_from_slice(msg.request_uri_bytes().unwrap_or_default());
    for name in [
        HeaderName::From,
        HeaderName::To,
        HeaderName::CallId,
        HeaderName::ProxyRequire,
    ] {
        s.push(0);
        s.extend_from_slice(msg.header(name).unwrap_or_default());
    }
    if let Ok(c) = msg.cseq() {
        s.extend_from_slice(&c.seq.to_le_bytes());
    }
    for r in msg.headers(HeaderName::Route) {
        s.push(1);
        s.extend_from_slice(r);
    }
    fnv(&s)
}

/// Adds received/rport to the top Via (RFC 3261 §18.2.1, RFC 3581).
fn stamp_received(msg: &mut Message, src: &Source) {
    let Ok(via) = msg.top_via() else { return };
    let mut params = String::new();
    let mut had_rport = false;
    for p in via.params() {
        if p.name.eq_ignore_ascii_case("received") {
            continue;
        }
        if p.name.eq_ignore_ascii_case("rport") {
            had_rport = true;
            continue;
        }
        params.push(';');
        params.push_str(p.name);
        if let Some(v) = p.value {
            params.push('=');
            params.push_str(v);
        }
    }
    let port = via.port().map(|p| format!(":{p}")).unwrap_or_default();
    let host = via.host_str();
    let received_needed = host.parse::<IpAddr>().ok() != Some(src.addr.ip());
    // Connection-oriented peers (browsers behind `.invalid`) get rport even
    // unasked: it is the only way back to them.
    if !had_rport && !received_needed && !src.transport.is_reliable() {
        return;
    }
    params.push_str(&format!(";received={}", src.addr.ip()));
    if had_rport || src.transport.is_reliable() {
        params.push_str(&format!(";rport={}", src.addr.port()));
    }
    let new = format!(
        "{}/{}/{} {host}{port}{params}",
        via.protocol(),
        via.version(),
        via.transport()
    );
    if msg.pop_via().is_ok() {
        let _ = msg.prepend_via(&new);
    }
}

/// The URI of the first Contact, if any.
fn first_contact(msg: &Message) -> Option<String> {
    match msg.contacts().ok()? {
        sip::Contacts::List(mut l) => l.next()?.ok().map(|c| c.uri().as_str().to_owned()),
        sip::Contacts::Wildcard => None,
    }
}

fn remove_last_route(msg: &mut Message) {
    // Route values may be spread over lines; rebuild the list without the last.
    let routes: Vec<String> = msg
        .routes()
        .filter_map(Result::ok)
        .map(|r| format!("<{}>", r.uri().as_str()))
        .collect();
    if routes.is_empty() {
        return;
    }
    msg.remove_headers(HeaderName::Route);
    for r in &routes[..routes.len() - 1] {
        let _ = msg.add_header("Route", r);
    }
}

/// Host and port of a URI when the host is an IP literal (or localhost).
fn uri_addr(uri: &str) -> Option<SocketAddr> {
    let u = Uri::parse_str(uri).ok()?;
    let host = u.host_str().trim_start_matches('[').trim_end_matches(']');
    let ip: IpAddr = if host.eq_ignore_ascii_case("localhost") {
        IpAddr::from([127, 0, 0, 1])
    } else {
        host.parse().ok()?
    };
    let default = if matches!(u.scheme(), sip::Scheme::Sips)
        || u.transport().is_some_and(|t| t.eq_ignore_ascii_case("tls"))
    {
        5061
    } else {
        5060
    };
    Some(SocketAddr::new(ip, u.port().unwrap_or(default)))
}

fn request_meta(msg: &Message) -> Option<RequestMeta> {
    let via = msg.top_via().ok()?;
    let cseq = msg.cseq().ok()?;
    let sent_by = match via.port() {
        Some(p) => format!("{}:{p}", via.host_str()),
        None => via.host_str().to_owned(),
    };
    Some(RequestMeta {
        method: tx::Method::parse(msg.method()?.as_str()),
        branch: via.branch().map(str::to_owned),
        sent_by,
        cseq: cseq.seq,
        call_id: msg.call_id()?.to_owned(),
        from_tag: msg.from().ok()?.tag().map(str::to_owned),
        to_tag: msg.to().ok()?.tag().map(str::to_owned),
        request_uri: msg.request_uri()?.as_str().to_owned(),
        top_via: String::from_utf8_lossy(msg.header(HeaderName::Via).unwrap_or_default())
            .into_owned(),
    })
}

/// The ACK a proxy's client transaction sends for a non-2xx final response
/// (§17.1.1.3).
fn build_ack(req: &Message, resp: &Message) -> Option<Bytes> {
    let ruri = req.request_uri()?.as_str().to_owned();
    let seq = req.cseq().ok()?.seq;
    let mut b = RequestBuilder::new(Method::Ack, &ruri)
        .header("Via", &via_text(&req.vias().next()?.ok()?))
        .header("Max-Forwards", "70")
        .header("From", req.header_str(HeaderName::From)?)
        .header("To", resp.header_str(HeaderName::To)?)
        .header("Call-ID", req.call_id()?)
        .header("CSeq", &format!("{seq} ACK"));
    for r in req.headers(HeaderName::Route) {
        b = b.header("Route", std::str::from_utf8(r).ok()?);
    }
    b.to_bytes().ok().map(Bytes::from)
}

/// A CANCEL for a request we sent (§9.1).
fn build_cancel(req: &Message) -> Option<Bytes> {
    let ruri = req.request_uri()?.as_str().to_owned();
    let seq = req.cseq().ok()?.seq;
    let mut b = RequestBuilder::new(Method::Cancel, &ruri)
        .header("Via", &via_text(&req.vias().next()?.ok()?))
        .header("Max-Forwards", "70")
        .header("From", req.header_str(HeaderName::From)?)
        .header("To", req.header_str(HeaderName::To)?)
        .header("Call-ID", req.call_id()?)
        .header("CSeq", &format!("{seq} CANCEL"));
    for r in req.headers(HeaderName::Route) {
        b = b.header("Route", std::str::from_utf8(r).ok()?);
    }
    b.to_bytes().ok().map(Bytes::from)
}

/// One Via value as text (the first of a possibly comma-joined line).
fn via_text(v: &sip::Via<'_>) -> String {
    let port = v.port().map(|p| format!(":{p}")).unwrap_or_default();
    let params = v.params_str();
    let sep = if params.is_empty() || params.starts_with(';') {
        ""
    } else {
        ";"
    };
    format!(
        "{}/{}/{} {}{port}{sep}{params}",
        v.protocol(),
        v.version(),
        v.transport(),
        v.host_str()
    )
}

#[cfg(test)]
mod message_count_tests {
    use super::*;

    fn register(transport: &str, cseq: u32) -> String {
        format!(
            "REGISTER sip:example.com SIP/2.0\r\n\
             Via: SIP/2.0/{transport} 192.0.2.1:5070;branch=z9hG4bK-reg{cseq}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:1000@example.com>;tag=a{cseq}\r\n\
             To: <sip:1000@example.com>\r\n\
             Call-ID: count-{cseq}\r\n\
             CSeq: {cseq} REGISTER\r\n\
             Contact: <sip:1000@192.0.2.1:5070>\r\n\
             Content-Length: 0\r\n\r\n"
        )
    }

    #[test]
    fn counts_by_direction_transport_and_kind() {
        let local: SocketAddr = "127.0.0.1:5060".parse().unwrap();
        let cfg = CoreConfig::new("example.com", vec![(Transport::Udp, local)]);
        let mut core = Core::new(cfg, [1; 32], 7);
        let now = Instant::now();
        let udp = Source {
            transport: Transport::Udp,
            flow: None,
            addr: "192.0.2.1:5070".parse().unwrap(),
            local,
        };
        let wss = Source {
            transport: Transport::Wss,
            flow: Some(9),
            ..udp
        };
        core.on_message(udp, Bytes::from(register("UDP", 1)), now, 1_700_000_000);
        core.on_message(wss, Bytes::from(register("WSS", 2)), now, 1_700_000_000);
        core.on_message(udp, Bytes::from_static(b"hello"), now, 1_700_000_000);
        let mut sent = Vec::new();
        while let Some(o) = core.poll_output() {
            if let Output::Send { dest, .. } = o {
                sent.push(dest);
            }
        }
        let m = &core.stats.messages;
        assert_eq!(m.get("in", "udp", "REGISTER"), 1);
        assert_eq!(m.get("in", "wss", "REGISTER"), 1);
        assert_eq!(m.get("in", "udp", "invalid"), 1);
        // Both are challenged; the WSS answer goes back over the flow.
        assert!(sent.contains(&Dest::Flow(9)), "{sent:?}");
        assert_eq!(m.get("out", "udp", "4xx"), 1, "{m:?}");
        assert_eq!(m.get("out", "wss", "4xx"), 1, "{m:?}");
        let total: u64 = core.stats.message_counts().map(|c| c.total).sum();
        assert_eq!(total, 3 + sent.len() as u64);
        assert!(core
            .stats
            .message_counts()
            .all(|c| c.total > 0 && !c.kind.is_empty()));
    }

    #[test]
    fn kinds_of_serialized_messages() {
        let kind = |b: &[u8]| MSG_KINDS[wire_kind(b)];
        assert_eq!(kind(b"INVITE sip:a@b SIP/2.0\r\n"), "INVITE");
        assert_eq!(kind(b"FOO sip:a@b SIP/2.0\r\n"), "OTHER");
        assert_eq!(kind(b"SIP/2.0 180 Ringing\r\n"), "1xx");
        assert_eq!(kind(b"SIP/2.0 603 Decline\r\n"), "6xx");
        assert_eq!(kind(b"SIP/2.0 999 What\r\n"), "invalid");
        assert_eq!(kind(b""), "invalid");
        assert_eq!(MSG_KINDS[status_kind(486)], "4xx");
        assert_eq!(MSG_KINDS[method_kind(&Method::Other("X".into()))], "OTHER");
        assert_eq!(MSG_KINDS[KIND_INVALID], "invalid");
    }
}
