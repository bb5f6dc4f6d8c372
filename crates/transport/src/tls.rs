//! Certificates for the TLS and WSS listeners: the configured PEM files, or a
//! self-signed certificate generated into the data dir at first start and
//! reused afterwards (so browsers that accepted it once keep accepting it).

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
}

/// Where the generated certificate lives inside the data dir.
pub fn generated_paths(data_dir: &Path) -> (PathBuf, PathBuf) {
    (data_dir.join("tls-cert.pem"), data_dir.join("tls-key.pem"))
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
    let mut sans = names.to_vec();
    for default in ["localhost", "127.0.0.1"] {
        if !sans.iter().any(|n| n == default) {
            sans.push(default.to_owned());
        }
    }
    let certified = rcgen::generate_simple_self_signed(sans)?;
    std::fs::create_dir_all(data_dir).map_err(|source| TlsError::Write {
        path: data_dir.to_owned(),
        source,
    })?;
    write_private(&key_path, certified.signing_key.serialize_pem().as_bytes())?;
    std::fs::write(&cert_path, certified.cert.pem()).map_err(|source| TlsError::Write {
        path: cert_path.clone(),
        source,
    })?;
    Ok((cert_path, key_path))
}

fn write_private(path: &Path, data: &[u8]) -> Result<(), TlsError> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let err = |source| TlsError::Write {
        path: path.to_owned(),
        source,
    };
    let mut f = opts.open(path).map_err(err)?;
    f.write_all(data).map_err(err)
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

/// A rustls server configuration from PEM files.
pub fn server_config(
    cert_path: &Path,
    key_path: &Path,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let (certs, key) = load_pem(cert_path, key_path)?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(certs, key)?;
    Ok(Arc::new(config))
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
