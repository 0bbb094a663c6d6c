//! The platform area: every call into the operating system that std does
//! not make for us lives here, and nowhere else. The rest of the program
//! calls the functions below and never names an OS.
//!
//! One file per concern: [`stdio`] (what stdin and stdout are, and how
//! to read and write them without blocking), [`net`] (socket options the
//! sockets crate lacks, acknowledged bytes, interface addresses),
//! [`process`] (signals, dumps, the environment, limits, the login name),
//! [`terminal`] (modes, size, the local clock) and, on Linux only,
//! [`relay_pipe`] (splice). Inside each, every function picks its
//! implementation with `#[cfg]` at its definition, as ripgrep does:
//! `unix` for what Linux, macOS and FreeBSD share, a `target_os` for what
//! one of them alone has, `windows` for Win32. Every `unsafe` block
//! carries a `// SAFETY:` comment (`clippy::undocumented_unsafe_blocks`
//! is denied crate-wide).
//!
//! # The portable switch
//! Linux has fast paths the other systems lack: private non-blocking
//! descriptions of stdin and stdout through `/proc/self/fd`, `splice(2)`
//! in the relay, `F_SETPIPE_SZ`, and `TCP_INFO`'s acknowledged bytes.
//! `P2PCHAT_PORTABLE=1` in the environment, read once at start, turns them
//! all off on Linux, so the code macOS, FreeBSD and Windows run (blocking
//! stdio threads, the relay's buffer copy, acknowledgements from the send
//! queue) is tested here on every run. See [`fast_paths`].

pub mod net;
pub mod process;
#[cfg(target_os = "linux")]
pub mod relay_pipe;
pub mod stdio;
pub mod terminal;

use std::sync::OnceLock;

/// The environment variable that turns Linux's fast paths off.
pub const PORTABLE_VAR: &str = "P2PCHAT_PORTABLE";

/// Returns true if and only if Linux's fast paths are in use: this is
/// Linux and `P2PCHAT_PORTABLE` does not ask for the portable paths.
/// Read once; every later call gives the same answer.
pub fn fast_paths() -> bool {
    static FAST: OnceLock<bool> = OnceLock::new();
    *FAST.get_or_init(|| {
        cfg!(target_os = "linux")
            && !std::env::var_os(PORTABLE_VAR).is_some_and(|v| !v.is_empty() && v != "0")
    })
}
