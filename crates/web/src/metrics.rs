//! Prometheus metrics: `/metrics` in the Prometheus text format (0.0.4).
//!
//! The gateway's counters live in the tasks that own them (the signalling
//! core, the media workers); the binary copies them into a
//! [`MetricsSnapshot`] about once a second with [`Metrics::update`], and a
//! scrape encodes the latest snapshot. Counters in a snapshot are totals
//! since start, never deltas. Store write latency is observed as it happens
//! with [`Metrics::observe_store_write`].
//!
//! Families (all prefixed `callgate_`):
//!
//! | name | type | labels |
//! |---|---|---|
//! | `callgate_sip_messages_total` | counter | `direction` (in, out), `transport` (udp, tcp, tls, ws, wss, flow), `kind` (INVITE, ..., OTHER, 1xx..6xx, invalid) |
//! | `callgate_sip_transactions` | gauge | |
//! | `callgate_sip_registrations` | gauge | |
//! | `callgate_calls` | gauge | |
//! | `callgate_sip_auth_failures_total` | counter | |
//! | `callgate_sip_forwarded_total` | counter | |
//! | `callgate_sip_bad_requests_total` | counter | |
//! | `callgate_sip_unparsable_dropped_total` | counter | |
//! | `callgate_sip_responses_dropped_total` | counter | |
//! | `callgate_media_sessions` | gauge | |
//! | `callgate_media_worker_sessions` | gauge | `worker` |
//! | `callgate_media_packets_total` | counter | `direction` (in, out), `worker` |
//! | `callgate_media_bytes_total` | counter | `direction` (in, out), `worker` |
//! | `callgate_media_send_errors_total` | counter | `worker` |
//! | `callgate_media_recv_errors_total` | counter | `worker` |
//! | `callgate_media_recv_no_buffers_total` | counter | `worker` |
//! | `callgate_media_worker_busy_seconds_total` | counter | `worker` |
//! | `callgate_media_dropped_packets_total` | counter | |
//! | `callgate_trunk_registered` | gauge | `trunk`, `state` |
//! | `callgate_trunk_active_calls` | gauge | `trunk` |
//! | `callgate_store_write_duration_seconds` | histogram | |
//! | `callgate_build_info` | gauge | `version` |
//! | `callgate_start_time_seconds` | gauge | |
//!
//! The media families are left out while the relay is off
//! ([`MetricsSnapshot::media`] is `None`).

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The `Content-Type` of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Everything the gateway reports, as of one moment.
#[derive(Debug, Clone, Default)]
pub struct MetricsSnapshot {
    pub sip: SipMetrics,
    /// `None` while the media relay is off.
    pub media: Option<MediaMetrics>,
    /// One per trunk the signalling core knows, as for
    /// `GET /api/v1/trunks` ([`crate::TrunkStatusView`]).
    pub trunks: Vec<crate::TrunkStatusView>,
}

/// The signalling core's figures.
#[derive(Debug, Clone, Default)]
pub struct SipMetrics {
    /// Messages received and sent (`signal::proxy::Stats::message_counts`).
    pub messages: Vec<SipMessageCount>,
    /// Open transactions (`Core::transaction_count`).
    pub transactions: u64,
    /// Registered contact bindings.
    pub registrations: u64,
    /// Calls in progress (ringing or answered).
    pub calls: u64,
    /// Requests refused for bad or failed credentials (`Stats::auth_failures`).
    pub auth_failures: u64,
    /// Requests proxied onward (`Stats::forwarded`).
    pub forwarded: u64,
    /// Requests answered 400 (`Stats::bad_requests`).
    pub bad_requests: u64,
    /// Received datagrams or frames that were not SIP
    /// (`Stats::unparsable_dropped`).
    pub unparsable_dropped: u64,
    /// Responses that matched nothing (`Stats::responses_dropped`).
    pub responses_dropped: u64,
}

/// A total of SIP messages of one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SipMessageCount {
    /// "in" or "out".
    pub direction: &'static str,
    /// "udp", "tcp", "tls", "ws", "wss" (or "flow": a connection of
    /// unknown transport).
    pub transport: &'static str,
    /// Method ("INVITE", ..., "OTHER"), response class ("1xx".."6xx") or
    /// "invalid".
    pub kind: &'static str,
    pub total: u64,
}

