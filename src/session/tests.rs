//! Two sessions wired together in memory with simulated time: every record
//! type and every failure, without a socket, a clock or a thread.

use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use super::*;
use crate::protocol::record::OVERHEAD;

const IDLE: Duration = Duration::from_secs(30);
const HANDSHAKE: Duration = Duration::from_secs(10);
/// Bytes the in-memory wire holds in flight, like a socket's buffers.
const WIRE_LIMIT: usize = 256 * 1024;

fn config(role: Role, security: Security, name: &str) -> SessionConfig {
    SessionConfig {
        role,
        security,
        name: name.into(),
        idle_timeout: IDLE,
        handshake_timeout: HANDSHAKE,
    }
}

fn secret(s: &str) -> Security {
    Security::Secret(Zeroizing::new(s.as_bytes().to_vec()))
}

/// One side: its session and everything it showed.
struct Side {
    s: Session,
    shown: Vec<u8>,
    events: Vec<Event>,
    /// Wire bytes it sent, as captured on the way.
    sent: Vec<u8>,
    /// Whether its output is being read (false simulates a stalled stdout).
    reading: bool,
}

impl Side {
    fn new(cfg: SessionConfig, now: Instant) -> Side {
        Side {
            s: Session::new(cfg, now),
            shown: Vec::new(),
            events: Vec::new(),
            sent: Vec::new(),
            reading: true,
        }
    }

    fn input(&mut self, data: &[u8], now: Instant) -> usize {
        let mut fed = 0;
        while fed < data.len() {
            let buf = self.s.input_buf();
            if buf.is_empty() {
                break;
            }
            let n = buf.len().min(data.len() - fed);
            buf[..n].copy_from_slice(&data[fed..fed + n]);
            self.s.input_received(n, now);
            fed += n;
        }
        fed
    }

    fn drain_output(&mut self, now: Instant) -> bool {
        let mut moved = false;
        while self.reading && !self.s.output().is_empty() {
            let n = self.s.output().len();
            self.shown.extend_from_slice(self.s.output());
            self.s.output_written(n, now);
            moved = true;
        }
        while let Some(e) = self.s.poll_event() {
            self.events.push(e);
        }
        moved
    }

    fn code(&self) -> Option<String> {
        self.events.iter().find_map(|e| match e {
            Event::Joined { verify_code, .. } => verify_code.clone(),
            _ => None,
        })
    }
}

/// A dialer and a listener joined by an in-memory "wire" with an optional
/// tap that may change bytes in flight.
struct Pair {
    d: Side,
    l: Side,
    now: Instant,
    /// Bytes in flight dialer->listener and listener->dialer.
    d2l: Vec<u8>,
    l2d: Vec<u8>,
    /// When false the wire carries nothing (a vanished or frozen peer).
    connected: bool,
}

impl Pair {
    fn new(d: Security, l: Security) -> Pair {
        let now = Instant::now();
        Pair {
            d: Side::new(config(Role::Dialer, d, "dana"), now),
            l: Side::new(config(Role::Listener, l, "lee"), now),
            now,
            d2l: Vec::new(),
            l2d: Vec::new(),
            connected: true,
        }
    }

    fn default_mode() -> Pair {
        Pair::new(Security::VerifyCode, Security::VerifyCode)
    }

    /// Moves bytes until nothing moves.
    fn run(&mut self) {
        for _ in 0..100_000 {
            let (now, up) = (self.now, self.connected);
            let moved = flow(&mut self.d, &mut self.l, &mut self.d2l, now, up)
                | flow(&mut self.l, &mut self.d, &mut self.l2d, now, up);
            if !moved {
                return;
            }
        }
        panic!("the pair never settled");
    }

    /// Advances simulated time, firing due timers, and runs the wire.
    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            let next = [self.d.s.timeout(), self.l.s.timeout()]
                .into_iter()
                .flatten()
                .filter(|t| *t <= end)
                .min();
            let Some(t) = next else { break };
            self.now = t.max(self.now);
            for side in [&mut self.d, &mut self.l] {
                if side.s.timeout().is_some_and(|x| x <= self.now) {
                    side.s.handle_timeout(self.now);
                }
            }
            self.run();
        }
        self.now = end;
        self.run();
    }

    /// Both sides end their input and the pair settles.
    fn finish(&mut self) {
        let now = self.now;
        self.d.s.input_ended(now);
        self.l.s.input_ended(now);
        self.run();
        if self.d.s.wants_write_shutdown() {
            self.l.s.transport_closed(now);
        }
        if self.l.s.wants_write_shutdown() {
            self.d.s.transport_closed(now);
        }
        self.run();
    }
}

