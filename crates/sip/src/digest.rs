//! Digest authentication (RFC 7616 / RFC 8760, RFC 2617 compatible) as used
//! by SIP (RFC 3261 §22).
//!
//! Sans-IO: nothing here reads a clock or a random source. Callers pass the
//! current time and fresh random bytes (salts, cnonces) in.
//!
//! Server flow:
//! 1. Send one challenge per supported algorithm, SHA-256 first (RFC 8760):
//!    [`format_challenges`] with a nonce from [`NonceSigner::issue`].
//! 2. On a request carrying credentials, [`parse_credentials`], look up the
//!    user's [`StoredHa1`] for `creds.username` / `creds.realm`, then call
//!    [`NonceSigner::authenticate`]. On [`AuthOutcome::Stale`] challenge again
//!    with `stale=true`.
//!
//! Client flow (toward a trunk): collect the challenge header values of a
//! 401/407, pick one with [`select_challenge`] (prefers SHA-256), then build
//! the header value with [`authorize`].

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use md5::Md5;
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Longest header value the parsers accept; real Digest headers are well
/// under 1 KiB, so anything bigger is hostile or broken.
pub const MAX_HEADER_LEN: usize = 4096;

/// Most `name=value` pairs the parsers accept in one header value.
pub const MAX_PARAMS: usize = 32;

/// How far in the future a nonce timestamp may lie before it is rejected.
/// Covers clock steps between nodes sharing a nonce secret.
pub const NONCE_FUTURE_SKEW_SECS: u64 = 5;

/// Why a Digest header could not be parsed or produced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// The header value exceeds [`MAX_HEADER_LEN`].
    #[error("header value is {len} bytes, limit is {max}")]
    TooLong {
        /// Length of the rejected value.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The header value has more than [`MAX_PARAMS`] parameters.
    #[error("more than {max} parameters")]
    TooManyParams {
        /// The limit.
        max: usize,
    },
    /// The authentication scheme is not `Digest` (e.g. `Basic`).
    #[error("authentication scheme is not Digest")]
    NotDigest,
    /// The value does not follow the `scheme name=value, ...` grammar.
    #[error("malformed header at byte {offset}: expected {expected}")]
    Syntax {
        /// Byte offset into the header value.
        offset: usize,
        /// What the parser was looking for.
        expected: &'static str,
    },
    /// A parameter the scheme requires is absent.
    #[error("missing required parameter `{0}`")]
    MissingParam(&'static str),
    /// A parameter occurs twice (RFC 7235 §2.1 forbids it).
    #[error("parameter `{0}` occurs more than once")]
    DuplicateParam(&'static str),
    /// The `algorithm` is not one of MD5, MD5-sess, SHA-256, SHA-256-sess.
    #[error("unsupported algorithm `{0}`")]
    UnsupportedAlgorithm(String),
    /// The `qop` is not usable (only `auth` is computed).
    #[error("unsupported qop `{0}`")]
    UnsupportedQop(String),
    /// `nc` is not 8 hex digits (or is zero when building credentials).
    #[error("nc must be 8 hex digits from 00000001, got `{0}`")]
    InvalidNonceCount(String),
    /// A value to be sent contains control characters or is empty where it
    /// must not be.
    #[error("invalid value for `{0}`")]
    InvalidValue(&'static str),
    /// No challenge was offered at all.
    #[error("no Digest challenge offered")]
    NoChallenge,
}

/// Digest hash algorithm (RFC 7616 §3.2, RFC 8760).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// `MD5`; also what an absent `algorithm` parameter means.
    Md5,
    /// `MD5-sess`.
    Md5Sess,
    /// `SHA-256`.
    Sha256,
    /// `SHA-256-sess`.
    Sha256Sess,
}

impl Algorithm {
    /// Parses an `algorithm` value, case-insensitively.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Md5, Self::Md5Sess, Self::Sha256, Self::Sha256Sess]
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(s))
    }

    /// Canonical spelling, as sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Md5 => "MD5",
            Self::Md5Sess => "MD5-sess",
            Self::Sha256 => "SHA-256",
            Self::Sha256Sess => "SHA-256-sess",
        }
    }

    /// Whether HA1 is re-keyed with nonce and cnonce (`-sess` variants).
    pub fn is_session(self) -> bool {
        matches!(self, Self::Md5Sess | Self::Sha256Sess)
    }

    /// Length of a hash in lowercase hex: 32 for MD5, 64 for SHA-256.
    pub fn hex_len(self) -> usize {
        match self {
            Self::Md5 | Self::Md5Sess => 32,
            Self::Sha256 | Self::Sha256Sess => 64,
        }
    }

    fn is_sha256(self) -> bool {
        matches!(self, Self::Sha256 | Self::Sha256Sess)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s).ok_or_else(|| DigestError::UnsupportedAlgorithm(excerpt(s)))
    }
}