/// The media relay's figures.
#[derive(Debug, Clone, Default)]
pub struct MediaMetrics {
    /// One per worker (`media::driver::Relay::worker_stats`), in worker
    /// order: the index is the `worker` label.
    pub workers: Vec<MediaWorkerMetrics>,
    /// Datagrams the relay dropped (failed SRTP/DTLS, unexpected source,
    /// no route): a total since start, so the ended sessions' counts must
    /// stay in it. `None` leaves the family out.
    pub dropped_packets: Option<u64>,
}

/// One media worker's counters, named as in `media::driver::WorkerStats`.
#[derive(Debug, Clone, Default)]
pub struct MediaWorkerMetrics {
    /// Sessions on this worker now.
    pub sessions: u64,
    pub packets_in: u64,
    pub bytes_in: u64,
    pub packets_out: u64,
    pub bytes_out: u64,
    pub send_errors: u64,
    pub recv_errors: u64,
    pub recv_no_buffers: u64,
    /// Time spent processing rather than waiting.
    pub busy_nanos: u64,
}

/// The metrics registry and the latest snapshot. Shared as `Arc<Metrics>`
/// between the binary (writing) and the HTTP listeners (reading).
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    snapshot: Arc<RwLock<MetricsSnapshot>>,
    store_write: Histogram,
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        let snapshot = Arc::new(RwLock::new(MetricsSnapshot::default()));
        // 0.5 ms .. 4 s.
        let store_write = Histogram::new(exponential_buckets(0.0005, 2.0, 14));
        let mut registry = Registry::default();
        registry.register_with_unit(
            "callgate_store_write_duration",
            "Time a write to the SQLite store took",
            Unit::Seconds,
            store_write.clone(),
        );
        let started = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        registry.register_collector(Box::new(SnapshotCollector {
            snapshot: snapshot.clone(),
            started_unix: started.as_secs_f64(),
        }));
        Arc::new(Metrics {
            registry,
            snapshot,
            store_write,
        })
    }

    /// Replaces the snapshot the next scrape encodes.
    pub fn update(&self, snapshot: MetricsSnapshot) {
        *self.snapshot.write().unwrap_or_else(|e| e.into_inner()) = snapshot;
    }

    /// Records how long one store write took.
    pub fn observe_store_write(&self, took: Duration) {
        self.store_write.observe(took.as_secs_f64());
    }

    /// The metrics in the Prometheus text format ([`CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        // Writing into a String cannot fail; an encoder error would be a
        // bug in a label, and what was written so far is still served.
        if let Err(e) =
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
        {
            tracing::warn!("encoding metrics failed: {e}");
        }
        out
    }
}

/// Encodes the latest [`MetricsSnapshot`] on each scrape.
#[derive(Debug)]
struct SnapshotCollector {
    snapshot: Arc<RwLock<MetricsSnapshot>>,
    started_unix: f64,
}

