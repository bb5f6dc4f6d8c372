//! Gateway configuration: embedded defaults, optionally overridden by a TOML
//! file (`callgate --config FILE`). Every value is validated at load time and
//! a bad one is refused with the offending field named.

use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

/// A `[[trunks]]` table: the same document `POST /api/v1/trunks` takes.
pub use web::TrunkDef;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("config field `{field}`: {message}")]
    Invalid { field: String, message: String },
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// The whole configuration. Missing sections take their defaults.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Directory holding the SQLite store, generated certificate and secrets.
    pub data_dir: PathBuf,
    pub sip: SipConfig,
    pub media: MediaConfig,
    pub admin: AdminConfig,
    pub health: HealthConfig,
    pub service: ServiceConfig,
    /// Users provisioned at start (idempotent).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<UserConfig>,
    /// SIP trunks provisioned at start (see [`crate::trunks::provision`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trunks: Vec<TrunkDef>,
    /// Inbound numbers provisioned at start.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dids: Vec<DidDef>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SipConfig {
    /// SIP domain (and digest realm) served by the registrar.
    pub domain: String,
    pub udp: Vec<SocketAddr>,
    pub tcp: Vec<SocketAddr>,
    pub tls: Vec<SocketAddr>,
    pub wss: Vec<SocketAddr>,
    /// PEM certificate chain and key for TLS and WSS; generated when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// Digest challenge algorithms in order of preference: "SHA-256", "MD5".
    /// Some older phones read only the first challenge and know only MD5.
    pub digest_algorithms: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MediaConfig {
    /// Relay media through the gateway (browser DTLS-SRTP to trunk RTP),
    /// the default; `false` passes SDP untouched and endpoints talk
    /// directly.
    pub relay: bool,
    pub port_min: u16,
    pub port_max: u16,
    /// Address written into SDP; set it on hosts behind 1:1 NAT.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advertised_address: Option<IpAddr>,
    /// Seconds without media after which a relayed call counts as dead;
    /// 0 turns the check off.
    pub timeout_secs: u32,
    /// Plain (trunk) legs take media only from the address in the peer's
    /// SDP instead of latching to the first source.
    pub strict_source: bool,
    /// Codecs a browser's offer is narrowed to toward trunks and phones
    /// (encoding names; no transcoding).
    pub trunk_codecs: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    pub listen: SocketAddr,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub name: String,
    pub password: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

/// A `[[dids]]` table: calls to `number` arriving over `trunk` ring `user`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DidDef {
    /// Digits with an optional leading `+`, as the provider sends it.
    pub number: String,
    /// A trunk of `[[trunks]]` or one already in the database.
    pub trunk: String,
    /// A user of `[[users]]` or one already in the database.
    pub user: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("callgate-data"),
            sip: SipConfig::default(),
            media: MediaConfig::default(),
            admin: AdminConfig::default(),
            health: HealthConfig::default(),
            service: ServiceConfig::default(),
            users: Vec::new(),
            trunks: Vec::new(),
            dids: Vec::new(),
        }
    }
}

impl Default for SipConfig {
    fn default() -> Self {
        let any = |port| SocketAddr::from(([0, 0, 0, 0], port));
        SipConfig {
            domain: "callgate.local".into(),
            udp: vec![any(5060)],
            tcp: vec![any(5060)],
            tls: vec![any(5061)],
            wss: vec![any(7443)],
            tls_cert: None,
            tls_key: None,
            digest_algorithms: vec!["SHA-256".into(), "MD5".into()],
        }
    }
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            relay: true,
            port_min: 30000,
            port_max: 39999,
            advertised_address: None,
            timeout_secs: 60,
            strict_source: false,
            trunk_codecs: ["PCMU", "PCMA", "G722", "telephone-event"]
                .map(String::from)
                .to_vec(),
        }
    }
}

/// The plain-HTTP listener for ops tooling: `/healthz`, `/readyz` and
/// `/metrics` without authentication, so bind it to loopback or an ops
/// network.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// `None` (omit the key) disables it; the admin listener serves the
    /// same endpoints behind the API token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 9090))),
        }
    }
}

