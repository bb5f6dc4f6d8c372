//! The I/O drivers of the relay: the io_uring data path (Linux worker
//! threads, `driver/uring.rs`) and the tokio/epoll fallback, behind one
//! [`RelayHandle`].
//!
//! **io_uring** ([`DataPath::IoUring`]): sessions are sharded over worker
//! threads, one per core by default. Each worker owns a [`Relay`] with its
//! own share of the port range, that share's sockets and an io_uring:
//! multishot recvmsg into a provided buffer ring, outputs of a batch of
//! completions queued as SendMsg from pre-allocated slots and submitted
//! together. [`RelayHandle::with_session`] routes control calls to the
//! shard owning the session.
//!
//! **Fallback** ([`DataPath::TokioEpoll`]), one [`Relay`] behind a lock:
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
//! On both paths a control call binds the sockets of the ports it opened
//! before its SDP is returned. A port that cannot be bound (another
//! process holds it) is never advertised: it is quarantined for
//! [`PORT_QUARANTINE`] and the call runs again on fresh ports, or fails
//! with [`RelayError::PortsUnavailable`] (see [`RelayHandle::with_relay`]).
//!
//! [`choose_data_path`] probes the kernel at startup; [`DATA_PATH_ENV`]
//! forces either path.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, RwLock};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::task::JoinHandle;

use crate::cert::DtlsCertificate;
use crate::session::{
    OfferOptions, Outputs, PortChange, Relay, RelayConfig, RelayError, RelayEvent, SessionStats,
    Side,
};

#[cfg(target_os = "linux")]
mod uring;

/// The longest a timer (task or worker) sleeps between checks.
pub const TICK: Duration = Duration::from_millis(100);

/// Largest datagram read; anything longer is truncated (and fails SRTP).
const RECV_BUFFER: usize = 2048;

/// How long a port that could not be bound (another process holds it)
/// stays out of allocation ([`Relay::quarantine_port`]).
pub const PORT_QUARANTINE: Duration = Duration::from_secs(60);

/// How many times a control call runs with fresh ports when a port it
/// opened could not be bound, before it is refused.
pub const BIND_ATTEMPTS: usize = 16;

/// The environment variable that forces a data path: `epoll` or
/// `io_uring` (which still falls back when the kernel refuses it).
pub const DATA_PATH_ENV: &str = "CALLGATE_DATA_PATH";

/// Which data path moves the packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataPath {
    /// tokio UDP sockets over epoll, one receive task per port.
    TokioEpoll,
    /// Worker threads each owning a shard of the sessions and an io_uring
    /// (multishot recvmsg into a provided buffer ring, batched sendmsg).
    IoUring,
}

impl fmt::Display for DataPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataPath::TokioEpoll => f.write_str("tokio/epoll (fallback)"),
            DataPath::IoUring => f.write_str("io_uring"),
        }
    }
}

impl std::str::FromStr for DataPath {
    type Err = String;

    /// `epoll` (or `tokio`), `io_uring` (or `io-uring`, `uring`).
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "epoll" | "tokio" | "tokio/epoll" => Ok(DataPath::TokioEpoll),
            "io_uring" | "io-uring" | "iouring" | "uring" => Ok(DataPath::IoUring),
            other => Err(format!("unknown data path {other:?} (epoll or io_uring)")),
        }
    }
}

/// Whether the io_uring data path can run here; the reason if not (old
/// kernel, seccomp forbidding io_uring, not Linux). Probed once.
pub fn io_uring_support() -> Result<(), String> {
    static PROBE: OnceLock<Result<(), String>> = OnceLock::new();
    PROBE
        .get_or_init(|| {
            #[cfg(target_os = "linux")]
            {
                uring::probe().map_err(|e| e.to_string())
            }
            #[cfg(not(target_os = "linux"))]
            {
                Err("io_uring needs Linux".to_owned())
            }
        })
        .clone()
}

/// The data path this build and kernel run: [`DATA_PATH_ENV`] if set,
/// else io_uring when [`io_uring_support`] says so, else the fallback.
pub fn choose_data_path() -> DataPath {
    let wanted = match std::env::var(DATA_PATH_ENV) {
        Ok(v) => match v.parse::<DataPath>() {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::warn!(variable = DATA_PATH_ENV, error = %e, "ignored");
                None
            }
        },
        Err(_) => None,
    };
    usable(wanted.unwrap_or(DataPath::IoUring))
}

