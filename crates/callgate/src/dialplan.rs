//! Trunks and DIDs from the store, turned into what the core routes by, and
//! call records turned into CDR rows.

use signal::trunk::{
    CallRecord, CallerId, Dialplan, Direction, Disposition, LegMedia, Trunk, TrunkCredentials,
};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs, UdpSocket};

/// The dialplan of the enabled trunks. A trunk whose host does not resolve
/// is left out (and logged): calls fall through to the next matching trunk.
pub fn load(store: &store::Store) -> store::Result<Dialplan> {
    let mut trunks = Vec::new();
    for t in store.list_trunks()?.into_iter().filter(|t| t.enabled) {
        let Some(addr) = resolve(&t.host, t.port) else {
            tracing::warn!(
                trunk = t.name,
                host = t.host,
                "trunk host does not resolve: trunk skipped"
            );
            continue;
        };
        let password = store.trunk_secret(&t.name)?;
        let credentials = match (&t.registration, password) {
            (Some(r), Some(password)) => Some(TrunkCredentials {
                username: r.username.clone(),
                auth_username: r.auth_username.clone(),
                password,
            }),
            _ => None,
        };
        let register_expiry = t
            .registration
            .as_ref()
            .filter(|r| r.enabled && credentials.is_some())
            .map(|r| r.expiry_secs);
        let transport = match t.transport {
            store::Transport::Tcp => signal::Transport::Tcp,
            store::Transport::Tls => signal::Transport::Tls,
            _ => signal::Transport::Udp,
        };
        trunks.push(Trunk {
            name: t.name.clone(),
            host: t.host.clone(),
            addr,
            transport,
            credentials,
            register_expiry,
            caller_id: match &t.caller_id {
                store::CallerIdPolicy::Keep => CallerId::Keep,
                store::CallerIdPolicy::User => CallerId::User,
                store::CallerIdPolicy::Fixed(n) => CallerId::Fixed(n.clone()),
            },
            from_domain: t.from_domain.clone(),
            trust: t
                .inbound_trust
                .iter()
                .filter_map(|entry| {
                    let (net, len) = entry.split_once('/').unwrap_or((entry, ""));
                    let net: IpAddr = net.parse().ok()?;
                    let full = if net.is_ipv4() { 32 } else { 128 };
                    Some((net, len.parse().unwrap_or(full)))
                })
                .collect(),
            dial_patterns: t.dial_patterns.clone(),
            number_rules: t
                .number_rules
                .iter()
                .map(|r| (r.strip.clone(), r.prepend.clone()))
                .collect(),
            max_calls: t.max_calls,
            local_ip: local_ip_toward(addr),
        });
    }
    let enabled: Vec<&str> = trunks.iter().map(|t| t.name.as_str()).collect();
    let dids: HashMap<String, String> = store
        .list_dids(None)?
        .into_iter()
        .filter(|d| enabled.contains(&d.trunk.as_str()))
        .map(|d| (d.number, d.username))
        .collect();
    Ok(Dialplan {
        trunks,
        dids,
        matcher: store::dial_pattern_matches,
    })
}

fn resolve(host: &str, port: u16) -> Option<SocketAddr> {
    if let Ok(ip) = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        return Some(SocketAddr::new(ip, port));
    }
    (host, port).to_socket_addrs().ok()?.next()
}

/// The source address the kernel would use toward `addr` (a connected UDP
/// socket sends nothing).
fn local_ip_toward(addr: SocketAddr) -> Option<IpAddr> {
    let any: SocketAddr = if addr.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let s = UdpSocket::bind(any).ok()?;
    s.connect(addr).ok()?;
    s.local_addr().ok().map(|a| a.ip())
}

fn media(m: LegMedia) -> store::MediaStats {
    store::MediaStats {
        rx_packets: m.rx_packets,
        tx_packets: m.tx_packets,
        rx_bytes: m.rx_bytes,
        tx_bytes: m.tx_bytes,
        lost_packets: m.lost_packets,
        jitter_ms: m.jitter_ms,
    }
}

/// The CDR row of a call record.
pub fn cdr(r: CallRecord) -> store::Cdr {
    let answered = r.disposition == Disposition::Answered && r.answered_unix.is_some();
    let started = r.started_unix as i64;
    let ended = (r.ended_unix as i64).max(started);
    let answered_at = r
        .answered_unix
        .filter(|_| answered)
        .map(|a| (a as i64).clamp(started, ended));
    let bound = |s: String| -> String { s.chars().take(1024).collect() };
    store::Cdr {
        id: 0,
        call_id: bound(r.call_id),
        started_at: started,
        answered_at,
        ended_at: ended,
        caller: bound(r.caller),
        callee: bound(r.callee),
        caller_user: r.caller_user,
        callee_user: r.callee_user,
        direction: match r.direction {
            Direction::Inbound => store::Direction::Inbound,
            Direction::Outbound => store::Direction::Outbound,
            Direction::Internal => store::Direction::Internal,
        },
        disposition: match (r.disposition, answered) {
            (_, true) => store::Disposition::Answered,
            (Disposition::Busy, _) => store::Disposition::Busy,
            (Disposition::NoAnswer, _) => store::Disposition::NoAnswer,
            (Disposition::Cancelled, _) => store::Disposition::Cancelled,
            _ => store::Disposition::Failed,
        },
        duration_secs: answered_at.map_or(0, |a| (ended - a) as u32),
        trunk: r.trunk,
        caller_media: r.caller_media.map(media),
        callee_media: r.callee_media.map(media),
    }
}
