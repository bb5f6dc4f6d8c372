//! The TLS certificate of the WSS/TLS listeners and this admin listener:
//! what is presented now, upload of a certificate and key, regeneration
//! of the self-signed one. With certificate management enabled
//! ([`Api::with_certs`]) a change is presented to new connections at
//! once, without a restart; the checks and files are those of
//! `/api/v1/certificate` ([`crate::certs`]).

use askama::Template;
use axum::extract::{Multipart, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Extension, Router};
use std::path::PathBuf;
use std::sync::Arc;
use transport::tls::{self, CertInfo, CertSource, TlsError};

use super::{
    fmt_time, internal_error, message, page, page_with, unix_now, AdminEvent, Auth, FieldErrors,
    Layout,
};
use crate::certs::{install, regenerate_pair, InstallError, RegenerateError};
use crate::Api;

/// Days before expiry from which the page warns.
const WARN_DAYS: i64 = 30;

pub(crate) fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/certificates", get(show))
        .route("/certificates/upload", axum::routing::post(upload))
        .route(
            "/certificates/regenerate",
            get(confirm_regenerate).post(regenerate),
        )
}

/// The certificate as the page shows it.
struct Details {
    subject: String,
    sans: Vec<String>,
    issuer: String,
    not_before: String,
    not_after: String,
    /// Whole days until `not_after`; negative once expired.
    days_left: i64,
    self_signed: bool,
    fingerprint: String,
    chain_len: usize,
    /// "generated", "uploaded" or "configured".
    source: &'static str,
    cert_path: String,
}

impl Details {
    fn new(info: CertInfo, source: CertSource, cert_path: PathBuf) -> Details {
        Details {
            days_left: (info.not_after - unix_now()).div_euclid(86_400),
            subject: info.subject,
            sans: info.sans,
            issuer: info.issuer,
            not_before: fmt_time(info.not_before),
            not_after: fmt_time(info.not_after),
            self_signed: info.self_signed,
            fingerprint: info.fingerprint_sha256,
            chain_len: info.chain_len,
            source: source.as_str(),
            cert_path: cert_path.display().to_string(),
        }
    }
    fn expired(&self) -> bool {
        self.days_left < 0
    }
    fn expiring(&self) -> bool {
        (0..WARN_DAYS).contains(&self.days_left)
    }
    fn days_ago(&self) -> i64 {
        -self.days_left
    }
}

#[derive(Template)]
#[template(
    path = "certificates.html",
    config = "../../web-ui/templates/askama.toml"
)]
struct CertificatesPage {
    layout: Layout,
    cert: Option<Details>,
    /// Why `cert` is missing.
    problem: String,
    /// Certificate management is on: changes apply without a restart.
    live: bool,
    /// Regeneration is possible (managed and not from the config file).
    can_regenerate: bool,
    errors: FieldErrors,
}

/// The certificate in use and whether the listeners follow changes.
async fn current(api: &Arc<Api>) -> (Result<Details, String>, bool) {
    if let Some(ctx) = api.certs.get() {
        let (cert_path, _) = ctx.store.paths();
        let source = CertSource::of(&ctx.data_dir, &cert_path);
        return (Ok(Details::new(ctx.store.info(), source, cert_path)), true);
    }
    // Not managed here: what the data dir holds, used from the next start.
    let dir = api.ui.data_dir.clone();
    let read = tokio::task::spawn_blocking(move || {
        let (cert_path, key_path) = tls::active_paths(&dir);
        let read = |p: &PathBuf| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
        let info =
            tls::check_pem(&read(&cert_path)?, &read(&key_path)?).map_err(|e| e.to_string())?;
        let source = CertSource::of(&dir, &cert_path);
        Ok(Details::new(info, source, cert_path))
    })
    .await
    .unwrap_or_else(|_| Err("the certificate could not be read".into()));
    (read, false)
}

async fn render(api: &Arc<Api>, auth: &Auth, errors: FieldErrors) -> Response {
    let (cert, live) = current(api).await;
    let can_regenerate = live && cert.as_ref().is_ok_and(|c| c.source != "configured");
    let (cert, problem) = match cert {
        Ok(c) => (Some(c), String::new()),
        Err(why) => (None, why),
    };
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    page_with(
        status,
        &CertificatesPage {
            layout: auth.layout(api, "Certificates", "certificates"),
            cert,
            problem,
            live,
            can_regenerate,
            errors,
        },
    )
}

async fn show(State(api): State<Arc<Api>>, Extension(auth): Extension<Auth>) -> Response {
    render(&api, &auth, FieldErrors::default()).await
}

/// A refused pair as the form field it concerns (`cert` or `key`).
fn field_of(e: &InstallError) -> Option<(&'static str, String)> {
    match e {
        InstallError::NotValidNow(why) => Some(("cert", why.clone())),
        InstallError::Tls(TlsError::BadCertificate { reason, .. }) => {
            Some(("cert", reason.clone()))
        }
        InstallError::Tls(TlsError::BadKey { reason, .. }) => Some(("key", reason.clone())),
        InstallError::Tls(TlsError::Empty { what, .. }) => {
            Some(("cert", format!("no {what} found")))
        }
        InstallError::Tls(_) => None,
    }
}

