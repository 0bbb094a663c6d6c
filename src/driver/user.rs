//! The port the driver offers the front-ends: what it asks of the user's
//! side of the room ([`UserSide`]), what it tells it ([`Notice`]), and the
//! poll tokens it lends it. The front-ends implement this; the driver never
//! names a front-end.

use std::io;
use std::net::SocketAddr;

use mio::{Registry, Token};

use crate::reach::Reach;
use crate::session::FileOutcome;

/// What the user asks of the room's files, typed at the prompt. A number
/// is the transfer's `#N` as notices show it; None: the only one there is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileCommand {
    /// `/send PATH`: offer a file.
    Send(String),
    /// `/accept [N]`: take an offer.
    Accept(Option<u32>),
    /// `/reject [N]`: turn an offer down.
    Reject(Option<u32>),
    /// `/cancel [N]`: stop a transfer, either way.
    Cancel(Option<u32>),
    /// `/files`: the offers and transfers.
    List,
}

/// The poll tokens a front-end may register its fds with.
#[derive(Debug, Clone, Copy)]
pub struct UserTokens {
    pub stdin: Token,
    pub stdout: Token,
}

/// What one attempt to read user input gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserInput {
    /// `n` bytes were read into the buffer.
    Data(usize),
    /// Nothing now; wait for readiness.
    Blocked,
    /// No more input: we are done sending, still receiving.
    End,
    /// The user is leaving the room (Ctrl-D at a prompt, /quit).
    Leave,
}

/// Something to tell the user about the room (not the peer's data).
#[derive(Debug)]
pub enum Notice<'a> {
    /// `port_chosen` when the user asked for port 0: the port is news.
    Listening {
        local: SocketAddr,
        port_chosen: bool,
    },
    /// Where a peer can dial us, and (`with_command`) the command it runs.
    HowToReach {
        local: SocketAddr,
        reach: &'a Reach,
        with_command: bool,
    },
    /// A one-time code to pass on, and the command the other side runs
    /// (on this machine, when only it can dial us).
    Code {
        code: &'a str,
        command: &'a str,
        only_here: bool,
    },
    /// `--map`: the router forwards `public` to us (`how`: the protocol);
    /// `command` is what the other machine runs.
    Mapped {
        public: SocketAddr,
        how: &'a str,
        command: &'a str,
    },
    /// `--map` did not give a usable mapping, and why (one line).
    NotMapped {
        why: &'a str,
    },
    /// Connected to the relay; waiting in the room.
    AtRelay {
        room: &'a str,
        relay: &'a str,
    },
    PlainWarning,
    /// `--retry`: the peer is not there yet; we keep dialing.
    Waiting {
        line: &'a str,
    },
    /// A dial has had no answer for a while (packets dropped on the way):
    /// still trying `target`.
    Connecting {
        target: &'a str,
    },
    /// A connection failed before the room was up; the listener keeps
    /// waiting. `counted` when it was an attempt at the secret or code.
    FailedAttempt {
        peer: SocketAddr,
        why: &'a str,
        counted: bool,
        failed: u32,
        tries: u32,
    },
    /// The room is up.
    Joined {
        peer: SocketAddr,
        name: Option<&'a str>,
        verify_code: Option<&'a str>,
        /// Failed attempts the listener saw before this peer.
        failed_attempts: u32,
        /// What authenticated the room ("shared secret", "one-time
        /// code"), if not a verify code.
        authenticated_by: Option<&'static str>,
        /// The relay the room runs through.
        via_relay: Option<&'a str>,
    },
    /// `name` is the peer's name (encrypted modes).
    PeerDone {
        name: Option<&'a str>,
    },
    /// Plain mode: the peer's first bytes were a p2pchat preface.
    PeerLooksEncrypted,
    PeerLeft {
        name: Option<&'a str>,
    },
    /// The room's connection was lost; it may come back within `grace`.
    ConnectionLost {
        why: &'a str,
        grace: std::time::Duration,
        /// We make the new connection (else we wait for the peer's).
        redialing: bool,
    },
    /// A new connection carries the room on.
    Reconnected {
        after: std::time::Duration,
        resent: u64,
        connection: u32,
    },
    /// The peer offers a file, transfer `#number`. `name` is the name it
    /// will be saved under (already made safe); `saving_to` is set when it
    /// is taken without asking (`--receive DIR`).
    FileOffered {
        number: u32,
        from: Option<&'a str>,
        name: &'a str,
        /// The name as the peer offered it, shown safely, when it is not
        /// the name it is saved under (a path, a character made safe).
        offered_as: Option<&'a str>,
        size: u64,
        saving_to: Option<&'a std::path::Path>,
    },
    /// We offered a file, transfer `#number`.
    FileOffering {
        number: u32,
        name: &'a str,
        size: u64,
    },
    /// Transfer `#number` ended. `saved_as`: where an incoming file now is.
    FileEnded {
        number: u32,
        outgoing: bool,
        name: &'a str,
        size: u64,
        outcome: &'a FileOutcome,
        elapsed: std::time::Duration,
        saved_as: Option<&'a std::path::Path>,
    },
    /// An answer to a file command, or a file problem, in one line.
    FileNote {
        text: &'a str,
    },
}

