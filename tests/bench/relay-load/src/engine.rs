//! The media side of every call, on one UDP socket: the browser's ICE
//! connectivity check (full ICE, controlling, nominating), the DTLS
//! client (or server, when the answer says `setup:active`), SRTP, and the
//! 50 packets/s stream with its measurements.
//!
//! One socket serves all calls: the relay gives each call its own port, so
//! datagrams are told apart by their source (STUN, DTLS) or SSRC (RTP),
//! and sends to many calls go out in one sendmmsg.
//!
//! Sending is driven by a wheel of `ptime` one-millisecond slots: a call
//! is put in the least loaded slot when its media starts and sends one
//! packet each time its slot comes round, so N calls give N/ptime packets
//! every millisecond instead of bursts.

use crate::sip::Answer;
use media::stun::{self, attr, Class, MessageWriter, METHOD_BINDING};
use media::{
    classify, DtlsCertificate, DtlsLeg, DtlsRole, Fingerprint, PacketKind, SrtpContext, SrtpProfile,
};
use relay_load::net::{realtime_ns, RecvBatch, SendBatch, MAX_DATAGRAM};
use relay_load::payload::{self, SSRC_BASE};
use relay_load::stats::Histogram;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Consent freshness (RFC 7675): a check every 5 s keeps the relay sending.
const CONSENT_INTERVAL: Duration = Duration::from_secs(5);
/// First check retransmission; doubles up to 500 ms.
const CHECK_RTO: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    Prepared,
    Ice,
    Dtls,
    Media,
    Ended,
    Failed,
}

struct Call {
    ssrc: u32,
    phase: Phase,
    remote: SocketAddr,
    local_ufrag: String,
    local_pwd: String,
    remote_ufrag: String,
    remote_pwd: String,
    role: DtlsRole,
    remote_fp: Option<Fingerprint>,
    dtls: Option<DtlsLeg>,
    srtp: Option<(SrtpContext, SrtpContext)>,
    check_tid: [u8; 12],
    next_check: Instant,
    check_rto: Duration,
    deadline: Instant,
    next_consent: Instant,
    seq: u16,
    number: u32,
    rtp_ts: u32,
    done: Option<oneshot::Sender<Result<(), String>>>,
}

/// What the offer needs from the engine.
pub struct Offer {
    pub ufrag: String,
    pub pwd: String,
    pub ssrc: u32,
    pub fingerprint: String,
}

/// Counters of one measurement window: packets whose send time falls in
/// it.
#[derive(Default)]
pub struct Window {
    pub t0: u64,
    pub t1: u64,
    pub sent: u64,
    pub received: u64,
    /// Both one-way trips of every packet that came back.
    pub one_way: Histogram,
    /// Generator -> relay -> echo.
    pub leg_out: Histogram,
    /// Echo -> relay -> generator.
    pub leg_back: Histogram,
    /// Packets the echo did not stamp (timed as half the round trip).
    pub unstamped: u64,
    /// How late the generator sent, against each packet's nominal time.
    pub send_late: Histogram,
}

/// Totals since start.
#[derive(Default, Debug, Clone)]
pub struct Totals {
    pub sent: u64,
    pub received: u64,
    pub srtp_errors: u64,
    pub unknown: u64,
    pub rtcp: u64,
    pub stun_requests_answered: u64,
    pub stun_errors: u64,
    pub dtls_failures: u64,
    pub profiles: HashMap<String, u64>,
    pub wheel_skips: u64,
}

pub struct Engine {
    fd: RawFd,
    plain: bool,
    payload_len: usize,
    ptime_ms: u64,
    samples_per_packet: u32,
    cert: DtlsCertificate,
    fingerprint: String,
    tiebreaker: u64,
    setup_timeout: Duration,
    profiles: Vec<SrtpProfile>,
    calls: Vec<Option<Call>>,
    by_addr: HashMap<SocketAddr, u32>,
    by_tid: HashMap<[u8; 12], u32>,
    pending: Vec<u32>,
    wheel: Vec<Vec<u32>>,
    start: Instant,
    last_ms: u64,
    rx: RecvBatch,
    tx: SendBatch,
    buf: Vec<u8>,
    enc: Vec<u8>,
    stun_buf: Vec<u8>,
    window: Option<Window>,
    pub totals: Totals,
    tid_counter: u64,
}

