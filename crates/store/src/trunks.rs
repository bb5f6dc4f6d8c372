//! SIP trunks toward providers.
//!
//! # The trunk password is stored in clear
//!
//! Unlike user passwords, which are kept only as HA1 digests, a trunk
//! password is stored as entered: callgate is the digest *client* here, and
//! answering the provider's challenge needs the password or its HA1 for the
//! realm in that challenge, which is not known in advance (and may change).
//! The database file is created owner-only for this reason. The password is
//! never part of [`Trunk`] (so never of [`Store::get_trunk`] or
//! [`Store::list_trunks`]); only [`Store::trunk_secret`] returns it, and
//! [`TrunkConfig`]'s `Debug` output redacts it.

use std::fmt;
use std::net::IpAddr;

use rusqlite::{params, Connection, OptionalExtension as _, Row};

use crate::error::{Context as _, Error, Result};
use crate::{now, validate, Store, Transport};

/// Longest trunk name accepted.
pub const MAX_TRUNK_NAME: usize = 64;
const MAX_CREDENTIAL: usize = 256;
const MAX_LIST: usize = 64;
const MAX_PATTERN: usize = 32;
/// Registration expiry bounds, seconds.
const EXPIRY: std::ops::RangeInclusive<u32> = 60..=86_400;

/// What an outbound call over the trunk presents as caller ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallerIdPolicy {
    /// Pass on the caller ID of the call as it is.
    Keep,
    /// Always present this number (digits, optional leading `+`).
    Fixed(String),
    /// Present the calling user's configured caller ID.
    User,
}

/// A trunk's credentials as returned: the password is only reported as
/// present or not (see [`Store::trunk_secret`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// Whether to REGISTER. The credentials answer challenges to outbound
    /// INVITEs either way.
    pub enabled: bool,
    /// User part of the registered AOR.
    pub username: String,
    /// Digest username, when the provider wants one different from
    /// `username`.
    pub auth_username: Option<String>,
    /// Requested registration lifetime, seconds.
    pub expiry_secs: u32,
    /// Whether a password is stored.
    pub has_password: bool,
}

/// A trunk's credentials as given to [`Store::add_trunk`] and
/// [`Store::update_trunk`].
#[derive(Clone, PartialEq, Eq)]
pub struct RegistrationConfig {
    pub enabled: bool,
    pub username: String,
    pub auth_username: Option<String>,
    /// On add, the password to store (`None`: none). On update, `None`
    /// keeps the stored one; [`Store::set_trunk_password`] clears it.
    pub password: Option<String>,
    pub expiry_secs: u32,
}

impl RegistrationConfig {
    /// Enabled registration as `username`, 3600 s expiry.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        RegistrationConfig {
            enabled: true,
            username: username.into(),
            auth_username: None,
            password: Some(password.into()),
            expiry_secs: 3600,
        }
    }
}

impl fmt::Debug for RegistrationConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistrationConfig")
            .field("enabled", &self.enabled)
            .field("username", &self.username)
            .field("auth_username", &self.auth_username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("expiry_secs", &self.expiry_secs)
            .finish()
    }
}

/// A rewrite of the dialled number: a number starting with `strip` loses
/// that prefix and gains `prepend`. An empty `strip` matches every number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberRule {
    /// Digits, `+`, `*` or `#`.
    pub strip: String,
    /// Digits, `*` or `#`, with an optional leading `+`.
    pub prepend: String,
}

impl NumberRule {
    pub fn new(strip: impl Into<String>, prepend: impl Into<String>) -> Self {
        NumberRule {
            strip: strip.into(),
            prepend: prepend.into(),
        }
    }

    /// The rewritten number, if the rule applies to `number`.
    pub fn apply(&self, number: &str) -> Option<String> {
        number
            .strip_prefix(self.strip.as_str())
            .map(|rest| format!("{}{rest}", self.prepend))
    }

    fn validate(&self) -> Result<()> {
        let dial = |b: u8| b.is_ascii_digit() || matches!(b, b'*' | b'#');
        let bad = |reason: &str| {
            Err(Error::invalid(
                "number_rules",
                format!("{}>{}: {reason}", self.strip, self.prepend),
            ))
        };
        if self.strip.is_empty() && self.prepend.is_empty() {
            return bad("strips and prepends nothing");
        }
        if self.strip.len() > MAX_PATTERN || self.prepend.len() > MAX_PATTERN {
            return bad(&format!("longer than {MAX_PATTERN} characters"));
        }
        if !self.strip.bytes().all(|b| dial(b) || b == b'+') {
            return bad("strip may hold only digits, +, * and #");
        }
        let prepend = self.prepend.strip_prefix('+').unwrap_or(&self.prepend);
        if !prepend.bytes().all(dial) {
            return bad("prepend may hold only digits, * and #, after an optional leading +");
        }
        Ok(())
    }
}

