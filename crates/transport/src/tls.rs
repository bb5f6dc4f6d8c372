//! Certificates for the TLS and WSS listeners and the admin listener: the
//! configured PEM files, a pair uploaded through the admin API, or a
//! self-signed certificate generated into the data dir at first start and
//! reused afterwards (so browsers that accepted it once keep accepting it).
//!
//! [`CertStore`] holds the certificate the listeners present and swaps it
//! without a restart: a configuration from [`CertStore::server_config`]
//! asks the store on every handshake, so new connections get a reloaded
//! certificate at once while established ones keep theirs.
//!
//! The files in the data dir are the record of which certificate is
//! active: an uploaded pair (`uploaded-cert.pem`, `uploaded-key.pem`) wins
//! over the configured files, which win over the generated pair
//! (`tls-cert.pem`, `tls-key.pem`); see [`startup_paths`].

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: no {what} found in PEM file")]
    Empty { path: PathBuf, what: &'static str },
    #[error("generating self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("certificate rejected: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The certificate (chain) is unusable: not PEM, not X.509, none found.
    #[error("certificate{}: {reason}", at(.path))]
    BadCertificate {
        path: Option<PathBuf>,
        reason: String,
    },
    /// The private key is unusable or does not belong to the certificate.
    #[error("private key{}: {reason}", at(.path))]
    BadKey {
        path: Option<PathBuf>,
        reason: String,
    },
}

fn at(path: &Option<PathBuf>) -> String {
    path.as_ref()
        .map(|p| format!(" {}", p.display()))
        .unwrap_or_default()
}

/// Where the generated certificate lives inside the data dir.
pub fn generated_paths(data_dir: &Path) -> (PathBuf, PathBuf) {
    (data_dir.join("tls-cert.pem"), data_dir.join("tls-key.pem"))
}

/// Where a certificate uploaded through the admin API lives inside the
/// data dir.
pub fn uploaded_paths(data_dir: &Path) -> (PathBuf, PathBuf) {
    (
        data_dir.join("uploaded-cert.pem"),
        data_dir.join("uploaded-key.pem"),
    )
}

/// The pair of the data dir in use: the uploaded one when both of its
/// files exist, else the generated one.
pub fn active_paths(data_dir: &Path) -> (PathBuf, PathBuf) {
    let uploaded = uploaded_paths(data_dir);
    if uploaded.0.is_file() && uploaded.1.is_file() {
        uploaded
    } else {
        generated_paths(data_dir)
    }
}

/// The (cert, key) paths to load at start: an uploaded pair, else the
/// configured files, else the generated pair (created when missing).
pub fn startup_paths(
    data_dir: &Path,
    configured: Option<(&Path, &Path)>,
    names: &[String],
) -> Result<(PathBuf, PathBuf), TlsError> {
    let uploaded = uploaded_paths(data_dir);
    if uploaded.0.is_file() && uploaded.1.is_file() {
        return Ok(uploaded);
    }
    ensure_certificate(data_dir, configured, names)
}

/// Where a certificate file comes from, as the admin UI tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertSource {
    /// Generated self-signed into the data dir.
    Generated,
    /// Uploaded through the admin API into the data dir.
    Uploaded,
    /// Named in the configuration file.
    Configured,
}

impl CertSource {
    /// Tells by the certificate file's path.
    pub fn of(data_dir: &Path, cert_path: &Path) -> CertSource {
        if cert_path == uploaded_paths(data_dir).0 {
            CertSource::Uploaded
        } else if cert_path == generated_paths(data_dir).0 {
            CertSource::Generated
        } else {
            CertSource::Configured
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CertSource::Generated => "generated",
            CertSource::Uploaded => "uploaded",
            CertSource::Configured => "configured",
        }
    }
}

/// Returns (cert, key) paths: the configured ones, or the generated pair,
/// creating it when missing. `names` become the certificate's SANs.
pub fn ensure_certificate(
    data_dir: &Path,
    configured: Option<(&Path, &Path)>,
    names: &[String],
) -> Result<(PathBuf, PathBuf), TlsError> {
    if let Some((c, k)) = configured {
        return Ok((c.to_owned(), k.to_owned()));
    }
    let (cert_path, key_path) = generated_paths(data_dir);
    if cert_path.exists() && key_path.exists() {
        return Ok((cert_path, key_path));
    }
    regenerate_self_signed(data_dir, names)
}

