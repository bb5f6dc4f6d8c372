//! UDP sockets with big buffers and kernel receive timestamps, and
//! recvmmsg/sendmmsg batches.

use std::io;
use std::mem;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};

/// The largest datagram handled.
pub const MAX_DATAGRAM: usize = 2048;

/// CLOCK_REALTIME now, in nanoseconds.
pub fn realtime_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn setsockopt_int(fd: RawFd, level: i32, name: i32, value: i32) -> io::Result<()> {
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            &value as *const i32 as *const libc::c_void,
            mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sets the receive and send buffers to `bytes`, past net.core.*mem_max
/// when allowed (root: SO_*BUFFORCE), else as far as the limits allow.
pub fn set_buffers(fd: RawFd, bytes: usize) {
    let b = bytes.min(i32::MAX as usize) as i32;
    if setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, b).is_err() {
        let _ = setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, b);
    }
    if setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, b).is_err() {
        let _ = setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUF, b);
    }
}

/// A non-blocking (or blocking) UDP socket bound to `addr`, with `buffers`
/// bytes of socket buffer and, with `timestamps`, SO_TIMESTAMPNS.
pub fn udp_socket(
    addr: SocketAddr,
    buffers: usize,
    timestamps: bool,
    nonblocking: bool,
) -> io::Result<UdpSocket> {
    let s = UdpSocket::bind(addr)?;
    set_buffers(s.as_raw_fd(), buffers);
    if timestamps {
        setsockopt_int(s.as_raw_fd(), libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1)?;
    }
    s.set_nonblocking(nonblocking)?;
    Ok(s)
}

fn to_sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    let mut ss: libc::sockaddr_storage = unsafe { mem::zeroed() };
    match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            unsafe { std::ptr::write(&mut ss as *mut _ as *mut libc::sockaddr_in, sin) };
            (ss, mem::size_of::<libc::sockaddr_in>() as libc::socklen_t)
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            unsafe { std::ptr::write(&mut ss as *mut _ as *mut libc::sockaddr_in6, sin6) };
            (ss, mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t)
        }
    }
}

fn from_sockaddr(ss: &libc::sockaddr_storage) -> SocketAddr {
    match ss.ss_family as i32 {
        libc::AF_INET => {
            let sin = unsafe { &*(ss as *const _ as *const libc::sockaddr_in) };
            SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes()),
                u16::from_be(sin.sin_port),
            ))
        }
        libc::AF_INET6 => {
            let sin6 = unsafe { &*(ss as *const _ as *const libc::sockaddr_in6) };
            SocketAddr::new(
                std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr).into(),
                u16::from_be(sin6.sin6_port),
            )
        }
        _ => SocketAddr::from(([0, 0, 0, 0], 0)),
    }
}

const CONTROL_LEN: usize = 64;

/// Room for up to `n` datagrams per recvmmsg call.
pub struct RecvBatch {
    bufs: Vec<u8>,
    addrs: Vec<libc::sockaddr_storage>,
    control: Vec<[u8; CONTROL_LEN]>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
    count: usize,
}

impl RecvBatch {
    /// A batch of `n` slots.
    pub fn new(n: usize) -> Self {
        Self {
            bufs: vec![0; n * MAX_DATAGRAM],
            addrs: vec![unsafe { mem::zeroed() }; n],
            control: vec![[0; CONTROL_LEN]; n],
            iovs: vec![
                libc::iovec {
                    iov_base: std::ptr::null_mut(),
                    iov_len: 0
                };
                n
            ],
            hdrs: vec![unsafe { mem::zeroed() }; n],
            count: 0,
        }
    }

    /// Slots.
    pub fn capacity(&self) -> usize {
        self.hdrs.len()
    }

    /// One recvmmsg: `blocking` waits for the first datagram
    /// (MSG_WAITFORONE), otherwise MSG_DONTWAIT. Returns how many arrived.
    pub fn recv(&mut self, fd: RawFd, blocking: bool) -> io::Result<usize> {
        let n = self.hdrs.len();
        for i in 0..n {
            self.iovs[i] = libc::iovec {
                iov_base: self.bufs[i * MAX_DATAGRAM..].as_mut_ptr() as *mut libc::c_void,
                iov_len: MAX_DATAGRAM,
            };
            let h = &mut self.hdrs[i].msg_hdr;
            h.msg_name = &mut self.addrs[i] as *mut _ as *mut libc::c_void;
            h.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &mut self.iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = self.control[i].as_mut_ptr() as *mut libc::c_void;
            h.msg_controllen = CONTROL_LEN as _;
            h.msg_flags = 0;
            self.hdrs[i].msg_len = 0;
        }
        let flags = if blocking {
            libc::MSG_WAITFORONE
        } else {
            libc::MSG_DONTWAIT
        };
        let r = unsafe {
            libc::recvmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                n as libc::c_uint,
                flags as _,
                std::ptr::null_mut(),
            )
        };
        if r < 0 {
            self.count = 0;
            return Err(io::Error::last_os_error());
        }
        self.count = r as usize;
        Ok(self.count)
    }

    /// Datagrams of the last call.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the last call got nothing.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Datagram `i`: its bytes (mutable, for in-place stamping), source and
    /// kernel receive timestamp (0 when absent).
    pub fn get(&mut self, i: usize) -> (&mut [u8], SocketAddr, u64) {
        let len = self.hdrs[i].msg_len as usize;
        let from = from_sockaddr(&self.addrs[i]);
        let ts = self.timestamp(i);
        (
            &mut self.bufs[i * MAX_DATAGRAM..i * MAX_DATAGRAM + len],
            from,
            ts,
        )
    }

    fn timestamp(&self, i: usize) -> u64 {
        let h = &self.hdrs[i].msg_hdr;
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(h);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SO_TIMESTAMPNS {
                    let ts = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::timespec);
                    return ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64;
                }
                c = libc::CMSG_NXTHDR(h, c);
            }
        }
        0
    }
}

