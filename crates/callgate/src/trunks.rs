//! Trunk and DID provisioning from the config file (`[[trunks]]`,
//! `[[dids]]`), applied to the store at start like `[[users]]`.
//!
//! Config-declared trunks are upserted by name: added when missing, updated
//! when any key differs, their password set when the config gives one (a
//! trunk without `password` keeps one set through the API or CLI). DIDs are
//! added when missing and re-pointed when their trunk or user differs.
//! Trunks and DIDs that the config does not mention are left alone: they may
//! have come from the API.

use crate::config::{DidDef, TrunkDef};
use store::{Store, Trunk, TrunkConfig};

/// Why provisioning stopped; `item` says which table (`trunks[0]`,
/// `dids[2]`).
#[derive(Debug, thiserror::Error)]
#[error("config {item}: {source}")]
pub struct ProvisionError {
    pub item: String,
    #[source]
    pub source: Box<store::Error>,
}

/// Applies `[[trunks]]` and then `[[dids]]` to the store and returns how
/// many trunks and DIDs it added or changed; running it twice changes
/// nothing the second time. Users named by DIDs must exist already, so run
/// [`crate::users::provision`] first.
///
/// The definitions are expected to have passed [`crate::config::Config::validate`];
/// one that does not is reported as a store error naming the field.
pub fn provision(
    store: &Store,
    trunks: &[TrunkDef],
    dids: &[DidDef],
) -> Result<usize, ProvisionError> {
    let mut changed = 0;
    for (i, def) in trunks.iter().enumerate() {
        let at = |source| ProvisionError {
            item: format!("trunks[{i}] ({})", def.name),
            source: Box::new(source),
        };
        changed += provision_trunk(store, def).map_err(at)?;
    }
    for (i, did) in dids.iter().enumerate() {
        let at = |source| ProvisionError {
            item: format!("dids[{i}] ({})", did.number),
            source: Box::new(source),
        };
        match store.did_lookup(&did.number).map_err(at)? {
            Some((trunk, user)) if trunk == did.trunk && user == did.user => {}
            Some(_) => {
                // Checked first so a bad target leaves the old routing.
                check_did_target(store, did).map_err(at)?;
                store.remove_did(&did.number).map_err(at)?;
                store
                    .add_did(&did.number, &did.trunk, &did.user)
                    .map_err(at)?;
                changed += 1;
            }
            None => {
                store
                    .add_did(&did.number, &did.trunk, &did.user)
                    .map_err(at)?;
                changed += 1;
            }
        }
    }
    Ok(changed)
}

/// Adds or updates one trunk; 1 if anything changed.
fn provision_trunk(store: &Store, def: &TrunkDef) -> store::Result<usize> {
    let config = def
        .to_store()
        .map_err(|(field, reason)| store::Error::Invalid { field, reason })?;
    let Some(existing) = store.get_trunk(&def.name)? else {
        store.add_trunk(&config)?;
        return Ok(1);
    };
    let mut changed = false;
    if !same(&existing, &config)? {
        store.update_trunk(&def.name, &config)?;
        changed = true;
    }
    if let Some(password) = &def.password {
        if store.trunk_secret(&def.name)?.as_deref() != Some(password.as_str()) {
            store.set_trunk_password(&def.name, Some(password))?;
            changed = true;
        }
    }
    Ok(usize::from(changed))
}

/// Whether the stored trunk already matches `config`, password aside.
fn same(stored: &Trunk, config: &TrunkConfig) -> store::Result<bool> {
    let trust = config.validate()?;
    let registration = match (&stored.registration, &config.registration) {
        (None, None) => true,
        (Some(s), Some(c)) => {
            s.enabled == c.enabled
                && s.username == c.username
                && s.auth_username == c.auth_username
                && s.expiry_secs == c.expiry_secs
        }
        _ => false,
    };
    Ok(registration
        && stored.name == config.name
        && stored.host == config.host
        && stored.port == config.port
        && stored.transport == config.transport
        && stored.caller_id == config.caller_id
        && stored.from_domain == config.from_domain
        && stored.inbound_trust == trust
        && stored.dial_patterns == config.dial_patterns
        && stored.number_rules == config.number_rules
        && stored.max_calls == config.max_calls
        && stored.enabled == config.enabled)
}

