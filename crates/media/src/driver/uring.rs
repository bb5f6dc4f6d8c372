//! The io_uring data path: one worker thread per shard, each owning an
//! io_uring, the sockets of its shard's ports and a [`Relay`] shard.
//!
//! Why the `io-uring` crate and not `tokio-uring`: the packet path needs
//! multishot `IORING_OP_RECVMSG` into a provided buffer ring
//! (`IORING_REGISTER_PBUF_RING`), which tokio-uring does not expose, and
//! it wants a plain thread per shard that owns its ring, sockets and
//! sans-IO relay, with no futures or runtime between a completion and
//! [`Relay::handle_packet`].
//!
//! Per worker:
//! - every open port has one multishot recvmsg armed; datagrams land in
//!   [`RECV_BUFFERS`] buffers of a provided buffer ring, each handed back
//!   to the kernel as soon as the relay has processed it;
//! - a loop iteration takes the shard's lock once, runs every completion
//!   reaped (and the relay's timers when due), copies the outputs into a
//!   pre-allocated pool of send slots (msghdr, address and bytes) and
//!   queues one SendMsg each; the next `io_uring_enter` submits them all
//!   and waits. Nothing on this path allocates;
//! - control calls ([`Driver::with_session`]) lock the shard, bind the
//!   sockets of new ports themselves (so a port is open when its SDP is
//!   returned, and one that cannot be bound is never advertised: the call
//!   runs again on other ports, see `run_binding`), and hand open/close
//!   requests to the worker through a queue plus an eventfd the ring
//!   polls; a closed port's receive is cancelled and its socket closed
//!   once the cancellation completes.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use io_uring::types::{BufRingEntry, Fd, RecvMsgOut, SubmitArgs, Timespec};
use io_uring::{cqueue, opcode, squeue, IoUring, Probe, SubmissionQueue, Submitter};
use tokio::sync::mpsc;

use super::{bind_std, quarantine, run_binding, BatchCounts, WorkerCounters, RECV_BUFFER, TICK};
use crate::session::{Outputs, PortChange, Relay, RelayEvent};

/// Submission queue entries per ring; a full queue is flushed mid-batch.
const SQ_ENTRIES: u32 = 1024;
/// Completion queue entries: room for a burst of datagrams per wake.
const CQ_ENTRIES: u32 = 8192;
/// Provided receive buffers per worker (a power of two, at most 32768).
pub(super) const RECV_BUFFERS: u16 = 1024;
/// `io_uring_recvmsg_out` (16 bytes) + the source address field (28) +
/// a payload as large as the fallback's.
const RECV_BUF_LEN: usize = 64 + RECV_BUFFER;
/// Sends in flight per worker; beyond it, a datagram goes out with a
/// direct `sendto` rather than waiting.
pub(super) const SEND_SLOTS: usize = 1024;
/// Largest datagram a send slot holds (SRTP adds at most a tag to a
/// received one); a longer one is sent directly.
const SEND_BUF_LEN: usize = RECV_BUFFER + 64;
/// The buffer group of the receive ring.
const BGID: u16 = 0;
/// How long a stopping worker waits for its cancellations.
const STOP_GRACE: Duration = Duration::from_secs(1);
/// Consecutive receive errors after which a port is given up.
const MAX_RECV_ERRORS: u32 = 64;

/// `user_data` = tag << 56 | payload. A receive's payload is the port and
/// the generation of its socket, so completions of a closed socket are
/// not taken for those of a new one on the same port.
const TAG_SHIFT: u32 = 56;
const TAG_RECV: u64 = 1;
const TAG_SEND: u64 = 2;
const TAG_WAKE: u64 = 3;
const TAG_CANCEL: u64 = 4;

fn recv_data(port: u16, gen: u32) -> u64 {
    (TAG_RECV << TAG_SHIFT) | (u64::from(gen) << 16) | u64::from(port)
}

fn name_len() -> u32 {
    std::mem::size_of::<libc::sockaddr_in6>() as u32
}

fn unsupported(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::Unsupported, what.to_owned())
}

