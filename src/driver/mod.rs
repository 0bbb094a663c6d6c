//! The driver: the one place that owns `mio::Poll`, the sockets and the
//! signals, and pumps bytes between them, the [`Session`] and the front-end.
//!
//! mio is edge-triggered, so every source keeps a cached readiness flag that
//! only `WouldBlock` clears, and the loop never sleeps while a cached flag
//! can still make progress ("pump until stuck, then poll").

pub mod net;
pub mod signals;
pub mod stdio;

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};

use crate::cli::{Config, Endpoint, Security};
use crate::error::{describe_io, Error};
use crate::frontend::{self, Input, Notice, UserSide};
use crate::session::{Event, Session, SessionConfig, Status};
use signals::Interrupts;

const SOCKET: Token = Token(0);
const LISTENER: Token = Token(1);
/// The loop's one waker: Ctrl-C and the line editor thread both use it.
pub const WAKER: Token = Token(2);

/// How long to keep reading after our side is done, so the peer's last
/// bytes are not answered with a reset.
const LINGER: Duration = Duration::from_secs(2);
/// The same after a failed handshake, so the peer gets our error cleanly.
const ABORT_DRAIN: Duration = Duration::from_secs(1);
/// A listener gives up after this many peers with the wrong secret.
const MAX_AUTH_FAILURES: usize = 3;

fn loop_error(e: io::Error) -> Error {
    Error::Local(format!("event loop failed: {}", describe_io(&e)))
}

/// Runs p2pchat: connect, hold the room, and return how it ended.
pub fn run(cfg: Config) -> Result<(), Error> {
    let poll = Poll::new().map_err(loop_error)?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER).map_err(loop_error)?);
    let interrupts = Interrupts::install(waker.clone())?;
    let mut ui = frontend::open(&cfg, poll.registry(), waker, &interrupts)?;
    let mut driver = Driver {
        poll,
        events: Events::with_capacity(64),
        interrupts,
        cfg,
    };
    let result = driver.run_with(ui.as_mut());
    ui.finish();
    result
}

/// Why we are leaving the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leave {
    Interrupted,
    User,
    StdoutClosed,
}

struct Driver {
    poll: Poll,
    events: Events,
    interrupts: Interrupts,
    cfg: Config,
}

impl Driver {
    fn run_with(&mut self, ui: &mut dyn UserSide) -> Result<(), Error> {
        if let Security::Plain = self.cfg.security {
            ui.notice(Notice::PlainWarning);
        }
        match self.cfg.endpoint.clone() {
            Endpoint::Dial { host, port, retry } => {
                let (stream, addr) = net::dial(
                    &mut self.poll,
                    &self.interrupts,
                    &host,
                    port,
                    retry,
                    self.cfg.handshake_timeout,
                )?;
                self.room(ui, stream, addr, &mut None).0
            }
            Endpoint::Listen { bind, port } => self.listen(ui, net::listen(bind, port)?),
        }
    }

    /// Accepts peers until one completes the handshake.
    fn listen(&mut self, ui: &mut dyn UserSide, mut listener: TcpListener) -> Result<(), Error> {
        let local = listener
            .local_addr()
            .map_err(|e| Error::Connect(format!("cannot listen: {}", describe_io(&e))))?;
        ui.notice(Notice::Listening(local));
        self.poll
            .registry()
            .register(&mut listener, LISTENER, Interest::READABLE)
            .map_err(loop_error)?;
        let mut auth_failures = 0;
        loop {
            let (stream, addr) = self.accept(&listener)?;
            let mut slot = Some(listener);
            let (result, established) = self.room(ui, stream, addr, &mut slot);
            let (Err(e), false, Some(l)) = (&result, established, slot) else {
                return result;
            };
            if !e.is_failed_attempt() {
                return result;
            }
            listener = l;
            ui.notice(Notice::FailedAttempt(addr, &e.to_string()));
            if let Error::AuthFailed(_) = e {
                auth_failures += 1;
                if auth_failures >= MAX_AUTH_FAILURES {
                    return Err(Error::AuthFailed(format!(
                        "{auth_failures} failed attempts with a wrong secret; giving up"
                    )));
                }
            }
        }
    }

    fn accept(&mut self, listener: &TcpListener) -> Result<(TcpStream, SocketAddr), Error> {
        loop {
            match listener.accept() {
                Ok(pair) => return Ok(pair),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if is_transient_accept_error(&e) => continue,
                Err(e) => {
                    return Err(Error::Connect(format!(
                        "cannot accept: {}",
                        describe_io(&e)
                    )))
                }
            }
            if self.interrupts.count() > 0 {
                return Err(Error::Interrupted);
            }
            self.wait(None)?;
        }
    }

    fn wait(&mut self, timeout: Option<Duration>) -> Result<(), Error> {
        match self.poll.poll(&mut self.events, timeout) {
            Err(e) if e.kind() != io::ErrorKind::Interrupted => Err(loop_error(e)),
            _ => Ok(()),
        }
    }