/// Process behaviour under a service manager.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceConfig {
    /// On SIGTERM, how long calls in progress may go on (new ones get 503)
    /// before the rest are ended with BYE.
    pub drain_secs: u32,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig { drain_secs: 30 }
    }
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 8443)),
        }
    }
}

impl Config {
    /// Load a TOML file over the defaults and validate it.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text).map_err(|e| match e {
            ConfigError::Syntax { message, .. } => ConfigError::Syntax {
                path: path.to_owned(),
                message,
            },
            other => other,
        })
    }

    /// Parse TOML text over the defaults and validate it.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: PathBuf::new(),
            message: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Semantic checks that serde cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.service.drain_secs > 3600 {
            return Err(invalid("service.drain_secs", "must be 0 to 3600 seconds"));
        }
        if let Some(h) = self.health.listen {
            if h.port() == self.admin.listen.port()
                && (h.ip() == self.admin.listen.ip()
                    || h.ip().is_unspecified()
                    || self.admin.listen.ip().is_unspecified())
            {
                return Err(invalid("health.listen", "must differ from admin.listen"));
            }
        }
        if self.data_dir.as_os_str().is_empty() {
            return Err(invalid("data_dir", "must not be empty"));
        }
        let domain = &self.sip.domain;
        if domain.is_empty()
            || domain.len() > 253
            || !domain
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        {
            return Err(invalid(
                "sip.domain",
                format!("`{domain}` is not a valid host name"),
            ));
        }
        if self.sip.tls_cert.is_some() != self.sip.tls_key.is_some() {
            return Err(invalid(
                "sip.tls_cert",
                "tls_cert and tls_key must be given together",
            ));
        }
        if self.sip.digest_algorithms.is_empty() {
            return Err(invalid(
                "sip.digest_algorithms",
                "name at least one algorithm",
            ));
        }
        for a in &self.sip.digest_algorithms {
            if !matches!(a.to_ascii_uppercase().as_str(), "SHA-256" | "MD5") {
                return Err(invalid(
                    "sip.digest_algorithms",
                    format!("`{a}` is not one of \"SHA-256\", \"MD5\""),
                ));
            }
        }
        let m = &self.media;
        if m.port_min < 1024 {
            return Err(invalid("media.port_min", "must be at least 1024"));
        }
        if m.port_max < m.port_min {
            return Err(invalid(
                "media.port_max",
                "must not be below media.port_min",
            ));
        }
        // Each call needs at least a pair of ports per leg.
        if u32::from(m.port_max - m.port_min) + 1 < 4 {
            return Err(invalid(
                "media.port_max",
                "range must hold at least 4 ports",
            ));
        }
        if m.advertised_address.is_some_and(|a| a.is_unspecified()) {
            return Err(invalid(
                "media.advertised_address",
                "must be a reachable address, not unspecified",
            ));
        }
        if m.timeout_secs != 0 && !MEDIA_TIMEOUT.contains(&m.timeout_secs) {
            return Err(invalid(
                "media.timeout_secs",
                format!(
                    "must be 0 (off) or {} to {} seconds",
                    MEDIA_TIMEOUT.start(),
                    MEDIA_TIMEOUT.end()
                ),
            ));
        }
        if m.trunk_codecs.is_empty() || m.trunk_codecs.len() > 32 {
            return Err(invalid(
                "media.trunk_codecs",
                "must list 1 to 32 encoding names",
            ));
        }
        for c in &m.trunk_codecs {
            if c.is_empty()
                || c.len() > 32
                || !c
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            {
                return Err(invalid(
                    "media.trunk_codecs",
                    format!("{c:?} is not an encoding name such as PCMU or telephone-event"),
                ));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (i, user) in self.users.iter().enumerate() {
            let field = |f: &str| format!("users[{i}].{f}");
            if user.name.is_empty() || user.name.len() > 64 || !user.name.bytes().all(is_user_char)
            {
                return Err(invalid(
                    field("name"),
                    format!("`{}` is not a valid SIP user name", user.name),
                ));
            }
            if !seen.insert(user.name.as_str()) {
                return Err(invalid(
                    field("name"),
                    format!("duplicate user `{}`", user.name),
                ));
            }
            if user.password.len() < 8 {
                return Err(invalid(field("password"), "must be at least 8 characters"));
            }
            if let Some(ext) = &user.extension {
                if ext.is_empty() || ext.len() > 32 || !ext.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(invalid(field("extension"), "must be 1 to 32 digits"));
                }
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (i, trunk) in self.trunks.iter().enumerate() {
            trunk
                .to_store()
                .map_err(|(f, message)| invalid(format!("trunks[{i}].{f}"), message))?;
            if !seen.insert(trunk.name.as_str()) {
                return Err(invalid(
                    format!("trunks[{i}].name"),
                    format!("duplicate trunk `{}`", trunk.name),
                ));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (i, did) in self.dids.iter().enumerate() {
            let field = |f: &str| format!("dids[{i}].{f}");
            let digits = did.number.strip_prefix('+').unwrap_or(&did.number);
            if digits.is_empty()
                || did.number.len() > store::MAX_NUMBER
                || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(invalid(
                    field("number"),
                    format!(
                        "`{}` is not digits with an optional leading +, at most {}",
                        did.number,
                        store::MAX_NUMBER
                    ),
                ));
            }
            if !seen.insert(did.number.as_str()) {
                return Err(invalid(
                    field("number"),
                    format!("duplicate DID `{}`", did.number),
                ));
            }
            if did.trunk.is_empty() {
                return Err(invalid(field("trunk"), "must name a trunk"));
            }
            if did.user.is_empty() || did.user.len() > 64 || !did.user.bytes().all(is_user_char) {
                return Err(invalid(
                    field("user"),
                    format!("`{}` is not a valid SIP user name", did.user),
                ));
            }
        }
        Ok(())
    }

    /// The effective configuration as TOML, with user and trunk passwords
    /// masked.
    pub fn to_display_toml(&self) -> String {
        let mut shown = self.clone();
        for u in &mut shown.users {
            u.password = "********".into();
        }
        for t in &mut shown.trunks {
            if let Some(p) = &mut t.password {
                *p = "********".into();
            }
        }
        toml::to_string_pretty(&shown).unwrap_or_else(|e| format!("# unprintable: {e}\n"))
    }
}

/// Allowed `media.timeout_secs` besides 0.
const MEDIA_TIMEOUT: std::ops::RangeInclusive<u32> = 5..=86_400;

/// RFC 3261 `user` characters: unreserved plus user-unreserved, unescaped.
fn is_user_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.!~*'()&=+$,;?/".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_field(text: &str) -> String {
        match Config::from_toml(text).unwrap_err() {
            ConfigError::Invalid { field, .. } => field,
            other => panic!("expected a field error, got {other}"),
        }
    }

    #[test]
    fn defaults_are_valid_and_round_trip() {
        let c = Config::default();
        c.validate().unwrap();
        let back = Config::from_toml(&c.to_display_toml()).unwrap();
        assert_eq!(back, c);
        assert_eq!(c.sip.wss[0].port(), 7443);
    }

    #[test]
    fn empty_file_gives_defaults() {
        assert_eq!(Config::from_toml("").unwrap(), Config::default());
        assert!(Config::default().media.relay, "the relay is on by default");
        assert_eq!(Config::default().media.timeout_secs, 60);
    }

    #[test]
    fn media_relay_switch() {
        let c =
            Config::from_toml("[media]\nrelay = true\nadvertised_address = \"192.0.2.1\"").unwrap();
        assert!(c.media.relay);
        let c = Config::from_toml("[media]\nrelay = false").unwrap();
        assert!(!c.media.relay);
        let e = Config::from_toml("[media]\nrelay = \"yes\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("relay"), "{e}");
    }

    #[test]
    fn media_timeout() {
        assert_eq!(
            Config::from_toml("[media]\ntimeout_secs = 0")
                .unwrap()
                .media
                .timeout_secs,
            0
        );
        assert_eq!(
            Config::from_toml("[media]\ntimeout_secs = 30")
                .unwrap()
                .media
                .timeout_secs,
            30
        );
        assert_eq!(err_field("[media]\ntimeout_secs = 2"), "media.timeout_secs");
        assert_eq!(
            err_field("[media]\ntimeout_secs = 100000"),
            "media.timeout_secs"
        );
        let e = Config::from_toml("[media]\ntimeout_secs = -1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("timeout_secs"), "{e}");
    }

    const TRUNK: &str = "[[trunks]]\nname = \"carrier\"\nhost = \"sip.example.net\"\n";

    #[test]
    fn trunks_and_dids_parse_with_defaults() {
        let c = Config::from_toml(&format!(
            "{TRUNK}\
             [[trunks]]\n\
             name = \"backup\"\n\
             host = \"192.0.2.10\"\n\
             port = 5080\n\
             transport = \"tls\"\n\
             register = true\n\
             username = \"acct\"\n\
             auth_username = \"auth-acct\"\n\
             password = \"trunk-secret\"\n\
             expiry = 600\n\
             caller_id = \"+4930123\"\n\
             from_domain = \"example.net\"\n\
             inbound_trust = [\"192.0.2.0/24\", \"2001:DB8::/32\"]\n\
             dial_patterns = [\"0[1-9]\", \"+\"]\n\
             number_rules = [\"00>+\", \">0\"]\n\
             max_calls = 4\n\
             enabled = false\n\
             [[dids]]\nnumber = \"+4930100\"\ntrunk = \"carrier\"\nuser = \"alice\"\n"
        ))
        .unwrap();
        assert_eq!(c.trunks.len(), 2);
        let t = &c.trunks[0];
        assert_eq!(t, &TrunkDef::new("carrier", "sip.example.net"));
        let s = t.to_store().unwrap();
        assert_eq!(s.port, 5060);
        assert_eq!(s.transport, store::Transport::Udp);
        assert_eq!(s.caller_id, store::CallerIdPolicy::Keep);
        assert!(s.registration.is_none());
        assert!(s.enabled);
        let s = c.trunks[1].to_store().unwrap();
        assert_eq!(s.transport, store::Transport::Tls);
        let reg = s.registration.unwrap();
        assert!(reg.enabled);
        assert_eq!(reg.auth_username.as_deref(), Some("auth-acct"));
        assert_eq!(reg.password.as_deref(), Some("trunk-secret"));
        assert_eq!(reg.expiry_secs, 600);
        assert_eq!(s.caller_id, store::CallerIdPolicy::Fixed("+4930123".into()));
        assert_eq!(
            s.number_rules,
            vec![
                store::NumberRule::new("00", "+"),
                store::NumberRule::new("", "0")
            ]
        );
        assert_eq!(s.max_calls, Some(4));
        assert!(!s.enabled);
        assert_eq!(
            c.dids,
            vec![DidDef {
                number: "+4930100".into(),
                trunk: "carrier".into(),
                user: "alice".into()
            }]
        );
        // Printed and read back, passwords aside.
        let shown = c.to_display_toml();
        assert!(!shown.contains("trunk-secret"), "{shown}");
        let mut back = Config::from_toml(&shown).unwrap();
        back.trunks[1].password = Some("trunk-secret".into());
        assert_eq!(back, c);
    }

    #[test]
    fn credentials_without_registration() {
        let c = Config::from_toml(&format!(
            "{TRUNK}username = \"acct\"\npassword = \"trunk-secret\"\n"
        ))
        .unwrap();
        let reg = c.trunks[0].to_store().unwrap().registration.unwrap();
        assert!(!reg.enabled, "credentials only answer challenges");
        assert_eq!(reg.password.as_deref(), Some("trunk-secret"));
    }

    #[test]
    fn bad_trunk_and_did_values_name_the_field() {
        let cases = [
            ("transport = \"sctp\"", "trunks[0].transport"),
            ("transport = \"wss\"", "trunks[0].transport"),
            ("port = 0", "trunks[0].port"),
            ("register = true", "trunks[0].username"),
            ("password = \"x\"", "trunks[0].password"),
            ("username = \"a b\"", "trunks[0].username"),
            ("username = \"a\"\nexpiry = 5", "trunks[0].expiry"),
            ("caller_id = \"anonymous\"", "trunks[0].caller_id"),
            ("from_domain = \"a b\"", "trunks[0].from_domain"),
            (
                "inbound_trust = [\"10.1.2.3/8\"]",
                "trunks[0].inbound_trust",
            ),
            ("dial_patterns = [\"0x\"]", "trunks[0].dial_patterns"),
            ("number_rules = [\"0049\"]", "trunks[0].number_rules"),
            ("number_rules = [\"0>a\"]", "trunks[0].number_rules"),
            ("max_calls = 0", "trunks[0].max_calls"),
        ];
        for (line, field) in cases {
            assert_eq!(err_field(&format!("{TRUNK}{line}\n")), field, "{line}");
        }
        assert_eq!(
            err_field("[[trunks]]\nname = \"a/b\"\nhost = \"h\""),
            "trunks[0].name"
        );
        assert_eq!(
            err_field("[[trunks]]\nname = \"a\"\nhost = \"h_1\""),
            "trunks[0].host"
        );
        assert_eq!(err_field(&format!("{TRUNK}{TRUNK}")), "trunks[1].name");
        let did = |n: &str, t: &str, u: &str| {
            format!("[[dids]]\nnumber = \"{n}\"\ntrunk = \"{t}\"\nuser = \"{u}\"\n")
        };
        assert_eq!(err_field(&did("12a", "t", "u")), "dids[0].number");
        assert_eq!(err_field(&did("1", "", "u")), "dids[0].trunk");
        assert_eq!(err_field(&did("1", "t", "a b")), "dids[0].user");
        assert_eq!(
            err_field(&format!("{}{}", did("1", "t", "u"), did("1", "t", "v"))),
            "dids[1].number"
        );
        for unknown in [
            format!("{TRUNK}passwd = \"x\"\n"),
            "[[dids]]\nnumber = \"1\"\ntrunk = \"t\"\nuser = \"u\"\nuesr = \"x\"\n".into(),
        ] {
            let e = Config::from_toml(&unknown).unwrap_err().to_string();
            assert!(e.contains("passwd") || e.contains("uesr"), "{e}");
        }
    }

    #[test]
    fn bad_values_name_the_field() {
        assert_eq!(err_field("[sip]\ndomain = \"bad domain\""), "sip.domain");
        assert_eq!(
            err_field("[media]\nport_min = 40000\nport_max = 30000"),
            "media.port_max"
        );
        assert_eq!(
            err_field("[media]\nrelay = true\nadvertised_address = \"0.0.0.0\""),
            "media.advertised_address"
        );
        assert_eq!(
            err_field("[[users]]\nname = \"al ice\"\npassword = \"secretpass\""),
            "users[0].name"
        );
        assert_eq!(
            err_field("[[users]]\nname = \"alice\"\npassword = \"short\""),
            "users[0].password"
        );
        assert_eq!(
            err_field("[[users]]\nname = \"a\"\npassword = \"12345678\"\nextension = \"1x\""),
            "users[0].extension"
        );
    }

    #[test]
    fn unknown_and_mistyped_fields_are_refused_by_name() {
        let e = Config::from_toml("[sip]\ndomian = \"x\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("domian"), "{e}");
        let e = Config::from_toml("[sip]\nudp = [\"not-an-address\"]")
            .unwrap_err()
            .to_string();
        assert!(e.contains("udp"), "{e}");
    }

    #[test]
    fn passwords_are_masked_when_printed() {
        let c = Config::from_toml(&format!(
            "[[users]]\nname = \"alice\"\npassword = \"topsecret1\"\n\
             {TRUNK}username = \"acct\"\npassword = \"trunksecret2\"\n"
        ))
        .unwrap();
        let shown = c.to_display_toml();
        assert!(!shown.contains("topsecret1"));
        assert!(!shown.contains("trunksecret2"));
        assert!(shown.contains("alice"));
        assert!(shown.contains("carrier"));
    }
}
