use super::meta::{Method, RequestMeta, ResponseMeta};

/// Prefix of every RFC 3261 branch (§8.1.1.7); without it a request comes
/// from an RFC 2543 element and is matched on its headers instead.
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// Identifies a client transaction (§17.1.3): our own branch plus the method,
/// so a CANCEL, which reuses the INVITE's branch, gets its own transaction.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientKey {
    /// Branch we put in the top Via of the request.
    pub branch: String,
    /// Request method; the CSeq method of responses.
    pub method: Method,
}

impl ClientKey {
    /// Key for a request we are about to send.
    pub fn new(branch: impl Into<String>, method: Method) -> Self {
        Self {
            branch: branch.into(),
            method,
        }
    }

    /// Key a received response matches, or `None` without a branch (it
    /// cannot belong to any transaction we started).
    pub fn from_response(response: &ResponseMeta) -> Option<Self> {
        let branch = response.branch.as_ref()?;
        Some(Self::new(branch.clone(), response.cseq_method.clone()))
    }
}

/// Identifies a server transaction for an RFC 3261 request (§17.2.3): branch,
/// sent-by and method, with ACK folded onto the INVITE it acknowledges.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServerKey {
    /// Top Via branch (starts with [`MAGIC_COOKIE`]).
    pub branch: String,
    /// Top Via sent-by, lower-cased since host names are case-insensitive.
    pub sent_by: String,
    /// Method of the request that created the transaction.
    pub method: Method,
}

/// Identifies a server transaction for an RFC 2543 request (§17.2.3), which
/// has no unique branch: the identifying headers of the request instead.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LegacyServerKey {
    /// Request-URI.
    pub request_uri: String,
    /// To tag of the request that created the transaction.
    pub to_tag: Option<String>,
    /// From tag.
    pub from_tag: Option<String>,
    /// Call-ID.
    pub call_id: String,
    /// CSeq number.
    pub cseq: u32,
    /// Whole top Via value.
    pub top_via: String,
    /// Method of the request that created the transaction.
    pub method: Method,
}

/// The key a received request is matched on: by branch when it carries the
/// magic cookie, by headers otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ServerMatchKey {
    /// RFC 3261 request.
    Branch(ServerKey),
    /// RFC 2543 request.
    Legacy(LegacyServerKey),
}

impl ServerMatchKey {
    /// Key of the transaction `request` belongs to (or would create). ACK
    /// maps to the INVITE transaction; CANCEL keeps its own method.
    ///
    /// For an RFC 2543 ACK the To tag is the one of the response it
    /// acknowledges, which differs from the INVITE's when the INVITE had
    /// none; [`TransactionTable`](super::TransactionTable) also tries the
    /// key without it.
    pub fn from_request(request: &RequestMeta) -> Self {
        let method = match request.method {
            Method::Ack => Method::Invite,
            ref other => other.clone(),
        };
        Self::with_method(request, method)
    }

    /// Key of the INVITE transaction a CANCEL cancels (§9.2): the CANCEL's
    /// own key with the method taken as INVITE.
    pub fn cancel_target(cancel: &RequestMeta) -> Self {
        Self::with_method(cancel, Method::Invite)
    }

    /// Whether this is an RFC 2543 key.
    pub fn is_legacy(&self) -> bool {
        matches!(self, Self::Legacy(_))
    }

    fn with_method(request: &RequestMeta, method: Method) -> Self {
        match &request.branch {
            Some(branch) if branch.starts_with(MAGIC_COOKIE) => Self::Branch(ServerKey {
                branch: branch.clone(),
                sent_by: request.sent_by.to_ascii_lowercase(),
                method,
            }),
            _ => Self::Legacy(LegacyServerKey {
                request_uri: request.request_uri.clone(),
                to_tag: request.to_tag.clone(),
                from_tag: request.from_tag.clone(),
                call_id: request.call_id.clone(),
                cseq: request.cseq,
                top_via: request.top_via.clone(),
                method,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transaction::sim::request;

    #[test]
    fn ack_matches_the_invite_and_cancel_has_its_own_key() {
        let invite = request(Method::Invite, Some("z9hG4bK1"));
        let ack = request(Method::Ack, Some("z9hG4bK1"));
        let cancel = request(Method::Cancel, Some("z9hG4bK1"));
        let invite_key = ServerMatchKey::from_request(&invite);
        assert_eq!(ServerMatchKey::from_request(&ack), invite_key);
        assert_ne!(ServerMatchKey::from_request(&cancel), invite_key);
        assert_eq!(ServerMatchKey::cancel_target(&cancel), invite_key);
        let ServerMatchKey::Branch(key) = invite_key else {
            panic!("expected a branch key");
        };
        assert_eq!(key.method, Method::Invite);
    }

    #[test]
    fn sent_by_matters_and_ignores_case() {
        let a = request(Method::Options, Some("z9hG4bK1"));
        let mut b = a.clone();
        b.sent_by = a.sent_by.to_ascii_uppercase();
        assert_eq!(
            ServerMatchKey::from_request(&a),
            ServerMatchKey::from_request(&b)
        );
        b.sent_by = "other.example:5060".into();
        assert_ne!(
            ServerMatchKey::from_request(&a),
            ServerMatchKey::from_request(&b)
        );
    }

    #[test]
    fn no_magic_cookie_falls_back_to_headers() {
        for branch in [None, Some("1234"), Some("Z9HG4BK1")] {
            let key = ServerMatchKey::from_request(&request(Method::Invite, branch));
            assert!(key.is_legacy(), "{branch:?}");
        }
        let invite = request(Method::Invite, None);
        let mut other = invite.clone();
        other.cseq += 1;
        assert_ne!(
            ServerMatchKey::from_request(&invite),
            ServerMatchKey::from_request(&other)
        );
        let mut ack = invite.clone();
        ack.method = Method::Ack;
        assert_eq!(
            ServerMatchKey::from_request(&ack),
            ServerMatchKey::from_request(&invite)
        );
    }

    #[test]
    fn client_key_separates_cancel_from_invite() {
        let response = |method| ResponseMeta {
            status: 200,
            branch: Some("z9hG4bKc".into()),
            cseq_method: method,
        };
        let invite = ClientKey::from_response(&response(Method::Invite)).unwrap();
        let cancel = ClientKey::from_response(&response(Method::Cancel)).unwrap();
        assert_eq!(invite, ClientKey::new("z9hG4bKc", Method::Invite));
        assert_ne!(invite, cancel);
        let mut no_branch = response(Method::Invite);
        no_branch.branch = None;
        assert_eq!(ClientKey::from_response(&no_branch), None);
    }
}
