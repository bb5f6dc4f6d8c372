//! rtp-echo: the trunk side of the relay benchmark. Sends every datagram
//! back to where it came from, from one UDP socket, in batches
//! (recvmmsg/sendmmsg). Benchmark packets (see `relay_load::payload`) get
//! two timestamps on the way: the kernel's receive time of the datagram
//! (SO_TIMESTAMPNS) and the time just before the batch is handed back to
//! the kernel, so the generator can tell the two one-way trips through the
//! relay apart instead of halving a round trip. RTCP and anything else is
//! dropped.
//!
//!   rtp-echo --listen 127.0.0.1:10002 [--batch 64] [--buffer 33554432]
//!
//! Why not sipp -rtp_echo: sipp echoes on one blocking thread per media
//! socket with one recvfrom/sendto per packet and no timestamps; here both
//! directions of the relay are timed separately with kernel receive
//! timestamps, and batching keeps the echo's share of the load core small.

use relay_load::args::Args;
use relay_load::net::{realtime_ns, udp_socket, RecvBatch, SendBatch};
use relay_load::payload;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

const USAGE: &str = "usage: rtp-echo --listen IP:PORT [--batch 64] [--buffer BYTES]";

fn main() {
    let a = Args::parse("rtp-echo", USAGE, &[]);
    let listen: SocketAddr = a.req("listen");
    let batch: usize = a.or("batch", 64);
    let buffer: usize = a.or("buffer", 32 << 20);
    let sock = udp_socket(listen, buffer, true, false).unwrap_or_else(|e| {
        eprintln!("rtp-echo: bind {listen}: {e}");
        std::process::exit(1);
    });
    let fd = sock.as_raw_fd();
    let mut rx = RecvBatch::new(batch);
    let mut tx = SendBatch::new(batch);
    eprintln!("rtp-echo: listening on {listen}");
    loop {
        let n = match rx.recv(fd, true) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                // ICMP errors of earlier sends surface here; keep going.
                if e.raw_os_error() != Some(libc::ECONNREFUSED) {
                    eprintln!("rtp-echo: recv: {e}");
                }
                continue;
            }
        };
        for i in 0..n {
            let (data, from, kts) = rx.get(i);
            // RTP only (RFC 5761: payload types 72-76 with the marker bit
            // are RTCP).
            if data.len() < 12 || data[0] >> 6 != 2 || (192..=223).contains(&data[1]) {
                continue;
            }
            let t = if kts != 0 { kts } else { realtime_ns() };
            payload::stamp_echo_rx(data, t);
            tx.push(data, from);
        }
        if !tx.is_empty() {
            let now = realtime_ns();
            for i in 0..tx.len() {
                payload::stamp_echo_tx(tx.slot_mut(i), now);
            }
            tx.flush(fd);
        }
    }
}
