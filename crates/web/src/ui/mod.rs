//! The web admin UI: server-rendered HTML pages on the admin listener.
//!
//! Templates live in `web-ui/templates/` (askama, compiled into the
//! binary, HTML-escaped by default) and static assets in `web-ui/static/`
//! (embedded with `include_str!`). Forms work without JavaScript; the few
//! scripts only refresh live pages and draw the dashboard chart. Nothing
//! is loaded from elsewhere, and the Content-Security-Policy says so.
//!
//! # Access
//!
//! One administrator, `admin`, with an argon2 password in the store's
//! `settings` (see [`ensure_admin_password`]). Login sessions live in
//! memory (idle expiry 30 minutes, absolute 12 hours) behind a
//! `__Host-cg_session` cookie (`Secure; HttpOnly; SameSite=Strict;
//! Path=/`). Every POST carries the session's CSRF token in a `csrf` form
//! field, checked by the session layer before any handler runs. Failed
//! logins are counted per client address; too many lock that address out
//! for a while.
//!
//! # Adding a page
//!
//! 1. A template in `web-ui/templates/` that starts with
//!    `{% extends "base.html" %}` and fills `{% block content %}`; its
//!    struct has a `layout: Layout` field (from [`Auth::layout`]) and uses
//!    `#[template(path = "...", config = "../../web-ui/templates/askama.toml")]`.
//! 2. A handler taking `State<Arc<Api>>` and `Extension<Auth>`, returning
//!    [`page`]`(&template)`. Forms include
//!    `<input type="hidden" name="csrf" value="{{ layout.csrf }}">`.
//! 3. Its routes merged in [`router`] (with the pages there), or wrapped
//!    by [`protect`] where they are merged into the API router; its entry
//!    in [`NAV`] (already there for the planned pages).
//!
//! `base.html` has the blocks `head` (extra `<script src>` tags),
//! `body_attrs` (e.g. ` data-refresh="10"` to reload a live page every
//! 10 s) and `content`. Inline scripts and styles are blocked by the
//! Content-Security-Policy: put them in `web-ui/static/` (see
//! `assets.rs`).
//!
//! Changes record an audit entry with [`Auth::audit`].

mod assets;
mod audit;
mod auth;
mod certificates;
mod dashboard;
mod history;
mod live;
mod settings;
mod trace;
mod trunks;
mod users;
mod wizard;

#[cfg(test)]
mod tests;

use askama::Template;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

use crate::{Api, CoreQuery, TrunkStatusView};

pub use auth::{ensure_admin_password, Auth, SetupError};
pub use dashboard::spawn_sampler;
pub use settings::{SettingItem, SettingsView};

/// Something changed through the admin UI that the rest of the gateway
/// may need to act on. Users, trunks and DIDs are not here: they are in
/// the store, and the server picks them up from there.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AdminEvent {
    /// A new certificate and key were written to these files (both parse,
    /// the key belongs to the certificate, it is valid now). With
    /// [`Api::with_certs`] the listeners already present it; without, it
    /// is used from the next start.
    CertificateChanged { cert: PathBuf, key: PathBuf },
    /// These `settings` keys changed (e.g. `sip_domain`,
    /// `advertised_address`).
    SettingsChanged { keys: Vec<String> },
}

/// The health of the gateway as the dashboard shows it; the signalling
/// core answers [`CoreQuery::Dashboard`] with it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DashboardView {
    pub uptime_secs: u64,
    pub version: String,
    /// Live registration bindings.
    pub registrations: usize,
    pub active_calls: usize,
    /// Every SIP listener.
    pub transports: Vec<TransportHealth>,
    pub media: MediaHealth,
    /// Whether the store thread is alive and writing.
    pub store_ok: bool,
    pub trunks: Vec<TrunkStatusView>,
}

/// One SIP listener.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransportHealth {
    /// "udp", "tcp", "tls" or "wss".
    pub name: String,
    /// The listening address, e.g. `0.0.0.0:5060`.
    pub addr: String,
    pub ok: bool,
}

/// The media relay.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MediaHealth {
    /// False when SDP is passed through (`[media] relay = false`).
    pub relay: bool,
    /// "io_uring" or "epoll"; empty when the relay is off.
    pub data_path: String,
    pub workers: Vec<WorkerHealth>,
}

