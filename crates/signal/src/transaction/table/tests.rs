use bytes::Bytes;

use super::*;
use crate::transaction::sim::{msg, request, Clock};

const INVITE: &str = "INVITE sip:bob@example SIP/2.0\r\n\r\n";
const CANCEL: &str = "CANCEL sip:bob@example SIP/2.0\r\n\r\n";
const ACK: &str = "ACK sip:bob@example SIP/2.0\r\n\r\n";
const TRYING: &str = "SIP/2.0 100 Trying\r\n\r\n";
const OK: &str = "SIP/2.0 200 OK\r\n\r\n";
const TERMINATED: &str = "SIP/2.0 487 Request Terminated\r\n\r\n";

fn table(max_transactions: usize) -> TransactionTable {
    TransactionTable::new(TableConfig {
        max_transactions,
        ..TableConfig::default()
    })
}

fn drain(table: &mut TransactionTable) -> Vec<(TransactionId, Action)> {
    std::iter::from_fn(|| table.poll_event()).collect()
}

fn response(status: u16, branch: &str, method: Method) -> ResponseMeta {
    ResponseMeta {
        status,
        branch: Some(branch.into()),
        cseq_method: method,
    }
}

/// Polls at every deadline up to `until_ms`, like a driver sleeping on
/// `next_deadline`; returns (ms, event) for each event.
fn run_until(
    table: &mut TransactionTable,
    clock: &Clock,
    until_ms: u64,
) -> Vec<(u64, TransactionId, Action)> {
    let mut out = vec![];
    while let Some(at) = table.next_deadline() {
        if clock.ms(at) > until_ms {
            break;
        }
        table.poll_timers(at);
        out.extend(
            drain(table)
                .into_iter()
                .map(|(id, a)| (clock.ms(at), id, a)),
        );
    }
    out
}

#[test]
fn invite_client_through_the_table() {
    let clock = Clock::new();
    let mut t = table(10);
    let key = ClientKey::new("z9hG4bKa", Method::Invite);
    let id = t
        .start_client(key, msg(INVITE), false, clock.at(0))
        .unwrap();
    assert_eq!(t.kind(id), Some(TransactionKind::InviteClient));
    assert_eq!(drain(&mut t), [(id, Action::Transmit(msg(INVITE)))]);
    assert_eq!(t.next_deadline(), Some(clock.at(500)));
    t.poll_timers(clock.at(500));
    assert_eq!(drain(&mut t), [(id, Action::Transmit(msg(INVITE)))]);

    let ringing = response(180, "z9hG4bKa", Method::Invite);
    assert_eq!(t.on_response(&ringing, clock.at(800)), Some(id));
    assert_eq!(drain(&mut t), [(id, Action::PassResponse { status: 180 })]);
    assert_eq!(t.state(id), Some(State::Proceeding));
    // A and B are cancelled: their stale heap items fire nothing.
    assert!(run_until(&mut t, &clock, 40_000).is_empty());

    let busy = response(486, "z9hG4bKa", Method::Invite);
    assert_eq!(t.on_response(&busy, clock.at(41_000)), Some(id));
    assert_eq!(
        drain(&mut t),
        [
            (id, Action::PassResponse { status: 486 }),
            (id, Action::SendAck { status: 486 })
        ]
    );
    t.send_ack(id, msg(ACK)).unwrap();
    assert_eq!(drain(&mut t), [(id, Action::Transmit(msg(ACK)))]);
    assert_eq!(t.on_response(&busy, clock.at(41_500)), Some(id));
    assert_eq!(drain(&mut t), [(id, Action::Transmit(msg(ACK)))]);

    assert_eq!(
        run_until(&mut t, &clock, 100_000),
        [(73_000, id, Action::Terminated)]
    );
    assert!(t.is_empty());
    assert_eq!(t.on_response(&busy, clock.at(73_100)), None);
    assert_eq!(t.send_ack(id, msg(ACK)), Err(TableError::NotFound(id)));
}

