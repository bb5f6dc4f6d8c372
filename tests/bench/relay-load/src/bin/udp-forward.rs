//! udp-forward: the raw baseline of the relay benchmark. Forwards RTP
//! between the generator (`relay-load --plain`) and the echo with no
//! parsing beyond the SSRC, no crypto and batched system calls, on one
//! thread (epoll + recvmmsg/sendmmsg). What is left of a relay's per-packet
//! cost once the relay logic is gone: the kernel's UDP paths.
//!
//! Two layouts:
//!
//!   udp-forward --mode shared --a 127.0.0.1:10010 --b 127.0.0.1:10012 --to ECHO
//!     One socket per side for every call: packets from the generator
//!     arrive on A and leave B towards the echo; echoed packets come back
//!     on B and leave A towards the address that last sent that SSRC. One
//!     recvmmsg/sendmmsg moves up to --batch packets of many calls: the
//!     floor of the kernel cost per packet.
//!
//!   udp-forward --mode ports --base 20000 --calls N --to ECHO
//!     A port pair per call, as a relay has (call i: generator side
//!     base+2i, echo side base+2i+1; the generator side latches to the
//!     first source): epoll wakes per socket and batches only what one
//!     socket has queued, which at 50 packets/s per call is usually one.

use relay_load::args::Args;
use relay_load::net::{udp_socket, RecvBatch, SendBatch};
use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};

const USAGE: &str =
    "usage: udp-forward --mode shared --a IP:PORT --b IP:PORT --to IP:PORT [--batch 64]\n       \
udp-forward --mode ports --base PORT --calls N [--ip 127.0.0.1] --to IP:PORT [--batch 16]";

fn ssrc(p: &[u8]) -> Option<u32> {
    p.get(8..12)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn epoll_add(ep: RawFd, fd: RawFd, token: u64) {
    let mut ev = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: token,
    };
    if unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, &mut ev) } != 0 {
        eprintln!(
            "udp-forward: epoll_ctl: {}",
            std::io::Error::last_os_error()
        );
        std::process::exit(1);
    }
}

fn bind(addr: SocketAddr, buffer: usize) -> UdpSocket {
    udp_socket(addr, buffer, false, true).unwrap_or_else(|e| {
        eprintln!("udp-forward: bind {addr}: {e}");
        std::process::exit(1);
    })
}

fn main() {
    let a = Args::parse("udp-forward", USAGE, &[]);
    let mode: String = a.or("mode", "shared".to_string());
    let to: SocketAddr = a.req("to");
    let ep = unsafe { libc::epoll_create1(0) };
    if ep < 0 {
        eprintln!("udp-forward: epoll_create1 failed");
        std::process::exit(1);
    }
    match mode.as_str() {
        "shared" => shared(&a, ep, to),
        "ports" => ports(&a, ep, to),
        m => a.die(&format!("unknown --mode {m}")),
    }
}

fn shared(a: &Args, ep: RawFd, to: SocketAddr) {
    let batch: usize = a.or("batch", 64);
    let buffer: usize = a.or("buffer", 32 << 20);
    let sa = bind(a.req("a"), buffer);
    let sb = bind(a.req("b"), buffer);
    let (fa, fb) = (sa.as_raw_fd(), sb.as_raw_fd());
    epoll_add(ep, fa, 0);
    epoll_add(ep, fb, 1);
    let mut rx = RecvBatch::new(batch);
    let mut tx = SendBatch::new(batch);
    let mut back: HashMap<u32, SocketAddr> = HashMap::new();
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 4];
    eprintln!(
        "udp-forward: shared {} <-> {} -> {to}",
        sa.local_addr().unwrap(),
        sb.local_addr().unwrap()
    );
    loop {
        let n = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as i32, -1) };
        if n < 0 {
            continue;
        }
        for e in &events[..n as usize] {
            let from_a = e.u64 == 0;
            let (inf, outf) = if from_a { (fa, fb) } else { (fb, fa) };
            while let Ok(got) = rx.recv(inf, false) {
                for i in 0..got {
                    let (d, src, _) = rx.get(i);
                    let Some(s) = ssrc(d) else { continue };
                    if from_a {
                        back.insert(s, src);
                        tx.push(d, to);
                    } else if let Some(dst) = back.get(&s) {
                        tx.push(d, *dst);
                    }
                }
                tx.flush(outf);
                if got < rx.capacity() {
                    break;
                }
            }
        }
    }
}

fn ports(a: &Args, ep: RawFd, to: SocketAddr) {
    let batch: usize = a.or("batch", 16);
    let buffer: usize = a.or("buffer", 1 << 20);
    let base: u16 = a.req("base");
    let calls: usize = a.req("calls");
    let ip: std::net::IpAddr = a.or("ip", "127.0.0.1".parse().unwrap());
    let mut socks = Vec::with_capacity(calls * 2);
    for i in 0..calls * 2 {
        let port = base as usize + i;
        if port > 65535 {
            a.die("--base + 2 * --calls exceeds the port range");
        }
        let s = bind(SocketAddr::new(ip, port as u16), buffer);
        epoll_add(ep, s.as_raw_fd(), i as u64);
        socks.push(s);
    }
    let fds: Vec<RawFd> = socks.iter().map(|s| s.as_raw_fd()).collect();
    let mut latched: Vec<Option<SocketAddr>> = vec![None; calls];
    let mut rx = RecvBatch::new(batch);
    let mut tx = SendBatch::new(batch);
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
    eprintln!("udp-forward: {calls} port pairs from {ip}:{base} -> {to}");
    loop {
        let n = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as i32, -1) };
        if n < 0 {
            continue;
        }
        for e in &events[..n as usize] {
            let k = e.u64 as usize;
            let call = k / 2;
            let from_a = k.is_multiple_of(2);
            let (inf, outf) = if from_a {
                (fds[k], fds[k + 1])
            } else {
                (fds[k], fds[k - 1])
            };
            while let Ok(got) = rx.recv(inf, false) {
                for i in 0..got {
                    let (d, src, _) = rx.get(i);
                    if from_a {
                        latched[call] = Some(src);
                        tx.push(d, to);
                    } else if let Some(dst) = latched[call] {
                        tx.push(d, dst);
                    }
                }
                tx.flush(outf);
                if got < rx.capacity() {
                    break;
                }
            }
        }
    }
}
