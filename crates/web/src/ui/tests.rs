//! The admin UI against a real SQLite file and a scripted core.

use super::*;
use crate::{CallView, LegView, RegistrationView};
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request};
use http_body_util::BodyExt;
use std::collections::HashMap;
use std::net::SocketAddr;
use tower::ServiceExt;

/// A core that answers every query with fixed data.
fn fake_core() -> mpsc::Sender<CoreQuery> {
    let (tx, mut rx) = mpsc::channel(16);
    tokio::spawn(async move {
        while let Some(q) = rx.recv().await {
            match q {
                CoreQuery::Registrations(r) => {
                    let _ = r.send(vec![RegistrationView {
                        aor: "sip:alice@example.com".into(),
                        contact: "<sip:x@abc.invalid;transport=ws>".into(),
                        transport: "wss".into(),
                        source: "192.0.2.7:50000".into(),
                        user_agent: "<b>JsSIP</b>".into(),
                        expires_in: 300,
                        reachable: true,
                    }]);
                }
                CoreQuery::Calls(r) => {
                    let leg = LegView {
                        rx_packets: 1500,
                        tx_packets: 1490,
                        rx_bytes: 0,
                        tx_bytes: 0,
                        lost_packets: 3,
                        jitter_ms: 2.25,
                    };
                    let _ = r.send(vec![CallView {
                        call_id: "call-1".into(),
                        from: "<sip:alice@example.com>".into(),
                        to: "<sip:+4930555@example.com>".into(),
                        source: "192.0.2.7:50000".into(),
                        transport: "wss".into(),
                        state: "confirmed".into(),
                        started_unix: 1_700_000_000,
                        answered_unix: Some(1_700_000_002),
                        direction: "outbound".into(),
                        trunk: Some("carrier".into()),
                        caller_user: Some("alice".into()),
                        callee_user: None,
                        media: Some([leg.clone(), leg]),
                    }]);
                }
                CoreQuery::TrunkStatus(r) => {
                    let _ = r.send(Vec::new());
                }
                CoreQuery::Dashboard(r) => {
                    let _ = r.send(DashboardView {
                        uptime_secs: 3725,
                        version: "9.9.9".into(),
                        registrations: 7,
                        active_calls: 3,
                        transports: vec![TransportHealth {
                            name: "wss".into(),
                            addr: "0.0.0.0:7443".into(),
                            ok: true,
                        }],
                        media: MediaHealth {
                            relay: true,
                            data_path: "io_uring".into(),
                            workers: vec![
                                WorkerHealth {
                                    alive: true,
                                    packets: 1000,
                                },
                                WorkerHealth {
                                    alive: false,
                                    packets: 0,
                                },
                            ],
                        },
                        store_ok: true,
                        trunks: vec![TrunkStatusView {
                            name: "carrier".into(),
                            state: "failed".into(),
                            detail: Some("403 Forbidden".into()),
                            expires_in: None,
                            active_calls: 0,
                        }],
                    });
                }
                CoreQuery::Unregister { reply, .. } => {
                    let _ = reply.send(1);
                }
                CoreQuery::Hangup { call_id, reply } => {
                    let _ = reply.send(call_id == "call-1");
                }
                CoreQuery::TrunkPing { reply, .. } => {
                    let _ = reply.send(Ok(12));
                }
                CoreQuery::Settings(r) => {
                    let _ = r.send(settings::sample_view());
                }
            }
        }
    });
    tx
}

pub(super) struct Env {
    app: Router,
    pub(super) api: Arc<Api>,
    password: String,
    pub(super) events: mpsc::Receiver<AdminEvent>,
    pub(super) dir: tempfile::TempDir,
}

pub(super) fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("callgate.db");
    let password = {
        let s = store::Store::open(&db).unwrap();
        let pw = ensure_admin_password(&s).unwrap().expect("first start");
        assert!(ensure_admin_password(&s).unwrap().is_none(), "only once");
        pw
    };
    let (tx, events) = mpsc::channel(8);
    let api = Api::with_ui(
        db,
        "example.com".into(),
        "tok".into(),
        fake_core(),
        UiOptions {
            data_dir: Some(dir.path().to_owned()),
            admin_events: Some(tx),
        },
    );
    Env {
        app: crate::router(api.clone()),
        api,
        password,
        events,
        dir,
    }
}

pub(super) struct Answer {
    pub(super) status: StatusCode,
    pub(super) headers: HeaderMap,
    pub(super) body: String,
}