#[test]
fn reliable_invite_client_takes_the_ack_before_timer_d() {
    let clock = Clock::new();
    let mut t = table(10);
    let key = ClientKey::new("z9hG4bKr", Method::Invite);
    let id = t.start_client(key, msg(INVITE), true, clock.at(0)).unwrap();
    drain(&mut t);
    t.on_response(&response(503, "z9hG4bKr", Method::Invite), clock.at(100));
    assert_eq!(drain(&mut t).len(), 2);
    assert_eq!(t.next_deadline(), Some(clock.at(100)));
    t.send_ack(id, msg(ACK)).unwrap();
    t.poll_timers(clock.at(100));
    assert_eq!(
        drain(&mut t),
        [(id, Action::Transmit(msg(ACK))), (id, Action::Terminated)]
    );
    assert!(t.is_empty());
}

#[test]
fn cancel_client_transaction_is_separate_from_the_invite() {
    let clock = Clock::new();
    let mut t = table(10);
    let invite = t
        .start_client(
            ClientKey::new("z9hG4bKc", Method::Invite),
            msg(INVITE),
            false,
            clock.at(0),
        )
        .unwrap();
    let cancel = t
        .start_client(
            ClientKey::new("z9hG4bKc", Method::Cancel),
            msg(CANCEL),
            false,
            clock.at(1_000),
        )
        .unwrap();
    assert_ne!(invite, cancel);
    assert_eq!(t.kind(cancel), Some(TransactionKind::NonInviteClient));
    drain(&mut t);

    let ok = response(200, "z9hG4bKc", Method::Cancel);
    assert_eq!(t.on_response(&ok, clock.at(1_100)), Some(cancel));
    assert_eq!(t.state(cancel), Some(State::Completed));
    assert_eq!(t.state(invite), Some(State::Calling));
    let terminated = response(487, "z9hG4bKc", Method::Invite);
    assert_eq!(t.on_response(&terminated, clock.at(1_200)), Some(invite));
    assert_eq!(
        drain(&mut t),
        [
            (cancel, Action::PassResponse { status: 200 }),
            (invite, Action::PassResponse { status: 487 }),
            (invite, Action::SendAck { status: 487 })
        ]
    );
}

#[test]
fn responses_that_match_nothing_are_left_to_the_core() {
    let clock = Clock::new();
    let mut t = table(10);
    t.start_client(
        ClientKey::new("z9hG4bKm", Method::Options),
        msg(INVITE),
        false,
        clock.at(0),
    )
    .unwrap();
    drain(&mut t);
    let mut no_branch = response(200, "z9hG4bKm", Method::Options);
    no_branch.branch = None;
    for stray in [
        no_branch,
        response(200, "z9hG4bKother", Method::Options),
        response(200, "z9hG4bKm", Method::Register),
    ] {
        assert_eq!(t.on_response(&stray, clock.at(10)), None, "{stray:?}");
    }
    assert!(drain(&mut t).is_empty());
}

#[test]
fn non_invite_client_times_out_and_is_removed() {
    let clock = Clock::new();
    let mut t = table(10);
    let id = t
        .start_client(
            ClientKey::new("z9hG4bKo", Method::Options),
            msg(INVITE),
            false,
            clock.at(0),
        )
        .unwrap();
    drain(&mut t);
    let events = run_until(&mut t, &clock, 60_000);
    let transmits = events
        .iter()
        .filter(|(_, _, a)| matches!(a, Action::Transmit(_)))
        .count();
    assert_eq!(transmits, 10);
    assert_eq!(
        events[events.len() - 2..],
        [
            (32_000, id, Action::Timeout),
            (32_000, id, Action::Terminated)
        ]
    );
    assert!(t.is_empty());
    assert_eq!(t.next_deadline(), None);
}

