//! SQLite persistence for callgate.
//!
//! One database file holds what the gateway must keep across restarts. It
//! runs in WAL mode with a busy timeout so the admin CLI can edit it while
//! the server runs; the server notices those edits through
//! [`Store::data_version`].
//!
//! # Schema (version 3)
//!
//! | table      | keys                                                        | holds |
//! |------------|-------------------------------------------------------------|-------|
//! | `users`    | `id`; unique `username`; unique `extension`                 | SIP accounts: HA1 digests (MD5 and SHA-256), never clear passwords; caller ID, call limit, destination scope |
//! | `bindings` | `id`; unique `(aor, instance, reg_id)` if `instance` is set, else unique `(aor, contact)` | registrar location bindings, so a restart loses none |
//! | `settings` | `key`                                                       | text key/value configuration |
//! | `trunks`   | `id`; unique `name`                                         | SIP trunks to providers; the trunk password in clear (see [`Store::trunk_secret`]) |
//! | `dids`     | `id`; unique `number`; `trunk_id` → `trunks` RESTRICT; `user_id` → `users` CASCADE | inbound numbers routed to users |
//! | `cdrs`     | `id`; indexed `started_at`, `call_id`, `caller_user`, `callee_user` | call detail records, no foreign keys so they outlive users and trunks |
//! | `audit`    | `id`; indexed `at`                                          | changes made through the admin UI: who, from where, what, when |
//!
//! Version 1 had the first three tables; version 2 adds trunks, DIDs and
//! CDRs; version 3 the users' `allowed` column and the audit log.
//!
//! All times are unix seconds. The schema version is `PRAGMA user_version`;
//! each migration runs in its own transaction, and a file with a newer
//! version than this build knows is refused rather than guessed at.
//!
//! # Use from async code
//!
//! The API is synchronous. A [`Store`] is `Send` but not `Sync`: keep it on
//! a dedicated thread or behind a mutex used from `spawn_blocking`, never on
//! a media worker, since a write may wait up to [`BUSY_TIMEOUT`] for the CLI.

mod audit;
mod bindings;
mod cdrs;
mod dids;
mod error;
mod schema;
mod settings;
mod trunks;
mod users;
mod validate;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, ErrorCode, Transaction, TransactionBehavior};

pub use audit::AuditEntry;
pub use bindings::{Binding, BindingKey, Transport, UnknownTransport, Upsert};
pub use cdrs::{Cdr, CdrFilter, Direction, Disposition, MediaStats};
pub use dids::Did;
pub use error::{Error, Result};
pub use schema::SCHEMA_VERSION;
pub use trunks::{
    dial_pattern_matches, CallerIdPolicy, NumberRule, Registration, RegistrationConfig, Trunk,
    TrunkConfig, MAX_TRUNK_NAME,
};
pub use users::{DestinationScope, NewUser, User, UserUpdate};
pub use validate::{MAX_EXTENSION, MAX_NUMBER, MAX_USERNAME};

use error::Context as _;

/// How long a statement waits for another connection's write lock.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection to the callgate database.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the database at `path` and its parent
    /// directory, switches it to WAL and migrates the schema.
    pub fn open(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| Error::Create {
                path: dir.to_owned(),
                source,
            })?;
        }
        create_private(path)?;
        let conn = Connection::open(path).map_err(open_err(path, "open"))?;
        Store::init(conn, path.to_owned(), true)
    }

    /// A private in-memory database, for tests.
    pub fn open_in_memory() -> Result<Store> {
        let path = PathBuf::from(":memory:");
        let conn = Connection::open_in_memory().map_err(open_err(&path, "open"))?;
        Store::init(conn, path, false)
    }

    fn init(conn: Connection, path: PathBuf, wal: bool) -> Result<Store> {
        // First, so the steps below already wait for a concurrent opener
        // instead of failing with SQLITE_BUSY.
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(open_err(&path, "set busy timeout"))?;
        if wal {
            let mode = enable_wal(&conn).map_err(open_err(&path, "enable WAL"))?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(Error::NotWal { path, mode });
            }
        }
        // In WAL mode NORMAL survives process crashes; a power loss can drop
        // the latest commits but never corrupts the file. FULL would fsync
        // on every binding refresh.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(open_err(&path, "set synchronous"))?;
        conn.pragma_update(None, "foreign_keys", true)
            .map_err(open_err(&path, "enable foreign keys"))?;
        schema::migrate(&conn, &path, schema::MIGRATIONS)?;
        Ok(Store { conn, path })
    }

    /// The file this store was opened on (`:memory:` for in-memory ones).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version recorded in the file.
    pub fn schema_version(&self) -> Result<i64> {
        schema::user_version(&self.conn).op("read schema version")
    }

    /// A counter that changes whenever another connection (such as the CLI)
    /// commits to the file. Writes through this handle do not move it. Poll
    /// it and reload cached users when it differs from the last value seen.
    pub fn data_version(&self) -> Result<i64> {
        self.conn
            .pragma_query_value(None, "data_version", |row| row.get(0))
            .op("read data_version")
    }

    /// Starts a write transaction. IMMEDIATE takes the write lock up front:
    /// a deferred one that reads first and then writes can fail with
    /// SQLITE_BUSY at once, without waiting, when another process wrote in
    /// between.
    fn write_tx(&self, op: &'static str) -> Result<Transaction<'_>> {
        // Unchecked only skips the `&mut` nesting guard; nesting cannot
        // happen since no transaction outlives the method that opened it.
        Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate).op(op)
    }
}

