//! One dialer and one listener: the room from handshake to goodbye.

use std::time::{Duration, Instant};

use super::*;
use crate::protocol::record::OVERHEAD;

#[test]
fn plain_pair_is_byte_exact_with_half_close() {
    let mut p = Pair::new(Security::Plain, Security::Plain);
    let now = p.now;
    p.dialer.input(b"hello", now);
    p.dialer.s.input_ended(now);
    p.run();
    assert!(p.dialer.sent_fin(), "our EOF is a write shutdown");
    p.listener.s.transport_closed(LINK, now);
    p.run();
    assert_eq!(p.listener.shown, b"hello");
    assert!(p.listener.events.contains(&Event::PeerDone));
    // The listener still sends after the dialer's half-close.
    p.listener.input(b"late reply", now);
    p.listener.s.input_ended(now);
    p.run();
    p.dialer.s.transport_closed(LINK, now);
    p.run();
    assert_eq!(p.dialer.shown, b"late reply");
    p.assert_both(Status::Ended(Ok(())));
}

#[test]
fn plain_mode_spots_an_encrypted_peer() {
    let mut p = Pair::new(Security::VerifyCode, Security::Plain);
    p.run();
    // In plain mode bytes are data: the encrypted dialer's first flight is
    // shown exactly, with a warning beside it, and nothing is refused.
    assert!(p.listener.events.contains(&Event::PeerLooksEncrypted));
    assert_eq!(p.listener.shown, p.dialer.sent, "every byte, as sent");
    assert_eq!(p.listener.s.status(), Status::Running);
}

#[test]
fn plain_data_that_only_looks_like_a_preface_is_shown() {
    let mut p = Pair::new(Security::Plain, Security::Plain);
    let now = p.now;
    p.dialer.input(b"p2pchat/2 s", now);
    p.run();
    assert_eq!(p.listener.shown, b"p2pchat/2 s", "nothing is held back");
    p.dialer.input(b"omething else\n", now);
    p.run();
    assert_eq!(p.listener.shown, b"p2pchat/2 something else\n");
    assert!(!p.listener.events.contains(&Event::PeerLooksEncrypted));

    // Exactly a preface line, as a plain stream: delivered, and warned of.
    let mut p = Pair::new(Security::Plain, Security::Plain);
    p.dialer.input(b"p2pchat/3 pake\nmore", now);
    p.run();
    assert_eq!(p.listener.shown, b"p2pchat/3 pake\nmore");
    assert!(p.listener.events.contains(&Event::PeerLooksEncrypted));
}

#[test]
fn verify_code_mode_agrees_and_carries_data_both_ways() {
    let mut p = Pair::default_mode();
    p.run();
    let (dc, lc) = (p.dialer.code().unwrap(), p.listener.code().unwrap());
    assert_eq!(dc, lc);
    assert_eq!(dc.len(), 7);
    assert!(p.dialer.events.contains(&Event::Joined {
        link: LINK,
        name: Some("lee".into()),
        verify_code: Some(dc.clone()),
        failed_attempts: 0,
    }));
    let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let now = p.now;
    let mut fed = 0;
    while fed < big.len() {
        fed += p.dialer.input(&big[fed..], now);
        p.listener.input(b"x", now);
        p.run();
    }
    p.finish();
    assert!(p.listener.shown == big);
    // The listener fed one "x" per turn while the dialer's data flowed.
    assert!(!p.dialer.shown.is_empty() && p.dialer.shown.iter().all(|&b| b == b'x'));
    p.assert_both(Status::Ended(Ok(())));
    let sent = String::from_utf8_lossy(&p.dialer.sent);
    assert!(sent.starts_with("p2pchat/3 sas\n"));
}

#[test]
fn a_reader_that_takes_odd_pieces_gets_every_byte_in_order() {
    // The output is a 2 MiB ring that stays full while its reader takes
    // less per turn than the link brings: what it hands out stops at the
    // wrap, and the rest follows, in order.
    let mut p = Pair::default_mode();
    p.run();
    p.listener.reading = false;
    let big: Vec<u8> = (0..9_000_000u32)
        .map(|i| (i * 13 + i / 4099) as u8)
        .collect();
    let mut fed = 0;
    for _ in 0..100_000 {
        let now = p.now;
        if fed < big.len() {
            fed += p.dialer.input(&big[fed..], now);
            if fed == big.len() {
                p.dialer.s.input_ended(now);
            }
        }
        p.step();
        let out = p.listener.s.output();
        let n = out.len().min(7_777);
        p.listener.shown.extend_from_slice(&out[..n]);
        p.listener.s.output_written(n, now);
        if p.listener.shown.len() == big.len() {
            break;
        }
    }
    assert!(p.listener.shown == big, "every byte, in order");
}

