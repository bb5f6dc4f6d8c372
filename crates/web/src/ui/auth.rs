//! The administrator's password, login sessions, CSRF tokens and the
//! login throttle.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use askama::Template;
use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use serde::Deserialize;
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::{message, page, page_with, FieldErrors, Layout, NAV};
use crate::Api;

/// The only administrator account.
pub(crate) const ADMIN_USER: &str = "admin";
/// Settings keys: the PHC string of the password, and "1" while the
/// password generated at first start has not been changed.
pub(crate) const HASH_KEY: &str = "admin_password_hash";
pub(crate) const MUST_CHANGE_KEY: &str = "admin_must_change";
/// Shortest administrator password accepted.
pub(crate) const MIN_ADMIN_PASSWORD: usize = 10;

pub(crate) const SESSION_COOKIE: &str = "__Host-cg_session";
/// Double-submit token of the login form, which has no session yet.
const LOGIN_COOKIE: &str = "__Host-cg_login";
/// A session unused this long ends.
pub(crate) const IDLE_EXPIRY: Duration = Duration::from_secs(30 * 60);
/// A session ends this long after login, used or not.
pub(crate) const ABSOLUTE_EXPIRY: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at most; the least recently used goes first.
const MAX_SESSIONS: usize = 256;
/// Failed logins from one address within [`FAILURE_WINDOW`] that lock it
/// out for [`LOCKOUT`].
pub(crate) const MAX_FAILURES: u32 = 5;
const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);
pub(crate) const LOCKOUT: Duration = Duration::from_secs(5 * 60);
/// Addresses tracked at most by the throttle.
const MAX_TRACKED: usize = 10_000;
/// Largest form body accepted (certificate uploads included).
const MAX_FORM: usize = 512 * 1024;

/// Why the administrator password could not be set up.
#[derive(Debug)]
pub enum SetupError {
    Store(store::Error),
    /// The OS random source failed.
    Random(getrandom::Error),
    Hash(argon2::password_hash::Error),
}

impl std::fmt::Display for SetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SetupError::Store(e) => write!(f, "admin password: {e}"),
            SetupError::Random(e) => write!(f, "admin password: random source: {e}"),
            SetupError::Hash(e) => write!(f, "admin password: hashing: {e}"),
        }
    }
}

impl std::error::Error for SetupError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SetupError::Store(e) => Some(e),
            _ => None,
        }
    }
}

impl From<store::Error> for SetupError {
    fn from(e: store::Error) -> Self {
        SetupError::Store(e)
    }
}

impl From<getrandom::Error> for SetupError {
    fn from(e: getrandom::Error) -> Self {
        SetupError::Random(e)
    }
}

impl From<argon2::password_hash::Error> for SetupError {
    fn from(e: argon2::password_hash::Error) -> Self {
        SetupError::Hash(e)
    }
}

/// At first start: creates a random administrator password, stores its
/// argon2 hash with the must-change flag set, and returns it in clear to be
/// shown once. `None` when a password is already set.
pub fn ensure_admin_password(store: &store::Store) -> Result<Option<String>, SetupError> {
    if store.get_setting(HASH_KEY)?.is_some() {
        return Ok(None);
    }
    reset_admin_password(store).map(Some)
}

/// Replaces the administrator password with a new random one that must be
/// changed at the next login, and returns it in clear (for a recovery
/// command). Login sessions already open in a running server are kept
/// until they expire or the server restarts.
pub fn reset_admin_password(store: &store::Store) -> Result<String, SetupError> {
    let password = random_password(16)?;
    let hash = hash_password(&password)?;
    store.set_settings([(HASH_KEY, hash.as_str()), (MUST_CHANGE_KEY, "1")])?;
    Ok(password)
}

