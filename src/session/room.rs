//! The encrypted room: a room of links and streams. It holds its
//! connections (the listener's door and the room's current [`Link`]),
//! stream 0 in each direction (a [`SendStream`] and a [`RecvStream`], which
//! own their offsets, resume replay, acknowledgements and EOF), the
//! HELLO and RESUME payloads, the farewell (BYE), its deadlines, and the
//! policy of how the room ends.
//!
//! A dialer has one [`Link`]. A listener holds up to [`MAX_PENDING`]
//! handshakes at once; the first to pass key confirmation becomes the
//! room's link and every other one is closed. A connection that received
//! our key material and did not pass key confirmation is a failed attempt,
//! however it ended; after `tries` of them the room gives up.

use std::io;
use std::time::{Duration, Instant};

use super::link::Link;
use super::outbox::Outbox;
use super::stream::{violation, Farewell, Receiving, RecvStream, SendStream, Sending, StreamId};
use super::timer::Timer;
use super::transfer::Transfers;
use super::{Action, Event, LeaveReason, LinkId};
use crate::error::{describe_lost, Error, Signal};
use crate::names;
use crate::protocol::file;
use crate::protocol::handshake::{Method, Pake, BUSY};
use crate::protocol::payload::{self, Hello, OFFER_RELAY_TOKEN};
use crate::protocol::record::{Kind, MAX_WHY};
use crate::protocol::{Random, Role};

/// Handshakes a listener runs at once. Each costs about 130 KiB of buffers;
/// eight are plenty for one expected peer and a few strangers, and bound
/// what a flood can make us hold.
pub const MAX_PENDING: usize = 8;
/// Handshakes one source address may hold at once, so one stranger cannot
/// take every slot.
pub const MAX_PENDING_PER_SOURCE: usize = 4;
/// Resume attempts one source may have in flight while the room is up: the
/// room's own peer makes one at a time.
pub const MAX_RESUMES_PER_SOURCE: usize = 2;
/// How long a connection told [`BUSY`] is read from before it is closed,
/// so the line is not lost to a reset.
pub const BUSY_LINGER: Duration = Duration::from_millis(250);
/// How long to keep reading after our side is done, so the peer's last
/// bytes are not answered with a reset.
pub const LINGER: Duration = Duration::from_secs(2);
/// The same after a failed handshake, so the peer gets our error cleanly.
pub const ABORT_DRAIN: Duration = Duration::from_secs(1);
/// Resume: our DATA the peer has not acknowledged is kept for a new
/// connection to carry on from; when this much is waiting, input stops
/// (backpressure, never loss). It caps a transfer at this much per round
/// trip: 100 MB/s at 20 ms. `--resume-buffer` raises it.
pub const REPLAY_CAP: usize = 2 * 1024 * 1024;
/// Resume: a receiver acknowledges after this many new DATA bytes (and
/// with every heartbeat), well before the sender's buffer fills.
pub const ACK_EVERY: u64 = 128 * 1024;
/// Resume: after both ends were confirmed, how long a side waits for the
/// peer's FIN (which says the peer has our last DONE too) before it is
/// done anyway. Until then a cut connection is resumed like any other, so
/// a DONE lost with it is sent again.
pub const FINAL_WAIT: Duration = Duration::from_secs(5);

/// What an encrypted room needs to know.
pub struct RoomConfig {
    pub role: Role,
    /// The shared secret, or None for verify-code mode.
    pub secret: Option<Pake>,
    /// Our display name, sent in HELLO.
    pub name: String,
    pub idle_timeout: Duration,
    pub handshake_timeout: Duration,
    /// Failed attempts a listener allows before it gives up, counting
    /// `failed_before` (the process's budget).
    pub tries: u32,
    /// Failed attempts earlier rooms of this process saw.
    pub failed_before: u32,
    /// A one-time code: one failed attempt in this room burns it.
    pub one_time: bool,
    /// Dialer: dial a busy listener again for this long (`--retry`).
    pub retry_busy: Option<Duration>,
    /// A peer leaving before its EOF makes our output incomplete: an error.
    pub output_is_data: bool,
    /// The grace period we offer for resuming a lost connection.
    pub resume: Option<Duration>,
    /// The most of our DATA kept for a resume.
    pub resume_buffer: usize,
    /// Our input can be read again from an earlier offset (a regular
    /// file): a resume resends from it, and nothing is kept in memory.
    pub input_rewindable: bool,
    /// A file either way that is not saved makes the room's end an error.
    pub files_strict: bool,
}

/// Resume, agreed in both HELLOs.
struct Resume {
    /// The room's resume key, from the first handshake.
    psk: zeroize::Zeroizing<[u8; 32]>,
    /// The shorter of the two offers.
    grace: Duration,
    /// Both offered the relay resume token (flags bit 0): through a relay
    /// both go back with a token only the room's two ends can name.
    relay_token: bool,
}

/// The room lost its connection and waits for a new one.
struct Down {
    since: Instant,
    why: String,
}

pub struct Room {
    cfg: RoomConfig,
    rng: Box<dyn Random>,
    /// Listener: connections still in their handshake.
    pending: Vec<Link>,
    /// The room's connection: the dialer's from the start, the listener's
    /// once it passed key confirmation.
    current: Option<Link>,
    /// Stream 0, our direction: our input, its resume replay, the peer's
    /// acknowledgements and our EOF.
    send: SendStream,
    /// Stream 0, the peer's direction: the output for our user, what we
    /// accepted and acknowledged, the peer's EOF.
    recv: RecvStream,
    /// The file streams, both ways (protocol v3).
    files: Transfers,
    farewell: Farewell,
    /// The peer could not write what it received, and said why.
    peer_write_failed: Option<String>,
    /// Resume, once both HELLOs offered it.
    resume: Option<Resume>,
    /// The connection was lost; waiting for a resume.
    down: Option<Down>,
    /// Connections the room has had.
    connections: u32,
    /// Resume: both ends are confirmed and our FIN is out; waiting for
    /// the peer's since then.
    clean_since: Option<Instant>,
    failed_attempts: u32,
    /// Dialer: when the first connection came up (for `retry_busy`).
    first_connected: Option<Instant>,
    interrupts: u32,
    /// Events, actions and the outcome, waiting to be taken.
    pub(super) outbox: Outbox,
}

impl Room {
    pub fn new(cfg: RoomConfig, rng: Box<dyn Random>) -> Room {
        // A rewindable input is its own replay buffer.
        let retain = cfg.resume.is_some() && !cfg.input_rewindable;
        let send = SendStream::new(StreamId::MAIN, retain, cfg.resume_buffer);
        let role = cfg.role;
        Room {
            failed_attempts: cfg.failed_before,
            cfg,
            rng,
            pending: Vec::new(),
            current: None,
            send,
            recv: RecvStream::new(StreamId::MAIN),
            files: Transfers::new(role),
            farewell: Farewell::Staying,
            peer_write_failed: None,
            resume: None,
            down: None,
            connections: 0,
            clean_since: None,
            first_connected: None,
            interrupts: 0,
            outbox: Outbox::default(),
        }
    }

