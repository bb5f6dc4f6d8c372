//! RFC 4475 torture tests: one test per message, asserting what the RFC says
//! an element must see or do with it.

use std::borrow::Cow;
use std::net::Ipv4Addr;

use bytes::Bytes;
use sip::{
    Contacts, ErrorKind, Frame, HeaderName, Host, Limits, Message, Method, NameAddr, ParseError,
    Rport, Scheme, StreamFramer, Validation,
};

macro_rules! dat {
    ($name:literal) => {
        include_bytes!(concat!("data/rfc4475/", $name, ".dat")).as_slice()
    };
}

fn parse(bytes: &'static [u8]) -> Message {
    let m = Message::parse(Bytes::from_static(bytes), &Limits::default())
        .unwrap_or_else(|e| panic!("parse failed: {e}"));
    // Whatever the verdict, an untouched message writes back byte for byte.
    let out = m.serialize();
    assert_eq!(&bytes[..out.len()], out.as_slice());
    m
}

fn invalid(bytes: &'static [u8]) -> ParseError {
    parse(bytes).validate().expect_err("must be rejected")
}

fn valid(bytes: &'static [u8]) -> Message {
    let m = parse(bytes);
    if let Err(e) = m.validate() {
        panic!("must be accepted, got: {e}");
    }
    m
}

fn s(b: &[u8]) -> &str {
    std::str::from_utf8(b).unwrap()
}

fn repeat(s: &str, n: usize) -> String {
    s.repeat(n)
}

fn stream(bytes: &[u8]) -> Result<Option<Frame>, ParseError> {
    let mut f = StreamFramer::new(Limits::default());
    f.push(bytes);
    f.next_frame()
}

// 3.1.1 Valid messages

