//! The sans-IO core: one `Session` per connection, a state machine that owns
//! no socket, no clock, no thread and no terminal.
//!
//! The driver feeds it bytes from the socket ([`Session::receive_buf`] then
//! [`Session::received`]), input from the user ([`Session::input_buf`] then
//! [`Session::input_received`]) and the current time, and takes from it bytes
//! to send ([`Session::transmit`]), bytes to show ([`Session::output`]),
//! events ([`Session::poll_event`]) and its next deadline
//! ([`Session::timeout`]). Every buffer has a fixed capacity: an empty
//! `input_buf` or `receive_buf` means "not now", which is how backpressure
//! reaches the producer on either side.
//!
//! Call order for one loop turn: feed inputs, then drain `transmit`,
//! `output` and `poll_event`, then check [`Session::status`], then sleep
//! until the next readiness or [`Session::timeout`].

pub mod buffer;

use std::collections::VecDeque;
use std::io;
use std::time::{Duration, Instant};

use crate::cli::{Role, Security};
use crate::error::{describe_io, Error};
use crate::names;
use crate::protocol::handshake::{self, Handshake, Method};
use crate::protocol::record::{Kind, Opener, RecordError, Sealer, MAX_PAYLOAD, MAX_RECORD};
use buffer::ByteBuf;

/// Capacity of the plaintext buffers in each direction.
pub const IO_CAP: usize = 64 * 1024;
/// Capacity of the wire buffers: four full records.
const WIRE_CAP: usize = 4 * MAX_RECORD;

/// What a session needs to know.
pub struct SessionConfig {
    pub role: Role,
    pub security: Security,
    /// Our display name, sent in HELLO.
    pub name: String,
    /// A peer silent for this long is declared dead (encrypted mode).
    pub idle_timeout: Duration,
    /// The whole handshake must finish within this.
    pub handshake_timeout: Duration,
}

/// Something the front-end should tell the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The room is up. `name` is the peer's (encrypted mode only);
    /// `verify_code` is shown in verify-code mode.
    Joined {
        name: Option<String>,
        verify_code: Option<String>,
    },
    /// The peer is done sending and still reading.
    PeerDone,
    /// The peer left the room.
    PeerLeft,
}

/// Where the session stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Running,
    /// The room ended cleanly; flush, close and exit 0.
    Done,
    Failed(Error),
}

struct Channel {
    sealer: Sealer,
    opener: Opener,
    /// The peer's HELLO arrived and authenticated.
    confirmed: bool,
    uses_secret: bool,
}

enum Link {
    /// Raw bytes. `sniffing` holds back the first bytes until they cannot be
    /// an encrypted peer's preface.
    Plain {
        sniffing: bool,
    },
    Handshaking(Handshake),
    Secure(Box<Channel>),
}

pub struct Session {
    link: Link,
    role: Role,
    name: String,
    idle_timeout: Duration,
    handshake_timeout: Duration,
    handshake_deadline: Instant,
    /// The verify code, held until the peer's HELLO confirms the keys.
    pending_code: Option<String>,
    /// Wire bytes to send.
    tx: ByteBuf,
    /// Wire bytes received and not yet opened.
    rx: ByteBuf,
    /// Plaintext for the user.
    out: ByteBuf,
    /// User input waiting to be sealed into records (encrypted mode).
    staged: ByteBuf,
    events: VecDeque<Event>,
    /// The user has no more input.
    input_closed: bool,
    /// The user is leaving (Ctrl-C, /quit, closed stdout).
    leaving: bool,
    /// Our EOF record is queued.
    eof_sent: bool,
    /// Our BYE record is queued.
    bye_sent: bool,
    /// Our DONE (we received the peer's EOF) is queued.
    done_sent: bool,
    /// The peer confirmed it received our EOF.
    done_received: bool,
    peer_done: bool,
    peer_left: bool,
    transport_eof: bool,
    /// Output is dropped instead of kept (nobody reads it).
    discard_output: bool,
    failure: Option<Error>,
    last_recv: Instant,
    last_send: Instant,
}

