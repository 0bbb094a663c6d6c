//! `p2pchat relay`: the sockets of a transit relay on the reactor. The
//! core ([`crate::relay::Relay`]) decides who is admitted, who pairs with
//! whom and when anything ends; this loop accepts, reads hellos for it,
//! and copies the bytes of each pair both ways through one channel per
//! direction (a spliced pipe, see [`super::relay_channel`]), reading a
//! side only while the channel toward its partner has room
//! (backpressure). One side's EOF becomes a write shutdown on the other,
//! once everything before it is written.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};

use super::readiness::Readiness;
use super::relay_channel::{Channel, Fill};
use super::{net, Reactor, FIRST_CONN, LISTENER};
use crate::error::{describe_io, Error};
use crate::relay::log::LogQueue;
use crate::relay::{Action, ConnId, Limits, PairEnd, Relay};

/// How long accepting pauses when the process is out of file descriptors.
const ACCEPT_PAUSE: Duration = Duration::from_millis(250);
/// Connections accepted per turn, so a flood cannot starve the pairs.
const ACCEPTS_PER_TURN: usize = 64;
/// Reads and writes per direction per turn, so one fast pair cannot hold
/// the loop.
const COPIES_PER_TURN: usize = 16;
/// While log lines wait for stderr, how often the loop tries again.
const LOG_RETRY: Duration = Duration::from_millis(200);
/// The relay's listen backlog: bursts of connects must not hit SYN drops
/// (the reference server's 50 gives 1 s stalls).
const BACKLOG: i32 = 1024;

/// What `p2pchat relay` was asked to do.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub bind: Option<IpAddr>,
    pub port: u16,
    pub quiet: bool,
    pub limits: Limits,
}

enum Kind {
    /// Reading the hello for the core, or waiting for a partner.
    Unpaired,
    /// Paired with the connection in slot `partner`; `out` holds what is
    /// on its way to this connection.
    Paired {
        partner: usize,
        out: Channel,
        /// Our peer's FIN is in: nothing more to read from this side.
        read_eof: bool,
        /// We forwarded the partner's FIN as our write shutdown.
        write_shut: bool,
        /// The backlog last reported to the core.
        backlog: bool,
        moved: u64,
    },
}

struct RConn {
    sock: TcpStream,
    ready: Readiness,
    kind: Kind,
}

/// Runs the relay until SIGINT or SIGTERM.
pub fn run(reactor: &mut Reactor, cfg: &RelayConfig) -> Result<(), Error> {
    raise_fd_limit(cfg.limits.max_connections);
    let mut sock = net::listen_with_backlog(cfg.bind, cfg.port, BACKLOG)?;
    let local = sock
        .local_addr()
        .map_err(|e| Error::Connect(format!("cannot listen: {}", describe_io(&e))))?;
    reactor
        .registry()
        .register(&mut sock, LISTENER, Interest::READABLE)
        .map_err(super::loop_error)?;
    let mut relay = RelayLoop {
        core: Relay::new(cfg.limits.clone()),
        conns: Vec::new(),
        listener: sock,
        readable: true,
        paused_until: None,
        quiet: cfg.quiet,
        log: LogQueue::default(),
    };
    // Always said, even with -q: `relay 0` is useless without the port.
    relay.log.push(&format!(
        "relaying on {} (transit relay protocol)",
        crate::names::display_addr(local)
    ));
    relay.flush_log();
    relay.run(reactor)
}

/// Lifts the soft descriptor limit toward the hard one, as far as the
/// connections could use (each paired one also holds the two ends of its
/// channel's pipe); a relay should not stop at the default 1024.
fn raise_fd_limit(connections: usize) {
    crate::sys::process::raise_fd_limit(connections as u64 * 3 + 64);
}

struct RelayLoop {
    core: Relay,
    /// The slab: connection `i` has token `FIRST_CONN + i`.
    conns: Vec<Option<RConn>>,
    listener: TcpListener,
    readable: bool,
    paused_until: Option<Instant>,
    quiet: bool,
    /// Log lines on their way to stderr, never waited for.
    log: LogQueue,
}

fn id_of(slot: usize) -> ConnId {
    ConnId(slot)
}

