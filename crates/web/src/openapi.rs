//! The OpenAPI 3.1 description of the admin listener's HTTP API, served
//! without authentication at `/api/v1/openapi.json`.
//!
//! It is written by hand in `openapi.json` next to this file. The tests
//! below keep it in step with the code: every documented operation must be
//! served, and every route under `/api/` (and `/healthz`, `/readyz`,
//! `/metrics`) that the crate's sources register must be documented with
//! each method it answers. So a new route fails the tests until it is
//! described here.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

/// The document.
pub const OPENAPI_JSON: &str = include_str!("openapi.json");

async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON)
}

/// `GET /api/v1/openapi.json`.
pub(crate) fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/api/v1/openapi.json", get(document))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::{admin_router, health_router, HealthState};
    use crate::metrics::Metrics;
    use crate::{Api, CoreQuery};
    use axum::body::{Body, Bytes};
    use axum::http::{Method, Request, StatusCode};
    use http_body_util::BodyExt;
    use serde_json::Value;
    use std::collections::{BTreeMap, BTreeSet, HashMap};
    use std::path::Path;
    use std::sync::Arc;
    use tower::ServiceExt;

    const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

    /// Paths outside `/api/` that must be documented too.
    const OPS_PATHS: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

    fn doc() -> Value {
        serde_json::from_str(OPENAPI_JSON).expect("openapi.json is JSON")
    }

    /// (path, method) of every documented operation.
    fn operations(doc: &Value) -> BTreeSet<(String, String)> {
        let mut ops = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for m in METHODS {
                if item.get(m).is_some() {
                    ops.insert((path.clone(), m.to_owned()));
                }
            }
        }
        ops
    }

    fn api(dir: &Path) -> Arc<Api> {
        // No core: a probe that got as far as asking it fails at once
        // rather than waiting (probes carry no token, so none should).
        let (tx, _) = tokio::sync::mpsc::channel::<CoreQuery>(1);
        Api::new(
            dir.join("db.sqlite"),
            "example.com".into(),
            "tok".into(),
            tx,
        )
    }

    /// The routers of both listeners.
    fn listeners(dir: &Path) -> Vec<Router> {
        let (health, metrics) = (HealthState::new(), Metrics::new());
        vec![
            admin_router(api(dir), health.clone(), metrics.clone()),
            health_router(health, metrics),
        ]
    }

    /// A concrete path for a template: `{param}` becomes a sample value.
    fn sample(template: &str) -> String {
        template
            .split('/')
            .map(|seg| {
                if seg.starts_with('{') && seg.ends_with('}') {
                    "probe"
                } else {
                    seg
                }
            })
            .collect::<Vec<_>>()
            .join("/")
    }

    async fn answer(app: &Router, method: &str, path: &str) -> (StatusCode, Bytes) {
        let req = Request::builder()
            .method(Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap())
            .uri(path)
            .body(Body::empty())
            .unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, body)
    }

    /// Tells routed requests from unrouted ones: the router's own 404 and
    /// 405 answers, and whatever a fallback answers for a path that
    /// surely does not exist, mean "no route".
    struct Prober {
        baseline: HashMap<&'static str, (StatusCode, Bytes)>,
    }

    impl Prober {
        async fn new(app: &Router) -> Prober {
            let mut baseline = HashMap::new();
            for m in METHODS {
                baseline.insert(m, answer(app, m, "/api/v1/no-such-route-for-sure").await);
            }
            Prober { baseline }
        }

        async fn routed(&self, app: &Router, method: &str, path: &str) -> bool {
            let (status, body) = answer(app, method, &sample(path)).await;
            if status == StatusCode::METHOD_NOT_ALLOWED
                || (status == StatusCode::NOT_FOUND && body.is_empty())
            {
                return false;
            }
            self.baseline.get(method) != Some(&(status, body))
        }
    }

    // ----- route discovery in the sources -----------------------------------

    #[derive(Debug, Clone, PartialEq)]
    enum Tok {
        Ident(String),
        Str(String),
        Punct(char),
    }

    /// Rust tokens, enough to find route registrations: identifiers, string
    /// literals (raw and byte strings too) and punctuation; comments, char
    /// literals, lifetimes and numbers are skipped or kept harmless.
    fn tokens(src: &str) -> Vec<Tok> {
        let c: Vec<char> = src.chars().collect();
        let mut out = Vec::new();
        let mut i = 0;
        while i < c.len() {
            let ch = c[i];
            if ch.is_whitespace() {
                i += 1;
            } else if ch == '/' && c.get(i + 1) == Some(&'/') {
                while i < c.len() && c[i] != '\n' {
                    i += 1;
                }
            } else if ch == '/' && c.get(i + 1) == Some(&'*') {
                let mut depth = 0;
                while i < c.len() {
                    if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                        depth += 1;
                        i += 2;
                    } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
            } else if ch == '"' {
                let mut s = String::new();
                i += 1;
                while i < c.len() && c[i] != '"' {
                    if c[i] == '\\' {
                        i += 1;
                    }
                    if let Some(x) = c.get(i) {
                        s.push(*x);
                    }
                    i += 1;
                }
                i += 1;
                out.push(Tok::Str(s));
            } else if ch == '\'' {
                // A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
                if c.get(i + 1) == Some(&'\\') {
                    i += 2;
                    while i < c.len() && c[i] != '\'' {
                        i += 1;
                    }
                    i += 1;
                } else if c.get(i + 2) == Some(&'\'') {
                    i += 3;
                } else {
                    i += 1;
                }
            } else if ch.is_alphanumeric() || ch == '_' {
                let start = i;
                while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                    i += 1;
                }
                let word: String = c[start..i].iter().collect();
                // Raw (byte) strings: r"..", r#".."#, br"..".
                let hashes = c[i..].iter().take_while(|x| **x == '#').count();
                // (`r#ident` is a raw identifier, not a string.)
                let raw = matches!(word.as_str(), "r" | "br") && c.get(i + hashes) == Some(&'"');
                if raw {
                    i += hashes + 1;
                    let mut s = String::new();
                    while i < c.len() {
                        if c[i] == '"' && c[i + 1..].iter().take(hashes).all(|x| *x == '#') {
                            i += 1 + hashes;
                            break;
                        }
                        s.push(c[i]);
                        i += 1;
                    }
                    out.push(Tok::Str(s));
                } else if word == "b" && c.get(i) == Some(&'"') {
                    // b"..": the string is read on the next round.
                } else {
                    out.push(Tok::Ident(word));
                }
            } else {
                out.push(Tok::Punct(ch));
                i += 1;
            }
        }
        out
    }

    /// `toks` without the items marked `#[cfg(test)]`.
    fn without_tests(toks: Vec<Tok>) -> Vec<Tok> {
        let marker = [
            Tok::Punct('#'),
            Tok::Punct('['),
            Tok::Ident("cfg".into()),
            Tok::Punct('('),
            Tok::Ident("test".into()),
            Tok::Punct(')'),
            Tok::Punct(']'),
        ];
        let mut out = Vec::new();
        let mut i = 0;
        while i < toks.len() {
            if toks[i..].starts_with(&marker) {
                // Skip the item: up to its `;` or its matched `{...}`.
                i += marker.len();
                let mut depth = 0;
                while i < toks.len() {
                    match &toks[i] {
                        Tok::Punct(';') if depth == 0 => break,
                        Tok::Punct('{') => depth += 1,
                        Tok::Punct('}') => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
                i += 1;
            } else {
                out.push(toks[i].clone());
                i += 1;
            }
        }
        out
    }

    /// Paths found in `sources` (name, text), outside test code.
    #[derive(Debug, Default)]
    struct Found {
        /// Given to `.route` or `.route_service` as a literal or a string
        /// const, and needing documentation (under `/api/`, or one of
        /// [`OPS_PATHS`]).
        routes: BTreeSet<String>,
        /// Every other string literal that starts with `/api/` (query cut
        /// off): a route when a listener serves it, as with paths taken
        /// from a table.
        literals: BTreeSet<String>,
        /// What the test cannot check.
        problems: Vec<String>,
    }

    fn registered_paths(sources: &[(String, String)]) -> Found {
        let all: Vec<(String, Vec<Tok>)> = sources
            .iter()
            .map(|(name, text)| (name.clone(), without_tests(tokens(text))))
            .collect();
        // String constants, for paths given by name.
        let mut consts = HashMap::new();
        for (_, toks) in &all {
            for (i, w) in toks.windows(3).enumerate() {
                let [Tok::Ident(k), Tok::Ident(name), Tok::Punct(':')] = w else {
                    continue;
                };
                if k != "const" && k != "static" {
                    continue;
                }
                let value = toks[i + 3..]
                    .iter()
                    .take_while(|t| **t != Tok::Punct(';'))
                    .find_map(|t| match t {
                        Tok::Str(s) => Some(s.clone()),
                        _ => None,
                    });
                if let Some(v) = value {
                    consts.insert(name.clone(), v);
                }
            }
        }
        let needs_doc = |p: &str| p.starts_with("/api/") || OPS_PATHS.contains(&p);
        let mut found = Found::default();
        for (file, toks) in &all {
            for t in toks {
                if let Tok::Str(s) = t {
                    if s.starts_with("/api/") && !s.contains(char::is_whitespace) {
                        let path = s.split('?').next().unwrap_or(s);
                        found.literals.insert(path.to_owned());
                    }
                }
            }
            for w in toks.windows(4) {
                let [Tok::Punct('.'), Tok::Ident(f), Tok::Punct('('), arg] = w else {
                    continue;
                };
                let nest = matches!(f.as_str(), "nest" | "nest_service");
                if !nest && !matches!(f.as_str(), "route" | "route_service") {
                    continue;
                }
                let path = match arg {
                    Tok::Str(s) => s.clone(),
                    Tok::Ident(name) => match consts.get(name) {
                        Some(v) => v.clone(),
                        // A variable: its literals are among `literals`.
                        None => continue,
                    },
                    Tok::Punct(_) => continue,
                };
                if nest && (path.starts_with("/api") || path == "/") {
                    found.problems.push(format!(
                        "{file}: .{f}(\"{path}\", ..): routes nested there cannot be checked \
                         against the OpenAPI document; register them with .route"
                    ));
                } else if !nest && needs_doc(&path) {
                    found.routes.insert(path);
                }
            }
        }
        found.literals.retain(|p| !found.routes.contains(p));
        found
    }

    /// The crate's non-test sources.
    fn crate_sources() -> Vec<(String, String)> {
        fn walk(dir: &Path, out: &mut Vec<(String, String)>) {
            let mut entries: Vec<_> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            entries.sort();
            for p in entries {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                if p.is_dir() {
                    if name != "tests" {
                        walk(&p, out);
                    }
                } else if name.ends_with(".rs") && name != "tests.rs" {
                    out.push((
                        p.display().to_string(),
                        std::fs::read_to_string(&p).unwrap(),
                    ));
                }
            }
        }
        let mut out = Vec::new();
        walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut out);
        assert!(out.iter().any(|(n, _)| n.ends_with("lib.rs")));
        out
    }

    /// A path template with its parameter names left out, to compare
    /// `/a/{id}` with `/a/{name}` and `/a/{}`.
    fn norm(path: &str) -> String {
        path.split('/')
            .map(|seg| {
                if seg.starts_with('{') && seg.ends_with('}') {
                    "{}"
                } else {
                    seg
                }
            })
            .collect::<Vec<_>>()
            .join("/")
    }

    /// What the document misses of the routes registered in `sources` and
    /// served by `routers`, and what it documents that they do not serve.
    async fn out_of_sync(
        doc: &Value,
        routers: &[Router],
        sources: &[(String, String)],
    ) -> Vec<String> {
        let documented: BTreeSet<(String, String)> = operations(doc)
            .into_iter()
            .map(|(p, m)| (norm(&p), m))
            .collect();
        let documented_paths: BTreeSet<String> = doc["paths"]
            .as_object()
            .unwrap()
            .keys()
            .map(|p| norm(p))
            .collect();
        let mut found = registered_paths(sources);
        let mut problems = std::mem::take(&mut found.problems);
        let mut probers = Vec::new();
        for r in routers {
            probers.push((r, Prober::new(r).await));
        }
        let probers = &probers;
        let routed = |m: &'static str, p: String| async move {
            for (r, prober) in probers {
                if prober.routed(r, m, &p).await {
                    return true;
                }
            }
            false
        };
        let required = found.routes.iter().map(|p| (p, true));
        let literals = found.literals.iter().map(|p| (p, false));
        for (path, required) in required.chain(literals) {
            let mut served = Vec::new();
            for m in METHODS {
                if routed(m, path.clone()).await {
                    served.push(m);
                }
            }
            for m in &served {
                if !documented.contains(&(norm(path), m.to_string())) {
                    problems.push(format!(
                        "{} {path} is served but not in openapi.json",
                        m.to_uppercase()
                    ));
                }
            }
            if required && served.is_empty() && !documented_paths.contains(&norm(path)) {
                problems.push(format!(
                    "{path} is registered in the sources but not in openapi.json"
                ));
            }
        }
        for (path, m) in operations(doc) {
            let m: &'static str = METHODS.iter().find(|x| **x == m).unwrap();
            if !routed(m, path.clone()).await {
                problems.push(format!(
                    "{} {path} is in openapi.json but no listener serves it",
                    m.to_uppercase()
                ));
            }
        }
        problems
    }

    #[tokio::test]
    async fn document_matches_the_routes() {
        let dir = tempfile::tempdir().unwrap();
        let problems = out_of_sync(&doc(), &listeners(dir.path()), &crate_sources()).await;
        assert!(problems.is_empty(), "\n{}", problems.join("\n"));
        // The discovery itself found the routes it should.
        let found = registered_paths(&crate_sources());
        for p in [
            "/api/v1/users",
            "/api/v1/users/{name}",
            "/api/v1/cdrs.csv",
            "/api/v1/openapi.json",
            "/healthz",
            "/readyz",
            "/metrics",
        ] {
            assert!(found.routes.contains(p), "{p} not found: {found:?}");
        }
    }

    #[tokio::test]
    async fn an_undocumented_route_is_caught() {
        use axum::routing::{get, post};
        let dir = tempfile::tempdir().unwrap();
        let mut routers = listeners(dir.path());
        let hangup = ["/api/v1/calls/{call_id}", "transfer"].join("/");
        let unregister = ["/api/v1/registrations", "{id}"].join("/");
        routers[0] = routers[0]
            .clone()
            .route(&hangup, post(|| async { StatusCode::NO_CONTENT }))
            .route(&unregister, get(|| async { "x" }).delete(|| async { "" }));
        let mut sources = crate_sources();
        // One route by a const, one from a table.
        sources.push((
            "extra.rs".into(),
            "const TRANSFER: &str = \"/api/v1/calls/{call_id}/transfer\";\n\
             fn more(mut r: Router) -> Router {\n\
                 r = r.route(TRANSFER, post(transfer));\n\
                 // .route(\"/api/v1/commented-out\", get(x))\n\
                 for p in [\"/api/v1/registrations/{}\", \"/api/v1/unserved\"] {\n\
                     r = r.route(p, get(x).delete(y));\n\
                 }\n\
                 r\n\
             }\n\
             #[cfg(test)]\n\
             mod tests { fn t(r: Router) { r.route(\"/api/v1/test-only\", get(x)); } }\n"
                .into(),
        ));
        let problems = out_of_sync(&doc(), &routers, &sources).await;
        assert_eq!(
            problems,
            [
                "POST /api/v1/calls/{call_id}/transfer is served but not in openapi.json",
                "GET /api/v1/registrations/{} is served but not in openapi.json",
                "DELETE /api/v1/registrations/{} is served but not in openapi.json",
            ],
            "{problems:#?}"
        );

        // Registered somewhere the probes do not reach: the path is still
        // required.
        let sources = vec![(
            "elsewhere.rs".to_owned(),
            "fn r(x: Router) -> Router { x.route(\"/api/v2/thing\", get(y)) }".to_owned(),
        )];
        let problems = out_of_sync(&doc(), &listeners(dir.path()), &sources).await;
        assert!(
            problems.contains(
                &"/api/v2/thing is registered in the sources but not in openapi.json".to_owned()
            ),
            "{problems:#?}"
        );

        // A router nested under /api cannot be checked and is refused.
        let sources = vec![(
            "nested.rs".to_owned(),
            "fn r(x: Router) -> Router { x.nest(\"/api/v2\", z) }".to_owned(),
        )];
        let found = registered_paths(&sources);
        assert_eq!(found.problems.len(), 1, "{found:#?}");

        // A documented operation nobody serves is caught too.
        let mut d = doc();
        d["paths"]["/api/v1/calls"]["delete"] = d["paths"]["/api/v1/calls"]["get"].clone();
        let problems = out_of_sync(&d, &listeners(dir.path()), &crate_sources()).await;
        assert_eq!(
            problems,
            ["DELETE /api/v1/calls is in openapi.json but no listener serves it"]
        );
    }

    #[test]
    fn tokenizer_skips_what_is_not_code() {
        let toks = tokens(
            "let c = '\"'; let l: &'a str = r#\"a \" b\"#; /* .route(\"/x\") /* nested */ */\n\
             x.route(\"/y\\\"z\", b\"q\") // .route(\"/w\")\n'{' r#type.f(\"s\")",
        );
        let strs: Vec<&str> = toks
            .iter()
            .filter_map(|t| match t {
                Tok::Str(s) => Some(s.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(strs, ["a \" b", "/y\"z", "q", "s"]);
        assert!(!toks.contains(&Tok::Punct('{')));
    }

    #[test]
    fn document_is_well_formed() {
        let d = doc();
        assert!(d["openapi"].as_str().unwrap().starts_with("3.1."));
        assert_eq!(
            d["components"]["securitySchemes"]["bearerAuth"]["scheme"],
            "bearer"
        );
        // Every reference resolves.
        fn refs(v: &Value, out: &mut Vec<String>) {
            match v {
                Value::Object(m) => {
                    if let Some(Value::String(r)) = m.get("$ref") {
                        out.push(r.clone());
                    }
                    m.values().for_each(|x| refs(x, out));
                }
                Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
                _ => {}
            }
        }
        let mut all = Vec::new();
        refs(&d, &mut all);
        assert!(!all.is_empty());
        for r in all {
            let pointer = r.strip_prefix('#').expect("local reference");
            assert!(d.pointer(pointer).is_some(), "{r} does not resolve");
        }
        // Unique operation ids; responses; path parameters declared.
        let mut ids = BTreeMap::new();
        for (path, item) in d["paths"].as_object().unwrap() {
            let params: Vec<&str> = path
                .split('/')
                .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                .collect();
            for m in METHODS {
                let Some(op) = item.get(m) else { continue };
                let id = op["operationId"].as_str().expect("operationId");
                assert!(ids.insert(id.to_owned(), path).is_none(), "{id} twice");
                assert!(
                    !op["responses"].as_object().unwrap().is_empty(),
                    "{m} {path}"
                );
                let declared: Vec<&str> = item
                    .get("parameters")
                    .into_iter()
                    .chain(op.get("parameters"))
                    .flat_map(|p| p.as_array().unwrap())
                    .filter(|p| p["in"] == "path")
                    .map(|p| p["name"].as_str().unwrap())
                    .collect();
                for p in &params {
                    assert!(declared.contains(p), "{m} {path}: {p} undeclared");
                }
                // Unauthenticated routes say so; /api/v1 ones answer 401.
                let open = op.get("security") == Some(&Value::Array(Vec::new()));
                if path.starts_with("/api/v1/") && !open {
                    assert!(op["responses"].get("401").is_some(), "{m} {path}");
                }
            }
        }
    }

    #[tokio::test]
    async fn served_without_a_token() {
        let dir = tempfile::tempdir().unwrap();
        let app = &listeners(dir.path())[0];
        let (status, body) = answer(app, "get", "/api/v1/openapi.json").await;
        assert_eq!(status, StatusCode::OK);
        let served: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(served, doc());
        // And on the plain JSON API router too.
        let (status, _) = answer(
            &crate::router(api(dir.path())),
            "get",
            "/api/v1/openapi.json",
        )
        .await;
        assert_eq!(status, StatusCode::OK);
    }
}
