//! The signalling core driven end to end in memory: SIP text goes in through
//! `on_message`, timers fire through `on_timer` on a simulated clock, and
//! every `Output` is parsed back and checked. No sockets, no sleeping.

use bytes::Bytes;
use signal::auth::{Directory, UserRecord};
use signal::registrar::Change;
use signal::{
    CallState, Core, CoreConfig, Dest, MediaHook, MediaPeer, MediaSide, Output, Source, Transport,
};
use sip::digest::{self, Algorithm, Secret, StoredHa1};
use sip::{HeaderName, Limits, Message, Method};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const DOMAIN: &str = "127.0.0.1";
const UNIX0: u64 = 1_700_000_000;
const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                   m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn password(user: &str) -> String {
    format!("pw-{user}")
}

fn record(name: &str) -> UserRecord {
    let ha1 = StoredHa1::from_password(name, DOMAIN, &password(name));
    UserRecord {
        username: name.into(),
        extension: None,
        display_name: None,
        realm: DOMAIN.into(),
        ha1_md5: ha1.md5,
        ha1_sha256: ha1.sha256,
        enabled: true,
        caller_id: None,
        max_calls: None,
        scope: Default::default(),
    }
}

// ----- the gateway under test -------------------------------------------

/// One output of the core, with the bytes of a send parsed.
#[derive(Debug)]
enum Out {
    Send(Dest, Message),
    Binding(Change),
}

struct Gw {
    core: Core,
    start: Instant,
    now: Instant,
    /// Added to the wall clock derived from `now`, to age nonces alone.
    unix_skew: u64,
    /// Call records reported so far.
    records: Vec<signal::trunk::CallRecord>,
}

impl Gw {
    fn new() -> Gw {
        Gw::with(|_| {})
    }

    fn with(tweak: impl FnOnce(&mut CoreConfig)) -> Gw {
        let listeners = vec![
            (Transport::Udp, addr("127.0.0.1:5060")),
            (Transport::Tcp, addr("127.0.0.1:5060")),
            (Transport::Wss, addr("127.0.0.1:7443")),
        ];
        let mut cfg = CoreConfig::new(DOMAIN, listeners);
        tweak(&mut cfg);
        let mut core = Core::new(cfg, [7; 32], 42);
        core.set_users(Directory::new(
            ["1000", "1001", "1002"].into_iter().map(record),
        ));
        let start = Instant::now();
        Gw {
            core,
            start,
            now: start,
            unix_skew: 0,
            records: Vec::new(),
        }
    }

    fn unix(&self) -> u64 {
        UNIX0 + self.unix_skew + (self.now - self.start).as_secs()
    }

    fn outputs(&mut self) -> Vec<Out> {
        let mut v = Vec::new();
        while let Some(o) = self.core.poll_output() {
            v.push(match o {
                Output::Send { dest, data } => {
                    let m = Message::parse(data.clone(), &Limits::default()).unwrap_or_else(|e| {
                        panic!(
                            "unparsable output ({e}):\n{}",
                            String::from_utf8_lossy(&data)
                        )
                    });
                    Out::Send(dest, m)
                }
                Output::Binding(c) => Out::Binding(c),
                Output::CallEnded(r) => {
                    self.records.push(r);
                    continue;
                }
                Output::PingResult { .. } => continue,
            });
        }
        v
    }

    fn feed(&mut self, src: Source, data: impl AsRef<[u8]>) -> Vec<Out> {
        let unix = self.unix();
        self.core
            .on_message(src, Bytes::copy_from_slice(data.as_ref()), self.now, unix);
        self.outputs()
    }

    /// Moves the clock forward by `d`, calling `on_timer` at every deadline
    /// on the way, as the driver does. Returns the outputs with the time
    /// (since the call) they were produced at.
    fn advance(&mut self, d: Duration) -> Vec<(Duration, Out)> {
        let from = self.now;
        let target = self.now + d;
        let mut v = Vec::new();
        for _ in 0..10_000 {
            match self.core.next_deadline() {
                Some(t) if t <= target => {
                    self.now = self.now.max(t);
                    let unix = self.unix();
                    self.core.on_timer(self.now, unix);
                    let at = self.now - from;
                    v.extend(self.outputs().into_iter().map(|o| (at, o)));
                }
                _ => break,
            }
        }
        self.now = target;
        v
    }

    /// `advance` when only the sends matter, without their times.
    fn run(&mut self, d: Duration) -> Vec<Out> {
        self.advance(d).into_iter().map(|(_, o)| o).collect()
    }
}

// ----- output helpers -----------------------------------------------------

fn text(m: &Message) -> String {
    String::from_utf8_lossy(&m.serialize()).into_owned()
}

fn dump(outs: &[Out]) -> String {
    outs.iter()
        .map(|o| match o {
            Out::Send(d, m) => format!("-> {d:?}\n{}", text(m)),
            Out::Binding(c) => format!("binding {c:?}\n"),
        })
        .collect()
}

fn sends(outs: &[Out]) -> Vec<(Dest, &Message)> {
    outs.iter()
        .filter_map(|o| match o {
            Out::Send(d, m) => Some((*d, m)),
            Out::Binding(_) => None,
        })
        .collect()
}

fn bindings(outs: &[Out]) -> Vec<&Change> {
    outs.iter()
        .filter_map(|o| match o {
            Out::Binding(c) => Some(c),
            Out::Send(..) => None,
        })
        .collect()
}

/// The only output, which must be a send.
fn one(outs: Vec<Out>) -> (Dest, Message) {
    assert_eq!(outs.len(), 1, "expected one output, got:\n{}", dump(&outs));
    match outs.into_iter().next().unwrap() {
        Out::Send(d, m) => (d, m),
        Out::Binding(c) => panic!("expected a send, got {c:?}"),
    }
}

/// The only send to `dest` (other outputs allowed).
fn sent_to(outs: &[Out], dest: Dest) -> &Message {
    let v: Vec<_> = sends(outs)
        .into_iter()
        .filter(|(d, _)| *d == dest)
        .collect();
    assert_eq!(
        v.len(),
        1,
        "expected one send to {dest:?}, got:\n{}",
        dump(outs)
    );
    v[0].1
}

fn status(m: &Message) -> u16 {
    m.status()
        .unwrap_or_else(|| panic!("not a response:\n{}", text(m)))
}

fn reason(m: &Message) -> String {
    String::from_utf8_lossy(m.reason().unwrap_or_default()).into_owned()
}

fn method(m: &Message) -> &str {
    m.method()
        .map(|m| m.as_str())
        .unwrap_or_else(|| panic!("not a request:\n{}", text(m)))
}