/// `path`, or the fallback if it is io_uring and that cannot run.
fn usable(path: DataPath) -> DataPath {
    match path {
        DataPath::TokioEpoll => DataPath::TokioEpoll,
        DataPath::IoUring => match io_uring_support() {
            Ok(()) => DataPath::IoUring,
            Err(reason) => {
                tracing::info!(%reason, "io_uring unavailable: using the epoll data path");
                DataPath::TokioEpoll
            }
        },
    }
}

/// Options of [`spawn_sharded`].
#[derive(Debug, Clone, Default)]
pub struct DriverOptions {
    /// The data path; `None` lets [`choose_data_path`] pick. io_uring
    /// still falls back to epoll when the kernel refuses it.
    pub data_path: Option<DataPath>,
    /// io_uring workers (shards); `None` is one per available core. The
    /// fallback always runs one shard.
    pub workers: Option<usize>,
}

/// Counters of one worker (the fallback reports one), for liveness and
/// metrics. All are totals since start except `sessions`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerStats {
    /// Loop iterations (the fallback: timer wakeups). A live worker
    /// advances it at least every [`TICK`].
    pub heartbeat: u64,
    /// Milliseconds from the driver's start to the latest iteration.
    pub last_beat_ms: u64,
    /// Sessions on this shard.
    pub sessions: u64,
    /// Datagrams received.
    pub packets_in: u64,
    /// Their payload bytes.
    pub bytes_in: u64,
    /// Datagrams sent (or attempted).
    pub packets_out: u64,
    /// Their bytes.
    pub bytes_out: u64,
    /// Sends that failed.
    pub send_errors: u64,
    /// Receives that ended in an error (ICMP unreachable...).
    pub recv_errors: u64,
    /// Times the receive buffer ring ran dry (io_uring): datagrams waited
    /// in socket buffers meanwhile, dropped only if those filled up.
    pub recv_no_buffers: u64,
    /// Time spent processing rather than waiting, in nanoseconds. On
    /// io_uring the sends happen inside the kernel wait and are not in it;
    /// on the fallback they are.
    pub busy_nanos: u64,
}

/// Per-batch tallies a worker adds to its [`WorkerCounters`] at once.
#[derive(Debug, Default)]
struct BatchCounts {
    packets_in: u64,
    bytes_in: u64,
    packets_out: u64,
    bytes_out: u64,
    send_errors: u64,
    recv_errors: u64,
    recv_no_buffers: u64,
}

/// The shared side of [`WorkerStats`].
#[derive(Debug, Default)]
struct WorkerCounters {
    heartbeat: AtomicU64,
    last_beat_ms: AtomicU64,
    sessions: AtomicU64,
    packets_in: AtomicU64,
    bytes_in: AtomicU64,
    packets_out: AtomicU64,
    bytes_out: AtomicU64,
    send_errors: AtomicU64,
    recv_errors: AtomicU64,
    recv_no_buffers: AtomicU64,
    busy_nanos: AtomicU64,
}

impl WorkerCounters {
    fn beat(&self, started: Instant) {
        self.heartbeat.fetch_add(1, Ordering::Relaxed);
        let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_beat_ms.store(ms, Ordering::Relaxed);
    }

    fn add(&self, b: &BatchCounts) {
        for (counter, n) in [
            (&self.packets_in, b.packets_in),
            (&self.bytes_in, b.bytes_in),
            (&self.packets_out, b.packets_out),
            (&self.bytes_out, b.bytes_out),
            (&self.send_errors, b.send_errors),
            (&self.recv_errors, b.recv_errors),
            (&self.recv_no_buffers, b.recv_no_buffers),
        ] {
            if n != 0 {
                counter.fetch_add(n, Ordering::Relaxed);
            }
        }
    }

    fn add_busy(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.busy_nanos.fetch_add(ns, Ordering::Relaxed);
    }

    fn set_sessions(&self, n: usize) {
        self.sessions.store(n as u64, Ordering::Relaxed);
    }

    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    fn sessions(&self) -> u64 {
        self.sessions.load(Ordering::Relaxed)
    }