/// Generates a new self-signed pair into the data dir, replacing the
/// generated one (each file is replaced whole: written aside, then
/// renamed over; the key is owner-only). `names` become the SANs, with
/// `localhost` and `127.0.0.1`; the first one is the common name.
pub fn regenerate_self_signed(
    data_dir: &Path,
    names: &[String],
) -> Result<(PathBuf, PathBuf), TlsError> {
    let mut sans = names.to_vec();
    for default in ["localhost", "127.0.0.1"] {
        if !sans.iter().any(|n| n == default) {
            sans.push(default.to_owned());
        }
    }
    let mut params = rcgen::CertificateParams::new(sans)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        names.first().map_or("callgate", String::as_str),
    );
    let key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    std::fs::create_dir_all(data_dir).map_err(|source| TlsError::Write {
        path: data_dir.to_owned(),
        source,
    })?;
    let (cert_path, key_path) = generated_paths(data_dir);
    write_atomic(&key_path, key.serialize_pem().as_bytes(), true)?;
    write_atomic(&cert_path, cert.pem().as_bytes(), false)?;
    Ok((cert_path, key_path))
}

/// Checks an uploaded pair (see [`check_pem`]) and writes it into the data
/// dir as the uploaded pair, each file replaced whole, the key owner-only.
/// Only the certificates go into the certificate file and only the key
/// into the key file, whatever else the PEM text held.
pub fn save_uploaded(
    data_dir: &Path,
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<(PathBuf, PathBuf), TlsError> {
    let (certs, key) = parse_pem(cert_pem, key_pem, None, None)?;
    certify(certs.clone(), key.clone_key(), None, None)?;
    let cert_text: String = certs
        .iter()
        .map(|c| pem_encode("CERTIFICATE", c.as_ref()))
        .collect();
    let label = match &key {
        PrivateKeyDer::Pkcs1(_) => "RSA PRIVATE KEY",
        PrivateKeyDer::Sec1(_) => "EC PRIVATE KEY",
        _ => "PRIVATE KEY",
    };
    let key_text = pem_encode(label, key.secret_der());
    std::fs::create_dir_all(data_dir).map_err(|source| TlsError::Write {
        path: data_dir.to_owned(),
        source,
    })?;
    let (cert_path, key_path) = uploaded_paths(data_dir);
    write_atomic(&key_path, key_text.as_bytes(), true)?;
    write_atomic(&cert_path, cert_text.as_bytes(), false)?;
    Ok((cert_path, key_path))
}

/// Removes the uploaded pair, so the configured or generated one applies
/// at the next start.
pub fn remove_uploaded(data_dir: &Path) -> Result<(), TlsError> {
    let (cert_path, key_path) = uploaded_paths(data_dir);
    for path in [cert_path, key_path] {
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(TlsError::Write { path, source: e })
            }
            _ => {}
        }
    }
    Ok(())
}

/// Writes `data` to a temporary file next to `path`, syncs it and renames
/// it over `path`, so readers see the old or the new file, never a part.
fn write_atomic(path: &Path, data: &[u8], private: bool) -> Result<(), TlsError> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);

    let err = |source| TlsError::Write {
        path: path.to_owned(),
        source,
    };
    let name = path
        .file_name()
        .ok_or_else(|| err(std::io::ErrorKind::InvalidInput.into()))?;
    let tmp = path.with_file_name(format!(
        ".{}.{}-{}.tmp",
        name.to_string_lossy(),
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    opts.mode(if private { 0o600 } else { 0o644 });
    #[cfg(not(unix))]
    let _ = private;
    let written = (|| {
        let mut f = opts.open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(err(e));
    }
    // Make the rename itself durable.
    #[cfg(unix)]
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = Vec::with_capacity(der.len().div_ceil(3) * 4);
    for chunk in der.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]);
            } else {
                b64.push(b'=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Loads a PEM certificate chain and private key.
pub fn load_pem(
    cert_path: &Path,
    key_path: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| TlsError::Read {
            path: p.to_owned(),
            source,
        })
    };
    let cert_pem = read(cert_path)?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut BufReader::new(&cert_pem[..]))
        .collect::<Result<_, _>>()
        .map_err(|source| TlsError::Read {
            path: cert_path.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::Empty {
            path: cert_path.to_owned(),
            what: "certificate",
        });
    }
    let key_pem = read(key_path)?;
    let key = rustls_pemfile::private_key(&mut BufReader::new(&key_pem[..]))
        .map_err(|source| TlsError::Read {
            path: key_path.to_owned(),
            source,
        })?
        .ok_or_else(|| TlsError::Empty {
            path: key_path.to_owned(),
            what: "private key",
        })?;
    Ok((certs, key))
}

fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// A rustls server configuration from PEM files, fixed to that
/// certificate. [`CertStore::server_config`] is the one that follows
/// reloads.
pub fn server_config(
    cert_path: &Path,
    key_path: &Path,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let (certs, key) = load_pem(cert_path, key_path)?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(Arc::new(config))
}

/// What a certificate says about itself, for the admin UI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Distinguished name, e.g. `CN=callgate.local`.
    pub subject: String,
    /// Subject alternative names: DNS names and IP addresses as written;
    /// other kinds prefixed (`email:`, `URI:`).
    pub sans: Vec<String>,
    pub issuer: String,
    /// Validity, unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    /// Issued by itself (issuer is the subject and its own key signed it).
    pub self_signed: bool,
    /// SHA-256 of the DER certificate, `AB:CD:...` as browsers show it.
    pub fingerprint_sha256: String,
    /// Certificates in the chain, the server's own included.
    pub chain_len: usize,
}

impl CertInfo {
    /// Reads the server's own certificate (DER).
    pub fn from_der(der: &[u8]) -> Result<CertInfo, TlsError> {
        let bad = |reason: String| TlsError::BadCertificate { path: None, reason };
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| bad(format!("not an X.509 certificate: {e}")))?;
        let sans = match cert.subject_alternative_name() {
            Ok(Some(ext)) => ext
                .value
                .general_names
                .iter()
                .filter_map(general_name)
                .collect(),
            Ok(None) => Vec::new(),
            Err(e) => return Err(bad(format!("unreadable subjectAltName: {e}"))),
        };
        let self_signed = cert.subject().as_raw() == cert.issuer().as_raw()
            && cert.verify_signature(None).is_ok();
        let digest = ring::digest::digest(&ring::digest::SHA256, der);
        let fingerprint_sha256 = digest
            .as_ref()
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":");
        Ok(CertInfo {
            subject: cert.subject().to_string(),
            sans,
            issuer: cert.issuer().to_string(),
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
            self_signed,
            fingerprint_sha256,
            chain_len: 1,
        })
    }
}

fn general_name(name: &x509_parser::extensions::GeneralName<'_>) -> Option<String> {
    use x509_parser::extensions::GeneralName;
    Some(match name {
        GeneralName::DNSName(n) => (*n).to_owned(),
        GeneralName::IPAddress(b) => match b.len() {
            4 => std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*b).ok()?).to_string(),
            16 => std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*b).ok()?).to_string(),
            _ => return None,
        },
        GeneralName::RFC822Name(n) => format!("email:{n}"),
        GeneralName::URI(n) => format!("URI:{n}"),
        _ => return None,
    })
}

/// Parses PEM text into a chain (server's own certificate first) and a
/// key; `None` paths mean the text came from elsewhere (an upload).
fn parse_pem(
    cert_pem: &[u8],
    key_pem: &[u8],
    cert_path: Option<&Path>,
    key_path: Option<&Path>,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let bad_cert = |reason: String| TlsError::BadCertificate {
        path: cert_path.map(Path::to_owned),
        reason,
    };
    let bad_key = |reason: String| TlsError::BadKey {
        path: key_path.map(Path::to_owned),
        reason,
    };
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut &cert_pem[..])
        .collect::<Result<_, _>>()
        .map_err(|e| bad_cert(format!("invalid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(bad_cert("no CERTIFICATE block found".into()));
    }
    let key = rustls_pemfile::private_key(&mut &key_pem[..])
        .map_err(|e| bad_key(format!("invalid PEM: {e}")))?
        .ok_or_else(|| {
            bad_key("no PRIVATE KEY block found (PKCS#8, PKCS#1 or SEC1 PEM expected)".into())
        })?;
    Ok((certs, key))
}

/// Pairs a chain with its key, refusing a key that is not the one of the
/// chain's first certificate.
fn certify(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    cert_path: Option<&Path>,
    key_path: Option<&Path>,
) -> Result<(Arc<CertifiedKey>, CertInfo), TlsError> {
    let with_cert_path = |e: TlsError| match e {
        TlsError::BadCertificate { reason, .. } => TlsError::BadCertificate {
            path: cert_path.map(Path::to_owned),
            reason,
        },
        e => e,
    };
    let bad_key = |reason: String| TlsError::BadKey {
        path: key_path.map(Path::to_owned),
        reason,
    };
    let mut info = CertInfo::from_der(&certs[0]).map_err(with_cert_path)?;
    info.chain_len = certs.len();
    let signing = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| bad_key(format!("unusable: {e}")))?;
    let certified = CertifiedKey::new(certs, signing);
    match certified.keys_match() {
        Ok(()) => Ok((Arc::new(certified), info)),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => Err(
            bad_key("does not match the certificate (the first one in the chain)".into()),
        ),
        Err(rustls::Error::InconsistentKeys(_)) => Err(bad_key(
            "cannot tell whether it matches the certificate".into(),
        )),
        Err(e) => Err(with_cert_path(TlsError::BadCertificate {
            path: None,
            reason: e.to_string(),
        })),
    }
}

