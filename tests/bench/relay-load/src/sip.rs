//! The browser's SIP side, as JsSIP does it over a secure WebSocket:
//! connect, REGISTER with MD5 digest, INVITE with a WebRTC offer (407 ->
//! ACK -> INVITE with credentials), ACK of the 200 along the route set,
//! BYE at the end. One connection registers one user and places one or
//! more calls.

use futures_util::{SinkExt, StreamExt};
use md5::{Digest, Md5};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpSocket;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// A SIP-over-WSS connection.
pub type Ws = WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

#[derive(Debug)]
struct AcceptAnyCert;

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// TLS client that accepts the servers' self-signed test certificates.
pub fn tls_connector() -> TlsConnector {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyCert))
        .with_no_client_auth();
    TlsConnector::from(Arc::new(cfg))
}

/// TCP from `src`, TLS, WebSocket upgrade with subprotocol `sip`.
pub async fn connect(server: SocketAddr, src: IpAddr, tls: &TlsConnector) -> Result<Ws, String> {
    let sock = TcpSocket::new_v4().map_err(|e| format!("socket: {e}"))?;
    sock.bind(SocketAddr::new(src, 0))
        .map_err(|e| format!("bind {src}: {e}"))?;
    let tcp = sock
        .connect(server)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let name = ServerName::IpAddress(server.ip().into());
    let stream = tls
        .connect(name, tcp)
        .await
        .map_err(|e| format!("tls: {e}"))?;
    let mut req = format!("wss://{server}/")
        .into_client_request()
        .map_err(|e| format!("request: {e}"))?;
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "sip".parse().unwrap());
    let (ws, _) = tokio_tungstenite::client_async(req, stream)
        .await
        .map_err(|e| format!("websocket handshake: {e}"))?;
    Ok(ws)
}

pub fn md5_hex(s: &str) -> String {
    Md5::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Cheap per-connection randomness for tags, branches and Call-IDs.
pub fn token(seed: u64, salt: u64) -> String {
    let mut x = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(salt.wrapping_mul(0xBF58_476D_1CE4_E5B9))
        ^ (std::process::id() as u64).wrapping_mul(0xD6E8_FEB8_6659_FD93);
    x ^= x >> 31;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 29;
    format!("{x:016x}")
}

pub fn status_code(msg: &str) -> Option<u16> {
    let rest = msg.strip_prefix("SIP/2.0 ")?;
    rest.get(..3)?.parse().ok()
}

/// Values of every header line named `name` (long form only, as the
/// servers send them), in order.
pub fn header_values<'a>(msg: &'a str, name: &str) -> Vec<&'a str> {
    let head = msg.split("\r\n\r\n").next().unwrap_or("");
    head.split("\r\n")
        .skip(1)
        .filter_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then_some(v.trim())
        })
        .collect()
}

pub fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    header_values(msg, name).into_iter().next()
}

pub fn body(msg: &str) -> &str {
    msg.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("")
}

