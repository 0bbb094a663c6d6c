//! A listener facing strangers: who is admitted, which failures count as
//! attempts at the secret or code, and the order of key confirmation.

use std::time::{Duration, Instant};

use super::*;
use crate::protocol::record::Kind;
use crate::testkit::ScriptedDialer;

fn listener(security: Security, tries: u32) -> Side {
    let mut cfg = config(Role::Listener, security, "lee");
    cfg.room.tries = tries;
    Side::new(session(cfg, 9), LINK)
}

fn counted(side: &Side) -> Vec<bool> {
    side.events
        .iter()
        .filter_map(|e| match e {
            Event::FailedAttempt { counted, .. } => Some(*counted),
            _ => None,
        })
        .collect()
}

/// One way an attacker can end a connection after it got our key material.
#[derive(Debug, Clone, Copy)]
enum Ending {
    WrongHello,
    Fin,
    Reset,
    Timeout,
}

/// An attacker that knows no secret dials, gets our key material, and
/// ends the connection as `how`.
fn attempt(l: &mut Side, id: LinkId, secret: Option<&[u8]>, how: Ending, now: &mut Instant) {
    l.s.accept(id, 7, *now);
    let mut a = ScriptedDialer::new(id, secret, id.0 as u64);
    assert!(a.exchange_keys(&mut l.s, *now), "the attacker gets keys");
    match how {
        Ending::WrongHello => {
            let hello = a.record(Kind::Hello, b"mallory");
            a.push_to(&mut l.s, &hello, *now);
        }
        Ending::Fin => l.s.transport_closed(id, *now),
        Ending::Reset => {
            let e = io::Error::from(io::ErrorKind::ConnectionReset);
            l.s.transport_failed(id, &e, *now);
        }
        Ending::Timeout => {
            *now += HANDSHAKE;
            l.s.handle_timeout(*now);
        }
    }
    // Whatever we said to the attacker: never a sealed record.
    a.pull_from(&mut l.s, *now);
    let mut rx = a.received.clone();
    if let Some(opener) = a.opener.as_mut() {
        let opened = opener.open(&mut rx);
        assert!(
            !matches!(opened, Ok(Some(_))),
            "the listener sealed something for an unverified dialer"
        );
    }
    l.drain(*now);
}

#[test]
fn every_way_an_attempt_ends_counts_and_the_listener_gives_up_after_tries() {
    for secret in [Some(&b"the real secret"[..]), None] {
        let security = match secret {
            Some(_) => super::secret("the real secret"),
            None => Security::VerifyCode,
        };
        // In verify-code mode a stranger's honest HELLO does verify (the
        // users' code comparison is what catches it); forged HELLOs are
        // covered below.
        let endings: &[Ending] = match secret {
            Some(_) => &[
                Ending::WrongHello,
                Ending::Fin,
                Ending::Reset,
                Ending::Timeout,
            ],
            None => &[Ending::Fin, Ending::Reset, Ending::Timeout],
        };
        for &how in endings {
            let mut l = listener(security.clone(), 3);
            let mut now = Instant::now();
            // The attacker guesses with a wrong secret (in verify-code mode
            // it simply has no way to produce the listener's HELLO keys
            // without the commitment it made).
            let guess = secret.map(|_| &b"a wrong guess"[..]);
            for i in 0..3 {
                attempt(&mut l, LinkId(100 + i), guess, how, &mut now);
                let c = counted(&l);
                assert_eq!(c.len(), i + 1, "{how:?}: every attempt is reported");
                assert!(c.iter().all(|&x| x), "{how:?}: and counted");
            }
            match l.s.status() {
                Status::Ended(Err(Error::AuthFailed(m))) => {
                    assert!(
                        m.contains("3 failed attempts") && m.contains("guessing"),
                        "{m}"
                    )
                }
                other => panic!("{how:?}: expected giving up, got {other:?}"),
            }
            assert!(l.actions.contains(&Action::StopAccepting));
        }
    }
}

#[test]
fn a_wrong_hello_in_verify_code_mode_is_an_attempt_too() {
    // In verify-code mode an honest key exchange with a stranger gives both
    // sides keys; a HELLO under other keys is still a failed attempt.
    let mut l = listener(Security::VerifyCode, 3);
    let now = Instant::now();
    l.s.accept(LINK, 1, now);
    let mut a = ScriptedDialer::new(LINK, None, 5);
    assert!(a.exchange_keys(&mut l.s, now));
    a.push_to(&mut l.s, &[0, 30, 1, 2, 3], now); // a forged HELLO header
    a.push_to(&mut l.s, &[0u8; 30], now);
    l.drain(now);
    assert_eq!(counted(&l), vec![true]);
}

