//! Digest authentication: RFC vectors, SIP usage, stateless nonces, parsing.

// Wrapped so `cargo test -p sip digest` selects these by path.
mod digest {
    use std::borrow::Cow;

    use sip::digest::{
        authorize, format_challenge, format_challenges, ha1, ha2, parse_challenge,
        parse_credentials, response, response_legacy, select_challenge, session_ha1, verify,
        Algorithm, AuthOutcome, Challenge, DigestError, NonceCheck, NonceSigner, Qop, Secret,
        StoredHa1, MAX_HEADER_LEN, MAX_PARAMS, NONCE_FUTURE_SKEW_SECS,
    };

    // RFC 7616 §3.9.1 (errata 4495: lowercase "of").
    const RFC7616_REALM: &str = "http-auth@example.org";
    const RFC7616_NONCE: &str = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
    const RFC7616_OPAQUE: &str = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS";
    const RFC7616_CNONCE: &str = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
    const RFC7616_PASSWORD: &str = "Circle of Life";
    const RFC7616_MD5: &str = "8ca523f5e9506fed4657c9700eebdbec";
    const RFC7616_SHA256: &str = "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1";

    fn rfc7616_challenge(alg: &str) -> String {
        format!(
            "Digest\n       realm=\"{RFC7616_REALM}\",\n       qop=\"auth, auth-int\",\n       \
         algorithm={alg},\n       nonce=\"{RFC7616_NONCE}\",\n       opaque=\"{RFC7616_OPAQUE}\""
        )
    }

    fn rfc7616_authorization(alg: &str, resp: &str) -> String {
        format!(
        "Digest username=\"Mufasa\",\n       realm=\"{RFC7616_REALM}\",\n       \
         uri=\"/dir/index.html\",\n       algorithm={alg},\n       nonce=\"{RFC7616_NONCE}\",\n       \
         nc=00000001,\n       cnonce=\"{RFC7616_CNONCE}\",\n       qop=auth,\n       \
         response=\"{resp}\",\n       opaque=\"{RFC7616_OPAQUE}\""
    )
    }

    fn check_rfc7616(alg: Algorithm, alg_name: &str, expected: &str) {
        // Math.
        let h1 = ha1(alg, "Mufasa", RFC7616_REALM, RFC7616_PASSWORD);
        let h2 = ha2(alg, "GET", "/dir/index.html");
        let r = response(
            alg,
            &h1,
            RFC7616_NONCE,
            "00000001",
            RFC7616_CNONCE,
            Qop::Auth,
            &h2,
        );
        assert_eq!(r, expected);

        // Server: parse the RFC's Authorization header and verify it.
        let header = rfc7616_authorization(alg_name, expected);
        let creds = parse_credentials(&header).unwrap();
        assert_eq!(creds.username, "Mufasa");
        assert_eq!(creds.algorithm, alg);
        assert_eq!(creds.qop, Some(Qop::Auth));
        assert_eq!(creds.nonce_count(), Some(1));
        assert_eq!(creds.opaque.as_deref(), Some(RFC7616_OPAQUE));
        assert!(verify(&creds, "GET", &h1));
        assert!(!verify(&creds, "POST", &h1));
        let stored = StoredHa1::from_password("Mufasa", RFC7616_REALM, RFC7616_PASSWORD);
        assert!(verify(&creds, "GET", stored.get(alg)));
        let wrong = StoredHa1::from_password("Mufasa", RFC7616_REALM, "Circle Of Life");
        assert!(!verify(&creds, "GET", wrong.get(alg)));

        // Client: answer the RFC's challenge and get the RFC's response.
        let challenge_text = rfc7616_challenge(alg_name);
        let challenge = parse_challenge(&challenge_text).unwrap();
        assert_eq!(challenge.algorithm, alg);
        assert!(challenge.offers(Qop::Auth) && challenge.offers(Qop::AuthInt));
        let out = authorize(
            &challenge,
            "GET",
            "/dir/index.html",
            "Mufasa",
            Secret::Password(RFC7616_PASSWORD),
            RFC7616_CNONCE,
            1,
        )
        .unwrap();
        let back = parse_credentials(&out).unwrap();
        assert_eq!(back, creds);
        assert!(out.contains(&format!("response=\"{expected}\"")), "{out}");
        assert!(out.contains("qop=auth, nc=00000001"), "{out}");
    }