    /// Holds one connection from handshake to goodbye. Also says whether the
    /// room was ever up, so a listener knows if it may keep waiting.
    fn room(
        &mut self,
        ui: &mut dyn UserSide,
        mut sock: TcpStream,
        peer: SocketAddr,
        listener: &mut Option<TcpListener>,
    ) -> (Result<(), Error>, bool) {
        net::tune(&sock, self.cfg.idle_timeout);
        if let Err(e) = self.poll.registry().register(
            &mut sock,
            SOCKET,
            Interest::READABLE | Interest::WRITABLE,
        ) {
            return (Err(loop_error(e)), false);
        }
        let session = Session::new(
            SessionConfig {
                role: self.cfg.role(),
                security: self.cfg.security.clone(),
                name: self.cfg.name.clone(),
                idle_timeout: self.cfg.idle_timeout,
                handshake_timeout: self.cfg.handshake_timeout,
            },
            Instant::now(),
        );
        let mut room = Room {
            session,
            sock,
            peer,
            peer_name: net::display_addr(peer),
            sock_r: true,
            sock_w: true,
            shut: false,
            eof: false,
            sock_hup: false,
            leave: None,
            interrupts_seen: 0,
            established: false,
        };
        let result = self.pump(ui, &mut room, listener);
        let _ = self.poll.registry().deregister(&mut room.sock);
        (result, room.established)
    }

    fn pump(
        &mut self,
        ui: &mut dyn UserSide,
        r: &mut Room,
        listener: &mut Option<TcpListener>,
    ) -> Result<(), Error> {
        ui.rearm(self.poll.registry());
        loop {
            let now = Instant::now();
            self.check_interrupts(ui, r, now)?;
            r.user_to_session(ui, self.poll.registry(), now)?;
            r.session_to_socket(now);
            r.socket_to_session(now);
            r.session_to_user(ui, self.poll.registry(), now)?;
            self.handle_events(ui, r, listener);

            match r.session.status() {
                Status::Running => {}
                Status::Done => {
                    r.shutdown();
                    self.linger(r, LINGER);
                    return match r.leave {
                        Some(Leave::Interrupted) if !r.session.nothing_lost() => {
                            Err(Error::Interrupted)
                        }
                        _ => Ok(()),
                    };
                }
                Status::Failed(e) => {
                    if r.session.is_established() {
                        // The room is broken: reset, so the peer cannot
                        // mistake this for a clean end.
                        let _ = socket2::SockRef::from(&r.sock).set_linger(Some(Duration::ZERO));
                    } else {
                        // A failed handshake: our last records (HELLO) and a
                        // FIN, then drain, so the peer reads the same clear
                        // error and not a reset.
                        r.session_to_socket(now);
                        r.shutdown();
                        self.linger(r, ABORT_DRAIN);
                    }
                    return Err(e);
                }
            }

            let busy = (ui.input_ready() && r.session.can_take_input())
                || (r.sock_w && !r.session.transmit().is_empty())
                || (r.sock_r && r.session.can_receive())
                || (ui.output_ready() && !r.session.output().is_empty())
                || (!r.shut && r.session.wants_write_shutdown());
            let timeout = if busy {
                Some(Duration::ZERO)
            } else {
                r.session
                    .timeout()
                    .map(|t| t.saturating_duration_since(now))
            };
            self.wait(timeout)?;
            for ev in self.events.iter() {
                match ev.token() {
                    SOCKET => {
                        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                            r.sock_r = true;
                        }
                        r.sock_hup |= ev.is_read_closed() || ev.is_error();
                        if ev.is_writable() || ev.is_write_closed() || ev.is_error() {
                            r.sock_w = true;
                        }
                    }
                    // Other dialers wait in the backlog while a handshake
                    // runs: if it fails, the next one is accepted; once the
                    // room is up, dropping the listener refuses them all.
                    LISTENER => {}
                    token => ui.on_ready(token, ev.is_read_closed() || ev.is_error()),
                }
            }
            let now = Instant::now();
            if r.session.timeout().is_some_and(|t| now >= t) {
                r.session.handle_timeout(now);
            }
        }
    }

    fn check_interrupts(
        &mut self,
        ui: &mut dyn UserSide,
        r: &mut Room,
        now: Instant,
    ) -> Result<(), Error> {
        let n = self.interrupts.count();
        if n == r.interrupts_seen {
            return Ok(());
        }
        r.interrupts_seen = n;
        if n >= 2 || !r.session.is_established() {
            return Err(Error::Interrupted);
        }
        if r.leave.is_none() {
            r.leave = Some(Leave::Interrupted);
            r.session.leave(now);
            ui.close_input(self.poll.registry());
        }
        Ok(())
    }

    fn handle_events(
        &mut self,
        ui: &mut dyn UserSide,
        r: &mut Room,
        listener: &mut Option<TcpListener>,
    ) {
        while let Some(ev) = r.session.poll_event() {
            match ev {
                Event::Joined { name, verify_code } => {
                    r.established = true;
                    // One room, two people: from now on a dial is refused.
                    if let Some(mut l) = listener.take() {
                        let _ = self.poll.registry().deregister(&mut l);
                    }
                    if let Some(n) = &name {
                        r.peer_name = n.clone();
                    }
                    ui.notice(Notice::Joined {
                        peer: r.peer,
                        name: name.as_deref(),
                        verify_code: verify_code.as_deref(),
                    });
                }
                Event::PeerDone => ui.notice(Notice::PeerDone(&r.peer_name)),
                Event::PeerLeft => ui.notice(Notice::PeerLeft(&r.peer_name)),
            }
        }
    }

    /// Reads and drops what the peer still sends until its EOF or `limit`.
    fn linger(&mut self, r: &mut Room, limit: Duration) {
        let deadline = Instant::now() + limit;
        let mut scratch = [0u8; 16 * 1024];
        while !r.eof {
            match r.sock.read(&mut scratch) {
                Ok(0) => r.eof = true,
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            }
            let now = Instant::now();
            if r.eof || now >= deadline || self.wait(Some(deadline - now)).is_err() {
                return;
            }
        }
    }
}

