//! Ports of the relay's range that another process holds, on both data
//! paths (io_uring where the kernel allows it, and the tokio/epoll
//! fallback): plain std sockets on 127.0.0.1 hold some of them, and no
//! SDP the relay returns may advertise one; calls still get ports that
//! work, or are refused when none can be bound.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::time::Duration;

use media::driver::{self, DataPath, DriverOptions, RelayHandle};
use media::{DtlsCertificate, LegKind, OfferOptions, RelayConfig, RelayError, Side};
use sdp::SessionDescription;
use tokio::net::UdpSocket;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// A relay on `path` with two workers over `ports`, or `None` (after a
/// note) when io_uring is asked for and cannot run here.
fn start(path: DataPath, ports: RangeInclusive<u16>) -> Option<RelayHandle> {
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
    let options = DriverOptions {
        data_path: Some(path),
        workers: Some(2),
    };
    let cert = DtlsCertificate::process().unwrap().clone();
    let (handle, _events) = driver::spawn_sharded(config, cert, LOOPBACK, options);
    assert_eq!(handle.data_path(), path, "the forced data path runs");
    Some(handle)
}

/// Binds `ports` the way another process would.
fn hold(ports: impl IntoIterator<Item = u16>) -> Vec<std::net::UdpSocket> {
    ports
        .into_iter()
        .map(|p| std::net::UdpSocket::bind((LOOPBACK, p)).expect("a free test port"))
        .collect()
}

fn plain_sdp(addr: SocketAddr) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0\r\n",
        ip = addr.ip(),
        port = addr.port()
    )
}

/// The RTP and RTCP ports an SDP advertises.
fn advertised(sdp: &str) -> (u16, u16) {
    let sdp = SessionDescription::parse(sdp).unwrap();
    let m = &sdp.media[0];
    let rtcp = m.rtcp().map_or(m.port() + 1, |r| r.port);
    (m.port(), rtcp)
}

fn rtp(seq: u16, ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80, 0];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(b"media");
    p
}

/// A plain RTP endpoint and the relay address it talks to.
struct Peer {
    socket: UdpSocket,
    relay: SocketAddr,
}

/// Offers from A and answers from B (plain ⇄ plain), through the async
/// control calls or the synchronous `with_session`; checks no held port
/// is advertised.
async fn open_session(
    handle: &RelayHandle,
    id: &str,
    sync: bool,
    held: &HashSet<u16>,
) -> [Peer; 2] {
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
    let mut relay = Vec::new();
    for sdp in [&to_a, &to_b] {
        let (rtp, rtcp) = advertised(sdp);
        for port in [rtp, rtcp] {
            assert!(!held.contains(&port), "{id}: held port {port} advertised");
            assert!(
                std::net::UdpSocket::bind((LOOPBACK, port)).is_err(),
                "{id}: port {port} open when its SDP is returned"
            );
        }
        relay.push(SocketAddr::new(LOOPBACK, rtp));
    }
    [
        Peer {
            socket: a,
            relay: relay[0],
        },
        Peer {
            socket: b,
            relay: relay[1],
        },
    ]
}

/// Sends RTP from `from` and checks it reaches `to`, from the relay.
async fn relay_packets(from: &Peer, to: &Peer, ssrc: u32) {
    let mut buf = [0u8; 1500];
    for seq in 0..3 {
        let packet = rtp(seq, ssrc);
        from.socket.send_to(&packet, from.relay).await.unwrap();
        let (len, source) =
            tokio::time::timeout(Duration::from_secs(5), to.socket.recv_from(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("packet {seq} of {ssrc:#x} not relayed"))
                .unwrap();
        assert_eq!(&buf[..len], packet.as_slice());
        assert_eq!(source, to.relay);
    }
}

/// About a quarter of the range held (RTP and RTCP ports alike, in both
/// shards' slices, the very first ports included): every session gets
/// ports that are not held and relays both ways.
async fn held_ports_are_never_advertised(path: DataPath, ports: RangeInclusive<u16>) {
    const SESSIONS: usize = 10;
    let start_port = *ports.start();
    let held: HashSet<u16> = ports
        .clone()
        .filter(|p| {
            let offset = p - start_port;
            offset.is_multiple_of(8) || offset % 13 == 5
        })
        .collect();
    let _holders = hold(held.iter().copied());
    let Some(handle) = start(path, ports.clone()) else {
        return;
    };
    let mut calls = Vec::new();
    for i in 0..SESSIONS {
        let id = format!("call-{i}");
        let peers = open_session(&handle, &id, i % 2 == 0, &held).await;
        calls.push((id, peers));
    }
    for (i, (id, [a, b])) in calls.iter().enumerate() {
        relay_packets(a, b, 0x1000 + i as u32).await;
        relay_packets(b, a, 0x2000 + i as u32).await;
        let stats = handle.stats(id).await.unwrap().unwrap();
        for port in stats.legs.iter().flat_map(|l| l.local_ports.clone()) {
            assert!(ports.contains(&port));
            assert!(!held.contains(&port), "{id}: held port {port} in use");
        }
    }
    let sessions: u64 = handle.worker_stats().iter().map(|w| w.sessions).sum();
    assert_eq!(sessions, SESSIONS as u64, "no session left behind");
    for (id, _) in &calls {
        assert!(handle.delete(id).await.unwrap());
    }
}

#[tokio::test]
async fn held_ports_are_never_advertised_io_uring() {
    held_ports_are_never_advertised(DataPath::IoUring, 24000..=24099).await;
}

#[tokio::test]
async fn held_ports_are_never_advertised_epoll() {
    held_ports_are_never_advertised(DataPath::TokioEpoll, 24100..=24199).await;
}

/// Every port held: the offer is refused (no SDP with a dead port) and
/// leaves no session behind.
async fn refused_when_nothing_binds(path: DataPath, ports: RangeInclusive<u16>) {
    let _holders = hold(ports.clone());
    let Some(handle) = start(path, ports) else {
        return;
    };
    let offer = plain_sdp(SocketAddr::new(LOOPBACK, 9));
    let options = OfferOptions {
        peer: Some(LegKind::Plain),
    };
    let refused = handle
        .with_session("sync", |r, now| {
            r.offer_with("sync", Side::A, &offer, options, now)
        })
        .unwrap_err();
    assert!(
        matches!(refused, RelayError::NoPorts | RelayError::PortsUnavailable),
        "{refused:?}"
    );
    let refused = handle
        .offer_with("async", Side::A, &offer, options)
        .await
        .unwrap_err();
    assert!(
        matches!(
            refused,
            driver::DriverError::Relay(RelayError::NoPorts | RelayError::PortsUnavailable)
        ),
        "{refused:?}"
    );
    for id in ["sync", "async"] {
        assert_eq!(handle.stats(id).await.unwrap(), None);
    }
    assert!(handle.worker_stats().iter().all(|w| w.sessions == 0));
}

#[tokio::test]
async fn refused_when_nothing_binds_io_uring() {
    refused_when_nothing_binds(DataPath::IoUring, 24200..=24207).await;
}

#[tokio::test]
async fn refused_when_nothing_binds_epoll() {
    refused_when_nothing_binds(DataPath::TokioEpoll, 24210..=24217).await;
}
