//! Meeting through a transit relay, as a state with deadlines: connect to
//! the relay, say the hello for the code's room, wait for `ok`, then hand
//! the connection to the session as if we had dialed or accepted the peer.
//! The listener goes back to the relay when a relay ends a long wait (or a
//! connection closes before anyone confirmed); the dialer gives up after
//! `--wait`.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::error::{describe_io, Error};
use crate::protocol::transit::{self, DIALER_SIDE, LISTENER_SIDE};
use crate::protocol::Role;
use crate::session::LinkId;

/// A wait at least this long that the relay ends is the relay's own
/// deadline (ours ends waits after 10 minutes): the listener goes back.
/// A shorter one is a refusal.
const LONG_WAIT: Duration = Duration::from_secs(30);

pub enum Phase {
    /// No connection to the relay: make one.
    Idle,
    /// A connect in flight.
    Connecting(LinkId),
    /// Hello sent, waiting for the reply since the given time.
    Waiting { link: LinkId, since: Instant },
    /// The connection belongs to the session now.
    Handed(LinkId),
}

pub struct RelayClient {
    host: String,
    port: u16,
    /// `host:port` as the user wrote it, for messages.
    pub shown: String,
    role: Role,
    pub room: String,
    /// How long a dialer waits for the listener in the room.
    wait: Duration,
    addrs: Vec<SocketAddr>,
    next: usize,
    last_error: Option<(SocketAddr, io::Error)>,
    pub phase: Phase,
    /// The "waiting in room" line was shown.
    pub announced: bool,
}

impl RelayClient {
    pub fn new(host: &str, port: u16, role: Role, room: &str, wait: Duration) -> RelayClient {
        let shown = crate::names::host_port(host, port);
        RelayClient {
            host: host.to_string(),
            port,
            shown,
            role,
            room: room.to_string(),
            wait,
            addrs: Vec::new(),
            next: 0,
            last_error: None,
            phase: Phase::Idle,
            announced: false,
        }
    }

    /// Our hello for the room: its token, and our role's fixed side. A
    /// resume comes back with `resume_token` when the room agreed on one
    /// (only the room's two ends can name it, so nobody who merely knows
    /// the room number is paired into the resume).
    pub fn hello(&self, resume_token: Option<[u8; transit::TOKEN_LEN]>) -> Vec<u8> {
        let side = match self.role {
            Role::Listener => LISTENER_SIDE,
            Role::Dialer => DIALER_SIDE,
        };
        let token = resume_token.unwrap_or_else(|| transit::token(&self.room));
        transit::hello(&token, side)
    }

    /// The next address to try, resolving afresh at the start of a round.
    pub fn next_addr(&mut self) -> Result<Option<SocketAddr>, Error> {
        if self.next == 0 {
            self.addrs = super::net::resolve(&self.host, self.port)
                .map_err(|e| Error::Connect(format!("cannot reach the relay: {e}")))?;
        }
        let addr = self.addrs.get(self.next).copied();
        self.next += 1;
        Ok(addr)
    }

    /// A connect failed: try the next address, or report the last failure.
    pub fn connect_failed(&mut self, addr: SocketAddr, e: io::Error) {
        self.last_error = Some((addr, e));
        self.phase = Phase::Idle;
    }

    /// The error once every address failed.
    pub fn unreachable(&mut self) -> Error {
        self.next = 0;
        match self.last_error.take() {
            Some((addr, e)) => Error::Connect(format!(
                "cannot reach the relay {} ({}): {}",
                self.shown,
                crate::names::display_addr(addr),
                describe_io(&e)
            )),
            None => Error::Connect(format!("cannot reach the relay {}", self.shown)),
        }
    }

    /// Connected: the round of addresses is over.
    pub fn connected(&mut self, link: LinkId, now: Instant) {
        self.next = 0;
        self.phase = Phase::Waiting { link, since: now };
    }

    /// When a dialer stops waiting for the listener.
    pub fn deadline(&self) -> Option<Instant> {
        match (&self.phase, self.role) {
            (Phase::Waiting { since, .. }, Role::Dialer) => since.checked_add(self.wait),
            _ => None,
        }
    }

    pub fn nobody_came(&self) -> Error {
        Error::Connect(format!(
            "nobody came to room {} on relay {} within {} s: check the room number \
             (the first part of the code) and that the listener is still waiting",
            self.room,
            self.shown,
            self.wait.as_secs()
        ))
    }

    /// The relay closed or refused before pairing. Ok(()) when the
    /// listener should simply go back (the relay ended a long wait).
    pub fn ended_before_pairing(
        &mut self,
        refusal: Option<String>,
        error: Option<io::Error>,
        since: Instant,
        now: Instant,
    ) -> Result<(), Error> {
        let long = now.saturating_duration_since(since) >= LONG_WAIT;
        if self.role == Role::Listener && long {
            self.phase = Phase::Idle;
            return Ok(());
        }
        Err(Error::Connect(match (refusal, error) {
            (Some(why), _) => format!("relay {}: {why}", self.shown),
            (None, Some(e)) => format!(
                "the relay {} dropped the connection before the peer came: {}",
                self.shown,
                describe_io(&e)
            ),
            (None, None) => format!(
                "the relay {} closed the connection before the peer came \
                 (it may be over a limit or not a transit relay)",
                self.shown
            ),
        }))
    }
}