impl RelayLoop {
    fn run(&mut self, reactor: &mut Reactor) -> Result<(), Error> {
        loop {
            let now = Instant::now();
            if reactor.interrupts().count() > 0 {
                self.log.push(&format!(
                    "stopping ({}); {} pairs and {} waiting connections closed",
                    reactor.interrupts().last().name(),
                    self.core.pairs(),
                    self.core.waiting()
                ));
                self.log.note_drops();
                self.flush_log();
                return Ok(());
            }
            self.accept(reactor.registry(), now);
            self.read_unpaired(now);
            self.copy_pairs(now);
            self.actions(reactor.registry(), now);
            while let Some(line) = self.core.poll_log() {
                if !self.quiet {
                    self.log.push(&line);
                }
            }
            self.flush_log();
            let log_retry = (!self.log.is_empty()).then(|| now + LOG_RETRY);
            let timeout = if self.busy() {
                Some(Duration::ZERO)
            } else {
                self.core
                    .poll_timeout()
                    .into_iter()
                    .chain(self.paused_until)
                    .chain(log_retry)
                    .min()
                    .map(|t| t.saturating_duration_since(now))
            };
            let (conns, readable) = (&mut self.conns, &mut self.readable);
            reactor.wait(timeout, |ev| match ev.token() {
                LISTENER => *readable = true,
                Token(t) if t >= FIRST_CONN => {
                    if let Some(Some(c)) = conns.get_mut(t - FIRST_CONN) {
                        c.ready.update(ev);
                    }
                }
                _ => {}
            })?;
            let now = Instant::now();
            if self.core.poll_timeout().is_some_and(|t| now >= t) {
                self.core.handle_timeout(now);
            }
        }
    }

    /// Writes the log lines stderr takes now; the rest wait, and new ones
    /// are dropped (and counted) once too many wait. A broken stderr
    /// (EPIPE, a closed descriptor) just ends the logging.
    fn flush_log(&mut self) {
        while let Some(front) = self.log.front() {
            match crate::sys::stdio::write_stderr_nowait(front) {
                Ok(0) => return,
                Ok(n) => self.log.written(n),
                Err(_) => return self.log.clear(),
            }
        }
    }

    fn busy(&self) -> bool {
        let accepting = self.readable && self.paused_until.is_none();
        accepting
            || self.conns.iter().enumerate().any(|(i, c)| {
                let Some(c) = c else { return false };
                match &c.kind {
                    Kind::Unpaired => c.ready.read,
                    Kind::Paired {
                        partner,
                        out,
                        read_eof,
                        ..
                    } => {
                        let to_me = !out.is_empty() && c.ready.write;
                        let from_me =
                            !*read_eof && c.ready.read && self.partner_has_room(*partner, i);
                        to_me || from_me
                    }
                }
            })
    }

    fn partner_has_room(&self, partner: usize, me: usize) -> bool {
        match self.conns.get(partner) {
            Some(Some(RConn {
                kind: Kind::Paired {
                    out, partner: p, ..
                },
                ..
            })) if *p == me => out.has_room(),
            _ => false,
        }
    }

    // ----- accepting -------------------------------------------------------

