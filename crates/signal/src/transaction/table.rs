use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::fmt;
use std::time::Instant;

use bytes::Bytes;

use super::{
    Action, ClientKey, InviteClient, InviteServer, LegacyServerKey, Method, NonInviteClient,
    NonInviteServer, RequestMeta, ResponseMeta, ServerMatchKey, State, TimerConfig,
    TransactionKind,
};

/// Stale heap items tolerated before a rebuild, on top of two per entry.
const COMPACT_SLACK: usize = 64;

/// Handle of a transaction in a [`TransactionTable`]; never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransactionId(u64);

impl TransactionId {
    /// The raw number, for logs.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for TransactionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tx{}", self.0)
    }
}

/// Settings of a [`TransactionTable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableConfig {
    /// Timer values for every transaction.
    pub timers: TimerConfig,
    /// Most transactions alive at once; past it new ones are refused with
    /// [`TableError::Full`] (answer 503) so a flood cannot exhaust memory.
    pub max_transactions: usize,
}

impl Default for TableConfig {
    fn default() -> Self {
        Self {
            timers: TimerConfig::default(),
            // A UDP non-INVITE server transaction lives 32 s after its
            // answer (Timer J), so a registrar taking 3 000 REGISTER/s with
            // challenges holds ~200k; each costs about a kilobyte.
            max_transactions: 250_000,
        }
    }
}

/// Why a [`TransactionTable`] call was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    /// `max_transactions` are alive; a server should answer 503.
    #[error("transaction table full ({max} transactions)")]
    Full {
        /// The configured limit.
        max: usize,
    },
    /// A client transaction with this branch and method already exists.
    #[error("a client transaction with this branch and method already exists")]
    Duplicate,
    /// ACK never has a client transaction of its own (§17.1).
    #[error("ACK does not start a client transaction")]
    AckRequest,
    /// No such transaction, or it already terminated.
    #[error("no transaction {0}")]
    NotFound(TransactionId),
    /// The operation belongs to another kind of transaction.
    #[error("{id} is a {kind:?} transaction")]
    WrongKind {
        /// The transaction.
        id: TransactionId,
        /// What it is.
        kind: TransactionKind,
    },
    /// The transaction's state does not allow it (a second final response,
    /// an ACK outside Completed); nothing was sent.
    #[error("{id} is {state:?}, which does not allow that")]
    InvalidState {
        /// The transaction.
        id: TransactionId,
        /// Its state.
        state: State,
    },
    /// Not a SIP status code (100-699).
    #[error("invalid status code {0}")]
    InvalidStatus(u16),
}

/// Where [`TransactionTable::on_request`] sent a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestRoute {
    /// A server transaction was created; a [`Action::PassRequest`] event is
    /// queued for it.
    New(TransactionId),
    /// It belongs to an existing transaction: a retransmission or an ACK for
    /// a non-2xx, absorbed (any retransmission it triggers is queued), or an
    /// RFC 2543 ACK for a 2xx, queued as [`Action::PassRequest`].
    Matched(TransactionId),
    /// An ACK that matches no transaction: the ACK for a 2xx, which is end
    /// to end; hand it to the transaction user or proxy core.
    UnmatchedAck,
}

#[derive(Debug)]
enum Machine {
    InviteClient(InviteClient),
    NonInviteClient(NonInviteClient),
    InviteServer(InviteServer),
    NonInviteServer(NonInviteServer),
}

impl Machine {
    fn kind(&self) -> TransactionKind {
        match self {
            Self::InviteClient(_) => TransactionKind::InviteClient,
            Self::NonInviteClient(_) => TransactionKind::NonInviteClient,
            Self::InviteServer(_) => TransactionKind::InviteServer,
            Self::NonInviteServer(_) => TransactionKind::NonInviteServer,
        }
    }