#[test]
fn the_chat_plaintext_never_appears_on_the_wire() {
    let mut p = Pair::default_mode();
    p.run();
    let now = p.now;
    p.dialer.input(b"CANARY-1234 secret plans\n", now);
    p.finish();
    assert_eq!(p.listener.shown, b"CANARY-1234 secret plans\n");
    let wire = [p.dialer.sent.clone(), p.listener.sent.clone()].concat();
    assert!(!wire.windows(6).any(|w| w == b"CANARY"));
}

#[test]
fn a_shared_secret_opens_the_room() {
    let mut p = Pair::new(secret("correct horse"), secret("correct horse"));
    p.run();
    assert!(p.dialer.s.is_established() && p.listener.s.is_established());
    assert_eq!(p.dialer.code(), None, "no code to compare with a secret");
    let now = p.now;
    p.listener.input(b"welcome", now);
    p.finish();
    assert_eq!(p.dialer.shown, b"welcome");
}

#[test]
fn different_secrets_fail_on_both_sides() {
    let mut p = Pair::new(secret("alpha"), secret("bravo"));
    p.run();
    // The listener checks the dialer's HELLO and drops the attempt; it sends
    // nothing sealed, so the dialer learns it only from the FIN that follows.
    assert!(p.listener.events.iter().any(|e| matches!(e,
        Event::FailedAttempt { why, counted: true, .. } if why.contains("secrets differ"))));
    assert_eq!(p.listener.s.status(), Status::Running, "it keeps waiting");
    p.deliver_ends();
    assert!(matches!(p.dialer.failure(), Error::Handshake(m) if m.contains("secrets differ")));
    assert!(p.dialer.shown.is_empty() && p.listener.shown.is_empty());
}

#[test]
fn mode_mismatch_is_named_on_both_sides() {
    let mut p = Pair::new(secret("alpha"), Security::VerifyCode);
    p.run();
    assert!(matches!(p.dialer.failure(), Error::Handshake(m) if m.contains("we do:")));
    assert!(p.listener.events.iter().any(|e| matches!(e,
        Event::FailedAttempt { why, counted: false, .. } if why.contains("we do not"))));
}

#[test]
fn a_netcat_peer_is_not_p2pchat() {
    let now = Instant::now();
    let mut l = Side::new(
        session(config(Role::Listener, Security::VerifyCode, "lee"), 3),
        LINK,
    );
    l.s.accept(LINK, 1, now);
    l.feed(b"hello there\n", now);
    let why = l.events.iter().find_map(|e| match e {
        Event::FailedAttempt { why, counted, .. } => Some((why.clone(), *counted)),
        _ => None,
    });
    let (why, counted) = why.expect("a failed attempt");
    assert!(why.contains("not speaking the p2pchat protocol") && why.contains("hello there"));
    assert!(!counted, "nothing of ours was revealed: not an attempt");
    assert_eq!(l.s.status(), Status::Running, "the listener keeps waiting");
    assert!(l.s.output().is_empty());
}

#[test]
fn a_silent_peer_times_out_the_handshake() {
    let mut p = Pair::default_mode();
    p.connected = false;
    // The listener drops a connection that sent no preface within 2 s,
    // silently, and keeps waiting for the real peer.
    p.advance(link::FIRST_FLIGHT_DEADLINE);
    assert_eq!(p.listener.s.status(), Status::Running);
    assert!(p.listener.actions.contains(&Action::Close(LINK)));
    assert!(p.listener.events.is_empty(), "silence is not reported");
    p.advance(HANDSHAKE - link::FIRST_FLIGHT_DEADLINE - Duration::from_millis(1));
    assert_eq!(p.dialer.s.status(), Status::Running);
    p.advance(Duration::from_millis(2));
    assert!(
        matches!(p.dialer.failure(), Error::Handshake(m) if m.contains("did not finish in time"))
    );
}