#[test]
fn invite_server_with_retransmission_cancel_and_ack() {
    let clock = Clock::new();
    let mut t = table(10);
    let invite = request(Method::Invite, Some("z9hG4bKs"));
    let RequestRoute::New(id) = t.on_request(&invite, false, clock.at(0)).unwrap() else {
        panic!("expected a new transaction");
    };
    assert_eq!(t.kind(id), Some(TransactionKind::InviteServer));
    assert_eq!(drain(&mut t), [(id, Action::PassRequest)]);

    t.poll_timers(clock.at(200));
    assert_eq!(drain(&mut t), [(id, Action::SendTrying)]);
    t.respond(id, 100, msg(TRYING), clock.at(200)).unwrap();
    assert_eq!(drain(&mut t), [(id, Action::Transmit(msg(TRYING)))]);

    // The retransmitted INVITE is absorbed and answered with the 100.
    assert_eq!(
        t.on_request(&invite, false, clock.at(500)),
        Ok(RequestRoute::Matched(id))
    );
    assert_eq!(drain(&mut t), [(id, Action::Transmit(msg(TRYING)))]);

    // CANCEL: its own transaction, and a helper finds the INVITE.
    let cancel = request(Method::Cancel, Some("z9hG4bKs"));
    let RequestRoute::New(cid) = t.on_request(&cancel, false, clock.at(1_000)).unwrap() else {
        panic!("expected a new transaction");
    };
    assert_ne!(cid, id);
    assert_eq!(t.kind(cid), Some(TransactionKind::NonInviteServer));
    assert_eq!(t.cancel_target(&cancel), Some(id));
    t.respond(cid, 200, msg(OK), clock.at(1_000)).unwrap();
    t.respond(id, 487, msg(TERMINATED), clock.at(1_000))
        .unwrap();
    assert_eq!(
        drain(&mut t),
        [
            (cid, Action::PassRequest),
            (cid, Action::Transmit(msg(OK))),
            (id, Action::Transmit(msg(TERMINATED)))
        ]
    );

    // Timer G retransmits the 487 until the ACK arrives.
    assert_eq!(
        run_until(&mut t, &clock, 1_500),
        [(1_500, id, Action::Transmit(msg(TERMINATED)))]
    );
    let ack = request(Method::Ack, Some("z9hG4bKs"));
    assert_eq!(
        t.on_request(&ack, false, clock.at(1_600)),
        Ok(RequestRoute::Matched(id))
    );
    assert!(drain(&mut t).is_empty());
    assert_eq!(t.state(id), Some(State::Confirmed));

    // Timer I ends the INVITE, timer J the CANCEL.
    assert_eq!(
        run_until(&mut t, &clock, 60_000),
        [
            (6_600, id, Action::Terminated),
            (33_000, cid, Action::Terminated)
        ]
    );
    assert!(t.is_empty());
    assert_eq!(t.cancel_target(&cancel), None);
}

#[test]
fn ack_for_a_2xx_matches_no_transaction() {
    let clock = Clock::new();
    let mut t = table(10);
    let invite = request(Method::Invite, Some("z9hG4bK2xx"));
    let RequestRoute::New(id) = t.on_request(&invite, false, clock.at(0)).unwrap() else {
        panic!("expected a new transaction");
    };
    t.respond(id, 200, msg(OK), clock.at(100)).unwrap();
    assert_eq!(t.state(id), Some(State::Accepted));
    // The TU retransmits its 2xx through the transaction.
    t.respond(id, 200, msg(OK), clock.at(600)).unwrap();
    // INVITE retransmissions are absorbed without a reply.
    assert_eq!(
        t.on_request(&invite, false, clock.at(700)),
        Ok(RequestRoute::Matched(id))
    );
    assert_eq!(
        drain(&mut t),
        [
            (id, Action::PassRequest),
            (id, Action::Transmit(msg(OK))),
            (id, Action::Transmit(msg(OK)))
        ]
    );
    // The ACK for a 2xx has a branch of its own.
    let ack = request(Method::Ack, Some("z9hG4bKack"));
    assert_eq!(
        t.on_request(&ack, false, clock.at(800)),
        Ok(RequestRoute::UnmatchedAck)
    );
    assert!(drain(&mut t).is_empty());
    assert_eq!(t.len(), 1);
    assert_eq!(
        run_until(&mut t, &clock, 60_000),
        [(32_100, id, Action::Terminated)]
    );
}