impl Engine {
    pub fn new(
        fd: RawFd,
        plain: bool,
        payload_len: usize,
        ptime_ms: u64,
        setup_timeout: Duration,
        profiles: Vec<SrtpProfile>,
    ) -> Result<Self, String> {
        let cert = DtlsCertificate::generate().map_err(|e| e.to_string())?;
        let fingerprint = cert.fingerprint().to_string();
        let now = Instant::now();
        Ok(Self {
            fd,
            plain,
            payload_len,
            ptime_ms,
            samples_per_packet: (8 * ptime_ms) as u32,
            cert,
            fingerprint,
            tiebreaker: u64::from_str_radix(&crate::sip::token(7, 7), 16).unwrap_or(1),
            setup_timeout,
            profiles,
            calls: Vec::new(),
            by_addr: HashMap::new(),
            by_tid: HashMap::new(),
            pending: Vec::new(),
            wheel: vec![Vec::new(); ptime_ms as usize],
            start: now,
            last_ms: 0,
            rx: RecvBatch::new(64),
            tx: SendBatch::new(32),
            buf: vec![0; MAX_DATAGRAM],
            enc: Vec::with_capacity(MAX_DATAGRAM),
            stun_buf: vec![0; 512],
            window: None,
            totals: Totals::default(),
            tid_counter: 0,
        })
    }

    fn slot(&mut self, idx: u32) -> &mut Option<Call> {
        let i = idx as usize;
        if self.calls.len() <= i {
            self.calls.resize_with(i + 1, || None);
        }
        &mut self.calls[i]
    }

    fn new_call(&mut self, idx: u32) -> Call {
        let t = crate::sip::token(u64::from(idx), 0x1ce);
        let p = crate::sip::token(u64::from(idx), 0x9d5);
        let now = Instant::now();
        Call {
            ssrc: SSRC_BASE + idx,
            phase: Phase::Prepared,
            remote: SocketAddr::from(([0, 0, 0, 0], 0)),
            local_ufrag: t[..8].to_string(),
            local_pwd: format!("{}{}", &p, &t[8..16]),
            remote_ufrag: String::new(),
            remote_pwd: String::new(),
            role: DtlsRole::Client,
            remote_fp: None,
            dtls: None,
            srtp: None,
            check_tid: [0; 12],
            next_check: now,
            check_rto: CHECK_RTO,
            deadline: now + self.setup_timeout,
            next_consent: now + CONSENT_INTERVAL,
            seq: (idx as u16).wrapping_mul(7919),
            number: 0,
            rtp_ts: idx.wrapping_mul(104_729),
            done: None,
        }
    }

    /// Makes the call's local ICE credentials for its offer.
    pub fn prepare(&mut self, idx: u32) -> Offer {
        let call = self.new_call(idx);
        let offer = Offer {
            ufrag: call.local_ufrag.clone(),
            pwd: call.local_pwd.clone(),
            ssrc: call.ssrc,
            fingerprint: self.fingerprint.clone(),
        };
        *self.slot(idx) = Some(call);
        offer
    }

    fn next_tid(&mut self, idx: u32) -> [u8; 12] {
        self.tid_counter += 1;
        let mut tid = [0u8; 12];
        tid[..4].copy_from_slice(&idx.to_be_bytes());
        tid[4..].copy_from_slice(&self.tid_counter.to_be_bytes());
        tid
    }

