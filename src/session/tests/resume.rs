//! Resume: a room whose connection is cut carries on over a new one, with
//! every byte delivered exactly once, in order, both ways.

use proptest::prelude::*;

use super::*;

const GRACE: Duration = Duration::from_secs(60);

fn resume_pair(seed: u64) -> Pair {
    resume_pair_rewinding(seed, false, false)
}

/// A resume pair whose sides read a rewindable input (a file) or not.
fn resume_pair_rewinding(seed: u64, dialer: bool, listener: bool) -> Pair {
    let mut dc = config(Role::Dialer, Security::VerifyCode, "dana");
    let mut lc = config(Role::Listener, Security::VerifyCode, "lee");
    dc.room.resume = Some(GRACE);
    lc.room.resume = Some(GRACE);
    dc.room.input_rewindable = dialer;
    lc.room.input_rewindable = listener;
    Pair::from_configs(dc, lc, seed)
}

/// Where a side's input is read next: moved back when its session asks
/// for its input again from an earlier offset, as the driver seeks stdin.
fn rewind(side: &mut Side, read: &mut usize, now: Instant) {
    if let Some(at) = side.s.rewind_needed() {
        assert!(at as usize <= *read, "a rewind goes back, never forward");
        *read = at as usize;
        side.rewinds += 1;
        side.s.input_rewound(now);
    }
}

impl Pair {
    /// Cuts the connection: of the bytes in flight only the first `keep_*`
    /// arrive (a cut may fall inside a record), and both sides see a reset.
    fn cut(&mut self, keep_d2l: usize, keep_l2d: usize) {
        self.d2l.truncate(keep_d2l.min(self.d2l.len()));
        self.l2d.truncate(keep_l2d.min(self.l2d.len()));
        let (d, l) = (self.dialer.link, self.listener.link);
        let (wd, wl) = (std::mem::take(&mut self.d2l), std::mem::take(&mut self.l2d));
        self.listener.feed(&wd, self.now);
        self.dialer.feed(&wl, self.now);
        let e = io::Error::from(io::ErrorKind::ConnectionReset);
        self.dialer.s.transport_failed(d, &e, self.now);
        self.listener.s.transport_failed(l, &e, self.now);
        self.dialer.drain(self.now);
        self.listener.drain(self.now);
    }

    /// The dialer asked to redial: a new connection, `link`, both ends.
    /// After a resume that failed, the dialer asks once its backoff is
    /// over: the time passes until then.
    fn reconnect(&mut self, link: LinkId) {
        while self.dialer.s.is_down() && !self.dialer.actions.contains(&Action::Redial) {
            let next = self.dialer.s.poll_timeout().expect("a redial is due");
            self.advance(next.saturating_duration_since(self.now));
        }
        assert!(
            self.dialer.actions.contains(&Action::Redial),
            "the dialer asks to redial: {:?}",
            self.dialer.actions
        );
        self.dialer.actions.retain(|a| *a != Action::Redial);
        self.listener.link = link;
        self.dialer.link = link;
        self.listener.s.accept(link, 1, self.now);
        self.dialer.s.connected(link, self.now);
        self.run();
    }
}

fn reconnections(side: &Side) -> usize {
    side.events
        .iter()
        .filter(|e| matches!(e, Event::Reconnected { .. }))
        .count()
}

/// Streams `a` from the dialer and `b` from the listener, cutting the
/// connection after the given numbers of input steps.
fn transfer_with_cuts(a: &[u8], b: &[u8], cuts: &[(usize, usize, usize)], seed: u64) -> Pair {
    transfer_with_cuts_rewinding(a, b, cuts, seed, (false, false))
}