    fn method(&self) -> Method {
        if let Some(r) = &self.resume {
            return Method::Resume(r.psk.clone());
        }
        match &self.cfg.secret {
            Some(s) => Method::Secret(s.clone()),
            None => Method::VerifyCode,
        }
    }

    /// Our HELLO: the name, and the resume offer (`protocol::payload`).
    fn hello(&self) -> Vec<u8> {
        Hello::encode(&self.cfg.name, self.cfg.resume)
    }

    /// Takes the peer's HELLO: its name, and whether resume is agreed.
    fn take_hello(&mut self, link: &mut Link, payload: &[u8]) -> String {
        let hello = Hello::decode(payload);
        match (self.cfg.resume, hello.resume, link.resume_psk.take()) {
            (Some(ours), Some(theirs), Some(psk)) if !theirs.grace.is_zero() => {
                self.resume = Some(Resume {
                    psk,
                    grace: ours.min(theirs.grace),
                    relay_token: theirs.flags & OFFER_RELAY_TOKEN != 0,
                });
            }
            // No resume: sealed DATA need not be kept.
            _ => self.send.no_resume(),
        }
        self.connections = 1;
        peer_name(hello.name)
    }

    /// Our RESUME: where our delivery of the peer's stream stopped, and
    /// which of its ends we saw.
    fn resume_record(&self) -> [u8; payload::RESUME_LEN] {
        payload::Resume {
            at: self.recv.accepted(),
            peer_eof: self.recv.state().ended(),
            our_eof_confirmed: self.send.state() == Sending::Confirmed,
            peer_bye: self.farewell == Farewell::PeerLeft,
        }
        .encode()
    }

    /// The peer's RESUME, its offset checked against what we sent.
    fn parse_resume(&self, payload: &[u8]) -> Result<payload::Resume, Error> {
        let Some(mut r) = payload::Resume::decode(payload) else {
            return Err(violation("a RESUME record of the wrong size"));
        };
        r.at = self.send.check_offset(r.at, "a RESUME")?;
        Ok(r)
    }

    /// A new connection carries the room on: resend from where the peer's
    /// delivery stopped, and whatever end of stream it has not seen.
    fn resumed(&mut self, link: Link, peer: payload::Resume, now: Instant) {
        if let Some(old) = self.current.take() {
            if old.id != link.id {
                self.outbox.actions.push_back(Action::Close(old.id));
            }
        }
        let resent = self.send.on_resume(peer.at, peer.peer_eof);
        self.recv.on_resume(peer.our_eof_confirmed);
        self.files.on_resume();
        if let Farewell::ByeSent(reason) = self.farewell {
            if !peer.peer_bye {
                // Our goodbye was lost with the connection: say it again.
                self.farewell = Farewell::Leaving(reason);
            }
        }
        self.connections += 1;
        self.clean_since = None;
        let since = self.down.take().map_or(now, |d| d.since);
        self.outbox.events.push_back(Event::Reconnected {
            after: now.saturating_duration_since(since),
            resent,
            connection: self.connections,
        });
        self.current = Some(link);
        self.seal_pending(now);
    }

    fn start_link(&mut self, id: LinkId, source: u128, now: Instant) -> Link {
        let method = self.method();
        Link::start(
            id,
            source,
            self.cfg.role,
            method,
            self.cfg.handshake_timeout,
            &mut *self.rng,
            now,
        )
    }

    // ----- connections -----------------------------------------------------

    /// Listener: a new connection from `source`. Before the room is up it
    /// is admitted, making way for the oldest connection that has not sent
    /// its whole first flight when the caps are reached, or told that we are
    /// busy when none can make way. Once the room is up only a resume of it
    /// may come in, and a resume always finds a slot (see
    /// [`Room::admit_resume`]).
    pub fn accept(&mut self, id: LinkId, source: u128, now: Instant) {
        let taken = self.current.is_some() || self.down.is_some();
        let resumable = self.resume.is_some() && self.farewell != Farewell::PeerLeft;
        if self.outbox.outcome.is_some() || (taken && !resumable) {
            return self.outbox.actions.push_back(Action::Close(id));
        }
        if taken {
            return self.admit_resume(id, source, now);
        }
        let same = self.pending.iter().filter(|l| l.source == source).count();
        let full = if same >= MAX_PENDING_PER_SOURCE {
            Some(Some(source))
        } else if self.pending.len() >= MAX_PENDING {
            Some(None)
        } else {
            None
        };
        if let Some(among) = full {
            if !self.evict_incomplete(among) {
                // Every slot holds a connection that sent its whole first
                // flight: say so, so a real dialer can try again.
                return self.outbox.actions.push_back(Action::Linger {
                    link: id,
                    flush: BUSY.to_vec(),
                    until: now + BUSY_LINGER,
                });
            }
        }
        let link = self.start_link(id, source, now);
        self.pending.push(link);
    }

    /// Listener: a relay paired us with a peer (see
    /// [`super::Session::accept_paired`]).
    pub fn accept_paired(&mut self, id: LinkId, now: Instant) {
        self.accept(id, 0, now);
        if let Some(l) = self.pending.iter_mut().find(|l| l.id == id) {
            l.paired = true;
        }
    }

    /// While the room is up or down, a new connection can only be a resume
    /// of it, and none of them costs a try: one always gets a slot. When
    /// the caps are reached, the oldest attempt of the source that holds
    /// the most (the newcomer's own when it is at its cap) makes way, so a
    /// flooder displaces its own before anyone else's, and the room's own
    /// resume is displaced only by sources with as few attempts in flight
    /// as itself.
    fn admit_resume(&mut self, id: LinkId, source: u128, now: Instant) {
        let count = |s: u128| self.pending.iter().filter(|l| l.source == s).count();
        let same = count(source);
        // Whose oldest attempt makes way: None for the oldest of all.
        let victim = if same >= MAX_RESUMES_PER_SOURCE {
            Some(Some(source))
        } else if self.pending.len() >= MAX_PENDING {
            let most = self
                .pending
                .iter()
                .map(|l| (count(l.source), l.source))
                .max_by_key(|(n, _)| *n);
            Some(match most {
                // The newcomer's source would hold the most: its own.
                _ if same > 0 && most.is_none_or(|(n, _)| same + 1 >= n) => Some(source),
                Some((n, s)) if n > 1 => Some(s),
                _ => None,
            })
        } else {
            None
        };
        if let Some(among) = victim {
            let oldest = self
                .pending
                .iter()
                .enumerate()
                .filter(|(_, l)| among.is_none_or(|s| l.source == s))
                .min_by_key(|(_, l)| l.started)
                .map(|(i, _)| i);
            if let Some(i) = oldest {
                let link = self.pending.swap_remove(i);
                self.outbox.actions.push_back(Action::Close(link.id));
            }
        }
        let link = self.start_link(id, source, now);
        self.pending.push(link);
    }

