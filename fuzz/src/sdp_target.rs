//! `sdp`: parse, read every typed view, write back, re-parse, edit.

use std::fmt::Debug;

use sdp::{
    Attribute, AttributeValue, Candidate, Crypto, Direction, ExtMap, Fingerprint, Fmtp, Group,
    Line, LineEnding, MediaDescription, Msid, Rtcp, RtcpFb, RtpMap, SessionDescription, Setup,
    Ssrc, SsrcGroup,
};

/// Invariants:
/// - parsing never panics;
/// - what parses writes back to text that parses to the same model, and
///   writing that again gives the same text (the written form is a fixpoint);
/// - an input already in written form (one line ending throughout, a final
///   line ending, no trailing empty lines) writes back byte for byte, except
///   for the whitespace or leading zeros of `o=`, `c=` and `m=` lines, which
///   are stored as fields;
/// - each typed attribute that parses writes back to a value that parses to
///   the same thing;
/// - the gateway's edits (connection address, port, direction, format
///   filtering, origin version) produce text that parses to the edited model.
pub fn sdp(data: &[u8]) {
    let Ok(desc) = SessionDescription::from_bytes(data) else {
        return;
    };
    let _ = desc.validate();
    read_everything(&desc);

    let written = desc.to_string();
    let again = SessionDescription::parse(&written)
        .unwrap_or_else(|e| panic!("written form does not parse: {e}\n{written:?}"));
    assert_eq!(again, desc, "written form parses differently:\n{written:?}");
    assert_eq!(again.to_string(), written, "written form is not a fixpoint");

    // CRLF output (for a SIP body) is the same model apart from the ending.
    let crlf = desc.to_crlf_bytes();
    let mut from_crlf = SessionDescription::from_bytes(&crlf)
        .unwrap_or_else(|e| panic!("CRLF form does not parse: {e}\n{crlf:?}"));
    assert_eq!(from_crlf.line_ending, LineEnding::Crlf);
    from_crlf.line_ending = desc.line_ending;
    assert_eq!(from_crlf, desc, "CRLF form parses differently");

    check_byte_identity(data, &desc, &written);

    for line in desc
        .lines
        .iter()
        .chain(desc.media.iter().flat_map(|m| &m.lines))
    {
        if let Line::Attribute(a) = line {
            check_typed_attribute(a);
        }
    }

    edit(desc, data);
}

fn read_everything(desc: &SessionDescription) {
    let _ = (
        desc.origin(),
        desc.session_name(),
        desc.connection(),
        desc.ice_lite(),
        desc.bundle_group(),
        desc.fingerprint(),
        desc.setup(),
        desc.direction(),
        desc.ice_ufrag(),
        desc.ice_pwd(),
    );
    let _ = desc.groups().count() + desc.extmaps().count() + desc.ice_options().count();
    let _ = desc.fingerprints().count() + desc.attributes().count();
    if let Some(o) = desc.origin() {
        let _ = o.ip();
    }
    if let Some(c) = desc.connection() {
        let _ = c.ip();
    }
    for m in &desc.media {
        let _ = (
            m.kind(),
            m.port(),
            m.proto(),
            m.mid(),
            m.rtcp(),
            m.rtcp_mux(),
            m.ptime(),
            m.maxptime(),
            m.msid(),
            m.end_of_candidates(),
        );
        let _ = m.payload_types().filter_map(|pt| m.codec(pt)).count();
        let _ = m.payload_types().filter_map(|pt| m.fmtp(pt)).count();
        let _ = m.rtpmaps().count() + m.fmtps().count() + m.rtcp_fbs().count();
        let _ = m.candidates().count() + m.ssrcs().count() + m.ssrc_groups().count();
        let _ = m.msids().count() + m.cryptos().count() + m.formats().len();
        let _ = m.ice_options().count() + m.extmaps().count();
        let _ = (
            desc.effective_direction(m),
            desc.effective_connection(m),
            desc.effective_ice_ufrag(m),
            desc.effective_ice_pwd(m),
            desc.effective_fingerprint(m),
            desc.effective_setup(m),
        );
        let _ = desc.effective_extmaps(m).len();
        if let Some(mid) = m.mid() {
            assert!(
                desc.media_by_mid(mid).is_some(),
                "media_by_mid misses {mid:?}"
            );
        }
    }
}

