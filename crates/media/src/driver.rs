//! The fallback I/O driver of the relay: tokio UDP sockets (epoll),
//! one per local port of a leg, around the sans-IO [`Relay`].
//!
//! - Every port the relay opens ([`PortChange::Opened`]) gets a bound
//!   socket and a receive task: it reads a datagram into its own buffer,
//!   runs [`Relay::handle_packet`] under the relay's lock and sends the
//!   outputs with `try_send_to` from the sockets of their local ports.
//! - A timer task runs [`Relay::handle_timeout`] at
//!   [`Relay::poll_timeout`] (and at least every [`TICK`], since packets
//!   move the deadlines) and forwards [`RelayEvent`]s.
//! - A control task serves [`RelayHandle`]'s async methods from a channel,
//!   so signalling never touches sockets or the lock itself.
//!
//! One lock around the relay is fine for the fallback; the io_uring data
//! path (see [`DataPath`]) will shard sessions over worker threads.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::task::JoinHandle;

use crate::session::{
    OfferOptions, Outputs, PortChange, Relay, RelayError, RelayEvent, SessionStats, Side,
};

/// The longest the timer task sleeps between checks.
pub const TICK: Duration = Duration::from_millis(100);

/// Largest datagram read; anything longer is truncated (and fails SRTP).
const RECV_BUFFER: usize = 2048;

/// Which data path moves the packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataPath {
    /// tokio UDP sockets over epoll, one receive task per port.
    TokioEpoll,
    // IO_URING: the io_uring data path goes here (multishot recvmsg into
    // registered buffers, batched sendmsg, a worker thread per core owning
    // a share of the sessions). `choose_data_path` will probe the kernel
    // for it and fall back to `TokioEpoll`.
}

impl fmt::Display for DataPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataPath::TokioEpoll => f.write_str("tokio/epoll (fallback)"),
        }
    }
}

/// The data path this build and kernel run.
pub fn choose_data_path() -> DataPath {
    // IO_URING: probe io_uring support (IORING_FEAT_*, multishot recv) here
    // and return DataPath::IoUring when available.
    DataPath::TokioEpoll
}

/// Why a handle call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DriverError {
    /// The relay refused the call.
    #[error(transparent)]
    Relay(#[from] RelayError),
    /// The driver has stopped.
    #[error("the media relay driver has stopped")]
    Stopped,
}

enum Command {
    Offer {
        id: String,
        side: Side,
        sdp: String,
        options: OfferOptions,
        reply: oneshot::Sender<Result<String, RelayError>>,
    },
    Answer {
        id: String,
        side: Side,
        sdp: String,
        reply: oneshot::Sender<Result<String, RelayError>>,
    },
    Delete {
        id: String,
        reply: oneshot::Sender<bool>,
    },
    Stats {
        id: String,
        reply: oneshot::Sender<Option<SessionStats>>,
    },
}

/// The control API of a running relay; cheap to clone.
#[derive(Clone)]
pub struct RelayHandle {
    tx: mpsc::Sender<Command>,
    shared: Arc<Shared>,
}

impl fmt::Debug for RelayHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RelayHandle")
            .field("bind_ip", &self.shared.bind_ip)
            .finish_non_exhaustive()
    }
}

impl RelayHandle {
    /// Runs `f` on the relay synchronously, for callers that must not
    /// await (the signalling core's media hook): takes the relay's lock
    /// (held only for packet processing elsewhere, never across I/O), then
    /// opens and closes the sockets of the ports `f` allocated or freed
    /// (non-blocking binds) and wakes the timer. Must be called inside the
    /// tokio runtime the driver was spawned on (receive tasks are spawned).
    pub fn with_relay<R>(&self, f: impl FnOnce(&mut Relay, Instant) -> R) -> R {
        let mut relay = self.shared.relay();
        let r = f(&mut relay, Instant::now());
        self.shared.settle(&mut relay);
        drop(relay);
        self.shared.wake.notify_one();
        r
    }

    /// [`Relay::offer`].
    pub async fn offer(&self, id: &str, side: Side, sdp: &str) -> Result<String, DriverError> {
        self.offer_with(id, side, sdp, OfferOptions::default())
            .await
    }

