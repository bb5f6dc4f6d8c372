//! Schema migrations, keyed on `PRAGMA user_version`.

use std::path::Path;

use rusqlite::{Connection, Transaction, TransactionBehavior};

use crate::error::{Error, Result};
use crate::open_err;

/// Migration `i` takes the schema from version `i` to `i + 1`. Shipped
/// entries are never edited: databases in the field already ran them.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: users, registrar bindings, settings.
    r#"
    CREATE TABLE users (
        id          INTEGER PRIMARY KEY,
        username    TEXT NOT NULL UNIQUE,
        extension   TEXT UNIQUE,
        display_name TEXT,
        realm       TEXT NOT NULL,
        ha1_md5     TEXT NOT NULL,
        ha1_sha256  TEXT NOT NULL,
        enabled     INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
        caller_id   TEXT,
        max_calls   INTEGER CHECK (max_calls >= 0),
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL
    ) STRICT;

    CREATE TABLE bindings (
        id          INTEGER PRIMARY KEY,
        aor         TEXT NOT NULL,
        contact     TEXT NOT NULL,
        instance    TEXT,
        reg_id      INTEGER,
        call_id     TEXT NOT NULL,
        cseq        INTEGER NOT NULL,
        q           INTEGER NOT NULL CHECK (q BETWEEN 0 AND 1000),
        expires_at  INTEGER NOT NULL,
        transport   TEXT NOT NULL CHECK (transport IN ('udp', 'tcp', 'tls', 'ws', 'wss')),
        source      TEXT NOT NULL,
        local       TEXT NOT NULL,
        path        TEXT NOT NULL DEFAULT '',
        user_agent  TEXT,
        flow_id     TEXT,
        gruu        TEXT,
        updated_at  INTEGER NOT NULL
    ) STRICT;
    -- The two upsert keys. ifnull() because NULLs never collide in a
    -- UNIQUE index and an instance without reg-id is still one binding.
    CREATE UNIQUE INDEX bindings_instance_key
        ON bindings (aor, instance, ifnull(reg_id, -1)) WHERE instance IS NOT NULL;
    CREATE UNIQUE INDEX bindings_contact_key
        ON bindings (aor, contact) WHERE instance IS NULL;
    CREATE INDEX bindings_aor ON bindings (aor);
    CREATE INDEX bindings_expires_at ON bindings (expires_at);

    CREATE TABLE settings (
        key         TEXT PRIMARY KEY,
        value       TEXT NOT NULL,
        updated_at  INTEGER NOT NULL
    ) STRICT, WITHOUT ROWID;
    "#,
    // Trunks, DIDs (with a foreign key to trunks) and CDRs are appended here
    // as migration 2 and later.
];

/// Schema version this build writes and understands.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

pub(crate) fn user_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
}

/// Brings the schema up to `migrations.len()`, one transaction per step.
pub(crate) fn migrate(conn: &Connection, path: &Path, migrations: &[&str]) -> Result<()> {
    let supported = migrations.len() as i64;
    let too_new = |found| Error::SchemaTooNew {
        path: path.to_owned(),
        found,
        supported,
    };

    // Common case: already current, no write lock needed.
    let found = user_version(conn).map_err(open_err(path, "read schema version"))?;
    if found == supported {
        return Ok(());
    }
    if found > supported {
        return Err(too_new(found));
    }

    loop {
        // IMMEDIATE takes the write lock before reading the version, so a
        // second process opening at the same time waits and then sees the
        // migrated schema instead of running the step twice.
        let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)
            .map_err(open_err(path, "lock for migration"))?;
        let found = user_version(&tx).map_err(open_err(path, "read schema version"))?;
        if found > supported {
            return Err(too_new(found));
        }
        if found < 0 {
            return Err(Error::SchemaUnknown {
                path: path.to_owned(),
                found,
            });
        }
        if found == supported {
            return Ok(());
        }
        let version = found + 1;
        apply(tx, migrations[found as usize], version).map_err(|source| Error::Migration {
            path: path.to_owned(),
            version,
            source,
        })?;
    }
}

/// Dropping `tx` on error rolls the step back, leaving the old version.
fn apply(tx: Transaction<'_>, sql: &str, version: i64) -> rusqlite::Result<()> {
    tx.execute_batch(sql)?;
    tx.pragma_update(None, "user_version", version)?;
    tx.commit()
}
