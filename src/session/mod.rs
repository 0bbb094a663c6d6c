//! The sans-IO core: a [`Session`] is one room, a state machine that owns no
//! socket, no clock, no thread and no terminal. Randomness is passed in.
//!
//! # The run-loop contract
//!
//! The driver owns the sockets and gives each connection a [`LinkId`]. In
//! every turn of its loop it:
//!
//! 1. **feeds inputs**: a new connection ([`Session::accept`] for a
//!    listener, [`Session::connected`] for a dialer) or the failure of
//!    one the session asked for ([`Session::connect_failed`]), socket bytes
//!    ([`Session::receive_buf`] then [`Session::received`]), the socket's
//!    end ([`Session::transport_closed`], [`Session::transport_failed`]),
//!    user input ([`Session::input_buf`] then [`Session::input_received`],
//!    [`Session::input_ended`], [`Session::leave`], [`Session::interrupted`])
//!    and the time ([`Session::handle_timeout`] once [`Session::poll_timeout`]
//!    is due);
//! 2. **drains outputs**: bytes to send per link ([`Session::to_send`] then
//!    [`Session::sent`]), bytes to show ([`Session::output`] then
//!    [`Session::output_written`]), [`Session::poll_event`] for the user and
//!    [`Session::poll_action`] for the sockets, until each is empty;
//! 3. **checks** [`Session::status`]: once it is `Ended` and every lingering
//!    connection is closed, the program exits with that result;
//! 4. **sleeps** until a socket or the user is ready, or until
//!    [`Session::poll_timeout`].
//!
//! Every buffer has a fixed capacity: an empty `input_buf` or `receive_buf`
//! means "not now", which is how backpressure reaches the producer on
//! either side. All policy lives here: who gets the room, how many failed
//! attempts are allowed, when to reset, drain or linger, when to make a
//! new connection and when to stop trying ([`reconnect`]), and the exit
//! status. The driver only carries out the connections it is asked for
//! ([`Action::Redial`]): resolving names, trying each address, the
//! connect itself. Nothing a peer sends can make it panic.

pub mod link;
pub mod outbox;
pub mod plain;
pub mod reconnect;
pub mod room;
pub mod stream;
pub mod timer;
pub mod transfer;

use std::io;
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use crate::error::{Error, Signal};
use crate::protocol::code::Code;
use crate::protocol::handshake::Pake;
use crate::protocol::{Random, Role};
use plain::PlainPipe;
use room::{Proof, Room};
use stream::StreamId;
pub use transfer::{FileOutcome, FileProgress};

/// Capacity of the plaintext buffers in each direction.
pub const IO_CAP: usize = 64 * 1024;

/// The driver's name for one connection (in practice its poll token).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LinkId(pub usize);

/// How the room is protected.
#[derive(Clone)]
pub enum Security {
    /// Raw bytes, netcat compatible.
    Plain,
    /// Ephemeral keys and a verify code to compare.
    VerifyCode,
    /// SPAKE2 with a shared secret.
    Secret(Zeroizing<Vec<u8>>),
    /// SPAKE2 with a one-time code: its room is bound into the exchange,
    /// and one failed attempt burns it.
    Code(Code),
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Security::Plain => f.write_str("Plain"),
            Security::VerifyCode => f.write_str("VerifyCode"),
            Security::Secret(_) => f.write_str("Secret(..)"),
            Security::Code(c) => write!(f, "{c:?}"),
        }
    }
}

/// What a session needs to know: how the peer proves itself, and the
/// rest, which an encrypted room keeps for its whole life.
pub struct SessionConfig {
    pub security: Security,
    pub room: RoomSettings,
}