fn hv(m: &Message, name: &str) -> Vec<String> {
    m.headers(name)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

fn h1(m: &Message, name: &str) -> String {
    m.header_str(name)
        .unwrap_or_else(|| panic!("no {name} in:\n{}", text(m)))
        .to_owned()
}

fn vias(m: &Message) -> Vec<String> {
    m.header_values(HeaderName::Via)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

/// Record-Route URIs without the per-call token (asserted apart).
fn record_routes(m: &Message) -> Vec<String> {
    m.record_routes()
        .map(|r| {
            let uri = r.unwrap().uri().as_str().to_owned();
            match uri.find(";cgt=") {
                Some(i) => {
                    let rest = &uri[i + 5..];
                    let end = rest.find(';').map_or(uri.len(), |j| i + 5 + j);
                    format!("{}{}", &uri[..i], &uri[end..])
                }
                None => uri,
            }
        })
        .collect()
}

fn to_tag(m: &Message) -> String {
    m.to().unwrap().tag().expect("To tag").to_owned()
}

/// The credentials answering the challenge with `alg` in a 401/407.
fn credentials(
    challenge: &Message,
    alg: Algorithm,
    method: &str,
    uri: &str,
    user: &str,
    pw: &str,
) -> String {
    let name = match status(challenge) {
        401 => HeaderName::WwwAuthenticate,
        407 => HeaderName::ProxyAuthenticate,
        s => panic!("{s} is not a challenge"),
    };
    let ch = challenge
        .headers(name)
        .filter_map(|v| digest::parse_challenge(std::str::from_utf8(v).ok()?).ok())
        .find(|c| c.algorithm == alg)
        .unwrap_or_else(|| panic!("no {alg} challenge in:\n{}", text(challenge)))
        .into_owned();
    digest::authorize(&ch, method, uri, user, Secret::Password(pw), "0a4f113b", 1).unwrap()
}

/// A response from a user agent to a request it received.
fn answer(req: &Message, code: u16, reason: &str, tag: &str, contact: Option<&str>) -> Vec<u8> {
    let mut b = sip::response_to(req, code, reason, Some(tag));
    if (101..300).contains(&code) && req.method() == Some(&Method::Invite) {
        b = b.copy_record_route();
    }
    if let Some(c) = contact {
        b = b.header("Contact", &format!("<{c}>"));
    }
    b.to_bytes().unwrap()
}

/// Builds a request; `Max-Forwards: 70` and `Content-Length` are added
/// unless given.
fn request(method: &str, ruri: &str, headers: &[(&str, String)], body: Option<&str>) -> String {
    let mut s = format!("{method} {ruri} SIP/2.0\r\n");
    for (n, v) in headers {
        s.push_str(&format!("{n}: {v}\r\n"));
    }
    if !headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("Max-Forwards"))
    {
        s.push_str("Max-Forwards: 70\r\n");
    }
    let body = body.unwrap_or("");
    if !body.is_empty() {
        s.push_str("Content-Type: application/sdp\r\n");
    }
    s.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s
}

// ----- user agents --------------------------------------------------------

/// A simulated user agent: a browser on a WSS flow or a phone on UDP.
#[derive(Debug, Clone)]
struct Ua {
    user: String,
    src: Source,
    /// Via sent-by.
    sent_by: String,
    contact: String,
    instance: Option<String>,
    n: u32,
    reg_cseq: u32,
}

impl Ua {
    fn wss(user: &str, flow: u64) -> Ua {
        Ua {
            user: user.into(),
            src: Source {
                transport: Transport::Wss,
                flow: Some(flow),
                addr: addr(&format!("127.0.0.1:{}", 40000 + flow)),
                local: addr("127.0.0.1:7443"),
            },
            sent_by: format!("h{flow}.invalid"),
            contact: format!("sip:c{flow}@h{flow}.invalid;transport=ws"),
            instance: Some(format!("urn:uuid:00000000-0000-4000-8000-{flow:012}")),
            n: 0,
            reg_cseq: 0,
        }
    }

    fn udp(user: &str, port: u16) -> Ua {
        Ua {
            user: user.into(),
            src: Source {
                transport: Transport::Udp,
                flow: None,
                addr: addr(&format!("127.0.0.1:{port}")),
                local: addr("127.0.0.1:5060"),
            },
            sent_by: format!("127.0.0.1:{port}"),
            contact: format!("sip:{user}@127.0.0.1:{port}"),
            instance: None,
            n: 0,
            reg_cseq: 0,
        }
    }

    /// Where the gateway sends to this UA.
    fn dest(&self) -> Dest {
        match self.src.flow {
            Some(f) => Dest::Flow(f),
            None => Dest::Addr(self.src.transport, self.src.addr),
        }
    }

    fn aor(&self) -> String {
        format!("sip:{}@{DOMAIN}", self.user)
    }

    fn from(&self, tag: &str) -> String {
        format!("<{}>;tag={tag}", self.aor())
    }

    fn next(&mut self) -> u32 {
        self.n += 1;
        self.n
    }

    fn branch(&mut self) -> String {
        let n = self.next();
        format!("z9hG4bK{}b{n}", self.user)
    }

    fn via(&self, branch: &str) -> String {
        match self.src.transport {
            Transport::Udp => format!("SIP/2.0/UDP {};branch={branch};rport", self.sent_by),
            t => format!("SIP/2.0/{} {};branch={branch}", t.via_token(), self.sent_by),
        }
    }

    fn register_req(&mut self, extra: &[(&str, String)], contact: Option<&str>) -> String {
        self.reg_cseq += 1;
        let branch = self.branch();
        let contact = contact
            .map(str::to_owned)
            .unwrap_or_else(|| match &self.instance {
                Some(i) => format!("<{}>;+sip.instance=\"<{i}>\";reg-id=1", self.contact),
                None => format!("<{}>", self.contact),
            });
        let mut h = vec![
            ("Via", self.via(&branch)),
            ("To", format!("<{}>", self.aor())),
            ("From", self.from(&format!("r{}", self.user))),
            (
                "Call-ID",
                format!("reg-{}-{}", self.user, self.src.addr.port()),
            ),
            ("CSeq", format!("{} REGISTER", self.reg_cseq)),
            ("Contact", contact),
        ];
        if !extra.iter().any(|(n, _)| *n == "Expires") {
            h.push(("Expires", "600".into()));
        }
        h.extend(extra.iter().cloned());
        request("REGISTER", &format!("sip:{DOMAIN}"), &h, None)
    }

    /// A full registration: the 401 round, then SHA-256 credentials.
    /// Returns the 200.
    fn register(&mut self, gw: &mut Gw) -> Message {
        let first = self.register_req(&[("Supported", "path, gruu, outbound".into())], None);
        let (d, challenge) = one(gw.feed(self.src, first));
        assert_eq!(d, self.dest());
        assert_eq!(status(&challenge), 401, "{}", text(&challenge));
        let auth = credentials(
            &challenge,
            Algorithm::Sha256,
            "REGISTER",
            &format!("sip:{DOMAIN}"),
            &self.user,
            &password(&self.user),
        );
        let second = self.register_req(
            &[
                ("Supported", "path, gruu, outbound".into()),
                ("Authorization", auth),
            ],
            None,
        );
        let outs = gw.feed(self.src, second);
        let ok = sent_to(&outs, self.dest()).clone();
        assert_eq!(status(&ok), 200, "{}", text(&ok));
        ok
    }

    /// An out-of-dialog request from this UA.
    fn out_of_dialog(
        &mut self,
        method: &str,
        to_user: &str,
        cseq: u32,
        extra: &[(&str, String)],
        body: Option<&str>,
    ) -> (Call, String) {
        let n = self.next();
        let call = Call {
            call_id: format!("call-{}-{n}@test", self.user),
            from_tag: format!("ft{}x{n}", self.user),
            ruri: format!("sip:{to_user}@{DOMAIN}"),
            to: format!("<sip:{to_user}@{DOMAIN}>"),
            branch: self.branch(),
            cseq,
            sent: String::new(),
        };
        let text = self.call_request(method, &call, extra, body);
        (
            Call {
                sent: text.clone(),
                ..call
            },
            text,
        )
    }

    fn call_request(
        &self,
        method: &str,
        call: &Call,
        extra: &[(&str, String)],
        body: Option<&str>,
    ) -> String {
        let mut h = vec![
            ("Via", self.via(&call.branch)),
            ("From", self.from(&call.from_tag)),
            ("To", call.to.clone()),
            ("Call-ID", call.call_id.clone()),
            ("CSeq", format!("{} {method}", call.cseq)),
        ];
        if method == "INVITE" {
            h.push(("Contact", format!("<{}>", self.contact)));
        }
        h.extend(extra.iter().cloned());
        request(method, &call.ruri, &h, body)
    }

    /// INVITE (or MESSAGE) to `to_user`: the 407 round (with its ACK for an
    /// INVITE), then the request with Proxy-Authorization. Returns the call
    /// and the outputs of the authenticated request.
    fn call(&mut self, gw: &mut Gw, method: &str, to_user: &str) -> (Call, Vec<Out>) {
        let body = (method == "INVITE").then_some(SDP);
        let (mut call, first) = self.out_of_dialog(method, to_user, 1, &[], body);
        let (d, challenge) = one(gw.feed(self.src, &first));
        assert_eq!(d, self.dest());
        assert_eq!(status(&challenge), 407, "{}", text(&challenge));
        let challenges = hv(&challenge, "Proxy-Authenticate");
        assert_eq!(challenges.len(), 2);
        assert!(
            challenges[0].contains("algorithm=SHA-256"),
            "{challenges:?}"
        );
        assert!(challenges[1].contains("algorithm=MD5"), "{challenges:?}");
        if method == "INVITE" {
            // The ACK for the 407 is hop by hop and ends here.
            let ack = request(
                "ACK",
                &call.ruri,
                &[
                    ("Via", self.via(&call.branch)),
                    ("From", self.from(&call.from_tag)),
                    ("To", h1(&challenge, "To")),
                    ("Call-ID", call.call_id.clone()),
                    ("CSeq", "1 ACK".into()),
                ],
                None,
            );
            let outs = gw.feed(self.src, ack);
            assert!(outs.is_empty(), "ACK for 407 leaked:\n{}", dump(&outs));
        }
        let auth = credentials(
            &challenge,
            Algorithm::Sha256,
            method,
            &call.ruri,
            &self.user,
            &password(&self.user),
        );
        call.cseq = 2;
        call.branch = self.branch();
        let second = self.call_request(method, &call, &[("Proxy-Authorization", auth)], body);
        call.sent = second.clone();
        let outs = gw.feed(self.src, second);
        (call, outs)
    }

    /// A request inside a dialog this UA started, along `route`.
    fn in_dialog(
        &mut self,
        method: &str,
        call: &Call,
        remote_target: &str,
        remote_tag: &str,
        route: &[String],
        cseq: u32,
    ) -> String {
        let branch = self.branch();
        let mut h = vec![
            ("Via", self.via(&branch)),
            ("From", self.from(&call.from_tag)),
            ("To", format!("{};tag={remote_tag}", call.to)),
            ("Call-ID", call.call_id.clone()),
            ("CSeq", format!("{cseq} {method}")),
        ];
        for r in route {
            h.push(("Route", format!("<{r}>")));
        }
        request(method, remote_target, &h, None)
    }
}

/// What a caller remembers of its request.
#[derive(Debug, Clone)]
struct Call {
    call_id: String,
    from_tag: String,
    ruri: String,
    to: String,
    branch: String,
    cseq: u32,
    /// The last request text sent for it (to retransmit).
    sent: String,
}

fn registered(gw: &mut Gw, mut ua: Ua) -> Ua {
    ua.register(gw);
    ua
}

/// Caller 1000 on WSS flow 1, callee 1001 on WSS flow 2, both registered.
fn two_browsers() -> (Gw, Ua, Ua) {
    let mut gw = Gw::new();
    let a = registered(&mut gw, Ua::wss("1000", 1));
    let b = registered(&mut gw, Ua::wss("1001", 2));
    (gw, a, b)
}

// ----- 1. OPTIONS and Max-Forwards -----------------------------------------

#[test]
fn options_to_the_gateway_and_max_forwards() {
    let mut gw = Gw::new();
    let mut ua = Ua::udp("1000", 5070);
    let (_, opts) = ua.out_of_dialog("OPTIONS", "x", 1, &[], None);
    let opts = opts.replace("OPTIONS sip:x@127.0.0.1", "OPTIONS sip:127.0.0.1");
    let (d, ok) = one(gw.feed(ua.src, &opts));
    assert_eq!(d, Dest::Addr(Transport::Udp, addr("127.0.0.1:5070")));
    assert_eq!(status(&ok), 200);
    let allow = h1(&ok, "Allow");
    for m in [
        "INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "REGISTER", "MESSAGE",
    ] {
        assert!(allow.contains(m), "{allow}");
    }
    // received/rport were stamped on the Via we echo.
    let via = &vias(&ok)[0];
    assert!(via.contains("rport=5070"), "{via}");

    // Max-Forwards: 0 on an OPTIONS for us: answered, not refused.
    let (_, opts0) = ua.out_of_dialog("OPTIONS", "x", 1, &[("Max-Forwards", "0".into())], None);
    let opts0 = opts0.replace("OPTIONS sip:x@127.0.0.1", "OPTIONS sip:127.0.0.1");
    let (_, ok) = one(gw.feed(ua.src, &opts0));
    assert_eq!(status(&ok), 200);
    assert!(ok.has_header("Allow"));

    // Any other request with Max-Forwards: 0 cannot go further.
    let (_, inv) = ua.out_of_dialog(
        "INVITE",
        "1001",
        1,
        &[("Max-Forwards", "0".into())],
        Some(SDP),
    );
    let (d, hops) = one(gw.feed(ua.src, &inv));
    assert_eq!(d, ua.dest());
    assert_eq!(status(&hops), 483);
    assert_eq!(reason(&hops), "Too Many Hops");
}

// ----- 2. REGISTER and digest authentication -------------------------------

#[test]
fn register_over_wss_challenge_sha256_and_gruu() {
    let mut gw = Gw::new();
    let mut ua = Ua::wss("1000", 1);
    let req = ua.register_req(&[("Supported", "path, gruu, outbound".into())], None);
    let (d, challenge) = one(gw.feed(ua.src, &req));
    assert_eq!(d, Dest::Flow(1));
    assert_eq!(status(&challenge), 401);
    let www = hv(&challenge, "WWW-Authenticate");
    assert_eq!(www.len(), 2, "{www:?}");
    assert!(
        www[0].starts_with("Digest ") && www[0].contains("algorithm=SHA-256"),
        "{www:?}"
    );
    assert!(www[1].contains("algorithm=MD5"), "{www:?}");
    assert!(www
        .iter()
        .all(|w| w.contains("realm=\"127.0.0.1\"") && w.contains("qop=\"auth\"")));
    assert!(!www[0].contains("stale"), "{www:?}");
    // A browser's Via gets received and rport so the answer can find it.
    assert!(vias(&challenge)[0].contains("received=127.0.0.1;rport=40001"));

    let auth = credentials(
        &challenge,
        Algorithm::Sha256,
        "REGISTER",
        "sip:127.0.0.1",
        "1000",
        "pw-1000",
    );
    let req = ua.register_req(
        &[
            ("Supported", "path, gruu, outbound".into()),
            ("Authorization", auth),
        ],
        None,
    );
    let outs = gw.feed(ua.src, &req);
    let changes = bindings(&outs);
    assert_eq!(changes.len(), 1, "{}", dump(&outs));
    let Change::Upsert(b) = changes[0] else {
        panic!("{:?}", changes[0]);
    };
    assert_eq!(b.aor, "sip:1000@127.0.0.1");
    assert_eq!(b.contact, "sip:c1@h1.invalid;transport=ws");
    assert_eq!(b.flow, Some(1));
    assert_eq!(b.transport, Transport::Wss);
    assert_eq!(b.expires_at, UNIX0 + 600);
    let ok = sent_to(&outs, Dest::Flow(1));
    assert_eq!(status(ok), 200);
    let contacts = hv(ok, "Contact");
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    let c = &contacts[0];
    assert!(c.starts_with("<sip:c1@h1.invalid;transport=ws>"), "{c}");
    assert!(c.contains(";expires=600"), "{c}");
    assert!(
        c.contains(
            "pub-gruu=\"sip:1000@127.0.0.1;gr=urn:uuid:00000000-0000-4000-8000-000000000001\""
        ),
        "{c}"
    );
    assert!(
        c.contains("+sip.instance=\"<urn:uuid:00000000-0000-4000-8000-000000000001>\""),
        "{c}"
    );
    assert!(c.contains("reg-id=1"), "{c}");
    assert_eq!(gw.core.location().count(), 1);

    // Without `Supported: gruu` there is no GRUU.
    let mut other = Ua::wss("1001", 2);
    let req = other.register_req(&[], None);
    let (_, challenge) = one(gw.feed(other.src, &req));
    let auth = credentials(
        &challenge,
        Algorithm::Sha256,
        "REGISTER",
        "sip:127.0.0.1",
        "1001",
        "pw-1001",
    );
    let req = other.register_req(&[("Authorization", auth)], None);
    let outs = gw.feed(other.src, &req);
    let ok = sent_to(&outs, Dest::Flow(2));
    assert_eq!(status(ok), 200);
    assert!(!h1(ok, "Contact").contains("gruu"));
}

#[test]
fn register_with_md5_credentials() {
    let mut gw = Gw::new();
    let mut ua = Ua::udp("1001", 5070);
    let req = ua.register_req(&[], None);
    let (d, challenge) = one(gw.feed(ua.src, &req));
    assert_eq!(d, Dest::Addr(Transport::Udp, addr("127.0.0.1:5070")));
    let auth = credentials(
        &challenge,
        Algorithm::Md5,
        "REGISTER",
        "sip:127.0.0.1",
        "1001",
        "pw-1001",
    );
    assert!(auth.contains("algorithm=MD5"));
    let outs = gw.feed(ua.src, ua.register_req(&[("Authorization", auth)], None));
    let ok = sent_to(&outs, ua.dest());
    assert_eq!(status(ok), 200);
    assert!(h1(ok, "Contact").starts_with("<sip:1001@127.0.0.1:5070>;expires=600"));
    let Change::Upsert(b) = bindings(&outs)[0] else {
        panic!()
    };
    assert_eq!(b.flow, None, "UDP bindings have no flow");
    assert_eq!(b.source, addr("127.0.0.1:5070"));
}

#[test]
fn wrong_password_is_forbidden_and_repeated_failures_block_the_address() {
    let mut gw = Gw::new();
    let mut ua = Ua::wss("1000", 1);
    let (_, challenge) = one(gw.feed(ua.src, ua.register_req(&[], None)));
    let wrong = credentials(
        &challenge,
        Algorithm::Sha256,
        "REGISTER",
        "sip:127.0.0.1",
        "1000",
        "nope",
    );
    let right = credentials(
        &challenge,
        Algorithm::Sha256,
        "REGISTER",
        "sip:127.0.0.1",
        "1000",
        "pw-1000",
    );

    let (_, r) = one(gw.feed(
        ua.src,
        ua.register_req(&[("Authorization", wrong.clone())], None),
    ));
    assert_eq!(status(&r), 403);
    assert!(!r.has_header("WWW-Authenticate"));
    // Nine more: the tenth failure reaches the limit (max_auth_failures = 10).
    for _ in 0..9 {
        let (_, r) = one(gw.feed(
            ua.src,
            ua.register_req(&[("Authorization", wrong.clone())], None),
        ));
        assert_eq!(status(&r), 403);
    }
    // Now even the right password is refused from this address...
    let (_, r) = one(gw.feed(
        ua.src,
        ua.register_req(&[("Authorization", right.clone())], None),
    ));
    assert_eq!(status(&r), 403);
    assert_eq!(reason(&r), "Too Many Failed Attempts");
    // ...and so is a request without credentials: no challenge to grind on.
    let (_, r) = one(gw.feed(ua.src, ua.register_req(&[], None)));
    assert_eq!(
        (status(&r), reason(&r).as_str()),
        (403, "Too Many Failed Attempts")
    );
    assert!(gw.core.stats.auth_failures >= 12);
    assert_eq!(gw.core.location().count(), 0);

    // Another address is not affected.
    let mut elsewhere = ua.clone();
    elsewhere.src.addr = addr("127.0.0.2:40001");
    elsewhere.src.flow = Some(9);
    elsewhere.n = 1000;
    let outs = gw.feed(
        elsewhere.src,
        elsewhere.register_req(&[("Authorization", right)], None),
    );
    assert_eq!(status(sent_to(&outs, Dest::Flow(9))), 200);

    // After the window (60 s) the address may try again.
    gw.unix_skew += 61;
    ua.register(&mut gw);
}

#[test]
fn stale_nonce_is_challenged_again_with_stale_true() {
    let mut gw = Gw::new();
    let mut ua = Ua::wss("1000", 1);
    let (_, challenge) = one(gw.feed(ua.src, ua.register_req(&[], None)));
    let auth = credentials(
        &challenge,
        Algorithm::Sha256,
        "REGISTER",
        "sip:127.0.0.1",
        "1000",
        "pw-1000",
    );
    let outs = gw.feed(
        ua.src,
        ua.register_req(&[("Authorization", auth.clone())], None),
    );
    assert_eq!(status(sent_to(&outs, Dest::Flow(1))), 200);
    // Past nonce_max_age (300 s) the same, correct, credentials are stale.
    gw.unix_skew += 301;
    let (_, r) = one(gw.feed(ua.src, ua.register_req(&[("Authorization", auth)], None)));
    assert_eq!(status(&r), 401);
    let www = hv(&r, "WWW-Authenticate");
    assert_eq!(www.len(), 2);
    assert!(www.iter().all(|w| w.contains("stale=true")), "{www:?}");
    // Not counted as a failure.
    assert_eq!(gw.core.stats.auth_failures, 0);
    // The fresh nonce works.
    let auth = credentials(
        &r,
        Algorithm::Sha256,
        "REGISTER",
        "sip:127.0.0.1",
        "1000",
        "pw-1000",
    );
    let outs = gw.feed(ua.src, ua.register_req(&[("Authorization", auth)], None));
    assert_eq!(status(sent_to(&outs, Dest::Flow(1))), 200);
}

#[test]
fn credentials_for_another_request_uri_are_refused() {
    let mut gw = Gw::new();
    let mut ua = Ua::wss("1000", 1);
    let (_, challenge) = one(gw.feed(ua.src, ua.register_req(&[], None)));
    // Digest computed over another URI: a replayed Authorization.
    let auth = credentials(
        &challenge,
        Algorithm::Sha256,
        "REGISTER",
        "sip:other.example",
        "1000",
        "pw-1000",
    );
    let (_, r) = one(gw.feed(ua.src, ua.register_req(&[("Authorization", auth)], None)));
    assert_eq!(status(&r), 400, "{}", text(&r));
    assert_eq!(reason(&r), "Credentials URI Mismatch");
    assert_eq!(gw.core.location().count(), 0);
}

// ----- 3. Registrar --------------------------------------------------------

#[test]
fn register_too_brief_then_wildcard_removal() {
    let mut gw = Gw::new();
    let mut ua = Ua::wss("1000", 1);
    let (_, challenge) = one(gw.feed(ua.src, ua.register_req(&[], None)));
    let auth = credentials(
        &challenge,
        Algorithm::Sha256,
        "REGISTER",
        "sip:127.0.0.1",
        "1000",
        "pw-1000",
    );

    let outs = gw.feed(
        ua.src,
        ua.register_req(
            &[("Expires", "10".into()), ("Authorization", auth.clone())],
            None,
        ),
    );
    let (_, r) = one(outs);
    assert_eq!(status(&r), 423);
    assert_eq!(h1(&r, "Min-Expires"), "60");
    assert_eq!(gw.core.location().count(), 0);

    let outs = gw.feed(
        ua.src,
        ua.register_req(&[("Authorization", auth.clone())], None),
    );
    assert!(
        matches!(bindings(&outs)[..], [Change::Upsert(_)]),
        "{}",
        dump(&outs)
    );
    assert_eq!(status(sent_to(&outs, Dest::Flow(1))), 200);
    assert_eq!(gw.core.location().count(), 1);

    // `*` without Expires: 0 is malformed.
    let outs = gw.feed(
        ua.src,
        ua.register_req(&[("Authorization", auth.clone())], Some("*")),
    );
    assert_eq!(status(&one(outs).1), 400);
    assert_eq!(gw.core.location().count(), 1);

    let outs = gw.feed(
        ua.src,
        ua.register_req(
            &[("Expires", "0".into()), ("Authorization", auth)],
            Some("*"),
        ),
    );
    let changes = bindings(&outs);
    assert_eq!(changes.len(), 1, "{}", dump(&outs));
    let Change::Remove(b) = changes[0] else {
        panic!("{:?}", changes[0])
    };
    assert_eq!(b.contact, "sip:c1@h1.invalid;transport=ws");
    let ok = sent_to(&outs, Dest::Flow(1));
    assert_eq!(status(ok), 200);
    assert!(!ok.has_header("Contact"), "{}", text(ok));
    assert_eq!(gw.core.location().count(), 0);
    assert!(gw
        .core
        .location()
        .lookup("sip:1000@127.0.0.1", gw.unix())
        .is_empty());
}

#[test]
fn expired_bindings_are_purged_and_reported() {
    let mut gw = Gw::new();
    let mut ua = Ua::udp("1000", 5070);
    ua.register(&mut gw);
    let outs = gw.run(Duration::from_secs(599));
    assert!(bindings(&outs).is_empty(), "{}", dump(&outs));
    let outs = gw.run(Duration::from_secs(15));
    let changes = bindings(&outs);
    assert!(
        matches!(changes[..], [Change::Remove(_)]),
        "{}",
        dump(&outs)
    );
    assert_eq!(gw.core.location().count(), 0);
}

// ----- 4. A call between two browsers --------------------------------------

#[test]
fn call_between_browsers_is_record_routed_and_tracked() {
    let (mut gw, mut a, b) = two_browsers();
    let (call, outs) = a.call(&mut gw, "INVITE", "1001");
    let (d, inv) = one(outs);
    assert_eq!(d, Dest::Flow(2));
    assert_eq!(method(&inv), "INVITE");
    assert_eq!(inv.request_uri().unwrap().as_str(), b.contact);
    assert_eq!(
        record_routes(&inv),
        ["sip:127.0.0.1:7443;transport=wss;lr"],
        "one transport, one Record-Route"
    );
    let rr = inv.record_routes().next().unwrap().unwrap();
    assert_eq!(
        rr.uri().param_value("cgt").map(str::len),
        Some(16),
        "Record-Route carries the route-set token"
    );
    let v = vias(&inv);
    assert_eq!(v.len(), 2, "{v:?}");
    assert!(
        v[0].starts_with("SIP/2.0/WSS 127.0.0.1:7443;branch=z9hG4bK"),
        "{v:?}"
    );
    assert!(
        v[1].starts_with(&format!("SIP/2.0/WSS h1.invalid;branch={}", call.branch)),
        "{v:?}"
    );
    assert_eq!(h1(&inv, "Max-Forwards"), "69");
    assert_eq!(inv.body(), SDP.as_bytes(), "SDP passes untouched");
    assert_eq!(inv.call_id(), Some(call.call_id.as_str()));
    let calls = gw.core.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].state, CallState::Trying);
    assert_eq!(calls[0].from, "sip:1000@127.0.0.1");

    // 180 and 200 go back to the caller's flow without our Via.
    let ringing = answer(&inv, 180, "Ringing", "callee", None);
    let (d, r) = one(gw.feed(b.src, ringing));
    assert_eq!(d, Dest::Flow(1));
    assert_eq!(status(&r), 180);
    assert_eq!(vias(&r).len(), 1);
    assert!(vias(&r)[0].contains(&call.branch));
    assert_eq!(gw.core.calls()[0].state, CallState::Ringing);

    let ok = answer(&inv, 200, "OK", "callee", Some(&b.contact));
    let (d, r) = one(gw.feed(b.src, ok));
    assert_eq!(d, Dest::Flow(1));
    assert_eq!(status(&r), 200);
    assert_eq!(vias(&r).len(), 1);
    assert_eq!(record_routes(&r), ["sip:127.0.0.1:7443;transport=wss;lr"]);
    let calls = gw.core.calls();
    assert_eq!(calls[0].state, CallState::Active);
    assert_eq!(calls[0].to_tag.as_deref(), Some("callee"));
    assert_eq!(calls[0].answered_unix, Some(gw.unix()));

    // ACK and BYE follow the route set to the callee's flow.
    let route = record_routes(&r);
    let ack = a.in_dialog("ACK", &call, &b.contact, "callee", &route, 2);
    let (d, fwd) = one(gw.feed(a.src, ack));
    assert_eq!(d, Dest::Flow(2));
    assert_eq!(method(&fwd), "ACK");
    assert_eq!(fwd.request_uri().unwrap().as_str(), b.contact);
    assert_eq!(hv(&fwd, "Route").len(), 0, "our Route entry is consumed");
    assert_eq!(vias(&fwd).len(), 2);
    assert!(vias(&fwd)[0].starts_with("SIP/2.0/WSS 127.0.0.1:7443;branch=z9hG4bK"));
    assert_eq!(h1(&fwd, "Max-Forwards"), "69");

    let bye = a.in_dialog("BYE", &call, &b.contact, "callee", &route, 3);
    let (d, fwd) = one(gw.feed(a.src, bye));
    assert_eq!(d, Dest::Flow(2));
    assert_eq!(method(&fwd), "BYE");
    assert_eq!(hv(&fwd, "Route").len(), 0);
    assert!(gw.core.calls().is_empty(), "BYE ends the call");
    let (d, r) = one(gw.feed(b.src, answer(&fwd, 200, "OK", "callee", None)));
    assert_eq!(d, Dest::Flow(1));
    assert_eq!(status(&r), 200);
    assert_eq!(r.cseq().unwrap().method, Method::Bye);

    // Everything winds down.
    gw.run(Duration::from_secs(40));
    assert_eq!(gw.core.transaction_count(), 0);
}

