//! p2pchat: a private two-party chat and byte-exact data pipe over one TCP
//! connection.
//!
//! # Layout
//! * [`session`]: the sans-IO core. A `Session` takes socket bytes, user
//!   input and the time; it returns bytes to send, bytes to show, events and
//!   its next deadline. No sockets, clock, threads or terminal inside.
//! * [`protocol`]: wire protocol v1 (handshake, key schedule, records), pure
//!   state machines used by the session. See `PROTOCOL.md`.
//! * [`driver`]: the one module that owns `mio::Poll`, the sockets, stdin,
//!   stdout and signals, and pumps bytes between them and the session.
//! * [`frontend`]: what the user sees. `pipe` passes bytes through exactly
//!   and reports on stderr; `terminal` is the chat room used when stdin and
//!   stdout are terminals (line editor thread, transcript, sanitising).
//! * [`cli`], [`secret`], [`names`]: what the user asked for.
//! * [`error`]: the one error type and its exit codes; `main` maps them.

pub mod cli;
pub mod driver;
pub mod error;
pub mod frontend;
pub mod names;
pub mod protocol;
pub mod secret;
pub mod session;