/// One direction of the in-memory wire: `from`'s transmit into `wire`,
/// `wire` into `to`'s receive buffer. Returns whether anything moved.
fn flow(from: &mut Side, to: &mut Side, wire: &mut Vec<u8>, now: Instant, connected: bool) -> bool {
    let mut moved = false;
    let tx = from.s.transmit();
    // Like a socket, the wire holds a bounded amount in flight.
    let n = tx.len().min(WIRE_LIMIT.saturating_sub(wire.len()));
    if n > 0 && connected {
        wire.extend_from_slice(&tx[..n]);
        from.sent.extend_from_slice(&tx[..n]);
        from.s.transmitted(n, now);
        moved = true;
    }
    while connected && !wire.is_empty() {
        let buf = to.s.receive_buf();
        if buf.is_empty() {
            break;
        }
        let n = buf.len().min(wire.len());
        buf[..n].copy_from_slice(&wire[..n]);
        wire.drain(..n);
        to.s.received(n, now);
        moved = true;
    }
    moved |= to.drain_output(now);
    moved |= from.drain_output(now);
    moved
}

fn failed(s: &Session) -> Error {
    match s.status() {
        Status::Failed(e) => e,
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn plain_pair_is_byte_exact_with_half_close() {
    let mut p = Pair::new(Security::Plain, Security::Plain);
    let now = p.now;
    p.d.input(b"hello", now);
    p.d.s.input_ended(now);
    p.run();
    assert!(p.d.s.wants_write_shutdown());
    p.l.s.transport_closed(now);
    p.run();
    assert_eq!(p.l.shown, b"hello");
    assert!(p.l.events.contains(&Event::PeerDone));
    // The listener still sends after the dialer's half-close.
    p.l.input(b"late reply", now);
    p.l.s.input_ended(now);
    p.run();
    p.d.s.transport_closed(now);
    p.run();
    assert_eq!(p.d.shown, b"late reply");
    assert_eq!(
        (p.d.s.status(), p.l.s.status()),
        (Status::Done, Status::Done)
    );
}

#[test]
fn plain_mode_spots_an_encrypted_peer() {
    let mut p = Pair::new(Security::VerifyCode, Security::Plain);
    p.run();
    assert!(matches!(failed(&p.l.s), Error::Handshake(m) if m.contains("encrypted")));
    assert!(p.l.shown.is_empty(), "the preface is not shown as data");
}

#[test]
fn plain_data_that_only_looks_like_a_preface_is_shown() {
    let mut p = Pair::new(Security::Plain, Security::Plain);
    let now = p.now;
    p.d.input(b"p2pchat/1 s", now);
    p.run();
    assert!(p.l.shown.is_empty(), "undecided bytes are held back");
    p.d.input(b"omething else\n", now);
    p.run();
    assert_eq!(p.l.shown, b"p2pchat/1 something else\n");
}

#[test]
fn verify_code_mode_agrees_and_carries_data_both_ways() {
    let mut p = Pair::default_mode();
    p.run();
    let (dc, lc) = (p.d.code().unwrap(), p.l.code().unwrap());
    assert_eq!(dc, lc);
    assert_eq!(dc.len(), 7);
    assert!(p.d.events.contains(&Event::Joined {
        name: Some("lee".into()),
        verify_code: Some(dc.clone())
    }));
    let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let now = p.now;
    let mut fed = 0;
    while fed < big.len() {
        fed += p.d.input(&big[fed..], now);
        p.l.input(b"x", now);
        p.run();
    }
    p.finish();
    assert!(p.l.shown == big);
    assert_eq!(p.d.shown.len(), p.l.shown.len().min(p.d.shown.len()));
    assert_eq!(
        (p.d.s.status(), p.l.s.status()),
        (Status::Done, Status::Done)
    );
    let sent = String::from_utf8_lossy(&p.d.sent);
    assert!(sent.starts_with("p2pchat/1 sas\n"));
}

#[test]
fn the_chat_plaintext_never_appears_on_the_wire() {
    let mut p = Pair::default_mode();
    p.run();
    let now = p.now;
    p.d.input(b"CANARY-1234 secret plans\n", now);
    p.finish();
    assert_eq!(p.l.shown, b"CANARY-1234 secret plans\n");
    let wire = [p.d.sent.clone(), p.l.sent.clone()].concat();
    assert!(!wire.windows(6).any(|w| w == b"CANARY"));
}

#[test]
fn a_shared_secret_opens_the_room() {
    let mut p = Pair::new(secret("correct horse"), secret("correct horse"));
    p.run();
    assert!(p.d.s.is_established() && p.l.s.is_established());
    assert_eq!(p.d.code(), None, "no code to compare with a secret");
    let now = p.now;
    p.l.input(b"welcome", now);
    p.finish();
    assert_eq!(p.d.shown, b"welcome");
}

#[test]
fn different_secrets_fail_on_both_sides() {
    let mut p = Pair::new(secret("alpha"), secret("bravo"));
    p.run();
    for s in [&p.d.s, &p.l.s] {
        assert!(matches!(failed(s), Error::AuthFailed(m) if m.contains("secrets differ")));
    }
    assert!(p.d.shown.is_empty() && p.l.shown.is_empty());
}

#[test]
fn mode_mismatch_is_named_on_both_sides() {
    let mut p = Pair::new(secret("alpha"), Security::VerifyCode);
    p.run();
    assert!(matches!(failed(&p.d.s), Error::Handshake(m) if m.contains("we do:")));
    assert!(matches!(failed(&p.l.s), Error::Handshake(m) if m.contains("we do not")));
}

#[test]
fn a_netcat_peer_is_not_p2pchat() {
    let now = Instant::now();
    let mut l = Side::new(config(Role::Listener, Security::VerifyCode, "lee"), now);
    let typed = b"hello there\n";
    l.s.receive_buf()[..typed.len()].copy_from_slice(typed);
    l.s.received(typed.len(), now);
    assert!(
        matches!(failed(&l.s), Error::Handshake(m) if m.contains("not speaking the p2pchat protocol") && m.contains("hello there"))
    );
    assert!(l.s.output().is_empty());
}

#[test]
fn a_silent_peer_times_out_the_handshake() {
    let mut p = Pair::default_mode();
    p.connected = false;
    p.advance(HANDSHAKE - Duration::from_millis(1));
    assert_eq!(p.l.s.status(), Status::Running);
    p.advance(Duration::from_millis(2));
    assert!(matches!(failed(&p.l.s), Error::Handshake(m) if m.contains("did not finish in time")));
}

#[test]
fn eof_during_the_handshake_is_a_handshake_error() {
    let now = Instant::now();
    let mut l = Side::new(config(Role::Listener, secret("s"), "lee"), now);
    l.s.transport_closed(now);
    assert!(matches!(failed(&l.s), Error::Handshake(m) if m.contains("secrets differ")));
}

/// Runs the handshake, then lets `tamper` change the dialer's next records
/// before the listener reads them.
fn tampered(tamper: impl FnOnce(&mut Vec<u8>)) -> Pair {
    let mut p = Pair::default_mode();
    p.run();
    let now = p.now;
    p.d.input(b"first", now);
    let n = p.d.s.transmit().len();
    let mut wire = p.d.s.transmit().to_vec();
    p.d.s.transmitted(n, now);
    p.d.input(b"second", now);
    let n2 = p.d.s.transmit().len();
    wire.extend_from_slice(p.d.s.transmit());
    p.d.s.transmitted(n2, now);
    tamper(&mut wire);
    p.d2l = wire;
    p.run();
    p
}

#[test]
fn a_flipped_bit_aborts_with_an_integrity_error_and_shows_nothing() {
    let p = tampered(|w| w[4] ^= 0x40);
    assert!(matches!(failed(&p.l.s), Error::Integrity(_)));
    assert!(p.l.shown.is_empty());
}

#[test]
fn replayed_reordered_dropped_and_truncated_records_fail() {
    let rec = OVERHEAD + 5; // "first" record size
    let p = tampered(|w| {
        let first = w[..rec].to_vec();
        w.splice(rec..rec, first);
    });
    assert!(matches!(failed(&p.l.s), Error::Integrity(_)), "replay");
    assert_eq!(p.l.shown, b"first", "only the authentic record was shown");

    let p = tampered(|w| {
        let first: Vec<u8> = w.drain(..rec).collect();
        w.extend(first);
    });
    assert!(matches!(failed(&p.l.s), Error::Integrity(_)), "reorder");
    assert!(p.l.shown.is_empty());

    let p = tampered(|w| {
        w.drain(..rec);
    });
    assert!(matches!(failed(&p.l.s), Error::Integrity(_)), "drop");

    let mut p = tampered(|w| w.truncate(rec + 3));
    p.l.s.transport_closed(p.now);
    p.run();
    assert!(
        matches!(failed(&p.l.s), Error::Integrity(m) if m.contains("middle of a record")),
        "a truncated record"
    );
    assert_eq!(p.l.shown, b"first");

    // Cut at a record boundary instead: the peer is gone, not forged.
    let mut p = tampered(|w| w.truncate(rec));
    p.l.s.transport_closed(p.now);
    p.run();
    assert!(
        matches!(failed(&p.l.s), Error::Lost(m) if m.contains("without saying goodbye")),
        "a cut between records"
    );
    assert_eq!(p.l.shown, b"first");
}

#[test]
fn a_reflected_record_fails() {
    let mut p = Pair::default_mode();
    p.run();
    let now = p.now;
    p.d.input(b"to lee", now);
    let wire = p.d.s.transmit().to_vec();
    let n = wire.len();
    p.d.s.transmitted(n, now);
    p.l2d = wire; // sent back to the dialer
    p.run();
    assert!(matches!(failed(&p.d.s), Error::Integrity(_)));
}

#[test]
fn eof_is_half_close_and_bye_ends_the_room() {
    let mut p = Pair::default_mode();
    p.run();
    let now = p.now;
    p.d.s.input_ended(now);
    p.run();
    assert!(p.l.events.contains(&Event::PeerDone));
    assert_eq!(p.d.s.status(), Status::Running, "still reading after EOF");
    p.l.input(b"after your eof", now);
    p.run();
    assert_eq!(p.d.shown, b"after your eof");
    p.l.s.leave(now);
    p.run();
    assert!(p.d.events.contains(&Event::PeerLeft));
    assert_eq!(
        (p.d.s.status(), p.l.s.status()),
        (Status::Done, Status::Done)
    );
}

#[test]
fn leaving_after_eof_still_says_goodbye() {
    let mut p = Pair::default_mode();
    p.run();
    let now = p.now;
    p.d.s.input_ended(now);
    p.run();
    p.d.s.leave(now);
    p.run();
    assert!(p.l.events.contains(&Event::PeerLeft));
    assert_eq!(p.l.s.status(), Status::Done);
}

#[test]
fn an_eof_without_goodbye_is_a_lost_connection() {
    let mut p = Pair::default_mode();
    p.run();
    p.l.s.transport_closed(p.now);
    assert!(matches!(failed(&p.l.s), Error::Lost(m) if m.contains("without saying goodbye")));
}

#[test]
fn idle_pairs_ping_and_stay_alive() {
    let mut p = Pair::default_mode();
    p.run();
    let before = p.d.sent.len();
    p.advance(IDLE * 10);
    assert_eq!(
        (p.d.s.status(), p.l.s.status()),
        (Status::Running, Status::Running)
    );
    let pings = (p.d.sent.len() - before) / OVERHEAD;
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
    assert_eq!(p.l.s.status(), Status::Running);
    p.advance(Duration::from_millis(2));
    assert!(matches!(failed(&p.l.s), Error::Lost(m) if m.contains("no sign of life")));
}

#[test]
fn a_blocked_reader_does_not_blame_the_peer() {
    let mut p = Pair::default_mode();
    p.run();
    p.l.reading = false; // our stdout is stalled
    let now = p.now;
    let data = vec![7u8; 1 << 20];
    let mut fed = 0;
    loop {
        let n = p.d.input(&data[fed..], now);
        p.run();
        if n == 0 {
            break;
        }
        fed += n;
    }
    assert!(fed < data.len(), "a stalled reader must stop the sender");
    assert!(!p.l.s.can_receive(), "backpressure stops reading the wire");
    assert!(p.d.s.input_buf().is_empty(), "and then the sender's input");
    p.advance(IDLE * 3);
    assert_eq!(
        p.l.s.status(),
        Status::Running,
        "our own stall is no dead peer"
    );
    assert_eq!(
        p.d.s.status(),
        Status::Running,
        "the sender hears our pings"
    );
    p.l.reading = true;
    while fed < data.len() {
        p.run();
        fed += p.d.input(&data[fed..], p.now);
    }
    p.run();
    assert_eq!(p.l.shown.len(), data.len());
}

#[test]
fn interrupting_the_handshake_fails_at_once() {
    let mut p = Pair::default_mode();
    p.d.s.leave(p.now);
    assert_eq!(failed(&p.d.s), Error::Interrupted);
    // Also after the keys but before the peer's HELLO has arrived.
    let mut p = Pair::default_mode();
    let now = p.now;
    for _ in 0..3 {
        let n = p.d.s.transmit().len();
        let out = p.d.s.transmit().to_vec();
        p.d.s.transmitted(n, now);
        p.l.s.receive_buf()[..n].copy_from_slice(&out);
        p.l.s.received(n, now);
        let n = p.l.s.transmit().len();
        let back = p.l.s.transmit().to_vec();
        p.l.s.transmitted(n, now);
        if p.l.s.is_established() {
            break;
        }
        p.d.s.receive_buf()[..n].copy_from_slice(&back);
        p.d.s.received(n, now);
    }
    assert!(p.l.s.is_established() && !p.d.s.is_established());
    p.d.s.leave(now);
    assert_eq!(failed(&p.d.s), Error::Interrupted);
}

#[test]
fn nothing_lost_only_when_both_ways_had_ended() {
    let mut p = Pair::default_mode();
    p.run();
    let now = p.now;
    p.d.s.leave(now);
    assert!(!p.d.s.nothing_lost());
    let mut p = Pair::default_mode();
    p.run();
    p.d.s.input_ended(now);
    p.l.s.input_ended(now);
    p.run();
    p.d.s.leave(now);
    p.run();
    assert!(p.d.s.nothing_lost());
}

#[test]
fn the_peer_name_is_sanitised() {
    let now = Instant::now();
    let mut p = Pair {
        d: Side::new(
            config(
                Role::Dialer,
                Security::VerifyCode,
                "\u{1b}]52;c;evil\u{7}mallory",
            ),
            now,
        ),
        l: Side::new(config(Role::Listener, Security::VerifyCode, "lee"), now),
        now,
        d2l: Vec::new(),
        l2d: Vec::new(),
        connected: true,
    };
    p.run();
    let name = p.l.events.iter().find_map(|e| match e {
        Event::Joined { name, .. } => name.clone(),
        _ => None,
    });
    assert_eq!(name.as_deref(), Some("]52;c;evilmallory"));
}

/// A man in the middle runs one handshake with each side and relays.
#[test]
fn a_man_in_the_middle_gets_different_codes() {
    let now = Instant::now();
    let mut d = Side::new(config(Role::Dialer, Security::VerifyCode, "dana"), now);
    let mut l = Side::new(config(Role::Listener, Security::VerifyCode, "lee"), now);
    let mut m_l = Side::new(config(Role::Listener, Security::VerifyCode, "dana"), now); // faces d
    let mut m_d = Side::new(config(Role::Dialer, Security::VerifyCode, "lee"), now); // faces l
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
    p.l.s.input_ended(now); // the listener had nothing to say
    p.run();
    p.d.input(b"all of it", now);
    p.d.s.input_ended(now);
    // The listener's EOF is in, but nothing confirms ours arrived yet: a
    // FIN now (forged by anyone on the path) is a lost connection.
    let mut early = Pair::default_mode();
    early.run();
    early.l.s.input_ended(now);
    early.run();
    early.d.s.input_ended(now);
    early.d.s.transport_closed(now);
    assert!(matches!(failed(&early.d.s), Error::Lost(m) if m.contains("confirming")));
    // With the exchange completed, both end cleanly.
    p.run();
    assert_eq!(p.l.shown, b"all of it");
    assert_eq!(
        (p.d.s.status(), p.l.s.status()),
        (Status::Done, Status::Done)
    );
    assert!(p.d.s.wants_write_shutdown() && p.l.s.wants_write_shutdown());
}

#[test]
fn an_eof_before_the_peers_hello_is_a_handshake_failure() {
    let mut p = Pair::default_mode();
    let now = p.now;
    // Carry the key exchange until the listener has the dialer's HELLO but
    // the dialer has not yet received the listener's.
    for _ in 0..4 {
        if p.l.s.is_established() {
            break;
        }
        flow(&mut p.d, &mut p.l, &mut p.d2l, now, true);
        if p.l.s.is_established() {
            break;
        }
        flow(&mut p.l, &mut p.d, &mut p.l2d, now, true);
    }
    assert!(!p.d.s.is_established());
    p.d.s.transport_closed(now);
    assert!(matches!(failed(&p.d.s), Error::Handshake(m) if m.contains("during the handshake")));
}