    fn snapshot(&self) -> WorkerStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        WorkerStats {
            heartbeat: get(&self.heartbeat),
            last_beat_ms: get(&self.last_beat_ms),
            sessions: get(&self.sessions),
            packets_in: get(&self.packets_in),
            bytes_in: get(&self.bytes_in),
            packets_out: get(&self.packets_out),
            bytes_out: get(&self.bytes_out),
            send_errors: get(&self.send_errors),
            recv_errors: get(&self.recv_errors),
            recv_no_buffers: get(&self.recv_no_buffers),
            busy_nanos: get(&self.busy_nanos),
        }
    }
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

/// The control API of a running relay; cheap to clone. The driver stops
/// when every handle is dropped.
#[derive(Clone)]
pub struct RelayHandle {
    inner: Backend,
}

#[derive(Clone)]
enum Backend {
    Epoll {
        tx: mpsc::Sender<Command>,
        shared: Arc<Shared>,
    },
    #[cfg(target_os = "linux")]
    Uring(Arc<uring::Driver>, IpAddr),
}

impl fmt::Debug for RelayHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bind_ip = match &self.inner {
            Backend::Epoll { shared, .. } => shared.bind_ip,
            #[cfg(target_os = "linux")]
            Backend::Uring(_, ip) => *ip,
        };
        f.debug_struct("RelayHandle")
            .field("data_path", &self.data_path())
            .field("workers", &self.workers())
            .field("bind_ip", &bind_ip)
            .finish_non_exhaustive()
    }
}

impl RelayHandle {
    /// Runs `f` on the relay synchronously, for callers that must not
    /// await: takes the relay's lock (held only for packet processing
    /// elsewhere, never across I/O), then opens and closes the sockets of
    /// the ports `f` allocated or freed (non-blocking binds) and wakes the
    /// timer. On the fallback it must be called inside the tokio runtime
    /// the driver was spawned on (receive tasks are spawned).
    ///
    /// A port that cannot be bound (another process holds it) is never
    /// advertised: it is quarantined for [`PORT_QUARANTINE`], the
    /// sessions `f` created with it are deleted and `f` runs again, up to
    /// [`BIND_ATTEMPTS`] times, on fresh ports. When none binds, or when
    /// the port was added to a session that existed before, that session
    /// is deleted and `f` runs once more with every allocation failing
    /// ([`RelayError::PortsUnavailable`]), so it reports an error. `f`
    /// must therefore be safe to run again after the sessions it created
    /// are gone (an offer, an answer, a stats or delete call all are).
    ///
    /// # Panics
    /// If the relay is sharded over more than one worker
    /// ([`spawn_sharded`]): there is no single relay, use
    /// [`Self::with_session`].
    pub fn with_relay<R>(&self, mut f: impl FnMut(&mut Relay, Instant) -> R) -> R {
        match &self.inner {
            Backend::Epoll { shared, .. } => {
                let mut relay = shared.relay();
                let r = shared.run(&mut relay, &mut f);
                drop(relay);
                shared.wake.notify_one();
                r
            }
            #[cfg(target_os = "linux")]
            Backend::Uring(d, _) => d.with_relay(f),
        }
    }

    /// [`Self::with_relay`] on the relay shard that owns `session_id`; a
    /// session not seen before is given a shard (the least loaded), which
    /// is forgotten again if `f` leaves no such session (refused offer,
    /// delete). `f` must only act on `session_id`, and may run more than
    /// once (see [`Self::with_relay`]: a port that cannot be bound is
    /// never advertised). Works on every data path and shard count.
    pub fn with_session<R>(&self, session_id: &str, f: impl FnMut(&mut Relay, Instant) -> R) -> R {
        match &self.inner {
            Backend::Epoll { .. } => self.with_relay(f),
            #[cfg(target_os = "linux")]
            Backend::Uring(d, _) => d
                .with_session(session_id, true, f)
                .expect("an assigned shard"),
        }
    }

    /// The data path running.
    pub fn data_path(&self) -> DataPath {
        match &self.inner {
            Backend::Epoll { .. } => DataPath::TokioEpoll,
            #[cfg(target_os = "linux")]
            Backend::Uring(..) => DataPath::IoUring,
        }
    }