    fn state(&self) -> State {
        match self {
            Self::InviteClient(tx) => tx.state(),
            Self::NonInviteClient(tx) => tx.state(),
            Self::InviteServer(tx) => tx.state(),
            Self::NonInviteServer(tx) => tx.state(),
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        match self {
            Self::InviteClient(tx) => tx.next_deadline(),
            Self::NonInviteClient(tx) => tx.next_deadline(),
            Self::InviteServer(tx) => tx.next_deadline(),
            Self::NonInviteServer(tx) => tx.next_deadline(),
        }
    }

    fn on_timer(&mut self, now: Instant) -> Vec<Action> {
        match self {
            Self::InviteClient(tx) => tx.on_timer(now),
            Self::NonInviteClient(tx) => tx.on_timer(now),
            Self::InviteServer(tx) => tx.on_timer(now),
            Self::NonInviteServer(tx) => tx.on_timer(now),
        }
    }

    fn on_transport_error(&mut self) -> Vec<Action> {
        match self {
            Self::InviteClient(tx) => tx.on_transport_error(),
            Self::NonInviteClient(tx) => tx.on_transport_error(),
            Self::InviteServer(tx) => tx.on_transport_error(),
            Self::NonInviteServer(tx) => tx.on_transport_error(),
        }
    }
}

#[derive(Debug)]
enum IndexKey {
    Client(ClientKey),
    Server(ServerMatchKey),
}

#[derive(Debug)]
struct Entry {
    machine: Machine,
    key: IndexKey,
    /// Deadline last pushed on the heap; heap items that disagree are stale.
    scheduled: Option<Instant>,
}

/// Owns many transactions: creates them, routes incoming messages to them,
/// runs their timers and drops them once terminated.
///
/// Every outcome is queued as a `(TransactionId, Action)` event; drain them
/// with [`poll_event`](Self::poll_event) after each call. `PassRequest` and
/// `PassResponse` refer to the message given to the call that queued them.
/// The `Terminated` event is the last for a transaction, which is already
/// gone from the table by then.
///
/// ```
/// use std::time::Instant;
/// use bytes::Bytes;
/// use signal::transaction::{Action, ClientKey, Method, ResponseMeta, TransactionTable};
///
/// let mut table = TransactionTable::new(Default::default());
/// let now = Instant::now();
/// let key = ClientKey::new("z9hG4bK74bf9", Method::Invite);
/// let id = table
///     .start_client(key, Bytes::from_static(b"INVITE ..."), false, now)
///     .unwrap();
/// let response = ResponseMeta {
///     status: 486,
///     branch: Some("z9hG4bK74bf9".into()),
///     cseq_method: Method::Invite,
/// };
/// assert_eq!(table.on_response(&response, now), Some(id));
/// while let Some((id, action)) = table.poll_event() {
///     match action {
///         Action::Transmit(_bytes) => { /* send on the transport */ }
///         Action::SendAck { .. } => {
///             // Build the ACK from the 486, then hand it back.
///             table.send_ack(id, Bytes::from_static(b"ACK ...")).unwrap();
///         }
///         _ => { /* tell the transaction user */ }
///     }
/// }
/// // Sleep until table.next_deadline(), then:
/// table.poll_timers(Instant::now());
/// ```
#[derive(Debug)]
pub struct TransactionTable {
    config: TableConfig,
    next_id: u64,
    entries: HashMap<TransactionId, Entry>,
    clients: HashMap<ClientKey, TransactionId>,
    servers: HashMap<ServerMatchKey, TransactionId>,
    /// Min-heap of (deadline, id) with lazy deletion: items whose deadline
    /// no longer matches their entry's `scheduled` are skipped when popped.
    deadlines: BinaryHeap<Reverse<(Instant, TransactionId)>>,
    events: VecDeque<(TransactionId, Action)>,
}

impl TransactionTable {
    /// An empty table.
    pub fn new(config: TableConfig) -> Self {
        Self {
            config,
            next_id: 1,
            entries: HashMap::new(),
            clients: HashMap::new(),
            servers: HashMap::new(),
            deadlines: BinaryHeap::new(),
            events: VecDeque::new(),
        }
    }

    /// The settings in force.
    pub fn config(&self) -> &TableConfig {
        &self.config
    }

    /// Transactions alive.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no transaction is alive.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// State of a live transaction.
    pub fn state(&self, id: TransactionId) -> Option<State> {
        self.entries.get(&id).map(|e| e.machine.state())
    }

    /// Kind of a live transaction.
    pub fn kind(&self, id: TransactionId) -> Option<TransactionKind> {
        self.entries.get(&id).map(|e| e.machine.kind())
    }

    /// Starts a client transaction for a request we send; its first
    /// transmission is queued. `key.branch` must be the branch in the
    /// request's top Via.
    pub fn start_client(
        &mut self,
        key: ClientKey,
        request: Bytes,
        reliable: bool,
        now: Instant,
    ) -> Result<TransactionId, TableError> {
        if key.method == Method::Ack {
            return Err(TableError::AckRequest);
        }
        if self.clients.contains_key(&key) {
            return Err(TableError::Duplicate);
        }
        self.check_capacity()?;
        let timers = self.config.timers;
        let (machine, actions) = if key.method == Method::Invite {
            let (tx, actions) = InviteClient::new(timers, request, reliable, now);
            (Machine::InviteClient(tx), actions)
        } else {
            let (tx, actions) = NonInviteClient::new(timers, request, reliable, now);
            (Machine::NonInviteClient(tx), actions)
        };
        let id = self.insert(machine, IndexKey::Client(key));
        self.apply(id, actions);
        Ok(id)
    }

