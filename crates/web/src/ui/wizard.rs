//! The first-run wizard: SIP domain and public address, certificate,
//! first trunk, first user. Shown after the first password change until
//! finished or skipped (setting `wizard_done`).

use askama::Template;
use axum::extract::{Multipart, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use serde::Deserialize;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{
    internal_error, page_with, store_field_error, AdminEvent, Auth, FieldErrors, Layout,
    ADVERTISED_ADDRESS, SIP_DOMAIN, WIZARD_DONE,
};
use crate::{Api, TrunkDef};

pub(crate) fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/wizard", get(show))
        .route("/wizard/network", post(network))
        .route("/wizard/certificate", post(certificate))
        .route("/wizard/trunk", post(trunk))
        .route("/wizard/user", post(user))
        .route("/wizard/finish", post(finish))
}

/// The steps, in order: (key, title).
const STEPS: [(&str, &str); 5] = [
    ("network", "Domain and address"),
    ("certificate", "Certificate"),
    ("trunk", "First trunk"),
    ("user", "First user"),
    ("done", "Finish"),
];

fn next_step(step: &str) -> &'static str {
    let i = STEPS.iter().position(|(k, _)| *k == step).unwrap_or(0);
    STEPS[(i + 1).min(STEPS.len() - 1)].0
}

/// What the forms show (as typed after an error, else as stored).
#[derive(Debug, Default, Clone)]
struct Values {
    sip_domain: String,
    advertised_address: String,
    trunk_name: String,
    trunk_host: String,
    trunk_port: String,
    trunk_transport: String,
    trunk_username: String,
    trunk_register: bool,
    trunk_patterns: String,
    user_name: String,
    user_extension: String,
    user_display_name: String,
}

#[derive(Template)]
#[template(path = "wizard.html", config = "../../web-ui/templates/askama.toml")]
struct WizardPage {
    layout: Layout,
    step: &'static str,
    steps: Vec<(&'static str, &'static str, bool)>,
    v: Values,
    errors: FieldErrors,
    cert_path: String,
    cert_present: bool,
    trunks: usize,
    users: u64,
}

fn step_key(s: Option<&String>) -> &'static str {
    s.and_then(|s| STEPS.iter().find(|(k, _)| k == s))
        .map_or(STEPS[0].0, |(k, _)| k)
}

async fn render(
    api: &Arc<Api>,
    auth: &Auth,
    step: &'static str,
    v: Option<Values>,
    errors: FieldErrors,
) -> Response {
    let domain_default = api.realm.clone();
    let stored = api
        .store_op(move |s| {
            Ok((
                s.get_setting(SIP_DOMAIN)?,
                s.get_setting(ADVERTISED_ADDRESS)?,
                s.list_trunks()?.len(),
                s.count_users(None)?,
            ))
        })
        .await;
    let (domain, advertised, trunks, users) = match stored {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("wizard: {e}");
            return internal_error("The settings could not be read.");
        }
    };
    let v = v.unwrap_or_else(|| Values {
        sip_domain: domain.unwrap_or(domain_default),
        advertised_address: advertised.unwrap_or_default(),
        trunk_port: "5060".into(),
        trunk_transport: "udp".into(),
        trunk_register: true,
        ..Default::default()
    });
    let cert = match api.certs.get() {
        Some(c) => c.store.paths().0,
        None => transport::tls::active_paths(&api.ui.data_dir).0,
    };
    let current = STEPS.iter().position(|(k, _)| *k == step).unwrap_or(0);
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    page_with(
        status,
        &WizardPage {
            layout: auth.layout(api, "First-run setup", ""),
            step,
            steps: STEPS
                .iter()
                .enumerate()
                .map(|(i, (k, t))| (*k, *t, i < current))
                .collect(),
            v,
            errors,
            cert_present: cert.exists(),
            cert_path: cert.display().to_string(),
            trunks,
            users,
        },
    )
}

async fn show(
    State(api): State<Arc<Api>>,
    Extension(auth): Extension<Auth>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    render(
        &api,
        &auth,
        step_key(q.get("step")),
        None,
        FieldErrors::default(),
    )
    .await
}

fn goto(step: &str) -> Response {
    Redirect::to(&format!("/wizard?step={}", next_step(step))).into_response()
}