// ----- 5. UDP caller to WSS callee: double Record-Route ---------------------

#[test]
fn udp_to_wss_call_double_record_routes_and_callee_bye_reaches_udp() {
    let mut gw = Gw::new();
    let mut a = registered(&mut gw, Ua::udp("1001", 5070));
    let mut b = registered(&mut gw, Ua::wss("1000", 3));
    let (call, outs) = a.call(&mut gw, "INVITE", "1000");
    let (d, inv) = one(outs);
    assert_eq!(d, Dest::Flow(3));
    assert_eq!(
        record_routes(&inv),
        [
            "sip:127.0.0.1:7443;transport=wss;r2=on;lr",
            "sip:127.0.0.1:5060;r2=on;lr"
        ]
    );
    let v = vias(&inv);
    assert!(
        v[0].starts_with("SIP/2.0/WSS 127.0.0.1:7443;branch=z9hG4bK"),
        "{v:?}"
    );
    assert!(v[1].starts_with("SIP/2.0/UDP 127.0.0.1:5070;"), "{v:?}");

    let (d, r) = one(gw.feed(b.src, answer(&inv, 200, "OK", "cal", Some(&b.contact))));
    assert_eq!(d, Dest::Addr(Transport::Udp, addr("127.0.0.1:5070")));
    assert_eq!(status(&r), 200);
    let rr = record_routes(&r);
    assert_eq!(rr.len(), 2);

    // The caller's ACK: route set reversed.
    let caller_route: Vec<String> = rr.iter().rev().cloned().collect();
    let ack = a.in_dialog("ACK", &call, &b.contact, "cal", &caller_route, 2);
    let (d, fwd) = one(gw.feed(a.src, ack));
    assert_eq!(d, Dest::Flow(3));
    assert_eq!(hv(&fwd, "Route").len(), 0, "both of our entries consumed");

    // The callee hangs up: its route set is the Record-Route in order.
    let branch = b.branch();
    let bye = request(
        "BYE",
        &a.contact,
        &[
            ("Via", b.via(&branch)),
            ("Route", format!("<{}>", rr[0])),
            ("Route", format!("<{}>", rr[1])),
            ("From", format!("<sip:1000@{DOMAIN}>;tag=cal")),
            ("To", a.from(&call.from_tag)),
            ("Call-ID", call.call_id.clone()),
            ("CSeq", "1 BYE".into()),
        ],
        None,
    );
    let (d, fwd) = one(gw.feed(b.src, bye));
    assert_eq!(d, Dest::Addr(Transport::Udp, addr("127.0.0.1:5070")));
    assert_eq!(method(&fwd), "BYE");
    assert_eq!(fwd.request_uri().unwrap().as_str(), a.contact);
    assert_eq!(hv(&fwd, "Route").len(), 0);
    assert!(vias(&fwd)[0].starts_with("SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK"));
    assert!(gw.core.calls().is_empty());
    // The caller's 200 goes back to the callee's flow.
    let (d, r) = one(gw.feed(a.src, answer(&fwd, 200, "OK", "x", None)));
    assert_eq!(d, Dest::Flow(3));
    assert_eq!(status(&r), 200);
}

// ----- 6. Routing failures --------------------------------------------------

