use std::fmt;

/// SIP request method. Methods are case-sensitive (§7.1), so an unknown
/// spelling is kept as an extension rather than folded.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    /// INVITE
    Invite,
    /// ACK
    Ack,
    /// BYE
    Bye,
    /// CANCEL
    Cancel,
    /// REGISTER
    Register,
    /// OPTIONS
    Options,
    /// INFO
    Info,
    /// UPDATE
    Update,
    /// PRACK
    Prack,
    /// SUBSCRIBE
    Subscribe,
    /// NOTIFY
    Notify,
    /// REFER
    Refer,
    /// MESSAGE
    Message,
    /// PUBLISH
    Publish,
    /// Any other token.
    Extension(Box<str>),
}

impl Method {
    /// The method for a request-line or CSeq token.
    pub fn parse(token: &str) -> Self {
        match token {
            "INVITE" => Self::Invite,
            "ACK" => Self::Ack,
            "BYE" => Self::Bye,
            "CANCEL" => Self::Cancel,
            "REGISTER" => Self::Register,
            "OPTIONS" => Self::Options,
            "INFO" => Self::Info,
            "UPDATE" => Self::Update,
            "PRACK" => Self::Prack,
            "SUBSCRIBE" => Self::Subscribe,
            "NOTIFY" => Self::Notify,
            "REFER" => Self::Refer,
            "MESSAGE" => Self::Message,
            "PUBLISH" => Self::Publish,
            other => Self::Extension(other.into()),
        }
    }

    /// The token as written on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Invite => "INVITE",
            Self::Ack => "ACK",
            Self::Bye => "BYE",
            Self::Cancel => "CANCEL",
            Self::Register => "REGISTER",
            Self::Options => "OPTIONS",
            Self::Info => "INFO",
            Self::Update => "UPDATE",
            Self::Prack => "PRACK",
            Self::Subscribe => "SUBSCRIBE",
            Self::Notify => "NOTIFY",
            Self::Refer => "REFER",
            Self::Message => "MESSAGE",
            Self::Publish => "PUBLISH",
            Self::Extension(token) => token,
        }
    }
}

impl From<&str> for Method {
    fn from(token: &str) -> Self {
        Self::parse(token)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What transaction matching needs from a received request; the caller
/// extracts it from the parsed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestMeta {
    /// Request-line method.
    pub method: Method,
    /// `branch` parameter of the top Via, if present.
    pub branch: Option<String>,
    /// sent-by (`host[:port]`) of the top Via.
    pub sent_by: String,
    /// CSeq sequence number.
    pub cseq: u32,
    /// Call-ID value.
    pub call_id: String,
    /// From tag, if present.
    pub from_tag: Option<String>,
    /// To tag, if present.
    pub to_tag: Option<String>,
    /// Request-URI as received.
    pub request_uri: String,
    /// Whole top Via header field value as received; only used to match
    /// RFC 2543 requests, which have no usable branch.
    pub top_via: String,
}

/// What transaction matching needs from a received response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseMeta {
    /// Status code.
    pub status: u16,
    /// `branch` parameter of the top Via, if present.
    pub branch: Option<String>,
    /// Method in the CSeq header field.
    pub cseq_method: Method,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_round_trip_and_are_case_sensitive() {
        for token in ["INVITE", "ACK", "CANCEL", "BYE", "PUBLISH", "FOO"] {
            assert_eq!(Method::parse(token).as_str(), token);
            assert_eq!(Method::from(token).to_string(), token);
        }
        assert_eq!(Method::parse("invite"), Method::Extension("invite".into()));
    }
}