/// The argon2 instance for new hashes. Tests use tiny parameters so the
/// unoptimised build stays fast; verification always takes the
/// parameters from the stored hash.
fn argon2() -> Argon2<'static> {
    if cfg!(test) {
        let params = argon2::Params::new(256, 1, 1, None).expect("valid parameters");
        Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
    } else {
        Argon2::default()
    }
}

/// The PHC string of an argon2id hash of `password` with a random salt.
pub(crate) fn hash_password(password: &str) -> Result<String, SetupError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt)?;
    let salt = SaltString::encode_b64(&salt)?;
    Ok(argon2()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

/// Whether `password` matches the PHC string; the comparison is
/// constant-time.
pub(crate) fn verify_password(phc: &str, password: &str) -> bool {
    PasswordHash::new(phc)
        .and_then(|h| Argon2::default().verify_password(password.as_bytes(), &h))
        .is_ok()
}

/// A hash nobody's password matches, verified against for unknown user
/// names so they take as long as known ones.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_password("not the password").unwrap_or_default())
}

/// Letters and digits that cannot be mistaken for each other.
const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";

/// A random password of `len` characters from [`ALPHABET`].
pub(crate) fn random_password(len: usize) -> Result<String, getrandom::Error> {
    let limit = 256 - 256 % ALPHABET.len();
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        getrandom::fill(&mut buf)?;
        for &b in &buf {
            // Rejection sampling keeps every character equally likely.
            if usize::from(b) < limit && out.len() < len {
                out.push(ALPHABET[usize::from(b) % ALPHABET.len()] as char);
            }
        }
    }
    Ok(out)
}

/// 256 random bits as hex.
pub(crate) fn random_token() -> String {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("the OS random source failed");
    b.iter().map(|b| format!("{b:02x}")).collect()
}

