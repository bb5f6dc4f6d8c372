//! What the core task does for operators: answers the web side's
//! questions, publishes health and metrics every second, and applies
//! admin events and SIGHUP reloads.

use super::{unix_now, Ctx};
use signal::Core;
use std::sync::PoisonError;
use std::time::Instant;

/// Once a second, from the core task: a hung core task stops these, so
/// readiness goes stale and the service watchdog starves.
pub(super) fn tick(core: &mut Core, ctx: &mut Ctx) {
    ctx.beat.beat();
    ctx.ticks += 1;
    // Health and metrics once a second; the heartbeat every tick.
    if ctx.ticks.is_multiple_of(2) {
        return;
    }
    let trunks = trunk_views(core);
    ctx.workers_alive = match &ctx.relay {
        Some(r) => ctx.heartbeats.check(&r.worker_heartbeats()),
        None => Vec::new(),
    };
    let mut listeners: Vec<web::health::ListenerHealth> = ctx
        .transports
        .local_addrs()
        .iter()
        .map(|(t, a)| web::health::ListenerHealth {
            name: format!("sip {} {a}", t.param()),
            error: None,
        })
        .collect();
    listeners.extend(
        ctx.listener_errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(name, error)| web::health::ListenerHealth {
                name: name.clone(),
                error: error.clone(),
            }),
    );
    let store = ctx
        .store_health
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    ctx.health.update(web::health::HealthSnapshot {
        listeners,
        store,
        media_workers: ctx.workers_alive.clone(),
        trunks: trunks.iter().map(web::health::TrunkHealth::from).collect(),
    });
    let now = unix_now();
    let registrations = core.location().all().filter(|b| b.expires_at > now).count() as u64;
    let stats = &core.stats;
    let sip = web::metrics::SipMetrics {
        messages: stats
            .message_counts()
            .map(|c| web::metrics::SipMessageCount {
                direction: c.direction,
                transport: c.transport,
                kind: c.kind,
                total: c.total,
            })
            .collect(),
        transactions: core.transaction_count() as u64,
        registrations,
        calls: core.call_count() as u64,
        auth_failures: stats.auth_failures,
        forwarded: stats.forwarded,
        bad_requests: stats.bad_requests,
        unparsable_dropped: stats.unparsable_dropped,
        responses_dropped: stats.responses_dropped,
    };
    let media = ctx.relay.as_ref().map(|r| web::metrics::MediaMetrics {
        workers: r
            .worker_stats()
            .into_iter()
            .map(|w| web::metrics::MediaWorkerMetrics {
                sessions: w.sessions,
                packets_in: w.packets_in,
                bytes_in: w.bytes_in,
                packets_out: w.packets_out,
                bytes_out: w.bytes_out,
                send_errors: w.send_errors,
                recv_errors: w.recv_errors,
                recv_no_buffers: w.recv_no_buffers,
                busy_nanos: w.busy_nanos,
            })
            .collect(),
        dropped_packets: None,
    });
    ctx.metrics
        .update(web::metrics::MetricsSnapshot { sip, media, trunks });
    if ctx.ticks % 10 == 1 {
        crate::service::status(&crate::service::status_line(
            registrations as usize,
            core.call_count(),
            ctx.draining,
        ));
    }
}

/// Trunk states as the API shows them.
pub(super) fn trunk_views(core: &Core) -> Vec<web::TrunkStatusView> {
    use signal::trunk::RegistrationState as R;
    let now = unix_now();
    core.trunk_status()
        .into_iter()
        .map(|t| {
            let (state, detail, expires_in) = match t.registration {
                R::Disabled => ("disabled", None, None),
                R::Registering => ("registering", None, None),
                R::Registered { expires_unix } => {
                    ("registered", None, Some(expires_unix.saturating_sub(now)))
                }
                R::Failed { reason } => ("failed", Some(reason), None),
            };
            web::TrunkStatusView {
                name: t.name,
                state: state.to_owned(),
                detail,
                expires_in,
                active_calls: t.active_calls,
            }
        })
        .collect()
}

fn leg_view(m: signal::trunk::LegMedia) -> web::LegView {
    web::LegView {
        rx_packets: m.rx_packets,
        tx_packets: m.tx_packets,
        rx_bytes: m.rx_bytes,
        tx_bytes: m.tx_bytes,
        lost_packets: m.lost_packets,
        jitter_ms: m.jitter_ms,
    }
}

