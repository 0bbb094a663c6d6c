//! How a room ends: cleanly (both ends confirmed, then FIN), by a
//! goodbye (BYE, with what the peer read), by an error (reset after the
//! room is up, a drained abort before), or not at all yet: a lost
//! connection of a room that agreed on resume goes down and waits for a
//! new one. Also what `--send`/`--receive` make of the files' fates.

use super::*;

impl Room {
    /// Both EOFs are exchanged and each side confirmed (DONE) that it
    /// received the other's: everything arrived, the room ended cleanly.
    /// A FIN alone proves nothing: anyone on the path can forge one.
    pub(super) fn closed_cleanly(&self) -> bool {
        self.ends_confirmed() && self.current.as_ref().is_some_and(|l| l.tx.is_empty())
    }

    /// Every stream ended both ways and was confirmed, and our DONE is
    /// sealed: nothing of the room is owed either way.
    pub(super) fn ends_confirmed(&self) -> bool {
        self.send.state() == Sending::Confirmed
            && self.recv.state() == Receiving::DoneSent
            && self.files.idle()
    }

    /// As [`Room::ends_confirmed`], with our DONE written to this
    /// connection's socket: what still sits in our buffer after it (a
    /// heartbeat whose timer fired while the DONE waited) is owed to
    /// nobody, so the peer's FIN then ends the room cleanly. (A FIN
    /// before our DONE left cannot be the peer's clean end.)
    pub(super) fn done_is_out(&self, link: &Link) -> bool {
        self.ends_confirmed() && link.done_end.is_some_and(|end| link.flushed >= end)
    }

    /// Decides whether the room has ended, and how, after every input.
    pub(super) fn check_end(&mut self, now: Instant) {
        if self.outbox.outcome.is_some() {
            return;
        }
        let Some(link) = self.current.as_ref() else {
            return;
        };
        if !link.is_confirmed() || !self.recv.output_is_empty() || self.files.finishing() {
            // Our user has not taken everything yet, or a verified file is
            // still being written or named: that ends first.
            return;
        }
        let flushed = link.tx.is_empty();
        let end = match self.farewell {
            Farewell::PeerLeft => Some(self.peer_left_outcome()),
            Farewell::ByeSent(reason) if flushed && (self.resume.is_none() || link.transport_eof) => {
                Some(self.bye_outcome(reason))
            }
            Farewell::ByeSent(_) if flushed => {
                // Our BYE is out: FIN, then wait for the peer's (it ends
                // when our BYE arrives). A cut meanwhile is resumed and
                // the BYE sent again, so the peer never waits in vain.
                if self.clean_since.is_none() {
                    self.clean_since = Some(now);
                    self.outbox.actions.push_back(Action::ShutdownWrite(link.id));
                }
                None
            }
            _ if self.closed_cleanly() && (self.resume.is_none() || link.transport_eof) => {
                Some(Ok(()))
            }
            _ if link.transport_eof && link.rx.is_empty() && self.done_is_out(link) => {
                Some(Ok(()))
            }
            _ if self.closed_cleanly() => {
                // Our side is complete: FIN, then wait for the peer's.
                if self.clean_since.is_none() {
                    self.clean_since = Some(now);
                    self.outbox.actions.push_back(Action::ShutdownWrite(link.id));
                }
                None
            }
            _ if link.transport_eof && link.rx.is_empty() => Some(Err(Error::Lost(
                if self.recv.state().ended() {
                    "connection lost: the peer closed the connection before confirming it received everything"
                } else {
                    "connection lost: the connection dropped without a goodbye from the peer"
                }
                .into(),
            ))),
            _ => None,
        };
        match end {
            Some(Ok(())) => self.finish(Ok(()), now),
            // The peer left on purpose: our side ends without a reset.
            Some(Err(e)) if self.farewell == Farewell::PeerLeft => self.finish(Err(e), now),
            Some(Err(e)) => self.fail(e, now),
            None => {}
        }
    }

    /// How leaving ends for us: cut short by a signal, or fine.
    pub(super) fn bye_outcome(&self, reason: LeaveReason) -> Result<(), Error> {
        match reason {
            LeaveReason::Interrupted(signal) if !self.all_delivered() => {
                Err(Error::Interrupted(signal))
            }
            _ => Ok(()),
        }
    }

