//! The work each parser does in the benchmark, one module per parser, so the
//! tests can check that every path succeeds and does what it claims before
//! it is timed.
//!
//! - (a) `parse`: framing plus header index for ours; for the others, their
//!   parse of the whole message (ezk-sip-types has no message type: the
//!   parse is the one ezk-sip-core runs on a received datagram, pull-parsing
//!   lines into its `Headers` map and slicing the body by Content-Length).
//! - (b) `decode`: from a parsed message, the headers a proxy touches: every
//!   Via, From, To, Call-ID, CSeq, Contact, Route and Max-Forwards, typed.
//! - (c) `proxy`: on a parsed message, prepend a Via, add a Record-Route,
//!   rewrite the Request-URI, and serialize.

use std::path::Path;

use bytes::Bytes;

/// The Via, Record-Route and Request-URI the proxy edit writes.
pub const VIA_HOST: &str = "edge.callgate.example.com";
pub const VIA_BRANCH: &str = "z9hG4bK-callgate-7f3a1c";
pub const VIA: &str = "SIP/2.0/UDP edge.callgate.example.com;branch=z9hG4bK-callgate-7f3a1c";
pub const RR_URI: &str = "sip:edge.callgate.example.com;lr";
pub const RR: &str = "<sip:edge.callgate.example.com;lr>";
pub const NEW_RURI: &str = "sip:+15551234567@198.51.100.20:5060";

/// A benchmark message.
pub struct Sample {
    pub name: &'static str,
    pub bytes: Bytes,
}

/// The messages in `data/`.
pub fn samples() -> Vec<Sample> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
    ["invite", "register"]
        .into_iter()
        .map(|name| {
            let path = dir.join(format!("{name}.sip"));
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            Sample {
                name,
                bytes: Bytes::from(bytes),
            }
        })
        .collect()
}

/// callgate's `sip` crate.
pub mod ours {
    use bytes::Bytes;
    use sip::{Contacts, Limits, Message};

    pub fn parse(b: &Bytes, limits: &Limits) -> Message {
        Message::parse(b.clone(), limits).expect("parse")
    }

    /// What decoding found, so nothing is optimised away.
    #[derive(Debug, Default)]
    pub struct Decoded {
        pub vias: usize,
        pub branch_len: usize,
        pub from_tag_len: usize,
        pub to_tag: bool,
        pub call_id_len: usize,
        pub cseq: u32,
        pub contacts: usize,
        pub routes: usize,
        pub max_forwards: u8,
    }

    pub fn decode(m: &Message) -> Decoded {
        let mut d = Decoded::default();
        for v in m.vias() {
            let v = v.expect("Via");
            if d.vias == 0 {
                d.branch_len = v.branch().map_or(0, str::len);
            }
            d.vias += 1;
        }
        d.from_tag_len = m.from().expect("From").tag().map_or(0, str::len);
        d.to_tag = m.to().expect("To").tag().is_some();
        d.call_id_len = m.call_id().expect("Call-ID").len();
        d.cseq = m.cseq().expect("CSeq").seq;
        if let Contacts::List(l) = m.contacts().expect("Contact") {
            for c in l {
                c.expect("Contact value");
                d.contacts += 1;
            }
        }
        for r in m.routes() {
            r.expect("Route");
            d.routes += 1;
        }
        d.max_forwards = m
            .max_forwards()
            .expect("Max-Forwards")
            .expect("Max-Forwards");
        d
    }

    /// The edits on a message that was already parsed; returns the bytes to send.
    pub fn proxy(mut m: Message) -> Vec<u8> {
        m.prepend_via(super::VIA).expect("Via");
        m.prepend_record_route(super::RR).expect("Record-Route");
        m.set_request_uri(super::NEW_RURI).expect("Request-URI");
        m.serialize()
    }
}

/// ezk-sip-types 0.6.
pub mod ezk {
    use std::io::Write;
    use std::str::FromStr;

