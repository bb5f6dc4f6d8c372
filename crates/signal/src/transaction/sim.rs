//! Simulated clock and fixtures shared by the unit tests.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{
    Action, InviteClient, InviteServer, Method, NonInviteClient, NonInviteServer, RequestMeta,
};

/// A clock that only moves when a test says so: instants are offsets in
/// milliseconds from an arbitrary origin.
pub(crate) struct Clock {
    origin: Instant,
}

impl Clock {
    pub(crate) fn new() -> Self {
        Self {
            origin: Instant::now(),
        }
    }

    pub(crate) fn at(&self, ms: u64) -> Instant {
        self.origin + Duration::from_millis(ms)
    }

    pub(crate) fn ms(&self, t: Instant) -> u64 {
        u64::try_from((t - self.origin).as_millis()).expect("test time fits")
    }
}

/// The timer half of a machine, so one driver loop serves all four.
pub(crate) trait Timed {
    fn next_deadline(&self) -> Option<Instant>;
    fn on_timer(&mut self, now: Instant) -> Vec<Action>;
}

macro_rules! timed {
    ($($t:ty),*) => {$(
        impl Timed for $t {
            fn next_deadline(&self) -> Option<Instant> {
                <$t>::next_deadline(self)
            }
            fn on_timer(&mut self, now: Instant) -> Vec<Action> {
                <$t>::on_timer(self, now)
            }
        }
    )*};
}
timed!(InviteClient, NonInviteClient, InviteServer, NonInviteServer);

/// Jumps from deadline to deadline up to `until_ms` inclusive, firing each
/// one exactly on time; returns (ms, actions) per firing.
pub(crate) fn run_until<M: Timed>(
    m: &mut M,
    clock: &Clock,
    until_ms: u64,
) -> Vec<(u64, Vec<Action>)> {
    let mut fired = vec![];
    while let Some(at) = m.next_deadline() {
        if clock.ms(at) > until_ms {
            break;
        }
        fired.push((clock.ms(at), m.on_timer(at)));
    }
    fired
}

/// Times (ms) at which `fired` contains a transmission of `bytes`.
pub(crate) fn transmit_times(fired: &[(u64, Vec<Action>)], bytes: &Bytes) -> Vec<u64> {
    fired
        .iter()
        .filter(|(_, actions)| actions.contains(&Action::Transmit(bytes.clone())))
        .map(|(ms, _)| *ms)
        .collect()
}

pub(crate) fn msg(text: &'static str) -> Bytes {
    Bytes::from_static(text.as_bytes())
}

/// Metadata of a request from `alice.example`, as a parser would fill it.
pub(crate) fn request(method: Method, branch: Option<&str>) -> RequestMeta {
    let via_branch = branch.map(|b| format!(";branch={b}")).unwrap_or_default();
    RequestMeta {
        method,
        branch: branch.map(str::to_owned),
        sent_by: "alice.example:5060".into(),
        cseq: 1,
        call_id: "call-1@alice.example".into(),
        from_tag: Some("from-1".into()),
        to_tag: None,
        request_uri: "sip:bob@callgate.example".into(),
        top_via: format!("SIP/2.0/UDP alice.example:5060{via_branch}"),
    }
}