/// A trunk as given to [`Store::add_trunk`] and [`Store::update_trunk`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkConfig {
    /// Unique; letters, digits, `.`, `_` and `-`.
    pub name: String,
    /// Provider address: IP address or DNS name.
    pub host: String,
    pub port: u16,
    /// `Udp`, `Tcp` or `Tls`.
    pub transport: Transport,
    /// `None` for a trunk that authenticates by source address.
    pub registration: Option<RegistrationConfig>,
    pub caller_id: CallerIdPolicy,
    /// Host part of outbound From URIs, when not `host`.
    pub from_domain: Option<String>,
    /// Addresses and CIDR blocks inbound calls are accepted from. Stored
    /// in canonical form.
    pub inbound_trust: Vec<String>,
    /// Prefixes of dialled numbers routed over this trunk, see
    /// [`dial_pattern_matches`].
    pub dial_patterns: Vec<String>,
    /// Applied in order to the dialled number of an outbound call; the
    /// first that matches wins ([`Trunk::normalize`]).
    pub number_rules: Vec<NumberRule>,
    /// Concurrent call limit; `None` for none.
    pub max_calls: Option<u32>,
    pub enabled: bool,
}

impl TrunkConfig {
    /// An enabled UDP trunk on port 5060 without registration, keeping
    /// caller IDs, trusting nobody and routing nothing.
    pub fn new(name: impl Into<String>, host: impl Into<String>) -> Self {
        TrunkConfig {
            name: name.into(),
            host: host.into(),
            port: 5060,
            transport: Transport::Udp,
            registration: None,
            caller_id: CallerIdPolicy::Keep,
            from_domain: None,
            inbound_trust: Vec::new(),
            dial_patterns: Vec::new(),
            number_rules: Vec::new(),
            max_calls: None,
            enabled: true,
        }
    }

    /// Checks every field as [`Store::add_trunk`] does, without a
    /// database, and returns `inbound_trust` in canonical form. Errors are
    /// [`Error::Invalid`] naming the field.
    pub fn validate(&self) -> Result<Vec<String>> {
        trunk_name(&self.name)?;
        validate::host("host", &self.host)?;
        if self.port == 0 {
            return Err(Error::invalid("port", "must be 1 to 65535"));
        }
        if !matches!(
            self.transport,
            Transport::Udp | Transport::Tcp | Transport::Tls
        ) {
            return Err(Error::invalid(
                "transport",
                format!("must be udp, tcp or tls, got {}", self.transport),
            ));
        }
        if let Some(reg) = &self.registration {
            validate::username(&reg.username).map_err(|e| rename(e, "registration username"))?;
            if let Some(auth) = &reg.auth_username {
                validate::required("auth_username", auth, MAX_CREDENTIAL)?;
            }
            if let Some(password) = &reg.password {
                validate::required("password", password, MAX_CREDENTIAL)?;
            }
            if !EXPIRY.contains(&reg.expiry_secs) {
                return Err(Error::invalid(
                    "registration expiry",
                    format!(
                        "must be {} to {} seconds, got {}",
                        EXPIRY.start(),
                        EXPIRY.end(),
                        reg.expiry_secs
                    ),
                ));
            }
        }
        if let CallerIdPolicy::Fixed(number) = &self.caller_id {
            validate::number("caller_id", number)?;
        }
        if let Some(domain) = &self.from_domain {
            validate::host("from_domain", domain)?;
        }
        list_len("inbound_trust", self.inbound_trust.len())?;
        list_len("dial_patterns", self.dial_patterns.len())?;
        list_len("number_rules", self.number_rules.len())?;
        for pattern in &self.dial_patterns {
            dial_pattern(pattern)?;
        }
        for rule in &self.number_rules {
            rule.validate()?;
        }
        self.inbound_trust
            .iter()
            .map(|entry| validate::cidr("inbound_trust", entry))
            .collect()
    }
}

