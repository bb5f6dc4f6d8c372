//! What the gateway keeps and how it is administered, over the wire.
//!
//! Every test starts the real `callgate` binary with a throw-away
//! configuration (loopback listeners on free ports, the data dir in a temp
//! dir, SIP domain `example.com`). The server counts as up once a UDP
//! OPTIONS gets its 200.
//!
//! - [`registrations_survive_a_restart`]: a UDP phone registers, the server
//!   is stopped with SIGTERM (it must exit 0) right after the 200 and started
//!   again on the same data dir; an INVITE from another user reaches the
//!   phone without it registering again, and the JSON API lists the
//!   registration.
//! - [`cli_user_changes_apply_while_running`]: `callgate user add`,
//!   `user passwd` and `user remove` against the data dir of the running
//!   server take effect within 3 s.
//! - [`bad_config_is_refused_naming_the_field`]: an invalid value and an
//!   unknown field are refused, named on stderr, with a non-zero exit.
//! - [`api_creates_users_and_wants_the_token`]: POST /api/v1/users with the
//!   token creates a user that can then register; without the token (or
//!   with a wrong one) the API answers 401.
//!
//! Digest authentication is done with `sip::digest` against the challenges
//! the server sends (SHA-256 and MD5 by default); both algorithms are used.

mod common;

use common::{
    api, free_tcp_port, free_udp_port, json, rand_tag, run_with_config, Answer, Head, Ready,
    Response, Site, DOMAIN, SIP_WAIT,
};
use sip::digest::{self, Algorithm, Secret};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::time::{sleep, timeout_at, Instant};

/// How soon a user change made beside the running server must apply.
const RELOAD_WAIT: Duration = Duration::from_secs(3);

/// A site with these users (name, password), up once a UDP OPTIONS gets
/// its 200; API requests get as long as SIP requests.
fn site(users: &[(&str, &str)]) -> Site {
    let users: String = users
        .iter()
        .map(|(n, p)| format!("[[users]]\nname = \"{n}\"\npassword = \"{p}\"\n"))
        .collect();
    let mut site = Site::new(&users);
    site.ready = Ready::SipOptions;
    site.api_wait = SIP_WAIT;
    site
}

// ---------------------------------------------------------------------------
// Digest answers
// ---------------------------------------------------------------------------

/// The credentials answering the challenge of `algorithm` among the
/// `header` values of `r`.
fn answer_challenge(
    r: &Response,
    header: &str,
    algorithm: Algorithm,
    method: &str,
    uri: &str,
    user: &str,
    password: &str,
) -> String {
    let challenge = r
        .head
        .all(header)
        .filter_map(|v| digest::parse_challenge(v).ok())
        .find(|c| c.algorithm == algorithm)
        .unwrap_or_else(|| panic!("no {algorithm} challenge in {header} of {r}: {r:?}"));
    assert_eq!(challenge.realm, DOMAIN, "digest realm");
    let cnonce = format!("cn{}x{}", std::process::id(), rand_tag());
    digest::authorize(
        &challenge,
        method,
        uri,
        user,
        Secret::Password(password),
        &cnonce,
        1,
    )
    .expect("authorize")
}

// ---------------------------------------------------------------------------
// A UDP phone
// ---------------------------------------------------------------------------

struct Phone {
    sock: UdpSocket,
    user: String,
    server: SocketAddr,
    /// Call-ID of the registration, kept across REGISTERs as a UA does.
    reg_call_id: String,
    cseq: u32,
    tag: String,
}

impl Phone {
    /// A phone for `user` on a fresh UDP socket of loopback address `ip`
    /// (127.0.0.x: authentication failures are counted per address).
    async fn new(user: &str, ip: Ipv4Addr, server: SocketAddr) -> Phone {
        let sock = UdpSocket::bind((ip, 0)).await.expect("bind UDP");
        let tag = format!("{:x}", rand_tag());
        Phone {
            sock,
            user: user.into(),
            server,
            reg_call_id: format!("reg-{tag}@persistence.invalid"),
            cseq: 0,
            tag,
        }
    }

    fn local(&self) -> SocketAddr {
        self.sock.local_addr().unwrap()
    }

    fn contact(&self) -> String {
        format!("sip:{}@{}", self.user, self.local())
    }

    fn via(&self) -> String {
        format!(
            "SIP/2.0/UDP {};branch=z9hG4bK-{:x};rport",
            self.local(),
            rand_tag()
        )
    }

