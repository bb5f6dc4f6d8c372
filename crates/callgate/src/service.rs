//! systemd integration: readiness and status notifications, the watchdog,
//! the signals the service manager sends, and structured journal logging.
//!
//! Everything here is a no-op outside systemd: notifications go nowhere
//! when `NOTIFY_SOCKET` is unset, the watchdog task is not started when
//! `WATCHDOG_USEC` is unset, and [`journal_layer`] returns `None` when
//! standard error is not connected to the journal.
//!
//! The unit (`systemd/callgate.service`) is `Type=notify` with
//! `WatchdogSec=`:
//!
//! - [`ready`] once every listener is bound and the store is open;
//! - [`status`] every few seconds with [`status_line`];
//! - [`reloading`] when SIGHUP arrives, then [`ready`] again once the
//!   configuration and certificates are re-read;
//! - [`stopping`] as soon as SIGTERM arrives, before the drain starts;
//! - the [`Watchdog`] task pings only while the core task's
//!   [`Heartbeat`] and every media worker's heartbeat keep moving, so a
//!   hung core loop, a hung worker or a stalled runtime lets systemd's
//!   watchdog fire and restart the service.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sd_notify::NotifyState;

/// Whether the process was started by systemd with a notification socket.
pub fn under_systemd() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some()
}

fn notify(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!("sd_notify failed: {e}");
    }
}

/// `READY=1`: listeners are bound and the store is open.
pub fn ready() {
    notify(&[NotifyState::Ready]);
}

/// `RELOADING=1` with the monotonic time systemd 253+ asks for (252
/// ignores it). Follow with [`ready`] when the reload is done, also
/// when it failed (the old configuration stays in force).
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => notify(&[NotifyState::Reloading, now]),
        Err(_) => notify(&[NotifyState::Reloading]),
    }
}

/// `STOPPING=1`: shutdown has begun (new calls are refused, the rest
/// drain).
pub fn stopping() {
    notify(&[NotifyState::Stopping]);
}

/// `STATUS=...`: one short line shown by `systemctl status`.
pub fn status(line: &str) {
    // A newline would end the STATUS= assignment early.
    let line: String = line.chars().filter(|c| *c != '\n').collect();
    notify(&[NotifyState::Status(&line)]);
}

/// `EXTEND_TIMEOUT_USEC=...`: asks for more time during a long drain,
/// so that `TimeoutStopSec=` does not kill calls still being ended.
pub fn extend_timeout(by: Duration) {
    let usec = u32::try_from(by.as_micros()).unwrap_or(u32::MAX);
    notify(&[NotifyState::ExtendTimeoutUsec(usec)]);
}

/// The live state for [`status`], e.g. `"3 registrations, 1 call"`, or
/// `"draining: 2 calls"` while stopping.
pub fn status_line(registrations: usize, calls: usize, draining: bool) -> String {
    fn plural(n: usize, one: &str) -> String {
        if n == 1 {
            format!("1 {one}")
        } else {
            format!("{n} {one}s")
        }
    }
    if draining {
        format!("draining: {}", plural(calls, "call"))
    } else {
        format!(
            "{}, {}",
            plural(registrations, "registration"),
            plural(calls, "call")
        )
    }
}

/// How often the core task must call [`Heartbeat::beat`] at least. The
/// watchdog checks no more often than twice this period, so a live but
/// idle core is never mistaken for a hung one.
pub const HEARTBEAT_PERIOD: Duration = Duration::from_millis(500);

/// A counter that one task advances while it is alive.
#[derive(Debug, Clone, Default)]
pub struct Heartbeat(Arc<AtomicU64>);

impl Heartbeat {
    pub fn new() -> Heartbeat {
        Heartbeat::default()
    }

    /// Records that the owner is alive.
    pub fn beat(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// The shared counter, for [`Watchdog::spawn`].
    pub fn counter(&self) -> Arc<AtomicU64> {
        self.0.clone()
    }
}

/// What one watchdog check concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Everything moved: ping systemd.
    Alive,
    /// The core heartbeat did not move.
    CoreStuck,
    /// These media workers' heartbeats did not move.
    WorkersStuck(Vec<usize>),
}

