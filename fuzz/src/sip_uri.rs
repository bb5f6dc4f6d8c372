//! `sip_uri`: URIs alone and inside name-addr values.

use sip::{NameAddr, Scheme, Uri, UriBuf};

/// Invariants:
/// - `Uri::parse` never panics, and what it accepts displays as its input;
/// - the owned copy (`to_owned`, `UriBuf::parse`) writes back to a URI with
///   the same parts;
/// - the builder's escaping round-trips: a user, parameter or header set
///   from its unescaped form reads back unescaped to the same bytes;
/// - a name-addr's URI is a substring of the value and parses on its own to
///   the same URI.
pub fn sip_uri(data: &[u8]) {
    if let Ok(uri) = Uri::parse(data) {
        check_uri(&uri);
        let text = std::str::from_utf8(data).expect("an accepted URI is UTF-8");
        assert_eq!(uri.to_string(), text, "Display differs from the input");
        assert_eq!(
            Uri::parse_str(text),
            Ok(uri),
            "parse_str differs from parse"
        );
    }
    // The same bytes as a From/Contact/Route value.
    for na in NameAddr::parse_list(data).take(16) {
        let Ok(na) = na else { break };
        check_name_addr(data, &na);
    }
}

/// Exercises every accessor and checks the owned and builder round trips.
pub(crate) fn check_uri(uri: &Uri<'_>) {
    let _ = (
        uri.scheme(),
        uri.opaque(),
        uri.user(),
        uri.user_unescaped(),
        uri.password(),
        uri.host(),
        uri.host_str(),
        uri.port(),
        uri.transport(),
        uri.lr(),
        uri.maddr(),
        uri.ob(),
        uri.gr(),
        uri.headers_str(),
    );
    for p in uri.params() {
        let _ = p.value_unescaped();
        if let Ok(name) = std::str::from_utf8(&p.name_unescaped()) {
            assert!(
                uri.param(name).is_some(),
                "param() does not find {:?}",
                p.name
            );
        }
    }
    let _ = uri.headers().count();
    if let Some(h) = uri.host() {
        let _ = h.to_string();
    }

    let owned = uri.to_owned();
    let written = owned.to_string();
    let back = Uri::parse_str(&written)
        .unwrap_or_else(|e| panic!("{uri} copies to {written:?}, which fails: {e}"));
    same_parts(uri, &back, &written);
    assert_eq!(
        UriBuf::parse(uri.as_str()).as_ref(),
        Ok(&owned),
        "UriBuf::parse differs from to_owned"
    );

    if uri.is_sip() {
        check_builder(uri);
    }
}

fn same_parts(a: &Uri<'_>, b: &Uri<'_>, written: &str) {
    let ctx = || format!("{a} -> {written}");
    assert!(
        a.scheme()
            .as_str()
            .eq_ignore_ascii_case(b.scheme().as_str()),
        "scheme: {}",
        ctx()
    );
    if !a.is_sip() {
        assert_eq!(a.opaque(), b.opaque(), "opaque part: {}", ctx());
        return;
    }
    assert_eq!(a.user(), b.user(), "user: {}", ctx());
    assert_eq!(a.password(), b.password(), "password: {}", ctx());
    assert_eq!(a.host_str(), b.host_str(), "host: {}", ctx());
    assert_eq!(a.host(), b.host(), "host: {}", ctx());
    assert_eq!(a.port(), b.port(), "port: {}", ctx());
    assert!(a.params().eq(b.params()), "params: {}", ctx());
    assert!(a.headers().eq(b.headers()), "headers: {}", ctx());
}

/// Rebuilds the URI from its unescaped parts with the builder.
fn check_builder(uri: &Uri<'_>) {
    let base = if uri.scheme() == Scheme::Sips {
        UriBuf::sips("example.com")
    } else {
        UriBuf::sip("example.com")
    };
    let mut b = base;
    let user = uri
        .user_unescaped()
        .and_then(|u| String::from_utf8(u.into_owned()).ok())
        .filter(|u| !u.is_empty());
    if let Some(u) = &user {
        b = b.with_user(u);
    }
    let mut params: Vec<(String, Option<String>)> = Vec::new();
    for p in uri.params() {
        let Ok(name) = String::from_utf8(p.name_unescaped().into_owned()) else {
            continue;
        };
        let value = match p.value_unescaped() {
            None => None,
            Some(v) => match String::from_utf8(v.into_owned()) {
                Ok(v) => Some(v),
                Err(_) => continue,
            },
        };
        // An empty value has no written form (`;x=` does not parse).
        if name.is_empty() || value.as_deref() == Some("") {
            continue;
        }
        if params.iter().any(|(n, _)| n.eq_ignore_ascii_case(&name)) {
            continue;
        }
        b.set_param(&name, value.as_deref());
        params.push((name, value));
    }
    let mut headers: Vec<(String, String)> = Vec::new();
    for (n, v) in uri.headers() {
        let (Ok(n), Ok(v)) = (
            String::from_utf8(sip::pct_decode(n.as_bytes()).into_owned()),
            String::from_utf8(sip::pct_decode(v.as_bytes()).into_owned()),
        ) else {
            continue;
        };
        if n.is_empty() {
            continue;
        }
        b = b.with_header(&n, &v);
        headers.push((n, v));
    }
    let text = b.to_string();
    let back = Uri::parse_str(&text)
        .unwrap_or_else(|e| panic!("builder output {text:?} (from {uri}) fails: {e}"));
    if let Some(u) = &user {
        assert_eq!(
            back.user_unescaped().as_deref(),
            Some(u.as_bytes()),
            "user escaping: {uri} -> {text}"
        );
    }
    for (n, v) in &params {
        let p = back
            .param(n)
            .unwrap_or_else(|| panic!("param {n:?} lost: {uri} -> {text}"));
        assert_eq!(
            p.value_unescaped().as_deref(),
            v.as_deref().map(str::as_bytes),
            "param {n:?} escaping: {uri} -> {text}"
        );
    }
    let got: Vec<(Vec<u8>, Vec<u8>)> = back
        .headers()
        .map(|(n, v)| {
            (
                sip::pct_decode(n.as_bytes()).into_owned(),
                sip::pct_decode(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let want: Vec<(Vec<u8>, Vec<u8>)> = headers
        .iter()
        .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect();
    assert_eq!(got, want, "header escaping: {uri} -> {text}");
}

pub(crate) fn check_name_addr(value: &[u8], na: &NameAddr<'_>) {
    let _ = (
        na.display_name(),
        na.display_name_quoted(),
        na.display_name_unescaped(),
        na.display_name_str(),
        na.is_bracketed(),
        na.params_str(),
        na.tag(),
    );
    for p in na.params() {
        let _ = p.value_unescaped();
    }
    let uri = na.uri();
    let text = uri.as_str();
    let hay = String::from_utf8_lossy(value);
    if na.is_bracketed() {
        assert!(
            hay.contains(&format!("<{text}>")),
            "bracketed URI {text:?} not found in the value"
        );
    } else {
        assert!(hay.contains(text), "URI {text:?} not found in the value");
    }
    let alone = Uri::parse(text.as_bytes())
        .unwrap_or_else(|e| panic!("name-addr URI {text:?} does not parse alone: {e}"));
    assert_eq!(&alone, uri, "name-addr URI parses differently alone");
    check_uri(uri);
}
