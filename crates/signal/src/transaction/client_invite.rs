use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{class, earliest, earliest_due, Action, Class, State, TimerConfig};

#[derive(Debug, Clone, Copy)]
enum Timer {
    A,
    B,
    D,
    M,
}

/// INVITE client transaction (§17.1.1, with RFC 6026's Accepted state).
///
/// Calling → Proceeding on 1xx; → Completed on 300-699, asking for an ACK
/// and repeating it for each retransmitted response until timer D; →
/// Accepted on 2xx, passing every 2xx up (they are acknowledged end to end)
/// until timer M. Timer A retransmits the INVITE on unreliable transports;
/// timer B times out a request that got no response at all.
#[derive(Debug)]
pub struct InviteClient {
    timers: TimerConfig,
    reliable: bool,
    state: State,
    request: Bytes,
    ack: Option<Bytes>,
    interval_a: Duration,
    timer_a: Option<Instant>,
    timer_b: Option<Instant>,
    timer_d: Option<Instant>,
    timer_m: Option<Instant>,
}

impl InviteClient {
    /// Starts the transaction: the first action transmits `request`.
    pub fn new(
        timers: TimerConfig,
        request: Bytes,
        reliable: bool,
        now: Instant,
    ) -> (Self, Vec<Action>) {
        let tx = Self {
            timers,
            reliable,
            state: State::Calling,
            ack: None,
            interval_a: timers.timer_a(),
            timer_a: (!reliable).then(|| now + timers.timer_a()),
            timer_b: Some(now + timers.timer_b()),
            timer_d: None,
            timer_m: None,
            request: request.clone(),
        };
        (tx, vec![Action::Transmit(request)])
    }

    /// Current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Whether the transport is reliable (no retransmissions, zero timer D).
    pub fn reliable(&self) -> bool {
        self.reliable
    }

    /// When `on_timer` must next be called, if a timer is armed.
    pub fn next_deadline(&self) -> Option<Instant> {
        earliest(&[self.timer_a, self.timer_b, self.timer_d, self.timer_m])
    }

    /// A response matching this transaction arrived.
    pub fn on_response(&mut self, status: u16, now: Instant) -> Vec<Action> {
        let Some(class) = class(status) else {
            return vec![];
        };
        match (self.state, class) {
            (State::Calling | State::Proceeding, Class::Provisional) => {
                // Any response proves the INVITE arrived: stop A and B.
                self.timer_a = None;
                self.timer_b = None;
                self.state = State::Proceeding;
                vec![Action::PassResponse { status }]
            }
            (State::Calling | State::Proceeding, Class::Success) => {
                self.timer_a = None;
                self.timer_b = None;
                self.state = State::Accepted;
                self.timer_m = Some(now + self.timers.timer_m());
                vec![Action::PassResponse { status }]
            }
            (State::Calling | State::Proceeding, Class::Final) => {
                self.timer_a = None;
                self.timer_b = None;
                self.state = State::Completed;
                self.timer_d = Some(now + self.timers.timer_d(self.reliable));
                vec![Action::PassResponse { status }, Action::SendAck { status }]
            }
            // Retransmitted final: our ACK was lost, repeat it, or ask again
            // if the ACK was never handed over.
            (State::Completed, Class::Final) => match &self.ack {
                Some(ack) => vec![Action::Transmit(ack.clone())],
                None => vec![Action::SendAck { status }],
            },
            // Retransmitted or forked 2xx: the TU acknowledges each one.
            (State::Accepted, Class::Success) => vec![Action::PassResponse { status }],
            _ => vec![],
        }
    }

    /// The ACK built after [`Action::SendAck`]; transmitted now and again for
    /// each retransmitted final response. Ignored outside Completed.
    pub fn send_ack(&mut self, ack: Bytes) -> Vec<Action> {
        if self.state != State::Completed {
            return vec![];
        }
        self.ack = Some(ack.clone());
        vec![Action::Transmit(ack)]
    }

