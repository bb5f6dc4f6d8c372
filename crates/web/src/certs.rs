//! The TLS certificate of the SIP TLS/WSS listeners and the admin listener:
//! `/api/v1/certificate`.
//!
//! - `GET /api/v1/certificate`: what is presented now, and where it comes
//!   from (`generated`, `uploaded` or `configured`).
//! - `PUT /api/v1/certificate` `{"cert_pem": "...", "key_pem": "..."}`:
//!   installs a certificate (chain, server's own first) and its key. It
//!   must parse, the key must be the certificate's and the certificate must
//!   be valid now; otherwise a 400 names `cert_pem` or `key_pem`. The pair
//!   is written into the data dir as `uploaded-cert.pem` and
//!   `uploaded-key.pem` (owner-only) and used by new connections at once.
//! - `POST /api/v1/certificate/regenerate`: a new self-signed certificate
//!   replaces the generated one and becomes active; an uploaded pair is
//!   removed. Refused (409) while the certificate comes from the config
//!   file.
//!
//! Nothing is kept in the database: the files in the data dir are the
//! record (`transport::tls::startup_paths` picks the same pair at start).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use transport::tls::{self, CertInfo, CertSource, CertStore, TlsError};

use crate::{check_token, parse_json, Api, ApiError};

/// What the certificate routes need: the store the listeners present from,
/// the data dir holding the pairs, and the names a regenerated self-signed
/// certificate carries (SANs; the first is the common name).
#[derive(Clone)]
pub struct CertContext {
    pub store: Arc<CertStore>,
    pub data_dir: PathBuf,
    pub names: Vec<String>,
}

impl Api {
    /// Enables `/api/v1/certificate`. Without it those routes answer 404.
    /// Call before serving; a second call is ignored.
    pub fn with_certs(self: Arc<Self>, certs: CertContext) -> Arc<Self> {
        let _ = self.certs.set(certs);
        self
    }
}

/// One change at a time: a change writes files, then reloads.
static CHANGING: Mutex<()> = Mutex::new(());

/// The certificate as the API shows it.
#[derive(Debug, Serialize)]
pub struct CertificateView {
    pub subject: String,
    pub sans: Vec<String>,
    pub issuer: String,
    /// Validity, unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    pub self_signed: bool,
    /// `AB:CD:...`, as browsers show it.
    pub fingerprint_sha256: String,
    /// Certificates in the chain, the server's own included.
    pub chain_len: usize,
    /// "generated" (self-signed by the gateway), "uploaded" or
    /// "configured" (files named in the config file).
    pub source: &'static str,
}