#[test]
fn eof_during_the_handshake_is_a_handshake_error() {
    let mut p = Pair::new(secret("s"), secret("s"));
    // The listener has sent SPAKE2 message B when the dialer vanishes.
    p.step();
    p.listener.s.transport_closed(LINK, p.now);
    p.listener.drain(p.now);
    assert!(p.listener.events.iter().any(|e| matches!(e,
        Event::FailedAttempt { why, counted: true, .. } if why.contains("secrets differ"))));
}

/// Runs the handshake, then lets `tamper` change the dialer's next records
/// before the listener reads them.
fn tampered(tamper: impl FnOnce(&mut Vec<u8>)) -> Pair {
    let mut p = Pair::default_mode();
    p.run();
    let now = p.now;
    p.dialer.input(b"first", now);
    let n = p.dialer.s.to_send(LINK).len();
    let mut wire = p.dialer.s.to_send(LINK).to_vec();
    p.dialer.s.sent(LINK, n, now);
    p.dialer.input(b"second", now);
    let n2 = p.dialer.s.to_send(LINK).len();
    wire.extend_from_slice(p.dialer.s.to_send(LINK));
    p.dialer.s.sent(LINK, n2, now);
    tamper(&mut wire);
    p.d2l = wire;
    p.run();
    p
}

#[test]
fn a_flipped_bit_aborts_with_an_integrity_error_and_shows_nothing() {
    let p = tampered(|w| w[4] ^= 0x40);
    assert!(matches!(p.listener.failure(), Error::Integrity(_)));
    assert!(p.listener.shown.is_empty());
}

#[test]
fn replayed_reordered_dropped_and_truncated_records_fail() {
    let rec = OVERHEAD + 5; // "first" record size
    let p = tampered(|w| {
        let first = w[..rec].to_vec();
        w.splice(rec..rec, first);
    });
    assert!(
        matches!(p.listener.failure(), Error::Integrity(_)),
        "replay"
    );
    assert_eq!(
        p.listener.shown, b"first",
        "only the authentic record was shown"
    );

    let p = tampered(|w| {
        let first: Vec<u8> = w.drain(..rec).collect();
        w.extend(first);
    });
    assert!(
        matches!(p.listener.failure(), Error::Integrity(_)),
        "reorder"
    );
    assert!(p.listener.shown.is_empty());

    let p = tampered(|w| {
        w.drain(..rec);
    });
    assert!(matches!(p.listener.failure(), Error::Integrity(_)), "drop");

    let mut p = tampered(|w| w.truncate(rec + 3));
    p.listener.s.transport_closed(LINK, p.now);
    p.run();
    assert!(
        matches!(p.listener.failure(), Error::Lost(m) if m.contains("middle of a record")),
        "a record cut short is a lost connection (a crash cuts as easily as an attacker)"
    );
    assert_eq!(p.listener.shown, b"first");

    // Cut at a record boundary instead: the peer is gone, not forged.
    let mut p = tampered(|w| w.truncate(rec));
    p.listener.s.transport_closed(LINK, p.now);
    p.run();
    assert!(
        matches!(p.listener.failure(), Error::Lost(m) if m.contains("the connection dropped without a goodbye")),
        "a cut between records"
    );
    assert_eq!(p.listener.shown, b"first");
}

#[test]
fn a_reflected_record_fails() {
    let mut p = Pair::default_mode();
    p.run();
    let now = p.now;
    p.dialer.input(b"to lee", now);
    let wire = p.dialer.s.to_send(LINK).to_vec();
    let n = wire.len();
    p.dialer.s.sent(LINK, n, now);
    p.l2d = wire; // sent back to the dialer
    p.run();
    assert!(matches!(p.dialer.failure(), Error::Integrity(_)));
}

#[test]
fn eof_is_half_close_and_bye_ends_the_room() {
    let mut p = Pair::default_mode();
    p.run();
    let now = p.now;
    p.dialer.s.input_ended(now);
    p.run();
    assert!(p.listener.events.contains(&Event::PeerDone));
    assert_eq!(
        p.dialer.s.status(),
        Status::Running,
        "still reading after EOF"
    );
    p.listener.input(b"after your eof", now);
    p.run();
    assert_eq!(p.dialer.shown, b"after your eof");
    p.listener.s.input_ended(now);
    p.listener.s.leave(LeaveReason::User, now);
    p.run();
    assert!(p.dialer.events.contains(&Event::PeerLeft));
    p.assert_both(Status::Ended(Ok(())));
}