/// A DNS name of letter-digit-hyphen labels, or an IP address.
fn valid_domain(s: &str) -> bool {
    if s.parse::<IpAddr>().is_ok() {
        return true;
    }
    let label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    !s.is_empty() && s.len() <= 253 && s.split('.').all(label)
}

#[derive(Debug, Deserialize)]
struct NetworkForm {
    #[serde(default)]
    sip_domain: String,
    #[serde(default)]
    advertised_address: String,
}

async fn network(
    State(api): State<Arc<Api>>,
    Extension(auth): Extension<Auth>,
    Form(f): Form<NetworkForm>,
) -> Response {
    let domain = f.sip_domain.trim().to_ascii_lowercase();
    let advertised = f.advertised_address.trim().to_owned();
    let mut errors = FieldErrors::default();
    if !valid_domain(&domain) {
        errors.add(
            "sip_domain",
            "A DNS name such as pbx.example.com, or an IP address.",
        );
    }
    if !advertised.is_empty() && advertised.parse::<IpAddr>().is_err() {
        errors.add(
            "advertised_address",
            "An IP address such as 203.0.113.10, or empty when the host is not behind NAT.",
        );
    }
    if !errors.is_empty() {
        let v = Values {
            sip_domain: f.sip_domain,
            advertised_address: f.advertised_address,
            ..Default::default()
        };
        return render(&api, &auth, "network", Some(v), errors).await;
    }
    let (d, a) = (domain.clone(), advertised.clone());
    let saved = api
        .store_op(move |s| {
            s.set_setting(SIP_DOMAIN, &d)?;
            if a.is_empty() {
                s.delete_setting(ADVERTISED_ADDRESS)?;
            } else {
                s.set_setting(ADVERTISED_ADDRESS, &a)?;
            }
            Ok(())
        })
        .await;
    if let Err(e) = saved {
        tracing::error!("wizard network: {e}");
        return internal_error("The settings could not be saved.");
    }
    api.ui.emit(AdminEvent::SettingsChanged {
        keys: vec![SIP_DOMAIN.into(), ADVERTISED_ADDRESS.into()],
    });
    auth.audit(
        &api,
        "settings.network",
        format!(
            "SIP domain {domain}, advertised address {}",
            if advertised.is_empty() {
                "none"
            } else {
                &advertised
            }
        ),
    )
    .await;
    auth.flash(
        &api,
        "Saved. The domain and address apply at the next restart.",
    );
    goto("network")
}

/// A refused certificate or key as the form field it concerns.
fn cert_field_error(e: &transport::tls::TlsError) -> Option<(&'static str, String)> {
    use transport::tls::TlsError;
    match e {
        TlsError::BadCertificate { reason, .. } => Some(("cert", reason.clone())),
        TlsError::BadKey { reason, .. } => Some(("key", reason.clone())),
        TlsError::Empty { what, .. } => Some(("cert", format!("no {what} found"))),
        _ => None,
    }
}

/// Checks the pair (it parses, the key is the certificate's, it is valid
/// now), saves it as the uploaded pair in the data dir and makes the
/// listeners present it when certificate management is enabled.
fn install_certificate(
    api: &Api,
    cert: &[u8],
    key: &[u8],
) -> Result<(PathBuf, PathBuf, bool), CertFailure> {
    use transport::tls;
    let info = tls::check_pem(cert, key).map_err(CertFailure::from)?;
    let now = super::unix_now();
    if info.not_after <= now {
        return Err(CertFailure::Field(
            "cert",
            format!(
                "the certificate expired on {}",
                super::fmt_time(info.not_after)
            ),
        ));
    }
    if info.not_before > now {
        return Err(CertFailure::Field(
            "cert",
            format!(
                "the certificate is not valid before {}",
                super::fmt_time(info.not_before)
            ),
        ));
    }
    let certs = api.certs.get();
    let dir = certs.map_or(api.ui.data_dir.as_path(), |c| c.data_dir.as_path());
    let (cert_path, key_path) = tls::save_uploaded(dir, cert, key).map_err(CertFailure::from)?;
    let live = match certs {
        Some(c) => {
            c.store
                .reload(&cert_path, &key_path)
                .map_err(CertFailure::from)?;
            true
        }
        None => false,
    };
    Ok((cert_path, key_path, live))
}