/// One media worker thread.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerHealth {
    pub alive: bool,
    /// Packets relayed since the start, a counter that only grows; the
    /// dashboard turns it into packets per second.
    pub packets: u64,
}

/// `?name=` of the pages that edit one named thing (names go in the query,
/// never the path: they may hold `/` and `?`).
#[derive(Debug, serde::Deserialize)]
pub(crate) struct NameQuery {
    #[serde(default)]
    pub name: String,
}

/// How the UI is set up; see [`Api::with_ui`].
#[derive(Debug, Default)]
pub struct UiOptions {
    /// The data dir, where an uploaded certificate is written
    /// (`uploaded-cert.pem`, `uploaded-key.pem`) when certificate
    /// management ([`Api::with_certs`]) is not enabled. Default: the
    /// database's directory.
    pub data_dir: Option<PathBuf>,
    /// Receives [`AdminEvent`]s. Events are dropped (and logged) when this
    /// is unset or full.
    pub admin_events: Option<mpsc::Sender<AdminEvent>>,
}

/// A left-navigation entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NavItem {
    /// What pages name as their `active` entry.
    pub key: &'static str,
    pub label: &'static str,
    pub href: &'static str,
}

/// The left navigation, in order.
pub const NAV: &[NavItem] = &[
    NavItem {
        key: "dashboard",
        label: "Dashboard",
        href: "/dashboard",
    },
    NavItem {
        key: "users",
        label: "Users",
        href: "/users",
    },
    NavItem {
        key: "trunks",
        label: "Trunks",
        href: "/trunks",
    },
    NavItem {
        key: "registrations",
        label: "Registrations",
        href: "/registrations",
    },
    NavItem {
        key: "calls",
        label: "Calls",
        href: "/calls",
    },
    NavItem {
        key: "certificates",
        label: "Certificates",
        href: "/certificates",
    },
    NavItem {
        key: "settings",
        label: "Settings",
        href: "/settings",
    },
    NavItem {
        key: "sip-trace",
        label: "SIP trace",
        href: "/sip-trace",
    },
    NavItem {
        key: "audit",
        label: "Audit log",
        href: "/audit",
    },
    NavItem {
        key: "softphone",
        label: "Softphone",
        href: "/phone",
    },
];

/// What every page with the navigation shows around its content.
#[derive(Debug, Clone)]
pub struct Layout {
    pub title: String,
    /// The [`NavItem::key`] to highlight.
    pub active: &'static str,
    /// The session's CSRF token, for every form's hidden `csrf` field.
    pub csrf: String,
    pub nav: &'static [NavItem],
    /// A one-time notice from the previous request (e.g. "User saved").
    pub flash: Option<String>,
    pub version: &'static str,
}

/// A dashboard chart point.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub(crate) struct Sample {
    /// Unix seconds.
    pub t: u64,
    pub calls: usize,
    pub registrations: usize,
    /// Relayed packets per second over the last interval.
    pub pps: f64,
}

/// Samples kept: one hour at one every 10 s.
pub(crate) const SAMPLES: usize = 360;

/// The UI's part of [`Api`]: login sessions, login throttling, chart
/// samples and where admin events go.
pub struct UiState {
    pub(crate) data_dir: PathBuf,
    events: Option<mpsc::Sender<AdminEvent>>,
    pub(crate) sessions: auth::Sessions,
    pub(crate) throttle: auth::Throttle,
    pub(crate) samples: Mutex<SampleRing>,
    wizard_done: AtomicBool,
    pub(crate) started: Instant,
}

/// The chart's ring buffer and what the rates are computed from.
#[derive(Debug, Default)]
pub(crate) struct SampleRing {
    pub samples: VecDeque<Sample>,
    /// Per-worker packet counters and when they were read.
    pub last_counters: Option<(Instant, Vec<u64>)>,
    /// Per-worker packets per second over the last interval.
    pub worker_rates: Vec<f64>,
}

impl UiState {
    /// State for an API over the database at `db_path`.
    pub fn new(db_path: &Path, options: UiOptions) -> UiState {
        let data_dir = options.data_dir.unwrap_or_else(|| {
            db_path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .to_owned()
        });
        UiState {
            data_dir,
            events: options.admin_events,
            sessions: auth::Sessions::default(),
            throttle: auth::Throttle::default(),
            samples: Mutex::new(SampleRing::default()),
            wizard_done: AtomicBool::new(false),
            started: Instant::now(),
        }
    }