/// The errors `add_did` would give for the DID's trunk and user.
fn check_did_target(store: &Store, did: &DidDef) -> store::Result<()> {
    if store.get_trunk(&did.trunk)?.is_none() {
        return Err(store::Error::TrunkNotFound(did.trunk.clone()));
    }
    if store.get_user_by_name(&did.user)?.is_none() {
        return Err(store::Error::UserNotFound(did.user.clone()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn store_with_users(names: &[&str]) -> Store {
        let s = Store::open_in_memory().unwrap();
        for name in names {
            crate::users::add(&s, "example.com", name, "password1", None, None).unwrap();
        }
        s
    }

    fn did(number: &str, trunk: &str, user: &str) -> DidDef {
        DidDef {
            number: number.into(),
            trunk: trunk.into(),
            user: user.into(),
        }
    }

    #[test]
    fn provisioning_is_idempotent_and_updates() {
        let s = store_with_users(&["alice", "bob"]);
        let mut carrier = TrunkDef::new("carrier", "sip.example.net");
        carrier.username = Some("acct".into());
        carrier.password = Some("first-secret".into());
        carrier.register = true;
        carrier.inbound_trust = vec!["2001:DB8::/32".into()];
        carrier.number_rules = vec!["00>+".into()];
        let trunks = vec![carrier.clone(), TrunkDef::new("backup", "192.0.2.1")];
        let dids = vec![did("+4930100", "carrier", "alice")];
        assert_eq!(provision(&s, &trunks, &dids).unwrap(), 3);
        assert_eq!(
            provision(&s, &trunks, &dids).unwrap(),
            0,
            "canonical forms compare equal"
        );
        assert_eq!(
            s.trunk_secret("carrier").unwrap().as_deref(),
            Some("first-secret")
        );

        // Changed keys, a new password, a re-pointed DID.
        carrier.port = 5080;
        carrier.password = Some("second-secret".into());
        let trunks = vec![carrier.clone()];
        let dids = vec![did("+4930100", "backup", "bob")];
        assert_eq!(provision(&s, &trunks, &dids).unwrap(), 2);
        let t = s.get_trunk("carrier").unwrap().unwrap();
        assert_eq!(t.port, 5080);
        assert_eq!(
            s.trunk_secret("carrier").unwrap().as_deref(),
            Some("second-secret")
        );
        assert_eq!(
            s.did_lookup("+4930100").unwrap(),
            Some(("backup".into(), "bob".into()))
        );
        assert!(
            s.get_trunk("backup").unwrap().is_some(),
            "trunks not in the config are left alone"
        );

        // Without a password in the config, the stored one stays.
        carrier.password = None;
        assert_eq!(provision(&s, &[carrier], &[]).unwrap(), 0);
        assert_eq!(
            s.trunk_secret("carrier").unwrap().as_deref(),
            Some("second-secret")
        );
    }

    #[test]
    fn bad_did_target_names_the_table_and_keeps_routing() {
        let s = store_with_users(&["alice"]);
        let trunks = vec![TrunkDef::new("carrier", "sip.example.net")];
        provision(&s, &trunks, &[did("100", "carrier", "alice")]).unwrap();
        let err = provision(&s, &trunks, &[did("100", "carrier", "nobody")]).unwrap_err();
        assert_eq!(err.item, "dids[0] (100)");
        assert!(
            matches!(*err.source, store::Error::UserNotFound(_)),
            "{err}"
        );
        assert_eq!(
            s.did_lookup("100").unwrap(),
            Some(("carrier".into(), "alice".into()))
        );
        let err = provision(&s, &[], &[did("200", "missing", "alice")]).unwrap_err();
        assert!(err.to_string().contains("dids[0]"), "{err}");
    }

    #[test]
    fn config_file_round_trip() {
        let c = Config::from_toml(
            "[[trunks]]\nname = \"carrier\"\nhost = \"sip.example.net\"\n\
             username = \"acct\"\npassword = \"trunk-secret\"\n\
             dial_patterns = [\"0\"]\n",
        )
        .unwrap();
        let s = store_with_users(&[]);
        assert_eq!(provision(&s, &c.trunks, &c.dids).unwrap(), 1);
        let t = s.get_trunk("carrier").unwrap().unwrap();
        assert!(t.routes("0301234"));
        let reg = t.registration.unwrap();
        assert!(!reg.enabled && reg.has_password);
    }
}
