//! `sip_message`: parse, validate, decode every typed header, edit as a
//! proxy does, serialize, parse again.

use sip::digest;
use sip::headers::{parse_delta_seconds, parse_max_forwards, parse_tokens};
use sip::{
    response_to, CSeq, Contact, Contacts, HeaderEntry, HeaderName, Limits, MediaType, Message,
    NameAddr, ParseError, StartLine, Via,
};

use crate::sip_uri::{check_name_addr, check_uri};

const OUR_VIA: &str = "SIP/2.0/WSS edge.invalid;branch=z9hG4bKfuzzedge1;rport";
const OUR_RR: &str = "<sip:edge.invalid;transport=ws;lr>";
const NEW_RURI: &str = "sip:bob@192.0.2.7:5060;transport=udp";

/// Invariants:
/// - parsing never panics (default limits), nor do `validate` and the typed
///   decoders on whatever parsed;
/// - the header index is consistent: ranges in order and inside the input,
///   names are tokens that classify as the entry says, values trimmed;
/// - without edits, serializing gives back the input from the start line to
///   the end of the body byte for byte, and `serialized_len` and `to_bytes`
///   agree with it;
/// - the message-level accessors agree with the standalone decoders;
/// - a message that validates has a Call-ID, CSeq (matching the method),
///   From, To, Via and (for requests) Max-Forwards that decode, and every
///   Contact, Route, Record-Route and Path value decodes;
/// - after the proxy edits (Max-Forwards decremented, Via prepended,
///   Record-Route added, Request-URI rewritten) the output parses, shows the
///   edits, keeps every other header line and the body unchanged, and still
///   validates if the input did; likewise for popping a Via, replacing the
///   body and removing headers;
/// - a response built to a valid request parses and validates.
pub fn sip_message(data: &[u8]) {
    let Ok(msg) = Message::parse(data.to_vec(), &Limits::default()) else {
        return;
    };
    check_index(data, &msg);
    check_unedited(data, &msg);
    let valid = msg.validate().is_ok();
    let _ = msg.validate_with(&sip::Validation::rfc2543_compatible());
    if let Err(e) = msg.validate() {
        let _ = (e.reason_phrase(), e.status_code(), e.to_string());
    }
    decode_everything(&msg);
    check_accessors(&msg);
    if valid {
        check_valid(&msg);
    }
    if msg.is_request() {
        proxy_edit(&msg, valid);
        if valid {
            respond(&msg);
        }
    } else {
        pop_via(&msg);
    }
    other_edits(&msg);
}

fn fail(what: &str, e: ParseError) -> ! {
    panic!("{what}: {e:?} ({e})")
}

fn check_index(data: &[u8], msg: &Message) {
    let n = data.len();
    let mut prev_end = 0;
    for e in msg.entries() {
        let (name, value, line) = (e.name_range(), e.value_range(), e.line_range());
        assert!(line.end <= n, "header line past the input: {e:?}");
        assert!(
            line.start >= prev_end,
            "header lines overlap or go back: {e:?}"
        );
        assert!(
            name.start == line.start && name.start < name.end && name.end <= value.start,
            "name range: {e:?}"
        );
        assert!(
            value.start <= value.end && value.end <= line.end,
            "value range: {e:?}"
        );
        prev_end = line.end;
        let nm = msg.name_of(e);
        assert!(
            nm.iter()
                .all(|&c| c.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&c)),
            "header name is not a token: {nm:?}"
        );
        assert_eq!(HeaderName::from_bytes(nm), e.name(), "name class of {nm:?}");
        let v = msg.value_of(e);
        let lws = |c: &u8| matches!(c, b' ' | b'\t' | b'\r' | b'\n');
        assert!(
            v.first().is_none_or(|c| !lws(c)) && v.last().is_none_or(|c| !lws(c)),
            "value not trimmed: {v:?}"
        );
        let unfolded = msg.value_unfolded(e);
        // (A bare CR inside a line is not a fold but is unfolded too.)
        assert!(
            e.is_folded() || v.contains(&b'\r') || unfolded.as_ref() == v,
            "unfolding changed an unfolded value"
        );
        assert!(
            !unfolded.contains(&b'\n'),
            "unfolded value keeps a line break: {unfolded:?}"
        );
    }
    let body = msg.body_range();
    assert!(
        body.start >= prev_end && body.end <= n,
        "body range {body:?}"
    );
    match msg.start_line() {
        StartLine::Request { uri, version, .. } => {
            assert!(uri.end <= version.start && version.end <= n);
            assert_eq!(msg.request_uri_bytes(), Some(&data[uri.clone()]));
        }
        StartLine::Response {
            code,
            reason,
            version,
        } => {
            assert!((100..=699).contains(code));
            assert!(version.end <= reason.start && reason.end <= n);
        }
    }
}