/// As [`transfer_with_cuts`], with the dialer's and the listener's input
/// rewindable or not.
fn transfer_with_cuts_rewinding(
    a: &[u8],
    b: &[u8],
    cuts: &[(usize, usize, usize)],
    seed: u64,
    rewindable: (bool, bool),
) -> Pair {
    let mut p = resume_pair_rewinding(seed, rewindable.0, rewindable.1);
    p.run();
    let (mut fa, mut fb) = (0, 0);
    let mut next_link = 17;
    let mut cuts = cuts.to_vec();
    cuts.sort();
    for step in 0..100_000 {
        if let Some(&(at, kd, kl)) = cuts.first() {
            if step >= at {
                cuts.remove(0);
                p.cut(kd, kl);
                // A room that already ended has nothing to resume.
                if p.dialer.s.is_down() && p.dialer.s.status() == Status::Running {
                    p.reconnect(LinkId(next_link));
                    next_link += 1;
                }
            }
        }
        // Now and then a side stops reading its output, so data piles up
        // in flight and a cut loses some of it.
        p.listener.reading = (step / 25) % 2 == 0;
        p.dialer.reading = (step / 40) % 2 == 0;
        let now = p.now;
        rewind(&mut p.dialer, &mut fa, now);
        rewind(&mut p.listener, &mut fb, now);
        let (sa, sb) = ((fa + 7000).min(a.len()), (fb + 5000).min(b.len()));
        fa += p.dialer.input(&a[fa..sa], now);
        fb += p.listener.input(&b[fb..sb], now);
        // Ends go out as soon as the data is in, so cuts fall among
        // EOF and DONE too.
        if fa == a.len() {
            p.dialer.s.input_ended(now);
        }
        if fb == b.len() {
            p.listener.s.input_ended(now);
        }
        // A little of the wire at a time, so cuts find bytes in flight.
        p.step();
        let rewinding =
            p.dialer.s.rewind_needed().is_some() || p.listener.s.rewind_needed().is_some();
        if fa == a.len() && fb == b.len() && cuts.is_empty() && !rewinding {
            break;
        }
    }
    p.listener.reading = true;
    p.dialer.reading = true;
    // A resume that completes only now may still ask for input again.
    for _ in 0..100_000 {
        let now = p.now;
        rewind(&mut p.dialer, &mut fa, now);
        rewind(&mut p.listener, &mut fb, now);
        fa += p.dialer.input(&a[fa..], now);
        fb += p.listener.input(&b[fb..], now);
        if fa == a.len() {
            p.dialer.s.input_ended(now);
        }
        if fb == b.len() {
            p.listener.s.input_ended(now);
        }
        let rewinding =
            p.dialer.s.rewind_needed().is_some() || p.listener.s.rewind_needed().is_some();
        if !p.step() && fa == a.len() && fb == b.len() && !rewinding {
            break;
        }
    }
    p.finish();
    p.advance(Duration::from_secs(3));
    p.deliver_ends();
    p
}

#[test]
fn a_cut_mid_transfer_loses_and_doubles_nothing_either_way() {
    let a: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let b: Vec<u8> = (0..2_000_000u32).map(|i| (i * 13 % 241) as u8).collect();
    let p = transfer_with_cuts(
        &a,
        &b,
        &[(20, 30_000, 9_999), (90, 1, 0), (150, 0, 100_000)],
        5,
    );
    assert_eq!(p.listener.shown.len(), a.len());
    assert!(p.listener.shown == a, "dialer to listener intact");
    assert!(p.dialer.shown == b, "listener to dialer intact");
    p.assert_both(Status::Ended(Ok(())));
    assert_eq!(reconnections(&p.dialer), 3);
    assert_eq!(reconnections(&p.listener), 3);
    assert!(p
        .listener
        .events
        .iter()
        .any(|e| matches!(e, Event::ConnectionLost { .. })));
}