/// The sans-IO part of the watchdog: compares heartbeats with the ones of
/// the previous check.
#[derive(Debug, Default)]
pub struct Progress {
    core: Option<u64>,
    workers: Vec<u64>,
}

impl Progress {
    /// `core`: the core heartbeat now; `workers`: each media worker's
    /// heartbeat now (`RelayHandle::worker_heartbeats`, empty without the
    /// relay). A heartbeat seen for the first time counts as moved.
    pub fn check(&mut self, core: u64, workers: &[u64]) -> Verdict {
        let core_moved = self.core.is_none_or(|last| last != core);
        let stuck: Vec<usize> = workers
            .iter()
            .enumerate()
            .filter(|(i, b)| self.workers.get(*i).is_some_and(|last| last == *b))
            .map(|(i, _)| i)
            .collect();
        self.core = Some(core);
        self.workers = workers.to_vec();
        if !core_moved {
            Verdict::CoreStuck
        } else if !stuck.is_empty() {
            Verdict::WorkersStuck(stuck)
        } else {
            Verdict::Alive
        }
    }
}

/// The interval between two watchdog checks for `WatchdogSec=` `timeout`:
/// half of it (systemd's advice), but never shorter than two heartbeat
/// periods.
pub fn check_interval(timeout: Duration) -> Duration {
    (timeout / 2).max(HEARTBEAT_PERIOD * 2)
}

/// The watchdog task. It sends `WATCHDOG=1` after a check that saw the
/// core heartbeat and every media worker heartbeat move. Since it runs on
/// the tokio runtime, a stalled runtime stops the pings too.
pub struct Watchdog {
    task: Option<tokio::task::JoinHandle<()>>,
    interval: Option<Duration>,
}

impl Watchdog {
    /// Starts the task on the current tokio runtime when systemd armed the
    /// watchdog (`WATCHDOG_USEC` set for this process); otherwise returns
    /// an inert value. `core_beat`: [`Heartbeat::counter`] of the core
    /// task; `workers`: the media workers' heartbeats, e.g.
    /// `move || relay.worker_heartbeats()` (or `Vec::new` without the
    /// relay).
    pub fn spawn(
        core_beat: Arc<AtomicU64>,
        workers: impl Fn() -> Vec<u64> + Send + 'static,
    ) -> Watchdog {
        let Some(timeout) = sd_notify::watchdog_enabled() else {
            return Watchdog {
                task: None,
                interval: None,
            };
        };
        let interval = check_interval(timeout);
        tracing::info!(
            timeout_ms = timeout.as_millis() as u64,
            check_ms = interval.as_millis() as u64,
            "systemd watchdog armed"
        );
        let task = tokio::spawn(async move {
            let mut progress = Progress::default();
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // The first tick fires at once: it only records the baseline.
            ticker.tick().await;
            progress.check(core_beat.load(Ordering::Relaxed), &workers());
            notify(&[NotifyState::Watchdog]);
            let mut last = Verdict::Alive;
            loop {
                ticker.tick().await;
                let verdict = progress.check(core_beat.load(Ordering::Relaxed), &workers());
                match &verdict {
                    Verdict::Alive => notify(&[NotifyState::Watchdog]),
                    v if *v != last => match v {
                        Verdict::CoreStuck => {
                            tracing::error!("core task stopped making progress: watchdog not fed")
                        }
                        Verdict::WorkersStuck(w) => tracing::error!(
                            workers = ?w,
                            "media workers stopped making progress: watchdog not fed"
                        ),
                        Verdict::Alive => {}
                    },
                    _ => {}
                }
                if verdict == Verdict::Alive && last != Verdict::Alive {
                    tracing::warn!("progress resumed: watchdog fed again");
                }
                last = verdict;
            }
        });
        Watchdog {
            task: Some(task),
            interval: Some(interval),
        }
    }

    /// Whether systemd armed the watchdog and the task runs.
    pub fn armed(&self) -> bool {
        self.task.is_some()
    }

