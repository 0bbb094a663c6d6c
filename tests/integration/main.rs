//! Integration tests: each spawns the real `p2pchat` binary and talks over
//! real loopback sockets (or a real pseudo-terminal). Nothing here sleeps to
//! synchronise: every wait is on a condition with a deadline.
//!
//! They drive the binary from a Unix machine (ptys, signals, nc, network
//! namespaces on Linux); the Windows build is tested from here too, under
//! Wine (`windows`). So the whole suite is Unix's, and what needs Linux
//! (namespaces, /proc) is marked so where it is.
#![cfg(unix)]

// Shared helpers: spawning, waiting with deadlines, test data.
mod util;
// A capturing, tampering man-in-the-middle TCP proxy.
mod proxy;
// Network namespaces a test creates itself, removed on drop.
mod netns;
// A real pseudo-terminal whose screen is rendered by vt100.
mod pty;

// The core room: pipes, half-close, backpressure, errors, usage (issue 3).
mod core_room;
// Interoperability with real nc and socat in both roles (issue 3).
mod interop;
// The sans-IO core names no I/O; imports only point down (issue 9).
mod layering;
// The private room: encryption, codes, secrets, tampering (issue 4).
mod private_room;
// The terminal room at a real pty against a piped peer (issue 5).
mod terminal_room;
// The chat room in tmux, which reflows on a resize (issue 10).
mod reflow;
// Fault injection: vanished host, frozen peer, slow reader, storms (issue 6).
#[cfg(target_os = "linux")]
mod faults;
// A listener facing strangers: guessing, grinding, lockout, floods (issue 9).
mod strangers;
// Meeting through a transit relay, one-time codes, lying relays (issue 11).
mod relay;
// Two hosts behind two NATs meet through a relay (issue 11).
#[cfg(target_os = "linux")]
mod nat_lab;
// A home router (miniupnpd) maps a port for `listen --map` (issue 23).
#[cfg(target_os = "linux")]
mod router_lab;
// Codes and relays at a real terminal: Tab completion, --keep (issue 11).
mod relay_terminal;
// At home in a shell: completions, man page, reach lines, habits (issue 13).
mod at_home;
// --progress: lines in a log, one redrawn line at a terminal (issue 12).
mod progress;
// Resume: a room that survives its connection (issue 12).
mod resume;
// The Windows build under Wine, with Linux and with itself (issue 19).
mod windows;
// As a new user meets it: emoji, separators, wording, /code /status /save
// (issues 20 and 21).
mod new_user;
// The README's pipe recipes at real terminals, finishing by themselves (issue 20).
mod recipes;
// Everyday situations: leaving an empty room, a full disk, a taken room (issue 20).
mod everyday;
// Strangers, round two: --keep budget, slot holders, stranded relay listeners (issue 21).
mod admission;
// Files in the room from scripts: --send, --receive, names, full disk, resume (issue 22).
mod files;
// Files in the room at two terminals: /send with Tab, /accept, /cancel,
// the progress line, a chat line overtaking a file (issue 22).
mod files_terminal;
