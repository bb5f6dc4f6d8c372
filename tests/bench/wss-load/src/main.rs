//! wss-load: opens N SIP-over-WebSocket (WSS, subprotocol `sip`)
//! connections, REGISTERs each as a distinct user with MD5 digest
//! authentication, keeps them all idle and connected, and reports
//!
//! - registrations/s over the ramp (TCP connect + TLS + WebSocket upgrade +
//!   REGISTER -> 401 -> REGISTER with credentials -> 200, `--concurrency`
//!   of them in flight),
//! - the server's memory before and after (VmRSS and Pss, summed over the
//!   given PIDs and their descendants, so a multi-process server such as
//!   Kamailio is counted whole), divided by N.
//!
//! User i (0-based) is `{user_prefix}{first + i}` with password
//! `{password_prefix}{user}`. Connections are spread round-robin over
//! `--sources` local addresses so neither the ephemeral ports nor a
//! per-source-IP connection limit of the server are hit.
//!
//! The server certificate is not verified (self-signed test certificate).
//! The last line printed is `RESULT key=value ...` for scripts.

use futures_util::{SinkExt, StreamExt};
use md5::{Digest, Md5};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpSocket;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

type Ws = WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

const USAGE: &str = "usage: wss-load --server IP:PORT --count N [--domain D] [--user-prefix u] \
[--first 10000] [--password-prefix pw-] [--concurrency 64] [--sources 127.0.0.2-127.0.0.41 (default 127.0.0.1)] \
[--pid PID]... [--idle SECS] [--expires SECS] [--timeout SECS] [--label TEXT]";

#[derive(Clone)]
struct Opts {
    server: SocketAddr,
    domain: String,
    user_prefix: String,
    first: u64,
    count: usize,
    password_prefix: String,
    concurrency: usize,
    sources: Vec<IpAddr>,
    pids: Vec<u32>,
    idle: Duration,
    expires: u32,
    timeout: Duration,
    label: String,
}

fn die(msg: &str) -> ! {
    eprintln!("wss-load: {msg}\n{USAGE}");
    std::process::exit(2);
}

/// `a.b.c.d-a.b.c.e` (last octet range) or a comma-separated list.
fn parse_sources(s: &str) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        if let Some((a, b)) = part.split_once('-') {
            let a: Ipv4Addr = a.parse().unwrap_or_else(|_| die("bad --sources"));
            let b: Ipv4Addr = b.parse().unwrap_or_else(|_| die("bad --sources"));
            let (a, b) = (u32::from(a), u32::from(b));
            if b < a {
                die("bad --sources range");
            }
            out.extend((a..=b).map(|x| IpAddr::V4(Ipv4Addr::from(x))));
        } else {
            out.push(part.parse().unwrap_or_else(|_| die("bad --sources")));
        }
    }
    out
}

fn parse_args() -> Opts {
    let mut o = Opts {
        server: "127.0.0.1:7443".parse().unwrap(),
        domain: "127.0.0.1".into(),
        user_prefix: "u".into(),
        first: 10000,
        count: 0,
        password_prefix: "pw-".into(),
        concurrency: 64,
        sources: vec!["127.0.0.1".parse().unwrap()],
        pids: Vec::new(),
        idle: Duration::from_secs(3),
        expires: 3600,
        timeout: Duration::from_secs(30),
        label: String::new(),
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let key = args[i].as_str();
        if key == "-h" || key == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let val = args
            .get(i + 1)
            .cloned()
            .unwrap_or_else(|| die(&format!("{key} needs a value")));
        let num = |v: &str| -> u64 { v.parse().unwrap_or_else(|_| die(&format!("bad {key}"))) };
        match key {
            "--server" => o.server = val.parse().unwrap_or_else(|_| die("bad --server")),
            "--domain" => o.domain = val,
            "--user-prefix" => o.user_prefix = val,
            "--first" => o.first = num(&val),
            "--count" => o.count = num(&val) as usize,
            "--password-prefix" => o.password_prefix = val,
            "--concurrency" => o.concurrency = num(&val).max(1) as usize,
            "--sources" => o.sources = parse_sources(&val),
            "--pid" => o
                .pids
                .extend(val.split(',').filter(|p| !p.is_empty()).map(|p| num(p) as u32)),
            "--idle" => o.idle = Duration::from_secs_f64(val.parse().unwrap_or(3.0)),
            "--expires" => o.expires = num(&val) as u32,
            "--timeout" => o.timeout = Duration::from_secs(num(&val)),
            "--label" => o.label = val,
            _ => die(&format!("unknown option {key}")),
        }
        i += 2;
    }
    if o.count == 0 {
        die("--count is required");
    }
    if o.sources.is_empty() {
        die("--sources is empty");
    }
    o
}

