//! SIP users: list with search, create, edit, enable/disable, password
//! reset, delete.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Extension, Form, Router};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;

use super::auth::random_password;
use super::{
    enc, internal_error, message, page, page_number, page_with, store_field_error, Auth,
    FieldErrors, Layout, NameQuery, Pager,
};
use crate::{Api, CoreQuery};

/// Rows per page of the list.
const PER_PAGE: u32 = 50;
/// Shortest SIP password accepted (as the JSON API).
const MIN_SIP_PASSWORD: usize = 8;
/// Length of generated SIP passwords.
const GENERATED: usize = 16;

pub(crate) fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/users", get(list))
        .route("/users/new", get(new_form).post(create))
        .route("/users/edit", get(edit_form).post(update))
        .route("/users/password", axum::routing::post(reset_password))
        .route("/users/enable", axum::routing::post(enable))
        .route("/users/disable", axum::routing::post(disable))
        .route("/users/delete", get(confirm_delete).post(delete))
}

/// A user as the list and the forms show it.
#[derive(Debug, Clone, Default)]
struct UserRow {
    username: String,
    extension: String,
    display_name: String,
    caller_id: String,
    max_calls: String,
    allowed: String,
    enabled: bool,
    /// `/users/edit?name=...`
    edit_href: String,
}

impl From<store::User> for UserRow {
    fn from(u: store::User) -> Self {
        UserRow {
            edit_href: format!("/users/edit?name={}", enc(&u.username)),
            username: u.username,
            extension: u.extension.unwrap_or_default(),
            display_name: u.display_name.unwrap_or_default(),
            caller_id: u.caller_id.unwrap_or_default(),
            max_calls: u.max_calls.map(|n| n.to_string()).unwrap_or_default(),
            allowed: u.allowed.as_str().to_owned(),
            enabled: u.enabled,
        }
    }
}

#[derive(Template)]
#[template(path = "users.html", config = "../../web-ui/templates/askama.toml")]
struct ListPage {
    layout: Layout,
    q: String,
    users: Vec<UserRow>,
    pager: Pager,
}

async fn list(
    State(api): State<Arc<Api>>,
    Extension(auth): Extension<Auth>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let q = params
        .get("q")
        .map(|q| q.trim().to_owned())
        .unwrap_or_default();
    let page_no = page_number(params.get("page").map(String::as_str));
    let filter = (!q.is_empty()).then(|| q.clone());
    let offset = (page_no - 1).saturating_mul(PER_PAGE);
    let result = api
        .store_op(move |s| {
            Ok((
                s.list_users(filter.as_deref(), offset, PER_PAGE)?,
                s.count_users(filter.as_deref())?,
            ))
        })
        .await;
    let (users, total) = match result {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("users: {e}");
            return internal_error("The users could not be read.");
        }
    };
    let base = if q.is_empty() {
        "/users?".to_owned()
    } else {
        format!("/users?q={}&", enc(&q))
    };
    page(&ListPage {
        layout: auth.layout(&api, "Users", "users"),
        pager: Pager::new(&base, page_no, PER_PAGE, total, users.len()),
        users: users.into_iter().map(UserRow::from).collect(),
        q,
    })
}

/// The create and edit form.
#[derive(Template)]
#[template(path = "user_form.html", config = "../../web-ui/templates/askama.toml")]
struct FormPage {
    layout: Layout,
    /// False: the create form.
    editing: bool,
    user: UserRow,
    scopes: [&'static str; 3],
    errors: FieldErrors,
    /// Errors of the password reset form.
    password_errors: FieldErrors,
    min_password: usize,
}

impl FormPage {
    fn new(layout: Layout, editing: bool, user: UserRow) -> FormPage {
        FormPage {
            layout,
            editing,
            user,
            scopes: store::DestinationScope::ALL.map(|d| d.as_str()),
            errors: FieldErrors::default(),
            password_errors: FieldErrors::default(),
            min_password: MIN_SIP_PASSWORD,
        }
    }
}

async fn new_form(State(api): State<Arc<Api>>, Extension(auth): Extension<Auth>) -> Response {
    let user = UserRow {
        enabled: true,
        allowed: store::DestinationScope::default().as_str().to_owned(),
        ..Default::default()
    };
    page(&FormPage::new(
        auth.layout(&api, "New user", "users"),
        false,
        user,
    ))
}

/// The fields of the create and edit forms.
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
    #[serde(default)]
    caller_id: String,
    #[serde(default)]
    max_calls: String,
    #[serde(default)]
    allowed: String,
    /// A checkbox: present when ticked.
    enabled: Option<String>,
}

