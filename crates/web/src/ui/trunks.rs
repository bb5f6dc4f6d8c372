//! Trunks: list with the live registration state, create, edit, delete,
//! an OPTIONS test with its round-trip time, and the DIDs routed over
//! each trunk to users. Values are checked as the JSON API checks them
//! ([`TrunkDef::to_store`]); errors are shown by the field they concern.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::{
    enc, fmt_duration, fmt_time, internal_error, message, page, page_with, store_field_error, Auth,
    FieldErrors, Layout, NameQuery,
};
use crate::{Api, CoreQuery, TrunkDef, TrunkStatusView};

/// How long the test waits for the OPTIONS answer.
const PING_WAIT: Duration = Duration::from_secs(5);
/// Users offered in the DID form's suggestions.
const USER_SUGGESTIONS: u32 = 500;

/// The form inputs, in the order of the form; errors about others are
/// shown above it.
const FIELDS: [&str; 16] = [
    "name",
    "host",
    "port",
    "transport",
    "register",
    "username",
    "auth_username",
    "password",
    "expiry",
    "caller_id",
    "from_domain",
    "inbound_trust",
    "dial_patterns",
    "number_rules",
    "max_calls",
    "enabled",
];

pub(crate) fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/trunks", get(list))
        .route("/trunks/new", get(new_form).post(create))
        .route("/trunks/edit", get(edit_form).post(update))
        .route("/trunks/test", post(test))
        .route("/trunks/delete", get(confirm_delete).post(delete))
        .route("/trunks/dids/add", post(add_did))
        .route("/trunks/dids/remove", post(remove_did))
}

/// The live state as the pages show it.
#[derive(Debug, Clone)]
struct StateRow {
    /// "disabled", "registering", "registered", "failed" or "unknown"
    /// (the core did not report the trunk).
    state: String,
    /// "ok", "warn", "bad" or "muted": the badge colour.
    tone: &'static str,
    detail: String,
    expires: String,
    active_calls: u32,
}

impl StateRow {
    fn new(status: Option<&TrunkStatusView>) -> StateRow {
        match status {
            Some(s) => StateRow {
                tone: match s.state.as_str() {
                    "registered" => "ok",
                    "registering" => "warn",
                    "failed" => "bad",
                    _ => "muted",
                },
                state: s.state.clone(),
                detail: s.detail.clone().unwrap_or_default(),
                expires: s.expires_in.map(fmt_duration).unwrap_or_default(),
                active_calls: s.active_calls,
            },
            None => StateRow {
                state: "unknown".into(),
                tone: "muted",
                detail: String::new(),
                expires: String::new(),
                active_calls: 0,
            },
        }
    }
}

/// A trunk in the list.
struct ListRow {
    name: String,
    href: String,
    address: String,
    transport: String,
    /// The registration account, or empty for a trunk trusted by address.
    account: String,
    register: bool,
    dial_patterns: String,
    max_calls: String,
    dids: usize,
    enabled: bool,
    state: StateRow,
}

#[derive(Template)]
#[template(path = "trunks.html", config = "../../web-ui/templates/askama.toml")]
struct ListPage {
    layout: Layout,
    core_ok: bool,
    trunks: Vec<ListRow>,
}

fn edit_href(name: &str) -> String {
    format!("/trunks/edit?name={}", enc(name))
}

async fn list(State(api): State<Arc<Api>>, Extension(auth): Extension<Auth>) -> Response {
    let stored = api
        .store_op(|s| Ok((s.list_trunks()?, s.list_dids(None)?)))
        .await;
    let (trunks, dids) = match stored {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("trunks: {e}");
            return internal_error("The trunks could not be read.");
        }
    };
    let status = api.trunk_status().await;
    let mut per_trunk: HashMap<&str, usize> = HashMap::new();
    for d in &dids {
        *per_trunk.entry(d.trunk.as_str()).or_default() += 1;
    }
    let rows = trunks
        .iter()
        .map(|t| {
            let def = TrunkDef::from_store(t);
            ListRow {
                href: edit_href(&t.name),
                address: format!("{}:{}", def.host, def.port),
                transport: def.transport.to_uppercase(),
                account: def.username.clone().unwrap_or_default(),
                register: def.register,
                dial_patterns: def.dial_patterns.join(" "),
                max_calls: def.max_calls.map(|n| n.to_string()).unwrap_or_default(),
                dids: per_trunk.get(t.name.as_str()).copied().unwrap_or(0),
                enabled: def.enabled,
                state: StateRow::new(status.as_ref().and_then(|m| m.get(&t.name))),
                name: def.name,
            }
        })
        .collect();
    page(&ListPage {
        layout: auth.layout(&api, "Trunks", "trunks"),
        core_ok: status.is_some(),
        trunks: rows,
    })
}

