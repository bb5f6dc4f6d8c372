//! The running gateway: wires transports, the signalling core and the store.
//!
//! Threads and tasks:
//! - the tokio runtime runs the transports and one *core task* that owns the
//!   sans-IO [`signal::Core`] (no locks: every SIP event goes through it);
//! - one *store thread* owns the SQLite connection: it persists binding
//!   changes and watches the file for user edits made by the CLI;
//! - with `[media] relay = true`, the media relay's driver tasks (see
//!   [`crate::relay`]); the core rewrites SDP through it synchronously.

use crate::config::Config;
use crate::dialplan;
use crate::relay;
use crate::users;
use bytes::Bytes;
use signal::auth::{Directory, UserRecord};
use signal::registrar::{Binding, Change};
use signal::{Core, CoreConfig, Dest, Output, Source};
use std::path::Path;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;
use transport::{Event, Target, Transports};

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn to_signal_transport(t: transport::Transport) -> signal::Transport {
    match t {
        transport::Transport::Udp => signal::Transport::Udp,
        transport::Transport::Tcp => signal::Transport::Tcp,
        transport::Transport::Tls => signal::Transport::Tls,
        transport::Transport::Ws => signal::Transport::Ws,
        transport::Transport::Wss => signal::Transport::Wss,
    }
}

fn to_transport(t: signal::Transport) -> transport::Transport {
    match t {
        signal::Transport::Udp => transport::Transport::Udp,
        signal::Transport::Tcp => transport::Transport::Tcp,
        signal::Transport::Tls => transport::Transport::Tls,
        signal::Transport::Ws => transport::Transport::Ws,
        signal::Transport::Wss => transport::Transport::Wss,
    }
}

fn to_store_transport(t: signal::Transport) -> store::Transport {
    match t {
        signal::Transport::Udp => store::Transport::Udp,
        signal::Transport::Tcp => store::Transport::Tcp,
        signal::Transport::Tls => store::Transport::Tls,
        signal::Transport::Ws => store::Transport::Ws,
        signal::Transport::Wss => store::Transport::Wss,
    }
}

fn from_store_transport(t: store::Transport) -> signal::Transport {
    match t {
        store::Transport::Udp => signal::Transport::Udp,
        store::Transport::Tcp => signal::Transport::Tcp,
        store::Transport::Tls => signal::Transport::Tls,
        store::Transport::Ws => signal::Transport::Ws,
        store::Transport::Wss => signal::Transport::Wss,
    }
}

fn to_store_binding(b: &Binding) -> store::Binding {
    store::Binding {
        aor: b.aor.clone(),
        contact: b.contact.clone(),
        instance: b.instance.clone(),
        reg_id: b.reg_id,
        call_id: b.call_id.clone(),
        cseq: b.cseq,
        q: b.q,
        expires_at: i64::try_from(b.expires_at).unwrap_or(i64::MAX),
        transport: to_store_transport(b.transport),
        source: b.source,
        local: b.local,
        path: b.path.clone(),
        user_agent: Some(b.user_agent.clone()).filter(|s| !s.is_empty()),
        flow_id: b.flow.map(|f| f.to_string()),
        gruu: b.gruu.clone(),
        updated_at: 0,
    }
}

fn from_store_binding(b: store::Binding) -> Binding {
    Binding {
        aor: b.aor,
        contact: b.contact,
        instance: b.instance,
        reg_id: b.reg_id,
        call_id: b.call_id,
        cseq: b.cseq,
        q: b.q,
        expires_at: u64::try_from(b.expires_at).unwrap_or(0),
        transport: from_store_transport(b.transport),
        source: b.source,
        local: b.local,
        flow: None,
        path: b.path,
        user_agent: b.user_agent.unwrap_or_default(),
        gruu: b.gruu,
    }
}

fn directory(users: Vec<store::User>) -> Directory {
    Directory::new(users.into_iter().map(|u| UserRecord {
        username: u.username,
        extension: u.extension,
        display_name: u.display_name,
        realm: u.realm,
        ha1_md5: u.ha1_md5,
        ha1_sha256: u.ha1_sha256,
        enabled: u.enabled,
    }))
}

fn load_users(store: &store::Store) -> store::Result<Directory> {
    Ok(directory(store.list_users(None, 0, u32::MAX)?))
}

/// Requests to the store thread.
enum StoreCmd {
    Binding(Change),
    Cdr(signal::trunk::CallRecord),
}

/// What the store thread hands the core after another writer (the CLI,
/// the API) changed the database.
enum Reload {
    Users(Directory),
    Dialplan(signal::trunk::Dialplan),
}