impl Session {
    pub fn new(cfg: SessionConfig, now: Instant) -> Session {
        let mut tx = ByteBuf::with_capacity(WIRE_CAP);
        let mut events = VecDeque::new();
        let link = match cfg.security {
            Security::Plain => {
                events.push_back(Event::Joined {
                    name: None,
                    verify_code: None,
                });
                Link::Plain { sniffing: true }
            }
            Security::VerifyCode => {
                Link::Handshaking(Handshake::start(cfg.role, Method::VerifyCode, &mut tx))
            }
            Security::Secret(s) => {
                Link::Handshaking(Handshake::start(cfg.role, Method::Secret(s), &mut tx))
            }
        };
        Session {
            link,
            role: cfg.role,
            name: cfg.name,
            idle_timeout: cfg.idle_timeout,
            handshake_timeout: cfg.handshake_timeout,
            handshake_deadline: now + cfg.handshake_timeout,
            pending_code: None,
            tx,
            rx: ByteBuf::with_capacity(WIRE_CAP),
            out: ByteBuf::with_capacity(IO_CAP),
            staged: ByteBuf::with_capacity(IO_CAP),
            events,
            input_closed: false,
            leaving: false,
            eof_sent: false,
            bye_sent: false,
            done_sent: false,
            done_received: false,
            peer_done: false,
            peer_left: false,
            transport_eof: false,
            discard_output: false,
            failure: None,
            last_recv: now,
            last_send: now,
        }
    }

    // ----- the socket side -------------------------------------------------

    /// Bytes to write to the socket.
    pub fn transmit(&self) -> &[u8] {
        self.tx.data()
    }

    /// `n` bytes of [`Session::transmit`] were written.
    pub fn transmitted(&mut self, n: usize, now: Instant) {
        self.tx.consume(n);
        self.seal_staged(now);
    }

    /// Returns true if and only if the driver should shut down the socket's
    /// write side now: we have nothing more to send, ever.
    pub fn wants_write_shutdown(&self) -> bool {
        if !self.tx.is_empty() {
            return false;
        }
        match self.link {
            Link::Plain { .. } => self.input_closed || self.leaving,
            Link::Handshaking(..) => self.failure.is_some(),
            Link::Secure(_) => {
                self.failure.is_some() || self.closing() || self.status() == Status::Done
            }
        }
    }

    /// Returns true if and only if [`Session::receive_buf`] is not empty.
    pub fn can_receive(&self) -> bool {
        if self.failure.is_some() || self.transport_eof || self.peer_left {
            return false;
        }
        match self.link {
            Link::Plain { .. } => self.out.room() > 0,
            _ => self.out.room() >= MAX_PAYLOAD && self.rx.room() > 0,
        }
    }

    /// Where to read socket bytes into; empty means "not now".
    pub fn receive_buf(&mut self) -> &mut [u8] {
        if !self.can_receive() {
            return &mut [];
        }
        match self.link {
            Link::Plain { sniffing: true } => {
                let room = self.out.room();
                let spare = self.rx.spare();
                let n = spare.len().min(room);
                &mut spare[..n]
            }
            Link::Plain { sniffing: false } => self.out.spare(),
            _ => self.rx.spare(),
        }
    }

    /// `n` bytes were read into [`Session::receive_buf`].
    pub fn received(&mut self, n: usize, now: Instant) {
        self.last_recv = now;
        match self.link {
            Link::Plain { sniffing: false } => self.out.commit(n),
            _ => self.rx.commit(n),
        }
        self.process_rx(now);
        if self.discard_output {
            self.out.consume(self.out.len());
        }
    }

    /// The socket read returned end-of-file.
    pub fn transport_closed(&mut self, now: Instant) {
        self.transport_eof = true;
        match &self.link {
            Link::Plain { sniffing } => {
                if *sniffing {
                    self.release_sniffed();
                }
                if !self.peer_done {
                    self.peer_done = true;
                    self.events.push_back(Event::PeerDone);
                }
            }
            Link::Handshaking(hs) => self.fail(hs.eof_error()),
            Link::Secure(_) => {}
        }
        self.process_rx(now);
    }

    /// The socket failed (reset, timed out, ...).
    pub fn transport_failed(&mut self, e: &io::Error) {
        let err = match &self.link {
            Link::Handshaking(hs) => hs.eof_error(),
            _ => Error::Lost(format!("connection lost: {}", describe_io(e))),
        };
        self.fail(err);
    }

    // ----- the user side ---------------------------------------------------