/// Quality of protection chosen in credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Qop {
    /// `auth`: request line only.
    Auth,
    /// `auth-int`: also the body. Parsed, but never verified or produced
    /// because the body hash is not available here.
    AuthInt,
}

impl Qop {
    /// Parses a qop token, case-insensitively.
    pub fn parse(s: &str) -> Option<Self> {
        if s.eq_ignore_ascii_case("auth") {
            Some(Self::Auth)
        } else if s.eq_ignore_ascii_case("auth-int") {
            Some(Self::AuthInt)
        } else {
            None
        }
    }

    /// Canonical spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::AuthInt => "auth-int",
        }
    }
}

impl fmt::Display for Qop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parsed `Authorization` / `Proxy-Authorization` value, borrowing from the
/// header where no unescaping was needed. Also the builder for outgoing
/// credentials: its `Display` is the header value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials<'a> {
    /// `username`.
    pub username: Cow<'a, str>,
    /// `realm`.
    pub realm: Cow<'a, str>,
    /// `nonce`, as issued by the server.
    pub nonce: Cow<'a, str>,
    /// `uri` (digest-uri); the server should compare it with the Request-URI.
    pub uri: Cow<'a, str>,
    /// `response`: the request digest in hex.
    pub response: Cow<'a, str>,
    /// `algorithm`; MD5 when absent.
    pub algorithm: Algorithm,
    /// `cnonce`; required when `qop` is present.
    pub cnonce: Option<Cow<'a, str>>,
    /// `opaque`, echoed from the challenge.
    pub opaque: Option<Cow<'a, str>>,
    /// `qop`; `None` is the RFC 2069 form.
    pub qop: Option<Qop>,
    /// `nc` exactly as sent (8 hex digits), since the digest covers the
    /// literal text rather than the number.
    pub nc: Option<Cow<'a, str>>,
}

impl Credentials<'_> {
    /// Numeric value of `nc`, if present.
    pub fn nonce_count(&self) -> Option<u32> {
        self.nc
            .as_deref()
            .and_then(|nc| u32::from_str_radix(nc, 16).ok())
    }

    /// Detaches from the header buffer.
    pub fn into_owned(self) -> Credentials<'static> {
        Credentials {
            username: owned(self.username),
            realm: owned(self.realm),
            nonce: owned(self.nonce),
            uri: owned(self.uri),
            response: owned(self.response),
            algorithm: self.algorithm,
            cnonce: self.cnonce.map(owned),
            opaque: self.opaque.map(owned),
            qop: self.qop,
            nc: self.nc.map(owned),
        }
    }
}

impl fmt::Display for Credentials<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Digest username=")?;
        write_quoted(f, &self.username)?;
        f.write_str(", realm=")?;
        write_quoted(f, &self.realm)?;
        f.write_str(", nonce=")?;
        write_quoted(f, &self.nonce)?;
        f.write_str(", uri=")?;
        write_quoted(f, &self.uri)?;
        f.write_str(", response=")?;
        write_quoted(f, &self.response)?;
        write!(f, ", algorithm={}", self.algorithm)?;
        if let Some(cnonce) = &self.cnonce {
            f.write_str(", cnonce=")?;
            write_quoted(f, cnonce)?;
        }
        if let Some(opaque) = &self.opaque {
            f.write_str(", opaque=")?;
            write_quoted(f, opaque)?;
        }
        // qop and nc are tokens: RFC 7616 §3.4 forbids quoting them.
        if let Some(qop) = self.qop {
            write!(f, ", qop={qop}")?;
        }
        if let Some(nc) = &self.nc {
            f.write_str(", nc=")?;
            write_token(f, nc)?;
        }
        Ok(())
    }
}

/// Parsed `WWW-Authenticate` / `Proxy-Authenticate` value (one challenge, as
/// SIP sends one per header field). Its `Display` is the header value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge<'a> {
    /// `realm`.
    pub realm: Cow<'a, str>,
    /// `nonce`.
    pub nonce: Cow<'a, str>,
    /// `algorithm`; MD5 when absent.
    pub algorithm: Algorithm,
    /// `qop` options as sent (comma-separated); `None` is the RFC 2069 form.
    pub qop: Option<Cow<'a, str>>,
    /// `opaque`, to be echoed in the credentials.
    pub opaque: Option<Cow<'a, str>>,
    /// `stale=true`: the previous credentials were right but the nonce
    /// expired, so retry without asking the user again.
    pub stale: bool,
    /// `domain` (space-separated URIs), as sent.
    pub domain: Option<Cow<'a, str>>,
}