#[test]
fn rfc_2543_requests_match_on_headers() {
    let clock = Clock::new();
    let mut t = table(10);
    let invite = request(Method::Invite, None);
    let RequestRoute::New(id) = t.on_request(&invite, false, clock.at(0)).unwrap() else {
        panic!("expected a new transaction");
    };
    assert_eq!(
        t.on_request(&invite, false, clock.at(500)),
        Ok(RequestRoute::Matched(id))
    );
    // A new CSeq is a new request.
    let mut next = invite.clone();
    next.cseq = 2;
    assert!(matches!(
        t.on_request(&next, false, clock.at(600)),
        Ok(RequestRoute::New(_))
    ));

    let mut cancel = invite.clone();
    cancel.method = Method::Cancel;
    assert!(matches!(
        t.on_request(&cancel, false, clock.at(700)),
        Ok(RequestRoute::New(_))
    ));
    assert_eq!(t.cancel_target(&cancel), Some(id));

    t.respond(id, 486, msg(TERMINATED), clock.at(800)).unwrap();
    // The ACK carries the To tag of our 486; the INVITE had none.
    let mut ack = invite.clone();
    ack.method = Method::Ack;
    ack.to_tag = Some("our-tag".into());
    assert_eq!(
        t.on_request(&ack, false, clock.at(900)),
        Ok(RequestRoute::Matched(id))
    );
    assert_eq!(t.state(id), Some(State::Confirmed));
}

#[test]
fn rfc_2543_reinvite_ack_matches_with_its_tag() {
    let clock = Clock::new();
    let mut t = table(10);
    let mut reinvite = request(Method::Invite, Some("no-cookie"));
    reinvite.to_tag = Some("dialog".into());
    let RequestRoute::New(id) = t.on_request(&reinvite, true, clock.at(0)).unwrap() else {
        panic!("expected a new transaction");
    };
    t.respond(id, 491, msg(TERMINATED), clock.at(10)).unwrap();
    let mut ack = reinvite.clone();
    ack.method = Method::Ack;
    assert_eq!(
        t.on_request(&ack, true, clock.at(20)),
        Ok(RequestRoute::Matched(id))
    );
    // Reliable: timer I is zero.
    t.poll_timers(clock.at(20));
    assert!(t.is_empty());
}

#[test]
fn limit_refuses_new_transactions_but_serves_existing_ones() {
    let clock = Clock::new();
    let mut t = table(2);
    let first = request(Method::Options, Some("z9hG4bK1"));
    let RequestRoute::New(id) = t.on_request(&first, true, clock.at(0)).unwrap() else {
        panic!("expected a new transaction");
    };
    t.start_client(
        ClientKey::new("z9hG4bKout", Method::Bye),
        msg(INVITE),
        true,
        clock.at(0),
    )
    .unwrap();
    assert_eq!(t.len(), 2);

    let third = request(Method::Register, Some("z9hG4bK3"));
    assert_eq!(
        t.on_request(&third, true, clock.at(1)),
        Err(TableError::Full { max: 2 })
    );
    assert_eq!(
        t.start_client(
            ClientKey::new("z9hG4bKout2", Method::Bye),
            msg(INVITE),
            true,
            clock.at(1)
        ),
        Err(TableError::Full { max: 2 })
    );
    // Retransmissions and stray ACKs need no new transaction.
    assert_eq!(
        t.on_request(&first, true, clock.at(2)),
        Ok(RequestRoute::Matched(id))
    );
    let ack = request(Method::Ack, Some("z9hG4bKx"));
    assert_eq!(
        t.on_request(&ack, true, clock.at(2)),
        Ok(RequestRoute::UnmatchedAck)
    );

    // Once one ends (reliable: timer J is zero) there is room again.
    t.respond(id, 200, msg(OK), clock.at(3)).unwrap();
    t.poll_timers(clock.at(3));
    assert_eq!(t.len(), 1);
    assert!(matches!(
        t.on_request(&third, true, clock.at(4)),
        Ok(RequestRoute::New(_))
    ));
}