pub(super) fn answer_query(core: &mut Core, ctx: &mut Ctx, q: web::CoreQuery) {
    let now = unix_now();
    match q {
        web::CoreQuery::Registrations(tx) => {
            let regs = core
                .location()
                .all()
                .filter(|b| b.expires_at > now)
                .map(|b| web::RegistrationView {
                    aor: b.aor.clone(),
                    contact: b.contact.clone(),
                    transport: b.transport.param().to_owned(),
                    source: b.source.to_string(),
                    user_agent: b.user_agent.clone(),
                    expires_in: b.expires_at - now,
                    reachable: core.binding_reachable(b),
                })
                .collect();
            let _ = tx.send(regs);
        }
        web::CoreQuery::Calls(tx) => {
            let calls = core
                .calls_with_media()
                .into_iter()
                .map(|c| web::CallView {
                    call_id: c.call_id,
                    from: c.from,
                    to: c.to,
                    source: c.source.to_string(),
                    transport: c.transport.param().to_owned(),
                    state: format!("{:?}", c.state).to_lowercase(),
                    started_unix: c.started_unix,
                    answered_unix: c.answered_unix,
                    direction: format!("{:?}", c.direction).to_lowercase(),
                    trunk: c.trunk,
                    caller_user: c.caller_user,
                    callee_user: c.callee_user,
                    media: c.media.map(|(a, b)| [leg_view(a), leg_view(b)]),
                })
                .collect();
            let _ = tx.send(calls);
        }
        web::CoreQuery::TrunkStatus(tx) => {
            let _ = tx.send(trunk_views(core));
        }
        web::CoreQuery::Dashboard(tx) => {
            let registrations = core.location().all().filter(|b| b.expires_at > now).count();
            let media = match &ctx.relay {
                Some(r) => web::ui::MediaHealth {
                    relay: true,
                    data_path: match r.data_path() {
                        media::driver::DataPath::IoUring => "io_uring".into(),
                        media::driver::DataPath::TokioEpoll => "epoll".into(),
                    },
                    workers: r
                        .worker_stats()
                        .iter()
                        .enumerate()
                        .map(|(i, w)| web::ui::WorkerHealth {
                            alive: ctx.workers_alive.get(i).copied().unwrap_or(true),
                            packets: w.packets_in + w.packets_out,
                        })
                        .collect(),
                },
                None => web::ui::MediaHealth::default(),
            };
            let view = web::ui::DashboardView {
                uptime_secs: ctx.started.elapsed().as_secs(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
                registrations,
                active_calls: core.call_count(),
                transports: ctx
                    .transports
                    .local_addrs()
                    .iter()
                    .map(|(t, a)| web::ui::TransportHealth {
                        name: t.param().to_owned(),
                        addr: a.to_string(),
                        ok: true,
                    })
                    .collect(),
                media,
                store_ok: ctx
                    .store_health
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .is_ok(),
                trunks: trunk_views(core),
            };
            let _ = tx.send(view);
        }
        web::CoreQuery::Unregister {
            aor,
            contact,
            reply,
        } => {
            let n = core.unregister(&aor, contact.as_deref());
            tracing::info!(aor, removed = n, "registrations removed by the operator");
            let _ = reply.send(n);
        }
        web::CoreQuery::TrunkPing { name, reply } => {
            match core.ping_trunk(&name, Instant::now(), now) {
                Some(id) => {
                    ctx.pings.insert(id, reply);
                }
                None => {
                    let _ = reply.send(Err("no such trunk".into()));
                }
            }
        }
        web::CoreQuery::Settings(reply) => {
            let _ = reply.send(ctx.settings.clone());
        }
        web::CoreQuery::Hangup { call_id, reply } => {
            let done = core.hangup(&call_id, "hung up by the operator", Instant::now(), now);
            tracing::info!(call = call_id, done, "call hung up by the operator");
            let _ = reply.send(done);
        }
    }
}

/// Changes made in the admin UI that the running process acts on.
pub(super) fn admin_event(ctx: &mut Ctx, ev: web::ui::AdminEvent) {
    match ev {
        web::ui::AdminEvent::CertificateChanged { cert, key } => {
            match ctx.cert_store.reload(&cert, &key) {
                Ok(info) => tracing::info!(subject = info.subject, "certificate replaced"),
                Err(e) => tracing::warn!("new certificate not applied: {e}"),
            }
        }
        web::ui::AdminEvent::SettingsChanged { keys } => {
            if keys.iter().any(|k| k == "log_level") {
                let level = store::Store::open(&ctx.reload.db)
                    .ok()
                    .and_then(|s| s.get_setting("log_level").ok().flatten());
                if let Some(level) = level {
                    let applied = crate::set_log_level(&level);
                    tracing::info!(level, applied, "log level changed in the admin UI");
                    if applied {
                        if let Some(item) =
                            ctx.settings.items.iter_mut().find(|i| i.key == "log_level")
                        {
                            item.value = level;
                        }
                    }
                }
            }
            tracing::info!(?keys, "settings changed in the admin UI");
        }
        _ => {}
    }
}

/// SIGHUP: the configuration file's users, trunks and DIDs are applied
/// again (the store thread then reloads them into the core), and the
/// certificate files are read again. Listener and media settings need a
/// restart.
pub(super) fn reload(ctx: &Ctx) {
    tracing::info!("SIGHUP: reloading the configuration and certificates");
    crate::service::reloading();
    let source = ctx.reload.clone();
    let cert_store = ctx.cert_store.clone();
    // File and SQLite work happen off the core task.
    std::thread::spawn(move || {
        let mut config = match &source.config_path {
            Some(p) => match crate::config::Config::load(p) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!("reload refused, configuration kept: {e}");
                    return;
                }
            },
            None => crate::config::Config::default(),
        };
        if let Some(d) = &source.data_dir {
            config.data_dir = d.clone();
        }
        match store::Store::open(&source.db) {
            Ok(store) => {
                let realm = store
                    .get_setting("sip_domain")
                    .ok()
                    .flatten()
                    .unwrap_or_else(|| config.sip.domain.clone());
                if let Err(e) = crate::users::provision(&store, &realm, &config.users) {
                    tracing::error!("reload: users not applied: {e}");
                }
                if let Err(e) = crate::trunks::provision(&store, &config.trunks, &config.dids) {
                    tracing::error!("reload: trunks not applied: {e}");
                }
            }
            Err(e) => tracing::error!("reload: store: {e}"),
        }
        match transport::tls::startup_paths(
            &config.data_dir,
            config
                .sip
                .tls_cert
                .as_deref()
                .zip(config.sip.tls_key.as_deref()),
            &source.names,
        ) {
            Ok((cert, key)) => match cert_store.reload(&cert, &key) {
                Ok(info) => tracing::info!(subject = info.subject, "certificate reloaded"),
                Err(e) => tracing::error!("reload: certificate kept: {e}"),
            },
            Err(e) => tracing::error!("reload: certificate kept: {e}"),
        }
        crate::service::ready();
    });
}