    /// Workers (relay shards); 1 on the fallback.
    pub fn workers(&self) -> usize {
        match &self.inner {
            Backend::Epoll { .. } => 1,
            #[cfg(target_os = "linux")]
            Backend::Uring(d, _) => d.shards.len(),
        }
    }

    /// Each worker's heartbeat ([`WorkerStats::heartbeat`]): a watchdog
    /// sees a stuck worker as one whose count stops moving.
    pub fn worker_heartbeats(&self) -> Vec<u64> {
        self.worker_stats().iter().map(|w| w.heartbeat).collect()
    }

    /// Each worker's counters.
    pub fn worker_stats(&self) -> Vec<WorkerStats> {
        match &self.inner {
            Backend::Epoll { shared, .. } => vec![shared.counters.snapshot()],
            #[cfg(target_os = "linux")]
            Backend::Uring(d, _) => d.shards.iter().map(|s| s.counters.snapshot()).collect(),
        }
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
        #[cfg(target_os = "linux")]
        if let Backend::Uring(..) = &self.inner {
            // Brief, non-blocking work: no need for a control task.
            return Ok(self.with_session(id, |r, now| r.offer_with(id, side, sdp, options, now))?);
        }
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
        #[cfg(target_os = "linux")]
        if let Backend::Uring(d, _) = &self.inner {
            return d
                .with_session(id, false, |r, now| r.answer(id, side, sdp, now))
                .unwrap_or_else(|| Err(RelayError::UnknownSession(id.to_owned())))
                .map_err(DriverError::Relay);
        }
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
        #[cfg(target_os = "linux")]
        if let Backend::Uring(d, _) = &self.inner {
            return Ok(d.with_session(id, false, |r, _| r.delete(id)) == Some(true));
        }
        let (reply, rx) = oneshot::channel();
        let id = id.to_owned();
        self.call(Command::Delete { id, reply }, rx).await
    }

    /// [`Relay::stats`].
    pub async fn stats(&self, id: &str) -> Result<Option<SessionStats>, DriverError> {
        #[cfg(target_os = "linux")]
        if let Backend::Uring(d, _) = &self.inner {
            return Ok(d.with_session(id, false, |r, _| r.stats(id)).flatten());
        }
        let (reply, rx) = oneshot::channel();
        let id = id.to_owned();
        self.call(Command::Stats { id, reply }, rx).await
    }

    async fn call<T>(&self, cmd: Command, rx: oneshot::Receiver<T>) -> Result<T, DriverError> {
        let Backend::Epoll { tx, .. } = &self.inner else {
            return Err(DriverError::Stopped);
        };
        tx.send(cmd).await.map_err(|_| DriverError::Stopped)?;
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
    counters: WorkerCounters,
    started: Instant,
}

impl Shared {
    fn relay(&self) -> MutexGuard<'_, Relay> {
        self.relay.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn send(&self, outputs: Outputs<'_>) {
        if outputs.is_empty() {
            return;
        }
        let mut batch = BatchCounts::default();
        let sockets = self.sockets.read().unwrap_or_else(PoisonError::into_inner);
        for d in outputs.iter() {
            let Some(socket) = sockets.get(&d.local_port) else {
                continue;
            };
            batch.packets_out += 1;
            batch.bytes_out += d.data.len() as u64;
            if let Err(e) = socket.try_send_to(d.data, d.to) {
                // A full socket buffer drops the packet, as the network would.
                batch.send_errors += 1;
                tracing::trace!(port = d.local_port, to = %d.to, error = %e, "send failed");
            }
        }
        self.counters.add(&batch);
    }

    /// Binds and closes sockets as the relay asks, and forwards events.
    /// Called with the relay locked. Returns the opened ports that could
    /// not be bound, quarantined.
    fn settle(self: &Arc<Self>, relay: &mut Relay, now: Instant) -> Vec<u16> {
        let mut failed = Vec::new();
        while let Some(change) = relay.poll_port_change() {
            match change {
                PortChange::Opened(port) => {
                    if let Err(e) = self.open(port) {
                        quarantine(relay, port, &e, now);
                        failed.push(port);
                    }
                }
                PortChange::Closed(port) => self.close(port),
            }
        }
        while let Some(event) = relay.poll_event() {
            let _ = self.events.send(event);
        }
        self.counters.set_sessions(relay.session_count());
        failed
    }

