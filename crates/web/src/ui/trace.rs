//! SIP trace: start and stop a trace of one user or one Call-ID and watch
//! its messages arrive, like sngrep. The list polls
//! `/sip-trace/entries.json` (behind the login) every second; clicking a
//! message shows it whole. Off by default; the buffer is bounded
//! ([`MAX_ENTRIES`] messages, [`MAX_BYTES`] bytes).

use askama::Template;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Json, Router};
use serde::Deserialize;
use std::sync::Arc;

use super::{page_with, Auth, FieldErrors, Layout};
use crate::trace::{TraceEntry, TraceFilter, MAX_BYTES, MAX_ENTRIES};
use crate::Api;

const TRACE_JS: &str = include_str!("../../../../web-ui/static/trace.js");
const TRACE_CSS: &str = include_str!("../../../../web-ui/static/trace.css");

/// Entries one poll returns at most; the page asks again when it got
/// this many.
const POLL_LIMIT: usize = 500;
/// Entries the page itself lists (the newest), for browsers without
/// JavaScript; the script then polls for what follows.
const PAGE_ENTRIES: usize = 200;
/// Longest user or Call-ID accepted as a filter.
const MAX_FILTER: usize = 256;

pub(crate) fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/sip-trace", get(show))
        .route("/sip-trace/entries.json", get(entries))
        .route("/sip-trace/start", post(start))
        .route("/sip-trace/stop", post(stop))
}

/// The page's script and styles; public like the other static assets.
pub(crate) fn asset_routes() -> Router<Arc<Api>> {
    fn asset(content_type: &'static str, body: &'static str) -> Response {
        (
            [
                (header::CONTENT_TYPE, content_type),
                (header::CACHE_CONTROL, "public, max-age=3600"),
            ],
            body,
        )
            .into_response()
    }
    Router::new()
        .route(
            "/static/trace.js",
            get(|| async { asset("text/javascript; charset=utf-8", TRACE_JS) }),
        )
        .route(
            "/static/trace.css",
            get(|| async { asset("text/css; charset=utf-8", TRACE_CSS) }),
        )
}

/// A message as the list shows it.
struct EntryRow {
    seq: u64,
    time: String,
    inbound: bool,
    transport: String,
    peer: String,
    summary: String,
    message: String,
}

impl From<TraceEntry> for EntryRow {
    fn from(e: TraceEntry) -> Self {
        EntryRow {
            seq: e.seq,
            time: clock(e.at_ms),
            inbound: e.direction == "in",
            transport: e.transport.to_uppercase(),
            peer: e.peer,
            summary: e.summary,
            message: e.message,
        }
    }
}

/// `HH:MM:SS.mmm` (UTC) of unix milliseconds.
fn clock(ms: u64) -> String {
    let secs = ms / 1000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60,
        ms % 1000
    )
}

#[derive(Template)]
#[template(path = "sip_trace.html", config = "../../web-ui/templates/askama.toml")]
struct TracePage {
    layout: Layout,
    enabled: bool,
    /// The running filter, or what was typed.
    user: String,
    call_id: String,
    errors: FieldErrors,
    entries: Vec<EntryRow>,
    /// Entries kept in all (the page lists the newest).
    kept: usize,
    /// The last `seq` listed; the script polls after it.
    last_seq: u64,
    max_entries: usize,
    max_mib: usize,
}

fn render(
    api: &Api,
    auth: &Auth,
    typed: Option<(String, String)>,
    errors: FieldErrors,
) -> Response {
    let filter = api.trace.filter();
    let enabled = filter.is_some();
    let (user, call_id) = typed.unwrap_or_else(|| {
        let f = filter.unwrap_or_default();
        (f.user.unwrap_or_default(), f.call_id.unwrap_or_default())
    });
    let all = api.trace.since(0, MAX_ENTRIES);
    let kept = all.len();
    let last_seq = all.last().map_or(0, |e| e.seq);
    let entries = all
        .into_iter()
        .skip(kept.saturating_sub(PAGE_ENTRIES))
        .map(EntryRow::from)
        .collect();
    let status = if errors.is_empty() {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::UNPROCESSABLE_ENTITY
    };
    page_with(
        status,
        &TracePage {
            layout: auth.layout(api, "SIP trace", "sip-trace"),
            enabled,
            user,
            call_id,
            errors,
            entries,
            kept,
            last_seq,
            max_entries: MAX_ENTRIES,
            max_mib: MAX_BYTES >> 20,
        },
    )
}

