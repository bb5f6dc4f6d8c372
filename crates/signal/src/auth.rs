//! Digest authentication of requests against the user directory
//! (RFC 3261 §22, RFC 8760), with stateless nonces and a per-source-IP
//! failure limit.

use sip::digest::{self, AuthOutcome, NonceSigner};
use sip::{HeaderName, Message};
use std::collections::HashMap;
use std::net::IpAddr;

/// What the registrar and proxy need to know about a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub username: String,
    pub extension: Option<String>,
    pub display_name: Option<String>,
    pub realm: String,
    pub ha1_md5: String,
    pub ha1_sha256: String,
    pub enabled: bool,
    /// Number presented on trunk calls (caller-ID policy `user`), before
    /// the extension.
    pub caller_id: Option<String>,
    /// Concurrent calls, as caller or callee; `None`: no limit.
    pub max_calls: Option<u32>,
    /// Which numbers the user may call through trunks.
    pub scope: Scope,
}

/// Where a user's calls may go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Scope {
    /// Local users only.
    Local,
    /// Local users and national numbers: not dialled with `+` or `00`.
    National,
    /// Anything a trunk routes.
    #[default]
    International,
}

impl Scope {
    /// Whether a number dialled as `dialled` (before normalization) is
    /// within the scope.
    pub fn allows(self, dialled: &str) -> bool {
        match self {
            Scope::Local => false,
            Scope::National => !(dialled.starts_with('+') || dialled.starts_with("00")),
            Scope::International => true,
        }
    }
}

/// Users by name and by extension; replaced wholesale when the store changes.
#[derive(Debug, Default)]
pub struct Directory {
    by_name: HashMap<String, UserRecord>,
    by_ext: HashMap<String, String>,
}

impl Directory {
    pub fn new(users: impl IntoIterator<Item = UserRecord>) -> Self {
        let mut d = Directory::default();
        for u in users {
            if let Some(e) = &u.extension {
                d.by_ext.insert(e.clone(), u.username.clone());
            }
            d.by_name.insert(u.username.clone(), u);
        }
        d
    }

    /// A user by name, else by extension.
    pub fn find(&self, key: &str) -> Option<&UserRecord> {
        self.by_name
            .get(key)
            .or_else(|| self.by_ext.get(key).and_then(|n| self.by_name.get(n)))
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// Outcome of checking a request's credentials.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Authenticated as this user.
    Ok(String),
    /// Send a challenge (401/407); `stale` when only the nonce expired.
    Challenge { stale: bool },
    /// Credentials were wrong: 403.
    Forbidden(&'static str),
    /// Too many failures from this address: 403 without a challenge.
    Blocked,
    /// Malformed credentials (their `uri` is not the Request-URI): 400.
    BadRequest(&'static str),
}

/// Failure accounting per source IP.
#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    window_start: u64,
}

/// Authenticator configuration.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub realm: String,
    pub nonce_max_age: u64,
    /// Failures from one IP within `failure_window` secs before it is blocked.
    pub max_failures: u32,
    pub failure_window: u64,
    /// Challenge algorithms in order. SHA-256 then MD5 by default; some
    /// older phones read only the first challenge and know only MD5.
    pub algorithms: Vec<digest::Algorithm>,
}

pub struct Authenticator {
    pub config: AuthConfig,
    signer: NonceSigner,
    failures: HashMap<IpAddr, Failures>,
}

/// Bound on the failure table so a spray from many addresses cannot grow it
/// without limit.
const MAX_TRACKED_IPS: usize = 65_536;

impl Authenticator {
    pub fn new(config: AuthConfig, secret: [u8; 32]) -> Self {
        Authenticator {
            config,
            signer: NonceSigner::new(secret),
            failures: HashMap::new(),
        }
    }

    /// The WWW-/Proxy-Authenticate values to send, one per configured
    /// algorithm in order of preference (RFC 8760 §2.4).
    pub fn challenges(&self, now_unix: u64, salt: [u8; 8], stale: bool) -> Vec<String> {
        let nonce = self.signer.issue(now_unix, salt);
        self.config
            .algorithms
            .iter()
            .map(|a| digest::format_challenge(&self.config.realm, &nonce, *a, None, stale))
            .collect()
    }

