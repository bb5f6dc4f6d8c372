//! The admin audit log: one row per change made through the admin UI.

use rusqlite::params;

use crate::error::{Context as _, Result};
use crate::{now, validate, Store};

const MAX_ACTOR: usize = 64;
const MAX_SOURCE: usize = 64;
const MAX_ACTION: usize = 64;
const MAX_DETAIL: usize = 1024;

/// One recorded change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub id: i64,
    /// Unix seconds.
    pub at: i64,
    /// Who made the change, e.g. `admin`.
    pub actor: String,
    /// Where from: the client's IP address.
    pub source: String,
    /// What kind of change, e.g. `user.create`.
    pub action: String,
    /// What changed, in words; never a secret.
    pub detail: String,
}

/// Cuts `s` to at most `max` bytes on a character boundary, and replaces
/// control characters, so a record is never refused for its detail.
fn clip(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max));
    for c in s.chars() {
        let c = if c.is_control() { ' ' } else { c };
        if out.len() + c.len_utf8() > max {
            break;
        }
        out.push(c);
    }
    out
}

impl Store {
    /// Records a change. `actor` and `action` are identifiers chosen by the
    /// caller and must be non-empty; `source` and `detail` are cut to fit.
    pub fn audit(&self, actor: &str, source: &str, action: &str, detail: &str) -> Result<i64> {
        validate::required("actor", actor, MAX_ACTOR)?;
        validate::required("action", action, MAX_ACTION)?;
        self.conn
            .execute(
                "INSERT INTO audit (at, actor, source, action, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    now(),
                    actor,
                    clip(source, MAX_SOURCE),
                    action,
                    clip(detail, MAX_DETAIL)
                ],
            )
            .op("write audit record")?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Audit records, newest first, one page at a time.
    pub fn list_audit(&self, offset: u32, limit: u32) -> Result<Vec<AuditEntry>> {
        self.conn
            .prepare_cached(
                "SELECT id, at, actor, source, action, detail FROM audit \
                 ORDER BY id DESC LIMIT ?1 OFFSET ?2",
            )
            .and_then(|mut stmt| {
                stmt.query_map(params![limit, offset], |r| {
                    Ok(AuditEntry {
                        id: r.get(0)?,
                        at: r.get(1)?,
                        actor: r.get(2)?,
                        source: r.get(3)?,
                        action: r.get(4)?,
                        detail: r.get(5)?,
                    })
                })?
                .collect()
            })
            .op("list audit records")
    }

    /// Number of audit records.
    pub fn count_audit(&self) -> Result<u64> {
        self.conn
            .query_row("SELECT count(*) FROM audit", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .op("count audit records")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_newest_first_and_clips() {
        let store = Store::open_in_memory().unwrap();
        store
            .audit("admin", "192.0.2.1", "user.create", "alice")
            .unwrap();
        store
            .audit("admin", "192.0.2.1", "user.delete", &"x\ny".repeat(1000))
            .unwrap();
        assert_eq!(store.count_audit().unwrap(), 2);
        let all = store.list_audit(0, 10).unwrap();
        assert_eq!(all[0].action, "user.delete");
        assert!(all[0].detail.len() <= MAX_DETAIL);
        assert!(!all[0].detail.contains('\n'));
        assert_eq!(all[1].detail, "alice");
        assert_eq!(all[1].source, "192.0.2.1");
        assert_eq!(store.list_audit(1, 10).unwrap().len(), 1);
        assert!(store.audit("", "x", "a", "d").is_err());
        assert!(store.audit("admin", "x", "", "d").is_err());
    }

    #[test]
    fn clip_keeps_characters_whole() {
        assert_eq!(clip("aé", 2), "a");
        assert_eq!(clip("a\tb", 10), "a b");
    }
}
