//! The running gateway: wires transports, the signalling core and the store.
//!
//! Threads and tasks:
//! - the tokio runtime runs the transports and one *core task* that owns the
//!   sans-IO [`signal::Core`] (no locks: every SIP event goes through it);
//! - one *store thread* owns the SQLite connection: it persists binding
//!   changes and watches the file for user edits made by the CLI;
//! - with `[media] relay = true`, the media relay's driver tasks (see
//!   [`crate::relay`]); the core rewrites SDP through it synchronously.

mod ops;

use crate::config::Config;
use crate::dialplan;
use crate::relay;
use crate::users;
use bytes::Bytes;
use signal::auth::{Directory, UserRecord};
use signal::registrar::{Binding, Change};
use signal::{Core, CoreConfig, Dest, Output, Source};
use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, PoisonError};
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
        caller_id: u.caller_id,
        max_calls: u.max_calls,
        scope: match u.allowed {
            store::DestinationScope::Local => signal::auth::Scope::Local,
            store::DestinationScope::National => signal::auth::Scope::National,
            store::DestinationScope::International => signal::auth::Scope::International,
        },
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
/// the API, the admin UI) changed the database.
enum Reload {
    Users(Directory),
    Dialplan(signal::trunk::Dialplan),
}

/// Opens the store, applies provisioning and the settings the admin UI
/// wrote, prints first-start secrets.
fn prepare_store(
    config: &mut Config,
    db: &Path,
) -> Result<(store::Store, [u8; 32], String), Box<dyn std::error::Error>> {
    let store = store::Store::open(db)?;
    // The first-run wizard's answers win over the file: they were given
    // later, by an operator, on this box.
    if let Some(domain) = store.get_setting("sip_domain")?.filter(|d| !d.is_empty()) {
        if domain != config.sip.domain {
            tracing::info!(domain, "SIP domain set in the admin UI");
            config.sip.domain = domain;
        }
    }
    if let Some(level) = store.get_setting("log_level")?.filter(|l| !l.is_empty()) {
        if crate::set_log_level(&level) {
            tracing::info!(level, "log level from the admin UI");
        }
    }
    let port = |key: &str| -> store::Result<Option<u16>> {
        Ok(store.get_setting(key)?.and_then(|v| v.parse().ok()))
    };
    if let (Some(min), Some(max)) = (port("media_port_min")?, port("media_port_max")?) {
        if min < max && max - min >= 3 {
            config.media.port_min = min;
            config.media.port_max = max;
        }
    }
    if let Some(addr) = store.get_setting("advertised_address")? {
        match addr.parse() {
            Ok(ip) => config.media.advertised_address = Some(ip),
            Err(_) if addr.is_empty() => {}
            Err(_) => tracing::warn!(addr, "ignoring the admin UI's advertised address"),
        }
    }
    let realm = config.sip.domain.clone();
    let changed = users::provision(&store, &realm, &config.users)?;
    if changed > 0 {
        tracing::info!(changed, "users from the config file applied");
    }
    // After the users: DIDs may name users the config file creates.
    let changed = crate::trunks::provision(&store, &config.trunks, &config.dids)?;
    if changed > 0 {
        tracing::info!(changed, "trunks and DIDs from the config file applied");
    }
    if config.users.is_empty() {
        let mut demo = String::new();
        for (name, pw) in users::ensure_demo_users(&store, &realm)? {
            println!("created demo user {name} (sip:{name}@{realm}) with password {pw}");
            demo.push_str(&format!("sip:{name}@{realm} {pw}\n"));
        }
        // Under a service manager stdout may go nowhere: keep them
        // owner-only in the data dir too.
        if !demo.is_empty() {
            write_private(&config.data_dir.join("demo-users.txt"), demo.as_bytes())?;
        }
    }
    // The admin password: printed once, and kept owner-only in the data
    // dir until the first login replaces it (the appliance console shows
    // it from there).
    if let Some(pw) = web::ui::ensure_admin_password(&store)? {
        println!("admin UI password (change it at first login): {pw}");
        write_private(&config.data_dir.join(ADMIN_PASSWORD_FILE), pw.as_bytes())?;
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

/// The one-time admin password, until the first login changes it.
pub const ADMIN_PASSWORD_FILE: &str = "admin-password.txt";

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

/// What the core task needs besides the core: the web side's shared state,
/// the relay's handle, and where listener and store health is reported.
struct Ctx {
    transports: Transports,
    store_tx: std_mpsc::Sender<StoreCmd>,
    trace: Arc<web::trace::SipTrace>,
    health: Arc<web::health::HealthState>,
    metrics: Arc<web::metrics::Metrics>,
    relay: Option<media::driver::RelayHandle>,
    /// Listeners outside the transports (admin, health) report failures here.
    listener_errors: ListenerErrors,
    store_health: Arc<Mutex<Result<(), String>>>,
    heartbeats: web::health::HeartbeatWatch,
    workers_alive: Vec<bool>,
    started: Instant,
    drain: Duration,
    cert_store: Arc<transport::tls::CertStore>,
    /// For SIGHUP: where the configuration came from.
    reload: ReloadSource,
    /// Beaten by the core task on every tick, for the service watchdog.
    beat: crate::service::Heartbeat,
    ticks: u64,
    /// A stop is under way.
    draining: bool,
    /// The running configuration as the settings page shows it.
    settings: web::ui::SettingsView,
    /// Trunk pings waiting for their answer.
    pings: std::collections::HashMap<u64, tokio::sync::oneshot::Sender<Result<u64, String>>>,
}

/// Listeners outside the transports, with why each is down (`None`: up).
type ListenerErrors = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// Where SIGHUP re-reads the configuration from.
#[derive(Clone)]
pub struct ReloadSource {
    pub config_path: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub db: PathBuf,
    pub names: Vec<String>,
}

/// Runs the gateway until SIGINT/SIGTERM (graceful: see `[service]
/// drain_secs`). SIGHUP re-reads the configuration file and certificates.
pub fn run(
    mut config: Config,
    config_path: Option<PathBuf>,
    data_dir_override: Option<PathBuf>,
) -> Result<(), Box<dyn std::error::Error>> {
    let db = config.data_dir.join("callgate.db");
    let (store, secret, token) = prepare_store(&mut config, &db)?;
    let users = load_users(&store)?;
    let dialplan = dialplan::load(&store)?;
    let bindings = store.list_all_bindings()?;

    let names = vec![config.sip.domain.clone()];
    let (cert, key) = transport::tls::startup_paths(
        &config.data_dir,
        config
            .sip
            .tls_cert
            .as_deref()
            .zip(config.sip.tls_key.as_deref()),
        &names,
    )?;
    let cert_store = transport::tls::CertStore::load(&cert, &key)?;
    let server_tls = cert_store.server_config();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("callgate")
        .build()?;
    let store_health = Arc::new(Mutex::new(Ok(())));
    let metrics = web::metrics::Metrics::new();
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
        // Our own address in URIs (OPTIONS sip:<ip>, Record-Route) when
        // listeners are bound to a wildcard: configured, else the one the
        // relay puts in SDP.
        core_cfg.advertised = Some(
            config
                .media
                .advertised_address
                .unwrap_or_else(|| relay::advertised_ip(&config.media)),
        );
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
        let (media_events, relay) = if config.media.relay {
            let started = relay::start(&config.media)?;
            core.set_media(Box::new(started.hook));
            (Some(started.events), Some(started.handle))
        } else {
            (None, None)
        };

        let (store_tx, users_rx, store_thread) = spawn_store_thread(
            store,
            db.clone(),
            store_health.clone(),
            metrics.clone(),
            config.data_dir.join(ADMIN_PASSWORD_FILE),
        );
        let (query_tx, query_rx) = mpsc::channel(16);
        let (admin_tx, admin_rx) = mpsc::channel(16);
        let wss_port = transports
            .local_addr(transport::Transport::Wss)
            .map_or(7443, |a| a.port());
        let api = web::Api::with_ui(
            db.clone(),
            config.sip.domain.clone(),
            token,
            query_tx,
            web::ui::UiOptions {
                data_dir: Some(config.data_dir.clone()),
                admin_events: Some(admin_tx),
            },
        )
        .with_certs(web::certs::CertContext {
            store: cert_store.clone(),
            data_dir: config.data_dir.clone(),
            names: names.clone(),
        })
        .with_phone(web::phone::PhoneConfig {
            sip_domain: config.sip.domain.clone(),
            wss_url_port: wss_port,
        });
        web::ui::spawn_sampler(api.clone());
        let trace = api.trace.clone();
        let health = web::health::HealthState::new();
        let listener_errors = Arc::new(Mutex::new(Vec::new()));
        // SIP service does not depend on the admin or health listeners: a
        // port clash there is reported (and makes /readyz fail), not fatal.
        let admin = config.admin.listen;
        let admin_name = format!("admin https {admin}");
        listener_errors
            .lock()
            .unwrap()
            .push((admin_name.clone(), None));
        {
            let (health, metrics, errors) =
                (health.clone(), metrics.clone(), listener_errors.clone());
            tokio::spawn(async move {
                tracing::info!("listening on https {admin} (admin UI, JSON API /api/v1)");
                if let Err(e) =
                    web::health::serve_admin(admin, server_tls, api, health, metrics).await
                {
                    tracing::error!("admin listener {admin} failed: {e}");
                    set_listener_error(&errors, &admin_name, e.to_string());
                }
            });
        }
        if let Some(addr) = config.health.listen {
            let name = format!("health http {addr}");
            listener_errors.lock().unwrap().push((name.clone(), None));
            let (health, metrics, errors) =
                (health.clone(), metrics.clone(), listener_errors.clone());
            tokio::spawn(async move {
                let r = match tokio::net::TcpListener::bind(addr).await {
                    Ok(l) => {
                        tracing::info!("listening on http {addr} (/healthz /readyz /metrics)");
                        web::health::serve_health_on(l, health, metrics).await
                    }
                    Err(e) => Err(e),
                };
                if let Err(e) = r {
                    tracing::error!("health listener {addr} failed: {e}");
                    set_listener_error(&errors, &name, e.to_string());
                }
            });
        }
        println!(
            "callgate {} ready: SIP domain {}, WSS {}, admin https://{}",
            env!("CARGO_PKG_VERSION"),
            config.sip.domain,
            config
                .sip
                .wss
                .iter()
                .map(|a| format!("wss://{a}"))
                .collect::<Vec<_>>()
                .join(" "),
            config.admin.listen,
        );
        let beat = crate::service::Heartbeat::new();
        let ctx = Ctx {
            transports,
            store_tx,
            trace,
            health,
            metrics,
            relay,
            listener_errors,
            store_health,
            heartbeats: web::health::HeartbeatWatch::default(),
            workers_alive: Vec::new(),
            started: Instant::now(),
            drain: Duration::from_secs(u64::from(config.service.drain_secs)),
            cert_store,
            reload: ReloadSource {
                config_path,
                data_dir: data_dir_override,
                db: db.clone(),
                names,
            },
            beat,
            ticks: 0,
            draining: false,
            pings: Default::default(),
            settings: ops::settings_view(&config),
        };
        crate::service::ready();
        let workers = ctx.relay.clone();
        // Kept for the life of the core loop: dropping it stops the pings.
        let watchdog = crate::service::Watchdog::spawn(ctx.beat.counter(), move || {
            workers
                .as_ref()
                .map(|r| r.worker_heartbeats())
                .unwrap_or_default()
        });
        if crate::service::under_systemd() {
            tracing::info!(
                watchdog = watchdog.armed(),
                check_ms = watchdog.interval().map(|d| d.as_millis() as u64),
                "service manager notified: ready"
            );
        }
        // Consumes the store sender: once the loop ends the store thread
        // drains what is queued and exits.
        run_core(
            core,
            ctx,
            events,
            users_rx,
            query_rx,
            media_events,
            admin_rx,
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

fn set_listener_error(errors: &Mutex<Vec<(String, Option<String>)>>, name: &str, e: String) {
    let mut errors = errors.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(entry) = errors.iter_mut().find(|(n, _)| n == name) {
        entry.1 = Some(e);
    }
}

fn spawn_store_thread(
    store: store::Store,
    db: std::path::PathBuf,
    health: Arc<Mutex<Result<(), String>>>,
    metrics: Arc<web::metrics::Metrics>,
    admin_password_file: PathBuf,
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
            let mut last_probe = Instant::now() - Duration::from_secs(10);
            loop {
                let cmd = rx.recv_timeout(Duration::from_millis(500));
                let started = Instant::now();
                match cmd {
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
                        metrics.observe_store_write(started.elapsed());
                        if let Err(e) = r {
                            tracing::warn!(db = %db.display(), "persisting binding: {e}");
                            *health.lock().unwrap_or_else(PoisonError::into_inner) =
                                Err(e.to_string());
                        }
                    }
                    Ok(StoreCmd::Cdr(record)) => {
                        let call = record.call_id.clone();
                        let r = store.insert_cdr(&dialplan::cdr(record));
                        metrics.observe_store_write(started.elapsed());
                        if let Err(e) = r {
                            tracing::warn!(call, "writing CDR: {e}");
                        }
                    }
                    Err(std_mpsc::RecvTimeoutError::Timeout) => {}
                    Err(std_mpsc::RecvTimeoutError::Disconnected) => return,
                }
                // Readiness: the store must take a write, every second.
                if last_probe.elapsed() >= Duration::from_secs(1) {
                    last_probe = Instant::now();
                    let t = Instant::now();
                    let r = store
                        .set_setting("health_probe", &unix_now().to_string())
                        .map_err(|e| e.to_string());
                    metrics.observe_store_write(t.elapsed());
                    *health.lock().unwrap_or_else(PoisonError::into_inner) = r;
                }
                // data_version moves when another connection (the CLI, the
                // API, the admin UI) commits; then users and the dialplan
                // are reloaded.
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
                        // The first login replaced the one-time password.
                        if store
                            .get_setting("admin_must_change")
                            .ok()
                            .flatten()
                            .as_deref()
                            != Some("1")
                            && admin_password_file.exists()
                        {
                            let _ = std::fs::remove_file(&admin_password_file);
                        }
                    }
                }
            }
        })
        .expect("spawn store thread");
    (tx, users_rx, handle)
}

