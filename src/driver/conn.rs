//! One TCP connection in the loop: its cached readiness, pumping bytes
//! between the socket and the session's lent buffers, and the states that
//! are not the session's business (connecting, lingering).

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::{Duration, Instant};

use mio::net::TcpStream;

use super::pacing;
use super::readiness::Readiness;
use crate::protocol::transit::{self, Reply};
use crate::session::{LinkId, Session};

/// Where a connection to a relay stands after one step.
pub enum RelayStep {
    /// Still saying hello or waiting for the reply.
    Waiting,
    /// Paired: these bytes came after `ok\n` and are the peer's.
    Paired(Vec<u8>),
    /// The relay refused, with its reason.
    Refused(String),
    /// The relay closed (or reset) the connection before pairing.
    Closed(Option<io::Error>),
}

/// Where a connection stands, as far as the loop is concerned.
pub enum ConnState {
    /// A non-blocking connect in flight (dialer), given up at `deadline`.
    Connecting { deadline: Instant },
    /// Connected to a transit relay: our hello goes out (`unsent`), its
    /// reply comes in (`reply`); the session has not seen this connection.
    AtRelay { unsent: Vec<u8>, reply: Vec<u8> },
    /// Carrying a session link.
    Open,
    /// The session is done with it: write `flush`, send our FIN, then read
    /// and drop until the peer's FIN or `until`, and close. The deadline
    /// holds even while bytes keep arriving.
    Lingering { flush: Vec<u8>, until: Instant },
}

pub struct Conn {
    pub sock: TcpStream,
    pub peer: SocketAddr,
    pub link: LinkId,
    pub ready: Readiness,
    pub state: ConnState,
    write_shut: bool,
    read_eof: bool,
    /// Our bytes the peer's TCP had acknowledged at the last look.
    acked: u64,
    /// Every byte we wrote to the socket: less the send queue, what the
    /// peer acknowledged, where the system has no `TCP_INFO`.
    written: u64,
    /// While TCP's window limits file bytes (see [`pacing`]): when we
    /// last read it, and how soon to read it again if they wait.
    window_read: Option<(Instant, Duration)>,
}

impl Conn {
    pub fn new(sock: TcpStream, peer: SocketAddr, link: LinkId, state: ConnState) -> Conn {
        let ready = match state {
            // A connect completes with a writable event.
            ConnState::Connecting { .. } => Readiness::default(),
            _ => Readiness::fresh(),
        };
        Conn {
            sock,
            peer,
            link,
            ready,
            state,
            write_shut: false,
            read_eof: false,
            acked: 0,
            written: 0,
            window_read: None,
        }
    }

