//! User provisioning shared by the CLI, the config file and first start.
//! Passwords become HA1 digests here; the store never sees them in clear.

use crate::config::UserConfig;
use sip::digest::StoredHa1;
use store::{NewUser, Store, User, UserUpdate};

/// Adds a user with a password.
pub fn add(
    store: &Store,
    realm: &str,
    name: &str,
    password: &str,
    extension: Option<&str>,
    display_name: Option<&str>,
) -> store::Result<User> {
    let ha1 = StoredHa1::from_password(name, realm, password);
    let mut u = NewUser::new(name, realm, ha1.md5.as_str(), ha1.sha256.as_str());
    u.extension = extension.map(str::to_owned);
    u.display_name = display_name.map(str::to_owned);
    store.add_user(&u)
}

/// Sets a user's password (and realm).
pub fn passwd(store: &Store, realm: &str, name: &str, password: &str) -> store::Result<()> {
    let ha1 = StoredHa1::from_password(name, realm, password);
    store.set_password(name, &ha1.md5, &ha1.sha256, realm)
}

/// Applies the users declared in the config file: creates missing ones and
/// brings existing ones to the declared password, extension and display name.
/// Running it twice changes nothing the second time.
pub fn provision(store: &Store, realm: &str, users: &[UserConfig]) -> store::Result<usize> {
    let mut changed = 0;
    for u in users {
        match store.get_user_by_name(&u.name)? {
            None => {
                add(
                    store,
                    realm,
                    &u.name,
                    &u.password,
                    u.extension.as_deref(),
                    u.display_name.as_deref(),
                )?;
                changed += 1;
            }
            Some(existing) => {
                let ha1 = StoredHa1::from_password(&u.name, realm, &u.password);
                if existing.realm != realm
                    || existing.ha1_md5 != ha1.md5
                    || existing.ha1_sha256 != ha1.sha256
                {
                    store.set_password(&u.name, &ha1.md5, &ha1.sha256, realm)?;
                    changed += 1;
                }
                if existing.extension != u.extension || existing.display_name != u.display_name {
                    store.update_user(
                        &u.name,
                        &UserUpdate {
                            extension: Some(u.extension.clone()),
                            display_name: Some(u.display_name.clone()),
                            ..Default::default()
                        },
                    )?;
                    changed += 1;
                }
            }
        }
    }
    Ok(changed)
}

/// A random password of `len` characters that is easy to read out loud
/// (no 0/O, 1/l/I).
pub fn random_password(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = vec![0u8; len];
    getrandom::fill(&mut bytes).expect("system random source");
    bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

/// On a store with no users at all, creates the demo users 1000 and 1001
/// with random passwords and returns them so they can be printed once.
pub fn ensure_demo_users(store: &Store, realm: &str) -> store::Result<Vec<(String, String)>> {
    if store.count_users(None)? > 0 || store.get_setting("demo_users_created")?.is_some() {
        return Ok(Vec::new());
    }
    let mut created = Vec::new();
    for name in ["1000", "1001"] {
        let pw = random_password(12);
        add(store, realm, name, &pw, None, Some(&format!("Demo {name}")))?;
        created.push((name.to_owned(), pw));
    }
    store.set_setting("demo_users_created", "1")?;
    Ok(created)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(name: &str, pw: &str, ext: Option<&str>) -> UserConfig {
        UserConfig {
            name: name.into(),
            password: pw.into(),
            extension: ext.map(Into::into),
            display_name: None,
        }
    }

    #[test]
    fn provisioning_is_idempotent() {
        let s = Store::open_in_memory().unwrap();
        let users = vec![
            cfg("alice", "password1", Some("2000")),
            cfg("bob", "password2", None),
        ];
        assert_eq!(provision(&s, "example.com", &users).unwrap(), 2);
        assert_eq!(provision(&s, "example.com", &users).unwrap(), 0);
        let users = vec![cfg("alice", "changed-pw", Some("2001"))];
        assert_eq!(provision(&s, "example.com", &users).unwrap(), 2);
        let a = s.get_user_by_name("alice").unwrap().unwrap();
        assert_eq!(a.extension.as_deref(), Some("2001"));
        assert_eq!(
            a.ha1_md5,
            StoredHa1::from_password("alice", "example.com", "changed-pw").md5
        );
        assert_ne!(a.ha1_md5, "changed-pw");
    }

    #[test]
    fn demo_users_only_on_an_empty_store_once() {
        let s = Store::open_in_memory().unwrap();
        let created = ensure_demo_users(&s, "r").unwrap();
        assert_eq!(created.len(), 2);
        assert!(created.iter().all(|(_, pw)| pw.len() == 12));
        s.remove_user("1000").unwrap();
        s.remove_user("1001").unwrap();
        assert!(ensure_demo_users(&s, "r").unwrap().is_empty());
    }
}