async fn upload(
    State(api): State<Arc<Api>>,
    Extension(auth): Extension<Auth>,
    mut form: Multipart,
) -> Response {
    let (mut cert, mut key) = (Vec::new(), Vec::new());
    let mut errors = FieldErrors::default();
    loop {
        match form.next_field().await {
            Ok(Some(field)) => {
                let name = field.name().unwrap_or_default().to_owned();
                let data = match field.bytes().await {
                    Ok(d) => d,
                    Err(e) => {
                        errors.add("cert", format!("The upload could not be read: {e}"));
                        break;
                    }
                };
                // A chosen file wins over pasted text; empty inputs are
                // ignored.
                let blank = !data.iter().any(|c| !c.is_ascii_whitespace());
                match name.as_str() {
                    "cert_file" | "cert_pem" if cert.is_empty() && !blank => cert = data.to_vec(),
                    "key_file" | "key_pem" if key.is_empty() && !blank => key = data.to_vec(),
                    _ => {}
                }
            }
            Ok(None) => break,
            Err(e) => {
                errors.add("cert", format!("The upload could not be read: {e}"));
                break;
            }
        }
    }
    if errors.is_empty() {
        if cert.is_empty() {
            errors.add("cert", "Choose or paste the certificate (PEM).");
        }
        if key.is_empty() {
            errors.add("key", "Choose or paste the private key (PEM).");
        }
    }
    if !errors.is_empty() {
        return render(&api, &auth, errors).await;
    }
    let ctx = api.certs.get().cloned();
    let data_dir = ctx
        .as_ref()
        .map_or_else(|| api.ui.data_dir.clone(), |c| c.data_dir.clone());
    let done = tokio::task::spawn_blocking(move || {
        install(ctx.as_ref().map(|c| &*c.store), &data_dir, &cert, &key)
    })
    .await;
    let installed = match done {
        Ok(Ok(i)) => i,
        Ok(Err(e)) => match field_of(&e) {
            Some((field, reason)) => {
                errors.add(field, reason);
                return render(&api, &auth, errors).await;
            }
            None => {
                tracing::error!("certificate upload: {e:?}");
                return internal_error("The certificate could not be installed.");
            }
        },
        Err(_) => return internal_error("The certificate could not be installed."),
    };
    api.ui.emit(AdminEvent::CertificateChanged {
        cert: installed.cert_path.clone(),
        key: installed.key_path.clone(),
    });
    auth.audit(
        &api,
        "certificate.upload",
        format!(
            "installed certificate {} (SHA-256 {}, valid until {}) as {}",
            installed.info.subject,
            installed.info.fingerprint_sha256,
            fmt_time(installed.info.not_after),
            installed.cert_path.display()
        ),
    )
    .await;
    auth.flash(
        &api,
        if installed.live {
            "Certificate installed. New connections to the WSS and TLS listeners and to this \
             page get it now; no restart needed."
        } else {
            "Certificate saved; it is used from the next start."
        },
    );
    Redirect::to("/certificates").into_response()
}

#[derive(Template)]
#[template(
    path = "certificate_regenerate.html",
    config = "../../web-ui/templates/askama.toml"
)]
struct ConfirmPage {
    layout: Layout,
    source: &'static str,
}

fn not_managed() -> Response {
    message(
        StatusCode::CONFLICT,
        "Not available",
        "Certificate management is not enabled on this listener, so no certificate can be \
         generated here. Upload one instead; it is used from the next start.",
        "/certificates",
    )
}

async fn confirm_regenerate(
    State(api): State<Arc<Api>>,
    Extension(auth): Extension<Auth>,
) -> Response {
    let Some(ctx) = api.certs.get() else {
        return not_managed();
    };
    let source = CertSource::of(&ctx.data_dir, &ctx.store.paths().0).as_str();
    page(&ConfirmPage {
        layout: auth.layout(&api, "Regenerate the certificate", "certificates"),
        source,
    })
}

async fn regenerate(State(api): State<Arc<Api>>, Extension(auth): Extension<Auth>) -> Response {
    let Some(ctx) = api.certs.get().cloned() else {
        return not_managed();
    };
    let done = tokio::task::spawn_blocking(move || regenerate_pair(&ctx)).await;
    let (cert_path, key_path) = match done {
        Ok(Ok(paths)) => paths,
        Ok(Err(RegenerateError::Configured(path))) => {
            return message(
                StatusCode::CONFLICT,
                "Certificate from the configuration file",
                &format!(
                    "The certificate in use, {}, is named in the configuration file \
                     (sip.tls_cert), so it is not replaced here. Upload a certificate, or \
                     remove it from the configuration file.",
                    path.display()
                ),
                "/certificates",
            )
        }
        Ok(Err(RegenerateError::Tls(e))) => {
            tracing::error!("certificate regeneration: {e}");
            return internal_error(&format!("No new certificate could be made: {e}"));
        }
        Err(_) => return internal_error("No new certificate could be made."),
    };
    api.ui.emit(AdminEvent::CertificateChanged {
        cert: cert_path.clone(),
        key: key_path,
    });
    let info = api.certs.get().map(|c| c.store.info());
    auth.audit(
        &api,
        "certificate.regenerate",
        format!(
            "new self-signed certificate{} written to {}",
            info.map(|i| format!(" {} (SHA-256 {})", i.subject, i.fingerprint_sha256))
                .unwrap_or_default(),
            cert_path.display()
        ),
    )
    .await;
    auth.flash(
        &api,
        "New self-signed certificate in use for new connections, no restart needed. Browsers \
         must accept it again.",
    );
    Redirect::to("/certificates").into_response()
}

