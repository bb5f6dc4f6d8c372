//! The same relay scenarios over both data paths, forced: io_uring
//! workers (skipped with a note where the kernel refuses io_uring, unless
//! `CALLGATE_REQUIRE_IO_URING` is set) and the tokio/epoll fallback. Real
//! UDP sockets on 127.0.0.1 only. Relay ports stay below Linux's
//! ephemeral range (32768 up), where the peers' sockets get theirs.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

use media::driver::{self, DataPath, DriverOptions, RelayHandle};
use media::{DtlsCertificate, LegKind, OfferOptions, RelayConfig, RelayEvent, Side};
use sdp::SessionDescription;
use tokio::net::UdpSocket;
use tokio::sync::mpsc::UnboundedReceiver;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Starts a relay on `path` with `workers`, or `None` (after a note) when
/// io_uring is asked for and cannot run here.
fn start(
    path: DataPath,
    workers: usize,
    ports: RangeInclusive<u16>,
    media_timeout: Option<Duration>,
) -> Option<(RelayHandle, UnboundedReceiver<RelayEvent>)> {
    if path == DataPath::IoUring {
        if let Err(reason) = driver::io_uring_support() {
            if std::env::var_os("CALLGATE_REQUIRE_IO_URING").is_some() {
                panic!("io_uring required but unavailable: {reason}");
            }
            eprintln!("skipping the io_uring variant: {reason}");
            return None;
        }
    }
    let mut config = RelayConfig::new(LOOPBACK);
    config.ports = ports;
    if let Some(t) = media_timeout {
        config.media_timeout = t;
    }
    let options = DriverOptions {
        data_path: Some(path),
        workers: Some(workers),
    };
    let cert = DtlsCertificate::process().unwrap().clone();
    let (handle, events) = driver::spawn_sharded(config, cert, LOOPBACK, options);
    assert_eq!(handle.data_path(), path, "the forced data path runs");
    Some((handle, events))
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
    SessionDescription::parse(sdp).unwrap().media[0].port()
}

fn rtp(seq: u16, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, 0];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

async fn recv(socket: &UdpSocket, what: &str) -> (Vec<u8>, SocketAddr) {
    let mut buf = [0u8; 1500];
    let (len, from) = tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buf))
        .await
        .unwrap_or_else(|_| panic!("no relayed packet: {what}"))
        .unwrap();
    (buf[..len].to_vec(), from)
}