    /// [`Relay::offer_with`].
    pub async fn offer_with(
        &self,
        id: &str,
        side: Side,
        sdp: &str,
        options: OfferOptions,
    ) -> Result<String, DriverError> {
        let (reply, rx) = oneshot::channel();
        self.call(
            Command::Offer {
                id: id.to_owned(),
                side,
                sdp: sdp.to_owned(),
                options,
                reply,
            },
            rx,
        )
        .await?
        .map_err(DriverError::Relay)
    }

    /// [`Relay::answer`].
    pub async fn answer(&self, id: &str, side: Side, sdp: &str) -> Result<String, DriverError> {
        let (reply, rx) = oneshot::channel();
        self.call(
            Command::Answer {
                id: id.to_owned(),
                side,
                sdp: sdp.to_owned(),
                reply,
            },
            rx,
        )
        .await?
        .map_err(DriverError::Relay)
    }

    /// [`Relay::delete`].
    pub async fn delete(&self, id: &str) -> Result<bool, DriverError> {
        let (reply, rx) = oneshot::channel();
        let id = id.to_owned();
        self.call(Command::Delete { id, reply }, rx).await
    }

    /// [`Relay::stats`].
    pub async fn stats(&self, id: &str) -> Result<Option<SessionStats>, DriverError> {
        let (reply, rx) = oneshot::channel();
        let id = id.to_owned();
        self.call(Command::Stats { id, reply }, rx).await
    }

    async fn call<T>(&self, cmd: Command, rx: oneshot::Receiver<T>) -> Result<T, DriverError> {
        self.tx.send(cmd).await.map_err(|_| DriverError::Stopped)?;
        rx.await.map_err(|_| DriverError::Stopped)
    }
}

struct Shared {
    relay: Mutex<Relay>,
    sockets: RwLock<HashMap<u16, Arc<UdpSocket>>>,
    receivers: Mutex<HashMap<u16, JoinHandle<()>>>,
    wake: Notify,
    events: mpsc::UnboundedSender<RelayEvent>,
    bind_ip: IpAddr,
}

impl Shared {
    fn relay(&self) -> MutexGuard<'_, Relay> {
        self.relay.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn send(&self, outputs: Outputs<'_>) {
        if outputs.is_empty() {
            return;
        }
        let sockets = self.sockets.read().unwrap_or_else(PoisonError::into_inner);
        for d in outputs.iter() {
            let Some(socket) = sockets.get(&d.local_port) else {
                continue;
            };
            if let Err(e) = socket.try_send_to(d.data, d.to) {
                // A full socket buffer drops the packet, as the network would.
                tracing::trace!(port = d.local_port, to = %d.to, error = %e, "send failed");
            }
        }
    }

    /// Binds and closes sockets as the relay asks, and forwards events.
    /// Called with the relay locked.
    fn settle(self: &Arc<Self>, relay: &mut Relay) {
        while let Some(change) = relay.poll_port_change() {
            match change {
                PortChange::Opened(port) => self.open(port),
                PortChange::Closed(port) => self.close(port),
            }
        }
        while let Some(event) = relay.poll_event() {
            let _ = self.events.send(event);
        }
    }

    fn open(self: &Arc<Self>, port: u16) {
        let socket = match bind(SocketAddr::new(self.bind_ip, port)) {
            Ok(s) => Arc::new(s),
            Err(e) => {
                tracing::warn!(port, error = %e, "cannot bind media port");
                return;
            }
        };
        self.sockets
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(port, socket.clone());
        let task = tokio::spawn(receive(self.clone(), port, socket));
        if let Some(old) = self.receivers().insert(port, task) {
            old.abort();
        }
    }

    fn close(&self, port: u16) {
        self.sockets
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&port);
        if let Some(task) = self.receivers().remove(&port) {
            task.abort();
        }
    }

    fn receivers(&self) -> MutexGuard<'_, HashMap<u16, JoinHandle<()>>> {
        self.receivers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

fn bind(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = std::net::UdpSocket::bind(addr)?;
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket)
}