#[cfg(test)]
mod tests {
    use super::super::tests::{env, multipart, Browser};
    use super::*;
    use crate::certs::CertContext;
    use axum::body::Body;
    use axum::http::Request;
    use transport::tls::CertStore;

    fn upload(fields: &[(&str, String)]) -> Request<Body> {
        let refs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (ct, body) = multipart(&refs);
        Request::post("/certificates/upload")
            .header("content-type", ct)
            .body(Body::from(body))
            .unwrap()
    }

    #[tokio::test]
    async fn certificate_page_upload_and_regenerate() {
        let mut env = env();
        let dir = env.dir.path().to_owned();
        let names = vec!["gw.example".to_owned()];
        let (c, k) = tls::startup_paths(&dir, None, &names).unwrap();
        let store = CertStore::load(&c, &k).unwrap();
        let _ = env.api.clone().with_certs(CertContext {
            store: store.clone(),
            data_dir: dir.clone(),
            names,
        });
        let mut b = Browser::ready(&env, "192.0.2.1").await;
        let page = b.get("/certificates").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(page.body.contains("CN=gw.example"), "{}", page.body);
        assert!(page.body.contains("generated"));
        assert!(page.body.contains("without a restart"), "{}", page.body);
        assert!(page.body.contains(&store.info().fingerprint_sha256));
        let csrf = page.csrf();

        let one = rcgen::generate_simple_self_signed(vec!["pbx.example.net".into()]).unwrap();
        let other = rcgen::generate_simple_self_signed(vec!["x.example".into()]).unwrap();
        let (cert, key) = (one.cert.pem(), one.signing_key.serialize_pem());

        // A key of another certificate: the error by the key field.
        let a = b
            .send(upload(&[
                ("csrf", csrf.clone()),
                ("cert_pem", cert.clone()),
                ("key_pem", other.signing_key.serialize_pem()),
            ]))
            .await;
        assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.body);
        assert!(
            a.body.contains("does not match the certificate"),
            "{}",
            a.body
        );
        assert!(!tls::uploaded_paths(&dir).0.exists());
        assert_eq!(store.info().subject, "CN=gw.example");
        // No token: refused.
        let a = b
            .send(upload(&[
                ("cert_pem", cert.clone()),
                ("key_pem", key.clone()),
            ]))
            .await;
        assert_eq!(a.status, StatusCode::FORBIDDEN);

        // A good pair: presented at once, announced, audited.
        let a = b
            .send(upload(&[
                ("csrf", csrf.clone()),
                ("cert_file", cert.clone()),
                ("cert_pem", String::new()),
                ("key_file", String::new()),
                ("key_pem", key.clone()),
            ]))
            .await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
        assert!(store.info().sans.contains(&"pbx.example.net".to_owned()));
        let (cert_path, key_path) = tls::uploaded_paths(&dir);
        assert_eq!(
            env.events.try_recv().unwrap(),
            AdminEvent::CertificateChanged {
                cert: cert_path,
                key: key_path
            }
        );
        let page = b.get("/certificates").await;
        assert!(page.body.contains("no restart needed"), "{}", page.body);
        assert!(page.body.contains("uploaded"));
        assert!(page.body.contains("pbx.example.net"));

        // Regenerated after the confirmation page.
        let confirm = b.get("/certificates/regenerate").await;
        assert_eq!(confirm.status, StatusCode::OK, "{}", confirm.body);
        assert!(confirm.body.contains("action=\"/certificates/regenerate\""));
        let before = store.info().fingerprint_sha256;
        let a = b.post("/certificates/regenerate", &[("csrf", &csrf)]).await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
        assert_ne!(store.info().fingerprint_sha256, before);
        assert_eq!(store.info().subject, "CN=gw.example");
        assert!(!tls::uploaded_paths(&dir).0.exists());
        let log = env.api.store_op(|s| s.list_audit(0, 10)).await.unwrap();
        assert!(log.iter().any(|e| e.action == "certificate.upload"));
        assert!(log.iter().any(|e| e.action == "certificate.regenerate"));
    }

    #[tokio::test]
    async fn certificate_page_without_management() {
        let env = env();
        let mut b = Browser::ready(&env, "192.0.2.1").await;
        let page = b.get("/certificates").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(page.body.contains("next start"), "{}", page.body);
        let a = b.get("/certificates/regenerate").await;
        assert_eq!(a.status, StatusCode::CONFLICT);
    }
}