/// What a room keeps of its configuration: all of it but the secret, which
/// the session turns into the proof the room asks of a peer ([`Proof`]).
pub struct RoomSettings {
    pub role: Role,
    /// Our display name, sent in HELLO.
    pub name: String,
    /// A peer silent for this long is declared dead (encrypted mode).
    pub idle_timeout: Duration,
    /// Each handshake must finish within this.
    pub handshake_timeout: Duration,
    /// Failed attempts a listener allows before it gives up, counting
    /// `failed_before`: the budget belongs to the process, not the room.
    pub tries: u32,
    /// Failed attempts earlier rooms of this process saw (`--keep`).
    pub failed_before: u32,
    /// Dialer: a listener that answers busy is dialed again (an
    /// [`Action::Redial`]) until this long after the first connection
    /// (`--retry`); None: a busy listener ends the room.
    pub retry_busy: Option<Duration>,
    /// Our output is data for a program (a pipe or a file), not a chat on
    /// a screen: a peer that leaves before its EOF leaves it incomplete,
    /// which is then an error, so `listen > file && ...` can be trusted.
    pub output_is_data: bool,
    /// Resume a lost connection within this grace period (encrypted modes;
    /// None: off). Both sides must offer it; the shorter period wins.
    pub resume: Option<Duration>,
    /// Resume: the most of our DATA kept until the peer acknowledges it.
    pub resume_buffer: usize,
    /// Our input can be read again from an earlier offset (stdin is a
    /// regular file): resume then resends from it, keeping no copy.
    pub input_rewindable: bool,
    /// Files must arrive (`--send`, `--receive`): a room that ends with a
    /// file either way not saved ends with an error.
    pub files_strict: bool,
}

/// Why the user leaves the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaveReason {
    /// Ctrl-C, SIGTERM or SIGHUP.
    Interrupted(Signal),
    /// Ctrl-D or /quit at a prompt.
    User,
    /// The reader of our output went away (`| head`).
    OutputClosed,
}

/// Something the front-end should tell the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The room is up on `link`. `name` is the peer's (encrypted modes);
    /// `verify_code` is shown in verify-code mode, with the number of
    /// failed attempts the listener saw before this peer.
    Joined {
        link: LinkId,
        name: Option<String>,
        verify_code: Option<String>,
        failed_attempts: u32,
    },
    /// A listener's connection failed before the room was up; `counted`
    /// when it had our key material (an attempt at the secret or code).
    FailedAttempt {
        link: LinkId,
        why: String,
        counted: bool,
        failed: u32,
        tries: u32,
    },
    /// The peer is done sending and still reading.
    PeerDone,
    /// The peer left the room.
    PeerLeft,
    /// Plain mode: the stream began with a p2pchat preface line; the peer
    /// may be an encrypted p2pchat (the bytes were delivered anyway).
    PeerLooksEncrypted,
    /// The room's connection was lost; it waits up to `grace` for a
    /// resume (the dialer redials, the listener keeps listening).
    ConnectionLost { why: String, grace: Duration },
    /// A new connection carries the room on after `after`; `resent` bytes
    /// of ours went again, and nothing was lost or doubled.
    Reconnected {
        after: Duration,
        resent: u64,
        connection: u32,
    },
    /// The peer offers a file (`name` as it sent it: make it safe before
    /// any use). Nothing is written before [`Session::accept_file`].
    FileOffered {
        id: StreamId,
        name: Vec<u8>,
        size: u64,
    },
    /// An incoming file's SHA-256 matched and all of it is written: give
    /// it its name, then [`Session::file_saved`] (or
    /// [`Session::file_io_failed`]).
    FileComplete { id: StreamId },
    /// A file stream ended, either way (`outgoing`: one we offered).
    FileEnded {
        id: StreamId,
        outgoing: bool,
        name: Vec<u8>,
        size: u64,
        outcome: FileOutcome,
        /// Since it was accepted.
        elapsed: Duration,
    },
}

/// What the driver must do with a connection. After `Reset`, `Linger` or
/// `Close` the session has forgotten the link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The room is taken or over: close the listening socket.
    StopAccepting,
    /// Nothing more will be sent on this link: shut down its write side.
    ShutdownWrite(LinkId),
    /// Close with a reset, so the peer cannot take it for a clean end.
    Reset(LinkId),
    /// Write `flush`, shut down the write side, then read and drop until
    /// the peer's FIN or `until`, whichever is first, and close.
    Linger {
        link: LinkId,
        flush: Vec<u8>,
        until: Instant,
    },
    /// Close at once (turned away, made way for another, superseded).
    Close(LinkId),
    /// The room lost its connection, or the listener was busy: make a
    /// new one now (dial again, or go back to the relay) and hand it over
    /// with `connected` or `accept_paired`, or report its failure with
    /// [`Session::connect_failed`]. The session has already waited out
    /// the backoff ([`reconnect`]): it asks only once the attempt is due.
    /// A listener that still listens has nothing to do.
    Redial,
}