impl Challenge<'_> {
    /// The individual qop options offered.
    pub fn qop_options(&self) -> impl Iterator<Item = &str> {
        self.qop
            .as_deref()
            .unwrap_or("")
            .split(',')
            .map(|t| t.trim_matches(is_ws_char))
            .filter(|t| !t.is_empty())
    }

    /// Whether `qop` lists `wanted`.
    pub fn offers(&self, wanted: Qop) -> bool {
        self.qop_options().any(|t| Qop::parse(t) == Some(wanted))
    }

    /// Detaches from the header buffer.
    pub fn into_owned(self) -> Challenge<'static> {
        Challenge {
            realm: owned(self.realm),
            nonce: owned(self.nonce),
            algorithm: self.algorithm,
            qop: self.qop.map(owned),
            opaque: self.opaque.map(owned),
            stale: self.stale,
            domain: self.domain.map(owned),
        }
    }
}

impl fmt::Display for Challenge<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Digest realm=")?;
        write_quoted(f, &self.realm)?;
        f.write_str(", nonce=")?;
        write_quoted(f, &self.nonce)?;
        write!(f, ", algorithm={}", self.algorithm)?;
        if let Some(qop) = &self.qop {
            f.write_str(", qop=")?;
            write_quoted(f, qop)?;
        }
        if let Some(opaque) = &self.opaque {
            f.write_str(", opaque=")?;
            write_quoted(f, opaque)?;
        }
        if self.stale {
            f.write_str(", stale=true")?;
        }
        if let Some(domain) = &self.domain {
            f.write_str(", domain=")?;
            write_quoted(f, domain)?;
        }
        Ok(())
    }
}

/// Parses an `Authorization` / `Proxy-Authorization` header value.
///
/// Requires `username`, `realm`, `nonce`, `uri` and `response`, plus `cnonce`
/// and `nc` when `qop` is present. Unknown parameters are ignored.
pub fn parse_credentials(value: &str) -> Result<Credentials<'_>, DigestError> {
    const NAMES: &[&str] = &[
        "username",
        "realm",
        "nonce",
        "uri",
        "response",
        "algorithm",
        "cnonce",
        "opaque",
        "qop",
        "nc",
    ];
    let mut slots: [Option<Cow<'_, str>>; 10] = Default::default();
    let start = after_digest_scheme(value)?;
    parse_params(value, start, |name, v| store(&mut slots, NAMES, name, v))?;
    let [username, realm, nonce, uri, response, algorithm, cnonce, opaque, qop, nc] = slots;

    let algorithm = match algorithm {
        Some(a) => a.parse()?,
        None => Algorithm::Md5,
    };
    let qop = match qop {
        Some(q) => Some(Qop::parse(&q).ok_or_else(|| DigestError::UnsupportedQop(excerpt(&q)))?),
        None => None,
    };
    if let Some(nc) = &nc {
        if nc.len() != 8 || !nc.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(DigestError::InvalidNonceCount(excerpt(nc)));
        }
    }
    if qop.is_some() {
        if cnonce.is_none() {
            return Err(DigestError::MissingParam("cnonce"));
        }
        if nc.is_none() {
            return Err(DigestError::MissingParam("nc"));
        }
    }
    Ok(Credentials {
        username: username.ok_or(DigestError::MissingParam("username"))?,
        realm: realm.ok_or(DigestError::MissingParam("realm"))?,
        nonce: nonce.ok_or(DigestError::MissingParam("nonce"))?,
        uri: uri.ok_or(DigestError::MissingParam("uri"))?,
        response: response.ok_or(DigestError::MissingParam("response"))?,
        algorithm,
        cnonce,
        opaque,
        qop,
        nc,
    })
}

/// Parses one `WWW-Authenticate` / `Proxy-Authenticate` header value.
///
/// Requires `realm` and `nonce`. Fails with
/// [`DigestError::UnsupportedAlgorithm`] for algorithms this module cannot
/// compute, so callers can skip that challenge.
pub fn parse_challenge(value: &str) -> Result<Challenge<'_>, DigestError> {
    const NAMES: &[&str] = &[
        "realm",
        "nonce",
        "algorithm",
        "qop",
        "opaque",
        "stale",
        "domain",
    ];
    let mut slots: [Option<Cow<'_, str>>; 7] = Default::default();
    let start = after_digest_scheme(value)?;
    parse_params(value, start, |name, v| store(&mut slots, NAMES, name, v))?;
    let [realm, nonce, algorithm, qop, opaque, stale, domain] = slots;

    Ok(Challenge {
        realm: realm.ok_or(DigestError::MissingParam("realm"))?,
        nonce: nonce.ok_or(DigestError::MissingParam("nonce"))?,
        algorithm: match algorithm {
            Some(a) => a.parse()?,
            None => Algorithm::Md5,
        },
        qop,
        opaque,
        stale: stale.is_some_and(|s| s.eq_ignore_ascii_case("true")),
        domain,
    })
}

