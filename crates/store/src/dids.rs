//! DIDs: provider numbers routed to a user over a trunk.
//!
//! A DID references its trunk and its user by row id. Removing a trunk that
//! still carries DIDs is refused ([`Error::TrunkInUse`], `ON DELETE
//! RESTRICT` underneath): the trunk is what the numbers arrive on, so they
//! must be moved or removed deliberately. Removing a user removes the DIDs
//! routed to them (`ON DELETE CASCADE`): a DID is routing for that user, not
//! inventory of its own, the number stays with the provider and can be
//! routed again, and user removal keeps the contract it had before DIDs
//! existed.

use rusqlite::{params, OptionalExtension as _, Row};

use crate::error::{Context as _, Error, Result};
use crate::{now, validate, Store};

/// A DID as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Did {
    /// Digits with an optional leading `+`, exactly as the provider sends
    /// it in the request URI.
    pub number: String,
    /// Name of the trunk the number arrives on.
    pub trunk: String,
    /// Username of the account calls to the number ring.
    pub username: String,
    pub created_at: i64,
}

const SELECT: &str = "SELECT d.number, t.name, u.username, d.created_at FROM dids d \
                      JOIN trunks t ON t.id = d.trunk_id JOIN users u ON u.id = d.user_id";

fn from_row(row: &Row<'_>) -> rusqlite::Result<Did> {
    Ok(Did {
        number: row.get(0)?,
        trunk: row.get(1)?,
        username: row.get(2)?,
        created_at: row.get(3)?,
    })
}

impl Store {
    /// Routes `number` arriving over `trunk` to user `username`. Fails with
    /// [`Error::DidExists`], [`Error::TrunkNotFound`] or
    /// [`Error::UserNotFound`].
    pub fn add_did(&self, number: &str, trunk: &str, username: &str) -> Result<Did> {
        validate::number("number", number)?;
        let tx = self.write_tx("add DID")?;
        let exists = tx
            .query_row("SELECT 1 FROM dids WHERE number = ?1", [number], |_| Ok(()))
            .optional()
            .op("add DID")?;
        if exists.is_some() {
            return Err(Error::DidExists(number.to_owned()));
        }
        let id_of = |sql: &str, key: &str| -> Result<Option<i64>> {
            tx.query_row(sql, [key], |r| r.get(0))
                .optional()
                .op("add DID")
        };
        let trunk_id = id_of("SELECT id FROM trunks WHERE name = ?1", trunk)?
            .ok_or_else(|| Error::TrunkNotFound(trunk.to_owned()))?;
        let user_id = id_of("SELECT id FROM users WHERE username = ?1", username)?
            .ok_or_else(|| Error::UserNotFound(username.to_owned()))?;
        let created_at = now();
        tx.execute(
            "INSERT INTO dids (number, trunk_id, user_id, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![number, trunk_id, user_id, created_at],
        )
        .op("add DID")?;
        tx.commit().op("add DID")?;
        Ok(Did {
            number: number.to_owned(),
            trunk: trunk.to_owned(),
            username: username.to_owned(),
            created_at,
        })
    }

    /// DIDs ordered by number; only those of `trunk` if given.
    pub fn list_dids(&self, trunk: Option<&str>) -> Result<Vec<Did>> {
        self.conn
            .prepare_cached(&format!(
                "{SELECT} WHERE ?1 IS NULL OR t.name = ?1 ORDER BY d.number"
            ))
            .and_then(|mut stmt| stmt.query_map([trunk], from_row)?.collect())
            .op("list DIDs")
    }

    /// Stops routing `number`.
    pub fn remove_did(&self, number: &str) -> Result<()> {
        let removed = self
            .conn
            .execute("DELETE FROM dids WHERE number = ?1", [number])
            .op("remove DID")?;
        if removed == 0 {
            return Err(Error::DidNotFound(number.to_owned()));
        }
        Ok(())
    }

    /// `(trunk, username)` for an inbound call to `number`. The match is
    /// exact: normalize the request URI's user part to the stored form
    /// first. Disabled trunks and users are still returned; refusing them
    /// is the caller's decision.
    pub fn did_lookup(&self, number: &str) -> Result<Option<(String, String)>> {
        self.conn
            .prepare_cached(&format!("{SELECT} WHERE d.number = ?1"))
            .and_then(|mut stmt| stmt.query_row([number], from_row).optional())
            .map(|did| did.map(|d| (d.trunk, d.username)))
            .op("look up DID")
    }
}