/// The form's values as text: as stored, or as typed.
#[derive(Debug, Clone, Default)]
struct TrunkFields {
    /// The stored name (hidden field of the edit form: the name may
    /// change).
    original: String,
    name: String,
    host: String,
    port: String,
    transport: String,
    register: bool,
    username: String,
    auth_username: String,
    /// Whether a password is stored (never shown).
    has_password: bool,
    expiry: String,
    /// "keep", "user" or "fixed".
    caller_id_mode: String,
    caller_id_number: String,
    from_domain: String,
    /// One entry per line.
    inbound_trust: String,
    dial_patterns: String,
    number_rules: String,
    max_calls: String,
    enabled: bool,
}

impl TrunkFields {
    fn from_store(t: &store::Trunk) -> TrunkFields {
        let def = TrunkDef::from_store(t);
        let (caller_id_mode, caller_id_number) = match def.caller_id.as_str() {
            "keep" | "user" => (def.caller_id.clone(), String::new()),
            number => ("fixed".to_owned(), number.to_owned()),
        };
        TrunkFields {
            original: def.name.clone(),
            name: def.name,
            host: def.host,
            port: def.port.to_string(),
            transport: def.transport,
            register: def.register,
            username: def.username.unwrap_or_default(),
            auth_username: def.auth_username.unwrap_or_default(),
            has_password: t.registration.as_ref().is_some_and(|r| r.has_password),
            expiry: def.expiry.to_string(),
            caller_id_mode,
            caller_id_number,
            from_domain: def.from_domain.unwrap_or_default(),
            inbound_trust: def.inbound_trust.join("\n"),
            dial_patterns: def.dial_patterns.join("\n"),
            number_rules: def.number_rules.join("\n"),
            max_calls: def.max_calls.map(|n| n.to_string()).unwrap_or_default(),
            enabled: def.enabled,
        }
    }

    /// A new trunk's defaults.
    fn defaults() -> TrunkFields {
        let def = TrunkDef::new("", "");
        TrunkFields {
            port: def.port.to_string(),
            transport: def.transport,
            expiry: def.expiry.to_string(),
            caller_id_mode: def.caller_id,
            enabled: def.enabled,
            ..Default::default()
        }
    }
}

/// A DID as the trunk page lists it.
struct DidRow {
    number: String,
    user: String,
    user_href: String,
    created: String,
}

/// The result of the OPTIONS test.
struct TestResult {
    ok: bool,
    text: String,
}