impl Notice<'_> {
    /// Shown even with `-q`: without it the user (or a script) cannot go
    /// on (the code to pass on, the port that `listen 0` chose, the
    /// router's address that `--map` got).
    pub fn essential(&self) -> bool {
        matches!(
            self,
            Notice::Code { .. }
                | Notice::Mapped { .. }
                | Notice::Listening {
                    port_chosen: true,
                    ..
                }
        )
    }
}

/// The user's side of the room.
pub trait UserSide {
    /// A readiness event for one of the front-end's tokens; `closed` when
    /// the event also says the writer hung up.
    fn on_ready(&mut self, token: Token, closed: bool);
    /// The loop's waker fired (the line editor has something, or Ctrl-C).
    fn on_wake(&mut self) {}
    /// Returns true if and only if `read_input` may make progress now.
    fn input_ready(&self) -> bool;
    /// Reads user input into `buf`.
    fn read_input(&mut self, buf: &mut [u8]) -> io::Result<UserInput>;
    /// No more input will be taken: stop reading it.
    fn close_input(&mut self, registry: &Registry);
    /// Until the room is up, while the session takes no input, reads just
    /// enough to notice that the user is leaving (`/quit`, Ctrl-D at a terminal), keeping anything else for
    /// the room. Returns true if and only if the user left.
    fn left_before_room(&mut self) -> io::Result<bool> {
        Ok(false)
    }
    /// Returns true if and only if `write_output` may make progress now.
    fn output_ready(&self) -> bool;
    /// Shows peer bytes; Err(BrokenPipe) when the reader went away.
    fn write_output(&mut self, data: &[u8]) -> io::Result<usize>;
    /// The peer will send nothing more: let downstream see the end.
    fn close_output(&mut self, registry: &Registry);
    /// Returns true if and only if output has not been closed.
    fn output_open(&self) -> bool;
    /// Tells the user about the room.
    fn notice(&mut self, notice: Notice<'_>);
    /// Returns true if and only if our output is data for a program (a pipe,
    /// a file), where a peer that leaves before its end leaves it
    /// incomplete; false for a chat on a screen.
    fn output_is_data(&self) -> bool {
        true
    }
    /// Returns true if and only if we are receiving: our input is a
    /// terminal but our output is not (`p2pchat listen P | tar x`). Then
    /// nobody is typing an end of input, so ours ends when the peer's
    /// data has ended and all of it was written, as nc does.
    fn input_follows_peer(&self) -> bool {
        false
    }
    /// Leaves the screen as the user had it; called before every exit.
    fn finish(&mut self) {}
    /// Whether our input can be read again from an earlier offset (a
    /// regular file): a resume then resends from it, keeping no copy.
    fn input_rewindable(&self) -> bool {
        false
    }
    /// Reads our input again from `at` bytes past where it started (also
    /// after its end was reached).
    fn rewind_input(&mut self, _at: u64) -> io::Result<()> {
        Err(io::ErrorKind::Unsupported.into())
    }
    /// The bytes our input has left when it is a regular file (the 100 %
    /// of `--progress`), else None.
    fn input_len(&self) -> Option<u64> {
        None
    }
    /// Shows a `--progress` line; `last` for the summary at the end.
    fn progress(&mut self, _line: &str, _last: bool) {}
    /// How often a `--progress` line is worth showing.
    fn progress_every(&self) -> std::time::Duration {
        std::time::Duration::from_secs(5)
    }
    /// A file command the user typed, if any is waiting.
    fn poll_command(&mut self) -> Option<FileCommand> {
        None
    }
    /// Returns true if and only if a person answers offers here (a chat at
    /// a terminal); else an offer is taken only with `--receive`.
    fn asks_about_files(&self) -> bool {
        false
    }
    /// Shows the line that tells how the running transfers are going,
    /// redrawn in place where it can be; None: no transfer runs any more.
    fn file_progress(&mut self, _line: Option<&str>) {}
}
