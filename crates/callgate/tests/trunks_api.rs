//! Trunks, DIDs and CDRs end to end: the real `callgate` binary on a
//! throw-away data dir, its SQLite file, its CLI and its JSON API over
//! HTTPS (see `common`).
//!
//! - [`config_trunks_and_dids_show_in_the_api_and_cli`]: `[[trunks]]` and
//!   `[[dids]]` of the config file are in the store at start, shown by the
//!   API (password never, `has_password` yes) and by `trunk list` /
//!   `did list`; `print-config` masks the trunk password.
//! - [`api_manages_trunks_and_dids`]: create, update, rename and delete a
//!   trunk, add and remove a DID; bad values are 400s naming the field, a
//!   clash or a trunk in use 409, a missing one 404.
//! - [`cdrs_export_from_cli_and_api`]: CDRs written into the store come out
//!   of `callgate cdr export` (stdout and `--output`) and of
//!   `/api/v1/cdrs.csv` alike, with the same filters.
//! - [`bad_trunk_config_is_refused_naming_the_field`]: bad `[[trunks]]`
//!   and `[[dids]]` values stop the server before it creates anything, and
//!   a DID routed to a user that does not exist stops it at provisioning.
//!
//! Trunk hosts are loopback addresses with ports held by the test, so
//! whatever the gateway sends to a trunk stays on this machine.

mod common;

use common::{api, free_tcp_port, free_udp_port, run_with_config, Site};

/// A UDP socket standing in for a provider: it holds the port so nothing
/// else answers there, and receives whatever the gateway sends.
fn provider() -> (std::net::UdpSocket, u16) {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind provider");
    let port = sock.local_addr().unwrap().port();
    (sock, port)
}

const STATES: [&str; 4] = ["disabled", "registering", "registered", "failed"];

/// The registration state, when present, is one of the documented ones.
fn check_state(trunk: &serde_json::Value) {
    if let Some(state) = trunk.get("registration_state") {
        let s = state["state"].as_str().unwrap_or_default();
        assert!(STATES.contains(&s), "registration_state {state}");
        assert!(state["active_calls"].is_u64(), "{state}");
    }
}

#[tokio::test]
async fn config_trunks_and_dids_show_in_the_api_and_cli() {
    let (_provider, port) = provider();
    let config = format!(
        "[[users]]\nname = \"alice\"\npassword = \"alice-secret\"\n\
         [[trunks]]\n\
         name = \"carrier\"\n\
         host = \"127.0.0.1\"\n\
         port = {port}\n\
         username = \"acct-1\"\n\
         password = \"trunk-pass-1\"\n\
         caller_id = \"+4930999\"\n\
         inbound_trust = [\"127.0.0.0/8\"]\n\
         dial_patterns = [\"0[1-9]\", \"+\"]\n\
         number_rules = [\"00>+\", \"0>+49\"]\n\
         max_calls = 2\n\
         [[dids]]\nnumber = \"+4930100\"\ntrunk = \"carrier\"\nuser = \"alice\"\n"
    );
    let mut site = Site::new(&config);
    let server = site.start().await;
    let token = site.token();

    let a = api(&site, "GET", "/api/v1/trunks", Some(&token), None).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert!(
        !a.body.contains("trunk-pass-1"),
        "password shown: {}",
        a.body
    );
    let list = a.json();
    let trunks = list["trunks"].as_array().expect("trunks array");
    assert_eq!(trunks.len(), 1, "{list}");
    let t = &trunks[0];
    assert_eq!(t["name"], "carrier");
    assert_eq!(t["host"], "127.0.0.1");
    assert_eq!(t["port"], port);
    assert_eq!(t["transport"], "udp");
    assert_eq!(t["register"], false);
    assert_eq!(t["username"], "acct-1");
    assert_eq!(t["has_password"], true);
    assert!(t.get("password").is_none(), "{t}");
    assert_eq!(t["caller_id"], "+4930999");
    assert_eq!(t["inbound_trust"], serde_json::json!(["127.0.0.0/8"]));
    assert_eq!(t["dial_patterns"], serde_json::json!(["0[1-9]", "+"]));
    assert_eq!(t["number_rules"], serde_json::json!(["00>+", "0>+49"]));
    assert_eq!(t["max_calls"], 2);
    assert_eq!(t["enabled"], true);
    check_state(t);

    let a = api(&site, "GET", "/api/v1/trunks/carrier", Some(&token), None).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert!(!a.body.contains("trunk-pass-1"));
    check_state(&a.json());

    let a = api(&site, "GET", "/api/v1/dids", Some(&token), None).await;
    assert_eq!(a.status, 200, "{a:?}");
    let dids = a.json();
    assert_eq!(dids["dids"].as_array().map(Vec::len), Some(1), "{}", a.body);
    assert_eq!(dids["dids"][0]["number"], "+4930100");
    assert_eq!(dids["dids"][0]["trunk"], "carrier");
    assert_eq!(dids["dids"][0]["user"], "alice");

    let out = site.cli(&["trunk", "list"]);
    let listing = String::from_utf8_lossy(&out.stdout);
    let row = listing
        .lines()
        .find(|l| l.split_whitespace().next() == Some("carrier"))
        .unwrap_or_else(|| panic!("carrier not in `trunk list`:\n{listing}"));
    assert!(row.contains(&format!("127.0.0.1:{port}")), "{row}");
    assert!(!listing.contains("trunk-pass-1"), "{listing}");
    let out = site.cli(&["did", "list"]);
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        listing.lines().any(|l| {
            l.split_whitespace().collect::<Vec<_>>() == ["+4930100", "carrier", "alice"]
        }),
        "`did list`:\n{listing}"
    );
    let out = site.cli(&["print-config"]);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("[[trunks]]"), "{shown}");
    assert!(
        !shown.contains("trunk-pass-1"),
        "password printed:\n{shown}"
    );
    assert!(
        !site.log().contains("trunk-pass-1"),
        "password in the server's output:\n{}",
        site.log()
    );

    server.stop(&site).await;

    // A restart applies the same config again without complaint.
    let server = site.start().await;
    let a = api(&site, "GET", "/api/v1/trunks", Some(&token), None).await;
    assert_eq!(a.json()["trunks"].as_array().map(Vec::len), Some(1));
    server.stop(&site).await;
}

