//! The TLS and WSS listeners present a reloaded certificate on the next
//! handshake, without a restart; a refused reload leaves the old one.

use rustls::pki_types::{CertificateDer, ServerName};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::TcpStream;
use transport::tls::{CertStore, TlsError};
use transport::{Config, Transport, Transports};

struct Pair {
    der: CertificateDer<'static>,
    cert: PathBuf,
    key: PathBuf,
}

fn pair(dir: &Path, stem: &str) -> Pair {
    let c = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = dir.join(format!("{stem}-cert.pem"));
    let key = dir.join(format!("{stem}-key.pem"));
    std::fs::write(&cert, c.cert.pem()).unwrap();
    std::fs::write(&key, c.signing_key.serialize_pem()).unwrap();
    Pair {
        der: c.cert.der().clone(),
        cert,
        key,
    }
}

/// A client that trusts only `anchor`.
fn trusting(anchor: &CertificateDer<'static>) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(anchor.clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// Handshakes with `addr`; the certificate the server presented, or the
/// handshake error.
async fn presented(
    client: &tokio_rustls::TlsConnector,
    addr: std::net::SocketAddr,
) -> Result<CertificateDer<'static>, std::io::Error> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").unwrap();
    let tls = client.connect(name, tcp).await?;
    Ok(tls.get_ref().1.peer_certificates().unwrap()[0].clone())
}

#[tokio::test]
async fn next_handshake_presents_the_reloaded_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let a = pair(dir.path(), "a");
    let b = pair(dir.path(), "b");
    let store = CertStore::load(&a.cert, &a.key).unwrap();
    let localhost = "127.0.0.1:0".parse().unwrap();
    let (transports, _events) = Transports::start(Config {
        tls: vec![localhost],
        wss: vec![localhost],
        server_tls: Some(store.server_config()),
        ..Default::default()
    })
    .await
    .unwrap();
    let addr = |kind| {
        transports
            .local_addrs()
            .iter()
            .find(|(t, _)| *t == kind)
            .unwrap()
            .1
    };
    let (tls, wss) = (addr(Transport::Tls), addr(Transport::Wss));
    let (trusts_a, trusts_b) = (trusting(&a.der), trusting(&b.der));

    assert_eq!(presented(&trusts_a, tls).await.unwrap(), a.der);
    // Kept open across the reload: an established connection keeps its
    // session.
    let tcp = TcpStream::connect(tls).await.unwrap();
    let kept = trusts_a
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();

    // A key that is not B's: refused, A stays.
    let e = store.reload(&b.cert, &a.key).unwrap_err();
    assert!(matches!(e, TlsError::BadKey { .. }), "{e}");
    assert_eq!(presented(&trusts_a, tls).await.unwrap(), a.der);

    let info = store.reload(&b.cert, &b.key).unwrap();
    assert_eq!(info, store.info());
    for listener in [tls, wss] {
        assert_eq!(presented(&trusts_b, listener).await.unwrap(), b.der);
        assert!(
            presented(&trusts_a, listener).await.is_err(),
            "A no longer presented on {listener}"
        );
    }
    assert_eq!(kept.get_ref().1.peer_certificates().unwrap()[0], a.der);
}
