//! UDP receive loop: one datagram is one message (RFC 3261 §18.3).

use crate::{is_keepalive, Event, Inner, Received, Transport};
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::net::UdpSocket;

pub(crate) async fn recv_loop(inner: Arc<Inner>, local: SocketAddr, sock: Arc<UdpSocket>) {
    // One buffer for the socket's life; each message is copied out once, sized
    // to what arrived.
    let mut buf = vec![0u8; 65_536];
    loop {
        let (n, source) = match sock.recv_from(&mut buf).await {
            Ok(v) => v,
            // ICMP port unreachable from an earlier send shows up here on
            // Linux; it must not stop the listener.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => continue,
            Err(e) => {
                tracing::warn!(%local, "udp receive: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let data = &buf[..n];
        if is_keepalive(data) {
            inner.counters.keepalives.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        if n > inner.limits.max_message {
            inner.counters.oversize.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let msg = Received {
            transport: Transport::Udp,
            flow: None,
            source,
            local,
            data: Bytes::copy_from_slice(data),
        };
        if inner.events.send(Event::Message(msg)).await.is_err() {
            return;
        }
    }
}
