//! sip-udp-relay: a symmetric UDP relay between sipp and a SIP server, for
//! the signalling benchmarks.
//!
//!   sip-udp-relay --listen 127.0.0.1:5062 --upstream 127.0.0.1:5060 [--md5-only]
//!
//! Each client address seen on --listen gets its own upstream socket, so the
//! server sees one distinct source per client and may send requests back to
//! it (callgate and Kamailio with fix_nated_register send INVITEs to the
//! REGISTER's source address); whatever arrives on that socket goes back to
//! the client from --listen.
//!
//! --md5-only removes, from 401 and 407 responses, the WWW-Authenticate /
//! Proxy-Authenticate fields whose algorithm is not MD5. sipp 3.6 answers
//! the first challenge of a response and gives up on any algorithm other
//! than MD5 or AKAv1-MD5, so it cannot authenticate to a server that offers
//! SHA-256 first (RFC 8760 order) without this.
//!
//! Plain blocking threads: one for the listening socket, one per client.
//! Runs until killed.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

static STRIPPED: AtomicU64 = AtomicU64::new(0);

fn die(msg: &str) -> ! {
    eprintln!("sip-udp-relay: {msg}\nusage: sip-udp-relay --listen IP:PORT --upstream IP:PORT [--md5-only]");
    std::process::exit(2);
}

/// 4 MiB buffers both ways (forced: we run as root in the benchmark).
fn big_buffers(s: &UdpSocket) {
    let size: libc::c_int = 4 << 20;
    for (force, plain) in [
        (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
        (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
    ] {
        unsafe {
            let p = &size as *const libc::c_int as *const libc::c_void;
            let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            if libc::setsockopt(s.as_raw_fd(), libc::SOL_SOCKET, force, p, len) != 0 {
                libc::setsockopt(s.as_raw_fd(), libc::SOL_SOCKET, plain, p, len);
            }
        }
    }
}

fn is_challenge(pkt: &[u8]) -> bool {
    pkt.starts_with(b"SIP/2.0 401") || pkt.starts_with(b"SIP/2.0 407")
}

/// Drops non-MD5 digest challenges from a 401/407.
fn md5_only(pkt: &[u8]) -> Cow<'_, [u8]> {
    if !is_challenge(pkt) {
        return Cow::Borrowed(pkt);
    }
    let head_end = match pkt.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(p) => p + 2, // keep the CRLF ending the last header
        None => return Cow::Borrowed(pkt),
    };
    let (head, body) = pkt.split_at(head_end);
    let mut out = Vec::with_capacity(pkt.len());
    let mut dropped = false;
    for line in head.split_inclusive(|&b| b == b'\n') {
        let lower = line.to_ascii_lowercase();
        let is_auth = lower.starts_with(b"www-authenticate:")
            || lower.starts_with(b"proxy-authenticate:");
        let alg_md5 = !contains(&lower, b"algorithm=")
            || contains(&lower, b"algorithm=md5,")
            || contains(&lower, b"algorithm=md5\r")
            || contains(&lower, b"algorithm=md5 ")
            || contains(&lower, b"algorithm=\"md5\"");
        if is_auth && !alg_md5 {
            dropped = true;
            continue;
        }
        out.extend_from_slice(line);
    }
    if !dropped {
        return Cow::Borrowed(pkt);
    }
    STRIPPED.fetch_add(1, Ordering::Relaxed);
    out.extend_from_slice(body);
    Cow::Owned(out)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn main() {
    let mut listen: Option<SocketAddr> = None;
    let mut upstream: Option<SocketAddr> = None;
    let mut strip = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--listen" => listen = args.next().and_then(|v| v.parse().ok()),
            "--upstream" => upstream = args.next().and_then(|v| v.parse().ok()),
            "--md5-only" => strip = true,
            _ => die(&format!("unknown option {a}")),
        }
    }
    let listen = listen.unwrap_or_else(|| die("--listen IP:PORT is required"));
    let upstream = upstream.unwrap_or_else(|| die("--upstream IP:PORT is required"));
    let l = Arc::new(UdpSocket::bind(listen).unwrap_or_else(|e| die(&format!("bind {listen}: {e}"))));
    big_buffers(&l);
    eprintln!(
        "sip-udp-relay: {listen} <-> {upstream}{}",
        if strip { " (non-MD5 challenges removed)" } else { "" }
    );

    let mut clients: HashMap<SocketAddr, UdpSocket> = HashMap::new();
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, src) = match l.recv_from(&mut buf) {
            Ok(x) => x,
            Err(_) => continue,
        };
        let up = clients.entry(src).or_insert_with(|| {
            let u = UdpSocket::bind(SocketAddr::new(upstream.ip(), 0))
                .unwrap_or_else(|e| die(&format!("upstream socket: {e}")));
            u.connect(upstream)
                .unwrap_or_else(|e| die(&format!("connect {upstream}: {e}")));
            big_buffers(&u);
            let back = u.try_clone().expect("clone socket");
            let l2 = l.clone();
            std::thread::spawn(move || {
                let mut b = vec![0u8; 65536];
                loop {
                    // ECONNREFUSED from an ICMP unreachable is not fatal.
                    let n = match back.recv(&mut b) {
                        Ok(n) => n,
                        Err(_) => continue,
                    };
                    let pkt = &b[..n];
                    let out = if strip { md5_only(pkt) } else { Cow::Borrowed(pkt) };
                    let _ = l2.send_to(&out, src);
                }
            });
            u
        });
        let _ = up.send(&buf[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_sha256_keeps_md5() {
        let p = b"SIP/2.0 401 Unauthorized\r\nVia: x\r\nWWW-Authenticate: Digest realm=\"r\", nonce=\"n\", algorithm=SHA-256, qop=\"auth\"\r\nWWW-Authenticate: Digest realm=\"r\", nonce=\"n\", algorithm=MD5, qop=\"auth\"\r\nContent-Length: 0\r\n\r\n";
        let out = md5_only(p);
        let s = String::from_utf8(out.to_vec()).unwrap();
        assert!(!s.contains("SHA-256"), "{s}");
        assert!(s.contains("algorithm=MD5"));
        assert!(s.ends_with("Content-Length: 0\r\n\r\n"));
    }

    #[test]
    fn leaves_other_messages_alone() {
        let p = b"SIP/2.0 200 OK\r\nWWW-Authenticate: Digest algorithm=SHA-256\r\n\r\n";
        assert!(matches!(md5_only(p), Cow::Borrowed(_)));
    }
}