    /// The relay answered: start ICE, then DTLS, then media. The receiver
    /// learns when media flows or why it never will.
    pub fn start_webrtc(
        &mut self,
        idx: u32,
        answer: &Answer,
    ) -> Result<oneshot::Receiver<Result<(), String>>, String> {
        let fp = Fingerprint::parse(&answer.fingerprint).map_err(|e| e.to_string())?;
        let now = Instant::now();
        let setup_timeout = self.setup_timeout;
        let tid = self.next_tid(idx);
        let cert = self.cert.clone();
        let profiles = self.profiles.clone();
        let (tx, rx) = oneshot::channel();
        let call = self.slot(idx).as_mut().ok_or("start before prepare")?;
        call.remote = answer.addr;
        call.remote_ufrag = answer.ufrag.clone();
        call.remote_pwd = answer.pwd.clone();
        call.remote_fp = Some(fp);
        // Their setup:active makes us the DTLS server; passive (the usual
        // answer to actpass) the client.
        call.role = if answer.setup.eq_ignore_ascii_case("active") {
            DtlsRole::Server
        } else {
            DtlsRole::Client
        };
        if call.role == DtlsRole::Server {
            let leg = DtlsLeg::with_profiles(DtlsRole::Server, &cert, Some(fp), &profiles, now)
                .map_err(|e| e.to_string())?;
            call.dtls = Some(leg);
        }
        call.phase = Phase::Ice;
        call.check_tid = tid;
        call.next_check = now;
        call.deadline = now + setup_timeout;
        call.done = Some(tx);
        let remote = call.remote;
        self.by_addr.insert(remote, idx);
        self.by_tid.insert(tid, idx);
        self.pending.push(idx);
        self.send_check(idx, true);
        self.tx.flush(self.fd);
        Ok(rx)
    }

    /// Plain RTP to `dest` from now on (the raw baseline).
    pub fn start_plain(&mut self, idx: u32, dest: SocketAddr) {
        let mut call = self.new_call(idx);
        call.remote = dest;
        *self.slot(idx) = Some(call);
        self.enter_media(idx);
    }

    /// Stops sending for a call (hung up by the far end).
    pub fn end(&mut self, idx: u32) {
        if let Some(Some(c)) = self.calls.get_mut(idx as usize) {
            c.phase = Phase::Ended;
        }
    }

    fn enter_media(&mut self, idx: u32) {
        let slot = (0..self.wheel.len())
            .min_by_key(|s| self.wheel[*s].len())
            .unwrap_or(0);
        self.wheel[slot].push(idx);
        if let Some(Some(c)) = self.calls.get_mut(idx as usize) {
            c.phase = Phase::Media;
            if let Some(done) = c.done.take() {
                let _ = done.send(Ok(()));
            }
        }
    }

    fn fail(&mut self, idx: u32, why: String) {
        if let Some(Some(c)) = self.calls.get_mut(idx as usize) {
            c.phase = Phase::Failed;
            if let Some(done) = c.done.take() {
                let _ = done.send(Err(why));
            }
        }
    }

    /// Starts counting packets sent in [t0, t1) (CLOCK_REALTIME ns).
    pub fn open_window(&mut self, t0: u64, t1: u64) {
        self.window = Some(Window {
            t0,
            t1,
            ..Window::default()
        });
    }

    pub fn take_window(&mut self) -> Option<Window> {
        self.window.take()
    }

    fn send_check(&mut self, idx: u32, use_candidate: bool) {
        let Some(Some(c)) = self.calls.get(idx as usize) else {
            return;
        };
        let username = format!("{}:{}", c.remote_ufrag, c.local_ufrag);
        let tid = c.check_tid;
        let remote = c.remote;
        let key = c.remote_pwd.clone();
        let tiebreaker = self.tiebreaker;
        let write = |buf: &mut [u8]| -> usize {
            let Ok(mut w) = MessageWriter::new(buf, Class::Request, METHOD_BINDING, &tid) else {
                return 0;
            };
            let ok = w.attribute(attr::USERNAME, username.as_bytes()).is_ok()
                // Peer-reflexive priority of a host candidate, component 1.
                && w.attribute(attr::PRIORITY, &1_845_501_695u32.to_be_bytes()).is_ok()
                && w.attribute(attr::ICE_CONTROLLING, &tiebreaker.to_be_bytes()).is_ok()
                && (!use_candidate || w.attribute(attr::USE_CANDIDATE, &[]).is_ok())
                && w.message_integrity(key.as_bytes()).is_ok();
            if !ok {
                return 0;
            }
            w.fingerprint().unwrap_or(0)
        };
        if self.tx.is_full() {
            self.tx.flush(self.fd);
        }
        self.tx.push_with(remote, write);
    }