/// The profile fields of a form, checked; errors name the input.
struct Profile {
    extension: Option<String>,
    display_name: Option<String>,
    caller_id: Option<String>,
    max_calls: Option<u32>,
    allowed: store::DestinationScope,
    enabled: bool,
}

fn blank_is_none(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

fn parse_profile(f: &UserForm, errors: &mut FieldErrors) -> Profile {
    let caller_id = blank_is_none(&f.caller_id);
    if let Some(id) = &caller_id {
        let digits = id.strip_prefix('+').unwrap_or(id);
        if digits.is_empty() || id.len() > 32 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            errors.add(
                "caller_id",
                "Digits with an optional leading +, at most 32; leave empty to use the extension.",
            );
        }
    }
    let max_calls = match blank_is_none(&f.max_calls) {
        None => None,
        Some(n) => match n.parse::<u32>() {
            Ok(n) if n >= 1 => Some(n),
            _ => {
                errors.add(
                    "max_calls",
                    "A whole number of at least 1; leave empty for no limit.",
                );
                None
            }
        },
    };
    let allowed = match f.allowed.parse::<store::DestinationScope>() {
        Ok(a) => a,
        Err(_) => {
            errors.add("allowed", "Choose local, national or international.");
            store::DestinationScope::default()
        }
    };
    Profile {
        extension: blank_is_none(&f.extension),
        display_name: blank_is_none(&f.display_name),
        caller_id,
        max_calls,
        allowed,
        enabled: f.enabled.is_some(),
    }
}

/// The form as typed, for showing it again with errors.
fn echo(f: &UserForm) -> UserRow {
    UserRow {
        edit_href: format!("/users/edit?name={}", enc(&f.username)),
        username: f.username.clone(),
        extension: f.extension.clone(),
        display_name: f.display_name.clone(),
        caller_id: f.caller_id.clone(),
        max_calls: f.max_calls.clone(),
        allowed: f.allowed.clone(),
        enabled: f.enabled.is_some(),
    }
}

/// Adds a store error to the form's errors; false when it is not about
/// the input.
fn field_error(e: &store::Error, errors: &mut FieldErrors) -> bool {
    match store_field_error(e) {
        Some((field, reason)) => {
            errors.add(field, reason);
            true
        }
        None => false,
    }
}

