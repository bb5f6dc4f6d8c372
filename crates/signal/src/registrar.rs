//! Registrar and location service (RFC 3261 §10, RFC 5626 outbound,
//! RFC 5627 GRUU, RFC 3327 Path). Pure logic: a REGISTER and the time go
//! in, a response description and the binding changes to persist come out.

use crate::Transport;
use sip::{Contacts, HeaderName, Message, Uri};
use std::collections::HashMap;
use std::net::SocketAddr;

/// One registered contact of an address-of-record.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    /// `sip:user@domain`.
    pub aor: String,
    /// The contact URI as the UA sent it (without header parameters).
    pub contact: String,
    pub instance: Option<String>,
    pub reg_id: Option<u32>,
    pub call_id: String,
    pub cseq: u32,
    /// Thousandths, 0..=1000.
    pub q: u16,
    pub expires_at: u64,
    pub transport: Transport,
    /// Where the REGISTER came from (received/rport): where UDP requests go.
    pub source: SocketAddr,
    pub local: SocketAddr,
    /// The connection it arrived on, for connection-oriented transports.
    pub flow: Option<u64>,
    pub path: Vec<String>,
    pub user_agent: String,
    pub gruu: Option<String>,
}

impl Binding {
    fn same_key(&self, other: &Binding) -> bool {
        match (&self.instance, &other.instance) {
            (Some(a), Some(b)) => a == b && self.reg_id == other.reg_id,
            (None, None) => same_uri(&self.contact, &other.contact),
            _ => false,
        }
    }
}

/// URI equality for binding purposes: scheme, user, host (case-insensitive)
/// and port; parameters other than transport are ignored.
pub fn same_uri(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    match (Uri::parse_str(a), Uri::parse_str(b)) {
        (Ok(x), Ok(y)) => {
            x.scheme() == y.scheme()
                && x.user() == y.user()
                && x.host_str().eq_ignore_ascii_case(y.host_str())
                && x.port() == y.port()
                && x.transport().map(str::to_ascii_lowercase)
                    == y.transport().map(str::to_ascii_lowercase)
        }
        _ => false,
    }
}

/// GRUU equality: the AoR part as [`same_uri`], and the `gr` value, which
/// is what tells one instance from another (RFC 5627 §3.1).
fn same_gruu(gruu: &str, uri: &str) -> bool {
    let gr = |s: &str| {
        Uri::parse_str(s)
            .ok()
            .and_then(|u| u.param_value("gr").map(str::to_owned))
    };
    same_uri(gruu, uri) && gr(uri).is_some() && gr(gruu) == gr(uri)
}

/// A change the driver persists.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Upsert(Binding),
    Remove(Binding),
}

#[derive(Debug, Clone)]
pub struct RegistrarConfig {
    pub domain: String,
    pub min_expires: u32,
    pub max_expires: u32,
    pub default_expires: u32,
    pub max_contacts: usize,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        RegistrarConfig {
            domain: "localhost".into(),
            min_expires: 60,
            max_expires: 3600,
            default_expires: 3600,
            max_contacts: 10,
        }
    }
}

/// The response the proxy core should send for a REGISTER.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub reason: &'static str,
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    fn new(status: u16, reason: &'static str) -> Self {
        Reply {
            status,
            reason,
            headers: Vec::new(),
        }
    }
}

/// Where a REGISTER came from.
#[derive(Debug, Clone, Copy)]
pub struct Origin {
    pub transport: Transport,
    pub source: SocketAddr,
    pub local: SocketAddr,
    pub flow: Option<u64>,
}

/// In-memory location service; the driver mirrors changes into the store.
#[derive(Debug, Default)]
pub struct Location {
    by_aor: HashMap<String, Vec<Binding>>,
}

impl Location {
    /// Adds a binding loaded from persistent storage.
    pub fn restore(&mut self, b: Binding) {
        let list = self.by_aor.entry(b.aor.clone()).or_default();
        list.retain(|x| !x.same_key(&b));
        list.push(b);
    }