/// Opens the store, applies provisioning, prints first-start secrets.
fn prepare_store(
    config: &Config,
    db: &Path,
) -> Result<(store::Store, [u8; 32], String), Box<dyn std::error::Error>> {
    let store = store::Store::open(db)?;
    let realm = &config.sip.domain;
    let changed = users::provision(&store, realm, &config.users)?;
    if changed > 0 {
        tracing::info!(changed, "users from the config file applied");
    }
    // After the users: DIDs may name users the config file creates.
    let changed = crate::trunks::provision(&store, &config.trunks, &config.dids)?;
    if changed > 0 {
        tracing::info!(changed, "trunks and DIDs from the config file applied");
    }
    if config.users.is_empty() {
        for (name, pw) in users::ensure_demo_users(&store, realm)? {
            println!("created demo user {name} (sip:{name}@{realm}) with password {pw}");
        }
    }
    // The nonce key survives restarts so outstanding challenges stay valid.
    let secret = match store.get_setting("nonce_secret")? {
        Some(hex) if hex.len() == 64 => {
            let mut s = [0u8; 32];
            for (i, b) in s.iter_mut().enumerate() {
                *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap_or(0);
            }
            s
        }
        _ => {
            let mut s = [0u8; 32];
            getrandom::fill(&mut s)?;
            let hex: String = s.iter().map(|b| format!("{b:02x}")).collect();
            store.set_setting("nonce_secret", &hex)?;
            s
        }
    };
    // API token for automation: printed once, and kept in the data dir
    // (owner-only) for tools on the box.
    let token = match store.get_setting("api_token")? {
        Some(t) => t,
        None => {
            let t = users::random_password(32);
            store.set_setting("api_token", &t)?;
            println!("API token (Authorization: Bearer ...): {t}");
            t
        }
    };
    write_private(&config.data_dir.join("api-token"), token.as_bytes())?;
    Ok((store, secret, token))
}

fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(data)
}