    fn push(&mut self, data: &[u8], to: SocketAddr) {
        if self.tx.is_full() {
            self.tx.flush(self.fd);
        }
        self.tx.push(data, to);
    }

    fn flush_dtls(&mut self, idx: u32) {
        let Some(Some(c)) = self.calls.get_mut(idx as usize) else {
            return;
        };
        let remote = c.remote;
        let mut out = Vec::new();
        if let Some(d) = c.dtls.as_mut() {
            while let Some(t) = d.poll_transmit() {
                out.push(t);
            }
        }
        for t in out {
            self.push(&t, remote);
        }
    }

    /// After DTLS progress: keyed -> media; failed -> report.
    fn check_dtls(&mut self, idx: u32) {
        let Some(Some(c)) = self.calls.get_mut(idx as usize) else {
            return;
        };
        let Some(d) = c.dtls.as_mut() else { return };
        if d.is_connected() && c.srtp.is_none() {
            let profile = format!("{:?}", d.srtp_profile());
            c.srtp = d.take_srtp_contexts();
            *self.totals.profiles.entry(profile).or_default() += 1;
            if c.phase == Phase::Ice || c.phase == Phase::Dtls {
                self.enter_media(idx);
            }
        } else if let media::DtlsState::Failed(e) = d.state() {
            let why = format!("DTLS: {e}");
            if c.phase != Phase::Failed {
                self.totals.dtls_failures += 1;
                self.fail(idx, why);
            }
        }
    }