/// Whether this kernel (and its seccomp policy) runs the data path: ring
/// creation, the opcodes, a provided buffer ring and multishot recvmsg.
pub(super) fn probe() -> io::Result<()> {
    let mut ring = IoUring::new(8)?;
    if !ring.params().is_feature_ext_arg() {
        return Err(unsupported("no IORING_FEAT_EXT_ARG (kernel before 5.11)"));
    }
    let mut probe = Probe::new();
    ring.submitter().register_probe(&mut probe)?;
    for (code, name) in [
        (opcode::RecvMsg::CODE, "recvmsg"),
        (opcode::SendMsg::CODE, "sendmsg"),
        (opcode::AsyncCancel::CODE, "async cancel"),
        (opcode::PollAdd::CODE, "poll"),
    ] {
        if !probe.is_supported(code) {
            return Err(unsupported(&format!("io_uring lacks {name}")));
        }
    }
    let bufs = BufRing::new(8)?;
    bufs.register(&ring.submitter())?;
    // Multishot recvmsg (6.0) is not in the probe: arm one on an idle
    // loopback socket and cancel it. An older kernel fails it at once
    // with EINVAL; a newer one reports ECANCELED.
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .or_else(|_| UdpSocket::bind((Ipv6Addr::LOCALHOST, 0)))?;
    let hdr = recv_msghdr();
    let recv = opcode::RecvMsgMulti::new(Fd(socket.as_raw_fd()), &*hdr, BGID)
        .build()
        .user_data(1);
    let cancel = opcode::AsyncCancel::new(1).build().user_data(2);
    // SAFETY: `hdr` and the buffer ring outlive the requests: both
    // complete (or the ring is dropped) before this function returns.
    unsafe {
        let mut sq = ring.submission();
        sq.push(&recv)
            .map_err(|_| unsupported("submission queue full"))?;
        sq.push(&cancel)
            .map_err(|_| unsupported("submission queue full"))?;
    }
    let ts = Timespec::from(Duration::from_secs(1));
    let args = SubmitArgs::new().timespec(&ts);
    let mut recv_result = None;
    let deadline = Instant::now() + Duration::from_secs(2);
    while recv_result.is_none() && Instant::now() < deadline {
        match ring.submitter().submit_with_args(1, &args) {
            Ok(_) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::ETIME | libc::EINTR)) => {}
            Err(e) => return Err(e),
        }
        for cqe in ring.completion() {
            if cqe.user_data() == 1 && !cqueue::more(cqe.flags()) {
                recv_result = Some(cqe.result());
            }
        }
    }
    match recv_result {
        Some(r) if r == -libc::ECANCELED => Ok(()),
        Some(r) => Err(io::Error::from_raw_os_error(-r)),
        None => Err(unsupported("multishot recvmsg did not cancel")),
    }
}

/// The msghdr multishot recvmsg reads its layout from: a source address
/// field, no control data.
fn recv_msghdr() -> Box<libc::msghdr> {
    // SAFETY: msghdr is a plain C struct; all-zero is a valid value.
    let mut hdr: Box<libc::msghdr> = Box::new(unsafe { std::mem::zeroed() });
    hdr.msg_namelen = name_len();
    hdr
}

/// A provided buffer ring: the page-aligned ring of entries the kernel
/// takes buffers from, and the buffers.
struct BufRing {
    entries: *mut BufRingEntry,
    entries_layout: std::alloc::Layout,
    data: *mut u8,
    data_layout: std::alloc::Layout,
    count: u16,
    tail: u16,
}

// SAFETY: the raw pointers are owned allocations; the ring moves to its
// worker thread whole and is used there only.
unsafe impl Send for BufRing {}

impl BufRing {
    /// `count` buffers of [`RECV_BUF_LEN`], all given to the ring.
    fn new(count: u16) -> io::Result<Self> {
        assert!(count.is_power_of_two());
        let entries_layout = std::alloc::Layout::from_size_align(
            usize::from(count) * std::mem::size_of::<BufRingEntry>(),
            4096,
        )
        .map_err(|_| unsupported("buffer ring layout"))?;
        let data_layout =
            std::alloc::Layout::from_size_align(usize::from(count) * RECV_BUF_LEN, 64)
                .map_err(|_| unsupported("buffer layout"))?;
        // SAFETY: both layouts have a non-zero size.
        let (entries, data) = unsafe {
            (
                std::alloc::alloc_zeroed(entries_layout).cast::<BufRingEntry>(),
                std::alloc::alloc_zeroed(data_layout),
            )
        };
        if entries.is_null() || data.is_null() {
            std::alloc::handle_alloc_error(data_layout);
        }
        let mut ring = Self {
            entries,
            entries_layout,
            data,
            data_layout,
            count,
            tail: 0,
        };
        for bid in 0..count {
            ring.give_back(bid);
        }
        ring.publish();
        Ok(ring)
    }

    fn register(&self, submitter: &Submitter<'_>) -> io::Result<()> {
        // SAFETY: the entries stay allocated until `self` drops, which the
        // worker does only after the ring itself is gone.
        unsafe { submitter.register_buf_ring_with_flags(self.entries as u64, self.count, BGID, 0) }
    }

    /// Queues buffer `bid` for the kernel again (visible at [`Self::publish`]).
    fn give_back(&mut self, bid: u16) {
        if bid >= self.count {
            return;
        }
        let slot = usize::from(self.tail & (self.count - 1));
        // SAFETY: `slot` < count entries; the kernel reads only entries
        // before the published tail, and this one is past it.
        unsafe {
            let e = &mut *self.entries.add(slot);
            e.set_addr(self.data.add(usize::from(bid) * RECV_BUF_LEN) as u64);
            e.set_len(RECV_BUF_LEN as u32);
            e.set_bid(bid);
        }
        self.tail = self.tail.wrapping_add(1);
    }

    /// Makes the buffers given back visible to the kernel.
    fn publish(&self) {
        // SAFETY: the tail overlays the first entry's reserved field, which
        // the kernel reads atomically; `entries` is valid and aligned.
        unsafe {
            let tail = BufRingEntry::tail(self.entries).cast_mut();
            AtomicU16::from_ptr(tail).store(self.tail, Ordering::Release);
        }
    }

