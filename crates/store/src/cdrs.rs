//! Call detail records: one row per call, written when it ends.

use std::fmt;
use std::io::Write;
use std::str::FromStr;

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSqlOutput, ValueRef};
use rusqlite::{params, Row, ToSql};

use crate::error::{Context as _, Error, Result};
use crate::{validate, Store};

const MAX_FIELD: usize = 2048;
const MAX_TOKEN: usize = 256;

/// Declares a text enum stored by its lowercase name.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($variant:ident = $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($variant,)*
        }

        impl $name {
            /// Name as stored and exported.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = Error;

            fn from_str(s: &str) -> Result<Self> {
                match s {
                    $($text => Ok($name::$variant),)*
                    _ => Err(Error::invalid($what, format!("unknown value {s:?}"))),
                }
            }
        }

        impl ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }

        impl FromSql for $name {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                value
                    .as_str()?
                    .parse()
                    .map_err(|e| FromSqlError::Other(Box::new(e)))
            }
        }
    };
}

text_enum!(
    /// Which side of the gateway a call came from and went to.
    Direction, "direction" {
        Inbound = "inbound",
        Outbound = "outbound",
        Internal = "internal",
    }
);

text_enum!(
    /// How a call ended.
    Disposition, "disposition" {
        Answered = "answered",
        Busy = "busy",
        NoAnswer = "no-answer",
        Failed = "failed",
        Cancelled = "cancelled",
    }
);

/// RTP counters of one leg, as seen by the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MediaStats {
    /// Received from that party.
    pub rx_packets: u64,
    /// Sent to that party.
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// Packets from that party that never arrived.
    pub lost_packets: u64,
    /// Interarrival jitter of what was received, milliseconds.
    pub jitter_ms: f64,
}

/// One call.
#[derive(Debug, Clone, PartialEq)]
pub struct Cdr {
    /// Row id; ignored by [`Store::insert_cdr`].
    pub id: i64,
    pub call_id: String,
    /// Unix seconds of the initial INVITE.
    pub started_at: i64,
    /// Set exactly when `disposition` is [`Disposition::Answered`].
    pub answered_at: Option<i64>,
    pub ended_at: i64,
    /// Calling party as signalled (number or URI).
    pub caller: String,
    /// Called party as dialled.
    pub callee: String,
    /// Local account that placed the call, if any.
    pub caller_user: Option<String>,
    /// Local account that was called, if any.
    pub callee_user: Option<String>,
    pub direction: Direction,
    pub disposition: Disposition,
    /// Billable seconds, from answer to end.
    pub duration_secs: u32,
    /// Trunk name for calls that used one, as it was named at the time.
    pub trunk: Option<String>,
    pub caller_media: Option<MediaStats>,
    pub callee_media: Option<MediaStats>,
}

impl Cdr {
    fn validate(&self) -> Result<()> {
        validate::required("call_id", &self.call_id, MAX_TOKEN)?;
        // Caller and callee come from the network and are kept as they
        // came, so only their size is bounded.
        for (field, value) in [("caller", &self.caller), ("callee", &self.callee)] {
            if value.len() > MAX_FIELD {
                return Err(Error::invalid(
                    field,
                    format!("longer than {MAX_FIELD} bytes"),
                ));
            }
        }
        for (field, value) in [
            ("caller_user", &self.caller_user),
            ("callee_user", &self.callee_user),
        ] {
            if let Some(name) = value {
                validate::username(name).map_err(|e| match e {
                    Error::Invalid { reason, .. } => Error::invalid(field, reason),
                    other => other,
                })?;
            }
        }
        if let Some(trunk) = &self.trunk {
            validate::required("trunk", trunk, MAX_TOKEN)?;
        }
        if self.ended_at < self.started_at {
            return Err(Error::invalid("ended_at", "before started_at"));
        }
        match (self.disposition, self.answered_at) {
            (Disposition::Answered, None) => {
                return Err(Error::invalid("answered_at", "required for answered calls"))
            }
            (Disposition::Answered, Some(at)) if at < self.started_at || at > self.ended_at => {
                return Err(Error::invalid(
                    "answered_at",
                    "must lie between started_at and ended_at",
                ))
            }
            (Disposition::Answered, Some(_)) => {}
            (other, Some(_)) => {
                return Err(Error::invalid(
                    "answered_at",
                    format!("must be empty for {other} calls"),
                ))
            }
            (_, None) if self.duration_secs != 0 => {
                return Err(Error::invalid(
                    "duration_secs",
                    "must be 0 for unanswered calls",
                ))
            }
            (_, None) => {}
        }
        for (field, media) in [
            ("caller_media", &self.caller_media),
            ("callee_media", &self.callee_media),
        ] {
            if let Some(m) = media {
                if !m.jitter_ms.is_finite() || m.jitter_ms < 0.0 {
                    return Err(Error::invalid(
                        field,
                        format!("jitter_ms must be finite and >= 0, got {}", m.jitter_ms),
                    ));
                }
                if [
                    m.rx_packets,
                    m.tx_packets,
                    m.rx_bytes,
                    m.tx_bytes,
                    m.lost_packets,
                ]
                .iter()
                .any(|&n| i64::try_from(n).is_err())
                {
                    return Err(Error::invalid(field, "counter above i64::MAX"));
                }
            }
        }
        Ok(())
    }
}

