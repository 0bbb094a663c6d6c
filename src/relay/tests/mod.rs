//! The relay core with simulated time: pairing, sides, spares, every limit
//! and every deadline.

use std::time::{Duration, Instant};

use super::*;
use crate::protocol::transit::{hello, token, DIALER_SIDE, LISTENER_SIDE};

const A: u128 = 0xffff_0a00_0001; // 10.0.0.1, IPv4-mapped
const B: u128 = 0xffff_0a00_0002;

struct T {
    relay: Relay,
    now: Instant,
    next: usize,
}

impl T {
    fn new(limits: Limits) -> T {
        T {
            relay: Relay::new(limits),
            now: Instant::now(),
            next: 0,
        }
    }

    fn conn(&mut self, source: u128) -> (ConnId, bool) {
        let id = ConnId(self.next);
        self.next += 1;
        let ok = self.relay.accept(id, source, self.now);
        (id, ok)
    }

    /// A connection that says its hello for `room` as `side`.
    fn hello(&mut self, source: u128, room: &str, side: &[u8; 16]) -> ConnId {
        let (id, ok) = self.conn(source);
        assert!(ok);
        self.relay
            .received(id, &hello(&token(room), side), self.now);
        id
    }

    fn actions(&mut self) -> Vec<Action> {
        std::iter::from_fn(|| self.relay.poll_action()).collect()
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        while self.relay.poll_timeout().is_some_and(|t| t <= self.now) {
            self.relay.handle_timeout(self.now);
        }
    }
}

fn logged(t: &mut T, what: &str) -> bool {
    std::iter::from_fn(|| t.relay.poll_log()).any(|l| l.contains(what))
}

fn refused(actions: &[Action], conn: ConnId) -> Option<String> {
    actions.iter().find_map(|a| match a {
        Action::Refuse { conn: c, line } if *c == conn => {
            Some(String::from_utf8_lossy(line).into_owned())
        }
        _ => None,
    })
}

#[test]
fn a_listener_and_a_dialer_of_one_room_pair() {
    let mut t = T::new(Limits::default());
    let l = t.hello(A, "482913", LISTENER_SIDE);
    assert!(t.actions().is_empty(), "the first comer hears nothing");
    assert_eq!(t.relay.waiting(), 1);
    let d = t.hello(B, "482913", DIALER_SIDE);
    assert_eq!(t.actions(), vec![Action::Pair(l, d)]);
    assert_eq!((t.relay.waiting(), t.relay.pairs()), (0, 1));
}

#[test]
fn one_side_never_pairs_with_itself_nor_rooms_with_each_other() {
    let mut t = T::new(Limits::default());
    t.hello(A, "111111", LISTENER_SIDE);
    t.hello(B, "111111", LISTENER_SIDE);
    t.hello(B, "222222", DIALER_SIDE);
    assert!(t.actions().is_empty());
    assert_eq!(t.relay.waiting(), 3);
}

#[test]
fn a_hello_split_into_single_bytes_still_pairs() {
    let mut t = T::new(Limits::default());
    let l = t.hello(A, "5", LISTENER_SIDE);
    let (d, _) = t.conn(B);
    for b in hello(&token("5"), DIALER_SIDE) {
        t.relay.received(d, &[b], t.now);
    }
    assert_eq!(t.actions(), vec![Action::Pair(l, d)]);
}

#[test]
fn spares_are_closed_when_a_match_is_made() {
    let mut t = T::new(Limits::default());
    let l1 = t.hello(A, "7", LISTENER_SIDE);
    let l2 = t.hello(A, "7", LISTENER_SIDE);
    let d = t.hello(B, "7", DIALER_SIDE);
    let actions = t.actions();
    assert!(actions.contains(&Action::Close(l2)), "{actions:?}");
    assert!(actions.contains(&Action::Pair(l1, d)), "{actions:?}");
    assert_eq!(t.relay.connections(), 2);
}

#[test]
fn garbage_and_early_bytes_are_refused_with_the_reference_words() {
    let mut t = T::new(Limits::default());
    let (g, _) = t.conn(A);
    t.relay.received(g, b"GET / HTTP/1.1\r\n", t.now);
    assert_eq!(refused(&t.actions(), g).as_deref(), Some("bad handshake\n"));

    let (e, _) = t.conn(A);
    let mut h = hello(&token("1"), LISTENER_SIDE);
    h.extend_from_slice(b"EARLY");
    t.relay.received(e, &h, t.now);
    assert_eq!(refused(&t.actions(), e).as_deref(), Some("impatient\n"));

    // Bytes while waiting are impatient too, even with a partner near.
    let w = t.hello(A, "2", LISTENER_SIDE);
    t.relay.received(w, b"x", t.now);
    assert_eq!(refused(&t.actions(), w).as_deref(), Some("impatient\n"));
    assert_eq!(t.relay.connections(), 0);
    assert_eq!(t.relay.waiting(), 0);
}

