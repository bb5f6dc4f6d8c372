//! SIP accounts.

use std::fmt;
use std::str::FromStr;

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{params, Connection, OptionalExtension as _, Row};

use crate::error::{Context as _, Error, Result};
use crate::{now, validate, Store};

const MAX_REALM: usize = 255;
const MAX_DISPLAY_NAME: usize = 128;
const MAX_CALLER_ID: usize = 64;

/// Which numbers a user may call through a trunk. Calls to other local
/// users are always allowed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum DestinationScope {
    /// Local users only: nothing leaves through a trunk.
    Local,
    /// National numbers, not international ones.
    National,
    /// Any number (the default).
    #[default]
    International,
}

impl DestinationScope {
    pub const ALL: [DestinationScope; 3] = [
        DestinationScope::Local,
        DestinationScope::National,
        DestinationScope::International,
    ];

    /// The stored spelling: `local`, `national` or `international`.
    pub fn as_str(self) -> &'static str {
        match self {
            DestinationScope::Local => "local",
            DestinationScope::National => "national",
            DestinationScope::International => "international",
        }
    }
}

impl fmt::Display for DestinationScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DestinationScope {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        DestinationScope::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| {
                Error::invalid(
                    "allowed",
                    format!("{s:?} is not one of \"local\", \"national\", \"international\""),
                )
            })
    }
}

impl ToSql for DestinationScope {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for DestinationScope {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        value
            .as_str()?
            .parse()
            .map_err(|e: Error| FromSqlError::Other(Box::new(e)))
    }
}

/// A SIP account as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Row id; stable for the life of the account.
    pub id: i64,
    /// SIP user part, case-sensitive as in RFC 3261.
    pub username: String,
    /// Dialable number, digits only.
    pub extension: Option<String>,
    pub display_name: Option<String>,
    /// Realm both HA1 digests were computed for.
    pub realm: String,
    /// `MD5(username:realm:password)`, lowercase hex.
    pub ha1_md5: String,
    /// `SHA-256(username:realm:password)`, lowercase hex (RFC 7616).
    pub ha1_sha256: String,
    /// Disabled accounts keep their data but must be refused service.
    pub enabled: bool,
    /// Number presented on outbound calls, if not the extension.
    pub caller_id: Option<String>,
    /// Concurrent call limit, at least 1; `None` for no per-user limit.
    pub max_calls: Option<u32>,
    /// Which numbers the user may call through trunks.
    pub allowed: DestinationScope,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Input to [`Store::add_user`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    pub username: String,
    pub extension: Option<String>,
    pub display_name: Option<String>,
    pub realm: String,
    pub ha1_md5: String,
    pub ha1_sha256: String,
    pub enabled: bool,
    pub caller_id: Option<String>,
    pub max_calls: Option<u32>,
    pub allowed: DestinationScope,
}

impl NewUser {
    /// An enabled user with no extension, display name or limits, allowed
    /// to call any number.
    pub fn new(
        username: impl Into<String>,
        realm: impl Into<String>,
        ha1_md5: impl Into<String>,
        ha1_sha256: impl Into<String>,
    ) -> NewUser {
        NewUser {
            username: username.into(),
            extension: None,
            display_name: None,
            realm: realm.into(),
            ha1_md5: ha1_md5.into(),
            ha1_sha256: ha1_sha256.into(),
            enabled: true,
            caller_id: None,
            max_calls: None,
            allowed: DestinationScope::International,
        }
    }

    /// The checks [`Store::add_user`] makes before touching the database,
    /// so a form can report them together with its own; errors name the
    /// field.
    pub fn validate(&self) -> Result<()> {
        validate::username(&self.username)?;
        check_credentials(&self.realm, &self.ha1_md5, &self.ha1_sha256)?;
        check_profile(
            self.extension.as_deref(),
            self.display_name.as_deref(),
            self.caller_id.as_deref(),
            self.max_calls,
        )
    }
}