/// How a connection asked for with [`Action::Redial`] failed, every
/// address of the peer (or of the relay) tried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectFailure {
    /// The peer's host said that nothing listens on its port; `target` is
    /// the address as the user should read it.
    Refused { target: String },
    /// No answer in time, no route, a reset, a name that does not resolve
    /// (yet), trouble at the relay: another try may do.
    Failed,
    /// Trying again cannot help: the room ends with this error.
    Fatal(Error),
}

/// Where the session stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Running,
    /// The room is over: exit with this once lingering connections closed.
    Ended(Result<(), Error>),
}

/// One room: `--plain` raw bytes, or an encrypted room.
// One per process: boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Session {
    Plain(PlainPipe),
    Secure(Room),
}

impl Session {
    pub fn new(cfg: SessionConfig, rng: Box<dyn Random>) -> Session {
        let one_time = matches!(cfg.security, Security::Code(_));
        let secret = match cfg.security {
            Security::Plain => return Session::Plain(PlainPipe::default()),
            Security::VerifyCode => None,
            Security::Secret(s) => Some(Pake::secret(s)),
            Security::Code(c) => Some(Pake {
                password: c.password(),
                room: Some(c.room().to_string()),
            }),
        };
        let mut settings = cfg.room;
        // A one-time code also allows one failed attempt per room (the
        // code is burned); the session sees to that.
        settings.tries = settings.tries.max(1);
        Session::Secure(Room::new(settings, Proof { secret, one_time }, rng))
    }

    // ----- connections -----------------------------------------------------

    /// Listener: a new connection from `source` (an opaque number for its
    /// address). The session admits it or closes it (an [`Action`]).
    pub fn accept(&mut self, link: LinkId, source: u128, now: Instant) {
        match self {
            Session::Plain(p) => p.attach(link),
            Session::Secure(r) => r.accept(link, source, now),
        }
    }

    /// Listener: a relay paired us with a peer on `link`. As
    /// [`Session::accept`]; besides, a peer that sends nothing for the
    /// whole handshake timeout ends the room (exit 3) while it is not
    /// waiting for a resume: that is what a relay pairing two listeners
    /// looks like. One that closes without a byte is only dropped.
    pub fn accept_paired(&mut self, link: LinkId, now: Instant) {
        match self {
            Session::Plain(p) => p.attach(link),
            Session::Secure(r) => r.accept_paired(link, now),
        }
    }

    /// The process ran out of descriptors while accepting: the session
    /// closes the oldest silent pending connection, if it has one (an
    /// [`Action::Close`]). Returns whether it did.
    pub fn shed_load(&mut self) -> bool {
        match self {
            Session::Plain(_) => false,
            Session::Secure(r) => r.shed_load(),
        }
    }

    /// Dialer: our connection is up.
    pub fn connected(&mut self, link: LinkId, now: Instant) {
        match self {
            Session::Plain(p) => p.attach(link),
            Session::Secure(r) => r.connected(link, now),
        }
    }

    /// A connection asked for with [`Action::Redial`] could not be made.
    /// The session asks for the next one after a backoff (another
    /// [`Action::Redial`] once it is due), or ends the room: when a lost
    /// room's redials have all been refused for
    /// [`reconnect::REFUSED_FOR`] the peer's process is gone (exit 1).
    pub fn connect_failed(&mut self, failure: ConnectFailure, now: Instant) {
        if let Session::Secure(r) = self {
            r.connect_failed(failure, now);
        }
    }

    /// Bytes to write to `link`'s socket.
    #[must_use]
    pub fn to_send(&self, link: LinkId) -> &[u8] {
        match self {
            Session::Plain(p) => p.to_send(link),
            Session::Secure(r) => r.to_send(link),
        }
    }

    /// `n` bytes of [`Session::to_send`] were written.
    pub fn sent(&mut self, link: LinkId, n: usize, now: Instant) {
        match self {
            Session::Plain(p) => p.sent(link, n, now),
            Session::Secure(r) => r.sent(link, n, now),
        }
    }

    /// Returns true if and only if [`Session::receive_buf`] is not empty.
    pub fn can_receive(&self, link: LinkId) -> bool {
        match self {
            Session::Plain(p) => p.can_receive(link),
            Session::Secure(r) => r.can_receive(link),
        }
    }

    /// Where to read `link`'s socket bytes into; empty means "not now".
    pub fn receive_buf(&mut self, link: LinkId) -> &mut [u8] {
        match self {
            Session::Plain(p) => p.receive_buf(link),
            Session::Secure(r) => r.receive_buf(link),
        }
    }

