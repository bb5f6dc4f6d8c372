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

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sip::digest::{self, Algorithm, Secret};
use std::fs::OpenOptions;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::{sleep, timeout, timeout_at, Instant};

const DOMAIN: &str = "example.com";
/// How long a response that must come may take (the machine is shared).
const ANSWER_WAIT: Duration = Duration::from_secs(3);
/// How soon a user change made beside the running server must apply.
const RELOAD_WAIT: Duration = Duration::from_secs(3);

// ---------------------------------------------------------------------------
// A minimal SIP reader, independent of the implementation under test
// ---------------------------------------------------------------------------

/// Start line and unfolded headers (names lower-cased, compact forms
/// expanded) of a message.
#[derive(Debug, Clone)]
struct Head {
    start: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn parse(raw: &[u8]) -> Head {
        let end = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or(raw.len());
        let text = String::from_utf8_lossy(&raw[..end]);
        let mut lines = text.split("\r\n");
        let start = lines.next().unwrap_or_default().to_owned();
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in lines {
            if line.starts_with([' ', '\t']) {
                if let Some(last) = headers.last_mut() {
                    last.1.push(' ');
                    last.1.push_str(line.trim());
                }
                continue;
            }
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let name = match name.trim().to_ascii_lowercase().as_str() {
                "i" => "call-id".to_owned(),
                "v" => "via".to_owned(),
                "f" => "from".to_owned(),
                "t" => "to".to_owned(),
                "m" => "contact".to_owned(),
                "l" => "content-length".to_owned(),
                other => other.to_owned(),
            };
            headers.push((name, value.trim().to_owned()));
        }
        Head { start, headers }
    }

    fn all<'a, 'n>(&'a self, name: &'n str) -> impl Iterator<Item = &'a str> + use<'a, 'n> {
        self.headers
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.all(name).next()
    }

    fn method(&self) -> &str {
        self.start.split_whitespace().next().unwrap_or("")
    }

    fn request_uri(&self) -> &str {
        self.start.split_whitespace().nth(1).unwrap_or("")
    }
}

/// A response as received.
#[derive(Debug, Clone)]
struct Response {
    status: u16,
    reason: String,
    head: Head,
}

impl Response {
    fn parse(raw: &[u8]) -> Option<Response> {
        let head = Head::parse(raw);
        let mut it = head.start.splitn(3, ' ');
        if it.next()? != "SIP/2.0" {
            return None;
        }
        let status = it.next()?.parse().ok()?;
        let reason = it.next().unwrap_or("").to_owned();
        Some(Response {
            status,
            reason,
            head,
        })
    }

    fn is_for(&self, call_id: &str, cseq: u32, method: &str) -> bool {
        self.head.get("call-id") == Some(call_id)
            && self
                .head
                .get("cseq")
                .map(|c| c.split_whitespace().collect::<Vec<_>>())
                == Some(vec![&cseq.to_string(), method])
    }
}

impl std::fmt::Display for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.reason)
    }
}

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

/// Distinct enough for tags, branches and Call-IDs within a run.
fn rand_tag() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    (t << 16) ^ N.fetch_add(1, Ordering::Relaxed)
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
        let until = Instant::now() + ANSWER_WAIT;
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
// The server process
// ---------------------------------------------------------------------------

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("free UDP port")
        .port()
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("free TCP port")
        .port()
}

/// A configuration and data dir that server processes are started on, one
/// after the other.
struct Site {
    dir: tempfile::TempDir,
    udp: SocketAddr,
    admin: SocketAddr,
    /// `[[users]]` tables of the configuration.
    users: String,
}

impl Site {
    fn new(users: &[(&str, &str)]) -> Site {
        let users = users
            .iter()
            .map(|(n, p)| format!("[[users]]\nname = \"{n}\"\npassword = \"{p}\"\n"))
            .collect();
        let mut site = Site {
            dir: tempfile::tempdir().expect("temp dir"),
            udp: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin: SocketAddr::from(([127, 0, 0, 1], 0)),
            users,
        };
        site.pick_ports();
        site
    }