    /// Hands an event to whoever listens, never waiting.
    pub(crate) fn emit(&self, event: AdminEvent) {
        match &self.events {
            Some(tx) => {
                if let Err(e) = tx.try_send(event) {
                    tracing::warn!("admin event not delivered: {e}");
                }
            }
            None => tracing::debug!(?event, "admin event with no listener"),
        }
    }
}

impl std::fmt::Debug for UiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UiState")
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

impl Api {
    /// [`Api::new`] with the UI's options.
    pub fn with_ui(
        db_path: PathBuf,
        realm: String,
        token: String,
        core: mpsc::Sender<CoreQuery>,
        options: UiOptions,
    ) -> Arc<Api> {
        let mut api = Api::new(db_path, realm, token, core);
        let ui = UiState::new(&api.db_path, options);
        Arc::get_mut(&mut api).expect("not shared yet").ui = ui;
        api
    }

    /// Asks the core and waits at most `wait` for the answer.
    pub(crate) async fn ask_core<T>(
        &self,
        query: impl FnOnce(oneshot::Sender<T>) -> CoreQuery,
        wait: Duration,
    ) -> Option<T> {
        let ask = async {
            let (tx, rx) = oneshot::channel();
            self.core.send(query(tx)).await.ok()?;
            rx.await.ok()
        };
        tokio::time::timeout(wait, ask).await.ok().flatten()
    }

    /// Runs `f` on the store like [`Api::with_store`], keeping the
    /// store's own error for the forms to show.
    pub(crate) async fn store_op<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&store::Store) -> store::Result<T> + Send + 'static,
    ) -> store::Result<T> {
        match self.with_store(move |s| Ok(f(s))).await {
            Ok(result) => result,
            Err(e) => Err(store::Error::Io {
                op: "open the database",
                source: std::io::Error::other(e.message),
            }),
        }
    }

    /// Whether the first-run wizard was completed or skipped.
    async fn wizard_done(self: &Arc<Self>) -> bool {
        if self.ui.wizard_done.load(Ordering::Relaxed) {
            return true;
        }
        let done = self
            .with_store(|s| s.get_setting(WIZARD_DONE))
            .await
            .ok()
            .flatten()
            .is_some_and(|v| v == "1");
        if done {
            self.ui.wizard_done.store(true, Ordering::Relaxed);
        }
        done
    }
}

/// Settings keys the UI owns.
pub(crate) const WIZARD_DONE: &str = "wizard_done";
pub(crate) const SIP_DOMAIN: &str = "sip_domain";
pub(crate) const ADVERTISED_ADDRESS: &str = "advertised_address";

/// How long a page waits for the signalling core.
pub(crate) const CORE_WAIT: Duration = Duration::from_secs(2);

/// The UI routes, to merge into the API router before its state is set.
pub fn router(api: &Arc<Api>) -> Router<Arc<Api>> {
    let pages = Router::new()
        .route("/", get(|| async { Redirect::to("/dashboard") }))
        .route("/logout", post(auth::logout))
        .route(
            "/password",
            get(auth::password_page).post(auth::change_password),
        )
        .route("/dashboard", get(dashboard::show))
        .route("/dashboard/samples.json", get(dashboard::samples))
        .merge(users::routes())
        .merge(live::routes())
        .merge(history::routes())
        .merge(audit::routes())
        .merge(wizard::routes())
        .merge(trunks::routes())
        .merge(certificates::routes())
        .merge(settings::routes())
        .merge(trace::routes());
    Router::new()
        .route("/login", get(auth::login_page).post(auth::login))
        .merge(assets::routes())
        .merge(trace::asset_routes())
        .layer(middleware::from_fn(security_headers))
        .merge(protect(api, pages))
}

/// Puts `routes` behind the admin login: the session layer (login, CSRF
/// check of every POST, forced password change, first-run wizard; hands
/// [`Auth`] to handlers) and the UI's security headers. For pages built
/// outside this module:
/// `router.merge(ui::protect(&api, my_pages::routes()))`.
pub fn protect(api: &Arc<Api>, routes: Router<Arc<Api>>) -> Router<Arc<Api>> {
    routes
        .route_layer(middleware::from_fn_with_state(
            api.clone(),
            auth::require_session,
        ))
        .layer(middleware::from_fn(security_headers))
}

/// Headers on every UI answer: nothing from elsewhere, no framing, no
/// caching of pages that show live or private data.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    resp
}