    use bytes::Bytes;
    use bytesstr::BytesStr;
    use ezk_sip_types::header::typed::{
        CSeq, CallID, Contact, ContentLength, FromTo, MaxForwards, Routing, Via,
    };
    use ezk_sip_types::host::HostPort;
    use ezk_sip_types::msg::{Line, MessageLine, PullParser};
    use ezk_sip_types::parse::Parse;
    use ezk_sip_types::print::{AppendCtx, PrintCtx};
    use ezk_sip_types::uri::params::Params;
    use ezk_sip_types::uri::NameAddr;
    use ezk_sip_types::uri::SipUri;
    use ezk_sip_types::{Headers, Name};

    /// A parsed message as ezk-sip-core holds one.
    #[derive(Clone, Debug)]
    pub struct Msg {
        pub line: MessageLine,
        pub headers: Headers,
        pub body: Bytes,
    }

    /// ezk-sip-core's datagram parse: lines, start line, `Headers`, body.
    pub fn parse(b: &Bytes) -> Msg {
        let mut parser = PullParser::new(b, 0);
        let first = parser.next().expect("start line").expect("complete");
        let first = std::str::from_utf8(first).expect("UTF-8");
        let (_, line) = MessageLine::parse(b)(first).expect("start line");
        let mut headers = Headers::with_capacity(16);
        for l in &mut parser {
            let l = std::str::from_utf8(l.expect("complete")).expect("UTF-8");
            let (_, Line { name, value }) = Line::parse(b, l).expect("header line");
            headers.insert(name, value);
        }
        let head_end = parser.head_end();
        let len = headers
            .get_named::<ContentLength>()
            .map(|c| c.0)
            .unwrap_or(0);
        let body = b.slice(head_end..head_end + len);
        Msg {
            line,
            headers,
            body,
        }
    }

    #[derive(Debug, Default)]
    pub struct Decoded {
        pub vias: usize,
        pub branch_len: usize,
        pub from_tag_len: usize,
        pub to_tag: bool,
        pub call_id_len: usize,
        pub cseq: u32,
        pub contacts: usize,
        pub routes: usize,
        pub max_forwards: u8,
    }

    pub fn decode(m: &Msg) -> Decoded {
        let h = &m.headers;
        let vias: Vec<Via> = h.get_named().expect("Via");
        let from: FromTo = h.get(Name::FROM).expect("From");
        let to: FromTo = h.get(Name::TO).expect("To");
        let call_id: CallID = h.get_named().expect("Call-ID");
        let cseq: CSeq = h.get_named().expect("CSeq");
        let contacts: Vec<Contact> = h.get_named().expect("Contact");
        let routes: Vec<Routing> = match h.try_get(Name::ROUTE) {
            Some(r) => r.expect("Route"),
            None => Vec::new(),
        };
        let mf: MaxForwards = h.get_named().expect("Max-Forwards");
        Decoded {
            vias: vias.len(),
            branch_len: vias[0].params.get_val("branch").map_or(0, |b| b.len()),
            from_tag_len: from.tag.as_ref().map_or(0, |t| t.len()),
            to_tag: to.tag.is_some(),
            call_id_len: call_id.0.len(),
            cseq: cseq.cseq,
            contacts: contacts.len(),
            routes: routes.len(),
            max_forwards: mf.0,
        }
    }

    /// Typed values for the edit, built once (ezk's API takes typed values).
    pub struct Edit {
        pub via: Via,
        pub rr: Routing,
    }

    pub fn edit_values() -> Edit {
        Edit {
            via: Via::new(
                "UDP",
                HostPort::host_name(super::VIA_HOST),
                super::VIA_BRANCH,
            ),
            rr: Routing {
                uri: NameAddr::uri(SipUri::from_str(super::RR_URI).expect("RR URI")),
                params: Params::new(),
            },
        }
    }