    /// Returns true if and only if [`Session::input_buf`] is not empty.
    pub fn can_take_input(&self) -> bool {
        if self.input_closed || self.leaving || self.failure.is_some() || self.peer_left {
            return false;
        }
        match &self.link {
            Link::Plain { .. } => self.tx.room() > 0,
            Link::Secure(ch) => ch.confirmed && self.staged.room() > 0,
            Link::Handshaking(..) => false,
        }
    }

    /// Where to read user input into; empty means "not now".
    pub fn input_buf(&mut self) -> &mut [u8] {
        if !self.can_take_input() {
            return &mut [];
        }
        match &self.link {
            Link::Plain { .. } => self.tx.spare(),
            _ => self.staged.spare(),
        }
    }

    /// `n` bytes of user input were read into [`Session::input_buf`].
    pub fn input_received(&mut self, n: usize, now: Instant) {
        match self.link {
            Link::Plain { .. } => self.tx.commit(n),
            _ => self.staged.commit(n),
        }
        self.seal_staged(now);
    }

    /// The user has no more input (stdin EOF): send ours, keep receiving.
    pub fn input_ended(&mut self, now: Instant) {
        self.input_closed = true;
        self.seal_staged(now);
    }

    /// The user is leaving the room: send what is pending, then say goodbye.
    pub fn leave(&mut self, now: Instant) {
        if !self.is_established() {
            // No room yet (not even the peer's HELLO): nothing to say goodbye to.
            self.fail(Error::Interrupted);
            return;
        }
        self.leaving = true;
        self.seal_staged(now);
    }

    /// Plaintext to show the user.
    pub fn output(&self) -> &[u8] {
        self.out.data()
    }

    /// Nobody reads our output any more (stdout closed by its reader): drop
    /// what is pending and whatever still arrives.
    pub fn output_closed(&mut self, now: Instant) {
        self.discard_output = true;
        let pending = self.out.len();
        self.output_written(pending, now);
    }

    /// `n` bytes of [`Session::output`] were shown.
    pub fn output_written(&mut self, n: usize, now: Instant) {
        if self.out.room() < MAX_PAYLOAD {
            // We had stopped reading the socket; the silence was ours.
            self.last_recv = now;
        }
        self.out.consume(n);
        self.process_rx(now);
    }

    /// Returns true if and only if the peer will send nothing more and all of
    /// it has been shown: the driver may close stdout.
    pub fn output_finished(&self) -> bool {
        (self.peer_done || self.peer_left) && self.out.is_empty() && self.rx.is_empty()
    }

    /// Returns true if and only if the user is leaving and everything both
    /// ways had already ended: nothing was cut short.
    pub fn nothing_lost(&self) -> bool {
        self.input_closed && self.staged.is_empty() && self.tx.is_empty() && self.output_finished()
    }

    /// Returns true if and only if the handshake is over and the room is up.
    pub fn is_established(&self) -> bool {
        match &self.link {
            Link::Plain { .. } => true,
            Link::Secure(ch) => ch.confirmed,
            Link::Handshaking(..) => false,
        }
    }

    // ----- time and state --------------------------------------------------

    /// The next instant at which [`Session::handle_timeout`] must be called.
    pub fn timeout(&self) -> Option<Instant> {
        if self.failure.is_some() || self.status() != Status::Running {
            return None;
        }
        match &self.link {
            Link::Plain { .. } => None,
            Link::Handshaking(..) => Some(self.handshake_deadline),
            Link::Secure(ch) if !ch.confirmed => Some(self.handshake_deadline),
            Link::Secure(_) => {
                let ping = self
                    .pings_due()
                    .then(|| self.last_send + self.ping_interval());
                let dead = self
                    .watching_peer()
                    .then(|| self.last_recv + self.idle_timeout);
                match (ping, dead) {
                    (Some(p), Some(d)) => Some(p.min(d)),
                    (p, d) => p.or(d),
                }
            }
        }
    }

    fn ping_interval(&self) -> Duration {
        self.idle_timeout / 3
    }

    /// We send heartbeats until our goodbye is queued or we shut down.
    fn pings_due(&self) -> bool {
        !self.bye_sent && !self.closing()
    }