    fn pick_ports(&mut self) {
        self.udp = SocketAddr::from(([127, 0, 0, 1], free_udp_port()));
        self.admin = SocketAddr::from(([127, 0, 0, 1], free_tcp_port()));
        let config = format!(
            "data_dir = \"{}\"\n\
             [sip]\n\
             domain = \"{DOMAIN}\"\n\
             udp = [\"{}\"]\n\
             tcp = []\n\
             tls = []\n\
             wss = []\n\
             [admin]\n\
             listen = \"{}\"\n\
             {}",
            self.data_dir().display(),
            self.udp,
            self.admin,
            self.users
        );
        std::fs::write(self.config_path(), config).expect("write config");
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("callgate.toml")
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn token(&self) -> String {
        std::fs::read_to_string(self.data_dir().join("api-token"))
            .expect("DATA_DIR/api-token")
            .trim()
            .to_owned()
    }

    fn log(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default();
        format!(
            "--- stdout\n{}--- stderr\n{}",
            read("stdout.log"),
            read("stderr.log")
        )
    }

    /// Runs `callgate --config FILE ARGS...` to completion (the CLI).
    fn cli(&self, args: &[&str]) -> Output {
        let out = Command::new(env!("CARGO_BIN_EXE_callgate"))
            .arg("--config")
            .arg(self.config_path())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run callgate CLI");
        assert!(
            out.status.success(),
            "callgate {args:?} failed with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// The first start: retries on other ports if one was taken meanwhile.
    async fn start_first(&mut self) -> Server {
        let mut last = String::new();
        for _ in 0..3 {
            match self.try_start().await {
                Ok(s) => return s,
                Err(log) => last = log,
            }
            self.pick_ports();
        }
        panic!("callgate did not come up:\n{last}");
    }

    /// A later start on the same ports and data dir.
    async fn restart(&self) -> Server {
        match self.try_start().await {
            Ok(s) => s,
            Err(log) => panic!("callgate did not come up again:\n{log}"),
        }
    }

    async fn try_start(&self) -> Result<Server, String> {
        let append = |f: &str| {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.path().join(f))
                .expect("log file")
        };
        let child = Command::new(env!("CARGO_BIN_EXE_callgate"))
            .arg("--config")
            .arg(self.config_path())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(append("stdout.log"))
            .stderr(append("stderr.log"))
            .spawn()
            .expect("spawn callgate");
        let mut server = Server { child };
        let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind UDP");
        let local = sock.local_addr().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut n = 0;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!("exited with {status}\n{}", self.log()));
            }
            n += 1;
            let call_id = format!("probe-{n}-{:x}@persistence.invalid", rand_tag());
            let msg = format!(
                "OPTIONS sip:{DOMAIN} SIP/2.0\r\n\
                 Via: SIP/2.0/UDP {local};branch=z9hG4bK-probe-{n}-{:x};rport\r\n\
                 Max-Forwards: 70\r\n\
                 From: <sip:probe@persistence.invalid>;tag=probe{n}\r\n\
                 To: <sip:{DOMAIN}>\r\n\
                 Call-ID: {call_id}\r\n\
                 CSeq: {n} OPTIONS\r\n\
                 Content-Length: 0\r\n\r\n",
                rand_tag()
            );
            let _ = sock.send_to(msg.as_bytes(), self.udp).await;
            let until = Instant::now() + Duration::from_millis(200);
            let mut buf = vec![0u8; 65_536];
            while let Ok(Ok((len, _))) = timeout_at(until, sock.recv_from(&mut buf)).await {
                if let Some(r) = Response::parse(&buf[..len]) {
                    if r.is_for(&call_id, n, "OPTIONS") && r.status == 200 {
                        return Ok(server);
                    }
                }
            }
        }
        Err(format!("no 200 to OPTIONS within 20 s\n{}", self.log()))
    }
}

struct Server {
    child: Child,
}

impl Server {
    /// SIGTERM, then the process must end by itself with success.
    async fn stop(mut self, site: &Site) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    assert!(
                        status.success(),
                        "callgate exited with {status} after SIGTERM\n{}",
                        site.log()
                    );
                    return;
                }
                Ok(None) if Instant::now() < deadline => sleep(Duration::from_millis(50)).await,
                _ => panic!(
                    "callgate did not stop within 10 s of SIGTERM\n{}",
                    site.log()
                ),
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------
// The JSON API over HTTPS
// ---------------------------------------------------------------------------

/// Accepts exactly the certificate the server generated into its data dir
/// (self-signed, so no chain to check), and checks handshake signatures
/// with it as usual.
#[derive(Debug)]
struct PinnedCert {
    der: CertificateDer<'static>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.der.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn tls_connector(cert_pem: &Path) -> tokio_rustls::TlsConnector {
    let der = CertificateDer::from_pem_file(cert_pem)
        .unwrap_or_else(|e| panic!("{}: {e}", cert_pem.display()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedCert { der, provider }))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// One HTTP/1.1 request to the admin listener; status and body. The
/// listener starts beside the SIP transports, so connecting is retried for
/// a few seconds.
async fn api(
    site: &Site,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    let connector = tls_connector(&site.data_dir().join("tls-cert.pem"));
    let deadline = Instant::now() + Duration::from_secs(5);
    let tcp = loop {
        match TcpStream::connect(site.admin).await {
            Ok(t) => break t,
            Err(e) if Instant::now() >= deadline => {
                panic!("admin listener {}: {e}\n{}", site.admin, site.log())
            }
            Err(_) => sleep(Duration::from_millis(100)).await,
        }
    };
    let mut tls = timeout(
        ANSWER_WAIT,
        connector.connect(
            ServerName::IpAddress(IpAddr::from([127, 0, 0, 1]).into()),
            tcp,
        ),
    )
    .await
    .expect("TLS handshake timed out")
    .expect("TLS handshake with the admin listener");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAccept: application/json\r\n",
        site.admin
    );
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() {
        req.push_str("Content-Type: application/json\r\n");
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    tls.write_all(req.as_bytes()).await.expect("HTTP write");
    tls.flush().await.expect("HTTP flush");
    let mut raw = Vec::new();
    let until = Instant::now() + ANSWER_WAIT;
    let mut buf = [0u8; 16_384];
    loop {
        match timeout_at(until, tls.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break, // no close_notify counts as the end too
            Ok(Ok(n)) => raw.extend_from_slice(&buf[..n]),
            Err(_) => panic!(
                "HTTP {method} {path}: no complete answer; got {:?}",
                String::from_utf8_lossy(&raw)
            ),
        }
    }
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("HTTP answer without a head: {raw:?}"));
    let head = Head::parse(&raw[..split + 4]);
    let status: u16 = head
        .start
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("HTTP status line {:?}", head.start));
    let mut payload = raw[split + 4..].to_vec();
    if head
        .get("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        payload = dechunk(&payload);
    } else if let Some(len) = head.get("content-length").and_then(|l| l.parse().ok()) {
        assert!(payload.len() >= len, "HTTP body cut short");
        payload.truncate(len);
    }
    (status, String::from_utf8_lossy(&payload).into_owned())
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&data[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
            .expect("chunk size");
        if size == 0 {
            break;
        }
        let start = eol + 2;
        out.extend_from_slice(&data[start..start + size]);
        data = &data[start + size + 2..];
    }
    out
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