    fn accept(&mut self, registry: &Registry, now: Instant) {
        if self.paused_until.is_some_and(|t| now < t) {
            return;
        }
        self.paused_until = None;
        for _ in 0..ACCEPTS_PER_TURN {
            if !self.readable {
                return;
            }
            let (sock, addr) = match self.listener.accept() {
                Ok(pair) => pair,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.readable = false;
                    return;
                }
                Err(e) if net::is_transient_accept_error(&e) => continue,
                Err(e) => {
                    // Out of descriptors (or worse): pause, and let the
                    // backlog hold the connections meanwhile.
                    self.paused_until = Some(now + ACCEPT_PAUSE);
                    if !net::is_resource_exhaustion(&e) {
                        self.readable = false;
                    }
                    return;
                }
            };
            self.admit(registry, sock, addr, now);
        }
    }

    fn admit(&mut self, registry: &Registry, mut sock: TcpStream, addr: SocketAddr, now: Instant) {
        let slot = match self.conns.iter().position(Option::is_none) {
            Some(i) => i,
            None => {
                self.conns.push(None);
                self.conns.len() - 1
            }
        };
        let _ = sock.set_nodelay(true);
        let _ = socket2::SockRef::from(&sock).set_keepalive(true);
        if self.core.accept(id_of(slot), net::source_key(addr), now) {
            let interest = Interest::READABLE | Interest::WRITABLE;
            if registry
                .register(&mut sock, Token(FIRST_CONN + slot), interest)
                .is_err()
            {
                self.core.closed(id_of(slot), now);
                return;
            }
        }
        // Refused ones are in the slab just long enough for the action.
        self.conns[slot] = Some(RConn {
            sock,
            ready: Readiness::fresh(),
            kind: Kind::Unpaired,
        });
    }

    // ----- before pairing --------------------------------------------------

    fn read_unpaired(&mut self, now: Instant) {
        for (i, slot) in self.conns.iter_mut().enumerate() {
            let Some(c) = slot else { continue };
            if !matches!(c.kind, Kind::Unpaired) {
                continue;
            }
            // A hello is at most 104 bytes; a little more shows impatience.
            let mut buf = [0u8; 256];
            while c.ready.read {
                match c.sock.read(&mut buf) {
                    Ok(0) => {
                        c.ready.read = false;
                        self.core.closed(id_of(i), now);
                        break;
                    }
                    Ok(n) => {
                        c.ready.after_read(n, buf.len());
                        self.core.received(id_of(i), &buf[..n], now);
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => c.ready.read = false,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        c.ready.read = false;
                        self.core.closed(id_of(i), now);
                    }
                }
            }
        }
    }

    // ----- what the core decided -------------------------------------------

    fn actions(&mut self, registry: &Registry, now: Instant) {
        while let Some(action) = self.core.poll_action() {
            match action {
                Action::Refuse { conn, line } => {
                    if let Some(mut c) = self.take(registry, conn.0) {
                        refuse(&mut c.sock, &line);
                    }
                }
                Action::Close(conn) => {
                    self.take(registry, conn.0);
                }
                Action::Pair(a, b) => {
                    let cap = self.core.limits().buffer;
                    for (me, partner) in [(a.0, b.0), (b.0, a.0)] {
                        if let Some(Some(c)) = self.conns.get_mut(me) {
                            c.kind = Kind::Paired {
                                partner,
                                out: Channel::new(cap, crate::protocol::transit::OK),
                                read_eof: false,
                                write_shut: false,
                                backlog: false,
                                moved: 0,
                            };
                            c.ready.read = true;
                        }
                    }
                    self.copy_pair(a.0, b.0, now);
                }
                Action::EndPair(a, b) => {
                    for slot in [a.0, b.0] {
                        if let Some(mut c) = self.take(registry, slot) {
                            if let Kind::Paired { out, .. } = &mut c.kind {
                                // One last try at what is buffered.
                                let _ = out.drain(&mut c.sock);
                            }
                        }
                    }
                }
            }
        }
    }

    fn take(&mut self, registry: &Registry, slot: usize) -> Option<RConn> {
        let mut c = self.conns.get_mut(slot)?.take()?;
        let _ = registry.deregister(&mut c.sock);
        Some(c)
    }

    // ----- copying ---------------------------------------------------------

    fn copy_pairs(&mut self, now: Instant) {
        for i in 0..self.conns.len() {
            let partner = match &self.conns[i] {
                Some(RConn {
                    kind: Kind::Paired { partner, .. },
                    ..
                }) if *partner > i => *partner,
                _ => continue,
            };
            self.copy_pair(i, partner, now);
        }
    }

    /// Moves what it can both ways between `a` and `b`, forwards EOFs, and
    /// tells the core about the traffic or the end of the pair.
    fn copy_pair(&mut self, a: usize, b: usize, now: Instant) {
        let (Some(mut ca), Some(mut cb)) = (
            self.conns.get_mut(a).and_then(Option::take),
            self.conns.get_mut(b).and_then(Option::take),
        ) else {
            return;
        };
        let r1 = copy(&mut ca, &mut cb);
        let r2 = copy(&mut cb, &mut ca);
        let failed = r1.is_err() || r2.is_err();
        let wrote = matches!(r1, Ok(true)) || matches!(r2, Ok(true));
        let done = finished(&ca) && finished(&cb);
        let (ma, mb) = (moved(&ca), moved(&cb));
        let backlog = has_backlog(&ca) || has_backlog(&cb);
        let report = wrote || backlog != reported_backlog(&ca);
        set_reported_backlog(&mut ca, backlog);
        self.conns[a] = Some(ca);
        self.conns[b] = Some(cb);
        if failed || done {
            let how = if failed {
                PairEnd::Failed
            } else {
                PairEnd::Done
            };
            // Both sockets close as they leave the slab: a FIN each, after
            // what the kernel still holds for them.
            self.conns[a] = None;
            self.conns[b] = None;
            self.core.pair_ended(id_of(a), id_of(b), how, ma + mb, now);
            return;
        }
        if report {
            self.core.traffic(id_of(a), wrote, backlog, now);
        }
    }
}