/// Why a certificate was not installed.
enum CertFailure {
    /// The input's fault: a form field and why.
    Field(&'static str, String),
    /// The server's.
    Other(String),
}

impl From<transport::tls::TlsError> for CertFailure {
    fn from(e: transport::tls::TlsError) -> Self {
        match cert_field_error(&e) {
            Some((field, reason)) => CertFailure::Field(field, reason),
            None => CertFailure::Other(e.to_string()),
        }
    }
}

async fn certificate(
    State(api): State<Arc<Api>>,
    Extension(auth): Extension<Auth>,
    mut form: Multipart,
) -> Response {
    let (mut cert, mut key) = (Vec::new(), Vec::new());
    loop {
        match form.next_field().await {
            Ok(Some(field)) => {
                let name = field.name().unwrap_or_default().to_owned();
                let Ok(data) = field.bytes().await else {
                    break;
                };
                // A file wins over pasted text; empty inputs are ignored.
                match name.as_str() {
                    "cert_file" | "cert_pem" if cert.is_empty() => cert = data.to_vec(),
                    "key_file" | "key_pem" if key.is_empty() => key = data.to_vec(),
                    _ => {}
                }
            }
            Ok(None) => break,
            Err(e) => {
                let mut errors = FieldErrors::default();
                errors.add("cert", format!("The upload could not be read: {e}"));
                return render(&api, &auth, "certificate", None, errors).await;
            }
        }
    }
    let trimmed = |b: &[u8]| b.iter().any(|c| !c.is_ascii_whitespace());
    let mut errors = FieldErrors::default();
    if !trimmed(&cert) {
        errors.add("cert", "Choose or paste the certificate (PEM).");
    }
    if !trimmed(&key) {
        errors.add("key", "Choose or paste the private key (PEM).");
    }
    if !errors.is_empty() {
        return render(&api, &auth, "certificate", None, errors).await;
    }
    let api2 = api.clone();
    let installed =
        tokio::task::spawn_blocking(move || install_certificate(&api2, &cert, &key)).await;
    let (cert_path, key_path, live) = match installed {
        Ok(Ok(done)) => done,
        Ok(Err(CertFailure::Field(field, reason))) => {
            errors.add(field, reason);
            return render(&api, &auth, "certificate", None, errors).await;
        }
        Ok(Err(CertFailure::Other(e))) => {
            tracing::error!("certificate upload: {e}");
            return internal_error(&format!("The certificate could not be installed: {e}"));
        }
        Err(_) => return internal_error("The certificate could not be installed."),
    };
    api.ui.emit(AdminEvent::CertificateChanged {
        cert: cert_path.clone(),
        key: key_path,
    });
    auth.audit(
        &api,
        "certificate.upload",
        format!("certificate and key written to {}", cert_path.display()),
    )
    .await;
    auth.flash(
        &api,
        if live {
            "Certificate installed; new connections use it now."
        } else {
            "Certificate saved; it is used from the next start."
        },
    );
    goto("certificate")
}

#[derive(Debug, Deserialize, Default)]
struct TrunkForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    host: String,
    #[serde(default)]
    port: String,
    #[serde(default)]
    transport: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    register: Option<String>,
    #[serde(default)]
    dial_patterns: String,
}