    async fn send(&self, msg: &str) {
        self.sock
            .send_to(msg.as_bytes(), self.server)
            .await
            .expect("UDP send");
    }

    /// Next datagram from anywhere, or `None` at `until`.
    async fn recv(&self, until: Instant) -> Option<(Vec<u8>, SocketAddr)> {
        let mut buf = vec![0u8; 65_536];
        loop {
            match timeout_at(until, self.sock.recv_from(&mut buf)).await {
                Ok(Ok((n, from))) => return Some((buf[..n].to_vec(), from)),
                // ICMP errors from earlier sends are not messages.
                Ok(Err(_)) => continue,
                Err(_) => return None,
            }
        }
    }

    /// The final response to the request (Call-ID, CSeq, method).
    async fn final_response(&self, call_id: &str, cseq: u32, method: &str) -> Option<Response> {
        let until = Instant::now() + SIP_WAIT;
        while let Some((data, _)) = self.recv(until).await {
            if let Some(r) = Response::parse(&data) {
                if r.status >= 200 && r.is_for(call_id, cseq, method) {
                    return Some(r);
                }
            }
        }
        None
    }

    fn register_msg(&mut self, expires: u32, authorization: Option<&str>) -> String {
        self.cseq += 1;
        let mut m = format!(
            "REGISTER sip:{DOMAIN} SIP/2.0\r\n\
             Via: {}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{user}@{DOMAIN}>;tag={tag}\r\n\
             To: <sip:{user}@{DOMAIN}>\r\n\
             Call-ID: {cid}\r\n\
             CSeq: {cseq} REGISTER\r\n\
             Contact: <{contact}>;expires={expires}\r\n\
             User-Agent: persistence-test\r\n",
            self.via(),
            user = self.user,
            tag = self.tag,
            cid = self.reg_call_id,
            cseq = self.cseq,
            contact = self.contact(),
        );
        if let Some(a) = authorization {
            m.push_str(&format!("Authorization: {a}\r\n"));
        }
        m.push_str("Content-Length: 0\r\n\r\n");
        m
    }

    /// REGISTER, answering a 401 with `password` over the challenge of
    /// `algorithm`. The final response (to the authenticated request when
    /// challenged).
    async fn register(&mut self, password: &str, algorithm: Algorithm) -> Response {
        let msg = self.register_msg(600, None);
        self.send(&msg).await;
        let cid = self.reg_call_id.clone();
        let r = self
            .final_response(&cid, self.cseq, "REGISTER")
            .await
            .unwrap_or_else(|| panic!("no answer to REGISTER of {}", self.user));
        if r.status != 401 {
            return r;
        }
        let auth = answer_challenge(
            &r,
            "www-authenticate",
            algorithm,
            "REGISTER",
            &format!("sip:{DOMAIN}"),
            &self.user.clone(),
            password,
        );
        let msg = self.register_msg(600, Some(&auth));
        self.send(&msg).await;
        self.final_response(&cid, self.cseq, "REGISTER")
            .await
            .unwrap_or_else(|| panic!("no answer to authenticated REGISTER of {}", self.user))
    }
}

/// REGISTERs `phone` every 300 ms until `done` holds for the answer or
/// `RELOAD_WAIT` has passed; the last answer and how long it took.
async fn register_until(
    phone: &mut Phone,
    password: &str,
    algorithm: Algorithm,
    done: impl Fn(&Response) -> bool,
) -> (Response, Duration) {
    let start = Instant::now();
    loop {
        let r = phone.register(password, algorithm).await;
        assert_ne!(
            r.reason, "Too Many Failed Attempts",
            "the polling itself got the address blocked"
        );
        if done(&r) || start.elapsed() >= RELOAD_WAIT {
            return (r, start.elapsed());
        }
        sleep(Duration::from_millis(300)).await;
    }
}

// ---------------------------------------------------------------------------
// 1. Registrations survive a restart
// ---------------------------------------------------------------------------

