//! Runs one room: the front-end, the [`Session`], and the connections the
//! session asks for or is offered. It carries out the session's
//! [`Action`]s and turns its [`Event`]s into notices; it decides nothing
//! about the room itself.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};

use super::config::{Endpoint, PeerConfig};
use super::conn::{Conn, ConnState, RelayStep};
use super::files::Files;
use super::portmap::{self, PortMap};
use super::rendezvous::{Phase, RelayClient};
use super::user::{Notice, UserInput, UserSide};
use super::{net, Reactor, SystemRng, FIRST_CONN, LISTENER, PORTMAP, USER_TOKENS, WAKER};
use crate::error::{describe_io, Error, Signal};
use crate::names::display_addr;
use crate::progress::Progress;
use crate::protocol::{handshake, Role};
use crate::reach::Reach;
use crate::session::reconnect::{FIRST_BACKOFF, MAX_BACKOFF};
use crate::session::{
    Action, ConnectFailure, Event, LeaveReason, LinkId, RoomSettings, Security, Session,
    SessionConfig, Status,
};

/// How long accepting pauses when the process is out of file descriptors.
const ACCEPT_PAUSE: Duration = Duration::from_millis(250);
/// Connections accepted per turn, so a flood cannot starve the room.
const ACCEPTS_PER_TURN: usize = 64;
/// Acknowledged bytes of ours that count as a sign of life: one full
/// record, far more than the heartbeats of an idle room.
const ACKED_SIGN_OF_LIFE: u64 = 16 * 1024;
/// A dial with no answer after this says that it is still connecting.
const SLOW_CONNECT: Duration = Duration::from_secs(1);

/// Who ended a room that ended well.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// We left (`/quit`, Ctrl-D at the prompt).
    ByUs,
    /// The peer left, or both sides were done.
    Otherwise,
}

/// Runs the room described by `cfg` with `ui` as the user's side. `failed`
/// is set to the failed attempts to join so far, counting those of earlier
/// rooms (`cfg.failed_before`), so `--keep` can hold one budget for all.
pub fn run(
    reactor: &mut Reactor,
    cfg: &PeerConfig,
    ui: &mut dyn UserSide,
    failed: &mut u32,
) -> Result<Ended, Error> {
    let session = Session::new(
        SessionConfig {
            security: cfg.security.clone(),
            room: RoomSettings {
                role: cfg.role(),
                name: cfg.name.clone(),
                idle_timeout: cfg.idle_timeout,
                handshake_timeout: cfg.handshake_timeout,
                tries: cfg.tries(),
                failed_before: cfg.failed_before,
                retry_busy: match cfg.endpoint {
                    Endpoint::Dial { retry, .. } => retry,
                    _ => None,
                },
                output_is_data: ui.output_is_data(),
                resume: cfg.resume,
                resume_buffer: cfg.resume_buffer,
                input_rewindable: ui.input_rewindable(),
                files_strict: cfg.files_strict(),
            },
        },
        Box::new(SystemRng::new()?),
    );
    let mut peer = Peer {
        session,
        conns: Vec::new(),
        listener: None,
        dialer: None,
        relay: None,
        portmap: None,
        interrupts_seen: 0,
        relay_held: false,
        busy_announced: false,
        peer_name: None,
        input_open: true,
        we_left: false,
        progress: cfg
            .progress
            .then(|| Progress::new(ui.input_len(), ui.progress_every())),
        files: Files::new(cfg.files.clone(), reactor.waker()),
        files_busy: false,
        cfg,
    };
    // The files of `--send`, offered as the room opens; one that cannot be
    // opened now is a usage error before anything connects.
    for path in &cfg.send {
        peer.files
            .offer(path, &mut peer.session, ui, Instant::now())?;
    }
    peer.files.sent_from_args = !cfg.send.is_empty();
    if let Security::Plain = cfg.security {
        ui.notice(Notice::PlainWarning);
    }
    match &cfg.endpoint {
        Endpoint::Listen { bind, port, .. } => {
            let mut sock = net::listen(*bind, *port)?;
            let local = sock
                .local_addr()
                .map_err(|e| Error::Connect(format!("cannot listen: {}", describe_io(&e))))?;
            reactor
                .registry()
                .register(&mut sock, LISTENER, Interest::READABLE)
                .map_err(super::loop_error)?;
            ui.notice(Notice::Listening {
                local,
                port_chosen: *port == 0,
            });
            let reach = Reach::new(local, &net::interface_addrs());
            let code = match &cfg.security {
                Security::Code(code) => Some(code),
                _ => None,
            };
            if let Some(code) = code {
                // No address another machine could dial: the command is for
                // this one, as the listener's other lines say without a code.
                let (command, only_here) = match reach.command(" --code") {
                    Some(command) => (command, false),
                    None => {
                        let host = match local.ip() {
                            ip if ip.is_loopback() => ip.to_string(),
                            _ => "localhost".to_string(),
                        };
                        (format!("p2pchat dial {host} {} --code", local.port()), true)
                    }
                };
                ui.notice(Notice::Code {
                    code: &code.to_string(),
                    command: &command,
                    only_here,
                });
            }
            ui.notice(Notice::HowToReach {
                local,
                reach: &reach,
                with_command: code.is_none(),
            });
            peer.listener = Some(Listener {
                sock,
                readable: true,
                paused_until: None,
            });
            if let Some(map) = &cfg.map {
                // After the lines above: the mapped command is the last
                // `p2pchat dial` line the listener prints.
                let suffix = if code.is_some() { " --code" } else { "" };
                let lp = portmap::Loop {
                    registry: reactor.registry(),
                    token: PORTMAP,
                    waker: reactor.waker(),
                };
                peer.portmap = portmap::start(lp, local.port(), map, suffix, ui);
            }
        }
        Endpoint::Relay {
            host,
            port,
            role,
            wait,
        } => {
            let Security::Code(code) = &cfg.security else {
                return Err(Error::Usage("--relay needs a one-time code".into()));
            };
            let rc = RelayClient::new(host, *port, *role, code.room(), *wait);
            if *role == Role::Listener {
                let command = format!("p2pchat dial --relay {}", rc.shown);
                ui.notice(Notice::Code {
                    code: &code.to_string(),
                    command: &command,
                    only_here: false,
                });
            }
            peer.relay = Some(rc);
        }
        Endpoint::Dial { host, port, retry } => {
            peer.dialer = Some(Dialer::new(host, *port, *retry, false, Instant::now()));
        }
    }
    let result = peer
        .run(reactor, ui)
        .map_err(|e| name_the_listener(e, &cfg.endpoint));
    // Every way out of the room comes through here: the peer leaving, a
    // signal, an error. No mapping outlives it.
    if let Some(pm) = peer.portmap.take() {
        pm.remove(reactor);
    }
    *failed = peer.session.failed_attempts().max(cfg.failed_before);
    if let Some(p) = peer.progress.as_ref().filter(|p| p.moved()) {
        ui.progress(&p.summary(Instant::now()), true);
    }
    result
}

