//! Every resource the relay gives a stranger, with its bound.
//!
//! A relay is a public service that strangers reach before anything is
//! authenticated, so nothing they can open may grow without a limit or
//! live without a deadline. The defaults are sized for a small machine
//! serving many rooms at once:
//!
//! * Before its hello a connection holds a socket and at most 104 bytes;
//!   it must say its hello within `hello_timeout` (2 s: a client sends it
//!   at once). `max_hellos` bounds the connections still owing one, so a
//!   flood of silent connections cannot starve the waiting ones of
//!   descriptors; when that pool is full the oldest of them makes way for
//!   the newcomer, so a flood cannot keep real clients from saying theirs.
//! * A waiting connection (hello in, no partner yet) holds a socket and a
//!   small table entry, about 300 bytes, for at most `wait_timeout`; then
//!   it is told `error nobody came to the room in time` (a p2pchat
//!   listener comes back with the same room).
//! * A pair holds two sockets and two copy buffers of `buffer` bytes,
//!   allocated only when it pairs. It ends when no byte moves for
//!   `idle_timeout` (p2pchat rooms send heartbeats, so only dead pairs are
//!   idle) or when one side has not taken its bytes for `stall_timeout`.
//! * One source (an IPv4 address, or an IPv6 /48) may hold
//!   `max_per_source` connections, of which `rooms_per_source` waiting or
//!   paired (a real user has one or two), and open `new_per_source` per
//!   `rate_window`, so a few hosts cannot take the relay for themselves.
//!   Within a /48 each /64 holds at most a quarter of that.
//! * A room (a token) has at most `waiting_per_token` connections waiting.
//!   A real client keeps one connection waiting at a time, so two leave
//!   room for a stale one the relay has not seen close yet; a stranger who
//!   knows the room number can hold both, which is why p2pchat comes back
//!   for a resume with a token only the room's two ends can name
//!   (PROTOCOL.md §7) and a stranger cannot hold a resume's place at all.
//! * One source names at most `tokens_per_source` different tokens per
//!   `token_window` (a /64 a quarter of that). A relay answers `ok` at
//!   once when someone waits on the token, so without this a stranger
//!   learns which room numbers are in use by trying them (as fast as the
//!   connection rate allows, 6.4 a second per address; there are
//!   1,000,000 numbers) and can then take the listener's pairing. A real
//!   user names one or two rooms (and a resume token); a `--keep` host, a
//!   new room every few minutes. Sixteen a minute is beyond any of them,
//!   and 24 times slower: a whole sweep takes one address 43 days, and a
//!   hundred addresses 10 hours.
//!
//! At the defaults the worst case in user space is
//! `max_pairs × 2 × buffer` = 1024 × 128 KiB = 128 MiB for the copy buffers
//! plus about 300 bytes × `max_connections` (1.2 MiB) for the tables; the
//! kernel's socket buffers come on top, as for any TCP server.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Limits {
    /// Open connections in all, in any state.
    pub max_connections: usize,
    /// Connections that have not finished their hello.
    pub max_hellos: usize,
    pub hello_timeout: Duration,
    /// Connections waiting for a partner.
    pub max_waiting: usize,
    pub wait_timeout: Duration,
    pub max_pairs: usize,
    /// A pair with no traffic for this long ends.
    pub idle_timeout: Duration,
    /// A pair whose bytes wait this long for a side that does not read ends.
    pub stall_timeout: Duration,
    /// Open connections per source (IPv4 address, IPv6 /48).
    pub max_per_source: usize,
    /// Waiting or paired connections per source: far below
    /// `max_per_source`, since a real user has one or two.
    pub rooms_per_source: usize,
    /// Connections waiting on one token.
    pub waiting_per_token: usize,
    /// Different tokens (rooms) one source may name per `token_window`.
    pub tokens_per_source: usize,
    pub token_window: Duration,
    /// New connections per source address per `rate_window`.
    pub new_per_source: u32,
    pub rate_window: Duration,
    /// Copy buffer per direction of a pair.
    pub buffer: usize,
    /// How often a line of counts goes to the log (when anything happened).
    pub summary_every: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 4096,
            max_hellos: 1024,
            hello_timeout: Duration::from_secs(2),
            max_waiting: 2048,
            wait_timeout: Duration::from_secs(600),
            max_pairs: 1024,
            idle_timeout: Duration::from_secs(600),
            stall_timeout: Duration::from_secs(60),
            max_per_source: 16,
            rooms_per_source: 8,
            waiting_per_token: 2,
            tokens_per_source: 16,
            token_window: Duration::from_secs(60),
            new_per_source: 64,
            rate_window: Duration::from_secs(10),
            buffer: 64 * 1024,
            summary_every: Duration::from_secs(60),
        }
    }
}