fn check_unedited(data: &[u8], msg: &Message) {
    assert!(!msg.is_edited());
    let start = data
        .iter()
        .position(|&c| c != b'\r' && c != b'\n')
        .expect("a parsed message has a start line");
    let out = msg.serialize();
    assert_eq!(
        out.len(),
        msg.serialized_len(),
        "serialized_len without edits"
    );
    assert_eq!(
        out,
        &data[start..msg.body_range().end],
        "serializing without edits is not byte-identical"
    );
    assert_eq!(msg.to_bytes(), out, "to_bytes without edits");
    // Without Content-Length a datagram's body is the rest of it.
    if let Ok(None) = msg.content_length() {
        assert_eq!(
            msg.body_range().end,
            data.len(),
            "body without Content-Length"
        );
    }
    if let Ok(Some(cl)) = msg.content_length() {
        let rest = data.len() - msg.body_range().start;
        if cl <= rest && msg.header_count(HeaderName::ContentLength) == 1 {
            assert_eq!(msg.body().len(), cl, "body length vs Content-Length");
        }
    }
}

/// Every header through the decoder for its kind.
fn decode_everything(msg: &Message) {
    let _ = (
        msg.method(),
        msg.request_uri(),
        msg.version(),
        msg.status(),
        msg.reason(),
        msg.body(),
    );
    if let Some(uri) = msg.request_uri() {
        check_uri(&uri);
    }
    for e in msg.entries() {
        let v = msg.value_of(e);
        decode_value(e, v);
        let unfolded = msg.value_unfolded(e);
        decode_value(e, &unfolded);
    }
}

fn decode_value(e: &HeaderEntry, v: &[u8]) {
    match e.name() {
        HeaderName::Via => {
            for via in Via::parse_list(v).take(64) {
                let Ok(via) = via else { break };
                read_via(&via);
            }
            let _ = Via::parse(v);
        }
        HeaderName::From | HeaderName::To => {
            if let Ok(na) = NameAddr::parse(v) {
                check_name_addr(v, &na);
            }
        }
        HeaderName::Contact
        | HeaderName::Route
        | HeaderName::RecordRoute
        | HeaderName::Path
        | HeaderName::ServiceRoute
        | HeaderName::PAssertedIdentity
        | HeaderName::ReferTo
        | HeaderName::ReplyTo => {
            for na in NameAddr::parse_list(v).take(64) {
                let Ok(na) = na else { break };
                check_name_addr(v, &na);
                let c = Contact(na);
                let _ = (c.expires(), c.q(), c.sip_instance(), c.reg_id());
                let _ = (c.pub_gruu(), c.temp_gruu());
            }
        }
        HeaderName::CSeq => {
            let _ = CSeq::parse(v);
        }
        HeaderName::MaxForwards => {
            let _ = parse_max_forwards(v);
        }
        HeaderName::Expires | HeaderName::MinExpires => {
            let _ = parse_delta_seconds(v);
        }
        HeaderName::ContentType | HeaderName::Accept => {
            if let Ok(mt) = MediaType::parse(v) {
                let _ = (mt.mtype(), mt.subtype(), mt.param("boundary"));
                let _ = mt.params().count();
                let _ = (
                    mt.is("application", "sdp"),
                    mt.matches("application", "sdp"),
                );
            }
        }
        HeaderName::Supported
        | HeaderName::Require
        | HeaderName::ProxyRequire
        | HeaderName::Unsupported
        | HeaderName::Allow => {
            let _ = parse_tokens(v).take(64).count();
        }
        HeaderName::Authorization | HeaderName::ProxyAuthorization => {
            if let Ok(s) = std::str::from_utf8(v) {
                let _ = digest::parse_credentials(s);
            }
        }
        HeaderName::WwwAuthenticate | HeaderName::ProxyAuthenticate => {
            if let Ok(s) = std::str::from_utf8(v) {
                let _ = digest::parse_challenge(s);
            }
        }
        _ => {
            let _ = sip::headers::SplitValues::new(v).take(64).count();
        }
    }
}

