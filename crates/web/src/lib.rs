//! The JSON API under `/api/v1`, shaped for the admin UI: users, trunks,
//! DIDs and CDRs (backed by the store, so the CLI and the API see the same
//! data) and live registrations, calls and trunk states (asked of the
//! signalling core over a channel). Every route needs
//! `Authorization: Bearer <token>`.
//!
//! Errors are JSON: `{"error": "...", "field": "..." | null}`.

mod cdrs;
pub mod certs;
pub mod health;
pub mod metrics;
pub mod openapi;
pub mod phone;
mod time;
pub mod trace;
mod trunks;
pub mod ui;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

pub use cdrs::{CdrView, MediaView};
pub use time::parse_time;
pub use trunks::{DidView, NewDidBody, TrunkDef, TrunkPatch, TrunkStateView, TrunkView};

/// A registration as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RegistrationView {
    pub aor: String,
    pub contact: String,
    pub transport: String,
    pub source: String,
    pub user_agent: String,
    pub expires_in: u64,
    /// Whether the flow it registered on is connected.
    pub reachable: bool,
}

/// A call as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct CallView {
    pub call_id: String,
    pub from: String,
    pub to: String,
    pub source: String,
    pub transport: String,
    pub state: String,
    pub started_unix: u64,
    pub answered_unix: Option<u64>,
    /// "inbound" (trunk to user), "outbound" (user to trunk) or "internal".
    pub direction: String,
    pub trunk: Option<String>,
    pub caller_user: Option<String>,
    pub callee_user: Option<String>,
    /// Relay counters of the caller's and the callee's leg.
    pub media: Option<[LegView; 2]>,
}

/// Media counters of one party's leg.
#[derive(Debug, Clone, Serialize)]
pub struct LegView {
    /// Packets received from that party.
    pub rx_packets: u64,
    /// Packets sent to that party.
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// As the party reported in RTCP.
    pub lost_packets: u64,
    pub jitter_ms: f64,
}

/// The live state of one trunk, as the signalling core reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrunkStatusView {
    /// The trunk's name in the store.
    pub name: String,
    /// "disabled", "registering", "registered" or "failed".
    pub state: String,
    /// Why it failed (e.g. the provider's status line), or other notes.
    pub detail: Option<String>,
    /// Seconds until the registration lapses, when registered.
    pub expires_in: Option<u64>,
    pub active_calls: u32,
}

/// Questions for the signalling core.
#[derive(Debug)]
pub enum CoreQuery {
    Registrations(oneshot::Sender<Vec<RegistrationView>>),
    Calls(oneshot::Sender<Vec<CallView>>),
    /// The state of every trunk the core knows.
    TrunkStatus(oneshot::Sender<Vec<TrunkStatusView>>),
    /// Health and counters for the admin dashboard.
    Dashboard(oneshot::Sender<ui::DashboardView>),
    /// Removes the bindings of `aor` (`sip:user@domain`): the one with
    /// this `contact`, or all when `None`; replies with how many went.
    Unregister {
        aor: String,
        contact: Option<String>,
        reply: oneshot::Sender<usize>,
    },
    /// Ends the call (BYE or CANCEL both ways); false if there is no such
    /// call.
    Hangup {
        call_id: String,
        reply: oneshot::Sender<bool>,
    },
    /// Sends an OPTIONS to trunk `name` (its host, port and transport) and
    /// replies with the round-trip time in milliseconds when it is
    /// answered 200 OK, else with why not, as the admin UI shows it (e.g.
    /// "no such trunk", "answered 403 Forbidden in 15 ms", "timed out").
    /// The UI waits 5 s.
    TrunkPing {
        name: String,
        reply: oneshot::Sender<Result<u64, String>>,
    },
    /// The running configuration for the admin UI's settings page.
    Settings(oneshot::Sender<ui::SettingsView>),
}

/// How long the trunk routes wait for the core's trunk states before
/// answering without them.
const TRUNK_STATUS_WAIT: Duration = Duration::from_millis(500);

/// Shared state of the API.
pub struct Api {
    pub db_path: PathBuf,
    pub realm: String,
    pub token: String,
    pub core: mpsc::Sender<CoreQuery>,
    /// The SIP trace the signalling task records into.
    pub trace: Arc<trace::SipTrace>,
    /// Admin UI state: login sessions, chart samples, admin events.
    pub ui: ui::UiState,
    store: Mutex<Option<store::Store>>,
    /// Set by [`Api::with_certs`]; `/api/v1/certificate` needs it.
    certs: std::sync::OnceLock<certs::CertContext>,
    /// Set by [`Api::with_phone`]; what `/phone` tells the page.
    phone: std::sync::OnceLock<phone::PhoneConfig>,
}