/// Up to `n` outgoing datagrams, sent with one sendmmsg.
pub struct SendBatch {
    bufs: Vec<u8>,
    lens: Vec<usize>,
    addrs: Vec<(libc::sockaddr_storage, libc::socklen_t)>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
    count: usize,
    /// Datagrams the kernel refused (full buffer...), over the batch's life.
    pub failed: u64,
    /// Datagrams handed to the kernel.
    pub sent: u64,
}

impl SendBatch {
    /// A batch of `n` slots.
    pub fn new(n: usize) -> Self {
        Self {
            bufs: vec![0; n * MAX_DATAGRAM],
            lens: vec![0; n],
            addrs: vec![(unsafe { mem::zeroed() }, 0); n],
            iovs: vec![
                libc::iovec {
                    iov_base: std::ptr::null_mut(),
                    iov_len: 0
                };
                n
            ],
            hdrs: vec![unsafe { mem::zeroed() }; n],
            count: 0,
            failed: 0,
            sent: 0,
        }
    }

    /// Whether no slot is left.
    pub fn is_full(&self) -> bool {
        self.count == self.hdrs.len()
    }

    /// Queued datagrams.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Queues a copy of `data` to `to`; the caller flushes when full.
    pub fn push(&mut self, data: &[u8], to: SocketAddr) {
        debug_assert!(!self.is_full());
        let len = data.len().min(MAX_DATAGRAM);
        let i = self.count;
        self.bufs[i * MAX_DATAGRAM..i * MAX_DATAGRAM + len].copy_from_slice(&data[..len]);
        self.lens[i] = len;
        self.addrs[i] = to_sockaddr(to);
        self.count += 1;
    }

    /// Queues a datagram written in place by `fill`, which returns its
    /// length.
    pub fn push_with(&mut self, to: SocketAddr, fill: impl FnOnce(&mut [u8]) -> usize) {
        debug_assert!(!self.is_full());
        let i = self.count;
        let len = fill(&mut self.bufs[i * MAX_DATAGRAM..(i + 1) * MAX_DATAGRAM]);
        self.lens[i] = len.min(MAX_DATAGRAM);
        self.addrs[i] = to_sockaddr(to);
        self.count += 1;
    }

    /// The bytes of queued datagram `i` (for last-moment stamping).
    pub fn slot_mut(&mut self, i: usize) -> &mut [u8] {
        let len = self.lens[i];
        &mut self.bufs[i * MAX_DATAGRAM..i * MAX_DATAGRAM + len]
    }

    /// Sends everything queued with as few sendmmsg calls as the kernel
    /// takes; datagrams it refuses are counted in `failed` and dropped.
    pub fn flush(&mut self, fd: RawFd) {
        let n = self.count;
        for i in 0..n {
            self.iovs[i] = libc::iovec {
                iov_base: self.bufs[i * MAX_DATAGRAM..].as_mut_ptr() as *mut libc::c_void,
                iov_len: self.lens[i],
            };
            let h = &mut self.hdrs[i].msg_hdr;
            h.msg_name = &mut self.addrs[i].0 as *mut _ as *mut libc::c_void;
            h.msg_namelen = self.addrs[i].1;
            h.msg_iov = &mut self.iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = std::ptr::null_mut();
            h.msg_controllen = 0;
            h.msg_flags = 0;
        }
        let mut done = 0;
        while done < n {
            let r = unsafe {
                libc::sendmmsg(
                    fd,
                    self.hdrs[done..].as_mut_ptr(),
                    (n - done) as libc::c_uint,
                    libc::MSG_DONTWAIT as _,
                )
            };
            if r <= 0 {
                // The first remaining datagram failed (ECONNREFUSED from an
                // earlier ICMP, EAGAIN...): drop it and go on.
                self.failed += 1;
                done += 1;
            } else {
                self.sent += r as u64;
                done += r as usize;
            }
        }
        self.count = 0;
    }
}