#[test]
fn leaving_after_eof_still_says_goodbye() {
    let mut p = Pair::default_mode();
    p.run();
    let now = p.now;
    p.dialer.s.input_ended(now);
    p.run();
    p.dialer.s.leave(LeaveReason::User, now);
    p.run();
    assert!(p.listener.events.contains(&Event::PeerLeft));
    assert_eq!(p.listener.s.status(), Status::Ended(Ok(())));
}

#[test]
fn an_eof_without_goodbye_is_a_lost_connection() {
    let mut p = Pair::default_mode();
    p.run();
    p.listener.s.transport_closed(LINK, p.now);
    assert!(
        matches!(p.listener.failure(), Error::Lost(m) if m.contains("the connection dropped without a goodbye"))
    );
}

#[test]
fn idle_pairs_ping_and_stay_alive() {
    let mut p = Pair::default_mode();
    p.run();
    let before = p.dialer.sent.len();
    p.advance(IDLE * 10);
    p.assert_both(Status::Running);
    let pings = (p.dialer.sent.len() - before) / OVERHEAD;
    // One PING per idle/3, no more: an idle room costs nothing else.
    assert!(
        (25..=31).contains(&pings),
        "{pings} pings in 10 idle periods"
    );
}

#[test]
fn a_silent_peer_is_declared_dead_after_the_idle_timeout() {
    let mut p = Pair::default_mode();
    p.run();
    p.connected = false; // the peer's host vanished
    p.advance(IDLE - Duration::from_millis(1));
    assert_eq!(p.listener.s.status(), Status::Running);
    p.advance(Duration::from_millis(2));
    assert!(matches!(p.listener.failure(), Error::Lost(m) if m.contains("no sign of life")));
}

#[test]
fn a_blocked_reader_does_not_blame_the_peer() {
    let mut p = Pair::default_mode();
    p.run();
    p.listener.reading = false; // our stdout is stalled
    let now = p.now;
    let data = vec![7u8; 8 << 20];
    let mut fed = 0;
    loop {
        let n = p.dialer.input(&data[fed..], now);
        p.run();
        if n == 0 {
            break;
        }
        fed += n;
    }
    assert!(fed < data.len(), "a stalled reader must stop the sender");
    assert!(
        fed as u64 <= crate::session::stream::MAIN_WINDOW + IO_CAP as u64,
        "at the credit: {fed}"
    );
    assert!(
        p.listener.s.can_receive(LINK),
        "the credit, not the socket, holds the sender back: the wire is still read"
    );
    assert!(
        p.dialer.s.input_buf().is_empty(),
        "and then the sender's input"
    );
    p.advance(IDLE * 3);
    assert_eq!(
        p.listener.s.status(),
        Status::Running,
        "our own stall is no dead peer"
    );
    assert_eq!(p.dialer.s.status(), Status::Running);
    // The reader comes back: everything arrives.
    p.listener.reading = true;
    loop {
        let n = p.dialer.input(&data[fed..], p.now);
        fed += n;
        if !p.step() && n == 0 {
            break;
        }
    }
    assert_eq!(fed, data.len());
    assert!(p.listener.shown == data);
}

#[test]
fn interrupting_the_handshake_fails_at_once_and_a_keyed_side_says_bye() {
    let mut p = Pair::default_mode();
    p.dialer.s.interrupted(Signal::Int, p.now);
    assert_eq!(p.dialer.failure(), Error::Interrupted(Signal::Int));
    // `/quit` or Ctrl-D before anyone is in the room ends it at once too,
    // and cuts nothing short.
    let mut p = Pair::default_mode();
    p.dialer.s.leave(LeaveReason::User, p.now);
    assert_eq!(p.dialer.s.status(), Status::Ended(Ok(())));
    // Also after the keys but before the peer's HELLO has arrived.
    let mut p = Pair::default_mode();
    p.step_until(|p| p.listener.s.is_established());
    assert!(p.listener.s.is_established() && !p.dialer.s.is_established());
    p.dialer.s.interrupted(Signal::Int, p.now);
    assert_eq!(p.dialer.failure(), Error::Interrupted(Signal::Int));
    // The listener is in the room already: it hears that the dialer left,
    // and does not wait for a resume.
    p.dialer.drain(p.now);
    p.run();
    p.deliver_ends();
    assert!(p.listener.events.contains(&Event::PeerLeft));
    assert!(
        matches!(p.listener.failure(), Error::Lost(m) if m.contains("left before it finished sending")),
        "{:?}",
        p.listener.s.status()
    );
}

