//! Connection-oriented transports: TCP, TLS, WS and WSS. One task per
//! connection owns the socket, reads and frames messages, and writes what the
//! SIP core queues for it.

use crate::{is_keepalive, ConnEntry, Event, FlowId, Inner, Received, SendError, Transport};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::{sleep_until, timeout, Instant};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message as WsMessage;

pub(crate) async fn accept_loop(
    inner: Arc<Inner>,
    transport: Transport,
    listener: TcpListener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
) {
    let local = listener.local_addr().ok();
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(v) => v,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(?local, "accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        if !inner.admit(peer.ip()) {
            drop(tcp);
            continue;
        }
        inner.counters.accepted.fetch_add(1, Ordering::Relaxed);
        let _ = tcp.set_nodelay(true);
        let inner = inner.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let local = tcp.local_addr().unwrap_or(peer);
            serve_accepted(&inner, transport, tcp, peer, local, acceptor).await;
            inner.release(peer.ip());
        });
    }
}

async fn serve_accepted(
    inner: &Arc<Inner>,
    transport: Transport,
    tcp: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
) {
    let deadline = inner.limits.handshake_timeout;
    match transport {
        Transport::Tcp => run_stream(inner, transport, tcp, peer, local).await,
        Transport::Tls => {
            let Some(acc) = acceptor else { return };
            match timeout(deadline, acc.accept(tcp)).await {
                Ok(Ok(tls)) => run_stream(inner, transport, tls, peer, local).await,
                _ => {
                    inner
                        .counters
                        .handshake_failed
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        Transport::Ws => {
            let started = Instant::now();
            run_ws(inner, transport, tcp, peer, local, started).await
        }
        Transport::Wss => {
            let Some(acc) = acceptor else { return };
            let started = Instant::now();
            match timeout(deadline, acc.accept(tcp)).await {
                Ok(Ok(tls)) => run_ws(inner, transport, tls, peer, local, started).await,
                _ => {
                    inner
                        .counters
                        .handshake_failed
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        Transport::Udp => {}
    }
}

/// Opens an outgoing TCP or TLS connection and registers it as a flow.
pub(crate) async fn connect(
    inner: Arc<Inner>,
    transport: Transport,
    addr: SocketAddr,
) -> Result<FlowId, SendError> {
    if !inner.admit(addr.ip()) {
        return Err(SendError::Limit);
    }
    let result = async {
        let tcp = timeout(inner.limits.handshake_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))
            .and_then(|r| r)
            .map_err(|source| SendError::Connect { addr, source })?;
        let _ = tcp.set_nodelay(true);
        let local = tcp.local_addr()?;
        let (tx, rx) = mpsc::channel(inner.limits.send_queue);
        let flow = inner.register(ConnEntry {
            tx,
            transport,
            peer: addr,
            local,
        });
        let task_inner = inner.clone();
        match transport {
            Transport::Tcp => {
                tokio::spawn(async move {
                    run_registered(&task_inner, transport, tcp, flow, addr, local, rx).await;
                    task_inner.release(addr.ip());
                });
            }
            Transport::Tls => {
                let Some(cfg) = inner.client_tls.clone() else {
                    inner.unregister(flow);
                    return Err(SendError::NoListener(Transport::Tls));
                };
                let configured = inner
                    .tls_names
                    .read()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .get(&addr)
                    .cloned();
                let name = configured
                    .and_then(|n| rustls::pki_types::ServerName::try_from(n).ok())
                    .unwrap_or(rustls::pki_types::ServerName::IpAddress(addr.ip().into()));
                let connector = tokio_rustls::TlsConnector::from(cfg);
                tokio::spawn(async move {
                    if let Ok(Ok(tls)) = timeout(
                        task_inner.limits.handshake_timeout,
                        connector.connect(name, tcp),
                    )
                    .await
                    {
                        run_registered(&task_inner, transport, tls, flow, addr, local, rx).await;
                    } else {
                        task_inner
                            .counters
                            .handshake_failed
                            .fetch_add(1, Ordering::Relaxed);
                        closed(&task_inner, flow, transport, addr).await;
                    }
                    task_inner.release(addr.ip());
                });
            }
            _ => unreachable!("only TCP and TLS are connected out"),
        }
        Ok(flow)
    }
    .await;
    if result.is_err() {
        inner.release(addr.ip());
    }
    result
}

async fn run_stream<S: AsyncRead + AsyncWrite + Unpin>(
    inner: &Arc<Inner>,
    transport: Transport,
    stream: S,
    peer: SocketAddr,
    local: SocketAddr,
) {
    let (tx, rx) = mpsc::channel(inner.limits.send_queue);
    let flow = inner.register(ConnEntry {
        tx,
        transport,
        peer,
        local,
    });
    run_registered(inner, transport, stream, flow, peer, local, rx).await;
}

/// Forgets the flow and tells the core, also when the core closed it.
async fn closed(inner: &Arc<Inner>, flow: FlowId, transport: Transport, peer: SocketAddr) {
    inner.unregister(flow);
    let _ = inner
        .events
        .send(Event::FlowClosed {
            flow,
            transport,
            peer,
        })
        .await;
}

/// Reads, frames and writes one TCP/TLS connection until it ends.
async fn run_registered<S: AsyncRead + AsyncWrite + Unpin>(
    inner: &Arc<Inner>,
    transport: Transport,
    stream: S,
    flow: FlowId,
    peer: SocketAddr,
    local: SocketAddr,
    mut rx: mpsc::Receiver<Bytes>,
) {
    let limits = &inner.limits;
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut framer = sip::StreamFramer::new(sip::Limits {
        max_message_size: limits.max_message,
        ..sip::Limits::default()
    });
    let mut buf = vec![0u8; 16 * 1024];
    let mut idle_deadline = Instant::now() + limits.idle_timeout;
    let mut partial_since: Option<Instant> = None;
    let reason = loop {
        let partial_deadline = partial_since.map(|t| t + limits.partial_timeout);
        let deadline = match partial_deadline {
            Some(p) if p < idle_deadline => p,
            _ => idle_deadline,
        };
        tokio::select! {
            r = rd.read(&mut buf) => {
                let n = match r {
                    Ok(0) | Err(_) => break "closed by peer",
                    Ok(n) => n,
                };
                framer.push(&buf[..n]);
                let mut failed = false;
                loop {
                    match framer.next_frame() {
                        Ok(Some(sip::Frame::KeepAlive)) => {
                            // RFC 5626 §3.5.1: answer a CRLFCRLF ping with CRLF.
                            inner.counters.keepalives.fetch_add(1, Ordering::Relaxed);
                            idle_deadline = Instant::now() + limits.idle_timeout;
                            if wr.write_all(b"\r\n").await.is_err() {
                                failed = true;
                                break;
                            }
                        }
                        Ok(Some(sip::Frame::Message(data))) => {
                            idle_deadline = Instant::now() + limits.idle_timeout;
                            let msg = Received { transport, flow: Some(flow), source: peer, local, data };
                            if inner.events.send(Event::Message(msg)).await.is_err() {
                                failed = true;
                                break;
                            }
                        }
                        Ok(None) => break,
                        Err(_) => {
                            // Unframeable stream: nothing after it can be
                            // trusted, so the connection goes.
                            inner.counters.oversize.fetch_add(1, Ordering::Relaxed);
                            failed = true;
                            break;
                        }
                    }
                }
                if failed {
                    break "framing error";
                }
                partial_since = if framer.buffered() > 0 {
                    partial_since.or(Some(Instant::now()))
                } else {
                    None
                };
            }
            out = rx.recv() => {
                match out {
                    Some(data) => {
                        if wr.write_all(&data).await.is_err() {
                            break "write failed";
                        }
                    }
                    None => break "closed locally",
                }
            }
            _ = sleep_until(deadline) => {
                if partial_deadline.is_some_and(|p| p <= Instant::now()) {
                    inner.counters.slow_closed.fetch_add(1, Ordering::Relaxed);
                    break "partial message timeout";
                }
                inner.counters.idle_closed.fetch_add(1, Ordering::Relaxed);
                break "idle";
            }
        }
    };
    tracing::debug!(%flow, %peer, %transport, reason, "connection closed");
    let _ = wr.shutdown().await;
    closed(inner, flow, transport, peer).await;
}

/// WebSocket (RFC 7118): the `sip` subprotocol is required; one SIP message
/// per WebSocket message, text or binary.
async fn run_ws<S: AsyncRead + AsyncWrite + Unpin>(
    inner: &Arc<Inner>,
    transport: Transport,
    stream: S,
    peer: SocketAddr,
    local: SocketAddr,
    started: Instant,
) {
    let limits = &inner.limits;
    let refused = std::sync::atomic::AtomicBool::new(false);
    // The error type is tungstenite's; its size is not ours to choose.
    #[allow(clippy::result_large_err)]
    let check = |req: &Request, mut resp: Response| -> Result<Response, ErrorResponse> {
        let offers_sip = req
            .headers()
            .get_all("sec-websocket-protocol")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|p| p.trim().eq_ignore_ascii_case("sip"));
        if !offers_sip {
            refused.store(true, Ordering::Relaxed);
            let mut err =
                ErrorResponse::new(Some("SIP WebSocket subprotocol \"sip\" required".into()));
            *err.status_mut() = StatusCode::BAD_REQUEST;
            return Err(err);
        }
        resp.headers_mut()
            .insert("sec-websocket-protocol", HeaderValue::from_static("sip"));
        Ok(resp)
    };
    let mut ws_config = WebSocketConfig::default();
    ws_config.max_message_size = Some(limits.max_message);
    ws_config.max_frame_size = Some(limits.max_message);
    // Thousands of mostly idle browsers: small buffers (tungstenite's
    // default is 128 KiB each way per connection). SIP messages are a few
    // KiB; a larger one still arrives, in more reads.
    ws_config.read_buffer_size = 4 * 1024;
    ws_config.write_buffer_size = 0;
    ws_config.max_write_buffer_size = 4 * limits.max_message;
    let remaining = limits.handshake_timeout.saturating_sub(started.elapsed());
    let ws = match timeout(
        remaining,
        tokio_tungstenite::accept_hdr_async_with_config(stream, check, Some(ws_config)),
    )
    .await
    {
        Ok(Ok(ws)) => ws,
        _ => {
            if refused.load(Ordering::Relaxed) {
                inner
                    .counters
                    .ws_refused_subprotocol
                    .fetch_add(1, Ordering::Relaxed);
            } else {
                inner
                    .counters
                    .handshake_failed
                    .fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
    };
    let (tx, mut rx) = mpsc::channel::<Bytes>(limits.send_queue);
    let flow = inner.register(ConnEntry {
        tx,
        transport,
        peer,
        local,
    });
    let (mut sink, mut source) = ws.split();
    let mut idle_deadline = Instant::now() + limits.idle_timeout;
    let mut ping = tokio::time::interval(limits.ws_ping_interval);
    ping.tick().await;
    let reason = loop {
        tokio::select! {
            m = source.next() => {
                let data: Bytes = match m {
                    Some(Ok(WsMessage::Text(t))) => Bytes::from(t.as_str().to_owned()),
                    Some(Ok(WsMessage::Binary(b))) => b,
                    Some(Ok(WsMessage::Pong(_))) | Some(Ok(WsMessage::Ping(_))) => {
                        idle_deadline = Instant::now() + limits.idle_timeout;
                        continue;
                    }
                    Some(Ok(WsMessage::Close(_))) | None => break "closed by peer",
                    Some(Ok(WsMessage::Frame(_))) => continue,
                    Some(Err(_)) => break "websocket error",
                };
                idle_deadline = Instant::now() + limits.idle_timeout;
                if is_keepalive(&data) {
                    inner.counters.keepalives.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let msg = Received { transport, flow: Some(flow), source: peer, local, data };
                if inner.events.send(Event::Message(msg)).await.is_err() {
                    break "core gone";
                }
            }
            out = rx.recv() => {
                let Some(data) = out else { break "closed locally" };
                // Text frames when the message is UTF-8, as browsers' SIP
                // stacks expect; binary otherwise.
                let msg = match std::str::from_utf8(&data) {
                    Ok(s) => WsMessage::Text(s.to_owned().into()),
                    Err(_) => WsMessage::Binary(data),
                };
                if sink.send(msg).await.is_err() {
                    break "write failed";
                }
            }
            _ = ping.tick() => {
                if sink.send(WsMessage::Ping(Bytes::new())).await.is_err() {
                    break "write failed";
                }
            }
            _ = sleep_until(idle_deadline) => {
                inner.counters.idle_closed.fetch_add(1, Ordering::Relaxed);
                break "idle";
            }
        }
    };
    tracing::debug!(%flow, %peer, %transport, reason, "websocket closed");
    let _ = sink.close().await;
    closed(inner, flow, transport, peer).await;
}
