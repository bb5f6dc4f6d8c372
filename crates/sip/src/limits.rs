//! Resource limits applied while parsing and framing.

/// Bounds on what a parser or framer accepts. Parsing never allocates more
/// than these allow: the header index is one `Vec` of at most `max_headers`
/// entries, and a stream framer buffers at most `max_message_size` bytes of
/// an incomplete message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest whole message (start line, headers and body), in bytes.
    /// Default 65535, the largest UDP payload.
    pub max_message_size: usize,
    /// Most header lines (a folded header counts once). Default 128.
    pub max_headers: usize,
    /// Longest single physical line (start line or header line, without
    /// its CRLF). Default 8192.
    pub max_line_len: usize,
}

impl Limits {
    /// Limits that accept anything the address space allows; for messages
    /// built locally, never for input from the network.
    pub const fn unbounded() -> Self {
        Limits {
            max_message_size: usize::MAX,
            max_headers: usize::MAX,
            max_line_len: usize::MAX,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_size: 65535,
            max_headers: 128,
            max_line_len: 8192,
        }
    }
}