    #[test]
    fn rfc7616_md5_example() {
        check_rfc7616(Algorithm::Md5, "MD5", RFC7616_MD5);
    }

    #[test]
    fn rfc7616_sha256_example() {
        check_rfc7616(Algorithm::Sha256, "SHA-256", RFC7616_SHA256);
    }

    #[test]
    fn rfc2617_example_with_qop() {
        let header = r#"Digest username="Mufasa",
                 realm="testrealm@host.com",
                 nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
                 uri="/dir/index.html",
                 qop=auth,
                 nc=00000001,
                 cnonce="0a4f113b",
                 response="6629fae49393a05397450978507c4ef1",
                 opaque="5ccc069c403ebaf9f0171e9517f40e41""#;
        let creds = parse_credentials(header).unwrap();
        assert_eq!(
            creds.algorithm,
            Algorithm::Md5,
            "absent algorithm means MD5"
        );
        let h1 = ha1(
            Algorithm::Md5,
            "Mufasa",
            "testrealm@host.com",
            "Circle Of Life",
        );
        assert!(verify(&creds, "GET", &h1));
        // Uppercase stored HA1 or response hex still matches.
        assert!(verify(&creds, "GET", &h1.to_ascii_uppercase()));
        let upper = header.replace(
            "6629fae49393a05397450978507c4ef1",
            "6629FAE49393A05397450978507C4EF1",
        );
        assert!(verify(&parse_credentials(&upper).unwrap(), "GET", &h1));
    }

    #[test]
    fn rfc2069_legacy_without_qop() {
        // RFC 2069's printed response is a known erratum; this is the value every
        // implementation agrees on for password "CircleOfLife".
        let h1 = ha1(
            Algorithm::Md5,
            "Mufasa",
            "testrealm@host.com",
            "CircleOfLife",
        );
        let h2 = ha2(Algorithm::Md5, "GET", "/dir/index.html");
        let nonce = "dcd98b7102dd2f0e8b11d0f600bfb0c093";
        assert_eq!(
            response_legacy(Algorithm::Md5, &h1, nonce, &h2),
            "1949323746fe6a43ef61f9606e7febea"
        );

        let challenge = parse_challenge(
        r#"Digest realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41""#,
    )
    .unwrap();
        assert_eq!(challenge.qop, None);
        let out = authorize(
            &challenge,
            "GET",
            "/dir/index.html",
            "Mufasa",
            Secret::Password("CircleOfLife"),
            "unused",
            1,
        )
        .unwrap();
        assert!(!out.contains("qop=") && !out.contains("nc=") && !out.contains("cnonce="));
        let creds = parse_credentials(&out).unwrap();
        assert_eq!(creds.response, "1949323746fe6a43ef61f9606e7febea");
        assert!(verify(&creds, "GET", &h1));
    }

