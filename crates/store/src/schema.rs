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
    // 2: SIP trunks, the DIDs routed over them, call detail records.
    r#"
    CREATE TABLE trunks (
        id          INTEGER PRIMARY KEY,
        name        TEXT NOT NULL UNIQUE,
        host        TEXT NOT NULL,
        port        INTEGER NOT NULL CHECK (port BETWEEN 1 AND 65535),
        transport   TEXT NOT NULL CHECK (transport IN ('udp', 'tcp', 'tls')),
        -- Credentials toward the provider; all NULL for a trunk that
        -- authenticates by source address. reg_enabled says whether to
        -- REGISTER; the credentials also answer challenges to INVITEs.
        reg_enabled INTEGER CHECK (reg_enabled IN (0, 1)),
        reg_username TEXT,
        reg_auth_username TEXT,
        -- In clear: digest toward the provider needs the password, or its
        -- HA1 for a realm that is only known from the provider's challenge.
        reg_password TEXT,
        reg_expiry  INTEGER CHECK (reg_expiry > 0),
        caller_id_policy TEXT NOT NULL CHECK (caller_id_policy IN ('keep', 'fixed', 'user')),
        caller_id_number TEXT,
        from_domain TEXT,
        -- Newline-separated lists; the validated syntaxes exclude newlines.
        inbound_trust TEXT NOT NULL DEFAULT '',
        dial_patterns TEXT NOT NULL DEFAULT '',
        -- One `strip>prepend` rule per line.
        number_rules TEXT NOT NULL DEFAULT '',
        max_calls   INTEGER CHECK (max_calls >= 0),
        enabled     INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL,
        CHECK ((reg_enabled IS NULL) = (reg_username IS NULL)
           AND (reg_enabled IS NULL) = (reg_expiry IS NULL)),
        CHECK (reg_enabled IS NOT NULL
           OR (reg_auth_username IS NULL AND reg_password IS NULL)),
        CHECK ((caller_id_policy = 'fixed') = (caller_id_number IS NOT NULL))
    ) STRICT;

    -- A trunk carrying DIDs cannot be removed (RESTRICT); removing a user
    -- removes the DIDs routed to them (CASCADE).
    CREATE TABLE dids (
        id          INTEGER PRIMARY KEY,
        number      TEXT NOT NULL UNIQUE,
        trunk_id    INTEGER NOT NULL REFERENCES trunks (id) ON DELETE RESTRICT,
        user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        created_at  INTEGER NOT NULL
    ) STRICT;
    -- Foreign key children, so deleting a trunk or user needs no scan.
    CREATE INDEX dids_trunk_id ON dids (trunk_id);
    CREATE INDEX dids_user_id ON dids (user_id);

    -- No foreign keys: records outlive the users and trunks they name.
    -- Media columns are per leg as seen by the gateway (rx = received from
    -- that party), all NULL or all set.
    CREATE TABLE cdrs (
        id          INTEGER PRIMARY KEY,
        call_id     TEXT NOT NULL,
        started_at  INTEGER NOT NULL,
        answered_at INTEGER,
        ended_at    INTEGER NOT NULL,
        caller      TEXT NOT NULL,
        callee      TEXT NOT NULL,
        caller_user TEXT,
        callee_user TEXT,
        direction   TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound', 'internal')),
        disposition TEXT NOT NULL
            CHECK (disposition IN ('answered', 'busy', 'no-answer', 'failed', 'cancelled')),
        duration_secs INTEGER NOT NULL CHECK (duration_secs >= 0),
        trunk       TEXT,
        caller_rx_packets INTEGER,
        caller_tx_packets INTEGER,
        caller_rx_bytes INTEGER,
        caller_tx_bytes INTEGER,
        caller_lost_packets INTEGER,
        caller_jitter_ms REAL,
        callee_rx_packets INTEGER,
        callee_tx_packets INTEGER,
        callee_rx_bytes INTEGER,
        callee_tx_bytes INTEGER,
        callee_lost_packets INTEGER,
        callee_jitter_ms REAL,
        CHECK ((caller_rx_packets IS NULL) + (caller_tx_packets IS NULL)
             + (caller_rx_bytes IS NULL) + (caller_tx_bytes IS NULL)
             + (caller_lost_packets IS NULL) + (caller_jitter_ms IS NULL) IN (0, 6)),
        CHECK ((callee_rx_packets IS NULL) + (callee_tx_packets IS NULL)
             + (callee_rx_bytes IS NULL) + (callee_tx_bytes IS NULL)
             + (callee_lost_packets IS NULL) + (callee_jitter_ms IS NULL) IN (0, 6))
    ) STRICT;
    CREATE INDEX cdrs_started_at ON cdrs (started_at);
    CREATE INDEX cdrs_call_id ON cdrs (call_id);
    CREATE INDEX cdrs_caller_user ON cdrs (caller_user, started_at);
    CREATE INDEX cdrs_callee_user ON cdrs (callee_user, started_at);
    "#,
    // 3: per-user destination scope, the admin audit log.
    r#"
    ALTER TABLE users ADD COLUMN allowed TEXT NOT NULL DEFAULT 'international'
        CHECK (allowed IN ('local', 'national', 'international'));

    -- Changes made through the admin UI: who, from where, what, when.
    CREATE TABLE audit (
        id          INTEGER PRIMARY KEY,
        at          INTEGER NOT NULL,
        actor       TEXT NOT NULL,
        source      TEXT NOT NULL,
        action      TEXT NOT NULL,
        detail      TEXT NOT NULL
    ) STRICT;
    CREATE INDEX audit_at ON audit (at);
    "#,
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