/// Starts the driver on the current tokio runtime. Returns the control
/// handle and the events signalling acts on ([`RelayEvent::Timeout`]...).
/// Sockets bind to `bind_ip` (e.g. `0.0.0.0`) on the relay's ports. The
/// driver stops when every handle is dropped.
pub fn spawn(relay: Relay, bind_ip: IpAddr) -> (RelayHandle, mpsc::UnboundedReceiver<RelayEvent>) {
    let path = choose_data_path();
    let ports = relay.config().ports.clone();
    tracing::info!(
        data_path = %path,
        ports = ?ports,
        advertised = %relay.config().advertised_ip,
        "media relay started"
    );
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let (tx, rx) = mpsc::channel(256);
    let shared = Arc::new(Shared {
        relay: Mutex::new(relay),
        sockets: RwLock::new(HashMap::new()),
        receivers: Mutex::new(HashMap::new()),
        wake: Notify::new(),
        events: events_tx,
        bind_ip,
    });
    match path {
        DataPath::TokioEpoll => {
            tokio::spawn(control(shared.clone(), rx));
        } // IO_URING: start the io_uring workers here instead.
    }
    (RelayHandle { tx, shared }, events_rx)
}

async fn control(shared: Arc<Shared>, mut rx: mpsc::Receiver<Command>) {
    let timer = tokio::spawn(timer(shared.clone()));
    while let Some(cmd) = rx.recv().await {
        let now = Instant::now();
        let mut relay = shared.relay();
        match cmd {
            Command::Offer {
                id,
                side,
                sdp,
                options,
                reply,
            } => {
                let _ = reply.send(relay.offer_with(&id, side, &sdp, options, now));
            }
            Command::Answer {
                id,
                side,
                sdp,
                reply,
            } => {
                let _ = reply.send(relay.answer(&id, side, &sdp, now));
            }
            Command::Delete { id, reply } => {
                let _ = reply.send(relay.delete(&id));
            }
            Command::Stats { id, reply } => {
                let _ = reply.send(relay.stats(&id));
            }
        }
        shared.settle(&mut relay);
        drop(relay);
        shared.wake.notify_one();
    }
    timer.abort();
    let ports: Vec<u16> = shared.receivers().keys().copied().collect();
    for port in ports {
        shared.close(port);
    }
    tracing::info!("media relay stopped");
}

async fn timer(shared: Arc<Shared>) {
    loop {
        let cap = Instant::now() + TICK;
        let at = shared.relay().poll_timeout().map_or(cap, |t| t.min(cap));
        tokio::select! {
            () = tokio::time::sleep_until(at.into()) => {}
            () = shared.wake.notified() => {}
        }
        let mut relay = shared.relay();
        let outputs = relay.handle_timeout(Instant::now());
        shared.send(outputs);
        shared.settle(&mut relay);
    }
}

