//! Live state from the signalling core: registrations (with
//! force-unregister) and active calls (with hang-up).

use askama::Template;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;

use super::{fmt_duration, fmt_time, page, unix_now, Auth, Layout, CORE_WAIT};
use crate::{Api, CallView, CoreQuery, LegView, RegistrationView};

pub(crate) fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/registrations", get(registrations))
        .route("/registrations/unregister", post(unregister))
        .route("/calls", get(calls))
        .route("/calls/hangup", post(hangup))
}

struct RegRow {
    aor: String,
    contact: String,
    transport: String,
    source: String,
    user_agent: String,
    expires: String,
    reachable: bool,
    /// Whether this row starts the rows of its AOR.
    first_of_aor: bool,
}

#[derive(Template)]
#[template(
    path = "registrations.html",
    config = "../../web-ui/templates/askama.toml"
)]
struct RegistrationsPage {
    layout: Layout,
    core_ok: bool,
    q: String,
    rows: Vec<RegRow>,
    users: usize,
}

fn matches(r: &RegistrationView, q: &str) -> bool {
    let q = q.to_ascii_lowercase();
    [&r.aor, &r.contact, &r.source, &r.user_agent]
        .iter()
        .any(|f| f.to_ascii_lowercase().contains(&q))
}

async fn registrations(
    State(api): State<Arc<Api>>,
    Extension(auth): Extension<Auth>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let q = params
        .get("q")
        .map(|q| q.trim().to_owned())
        .unwrap_or_default();
    let answer = api.ask_core(CoreQuery::Registrations, CORE_WAIT).await;
    let core_ok = answer.is_some();
    let mut regs: Vec<RegistrationView> = answer
        .unwrap_or_default()
        .into_iter()
        .filter(|r| q.is_empty() || matches(r, &q))
        .collect();
    regs.sort_by(|a, b| a.aor.cmp(&b.aor).then(a.contact.cmp(&b.contact)));
    let mut rows = Vec::with_capacity(regs.len());
    let mut users = 0;
    for (i, r) in regs.iter().enumerate() {
        let first_of_aor = i == 0 || regs[i - 1].aor != r.aor;
        users += usize::from(first_of_aor);
        rows.push(RegRow {
            aor: r.aor.clone(),
            contact: r.contact.clone(),
            transport: r.transport.to_uppercase(),
            source: r.source.clone(),
            user_agent: r.user_agent.clone(),
            expires: fmt_duration(r.expires_in),
            reachable: r.reachable,
            first_of_aor,
        });
    }
    page(&RegistrationsPage {
        layout: auth.layout(&api, "Registrations", "registrations"),
        core_ok,
        q,
        rows,
        users,
    })
}

#[derive(Debug, Deserialize)]
struct UnregisterForm {
    #[serde(default)]
    aor: String,
    /// Empty: every binding of the AOR.
    #[serde(default)]
    contact: String,
}

async fn unregister(
    State(api): State<Arc<Api>>,
    Extension(auth): Extension<Auth>,
    Form(f): Form<UnregisterForm>,
) -> Response {
    let contact = (!f.contact.is_empty()).then(|| f.contact.clone());
    let aor = f.aor.clone();
    let removed = api
        .ask_core(
            |reply| CoreQuery::Unregister {
                aor,
                contact,
                reply,
            },
            CORE_WAIT,
        )
        .await;
    match removed {
        Some(n) => {
            let what = if f.contact.is_empty() {
                format!("{} (all contacts)", f.aor)
            } else {
                format!("{} contact {}", f.aor, f.contact)
            };
            auth.audit(
                &api,
                "registration.remove",
                format!("unregistered {what}: {n} binding(s)"),
            )
            .await;
            auth.flash(&api, format!("Removed {n} registration(s) of {}.", f.aor));
        }
        None => auth.flash(
            &api,
            "The signalling core did not answer; nothing was removed.",
        ),
    }
    Redirect::to("/registrations").into_response()
}

struct LegRow {
    rx: u64,
    tx: u64,
    lost: u64,
    jitter: String,
}

impl From<&LegView> for LegRow {
    fn from(l: &LegView) -> Self {
        LegRow {
            rx: l.rx_packets,
            tx: l.tx_packets,
            lost: l.lost_packets,
            jitter: format!("{:.1}", l.jitter_ms),
        }
    }
}

struct CallRow {
    call_id: String,
    from: String,
    to: String,
    direction: String,
    trunk: String,
    state: String,
    started: String,
    /// Talk time when answered, else ringing time.
    duration: String,
    answered: bool,
    /// Not reported by the core yet.
    codec: String,
    caller: Option<LegRow>,
    callee: Option<LegRow>,
}

impl CallRow {
    fn new(c: &CallView, now: u64) -> CallRow {
        let since = c.answered_unix.unwrap_or(c.started_unix);
        CallRow {
            call_id: c.call_id.clone(),
            from: c.from.clone(),
            to: c.to.clone(),
            direction: c.direction.clone(),
            trunk: c.trunk.clone().unwrap_or_default(),
            state: c.state.clone(),
            started: fmt_time(c.started_unix as i64),
            duration: fmt_duration(now.saturating_sub(since)),
            answered: c.answered_unix.is_some(),
            codec: String::new(),
            caller: c.media.as_ref().map(|m| LegRow::from(&m[0])),
            callee: c.media.as_ref().map(|m| LegRow::from(&m[1])),
        }
    }
}

#[derive(Template)]
#[template(path = "calls.html", config = "../../web-ui/templates/askama.toml")]
struct CallsPage {
    layout: Layout,
    core_ok: bool,
    calls: Vec<CallRow>,
}

async fn calls(State(api): State<Arc<Api>>, Extension(auth): Extension<Auth>) -> Response {
    let answer = api.ask_core(CoreQuery::Calls, CORE_WAIT).await;
    let core_ok = answer.is_some();
    let mut list = answer.unwrap_or_default();
    list.sort_by_key(|c| c.started_unix);
    let now = unix_now() as u64;
    page(&CallsPage {
        layout: auth.layout(&api, "Calls", "calls"),
        core_ok,
        calls: list.iter().map(|c| CallRow::new(c, now)).collect(),
    })
}

#[derive(Debug, Deserialize)]
struct HangupForm {
    #[serde(default)]
    call_id: String,
}

async fn hangup(
    State(api): State<Arc<Api>>,
    Extension(auth): Extension<Auth>,
    Form(f): Form<HangupForm>,
) -> Response {
    let call_id = f.call_id.clone();
    let ended = api
        .ask_core(|reply| CoreQuery::Hangup { call_id, reply }, CORE_WAIT)
        .await;
    match ended {
        Some(true) => {
            auth.audit(&api, "call.hangup", format!("hung up call {}", f.call_id))
                .await;
            auth.flash(&api, "Call hung up.");
        }
        Some(false) => auth.flash(&api, "No such call: it may have ended already."),
        None => auth.flash(
            &api,
            "The signalling core did not answer; the call was not hung up.",
        ),
    }
    Redirect::to("/calls").into_response()
}
