//! Every timed path succeeds, the three parsers decode the same facts, and
//! each proxy edit produces a message with the edits in it.

use parser_bench::{ezk, ours, rsip_impl, samples, NEW_RURI, RR_URI, VIA_BRANCH};
use sip::{Limits, Message};

#[test]
fn parsers_agree() {
    let limits = Limits::default();
    for s in samples() {
        let m = ours::parse(&s.bytes, &limits);
        m.validate().unwrap_or_else(|e| panic!("{}: {e}", s.name));
        let a = ours::decode(&m);
        let b = ezk::decode(&ezk::parse(&s.bytes));
        let c = rsip_impl::decode(&rsip_impl::parse(&s.bytes));
        let facts = |vias, branch, ftag, ttag, cid, cseq, contacts, routes, mf: u32| {
            (vias, branch, ftag, ttag, cid, cseq, contacts, routes, mf)
        };
        let fa = facts(
            a.vias,
            a.branch_len,
            a.from_tag_len,
            a.to_tag,
            a.call_id_len,
            a.cseq,
            a.contacts,
            a.routes,
            a.max_forwards.into(),
        );
        let fb = facts(
            b.vias,
            b.branch_len,
            b.from_tag_len,
            b.to_tag,
            b.call_id_len,
            b.cseq,
            b.contacts,
            b.routes,
            b.max_forwards.into(),
        );
        let fc = facts(
            c.vias,
            c.branch_len,
            c.from_tag_len,
            c.to_tag,
            c.call_id_len,
            c.cseq,
            c.contacts,
            c.routes,
            c.max_forwards,
        );
        assert_eq!(fa, fb, "{}: ours vs ezk", s.name);
        if s.name == "register" {
            // rsip 0.4 fails on JsSIP's outbound Contact; the rest agrees.
            assert!(c.contact_failed);
            assert_eq!((fc.6, fc.7), (0, 0));
            assert_eq!(
                (fa.0, fa.1, fa.2, fa.3, fa.4, fa.5, fa.8),
                (fc.0, fc.1, fc.2, fc.3, fc.4, fc.5, fc.8)
            );
        } else {
            assert!(!c.contact_failed);
            assert_eq!(fa, fc, "{}: ours vs rsip", s.name);
        }
        assert_eq!(a.vias, 1);
        assert_eq!(a.contacts, 1);
        assert_eq!(a.routes, usize::from(s.name == "invite"));
        assert_eq!(ezk::parse(&s.bytes).body.len(), m.body().len());
    }
}

#[test]
fn proxy_outputs_carry_the_edits() {
    let limits = Limits::default();
    let edit = ezk::edit_values();
    for s in samples() {
        let original = ours::parse(&s.bytes, &limits);
        let outputs = [
            ("ours", ours::proxy(original.clone())),
            ("ezk", ezk::proxy(ezk::parse(&s.bytes), &edit)),
            ("rsip", rsip_impl::proxy(rsip_impl::parse(&s.bytes))),
        ];
        for (who, out) in outputs {
            let m = Message::parse(out.clone(), &limits).unwrap_or_else(|e| {
                panic!("{who}/{}: {e}\n{}", s.name, String::from_utf8_lossy(&out))
            });
            let ctx = || format!("{who}/{}:\n{}", s.name, String::from_utf8_lossy(&out));
            assert_eq!(
                m.request_uri_bytes(),
                Some(NEW_RURI.as_bytes()),
                "{}",
                ctx()
            );
            assert_eq!(m.top_via_branch(), Some(VIA_BRANCH), "{}", ctx());
            assert_eq!(m.vias().count(), 2, "{}", ctx());
            let rr = m
                .record_routes()
                .next()
                .expect("Record-Route")
                .expect("Record-Route");
            assert_eq!(rr.uri().as_str(), RR_URI, "{}", ctx());
            assert_eq!(m.body(), original.body(), "{}", ctx());
            assert_eq!(m.call_id(), original.call_id(), "{}", ctx());
            m.validate().unwrap_or_else(|e| panic!("{e}: {}", ctx()));
        }
    }
}
