//! Trunks toward the PSTN as the core routes them, and the call records it
//! reports when calls end. Plain data: the core in [`crate::proxy`] acts on
//! it (outbound routing, inbound DIDs, digest auth toward the trunk,
//! registration, CDRs).

use crate::Transport;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

/// Digest credentials the gateway answers a trunk's challenges with.
#[derive(Clone, PartialEq, Eq)]
pub struct TrunkCredentials {
    /// User part of the registered AOR and of From when registering.
    pub username: String,
    /// Digest username when it differs from `username`.
    pub auth_username: Option<String>,
    pub password: String,
}

impl std::fmt::Debug for TrunkCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrunkCredentials")
            .field("username", &self.username)
            .field("auth_username", &self.auth_username)
            .finish_non_exhaustive()
    }
}

impl TrunkCredentials {
    /// The name digest responses are computed for.
    pub fn digest_username(&self) -> &str {
        self.auth_username.as_deref().unwrap_or(&self.username)
    }
}

/// What an outbound call presents as caller ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallerId {
    /// The caller's From user as sent.
    Keep,
    /// The calling user's extension, or its name without one.
    User,
    /// Always this number.
    Fixed(String),
}

/// One trunk, resolved to an address.
#[derive(Debug, Clone)]
pub struct Trunk {
    pub name: String,
    /// Provider host as configured: the host part of Request-URIs, To and
    /// (without `from_domain`) From.
    pub host: String,
    /// Where requests go: `host` resolved, with the port.
    pub addr: SocketAddr,
    /// UDP, TCP or TLS.
    pub transport: Transport,
    pub credentials: Option<TrunkCredentials>,
    /// Registration lifetime asked for, seconds; `None`: no registration.
    pub register_expiry: Option<u32>,
    pub caller_id: CallerId,
    pub from_domain: Option<String>,
    /// Networks inbound calls are accepted from (address, prefix length).
    pub trust: Vec<(IpAddr, u8)>,
    /// Dialled-number prefixes routed over this trunk, matched by
    /// [`Dialplan`]'s pattern matcher.
    pub dial_patterns: Vec<String>,
    /// (strip, prepend) rewrites; the first whose prefix matches applies.
    pub number_rules: Vec<(String, String)>,
    pub max_calls: Option<u32>,
    /// Our address as the trunk reaches it, for Contact and Via when the
    /// listener is bound to a wildcard address.
    pub local_ip: Option<IpAddr>,
}

impl Trunk {
    /// A UDP trunk at `addr` that routes and trusts nothing.
    pub fn new(name: &str, addr: SocketAddr) -> Trunk {
        Trunk {
            name: name.to_owned(),
            host: addr.ip().to_string(),
            addr,
            transport: Transport::Udp,
            credentials: None,
            register_expiry: None,
            caller_id: CallerId::Keep,
            from_domain: None,
            trust: Vec::new(),
            dial_patterns: Vec::new(),
            number_rules: Vec::new(),
            max_calls: None,
            local_ip: None,
        }
    }

    /// Whether `addr` lies in one of the trusted networks.
    pub fn trusts(&self, addr: IpAddr) -> bool {
        let addr = addr.to_canonical();
        self.trust
            .iter()
            .any(|&(net, len)| net.is_ipv4() == addr.is_ipv4() && mask(addr, len) == mask(net, len))
    }

    /// The dialled number after the first matching number rule.
    pub fn normalize(&self, number: &str) -> String {
        self.number_rules
            .iter()
            .find_map(|(strip, prepend)| {
                number
                    .strip_prefix(strip.as_str())
                    .map(|rest| format!("{prepend}{rest}"))
            })
            .unwrap_or_else(|| number.to_owned())
    }

    /// `host[:port]` for URIs, with the port only when not the default.
    pub fn hostport(&self) -> String {
        let default = if self.transport == Transport::Tls {
            5061
        } else {
            5060
        };
        let host = if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.addr.port() == default {
            host
        } else {
            format!("{host}:{}", self.addr.port())
        }
    }

    /// The Request-URI for `number` at this trunk.
    pub fn request_uri(&self, number: &str) -> String {
        format!(
            "sip:{number}@{}{}",
            self.hostport(),
            self.transport.uri_param()
        )
    }

    /// Host part of From URIs sent to this trunk.
    pub fn from_host(&self) -> &str {
        self.from_domain.as_deref().unwrap_or(&self.host)
    }
}

fn mask(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let m = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len.min(32)))
            };
            IpAddr::from((bits & m).to_be_bytes())
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let m = if len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(len.min(128)))
            };
            IpAddr::from((bits & m).to_be_bytes())
        }
    }
}

/// Whether a dial pattern matches a number. The pattern language belongs
/// to the configuration layer (it validates patterns), so it is passed in.
pub type PatternMatcher = fn(pattern: &str, number: &str) -> bool;

/// A pattern matcher that treats patterns as literal prefixes.
pub fn prefix_matcher(pattern: &str, number: &str) -> bool {
    number.starts_with(pattern)
}