/// A trunk as stored, without its password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trunk {
    pub id: i64,
    pub name: String,
    pub host: String,
    pub port: u16,
    pub transport: Transport,
    pub registration: Option<Registration>,
    pub caller_id: CallerIdPolicy,
    pub from_domain: Option<String>,
    pub inbound_trust: Vec<String>,
    pub dial_patterns: Vec<String>,
    pub number_rules: Vec<NumberRule>,
    pub max_calls: Option<u32>,
    pub enabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Trunk {
    /// Whether `addr` is in [`Trunk::inbound_trust`]. IPv4-mapped IPv6
    /// addresses are matched as IPv4.
    pub fn trusts(&self, addr: IpAddr) -> bool {
        let addr = addr.to_canonical();
        self.inbound_trust.iter().any(|entry| {
            let (net, len) = entry.split_once('/').unwrap_or((entry, ""));
            let Ok(net) = net.parse::<IpAddr>() else {
                return false;
            };
            let full = if net.is_ipv4() { 32 } else { 128 };
            let len = len.parse().unwrap_or(full);
            net.is_ipv4() == addr.is_ipv4() && validate::mask(addr, len) == net
        })
    }

    /// Whether any of [`Trunk::dial_patterns`] matches `number`.
    pub fn routes(&self, number: &str) -> bool {
        self.dial_patterns
            .iter()
            .any(|p| dial_pattern_matches(p, number))
    }

    /// `number` rewritten by the first matching [`Trunk::number_rules`]
    /// entry, or unchanged when none matches.
    pub fn normalize(&self, number: &str) -> String {
        self.number_rules
            .iter()
            .find_map(|rule| rule.apply(number))
            .unwrap_or_else(|| number.to_owned())
    }
}

/// Whether `number` starts with a match of `pattern`. A pattern is a
/// sequence of literal digits, `+`, `*` and `#`, and bracketed classes of
/// digits and digit ranges such as `[1-9]` or `[2-46]`; `0[1-9]` matches
/// `0301234` but not `00301234`. Invalid patterns match nothing.
pub fn dial_pattern_matches(pattern: &str, number: &str) -> bool {
    let Ok(elements) = parse_pattern(pattern) else {
        return false;
    };
    let mut chars = number.bytes();
    elements
        .iter()
        .all(|elem| chars.next().is_some_and(|c| elem.matches(c)))
}

enum Element {
    Literal(u8),
    /// Inclusive digit ranges.
    Class(Vec<(u8, u8)>),
}

impl Element {
    fn matches(&self, c: u8) -> bool {
        match self {
            Element::Literal(l) => *l == c,
            Element::Class(ranges) => ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&c)),
        }
    }
}

fn parse_pattern(pattern: &str) -> Result<Vec<Element>, String> {
    let mut elements = Vec::new();
    let mut bytes = pattern.bytes().peekable();
    while let Some(b) = bytes.next() {
        match b {
            b'0'..=b'9' | b'+' | b'*' | b'#' => elements.push(Element::Literal(b)),
            b'[' => {
                let mut ranges = Vec::new();
                loop {
                    match bytes.next() {
                        Some(b']') if !ranges.is_empty() => break,
                        Some(lo @ b'0'..=b'9') => {
                            let hi = if bytes.peek() == Some(&b'-') {
                                bytes.next();
                                match bytes.next() {
                                    Some(hi @ b'0'..=b'9') if hi >= lo => hi,
                                    _ => return Err("a range needs ascending digits".into()),
                                }
                            } else {
                                lo
                            };
                            ranges.push((lo, hi));
                        }
                        Some(b']') => return Err("empty class".into()),
                        None => return Err("unclosed [".into()),
                        Some(c) => {
                            return Err(format!("{:?} is not allowed in a class", c as char))
                        }
                    }
                }
                elements.push(Element::Class(ranges));
            }
            c => {
                return Err(format!(
                    "{:?} is not allowed; use digits, +, *, # and [classes]",
                    c as char
                ))
            }
        }
    }
    if elements.is_empty() {
        return Err("must not be empty".into());
    }
    Ok(elements)
}

fn dial_pattern(pattern: &str) -> Result<()> {
    if pattern.len() > MAX_PATTERN {
        return Err(Error::invalid(
            "dial_patterns",
            format!("{pattern:?} is longer than {MAX_PATTERN} characters"),
        ));
    }
    parse_pattern(pattern)
        .map(drop)
        .map_err(|reason| Error::invalid("dial_patterns", format!("{pattern:?}: {reason}")))
}