fn ct_eq(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// A login session.
#[derive(Debug)]
struct Session {
    csrf: String,
    created: Instant,
    last_seen: Instant,
    must_change: bool,
    flash: Option<String>,
}

impl Session {
    fn expired(&self, now: Instant) -> bool {
        now.duration_since(self.last_seen) > IDLE_EXPIRY
            || now.duration_since(self.created) > ABSOLUTE_EXPIRY
    }
}

/// What a request learns about its session.
#[derive(Debug, Clone)]
struct SessionInfo {
    csrf: String,
    must_change: bool,
}

/// The login sessions, by id.
#[derive(Debug, Default)]
pub(crate) struct Sessions(Mutex<HashMap<String, Session>>);

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new session; returns its id.
    fn create(&self, must_change: bool) -> String {
        let now = Instant::now();
        let id = random_token();
        let mut map = self.lock();
        map.retain(|_, s| !s.expired(now));
        if map.len() >= MAX_SESSIONS {
            if let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        map.insert(
            id.clone(),
            Session {
                csrf: random_token(),
                created: now,
                last_seen: now,
                must_change,
                flash: None,
            },
        );
        id
    }

    /// The live session `id`, marked as used now; an expired one is
    /// removed.
    fn touch(&self, id: &str, now: Instant) -> Option<SessionInfo> {
        let mut map = self.lock();
        let session = map.get_mut(id)?;
        if session.expired(now) {
            map.remove(id);
            return None;
        }
        session.last_seen = now;
        Some(SessionInfo {
            csrf: session.csrf.clone(),
            must_change: session.must_change,
        })
    }

    fn remove(&self, id: &str) {
        self.lock().remove(id);
    }

    /// Ends every session.
    fn clear(&self) {
        self.lock().clear();
    }

    fn set_flash(&self, id: &str, text: String) {
        if let Some(s) = self.lock().get_mut(id) {
            s.flash = Some(text);
        }
    }

    fn take_flash(&self, id: &str) -> Option<String> {
        self.lock().get_mut(id).and_then(|s| s.flash.take())
    }

    /// Moves a session's age back, for expiry tests.
    #[cfg(test)]
    pub(crate) fn age(&self, id: &str, idle: Duration, total: Duration) {
        if let Some(s) = self.lock().get_mut(id) {
            if let (Some(seen), Some(created)) =
                (s.last_seen.checked_sub(idle), s.created.checked_sub(total))
            {
                s.last_seen = seen;
                s.created = created;
            }
        }
    }
}

/// Failed logins of one address.
#[derive(Debug)]
struct Failures {
    count: u32,
    first: Instant,
    locked_until: Option<Instant>,
}

/// Failed logins by client address.
#[derive(Debug, Default)]
pub(crate) struct Throttle(Mutex<HashMap<IpAddr, Failures>>);

impl Throttle {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Failures>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How long `ip` stays locked out, if it is.
    fn locked(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let mut map = self.lock();
        let f = map.get(&ip)?;
        match f.locked_until {
            Some(until) if until > now => Some(until - now),
            Some(_) => {
                // The lockout is over: a fresh start.
                map.remove(&ip);
                None
            }
            None => None,
        }
    }

    /// Counts a failure; returns the lockout it caused, if any.
    fn fail(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let mut map = self.lock();
        if map.len() >= MAX_TRACKED {
            map.retain(|_, f| {
                now.duration_since(f.first) < FAILURE_WINDOW
                    || f.locked_until.is_some_and(|u| u > now)
            });
        }
        let f = map.entry(ip).or_insert(Failures {
            count: 0,
            first: now,
            locked_until: None,
        });
        if now.duration_since(f.first) > FAILURE_WINDOW {
            *f = Failures {
                count: 0,
                first: now,
                locked_until: None,
            };
        }
        f.count += 1;
        if f.count >= MAX_FAILURES {
            f.locked_until = Some(now + LOCKOUT);
            return Some(LOCKOUT);
        }
        None
    }

    fn succeed(&self, ip: IpAddr) {
        self.lock().remove(&ip);
    }
}

/// The client's address, from the connection (unspecified when the
/// server was not started with connect info).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        match parts.extensions.get::<ConnectInfo<SocketAddr>>() {
            Some(c) => Ok(ClientIp(c.0.ip())),
            None => {
                static WARNED: std::sync::Once = std::sync::Once::new();
                WARNED.call_once(|| {
                    tracing::warn!(
                        "the admin listener passes no client addresses \
                         (into_make_service_with_connect_info): failed logins \
                         are counted for all clients together"
                    )
                });
                Ok(ClientIp(IpAddr::V4(Ipv4Addr::UNSPECIFIED)))
            }
        }
    }
}

/// The logged-in administrator, as the session layer hands it to
/// handlers (`Extension<Auth>`).
#[derive(Debug, Clone)]
pub struct Auth {
    session: String,
    /// The session's CSRF token.
    pub csrf: String,
    /// Where the request came from.
    pub ip: IpAddr,
    /// Who is logged in.
    pub user: &'static str,
}

impl Auth {
    /// The frame of a page: title, highlighted nav entry, the CSRF token
    /// and any pending notice.
    pub fn layout(&self, api: &Api, title: &str, active: &'static str) -> Layout {
        Layout {
            title: title.to_owned(),
            active,
            csrf: self.csrf.clone(),
            nav: NAV,
            flash: api.ui.sessions.take_flash(&self.session),
            version: env!("CARGO_PKG_VERSION"),
        }
    }

    /// A notice for the next page this session sees.
    pub fn flash(&self, api: &Api, text: impl Into<String>) {
        api.ui.sessions.set_flash(&self.session, text.into());
    }

    /// Records a change in the audit log; a failure to do so is logged.
    pub async fn audit(&self, api: &Arc<Api>, action: &'static str, detail: impl Into<String>) {
        let (user, ip, detail) = (self.user, self.ip.to_string(), detail.into());
        tracing::info!(user, %ip, action, detail = %detail, "admin change");
        if let Err(e) = api
            .with_store(move |s| s.audit(user, &ip, action, &detail).map(drop))
            .await
        {
            tracing::warn!("audit record lost: {e:?}");
        }
    }
}