#[test]
fn unregistered_unknown_and_spoofed_from() {
    let mut gw = Gw::new();
    let mut a = registered(&mut gw, Ua::wss("1000", 1));

    // 1002 exists but has no binding.
    let (_, outs) = a.call(&mut gw, "INVITE", "1002");
    let (d, r) = one(outs);
    assert_eq!(d, Dest::Flow(1));
    assert_eq!(status(&r), 480);
    assert!(gw.core.calls().is_empty());

    let (_, outs) = a.call(&mut gw, "INVITE", "4242");
    assert_eq!(status(&one(outs).1), 404);

    // 1000's credentials on a request claiming to come from 1001.
    let (call, first) = a.out_of_dialog("INVITE", "1002", 1, &[], Some(SDP));
    let (_, challenge) = one(gw.feed(a.src, first));
    let auth = credentials(
        &challenge,
        Algorithm::Sha256,
        "INVITE",
        &call.ruri,
        "1000",
        "pw-1000",
    );
    let spoofed = a
        .call_request(
            "INVITE",
            &Call {
                branch: "z9hG4bKspoof".into(),
                cseq: 2,
                ..call.clone()
            },
            &[("Proxy-Authorization", auth)],
            Some(SDP),
        )
        .replace("From: <sip:1000@", "From: <sip:1001@");
    let (_, r) = one(gw.feed(a.src, spoofed));
    assert_eq!(status(&r), 403, "{}", text(&r));
}

// ----- 7. Forking -----------------------------------------------------------

/// 1001 registered from two browsers (flows 11 and 12); 1000 calls it.
fn forked_call() -> (Gw, Ua, Ua, Ua, Call, Message, Message) {
    let mut gw = Gw::new();
    let mut a = registered(&mut gw, Ua::wss("1000", 1));
    let b1 = registered(&mut gw, Ua::wss("1001", 11));
    let mut b2 = Ua::wss("1001", 12);
    let ok = b2.register(&mut gw);
    assert_eq!(hv(&ok, "Contact").len(), 2, "both instances bound");
    let (call, outs) = a.call(&mut gw, "INVITE", "1001");
    assert_eq!(sends(&outs).len(), 2, "{}", dump(&outs));
    let i1 = sent_to(&outs, Dest::Flow(11)).clone();
    let i2 = sent_to(&outs, Dest::Flow(12)).clone();
    assert_eq!(i1.request_uri().unwrap().as_str(), b1.contact);
    assert_eq!(i2.request_uri().unwrap().as_str(), b2.contact);
    assert_ne!(i1.top_via_branch(), i2.top_via_branch());
    (gw, a, b1, b2, call, i1, i2)
}

#[test]
fn fork_200_from_one_branch_cancels_the_other() {
    let (mut gw, _a, b1, b2, _call, i1, i2) = forked_call();
    let outs = gw.feed(b1.src, answer(&i1, 180, "Ringing", "t1", None));
    assert_eq!(status(sent_to(&outs, Dest::Flow(1))), 180);
    let outs = gw.feed(b2.src, answer(&i2, 180, "Ringing", "t2", None));
    assert_eq!(status(sent_to(&outs, Dest::Flow(1))), 180);

    let outs = gw.feed(b1.src, answer(&i1, 200, "OK", "t1", Some(&b1.contact)));
    assert_eq!(sends(&outs).len(), 2, "{}", dump(&outs));
    let ok = sent_to(&outs, Dest::Flow(1));
    assert_eq!(status(ok), 200);
    assert_eq!(to_tag(ok), "t1");
    let cancel = sent_to(&outs, Dest::Flow(12));
    assert_eq!(method(cancel), "CANCEL");
    assert_eq!(cancel.top_via_branch(), i2.top_via_branch());
    assert_eq!(cancel.request_uri().unwrap().as_str(), b2.contact);
    assert_eq!(cancel.cseq().unwrap().method, Method::Cancel);
    assert_eq!(cancel.cseq().unwrap().seq, i2.cseq().unwrap().seq);

    // The cancelled branch: 200 for the CANCEL is absorbed; its 487 is
    // acknowledged hop by hop and not relayed.
    assert!(gw
        .feed(b2.src, answer(cancel, 200, "OK", "t2", None))
        .is_empty());
    let outs = gw.feed(b2.src, answer(&i2, 487, "Request Terminated", "t2", None));
    let (d, ack) = one(outs);
    assert_eq!(d, Dest::Flow(12));
    assert_eq!(method(&ack), "ACK");
    assert_eq!(ack.top_via_branch(), i2.top_via_branch());
    assert_eq!(to_tag(&ack), "t2");
    assert_eq!(gw.core.calls()[0].state, CallState::Active);
}

#[test]
fn fork_cancel_waits_for_a_provisional_response() {
    let (mut gw, _a, b1, b2, _call, i1, i2) = forked_call();
    // Branch 2 has said nothing: RFC 3261 §9.1 forbids a CANCEL yet.
    let outs = gw.feed(b1.src, answer(&i1, 200, "OK", "t1", Some(&b1.contact)));
    let (d, ok) = one(outs);
    assert_eq!((d, status(&ok)), (Dest::Flow(1), 200));
    // Its first provisional response triggers the CANCEL, and is not relayed
    // any more (the caller has its final answer).
    let outs = gw.feed(b2.src, answer(&i2, 180, "Ringing", "t2", None));
    let (d, cancel) = one(outs);
    assert_eq!(d, Dest::Flow(12));
    assert_eq!(method(&cancel), "CANCEL");
    assert_eq!(cancel.top_via_branch(), i2.top_via_branch());
}

#[test]
fn fork_all_busy_gives_one_final_486_preferred() {
    let (mut gw, a, b1, b2, _call, i1, i2) = forked_call();
    let (d, ack) = one(gw.feed(
        b1.src,
        answer(&i1, 480, "Temporarily Unavailable", "t1", None),
    ));
    assert_eq!(
        (d, method(&ack)),
        (Dest::Flow(11), "ACK"),
        "nothing relayed yet"
    );
    let outs = gw.feed(b2.src, answer(&i2, 486, "Busy Here", "t2", None));
    assert_eq!(sends(&outs).len(), 2, "{}", dump(&outs));
    assert_eq!(method(sent_to(&outs, Dest::Flow(12))), "ACK");
    let fin = sent_to(&outs, a.dest());
    assert_eq!(status(fin), 486);
    assert_eq!(to_tag(fin), "t2");
    assert_eq!(vias(fin).len(), 1);
    assert!(gw.core.calls().is_empty());
    // Nothing more reaches the caller later.
    let later = gw.run(Duration::from_secs(40));
    assert!(
        sends(&later).iter().all(|(d, _)| *d != a.dest()),
        "{}",
        dump(&later)
    );
}

#[test]
fn fork_486_then_480_still_picks_486() {
    let (mut gw, a, b1, b2, _call, i1, i2) = forked_call();
    let outs = gw.feed(b1.src, answer(&i1, 486, "Busy Here", "t1", None));
    assert_eq!(sends(&outs).len(), 1, "{}", dump(&outs));
    let outs = gw.feed(
        b2.src,
        answer(&i2, 480, "Temporarily Unavailable", "t2", None),
    );
    assert_eq!(status(sent_to(&outs, a.dest())), 486);
}

#[test]
fn fork_603_cancels_the_other_branch_and_is_relayed() {
    let (mut gw, a, b1, b2, _call, i1, i2) = forked_call();
    gw.feed(b2.src, answer(&i2, 180, "Ringing", "t2", None));
    let outs = gw.feed(b1.src, answer(&i1, 603, "Decline", "t1", None));
    assert_eq!(sends(&outs).len(), 3, "{}", dump(&outs));
    assert_eq!(method(sent_to(&outs, Dest::Flow(11))), "ACK");
    assert_eq!(method(sent_to(&outs, Dest::Flow(12))), "CANCEL");
    let fin = sent_to(&outs, a.dest());
    assert_eq!(status(fin), 603);
    assert!(gw.core.calls().is_empty());
    // The other branch's 487 goes nowhere but its ACK.
    let (d, ack) = one(gw.feed(b2.src, answer(&i2, 487, "Request Terminated", "t2", None)));
    assert_eq!((d, method(&ack)), (Dest::Flow(12), "ACK"));
}

// ----- 8. CANCEL from the caller --------------------------------------------

#[test]
fn caller_cancel_while_ringing() {
    let (mut gw, mut a, b) = two_browsers();
    let (call, outs) = a.call(&mut gw, "INVITE", "1001");
    let (_, inv) = one(outs);
    gw.feed(b.src, answer(&inv, 180, "Ringing", "cb", None));

    let cancel = request(
        "CANCEL",
        &call.ruri,
        &[
            ("Via", a.via(&call.branch)),
            ("From", a.from(&call.from_tag)),
            ("To", call.to.clone()),
            ("Call-ID", call.call_id.clone()),
            ("CSeq", format!("{} CANCEL", call.cseq)),
        ],
        None,
    );
    let outs = gw.feed(a.src, cancel);
    assert_eq!(sends(&outs).len(), 2, "{}", dump(&outs));
    let ok = sent_to(&outs, Dest::Flow(1));
    assert_eq!(status(ok), 200);
    assert_eq!(ok.cseq().unwrap().method, Method::Cancel);
    let fwd = sent_to(&outs, Dest::Flow(2)).clone();
    assert_eq!(method(&fwd), "CANCEL");
    assert_eq!(fwd.top_via_branch(), inv.top_via_branch());
    assert_eq!(fwd.request_uri(), inv.request_uri());

    assert!(gw
        .feed(b.src, answer(&fwd, 200, "OK", "cb", None))
        .is_empty());
    let outs = gw.feed(b.src, answer(&inv, 487, "Request Terminated", "cb", None));
    assert_eq!(sends(&outs).len(), 2, "{}", dump(&outs));
    let ack = sent_to(&outs, Dest::Flow(2));
    assert_eq!(method(ack), "ACK");
    assert_eq!(ack.top_via_branch(), inv.top_via_branch(), "hop-by-hop ACK");
    assert_eq!(ack.cseq().unwrap().seq, inv.cseq().unwrap().seq);
    assert_eq!(to_tag(ack), "cb");
    assert_eq!(ack.request_uri(), inv.request_uri());
    let fin = sent_to(&outs, Dest::Flow(1));
    assert_eq!(status(fin), 487);
    assert_eq!(fin.cseq().unwrap().method, Method::Invite);
    assert!(gw.core.calls().is_empty());

    // The caller's ACK for the 487 ends at its server transaction.
    let ack = request(
        "ACK",
        &call.ruri,
        &[
            ("Via", a.via(&call.branch)),
            ("From", a.from(&call.from_tag)),
            ("To", h1(fin, "To")),
            ("Call-ID", call.call_id.clone()),
            ("CSeq", format!("{} ACK", call.cseq)),
        ],
        None,
    );
    assert!(gw.feed(a.src, ack).is_empty());
    gw.run(Duration::from_secs(40));
    assert_eq!(gw.core.transaction_count(), 0);
}

#[test]
fn cancel_for_nothing_is_481() {
    let mut gw = Gw::new();
    let mut a = registered(&mut gw, Ua::wss("1000", 1));
    let (_, cancel) = a.out_of_dialog("CANCEL", "1001", 1, &[], None);
    let (_, r) = one(gw.feed(a.src, cancel));
    assert_eq!(status(&r), 481);
}

// ----- 9. UDP timers ----------------------------------------------------------

#[test]
fn udp_retransmissions_and_timeout() {
    let mut gw = Gw::new();
    let mut a = registered(&mut gw, Ua::udp("1001", 5070));
    let b = registered(&mut gw, Ua::udp("1002", 5072));
    let _ = gw.run(Duration::from_secs(1));
    let (call, outs) = a.call(&mut gw, "INVITE", "1002");
    let (d, inv) = one(outs);
    let callee = Dest::Addr(Transport::Udp, addr("127.0.0.1:5072"));
    assert_eq!(d, callee);
    assert!(vias(&inv)[0].starts_with("SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK"));
    assert_eq!(inv.request_uri().unwrap().as_str(), b.contact);

    // The caller retransmits its INVITE: absorbed.
    let auth_invite = call.sent.clone();
    let outs = gw.feed(a.src, &auth_invite);
    assert!(
        outs.is_empty(),
        "retransmission forwarded again:\n{}",
        dump(&outs)
    );

    // 200 ms: 100 Trying to the caller. 500 ms: the INVITE again.
    let timed = gw.advance(Duration::from_millis(600));
    let trying: Vec<_> = timed
        .iter()
        .filter(|(_, o)| matches!(o, Out::Send(d, m) if *d == a.dest() && m.status() == Some(100)))
        .collect();
    assert_eq!(trying.len(), 1, "{timed:?}");
    assert_eq!(trying[0].0, Duration::from_millis(200));
    let again: Vec<_> = timed
        .iter()
        .filter_map(|(t, o)| match o {
            Out::Send(d, m) if *d == callee => Some((*t, m)),
            _ => None,
        })
        .collect();
    assert_eq!(again.len(), 1, "{timed:?}");
    assert_eq!(again[0].0, Duration::from_millis(500));
    assert_eq!(again[0].1.serialize(), inv.serialize(), "same bytes");

    // A retransmission now gets the 100 again, and nothing goes forward.
    let (d, r) = one(gw.feed(a.src, &auth_invite));
    assert_eq!((d, status(&r)), (a.dest(), 100));

    // Nobody answers: timer B (32 s) gives the caller a 408.
    let timed = gw.advance(Duration::from_millis(31_400));
    let forward_times: Vec<u64> = timed
        .iter()
        .filter(|(_, o)| matches!(o, Out::Send(d, _) if *d == callee))
        .map(|(t, _)| t.as_millis() as u64 + 600)
        .collect();
    assert_eq!(forward_times, [1_500, 3_500, 7_500, 15_500, 31_500]);
    let finals: Vec<_> = timed
        .iter()
        .filter_map(|(t, o)| match o {
            Out::Send(d, m) if *d == a.dest() && m.status().is_some_and(|s| s >= 200) => {
                Some((*t, m))
            }
            _ => None,
        })
        .collect();
    assert_eq!(finals.len(), 1, "{timed:?}");
    assert_eq!(finals[0].0.as_millis() + 600, 32_000);
    assert_eq!(status(finals[0].1), 408);
    assert!(gw.core.calls().is_empty());

    // The caller does not ACK: the 408 is retransmitted on timer G (UDP).
    let timed = gw.advance(Duration::from_millis(600));
    assert!(timed
        .iter()
        .any(|(_, o)| matches!(o, Out::Send(d, m) if *d == a.dest() && m.status() == Some(408))));
}