fn read_via(via: &Via<'_>) {
    let _ = (
        via.protocol(),
        via.version(),
        via.transport(),
        via.host(),
        via.host_str(),
        via.port(),
        via.params_str(),
        via.branch(),
        via.has_rfc3261_branch(),
        via.received(),
        via.rport(),
        via.maddr(),
        via.ttl(),
        via.alias(),
    );
    let _ = via.params().count();
    let _ = via.host().to_string();
}

/// The message-level accessors against the standalone decoders.
fn check_accessors(msg: &Message) {
    let _ = (msg.call_id(), msg.top_via_branch(), msg.expires());
    let _ = (msg.content_length(), msg.content_type(), msg.max_forwards());
    let _ = msg.accepts("application", "sdp");
    let _ = msg
        .unsupported_tags(HeaderName::Require, &["outbound", "path", "gruu"])
        .count();
    let _ = msg.option_tags(HeaderName::Supported).take(64).count();
    for list in [msg.routes(), msg.record_routes(), msg.paths()] {
        let _ = list.take(64).count();
    }
    if let Ok(Contacts::List(l)) = msg.contacts() {
        for c in l.take(64) {
            let Ok(c) = c else { break };
            let _ = (c.expires(), c.q(), c.sip_instance(), c.reg_id());
        }
    }

    if let Some(v) = msg.header(HeaderName::From) {
        assert_eq!(
            msg.from().ok(),
            NameAddr::parse(v).ok(),
            "from() vs NameAddr::parse"
        );
    }
    if let Some(v) = msg.header(HeaderName::To) {
        assert_eq!(
            msg.to().ok(),
            NameAddr::parse(v).ok(),
            "to() vs NameAddr::parse"
        );
    }
    if let Some(v) = msg.header(HeaderName::CSeq) {
        assert_eq!(
            msg.cseq().ok(),
            CSeq::parse(v).ok(),
            "cseq() vs CSeq::parse"
        );
    }
    if let Some(v) = msg.header(HeaderName::Via) {
        let first = Via::parse_list(v).next().and_then(Result::ok);
        assert_eq!(msg.top_via().ok(), first, "top_via() vs Via::parse_list");
    }
    // vias() walks every Via line in order.
    let mut from_lines = Vec::new();
    'lines: for v in msg.headers(HeaderName::Via) {
        for via in Via::parse_list(v) {
            match via {
                Ok(via) => from_lines.push(via),
                Err(_) => break 'lines,
            }
        }
    }
    let from_msg: Vec<Via<'_>> = msg.vias().map_while(Result::ok).collect();
    assert_eq!(from_msg, from_lines, "vias() vs Via::parse_list per line");
}

/// What a proxy or registrar relies on once `validate` passed.
fn check_valid(msg: &Message) {
    assert!(msg.call_id().is_some(), "valid message without Call-ID");
    let cseq = msg
        .cseq()
        .unwrap_or_else(|e| fail("valid message, bad CSeq", e));
    if let Some(m) = msg.method() {
        assert_eq!(&cseq.method, m, "valid request, CSeq method differs");
        msg.request_uri().expect("valid request, bad Request-URI");
        let mf = msg
            .max_forwards()
            .unwrap_or_else(|e| fail("valid request, bad Max-Forwards", e));
        assert!(mf.is_some(), "valid request without Max-Forwards");
    }
    msg.from()
        .unwrap_or_else(|e| fail("valid message, bad From", e));
    msg.to()
        .unwrap_or_else(|e| fail("valid message, bad To", e));
    msg.top_via()
        .unwrap_or_else(|e| fail("valid message, bad Via", e));
    for v in msg.vias() {
        v.unwrap_or_else(|e| fail("valid message, bad Via value", e));
    }
    for list in [msg.routes(), msg.record_routes(), msg.paths()] {
        for r in list {
            r.unwrap_or_else(|e| fail("valid message, bad route value", e));
        }
    }
    match msg.contacts() {
        Ok(Contacts::Wildcard) => {}
        Ok(Contacts::List(l)) => {
            for c in l {
                c.unwrap_or_else(|e| fail("valid message, bad Contact", e));
            }
        }
        Err(e) => fail("valid message, bad Contact", e),
    }
    msg.content_type()
        .unwrap_or_else(|e| fail("valid message, bad Content-Type", e));
    msg.content_length()
        .unwrap_or_else(|e| fail("valid message, bad Content-Length", e));
}