#[test]
fn a_first_ctrl_c_leaves_and_exits_130_only_if_something_was_cut_short() {
    let mut p = Pair::default_mode();
    p.run();
    p.dialer.s.interrupted(Signal::Int, p.now);
    p.run();
    assert_eq!(
        p.dialer.failure(),
        Error::Interrupted(Signal::Int),
        "the peer was still sending"
    );
    assert!(p.listener.events.contains(&Event::PeerLeft));
    assert!(
        matches!(p.listener.failure(), Error::Lost(m) if m.contains("left before it finished sending")),
        "the receiver can tell its stream was cut short"
    );

    let mut p = Pair::default_mode();
    p.run();
    let now = p.now;
    p.dialer.s.input_ended(now);
    p.listener.s.input_ended(now);
    p.step_until(|p| p.dialer.events.contains(&Event::PeerDone));
    // Both EOFs crossed; the room may still be closing when Ctrl-C comes.
    p.dialer.s.interrupted(Signal::Int, now);
    p.run();
    assert_eq!(
        p.dialer.s.status(),
        Status::Ended(Ok(())),
        "nothing was lost"
    );
}

#[test]
fn a_second_ctrl_c_ends_at_once_with_a_reset() {
    let mut p = Pair::default_mode();
    p.run();
    p.connected = false; // the goodbye cannot get out
    p.dialer.s.interrupted(Signal::Int, p.now);
    p.dialer.s.interrupted(Signal::Int, p.now);
    p.dialer.drain(p.now);
    assert_eq!(p.dialer.failure(), Error::Interrupted(Signal::Int));
    assert!(p.dialer.reset());
}

#[test]
fn a_hang_up_while_leaving_lets_the_goodbye_go_on() {
    // A closing window: the kernel's SIGHUP and the shell's, or one right
    // after a Ctrl-C. Neither is a second signal that ends at once.
    for first in [Signal::Hup, Signal::Int] {
        let mut p = Pair::default_mode();
        p.run();
        p.connected = false; // the goodbye is still on its way
        p.dialer.s.interrupted(first, p.now);
        p.dialer.s.interrupted(Signal::Hup, p.now);
        p.dialer.drain(p.now);
        assert!(!p.dialer.reset(), "{first:?} then SIGHUP must not reset");
        assert_eq!(p.dialer.s.status(), Status::Running, "{first:?}");
        p.connected = true;
        p.run();
        assert!(
            p.listener.events.contains(&Event::PeerLeft),
            "{first:?}: the peer hears the goodbye"
        );
    }
}

#[test]
fn the_peer_name_is_sanitised() {
    let mut p = Pair::with_names(
        Security::VerifyCode,
        Security::VerifyCode,
        "\u{1b}]52;c;evil\u{7}\"mallory\"",
        "lee",
    );
    p.run();
    let name = p.listener.events.iter().find_map(|e| match e {
        Event::Joined { name, .. } => name.clone(),
        _ => None,
    });
    assert_eq!(name.as_deref(), Some("]52;c;evilmallory"));
}

/// A man in the middle runs one handshake with each side and relays.
#[test]
fn a_man_in_the_middle_gets_different_codes() {
    let now = Instant::now();
    let side = |role, name, seed| {
        Side::new(
            session(config(role, Security::VerifyCode, name), seed),
            LINK,
        )
    };
    let mut d = side(Role::Dialer, "dana", 1);
    let mut l = side(Role::Listener, "lee", 2);
    let mut m_l = side(Role::Listener, "dana", 3); // faces d
    let mut m_d = side(Role::Dialer, "lee", 4); // faces l
    d.s.connected(LINK, now);
    m_d.s.connected(LINK, now);
    l.s.accept(LINK, 1, now);
    m_l.s.accept(LINK, 1, now);
    let (mut w1, mut w2, mut w3, mut w4) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..20 {
        flow(&mut d, &mut m_l, &mut w1, now, true);
        flow(&mut m_l, &mut d, &mut w2, now, true);
        flow(&mut m_d, &mut l, &mut w3, now, true);
        flow(&mut l, &mut m_d, &mut w4, now, true);
    }
    assert!(d.s.is_established() && l.s.is_established());
    assert_ne!(
        d.code().unwrap(),
        l.code().unwrap(),
        "the codes reveal the man in the middle"
    );
    assert_eq!(d.code(), m_l.code());
    assert_eq!(l.code(), m_d.code());
}