/// Raises the open-files soft limit to the hard limit.
fn raise_nofile() -> u64 {
    unsafe {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
            return r.rlim_cur;
        }
    }
    0
}

// ---------------------------------------------------------------- memory

/// PIDs given plus all their descendants (Kamailio forks its workers).
fn process_tree(roots: &[u32]) -> Vec<u32> {
    let mut parent: Vec<(u32, u32)> = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
            if let Some(rest) = stat.rsplit_once(')').map(|x| x.1) {
                if let Some(ppid) = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok()) {
                    parent.push((pid, ppid));
                }
            }
        }
    }
    let mut out: Vec<u32> = roots.to_vec();
    let mut i = 0;
    while i < out.len() {
        let p = out[i];
        for &(c, pp) in &parent {
            if pp == p && !out.contains(&c) {
                out.push(c);
            }
        }
        i += 1;
    }
    out
}

fn kb_field(text: &str, name: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l[name.len()..].split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[derive(Clone, Copy, Default)]
struct Mem {
    procs: usize,
    rss_kb: u64,
    pss_kb: u64,
}

fn read_mem(roots: &[u32]) -> Mem {
    let mut m = Mem::default();
    for pid in process_tree(roots) {
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            continue;
        };
        m.procs += 1;
        m.rss_kb += kb_field(&status, "VmRSS:");
        if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) {
            m.pss_kb += kb_field(&s, "Pss:");
        }
    }
    m
}

// ---------------------------------------------------------------- TLS

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

fn tls_connector() -> TlsConnector {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyCert))
        .with_no_client_auth();
    TlsConnector::from(Arc::new(cfg))
}

// ---------------------------------------------------------------- SIP

fn md5_hex(s: &str) -> String {
    Md5::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Cheap per-connection randomness for tags, branches and Call-IDs.
fn token(seed: u64, salt: u64) -> String {
    let mut x = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(salt.wrapping_mul(0xBF58_476D_1CE4_E5B9))
        ^ std::process::id() as u64;
    x ^= x >> 31;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 29;
    format!("{x:016x}")
}

struct Reg<'a> {
    user: &'a str,
    domain: &'a str,
    host: &'a str,
    call_id: &'a str,
    tag: &'a str,
    instance: &'a str,
    expires: u32,
}

fn register(r: &Reg, cseq: u32, branch: &str, auth: Option<&str>) -> String {
    let mut m = String::with_capacity(768);
    m.push_str(&format!("REGISTER sip:{} SIP/2.0\r\n", r.domain));
    m.push_str(&format!(
        "Via: SIP/2.0/WSS {};branch=z9hG4bK{branch}\r\n",
        r.host
    ));
    m.push_str("Max-Forwards: 70\r\n");
    m.push_str(&format!(
        "To: <sip:{}@{}>\r\nFrom: <sip:{}@{}>;tag={}\r\n",
        r.user, r.domain, r.user, r.domain, r.tag
    ));
    m.push_str(&format!("Call-ID: {}\r\nCSeq: {cseq} REGISTER\r\n", r.call_id));
    if let Some(a) = auth {
        m.push_str(&format!("Authorization: {a}\r\n"));
    }
    // What JsSIP sends: RFC 5626 instance + reg-id, transport=ws.
    m.push_str(&format!(
        "Contact: <sip:{}@{};transport=ws>;+sip.ice;reg-id=1;+sip.instance=\"<urn:uuid:{}>\";expires={}\r\n",
        r.user, r.host, r.instance, r.expires
    ));
    m.push_str(&format!("Expires: {}\r\n", r.expires));
    m.push_str("Allow: INVITE,ACK,CANCEL,BYE,UPDATE,MESSAGE,OPTIONS,REFER,INFO,NOTIFY\r\n");
    m.push_str("Supported: path,gruu,outbound\r\nUser-Agent: wss-load\r\nContent-Length: 0\r\n\r\n");
    m
}