/// (name, value) of every header line, for comparing messages.
fn lines(msg: &Message) -> Vec<(Vec<u8>, Vec<u8>)> {
    msg.entries()
        .iter()
        .map(|e| (msg.name_of(e).to_vec(), msg.value_of(e).to_vec()))
        .collect()
}

fn reparse(what: &str, edited: &Message) -> Message {
    let out = edited.serialize();
    assert_eq!(
        out.len(),
        edited.serialized_len(),
        "serialized_len after {what}"
    );
    assert_eq!(edited.to_bytes(), out, "to_bytes after {what}");
    Message::parse(out.clone(), &Limits::unbounded()).unwrap_or_else(|e| {
        panic!(
            "{what}: output does not parse: {e:?} ({e})\n{:?}",
            String::from_utf8_lossy(&out)
        )
    })
}

/// A proxy forwarding a request (RFC 3261 §16.6).
fn proxy_edit(msg: &Message, valid: bool) {
    let mut m = msg.clone();
    let mf = m.decrement_max_forwards();
    let mf_index = msg.position(HeaderName::MaxForwards);
    m.prepend_via(OUR_VIA)
        .unwrap_or_else(|e| fail("prepend_via", e));
    m.prepend_record_route(OUR_RR)
        .unwrap_or_else(|e| fail("prepend_record_route", e));
    m.set_request_uri(NEW_RURI)
        .unwrap_or_else(|e| fail("set_request_uri", e));
    let out = reparse("proxy edits", &m);

    assert_eq!(out.method(), msg.method(), "method changed");
    assert_eq!(
        out.request_uri_bytes(),
        Some(NEW_RURI.as_bytes()),
        "Request-URI"
    );
    assert_eq!(out.version(), msg.version(), "version changed");
    let top = out.top_via().unwrap_or_else(|e| fail("our Via", e));
    assert_eq!(
        top.branch(),
        Some("z9hG4bKfuzzedge1"),
        "top Via is not ours"
    );
    let rr = out
        .record_routes()
        .next()
        .expect("no Record-Route after adding one")
        .unwrap_or_else(|e| fail("our Record-Route", e));
    assert_eq!(rr.uri().as_str(), "sip:edge.invalid;transport=ws;lr");
    assert_eq!(out.body(), msg.body(), "body changed");

    // Every other line is kept, in order; Max-Forwards has its new value.
    let mut want = lines(msg);
    match (mf, mf_index) {
        (Ok(n), Some(i)) => want[i].1 = n.to_string().into_bytes(),
        (Ok(n), None) => want.push((b"Max-Forwards".to_vec(), n.to_string().into_bytes())),
        (Err(_), _) => {}
    }
    let mut got = lines(&out);
    for (name, value) in [("Via", OUR_VIA), ("Record-Route", OUR_RR)] {
        let ours = got
            .iter()
            .position(|(n, v)| n == name.as_bytes() && v == value.as_bytes())
            .unwrap_or_else(|| panic!("added {name} line not found"));
        got.remove(ours);
    }
    assert_eq!(got, want, "header lines changed by the proxy edits");
    assert_eq!(
        out.header_count(HeaderName::Via),
        msg.header_count(HeaderName::Via) + 1
    );

    if valid && mf.is_ok() {
        out.validate()
            .unwrap_or_else(|e| fail("valid request no longer validates after proxy edits", e));
    }
}