/// Byte identity for inputs that are already in written form.
fn check_byte_identity(data: &[u8], desc: &SessionDescription, written: &str) {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let eol = desc.line_ending.as_str();
    let Some(body) = input.strip_suffix(eol) else {
        return;
    };
    let lines: Vec<&str> = body.split(eol).collect();
    // One ending throughout: with CRLF, no bare LF; with LF, no CR at all
    // (a CR before LF would have made the first ending CRLF).
    if lines
        .iter()
        .any(|l| l.contains('\n') || l.contains('\r') || l.is_empty())
    {
        return;
    }
    let out: Vec<&str> = written
        .strip_suffix(eol)
        .expect("written form ends with its line ending")
        .split(eol)
        .collect();
    assert_eq!(
        out.len(),
        lines.len(),
        "line count changed on write:\n{input:?}\n{written:?}"
    );
    for (a, b) in lines.iter().zip(&out) {
        if a != b {
            let normalized = a.starts_with("o=") || a.starts_with("c=") || a.starts_with("m=");
            assert!(
                normalized && a[..2] == b[..2],
                "line changed on write: {a:?} -> {b:?}"
            );
            if !a.starts_with("m=") {
                // Only whitespace may differ in o= and c=.
                let fields = |s: &str| {
                    s.split_ascii_whitespace()
                        .map(str::to_owned)
                        .collect::<Vec<_>>()
                };
                assert_eq!(fields(&a[2..]), fields(&b[2..]), "fields changed on write");
            }
        }
    }
}

fn check_typed_attribute(a: &Attribute) {
    match a.name.as_str() {
        "rtpmap" => typed::<RtpMap>(a),
        "fmtp" => typed::<Fmtp>(a),
        "rtcp-fb" => typed::<RtcpFb>(a),
        "rtcp" => typed::<Rtcp>(a),
        "group" => typed::<Group>(a),
        "candidate" => typed::<Candidate>(a),
        "fingerprint" => typed::<Fingerprint>(a),
        "setup" => typed::<Setup>(a),
        "ssrc" => typed::<Ssrc>(a),
        "ssrc-group" => typed::<SsrcGroup>(a),
        "msid" => typed::<Msid>(a),
        "extmap" => typed::<ExtMap>(a),
        "crypto" => typed::<Crypto>(a),
        _ => {}
    }
}

fn typed<T: AttributeValue + PartialEq + Debug>(a: &Attribute) {
    let Ok(v) = T::from_attribute(a) else {
        return;
    };
    let attr = v.to_attribute();
    let back = T::from_attribute(&attr).unwrap_or_else(|e| {
        panic!(
            "{} {:?} writes as {attr:?}, which fails: {e}",
            T::NAME,
            a.value
        )
    });
    assert_eq!(back, v, "{} {:?} writes as {attr:?}", T::NAME, a.value);
}

/// The edits the gateway makes when it rewrites an offer or answer.
fn edit(mut desc: SessionDescription, data: &[u8]) {
    let h = crate::input_hash(data);
    let ip = if h & 1 == 0 {
        "192.0.2.10".parse().unwrap()
    } else {
        "2001:db8::10".parse().unwrap()
    };
    desc.set_connection_ip(ip);
    if let Some(o) = desc.origin_mut() {
        o.bump_version();
        o.set_ip(ip);
    }
    let directions = [
        Direction::SendRecv,
        Direction::SendOnly,
        Direction::RecvOnly,
        Direction::Inactive,
    ];
    for (i, m) in desc.media.iter_mut().enumerate() {
        let pick = (h >> (i % 32)) as usize;
        m.set_direction(directions[pick % 4]);
        m.set_port((h >> 8) as u16 ^ i as u16);
        if m.connection().is_some() {
            m.set_connection_ip(ip);
        }
        let first = m.formats().first().cloned();
        // Keep the first format so the m= line stays valid.
        m.retain_formats(|f| Some(f) == first.as_deref() || f.len() % 2 == pick % 2);
        if pick & 4 != 0 {
            m.remove_attributes("candidate");
            m.add_attribute(Attribute::flag("end-of-candidates"));
        }
        check_section(m);
    }
    let text = desc.to_string();
    let again = SessionDescription::parse(&text)
        .unwrap_or_else(|e| panic!("edited description does not parse: {e}\n{text:?}"));
    assert_eq!(
        again, desc,
        "edited description parses differently:\n{text:?}"
    );
}

fn check_section(m: &MediaDescription) {
    assert!(
        m.direction().is_some(),
        "set_direction left no direction attribute"
    );
}