    /// Runs a control call on the locked relay ([`run_binding`]).
    fn run<R>(
        self: &Arc<Self>,
        relay: &mut Relay,
        f: &mut impl FnMut(&mut Relay, Instant) -> R,
    ) -> R {
        run_binding(relay, f, |relay, now| self.settle(relay, now))
    }

    fn open(self: &Arc<Self>, port: u16) -> io::Result<()> {
        let socket = Arc::new(bind(SocketAddr::new(self.bind_ip, port))?);
        self.sockets
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(port, socket.clone());
        let task = tokio::spawn(receive(self.clone(), port, socket));
        if let Some(old) = self.receivers().insert(port, task) {
            old.abort();
        }
        Ok(())
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

/// A non-blocking std UDP socket bound to `addr`.
fn bind_std(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let socket = std::net::UdpSocket::bind(addr)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

fn bind(addr: SocketAddr) -> io::Result<UdpSocket> {
    UdpSocket::from_std(bind_std(addr)?)
}

/// Takes a port that could not be bound out of allocation for
/// [`PORT_QUARANTINE`], and says so once.
fn quarantine(relay: &mut Relay, port: u16, error: &io::Error, now: Instant) {
    relay.quarantine_port(port, now + PORT_QUARANTINE);
    tracing::warn!(
        port,
        error = %error,
        quarantine_secs = PORT_QUARANTINE.as_secs(),
        "cannot bind media port: not advertised, quarantined"
    );
}

/// Runs the control call `f` on `relay`, then `settle` (which binds the
/// sockets of the ports `f` opened, closes those it freed, and returns
/// the opened ports that could not be bound, quarantined). While a port
/// failed, the sessions holding one are deleted (their other ports
/// closed) and `f` runs again on fresh ports; after [`BIND_ATTEMPTS`]
/// runs, or at once if a session that existed before `f` holds a failed
/// port, `f` runs a last time with allocations held, so it returns its
/// own error instead of an SDP with a port nothing listens on.
fn run_binding<R>(
    relay: &mut Relay,
    f: &mut impl FnMut(&mut Relay, Instant) -> R,
    mut settle: impl FnMut(&mut Relay, Instant) -> Vec<u16>,
) -> R {
    let mut attempt = 1;
    let mut hold = false;
    loop {
        let now = Instant::now();
        let mark = relay.sessions_created();
        relay.hold_allocations(hold);
        let r = f(relay, now);
        relay.hold_allocations(false);
        let failed = settle(relay, now);
        if failed.is_empty() || hold {
            return r;
        }
        let mut doomed: Vec<(String, bool)> = Vec::new();
        for port in failed {
            if let Some((id, serial)) = relay.port_session(port) {
                if !doomed.iter().any(|(d, _)| d == id) {
                    doomed.push((id.to_owned(), serial < mark));
                }
            }
        }
        if doomed.is_empty() {
            // No session kept the port: nothing advertises it.
            return r;
        }
        drop(r);
        let existed = doomed.iter().any(|(_, existed)| *existed);
        for (id, _) in &doomed {
            relay.delete(id);
        }
        // Closes the other ports of those sessions; opens none.
        settle(relay, now);
        hold = existed || attempt >= BIND_ATTEMPTS;
        tracing::debug!(
            attempt,
            sessions = ?doomed,
            refuse = hold,
            "media ports could not be bound: running the call again"
        );
        attempt += 1;
    }
}

/// Starts the driver for one relay: on io_uring (when [`choose_data_path`]
/// picks it) as a single worker owning `relay`, else on the fallback,
/// both on the current tokio runtime's side. Returns the control handle
/// and the events signalling acts on ([`RelayEvent::Timeout`]...).
/// Sockets bind to `bind_ip` (e.g. `0.0.0.0`) on the relay's ports. The
/// driver stops when every handle is dropped. [`spawn_sharded`] spreads
/// sessions over several workers.
pub fn spawn(relay: Relay, bind_ip: IpAddr) -> (RelayHandle, mpsc::UnboundedReceiver<RelayEvent>) {
    let rings = prepare_rings(choose_data_path(), 1);
    start(vec![relay], bind_ip, rings)
}

/// Starts the driver with the relay sharded over workers: each shard is a
/// [`Relay`] made from `config` with its own slice of `config.ports` (so
/// allocations never collide) and a copy of `cert`. The fallback runs one
/// relay over the whole range. Must be called inside a tokio runtime (the
/// fallback's tasks, and the event channel's consumer).
pub fn spawn_sharded(
    config: RelayConfig,
    cert: DtlsCertificate,
    bind_ip: IpAddr,
    options: DriverOptions,
) -> (RelayHandle, mpsc::UnboundedReceiver<RelayEvent>) {
    let path = match options.data_path {
        Some(p) => usable(p),
        None => choose_data_path(),
    };
    let workers = options.workers.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let mut ranges = split_ports(&config.ports, workers.max(1));
    let rings = prepare_rings(path, ranges.len());
    if rings.is_none() {
        ranges = vec![config.ports.clone()];
    }
    let relays = ranges
        .into_iter()
        .map(|ports| {
            let mut c = config.clone();
            c.ports = ports;
            Relay::new(c, cert.clone())
        })
        .collect();
    start(relays, bind_ip, rings)
}

/// Splits a port range into at most `n` disjoint sub-ranges, each starting
/// on an even port so RTP/RTCP pairs stay within one.
fn split_ports(range: &RangeInclusive<u16>, n: usize) -> Vec<RangeInclusive<u16>> {
    let (start, end) = (u32::from(*range.start()), u32::from(*range.end()));
    let first = start + start % 2;
    if end < first + 1 || n <= 1 {
        return vec![range.clone()];
    }
    let span = end - first + 1;
    let pairs = span / 2;
    let n = (n as u32).min(pairs);
    (0..n)
        .map(|i| {
            let lo = if i == 0 {
                start
            } else {
                first + 2 * (i * pairs / n)
            };
            let hi = if i + 1 == n {
                end
            } else {
                first + 2 * ((i + 1) * pairs / n) - 1
            };
            lo as u16..=hi as u16
        })
        .collect()
}

/// The io_uring rings of the workers, set up before any thread starts.
#[cfg(target_os = "linux")]
type Rings = Vec<uring::Prepared>;
#[cfg(not(target_os = "linux"))]
type Rings = std::convert::Infallible;

/// Rings for `n` workers if `path` is io_uring and they can be set up.
fn prepare_rings(path: DataPath, n: usize) -> Option<Rings> {
    if path != DataPath::IoUring {
        return None;
    }
    #[cfg(target_os = "linux")]
    match uring::prepare(n) {
        Ok(rings) => Some(rings),
        Err(e) => {
            tracing::warn!(error = %e, "io_uring setup failed: using the epoll data path");
            None
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = n;
        None
    }
}

/// Runs `relays` on io_uring workers given `rings` (one each), else the
/// single relay on the fallback.
fn start(
    relays: Vec<Relay>,
    bind_ip: IpAddr,
    rings: Option<Rings>,
) -> (RelayHandle, mpsc::UnboundedReceiver<RelayEvent>) {
    let started = Instant::now();
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let advertised = relays[0].config().advertised_ip;
    #[cfg(target_os = "linux")]
    if let Some(rings) = rings {
        let ports: Vec<_> = relays.iter().map(|r| r.config().ports.clone()).collect();
        tracing::info!(
            data_path = %DataPath::IoUring,
            workers = relays.len(),
            recv_buffers = uring::RECV_BUFFERS,
            send_slots = uring::SEND_SLOTS,
            ports = ?ports,
            advertised = %advertised,
            "media relay started"
        );
        let d = uring::Driver::start(relays, rings, bind_ip, events_tx, started);
        let handle = RelayHandle {
            inner: Backend::Uring(Arc::new(d), bind_ip),
        };
        return (handle, events_rx);
    }
    #[cfg(not(target_os = "linux"))]
    if let Some(never) = rings {
        match never {}
    }
    let mut relays = relays;
    assert_eq!(relays.len(), 1, "the fallback runs one relay");
    let relay = relays.pop().expect("one relay");
    tracing::info!(
        data_path = %DataPath::TokioEpoll,
        workers = 1,
        ports = ?relay.config().ports,
        advertised = %advertised,
        "media relay started"
    );
    let (tx, rx) = mpsc::channel(256);
    let shared = Arc::new(Shared {
        relay: Mutex::new(relay),
        sockets: RwLock::new(HashMap::new()),
        receivers: Mutex::new(HashMap::new()),
        wake: Notify::new(),
        events: events_tx,
        bind_ip,
        counters: WorkerCounters::default(),
        started,
    });
    tokio::spawn(control(shared.clone(), rx));
    (
        RelayHandle {
            inner: Backend::Epoll { tx, shared },
        },
        events_rx,
    )
}

async fn control(shared: Arc<Shared>, mut rx: mpsc::Receiver<Command>) {
    let timer = tokio::spawn(timer(shared.clone()));
    while let Some(cmd) = rx.recv().await {
        let mut relay = shared.relay();
        match cmd {
            Command::Offer {
                id,
                side,
                sdp,
                options,
                reply,
            } => {
                let mut f = |r: &mut Relay, now| r.offer_with(&id, side, &sdp, options, now);
                let _ = reply.send(shared.run(&mut relay, &mut f));
            }
            Command::Answer {
                id,
                side,
                sdp,
                reply,
            } => {
                let mut f = |r: &mut Relay, now| r.answer(&id, side, &sdp, now);
                let _ = reply.send(shared.run(&mut relay, &mut f));
            }
            Command::Delete { id, reply } => {
                let _ = reply.send(shared.run(&mut relay, &mut |r, _| r.delete(&id)));
            }
            Command::Stats { id, reply } => {
                let _ = reply.send(shared.run(&mut relay, &mut |r, _| r.stats(&id)));
            }
        }
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
        shared.counters.beat(shared.started);
        let busy = Instant::now();
        let mut relay = shared.relay();
        let now = Instant::now();
        let outputs = relay.handle_timeout(now);
        shared.send(outputs);
        shared.settle(&mut relay, now);
        drop(relay);
        shared.counters.add_busy(busy.elapsed());
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
                shared.counters.add(&BatchCounts {
                    recv_errors: 1,
                    ..BatchCounts::default()
                });
                tokio::task::yield_now().await;
                continue;
            }
        };
        let busy = Instant::now();
        shared.counters.add(&BatchCounts {
            packets_in: 1,
            bytes_in: len as u64,
            ..BatchCounts::default()
        });
        let mut relay = shared.relay();
        let outputs = relay.handle_packet(port, from, &buf[..len], busy);
        shared.send(outputs);
        shared.settle(&mut relay, busy);
        drop(relay);
        shared.counters.add_busy(busy.elapsed());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::LegKind;
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

    #[test]
    fn port_range_splits_into_even_aligned_shards() {
        assert_eq!(split_ports(&(30000..=39999), 1), vec![30000..=39999]);
        assert_eq!(
            split_ports(&(30000..=39999), 4),
            vec![30000..=32499, 32500..=34999, 35000..=37499, 37500..=39999]
        );
        // Uneven: every shard starts on an even port and the last takes
        // what is left.
        let parts = split_ports(&(30001..=30020), 3);
        assert_eq!(parts, vec![30001..=30007, 30008..=30013, 30014..=30020]);
        // Fewer pairs than workers: one shard per pair.
        assert_eq!(split_ports(&(100..=103), 8), vec![100..=101, 102..=103]);
        for parts in [
            split_ports(&(1000..=1999), 7),
            split_ports(&(1001..=1998), 3),
        ] {
            for w in parts.windows(2) {
                assert_eq!(*w[0].end() + 1, *w[1].start());
                assert_eq!(w[1].start() % 2, 0);
            }
        }
    }

    /// A settle that binds nothing: fails the opened ports in `dead`
    /// (quarantining them, as the drivers do) and counts the rest open.
    fn fake_settle<'a>(
        dead: &'a [u16],
        open: &'a mut Vec<u16>,
    ) -> impl FnMut(&mut Relay, Instant) -> Vec<u16> + 'a {
        move |relay, now| {
            let mut failed = Vec::new();
            while let Some(change) = relay.poll_port_change() {
                match change {
                    PortChange::Opened(p) if dead.contains(&p) => {
                        let e = io::Error::from(io::ErrorKind::AddrInUse);
                        quarantine(relay, p, &e, now);
                        failed.push(p);
                    }
                    PortChange::Opened(p) => open.push(p),
                    PortChange::Closed(p) => open.retain(|q| *q != p),
                }
            }
            failed
        }
    }

    fn sdp_ports(sdp: &str) -> Vec<u16> {
        let sdp = SessionDescription::parse(sdp).unwrap();
        let m = &sdp.media[0];
        vec![m.port(), m.rtcp().map_or(m.port() + 1, |r| r.port)]
    }

    /// A port that does not bind is never in the SDP returned: the call
    /// runs again on fresh ports, and is refused once they run out.
    #[test]
    fn unbindable_ports_are_never_advertised() {
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        let mut config = RelayConfig::new(loopback);
        config.ports = 45000..=45199;
        let mut relay = Relay::new(config, DtlsCertificate::process().unwrap().clone());
        let offer = plain_sdp("127.0.0.1:5000".parse().unwrap());
        let answer = plain_sdp("127.0.0.1:6000".parse().unwrap());
        let options = OfferOptions {
            peer: Some(LegKind::Plain),
        };
        // Both legs of the first attempt, then one of the second.
        let dead = [45000, 45003, 45006];
        let mut open = Vec::new();
        let mut runs = 0;
        let to_b = run_binding(
            &mut relay,
            &mut |r, now| {
                runs += 1;
                r.offer_with("call", Side::A, &offer, options, now)
            },
            fake_settle(&dead, &mut open),
        )
        .unwrap();
        let to_a = run_binding(
            &mut relay,
            &mut |r, now| r.answer("call", Side::B, &answer, now),
            fake_settle(&dead, &mut open),
        )
        .unwrap();
        assert_eq!(runs, 3);
        let advertised = [sdp_ports(&to_b), sdp_ports(&to_a)].concat();
        assert_eq!(advertised, [45010, 45011, 45008, 45009]);
        open.sort_unstable();
        assert_eq!(open, [45008, 45009, 45010, 45011]);
        assert_eq!(relay.quarantined_ports(), 3);
        assert_eq!(relay.ports_in_use(), 4);

        // Every port dead: BIND_ATTEMPTS runs, then one refused.
        let all: Vec<u16> = (45000..=45199).collect();
        let mut runs = 0;
        let refused = run_binding(
            &mut relay,
            &mut |r, now| {
                runs += 1;
                r.offer_with("other", Side::A, &offer, options, now)
            },
            fake_settle(&all, &mut open),
        );
        assert_eq!(refused, Err(RelayError::PortsUnavailable));
        assert_eq!(runs, BIND_ATTEMPTS + 1);
        assert_eq!(relay.stats("other"), None);
        assert_eq!(relay.session_count(), 1);

        // A port of a session that existed before the call: the session
        // goes and the call fails, without running again on new ports.
        let old = relay.stats("call").unwrap().legs[0].local_ports[0];
        let mut first = true;
        let mut runs = 0;
        let refused = run_binding(
            &mut relay,
            &mut |r, now| {
                runs += 1;
                r.offer("call", Side::A, &offer, now)
            },
            |relay: &mut Relay, now| {
                while relay.poll_port_change().is_some() {}
                if std::mem::take(&mut first) {
                    let e = io::Error::from(io::ErrorKind::AddrInUse);
                    quarantine(relay, old, &e, now);
                    vec![old]
                } else {
                    Vec::new()
                }
            },
        );
        assert_eq!(refused, Err(RelayError::PortsUnavailable));
        assert_eq!(runs, 2);
        assert_eq!(relay.session_count(), 0);
    }

    #[test]
    fn data_path_names() {
        assert_eq!("epoll".parse(), Ok(DataPath::TokioEpoll));
        assert_eq!("io_uring".parse(), Ok(DataPath::IoUring));
        assert_eq!(" IO-URING ".parse(), Ok(DataPath::IoUring));
        assert!("kqueue".parse::<DataPath>().is_err());
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