/// Checks a PEM certificate chain and key without installing them: both
/// parse, and the key is the one of the chain's first certificate. Errors
/// are [`TlsError::BadCertificate`] or [`TlsError::BadKey`]. Validity
/// dates are the caller's to judge ([`CertInfo::not_after`]).
pub fn check_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<CertInfo, TlsError> {
    let (certs, key) = parse_pem(cert_pem, key_pem, None, None)?;
    Ok(certify(certs, key, None, None)?.1)
}

/// The certificate the TLS, WSS and admin listeners present, replaceable
/// while they run. Build listener configurations with
/// [`CertStore::server_config`]; [`CertStore::reload`] then applies to
/// every new handshake.
pub struct CertStore {
    active: RwLock<Arc<Active>>,
}

struct Active {
    key: Arc<CertifiedKey>,
    info: CertInfo,
    cert_path: PathBuf,
    key_path: PathBuf,
}

impl std::fmt::Debug for CertStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let active = self.current();
        f.debug_struct("CertStore")
            .field("cert_path", &active.cert_path)
            .field("subject", &active.info.subject)
            .field("fingerprint_sha256", &active.info.fingerprint_sha256)
            .finish()
    }
}

impl CertStore {
    /// Loads the PEM pair; the key must match the certificate.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Arc<CertStore>, TlsError> {
        Ok(Arc::new(CertStore {
            active: RwLock::new(Arc::new(Self::read(cert_path, key_path)?)),
        }))
    }

    fn read(cert_path: &Path, key_path: &Path) -> Result<Active, TlsError> {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|source| TlsError::Read {
                path: p.to_owned(),
                source,
            })
        };
        let (cert_pem, key_pem) = (read(cert_path)?, read(key_path)?);
        let (certs, key) = parse_pem(&cert_pem, &key_pem, Some(cert_path), Some(key_path))?;
        let (key, info) = certify(certs, key, Some(cert_path), Some(key_path))?;
        Ok(Active {
            key,
            info,
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
        })
    }

    fn current(&self) -> Arc<Active> {
        self.active
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Loads the PEM pair and makes it the one new handshakes present.
    /// On any error (unreadable, unparsable, key not matching) the current
    /// certificate stays.
    pub fn reload(&self, cert_path: &Path, key_path: &Path) -> Result<CertInfo, TlsError> {
        let next = Arc::new(Self::read(cert_path, key_path)?);
        let info = next.info.clone();
        *self.active.write().unwrap_or_else(PoisonError::into_inner) = next;
        tracing::info!(
            subject = %info.subject,
            fingerprint = %info.fingerprint_sha256,
            "TLS certificate loaded from {}",
            cert_path.display()
        );
        Ok(info)
    }

    /// The certificate presented now.
    pub fn info(&self) -> CertInfo {
        self.current().info.clone()
    }

    /// The (cert, key) files the current certificate was loaded from.
    pub fn paths(&self) -> (PathBuf, PathBuf) {
        let active = self.current();
        (active.cert_path.clone(), active.key_path.clone())
    }

    /// A rustls server configuration (same protocol versions as
    /// [`server_config`]) that presents whatever the store holds at each
    /// handshake. Works as `transport::Config::server_tls` and for the
    /// admin listener; clones of it (e.g. with ALPN set) follow too.
    pub fn server_config(self: &Arc<Self>) -> Arc<rustls::ServerConfig> {
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(provider()))
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports the default protocol versions")
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        Arc::new(config)
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current().key.clone())
    }
}