    /// The check interval, when armed.
    pub fn interval(&self) -> Option<Duration> {
        self.interval
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// A signal from the service manager (or a terminal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM or SIGINT: stop gracefully.
    Terminate,
    /// SIGHUP: re-read the configuration file and certificates.
    Reload,
}

/// SIGTERM, SIGINT and SIGHUP as a stream. Create it once, early, inside
/// the runtime (installing the handlers replaces the default action, so a
/// SIGHUP no longer kills the process).
pub struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    pub fn new() -> io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// The next signal. Cancel-safe: usable as a `tokio::select!` branch.
    pub async fn recv(&mut self) -> Signal {
        tokio::select! {
            _ = self.term.recv() => Signal::Terminate,
            _ = self.int.recv() => Signal::Terminate,
            _ = self.hup.recv() => Signal::Reload,
        }
    }
}

// ---------------------------------------------------------------------------
// Journal logging

/// Field names whose values never reach the journal.
const SECRET_FIELDS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "ha1",
    "authorization",
    "proxy_authorization",
    "nonce_key",
    "api_token",
    "key",
];

const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

/// Whether a field of this name holds a secret (compared without case,
/// also as a suffix: `admin_password`, `trunk_secret`).
pub fn is_secret_field(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    SECRET_FIELDS
        .iter()
        .any(|s| lower == *s || lower.ends_with(&format!("_{s}")))
}

/// A journal field name for a tracing field: upper case, `[A-Z0-9_]`, not
/// starting with `_` or a digit, at most 64 bytes; `call_id` →
/// `CALL_ID`, `user` → `USER`.
pub fn journal_field_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    while out.starts_with('_') || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.remove(0);
    }
    if out.is_empty() {
        out.push_str("FIELD");
    }
    // Names the journal gives a meaning of its own stay ours.
    if matches!(
        out.as_str(),
        "MESSAGE" | "PRIORITY" | "SYSLOG_IDENTIFIER" | "CODE_FILE" | "CODE_LINE" | "TARGET"
    ) {
        out.insert_str(0, "F_");
    }
    out.truncate(64);
    out
}

/// Appends one field in the journal's native protocol: `NAME=value\n`, or
/// the length-prefixed form when the value has a newline.
pub fn encode_field(buf: &mut Vec<u8>, name: &str, value: &str) {
    buf.extend_from_slice(name.as_bytes());
    if value.contains('\n') {
        buf.push(b'\n');
        buf.extend_from_slice(&(value.len() as u64).to_le_bytes());
    } else {
        buf.push(b'=');
    }
    buf.extend_from_slice(value.as_bytes());
    buf.push(b'\n');
}

fn priority(level: &tracing::Level) -> &'static str {
    match *level {
        tracing::Level::ERROR => "3",
        tracing::Level::WARN => "4",
        tracing::Level::INFO => "6",
        tracing::Level::DEBUG | tracing::Level::TRACE => "7",
    }
}

#[derive(Default)]
struct FieldVisitor {
    message: Option<String>,
    fields: BTreeMap<String, String>,
}

impl FieldVisitor {
    fn put(&mut self, field: &tracing::field::Field, value: String) {
        if field.name() == "message" {
            self.message = Some(value);
        } else if is_secret_field(field.name()) {
            self.fields
                .insert(journal_field_name(field.name()), "<redacted>".into());
        } else {
            self.fields.insert(journal_field_name(field.name()), value);
        }
    }
}

impl tracing::field::Visit for FieldVisitor {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.put(field, value.to_owned());
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.put(field, format!("{value:?}"));
    }
}

/// Fields of a span, kept in its extensions for the events inside it.
struct SpanFields(BTreeMap<String, String>);

/// A `tracing` layer that writes each event to the journal as one entry
/// with structured fields: `MESSAGE`, `PRIORITY`, `SYSLOG_IDENTIFIER`,
/// `TARGET`, `CODE_FILE`/`CODE_LINE`, and every field of the event and of
/// its spans upper-cased (`call_id` → `CALL_ID`, `user` → `USER`), so
/// `journalctl -u callgate CALL_ID=...` finds one call. Fields named like
/// secrets ([`is_secret_field`]) are written as `<redacted>`.
pub struct JournalLayer {
    socket: UnixDatagram,
    identifier: String,
}