    /// Reads everything queued on the socket (up to `max_batches`
    /// recvmmsg calls); false when the socket is drained.
    pub fn on_readable(&mut self, max_batches: usize) -> std::io::Result<bool> {
        for _ in 0..max_batches {
            let n = match self.rx.recv(self.fd, false) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    self.tx.flush(self.fd);
                    return Ok(false);
                }
                Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => continue,
                Err(e) => return Err(e),
            };
            let now = Instant::now();
            for i in 0..n {
                // Copy out: the handlers need the engine mutably.
                let (data, from, kts) = self.rx.get(i);
                let len = data.len();
                self.buf[..len].copy_from_slice(data);
                let t_rx = if kts != 0 { kts } else { realtime_ns() };
                self.on_datagram(len, from, t_rx, now);
            }
            if n < self.rx.capacity() {
                self.tx.flush(self.fd);
                return Ok(false);
            }
        }
        self.tx.flush(self.fd);
        Ok(true)
    }

    fn on_datagram(&mut self, len: usize, from: SocketAddr, t_rx: u64, now: Instant) {
        let kind = classify(&self.buf[..len]);
        match kind {
            PacketKind::Rtp => self.on_rtp(len, t_rx),
            PacketKind::Rtcp => self.totals.rtcp += 1,
            PacketKind::Stun => self.on_stun(len, from),
            PacketKind::Dtls => {
                let Some(&idx) = self.by_addr.get(&from) else {
                    self.totals.unknown += 1;
                    return;
                };
                if let Some(Some(c)) = self.calls.get_mut(idx as usize) {
                    if let Some(d) = c.dtls.as_mut() {
                        let _ = d.handle_datagram(now, &self.buf[..len]);
                    }
                }
                self.flush_dtls(idx);
                self.check_dtls(idx);
            }
            _ => self.totals.unknown += 1,
        }
    }

    fn on_stun(&mut self, len: usize, from: SocketAddr) {
        let data = self.buf[..len].to_vec();
        let Ok(msg) = stun::Message::parse(&data) else {
            self.totals.unknown += 1;
            return;
        };
        match msg.class() {
            Class::Success => {
                let Some(&idx) = self.by_tid.get(msg.transaction_id()) else {
                    return; // a consent check's answer
                };
                self.by_tid.remove(msg.transaction_id());
                let now = Instant::now();
                let cert = self.cert.clone();
                let profiles = self.profiles.clone();
                let Some(Some(c)) = self.calls.get_mut(idx as usize) else {
                    return;
                };
                if !msg.integrity_valid(c.remote_pwd.as_bytes()) {
                    self.totals.stun_errors += 1;
                    return;
                }
                if c.phase != Phase::Ice {
                    return;
                }
                c.phase = Phase::Dtls;
                if c.role == DtlsRole::Client && c.dtls.is_none() {
                    match DtlsLeg::with_profiles(
                        DtlsRole::Client,
                        &cert,
                        c.remote_fp,
                        &profiles,
                        now,
                    ) {
                        Ok(d) => c.dtls = Some(d),
                        Err(e) => {
                            self.fail(idx, format!("DTLS client: {e}"));
                            return;
                        }
                    }
                }
                self.flush_dtls(idx);
                self.check_dtls(idx);
            }
            Class::Error => {
                self.totals.stun_errors += 1;
            }
            Class::Request => {
                // Full ICE on the far side (rtpengine) checks us too.
                let Some(&idx) = self.by_addr.get(&from) else {
                    self.totals.unknown += 1;
                    return;
                };
                let Some(Some(c)) = self.calls.get(idx as usize) else {
                    return;
                };
                let creds = stun::Credentials {
                    local_ufrag: &c.local_ufrag,
                    local_pwd: &c.local_pwd,
                    remote_ufrag: None,
                };
                let mut out = std::mem::take(&mut self.stun_buf);
                match stun::answer_binding(&data, from, &creds, &mut out) {
                    stun::Answer::Success { len, .. } => {
                        self.totals.stun_requests_answered += 1;
                        self.push(&out[..len], from);
                    }
                    stun::Answer::Error { len, .. } => {
                        self.totals.stun_errors += 1;
                        self.push(&out[..len], from);
                    }
                    stun::Answer::Ignored(_) => {}
                }
                self.stun_buf = out;
            }
            Class::Indication => {}
        }
    }

    fn on_rtp(&mut self, len: usize, t_rx: u64) {
        let ssrc = u32::from_be_bytes([self.buf[8], self.buf[9], self.buf[10], self.buf[11]]);
        let idx = ssrc.wrapping_sub(SSRC_BASE);
        let fields = if self.plain {
            payload::read(&self.buf[..len])
        } else {
            let Some(Some(c)) = self.calls.get_mut(idx as usize) else {
                self.totals.unknown += 1;
                return;
            };
            let Some((_, remote)) = c.srtp.as_mut() else {
                self.totals.srtp_errors += 1;
                return;
            };
            match remote.unprotect_rtp(&self.buf[..len], &mut self.enc) {
                Ok(()) => payload::read(&self.enc),
                Err(_) => {
                    self.totals.srtp_errors += 1;
                    return;
                }
            }
        };
        let Some(f) = fields else {
            self.totals.unknown += 1;
            return;
        };
        self.totals.received += 1;
        if let Some(w) = self.window.as_mut() {
            if f.t_send >= w.t0 && f.t_send < w.t1 {
                w.received += 1;
                if f.t_echo_rx != 0 && f.t_echo_tx != 0 {
                    let out = f.t_echo_rx.saturating_sub(f.t_send);
                    let back = t_rx.saturating_sub(f.t_echo_tx);
                    w.one_way.add(out);
                    w.one_way.add(back);
                    w.leg_out.add(out);
                    w.leg_back.add(back);
                } else {
                    let half = t_rx.saturating_sub(f.t_send) / 2;
                    w.one_way.add(half);
                    w.one_way.add(half);
                    w.unstamped += 1;
                }
            }
        }
    }

    /// Every millisecond: the wheel's due slots, then checks and DTLS
    /// timers of calls being set up.
    pub fn on_tick(&mut self) {
        let now = Instant::now();
        let now_ms = now.duration_since(self.start).as_millis() as u64;
        let period = self.ptime_ms;
        if now_ms > self.last_ms {
            let mut from = self.last_ms + 1;
            if now_ms - from >= period {
                // Stalled for a whole period: each slot once.
                self.totals.wheel_skips += now_ms - from + 1 - period;
                from = now_ms + 1 - period;
            }
            for ms in from..=now_ms {
                let nominal = self.start + Duration::from_millis(ms);
                let late = now.saturating_duration_since(nominal);
                let slot = (ms % period) as usize;
                let members = std::mem::take(&mut self.wheel[slot]);
                let mut keep = Vec::with_capacity(members.len());
                for idx in members {
                    if self.send_media(idx, now, late) {
                        keep.push(idx);
                    }
                }
                self.wheel[slot] = keep;
            }
            self.last_ms = now_ms;
        }
        self.housekeeping(now);
        self.tx.flush(self.fd);
    }

    /// Sends the call's next packet; false once the call is over.
    fn send_media(&mut self, idx: u32, now: Instant, late: Duration) -> bool {
        let Some(Some(c)) = self.calls.get_mut(idx as usize) else {
            return false;
        };
        if c.phase != Phase::Media {
            return false;
        }
        let consent = !self.plain && now >= c.next_consent;
        if consent {
            c.next_consent = now + CONSENT_INTERVAL;
        }
        c.seq = c.seq.wrapping_add(1);
        c.rtp_ts = c.rtp_ts.wrapping_add(self.samples_per_packet);
        c.number += 1;
        let marker = c.number == 1;
        let t_send = realtime_ns();
        let n = payload::write_rtp(
            &mut self.buf,
            c.ssrc,
            c.seq,
            c.rtp_ts,
            marker,
            idx,
            c.number,
            t_send,
            self.payload_len,
        );
        let remote = c.remote;
        if self.plain {
            if self.tx.is_full() {
                self.tx.flush(self.fd);
            }
            self.tx.push(&self.buf[..n], remote);
        } else {
            let Some((local, _)) = c.srtp.as_mut() else {
                return false;
            };
            if local.protect_rtp(&self.buf[..n], &mut self.enc).is_err() {
                self.totals.srtp_errors += 1;
                return true;
            }
            if self.tx.is_full() {
                self.tx.flush(self.fd);
            }
            self.tx.push(&self.enc, remote);
        }
        self.totals.sent += 1;
        if let Some(w) = self.window.as_mut() {
            if t_send >= w.t0 && t_send < w.t1 {
                w.sent += 1;
                w.send_late.add(late.as_nanos() as u64);
            }
        }
        if consent {
            let tid = self.next_tid(idx);
            if let Some(Some(c)) = self.calls.get_mut(idx as usize) {
                c.check_tid = tid;
            }
            self.send_check(idx, true);
        }
        true
    }

    fn housekeeping(&mut self, now: Instant) {
        if self.pending.is_empty() {
            return;
        }
        let pending = std::mem::take(&mut self.pending);
        let mut keep = Vec::with_capacity(pending.len());
        for idx in pending {
            let Some(Some(c)) = self.calls.get_mut(idx as usize) else {
                continue;
            };
            match c.phase {
                Phase::Ice | Phase::Dtls => {}
                _ => continue,
            }
            if now >= c.deadline {
                let why = if c.phase == Phase::Ice {
                    "no answer to the ICE check".to_string()
                } else {
                    format!(
                        "DTLS handshake not done ({:?})",
                        c.dtls.as_ref().map(|d| d.state().clone())
                    )
                };
                self.fail(idx, why);
                continue;
            }
            if c.phase == Phase::Ice && now >= c.next_check {
                c.next_check = now + c.check_rto;
                c.check_rto = (c.check_rto * 2).min(Duration::from_millis(500));
                self.send_check(idx, true);
            }
            let Some(Some(c)) = self.calls.get_mut(idx as usize) else {
                continue;
            };
            if let Some(d) = c.dtls.as_mut() {
                if d.poll_timeout().is_some_and(|t| now >= t) {
                    let _ = d.handle_timeout(now);
                    self.flush_dtls(idx);
                    self.check_dtls(idx);
                }
            }
            keep.push(idx);
        }
        self.pending = keep;
    }
}