    /// The first `len` bytes of buffer `bid`, with a lifetime not tied to
    /// `self` so the relay can be called while the ring is borrowed.
    ///
    /// # Safety
    /// The kernel must have handed over `bid` (a completion named it) and
    /// the slice must not be used after [`Self::give_back`] for it.
    unsafe fn filled<'a>(&self, bid: u16, len: usize) -> &'a [u8] {
        let len = len.min(RECV_BUF_LEN);
        std::slice::from_raw_parts(self.data.add(usize::from(bid) * RECV_BUF_LEN), len)
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with these layouts.
        unsafe {
            std::alloc::dealloc(self.entries.cast(), self.entries_layout);
            std::alloc::dealloc(self.data, self.data_layout);
        }
    }
}

/// A send in flight: the kernel reads all of it until the completion.
#[repr(C)]
struct SendSlot {
    hdr: libc::msghdr,
    iov: libc::iovec,
    addr: libc::sockaddr_in6,
    buf: [u8; SEND_BUF_LEN],
}

/// [`SEND_SLOTS`] send slots at fixed addresses and their free list.
struct SendPool {
    slots: *mut SendSlot,
    len: usize,
    free: Vec<u16>,
}

// SAFETY: as for `BufRing`; the self-references point into the same
// allocation, which never moves.
unsafe impl Send for SendPool {}

impl SendPool {
    fn new(len: usize) -> Self {
        let mut slots = Vec::with_capacity(len);
        for _ in 0..len {
            // SAFETY: plain C structs and bytes; all-zero is valid.
            slots.push(unsafe { std::mem::zeroed::<SendSlot>() });
        }
        let slots = Box::into_raw(slots.into_boxed_slice()).cast::<SendSlot>();
        for i in 0..len {
            // SAFETY: i < len; the allocation is fixed from here on.
            unsafe {
                let s = &mut *slots.add(i);
                s.iov.iov_base = s.buf.as_mut_ptr().cast();
                s.hdr.msg_name = std::ptr::addr_of_mut!(s.addr).cast();
                s.hdr.msg_iov = std::ptr::addr_of_mut!(s.iov);
                s.hdr.msg_iovlen = 1;
            }
        }
        Self {
            slots,
            len,
            free: (0..len as u16).rev().collect(),
        }
    }

    fn in_flight(&self) -> usize {
        self.len - self.free.len()
    }

    /// Fills a free slot with a datagram; returns its index and msghdr.
    fn fill(
        &mut self,
        data: &[u8],
        to: SocketAddr,
        v6: bool,
    ) -> Option<(u16, *const libc::msghdr)> {
        if data.len() > SEND_BUF_LEN {
            return None;
        }
        let i = *self.free.last()?;
        // SAFETY: a free slot is not in flight; i < len.
        let s = unsafe { &mut *self.slots.add(usize::from(i)) };
        let namelen = write_sockaddr(to, v6, &mut s.addr)?;
        self.free.pop();
        s.buf[..data.len()].copy_from_slice(data);
        s.iov.iov_len = data.len();
        s.hdr.msg_namelen = namelen;
        Some((i, std::ptr::addr_of!(s.hdr)))
    }

    fn release(&mut self, i: u16) {
        if usize::from(i) < self.len && self.free.len() < self.len {
            self.free.push(i);
        }
    }
}

impl Drop for SendPool {
    fn drop(&mut self) {
        // SAFETY: made from a boxed slice of `len` slots in `new`.
        unsafe {
            drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(
                self.slots, self.len,
            )));
        }
    }
}

/// Writes `to` as the sockaddr a socket of that family sends to (IPv4 on
/// an IPv6 socket as v4-mapped); its length, or `None` if unreachable.
fn write_sockaddr(
    to: SocketAddr,
    v6: bool,
    out: &mut libc::sockaddr_in6,
) -> Option<libc::socklen_t> {
    let to = match (to, v6) {
        (SocketAddr::V4(a), true) => {
            SocketAddr::V6(SocketAddrV6::new(a.ip().to_ipv6_mapped(), a.port(), 0, 0))
        }
        (SocketAddr::V6(a), false) => {
            SocketAddr::V4(SocketAddrV4::new(a.ip().to_ipv4_mapped()?, a.port()))
        }
        (to, _) => to,
    };
    match to {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_in is a plain C struct smaller than
            // sockaddr_in6 and less aligned; zeroed is valid.
            let sin = unsafe { &mut *std::ptr::from_mut(out).cast::<libc::sockaddr_in>() };
            *sin = unsafe { std::mem::zeroed() };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
            Some(std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t)
        }
        SocketAddr::V6(a) => {
            // SAFETY: plain C struct; zeroed is valid.
            *out = unsafe { std::mem::zeroed() };
            out.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            out.sin6_port = a.port().to_be();
            out.sin6_flowinfo = a.flowinfo();
            out.sin6_addr.s6_addr = a.ip().octets();
            out.sin6_scope_id = a.scope_id();
            Some(std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t)
        }
    }
}

/// The source address of a received datagram, as std would report it
/// (v4-mapped addresses stay IPv6, like the fallback's `recv_from`).
fn parse_sockaddr(name: &[u8]) -> Option<SocketAddr> {
    let family = i32::from(u16::from_ne_bytes([*name.first()?, *name.get(1)?]));
    let port = u16::from_be_bytes([*name.get(2)?, *name.get(3)?]);
    match family {
        libc::AF_INET => {
            let ip: [u8; 4] = name.get(4..8)?.try_into().ok()?;
            Some(SocketAddr::new(IpAddr::from(ip), port))
        }
        libc::AF_INET6 => {
            let flowinfo = u32::from_ne_bytes(name.get(4..8)?.try_into().ok()?);
            let ip: [u8; 16] = name.get(8..24)?.try_into().ok()?;
            let scope = u32::from_ne_bytes(name.get(24..28)?.try_into().ok()?);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip.into(),
                port,
                flowinfo,
                scope,
            )))
        }
        _ => None,
    }
}