    /// The peer left: was everything we sent read, and did its own data
    /// end before it left? A sender exits 0 only when the peer confirmed
    /// every byte; a receiver only when the peer's stream ended (EOF).
    pub(super) fn peer_left_outcome(&self) -> Result<(), Error> {
        if let Some(why) = &self.peer_write_failed {
            return Err(Error::Lost(format!(
                "the peer could not write what it received ({why})"
            )));
        }
        let confirmed = self.send.state() == Sending::Confirmed;
        let read = self.send.peer_received().unwrap_or(0);
        if !confirmed && read < self.send.sent() {
            // In the user's terms: how much of their input never arrived.
            let taken = self.send.taken();
            let size = crate::progress::bytes;
            let why = if matches!(self.send.state(), Sending::Ending | Sending::EofSent) {
                // All our input was taken: the peer read part of it.
                format!(
                    "the peer stopped reading: {} of your {} of input was not delivered",
                    size(taken.saturating_sub(read)),
                    size(taken)
                )
            } else {
                format!(
                    "the peer stopped reading after {} of your input; the rest was not delivered",
                    size(read)
                )
            };
            return Err(Error::Lost(why));
        }
        if self.cfg.output_is_data && !self.recv.state().ended() {
            return Err(Error::Lost(
                "the peer left before it finished sending (it was interrupted); what arrived is incomplete"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Ends the room cleanly (or by a first Ctrl-C with data cut short):
    /// FIN, then read until the peer's FIN so nothing is answered by a reset.
    pub(super) fn finish(&mut self, result: Result<(), Error>, now: Instant) {
        if self.outbox.outcome.is_some() {
            return;
        }
        let result = match self.files.verdict() {
            Some(why) if result.is_ok() && self.cfg.files_strict => Err(Error::Lost(why)),
            _ => result,
        };
        self.outbox.outcome = Some(result);
        if let Some(link) = self.current.as_ref() {
            self.outbox.actions.push_back(Action::Linger {
                link: link.id,
                flush: link.tx.data().to_vec(),
                until: now + LINGER,
            });
        }
        self.close_the_rest();
    }

    /// Ends the room with an error. After the room is up the connection is
    /// reset, so the peer cannot mistake the failure for a clean end; a
    /// failed handshake sends its last bytes and drains, so the peer reads
    /// the same clear error and not a reset.
    pub(super) fn fail(&mut self, e: Error, now: Instant) {
        if self.outbox.outcome.is_some() {
            return;
        }
        if let (Farewell::ByeSent(reason), Some(_), Error::Lost(_)) =
            (self.farewell, self.clean_since, &e)
        {
            // Our BYE was in the peer's kernel before the connection ended:
            // a peer that got it closes, with a reset if our data was still
            // unread. That is leaving, done.
            let result = self.bye_outcome(reason);
            return self.finish(result, now);
        }
        if self.may_go_down(&e) {
            return self.go_down(e, now);
        }
        let e = match self.busy_retry(e, now) {
            Ok(()) => return,
            Err(e) => e,
        };
        if let Some(link) = self.current.as_ref() {
            let action = if link.is_confirmed() {
                Action::Reset(link.id)
            } else {
                Action::Linger {
                    link: link.id,
                    flush: link.tx.data().to_vec(),
                    until: now + ABORT_DRAIN,
                }
            };
            self.outbox.actions.push_back(action);
        }
        self.outbox.outcome = Some(Err(e));
        self.close_the_rest();
    }

    /// Dialer: the listener said it is busy before the room was up. Within
    /// `--retry` the connection is closed and a new one dialed; after it,
    /// the error says how long we tried.
    pub(super) fn busy_retry(&mut self, e: Error, now: Instant) -> Result<(), Error> {
        let busy = self
            .current
            .as_ref()
            .is_some_and(|l| l.peer_busy() && !l.resuming);
        let (Some(retry), Some(first)) = (self.cfg.retry_busy, self.first_connected) else {
            return Err(e);
        };
        if !busy {
            return Err(e);
        }
        if now >= first + retry {
            return Err(match e {
                Error::Connect(m) => Error::Connect(format!(
                    "{m} (gave up after retrying for {} s)",
                    retry.as_secs_f64()
                )),
                e => e,
            });
        }
        if let Some(link) = self.current.take() {
            self.outbox.actions.push_back(Action::Close(link.id));
        }
        self.redial(reconnect::FIRST_BACKOFF, now);
        Ok(())
    }

    /// A lost connection (not tampering, not a failed first handshake)
    /// of a room that agreed on resume, and that nobody is leaving.
    pub(super) fn may_go_down(&self, e: &Error) -> bool {
        if self.resume.is_none() || self.farewell == Farewell::PeerLeft {
            return false;
        }
        let Some(link) = self.current.as_ref() else {
            return false;
        };
        if link.resuming && !link.is_confirmed() {
            // A resume that failed: try again, unless the peer said it
            // has no such room (it was restarted).
            return !matches!(e, Error::Handshake(m) if m.contains("no longer has this room"));
        }
        link.is_confirmed() && matches!(e, Error::Lost(_))
    }

    /// The connection is gone but the room is not: close it, tell the
    /// user, and wait for a new one (the dialer redials).
    pub(super) fn go_down(&mut self, e: Error, now: Instant) {
        let lasted = self
            .current
            .as_ref()
            .map_or(Duration::MAX, |l| now.saturating_duration_since(l.started));
        if let Some(link) = self.current.take() {
            self.outbox.actions.push_back(Action::Reset(link.id));
        }
        let grace = self.resume.as_ref().map_or(Duration::ZERO, |r| r.grace);
        if self.down.is_none() {
            let why = e.to_string();
            self.outbox.events.push_back(Event::ConnectionLost {
                why: why.clone(),
                grace,
            });
            self.down = Some(Down { since: now, why });
            // The room had a connection until now: the first try goes at
            // once, and a failed one waits longer each time; unless that
            // connection itself died at once (a resume the path or the
            // peer drops straight away), which keeps backing off.
            if lasted >= super::super::reconnect::STABLE {
                self.reconnect.reset();
            }
        }
        // The dialer dials again; through a relay both sides go back to
        // it. (A direct listener is still listening: it ignores this.)
        self.redial(Duration::ZERO, now);
    }

    /// The grace period ran out: the room ends, saying what was not
    /// confirmed.
    pub(super) fn give_up_resume(&mut self, now: Instant) {
        let Some(down) = self.down.take() else { return };
        let grace = self.resume.as_ref().map_or(0.0, |r| r.grace.as_secs_f64());
        let unconfirmed = self.send.unconfirmed();
        let mut why = format!("{}; not resumed within {grace} s", down.why);
        if unconfirmed > 0 {
            why.push_str(&format!(
                "; {unconfirmed} byte{} we sent were not confirmed",
                if unconfirmed == 1 { "" } else { "s" }
            ));
        }
        self.resume = None;
        self.fail(Error::Lost(why), now);
    }

    pub(super) fn close_the_rest(&mut self) {
        for other in self.pending.drain(..) {
            self.outbox.actions.push_back(Action::Close(other.id));
        }
        self.outbox.actions.push_back(Action::StopAccepting);
    }
}