    /// `n` bytes were read into [`Session::receive_buf`].
    pub fn received(&mut self, link: LinkId, n: usize, now: Instant) {
        match self {
            Session::Plain(p) => p.received(link, n, now),
            Session::Secure(r) => r.received(link, n, now),
        }
    }

    /// The socket read returned end-of-file.
    pub fn transport_closed(&mut self, link: LinkId, now: Instant) {
        match self {
            Session::Plain(p) => p.transport_closed(link, now),
            Session::Secure(r) => r.transport_closed(link, now),
        }
    }

    /// The peer's TCP acknowledged more of our data on `link`: its host is
    /// alive, even if nothing of its own has come through lately (after an
    /// outage its packets may sit behind a backed-off retransmission).
    pub fn transport_progress(&mut self, link: LinkId, now: Instant) {
        if let Session::Secure(r) = self {
            r.transport_progress(link, now);
        }
    }

    /// How many file bytes `link`'s transport takes now without filling
    /// TCP's congestion window (None: no limit), as the driver reads it
    /// from the socket before each turn. While TCP's window is small, a
    /// full window makes a chat line typed meanwhile wait a round trip for
    /// acknowledgements; file bytes leave some of it free instead. Chat,
    /// pipe and control records are never held.
    pub fn set_send_room(&mut self, link: LinkId, room: Option<usize>, now: Instant) {
        if let Session::Secure(r) = self {
            r.set_send_room(link, room, now);
        }
    }

    /// Returns true if and only if file bytes on `link` wait for
    /// [`Session::set_send_room`] to say there is room: nothing else will
    /// wake the driver for them, so it looks again on a timer.
    #[must_use]
    pub fn room_held(&self, link: LinkId) -> bool {
        match self {
            Session::Plain(_) => false,
            Session::Secure(r) => r.room_held(link),
        }
    }

    /// The socket failed (reset, timed out, ...).
    pub fn transport_failed(&mut self, link: LinkId, e: &io::Error, now: Instant) {
        match self {
            Session::Plain(p) => p.transport_failed(link, e),
            Session::Secure(r) => r.transport_failed(link, e, now),
        }
    }

    // ----- the user side ---------------------------------------------------

    /// Returns true if and only if [`Session::input_buf`] is not empty.
    pub fn can_take_input(&self) -> bool {
        match self {
            Session::Plain(p) => p.can_take_input(),
            Session::Secure(r) => r.can_take_input(),
        }
    }

    /// Where to read user input into; empty means "not now".
    pub fn input_buf(&mut self) -> &mut [u8] {
        match self {
            Session::Plain(p) => p.input_buf(),
            Session::Secure(r) => r.input_buf(),
        }
    }

    /// `n` bytes of user input were read into [`Session::input_buf`].
    pub fn input_received(&mut self, n: usize, now: Instant) {
        match self {
            Session::Plain(p) => p.input_received(n),
            Session::Secure(r) => r.input_received(n, now),
        }
    }

    /// After a resume with a rewindable input: the offset (from where the
    /// input started) to read it again from. Until [`Session::input_rewound`]
    /// no input is taken.
    #[must_use]
    pub fn rewind_needed(&self) -> Option<u64> {
        match self {
            Session::Plain(_) => None,
            Session::Secure(r) => r.rewind_needed(),
        }
    }

    /// The input now reads from [`Session::rewind_needed`] again.
    pub fn input_rewound(&mut self, now: Instant) {
        if let Session::Secure(r) = self {
            r.input_rewound(now);
        }
    }

    /// The user has no more input (stdin EOF): send ours, keep receiving.
    pub fn input_ended(&mut self, now: Instant) {
        match self {
            Session::Plain(p) => p.input_ended(now),
            Session::Secure(r) => r.input_ended(now),
        }
    }

    /// The user is leaving the room: send what is pending, then say goodbye.
    pub fn leave(&mut self, reason: LeaveReason, now: Instant) {
        match self {
            Session::Plain(p) => p.leave(reason, now),
            Session::Secure(r) => r.leave(reason, now),
        }
    }

    /// A Ctrl-C, SIGTERM or SIGHUP arrived.
    pub fn interrupted(&mut self, signal: Signal, now: Instant) {
        match self {
            Session::Plain(p) => p.interrupted(signal, now),
            Session::Secure(r) => r.interrupted(signal, now),
        }
    }

    /// Plaintext to show the user.
    #[must_use]
    pub fn output(&self) -> &[u8] {
        match self {
            Session::Plain(p) => p.output(),
            Session::Secure(r) => r.output(),
        }
    }