#[tokio::test]
async fn registrations_survive_a_restart() {
    let mut site = site(&[("alice", "alice-secret"), ("bob", "bob-secret-2")]);
    let server = site.start().await;

    // alice registers (SHA-256), and the server is stopped right after the
    // 200: the binding must have reached the store by the time it exits.
    let mut alice = Phone::new("alice", Ipv4Addr::LOCALHOST, site.udp).await;
    let r = alice.register("alice-secret", Algorithm::Sha256).await;
    assert_eq!(r.status, 200, "alice's REGISTER: {r}\n{}", site.log());
    assert!(
        r.head.all("contact").any(|c| c.contains(&alice.contact())),
        "200 must list the contact {}: {:?}",
        alice.contact(),
        r.head
    );
    server.stop(&site).await;

    let server = site.restart().await;
    let log = site.log();
    assert!(
        log.contains("restored=1"),
        "one registration must be restored:\n{log}"
    );

    // bob calls alice; she has not registered again.
    let mut bob = Phone::new("bob", Ipv4Addr::LOCALHOST, site.udp).await;
    let call_id = format!("call-{:x}@persistence.invalid", rand_tag());
    let sdp = format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
        bob.local().port() + 2
    );
    let target = format!("sip:alice@{DOMAIN}");
    let invite = |bob: &Phone, cseq: u32, via: &str, auth: Option<&str>| {
        let mut m = format!(
            "INVITE {target} SIP/2.0\r\n\
             Via: {via}\r\n\
             Max-Forwards: 70\r\n\
             From: \"Bob\" <sip:bob@{DOMAIN}>;tag={tag}\r\n\
             To: <{target}>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} INVITE\r\n\
             Contact: <{contact}>\r\n\
             Content-Type: application/sdp\r\n",
            tag = bob.tag,
            contact = bob.contact(),
        );
        if let Some(a) = auth {
            m.push_str(&format!("Proxy-Authorization: {a}\r\n"));
        }
        m.push_str(&format!("Content-Length: {}\r\n\r\n{sdp}", sdp.len()));
        m
    };
    let via1 = bob.via();
    bob.send(&invite(&bob, 1, &via1, None)).await;
    let challenge = bob
        .final_response(&call_id, 1, "INVITE")
        .await
        .expect("answer to the INVITE");
    assert_eq!(challenge.status, 407, "INVITE: {challenge}");
    // ACK the 407 (same branch, To tag of the response).
    bob.cseq = 1;
    let ack = format!(
        "ACK {target} SIP/2.0\r\nVia: {via1}\r\nMax-Forwards: 70\r\n\
         From: \"Bob\" <sip:bob@{DOMAIN}>;tag={}\r\nTo: {}\r\nCall-ID: {call_id}\r\n\
         CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
        bob.tag,
        challenge.head.get("to").unwrap()
    );
    bob.send(&ack).await;
    let auth = answer_challenge(
        &challenge,
        "proxy-authenticate",
        Algorithm::Md5,
        "INVITE",
        &target,
        "bob",
        "bob-secret-2",
    );
    let via2 = bob.via();
    bob.send(&invite(&bob, 2, &via2, Some(&auth))).await;

    // The INVITE reaches alice's socket, at her registered contact.
    let until = Instant::now() + SIP_WAIT;
    let (raw, proxy_addr) = loop {
        let Some((data, from)) = alice.recv(until).await else {
            panic!(
                "the INVITE did not reach alice after the restart\n{}",
                site.log()
            );
        };
        if Head::parse(&data).method() == "INVITE" {
            break (data, from);
        }
    };
    let inv = Head::parse(&raw);
    assert_eq!(
        inv.request_uri(),
        alice.contact(),
        "Request-URI of the INVITE"
    );
    assert_eq!(inv.get("call-id"), Some(call_id.as_str()));
    assert_eq!(proxy_addr, site.udp, "sent from the SIP listener");

    // alice is busy; the 486 goes back to bob, who acknowledges it.
    let mut busy = String::from("SIP/2.0 486 Busy Here\r\n");
    for via in inv.all("via") {
        busy.push_str(&format!("Via: {via}\r\n"));
    }
    busy.push_str(&format!(
        "From: {}\r\nTo: {};tag=alice1\r\nCall-ID: {}\r\nCSeq: {}\r\nContent-Length: 0\r\n\r\n",
        inv.get("from").unwrap(),
        inv.get("to").unwrap(),
        inv.get("call-id").unwrap(),
        inv.get("cseq").unwrap()
    ));
    alice
        .sock
        .send_to(busy.as_bytes(), proxy_addr)
        .await
        .expect("send 486");
    let r = bob
        .final_response(&call_id, 2, "INVITE")
        .await
        .expect("bob gets the final response");
    assert_eq!(r.status, 486, "alice's answer relayed to bob: {r}");
    let ack = format!(
        "ACK {target} SIP/2.0\r\nVia: {via2}\r\nMax-Forwards: 70\r\n\
         From: \"Bob\" <sip:bob@{DOMAIN}>;tag={}\r\nTo: {}\r\nCall-ID: {call_id}\r\n\
         CSeq: 2 ACK\r\nContent-Length: 0\r\n\r\n",
        bob.tag,
        r.head.get("to").unwrap()
    );
    bob.send(&ack).await;

    // The JSON API lists the restored registration as reachable.
    let token = site.token();
    let Answer { status, body, .. } =
        api(&site, "GET", "/api/v1/registrations", Some(&token), None).await;
    assert_eq!(status, 200, "GET /api/v1/registrations: {body}");
    let regs = json(&body);
    let regs = regs["registrations"]
        .as_array()
        .expect("registrations array");
    let mine: Vec<_> = regs
        .iter()
        .filter(|r| r["aor"] == format!("sip:alice@{DOMAIN}"))
        .collect();
    assert_eq!(mine.len(), 1, "alice's registration in {body}");
    assert_eq!(mine[0]["contact"], alice.contact(), "{body}");
    assert_eq!(
        mine[0]["transport"].as_str().map(str::to_ascii_lowercase),
        Some("udp".into())
    );
    assert_eq!(mine[0]["reachable"], true, "{body}");
    let expires_in = mine[0]["expires_in"].as_u64().unwrap_or(0);
    assert!(
        (1..=600).contains(&expires_in),
        "expires_in {expires_in} of a 600 s registration"
    );

    server.stop(&site).await;
}

