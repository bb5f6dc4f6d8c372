use std::time::Instant;

use bytes::Bytes;

use super::{class, Action, Class, State, TimerConfig};

/// Non-INVITE server transaction (§17.2.2).
///
/// Trying absorbs request retransmissions; after a provisional (Proceeding)
/// or the final response (Completed) each retransmission is answered with
/// the latest response sent. Completed lasts timer J.
#[derive(Debug)]
pub struct NonInviteServer {
    timers: TimerConfig,
    reliable: bool,
    state: State,
    last_response: Option<Bytes>,
    timer_j: Option<Instant>,
}

impl NonInviteServer {
    /// Creates the transaction for a received request; the driver passes
    /// that request to the transaction user.
    pub fn new(timers: TimerConfig, reliable: bool) -> Self {
        Self {
            timers,
            reliable,
            state: State::Trying,
            last_response: None,
            timer_j: None,
        }
    }

    /// Current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Whether the transport is reliable (zero timer J).
    pub fn reliable(&self) -> bool {
        self.reliable
    }

    /// When `on_timer` must next be called, if a timer is armed.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timer_j
    }

    /// The transaction user sends a response; dropped once a final was sent.
    pub fn respond(&mut self, status: u16, response: Bytes, now: Instant) -> Vec<Action> {
        let Some(class) = class(status) else {
            return vec![];
        };
        if !matches!(self.state, State::Trying | State::Proceeding) {
            return vec![];
        }
        if class == Class::Provisional {
            self.state = State::Proceeding;
        } else {
            self.state = State::Completed;
            self.timer_j = Some(now + self.timers.timer_j(self.reliable));
        }
        self.last_response = Some(response.clone());
        vec![Action::Transmit(response)]
    }

    /// A retransmission of the request arrived.
    pub fn on_request(&mut self) -> Vec<Action> {
        match self.state {
            State::Proceeding | State::Completed => self
                .last_response
                .iter()
                .cloned()
                .map(Action::Transmit)
                .collect(),
            _ => vec![],
        }
    }

    /// Fires timer J if due at `now`.
    pub fn on_timer(&mut self, now: Instant) -> Vec<Action> {
        match self.timer_j {
            Some(at) if at <= now => self.terminate(None),
            _ => vec![],
        }
    }

    /// The transport failed to send a response (§17.2.4).
    pub fn on_transport_error(&mut self) -> Vec<Action> {
        match self.state {
            State::Proceeding | State::Completed => self.terminate(Some(Action::TransportError)),
            _ => vec![],
        }
    }

    fn terminate(&mut self, reason: Option<Action>) -> Vec<Action> {
        self.timer_j = None;
        self.state = State::Terminated;
        reason.into_iter().chain([Action::Terminated]).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transaction::sim::{msg, run_until, Clock};

    const TRYING: &str = "SIP/2.0 100 Trying\r\n\r\n";
    const OK: &str = "SIP/2.0 200 OK\r\n\r\n";

    fn start(reliable: bool) -> (Clock, NonInviteServer) {
        let tx = NonInviteServer::new(TimerConfig::default(), reliable);
        assert_eq!(tx.state(), State::Trying);
        assert_eq!(tx.reliable(), reliable);
        assert_eq!(tx.next_deadline(), None);
        (Clock::new(), tx)
    }

    #[test]
    fn absorbs_retransmissions_and_repeats_latest_response() {
        let (clock, mut tx) = start(false);
        assert_eq!(tx.on_request(), []);
        assert_eq!(
            tx.respond(100, msg(TRYING), clock.at(100)),
            [Action::Transmit(msg(TRYING))]
        );
        assert_eq!(tx.state(), State::Proceeding);
        assert_eq!(tx.on_request(), [Action::Transmit(msg(TRYING))]);
        assert_eq!(
            tx.respond(200, msg(OK), clock.at(1_000)),
            [Action::Transmit(msg(OK))]
        );
        assert_eq!(tx.state(), State::Completed);
        assert_eq!(tx.on_request(), [Action::Transmit(msg(OK))]);
        // A second final is a TU bug; never sent.
        assert_eq!(tx.respond(500, msg(OK), clock.at(1_100)), []);
        assert_eq!(tx.respond(1_000, msg(OK), clock.at(1_100)), []);
    }

    #[test]
    fn timer_j_ends_completed() {
        let (clock, mut tx) = start(false);
        tx.respond(200, msg(OK), clock.at(1_000));
        assert_eq!(tx.next_deadline(), Some(clock.at(33_000)));
        let fired = run_until(&mut tx, &clock, 60_000);
        assert_eq!(fired, [(33_000, vec![Action::Terminated])]);
        assert_eq!(tx.state(), State::Terminated);
        assert_eq!(tx.on_request(), []);
    }

    #[test]
    fn final_straight_from_trying_and_zero_timer_j_when_reliable() {
        let (clock, mut tx) = start(true);
        tx.respond(404, msg(OK), clock.at(10));
        assert_eq!(tx.state(), State::Completed);
        assert_eq!(tx.next_deadline(), Some(clock.at(10)));
        assert_eq!(tx.on_timer(clock.at(9)), []);
        assert_eq!(tx.on_timer(clock.at(10)), [Action::Terminated]);
    }

    #[test]
    fn transport_error_terminates_once_something_was_sent() {
        let (clock, mut tx) = start(false);
        assert_eq!(tx.on_transport_error(), []);
        tx.respond(180, msg(TRYING), clock.at(10));
        assert_eq!(
            tx.on_transport_error(),
            [Action::TransportError, Action::Terminated]
        );
        assert_eq!(tx.next_deadline(), None);
    }
}