fn status_code(msg: &str) -> Option<u16> {
    let rest = msg.strip_prefix("SIP/2.0 ")?;
    rest.get(..3)?.parse().ok()
}

fn header_values<'a>(msg: &'a str, name: &str) -> Vec<&'a str> {
    let head = msg.split("\r\n\r\n").next().unwrap_or("");
    head.split("\r\n")
        .skip(1)
        .filter_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then_some(v.trim())
        })
        .collect()
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
        let key = s[..eq].trim().trim_start_matches(',').trim().to_ascii_lowercase();
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

/// Authorization value answering the MD5 challenge of a 401.
fn authorization(resp: &str, user: &str, password: &str, uri: &str, cnonce: &str) -> Result<String, String> {
    let ch = header_values(resp, "WWW-Authenticate")
        .into_iter()
        .filter_map(digest_params)
        .find(|p| {
            p.get("algorithm")
                .map(|a| a.eq_ignore_ascii_case("MD5"))
                .unwrap_or(true)
        })
        .ok_or("401 without an MD5 digest challenge")?;
    let realm = ch.get("realm").ok_or("challenge without realm")?;
    let nonce = ch.get("nonce").ok_or("challenge without nonce")?;
    let ha1 = md5_hex(&format!("{user}:{realm}:{password}"));
    let ha2 = md5_hex(&format!("REGISTER:{uri}"));
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
        v.push_str(&format!(", response=\"{response}\", qop=auth, nc={nc}, cnonce=\"{cnonce}\""));
    } else {
        let response = md5_hex(&format!("{ha1}:{nonce}:{ha2}"));
        v.push_str(&format!(", response=\"{response}\""));
    }
    if let Some(o) = ch.get("opaque") {
        v.push_str(&format!(", opaque=\"{o}\""));
    }
    Ok(v)
}

async fn send(ws: &mut Ws, m: String) -> Result<(), String> {
    ws.send(Message::text(m))
        .await
        .map_err(|e| format!("send: {e}"))
}

/// Next final response on the connection (1xx skipped).
async fn final_response(ws: &mut Ws) -> Result<String, String> {
    loop {
        let msg = ws
            .next()
            .await
            .ok_or("connection closed before a response")?
            .map_err(|e| format!("websocket: {e}"))?;
        let text = match msg {
            Message::Text(t) => t.as_str().to_owned(),
            Message::Binary(b) => String::from_utf8_lossy(&b).into_owned(),
            Message::Close(c) => return Err(format!("closed by server: {c:?}")),
            _ => continue,
        };
        match status_code(&text) {
            Some(c) if c >= 200 => return Ok(text),
            Some(_) => continue,
            None => continue, // a request from the server: not expected here
        }
    }
}