/// Picks the challenge to answer from the values of all `WWW-Authenticate`
/// (or `Proxy-Authenticate`) headers of one response.
///
/// Skips non-Digest, malformed and unusable ones (unknown algorithm, or a
/// `qop` list without `auth`), then prefers SHA-256 over MD5 whatever the
/// header order, earliest first among equals. On failure returns why the last
/// candidate was rejected, or [`DigestError::NoChallenge`] when there was none.
///
/// Answers one challenge only: a response challenging for several realms
/// needs one call per realm's header values.
pub fn select_challenge<'a, I>(values: I) -> Result<Challenge<'a>, DigestError>
where
    I: IntoIterator<Item = &'a str>,
{
    let mut best: Option<Challenge<'a>> = None;
    let mut last_err = DigestError::NoChallenge;
    for value in values {
        let ch = match parse_challenge(value) {
            Ok(ch) => ch,
            Err(e) => {
                last_err = e;
                continue;
            }
        };
        if ch.qop.is_some() && !ch.offers(Qop::Auth) {
            last_err = DigestError::UnsupportedQop(excerpt(ch.qop.as_deref().unwrap_or("")));
            continue;
        }
        let better = match &best {
            None => true,
            Some(b) => ch.algorithm.is_sha256() && !b.algorithm.is_sha256(),
        };
        if better {
            best = Some(ch);
        }
    }
    best.ok_or(last_err)
}

/// Lowercase hex of `H(username ":" realm ":" password)`: the per-user secret
/// a server stores. For `-sess` algorithms this is the base value that
/// [`session_ha1`] re-keys.
pub fn ha1(alg: Algorithm, username: &str, realm: &str, password: &str) -> String {
    hash_hex(alg, &[username, realm, password])
}

/// `H(ha1 ":" nonce ":" cnonce)`, the effective HA1 for `-sess` algorithms.
pub fn session_ha1(alg: Algorithm, ha1: &str, nonce: &str, cnonce: &str) -> String {
    hash_hex(alg, &[ha1, nonce, cnonce])
}

/// `H(method ":" uri)` (qop absent or `auth`).
pub fn ha2(alg: Algorithm, method: &str, uri: &str) -> String {
    hash_hex(alg, &[method, uri])
}

/// Request digest with a qop: `H(ha1 ":" nonce ":" nc ":" cnonce ":" qop ":"
/// ha2)`. `ha1` is the effective one (after [`session_ha1`] for `-sess`).
pub fn response(
    alg: Algorithm,
    ha1: &str,
    nonce: &str,
    nc: &str,
    cnonce: &str,
    qop: Qop,
    ha2: &str,
) -> String {
    hash_hex(alg, &[ha1, nonce, nc, cnonce, qop.as_str(), ha2])
}

/// Request digest without qop (RFC 2069 form): `H(ha1 ":" nonce ":" ha2)`.
pub fn response_legacy(alg: Algorithm, ha1: &str, nonce: &str, ha2: &str) -> String {
    hash_hex(alg, &[ha1, nonce, ha2])
}

/// Checks `creds.response` against the digest computed from `ha1` (the base
/// HA1 for `creds.algorithm`'s hash, e.g. `stored.get(creds.algorithm)`).
///
/// Constant-time in the digest comparison. Accepts the RFC 2069 form without
/// qop, which RFC 3261 §22.4 keeps for backward compatibility; callers that
/// want to refuse it can check `creds.qop`. `qop=auth-int` always fails.
/// Does not look at the nonce: see [`NonceSigner::authenticate`].
#[must_use]
pub fn verify(creds: &Credentials<'_>, method: &str, ha1: &str) -> bool {
    let alg = creds.algorithm;
    if ha1.len() != alg.hex_len() {
        return false;
    }
    let mut ha1 = ha1.to_ascii_lowercase();
    if alg.is_session() {
        let Some(cnonce) = creds.cnonce.as_deref() else {
            return false;
        };
        ha1 = session_ha1(alg, &ha1, &creds.nonce, cnonce);
    }
    let ha2 = ha2(alg, method, &creds.uri);
    let expected = match creds.qop {
        None => response_legacy(alg, &ha1, &creds.nonce, &ha2),
        Some(Qop::Auth) => match (creds.nc.as_deref(), creds.cnonce.as_deref()) {
            (Some(nc), Some(cnonce)) => {
                response(alg, &ha1, &creds.nonce, nc, cnonce, Qop::Auth, &ha2)
            }
            _ => return false,
        },
        Some(Qop::AuthInt) => return false,
    };
    // Clients should send lowercase, but hex case carries no secret.
    let got = creds.response.to_ascii_lowercase();
    expected.as_bytes().ct_eq(got.as_bytes()).into()
}