/// Records an event with no session yet (logins).
async fn audit_anonymous(api: &Arc<Api>, ip: IpAddr, action: &'static str, detail: String) {
    let ip = ip.to_string();
    if let Err(e) = api
        .with_store(move |s| s.audit(ADMIN_USER, &ip, action, &detail).map(drop))
        .await
    {
        tracing::warn!("audit record lost: {e:?}");
    }
}

/// The value of cookie `name`.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

fn set_cookie(resp: &mut Response, name: &str, value: &str, max_age: Option<u64>) {
    let mut c = format!("{name}={value}; Secure; HttpOnly; SameSite=Strict; Path=/");
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    if let Ok(v) = HeaderValue::from_str(&c) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

fn to_login() -> Response {
    let mut resp = Redirect::to("/login").into_response();
    set_cookie(&mut resp, SESSION_COOKIE, "", Some(0));
    resp
}

fn csrf_refused() -> Response {
    message(
        StatusCode::FORBIDDEN,
        "Form refused",
        "This form was not sent from a page of this session, or the page is out of date \
         (for example after a new login). Nothing was changed. Go back, reload the page \
         and try again.",
        "/dashboard",
    )
}

/// The `csrf` field of a url-encoded or multipart form body.
async fn form_csrf(content_type: Option<&HeaderValue>, body: &axum::body::Bytes) -> Option<String> {
    let content_type = content_type?.clone();
    let rebuild = || {
        let mut req = Request::new(Body::from(body.clone()));
        // A GET form would be read from the query string.
        *req.method_mut() = Method::POST;
        req.headers_mut()
            .insert(header::CONTENT_TYPE, content_type.clone());
        req
    };
    let ct = content_type.to_str().ok()?.to_ascii_lowercase();
    if ct.starts_with("application/x-www-form-urlencoded") {
        let Form(fields) = Form::<Vec<(String, String)>>::from_request(rebuild(), &())
            .await
            .ok()?;
        return fields
            .into_iter()
            .find(|(k, _)| k == "csrf")
            .map(|(_, v)| v);
    }
    if ct.starts_with("multipart/form-data") {
        let mut parts = axum::extract::Multipart::from_request(rebuild(), &())
            .await
            .ok()?;
        while let Ok(Some(field)) = parts.next_field().await {
            if field.name() == Some("csrf") {
                return field.text().await.ok();
            }
        }
    }
    None
}

/// Paths a session that must change its password may still use.
fn allowed_before_change(path: &str) -> bool {
    path == "/password" || path == "/logout"
}

/// The session layer: no session → the login page; a POST without the
/// session's CSRF token → 403; a pending password change or first-run
/// wizard → there first. Hands [`Auth`] to the handler.
pub(crate) async fn require_session(
    State(api): State<Arc<Api>>,
    ClientIp(ip): ClientIp,
    req: Request,
    next: Next,
) -> Response {
    let Some(id) = cookie(req.headers(), SESSION_COOKIE) else {
        return to_login();
    };
    let Some(info) = api.ui.sessions.touch(&id, Instant::now()) else {
        return to_login();
    };
    let mut req = req;
    if req.method() == Method::POST {
        let (parts, body) = req.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM).await else {
            return message(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Form too large",
                "The form sent more data than accepted (512 KiB).",
                "/dashboard",
            );
        };
        let token = form_csrf(parts.headers.get(header::CONTENT_TYPE), &bytes).await;
        if !token.is_some_and(|t| ct_eq(&t, &info.csrf)) {
            return csrf_refused();
        }
        req = Request::from_parts(parts, Body::from(bytes));
    }
    let path = req.uri().path().to_owned();
    if info.must_change && !allowed_before_change(&path) {
        return Redirect::to("/password").into_response();
    }
    if !allowed_before_change(&path) && !path.starts_with("/wizard") && !api.wizard_done().await {
        return Redirect::to("/wizard").into_response();
    }
    req.extensions_mut().insert(Auth {
        session: id,
        csrf: info.csrf,
        ip,
        user: ADMIN_USER,
    });
    next.run(req).await
}