#[test]
fn failures_before_our_key_material_cost_no_attempt() {
    let mut l = listener(super::secret("s"), 1);
    let now = Instant::now();
    let cases: [&[u8]; 3] = [
        b"GET / HTTP/1.1\r\n\r\n",
        b"p2pchat/3 sas\n",
        b"p2pchat/9 future\n",
    ];
    for (i, bytes) in cases.iter().enumerate() {
        let id = LinkId(200 + i);
        l.s.accept(id, i as u128, now);
        let buf = l.s.receive_buf(id);
        buf[..bytes.len()].copy_from_slice(bytes);
        l.s.received(id, bytes.len(), now);
        l.drain(now);
    }
    // A silent one, dropped at its preface deadline.
    l.s.accept(LinkId(300), 9, now);
    l.s.handle_timeout(now + link::FIRST_FLIGHT_DEADLINE);
    l.drain(now);
    assert_eq!(
        counted(&l),
        vec![false, false, false],
        "silence is not even reported"
    );
    assert_eq!(
        l.s.status(),
        Status::Running,
        "with --tries 1 it still waits"
    );
}

#[test]
fn the_listener_seals_nothing_until_the_dialers_hello_verifies() {
    for (security, first_flight) in [
        (Security::VerifyCode, 14 + 32), // preface, E_l
        (super::secret("s"), 15 + 33),   // preface, SPAKE2 message B
    ] {
        let mut p = Pair::new(security.clone(), security);
        p.step_until(|p| p.listener.s.is_established());
        assert_eq!(
            p.listener.sent.len(),
            first_flight,
            "before the dialer's HELLO, only the key exchange"
        );
        p.run();
        assert!(p.dialer.s.is_established());
    }
}

#[test]
fn the_dialer_sends_its_hello_and_data_in_one_flight_after_the_keys() {
    let mut p = Pair::default_mode();
    let now = p.now;
    // Dialer: preface + C. Listener: preface + E_l.
    flow(&mut p.dialer, &mut p.listener, &mut p.d2l, now, true);
    flow(&mut p.listener, &mut p.dialer, &mut p.l2d, now, true);
    // With the keys in, the dialer may send data before the room is up.
    assert!(!p.dialer.s.is_established() && p.dialer.s.can_take_input());
    p.dialer.input(b"early data", now);
    let flight = p.dialer.s.to_send(LINK).len();
    let hello = crate::protocol::record::OVERHEAD + "dana".len();
    let data = crate::protocol::record::OVERHEAD + "early data".len();
    assert_eq!(
        flight,
        32 + hello + data,
        "E_d, HELLO and DATA in one write"
    );
    p.run();
    assert_eq!(p.listener.shown, b"early data");
}

#[test]
fn the_first_peer_to_confirm_gets_the_room_and_the_rest_are_closed() {
    let mut l = listener(super::secret("s"), 3);
    let now = Instant::now();
    let (a, b, c) = (LinkId(20), LinkId(21), LinkId(22));
    for (id, src) in [(a, 1), (b, 2), (c, 3)] {
        l.s.accept(id, src, now);
    }
    let mut slow = ScriptedDialer::new(b, Some(b"s"), 2);
    assert!(slow.exchange_keys(&mut l.s, now));
    let mut fast = ScriptedDialer::new(a, Some(b"s"), 1);
    assert!(fast.exchange_keys(&mut l.s, now));
    let hello = fast.record(Kind::Hello, b"alice");
    fast.push_to(&mut l.s, &hello, now);
    l.drain(now);
    assert!(l.s.is_established());
    assert!(l
        .events
        .iter()
        .any(|e| matches!(e, Event::Joined { link, .. } if *link == a)));
    for other in [b, c] {
        assert!(
            l.actions.contains(&Action::Close(other)),
            "{other:?} closed"
        );
    }
    assert!(l.actions.contains(&Action::StopAccepting));
    // A late HELLO from the slow one reaches nobody; a new dial is refused.
    let late = slow.record(Kind::Hello, b"bob");
    slow.push_to(&mut l.s, &late, now);
    l.s.accept(LinkId(23), 4, now);
    l.drain(now);
    assert!(l.actions.contains(&Action::Close(LinkId(23))));
    assert!(
        counted(&l).is_empty(),
        "superseded connections are no attempts"
    );
}