async fn receive(shared: Arc<Shared>, port: u16, socket: Arc<UdpSocket>) {
    let mut buf = vec![0u8; RECV_BUFFER];
    loop {
        let (len, from) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                // ICMP errors surface here on some systems; keep reading.
                tracing::debug!(port, error = %e, "receive failed");
                tokio::task::yield_now().await;
                continue;
            }
        };
        let mut relay = shared.relay();
        let outputs = relay.handle_packet(port, from, &buf[..len], Instant::now());
        shared.send(outputs);
        shared.settle(&mut relay);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cert::DtlsCertificate;
    use crate::session::{LegKind, RelayConfig};
    use sdp::SessionDescription;

    fn plain_sdp(addr: SocketAddr) -> String {
        format!(
            "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
             m=audio {port} RTP/AVP 0\r\n",
            ip = addr.ip(),
            port = addr.port()
        )
    }

    fn port_of(sdp: &str) -> u16 {
        SessionDescription::parse(sdp).unwrap().media[0].port()
    }

    async fn recv(socket: &tokio::net::UdpSocket) -> (Vec<u8>, SocketAddr) {
        let mut buf = [0u8; 1500];
        let (len, from) = tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buf))
            .await
            .expect("a relayed packet")
            .unwrap();
        (buf[..len].to_vec(), from)
    }

    /// Plain ↔ plain over loopback sockets: packets flow both ways, stats
    /// count them, delete closes the ports.
    #[tokio::test]
    async fn plain_to_plain_over_loopback() {
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        let mut config = RelayConfig::new(loopback);
        config.ports = 47000..=47999;
        let relay = Relay::new(config, DtlsCertificate::process().unwrap().clone());
        let (handle, _events) = spawn(relay, loopback);

        let a = tokio::net::UdpSocket::bind((loopback, 0)).await.unwrap();
        let b = tokio::net::UdpSocket::bind((loopback, 0)).await.unwrap();
        let options = OfferOptions {
            peer: Some(LegKind::Plain),
        };
        let to_b = handle
            .offer_with(
                "call",
                Side::A,
                &plain_sdp(a.local_addr().unwrap()),
                options,
            )
            .await
            .unwrap();
        let to_a = handle
            .answer("call", Side::B, &plain_sdp(b.local_addr().unwrap()))
            .await
            .unwrap();
        let relay_a = SocketAddr::new(loopback, port_of(&to_a));
        let relay_b = SocketAddr::new(loopback, port_of(&to_b));

        let packet = [0x80, 0, 0, 1, 0, 0, 0, 160, 0, 0, 0, 42, b'h', b'i'];
        a.send_to(&packet, relay_a).await.unwrap();
        let (got, from) = recv(&b).await;
        assert_eq!((got.as_slice(), from), (&packet[..], relay_b));

        let reply = [0x80, 0, 0, 1, 0, 0, 0, 160, 0, 0, 0, 43, b'y', b'o'];
        b.send_to(&reply, relay_b).await.unwrap();
        let (got, from) = recv(&a).await;
        assert_eq!((got.as_slice(), from), (&reply[..], relay_a));

        let stats = handle.stats("call").await.unwrap().unwrap();
        assert_eq!(stats.legs[0].packets_in, 1);
        assert_eq!(stats.legs[0].packets_out, 1);
        assert_eq!(stats.legs[1].packets_in, 1);

        assert!(handle.delete("call").await.unwrap());
        assert_eq!(handle.stats("call").await.unwrap(), None);
        // The port is closed: it can be bound again.
        tokio::time::sleep(Duration::from_millis(20)).await;
        std::net::UdpSocket::bind(relay_a).unwrap();
    }

    /// The synchronous accessor opens the ports the relay allocates and
    /// closes them on delete, like the async control calls.
    #[tokio::test]
    async fn with_relay_opens_and_closes_ports() {
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        let mut config = RelayConfig::new(loopback);
        config.ports = 46000..=46999;
        let relay = Relay::new(config, DtlsCertificate::process().unwrap().clone());
        let (handle, _events) = spawn(relay, loopback);
        let a = tokio::net::UdpSocket::bind((loopback, 0)).await.unwrap();
        let b = tokio::net::UdpSocket::bind((loopback, 0)).await.unwrap();
        let options = OfferOptions {
            peer: Some(LegKind::Plain),
        };
        let offer = plain_sdp(a.local_addr().unwrap());
        let to_b = handle
            .with_relay(|r, now| r.offer_with("sync", Side::A, &offer, options, now))
            .unwrap();
        let answer = plain_sdp(b.local_addr().unwrap());
        let to_a = handle
            .with_relay(|r, now| r.answer("sync", Side::B, &answer, now))
            .unwrap();
        let relay_a = SocketAddr::new(loopback, port_of(&to_a));
        let relay_b = SocketAddr::new(loopback, port_of(&to_b));
        assert!(std::net::UdpSocket::bind(relay_a).is_err(), "port open");

        let packet = [0x80, 0, 0, 1, 0, 0, 0, 160, 0, 0, 0, 42, b'h', b'i'];
        a.send_to(&packet, relay_a).await.unwrap();
        let (got, from) = recv(&b).await;
        assert_eq!((got.as_slice(), from), (&packet[..], relay_b));

        assert!(handle.with_relay(|r, _| r.delete("sync")));
        tokio::time::sleep(Duration::from_millis(20)).await;
        std::net::UdpSocket::bind(relay_a).unwrap();
    }
}