// ----- 10. Closed flows -------------------------------------------------------

#[test]
fn closed_flow_makes_the_browser_unavailable() {
    let (mut gw, mut a, b) = two_browsers();
    gw.core.flow_closed(b.src.flow.unwrap());
    assert!(!gw.core.binding_reachable(
        gw.core
            .location()
            .all()
            .find(|x| x.flow == Some(2))
            .unwrap()
    ));
    let (_, outs) = a.call(&mut gw, "INVITE", "1001");
    let (d, r) = one(outs);
    assert_eq!((d, status(&r)), (Dest::Flow(1), 480));
    assert!(gw.core.calls().is_empty());
}

// ----- 11. Malformed input ------------------------------------------------------

#[test]
fn malformed_requests() {
    let mut gw = Gw::new();
    let mut a = Ua::udp("1000", 5070);
    let (_, inv) = a.out_of_dialog("INVITE", "1001", 1, &[], None);
    let bad = inv.replace("CSeq: 1 INVITE", "CSeq: 1 OPTIONS");
    let (d, r) = one(gw.feed(a.src, bad));
    assert_eq!(d, a.dest());
    assert_eq!(status(&r), 400);
    assert_eq!(reason(&r), "CSeq Method Mismatch");
    assert_eq!(gw.core.stats.bad_requests, 1);

    // A malformed ACK is never answered.
    let (_, ack) = a.out_of_dialog("ACK", "1001", 1, &[], None);
    let bad = ack.replace("CSeq: 1 ACK", "CSeq: 1 INVITE");
    let outs = gw.feed(a.src, bad);
    assert!(outs.is_empty(), "{}", dump(&outs));

    let before = gw.core.stats.unparsable_dropped;
    for garbage in [
        &b"\x00\x01\x02 garbage \xff\xfe"[..],
        b"hello world",
        b"\r\n\r\n",
        b"INVITE",
    ] {
        let outs = gw.feed(a.src, garbage);
        assert!(outs.is_empty(), "{}", dump(&outs));
    }
    assert_eq!(gw.core.stats.unparsable_dropped, before + 4);
    assert_eq!(gw.core.stats.received, 6);
    assert_eq!(gw.core.transaction_count(), 0);
}

// ----- 12. Loops ------------------------------------------------------------------

#[test]
fn a_request_coming_back_unchanged_is_a_loop() {
    let mut gw = Gw::new();
    // 1001's contact is the gateway itself (a misconfigured phone): the
    // forwarded request comes back with the same Request-URI.
    let mut b = Ua::udp("1001", 5072);
    b.contact = format!("sip:1001@{DOMAIN}");
    let b = registered(&mut gw, b);
    let mut a = registered(&mut gw, Ua::wss("1000", 1));
    let (_, outs) = a.call(&mut gw, "INVITE", "1001");
    let (d, inv) = one(outs);
    assert_eq!(d, b.dest());
    assert_eq!(inv.request_uri().unwrap().as_str(), "sip:1001@127.0.0.1");
    // Fed back as if our own socket had sent it to us.
    let me = Source {
        transport: Transport::Udp,
        flow: None,
        addr: addr("127.0.0.1:5060"),
        local: addr("127.0.0.1:5060"),
    };
    let (d, r) = one(gw.feed(me, inv.serialize()));
    assert_eq!(d, Dest::Addr(Transport::Udp, addr("127.0.0.1:5060")));
    assert_eq!(status(&r), 482, "{}", text(&r));
    assert_eq!(reason(&r), "Loop Detected");
}

#[test]
fn a_loop_through_a_preloaded_route_is_detected() {
    let mut gw = Gw::new();
    let mut b = Ua::udp("1001", 5072);
    b.contact = format!("sip:1001@{DOMAIN}");
    let b = registered(&mut gw, b);
    let mut a = registered(&mut gw, Ua::wss("1000", 1));
    // The caller preloads our own address as outbound proxy.
    let (call, first) = a.out_of_dialog(
        "INVITE",
        "1001",
        1,
        &[("Route", "<sip:127.0.0.1:7443;transport=wss;lr>".into())],
        Some(SDP),
    );
    let (_, challenge) = one(gw.feed(a.src, first));
    assert_eq!(status(&challenge), 407);
    let auth = credentials(
        &challenge,
        Algorithm::Sha256,
        "INVITE",
        &call.ruri,
        "1000",
        "pw-1000",
    );
    let second = a.call_request(
        "INVITE",
        &Call {
            cseq: 2,
            branch: "z9hG4bKpreloaded".into(),
            ..call.clone()
        },
        &[
            ("Route", "<sip:127.0.0.1:7443;transport=wss;lr>".into()),
            ("Proxy-Authorization", auth),
        ],
        Some(SDP),
    );
    let (d, inv) = one(gw.feed(a.src, second));
    assert_eq!(d, b.dest());
    assert_eq!(hv(&inv, "Route").len(), 0);
    let me = Source {
        transport: Transport::Udp,
        flow: None,
        addr: addr("127.0.0.1:5060"),
        local: addr("127.0.0.1:5060"),
    };
    // The same request as first received, but back with our Via on it.
    let looped = {
        let mut m = Message::parse(inv.serialize(), &Limits::default()).unwrap();
        m.add_header("Route", "<sip:127.0.0.1:7443;transport=wss;lr>")
            .unwrap();
        m.serialize()
    };
    let (_, r) = one(gw.feed(me, looped));
    assert_eq!(status(&r), 482, "{}", text(&r));
}

// ----- 13. MESSAGE ------------------------------------------------------------------

#[test]
fn message_is_delivered_without_record_route() {
    let (mut gw, mut a, b) = two_browsers();
    let (call, outs) = a.call(&mut gw, "MESSAGE", "1001");
    let (d, msg) = one(outs);
    assert_eq!(d, Dest::Flow(2));
    assert_eq!(method(&msg), "MESSAGE");
    assert_eq!(msg.request_uri().unwrap().as_str(), b.contact);
    assert!(record_routes(&msg).is_empty());
    assert_eq!(h1(&msg, "Max-Forwards"), "69");
    assert!(gw.core.calls().is_empty(), "not a call");
    let (d, r) = one(gw.feed(b.src, answer(&msg, 200, "OK", "m", None)));
    assert_eq!(d, Dest::Flow(1));
    assert_eq!(status(&r), 200);
    assert_eq!(r.call_id(), Some(call.call_id.as_str()));
    assert_eq!(vias(&r).len(), 1);
    // No 100 Trying for a non-INVITE, and the transactions end.
    let later = gw.run(Duration::from_secs(40));
    assert!(sends(&later).is_empty(), "{}", dump(&later));
    assert_eq!(gw.core.transaction_count(), 0);
}

// ----- more dialog paths ----------------------------------------------------------

/// A browser-to-browser call up to the ACK; returns the route set the
/// callee learnt from the INVITE.
fn answered_call(gw: &mut Gw, a: &mut Ua, b: &Ua) -> (Call, Vec<String>) {
    let (call, outs) = a.call(gw, "INVITE", "1001");
    let (_, inv) = one(outs);
    let (_, ok) = one(gw.feed(b.src, answer(&inv, 200, "OK", "cb", Some(&b.contact))));
    let rr = record_routes(&ok);
    let ack = a.in_dialog("ACK", &call, &b.contact, "cb", &rr, call.cseq);
    let (d, _) = one(gw.feed(a.src, ack));
    assert_eq!(d, b.dest());
    (call, record_routes(&inv))
}

#[test]
fn callee_hangs_up_a_browser_call() {
    let (mut gw, mut a, mut b) = two_browsers();
    let (call, rr) = answered_call(&mut gw, &mut a, &b);
    let branch = b.branch();
    let mut h = vec![("Via", b.via(&branch))];
    for r in &rr {
        h.push(("Route", format!("<{r}>")));
    }
    h.extend([
        ("From", format!("<sip:1001@{DOMAIN}>;tag=cb")),
        ("To", a.from(&call.from_tag)),
        ("Call-ID", call.call_id.clone()),
        ("CSeq", "7 BYE".into()),
    ]);
    let (d, bye) = one(gw.feed(b.src, request("BYE", &a.contact, &h, None)));
    assert_eq!(d, Dest::Flow(1));
    assert_eq!(bye.request_uri().unwrap().as_str(), a.contact);
    assert!(gw.core.calls().is_empty());
    let (d, r) = one(gw.feed(a.src, answer(&bye, 200, "OK", "x", None)));
    assert_eq!((d, status(&r)), (Dest::Flow(2), 200));
}

#[test]
fn reinvite_in_dialog_keeps_the_call_active() {
    let (mut gw, mut a, b) = two_browsers();
    let (call, rr) = answered_call(&mut gw, &mut a, &b);
    let reinv = a.in_dialog("INVITE", &call, &b.contact, "cb", &rr, 10);
    let (d, fwd) = one(gw.feed(a.src, reinv));
    assert_eq!(d, Dest::Flow(2));
    assert!(
        record_routes(&fwd).is_empty(),
        "no Record-Route on a re-INVITE"
    );
    let (d, r) = one(gw.feed(b.src, answer(&fwd, 200, "OK", "cb", Some(&b.contact))));
    assert_eq!((d, status(&r)), (Dest::Flow(1), 200));
    let calls = gw.core.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].state, CallState::Active);
    assert_eq!(calls[0].cseq_caller, 10);
}

#[test]
fn reregistration_from_a_new_flow_replaces_the_binding() {
    let (mut gw, mut a, b) = two_browsers();
    // The browser reconnects: new flow, new contact, same instance.
    let mut b2 = Ua::wss("1001", 5);
    b2.instance = b.instance.clone();
    b2.register(&mut gw);
    gw.core.flow_closed(2);
    assert_eq!(
        gw.core
            .location()
            .lookup("sip:1001@127.0.0.1", gw.unix())
            .len(),
        1
    );
    let (_, outs) = a.call(&mut gw, "INVITE", "1001");
    let (d, inv) = one(outs);
    assert_eq!(d, Dest::Flow(5));
    assert_eq!(inv.request_uri().unwrap().as_str(), b2.contact);
}

#[test]
fn options_to_a_user_is_forwarded_without_challenge() {
    let (mut gw, mut a, _b) = two_browsers();
    let (_, opts) = a.out_of_dialog("OPTIONS", "1001", 1, &[], None);
    let (d, fwd) = one(gw.feed(a.src, opts));
    assert_eq!(d, Dest::Flow(2));
    assert_eq!(method(&fwd), "OPTIONS");
}

#[test]
fn proxy_require_with_unknown_extension_is_420() {
    let mut gw = Gw::new();
    let mut a = registered(&mut gw, Ua::wss("1000", 1));
    let (_, inv) = a.out_of_dialog(
        "INVITE",
        "1001",
        1,
        &[("Proxy-Require", "foo".into())],
        Some(SDP),
    );
    let (_, r) = one(gw.feed(a.src, inv));
    assert_eq!(status(&r), 420);
    assert_eq!(h1(&r, "Unsupported"), "foo");
}

#[test]
fn caller_cancel_before_any_provisional_waits_for_one() {
    let (mut gw, mut a, b) = two_browsers();
    let (call, outs) = a.call(&mut gw, "INVITE", "1001");
    let (_, inv) = one(outs);
    let cancel = request(
        "CANCEL",
        &call.ruri,
        &[
            ("Via", a.via(&call.branch)),
            ("From", a.from(&call.from_tag)),
            ("To", call.to.clone()),
            ("Call-ID", call.call_id.clone()),
            ("CSeq", format!("{} CANCEL", call.cseq)),
        ],
        None,
    );
    let (d, ok) = one(gw.feed(a.src, cancel));
    assert_eq!((d, status(&ok)), (Dest::Flow(1), 200));
    // The callee's 100 lets the CANCEL go.
    let (d, fwd) = one(gw.feed(b.src, answer(&inv, 100, "Trying", "cb", None)));
    assert_eq!((d, method(&fwd)), (Dest::Flow(2), "CANCEL"));
    let outs = gw.feed(b.src, answer(&inv, 487, "Request Terminated", "cb", None));
    assert_eq!(status(sent_to(&outs, Dest::Flow(1))), 487);
    assert_eq!(method(sent_to(&outs, Dest::Flow(2))), "ACK");
}

