//! When the room asks for a new connection, and when it stops asking: the
//! dialer's redials after a cut (at once, then backing off with jitter),
//! the reset once a resume succeeds, the verdict on redials refused for
//! 10 s, and the retries of a busy listener. The driver's part is played
//! here: it carries out each [`Action::Redial`] and reports how it went.

use super::*;
use crate::protocol::handshake::BUSY;
use crate::session::reconnect::{Reconnect, FIRST_BACKOFF, MAX_BACKOFF, REFUSED_FOR};

const GRACE: Duration = Duration::from_secs(60);
/// Where the dialer's redials go, as the driver names it.
const TARGET: &str = "192.0.2.7:51423";

fn resume_pair(seed: u64) -> Pair {
    let mut dc = config(Role::Dialer, Security::VerifyCode, "dana");
    let mut lc = config(Role::Listener, Security::VerifyCode, "lee");
    dc.room.resume = Some(GRACE);
    lc.room.resume = Some(GRACE);
    let mut p = Pair::from_configs(dc, lc, seed);
    p.run();
    assert!(p.dialer.s.is_established() && p.listener.s.is_established());
    p
}

/// Both sides see their connection reset, with nothing in flight.
fn cut(p: &mut Pair) {
    p.d2l.clear();
    p.l2d.clear();
    let e = io::Error::from(io::ErrorKind::ConnectionReset);
    let (d, l) = (p.dialer.link, p.listener.link);
    p.dialer.s.transport_failed(d, &e, p.now);
    p.listener.s.transport_failed(l, &e, p.now);
    p.dialer.drain(p.now);
    p.listener.drain(p.now);
    assert!(p.dialer.s.is_down() && p.listener.s.is_down());
}

/// Takes the side's requests for a new connection; whether there was one.
fn take_redial(side: &mut Side) -> bool {
    let asked = side.actions.contains(&Action::Redial);
    side.actions.retain(|a| *a != Action::Redial);
    asked
}

/// The driver's attempt failed: reports it, then checks that the session
/// asks again only once its backoff is over. Returns the backoff, or None
/// if the room ended instead.
fn fail_and_wait(p: &mut Pair, failure: ConnectFailure) -> Option<Duration> {
    p.dialer.s.connect_failed(failure, p.now);
    p.dialer.drain(p.now);
    assert!(
        !take_redial(&mut p.dialer),
        "a failed attempt is not repeated at once"
    );
    if p.dialer.s.status() != Status::Running {
        return None;
    }
    let due = p.dialer.s.poll_timeout().expect("the next attempt is due");
    let wait = due - p.now;
    p.advance(wait - Duration::from_millis(1));
    assert!(!take_redial(&mut p.dialer), "not a moment sooner");
    p.advance(Duration::from_millis(1));
    assert!(take_redial(&mut p.dialer), "asked again after {wait:?}");
    Some(wait)
}

/// The redial comes through: a new connection `link` at both ends, which
/// carries the room on.
fn resume_on(p: &mut Pair, link: LinkId) {
    let before = reconnections(&p.dialer);
    p.dialer.link = link;
    p.listener.link = link;
    p.listener.s.accept(link, 1, p.now);
    p.dialer.s.connected(link, p.now);
    p.run();
    assert_eq!(reconnections(&p.dialer), before + 1, "resumed");
    assert!(!p.dialer.s.is_down() && !p.listener.s.is_down());
}

fn reconnections(side: &Side) -> usize {
    side.events
        .iter()
        .filter(|e| matches!(e, Event::Reconnected { .. }))
        .count()
}

/// The backoff of the `n`th failed attempt in a row, without jitter.
fn step(n: u32) -> Duration {
    (FIRST_BACKOFF * 2u32.pow(n.min(10))).min(MAX_BACKOFF)
}

fn with_jitter(wait: Duration, n: u32) -> bool {
    wait >= step(n) && wait <= step(n).mul_f64(1.2)
}

