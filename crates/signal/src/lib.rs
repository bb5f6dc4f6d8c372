//! SIP signalling logic for callgate, sans-IO.
//!
//! Nothing in this crate opens a socket, reads a clock or spawns a task. The
//! contract every state machine here follows:
//!
//! - **Time is an input.** Each call that can move a machine takes
//!   `now: std::time::Instant`. Timers only fire inside `on_timer(now)` (or
//!   [`transaction::TransactionTable::poll_timers`]); the driver sleeps until
//!   `next_deadline()` and calls back. Tests drive a simulated clock by
//!   passing chosen instants, so no test sleeps.
//! - **Output is data.** Calls return [`transaction::Action`]s (bytes to
//!   transmit, things to tell the transaction user) that the driver performs
//!   in order. The table queues them as `(TransactionId, Action)` events.
//! - **Messages are opaque.** The caller parses SIP and fills small metadata
//!   structs ([`transaction::RequestMeta`], [`transaction::ResponseMeta`]);
//!   serialized messages travel as [`bytes::Bytes`] and are only kept to be
//!   retransmitted byte for byte.
//! - **Zero timers are due at once.** On reliable transports timers D, I, J
//!   and K are zero: the deadline is `now`, and it fires on the next
//!   `on_timer`. That gives the driver the chance to hand an ACK back first.

pub mod auth;
pub mod proxy;
pub mod registrar;
#[warn(missing_docs)]
pub mod transaction;
pub mod trunk;

pub use proxy::{
    CallInfo, CallState, Core, CoreConfig, Dest, MediaHook, MediaPeer, MediaSide, Output, Source,
};

/// A SIP transport, as the signalling logic sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP
    Udp,
    /// TCP
    Tcp,
    /// TLS over TCP
    Tls,
    /// WebSocket (RFC 7118)
    Ws,
    /// Secure WebSocket (RFC 7118)
    Wss,
}

impl Transport {
    /// Reliable transports have no retransmission timers.
    pub fn is_reliable(self) -> bool {
        !matches!(self, Transport::Udp)
    }

    /// Via token.
    pub fn via_token(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
            Transport::Ws => "WS",
            Transport::Wss => "WSS",
        }
    }

    /// URI `transport=` value.
    pub fn param(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
            Transport::Ws => "ws",
            Transport::Wss => "wss",
        }
    }

    /// The `;transport=` URI parameter for this transport; empty for UDP,
    /// the default.
    pub fn uri_param(self) -> String {
        match self {
            Transport::Udp => String::new(),
            t => format!(";transport={}", t.param()),
        }
    }

    /// Parses a Via token or `transport=` value, case-insensitively.
    pub fn from_token(s: &str) -> Option<Transport> {
        [
            Transport::Udp,
            Transport::Tcp,
            Transport::Tls,
            Transport::Ws,
            Transport::Wss,
        ]
        .into_iter()
        .find(|t| t.param().eq_ignore_ascii_case(s))
    }
}