/// A user's HA1 for each supported hash, which is what a server stores
/// instead of the password. Treat it as password-equivalent: `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredHa1 {
    /// Lowercase hex `MD5(username:realm:password)`.
    pub md5: String,
    /// Lowercase hex `SHA-256(username:realm:password)`.
    pub sha256: String,
}

impl StoredHa1 {
    /// Derives both hashes; the password is not kept.
    pub fn from_password(username: &str, realm: &str, password: &str) -> Self {
        Self {
            md5: ha1(Algorithm::Md5, username, realm, password),
            sha256: ha1(Algorithm::Sha256, username, realm, password),
        }
    }

    /// The HA1 to use with `alg` (the `-sess` variants share the base hash).
    pub fn get(&self, alg: Algorithm) -> &str {
        if alg.is_sha256() {
            &self.sha256
        } else {
            &self.md5
        }
    }
}

impl fmt::Debug for StoredHa1 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StoredHa1 { .. }")
    }
}

/// What the client proves knowledge of.
#[derive(Clone, Copy)]
pub enum Secret<'a> {
    /// The clear password.
    Password(&'a str),
    /// Precomputed HA1s; must have been derived with the challenge's realm.
    Ha1(&'a StoredHa1),
}

impl fmt::Debug for Secret<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Password(_) => f.write_str("Password(..)"),
            Self::Ha1(_) => f.write_str("Ha1(..)"),
        }
    }
}

/// Builds the `Authorization` / `Proxy-Authorization` value answering
/// `challenge` for a request with `method` and Request-URI `uri`.
///
/// Uses `qop=auth` when offered and the RFC 2069 form when the challenge has
/// no qop. `cnonce` should be fresh random text (e.g. base64 of 16 random
/// bytes) and `nc` counts requests made with this nonce, starting at 1.
pub fn authorize(
    challenge: &Challenge<'_>,
    method: &str,
    uri: &str,
    username: &str,
    secret: Secret<'_>,
    cnonce: &str,
    nc: u32,
) -> Result<String, DigestError> {
    check_sendable("method", method)?;
    check_sendable("uri", uri)?;
    check_sendable("username", username)?;
    check_sendable("cnonce", cnonce)?;
    if nc == 0 {
        return Err(DigestError::InvalidNonceCount("00000000".into()));
    }
    let qop = match &challenge.qop {
        None => None,
        Some(_) if challenge.offers(Qop::Auth) => Some(Qop::Auth),
        Some(q) => return Err(DigestError::UnsupportedQop(excerpt(q))),
    };
    let alg = challenge.algorithm;
    let mut ha1 = match secret {
        Secret::Password(password) => ha1(alg, username, &challenge.realm, password),
        Secret::Ha1(stored) => stored.get(alg).to_ascii_lowercase(),
    };
    if alg.is_session() {
        ha1 = session_ha1(alg, &ha1, &challenge.nonce, cnonce);
    }
    let ha2 = ha2(alg, method, uri);
    let nc = format!("{nc:08x}");
    let digest = match qop {
        Some(q) => response(alg, &ha1, &challenge.nonce, &nc, cnonce, q, &ha2),
        None => response_legacy(alg, &ha1, &challenge.nonce, &ha2),
    };
    let creds = Credentials {
        username: Cow::Borrowed(username),
        realm: Cow::Borrowed(&challenge.realm),
        nonce: Cow::Borrowed(&challenge.nonce),
        uri: Cow::Borrowed(uri),
        response: Cow::Owned(digest),
        algorithm: alg,
        // -sess hashes the cnonce even without qop, so the server needs it.
        cnonce: (qop.is_some() || alg.is_session()).then_some(Cow::Borrowed(cnonce)),
        opaque: challenge.opaque.as_deref().map(Cow::Borrowed),
        qop,
        nc: qop.map(|_| Cow::Owned(nc)),
    };
    Ok(creds.to_string())
}

/// Formats one challenge with `qop="auth"`.
///
/// Control characters in the inputs are dropped so a header can never be
/// split; quotes and backslashes are escaped.
pub fn format_challenge(
    realm: &str,
    nonce: &str,
    alg: Algorithm,
    opaque: Option<&str>,
    stale: bool,
) -> String {
    Challenge {
        realm: Cow::Borrowed(realm),
        nonce: Cow::Borrowed(nonce),
        algorithm: alg,
        qop: Some(Cow::Borrowed("auth")),
        opaque: opaque.map(Cow::Borrowed),
        stale,
        domain: None,
    }
    .to_string()
}

