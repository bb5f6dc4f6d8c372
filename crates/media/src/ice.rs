//! Per-leg ICE-lite state (RFC 8445 §2.5): our credentials, the peer's from
//! its SDP, and the remote address media goes to.
//!
//! A lite agent only answers checks; the browser, always controlling, picks
//! the pair. The relay latches onto the source of authenticated checks:
//!
//! - a check with USE-CANDIDATE selects its source address (and a later
//!   nomination from another address moves the selection there, e.g. after
//!   a network change);
//! - until something is nominated, the first valid check selects its source
//!   tentatively, so media can flow before nomination (aggressive
//!   nomination, and peers that nominate late);
//! - an ICE restart (new peer ufrag/pwd, or new local credentials) clears
//!   the selection.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::stun::{self, Answer, Credentials, Ignored};

/// RFC 7675 §5.1: consent expires 30 s after the last valid check.
pub const CONSENT_TIMEOUT: Duration = Duration::from_secs(30);

/// The 64 `ice-char`s (RFC 8839 §5.4): letters, digits, `+` and `/`.
const ICE_CHARS: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// ICE short-term credentials of one side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceCredentials {
    /// `a=ice-ufrag`.
    pub ufrag: String,
    /// `a=ice-pwd`.
    pub pwd: String,
}

impl IceCredentials {
    /// Random bytes [`from_random`](Self::from_random) needs.
    pub const RANDOM_LEN: usize = 24;

    /// Credentials as given (e.g. the peer's, from SDP).
    pub fn new(ufrag: impl Into<String>, pwd: impl Into<String>) -> Self {
        Self {
            ufrag: ufrag.into(),
            pwd: pwd.into(),
        }
    }

    /// Local credentials from caller-provided random bytes (kept out of
    /// this crate so it stays free of an RNG and deterministic in tests):
    /// an 8-character ufrag (48 bits, RFC 8839 wants at least 24) and a
    /// 24-character pwd (144 bits, at least 128).
    pub fn from_random(random: &[u8; Self::RANDOM_LEN]) -> Self {
        Self {
            ufrag: ice_chars(&random[..6]),
            pwd: ice_chars(&random[6..]),
        }
    }
}