    /// The edits on a parsed message; returns the bytes to send. ezk's
    /// `insert_*_front` appends to an existing header's values, so the Vias
    /// are taken out and put back behind the new one to get it on top.
    pub fn proxy(mut m: Msg, e: &Edit) -> Vec<u8> {
        let old_vias = m.headers.remove(&Name::VIA).unwrap_or_default();
        m.headers.insert_named_front(&e.via);
        m.headers
            .extend(old_vias.into_iter().map(|v: BytesStr| (Name::VIA, v)));
        m.headers.insert_type_front(Name::RECORD_ROUTE, &e.rr);
        let MessageLine::Request(line) = &mut m.line else {
            panic!("not a request")
        };
        line.uri = SipUri::from_str(super::NEW_RURI).expect("Request-URI");
        let line = &*line;
        let mut out = Vec::with_capacity(m.body.len() + 1024);
        let ctx = PrintCtx {
            method: Some(&line.method),
            ..Default::default()
        };
        write!(out, "{}\r\n{}\r\n", line.print_ctx(ctx), m.headers).expect("write");
        out.extend_from_slice(&m.body);
        out
    }
}

/// rsip 0.4 (rsipstack's parser).
pub mod rsip_impl {
    use bytes::Bytes;
    use rsip::headers::{RecordRoute, UntypedHeader, Via};
    use rsip::prelude::{HeadersExt, ToTypedHeader};
    use rsip::{Header, Request};

    pub fn parse(b: &Bytes) -> Request {
        Request::try_from(b.clone()).expect("rsip parse")
    }

    #[derive(Debug, Default)]
    pub struct Decoded {
        pub vias: usize,
        pub branch_len: usize,
        pub from_tag_len: usize,
        pub to_tag: bool,
        pub call_id_len: usize,
        pub cseq: u32,
        pub contacts: usize,
        pub routes: usize,
        pub max_forwards: u32,
        /// rsip 0.4 cannot decode some Contacts (a quoted `+sip.instance`
        /// holding `<urn:uuid:...>`, as JsSIP sends in REGISTER).
        pub contact_failed: bool,
    }

    pub fn decode(r: &Request) -> Decoded {
        let mut d = Decoded::default();
        for h in r.headers.iter() {
            if let Header::Via(v) = h {
                let v = v.typed().expect("Via");
                if d.vias == 0 {
                    d.branch_len = v.branch().map_or(0, |b| b.to_string().len());
                }
                d.vias += 1;
            }
        }
        let from = r.from_header().expect("From").typed().expect("From");
        d.from_tag_len = from.tag().map_or(0, |t| t.value().len());
        let to = r.to_header().expect("To").typed().expect("To");
        d.to_tag = to.tag().is_some();
        d.call_id_len = r.call_id_header().expect("Call-ID").value().len();
        d.cseq = r.cseq_header().expect("CSeq").typed().expect("CSeq").seq;
        for c in r.contact_headers() {
            match c.typed() {
                Ok(_) => d.contacts += 1,
                Err(_) => d.contact_failed = true,
            }
        }
        if let Some(route) = r.route_header() {
            d.routes = route.typed().expect("Route").uris().len();
        }
        d.max_forwards = r
            .max_forwards_header()
            .expect("Max-Forwards")
            .num()
            .expect("Max-Forwards");
        d
    }

    /// The edits on a parsed request; returns the bytes to send.
    pub fn proxy(mut r: Request) -> Vec<u8> {
        let mut headers: Vec<Header> = std::mem::take(&mut r.headers).into();
        headers.insert(0, Header::Via(Via::new(super::VIA)));
        let after_vias = headers
            .iter()
            .rposition(|h| matches!(h, Header::Via(_)))
            .map_or(0, |p| p + 1);
        headers.insert(after_vias, Header::RecordRoute(RecordRoute::new(super::RR)));
        r.headers = headers.into();
        r.uri = rsip::Uri::try_from(super::NEW_RURI).expect("Request-URI");
        r.to_string().into_bytes()
    }
}
