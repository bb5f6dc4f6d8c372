//! Liveness, readiness and metrics endpoints.
//!
//! - `/healthz`: liveness; answers `ok` whenever the HTTP side runs.
//! - `/readyz`: 200 `{"ready":true,...}` when every listener is bound, the
//!   store takes writes, every media worker's heartbeat moves and every
//!   trunk that registers is registered; otherwise 503 with the failing
//!   checks and why. The binary reports these in a [`HealthSnapshot`]
//!   about once a second ([`HealthState::update`]); a report older than
//!   [`HealthState::max_age`] is itself a failure, so a stuck main loop
//!   turns the gateway not ready.
//! - `/metrics`: Prometheus text ([`crate::metrics`]).
//!
//! They are served twice:
//!
//! - on the health listener ([`serve_health`]), plain HTTP without
//!   authentication, for load balancers and Prometheus. Bind it to
//!   loopback or an operations network only: it tells anyone who reaches
//!   it the trunk names and their state.
//! - on the admin HTTPS listener ([`serve_admin`]), next to the JSON API:
//!   `/healthz` and `/readyz` without a token (`/readyz` then only says
//!   `{"ready": bool}`; with the API token it lists the checks), `/metrics`
//!   only with the API token (Prometheus sends one with
//!   `authorization: {credentials: ...}`).

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::metrics::{self, Metrics};
use crate::{check_token, Api, TrunkStatusView};

/// How old a [`HealthSnapshot`] may get before the gateway counts as not
/// ready.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(5);

/// What the binary found when it last looked.
#[derive(Debug, Clone)]
pub struct HealthSnapshot {
    /// Every listener the configuration asks for.
    pub listeners: Vec<ListenerHealth>,
    /// Whether the last test write to the store succeeded, or why not.
    pub store: Result<(), String>,
    /// One per media worker: whether its heartbeat moved since the previous
    /// look (see [`HeartbeatWatch`]). Empty while the relay is off.
    pub media_workers: Vec<bool>,
    /// Every trunk the signalling core knows.
    pub trunks: Vec<TrunkHealth>,
}

/// A configured listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerHealth {
    /// Says what it is, e.g. `"sip wss 0.0.0.0:7443"` or
    /// `"admin https 0.0.0.0:8443"`.
    pub name: String,
    /// `None` while bound and serving; otherwise why not (the bind error).
    pub error: Option<String>,
}

/// A trunk's registration, for readiness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkHealth {
    pub name: String,
    /// `None`: the trunk does not register (or is disabled); otherwise
    /// whether it is registered now.
    pub registered: Option<bool>,
    /// Why it is not registered (e.g. the provider's answer).
    pub detail: Option<String>,
}

impl From<&TrunkStatusView> for TrunkHealth {
    fn from(t: &TrunkStatusView) -> Self {
        TrunkHealth {
            name: t.name.clone(),
            registered: match t.state.as_str() {
                "disabled" => None,
                "registered" => Some(true),
                _ => Some(false),
            },
            detail: t.detail.clone(),
        }
    }
}

/// Turns media worker heartbeat counters into "alive" flags: a worker is
/// alive when its counter moved since the previous [`HeartbeatWatch::check`].
/// Workers advance theirs at least every 100 ms (`media::driver::TICK`),
/// so checks a second apart never miss a live one.
#[derive(Debug, Default)]
pub struct HeartbeatWatch {
    last: Vec<u64>,
}

impl HeartbeatWatch {
    /// `beats`: each worker's heartbeat now (`Relay::worker_heartbeats`).
    /// A worker seen for the first time counts as alive.
    pub fn check(&mut self, beats: &[u64]) -> Vec<bool> {
        let alive = beats
            .iter()
            .enumerate()
            .map(|(i, b)| self.last.get(i).is_none_or(|last| b != last))
            .collect();
        self.last = beats.to_vec();
        alive
    }
}

/// One readiness check in a `/readyz` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// `"health_report"`, `"listener:<name>"`, `"store"`,
    /// `"media_worker:<index>"` or `"trunk:<name>"`.
    pub name: String,
    pub ok: bool,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Check {
    fn new(name: impl Into<String>, failure: Option<String>) -> Check {
        Check {
            name: name.into(),
            ok: failure.is_none(),
            reason: failure,
        }
    }
}

/// A `/readyz` answer.
#[derive(Debug, Clone, Serialize)]
pub struct Readiness {
    pub ready: bool,
    /// Seconds since the last [`HealthSnapshot`]; `None` before the first.
    pub age_secs: Option<f64>,
    /// Every check, passed or not.
    pub checks: Vec<Check>,
}

