use bytes::Bytes;

/// What a transaction asks its driver (transport and transaction user) to do.
///
/// Actions come in the order they must be performed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send these bytes to the peer on the transaction's transport.
    Transmit(Bytes),
    /// Hand the response just given to `on_response` to the transaction user.
    PassResponse {
        /// Its status code.
        status: u16,
    },
    /// Hand the request just given to `on_request` to the transaction user.
    PassRequest,
    /// A non-2xx final response to an INVITE arrived: build the ACK from it
    /// (§17.1.1.3) and hand it back with `send_ack`; the transaction keeps
    /// it to answer retransmissions of the response.
    SendAck {
        /// Status of the response being acknowledged.
        status: u16,
    },
    /// The transaction user has not answered an INVITE within 200 ms: build a
    /// 100 (Trying) and hand it back with `respond` (§17.2.1).
    SendTrying,
    /// Timer B, F or H fired: no final response (client) or no ACK (server).
    Timeout,
    /// The driver reported a transport failure for this transaction.
    TransportError,
    /// The transaction is over; always the last action it emits.
    Terminated,
}

/// Transaction state, shared by the four machines (each uses a subset).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// INVITE client: request sent, no response yet.
    Calling,
    /// Non-INVITE client or server: no provisional response yet.
    Trying,
    /// A provisional response was received (client) or may be sent (server).
    Proceeding,
    /// A final response was received (client) or sent (server); absorbing
    /// retransmissions.
    Completed,
    /// INVITE server: the ACK for a non-2xx final arrived.
    Confirmed,
    /// INVITE, RFC 6026: a 2xx was received or sent; 2xx retransmissions are
    /// end to end, the transaction only lingers to match them.
    Accepted,
    /// Done; the transaction can be dropped.
    Terminated,
}

/// Which of the four state machines a transaction runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransactionKind {
    /// [`InviteClient`](super::InviteClient).
    InviteClient,
    /// [`NonInviteClient`](super::NonInviteClient).
    NonInviteClient,
    /// [`InviteServer`](super::InviteServer).
    InviteServer,
    /// [`NonInviteServer`](super::NonInviteServer).
    NonInviteServer,
}