#[test]
fn after_a_cut_the_dialer_asks_at_once_then_backs_off_with_jitter_up_to_a_cap() {
    let mut p = resume_pair(7);
    cut(&mut p);
    assert!(take_redial(&mut p.dialer), "the first attempt goes at once");
    let waits: Vec<Duration> = (0..12)
        .map(|_| fail_and_wait(&mut p, ConnectFailure::Failed).expect("still trying"))
        .collect();
    for (n, wait) in (0..).zip(&waits) {
        assert!(with_jitter(*wait, n), "attempt {n} waited {wait:?}");
        assert!(*wait <= Duration::from_millis(1200), "capped: {wait:?}");
    }
    assert!(
        (0..).zip(&waits).any(|(n, w)| *w > step(n)),
        "jittered: {waits:?}"
    );
    let distinct: std::collections::HashSet<_> = waits[5..].iter().collect();
    assert!(distinct.len() > 1, "not in step at the cap: {waits:?}");
    // The listener keeps listening: it asks for nothing it has to carry
    // out, and waits for the resume.
    assert_eq!(p.dialer.s.status(), Status::Running);
    assert_eq!(p.listener.s.status(), Status::Running);
    assert!(p.listener.s.is_down());
}

#[test]
fn a_successful_resume_resets_the_backoff() {
    let mut p = resume_pair(8);
    cut(&mut p);
    assert!(take_redial(&mut p.dialer));
    for n in 0..4 {
        let wait = fail_and_wait(&mut p, ConnectFailure::Failed).unwrap();
        assert!(with_jitter(wait, n), "{wait:?}");
    }
    resume_on(&mut p, LinkId(17));
    p.dialer.input(b"after the resume\n", p.now);
    p.run();
    assert_eq!(p.listener.shown, b"after the resume\n");

    // The resumed connection runs a while before it is lost.
    p.advance(crate::session::reconnect::STABLE);
    cut(&mut p);
    assert!(take_redial(&mut p.dialer), "at once again");
    let wait = fail_and_wait(&mut p, ConnectFailure::Failed).unwrap();
    assert!(with_jitter(wait, 0), "from the first step again: {wait:?}");
}

/// A connection that comes up but whose resume fails (a path that accepts
/// and drops) does not reset the backoff: it is not hammered.
#[test]
fn a_resume_that_fails_keeps_backing_off() {
    let mut p = resume_pair(9);
    cut(&mut p);
    assert!(take_redial(&mut p.dialer));
    for n in 0..3 {
        let link = LinkId(17 + n as usize);
        p.dialer.link = link;
        p.dialer.s.connected(link, p.now);
        p.dialer.s.transport_closed(link, p.now);
        p.dialer.drain(p.now);
        assert!(!take_redial(&mut p.dialer), "not at once");
        let due = p.dialer.s.poll_timeout().unwrap();
        let wait = due - p.now;
        assert!(with_jitter(wait, n), "{wait:?}");
        p.advance(wait);
        assert!(take_redial(&mut p.dialer));
    }
    assert_eq!(p.dialer.s.status(), Status::Running);
}

#[test]
fn redials_refused_for_ten_seconds_end_the_room_while_the_listener_waits() {
    let mut p = resume_pair(10);
    cut(&mut p);
    assert!(take_redial(&mut p.dialer));
    let first_refusal = p.now;
    let refused = || ConnectFailure::Refused {
        target: TARGET.into(),
    };
    for _ in 0..100 {
        if fail_and_wait(&mut p, refused()).is_none() {
            break;
        }
    }
    let after = p.now - first_refusal;
    assert!(
        after >= REFUSED_FOR && after <= REFUSED_FOR + Duration::from_millis(1200),
        "ended after {after:?}"
    );
    let e = p.dialer.failure();
    assert_eq!(
        e,
        Error::Lost(format!(
            "connection lost, and {TARGET} has refused connections for 10 s: \
             the peer's p2pchat has ended"
        ))
    );
    assert_eq!(e.exit_code(), 1);
    // It asks for nothing more, and the listener still waits for a resume.
    p.advance(Duration::from_secs(5));
    assert!(!take_redial(&mut p.dialer));
    assert_eq!(p.dialer.s.poll_timeout(), None);
    assert_eq!(p.listener.s.status(), Status::Running);
    assert!(p.listener.s.is_down());
}