/// The journal layer when standard error goes to the journal
/// (`JOURNAL_STREAM` names it, as systemd sets for `StandardError=journal`)
/// and the journal socket takes datagrams; otherwise `None`, and logs stay
/// on standard error.
pub fn journal_layer() -> Option<JournalLayer> {
    use std::os::unix::fs::MetadataExt;
    let stream = std::env::var("JOURNAL_STREAM").ok()?;
    let (dev, ino) = stream.split_once(':')?;
    let (dev, ino): (u64, u64) = (dev.parse().ok()?, ino.parse().ok()?);
    let meta = std::fs::metadata("/proc/self/fd/2").ok()?;
    if meta.dev() != dev || meta.ino() != ino {
        return None;
    }
    let socket = UnixDatagram::unbound().ok()?;
    socket.connect(JOURNAL_SOCKET).ok()?;
    Some(JournalLayer {
        socket,
        identifier: "callgate".into(),
    })
}

impl JournalLayer {
    /// One journal entry in the native protocol.
    fn entry(
        &self,
        meta: &tracing::Metadata<'_>,
        message: &str,
        fields: &BTreeMap<String, String>,
    ) -> Vec<u8> {
        let mut buf = Vec::with_capacity(256);
        let mut text = message.to_owned();
        // Keep the fields readable in plain `journalctl` output as well.
        for (k, v) in fields {
            let _ = write!(text, " {}={}", k.to_ascii_lowercase(), v);
        }
        encode_field(&mut buf, "MESSAGE", &text);
        encode_field(&mut buf, "PRIORITY", priority(meta.level()));
        encode_field(&mut buf, "SYSLOG_IDENTIFIER", &self.identifier);
        encode_field(&mut buf, "TARGET", meta.target());
        if let Some(file) = meta.file() {
            encode_field(&mut buf, "CODE_FILE", file);
        }
        if let Some(line) = meta.line() {
            encode_field(&mut buf, "CODE_LINE", &line.to_string());
        }
        for (k, v) in fields {
            encode_field(&mut buf, k, v);
        }
        buf
    }
}