    /// Routes a received response to its client transaction (§17.1.3).
    /// `None`: it matches none, and goes to the core (a proxy forwards it
    /// statelessly, a user agent drops it).
    pub fn on_response(&mut self, response: &ResponseMeta, now: Instant) -> Option<TransactionId> {
        let key = ClientKey::from_response(response)?;
        let id = *self.clients.get(&key)?;
        let entry = self.entries.get_mut(&id)?;
        let actions = match &mut entry.machine {
            Machine::InviteClient(tx) => tx.on_response(response.status, now),
            Machine::NonInviteClient(tx) => tx.on_response(response.status, now),
            Machine::InviteServer(_) | Machine::NonInviteServer(_) => return None,
        };
        self.apply(id, actions);
        Some(id)
    }

    /// Routes a received request to its server transaction (§17.2.3), or
    /// creates one. `reliable` is the transport it came on; it only matters
    /// for a new transaction. Fails with [`TableError::Full`] when a new
    /// transaction is needed and the table is at its limit.
    pub fn on_request(
        &mut self,
        request: &RequestMeta,
        reliable: bool,
        now: Instant,
    ) -> Result<RequestRoute, TableError> {
        let key = ServerMatchKey::from_request(request);
        let is_ack = request.method == Method::Ack;
        if let Some(id) = self.find_server(&key, is_ack) {
            let actions = match self.entries.get_mut(&id).map(|e| &mut e.machine) {
                Some(Machine::InviteServer(tx)) => tx.on_request(&request.method, now),
                Some(Machine::NonInviteServer(tx)) => tx.on_request(),
                _ => vec![],
            };
            self.apply(id, actions);
            return Ok(RequestRoute::Matched(id));
        }
        if is_ack {
            return Ok(RequestRoute::UnmatchedAck);
        }
        self.check_capacity()?;
        let timers = self.config.timers;
        let machine = if request.method == Method::Invite {
            Machine::InviteServer(InviteServer::new(timers, reliable, now))
        } else {
            Machine::NonInviteServer(NonInviteServer::new(timers, reliable))
        };
        let id = self.insert(machine, IndexKey::Server(key));
        self.apply(id, vec![Action::PassRequest]);
        Ok(RequestRoute::New(id))
    }

    /// The INVITE server transaction a received CANCEL targets (§9.2), if
    /// it is still alive. The CANCEL itself has its own transaction.
    pub fn cancel_target(&self, cancel: &RequestMeta) -> Option<TransactionId> {
        self.servers
            .get(&ServerMatchKey::cancel_target(cancel))
            .copied()
    }

    /// Sends a response on a server transaction; the transmission is queued.
    pub fn respond(
        &mut self,
        id: TransactionId,
        status: u16,
        response: Bytes,
        now: Instant,
    ) -> Result<(), TableError> {
        if !(100..=699).contains(&status) {
            return Err(TableError::InvalidStatus(status));
        }
        let entry = self.entries.get_mut(&id).ok_or(TableError::NotFound(id))?;
        let actions = match &mut entry.machine {
            Machine::InviteServer(tx) => tx.respond(status, response, now),
            Machine::NonInviteServer(tx) => tx.respond(status, response, now),
            other => {
                let kind = other.kind();
                return Err(TableError::WrongKind { id, kind });
            }
        };
        self.apply_or_refuse(id, actions)
    }

    /// Hands over the ACK asked for by [`Action::SendAck`]; its transmission
    /// is queued. Call it before the next [`poll_timers`](Self::poll_timers):
    /// on a reliable transport timer D is zero and ends the transaction.
    pub fn send_ack(&mut self, id: TransactionId, ack: Bytes) -> Result<(), TableError> {
        let entry = self.entries.get_mut(&id).ok_or(TableError::NotFound(id))?;
        let actions = match &mut entry.machine {
            Machine::InviteClient(tx) => tx.send_ack(ack),
            other => {
                let kind = other.kind();
                return Err(TableError::WrongKind { id, kind });
            }
        };
        self.apply_or_refuse(id, actions)
    }

