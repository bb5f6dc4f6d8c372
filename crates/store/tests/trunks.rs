//! Trunks, DIDs and CDRs.

use store::{
    CallerIdPolicy, Cdr, CdrFilter, Direction, Disposition, Error, MediaStats, NewUser, NumberRule,
    RegistrationConfig, Store, Transport, TrunkConfig,
};

fn user(store: &Store, name: &str) {
    store
        .add_user(&NewUser::new(
            name,
            "callgate",
            "0123456789abcdef".repeat(2),
            "ab".repeat(32),
        ))
        .unwrap();
}

fn full_trunk() -> TrunkConfig {
    let mut config = TrunkConfig::new("carrier-1", "sip.carrier.example");
    config.port = 5061;
    config.transport = Transport::Tls;
    config.registration = Some(RegistrationConfig {
        auth_username: Some("auth-4711".into()),
        expiry_secs: 600,
        ..RegistrationConfig::new("4711", "s3cret,\"pw\"")
    });
    config.caller_id = CallerIdPolicy::Fixed("+4930123456".into());
    config.from_domain = Some("carrier.example".into());
    config.inbound_trust = vec![
        "192.0.2.0/24".into(),
        "198.51.100.7".into(),
        "2001:DB8::/32".into(),
    ];
    config.dial_patterns = vec!["+".into(), "00".into(), "0[1-9]".into()];
    config.number_rules = vec![NumberRule::new("+", "00"), NumberRule::new("", "0")];
    config.max_calls = Some(30);
    config
}

fn assert_invalid<T: std::fmt::Debug>(result: store::Result<T>, field: &str) {
    match result {
        Err(Error::Invalid { field: f, reason }) => {
            assert_eq!(f, field, "{reason}");
        }
        other => panic!("expected invalid {field}, got {other:?}"),
    }
}

