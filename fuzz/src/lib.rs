//! Fuzz targets for the SIP and SDP parsers.
//!
//! Each target is a plain function over the input bytes that panics when an
//! invariant breaks. The AFL entry points in `src/bin/` wrap them with
//! `afl::fuzz!`; the `replay` binary and the tests call them directly, so a
//! crashing input can be reproduced with a normal build and a backtrace.

mod digest;
mod sdp_target;
mod sip_framer;
mod sip_message;
mod sip_uri;

pub use digest::sip_digest;
pub use sdp_target::sdp;
pub use sip_framer::sip_framer;
pub use sip_message::sip_message;
pub use sip_uri::sip_uri;

/// A target: takes the fuzzer input, panics on a broken invariant.
pub type Target = fn(&[u8]);

/// Every target by name, as used by `run.sh` and `replay`.
pub const TARGETS: &[(&str, Target)] = &[
    ("sip_message", sip_message),
    ("sip_uri", sip_uri),
    ("sip_framer", sip_framer),
    ("sip_digest", sip_digest),
    ("sdp", sdp),
];

/// Looks a target up by name.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

/// A deterministic value derived from the input, for choices that should
/// vary with the input but stay reproducible (split points, edit choices).
pub(crate) fn input_hash(data: &[u8]) -> u64 {
    // FNV-1a.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}