#[test]
fn a_silent_connection_is_closed_at_the_hello_deadline() {
    let mut t = T::new(Limits::default());
    let (s, _) = t.conn(A);
    t.advance(Duration::from_millis(1900));
    assert!(t.actions().is_empty());
    t.advance(Duration::from_millis(200));
    assert_eq!(t.actions(), vec![Action::Close(s)]);
    assert_eq!(t.relay.connections(), 0);
}

#[test]
fn a_lonely_wait_ends_at_its_deadline_with_a_reason() {
    let mut t = T::new(Limits::default());
    let w = t.hello(A, "3", LISTENER_SIDE);
    t.advance(Duration::from_secs(599));
    assert!(t.actions().is_empty());
    t.advance(Duration::from_secs(2));
    let why = refused(&t.actions(), w).unwrap();
    assert!(why.contains("nobody came"), "{why}");
    assert_eq!(t.relay.waiting(), 0);
}

#[test]
fn the_summary_comes_once_after_activity_and_not_again_when_idle() {
    let mut t = T::new(Limits::default());
    t.hello(A, "3", LISTENER_SIDE);
    t.advance(Duration::from_secs(61));
    assert!(t.relay.poll_log().is_some());
    assert!(t.relay.poll_log().is_none());
    t.advance(Duration::from_secs(120));
    assert!(t.relay.poll_log().is_none(), "nothing happened: no line");
}

#[test]
fn an_idle_pair_ends_and_a_stalled_one_ends_sooner() {
    let mut t = T::new(Limits::default());
    let l = t.hello(A, "4", LISTENER_SIDE);
    let d = t.hello(B, "4", DIALER_SIDE);
    t.actions();
    // Traffic keeps it alive.
    t.advance(Duration::from_secs(500));
    t.relay.traffic(l, true, false, t.now);
    t.advance(Duration::from_secs(500));
    assert!(t.actions().is_empty());
    t.advance(Duration::from_secs(101));
    assert_eq!(t.actions(), vec![Action::EndPair(l, d)]);
    assert_eq!(t.relay.pairs(), 0);
    assert!(logged(&mut t, "(idle)"));

    let l = t.hello(A, "5", LISTENER_SIDE);
    let d = t.hello(B, "5", DIALER_SIDE);
    t.actions();
    t.relay.traffic(l, true, true, t.now);
    t.advance(Duration::from_secs(61));
    assert_eq!(t.actions(), vec![Action::EndPair(l, d)]);
    assert!(logged(&mut t, "stopped reading"));
}

#[test]
fn one_source_cannot_take_every_connection() {
    let limits = Limits {
        max_per_source: 8,
        ..Limits::default()
    };
    let mut t = T::new(limits);
    for _ in 0..8 {
        assert!(t.conn(A).1);
    }
    let (extra, ok) = t.conn(A);
    assert!(!ok);
    assert!(refused(&t.actions(), extra)
        .unwrap()
        .contains("too many connections"));
    // Another address is unaffected.
    assert!(t.conn(B).1);
    // IPv6 counts per /48, and each /64 in it gets a quarter of the cap:
    // addresses of one /64 reach its sub-cap, other /64s go on until the
    // /48 has its whole share.
    let net48 = 0x2001_0db8_0001_0000_0000_0000_0000_0000u128;
    let net64 = |n: u128| net48 + (n << 64);
    for i in 0..2 {
        assert!(t.conn(net64(0) + i).1);
    }
    assert!(!t.conn(net64(0) + 99).1, "the /64's share is used up");
    for n in 1..4 {
        for i in 0..2 {
            assert!(t.conn(net64(n) + i).1);
        }
    }
    assert!(!t.conn(net64(9)).1, "the /48's share is used up");
    let other48 = 0x2001_0db8_0002_0000_0000_0000_0000_0000u128;
    assert!(t.conn(other48).1);
}

