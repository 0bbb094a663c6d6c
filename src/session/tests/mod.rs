//! Sessions wired together in memory with simulated time and seeded
//! randomness: every record type, every lifecycle action and every failure,
//! without a socket, a clock or a thread.
//!
//! * `room.rs`: one dialer and one listener, the room's life from
//!   handshake to goodbye.
//! * `listener.rs`: a listener facing strangers: admission, attempt
//!   accounting, key-confirmation order.
//! * `fuzz.rs`: arbitrary records and events against an established room.
//! * `resume.rs`: cut connections carried on by new ones, nothing lost.
//! * `reconnect.rs`: when a new connection is asked for (backoff, jitter,
//!   a busy listener) and when the asking stops (refused for 10 s).

mod files;
mod fuzz;
mod listener;
mod reconnect;
mod resume;
mod room;
mod stream;

use std::io;
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use super::*;
use crate::protocol::DeterministicRng;

pub use crate::testkit::{HANDSHAKE, IDLE};
/// Bytes the in-memory wire holds in flight, like a socket's buffers.
const WIRE_LIMIT: usize = 256 * 1024;
/// The link id both sides of a pair use for their one connection.
pub const LINK: LinkId = LinkId(16);

pub fn config(role: Role, security: Security, name: &str) -> SessionConfig {
    SessionConfig {
        security,
        room: crate::testkit::room_settings(role, name),
    }
}

pub fn secret(s: &str) -> Security {
    Security::Secret(Zeroizing::new(s.as_bytes().to_vec()))
}

pub fn session(cfg: SessionConfig, seed: u64) -> Session {
    Session::new(cfg, Box::new(DeterministicRng::new(seed)))
}

/// One side: its session and everything it showed, said and asked for.
pub struct Side {
    pub s: Session,
    pub link: LinkId,
    pub shown: Vec<u8>,
    pub events: Vec<Event>,
    pub actions: Vec<Action>,
    /// Wire bytes it sent, as captured on the way.
    pub sent: Vec<u8>,
    /// Whether its output is being read (false simulates a stalled stdout).
    pub reading: bool,
    /// Times its input was read again from an earlier offset (resume with
    /// a rewindable input).
    pub rewinds: usize,
    /// Last bytes a linger asked to flush, not yet on the wire.
    flushed: Vec<u8>,
}

impl Side {
    pub fn new(s: Session, link: LinkId) -> Side {
        Side {
            s,
            link,
            shown: Vec::new(),
            events: Vec::new(),
            actions: Vec::new(),
            sent: Vec::new(),
            reading: true,
            rewinds: 0,
            flushed: Vec::new(),
        }
    }

    pub fn input(&mut self, data: &[u8], now: Instant) -> usize {
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

    /// Feeds raw wire bytes as if they arrived on the socket.
    pub fn feed(&mut self, bytes: &[u8], now: Instant) {
        let mut fed = 0;
        while fed < bytes.len() {
            let buf = self.s.receive_buf(self.link);
            if buf.is_empty() {
                break;
            }
            let n = buf.len().min(bytes.len() - fed);
            buf[..n].copy_from_slice(&bytes[fed..fed + n]);
            self.s.received(self.link, n, now);
            fed += n;
        }
        self.drain(now);
    }

    pub fn drain(&mut self, now: Instant) -> bool {
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
        while let Some(a) = self.s.poll_action() {
            // A lingering side still delivers its last bytes.
            if let Action::Linger { flush, .. } = &a {
                self.flushed.extend_from_slice(flush);
            }
            self.actions.push(a);
            moved = true;
        }
        moved
    }

    pub fn code(&self) -> Option<String> {
        self.events.iter().find_map(|e| match e {
            Event::Joined { verify_code, .. } => verify_code.clone(),
            _ => None,
        })
    }

    /// Returns true if and only if the side has finished writing on its link
    /// (a write shutdown, a linger or a close): the peer sees a FIN.
    pub fn sent_fin(&self) -> bool {
        self.actions.iter().any(|a| match a {
            Action::ShutdownWrite(l) | Action::Close(l) => *l == self.link,
            Action::Linger { link, .. } => *link == self.link,
            _ => false,
        })
    }

    /// Returns true if and only if the side reset its link.
    pub fn reset(&self) -> bool {
        self.actions.contains(&Action::Reset(self.link))
    }

    pub fn failure(&self) -> Error {
        match self.s.status() {
            Status::Ended(Err(e)) => e,
            other => panic!("expected a failure, got {other:?}"),
        }
    }
}

/// A dialer and a listener joined by an in-memory "wire".
pub struct Pair {
    pub dialer: Side,
    pub listener: Side,
    pub now: Instant,
    /// Bytes in flight dialer->listener and listener->dialer.
    pub d2l: Vec<u8>,
    pub l2d: Vec<u8>,
    /// When false the wire carries nothing (a vanished or frozen peer).
    pub connected: bool,
}

impl Pair {
    pub fn new(d: Security, l: Security) -> Pair {
        Pair::with_names(d, l, "dana", "lee")
    }

    pub fn with_names(d: Security, l: Security, dn: &str, ln: &str) -> Pair {
        Pair::from_configs(
            config(Role::Dialer, d, dn),
            config(Role::Listener, l, ln),
            1,
        )
    }

