use std::time::Duration;

/// Base timer values; every RFC 3261 §17 timer (Table 4) derives from them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerConfig {
    /// Round-trip time estimate (500 ms).
    pub t1: Duration,
    /// Longest retransmit interval for non-INVITE requests and INVITE
    /// responses (4 s).
    pub t2: Duration,
    /// Longest time a message stays in the network (5 s).
    pub t4: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        Self {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl TimerConfig {
    fn t1x64(&self) -> Duration {
        self.t1.saturating_mul(64)
    }

    /// Timer A, first INVITE retransmit interval: T1, doubling each time
    /// without a cap (§17.1.1.2).
    pub fn timer_a(&self) -> Duration {
        self.t1
    }

    /// Timer B, INVITE client timeout: 64*T1.
    pub fn timer_b(&self) -> Duration {
        self.t1x64()
    }

    /// Timer D, INVITE client wait for response retransmits: 32 s on
    /// unreliable transports, zero on reliable ones. Kept at least 64*T1 so
    /// it still spans the server's retransmit window when T1 is raised.
    pub fn timer_d(&self, reliable: bool) -> Duration {
        if reliable {
            Duration::ZERO
        } else {
            Duration::from_secs(32).max(self.t1x64())
        }
    }

    /// Timer E, first non-INVITE retransmit interval: T1, doubling up to T2.
    pub fn timer_e(&self) -> Duration {
        self.t1
    }

    /// Timer F, non-INVITE client timeout: 64*T1.
    pub fn timer_f(&self) -> Duration {
        self.t1x64()
    }

    /// Timer G, first INVITE response retransmit interval: T1, doubling up
    /// to T2.
    pub fn timer_g(&self) -> Duration {
        self.t1
    }

    /// Timer H, INVITE server wait for ACK: 64*T1.
    pub fn timer_h(&self) -> Duration {
        self.t1x64()
    }

    /// Timer I, INVITE server wait for ACK retransmits: T4, zero if reliable.
    pub fn timer_i(&self, reliable: bool) -> Duration {
        if reliable {
            Duration::ZERO
        } else {
            self.t4
        }
    }

    /// Timer J, non-INVITE server wait for request retransmits: 64*T1, zero
    /// if reliable.
    pub fn timer_j(&self, reliable: bool) -> Duration {
        if reliable {
            Duration::ZERO
        } else {
            self.t1x64()
        }
    }

    /// Timer K, non-INVITE client wait for response retransmits: T4, zero if
    /// reliable.
    pub fn timer_k(&self, reliable: bool) -> Duration {
        if reliable {
            Duration::ZERO
        } else {
            self.t4
        }
    }

    /// Timer L (RFC 6026), INVITE server lingering in Accepted: 64*T1.
    pub fn timer_l(&self) -> Duration {
        self.t1x64()
    }

    /// Timer M (RFC 6026), INVITE client lingering in Accepted: 64*T1.
    pub fn timer_m(&self) -> Duration {
        self.t1x64()
    }

    /// How long an INVITE server waits for the transaction user's first
    /// response before asking for a 100 (Trying): 200 ms (§17.2.1).
    pub fn trying_delay(&self) -> Duration {
        Duration::from_millis(200)
    }

    /// Next interval for timers E (in Trying) and G: doubled, capped at T2.
    pub fn backoff(&self, interval: Duration) -> Duration {
        interval.saturating_mul(2).min(self.t2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;
    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn defaults_match_rfc_3261() {
        let t = TimerConfig::default();
        assert_eq!((t.t1, t.t2, t.t4), (MS(500), S(4), S(5)));
        assert_eq!(t.timer_a(), MS(500));
        assert_eq!(t.timer_b(), S(32));
        assert_eq!(t.timer_e(), MS(500));
        assert_eq!(t.timer_f(), S(32));
        assert_eq!(t.timer_g(), MS(500));
        assert_eq!(t.timer_h(), S(32));
        assert_eq!(t.timer_l(), S(32));
        assert_eq!(t.timer_m(), S(32));
        assert_eq!(t.trying_delay(), MS(200));
    }

    #[test]
    fn unreliable_and_reliable_waits() {
        let t = TimerConfig::default();
        assert_eq!(t.timer_d(false), S(32));
        assert_eq!(t.timer_i(false), S(5));
        assert_eq!(t.timer_j(false), S(32));
        assert_eq!(t.timer_k(false), S(5));
        for zero in [
            t.timer_d(true),
            t.timer_i(true),
            t.timer_j(true),
            t.timer_k(true),
        ] {
            assert_eq!(zero, Duration::ZERO);
        }
    }

    #[test]
    fn timers_scale_with_t1() {
        let t = TimerConfig {
            t1: S(1),
            ..TimerConfig::default()
        };
        assert_eq!(t.timer_b(), S(64));
        assert_eq!(t.timer_j(false), S(64));
        // D never shrinks below the server's retransmit window.
        assert_eq!(t.timer_d(false), S(64));
    }

    #[test]
    fn backoff_doubles_up_to_t2() {
        let t = TimerConfig::default();
        let mut i = t.timer_e();
        let mut seen = vec![];
        for _ in 0..6 {
            i = t.backoff(i);
            seen.push(i);
        }
        assert_eq!(seen, [S(1), S(2), S(4), S(4), S(4), S(4)]);
    }
}
