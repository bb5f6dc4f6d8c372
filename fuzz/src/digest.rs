//! `sip_digest`: Authorization / WWW-Authenticate values (RFC 3261 §22,
//! RFC 7616).

use sip::digest::{self, Algorithm, Challenge, Credentials, NonceSigner, StoredHa1};

/// Invariants:
/// - neither parser panics, on any value;
/// - what parses writes back (`Display`) to a value that parses to the same
///   thing, when no field holds a control character (the writer drops those
///   so a header cannot be split) and the written value is within the
///   length limit;
/// - verifying parsed credentials and checking their nonce never panic, and
///   credentials built with the digest functions from a parsed challenge
///   verify.
pub fn sip_digest(data: &[u8]) {
    let value = String::from_utf8_lossy(data);
    let value: &str = &value;

    if let Ok(creds) = digest::parse_credentials(value) {
        check_credentials(&creds);
    }
    if let Ok(ch) = digest::parse_challenge(value) {
        check_challenge(&ch);
    }
    // Several header values in one input, one per line, as a response with
    // several WWW-Authenticate fields would give them.
    let _ = digest::select_challenge(value.split('\n'));
    let _ = Algorithm::parse(value);
    let _ = digest::Qop::parse(value);
}

fn clean(fields: &[&str]) -> bool {
    fields
        .iter()
        .all(|f| !f.chars().any(|c| c.is_ascii_control()))
}

fn check_credentials(creds: &Credentials<'_>) {
    let _ = creds.nonce_count();
    let owned = creds.clone().into_owned();
    assert_eq!(&owned, creds, "into_owned changed the credentials");

    let text = creds.to_string();
    let mut fields = vec![
        &*creds.username,
        &*creds.realm,
        &*creds.nonce,
        &*creds.uri,
        &*creds.response,
    ];
    fields.extend(creds.cnonce.as_deref());
    fields.extend(creds.opaque.as_deref());
    if clean(&fields) && text.len() <= digest::MAX_HEADER_LEN {
        let back = digest::parse_credentials(&text)
            .unwrap_or_else(|e| panic!("written credentials do not parse: {e}\n{text:?}"));
        assert_eq!(
            &back, creds,
            "written credentials parse differently:\n{text:?}"
        );
    }

    let stored = StoredHa1::from_password("alice", "example.com", "secret");
    let _ = digest::verify(creds, "INVITE", stored.get(creds.algorithm));
    let _ = digest::verify(creds, "REGISTER", &creds.response);
    let signer = NonceSigner::new([7; 32]);
    let _ = signer.check(&creds.nonce, 1_700_000_000, 300);
}

fn check_challenge(ch: &Challenge<'_>) {
    let _ = ch.qop_options().count();
    let _ = (
        ch.offers(digest::Qop::Auth),
        ch.offers(digest::Qop::AuthInt),
    );
    let owned = ch.clone().into_owned();
    assert_eq!(&owned, ch, "into_owned changed the challenge");

    let text = ch.to_string();
    let mut fields = vec![&*ch.realm, &*ch.nonce];
    fields.extend(ch.qop.as_deref());
    fields.extend(ch.opaque.as_deref());
    fields.extend(ch.domain.as_deref());
    if clean(&fields) && text.len() <= digest::MAX_HEADER_LEN {
        let back = digest::parse_challenge(&text)
            .unwrap_or_else(|e| panic!("written challenge does not parse: {e}\n{text:?}"));
        assert_eq!(&back, ch, "written challenge parses differently:\n{text:?}");
    }

    // Answer the challenge as a client would and check the server accepts it.
    if !clean(&[&ch.realm, &ch.nonce]) || ch.realm.is_empty() || ch.nonce.is_empty() {
        return;
    }
    let alg = ch.algorithm;
    let ha1 = digest::ha1(alg, "alice", &ch.realm, "secret");
    let cnonce = "0a4f113b";
    let eff = if alg.is_session() {
        digest::session_ha1(alg, &ha1, &ch.nonce, cnonce)
    } else {
        ha1.clone()
    };
    let uri = "sip:example.com";
    let ha2 = digest::ha2(alg, "REGISTER", uri);
    let response = digest::response(
        alg,
        &eff,
        &ch.nonce,
        "00000001",
        cnonce,
        digest::Qop::Auth,
        &ha2,
    );
    let creds = Credentials {
        username: "alice".into(),
        realm: ch.realm.clone(),
        nonce: ch.nonce.clone(),
        uri: uri.into(),
        response: response.into(),
        algorithm: alg,
        cnonce: Some(cnonce.into()),
        opaque: ch.opaque.clone(),
        qop: Some(digest::Qop::Auth),
        nc: Some("00000001".into()),
    };
    assert!(
        digest::verify(&creds, "REGISTER", &ha1),
        "a correct answer to {ch:?} does not verify"
    );
}