#[test]
fn udp_2xx_retransmissions_are_relayed() {
    let mut gw = Gw::new();
    let mut a = registered(&mut gw, Ua::wss("1000", 1));
    let b = registered(&mut gw, Ua::udp("1001", 5072));
    let (_, outs) = a.call(&mut gw, "INVITE", "1001");
    let (d, inv) = one(outs);
    assert_eq!(d, b.dest());
    assert_eq!(record_routes(&inv).len(), 2, "WSS in, UDP out");
    let ok = answer(&inv, 200, "OK", "cb", Some(&b.contact));
    let (d, r) = one(gw.feed(b.src, &ok));
    assert_eq!((d, status(&r)), (Dest::Flow(1), 200));
    // The ACK is lost; the UAS retransmits its 2xx, during and after the
    // transactions' lifetime (RFC 6026).
    gw.run(Duration::from_millis(500));
    let (d, r) = one(gw.feed(b.src, &ok));
    assert_eq!((d, status(&r)), (Dest::Flow(1), 200));
    gw.run(Duration::from_secs(40));
    let outs = gw.feed(b.src, &ok);
    let (d, r) = one(outs);
    assert_eq!(status(&r), 200);
    assert_eq!(d, Dest::Addr(Transport::Wss, addr("127.0.0.1:40001")));
}

#[test]
fn disabled_user_cannot_register() {
    let mut gw = Gw::new();
    let mut off = record("1000");
    off.enabled = false;
    gw.core.set_users(Directory::new([off]));
    let mut ua = Ua::wss("1000", 1);
    let (_, c) = one(gw.feed(ua.src, ua.register_req(&[], None)));
    let auth = credentials(
        &c,
        Algorithm::Sha256,
        "REGISTER",
        "sip:127.0.0.1",
        "1000",
        "pw-1000",
    );
    let (_, r) = one(gw.feed(ua.src, ua.register_req(&[("Authorization", auth)], None)));
    assert_eq!(status(&r), 403);
}

// ----- GRUU -----------------------------------------------------------------------

#[test]
fn gruu_targets_one_instance_in_and_out_of_dialog() {
    let (mut gw, mut a, b1, b2, _call, i1, i2) = forked_call();
    // Finish the forked call attempt so the next one starts clean.
    gw.feed(b1.src, answer(&i1, 486, "Busy Here", "t1", None));
    gw.feed(b2.src, answer(&i2, 486, "Busy Here", "t2", None));
    let gruu = format!("sip:1001@{DOMAIN};gr={}", b2.instance.clone().unwrap());
    let (mut call, first) = a.out_of_dialog("INVITE", "1001", 1, &[], Some(SDP));
    call.ruri = gruu.clone();
    let first = first.replace(
        &format!("INVITE sip:1001@{DOMAIN} "),
        &format!("INVITE {gruu} "),
    );
    let (_, c) = one(gw.feed(a.src, first));
    assert_eq!(status(&c), 407);
    let auth = credentials(&c, Algorithm::Sha256, "INVITE", &gruu, "1000", "pw-1000");
    let call = Call {
        cseq: 2,
        branch: "z9hG4bKgruu2".into(),
        ..call
    };
    let outs = gw.feed(
        a.src,
        a.call_request("INVITE", &call, &[("Proxy-Authorization", auth)], Some(SDP)),
    );
    let (d, inv) = one(outs);
    assert_eq!(d, Dest::Flow(12), "only the instance the GRUU names");
    assert_eq!(inv.request_uri().unwrap().as_str(), b2.contact);

    // The callee uses its GRUU as Contact (RFC 5627 §8.1): in-dialog
    // requests come to us with the GRUU as Request-URI.
    let (_, ok) = one(gw.feed(b2.src, answer(&inv, 200, "OK", "g2", Some(&gruu))));
    let rr = record_routes(&ok);
    let ack = a.in_dialog("ACK", &call, &gruu, "g2", &rr, 2);
    let (d, fwd) = one(gw.feed(a.src, ack));
    assert_eq!(d, Dest::Flow(12));
    assert_eq!(method(&fwd), "ACK");
    assert_eq!(
        fwd.request_uri().unwrap().as_str(),
        b2.contact,
        "retargeted"
    );
    let bye = a.in_dialog("BYE", &call, &gruu, "g2", &rr, 3);
    let (d, fwd) = one(gw.feed(a.src, bye));
    assert_eq!(d, Dest::Flow(12), "{}", text(&fwd));
    assert_eq!(method(&fwd), "BYE");
    assert_eq!(fwd.request_uri().unwrap().as_str(), b2.contact);
    assert!(gw.core.calls().is_empty());
}

#[test]
fn wildcard_removal_out_of_order_fails_and_keeps_every_binding() {
    let mut gw = Gw::new();
    let mut ua = Ua::udp("1000", 5070);
    ua.register(&mut gw);
    let mut other = Ua::udp("1000", 5071);
    other.n = 100;
    other.register(&mut gw);
    assert_eq!(gw.core.location().count(), 2);
    // `*` on ua's Call-ID with a CSeq not above the stored one.
    let (_, c) = one(gw.feed(ua.src, ua.register_req(&[], None)));
    let auth = credentials(
        &c,
        Algorithm::Sha256,
        "REGISTER",
        "sip:127.0.0.1",
        "1000",
        "pw-1000",
    );
    ua.reg_cseq = 1;
    let outs = gw.feed(
        ua.src,
        ua.register_req(
            &[("Expires", "0".into()), ("Authorization", auth)],
            Some("*"),
        ),
    );
    let (_, r) = one(outs);
    assert_eq!(status(&r), 400, "{}", text(&r));
    assert_eq!(gw.core.location().count(), 2, "nothing removed");
}

// ----- flows closing mid-transaction ------------------------------------------------

#[test]
fn callee_flow_closing_while_ringing_fails_the_branch() {
    let (mut gw, mut a, b) = two_browsers();
    let (_, outs) = a.call(&mut gw, "INVITE", "1001");
    let (_, inv) = one(outs);
    gw.feed(b.src, answer(&inv, 180, "Ringing", "cb", None));
    assert_eq!(gw.core.calls()[0].state, CallState::Ringing);
    // The callee's tab closes: nothing will ever answer on that flow.
    gw.core.flow_closed(2);
    // The driver sleeps until next_deadline, which is due at once.
    assert!(gw.core.next_deadline().is_some_and(|t| t <= gw.now));
    let outs = gw.run(Duration::ZERO);
    let (d, r) = one(outs);
    assert_eq!((d, status(&r)), (Dest::Flow(1), 480), "{}", text(&r));
    assert_eq!(reason(&r), "Temporarily Unavailable");
    assert!(gw.core.calls().is_empty());
    gw.run(Duration::from_secs(40));
    assert_eq!(gw.core.transaction_count(), 0);
}

#[test]
fn caller_flow_closing_while_ringing_cancels_the_callee() {
    let (mut gw, mut a, b) = two_browsers();
    let (_, outs) = a.call(&mut gw, "INVITE", "1001");
    let (_, inv) = one(outs);
    gw.feed(b.src, answer(&inv, 180, "Ringing", "cb", None));
    gw.core.flow_closed(1);
    let outs = gw.run(Duration::ZERO);
    let (d, cancel) = one(outs);
    assert_eq!((d, method(&cancel)), (Dest::Flow(2), "CANCEL"));
    assert!(gw
        .feed(b.src, answer(&cancel, 200, "OK", "cb", None))
        .is_empty());
    let outs = gw.feed(b.src, answer(&inv, 487, "Request Terminated", "cb", None));
    assert_eq!(method(sent_to(&outs, Dest::Flow(2))), "ACK");
    assert!(gw.core.calls().is_empty());
    gw.run(Duration::from_secs(40));
    assert_eq!(gw.core.transaction_count(), 0);
}

#[test]
fn closing_an_idle_flow_changes_nothing_else() {
    let (mut gw, _a, _b) = two_browsers();
    gw.core.flow_closed(1);
    gw.core.flow_closed(77);
    let outs = gw.run(Duration::ZERO);
    assert!(sends(&outs).is_empty(), "{}", dump(&outs));
    assert_eq!(
        gw.core.location().count(),
        2,
        "bindings stay until they expire"
    );
}

#[test]
fn request_without_max_forwards_is_proxied_with_70() {
    // RFC 3261 §16.6 step 3: a proxy adds Max-Forwards (70) when absent
    // rather than refusing an RFC 2543 request.
    let (mut gw, mut a, _b) = two_browsers();
    let (_, opts) = a.out_of_dialog("OPTIONS", "1001", 1, &[], None);
    let opts = opts.replace("Max-Forwards: 70\r\n", "");
    assert!(!opts.contains("Max-Forwards"));
    let (d, fwd) = one(gw.feed(a.src, opts));
    assert_eq!(
        (d, method(&fwd)),
        (Dest::Flow(2), "OPTIONS"),
        "{}",
        text(&fwd)
    );
    assert_eq!(h1(&fwd, "Max-Forwards"), "70");
}

#[test]
fn removing_a_user_drops_its_registrations() {
    let (mut gw, _a, _b) = two_browsers();
    let before = gw.core.location().count();
    assert!(before >= 2);
    gw.core
        .set_users(Directory::new(["1000", "1002"].into_iter().map(record)));
    assert!(gw
        .core
        .location()
        .all()
        .all(|b| !b.aor.starts_with("sip:1001@")));
    assert!(gw.core.location().count() < before);
}

// ----- media relay hook -------------------------------------------------------

/// A stand-in for the media relay: records the calls and returns tagged
/// bodies.
#[derive(Clone, Default)]
struct FakeMedia {
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    refuse_offer: bool,
    refuse_answer: bool,
}

