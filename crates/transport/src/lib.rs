//! SIP transports on tokio: UDP, TCP, TLS, WS and WSS.
//!
//! The transport layer only moves whole SIP messages. It frames stream
//! transports (Content-Length on TCP/TLS, one message per WebSocket message
//! as RFC 7118 says), answers RFC 5626 CRLFCRLF keep-alives, and keeps a
//! connection table where every connection is a *flow* with an id. Parsing
//! and everything above it happen in the caller, which receives [`Event`]s
//! and sends through [`Transports::send`].
//!
//! Everything a peer can influence is bounded: connections in total and per
//! source IP, message size, TLS and WebSocket handshake time, time a partial
//! message may sit in a buffer (slowloris), and idle time.

pub mod tls;

mod conn;
mod udp;

use bytes::Bytes;
use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// A SIP transport protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
    Ws,
    Wss,
}

impl Transport {
    /// Whether the transport is reliable (RFC 3261 §17 timers differ).
    pub fn is_reliable(self) -> bool {
        !matches!(self, Transport::Udp)
    }

    /// The token used in Via (`SIP/2.0/WSS`).
    pub fn via_token(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
            Transport::Ws => "WS",
            Transport::Wss => "WSS",
        }
    }

    /// The value of a URI `transport=` parameter.
    pub fn param(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
            Transport::Ws => "ws",
            Transport::Wss => "wss",
        }
    }

    /// Parses a Via token or `transport=` value, case-insensitively.
    pub fn from_token(s: &str) -> Option<Transport> {
        Some(match s.to_ascii_lowercase().as_str() {
            "udp" => Transport::Udp,
            "tcp" => Transport::Tcp,
            "tls" => Transport::Tls,
            "ws" => Transport::Ws,
            "wss" => Transport::Wss,
            _ => return None,
        })
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.param())
    }
}

/// Identity of one connection (RFC 5626 flow). Never reused in a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowId(pub u64);

impl fmt::Display for FlowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A whole SIP message as it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    pub transport: Transport,
    /// The connection it came on; `None` for UDP.
    pub flow: Option<FlowId>,
    pub source: SocketAddr,
    pub local: SocketAddr,
    pub data: Bytes,
}

/// What the transport layer reports to the SIP core.
#[derive(Debug)]
pub enum Event {
    Message(Received),
    /// A connection ended; bindings on it are now unreachable.
    FlowClosed {
        flow: FlowId,
        transport: Transport,
        peer: SocketAddr,
    },
}

/// Where to send a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Over an existing connection and nothing else.
    Flow(FlowId),
    /// To an address: reuses a connection to it when one exists, opens a new
    /// one for TCP/TLS otherwise. WS/WSS peers can only be reached by flow.
    Addr(Transport, SocketAddr),
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("flow {0} is gone")]
    FlowGone(FlowId),
    #[error("no {0} listener to send from")]
    NoListener(Transport),
    #[error("{0} peers can only be reached over an existing connection")]
    NotConnectable(Transport),
    #[error("connection limit reached")]
    Limit,
    #[error("connect to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("send: {0}")]
    Io(#[from] std::io::Error),
}

/// Bounds on connections; defaults suit an appliance with a few thousand
/// browsers.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_connections: usize,
    pub max_per_ip: usize,
    pub max_message: usize,
    /// A connection with no complete message or keep-alive for this long is
    /// closed. Browsers are kept busy by our WebSocket pings.
    pub idle_timeout: Duration,
    /// TLS plus WebSocket handshake must finish within this.
    pub handshake_timeout: Duration,
    /// A started message must complete within this (slowloris bound).
    pub partial_timeout: Duration,
    pub ws_ping_interval: Duration,
    /// Messages queued toward one connection before it is considered stuck.
    pub send_queue: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 20_000,
            max_per_ip: 1_000,
            max_message: 65_535,
            idle_timeout: Duration::from_secs(600),
            handshake_timeout: Duration::from_secs(10),
            partial_timeout: Duration::from_secs(30),
            ws_ping_interval: Duration::from_secs(30),
            send_queue: 256,
        }
    }
}

/// Listener addresses and TLS material.
#[derive(Clone, Default)]
pub struct Config {
    pub udp: Vec<SocketAddr>,
    pub tcp: Vec<SocketAddr>,
    pub tls: Vec<SocketAddr>,
    pub ws: Vec<SocketAddr>,
    pub wss: Vec<SocketAddr>,
    pub server_tls: Option<Arc<rustls::ServerConfig>>,
    /// Used for outgoing TLS (trunks). `None` disables outgoing TLS.
    pub client_tls: Option<Arc<rustls::ClientConfig>>,
    pub limits: Limits,
}