async fn show(State(api): State<Arc<Api>>, Extension(auth): Extension<Auth>) -> Response {
    render(&api, &auth, None, FieldErrors::default())
}

#[derive(Debug, Deserialize)]
struct EntriesQuery {
    #[serde(default)]
    after: u64,
}

/// The trace state and the entries after `after`, oldest first.
async fn entries(State(api): State<Arc<Api>>, Query(q): Query<EntriesQuery>) -> Response {
    let entries = api.trace.since(q.after, POLL_LIMIT);
    Json(serde_json::json!({
        "enabled": api.trace.enabled(),
        "filter": api.trace.filter(),
        "more": entries.len() == POLL_LIMIT,
        "max_entries": MAX_ENTRIES,
        "entries": entries,
    }))
    .into_response()
}

#[derive(Debug, Deserialize)]
struct StartForm {
    #[serde(default)]
    user: String,
    #[serde(default)]
    call_id: String,
}

async fn start(
    State(api): State<Arc<Api>>,
    Extension(auth): Extension<Auth>,
    Form(f): Form<StartForm>,
) -> Response {
    let user = f.user.trim().to_owned();
    // `sip:alice@example.com` or `alice@example.com` mean user alice.
    let user = user
        .strip_prefix("sip:")
        .unwrap_or(&user)
        .split('@')
        .next()
        .unwrap_or_default()
        .to_owned();
    let call_id = f.call_id.trim().to_owned();
    let mut errors = FieldErrors::default();
    if user.is_empty() && call_id.is_empty() {
        errors.add(
            "user",
            "Give a user or a Call-ID: tracing everything would slow every call.",
        );
    }
    for (field, value) in [("user", &user), ("call_id", &call_id)] {
        if value.len() > MAX_FILTER || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
            errors.add(
                field,
                format!("At most {MAX_FILTER} characters, without spaces."),
            );
        }
    }
    if !errors.is_empty() {
        return render(&api, &auth, Some((f.user, f.call_id)), errors);
    }
    let filter = TraceFilter {
        user: (!user.is_empty()).then(|| user.clone()),
        call_id: (!call_id.is_empty()).then(|| call_id.clone()),
    };
    let what = describe(&filter);
    api.trace.configure(Some(filter));
    auth.audit(&api, "trace.start", format!("SIP trace started for {what}"))
        .await;
    auth.flash(&api, format!("Tracing {what}."));
    Redirect::to("/sip-trace").into_response()
}

fn describe(f: &TraceFilter) -> String {
    match (&f.user, &f.call_id) {
        (Some(u), Some(c)) => format!("user {u}, Call-ID {c}"),
        (Some(u), None) => format!("user {u}"),
        (None, Some(c)) => format!("Call-ID {c}"),
        (None, None) => "nothing".into(),
    }
}

async fn stop(State(api): State<Arc<Api>>, Extension(auth): Extension<Auth>) -> Response {
    if let Some(f) = api.trace.filter() {
        api.trace.configure(None);
        auth.audit(
            &api,
            "trace.stop",
            format!("SIP trace of {} stopped", describe(&f)),
        )
        .await;
        auth.flash(&api, "Trace stopped; its messages were discarded.");
    } else {
        auth.flash(&api, "No trace was running.");
    }
    Redirect::to("/sip-trace").into_response()
}

#[cfg(test)]
mod tests {
    use super::super::tests::{env, Browser};
    use super::*;
    use axum::http::StatusCode;

    const INVITE: &str = "INVITE sip:bob@example.com SIP/2.0\r\nFrom: <sip:alice@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\nCall-ID: c1@h\r\nCSeq: 1 INVITE\r\n\r\n";
    const OTHER: &str = "REGISTER sip:example.com SIP/2.0\r\nFrom: <sip:carol@example.com>;tag=2\r\nTo: <sip:carol@example.com>\r\nCall-ID: c2@h\r\nCSeq: 1 REGISTER\r\n\r\n";

