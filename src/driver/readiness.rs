//! Cached edge readiness, one type for every fd the loop watches.
//!
//! mio is edge-triggered: an event says "something changed", once. So each
//! source keeps a flag per direction that an event sets and only
//! `WouldBlock` (or a short read, which empties the socket) clears, and
//! the loop never sleeps while a set flag can still make progress ("pump
//! until stuck, then poll"). Registering once and caching beats
//! re-registering every turn.

use mio::event::Event;

#[derive(Debug, Clone, Copy, Default)]
pub struct Readiness {
    /// A read may make progress.
    pub read: bool,
    /// A write may make progress.
    pub write: bool,
    /// The peer's FIN or an error was reported: read on to the end, and do
    /// not take a short read as "empty".
    pub hup: bool,
}

impl Readiness {
    /// Both directions assumed ready, as for a fresh socket.
    pub fn fresh() -> Readiness {
        Readiness {
            read: true,
            write: true,
            hup: false,
        }
    }

    /// A connect in flight completed: both directions may make progress
    /// now. What the events while connecting said stays: a peer that wrote
    /// and closed at once has sent its FIN already, and that edge will not
    /// come again.
    pub fn connected(&mut self) {
        self.read = true;
        self.write = true;
    }

    /// Folds one event in.
    pub fn update(&mut self, ev: &Event) {
        let closed = ev.is_read_closed() || ev.is_error();
        if ev.is_readable() || closed {
            self.read = true;
        }
        self.hup |= closed;
        if ev.is_writable() || ev.is_write_closed() || ev.is_error() {
            self.write = true;
        }
    }

    /// A read of `got` bytes into room for `wanted`: a short read empties
    /// the socket, so the next segment brings a new edge. Saves the
    /// `WouldBlock` read, where the poller allows it
    /// ([`crate::sys::net::SHORT_READ_REARMS`]).
    pub fn after_read(&mut self, got: usize, wanted: usize) {
        if crate::sys::net::SHORT_READ_REARMS && got < wanted && !self.hup {
            self.read = false;
        }
    }
}