#[test]
fn trunk_crud_and_secret() {
    let store = Store::open_in_memory().unwrap();
    let trunk = store.add_trunk(&full_trunk()).unwrap();
    assert_eq!(trunk.name, "carrier-1");
    assert_eq!((trunk.port, trunk.transport), (5061, Transport::Tls));
    let reg = trunk.registration.as_ref().unwrap();
    assert!(reg.enabled && reg.has_password);
    assert_eq!(reg.username, "4711");
    assert_eq!(reg.auth_username.as_deref(), Some("auth-4711"));
    assert_eq!(reg.expiry_secs, 600);
    assert_eq!(
        trunk.inbound_trust,
        ["192.0.2.0/24", "198.51.100.7", "2001:db8::/32"],
        "canonical form"
    );
    assert_eq!(trunk.caller_id, CallerIdPolicy::Fixed("+4930123456".into()));
    assert_eq!(trunk.number_rules, full_trunk().number_rules);
    assert_eq!(trunk.max_calls, Some(30));
    assert!(trunk.enabled);
    assert_eq!(store.get_trunk("carrier-1").unwrap().unwrap(), trunk);
    assert!(store.get_trunk("nope").unwrap().is_none());

    // The password only comes back through trunk_secret.
    for shown in [
        format!("{trunk:?}"),
        format!("{:?}", store.list_trunks().unwrap()),
        format!("{:?}", full_trunk()),
    ] {
        assert!(!shown.contains("s3cret"), "{shown}");
    }
    assert_eq!(
        store.trunk_secret("carrier-1").unwrap().as_deref(),
        Some("s3cret,\"pw\"")
    );
    assert!(matches!(
        store.trunk_secret("nope"),
        Err(Error::TrunkNotFound(_))
    ));

    // Helpers over the stored configuration.
    assert!(trunk.trusts("192.0.2.200".parse().unwrap()));
    assert!(trunk.trusts("198.51.100.7".parse().unwrap()));
    assert!(trunk.trusts("::ffff:192.0.2.1".parse().unwrap()));
    assert!(trunk.trusts("2001:db8:ffff::1".parse().unwrap()));
    assert!(!trunk.trusts("198.51.100.8".parse().unwrap()));
    assert!(!trunk.trusts("2001:db9::1".parse().unwrap()));
    assert!(trunk.routes("+4930") && trunk.routes("0301234") && !trunk.routes("100"));
    assert_eq!(trunk.normalize("+4930"), "004930");
    assert_eq!(trunk.normalize("301234"), "0301234");

    // Duplicates and a second, minimal trunk.
    assert!(matches!(
        store.add_trunk(&full_trunk()),
        Err(Error::TrunkExists(name)) if name == "carrier-1"
    ));
    let plain = store
        .add_trunk(&TrunkConfig::new("a-ip-auth", "192.0.2.10"))
        .unwrap();
    assert_eq!(plain.registration, None);
    assert_eq!(plain.caller_id, CallerIdPolicy::Keep);
    assert_eq!(store.trunk_secret("a-ip-auth").unwrap(), None);
    let names: Vec<String> = store
        .list_trunks()
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["a-ip-auth", "carrier-1"]);

    // Update without a password keeps the stored one; rename works.
    let mut edit = full_trunk();
    edit.name = "carrier-one".into();
    edit.caller_id = CallerIdPolicy::User;
    edit.enabled = false;
    edit.registration.as_mut().unwrap().password = None;
    edit.registration.as_mut().unwrap().enabled = false;
    let updated = store.update_trunk("carrier-1", &edit).unwrap();
    assert_eq!(updated.id, trunk.id);
    assert_eq!(updated.caller_id, CallerIdPolicy::User);
    assert!(!updated.enabled);
    assert!(!updated.registration.as_ref().unwrap().enabled);
    assert!(updated.registration.as_ref().unwrap().has_password);
    assert_eq!(
        store.trunk_secret("carrier-one").unwrap().as_deref(),
        Some("s3cret,\"pw\"")
    );
    assert!(store.get_trunk("carrier-1").unwrap().is_none());
    assert!(matches!(
        store.update_trunk("carrier-one", &TrunkConfig::new("a-ip-auth", "h")),
        Err(Error::TrunkExists(_))
    ));
    assert!(matches!(
        store.update_trunk("ghost", &TrunkConfig::new("ghost", "h")),
        Err(Error::TrunkNotFound(_))
    ));

    // Explicit password changes.
    store
        .set_trunk_password("carrier-one", Some("new-pw"))
        .unwrap();
    assert_eq!(
        store.trunk_secret("carrier-one").unwrap().as_deref(),
        Some("new-pw")
    );
    store.set_trunk_password("carrier-one", None).unwrap();
    assert_eq!(store.trunk_secret("carrier-one").unwrap(), None);
    assert!(
        !store
            .get_trunk("carrier-one")
            .unwrap()
            .unwrap()
            .registration
            .unwrap()
            .has_password
    );
    assert_invalid(
        store.set_trunk_password("a-ip-auth", Some("pw")),
        "password",
    );
    assert_invalid(
        store.set_trunk_password("carrier-one", Some("a\nb")),
        "password",
    );
    assert!(matches!(
        store.set_trunk_password("ghost", None),
        Err(Error::TrunkNotFound(_))
    ));

    // Dropping the registration drops the credentials with it.
    store
        .set_trunk_password("carrier-one", Some("again"))
        .unwrap();
    let mut edit = edit.clone();
    edit.registration = None;
    let updated = store.update_trunk("carrier-one", &edit).unwrap();
    assert_eq!(updated.registration, None);
    assert_eq!(store.trunk_secret("carrier-one").unwrap(), None);

    // Remove.
    store.remove_trunk("carrier-one").unwrap();
    assert!(matches!(
        store.remove_trunk("carrier-one"),
        Err(Error::TrunkNotFound(_))
    ));
    assert_eq!(store.list_trunks().unwrap().len(), 1);
}

