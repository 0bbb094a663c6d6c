//! Front-ends: how the user's side of the room is read and shown. The driver
//! pumps bytes between the session and a [`UserSide`]; it does not care
//! whether that is a pipe or a chat prompt.

pub mod pipe;
pub mod sanitize;
pub mod terminal;

use std::io;
use std::net::SocketAddr;

use mio::{Registry, Token};

/// Tokens the front-ends may register with the driver's poll.
pub const STDIN: Token = Token(10);
pub const STDOUT: Token = Token(11);

/// What one attempt to read user input gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// `n` bytes were read into the buffer.
    Data(usize),
    /// Nothing now; wait for readiness.
    Blocked,
    /// No more input: we are done sending, still receiving.
    End,
    /// The user is leaving the room (Ctrl-C or Ctrl-D at a prompt, /quit).
    Leave,
}

/// Something to tell the user about the room (not the peer's data).
#[derive(Debug)]
pub enum Notice<'a> {
    Listening(SocketAddr),
    PlainWarning,
    /// A connection failed its handshake; the listener keeps waiting.
    FailedAttempt(SocketAddr, &'a str),
    Joined {
        peer: SocketAddr,
        name: Option<&'a str>,
        verify_code: Option<&'a str>,
    },
    PeerDone(&'a str),
    PeerLeft(&'a str),
}

/// The user's side of the room.
pub trait UserSide {
    /// A readiness event for one of the front-end's tokens; `closed` when
    /// the event also says the writer hung up.
    fn on_ready(&mut self, token: Token, closed: bool);
    /// Asks the poll to report the current state of the front-end's fds
    /// again: events consumed while dialing or accepting are not lost.
    fn rearm(&mut self, _registry: &Registry) {}
    /// Returns true if and only if `read_input` may make progress now.
    fn input_ready(&self) -> bool;
    fn read_input(&mut self, buf: &mut [u8]) -> io::Result<Input>;
    fn close_input(&mut self, registry: &Registry);
    /// Returns true if and only if `write_output` may make progress now.
    fn output_ready(&self) -> bool;
    /// Shows peer bytes; Err(BrokenPipe) when the reader went away.
    fn write_output(&mut self, data: &[u8]) -> io::Result<usize>;
    /// The peer will send nothing more: let downstream see the end.
    fn close_output(&mut self, registry: &Registry);
    fn output_open(&self) -> bool;
    fn notice(&mut self, notice: Notice<'_>);
    /// Leaves the screen as the user had it; called before every exit.
    fn finish(&mut self) {}
}

/// Picks the front-end: the chat room when stdin and stdout are both
/// terminals, the data pipe otherwise.
pub fn open(
    cfg: &crate::cli::Config,
    registry: &Registry,
    waker: std::sync::Arc<mio::Waker>,
    interrupts: &crate::driver::signals::Interrupts,
) -> Result<Box<dyn UserSide>, crate::error::Error> {
    use crate::driver::stdio::is_terminal;
    let failed = |e: io::Error| {
        crate::error::Error::Local(format!(
            "cannot set up the terminal or stdin/stdout: {}",
            crate::error::describe_io(&e)
        ))
    };
    if is_terminal(0) && is_terminal(1) {
        let t = terminal::Terminal::open(registry, &cfg.name, cfg.quiet, waker, interrupts)
            .map_err(failed)?;
        return Ok(Box::new(t));
    }
    Ok(Box::new(
        pipe::Pipe::open(registry, cfg.quiet).map_err(failed)?,
    ))
}