/// Writes one family: a descriptor, then one sample per label set.
fn family<M: EncodeMetric, L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    samples: impl IntoIterator<Item = (L, M)>,
) -> Result<(), std::fmt::Error> {
    let mut samples = samples.into_iter().peekable();
    let Some((_, first)) = samples.peek() else {
        return Ok(());
    };
    let mut metric = encoder.encode_descriptor(name, help, unit, first.metric_type())?;
    for (labels, value) in samples {
        value.encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

type NoLabels = [(&'static str, &'static str); 0];

fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> std::fmt::Result {
    family(
        encoder,
        name,
        help,
        None,
        [([] as NoLabels, ConstGauge::new(value))],
    )
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> std::fmt::Result {
    family(
        encoder,
        name,
        help,
        None,
        [([] as NoLabels, ConstCounter::new(value))],
    )
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = self.snapshot.read().unwrap_or_else(|e| e.into_inner());
        let e = &mut e;
        family(
            e,
            "callgate_build_info",
            "The gateway's version; always 1.",
            None,
            [(
                [("version", env!("CARGO_PKG_VERSION"))],
                ConstGauge::new(1u64),
            )],
        )?;
        family(
            e,
            "callgate_start_time",
            "When the gateway started, in seconds since the Unix epoch.",
            Some(&Unit::Seconds),
            [([] as NoLabels, ConstGauge::new(self.started_unix))],
        )?;

        let sip = &s.sip;
        family(
            e,
            "callgate_sip_messages",
            "SIP messages received (in) and sent (out) by transport and by method, \
             response class or \"invalid\" (received bytes that were not SIP).",
            None,
            sip.messages.iter().map(|m| {
                (
                    [
                        ("direction", m.direction),
                        ("transport", m.transport),
                        ("kind", m.kind),
                    ],
                    ConstCounter::new(m.total),
                )
            }),
        )?;
        gauge(
            e,
            "callgate_sip_transactions",
            "Open SIP transactions.",
            sip.transactions,
        )?;
        gauge(
            e,
            "callgate_sip_registrations",
            "Registered contact bindings.",
            sip.registrations,
        )?;
        gauge(
            e,
            "callgate_calls",
            "Calls in progress, ringing or answered.",
            sip.calls,
        )?;
        counter(
            e,
            "callgate_sip_auth_failures",
            "Requests refused for wrong or malformed credentials.",
            sip.auth_failures,
        )?;
        counter(
            e,
            "callgate_sip_forwarded",
            "Requests proxied onward.",
            sip.forwarded,
        )?;
        counter(
            e,
            "callgate_sip_bad_requests",
            "Malformed requests answered with an error.",
            sip.bad_requests,
        )?;
        counter(
            e,
            "callgate_sip_unparsable_dropped",
            "Received messages dropped because they could not be parsed or answered.",
            sip.unparsable_dropped,
        )?;
        counter(
            e,
            "callgate_sip_responses_dropped",
            "Received responses that matched no transaction.",
            sip.responses_dropped,
        )?;

        if let Some(media) = &s.media {
            let workers: Vec<(String, &MediaWorkerMetrics)> = media
                .workers
                .iter()
                .enumerate()
                .map(|(i, w)| (i.to_string(), w))
                .collect();
            gauge(
                e,
                "callgate_media_sessions",
                "Media relay sessions (calls whose media is relayed).",
                media.workers.iter().map(|w| w.sessions).sum(),
            )?;
            family(
                e,
                "callgate_media_worker_sessions",
                "Media relay sessions per worker.",
                None,
                workers
                    .iter()
                    .map(|(i, w)| ([("worker", i.as_str())], ConstGauge::new(w.sessions))),
            )?;
            let per_direction = |f: fn(&MediaWorkerMetrics) -> (u64, u64)| {
                workers.iter().flat_map(move |(i, w)| {
                    let (rx, tx) = f(w);
                    [
                        (
                            [("direction", "in"), ("worker", i.as_str())],
                            ConstCounter::new(rx),
                        ),
                        (
                            [("direction", "out"), ("worker", i.as_str())],
                            ConstCounter::new(tx),
                        ),
                    ]
                })
            };
            family(
                e,
                "callgate_media_packets",
                "Media datagrams received (in) and sent (out) by the relay.",
                None,
                per_direction(|w| (w.packets_in, w.packets_out)),
            )?;
            family(
                e,
                "callgate_media_bytes",
                "Bytes of media datagrams received (in) and sent (out) by the relay.",
                None,
                per_direction(|w| (w.bytes_in, w.bytes_out)),
            )?;
            let per_worker = |f: fn(&MediaWorkerMetrics) -> u64| {
                workers
                    .iter()
                    .map(move |(i, w)| ([("worker", i.as_str())], ConstCounter::new(f(w))))
            };
            family(
                e,
                "callgate_media_send_errors",
                "Media datagrams that could not be sent.",
                None,
                per_worker(|w| w.send_errors),
            )?;
            family(
                e,
                "callgate_media_recv_errors",
                "Media socket receives that ended in an error (ICMP unreachable...).",
                None,
                per_worker(|w| w.recv_errors),
            )?;
            family(
                e,
                "callgate_media_recv_no_buffers",
                "Times a media worker's receive buffers ran out.",
                None,
                per_worker(|w| w.recv_no_buffers),
            )?;
            family(
                e,
                "callgate_media_worker_busy",
                "Time a media worker spent processing rather than waiting.",
                Some(&Unit::Seconds),
                workers.iter().map(|(i, w)| {
                    (
                        [("worker", i.as_str())],
                        ConstCounter::new(w.busy_nanos as f64 / 1e9),
                    )
                }),
            )?;
            if let Some(dropped) = media.dropped_packets {
                counter(
                    e,
                    "callgate_media_dropped_packets",
                    "Media datagrams the relay dropped: failed SRTP or DTLS, unexpected \
                     source, no route.",
                    dropped,
                )?;
            }
        }

        family(
            e,
            "callgate_trunk_registered",
            "1 while the trunk is registered with its provider, else 0; the state label \
             is disabled, registering, registered or failed.",
            None,
            s.trunks.iter().map(|t| {
                (
                    [("trunk", t.name.as_str()), ("state", t.state.as_str())],
                    ConstGauge::new(u64::from(t.state == "registered")),
                )
            }),
        )?;
        family(
            e,
            "callgate_trunk_active_calls",
            "Calls in progress over the trunk.",
            None,
            s.trunks.iter().map(|t| {
                (
                    [("trunk", t.name.as_str())],
                    ConstGauge::new(t.active_calls),
                )
            }),
        )?;
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::{BTreeMap, HashMap};

    /// One sample of a parsed exposition.
    #[derive(Debug, Clone, PartialEq)]
    pub(crate) struct Sample {
        pub name: String,
        pub labels: BTreeMap<String, String>,
        pub value: f64,
    }

    /// A parsed exposition: the type of each family and every sample.
    #[derive(Debug, Default)]
    pub(crate) struct Exposition {
        pub types: HashMap<String, String>,
        pub help: HashMap<String, String>,
        pub samples: Vec<Sample>,
    }

    impl Exposition {
        pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
            self.samples
                .iter()
                .find(|s| {
                    s.name == name
                        && s.labels.len() == labels.len()
                        && labels
                            .iter()
                            .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(v))
                })
                .map(|s| s.value)
        }
    }

    fn is_name(s: &str) -> bool {
        let mut chars = s.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    }

    /// Parses the Prometheus text format (0.0.4) strictly enough to catch
    /// malformed output: every sample belongs to a family declared with
    /// HELP and TYPE before it, names and labels are well-formed, values
    /// are numbers, and no series repeats.
    pub(crate) fn parse(text: &str) -> Result<Exposition, String> {
        let mut x = Exposition::default();
        let mut seen = std::collections::HashSet::new();
        if !text.is_empty() && !text.ends_with('\n') {
            return Err("no final newline".into());
        }
        for (n, line) in text.lines().enumerate() {
            let err = |m: &str| Err(format!("line {}: {m}: {line}", n + 1));
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
                if !is_name(name) || x.help.insert(name.into(), help.into()).is_some() {
                    return err("bad or repeated HELP");
                }
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let Some((name, ty)) = rest.split_once(' ') else {
                    return err("bad TYPE");
                };
                if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&ty)
                    || !is_name(name)
                    || x.types.insert(name.into(), ty.into()).is_some()
                {
                    return err("bad or repeated TYPE");
                }
                continue;
            }
            if line.starts_with('#') || line.is_empty() {
                return err("unexpected comment or blank line");
            }
            let (series, value) = match line.rsplit_once(' ') {
                Some(p) => p,
                None => return err("no value"),
            };
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => match v.parse() {
                    Ok(v) => v,
                    Err(_) => return err("bad value"),
                },
            };
            let (name, labels) = match series.split_once('{') {
                None => (series, BTreeMap::new()),
                Some((name, rest)) => {
                    let Some(body) = rest.strip_suffix('}') else {
                        return err("unterminated labels");
                    };
                    let mut labels = BTreeMap::new();
                    let mut rest = body;
                    while !rest.is_empty() {
                        let Some((key, after)) = rest.split_once("=\"") else {
                            return err("bad label");
                        };
                        let mut value = String::new();
                        let mut chars = after.char_indices();
                        let mut end = None;
                        while let Some((i, c)) = chars.next() {
                            match c {
                                '\\' => match chars.next() {
                                    Some((_, 'n')) => value.push('\n'),
                                    Some((_, c @ ('\\' | '"'))) => value.push(c),
                                    _ => return err("bad escape"),
                                },
                                '"' => {
                                    end = Some(i);
                                    break;
                                }
                                c => value.push(c),
                            }
                        }
                        let Some(end) = end else {
                            return err("unterminated label value");
                        };
                        if !is_name(key) || labels.insert(key.to_owned(), value).is_some() {
                            return err("bad or repeated label name");
                        }
                        rest = &after[end + 1..];
                        rest = rest.strip_prefix(',').unwrap_or(rest);
                    }
                    (name, labels)
                }
            };
            if !is_name(name) {
                return err("bad metric name");
            }
            // Histogram samples carry a suffix to their family's name.
            let declared = x.types.get(name).or_else(|| {
                ["_bucket", "_sum", "_count"]
                    .iter()
                    .filter_map(|suffix| name.strip_suffix(suffix))
                    .find_map(|base| x.types.get(base))
            });
            match declared.map(String::as_str) {
                None => return err("sample before its TYPE"),
                Some("counter") if !name.ends_with("_total") => {
                    return err("counter sample without _total")
                }
                Some("counter") if value < 0.0 => return err("negative counter"),
                _ => {}
            }
            if !seen.insert(format!("{name}{labels:?}")) {
                return err("repeated series");
            }
            x.samples.push(Sample {
                name: name.into(),
                labels,
                value,
            });
        }
        for name in x.types.keys() {
            if !x.help.contains_key(name) {
                return Err(format!("{name} has a TYPE but no HELP"));
            }
        }
        Ok(x)
    }

    pub(crate) fn sample_snapshot() -> MetricsSnapshot {
        MetricsSnapshot {
            sip: SipMetrics {
                messages: vec![
                    SipMessageCount {
                        direction: "in",
                        transport: "wss",
                        kind: "INVITE",
                        total: 7,
                    },
                    SipMessageCount {
                        direction: "out",
                        transport: "udp",
                        kind: "2xx",
                        total: 5,
                    },
                    SipMessageCount {
                        direction: "in",
                        transport: "udp",
                        kind: "invalid",
                        total: 1,
                    },
                ],
                transactions: 3,
                registrations: 2,
                calls: 1,
                auth_failures: 4,
                forwarded: 9,
                bad_requests: 1,
                unparsable_dropped: 1,
                responses_dropped: 0,
            },
            media: Some(MediaMetrics {
                workers: vec![
                    MediaWorkerMetrics {
                        sessions: 1,
                        packets_in: 100,
                        bytes_in: 17_200,
                        packets_out: 99,
                        bytes_out: 16_000,
                        busy_nanos: 1_500_000_000,
                        ..Default::default()
                    },
                    MediaWorkerMetrics {
                        sessions: 2,
                        ..Default::default()
                    },
                ],
                dropped_packets: Some(3),
            }),
            trunks: vec![
                crate::TrunkStatusView {
                    name: "carrier".into(),
                    state: "registered".into(),
                    detail: None,
                    expires_in: Some(100),
                    active_calls: 1,
                },
                crate::TrunkStatusView {
                    name: "backup \"b\"".into(),
                    state: "failed".into(),
                    detail: Some("403 Forbidden".into()),
                    expires_in: None,
                    active_calls: 0,
                },
            ],
        }
    }

    #[test]
    fn empty_snapshot_encodes() {
        let m = Metrics::new();
        let x = parse(&m.encode()).unwrap();
        assert_eq!(x.value("callgate_calls", &[]), Some(0.0));
        assert_eq!(
            x.types["callgate_store_write_duration_seconds"],
            "histogram"
        );
        assert!(
            !x.types.contains_key("callgate_media_sessions"),
            "no media families without a relay"
        );
        assert!(
            !x.types.contains_key("callgate_sip_messages"),
            "an empty family is left out"
        );
        assert!(x.value("callgate_start_time_seconds", &[]).unwrap() > 1.7e9);
    }

    #[test]
    fn snapshot_families_and_values() {
        let m = Metrics::new();
        m.update(sample_snapshot());
        m.observe_store_write(Duration::from_millis(3));
        m.observe_store_write(Duration::from_micros(200));
        let text = m.encode();
        let x = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        for (family, ty) in [
            ("callgate_sip_messages", "counter"),
            ("callgate_sip_transactions", "gauge"),
            ("callgate_sip_registrations", "gauge"),
            ("callgate_calls", "gauge"),
            ("callgate_sip_auth_failures", "counter"),
            ("callgate_sip_forwarded", "counter"),
            ("callgate_sip_bad_requests", "counter"),
            ("callgate_sip_unparsable_dropped", "counter"),
            ("callgate_sip_responses_dropped", "counter"),
            ("callgate_media_sessions", "gauge"),
            ("callgate_media_worker_sessions", "gauge"),
            ("callgate_media_packets", "counter"),
            ("callgate_media_bytes", "counter"),
            ("callgate_media_send_errors", "counter"),
            ("callgate_media_recv_errors", "counter"),
            ("callgate_media_recv_no_buffers", "counter"),
            ("callgate_media_worker_busy_seconds", "counter"),
            ("callgate_media_dropped_packets", "counter"),
            ("callgate_trunk_registered", "gauge"),
            ("callgate_trunk_active_calls", "gauge"),
            ("callgate_store_write_duration_seconds", "histogram"),
            ("callgate_build_info", "gauge"),
            ("callgate_start_time_seconds", "gauge"),
        ] {
            // The text format declares counters with their _total name.
            let declared = if ty == "counter" {
                format!("{family}_total")
            } else {
                family.to_owned()
            };
            assert_eq!(
                x.types.get(&declared).map(String::as_str),
                Some(ty),
                "{declared}\n{text}"
            );
            assert!(!x.help[&declared].is_empty(), "{declared} has help");
        }
        let v = |name, labels: &[(&str, &str)]| {
            x.value(name, labels)
                .unwrap_or_else(|| panic!("{name}{labels:?} missing\n{text}"))
        };
        assert_eq!(
            v(
                "callgate_sip_messages_total",
                &[
                    ("direction", "in"),
                    ("transport", "wss"),
                    ("kind", "INVITE")
                ]
            ),
            7.0
        );
        assert_eq!(
            v(
                "callgate_sip_messages_total",
                &[
                    ("direction", "in"),
                    ("transport", "udp"),
                    ("kind", "invalid")
                ]
            ),
            1.0
        );
        assert_eq!(v("callgate_sip_transactions", &[]), 3.0);
        assert_eq!(v("callgate_sip_auth_failures_total", &[]), 4.0);
        assert_eq!(v("callgate_media_sessions", &[]), 3.0);
        assert_eq!(
            v(
                "callgate_media_packets_total",
                &[("direction", "out"), ("worker", "0")]
            ),
            99.0
        );
        assert_eq!(
            v(
                "callgate_media_worker_busy_seconds_total",
                &[("worker", "0")]
            ),
            1.5
        );
        assert_eq!(v("callgate_media_dropped_packets_total", &[]), 3.0);
        assert_eq!(
            v(
                "callgate_trunk_registered",
                &[("trunk", "carrier"), ("state", "registered")]
            ),
            1.0
        );
        assert_eq!(
            v(
                "callgate_trunk_registered",
                &[("trunk", "backup \"b\""), ("state", "failed")]
            ),
            0.0
        );
        assert_eq!(v("callgate_store_write_duration_seconds_count", &[]), 2.0);
        assert!((v("callgate_store_write_duration_seconds_sum", &[]) - 0.0032).abs() < 1e-9);
        assert_eq!(
            v(
                "callgate_store_write_duration_seconds_bucket",
                &[("le", "+Inf")]
            ),
            2.0
        );
        assert_eq!(
            v(
                "callgate_build_info",
                &[("version", env!("CARGO_PKG_VERSION"))]
            ),
            1.0
        );

        // A later snapshot replaces the earlier one whole.
        m.update(MetricsSnapshot::default());
        let x = parse(&m.encode()).unwrap();
        assert!(x.value("callgate_media_sessions", &[]).is_none());
        assert_eq!(
            x.value("callgate_store_write_duration_seconds_count", &[]),
            Some(2.0)
        );
    }

    #[test]
    fn parser_rejects_malformed_text() {
        for bad in [
            "callgate_x 1\n",
            "# HELP a x\n# TYPE a gauge\na{b=\"1\" 2\n",
            "# HELP a x\n# TYPE a gauge\na one\n",
            "# HELP a x\n# TYPE a gauge\na 1\na 2\n",
            "# HELP a x\n# TYPE a counter\na_total -1\n",
            "# TYPE a gauge\na 1\n",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
