//! The one error type of p2pchat and its mapping to exit codes.
//!
//! Every failure a user can see is one variant here; `main` turns it into a
//! single line on stderr and an exit code, in one place. Nothing here does I/O.

use std::fmt;
use std::io;

/// Exit codes, documented in the README.
pub mod exit {
    pub const OK: u8 = 0;
    pub const CONNECTION: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const HANDSHAKE: u8 = 3;
    pub const INTEGRITY: u8 = 4;
    /// A panic: a bug (Rust's own code for it).
    pub const INTERNAL: u8 = 101;
    /// Ended by a signal: 128 + its number (SIGINT 130, SIGTERM 143, SIGHUP 129).
    pub const SIGNAL_BASE: u8 = 128;
    pub const INTERRUPTED: u8 = SIGNAL_BASE + 2;

    /// Every exit code with what it means, short, as `--help` and the man
    /// page list them (the README's table has the long form).
    pub const TABLE: &[(u8, &str)] = &[
        (OK, "success: everything we sent was confirmed received"),
        (
            CONNECTION,
            "connection failed or lost, or data not delivered; a local stdin/stdout failure",
        ),
        (
            USAGE,
            "usage: bad arguments, an unreadable secret, a malformed code",
        ),
        (
            HANDSHAKE,
            "handshake or authentication failed: wrong secret or code, not a p2pchat peer",
        ),
        (
            INTEGRITY,
            "integrity failure: a tampered or malformed record",
        ),
        (INTERNAL, "internal error (a bug: please report it)"),
        (SIGNAL_BASE + 1, "hung up (SIGHUP) with something cut short"),
        (
            INTERRUPTED,
            "interrupted (SIGINT, Ctrl-C) with something cut short",
        ),
        (
            SIGNAL_BASE + 15,
            "terminated (SIGTERM) with something cut short",
        ),
    ];
}

/// The signals that end the room: the first asks for a polite goodbye, a
/// second ends the program at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Ctrl-C.
    Int,
    /// `kill`, a service manager stopping us.
    Term,
    /// The terminal went away.
    Hup,
}

impl Signal {
    pub fn name(self) -> &'static str {
        match self {
            Signal::Hup => "SIGHUP",
            Signal::Int => "SIGINT",
            Signal::Term => "SIGTERM",
        }
    }

    pub fn number(self) -> u8 {
        match self {
            Signal::Hup => 1,
            Signal::Int => 2,
            Signal::Term => 15,
        }
    }
}

/// A failure that ends the program, with the words shown to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Bad command line or configuration (exit 2).
    Usage(String),
    /// Could not connect, listen, or resolve (exit 1).
    Connect(String),
    /// The connection broke after it was up: reset, dead peer, truncation (exit 1).
    Lost(String),
    /// Local stdin/stdout failed (exit 1).
    Local(String),
    /// The handshake failed: not a p2pchat peer, mode mismatch, timeout
    /// (exit 3).
    Handshake(String),
    /// Key confirmation failed: the secrets differ or someone tampered with
    /// the handshake (exit 3). A listener gives up after a few of these.
    AuthFailed(String),
    /// A record failed authentication or broke the protocol (exit 4).
    Integrity(String),
    /// Ended by a signal before everything was delivered (exit 128 + n:
    /// 130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP).
    Interrupted(Signal),
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => exit::USAGE,
            Error::Connect(_) | Error::Lost(_) | Error::Local(_) => exit::CONNECTION,
            Error::Handshake(_) | Error::AuthFailed(_) => exit::HANDSHAKE,
            Error::Integrity(_) => exit::INTEGRITY,
            Error::Interrupted(sig) => exit::SIGNAL_BASE + sig.number(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(m)
            | Error::Connect(m)
            | Error::Lost(m)
            | Error::Local(m)
            | Error::Handshake(m)
            | Error::AuthFailed(m)
            | Error::Integrity(m) => f.write_str(m),
            Error::Interrupted(Signal::Int) => f.write_str("interrupted"),
            Error::Interrupted(Signal::Term) => f.write_str("terminated (SIGTERM)"),
            Error::Interrupted(Signal::Hup) => f.write_str("hung up (SIGHUP)"),
        }
    }
}

impl std::error::Error for Error {}

/// One sentence for a connection that broke, however it surfaced: a reset
/// reads as ECONNRESET, a write after it as EPIPE, an abort as
/// ECONNABORTED; the user sees one event, so one wording.
pub fn describe_lost(e: &io::Error) -> String {
    use io::ErrorKind::*;
    match e.kind() {
        ConnectionReset | BrokenPipe | ConnectionAborted => {
            "connection lost: the peer reset the connection".into()
        }
        TimedOut => "connection lost: the network stopped answering (timed out)".into(),
        _ => format!("connection lost: {}", describe_io(e)),
    }
}

/// Plain words for an I/O error, without Rust's "(os error N)" suffix.
pub fn describe_io(e: &io::Error) -> String {
    use io::ErrorKind::*;
    let words = match e.kind() {
        ConnectionRefused => "connection refused",
        ConnectionReset => "connection reset by peer",
        ConnectionAborted => "connection aborted",
        AddrInUse => "address already in use",
        AddrNotAvailable => "address not available on this machine",
        PermissionDenied => "permission denied",
        TimedOut => "timed out",
        BrokenPipe => "broken pipe",
        HostUnreachable => "host unreachable",
        NetworkUnreachable => "network unreachable",
        NetworkDown => "network is down",
        _ => "",
    };
    if !words.is_empty() {
        return words.to_string();
    }
    let text = e.to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_lowercase(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_readme() {
        assert_eq!(Error::Usage("x".into()).exit_code(), 2);
        assert_eq!(Error::Connect("x".into()).exit_code(), 1);
        assert_eq!(Error::Lost("x".into()).exit_code(), 1);
        assert_eq!(Error::Handshake("x".into()).exit_code(), 3);
        assert_eq!(Error::Integrity("x".into()).exit_code(), 4);
        assert_eq!(Error::Interrupted(Signal::Int).exit_code(), 130);
        assert_eq!(Error::Interrupted(Signal::Term).exit_code(), 143);
        assert_eq!(Error::Interrupted(Signal::Hup).exit_code(), 129);
    }

    #[test]
    fn io_errors_read_as_plain_words() {
        let e = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(describe_io(&e), "connection refused");
        // The error as the system gives it (EADDRINUSE, WSAEADDRINUSE).
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let e = std::net::TcpListener::bind(taken.local_addr().expect("addr"))
            .expect_err("the port is taken");
        assert_eq!(describe_io(&e), "address already in use");
    }
}