pub(crate) fn open_err<'a>(
    path: &'a Path,
    step: &'static str,
) -> impl Fn(rusqlite::Error) -> Error + 'a {
    move |source| Error::Open {
        path: path.to_owned(),
        step,
        source,
    }
}

/// Switches to WAL and returns the resulting journal mode. Leaving rollback
/// mode needs an exclusive lock and SQLite returns SQLITE_BUSY at once,
/// without the busy handler, while another connection reads; that happens
/// when server and CLI start on a fresh file together, so retry here.
fn enable_wal(conn: &Connection) -> rusqlite::Result<String> {
    let deadline = Instant::now() + BUSY_TIMEOUT;
    loop {
        match conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0)) {
            Err(e)
                if e.sqlite_error_code() == Some(ErrorCode::DatabaseBusy)
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            result => return result,
        }
    }
}

/// Creates the file owner-only before SQLite does, since HA1 digests are
/// password-equivalent and trunk passwords are stored in clear; SQLite
/// gives its -wal and -shm files the same mode.
fn create_private(path: &Path) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(Error::Create {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Current unix time in seconds.
fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_can_move_to_a_blocking_thread() {
        fn assert_send<T: Send>() {}
        assert_send::<Store>();
    }

    #[test]
    fn connection_pragmas() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("a/b/callgate.db")).unwrap();
        let get = |name: &str| -> i64 {
            store
                .conn
                .pragma_query_value(None, name, |r| r.get(0))
                .unwrap()
        };
        assert_eq!(get("synchronous"), 1, "NORMAL");
        assert_eq!(get("foreign_keys"), 1);
        assert_eq!(get("busy_timeout"), BUSY_TIMEOUT.as_millis() as i64);
        let mode: String = store
            .conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[cfg(unix)]
    #[test]
    fn file_is_owner_only() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("callgate.db");
        let store = Store::open(&path).unwrap();
        store.set_setting("k", "v").unwrap();
        for file in ["callgate.db", "callgate.db-wal", "callgate.db-shm"] {
            let meta = std::fs::metadata(dir.path().join(file)).unwrap();
            assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{file}");
        }
    }

    #[test]
    fn failed_migration_rolls_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        let conn = Connection::open(&path).unwrap();
        let good = "CREATE TABLE one (x INTEGER);";
        // The second step creates a table and then fails.
        let bad = "CREATE TABLE two (x INTEGER); INSERT INTO missing VALUES (1);";
        schema::migrate(&conn, &path, &[good]).unwrap();
        let err = schema::migrate(&conn, &path, &[good, bad]).unwrap_err();
        assert!(matches!(err, Error::Migration { version: 2, .. }), "{err}");
        assert_eq!(schema::user_version(&conn).unwrap(), 1);
        let two: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE name = 'two'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(two, 0, "partial migration must not persist");
        assert!(conn.is_autocommit());
    }

    fn schema_sql(conn: &Connection) -> Vec<(String, String)> {
        conn.prepare(
            "SELECT name, sql FROM sqlite_schema WHERE sql IS NOT NULL \
             AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
    }

    #[test]
    fn version_1_file_migrates_to_current_keeping_data() {
        assert_eq!(SCHEMA_VERSION, 3);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.db");
        {
            // A file as the version-1 build left it.
            let conn = Connection::open(&path).unwrap();
            schema::migrate(&conn, &path, &schema::MIGRATIONS[..1]).unwrap();
            assert_eq!(schema::user_version(&conn).unwrap(), 1);
            conn.execute_batch(
                "INSERT INTO users (username, extension, realm, ha1_md5, ha1_sha256, \
                 created_at, updated_at) VALUES ('alice', '1001', 'r', 'm', 's', 1, 1);
                 INSERT INTO bindings (aor, contact, call_id, cseq, q, expires_at, transport, \
                 source, local, updated_at) VALUES ('sip:alice@r', 'sip:alice@10.0.0.1', \
                 'c', 1, 1000, 4000000000, 'wss', '10.0.0.1:5000', '10.0.0.2:443', 1);
                 INSERT INTO settings VALUES ('sip.realm', 'r', 1);",
            )
            .unwrap();
        }

        let store = Store::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), 3);
        let alice = store.get_user_by_name("alice").unwrap().unwrap();
        assert_eq!(alice.extension.as_deref(), Some("1001"));
        assert_eq!(alice.allowed, DestinationScope::International);
        let bindings = store.list_bindings("sip:alice@r").unwrap();
        assert_eq!(bindings.len(), 1);
        assert_eq!(bindings[0].contact, "sip:alice@10.0.0.1");
        assert_eq!(
            store.get_setting("sip.realm").unwrap().as_deref(),
            Some("r")
        );

        // The new tables work against the old rows.
        store
            .add_trunk(&TrunkConfig::new("carrier", "sip.example.com"))
            .unwrap();
        store.add_did("+4930100", "carrier", "alice").unwrap();
        assert_eq!(
            store.did_lookup("+4930100").unwrap(),
            Some(("carrier".into(), "alice".into()))
        );

        // Migrated and fresh files end up with the same schema.
        let fresh = Store::open_in_memory().unwrap();
        assert_eq!(schema_sql(&store.conn), schema_sql(&fresh.conn));
        drop(store);
        assert_eq!(Store::open(&path).unwrap().schema_version().unwrap(), 3);
    }

    #[test]
    fn fresh_file_goes_straight_to_current() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("new.db")).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
        let names: Vec<String> = schema_sql(&store.conn)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        for table in [
            "trunks", "dids", "cdrs", "users", "bindings", "settings", "audit",
        ] {
            assert!(names.iter().any(|n| n == table), "{table} in {names:?}");
        }
    }
}