/// The trunks and DIDs the core routes by.
#[derive(Debug, Clone)]
pub struct Dialplan {
    pub trunks: Vec<Trunk>,
    /// DID number → username.
    pub dids: HashMap<String, String>,
    pub matcher: PatternMatcher,
}

impl Default for Dialplan {
    fn default() -> Self {
        Dialplan {
            trunks: Vec::new(),
            dids: HashMap::new(),
            matcher: prefix_matcher,
        }
    }
}

impl Dialplan {
    /// Trunks whose patterns match `number`, in configured order.
    pub fn routes<'a>(&'a self, number: &'a str) -> impl Iterator<Item = &'a Trunk> + 'a {
        self.trunks
            .iter()
            .filter(move |t| t.dial_patterns.iter().any(|p| (self.matcher)(p, number)))
    }

    /// The trunk that trusts `addr`, if any.
    pub fn trusted(&self, addr: IpAddr) -> Option<&Trunk> {
        self.trunks.iter().find(|t| t.trusts(addr))
    }

    pub fn trunk(&self, name: &str) -> Option<&Trunk> {
        self.trunks.iter().find(|t| t.name == name)
    }

    /// The user a DID rings. Tries the number as given, then with a leading
    /// `+` added or removed, so `+4930…` and `4930…` meet.
    pub fn did_user(&self, number: &str) -> Option<&str> {
        let alt = match number.strip_prefix('+') {
            Some(rest) => rest.to_owned(),
            None => format!("+{number}"),
        };
        self.dids
            .get(number)
            .or_else(|| self.dids.get(&alt))
            .map(String::as_str)
    }
}

/// Registration state of a trunk, for operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationState {
    /// The trunk does not register.
    Disabled,
    /// A REGISTER is in flight (first or after a failure).
    Registering,
    /// Registered until this Unix time.
    Registered { expires_unix: u64 },
    /// The last attempt failed; retried later.
    Failed { reason: String },
}

/// A trunk's live state.
#[derive(Debug, Clone)]
pub struct TrunkStatus {
    pub name: String,
    pub registration: RegistrationState,
    pub active_calls: u32,
}

/// Where a call came from and went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From a trunk to a local user.
    Inbound,
    /// From a local user to a trunk.
    Outbound,
    /// Between local users.
    Internal,
}

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    Answered,
    Busy,
    NoAnswer,
    Failed,
    Cancelled,
}

impl Disposition {
    /// The disposition of a call whose INVITE got final `status` (not 2xx).
    pub fn from_status(status: u16) -> Disposition {
        match status {
            486 | 600 | 603 => Disposition::Busy,
            408 | 480 => Disposition::NoAnswer,
            487 => Disposition::Cancelled,
            _ => Disposition::Failed,
        }
    }
}

/// Media counters of one party's leg, as the relay saw them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LegMedia {
    /// Received from that party.
    pub rx_packets: u64,
    /// Sent to that party.
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub lost_packets: u64,
    pub jitter_ms: f64,
}

/// One finished call, for the CDR table.
#[derive(Debug, Clone)]
pub struct CallRecord {
    pub call_id: String,
    pub started_unix: u64,
    pub answered_unix: Option<u64>,
    pub ended_unix: u64,
    /// Calling party as signalled (From user, or the URI).
    pub caller: String,
    /// Called party as dialled.
    pub callee: String,
    pub caller_user: Option<String>,
    pub callee_user: Option<String>,
    pub direction: Direction,
    pub disposition: Disposition,
    pub trunk: Option<String>,
    /// Final status for unanswered calls, or why an answered one ended.
    pub reason: String,
    pub caller_media: Option<LegMedia>,
    pub callee_media: Option<LegMedia>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trust_and_normalize() {
        let mut t = Trunk::new("p", "192.0.2.1:5060".parse().unwrap());
        t.trust = vec![
            ("192.0.2.0".parse().unwrap(), 24),
            ("::1".parse().unwrap(), 128),
        ];
        assert!(t.trusts("192.0.2.77".parse().unwrap()));
        assert!(t.trusts("::ffff:192.0.2.7".parse().unwrap()));
        assert!(!t.trusts("192.0.3.1".parse().unwrap()));
        assert!(t.trusts("::1".parse().unwrap()));
        t.number_rules = vec![("00".into(), "+".into()), ("0".into(), "+49".into())];
        assert_eq!(t.normalize("004930"), "+4930");
        assert_eq!(t.normalize("030"), "+4930");
        assert_eq!(t.normalize("+1"), "+1");
        assert_eq!(t.request_uri("+1"), "sip:+1@192.0.2.1");
        t.transport = Transport::Tcp;
        t.addr.set_port(5080);
        assert_eq!(t.request_uri("1"), "sip:1@192.0.2.1:5080;transport=tcp");
    }

    #[test]
    fn dids_match_with_or_without_plus() {
        let mut d = Dialplan::default();
        d.dids.insert("+4930123".into(), "1000".into());
        d.dids.insert("555".into(), "1001".into());
        assert_eq!(d.did_user("4930123"), Some("1000"));
        assert_eq!(d.did_user("+4930123"), Some("1000"));
        assert_eq!(d.did_user("+555"), Some("1001"));
        assert_eq!(d.did_user("556"), None);
    }
}