    /// Closes the oldest pending connection that has not sent its whole
    /// first flight (from `source`, or from anyone): such a client makes
    /// way for a new one, since a real dialer sends the flight in its first
    /// write, so neither silence nor a preface alone keeps the real peer
    /// out.
    fn evict_incomplete(&mut self, source: Option<u128>) -> bool {
        let oldest = self
            .pending
            .iter()
            .enumerate()
            .filter(|(_, l)| !l.first_flight_seen() && source.is_none_or(|s| l.source == s))
            .min_by_key(|(_, l)| l.started)
            .map(|(i, _)| i);
        let Some(i) = oldest else { return false };
        let link = self.pending.swap_remove(i);
        self.outbox.actions.push_back(Action::Close(link.id));
        true
    }

    /// The process is out of descriptors: close the oldest pending
    /// connection short of its first flight, if any, so that accepting can
    /// go on. Returns whether one was closed.
    pub fn shed_load(&mut self) -> bool {
        self.evict_incomplete(None)
    }

    /// Dialer: our connection is up; the first flight goes out.
    pub fn connected(&mut self, id: LinkId, now: Instant) {
        if self.outbox.outcome.is_some() || self.current.is_some() {
            return self.outbox.actions.push_back(Action::Close(id));
        }
        // While down this is a resume: its keys come from the room's.
        self.first_connected.get_or_insert(now);
        self.current = Some(self.start_link(id, 0, now));
    }

    fn link(&self, id: LinkId) -> Option<&Link> {
        self.current
            .iter()
            .chain(self.pending.iter())
            .find(|l| l.id == id)
    }

    fn link_mut(&mut self, id: LinkId) -> Option<&mut Link> {
        self.current
            .iter_mut()
            .chain(self.pending.iter_mut())
            .find(|l| l.id == id)
    }

    fn pending_index(&self, id: LinkId) -> Option<usize> {
        self.pending.iter().position(|l| l.id == id)
    }

    pub fn to_send(&self, id: LinkId) -> &[u8] {
        self.link(id).map_or(&[], |l| l.tx.data())
    }

    pub fn sent(&mut self, id: LinkId, n: usize, now: Instant) {
        if let Some(l) = self.link_mut(id) {
            l.tx.consume(n);
        }
        self.seal_pending(now);
        self.check_end(now);
    }

    /// Returns true if and only if [`Room::receive_buf`] is not empty.
    pub fn can_receive(&self, id: LinkId) -> bool {
        let Some(l) = self.link(id) else { return false };
        if l.transport_eof || l.rx.room() == 0 {
            return false;
        }
        let is_current = self.current.as_ref().is_some_and(|c| c.id == id);
        !is_current
            || (self.outbox.outcome.is_none()
                && self.farewell != Farewell::PeerLeft
                && self.recv.reading())
    }

    pub fn receive_buf(&mut self, id: LinkId) -> &mut [u8] {
        if !self.can_receive(id) {
            return &mut [];
        }
        match self.link_mut(id) {
            Some(l) => l.rx.spare(),
            None => &mut [],
        }
    }

    pub fn received(&mut self, id: LinkId, n: usize, now: Instant) {
        let Some(l) = self.link_mut(id) else { return };
        l.rx.commit(n);
        l.heard |= n > 0;
        l.last_recv = now;
        self.process(id, now);
    }

    pub fn transport_closed(&mut self, id: LinkId, now: Instant) {
        let Some(l) = self.link_mut(id) else { return };
        l.transport_eof = true;
        self.process(id, now);
    }

    pub fn transport_progress(&mut self, id: LinkId, now: Instant) {
        if let Some(l) = self.current.as_mut().filter(|l| l.id == id) {
            l.last_recv = now;
        }
    }

    pub fn transport_failed(&mut self, id: LinkId, e: &io::Error, now: Instant) {
        let Some(l) = self.link(id) else { return };
        let err = if l.is_confirmed() {
            Error::Lost(describe_lost(e))
        } else {
            l.eof_error()
        };
        self.link_failed(id, err, now);
    }

    fn process(&mut self, id: LinkId, now: Instant) {
        if self.current.as_ref().is_some_and(|c| c.id == id) {
            self.process_current(now);
        } else if let Some(i) = self.pending_index(id) {
            self.process_pending(i, now);
        }
        self.check_end(now);
    }

    /// Fails one connection: the room's (which ends the room), or a pending
    /// one (an attempt, counted if it got our key material).
    fn link_failed(&mut self, id: LinkId, e: Error, now: Instant) {
        match self.pending_index(id) {
            Some(i) => self.drop_attempt(i, e, now),
            None => self.fail(e, now),
        }
    }

    fn drop_attempt(&mut self, i: usize, e: Error, now: Instant) {
        let link = self.pending.swap_remove(i);
        let counted = link.revealed();
        if counted {
            self.failed_attempts += 1;
        }
        // A client that said nothing at all (a port scan, an idle
        // connection) is dropped without a word; so is a failed resume,
        // which while the room is up can only be a stranger's: a storm of
        // them must not flood the user's screen.
        let silent = !link.heard || link.resuming;
        if link.told_why() {
            // A dialer of a new room while ours is up: the line that says
            // the room is taken goes out before the close.
            self.outbox.actions.push_back(Action::Linger {
                link: link.id,
                flush: link.tx.data().to_vec(),
                until: now + ABORT_DRAIN,
            });
        } else if silent {
            self.outbox.actions.push_back(Action::Close(link.id));
        } else {
            self.outbox.events.push_back(Event::FailedAttempt {
                link: link.id,
                why: e.to_string(),
                counted,
                failed: self.failed_attempts,
                tries: self.tries_here(),
            });
            self.outbox.actions.push_back(Action::Linger {
                link: link.id,
                flush: link.tx.data().to_vec(),
                until: now + ABORT_DRAIN,
            });
        }
        let burned = self.cfg.one_time && self.failed_attempts > self.cfg.failed_before;
        if self.failed_attempts < self.cfg.tries && !burned {
            if let Farewell::Leaving(reason) = self.farewell {
                if !self.handshake_in_flight() {
                    // We were leaving, waiting for that handshake only.
                    return self.abandon(reason, Signal::Int, now);
                }
            }
            self.resume_held(now);
            return;
        }
        let n = self.failed_attempts;
        let why = if self.failed_attempts < self.cfg.tries {
            String::from(
                "a failed attempt to join the room (a wrong code, or someone guessing): \
                 the code is burned; run again for a new code",
            )
        } else {
            let (what, fresh) = match &self.cfg.secret {
                Some(Pake { room: Some(_), .. }) => ("the one-time codes", "code"),
                Some(_) => ("the shared secret", "secret"),
                None => ("the verify code", "verify code"),
            };
            format!(
                "{n} failed attempt{} to join: someone may be guessing {what}; \
                 giving up (start again, with a fresh {fresh})",
                if n == 1 { "" } else { "s" },
            )
        };
        self.fail(Error::AuthFailed(why), now);
    }

    /// The failed attempts after which this room gives up: the process's
    /// budget, and for a one-time code the first failure in this room.
    fn tries_here(&self) -> u32 {
        if self.cfg.one_time {
            self.cfg.tries.min(self.cfg.failed_before + 1)
        } else {
            self.cfg.tries
        }
    }

    /// Failed attempts so far, counting those of earlier rooms.
    pub fn failed_attempts(&self) -> u32 {
        self.failed_attempts
    }

