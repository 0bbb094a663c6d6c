//! `--plain`: raw TCP, netcat compatible. Our input goes to the socket and
//! the socket's bytes to our output, exactly; the first connection is the
//! peer. In plain mode bytes are data: nothing is held back or refused.
//! If the stream begins with a p2pchat preface line, a warning says the
//! peer may be an encrypted p2pchat; the bytes are delivered all the same.

use std::io;
use std::time::Instant;

use super::outbox::Outbox;
use super::{Action, Event, LeaveReason, LinkId, IO_CAP};
use crate::buf::ByteBuf;
use crate::error::{describe_io, describe_lost, Error, Signal};
use crate::protocol::handshake;

/// Enough bytes to tell a preface line from data.
const MAX_PREFACE: usize = 16;

pub struct PlainPipe {
    link: Option<LinkId>,
    /// Our bytes for the socket.
    tx: ByteBuf,
    /// The first bytes received, kept (as a copy) until they can be told
    /// apart from a p2pchat preface.
    first: Vec<u8>,
    sniffing: bool,
    /// The peer's bytes for the user.
    out: ByteBuf,
    input_closed: bool,
    leaving: bool,
    shut_down: bool,
    peer_done: bool,
    discard_output: bool,
    interrupts: u32,
    /// The signal we are leaving for, if any.
    signal: Option<Signal>,
    /// Events, actions and the outcome, waiting to be taken.
    pub(super) outbox: Outbox,
}

impl Default for PlainPipe {
    fn default() -> PlainPipe {
        PlainPipe {
            link: None,
            tx: ByteBuf::with_capacity(IO_CAP),
            first: Vec::new(),
            sniffing: true,
            out: ByteBuf::with_capacity(IO_CAP),
            input_closed: false,
            leaving: false,
            shut_down: false,
            peer_done: false,
            discard_output: false,
            interrupts: 0,
            signal: None,
            outbox: Outbox::default(),
        }
    }
}

impl PlainPipe {
    fn is(&self, id: LinkId) -> bool {
        self.link == Some(id)
    }

    /// The first connection is the peer; every later one is closed.
    pub fn attach(&mut self, id: LinkId) {
        if self.link.is_some() || self.outbox.outcome.is_some() {
            return self.outbox.actions.push_back(Action::Close(id));
        }
        self.link = Some(id);
        self.outbox.actions.push_back(Action::StopAccepting);
        self.outbox.events.push_back(Event::Joined {
            link: id,
            name: None,
            verify_code: None,
            failed_attempts: 0,
        });
    }

    pub fn to_send(&self, id: LinkId) -> &[u8] {
        if self.is(id) {
            self.tx.data()
        } else {
            &[]
        }
    }

    pub fn sent(&mut self, _id: LinkId, n: usize, now: Instant) {
        self.tx.consume(n);
        self.check_end(now);
    }

    pub fn can_receive(&self, id: LinkId) -> bool {
        self.is(id) && self.outbox.outcome.is_none() && !self.peer_done && self.out.room() > 0
    }

    pub fn receive_buf(&mut self, id: LinkId) -> &mut [u8] {
        if !self.can_receive(id) {
            return &mut [];
        }
        self.out.spare()
    }

    pub fn received(&mut self, _id: LinkId, n: usize, now: Instant) {
        let start = self.out.len();
        self.out.commit(n);
        if self.sniffing {
            let want = MAX_PREFACE.saturating_sub(self.first.len());
            let fresh = &self.out.data()[start..];
            self.first
                .extend_from_slice(&fresh[..fresh.len().min(want)]);
            match handshake::looks_like_preface(&self.first) {
                Some(true) => {
                    self.sniffing = false;
                    self.outbox.events.push_back(Event::PeerLooksEncrypted);
                }
                Some(false) => self.sniffing = false,
                None => {}
            }
        }
        if self.discard_output {
            self.out.consume(self.out.len());
        }
        self.check_end(now);
    }

    pub fn transport_closed(&mut self, id: LinkId, now: Instant) {
        if !self.is(id) {
            return;
        }
        if !self.peer_done {
            self.peer_done = true;
            self.outbox.events.push_back(Event::PeerDone);
        }
        self.check_end(now);
    }