#[tokio::test]
async fn api_manages_trunks_and_dids() {
    let (_provider, port) = provider();
    let mut site = Site::new("[[users]]\nname = \"bob\"\npassword = \"bob-secret-2\"\n");
    let server = site.start().await;
    let token = site.token();
    let post = |path: &'static str, body: String| {
        let (site, token) = (&site, &token);
        async move { api(site, "POST", path, Some(token), Some(&body)).await }
    };

    // No token, no trunks.
    let a = api(&site, "GET", "/api/v1/trunks", None, None).await;
    assert_eq!(a.status, 401, "{a:?}");

    let created = post(
        "/api/v1/trunks",
        format!(
            r#"{{"name":"backup","host":"127.0.0.1","port":{port},"transport":"tcp",
                "username":"acct-2","password":"api-trunk-pass","dial_patterns":["00"]}}"#
        ),
    )
    .await;
    assert_eq!(created.status, 201, "{created:?}");
    assert!(!created.body.contains("api-trunk-pass"), "{}", created.body);
    let t = created.json();
    assert_eq!(t["has_password"], true);
    assert_eq!(t["transport"], "tcp");
    assert_eq!(t["port"], port);

    let clash = post(
        "/api/v1/trunks",
        r#"{"name":"backup","host":"127.0.0.1"}"#.into(),
    )
    .await;
    assert_eq!(clash.status, 409, "{clash:?}");
    assert!(clash.json()["error"].is_string());

    for (body, field) in [
        (
            r#"{"name":"t3","host":"127.0.0.1","transport":"carrier-pigeon"}"#,
            "transport",
        ),
        (
            r#"{"name":"t3","host":"127.0.0.1","inbound_trust":["10.1.2.3/8"]}"#,
            "inbound_trust",
        ),
        (r#"{"name":"t3","host":"127.0.0.1","secret":"x"}"#, "secret"),
    ] {
        let a = post("/api/v1/trunks", body.into()).await;
        assert_eq!(a.status, 400, "{body}: {a:?}");
        assert_eq!(a.json()["field"], field, "{body}: {}", a.body);
        assert!(a.json()["error"].is_string(), "{}", a.body);
    }

    // PUT changes what it names and keeps the rest, password included.
    let a = api(
        &site,
        "PUT",
        "/api/v1/trunks/backup",
        Some(&token),
        Some(r#"{"transport":"udp","max_calls":5,"caller_id":"user"}"#),
    )
    .await;
    assert_eq!(a.status, 200, "{a:?}");
    let t = a.json();
    assert_eq!(t["transport"], "udp");
    assert_eq!(t["max_calls"], 5);
    assert_eq!(t["caller_id"], "user");
    assert_eq!(t["dial_patterns"], serde_json::json!(["00"]));
    assert_eq!(t["has_password"], true);
    let a = api(
        &site,
        "PUT",
        "/api/v1/trunks/backup",
        Some(&token),
        Some(r#"{"transport":"sctp"}"#),
    )
    .await;
    assert_eq!(a.status, 400, "{a:?}");
    assert_eq!(a.json()["field"], "transport");
    let a = api(
        &site,
        "PUT",
        "/api/v1/trunks/missing",
        Some(&token),
        Some(r#"{"port":5062}"#),
    )
    .await;
    assert_eq!(a.status, 404, "{a:?}");
    let a = api(
        &site,
        "PUT",
        "/api/v1/trunks/backup",
        Some(&token),
        Some(r#"{"password":"changed-pass"}"#),
    )
    .await;
    assert_eq!(a.status, 200, "{a:?}");
    assert!(!a.body.contains("changed-pass"), "{}", a.body);
    // The new password is stored (the API never shows it).
    let secret = store::Store::open(&site.db_path())
        .unwrap()
        .trunk_secret("backup")
        .unwrap();
    assert_eq!(secret.as_deref(), Some("changed-pass"));

    // A DID pins its trunk.
    let did = post(
        "/api/v1/dids",
        r#"{"number":"+4940200","trunk":"backup","user":"bob"}"#.into(),
    )
    .await;
    assert_eq!(did.status, 201, "{did:?}");
    assert_eq!(did.json()["user"], "bob");
    let again = post(
        "/api/v1/dids",
        r#"{"number":"+4940200","trunk":"backup","user":"bob"}"#.into(),
    )
    .await;
    assert_eq!(again.status, 409, "{again:?}");
    let bad = post(
        "/api/v1/dids",
        r#"{"number":"49-40","trunk":"backup","user":"bob"}"#.into(),
    )
    .await;
    assert_eq!(bad.status, 400, "{bad:?}");
    assert_eq!(bad.json()["field"], "number");
    let a = api(&site, "GET", "/api/v1/dids", Some(&token), None).await;
    assert_eq!(a.json()["dids"][0]["number"], "+4940200", "{}", a.body);
    let out = site.cli(&["did", "list", "--trunk", "backup"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("+4940200"));

    let a = api(&site, "DELETE", "/api/v1/trunks/backup", Some(&token), None).await;
    assert_eq!(a.status, 409, "in use by the DID: {a:?}");
    let a = api(&site, "DELETE", "/api/v1/dids/+4940200", Some(&token), None).await;
    assert_eq!(a.status, 204, "{a:?}");
    let a = api(&site, "DELETE", "/api/v1/dids/+4940200", Some(&token), None).await;
    assert_eq!(a.status, 404, "{a:?}");

    // Renamed, then removed.
    let a = api(
        &site,
        "PUT",
        "/api/v1/trunks/backup",
        Some(&token),
        Some(r#"{"name":"backup-2"}"#),
    )
    .await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.json()["name"], "backup-2");
    let a = api(
        &site,
        "DELETE",
        "/api/v1/trunks/backup-2",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(a.status, 204, "{a:?}");
    let a = api(&site, "GET", "/api/v1/trunks/backup-2", Some(&token), None).await;
    assert_eq!(a.status, 404, "{a:?}");
    assert!(a.json()["error"].is_string());
    let a = api(&site, "GET", "/api/v1/trunks", Some(&token), None).await;
    assert_eq!(a.json()["trunks"], serde_json::json!([]), "{}", a.body);

    server.stop(&site).await;
}

fn cdr(
    call_id: &str,
    started_at: i64,
    direction: store::Direction,
    caller_user: Option<&str>,
    answered: bool,
) -> store::Cdr {
    store::Cdr {
        id: 0,
        call_id: call_id.into(),
        started_at,
        answered_at: answered.then_some(started_at + 3),
        ended_at: started_at + 93,
        caller: "\"Smith, \"\"Jo\"\"\" <sip:jo@example.com>".into(),
        callee: "+4930555".into(),
        caller_user: caller_user.map(Into::into),
        callee_user: None,
        direction,
        disposition: if answered {
            store::Disposition::Answered
        } else {
            store::Disposition::Busy
        },
        duration_secs: if answered { 90 } else { 0 },
        trunk: Some("carrier".into()),
        caller_media: answered.then_some(store::MediaStats {
            rx_packets: 4500,
            tx_packets: 4490,
            rx_bytes: 774_000,
            tx_bytes: 772_280,
            lost_packets: 10,
            jitter_ms: 2.5,
        }),
        callee_media: None,
    }
}

/// Splits RFC 4180 text into records of fields.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\r') if chars.peek() == Some(&'\n') => {
                chars.next();
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, c) => field.push(c),
        }
    }
    assert!(field.is_empty() && record.is_empty(), "unterminated record");
    records
}

#[tokio::test]
async fn cdrs_export_from_cli_and_api() {
    let mut site = Site::new("");
    // 2024-06-01T00:00:00Z and later.
    let t0 = 1_717_200_000;
    {
        std::fs::create_dir_all(site.data_dir()).unwrap();
        let s = store::Store::open(&site.db_path()).unwrap();
        s.insert_cdr(&cdr(
            "c1@x",
            t0 - 86_400,
            store::Direction::Outbound,
            Some("alice"),
            true,
        ))
        .unwrap();
        s.insert_cdr(&cdr(
            "c2@x",
            t0 + 60,
            store::Direction::Inbound,
            None,
            false,
        ))
        .unwrap();
    }
    let server = site.start().await;
    // One more while the server runs: the CLI and the API share the file.
    store::Store::open(&site.db_path())
        .unwrap()
        .insert_cdr(&cdr(
            "c3@x",
            t0 + 86_400,
            store::Direction::Outbound,
            Some("alice"),
            true,
        ))
        .unwrap();
    let token = site.token();

    let all = site.cli(&["cdr", "export"]);
    let text = String::from_utf8(all.stdout).unwrap();
    let rows = parse_csv(&text);
    assert_eq!(rows.len(), 4, "header and 3 rows:\n{text}");
    let header = &rows[0];
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name} in {header:?}"))
    };
    let ids: Vec<&str> = rows[1..]
        .iter()
        .map(|r| r[col("call_id")].as_str())
        .collect();
    assert_eq!(ids, ["c1@x", "c2@x", "c3@x"], "oldest first");
    assert_eq!(
        rows[1][col("caller")],
        "\"Smith, \"\"Jo\"\"\" <sip:jo@example.com>"
    );
    assert_eq!(rows[1][col("direction")], "outbound");
    assert_eq!(rows[1][col("disposition")], "answered");
    assert_eq!(rows[1][col("duration_secs")], "90");
    assert_eq!(rows[1][col("caller_rx_packets")], "4500");
    assert_eq!(rows[2][col("disposition")], "busy");
    assert_eq!(rows[2][col("answered_at")], "");
    assert_eq!(rows[2][col("caller_user")], "");

    // The same window from the CLI (both time forms) and the API.
    let window = site.cli(&[
        "cdr",
        "export",
        "--since",
        "2024-06-01",
        "--until",
        &(t0 + 86_400).to_string(),
    ]);
    let window = String::from_utf8(window.stdout).unwrap();
    let rows = parse_csv(&window);
    assert_eq!(rows.len(), 2, "{window}");
    assert_eq!(rows[1][col("call_id")], "c2@x");
    let a = api(
        &site,
        "GET",
        &format!(
            "/api/v1/cdrs.csv?from=2024-06-01T02:00:00%2B02:00&to={}",
            t0 + 86_400
        ),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(a.status, 200, "{a:?}");
    assert!(
        a.header("content-type")
            .is_some_and(|t| t.starts_with("text/csv")),
        "{a:?}"
    );
    assert_eq!(a.body, window, "API and CLI give the same CSV");
    let a = api(&site, "GET", "/api/v1/cdrs.csv", Some(&token), None).await;
    assert_eq!(a.body, text);

    // --output writes a file; filters by user and direction.
    let file = site.dir.path().join("alice.csv");
    let out = site.cli(&[
        "cdr",
        "export",
        "--user",
        "alice",
        "--direction",
        "outbound",
        "--since",
        "2024-06-01T00:00:00Z",
        "--output",
        file.to_str().unwrap(),
    ]);
    assert!(out.stdout.is_empty(), "CSV went to the file only");
    let written = std::fs::read_to_string(&file).unwrap();
    let rows = parse_csv(&written);
    assert_eq!(rows.len(), 2, "{written}");
    assert_eq!(rows[1][col("call_id")], "c3@x");
    let out = site.cli_status(&["cdr", "export", "--since", "last tuesday"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--since"),
        "{out:?}"
    );

    // The JSON list pages and counts.
    let a = api(
        &site,
        "GET",
        "/api/v1/cdrs?user=alice&limit=1",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(a.status, 200, "{a:?}");
    let j = a.json();
    assert_eq!(j["total"], 2, "{j}");
    assert_eq!(j["cdrs"].as_array().map(Vec::len), Some(1));
    assert_eq!(j["cdrs"][0]["call_id"], "c3@x", "newest first");
    assert_eq!(j["cdrs"][0]["caller_media"]["lost_packets"], 10);
    let a = api(
        &site,
        "GET",
        "/api/v1/cdrs?direction=up",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(a.status, 400, "{a:?}");
    assert_eq!(a.json()["field"], "direction");
    let a = api(&site, "GET", "/api/v1/cdrs.csv", None, None).await;
    assert_eq!(a.status, 401, "{a:?}");

    server.stop(&site).await;
}

#[test]
fn bad_trunk_config_is_refused_naming_the_field() {
    let listeners = format!(
        "[sip]\nudp = [\"127.0.0.1:{}\"]\ntcp = []\ntls = []\nwss = []\n\
         [media]\nadvertised_address = \"127.0.0.1\"\n\
         [admin]\nlisten = \"127.0.0.1:{}\"\n",
        free_udp_port(),
        free_tcp_port()
    );
    let trunk = "[[trunks]]\nname = \"carrier\"\nhost = \"127.0.0.1\"\n";
    let cases: &[(String, &str, &[&str])] = &[
        (
            format!("{trunk}transport = \"sctp\"\n"),
            "trunks[0].transport",
            &[],
        ),
        (
            format!("{trunk}{trunk}register = true\n"),
            "trunks[1].username",
            &[],
        ),
        (
            format!("{trunk}number_rules = [\"0049\"]\n"),
            "trunks[0].number_rules",
            &[],
        ),
        (format!("{trunk}passwd = \"x\"\n"), "passwd", &[]),
        (
            "[[dids]]\nnumber = \"49 30\"\ntrunk = \"carrier\"\nuser = \"alice\"\n".into(),
            "dids[0].number",
            &[],
        ),
        (
            "[media]\ntimeout_secs = 1\n".into(),
            "media.timeout_secs",
            &[],
        ),
        // The CLI refuses the same file.
        (
            format!("{trunk}transport = \"sctp\"\n"),
            "trunks[0].transport",
            &["trunk", "list"],
        ),
    ];
    for (bad, field, args) in cases {
        // A `[media]` case replaces the one of the listeners.
        let base = if bad.starts_with("[media]") {
            listeners.replace("[media]\nadvertised_address = \"127.0.0.1\"\n", "")
        } else {
            listeners.clone()
        };
        let (code, stderr, created) = run_with_config(&format!("{base}{bad}"), args);
        assert!(
            code.is_some_and(|c| c != 0),
            "exit code {code:?} for {bad:?} (args {args:?}); stderr: {stderr}"
        );
        assert!(
            stderr.contains(field),
            "stderr must name `{field}` for {bad:?} (args {args:?}): {stderr}"
        );
        assert!(
            !created,
            "a refused configuration must not create the data dir"
        );
    }

    // Valid syntax, but the DID's user does not exist: refused when
    // provisioning, naming the table.
    let (code, stderr, _) = run_with_config(
        &format!(
            "{listeners}{trunk}\
             [[dids]]\nnumber = \"+4930100\"\ntrunk = \"carrier\"\nuser = \"nobody\"\n"
        ),
        &[],
    );
    assert!(code.is_some_and(|c| c != 0), "{code:?}: {stderr}");
    assert!(stderr.contains("dids[0]"), "{stderr}");
    assert!(stderr.contains("nobody"), "{stderr}");
}
