use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{class, earliest, earliest_due, Action, Class, State, TimerConfig};

#[derive(Debug, Clone, Copy)]
enum Timer {
    E,
    F,
    K,
}

/// Non-INVITE client transaction (§17.1.2).
///
/// Trying → Proceeding on 1xx; → Completed on any final, absorbing its
/// retransmissions until timer K. Timer E retransmits on unreliable
/// transports, doubling up to T2 in Trying and every T2 in Proceeding; timer
/// F times out the request.
#[derive(Debug)]
pub struct NonInviteClient {
    timers: TimerConfig,
    reliable: bool,
    state: State,
    request: Bytes,
    interval_e: Duration,
    timer_e: Option<Instant>,
    timer_f: Option<Instant>,
    timer_k: Option<Instant>,
}

impl NonInviteClient {
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
            state: State::Trying,
            interval_e: timers.timer_e(),
            timer_e: (!reliable).then(|| now + timers.timer_e()),
            timer_f: Some(now + timers.timer_f()),
            timer_k: None,
            request: request.clone(),
        };
        (tx, vec![Action::Transmit(request)])
    }

    /// Current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Whether the transport is reliable (no retransmissions, zero timer K).
    pub fn reliable(&self) -> bool {
        self.reliable
    }

    /// When `on_timer` must next be called, if a timer is armed.
    pub fn next_deadline(&self) -> Option<Instant> {
        earliest(&[self.timer_e, self.timer_f, self.timer_k])
    }

    /// A response matching this transaction arrived.
    pub fn on_response(&mut self, status: u16, now: Instant) -> Vec<Action> {
        let Some(class) = class(status) else {
            return vec![];
        };
        match (self.state, class) {
            (State::Trying | State::Proceeding, Class::Provisional) => {
                // E keeps running: the request is still retransmitted, only
                // its interval changes (see on_timer).
                self.state = State::Proceeding;
                vec![Action::PassResponse { status }]
            }
            (State::Trying | State::Proceeding, Class::Success | Class::Final) => {
                self.timer_e = None;
                self.timer_f = None;
                self.state = State::Completed;
                self.timer_k = Some(now + self.timers.timer_k(self.reliable));
                vec![Action::PassResponse { status }]
            }
            // Retransmissions in Completed are absorbed.
            _ => vec![],
        }
    }

    /// Fires every timer due at `now`, earliest first.
    pub fn on_timer(&mut self, now: Instant) -> Vec<Action> {
        let mut out = vec![];
        while let Some(timer) = earliest_due(
            &[
                (Timer::E, self.timer_e),
                (Timer::F, self.timer_f),
                (Timer::K, self.timer_k),
            ],
            now,
        ) {
            match timer {
                Timer::E => {
                    out.push(Action::Transmit(self.request.clone()));
                    // A provisional means the server is working on it: poll
                    // at a steady T2 instead of backing off (§17.1.2.2).
                    self.interval_e = if self.state == State::Proceeding {
                        self.timers.t2
                    } else {
                        self.timers.backoff(self.interval_e)
                    };
                    self.timer_e = Some(now + self.interval_e);
                }
                Timer::F => self.terminate(&mut out, Some(Action::Timeout)),
                Timer::K => self.terminate(&mut out, None),
            }
        }
        out
    }

    /// The transport failed to send the request (§17.1.4).
    pub fn on_transport_error(&mut self) -> Vec<Action> {
        let mut out = vec![];
        if matches!(self.state, State::Trying | State::Proceeding) {
            self.terminate(&mut out, Some(Action::TransportError));
        }
        out
    }

    fn terminate(&mut self, out: &mut Vec<Action>, reason: Option<Action>) {
        self.timer_e = None;
        self.timer_f = None;
        self.timer_k = None;
        self.state = State::Terminated;
        out.extend(reason);
        out.push(Action::Terminated);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transaction::sim::{msg, run_until, transmit_times, Clock};

    const OPTIONS: &str = "OPTIONS sip:bob@example SIP/2.0\r\n\r\n";

    fn start(reliable: bool) -> (Clock, NonInviteClient) {
        let clock = Clock::new();
        let (tx, first) =
            NonInviteClient::new(TimerConfig::default(), msg(OPTIONS), reliable, clock.at(0));
        assert_eq!(first, [Action::Transmit(msg(OPTIONS))]);
        assert_eq!(tx.state(), State::Trying);
        assert_eq!(tx.reliable(), reliable);
        (clock, tx)
    }

    #[test]
    fn timer_e_doubles_up_to_t2_in_trying_then_timer_f() {
        let (clock, mut tx) = start(false);
        let fired = run_until(&mut tx, &clock, 60_000);
        assert_eq!(
            transmit_times(&fired, &msg(OPTIONS)),
            [500, 1_500, 3_500, 7_500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500]
        );
        assert_eq!(
            fired.last().unwrap(),
            &(32_000, vec![Action::Timeout, Action::Terminated])
        );
        assert_eq!(tx.state(), State::Terminated);
    }

    #[test]
    fn timer_e_is_t2_in_proceeding_and_f_still_applies() {
        let (clock, mut tx) = start(false);
        assert_eq!(tx.on_timer(clock.at(500)), [Action::Transmit(msg(OPTIONS))]);
        assert_eq!(
            tx.on_response(100, clock.at(600)),
            [Action::PassResponse { status: 100 }]
        );
        assert_eq!(tx.state(), State::Proceeding);
        let fired = run_until(&mut tx, &clock, 60_000);
        // The pending E (at 1.5 s) still fires, then every T2.
        assert_eq!(
            transmit_times(&fired, &msg(OPTIONS)),
            [1_500, 5_500, 9_500, 13_500, 17_500, 21_500, 25_500, 29_500]
        );
        assert_eq!(
            fired.last().unwrap(),
            &(32_000, vec![Action::Timeout, Action::Terminated])
        );
    }

    #[test]
    fn final_completes_and_timer_k_absorbs_retransmissions() {
        let (clock, mut tx) = start(false);
        tx.on_response(180, clock.at(100));
        assert_eq!(
            tx.on_response(200, clock.at(2_000)),
            [Action::PassResponse { status: 200 }]
        );
        assert_eq!(tx.state(), State::Completed);
        assert_eq!(tx.next_deadline(), Some(clock.at(7_000)));
        assert_eq!(tx.on_response(200, clock.at(2_500)), []);
        assert_eq!(tx.on_response(180, clock.at(2_500)), []);
        assert_eq!(tx.on_transport_error(), []);
        let fired = run_until(&mut tx, &clock, 60_000);
        assert_eq!(fired, [(7_000, vec![Action::Terminated])]);
    }

    #[test]
    fn error_final_in_trying_completes() {
        let (clock, mut tx) = start(false);
        assert_eq!(
            tx.on_response(408, clock.at(100)),
            [Action::PassResponse { status: 408 }]
        );
        assert_eq!(tx.state(), State::Completed);
    }

    #[test]
    fn reliable_has_no_retransmits_and_zero_timer_k() {
        let (clock, mut tx) = start(true);
        assert_eq!(tx.next_deadline(), Some(clock.at(32_000)));
        tx.on_response(200, clock.at(40));
        assert_eq!(tx.next_deadline(), Some(clock.at(40)));
        assert_eq!(tx.on_timer(clock.at(40)), [Action::Terminated]);
    }

    #[test]
    fn reliable_times_out_on_timer_f() {
        let (clock, mut tx) = start(true);
        let fired = run_until(&mut tx, &clock, 60_000);
        assert_eq!(fired, [(32_000, vec![Action::Timeout, Action::Terminated])]);
    }

    #[test]
    fn transport_error_terminates() {
        let (clock, mut tx) = start(false);
        tx.on_response(100, clock.at(10));
        assert_eq!(
            tx.on_transport_error(),
            [Action::TransportError, Action::Terminated]
        );
        assert_eq!(tx.next_deadline(), None);
        assert_eq!(tx.on_transport_error(), []);
    }
}