    pub fn transport_failed(&mut self, id: LinkId, e: &io::Error) {
        if !self.is(id) {
            return;
        }
        if self.peer_done {
            // A peer that cannot half-close (nc at a terminal) closed for
            // good: say so at once, not after the next line is lost.
            return self.fail(Error::Lost(
                "the peer closed the connection: nothing more can be delivered \
                 (what we sent after it stopped sending was lost)"
                    .into(),
            ));
        }
        self.fail(Error::Lost(describe_lost(e)));
    }

    pub fn can_take_input(&self) -> bool {
        self.link.is_some()
            && !self.input_closed
            && !self.leaving
            && self.outbox.outcome.is_none()
            && self.tx.room() > 0
    }

    pub fn input_buf(&mut self) -> &mut [u8] {
        if !self.can_take_input() {
            return &mut [];
        }
        self.tx.spare()
    }

    pub fn input_received(&mut self, n: usize) {
        self.tx.commit(n);
    }

    pub fn input_ended(&mut self, now: Instant) {
        self.input_closed = true;
        self.check_end(now);
    }

    pub fn leave(&mut self, reason: LeaveReason, now: Instant) {
        if self.link.is_none() {
            let signal = match reason {
                LeaveReason::Interrupted(s) => s,
                // `/quit` or Ctrl-D before anyone came: done waiting.
                LeaveReason::User => {
                    self.outbox.outcome = Some(Ok(()));
                    return self.outbox.actions.push_back(Action::StopAccepting);
                }
                LeaveReason::OutputClosed => Signal::Int,
            };
            return self.fail(Error::Interrupted(signal));
        }
        if let LeaveReason::Interrupted(s) = reason {
            self.signal = Some(s);
        }
        self.leaving = true;
        self.check_end(now);
    }

    pub fn interrupted(&mut self, signal: Signal, now: Instant) {
        if signal == Signal::Hup && self.interrupts > 0 {
            // A second hang-up (or one after a Ctrl-C): still leaving.
            return;
        }
        self.interrupts += 1;
        if self.interrupts >= 2 || self.link.is_none() {
            return self.fail(Error::Interrupted(signal));
        }
        self.leave(LeaveReason::Interrupted(signal), now);
    }

    pub fn output(&self) -> &[u8] {
        self.out.data()
    }

    pub fn output_written(&mut self, n: usize, now: Instant) {
        self.out.consume(n);
        self.check_end(now);
    }

    pub fn output_closed(&mut self, now: Instant) {
        self.discard_output = true;
        self.out.consume(self.out.len());
        self.leave(LeaveReason::OutputClosed, now);
    }

    pub fn output_failed(&mut self, e: &io::Error) {
        self.discard_output = true;
        self.out.consume(self.out.len());
        // Raw TCP has no way to say why: the reset tells the peer it ended.
        self.fail(output_error(e));
    }

    pub fn output_finished(&self) -> bool {
        self.peer_done && self.out.is_empty()
    }

    pub fn all_delivered(&self) -> bool {
        self.input_closed && self.tx.is_empty() && self.output_finished()
    }

    pub fn is_established(&self) -> bool {
        self.link.is_some()
    }

    fn check_end(&mut self, now: Instant) {
        let Some(id) = self.link else { return };
        if self.outbox.outcome.is_some() || !self.tx.is_empty() {
            return;
        }
        if (self.input_closed || self.leaving) && !self.shut_down {
            // Nothing more to send, ever: the peer sees our EOF.
            self.shut_down = true;
            self.outbox.actions.push_back(Action::ShutdownWrite(id));
        }
        if self.out.is_empty() && (self.leaving || (self.input_closed && self.peer_done)) {
            self.outbox.outcome = Some(match self.signal {
                Some(signal) if !self.all_delivered() => Err(Error::Interrupted(signal)),
                _ => Ok(()),
            });
            self.outbox.actions.push_back(Action::Linger {
                link: id,
                flush: Vec::new(),
                until: now + super::room::LINGER,
            });
        }
    }

    fn fail(&mut self, e: Error) {
        if self.outbox.outcome.is_some() {
            return;
        }
        if let Some(id) = self.link {
            // The room was up: a reset, so the peer cannot take it for a clean end.
            self.outbox.actions.push_back(Action::Reset(id));
        }
        self.outbox.outcome = Some(Err(e));
        self.outbox.actions.push_back(Action::StopAccepting);
    }
}

/// Our own line when our output fails.
pub(super) fn output_error(e: &io::Error) -> Error {
    Error::Local(format!(
        "cannot write what the peer sent to stdout: {}",
        describe_io(e)
    ))
}
