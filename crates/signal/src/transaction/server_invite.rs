use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{class, earliest, earliest_due, Action, Class, Method, State, TimerConfig};

#[derive(Debug, Clone, Copy)]
enum Timer {
    Trying,
    G,
    H,
    I,
    L,
}

/// INVITE server transaction (§17.2.1, with RFC 6026's Accepted state).
///
/// Proceeding: asks for a 100 (Trying) if the transaction user is silent for
/// 200 ms, answers INVITE retransmissions with the latest provisional. A
/// 300-699 moves to Completed, retransmitted on timer G (unreliable) and on
/// each INVITE retransmission until the ACK (→ Confirmed, absorbing for
/// timer I) or timer H. A 2xx moves to Accepted: the transaction user
/// retransmits its 2xx itself, the transaction absorbs INVITE retransmissions
/// until timer L.
#[derive(Debug)]
pub struct InviteServer {
    timers: TimerConfig,
    reliable: bool,
    state: State,
    provisional: Option<Bytes>,
    final_response: Option<Bytes>,
    interval_g: Duration,
    timer_trying: Option<Instant>,
    timer_g: Option<Instant>,
    timer_h: Option<Instant>,
    timer_i: Option<Instant>,
    timer_l: Option<Instant>,
}

impl InviteServer {
    /// Creates the transaction for an INVITE received at `now`; the driver
    /// passes that INVITE to the transaction user.
    pub fn new(timers: TimerConfig, reliable: bool, now: Instant) -> Self {
        Self {
            timers,
            reliable,
            state: State::Proceeding,
            provisional: None,
            final_response: None,
            interval_g: timers.timer_g(),
            timer_trying: Some(now + timers.trying_delay()),
            timer_g: None,
            timer_h: None,
            timer_i: None,
            timer_l: None,
        }
    }

    /// Current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Whether the transport is reliable (no timer G, zero timer I).
    pub fn reliable(&self) -> bool {
        self.reliable
    }

    /// When `on_timer` must next be called, if a timer is armed.
    pub fn next_deadline(&self) -> Option<Instant> {
        earliest(&[
            self.timer_trying,
            self.timer_g,
            self.timer_h,
            self.timer_i,
            self.timer_l,
        ])
    }

    /// The transaction user sends a response (including the 100 asked for by
    /// [`Action::SendTrying`] and its own 2xx retransmissions in Accepted).
    /// Responses the state does not allow are dropped.
    pub fn respond(&mut self, status: u16, response: Bytes, now: Instant) -> Vec<Action> {
        let Some(class) = class(status) else {
            return vec![];
        };
        match (self.state, class) {
            (State::Proceeding, Class::Provisional) => {
                self.timer_trying = None;
                self.provisional = Some(response.clone());
            }
            (State::Proceeding, Class::Success) => {
                self.timer_trying = None;
                self.state = State::Accepted;
                self.timer_l = Some(now + self.timers.timer_l());
            }
            (State::Proceeding, Class::Final) => {
                self.timer_trying = None;
                self.state = State::Completed;
                self.final_response = Some(response.clone());
                if !self.reliable {
                    self.timer_g = Some(now + self.interval_g);
                }
                self.timer_h = Some(now + self.timers.timer_h());
            }
            (State::Accepted, Class::Success) => {}
            _ => return vec![],
        }
        vec![Action::Transmit(response)]
    }

    /// A request matching this transaction arrived: an INVITE retransmission
    /// or an ACK. Other methods are ignored.
    pub fn on_request(&mut self, method: &Method, now: Instant) -> Vec<Action> {
        match (method, self.state) {
            (Method::Invite, State::Proceeding) => self
                .provisional
                .iter()
                .cloned()
                .map(Action::Transmit)
                .collect(),
            (Method::Invite, State::Completed) => self
                .final_response
                .iter()
                .cloned()
                .map(Action::Transmit)
                .collect(),
            (Method::Ack, State::Completed) => {
                self.timer_g = None;
                self.timer_h = None;
                self.state = State::Confirmed;
                self.timer_i = Some(now + self.timers.timer_i(self.reliable));
                vec![]
            }
            // RFC 6026 §7.1: only an RFC 2543 ACK for the 2xx can match here,
            // and it belongs to the transaction user.
            (Method::Ack, State::Accepted) => vec![Action::PassRequest],
            // Confirmed and Accepted absorb everything else.
            _ => vec![],
        }
    }