/// A partial edit for [`Store::update_user`]: `None` leaves a field as is,
/// `Some(None)` clears an optional one.
///
/// Username, realm and digests are not here: the HA1 digests cover the
/// username and realm, so those change together through
/// [`Store::set_password`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserUpdate {
    pub extension: Option<Option<String>>,
    pub display_name: Option<Option<String>>,
    pub enabled: Option<bool>,
    pub caller_id: Option<Option<String>>,
    pub max_calls: Option<Option<u32>>,
    pub allowed: Option<DestinationScope>,
}

const COLUMNS: &str = "id, username, extension, display_name, realm, ha1_md5, ha1_sha256, \
                       enabled, caller_id, max_calls, allowed, created_at, updated_at";

fn from_row(row: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: row.get(0)?,
        username: row.get(1)?,
        extension: row.get(2)?,
        display_name: row.get(3)?,
        realm: row.get(4)?,
        ha1_md5: row.get(5)?,
        ha1_sha256: row.get(6)?,
        enabled: row.get(7)?,
        caller_id: row.get(8)?,
        max_calls: row.get(9)?,
        allowed: row.get(10)?,
        created_at: row.get(11)?,
        updated_at: row.get(12)?,
    })
}

fn check_credentials(realm: &str, ha1_md5: &str, ha1_sha256: &str) -> Result<()> {
    validate::required("realm", realm, MAX_REALM)?;
    validate::hex("ha1_md5", ha1_md5, 32)?;
    validate::hex("ha1_sha256", ha1_sha256, 64)
}

fn check_profile(
    extension: Option<&str>,
    display_name: Option<&str>,
    caller_id: Option<&str>,
    max_calls: Option<u32>,
) -> Result<()> {
    if max_calls == Some(0) {
        return Err(Error::invalid(
            "max_calls",
            "must be at least 1; leave it out for no limit",
        ));
    }
    if let Some(ext) = extension {
        validate::extension(ext)?;
    }
    if let Some(name) = display_name {
        validate::text("display_name", name, MAX_DISPLAY_NAME)?;
    }
    if let Some(id) = caller_id {
        validate::required("caller_id", id, MAX_CALLER_ID)?;
    }
    Ok(())
}

fn get_by_name(conn: &Connection, username: &str) -> rusqlite::Result<Option<User>> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM users WHERE username = ?1"))?
        .query_row([username], from_row)
        .optional()
}

/// Extensions and usernames share one namespace for lookup
/// ([`Store::find_user`]), so `number` must be free in both, apart from
/// `owner`'s own username.
fn check_number_free(conn: &Connection, number: &str, owner: &str) -> Result<()> {
    let taken_by: Option<String> = conn
        .prepare_cached(
            "SELECT username FROM users \
             WHERE (extension = ?1 OR username = ?1) AND username <> ?2 LIMIT 1",
        )
        .and_then(|mut stmt| stmt.query_row([number, owner], |r| r.get(0)).optional())
        .op("check extension")?;
    match taken_by {
        Some(owner) => Err(Error::ExtensionInUse {
            extension: number.to_owned(),
            owner,
        }),
        None => Ok(()),
    }
}