// ---------------------------------------------------------------------------
// 1. Registrations survive a restart
// ---------------------------------------------------------------------------

#[tokio::test]
async fn registrations_survive_a_restart() {
    let mut site = Site::new(&[("alice", "alice-secret"), ("bob", "bob-secret-2")]);
    let server = site.start_first().await;

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
    let until = Instant::now() + ANSWER_WAIT;
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
    let (status, body) = api(&site, "GET", "/api/v1/registrations", Some(&token), None).await;
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
    let mut site = Site::new(&[]);
    let server = site.start_first().await;

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

/// Runs the binary on `config` (server mode, or `args`) and returns its exit
/// code and stderr; it must exit by itself.
fn run_with_config(config: &str, args: &[&str]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("callgate.toml");
    // Loopback listeners on free ports, in case it wrongly starts.
    let base = format!("data_dir = \"{}\"\n", dir.path().join("data").display());
    std::fs::write(&path, format!("{base}{config}")).expect("write config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_callgate"))
        .arg("--config")
        .arg(&path)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn callgate");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("callgate accepted the bad configuration and kept running:\n{config}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(
        !dir.path().join("data").exists(),
        "a refused configuration must not create the data dir"
    );
    (status.code(), stderr)
}

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
        let (code, stderr) = run_with_config(&config, args);
        assert!(
            code.is_some_and(|c| c != 0),
            "exit code {code:?} for {bad:?} (args {args:?}); stderr: {stderr}"
        );
        assert!(
            stderr.contains(field),
            "stderr must name `{field}` for {bad:?} (args {args:?}): {stderr}"
        );
    }
}

// ---------------------------------------------------------------------------
// 4. The JSON API creates users
// ---------------------------------------------------------------------------

#[tokio::test]
async fn api_creates_users_and_wants_the_token() {
    let mut site = Site::new(&[]);
    let server = site.start_first().await;
    let token = site.token();
    assert!(token.len() >= 16, "API token {token:?}");
    assert!(
        site.log().contains(&token),
        "the token is printed at first start"
    );

    let body = r#"{"name":"dave","password":"dave-api-secret","extension":"3001"}"#;
    let (status, answer) = api(&site, "POST", "/api/v1/users", None, Some(body)).await;
    assert_eq!(status, 401, "no token: {answer}");
    let last = if token.ends_with('x') { 'y' } else { 'x' };
    let wrong = format!("{}{last}", &token[..token.len() - 1]);
    let (status, answer) = api(&site, "POST", "/api/v1/users", Some(&wrong), Some(body)).await;
    assert_eq!(status, 401, "wrong token: {answer}");
    let (status, answer) = api(&site, "GET", "/api/v1/registrations", None, None).await;
    assert_eq!(status, 401, "no token on registrations: {answer}");

    // Nothing was created by the refused requests.
    let mut dave = Phone::new("dave", Ipv4Addr::new(127, 0, 0, 5), site.udp).await;
    let r = dave.register("dave-api-secret", Algorithm::Sha256).await;
    assert_eq!(r.status, 403, "dave before creation: {r}");

    let (status, answer) = api(&site, "POST", "/api/v1/users", Some(&token), Some(body)).await;
    assert_eq!(status, 201, "POST /api/v1/users: {answer}");
    let created = json(&answer);
    assert_eq!(created["name"], "dave");
    assert_eq!(created["extension"], "3001");
    assert!(!answer.contains("ha1"), "never shows the HA1: {answer}");

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

    let (status, answer) = api(&site, "GET", "/api/v1/users?q=dave", Some(&token), None).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(json(&answer)["total"], 1, "{answer}");
    let (status, answer) = api(&site, "GET", "/api/v1/registrations", Some(&token), None).await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        json(&answer)["registrations"]
            .as_array()
            .is_some_and(|a| a.iter().any(|r| r["aor"] == format!("sip:dave@{DOMAIN}"))),
        "dave's registration listed: {answer}"
    );

    server.stop(&site).await;
}