#[test]
fn misuse_is_refused() {
    let clock = Clock::new();
    let mut t = table(10);
    assert_eq!(
        t.start_client(
            ClientKey::new("z9hG4bKa", Method::Ack),
            msg(ACK),
            false,
            clock.at(0)
        ),
        Err(TableError::AckRequest)
    );
    let key = ClientKey::new("z9hG4bKd", Method::Invite);
    let client = t
        .start_client(key.clone(), msg(INVITE), false, clock.at(0))
        .unwrap();
    assert_eq!(
        t.start_client(key, msg(INVITE), false, clock.at(0)),
        Err(TableError::Duplicate)
    );
    assert_eq!(
        t.respond(client, 200, msg(OK), clock.at(0)),
        Err(TableError::WrongKind {
            id: client,
            kind: TransactionKind::InviteClient
        })
    );
    // No non-2xx final yet, so no ACK to send.
    assert_eq!(
        t.send_ack(client, msg(ACK)),
        Err(TableError::InvalidState {
            id: client,
            state: State::Calling
        })
    );

    let RequestRoute::New(server) = t
        .on_request(&request(Method::Bye, Some("z9hG4bKb")), false, clock.at(0))
        .unwrap()
    else {
        panic!("expected a new transaction");
    };
    assert_eq!(
        t.send_ack(server, msg(ACK)),
        Err(TableError::WrongKind {
            id: server,
            kind: TransactionKind::NonInviteServer
        })
    );
    assert_eq!(
        t.respond(server, 700, msg(OK), clock.at(0)),
        Err(TableError::InvalidStatus(700))
    );
    t.respond(server, 200, msg(OK), clock.at(0)).unwrap();
    assert_eq!(
        t.respond(server, 500, msg(OK), clock.at(0)),
        Err(TableError::InvalidState {
            id: server,
            state: State::Completed
        })
    );
    let gone = TransactionId(999);
    assert_eq!(
        t.respond(gone, 200, msg(OK), clock.at(0)),
        Err(TableError::NotFound(gone))
    );
    assert_eq!(t.on_transport_error(gone), Err(TableError::NotFound(gone)));
    assert_eq!(t.state(gone), None);
    assert_eq!(t.kind(gone), None);
}

#[test]
fn transport_error_is_reported_and_removes_the_transaction() {
    let clock = Clock::new();
    let mut t = table(10);
    let id = t
        .start_client(
            ClientKey::new("z9hG4bKt", Method::Invite),
            msg(INVITE),
            false,
            clock.at(0),
        )
        .unwrap();
    drain(&mut t);
    t.on_transport_error(id).unwrap();
    assert_eq!(
        drain(&mut t),
        [(id, Action::TransportError), (id, Action::Terminated)]
    );
    assert!(t.is_empty());
    // Its key is free again.
    t.start_client(
        ClientKey::new("z9hG4bKt", Method::Invite),
        msg(INVITE),
        false,
        clock.at(1),
    )
    .unwrap();
}