fn trunk_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > MAX_TRUNK_NAME
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(Error::invalid(
            "name",
            format!("must be 1 to {MAX_TRUNK_NAME} letters, digits, '.', '_' or '-', got {name:?}"),
        ));
    }
    Ok(())
}

fn list_len(field: &'static str, len: usize) -> Result<()> {
    if len > MAX_LIST {
        return Err(Error::invalid(
            field,
            format!("at most {MAX_LIST} entries, got {len}"),
        ));
    }
    Ok(())
}

/// Re-labels a shared check's error with the field it was run on.
fn rename(err: Error, field: &'static str) -> Error {
    match err {
        Error::Invalid { reason, .. } => Error::Invalid { field, reason },
        other => other,
    }
}

fn join_lines(items: &[String]) -> String {
    items.join("\n")
}

fn split_lines(text: String) -> Vec<String> {
    if text.is_empty() {
        Vec::new()
    } else {
        text.split('\n').map(str::to_owned).collect()
    }
}

fn rules_to_text(rules: &[NumberRule]) -> String {
    let lines: Vec<String> = rules
        .iter()
        .map(|r| format!("{}>{}", r.strip, r.prepend))
        .collect();
    join_lines(&lines)
}

fn rules_from_text(text: String) -> Vec<NumberRule> {
    split_lines(text)
        .into_iter()
        .map(|line| match line.split_once('>') {
            Some((strip, prepend)) => NumberRule::new(strip, prepend),
            None => NumberRule::new(line, ""),
        })
        .collect()
}

const COLUMNS: &str = "id, name, host, port, transport, reg_enabled, reg_username, \
                       reg_auth_username, reg_password IS NOT NULL, reg_expiry, \
                       caller_id_policy, caller_id_number, from_domain, inbound_trust, \
                       dial_patterns, number_rules, max_calls, enabled, created_at, updated_at";

fn from_row(row: &Row<'_>) -> rusqlite::Result<Trunk> {
    let reg_enabled: Option<bool> = row.get(5)?;
    let registration = match reg_enabled {
        Some(enabled) => Some(Registration {
            enabled,
            username: row.get(6)?,
            auth_username: row.get(7)?,
            has_password: row.get(8)?,
            expiry_secs: row.get(9)?,
        }),
        None => None,
    };
    let policy: String = row.get(10)?;
    let caller_id = match policy.as_str() {
        "fixed" => CallerIdPolicy::Fixed(row.get(11)?),
        "user" => CallerIdPolicy::User,
        _ => CallerIdPolicy::Keep,
    };
    Ok(Trunk {
        id: row.get(0)?,
        name: row.get(1)?,
        host: row.get(2)?,
        port: row.get(3)?,
        transport: row.get(4)?,
        registration,
        caller_id,
        from_domain: row.get(12)?,
        inbound_trust: split_lines(row.get(13)?),
        dial_patterns: split_lines(row.get(14)?),
        number_rules: rules_from_text(row.get(15)?),
        max_calls: row.get(16)?,
        enabled: row.get(17)?,
        created_at: row.get(18)?,
        updated_at: row.get(19)?,
    })
}

fn get(conn: &Connection, name: &str) -> rusqlite::Result<Option<Trunk>> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM trunks WHERE name = ?1"))?
        .query_row([name], from_row)
        .optional()
}

/// Column values shared by insert and update, in `?2..=?17` order.
struct Values {
    policy: &'static str,
    fixed: Option<String>,
    trust: String,
    patterns: String,
    rules: String,
}

impl Values {
    fn new(config: &TrunkConfig, trust: &[String]) -> Values {
        let (policy, fixed) = match &config.caller_id {
            CallerIdPolicy::Keep => ("keep", None),
            CallerIdPolicy::Fixed(n) => ("fixed", Some(n.clone())),
            CallerIdPolicy::User => ("user", None),
        };
        Values {
            policy,
            fixed,
            trust: join_lines(trust),
            patterns: join_lines(&config.dial_patterns),
            rules: rules_to_text(&config.number_rules),
        }
    }
}

