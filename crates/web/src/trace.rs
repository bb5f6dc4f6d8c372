//! SIP trace: a live, bounded view of the SIP messages of one user or one
//! call, like sngrep in the browser. Off by default; while off, recording
//! costs one atomic load per message.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// Most messages kept; older ones are dropped first.
pub const MAX_ENTRIES: usize = 2000;
/// Most message bytes kept in all.
pub const MAX_BYTES: usize = 4 << 20;
/// Longest message text kept per entry.
const MAX_MESSAGE: usize = 16 << 10;

/// What to trace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceFilter {
    /// Messages whose From, To or Request-URI names this user.
    pub user: Option<String>,
    /// Messages of this Call-ID.
    pub call_id: Option<String>,
}

impl TraceFilter {
    fn matches(&self, text: &str) -> bool {
        let head = text.split("\r\n\r\n").next().unwrap_or(text);
        let user_ok = self.user.as_deref().is_none_or(|u| {
            let needle = format!("sip:{u}@");
            head.lines().any(|l| {
                let lower = l.to_ascii_lowercase();
                let relevant = lower.starts_with("from:")
                    || lower.starts_with("f:")
                    || lower.starts_with("to:")
                    || lower.starts_with("t:")
                    || !l.contains(':')
                    || lower.contains(" sip/2.0");
                relevant && l.contains(&needle)
            })
        });
        let call_ok = self.call_id.as_deref().is_none_or(|c| {
            head.lines().any(|l| {
                let lower = l.to_ascii_lowercase();
                (lower.starts_with("call-id:") || lower.starts_with("i:"))
                    && l.split_once(':').is_some_and(|(_, v)| v.trim() == c)
            })
        });
        user_ok && call_ok
    }
}

/// One traced message.
#[derive(Debug, Clone, Serialize)]
pub struct TraceEntry {
    /// Increasing; ask for entries after the last one seen.
    pub seq: u64,
    /// Unix milliseconds.
    pub at_ms: u64,
    /// "in" or "out".
    pub direction: &'static str,
    pub transport: String,
    /// The remote party (address, or flow for connections).
    pub peer: String,
    /// The start line, for lists.
    pub summary: String,
    pub message: String,
}

struct Inner {
    filter: TraceFilter,
    entries: VecDeque<TraceEntry>,
    bytes: usize,
    next_seq: u64,
}

/// The trace buffer shared by the signalling task (which records) and the
/// web handlers (which read and configure).
pub struct SipTrace {
    enabled: AtomicBool,
    inner: Mutex<Inner>,
}

impl Default for SipTrace {
    fn default() -> Self {
        SipTrace {
            enabled: AtomicBool::new(false),
            inner: Mutex::new(Inner {
                filter: TraceFilter::default(),
                entries: VecDeque::new(),
                bytes: 0,
                next_seq: 1,
            }),
        }
    }
}

impl SipTrace {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether recording is on (cheap: check before formatting anything).
    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// Turns tracing on with `filter` (clearing what was kept), or off.
    pub fn configure(&self, filter: Option<TraceFilter>) {
        let mut inner = self.lock();
        inner.entries.clear();
        inner.bytes = 0;
        match filter {
            Some(f) => {
                inner.filter = f;
                self.enabled.store(true, Ordering::Relaxed);
            }
            None => {
                inner.filter = TraceFilter::default();
                self.enabled.store(false, Ordering::Relaxed);
            }
        }
    }

    /// The current filter, if tracing is on.
    pub fn filter(&self) -> Option<TraceFilter> {
        self.enabled().then(|| self.lock().filter.clone())
    }

    /// Records one message if tracing is on and it matches the filter.
    pub fn record(&self, inbound: bool, transport: &str, peer: &str, data: &[u8]) {
        if !self.enabled() {
            return;
        }
        let cut = &data[..data.len().min(MAX_MESSAGE)];
        let text = String::from_utf8_lossy(cut).into_owned();
        let mut inner = self.lock();
        if !inner.filter.matches(&text) {
            return;
        }
        let summary = text
            .lines()
            .next()
            .unwrap_or("")
            .chars()
            .take(200)
            .collect();
        let at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let seq = inner.next_seq;
        inner.next_seq += 1;
        inner.bytes += text.len();
        inner.entries.push_back(TraceEntry {
            seq,
            at_ms,
            direction: if inbound { "in" } else { "out" },
            transport: transport.to_owned(),
            peer: peer.to_owned(),
            summary,
            message: text,
        });
        while inner.entries.len() > MAX_ENTRIES || inner.bytes > MAX_BYTES {
            match inner.entries.pop_front() {
                Some(e) => inner.bytes -= e.message.len(),
                None => break,
            }
        }
    }