    /// Fires every timer due at `now`, earliest first.
    pub fn on_timer(&mut self, now: Instant) -> Vec<Action> {
        let mut out = vec![];
        while let Some(timer) = earliest_due(
            &[
                (Timer::A, self.timer_a),
                (Timer::B, self.timer_b),
                (Timer::D, self.timer_d),
                (Timer::M, self.timer_m),
            ],
            now,
        ) {
            match timer {
                Timer::A => {
                    out.push(Action::Transmit(self.request.clone()));
                    // INVITE backoff is not capped at T2 (§17.1.1.2).
                    self.interval_a = self.interval_a.saturating_mul(2);
                    self.timer_a = Some(now + self.interval_a);
                }
                Timer::B => self.terminate(&mut out, Some(Action::Timeout)),
                Timer::D | Timer::M => self.terminate(&mut out, None),
            }
        }
        out
    }

    /// The transport failed to send the INVITE or ACK (§17.1.4).
    pub fn on_transport_error(&mut self) -> Vec<Action> {
        let mut out = vec![];
        // In Accepted nothing is sent by the transaction.
        if matches!(
            self.state,
            State::Calling | State::Proceeding | State::Completed
        ) {
            self.terminate(&mut out, Some(Action::TransportError));
        }
        out
    }

    fn terminate(&mut self, out: &mut Vec<Action>, reason: Option<Action>) {
        self.timer_a = None;
        self.timer_b = None;
        self.timer_d = None;
        self.timer_m = None;
        self.state = State::Terminated;
        out.extend(reason);
        out.push(Action::Terminated);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transaction::sim::{msg, run_until, transmit_times, Clock};

    const INVITE: &str = "INVITE sip:bob@example SIP/2.0\r\n\r\n";
    const ACK: &str = "ACK sip:bob@example SIP/2.0\r\n\r\n";

    fn start(reliable: bool) -> (Clock, InviteClient) {
        let clock = Clock::new();
        let (tx, first) =
            InviteClient::new(TimerConfig::default(), msg(INVITE), reliable, clock.at(0));
        assert_eq!(first, [Action::Transmit(msg(INVITE))]);
        assert_eq!(tx.state(), State::Calling);
        assert_eq!(tx.reliable(), reliable);
        (clock, tx)
    }

    #[test]
    fn udp_retransmits_with_doubling_then_times_out_on_timer_b() {
        let (clock, mut tx) = start(false);
        let fired = run_until(&mut tx, &clock, 60_000);
        assert_eq!(
            transmit_times(&fired, &msg(INVITE)),
            [500, 1_500, 3_500, 7_500, 15_500, 31_500]
        );
        assert_eq!(
            fired.last().unwrap(),
            &(32_000, vec![Action::Timeout, Action::Terminated])
        );
        assert_eq!(tx.state(), State::Terminated);
        assert_eq!(tx.next_deadline(), None);
    }

    #[test]
    fn reliable_transport_never_retransmits() {
        let (clock, mut tx) = start(true);
        assert_eq!(tx.next_deadline(), Some(clock.at(32_000)));
        let fired = run_until(&mut tx, &clock, 60_000);
        assert_eq!(fired, [(32_000, vec![Action::Timeout, Action::Terminated])]);
    }

    #[test]
    fn provisional_stops_retransmits_and_timer_b() {
        let (clock, mut tx) = start(false);
        assert_eq!(tx.on_timer(clock.at(500)), [Action::Transmit(msg(INVITE))]);
        assert_eq!(
            tx.on_response(180, clock.at(700)),
            [Action::PassResponse { status: 180 }]
        );
        assert_eq!(tx.state(), State::Proceeding);
        assert_eq!(tx.next_deadline(), None);
        assert_eq!(tx.on_timer(clock.at(40_000)), []);
        // Further provisionals go up too.
        assert_eq!(
            tx.on_response(183, clock.at(900)),
            [Action::PassResponse { status: 183 }]
        );
        assert_eq!(tx.state(), State::Proceeding);
    }

    #[test]
    fn non_2xx_final_asks_for_ack_and_waits_timer_d() {
        let (clock, mut tx) = start(false);
        tx.on_response(180, clock.at(100));
        assert_eq!(
            tx.on_response(486, clock.at(1_000)),
            [
                Action::PassResponse { status: 486 },
                Action::SendAck { status: 486 }
            ]
        );
        assert_eq!(tx.state(), State::Completed);
        assert_eq!(tx.send_ack(msg(ACK)), [Action::Transmit(msg(ACK))]);
        assert_eq!(tx.next_deadline(), Some(clock.at(33_000)));
        // A retransmitted 486 means the ACK was lost: repeat it, quietly.
        assert_eq!(
            tx.on_response(486, clock.at(1_500)),
            [Action::Transmit(msg(ACK))]
        );
        // Stray responses in Completed are dropped.
        assert_eq!(tx.on_response(200, clock.at(1_600)), []);
        assert_eq!(tx.on_response(180, clock.at(1_600)), []);
        assert_eq!(tx.on_timer(clock.at(32_999)), []);
        assert_eq!(tx.on_timer(clock.at(33_000)), [Action::Terminated]);
        assert_eq!(tx.state(), State::Terminated);
    }

    #[test]
    fn final_in_calling_goes_straight_to_completed() {
        let (clock, mut tx) = start(false);
        assert_eq!(
            tx.on_response(603, clock.at(200)),
            [
                Action::PassResponse { status: 603 },
                Action::SendAck { status: 603 }
            ]
        );
        assert_eq!(tx.state(), State::Completed);
        // Timer A is gone: only D remains.
        assert_eq!(tx.next_deadline(), Some(clock.at(32_200)));
    }

    #[test]
    fn retransmitted_final_before_ack_handed_over_asks_again() {
        let (clock, mut tx) = start(false);
        tx.on_response(486, clock.at(100));
        assert_eq!(
            tx.on_response(486, clock.at(600)),
            [Action::SendAck { status: 486 }]
        );
    }

    #[test]
    fn reliable_final_has_zero_timer_d() {
        let (clock, mut tx) = start(true);
        tx.on_response(404, clock.at(300));
        assert_eq!(tx.state(), State::Completed);
        // Due at once, but only fires on the next on_timer: the ACK gets out.
        assert_eq!(tx.next_deadline(), Some(clock.at(300)));
        assert_eq!(tx.send_ack(msg(ACK)), [Action::Transmit(msg(ACK))]);
        assert_eq!(tx.on_timer(clock.at(300)), [Action::Terminated]);
    }

    #[test]
    fn success_enters_accepted_and_passes_every_2xx_until_timer_m() {
        let (clock, mut tx) = start(false);
        tx.on_response(180, clock.at(100));
        assert_eq!(
            tx.on_response(200, clock.at(2_000)),
            [Action::PassResponse { status: 200 }]
        );
        assert_eq!(tx.state(), State::Accepted);
        assert_eq!(tx.next_deadline(), Some(clock.at(34_000)));
        // Retransmitted or forked 2xx: the TU must ACK each.
        assert_eq!(
            tx.on_response(200, clock.at(2_500)),
            [Action::PassResponse { status: 200 }]
        );
        assert_eq!(tx.on_response(180, clock.at(2_600)), []);
        assert_eq!(tx.on_response(486, clock.at(2_700)), []);
        assert_eq!(tx.send_ack(msg(ACK)), []);
        assert_eq!(tx.on_transport_error(), []);
        assert_eq!(tx.on_timer(clock.at(34_000)), [Action::Terminated]);
    }

    #[test]
    fn success_in_calling_stops_retransmits() {
        let (clock, mut tx) = start(false);
        tx.on_response(200, clock.at(100));
        let fired = run_until(&mut tx, &clock, 60_000);
        assert_eq!(fired, [(32_100, vec![Action::Terminated])]);
    }

    #[test]
    fn late_timer_call_sends_one_retransmit_not_a_burst() {
        let (clock, mut tx) = start(false);
        assert_eq!(
            tx.on_timer(clock.at(10_000)),
            [Action::Transmit(msg(INVITE))]
        );
        assert_eq!(tx.next_deadline(), Some(clock.at(11_000)));
    }

    #[test]
    fn transport_error_terminates() {
        for prior in [None, Some(180), Some(486)] {
            let (clock, mut tx) = start(false);
            if let Some(status) = prior {
                tx.on_response(status, clock.at(10));
            }
            assert_eq!(
                tx.on_transport_error(),
                [Action::TransportError, Action::Terminated]
            );
            assert_eq!(tx.state(), State::Terminated);
            assert_eq!(tx.next_deadline(), None);
            assert_eq!(tx.on_response(200, clock.at(20)), []);
        }
    }

    #[test]
    fn invalid_status_is_ignored() {
        let (clock, mut tx) = start(false);
        assert_eq!(tx.on_response(99, clock.at(10)), []);
        assert_eq!(tx.on_response(700, clock.at(10)), []);
        assert_eq!(tx.state(), State::Calling);
    }
}
