//! Settings: the running configuration (listeners, media ports, addresses,
//! limits, log level) as the signalling core reports it, and the few
//! settings the admin UI may change. Changes go to the store's `settings`
//! table in one transaction, are announced as
//! [`AdminEvent::SettingsChanged`] and recorded in the audit log; each
//! row says whether it applies at once or at the next start.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Extension, Form, Router};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use super::{
    internal_error, message, page_with, AdminEvent, Auth, FieldErrors, Layout, ADVERTISED_ADDRESS,
    CORE_WAIT, SIP_DOMAIN,
};
use crate::{Api, CoreQuery};

/// The running configuration as the signalling core reports it
/// ([`CoreQuery::Settings`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SettingsView {
    /// In the order the page shows them.
    pub items: Vec<SettingItem>,
}

/// One setting of the running configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SettingItem {
    /// For an editable item, its key in the store's `settings` table:
    /// `sip_domain`, `advertised_address`, `media_port_min`,
    /// `media_port_max` or `log_level` (others are shown read-only). For
    /// the rest a label such as `sip.udp` or `admin.listen`.
    pub key: String,
    /// The value in use, as text (empty when unset).
    pub value: String,
    /// "live" (a change takes effect at once) or "restart".
    pub applies: String,
    /// Whether the page offers to change it.
    pub editable: bool,
    /// One line on what it is.
    pub help: String,
}

/// Settings keys the UI writes besides [`SIP_DOMAIN`] and
/// [`ADVERTISED_ADDRESS`].
pub(crate) const MEDIA_PORT_MIN: &str = "media_port_min";
pub(crate) const MEDIA_PORT_MAX: &str = "media_port_max";
pub(crate) const LOG_LEVEL: &str = "log_level";

/// The keys this page knows how to check, so may write.
const WRITABLE: [&str; 5] = [
    SIP_DOMAIN,
    ADVERTISED_ADDRESS,
    MEDIA_PORT_MIN,
    MEDIA_PORT_MAX,
    LOG_LEVEL,
];

const LOG_LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];

/// Lowest media port accepted (no privileged ports).
const MIN_PORT: u16 = 1024;
/// Fewest media ports in the range (two calls, RTP and RTCP each).
const MIN_PORTS: u32 = 4;

pub(crate) fn routes() -> Router<Arc<Api>> {
    Router::new().route("/settings", get(show).post(save))
}

/// A row of the page.
#[derive(Debug, Clone)]
struct Row {
    key: String,
    /// The value in use.
    running: String,
    /// What the input shows: as typed after an error, else the saved
    /// value, else the running one.
    input: String,
    /// A value saved in the store that is not in use yet.
    pending: Option<String>,
    live: bool,
    /// Editable here (the core says so and the page can check it).
    editable: bool,
    help: String,
}

impl Row {
    /// A log level the select does not list (shown as is).
    fn odd_level(&self) -> bool {
        !LOG_LEVELS.contains(&self.input.as_str())
    }
}

#[derive(Template)]
#[template(path = "settings.html", config = "../../web-ui/templates/askama.toml")]
struct SettingsPage {
    layout: Layout,
    core_ok: bool,
    rows: Vec<Row>,
    errors: FieldErrors,
    log_levels: [&'static str; 5],
}

impl SettingsPage {
    fn any_editable(&self) -> bool {
        self.rows.iter().any(|r| r.editable)
    }
}

/// The saved values of the writable keys.
async fn saved(api: &Arc<Api>) -> store::Result<HashMap<String, String>> {
    api.store_op(|s| {
        let mut out = HashMap::new();
        for key in WRITABLE {
            if let Some(v) = s.get_setting(key)? {
                out.insert(key.to_owned(), v);
            }
        }
        Ok(out)
    })
    .await
}

fn rows(view: &SettingsView, saved: &HashMap<String, String>) -> Vec<Row> {
    view.items
        .iter()
        .map(|item| {
            let editable = item.editable && WRITABLE.contains(&item.key.as_str());
            let stored = saved.get(&item.key).filter(|_| editable);
            Row {
                key: item.key.clone(),
                running: item.value.clone(),
                input: stored.unwrap_or(&item.value).clone(),
                pending: stored.filter(|v| **v != item.value).cloned(),
                live: item.applies == "live",
                editable,
                help: item.help.clone(),
            }
        })
        .collect()
}

async fn render(
    api: &Arc<Api>,
    auth: &Auth,
    typed: Option<&HashMap<String, String>>,
    errors: FieldErrors,
) -> Response {
    let view = api.ask_core(CoreQuery::Settings, CORE_WAIT).await;
    let saved = match saved(api).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("settings: {e}");
            return internal_error("The settings could not be read.");
        }
    };
    let mut rows = rows(view.as_ref().unwrap_or(&SettingsView::default()), &saved);
    if let Some(typed) = typed {
        for row in rows.iter_mut().filter(|r| r.editable) {
            if let Some(v) = typed.get(&row.key) {
                row.input = v.clone();
            }
        }
    }
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    page_with(
        status,
        &SettingsPage {
            layout: auth.layout(api, "Settings", "settings"),
            core_ok: view.is_some(),
            rows,
            errors,
            log_levels: LOG_LEVELS,
        },
    )
}