async fn create(
    State(api): State<Arc<Api>>,
    Extension(auth): Extension<Auth>,
    Form(f): Form<UserForm>,
) -> Response {
    let mut errors = FieldErrors::default();
    let profile = parse_profile(&f, &mut errors);
    let username = f.username.trim().to_owned();
    if username.is_empty() {
        errors.add("username", "Required.");
    }
    let generated = f.password.is_empty();
    let password = if generated {
        match random_password(GENERATED) {
            Ok(p) => p,
            Err(_) => return internal_error("No random password could be made."),
        }
    } else {
        f.password.clone()
    };
    if password.chars().count() < MIN_SIP_PASSWORD {
        errors.add(
            "password",
            format!("Use at least {MIN_SIP_PASSWORD} characters, or leave empty to generate one."),
        );
    }
    let retry = |errors: FieldErrors, api: &Arc<Api>| {
        let mut p = FormPage::new(auth.layout(api, "New user", "users"), false, echo(&f));
        p.errors = errors;
        page_with(StatusCode::UNPROCESSABLE_ENTITY, &p)
    };
    let ha1 = sip::digest::StoredHa1::from_password(&username, &api.realm, &password);
    let mut user =
        store::NewUser::new(&username, &api.realm, ha1.md5.as_str(), ha1.sha256.as_str());
    user.extension = profile.extension;
    user.display_name = profile.display_name;
    user.caller_id = profile.caller_id;
    user.max_calls = profile.max_calls;
    user.allowed = profile.allowed;
    user.enabled = profile.enabled;
    // The store's own checks, shown together with the form's.
    if let Err(e) = user.validate() {
        if errors
            .get(store_field_error(&e).map_or("", |(f, _)| f))
            .is_none()
        {
            field_error(&e, &mut errors);
        }
    }
    if !errors.is_empty() {
        return retry(errors, &api);
    }
    let result = api.store_op(move |s| s.add_user(&user)).await;
    match result {
        Ok(u) => {
            auth.audit(
                &api,
                "user.create",
                format!(
                    "created user {} (extension {}, {})",
                    u.username,
                    u.extension.as_deref().unwrap_or("none"),
                    if u.enabled { "enabled" } else { "disabled" }
                ),
            )
            .await;
            let note = if generated {
                format!(
                    "User {} created. SIP password (shown only now): {password}",
                    u.username
                )
            } else {
                format!("User {} created.", u.username)
            };
            auth.flash(&api, note);
            Redirect::to(&format!("/users/edit?name={}", enc(&u.username))).into_response()
        }
        Err(e) => {
            let mut errors = FieldErrors::default();
            if field_error(&e, &mut errors) {
                retry(errors, &api)
            } else {
                tracing::error!("create user: {e}");
                internal_error("The user could not be created.")
            }
        }
    }
}

async fn load(api: &Arc<Api>, name: &str) -> Result<store::User, Response> {
    let n = name.to_owned();
    match api.store_op(move |s| s.get_user_by_name(&n)).await {
        Ok(Some(u)) => Ok(u),
        Ok(None) => Err(message(
            StatusCode::NOT_FOUND,
            "No such user",
            &format!("There is no user {name:?}."),
            "/users",
        )),
        Err(e) => {
            tracing::error!("user {name}: {e}");
            Err(internal_error("The user could not be read."))
        }
    }
}

async fn edit_form(
    State(api): State<Arc<Api>>,
    Extension(auth): Extension<Auth>,
    Query(q): Query<NameQuery>,
) -> Response {
    match load(&api, &q.name).await {
        Ok(u) => page(&FormPage::new(
            auth.layout(&api, &format!("User {}", u.username), "users"),
            true,
            u.into(),
        )),
        Err(resp) => resp,
    }
}

async fn update(
    State(api): State<Arc<Api>>,
    Extension(auth): Extension<Auth>,
    Form(f): Form<UserForm>,
) -> Response {
    let current = match load(&api, &f.username).await {
        Ok(u) => u,
        Err(resp) => return resp,
    };
    let mut errors = FieldErrors::default();
    let p = parse_profile(&f, &mut errors);
    let retry = |errors: FieldErrors, api: &Arc<Api>| {
        let mut page = FormPage::new(
            auth.layout(api, &format!("User {}", f.username), "users"),
            true,
            echo(&f),
        );
        page.errors = errors;
        page_with(StatusCode::UNPROCESSABLE_ENTITY, &page)
    };
    if !errors.is_empty() {
        return retry(errors, &api);
    }
    let name = f.username.clone();
    let disabling = current.enabled && !p.enabled;
    let result = api
        .store_op(move |s| {
            s.update_user(
                &name,
                &store::UserUpdate {
                    extension: Some(p.extension),
                    display_name: Some(p.display_name),
                    enabled: Some(p.enabled),
                    caller_id: Some(p.caller_id),
                    max_calls: Some(p.max_calls),
                    allowed: Some(p.allowed),
                },
            )
        })
        .await;
    match result {
        Ok(u) => {
            auth.audit(&api, "user.update", describe_changes(&current, &u))
                .await;
            if disabling {
                drop_registrations(&api, &u.username).await;
            }
            auth.flash(&api, format!("User {} saved.", u.username));
            Redirect::to(&format!("/users/edit?name={}", enc(&u.username))).into_response()
        }
        Err(e) => {
            let mut errors = FieldErrors::default();
            if field_error(&e, &mut errors) {
                retry(errors, &api)
            } else {
                tracing::error!("update user: {e}");
                internal_error("The user could not be saved.")
            }
        }
    }
}