fn is_transient_accept_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

/// One connection's state in the loop.
struct Room {
    session: Session,
    sock: TcpStream,
    peer: SocketAddr,
    peer_name: String,
    /// Cached readiness of the socket; cleared only by WouldBlock.
    sock_r: bool,
    sock_w: bool,
    /// We shut down our write side.
    shut: bool,
    /// The socket read returned end-of-file.
    eof: bool,
    /// An event reported the peer's FIN or an error: read on to the end.
    sock_hup: bool,
    leave: Option<Leave>,
    interrupts_seen: usize,
    established: bool,
}

impl Room {
    fn user_to_session(
        &mut self,
        ui: &mut dyn UserSide,
        reg: &mio::Registry,
        now: Instant,
    ) -> Result<(), Error> {
        while ui.input_ready() {
            let buf = self.session.input_buf();
            if buf.is_empty() {
                break;
            }
            match ui.read_input(buf) {
                Ok(Input::Data(n)) => self.session.input_received(n, now),
                Ok(Input::Blocked) => break,
                Ok(Input::End) => {
                    self.session.input_ended(now);
                    ui.close_input(reg);
                }
                Ok(Input::Leave) => {
                    self.leave.get_or_insert(Leave::User);
                    self.session.leave(now);
                    ui.close_input(reg);
                }
                Err(e) => {
                    return Err(Error::Local(format!(
                        "cannot read stdin: {}",
                        describe_io(&e)
                    )))
                }
            }
        }
        Ok(())
    }

    fn session_to_socket(&mut self, now: Instant) {
        while self.sock_w && !self.session.transmit().is_empty() {
            match self.sock.write(self.session.transmit()) {
                Ok(n) => self.session.transmitted(n, now),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.sock_w = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.session.transport_failed(&e);
                    self.sock_w = false;
                }
            }
        }
        if !self.shut && self.session.wants_write_shutdown() {
            self.shutdown();
        }
    }

    fn shutdown(&mut self) {
        if !self.shut {
            let _ = self.sock.shutdown(Shutdown::Write);
            self.shut = true;
        }
    }

    fn socket_to_session(&mut self, now: Instant) {
        while self.sock_r {
            let buf = self.session.receive_buf();
            let wanted = buf.len();
            if wanted == 0 {
                break;
            }
            match self.sock.read(buf) {
                Ok(0) => {
                    self.eof = true;
                    self.sock_r = false;
                    self.session.transport_closed(now);
                }
                Ok(n) => {
                    self.session.received(n, now);
                    // A short read empties the socket; the next segment
                    // brings a new edge. Saves the WouldBlock read.
                    if n < wanted && !self.sock_hup {
                        self.sock_r = false;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.sock_r = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.sock_r = false;
                    self.session.transport_failed(&e);
                }
            }
        }
    }

    fn session_to_user(
        &mut self,
        ui: &mut dyn UserSide,
        reg: &mio::Registry,
        now: Instant,
    ) -> Result<(), Error> {
        while ui.output_ready() && !self.session.output().is_empty() {
            match ui.write_output(self.session.output()) {
                Ok(0) => break,
                Ok(n) => self.session.output_written(n, now),
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                    // The reader of our stdout went away (`| head`): leave
                    // quietly, like any well-behaved filter.
                    ui.close_output(reg);
                    self.session.output_closed(now);
                    self.leave.get_or_insert(Leave::StdoutClosed);
                    self.session.leave(now);
                    ui.close_input(reg);
                }
                Err(e) => {
                    return Err(Error::Local(format!(
                        "cannot write to stdout: {}",
                        describe_io(&e)
                    )))
                }
            }
        }
        if ui.output_open() && self.session.output_finished() {
            ui.close_output(reg);
        }
        Ok(())
    }
}
