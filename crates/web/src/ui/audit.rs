//! The audit log page.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};
use std::collections::HashMap;
use std::sync::Arc;

use super::{fmt_time, internal_error, page, page_number, Auth, Layout, Pager};
use crate::Api;

const PER_PAGE: u32 = 100;

pub(crate) fn routes() -> Router<Arc<Api>> {
    Router::new().route("/audit", get(list))
}

struct Row {
    at: String,
    actor: String,
    source: String,
    action: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "audit.html", config = "../../web-ui/templates/askama.toml")]
struct AuditPage {
    layout: Layout,
    rows: Vec<Row>,
    pager: Pager,
}

async fn list(
    State(api): State<Arc<Api>>,
    Extension(auth): Extension<Auth>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let page_no = page_number(params.get("page").map(String::as_str));
    let offset = (page_no - 1).saturating_mul(PER_PAGE);
    let (entries, total) = match api
        .store_op(move |s| Ok((s.list_audit(offset, PER_PAGE)?, s.count_audit()?)))
        .await
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("audit log: {e}");
            return internal_error("The audit log could not be read.");
        }
    };
    page(&AuditPage {
        layout: auth.layout(&api, "Audit log", "audit"),
        pager: Pager::new("/audit?", page_no, PER_PAGE, total, entries.len()),
        rows: entries
            .into_iter()
            .map(|e| Row {
                at: fmt_time(e.at),
                actor: e.actor,
                source: e.source,
                action: e.action,
                detail: e.detail,
            })
            .collect(),
    })
}