    /// Fires every timer due at `now`, earliest first.
    pub fn on_timer(&mut self, now: Instant) -> Vec<Action> {
        let mut out = vec![];
        while let Some(timer) = earliest_due(
            &[
                (Timer::Trying, self.timer_trying),
                (Timer::G, self.timer_g),
                (Timer::H, self.timer_h),
                (Timer::I, self.timer_i),
                (Timer::L, self.timer_l),
            ],
            now,
        ) {
            match timer {
                Timer::Trying => {
                    self.timer_trying = None;
                    out.push(Action::SendTrying);
                }
                Timer::G => {
                    out.extend(self.final_response.iter().cloned().map(Action::Transmit));
                    self.interval_g = self.timers.backoff(self.interval_g);
                    self.timer_g = Some(now + self.interval_g);
                }
                Timer::H => self.terminate(&mut out, Some(Action::Timeout)),
                Timer::I | Timer::L => self.terminate(&mut out, None),
            }
        }
        out
    }

    /// The transport failed to send a response (§17.2.4).
    pub fn on_transport_error(&mut self) -> Vec<Action> {
        let mut out = vec![];
        match self.state {
            State::Proceeding | State::Completed => {
                self.terminate(&mut out, Some(Action::TransportError));
            }
            // The 2xx is the transaction user's to deliver; stay to keep
            // absorbing INVITE retransmissions until timer L.
            State::Accepted => out.push(Action::TransportError),
            _ => {}
        }
        out
    }