/// Waits until `port` can be bound again (closing is asynchronous on
/// both paths).
async fn assert_closed(port: u16) {
    let until = Instant::now() + Duration::from_secs(3);
    loop {
        match std::net::UdpSocket::bind((LOOPBACK, port)) {
            Ok(_) => return,
            Err(e) if Instant::now() > until => panic!("port {port} still open: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// A plain RTP endpoint and the relay address it talks to.
struct Peer {
    socket: UdpSocket,
    relay: SocketAddr,
}

/// Offers from A and answers from B (plain ⇄ plain), through the async
/// control calls or the synchronous `with_session`.
async fn open_session(handle: &RelayHandle, id: &str, sync: bool) -> (Peer, Peer) {
    let a = UdpSocket::bind((LOOPBACK, 0)).await.unwrap();
    let b = UdpSocket::bind((LOOPBACK, 0)).await.unwrap();
    let options = OfferOptions {
        peer: Some(LegKind::Plain),
    };
    let offer = plain_sdp(a.local_addr().unwrap());
    let answer = plain_sdp(b.local_addr().unwrap());
    let (to_b, to_a) = if sync {
        let to_b = handle
            .with_session(id, |r, now| r.offer_with(id, Side::A, &offer, options, now))
            .unwrap();
        let to_a = handle
            .with_session(id, |r, now| r.answer(id, Side::B, &answer, now))
            .unwrap();
        (to_b, to_a)
    } else {
        let to_b = handle
            .offer_with(id, Side::A, &offer, options)
            .await
            .unwrap();
        let to_a = handle.answer(id, Side::B, &answer).await.unwrap();
        (to_b, to_a)
    };
    let relay_a = SocketAddr::new(LOOPBACK, port_of(&to_a));
    let relay_b = SocketAddr::new(LOOPBACK, port_of(&to_b));
    (
        Peer {
            socket: a,
            relay: relay_a,
        },
        Peer {
            socket: b,
            relay: relay_b,
        },
    )
}

/// Sends `count` RTP packets from `from` and checks they reach `to` in
/// order, unchanged, from the relay's port on `to`'s side.
async fn relay_packets(from: &Peer, to: &Peer, ssrc: u32, count: u16) {
    for seq in 0..count {
        let packet = rtp(seq, ssrc, format!("payload {ssrc} {seq}").as_bytes());
        from.socket.send_to(&packet, from.relay).await.unwrap();
        let what = format!("packet {seq} of {ssrc:#x}, {} -> {}", from.relay, to.relay);
        let (got, source) = recv(&to.socket, &what).await;
        assert_eq!(got, packet, "packet {seq} of {ssrc:#x}");
        assert_eq!(source, to.relay);
    }
}

/// Plain ⇄ plain over loopback: RTP both ways, stats from the owning
/// shard, worker counters, and delete closing every port of the session.
async fn plain_to_plain(path: DataPath, ports: RangeInclusive<u16>, sync: bool) {
    let Some((handle, _events)) = start(path, 2, ports, None) else {
        return;
    };
    let (a, b) = open_session(&handle, "call", sync).await;
    assert!(
        std::net::UdpSocket::bind(a.relay).is_err(),
        "the port is open when its SDP is returned"
    );

    relay_packets(&a, &b, 0xa, 10).await;
    relay_packets(&b, &a, 0xb, 10).await;

    let stats = handle.stats("call").await.unwrap().unwrap();
    assert_eq!(stats.legs[0].packets_in, 10);
    assert_eq!(stats.legs[0].packets_out, 10);
    assert_eq!(stats.legs[1].packets_in, 10);
    assert_eq!(stats.legs[1].packets_out, 10);
    let local_ports: Vec<u16> = stats
        .legs
        .iter()
        .flat_map(|l| l.local_ports.clone())
        .collect();

    let workers = handle.worker_stats();
    assert_eq!(workers.len(), handle.workers());
    assert_eq!(workers.iter().map(|w| w.packets_in).sum::<u64>(), 20);
    assert_eq!(workers.iter().map(|w| w.packets_out).sum::<u64>(), 20);
    assert_eq!(workers.iter().map(|w| w.sessions).sum::<u64>(), 1);
    if path == DataPath::IoUring {
        assert_eq!(handle.workers(), 2);
    }

    let deleted = if sync {
        handle.with_session("call", |r, _| r.delete("call"))
    } else {
        handle.delete("call").await.unwrap()
    };
    assert!(deleted);
    assert_eq!(handle.stats("call").await.unwrap(), None);
    assert!(!handle.delete("call").await.unwrap());
    for port in local_ports {
        assert_closed(port).await;
    }
}

#[tokio::test]
async fn plain_to_plain_io_uring() {
    plain_to_plain(DataPath::IoUring, 20000..=20199, false).await;
}

#[tokio::test]
async fn plain_to_plain_epoll() {
    plain_to_plain(DataPath::TokioEpoll, 20200..=20399, false).await;
}

#[tokio::test]
async fn plain_to_plain_with_session_io_uring() {
    plain_to_plain(DataPath::IoUring, 20400..=20599, true).await;
}

#[tokio::test]
async fn plain_to_plain_with_session_epoll() {
    plain_to_plain(DataPath::TokioEpoll, 20600..=20799, true).await;
}

/// 50 sessions over 4 workers: every session relays both ways, sessions
/// spread over all shards, ports never collide and cover every shard's
/// slice of the range, and deleting them all frees every port.
async fn many_sessions(path: DataPath, ports: RangeInclusive<u16>) {
    const SESSIONS: usize = 50;
    let range = ports.clone();
    let Some((handle, _events)) = start(path, 4, ports, None) else {
        return;
    };
    let mut calls = Vec::new();
    for i in 0..SESSIONS {
        let id = format!("call-{i}");
        let (a, b) = open_session(&handle, &id, i % 2 == 0).await;
        calls.push((id, a, b));
    }
    for (i, (_, a, b)) in calls.iter().enumerate() {
        relay_packets(a, b, 0x1000 + i as u32, 2).await;
        relay_packets(b, a, 0x2000 + i as u32, 2).await;
    }

    let mut used = HashSet::new();
    for (id, ..) in &calls {
        let stats = handle.stats(id).await.unwrap().unwrap();
        for port in stats.legs.iter().flat_map(|l| l.local_ports.clone()) {
            assert!(range.contains(&port));
            assert!(used.insert(port), "port {port} handed out twice");
        }
    }
    let workers = handle.worker_stats();
    assert_eq!(
        workers.iter().map(|w| w.packets_in).sum::<u64>(),
        SESSIONS as u64 * 4
    );
    assert_eq!(
        workers.iter().map(|w| w.sessions).sum::<u64>(),
        SESSIONS as u64
    );
    if path == DataPath::IoUring {
        assert_eq!(workers.len(), 4);
        for (i, w) in workers.iter().enumerate() {
            // Least-loaded assignment: 12 or 13 each.
            assert!((12..=13).contains(&w.sessions), "worker {i}: {w:?}");
            assert!(w.packets_in > 0 && w.packets_out > 0, "worker {i}: {w:?}");
        }
        // Each shard allocates from its own quarter of the range.
        let span = (range.end() - range.start() + 1) / 4;
        let quarters: HashSet<u16> = used.iter().map(|p| (p - range.start()) / span).collect();
        assert_eq!(quarters.len(), 4, "ports from every shard's slice");
    }

    for (id, ..) in &calls {
        assert!(handle.delete(id).await.unwrap());
    }
    assert!(handle.worker_stats().iter().all(|w| w.sessions == 0));
    for port in used {
        assert_closed(port).await;
    }
}

#[tokio::test]
async fn many_sessions_sharded_io_uring() {
    many_sessions(DataPath::IoUring, 21000..=21999).await;
}

#[tokio::test]
async fn many_sessions_sharded_epoll() {
    many_sessions(DataPath::TokioEpoll, 22000..=22999).await;
}

/// The workers run the relay's timers: a silent answered session times
/// out and the event reaches signalling; heartbeats keep moving.
async fn timers(path: DataPath, ports: RangeInclusive<u16>) {
    let Some((handle, mut events)) = start(path, 2, ports, Some(Duration::from_millis(300))) else {
        return;
    };
    let before = handle.worker_heartbeats();
    let (_a, _b) = open_session(&handle, "quiet", false).await;
    let event = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .expect("a timeout event")
        .unwrap();
    assert_eq!(event, RelayEvent::Timeout("quiet".to_owned()));
    let after = handle.worker_heartbeats();
    assert_eq!(before.len(), after.len());
    for (b, a) in before.iter().zip(&after) {
        // 300 ms at least: a few ticks of TICK (100 ms) each.
        assert!(a >= &(b + 2), "heartbeat {b} -> {a}");
    }
    assert!(handle.delete("quiet").await.unwrap());
}

#[tokio::test]
async fn timers_and_heartbeats_io_uring() {
    timers(DataPath::IoUring, 23000..=23099).await;
}

#[tokio::test]
async fn timers_and_heartbeats_epoll() {
    timers(DataPath::TokioEpoll, 23100..=23199).await;
}

/// Dropping the last handle stops the workers and closes their ports.
#[tokio::test]
async fn dropping_the_handle_closes_ports_io_uring() {
    let Some((handle, _events)) = start(DataPath::IoUring, 2, 23200..=23299, None) else {
        return;
    };
    let (a, b) = open_session(&handle, "left", false).await;
    drop(handle);
    assert_closed(a.relay.port()).await;
    assert_closed(b.relay.port()).await;
}

/// A burst larger than the io_uring buffer ring (1024 buffers), sent
/// while the shard's lock is held so the worker cannot keep up: the ring
/// runs dry (the multishot receive ends with ENOBUFS), and the worker
/// re-arms it and keeps relaying.
async fn burst(path: DataPath, ports: RangeInclusive<u16>) {
    let Some((handle, _events)) = start(path, 1, ports, None) else {
        return;
    };
    let (a, b) = open_session(&handle, "burst", false).await;
    // Also lets tokio see the sockets writable, for try_send_to below.
    relay_packets(&a, &b, 0xaaaa, 1).await;
    let sent = handle.with_session("burst", |_, _| {
        let mut sent = 0;
        // In chunks the socket buffer holds, with pauses in which the
        // kernel moves them into the worker's ring buffers.
        for chunk in 0..50u16 {
            for seq in chunk * 60..(chunk + 1) * 60 {
                let packet = rtp(seq, 0xbbbb, b"x");
                sent += usize::from(a.socket.try_send_to(&packet, a.relay).is_ok());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        sent
    });
    assert!(sent > 2000, "{sent} sent");
    // Some of the burst is dropped in socket buffers; count what came.
    let mut got = 0;
    let mut buf = [0u8; 1500];
    while let Ok(Ok(_)) =
        tokio::time::timeout(Duration::from_millis(300), b.socket.recv_from(&mut buf)).await
    {
        got += 1;
    }
    let w = handle.worker_stats();
    eprintln!("{path}: burst of {sent}, {got} relayed, {w:?}");
    assert!(got > 0);
    if path == DataPath::IoUring {
        assert!(w[0].recv_no_buffers > 0, "the buffer ring ran dry: {w:?}");
    }
    relay_packets(&a, &b, 0xcccc, 5).await;
    relay_packets(&b, &a, 0xdddd, 5).await;
}

#[tokio::test]
async fn burst_beyond_the_buffer_ring_io_uring() {
    burst(DataPath::IoUring, 23300..=23399).await;
}

#[tokio::test]
async fn burst_beyond_the_buffer_ring_epoll() {
    burst(DataPath::TokioEpoll, 23400..=23499).await;
}
