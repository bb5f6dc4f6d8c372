//! Helpers shared by the end-to-end tests: a throw-away site (config file
//! and data dir in a temp dir, loopback listeners on free ports), the real
//! `callgate` binary started on it, its CLI, the JSON API over HTTPS with
//! the server's self-signed certificate pinned, and a minimal SIP reader.

// Each test binary uses its own subset of these helpers.
#![allow(dead_code)]

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::fs::OpenOptions;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::{sleep, timeout, timeout_at, Instant};

pub const DOMAIN: &str = "example.com";
/// How long an API answer that must come may take (the machine is shared).
pub const ANSWER_WAIT: Duration = Duration::from_secs(5);
/// How long a SIP response that must come may take (the machine is shared).
pub const SIP_WAIT: Duration = Duration::from_secs(3);
/// How long the server may take to answer `/healthz` after its start.
const START_WAIT: Duration = Duration::from_secs(30);
/// How long the server may take to answer OPTIONS after its start.
const SIP_START_WAIT: Duration = Duration::from_secs(20);

pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("free UDP port")
        .port()
}

pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("free TCP port")
        .port()
}

/// What tells that a started server is up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ready {
    /// `/healthz` answers 200 over HTTPS and the API token is written.
    Healthz,
    /// A UDP OPTIONS to the gateway itself gets its 200.
    SipOptions,
}

/// The SIP listeners on streams of a site that has them.
#[derive(Debug, Clone, Copy)]
pub struct Streams {
    pub tcp: SocketAddr,
    pub wss: SocketAddr,
}

/// A configuration and data dir that server processes are started on, one
/// after the other.
pub struct Site {
    pub dir: tempfile::TempDir,
    pub udp: SocketAddr,
    pub admin: SocketAddr,
    /// SIP over TCP and WSS as well as UDP (see [`Site::with_streams`]).
    pub streams: Option<Streams>,
    /// Appended to the generated configuration (tables such as `[[users]]`).
    pub extra: String,
    /// What [`Site::start`] waits for.
    pub ready: Ready,
    /// `RUST_LOG` of the server.
    pub rust_log: &'static str,
    /// How long an API request may take once connected (TLS handshake,
    /// then the whole answer).
    pub api_wait: Duration,
}

impl Site {
    /// SIP over UDP only, up once `/healthz` answers.
    pub fn new(extra: &str) -> Site {
        Site::build(extra, false)
    }

    /// SIP over UDP, TCP and WSS.
    pub fn with_streams(extra: &str) -> Site {
        Site::build(extra, true)
    }

    fn build(extra: &str, streams: bool) -> Site {
        let unset = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut site = Site {
            dir: tempfile::tempdir().expect("temp dir"),
            udp: unset,
            admin: unset,
            streams: streams.then_some(Streams {
                tcp: unset,
                wss: unset,
            }),
            extra: extra.to_owned(),
            ready: Ready::Healthz,
            rust_log: "info",
            api_wait: ANSWER_WAIT,
        };
        site.pick_ports();
        site
    }

    /// New listener ports and the configuration written with them.
    pub fn pick_ports(&mut self) {
        self.udp = SocketAddr::from(([127, 0, 0, 1], free_udp_port()));
        self.admin = SocketAddr::from(([127, 0, 0, 1], free_tcp_port()));
        if let Some(streams) = &mut self.streams {
            streams.tcp = SocketAddr::from(([127, 0, 0, 1], free_tcp_port()));
            streams.wss = SocketAddr::from(([127, 0, 0, 1], free_tcp_port()));
        }
        let list = |addr: Option<SocketAddr>| addr.map(|a| format!("\"{a}\"")).unwrap_or_default();
        let config = format!(
            "data_dir = \"{}\"\n\
             [sip]\n\
             domain = \"{DOMAIN}\"\n\
             udp = [\"{}\"]\n\
             tcp = [{}]\n\
             tls = []\n\
             wss = [{}]\n\
             [media]\n\
             advertised_address = \"127.0.0.1\"\n\
             [admin]\n\
             listen = \"{}\"\n\
             {}",
            self.data_dir().display(),
            self.udp,
            list(self.streams.map(|s| s.tcp)),
            list(self.streams.map(|s| s.wss)),
            self.admin,
            self.extra
        );
        std::fs::write(self.config_path(), config).expect("write config");
    }

