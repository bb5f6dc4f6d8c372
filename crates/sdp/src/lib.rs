//! SDP (RFC 8866) model, sans-IO.