    #[tokio::test]
    async fn trace_start_poll_stop() {
        let env = env();
        let mut b = Browser::ready(&env, "192.0.2.1").await;
        let page = b.get("/sip-trace").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(page.body.contains("Off"), "{}", page.body);
        assert!(
            page.body.contains("2000 messages"),
            "the bound: {}",
            page.body
        );
        assert!(page.body.contains("/static/trace.js"));
        let csrf = page.csrf();

        // Nothing to trace: refused.
        let a = b
            .post("/sip-trace/start", &[("csrf", &csrf), ("user", " ")])
            .await;
        assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(a.body.contains("Give a user or a Call-ID"), "{}", a.body);
        assert!(!env.api.trace.enabled());
        // Without the token: refused.
        let a = b.post("/sip-trace/start", &[("user", "alice")]).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN);
        assert!(!env.api.trace.enabled());

        let a = b
            .post(
                "/sip-trace/start",
                &[
                    ("csrf", &csrf),
                    ("user", "sip:alice@example.com"),
                    ("call_id", ""),
                ],
            )
            .await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
        assert_eq!(
            env.api.trace.filter(),
            Some(TraceFilter {
                user: Some("alice".into()),
                call_id: None
            })
        );
        env.api
            .trace
            .record(true, "wss", "192.0.2.7:50000", INVITE.as_bytes());
        env.api
            .trace
            .record(false, "udp", "192.0.2.9:5060", OTHER.as_bytes());

        let page = b.get("/sip-trace").await;
        assert!(page.body.contains("Tracing user alice."), "{}", page.body);
        assert!(page.body.contains("INVITE sip:bob@example.com SIP/2.0"));
        assert!(page.body.contains("Call-ID: c1@h"), "full message");
        assert!(!page.body.contains("REGISTER sip:"), "filtered out");

        let a = b.get("/sip-trace/entries.json?after=0").await;
        assert_eq!(a.status, StatusCode::OK);
        let j: serde_json::Value = serde_json::from_str(&a.body).unwrap();
        assert_eq!(j["enabled"], true);
        assert_eq!(j["filter"]["user"], "alice");
        assert_eq!(j["entries"].as_array().unwrap().len(), 1);
        assert_eq!(j["entries"][0]["direction"], "in");
        let seq = j["entries"][0]["seq"].as_u64().unwrap();
        let a = b.get(&format!("/sip-trace/entries.json?after={seq}")).await;
        let j: serde_json::Value = serde_json::from_str(&a.body).unwrap();
        assert!(j["entries"].as_array().unwrap().is_empty());
        // The JSON needs the session like the page.
        let mut stranger = Browser::new(&env, "192.0.2.2");
        let a = stranger.get("/sip-trace/entries.json").await;
        assert_eq!(a.location(), "/login");

        let a = b.post("/sip-trace/stop", &[("csrf", &csrf)]).await;
        assert_eq!(a.status, StatusCode::SEE_OTHER);
        assert!(!env.api.trace.enabled());
        assert!(env.api.trace.since(0, 10).is_empty());
        let page = b.get("/sip-trace").await;
        assert!(page.body.contains("Trace stopped"), "{}", page.body);
        let log = env.api.store_op(|s| s.list_audit(0, 5)).await.unwrap();
        assert!(log.iter().any(|e| e.action == "trace.start"), "{log:?}");
        assert!(log.iter().any(|e| e.action == "trace.stop"), "{log:?}");
    }

    #[tokio::test]
    async fn the_new_pages_need_a_login() {
        let env = env();
        let mut b = Browser::new(&env, "192.0.2.3");
        for uri in [
            "/trunks",
            "/trunks/new",
            "/trunks/edit?name=x",
            "/certificates",
            "/certificates/regenerate",
            "/settings",
            "/sip-trace",
            "/sip-trace/entries.json",
        ] {
            assert_eq!(b.get(uri).await.location(), "/login", "{uri}");
        }
        for uri in ["/trunks/new", "/settings", "/sip-trace/start"] {
            assert_eq!(b.post(uri, &[]).await.location(), "/login", "{uri}");
        }
        let a = b.get("/static/trace.js").await;
        assert_eq!(a.status, StatusCode::OK);
        assert!(a.body.contains("entries"));
        assert_eq!(b.get("/static/trace.css").await.status, StatusCode::OK);
    }

    #[test]
    fn clock_format() {
        assert_eq!(clock(1_717_200_000_123 + 3_661_000), "01:01:01.123");
    }
}