/// The create and edit form; editing adds the state, the test, the DIDs
/// and the delete link.
#[derive(Template)]
#[template(
    path = "trunk_form.html",
    config = "../../web-ui/templates/askama.toml"
)]
struct FormPage {
    layout: Layout,
    editing: bool,
    t: TrunkFields,
    errors: FieldErrors,
    fields: [&'static str; 16],
    core_ok: bool,
    state: StateRow,
    test: Option<TestResult>,
    dids: Vec<DidRow>,
    did_errors: FieldErrors,
    did_number: String,
    did_user: String,
    users: Vec<String>,
}

impl FormPage {
    fn new(layout: Layout, editing: bool, t: TrunkFields) -> FormPage {
        FormPage {
            layout,
            editing,
            t,
            errors: FieldErrors::default(),
            fields: FIELDS,
            core_ok: false,
            state: StateRow::new(None),
            test: None,
            dids: Vec::new(),
            did_errors: FieldErrors::default(),
            did_number: String::new(),
            did_user: String::new(),
            users: Vec::new(),
        }
    }
}

async fn new_form(State(api): State<Arc<Api>>, Extension(auth): Extension<Auth>) -> Response {
    page(&FormPage::new(
        auth.layout(&api, "New trunk", "trunks"),
        false,
        TrunkFields::defaults(),
    ))
}

/// The fields of the create and edit forms.
#[derive(Debug, Deserialize, Default)]
struct TrunkForm {
    #[serde(default)]
    original: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    host: String,
    #[serde(default)]
    port: String,
    #[serde(default)]
    transport: String,
    /// Checkboxes: present when ticked.
    register: Option<String>,
    #[serde(default)]
    username: String,
    #[serde(default)]
    auth_username: String,
    /// Write-only: empty keeps the stored one.
    #[serde(default)]
    password: String,
    clear_password: Option<String>,
    #[serde(default)]
    expiry: String,
    #[serde(default)]
    caller_id_mode: String,
    #[serde(default)]
    caller_id_number: String,
    #[serde(default)]
    from_domain: String,
    #[serde(default)]
    inbound_trust: String,
    #[serde(default)]
    dial_patterns: String,
    #[serde(default)]
    number_rules: String,
    #[serde(default)]
    max_calls: String,
    enabled: Option<String>,
}

impl TrunkForm {
    /// The form as typed, for showing it again.
    fn echo(&self, has_password: bool) -> TrunkFields {
        TrunkFields {
            original: self.original.clone(),
            name: self.name.clone(),
            host: self.host.clone(),
            port: self.port.clone(),
            transport: self.transport.clone(),
            register: self.register.is_some(),
            username: self.username.clone(),
            auth_username: self.auth_username.clone(),
            has_password,
            expiry: self.expiry.clone(),
            caller_id_mode: self.caller_id_mode.clone(),
            caller_id_number: self.caller_id_number.clone(),
            from_domain: self.from_domain.clone(),
            inbound_trust: self.inbound_trust.clone(),
            dial_patterns: self.dial_patterns.clone(),
            number_rules: self.number_rules.clone(),
            max_calls: self.max_calls.clone(),
            enabled: self.enabled.is_some(),
        }
    }
}

fn blank_is_none(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

/// Splits a list typed one per line (or separated by commas or spaces).
fn split_list(s: &str) -> Vec<String> {
    s.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The form as a trunk definition, checked as the JSON API checks it;
/// every problem found is in `errors` (the store's checks report the
/// first one).
fn parse(f: &TrunkForm, errors: &mut FieldErrors) -> Option<store::TrunkConfig> {
    let mut def = TrunkDef::new(f.name.trim(), f.host.trim());
    match f.port.trim() {
        "" => {}
        p => match p.parse::<u16>() {
            Ok(p) if p > 0 => def.port = p,
            _ => errors.add("port", "A port number from 1 to 65535; empty for 5060."),
        },
    }
    def.transport = f.transport.trim().to_ascii_lowercase();
    def.register = f.register.is_some();
    def.username = blank_is_none(&f.username);
    def.auth_username = blank_is_none(&f.auth_username);
    def.password = (!f.password.is_empty()).then(|| f.password.clone());
    match f.expiry.trim() {
        "" => {}
        e => match e.parse::<u32>() {
            Ok(e) => def.expiry = e,
            Err(_) => errors.add("expiry", "Seconds, 60 to 86400; empty for 3600."),
        },
    }
    def.caller_id = match f.caller_id_mode.as_str() {
        "keep" | "" => "keep".to_owned(),
        "user" => "user".to_owned(),
        "fixed" => match blank_is_none(&f.caller_id_number) {
            Some(n) if n != "keep" && n != "user" => n,
            _ => {
                errors.add(
                    "caller_id",
                    "Give the number to present: digits with an optional leading +.",
                );
                "keep".to_owned()
            }
        },
        other => {
            errors.add(
                "caller_id",
                format!("`{other}` is not one of keep, user, fixed."),
            );
            "keep".to_owned()
        }
    };
    def.from_domain = blank_is_none(&f.from_domain);
    def.inbound_trust = split_list(&f.inbound_trust);
    def.dial_patterns = split_list(&f.dial_patterns);
    def.number_rules = split_list(&f.number_rules);
    match blank_is_none(&f.max_calls) {
        None => {}
        Some(n) => match n.parse::<u32>() {
            Ok(n) => def.max_calls = Some(n),
            Err(_) => errors.add(
                "max_calls",
                "A whole number of at least 1; empty for no limit.",
            ),
        },
    }
    def.enabled = f.enabled.is_some();
    match def.to_store() {
        Ok(config) => Some(config),
        Err((field, reason)) => {
            if errors.get(field).is_none() {
                errors.add(field, reason);
            }
            None
        }
    }
}

/// A store error as the form field it concerns; false when it is not
/// about the input.
fn field_error(e: &store::Error, errors: &mut FieldErrors) -> bool {
    match store_field_error(e) {
        Some((field, reason)) => {
            let field = match field {
                "registration username" => "username",
                "registration expiry" => "expiry",
                "trunk name" => "name",
                other => other,
            };
            errors.add(field, reason);
            true
        }
        None => false,
    }
}

/// What an update changed, for the audit log (never the password).
fn describe_changes(old: &store::Trunk, new: &store::Trunk, password: &str) -> String {
    let as_map = |t: &store::Trunk| match serde_json::to_value(TrunkDef::from_store(t)) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    let (a, b) = (as_map(old), as_map(new));
    let mut changes: Vec<String> = FIELDS
        .iter()
        .filter(|k| a.get(**k) != b.get(**k))
        .map(|k| match b.get(*k) {
            Some(v) => format!("{k} {v}"),
            None => format!("{k} unset"),
        })
        .collect();
    if !password.is_empty() {
        changes.push(password.to_owned());
    }
    if changes.is_empty() {
        format!("trunk {}: no change", new.name)
    } else if old.name != new.name {
        format!(
            "trunk {} (was {}): {}",
            new.name,
            old.name,
            changes.join(", ")
        )
    } else {
        format!("trunk {}: {}", new.name, changes.join(", "))
    }
}

async fn create(
    State(api): State<Arc<Api>>,
    Extension(auth): Extension<Auth>,
    Form(f): Form<TrunkForm>,
) -> Response {
    let mut errors = FieldErrors::default();
    let config = parse(&f, &mut errors);
    let retry = |errors: FieldErrors, api: &Arc<Api>| {
        let mut p = FormPage::new(
            auth.layout(api, "New trunk", "trunks"),
            false,
            f.echo(false),
        );
        p.errors = errors;
        page_with(StatusCode::UNPROCESSABLE_ENTITY, &p)
    };
    let Some(config) = config.filter(|_| errors.is_empty()) else {
        return retry(errors, &api);
    };
    match api.store_op(move |s| s.add_trunk(&config)).await {
        Ok(t) => {
            auth.audit(
                &api,
                "trunk.create",
                format!(
                    "created trunk {} ({}:{} {}{})",
                    t.name,
                    t.host,
                    t.port,
                    t.transport,
                    if t.enabled { "" } else { ", disabled" }
                ),
            )
            .await;
            auth.flash(&api, format!("Trunk {} created.", t.name));
            Redirect::to(&edit_href(&t.name)).into_response()
        }
        Err(e) => {
            let mut errors = FieldErrors::default();
            if field_error(&e, &mut errors) {
                retry(errors, &api)
            } else {
                tracing::error!("create trunk: {e}");
                internal_error("The trunk could not be created.")
            }
        }
    }
}

fn no_such_trunk(name: &str) -> Response {
    message(
        StatusCode::NOT_FOUND,
        "No such trunk",
        &format!("There is no trunk {name:?}."),
        "/trunks",
    )
}

async fn load(api: &Arc<Api>, name: &str) -> Result<store::Trunk, Response> {
    let n = name.to_owned();
    match api.store_op(move |s| s.get_trunk(&n)).await {
        Ok(Some(t)) => Ok(t),
        Ok(None) => Err(no_such_trunk(name)),
        Err(e) => {
            tracing::error!("trunk {name}: {e}");
            Err(internal_error("The trunk could not be read."))
        }
    }
}

/// The edit page of the stored trunk `t`, with what the caller sets on
/// top (`adjust`): errors, typed values, the test result.
async fn edit_page(
    api: &Arc<Api>,
    auth: &Auth,
    t: &store::Trunk,
    status: StatusCode,
    adjust: impl FnOnce(&mut FormPage),
) -> Response {
    let name = t.name.clone();
    let extra = api
        .store_op(move |s| {
            Ok((
                s.list_dids(Some(&name))?,
                s.list_users(None, 0, USER_SUGGESTIONS)?,
            ))
        })
        .await;
    let (dids, users) = match extra {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("trunk {}: {e}", t.name);
            return internal_error("The trunk's DIDs could not be read.");
        }
    };
    let states = api.trunk_status().await;
    let mut p = FormPage::new(
        auth.layout(api, &format!("Trunk {}", t.name), "trunks"),
        true,
        TrunkFields::from_store(t),
    );
    p.core_ok = states.is_some();
    p.state = StateRow::new(states.as_ref().and_then(|m| m.get(&t.name)));
    p.dids = dids
        .into_iter()
        .map(|d| DidRow {
            user_href: format!("/users/edit?name={}", enc(&d.username)),
            number: d.number,
            user: d.username,
            created: fmt_time(d.created_at),
        })
        .collect();
    p.users = users.into_iter().map(|u| u.username).collect();
    adjust(&mut p);
    page_with(status, &p)
}

async fn edit_form(
    State(api): State<Arc<Api>>,
    Extension(auth): Extension<Auth>,
    Query(q): Query<NameQuery>,
) -> Response {
    match load(&api, &q.name).await {
        Ok(t) => edit_page(&api, &auth, &t, StatusCode::OK, |_| {}).await,
        Err(resp) => resp,
    }
}

async fn update(
    State(api): State<Arc<Api>>,
    Extension(auth): Extension<Auth>,
    Form(f): Form<TrunkForm>,
) -> Response {
    let current = match load(&api, &f.original).await {
        Ok(t) => t,
        Err(resp) => return resp,
    };
    let has_password = current
        .registration
        .as_ref()
        .is_some_and(|r| r.has_password);
    let mut errors = FieldErrors::default();
    let config = parse(&f, &mut errors);
    let Some(config) = config.filter(|_| errors.is_empty()) else {
        let typed = f.echo(has_password);
        return edit_page(
            &api,
            &auth,
            &current,
            StatusCode::UNPROCESSABLE_ENTITY,
            |p| {
                p.t = typed;
                p.errors = errors;
            },
        )
        .await;
    };
    let clear = f.clear_password.is_some() && f.password.is_empty();
    let new_password = !f.password.is_empty();
    let original = current.name.clone();
    let result = api
        .store_op(move |s| {
            let mut trunk = s.update_trunk(&original, &config)?;
            if clear && trunk.registration.is_some() {
                s.set_trunk_password(&trunk.name, None)?;
                trunk = s
                    .get_trunk(&trunk.name)?
                    .ok_or_else(|| store::Error::TrunkNotFound(trunk.name.clone()))?;
            }
            Ok(trunk)
        })
        .await;
    match result {
        Ok(t) => {
            let had = has_password;
            let has = t.registration.as_ref().is_some_and(|r| r.has_password);
            let password = match (had, has) {
                _ if new_password => "password changed",
                (true, false) => "password removed",
                _ => "",
            };
            auth.audit(
                &api,
                "trunk.update",
                describe_changes(&current, &t, password),
            )
            .await;
            auth.flash(&api, format!("Trunk {} saved.", t.name));
            Redirect::to(&edit_href(&t.name)).into_response()
        }
        Err(store::Error::TrunkNotFound(name)) => no_such_trunk(&name),
        Err(e) => {
            let mut errors = FieldErrors::default();
            if field_error(&e, &mut errors) {
                let typed = f.echo(has_password);
                edit_page(
                    &api,
                    &auth,
                    &current,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    |p| {
                        p.t = typed;
                        p.errors = errors;
                    },
                )
                .await
            } else {
                tracing::error!("update trunk: {e}");
                internal_error("The trunk could not be saved.")
            }
        }
    }
}

#[derive(Debug, Deserialize)]
struct NameForm {
    #[serde(default)]
    name: String,
}

/// Sends an OPTIONS through the core and shows how it went.
async fn test(
    State(api): State<Arc<Api>>,
    Extension(auth): Extension<Auth>,
    Form(f): Form<NameForm>,
) -> Response {
    let t = match load(&api, &f.name).await {
        Ok(t) => t,
        Err(resp) => return resp,
    };
    let name = t.name.clone();
    let answer = api
        .ask_core(|reply| CoreQuery::TrunkPing { name, reply }, PING_WAIT)
        .await;
    let target = format!("{}:{} over {}", t.host, t.port, t.transport);
    let result = match answer {
        Some(Ok(ms)) => TestResult {
            ok: true,
            text: format!("OPTIONS to {target}: answered 200 in {ms} ms."),
        },
        Some(Err(why)) => TestResult {
            ok: false,
            text: format!("OPTIONS to {target}: {why}."),
        },
        None => TestResult {
            ok: false,
            text: format!(
                "OPTIONS to {target}: no answer within {} s.",
                PING_WAIT.as_secs()
            ),
        },
    };
    edit_page(&api, &auth, &t, StatusCode::OK, |p| p.test = Some(result)).await
}

#[derive(Template)]
#[template(
    path = "trunk_delete.html",
    config = "../../web-ui/templates/askama.toml"
)]
struct DeletePage {
    layout: Layout,
    name: String,
    href: String,
    dids: usize,
}