/// Runs the gateway until SIGINT/SIGTERM.
pub fn run(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let db = config.data_dir.join("callgate.db");
    let (store, secret, token) = prepare_store(&config, &db)?;
    let users = load_users(&store)?;
    let dialplan = dialplan::load(&store)?;
    let bindings = store.list_all_bindings()?;

    let names = vec![config.sip.domain.clone()];
    let (cert, key) = transport::tls::ensure_certificate(
        &config.data_dir,
        config
            .sip
            .tls_cert
            .as_deref()
            .zip(config.sip.tls_key.as_deref()),
        &names,
    )?;
    let server_tls = transport::tls::server_config(&cert, &key)?;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("callgate")
        .build()?;
    let store_thread = rt.block_on(async move {
        let tconfig = transport::Config {
            udp: config.sip.udp.clone(),
            tcp: config.sip.tcp.clone(),
            tls: config.sip.tls.clone(),
            ws: Vec::new(),
            wss: config.sip.wss.clone(),
            server_tls: Some(server_tls.clone()),
            client_tls: Some(transport::tls::client_config(None)?),
            limits: transport::Limits::default(),
        };
        let (transports, events) = Transports::start(tconfig).await?;
        for (t, a) in transports.local_addrs() {
            tracing::info!("listening on {t} {a}");
        }
        let listeners = transports
            .local_addrs()
            .iter()
            .map(|(t, a)| (to_signal_transport(*t), *a))
            .collect();
        let mut core_cfg = CoreConfig::new(&config.sip.domain, listeners);
        core_cfg.advertised = config.media.advertised_address;
        core_cfg.digest_algorithms = config
            .sip
            .digest_algorithms
            .iter()
            .filter_map(|a| sip::digest::Algorithm::parse(a))
            .collect();
        let mut seed = [0u8; 8];
        getrandom::fill(&mut seed)?;
        let mut core = Core::new(core_cfg, secret, u64::from_le_bytes(seed));
        core.set_users(users);
        tracing::info!(
            trunks = dialplan.trunks.len(),
            dids = dialplan.dids.len(),
            "dialplan loaded"
        );
        transports.set_tls_names(tls_names(&dialplan));
        core.set_dialplan(dialplan);
        let now = unix_now();
        let mut restored = 0;
        for b in bindings {
            let b = from_store_binding(b);
            if b.expires_at > now {
                core.restore_binding(b);
                restored += 1;
            }
        }
        tracing::info!(restored, "registrations restored");
        let media_events = if config.media.relay {
            let (hook, events) = relay::start(&config.media)?;
            core.set_media(Box::new(hook));
            Some(events)
        } else {
            None
        };

        let (store_tx, users_rx, store_thread) = spawn_store_thread(store, db.clone());
        let (query_tx, query_rx) = mpsc::channel(16);
        let api = web::Api::new(db.clone(), config.sip.domain.clone(), token, query_tx);
        let trace = api.trace.clone();
        let admin = config.admin.listen;
        // SIP service does not depend on the admin listener: a port clash
        // there is reported, not fatal.
        tokio::spawn(async move {
            tracing::info!("listening on https {admin} (JSON API /api/v1)");
            if let Err(e) = web::serve(admin, server_tls, api).await {
                tracing::error!("admin listener {admin} failed: {e}");
            }
        });
        println!(
            "callgate {} ready: SIP domain {}, WSS {}",
            env!("CARGO_PKG_VERSION"),
            config.sip.domain,
            config
                .sip
                .wss
                .iter()
                .map(|a| format!("wss://{a}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        // Consumes the store sender: once the loop ends the store thread
        // drains what is queued and exits.
        run_core(
            core,
            transports,
            events,
            store_tx,
            users_rx,
            query_rx,
            media_events,
            trace,
        )
        .await;
        Ok::<_, Box<dyn std::error::Error>>(store_thread)
    })?;
    rt.shutdown_timeout(Duration::from_secs(2));
    // A binding acknowledged just before the signal must reach the store
    // before the process exits, or a restart forgets it.
    if store_thread.join().is_err() {
        return Err("store thread panicked".into());
    }
    tracing::info!("stopped");
    Ok(())
}

fn spawn_store_thread(
    store: store::Store,
    db: std::path::PathBuf,
) -> (
    std_mpsc::Sender<StoreCmd>,
    mpsc::Receiver<Reload>,
    std::thread::JoinHandle<()>,
) {
    let (tx, rx) = std_mpsc::channel::<StoreCmd>();
    let (users_tx, users_rx) = mpsc::channel(4);
    let handle = std::thread::Builder::new()
        .name("store".into())
        .spawn(move || {
            let mut version = store.data_version().unwrap_or(0);
            loop {
                match rx.recv_timeout(Duration::from_millis(500)) {
                    Ok(StoreCmd::Binding(change)) => {
                        let r = match &change {
                            Change::Upsert(b) => {
                                store.upsert_binding(&to_store_binding(b)).map(|_| ())
                            }
                            Change::Remove(b) => {
                                let sb = to_store_binding(b);
                                store.remove_binding(&sb.aor, sb.key()).map(|_| ())
                            }
                        };
                        if let Err(e) = r {
                            tracing::warn!(db = %db.display(), "persisting binding: {e}");
                        }
                    }
                    Ok(StoreCmd::Cdr(record)) => {
                        let call = record.call_id.clone();
                        if let Err(e) = store.insert_cdr(&dialplan::cdr(record)) {
                            tracing::warn!(call, "writing CDR: {e}");
                        }
                    }
                    Err(std_mpsc::RecvTimeoutError::Timeout) => {}
                    Err(std_mpsc::RecvTimeoutError::Disconnected) => return,
                }
                // data_version moves when another connection (the CLI)
                // commits; then the user directory is reloaded.
                if let Ok(v) = store.data_version() {
                    if v != version {
                        version = v;
                        match load_users(&store) {
                            // The core may be gone at shutdown: the queued
                            // binding changes are still written.
                            Ok(d) => {
                                let _ = users_tx.blocking_send(Reload::Users(d));
                            }
                            Err(e) => tracing::warn!("reloading users: {e}"),
                        }
                        match dialplan::load(&store) {
                            Ok(d) => {
                                let _ = users_tx.blocking_send(Reload::Dialplan(d));
                            }
                            Err(e) => tracing::warn!("reloading trunks: {e}"),
                        }
                    }
                }
            }
        })
        .expect("spawn store thread");
    (tx, users_rx, handle)
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

async fn run_core(
    mut core: Core,
    transports: Transports,
    mut events: mpsc::Receiver<Event>,
    store_tx: std_mpsc::Sender<StoreCmd>,
    mut users_rx: mpsc::Receiver<Reload>,
    mut query_rx: mpsc::Receiver<web::CoreQuery>,
    mut media_events: Option<mpsc::UnboundedReceiver<media::RelayEvent>>,
    trace: std::sync::Arc<web::trace::SipTrace>,
) {
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    core.on_timer(Instant::now(), unix_now());
    loop {
        let deadline = core
            .next_deadline()
            .map(tokio::time::Instant::from_std)
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(1));
        tokio::select! {
            ev = events.recv() => match ev {
                Some(Event::Message(m)) => {
                    if tracing::enabled!(tracing::Level::DEBUG) {
                        tracing::debug!(
                            transport = %m.transport, source = %m.source, flow = ?m.flow.map(|f| f.0),
                            "recv {}", first_line(&m.data)
                        );
                    }
                    if trace.enabled() {
                        trace.record(true, m.transport.param(), &m.source.to_string(), &m.data);
                    }
                    let src = Source {
                        transport: to_signal_transport(m.transport),
                        flow: m.flow.map(|f| f.0),
                        addr: m.source,
                        local: m.local,
                    };
                    core.on_message(src, m.data, Instant::now(), unix_now());
                }
                Some(Event::FlowClosed { flow, .. }) => core.flow_closed(flow.0),
                None => break,
            },
            _ = tokio::time::sleep_until(deadline) => core.on_timer(Instant::now(), unix_now()),
            Some(reload) = users_rx.recv() => match reload {
                Reload::Users(users) => {
                    tracing::info!(users = users.len(), "user directory reloaded");
                    core.set_users(users);
                }
                Reload::Dialplan(d) => {
                    tracing::info!(trunks = d.trunks.len(), dids = d.dids.len(), "dialplan reloaded");
                    transports.set_tls_names(tls_names(&d));
                    core.set_dialplan(d);
                    core.on_timer(Instant::now(), unix_now());
                }
            },
            Some(q) = query_rx.recv() => answer_query(&mut core, q),
            Some(ev) = async {
                match media_events.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            } => match ev {
                media::RelayEvent::Timeout(call) => {
                    if core.media_timeout(&call, Instant::now(), unix_now()) {
                        tracing::warn!(call, "no media received: call ended with BYE both ways");
                    }
                }
                media::RelayEvent::LegFailed { session, side, reason } => {
                    tracing::warn!(call = session, ?side, reason, "media leg failed");
                }
            },
            _ = &mut shutdown => break,
        }
        while let Some(out) = core.poll_output() {
            match out {
                Output::Send { dest, data } => {
                    if tracing::enabled!(tracing::Level::DEBUG) {
                        tracing::debug!(?dest, "send {}", first_line(&data));
                    }
                    if trace.enabled() {
                        let (t, peer) = match dest {
                            Dest::Flow(f) => ("flow", format!("flow {f}")),
                            Dest::Addr(t, a) => (t.param(), a.to_string()),
                        };
                        trace.record(false, t, &peer, &data);
                    }
                    send(&transports, dest, data).await
                }
                Output::Binding(change) => {
                    let _ = store_tx.send(StoreCmd::Binding(change));
                }
                Output::CallEnded(record) => {
                    tracing::info!(
                        call = record.call_id,
                        direction = ?record.direction,
                        disposition = ?record.disposition,
                        trunk = record.trunk.as_deref().unwrap_or(""),
                        reason = record.reason,
                        "call ended"
                    );
                    let _ = store_tx.send(StoreCmd::Cdr(record));
                }
            }
        }
    }
}

/// The names TLS trunks' certificates are checked against.
fn tls_names(d: &signal::trunk::Dialplan) -> Vec<(std::net::SocketAddr, String)> {
    d.trunks
        .iter()
        .filter(|t| t.transport == signal::Transport::Tls)
        .map(|t| (t.addr, t.host.clone()))
        .collect()
}

/// The start line of a message, for logs.
fn first_line(data: &[u8]) -> String {
    let end = data
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(data.len())
        .min(200);
    String::from_utf8_lossy(&data[..end]).into_owned()
}

fn answer_query(core: &mut Core, q: web::CoreQuery) {
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
            use signal::trunk::RegistrationState as R;
            let states = core
                .trunk_status()
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
                .collect();
            let _ = tx.send(states);
        }
    }
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

async fn send(transports: &Transports, dest: Dest, data: Bytes) {
    let target = match dest {
        Dest::Flow(f) => Target::Flow(transport::FlowId(f)),
        Dest::Addr(t, a) => Target::Addr(to_transport(t), a),
    };
    match target {
        // Opening a TCP/TLS connection can take a while: never stall the
        // core on it.
        Target::Addr(transport::Transport::Tcp | transport::Transport::Tls, _) => {
            let t = transports.clone();
            tokio::spawn(async move {
                if let Err(e) = t.send(target, data).await {
                    tracing::debug!("send: {e}");
                }
            });
        }
        _ => {
            if let Err(e) = transports.send(target, data).await {
                tracing::debug!("send: {e}");
            }
        }
    }
}
