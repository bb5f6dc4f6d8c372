//! Behaviour against real database files.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use store::{
    Binding, BindingKey, Error, NewUser, Store, Transport, Upsert, UserUpdate, SCHEMA_VERSION,
};

fn db(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("callgate.db")
}

fn user(name: &str) -> NewUser {
    NewUser::new(
        name,
        "callgate",
        "0123456789abcdef".repeat(2),
        "ab".repeat(32),
    )
}

fn binding(aor: &str, contact: &str) -> Binding {
    Binding {
        aor: aor.into(),
        contact: contact.into(),
        instance: None,
        reg_id: None,
        call_id: "c1@host".into(),
        cseq: 1,
        q: 1000,
        expires_at: 2_000_000_000,
        transport: Transport::Wss,
        source: "[2001:db8::1]:50000".parse().unwrap(),
        local: "192.0.2.1:443".parse().unwrap(),
        path: Vec::new(),
        user_agent: Some("test".into()),
        flow_id: None,
        gruu: None,
        updated_at: 0,
    }
}

fn raw(path: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn
}

#[test]
fn fresh_file_is_migrated_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/callgate.db");
    let store = Store::open(&path).unwrap();
    assert!(path.exists());
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    store.add_user(&user("alice")).unwrap();
    drop(store);

    let store = Store::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    assert!(store.get_user_by_name("alice").unwrap().is_some());

    let conn = raw(&path);
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        tables,
        ["audit", "bindings", "cdrs", "dids", "settings", "trunks", "users"]
    );
}

#[test]
fn concurrent_first_open_migrates_once() {
    // Server and CLI starting together on a fresh file: both must come up
    // on the same schema without SQLITE_BUSY or a double migration.
    for round in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("race{round}.db"));
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(4));
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let (path, barrier) = (path.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    let store = Store::open(&path).unwrap();
                    store.set_setting(&format!("opener.{i}"), "up").unwrap();
                    store.schema_version().unwrap()
                })
            })
            .collect();
        for handle in handles {
            assert_eq!(handle.join().unwrap(), SCHEMA_VERSION);
        }
        assert_eq!(
            Store::open(&path).unwrap().list_settings().unwrap().len(),
            4
        );
    }
}

#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    drop(Store::open(&path).unwrap());
    raw(&path)
        .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();

    let err = Store::open(&path).unwrap_err();
    match &err {
        Error::SchemaTooNew {
            found, supported, ..
        } => {
            assert_eq!(*found, SCHEMA_VERSION + 1);
            assert_eq!(*supported, SCHEMA_VERSION);
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
    assert!(err.to_string().contains("newer") || err.to_string().contains("upgrade"));
}

#[test]
fn wal_mode_is_active() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let store = Store::open(&path).unwrap();
    store.set_setting("k", "v").unwrap();
    // journal_mode=WAL is persistent, so a plain connection reports it.
    let mode: String = raw(&path)
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    assert!(dir.path().join("callgate.db-wal").exists());
}

#[test]
fn two_handles_see_each_others_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let server = Store::open(&path).unwrap();
    let cli = Store::open(&path).unwrap();

    let before = server.data_version().unwrap();
    assert_eq!(
        server.data_version().unwrap(),
        before,
        "stable without writes"
    );

    cli.add_user(&user("bob")).unwrap();
    let after = server.data_version().unwrap();
    assert_ne!(after, before, "another handle's commit moves data_version");
    assert_eq!(
        server.get_user_by_name("bob").unwrap().unwrap().username,
        "bob"
    );

    // The writer's own commits do not move its counter.
    let own = cli.data_version().unwrap();
    cli.set_setting("sip.realm", "example.com").unwrap();
    assert_eq!(cli.data_version().unwrap(), own);
    assert_ne!(server.data_version().unwrap(), after);
    assert_eq!(
        server.get_setting("sip.realm").unwrap().as_deref(),
        Some("example.com")
    );
}

#[test]
fn writer_waits_for_a_locked_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let store = Store::open(&path).unwrap();

    // Another process holds the write lock for a moment.
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let holder = {
        let path = path.clone();
        std::thread::spawn(move || {
            let conn = raw(&path);
            conn.execute_batch("BEGIN IMMEDIATE; INSERT INTO settings VALUES ('held', 'x', 0);")
                .unwrap();
            locked_tx.send(()).unwrap();
            std::thread::sleep(Duration::from_millis(300));
            conn.execute_batch("COMMIT").unwrap();
        })
    };
    locked_rx.recv().unwrap();
    let start = Instant::now();
    store.add_user(&user("carol")).unwrap();
    assert!(
        start.elapsed() >= Duration::from_millis(200),
        "should have waited"
    );
    holder.join().unwrap();
    assert_eq!(store.get_setting("held").unwrap().as_deref(), Some("x"));
}