async fn confirm_delete(
    State(api): State<Arc<Api>>,
    Extension(auth): Extension<Auth>,
    Query(q): Query<NameQuery>,
) -> Response {
    let t = match load(&api, &q.name).await {
        Ok(t) => t,
        Err(resp) => return resp,
    };
    let n = t.name.clone();
    let dids = api
        .store_op(move |s| s.list_dids(Some(&n)))
        .await
        .map_or(0, |d| d.len());
    page(&DeletePage {
        layout: auth.layout(&api, &format!("Delete trunk {}", t.name), "trunks"),
        href: edit_href(&t.name),
        name: t.name,
        dids,
    })
}

async fn delete(
    State(api): State<Arc<Api>>,
    Extension(auth): Extension<Auth>,
    Form(f): Form<NameForm>,
) -> Response {
    let name = f.name.clone();
    match api.store_op(move |s| s.remove_trunk(&name)).await {
        Ok(()) => {
            auth.audit(&api, "trunk.delete", format!("deleted trunk {}", f.name))
                .await;
            auth.flash(&api, format!("Trunk {} deleted.", f.name));
            Redirect::to("/trunks").into_response()
        }
        Err(store::Error::TrunkNotFound(_)) => no_such_trunk(&f.name),
        Err(e @ store::Error::TrunkInUse { .. }) => message(
            StatusCode::CONFLICT,
            "Trunk in use",
            &format!("{e}. Remove its DIDs on the trunk page first."),
            "/trunks",
        ),
        Err(e) => {
            tracing::error!("delete trunk: {e}");
            internal_error("The trunk could not be deleted.")
        }
    }
}