/// What an update changed, for the audit log.
fn describe_changes(old: &store::User, new: &store::User) -> String {
    fn show<T: std::fmt::Display>(v: &Option<T>) -> String {
        v.as_ref().map_or_else(|| "none".into(), |v| v.to_string())
    }
    let mut changes = Vec::new();
    if old.extension != new.extension {
        changes.push(format!("extension {}", show(&new.extension)));
    }
    if old.display_name != new.display_name {
        changes.push(format!("display name {}", show(&new.display_name)));
    }
    if old.caller_id != new.caller_id {
        changes.push(format!("caller ID {}", show(&new.caller_id)));
    }
    if old.max_calls != new.max_calls {
        changes.push(format!("max calls {}", show(&new.max_calls)));
    }
    if old.allowed != new.allowed {
        changes.push(format!("allowed {}", new.allowed));
    }
    if old.enabled != new.enabled {
        changes.push(if new.enabled { "enabled" } else { "disabled" }.to_owned());
    }
    if changes.is_empty() {
        format!("user {}: no change", new.username)
    } else {
        format!("user {}: {}", new.username, changes.join(", "))
    }
}

/// Asks the core to drop the user's live registrations (best effort).
async fn drop_registrations(api: &Arc<Api>, username: &str) -> Option<usize> {
    let aor = format!("sip:{username}@{}", api.realm);
    api.ask_core(
        |reply| CoreQuery::Unregister {
            aor,
            contact: None,
            reply,
        },
        super::CORE_WAIT,
    )
    .await
}

#[derive(Debug, Deserialize)]
struct PasswordForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm: String,
}

async fn reset_password(
    State(api): State<Arc<Api>>,
    Extension(auth): Extension<Auth>,
    Form(f): Form<PasswordForm>,
) -> Response {
    let user = match load(&api, &f.username).await {
        Ok(u) => u,
        Err(resp) => return resp,
    };
    let generated = f.password.is_empty() && f.confirm.is_empty();
    let mut errors = FieldErrors::default();
    let password = if generated {
        match random_password(GENERATED) {
            Ok(p) => p,
            Err(_) => return internal_error("No random password could be made."),
        }
    } else if f.password.chars().count() < MIN_SIP_PASSWORD {
        errors.add(
            "password",
            format!(
                "Use at least {MIN_SIP_PASSWORD} characters, or leave both empty to generate one."
            ),
        );
        String::new()
    } else if f.password != f.confirm {
        errors.add("confirm", "The two passwords differ.");
        String::new()
    } else {
        f.password.clone()
    };
    if !errors.is_empty() {
        let mut page = FormPage::new(
            auth.layout(&api, &format!("User {}", user.username), "users"),
            true,
            user.into(),
        );
        page.password_errors = errors;
        return page_with(StatusCode::UNPROCESSABLE_ENTITY, &page);
    }
    let (name, realm, pw) = (user.username.clone(), api.realm.clone(), password.clone());
    let result = api
        .store_op(move |s| {
            let ha1 = sip::digest::StoredHa1::from_password(&name, &realm, &pw);
            s.set_password(&name, &ha1.md5, &ha1.sha256, &realm)
        })
        .await;
    if let Err(e) = result {
        tracing::error!("reset password: {e}");
        return internal_error("The password could not be saved.");
    }
    auth.audit(
        &api,
        "user.password",
        format!("SIP password of user {} reset", user.username),
    )
    .await;
    let note = if generated {
        format!(
            "New SIP password of {} (shown only now): {password}",
            user.username
        )
    } else {
        format!("SIP password of {} changed.", user.username)
    };
    auth.flash(&api, note);
    Redirect::to(&format!("/users/edit?name={}", enc(&user.username))).into_response()
}