    fn blocked(&mut self, ip: IpAddr, now_unix: u64) -> bool {
        match self.failures.get(&ip) {
            Some(f) if now_unix.saturating_sub(f.window_start) < self.config.failure_window => {
                f.count >= self.config.max_failures
            }
            Some(_) => {
                self.failures.remove(&ip);
                false
            }
            None => false,
        }
    }

    fn record_failure(&mut self, ip: IpAddr, now_unix: u64) {
        if self.failures.len() >= MAX_TRACKED_IPS {
            let window = self.config.failure_window;
            self.failures
                .retain(|_, f| now_unix.saturating_sub(f.window_start) < window);
            if self.failures.len() >= MAX_TRACKED_IPS {
                return;
            }
        }
        let window = self.config.failure_window;
        let f = self.failures.entry(ip).or_insert(Failures {
            count: 0,
            window_start: now_unix,
        });
        if now_unix.saturating_sub(f.window_start) >= window {
            *f = Failures {
                count: 0,
                window_start: now_unix,
            };
        }
        f.count += 1;
    }

    /// Checks the credentials a request carries. `proxy` selects
    /// Proxy-Authorization (407 flow) over Authorization (401 flow).
    pub fn check(
        &mut self,
        msg: &Message,
        proxy: bool,
        users: &Directory,
        source: IpAddr,
        now_unix: u64,
    ) -> Verdict {
        if self.blocked(source, now_unix) {
            return Verdict::Blocked;
        }
        let header = if proxy {
            HeaderName::ProxyAuthorization
        } else {
            HeaderName::Authorization
        };
        let method = msg
            .method()
            .map(|m| m.as_str().to_owned())
            .unwrap_or_default();
        // Several credentials may be present (one per realm); ours counts.
        let mut ours = None;
        for value in msg.headers(header) {
            let Ok(text) = std::str::from_utf8(value) else {
                continue;
            };
            if let Ok(c) = digest::parse_credentials(text) {
                if c.realm == self.config.realm {
                    ours = Some(c);
                    break;
                }
            }
        }
        let Some(creds) = ours else {
            return Verdict::Challenge { stale: false };
        };
        // RFC 3261 §22.4 / RFC 7616 §3.4.6: the digest covers `uri`, so it
        // must be this request's Request-URI, or credentials captured from
        // one request would authorise another (same method, other target)
        // for the nonce's lifetime.
        let uri_matches = msg.request_uri().is_some_and(|r| {
            r.as_str() == creds.uri || crate::registrar::same_uri(r.as_str(), &creds.uri)
        });
        if !uri_matches {
            return Verdict::BadRequest("Credentials URI Mismatch");
        }
        let Some(user) = users.find(&creds.username) else {
            self.record_failure(source, now_unix);
            return Verdict::Forbidden("Unknown user");
        };
        if !user.enabled {
            self.record_failure(source, now_unix);
            return Verdict::Forbidden("Account disabled");
        }
        if user.realm != self.config.realm {
            // HA1 was computed for another realm (domain changed): the
            // password must be set again.
            return Verdict::Forbidden("Credentials need reset");
        }
        let ha1 = match creds.algorithm {
            digest::Algorithm::Sha256 | digest::Algorithm::Sha256Sess => &user.ha1_sha256,
            _ => &user.ha1_md5,
        };
        match self
            .signer
            .authenticate(&creds, &method, ha1, now_unix, self.config.nonce_max_age)
        {
            AuthOutcome::Authorized => Verdict::Ok(user.username.clone()),
            AuthOutcome::Stale => Verdict::Challenge { stale: true },
            AuthOutcome::InvalidNonce => Verdict::Challenge { stale: false },
            AuthOutcome::WrongResponse => {
                self.record_failure(source, now_unix);
                Verdict::Forbidden("Wrong password")
            }
        }
    }
}