/// Renders a page, or a plain 500 if the template fails.
pub fn page<T: Template>(t: &T) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!("template: {e}");
            (StatusCode::INTERNAL_SERVER_ERROR, "page rendering failed").into_response()
        }
    }
}

/// A page with a status other than 200.
pub fn page_with<T: Template>(status: StatusCode, t: &T) -> Response {
    let mut resp = page(t);
    if resp.status() == StatusCode::OK {
        *resp.status_mut() = status;
    }
    resp
}

/// A full-page message outside the navigation (errors, lockouts).
#[derive(Template)]
#[template(path = "message.html", config = "../../web-ui/templates/askama.toml")]
pub struct MessagePage {
    pub title: String,
    pub message: String,
    /// Where the "continue" link goes.
    pub back: &'static str,
}

/// A message page with `status`.
pub fn message(status: StatusCode, title: &str, message: &str, back: &'static str) -> Response {
    page_with(
        status,
        &MessagePage {
            title: title.to_owned(),
            message: message.to_owned(),
            back,
        },
    )
}

/// A failure talking to the store or the core, as a page.
pub fn internal_error(what: &str) -> Response {
    message(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        what,
        "/dashboard",
    )
}

/// Validation errors of a form, by field name.
#[derive(Debug, Clone, Default)]
pub struct FieldErrors(Vec<(String, String)>);

impl FieldErrors {
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0.push((field.to_owned(), message.into()));
    }
    /// The first error about `field`.
    pub fn get(&self, field: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, m)| m.as_str())
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Errors whose field has no input of its own on the form.
    pub fn others(&self, shown: &[&str]) -> Vec<String> {
        self.0
            .iter()
            .filter(|(f, _)| !shown.contains(&f.as_str()))
            .map(|(_, m)| m.clone())
            .collect()
    }
}

/// A page of a long list: what is shown and where the neighbours are.
#[derive(Debug, Clone)]
pub struct Pager {
    /// 1-based index of the first row shown (0 when empty).
    pub first: u64,
    pub last: u64,
    pub total: u64,
    pub prev: Option<String>,
    pub next: Option<String>,
}

impl Pager {
    /// `base` is the path with the other query parameters (ending in `?`
    /// or `&`); `page` is 1-based.
    pub fn new(base: &str, page: u32, per_page: u32, total: u64, shown: usize) -> Pager {
        let offset = u64::from(page.saturating_sub(1)) * u64::from(per_page);
        Pager {
            first: if shown == 0 { 0 } else { offset + 1 },
            last: offset + shown as u64,
            total,
            prev: (page > 1).then(|| format!("{base}page={}", page - 1)),
            next: (offset + (shown as u64) < total).then(|| format!("{base}page={}", page + 1)),
        }
    }
}

/// The page number of a `page` query parameter: 1 when absent or bad.
pub(crate) fn page_number(p: Option<&str>) -> u32 {
    p.and_then(|p| p.parse().ok())
        .filter(|p| (1..=1_000_000).contains(p))
        .unwrap_or(1)
}

/// Percent-encodes a query parameter value.
pub(crate) fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) of unix seconds.
pub(crate) fn fmt_time(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// `YYYY-MM-DD` (UTC) of unix seconds.
pub(crate) fn fmt_date(unix: i64) -> String {
    let (y, m, d) = civil_from_days(unix.div_euclid(86_400));
    format!("{y:04}-{m:02}-{d:02}")
}

/// Howard Hinnant's civil_from_days.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A duration as `1:02:03` or `2:03`.
pub(crate) fn fmt_duration(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

/// An uptime as `3d 4h 5m` or `4h 5m` or `5m 6s`.
pub(crate) fn fmt_uptime(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d {h}h {m}m")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else {
        format!("{m}m {s}s")
    }
}

/// Unix seconds now.
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The form field a store error is about, and why; `None` for errors
/// that are not about the input.
pub(crate) fn store_field_error(e: &store::Error) -> Option<(&'static str, String)> {
    match e {
        store::Error::Invalid { field, reason } => Some((field, reason.clone())),
        store::Error::UserExists(_) => Some(("username", e.to_string())),
        store::Error::ExtensionInUse { .. } => Some(("extension", e.to_string())),
        store::Error::TrunkExists(_) => Some(("name", e.to_string())),
        _ => None,
    }
}
