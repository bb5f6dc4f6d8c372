//! The relay's DTLS certificate and SHA-256 certificate fingerprints.
//!
//! WebRTC authenticates DTLS by the `a=fingerprint` of each side's SDP
//! (RFC 8122), not by a CA, so one self-signed ECDSA P-256 certificate
//! serves every leg: [`DtlsCertificate::process`] makes it on first use.
//! P-256 because every browser accepts it and its signatures are cheap.

use std::fmt;
use std::sync::{Arc, OnceLock};

use rtc_dtls::crypto::{Certificate, CryptoPrivateKey};
use rtc_dtls::crypto_provider::providers::RingProvider;
use rtc_dtls::crypto_provider::RTCCryptoProvider;

/// Why a certificate could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    /// Key generation or self-signing failed.
    #[error("certificate generation failed: {0}")]
    Generate(String),
    /// The DTLS stack refused the key.
    #[error("the DTLS stack rejected the key: {0}")]
    Import(String),
}

/// A SHA-256 certificate fingerprint, as in `a=fingerprint:sha-256`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

/// The text is not 32 hex bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a SHA-256 fingerprint in hex")]
pub struct BadFingerprint;

impl Fingerprint {
    /// The fingerprint of a DER-encoded certificate.
    pub fn of_der(der: &[u8]) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, der);
        let mut out = [0; 32];
        out.copy_from_slice(digest.as_ref());
        Self(out)
    }

    /// Parses the value of `a=fingerprint:sha-256` (`AB:CD:...`); colons are
    /// optional and case does not matter (RFC 8122 §5 says upper case, not
    /// every implementation does).
    pub fn parse(text: &str) -> Result<Self, BadFingerprint> {
        let mut out = [0; 32];
        let mut digits = text.trim().bytes().filter(|b| *b != b':');
        for byte in &mut out {
            let hi = digits.next().and_then(hex_value).ok_or(BadFingerprint)?;
            let lo = digits.next().and_then(hex_value).ok_or(BadFingerprint)?;
            *byte = hi << 4 | lo;
        }
        if digits.next().is_some() {
            return Err(BadFingerprint);
        }
        Ok(Self(out))
    }
}

fn hex_value(digit: u8) -> Option<u8> {
    char::from(digit).to_digit(16).map(|v| v as u8)
}

/// SDP form: colon-separated upper-case hex.
impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl std::str::FromStr for Fingerprint {
    type Err = BadFingerprint;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// A self-signed ECDSA P-256 certificate with its key, ready for DTLS.
#[derive(Clone)]
pub struct DtlsCertificate {
    dtls: Certificate,
    fingerprint: Fingerprint,
    provider: Arc<dyn RTCCryptoProvider>,
}

impl fmt::Debug for DtlsCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DtlsCertificate")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

static PROCESS_CERTIFICATE: OnceLock<DtlsCertificate> = OnceLock::new();

impl DtlsCertificate {
    /// A new certificate and key. Most callers want [`Self::process`].
    pub fn generate() -> Result<Self, CertError> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| CertError::Generate(e.to_string()))?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
            .map_err(|e| CertError::Generate(e.to_string()))?;
        // Browsers put a fixed CN too; it carries no identity here.
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "callgate");
        let cert = params
            .self_signed(&key)
            .map_err(|e| CertError::Generate(e.to_string()))?;
        let provider: Arc<dyn RTCCryptoProvider> = Arc::new(RingProvider::new());
        let private_key = CryptoPrivateKey::from_key_pair(&key, provider.crypto())
            .map_err(|e| CertError::Import(e.to_string()))?;
        let der = cert.der().clone();
        Ok(Self {
            fingerprint: Fingerprint::of_der(&der),
            dtls: Certificate {
                certificate: vec![der],
                private_key,
            },
            provider,
        })
    }

    /// The process-wide certificate, made on the first call. Sharing one is
    /// what browsers do per peer connection and costs nothing in security:
    /// each handshake still has fresh ECDHE keys.
    pub fn process() -> Result<&'static Self, CertError> {
        if let Some(cert) = PROCESS_CERTIFICATE.get() {
            return Ok(cert);
        }
        // Racing first calls each generate; one wins and all return it.
        let cert = Self::generate()?;
        Ok(PROCESS_CERTIFICATE.get_or_init(|| cert))
    }

    /// Our `a=fingerprint:sha-256` value.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// The certificate in DER.
    pub fn der(&self) -> &[u8] {
        &self.dtls.certificate[0]
    }

    pub(crate) fn dtls(&self) -> &Certificate {
        &self.dtls
    }

    pub(crate) fn provider(&self) -> &Arc<dyn RTCCryptoProvider> {
        &self.provider
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_round_trips_through_sdp_form() {
        let fp = Fingerprint(core::array::from_fn(|i| (i * 7 + 0xa0) as u8));
        let text = fp.to_string();
        assert_eq!(text.len(), 32 * 3 - 1);
        assert!(text.starts_with("A0:A7:AE:"));
        assert_eq!(Fingerprint::parse(&text), Ok(fp));
        assert_eq!(Fingerprint::parse(&text.to_lowercase()), Ok(fp));
        assert_eq!(Fingerprint::parse(&text.replace(':', "")), Ok(fp));
    }

    #[test]
    fn bad_fingerprints_are_rejected() {
        let good = "AB:".repeat(31) + "AB";
        assert!(Fingerprint::parse(&good).is_ok());
        for bad in [
            "",
            "AB",
            &(good.clone() + ":AB"),
            &good.replacen('A', "G", 1),
            &good[..good.len() - 1],
            "sha-256 AB",
        ] {
            assert_eq!(Fingerprint::parse(bad), Err(BadFingerprint), "{bad}");
        }
    }

    #[test]
    fn generated_certificate_is_p256_and_fingerprinted() {
        let cert = DtlsCertificate::generate().unwrap();
        assert_eq!(cert.fingerprint(), Fingerprint::of_der(cert.der()));
        // id-ecPublicKey and prime256v1 OIDs in the SubjectPublicKeyInfo.
        let der = cert.der();
        let ec_public_key = [0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
        let prime256v1 = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
        assert!(der.windows(9).any(|w| w == ec_public_key));
        assert!(der.windows(10).any(|w| w == prime256v1));
        assert_ne!(
            DtlsCertificate::generate().unwrap().fingerprint(),
            cert.fingerprint()
        );
    }

    #[test]
    fn process_certificate_is_made_once() {
        let a = DtlsCertificate::process().unwrap();
        let b = DtlsCertificate::process().unwrap();
        assert!(std::ptr::eq(a, b));
    }
}
