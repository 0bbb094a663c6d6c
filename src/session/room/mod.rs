//! The encrypted room: a room of links and streams. It holds its
//! connections (the listener's door and the room's current [`Link`]),
//! stream 0 in each direction (a [`SendStream`] and a [`RecvStream`], which
//! own their offsets, credit, resume replay, acknowledgements and EOF),
//! the file streams ([`Transfers`]), the farewell (BYE), its deadlines,
//! and the policy of how the room ends, one concern per file:
//!
//! - `mod.rs`: the room's state, its links, the user's side, its timers;
//! - `admission.rs`: the listener's door and the attempts it counts;
//! - `records.rs`: what the peer's records mean, and what we seal in
//!   what order (the chat ahead of the files' bytes);
//! - `ending.rs`: how the room ends, or goes down for a resume.
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
use super::reconnect::{self, Reconnect};
use super::stream::{violation, Farewell, Receiving, RecvStream, SendStream, Sending, StreamId};
use super::timer::Timer;
use super::transfer::Transfers;
use super::{Action, ConnectFailure, Event, LeaveReason, LinkId, RoomSettings};
use crate::error::{describe_lost, Error, Signal};
use crate::names;
use crate::protocol::file;
use crate::protocol::handshake::{Method, Pake, BUSY};
use crate::protocol::payload::{self, Hello, OFFER_RELAY_TOKEN};
use crate::protocol::record::{Kind, MAX_WHY};
use crate::protocol::Random;

mod admission;
mod ending;
mod records;

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

/// How a peer proves itself to the room.
pub struct Proof {
    /// The shared secret, or None for verify-code mode.
    pub secret: Option<Pake>,
    /// A one-time code: one failed attempt in this room burns it.
    pub one_time: bool,
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
    cfg: RoomSettings,
    proof: Proof,
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
    /// When to ask for a new connection, and when to stop trying.
    reconnect: Reconnect,
    interrupts: u32,
    /// Events, actions and the outcome, waiting to be taken.
    pub(super) outbox: Outbox,
}

impl Room {
    pub fn new(cfg: RoomSettings, proof: Proof, rng: Box<dyn Random>) -> Room {
        // A rewindable input is its own replay buffer.
        let retain = cfg.resume.is_some() && !cfg.input_rewindable;
        let send = SendStream::new(StreamId::MAIN, retain, cfg.resume_buffer);
        let role = cfg.role;
        Room {
            failed_attempts: cfg.failed_before,
            cfg,
            proof,
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
            reconnect: Reconnect::default(),
            interrupts: 0,
            outbox: Outbox::default(),
        }
    }

    fn method(&self) -> Method {
        if let Some(r) = &self.resume {
            return Method::Resume(r.psk.clone());
        }
        match &self.proof.secret {
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
    fn resumed(&mut self, mut link: Link, peer: payload::Resume, now: Instant) {
        if let Some(old) = self.current.take() {
            if old.id != link.id {
                self.outbox.actions.push_back(Action::Close(old.id));
            }
        }
        let resent = self.send.on_resume(peer.at, peer.peer_eof);
        self.recv.on_resume(peer.our_eof_confirmed);
        if self.recv.state() == Receiving::DoneSent {
            // The peer has our DONE already: nothing of it is owed on
            // this connection.
            link.done_end = Some(0);
        }
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

    /// Dialer: our connection is up; the first flight goes out.
    pub fn connected(&mut self, id: LinkId, now: Instant) {
        if self.outbox.outcome.is_some() || self.current.is_some() {
            return self.outbox.actions.push_back(Action::Close(id));
        }
        // While down this is a resume: its keys come from the room's.
        self.first_connected.get_or_insert(now);
        self.reconnect.came_up();
        self.current = Some(self.start_link(id, 0, now));
    }

    /// A connection asked for with [`Action::Redial`] failed: ask for the
    /// next one after a backoff, or end the room when a lost room's
    /// redials have all been refused for [`reconnect::REFUSED_FOR`].
    pub fn connect_failed(&mut self, failure: ConnectFailure, now: Instant) {
        if self.outbox.outcome.is_some() || self.current.is_some() {
            return;
        }
        let refused = match failure {
            ConnectFailure::Fatal(e) => return self.fail(e, now),
            ConnectFailure::Refused { target } => Some(target),
            ConnectFailure::Failed => None,
        };
        let gone = self.reconnect.failed(refused.is_some(), now);
        if let (true, Some(target), Some(_)) = (gone, refused, self.down.as_ref()) {
            return self.fail(
                Error::Lost(format!(
                    "connection lost, and {target} has refused connections for {} s: \
                     the peer's p2pchat has ended",
                    reconnect::REFUSED_FOR.as_secs()
                )),
                now,
            );
        }
        self.redial(Duration::ZERO, now);
    }

    /// Asks for a new connection: at once, or once the backoff (and at
    /// least `at_least`) has passed ([`Timer::Reconnect`]).
    fn redial(&mut self, at_least: Duration, now: Instant) {
        self.reconnect.schedule(at_least, now, &mut *self.rng);
        if self.reconnect.take_due(now) {
            self.outbox.actions.push_back(Action::Redial);
        }
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
            l.flushed += n as u64;
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

    pub fn set_send_room(&mut self, id: LinkId, room: Option<usize>, now: Instant) {
        let Some(l) = self.current.as_mut().filter(|l| l.id == id) else {
            return;
        };
        // What waits in `tx` is not in the socket yet, so not in the
        // driver's figure: it takes its share of the room first.
        let room = room.map(|r| r.saturating_sub(l.tx.len()));
        let more = match (l.send_room, room) {
            (Some(old), Some(new)) => new > old,
            (old, new) => old.is_some() && new.is_none(),
        };
        let was_held = std::mem::take(&mut l.room_held);
        l.send_room = room;
        // Held bytes are looked at again: they go now, or hold again.
        if more || was_held {
            self.seal_pending(now);
        }
    }

    pub fn room_held(&self, id: LinkId) -> bool {
        self.current
            .as_ref()
            .is_some_and(|l| l.id == id && l.room_held)
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
    /// given (see [`RoomSettings::input_rewindable`]).
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

    pub fn file_saved(&mut self, id: StreamId, now: Instant) -> bool {
        let wanted = self.files.saved(id, &mut self.outbox.events, now);
        self.seal_pending(now);
        self.check_end(now);
        wanted
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
            Timer::Reconnect => self.reconnect.due(),
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
            Timer::Reconnect => {
                if self.reconnect.take_due(now) {
                    self.outbox.actions.push_back(Action::Redial);
                }
            }
        }
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
