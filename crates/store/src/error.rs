use std::path::PathBuf;

/// Result of a store operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a store operation can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database file or its directory could not be created.
    #[error("cannot create {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    /// SQLite could not open or configure the database.
    #[error("cannot open database {path}: {step}: {source}")]
    Open {
        path: PathBuf,
        /// What was being done, e.g. `enable WAL`.
        step: &'static str,
        source: rusqlite::Error,
    },
    /// The file refused WAL mode (e.g. a read-only or network filesystem).
    #[error("database {path} is in journal mode {mode:?}, WAL is required")]
    NotWal { path: PathBuf, mode: String },
    /// The file was written by a newer build; touching it could corrupt it.
    #[error(
        "database {path} has schema version {found}, this build supports up to {supported}; \
         upgrade callgate or restore an older backup"
    )]
    SchemaTooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    /// `user_version` is negative: not a file any callgate build wrote.
    #[error("database {path} has schema version {found}, which callgate never writes")]
    SchemaUnknown { path: PathBuf, found: i64 },
    /// A schema migration failed and was rolled back.
    #[error("database {path}: migration to schema version {version} failed: {source}")]
    Migration {
        path: PathBuf,
        version: i64,
        source: rusqlite::Error,
    },
    /// An input value was rejected before reaching the database.
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    /// `add_user` with a username that is already taken.
    #[error("user {0:?} already exists")]
    UserExists(String),
    /// The extension (or username-as-number) is already used by another user.
    #[error("extension {extension:?} is already used by user {owner:?}")]
    ExtensionInUse { extension: String, owner: String },
    /// No user with that username.
    #[error("user {0:?} not found")]
    UserNotFound(String),
    /// `add_trunk` or a rename with a name that is already taken.
    #[error("trunk {0:?} already exists")]
    TrunkExists(String),
    /// No trunk with that name.
    #[error("trunk {0:?} not found")]
    TrunkNotFound(String),
    /// `remove_trunk` on a trunk that DIDs still route over.
    #[error("trunk {trunk:?} still carries {dids} DID(s); remove or move them first")]
    TrunkInUse { trunk: String, dids: u64 },
    /// `add_did` with a number that is already routed.
    #[error("DID {0:?} already exists")]
    DidExists(String),
    /// No DID with that number.
    #[error("DID {0:?} not found")]
    DidNotFound(String),
    /// Writing an export failed; the output is incomplete.
    #[error("{op}: {source}")]
    Io {
        op: &'static str,
        source: std::io::Error,
    },
    /// A query failed; `op` names the operation.
    #[error("{op}: {source}")]
    Sqlite {
        op: &'static str,
        source: rusqlite::Error,
    },
}

impl Error {
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Error::Invalid {
            field,
            reason: reason.into(),
        }
    }
}

/// Attaches the operation name to a rusqlite error.
pub(crate) trait Context<T> {
    fn op(self, op: &'static str) -> Result<T>;
}

impl<T> Context<T> for rusqlite::Result<T> {
    fn op(self, op: &'static str) -> Result<T> {
        self.map_err(|source| Error::Sqlite { op, source })
    }
}