    /// Returns true if and only if one more key exchange may be served:
    /// the attempts already failed plus those in flight stay below `tries`,
    /// so no more than `tries` guesses are ever answered.
    fn may_reveal(&self) -> bool {
        let in_flight = self.pending.iter().filter(|l| l.revealed()).count() as u32;
        // A one-time code: one attempt per room, and within the budget.
        let this_room = self.failed_attempts - self.cfg.failed_before + in_flight;
        self.failed_attempts + in_flight < self.cfg.tries && (!self.cfg.one_time || this_room < 1)
    }

    /// Lets connections held back by [`Room::may_reveal`] go on, now that
    /// an attempt in flight has ended.
    fn resume_held(&mut self, now: Instant) {
        while self.outbox.outcome.is_none() && self.current.is_none() && self.may_reveal() {
            let Some(i) = self
                .pending
                .iter()
                .position(|l| l.first_flight_seen() && !l.revealed())
            else {
                return;
            };
            let id = self.pending[i].id;
            self.process_pending(i, now);
            let still_held = self.pending.iter().any(|l| l.id == id && !l.revealed());
            if still_held {
                return;
            }
        }
    }

    fn process_pending(&mut self, i: usize, now: Instant) {
        let may_reveal = self.may_reveal();
        let link = &mut self.pending[i];
        if !link.is_keyed() {
            match link.advance(self.cfg.role, &mut *self.rng, may_reveal) {
                Err(e) => return self.drop_attempt(i, e, now),
                Ok(false) => return,
                Ok(true) => {}
            }
        }
        // The listener's key confirmation: the dialer's HELLO (or RESUME)
        // comes first and we seal nothing of ours before it verifies.
        let opened = match link.open_next() {
            Err(e) => return self.drop_attempt(i, e, now),
            Ok(None) => return,
            Ok(Some(o)) => o,
        };
        if link.resuming {
            if opened.kind != Kind::Resume {
                return self.drop_attempt(i, violation("a resume without RESUME"), now);
            }
            let parsed = self.parse_resume(&self.pending[i].rx.data()[opened.payload.clone()]);
            let peer = match parsed {
                Ok(p) => p,
                Err(e) => return self.drop_attempt(i, e, now),
            };
            let mut link = self.pending.swap_remove(i);
            link.rx.consume(opened.consumed);
            link.confirm();
            link.recv_pos = self.recv.accepted();
            let ours = self.resume_record();
            if link.seal(Kind::Resume, &ours, now).is_err() {
                return self.outbox.actions.push_back(Action::Close(link.id));
            }
            self.resumed(link, peer, now);
            return self.process_current(now);
        }
        if opened.kind != Kind::Hello {
            return self.drop_attempt(i, violation("the first record was not HELLO"), now);
        }
        let payload = link.rx.data()[opened.payload.clone()].to_vec();
        link.rx.consume(opened.consumed);
        link.confirm();
        let mut link = self.pending.swap_remove(i);
        let name = self.take_hello(&mut link, &payload);
        // One room, two people: everyone else is turned away. With resume
        // the port stays open, for resumes of this room only.
        for other in self.pending.drain(..) {
            self.outbox.actions.push_back(Action::Close(other.id));
        }
        if self.resume.is_none() {
            self.outbox.actions.push_back(Action::StopAccepting);
        }
        let ours = self.hello();
        if let Err(e) = link.seal(Kind::Hello, &ours, now) {
            self.current = Some(link);
            return self.fail(e, now);
        }
        self.joined(&mut link, name);
        self.current = Some(link);
        self.seal_pending(now);
        self.process_current(now);
    }

    fn joined(&mut self, link: &mut Link, name: String) {
        self.outbox.events.push_back(Event::Joined {
            link: link.id,
            name: Some(name),
            verify_code: link.verify_code.take(),
            failed_attempts: self.failed_attempts,
        });
    }

    fn process_current(&mut self, now: Instant) {
        let Some(link) = self.current.as_mut() else {
            return;
        };
        if !link.is_keyed() {
            match link.advance(self.cfg.role, &mut *self.rng, true) {
                Err(e) => return self.fail(e, now),
                Ok(false) => return,
                Ok(true) if link.resuming => {
                    // A resume: our RESUME first; the streams go on once
                    // the listener's has verified.
                    link.recv_pos = self.recv.accepted();
                    let ours = self.resume_record();
                    let Some(link) = self.current.as_mut() else {
                        return;
                    };
                    if let Err(e) = link.seal(Kind::Resume, &ours, now) {
                        return self.fail(e, now);
                    }
                }
                Ok(true) => {
                    // The dialer confirms first: its HELLO, then its data,
                    // in the same write as its last key message.
                    let ours = self.hello();
                    let Some(link) = self.current.as_mut() else {
                        return;
                    };
                    if let Err(e) = link.seal(Kind::Hello, &ours, now) {
                        return self.fail(e, now);
                    }
                    self.seal_pending(now);
                }
            }
        }
        self.open_records(now);
    }

    fn open_records(&mut self, now: Instant) {
        loop {
            if self.outbox.outcome.is_some()
                || self.farewell == Farewell::PeerLeft
                || !self.recv.reading()
            {
                return;
            }
            let Some(link) = self.current.as_mut() else {
                return;
            };
            let opened = match link.open_next() {
                Ok(Some(o)) => o,
                Ok(None) => return,
                Err(e) => return self.fail(e, now),
            };
            let confirmed = link.is_confirmed();
            if !confirmed && link.resuming {
                // The dialer's resume: the listener's RESUME verifies it.
                if opened.kind != Kind::Resume {
                    return self.fail(violation("a resume answered without RESUME"), now);
                }
                let payload = link.rx.data()[opened.payload.clone()].to_vec();
                link.rx.consume(opened.consumed);
                let peer = match self.parse_resume(&payload) {
                    Ok(p) => p,
                    Err(e) => return self.fail(e, now),
                };
                let Some(mut link) = self.current.take() else {
                    return;
                };
                link.confirm();
                self.resumed(link, peer, now);
                continue;
            }
            if !confirmed && opened.kind == Kind::Hello {
                let payload = link.rx.data()[opened.payload.clone()].to_vec();
                link.rx.consume(opened.consumed);
                let Some(mut link) = self.current.take() else {
                    return;
                };
                let name = self.take_hello(&mut link, &payload);
                link.confirm();
                self.outbox.events.push_back(Event::Joined {
                    link: link.id,
                    name: Some(name),
                    verify_code: link.verify_code.take(),
                    failed_attempts: 0,
                });
                self.current = Some(link);
                self.seal_pending(now);
                continue;
            }
            let Some(link) = self.current.as_mut() else {
                return;
            };
            let payload = &link.rx.data()[opened.payload.clone()];
            let resume = self.resume.is_some();
            let outcome = match opened.kind {
                _ if !confirmed => Err(violation("the first record was not HELLO")),
                Kind::Resume => Err(violation("a RESUME on a running connection")),
                Kind::Ack => match <[u8; 8]>::try_from(payload) {
                    Ok(n) => self
                        .send
                        .check_offset(u64::from_be_bytes(n), "an ACK")
                        .map(|at| self.send.on_ack(at)),
                    Err(_) => Err(violation("an ACK record of the wrong size")),
                },
                Kind::Hello => Err(violation("a second HELLO")),
                Kind::Data => self.recv.on_data(&mut link.recv_pos, payload),
                Kind::Credit if file::Credit::decode(payload).is_some_and(|c| c.id == 0) => {
                    if let Some(c) = file::Credit::decode(payload) {
                        self.send.on_credit(c.limit);
                    }
                    Ok(())
                }
                Kind::Offer
                | Kind::Accept
                | Kind::Credit
                | Kind::Chunk
                | Kind::Fin
                | Kind::Close => {
                    self.files
                        .on_record(opened.kind, payload, resume, &mut self.outbox.events, now)
                }
                Kind::Received => self.send.on_received(payload, resume),
                Kind::WriteFailed if payload.len() > MAX_WHY => {
                    Err(violation("a WRITE_FAILED reason too long"))
                }
                Kind::WriteFailed => {
                    // Words for our user from the peer: shown safely.
                    let why = String::from_utf8_lossy(payload)
                        .chars()
                        .map(|c| if c.is_control() { '?' } else { c })
                        .collect();
                    self.peer_write_failed = Some(why);
                    self.farewell = Farewell::PeerLeft;
                    self.files
                        .peer_gone("the peer could not go on", &mut self.outbox.events, now);
                    Ok(())
                }
                _ if !payload.is_empty() => Err(violation("a control record with a payload")),
                // A resume may repeat an end the old connection delivered.
                Kind::Eof => self.recv.on_eof(resume).map(|news| {
                    if news {
                        self.outbox.events.push_back(Event::PeerDone);
                    }
                }),
                Kind::Done => self.send.on_done(resume),
                Kind::Bye => {
                    self.farewell = Farewell::PeerLeft;
                    self.files
                        .peer_gone("the peer left the room", &mut self.outbox.events, now);
                    self.outbox.events.push_back(Event::PeerLeft);
                    Ok(())
                }
                Kind::Ping => Ok(()),
            };
            link.rx.consume(opened.consumed);
            if let Err(e) = outcome {
                return self.fail(e, now);
            }
            // An EOF is answered with DONE (sealed now, or once tx has room).
            self.seal_pending(now);
        }
    }