impl FakeMedia {
    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl MediaHook for FakeMedia {
    fn offer(
        &mut self,
        call: &str,
        from: MediaSide,
        to: MediaPeer,
        sdp: &[u8],
        _now: Instant,
    ) -> Result<Vec<u8>, String> {
        self.log.lock().unwrap().push(format!(
            "offer {call} {from:?} {to:?} {}",
            sdp == SDP.as_bytes()
        ));
        if self.refuse_offer {
            return Err("no \"free\" ports".into());
        }
        Ok(format!("relayed offer from {from:?} to {to:?}\r\n").into_bytes())
    }

    fn answer(
        &mut self,
        call: &str,
        from: MediaSide,
        sdp: &[u8],
        _now: Instant,
    ) -> Result<Vec<u8>, String> {
        self.log.lock().unwrap().push(format!(
            "answer {call} {from:?} {}",
            String::from_utf8_lossy(sdp).trim_end()
        ));
        if self.refuse_answer {
            return Err("bad answer".into());
        }
        Ok(format!("relayed answer from {from:?}\r\n").into_bytes())
    }

    fn delete(&mut self, call: &str) {
        self.log.lock().unwrap().push(format!("delete {call}"));
    }
}

fn with_media(fake: &FakeMedia) -> (Gw, Ua, Ua) {
    let (mut gw, a, b) = two_browsers();
    gw.core.set_media(Box::new(fake.clone()));
    (gw, a, b)
}

/// A response to `req` with an SDP body.
fn answer_sdp(req: &Message, code: u16, tag: &str, contact: &str, sdp: &str) -> Vec<u8> {
    sip::response_to(req, code, "OK", Some(tag))
        .copy_record_route()
        .header("Contact", &format!("<{contact}>"))
        .body("application/sdp", sdp.as_bytes())
        .to_bytes()
        .unwrap()
}

#[test]
fn media_hook_rewrites_offer_and_answer_and_bye_deletes() {
    let fake = FakeMedia::default();
    let (mut gw, mut a, b) = with_media(&fake);
    let (call, outs) = a.call(&mut gw, "INVITE", "1001");
    let (d, inv) = one(outs);
    assert_eq!(d, Dest::Flow(2));
    let session = format!("{};{}", call.call_id, call.from_tag);
    assert_eq!(inv.body(), b"relayed offer from Caller to Browser\r\n");
    assert_eq!(h1(&inv, "Content-Type"), "application/sdp");
    assert_eq!(
        h1(&inv, "Content-Length"),
        inv.body().len().to_string(),
        "{}",
        text(&inv)
    );
    assert_eq!(fake.log(), [format!("offer {session} Caller Browser true")]);

    // 183 with early media, then the 200 with the same SDP: one answer.
    let early = answer_sdp(&inv, 183, "cb", &b.contact, "callee sdp\r\n");
    let (d, r) = one(gw.feed(b.src, early));
    assert_eq!((d, status(&r)), (Dest::Flow(1), 183));
    assert_eq!(r.body(), b"relayed answer from Callee\r\n");
    let ok = answer_sdp(&inv, 200, "cb", &b.contact, "callee sdp\r\n");
    let (d, r) = one(gw.feed(b.src, ok));
    assert_eq!((d, status(&r)), (Dest::Flow(1), 200));
    assert_eq!(r.body(), b"relayed answer from Callee\r\n");
    assert_eq!(
        fake.log()[1..],
        [format!("answer {session} Callee callee sdp")]
    );

    let route = record_routes(&r);
    let ack = a.in_dialog("ACK", &call, &b.contact, "cb", &route, call.cseq);
    assert_eq!(one(gw.feed(a.src, ack)).0, Dest::Flow(2));
    let bye = a.in_dialog("BYE", &call, &b.contact, "cb", &route, call.cseq + 1);
    let (d, fwd) = one(gw.feed(a.src, bye));
    assert_eq!((d, method(&fwd)), (Dest::Flow(2), "BYE"));
    assert_eq!(fake.log().last().unwrap(), &format!("delete {session}"));
    assert_eq!(fake.log().len(), 3);
}

#[test]
fn media_hook_re_invite_from_the_callee_re_offers() {
    let fake = FakeMedia::default();
    let (mut gw, mut a, mut b) = with_media(&fake);
    let (call, outs) = a.call(&mut gw, "INVITE", "1001");
    let (_, inv) = one(outs);
    let ok = answer_sdp(&inv, 200, "cb", &b.contact, "callee sdp\r\n");
    let (_, r) = one(gw.feed(b.src, ok));
    let session = format!("{};{}", call.call_id, call.from_tag);
    let route = record_routes(&r);
    let branch = b.branch();
    let mut h = vec![("Via", b.via(&branch))];
    for r in &route {
        h.push(("Route", format!("<{r}>")));
    }
    h.extend([
        ("From", format!("<sip:1001@{DOMAIN}>;tag=cb")),
        ("To", a.from(&call.from_tag)),
        ("Call-ID", call.call_id.clone()),
        ("CSeq", "5 INVITE".into()),
        ("Contact", format!("<{}>", b.contact)),
    ]);
    let reinv = request("INVITE", &a.contact, &h, Some(SDP));
    let outs = gw.feed(b.src, reinv);
    let fwd = sent_to(&outs, Dest::Flow(1)).clone();
    assert_eq!(method(&fwd), "INVITE");
    assert_eq!(fwd.body(), b"relayed offer from Callee to Browser\r\n");
    let ok = answer_sdp(&fwd, 200, &call.from_tag, &a.contact, "caller sdp\r\n");
    let (d, r) = one(gw.feed(a.src, ok));
    assert_eq!((d, status(&r)), (Dest::Flow(2), 200));
    assert_eq!(r.body(), b"relayed answer from Caller\r\n");
    assert_eq!(
        fake.log()[2..],
        [
            format!("offer {session} Callee Browser true"),
            format!("answer {session} Caller caller sdp"),
        ]
    );
}

#[test]
fn media_hook_refusing_the_offer_gives_488() {
    let fake = FakeMedia {
        refuse_offer: true,
        ..FakeMedia::default()
    };
    let (mut gw, mut a, _b) = with_media(&fake);
    let (call, outs) = a.call(&mut gw, "INVITE", "1001");
    let (d, r) = one(outs);
    assert_eq!((d, status(&r)), (Dest::Flow(1), 488), "{}", text(&r));
    assert_eq!(reason(&r), "Not Acceptable Here");
    assert_eq!(
        h1(&r, "Warning"),
        "399 callgate \"media relay: no 'free' ports\""
    );
    assert!(gw.core.calls().is_empty());
    let session = format!("{};{}", call.call_id, call.from_tag);
    assert_eq!(fake.log().last().unwrap(), &format!("delete {session}"));
}

#[test]
fn media_hook_refusing_the_answer_gives_488_to_the_caller() {
    let fake = FakeMedia {
        refuse_answer: true,
        ..FakeMedia::default()
    };
    let (mut gw, mut a, b) = with_media(&fake);
    let (call, outs) = a.call(&mut gw, "INVITE", "1001");
    let (_, inv) = one(outs);
    let ok = answer_sdp(&inv, 200, "cb", &b.contact, "callee sdp\r\n");
    let outs = gw.feed(b.src, ok);
    let r = sent_to(&outs, Dest::Flow(1));
    assert_eq!(status(r), 488, "{}", dump(&outs));
    assert!(gw.core.calls().is_empty());
    let session = format!("{};{}", call.call_id, call.from_tag);
    assert_eq!(fake.log().last().unwrap(), &format!("delete {session}"));
}

#[test]
fn media_hook_final_failure_deletes_and_non_sdp_passes() {
    let fake = FakeMedia::default();
    let (mut gw, mut a, b) = with_media(&fake);
    let (call, outs) = a.call(&mut gw, "INVITE", "1001");
    let (_, inv) = one(outs);
    let outs = gw.feed(b.src, answer(&inv, 486, "Busy Here", "cb", None));
    assert_eq!(status(sent_to(&outs, Dest::Flow(1))), 486);
    let session = format!("{};{}", call.call_id, call.from_tag);
    assert_eq!(
        fake.log(),
        [
            format!("offer {session} Caller Browser true"),
            format!("delete {session}")
        ]
    );

    // A MESSAGE with a body is not media: untouched, no hook call.
    let (_, outs) = a.call(&mut gw, "MESSAGE", "1001");
    let (d, m) = one(outs);
    assert_eq!((d, method(&m)), (Dest::Flow(2), "MESSAGE"));
    assert_eq!(fake.log().len(), 2);
}

#[test]
fn media_hook_udp_callee_gets_a_plain_offer() {
    let fake = FakeMedia::default();
    let mut gw = Gw::new();
    gw.core.set_media(Box::new(fake.clone()));
    let mut a = registered(&mut gw, Ua::wss("1000", 1));
    let _b = registered(&mut gw, Ua::udp("1001", 5070));
    let (_, outs) = a.call(&mut gw, "INVITE", "1001");
    let (d, inv) = one(outs);
    assert_eq!(d, Dest::Addr(Transport::Udp, addr("127.0.0.1:5070")));
    assert_eq!(inv.body(), b"relayed offer from Caller to Plain\r\n");
}

// ----- trunks -------------------------------------------------------------

const TRUNK: &str = "127.0.0.2:5080";

fn trunk_dest() -> Dest {
    Dest::Addr(Transport::Udp, addr(TRUNK))
}

fn trunk_src() -> Source {
    Source {
        transport: Transport::Udp,
        flow: None,
        addr: addr(TRUNK),
        local: addr("127.0.0.1:5060"),
    }
}

fn trunk(register: bool) -> signal::trunk::Trunk {
    let mut t = signal::trunk::Trunk::new("pstn", addr(TRUNK));
    t.host = "carrier.example".into();
    t.dial_patterns = vec!["0".into(), "+".into()];
    t.number_rules = vec![("00".into(), "+".into()), ("0".into(), "+4930".into())];
    t.caller_id = signal::trunk::CallerId::Fixed("+4930555".into());
    t.credentials = Some(signal::trunk::TrunkCredentials {
        username: "acct".into(),
        auth_username: None,
        password: "trunk-secret".into(),
    });
    t.register_expiry = register.then_some(600);
    t
}

fn with_trunk(gw: &mut Gw, register: bool) {
    let mut dp = signal::trunk::Dialplan::default();
    dp.trunks.push(trunk(register));
    dp.dids.insert("+4930777".into(), "1001".into());
    gw.core.set_dialplan(dp);
}

/// A challenge from the trunk (realm `carrier`).
fn trunk_challenge(req: &Message, code: u16) -> Vec<u8> {
    let (name, reason) = if code == 407 {
        ("Proxy-Authenticate", "Proxy Authentication Required")
    } else {
        ("WWW-Authenticate", "Unauthorized")
    };
    sip::response_to(req, code, reason, Some("tt"))
        .header(
            name,
            "Digest realm=\"carrier\", nonce=\"abc123\", algorithm=MD5, qop=\"auth\"",
        )
        .to_bytes()
        .unwrap()
}

fn check_trunk_credentials(m: &Message, header: &str, method: &str) {
    let value = h1(m, header);
    let creds = digest::parse_credentials(&value).unwrap();
    assert_eq!(creds.username, "acct");
    assert_eq!(creds.realm, "carrier");
    let ha1 = digest::ha1(Algorithm::Md5, "acct", "carrier", "trunk-secret");
    assert!(digest::verify(&creds, method, &ha1), "bad digest: {value}");
}

#[test]
fn browser_calls_the_trunk_which_challenges_and_cseq_stays_consistent() {
    let (mut gw, mut a, _b) = two_browsers();
    with_trunk(&mut gw, false);
    let (call, outs) = a.call(&mut gw, "INVITE", "00441234");
    let (d, inv) = one(outs);
    assert_eq!(d, trunk_dest());
    assert_eq!(
        inv.request_uri().unwrap().as_str(),
        "sip:+441234@carrier.example:5080"
    );
    assert_eq!(
        inv.from().unwrap().uri().as_str(),
        "sip:+4930555@carrier.example"
    );
    assert_eq!(inv.from().unwrap().tag(), Some(call.from_tag.as_str()));
    assert_eq!(
        inv.to().unwrap().uri().as_str(),
        "sip:+441234@carrier.example:5080"
    );
    assert!(hv(&inv, "Proxy-Authorization").is_empty(), "{}", text(&inv));
    assert_eq!(inv.cseq().unwrap().seq, 2);

    // 407 from the trunk: ACKed here, and the INVITE goes again with
    // credentials and CSeq 3; the browser sees nothing of it.
    let outs = gw.feed(trunk_src(), trunk_challenge(&inv, 407));
    let sent = sends(&outs);
    assert_eq!(sent.len(), 2, "{}", dump(&outs));
    assert!(sent.iter().all(|(d, _)| *d == trunk_dest()));
    // The challenge's ACK leaves first: strict peers want it so.
    assert_eq!(
        sent.iter().map(|(_, m)| method(m)).collect::<Vec<_>>(),
        ["ACK", "INVITE"]
    );
    let ack = sent[0].1;
    assert_eq!(ack.cseq().unwrap().seq, 2);
    let inv2 = sent
        .iter()
        .find(|(_, m)| method(m) == "INVITE")
        .unwrap()
        .1
        .clone();
    assert_eq!(inv2.cseq().unwrap().seq, 3);
    check_trunk_credentials(&inv2, "Proxy-Authorization", "INVITE");
    assert_ne!(inv2.top_via_branch(), inv.top_via_branch());

    // The 200 reaches the browser with the CSeq it sent.
    let ok = answer(&inv2, 200, "OK", "tt2", Some("sip:gw@127.0.0.2:5080"));
    let (d, ok) = one(gw.feed(trunk_src(), ok));
    assert_eq!(d, a.dest());
    assert_eq!(status(&ok), 200);
    assert_eq!(ok.cseq().unwrap().seq, 2);
    // The route set as the browser keeps it, tokens included.
    let rr: Vec<String> = ok
        .record_routes()
        .map(|r| r.unwrap().uri().as_str().to_owned())
        .collect();

    // ACK and BYE from the browser are shifted by one toward the trunk.
    let ack = a.in_dialog("ACK", &call, "sip:gw@127.0.0.2:5080", "tt2", &rr, 2);
    let (d, ack) = one(gw.feed(a.src, ack));
    assert_eq!(d, trunk_dest());
    assert_eq!(ack.cseq().unwrap().seq, 3);
    let bye = a.in_dialog("BYE", &call, "sip:gw@127.0.0.2:5080", "tt2", &rr, 3);
    let (d, bye) = one(gw.feed(a.src, bye));
    assert_eq!(d, trunk_dest());
    assert_eq!(bye.cseq().unwrap().seq, 4);
    let (d, r) = one(gw.feed(trunk_src(), answer(&bye, 200, "OK", "tt2", None)));
    assert_eq!((d, status(&r)), (a.dest(), 200));
    assert_eq!(r.cseq().unwrap().seq, 3);

    let rec = gw.records.pop().expect("call record");
    assert_eq!(rec.direction, signal::trunk::Direction::Outbound);
    assert_eq!(rec.disposition, signal::trunk::Disposition::Answered);
    assert_eq!(rec.trunk.as_deref(), Some("pstn"));
    assert_eq!(rec.caller_user.as_deref(), Some("1000"));
    assert_eq!(rec.callee, "00441234");
    assert!(rec.answered_unix.is_some());
}

#[test]
fn a_second_challenge_from_the_trunk_fails_the_call() {
    let (mut gw, mut a, _b) = two_browsers();
    with_trunk(&mut gw, false);
    let (_call, outs) = a.call(&mut gw, "INVITE", "0301234");
    let (_, inv) = one(outs);
    let outs = gw.feed(trunk_src(), trunk_challenge(&inv, 401));
    let inv2 = sends(&outs)
        .into_iter()
        .find(|(_, m)| method(m) == "INVITE")
        .unwrap()
        .1
        .clone();
    check_trunk_credentials(&inv2, "Authorization", "INVITE");
    let outs = gw.feed(trunk_src(), trunk_challenge(&inv2, 401));
    let to_browser = sent_to(&outs, a.dest());
    assert_eq!(status(to_browser), 401);
    let rec = gw.records.pop().expect("call record");
    assert_eq!(rec.disposition, signal::trunk::Disposition::Failed);
}

#[test]
fn toll_fraud_unauthenticated_or_unrouted_calls_never_reach_the_trunk() {
    let (mut gw, mut a, _b) = two_browsers();
    with_trunk(&mut gw, false);
    // No credentials: challenged, nothing to the trunk.
    let (_, first) = a.out_of_dialog("INVITE", "00441234", 1, &[], Some(SDP));
    let outs = gw.feed(a.src, first);
    let (d, r) = one(outs);
    assert_eq!((d, status(&r)), (a.dest(), 407));
    // A SIP phone on the trunk's own host but another port, unauthenticated.
    let mut rogue = Ua::udp("1000", 5090);
    rogue.src.addr = addr("127.0.0.2:5090");
    let (_, first) = rogue.out_of_dialog("INVITE", "00441234", 1, &[], Some(SDP));
    let outs = gw.feed(rogue.src, first);
    assert!(
        sends(&outs).iter().all(|(d, _)| *d != trunk_dest()),
        "{}",
        dump(&outs)
    );
    assert_eq!(status(sends(&outs)[0].1), 407);
    // Straight at the trunk's domain from an unauthenticated source.
    let req = request(
        "INVITE",
        "sip:+441234@127.0.0.2:5080",
        &[
            ("Via", "SIP/2.0/UDP 127.0.0.9:5060;branch=z9hG4bKx1".into()),
            ("From", "<sip:x@127.0.0.9>;tag=x".into()),
            ("To", "<sip:+441234@127.0.0.2:5080>".into()),
            ("Call-ID", "fraud@x".into()),
            ("CSeq", "1 INVITE".into()),
            ("Contact", "<sip:x@127.0.0.9>".into()),
        ],
        Some(SDP),
    );
    let mut src = trunk_src();
    src.addr = addr("127.0.0.9:5060");
    let outs = gw.feed(src, req);
    assert!(
        sends(&outs).iter().all(|(d, _)| *d != trunk_dest()),
        "{}",
        dump(&outs)
    );
    // Authenticated, but a number no trunk routes.
    let (_, outs) = a.call(&mut gw, "INVITE", "999");
    let (d, r) = one(outs);
    assert_eq!((d, status(&r)), (a.dest(), 404));
}

#[test]
fn trunk_calls_a_did_which_forks_to_the_users_browsers() {
    let mut gw = Gw::new();
    with_trunk(&mut gw, false);
    let b1 = registered(&mut gw, Ua::wss("1001", 2));
    let mut b2 = Ua::wss("1001", 3);
    b2.instance = Some("urn:uuid:00000000-0000-4000-8000-000000000099".into());
    let b2 = registered(&mut gw, b2);
    let req = request(
        "INVITE",
        "sip:+4930777@127.0.0.1",
        &[
            ("Via", format!("SIP/2.0/UDP {TRUNK};branch=z9hG4bKin1")),
            ("From", "<sip:+4917012@carrier.example>;tag=pstn1".into()),
            ("To", "<sip:+4930777@127.0.0.1>".into()),
            ("Call-ID", "inbound-1@carrier".into()),
            ("CSeq", "10 INVITE".into()),
            ("Contact", format!("<sip:+4917012@{TRUNK}>")),
        ],
        Some(SDP),
    );
    let outs = gw.feed(trunk_src(), req);
    let i1 = sent_to(&outs, b1.dest()).clone();
    let i2 = sent_to(&outs, b2.dest()).clone();
    assert_eq!(method(&i1), "INVITE");
    assert_eq!(i1.request_uri().unwrap().as_str(), b1.contact);
    assert_eq!(i2.request_uri().unwrap().as_str(), b2.contact);
    let calls = gw.core.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].direction, signal::trunk::Direction::Inbound);
    assert_eq!(calls[0].callee_user.as_deref(), Some("1001"));
    // An unknown number from the trunk is not routed as a DID; it needs
    // credentials like anyone's.
    let req = request(
        "INVITE",
        "sip:+4930999@127.0.0.1",
        &[
            ("Via", format!("SIP/2.0/UDP {TRUNK};branch=z9hG4bKin2")),
            ("From", "<sip:+4917012@carrier.example>;tag=pstn2".into()),
            ("To", "<sip:+4930999@127.0.0.1>".into()),
            ("Call-ID", "inbound-2@carrier".into()),
            ("CSeq", "10 INVITE".into()),
        ],
        Some(SDP),
    );
    let outs = gw.feed(trunk_src(), req);
    assert_eq!(status(sent_to(&outs, trunk_dest())), 407);
}