/// The rustls client configuration for outgoing TLS (trunks): the Mozilla
/// root store bundled with the binary (an appliance image need not carry
/// the system CA bundle), plus the certificates in `extra_ca` (PEM) for
/// providers with a private CA.
pub fn client_config(extra_ca: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = extra_ca {
        let pem = std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })?;
        for cert in rustls_pemfile::certs(&mut BufReader::new(&pem[..])) {
            let cert = cert.map_err(|source| TlsError::Read {
                path: path.to_owned(),
                source,
            })?;
            roots.add(cert)?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_once_then_reuses() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = ensure_certificate(dir.path(), None, &["gw.example".into()]).unwrap();
        let first = std::fs::read(&c).unwrap();
        server_config(&c, &k).unwrap();
        let (c2, _) = ensure_certificate(dir.path(), None, &[]).unwrap();
        assert_eq!(std::fs::read(c2).unwrap(), first);
    }

    /// A self-signed pair for `name` as PEM texts.
    fn pair(name: &str) -> (String, String) {
        let c = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
        (c.cert.pem(), c.signing_key.serialize_pem())
    }

    fn write_pair(dir: &Path, stem: &str, pem: &(String, String)) -> (PathBuf, PathBuf) {
        let c = dir.join(format!("{stem}-cert.pem"));
        let k = dir.join(format!("{stem}-key.pem"));
        std::fs::write(&c, &pem.0).unwrap();
        std::fs::write(&k, &pem.1).unwrap();
        (c, k)
    }

    #[test]
    fn reload_refuses_a_key_of_another_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let a = write_pair(dir.path(), "a", &pair("a.example"));
        let b_pem = pair("b.example");
        let b = write_pair(dir.path(), "b", &b_pem);
        let store = CertStore::load(&a.0, &a.1).unwrap();
        let first = store.info();
        assert_eq!(first.sans, ["a.example"]);
        assert!(first.self_signed);
        assert_eq!(first.chain_len, 1);
        assert_eq!(first.fingerprint_sha256.len(), 32 * 3 - 1);

        // B's certificate with A's key: refused, naming the key file.
        let e = store.reload(&b.0, &a.1).unwrap_err();
        assert!(matches!(e, TlsError::BadKey { .. }), "{e}");
        assert!(e.to_string().contains("a-key.pem"), "{e}");
        assert!(e.to_string().contains("does not match"), "{e}");
        // Not a certificate at all.
        let e = store.reload(&a.1, &a.1).unwrap_err();
        assert!(matches!(e, TlsError::BadCertificate { .. }), "{e}");
        let e = store
            .reload(&dir.path().join("nope.pem"), &a.1)
            .unwrap_err();
        assert!(matches!(e, TlsError::Read { .. }), "{e}");
        assert_eq!(store.info(), first, "A stays");
        assert_eq!(store.paths(), a);

        let info = store.reload(&b.0, &b.1).unwrap();
        assert_eq!(info.sans, ["b.example"]);
        assert_ne!(info.fingerprint_sha256, first.fingerprint_sha256);
        assert_eq!(store.info(), info);

        // The same checks on PEM text.
        let e = check_pem(b_pem.0.as_bytes(), pair("c.example").1.as_bytes()).unwrap_err();
        assert!(matches!(e, TlsError::BadKey { path: None, .. }), "{e}");
        let e = check_pem(b"", b_pem.1.as_bytes()).unwrap_err();
        assert!(matches!(e, TlsError::BadCertificate { .. }), "{e}");
        let e = check_pem(b_pem.0.as_bytes(), b"").unwrap_err();
        assert!(matches!(e, TlsError::BadKey { .. }), "{e}");
        assert_eq!(
            check_pem(b_pem.0.as_bytes(), b_pem.1.as_bytes()).unwrap(),
            info
        );
    }

    #[test]
    fn info_of_a_ca_issued_certificate() {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "Test CA");
        let issuer = rcgen::Issuer::new(ca.clone(), &ca_key);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut leaf =
            rcgen::CertificateParams::new(vec!["gw.example".into(), "192.0.2.7".into()]).unwrap();
        leaf.distinguished_name
            .push(rcgen::DnType::CommonName, "gw.example");
        leaf.not_before = rcgen::date_time_ymd(2024, 1, 2);
        leaf.not_after = rcgen::date_time_ymd(2034, 1, 2);
        let cert = leaf.signed_by(&key, &issuer).unwrap();
        let chain = format!("{}{}", cert.pem(), ca_cert.pem());
        let info = check_pem(chain.as_bytes(), key.serialize_pem().as_bytes()).unwrap();
        assert_eq!(info.subject, "CN=gw.example");
        assert_eq!(info.issuer, "CN=Test CA");
        assert_eq!(info.sans, ["gw.example", "192.0.2.7"]);
        assert!(!info.self_signed);
        assert_eq!(info.not_before, 1_704_153_600);
        assert_eq!(info.not_after, 2_019_772_800);
        assert_eq!(info.chain_len, 2);
        assert_eq!(
            info,
            CertInfo::from_der(cert.der())
                .map(|mut i| {
                    i.chain_len = 2;
                    i
                })
                .unwrap()
        );
    }

    #[test]
    fn uploaded_pair_is_written_clean_and_wins() {
        let dir = tempfile::tempdir().unwrap();
        let generated = ensure_certificate(dir.path(), None, &["gw.example".into()]).unwrap();
        assert_eq!(active_paths(dir.path()), generated);
        assert_eq!(startup_paths(dir.path(), None, &[]).unwrap(), generated);
        let (cert, key) = pair("up.example");
        // Both texts pasted into both fields: only the right blocks land.
        let both = format!("{cert}{key}");
        let (c, k) = save_uploaded(dir.path(), both.as_bytes(), both.as_bytes()).unwrap();
        assert_eq!((c.clone(), k.clone()), uploaded_paths(dir.path()));
        let written_cert = std::fs::read_to_string(&c).unwrap();
        assert!(!written_cert.contains("PRIVATE KEY"), "{written_cert}");
        assert!(written_cert.starts_with("-----BEGIN CERTIFICATE-----\n"));
        let written_key = std::fs::read_to_string(&k).unwrap();
        assert!(!written_key.contains("CERTIFICATE"), "{written_key}");
        assert_eq!(written_key.trim(), key.trim(), "same PKCS#8 PEM");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&k).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(active_paths(dir.path()), (c.clone(), k.clone()));
        let configured = (Path::new("/etc/x.pem"), Path::new("/etc/y.pem"));
        assert_eq!(
            startup_paths(dir.path(), Some(configured), &[]).unwrap(),
            (c.clone(), k.clone()),
            "uploaded wins over configured"
        );
        assert_eq!(CertSource::of(dir.path(), &c), CertSource::Uploaded);
        assert_eq!(
            CertSource::of(dir.path(), &generated.0),
            CertSource::Generated
        );
        assert_eq!(
            CertSource::of(dir.path(), configured.0),
            CertSource::Configured
        );
        let store = CertStore::load(&c, &k).unwrap();
        assert_eq!(store.info().sans, ["up.example"]);

        // A refused upload leaves the files alone.
        let e = save_uploaded(dir.path(), cert.as_bytes(), pair("x").1.as_bytes()).unwrap_err();
        assert!(matches!(e, TlsError::BadKey { .. }), "{e}");
        assert_eq!(std::fs::read_to_string(&c).unwrap(), written_cert);

        remove_uploaded(dir.path()).unwrap();
        remove_uploaded(dir.path()).unwrap();
        assert_eq!(active_paths(dir.path()), generated);
        assert_eq!(
            startup_paths(dir.path(), Some(configured), &[]).unwrap(),
            (configured.0.to_owned(), configured.1.to_owned())
        );
    }

    #[test]
    fn regenerate_replaces_the_generated_pair() {
        let dir = tempfile::tempdir().unwrap();
        let names = vec!["gw.example".to_owned()];
        let (c, k) = ensure_certificate(dir.path(), None, &names).unwrap();
        let store = CertStore::load(&c, &k).unwrap();
        let before = store.info();
        assert_eq!(before.subject, "CN=gw.example");
        assert_eq!(before.sans, ["gw.example", "localhost", "127.0.0.1"]);
        assert_eq!(
            (c.clone(), k.clone()),
            regenerate_self_signed(dir.path(), &names).unwrap()
        );
        let after = store.reload(&c, &k).unwrap();
        assert_ne!(after.fingerprint_sha256, before.fingerprint_sha256);
        assert!(after.self_signed);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&k).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn pem_encoding_round_trips() {
        for len in 0..70 {
            let der: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let pem = pem_encode("CERTIFICATE", &der);
            let back: Vec<_> = rustls_pemfile::certs(&mut pem.as_bytes())
                .collect::<Result<_, _>>()
                .unwrap();
            if len == 0 {
                continue;
            }
            assert_eq!(back[0].as_ref(), &der[..], "{len}");
            assert!(pem.lines().all(|l| l.len() <= 64));
        }
    }

    #[test]
    fn missing_file_is_named() {
        let e = server_config(
            Path::new("/nonexistent/c.pem"),
            Path::new("/nonexistent/k.pem"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("/nonexistent/c.pem"), "{e}");
    }
}