#[test]
fn both_sides_confirm_each_eof_before_the_room_ends() {
    let mut p = Pair::default_mode();
    p.run();
    let now = p.now;
    p.listener.s.input_ended(now); // the listener had nothing to say
    p.run();
    p.dialer.input(b"all of it", now);
    p.dialer.s.input_ended(now);
    // The listener's EOF is in, but nothing confirms ours arrived yet: a
    // FIN now (forged by anyone on the path) is a lost connection.
    let mut early = Pair::default_mode();
    early.run();
    early.listener.s.input_ended(now);
    early.run();
    early.dialer.s.input_ended(now);
    early.dialer.s.transport_closed(LINK, now);
    assert!(matches!(early.dialer.failure(), Error::Lost(m) if m.contains("confirming")));
    // With the exchange completed, both end cleanly.
    p.run();
    assert_eq!(p.listener.shown, b"all of it");
    p.assert_both(Status::Ended(Ok(())));
    assert!(
        p.dialer.sent_fin() && p.listener.sent_fin(),
        "both linger after a FIN"
    );
}

#[test]
fn an_eof_before_the_peers_hello_is_a_handshake_failure() {
    let mut p = Pair::default_mode();
    // The listener has the dialer's HELLO; the dialer not yet the listener's.
    p.step_until(|p| p.listener.s.is_established());
    assert!(!p.dialer.s.is_established());
    p.dialer.s.transport_closed(LINK, p.now);
    assert!(
        matches!(p.dialer.failure(), Error::Handshake(m) if m.contains("after the key exchange"))
    );
}

#[test]
fn a_sender_whose_peer_stopped_reading_is_told_how_much_was_lost() {
    let mut p = Pair::default_mode();
    p.run();
    let now = p.now;
    p.dialer.input(b"read this", now);
    p.run();
    // The listener's consumer dies: it drops what still arrives and leaves.
    p.listener.s.output_closed(now);
    p.dialer.input(b"and this never arrives", now);
    p.dialer.s.input_ended(now);
    p.run();
    let e = p.dialer.failure();
    assert!(
        matches!(&e, Error::Lost(m) if m.contains("stopped reading") && m.contains("22 B of your 31 B of input was not delivered")),
        "{e:?}"
    );
    assert_eq!(e.exit_code(), 1);
}

#[test]
fn a_reader_gone_during_the_handshake_is_a_peer_that_stopped_reading_not_tampering() {
    // `p2pchat listen P | true`: the consumer is gone while a dialer's
    // handshake is under way.
    let mut p = Pair::default_mode();
    let now = p.now;
    // The dialer has its keys: its HELLO and data are on their way.
    p.step_until(|p| p.dialer.s.can_take_input());
    assert!(!p.listener.s.is_established());
    assert_eq!(p.dialer.input(b"data for nobody", now), 15);
    p.listener.s.output_closed(now);
    p.dialer.s.input_ended(now);
    p.run();
    p.deliver_ends();
    let e = p.dialer.failure();
    assert!(
        matches!(&e, Error::Lost(m) if m.contains("stopped reading")),
        "{e:?}"
    );
    assert_eq!(e.exit_code(), 1);
}

#[test]
fn a_peer_that_read_everything_and_left_is_a_clean_end() {
    let mut p = Pair::default_mode();
    p.run();
    let now = p.now;
    p.dialer.input(b"all read\n", now);
    p.run();
    assert_eq!(p.listener.shown, b"all read\n");
    // /quit at the listener's prompt: its input ends, then it leaves.
    p.listener.s.input_ended(now);
    p.listener.s.leave(LeaveReason::User, now);
    p.run();
    p.assert_both(Status::Ended(Ok(())));
}

fn code(s: &str) -> Security {
    Security::Code(crate::protocol::code::Code::parse(s).unwrap())
}

