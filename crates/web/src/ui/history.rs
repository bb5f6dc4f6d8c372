//! Call history (CDRs) with filters and paging, and its CSV export.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use std::collections::HashMap;
use std::sync::Arc;

use super::{
    enc, fmt_date, fmt_duration, fmt_time, internal_error, page_number, page_with, Auth,
    FieldErrors, Layout, Pager,
};
use crate::{parse_time, Api};

const PER_PAGE: u32 = 50;

pub(crate) fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/calls/history", get(history))
        .route("/calls/cdrs.csv", get(csv))
}

/// The filter form as typed, and what it means.
#[derive(Debug, Default)]
struct Filter {
    from: String,
    to: String,
    direction: String,
    user: String,
    store: store::CdrFilter,
}

impl Filter {
    /// Reads `from`, `to` (dates or date-times; a bare `to` date includes
    /// that day), `direction` and `user`.
    fn parse(params: &HashMap<String, String>, errors: &mut FieldErrors) -> Filter {
        let get = |k: &str| {
            params
                .get(k)
                .map(|v| v.trim().to_owned())
                .unwrap_or_default()
        };
        let mut f = Filter {
            from: get("from"),
            to: get("to"),
            direction: get("direction"),
            user: get("user"),
            store: store::CdrFilter::default(),
        };
        if !f.from.is_empty() {
            match parse_time(&f.from) {
                Ok(t) => f.store.since = Some(t),
                Err(e) => errors.add("from", e),
            }
        }
        if !f.to.is_empty() {
            match parse_time(&f.to) {
                // A date means up to the end of that day.
                Ok(t) if f.to.len() == 10 => f.store.until = Some(t + 86_400),
                Ok(t) => f.store.until = Some(t),
                Err(e) => errors.add("to", e),
            }
        }
        if !f.direction.is_empty() {
            match f.direction.parse::<store::Direction>() {
                Ok(d) => f.store.direction = Some(d),
                Err(_) => errors.add("direction", "Choose inbound, outbound or internal."),
            }
        }
        if !f.user.is_empty() {
            f.store.user = Some(f.user.clone());
        }
        f
    }

    /// The query string of the filter as the API's CSV export reads it.
    fn api_query(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        if let Some(t) = self.store.since {
            q.push(("from", t.to_string()));
        }
        if let Some(t) = self.store.until {
            q.push(("to", t.to_string()));
        }
        if let Some(d) = self.store.direction {
            q.push(("direction", d.to_string()));
        }
        if let Some(u) = &self.store.user {
            q.push(("user", u.clone()));
        }
        q
    }

    /// The typed filter as a query string (ending in `&` when not empty).
    fn form_query(&self) -> String {
        [
            ("from", &self.from),
            ("to", &self.to),
            ("direction", &self.direction),
            ("user", &self.user),
        ]
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}&", enc(v)))
        .collect()
    }
}

fn leg(m: &Option<store::MediaStats>) -> String {
    match m {
        Some(m) => format!(
            "{} rx / {} tx, {} lost, {:.1} ms",
            m.rx_packets, m.tx_packets, m.lost_packets, m.jitter_ms
        ),
        None => "–".into(),
    }
}

struct CdrRow {
    started: String,
    caller: String,
    callee: String,
    direction: String,
    disposition: String,
    answered: bool,
    duration: String,
    trunk: String,
    caller_media: String,
    callee_media: String,
    call_id: String,
}

impl From<store::Cdr> for CdrRow {
    fn from(c: store::Cdr) -> Self {
        CdrRow {
            started: fmt_time(c.started_at),
            caller: c.caller,
            callee: c.callee,
            direction: c.direction.to_string(),
            answered: c.disposition == store::Disposition::Answered,
            disposition: c.disposition.to_string(),
            duration: fmt_duration(u64::from(c.duration_secs)),
            trunk: c.trunk.unwrap_or_default(),
            caller_media: leg(&c.caller_media),
            callee_media: leg(&c.callee_media),
            call_id: c.call_id,
        }
    }
}

#[derive(Template)]
#[template(path = "history.html", config = "../../web-ui/templates/askama.toml")]
struct HistoryPage {
    layout: Layout,
    from: String,
    to: String,
    direction: String,
    user: String,
    errors: FieldErrors,
    rows: Vec<CdrRow>,
    pager: Pager,
    csv_href: String,
    today: String,
}

async fn history(
    State(api): State<Arc<Api>>,
    Extension(auth): Extension<Auth>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let mut errors = FieldErrors::default();
    let filter = Filter::parse(&params, &mut errors);
    let page_no = page_number(params.get("page").map(String::as_str));
    let base = format!("/calls/history?{}", filter.form_query());
    let csv_href = format!(
        "/calls/cdrs.csv?{}",
        filter
            .api_query()
            .iter()
            .map(|(k, v)| format!("{k}={}", enc(v)))
            .collect::<Vec<_>>()
            .join("&")
    );
    let (rows, total) = if errors.is_empty() {
        let f = filter.store.clone();
        let offset = (page_no - 1).saturating_mul(PER_PAGE);
        match api
            .store_op(move |s| Ok((s.list_cdrs(&f, offset, PER_PAGE)?, s.count_cdrs(&f)?)))
            .await
        {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("call history: {e}");
                return internal_error("The call history could not be read.");
            }
        }
    } else {
        (Vec::new(), 0)
    };
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    page_with(
        status,
        &HistoryPage {
            layout: auth.layout(&api, "Call history", "calls"),
            pager: Pager::new(&base, page_no, PER_PAGE, total, rows.len()),
            rows: rows.into_iter().map(CdrRow::from).collect(),
            from: filter.from,
            to: filter.to,
            direction: filter.direction,
            user: filter.user,
            errors,
            csv_href,
            today: fmt_date(super::unix_now()),
        },
    )
}

/// The CSV export of `/api/v1/cdrs.csv` for a logged-in administrator:
/// the same code, called with the API's own token.
async fn csv(
    State(api): State<Arc<Api>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let mut headers = HeaderMap::new();
    match HeaderValue::from_str(&format!("Bearer {}", api.token)) {
        Ok(v) => {
            headers.insert(axum::http::header::AUTHORIZATION, v);
        }
        Err(_) => return internal_error("The export could not be started."),
    }
    let params: HashMap<String, String> = params
        .into_iter()
        .filter(|(k, _)| ["from", "to", "direction", "user"].contains(&k.as_str()))
        .collect();
    match crate::cdrs::cdrs_csv(State(api), headers, Query(params)).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}
