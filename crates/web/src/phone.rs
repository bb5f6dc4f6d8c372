//! The built-in softphone: `/phone` on the admin listener. A page (JsSIP,
//! vanilla JS) where users log in with their own SIP username and password,
//! register over WSS and make and take calls. No admin login: the page is
//! public, the SIP credentials are checked by the registrar.
//!
//! Everything is embedded from `web-ui/phone/`: the page, its script and
//! style, and `jssip.min.js` (built by `web-ui/phone/bundle.sh`). The page
//! learns the SIP domain and the WSS port from attributes rendered into it
//! (also at `/phone/config.json`), and connects to
//! `wss://<page host>:<port>` unless the user changes the URL.

use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use serde::Serialize;
use std::sync::Arc;

use crate::Api;

/// What the page needs to know about the gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PhoneConfig {
    /// The SIP domain users register in (`sip:USER@domain`).
    pub sip_domain: String,
    /// Port of the WSS listener; the page connects to
    /// `wss://<host it was loaded from>:<port>`.
    pub wss_url_port: u16,
}

impl Api {
    /// Sets what `/phone` tells the page. Without it the page uses the
    /// API's realm as SIP domain and WSS port 7443. Call before serving; a
    /// second call is ignored.
    pub fn with_phone(self: Arc<Self>, config: PhoneConfig) -> Arc<Self> {
        let _ = self.phone.set(config);
        self
    }
}

/// The page's configuration as set with [`Api::with_phone`], or defaults.
pub(crate) fn config_for(api: &Api) -> PhoneConfig {
    api.phone.get().cloned().unwrap_or_else(|| PhoneConfig {
        sip_domain: api.realm.clone(),
        wss_url_port: 7443,
    })
}

/// The policy of every `/phone` response: scripts, styles and images only
/// from the gateway itself, no inline code, network only to WSS servers.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src wss:; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

const INDEX: &str = include_str!("../../../web-ui/phone/index.html");
const SCRIPT: &str = include_str!("../../../web-ui/phone/phone.js");
const STYLE: &str = include_str!("../../../web-ui/phone/phone.css");
const ICON: &str = include_str!("../../../web-ui/phone/icon.svg");
const JSSIP: &[u8] = include_bytes!("../../../web-ui/phone/jssip.min.js");

/// One embedded file, ready to send.
struct Asset {
    body: axum::body::Bytes,
    content_type: &'static str,
    etag: HeaderValue,
}

impl Asset {
    fn new(body: impl Into<axum::body::Bytes>, content_type: &'static str) -> Arc<Asset> {
        let body = body.into();
        // FNV-1a: enough to tell versions of a file apart.
        let hash = body.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
        });
        let etag = HeaderValue::from_str(&format!("\"{hash:016x}\"")).expect("hex is a header");
        Arc::new(Asset {
            body,
            content_type,
            etag,
        })
    }

    fn respond(&self, request: &HeaderMap) -> Response {
        let headers = [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(self.content_type),
            ),
            (header::ETAG, self.etag.clone()),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ];
        let fresh = request
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|tags| {
                let ours = self.etag.to_str().unwrap_or_default();
                tags.split(',').any(|t| t.trim() == ours || t.trim() == "*")
            });
        let mut response = if fresh {
            (StatusCode::NOT_MODIFIED, headers).into_response()
        } else {
            (headers, self.body.clone()).into_response()
        };
        secure(response.headers_mut());
        response
    }
}

/// The headers every `/phone` response carries.
fn secure(headers: &mut HeaderMap) {
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            HeaderName::from_static("permissions-policy"),
            "microphone=(self), camera=(self), geolocation=(), payment=()",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
}

