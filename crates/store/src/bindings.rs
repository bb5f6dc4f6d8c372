//! Registrar location bindings, persisted so a restart loses none.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSqlOutput, Type, ValueRef};
use rusqlite::{params, Row, ToSql};

use crate::error::{Context as _, Error, Result};
use crate::{now, validate, Store};

const MAX_URI: usize = 2048;
const MAX_TOKEN: usize = 256;

/// Transport a REGISTER arrived over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
    Ws,
    Wss,
}

impl Transport {
    /// Lowercase name, as stored and as in a URI `transport=` parameter.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
            Transport::Ws => "ws",
            Transport::Wss => "wss",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A transport name other than udp, tcp, tls, ws or wss.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown transport {0:?}")]
pub struct UnknownTransport(pub String);

impl FromStr for Transport {
    type Err = UnknownTransport;

    /// Case-insensitive, so Via tokens (`WSS`) parse too.
    fn from_str(s: &str) -> Result<Transport, UnknownTransport> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "udp" => Transport::Udp,
            "tcp" => Transport::Tcp,
            "tls" => Transport::Tls,
            "ws" => Transport::Ws,
            "wss" => Transport::Wss,
            _ => return Err(UnknownTransport(s.to_owned())),
        })
    }
}

impl ToSql for Transport {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for Transport {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        value
            .as_str()?
            .parse()
            .map_err(|e| FromSqlError::Other(Box::new(e)))
    }
}

/// One registered contact of an address-of-record.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    /// Address-of-record, e.g. `sip:alice@example.com`.
    pub aor: String,
    /// Contact URI as registered.
    pub contact: String,
    /// `+sip.instance` (RFC 5626), e.g. `<urn:uuid:...>`.
    pub instance: Option<String>,
    /// `reg-id` (RFC 5626).
    pub reg_id: Option<u32>,
    pub call_id: String,
    pub cseq: u32,
    /// Contact `q` in thousandths (`q=0.5` is 500), 0..=1000.
    pub q: u16,
    /// Unix seconds at which the binding lapses.
    pub expires_at: i64,
    pub transport: Transport,
    /// Address the REGISTER came from.
    pub source: SocketAddr,
    /// Listener address it arrived on.
    pub local: SocketAddr,
    /// Path header URIs (RFC 3327), in order.
    pub path: Vec<String>,
    pub user_agent: Option<String>,
    /// Runtime identity of the connection the binding is tied to. It does
    /// not survive a restart; kept so a reloaded binding can be matched.
    pub flow_id: Option<String>,
    /// Public GRUU assigned to the binding (RFC 5627).
    pub gruu: Option<String>,
    /// Set by [`Store::upsert_binding`]; ignored on input.
    pub updated_at: i64,
}

/// What identifies a binding within its AOR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindingKey<'a> {
    /// RFC 5626 outbound: one binding per instance and reg-id.
    Instance {
        instance: &'a str,
        reg_id: Option<u32>,
    },
    /// RFC 3261: one binding per contact URI.
    Contact(&'a str),
}

impl Binding {
    /// `(instance, reg_id)` when an instance is present, else the contact.
    pub fn key(&self) -> BindingKey<'_> {
        match &self.instance {
            Some(instance) => BindingKey::Instance {
                instance,
                reg_id: self.reg_id,
            },
            None => BindingKey::Contact(&self.contact),
        }
    }

    fn validate(&self) -> Result<()> {
        validate::required("aor", &self.aor, MAX_URI)?;
        validate::required("contact", &self.contact, MAX_URI)?;
        if let Some(instance) = &self.instance {
            validate::required("instance", instance, MAX_TOKEN)?;
        }
        validate::required("call_id", &self.call_id, MAX_TOKEN)?;
        if self.q > 1000 {
            return Err(Error::invalid(
                "q",
                format!("must be 0..=1000 thousandths, got {}", self.q),
            ));
        }
        // Entries are stored newline-joined; control characters are
        // refused, so a newline can never be part of one.
        for uri in &self.path {
            validate::required("path", uri, MAX_URI)?;
        }
        if let Some(ua) = &self.user_agent {
            validate::text("user_agent", ua, MAX_TOKEN)?;
        }
        if let Some(flow) = &self.flow_id {
            validate::required("flow_id", flow, MAX_TOKEN)?;
        }
        if let Some(gruu) = &self.gruu {
            validate::required("gruu", gruu, MAX_URI)?;
        }
        Ok(())
    }
}

/// Whether [`Store::upsert_binding`] added a binding or replaced one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upsert {
    Inserted,
    Updated,
}

const COLUMNS: &str = "aor, contact, instance, reg_id, call_id, cseq, q, expires_at, transport, \
                       source, local, path, user_agent, flow_id, gruu, updated_at";

/// Highest q first; among equals the most recently refreshed.
const ORDER: &str = "q DESC, updated_at DESC, id DESC";