async fn show(State(api): State<Arc<Api>>, Extension(auth): Extension<Auth>) -> Response {
    render(&api, &auth, None, FieldErrors::default()).await
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

fn media_port(s: &str) -> Result<u16, String> {
    match s.parse::<u16>() {
        Ok(p) if p >= MIN_PORT => Ok(p),
        _ => Err(format!(
            "A port number from {MIN_PORT} to 65535, got {s:?}."
        )),
    }
}

/// Checks the new values (`key` → trimmed value) and returns them in the
/// form they are stored in. `current` holds the value in force of every
/// writable key, for checks across keys (the port range).
fn validate(
    new: &HashMap<String, String>,
    current: &HashMap<String, String>,
    errors: &mut FieldErrors,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (key, value) in new {
        let checked = match key.as_str() {
            SIP_DOMAIN => {
                let d = value.to_ascii_lowercase();
                if valid_domain(&d) {
                    Ok(d)
                } else {
                    Err(
                        "A DNS name such as pbx.example.com (letters, digits, hyphens and dots), \
                         or an IP address."
                            .to_owned(),
                    )
                }
            }
            ADVERTISED_ADDRESS => match value.parse::<IpAddr>() {
                _ if value.is_empty() => Ok(String::new()),
                Ok(ip) if ip.is_unspecified() => Err(format!(
                    "{ip} is not an address peers can send media to; give the public address."
                )),
                Ok(ip) => Ok(ip.to_string()),
                Err(_) => Err(
                    "An IP address such as 203.0.113.10, or empty to use the configuration file's."
                        .to_owned(),
                ),
            },
            MEDIA_PORT_MIN | MEDIA_PORT_MAX => media_port(value).map(|p| p.to_string()),
            LOG_LEVEL => {
                let l = value.to_ascii_lowercase();
                if LOG_LEVELS.contains(&l.as_str()) {
                    Ok(l)
                } else {
                    Err(format!("One of {}.", LOG_LEVELS.join(", ")))
                }
            }
            _ => continue,
        };
        match checked {
            Ok(v) => out.push((key.clone(), v)),
            Err(e) => errors.add(key, e),
        }
    }
    // The range, with whichever end is not being changed as it is.
    let port = |key: &str| {
        new.get(key)
            .or_else(|| current.get(key))
            .and_then(|v| v.parse::<u16>().ok())
    };
    let ranged = new.contains_key(MEDIA_PORT_MIN) || new.contains_key(MEDIA_PORT_MAX);
    if ranged && errors.get(MEDIA_PORT_MIN).is_none() && errors.get(MEDIA_PORT_MAX).is_none() {
        if let (Some(min), Some(max)) = (port(MEDIA_PORT_MIN), port(MEDIA_PORT_MAX)) {
            if min >= max {
                errors.add(
                    MEDIA_PORT_MAX,
                    format!("Must be above the lowest port ({min})."),
                );
            } else if u32::from(max) - u32::from(min) + 1 < MIN_PORTS {
                errors.add(
                    MEDIA_PORT_MAX,
                    format!("The range {min}–{max} has fewer than {MIN_PORTS} ports."),
                );
            }
        }
    }
    out.sort();
    out
}

async fn save(
    State(api): State<Arc<Api>>,
    Extension(auth): Extension<Auth>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let Some(view) = api.ask_core(CoreQuery::Settings, CORE_WAIT).await else {
        return message(
            StatusCode::SERVICE_UNAVAILABLE,
            "Settings not saved",
            "The signalling core did not answer, so the settings in use are unknown. \
             Nothing was saved; try again in a moment.",
            "/settings",
        );
    };
    let saved = match saved(&api).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("settings: {e}");
            return internal_error("The settings could not be read.");
        }
    };
    let rows = rows(&view, &saved);
    // The value in force of each editable key: saved, else running.
    let current: HashMap<String, String> = rows
        .iter()
        .filter(|r| r.editable)
        .map(|r| (r.key.clone(), r.input.clone()))
        .collect();
    let typed: HashMap<String, String> = form
        .into_iter()
        .filter(|(k, _)| current.contains_key(k))
        .map(|(k, v)| (k, v.trim().to_owned()))
        .collect();
    let changed: HashMap<String, String> = typed
        .iter()
        .filter(|(k, v)| current.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut errors = FieldErrors::default();
    let writes = validate(&changed, &current, &mut errors);
    if !errors.is_empty() {
        return render(&api, &auth, Some(&typed), errors).await;
    }
    // Normalising (case, address form) can make a change no change.
    let writes: Vec<(String, String)> = writes
        .into_iter()
        .filter(|(k, v)| current.get(k) != Some(v))
        .collect();
    if writes.is_empty() {
        auth.flash(&api, "Nothing changed.");
        return Redirect::to("/settings").into_response();
    }
    let to_store = writes.clone();
    if let Err(e) = api
        .store_op(move |s| s.set_settings(to_store.iter().map(|(k, v)| (k.as_str(), v.as_str()))))
        .await
    {
        tracing::error!("settings: {e}");
        return internal_error("The settings could not be saved; nothing was changed.");
    }
    let keys: Vec<String> = writes.iter().map(|(k, _)| k.clone()).collect();
    api.ui
        .emit(AdminEvent::SettingsChanged { keys: keys.clone() });
    let show = |v: &str| {
        if v.is_empty() {
            "(empty)".to_owned()
        } else {
            v.to_owned()
        }
    };
    let detail: Vec<String> = writes
        .iter()
        .map(|(k, v)| {
            let old = current.get(k).map_or("", String::as_str);
            format!("{k}: {} → {}", show(old), show(v))
        })
        .collect();
    auth.audit(&api, "settings.update", detail.join(", ")).await;
    let live = |k: &String| rows.iter().any(|r| &r.key == k && r.live);
    let (now, later): (Vec<&String>, Vec<&String>) = keys.iter().partition(|k| live(k));
    let list = |v: &[&String]| v.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ");
    let note = match (now.is_empty(), later.is_empty()) {
        (false, true) => format!("Saved; in effect now: {}.", list(&now)),
        (true, false) => format!("Saved; applies after a restart: {}.", list(&later)),
        _ => format!(
            "Saved; in effect now: {}; after a restart: {}.",
            list(&now),
            list(&later)
        ),
    };
    auth.flash(&api, note);
    Redirect::to("/settings").into_response()
}

