//! SIP message model (RFC 3261), sans-IO.

pub mod digest;