/// The latest [`HealthSnapshot`] and when it came. Shared as
/// `Arc<HealthState>` between the binary (writing) and the listeners.
#[derive(Debug)]
pub struct HealthState {
    last: RwLock<Option<(Instant, HealthSnapshot)>>,
    max_age: Duration,
}

impl HealthState {
    /// With [`DEFAULT_MAX_AGE`].
    pub fn new() -> Arc<HealthState> {
        Self::with_max_age(DEFAULT_MAX_AGE)
    }

    pub fn with_max_age(max_age: Duration) -> Arc<HealthState> {
        Arc::new(HealthState {
            last: RwLock::new(None),
            max_age,
        })
    }

    /// How old a snapshot may get.
    pub fn max_age(&self) -> Duration {
        self.max_age
    }

    /// Replaces the snapshot; call it about once a second.
    pub fn update(&self, snapshot: HealthSnapshot) {
        self.update_at(snapshot, Instant::now());
    }

    fn update_at(&self, snapshot: HealthSnapshot, at: Instant) {
        *self.last.write().unwrap_or_else(|e| e.into_inner()) = Some((at, snapshot));
    }

    /// The checks as of now.
    pub fn readiness(&self) -> Readiness {
        self.readiness_at(Instant::now())
    }

    fn readiness_at(&self, now: Instant) -> Readiness {
        let last = self.last.read().unwrap_or_else(|e| e.into_inner());
        let Some((at, s)) = last.as_ref() else {
            return Readiness {
                ready: false,
                age_secs: None,
                checks: vec![Check::new(
                    "health_report",
                    Some("no health report yet: the gateway is starting".into()),
                )],
            };
        };
        let age = now.saturating_duration_since(*at);
        let mut checks = vec![Check::new(
            "health_report",
            (age > self.max_age).then(|| {
                format!(
                    "the last health report is {:.1} s old (limit {} s): the gateway's main \
                     loop is stuck or overloaded; the checks below are from then",
                    age.as_secs_f64(),
                    self.max_age.as_secs_f64()
                )
            }),
        )];
        for l in &s.listeners {
            checks.push(Check::new(
                format!("listener:{}", l.name),
                l.error.as_ref().map(|e| format!("not listening: {e}")),
            ));
        }
        checks.push(Check::new(
            "store",
            s.store
                .as_ref()
                .err()
                .map(|e| format!("test write failed: {e}")),
        ));
        for (i, alive) in s.media_workers.iter().enumerate() {
            checks.push(Check::new(
                format!("media_worker:{i}"),
                (!alive).then(|| "heartbeat not advancing: the worker is stuck".to_owned()),
            ));
        }
        for t in &s.trunks {
            if let Some(registered) = t.registered {
                checks.push(Check::new(
                    format!("trunk:{}", t.name),
                    (!registered).then(|| match &t.detail {
                        Some(d) => format!("not registered: {d}"),
                        None => "not registered yet".to_owned(),
                    }),
                ));
            }
        }
        Readiness {
            ready: checks.iter().all(|c| c.ok),
            age_secs: Some((age.as_secs_f64() * 1000.0).round() / 1000.0),
            checks,
        }
    }
}

/// State of the `/readyz` and `/metrics` handlers; with `api`, they are
/// the admin listener's (token-protected) versions.
#[derive(Clone)]
struct Ops {
    health: Arc<HealthState>,
    metrics: Arc<Metrics>,
    api: Option<Arc<Api>>,
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(ops): State<Ops>, headers: HeaderMap) -> Response {
    let r = ops.health.readiness();
    let status = if r.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let detailed = match &ops.api {
        None => true,
        Some(api) => check_token(api, &headers).is_ok(),
    };
    let no_store = [(header::CACHE_CONTROL, "no-store")];
    if detailed {
        (status, no_store, Json(r)).into_response()
    } else {
        let body = serde_json::json!({ "ready": r.ready });
        (status, no_store, Json(body)).into_response()
    }
}

async fn metrics_text(State(ops): State<Ops>, headers: HeaderMap) -> Response {
    if let Some(api) = &ops.api {
        if let Err(e) = check_token(api, &headers) {
            return e.into_response();
        }
    }
    (
        [
            (header::CONTENT_TYPE, metrics::CONTENT_TYPE),
            (header::CACHE_CONTROL, "no-store"),
        ],
        ops.metrics.encode(),
    )
        .into_response()
}

fn ops_routes(ops: Ops) -> Router {
    Router::new()
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(ops)
}

