//! Loopback ping-pong through the relay on each data path: plain ⇄ plain
//! sessions, each with a client thread (A) sending and waiting for the
//! echo of an echo thread (B). Reports relayed packets per second and
//! round-trip percentiles (two relay hops each). Figures, not pass/fail;
//! on a small shared machine they show the paths' relative cost.
//!
//! `cargo bench -p media --bench data_paths`; `BENCH_ROUNDS` (default
//! 20000 round trips per path), `BENCH_SESSIONS` (8), `BENCH_WORKERS`
//! (io_uring workers, default: one per core).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use media::driver::{self, DataPath, DriverOptions};
use media::{DtlsCertificate, LegKind, OfferOptions, RelayConfig, Side};

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn plain_sdp(addr: SocketAddr) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0\r\n",
        ip = addr.ip(),
        port = addr.port()
    )
}

fn port_of(sdp: &str) -> u16 {
    sdp::SessionDescription::parse(sdp).unwrap().media[0].port()
}

fn rtp(seq: u16) -> [u8; 172] {
    let mut p = [0u8; 172];
    p[0] = 0x80;
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[8..12].copy_from_slice(&0x1234u32.to_be_bytes());
    p
}

fn run(path: DataPath, rounds: usize, sessions: usize, workers: Option<usize>) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let mut config = RelayConfig::new(LOOPBACK);
    // Below the ephemeral range the peers' sockets come from.
    config.ports = 25000..=25999;
    let options = DriverOptions {
        data_path: Some(path),
        workers,
    };
    let cert = DtlsCertificate::process().unwrap().clone();
    let (handle, _events) = driver::spawn_sharded(config, cert, LOOPBACK, options);
    assert_eq!(handle.data_path(), path);

    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    let mut echoes = Vec::new();
    for s in 0..sessions {
        let a = UdpSocket::bind((LOOPBACK, 0)).unwrap();
        let b = UdpSocket::bind((LOOPBACK, 0)).unwrap();
        let id = format!("bench-{s}");
        let options = OfferOptions {
            peer: Some(LegKind::Plain),
        };
        let offer = plain_sdp(a.local_addr().unwrap());
        let answer = plain_sdp(b.local_addr().unwrap());
        let to_b = handle
            .with_session(&id, |r, now| {
                r.offer_with(&id, Side::A, &offer, options, now)
            })
            .unwrap();
        let to_a = handle
            .with_session(&id, |r, now| r.answer(&id, Side::B, &answer, now))
            .unwrap();
        let relay_a = SocketAddr::new(LOOPBACK, port_of(&to_a));
        let relay_b = SocketAddr::new(LOOPBACK, port_of(&to_b));
        b.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let stop_b = stop.clone();
        echoes.push(std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !stop_b.load(Ordering::Relaxed) {
                if let Ok((n, _)) = b.recv_from(&mut buf) {
                    let _ = b.send_to(&buf[..n], relay_b);
                }
            }
        }));
        let per = rounds / sessions;
        clients.push(std::thread::spawn(move || {
            a.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let mut rtts = Vec::with_capacity(per);
            let mut lost = 0;
            let mut buf = [0u8; 1500];
            for i in 0..per {
                let packet = rtp(i as u16);
                let t = Instant::now();
                a.send_to(&packet, relay_a).unwrap();
                match a.recv_from(&mut buf) {
                    Ok(_) => rtts.push(t.elapsed()),
                    Err(_) => lost += 1,
                }
            }
            (rtts, lost)
        }));
    }
    let started = Instant::now();
    let mut rtts = Vec::new();
    let mut lost = 0;
    for c in clients {
        let (r, l) = c.join().unwrap();
        rtts.extend(r);
        lost += l;
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    for e in echoes {
        e.join().unwrap();
    }
    rtts.sort();
    let pct = |p: f64| {
        rtts.get(((rtts.len() as f64 * p) as usize).min(rtts.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    let relayed = 2 * rtts.len();
    let busy: u64 = handle.worker_stats().iter().map(|w| w.busy_nanos).sum();
    println!(
        "{path:<24} workers {} sessions {sessions}: {relayed} packets relayed in {elapsed:.2?} \
         ({:.0}/s), rtt p50 {:?} p99 {:?}, lost {lost}, relay busy {:.2?}",
        handle.workers(),
        relayed as f64 / elapsed.as_secs_f64(),
        pct(0.5),
        pct(0.99),
        Duration::from_nanos(busy),
    );
}

fn main() {
    // Only under `cargo bench` (which passes --bench), not when
    // `cargo test --all-targets` runs the binary.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let rounds = env("BENCH_ROUNDS", 20_000);
    let sessions = env("BENCH_SESSIONS", 8).max(1);
    let workers = std::env::var("BENCH_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok());
    match driver::io_uring_support() {
        Ok(()) => run(DataPath::IoUring, rounds, sessions, workers),
        Err(reason) => println!("io_uring skipped: {reason}"),
    }
    run(DataPath::TokioEpoll, rounds, sessions, None);
}