#[test]
fn trunk_validation_names_the_field() {
    let store = Store::open_in_memory().unwrap();
    type Edit = fn(&mut TrunkConfig);
    let cases: &[(&str, Edit)] = &[
        ("name", |c| c.name = String::new()),
        ("name", |c| c.name = "has space".into()),
        ("name", |c| c.name = "x".repeat(65)),
        ("host", |c| c.host = "bad host".into()),
        ("host", |c| c.host = "[2001:db8::1]".into()),
        ("port", |c| c.port = 0),
        ("transport", |c| c.transport = Transport::Wss),
        ("registration username", |c| {
            c.registration = Some(RegistrationConfig::new("a@b", "pw"))
        }),
        ("auth_username", |c| {
            c.registration = Some(RegistrationConfig {
                auth_username: Some("x\r\ny".into()),
                ..RegistrationConfig::new("a", "pw")
            })
        }),
        ("password", |c| {
            c.registration = Some(RegistrationConfig::new("a", ""))
        }),
        ("registration expiry", |c| {
            c.registration = Some(RegistrationConfig {
                expiry_secs: 10,
                ..RegistrationConfig::new("a", "pw")
            })
        }),
        ("caller_id", |c| {
            c.caller_id = CallerIdPolicy::Fixed("030 123".into())
        }),
        ("from_domain", |c| c.from_domain = Some("a..b".into())),
        ("inbound_trust", |c| {
            c.inbound_trust = vec!["192.0.2.0/24".into(), "192.0.2.0/33".into()]
        }),
        ("inbound_trust", |c| {
            c.inbound_trust = vec!["10.1.2.3/8".into()]
        }),
        ("inbound_trust", |c| {
            c.inbound_trust = vec!["sip.example.com".into()]
        }),
        ("inbound_trust", |c| {
            c.inbound_trust = vec!["10.0.0.1".into(); 65]
        }),
        ("dial_patterns", |c| c.dial_patterns = vec!["0.*".into()]),
        ("dial_patterns", |c| c.dial_patterns = vec!["[1-9".into()]),
        ("dial_patterns", |c| c.dial_patterns = vec!["".into()]),
        ("number_rules", |c| {
            c.number_rules = vec![NumberRule::new("0", "x")]
        }),
        ("number_rules", |c| {
            c.number_rules = vec![NumberRule::new("", "")]
        }),
    ];
    for (field, edit) in cases {
        let mut config = TrunkConfig::new("t", "sip.example.com");
        edit(&mut config);
        let err = store.add_trunk(&config).unwrap_err();
        assert!(
            matches!(&err, Error::Invalid { field: f, .. } if f == field),
            "{field}: {err}"
        );
        assert!(err.to_string().contains(field), "{err}");
    }
    assert!(store.list_trunks().unwrap().is_empty());
    // Updates run the same checks.
    store
        .add_trunk(&TrunkConfig::new("t", "sip.example.com"))
        .unwrap();
    let mut bad = TrunkConfig::new("t", "sip.example.com");
    bad.dial_patterns = vec!["abc".into()];
    assert_invalid(store.update_trunk("t", &bad), "dial_patterns");
}

#[test]
fn dids_and_foreign_keys() {
    let store = Store::open_in_memory().unwrap();
    user(&store, "alice");
    user(&store, "bob");
    store.add_trunk(&full_trunk()).unwrap();
    store
        .add_trunk(&TrunkConfig::new("backup", "192.0.2.1"))
        .unwrap();

    let did = store.add_did("+4930100", "carrier-1", "alice").unwrap();
    assert_eq!(
        (
            did.number.as_str(),
            did.trunk.as_str(),
            did.username.as_str()
        ),
        ("+4930100", "carrier-1", "alice")
    );
    store.add_did("030200", "carrier-1", "bob").unwrap();
    store.add_did("+4930300", "backup", "alice").unwrap();

    assert_eq!(
        store.did_lookup("+4930100").unwrap(),
        Some(("carrier-1".into(), "alice".into()))
    );
    assert_eq!(store.did_lookup("4930100").unwrap(), None, "exact match");
    let numbers = |dids: Vec<store::Did>| dids.into_iter().map(|d| d.number).collect::<Vec<_>>();
    assert_eq!(
        numbers(store.list_dids(None).unwrap()),
        ["+4930100", "+4930300", "030200"]
    );
    assert_eq!(
        numbers(store.list_dids(Some("backup")).unwrap()),
        ["+4930300"]
    );

    // Errors.
    assert!(matches!(
        store.add_did("+4930100", "backup", "bob"),
        Err(Error::DidExists(n)) if n == "+4930100"
    ));
    assert!(matches!(
        store.add_did("+1", "ghost", "bob"),
        Err(Error::TrunkNotFound(_))
    ));
    assert!(matches!(
        store.add_did("+1", "backup", "ghost"),
        Err(Error::UserNotFound(_))
    ));
    for bad in ["", "+", "12a", "+49 30", "1+2", &"1".repeat(33)] {
        assert_invalid(store.add_did(bad, "backup", "bob"), "number");
    }

    // A trunk carrying DIDs cannot be removed (RESTRICT) ...
    assert!(matches!(
        store.remove_trunk("backup"),
        Err(Error::TrunkInUse { dids: 1, .. })
    ));
    // ... but can be renamed, and its DIDs follow.
    let mut renamed = TrunkConfig::new("backup-2", "192.0.2.1");
    renamed.enabled = false;
    store.update_trunk("backup", &renamed).unwrap();
    assert_eq!(
        store.did_lookup("+4930300").unwrap(),
        Some(("backup-2".into(), "alice".into()))
    );
    store.remove_did("+4930300").unwrap();
    assert!(matches!(
        store.remove_did("+4930300"),
        Err(Error::DidNotFound(_))
    ));
    store.remove_trunk("backup-2").unwrap();

    // Removing a user removes their DIDs (CASCADE).
    store.remove_user("alice").unwrap();
    assert_eq!(store.did_lookup("+4930100").unwrap(), None);
    assert_eq!(numbers(store.list_dids(None).unwrap()), ["030200"]);
}