/// The health listener's routes: `/healthz`, `/readyz`, `/metrics`, none
/// authenticated.
pub fn health_router(health: Arc<HealthState>, metrics: Arc<Metrics>) -> Router {
    ops_routes(Ops {
        health,
        metrics,
        api: None,
    })
    .route("/healthz", get(healthz))
}

/// The admin listener's routes: the JSON API ([`crate::router`]) with
/// `/readyz` and `/metrics` (the latter needs the API token).
pub fn admin_router(api: Arc<Api>, health: Arc<HealthState>, metrics: Arc<Metrics>) -> Router {
    crate::router(api.clone()).merge(ops_routes(Ops {
        health,
        metrics,
        api: Some(api),
    }))
}

/// Serves [`health_router`] over plain HTTP on `addr` until the future is
/// dropped. Bind it to loopback or an operations network.
pub async fn serve_health(
    addr: SocketAddr,
    health: Arc<HealthState>,
    metrics: Arc<Metrics>,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    serve_health_on(listener, health, metrics).await
}

/// [`serve_health`] on a listener bound already (so the caller knows the
/// bind succeeded before it reports the listener healthy).
pub async fn serve_health_on(
    listener: tokio::net::TcpListener,
    health: Arc<HealthState>,
    metrics: Arc<Metrics>,
) -> std::io::Result<()> {
    axum::serve(listener, health_router(health, metrics)).await
}