#[test]
fn user_crud() {
    let store = Store::open_in_memory().unwrap();
    let mut new = user("alice");
    new.extension = Some("1001".into());
    new.display_name = Some("Alice A.".into());
    let alice = store.add_user(&new).unwrap();
    assert!(alice.enabled);
    assert_eq!(alice.created_at, alice.updated_at);
    assert_eq!(store.get_user_by_name("alice").unwrap().unwrap(), alice);
    assert_eq!(store.get_user_by_extension("1001").unwrap().unwrap(), alice);
    assert_eq!(store.find_user("1001").unwrap().unwrap().username, "alice");
    assert_eq!(store.find_user("alice").unwrap().unwrap().id, alice.id);
    assert!(store.find_user("nobody").unwrap().is_none());

    // Duplicates.
    assert!(matches!(
        store.add_user(&user("alice")),
        Err(Error::UserExists(name)) if name == "alice"
    ));
    let mut dup_ext = user("bob");
    dup_ext.extension = Some("1001".into());
    assert!(matches!(
        store.add_user(&dup_ext),
        Err(Error::ExtensionInUse { owner, .. }) if owner == "alice"
    ));
    // A numeric username may not shadow another user's extension.
    assert!(matches!(
        store.add_user(&user("1001")),
        Err(Error::ExtensionInUse { .. })
    ));

    // Invalid input names the field.
    for (bad, field) in [
        ("", "username"),
        ("has space", "username"),
        ("a@b", "username"),
        (&*"x".repeat(65), "username"),
    ] {
        let err = store.add_user(&user(bad)).unwrap_err();
        assert!(
            matches!(&err, Error::Invalid { field: f, .. } if *f == field),
            "{bad:?}: {err}"
        );
        assert!(err.to_string().contains(field));
    }
    let mut bad_ext = user("dave");
    bad_ext.extension = Some("12a".into());
    assert!(store
        .add_user(&bad_ext)
        .unwrap_err()
        .to_string()
        .contains("extension"));
    let mut bad_hash = user("dave");
    bad_hash.ha1_md5 = "ABCDEF".repeat(6)[..32].into();
    assert!(store
        .add_user(&bad_hash)
        .unwrap_err()
        .to_string()
        .contains("ha1_md5"));

    // Update.
    let updated = store
        .update_user(
            "alice",
            &UserUpdate {
                extension: Some(Some("1002".into())),
                display_name: Some(None),
                enabled: Some(false),
                max_calls: Some(Some(2)),
                ..UserUpdate::default()
            },
        )
        .unwrap();
    assert_eq!(updated.extension.as_deref(), Some("1002"));
    assert_eq!(updated.display_name, None);
    assert!(!updated.enabled);
    assert_eq!(updated.max_calls, Some(2));
    assert_eq!(store.get_user_by_name("alice").unwrap().unwrap(), updated);
    assert!(store.get_user_by_extension("1001").unwrap().is_none());
    assert!(matches!(
        store.update_user("ghost", &UserUpdate::default()),
        Err(Error::UserNotFound(_))
    ));

    // Password.
    let md5 = "f".repeat(32);
    let sha = "e".repeat(64);
    store
        .set_password("alice", &md5, &sha, "example.com")
        .unwrap();
    let alice = store.get_user_by_name("alice").unwrap().unwrap();
    assert_eq!(
        (alice.ha1_md5.as_str(), alice.realm.as_str()),
        (md5.as_str(), "example.com")
    );
    assert_eq!(alice.ha1_sha256, sha);
    assert!(matches!(
        store.set_password("ghost", &md5, &sha, "r"),
        Err(Error::UserNotFound(_))
    ));

    // List, filter, count, remove.
    for name in ["bob", "carol", "dave"] {
        store.add_user(&user(name)).unwrap();
    }
    let names = |users: Vec<store::User>| users.into_iter().map(|u| u.username).collect::<Vec<_>>();
    assert_eq!(
        names(store.list_users(None, 0, 100).unwrap()),
        ["alice", "bob", "carol", "dave"]
    );
    assert_eq!(
        names(store.list_users(None, 1, 2).unwrap()),
        ["bob", "carol"]
    );
    assert_eq!(
        names(store.list_users(Some("AR"), 0, 10).unwrap()),
        ["carol"]
    );
    assert_eq!(
        names(store.list_users(Some("100"), 0, 10).unwrap()),
        ["alice"]
    );
    assert!(
        store.list_users(Some("%"), 0, 10).unwrap().is_empty(),
        "wildcards are literal"
    );
    assert_eq!(store.count_users(None).unwrap(), 4);
    assert_eq!(store.count_users(Some("a")).unwrap(), 3);
    store.remove_user("bob").unwrap();
    assert!(matches!(
        store.remove_user("bob"),
        Err(Error::UserNotFound(_))
    ));
    assert_eq!(store.count_users(None).unwrap(), 3);
}