/// With a file for input nothing sealed is kept: a resume reads the input
/// again from the offset the peer reports, and every byte arrives once.
#[test]
fn a_file_input_is_read_again_instead_of_kept() {
    let a: Vec<u8> = (0..6_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut p = resume_pair_rewinding(3, true, false);
    p.run();
    // The listener's reader stalls: the dialer sends what the credit
    // allows and reads ahead; the cut loses what was in flight.
    p.listener.reading = false;
    let mut fa = 0;
    loop {
        let fed = p.dialer.input(&a[fa..], p.now);
        fa += fed;
        if !p.step() && fed == 0 {
            break;
        }
    }
    assert!(fa < a.len(), "the credit stopped the input");
    p.cut(0, 0);
    p.listener.reading = true;
    p.listener.drain(p.now);
    p.reconnect(LinkId(17));
    let before = fa;
    while fa < a.len() || p.dialer.s.rewind_needed().is_some() {
        rewind(&mut p.dialer, &mut fa, p.now);
        fa += p.dialer.input(&a[fa..], p.now);
        p.step();
    }
    assert_eq!(p.dialer.rewinds, 1);
    p.finish();
    p.advance(Duration::from_secs(3));
    p.deliver_ends();
    assert!(
        p.listener.shown == a,
        "{} of {} bytes, intact",
        p.listener.shown.len(),
        a.len()
    );
    p.assert_both(Status::Ended(Ok(())));
    assert!(before > 0);
}

#[test]
fn a_lost_connection_not_resumed_within_the_grace_period_ends_the_room() {
    let mut p = resume_pair(9);
    p.run();
    let now = p.now;
    p.dialer.input(b"never confirmed\n", now);
    p.cut(0, 0);
    p.advance(GRACE - Duration::from_secs(1));
    p.assert_both(Status::Running);
    p.advance(Duration::from_secs(2));
    let e = p.dialer.failure().to_string();
    assert!(e.contains("not resumed within 60 s"), "{e}");
    assert!(e.contains("16 bytes we sent were not confirmed"), "{e}");
    assert!(p
        .listener
        .failure()
        .to_string()
        .contains("not resumed within 60 s"));
}

/// A stranger who reaches the listener's port with a resume preface and
/// no resume key is turned away; the room goes on untouched.
#[test]
fn a_forged_resume_costs_the_room_nothing() {
    let mut p = resume_pair(11);
    p.run();
    let stranger = LinkId(40);
    let now = p.now;
    p.listener.s.accept(stranger, 2, now);
    let mut forged = b"p2pchat/3 resume\n".to_vec();
    forged.extend_from_slice(&[9u8; 32]);
    // A RESUME record sealed with a key the stranger made up.
    forged.extend_from_slice(&[0, 25]);
    forged.extend_from_slice(&[0x55; 25]);
    let buf = p.listener.s.receive_buf(stranger);
    buf[..forged.len()].copy_from_slice(&forged);
    p.listener.s.received(stranger, forged.len(), now);
    p.listener.drain(now);
    assert!(
        p.listener.actions.contains(&Action::Close(stranger)),
        "the stranger is closed: {:?}",
        p.listener.actions
    );
    assert!(
        !p.listener
            .events
            .iter()
            .any(|e| matches!(e, Event::FailedAttempt { .. })),
        "and not worth a line: {:?}",
        p.listener.events
    );
    p.dialer.input(b"still here\n", now);
    p.run();
    assert_eq!(p.listener.shown, b"still here\n");
    assert_eq!(reconnections(&p.listener), 0);
    p.assert_both(Status::Running);
}

/// Without resume on both sides nothing is kept, and a lost connection
/// ends the room as before.
#[test]
fn resume_needs_both_sides() {
    let mut dc = config(Role::Dialer, Security::VerifyCode, "dana");
    dc.room.resume = Some(GRACE);
    let lc = config(Role::Listener, Security::VerifyCode, "lee");
    let mut p = Pair::from_configs(dc, lc, 1);
    p.run();
    p.cut(0, 0);
    assert!(matches!(p.dialer.failure(), Error::Lost(_)));
    assert!(!p.dialer.actions.contains(&Action::Redial));
}

/// The leaver's BYE is lost with the connection: the leaver waits for
/// the peer's FIN, resumes, and says goodbye again; both end well.
#[test]
fn a_goodbye_lost_with_the_connection_is_said_again() {
    let mut p = resume_pair(41);
    p.run();
    let now = p.now;
    p.dialer.input(b"last words\n", now);
    p.run();
    p.dialer.s.input_ended(now);
    p.dialer.s.leave(LeaveReason::User, now);
    // RECEIVED and BYE are sealed, and die with the connection.
    p.cut(0, 0);
    assert_eq!(p.listener.s.status(), Status::Running, "no BYE yet");
    p.reconnect(LinkId(17));
    assert!(
        p.listener.events.contains(&Event::PeerLeft),
        "{:?}",
        p.listener.events
    );
    p.deliver_ends();
    assert_eq!(p.listener.shown, b"last words\n");
    p.assert_both(Status::Ended(Ok(())));
}

/// Both ends confirmed and both FINs out, the connection is cut before
/// either FIN arrives: the room waits for a resume, and while it waits
/// its final wait is no deadline. (It used to stay one, in the past, which
/// nothing acted on while down: a driver polled it in a busy loop until the
/// resume or the end of the grace period.)
#[test]
fn a_room_cut_during_its_final_wait_waits_for_the_resume_without_spinning() {
    let mut p = resume_pair(43);
    p.run();
    let now = p.now;
    p.dialer.input(b"all of it\n", now);
    p.run();
    p.dialer.s.input_ended(now);
    p.listener.s.input_ended(now);
    p.run();
    assert!(
        p.dialer.sent_fin() && p.listener.sent_fin(),
        "both wait for a FIN"
    );
    p.cut(0, 0);
    assert!(p.dialer.s.is_down() && p.listener.s.is_down());
    p.now += crate::session::room::FINAL_WAIT + Duration::from_secs(1);
    for side in [&p.dialer, &p.listener] {
        let next = side.s.poll_timeout().expect("the grace period runs");
        assert!(next > p.now, "a deadline {:?} in the past", p.now - next);
    }
    p.advance(Duration::from_secs(1));
    p.assert_both(Status::Running);
    p.reconnect(LinkId(19));
    p.deliver_ends();
    assert_eq!(p.listener.shown, b"all of it\n");
    p.assert_both(Status::Ended(Ok(())));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    /// Any number of cuts, at any step, keeping any part of what was in
    /// flight (so inside records, during EOF and DONE): the streams arrive
    /// whole, once, in order.
    #[test]
    fn any_cut_schedule_delivers_every_byte_once(
        cuts in proptest::collection::vec((0usize..200, 0usize..300_000, 0usize..300_000), 0..5),
        seed in 0u64..1000,
        len_a in 0usize..400_000,
        len_b in 0usize..300_000,
        files in 0u8..4,
    ) {
        let a: Vec<u8> = (0..len_a).map(|i| (i * 31 % 253) as u8).collect();
        let b: Vec<u8> = (0..len_b).map(|i| (i * 17 % 239) as u8).collect();
        // Either side's input may be a file, read again instead of kept.
        let rewindable = (files & 1 != 0, files & 2 != 0);
        let p = transfer_with_cuts_rewinding(&a, &b, &cuts, seed, rewindable);
        prop_assert!(p.listener.shown == a, "dialer to listener: {} of {}", p.listener.shown.len(), a.len());
        prop_assert!(p.dialer.shown == b, "listener to dialer: {} of {}", p.dialer.shown.len(), b.len());
        prop_assert_eq!(p.dialer.s.status(), Status::Ended(Ok(())));
        prop_assert_eq!(p.listener.s.status(), Status::Ended(Ok(())));
    }
}

/// Every connection of a resumed room seals under keys of its own (fresh
/// ephemeral keys both sides, mixed with the room's resume key), so no
/// key and nonce pair is ever used twice.
#[test]
fn every_connection_seals_under_keys_never_used_before() {
    let _ = crate::session::link::keys_used::take();
    let a: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
    let p = transfer_with_cuts(&a, b"", &[(5, 1000, 1000), (40, 0, 0), (60, 70_000, 5)], 21);
    assert!(p.listener.shown == a);
    let keys = crate::session::link::keys_used::take();
    // Two sides, four connections, one sealing key each.
    assert_eq!(keys.len(), 8, "one key per side per connection");
    let mut unique = keys.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        keys.len(),
        "a key was used on two connections"
    );
}