    // ----- the user side ---------------------------------------------------

    /// Returns true if and only if [`Room::input_buf`] is not empty.
    pub fn can_take_input(&self) -> bool {
        self.send.can_take_input()
            && self.farewell == Farewell::Staying
            && self.outbox.outcome.is_none()
            && self
                .current
                .as_ref()
                .is_some_and(|l| l.is_keyed() && (!l.resuming || l.is_confirmed()))
    }

    pub fn input_buf(&mut self) -> &mut [u8] {
        if !self.can_take_input() {
            return &mut [];
        }
        self.send.input_buf()
    }

    /// The offset our input must be read again from before more of it is
    /// given (see [`RoomConfig::input_rewindable`]).
    pub fn rewind_needed(&self) -> Option<u64> {
        self.send.rewind_needed()
    }

    /// Our input was rewound to [`Room::rewind_needed`]: take it again.
    pub fn input_rewound(&mut self, now: Instant) {
        self.send.input_rewound();
        self.seal_pending(now);
    }

    pub fn input_received(&mut self, n: usize, now: Instant) {
        self.send.input_received(n);
        self.seal_pending(now);
    }

    pub fn input_ended(&mut self, now: Instant) {
        if !self.send.input_ended() {
            // An end read before the rewind does not count.
            return;
        }
        self.seal_pending(now);
        self.check_end(now);
    }

    /// The token to go back to a relay with for a resume, when both ends
    /// agreed on it (`transit::resume_token`): None before the room is up,
    /// without resume, or with a peer that meets at the room's token.
    pub fn relay_resume_token(&self) -> Option<[u8; crate::protocol::transit::TOKEN_LEN]> {
        let r = self.resume.as_ref().filter(|r| r.relay_token)?;
        Some(crate::protocol::transit::resume_token(&r.psk))
    }

    /// Returns true if and only if the connection was lost and a resume is
    /// awaited.
    pub fn is_down(&self) -> bool {
        self.down.is_some() && self.outbox.outcome.is_none()
    }

    /// Returns true if and only if the room is up: the peer's HELLO arrived.
    pub fn is_established(&self) -> bool {
        self.current.as_ref().is_some_and(|l| l.is_confirmed())
    }

    pub fn leave(&mut self, reason: LeaveReason, now: Instant) {
        if !self.is_established()
            && self.handshake_in_flight()
            && reason == LeaveReason::OutputClosed
        {
            // Our reader went away while a peer is mid-handshake: cutting
            // it now would look like tampering to the peer. The room
            // opens and our goodbye (RECEIVED 0, BYE) follows our HELLO,
            // so the peer hears that nobody reads it.
            if self.farewell == Farewell::Staying {
                self.farewell = Farewell::Leaving(reason);
            }
            return;
        }
        if !self.is_established() {
            let signal = match reason {
                LeaveReason::Interrupted(s) => s,
                _ => Signal::Int,
            };
            return self.abandon(reason, signal, now);
        }
        if self.farewell == Farewell::Staying {
            self.farewell = Farewell::Leaving(reason);
            self.files
                .cancel_all("the peer left the room", &mut self.outbox.events, now);
        }
        self.seal_pending(now);
        self.check_end(now);
    }

    /// A peer is in the middle of a handshake with us (not a resume).
    fn handshake_in_flight(&self) -> bool {
        self.down.is_none()
            && self.outbox.outcome.is_none()
            && (self.current.is_some() || self.pending.iter().any(|l| l.heard))
    }

    /// Ctrl-C (or TERM, HUP): the first leaves the room, a second, or one
    /// before the room is up, ends the program at once.
    pub fn interrupted(&mut self, signal: Signal, now: Instant) {
        if signal == Signal::Hup && self.interrupts > 0 {
            // The window closed while we were leaving already (the kernel
            // and the shell each send a SIGHUP, or it follows a Ctrl-C):
            // that is leaving too, so the goodbye goes on.
            return;
        }
        self.interrupts += 1;
        if self.interrupts >= 2 {
            return self.fail(Error::Interrupted(signal), now);
        }
        self.leave(LeaveReason::Interrupted(signal), now);
    }

    /// Leaving before the peer's HELLO has been verified ends at once. Once
    /// our keys are in, though, the peer may already be in the room and
    /// showing our data: BYE goes out with our last bytes, so it hears that
    /// we left instead of waiting out a resume of a room nobody returns to.
    fn abandon(&mut self, reason: LeaveReason, signal: Signal, now: Instant) {
        let keyed = self
            .current
            .as_ref()
            .is_some_and(|l| l.is_keyed() && !l.resuming);
        if reason == LeaveReason::User && !keyed && self.down.is_none() {
            // `/quit` or Ctrl-D in a room nobody has joined: nothing was
            // cut short, the user is done waiting.
            return self.finish(Ok(()), now);
        }
        if keyed && self.farewell == Farewell::Staying {
            self.farewell = Farewell::Leaving(reason);
            self.seal_pending(now);
        }
        self.fail(Error::Interrupted(signal), now);
    }