async fn connect_and_register(o: &Opts, tls: &TlsConnector, i: usize) -> Result<Ws, String> {
    let src = o.sources[i % o.sources.len()];
    let sock = TcpSocket::new_v4().map_err(|e| format!("socket: {e}"))?;
    sock.bind(SocketAddr::new(src, 0))
        .map_err(|e| format!("bind {src}: {e}"))?;
    let tcp = sock
        .connect(o.server)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let name = ServerName::IpAddress(o.server.ip().into());
    let stream = tls
        .connect(name, tcp)
        .await
        .map_err(|e| format!("tls: {e}"))?;
    let mut req = format!("wss://{}/", o.server)
        .into_client_request()
        .map_err(|e| format!("request: {e}"))?;
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "sip".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::client_async(req, stream)
        .await
        .map_err(|e| format!("websocket handshake: {e}"))?;

    let user = format!("{}{}", o.user_prefix, o.first + i as u64);
    let password = format!("{}{}", o.password_prefix, user);
    let seed = i as u64;
    let host = format!("{}.invalid", &token(seed, 1)[..12]);
    let call_id = token(seed, 2);
    let tag = token(seed, 3);
    let inst = token(seed, 4);
    let instance = format!(
        "{}-{}-4{}-8{}-{}{}",
        &inst[..8],
        &inst[8..12],
        &inst[12..15],
        &call_id[..3],
        &tag[..8],
        &call_id[4..8]
    );
    let r = Reg {
        user: &user,
        domain: &o.domain,
        host: &host,
        call_id: &call_id,
        tag: &tag,
        instance: &instance,
        expires: o.expires,
    };
    send(&mut ws, register(&r, 1, &token(seed, 5), None)).await?;
    let resp = final_response(&mut ws).await?;
    let code = status_code(&resp).unwrap_or(0);
    let resp = if code == 401 {
        let uri = format!("sip:{}", o.domain);
        let auth = authorization(&resp, &user, &password, &uri, &token(seed, 6)[..16])?;
        send(&mut ws, register(&r, 2, &token(seed, 7), Some(&auth))).await?;
        final_response(&mut ws).await?
    } else {
        resp
    };
    match status_code(&resp) {
        Some(200) => Ok(ws),
        Some(c) => Err(format!("REGISTER answered {c}")),
        None => Err("no status".into()),
    }
}