    /// For a connect in flight that became writable: Some(Ok) once
    /// connected, Some(Err) if it failed, None if not yet decided.
    pub fn connect_result(&mut self) -> Option<io::Result<()>> {
        if !self.ready.write {
            return None;
        }
        if let Ok(Some(e)) | Err(e) = self.sock.take_error() {
            return Some(Err(e));
        }
        match self.sock.peer_addr() {
            Ok(_) => Some(Ok(())),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                self.ready.write = false;
                None
            }
            Err(e) => Some(Err(e)),
        }
    }

    /// Returns true if and only if a pump could make progress right now.
    pub fn busy(&self, s: &Session) -> bool {
        match &self.state {
            ConnState::Open => {
                (self.ready.write && !s.to_send(self.link).is_empty())
                    || (self.ready.read && s.can_receive(self.link))
            }
            ConnState::Lingering { .. } => self.ready.read || self.ready.write,
            ConnState::Connecting { .. } => self.ready.write,
            ConnState::AtRelay { unsent, .. } => {
                self.ready.read || (self.ready.write && !unsent.is_empty())
            }
        }
    }

    /// Moves bytes both ways between an open connection and the session:
    /// what is due out first, then what has come in. File bytes leave room
    /// in TCP's window on links of at least `min_rtt` (see [`pacing`]).
    pub fn pump(&mut self, s: &mut Session, min_rtt: Duration, now: Instant) {
        if let ConnState::Open = self.state {
            self.pace(s, min_rtt, now);
            self.to_socket(s, now);
            self.from_socket(s, now);
        }
    }

    /// Tells the session how many file bytes the socket takes now without
    /// filling TCP's window (see [`pacing`]); asks the socket only while a
    /// file of ours is moving.
    fn pace(&mut self, s: &mut Session, min_rtt: Duration, now: Instant) {
        let window = s
            .files_sending()
            .then(|| crate::sys::net::send_window(&self.sock))
            .flatten();
        let room = window.as_ref().and_then(|w| pacing::file_room(w, min_rtt));
        self.window_read = window
            .filter(|_| room.is_some())
            .map(|w| (now, pacing::recheck_after(&w)));
        s.set_send_room(self.link, room, now);
    }

    /// When to look at TCP's window again: only while file bytes wait for
    /// room in it, since nothing else wakes the loop for them.
    pub fn pace_deadline(&self, s: &Session) -> Option<Instant> {
        let (read, after) = self.window_read?;
        (matches!(self.state, ConnState::Open) && s.room_held(self.link)).then_some(read + after)
    }

    /// Writes what the session has for this link.
    pub fn to_socket(&mut self, s: &mut Session, now: Instant) {
        while self.ready.write && !s.to_send(self.link).is_empty() {
            match self.sock.write(s.to_send(self.link)) {
                Ok(n) => {
                    self.written += n as u64;
                    s.sent(self.link, n, now);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.ready.write = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.ready.write = false;
                    s.transport_failed(self.link, &e, now);
                }
            }
        }
    }

    /// Reads into the session's buffer for this link.
    pub fn from_socket(&mut self, s: &mut Session, now: Instant) {
        while self.ready.read {
            let buf = s.receive_buf(self.link);
            let wanted = buf.len();
            if wanted == 0 {
                if self.read_eof {
                    // Not reading any more (the peer's FIN is in), but the
                    // socket reported something: a reset must be noticed
                    // now, not at our next write, which would be lost.
                    self.ready.read = false;
                    if let Ok(Some(e)) = self.sock.take_error() {
                        s.transport_failed(self.link, &e, now);
                    }
                }
                break;
            }
            match self.sock.read(buf) {
                Ok(0) => {
                    self.read_eof = true;
                    self.ready.read = false;
                    s.transport_closed(self.link, now);
                }
                Ok(n) => {
                    s.received(self.link, n, now);
                    self.ready.after_read(n, wanted);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.ready.read = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.ready.read = false;
                    s.transport_failed(self.link, &e, now);
                }
            }
        }
    }

    /// One step of the transit handshake: write what is left of our hello,
    /// read the reply. Reads at most to the end of a reply line, so bytes
    /// after `ok\n` are only those that came in the same read.
    pub fn relay_step(&mut self) -> RelayStep {
        let ConnState::AtRelay { unsent, reply } = &mut self.state else {
            return RelayStep::Waiting;
        };
        while self.ready.write && !unsent.is_empty() {
            match self.sock.write(unsent) {
                Ok(n) => {
                    self.written += n as u64;
                    unsent.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.ready.write = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return RelayStep::Closed(Some(e)),
            }
        }
        let mut buf = [0u8; transit::MAX_REPLY];
        while self.ready.read {
            let room = transit::MAX_REPLY - reply.len().min(transit::MAX_REPLY);
            match self.sock.read(&mut buf[..room.max(1)]) {
                Ok(0) => {
                    self.ready.read = false;
                    return match transit::parse_reply(reply) {
                        Reply::Refused(why) => RelayStep::Refused(why),
                        _ => RelayStep::Closed(None),
                    };
                }
                Ok(n) => {
                    reply.extend_from_slice(&buf[..n]);
                    self.ready.after_read(n, room);
                    match transit::parse_reply(reply) {
                        Reply::Incomplete => {}
                        Reply::Ok { len } => return RelayStep::Paired(reply.split_off(len)),
                        Reply::Refused(why) => return RelayStep::Refused(why),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.ready.read = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return RelayStep::Closed(Some(e)),
            }
        }
        RelayStep::Waiting
    }

    pub fn shutdown_write(&mut self) {
        if !self.write_shut {
            let _ = self.sock.shutdown(Shutdown::Write);
            self.write_shut = true;
        }
    }

    /// Makes the coming close a reset (RST), not a FIN.
    pub fn set_reset_on_close(&self) {
        let _ = socket2::SockRef::from(&self.sock).set_linger(Some(Duration::ZERO));
    }

    /// One step of lingering: flush, FIN, drain. Returns true once the
    /// connection can be closed.
    pub fn linger(&mut self, now: Instant) -> bool {
        let ConnState::Lingering { flush, until } = &mut self.state else {
            return true;
        };
        if now >= *until {
            return true;
        }
        while !flush.is_empty() && self.ready.write {
            match self.sock.write(flush) {
                Ok(n) => {
                    self.written += n as u64;
                    flush.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.ready.write = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return true,
            }
        }
        if !flush.is_empty() {
            return false;
        }
        self.shutdown_write();
        let mut scratch = [0u8; 16 * 1024];
        // Bounded per turn so a fast sender cannot hold the loop.
        for _ in 0..64 {
            if !self.ready.read || self.read_eof {
                break;
            }
            match self.sock.read(&mut scratch) {
                Ok(0) => self.read_eof = true,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.ready.read = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return true,
            }
        }
        self.read_eof
    }

    /// Returns true if and only if the peer's TCP acknowledged at least
    /// `threshold` more of our bytes since the last call: its host is
    /// alive and taking our data, even if its own packets are stuck behind
    /// a backed-off retransmission.
    pub fn acked_progress(&mut self, threshold: u64) -> bool {
        let Some(now) = crate::sys::net::bytes_acked(&self.sock, self.written) else {
            return false;
        };
        let moved = now.saturating_sub(self.acked) >= threshold;
        if moved || now < self.acked {
            self.acked = now;
        }
        moved
    }

    /// The deadline of a connect or a linger.
    pub fn deadline(&self) -> Option<Instant> {
        match &self.state {
            ConnState::Connecting { deadline } => Some(*deadline),
            ConnState::Lingering { until, .. } => Some(*until),
            ConnState::Open | ConnState::AtRelay { .. } => None,
        }
    }
}