async fn run_core(
    mut core: Core,
    mut ctx: Ctx,
    mut events: mpsc::Receiver<Event>,
    mut users_rx: mpsc::Receiver<Reload>,
    mut query_rx: mpsc::Receiver<web::CoreQuery>,
    mut media_events: Option<mpsc::UnboundedReceiver<media::RelayEvent>>,
    mut admin_rx: mpsc::Receiver<web::ui::AdminEvent>,
) {
    let mut signals = match crate::service::Signals::new() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot install signal handlers: {e}");
            return;
        }
    };
    let mut tick = tokio::time::interval(crate::service::HEARTBEAT_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Set once a stop is asked for: calls may go on until then.
    let mut stop_at: Option<Instant> = None;
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
                    if ctx.trace.enabled() {
                        ctx.trace.record(true, m.transport.param(), &m.source.to_string(), &m.data);
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
            _ = tick.tick() => ops::tick(&mut core, &mut ctx),
            Some(reload) = users_rx.recv() => match reload {
                Reload::Users(users) => {
                    tracing::info!(users = users.len(), "user directory reloaded");
                    core.set_users(users);
                }
                Reload::Dialplan(d) => {
                    tracing::info!(trunks = d.trunks.len(), dids = d.dids.len(), "dialplan reloaded");
                    ctx.transports.set_tls_names(tls_names(&d));
                    core.set_dialplan(d);
                    core.on_timer(Instant::now(), unix_now());
                }
            },
            Some(q) = query_rx.recv() => ops::answer_query(&mut core, &mut ctx, q),
            Some(ev) = admin_rx.recv() => ops::admin_event(&mut ctx, ev),
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
            sig = signals.recv() => match sig {
                crate::service::Signal::Reload => ops::reload(&ctx),
                crate::service::Signal::Terminate if stop_at.is_some() => {
                    tracing::warn!("second stop signal: ending calls now");
                    stop_at = Some(Instant::now());
                }
                crate::service::Signal::Terminate => {
                    crate::service::stopping();
                    // Room for the drain and the BYEs after it.
                    crate::service::extend_timeout(ctx.drain + Duration::from_secs(10));
                    let calls = core.call_count();
                    tracing::info!(
                        calls,
                        drain_secs = ctx.drain.as_secs(),
                        "stopping: new calls get 503, calls in progress may finish"
                    );
                    core.set_draining(true);
                    ctx.draining = true;
                    stop_at = Some(Instant::now() + ctx.drain);
                }
            },
        }
        flush(&mut core, &mut ctx).await;
        if let Some(at) = stop_at {
            if core.call_count() == 0 {
                break;
            }
            if Instant::now() >= at {
                let n = core.hangup_all("gateway shutting down", Instant::now(), unix_now());
                tracing::info!(calls = n, "drain time over: remaining calls ended with BYE");
                flush(&mut core, &mut ctx).await;
                break;
            }
        }
    }
}