impl Answer {
    pub(super) fn location(&self) -> &str {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
    /// The value of the first `name="csrf"` field.
    pub(super) fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf\" value=\"")
            .expect("a CSRF field")
            + 19;
        self.body[at..].split('"').next().unwrap().to_owned()
    }
}

/// A browser: keeps cookies, comes from one address.
pub(super) struct Browser {
    app: Router,
    ip: SocketAddr,
    cookies: HashMap<String, String>,
}

impl Browser {
    pub(super) fn new(env: &Env, ip: &str) -> Browser {
        Browser {
            app: env.app.clone(),
            ip: format!("{ip}:40000").parse().unwrap(),
            cookies: HashMap::new(),
        }
    }

    pub(super) async fn send(&mut self, mut req: Request<Body>) -> Answer {
        if !self.cookies.is_empty() {
            let c: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            req.headers_mut()
                .insert("cookie", c.join("; ").parse().unwrap());
        }
        req.extensions_mut().insert(ConnectInfo(self.ip));
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let (parts, body) = resp.into_parts();
        for v in parts.headers.get_all("set-cookie") {
            let v = v.to_str().unwrap();
            let (pair, attrs) = v.split_once(';').unwrap_or((v, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if attrs.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        let bytes = body.collect().await.unwrap().to_bytes();
        Answer {
            status: parts.status,
            headers: parts.headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    pub(super) async fn get(&mut self, uri: &str) -> Answer {
        self.send(Request::get(uri).body(Body::empty()).unwrap())
            .await
    }

    pub(super) async fn post(&mut self, uri: &str, fields: &[(&str, &str)]) -> Answer {
        let body: Vec<String> = fields
            .iter()
            .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
            .collect();
        self.send(
            Request::post(uri)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(body.join("&")))
                .unwrap(),
        )
        .await
    }

    async fn login(&mut self, password: &str) -> Answer {
        let form = self.get("/login").await;
        assert_eq!(form.status, StatusCode::OK, "{}", form.body);
        let csrf = form.csrf();
        self.post(
            "/login",
            &[
                ("csrf", &csrf),
                ("username", "admin"),
                ("password", password),
            ],
        )
        .await
    }

    /// The CSRF token of the session, read from a page.
    pub(super) async fn csrf(&mut self) -> String {
        self.get("/dashboard").await.csrf()
    }

    /// Logs in, changes the first password and closes the wizard.
    pub(super) async fn ready(env: &Env, ip: &str) -> Browser {
        let mut b = Browser::new(env, ip);
        let a = b.login(&env.password).await;
        assert_eq!(a.location(), "/password");
        let csrf = b.get("/password").await.csrf();
        let a = b
            .post(
                "/password",
                &[
                    ("csrf", &csrf),
                    ("current", &env.password),
                    ("new", "a new long secret"),
                    ("confirm", "a new long secret"),
                ],
            )
            .await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
        let csrf = b.get("/wizard").await.csrf();
        let a = b.post("/wizard/finish", &[("csrf", &csrf)]).await;
        assert_eq!(a.location(), "/dashboard");
        b
    }
}

#[tokio::test]
async fn unauthenticated_pages_redirect_to_login() {
    let env = env();
    let mut b = Browser::new(&env, "192.0.2.1");
    for uri in [
        "/",
        "/dashboard",
        "/users",
        "/users/edit?name=x",
        "/registrations",
        "/calls",
        "/calls/history",
        "/calls/cdrs.csv",
        "/audit",
        "/wizard",
        "/password",
        "/dashboard/samples.json",
    ] {
        let a = b.get(uri).await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{uri}");
        assert_eq!(a.location(), "/login", "{uri}");
    }
    let a = b.post("/users/new", &[("username", "bob")]).await;
    assert_eq!(a.location(), "/login");
    // The login page and the assets need no session.
    let a = b.get("/login").await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.body.contains("name=\"password\""));
    assert!(a.headers["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("default-src 'self'"));
    for asset in ["/static/ui.css", "/static/ui.js", "/static/dashboard.js"] {
        let a = b.get(asset).await;
        assert_eq!(a.status, StatusCode::OK, "{asset}");
        assert!(!a.body.is_empty());
    }
    // Unknown paths stay 404s.
    assert_eq!(b.get("/no-such-page").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn wrong_password_is_refused() {
    let env = env();
    let mut b = Browser::new(&env, "192.0.2.1");
    let a = b.login("not the password").await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(a.body.contains("Wrong user name or password"), "{}", a.body);
    assert!(!b.cookies.contains_key(auth::SESSION_COOKIE));
    assert_eq!(b.get("/dashboard").await.location(), "/login");
    // The right password under another name is refused too.
    let csrf = b.get("/login").await.csrf();
    let a = b
        .post(
            "/login",
            &[
                ("csrf", &csrf),
                ("username", "root"),
                ("password", &env.password),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    // A login form not from this browser is refused before any check.
    let mut other = Browser::new(&env, "192.0.2.1");
    let a = other
        .post(
            "/login",
            &[
                ("csrf", "forged"),
                ("username", "admin"),
                ("password", &env.password),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn lockout_after_repeated_failures() {
    let env = env();
    let mut b = Browser::new(&env, "192.0.2.66");
    for i in 1..auth::MAX_FAILURES {
        let a = b.login("wrong").await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    let a = b.login("wrong").await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(a.body.contains("locked"), "{}", a.body);
    assert!(a.headers.contains_key("retry-after"));
    // Locked: even the right password is refused, without being checked.
    let a = b.login(&env.password).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(!b.cookies.contains_key(auth::SESSION_COOKIE));
    // Another address is not affected.
    let mut other = Browser::new(&env, "192.0.2.67");
    let a = other.login(&env.password).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    // The lockout is in the audit log.
    let log = env.api.store_op(|s| s.list_audit(0, 10)).await.unwrap();
    assert!(
        log.iter()
            .any(|e| e.action == "login.lockout" && e.source == "192.0.2.66"),
        "{log:?}"
    );
}

#[tokio::test]
async fn first_login_forces_a_password_change_then_the_wizard() {
    let mut env = env();
    let mut b = Browser::new(&env, "192.0.2.1");
    let a = b.login(&env.password).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(a.location(), "/password");
    // Nothing else is reachable until the password changed.
    for uri in ["/dashboard", "/users", "/wizard", "/audit"] {
        assert_eq!(b.get(uri).await.location(), "/password", "{uri}");
    }
    let page = b.get("/password").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("must be replaced"));
    let csrf = page.csrf();
    let a = b
        .post(
            "/password",
            &[
                ("csrf", &csrf),
                ("current", &env.password),
                ("new", "short"),
                ("confirm", "short"),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(a.body.contains("at least 10 characters"), "{}", a.body);
    let a = b
        .post(
            "/password",
            &[
                ("csrf", &csrf),
                ("current", "wrong current"),
                ("new", "long enough now"),
                ("confirm", "long enough now"),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(a.body.contains("not the current password"), "{}", a.body);
    let a = b
        .post(
            "/password",
            &[
                ("csrf", &csrf),
                ("current", &env.password),
                ("new", "long enough now"),
                ("confirm", "long enough now"),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert_eq!(a.location(), "/wizard");
    assert_eq!(
        env.api
            .store_op(|s| s.get_setting(auth::MUST_CHANGE_KEY))
            .await
            .unwrap()
            .as_deref(),
        Some("0")
    );
    // Then the wizard, until finished.
    assert_eq!(b.get("/dashboard").await.location(), "/wizard");
    let page = b.get("/wizard").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Password changed."), "flash shown");
    let csrf = page.csrf();
    let a = b
        .post(
            "/wizard/network",
            &[
                ("csrf", &csrf),
                ("sip_domain", "bad domain!"),
                ("advertised_address", "not-an-ip"),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(a.body.contains("A DNS name"), "{}", a.body);
    assert!(a.body.contains("An IP address"), "{}", a.body);
    let a = b
        .post(
            "/wizard/network",
            &[
                ("csrf", &csrf),
                ("sip_domain", "PBX.example.net"),
                ("advertised_address", "203.0.113.10"),
            ],
        )
        .await;
    assert_eq!(a.location(), "/wizard?step=certificate");
    assert_eq!(
        env.events.try_recv().unwrap(),
        AdminEvent::SettingsChanged {
            keys: vec!["sip_domain".into(), "advertised_address".into()]
        }
    );
    let settings = env
        .api
        .store_op(|s| {
            Ok((
                s.get_setting(SIP_DOMAIN)?,
                s.get_setting(ADVERTISED_ADDRESS)?,
            ))
        })
        .await
        .unwrap();
    assert_eq!(
        settings,
        (Some("pbx.example.net".into()), Some("203.0.113.10".into()))
    );
    let a = b
        .post(
            "/wizard/trunk",
            &[
                ("csrf", &csrf),
                ("name", "carrier"),
                ("host", "sip.example.net"),
                ("port", "5060"),
                ("transport", "udp"),
                ("username", "acct"),
                ("password", "trunk-secret"),
                ("register", "1"),
                ("dial_patterns", "0 00, +"),
            ],
        )
        .await;
    assert_eq!(a.location(), "/wizard?step=user", "{}", a.body);
    let a = b
        .post(
            "/wizard/trunk",
            &[
                ("csrf", &csrf),
                ("name", "carrier2"),
                ("host", "sip.example.net"),
                ("transport", "sctp"),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(a.body.contains("is not one of"), "{}", a.body);
    let a = b
        .post(
            "/wizard/user",
            &[
                ("csrf", &csrf),
                ("username", "alice"),
                ("password", "long-enough"),
                ("extension", "1000"),
            ],
        )
        .await;
    assert_eq!(a.location(), "/wizard?step=done", "{}", a.body);
    let trunk = env
        .api
        .store_op(|s| s.get_trunk("carrier"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(trunk.dial_patterns, ["0", "00", "+"]);
    let a = b.post("/wizard/finish", &[("csrf", &csrf)]).await;
    assert_eq!(a.location(), "/dashboard");
    assert_eq!(b.get("/dashboard").await.status, StatusCode::OK);

    // The old password is gone, the new one works and asks for nothing.
    let mut c = Browser::new(&env, "192.0.2.2");
    assert_eq!(
        c.login(&env.password).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(c.login("long enough now").await.location(), "/dashboard");
}

#[tokio::test]
async fn posts_need_the_session_csrf_token() {
    let env = env();
    let mut b = Browser::ready(&env, "192.0.2.1").await;
    let fields = [
        ("username", "bob"),
        ("password", "long-enough"),
        ("allowed", "national"),
        ("enabled", "1"),
    ];
    let a = b.post("/users/new", &fields).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert!(a.body.contains("Nothing was changed"), "{}", a.body);
    let mut forged = fields.to_vec();
    forged.push(("csrf", "0000"));
    let a = b.post("/users/new", &forged).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let bob = env
        .api
        .store_op(|s| s.get_user_by_name("bob"))
        .await
        .unwrap();
    assert!(bob.is_none(), "refused posts change nothing");
    // Logout needs it too.
    assert_eq!(b.post("/logout", &[]).await.status, StatusCode::FORBIDDEN);

    let csrf = b.csrf().await;
    let mut good = fields.to_vec();
    good.push(("csrf", &csrf));
    let a = b.post("/users/new", &good).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert_eq!(a.location(), "/users/edit?name=bob");
    let bob = env
        .api
        .store_op(|s| s.get_user_by_name("bob"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bob.allowed, store::DestinationScope::National);
    let page = b.get("/users/edit?name=bob").await;
    assert!(page.body.contains("User bob created."), "{}", page.body);

    // Another session's token is not this session's.
    let mut other = Browser::new(&env, "192.0.2.9");
    assert_eq!(
        other.login("a new long secret").await.location(),
        "/dashboard"
    );
    let theirs = other.csrf().await;
    assert_ne!(theirs, csrf);
    let a = b
        .post("/users/disable", &[("csrf", &theirs), ("username", "bob")])
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);

    let a = b.post("/logout", &[("csrf", &csrf)]).await;
    assert_eq!(a.location(), "/login");
    assert_eq!(b.get("/dashboard").await.location(), "/login");
}

#[tokio::test]
async fn session_cookie_flags() {
    let env = env();
    let mut b = Browser::new(&env, "192.0.2.1");
    let login = b.get("/login").await;
    let login_cookie = login.headers["set-cookie"].to_str().unwrap();
    for flag in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(login_cookie.contains(flag), "{login_cookie}");
    }
    let a = b.login(&env.password).await;
    let session = a
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|c| c.starts_with("__Host-cg_session="))
        .expect("a session cookie");
    for flag in ["; Secure", "; HttpOnly", "; SameSite=Strict", "; Path=/"] {
        assert!(session.contains(flag), "{session}");
    }
    let id = &session["__Host-cg_session=".len()..session.find(';').unwrap()];
    assert_eq!(id.len(), 64, "256 bits in hex");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
}

#[tokio::test]
async fn idle_sessions_expire() {
    let env = env();
    let mut b = Browser::ready(&env, "192.0.2.1").await;
    assert_eq!(b.get("/dashboard").await.status, StatusCode::OK);
    let id = b.cookies[auth::SESSION_COOKIE].clone();
    env.api.ui.sessions.age(
        &id,
        auth::IDLE_EXPIRY + Duration::from_secs(1),
        auth::IDLE_EXPIRY + Duration::from_secs(1),
    );
    assert_eq!(b.get("/dashboard").await.location(), "/login");
}

#[tokio::test]
async fn user_names_and_fields_are_escaped() {
    let env = env();
    let mut b = Browser::ready(&env, "192.0.2.1").await;
    let csrf = b.csrf().await;
    // A user called <script> is refused by the store, and the form shows
    // the name escaped.
    let a = b
        .post(
            "/users/new",
            &[
                ("csrf", &csrf),
                ("username", "<script>alert(1)</script>"),
                ("password", "long-enough"),
                ("allowed", "international"),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        a.body.contains("is not allowed in a SIP user part"),
        "{}",
        a.body
    );
    assert!(!a.body.contains("<script>alert"), "{}", a.body);
    assert!(a.body.contains("&#60;script&#62;") || a.body.contains("&lt;script&gt;"));
    // Display names may hold markup; the list escapes it.
    let a = b
        .post(
            "/users/new",
            &[
                ("csrf", &csrf),
                ("username", "mallory"),
                ("password", "long-enough"),
                ("display_name", "<script>alert(1)</script>"),
                ("allowed", "international"),
                ("enabled", "1"),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    for uri in ["/users", "/users/edit?name=mallory", "/audit"] {
        let page = b.get(uri).await;
        assert_eq!(page.status, StatusCode::OK, "{uri}");
        assert!(page.body.contains("mallory"), "{uri}");
        assert!(!page.body.contains("<script>alert"), "{uri}: {}", page.body);
    }
    let list = b.get("/users?q=mall").await;
    assert!(list.body.contains("&#60;script&#62;") || list.body.contains("&lt;script&gt;"));
    // The core's strings are escaped as well.
    let regs = b.get("/registrations").await;
    assert!(!regs.body.contains("<b>JsSIP"), "{}", regs.body);
}

#[tokio::test]
async fn user_management() {
    let env = env();
    let mut b = Browser::ready(&env, "192.0.2.1").await;
    let csrf = b.csrf().await;
    // Errors are shown next to their field.
    let a = b
        .post(
            "/users/new",
            &[
                ("csrf", &csrf),
                ("username", "carol"),
                ("password", "short"),
                ("extension", "12a"),
                ("caller_id", "call me"),
                ("max_calls", "0"),
                ("allowed", "galactic"),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    for text in [
        "Use at least 8 characters",
        "Digits with an optional leading +",
        "at least 1; leave empty",
        "Choose local, national or international",
    ] {
        assert!(a.body.contains(text), "{text}: {}", a.body);
    }
    // A generated password is shown once.
    let a = b
        .post(
            "/users/new",
            &[
                ("csrf", &csrf),
                ("username", "carol"),
                ("extension", "2000"),
                ("caller_id", "+4930123"),
                ("max_calls", "2"),
                ("allowed", "local"),
                ("enabled", "1"),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let page = b.get("/users/edit?name=carol").await;
    assert!(
        page.body.contains("SIP password (shown only now)"),
        "{}",
        page.body
    );
    assert!(!b
        .get("/users/edit?name=carol")
        .await
        .body
        .contains("shown only now"));
    // The store's own checks come back on the field.
    let a = b
        .post(
            "/users/new",
            &[
                ("csrf", &csrf),
                ("username", "dave"),
                ("password", "long-enough"),
                ("extension", "2000"),
                ("allowed", "local"),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(a.body.contains("already used by user"), "{}", a.body);
    // Edit.
    let a = b
        .post(
            "/users/edit",
            &[
                ("csrf", &csrf),
                ("username", "carol"),
                ("extension", "2001"),
                ("display_name", "Carol"),
                ("caller_id", ""),
                ("max_calls", ""),
                ("allowed", "international"),
                ("enabled", "1"),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let carol = env
        .api
        .store_op(|s| s.get_user_by_name("carol"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(carol.extension.as_deref(), Some("2001"));
    assert_eq!(carol.caller_id, None);
    assert_eq!(carol.max_calls, None);
    assert_eq!(carol.allowed, store::DestinationScope::International);
    // Search and paging.
    let list = b.get("/users?q=2001").await;
    assert!(list.body.contains("carol"));
    assert!(list.body.contains("1–1 of 1"), "{}", list.body);
    assert!(!b.get("/users?q=nobody").await.body.contains("carol"));
    // Password reset.
    let a = b
        .post(
            "/users/password",
            &[
                ("csrf", &csrf),
                ("username", "carol"),
                ("password", "new-long-one"),
                ("confirm", "other-long-one"),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(a.body.contains("The two passwords differ"));
    let a = b
        .post(
            "/users/password",
            &[
                ("csrf", &csrf),
                ("username", "carol"),
                ("password", "new-long-one"),
                ("confirm", "new-long-one"),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    let after = env
        .api
        .store_op(|s| s.get_user_by_name("carol"))
        .await
        .unwrap()
        .unwrap();
    let ha1 = sip::digest::StoredHa1::from_password("carol", "example.com", "new-long-one");
    assert_eq!(after.ha1_md5, ha1.md5.as_str());
    // Disable, enable, delete.
    let a = b
        .post("/users/disable", &[("csrf", &csrf), ("username", "carol")])
        .await;
    assert_eq!(a.location(), "/users");
    assert!(b.get("/users").await.body.contains("Disabled"));
    b.post("/users/enable", &[("csrf", &csrf), ("username", "carol")])
        .await;
    let confirm = b.get("/users/delete?name=carol").await;
    assert!(confirm.body.contains("cannot be undone"));
    let a = b
        .post("/users/delete", &[("csrf", &csrf), ("username", "carol")])
        .await;
    assert_eq!(a.location(), "/users");
    assert!(env
        .api
        .store_op(|s| s.get_user_by_name("carol"))
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        b.get("/users/edit?name=carol").await.status,
        StatusCode::NOT_FOUND
    );
    // Every change is in the audit log, with the address.
    let audit = b.get("/audit").await.body;
    for action in [
        "user.create",
        "user.update",
        "user.password",
        "user.disable",
        "user.enable",
        "user.delete",
        "admin.password",
    ] {
        assert!(audit.contains(action), "{action}: {audit}");
    }
    assert!(audit.contains("192.0.2.1"));
    assert!(!audit.contains("new-long-one"), "no secrets in the log");
}

#[tokio::test]
async fn live_pages_and_actions() {
    let env = env();
    let mut b = Browser::ready(&env, "192.0.2.1").await;
    let csrf = b.csrf().await;
    let regs = b.get("/registrations").await;
    assert_eq!(regs.status, StatusCode::OK);
    assert!(regs.body.contains("sip:alice@example.com"));
    assert!(regs.body.contains("192.0.2.7:50000"));
    let a = b
        .post(
            "/registrations/unregister",
            &[("csrf", &csrf), ("aor", "sip:alice@example.com")],
        )
        .await;
    assert_eq!(a.location(), "/registrations");
    assert!(b
        .get("/registrations")
        .await
        .body
        .contains("Removed 1 registration(s)"));

    let calls = b.get("/calls").await;
    assert!(calls.body.contains("+4930555"), "{}", calls.body);
    assert!(calls.body.contains("2.2"), "jitter: {}", calls.body);
    let a = b
        .post("/calls/hangup", &[("csrf", &csrf), ("call_id", "call-1")])
        .await;
    assert_eq!(a.location(), "/calls");
    assert!(b.get("/calls").await.body.contains("Call hung up."));
    b.post("/calls/hangup", &[("csrf", &csrf), ("call_id", "gone")])
        .await;
    assert!(b.get("/calls").await.body.contains("No such call"));
    let audit = b.get("/audit").await.body;
    assert!(audit.contains("registration.remove") && audit.contains("call.hangup"));
}

#[tokio::test]
async fn dashboard_and_samples() {
    let env = env();
    let mut b = Browser::ready(&env, "192.0.2.1").await;
    {
        let s = store::Store::open(&env.api.db_path).unwrap();
        let now = unix_now();
        for (i, answered) in [true, true, false].into_iter().enumerate() {
            s.insert_cdr(&store::Cdr {
                id: 0,
                call_id: format!("c{i}"),
                started_at: now - 10,
                answered_at: answered.then_some(now - 9),
                ended_at: now,
                caller: "a".into(),
                callee: "b".into(),
                caller_user: None,
                callee_user: None,
                direction: store::Direction::Internal,
                disposition: if answered {
                    store::Disposition::Answered
                } else {
                    store::Disposition::Busy
                },
                duration_secs: if answered { 90 } else { 0 },
                trunk: None,
                caller_media: None,
                callee_media: None,
            })
            .unwrap();
        }
    }
    let page = b.get("/dashboard").await;
    assert_eq!(page.status, StatusCode::OK);
    for text in [
        "9.9.9",
        "1h 2m",
        "0.0.0.0:7443",
        "io_uring",
        "Worker down",
        "403 Forbidden",
        "67 %",
        "1:30",
    ] {
        assert!(page.body.contains(text), "{text}: {}", page.body);
    }
    // The sampler's arithmetic: packets per second between two answers.
    let start = Instant::now();
    let mut view = DashboardView::default();
    view.media.workers = vec![WorkerHealth {
        alive: true,
        packets: 1000,
    }];
    view.active_calls = 2;
    dashboard::record(&env.api, &view, start, 100);
    view.media.workers[0].packets = 6000;
    dashboard::record(&env.api, &view, start + Duration::from_secs(10), 110);
    let a = b.get("/dashboard/samples.json").await;
    let j: serde_json::Value = serde_json::from_str(&a.body).unwrap();
    assert_eq!(j["samples"].as_array().unwrap().len(), 2);
    assert_eq!(j["samples"][1]["pps"], 500.0);
    assert_eq!(j["samples"][1]["calls"], 2);
    for i in 0..SAMPLES + 5 {
        dashboard::record(
            &env.api,
            &view,
            start + Duration::from_secs(20 + i as u64),
            120,
        );
    }
    assert_eq!(env.api.ui.samples.lock().unwrap().samples.len(), SAMPLES);
}

#[tokio::test]
async fn call_history_and_csv() {
    let env = env();
    let mut b = Browser::ready(&env, "192.0.2.1").await;
    {
        let s = store::Store::open(&env.api.db_path).unwrap();
        for (i, (day, user)) in [("2024-06-01", "alice"), ("2024-06-02", "bob")]
            .into_iter()
            .enumerate()
        {
            let t = crate::parse_time(day).unwrap() + 3600;
            s.insert_cdr(&store::Cdr {
                id: 0,
                call_id: format!("h{i}"),
                started_at: t,
                answered_at: Some(t + 1),
                ended_at: t + 61,
                caller: format!("<sip:{user}@example.com>"),
                callee: "+4930555".into(),
                caller_user: Some(user.into()),
                callee_user: None,
                direction: store::Direction::Outbound,
                disposition: store::Disposition::Answered,
                duration_secs: 60,
                trunk: Some("carrier".into()),
                caller_media: None,
                callee_media: None,
            })
            .unwrap();
        }
    }
    let all = b.get("/calls/history").await;
    assert!(all.body.contains("sip:alice@") && all.body.contains("sip:bob@"));
    // The "to" date includes that day.
    let one = b.get("/calls/history?from=2024-06-01&to=2024-06-01").await;
    assert!(one.body.contains("sip:alice@") && !one.body.contains("sip:bob@"));
    let bad = b.get("/calls/history?from=yesterday&direction=up").await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("is neither unix seconds"), "{}", bad.body);
    assert!(bad.body.contains("Choose inbound, outbound or internal"));
    // The CSV link carries the filter.
    let page = b.get("/calls/history?user=bob").await;
    let at = page.body.find("/calls/cdrs.csv?").unwrap();
    let href = page.body[at..]
        .split('"')
        .next()
        .unwrap()
        .replace("&amp;", "&");
    let csv = b.get(&href).await;
    assert_eq!(csv.status, StatusCode::OK);
    assert_eq!(csv.headers["content-type"], "text/csv; charset=utf-8");
    assert_eq!(csv.body.lines().count(), 2, "{}", csv.body);
    assert!(csv.body.contains(",h1,"));
}

pub(super) fn multipart(fields: &[(&str, &str)]) -> (String, String) {
    let boundary = "XyZboundary42";
    let mut body = String::new();
    for (name, value) in fields {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        ));
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[tokio::test]
async fn certificate_upload_is_checked_and_announced() {
    let mut env = env();
    let mut b = Browser::ready(&env, "192.0.2.1").await;
    let csrf = b.csrf().await;
    let one = rcgen::generate_simple_self_signed(vec!["pbx.example.net".into()]).unwrap();
    let other = rcgen::generate_simple_self_signed(vec!["x.example".into()]).unwrap();
    let cert = one.cert.pem();
    let key = one.signing_key.serialize_pem();
    let wrong_key = other.signing_key.serialize_pem();
    let upload = |fields: Vec<(&str, String)>| {
        let refs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (ct, body) = multipart(&refs);
        Request::post("/wizard/certificate")
            .header("content-type", ct)
            .body(Body::from(body))
            .unwrap()
    };
    // No token: refused.
    let a = b
        .send(upload(vec![
            ("cert_pem", cert.clone()),
            ("key_pem", key.clone()),
        ]))
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    // A key of another certificate: refused on the key field.
    let a = b
        .send(upload(vec![
            ("csrf", csrf.clone()),
            ("cert_pem", cert.clone()),
            ("key_pem", wrong_key),
        ]))
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.body);
    assert!(
        a.body.contains("does not match the certificate"),
        "{}",
        a.body
    );
    assert!(!env.dir.path().join("uploaded-key.pem").exists());
    let a = b
        .send(upload(vec![
            ("csrf", csrf.clone()),
            ("cert_pem", "garbage".into()),
            ("key_pem", key.clone()),
        ]))
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(a.body.contains("no CERTIFICATE block found"), "{}", a.body);
    assert!(!env.dir.path().join("uploaded-cert.pem").exists());
    // A matching pair (as files) is written and announced.
    let a = b
        .send(upload(vec![
            ("csrf", csrf.clone()),
            ("cert_file", cert.clone()),
            ("key_file", key.clone()),
            ("cert_pem", String::new()),
            ("key_pem", String::new()),
        ]))
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let cert_path = env.dir.path().join("uploaded-cert.pem");
    let key_path = env.dir.path().join("uploaded-key.pem");
    assert_eq!(std::fs::read_to_string(&cert_path).unwrap(), cert);
    assert_eq!(std::fs::read_to_string(&key_path).unwrap(), key);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert_eq!(
        env.events.try_recv().unwrap(),
        AdminEvent::CertificateChanged {
            cert: cert_path,
            key: key_path
        }
    );
}

#[test]
fn admin_password_hashes_verify() {
    let s = store::Store::open_in_memory().unwrap();
    let pw = ensure_admin_password(&s).unwrap().unwrap();
    assert_eq!(pw.len(), 16);
    let phc = s.get_setting(auth::HASH_KEY).unwrap().unwrap();
    assert!(phc.starts_with("$argon2id$"), "{phc}");
    assert!(auth::verify_password(&phc, &pw));
    assert!(!auth::verify_password(&phc, "wrong"));
    assert_eq!(
        s.get_setting(auth::MUST_CHANGE_KEY).unwrap().as_deref(),
        Some("1")
    );
    let again = auth::reset_admin_password(&s).unwrap();
    assert_ne!(again, pw);
}

#[test]
fn time_formatting() {
    assert_eq!(fmt_time(0), "1970-01-01 00:00:00");
    assert_eq!(fmt_time(1_717_200_000 + 3661), "2024-06-01 01:01:01");
    assert_eq!(fmt_date(951_825_600), "2000-02-29");
    assert_eq!(fmt_duration(59), "0:59");
    assert_eq!(fmt_duration(3723), "1:02:03");
    assert_eq!(fmt_uptime(90_061), "1d 1h 1m");
    assert_eq!(enc("a b&c/é"), "a%20b%26c%2F%C3%A9");
}

#[tokio::test]
async fn protect_puts_other_pages_behind_the_login() {
    let env = env();
    async fn whoami(axum::Extension(auth): axum::Extension<Auth>) -> String {
        format!("{} from {}", auth.user, auth.ip)
    }
    let extra = protect(&env.api, Router::new().route("/extra", get(whoami)));
    let app = crate::router(env.api.clone()).merge(extra.with_state(env.api.clone()));
    let mut b = Browser::ready(&env, "192.0.2.5").await;
    let mut stranger = Browser::new(&env, "192.0.2.6");
    b.app = app.clone();
    stranger.app = app;
    assert_eq!(stranger.get("/extra").await.location(), "/login");
    let a = b.get("/extra").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body, "admin from 192.0.2.5");
    assert!(a.headers.contains_key("content-security-policy"));
}