    /// `n` bytes of [`Session::output`] were shown.
    pub fn output_written(&mut self, n: usize, now: Instant) {
        match self {
            Session::Plain(p) => p.output_written(n, now),
            Session::Secure(r) => r.output_written(n, now),
        }
    }

    /// Our output failed for a reason other than its reader leaving (a
    /// full disk, an I/O error): the room ends with that error, and the
    /// peer is told why, so that it stops at once and says so.
    pub fn output_failed(&mut self, e: &io::Error, now: Instant) {
        match self {
            Session::Plain(p) => p.output_failed(e),
            Session::Secure(r) => r.output_failed(e, now),
        }
    }

    /// Nobody reads our output any more (stdout closed by its reader): drop
    /// what is pending and whatever still arrives, and leave.
    pub fn output_closed(&mut self, now: Instant) {
        match self {
            Session::Plain(p) => p.output_closed(now),
            Session::Secure(r) => r.output_closed(now),
        }
    }

    /// Returns true if and only if the peer will send nothing more and all
    /// of it has been shown: the driver may close stdout.
    pub fn output_finished(&self) -> bool {
        match self {
            Session::Plain(p) => p.output_finished(),
            Session::Secure(r) => r.output_finished(),
        }
    }

    /// Returns true if and only if the room lost its connection and waits
    /// for a resume.
    pub fn is_down(&self) -> bool {
        match self {
            Session::Plain(_) => false,
            Session::Secure(r) => r.is_down(),
        }
    }

    /// The relay token of this room's resumes, once agreed (see
    /// [`room::Room::relay_resume_token`]).
    pub fn relay_resume_token(&self) -> Option<[u8; crate::protocol::transit::TOKEN_LEN]> {
        match self {
            Session::Plain(_) => None,
            Session::Secure(r) => r.relay_resume_token(),
        }
    }

    /// Failed attempts to join so far, counting those of earlier rooms
    /// ([`SessionConfig::failed_before`]).
    pub fn failed_attempts(&self) -> u32 {
        match self {
            Session::Plain(_) => 0,
            Session::Secure(r) => r.failed_attempts(),
        }
    }

    /// Returns true if and only if the handshake is over and the room is up.
    pub fn is_established(&self) -> bool {
        match self {
            Session::Plain(p) => p.is_established(),
            Session::Secure(r) => r.is_established(),
        }
    }

    // ----- file streams (protocol v3) --------------------------------------

    /// Offers a file of `size` bytes named `name` (its base name): it goes
    /// out as soon as the room is up. Files need the encrypted room.
    pub fn offer_file(&mut self, name: &[u8], size: u64, now: Instant) -> Result<StreamId, Error> {
        match self {
            Session::Plain(_) => Err(Error::Usage(
                "files need the encrypted room: --plain carries one stream of raw bytes".into(),
            )),
            Session::Secure(r) => r.offer_file(name, size, now),
        }
    }

    /// Takes the peer's offer `id`; the driver has created a file for it.
    pub fn accept_file(&mut self, id: StreamId, now: Instant) -> Result<(), String> {
        match self {
            Session::Plain(_) => Err("no such offer".into()),
            Session::Secure(r) => r.accept_file(id, now),
        }
    }

    /// Turns the peer's offer `id` down, saying why.
    pub fn reject_file(&mut self, id: StreamId, why: &str, now: Instant) {
        if let Session::Secure(r) = self {
            r.reject_file(id, why, now);
        }
    }

    /// Stops transfer `id`, either way. Returns false if none runs.
    pub fn cancel_file(&mut self, id: StreamId, now: Instant) -> bool {
        match self {
            Session::Plain(_) => false,
            Session::Secure(r) => r.cancel_file(id, now),
        }
    }

    /// A file of ours that wants reading, and the offset to read it at;
    /// none of `skip` (files the driver cannot serve this turn), so one
    /// file's slow disk does not hold the others back.
    pub fn file_to_read(&self, skip: &[StreamId]) -> Option<(StreamId, u64)> {
        match self {
            Session::Plain(_) => None,
            Session::Secure(r) => r.files().to_read(skip),
        }
    }

    /// Where to read file `id` into (see [`Session::file_to_read`]).
    pub fn file_read_buf(&mut self, id: StreamId) -> &mut [u8] {
        match self {
            Session::Plain(_) => &mut [],
            Session::Secure(r) => r.file_read_buf(id),
        }
    }