/// Escapes text for an HTML attribute value.
fn attr(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The page with `config` rendered into it.
fn render(config: &PhoneConfig) -> String {
    INDEX
        .replace("{{sip_domain}}", &attr(&config.sip_domain))
        .replace("{{wss_port}}", &config.wss_url_port.to_string())
}

/// The `/phone` routes: the page, its assets and `/phone/config.json`.
pub fn router<S: Clone + Send + Sync + 'static>(config: PhoneConfig) -> Router<S> {
    let json = serde_json::to_vec(&config).expect("config serializes");
    let files = [
        (
            "/phone",
            Asset::new(render(&config), "text/html; charset=utf-8"),
        ),
        (
            "/phone/phone.js",
            Asset::new(SCRIPT, "text/javascript; charset=utf-8"),
        ),
        (
            "/phone/jssip.min.js",
            Asset::new(JSSIP, "text/javascript; charset=utf-8"),
        ),
        (
            "/phone/phone.css",
            Asset::new(STYLE, "text/css; charset=utf-8"),
        ),
        ("/phone/icon.svg", Asset::new(ICON, "image/svg+xml")),
        ("/phone/config.json", Asset::new(json, "application/json")),
    ];
    let mut router = Router::new().route(
        "/phone/",
        get(|| async {
            let mut response = Redirect::permanent("/phone").into_response();
            secure(response.headers_mut());
            response
        }),
    );
    for (path, asset) in files {
        router = router.route(
            path,
            get(move |headers: HeaderMap| async move { asset.respond(&headers) }),
        );
    }
    router
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    fn config() -> PhoneConfig {
        PhoneConfig {
            sip_domain: "pbx.example\"<x>".into(),
            wss_url_port: 7999,
        }
    }

    async fn get(
        app: &Router,
        uri: &str,
        headers: &[(&str, &str)],
    ) -> (StatusCode, HeaderMap, Vec<u8>) {
        let mut req = Request::builder().uri(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = app
            .clone()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let (parts, body) = resp.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes().to_vec();
        (parts.status, parts.headers, bytes)
    }

    #[tokio::test]
    async fn page_and_assets_with_types_and_policy() {
        let app = router(config());
        for (uri, content_type, contains) in [
            (
                "/phone",
                "text/html; charset=utf-8",
                "<audio id=\"remote-audio\"",
            ),
            (
                "/phone/phone.js",
                "text/javascript; charset=utf-8",
                "window.softphone",
            ),
            (
                "/phone/jssip.min.js",
                "text/javascript; charset=utf-8",
                "JsSIP 3.13.8",
            ),
            ("/phone/phone.css", "text/css; charset=utf-8", ".keypad"),
            ("/phone/icon.svg", "image/svg+xml", "<svg"),
            (
                "/phone/config.json",
                "application/json",
                "\"wss_url_port\":7999",
            ),
        ] {
            let (s, h, body) = get(&app, uri, &[]).await;
            assert_eq!(s, StatusCode::OK, "{uri}");
            assert_eq!(h["content-type"], content_type, "{uri}");
            assert_eq!(
                h["content-security-policy"], CONTENT_SECURITY_POLICY,
                "{uri}"
            );
            assert_eq!(h["x-content-type-options"], "nosniff", "{uri}");
            let text = String::from_utf8_lossy(&body);
            assert!(text.contains(contains), "{uri} lacks {contains}");

            // Revalidation: same tag, no body.
            let etag = h["etag"].to_str().unwrap().to_owned();
            let (s, h, body) = get(&app, uri, &[("if-none-match", &etag)]).await;
            assert_eq!(s, StatusCode::NOT_MODIFIED, "{uri}");
            assert!(body.is_empty());
            assert_eq!(h["content-security-policy"], CONTENT_SECURITY_POLICY);
        }
        let csp = CONTENT_SECURITY_POLICY;
        assert!(csp.contains("script-src 'self';") && csp.contains("connect-src wss:;"));
        assert!(!csp.contains("unsafe"), "{csp}");

        let (s, h, _) = get(&app, "/phone/", &[]).await;
        assert_eq!(s, StatusCode::PERMANENT_REDIRECT);
        assert_eq!(h["location"], "/phone");
        let (s, _, _) = get(&app, "/phone/nope.js", &[]).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn page_carries_the_config_and_the_test_ids() {
        let (_, _, body) = get(&router(config()), "/phone", &[]).await;
        let page = String::from_utf8(body).unwrap();
        assert!(
            page.contains(r#"data-sip-domain="pbx.example&quot;&lt;x&gt;""#),
            "escaped domain"
        );
        assert!(page.contains(r#"data-wss-port="7999""#));
        assert!(!page.contains("{{"), "every placeholder filled");
        // No inline code: the policy would block it.
        assert!(!page.contains("<script>") && !page.contains(" onclick="));
        assert!(!page.contains("<style"));
        let mut ids = vec![
            "user",
            "password",
            "register",
            "state",
            "number",
            "call",
            "answer",
            "hangup",
            "hold",
            "mute",
            "call-state",
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
        ids.extend(
            [
                "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "star", "hash",
            ]
            .iter()
            .map(|k| format!("dtmf-{k}")),
        );
        for id in ids {
            assert_eq!(
                page.matches(&format!("id=\"{id}\"")).count(),
                1,
                "#{id} exactly once"
            );
        }
        // Scripts and styles come from /phone itself.
        for src in [
            r#"<script src="/phone/jssip.min.js"></script>"#,
            r#"<script src="/phone/phone.js"></script>"#,
            r#"href="/phone/phone.css""#,
        ] {
            assert!(page.contains(src), "{src}");
        }
    }

    #[test]
    fn bundled_jssip_keeps_its_license() {
        let head = String::from_utf8_lossy(&JSSIP[..4096]);
        assert!(head.starts_with("/*!\n * JsSIP 3.13.8"), "{head}");
        assert!(head.contains("License: MIT"));
        assert!(head.contains("Permission is hereby granted"));
    }
}