/// A proxy forwarding a response upstream removes its own Via.
fn pop_via(msg: &Message) {
    let before: Vec<Via<'_>> = match msg.vias().collect() {
        Ok(v) => v,
        Err(_) => return,
    };
    let mut m = msg.clone();
    let popped = m
        .pop_via()
        .unwrap_or_else(|e| fail("pop_via on good Vias", e));
    assert_eq!(popped, !before.is_empty());
    let out = reparse("pop_via", &m);
    let after: Vec<Via<'_>> = out
        .vias()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| fail("Vias after pop_via", e));
    assert_eq!(
        after.as_slice(),
        before.get(1..).unwrap_or_default(),
        "pop_via did not remove exactly the top Via"
    );
    assert_eq!(out.body(), msg.body());
}

fn other_edits(msg: &Message) {
    // Replace the body: Content-Length follows it.
    let mut m = msg.clone();
    let body = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\n";
    m.set_body(Some("application/sdp"), body)
        .unwrap_or_else(|e| fail("set_body", e));
    let out = reparse("set_body", &m);
    assert_eq!(out.body(), body, "body after set_body");
    assert_eq!(
        out.content_length(),
        Ok(Some(body.len())),
        "Content-Length after set_body"
    );
    assert_eq!(out.header_count(HeaderName::ContentLength), 1);
    assert!(out
        .content_type()
        .is_ok_and(|t| t.is_some_and(|t| t.is("application", "sdp"))));

    // Drop headers, set one, pop a Route.
    let mut m = msg.clone();
    let contacts = msg.header_count(HeaderName::Contact);
    assert_eq!(m.remove_headers(HeaderName::Contact), contacts);
    m.set_header(HeaderName::Subject, "edited")
        .unwrap_or_else(|e| fail("set_header", e));
    let routes_ok: Option<Vec<NameAddr<'_>>> = msg.routes().collect::<Result<_, _>>().ok();
    let popped = m.pop_route();
    if routes_ok.is_some() {
        popped.unwrap_or_else(|e| fail("pop_route on good Routes", e));
    }
    let out = reparse("remove/set/pop_route", &m);
    assert_eq!(out.header_count(HeaderName::Contact), 0);
    assert_eq!(out.header(HeaderName::Subject), Some(&b"edited"[..]));
    if let Some(routes) = routes_ok {
        let after: Vec<NameAddr<'_>> = out
            .routes()
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| fail("Routes after pop_route", e));
        assert_eq!(after.as_slice(), routes.get(1..).unwrap_or_default());
    }
    assert_eq!(out.body(), msg.body());

    // Header values that would break framing are refused.
    let mut m = msg.clone();
    assert!(m.add_header("X-Bad", "a\r\nVia: injected").is_err());
    assert!(m.prepend_via("a\nb").is_err());
    assert!(m.add_header("Bad Name", "x").is_err());
}

/// A UAS answering a valid request (RFC 3261 §8.2.6).
fn respond(req: &Message) {
    let resp = response_to(req, 486, "Busy Here", Some("fuzztag"))
        .copy_record_route()
        .header("Contact", "<sip:uas@192.0.2.9>")
        .build()
        .unwrap_or_else(|e| fail("response_to a valid request", e));
    resp.validate()
        .unwrap_or_else(|e| fail("response to a valid request does not validate", e));
    assert_eq!(resp.status(), Some(486));
    assert_eq!(resp.call_id(), req.call_id());
    assert_eq!(resp.cseq().ok(), req.cseq().ok());
    let req_vias: Vec<Via<'_>> = req.vias().map_while(Result::ok).collect();
    let resp_vias: Vec<Via<'_>> = resp.vias().map_while(Result::ok).collect();
    assert_eq!(
        resp_vias, req_vias,
        "response Vias differ from the request's"
    );
    let to = resp.to().unwrap_or_else(|e| fail("response To", e));
    match req.to().ok().and_then(|t| t.tag()) {
        Some(tag) => assert_eq!(to.tag(), Some(tag)),
        None => assert_eq!(to.tag(), Some("fuzztag")),
    }
}