    /// Both sides from their configs, connected; the listener's generator
    /// is seeded with `seed + 1`.
    pub fn from_configs(d: SessionConfig, l: SessionConfig, seed: u64) -> Pair {
        let now = Instant::now();
        let mut dialer = Side::new(session(d, seed), LINK);
        let mut listener = Side::new(session(l, seed + 1), LINK);
        listener.s.accept(LINK, 1, now);
        dialer.s.connected(LINK, now);
        Pair {
            dialer,
            listener,
            now,
            d2l: Vec::new(),
            l2d: Vec::new(),
            connected: true,
        }
    }

    pub fn default_mode() -> Pair {
        Pair::new(Security::VerifyCode, Security::VerifyCode)
    }

    /// Moves bytes until nothing moves.
    pub fn run(&mut self) {
        for _ in 0..100_000 {
            if !self.step() {
                return;
            }
        }
        panic!("the pair never settled");
    }

    /// One round of the wire each way; whether anything moved.
    pub fn step(&mut self) -> bool {
        let (now, up) = (self.now, self.connected);
        flow(&mut self.dialer, &mut self.listener, &mut self.d2l, now, up)
            | flow(&mut self.listener, &mut self.dialer, &mut self.l2d, now, up)
    }

    /// Moves bytes one direction at a time until `done` holds (or nothing
    /// moves any more).
    pub fn step_until(&mut self, done: impl Fn(&Pair) -> bool) {
        for _ in 0..10_000 {
            let (now, up) = (self.now, self.connected);
            if done(self) {
                return;
            }
            let a = flow(&mut self.dialer, &mut self.listener, &mut self.d2l, now, up);
            if done(self) {
                return;
            }
            let b = flow(&mut self.listener, &mut self.dialer, &mut self.l2d, now, up);
            if !a && !b {
                return;
            }
        }
    }

    /// Advances simulated time, firing due timers, and runs the wire.
    pub fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            let next = [self.dialer.s.poll_timeout(), self.listener.s.poll_timeout()]
                .into_iter()
                .flatten()
                .filter(|t| *t <= end)
                .min();
            let Some(t) = next else { break };
            self.now = t.max(self.now);
            for side in [&mut self.dialer, &mut self.listener] {
                if side.s.poll_timeout().is_some_and(|x| x <= self.now) {
                    side.s.handle_timeout(self.now);
                }
            }
            self.run();
        }
        self.now = end;
        self.run();
    }

    /// Carries FINs and resets across once the sides asked for them.
    pub fn deliver_ends(&mut self) {
        let now = self.now;
        let (dl, ll) = (self.dialer.link, self.listener.link);
        if self.dialer.reset() {
            let e = io::Error::from(io::ErrorKind::ConnectionReset);
            self.listener.s.transport_failed(ll, &e, now);
        } else if self.dialer.sent_fin() && self.d2l.is_empty() {
            self.listener.s.transport_closed(ll, now);
        }
        if self.listener.reset() {
            let e = io::Error::from(io::ErrorKind::ConnectionReset);
            self.dialer.s.transport_failed(dl, &e, now);
        } else if self.listener.sent_fin() && self.l2d.is_empty() {
            self.dialer.s.transport_closed(dl, now);
        }
        self.run();
    }

    /// Both sides end their input and the pair settles.
    pub fn finish(&mut self) {
        let now = self.now;
        self.dialer.s.input_ended(now);
        self.listener.s.input_ended(now);
        self.run();
        self.deliver_ends();
    }

    pub fn assert_both(&self, want: Status) {
        assert_eq!(
            (self.dialer.s.status(), self.listener.s.status()),
            (want.clone(), want)
        );
    }
}

/// One direction of the in-memory wire: `from`'s bytes into `wire`, `wire`
/// into `to`'s receive buffer. Returns whether anything moved.
pub fn flow(from: &mut Side, to: &mut Side, wire: &mut Vec<u8>, now: Instant, up: bool) -> bool {
    let mut moved = false;
    // Once a link lingers its last bytes travel as the linger's flush,
    // as the driver does it, never from the session again.
    let lingering = from
        .actions
        .iter()
        .any(|a| matches!(a, Action::Linger { link, .. } if *link == from.link));
    let tx = if lingering {
        &[][..]
    } else {
        from.s.to_send(from.link)
    };
    // Like a socket, the wire holds a bounded amount in flight.
    let n = tx.len().min(WIRE_LIMIT.saturating_sub(wire.len()));
    if n > 0 && up {
        wire.extend_from_slice(&tx[..n]);
        from.sent.extend_from_slice(&tx[..n]);
        from.s.sent(from.link, n, now);
        moved = true;
    }
    // Bytes a lingering side flushed travel too.
    moved |= from.drain(now);
    if up && !from.flushed.is_empty() {
        let flushed = std::mem::take(&mut from.flushed);
        from.sent.extend_from_slice(&flushed);
        wire.extend_from_slice(&flushed);
        moved = true;
    }
    while up && !wire.is_empty() {
        let buf = to.s.receive_buf(to.link);
        if buf.is_empty() {
            break;
        }
        let n = buf.len().min(wire.len());
        buf[..n].copy_from_slice(&wire[..n]);
        wire.drain(..n);
        to.s.received(to.link, n, now);
        moved = true;
    }
    moved |= to.drain(now);
    moved
}