/// Counters an operator wants to see; all monotonic.
#[derive(Debug, Default)]
pub struct Counters {
    pub accepted: AtomicU64,
    pub refused_limit: AtomicU64,
    pub handshake_failed: AtomicU64,
    pub oversize: AtomicU64,
    pub slow_closed: AtomicU64,
    pub idle_closed: AtomicU64,
    pub keepalives: AtomicU64,
    pub ws_refused_subprotocol: AtomicU64,
}

pub(crate) struct ConnEntry {
    pub tx: mpsc::Sender<Bytes>,
    pub transport: Transport,
    pub peer: SocketAddr,
    pub local: SocketAddr,
}

#[derive(Default)]
pub(crate) struct Table {
    pub by_flow: HashMap<FlowId, ConnEntry>,
    pub by_peer: HashMap<(Transport, SocketAddr), FlowId>,
    pub per_ip: HashMap<IpAddr, usize>,
}

pub(crate) struct Inner {
    pub table: Mutex<Table>,
    pub next_flow: AtomicU64,
    pub events: mpsc::Sender<Event>,
    pub limits: Limits,
    pub counters: Counters,
    pub udp: Vec<(SocketAddr, Arc<tokio::net::UdpSocket>)>,
    pub client_tls: Option<Arc<rustls::ClientConfig>>,
    /// Certificate names of outgoing TLS peers by address (trunks are
    /// configured by host name, connected to by address).
    pub tls_names: std::sync::RwLock<HashMap<SocketAddr, String>>,
    pub local: Vec<(Transport, SocketAddr)>,
}

impl Inner {
    /// Reserves a slot for a new connection from `ip`, or refuses.
    pub fn admit(&self, ip: IpAddr) -> bool {
        let mut t = self.table.lock().unwrap();
        let total: usize = t.per_ip.values().sum();
        let n = t.per_ip.entry(ip).or_insert(0);
        if total >= self.limits.max_connections || *n >= self.limits.max_per_ip {
            self.counters.refused_limit.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        *n += 1;
        true
    }

    /// Gives back a slot reserved by `admit`.
    pub fn release(&self, ip: IpAddr) {
        let mut t = self.table.lock().unwrap();
        if let Some(n) = t.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                t.per_ip.remove(&ip);
            }
        }
    }

    pub fn register(&self, entry: ConnEntry) -> FlowId {
        let flow = FlowId(self.next_flow.fetch_add(1, Ordering::Relaxed));
        let mut t = self.table.lock().unwrap();
        t.by_peer.insert((entry.transport, entry.peer), flow);
        t.by_flow.insert(flow, entry);
        flow
    }

    pub fn unregister(&self, flow: FlowId) -> Option<(Transport, SocketAddr)> {
        let mut t = self.table.lock().unwrap();
        let entry = t.by_flow.remove(&flow)?;
        let key = (entry.transport, entry.peer);
        if t.by_peer.get(&key) == Some(&flow) {
            t.by_peer.remove(&key);
        }
        Some(key)
    }
}

/// Handle to the running transports; cheap to clone.
#[derive(Clone)]
pub struct Transports {
    inner: Arc<Inner>,
}

/// Information about a live connection.
#[derive(Debug, Clone, Copy)]
pub struct FlowInfo {
    pub transport: Transport,
    pub peer: SocketAddr,
    pub local: SocketAddr,
}