#[test]
fn restrict_holds_below_the_api() {
    // The RESTRICT is in the schema, not only in remove_trunk.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("callgate.db");
    let store = Store::open(&path).unwrap();
    user(&store, "alice");
    store
        .add_trunk(&TrunkConfig::new("t", "192.0.2.1"))
        .unwrap();
    store.add_did("100", "t", "alice").unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "foreign_keys", true).unwrap();
    let err = conn
        .execute("DELETE FROM trunks WHERE name = 't'", [])
        .unwrap_err();
    assert!(err.to_string().contains("FOREIGN KEY"), "{err}");
    assert!(store.get_trunk("t").unwrap().is_some());
}

fn cdr(call_id: &str, started_at: i64, direction: Direction) -> Cdr {
    Cdr {
        id: 0,
        call_id: call_id.into(),
        started_at,
        answered_at: Some(started_at + 5),
        ended_at: started_at + 65,
        caller: "1001".into(),
        callee: "+4930123".into(),
        caller_user: Some("alice".into()),
        callee_user: None,
        direction,
        disposition: Disposition::Answered,
        duration_secs: 60,
        trunk: Some("carrier-1".into()),
        caller_media: None,
        callee_media: None,
    }
}

#[test]
fn cdr_insert_list_count() {
    let store = Store::open_in_memory().unwrap();
    let stats = MediaStats {
        rx_packets: 3000,
        tx_packets: 2990,
        rx_bytes: 516_000,
        tx_bytes: 514_280,
        lost_packets: 12,
        jitter_ms: 3.25,
    };
    let mut first = cdr("a@h", 1000, Direction::Outbound);
    first.caller_media = Some(stats);
    first.callee_media = Some(MediaStats {
        jitter_ms: 0.0,
        ..stats
    });
    let id = store.insert_cdr(&first).unwrap();
    first.id = id;

    let mut inbound = cdr("b@h", 2000, Direction::Inbound);
    inbound.caller = "+4940999".into();
    inbound.callee = "+4930100".into();
    inbound.caller_user = None;
    inbound.callee_user = Some("bob".into());
    inbound.answered_at = None;
    inbound.duration_secs = 0;
    inbound.disposition = Disposition::NoAnswer;
    store.insert_cdr(&inbound).unwrap();

    let mut internal = cdr("c@h", 3000, Direction::Internal);
    internal.callee_user = Some("bob".into());
    internal.trunk = None;
    store.insert_cdr(&internal).unwrap();

    let all = store.list_cdrs(&CdrFilter::default(), 0, 10).unwrap();
    let ids: Vec<&str> = all.iter().map(|c| c.call_id.as_str()).collect();
    assert_eq!(ids, ["c@h", "b@h", "a@h"], "newest first");
    assert_eq!(all[2], first, "round trip incl. media stats");
    assert_eq!(all[1].answered_at, None);
    assert_eq!(all[1].disposition, Disposition::NoAnswer);
    assert_eq!(all[0].trunk, None);

    let count = |f: &CdrFilter| store.count_cdrs(f).unwrap();
    let range = CdrFilter {
        since: Some(1000),
        until: Some(3000),
        ..CdrFilter::default()
    };
    assert_eq!(count(&range), 2, "since inclusive, until exclusive");
    let bob = CdrFilter {
        user: Some("bob".into()),
        ..CdrFilter::default()
    };
    assert_eq!(count(&bob), 2, "caller or callee");
    let alice_out = CdrFilter {
        user: Some("alice".into()),
        direction: Some(Direction::Outbound),
        ..CdrFilter::default()
    };
    assert_eq!(count(&alice_out), 1);
    assert_eq!(count(&CdrFilter::default()), 3);
    let page: Vec<String> = store
        .list_cdrs(&CdrFilter::default(), 1, 1)
        .unwrap()
        .into_iter()
        .map(|c| c.call_id)
        .collect();
    assert_eq!(page, ["b@h"]);
    assert!(store.list_cdrs(&range, 2, 10).unwrap().is_empty());

    // Validation.
    type Edit = fn(&mut Cdr);
    let cases: &[(&str, Edit)] = &[
        ("call_id", |c| c.call_id = String::new()),
        ("ended_at", |c| c.ended_at = c.started_at - 1),
        ("answered_at", |c| c.answered_at = None),
        ("answered_at", |c| c.answered_at = Some(c.ended_at + 1)),
        ("answered_at", |c| c.disposition = Disposition::Busy),
        ("duration_secs", |c| {
            c.disposition = Disposition::Failed;
            c.answered_at = None;
        }),
        ("caller_user", |c| c.caller_user = Some("a b".into())),
        ("callee", |c| c.callee = "x".repeat(5000)),
        ("caller_media", |c| {
            c.caller_media = Some(MediaStats {
                jitter_ms: f64::NAN,
                ..MediaStats::default()
            })
        }),
        ("callee_media", |c| {
            c.callee_media = Some(MediaStats {
                rx_bytes: u64::MAX,
                ..MediaStats::default()
            })
        }),
    ];
    for (field, edit) in cases {
        let mut bad = cdr("x@h", 5000, Direction::Outbound);
        edit(&mut bad);
        assert_invalid(store.insert_cdr(&bad), field);
    }
    assert_eq!(count(&CdrFilter::default()), 3);
}