#[test]
fn binding_upsert_semantics() {
    let store = Store::open_in_memory().unwrap();
    let aor = "sip:alice@example.com";

    // Plain bindings are keyed by contact.
    let mut a = binding(aor, "sip:alice@198.51.100.1:5060");
    a.q = 500;
    assert_eq!(store.upsert_binding(&a).unwrap(), Upsert::Inserted);
    a.cseq = 2;
    assert_eq!(store.upsert_binding(&a).unwrap(), Upsert::Updated);
    let mut b = binding(aor, "sip:alice@198.51.100.2:5060");
    b.q = 100;
    assert_eq!(store.upsert_binding(&b).unwrap(), Upsert::Inserted);

    // Outbound bindings are keyed by instance and reg-id: a new contact
    // for the same flow replaces the old one.
    let mut c = binding(aor, "sip:x1@invalid;transport=ws");
    c.instance = Some("<urn:uuid:00000000-0000-0000-0000-000000000001>".into());
    c.reg_id = Some(1);
    c.path = vec!["<sip:edge1;lr>".into(), "<sip:edge2;lr;ob>".into()];
    c.flow_id = Some("flow-7".into());
    assert_eq!(store.upsert_binding(&c).unwrap(), Upsert::Inserted);
    let mut c2 = c.clone();
    c2.contact = "sip:x2@invalid;transport=ws".into();
    c2.call_id = "c2@host".into();
    assert_eq!(store.upsert_binding(&c2).unwrap(), Upsert::Updated);
    // Same instance, other reg-id: a second flow.
    let mut d = c.clone();
    d.reg_id = Some(2);
    d.q = 700;
    assert_eq!(store.upsert_binding(&d).unwrap(), Upsert::Inserted);
    // Same instance, no reg-id: distinct again.
    let mut e = c.clone();
    e.reg_id = None;
    e.q = 0;
    assert_eq!(store.upsert_binding(&e).unwrap(), Upsert::Inserted);
    assert_eq!(store.upsert_binding(&e).unwrap(), Upsert::Updated);

    let list = store.list_bindings(aor).unwrap();
    let qs: Vec<u16> = list.iter().map(|b| b.q).collect();
    assert_eq!(qs, [1000, 700, 500, 100, 0], "ordered by q");
    let flow = &list[0];
    assert_eq!(flow.contact, "sip:x2@invalid;transport=ws");
    assert_eq!(flow.call_id, "c2@host");
    assert_eq!(flow.path, c.path);
    assert_eq!(flow.transport, Transport::Wss);
    assert_eq!(
        flow.source,
        "[2001:db8::1]:50000".parse::<SocketAddr>().unwrap()
    );
    assert!(flow.updated_at > 0);
    assert_eq!(list[2].cseq, 2);
    assert!(list[3].path.is_empty());

    // Another AOR is separate.
    store
        .upsert_binding(&binding("sip:bob@example.com", &a.contact))
        .unwrap();
    assert_eq!(store.list_bindings(aor).unwrap().len(), 5);
    assert_eq!(store.list_all_bindings().unwrap().len(), 6);

    // Removal by key.
    assert!(store.remove_binding(aor, c2.key()).unwrap());
    assert!(!store.remove_binding(aor, c2.key()).unwrap());
    assert!(store
        .remove_binding(aor, BindingKey::Contact(&b.contact))
        .unwrap());
    assert_eq!(store.list_bindings(aor).unwrap().len(), 3);
    assert_eq!(store.remove_all_bindings(aor).unwrap(), 3);
    assert!(store.list_bindings(aor).unwrap().is_empty());
    assert_eq!(store.list_all_bindings().unwrap().len(), 1);

    // Validation.
    let mut bad = binding(aor, "sip:z@h");
    bad.q = 1001;
    assert!(store
        .upsert_binding(&bad)
        .unwrap_err()
        .to_string()
        .contains("q"));
    let mut bad = binding(aor, "sip:z@h");
    bad.path = vec!["<sip:a;lr>\n<sip:b;lr>".into()];
    assert!(store
        .upsert_binding(&bad)
        .unwrap_err()
        .to_string()
        .contains("path"));
}