/// The two challenges a server sends, SHA-256 then MD5 (RFC 8760: most
/// preferred first), sharing one nonce. Each goes in its own header field.
pub fn format_challenges(
    realm: &str,
    nonce: &str,
    opaque: Option<&str>,
    stale: bool,
) -> [String; 2] {
    [
        format_challenge(realm, nonce, Algorithm::Sha256, opaque, stale),
        format_challenge(realm, nonce, Algorithm::Md5, opaque, stale),
    ]
}

/// Result of [`NonceSigner::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceCheck {
    /// Issued by us and still fresh.
    Valid,
    /// Issued by us but older than the allowed age: answer with `stale=true`
    /// if the digest itself is right.
    Stale,
    /// Not ours, tampered with, malformed, or dated in the future.
    Invalid,
}

/// Result of [`NonceSigner::authenticate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthOutcome {
    /// Correct digest over a fresh nonce of ours.
    Authorized,
    /// Correct digest over an expired nonce of ours: challenge again with
    /// `stale=true`.
    Stale,
    /// The nonce is not one of ours (or is future-dated): challenge again.
    InvalidNonce,
    /// The digest is wrong: wrong password, user, realm or algorithm.
    WrongResponse,
}

const NONCE_TS_LEN: usize = 8;
const NONCE_SALT_LEN: usize = 8;
const NONCE_TAG_LEN: usize = 16;
const NONCE_RAW_LEN: usize = NONCE_TS_LEN + NONCE_SALT_LEN + NONCE_TAG_LEN;
/// base64url without padding of [`NONCE_RAW_LEN`] bytes.
const NONCE_B64_LEN: usize = (NONCE_RAW_LEN * 4).div_ceil(3);
/// Domain separation, in case the secret is ever shared with another MAC use.
const NONCE_LABEL: &[u8] = b"callgate/sip/digest-nonce/v1";

/// Issues and checks stateless nonces:
/// `base64url(timestamp_be64 || salt || HMAC-SHA256(secret, label ||
/// timestamp || salt)[..16])`, 43 characters.
///
/// Lets any node holding the secret validate a nonce without shared state.
/// It cannot detect replays within the allowed age (that needs per-nonce `nc`
/// tracking), so keep `max_age` short. The realm is not bound in: HA1
/// already binds the response to the realm.
#[derive(Clone)]
pub struct NonceSigner {
    secret: [u8; 32],
}

impl NonceSigner {
    /// Creates a signer from a 32-byte random secret.
    pub fn new(secret: [u8; 32]) -> Self {
        Self { secret }
    }

    /// Issues a nonce dated `now_unix_secs`. `salt` must be fresh random
    /// bytes so two nonces issued in the same second differ.
    pub fn issue(&self, now_unix_secs: u64, salt: [u8; 8]) -> String {
        let mut raw = [0u8; NONCE_RAW_LEN];
        raw[..NONCE_TS_LEN].copy_from_slice(&now_unix_secs.to_be_bytes());
        raw[NONCE_TS_LEN..NONCE_TS_LEN + NONCE_SALT_LEN].copy_from_slice(&salt);
        let tag = self.tag(&raw[..NONCE_TS_LEN + NONCE_SALT_LEN]);
        raw[NONCE_TS_LEN + NONCE_SALT_LEN..].copy_from_slice(&tag);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Checks a nonce at time `now_unix_secs`: [`NonceCheck::Stale`] once it
    /// is more than `max_age_secs` old, [`NonceCheck::Invalid`] if the MAC
    /// does not match (constant-time) or it is dated more than
    /// [`NONCE_FUTURE_SKEW_SECS`] ahead.
    #[must_use]
    pub fn check(&self, nonce: &str, now_unix_secs: u64, max_age_secs: u64) -> NonceCheck {
        // Length first: bounds the decode work for hostile input.
        if nonce.len() != NONCE_B64_LEN {
            return NonceCheck::Invalid;
        }
        // The decoder wants room for its length estimate, one byte more.
        let mut raw = [0u8; NONCE_RAW_LEN + 1];
        match URL_SAFE_NO_PAD.decode_slice(nonce, &mut raw) {
            Ok(NONCE_RAW_LEN) => {}
            _ => return NonceCheck::Invalid,
        }
        let (signed, rest) = raw.split_at(NONCE_TS_LEN + NONCE_SALT_LEN);
        let tag = self.tag(signed);
        if !bool::from(tag.ct_eq(&rest[..NONCE_TAG_LEN])) {
            return NonceCheck::Invalid;
        }
        let mut ts = [0u8; NONCE_TS_LEN];
        ts.copy_from_slice(&signed[..NONCE_TS_LEN]);
        let issued = u64::from_be_bytes(ts);
        if issued > now_unix_secs.saturating_add(NONCE_FUTURE_SKEW_SECS) {
            NonceCheck::Invalid
        } else if now_unix_secs.saturating_sub(issued) > max_age_secs {
            NonceCheck::Stale
        } else {
            NonceCheck::Valid
        }
    }

    /// Full server-side check of `creds` for a request with `method`: nonce
    /// first, then the digest against `ha1` (see [`verify`]).
    ///
    /// Stale is reported only when the digest is right, as RFC 7616 §3.3
    /// requires for `stale=true`. The caller still has to match `creds.uri`
    /// against the Request-URI and `creds.realm` against its own realm.
    #[must_use]
    pub fn authenticate(
        &self,
        creds: &Credentials<'_>,
        method: &str,
        ha1: &str,
        now_unix_secs: u64,
        max_age_secs: u64,
    ) -> AuthOutcome {
        let nonce = self.check(&creds.nonce, now_unix_secs, max_age_secs);
        if nonce == NonceCheck::Invalid {
            return AuthOutcome::InvalidNonce;
        }
        if !verify(creds, method, ha1) {
            return AuthOutcome::WrongResponse;
        }
        match nonce {
            NonceCheck::Valid => AuthOutcome::Authorized,
            _ => AuthOutcome::Stale,
        }
    }

    fn tag(&self, signed: &[u8]) -> [u8; NONCE_TAG_LEN] {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.secret)
            .expect("HMAC accepts keys of any length");
        mac.update(NONCE_LABEL);
        mac.update(signed);
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; NONCE_TAG_LEN];
        tag.copy_from_slice(&full[..NONCE_TAG_LEN]);
        tag
    }
}