/// 3.1.1.1 A Short Tortuous INVITE.
#[test]
fn wsinv() {
    let m = valid(dat!("wsinv"));
    assert_eq!(m.method(), Some(&Method::Invite));
    let ruri = m.request_uri().unwrap();
    assert_eq!(
        ruri.as_str(),
        "sip:vivekg@chair-dnrc.example.com;unknownparam"
    );
    // Unknown Request-URI parameter, without value.
    assert_eq!(ruri.param("unknownparam").unwrap().value, None);

    // Line folding, LWS around colons and semicolons, unusual case.
    let to = m.to().unwrap();
    assert_eq!(to.uri().user(), Some("vivekg"));
    assert_eq!(to.tag(), Some("1918181833n"));
    // Escaped characters within quotes.
    let from = m.from().unwrap();
    assert_eq!(
        from.display_name_unescaped().as_deref(),
        Some(&br#"J Rosenberg \""#[..])
    );
    assert_eq!(from.tag(), Some("98asjd8"));
    // Integer fields with leading zeros.
    assert_eq!(m.max_forwards(), Ok(Some(68)));
    let cseq = m.cseq().unwrap();
    assert_eq!((cseq.seq, cseq.method), (9, Method::Invite));
    assert_eq!(m.call_id(), Some("wsinv.ndaksdj@192.0.2.1"));

    // Comma-separated and separately listed values, short and long names.
    assert_eq!(m.header_count(HeaderName::Via), 2);
    let vias: Vec<_> = m.vias().collect::<Result<_, _>>().unwrap();
    assert_eq!(vias.len(), 3);
    assert_eq!(
        vias.iter().map(|v| v.transport()).collect::<Vec<_>>(),
        ["UDP", "TCP", "UDP"]
    );
    assert_eq!(vias[0].host(), Host::Ipv4(Ipv4Addr::new(192, 0, 2, 2)));
    assert_eq!(vias[0].branch(), Some("390skdjuw"));
    assert_eq!(vias[1].host_str(), "spindle.example.com");
    assert_eq!(vias[1].branch(), Some("z9hG4bK9ikj8"));
    assert_eq!(vias[2].host_str(), "192.168.255.111");
    assert_eq!(vias[2].branch(), Some("z9hG4bK30239"));

    // An empty Subject.
    assert_eq!(m.header(HeaderName::Subject), Some(&b""[..]));
    // Unknown header fields, one folded.
    let e = m.entry("NewFangledHeader").unwrap();
    assert!(e.is_folded());
    assert_eq!(
        &*m.value_unfolded(e),
        b"newfangled value continued newfangled value"
    );
    // A value that is not generic-param syntax is kept as is.
    assert_eq!(
        m.header("UnknownHeaderWithUnusualValue"),
        Some(&b";;,,;;,;"[..])
    );

    // A URI parameter with no value.
    let route = m.routes().next().unwrap().unwrap();
    assert!(route.uri().lr());
    assert_eq!(route.uri().param_value("unknownwith"), Some("value"));
    assert_eq!(route.uri().param("unknown-no-value").unwrap().value, None);

    // Unknown parameters of a known header, one without value.
    let Contacts::List(mut contacts) = m.contacts().unwrap() else {
        panic!("not a wildcard")
    };
    let c = contacts.next().unwrap().unwrap();
    assert!(contacts.next().is_none());
    assert_eq!(
        c.display_name_unescaped().as_deref(),
        Some(&br#"Quoted string """#[..])
    );
    assert_eq!(c.param("newparam").unwrap().value, Some("newvalue"));
    assert_eq!(c.param("secondparam").unwrap().value, None);
    assert_eq!(c.q(), Ok(Some(330)));

    assert_eq!(m.content_length(), Ok(Some(150)));
    assert_eq!(m.body().len(), 150);
    assert!(m.content_type().unwrap().unwrap().is("application", "sdp"));
}

/// 3.1.1.2 Wide Range of Valid Characters.
#[test]
fn intmeth() {
    let m = valid(dat!("intmeth"));
    // Non-alpha method characters; % is not an escape in a method.
    let method = "!interesting-Method0123456789_*+`.%indeed'~";
    assert_eq!(m.method(), Some(&Method::Other(method.into())));
    let cseq = m.cseq().unwrap();
    assert_eq!(cseq.seq, 139122385);
    assert_eq!(cseq.method.as_str(), method);

    let ruri = m.request_uri().unwrap();
    assert_eq!(
        ruri.user(),
        Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
    );
    assert_eq!(
        ruri.password(),
        Some("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
    );
    assert_eq!(ruri.host(), Some(Host::Domain("example.com")));

    assert_eq!(m.top_via_branch(), Some("z9hG4bK-.!%66*_+`'~"));
    // Quoted-pairs of BEL, NUL and DEL in the display name.
    let to = m.to().unwrap();
    assert_eq!(
        to.display_name_unescaped().as_deref(),
        Some(&b"BEL:\x07 NUL:\x00 DEL:\x7f"[..])
    );
    assert_eq!(
        to.uri().user(),
        Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
    );
    let from = m.from().unwrap();
    assert_eq!(
        from.display_name(),
        Some(&b"token1~` token2'+_ token3*%!.-"[..])
    );
    assert!(!from.display_name_quoted());
    let p = from.param("fromParam''~+*_!.-%").unwrap();
    assert!(p.quoted);
    // UTF-8 inside a quoted parameter value.
    assert_eq!(
        p.value,
        Some("\u{0440}\u{0430}\u{0431}\u{043e}\u{0442}\u{0430}\u{044e}\u{0449}\u{0438}\u{0439}")
    );
    assert_eq!(from.tag(), Some("_token~1'+`*%!-."));
    assert_eq!(
        m.call_id(),
        Some("intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{")
    );
    assert_eq!(m.max_forwards(), Ok(Some(255)));
    assert_eq!(
        m.header_str("extensionHeader-!.%*+_`'~"),
        Some("\u{feff}\u{5927}\u{505c}\u{96fb}")
    );
    assert!(m.body().is_empty());
}

/// 3.1.1.3 Valid Use of the % Escaping Mechanism.
#[test]
fn esc01() {
    let m = valid(dat!("esc01"));
    let ruri = m.request_uri().unwrap();
    assert_eq!(
        ruri.user_unescaped().as_deref(),
        Some(&b"sips:user@example.com"[..])
    );
    assert_eq!(ruri.host(), Some(Host::Domain("example.net")));
    // Escaped userparts compare as their unescaped form (user%41 == userA).
    let to = m.to().unwrap();
    assert_eq!(to.uri().user(), Some("%75se%72"));
    assert_eq!(to.uri().user_unescaped().as_deref(), Some(&b"user"[..]));
    assert_eq!(
        m.from().unwrap().uri().user_unescaped().as_deref(),
        Some(&b"I have spaces"[..])
    );
    let Contacts::List(mut cs) = m.contacts().unwrap() else {
        panic!()
    };
    let c = cs.next().unwrap().unwrap();
    assert_eq!(c.uri().user_unescaped().as_deref(), Some(&b"caller"[..]));
    // Escaped URI parameters: %6C%72 is lr; unescaping is not recursive.
    assert!(c.uri().lr());
    let name = c.uri().param("name").unwrap();
    assert_eq!(name.value_unescaped().as_deref(), Some(&b"value%41"[..]));
    assert_ne!(name.value_unescaped().as_deref(), Some(&b"valueA"[..]));
    // Compact forms i: and C:.
    assert_eq!(m.call_id(), Some("esc01.239409asdfakjkn23onasd0-3234"));
    assert!(m.content_type().unwrap().unwrap().is("application", "sdp"));
    assert_eq!(m.body().len(), 150);
}

/// 3.1.1.4 Escaped Nulls in URIs.
#[test]
fn escnull() {
    let m = valid(dat!("escnull"));
    assert_eq!(m.method(), Some(&Method::Register));
    // Unescaping must not shorten the user at the NUL.
    let aor = m.to().unwrap().uri().user_unescaped().unwrap();
    assert_eq!(&*aor, b"null-\0-null");
    assert_eq!(
        m.from().unwrap().uri().user_unescaped().as_deref(),
        Some(&b"null-\0-null"[..])
    );
    // Two distinct contacts.
    let Contacts::List(cs) = m.contacts().unwrap() else {
        panic!()
    };
    let users: Vec<Vec<u8>> = cs
        .map(|c| c.unwrap().uri().user_unescaped().unwrap().into_owned())
        .collect();
    assert_eq!(users, [b"\0".to_vec(), b"\0\0".to_vec()]);
    assert_eq!(m.content_length(), Ok(Some(0)));
}

/// 3.1.1.5 Use of % When It Is Not an Escape.
#[test]
fn esc02() {
    let m = valid(dat!("esc02"));
    // An unknown method, not REGISTER.
    assert_eq!(m.method(), Some(&Method::Other("RE%47IST%45R".into())));
    assert_ne!(m.method(), Some(&Method::Register));
    // Display names are "%Z%45" (not %ZE).
    for na in [m.to().unwrap(), m.from().unwrap()] {
        assert_eq!(na.display_name_unescaped().as_deref(), Some(&b"%Z%45"[..]));
    }
    assert_eq!(m.top_via_branch(), Some("z9hG4bK209%fzsnel234"));
    // Two Contact values, not three: C%6Fntact is another header.
    let Contacts::List(cs) = m.contacts().unwrap() else {
        panic!()
    };
    assert_eq!(cs.count(), 2);
    assert_eq!(
        m.header("C%6Fntact"),
        Some(&b"<sip:alias2@host2.example.com>"[..])
    );
    assert_eq!(m.entry("C%6Fntact").unwrap().name(), HeaderName::Other);
}

/// 3.1.1.6 Message with No LWS between Display Name and <.
#[test]
fn lwsdisp() {
    let m = valid(dat!("lwsdisp"));
    let from = m.from().unwrap();
    assert_eq!(from.display_name(), Some(&b"caller"[..]));
    assert_eq!(from.uri().as_str(), "sip:caller@example.com");
    assert_eq!(from.tag(), Some("323"));
}

/// 3.1.1.7 Long Values in Header Fields.
#[test]
fn longreq() {
    let m = valid(dat!("longreq"));
    // To: long display name, long URI parameter names and values.
    let to = m.to().unwrap();
    let display = format!("I have a user name of {} proportion", repeat("extreme", 10));
    assert_eq!(to.display_name_str().as_deref(), Some(display.as_str()));
    assert_eq!(to.uri().port(), Some(6000));
    let long_value = format!("very{}value", repeat("long", 20));
    assert_eq!(
        to.uri().param_value("unknownparam1"),
        Some(long_value.as_str())
    );
    let long_name = format!("longparam{}", repeat("name", 25));
    assert_eq!(to.uri().param_value(&long_name), Some("shortvalue"));
    let flag = format!("very{}ParameterNameWithNoValue", repeat("long", 25));
    assert_eq!(to.uri().param(&flag).unwrap().value, None);

    // From: long header parameter names and values, a very long tag.
    let from = m.from().unwrap();
    let caller = repeat("amazinglylongcallername", 5);
    assert_eq!(from.uri().user(), Some(caller.as_str()));
    let tag = format!("12{}424", repeat("982", 50));
    assert_eq!(from.tag(), Some(tag.as_str()));
    let pname = format!("unknownheaderparam{}", repeat("name", 20));
    let pvalue = format!("unknowheaderparam{}", repeat("value", 15));
    assert_eq!(from.param(&pname).unwrap().value, Some(pvalue.as_str()));
    let valueless = format!("unknownValueless{}", repeat("paramname", 10));
    assert_eq!(from.param(&valueless).unwrap().value, None);

    // Call-ID: one long token.
    let callid = format!("longreq.one{}longcallid", repeat("really", 20));
    assert_eq!(m.call_id(), Some(callid.as_str()));

    // 34 Via values, the last with a long branch.
    let vias: Vec<_> = m.vias().collect::<Result<_, _>>().unwrap();
    assert_eq!(vias.len(), 34);
    for (i, v) in vias[..33].iter().enumerate() {
        assert_eq!(v.host_str(), format!("sip{}.example.com", 33 - i));
    }
    let last = &vias[33];
    assert_eq!(last.received(), Some("192.0.2.5"));
    let branch = format!("very{}branchvalue", repeat("long", 50));
    assert_eq!(last.branch(), Some(branch.as_str()));

    let Contacts::List(mut cs) = m.contacts().unwrap() else {
        panic!()
    };
    assert_eq!(
        cs.next().unwrap().unwrap().uri().user(),
        Some(caller.as_str())
    );
    assert_eq!(m.body().len(), 150);
}

/// 3.1.1.8 Extra Trailing Octets in a UDP Datagram.
#[test]
fn dblreq() {
    let raw = dat!("dblreq");
    let m = valid(raw);
    // A REGISTER; the INVITE after it is noise to be ignored (§18.3).
    assert_eq!(m.method(), Some(&Method::Register));
    assert!(m.body().is_empty());
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(m.serialize(), &raw[..end]);
    assert_eq!(m.to_bytes().len(), end);
    assert_eq!(m.header_count(HeaderName::CallId), 1);
}

/// 3.1.1.9 Semicolon-Separated Parameters in URI User Part.
#[test]
fn semiuri() {
    let m = valid(dat!("semiuri"));
    let ruri = m.request_uri().unwrap();
    assert_eq!(ruri.user(), Some("user;par=u%40example.net"));
    assert_eq!(
        ruri.user_unescaped().as_deref(),
        Some(&b"user;par=u@example.net"[..])
    );
    assert_eq!(ruri.host(), Some(Host::Domain("example.com")));
    assert_eq!(ruri.params().count(), 0);
    // The folded Accept list has six values.
    let accept: Vec<&str> = m.header_values(HeaderName::Accept).map(s).collect();
    assert_eq!(
        accept,
        [
            "application/sdp",
            "application/pkcs7-mime",
            "multipart/mixed",
            "multipart/signed",
            "message/sip",
            "message/sipfrag"
        ]
    );
}

/// 3.1.1.10 Varied and Unknown Transport Types.
#[test]
fn transports() {
    let m = valid(dat!("transports"));
    let transports: Vec<&str> = m.vias().map(|v| v.unwrap().transport()).collect();
    assert_eq!(transports, ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]);
}

/// 3.1.1.11 Multipart MIME Message.
#[test]
fn mpart01() {
    let m = valid(dat!("mpart01"));
    assert_eq!(m.method(), Some(&Method::Message));
    let ct = m.content_type().unwrap().unwrap();
    assert!(ct.is("multipart", "mixed"));
    assert_eq!(
        ct.param("boundary").unwrap().value,
        Some("7a9cbec02ceef655")
    );
    // Binary body with NULs, framed by Content-Length.
    assert_eq!(m.content_length(), Ok(Some(553)));
    assert_eq!(m.body().len(), 553);
    assert!(m.body().contains(&0));
    assert!(m.body().ends_with(b"--7a9cbec02ceef655--\r\n"));
    assert_eq!(m.top_via().unwrap().rport(), Some(Rport::Flag));
    // The same message over a stream frames identically.
    let Ok(Some(Frame::Message(f))) = stream(dat!("mpart01")) else {
        panic!("not framed")
    };
    assert_eq!(&f[..], dat!("mpart01"));
}

/// 3.1.1.12 Unusual Reason Phrase.
#[test]
fn unreason() {
    let m = valid(dat!("unreason"));
    assert_eq!(m.status(), Some(200));
    let reason = "= 2**3 * 5**2 \u{043d}\u{043e} \u{0441}\u{0442}\u{043e} \u{0434}\u{0435}\u{0432}\u{044f}\u{043d}\u{043e}\u{0441}\u{0442}\u{043e} \u{0434}\u{0435}\u{0432}\u{044f}\u{0442}\u{044c} - \u{043f}\u{0440}\u{043e}\u{0441}\u{0442}\u{043e}\u{0435}";
    assert_eq!(s(m.reason().unwrap()), reason);
    assert_eq!(m.body().len(), 154);
}

/// 3.1.1.13 Empty Reason Phrase.
#[test]
fn noreason() {
    let m = valid(dat!("noreason"));
    assert_eq!(m.status(), Some(100));
    assert_eq!(m.reason(), Some(&b""[..]));
}

// 3.1.2 Invalid messages

/// 3.1.2.1 Extraneous Header Field Separators: 400.
#[test]
fn badinv01() {
    let e = invalid(dat!("badinv01"));
    assert_eq!(e.kind, ErrorKind::BadVia);
    assert_eq!(e.header, Some(HeaderName::Via));
    assert_eq!(e.status_code(), 400);
    assert_eq!(e.reason_phrase(), "Bad Via");
    // The Contact's empty parameters are an error of their own.
    let m = parse(dat!("badinv01"));
    let Contacts::List(mut cs) = m.contacts().unwrap() else {
        panic!()
    };
    assert_eq!(cs.next().unwrap().unwrap_err().kind, ErrorKind::BadParam);
}

/// 3.1.2.2 Content Length Larger Than Message: 400 over UDP; a stream waits.
#[test]
fn clerr() {
    let m = parse(dat!("clerr"));
    assert_eq!(m.content_length(), Ok(Some(9999)));
    assert!(m.body().len() < 9999);
    let e = m.validate().unwrap_err();
    assert_eq!(e.kind, ErrorKind::BodyLengthMismatch);
    assert_eq!(e.status_code(), 400);
    // Over TCP there is nothing to do but wait for more.
    let mut f = StreamFramer::new(Limits::default());
    f.push(dat!("clerr"));
    assert_eq!(f.next_frame(), Ok(None));
    assert_eq!(f.buffered(), dat!("clerr").len());
}

/// 3.1.2.3 Negative Content-Length: error; unrecoverable on a stream.
#[test]
fn ncl() {
    let m = parse(dat!("ncl"));
    assert_eq!(m.validate().unwrap_err().kind, ErrorKind::BadContentLength);
    assert_eq!(
        m.content_length().unwrap_err().kind,
        ErrorKind::BadContentLength
    );
    assert_eq!(
        stream(dat!("ncl")).unwrap_err().kind,
        ErrorKind::BadContentLength
    );
}

/// 3.1.2.4 Request Scalar Fields with Overlarge Values: 400 for the CSeq.
#[test]
fn scalar02() {
    let m = parse(dat!("scalar02"));
    let e = m.validate().unwrap_err();
    assert_eq!(e.kind, ErrorKind::BadCSeq);
    assert_eq!(e.reason_phrase(), "Bad CSeq");
    // Each out-of-range field is detected on its own.
    assert_eq!(m.cseq().unwrap_err().kind, ErrorKind::BadCSeq);
    assert_eq!(
        m.max_forwards().unwrap_err().kind,
        ErrorKind::MaxForwardsOutOfRange
    );
    assert_eq!(m.expires().unwrap_err().kind, ErrorKind::ValueOutOfRange);
    let Contacts::List(mut cs) = m.contacts().unwrap() else {
        panic!()
    };
    let c = cs.next().unwrap().unwrap();
    assert_eq!(c.expires().unwrap_err().kind, ErrorKind::ValueOutOfRange);
}

/// 3.1.2.5 Response Scalar Fields with Overlarge Values: discarded.
#[test]
fn scalarlg() {
    let m = parse(dat!("scalarlg"));
    assert_eq!(m.status(), Some(503));
    assert_eq!(m.validate().unwrap_err().kind, ErrorKind::BadCSeq);
    assert_eq!(
        m.header(HeaderName::RetryAfter),
        Some(&b"949302838503028349304023988"[..])
    );
    assert_eq!(
        m.header(HeaderName::Warning),
        Some(&br#"1812 overture "In Progress""#[..])
    );
}

/// 3.1.2.6 Unterminated Quoted String in Display Name: 400.
#[test]
fn quotbal() {
    let e = invalid(dat!("quotbal"));
    assert_eq!(e.kind, ErrorKind::UnbalancedQuotes);
    assert_eq!(e.header, Some(HeaderName::To));
    assert_eq!(e.reason_phrase(), "Bad To");
}

/// 3.1.2.7 <> Enclosing Request-URI: 400.
#[test]
fn ltgtruri() {
    let m = parse(dat!("ltgtruri"));
    assert_eq!(m.request_uri_bytes(), Some(&b"<sip:user@example.com>"[..]));
    assert!(m.request_uri().is_none());
    let e = m.validate().unwrap_err();
    assert_eq!(e.kind, ErrorKind::BadRequestUri);
    assert_eq!(e.offset, 7);
}

/// 3.1.2.8 Malformed SIP Request-URI (embedded LWS): 400.
#[test]
fn lwsruri() {
    let m = parse(dat!("lwsruri"));
    assert!(m.request_uri().is_none());
    assert_eq!(m.validate().unwrap_err().kind, ErrorKind::BadRequestUri);
}

/// 3.1.2.9 Multiple SP Separating Request-Line Elements: may be rejected;
/// a liberal element must not forward the extra SP.
#[test]
fn lwsstart() {
    let mut m = parse(dat!("lwsstart"));
    assert_eq!(m.validate().unwrap_err().kind, ErrorKind::BadStartLine);
    // The liberal reading is available...
    assert_eq!(m.method(), Some(&Method::Invite));
    assert_eq!(m.request_uri().unwrap().as_str(), "sip:user@example.com");
    assert_eq!(m.version(), b"SIP/2.0");
    // ...and a forwarded copy has single SPs.
    m.set_request_uri("sip:user@example.com").unwrap();
    assert!(m
        .serialize()
        .starts_with(b"INVITE sip:user@example.com SIP/2.0\r\n"));
    assert_eq!(m.validate(), Ok(()));
}

/// 3.1.2.10 SP Characters at End of Request-Line: may be rejected; must
/// not be forwarded.
#[test]
fn trws() {
    let mut m = parse(dat!("trws"));
    assert_eq!(m.validate().unwrap_err().kind, ErrorKind::BadStartLine);
    assert_eq!(m.version(), b"SIP/2.0");
    assert_eq!(
        m.request_uri().unwrap().as_str(),
        "sip:remote-target@example.com"
    );
    m.set_request_uri("sip:remote-target@example.com").unwrap();
    assert!(m
        .serialize()
        .starts_with(b"OPTIONS sip:remote-target@example.com SIP/2.0\r\n"));
}

/// 3.1.2.11 Escaped Headers in SIP Request-URI: may be rejected with 400.
#[test]
fn escruri() {
    let m = parse(dat!("escruri"));
    assert_eq!(m.validate().unwrap_err().kind, ErrorKind::BadRequestUri);
    let ruri = m.request_uri().unwrap();
    let (name, value) = ruri.headers().next().unwrap();
    assert_eq!(name, "Route");
    assert_eq!(&*sip::pct_decode(value.as_bytes()), b"<sip:example.com>");
    // A proxy forwarding it must drop the headers from the Request-URI.
    let mut clean = ruri.to_owned();
    clean.clear_headers();
    let mut m2 = parse(dat!("escruri"));
    m2.set_request_uri(&clean.to_string()).unwrap();
    assert_eq!(m2.validate(), Ok(()));
}

/// 3.1.2.12 Invalid Time Zone in Date Header Field: be liberal.
#[test]
fn baddate() {
    let m = valid(dat!("baddate"));
    let date = m.header_str(HeaderName::Date).unwrap();
    assert_eq!(date, "Fri, 01 Jan 2010 16:00:00 EST");
    assert!(!date.ends_with("GMT"));
}

/// 3.1.2.13 Failure to Enclose name-addr URI in <>: 400.
#[test]
fn regbadct() {
    let e = invalid(dat!("regbadct"));
    assert_eq!(e.kind, ErrorKind::BadNameAddr);
    assert_eq!(e.header, Some(HeaderName::Contact));
    assert_eq!(e.reason_phrase(), "Bad Contact");
}

/// 3.1.2.14 Spaces within addr-spec: reasonable to reject with 400.
#[test]
fn badaspec() {
    let e = invalid(dat!("badaspec"));
    assert_eq!(e.kind, ErrorKind::BadNameAddr);
    assert_eq!(e.header, Some(HeaderName::To));
    // The From with a comma inside quotes is fine.
    let m = parse(dat!("badaspec"));
    assert_eq!(
        m.from().unwrap().display_name(),
        Some(&b"Bell, Alexander"[..])
    );
}

/// 3.1.2.15 Non-token Characters in Display Name: 400.
#[test]
fn baddn() {
    let e = invalid(dat!("baddn"));
    assert_eq!(e.kind, ErrorKind::BadNameAddr);
    assert_eq!(e.header, Some(HeaderName::From));
    let m = parse(dat!("baddn"));
    assert_eq!(m.to().unwrap_err().kind, ErrorKind::BadNameAddr);
}

/// 3.1.2.16 Unknown Protocol Version: 505.
#[test]
fn badvers() {
    let m = parse(dat!("badvers"));
    assert_eq!(m.version(), b"SIP/7.0");
    let e = m.validate().unwrap_err();
    assert_eq!(e.kind, ErrorKind::BadVersion);
    assert_eq!(e.status_code(), 505);
    assert_eq!(e.reason_phrase(), "Version Not Supported");
    // The 505 can be built from the request.
    let r = sip::response_to(&m, e.status_code(), e.reason_phrase(), Some("x"))
        .build()
        .unwrap();
    assert_eq!(r.status(), Some(505));
}

/// 3.1.2.17 Start Line and CSeq Method Mismatch: 400.
#[test]
fn mismatch01() {
    let e = invalid(dat!("mismatch01"));
    assert_eq!(e.kind, ErrorKind::CSeqMethodMismatch);
    assert_eq!(e.status_code(), 400);
}

/// 3.1.2.18 Unknown Method with CSeq Method Mismatch: 400 for the CSeq.
#[test]
fn mismatch02() {
    let m = parse(dat!("mismatch02"));
    assert_eq!(m.method(), Some(&Method::Other("NEWMETHOD".into())));
    assert_eq!(
        m.validate().unwrap_err().kind,
        ErrorKind::CSeqMethodMismatch
    );
}

/// 3.1.2.19 Overlarge Response Code: dropped.
#[test]
fn bigcode() {
    let e = Message::parse(Bytes::from_static(dat!("bigcode")), &Limits::default()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::BadStatusCode);
    assert_eq!(e.offset, 8);
}

// 3.2 Transaction-layer semantics

/// 3.2.1 Missing Transaction Identifier: reject, or fall back to RFC 2543
/// matching; both choices are available.
#[test]
fn badbranch() {
    let m = valid(dat!("badbranch"));
    let via = m.top_via().unwrap();
    assert_eq!(via.branch(), Some("z9hG4bK"));
    assert!(!via.has_rfc3261_branch());
    let strict = Validation {
        require_rfc3261_branch: true,
        ..Validation::default()
    };
    let e = m.validate_with(&strict).unwrap_err();
    assert_eq!(e.kind, ErrorKind::BadBranch);
    assert_eq!(e.status_code(), 400);
}

// 3.3 Application-layer semantics

/// 3.3.1 Missing Required Header Fields: 400.
#[test]
fn insuf() {
    let m = parse(dat!("insuf"));
    let e = m.validate().unwrap_err();
    assert_eq!(e.kind, ErrorKind::MissingHeader("From"));
    assert_eq!(e.reason_phrase(), "Missing From");
    for h in [
        HeaderName::From,
        HeaderName::To,
        HeaderName::CallId,
        HeaderName::MaxForwards,
    ] {
        assert!(!m.has_header(h));
    }
    assert_eq!(m.to().unwrap_err().kind, ErrorKind::MissingHeader("To"));
    assert_eq!(m.call_id(), None);
}

/// 3.3.2 Request-URI with Unknown Scheme: well formed; 416.
#[test]
fn unkscm() {
    let m = valid(dat!("unkscm"));
    let ruri = m.request_uri().unwrap();
    assert_eq!(ruri.scheme(), Scheme::Other("nobodyKnowsThisScheme"));
    assert_eq!(ruri.opaque(), "totallyopaquecontent");
    assert!(!ruri.is_sip());
}

/// 3.3.3 Request-URI with Known but Atypical Scheme: well formed.
#[test]
fn novelsc() {
    let m = valid(dat!("novelsc"));
    let ruri = m.request_uri().unwrap();
    assert_eq!(ruri.scheme(), Scheme::Other("soap.beep"));
    assert_eq!(ruri.opaque(), "//192.0.2.103:3002");
}

/// 3.3.4 Unknown URI Schemes in Header Fields: well formed; a registrar
/// rejects the non-SIP To.
#[test]
fn unksm2() {
    let m = valid(dat!("unksm2"));
    assert_eq!(m.to().unwrap().uri().scheme(), Scheme::Other("isbn"));
    assert_eq!(m.from().unwrap().uri().scheme(), Scheme::Other("http"));
    let Contacts::List(mut cs) = m.contacts().unwrap() else {
        panic!()
    };
    assert_eq!(
        cs.next().unwrap().unwrap().uri().scheme(),
        Scheme::Other("name")
    );
    assert!(!m.to().unwrap().uri().is_sip());
}

/// 3.3.5 Proxy-Require and Require: 420 listing the unknown extensions.
#[test]
fn bext01() {
    let m = valid(dat!("bext01"));
    let supported = ["path", "outbound", "gruu"];
    let req: Vec<_> = m
        .unsupported_tags(HeaderName::Require, &supported)
        .collect();
    assert_eq!(req, ["nothingSupportsThis", "nothingSupportsThisEither"]);
    let preq: Vec<_> = m
        .unsupported_tags(HeaderName::ProxyRequire, &supported)
        .collect();
    assert_eq!(preq, ["noProxiesSupportThis", "norDoAnyProxiesSupportThis"]);
}

/// 3.3.6 Unknown Content-Type: a proxy forwards it; an endpoint answers 415.
#[test]
fn invut() {
    let m = valid(dat!("invut"));
    let ct = m.content_type().unwrap().unwrap();
    assert_eq!((ct.mtype(), ct.subtype()), ("application", "unknownformat"));
    assert_eq!(ct.params().count(), 0);
    assert_eq!(m.body().len(), 40);
}

/// 3.3.7 Unknown Authorization Scheme: kept unmodified when forwarded.
#[test]
fn regaut01() {
    let raw = dat!("regaut01");
    let mut m = valid(raw);
    assert_eq!(
        m.header(HeaderName::Authorization),
        Some(&b"NoOneKnowsThisScheme opaque-data=here"[..])
    );
    m.prepend_via("SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp")
        .unwrap();
    m.decrement_max_forwards().unwrap();
    let out = m.serialize();
    let line = b"Authorization: NoOneKnowsThisScheme opaque-data=here\r\n";
    assert!(out.windows(line.len()).any(|w| w == line));
}

/// 3.3.8 Multiple Values in Single Value Required Fields: 400.
#[test]
fn multi01() {
    let m = parse(dat!("multi01"));
    for h in [
        HeaderName::CallId,
        HeaderName::CSeq,
        HeaderName::From,
        HeaderName::To,
        HeaderName::MaxForwards,
    ] {
        assert_eq!(m.header_count(h), 2, "{h}");
    }
    let e = m.validate().unwrap_err();
    assert_eq!(e.kind, ErrorKind::DuplicateHeader("From"));
    assert_eq!(e.status_code(), 400);
}

/// 3.3.9 Multiple Content-Length Values: error; unrecoverable on a stream.
#[test]
fn mcl01() {
    let m = parse(dat!("mcl01"));
    assert_eq!(m.header_count(HeaderName::ContentLength), 2);
    assert_eq!(
        m.validate().unwrap_err().kind,
        ErrorKind::DuplicateHeader("Content-Length")
    );
    assert_eq!(
        stream(dat!("mcl01")).unwrap_err().kind,
        ErrorKind::DuplicateHeader("Content-Length")
    );
}

/// 3.3.10 200 OK Response with Broadcast Via Header Field Value: processed normally.
#[test]
fn bcast() {
    let m = valid(dat!("bcast"));
    let vias: Vec<_> = m.vias().collect::<Result<_, _>>().unwrap();
    assert_eq!(vias[1].host(), Host::Ipv4(Ipv4Addr::BROADCAST));
    // A proxy removes its own Via and forwards on the next.
    let mut fwd = parse(dat!("bcast"));
    fwd.pop_via().unwrap();
    assert_eq!(
        fwd.top_via().unwrap().host(),
        Host::Ipv4(Ipv4Addr::BROADCAST)
    );
}

/// 3.3.11 Max-Forwards of Zero: a proxy answers 483, an endpoint processes it.
#[test]
fn zeromf() {
    let mut m = valid(dat!("zeromf"));
    assert_eq!(m.max_forwards(), Ok(Some(0)));
    let e = m.decrement_max_forwards().unwrap_err();
    assert_eq!(e.kind, ErrorKind::TooManyHops);
    assert_eq!(e.status_code(), 483);
    assert!(!m.is_edited());
}

/// 3.3.12 REGISTER with a Contact Header Parameter.
#[test]
fn cparam01() {
    let m = valid(dat!("cparam01"));
    let Contacts::List(mut cs) = m.contacts().unwrap() else {
        panic!()
    };
    let c = cs.next().unwrap().unwrap();
    // A contact-param, not a URI parameter.
    assert!(!c.is_bracketed());
    assert!(!c.uri().has_param("unknownparam"));
    assert_eq!(c.param("unknownparam").unwrap().value, None);
    assert_eq!(c.uri().as_str(), "sip:+19725552222@gw1.example.net");
}

/// 3.3.13 REGISTER with a URL Parameter.
#[test]
fn cparam02() {
    let m = valid(dat!("cparam02"));
    let Contacts::List(mut cs) = m.contacts().unwrap() else {
        panic!()
    };
    let c = cs.next().unwrap().unwrap();
    assert!(c.uri().has_param("unknownparam"));
    assert!(c.param("unknownparam").is_none());
    // The binding keeps the URI parameter.
    assert_eq!(
        c.uri().to_owned().to_string(),
        "sip:+19725552222@gw1.example.net;unknownparam"
    );
}

/// 3.3.14 REGISTER with a URL Escaped Header: kept in the binding.
#[test]
fn regescrt() {
    let m = valid(dat!("regescrt"));
    let Contacts::List(mut cs) = m.contacts().unwrap() else {
        panic!()
    };
    let c = cs.next().unwrap().unwrap();
    let (name, value) = c.uri().headers().next().unwrap();
    assert_eq!(name, "Route");
    assert_eq!(
        sip::pct_decode(value.as_bytes()),
        Cow::<[u8]>::Borrowed(b"<sip:sip.example.com>")
    );
    assert_eq!(
        c.uri().to_owned().to_string(),
        "sip:user@example.com?Route=%3Csip:sip.example.com%3E"
    );
}

/// 3.3.15 Unacceptable Accept Offering: the answer cannot carry SDP.
#[test]
fn sdp01() {
    let m = valid(dat!("sdp01"));
    assert_eq!(
        m.header_values(HeaderName::Accept).collect::<Vec<_>>(),
        [&b"text/nobodyKnowsThis"[..]]
    );
    assert!(!m.accepts("application", "sdp"));
    assert!(m.accepts("text", "nobodyknowsthis"));
}

// 3.4 Backward compatibility

/// 3.4.1 INVITE with RFC 2543 Syntax: accepted by elements keeping
/// backward compatibility.
#[test]
fn inv2543() {
    let raw = dat!("inv2543");
    let m = parse(raw);
    // No Max-Forwards: RFC 3261 validation flags it...
    assert_eq!(
        m.validate().unwrap_err().kind,
        ErrorKind::MissingHeader("Max-Forwards")
    );
    // ...RFC 2543-compatible validation accepts it.
    assert_eq!(m.validate_with(&Validation::rfc2543_compatible()), Ok(()));
    assert_eq!(m.max_forwards(), Ok(None));
    // No branch, no From tag, no Content-Length: the body is the rest.
    assert_eq!(m.top_via().unwrap().branch(), None);
    assert_eq!(m.top_via_branch(), None);
    assert_eq!(m.from().unwrap().tag(), None);
    assert_eq!(m.content_length(), Ok(None));
    let body_at = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(m.body(), &raw[body_at..]);
    assert!(m.body().starts_with(b"v=0\r\n"));
    let rr: Vec<NameAddr> = m.record_routes().collect::<Result<_, _>>().unwrap();
    assert_eq!(rr[0].uri().maddr(), Some("ss1.example.com"));
    assert_eq!(
        m.to().unwrap().param("user").map(|p| p.value),
        Some(Some("phone"))
    );
}