    /// The SIP over TCP listener.
    pub fn tcp(&self) -> SocketAddr {
        self.streams.expect("a site with stream listeners").tcp
    }

    /// The SIP over WSS listener.
    pub fn wss(&self) -> SocketAddr {
        self.streams.expect("a site with stream listeners").wss
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("callgate.toml")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn db_path(&self) -> PathBuf {
        self.data_dir().join("callgate.db")
    }

    /// The self-signed certificate of the admin and WSS listeners.
    pub fn cert_path(&self) -> PathBuf {
        self.data_dir().join("tls-cert.pem")
    }

    pub fn token(&self) -> String {
        std::fs::read_to_string(self.data_dir().join("api-token"))
            .expect("DATA_DIR/api-token")
            .trim()
            .to_owned()
    }

    pub fn log(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default();
        format!(
            "--- stdout\n{}--- stderr\n{}",
            read("stdout.log"),
            read("stderr.log")
        )
    }

    /// Runs `callgate --config FILE ARGS...` to completion; it must succeed.
    pub fn cli(&self, args: &[&str]) -> Output {
        let out = self.cli_status(args);
        assert!(
            out.status.success(),
            "callgate {args:?} failed with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Runs `callgate --config FILE ARGS...` to completion, whatever the
    /// outcome.
    pub fn cli_status(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_callgate"))
            .arg("--config")
            .arg(self.config_path())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run callgate CLI")
    }

    /// Starts the server; retries on other ports if one was taken
    /// meanwhile.
    pub async fn start(&mut self) -> Server {
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
    pub async fn restart(&self) -> Server {
        match self.try_start().await {
            Ok(s) => s,
            Err(log) => panic!("callgate did not come up again:\n{log}"),
        }
    }

    /// Starts the server; the log when it did not come up (see
    /// [`Site::ready`]).
    pub async fn try_start(&self) -> Result<Server, String> {
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
            .env("RUST_LOG", self.rust_log)
            .stdin(Stdio::null())
            .stdout(append("stdout.log"))
            .stderr(append("stderr.log"))
            .spawn()
            .expect("spawn callgate");
        let mut server = Server { child };
        let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind UDP");
        let wait = match self.ready {
            Ready::Healthz => START_WAIT,
            Ready::SipOptions => SIP_START_WAIT,
        };
        let deadline = Instant::now() + wait;
        let mut n = 0;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!("exited with {status}\n{}", self.log()));
            }
            match self.ready {
                Ready::Healthz => {
                    if self.healthy().await {
                        return Ok(server);
                    }
                    sleep(Duration::from_millis(100)).await;
                }
                Ready::SipOptions => {
                    n += 1;
                    if self.answers_options(&sock, n).await {
                        return Ok(server);
                    }
                }
            }
        }
        Err(match self.ready {
            Ready::Healthz => format!(
                "no answer on https://{}/healthz within {wait:?}\n{}",
                self.admin,
                self.log()
            ),
            Ready::SipOptions => format!("no 200 to OPTIONS within {wait:?}\n{}", self.log()),
        })
    }

    async fn healthy(&self) -> bool {
        let cert = self.cert_path();
        if !cert.exists() || self.data_dir().join("api-token").metadata().is_err() {
            return false;
        }
        let Ok(Ok(tcp)) = timeout(Duration::from_secs(1), TcpStream::connect(self.admin)).await
        else {
            return false;
        };
        request(self, tcp, "GET", "/healthz", None, None)
            .await
            .is_ok_and(|a| a.status == 200)
    }

    /// Sends OPTIONS number `n` from `sock` to the UDP listener; whether its
    /// 200 came within 200 ms.
    async fn answers_options(&self, sock: &UdpSocket, n: u32) -> bool {
        let local = sock.local_addr().unwrap().to_string();
        let (call_id, msg) = probe(n, "UDP", &local);
        let _ = sock.send_to(&msg, self.udp).await;
        let until = Instant::now() + Duration::from_millis(200);
        let mut buf = vec![0u8; 65_536];
        while let Ok(Ok((len, _))) = timeout_at(until, sock.recv_from(&mut buf)).await {
            if let Some(r) = Response::parse(&buf[..len]) {
                if r.is_for(&call_id, n, "OPTIONS") && r.status == 200 {
                    return true;
                }
            }
        }
        false
    }
}

/// A running server.
pub struct Server {
    pub child: Child,
}

impl Server {
    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM, then the process must end by itself with success.
    pub async fn stop(mut self, site: &Site) {
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

/// Runs the binary on `config` (server mode, or `args`) in a fresh temp
/// dir whose `data` subdirectory is the data dir; it must exit by itself
/// within 10 s. Exit code, stderr and whether the data dir was created.
pub fn run_with_config(config: &str, args: &[&str]) -> (Option<i32>, String, bool) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("callgate.toml");
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
    (status.code(), stderr, dir.path().join("data").exists())
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

/// A TLS client that trusts only the certificate in `cert_pem` and offers
/// the ALPN protocols `alpn`.
pub fn tls_connector(
    cert_pem: &Path,
    alpn: &[&[u8]],
) -> Result<tokio_rustls::TlsConnector, String> {
    let der = CertificateDer::from_pem_file(cert_pem)
        .map_err(|e| format!("{}: {e}", cert_pem.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedCert { der, provider }))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// An HTTP answer: status, headers (names lower-cased) and body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        json(&self.body)
    }
}

/// One HTTP/1.1 request to the admin listener of `site`. The listener
/// starts beside the SIP transports, so connecting is retried for a few
/// seconds.
pub async fn api(
    site: &Site,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Answer {
    let deadline = Instant::now() + ANSWER_WAIT;
    let tcp = loop {
        match TcpStream::connect(site.admin).await {
            Ok(t) => break t,
            Err(e) if Instant::now() >= deadline => {
                panic!("admin listener {}: {e}\n{}", site.admin, site.log())
            }
            Err(_) => sleep(Duration::from_millis(100)).await,
        }
    };
    request(site, tcp, method, path, token, body)
        .await
        .unwrap_or_else(|e| panic!("HTTP {method} {path}: {e}\n{}", site.log()))
}

/// One HTTP/1.1 request over `tcp`, connected to the admin listener of
/// `site`.
async fn request(
    site: &Site,
    tcp: TcpStream,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Result<Answer, String> {
    let connector = tls_connector(&site.cert_path(), &[b"http/1.1"])?;
    let mut tls = timeout(
        site.api_wait,
        connector.connect(
            ServerName::IpAddress(IpAddr::from([127, 0, 0, 1]).into()),
            tcp,
        ),
    )
    .await
    .map_err(|_| "TLS handshake timed out".to_owned())?
    .map_err(|e| format!("TLS handshake: {e}"))?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAccept: */*\r\n",
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
    tls.write_all(req.as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    tls.flush().await.map_err(|e| format!("flush: {e}"))?;
    let mut raw = Vec::new();
    let until = Instant::now() + site.api_wait;
    let mut buf = [0u8; 16_384];
    loop {
        match timeout_at(until, tls.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break, // no close_notify counts as the end too
            Ok(Ok(n)) => raw.extend_from_slice(&buf[..n]),
            Err(_) => {
                return Err(format!(
                    "no complete answer; got {:?}",
                    String::from_utf8_lossy(&raw)
                ))
            }
        }
    }
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("answer without a head: {raw:?}"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("HTTP status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut payload = raw[split + 4..].to_vec();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    if header("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        payload = dechunk(&payload)?;
    } else if let Some(len) = header("content-length").and_then(|l| l.parse().ok()) {
        if payload.len() < len {
            return Err("body cut short".into());
        }
        payload.truncate(len);
    }
    Ok(Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&payload).into_owned(),
    })
}

/// The body of a chunked transfer, which must end with its last chunk.
fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&data[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
            .map_err(|_| format!("chunk size {size_text:?}"))?;
        if size == 0 {
            return Ok(out);
        }
        let start = eol + 2;
        if data.len() < start + size + 2 {
            return Err("chunked body cut short".into());
        }
        out.extend_from_slice(&data[start..start + size]);
        data = &data[start + size + 2..];
    }
    Err("chunked body without its last chunk".into())
}

pub fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

// ---------------------------------------------------------------------------
// A minimal SIP reader, independent of the implementation under test
// ---------------------------------------------------------------------------

/// Start line and unfolded headers (names lower-cased, compact forms
/// expanded) of a message.
#[derive(Debug, Clone)]
pub struct Head {
    pub start: String,
    pub headers: Vec<(String, String)>,
}

impl Head {
    pub fn parse(raw: &[u8]) -> Head {
        let end = find(raw, b"\r\n\r\n").unwrap_or(raw.len());
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
            let name = name.trim().to_ascii_lowercase();
            let name = match name.as_str() {
                "i" => "call-id",
                "v" => "via",
                "f" => "from",
                "t" => "to",
                "m" => "contact",
                "l" => "content-length",
                "c" => "content-type",
                "k" => "supported",
                "s" => "subject",
                other => other,
            }
            .to_owned();
            headers.push((name, value.trim().to_owned()));
        }
        Head { start, headers }
    }

    pub fn all<'a, 'n>(&'a self, name: &'n str) -> impl Iterator<Item = &'a str> + use<'a, 'n> {
        self.headers
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.all(name).next()
    }

    pub fn method(&self) -> &str {
        self.start.split_whitespace().next().unwrap_or("")
    }

    pub fn request_uri(&self) -> &str {
        self.start.split_whitespace().nth(1).unwrap_or("")
    }

    /// The CSeq with single spaces between its parts.
    pub fn cseq_normalized(&self) -> Option<String> {
        self.get("cseq")
            .map(|c| c.split_whitespace().collect::<Vec<_>>().join(" "))
    }
}

/// Where `needle` first occurs in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A response as received.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub head: Head,
}

impl Response {
    /// A response with a three-digit status code, or `None`.
    pub fn parse(raw: &[u8]) -> Option<Response> {
        let head = Head::parse(raw);
        let mut it = head.start.splitn(3, ' ');
        if it.next()? != "SIP/2.0" {
            return None;
        }
        let code = it.next()?;
        if code.len() != 3 {
            return None;
        }
        let status = code.parse().ok()?;
        let reason = it.next().unwrap_or("").to_owned();
        Some(Response {
            status,
            reason,
            head,
        })
    }

    pub fn call_id(&self) -> Option<&str> {
        self.head.get("call-id")
    }

    /// Whether it answers the request with this Call-ID, CSeq number and
    /// method.
    pub fn is_for(&self, call_id: &str, cseq: u32, method: &str) -> bool {
        self.call_id() == Some(call_id)
            && self.head.cseq_normalized() == Some(format!("{cseq} {method}"))
    }

    /// Status and the reason phrase cut to 40 characters.
    pub fn summary(&self) -> String {
        let mut reason = self.reason.clone();
        reason.truncate(40);
        format!("{} {reason}", self.status)
    }
}

impl std::fmt::Display for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.reason)
    }
}

/// Distinct enough for tags, branches and Call-IDs within a run.
pub fn rand_tag() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    (t << 16) ^ N.fetch_add(1, Ordering::Relaxed)
}

/// OPTIONS number `n` to the gateway itself, which must always get a 200:
/// its Call-ID and bytes. `local` is the sent-by of its Via.
pub fn probe(n: u32, transport: &str, local: &str) -> (String, Vec<u8>) {
    let call_id = format!("probe-{n}-{}@probe.invalid", std::process::id());
    let msg = format!(
        "OPTIONS sip:{DOMAIN} SIP/2.0\r\n\
         Via: SIP/2.0/{transport} {local};branch=z9hG4bK-probe-{n};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@probe.invalid>;tag=probe{n}\r\n\
         To: <sip:{DOMAIN}>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {n} OPTIONS\r\n\
         Content-Length: 0\r\n\r\n"
    );
    (call_id, msg.into_bytes())
}