/// What the tests' core reports.
#[cfg(test)]
pub(super) fn sample_view() -> SettingsView {
    let item = |key: &str, value: &str, applies: &str, editable: bool| SettingItem {
        key: key.into(),
        value: value.into(),
        applies: applies.into(),
        editable,
        help: format!("about {key}"),
    };
    SettingsView {
        items: vec![
            item("sip.udp", "0.0.0.0:5060", "restart", false),
            item("admin.listen", "0.0.0.0:8443", "restart", false),
            item(SIP_DOMAIN, "example.com", "restart", true),
            item(ADVERTISED_ADDRESS, "", "restart", true),
            item(MEDIA_PORT_MIN, "10000", "restart", true),
            item(MEDIA_PORT_MAX, "20000", "restart", true),
            item(LOG_LEVEL, "info", "live", true),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{env, Browser};
    use super::*;

    #[test]
    fn checks() {
        let current: HashMap<String, String> = [
            (MEDIA_PORT_MIN, "10000"),
            (MEDIA_PORT_MAX, "20000"),
            (LOG_LEVEL, "info"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let check = |pairs: &[(&str, &str)]| {
            let new = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let mut errors = FieldErrors::default();
            let out = validate(&new, &current, &mut errors);
            (out, errors)
        };
        let (out, e) = check(&[(MEDIA_PORT_MIN, "19997")]);
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(out, vec![(MEDIA_PORT_MIN.into(), "19997".into())]);
        let (_, e) = check(&[(MEDIA_PORT_MIN, "19998")]);
        assert!(e.get(MEDIA_PORT_MAX).unwrap().contains("fewer than 4"));
        let (_, e) = check(&[(MEDIA_PORT_MAX, "9000")]);
        assert!(e.get(MEDIA_PORT_MAX).unwrap().contains("above"));
        let (_, e) = check(&[(MEDIA_PORT_MIN, "80")]);
        assert!(e.get(MEDIA_PORT_MIN).is_some());
        let (_, e) = check(&[(MEDIA_PORT_MAX, "65536")]);
        assert!(e.get(MEDIA_PORT_MAX).is_some());
        let (out, e) = check(&[(LOG_LEVEL, "DEBUG"), (ADVERTISED_ADDRESS, "2001:DB8::1")]);
        assert!(e.is_empty());
        assert_eq!(
            out,
            vec![
                (ADVERTISED_ADDRESS.into(), "2001:db8::1".into()),
                (LOG_LEVEL.into(), "debug".into())
            ]
        );
        let (_, e) = check(&[(LOG_LEVEL, "verbose"), (ADVERTISED_ADDRESS, "0.0.0.0")]);
        assert!(e.get(LOG_LEVEL).is_some());
        assert!(e.get(ADVERTISED_ADDRESS).is_some());
        let (_, e) = check(&[(ADVERTISED_ADDRESS, "::"), (SIP_DOMAIN, "pbx_1.example")]);
        assert!(e.get(ADVERTISED_ADDRESS).is_some());
        assert!(e.get(SIP_DOMAIN).is_some());
        let (out, e) = check(&[(SIP_DOMAIN, "PBX.example.com"), (ADVERTISED_ADDRESS, "")]);
        assert!(e.is_empty());
        assert_eq!(out[1], (SIP_DOMAIN.into(), "pbx.example.com".into()));
        assert_eq!(out[0], (ADVERTISED_ADDRESS.into(), String::new()));
    }

    #[tokio::test]
    async fn settings_page_saves_checked_values_at_once() {
        let mut env = env();
        let mut b = Browser::ready(&env, "192.0.2.1").await;
        let page = b.get("/settings").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(page.body.contains("0.0.0.0:5060"), "{}", page.body);
        assert!(page.body.contains("name=\"media_port_min\""));
        assert!(!page.body.contains("name=\"sip.udp\""), "read-only");
        assert!(page.body.contains("Needs restart"));
        let csrf = page.csrf();

        // Without the token: refused, nothing written.
        let a = b.post("/settings", &[("media_port_min", "12000")]).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN);

        // A bad port: the error next to it, nothing written, not even
        // the good value beside it.
        let a = b
            .post(
                "/settings",
                &[
                    ("csrf", &csrf),
                    ("media_port_min", "80"),
                    ("media_port_max", "20000"),
                    ("log_level", "debug"),
                ],
            )
            .await;
        assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.body);
        assert!(
            a.body.contains("A port number from 1024 to 65535"),
            "{}",
            a.body
        );
        assert!(a.body.contains("value=\"80\""), "typed value kept");
        let stored = env.api.store_op(|s| s.list_settings()).await.unwrap();
        assert!(
            !stored
                .iter()
                .any(|(k, _)| k == MEDIA_PORT_MIN || k == LOG_LEVEL),
            "{stored:?}"
        );
        assert!(env.events.try_recv().is_err());

        // Good values: written together, announced, audited.
        let a = b
            .post(
                "/settings",
                &[
                    ("csrf", &csrf),
                    ("media_port_min", "12000"),
                    ("media_port_max", "20000"),
                    ("log_level", "debug"),
                    ("sip.udp", "0.0.0.0:1"),
                ],
            )
            .await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
        let stored = env.api.store_op(|s| s.list_settings()).await.unwrap();
        let get = |k: &str| {
            stored
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get(MEDIA_PORT_MIN), Some("12000"));
        assert_eq!(get(LOG_LEVEL), Some("debug"));
        assert_eq!(get(MEDIA_PORT_MAX), None, "unchanged, not written");
        assert_eq!(get("sip.udp"), None, "read-only, not written");
        assert_eq!(
            env.events.try_recv().unwrap(),
            AdminEvent::SettingsChanged {
                keys: vec![LOG_LEVEL.into(), MEDIA_PORT_MIN.into()]
            }
        );
        let page = b.get("/settings").await;
        assert!(page.body.contains("log_level"), "{}", page.body);
        assert!(
            page.body.contains("in effect now: log_level"),
            "{}",
            page.body
        );
        assert!(page.body.contains("after a restart: media_port_min"));
        assert!(page.body.contains("12000"));
        let log = env.api.store_op(|s| s.list_audit(0, 5)).await.unwrap();
        assert!(
            log.iter().any(|e| e.action == "settings.update"
                && e.detail.contains("media_port_min: 10000 → 12000")),
            "{log:?}"
        );
    }
}