impl CertificateView {
    fn new(info: CertInfo, source: CertSource) -> Self {
        CertificateView {
            subject: info.subject,
            sans: info.sans,
            issuer: info.issuer,
            not_before: info.not_before,
            not_after: info.not_after,
            self_signed: info.self_signed,
            fingerprint_sha256: info.fingerprint_sha256,
            chain_len: info.chain_len,
            source: source.as_str(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateBody {
    pub cert_pem: String,
    pub key_pem: String,
}

fn context(api: &Api) -> Result<CertContext, ApiError> {
    api.certs.get().cloned().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "certificate management is not enabled on this listener",
        )
    })
}

fn view(ctx: &CertContext) -> CertificateView {
    let (cert_path, _) = ctx.store.paths();
    CertificateView::new(ctx.store.info(), CertSource::of(&ctx.data_dir, &cert_path))
}

/// A refused certificate or key as a 400 naming the body field; anything
/// else is the server's fault.
fn cert_error(e: TlsError) -> ApiError {
    match e {
        TlsError::BadCertificate { .. } => ApiError::bad_request("cert_pem", e.to_string()),
        TlsError::BadKey { .. } => ApiError::bad_request("key_pem", e.to_string()),
        e => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// Runs a change off the async threads ([`install`] and [`regenerate`]
/// take turns themselves).
async fn change<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| ApiError::internal("certificate task failed"))?
}

/// Why [`install`] did not install a pair.
#[derive(Debug)]
pub(crate) enum InstallError {
    /// Refused or not written: [`TlsError::BadCertificate`] and
    /// [`TlsError::BadKey`] are the input's fault, the others the server's.
    Tls(TlsError),
    /// The certificate is not valid now; says why.
    NotValidNow(String),
}

/// A pair [`install`] wrote.
#[derive(Debug)]
pub(crate) struct Installed {
    pub info: CertInfo,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    /// Whether the listeners present it already (a store was given).
    pub live: bool,
}

/// Checks a pair (both parse, the key is the certificate's, it is valid
/// now), writes it into `data_dir` as the uploaded pair and, with a
/// `store`, makes it the one new connections get. Blocking; one change
/// at a time.
pub(crate) fn install(
    store: Option<&CertStore>,
    data_dir: &Path,
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<Installed, InstallError> {
    let _one = CHANGING.lock().unwrap_or_else(PoisonError::into_inner);
    let info = tls::check_pem(cert_pem, key_pem).map_err(InstallError::Tls)?;
    let now = unix_now();
    if info.not_after <= now {
        return Err(InstallError::NotValidNow(format!(
            "certificate expired on {}",
            utc(info.not_after)
        )));
    }
    if info.not_before > now {
        return Err(InstallError::NotValidNow(format!(
            "certificate is not valid before {}",
            utc(info.not_before)
        )));
    }
    let (cert_path, key_path) =
        tls::save_uploaded(data_dir, cert_pem, key_pem).map_err(InstallError::Tls)?;
    if let Some(store) = store {
        store
            .reload(&cert_path, &key_path)
            .map_err(InstallError::Tls)?;
    }
    tracing::info!(subject = %info.subject, "uploaded TLS certificate installed");
    Ok(Installed {
        info,
        cert_path,
        key_path,
        live: store.is_some(),
    })
}

/// Why [`regenerate_pair`] did not replace the certificate.
#[derive(Debug)]
pub(crate) enum RegenerateError {
    /// The certificate in use is this file named in the config file.
    Configured(PathBuf),
    Tls(TlsError),
}

/// Generates a new self-signed pair, removes an uploaded one and makes
/// the new one presented. Blocking; one change at a time. Returns the
/// files written.
pub(crate) fn regenerate_pair(ctx: &CertContext) -> Result<(PathBuf, PathBuf), RegenerateError> {
    let _one = CHANGING.lock().unwrap_or_else(PoisonError::into_inner);
    let (cert_path, _) = ctx.store.paths();
    if CertSource::of(&ctx.data_dir, &cert_path) == CertSource::Configured {
        return Err(RegenerateError::Configured(cert_path));
    }
    let (cert_path, key_path) =
        tls::regenerate_self_signed(&ctx.data_dir, &ctx.names).map_err(RegenerateError::Tls)?;
    tls::remove_uploaded(&ctx.data_dir).map_err(RegenerateError::Tls)?;
    ctx.store
        .reload(&cert_path, &key_path)
        .map_err(RegenerateError::Tls)?;
    tracing::info!("self-signed TLS certificate regenerated");
    Ok((cert_path, key_path))
}

async fn get_certificate(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
) -> Result<Json<CertificateView>, ApiError> {
    check_token(&api, &headers)?;
    Ok(Json(view(&context(&api)?)))
}

async fn put_certificate(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<CertificateView>, ApiError> {
    check_token(&api, &headers)?;
    let ctx = context(&api)?;
    let body: CertificateBody = parse_json(&body)?;
    let installed = change(move || {
        let (cert, key) = (body.cert_pem.as_bytes(), body.key_pem.as_bytes());
        install(Some(&ctx.store), &ctx.data_dir, cert, key).map_err(|e| match e {
            InstallError::Tls(e) => cert_error(e),
            InstallError::NotValidNow(why) => ApiError::bad_request("cert_pem", why),
        })?;
        Ok(view(&ctx))
    })
    .await?;
    Ok(Json(installed))
}

async fn regenerate(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
) -> Result<Json<CertificateView>, ApiError> {
    check_token(&api, &headers)?;
    let ctx = context(&api)?;
    let installed = change(move || {
        regenerate_pair(&ctx).map_err(|e| match e {
            RegenerateError::Configured(cert_path) => ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "the certificate {} comes from the config file (sip.tls_cert); \
                     upload one or remove it there instead",
                    cert_path.display()
                ),
            ),
            RegenerateError::Tls(e) => cert_error(e),
        })?;
        Ok(view(&ctx))
    })
    .await?;
    Ok(Json(installed))
}

/// The certificate routes, merged into the `/api/v1` router.
pub(crate) fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route(
            "/api/v1/certificate",
            get(get_certificate).put(put_certificate),
        )
        .route("/api/v1/certificate/regenerate", post(regenerate))
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// `2024-05-31T23:59:59Z`.
fn utc(unix: i64) -> String {
    let (days, secs) = (unix.div_euclid(86_400), unix.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{router, CoreQuery};
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tokio::sync::mpsc;
    use tower::ServiceExt;

    fn app(dir: &std::path::Path) -> (Router, Arc<CertStore>) {
        let names = vec!["gw.example".to_owned()];
        let (c, k) = tls::startup_paths(dir, None, &names).unwrap();
        let store = CertStore::load(&c, &k).unwrap();
        let (tx, _rx) = mpsc::channel::<CoreQuery>(1);
        let api = Api::new(
            dir.join("db.sqlite"),
            "example.com".into(),
            "tok".into(),
            tx,
        )
        .with_certs(CertContext {
            store: store.clone(),
            data_dir: dir.to_owned(),
            names,
        });
        (router(api), store)
    }

    async fn call(
        app: &Router,
        method: &str,
        uri: &str,
        token: &str,
        body: String,
    ) -> (StatusCode, serde_json::Value) {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or_default())
    }

    /// A certificate for `name` signed by its own key, valid from
    /// `not_before` to `not_after` (years), and that key.
    fn pair(name: &str, not_before: i32, not_after: i32) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.not_before = rcgen::date_time_ymd(not_before, 1, 1);
        params.not_after = rcgen::date_time_ymd(not_after, 1, 1);
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn body(cert: &str, key: &str) -> String {
        serde_json::json!({ "cert_pem": cert, "key_pem": key }).to_string()
    }

    #[tokio::test]
    async fn upload_refuse_and_regenerate() {
        let dir = tempfile::tempdir().unwrap();
        let (app, store) = app(dir.path());
        let uri = "/api/v1/certificate";

        let (s, _) = call(&app, "GET", uri, "wrong", String::new()).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        let (s, _) = call(&app, "PUT", uri, "wrong", String::new()).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        let (s, generated) = call(&app, "GET", uri, "tok", String::new()).await;
        assert_eq!(s, StatusCode::OK, "{generated}");
        assert_eq!(generated["source"], "generated");
        assert_eq!(generated["subject"], "CN=gw.example");
        assert_eq!(generated["self_signed"], true);
        assert_eq!(generated["sans"][0], "gw.example");

        // A valid pair: installed, presented, kept as files.
        let (cert, key) = pair("phone.example.org", 2020, 2090);
        let (s, j) = call(&app, "PUT", uri, "tok", body(&cert, &key)).await;
        assert_eq!(s, StatusCode::OK, "{j}");
        assert_eq!(j["subject"], "CN=phone.example.org");
        let (s, j) = call(&app, "GET", uri, "tok", String::new()).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(j["subject"], "CN=phone.example.org");
        assert_eq!(j["source"], "uploaded");
        assert_eq!(j["not_after"], 3_786_912_000_i64);
        assert_eq!(store.info().subject, "CN=phone.example.org");
        assert_eq!(
            tls::active_paths(dir.path()),
            tls::uploaded_paths(dir.path())
        );
        let uploaded = j;

        // Refusals name the field and leave the certificate alone.
        let (other_cert, other_key) = pair("other.example", 2020, 2090);
        let (expired_cert, expired_key) = pair("old.example", 2000, 2010);
        let (future_cert, future_key) = pair("new.example", 2080, 2090);
        for (b, field, says) in [
            (body(&cert, &other_key), "key_pem", "does not match"),
            (body(&other_cert, &key), "key_pem", "does not match"),
            (body(&cert, "garbage"), "key_pem", "no PRIVATE KEY"),
            (body("garbage", &key), "cert_pem", "no CERTIFICATE"),
            (body(&key, &key), "cert_pem", "no CERTIFICATE"),
            (
                body(&expired_cert, &expired_key),
                "cert_pem",
                "expired on 2010-01-01T00:00:00Z",
            ),
            (
                body(&future_cert, &future_key),
                "cert_pem",
                "not valid before 2080-01-01",
            ),
            (r#"{"cert_pem":"x"}"#.to_owned(), "key_pem", "missing field"),
            (
                r#"{"cert_pem":"x","key_pem":"y","chain":1}"#.to_owned(),
                "chain",
                "unknown field",
            ),
        ] {
            let (s, j) = call(&app, "PUT", uri, "tok", b.clone()).await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{b}: {j}");
            assert_eq!(j["field"], field, "{b}: {j}");
            let error = j["error"].as_str().unwrap();
            assert!(error.contains(says), "{error}");
        }
        let (_, j) = call(&app, "GET", uri, "tok", String::new()).await;
        assert_eq!(j, uploaded, "unchanged by refusals");

        // Regenerated: a new self-signed one, the upload gone.
        let (s, j) = call(
            &app,
            "POST",
            "/api/v1/certificate/regenerate",
            "tok",
            String::new(),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{j}");
        assert_eq!(j["source"], "generated");
        assert_eq!(j["self_signed"], true);
        assert_eq!(j["subject"], "CN=gw.example");
        assert_ne!(j["fingerprint_sha256"], generated["fingerprint_sha256"]);
        assert_ne!(j["fingerprint_sha256"], uploaded["fingerprint_sha256"]);
        assert_eq!(store.info().fingerprint_sha256, j["fingerprint_sha256"]);
        assert!(!tls::uploaded_paths(dir.path()).0.exists());
        assert_eq!(
            tls::active_paths(dir.path()),
            tls::generated_paths(dir.path())
        );
        let (s, _) = call(
            &app,
            "POST",
            "/api/v1/certificate/regenerate",
            "bad",
            String::new(),
        )
        .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }

    #[tokio::test]
    async fn configured_certificate_is_not_regenerated() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pair("configured.example", 2020, 2090);
        let (c, k) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&c, &cert).unwrap();
        std::fs::write(&k, &key).unwrap();
        let (tx, _rx) = mpsc::channel::<CoreQuery>(1);
        let store = CertStore::load(&c, &k).unwrap();
        let data_dir = dir.path().join("data");
        let app = router(
            Api::new(data_dir.join("db"), "example.com".into(), "tok".into(), tx).with_certs(
                CertContext {
                    store,
                    data_dir,
                    names: Vec::new(),
                },
            ),
        );
        let (s, j) = call(&app, "GET", "/api/v1/certificate", "tok", String::new()).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(j["source"], "configured");
        let (s, j) = call(
            &app,
            "POST",
            "/api/v1/certificate/regenerate",
            "tok",
            String::new(),
        )
        .await;
        assert_eq!(s, StatusCode::CONFLICT, "{j}");
    }

    #[tokio::test]
    async fn without_a_store_the_routes_are_absent() {
        let (tx, _rx) = mpsc::channel::<CoreQuery>(1);
        let dir = tempfile::tempdir().unwrap();
        let app = router(Api::new(
            dir.path().join("db"),
            "example.com".into(),
            "tok".into(),
            tx,
        ));
        let (s, j) = call(&app, "GET", "/api/v1/certificate", "tok", String::new()).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{j}");
        assert!(j["error"].is_string());
    }

    /// The certificate the server at `port` presents, to a client that
    /// trusts only `anchor`; `None` when the handshake fails.
    fn presented(port: u16, anchor: &[u8]) -> Option<Vec<u8>> {
        use std::io::Write;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(anchor.to_vec().into()).unwrap();
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let name = "localhost".try_into().unwrap();
        let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .ok()?;
        Some(tls.conn.peer_certificates()?[0].to_vec())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn admin_listener_follows_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let write = |stem: &str| {
            let c = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
            let (cp, kp) = (
                dir.path().join(format!("{stem}.crt")),
                dir.path().join(format!("{stem}.key")),
            );
            std::fs::write(&cp, c.cert.pem()).unwrap();
            std::fs::write(&kp, c.signing_key.serialize_pem()).unwrap();
            (c.cert.der().to_vec(), cp, kp)
        };
        let (a, a_cert, a_key) = write("a");
        let (b, b_cert, b_key) = write("b");
        let store = CertStore::load(&a_cert, &a_key).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let (tx, _rx) = mpsc::channel::<CoreQuery>(1);
        let api = Api::new(
            dir.path().join("db"),
            "example.com".into(),
            "tok".into(),
            tx,
        );
        let server = tokio::spawn(crate::serve(
            ([127, 0, 0, 1], port).into(),
            store.server_config(),
            api,
        ));
        let ask =
            move |anchor: Vec<u8>| tokio::task::spawn_blocking(move || presented(port, &anchor));
        let mut first = None;
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                first = ask(a.clone()).await.unwrap();
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(first.as_deref(), Some(&a[..]));
        store.reload(&b_cert, &b_key).unwrap();
        assert_eq!(ask(b.clone()).await.unwrap().as_deref(), Some(&b[..]));
        assert_eq!(ask(a).await.unwrap(), None, "A no longer presented");
        server.abort();
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_717_199_999), "2024-05-31T23:59:59Z");
        assert_eq!(utc(-1), "1969-12-31T23:59:59Z");
    }
}
