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

#![warn(missing_docs)]

pub mod transaction;