#[test]
fn purge_expired_bindings() {
    let store = Store::open_in_memory().unwrap();
    for (i, expires_at) in [100, 200, 300].into_iter().enumerate() {
        let mut b = binding("sip:a@h", &format!("sip:a@10.0.0.{i}"));
        b.expires_at = expires_at;
        store.upsert_binding(&b).unwrap();
    }
    assert_eq!(store.purge_expired(99).unwrap(), 0);
    assert_eq!(
        store.purge_expired(200).unwrap(),
        2,
        "expires_at == now is expired"
    );
    let left = store.list_bindings("sip:a@h").unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].expires_at, 300);
}

#[test]
fn settings_and_atomic_batches() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let store = Store::open(&path).unwrap();
    assert_eq!(store.get_setting("sip.realm").unwrap(), None);
    store.set_setting("sip.realm", "a.example").unwrap();
    store.set_setting("sip.realm", "b.example").unwrap();
    assert_eq!(
        store.get_setting("sip.realm").unwrap().as_deref(),
        Some("b.example")
    );
    assert!(store.delete_setting("sip.realm").unwrap());
    assert!(!store.delete_setting("sip.realm").unwrap());

    store
        .set_settings([("media.port_min", "20000"), ("media.port_max", "30000")])
        .unwrap();
    let before = store.list_settings().unwrap();
    assert_eq!(
        before,
        [
            ("media.port_max".to_owned(), "30000".to_owned()),
            ("media.port_min".to_owned(), "20000".to_owned()),
        ]
    );

    // The bad key comes after entries that were already written inside the
    // transaction; all of them must be rolled back.
    let err = store
        .set_settings([
            ("media.port_min", "40000"),
            ("media.new", "x"),
            ("bad key", "y"),
            ("media.port_max", "50000"),
        ])
        .unwrap_err();
    assert!(err.to_string().contains("setting key"), "{err}");
    assert_eq!(store.list_settings().unwrap(), before);
    // Also as seen from another connection.
    let other = Store::open(&path).unwrap();
    assert_eq!(other.list_settings().unwrap(), before);
    // And the handle is still usable (no transaction left open).
    store.set_setting("after", "ok").unwrap();
    assert_eq!(other.get_setting("after").unwrap().as_deref(), Some("ok"));
}

#[test]
fn data_survives_drop_without_close() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    {
        let store = Store::open(&path).unwrap();
        store.add_user(&user("alice")).unwrap();
        store
            .upsert_binding(&binding("sip:alice@h", "sip:alice@10.0.0.1"))
            .unwrap();
        store.set_setting("k", "v").unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert!(store.get_user_by_name("alice").unwrap().is_some());
    assert_eq!(store.list_bindings("sip:alice@h").unwrap().len(), 1);
    assert_eq!(store.get_setting("k").unwrap().as_deref(), Some("v"));
}

const CRASH_DB: &str = "STORE_TEST_CRASH_DB";

/// Child half of `data_survives_process_abort`: writes, then aborts with the
/// WAL not checkpointed and the connection never closed.
#[test]
fn crash_child() {
    let Some(path) = std::env::var_os(CRASH_DB) else {
        return;
    };
    let store = Store::open(Path::new(&path)).unwrap();
    store.add_user(&user("survivor")).unwrap();
    store.set_settings([("a", "1"), ("b", "2")]).unwrap();
    std::process::abort();
}

#[test]
fn data_survives_process_abort() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(CRASH_DB, &path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "child should have aborted");
    assert!(
        dir.path().join("callgate.db-wal").exists(),
        "WAL left behind"
    );

    let store = Store::open(&path).unwrap();
    assert!(store.get_user_by_name("survivor").unwrap().is_some());
    assert_eq!(store.get_setting("b").unwrap().as_deref(), Some("2"));
}
