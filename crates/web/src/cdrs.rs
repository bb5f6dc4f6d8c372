//! Call detail records: `/api/v1/cdrs` (JSON, paged) and
//! `/api/v1/cdrs.csv` (the whole selection, streamed).
//!
//! Both take the filters `from` and `to` (unix seconds, an RFC 3339
//! date-time or a date; `from` inclusive, `to` exclusive, on the start of
//! the call), `direction` (`inbound`, `outbound`, `internal`) and `user`
//! (calls the account placed or received); the JSON list also `offset` and
//! `limit` (default 50, at most 500). A parameter with an empty value is
//! left out. Unknown parameters are refused rather than ignored, so a typo
//! does not widen the selection.

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use std::collections::HashMap;
use std::io::Write;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::{mpsc, oneshot};

use crate::{check_token, parse_time, Api, ApiError};

/// RTP counters of one leg as the API shows them.
#[derive(Debug, Clone, Serialize)]
pub struct MediaView {
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub lost_packets: u64,
    pub jitter_ms: f64,
}

impl From<store::MediaStats> for MediaView {
    fn from(m: store::MediaStats) -> Self {
        MediaView {
            rx_packets: m.rx_packets,
            tx_packets: m.tx_packets,
            rx_bytes: m.rx_bytes,
            tx_bytes: m.tx_bytes,
            lost_packets: m.lost_packets,
            jitter_ms: m.jitter_ms,
        }
    }
}

/// A CDR as the API shows it; times are unix seconds.
#[derive(Debug, Clone, Serialize)]
pub struct CdrView {
    pub id: i64,
    pub call_id: String,
    pub started_at: i64,
    pub answered_at: Option<i64>,
    pub ended_at: i64,
    pub caller: String,
    pub callee: String,
    pub caller_user: Option<String>,
    pub callee_user: Option<String>,
    pub direction: String,
    pub disposition: String,
    pub duration_secs: u32,
    pub trunk: Option<String>,
    pub caller_media: Option<MediaView>,
    pub callee_media: Option<MediaView>,
}

impl From<store::Cdr> for CdrView {
    fn from(c: store::Cdr) -> Self {
        CdrView {
            id: c.id,
            call_id: c.call_id,
            started_at: c.started_at,
            answered_at: c.answered_at,
            ended_at: c.ended_at,
            caller: c.caller,
            callee: c.callee,
            caller_user: c.caller_user,
            callee_user: c.callee_user,
            direction: c.direction.to_string(),
            disposition: c.disposition.to_string(),
            duration_secs: c.duration_secs,
            trunk: c.trunk,
            caller_media: c.caller_media.map(MediaView::from),
            callee_media: c.callee_media.map(MediaView::from),
        }
    }
}

/// The filter of a query string; with `paged`, also offset and limit.
fn filter(
    q: &HashMap<String, String>,
    paged: bool,
) -> Result<(store::CdrFilter, u32, u32), ApiError> {
    let mut f = store::CdrFilter::default();
    let (mut offset, mut limit) = (0, 50);
    for (key, value) in q {
        // A form's blank field (`from=&to=`) filters nothing.
        let known = ["from", "to", "direction", "disposition", "user"].contains(&key.as_str())
            || (paged && ["offset", "limit"].contains(&key.as_str()));
        if known && value.is_empty() {
            continue;
        }
        let time = || parse_time(value).map_err(|e| ApiError::bad_request(key, e));
        let count = || {
            value.parse::<u32>().map_err(|_| {
                ApiError::bad_request(key, format!("`{value}` is not a non-negative integer"))
            })
        };
        match key.as_str() {
            "from" => f.since = Some(time()?),
            "to" => f.until = Some(time()?),
            "direction" => {
                f.direction = Some(
                    value
                        .parse()
                        .map_err(|e: store::Error| ApiError::bad_request(key, e.to_string()))?,
                )
            }
            "user" => f.user = Some(value.clone()),
            // The store filters on what the list pages over; there is no
            // disposition index or filter there yet.
            "disposition" => {
                return Err(ApiError::bad_request(
                    key,
                    "filtering by disposition is not supported",
                ))
            }
            "offset" if paged => offset = count()?,
            "limit" if paged => limit = count()?.min(500),
            _ => {
                return Err(ApiError::bad_request(
                    key,
                    format!("unknown parameter {key:?}"),
                ))
            }
        }
    }
    Ok((f, offset, limit))
}

pub(crate) async fn list_cdrs(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    check_token(&api, &headers)?;
    let (f, offset, limit) = filter(&q, true)?;
    let (cdrs, total) = api
        .with_store(move |s| Ok((s.list_cdrs(&f, offset, limit)?, s.count_cdrs(&f)?)))
        .await?;
    let cdrs: Vec<CdrView> = cdrs.into_iter().map(CdrView::from).collect();
    Ok(Json(
        serde_json::json!({ "cdrs": cdrs, "total": total, "offset": offset, "limit": limit }),
    ))
}

/// Bytes buffered before a chunk goes to the client.
const CHUNK: usize = 64 * 1024;

/// Hands the CSV to the response body in chunks; fails once the client
/// has gone, which stops the export.
struct ChunkWriter {
    tx: mpsc::Sender<std::io::Result<Vec<u8>>>,
    buf: Vec<u8>,
}

impl ChunkWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// The chunks as a body stream.
struct Chunks(mpsc::Receiver<std::io::Result<Vec<u8>>>);

impl futures_core::Stream for Chunks {
    type Item = std::io::Result<Vec<u8>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

/// Streams the CSV of [`store::Store::export_cdrs_csv`] over a connection
/// of its own, so a slow download holds up no other request. An error
/// after the first byte ends the body early (the client sees a truncated
/// transfer).
pub(crate) async fn cdrs_csv(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    check_token(&api, &headers)?;
    let (f, _, _) = filter(&q, false)?;
    let (tx, rx) = mpsc::channel(4);
    let (opened_tx, opened_rx) = oneshot::channel();
    let db = api.db_path.clone();
    tokio::task::spawn_blocking(move || {
        let store = match store::Store::open(&db) {
            Ok(s) => {
                let _ = opened_tx.send(Ok(()));
                s
            }
            Err(e) => {
                let _ = opened_tx.send(Err(e));
                return;
            }
        };
        let mut out = ChunkWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
        };
        if let Err(e) = store.export_cdrs_csv(&f, &mut out) {
            tracing::warn!("CDR export: {e}");
            let _ = out
                .tx
                .blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    opened_rx
        .await
        .map_err(|_| ApiError::internal("store task failed"))??;
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"cdrs.csv\"",
            ),
        ],
        Body::from_stream(Chunks(rx)),
    )
        .into_response())
}