/// Serves [`admin_router`] over HTTPS until the future is dropped: what
/// [`crate::serve`] does, plus `/readyz` and `/metrics`.
pub async fn serve_admin(
    addr: SocketAddr,
    tls: Arc<rustls::ServerConfig>,
    api: Arc<Api>,
    health: Arc<HealthState>,
    metrics: Arc<Metrics>,
) -> std::io::Result<()> {
    let mut cfg = (*tls).clone();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let config = axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(cfg));
    axum_server::bind_rustls(addr, config)
        .serve(
            admin_router(api, health, metrics).into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    fn healthy() -> HealthSnapshot {
        HealthSnapshot {
            listeners: vec![
                ListenerHealth {
                    name: "sip udp 0.0.0.0:5060".into(),
                    error: None,
                },
                ListenerHealth {
                    name: "sip wss 0.0.0.0:7443".into(),
                    error: None,
                },
            ],
            store: Ok(()),
            media_workers: vec![true, true],
            trunks: vec![
                TrunkHealth {
                    name: "carrier".into(),
                    registered: Some(true),
                    detail: None,
                },
                TrunkHealth {
                    name: "static".into(),
                    registered: None,
                    detail: None,
                },
            ],
        }
    }

    async fn get(app: &Router, uri: &str, token: Option<&str>) -> (StatusCode, HeaderMap, String) {
        let mut req = Request::builder().uri(uri);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let resp = app
            .clone()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let (parts, body) = resp.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        (
            parts.status,
            parts.headers,
            String::from_utf8(bytes.to_vec()).unwrap(),
        )
    }

    fn json(s: &str) -> serde_json::Value {
        serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
    }

    fn failing(j: &serde_json::Value) -> Vec<(String, String)> {
        j["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["ok"] == false)
            .map(|c| {
                (
                    c["name"].as_str().unwrap().to_owned(),
                    c["reason"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    #[tokio::test]
    async fn readyz_reports_each_failing_check() {
        let health = HealthState::new();
        let app = health_router(health.clone(), Metrics::new());

        let (s, _, body) = get(&app, "/readyz", None).await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
        let j = json(&body);
        assert_eq!(j["ready"], false);
        assert_eq!(failing(&j)[0].0, "health_report", "{j}");

        health.update(healthy());
        let (s, headers, body) = get(&app, "/readyz", None).await;
        assert_eq!(s, StatusCode::OK, "{body}");
        assert_eq!(headers["content-type"], "application/json");
        let j = json(&body);
        assert_eq!(j["ready"], true);
        assert!(failing(&j).is_empty());
        let names: Vec<&str> = j["checks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "health_report",
                "listener:sip udp 0.0.0.0:5060",
                "listener:sip wss 0.0.0.0:7443",
                "store",
                "media_worker:0",
                "media_worker:1",
                "trunk:carrier"
            ],
            "a trunk that does not register is not checked"
        );

        let mut bad = healthy();
        bad.listeners[1].error = Some("Address already in use (os error 98)".into());
        bad.store = Err("database is locked".into());
        bad.media_workers[1] = false;
        bad.trunks[0] = TrunkHealth::from(&TrunkStatusView {
            name: "carrier".into(),
            state: "failed".into(),
            detail: Some("403 Forbidden".into()),
            expires_in: None,
            active_calls: 0,
        });
        health.update(bad);
        let (s, _, body) = get(&app, "/readyz", None).await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
        let j = json(&body);
        assert_eq!(j["ready"], false);
        let failed = failing(&j);
        let names: Vec<&str> = failed.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "listener:sip wss 0.0.0.0:7443",
                "store",
                "media_worker:1",
                "trunk:carrier"
            ]
        );
        assert!(failed[0].1.contains("Address already in use"), "{failed:?}");
        assert!(failed[1].1.contains("database is locked"), "{failed:?}");
        assert!(failed[2].1.contains("heartbeat"), "{failed:?}");
        assert!(failed[3].1.contains("403 Forbidden"), "{failed:?}");
    }

    #[tokio::test]
    async fn stale_report_is_not_ready() {
        let health = HealthState::new();
        let app = health_router(health.clone(), Metrics::new());
        let long_ago = Instant::now()
            .checked_sub(Duration::from_secs(30))
            .expect("the clock started long ago");
        health.update_at(healthy(), long_ago);
        let (s, _, body) = get(&app, "/readyz", None).await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        let j = json(&body);
        let failed = failing(&j);
        assert_eq!(failed.len(), 1, "{j}");
        assert_eq!(failed[0].0, "health_report");
        assert!(failed[0].1.contains("stuck"), "{failed:?}");
        assert!(j["age_secs"].as_f64().unwrap() >= 30.0, "{j}");

        // Just inside the limit it is fine; just past it, not.
        let r = health.readiness_at(long_ago + DEFAULT_MAX_AGE);
        assert!(r.ready, "{r:?}");
        let r = health.readiness_at(long_ago + DEFAULT_MAX_AGE + Duration::from_millis(1));
        assert!(!r.ready, "{r:?}");
    }

    #[test]
    fn heartbeat_watch() {
        let mut w = HeartbeatWatch::default();
        assert_eq!(w.check(&[5, 9]), [true, true], "first look");
        assert_eq!(w.check(&[6, 9]), [true, false]);
        assert_eq!(w.check(&[6, 10, 1]), [false, true, true]);
        assert_eq!(w.check(&[]), Vec::<bool>::new());
    }

    #[tokio::test]
    async fn health_listener_serves_all_without_auth() {
        let health = HealthState::new();
        let metrics = Metrics::new();
        metrics.update(crate::metrics::tests::sample_snapshot());
        health.update(healthy());
        let app = health_router(health, metrics);
        let (s, _, body) = get(&app, "/healthz", None).await;
        assert_eq!((s, body.as_str()), (StatusCode::OK, "ok\n"));
        let (s, headers, body) = get(&app, "/metrics", None).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(headers["content-type"], metrics::CONTENT_TYPE);
        let x = crate::metrics::tests::parse(&body).unwrap();
        assert_eq!(x.value("callgate_calls", &[]), Some(1.0));
    }

    #[tokio::test]
    async fn admin_listener_guards_metrics_and_details() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, _rx) = tokio::sync::mpsc::channel(1);
        let api = Api::new(
            dir.path().join("db.sqlite"),
            "example.com".into(),
            "tok".into(),
            tx,
        );
        let health = HealthState::new();
        let mut bad = healthy();
        bad.store = Err("disk full".into());
        health.update(bad);
        let app = admin_router(api, health, Metrics::new());

        let (s, _, _) = get(&app, "/metrics", None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        let (s, _, body) = get(&app, "/metrics", Some("wrong")).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        assert!(!body.contains("callgate_"), "{body}");
        let (s, headers, body) = get(&app, "/metrics", Some("tok")).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(headers["content-type"], metrics::CONTENT_TYPE);
        crate::metrics::tests::parse(&body).unwrap();

        // Without the token, readiness only says yes or no.
        let (s, _, body) = get(&app, "/readyz", None).await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(json(&body), serde_json::json!({ "ready": false }));
        let (s, _, body) = get(&app, "/readyz", Some("tok")).await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(failing(&json(&body))[0].0, "store");

        let (s, _, body) = get(&app, "/healthz", None).await;
        assert_eq!((s, body.as_str()), (StatusCode::OK, "ok\n"));
        // The JSON API is still there and still guarded.
        let (s, _, _) = get(&app, "/api/v1/users", None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }

    #[tokio::test]
    async fn serve_health_over_tcp() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let health = HealthState::new();
        health.update(healthy());
        let server = tokio::spawn(serve_health_on(listener, health, Metrics::new()));
        let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
        conn.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        tokio::time::timeout(Duration::from_secs(10), conn.read_to_string(&mut answer))
            .await
            .expect("answered in time")
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.contains("\"ready\":true"), "{answer}");
        server.abort();
    }
}
