//! The driver: the one place that owns `mio::Poll`, the sockets and the
//! signals. A [`Reactor`] is the poll, its waker and the interrupt count,
//! with the program's only call to `poll()` ([`Reactor::wait`]); services
//! run their loop on it: [`peer`] runs a room with a front-end.
//!
//! Connections live in a slab addressed by token; connecting, retry
//! backoff and lingering are states with deadlines, never private loops,
//! so nothing is ever waited for anywhere but in `wait`.

pub mod config;
pub mod conn;
pub mod disk_reader;
pub mod disk_writer;
pub mod files;
pub mod net;
pub mod pacing;
pub mod peer;
pub mod portmap;
pub mod readiness;
pub mod relay;
mod relay_channel;
pub mod rendezvous;
pub mod signals;
pub mod user;

use std::io;
use std::sync::Arc;
use std::time::Duration;

use mio::event::Event;
use mio::{Events, Poll, Registry, Token, Waker};
use ring::rand::SecureRandom;

use crate::error::{describe_io, Error};
use crate::protocol::Random;
use signals::Interrupts;
use user::UserTokens;

/// The listening socket.
const LISTENER: Token = Token(0);
/// The loop's one waker: Ctrl-C and the line editor thread both use it.
const WAKER: Token = Token(1);
/// The pipe SIGTERM and SIGHUP arrive through.
const SIGNALS: Token = Token(4);
/// The UDP socket that asks the router for a port mapping (`--map`).
const PORTMAP: Token = Token(5);
/// Lent to the front-end for stdin and stdout.
const USER_TOKENS: UserTokens = UserTokens {
    stdin: Token(2),
    stdout: Token(3),
};
/// Connection `i` of the slab has token `FIRST_CONN + i`.
const FIRST_CONN: usize = 16;
/// Events taken per `poll()`; more simply wait for the next turn.
const EVENTS: usize = 256;

fn loop_error(e: io::Error) -> Error {
    Error::Local(format!("event loop failed: {}", describe_io(&e)))
}

/// The poll, its waker and the interrupt count.
pub struct Reactor {
    poll: Poll,
    events: Events,
    waker: Arc<Waker>,
    interrupts: Interrupts,
    signal_pipe: crate::sys::process::SignalPipe,
}

impl Reactor {
    /// Makes the poll and installs the Ctrl-C handler, before anything can
    /// block.
    pub fn new() -> Result<Reactor, Error> {
        let poll = Poll::new().map_err(loop_error)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER).map_err(loop_error)?);
        let (interrupts, signal_pipe) = Interrupts::install(waker.clone())?;
        signal_pipe
            .register(poll.registry(), SIGNALS)
            .map_err(loop_error)?;
        Ok(Reactor {
            poll,
            events: Events::with_capacity(EVENTS),
            waker,
            interrupts,
            signal_pipe,
        })
    }

    pub fn registry(&self) -> &Registry {
        self.poll.registry()
    }

    pub fn waker(&self) -> Arc<Waker> {
        self.waker.clone()
    }

    pub fn interrupts(&self) -> &Interrupts {
        &self.interrupts
    }

    /// The tokens a front-end registers its fds with.
    pub fn user_tokens(&self) -> UserTokens {
        USER_TOKENS
    }

    /// Sleeps until an event or `timeout`, then hands each event to `on`.
    /// The program's only `poll()`.
    fn wait(&mut self, timeout: Option<Duration>, mut on: impl FnMut(&Event)) -> Result<(), Error> {
        match self.poll.poll(&mut self.events, timeout) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(loop_error(e)),
            Ok(()) => {}
        }
        for ev in self.events.iter() {
            if ev.token() == SIGNALS {
                // The count is in `interrupts`; the byte only woke us.
                self.signal_pipe.drain();
            } else {
                on(ev);
            }
        }
        Ok(())
    }
}

/// The system's random number generator, for the core.
pub struct SystemRng(ring::rand::SystemRandom);

impl SystemRng {
    /// Checks once that the generator works, so that [`Random::fill`] can
    /// rely on it.
    pub fn new() -> Result<SystemRng, Error> {
        let rng = ring::rand::SystemRandom::new();
        rng.fill(&mut [0u8; 16])
            .map_err(|_| Error::Local("the system random number generator failed".into()))?;
        Ok(SystemRng(rng))
    }
}

impl Random for SystemRng {
    fn fill(&mut self, buf: &mut [u8]) {
        // Invariant: getrandom(2) worked in `new`; on Linux it cannot fail
        // later (ring retries EINTR), so this never fires.
        self.0
            .fill(buf)
            .expect("the system random number generator worked at start");
    }
}

/// For the tests of the threads that wake the loop: a poll with a waker,
/// as the loop has ([`Reactor`] would also install the process's Ctrl-C
/// handler), and a wait for a wake-up with a deadline.
#[cfg(test)]
pub(crate) struct TestWake(Poll);

#[cfg(test)]
impl TestWake {
    pub fn new() -> (TestWake, Arc<Waker>) {
        let poll = Poll::new().expect("a poll");
        let waker = Arc::new(Waker::new(poll.registry(), WAKER).expect("a waker"));
        (TestWake(poll), waker)
    }

    /// Returns true if and only if the waker fired within 10 s.
    pub fn woken(&mut self) -> bool {
        let mut events = Events::with_capacity(4);
        self.0
            .poll(&mut events, Some(Duration::from_secs(10)))
            .expect("poll");
        !events.is_empty()
    }
}