    pub fn output(&self) -> &[u8] {
        self.recv.output()
    }

    pub fn output_written(&mut self, n: usize, now: Instant) {
        if !self.recv.reading() {
            // We had stopped reading the socket; the silence was ours.
            if let Some(l) = self.current.as_mut() {
                l.last_recv = now;
            }
        }
        self.recv.output_written(n);
        // Our user took more: the peer may get more credit.
        self.seal_pending(now);
        self.process_current(now);
        self.check_end(now);
    }

    pub fn output_closed(&mut self, now: Instant) {
        self.recv.discard();
        self.leave(LeaveReason::OutputClosed, now);
    }

    /// Our output failed (not its reader leaving): the room ends with our
    /// error, and WRITE_FAILED tells the peer why, after what is already
    /// sealed, so it stops at once instead of taking our end for tampering
    /// or a lost connection.
    pub fn output_failed(&mut self, e: &io::Error, now: Instant) {
        self.recv.discard();
        let error = super::plain::output_error(e);
        if self.outbox.outcome.is_some() {
            return;
        }
        let mut why = crate::error::describe_io(e);
        while why.len() > MAX_WHY {
            why.pop();
        }
        let told = match self.current.as_mut() {
            Some(link) if link.is_confirmed() && !link.resuming => {
                link.seal(Kind::WriteFailed, why.as_bytes(), now)
            }
            _ => Ok(false),
        };
        match told {
            // Said: no reset, the peer reads it and ends; we linger.
            Ok(true) => self.finish(Err(error), now),
            _ => self.fail(error, now),
        }
    }

    /// Returns true if and only if the peer will send nothing more and all
    /// of it has been shown.
    pub fn output_finished(&self) -> bool {
        let peer_ended = self.recv.state().ended() || self.farewell == Farewell::PeerLeft;
        let rx_empty = self.current.as_ref().is_none_or(|l| l.rx.is_empty());
        peer_ended && self.recv.output_is_empty() && rx_empty
    }

    /// Returns true if and only if everything both ways had ended and was
    /// delivered: leaving now cuts nothing short.
    pub fn all_delivered(&self) -> bool {
        let tx_empty = self.current.as_ref().is_none_or(|l| l.tx.is_empty());
        self.send.state().ended()
            && self.send.unsealed() == 0
            && tx_empty
            && self.output_finished()
            && self.files.idle()
    }

    // ----- file streams ----------------------------------------------------

    pub fn files(&self) -> &Transfers {
        &self.files
    }

    /// Files may be offered until we leave; before the room is up they
    /// wait for it.
    pub fn offer_file(&mut self, name: &[u8], size: u64, now: Instant) -> Result<StreamId, Error> {
        if self.farewell != Farewell::Staying || self.outbox.outcome.is_some() {
            return Err(Error::Usage("the room is ending: no more files".into()));
        }
        let id = self.files.offer(name, size)?;
        self.seal_pending(now);
        Ok(id)
    }

    pub fn accept_file(&mut self, id: StreamId, now: Instant) -> Result<(), String> {
        self.files.accept(id, now)?;
        self.seal_pending(now);
        Ok(())
    }

    pub fn reject_file(&mut self, id: StreamId, why: &str, now: Instant) {
        self.files.reject(id, why, &mut self.outbox.events, now);
        self.seal_pending(now);
        self.check_end(now);
    }

    pub fn cancel_file(&mut self, id: StreamId, now: Instant) -> bool {
        let done = self.files.cancel(
            id,
            "cancelled by the sender's user",
            &mut self.outbox.events,
            now,
        );
        self.seal_pending(now);
        self.check_end(now);
        done
    }

    pub fn file_read_buf(&mut self, id: StreamId) -> &mut [u8] {
        self.files.read_buf(id)
    }

    pub fn file_read(&mut self, id: StreamId, n: usize, now: Instant) {
        self.files.read_done(id, n);
        self.seal_pending(now);
    }

    pub fn file_written(&mut self, id: StreamId, n: usize, now: Instant) {
        self.files.written(id, n, &mut self.outbox.events);
        self.seal_pending(now);
    }

    pub fn file_saved(&mut self, id: StreamId, now: Instant) {
        self.files.saved(id, &mut self.outbox.events, now);
        self.seal_pending(now);
        self.check_end(now);
    }

    pub fn file_io_failed(&mut self, id: StreamId, why: &str, now: Instant) {
        self.files.io_failed(id, why, &mut self.outbox.events, now);
        self.seal_pending(now);
        self.check_end(now);
    }