/// A recording of the dialer's resume flight, played to the listener on
/// another connection later, is refused: the listener's fresh key makes
/// the recorded RESUME fail to open. The room goes on untouched.
#[test]
fn a_replayed_resume_flight_is_refused() {
    let mut p = resume_pair(31);
    p.run();
    let now = p.now;
    p.dialer.input(b"before\n", now);
    p.run();
    p.cut(0, 0);
    let mark = p.dialer.sent.len();
    p.reconnect(LinkId(17));
    // The flight: preface, key, and the RESUME record (2 + 1 + 9 + 16).
    let flight = p.dialer.sent[mark..mark + 17 + 32 + 28].to_vec();
    assert!(flight.starts_with(b"p2pchat/3 resume\n"));
    assert_eq!(reconnections(&p.listener), 1);
    let replay = LinkId(41);
    p.listener.s.accept(replay, 1, now);
    let buf = p.listener.s.receive_buf(replay);
    buf[..flight.len()].copy_from_slice(&flight);
    p.listener.s.received(replay, flight.len(), now);
    p.listener.drain(now);
    assert!(
        p.listener.actions.contains(&Action::Close(replay)),
        "{:?}",
        p.listener.actions
    );
    assert_eq!(reconnections(&p.listener), 1, "no switch to the replay");
    p.dialer.input(b"after\n", now);
    p.run();
    assert_eq!(p.listener.shown, b"before\nafter\n");
    p.assert_both(Status::Running);
}