    /// The unexpired bindings of an AoR, best q first.
    pub fn lookup(&self, aor: &str, now_unix: u64) -> Vec<&Binding> {
        let mut v: Vec<&Binding> = self
            .by_aor
            .get(aor)
            .map(|l| l.iter().filter(|b| b.expires_at > now_unix).collect())
            .unwrap_or_default();
        v.sort_by_key(|b| std::cmp::Reverse(b.q));
        v
    }

    /// The binding whose contact (or GRUU) is `uri`, for requests addressed
    /// straight to a registered contact (in-dialog requests to `.invalid`).
    pub fn by_contact(&self, uri: &str, now_unix: u64) -> Option<&Binding> {
        self.by_aor.values().flatten().find(|b| {
            b.expires_at > now_unix
                && (same_uri(&b.contact, uri)
                    || b.gruu.as_deref().is_some_and(|g| same_gruu(g, uri)))
        })
    }

    /// The binding a GRUU (`;gr=` URI) designates.
    pub fn by_gruu(&self, aor: &str, instance: &str, now_unix: u64) -> Option<&Binding> {
        self.by_aor.get(aor).and_then(|l| {
            l.iter()
                .filter(|b| b.expires_at > now_unix && b.instance.as_deref() == Some(instance))
                .max_by_key(|b| b.expires_at)
        })
    }

    pub fn all(&self) -> impl Iterator<Item = &Binding> {
        self.by_aor.values().flatten()
    }

    pub fn count(&self) -> usize {
        self.by_aor.values().map(Vec::len).sum()
    }

    /// Removes expired bindings and returns them.
    pub fn purge(&mut self, now_unix: u64) -> Vec<Binding> {
        let mut gone = Vec::new();
        self.by_aor.retain(|_, list| {
            list.retain(|b| {
                let keep = b.expires_at > now_unix;
                if !keep {
                    gone.push(b.clone());
                }
                keep
            });
            !list.is_empty()
        });
        gone
    }

    /// Removes every binding of an AoR (forced unregister).
    pub fn remove_aor(&mut self, aor: &str) -> Vec<Binding> {
        self.by_aor.remove(aor).unwrap_or_default()
    }

    /// Removes the binding of `aor` whose contact is `contact` (forced
    /// unregister of one device).
    pub fn remove_contact(&mut self, aor: &str, contact: &str) -> Option<Binding> {
        let list = self.by_aor.get_mut(aor)?;
        let i = list.iter().position(|b| same_uri(&b.contact, contact))?;
        let b = list.remove(i);
        if list.is_empty() {
            self.by_aor.remove(aor);
        }
        Some(b)
    }

