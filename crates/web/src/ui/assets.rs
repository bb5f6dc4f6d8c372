//! Static assets, embedded at build time from `web-ui/static/`.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use std::sync::Arc;

use crate::Api;

const CSS: &str = include_str!("../../../../web-ui/static/ui.css");
const UI_JS: &str = include_str!("../../../../web-ui/static/ui.js");
const DASHBOARD_JS: &str = include_str!("../../../../web-ui/static/dashboard.js");
const FAVICON: &str = include_str!("../../../../web-ui/static/favicon.svg");

/// Assets change only with the binary; the version in the path of each
/// link would be needed for long caching, so keep it to an hour.
const CACHE: &str = "public, max-age=3600";

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, CACHE),
        ],
        body,
    )
}

pub(crate) fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route(
            "/static/ui.css",
            get(|| async { asset("text/css; charset=utf-8", CSS) }),
        )
        .route(
            "/static/ui.js",
            get(|| async { asset("text/javascript; charset=utf-8", UI_JS) }),
        )
        .route(
            "/static/dashboard.js",
            get(|| async { asset("text/javascript; charset=utf-8", DASHBOARD_JS) }),
        )
        .route(
            "/static/favicon.svg",
            get(|| async { asset("image/svg+xml", FAVICON) }),
        )
}