#[test]
fn one_time_codes_of_one_room_meet() {
    let c = "482913-acid-bulk-cactus";
    let mut p = Pair::new(code(c), code(c));
    p.run();
    assert!(
        p.dialer.s.is_established() && p.listener.s.is_established(),
        "{:?} {:?}",
        p.dialer.events,
        p.listener.events
    );
    let now = p.now;
    p.dialer.input(b"hi", now);
    p.finish();
    assert_eq!(p.listener.shown, b"hi");
}

#[test]
fn the_room_is_bound_into_the_exchange_same_words_other_room_fail() {
    // What a relay that cross-pairs rooms produces, even with equal words.
    let mut p = Pair::new(
        code("111111-acid-bulk-cactus"),
        code("222222-acid-bulk-cactus"),
    );
    p.run();
    assert!(p
        .listener
        .events
        .iter()
        .any(|e| matches!(e, Event::FailedAttempt { counted: true, .. })));
    assert!(
        matches!(p.listener.failure(), Error::AuthFailed(m) if m.contains("the code is burned"))
    );
    assert!(p.dialer.shown.is_empty() && p.listener.shown.is_empty());
    // Nor does a code meet a shared secret of the same words.
    let mut p = Pair::new(code("111111-acid-bulk-cactus"), secret("acid-bulk-cactus"));
    p.run();
    assert!(p
        .listener
        .events
        .iter()
        .any(|e| matches!(e, Event::FailedAttempt { counted: true, .. })));
}

#[test]
fn the_peer_stops_sending_only_after_its_last_bytes_were_shown() {
    let mut p = Pair::default_mode();
    p.run();
    p.listener.reading = false; // stdout slow: the bytes wait in output
    let now = p.now;
    p.dialer.input(b"last words\n", now);
    p.dialer.s.input_ended(now);
    p.run();
    assert_eq!(p.listener.s.output(), b"last words\n");
    let done = |side: &Side| side.events.iter().any(|e| matches!(e, Event::PeerDone));
    assert!(
        !done(&p.listener),
        "\"stopped sending\" must not come before the bytes it follows"
    );
    p.listener.reading = true;
    p.listener.drain(now);
    assert_eq!(p.listener.shown, b"last words\n");
    assert!(done(&p.listener), "and comes once they were shown");
}

/// Both streams ended and the listener's is confirmed; the dialer's EOF
/// has reached the listener, whose DONE waits in its buffer, unsent.
fn done_waiting_at_the_listener() -> (Pair, Instant) {
    let mut p = Pair::default_mode();
    p.run();
    let now = p.now;
    p.listener.s.input_ended(now);
    p.run();
    p.dialer.s.input_ended(now);
    let mut d2l = std::mem::take(&mut p.d2l);
    flow(&mut p.dialer, &mut p.listener, &mut d2l, now, true);
    (p, now)
}

#[test]
fn a_heartbeat_behind_our_done_does_not_turn_the_peers_clean_fin_into_a_loss() {
    let (mut p, now) = done_waiting_at_the_listener();
    // A heartbeat is sealed behind the DONE.
    let later = now + IDLE / 3 + Duration::from_millis(1);
    p.listener.s.handle_timeout(later);
    let tx = p.listener.s.to_send(LINK).to_vec();
    let ping = crate::protocol::record::OVERHEAD;
    assert!(tx.len() >= 2 * ping, "DONE and a PING wait: {}", tx.len());
    // The socket takes the DONE, not the PING; the dialer ends cleanly
    // and its FIN comes back.
    let k = tx.len() - ping;
    p.dialer.feed(&tx[..k], later);
    p.listener.s.sent(LINK, k, later);
    p.listener.drain(later);
    assert_eq!(p.dialer.s.status(), Status::Ended(Ok(())));
    assert!(p.dialer.sent_fin());
    p.listener.s.transport_closed(LINK, later);
    p.listener.drain(later);
    assert_eq!(p.listener.s.status(), Status::Ended(Ok(())));
}

#[test]
fn a_fin_before_our_done_left_is_still_a_loss() {
    // Nobody who ended cleanly can have sent it: the peer needs our DONE
    // first. (With resume, the room would go down and send it again.)
    let (mut p, now) = done_waiting_at_the_listener();
    assert!(!p.listener.s.to_send(LINK).is_empty(), "our DONE waits");
    p.listener.s.transport_closed(LINK, now);
    p.listener.drain(now);
    assert!(
        matches!(p.listener.s.status(), Status::Ended(Err(Error::Lost(_)))),
        "{:?}",
        p.listener.s.status()
    );
}