#[test]
fn trunk_registration_authenticates_refreshes_and_reports_state() {
    let mut gw = Gw::new();
    with_trunk(&mut gw, true);
    // The driver calls on_timer once at start.
    let unix = gw.unix();
    gw.core.on_timer(gw.now, unix);
    let outs = gw.outputs();
    let reg = sent_to(&outs, trunk_dest()).clone();
    assert_eq!(method(&reg), "REGISTER");
    assert_eq!(
        reg.request_uri().unwrap().as_str(),
        "sip:carrier.example:5080"
    );
    assert_eq!(reg.to().unwrap().uri().as_str(), "sip:acct@carrier.example");
    assert_eq!(h1(&reg, "Expires"), "600");
    let status_now = |gw: &Gw| gw.core.trunk_status()[0].registration.clone();
    assert_eq!(
        status_now(&gw),
        signal::trunk::RegistrationState::Registering
    );
    let outs = gw.feed(trunk_src(), trunk_challenge(&reg, 401));
    let reg2 = sent_to(&outs, trunk_dest()).clone();
    assert_eq!(reg2.cseq().unwrap().seq, reg.cseq().unwrap().seq + 1);
    assert_eq!(reg2.call_id(), reg.call_id());
    check_trunk_credentials(&reg2, "Authorization", "REGISTER");
    let ok = sip::response_to(&reg2, 200, "OK", Some("tt"))
        .header("Contact", &format!("{};expires=300", h1(&reg2, "Contact")))
        .to_bytes()
        .unwrap();
    let outs = gw.feed(trunk_src(), ok);
    assert!(sends(&outs).is_empty(), "{}", dump(&outs));
    let unix = gw.unix();
    assert_eq!(
        status_now(&gw),
        signal::trunk::RegistrationState::Registered {
            expires_unix: unix + 300
        }
    );
    // Refreshed at 4/5 of the granted 300 s.
    let outs = gw.advance(Duration::from_secs(250));
    let (at, refresh) = outs
        .iter()
        .find_map(|(at, o)| match o {
            Out::Send(d, m) if *d == trunk_dest() && method(m) == "REGISTER" => Some((*at, m)),
            _ => None,
        })
        .expect("refresh REGISTER");
    assert_eq!(at.as_secs(), 240);
    assert!(refresh.cseq().unwrap().seq > reg2.cseq().unwrap().seq);
    // A refusal is reported.
    let nope = sip::response_to(refresh, 403, "Forbidden", Some("tt"))
        .to_bytes()
        .unwrap();
    gw.feed(trunk_src(), nope);
    assert_eq!(
        status_now(&gw),
        signal::trunk::RegistrationState::Failed {
            reason: "403 Forbidden".into()
        }
    );
}

#[test]
fn gateway_hangup_sends_bye_both_ways() {
    let (mut gw, mut a, b) = two_browsers();
    let (call, _rr) = answered_call(&mut gw, &mut a, &b);
    let unix = gw.unix();
    let now = gw.now;
    assert!(gw.core.hangup(&call.call_id, "media timeout", now, unix));
    let outs = gw.outputs();
    let to_a = sent_to(&outs, a.dest());
    let to_b = sent_to(&outs, b.dest());
    assert_eq!((method(to_a), method(to_b)), ("BYE", "BYE"));
    assert_eq!(to_b.request_uri().unwrap().as_str(), b.contact);
    assert_eq!(to_a.request_uri().unwrap().as_str(), a.contact);
    assert_eq!(to_b.from().unwrap().tag(), Some(call.from_tag.as_str()));
    assert_eq!(to_b.to().unwrap().tag(), Some("cb"));
    assert_eq!(to_a.from().unwrap().tag(), Some("cb"));
    assert_eq!(to_a.to().unwrap().tag(), Some(call.from_tag.as_str()));
    assert!(to_b.cseq().unwrap().seq > call.cseq);
    assert!(gw.core.calls().is_empty());
    let rec = gw.records.pop().unwrap();
    assert_eq!(rec.reason, "media timeout");
    assert_eq!(rec.direction, signal::trunk::Direction::Internal);
    assert_eq!(rec.callee_user.as_deref(), Some("1001"));
    assert!(!gw.core.hangup(&call.call_id, "again", now, unix));
}

#[test]
fn gateway_hangup_of_a_ringing_call_cancels_and_answers_487() {
    let (mut gw, mut a, b) = two_browsers();
    let (call, outs) = a.call(&mut gw, "INVITE", "1001");
    let (_, inv) = one(outs);
    gw.feed(b.src, answer(&inv, 180, "Ringing", "cb", None));
    let (now, unix) = (gw.now, gw.unix());
    assert!(gw.core.hangup(&call.call_id, "operator", now, unix));
    let outs = gw.outputs();
    let cancel = sent_to(&outs, b.dest());
    assert_eq!(method(cancel), "CANCEL");
    assert_eq!(cancel.top_via_branch(), inv.top_via_branch());
    let r = sent_to(&outs, a.dest());
    assert_eq!(status(r), 487);
    assert!(gw.core.calls().is_empty());
    assert_eq!(
        gw.records.pop().unwrap().disposition,
        signal::trunk::Disposition::Cancelled
    );
    // The callee's 487 after the CANCEL goes nowhere upstream.
    let outs = gw.feed(b.src, answer(cancel, 200, "OK", "cb", None));
    assert!(sends(&outs).iter().all(|(d, _)| *d != a.dest()));
    let outs = gw.feed(b.src, answer(&inv, 487, "Request Terminated", "cb", None));
    assert!(
        sends(&outs)
            .iter()
            .all(|(d, m)| *d != a.dest() || m.status().is_none()),
        "{}",
        dump(&outs)
    );
    assert!(!gw.core.hangup("no-such-call", "x", now, unix));
}

#[test]
fn draining_refuses_new_calls_with_retry_after_but_keeps_dialogs() {
    let (mut gw, mut a, b) = two_browsers();
    let (call, rr) = answered_call(&mut gw, &mut a, &b);
    gw.core.set_draining(true);
    let (_, first) = a.out_of_dialog("INVITE", "1001", 1, &[], Some(SDP));
    let (d, r) = one(gw.feed(a.src, first));
    assert_eq!((d, status(&r)), (a.dest(), 503));
    assert_eq!(h1(&r, "Retry-After"), "60");
    // The established call still ends normally.
    let bye = a.in_dialog("BYE", &call, &b.contact, "cb", &rr, call.cseq + 1);
    let (d, bye) = one(gw.feed(a.src, bye));
    assert_eq!((d, method(&bye)), (b.dest(), "BYE"));
}

#[test]
fn forced_unregister_removes_and_reports_bindings() {
    let (mut gw, _a, b) = two_browsers();
    let aor = format!("sip:1001@{DOMAIN}");
    assert_eq!(gw.core.unregister(&aor, Some("sip:nobody@x.invalid")), 0);
    assert_eq!(gw.core.unregister(&aor, Some(&b.contact)), 1);
    let outs = gw.outputs();
    assert_eq!(bindings(&outs).len(), 1);
    assert!(gw.core.location().lookup(&aor, gw.unix()).is_empty());
}

#[test]
fn destination_scope_and_call_limit_of_a_user() {
    let (mut gw, mut a, _b) = two_browsers();
    with_trunk(&mut gw, false);
    let mut r1000 = record("1000");
    r1000.scope = signal::auth::Scope::National;
    r1000.max_calls = Some(1);
    r1000.caller_id = Some("+4930111".into());
    gw.core
        .set_users(Directory::new([r1000, record("1001"), record("1002")]));
    // National scope: international numbers are refused before any trunk.
    let (_, outs) = a.call(&mut gw, "INVITE", "00441234");
    let (d, r) = one(outs);
    assert_eq!(
        (d, status(&r), reason(&r).as_str()),
        (a.dest(), 403, "Destination Not Allowed")
    );
    // A national one goes out; the trunk's caller-ID policy is "user".
    let mut dp = signal::trunk::Dialplan::default();
    let mut t = trunk(false);
    t.caller_id = signal::trunk::CallerId::User;
    dp.trunks.push(t);
    gw.core.set_dialplan(dp);
    let (_, outs) = a.call(&mut gw, "INVITE", "0301234");
    let (d, inv) = one(outs);
    assert_eq!(d, trunk_dest());
    assert_eq!(inv.from().unwrap().uri().user(), Some("+4930111"));
    // One call at a time.
    let (_, outs) = a.call(&mut gw, "INVITE", "0305678");
    let (d, r) = one(outs);
    assert_eq!(
        (d, status(&r), reason(&r).as_str()),
        (a.dest(), 403, "Call Limit Reached")
    );
}

#[test]
fn trunk_ping_reports_status_and_round_trip() {
    let mut gw = Gw::new();
    with_trunk(&mut gw, false);
    let (now, unix) = (gw.now, gw.unix());
    let id = gw.core.ping_trunk("pstn", now, unix).expect("trunk known");
    assert!(gw.core.ping_trunk("nope", now, unix).is_none());
    let mut opts = None;
    while let Some(o) = gw.core.poll_output() {
        if let Output::Send { dest, data } = o {
            assert_eq!(dest, trunk_dest());
            opts = Some(Message::parse(data, &Limits::default()).unwrap());
        }
    }
    let opts = opts.expect("OPTIONS sent");
    assert_eq!(method(&opts), "OPTIONS");
    gw.now += Duration::from_millis(12);
    let ok = sip::response_to(&opts, 200, "OK", Some("t"))
        .to_bytes()
        .unwrap();
    let unix = gw.unix();
    gw.core
        .on_message(trunk_src(), Bytes::from(ok), gw.now, unix);
    let mut got = None;
    while let Some(o) = gw.core.poll_output() {
        if let Output::PingResult { id: i, result } = o {
            got = Some((i, result));
        }
    }
    let (i, result) = got.expect("ping result");
    assert_eq!(i, id);
    assert_eq!(result, Ok((200, Duration::from_millis(12))));
    // No answer: reported as such after timer F.
    let id = gw.core.ping_trunk("pstn", gw.now, unix).unwrap();
    let mut failed = None;
    for _ in 0..200 {
        gw.now += Duration::from_millis(500);
        let unix = gw.unix();
        gw.core.on_timer(gw.now, unix);
        while let Some(o) = gw.core.poll_output() {
            if let Output::PingResult { id: i, result } = o {
                failed = Some((i, result));
            }
        }
        if failed.is_some() {
            break;
        }
    }
    assert_eq!(failed, Some((id, Err("no answer".to_owned()))));
}