    /// The transport could not deliver a message of this transaction.
    pub fn on_transport_error(&mut self, id: TransactionId) -> Result<(), TableError> {
        let entry = self.entries.get_mut(&id).ok_or(TableError::NotFound(id))?;
        let actions = entry.machine.on_transport_error();
        self.apply(id, actions);
        Ok(())
    }

    /// When [`poll_timers`](Self::poll_timers) should next run. May be
    /// early (a timer since cancelled), never late.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.peek().map(|Reverse((at, _))| *at)
    }

    /// Fires every timer due at `now`; the resulting actions are queued.
    pub fn poll_timers(&mut self, now: Instant) {
        while let Some(&Reverse((at, id))) = self.deadlines.peek() {
            if at > now {
                break;
            }
            self.deadlines.pop();
            let Some(entry) = self.entries.get_mut(&id) else {
                continue;
            };
            if entry.scheduled != Some(at) {
                continue;
            }
            // Cleared so `apply` pushes whatever the machine arms next.
            entry.scheduled = None;
            let actions = entry.machine.on_timer(now);
            self.apply(id, actions);
        }
    }

    /// Next queued event, oldest first.
    pub fn poll_event(&mut self) -> Option<(TransactionId, Action)> {
        self.events.pop_front()
    }

    fn check_capacity(&self) -> Result<(), TableError> {
        let max = self.config.max_transactions;
        if self.entries.len() >= max {
            return Err(TableError::Full { max });
        }
        Ok(())
    }

    fn find_server(&self, key: &ServerMatchKey, is_ack: bool) -> Option<TransactionId> {
        if let Some(id) = self.servers.get(key) {
            return Some(*id);
        }
        match key {
            // An RFC 2543 ACK carries the To tag of our response; the INVITE
            // it acknowledges had none unless it was a re-INVITE. Checking
            // the tag against our response adds nothing: one server
            // transaction sends one final response.
            ServerMatchKey::Legacy(legacy) if is_ack && legacy.to_tag.is_some() => {
                let untagged = LegacyServerKey {
                    to_tag: None,
                    ..legacy.clone()
                };
                self.servers.get(&ServerMatchKey::Legacy(untagged)).copied()
            }
            _ => None,
        }
    }

    fn insert(&mut self, machine: Machine, key: IndexKey) -> TransactionId {
        let id = TransactionId(self.next_id);
        self.next_id += 1;
        match &key {
            IndexKey::Client(k) => self.clients.insert(k.clone(), id),
            IndexKey::Server(k) => self.servers.insert(k.clone(), id),
        };
        self.entries.insert(
            id,
            Entry {
                machine,
                key,
                scheduled: None,
            },
        );
        id
    }

    fn apply_or_refuse(
        &mut self,
        id: TransactionId,
        actions: Vec<Action>,
    ) -> Result<(), TableError> {
        if actions.is_empty() {
            let state = self.state(id).unwrap_or(State::Terminated);
            return Err(TableError::InvalidState { id, state });
        }
        self.apply(id, actions);
        Ok(())
    }

    /// Queues a machine's actions, then drops it if it terminated or
    /// reschedules its deadline if that moved.
    fn apply(&mut self, id: TransactionId, actions: Vec<Action>) {
        let terminated = actions.contains(&Action::Terminated);
        self.events.extend(actions.into_iter().map(|a| (id, a)));
        if terminated {
            self.remove(id);
            return;
        }
        let Some(entry) = self.entries.get_mut(&id) else {
            return;
        };
        let next = entry.machine.next_deadline();
        if next == entry.scheduled {
            return;
        }
        entry.scheduled = next;
        if let Some(at) = next {
            self.deadlines.push(Reverse((at, id)));
            self.compact_deadlines();
        }
    }

    /// Rebuilds the heap once stale items dominate, so cancelled timers of
    /// long-lived transactions cannot pile up.
    fn compact_deadlines(&mut self) {
        if self.deadlines.len() <= COMPACT_SLACK + 2 * self.entries.len() {
            return;
        }
        self.deadlines = self
            .entries
            .iter()
            .filter_map(|(id, e)| e.scheduled.map(|at| Reverse((at, *id))))
            .collect();
    }

    fn remove(&mut self, id: TransactionId) {
        let Some(entry) = self.entries.remove(&id) else {
            return;
        };
        match entry.key {
            IndexKey::Client(key) => {
                if self.clients.get(&key) == Some(&id) {
                    self.clients.remove(&key);
                }
            }
            IndexKey::Server(key) => {
                if self.servers.get(&key) == Some(&id) {
                    self.servers.remove(&key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