#[derive(Debug, Deserialize)]
struct DidForm {
    #[serde(default)]
    trunk: String,
    #[serde(default)]
    number: String,
    #[serde(default)]
    user: String,
}

async fn add_did(
    State(api): State<Arc<Api>>,
    Extension(auth): Extension<Auth>,
    Form(f): Form<DidForm>,
) -> Response {
    let t = match load(&api, &f.trunk).await {
        Ok(t) => t,
        Err(resp) => return resp,
    };
    let number: String = f.number.chars().filter(|c| !c.is_whitespace()).collect();
    let user = f.user.trim().to_owned();
    let mut errors = FieldErrors::default();
    if number.is_empty() {
        errors.add("number", "Required: the number as the provider sends it.");
    }
    if user.is_empty() {
        errors.add("user", "Required: the user whose phones ring.");
    }
    if errors.is_empty() {
        let (n, tr, u) = (number.clone(), t.name.clone(), user.clone());
        match api.store_op(move |s| s.add_did(&n, &tr, &u)).await {
            Ok(d) => {
                auth.audit(
                    &api,
                    "did.create",
                    format!(
                        "DID {} on trunk {} routed to {}",
                        d.number, d.trunk, d.username
                    ),
                )
                .await;
                auth.flash(&api, format!("DID {} routed to {}.", d.number, d.username));
                return Redirect::to(&edit_href(&t.name)).into_response();
            }
            Err(e @ store::Error::DidExists(_)) => errors.add("number", e.to_string()),
            Err(e @ store::Error::UserNotFound(_)) => errors.add("user", e.to_string()),
            Err(store::Error::Invalid { field, reason }) => errors.add(field, reason),
            Err(store::Error::TrunkNotFound(name)) => return no_such_trunk(&name),
            Err(e) => {
                tracing::error!("add DID: {e}");
                return internal_error("The DID could not be added.");
            }
        }
    }
    edit_page(&api, &auth, &t, StatusCode::UNPROCESSABLE_ENTITY, |p| {
        p.did_errors = errors;
        p.did_number = f.number;
        p.did_user = f.user;
    })
    .await
}