    /// We expect to hear from the peer: it has not left and we are reading.
    fn watching_peer(&self) -> bool {
        !self.peer_left && !self.transport_eof && self.out.room() >= MAX_PAYLOAD
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.failure.is_some() {
            return;
        }
        let confirmed = matches!(&self.link, Link::Secure(ch) if ch.confirmed);
        match self.link {
            Link::Plain { .. } => {}
            _ if !confirmed => {
                if now >= self.handshake_deadline {
                    self.fail(Error::Handshake(format!(
                        "the handshake did not finish in time ({} s); is the peer a p2pchat in the same mode?",
                        self.handshake_timeout.as_secs_f64()
                    )));
                }
            }
            _ => {
                if self.watching_peer() && now >= self.last_recv + self.idle_timeout {
                    self.fail(Error::Lost(format!(
                        "connection lost: no sign of life from the peer for {} s",
                        self.idle_timeout.as_secs_f64()
                    )));
                    return;
                }
                if self.pings_due() && now >= self.last_send + self.ping_interval() {
                    self.seal(Kind::Ping, &[], now);
                    // If the record did not fit, data is queued anyway: the
                    // peer hears from us as soon as the socket drains.
                    self.last_send = now;
                }
            }
        }
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    pub fn status(&self) -> Status {
        if let Some(e) = &self.failure {
            return Status::Failed(e.clone());
        }
        if !self.out.is_empty() {
            return Status::Running;
        }
        match &self.link {
            Link::Handshaking(..) => Status::Running,
            Link::Plain { .. } => {
                let flushed = self.tx.is_empty();
                let both_done = self.input_closed && self.transport_eof;
                if flushed && (self.leaving || both_done) {
                    Status::Done
                } else {
                    Status::Running
                }
            }
            Link::Secure(_) => {
                let said_bye = self.bye_sent && self.tx.is_empty();
                if self.peer_left || said_bye || self.closing() {
                    Status::Done
                } else if self.transport_eof {
                    Status::Failed(Error::Lost(if self.peer_done {
                        "connection lost: the peer closed the connection before confirming it received everything".into()
                    } else {
                        "connection lost: the peer vanished without saying goodbye".into()
                    }))
                } else {
                    Status::Running
                }
            }
        }
    }

    /// Both EOFs are exchanged and each side confirmed (DONE) that it
    /// received the other's: everything arrived, the room ended cleanly.
    /// A FIN alone proves nothing: anyone on the path can forge one.
    fn closing(&self) -> bool {
        self.eof_sent
            && self.done_received
            && self.peer_done
            && self.done_sent
            && self.tx.is_empty()
    }

    // ----- internals -------------------------------------------------------

    fn fail(&mut self, e: Error) {
        if self.failure.is_none() {
            self.failure = Some(e);
        }
    }

    fn release_sniffed(&mut self) {
        let n = self.out.extend(self.rx.data());
        debug_assert_eq!(
            n,
            self.rx.len(),
            "receive_buf caps sniffed bytes to the output room"
        );
        self.rx.consume(n);
        self.link = Link::Plain { sniffing: false };
    }

    fn seal(&mut self, kind: Kind, payload: &[u8], now: Instant) -> bool {
        let Link::Secure(ch) = &mut self.link else {
            return false;
        };
        match ch.sealer.seal(kind, payload, &mut self.tx) {
            Ok(fitted) => {
                if fitted {
                    self.last_send = now;
                }
                fitted
            }
            Err(e) => {
                self.fail(Error::Integrity(format!("cannot send: {e}")));
                false
            }
        }
    }

    /// Seals staged input into DATA records, then EOF or BYE when due.
    fn seal_staged(&mut self, now: Instant) {
        if !matches!(&self.link, Link::Secure(ch) if ch.confirmed) || self.failure.is_some() {
            return;
        }
        while !self.staged.is_empty() {
            let n = self.staged.len().min(MAX_PAYLOAD);
            let Link::Secure(ch) = &mut self.link else {
                return;
            };
            match ch
                .sealer
                .seal(Kind::Data, &self.staged.data()[..n], &mut self.tx)
            {
                Ok(true) => {
                    self.staged.consume(n);
                    self.last_send = now;
                }
                Ok(false) => return,
                Err(e) => return self.fail(Error::Integrity(format!("cannot send: {e}"))),
            }
        }
        if self.peer_left || self.bye_sent {
            return;
        }
        if self.peer_done && !self.done_sent {
            self.done_sent = self.seal(Kind::Done, &[], now);
        }
        if self.leaving {
            self.bye_sent = self.seal(Kind::Bye, &[], now);
        } else if self.input_closed && !self.eof_sent {
            self.eof_sent = self.seal(Kind::Eof, &[], now);
        }
    }

    fn process_rx(&mut self, now: Instant) {
        if self.failure.is_some() {
            return;
        }
        if let Link::Plain { sniffing: true } = self.link {
            match handshake::looks_like_preface(self.rx.data()) {
                Some(true) => self.fail(Error::Handshake(
                    "the peer is using encrypted mode: run both sides with --plain, or neither"
                        .into(),
                )),
                Some(false) => self.release_sniffed(),
                None if self.transport_eof => self.release_sniffed(),
                None => {}
            }
            return;
        }
        if let Link::Handshaking(hs) = &mut self.link {
            match hs.advance(&mut self.rx, &mut self.tx) {
                Err(e) => return self.fail(e),
                Ok(None) => {
                    if self.transport_eof {
                        let e = hs.eof_error();
                        self.fail(e);
                    }
                    return;
                }
                Ok(Some(est)) => {
                    let uses_secret = hs.uses_secret();
                    let (sealer, opener) = match self.role {
                        Role::Dialer => (est.keys.dialer_to_listener, est.keys.listener_to_dialer),
                        Role::Listener => {
                            (est.keys.listener_to_dialer, est.keys.dialer_to_listener)
                        }
                    };
                    self.pending_code = est.verify_code;
                    self.link = Link::Secure(Box::new(Channel {
                        sealer: Sealer::new(&sealer),
                        opener: Opener::new(&opener),
                        confirmed: false,
                        uses_secret,
                    }));
                    let name = self.name.clone();
                    self.seal(Kind::Hello, name.as_bytes(), now);
                }
            }
        }
        self.open_records(now);
    }

    fn open_records(&mut self, now: Instant) {
        loop {
            if self.failure.is_some() || self.peer_left || self.out.room() < MAX_PAYLOAD {
                return;
            }
            let Link::Secure(ch) = &mut self.link else {
                return;
            };
            let opened = match ch.opener.open(self.rx.data_mut()) {
                Ok(Some(r)) => r,
                Ok(None) if self.transport_eof && !ch.confirmed => {
                    return self.fail(Error::Handshake(
                        "the peer closed the connection during the handshake".into(),
                    ));
                }
                Ok(None) if self.transport_eof && !self.rx.is_empty() => {
                    return self.fail(Error::Integrity(
                        "integrity check failed: the connection ended in the middle of a record; \
                         connection aborted"
                            .into(),
                    ));
                }
                Ok(None) => return,
                Err(e) => {
                    let err = if !ch.confirmed && e == RecordError::Forged {
                        Handshake::auth_error(ch.uses_secret)
                    } else {
                        Error::Integrity(format!("integrity check failed: {e}; connection aborted"))
                    };
                    return self.fail(err);
                }
            };
            let payload = &self.rx.data()[opened.payload.clone()];
            match (ch.confirmed, opened.kind) {
                (false, Kind::Hello) => {
                    ch.confirmed = true;
                    let name = names::sanitize(payload);
                    self.events.push_back(Event::Joined {
                        name: Some(if name.is_empty() { "peer".into() } else { name }),
                        verify_code: self.pending_code.take(),
                    });
                }
                (false, _) => return self.fail(violation("the first record was not HELLO")),
                (true, Kind::Hello) => return self.fail(violation("a second HELLO")),
                (true, Kind::Data) if self.peer_done => {
                    return self.fail(violation("data after EOF"))
                }
                (true, Kind::Data) => {
                    if !self.discard_output {
                        self.out.extend(payload);
                    }
                }
                (true, Kind::Eof) if self.peer_done => return self.fail(violation("a second EOF")),
                (true, Kind::Eof) => {
                    self.peer_done = true;
                    self.events.push_back(Event::PeerDone);
                    // Answered with DONE (sealed now, or once tx has room).
                    self.seal_staged(now);
                }
                (true, Kind::Done) if !self.eof_sent || self.done_received => {
                    return self.fail(violation("an unexpected DONE"));
                }
                (true, Kind::Done) => self.done_received = true,
                (true, Kind::Bye) => {
                    self.peer_left = true;
                    self.events.push_back(Event::PeerLeft);
                }
                (true, Kind::Ping) => {}
            }
            self.rx.consume(opened.consumed);
        }
    }
}

fn violation(what: &str) -> Error {
    Error::Integrity(format!("protocol violation: {what}; connection aborted"))
}

#[cfg(test)]
mod tests;