#[test]
fn cancelled_timers_do_not_fire_and_next_deadline_catches_up() {
    let clock = Clock::new();
    let mut t = table(10);
    let RequestRoute::New(id) = t
        .on_request(
            &request(Method::Invite, Some("z9hG4bKq")),
            false,
            clock.at(0),
        )
        .unwrap()
    else {
        panic!("expected a new transaction");
    };
    t.respond(id, 100, msg(TRYING), clock.at(50)).unwrap();
    drain(&mut t);
    // The 200 ms item is stale: polling it fires nothing and empties the heap.
    assert_eq!(t.next_deadline(), Some(clock.at(200)));
    t.poll_timers(clock.at(200));
    assert!(drain(&mut t).is_empty());
    assert_eq!(t.next_deadline(), None);
    assert_eq!(t.state(id), Some(State::Proceeding));
}

#[test]
fn stale_heap_items_are_compacted() {
    let clock = Clock::new();
    let mut t = table(100_000);
    for n in 0..2_000 {
        let branch = format!("z9hG4bK{n}");
        let RequestRoute::New(id) = t
            .on_request(&request(Method::Invite, Some(&branch)), false, clock.at(0))
            .unwrap()
        else {
            panic!("expected a new transaction");
        };
        // Cancels the 200 ms timer, then ends the transaction: both leave
        // stale heap items behind.
        t.respond(id, 180, msg(TRYING), clock.at(1)).unwrap();
        t.on_transport_error(id).unwrap();
    }
    assert!(t.is_empty());
    // One live entry at each push: at most the slack plus its two items.
    let bound = COMPACT_SLACK + 2;
    assert!(t.deadlines.len() <= bound, "{} items", t.deadlines.len());
    assert!(t.clients.is_empty() && t.servers.is_empty());
}

#[test]
fn ids_are_distinct_and_displayable() {
    let clock = Clock::new();
    let mut t = table(10);
    let mut ids = vec![];
    for n in 0..3 {
        let key = ClientKey::new(format!("z9hG4bK{n}"), Method::Options);
        ids.push(
            t.start_client(key, Bytes::new(), true, clock.at(0))
                .unwrap(),
        );
    }
    ids.dedup();
    assert_eq!(ids.len(), 3);
    assert_eq!(ids[0].to_string(), format!("tx{}", ids[0].get()));
}

#[test]
fn rfc_2543_ack_for_a_2xx_goes_to_the_tu() {
    let clock = Clock::new();
    let mut t = table(10);
    let invite = request(Method::Invite, None);
    let RequestRoute::New(id) = t.on_request(&invite, false, clock.at(0)).unwrap() else {
        panic!("expected a new transaction");
    };
    t.respond(id, 200, msg(OK), clock.at(10)).unwrap();
    drain(&mut t);
    let mut ack = invite.clone();
    ack.method = Method::Ack;
    ack.to_tag = Some("our-tag".into());
    assert_eq!(
        t.on_request(&ack, false, clock.at(20)),
        Ok(RequestRoute::Matched(id))
    );
    assert_eq!(drain(&mut t), [(id, Action::PassRequest)]);
    assert_eq!(t.state(id), Some(State::Accepted));
}

#[test]
fn configured_timers_reach_every_transaction() {
    let clock = Clock::new();
    let mut t = TransactionTable::new(TableConfig {
        timers: TimerConfig {
            t1: std::time::Duration::from_secs(1),
            ..TimerConfig::default()
        },
        max_transactions: 10,
    });
    assert_eq!(t.config().max_transactions, 10);
    let key = ClientKey::new("z9hG4bKt1", Method::Invite);
    t.start_client(key, msg(INVITE), false, clock.at(0))
        .unwrap();
    drain(&mut t);
    let events = run_until(&mut t, &clock, 100_000);
    let times: Vec<u64> = events.iter().map(|(ms, _, _)| *ms).collect();
    // A from 1 s doubling; B at 64 s.
    assert_eq!(
        times,
        [1_000, 3_000, 7_000, 15_000, 31_000, 63_000, 64_000, 64_000]
    );
}