impl Api {
    pub fn new(
        db_path: PathBuf,
        realm: String,
        token: String,
        core: mpsc::Sender<CoreQuery>,
    ) -> Arc<Api> {
        Arc::new(Api {
            ui: ui::UiState::new(&db_path, ui::UiOptions::default()),
            db_path,
            realm,
            token,
            core,
            trace: Arc::new(trace::SipTrace::default()),
            store: Mutex::new(None),
            certs: Default::default(),
            phone: Default::default(),
        })
    }

    /// Runs `f` on the store off the async threads, opening it lazily.
    async fn with_store<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&store::Store) -> store::Result<T> + Send + 'static,
    ) -> Result<T, ApiError> {
        self.with_store_as(f, ApiError::from).await
    }

    /// [`Api::with_store`] with the store's errors mapped by `map`.
    async fn with_store_as<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&store::Store) -> store::Result<T> + Send + 'static,
        map: impl FnOnce(store::Error) -> ApiError,
    ) -> Result<T, ApiError> {
        let api = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = api.store.lock().unwrap_or_else(|e| e.into_inner());
            if guard.is_none() {
                *guard = Some(store::Store::open(&api.db_path)?);
            }
            f(guard.as_ref().expect("opened above"))
        })
        .await
        .map_err(|_| ApiError::internal("store task failed"))?
        .map_err(map)
    }

    /// The trunk states by name, or `None` when the core does not answer
    /// within [`TRUNK_STATUS_WAIT`].
    async fn trunk_status(&self) -> Option<HashMap<String, TrunkStatusView>> {
        let ask = async {
            let (tx, rx) = oneshot::channel();
            self.core.send(CoreQuery::TrunkStatus(tx)).await.ok()?;
            rx.await.ok()
        };
        let states = tokio::time::timeout(TRUNK_STATUS_WAIT, ask)
            .await
            .ok()
            .flatten()?;
        Some(states.into_iter().map(|s| (s.name.clone(), s)).collect())
    }
}

/// An error answer: `{"error": "...", "field": "..."}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    field: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            field: None,
        }
    }
    fn internal(m: &str) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, m)
    }
    fn field(field: &str, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            message: message.into(),
            field: Some(field.to_owned()),
        }
    }
    /// A 400 naming the offending field or parameter.
    fn bad_request(field: &str, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            field: Some(field.to_owned()),
        }
    }
}

/// A JSON request body as `T`; a malformed one is a 400 naming the key
/// where that can be told.
fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(json_error)?;
    de.end()
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")))?;
    Ok(value)
}

fn json_error(e: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let message = e.inner().to_string();
    let path = e.path().to_string();
    // An unknown, missing or repeated key is reported on the object
    // holding it.
    let named = ["unknown field `", "missing field `", "duplicate field `"]
        .iter()
        .find_map(|p| message.strip_prefix(p))
        .and_then(|rest| rest.split('`').next())
        .map(|key| match path.as_str() {
            "." => key.to_owned(),
            p if p == key || p.ends_with(&format!(".{key}")) => p.to_owned(),
            parent => format!("{parent}.{key}"),
        });
    let field = named.or((path != ".").then_some(path));
    let message = format!("invalid JSON body: {message}");
    match field {
        Some(f) => ApiError::bad_request(&f, message),
        None => ApiError::new(StatusCode::BAD_REQUEST, message),
    }
}

impl From<store::Error> for ApiError {
    fn from(e: store::Error) -> Self {
        match &e {
            store::Error::UserExists(_)
            | store::Error::ExtensionInUse { .. }
            | store::Error::TrunkExists(..)
            | store::Error::DidExists(..)
            | store::Error::TrunkInUse { .. } => Self::new(StatusCode::CONFLICT, e.to_string()),
            store::Error::UserNotFound(_)
            | store::Error::TrunkNotFound(..)
            | store::Error::DidNotFound(..) => Self::new(StatusCode::NOT_FOUND, e.to_string()),
            store::Error::Invalid { field, .. } => Self::field(field, e.to_string()),
            _ => Self::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message, "field": self.field });
        (self.status, Json(body)).into_response()
    }
}