    // Expected values computed independently with Python's hashlib.
    #[test]
    fn sip_register_example() {
        let realm = "atlanta.example.com";
        let nonce = "ea9c8e88df84f1cec4341ae6cbe5a359";
        let stored = StoredHa1::from_password("alice", realm, "correct horse");
        assert_eq!(stored.md5, "ffd439a715f0d4951cfa063b0f8b25e2");
        assert_eq!(
            stored.sha256,
            "457546d4540b7705a55d7c032899542e5da8c616de8c70399f100122e2da3e12"
        );
        for (alg, expected) in [
            (Algorithm::Md5, "3a9ab9842669d52a03001ae0be9bc09a"),
            (
                Algorithm::Sha256,
                "72077e9548ff04a5d1606b09d68233ad4fd5b01fb63fd69d655ca17583a951bc",
            ),
            (Algorithm::Md5Sess, "073978664948fde86e3f0b474b8c1f9c"),
            (
                Algorithm::Sha256Sess,
                "2eaebd52208c3ad99e84d92be7484691a8bc7957d15a858251ee89d9d2c8ed15",
            ),
        ] {
            let challenge = format_challenge(realm, nonce, alg, None, false);
            let challenge = parse_challenge(&challenge).unwrap();
            let header = authorize(
                &challenge,
                "REGISTER",
                "sip:atlanta.example.com",
                "alice",
                Secret::Ha1(&stored),
                "0a4f113b",
                42,
            )
            .unwrap();
            let creds = parse_credentials(&header).unwrap();
            assert_eq!(creds.response, expected, "{alg}");
            assert_eq!(creds.nc.as_deref(), Some("0000002a"));
            assert!(verify(&creds, "REGISTER", stored.get(alg)), "{alg}");
            assert!(!verify(&creds, "INVITE", stored.get(alg)), "{alg}");
            // The wrong hash's HA1 never verifies.
            let other = if alg.hex_len() == 32 {
                &stored.sha256
            } else {
                &stored.md5
            };
            assert!(!verify(&creds, "REGISTER", other));
            // Password and stored HA1 give the same header.
            let with_password = authorize(
                &challenge,
                "REGISTER",
                "sip:atlanta.example.com",
                "alice",
                Secret::Password("correct horse"),
                "0a4f113b",
                42,
            )
            .unwrap();
            assert_eq!(header, with_password);
        }
        let sess = session_ha1(Algorithm::Md5Sess, &stored.md5, nonce, "0a4f113b");
        assert_eq!(sess.len(), 32);
    }