#[test]
fn admission_caps_hold_and_clients_short_of_their_first_flight_make_way() {
    use crate::session::room::{MAX_PENDING, MAX_PENDING_PER_SOURCE};
    let mut l = listener(Security::VerifyCode, 3);
    let now = Instant::now();
    let preface: &[u8] = b"p2pchat/3 sas\n";
    let mut flight = preface.to_vec();
    flight.extend_from_slice(&[7; 32]); // a commitment: the whole flight
    let send = |l: &mut Side, id: LinkId, bytes: &[u8]| {
        l.s.receive_buf(id)[..bytes.len()].copy_from_slice(bytes);
        l.s.received(id, bytes.len(), now);
    };
    // One source fills its share with whole first flights.
    for i in 0..MAX_PENDING_PER_SOURCE {
        let id = LinkId(40 + i);
        l.s.accept(id, 1, now);
        send(&mut l, id, &flight);
    }
    l.s.accept(LinkId(60), 1, now + Duration::from_millis(1));
    l.drain(now);
    assert!(
        l.actions.iter().any(|a| matches!(a,
            Action::Linger { link, flush, .. } if *link == LinkId(60) && flush == b"p2pchat/3 busy\n")),
        "beyond the per-source cap a newcomer is told busy: {:?}",
        l.actions
    );
    // Others fill the rest with a preface and nothing more; the next
    // newcomer evicts the oldest of them, never a whole first flight.
    for i in 0..(MAX_PENDING - MAX_PENDING_PER_SOURCE) {
        let id = LinkId(70 + i);
        l.s.accept(id, 2 + i as u128, now + Duration::from_millis(2 + i as u64));
        send(&mut l, id, preface);
    }
    l.s.accept(LinkId(90), 50, now + Duration::from_millis(20));
    l.drain(now);
    assert!(
        l.actions.contains(&Action::Close(LinkId(70))),
        "the oldest preface-only one made way"
    );
    assert!(!l.actions.contains(&Action::Close(LinkId(90))));
    for i in 0..MAX_PENDING_PER_SOURCE {
        assert!(!l.actions.contains(&Action::Close(LinkId(40 + i))));
    }
    // A preface alone is dropped, without a word, at the first-flight
    // deadline; whole flights wait for the handshake deadline.
    l.s.handle_timeout(now + Duration::from_millis(25) + link::FIRST_FLIGHT_DEADLINE);
    l.drain(now);
    for i in 1..(MAX_PENDING - MAX_PENDING_PER_SOURCE) {
        assert!(l.actions.contains(&Action::Close(LinkId(70 + i))));
    }
    for i in 0..MAX_PENDING_PER_SOURCE {
        assert!(!l.actions.contains(&Action::Close(LinkId(40 + i))));
    }
    assert!(
        counted(&l).is_empty(),
        "no attempt, no word: {:?}",
        l.events
    );
    // With every slot holding a whole first flight, the newcomer is busy.
    for i in 0..(MAX_PENDING - MAX_PENDING_PER_SOURCE) {
        let id = LinkId(100 + i);
        l.s.accept(id, 200 + i as u128, now + Duration::from_millis(30));
        send(&mut l, id, &flight);
    }
    l.s.accept(LinkId(120), 300, now + Duration::from_millis(40));
    l.drain(now);
    assert!(l
        .actions
        .iter()
        .any(|a| matches!(a, Action::Linger { link, .. } if *link == LinkId(120))));
}

#[test]
fn failed_attempts_are_shown_with_the_code_of_the_peer_who_got_in() {
    let mut l = listener(Security::VerifyCode, 3);
    let mut now = Instant::now();
    attempt(&mut l, LinkId(30), None, Ending::Fin, &mut now);
    let mut real = Side::new(
        session(config(Role::Dialer, Security::VerifyCode, "dana"), 4),
        LINK,
    );
    real.s.connected(LINK, now);
    l.s.accept(LINK, 1, now);
    let (mut d2l, mut l2d) = (Vec::new(), Vec::new());
    for _ in 0..10 {
        flow(&mut real, &mut l, &mut d2l, now, true);
        flow(&mut l, &mut real, &mut l2d, now, true);
    }
    let joined = l.events.iter().find_map(|e| match e {
        Event::Joined {
            failed_attempts,
            verify_code,
            ..
        } => Some((*failed_attempts, verify_code.clone())),
        _ => None,
    });
    let (failed, code) = joined.expect("the real peer joined");
    assert_eq!(failed, 1);
    assert_eq!(code, real.code());
}