// ---------------------------------------------------------------------------
// 2. The CLI edits users under the running server
// ---------------------------------------------------------------------------

#[tokio::test]
async fn cli_user_changes_apply_while_running() {
    let mut site = site(&[]);
    let server = site.start().await;

    // Each phase polls from its own loopback address: failures before a
    // reload count towards the per-address block.
    let out = site.cli(&[
        "user",
        "add",
        "carol",
        "--password",
        "carol-first-pw",
        "--extension",
        "2042",
    ]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("added user carol"),
        "{out:?}"
    );
    let mut carol = Phone::new("carol", Ipv4Addr::new(127, 0, 0, 2), site.udp).await;
    let (r, took) = register_until(&mut carol, "carol-first-pw", Algorithm::Sha256, |r| {
        r.status == 200
    })
    .await;
    assert_eq!(
        r.status,
        200,
        "carol added by the CLI must register within {RELOAD_WAIT:?}, got {r} after {took:?}\n{}",
        site.log()
    );

    let out = site.cli(&["user", "list"]);
    let listing = String::from_utf8_lossy(&out.stdout);
    let row = listing
        .lines()
        .find(|l| l.split_whitespace().next() == Some("carol"))
        .unwrap_or_else(|| panic!("carol not in `user list`:\n{listing}"));
    assert!(row.contains("2042"), "extension in `user list`: {row}");

    // New password: the old one stops working, the new one works.
    site.cli(&["user", "passwd", "carol", "--password", "carol-second-pw"]);
    let mut carol = Phone::new("carol", Ipv4Addr::new(127, 0, 0, 3), site.udp).await;
    let (r, took) = register_until(&mut carol, "carol-first-pw", Algorithm::Md5, |r| {
        r.status != 200
    })
    .await;
    assert_eq!(
        r.status, 403,
        "the old password must be refused within {RELOAD_WAIT:?}, got {r} after {took:?}"
    );
    assert_eq!(r.reason, "Wrong password");
    let r = carol.register("carol-second-pw", Algorithm::Md5).await;
    assert_eq!(r.status, 200, "REGISTER with the new password: {r}");
    let r = carol.register("carol-second-pw", Algorithm::Sha256).await;
    assert_eq!(
        r.status, 200,
        "REGISTER with the new password (SHA-256): {r}"
    );

    // Removed: no more REGISTERs.
    site.cli(&["user", "remove", "carol"]);
    let mut carol = Phone::new("carol", Ipv4Addr::new(127, 0, 0, 4), site.udp).await;
    let (r, took) = register_until(&mut carol, "carol-second-pw", Algorithm::Sha256, |r| {
        r.status != 200
    })
    .await;
    assert!(
        matches!(r.status, 403 | 404),
        "a removed user must be refused within {RELOAD_WAIT:?}, got {r} after {took:?}"
    );
    let out = site.cli(&["user", "list"]);
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        !listing.lines().any(|l| l.starts_with("carol ")),
        "carol still listed:\n{listing}"
    );

    server.stop(&site).await;
}

// ---------------------------------------------------------------------------
// 3. Bad configuration
// ---------------------------------------------------------------------------