/// Which CDRs [`Store::list_cdrs`], [`Store::count_cdrs`] and
/// [`Store::export_cdrs_csv`] cover. The default covers all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CdrFilter {
    /// Calls started at or after this unix time.
    pub since: Option<i64>,
    /// Calls started before this unix time.
    pub until: Option<i64>,
    pub direction: Option<Direction>,
    /// Calls this account placed or received.
    pub user: Option<String>,
}

const WHERE: &str = "(?1 IS NULL OR started_at >= ?1) AND (?2 IS NULL OR started_at < ?2) \
                     AND (?3 IS NULL OR direction = ?3) \
                     AND (?4 IS NULL OR caller_user = ?4 OR callee_user = ?4)";

const LEG: [&str; 6] = [
    "rx_packets",
    "tx_packets",
    "rx_bytes",
    "tx_bytes",
    "lost_packets",
    "jitter_ms",
];

/// Column names in row, insert and CSV order.
fn columns() -> Vec<String> {
    let mut cols: Vec<String> = [
        "id",
        "call_id",
        "started_at",
        "answered_at",
        "ended_at",
        "caller",
        "callee",
        "caller_user",
        "callee_user",
        "direction",
        "disposition",
        "duration_secs",
        "trunk",
    ]
    .map(str::to_owned)
    .into();
    for leg in ["caller", "callee"] {
        cols.extend(LEG.iter().map(|c| format!("{leg}_{c}")));
    }
    cols
}

fn select(tail: &str) -> String {
    format!(
        "SELECT {} FROM cdrs WHERE {WHERE} {tail}",
        columns().join(", ")
    )
}

/// SQLite integers are signed; counters are checked on insert to fit.
fn counter(row: &Row<'_>, idx: usize) -> rusqlite::Result<u64> {
    let n: i64 = row.get(idx)?;
    u64::try_from(n).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(idx, n))
}

fn media(row: &Row<'_>, first: usize) -> rusqlite::Result<Option<MediaStats>> {
    if row.get::<_, Option<i64>>(first)?.is_none() {
        return Ok(None);
    }
    Ok(Some(MediaStats {
        rx_packets: counter(row, first)?,
        tx_packets: counter(row, first + 1)?,
        rx_bytes: counter(row, first + 2)?,
        tx_bytes: counter(row, first + 3)?,
        lost_packets: counter(row, first + 4)?,
        jitter_ms: row.get(first + 5)?,
    }))
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<Cdr> {
    Ok(Cdr {
        id: row.get(0)?,
        call_id: row.get(1)?,
        started_at: row.get(2)?,
        answered_at: row.get(3)?,
        ended_at: row.get(4)?,
        caller: row.get(5)?,
        callee: row.get(6)?,
        caller_user: row.get(7)?,
        callee_user: row.get(8)?,
        direction: row.get(9)?,
        disposition: row.get(10)?,
        duration_secs: row.get(11)?,
        trunk: row.get(12)?,
        caller_media: media(row, 13)?,
        callee_media: media(row, 19)?,
    })
}

fn filter_params(filter: &CdrFilter) -> [&dyn ToSql; 4] {
    [
        &filter.since,
        &filter.until,
        &filter.direction,
        &filter.user,
    ]
}

/// Appends `field` to `line` as one RFC 4180 field: quoted when it holds a
/// comma, quote, CR or LF, with quotes doubled.
fn csv_field(line: &mut String, field: &str) {
    if field.contains([',', '"', '\r', '\n']) {
        line.push('"');
        line.push_str(&field.replace('"', "\"\""));
        line.push('"');
    } else {
        line.push_str(field);
    }
}

fn csv_record(line: &mut String, fields: impl IntoIterator<Item = String>) {
    line.clear();
    for (i, field) in fields.into_iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        csv_field(line, &field);
    }
    line.push_str("\r\n");
}

fn csv_values(cdr: &Cdr) -> Vec<String> {
    fn opt<T: ToString>(v: &Option<T>) -> String {
        v.as_ref().map_or_else(String::new, T::to_string)
    }
    let mut out = vec![
        cdr.id.to_string(),
        cdr.call_id.clone(),
        cdr.started_at.to_string(),
        opt(&cdr.answered_at),
        cdr.ended_at.to_string(),
        cdr.caller.clone(),
        cdr.callee.clone(),
        opt(&cdr.caller_user),
        opt(&cdr.callee_user),
        cdr.direction.to_string(),
        cdr.disposition.to_string(),
        cdr.duration_secs.to_string(),
        opt(&cdr.trunk),
    ];
    for leg in [&cdr.caller_media, &cdr.callee_media] {
        match leg {
            Some(m) => out.extend([
                m.rx_packets.to_string(),
                m.tx_packets.to_string(),
                m.rx_bytes.to_string(),
                m.tx_bytes.to_string(),
                m.lost_packets.to_string(),
                m.jitter_ms.to_string(),
            ]),
            None => out.extend(std::iter::repeat_n(String::new(), LEG.len())),
        }
    }
    out
}