#[derive(Debug, Deserialize)]
struct NameForm {
    #[serde(default)]
    username: String,
}

async fn set_enabled(api: Arc<Api>, auth: Auth, username: String, enabled: bool) -> Response {
    let name = username.clone();
    let result = api
        .store_op(move |s| {
            s.update_user(
                &name,
                &store::UserUpdate {
                    enabled: Some(enabled),
                    ..Default::default()
                },
            )
        })
        .await;
    match result {
        Ok(u) => {
            let word = if enabled { "enabled" } else { "disabled" };
            auth.audit(
                &api,
                if enabled {
                    "user.enable"
                } else {
                    "user.disable"
                },
                format!("user {} {word}", u.username),
            )
            .await;
            if !enabled {
                drop_registrations(&api, &u.username).await;
            }
            auth.flash(&api, format!("User {} {word}.", u.username));
            Redirect::to("/users").into_response()
        }
        Err(store::Error::UserNotFound(_)) => message(
            StatusCode::NOT_FOUND,
            "No such user",
            &format!("There is no user {username:?}."),
            "/users",
        ),
        Err(e) => {
            tracing::error!("enable user: {e}");
            internal_error("The user could not be changed.")
        }
    }
}

async fn enable(
    State(api): State<Arc<Api>>,
    Extension(auth): Extension<Auth>,
    Form(f): Form<NameForm>,
) -> Response {
    set_enabled(api, auth, f.username, true).await
}

async fn disable(
    State(api): State<Arc<Api>>,
    Extension(auth): Extension<Auth>,
    Form(f): Form<NameForm>,
) -> Response {
    set_enabled(api, auth, f.username, false).await
}

#[derive(Template)]
#[template(
    path = "user_delete.html",
    config = "../../web-ui/templates/askama.toml"
)]
struct DeletePage {
    layout: Layout,
    user: UserRow,
}

async fn confirm_delete(
    State(api): State<Arc<Api>>,
    Extension(auth): Extension<Auth>,
    Query(q): Query<NameQuery>,
) -> Response {
    match load(&api, &q.name).await {
        Ok(u) => page(&DeletePage {
            layout: auth.layout(&api, &format!("Delete user {}", u.username), "users"),
            user: u.into(),
        }),
        Err(resp) => resp,
    }
}

async fn delete(
    State(api): State<Arc<Api>>,
    Extension(auth): Extension<Auth>,
    Form(f): Form<NameForm>,
) -> Response {
    let name = f.username.clone();
    let aor = format!("sip:{name}@{}", api.realm);
    let result = api
        .store_op(move |s| {
            s.remove_user(&name)?;
            s.remove_all_bindings(&aor)
        })
        .await;
    match result {
        Ok(_) => {
            auth.audit(&api, "user.delete", format!("deleted user {}", f.username))
                .await;
            drop_registrations(&api, &f.username).await;
            auth.flash(&api, format!("User {} deleted.", f.username));
            Redirect::to("/users").into_response()
        }
        Err(store::Error::UserNotFound(_)) => message(
            StatusCode::NOT_FOUND,
            "No such user",
            &format!("There is no user {:?}.", f.username),
            "/users",
        ),
        Err(e) => {
            tracing::error!("delete user: {e}");
            internal_error("The user could not be deleted.")
        }
    }
}