struct Listener {
    sock: TcpListener,
    readable: bool,
    /// Accepting pauses until then after `EMFILE`.
    paused_until: Option<Instant>,
}

/// Dialing as a state: address by address, then backoff with `--retry`.
/// A redial of a lost room makes one round of the addresses and reports
/// its failure to the session, which decides when to try again.
struct Dialer {
    host: String,
    port: u16,
    retry: Option<Duration>,
    give_up: Instant,
    addrs: Vec<SocketAddr>,
    next: usize,
    backoff: Duration,
    /// Waiting out a backoff until then.
    wait_until: Option<Instant>,
    /// The last address tried and why it failed.
    last: Option<(SocketAddr, io::Error)>,
    /// Why we are waiting out a backoff, for the waiting line.
    waiting_why: Option<String>,
    /// The waiting line was shown.
    announced: bool,
    /// Reconnecting a room that lost its connection.
    redial: bool,
    /// When to say `connecting to HOST:PORT…` if no connect has been
    /// answered by then (the first dial only; None once said).
    slow_at: Option<Instant>,
}

/// Says once that the dialer is waiting to try again, and why.
fn announce(d: &mut Dialer, ui: &mut dyn UserSide) {
    if d.waiting_why.is_some() && !d.announced {
        d.announced = true;
        ui.notice(Notice::Waiting {
            line: &d.waiting_line(),
        });
    }
}

impl Dialer {
    /// Dials `host:port`; with `retry`, keeps trying that long. A redial
    /// (resume) tries each address once; the session says when to try
    /// again, and when to stop.
    fn new(host: &str, port: u16, retry: Option<Duration>, redial: bool, now: Instant) -> Dialer {
        Dialer {
            host: host.to_string(),
            port,
            retry,
            give_up: now + retry.unwrap_or(Duration::ZERO),
            addrs: Vec::new(),
            next: 0,
            backoff: FIRST_BACKOFF,
            wait_until: None,
            last: None,
            waiting_why: None,
            announced: redial,
            redial,
            slow_at: (!redial).then_some(now + SLOW_CONNECT),
        }
    }

    /// Waits out the next backoff step, or fails with `error` when the
    /// retry time would run out first.
    fn back_off(&mut self, now: Instant, why: String, error: Error) -> Result<bool, Error> {
        if now + self.backoff > self.give_up {
            return Err(match (error, self.retry) {
                (Error::Connect(m), Some(retry)) => Error::Connect(format!(
                    "{m} (gave up after retrying for {} s)",
                    retry.as_secs_f64()
                )),
                (error, _) => error,
            });
        }
        self.wait_until = Some(now + self.backoff);
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        self.waiting_why = Some(why);
        Ok(false)
    }

    /// `waiting for 192.0.2.7:51423… (connection refused; retrying for 30 s)`
    fn waiting_line(&self) -> String {
        let target = crate::names::host_port(&self.host, self.port);
        let why = self.waiting_why.as_deref().unwrap_or("not there yet");
        let secs = self.retry.unwrap_or(Duration::ZERO).as_secs_f64();
        format!("waiting for {target}\u{2026} ({why}; retrying for {secs} s)")
    }
}

struct Peer<'a> {
    session: Session,
    /// The slab: connection `i` has token `FIRST_CONN + i`.
    conns: Vec<Option<Conn>>,
    listener: Option<Listener>,
    /// Some while we are still trying to connect.
    dialer: Option<Dialer>,
    /// Meeting through a transit relay.
    relay: Option<RelayClient>,
    /// `--map`: the router's port mapping.
    portmap: Option<PortMap>,
    interrupts_seen: usize,
    /// A return to the relay failed: the next waits for the session's
    /// [`Action::Redial`].
    relay_held: bool,
    /// The dialer said that the listener is busy (it says so once).
    busy_announced: bool,
    /// The peer's name once it joined (encrypted modes).
    peer_name: Option<String>,
    input_open: bool,
    /// We left at the prompt.
    we_left: bool,
    /// Counting for `--progress`.
    progress: Option<Progress>,
    /// The room's files on this machine.
    files: Files,
    /// File bytes are ready to move now: the loop does not sleep.
    files_busy: bool,
    cfg: &'a PeerConfig,
}