/// Splits `<a>;p, <b>` lists at the commas outside angle brackets and quotes.
pub fn split_list(v: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut depth, mut quoted, mut cur) = (0i32, false, String::new());
    for c in v.chars() {
        match c {
            '"' => quoted = !quoted,
            '<' if !quoted => depth += 1,
            '>' if !quoted => depth -= 1,
            ',' if depth == 0 && !quoted => {
                out.push(cur.trim().to_string());
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

/// The URI of a name-addr (`"x" <sip:a@b>;tag=1` -> `sip:a@b`).
pub fn uri_of(name_addr: &str) -> &str {
    match (name_addr.find('<'), name_addr.find('>')) {
        (Some(a), Some(b)) if b > a => &name_addr[a + 1..b],
        _ => name_addr.split(';').next().unwrap_or(name_addr).trim(),
    }
}

/// `Digest a=b, c="d, e"` -> {a: b, c: "d, e"} (keys lowercased).
fn digest_params(v: &str) -> Option<BTreeMap<String, String>> {
    let rest = v.trim_start();
    if rest.len() < 6 || !rest[..6].eq_ignore_ascii_case("digest") {
        return None;
    }
    let mut out = BTreeMap::new();
    let mut s = rest[6..].trim_start();
    while !s.is_empty() {
        let eq = s.find('=')?;
        let key = s[..eq]
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        s = s[eq + 1..].trim_start();
        let val;
        if let Some(q) = s.strip_prefix('"') {
            let end = q.find('"')?;
            val = q[..end].to_string();
            s = &q[end + 1..];
        } else {
            let end = s.find(',').unwrap_or(s.len());
            val = s[..end].trim().to_string();
            s = &s[end..];
        }
        out.insert(key, val);
        s = s.trim_start().trim_start_matches(',').trim_start();
    }
    Some(out)
}

/// Credentials answering the MD5 challenge in `resp` (401 or 407).
pub fn authorization(
    resp: &str,
    method: &str,
    uri: &str,
    user: &str,
    password: &str,
    cnonce: &str,
) -> Result<String, String> {
    let challenge_header = if status_code(resp) == Some(407) {
        "Proxy-Authenticate"
    } else {
        "WWW-Authenticate"
    };
    let ch = header_values(resp, challenge_header)
        .into_iter()
        .filter_map(digest_params)
        .find(|p| {
            p.get("algorithm")
                .map(|a| a.eq_ignore_ascii_case("MD5"))
                .unwrap_or(true)
        })
        .ok_or("challenge without an MD5 digest")?;
    let realm = ch.get("realm").ok_or("challenge without realm")?;
    let nonce = ch.get("nonce").ok_or("challenge without nonce")?;
    let ha1 = md5_hex(&format!("{user}:{realm}:{password}"));
    let ha2 = md5_hex(&format!("{method}:{uri}"));
    let qop_auth = ch
        .get("qop")
        .map(|q| q.split(',').any(|t| t.trim().eq_ignore_ascii_case("auth")))
        .unwrap_or(false);
    let mut v = format!(
        "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", algorithm=MD5"
    );
    if qop_auth {
        let nc = "00000001";
        let response = md5_hex(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"));
        v.push_str(&format!(
            ", response=\"{response}\", qop=auth, nc={nc}, cnonce=\"{cnonce}\""
        ));
    } else {
        let response = md5_hex(&format!("{ha1}:{nonce}:{ha2}"));
        v.push_str(&format!(", response=\"{response}\""));
    }
    if let Some(o) = ch.get("opaque") {
        v.push_str(&format!(", opaque=\"{o}\""));
    }
    Ok(v)
}

pub async fn send(ws: &mut Ws, m: String) -> Result<(), String> {
    ws.send(Message::text(m))
        .await
        .map_err(|e| format!("send: {e}"))
}

/// The next SIP message on the connection.
pub async fn next_message(ws: &mut Ws) -> Result<String, String> {
    loop {
        let msg = ws
            .next()
            .await
            .ok_or("connection closed")?
            .map_err(|e| format!("websocket: {e}"))?;
        return Ok(match msg {
            Message::Text(t) => t.as_str().to_owned(),
            Message::Binary(b) => String::from_utf8_lossy(&b).into_owned(),
            Message::Close(c) => return Err(format!("closed by server: {c:?}")),
            _ => continue,
        });
    }
}

/// A 200 OK to a request received on the connection (in-dialog BYE,
/// OPTIONS), so the server's transaction ends cleanly.
pub fn ok_response(req: &str) -> String {
    let mut m = String::from("SIP/2.0 200 OK\r\n");
    for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
        for v in header_values(req, name) {
            m.push_str(&format!("{name}: {v}\r\n"));
        }
    }
    m.push_str("Content-Length: 0\r\n\r\n");
    m
}

/// The final response to the request whose CSeq is `cseq` (`N METHOD`);
/// provisional responses skipped, requests from the server answered with
/// 200 (and reported in `bye_seen` when they are BYEs of one of our
/// calls).
pub async fn final_response(ws: &mut Ws, cseq: &str, timeout: Duration) -> Result<String, String> {
    let fut = async {
        loop {
            let m = next_message(ws).await?;
            match status_code(&m) {
                Some(c) if c >= 200 => {
                    if header(&m, "CSeq").map(str::trim) == Some(cseq) {
                        return Ok(m);
                    }
                }
                Some(_) => {}
                None => {
                    // A request from the server; answer what has no
                    // response of its own to wait for.
                    if !m.starts_with("ACK ") {
                        send(ws, ok_response(&m)).await?;
                    }
                }
            }
        }
    };
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| format!("no final response to {cseq}"))?
}

/// Identity and dialog-independent parts of one registered browser.
pub struct Ua {
    pub user: String,
    pub password: String,
    pub domain: String,
    /// `xxxx.invalid`, what JsSIP puts in Via and Contact.
    pub host: String,
    pub seed: u64,
    pub salt: u64,
}

impl Ua {
    pub fn next_token(&mut self) -> String {
        self.salt += 1;
        token(self.seed, self.salt)
    }

    fn contact(&self) -> String {
        format!("<sip:{}@{};transport=ws;ob>", self.user, self.host)
    }
}

/// REGISTER -> 401 -> REGISTER with credentials -> 200.
pub async fn register(ws: &mut Ws, ua: &mut Ua, timeout: Duration) -> Result<(), String> {
    let call_id = ua.next_token();
    let tag = ua.next_token();
    let inst = ua.next_token();
    let instance = format!(
        "{}-{}-4{}-8{}-{}",
        &inst[..8],
        &inst[8..12],
        &inst[12..15],
        &call_id[..3],
        &tag[..12]
    );
    let mut auth: Option<String> = None;
    for cseq in 1..=2u32 {
        let branch = ua.next_token();
        let mut m = format!(
            "REGISTER sip:{d} SIP/2.0\r\nVia: SIP/2.0/WSS {h};branch=z9hG4bK{branch}\r\n\
             Max-Forwards: 70\r\nTo: <sip:{u}@{d}>\r\nFrom: <sip:{u}@{d}>;tag={tag}\r\n\
             Call-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\n",
            d = ua.domain,
            h = ua.host,
            u = ua.user
        );
        if let Some(a) = &auth {
            m.push_str(&format!("Authorization: {a}\r\n"));
        }
        m.push_str(&format!(
            "Contact: <sip:{}@{};transport=ws>;+sip.ice;reg-id=1;+sip.instance=\"<urn:uuid:{instance}>\";expires=3600\r\n\
             Expires: 3600\r\nAllow: INVITE,ACK,CANCEL,BYE,UPDATE,MESSAGE,OPTIONS,REFER,INFO,NOTIFY\r\n\
             Supported: path,gruu,outbound\r\nUser-Agent: relay-load\r\nContent-Length: 0\r\n\r\n",
            ua.user, ua.host
        ));
        send(ws, m).await?;
        let resp = final_response(ws, &format!("{cseq} REGISTER"), timeout).await?;
        match status_code(&resp) {
            Some(200) => return Ok(()),
            Some(401) if auth.is_none() => {
                let cnonce = ua.next_token();
                auth = Some(authorization(
                    &resp,
                    "REGISTER",
                    &format!("sip:{}", ua.domain),
                    &ua.user,
                    &ua.password,
                    &cnonce[..16],
                )?);
            }
            Some(c) => return Err(format!("REGISTER answered {c}")),
            None => return Err("REGISTER: no status".into()),
        }
    }
    Err("REGISTER: challenged twice".into())
}

/// An established call's dialog.
pub struct Dialog {
    pub call_id: String,
    pub from_tag: String,
    /// The To header of the 200, tag included.
    pub to: String,
    pub target: String,
    pub route: Vec<String>,
    pub cseq: u32,
}

impl Dialog {
    fn request(&self, ua: &mut Ua, method: &str, cseq: u32) -> String {
        let branch = ua.next_token();
        let mut m = format!(
            "{method} {target} SIP/2.0\r\nVia: SIP/2.0/WSS {h};branch=z9hG4bK{branch}\r\nMax-Forwards: 70\r\n",
            target = self.target,
            h = ua.host
        );
        for r in &self.route {
            m.push_str(&format!("Route: {r}\r\n"));
        }
        m.push_str(&format!(
            "To: {to}\r\nFrom: <sip:{u}@{d}>;tag={tag}\r\nCall-ID: {cid}\r\nCSeq: {cseq} {method}\r\n\
             User-Agent: relay-load\r\nContent-Length: 0\r\n\r\n",
            to = self.to,
            u = ua.user,
            d = ua.domain,
            tag = self.from_tag,
            cid = self.call_id
        ));
        m
    }

    /// BYE -> 200 (or whatever comes, within `timeout`).
    pub async fn bye(&mut self, ws: &mut Ws, ua: &mut Ua, timeout: Duration) -> Result<(), String> {
        self.cseq += 1;
        let m = self.request(ua, "BYE", self.cseq);
        send(ws, m).await?;
        let r = final_response(ws, &format!("{} BYE", self.cseq), timeout).await?;
        match status_code(&r) {
            Some(200) => Ok(()),
            c => Err(format!("BYE answered {c:?}")),
        }
    }
}

/// INVITE with `sdp` to `callee`; 407 answered once. Returns the dialog and
/// the 200's SDP after sending the ACK.
pub async fn invite(
    ws: &mut Ws,
    ua: &mut Ua,
    callee: &str,
    sdp: &str,
    timeout: Duration,
) -> Result<(Dialog, String), String> {
    let callee_uri = format!("sip:{callee}@{}", ua.domain);
    let call_id = ua.next_token();
    let from_tag = ua.next_token();
    let mut auth: Option<String> = None;
    for cseq in 1..=2u32 {
        let branch = ua.next_token();
        let head = |auth: &Option<String>| {
            let mut m = format!(
                "INVITE {callee_uri} SIP/2.0\r\nVia: SIP/2.0/WSS {h};branch=z9hG4bK{branch}\r\n\
                 Max-Forwards: 70\r\nTo: <{callee_uri}>\r\nFrom: <sip:{u}@{d}>;tag={from_tag}\r\n\
                 Call-ID: {call_id}\r\nCSeq: {cseq} INVITE\r\nContact: {contact}\r\n",
                h = ua.host,
                u = ua.user,
                d = ua.domain,
                contact = ua.contact()
            );
            if let Some(a) = auth {
                m.push_str(&format!("Proxy-Authorization: {a}\r\n"));
            }
            m.push_str(&format!(
                "Allow: INVITE,ACK,CANCEL,BYE,UPDATE,MESSAGE,OPTIONS,REFER,INFO,NOTIFY\r\n\
                 Supported: ice,replaces,outbound\r\nUser-Agent: relay-load\r\n\
                 Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
                sdp.len()
            ));
            m
        };
        send(ws, head(&auth)).await?;
        let resp = final_response(ws, &format!("{cseq} INVITE"), timeout).await?;
        let code = status_code(&resp).unwrap_or(0);
        if (200..300).contains(&code) {
            let to = header(&resp, "To").ok_or("200 without To")?.to_string();
            let target = header(&resp, "Contact")
                .map(|c| uri_of(c).to_string())
                .ok_or("200 without Contact")?;
            let mut route: Vec<String> = header_values(&resp, "Record-Route")
                .into_iter()
                .flat_map(split_list)
                .collect();
            route.reverse();
            let dialog = Dialog {
                call_id,
                from_tag,
                to,
                target,
                route,
                cseq,
            };
            let ack = dialog.request(ua, "ACK", cseq);
            send(ws, ack).await?;
            return Ok((dialog, body(&resp).to_string()));
        }
        // ACK of the negative final response: same branch, its To.
        let to = header(&resp, "To").unwrap_or("").to_string();
        let ack = format!(
            "ACK {callee_uri} SIP/2.0\r\nVia: SIP/2.0/WSS {h};branch=z9hG4bK{branch}\r\nMax-Forwards: 70\r\n\
             To: {to}\r\nFrom: <sip:{u}@{d}>;tag={from_tag}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} ACK\r\n\
             Content-Length: 0\r\n\r\n",
            h = ua.host,
            u = ua.user,
            d = ua.domain
        );
        send(ws, ack).await?;
        if code == 407 && auth.is_none() {
            let cnonce = ua.next_token();
            auth = Some(authorization(
                &resp,
                "INVITE",
                &callee_uri,
                &ua.user,
                &ua.password,
                &cnonce[..16],
            )?);
            continue;
        }
        let reason = resp.lines().next().unwrap_or("").trim().to_string();
        return Err(format!("INVITE answered {reason}"));
    }
    Err("INVITE: challenged twice".into())
}

/// What the generator needs from the relay's SDP answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub addr: SocketAddr,
    pub ufrag: String,
    pub pwd: String,
    pub fingerprint: String,
    pub setup: String,
}

/// Reads the first audio section of an SDP answer: its host candidate
/// (component 1, UDP; else c=/m=), ICE credentials, fingerprint, setup.
pub fn parse_answer(sdp: &str) -> Result<Answer, String> {
    let mut top_c: Option<IpAddr> = None;
    let mut media_c: Option<IpAddr> = None;
    let mut port: Option<u16> = None;
    let mut in_audio = false;
    let mut seen_media = false;
    let (mut ufrag, mut pwd, mut fp, mut setup) = (None, None, None, None);
    let mut cand: Option<SocketAddr> = None;
    for line in sdp.lines() {
        let line = line.trim_end();
        if let Some(m) = line.strip_prefix("m=") {
            if seen_media && in_audio {
                break; // only the first audio section
            }
            seen_media = true;
            let f: Vec<&str> = m.split_whitespace().collect();
            in_audio = f.first() == Some(&"audio");
            if in_audio {
                port = f.get(1).and_then(|p| p.parse().ok());
            }
            continue;
        }
        if seen_media && !in_audio {
            continue;
        }
        if let Some(c) = line.strip_prefix("c=") {
            let ip = c.split_whitespace().nth(2).and_then(|a| a.parse().ok());
            if seen_media {
                media_c = ip;
            } else {
                top_c = ip;
            }
        } else if let Some(v) = line.strip_prefix("a=ice-ufrag:") {
            ufrag = Some(v.trim().to_string());
        } else if let Some(v) = line.strip_prefix("a=ice-pwd:") {
            pwd = Some(v.trim().to_string());
        } else if let Some(v) = line.strip_prefix("a=fingerprint:") {
            let mut it = v.split_whitespace();
            if it.next().map(|h| h.eq_ignore_ascii_case("sha-256")) == Some(true) {
                fp = it.next().map(str::to_string);
            }
        } else if let Some(v) = line.strip_prefix("a=setup:") {
            setup = Some(v.trim().to_string());
        } else if let Some(v) = line.strip_prefix("a=candidate:") {
            // foundation component transport priority ip port typ host
            let f: Vec<&str> = v.split_whitespace().collect();
            if cand.is_none()
                && f.len() >= 8
                && f[1] == "1"
                && f[2].eq_ignore_ascii_case("udp")
                && f[7] == "host"
            {
                if let (Ok(ip), Ok(p)) = (f[4].parse::<IpAddr>(), f[5].parse::<u16>()) {
                    if ip.is_ipv4() {
                        cand = Some(SocketAddr::new(ip, p));
                    }
                }
            }
        }
    }
    let addr = match cand {
        Some(a) => a,
        None => SocketAddr::new(
            media_c.or(top_c).ok_or("answer without an address")?,
            port.filter(|p| *p != 0)
                .ok_or("answer without an audio port")?,
        ),
    };
    Ok(Answer {
        addr,
        ufrag: ufrag.ok_or("answer without a=ice-ufrag")?,
        pwd: pwd.ok_or("answer without a=ice-pwd")?,
        fingerprint: fp.ok_or("answer without a=fingerprint:sha-256")?,
        setup: setup.unwrap_or_else(|| "active".into()),
    })
}

/// The browser's offer: one audio section, PCMU only, on `media` (the
/// generator's UDP socket), with ICE credentials, DTLS fingerprint,
/// actpass, rtcp-mux and (unless `bundle` is false) a BUNDLE group.
pub fn offer(
    media: SocketAddr,
    ufrag: &str,
    pwd: &str,
    fingerprint: &str,
    ssrc: u32,
    origin_id: u64,
    bundle: bool,
) -> String {
    let ip = media.ip();
    let port = media.port();
    let mut s = format!("v=0\r\no=- {origin_id} 2 IN IP4 {ip}\r\ns=-\r\nt=0 0\r\n");
    if bundle {
        s.push_str("a=group:BUNDLE 0\r\n");
    }
    s.push_str(&format!(
        "a=msid-semantic: WMS relayload\r\n\
         m=audio {port} UDP/TLS/RTP/SAVPF 0\r\n\
         c=IN IP4 {ip}\r\n\
         a=rtcp:{port} IN IP4 {ip}\r\n\
         a=candidate:1 1 udp 2130706431 {ip} {port} typ host generation 0\r\n\
         a=end-of-candidates\r\n\
         a=ice-ufrag:{ufrag}\r\n\
         a=ice-pwd:{pwd}\r\n\
         a=fingerprint:sha-256 {fingerprint}\r\n\
         a=setup:actpass\r\n\
         a=mid:0\r\n\
         a=sendrecv\r\n\
         a=msid:relayload audio{ssrc}\r\n\
         a=rtcp-mux\r\n\
         a=rtpmap:0 PCMU/8000\r\n\
         a=ptime:20\r\n\
         a=ssrc:{ssrc} cname:relayload{ssrc}\r\n"
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_from_candidate() {
        let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\na=ice-lite\r\n\
                   m=audio 40000 UDP/TLS/RTP/SAVPF 0\r\na=ice-ufrag:abcd\r\na=ice-pwd:efghefghefghefghefghef\r\n\
                   a=fingerprint:sha-256 AB:CD\r\na=setup:passive\r\n\
                   a=candidate:x 1 UDP 2130706431 127.0.0.1 40002 typ host\r\n";
        let a = parse_answer(sdp).unwrap();
        assert_eq!(a.addr, "127.0.0.1:40002".parse::<SocketAddr>().unwrap());
        assert_eq!(a.setup, "passive");
        assert_eq!(a.ufrag, "abcd");
    }

    #[test]
    fn lists_and_uris() {
        assert_eq!(
            split_list("<sip:a;lr>, <sip:b;lr;r2=on>"),
            vec!["<sip:a;lr>", "<sip:b;lr;r2=on>"]
        );
        assert_eq!(
            uri_of("\"x, y\" <sip:1000@127.0.0.1:5090>;q=1"),
            "sip:1000@127.0.0.1:5090"
        );
    }

    #[test]
    fn proxy_challenge() {
        let resp = "SIP/2.0 407 Proxy Authentication Required\r\nCSeq: 1 INVITE\r\n\
            Proxy-Authenticate: Digest realm=\"r\", nonce=\"n\", qop=\"auth\", algorithm=MD5\r\n\r\n";
        let a = authorization(resp, "INVITE", "sip:1000@r", "u", "p", "c").unwrap();
        let ha1 = md5_hex("u:r:p");
        let ha2 = md5_hex("INVITE:sip:1000@r");
        let want = md5_hex(&format!("{ha1}:n:00000001:c:auth:{ha2}"));
        assert!(a.contains(&want), "{a}");
    }
}