/// A user as the API shows it (never the HA1).
#[derive(Debug, Serialize)]
pub struct UserView {
    pub name: String,
    pub extension: Option<String>,
    pub display_name: Option<String>,
    pub enabled: bool,
    pub caller_id: Option<String>,
    pub max_calls: Option<u32>,
    /// "local", "national" or "international".
    pub allowed: String,
}

impl From<store::User> for UserView {
    fn from(u: store::User) -> Self {
        UserView {
            name: u.username,
            extension: u.extension,
            display_name: u.display_name,
            enabled: u.enabled,
            caller_id: u.caller_id,
            max_calls: u.max_calls,
            allowed: u.allowed.as_str().to_owned(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUserBody {
    pub name: String,
    pub password: String,
    pub extension: Option<String>,
    pub display_name: Option<String>,
    pub caller_id: Option<String>,
    pub max_calls: Option<u32>,
    pub allowed: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserBody {
    pub password: Option<String>,
    pub extension: Option<Option<String>>,
    pub display_name: Option<Option<String>>,
    pub enabled: Option<bool>,
    pub caller_id: Option<Option<String>>,
    pub max_calls: Option<Option<u32>>,
    pub allowed: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    pub q: Option<String>,
    #[serde(default)]
    pub offset: u32,
    pub limit: Option<u32>,
}

const MIN_PASSWORD: usize = 8;

pub(crate) fn check_token(api: &Api, headers: &HeaderMap) -> Result<(), ApiError> {
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    use subtle::ConstantTimeEq;
    if given.len() == api.token.len() && bool::from(given.as_bytes().ct_eq(api.token.as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing or wrong API token",
        ))
    }
}

async fn list_users(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    check_token(&api, &headers)?;
    let limit = q.limit.unwrap_or(50).min(500);
    let offset = q.offset;
    let filter = q.q.clone();
    let (users, total) = api
        .with_store(move |s| {
            let users = s.list_users(filter.as_deref(), offset, limit)?;
            let total = s.count_users(filter.as_deref())?;
            Ok((users, total))
        })
        .await?;
    let users: Vec<UserView> = users.into_iter().map(UserView::from).collect();
    Ok(Json(
        serde_json::json!({ "users": users, "total": total, "offset": offset, "limit": limit }),
    ))
}

async fn create_user(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    Json(body): Json<NewUserBody>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    check_token(&api, &headers)?;
    if body.password.len() < MIN_PASSWORD {
        return Err(ApiError::field("password", "must be at least 8 characters"));
    }
    let allowed = parse_scope(body.allowed.as_deref())?;
    let realm = api.realm.clone();
    let user = api
        .with_store(move |s| {
            let ha1 = sip::digest::StoredHa1::from_password(&body.name, &realm, &body.password);
            let mut u =
                store::NewUser::new(&body.name, &realm, ha1.md5.as_str(), ha1.sha256.as_str());
            u.extension = body.extension;
            u.display_name = body.display_name;
            u.caller_id = body.caller_id;
            u.max_calls = body.max_calls;
            if let Some(a) = allowed {
                u.allowed = a;
            }
            s.add_user(&u)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(user.into())))
}

async fn get_user(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<UserView>, ApiError> {
    check_token(&api, &headers)?;
    let n = name.clone();
    match api.with_store(move |s| s.get_user_by_name(&n)).await? {
        Some(u) => Ok(Json(u.into())),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no user {name}"),
        )),
    }
}

async fn update_user(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Json(body): Json<UpdateUserBody>,
) -> Result<Json<UserView>, ApiError> {
    check_token(&api, &headers)?;
    if body
        .password
        .as_ref()
        .is_some_and(|p| p.len() < MIN_PASSWORD)
    {
        return Err(ApiError::field("password", "must be at least 8 characters"));
    }
    let allowed = parse_scope(body.allowed.as_deref())?;
    let realm = api.realm.clone();
    let user = api
        .with_store(move |s| {
            if let Some(pw) = &body.password {
                let ha1 = sip::digest::StoredHa1::from_password(&name, &realm, pw);
                s.set_password(&name, &ha1.md5, &ha1.sha256, &realm)?;
            }
            s.update_user(
                &name,
                &store::UserUpdate {
                    extension: body.extension,
                    display_name: body.display_name,
                    enabled: body.enabled,
                    caller_id: body.caller_id,
                    max_calls: body.max_calls,
                    allowed,
                },
            )
        })
        .await?;
    Ok(Json(user.into()))
}

/// `allowed` as given in a request body.
fn parse_scope(v: Option<&str>) -> Result<Option<store::DestinationScope>, ApiError> {
    v.map(|v| {
        v.parse().map_err(|_| {
            ApiError::field(
                "allowed",
                "must be \"local\", \"national\" or \"international\"",
            )
        })
    })
    .transpose()
}

/// `POST /api/v1/calls/{call_id}/hangup`: ends a call (BYE, or CANCEL and
/// 487 while it rings).
async fn hangup_call(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    Path(call_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    check_token(&api, &headers)?;
    let (reply, rx) = oneshot::channel();
    api.core
        .send(CoreQuery::Hangup { call_id, reply })
        .await
        .map_err(|_| ApiError::internal("signalling core unavailable"))?;
    match rx.await {
        Ok(true) => Ok(StatusCode::NO_CONTENT),
        Ok(false) => Err(ApiError::new(StatusCode::NOT_FOUND, "no such call")),
        Err(_) => Err(ApiError::internal("signalling core unavailable")),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnregisterQuery {
    pub user: String,
    pub contact: Option<String>,
}

/// `DELETE /api/v1/registrations?user=&contact=`: forced unregister of one
/// contact, or every contact of the user.
async fn unregister(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    Query(q): Query<UnregisterQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    check_token(&api, &headers)?;
    let aor = format!("sip:{}@{}", q.user, api.realm);
    let (reply, rx) = oneshot::channel();
    api.core
        .send(CoreQuery::Unregister {
            aor,
            contact: q.contact.filter(|c| !c.is_empty()),
            reply,
        })
        .await
        .map_err(|_| ApiError::internal("signalling core unavailable"))?;
    let removed = rx
        .await
        .map_err(|_| ApiError::internal("signalling core unavailable"))?;
    Ok(Json(serde_json::json!({ "removed": removed })))
}

async fn delete_user(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    check_token(&api, &headers)?;
    let aor = format!("sip:{name}@{}", api.realm);
    api.with_store(move |s| {
        s.remove_user(&name)?;
        s.remove_all_bindings(&aor)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn registrations(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    check_token(&api, &headers)?;
    let (tx, rx) = oneshot::channel();
    api.core
        .send(CoreQuery::Registrations(tx))
        .await
        .map_err(|_| ApiError::internal("signalling core unavailable"))?;
    let regs = rx
        .await
        .map_err(|_| ApiError::internal("signalling core unavailable"))?;
    Ok(Json(serde_json::json!({ "registrations": regs })))
}

async fn calls(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    check_token(&api, &headers)?;
    let (tx, rx) = oneshot::channel();
    api.core
        .send(CoreQuery::Calls(tx))
        .await
        .map_err(|_| ApiError::internal("signalling core unavailable"))?;
    let calls = rx
        .await
        .map_err(|_| ApiError::internal("signalling core unavailable"))?;
    Ok(Json(serde_json::json!({ "calls": calls })))
}

/// The `/api/v1` router.
pub fn router(api: Arc<Api>) -> Router {
    Router::new()
        .route("/api/v1/users", get(list_users).post(create_user))
        .route(
            "/api/v1/users/{name}",
            get(get_user).patch(update_user).delete(delete_user),
        )
        .route(
            "/api/v1/registrations",
            get(registrations).delete(unregister),
        )
        .route("/api/v1/calls", get(calls))
        .route(
            "/api/v1/calls/{call_id}/hangup",
            axum::routing::post(hangup_call),
        )
        .route(
            "/api/v1/trunks",
            get(trunks::list_trunks).post(trunks::create_trunk),
        )
        .route(
            "/api/v1/trunks/{name}",
            get(trunks::get_trunk)
                .put(trunks::update_trunk)
                .delete(trunks::delete_trunk),
        )
        .route(
            "/api/v1/dids",
            get(trunks::list_dids).post(trunks::create_did),
        )
        .route(
            "/api/v1/dids/{number}",
            axum::routing::delete(trunks::delete_did),
        )
        .route("/api/v1/cdrs", get(cdrs::list_cdrs))
        .route("/api/v1/cdrs.csv", get(cdrs::cdrs_csv))
        .route("/api/v1/trace", get(trace::get_trace).put(trace::put_trace))
        .route("/healthz", get(|| async { "ok\n" }))
        .merge(openapi::routes())
        .merge(ui::router(&api))
        .merge(certs::routes())
        .merge(phone::router(phone::config_for(&api)))
        .with_state(api)
}

/// Serves the router over HTTPS until the future is dropped.
pub async fn serve(
    addr: std::net::SocketAddr,
    tls: Arc<rustls::ServerConfig>,
    api: Arc<Api>,
) -> std::io::Result<()> {
    let mut cfg = (*tls).clone();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let config = axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(cfg));
    axum_server::bind_rustls(addr, config)
        .serve(router(api).into_make_service_with_connect_info::<std::net::SocketAddr>())
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    fn api(dir: &std::path::Path) -> Arc<Api> {
        let (tx, mut rx) = mpsc::channel(4);
        tokio::spawn(async move {
            while let Some(q) = rx.recv().await {
                match q {
                    CoreQuery::Registrations(r) => {
                        let _ = r.send(Vec::new());
                    }
                    CoreQuery::Calls(r) => {
                        let _ = r.send(Vec::new());
                    }
                    CoreQuery::TrunkStatus(r) => {
                        let _ = r.send(vec![TrunkStatusView {
                            name: "carrier".into(),
                            state: "registered".into(),
                            detail: None,
                            expires_in: Some(300),
                            active_calls: 1,
                        }]);
                    }
                    CoreQuery::Dashboard(r) => {
                        let _ = r.send(ui::DashboardView::default());
                    }
                    CoreQuery::Unregister { reply, .. } => {
                        let _ = reply.send(0);
                    }
                    CoreQuery::Hangup { reply, .. } => {
                        let _ = reply.send(false);
                    }
                    CoreQuery::TrunkPing { reply, .. } => {
                        let _ = reply.send(Ok(12));
                    }
                    CoreQuery::Settings(r) => {
                        let _ = r.send(ui::SettingsView::default());
                    }
                }
            }
        });
        Api::new(
            dir.join("db.sqlite"),
            "example.com".into(),
            "tok".into(),
            tx,
        )
    }

    async fn call(
        app: &Router,
        method: &str,
        uri: &str,
        token: &str,
        body: &str,
    ) -> (StatusCode, serde_json::Value) {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned()))
            .unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        (status, json)
    }

    #[tokio::test]
    async fn user_lifecycle_and_token() {
        let dir = std::env::temp_dir().join(format!("cg-web-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let app = router(api(&dir));
        let (s, _) = call(&app, "GET", "/api/v1/users", "wrong", "").await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        let (s, j) = call(
            &app,
            "POST",
            "/api/v1/users",
            "tok",
            r#"{"name":"alice","password":"short"}"#,
        )
        .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(j["field"], "password");
        let (s, j) = call(
            &app,
            "POST",
            "/api/v1/users",
            "tok",
            r#"{"name":"alice","password":"long-enough","extension":"2000"}"#,
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{j}");
        assert_eq!(j["extension"], "2000");
        let (s, _) = call(
            &app,
            "POST",
            "/api/v1/users",
            "tok",
            r#"{"name":"alice","password":"long-enough"}"#,
        )
        .await;
        assert_eq!(s, StatusCode::CONFLICT);
        let (s, j) = call(&app, "GET", "/api/v1/users?q=ali", "tok", "").await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(j["total"], 1);
        assert!(j.to_string().find("ha1").is_none(), "never exposes HA1");
        let (s, j) = call(
            &app,
            "PATCH",
            "/api/v1/users/alice",
            "tok",
            r#"{"enabled":false}"#,
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(j["enabled"], false);
        let (s, _) = call(&app, "DELETE", "/api/v1/users/alice", "tok", "").await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        let (s, _) = call(&app, "GET", "/api/v1/users/alice", "tok", "").await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (s, j) = call(&app, "GET", "/api/v1/calls", "tok", "").await;
        assert_eq!(s, StatusCode::OK);
        assert!(j["calls"].is_array());
        let _ = std::fs::remove_dir_all(&dir);
    }

    async fn raw(app: &Router, uri: &str) -> (StatusCode, HeaderMap, String) {
        let req = Request::builder()
            .uri(uri)
            .header("authorization", "Bearer tok")
            .body(Body::empty())
            .unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        let (parts, body) = resp.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        (
            parts.status,
            parts.headers,
            String::from_utf8_lossy(&bytes).into_owned(),
        )
    }

    #[tokio::test]
    async fn trunk_lifecycle() {
        let dir = tempfile::tempdir().unwrap();
        let app = router(api(dir.path()));
        let (s, _) = call(&app, "GET", "/api/v1/trunks", "wrong", "").await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);

        let body = r#"{"name":"carrier","host":"sip.example.net","username":"acct",
            "password":"trunk-secret","register":true,"number_rules":["00>+"],
            "inbound_trust":["2001:DB8::/32"]}"#;
        let (s, j) = call(&app, "POST", "/api/v1/trunks", "tok", body).await;
        assert_eq!(s, StatusCode::CREATED, "{j}");
        assert_eq!(j["has_password"], true);
        assert_eq!(j["port"], 5060);
        assert_eq!(j["transport"], "udp");
        assert_eq!(j["inbound_trust"][0], "2001:db8::/32");
        assert_eq!(j["number_rules"][0], "00>+");
        assert!(j["from_domain"].is_null());
        assert!(!j.to_string().contains("trunk-secret"), "{j}");
        let (s, _) = call(&app, "POST", "/api/v1/trunks", "tok", body).await;
        assert_eq!(s, StatusCode::CONFLICT);

        // Bad values and bodies are 400s naming the key.
        for (bad, field) in [
            (
                r#"{"name":"t2","host":"h","transport":"sctp"}"#,
                "transport",
            ),
            (r#"{"name":"t2","host":"h","transport":"wss"}"#, "transport"),
            (r#"{"name":"t2","host":"h","port":"x"}"#, "port"),
            (r#"{"name":"t2","host":"h","register":true}"#, "username"),
            (
                r#"{"name":"t2","host":"h","username":"a","expiry":1}"#,
                "expiry",
            ),
            (r#"{"name":"t2","host":"h","port":1,"port":2}"#, "port"),
            (r#"{"name":"t2","host":"h","passwrd":"x"}"#, "passwrd"),
            (r#"{"host":"h"}"#, "name"),
            (r#"{"name":"t 2","host":"h"}"#, "name"),
            (
                r#"{"name":"t2","host":"h","number_rules":["0049"]}"#,
                "number_rules",
            ),
        ] {
            let (s, j) = call(&app, "POST", "/api/v1/trunks", "tok", bad).await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {j}");
            assert_eq!(j["field"], field, "{bad}: {j}");
            assert!(j["error"].is_string(), "{j}");
        }
        let (s, j) = call(&app, "POST", "/api/v1/trunks", "tok", "{").await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{j}");

        // The list and the single trunk carry the core's state.
        let (s, j) = call(&app, "GET", "/api/v1/trunks", "tok", "").await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(j["trunks"].as_array().unwrap().len(), 1);
        assert_eq!(j["trunks"][0]["registration_state"]["state"], "registered");
        let (s, mut got) = call(&app, "GET", "/api/v1/trunks/carrier", "tok", "").await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(got["registration_state"]["active_calls"], 1);
        assert_eq!(got["registration_state"]["expires_in"], 300);

        // PUT changes what it names; a GET answer can be sent back.
        got["port"] = 5080.into();
        let (s, j) = call(
            &app,
            "PUT",
            "/api/v1/trunks/carrier",
            "tok",
            &got.to_string(),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{j}");
        assert_eq!(j["port"], 5080);
        assert_eq!(j["has_password"], true, "kept without a password key");
        assert_eq!(j["username"], "acct");
        let (s, j) = call(
            &app,
            "PUT",
            "/api/v1/trunks/carrier",
            "tok",
            r#"{"password":null,"max_calls":3}"#,
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{j}");
        assert_eq!(j["has_password"], false);
        assert_eq!(j["max_calls"], 3);
        assert_eq!(j["port"], 5080);
        let (s, j) = call(
            &app,
            "PUT",
            "/api/v1/trunks/carrier",
            "tok",
            r#"{"password":"new-secret","transport":"carrier-pigeon"}"#,
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{j}");
        assert_eq!(j["field"], "transport");
        let (s, j) = call(
            &app,
            "PUT",
            "/api/v1/trunks/carrier",
            "tok",
            r#"{"password":"new-secret"}"#,
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{j}");
        assert_eq!(j["has_password"], true);
        assert!(!j.to_string().contains("new-secret"));
        let (s, _) = call(&app, "PUT", "/api/v1/trunks/nope", "tok", "{}").await;
        assert_eq!(s, StatusCode::NOT_FOUND);

        // DIDs pin the trunk.
        call(
            &app,
            "POST",
            "/api/v1/users",
            "tok",
            r#"{"name":"alice","password":"long-enough"}"#,
        )
        .await;
        let did = r#"{"number":"+4930100","trunk":"carrier","user":"alice"}"#;
        let (s, j) = call(&app, "POST", "/api/v1/dids", "tok", did).await;
        assert_eq!(s, StatusCode::CREATED, "{j}");
        assert_eq!(j["user"], "alice");
        let (s, _) = call(&app, "POST", "/api/v1/dids", "tok", did).await;
        assert_eq!(s, StatusCode::CONFLICT);
        for (bad, field) in [
            (
                r#"{"number":"12a","trunk":"carrier","user":"alice"}"#,
                "number",
            ),
            (r#"{"number":"1","trunk":"nope","user":"alice"}"#, "trunk"),
            (
                r#"{"number":"1","trunk":"carrier","user":"nobody"}"#,
                "user",
            ),
            (r#"{"number":"1","trunk":"carrier"}"#, "user"),
        ] {
            let (s, j) = call(&app, "POST", "/api/v1/dids", "tok", bad).await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {j}");
            assert_eq!(j["field"], field, "{bad}: {j}");
        }
        let (s, j) = call(&app, "GET", "/api/v1/dids?trunk=carrier", "tok", "").await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(j["dids"][0]["number"], "+4930100");
        let (s, j) = call(&app, "DELETE", "/api/v1/trunks/carrier", "tok", "").await;
        assert_eq!(s, StatusCode::CONFLICT, "{j}");
        let (s, _) = call(&app, "DELETE", "/api/v1/dids/+4930100", "tok", "").await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        let (s, _) = call(&app, "DELETE", "/api/v1/dids/%2B4930100", "tok", "").await;
        assert_eq!(s, StatusCode::NOT_FOUND);

        // Renamed, then removed.
        let (s, j) = call(
            &app,
            "PUT",
            "/api/v1/trunks/carrier",
            "tok",
            r#"{"name":"carrier2"}"#,
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{j}");
        assert_eq!(j["name"], "carrier2");
        let (s, _) = call(&app, "DELETE", "/api/v1/trunks/carrier2", "tok", "").await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        let (s, j) = call(&app, "GET", "/api/v1/trunks/carrier2", "tok", "").await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{j}");
        assert!(j["error"].is_string());
    }

    #[tokio::test]
    async fn silent_core_leaves_the_state_out() {
        let dir = tempfile::tempdir().unwrap();
        // Queries are accepted and never answered.
        let (tx, rx) = mpsc::channel(4);
        let app = router(Api::new(
            dir.path().join("db.sqlite"),
            "example.com".into(),
            "tok".into(),
            tx,
        ));
        let (s, _) = call(
            &app,
            "POST",
            "/api/v1/trunks",
            "tok",
            r#"{"name":"carrier","host":"192.0.2.1"}"#,
        )
        .await;
        assert_eq!(s, StatusCode::CREATED);
        let (s, j) = call(&app, "GET", "/api/v1/trunks/carrier", "tok", "").await;
        assert_eq!(s, StatusCode::OK);
        assert!(j.get("registration_state").is_none(), "{j}");
        drop(rx);
        let (s, j) = call(&app, "GET", "/api/v1/trunks", "tok", "").await;
        assert_eq!(s, StatusCode::OK);
        assert!(j["trunks"][0].get("registration_state").is_none(), "{j}");
    }

    fn cdr(call_id: &str, started_at: i64, direction: store::Direction, user: &str) -> store::Cdr {
        store::Cdr {
            id: 0,
            call_id: call_id.into(),
            started_at,
            answered_at: Some(started_at + 2),
            ended_at: started_at + 62,
            caller: format!("\"{user}, the caller\" <sip:{user}@example.com>"),
            callee: "+4930555".into(),
            caller_user: Some(user.into()),
            callee_user: None,
            direction,
            disposition: store::Disposition::Answered,
            duration_secs: 60,
            trunk: Some("carrier".into()),
            caller_media: Some(store::MediaStats {
                rx_packets: 3000,
                jitter_ms: 1.5,
                ..Default::default()
            }),
            callee_media: None,
        }
    }

    #[tokio::test]
    async fn cdr_list_and_csv() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db.sqlite");
        {
            let s = store::Store::open(&db).unwrap();
            s.insert_cdr(&cdr(
                "c1",
                1_717_200_000,
                store::Direction::Outbound,
                "alice",
            ))
            .unwrap();
            s.insert_cdr(&cdr("c2", 1_717_200_100, store::Direction::Inbound, "bob"))
                .unwrap();
            s.insert_cdr(&cdr("c3", 1_717_300_000, store::Direction::Outbound, "bob"))
                .unwrap();
        }
        let app = router(api(dir.path()));
        let (s, j) = call(&app, "GET", "/api/v1/cdrs", "tok", "").await;
        assert_eq!(s, StatusCode::OK, "{j}");
        assert_eq!(j["total"], 3);
        assert_eq!(j["cdrs"][0]["call_id"], "c3", "newest first");
        assert_eq!(j["cdrs"][0]["caller_media"]["rx_packets"], 3000);
        assert!(j["cdrs"][0]["callee_media"].is_null());
        let (s, j) = call(
            &app,
            "GET",
            "/api/v1/cdrs?from=2024-06-01T00:00:00Z&to=1717300000&limit=1",
            "tok",
            "",
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{j}");
        assert_eq!(j["total"], 2);
        assert_eq!(j["cdrs"].as_array().unwrap().len(), 1);
        assert_eq!(j["cdrs"][0]["call_id"], "c2");
        let (s, j) = call(
            &app,
            "GET",
            "/api/v1/cdrs?from=&to=&direction=&disposition=&user=&offset=&limit=",
            "tok",
            "",
        )
        .await;
        assert_eq!(s, StatusCode::OK, "blank fields filter nothing: {j}");
        assert_eq!(j["total"], 3, "{j}");
        let (_, j) = call(
            &app,
            "GET",
            "/api/v1/cdrs?direction=outbound&user=bob",
            "tok",
            "",
        )
        .await;
        assert_eq!(j["total"], 1, "{j}");
        for (query, field) in [
            ("from=yesterday", "from"),
            ("direction=sideways", "direction"),
            ("disposition=answered", "disposition"),
            ("limit=-1", "limit"),
            ("frm=1", "frm"),
        ] {
            let (s, j) = call(&app, "GET", &format!("/api/v1/cdrs?{query}"), "tok", "").await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{query}: {j}");
            assert_eq!(j["field"], field, "{query}: {j}");
        }

        let (s, headers, csv) = raw(&app, "/api/v1/cdrs.csv?user=bob").await;
        assert_eq!(s, StatusCode::OK, "{csv}");
        assert_eq!(headers["content-type"], "text/csv; charset=utf-8");
        let lines: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
        assert_eq!(lines.len(), 3, "{csv}");
        assert!(lines[0].starts_with("id,call_id,started_at"), "{csv}");
        assert!(lines[1].contains(",c2,"), "oldest first: {csv}");
        assert!(
            lines[1].contains("\"\"\"bob, the caller\"\""),
            "quoted: {csv}"
        );
        let (s, _, body) = raw(&app, "/api/v1/cdrs.csv?offset=1").await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
        let (s, _, _) = raw(&app, "/api/v1/cdrs.csv?user=nobody").await;
        assert_eq!(s, StatusCode::OK);
        let req = Request::builder()
            .uri("/api/v1/cdrs.csv")
            .body(Body::empty())
            .unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }

    #[tokio::test]
    async fn large_csv_streams_in_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db.sqlite");
        {
            let s = store::Store::open(&db).unwrap();
            for i in 0..2000 {
                s.insert_cdr(&cdr(
                    &format!("call-{i}"),
                    1_000 + i,
                    store::Direction::Internal,
                    "alice",
                ))
                .unwrap();
            }
        }
        let app = router(api(dir.path()));
        let (s, _, csv) = raw(&app, "/api/v1/cdrs.csv").await;
        assert_eq!(s, StatusCode::OK);
        assert!(csv.len() > 2 * CHUNK_FOR_TESTS, "{}", csv.len());
        assert_eq!(csv.matches("\r\n").count(), 2001);
        assert!(csv.ends_with("\r\n"));
    }

    const CHUNK_FOR_TESTS: usize = 64 * 1024;
}