impl Store {
    /// Records a finished call and returns its row id. `cdr.id` is ignored.
    pub fn insert_cdr(&self, cdr: &Cdr) -> Result<i64> {
        cdr.validate()?;
        // Fits: validate() refused counters above i64::MAX.
        let counters = |m: &Option<MediaStats>| -> ([Option<i64>; 5], Option<f64>) {
            match m {
                Some(m) => (
                    [
                        m.rx_packets,
                        m.tx_packets,
                        m.rx_bytes,
                        m.tx_bytes,
                        m.lost_packets,
                    ]
                    .map(|n| Some(n as i64)),
                    Some(m.jitter_ms),
                ),
                None => ([None; 5], None),
            }
        };
        let (a, a_jitter) = counters(&cdr.caller_media);
        let (b, b_jitter) = counters(&cdr.callee_media);
        let cols = columns();
        let placeholders: Vec<String> = (1..cols.len()).map(|i| format!("?{i}")).collect();
        self.conn
            .prepare_cached(&format!(
                "INSERT INTO cdrs ({}) VALUES ({})",
                cols[1..].join(", "),
                placeholders.join(", ")
            ))
            .and_then(|mut stmt| {
                stmt.execute(params![
                    cdr.call_id,
                    cdr.started_at,
                    cdr.answered_at,
                    cdr.ended_at,
                    cdr.caller,
                    cdr.callee,
                    cdr.caller_user,
                    cdr.callee_user,
                    cdr.direction,
                    cdr.disposition,
                    cdr.duration_secs,
                    cdr.trunk,
                    a[0],
                    a[1],
                    a[2],
                    a[3],
                    a[4],
                    a_jitter,
                    b[0],
                    b[1],
                    b[2],
                    b[3],
                    b[4],
                    b_jitter,
                ])
            })
            .op("insert CDR")?;
        Ok(self.conn.last_insert_rowid())
    }

    /// CDRs matching `filter`, newest first, one page at a time.
    pub fn list_cdrs(&self, filter: &CdrFilter, offset: u32, limit: u32) -> Result<Vec<Cdr>> {
        let [p1, p2, p3, p4] = filter_params(filter);
        self.conn
            .prepare_cached(&select(
                "ORDER BY started_at DESC, id DESC LIMIT ?5 OFFSET ?6",
            ))
            .and_then(|mut stmt| {
                stmt.query_map(params![p1, p2, p3, p4, limit, offset], from_row)?
                    .collect()
            })
            .op("list CDRs")
    }

    /// Number of CDRs matching `filter`.
    pub fn count_cdrs(&self, filter: &CdrFilter) -> Result<u64> {
        self.conn
            .prepare_cached(&format!("SELECT count(*) FROM cdrs WHERE {WHERE}"))
            .and_then(|mut stmt| stmt.query_row(&filter_params(filter)[..], |r| r.get(0)))
            .map(|n: i64| n as u64)
            .op("count CDRs")
    }

    /// Writes the CDRs matching `filter` to `out` as CSV (RFC 4180: CRLF
    /// line ends, fields quoted when they hold a comma, quote or line
    /// break), oldest first, after a header line of column names. Times are
    /// unix seconds; absent values are empty fields. Returns how many
    /// records were written.
    ///
    /// Rows are streamed, not collected. Values are written as stored:
    /// caller and callee come from the network, so a spreadsheet opening
    /// the file may interpret ones starting with `=` as formulas.
    pub fn export_cdrs_csv(&self, filter: &CdrFilter, out: &mut dyn Write) -> Result<u64> {
        let io = |source| Error::Io {
            op: "export CDRs",
            source,
        };
        let mut line = String::new();
        csv_record(&mut line, columns());
        out.write_all(line.as_bytes()).map_err(io)?;
        let mut stmt = self
            .conn
            .prepare_cached(&select("ORDER BY started_at, id"))
            .op("export CDRs")?;
        let rows = stmt
            .query_map(&filter_params(filter)[..], from_row)
            .op("export CDRs")?;
        let mut written = 0;
        for cdr in rows {
            let cdr = cdr.op("export CDRs")?;
            csv_record(&mut line, csv_values(&cdr));
            out.write_all(line.as_bytes()).map_err(io)?;
            written += 1;
        }
        out.flush().map_err(io)?;
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quoting() {
        let mut line = String::new();
        csv_record(
            &mut line,
            ["plain", "a,b", "say \"hi\"", "two\nlines", "cr\r", ""].map(str::to_owned),
        );
        assert_eq!(
            line,
            "plain,\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\",\"cr\r\",\r\n"
        );
    }

    #[test]
    fn enums_round_trip() {
        for d in [Direction::Inbound, Direction::Outbound, Direction::Internal] {
            assert_eq!(d.as_str().parse::<Direction>().unwrap(), d);
        }
        assert_eq!(
            "no-answer".parse::<Disposition>().unwrap(),
            Disposition::NoAnswer
        );
        let err = "lost".parse::<Disposition>().unwrap_err();
        assert!(err.to_string().contains("disposition"), "{err}");
    }
}