impl Transports {
    /// Binds every listener and starts its tasks on the current runtime.
    /// Fails if any address cannot be bound, naming it.
    pub async fn start(config: Config) -> std::io::Result<(Transports, mpsc::Receiver<Event>)> {
        let (events, rx) = mpsc::channel(8192);
        let mut udp = Vec::new();
        let mut local = Vec::new();
        for addr in &config.udp {
            let sock = Arc::new(bind_udp(*addr).map_err(|e| named(e, Transport::Udp, *addr))?);
            let bound = sock.local_addr()?;
            local.push((Transport::Udp, bound));
            udp.push((bound, sock));
        }
        let mut listeners = Vec::new();
        for (transport, addrs) in [
            (Transport::Tcp, &config.tcp),
            (Transport::Tls, &config.tls),
            (Transport::Ws, &config.ws),
            (Transport::Wss, &config.wss),
        ] {
            for addr in addrs {
                let l = tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|e| named(e, transport, *addr))?;
                local.push((transport, l.local_addr()?));
                listeners.push((transport, l));
            }
        }
        let needs_tls = listeners
            .iter()
            .any(|(t, _)| matches!(t, Transport::Tls | Transport::Wss));
        if needs_tls && config.server_tls.is_none() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "TLS/WSS listeners need a certificate",
            ));
        }
        let inner = Arc::new(Inner {
            table: Mutex::new(Table::default()),
            next_flow: AtomicU64::new(1),
            events,
            limits: config.limits.clone(),
            counters: Counters::default(),
            udp: udp.clone(),
            client_tls: config.client_tls.clone(),
            tls_names: Default::default(),
            local,
        });
        for (bound, sock) in udp {
            tokio::spawn(udp::recv_loop(inner.clone(), bound, sock));
        }
        for (transport, listener) in listeners {
            let acceptor = config
                .server_tls
                .clone()
                .map(tokio_rustls::TlsAcceptor::from);
            tokio::spawn(conn::accept_loop(
                inner.clone(),
                transport,
                listener,
                acceptor,
            ));
        }
        Ok((Transports { inner }, rx))
    }

    /// The bound addresses (ports resolved when 0 was configured).
    /// Sets the names outgoing TLS connections verify the peer's
    /// certificate against, by peer address; other peers are verified by
    /// their IP address.
    pub fn set_tls_names(&self, names: impl IntoIterator<Item = (SocketAddr, String)>) {
        let mut map = self
            .inner
            .tls_names
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.clear();
        map.extend(names);
    }

    pub fn local_addrs(&self) -> &[(Transport, SocketAddr)] {
        &self.inner.local
    }

    /// The first bound address of a transport.
    pub fn local_addr(&self, transport: Transport) -> Option<SocketAddr> {
        self.inner
            .local
            .iter()
            .find(|(t, _)| *t == transport)
            .map(|(_, a)| *a)
    }

    pub fn counters(&self) -> &Counters {
        &self.inner.counters
    }

    /// Whether a flow is still connected.
    pub fn flow_info(&self, flow: FlowId) -> Option<FlowInfo> {
        let t = self.inner.table.lock().unwrap();
        t.by_flow.get(&flow).map(|e| FlowInfo {
            transport: e.transport,
            peer: e.peer,
            local: e.local,
        })
    }

    /// Number of open connections.
    pub fn connection_count(&self) -> usize {
        self.inner.table.lock().unwrap().by_flow.len()
    }

    /// Sends one whole message.
    pub async fn send(&self, target: Target, data: Bytes) -> Result<(), SendError> {
        match target {
            Target::Flow(flow) => self.send_flow(flow, data),
            Target::Addr(Transport::Udp, addr) => {
                let sock = self
                    .inner
                    .udp
                    .iter()
                    .find(|(l, _)| l.is_ipv4() == addr.is_ipv4())
                    .or_else(|| self.inner.udp.first())
                    .ok_or(SendError::NoListener(Transport::Udp))?;
                sock.1.send_to(&data, addr).await?;
                Ok(())
            }
            Target::Addr(transport, addr) => {
                let existing = self
                    .inner
                    .table
                    .lock()
                    .unwrap()
                    .by_peer
                    .get(&(transport, addr))
                    .copied();
                if let Some(flow) = existing {
                    if self.send_flow(flow, data.clone()).is_ok() {
                        return Ok(());
                    }
                }
                let flow = match transport {
                    Transport::Tcp | Transport::Tls => {
                        conn::connect(self.inner.clone(), transport, addr).await?
                    }
                    _ => return Err(SendError::NotConnectable(transport)),
                };
                self.send_flow(flow, data)
            }
        }
    }

    fn send_flow(&self, flow: FlowId, data: Bytes) -> Result<(), SendError> {
        let t = self.inner.table.lock().unwrap();
        let entry = t.by_flow.get(&flow).ok_or(SendError::FlowGone(flow))?;
        // A peer that does not drain its queue is stuck; dropping the message
        // beats blocking the whole SIP core on it.
        entry
            .tx
            .try_send(data)
            .map_err(|_| SendError::FlowGone(flow))
    }

    /// Sends from a specific UDP listener (responses go out the socket the
    /// request came in on, RFC 3261 §18.2.2).
    pub async fn send_udp_from(
        &self,
        local: SocketAddr,
        to: SocketAddr,
        data: &[u8],
    ) -> Result<(), SendError> {
        let sock = self
            .inner
            .udp
            .iter()
            .find(|(l, _)| *l == local)
            .or_else(|| self.inner.udp.first())
            .ok_or(SendError::NoListener(Transport::Udp))?;
        sock.1.send_to(data, to).await?;
        Ok(())
    }

    /// Closes a connection (forced unregister, policy).
    pub fn close(&self, flow: FlowId) {
        // Dropping the sender ends the connection task, which reports
        // FlowClosed.
        self.inner.unregister(flow);
    }
}

fn named(e: std::io::Error, t: Transport, addr: SocketAddr) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("bind {t} {addr}: {e}"))
}

fn bind_udp(addr: SocketAddr) -> std::io::Result<tokio::net::UdpSocket> {
    let std_sock = std::net::UdpSocket::bind(addr)?;
    std_sock.set_nonblocking(true)?;
    tokio::net::UdpSocket::from_std(std_sock)
}

/// True for a keep-alive datagram or stream fragment: only CR/LF bytes.
pub(crate) fn is_keepalive(b: &[u8]) -> bool {
    !b.is_empty() && b.iter().all(|&c| c == b'\r' || c == b'\n')
}