#[test]
fn cdr_csv_export_golden() {
    let store = Store::open_in_memory().unwrap();
    let mut tricky = cdr("q,\"1\"@h", 1_700_000_000, Direction::Inbound);
    tricky.caller = "\"Doe, John\" <sip:+4940@p>".into();
    tricky.callee = "line1\nline2\r\nline3".into();
    tricky.caller_user = None;
    tricky.callee_user = Some("bob".into());
    tricky.caller_media = Some(MediaStats {
        rx_packets: 10,
        tx_packets: 11,
        rx_bytes: 1720,
        tx_bytes: 1892,
        lost_packets: 1,
        jitter_ms: 2.5,
    });
    store.insert_cdr(&tricky).unwrap();
    let mut cancelled = cdr("plain@h", 1_700_000_100, Direction::Outbound);
    cancelled.answered_at = None;
    cancelled.duration_secs = 0;
    cancelled.disposition = Disposition::Cancelled;
    store.insert_cdr(&cancelled).unwrap();
    // Outside the filter below.
    store
        .insert_cdr(&cdr("late@h", 1_800_000_000, Direction::Outbound))
        .unwrap();

    let mut out = Vec::new();
    let filter = CdrFilter {
        until: Some(1_750_000_000),
        ..CdrFilter::default()
    };
    assert_eq!(store.export_cdrs_csv(&filter, &mut out).unwrap(), 2);
    let expected = concat!(
        "id,call_id,started_at,answered_at,ended_at,caller,callee,caller_user,callee_user,",
        "direction,disposition,duration_secs,trunk,",
        "caller_rx_packets,caller_tx_packets,caller_rx_bytes,caller_tx_bytes,",
        "caller_lost_packets,caller_jitter_ms,",
        "callee_rx_packets,callee_tx_packets,callee_rx_bytes,callee_tx_bytes,",
        "callee_lost_packets,callee_jitter_ms\r\n",
        "1,\"q,\"\"1\"\"@h\",1700000000,1700000005,1700000065,",
        "\"\"\"Doe, John\"\" <sip:+4940@p>\",\"line1\nline2\r\nline3\",,bob,",
        "inbound,answered,60,carrier-1,10,11,1720,1892,1,2.5,,,,,,\r\n",
        "2,plain@h,1700000100,,1700000165,1001,+4930123,alice,,",
        "outbound,cancelled,0,carrier-1,,,,,,,,,,,,\r\n",
    );
    assert_eq!(String::from_utf8(out).unwrap(), expected);

    // A failing writer surfaces as an I/O error.
    struct Broken;
    impl std::io::Write for Broken {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk full"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    assert!(matches!(
        store.export_cdrs_csv(&CdrFilter::default(), &mut Broken),
        Err(Error::Io { .. })
    ));
}

#[test]
fn trunk_data_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("callgate.db");
    let added = {
        let store = Store::open(&path).unwrap();
        user(&store, "alice");
        let trunk = store.add_trunk(&full_trunk()).unwrap();
        store.add_did("+4930100", "carrier-1", "alice").unwrap();
        store
            .insert_cdr(&cdr("a@h", 1000, Direction::Outbound))
            .unwrap();
        trunk
    };
    let store = Store::open(&path).unwrap();
    assert_eq!(store.get_trunk("carrier-1").unwrap().unwrap(), added);
    assert!(store.did_lookup("+4930100").unwrap().is_some());
    assert_eq!(store.count_cdrs(&CdrFilter::default()).unwrap(), 1);
}