#[derive(Template)]
#[template(path = "login.html", config = "../../web-ui/templates/askama.toml")]
struct LoginPage {
    csrf: String,
    username: String,
    error: Option<String>,
}

fn login_form(status: StatusCode, username: &str, error: Option<String>) -> Response {
    let token = random_token();
    let mut resp = page_with(
        status,
        &LoginPage {
            csrf: token.clone(),
            username: username.to_owned(),
            error,
        },
    );
    set_cookie(&mut resp, LOGIN_COOKIE, &token, Some(3600));
    resp
}

pub(crate) async fn login_page(State(api): State<Arc<Api>>, headers: HeaderMap) -> Response {
    let live = cookie(&headers, SESSION_COOKIE)
        .and_then(|id| api.ui.sessions.touch(&id, Instant::now()))
        .is_some();
    if live {
        return Redirect::to("/dashboard").into_response();
    }
    login_form(StatusCode::OK, ADMIN_USER, None)
}

#[derive(Debug, Deserialize)]
pub(crate) struct LoginForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

fn locked_out(left: Duration) -> Response {
    let minutes = left.as_secs().div_ceil(60).max(1);
    let mut resp = message(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many failed logins",
        &format!(
            "Logins from your address are locked for {minutes} more minute(s) after \
             {MAX_FAILURES} failed attempts. Try again later."
        ),
        "/login",
    );
    if let Ok(v) = HeaderValue::from_str(&left.as_secs().max(1).to_string()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

pub(crate) async fn login(
    State(api): State<Arc<Api>>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !ct_eq(&form.csrf, &expected) {
        return message(
            StatusCode::FORBIDDEN,
            "Login form expired",
            "The login form was not sent from this browser's login page, or it expired. \
             Open the login page again.",
            "/login",
        );
    }
    if let Some(left) = api.ui.throttle.locked(ip, Instant::now()) {
        return locked_out(left);
    }
    let stored = match api
        .with_store(|s| Ok((s.get_setting(HASH_KEY)?, s.get_setting(MUST_CHANGE_KEY)?)))
        .await
    {
        Ok(v) => v,
        Err(e) => {
            tracing::error!("login: {e:?}");
            return super::internal_error("The database could not be read.");
        }
    };
    let (Some(hash), must_change) = stored else {
        return message(
            StatusCode::SERVICE_UNAVAILABLE,
            "No administrator password",
            "No administrator password is set yet. Restart callgate: it creates one and \
             prints it once.",
            "/login",
        );
    };
    let known = form.username == ADMIN_USER;
    let password = form.password;
    let ok = tokio::task::spawn_blocking(move || {
        // Unknown names cost the same as known ones.
        let phc = if known { hash.as_str() } else { dummy_hash() };
        verify_password(phc, &password) && known
    })
    .await
    .unwrap_or(false);
    if !ok {
        if let Some(lock) = api.ui.throttle.fail(ip, Instant::now()) {
            audit_anonymous(
                &api,
                ip,
                "login.lockout",
                format!("{MAX_FAILURES} failed logins; locked out"),
            )
            .await;
            return locked_out(lock);
        }
        return login_form(
            StatusCode::UNAUTHORIZED,
            &form.username,
            Some("Wrong user name or password.".into()),
        );
    }
    api.ui.throttle.succeed(ip);
    let must_change = must_change.as_deref() == Some("1");
    let id = api.ui.sessions.create(must_change);
    audit_anonymous(&api, ip, "login", "logged in".into()).await;
    let target = if must_change {
        "/password"
    } else {
        "/dashboard"
    };
    let mut resp = Redirect::to(target).into_response();
    set_cookie(&mut resp, SESSION_COOKIE, &id, None);
    set_cookie(&mut resp, LOGIN_COOKIE, "", Some(0));
    resp
}

pub(crate) async fn logout(
    State(api): State<Arc<Api>>,
    Extension(auth): Extension<Auth>,
) -> Response {
    auth.audit(&api, "logout", "logged out").await;
    api.ui.sessions.remove(&auth.session);
    to_login()
}

#[derive(Template)]
#[template(path = "password.html", config = "../../web-ui/templates/askama.toml")]
struct PasswordPage {
    csrf: String,
    forced: bool,
    errors: FieldErrors,
    min: usize,
}

async fn must_change(api: &Arc<Api>) -> bool {
    api.with_store(|s| s.get_setting(MUST_CHANGE_KEY))
        .await
        .ok()
        .flatten()
        .is_some_and(|v| v == "1")
}

pub(crate) async fn password_page(
    State(api): State<Arc<Api>>,
    Extension(auth): Extension<Auth>,
) -> Response {
    page(&PasswordPage {
        csrf: auth.csrf,
        forced: must_change(&api).await,
        errors: FieldErrors::default(),
        min: MIN_ADMIN_PASSWORD,
    })
}

#[derive(Debug, Deserialize)]
pub(crate) struct PasswordForm {
    #[serde(default)]
    current: String,
    #[serde(default)]
    new: String,
    #[serde(default)]
    confirm: String,
}

pub(crate) async fn change_password(
    State(api): State<Arc<Api>>,
    Extension(auth): Extension<Auth>,
    Form(form): Form<PasswordForm>,
) -> Response {
    let mut errors = FieldErrors::default();
    if form.new.chars().count() < MIN_ADMIN_PASSWORD {
        errors.add(
            "new",
            format!("Use at least {MIN_ADMIN_PASSWORD} characters."),
        );
    } else if form.new != form.confirm {
        errors.add("confirm", "The two new passwords differ.");
    } else if form.new == form.current {
        errors.add("new", "Choose a password other than the current one.");
    }
    let hash = match api.with_store(|s| s.get_setting(HASH_KEY)).await {
        Ok(h) => h.unwrap_or_default(),
        Err(e) => {
            tracing::error!("password change: {e:?}");
            return super::internal_error("The database could not be read.");
        }
    };
    let current = form.current.clone();
    let current_ok = tokio::task::spawn_blocking(move || verify_password(&hash, &current))
        .await
        .unwrap_or(false);
    if !current_ok {
        errors.add("current", "This is not the current password.");
    }
    if !errors.is_empty() {
        return page_with(
            StatusCode::UNPROCESSABLE_ENTITY,
            &PasswordPage {
                csrf: auth.csrf,
                forced: must_change(&api).await,
                errors,
                min: MIN_ADMIN_PASSWORD,
            },
        );
    }
    let new = form.new;
    let stored = api
        .with_store(move |s| {
            let hash = hash_password(&new).map_err(|e| store::Error::Invalid {
                field: "new",
                reason: e.to_string(),
            })?;
            s.set_settings([(HASH_KEY, hash.as_str()), (MUST_CHANGE_KEY, "0")])
        })
        .await;
    if let Err(e) = stored {
        tracing::error!("password change: {e:?}");
        return super::internal_error("The new password could not be saved.");
    }
    // Every other session ends; this one continues under a new id.
    api.ui.sessions.clear();
    let id = api.ui.sessions.create(false);
    let auth = Auth {
        session: id.clone(),
        ..auth
    };
    auth.audit(&api, "admin.password", "administrator password changed")
        .await;
    auth.flash(&api, "Password changed.");
    let target = if api.wizard_done().await {
        "/dashboard"
    } else {
        "/wizard"
    };
    let mut resp = Redirect::to(target).into_response();
    set_cookie(&mut resp, SESSION_COOKIE, &id, None);
    resp
}