    /// Entries with `seq` greater than `after`, oldest first, at most
    /// `limit`.
    pub fn since(&self, after: u64, limit: usize) -> Vec<TraceEntry> {
        self.lock()
            .entries
            .iter()
            .filter(|e| e.seq > after)
            .take(limit)
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:1001@example.com SIP/2.0\r\nFrom: <sip:1000@example.com>;tag=a\r\nTo: <sip:1001@example.com>\r\nCall-ID: abc@h\r\nCSeq: 1 INVITE\r\n\r\n";
    const OTHER: &str = "REGISTER sip:example.com SIP/2.0\r\nFrom: <sip:1002@example.com>;tag=a\r\nTo: <sip:1002@example.com>\r\nCall-ID: xyz@h\r\nCSeq: 1 REGISTER\r\n\r\n";

    #[test]
    fn off_by_default_then_filtered_and_bounded() {
        let t = SipTrace::default();
        t.record(true, "udp", "127.0.0.1:5060", INVITE.as_bytes());
        assert!(t.since(0, 100).is_empty());
        t.configure(Some(TraceFilter {
            user: Some("1001".into()),
            call_id: None,
        }));
        t.record(true, "udp", "127.0.0.1:5060", INVITE.as_bytes());
        t.record(true, "udp", "127.0.0.1:5060", OTHER.as_bytes());
        let got = t.since(0, 100);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].summary, "INVITE sip:1001@example.com SIP/2.0");
        t.configure(Some(TraceFilter {
            user: None,
            call_id: Some("xyz@h".into()),
        }));
        t.record(false, "wss", "flow 3", INVITE.as_bytes());
        t.record(false, "wss", "flow 3", OTHER.as_bytes());
        let got = t.since(0, 100);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].direction, "out");
        for _ in 0..MAX_ENTRIES + 10 {
            t.record(true, "udp", "x", OTHER.as_bytes());
        }
        let all = t.since(0, usize::MAX);
        assert_eq!(all.len(), MAX_ENTRIES);
        assert!(t.since(all.last().unwrap().seq, 10).is_empty());
        t.configure(None);
        assert!(!t.enabled());
        assert!(t.since(0, 10).is_empty());
    }
}

// ----- JSON API ----------------------------------------------------------

use crate::{check_token, Api, ApiError};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::Json;
use std::sync::Arc;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TraceQuery {
    #[serde(default)]
    after: u64,
    limit: Option<usize>,
}

/// `GET /api/v1/trace?after=&limit=`: the filter and the entries after
/// `after`.
pub(crate) async fn get_trace(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    Query(q): Query<TraceQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    check_token(&api, &headers)?;
    let limit = q.limit.unwrap_or(200).clamp(1, 1000);
    Ok(Json(serde_json::json!({
        "enabled": api.trace.enabled(),
        "filter": api.trace.filter(),
        "entries": api.trace.since(q.after, limit),
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TraceSetting {
    enabled: bool,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    call_id: Option<String>,
}

/// `PUT /api/v1/trace` `{"enabled", "user", "call_id"}`: starts (clearing
/// the buffer) or stops tracing. Starting needs a user or a Call-ID: a
/// trace of everything would cost every call.
pub(crate) async fn put_trace(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    check_token(&api, &headers)?;
    let s: TraceSetting = crate::parse_json(&body)?;
    let blank = |v: Option<String>| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    let filter = TraceFilter {
        user: blank(s.user),
        call_id: blank(s.call_id),
    };
    if s.enabled {
        if filter.user.is_none() && filter.call_id.is_none() {
            return Err(ApiError::bad_request(
                "user",
                "give a user or a call_id to trace",
            ));
        }
        api.trace.configure(Some(filter));
    } else {
        api.trace.configure(None);
    }
    Ok(Json(serde_json::json!({
        "enabled": api.trace.enabled(),
        "filter": api.trace.filter(),
    })))
}