impl fmt::Debug for NonceSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NonceSigner { .. }")
    }
}

// ---------------------------------------------------------------------------
// Hashing helpers

fn hash_hex(alg: Algorithm, parts: &[&str]) -> String {
    if alg.is_sha256() {
        hash_parts::<Sha256>(parts)
    } else {
        hash_parts::<Md5>(parts)
    }
}

/// Hashes `parts` joined with ':' without building the joined string.
fn hash_parts<D: sha2::Digest>(parts: &[&str]) -> String {
    let mut h = D::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            h.update(b":");
        }
        h.update(part.as_bytes());
    }
    to_hex(&h.finalize())
}

fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    s
}

// ---------------------------------------------------------------------------
// Parsing helpers

fn is_ws(b: u8) -> bool {
    // SIP LWS may still contain a folded CRLF if the header was not unfolded.
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_ws_char(c: char) -> bool {
    u8::try_from(c).is_ok_and(is_ws)
}

/// RFC 3261 `token` characters.
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}

/// Characters of an unquoted value. Wider than `token` because peers send
/// base64 nonces or URIs unquoted; only delimiters and controls end it.
fn is_bare_value(b: u8) -> bool {
    b > b' ' && b != 0x7f && b != b',' && b != b'"'
}

/// Checks length and the scheme, returning the offset where parameters start.
fn after_digest_scheme(value: &str) -> Result<usize, DigestError> {
    if value.len() > MAX_HEADER_LEN {
        return Err(DigestError::TooLong {
            len: value.len(),
            max: MAX_HEADER_LEN,
        });
    }
    let b = value.as_bytes();
    let mut i = 0;
    while i < b.len() && is_ws(b[i]) {
        i += 1;
    }
    let start = i;
    while i < b.len() && is_token(b[i]) {
        i += 1;
    }
    if i == start {
        return Err(DigestError::Syntax {
            offset: i,
            expected: "authentication scheme",
        });
    }
    if !value[start..i].eq_ignore_ascii_case("Digest") {
        return Err(DigestError::NotDigest);
    }
    if i < b.len() && !is_ws(b[i]) {
        return Err(DigestError::Syntax {
            offset: i,
            expected: "whitespace after scheme",
        });
    }
    Ok(i)
}

/// Walks `name = value` pairs separated by commas from byte `i`, tolerating
/// LWS around `=` and `,` and empty list elements (RFC 7230 §7).
fn parse_params<'a>(
    s: &'a str,
    mut i: usize,
    mut each: impl FnMut(&'a str, Cow<'a, str>) -> Result<(), DigestError>,
) -> Result<(), DigestError> {
    let b = s.as_bytes();
    let skip_ws = |mut i: usize| {
        while i < b.len() && is_ws(b[i]) {
            i += 1;
        }
        i
    };
    let mut count = 0;
    loop {
        while i < b.len() && (is_ws(b[i]) || b[i] == b',') {
            i += 1;
        }
        if i == b.len() {
            return Ok(());
        }
        let name_start = i;
        while i < b.len() && is_token(b[i]) {
            i += 1;
        }
        if i == name_start {
            return Err(DigestError::Syntax {
                offset: i,
                expected: "parameter name",
            });
        }
        let name = &s[name_start..i];
        i = skip_ws(i);
        if b.get(i) != Some(&b'=') {
            return Err(DigestError::Syntax {
                offset: i,
                expected: "'='",
            });
        }
        i = skip_ws(i + 1);
        let value = match b.get(i) {
            Some(b'"') => {
                let (v, end) = parse_quoted(s, i)?;
                i = end;
                v
            }
            Some(&c) if is_bare_value(c) => {
                let start = i;
                while i < b.len() && is_bare_value(b[i]) {
                    i += 1;
                }
                Cow::Borrowed(&s[start..i])
            }
            _ => {
                return Err(DigestError::Syntax {
                    offset: i,
                    expected: "parameter value",
                })
            }
        };
        count += 1;
        if count > MAX_PARAMS {
            return Err(DigestError::TooManyParams { max: MAX_PARAMS });
        }
        each(name, value)?;
        i = skip_ws(i);
        if i < b.len() && b[i] != b',' {
            return Err(DigestError::Syntax {
                offset: i,
                expected: "',' or end of header",
            });
        }
    }
}