/// Six bits per character, like base64 without padding.
fn ice_chars(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 4 / 3);
    for chunk in bytes.chunks(3) {
        let mut n = 0u32;
        for (i, b) in chunk.iter().enumerate() {
            n |= u32::from(*b) << (16 - 8 * i);
        }
        for i in 0..=chunk.len() {
            s.push(char::from(ICE_CHARS[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    s
}

/// A datagram to send: `out[..len]` to `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    /// Destination.
    pub to: SocketAddr,
    /// Length of the message at the start of the output buffer.
    pub len: usize,
}

/// What happened to a STUN datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckOutcome {
    /// An authenticated Binding request, answered with success.
    Valid {
        /// It carried USE-CANDIDATE.
        nominated: bool,
    },
    /// Answered with this error code.
    Rejected(u16),
    /// Not answered.
    Ignored(Ignored),
}

/// The result of [`IceLite::handle_stun`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StunHandled {
    /// The response to send, if any.
    pub transmit: Option<Transmit>,
    /// What the datagram was.
    pub outcome: CheckOutcome,
    /// The new selected address when this datagram changed it.
    pub selected_changed: Option<SocketAddr>,
}

/// ICE-lite state of one leg.
#[derive(Debug, Clone)]
pub struct IceLite {
    local: IceCredentials,
    remote: Option<IceCredentials>,
    selected: Option<SocketAddr>,
    nominated: bool,
    last_valid: Option<Instant>,
}

impl IceLite {
    /// A leg with our credentials, before the peer's SDP is known.
    pub fn new(local: IceCredentials) -> Self {
        Self {
            local,
            remote: None,
            selected: None,
            nominated: false,
            last_valid: None,
        }
    }

    /// Our credentials, for `a=ice-ufrag`/`a=ice-pwd`.
    pub fn local(&self) -> &IceCredentials {
        &self.local
    }

    /// The peer's credentials, once known.
    pub fn remote(&self) -> Option<&IceCredentials> {
        self.remote.as_ref()
    }

    /// Records the peer's `a=ice-ufrag`/`a=ice-pwd` from an offer or answer.
    /// Returns true when they differ from earlier ones: an ICE restart,
    /// which clears the selection until the peer checks again.
    pub fn set_remote(&mut self, remote: IceCredentials) -> bool {
        let restart = self.remote.as_ref().is_some_and(|old| *old != remote);
        self.remote = Some(remote);
        if restart {
            self.reset();
        }
        restart
    }

    /// Replaces our credentials (a restart we initiate); clears the selection.
    pub fn restart_local(&mut self, local: IceCredentials) {
        self.local = local;
        self.reset();
    }

    fn reset(&mut self) {
        self.selected = None;
        self.nominated = false;
        self.last_valid = None;
    }

    /// Where media for this leg goes, once a check has been received.
    pub fn selected(&self) -> Option<SocketAddr> {
        self.selected
    }

    /// Whether the selected address was nominated (USE-CANDIDATE) rather
    /// than latched tentatively.
    pub fn is_nominated(&self) -> bool {
        self.nominated
    }

    /// When the last valid check arrived.
    pub fn last_valid_check(&self) -> Option<Instant> {
        self.last_valid
    }

    /// Whether no valid check arrived within `timeout` (use
    /// [`CONSENT_TIMEOUT`]) while an address is selected: the browser is
    /// gone or has moved, so media should stop (RFC 7675).
    pub fn consent_expired(&self, now: Instant, timeout: Duration) -> bool {
        match (self.selected, self.last_valid) {
            (Some(_), Some(at)) => now.saturating_duration_since(at) > timeout,
            _ => false,
        }
    }

    /// Handles a datagram classified as STUN that came from `from` at `now`,
    /// writing any response into `out` (1 500 bytes is plenty).
    pub fn handle_stun(
        &mut self,
        packet: &[u8],
        from: SocketAddr,
        now: Instant,
        out: &mut [u8],
    ) -> StunHandled {
        let creds = Credentials {
            local_ufrag: &self.local.ufrag,
            local_pwd: &self.local.pwd,
            remote_ufrag: self.remote.as_ref().map(|r| r.ufrag.as_str()),
        };
        match stun::answer_binding(packet, from, &creds, out) {
            Answer::Success { len, request } => {
                self.last_valid = Some(now);
                let nominated = request.use_candidate;
                let latch = if nominated {
                    let changed = self.selected != Some(from) || !self.nominated;
                    self.nominated = true;
                    changed
                } else {
                    !self.nominated && self.selected.is_none()
                };
                let before = self.selected;
                if latch {
                    self.selected = Some(from);
                }
                StunHandled {
                    transmit: Some(Transmit { to: from, len }),
                    outcome: CheckOutcome::Valid { nominated },
                    selected_changed: self.selected.filter(|s| before != Some(*s)),
                }
            }
            Answer::Error { len, code } => StunHandled {
                transmit: Some(Transmit { to: from, len }),
                outcome: CheckOutcome::Rejected(code),
                selected_changed: None,
            },
            Answer::Ignored(why) => StunHandled {
                transmit: None,
                outcome: CheckOutcome::Ignored(why),
                selected_changed: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stun::{attr, Class, Message, MessageWriter, METHOD_BINDING};

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn leg() -> IceLite {
        let mut ice = IceLite::new(IceCredentials::new("LOCL", "localpassword0123456789"));
        ice.set_remote(IceCredentials::new("RMT1", "remotepassword0123456789"));
        ice
    }

    fn check(ice: &IceLite, remote_ufrag: &str, use_candidate: bool) -> Vec<u8> {
        let mut buf = [0u8; 256];
        let mut w = MessageWriter::new(&mut buf, Class::Request, METHOD_BINDING, &[9; 12]).unwrap();
        let user = format!("{}:{remote_ufrag}", ice.local().ufrag);
        w.attribute(attr::USERNAME, user.as_bytes()).unwrap();
        w.attribute(attr::ICE_CONTROLLING, &1u64.to_be_bytes())
            .unwrap();
        if use_candidate {
            w.attribute(attr::USE_CANDIDATE, &[]).unwrap();
        }
        w.message_integrity(ice.local().pwd.as_bytes()).unwrap();
        let len = w.fingerprint().unwrap();
        buf[..len].to_vec()
    }

    #[test]
    fn credentials_from_random() {
        let c = IceCredentials::from_random(&[0u8; 24]);
        assert_eq!(c.ufrag, "AAAAAAAA");
        assert_eq!(c.pwd.len(), 24);
        let c = IceCredentials::from_random(&core::array::from_fn(|i| (i * 37 + 5) as u8));
        assert_eq!(c.ufrag.len(), 8);
        assert_eq!(c.pwd.len(), 24);
        assert!(c
            .ufrag
            .bytes()
            .chain(c.pwd.bytes())
            .all(|b| ICE_CHARS.contains(&b)));
        assert_ne!(c, IceCredentials::from_random(&[1u8; 24]));
        assert_eq!(ice_chars(&[0xfb, 0xff]), "+/8");
    }

    #[test]
    fn nomination_latches_and_relatches() {
        let mut ice = leg();
        let now = Instant::now();
        let mut out = [0u8; 1500];
        let a = addr("127.0.0.1:40000");
        let b = addr("[::1]:40002");

        // A plain check latches tentatively and gets a verifiable response.
        let h = ice.handle_stun(&check(&ice, "RMT1", false), a, now, &mut out);
        assert_eq!(h.outcome, CheckOutcome::Valid { nominated: false });
        assert_eq!(h.selected_changed, Some(a));
        let t = h.transmit.unwrap();
        assert_eq!(t.to, a);
        let r = Message::parse(&out[..t.len]).unwrap();
        assert_eq!(r.xor_mapped_address(), Some(a));
        assert!(r.integrity_valid(ice.local().pwd.as_bytes()));
        assert!(!ice.is_nominated());

        // Another plain check from elsewhere does not move a tentative latch.
        let h = ice.handle_stun(&check(&ice, "RMT1", false), b, now, &mut out);
        assert_eq!(h.selected_changed, None);
        assert_eq!(ice.selected(), Some(a));

        // A nomination from elsewhere moves it and makes it final.
        let h = ice.handle_stun(&check(&ice, "RMT1", true), b, now, &mut out);
        assert_eq!(h.outcome, CheckOutcome::Valid { nominated: true });
        assert_eq!(h.selected_changed, Some(b));
        assert!(ice.is_nominated());

        // Plain checks (consent refreshes) no longer move it.
        let h = ice.handle_stun(&check(&ice, "RMT1", false), a, now, &mut out);
        assert_eq!(h.selected_changed, None);
        assert_eq!(ice.selected(), Some(b));

        // Repeated nomination of the same address is not a change.
        let h = ice.handle_stun(&check(&ice, "RMT1", true), b, now, &mut out);
        assert_eq!(h.selected_changed, None);

        // A later nomination from the first address re-latches.
        let h = ice.handle_stun(&check(&ice, "RMT1", true), a, now, &mut out);
        assert_eq!(h.selected_changed, Some(a));
    }

    #[test]
    fn first_nomination_selects() {
        let mut ice = leg();
        let mut out = [0u8; 1500];
        let a = addr("127.0.0.1:40000");
        let h = ice.handle_stun(&check(&ice, "RMT1", true), a, Instant::now(), &mut out);
        assert_eq!(h.selected_changed, Some(a));
        assert!(ice.is_nominated());
    }

    #[test]
    fn invalid_checks_do_not_latch() {
        let mut ice = leg();
        let mut out = [0u8; 1500];
        let a = addr("127.0.0.1:40000");
        let h = ice.handle_stun(&check(&ice, "WRONG", true), a, Instant::now(), &mut out);
        assert_eq!(h.outcome, CheckOutcome::Rejected(401));
        assert_eq!(h.transmit.map(|t| t.to), Some(a));
        assert_eq!(ice.selected(), None);
        let h = ice.handle_stun(b"\x00\x01junk", a, Instant::now(), &mut out);
        assert!(matches!(h.outcome, CheckOutcome::Ignored(_)));
        assert_eq!(h.transmit, None);
        assert_eq!(ice.selected(), None);
    }

    #[test]
    fn remote_restart_resets() {
        let mut ice = leg();
        let mut out = [0u8; 1500];
        let a = addr("127.0.0.1:40000");
        ice.handle_stun(&check(&ice, "RMT1", true), a, Instant::now(), &mut out);
        assert_eq!(ice.selected(), Some(a));
        // The same credentials again (a re-offer without restart): kept.
        assert!(!ice.set_remote(IceCredentials::new("RMT1", "remotepassword0123456789")));
        assert_eq!(ice.selected(), Some(a));
        // New credentials: restart.
        assert!(ice.set_remote(IceCredentials::new("RMT2", "otherpassword0123456789x")));
        assert_eq!(ice.selected(), None);
        assert!(!ice.is_nominated());
        // Checks with the old ufrag are now refused.
        let h = ice.handle_stun(&check(&ice, "RMT1", true), a, Instant::now(), &mut out);
        assert_eq!(h.outcome, CheckOutcome::Rejected(401));
        let h = ice.handle_stun(&check(&ice, "RMT2", true), a, Instant::now(), &mut out);
        assert_eq!(h.selected_changed, Some(a));
    }

    #[test]
    fn local_restart_resets() {
        let mut ice = leg();
        let mut out = [0u8; 1500];
        let a = addr("127.0.0.1:40000");
        let old = check(&ice, "RMT1", true);
        ice.handle_stun(&old, a, Instant::now(), &mut out);
        ice.restart_local(IceCredentials::from_random(&[7; 24]));
        assert_eq!(ice.selected(), None);
        let h = ice.handle_stun(&old, a, Instant::now(), &mut out);
        assert_eq!(h.outcome, CheckOutcome::Rejected(401));
    }

    #[test]
    fn checks_before_remote_sdp_are_accepted() {
        let mut ice = IceLite::new(IceCredentials::new("LOCL", "localpassword0123456789"));
        let mut out = [0u8; 1500];
        let a = addr("127.0.0.1:40000");
        let h = ice.handle_stun(&check(&ice, "EARLY", true), a, Instant::now(), &mut out);
        assert_eq!(h.selected_changed, Some(a));
    }

    #[test]
    fn consent_expiry() {
        let mut ice = leg();
        let mut out = [0u8; 1500];
        let t0 = Instant::now();
        assert!(!ice.consent_expired(t0 + Duration::from_secs(60), CONSENT_TIMEOUT));
        let a = addr("127.0.0.1:40000");
        ice.handle_stun(&check(&ice, "RMT1", true), a, t0, &mut out);
        assert_eq!(ice.last_valid_check(), Some(t0));
        assert!(!ice.consent_expired(t0 + Duration::from_secs(30), CONSENT_TIMEOUT));
        assert!(ice.consent_expired(t0 + Duration::from_secs(31), CONSENT_TIMEOUT));
        let t1 = t0 + Duration::from_secs(25);
        ice.handle_stun(&check(&ice, "RMT1", false), a, t1, &mut out);
        assert!(!ice.consent_expired(t0 + Duration::from_secs(31), CONSENT_TIMEOUT));
    }
}