fn token_of(link: LinkId) -> Token {
    Token(link.0)
}

impl Peer<'_> {
    fn run(&mut self, reactor: &mut Reactor, ui: &mut dyn UserSide) -> Result<Ended, Error> {
        loop {
            let now = Instant::now();
            self.check_interrupts(reactor, ui, now);
            if let Some(pm) = self.portmap.as_mut() {
                pm.turn(now, ui);
            }
            self.accept(reactor.registry(), now);
            self.dial(reactor.registry(), ui, now)?;
            self.meet(reactor.registry(), ui, now)?;
            self.user_to_session(ui, reactor.registry(), now)?;
            for conn in self.conns.iter_mut().flatten() {
                conn.pump(&mut self.session, self.cfg.pace_min_rtt, now);
            }
            self.files_turn(ui, now);
            // The join line before the peer's first bytes, its leaving
            // after its last (the session holds those until then).
            self.events(ui);
            self.session_to_user(ui, reactor.registry(), now)?;
            self.events(ui);
            self.actions(reactor.registry());
            self.linger(reactor.registry(), now);

            if let Status::Ended(result) = self.session.status() {
                if self.input_open {
                    ui.close_input(reactor.registry());
                    self.input_open = false;
                }
                if result.is_ok() && ui.output_open() {
                    ui.close_output(reactor.registry());
                }
                if !self.any_lingering() {
                    return result.map(|()| {
                        if self.we_left {
                            Ended::ByUs
                        } else {
                            Ended::Otherwise
                        }
                    });
                }
            }

            let timeout = if self.busy(ui) {
                Some(Duration::ZERO)
            } else {
                self.next_deadline()
                    .map(|t| t.saturating_duration_since(now))
            };
            let (conns, listener) = (&mut self.conns, &mut self.listener);
            let portmap = &mut self.portmap;
            reactor.wait(timeout, |ev| match ev.token() {
                LISTENER => {
                    if let Some(l) = listener.as_mut() {
                        l.readable = true;
                    }
                }
                PORTMAP => {
                    if let Some(pm) = portmap.as_mut() {
                        pm.set_readable();
                    }
                }
                WAKER => ui.on_wake(),
                Token(t) if t >= FIRST_CONN => {
                    if let Some(Some(c)) = conns.get_mut(t - FIRST_CONN) {
                        c.ready.update(ev);
                    }
                }
                token => ui.on_ready(token, ev.is_read_closed() || ev.is_error()),
            })?;
            let now = Instant::now();
            if let Some(line) = self.progress.as_mut().and_then(|p| p.report(now)) {
                ui.progress(&line, false);
            }
            if self.session.poll_timeout().is_some_and(|t| now >= t) {
                self.transport_progress(now);
                self.session.handle_timeout(now);
            }
        }
    }

    /// Tells the session about connections whose peer's TCP has been
    /// acknowledging our data: a sign of life the idle timeout counts.
    /// The threshold is above what our heartbeats alone send, so a frozen
    /// peer whose kernel still acks our PINGs is not taken for alive.
    fn transport_progress(&mut self, now: Instant) {
        for c in self.conns.iter_mut().flatten() {
            if let ConnState::Open = c.state {
                if c.acked_progress(ACKED_SIGN_OF_LIFE) {
                    self.session.transport_progress(c.link, now);
                }
            }
        }
    }

    fn check_interrupts(&mut self, reactor: &Reactor, ui: &dyn UserSide, now: Instant) {
        let n = reactor.interrupts().count();
        while self.interrupts_seen < n {
            self.interrupts_seen += 1;
            let signal = reactor.interrupts().last();
            if signal == Signal::Hup && !ui.output_is_data() {
                // The chat window was closed: that is leaving, our side
                // of the conversation is complete.
                self.session.input_ended(now);
            }
            self.session.interrupted(signal, now);
        }
    }

    fn busy(&self, ui: &dyn UserSide) -> bool {
        let s = &self.session;
        // A resume asked for our input again: the next turn rewinds it.
        s.rewind_needed().is_some()
            || (ui.input_ready() && s.can_take_input())
            || (ui.output_ready() && !s.output().is_empty())
            || self.conns.iter().flatten().any(|c| c.busy(s))
            || self
                .listener
                .as_ref()
                .is_some_and(|l| l.readable && l.paused_until.is_none())
            || self.must_connect()
            || self.portmap.as_ref().is_some_and(PortMap::busy)
            || self.files_busy
    }

    /// A dial or a relay connection is due and none is in flight (a redial
    /// was just asked for): the next turn makes it.
    fn must_connect(&self) -> bool {
        let connecting = self
            .conns
            .iter()
            .flatten()
            .any(|c| matches!(c.state, ConnState::Connecting { .. }));
        let dial_due = self.dialer.as_ref().is_some_and(|d| d.wait_until.is_none());
        let relay_due = !self.relay_held
            && self
                .relay
                .as_ref()
                .is_some_and(|r| matches!(r.phase, Phase::Idle));
        // The relay's partner left before the room was up: go back now,
        // not after some deadline that may never come.
        let handed_back = self.relay.as_ref().is_some_and(|r| self.handed_back(r));
        handed_back
            || (!connecting
                && (dial_due || relay_due)
                && !matches!(self.session.status(), Status::Ended(_)))
    }

    /// A listener's connection from the relay is gone before the room
    /// was up (or resumed): it goes back to the relay.
    fn handed_back(&self, rc: &RelayClient) -> bool {
        let Phase::Handed(link) = rc.phase else {
            return false;
        };
        let gone = link
            .0
            .checked_sub(FIRST_CONN)
            .and_then(|i| self.conns.get(i))
            .is_none_or(Option::is_none);
        gone && self.cfg.role() == Role::Listener
            && !self.session.is_established()
            && !matches!(self.session.status(), Status::Ended(_))
    }

    fn next_deadline(&self) -> Option<Instant> {
        let conns = self.conns.iter().flatten().filter_map(Conn::deadline);
        let paced = (self.conns.iter().flatten()).filter_map(|c| c.pace_deadline(&self.session));
        let dial = self.dialer.as_ref().and_then(|d| d.wait_until);
        let slow = self.dialer.as_ref().and_then(|d| d.slow_at);
        let relay = self.relay.as_ref().and_then(RelayClient::deadline);
        let pause = self.listener.as_ref().and_then(|l| l.paused_until);
        let progress = self.progress.as_ref().and_then(Progress::deadline);
        let portmap = self.portmap.as_ref().and_then(PortMap::deadline);
        let files = self.files.deadline();
        conns
            .chain(paced)
            .chain(files)
            .chain(self.session.poll_timeout())
            .chain(dial)
            .chain(slow)
            .chain(relay)
            .chain(pause)
            .chain(progress)
            .chain(portmap)
            .min()
    }

    fn any_lingering(&self) -> bool {
        self.conns
            .iter()
            .flatten()
            .any(|c| matches!(c.state, ConnState::Lingering { .. }))
    }

    // ----- the slab --------------------------------------------------------

    fn insert(
        &mut self,
        registry: &Registry,
        mut sock: TcpStream,
        peer: SocketAddr,
        state: ConnState,
    ) -> io::Result<LinkId> {
        let i = match self.conns.iter().position(Option::is_none) {
            Some(i) => i,
            None => {
                self.conns.push(None);
                self.conns.len() - 1
            }
        };
        let link = LinkId(FIRST_CONN + i);
        registry.register(
            &mut sock,
            token_of(link),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        self.conns[i] = Some(Conn::new(sock, peer, link, state));
        Ok(link)
    }

    fn conn(&mut self, link: LinkId) -> Option<&mut Conn> {
        self.conns
            .get_mut(link.0.checked_sub(FIRST_CONN)?)
            .and_then(Option::as_mut)
    }

    /// Moves bytes between one connection and the session.
    fn pump_one(&mut self, link: LinkId, now: Instant) {
        let slot = link
            .0
            .checked_sub(FIRST_CONN)
            .and_then(|i| self.conns.get_mut(i));
        if let Some(Some(c)) = slot {
            c.pump(&mut self.session, self.cfg.pace_min_rtt, now);
        }
    }

    fn remove(&mut self, registry: &Registry, link: LinkId) -> Option<Conn> {
        let slot = self.conns.get_mut(link.0.checked_sub(FIRST_CONN)?)?;
        let mut conn = slot.take()?;
        let _ = registry.deregister(&mut conn.sock);
        Some(conn)
    }

    // ----- accepting and dialing -------------------------------------------

    /// Accepts until `WouldBlock` (bounded per turn); the session admits or
    /// turns away each connection.
    fn accept(&mut self, registry: &Registry, now: Instant) {
        let Some(l) = self.listener.as_mut() else {
            return;
        };
        if l.paused_until.is_some_and(|t| now < t) {
            return;
        }
        l.paused_until = None;
        for _ in 0..ACCEPTS_PER_TURN {
            let Some(l) = self.listener.as_mut() else {
                return;
            };
            if !l.readable {
                return;
            }
            let (sock, addr) = match l.sock.accept() {
                Ok(pair) => pair,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    l.readable = false;
                    return;
                }
                Err(e) if net::is_transient_accept_error(&e) => continue,
                Err(e) => {
                    // Out of descriptors: a silent stranger makes way, else
                    // pause rather than spin or exit; the backlog keeps the
                    // connections waiting.
                    if net::is_resource_exhaustion(&e) && self.session.shed_load() {
                        self.actions(registry);
                        continue;
                    }
                    if let Some(l) = self.listener.as_mut() {
                        l.paused_until = Some(now + ACCEPT_PAUSE);
                        if !net::is_resource_exhaustion(&e) {
                            l.readable = false;
                        }
                    }
                    return;
                }
            };
            net::tune(&sock, self.cfg.idle_timeout);
            match self.insert(registry, sock, addr, ConnState::Open) {
                Ok(link) => {
                    self.session.accept(link, source_group(addr), now);
                    // Read what already arrived before accepting the next:
                    // a real dialer's first flight is usually there, and a
                    // connection that has spoken is never made to give way.
                    self.pump_one(link, now);
                }
                Err(_) => continue,
            }
            // Turned away at once: close before accepting the next.
            self.actions(registry);
        }
    }

    /// Moves the dialer on: start a connect, check one in flight, or wait.
    fn dial(
        &mut self,
        registry: &Registry,
        ui: &mut dyn UserSide,
        now: Instant,
    ) -> Result<(), Error> {
        let Some(mut d) = self.dialer.take() else {
            return Ok(());
        };
        if let Status::Ended(_) = self.session.status() {
            return Ok(());
        }
        // A redial to a busy listener says so (once) as it begins; a wait
        // set by a failed connect, as soon as it begins.
        announce(&mut d, ui);
        if !self.dial_step(&mut d, registry, now)? {
            let connecting = self
                .conns
                .iter()
                .flatten()
                .any(|c| matches!(c.state, ConnState::Connecting { .. }));
            if d.slow_at.is_some_and(|t| now >= t) {
                // Said once, and only of a connect still unanswered (a
                // refused one has its own waiting line).
                d.slow_at = None;
                if connecting {
                    ui.notice(Notice::Connecting {
                        target: &crate::names::host_port(&d.host, d.port),
                    });
                }
            }
            announce(&mut d, ui);
            self.dialer = Some(d);
        }
        Ok(())
    }

    /// Returns Ok(true) once done: connected, or (a redial) its failure
    /// told to the session.
    fn dial_step(
        &mut self,
        d: &mut Dialer,
        registry: &Registry,
        now: Instant,
    ) -> Result<bool, Error> {
        let connecting = self
            .conns
            .iter_mut()
            .flatten()
            .find(|c| matches!(c.state, ConnState::Connecting { .. }));
        if let Some(c) = connecting {
            let ConnState::Connecting { deadline } = c.state else {
                return Ok(false);
            };
            let result = match c.connect_result() {
                Some(r) => r,
                None if now >= deadline => Err(io::Error::from(io::ErrorKind::TimedOut)),
                None => return Ok(false),
            };
            let (link, addr) = (c.link, c.peer);
            if result.is_ok() {
                c.state = ConnState::Open;
                c.ready.connected();
                net::tune(&c.sock, self.cfg.idle_timeout);
                self.session.connected(link, now);
                return Ok(true);
            }
            self.remove(registry, link);
            d.last = result.err().map(|e| (addr, e));
            d.next += 1;
        }
        if d.wait_until.is_some_and(|t| now < t) {
            return Ok(false);
        }
        if d.wait_until.take().is_some() || d.addrs.is_empty() {
            // The first round, or a new one: the name may resolve
            // differently by now, or at last.
            match net::resolve(&d.host, d.port) {
                Ok(addrs) => {
                    d.addrs = addrs;
                    d.next = 0;
                }
                Err(_) if d.redial => {
                    self.session.connect_failed(ConnectFailure::Failed, now);
                    return Ok(true);
                }
                Err(e) => return d.back_off(now, "the name does not resolve yet".into(), e),
            }
        }
        while let Some(&addr) = d.addrs.get(d.next) {
            let mut deadline = now + self.cfg.handshake_timeout;
            if d.retry.is_some() && !d.redial {
                // `--retry 5` gives up after 5 s, even while a connect to a
                // host that drops packets is still unanswered.
                deadline = deadline.min(d.give_up.max(now));
            }
            let started = TcpStream::connect(addr).and_then(|sock| {
                self.insert(registry, sock, addr, ConnState::Connecting { deadline })
            });
            match started {
                Ok(_) => return Ok(false),
                Err(e) => {
                    d.last = Some((addr, e));
                    d.next += 1;
                }
            }
        }
        let (addr, e) = match d.last.take() {
            Some(last) => last,
            None => return Err(Error::Connect(format!("cannot connect to {}", d.host))),
        };
        let error = Error::Connect(format!(
            "cannot connect to {}: {}",
            display_addr(addr),
            describe_io(&e)
        ));
        if d.redial {
            // The session decides when to try again, and when to stop.
            let failure = if !net::is_retryable(&e) {
                ConnectFailure::Fatal(error)
            } else if e.kind() == io::ErrorKind::ConnectionRefused {
                ConnectFailure::Refused {
                    target: display_addr(addr),
                }
            } else {
                ConnectFailure::Failed
            };
            self.session.connect_failed(failure, now);
            return Ok(true);
        }
        if !net::is_retryable(&e) {
            return Err(error);
        }
        d.back_off(now, describe_io(&e), error)
    }

    /// Moves the meeting at the relay on.
    fn meet(
        &mut self,
        registry: &Registry,
        ui: &mut dyn UserSide,
        now: Instant,
    ) -> Result<(), Error> {
        if self.relay_held {
            return Ok(());
        }
        let Some(mut rc) = self.relay.take() else {
            return Ok(());
        };
        let mut result = self.meet_step(&mut rc, registry, ui, now);
        if result.is_err() && self.session.is_down() {
            // The relay is out of reach too while the path is down: the
            // session says when to try again, until its grace period says
            // stop.
            result = Ok(());
            rc.phase = Phase::Idle;
            self.relay_held = true;
            self.session.connect_failed(ConnectFailure::Failed, now);
        }
        self.relay = Some(rc);
        result
    }

    fn meet_step(
        &mut self,
        rc: &mut RelayClient,
        registry: &Registry,
        ui: &mut dyn UserSide,
        now: Instant,
    ) -> Result<(), Error> {
        if let Status::Ended(_) = self.session.status() {
            return Ok(());
        }
        let role = self.cfg.role();
        loop {
            match rc.phase {
                Phase::Handed(_) => {
                    // The relay paired us with someone who left before the
                    // room was up, without costing the code: go back.
                    if self.handed_back(rc) {
                        rc.phase = Phase::Idle;
                        ui.notice(Notice::Waiting {
                            line: &format!(
                                "the peer the relay paired us with left before the handshake; \
                                 waiting in room {} again",
                                rc.room
                            ),
                        });
                        continue;
                    }
                    return Ok(());
                }
                Phase::Idle => {
                    let Some(addr) = rc.next_addr()? else {
                        return Err(rc.unreachable());
                    };
                    let deadline = now + self.cfg.handshake_timeout;
                    let started = TcpStream::connect(addr).and_then(|sock| {
                        self.insert(registry, sock, addr, ConnState::Connecting { deadline })
                    });
                    match started {
                        Ok(link) => rc.phase = Phase::Connecting(link),
                        Err(e) => rc.connect_failed(addr, e),
                    }
                }
                Phase::Connecting(link) => {
                    let idle = self.cfg.idle_timeout;
                    let (down, resume_token) =
                        (self.session.is_down(), self.session.relay_resume_token());
                    let Some(c) = self.conn(link) else {
                        rc.phase = Phase::Idle;
                        continue;
                    };
                    let ConnState::Connecting { deadline } = c.state else {
                        return Ok(());
                    };
                    let result = match c.connect_result() {
                        Some(r) => r,
                        None if now >= deadline => Err(io::Error::from(io::ErrorKind::TimedOut)),
                        None => return Ok(()),
                    };
                    let addr = c.peer;
                    match result {
                        Ok(()) => {
                            net::tune(&c.sock, idle);
                            let resume_token = resume_token.filter(|_| down);
                            c.state = ConnState::AtRelay {
                                unsent: rc.hello(resume_token),
                                reply: Vec::new(),
                            };
                            c.ready.connected();
                            rc.connected(link, now);
                            if !rc.announced {
                                rc.announced = true;
                                ui.notice(Notice::AtRelay {
                                    room: &rc.room,
                                    relay: &rc.shown,
                                });
                            }
                        }
                        Err(e) => {
                            self.remove(registry, link);
                            rc.connect_failed(addr, e);
                        }
                    }
                }
                Phase::Waiting { link, since } => {
                    if rc.deadline().is_some_and(|t| now >= t) {
                        return Err(rc.nobody_came());
                    }
                    let Some(c) = self.conn(link) else {
                        rc.phase = Phase::Idle;
                        continue;
                    };
                    match c.relay_step() {
                        RelayStep::Waiting => return Ok(()),
                        RelayStep::Paired(first_bytes) => {
                            c.state = ConnState::Open;
                            match role {
                                Role::Listener => self.session.accept_paired(link, now),
                                Role::Dialer => self.session.connected(link, now),
                            }
                            self.feed(link, &first_bytes, now)?;
                            self.pump_one(link, now);
                            rc.phase = Phase::Handed(link);
                            return Ok(());
                        }
                        RelayStep::Refused(why) => {
                            self.remove(registry, link);
                            rc.ended_before_pairing(Some(why), None, since, now)?;
                        }
                        RelayStep::Closed(e) => {
                            self.remove(registry, link);
                            rc.ended_before_pairing(None, e, since, now)?;
                        }
                    }
                }
            }
        }
    }

    /// Hands the session bytes that arrived with the relay's `ok`.
    fn feed(&mut self, link: LinkId, mut bytes: &[u8], now: Instant) -> Result<(), Error> {
        while !bytes.is_empty() {
            let buf = self.session.receive_buf(link);
            if buf.is_empty() {
                // A relay reply is at most 256 bytes; the session takes
                // far more before it stops receiving.
                return Err(Error::Lost(
                    "the peer's first bytes did not fit (internal limit)".into(),
                ));
            }
            let n = buf.len().min(bytes.len());
            buf[..n].copy_from_slice(&bytes[..n]);
            self.session.received(link, n, now);
            bytes = &bytes[n..];
        }
        Ok(())
    }

    // ----- what the session asks for ---------------------------------------

    fn actions(&mut self, registry: &Registry) {
        while let Some(action) = self.session.poll_action() {
            match action {
                Action::StopAccepting => {
                    if let Some(mut l) = self.listener.take() {
                        let _ = registry.deregister(&mut l.sock);
                    }
                }
                Action::ShutdownWrite(link) => {
                    if let Some(c) = self.conn(link) {
                        c.shutdown_write();
                    }
                }
                Action::Reset(link) => {
                    if let Some(c) = self.remove(registry, link) {
                        c.set_reset_on_close();
                    }
                }
                Action::Close(link) => {
                    self.remove(registry, link);
                }
                Action::Linger { link, flush, until } => {
                    if let Some(c) = self.conn(link) {
                        c.state = ConnState::Lingering { flush, until };
                    }
                }
                Action::Redial => self.redial(),
            }
        }
    }

    /// The session asks for a new connection now (it waited out any
    /// backoff): dial again, or go back to the relay. (A listener keeps
    /// listening; its peer dials in.)
    fn redial(&mut self) {
        let now = Instant::now();
        match &self.cfg.endpoint {
            Endpoint::Dial { host, port, retry } if !self.session.is_down() => {
                // The listener was busy: dial again, saying so once; the
                // session ends the trying when --retry runs out.
                let mut d = Dialer::new(host, *port, *retry, false, now);
                d.announced = self.busy_announced;
                self.busy_announced = true;
                d.waiting_why = Some("the listener is busy".into());
                self.dialer = Some(d);
            }
            Endpoint::Dial { host, port, .. } => {
                // One round of the addresses; its outcome goes back to the
                // session.
                self.dialer = Some(Dialer::new(host, *port, None, true, now));
            }
            Endpoint::Relay { .. } => {
                self.relay_held = false;
                if let Some(rc) = self.relay.as_mut() {
                    rc.phase = Phase::Idle;
                }
            }
            Endpoint::Listen { .. } => {}
        }
    }

    fn linger(&mut self, registry: &Registry, now: Instant) {
        let done: Vec<LinkId> = self
            .conns
            .iter_mut()
            .flatten()
            .filter(|c| matches!(c.state, ConnState::Lingering { .. }))
            .filter_map(|c| c.linger(now).then_some(c.link))
            .collect();
        for link in done {
            self.remove(registry, link);
        }
    }

    fn events(&mut self, ui: &mut dyn UserSide) {
        while let Some(ev) = self.session.poll_event() {
            match ev {
                Event::Joined {
                    link,
                    name,
                    verify_code,
                    failed_attempts,
                } => {
                    let Some(peer) = self.conn(link).map(|c| c.peer) else {
                        continue;
                    };
                    let via_relay = self.relay.is_some();
                    let name = name.map(|n| tell_apart(n, &self.cfg.name, peer, via_relay));
                    self.peer_name = name.clone();
                    ui.notice(Notice::Joined {
                        peer,
                        name: name.as_deref(),
                        verify_code: verify_code.as_deref(),
                        failed_attempts,
                        authenticated_by: match self.cfg.security {
                            Security::Secret(_) => Some("shared secret"),
                            Security::Code(_) => Some("one-time code"),
                            _ => None,
                        },
                        via_relay: self.relay.as_ref().map(|r| r.shown.as_str()),
                    });
                }
                Event::FailedAttempt {
                    link,
                    why,
                    counted,
                    failed,
                    tries,
                } => {
                    if let Some(peer) = self.conn(link).map(|c| c.peer) {
                        ui.notice(Notice::FailedAttempt {
                            peer,
                            why: &why,
                            counted,
                            failed,
                            tries,
                        });
                    }
                }
                Event::PeerDone => ui.notice(Notice::PeerDone {
                    name: self.peer_name.as_deref(),
                }),
                Event::PeerLooksEncrypted => ui.notice(Notice::PeerLooksEncrypted),
                Event::ConnectionLost { why, grace } => ui.notice(Notice::ConnectionLost {
                    why: &why,
                    grace,
                    redialing: self.cfg.role() == Role::Dialer || self.relay.is_some(),
                }),
                Event::Reconnected {
                    after,
                    resent,
                    connection,
                } => ui.notice(Notice::Reconnected {
                    after,
                    resent,
                    connection,
                }),
                Event::PeerLeft => ui.notice(Notice::PeerLeft {
                    name: self.peer_name.as_deref(),
                }),
                ev @ (Event::FileOffered { .. }
                | Event::FileComplete { .. }
                | Event::FileEnded { .. }) => self.on_file_event(ev, ui),
            }
        }
    }

    fn on_file_event(&mut self, ev: Event, ui: &mut dyn UserSide) {
        let now = Instant::now();
        self.files
            .on_event(ev, self.peer_name.as_deref(), &mut self.session, ui, now);
        // `--send` at a prompt: the room is left once every file ended.
        if self.files.sent_from_args
            && ui.asks_about_files()
            && self.session.files_sent_ended()
            && !self.we_left
        {
            self.we_left = true;
            self.session.leave(LeaveReason::User, now);
        }
    }

    /// The user's file commands, then the files' bytes both ways, then
    /// the progress line.
    fn files_turn(&mut self, ui: &mut dyn UserSide, now: Instant) {
        while let Some(cmd) = ui.poll_command() {
            self.files.command(cmd, &mut self.session, ui, now);
        }
        self.files_busy = self.files.pump(&mut self.session, now);
        if ui.asks_about_files() || self.cfg.progress {
            self.files.show_progress(&self.session, ui, now);
        }
    }

    // ----- the user's side -------------------------------------------------

    fn close_input(&mut self, ui: &mut dyn UserSide, reg: &Registry) {
        if self.input_open {
            ui.close_input(reg);
            self.input_open = false;
        }
    }

    fn user_to_session(
        &mut self,
        ui: &mut dyn UserSide,
        reg: &Registry,
        now: Instant,
    ) -> Result<(), Error> {
        if let Some(at) = self.session.rewind_needed() {
            // A resume resends from the file itself: read it again there.
            ui.rewind_input(at).map_err(|e| {
                Error::Local(format!(
                    "cannot read stdin again from byte {at} to resend it: {}",
                    describe_io(&e)
                ))
            })?;
            self.input_open = true;
            if let Some(p) = self.progress.as_mut() {
                p.rewound(at);
            }
            self.session.input_rewound(now);
        }
        while self.input_open && ui.input_ready() {
            let buf = self.session.input_buf();
            if buf.is_empty() {
                break;
            }
            match ui.read_input(buf) {
                Ok(UserInput::Data(n)) => {
                    self.session.input_received(n, now);
                    if let Some(p) = self.progress.as_mut() {
                        p.sent(n, now);
                    }
                }
                Ok(UserInput::Blocked) => break,
                Ok(UserInput::End) => {
                    self.session.input_ended(now);
                    self.close_input(ui, reg);
                }
                Ok(UserInput::Leave) => {
                    // Leaving at a prompt (/quit, Ctrl-D, Ctrl-C) also ends
                    // our input: the peer knows our messages are complete.
                    self.session.input_ended(now);
                    self.session.leave(LeaveReason::User, now);
                    self.we_left = true;
                    self.close_input(ui, reg);
                }
                Err(e) => {
                    return Err(Error::Local(format!(
                        "cannot read stdin: {}",
                        describe_io(&e)
                    )))
                }
            }
        }
        // Before the room is up (not while it is down: a resume may bring
        // it back, and leaving waits for it).
        let waiting = matches!(self.session.status(), Status::Running)
            && !self.session.is_established()
            && !self.session.is_down();
        if self.input_open && waiting {
            let left = ui
                .left_before_room()
                .map_err(|e| Error::Local(format!("cannot read stdin: {}", describe_io(&e))))?;
            if left {
                self.session.input_ended(now);
                self.session.leave(LeaveReason::User, now);
                self.we_left = true;
                self.close_input(ui, reg);
            }
        }
        Ok(())
    }

    fn session_to_user(
        &mut self,
        ui: &mut dyn UserSide,
        reg: &Registry,
        now: Instant,
    ) -> Result<(), Error> {
        while ui.output_ready() && !self.session.output().is_empty() {
            match ui.write_output(self.session.output()) {
                Ok(0) => break,
                Ok(n) => {
                    self.session.output_written(n, now);
                    if let Some(p) = self.progress.as_mut() {
                        p.received(n, now);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                    // The reader of our stdout went away (`| head`): leave
                    // quietly, like any well-behaved filter.
                    ui.close_output(reg);
                    self.session.output_closed(now);
                    self.close_input(ui, reg);
                }
                Err(e) => {
                    // A full disk or a failing device: the session ends the
                    // room with our error and tells the peer why.
                    self.session.output_failed(&e, now);
                    ui.close_output(reg);
                    self.close_input(ui, reg);
                }
            }
        }
        if ui.output_open() && self.session.output_finished() {
            ui.close_output(reg);
        }
        if self.input_open && ui.input_follows_peer() && self.session.output_finished() {
            // Receiving at a terminal: the peer is done, so are we.
            self.session.input_ended(now);
            self.close_input(ui, reg);
        }
        Ok(())
    }
}