/// Splits a list typed as "0 00, +" into its items.
fn split_list(s: &str) -> Vec<String> {
    s.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

async fn trunk(
    State(api): State<Arc<Api>>,
    Extension(auth): Extension<Auth>,
    Form(f): Form<TrunkForm>,
) -> Response {
    let mut errors = FieldErrors::default();
    let port = match f.port.trim() {
        "" => 5060,
        p => p.parse::<u16>().ok().filter(|&p| p > 0).unwrap_or_else(|| {
            errors.add("port", "A port number from 1 to 65535.");
            5060
        }),
    };
    let mut def = TrunkDef::new(f.name.trim(), f.host.trim());
    def.port = port;
    def.transport = f.transport.trim().to_owned();
    let username = f.username.trim();
    if !username.is_empty() {
        def.username = Some(username.to_owned());
        def.register = f.register.is_some();
    } else if f.register.is_some() {
        errors.add("username", "Registering needs a user name.");
    }
    if !f.password.is_empty() {
        def.password = Some(f.password.clone());
    }
    def.dial_patterns = split_list(&f.dial_patterns);
    let config = match def.to_store() {
        Ok(c) => Some(c),
        Err((field, reason)) => {
            errors.add(field, reason);
            None
        }
    };
    let echo = || Values {
        trunk_name: f.name.clone(),
        trunk_host: f.host.clone(),
        trunk_port: f.port.clone(),
        trunk_transport: f.transport.clone(),
        trunk_username: f.username.clone(),
        trunk_register: f.register.is_some(),
        trunk_patterns: f.dial_patterns.clone(),
        ..Default::default()
    };
    let Some(config) = config.filter(|_| errors.is_empty()) else {
        return render(&api, &auth, "trunk", Some(echo()), errors).await;
    };
    let result = api.store_op(move |s| s.add_trunk(&config)).await;
    match result {
        Ok(t) => {
            auth.audit(
                &api,
                "trunk.create",
                format!(
                    "created trunk {} ({}:{} {})",
                    t.name, t.host, t.port, t.transport
                ),
            )
            .await;
            auth.flash(&api, format!("Trunk {} created.", t.name));
            goto("trunk")
        }
        Err(e) => match store_field_error(&e) {
            Some((field, reason)) => {
                let field = match field {
                    "registration username" => "username",
                    "trunk name" => "name",
                    other => other,
                };
                errors.add(field, reason);
                render(&api, &auth, "trunk", Some(echo()), errors).await
            }
            None => {
                tracing::error!("wizard trunk: {e}");
                internal_error("The trunk could not be created.")
            }
        },
    }
}

#[derive(Debug, Deserialize, Default)]
struct UserForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    extension: String,
    #[serde(default)]
    display_name: String,
}

async fn user(
    State(api): State<Arc<Api>>,
    Extension(auth): Extension<Auth>,
    Form(f): Form<UserForm>,
) -> Response {
    let mut errors = FieldErrors::default();
    let name = f.username.trim().to_owned();
    if name.is_empty() {
        errors.add("username", "Required.");
    }
    if f.password.chars().count() < 8 {
        errors.add("password", "Use at least 8 characters.");
    }
    let echo = || Values {
        user_name: f.username.clone(),
        user_extension: f.extension.clone(),
        user_display_name: f.display_name.clone(),
        ..Default::default()
    };
    if !errors.is_empty() {
        return render(&api, &auth, "user", Some(echo()), errors).await;
    }
    let realm = api.realm.clone();
    let (n, pw) = (name.clone(), f.password.clone());
    let ext = Some(f.extension.trim().to_owned()).filter(|e| !e.is_empty());
    let display = Some(f.display_name.trim().to_owned()).filter(|d| !d.is_empty());
    let result = api
        .store_op(move |s| {
            let ha1 = sip::digest::StoredHa1::from_password(&n, &realm, &pw);
            let mut u = store::NewUser::new(&n, &realm, ha1.md5.as_str(), ha1.sha256.as_str());
            u.extension = ext;
            u.display_name = display;
            s.add_user(&u)
        })
        .await;
    match result {
        Ok(u) => {
            auth.audit(&api, "user.create", format!("created user {}", u.username))
                .await;
            auth.flash(&api, format!("User {} created.", u.username));
            goto("user")
        }
        Err(e) => match store_field_error(&e) {
            Some((field, reason)) => {
                errors.add(field, reason);
                render(&api, &auth, "user", Some(echo()), errors).await
            }
            None => {
                tracing::error!("wizard user: {e}");
                internal_error("The user could not be created.")
            }
        },
    }
}

async fn finish(State(api): State<Arc<Api>>, Extension(auth): Extension<Auth>) -> Response {
    if let Err(e) = api.store_op(|s| s.set_setting(WIZARD_DONE, "1")).await {
        tracing::error!("wizard finish: {e}");
        return internal_error("The setting could not be saved.");
    }
    api.ui.wizard_done.store(true, Ordering::Relaxed);
    auth.audit(&api, "wizard.finish", "first-run setup closed")
        .await;
    auth.flash(&api, "Setup finished.");
    Redirect::to("/dashboard").into_response()
}