/// Copies from `src` into `dst`: flushes what waits for `dst`, refills it
/// from `src`, and forwards `src`'s EOF. Ok(true) if bytes were written.
fn copy(src: &mut RConn, dst: &mut RConn) -> io::Result<bool> {
    let (
        Kind::Paired {
            read_eof: src_eof, ..
        },
        Kind::Paired {
            out,
            write_shut,
            moved,
            ..
        },
    ) = (&mut src.kind, &mut dst.kind)
    else {
        return Ok(false);
    };
    let mut wrote = false;
    for _ in 0..COPIES_PER_TURN {
        let mut progressed = false;
        if !out.is_empty() && dst.ready.write {
            match out.drain(&mut dst.sock) {
                Ok(n) => {
                    *moved += n as u64;
                    wrote |= n > 0;
                    progressed = n > 0;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => dst.ready.write = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => progressed = true,
                Err(e) => return Err(e),
            }
        }
        if !*src_eof && src.ready.read && out.has_room() {
            match out.fill(&mut src.sock) {
                Ok(Fill::Eof) => *src_eof = true,
                // A short read is not taken as "empty": a pipe may take
                // less than the socket holds. Read on until it says so.
                Ok(Fill::Moved(_)) => progressed = true,
                Ok(Fill::WouldBlock) => src.ready.read = false,
                Ok(Fill::Full) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => progressed = true,
                Err(e) => return Err(e),
            }
        }
        if !progressed {
            break;
        }
    }
    if *src_eof && out.is_empty() && !*write_shut {
        // Forward the half-close, after everything before it.
        let _ = dst.sock.shutdown(Shutdown::Write);
        *write_shut = true;
    }
    Ok(wrote)
}

/// Both directions of this side are over: its peer's FIN is in and the
/// partner's FIN was forwarded to it.
fn finished(c: &RConn) -> bool {
    matches!(
        c.kind,
        Kind::Paired {
            read_eof: true,
            write_shut: true,
            ..
        }
    )
}

fn has_backlog(c: &RConn) -> bool {
    matches!(&c.kind, Kind::Paired { out, .. } if !out.is_empty())
}

fn moved(c: &RConn) -> u64 {
    match c.kind {
        Kind::Paired { moved, .. } => moved,
        Kind::Unpaired => 0,
    }
}

fn reported_backlog(c: &RConn) -> bool {
    matches!(c.kind, Kind::Paired { backlog: true, .. })
}

fn set_reported_backlog(c: &mut RConn, value: bool) {
    if let Kind::Paired { backlog, .. } = &mut c.kind {
        *backlog = value;
    }
}

/// Says why, best effort, and closes without a reset: what the stranger
/// sent is read first, since closing over unread bytes sends an RST that
/// can overtake our line.
fn refuse(sock: &mut TcpStream, line: &[u8]) {
    let _ = sock.write(line);
    let _ = sock.shutdown(Shutdown::Write);
    let mut scratch = [0u8; 4096];
    for _ in 0..16 {
        match sock.read(&mut scratch) {
            Ok(n) if n > 0 => {}
            _ => break,
        }
    }
}
