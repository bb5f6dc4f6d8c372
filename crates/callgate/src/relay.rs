//! The media relay behind the signalling core (`[media] relay = true`, the
//! default): [`media::Relay`] shards run by the io_uring workers (or the
//! tokio fallback), and the [`MediaHook`] the core calls to rewrite SDP.
//! The hook calls the relay's sans-IO methods synchronously through
//! [`RelayHandle::with_session`]: the lock of the session's shard, held for
//! in-memory work and non-blocking socket binds, never an await, so the
//! core task does not wait on I/O.

use crate::config::MediaConfig;
use media::driver::RelayHandle;
use media::{LegKind, OfferOptions, RelayConfig, RelayEvent, Side};
use signal::trunk::LegMedia;
use signal::{MediaHook, MediaPeer, MediaSide};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;
use tokio::sync::mpsc;

/// The hook the core owns.
pub struct RelayHook {
    handle: RelayHandle,
}

fn side(s: MediaSide) -> Side {
    match s {
        MediaSide::Caller => Side::A,
        MediaSide::Callee => Side::B,
    }
}

fn sdp_text(sdp: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(sdp).map_err(|_| "SDP is not UTF-8".to_owned())
}

impl MediaHook for RelayHook {
    fn offer(
        &mut self,
        call: &str,
        from: MediaSide,
        to: MediaPeer,
        sdp: &[u8],
        _now: Instant,
    ) -> Result<Vec<u8>, String> {
        let sdp = sdp_text(sdp)?;
        let options = OfferOptions {
            peer: Some(match to {
                MediaPeer::Browser => LegKind::Browser,
                MediaPeer::Plain => LegKind::Plain,
            }),
        };
        let out = self.handle.with_session(call, |r, now| {
            r.offer_with(call, side(from), sdp, options, now)
        });
        match out {
            Ok(sdp) => {
                tracing::debug!(call, ?from, ?to, "media offer relayed");
                Ok(sdp.into_bytes())
            }
            Err(e) => {
                tracing::info!(call, ?from, error = %e, "media relay refused an offer");
                Err(e.to_string())
            }
        }
    }

    fn answer(
        &mut self,
        call: &str,
        from: MediaSide,
        sdp: &[u8],
        _now: Instant,
    ) -> Result<Vec<u8>, String> {
        let sdp = sdp_text(sdp)?;
        let out = self
            .handle
            .with_session(call, |r, now| r.answer(call, side(from), sdp, now));
        match out {
            Ok(sdp) => {
                tracing::debug!(call, ?from, "media answer relayed");
                Ok(sdp.into_bytes())
            }
            Err(e) => {
                tracing::info!(call, ?from, error = %e, "media relay refused an answer");
                Err(e.to_string())
            }
        }
    }

    fn delete(&mut self, call: &str) {
        let stats = self.handle.with_session(call, |r, _| {
            let stats = r.stats(call);
            r.delete(call);
            stats
        });
        if let Some(s) = stats {
            let legs: Vec<String> = s
                .legs
                .iter()
                .map(|l| format!("in {} out {}", l.packets_in, l.packets_out))
                .collect();
            tracing::info!(call, legs = ?legs, "media session ended");
        }
    }

    fn stats(&mut self, call: &str) -> Option<(LegMedia, LegMedia)> {
        let s = self.handle.with_session(call, |r, _| r.stats(call))?;
        Some((leg_media(&s.legs[0]), leg_media(&s.legs[1])))
    }
}

/// Counters of one leg. Loss and jitter are what the party reported in
/// RTCP about the media it received from us; jitter assumes the 8 kHz
/// clock of the G.711 codecs trunks use.
fn leg_media(l: &media::LegStats) -> LegMedia {
    let report = l.peer_report.as_ref();
    LegMedia {
        rx_packets: l.packets_in,
        tx_packets: l.packets_out,
        rx_bytes: l.bytes_in,
        tx_bytes: l.bytes_out,
        lost_packets: report.map_or(0, |r| r.cumulative_lost.max(0) as u64),
        jitter_ms: report.map_or(0.0, |r| f64::from(r.jitter) / 8.0),
    }
}

/// The address to put in SDP: the configured one, else the local address
/// of the default route (no packet is sent), else loopback.
pub fn advertised_ip(config: &MediaConfig) -> IpAddr {
    if let Some(a) = config.advertised_address {
        return a;
    }
    let probe = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
        .and_then(|s| {
            s.connect(SocketAddr::from(([192, 0, 2, 1], 9)))?;
            s.local_addr()
        })
        .map(|a| a.ip())
        .ok()
        .filter(|ip| !ip.is_unspecified());
    match probe {
        Some(ip) => {
            tracing::warn!(%ip, "media.advertised_address not set: using the default route's address");
            ip
        }
        None => {
            tracing::warn!(
                "media.advertised_address not set and no default route: using 127.0.0.1"
            );
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        }
    }
}

/// The relay as started: the hook for the core, the relay's events, and a
/// handle for health and counters.
pub struct Started {
    pub hook: RelayHook,
    pub events: mpsc::UnboundedReceiver<RelayEvent>,
    pub handle: RelayHandle,
}

/// Starts the relay on the current runtime.
pub fn start(config: &MediaConfig) -> Result<Started, Box<dyn std::error::Error>> {
    let cert = media::DtlsCertificate::process()?.clone();
    let mut rc = RelayConfig::new(advertised_ip(config));
    rc.ports = config.port_min..=config.port_max;
    rc.strict_source = config.strict_source;
    rc.trunk_codecs = config.trunk_codecs.clone();
    // 0 turns the timeout off: ten years is never, and still a valid
    // Instant offset.
    rc.media_timeout = match config.timeout_secs {
        0 => std::time::Duration::from_secs(10 * 365 * 86_400),
        s => std::time::Duration::from_secs(u64::from(s)),
    };
    let bind = if rc.advertised_ip.is_ipv6() {
        IpAddr::from([0u16; 8])
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    };
    let (handle, events) =
        media::driver::spawn_sharded(rc, cert, bind, media::driver::DriverOptions::default());
    Ok(Started {
        hook: RelayHook {
            handle: handle.clone(),
        },
        events,
        handle,
    })
}