#[test]
fn bad_config_is_refused_naming_the_field() {
    let listeners = format!(
        "[sip]\nudp = [\"127.0.0.1:{}\"]\ntcp = []\ntls = []\nwss = []\n\
         [admin]\nlisten = \"127.0.0.1:{}\"\n",
        free_udp_port(),
        free_tcp_port()
    );
    let cases: &[(&str, &str, &[&str])] = &[
        // An invalid value, named with its section.
        (
            "[media]\nport_min = 40000\nport_max = 30000\n",
            "media.port_max",
            &[],
        ),
        ("[media]\nport_min = 80\n", "media.port_min", &[]),
        // Unknown fields, in a section and at the top.
        ("[media]\nport_maxx = 30000\n", "port_maxx", &[]),
        ("admin_port = 8443\n", "admin_port", &[]),
        // The CLI refuses the same file.
        (
            "[media]\nport_min = 40000\nport_max = 30000\n",
            "media.port_max",
            &["user", "list"],
        ),
    ];
    for (bad, field, args) in cases {
        // Top-level keys must come before the first table.
        let config = if bad.starts_with('[') {
            format!("{listeners}{bad}")
        } else {
            format!("{bad}{listeners}")
        };
        let (code, stderr, created) = run_with_config(&config, args);
        assert!(
            code.is_some_and(|c| c != 0),
            "exit code {code:?} for {bad:?} (args {args:?}); stderr: {stderr}"
        );
        assert!(
            stderr.contains(field),
            "stderr must name `{field}` for {bad:?} (args {args:?}): {stderr}"
        );
        assert!(
            !created,
            "a refused configuration must not create the data dir"
        );
    }
}

// ---------------------------------------------------------------------------
// 4. The JSON API creates users
// ---------------------------------------------------------------------------

#[tokio::test]
async fn api_creates_users_and_wants_the_token() {
    let mut site = site(&[]);
    let server = site.start().await;
    let token = site.token();
    assert!(token.len() >= 16, "API token {token:?}");
    assert!(
        site.log().contains(&token),
        "the token is printed at first start"
    );

    let new_user = r#"{"name":"dave","password":"dave-api-secret","extension":"3001"}"#;
    let Answer { status, body, .. } =
        api(&site, "POST", "/api/v1/users", None, Some(new_user)).await;
    assert_eq!(status, 401, "no token: {body}");
    let last = if token.ends_with('x') { 'y' } else { 'x' };
    let wrong = format!("{}{last}", &token[..token.len() - 1]);
    let Answer { status, body, .. } =
        api(&site, "POST", "/api/v1/users", Some(&wrong), Some(new_user)).await;
    assert_eq!(status, 401, "wrong token: {body}");
    let Answer { status, body, .. } = api(&site, "GET", "/api/v1/registrations", None, None).await;
    assert_eq!(status, 401, "no token on registrations: {body}");

    // Nothing was created by the refused requests.
    let mut dave = Phone::new("dave", Ipv4Addr::new(127, 0, 0, 5), site.udp).await;
    let r = dave.register("dave-api-secret", Algorithm::Sha256).await;
    assert_eq!(r.status, 403, "dave before creation: {r}");

    let Answer { status, body, .. } =
        api(&site, "POST", "/api/v1/users", Some(&token), Some(new_user)).await;
    assert_eq!(status, 201, "POST /api/v1/users: {body}");
    let created = json(&body);
    assert_eq!(created["name"], "dave");
    assert_eq!(created["extension"], "3001");
    assert!(!body.contains("ha1"), "never shows the HA1: {body}");

    let mut dave = Phone::new("dave", Ipv4Addr::new(127, 0, 0, 6), site.udp).await;
    let (r, took) = register_until(&mut dave, "dave-api-secret", Algorithm::Md5, |r| {
        r.status == 200
    })
    .await;
    assert_eq!(
        r.status,
        200,
        "dave created by the API must register within {RELOAD_WAIT:?}, got {r} after {took:?}\n{}",
        site.log()
    );

    let Answer { status, body, .. } =
        api(&site, "GET", "/api/v1/users?q=dave", Some(&token), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["total"], 1, "{body}");
    let Answer { status, body, .. } =
        api(&site, "GET", "/api/v1/registrations", Some(&token), None).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        json(&body)["registrations"]
            .as_array()
            .is_some_and(|a| a.iter().any(|r| r["aor"] == format!("sip:dave@{DOMAIN}"))),
        "dave's registration listed: {body}"
    );

    server.stop(&site).await;
}
