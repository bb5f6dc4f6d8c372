//! Text key/value settings.

use rusqlite::{params, OptionalExtension as _};

use crate::error::{Context as _, Error, Result};
use crate::{now, Store};

const MAX_KEY: usize = 128;

/// Keys are identifiers such as `sip.realm`: no whitespace or control
/// characters, so they print and parse unambiguously in the CLI.
fn check_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > MAX_KEY {
        return Err(Error::invalid(
            "setting key",
            format!("must be 1 to {MAX_KEY} bytes, got {}", key.len()),
        ));
    }
    if key.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::invalid(
            "setting key",
            format!("{key:?} contains whitespace or control characters"),
        ));
    }
    Ok(())
}

const UPSERT: &str = "INSERT INTO settings (key, value, updated_at) VALUES (?1, ?2, ?3) \
                      ON CONFLICT (key) DO UPDATE SET value = excluded.value, \
                      updated_at = excluded.updated_at";

impl Store {
    /// The value of a setting, if set.
    pub fn get_setting(&self, key: &str) -> Result<Option<String>> {
        self.conn
            .prepare_cached("SELECT value FROM settings WHERE key = ?1")
            .and_then(|mut stmt| stmt.query_row([key], |r| r.get(0)).optional())
            .op("get setting")
    }

    /// Sets one setting, replacing any previous value.
    pub fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        check_key(key)?;
        self.conn
            .execute(UPSERT, params![key, value, now()])
            .op("set setting")?;
        Ok(())
    }

    /// Removes a setting; false if it was not set.
    pub fn delete_setting(&self, key: &str) -> Result<bool> {
        let removed = self
            .conn
            .execute("DELETE FROM settings WHERE key = ?1", [key])
            .op("delete setting")?;
        Ok(removed > 0)
    }

    /// All settings, ordered by key.
    pub fn list_settings(&self) -> Result<Vec<(String, String)>> {
        self.conn
            .prepare_cached("SELECT key, value FROM settings ORDER BY key")
            .and_then(|mut stmt| {
                stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect()
            })
            .op("list settings")
    }

    /// Sets many settings in one transaction: if any entry is rejected,
    /// none is applied and readers never see a half-applied change.
    pub fn set_settings<I, K, V>(&self, entries: I) -> Result<()>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let tx = self.write_tx("set settings")?;
        let now = now();
        {
            let mut stmt = tx.prepare_cached(UPSERT).op("set settings")?;
            for (key, value) in entries {
                // Checked as we go; returning drops `tx`, rolling back
                // whatever this batch already wrote.
                check_key(key.as_ref())?;
                stmt.execute(params![key.as_ref(), value.as_ref(), now])
                    .op("set settings")?;
            }
        }
        tx.commit().op("set settings")
    }
}
