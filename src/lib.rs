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
//!   terminal inside. An encrypted room is a room of links (connections)
//!   and streams: a `SendStream` and a `RecvStream` per stream id (only
//!   stream 0 today), each owning its offsets, resume replay, acks and EOF.
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
//! * [`files`]: safe names for offered files, receiving whole or not at all.
//! * [`progress`]: the words of `--progress`.
//! * [`manual`]: the man page and shell completions, generated from the
//!   clap definition.
//! * [`sys`]: the platform area, the only place that calls the operating
//!   system beyond std (Linux, macOS, FreeBSD, Windows), each part marked
//!   with `#[cfg]`; `P2PCHAT_PORTABLE=1` turns Linux's fast paths off.
//! * [`buf`]: the one bounded byte buffer; [`error`]: the one error type and
//!   its exit codes, which `main` maps.
//!
//! # Panic policy
//! A panic is a bug. Nothing a peer, a user or a file sends may reach one:
//! every `expect` names the local invariant that makes it unreachable, and
//! peer-controlled lengths and indices are checked before use.

#![deny(clippy::undocumented_unsafe_blocks)]

pub mod buf;
pub mod cli;
pub mod code_entry;
pub mod driver;
pub mod error;
pub mod files;
pub mod frontend;
pub mod manual;
pub mod names;
pub mod progress;
pub mod protocol;
pub mod reach;
pub mod relay;
pub mod secret;
pub mod session;
pub mod sys;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