impl<S> tracing_subscriber::Layer<S> for JournalLayer
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut v = FieldVisitor::default();
        attrs.record(&mut v);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(v.fields));
        }
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut v = FieldVisitor::default();
        values.record(&mut v);
        if let Some(span) = ctx.span(id) {
            let mut ext = span.extensions_mut();
            if let Some(f) = ext.get_mut::<SpanFields>() {
                f.0.extend(v.fields);
            }
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: tracing_subscriber::layer::Context<'_, S>) {
        let mut fields = BTreeMap::new();
        if let Some(scope) = ctx.event_scope(event) {
            // Outermost first, so inner spans override.
            for span in scope.from_root() {
                if let Some(f) = span.extensions().get::<SpanFields>() {
                    fields.extend(f.0.clone());
                }
            }
        }
        let mut v = FieldVisitor::default();
        event.record(&mut v);
        fields.extend(v.fields);
        let buf = self.entry(
            event.metadata(),
            v.message.as_deref().unwrap_or(""),
            &fields,
        );
        if self.socket.send(&buf).is_err() {
            // Too large for one datagram, or the journal is gone: the
            // message alone, then standard error as the last resort.
            let mut short = Vec::new();
            let msg: String = v.message.unwrap_or_default().chars().take(4096).collect();
            encode_field(&mut short, "MESSAGE", &msg);
            encode_field(&mut short, "PRIORITY", priority(event.metadata().level()));
            encode_field(&mut short, "SYSLOG_IDENTIFIER", &self.identifier);
            if self.socket.send(&short).is_err() {
                eprintln!("{msg}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_needs_every_heartbeat_to_move() {
        let mut p = Progress::default();
        assert_eq!(p.check(1, &[10, 20]), Verdict::Alive);
        assert_eq!(p.check(2, &[11, 21]), Verdict::Alive);
        assert_eq!(p.check(2, &[12, 22]), Verdict::CoreStuck);
        assert_eq!(p.check(3, &[12, 23]), Verdict::WorkersStuck(vec![0]));
        assert_eq!(p.check(4, &[13, 24]), Verdict::Alive);
        // A worker that appears later counts as moved the first time.
        assert_eq!(p.check(5, &[14, 25, 1]), Verdict::Alive);
        assert_eq!(p.check(6, &[15, 26, 1]), Verdict::WorkersStuck(vec![2]));
        // Without the relay only the core counts.
        assert_eq!(p.check(7, &[]), Verdict::Alive);
    }

    #[test]
    fn check_interval_is_half_the_timeout_but_not_below_two_beats() {
        assert_eq!(
            check_interval(Duration::from_secs(10)),
            Duration::from_secs(5)
        );
        assert_eq!(
            check_interval(Duration::from_millis(600)),
            HEARTBEAT_PERIOD * 2
        );
    }

    #[test]
    fn status_lines() {
        assert_eq!(status_line(0, 0, false), "0 registrations, 0 calls");
        assert_eq!(status_line(1, 1, false), "1 registration, 1 call");
        assert_eq!(status_line(5, 2, true), "draining: 2 calls");
    }

    #[test]
    fn notifications_are_noops_outside_systemd() {
        if under_systemd() {
            return;
        }
        ready();
        status("x");
        reloading();
        stopping();
    }

    #[test]
    fn journal_field_names() {
        assert_eq!(journal_field_name("call_id"), "CALL_ID");
        assert_eq!(journal_field_name("user"), "USER");
        assert_eq!(journal_field_name("_x.y"), "X_Y");
        assert_eq!(journal_field_name("1a"), "A");
        assert_eq!(journal_field_name("message"), "F_MESSAGE");
        assert_eq!(journal_field_name(&"a".repeat(80)).len(), 64);
    }

    #[test]
    fn secrets_are_recognised() {
        for s in [
            "password",
            "Password",
            "admin_password",
            "api_token",
            "ha1",
            "key",
        ] {
            assert!(is_secret_field(s), "{s}");
        }
        for s in ["user", "call_id", "keys_loaded", "monkey"] {
            assert!(!is_secret_field(s), "{s}");
        }
    }

    #[test]
    fn native_protocol_encoding() {
        let mut buf = Vec::new();
        encode_field(&mut buf, "USER", "alice");
        encode_field(&mut buf, "MESSAGE", "a\nb");
        let mut want = b"USER=alice\nMESSAGE\n".to_vec();
        want.extend_from_slice(&3u64.to_le_bytes());
        want.extend_from_slice(b"a\nb\n");
        assert_eq!(buf, want);
    }

    #[test]
    fn journal_entries_carry_fields_and_redact_secrets() {
        use tracing_subscriber::layer::SubscriberExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let server = UnixDatagram::bind(&path).unwrap();
        let socket = UnixDatagram::unbound().unwrap();
        socket.connect(&path).unwrap();
        let layer = JournalLayer {
            socket,
            identifier: "callgate".into(),
        };
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("call", call_id = "abc@host");
            let _g = span.enter();
            tracing::warn!(user = "alice", password = "hunter22", "call failed");
        });
        let mut buf = vec![0u8; 65536];
        let n = server.recv(&mut buf).unwrap();
        let text = String::from_utf8_lossy(&buf[..n]).to_string();
        assert!(text.contains("CALL_ID=abc@host\n"), "{text}");
        assert!(text.contains("USER=alice\n"), "{text}");
        assert!(text.contains("PRIORITY=4\n"), "{text}");
        assert!(text.contains("SYSLOG_IDENTIFIER=callgate\n"), "{text}");
        assert!(text.contains("PASSWORD=<redacted>\n"), "{text}");
        assert!(!text.contains("hunter22"), "{text}");
    }
}