#[test]
fn a_source_holds_few_rooms_and_a_room_few_waiting_connections() {
    let mut t = T::new(Limits::default());
    let cap = t.relay.limits().rooms_per_source;
    // One source opens room after room: beyond its share it is refused,
    // though it is far below its connection cap.
    for i in 0..cap {
        t.hello(A, &format!("{i}"), LISTENER_SIDE);
    }
    t.actions();
    let extra = t.hello(A, "extra", LISTENER_SIDE);
    assert!(refused(&t.actions(), extra)
        .unwrap()
        .contains("too many rooms from your address"));
    // Another user's room is served.
    let l = t.hello(B, "mine", LISTENER_SIDE);
    let d = t.hello(0xffff_0a00_0003, "mine", DIALER_SIDE);
    assert_eq!(t.actions(), vec![Action::Pair(l, d)]);
    // At most two wait in one room: a third is turned away.
    let sources = [4u128, 5, 6].map(|n| 0xffff_0a00_0000 + n);
    t.hello(sources[0], "crowded", LISTENER_SIDE);
    t.hello(sources[1], "crowded", LISTENER_SIDE);
    t.actions();
    let third = t.hello(sources[2], "crowded", LISTENER_SIDE);
    assert!(refused(&t.actions(), third)
        .unwrap()
        .contains("too many connections waiting in this room"));
    // A closed room gives its share back to the source.
    t.relay.closed(ConnId(0), t.now);
    t.actions();
    let again = t.hello(A, "again", LISTENER_SIDE);
    assert!(refused(&t.actions(), again).is_none());
}

#[test]
fn one_source_cannot_open_connections_faster_than_the_rate() {
    let limits = Limits {
        new_per_source: 4,
        ..Limits::default()
    };
    let mut t = T::new(limits);
    for _ in 0..4 {
        let (id, ok) = t.conn(A);
        assert!(ok);
        t.relay.received(id, b"junk", t.now);
    }
    t.actions();
    let (id, ok) = t.conn(A);
    assert!(!ok);
    assert!(refused(&t.actions(), id).unwrap().contains("slow down"));
    t.advance(Duration::from_secs(11));
    assert!(t.conn(A).1, "a new window lets it in again");
}

#[test]
fn the_global_limits_hold() {
    let limits = Limits {
        max_connections: 4,
        max_hellos: 2,
        max_waiting: 1,
        max_pairs: 1,
        max_per_source: 100,
        new_per_source: 100,
        ..Limits::default()
    };
    let mut t = T::new(limits);
    let sources = [1u128, 2, 3, 4, 5, 6].map(|n| 0xffff_0000_0000 + n);
    let (oldest, _) = t.conn(sources[0]);
    assert!(t.conn(sources[1]).1);
    // The hello pool is full: the oldest connection owing its hello makes
    // way for the newcomer, so silence cannot keep a real client out.
    let (h1, ok) = t.conn(sources[2]);
    assert!(ok, "a newcomer always gets a hello slot");
    assert_eq!(t.actions(), vec![Action::Close(oldest)]);
    t.relay
        .received(h1, &hello(&token("1"), LISTENER_SIDE), t.now);
    let (w2, _) = t.conn(sources[3]);
    t.relay
        .received(w2, &hello(&token("2"), LISTENER_SIDE), t.now);
    assert!(refused(&t.actions(), w2)
        .unwrap()
        .contains("too many rooms waiting"));
    assert_eq!(t.relay.waiting(), 1);
}

#[test]
fn a_full_relay_refuses_a_second_pair_and_keeps_the_waiting_one() {
    let limits = Limits {
        max_pairs: 1,
        ..Limits::default()
    };
    let mut t = T::new(limits);
    t.hello(A, "1", LISTENER_SIDE);
    t.hello(B, "1", DIALER_SIDE);
    let l2 = t.hello(A, "2", LISTENER_SIDE);
    t.actions();
    let d2 = t.hello(B, "2", DIALER_SIDE);
    assert!(refused(&t.actions(), d2).unwrap().contains("full"));
    assert_eq!(t.relay.waiting(), 1);
    // Once the first pair ends, room 2 can pair.
    t.relay
        .pair_ended(ConnId(0), ConnId(1), PairEnd::Done, 10, t.now);
    let d3 = t.hello(B, "2", DIALER_SIDE);
    assert_eq!(t.actions(), vec![Action::Pair(l2, d3)]);
}

#[test]
fn closed_connections_give_back_what_they_held() {
    let mut t = T::new(Limits {
        max_per_source: 1,
        ..Limits::default()
    });
    let w = t.hello(A, "9", LISTENER_SIDE);
    t.relay.closed(w, t.now);
    assert_eq!((t.relay.connections(), t.relay.waiting()), (0, 0));
    assert!(t.conn(A).1, "the source's slot is free again");
}

