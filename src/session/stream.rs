//! The room's lifecycle as explicit states: one enum per direction, one for
//! leaving. Every combination the room can be in is a value of these three.

use super::LeaveReason;

/// Our direction: what we told the peer about the end of our data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sending {
    /// Data flows.
    Open,
    /// Our input ended; EOF is due once the data before it is sealed.
    Ending,
    /// EOF is sealed; waiting for the peer's DONE.
    EofSent,
    /// The peer confirmed (DONE) it received everything we sent.
    Confirmed,
}

/// The peer's direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receiving {
    /// Data flows.
    Open,
    /// The peer's EOF arrived; our DONE is due.
    Ended,
    /// Our DONE is sealed.
    DoneSent,
}

/// Whether someone is leaving the room (BYE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Farewell {
    Staying,
    /// We are leaving; BYE is due once pending data is sealed.
    Leaving(LeaveReason),
    /// Our BYE is sealed.
    ByeSent(LeaveReason),
    /// The peer's BYE arrived.
    PeerLeft,
}

impl Receiving {
    /// Returns true if and only if the peer's EOF arrived.
    pub fn ended(self) -> bool {
        self != Receiving::Open
    }
}

impl Sending {
    /// Returns true if and only if our input ended.
    pub fn ended(self) -> bool {
        self != Sending::Open
    }
}

impl Farewell {
    /// Returns true if and only if we are leaving or left.
    pub fn we_leave(self) -> bool {
        matches!(self, Farewell::Leaving(_) | Farewell::ByeSent(_))
    }
}