/// How many sockets of each port a shard's worker holds or is being
/// handed: a port whose bind fails while it has one is still closing
/// there, not held by another process.
type Claims = Arc<Mutex<HashMap<u16, u32>>>;

/// A port's socket, counted in its shard's [`Claims`] until dropped.
struct PortSocket {
    // Dropped before the claim, so a count of zero means closed.
    socket: UdpSocket,
    _claim: Claim,
}

impl PortSocket {
    fn new(socket: UdpSocket, port: u16, claims: &Claims) -> Self {
        *lock(claims).entry(port).or_insert(0) += 1;
        Self {
            socket,
            _claim: Claim {
                port,
                claims: claims.clone(),
            },
        }
    }
}

impl std::ops::Deref for PortSocket {
    type Target = UdpSocket;

    fn deref(&self) -> &UdpSocket {
        &self.socket
    }
}

struct Claim {
    port: u16,
    claims: Claims,
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut claims = lock(&self.claims);
        if let Some(n) = claims.get_mut(&self.port) {
            *n -= 1;
            if *n == 0 {
                claims.remove(&self.port);
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A port change for a worker, from a control call.
enum Control {
    /// Receive on this port; the socket is already bound, or `None` when
    /// the bind must wait for the worker to close the port's old socket.
    Open(u16, Option<PortSocket>),
    /// Stop receiving and close.
    Close(u16),
}

/// One shard: its relay, the queue of port changes for its worker, the
/// worker's wakeup and counters.
pub(super) struct Shard {
    relay: Mutex<Relay>,
    controls: Mutex<Vec<Control>>,
    wake: OwnedFd,
    stop: AtomicBool,
    events: mpsc::UnboundedSender<RelayEvent>,
    pub(super) counters: WorkerCounters,
    bind_ip: IpAddr,
    claims: Claims,
}

impl Shard {
    fn relay(&self) -> MutexGuard<'_, Relay> {
        self.relay.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn controls(&self) -> MutexGuard<'_, Vec<Control>> {
        self.controls.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Binds the sockets of opened ports and queues the changes for the
    /// worker, forwards events. Called with the relay locked, so changes
    /// reach the worker in the relay's order. Returns the opened ports
    /// that could not be bound, quarantined.
    fn settle(&self, relay: &mut Relay, now: Instant) -> Vec<u16> {
        let mut failed = Vec::new();
        while let Some(change) = relay.poll_port_change() {
            let control = match change {
                PortChange::Opened(port) => match self.bind(port) {
                    Ok(socket) => Control::Open(port, socket),
                    Err(e) => {
                        quarantine(relay, port, &e, now);
                        failed.push(port);
                        continue;
                    }
                },
                PortChange::Closed(port) => Control::Close(port),
            };
            self.controls().push(control);
        }
        while let Some(event) = relay.poll_event() {
            let _ = self.events.send(event);
        }
        self.counters.set_sessions(relay.session_count());
        failed
    }

    /// The socket of a newly opened port; `None` when the worker still
    /// holds the port's previous socket (closing), and binds once it is
    /// gone.
    fn bind(&self, port: u16) -> io::Result<Option<PortSocket>> {
        let addr = SocketAddr::new(self.bind_ip, port);
        let e = match bind_std(addr) {
            Ok(s) => return Ok(Some(PortSocket::new(s, port, &self.claims))),
            Err(e) => e,
        };
        if e.kind() != io::ErrorKind::AddrInUse {
            return Err(e);
        }
        if lock(&self.claims).contains_key(&port) {
            return Ok(None);
        }
        // The worker may have closed it between the bind and the check.
        bind_std(addr).map(|s| Some(PortSocket::new(s, port, &self.claims)))
    }

    fn wake(&self) {
        let one = 1u64;
        // SAFETY: writes 8 bytes from a live u64 to our eventfd.
        let _ = unsafe {
            libc::write(
                self.wake.as_raw_fd(),
                std::ptr::from_ref(&one).cast(),
                std::mem::size_of::<u64>(),
            )
        };
    }

    /// Runs a control call on this shard's relay ([`run_binding`]).
    fn call<R>(&self, mut f: impl FnMut(&mut Relay, Instant) -> R) -> R {
        let mut relay = self.relay();
        let r = self.run(&mut relay, &mut f);
        drop(relay);
        // Always: the call may have moved the relay's timers.
        self.wake();
        r
    }

    fn run<R>(&self, relay: &mut Relay, f: &mut impl FnMut(&mut Relay, Instant) -> R) -> R {
        run_binding(relay, f, |relay, now| self.settle(relay, now))
    }
}

/// The running io_uring data path.
pub(super) struct Driver {
    pub(super) shards: Vec<Arc<Shard>>,
    routes: Mutex<HashMap<String, usize>>,
    cursor: AtomicUsize,
    threads: Mutex<Vec<thread::JoinHandle<()>>>,
}

/// What a worker needs before its thread starts; made on the caller's
/// thread so that any failure falls back to the epoll path.
pub(super) struct Prepared {
    ring: IoUring,
    bufs: BufRing,
    wake: OwnedFd,
}

/// Sets up `n` rings with their buffer rings and eventfds.
pub(super) fn prepare(n: usize) -> io::Result<Vec<Prepared>> {
    (0..n)
        .map(|_| {
            let ring = IoUring::builder()
                .setup_cqsize(CQ_ENTRIES)
                .build(SQ_ENTRIES)?;
            let bufs = BufRing::new(RECV_BUFFERS)?;
            bufs.register(&ring.submitter())?;
            // SAFETY: plain syscall; the fd is checked and then owned.
            let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: `fd` is a fresh descriptor nothing else owns.
            let wake = unsafe { OwnedFd::from_raw_fd(fd) };
            Ok(Prepared { ring, bufs, wake })
        })
        .collect()
}

impl Driver {
    /// Starts a worker per relay shard.
    pub(super) fn start(
        relays: Vec<Relay>,
        prepared: Vec<Prepared>,
        bind_ip: IpAddr,
        events: mpsc::UnboundedSender<RelayEvent>,
        started: Instant,
    ) -> Self {
        let mut shards = Vec::with_capacity(relays.len());
        let mut threads = Vec::with_capacity(relays.len());
        for (index, (relay, p)) in relays.into_iter().zip(prepared).enumerate() {
            let shard = Arc::new(Shard {
                relay: Mutex::new(relay),
                controls: Mutex::new(Vec::new()),
                wake: p.wake,
                stop: AtomicBool::new(false),
                events: events.clone(),
                counters: WorkerCounters::default(),
                bind_ip,
                claims: Claims::default(),
            });
            // Ports the relay opened before the driver started (already
            // advertised: one that cannot be bound is only quarantined).
            shard.settle(&mut shard.relay(), started);
            let (ring, bufs, worker_shard) = (p.ring, p.bufs, shard.clone());
            let thread = thread::Builder::new()
                .name(format!("media-uring-{index}"))
                .spawn(move || Worker::new(index, worker_shard, bufs, started).run(ring))
                .expect("spawn a media worker thread");
            shards.push(shard);
            threads.push(thread);
        }
        Self {
            shards,
            routes: Mutex::new(HashMap::new()),
            cursor: AtomicUsize::new(0),
            threads: Mutex::new(threads),
        }
    }

    fn routes(&self) -> MutexGuard<'_, HashMap<String, usize>> {
        self.routes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The shard of a session; with `assign`, a new session goes to the
    /// shard with the fewest sessions (round-robin among equals).
    fn route(&self, id: &str, assign: bool) -> Option<usize> {
        let mut routes = self.routes();
        if let Some(&i) = routes.get(id) {
            return Some(i);
        }
        if !assign {
            return None;
        }
        let n = self.shards.len();
        let start = self.cursor.fetch_add(1, Ordering::Relaxed) % n;
        let i = (0..n)
            .map(|k| (start + k) % n)
            .min_by_key(|&i| self.shards[i].counters.sessions())
            .unwrap_or(0);
        routes.insert(id.to_owned(), i);
        Some(i)
    }

    /// Runs `f` on the shard owning `id` (assigning one to a new session),
    /// then keeps the route table in step with the relay: a session `f`
    /// created stays routed there, one it deleted (or failed to create)
    /// is forgotten.
    pub(super) fn with_session<R>(
        &self,
        id: &str,
        assign: bool,
        mut f: impl FnMut(&mut Relay, Instant) -> R,
    ) -> Option<R> {
        let i = self.route(id, assign)?;
        let shard = &self.shards[i];
        let mut relay = shard.relay();
        let r = shard.run(&mut relay, &mut f);
        let exists = relay.stats(id).is_some();
        {
            let mut routes = self.routes();
            if exists {
                if !routes.contains_key(id) {
                    routes.insert(id.to_owned(), i);
                }
            } else {
                routes.remove(id);
            }
        }
        drop(relay);
        shard.wake();
        Some(r)
    }

    /// Runs `f` on the only shard.
    pub(super) fn with_relay<R>(&self, f: impl FnMut(&mut Relay, Instant) -> R) -> R {
        assert!(
            self.shards.len() == 1,
            "RelayHandle::with_relay on a relay sharded over {} workers: use with_session",
            self.shards.len()
        );
        self.shards[0].call(f)
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        for shard in &self.shards {
            shard.stop.store(true, Ordering::Release);
            shard.wake();
        }
        let threads =
            std::mem::take(&mut *self.threads.lock().unwrap_or_else(PoisonError::into_inner));
        for t in threads {
            let _ = t.join();
        }
        tracing::info!(workers = self.shards.len(), "media relay stopped");
    }
}

/// A socket of the worker's shard.
struct Port {
    socket: PortSocket,
    gen: u32,
    v6: bool,
    /// A multishot receive is in flight (until a completion without MORE).
    armed: bool,
    /// Cancelled; the socket closes when the receive ends.
    closing: bool,
    /// Opened again while closing: bind anew once closed.
    reopen: bool,
    errors: u32,
}

/// A submission queue that flushes itself when full.
struct Queue<'a> {
    submitter: Submitter<'a>,
    sq: SubmissionQueue<'a>,
}

impl Queue<'_> {
    /// Queues `entry`; false if the queue stays full.
    ///
    /// # Safety
    /// Everything `entry` points to must stay valid until its completion.
    unsafe fn push(&mut self, entry: &squeue::Entry) -> bool {
        for _ in 0..3 {
            if self.sq.push(entry).is_ok() {
                return true;
            }
            self.flush();
        }
        false
    }

    fn flush(&mut self) {
        self.sq.sync();
        if let Err(e) = self.submitter.submit() {
            tracing::debug!(error = %e, "io_uring submit failed");
        }
        self.sq.sync();
    }
}

/// A worker's state, apart from its ring.
struct Worker {
    index: usize,
    shard: Arc<Shard>,
    bufs: BufRing,
    sends: SendPool,
    ports: HashMap<u16, Port>,
    recv_hdr: Box<libc::msghdr>,
    /// Controls taken from the shard's queue, and ops that could not be
    /// queued yet; both reused across iterations.
    controls: Vec<Control>,
    retry: Vec<Control>,
    gen: u32,
    wake_armed: bool,
    woken: bool,
    deadline: Instant,
    started: Instant,
    batch: BatchCounts,
}

impl Worker {
    fn new(index: usize, shard: Arc<Shard>, bufs: BufRing, started: Instant) -> Self {
        Self {
            index,
            shard,
            bufs,
            sends: SendPool::new(SEND_SLOTS),
            ports: HashMap::new(),
            recv_hdr: recv_msghdr(),
            controls: Vec::with_capacity(64),
            retry: Vec::with_capacity(64),
            gen: 0,
            wake_armed: false,
            woken: true,
            deadline: Instant::now(),
            started,
            batch: BatchCounts::default(),
        }
    }