/// Carries out what the core queued.
async fn flush(core: &mut Core, ctx: &mut Ctx) {
    while let Some(out) = core.poll_output() {
        match out {
            Output::Send { dest, data } => {
                if tracing::enabled!(tracing::Level::DEBUG) {
                    tracing::debug!(?dest, "send {}", first_line(&data));
                }
                if ctx.trace.enabled() {
                    let (t, peer) = match dest {
                        Dest::Flow(f) => ("flow", format!("flow {f}")),
                        Dest::Addr(t, a) => (t.param(), a.to_string()),
                    };
                    ctx.trace.record(false, t, &peer, &data);
                }
                send(&ctx.transports, dest, data).await
            }
            Output::Binding(change) => {
                let _ = ctx.store_tx.send(StoreCmd::Binding(change));
            }
            Output::CallEnded(record) => {
                tracing::info!(
                    call = record.call_id,
                    user = record
                        .caller_user
                        .as_deref()
                        .or(record.callee_user.as_deref())
                        .unwrap_or(""),
                    direction = ?record.direction,
                    disposition = ?record.disposition,
                    trunk = record.trunk.as_deref().unwrap_or(""),
                    reason = record.reason,
                    "call ended"
                );
                let _ = ctx.store_tx.send(StoreCmd::Cdr(record));
            }
            Output::PingResult { id, result } => {
                if let Some(reply) = ctx.pings.remove(&id) {
                    let _ = reply.send(match result {
                        Ok((200..=299, rtt)) => Ok(rtt.as_millis() as u64),
                        Ok((status, rtt)) => {
                            Err(format!("answered {status} in {} ms", rtt.as_millis()))
                        }
                        Err(e) => Err(e),
                    });
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