    /// Processes an authenticated REGISTER for `aor` (RFC 3261 §10.3 steps
    /// 6–8). Returns the reply and the changes to persist.
    pub fn register(
        &mut self,
        cfg: &RegistrarConfig,
        msg: &Message,
        aor: &str,
        origin: Origin,
        now_unix: u64,
    ) -> (Reply, Vec<Change>) {
        let call_id = msg.call_id().unwrap_or_default().to_owned();
        let cseq = msg.cseq().map(|c| c.seq).unwrap_or(0);
        let header_expires = match msg.expires() {
            Ok(e) => e,
            Err(_) => return (Reply::new(400, "Bad Expires"), Vec::new()),
        };
        let contacts = match msg.contacts() {
            Ok(c) => c,
            Err(_) => return (Reply::new(400, "Bad Contact"), Vec::new()),
        };
        let mut changes = Vec::new();
        match contacts {
            Contacts::Wildcard => {
                // §10.3 step 6: `*` only with Expires: 0 and alone.
                if header_expires != Some(0) || msg.header_count(HeaderName::Contact) != 1 {
                    return (Reply::new(400, "Wildcard Needs Expires 0"), changes);
                }
                // §10.3 step 6: a binding from this Call-ID with a CSeq not
                // below the request's makes the whole request fail.
                let stale = self
                    .by_aor
                    .get(aor)
                    .is_some_and(|l| l.iter().any(|b| b.call_id == call_id && cseq <= b.cseq));
                if stale {
                    return (Reply::new(400, "Out Of Order CSeq"), changes);
                }
                let list = self.by_aor.remove(aor).unwrap_or_default();
                changes.extend(list.into_iter().map(Change::Remove));
            }
            Contacts::List(list) => {
                let supports = |tag: &str| {
                    msg.option_tags(HeaderName::Supported)
                        .filter_map(Result::ok)
                        .any(|t| t.eq_ignore_ascii_case(tag))
                };
                let gruu = supports("gruu");
                let path: Vec<String> = if supports("path") {
                    msg.paths()
                        .filter_map(Result::ok)
                        .map(|p| p.uri().as_str().to_owned())
                        .collect()
                } else {
                    Vec::new()
                };
                let user_agent = msg
                    .header_str(HeaderName::UserAgent)
                    .unwrap_or_default()
                    .chars()
                    .take(128)
                    .collect::<String>();
                let mut parsed = Vec::new();
                for c in list {
                    let Ok(c) = c else {
                        return (Reply::new(400, "Bad Contact"), Vec::new());
                    };
                    let Ok(exp) = c.expires() else {
                        return (Reply::new(400, "Bad Contact Expires"), Vec::new());
                    };
                    let Ok(q) = c.q() else {
                        return (Reply::new(400, "Bad Contact q"), Vec::new());
                    };
                    let Ok(reg_id) = c.reg_id() else {
                        return (Reply::new(400, "Bad reg-id"), Vec::new());
                    };
                    let expires = exp.or(header_expires).unwrap_or(cfg.default_expires);
                    if expires != 0 && expires < cfg.min_expires {
                        let mut r = Reply::new(423, "Interval Too Brief");
                        r.headers.push(("Min-Expires", cfg.min_expires.to_string()));
                        return (r, Vec::new());
                    }
                    let instance = c.sip_instance().map(str::to_owned);
                    let gruu_uri = match (&instance, gruu) {
                        (Some(i), true) => Some(format!("{aor};gr={i}")),
                        _ => None,
                    };
                    parsed.push(Binding {
                        aor: aor.to_owned(),
                        contact: c.uri().as_str().to_owned(),
                        instance,
                        // reg-id only means something with an instance (RFC 5626 §4.2).
                        reg_id: reg_id.filter(|_| c.sip_instance().is_some()),
                        call_id: call_id.clone(),
                        cseq,
                        q: q.unwrap_or(1000),
                        expires_at: now_unix + u64::from(expires.min(cfg.max_expires)),
                        transport: origin.transport,
                        source: origin.source,
                        local: origin.local,
                        flow: origin.flow.filter(|_| origin.transport.is_reliable()),
                        path: path.clone(),
                        user_agent: user_agent.clone(),
                        gruu: gruu_uri,
                    });
                    let _ = expires;
                }
                let existing = self.by_aor.entry(aor.to_owned()).or_default();
                // Check ordering for all before changing any (atomic update).
                for b in &parsed {
                    if let Some(old) = existing.iter().find(|o| o.same_key(b)) {
                        if old.call_id == b.call_id && b.cseq <= old.cseq {
                            return (Reply::new(400, "Out Of Order CSeq"), Vec::new());
                        }
                    }
                }
                for b in parsed {
                    let removing = b.expires_at <= now_unix;
                    if let Some(pos) = existing.iter().position(|o| o.same_key(&b)) {
                        let old = existing.remove(pos);
                        if removing {
                            changes.push(Change::Remove(old));
                            continue;
                        }
                    } else if removing {
                        continue;
                    }
                    existing.push(b.clone());
                    changes.push(Change::Upsert(b));
                }
                // Over the limit: the least recently refreshed go first.
                while existing.len() > cfg.max_contacts {
                    let oldest = existing
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, b)| b.expires_at)
                        .map(|(i, _)| i)
                        .unwrap_or(0);
                    changes.push(Change::Remove(existing.remove(oldest)));
                }
                if existing.is_empty() {
                    self.by_aor.remove(aor);
                }
            }
        }
        let mut reply = Reply::new(200, "OK");
        for b in self.lookup(aor, now_unix) {
            let mut v = format!(
                "<{}>;expires={}",
                b.contact,
                b.expires_at.saturating_sub(now_unix)
            );
            if b.q != 1000 {
                v.push_str(&format!(";q={}.{:03}", b.q / 1000, b.q % 1000));
            }
            if let Some(i) = &b.instance {
                v.push_str(&format!(";+sip.instance=\"<{i}>\""));
            }
            if let Some(r) = b.reg_id {
                v.push_str(&format!(";reg-id={r}"));
            }
            if let Some(g) = &b.gruu {
                v.push_str(&format!(";pub-gruu=\"{g}\""));
            }
            reply.headers.push(("Contact", v));
        }
        if let Some(Change::Upsert(b)) = changes.iter().find(|c| matches!(c, Change::Upsert(_))) {
            for p in &b.path {
                reply.headers.push(("Path", format!("<{p}>")));
            }
        }
        reply
            .headers
            .push(("Supported", "outbound, gruu, path".into()));
        (reply, changes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AOR: &str = "sip:1000@example.com";

    fn origin(flow: u64) -> Origin {
        Origin {
            transport: Transport::Wss,
            source: "127.0.0.1:40000".parse().unwrap(),
            local: "127.0.0.1:7443".parse().unwrap(),
            flow: Some(flow),
        }
    }

    fn register(contact: &str, call_id: &str, cseq: u32, extra: &str) -> Message {
        let text = format!(
            "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/WSS x.invalid;branch=z9hG4bK{cseq}\r\n\
             Max-Forwards: 70\r\nTo: <{AOR}>\r\nFrom: <{AOR}>;tag=a\r\nCall-ID: {call_id}\r\n\
             CSeq: {cseq} REGISTER\r\nContact: {contact}\r\n{extra}Content-Length: 0\r\n\r\n"
        );
        Message::parse(text.into_bytes(), &sip::Limits::default()).unwrap()
    }

    fn cfg() -> RegistrarConfig {
        RegistrarConfig {
            domain: "example.com".into(),
            ..Default::default()
        }
    }

    const JSSIP: &str =
        "<sip:abc@x.invalid;transport=ws>;+sip.instance=\"<urn:uuid:1>\";reg-id=1;expires=600";

    #[test]
    fn instance_and_reg_id_replace_the_binding_from_a_new_flow() {
        let mut loc = Location::default();
        let (r, ch) = loc.register(&cfg(), &register(JSSIP, "c1", 1, ""), AOR, origin(1), 1000);
        assert_eq!(r.status, 200);
        assert_eq!(ch.len(), 1);
        // Reconnected: new Call-ID, new contact user, new flow.
        let c2 = JSSIP.replace("abc@", "def@");
        let (r, _) = loc.register(&cfg(), &register(&c2, "c2", 1, ""), AOR, origin(2), 1010);
        assert_eq!(r.status, 200);
        let b = loc.lookup(AOR, 1010);
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].flow, Some(2));
        assert!(b[0].contact.contains("def@"));
    }

    #[test]
    fn different_contacts_add_and_q_orders() {
        let mut loc = Location::default();
        loc.register(
            &cfg(),
            &register("<sip:a@1.2.3.4>;q=0.5", "c", 1, ""),
            AOR,
            origin(1),
            0,
        );
        loc.register(
            &cfg(),
            &register("<sip:b@1.2.3.4>;q=0.9", "c", 2, ""),
            AOR,
            origin(1),
            0,
        );
        let b = loc.lookup(AOR, 0);
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].q, 900);
    }

    #[test]
    fn too_brief_gets_423_with_min_expires() {
        let mut loc = Location::default();
        let (r, ch) = loc.register(
            &cfg(),
            &register("<sip:a@1.2.3.4>;expires=10", "c", 1, ""),
            AOR,
            origin(1),
            0,
        );
        assert_eq!(r.status, 423);
        assert!(r.headers.contains(&("Min-Expires", "60".into())));
        assert!(ch.is_empty());
    }

    #[test]
    fn wildcard_with_expires_zero_removes_all() {
        let mut loc = Location::default();
        loc.register(
            &cfg(),
            &register("<sip:a@1.2.3.4>", "c", 1, ""),
            AOR,
            origin(1),
            0,
        );
        let (r, _) = loc.register(&cfg(), &register("*", "c", 2, ""), AOR, origin(1), 0);
        assert_eq!(r.status, 400, "wildcard without Expires: 0");
        let (r, ch) = loc.register(
            &cfg(),
            &register("*", "c", 3, "Expires: 0\r\n"),
            AOR,
            origin(1),
            0,
        );
        assert_eq!(r.status, 200);
        assert_eq!(ch.len(), 1);
        assert!(loc.lookup(AOR, 0).is_empty());
    }

    #[test]
    fn same_call_id_lower_cseq_is_refused() {
        let mut loc = Location::default();
        loc.register(
            &cfg(),
            &register("<sip:a@1.2.3.4>", "c", 5, ""),
            AOR,
            origin(1),
            0,
        );
        let (r, _) = loc.register(
            &cfg(),
            &register("<sip:a@1.2.3.4>;expires=0", "c", 4, ""),
            AOR,
            origin(1),
            0,
        );
        assert_eq!(r.status, 400);
        assert_eq!(loc.lookup(AOR, 0).len(), 1);
    }

    #[test]
    fn expires_zero_removes_one() {
        let mut loc = Location::default();
        loc.register(
            &cfg(),
            &register("<sip:a@1.2.3.4>", "c", 1, ""),
            AOR,
            origin(1),
            0,
        );
        let (r, ch) = loc.register(
            &cfg(),
            &register("<sip:a@1.2.3.4>;expires=0", "c", 2, ""),
            AOR,
            origin(1),
            0,
        );
        assert_eq!(r.status, 200);
        assert!(matches!(ch[0], Change::Remove(_)));
        assert!(loc.lookup(AOR, 0).is_empty());
    }

    #[test]
    fn gruu_is_returned_when_supported() {
        let mut loc = Location::default();
        let (r, _) = loc.register(
            &cfg(),
            &register(JSSIP, "c", 1, "Supported: path, gruu, outbound\r\n"),
            AOR,
            origin(1),
            0,
        );
        let contact = &r.headers.iter().find(|h| h.0 == "Contact").unwrap().1;
        assert!(
            contact.contains("pub-gruu=\"sip:1000@example.com;gr=urn:uuid:1\""),
            "{contact}"
        );
        assert!(loc
            .by_contact("sip:1000@example.com;gr=urn:uuid:1", 0)
            .is_some());
    }

    #[test]
    fn max_contacts_drops_the_oldest() {
        let mut loc = Location::default();
        let c = RegistrarConfig {
            max_contacts: 2,
            ..cfg()
        };
        for (i, t) in [(1, 100), (2, 200), (3, 300)] {
            loc.register(
                &c,
                &register(&format!("<sip:u{i}@1.2.3.4>"), "c", i, ""),
                AOR,
                origin(1),
                t,
            );
        }
        let b = loc.lookup(AOR, 300);
        assert_eq!(b.len(), 2);
        assert!(b.iter().all(|b| !b.contact.contains("u1@")));
    }

    #[test]
    fn purge_drops_expired() {
        let mut loc = Location::default();
        loc.register(
            &cfg(),
            &register("<sip:a@1.2.3.4>;expires=60", "c", 1, ""),
            AOR,
            origin(1),
            0,
        );
        assert!(loc.purge(59).is_empty());
        assert_eq!(loc.purge(60).len(), 1);
        assert_eq!(loc.count(), 0);
    }
}
