//! Front-ends: how the user's side of the room is read and shown. Each
//! implements the driver's [`UserSide`] port; the driver does not care
//! whether that is a pipe or a chat prompt.

pub mod notice;
pub mod pipe;
pub mod sanitize;
pub mod stdio;
pub mod terminal;

use std::io::{self, IsTerminal};
use std::sync::Arc;

use mio::{Registry, Waker};

use crate::driver::config::PeerConfig;
use crate::driver::signals::Interrupts;
use crate::driver::user::{UserSide, UserTokens};
use crate::error::{describe_io, Error};

/// What only the chat room needs to know.
#[derive(Debug, Clone, Copy)]
pub struct ChatOptions {
    /// Another room follows this one (`listen --keep`): nothing to leave.
    pub keep: bool,
    /// Ring the bell for a message after a quiet spell (not `--no-bell`).
    pub bell: bool,
}

/// Picks the front-end: the chat room when stdin and stdout are both
/// terminals, the data pipe otherwise.
pub fn open(
    cfg: &PeerConfig,
    chat: ChatOptions,
    registry: &Registry,
    tokens: UserTokens,
    waker: Arc<Waker>,
    interrupts: &Interrupts,
) -> Result<Box<dyn UserSide>, Error> {
    let failed = |e: io::Error| {
        Error::Local(format!(
            "cannot set up the terminal or stdin/stdout: {}",
            describe_io(&e)
        ))
    };
    if io::stdin().is_terminal() && io::stdout().is_terminal() {
        let mut t =
            terminal::Terminal::open(registry, tokens, &cfg.name, cfg.quiet, waker, interrupts)
                .map_err(failed)?;
        t.keep = chat.keep;
        t.bell = chat.bell;
        return Ok(Box::new(t));
    }
    Ok(Box::new(
        pipe::Pipe::open(registry, tokens, cfg.quiet, waker).map_err(failed)?,
    ))
}