#[test]
fn logs_name_no_address_no_token_and_no_room() {
    let mut t = T::new(Limits::default());
    let room = "482913";
    let l = t.hello(A, room, LISTENER_SIDE);
    let d = t.hello(B, room, DIALER_SIDE);
    t.actions();
    t.relay.pair_ended(l, d, PairEnd::Done, 1234, t.now);
    t.advance(Duration::from_secs(61));
    let tok = String::from_utf8_lossy(&token(room)).into_owned();
    let lines: Vec<String> = std::iter::from_fn(|| t.relay.poll_log()).collect();
    assert!(lines.len() >= 2, "{lines:?}");
    for line in lines {
        assert!(!line.contains(room) && !line.contains(&tok[..16]), "{line}");
        assert!(!line.contains("10.0.0"), "{line}");
    }
}

#[test]
fn probing_room_numbers_is_limited_per_source() {
    let mut t = T::new(Limits::default());
    let budget = t.relay.limits().tokens_per_source;
    // A real listener waits in its room.
    let real = t.hello(B, "482913", LISTENER_SIDE);
    // A stranger tries room numbers one after another as a dialer, each
    // connection closed when nobody answers at once.
    for i in 0..budget {
        let p = t.hello(A, &format!("{i}"), DIALER_SIDE);
        t.relay.closed(p, t.now);
    }
    t.actions();
    // Its budget is spent: the right number is refused, not paired.
    let probe = t.hello(A, "482913", DIALER_SIDE);
    let why = refused(&t.actions(), probe).expect("refused");
    assert!(why.contains("too many rooms tried"), "{why}");
    assert_eq!(t.relay.waiting(), 1, "the real listener still waits");
    // A room it already named this minute is still its own to come back to.
    let again = t.hello(A, "0", DIALER_SIDE);
    assert!(refused(&t.actions(), again).is_none());
    t.relay.closed(again, t.now);
    // The real dialer, from another address, pairs.
    let d = t.hello(0xffff_0a00_0003, "482913", DIALER_SIDE);
    assert!(t.actions().contains(&Action::Pair(real, d)));
    // A minute later the stranger may try a few more, no faster.
    t.advance(Duration::from_secs(61));
    t.actions();
    for i in 0..budget {
        let p = t.hello(A, &format!("x{i}"), DIALER_SIDE);
        assert!(refused(&t.actions(), p).is_none(), "new window, room {i}");
        t.relay.closed(p, t.now);
    }
    let p = t.hello(A, "one more", DIALER_SIDE);
    assert!(refused(&t.actions(), p).is_some());
    // IPv6: one /64 gets a quarter of the /48's budget.
    let v6 = 0x2001_0db8_0001_0000_0000_0000_0000_0001u128;
    for i in 0..budget / 4 {
        let p = t.hello(v6 + i as u128, &format!("v6 {i}"), DIALER_SIDE);
        t.relay.closed(p, t.now);
    }
    t.actions();
    let p = t.hello(v6, "v6 more", DIALER_SIDE);
    assert!(refused(&t.actions(), p).is_some());
    let p = t.hello(v6 + (1 << 64), "v6 more", DIALER_SIDE);
    assert!(refused(&t.actions(), p).is_none(), "another /64 of the /48");
}

#[test]
fn a_stranger_in_the_room_cannot_hold_the_place_of_a_resume() {
    use crate::protocol::transit::resume_token;
    let mut t = T::new(Limits::default());
    let room = "482913";
    let stranger = [0xffff_0a00_0007u128, 0xffff_0a00_0008];
    // The stranger knows the room number and takes both of its waiting
    // places on the listener's side.
    let s1 = t.hello(stranger[0], room, LISTENER_SIDE);
    t.hello(stranger[1], room, LISTENER_SIDE);
    // The real listener, back at the room's own token, would be refused,
    // and the real dialer paired with the stranger: that is why a resume
    // does not meet there.
    let l = t.hello(A, room, LISTENER_SIDE);
    let why = refused(&t.actions(), l).expect("the room is full");
    assert!(
        why.contains("too many connections waiting in this room"),
        "{why}"
    );
    let d = t.hello(B, room, DIALER_SIDE);
    assert!(t.actions().contains(&Action::Pair(s1, d)));
    t.relay.closed(d, t.now);
    t.actions();
    // Both come back with the resume token, which the stranger cannot
    // name, and meet each other whatever the stranger holds.
    t.hello(stranger[0], room, LISTENER_SIDE);
    t.hello(stranger[1], room, LISTENER_SIDE);
    t.actions();
    let rt = resume_token(&[42; 32]);
    let (l, _) = t.conn(A);
    t.relay.received(l, &hello(&rt, LISTENER_SIDE), t.now);
    let (d, _) = t.conn(B);
    t.relay.received(d, &hello(&rt, DIALER_SIDE), t.now);
    assert_eq!(t.actions(), vec![Action::Pair(l, d)]);
    assert_eq!(t.relay.waiting(), 2, "the stranger waits on, alone");
}