    fn terminate(&mut self, out: &mut Vec<Action>, reason: Option<Action>) {
        self.timer_trying = None;
        self.timer_g = None;
        self.timer_h = None;
        self.timer_i = None;
        self.timer_l = None;
        self.state = State::Terminated;
        out.extend(reason);
        out.push(Action::Terminated);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transaction::sim::{msg, run_until, transmit_times, Clock};

    const TRYING: &str = "SIP/2.0 100 Trying\r\n\r\n";
    const RINGING: &str = "SIP/2.0 180 Ringing\r\n\r\n";
    const BUSY: &str = "SIP/2.0 486 Busy Here\r\n\r\n";
    const OK: &str = "SIP/2.0 200 OK\r\n\r\n";

    fn start(reliable: bool) -> (Clock, InviteServer) {
        let clock = Clock::new();
        let tx = InviteServer::new(TimerConfig::default(), reliable, clock.at(0));
        assert_eq!(tx.state(), State::Proceeding);
        assert_eq!(tx.reliable(), reliable);
        (clock, tx)
    }

    #[test]
    fn asks_for_100_trying_after_200ms_of_silence() {
        let (clock, mut tx) = start(false);
        assert_eq!(tx.next_deadline(), Some(clock.at(200)));
        assert_eq!(tx.on_timer(clock.at(199)), []);
        assert_eq!(tx.on_timer(clock.at(200)), [Action::SendTrying]);
        assert_eq!(tx.next_deadline(), None);
        assert_eq!(
            tx.respond(100, msg(TRYING), clock.at(201)),
            [Action::Transmit(msg(TRYING))]
        );
        assert_eq!(tx.state(), State::Proceeding);
    }

    #[test]
    fn no_100_trying_when_the_tu_answers_in_time() {
        let (clock, mut tx) = start(false);
        assert_eq!(
            tx.respond(180, msg(RINGING), clock.at(150)),
            [Action::Transmit(msg(RINGING))]
        );
        assert_eq!(tx.next_deadline(), None);
        assert_eq!(tx.on_timer(clock.at(200)), []);
    }

    #[test]
    fn invite_retransmission_repeats_latest_provisional() {
        let (clock, mut tx) = start(false);
        // Nothing sent yet: absorbed.
        assert_eq!(tx.on_request(&Method::Invite, clock.at(100)), []);
        tx.respond(100, msg(TRYING), clock.at(150));
        tx.respond(180, msg(RINGING), clock.at(300));
        assert_eq!(
            tx.on_request(&Method::Invite, clock.at(500)),
            [Action::Transmit(msg(RINGING))]
        );
        assert_eq!(tx.state(), State::Proceeding);
    }

    #[test]
    fn final_retransmits_on_timer_g_until_ack_then_timer_i() {
        let (clock, mut tx) = start(false);
        tx.respond(180, msg(RINGING), clock.at(100));
        assert_eq!(
            tx.respond(486, msg(BUSY), clock.at(1_000)),
            [Action::Transmit(msg(BUSY))]
        );
        assert_eq!(tx.state(), State::Completed);
        let fired = run_until(&mut tx, &clock, 13_000);
        // G doubles from T1, capped at T2.
        assert_eq!(
            transmit_times(&fired, &msg(BUSY)),
            [1_500, 2_500, 4_500, 8_500, 12_500]
        );
        // An INVITE retransmission also gets the final response.
        assert_eq!(
            tx.on_request(&Method::Invite, clock.at(13_100)),
            [Action::Transmit(msg(BUSY))]
        );
        assert_eq!(tx.on_request(&Method::Ack, clock.at(13_200)), []);
        assert_eq!(tx.state(), State::Confirmed);
        assert_eq!(tx.next_deadline(), Some(clock.at(18_200)));
        // Confirmed absorbs both INVITE and ACK retransmissions.
        assert_eq!(tx.on_request(&Method::Invite, clock.at(13_300)), []);
        assert_eq!(tx.on_request(&Method::Ack, clock.at(13_400)), []);
        assert_eq!(tx.on_transport_error(), []);
        let fired = run_until(&mut tx, &clock, 60_000);
        assert_eq!(fired, [(18_200, vec![Action::Terminated])]);
    }

    #[test]
    fn timer_h_times_out_without_ack() {
        let (clock, mut tx) = start(false);
        tx.respond(486, msg(BUSY), clock.at(0));
        let fired = run_until(&mut tx, &clock, 60_000);
        assert_eq!(
            transmit_times(&fired, &msg(BUSY)),
            [500, 1_500, 3_500, 7_500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500]
        );
        assert_eq!(
            fired.last().unwrap(),
            &(32_000, vec![Action::Timeout, Action::Terminated])
        );
        assert_eq!(tx.state(), State::Terminated);
    }

    #[test]
    fn reliable_final_has_no_timer_g_and_zero_timer_i() {
        let (clock, mut tx) = start(true);
        tx.respond(486, msg(BUSY), clock.at(100));
        assert_eq!(tx.next_deadline(), Some(clock.at(32_100)));
        tx.on_request(&Method::Ack, clock.at(150));
        assert_eq!(tx.state(), State::Confirmed);
        assert_eq!(tx.next_deadline(), Some(clock.at(150)));
        assert_eq!(tx.on_timer(clock.at(150)), [Action::Terminated]);
    }

    #[test]
    fn reliable_times_out_on_timer_h() {
        let (clock, mut tx) = start(true);
        tx.respond(486, msg(BUSY), clock.at(100));
        let fired = run_until(&mut tx, &clock, 60_000);
        assert_eq!(fired, [(32_100, vec![Action::Timeout, Action::Terminated])]);
    }

    #[test]
    fn success_enters_accepted_until_timer_l() {
        let (clock, mut tx) = start(false);
        assert_eq!(
            tx.respond(200, msg(OK), clock.at(1_000)),
            [Action::Transmit(msg(OK))]
        );
        assert_eq!(tx.state(), State::Accepted);
        assert_eq!(tx.next_deadline(), Some(clock.at(33_000)));
        // INVITE retransmissions are absorbed: the TU retransmits the 2xx.
        assert_eq!(tx.on_request(&Method::Invite, clock.at(1_500)), []);
        assert_eq!(
            tx.respond(200, msg(OK), clock.at(1_500)),
            [Action::Transmit(msg(OK))]
        );
        // Anything but a 2xx is refused now.
        assert_eq!(tx.respond(486, msg(BUSY), clock.at(1_600)), []);
        assert_eq!(tx.respond(180, msg(RINGING), clock.at(1_600)), []);
        // An ACK that matches here (RFC 2543) goes to the TU.
        assert_eq!(
            tx.on_request(&Method::Ack, clock.at(2_000)),
            [Action::PassRequest]
        );
        // A failed 2xx is reported but the transaction stays.
        assert_eq!(tx.on_transport_error(), [Action::TransportError]);
        assert_eq!(tx.state(), State::Accepted);
        let fired = run_until(&mut tx, &clock, 60_000);
        assert_eq!(fired, [(33_000, vec![Action::Terminated])]);
    }

    #[test]
    fn responses_after_the_final_are_dropped() {
        let (clock, mut tx) = start(false);
        tx.respond(486, msg(BUSY), clock.at(0));
        assert_eq!(tx.respond(200, msg(OK), clock.at(10)), []);
        assert_eq!(tx.respond(180, msg(RINGING), clock.at(10)), []);
        assert_eq!(tx.respond(42, msg(OK), clock.at(10)), []);
        assert_eq!(tx.on_request(&Method::Bye, clock.at(10)), []);
        assert_eq!(tx.state(), State::Completed);
    }

    #[test]
    fn transport_error_terminates_in_proceeding_and_completed() {
        for final_status in [None, Some(486)] {
            let (clock, mut tx) = start(false);
            if let Some(status) = final_status {
                tx.respond(status, msg(BUSY), clock.at(10));
            }
            assert_eq!(
                tx.on_transport_error(),
                [Action::TransportError, Action::Terminated]
            );
            assert_eq!(tx.next_deadline(), None);
        }
    }
}
