//! RFC 3261 §17 transactions (with the RFC 6026 corrections for 2xx to INVITE).
//!
//! Four state machines, one per transaction kind:
//!
//! | machine             | states                                              | timers        |
//! |---------------------|-----------------------------------------------------|---------------|
//! | [`InviteClient`]    | Calling, Proceeding, Completed, Accepted, Terminated | A, B, D, M    |
//! | [`NonInviteClient`] | Trying, Proceeding, Completed, Terminated           | E, F, K       |
//! | [`InviteServer`]    | Proceeding, Completed, Confirmed, Accepted, Terminated | G, H, I, L, 200 ms Trying |
//! | [`NonInviteServer`] | Trying, Proceeding, Completed, Terminated           | J             |
//!
//! Each can be used alone; [`TransactionTable`] owns many of them, matches
//! incoming messages to them (§17.1.3, §17.2.3), runs their timers and drops
//! them once terminated.

mod action;
mod client_invite;
mod client_non_invite;
mod key;
mod meta;
mod server_invite;
mod server_non_invite;
mod table;
mod timer;

#[cfg(test)]
mod sim;

pub use action::{Action, State, TransactionKind};
pub use client_invite::InviteClient;
pub use client_non_invite::NonInviteClient;
pub use key::{ClientKey, LegacyServerKey, ServerKey, ServerMatchKey, MAGIC_COOKIE};
pub use meta::{Method, RequestMeta, ResponseMeta};
pub use server_invite::InviteServer;
pub use server_non_invite::NonInviteServer;
pub use table::{RequestRoute, TableConfig, TableError, TransactionId, TransactionTable};
pub use timer::TimerConfig;

use std::time::Instant;

/// Status classes the machines branch on; anything outside 100..=699 is
/// ignored because no valid SIP response carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Provisional,
    Success,
    Final,
}

fn class(status: u16) -> Option<Class> {
    match status {
        100..=199 => Some(Class::Provisional),
        200..=299 => Some(Class::Success),
        300..=699 => Some(Class::Final),
        _ => None,
    }
}

/// Earliest armed timer that is due at `now`, if any.
fn earliest_due<T: Copy>(timers: &[(T, Option<Instant>)], now: Instant) -> Option<T> {
    timers
        .iter()
        .filter_map(|&(t, at)| at.filter(|at| *at <= now).map(|at| (at, t)))
        .min_by_key(|&(at, _)| at)
        .map(|(_, t)| t)
}

/// Earliest armed timer, due or not.
fn earliest(timers: &[Option<Instant>]) -> Option<Instant> {
    timers.iter().flatten().min().copied()
}