#[test]
fn a_seeded_handshake_is_reproducible() {
    let wire = |seed: u64| {
        let now = Instant::now();
        let mut d = Side::new(
            session(config(Role::Dialer, Security::VerifyCode, "d"), seed),
            LINK,
        );
        let mut l = Side::new(
            session(config(Role::Listener, Security::VerifyCode, "l"), seed + 1),
            LINK,
        );
        d.s.connected(LINK, now);
        l.s.accept(LINK, 1, now);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for _ in 0..10 {
            flow(&mut d, &mut l, &mut a, now, true);
            flow(&mut l, &mut d, &mut b, now, true);
        }
        let code = d.code();
        (d.sent, l.sent, code)
    };
    assert_eq!(wire(11), wire(11));
    assert_ne!(wire(11).2, wire(13).2);
}

#[test]
fn control_records_with_a_payload_break_the_protocol() {
    for kind in [Kind::Eof, Kind::Bye, Kind::Ping, Kind::Done] {
        let mut l = listener(Security::VerifyCode, 3);
        let now = Instant::now();
        l.s.accept(LINK, 1, now);
        let mut d = ScriptedDialer::new(LINK, None, 3);
        assert!(d.exchange_keys(&mut l.s, now));
        let hello = d.record(Kind::Hello, b"d");
        d.push_to(&mut l.s, &hello, now);
        let bad = d.record(kind, b"x");
        d.push_to(&mut l.s, &bad, now);
        l.drain(now);
        assert!(
            matches!(l.failure(), Error::Integrity(m) if m.contains("control record")),
            "{kind:?}"
        );
        assert!(l.reset(), "{kind:?}: a broken room is reset");
    }
}

#[test]
fn a_failed_handshake_lingers_and_a_clean_end_lingers_too() {
    let mut p = Pair::new(super::secret("a"), Security::VerifyCode);
    p.run();
    assert!(p
        .dialer
        .actions
        .iter()
        .any(|a| matches!(a, Action::Linger { until, .. } if *until == p.now + crate::session::room::ABORT_DRAIN)));
    let mut p = Pair::default_mode();
    p.run();
    p.finish();
    p.assert_both(Status::Ended(Ok(())));
    for side in [&p.dialer, &p.listener] {
        assert!(side
            .actions
            .iter()
            .any(|a| matches!(a, Action::Linger { until, .. } if *until == p.now + crate::session::room::LINGER)));
    }
}

#[test]
fn no_more_than_tries_key_exchanges_are_ever_in_flight() {
    for security in [Security::VerifyCode, super::secret("s")] {
        let secret = matches!(security, Security::Secret(_)).then_some(&b"guess"[..]);
        let mut l = listener(security, 3);
        let now = Instant::now();
        // Four strangers start at once; only three are answered.
        let mut guessers: Vec<ScriptedDialer> = (0..4)
            .map(|i| {
                let id = LinkId(50 + i);
                l.s.accept(id, i as u128, now);
                let mut g = ScriptedDialer::new(id, secret, 60 + i as u64);
                let first = g.take_tx();
                g.push_to(&mut l.s, &first, now);
                g.pull_from(&mut l.s, now);
                g
            })
            .collect();
        let answered: Vec<bool> = guessers
            .iter()
            .map(|g| !g.received.is_empty() && g.received.len() > 15)
            .collect();
        assert_eq!(answered, vec![true, true, true, false], "the fourth waits");
        // While one of the three ends, the fourth is let in; after three
        // failures the listener gives up, and the fourth got nothing more.
        for g in guessers.iter_mut().take(3) {
            l.s.transport_closed(g.link, now);
        }
        l.drain(now);
        let last = &mut guessers[3];
        last.pull_from(&mut l.s, now);
        assert!(
            last.received.len() <= 15,
            "no key material for a fourth guess"
        );
        assert!(matches!(l.failure(), Error::AuthFailed(_)));
    }
}