    #[test]
    fn verify_rejects_unsupported_or_incomplete() {
        let h1 = ha1(Algorithm::Md5, "u", "r", "p");
        let base = r#"Digest username="u", realm="r", nonce="n", uri="sip:r", response="00000000000000000000000000000000", cnonce="c", nc=00000001"#;
        let auth_int = format!("{base}, qop=auth-int");
        let creds = parse_credentials(&auth_int).unwrap();
        assert_eq!(creds.qop, Some(Qop::AuthInt));
        assert!(!verify(&creds, "REGISTER", &h1));
        // -sess without cnonce cannot be computed.
        let sess = r#"Digest username="u", realm="r", nonce="n", uri="sip:r", response="x", algorithm=MD5-sess"#;
        assert!(!verify(&parse_credentials(sess).unwrap(), "REGISTER", &h1));
        // Wrong-length HA1.
        let ok = authorize(
            &parse_challenge(r#"Digest realm="r", nonce="n", qop="auth""#).unwrap(),
            "REGISTER",
            "sip:r",
            "u",
            Secret::Password("p"),
            "c",
            1,
        )
        .unwrap();
        let creds = parse_credentials(&ok).unwrap();
        assert!(verify(&creds, "REGISTER", &h1));
        assert!(!verify(&creds, "REGISTER", &h1[..31]));
        assert!(!verify(&creds, "REGISTER", ""));
    }

    // ---------------------------------------------------------------------------
    // Nonces

    const SECRET: [u8; 32] = [0x42; 32];
    const T0: u64 = 1_700_000_000;

    #[test]
    fn nonce_known_answer() {
        // Pins the wire format so nodes of different versions agree. Computed
        // with Python's hmac module.
        let key: [u8; 32] = std::array::from_fn(|i| i as u8);
        let nonce = NonceSigner::new(key).issue(T0, [0xa5; 8]);
        assert_eq!(nonce, "AAAAAGVT8QClpaWlpaWlpdqJqoX-65XfRM_Nm3D4qhI");
    }

    #[test]
    fn nonce_lifecycle_with_simulated_clock() {
        let signer = NonceSigner::new(SECRET);
        let max_age = 300;
        let nonce = signer.issue(T0, [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(nonce.len(), 43);
        assert!(nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(signer.check(&nonce, T0, max_age), NonceCheck::Valid);
        assert_eq!(signer.check(&nonce, T0 + 1, max_age), NonceCheck::Valid);
        assert_eq!(
            signer.check(&nonce, T0 + max_age, max_age),
            NonceCheck::Valid
        );
        assert_eq!(
            signer.check(&nonce, T0 + max_age + 1, max_age),
            NonceCheck::Stale
        );
        assert_eq!(signer.check(&nonce, u64::MAX, max_age), NonceCheck::Stale);
        // Clock a little behind the issuer: tolerated.
        assert_eq!(
            signer.check(&nonce, T0 - NONCE_FUTURE_SKEW_SECS, max_age),
            NonceCheck::Valid
        );
        // Dated further in the future than the skew: forged or broken clock.
        assert_eq!(
            signer.check(&nonce, T0 - NONCE_FUTURE_SKEW_SECS - 1, max_age),
            NonceCheck::Invalid
        );
        let far_future = signer.issue(u64::MAX, [0; 8]);
        assert_eq!(signer.check(&far_future, T0, max_age), NonceCheck::Invalid);
        assert_eq!(signer.check(&far_future, u64::MAX, 0), NonceCheck::Valid);

        // Deterministic given inputs; salt makes same-second nonces differ.
        assert_eq!(nonce, signer.issue(T0, [1, 2, 3, 4, 5, 6, 7, 8]));
        assert_ne!(nonce, signer.issue(T0, [1, 2, 3, 4, 5, 6, 7, 9]));
    }

    #[test]
    fn tampered_or_foreign_nonces_are_invalid() {
        let signer = NonceSigner::new(SECRET);
        let nonce = signer.issue(T0, [9; 8]);

        // Every single-character change, including ones that only touch the
        // unused low bits of the last character.
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        for pos in 0..nonce.len() {
            for &c in alphabet {
                let mut bytes = nonce.clone().into_bytes();
                if bytes[pos] == c {
                    continue;
                }
                bytes[pos] = c;
                let tampered = String::from_utf8(bytes).unwrap();
                assert_eq!(
                    signer.check(&tampered, T0, 300),
                    NonceCheck::Invalid,
                    "{tampered}"
                );
            }
        }

        // Another server's secret.
        let other = NonceSigner::new([0x43; 32]);
        assert_eq!(other.check(&nonce, T0, 300), NonceCheck::Invalid);

        // Re-dating a nonce to extend its life breaks the MAC.
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut raw = b64.decode(&nonce).unwrap();
        raw[..8].copy_from_slice(&(T0 + 1000).to_be_bytes());
        let redated = b64.encode(&raw);
        assert_eq!(signer.check(&redated, T0 + 1000, 300), NonceCheck::Invalid);

        // Malformed.
        for bad in [
            "",
            "x",
            &nonce[..42],
            &format!("{nonce}A"),
            &format!("{nonce}="),
            &nonce.replace(|c: char| c.is_ascii_alphabetic(), "+"),
            "ééééééééééééééééééééé!",
            &"A".repeat(10_000),
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
        ] {
            assert_eq!(signer.check(bad, T0, 300), NonceCheck::Invalid, "{bad:?}");
        }
    }

    #[test]
    fn authenticate_outcomes() {
        let signer = NonceSigner::new(SECRET);
        let realm = "gw.example.net";
        let stored = StoredHa1::from_password("bob", realm, "hunter2");
        let nonce = signer.issue(T0, [3; 8]);
        let [sha, md5] = format_challenges(realm, &nonce, Some("op"), false);

        for challenge in [&sha, &md5] {
            let challenge = parse_challenge(challenge).unwrap();
            let header = authorize(
                &challenge,
                "INVITE",
                "sip:+15551234567@gw.example.net",
                "bob",
                Secret::Password("hunter2"),
                "c1",
                1,
            )
            .unwrap();
            let creds = parse_credentials(&header).unwrap();
            assert_eq!(creds.opaque.as_deref(), Some("op"));
            let ha1 = stored.get(creds.algorithm);
            let auth = |method, ha1, now| signer.authenticate(&creds, method, ha1, now, 300);
            assert_eq!(auth("INVITE", ha1, T0 + 10), AuthOutcome::Authorized);
            assert_eq!(auth("INVITE", ha1, T0 + 301), AuthOutcome::Stale);
            assert_eq!(auth("BYE", ha1, T0 + 10), AuthOutcome::WrongResponse);
            // A wrong digest over an expired nonce is not "stale".
            assert_eq!(auth("BYE", ha1, T0 + 301), AuthOutcome::WrongResponse);
            assert_eq!(auth("INVITE", ha1, T0 - 60), AuthOutcome::InvalidNonce);
        }

        // Correct digest, but over a nonce we never issued.
        let foreign = format_challenge(
            realm,
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            Algorithm::Sha256,
            None,
            false,
        );
        let foreign = parse_challenge(&foreign).unwrap();
        let header = authorize(
            &foreign,
            "INVITE",
            "sip:x",
            "bob",
            Secret::Ha1(&stored),
            "c",
            1,
        )
        .unwrap();
        let creds = parse_credentials(&header).unwrap();
        assert!(verify(&creds, "INVITE", &stored.sha256));
        assert_eq!(
            signer.authenticate(&creds, "INVITE", &stored.sha256, T0, 300),
            AuthOutcome::InvalidNonce
        );
    }

    // ---------------------------------------------------------------------------
    // Challenges: formatting and selection

    #[test]
    fn challenge_formatting() {
        assert_eq!(
            format_challenge("example.com", "abc", Algorithm::Sha256, None, false),
            r#"Digest realm="example.com", nonce="abc", algorithm=SHA-256, qop="auth""#
        );
        assert_eq!(
            format_challenge("example.com", "abc", Algorithm::Md5, Some("xyz"), true),
            r#"Digest realm="example.com", nonce="abc", algorithm=MD5, qop="auth", opaque="xyz", stale=true"#
        );
        let [first, second] = format_challenges("r", "n", None, true);
        assert!(first.contains("algorithm=SHA-256") && first.contains("stale=true"));
        assert!(second.contains("algorithm=MD5"));

        // Escaping round-trips; control characters cannot split the header.
        let tricky = "a \"quoted\" \\ realm\r\nX-Injected: 1";
        let out = format_challenge(tricky, "n", Algorithm::Sha256, None, false);
        assert!(!out.contains('\r') && !out.contains('\n'));
        let back = parse_challenge(&out).unwrap();
        assert_eq!(back.realm, "a \"quoted\" \\ realmX-Injected: 1");
        assert_eq!(back.qop.as_deref(), Some("auth"));
        assert!(!back.stale);
    }

    #[test]
    fn select_prefers_sha256_and_falls_back() {
        let sha = r#"Digest realm="r", nonce="n1", algorithm=SHA-256, qop="auth""#;
        let md5 = r#"Digest realm="r", nonce="n2", qop="auth""#;
        let md5_sess = r#"Digest realm="r", nonce="n3", algorithm=MD5-sess, qop="auth""#;
        let unknown = r#"Digest realm="r", nonce="n4", algorithm=SHA-512-256, qop="auth""#;
        let basic = r#"Basic realm="r""#;
        let int_only = r#"Digest realm="r", nonce="n5", algorithm=SHA-256, qop="auth-int""#;

        assert_eq!(select_challenge([md5, sha]).unwrap().nonce, "n1");
        assert_eq!(select_challenge([sha, md5]).unwrap().nonce, "n1");
        assert_eq!(select_challenge([basic, unknown, md5]).unwrap().nonce, "n2");
        assert_eq!(select_challenge([md5, md5_sess]).unwrap().nonce, "n2");
        assert_eq!(select_challenge([int_only, md5]).unwrap().nonce, "n2");
        assert_eq!(
            select_challenge([unknown]),
            Err(DigestError::UnsupportedAlgorithm("SHA-512-256".into()))
        );
        assert_eq!(
            select_challenge([int_only]),
            Err(DigestError::UnsupportedQop("auth-int".into()))
        );
        assert_eq!(select_challenge([basic]), Err(DigestError::NotDigest));
        assert_eq!(
            select_challenge(std::iter::empty::<&str>()),
            Err(DigestError::NoChallenge)
        );
    }

    #[test]
    fn authorize_rejects_bad_input() {
        let ch = parse_challenge(r#"Digest realm="r", nonce="n", qop="auth-int""#).unwrap();
        let err = authorize(&ch, "REGISTER", "sip:r", "u", Secret::Password("p"), "c", 1);
        assert_eq!(err, Err(DigestError::UnsupportedQop("auth-int".into())));

        let ch = parse_challenge(r#"Digest realm="r", nonce="n", qop="auth""#).unwrap();
        let bad = |user: &str, cnonce: &str, nc| {
            authorize(
                &ch,
                "REGISTER",
                "sip:r",
                user,
                Secret::Password("p"),
                cnonce,
                nc,
            )
        };
        assert_eq!(
            bad("u\r\nX: y", "c", 1),
            Err(DigestError::InvalidValue("username"))
        );
        assert_eq!(bad("u", "", 1), Err(DigestError::InvalidValue("cnonce")));
        assert!(matches!(
            bad("u", "c", 0),
            Err(DigestError::InvalidNonceCount(_))
        ));

        // Quotes and backslashes in the username survive the round trip.
        let header = bad(r#"o"brien\x"#, "c", 0xffff_ffff).unwrap();
        let creds = parse_credentials(&header).unwrap();
        assert_eq!(creds.username, r#"o"brien\x"#);
        assert_eq!(creds.nc.as_deref(), Some("ffffffff"));
        assert_eq!(creds.nonce_count(), Some(u32::MAX));
        assert!(verify(
            &creds,
            "REGISTER",
            &ha1(Algorithm::Md5, r#"o"brien\x"#, "r", "p")
        ));
    }

    // ---------------------------------------------------------------------------
    // Parsing

    #[test]
    fn algorithm_names() {
        for (s, a) in [
            ("MD5", Algorithm::Md5),
            ("md5", Algorithm::Md5),
            ("MD5-SESS", Algorithm::Md5Sess),
            ("sha-256", Algorithm::Sha256),
            ("SHA-256-sess", Algorithm::Sha256Sess),
        ] {
            assert_eq!(Algorithm::parse(s), Some(a));
            assert_eq!(s.parse::<Algorithm>(), Ok(a));
            assert_eq!(Algorithm::parse(a.as_str()), Some(a));
        }
        for s in ["", "SHA256", "SHA-512-256", "MD5 ", "AKAv1-MD5"] {
            assert_eq!(Algorithm::parse(s), None, "{s}");
        }
    }

    #[test]
    fn parse_escapes_spacing_case_and_order() {
        let v = "  dIgEsT\tqop = auth ,nc= 0000000A,, response =\"abc\" ,\r\n  \
             ALGORITHM=sha-256, uri = \"sip:bob@biloxi.com;transport=tls\",cnonce=\"c\\\"n\",\
             NONCE=unquoted/nonce+==,realm=\"r\\\\\\e\",username=\"\\\"Bob\\\"\", extra=\"ignored\", x=y,";
        let c = parse_credentials(v).unwrap();
        assert_eq!(c.username, "\"Bob\"");
        assert_eq!(c.realm, "r\\e");
        assert_eq!(c.nonce, "unquoted/nonce+==");
        assert_eq!(c.uri, "sip:bob@biloxi.com;transport=tls");
        assert!(matches!(c.uri, Cow::Borrowed(_)), "no copy without escapes");
        assert!(matches!(c.username, Cow::Owned(_)));
        assert_eq!(c.response, "abc");
        assert_eq!(c.algorithm, Algorithm::Sha256);
        assert_eq!(c.cnonce.as_deref(), Some("c\"n"));
        assert_eq!(c.qop, Some(Qop::Auth));
        assert_eq!(c.nc.as_deref(), Some("0000000A"));
        assert_eq!(c.nonce_count(), Some(10));
        assert_eq!(c.opaque, None);

        // Non-ASCII survives, quoted qop is tolerated.
        let v = r#"Digest username="Jürgen", realm="réseau", nonce="n", uri="sip:x", response="r", qop="auth", nc=00000001, cnonce="c""#;
        let c = parse_credentials(v).unwrap();
        assert_eq!(c.username, "Jürgen");
        assert_eq!(c.realm, "réseau");
        let owned = c.clone().into_owned();
        assert_eq!(owned, c);

        let ch = parse_challenge(
        r#"DIGEST stale=TRUE,domain="sip:a.example sip:b.example" , realm="r",nonce="n",qop="auth-int ,auth""#,
    )
    .unwrap();
        assert!(ch.stale);
        assert_eq!(ch.algorithm, Algorithm::Md5);
        assert_eq!(ch.domain.as_deref(), Some("sip:a.example sip:b.example"));
        assert_eq!(ch.qop_options().collect::<Vec<_>>(), ["auth-int", "auth"]);
        assert!(ch.offers(Qop::Auth));
        let ch: Challenge<'static> = ch.into_owned();
        assert_eq!(parse_challenge(&ch.to_string()).unwrap(), ch);
        assert!(
            !parse_challenge(r#"Digest realm="r", nonce="n", stale="false""#)
                .unwrap()
                .stale
        );
        assert!(
            !parse_challenge(r#"Digest realm="r", nonce="n", stale=maybe"#)
                .unwrap()
                .stale
        );
    }

    #[test]
    fn parse_errors() {
        use DigestError::*;
        let full = r#"username="u", realm="r", nonce="n", uri="sip:x", response="r""#;
        let cases: &[(&str, DigestError)] = &[
            (
                "",
                Syntax {
                    offset: 0,
                    expected: "authentication scheme",
                },
            ),
            (
                "   ",
                Syntax {
                    offset: 3,
                    expected: "authentication scheme",
                },
            ),
            (r#"Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="#, NotDigest),
            (r#"Digestrealm="r""#, NotDigest),
            (
                r#"Digest,realm="r""#,
                Syntax {
                    offset: 6,
                    expected: "whitespace after scheme",
                },
            ),
            ("Digest", MissingParam("username")),
            (
                r#"Digest username="u", realm="r", nonce="n", uri="sip:x""#,
                MissingParam("response"),
            ),
            (
                r#"Digest username="u"#,
                Syntax {
                    offset: 18,
                    expected: "closing '\"'",
                },
            ),
            (
                r#"Digest username="u\"#,
                Syntax {
                    offset: 19,
                    expected: "closing '\"'",
                },
            ),
            (
                r#"Digest username"#,
                Syntax {
                    offset: 15,
                    expected: "'='",
                },
            ),
            (
                r#"Digest username="#,
                Syntax {
                    offset: 16,
                    expected: "parameter value",
                },
            ),
            (
                r#"Digest username=,"#,
                Syntax {
                    offset: 16,
                    expected: "parameter value",
                },
            ),
            (
                r#"Digest ="u""#,
                Syntax {
                    offset: 7,
                    expected: "parameter name",
                },
            ),
            (
                r#"Digest username="u" realm="r""#,
                Syntax {
                    offset: 20,
                    expected: "',' or end of header",
                },
            ),
            (
                r#"Digest username=a"b"#,
                Syntax {
                    offset: 17,
                    expected: "',' or end of header",
                },
            ),
            (
                r#"Digest username="a", USERNAME="b""#,
                DuplicateParam("username"),
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(
                parse_credentials(input).as_ref(),
                Err(expected),
                "{input:?}"
            );
        }

        let with = |extra: &str| format!("Digest {full}, {extra}");
        assert_eq!(
            parse_credentials(&with("algorithm=SHA-512-256")),
            Err(UnsupportedAlgorithm("SHA-512-256".into()))
        );
        assert_eq!(
            parse_credentials(&with("qop=auth-conf, cnonce=c, nc=00000001")),
            Err(UnsupportedQop("auth-conf".into()))
        );
        assert_eq!(
            parse_credentials(&with("qop=auth, nc=00000001")),
            Err(MissingParam("cnonce"))
        );
        assert_eq!(
            parse_credentials(&with("qop=auth, cnonce=c")),
            Err(MissingParam("nc"))
        );
        for nc in ["1", "0000000g", "000000001", "+0000001"] {
            assert!(
                matches!(
                    parse_credentials(&with(&format!("nc={nc}"))),
                    Err(InvalidNonceCount(_))
                ),
                "{nc}"
            );
        }
        assert_eq!(
            parse_challenge(r#"Digest nonce="n""#),
            Err(MissingParam("realm"))
        );
        assert_eq!(
            parse_challenge(r#"Digest realm="r""#),
            Err(MissingParam("nonce"))
        );

        // Bounds.
        let long = format!("Digest {full}, x=\"{}\"", "a".repeat(MAX_HEADER_LEN));
        assert!(matches!(parse_credentials(&long), Err(TooLong { .. })));
        let many = format!("Digest {full}{}", ", x=1".repeat(MAX_PARAMS));
        assert_eq!(
            parse_credentials(&many),
            Err(TooManyParams { max: MAX_PARAMS })
        );

        // Errors say what is wrong.
        assert_eq!(
            MissingParam("nonce").to_string(),
            "missing required parameter `nonce`"
        );
        let huge_alg = with(&format!("algorithm={}", "Z".repeat(1000)));
        let msg = parse_credentials(&huge_alg).unwrap_err().to_string();
        assert!(msg.len() < 100, "error echoes bounded input: {msg}");
    }

    /// Small deterministic PRNG so the garbage test needs no extra dependency.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn garbage_never_panics() {
        let signer = NonceSigner::new(SECRET);
        let exercise = |s: &str| {
            if let Ok(c) = parse_credentials(s) {
                let _ = verify(&c, "REGISTER", &"0".repeat(32));
                let _ = signer.authenticate(&c, "REGISTER", &"0".repeat(64), T0, 300);
                let _ = parse_credentials(&c.to_string());
            }
            if let Ok(ch) = parse_challenge(s) {
                let _ = authorize(&ch, "REGISTER", "sip:x", "u", Secret::Password("p"), "c", 1);
                let _ = parse_challenge(&ch.to_string());
            }
            let _ = signer.check(s, T0, 300);
        };

        // Every prefix and every single-byte deletion of realistic headers.
        let samples = [
        rfc7616_authorization("SHA-256", RFC7616_SHA256),
        rfc7616_challenge("MD5"),
        r#"Digest username="a\"b\\", realm="é\ü", nonce=x, qop="auth", nc=00000001, cnonce="c", uri="u", response="r""#.to_owned(),
    ];
        for s in &samples {
            for (i, _) in s.char_indices() {
                exercise(&s[..i]);
                let mut cut = s.clone();
                cut.remove(i);
                exercise(&cut);
            }
        }

        // Random strings over an alphabet dense in delimiters.
        const PIECES: &[&str] = &[
            "Digest ",
            "digest",
            " ",
            "\t",
            "\r\n",
            ",",
            "=",
            "\"",
            "\\",
            "\\\"",
            "é",
            "€",
            "\u{0}",
            "realm",
            "nonce",
            "username",
            "uri",
            "response",
            "qop",
            "nc",
            "cnonce",
            "algorithm",
            "stale",
            "auth",
            "auth-int",
            "MD5",
            "SHA-256-sess",
            "00000001",
            "true",
            "a",
            "Z",
            "/",
        ];
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        for _ in 0..20_000 {
            let len = (rng.next() % 40) as usize;
            let s: String = (0..len)
                .map(|_| PIECES[(rng.next() % PIECES.len() as u64) as usize])
                .collect();
            exercise(&s);
        }

        // Random bytes, made valid UTF-8 lossily.
        for _ in 0..5_000 {
            let len = (rng.next() % 64) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            exercise(&String::from_utf8_lossy(&bytes));
        }
    }
}