fn parse_col<T>(row: &Row<'_>, idx: usize) -> rusqlite::Result<T>
where
    T: FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    let text: String = row.get(idx)?;
    text.parse()
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, Box::new(e)))
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<Binding> {
    let path: String = row.get(11)?;
    Ok(Binding {
        aor: row.get(0)?,
        contact: row.get(1)?,
        instance: row.get(2)?,
        reg_id: row.get(3)?,
        call_id: row.get(4)?,
        cseq: row.get(5)?,
        q: row.get(6)?,
        expires_at: row.get(7)?,
        transport: row.get(8)?,
        source: parse_col(row, 9)?,
        local: parse_col(row, 10)?,
        path: if path.is_empty() {
            Vec::new()
        } else {
            path.split('\n').map(str::to_owned).collect()
        },
        user_agent: row.get(12)?,
        flow_id: row.get(13)?,
        gruu: row.get(14)?,
        updated_at: row.get(15)?,
    })
}

impl Store {
    /// Inserts or refreshes a binding. It replaces the binding with the same
    /// [`BindingKey`] in the same AOR: `(instance, reg_id)` when the binding
    /// has an instance, otherwise the contact URI.
    pub fn upsert_binding(&self, binding: &Binding) -> Result<Upsert> {
        binding.validate()?;
        let b = binding;
        let source = b.source.to_string();
        let local = b.local.to_string();
        let path = b.path.join("\n");
        let now = now();
        let values = params![
            b.aor,
            b.contact,
            b.instance,
            b.reg_id,
            b.call_id,
            b.cseq,
            b.q,
            b.expires_at,
            b.transport,
            source,
            local,
            path,
            b.user_agent,
            b.flow_id,
            b.gruu,
            now,
        ];
        let key = match b.key() {
            BindingKey::Instance { .. } => "instance = ?3 AND reg_id IS ?4",
            BindingKey::Contact(_) => "instance IS NULL AND contact = ?2",
        };

        let tx = self.write_tx("upsert binding")?;
        let updated = tx
            .prepare_cached(&format!(
                "UPDATE bindings SET contact = ?2, instance = ?3, reg_id = ?4, call_id = ?5, \
                 cseq = ?6, q = ?7, expires_at = ?8, transport = ?9, source = ?10, local = ?11, \
                 path = ?12, user_agent = ?13, flow_id = ?14, gruu = ?15, updated_at = ?16 \
                 WHERE aor = ?1 AND {key}"
            ))
            .and_then(|mut stmt| stmt.execute(values))
            .op("upsert binding")?;
        let outcome = if updated > 0 {
            Upsert::Updated
        } else {
            tx.prepare_cached(&format!(
                "INSERT INTO bindings ({COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"
            ))
            .and_then(|mut stmt| stmt.execute(values))
            .op("upsert binding")?;
            Upsert::Inserted
        };
        tx.commit().op("upsert binding")?;
        Ok(outcome)
    }

    /// Removes one binding; false if there was none.
    pub fn remove_binding(&self, aor: &str, key: BindingKey<'_>) -> Result<bool> {
        let removed = match key {
            BindingKey::Instance { instance, reg_id } => self.conn.execute(
                "DELETE FROM bindings WHERE aor = ?1 AND instance = ?2 AND reg_id IS ?3",
                params![aor, instance, reg_id],
            ),
            BindingKey::Contact(contact) => self.conn.execute(
                "DELETE FROM bindings WHERE aor = ?1 AND instance IS NULL AND contact = ?2",
                params![aor, contact],
            ),
        }
        .op("remove binding")?;
        Ok(removed > 0)
    }

    /// Removes every binding of `aor` (`Contact: *`); returns how many.
    pub fn remove_all_bindings(&self, aor: &str) -> Result<usize> {
        self.conn
            .execute("DELETE FROM bindings WHERE aor = ?1", [aor])
            .op("remove bindings")
    }

    /// Bindings of `aor`, highest q first. Expired ones stay until
    /// [`Store::purge_expired`] runs, so callers compare `expires_at`.
    pub fn list_bindings(&self, aor: &str) -> Result<Vec<Binding>> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM bindings WHERE aor = ?1 ORDER BY {ORDER}"
            ))
            .and_then(|mut stmt| stmt.query_map([aor], from_row)?.collect())
            .op("list bindings")
    }

    /// Every binding, grouped by AOR, each group highest q first.
    pub fn list_all_bindings(&self) -> Result<Vec<Binding>> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM bindings ORDER BY aor, {ORDER}"
            ))
            .and_then(|mut stmt| stmt.query_map([], from_row)?.collect())
            .op("list all bindings")
    }

    /// Deletes bindings with `expires_at <= now`; returns how many.
    pub fn purge_expired(&self, now: i64) -> Result<usize> {
        self.conn
            .execute("DELETE FROM bindings WHERE expires_at <= ?1", [now])
            .op("purge expired bindings")
    }
}