/// Refusals broken by anything else (a connection that came up, a
/// timeout) are counted anew: a forwarder that restarts refuses a few
/// quick redials, and the room goes on.
#[test]
fn refusals_then_an_accepted_connection_within_ten_seconds_do_not_end_the_room() {
    let mut p = resume_pair(11);
    cut(&mut p);
    assert!(take_redial(&mut p.dialer));
    let refused = || ConnectFailure::Refused {
        target: TARGET.into(),
    };
    let start = p.now;
    while p.now < start + Duration::from_secs(9) {
        fail_and_wait(&mut p, refused()).expect("still trying");
    }
    // Accepted, and the resume goes through, and runs a while.
    resume_on(&mut p, LinkId(17));
    p.advance(crate::session::reconnect::STABLE);
    cut(&mut p);
    assert!(take_redial(&mut p.dialer));
    let again = p.now;
    while p.now < again + Duration::from_secs(9) {
        fail_and_wait(&mut p, refused()).expect("counted anew after the resume");
    }
    // Accepted, and dropped at once (the forwarder restarts): refusals
    // after it are counted anew too.
    p.dialer.link = LinkId(18);
    p.dialer.s.connected(LinkId(18), p.now);
    p.dialer.s.transport_closed(LinkId(18), p.now);
    p.dialer.drain(p.now);
    let due = p.dialer.s.poll_timeout().unwrap();
    p.advance(due - p.now);
    assert!(take_redial(&mut p.dialer));
    let dropped = p.now;
    while p.now < dropped + Duration::from_secs(9) {
        fail_and_wait(&mut p, refused()).expect("counted anew after the drop");
    }
    // A timeout breaks a run of refusals as well.
    fail_and_wait(&mut p, ConnectFailure::Failed).unwrap();
    let timed_out = p.now;
    while p.now < timed_out + Duration::from_secs(9) {
        fail_and_wait(&mut p, refused()).expect("counted anew after a timeout");
    }
    assert_eq!(p.dialer.s.status(), Status::Running);
    assert!(p.now - start > Duration::from_secs(30));
    resume_on(&mut p, LinkId(19));
    p.listener.input(b"still here\n", p.now);
    p.run();
    assert_eq!(p.dialer.shown, b"still here\n");
}

#[test]
fn a_failure_that_cannot_pass_ends_the_room_with_its_error() {
    let mut p = resume_pair(12);
    cut(&mut p);
    assert!(take_redial(&mut p.dialer));
    let e = Error::Connect(format!("cannot connect to {TARGET}: permission denied"));
    assert_eq!(
        fail_and_wait(&mut p, ConnectFailure::Fatal(e.clone())),
        None
    );
    assert_eq!(p.dialer.failure(), e);
    assert_eq!(p.listener.s.status(), Status::Running);
}

/// Without resume a lost room asks for nothing: it ends.
#[test]
fn without_resume_a_cut_asks_for_no_connection() {
    let mut p = Pair::default_mode();
    p.run();
    let e = io::Error::from(io::ErrorKind::ConnectionReset);
    p.dialer.s.transport_failed(LINK, &e, p.now);
    p.dialer.drain(p.now);
    assert!(matches!(p.dialer.failure(), Error::Lost(_)));
    assert!(!take_redial(&mut p.dialer));
    assert_eq!(p.dialer.s.poll_timeout(), None);
}