/// An ACK or a RESUME that names an offset we never sent is the peer
/// breaking the protocol: the room ends with an integrity error, and no
/// buffer is freed on its say.
#[test]
fn an_offset_beyond_what_we_sent_is_a_protocol_violation() {
    use crate::protocol::record::Kind;
    use crate::testkit::ScriptedDialer;
    for (kind, payload) in [
        (Kind::Ack, 1000u64.to_be_bytes().to_vec()),
        (Kind::Ack, vec![0u8; 7]),
    ] {
        let mut lc = config(Role::Listener, Security::VerifyCode, "lee");
        lc.room.resume = Some(GRACE);
        let mut l = Side::new(session(lc, 3), LINK);
        let now = Instant::now();
        l.s.accept(LINK, 1, now);
        let mut a = ScriptedDialer::new(LINK, None, 5);
        assert!(a.exchange_keys(&mut l.s, now));
        let mut hello = b"dana".to_vec();
        hello.extend_from_slice(&[0, 1, 0, 60]);
        let hello = a.record(Kind::Hello, &hello);
        a.push_to(&mut l.s, &hello, now);
        l.drain(now);
        assert_eq!(l.s.status(), Status::Running, "the room is up");
        let bad = a.record(kind, &payload);
        a.push_to(&mut l.s, &bad, now);
        l.drain(now);
        let e = l.failure().to_string();
        assert!(e.contains("protocol violation"), "{e}");
    }
}

#[test]
fn both_ends_agree_on_a_relay_resume_token_only_they_can_name() {
    let mut p = resume_pair(7);
    assert_eq!(
        p.dialer.s.relay_resume_token(),
        None,
        "not before the room is up"
    );
    p.run();
    let (d, l) = (
        p.dialer.s.relay_resume_token(),
        p.listener.s.relay_resume_token(),
    );
    assert!(d.is_some() && d == l, "both ends name the same token");
    // Another room (other keys) has another token.
    let mut q = resume_pair(8);
    q.run();
    assert_ne!(q.dialer.s.relay_resume_token(), d);
    // Without resume there is nothing to come back for.
    let mut plain = Pair::new(Security::VerifyCode, Security::VerifyCode);
    plain.run();
    assert!(plain.dialer.s.is_established());
    assert_eq!(plain.dialer.s.relay_resume_token(), None);
}