    /// `n` bytes of file `id` were read into [`Session::file_read_buf`].
    pub fn file_read(&mut self, id: StreamId, n: usize, now: Instant) {
        if let Session::Secure(r) = self {
            r.file_read(id, n, now);
        }
    }

    /// Bytes of the peer's file `id` for the disk; none of `skip` (as in
    /// [`Session::file_to_read`]).
    pub fn file_to_write(&self, skip: &[StreamId]) -> Option<(StreamId, &[u8])> {
        match self {
            Session::Plain(_) => None,
            Session::Secure(r) => r.files().to_write(skip),
        }
    }

    /// Returns true if and only if every byte of the peer's file `id` has
    /// come and its SHA-256 matched: what [`Session::file_to_write`] gives
    /// of it is the rest of it.
    pub fn file_all_here(&self, id: StreamId) -> bool {
        match self {
            Session::Plain(_) => false,
            Session::Secure(r) => r.files().all_here(id),
        }
    }

    /// `n` bytes of [`Session::file_to_write`] were handed to the disk
    /// (written, or queued to be written: a failure is reported later with
    /// [`Session::file_io_failed`]).
    pub fn file_written(&mut self, id: StreamId, n: usize, now: Instant) {
        if let Session::Secure(r) = self {
            r.file_written(id, n, now);
        }
    }

    /// A verified file got its name ([`Event::FileComplete`]). Returns
    /// false if its transfer ended meanwhile (a cancel, from either side):
    /// the user was told so, and the file is to be removed.
    #[must_use]
    pub fn file_saved(&mut self, id: StreamId, now: Instant) -> bool {
        match self {
            Session::Plain(_) => false,
            Session::Secure(r) => r.file_saved(id, now),
        }
    }

    /// Reading or writing file `id` failed (`why` in words): it ends, and
    /// the peer is told why. The room goes on.
    pub fn file_io_failed(&mut self, id: StreamId, why: &str, now: Instant) {
        if let Session::Secure(r) = self {
            r.file_io_failed(id, why, now);
        }
    }

    /// The transfers still running, for a progress line.
    pub fn file_progress(&self) -> Vec<FileProgress> {
        match self {
            Session::Plain(_) => Vec::new(),
            Session::Secure(r) => r.files().progress(),
        }
    }

    /// Returns true if and only if bytes of a file of ours are moving (the
    /// driver then tells [`Session::set_send_room`] what the socket takes).
    #[must_use]
    pub fn files_sending(&self) -> bool {
        match self {
            Session::Plain(_) => false,
            Session::Secure(r) => r.files().sending(),
        }
    }

    /// Returns true if and only if we offered files and every one ended.
    pub fn files_sent_ended(&self) -> bool {
        match self {
            Session::Plain(_) => false,
            Session::Secure(r) => r.files().all_sent_ended(),
        }
    }

    // ----- time, events, actions and state ---------------------------------

    /// The next instant at which [`Session::handle_timeout`] must be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Session::Plain(_) => None,
            Session::Secure(r) => r.poll_timeout(),
        }
    }

    /// Fires what is due at `now`: handshake deadlines, heartbeats, the idle
    /// timeout.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Session::Secure(r) = self {
            r.handle_timeout(now);
        }
    }

    /// The next thing to tell the user, in the order it happened relative
    /// to the peer's data: what the peer did after its last bytes (it
    /// stopped sending, it left) waits until those bytes were taken from
    /// [`Session::output`]. A room that ended has nothing left to wait for.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        let hold = !self.output().is_empty() && matches!(self.status(), Status::Running);
        let outbox = self.outbox_mut();
        match outbox.events.front() {
            Some(Event::PeerDone | Event::PeerLeft) if hold => None,
            _ => outbox.poll_event(),
        }
    }

    /// The next thing to do with a socket.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<Action> {
        self.outbox_mut().poll_action()
    }

    /// Whether the room runs or how it ended; a plain read.
    pub fn status(&self) -> Status {
        match self {
            Session::Plain(p) => p.outbox.status(),
            Session::Secure(r) => r.outbox.status(),
        }
    }

    fn outbox_mut(&mut self) -> &mut outbox::Outbox {
        match self {
            Session::Plain(p) => &mut p.outbox,
            Session::Secure(r) => &mut r.outbox,
        }
    }
}

#[cfg(test)]
mod tests;