impl Store {
    /// Creates a trunk. Fails with [`Error::TrunkExists`] if the name is
    /// taken.
    pub fn add_trunk(&self, config: &TrunkConfig) -> Result<Trunk> {
        let trust = config.validate()?;
        let v = Values::new(config, &trust);
        let reg = config.registration.as_ref();
        let tx = self.write_tx("add trunk")?;
        if get(&tx, &config.name).op("add trunk")?.is_some() {
            return Err(Error::TrunkExists(config.name.clone()));
        }
        let now = now();
        tx.execute(
            "INSERT INTO trunks (name, host, port, transport, reg_enabled, reg_username, \
             reg_auth_username, reg_password, reg_expiry, caller_id_policy, caller_id_number, \
             from_domain, inbound_trust, dial_patterns, number_rules, max_calls, enabled, \
             created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, \
             ?17, ?18, ?18)",
            params![
                config.name,
                config.host,
                config.port,
                config.transport,
                reg.map(|r| r.enabled),
                reg.map(|r| &r.username),
                reg.and_then(|r| r.auth_username.as_ref()),
                reg.and_then(|r| r.password.as_ref()),
                reg.map(|r| r.expiry_secs),
                v.policy,
                v.fixed,
                config.from_domain,
                v.trust,
                v.patterns,
                v.rules,
                config.max_calls,
                config.enabled,
                now,
            ],
        )
        .op("add trunk")?;
        let trunk = get(&tx, &config.name)
            .op("add trunk")?
            .ok_or_else(|| Error::TrunkNotFound(config.name.clone()))?;
        tx.commit().op("add trunk")?;
        Ok(trunk)
    }

    /// Replaces the configuration of trunk `name` with `config`, which may
    /// rename it ([`Error::TrunkExists`] if the new name is taken). DIDs
    /// follow the rename; CDRs keep the name the call was made under.
    ///
    /// The stored password is kept when `config.registration` has none,
    /// and dropped with the other credentials when `config.registration`
    /// is `None`.
    pub fn update_trunk(&self, name: &str, config: &TrunkConfig) -> Result<Trunk> {
        let trust = config.validate()?;
        let v = Values::new(config, &trust);
        let reg = config.registration.as_ref();
        let tx = self.write_tx("update trunk")?;
        let old = get(&tx, name)
            .op("update trunk")?
            .ok_or_else(|| Error::TrunkNotFound(name.to_owned()))?;
        if config.name != name && get(&tx, &config.name).op("update trunk")?.is_some() {
            return Err(Error::TrunkExists(config.name.clone()));
        }
        // ?9 NULL with registration kept: keep the old password (ifnull).
        // Without registration the CHECK requires it gone.
        tx.execute(
            "UPDATE trunks SET name = ?2, host = ?3, port = ?4, transport = ?5, \
             reg_enabled = ?6, reg_username = ?7, reg_auth_username = ?8, \
             reg_password = CASE WHEN ?6 IS NULL THEN NULL ELSE ifnull(?9, reg_password) END, \
             reg_expiry = ?10, caller_id_policy = ?11, caller_id_number = ?12, \
             from_domain = ?13, inbound_trust = ?14, dial_patterns = ?15, number_rules = ?16, \
             max_calls = ?17, enabled = ?18, updated_at = ?19 WHERE id = ?1",
            params![
                old.id,
                config.name,
                config.host,
                config.port,
                config.transport,
                reg.map(|r| r.enabled),
                reg.map(|r| &r.username),
                reg.and_then(|r| r.auth_username.as_ref()),
                reg.and_then(|r| r.password.as_ref()),
                reg.map(|r| r.expiry_secs),
                v.policy,
                v.fixed,
                config.from_domain,
                v.trust,
                v.patterns,
                v.rules,
                config.max_calls,
                config.enabled,
                now(),
            ],
        )
        .op("update trunk")?;
        let trunk = get(&tx, &config.name)
            .op("update trunk")?
            .ok_or_else(|| Error::TrunkNotFound(config.name.clone()))?;
        tx.commit().op("update trunk")?;
        Ok(trunk)
    }

    /// Sets or (with `None`) clears the password of a trunk that has
    /// credentials. A trunk without registration cannot hold a password.
    pub fn set_trunk_password(&self, name: &str, password: Option<&str>) -> Result<()> {
        if let Some(password) = password {
            validate::required("password", password, MAX_CREDENTIAL)?;
        }
        let tx = self.write_tx("set trunk password")?;
        let trunk = get(&tx, name)
            .op("set trunk password")?
            .ok_or_else(|| Error::TrunkNotFound(name.to_owned()))?;
        if trunk.registration.is_none() && password.is_some() {
            return Err(Error::invalid(
                "password",
                "the trunk has no registration username to go with it",
            ));
        }
        tx.execute(
            "UPDATE trunks SET reg_password = ?2, updated_at = ?3 WHERE id = ?1",
            params![trunk.id, password, now()],
        )
        .op("set trunk password")?;
        tx.commit().op("set trunk password")
    }