    // ----- time and state --------------------------------------------------

    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.outbox.outcome.is_some() {
            return None;
        }
        Timer::VALUES.iter().filter_map(|&t| self.deadline(t)).min()
    }

    /// When `timer` expires, if it runs at all.
    fn deadline(&self, timer: Timer) -> Option<Instant> {
        let role = self.cfg.role;
        let current = self.current.as_ref();
        let confirmed = current.filter(|l| l.is_confirmed());
        match timer {
            Timer::ResumeGrace => {
                let grace = self.resume.as_ref().map(|r| r.grace);
                self.down.as_ref().zip(grace).map(|(d, g)| d.since + g)
            }
            // While down, a resume decides (or the grace period ends).
            Timer::FinalWait => self
                .clean_since
                .filter(|_| self.down.is_none())
                .map(|t| t + FINAL_WAIT),
            Timer::Admission => self
                .pending
                .iter()
                .map(|l| l.handshake_deadline(role))
                .min(),
            Timer::Handshake => current
                .filter(|l| !l.is_confirmed())
                .map(|l| l.handshake_deadline(role)),
            Timer::Idle => confirmed
                .filter(|l| self.counts_peer_silence(l))
                .map(|l| l.last_recv + self.cfg.idle_timeout),
            Timer::Ping => confirmed
                .filter(|_| self.sends_heartbeats())
                .map(|l| l.last_send + self.ping_interval()),
        }
    }

    fn ping_interval(&self) -> Duration {
        self.cfg.idle_timeout / 3
    }

    /// We send heartbeats until our goodbye is queued or the room closed.
    fn sends_heartbeats(&self) -> bool {
        !self.farewell.we_leave() && !self.closed_cleanly()
    }

    /// A silent peer counts against it only while it has not left and we
    /// are reading.
    fn counts_peer_silence(&self, l: &Link) -> bool {
        self.farewell != Farewell::PeerLeft && !l.transport_eof && self.recv.reading()
    }

    /// Runs every timer that expired by `now`, in [`Timer::VALUES`]
    /// order, until the room ends.
    pub fn handle_timeout(&mut self, now: Instant) {
        for timer in Timer::VALUES {
            if self.outbox.outcome.is_some() {
                return;
            }
            if self.deadline(timer).is_some_and(|t| now >= t) {
                self.on_timeout(timer, now);
            }
        }
    }

    /// What happens when `timer` expires.
    fn on_timeout(&mut self, timer: Timer, now: Instant) {
        let role = self.cfg.role;
        match timer {
            Timer::ResumeGrace => self.give_up_resume(now),
            Timer::FinalWait => {
                let result = match self.farewell {
                    Farewell::ByeSent(reason) => self.bye_outcome(reason),
                    _ => Ok(()),
                };
                self.finish(result, now);
            }
            Timer::Admission => self.admission_timeout(now),
            Timer::Handshake => {
                if let Some(l) = self.current.as_ref() {
                    let e = l.timeout_error(role, now);
                    self.fail(e, now);
                }
            }
            Timer::Idle => {
                let secs = self.cfg.idle_timeout.as_secs_f64();
                self.fail(
                    Error::Lost(format!(
                        "connection lost: no sign of life from the peer for {secs} s"
                    )),
                    now,
                );
            }
            Timer::Ping => {
                let Some(l) = self.current.as_mut() else {
                    return;
                };
                if let Err(e) = l.seal(Kind::Ping, &[], now) {
                    return self.fail(e, now);
                }
                // A heartbeat carries our acknowledgement of anything new.
                if self.resume.is_some() {
                    if let Err(e) = self.recv.seal_ack(l, 1, now) {
                        return self.fail(e, now);
                    }
                }
                // If the record did not fit, data is queued anyway: the peer
                // hears from us as soon as the socket drains.
                l.last_send = now;
            }
        }
    }

    /// Listener: the connections at the door whose handshake ran out of
    /// time. One short of its first flight goes without a word; one with
    /// it is a failed attempt.
    fn admission_timeout(&mut self, now: Instant) {
        let role = self.cfg.role;
        while let Some(i) = self
            .pending
            .iter()
            .position(|l| now >= l.handshake_deadline(role))
        {
            let link = &self.pending[i];
            if link.paired && !link.heard && self.down.is_none() {
                // Not a byte from the peer a relay paired us with, for the
                // whole handshake timeout: a dialer sends at once.
                let secs = self.cfg.handshake_timeout.as_secs_f64();
                let link = self.pending.swap_remove(i);
                self.outbox.actions.push_back(Action::Close(link.id));
                return self.fail(
                    Error::Handshake(format!(
                        "the relay paired us with a peer that sent nothing in {secs} s: \
                         the relay is not relaying, or it paired two listeners"
                    )),
                    now,
                );
            }
            if !self.pending[i].first_flight_seen() {
                // Short of its first flight: no attempt, and not a word.
                let link = self.pending.swap_remove(i);
                self.outbox.actions.push_back(Action::Close(link.id));
                continue;
            }
            let e = self.pending[i].timeout_error(role, now);
            self.drop_attempt(i, e, now);
            if self.outbox.outcome.is_some() {
                return;
            }
        }
    }

    /// Both EOFs are exchanged and each side confirmed (DONE) that it
    /// received the other's: everything arrived, the room ended cleanly.
    /// A FIN alone proves nothing: anyone on the path can forge one.
    fn closed_cleanly(&self) -> bool {
        self.send.state() == Sending::Confirmed
            && self.recv.state() == Receiving::DoneSent
            && self.files.idle()
            && self.current.as_ref().is_some_and(|l| l.tx.is_empty())
    }

    // ----- internals -------------------------------------------------------

    /// Decides whether the room has ended, and how, after every input.
    fn check_end(&mut self, now: Instant) {
        if self.outbox.outcome.is_some() {
            return;
        }
        let Some(link) = self.current.as_ref() else {
            return;
        };
        if !link.is_confirmed() || !self.recv.output_is_empty() {
            return;
        }
        let flushed = link.tx.is_empty();
        let end = match self.farewell {
            Farewell::PeerLeft => Some(self.peer_left_outcome()),
            Farewell::ByeSent(reason) if flushed && (self.resume.is_none() || link.transport_eof) => {
                Some(self.bye_outcome(reason))
            }
            Farewell::ByeSent(_) if flushed => {
                // Our BYE is out: FIN, then wait for the peer's (it ends
                // when our BYE arrives). A cut meanwhile is resumed and
                // the BYE sent again, so the peer never waits in vain.
                if self.clean_since.is_none() {
                    self.clean_since = Some(now);
                    self.outbox.actions.push_back(Action::ShutdownWrite(link.id));
                }
                None
            }
            _ if self.closed_cleanly() && (self.resume.is_none() || link.transport_eof) => {
                Some(Ok(()))
            }
            _ if self.closed_cleanly() => {
                // Our side is complete: FIN, then wait for the peer's.
                if self.clean_since.is_none() {
                    self.clean_since = Some(now);
                    self.outbox.actions.push_back(Action::ShutdownWrite(link.id));
                }
                None
            }
            _ if link.transport_eof && link.rx.is_empty() => Some(Err(Error::Lost(
                if self.recv.state().ended() {
                    "connection lost: the peer closed the connection before confirming it received everything"
                } else {
                    "connection lost: the connection dropped without a goodbye from the peer"
                }
                .into(),
            ))),
            _ => None,
        };
        match end {
            Some(Ok(())) => self.finish(Ok(()), now),
            // The peer left on purpose: our side ends without a reset.
            Some(Err(e)) if self.farewell == Farewell::PeerLeft => self.finish(Err(e), now),
            Some(Err(e)) => self.fail(e, now),
            None => {}
        }
    }

    /// How leaving ends for us: cut short by a signal, or fine.
    fn bye_outcome(&self, reason: LeaveReason) -> Result<(), Error> {
        match reason {
            LeaveReason::Interrupted(signal) if !self.all_delivered() => {
                Err(Error::Interrupted(signal))
            }
            _ => Ok(()),
        }
    }

    /// The peer left: was everything we sent read, and did its own data
    /// end before it left? A sender exits 0 only when the peer confirmed
    /// every byte; a receiver only when the peer's stream ended (EOF).
    fn peer_left_outcome(&self) -> Result<(), Error> {
        if let Some(why) = &self.peer_write_failed {
            return Err(Error::Lost(format!(
                "the peer could not write what it received ({why})"
            )));
        }
        let confirmed = self.send.state() == Sending::Confirmed;
        let read = self.send.peer_received().unwrap_or(0);
        if !confirmed && read < self.send.sent() {
            // In the user's terms: how much of their input never arrived.
            let taken = self.send.taken();
            let size = crate::progress::bytes;
            let why = if matches!(self.send.state(), Sending::Ending | Sending::EofSent) {
                // All our input was taken: the peer read part of it.
                format!(
                    "the peer stopped reading: {} of your {} of input was not delivered",
                    size(taken.saturating_sub(read)),
                    size(taken)
                )
            } else {
                format!(
                    "the peer stopped reading after {} of your input; the rest was not delivered",
                    size(read)
                )
            };
            return Err(Error::Lost(why));
        }
        if self.cfg.output_is_data && !self.recv.state().ended() {
            return Err(Error::Lost(
                "the peer left before it finished sending (it was interrupted); what arrived is incomplete"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Ends the room cleanly (or by a first Ctrl-C with data cut short):
    /// FIN, then read until the peer's FIN so nothing is answered by a reset.
    fn finish(&mut self, result: Result<(), Error>, now: Instant) {
        if self.outbox.outcome.is_some() {
            return;
        }
        let result = match self.files.verdict() {
            Some(why) if result.is_ok() && self.cfg.files_strict => Err(Error::Lost(why)),
            _ => result,
        };
        self.outbox.outcome = Some(result);
        if let Some(link) = self.current.as_ref() {
            self.outbox.actions.push_back(Action::Linger {
                link: link.id,
                flush: link.tx.data().to_vec(),
                until: now + LINGER,
            });
        }
        self.close_the_rest();
    }

    /// Ends the room with an error. After the room is up the connection is
    /// reset, so the peer cannot mistake the failure for a clean end; a
    /// failed handshake sends its last bytes and drains, so the peer reads
    /// the same clear error and not a reset.
    fn fail(&mut self, e: Error, now: Instant) {
        if self.outbox.outcome.is_some() {
            return;
        }
        if let (Farewell::ByeSent(reason), Some(_), Error::Lost(_)) =
            (self.farewell, self.clean_since, &e)
        {
            // Our BYE was in the peer's kernel before the connection ended:
            // a peer that got it closes, with a reset if our data was still
            // unread. That is leaving, done.
            let result = self.bye_outcome(reason);
            return self.finish(result, now);
        }
        if self.may_go_down(&e) {
            return self.go_down(e, now);
        }
        let e = match self.busy_retry(e, now) {
            Ok(()) => return,
            Err(e) => e,
        };
        if let Some(link) = self.current.as_ref() {
            let action = if link.is_confirmed() {
                Action::Reset(link.id)
            } else {
                Action::Linger {
                    link: link.id,
                    flush: link.tx.data().to_vec(),
                    until: now + ABORT_DRAIN,
                }
            };
            self.outbox.actions.push_back(action);
        }
        self.outbox.outcome = Some(Err(e));
        self.close_the_rest();
    }

    /// Dialer: the listener said it is busy before the room was up. Within
    /// `--retry` the connection is closed and a new one dialed; after it,
    /// the error says how long we tried.
    fn busy_retry(&mut self, e: Error, now: Instant) -> Result<(), Error> {
        let busy = self
            .current
            .as_ref()
            .is_some_and(|l| l.peer_busy() && !l.resuming);
        let (Some(retry), Some(first)) = (self.cfg.retry_busy, self.first_connected) else {
            return Err(e);
        };
        if !busy {
            return Err(e);
        }
        if now >= first + retry {
            return Err(match e {
                Error::Connect(m) => Error::Connect(format!(
                    "{m} (gave up after retrying for {} s)",
                    retry.as_secs_f64()
                )),
                e => e,
            });
        }
        if let Some(link) = self.current.take() {
            self.outbox.actions.push_back(Action::Close(link.id));
        }
        self.outbox.actions.push_back(Action::Redial);
        Ok(())
    }

    /// A lost connection (not tampering, not a failed first handshake)
    /// of a room that agreed on resume, and that nobody is leaving.
    fn may_go_down(&self, e: &Error) -> bool {
        if self.resume.is_none() || self.farewell == Farewell::PeerLeft {
            return false;
        }
        let Some(link) = self.current.as_ref() else {
            return false;
        };
        if link.resuming && !link.is_confirmed() {
            // A resume that failed: try again, unless the peer said it
            // has no such room (it was restarted).
            return !matches!(e, Error::Handshake(m) if m.contains("no longer has this room"));
        }
        link.is_confirmed() && matches!(e, Error::Lost(_))
    }

    /// The connection is gone but the room is not: close it, tell the
    /// user, and wait for a new one (the dialer redials).
    fn go_down(&mut self, e: Error, now: Instant) {
        if let Some(link) = self.current.take() {
            self.outbox.actions.push_back(Action::Reset(link.id));
        }
        let grace = self.resume.as_ref().map_or(Duration::ZERO, |r| r.grace);
        if self.down.is_none() {
            let why = e.to_string();
            self.outbox.events.push_back(Event::ConnectionLost {
                why: why.clone(),
                grace,
            });
            self.down = Some(Down { since: now, why });
        }
        // The dialer dials again; through a relay both sides go back to
        // it. (A direct listener is still listening: it ignores this.)
        self.outbox.actions.push_back(Action::Redial);
    }

    /// The grace period ran out: the room ends, saying what was not
    /// confirmed.
    fn give_up_resume(&mut self, now: Instant) {
        let Some(down) = self.down.take() else { return };
        let grace = self.resume.as_ref().map_or(0.0, |r| r.grace.as_secs_f64());
        let unconfirmed = self.send.unconfirmed();
        let mut why = format!("{}; not resumed within {grace} s", down.why);
        if unconfirmed > 0 {
            why.push_str(&format!(
                "; {unconfirmed} byte{} we sent were not confirmed",
                if unconfirmed == 1 { "" } else { "s" }
            ));
        }
        self.resume = None;
        self.fail(Error::Lost(why), now);
    }

    fn close_the_rest(&mut self) {
        for other in self.pending.drain(..) {
            self.outbox.actions.push_back(Action::Close(other.id));
        }
        self.outbox.actions.push_back(Action::StopAccepting);
    }

    /// Seals pending input into DATA records, then DONE, EOF, and on
    /// leaving RECEIVED (what we delivered) followed by BYE, when due.
    fn seal_pending(&mut self, now: Instant) {
        if self.outbox.outcome.is_some() {
            return;
        }
        if let Err(e) = self.seal_streams(now) {
            self.fail(e, now);
        }
    }

    /// Seals, in this order: an ACK when one is due, our pending DATA,
    /// and then (unless a BYE ended the room) DONE for the peer's EOF,
    /// our EOF, and on leaving RECEIVED (what we delivered) with BYE.
    fn seal_streams(&mut self, now: Instant) -> Result<(), Error> {
        let Some(link) = self.current.as_mut() else {
            return Ok(());
        };
        if !link.is_keyed() || (link.resuming && !link.is_confirmed()) {
            return Ok(());
        }
        if self.resume.is_some() {
            self.recv.seal_ack(link, ACK_EVERY, now)?;
        }
        self.recv.seal_credit(link, now)?;
        if !self.send.seal_data(link, now)? {
            return Ok(());
        }
        if matches!(self.farewell, Farewell::PeerLeft | Farewell::ByeSent(_)) {
            return Ok(());
        }
        // The files after the chat: their answers and ends, then their
        // bytes while the link is nearly empty, so a line typed meanwhile
        // goes out ahead of them.
        if !self.files.seal_control(link, now)? {
            return Ok(());
        }
        self.files.seal_chunks(link, |l: &Link| l.tx.len(), now)?;
        self.recv.seal_done(link, now)?;
        if !self.send.seal_eof(link, now)? {
            return Ok(());
        }
        if let Farewell::Leaving(reason) = self.farewell {
            // RECEIVED and BYE go together or not at all.
            if link.tx.room() < 2 * (crate::protocol::record::OVERHEAD + 8) {
                return Ok(());
            }
            link.seal(Kind::Received, &self.recv.delivered().to_be_bytes(), now)?;
            link.seal(Kind::Bye, &[], now)?;
            self.farewell = Farewell::ByeSent(reason);
        }
        Ok(())
    }
}

fn peer_name(payload: &[u8]) -> String {
    let name = names::sanitize(payload);
    if name.is_empty() {
        "peer".into()
    } else {
        name
    }
}
