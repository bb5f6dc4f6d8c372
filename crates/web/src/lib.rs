//! The JSON API under `/api/v1`, shaped for the admin UI: users (backed by
//! the store, so the CLI and the API see the same data) and live
//! registrations and calls (asked of the signalling core over a channel).
//! Every route needs `Authorization: Bearer <token>`.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

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
}

/// Questions for the signalling core.
#[derive(Debug)]
pub enum CoreQuery {
    Registrations(oneshot::Sender<Vec<RegistrationView>>),
    Calls(oneshot::Sender<Vec<CallView>>),
}

/// Shared state of the API.
pub struct Api {
    pub db_path: PathBuf,
    pub realm: String,
    pub token: String,
    pub core: mpsc::Sender<CoreQuery>,
    store: Mutex<Option<store::Store>>,
}

impl Api {
    pub fn new(
        db_path: PathBuf,
        realm: String,
        token: String,
        core: mpsc::Sender<CoreQuery>,
    ) -> Arc<Api> {
        Arc::new(Api {
            db_path,
            realm,
            token,
            core,
            store: Mutex::new(None),
        })
    }

    /// Runs `f` on the store off the async threads, opening it lazily.
    async fn with_store<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&store::Store) -> store::Result<T> + Send + 'static,
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
        .map_err(ApiError::from)
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
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserBody {
    pub password: Option<String>,
    pub extension: Option<Option<String>>,
    pub display_name: Option<Option<String>>,
    pub enabled: Option<bool>,
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    pub q: Option<String>,
    #[serde(default)]
    pub offset: u32,
    pub limit: Option<u32>,
}

const MIN_PASSWORD: usize = 8;

fn check_token(api: &Api, headers: &HeaderMap) -> Result<(), ApiError> {
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
    let realm = api.realm.clone();
    let user = api
        .with_store(move |s| {
            let ha1 = sip::digest::StoredHa1::from_password(&body.name, &realm, &body.password);
            let mut u =
                store::NewUser::new(&body.name, &realm, ha1.md5.as_str(), ha1.sha256.as_str());
            u.extension = body.extension;
            u.display_name = body.display_name;
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
                    ..Default::default()
                },
            )
        })
        .await?;
    Ok(Json(user.into()))
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
        .route("/api/v1/registrations", get(registrations))
        .route("/api/v1/calls", get(calls))
        .route("/healthz", get(|| async { "ok\n" }))
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
        .serve(router(api).into_make_service())
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
}
