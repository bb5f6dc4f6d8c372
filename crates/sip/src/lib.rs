//! SIP message model (RFC 3261), sans-IO: no sockets, no clocks.
//!
//! - [`Message::parse`] indexes one datagram or WebSocket frame (RFC 7118:
//!   one message per frame) without copying it: the message keeps its bytes
//!   and the byte ranges of its start line, headers and body. Typed values
//!   ([`Via`], [`NameAddr`], [`CSeq`], [`Uri`]...) are decoded on demand and
//!   borrow from it.
//! - [`Message::validate`] checks what a proxy or registrar relies on and
//!   names the problem with an [`ErrorKind`] whose
//!   [`reason_phrase`](ParseError::reason_phrase) and
//!   [`status_code`](ParseError::status_code) make the answer.
//! - [`StreamFramer`] cuts TCP/TLS streams into messages and reports
//!   RFC 5626 keep-alive pings.
//! - Edits ([`Message::prepend_via`], [`Message::set_request_uri`],
//!   [`Message::decrement_max_forwards`]...) are recorded beside the
//!   received bytes; [`Message::serialize`] copies untouched lines verbatim.
//! - [`RequestBuilder`] and [`response_to`] (RFC 3261 §8.2.6) build messages.
//!
//! # Limits
//!
//! Parsing never panics and never allocates beyond what [`Limits`] bounds:
//!
//! | field | default | bounds |
//! |---|---|---|
//! | `max_message_size` | 65535 | a whole message; a stream framer's buffer for one message |
//! | `max_headers` | 128 | header lines (a folded header counts once); the index is one `Vec` |
//! | `max_line_len` | 8192 | one physical start or header line |
//!
//! Numbers (CSeq, Content-Length, Max-Forwards, ports, Expires, status
//! codes) are parsed with overflow checks.
//!
//! # Liberal parsing, strict validation
//!
//! `parse` fails only when the bytes cannot be indexed (or break a limit).
//! Irregularities an element must answer with 400 (extra spaces in the
//! Request-Line, a bad Request-URI, Content-Length larger than the
//! datagram...) are recorded and reported by `validate`, so that the error
//! response can still be built from the parsed Via, From, To, Call-ID and
//! CSeq.

pub mod digest;

mod builder;
mod edit;
mod error;
mod framing;
pub mod headers;
mod limits;
mod message;
mod scan;
pub mod uri;
mod validate;

pub use builder::{response_to, RequestBuilder, ResponseBuilder};
pub use error::{ErrorKind, ParseError};
pub use framing::{Frame, StreamFramer};
pub use headers::{CSeq, Contact, ContentType, MediaType, NameAddr, Param, Rport, Via};
pub use limits::Limits;
pub use message::{
    Contacts, HeaderEntry, HeaderKey, HeaderList, HeaderName, Message, Method, StartLine,
};
pub use scan::{pct_decode, unescape_quoted};
pub use uri::{Host, Scheme, Uri, UriBuf, UriParam};
pub use validate::Validation;