/// A dialer's error that is about the listener it reached, with the
/// address it dialed (which the session does not know) and, where the
/// listener wants a one-time code, the command that works.
fn name_the_listener(e: Error, endpoint: &Endpoint) -> Error {
    let Endpoint::Dial { host, port, .. } = endpoint else {
        return e;
    };
    let target = crate::names::host_port(host, *port);
    match e {
        Error::Connect(m) if m == handshake::TAKEN_WHY => {
            Error::Connect(format!("{target} is busy: someone else is in that room"))
        }
        Error::Handshake(m) if m == handshake::WANTS_CODE_WHY => Error::Handshake(format!(
            "{target} expects a one-time code: run p2pchat dial {host} {port} --code, \
             and type the code the listener shows"
        )),
        e => e,
    }
}

/// The source a listener's per-source caps count: an IPv4 address, or an
/// IPv6 /64, which one host or one customer usually has whole (so an
/// attacker cannot multiply itself by the addresses of its /64).
fn source_group(addr: SocketAddr) -> u128 {
    let key = net::source_key(addr);
    match addr.ip() {
        std::net::IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => key & !u128::from(u64::MAX),
        _ => key,
    }
}

/// The peer's name as we show it: when it is the same as ours (two `root`s,
/// two `alice`s), it gets the peer's address (`root@192.0.2.7`), or
/// `(peer)` through a relay, whose address says nothing about the peer.
fn tell_apart(name: String, ours: &str, peer: SocketAddr, via_relay: bool) -> String {
    if !name.eq_ignore_ascii_case(ours) {
        return name;
    }
    if via_relay {
        return format!("{name} (peer)");
    }
    format!("{name}@{}", crate::names::unmapped(peer.ip()))
}

// The front-end's tokens are lent, not shared: keep the ranges apart.
const _: () = assert!(
    USER_TOKENS.stdout.0 < FIRST_CONN
        && USER_TOKENS.stdin.0 < FIRST_CONN
        && super::SIGNALS.0 < FIRST_CONN
        && super::SIGNALS.0 != USER_TOKENS.stdin.0
        && super::SIGNALS.0 != USER_TOKENS.stdout.0
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_sources_count_per_64_and_ipv4_per_address() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert_eq!(
            source_group(a("[2001:db8:1:2:aaaa::1]:5")),
            source_group(a("[2001:db8:1:2:ffff:1:2:3]:6")),
            "one /64 is one source"
        );
        assert_ne!(
            source_group(a("[2001:db8:1:2::1]:5")),
            source_group(a("[2001:db8:1:3::1]:5"))
        );
        assert_ne!(
            source_group(a("192.0.2.1:5")),
            source_group(a("192.0.2.2:5")),
            "IPv4 counts per address"
        );
        assert_eq!(
            source_group(a("[::ffff:192.0.2.1]:5")),
            source_group(a("192.0.2.1:7"))
        );
    }
}
