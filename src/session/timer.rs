//! The room's deadlines as one table, on the model of quinn-proto's
//! `connection/timer.rs`: one [`Timer`] per kind of deadline.
//! [`super::room::Room`] says in one place when each is due (`deadline`)
//! and what happens when it expires (`on_timeout`); `poll_timeout` is the
//! earliest, and `handle_timeout` runs exactly the expired ones, in the
//! order of [`Timer::VALUES`]. So a deadline and the act on it cannot
//! drift apart.
//!
//! Unlike quinn's, the table is not stored: each deadline is derived from
//! the state it follows (a link's last send and receive, which move with
//! every record; the next attempt of [`super::reconnect::Reconnect`]), so
//! there is no `set` to forget.

/// One kind of deadline of a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// The connection was lost: the grace period for a resume runs out.
    ResumeGrace,
    /// Both ends are confirmed and our FIN is out: the wait for the
    /// peer's FIN ends.
    FinalWait,
    /// Listener: a connection at the door did not finish its handshake in
    /// time.
    Admission,
    /// The room's connection did not pass key confirmation in time.
    Handshake,
    /// The peer was silent for the idle timeout.
    Idle,
    /// A heartbeat is due.
    Ping,
    /// A new connection is due (after a backoff): ask the driver for it.
    Reconnect,
}

impl Timer {
    /// Every timer, in the order expired ones are acted on.
    pub const VALUES: [Timer; 7] = [
        Timer::ResumeGrace,
        Timer::FinalWait,
        Timer::Admission,
        Timer::Handshake,
        Timer::Idle,
        Timer::Ping,
        Timer::Reconnect,
    ];
}
