//! p2pchat: a private two-party chat and byte-exact data pipe over one TCP
//! connection.
//!
//! # Layout
//! The floors run main → frontend → driver → session → protocol →
//! buf/error/names; nothing imports upward.
//! * [`session`]: the sans-IO core. A `Session` is one room: it takes socket
//!   bytes per connection, user input, the time and random bytes; it returns
//!   bytes to send, bytes to show, events, actions on connections and its
//!   next deadline. All policy (who gets the room, failed attempts, reset or
//!   linger, the exit status) lives here. No sockets, clock, threads or
//!   terminal inside.
//! * [`protocol`]: wire protocol v2 (handshake, key schedule, records), pure
//!   state machines used by the session. See `PROTOCOL.md`.
//! * [`driver`]: the one module that owns `mio::Poll` (one poll site, a slab
//!   of connections by token), the sockets and signals. It carries out what
//!   the session asks for and defines the port front-ends implement.
//! * [`frontend`]: what the user sees. `pipe` passes bytes through exactly
//!   and reports on stderr; `terminal` is the chat room used when stdin and
//!   stdout are terminals (line editor thread, transcript, sanitising).
//! * [`cli`], [`secret`]: what the user asked for; [`reach`]: the addresses
//!   a listener prints; [`names`]: display names,
//!   sanitising the peer's, and addresses as people write them.
//! * [`progress`]: the words of `--progress`.
//! * [`manual`]: the man page and shell completions, generated from the
//!   clap definition.
//! * [`buf`]: the one bounded byte buffer; [`error`]: the one error type and
//!   its exit codes, which `main` maps.
//!
//! # Panic policy
//! A panic is a bug. Nothing a peer, a user or a file sends may reach one:
//! every `expect` names the local invariant that makes it unreachable, and
//! peer-controlled lengths and indices are checked before use.

#[cfg(not(target_os = "linux"))]
compile_error!(
    "p2pchat runs on Linux only: it uses /proc/self/fd, F_SETPIPE_SZ, MSG_NOSIGNAL and TCP_USER_TIMEOUT"
);

pub mod buf;
pub mod cli;
pub mod code_entry;
pub mod driver;
pub mod error;
pub mod frontend;
pub mod manual;
pub mod names;
pub mod progress;
pub mod protocol;
pub mod reach;
pub mod relay;
pub mod secret;
pub mod session;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