/// Keeps a registered connection open and idle, answering pings, until told
/// to stop.
async fn hold(mut ws: Ws, mut stop: watch::Receiver<bool>, dropped: Arc<AtomicUsize>) {
    loop {
        tokio::select! {
            m = ws.next() => match m {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                    dropped.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Some(Ok(_)) => {}
            },
            _ = stop.changed() => {
                let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
                return;
            }
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

async fn run(o: Opts) {
    let nofile = raise_nofile();
    let tls = tls_connector();
    let before = read_mem(&o.pids);
    let sem = Arc::new(Semaphore::new(o.concurrency));
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Result<f64, String>>();
    let (stop_tx, stop_rx) = watch::channel(false);
    let dropped = Arc::new(AtomicUsize::new(0));
    let o = Arc::new(o);
    let tls = Arc::new(tls);
    let mut tasks = Vec::with_capacity(o.count);

    let start = Instant::now();
    let feeder = {
        let o = o.clone();
        let tls = tls.clone();
        let stop_rx = stop_rx.clone();
        let dropped = dropped.clone();
        async move {
            for i in 0..o.count {
                let permit = sem.clone().acquire_owned().await.expect("semaphore");
                let (o, tls, done_tx, stop_rx, dropped) = (
                    o.clone(),
                    tls.clone(),
                    done_tx.clone(),
                    stop_rx.clone(),
                    dropped.clone(),
                );
                tasks.push(tokio::spawn(async move {
                    let t0 = Instant::now();
                    let r = tokio::time::timeout(o.timeout, connect_and_register(&o, &tls, i)).await;
                    drop(permit);
                    match r {
                        Ok(Ok(ws)) => {
                            let _ = done_tx.send(Ok(t0.elapsed().as_secs_f64() * 1000.0));
                            hold(ws, stop_rx, dropped).await;
                        }
                        Ok(Err(e)) => {
                            let _ = done_tx.send(Err(e));
                        }
                        Err(_) => {
                            let _ = done_tx.send(Err("timed out".into()));
                        }
                    }
                }));
            }
            tasks
        }
    };
    let feeder = tokio::spawn(feeder);

    let mut ok = 0usize;
    let mut lat = Vec::with_capacity(o.count);
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    let mut last_ok = start;
    for _ in 0..o.count {
        match done_rx.recv().await {
            Some(Ok(ms)) => {
                ok += 1;
                lat.push(ms);
                last_ok = Instant::now();
            }
            Some(Err(e)) => *errors.entry(e).or_default() += 1,
            None => break,
        }
    }
    let ramp = last_ok.duration_since(start).as_secs_f64().max(1e-9);
    let failed = o.count - ok;
    tokio::time::sleep(o.idle).await;
    let after = read_mem(&o.pids);
    let still = ok - dropped.load(Ordering::Relaxed);

    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let per = |a: u64, b: u64| -> f64 {
        if still == 0 {
            0.0
        } else {
            (a as f64 - b as f64) * 1024.0 / still as f64
        }
    };
    let rate = ok as f64 / ramp;
    println!(
        "{}: {} of {} registered in {:.2} s ({:.0} registrations/s, {} in flight, {} source IPs, nofile {})",
        if o.label.is_empty() { "wss-load" } else { &o.label },
        ok,
        o.count,
        ramp,
        rate,
        o.concurrency,
        o.sources.len(),
        nofile
    );
    println!(
        "  connect-to-200 latency ms: p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}",
        percentile(&lat, 0.5),
        percentile(&lat, 0.9),
        percentile(&lat, 0.99),
        percentile(&lat, 1.0)
    );
    for (e, n) in &errors {
        println!("  failed x{n}: {e}");
    }
    println!(
        "  server memory over {} process(es): VmRSS {} -> {} kB, Pss {} -> {} kB; {} connections still open after {:.0} s idle",
        after.procs,
        before.rss_kb,
        after.rss_kb,
        before.pss_kb,
        after.pss_kb,
        still,
        o.idle.as_secs_f64()
    );
    println!(
        "  per idle registered connection: VmRSS {:.0} B, Pss {:.0} B",
        per(after.rss_kb, before.rss_kb),
        per(after.pss_kb, before.pss_kb)
    );
    println!(
        "RESULT label={} n={} ok={} failed={} still_open={} ramp_s={:.3} regs_per_s={:.1} p50_ms={:.2} p99_ms={:.2} procs={} rss_before_kb={} rss_after_kb={} pss_before_kb={} pss_after_kb={} rss_per_conn_b={:.0} pss_per_conn_b={:.0}",
        if o.label.is_empty() { "-" } else { &o.label },
        o.count,
        ok,
        failed,
        still,
        ramp,
        rate,
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        after.procs,
        before.rss_kb,
        after.rss_kb,
        before.pss_kb,
        after.pss_kb,
        per(after.rss_kb, before.rss_kb),
        per(after.pss_kb, before.pss_kb)
    );

    let _ = stop_tx.send(true);
    if let Ok(tasks) = feeder.await {
        let _ = tokio::time::timeout(Duration::from_secs(10), async {
            for t in tasks {
                let _ = t.await;
            }
        })
        .await;
    }
}

fn main() {
    let o = parse_args();
    // One thread: the tool runs pinned to one core next to the server's.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(run(o));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_md5_challenge_and_computes_rfc2617_response() {
        let resp = "SIP/2.0 401 Unauthorized\r\n\
            WWW-Authenticate: Digest realm=\"r\", nonce=\"n1\", algorithm=SHA-256, qop=\"auth\"\r\n\
            WWW-Authenticate: Digest realm=\"testrealm@host.com\", nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", algorithm=MD5, qop=\"auth,auth-int\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"\r\n\
            Content-Length: 0\r\n\r\n";
        let a = authorization(resp, "Mufasa", "Circle Of Life", "sip:x", "0a4f113b").unwrap();
        assert!(a.contains("realm=\"testrealm@host.com\""), "{a}");
        assert!(a.contains("algorithm=MD5"));
        assert!(a.contains("qop=auth, nc=00000001, cnonce=\"0a4f113b\""));
        assert!(a.contains("opaque=\"5ccc069c403ebaf9f0171e9517f40e41\""));
    }

    #[test]
    fn md5_response_matches_known_value() {
        // RFC 2617 §3.5: GET /dir/index.html -> 6629fae49393a05397450978507c4ef1
        let ha1 = md5_hex("Mufasa:testrealm@host.com:Circle Of Life");
        let ha2 = md5_hex("GET:/dir/index.html");
        let r = md5_hex(&format!(
            "{ha1}:dcd98b7102dd2f0e8b11d0f600bfb0c093:00000001:0a4f113b:auth:{ha2}"
        ));
        assert_eq!(r, "6629fae49393a05397450978507c4ef1");
    }

    #[test]
    fn sources_range() {
        let s = parse_sources("127.0.0.2-127.0.0.4");
        assert_eq!(s.len(), 3);
    }
}