/// The running configuration for the settings page. Editable rows are
/// `settings` keys the admin UI may write.
pub(super) fn settings_view(config: &crate::config::Config) -> web::ui::SettingsView {
    let item =
        |key: &str, value: String, live: bool, editable: bool, help: &str| web::ui::SettingItem {
            key: key.to_owned(),
            value,
            applies: if live { "live" } else { "restart" }.to_owned(),
            editable,
            help: help.to_owned(),
        };
    let list = |v: &[std::net::SocketAddr]| {
        v.iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let limits = transport::Limits::default();
    let level = crate::log_level();
    web::ui::SettingsView {
        items: vec![
            item(
                "sip_domain",
                config.sip.domain.clone(),
                false,
                true,
                "SIP domain and digest realm; users' passwords are tied to it",
            ),
            item(
                "advertised_address",
                config
                    .media
                    .advertised_address
                    .map(|a| a.to_string())
                    .unwrap_or_default(),
                false,
                true,
                "address put in SDP and Via for hosts behind 1:1 NAT",
            ),
            item(
                "media_port_min",
                config.media.port_min.to_string(),
                false,
                true,
                "first UDP port of the media relay",
            ),
            item(
                "media_port_max",
                config.media.port_max.to_string(),
                false,
                true,
                "last UDP port of the media relay",
            ),
            item(
                "log_level",
                level,
                true,
                true,
                "error, warn, info, debug or trace (RUST_LOG, when set, wins)",
            ),
            item(
                "sip.udp",
                list(&config.sip.udp),
                false,
                false,
                "SIP over UDP listeners (config file)",
            ),
            item(
                "sip.tcp",
                list(&config.sip.tcp),
                false,
                false,
                "SIP over TCP listeners (config file)",
            ),
            item(
                "sip.tls",
                list(&config.sip.tls),
                false,
                false,
                "SIP over TLS listeners (config file)",
            ),
            item(
                "sip.wss",
                list(&config.sip.wss),
                false,
                false,
                "SIP over secure WebSocket listeners (config file)",
            ),
            item(
                "admin.listen",
                config.admin.listen.to_string(),
                false,
                false,
                "admin UI, softphone and JSON API (HTTPS)",
            ),
            item(
                "health.listen",
                config
                    .health
                    .listen
                    .map(|a| a.to_string())
                    .unwrap_or_default(),
                false,
                false,
                "plain HTTP /healthz /readyz /metrics",
            ),
            item(
                "media.relay",
                config.media.relay.to_string(),
                false,
                false,
                "relay media through the gateway",
            ),
            item(
                "media.timeout_secs",
                config.media.timeout_secs.to_string(),
                false,
                false,
                "no media this long ends a call (0: off)",
            ),
            item(
                "sip.digest_algorithms",
                config.sip.digest_algorithms.join(", "),
                false,
                false,
                "digest challenge order",
            ),
            item(
                "limits.max_connections",
                limits.max_connections.to_string(),
                false,
                false,
                "TCP/TLS/WSS connections in all",
            ),
            item(
                "limits.max_per_ip",
                limits.max_per_ip.to_string(),
                false,
                false,
                "connections from one address",
            ),
            item(
                "service.drain_secs",
                config.service.drain_secs.to_string(),
                false,
                false,
                "on stop, how long calls may go on",
            ),
        ],
    }
}