/// `%filter%` for LIKE, with the filter's own wildcards taken literally.
fn like_pattern(filter: &str) -> String {
    let mut pattern = String::with_capacity(filter.len() + 2);
    pattern.push('%');
    for c in filter.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

const FILTER: &str = "?1 IS NULL OR username LIKE ?1 ESCAPE '\\' \
                      OR extension LIKE ?1 ESCAPE '\\' OR display_name LIKE ?1 ESCAPE '\\'";

impl Store {
    /// Creates a user. Fails with [`Error::UserExists`] if the username is
    /// taken and [`Error::ExtensionInUse`] if the extension (or the username,
    /// when it is a number) is another user's extension or username.
    pub fn add_user(&self, user: &NewUser) -> Result<User> {
        user.validate()?;

        let tx = self.write_tx("add user")?;
        if get_by_name(&tx, &user.username).op("add user")?.is_some() {
            return Err(Error::UserExists(user.username.clone()));
        }
        check_number_free(&tx, &user.username, &user.username)?;
        if let Some(ext) = &user.extension {
            check_number_free(&tx, ext, &user.username)?;
        }
        let now = now();
        tx.execute(
            "INSERT INTO users (username, extension, display_name, realm, ha1_md5, ha1_sha256, \
             enabled, caller_id, max_calls, allowed, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11)",
            params![
                user.username,
                user.extension,
                user.display_name,
                user.realm,
                user.ha1_md5,
                user.ha1_sha256,
                user.enabled,
                user.caller_id,
                user.max_calls,
                user.allowed,
                now,
            ],
        )
        .op("add user")?;
        let id = tx.last_insert_rowid();
        tx.commit().op("add user")?;
        Ok(User {
            id,
            username: user.username.clone(),
            extension: user.extension.clone(),
            display_name: user.display_name.clone(),
            realm: user.realm.clone(),
            ha1_md5: user.ha1_md5.clone(),
            ha1_sha256: user.ha1_sha256.clone(),
            enabled: user.enabled,
            caller_id: user.caller_id.clone(),
            max_calls: user.max_calls,
            allowed: user.allowed,
            created_at: now,
            updated_at: now,
        })
    }

    /// The user with exactly this username.
    pub fn get_user_by_name(&self, username: &str) -> Result<Option<User>> {
        get_by_name(&self.conn, username).op("get user")
    }

    /// The user owning this extension.
    pub fn get_user_by_extension(&self, extension: &str) -> Result<Option<User>> {
        self.conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM users WHERE extension = ?1"))
            .and_then(|mut stmt| stmt.query_row([extension], from_row).optional())
            .op("get user by extension")
    }

    /// Looks `key` up as a username, then as an extension.
    pub fn find_user(&self, key: &str) -> Result<Option<User>> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM users WHERE username = ?1 OR extension = ?1 \
                 ORDER BY username = ?1 DESC LIMIT 1"
            ))
            .and_then(|mut stmt| stmt.query_row([key], from_row).optional())
            .op("find user")
    }

    /// Users ordered by username, one page at a time. `filter` keeps those
    /// whose username, extension or display name contains it (ASCII
    /// case-insensitive).
    pub fn list_users(&self, filter: Option<&str>, offset: u32, limit: u32) -> Result<Vec<User>> {
        let pattern = filter.map(like_pattern);
        self.conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM users WHERE {FILTER} \
                 ORDER BY username LIMIT ?2 OFFSET ?3"
            ))
            .and_then(|mut stmt| {
                stmt.query_map(params![pattern, limit, offset], from_row)?
                    .collect()
            })
            .op("list users")
    }

    /// Number of users matching `filter` (see [`Store::list_users`]).
    pub fn count_users(&self, filter: Option<&str>) -> Result<u64> {
        let pattern = filter.map(like_pattern);
        self.conn
            .prepare_cached(&format!("SELECT count(*) FROM users WHERE {FILTER}"))
            .and_then(|mut stmt| stmt.query_row([pattern], |r| r.get::<_, i64>(0)))
            .map(|n| n as u64)
            .op("count users")
    }

    /// Replaces a user's digests and the realm they were computed for.
    pub fn set_password(
        &self,
        username: &str,
        ha1_md5: &str,
        ha1_sha256: &str,
        realm: &str,
    ) -> Result<()> {
        check_credentials(realm, ha1_md5, ha1_sha256)?;
        let changed = self
            .conn
            .execute(
                "UPDATE users SET ha1_md5 = ?2, ha1_sha256 = ?3, realm = ?4, updated_at = ?5 \
                 WHERE username = ?1",
                params![username, ha1_md5, ha1_sha256, realm, now()],
            )
            .op("set password")?;
        if changed == 0 {
            return Err(Error::UserNotFound(username.to_owned()));
        }
        Ok(())
    }

    /// Applies `update` to a user and returns the result.
    pub fn update_user(&self, username: &str, update: &UserUpdate) -> Result<User> {
        let UserUpdate {
            extension,
            display_name,
            enabled,
            caller_id,
            max_calls,
            allowed,
        } = update.clone();
        check_profile(
            extension.as_ref().and_then(Option::as_deref),
            display_name.as_ref().and_then(Option::as_deref),
            caller_id.as_ref().and_then(Option::as_deref),
            max_calls.flatten(),
        )?;
        let tx = self.write_tx("update user")?;
        let mut user = get_by_name(&tx, username)
            .op("update user")?
            .ok_or_else(|| Error::UserNotFound(username.to_owned()))?;
        if let Some(extension) = extension {
            if let Some(ext) = &extension {
                check_number_free(&tx, ext, username)?;
            }
            user.extension = extension;
        }
        if let Some(display_name) = display_name {
            user.display_name = display_name;
        }
        if let Some(enabled) = enabled {
            user.enabled = enabled;
        }
        if let Some(caller_id) = caller_id {
            user.caller_id = caller_id;
        }
        if let Some(max_calls) = max_calls {
            user.max_calls = max_calls;
        }
        if let Some(allowed) = allowed {
            user.allowed = allowed;
        }
        user.updated_at = now();
        tx.execute(
            "UPDATE users SET extension = ?2, display_name = ?3, enabled = ?4, caller_id = ?5, \
             max_calls = ?6, allowed = ?7, updated_at = ?8 WHERE id = ?1",
            params![
                user.id,
                user.extension,
                user.display_name,
                user.enabled,
                user.caller_id,
                user.max_calls,
                user.allowed,
                user.updated_at,
            ],
        )
        .op("update user")?;
        tx.commit().op("update user")?;
        Ok(user)
    }

    /// Deletes a user and the DIDs routed to them. Their registration
    /// bindings are keyed by AOR and are left to the caller
    /// ([`Store::remove_all_bindings`]); their CDRs stay.
    pub fn remove_user(&self, username: &str) -> Result<()> {
        let removed = self
            .conn
            .execute("DELETE FROM users WHERE username = ?1", [username])
            .op("remove user")?;
        if removed == 0 {
            return Err(Error::UserNotFound(username.to_owned()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_escapes_wildcards() {
        assert_eq!(like_pattern("a_b%c\\"), "%a\\_b\\%c\\\\%");
    }

    fn alice() -> NewUser {
        NewUser::new("alice", "r", "0".repeat(32), "0".repeat(64))
    }

    #[test]
    fn destination_scope_round_trips_and_defaults() {
        let store = Store::open_in_memory().unwrap();
        let user = store.add_user(&alice()).unwrap();
        assert_eq!(user.allowed, DestinationScope::International);
        let updated = store
            .update_user(
                "alice",
                &UserUpdate {
                    allowed: Some(DestinationScope::Local),
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(updated.allowed, DestinationScope::Local);
        let read = store.get_user_by_name("alice").unwrap().unwrap();
        assert_eq!(read.allowed, DestinationScope::Local);
        for d in DestinationScope::ALL {
            assert_eq!(d.as_str().parse::<DestinationScope>().unwrap(), d);
        }
        let err = "galactic".parse::<DestinationScope>().unwrap_err();
        assert!(
            matches!(
                err,
                Error::Invalid {
                    field: "allowed",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn zero_max_calls_is_refused() {
        let store = Store::open_in_memory().unwrap();
        let mut user = alice();
        user.max_calls = Some(0);
        let err = store.add_user(&user).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Invalid {
                    field: "max_calls",
                    ..
                }
            ),
            "{err}"
        );
        user.max_calls = Some(3);
        store.add_user(&user).unwrap();
        let err = store
            .update_user(
                "alice",
                &UserUpdate {
                    max_calls: Some(Some(0)),
                    ..Default::default()
                },
            )
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Invalid {
                    field: "max_calls",
                    ..
                }
            ),
            "{err}"
        );
    }
}