/// `--retry`: a busy listener is dialed again, never sooner than 0.1 s,
/// backing off with jitter like any redial, until the retry time is up.
#[test]
fn a_busy_listener_is_dialed_again_with_backoff_until_the_retry_time_is_up() {
    let mut cfg = config(Role::Dialer, secret("s3cret"), "dana");
    cfg.room.retry_busy = Some(Duration::from_secs(3));
    let start = Instant::now();
    let mut now = start;
    let mut d = Side::new(session(cfg, 4), LINK);
    let mut waits = Vec::new();
    for n in 0..100 {
        let link = LinkId(16 + n);
        d.link = link;
        d.s.connected(link, now);
        d.feed(BUSY, now);
        if d.s.status() == Status::Running && !d.actions.contains(&Action::Close(link)) {
            d.s.transport_closed(link, now);
            d.drain(now);
        }
        if d.s.status() != Status::Running {
            break;
        }
        assert!(d.actions.contains(&Action::Close(link)));
        assert!(!take_redial(&mut d), "never at once");
        let due = d.s.poll_timeout().expect("the next dial is due");
        waits.push(due - now);
        now = due;
        d.s.handle_timeout(now);
        d.drain(now);
        assert!(take_redial(&mut d));
    }
    assert_eq!(
        waits[0], FIRST_BACKOFF,
        "the least a busy listener is given"
    );
    for (n, wait) in (1..).zip(&waits[1..]) {
        assert!(with_jitter(*wait, n - 1), "dial {n} waited {wait:?}");
    }
    assert!(now - start >= Duration::from_secs(3));
    match d.failure() {
        Error::Connect(m) => assert!(
            m.contains("busy") && m.ends_with("(gave up after retrying for 3 s)"),
            "{m}"
        ),
        e => panic!("{e:?}"),
    }
}

// `Reconnect` on its own. Here rather than in `reconnect.rs`: the core's
// files name no clock, not even in their unit tests (`layering.rs`).

#[test]
fn schedules_grow_until_reset() {
    let mut rng = crate::protocol::DeterministicRng::new(1);
    let mut r = Reconnect::default();
    let now = Instant::now();
    assert_eq!(r.schedule(Duration::ZERO, now, &mut rng), now);
    assert!(r.take_due(now));
    assert!(!r.take_due(now), "handed out once");
    let second = r.schedule(Duration::ZERO, now, &mut rng) - now;
    assert!(second >= FIRST_BACKOFF && second < FIRST_BACKOFF.mul_f64(1.2));
    r.reset();
    assert_eq!(r.schedule(Duration::ZERO, now, &mut rng), now);
    let busy = r.schedule(Duration::from_secs(3), now, &mut rng) - now;
    assert_eq!(busy, Duration::from_secs(3), "never sooner than asked");
}

#[test]
fn only_refusals_for_the_whole_time_are_a_verdict() {
    let mut r = Reconnect::default();
    let t0 = Instant::now();
    assert!(!r.failed(true, t0));
    assert!(!r.failed(true, t0 + Duration::from_secs(9)));
    assert!(!r.failed(false, t0 + Duration::from_secs(10)), "a timeout");
    assert!(!r.failed(true, t0 + Duration::from_secs(11)), "counts anew");
    r.came_up();
    assert!(!r.failed(true, t0 + Duration::from_secs(21)), "counts anew");
    assert!(r.failed(true, t0 + Duration::from_secs(31)));
}

/// A peer or a path that drops every resumed connection at once is not
/// redialed in a tight loop: a connection that did not last resets
/// nothing, and the waits keep growing.
#[test]
fn a_resume_dropped_at_once_keeps_backing_off() {
    let mut p = resume_pair(12);
    cut(&mut p);
    assert!(take_redial(&mut p.dialer), "the first loss: at once");
    let mut waits = Vec::new();
    for n in 0..4 {
        resume_on(&mut p, LinkId(17 + n));
        cut(&mut p);
        assert!(!take_redial(&mut p.dialer), "round {n}: not at once");
        let due = p.dialer.s.poll_timeout().expect("a redial is due");
        waits.push(due - p.now);
        p.advance(due - p.now);
        assert!(take_redial(&mut p.dialer));
    }
    assert!(waits.windows(2).all(|w| w[1] >= w[0]), "{waits:?}");
    assert!(
        waits[3] >= std::time::Duration::from_millis(800),
        "{waits:?}"
    );
}