    fn run(mut self, mut ring: IoUring) {
        tracing::debug!(worker = self.index, "media worker started");
        let (submitter, sq, mut cq) = ring.split();
        let mut q = Queue { submitter, sq };
        loop {
            let busy = Instant::now();
            self.shard.counters.beat(self.started);
            if self.shard.stop.load(Ordering::Acquire) {
                break;
            }
            self.arm_wake(&mut q);
            self.take_controls(&mut q);
            self.bufs.publish();
            q.sq.sync();
            self.shard.counters.add_busy(busy.elapsed());

            // One enter: submits the previous batch's sends and new arms,
            // sleeps until a completion, a control wakeup or the timer.
            let wait = self.deadline.saturating_duration_since(Instant::now());
            let ts = Timespec::from(wait);
            let args = SubmitArgs::new().timespec(&ts);
            match q.submitter.submit_with_args(1, &args) {
                Ok(_) => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::ETIME | libc::EINTR)) => {}
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
                Err(e) => {
                    tracing::warn!(worker = self.index, error = %e, "io_uring wait failed");
                    thread::sleep(Duration::from_millis(10));
                }
            }
            q.sq.sync();

            let busy = Instant::now();
            let now = busy;
            cq.sync();
            let shard = self.shard.clone();
            let mut relay = shard.relay();
            for cqe in &mut cq {
                self.complete(&cqe, Some(&mut relay), &mut q, now);
            }
            if now >= self.deadline {
                let outputs = relay.handle_timeout(now);
                self.send_all(outputs, &mut q);
            }
            if now >= self.deadline || self.woken {
                self.woken = false;
                let cap = now + TICK;
                self.deadline = relay.poll_timeout().map_or(cap, |t| t.min(cap));
            }
            while let Some(event) = relay.poll_event() {
                let _ = shard.events.send(event);
            }
            drop(relay);
            cq.sync();
            shard.counters.add(&std::mem::take(&mut self.batch));
            shard.counters.add_busy(busy.elapsed());
        }
        self.shutdown(&mut q, &mut cq);
        drop(q);
        drop(cq);
        let clean = self.ports.is_empty() && self.sends.in_flight() == 0;
        // Closing the ring cancels what is left; buffers the kernel may
        // still write are leaked rather than freed under it.
        drop(ring);
        if !clean {
            tracing::warn!(
                worker = self.index,
                "media worker stopped with I/O in flight"
            );
            std::mem::forget(self.bufs);
            std::mem::forget(self.sends);
            return;
        }
        tracing::debug!(worker = self.index, "media worker stopped");
    }

    /// Cancels every receive and waits (briefly) for them and the sends.
    fn shutdown(&mut self, q: &mut Queue<'_>, cq: &mut io_uring::CompletionQueue<'_>) {
        let ports: Vec<u16> = self.ports.keys().copied().collect();
        for port in ports {
            self.close(port, q);
        }
        let until = Instant::now() + STOP_GRACE;
        while (!self.ports.is_empty() || self.sends.in_flight() > 0) && Instant::now() < until {
            self.take_retries(q);
            self.bufs.publish();
            q.sq.sync();
            let ts = Timespec::from(Duration::from_millis(50));
            let args = SubmitArgs::new().timespec(&ts);
            let _ = q.submitter.submit_with_args(1, &args);
            q.sq.sync();
            cq.sync();
            let now = Instant::now();
            for cqe in &mut *cq {
                self.complete(&cqe, None, q, now);
            }
            cq.sync();
        }
    }

    fn arm_wake(&mut self, q: &mut Queue<'_>) {
        if self.wake_armed {
            return;
        }
        let entry = opcode::PollAdd::new(Fd(self.shard.wake.as_raw_fd()), libc::POLLIN as u32)
            .multi(true)
            .build()
            .user_data(TAG_WAKE << TAG_SHIFT);
        // SAFETY: the eventfd lives in the shard, which outlives the ring.
        self.wake_armed = unsafe { q.push(&entry) };
    }

    fn take_controls(&mut self, q: &mut Queue<'_>) {
        self.take_retries(q);
        std::mem::swap(&mut self.controls, &mut *self.shard.controls());
        let mut controls = std::mem::take(&mut self.controls);
        for c in controls.drain(..) {
            self.control(c, q);
        }
        self.controls = controls;
    }

    fn take_retries(&mut self, q: &mut Queue<'_>) {
        if self.retry.is_empty() {
            return;
        }
        let mut retry = std::mem::take(&mut self.retry);
        for c in retry.drain(..) {
            self.control(c, q);
        }
        if self.retry.is_empty() {
            self.retry = retry;
        }
    }

    fn control(&mut self, c: Control, q: &mut Queue<'_>) {
        match c {
            Control::Open(port, socket) => self.open(port, socket, q),
            Control::Close(port) => self.close(port, q),
        }
    }

    fn open(&mut self, port: u16, socket: Option<PortSocket>, q: &mut Queue<'_>) {
        if let Some(p) = self.ports.get_mut(&port) {
            if p.closing {
                p.reopen = true;
            } else if !p.armed {
                // A retried arm.
                self.arm(port, q);
            }
            return;
        }
        let socket = match socket {
            Some(s) => s,
            None => match bind_std(SocketAddr::new(self.shard.bind_ip, port)) {
                Ok(s) => PortSocket::new(s, port, &self.shard.claims),
                Err(e) => {
                    tracing::warn!(port, error = %e, "cannot bind media port");
                    return;
                }
            },
        };
        self.gen = self.gen.wrapping_add(1);
        let v6 = socket.local_addr().is_ok_and(|a| a.is_ipv6());
        self.ports.insert(
            port,
            Port {
                socket,
                gen: self.gen,
                v6,
                armed: false,
                closing: false,
                reopen: false,
                errors: 0,
            },
        );
        self.arm(port, q);
    }

    fn arm(&mut self, port: u16, q: &mut Queue<'_>) {
        let Some(p) = self.ports.get_mut(&port) else {
            return;
        };
        let entry = opcode::RecvMsgMulti::new(Fd(p.socket.as_raw_fd()), &*self.recv_hdr, BGID)
            .build()
            .user_data(recv_data(port, p.gen));
        // SAFETY: the msghdr is boxed for the worker's life; the socket is
        // closed only after this receive's last completion.
        if unsafe { q.push(&entry) } {
            p.armed = true;
        } else {
            self.retry.push(Control::Open(port, None));
        }
    }

    fn close(&mut self, port: u16, q: &mut Queue<'_>) {
        let Some(p) = self.ports.get_mut(&port) else {
            return;
        };
        if !p.armed {
            // Sends queued from this socket must reach the kernel (which
            // then holds the file) before the descriptor can be reused.
            q.flush();
            self.ports.remove(&port);
            return;
        }
        p.closing = true;
        p.reopen = false;
        let entry = opcode::AsyncCancel::new(recv_data(port, p.gen))
            .build()
            .user_data(TAG_CANCEL << TAG_SHIFT);
        // SAFETY: a cancel points to nothing.
        if !unsafe { q.push(&entry) } {
            p.closing = false;
            self.retry.push(Control::Close(port));
        }
    }

    fn complete(
        &mut self,
        cqe: &cqueue::Entry,
        relay: Option<&mut Relay>,
        q: &mut Queue<'_>,
        now: Instant,
    ) {
        let data = cqe.user_data();
        let res = cqe.result();
        let flags = cqe.flags();
        match data >> TAG_SHIFT {
            TAG_RECV => {
                let port = data as u16;
                let gen = (data >> 16) as u32;
                let bid = cqueue::buffer_select(flags);
                if let (Some(bid), Ok(len), Some(relay)) = (bid, usize::try_from(res), relay) {
                    self.receive(port, gen, bid, len, relay, q, now);
                }
                if let Some(bid) = bid {
                    self.bufs.give_back(bid);
                }
                if !cqueue::more(flags) {
                    self.receive_ended(port, gen, res, q);
                }
            }
            TAG_SEND => {
                self.sends.release(data as u16);
                if res < 0 {
                    self.batch.send_errors += 1;
                    tracing::trace!(error = %io::Error::from_raw_os_error(-res), "send failed");
                }
            }
            TAG_WAKE => {
                self.woken = true;
                let mut count = 0u64;
                // SAFETY: reads 8 bytes into a live u64 from our eventfd
                // (non-blocking: an empty counter returns EAGAIN).
                let _ = unsafe {
                    libc::read(
                        self.shard.wake.as_raw_fd(),
                        std::ptr::from_mut(&mut count).cast(),
                        std::mem::size_of::<u64>(),
                    )
                };
                if !cqueue::more(flags) {
                    self.wake_armed = false;
                }
            }
            _ => {}
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn receive(
        &mut self,
        port: u16,
        gen: u32,
        bid: u16,
        len: usize,
        relay: &mut Relay,
        q: &mut Queue<'_>,
        now: Instant,
    ) {
        let Some(p) = self.ports.get_mut(&port) else {
            return;
        };
        if p.gen != gen || p.closing {
            return;
        }
        p.errors = 0;
        // SAFETY: the completion handed `bid` over; it is given back only
        // after this function.
        let buf = unsafe { self.bufs.filled(bid, len) };
        let Ok(msg) = RecvMsgOut::parse(buf, &self.recv_hdr) else {
            return;
        };
        let Some(from) = parse_sockaddr(msg.name_data()) else {
            return;
        };
        let payload = msg.payload_data();
        self.batch.packets_in += 1;
        self.batch.bytes_in += payload.len() as u64;
        let outputs = relay.handle_packet(port, from, payload, now);
        self.send_all(outputs, q);
    }

    /// A multishot receive ended: close a cancelled port, re-arm the rest
    /// (ENOBUFS when the buffer ring ran dry, ICMP errors...).
    fn receive_ended(&mut self, port: u16, gen: u32, res: i32, q: &mut Queue<'_>) {
        let Some(p) = self.ports.get_mut(&port) else {
            return;
        };
        if p.gen != gen {
            return;
        }
        p.armed = false;
        if p.closing {
            let reopen = p.reopen;
            // Drops the socket (after queued sends reach the kernel): the
            // port is free again.
            q.flush();
            self.ports.remove(&port);
            if reopen {
                self.open(port, None, q);
            }
            return;
        }
        if res == -libc::ENOBUFS {
            self.batch.recv_no_buffers += 1;
        } else if res < 0 {
            self.batch.recv_errors += 1;
            p.errors += 1;
            tracing::debug!(port, error = %io::Error::from_raw_os_error(-res), "receive failed");
            if p.errors > MAX_RECV_ERRORS {
                tracing::warn!(port, "media port keeps failing; no longer receiving on it");
                return;
            }
        }
        self.arm(port, q);
    }

    /// Queues a SendMsg per output, from pre-allocated slots.
    fn send_all(&mut self, outputs: Outputs<'_>, q: &mut Queue<'_>) {
        for d in outputs.iter() {
            let Some(p) = self.ports.get(&d.local_port) else {
                continue;
            };
            self.batch.packets_out += 1;
            self.batch.bytes_out += d.data.len() as u64;
            let fd = p.socket.as_raw_fd();
            if let Some((slot, hdr)) = self.sends.fill(d.data, d.to, p.v6) {
                let entry = opcode::SendMsg::new(Fd(fd), hdr)
                    .build()
                    .user_data((TAG_SEND << TAG_SHIFT) | u64::from(slot));
                // SAFETY: the slot is not reused before this send's
                // completion releases it; the queue is flushed before a
                // socket is closed, and the kernel holds the file after.
                if unsafe { q.push(&entry) } {
                    continue;
                }
                self.sends.release(slot);
            }
            if !send_now(fd, d.data, d.to, p.v6) {
                self.batch.send_errors += 1;
            }
        }
    }
}

/// Sends a datagram with a direct, non-blocking `sendto`: for when every
/// send slot is in flight or the datagram is larger than a slot.
fn send_now(fd: RawFd, data: &[u8], to: SocketAddr, v6: bool) -> bool {
    // SAFETY: plain C struct; zeroed is valid.
    let mut addr: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    let Some(len) = write_sockaddr(to, v6, &mut addr) else {
        return false;
    };
    // SAFETY: `data` and `addr` are live for the call.
    let n = unsafe {
        libc::sendto(
            fd,
            data.as_ptr().cast(),
            data.len(),
            libc::MSG_DONTWAIT,
            std::ptr::from_ref(&addr).cast(),
            len,
        )
    };
    n >= 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockaddr_round_trip() {
        for to in [
            "192.0.2.7:5004".parse::<SocketAddr>().unwrap(),
            "[2001:db8::7]:5006".parse().unwrap(),
        ] {
            let mut raw: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
            let len = write_sockaddr(to, to.is_ipv6(), &mut raw).unwrap() as usize;
            // SAFETY: `raw` is 28 plain bytes.
            let bytes =
                unsafe { std::slice::from_raw_parts(std::ptr::from_ref(&raw).cast::<u8>(), len) };
            assert_eq!(parse_sockaddr(bytes), Some(to));
        }
    }

    #[test]
    fn ipv4_goes_mapped_on_ipv6_sockets() {
        let mut raw: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
        let to: SocketAddr = "192.0.2.7:5004".parse().unwrap();
        write_sockaddr(to, true, &mut raw).unwrap();
        assert_eq!(i32::from(raw.sin6_family), libc::AF_INET6);
        let v6: SocketAddr = "[2001:db8::7]:5006".parse().unwrap();
        assert_eq!(write_sockaddr(v6, false, &mut raw), None);
    }

    #[test]
    fn send_pool_recycles_slots() {
        let mut pool = SendPool::new(2);
        let to: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let (a, _) = pool.fill(b"a", to, false).unwrap();
        let (b, _) = pool.fill(b"b", to, false).unwrap();
        assert!(pool.fill(b"c", to, false).is_none());
        assert!(pool.fill(&[0; SEND_BUF_LEN + 1], to, false).is_none());
        pool.release(a);
        assert_eq!(pool.in_flight(), 1);
        pool.release(b);
        assert_eq!(pool.in_flight(), 0);
    }
}