async fn remove_did(
    State(api): State<Arc<Api>>,
    Extension(auth): Extension<Auth>,
    Form(f): Form<DidForm>,
) -> Response {
    let number = f.number.clone();
    match api.store_op(move |s| s.remove_did(&number)).await {
        Ok(()) => {
            auth.audit(
                &api,
                "did.delete",
                format!("DID {} on trunk {} removed", f.number, f.trunk),
            )
            .await;
            auth.flash(&api, format!("DID {} removed.", f.number));
        }
        Err(store::Error::DidNotFound(_)) => {
            auth.flash(&api, format!("DID {} was already gone.", f.number));
        }
        Err(e) => {
            tracing::error!("remove DID: {e}");
            return internal_error("The DID could not be removed.");
        }
    }
    Redirect::to(&edit_href(&f.trunk)).into_response()
}

#[cfg(test)]
mod tests {
    use super::super::tests::{env, Browser};
    use super::*;

    fn fields<'a>(csrf: &'a str, over: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut f = vec![
            ("csrf", csrf),
            ("name", "carrier"),
            ("host", "sip.example.net"),
            ("port", "5060"),
            ("transport", "udp"),
            ("register", "1"),
            ("username", "acct"),
            ("auth_username", ""),
            ("password", "trunk-secret"),
            ("expiry", "600"),
            ("caller_id_mode", "fixed"),
            ("caller_id_number", "+4930123456"),
            ("from_domain", ""),
            ("inbound_trust", "192.0.2.0/24\n2001:DB8::/32"),
            ("dial_patterns", "0\n00 +"),
            ("number_rules", "00>+\n0>+4930"),
            ("max_calls", "10"),
            ("enabled", "1"),
        ];
        for (k, v) in over {
            match f.iter_mut().find(|(key, _)| key == k) {
                Some(e) => e.1 = v,
                None => f.push((k, v)),
            }
        }
        f
    }

    #[tokio::test]
    async fn trunk_pages() {
        let env = env();
        let mut b = Browser::ready(&env, "192.0.2.1").await;
        let page = b.get("/trunks").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(page.body.contains("No trunks yet"), "{}", page.body);
        let form = b.get("/trunks/new").await;
        assert_eq!(form.status, StatusCode::OK, "{}", form.body);
        let csrf = form.csrf();

        // A bad transport: the error by its field, nothing stored.
        let a = b
            .post("/trunks/new", &fields(&csrf, &[("transport", "sctp")]))
            .await;
        assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.body);
        let at = a
            .body
            .find("id=\"transport\"")
            .expect("the transport field");
        let error = a.body[at..].find("field-error").expect("an error") + at;
        assert!(
            a.body[error..].starts_with("field-error\">`sctp` is not one of"),
            "{}",
            &a.body[at..]
        );
        assert!(a.body.contains("value=\"sip.example.net\""), "typed kept");
        assert!(!a.body.contains("trunk-secret"), "password not echoed");
        let stored = env.api.store_op(|s| s.list_trunks()).await.unwrap();
        assert!(stored.is_empty());
        // Other fields' errors, each by its field.
        let a = b
            .post(
                "/trunks/new",
                &fields(&csrf, &[("port", "99999"), ("number_rules", "0049")]),
            )
            .await;
        assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            a.body.contains("A port number from 1 to 65535"),
            "{}",
            a.body
        );
        assert!(a.body.contains("not of the form"), "{}", a.body);

        let a = b.post("/trunks/new", &fields(&csrf, &[])).await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
        assert_eq!(a.location(), "/trunks/edit?name=carrier");
        let t = env
            .api
            .store_op(|s| s.get_trunk("carrier"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(t.inbound_trust, ["192.0.2.0/24", "2001:db8::/32"]);
        assert_eq!(t.dial_patterns, ["0", "00", "+"]);
        assert_eq!(t.number_rules.len(), 2);
        assert_eq!(
            t.caller_id,
            store::CallerIdPolicy::Fixed("+4930123456".into())
        );
        assert_eq!(t.max_calls, Some(10));
        assert!(t.registration.as_ref().unwrap().has_password);
        let secret = || async {
            env.api
                .store_op(|s| s.trunk_secret("carrier"))
                .await
                .unwrap()
        };
        assert_eq!(secret().await.as_deref(), Some("trunk-secret"));

        let page = b.get("/trunks/edit?name=carrier").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(page.body.contains("Trunk carrier created."));
        assert!(!page.body.contains("trunk-secret"), "never shown");
        assert!(page.body.contains("00&gt;+"), "{}", page.body);
        let list = b.get("/trunks").await;
        assert!(list.body.contains("sip.example.net:5060"), "{}", list.body);
        assert!(
            list.body.contains("unknown"),
            "the fake core knows no trunk"
        );

        // Saved with the password empty: kept; the name can change.
        let a = b
            .post(
                "/trunks/edit",
                &fields(
                    &csrf,
                    &[("original", "carrier"), ("password", ""), ("max_calls", "")],
                ),
            )
            .await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
        assert_eq!(secret().await.as_deref(), Some("trunk-secret"));
        let t = env
            .api
            .store_op(|s| s.get_trunk("carrier"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(t.max_calls, None);
        let a = b
            .post(
                "/trunks/edit",
                &fields(
                    &csrf,
                    &[
                        ("original", "carrier"),
                        ("password", ""),
                        ("clear_password", "1"),
                        ("expiry", "5"),
                    ],
                ),
            )
            .await;
        assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(a.body.contains("must be 60 to 86400"), "{}", a.body);
        assert_eq!(secret().await.as_deref(), Some("trunk-secret"), "unchanged");

        // The test: the fake core answers in 12 ms.
        let a = b
            .post("/trunks/test", &[("csrf", &csrf), ("name", "carrier")])
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        assert!(a.body.contains("answered 200 in 12 ms"), "{}", a.body);

        // DIDs: added, refused with the reason by the field, removed.
        let realm = env.api.realm.clone();
        env.api
            .store_op(move |s| {
                s.add_user(&store::NewUser::new(
                    "alice",
                    &realm,
                    "0".repeat(32),
                    "0".repeat(64),
                ))
            })
            .await
            .unwrap();
        let did = |number: &'static str, user: &'static str| {
            vec![
                ("csrf", csrf.as_str()),
                ("trunk", "carrier"),
                ("number", number),
                ("user", user),
            ]
        };
        let a = b.post("/trunks/dids/add", &did("+4930100", "alice")).await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
        let a = b.post("/trunks/dids/add", &did("+4930100", "alice")).await;
        assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(a.body.contains("already exists"), "{}", a.body);
        let a = b.post("/trunks/dids/add", &did("+4930101", "nobody")).await;
        assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
        let at = a.body.find("id=\"did-user\"").unwrap();
        assert!(a.body[at..].contains("nobody&#34; not found"), "{}", a.body);
        let page = b.get("/trunks/edit?name=carrier").await;
        assert!(page.body.contains("+4930100"), "{}", page.body);
        // A trunk with DIDs is not deleted.
        let a = b
            .post("/trunks/delete", &[("csrf", &csrf), ("name", "carrier")])
            .await;
        assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.body);
        let a = b.post("/trunks/dids/remove", &did("+4930100", "")).await;
        assert_eq!(a.status, StatusCode::SEE_OTHER);
        let dids = env.api.store_op(|s| s.list_dids(None)).await.unwrap();
        assert!(dids.is_empty());

        let confirm = b.get("/trunks/delete?name=carrier").await;
        assert_eq!(confirm.status, StatusCode::OK);
        let a = b
            .post("/trunks/delete", &[("csrf", &csrf), ("name", "carrier")])
            .await;
        assert_eq!(a.location(), "/trunks");
        assert!(env
            .api
            .store_op(|s| s.list_trunks())
            .await
            .unwrap()
            .is_empty());
        let log = env.api.store_op(|s| s.list_audit(0, 20)).await.unwrap();
        for action in [
            "trunk.create",
            "trunk.update",
            "did.create",
            "did.delete",
            "trunk.delete",
        ] {
            assert!(log.iter().any(|e| e.action == action), "{action}: {log:?}");
        }
        assert!(!log.iter().any(|e| e.detail.contains("trunk-secret")));
    }
}