    /// The stored password of trunk `name`, if it has one. The only API
    /// that returns it (see the module documentation).
    pub fn trunk_secret(&self, name: &str) -> Result<Option<String>> {
        let row: Option<Option<String>> = self
            .conn
            .prepare_cached("SELECT reg_password FROM trunks WHERE name = ?1")
            .and_then(|mut stmt| stmt.query_row([name], |r| r.get(0)).optional())
            .op("get trunk secret")?;
        row.ok_or_else(|| Error::TrunkNotFound(name.to_owned()))
    }

    /// The trunk with this name.
    pub fn get_trunk(&self, name: &str) -> Result<Option<Trunk>> {
        get(&self.conn, name).op("get trunk")
    }

    /// All trunks, ordered by name.
    pub fn list_trunks(&self) -> Result<Vec<Trunk>> {
        self.conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM trunks ORDER BY name"))
            .and_then(|mut stmt| stmt.query_map([], from_row)?.collect())
            .op("list trunks")
    }

    /// Deletes a trunk. Fails with [`Error::TrunkInUse`] while DIDs route
    /// over it; its CDRs stay.
    pub fn remove_trunk(&self, name: &str) -> Result<()> {
        let tx = self.write_tx("remove trunk")?;
        let (id, dids): (i64, i64) = tx
            .query_row(
                "SELECT id, (SELECT count(*) FROM dids WHERE trunk_id = trunks.id) \
                 FROM trunks WHERE name = ?1",
                [name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .op("remove trunk")?
            .ok_or_else(|| Error::TrunkNotFound(name.to_owned()))?;
        if dids > 0 {
            return Err(Error::TrunkInUse {
                trunk: name.to_owned(),
                dids: dids as u64,
            });
        }
        tx.execute("DELETE FROM trunks WHERE id = ?1", [id])
            .op("remove trunk")?;
        tx.commit().op("remove trunk")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dial_patterns() {
        for ok in ["+", "00", "0", "[1-9]", "0[1-9]", "[2-46]", "*#", "[0]"] {
            dial_pattern(ok).unwrap();
        }
        for bad in [
            "", "[", "[]", "[9-1]", "[1-]", "[a]", "1.", "X", "0\n1", "1 2",
        ] {
            let err = dial_pattern(bad).unwrap_err();
            assert!(err.to_string().contains("dial_patterns"), "{bad:?}: {err}");
        }
        assert!(dial_pattern_matches("0[1-9]", "0301234"));
        assert!(!dial_pattern_matches("0[1-9]", "00301234"));
        assert!(dial_pattern_matches("[2-46]", "6"));
        assert!(!dial_pattern_matches("[2-46]", "5"));
        assert!(dial_pattern_matches("+", "+4930"));
        assert!(
            !dial_pattern_matches("00", "0"),
            "number shorter than pattern"
        );
        assert!(!dial_pattern_matches("[", "["));
    }

    #[test]
    fn number_rules() {
        let rule = NumberRule::new("00", "+");
        assert_eq!(rule.apply("004930").as_deref(), Some("+4930"));
        assert_eq!(rule.apply("04930"), None);
        assert_eq!(
            NumberRule::new("", "9").apply("123").as_deref(),
            Some("9123")
        );
        rule.validate().unwrap();
        NumberRule::new("+", "00").validate().unwrap();
        for bad in [
            NumberRule::new("", ""),
            NumberRule::new("0a", ""),
            NumberRule::new("0", "1+"),
            NumberRule::new("0>", "1"),
            NumberRule::new("0\n", "1"),
        ] {
            let err = bad.validate().unwrap_err();
            assert!(err.to_string().contains("number_rules"), "{bad:?}: {err}");
        }
        let rules = vec![NumberRule::new("+", ""), NumberRule::new("", "0")];
        assert_eq!(rules_from_text(rules_to_text(&rules)), rules);
    }

    #[test]
    fn password_is_redacted_from_debug() {
        let config = RegistrationConfig::new("acct", "hunter2-secret");
        let debug = format!("{config:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("redacted"));
    }
}
