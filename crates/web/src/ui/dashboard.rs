//! The dashboard: component health, today's call figures and a chart of
//! the last hour, fed by a sampler that asks the core every 10 seconds.

use askama::Template;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{
    fmt_duration, fmt_uptime, page, unix_now, Auth, DashboardView, Layout, Sample, SAMPLES,
};
use crate::{Api, CoreQuery, TrunkStatusView};

/// How often the sampler asks the core.
pub(crate) const SAMPLE_EVERY: Duration = Duration::from_secs(10);

/// Starts the task that fills the dashboard chart: every 10 seconds it
/// asks the core for a [`DashboardView`] and keeps the concurrent calls and
/// the relayed packets per second of the last hour. Runs until the runtime
/// stops.
pub fn spawn_sampler(api: Arc<Api>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tick.tick().await;
            if let Some(view) = api
                .ask_core(CoreQuery::Dashboard, Duration::from_secs(5))
                .await
            {
                record(&api, &view, Instant::now(), unix_now() as u64);
            }
        }
    })
}

/// Adds a chart point from a core answer taken at `now`.
pub(crate) fn record(api: &Api, view: &DashboardView, now: Instant, unix: u64) {
    let mut ring = api.ui.samples.lock().unwrap_or_else(|e| e.into_inner());
    let counters: Vec<u64> = view.media.workers.iter().map(|w| w.packets).collect();
    let rates: Vec<f64> = match &ring.last_counters {
        Some((then, old)) if old.len() == counters.len() => {
            let secs = now.duration_since(*then).as_secs_f64().max(0.001);
            counters
                .iter()
                .zip(old)
                // A counter that went backwards (a restarted worker)
                // counts from zero.
                .map(|(new, old)| new.checked_sub(*old).unwrap_or(*new) as f64 / secs)
                .collect()
        }
        _ => vec![0.0; counters.len()],
    };
    let pps = rates.iter().sum();
    ring.last_counters = Some((now, counters));
    ring.worker_rates = rates;
    if ring.samples.len() >= SAMPLES {
        ring.samples.pop_front();
    }
    ring.samples.push_back(Sample {
        t: unix,
        calls: view.active_calls,
        registrations: view.registrations,
        pps,
    });
}

/// Today's calls (UTC day) from the CDRs.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Today {
    pub calls: u64,
    pub answered: u64,
    /// Answered calls' total duration.
    pub talk_secs: u64,
}

impl Today {
    /// Answer-seizure ratio: answered / all calls.
    pub fn asr(&self) -> String {
        if self.calls == 0 {
            "–".into()
        } else {
            format!("{:.0} %", self.answered as f64 * 100.0 / self.calls as f64)
        }
    }
    /// Average call duration of the answered calls.
    pub fn acd(&self) -> String {
        self.talk_secs
            .checked_div(self.answered)
            .map_or_else(|| "–".into(), fmt_duration)
    }
}

/// Counts the calls that started at or after `since`.
pub(crate) fn today(s: &store::Store, since: i64) -> store::Result<Today> {
    const PAGE: u32 = 1000;
    let filter = store::CdrFilter {
        since: Some(since),
        ..Default::default()
    };
    let mut t = Today::default();
    let mut offset = 0;
    loop {
        let cdrs = s.list_cdrs(&filter, offset, PAGE)?;
        for c in &cdrs {
            t.calls += 1;
            if c.disposition == store::Disposition::Answered {
                t.answered += 1;
                t.talk_secs += u64::from(c.duration_secs);
            }
        }
        if (cdrs.len() as u32) < PAGE || offset >= 1_000_000 {
            return Ok(t);
        }
        offset += PAGE;
    }
}

struct WorkerRow {
    index: usize,
    alive: bool,
    pps: String,
}

#[derive(Template)]
#[template(path = "dashboard.html", config = "../../web-ui/templates/askama.toml")]
struct DashboardPage {
    layout: Layout,
    /// Whether the core answered; without it only the store figures show.
    core_ok: bool,
    view: DashboardView,
    uptime: String,
    version: String,
    store_ok: bool,
    today: Today,
    workers: Vec<WorkerRow>,
    workers_ok: bool,
    total_pps: String,
    trunks: Vec<TrunkStatusView>,
}

pub(crate) async fn show(
    State(api): State<Arc<Api>>,
    Extension(auth): Extension<Auth>,
) -> Response {
    let answer = api.ask_core(CoreQuery::Dashboard, super::CORE_WAIT).await;
    let midnight = unix_now() - unix_now().rem_euclid(86_400);
    let today_stats = api.with_store(move |s| today(s, midnight)).await;
    let core_ok = answer.is_some();
    let view = answer.unwrap_or_default();
    let rates = api
        .ui
        .samples
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .worker_rates
        .clone();
    let workers = view
        .media
        .workers
        .iter()
        .enumerate()
        .map(|(i, w)| WorkerRow {
            index: i,
            alive: w.alive,
            pps: rates
                .get(i)
                .map_or_else(|| "–".into(), |r| format!("{r:.0}")),
        })
        .collect();
    let total_pps = format!("{:.0}", rates.iter().sum::<f64>());
    let uptime_secs = if core_ok {
        view.uptime_secs
    } else {
        api.ui.started.elapsed().as_secs()
    };
    let version = if view.version.is_empty() {
        env!("CARGO_PKG_VERSION").to_owned()
    } else {
        view.version.clone()
    };
    let store_ok = today_stats.is_ok() && (view.store_ok || !core_ok);
    let mut trunks = view.trunks.clone();
    trunks.sort_by(|a, b| a.name.cmp(&b.name));
    page(&DashboardPage {
        layout: auth.layout(&api, "Dashboard", "dashboard"),
        core_ok,
        uptime: fmt_uptime(uptime_secs),
        version,
        store_ok,
        today: today_stats.unwrap_or_default(),
        workers_ok: view.media.workers.iter().all(|w| w.alive),
        workers,
        total_pps,
        trunks,
        view,
    })
}

/// The chart's data: `{"now": unix, "interval": 10, "samples": [{"t",
/// "calls", "registrations", "pps"}]}`, oldest first.
pub(crate) async fn samples(State(api): State<Arc<Api>>) -> Response {
    let samples: Vec<Sample> = api
        .ui
        .samples
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .samples
        .iter()
        .copied()
        .collect();
    Json(serde_json::json!({
        "now": unix_now(),
        "interval": SAMPLE_EVERY.as_secs(),
        "samples": samples,
    }))
    .into_response()
}