/// Parses the quoted string opening at byte `open`; returns the unescaped
/// content and the offset just past the closing quote. Borrows unless a
/// backslash escape forces a copy.
fn parse_quoted(s: &str, open: usize) -> Result<(Cow<'_, str>, usize), DigestError> {
    let b = s.as_bytes();
    let mut i = open + 1;
    let mut escaped = false;
    // Byte scan is safe for UTF-8: bytes of multi-byte characters are never
    // '"' or '\\', so skipping one after a backslash cannot mis-split.
    loop {
        match b.get(i) {
            None => {
                return Err(DigestError::Syntax {
                    offset: i.min(b.len()),
                    expected: "closing '\"'",
                })
            }
            Some(b'"') => break,
            Some(b'\\') => {
                escaped = true;
                i += 2;
            }
            Some(_) => i += 1,
        }
    }
    let inner = &s[open + 1..i];
    let value = if escaped {
        let mut out = String::with_capacity(inner.len());
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                out.extend(chars.next());
            } else {
                out.push(c);
            }
        }
        Cow::Owned(out)
    } else {
        Cow::Borrowed(inner)
    };
    Ok((value, i + 1))
}

/// Puts `value` into the slot of `name` (case-insensitive) within `names`;
/// unknown names are extensions and are ignored.
fn store<'a>(
    slots: &mut [Option<Cow<'a, str>>],
    names: &[&'static str],
    name: &str,
    value: Cow<'a, str>,
) -> Result<(), DigestError> {
    if let Some(idx) = names.iter().position(|n| n.eq_ignore_ascii_case(name)) {
        if slots[idx].is_some() {
            return Err(DigestError::DuplicateParam(names[idx]));
        }
        slots[idx] = Some(value);
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Formatting helpers

/// Writes a quoted-string, escaping '"' and '\\' and dropping control
/// characters so the header cannot be split or terminated early.
fn write_quoted(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_str("\"")?;
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                f.write_str("\\")?;
                fmt::Write::write_char(f, c)?;
            }
            c if c.is_ascii_control() => {}
            c => fmt::Write::write_char(f, c)?,
        }
    }
    f.write_str("\"")
}

/// Writes a value that must be a token, dropping anything that is not.
fn write_token(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    for b in s.bytes().filter(|&b| is_token(b)) {
        fmt::Write::write_char(f, char::from(b))?;
    }
    Ok(())
}

/// Rejects values that would be altered when written into a header.
fn check_sendable(field: &'static str, value: &str) -> Result<(), DigestError> {
    if value.is_empty() || value.chars().any(|c| c.is_ascii_control()) {
        return Err(DigestError::InvalidValue(field));
    }
    Ok(())
}

fn owned(c: Cow<'_, str>) -> Cow<'static, str> {
    Cow::Owned(c.into_owned())
}

/// Short copy of untrusted input for error messages.
fn excerpt(s: &str) -> String {
    const MAX: usize = 32;
    match s.char_indices().nth(MAX) {
        Some((end, _)) => format!("{}...", &s[..end]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_length_constant_matches_encoding() {
        let n = NonceSigner::new([7; 32]).issue(0, [0; 8]);
        assert_eq!(n.len(), NONCE_B64_LEN);
        assert_eq!(NONCE_B64_LEN, 43);
    }

    #[test]
    fn quoted_escape_before_multibyte_char() {
        let (v, end) = parse_quoted(r#""a\é\"b" rest"#, 0).unwrap();
        assert_eq!(v, "aé\"b");
        assert_eq!(end, 9);
    }

    #[test]
    fn excerpt_truncates_on_char_boundary() {
        let long = "é".repeat(40);
        let e = excerpt(&long);
        assert!(e.ends_with("..."));
        assert_eq!(e.chars().count(), 35);
    }
}
