//! A listener at its door: who gets in, and what a failed attempt costs.
//! Up to [`MAX_PENDING`] handshakes run at once (at most
//! [`MAX_PENDING_PER_SOURCE`] from one source); a newcomer beyond a cap
//! takes the place of the oldest connection short of its first flight;
//! while the room is up only resumes come in, and one always finds a slot.
//! A connection that got our key material and did not pass key
//! confirmation is a failed attempt, however it ended; no more than
//! `tries` key exchanges are ever answered.

use super::*;

impl Room {
    /// Listener: a new connection from `source`. Before the room is up it
    /// is admitted, making way for the oldest connection that has not sent
    /// its whole first flight when the caps are reached, or told that we are
    /// busy when none can make way. Once the room is up only a resume of it
    /// may come in, and a resume always finds a slot (see
    /// [`Room::admit_resume`]).
    pub fn accept(&mut self, id: LinkId, source: u128, now: Instant) {
        let taken = self.current.is_some() || self.down.is_some();
        let resumable = self.resume.is_some() && self.farewell != Farewell::PeerLeft;
        if self.outbox.outcome.is_some() || (taken && !resumable) {
            return self.outbox.actions.push_back(Action::Close(id));
        }
        if taken {
            return self.admit_resume(id, source, now);
        }
        let same = self.pending.iter().filter(|l| l.source == source).count();
        let full = if same >= MAX_PENDING_PER_SOURCE {
            Some(Some(source))
        } else if self.pending.len() >= MAX_PENDING {
            Some(None)
        } else {
            None
        };
        if let Some(among) = full {
            if !self.evict_incomplete(among) {
                // Every slot holds a connection that sent its whole first
                // flight: say so, so a real dialer can try again.
                return self.outbox.actions.push_back(Action::Linger {
                    link: id,
                    flush: BUSY.to_vec(),
                    until: now + BUSY_LINGER,
                });
            }
        }
        let link = self.start_link(id, source, now);
        self.pending.push(link);
    }

    /// Listener: a relay paired us with a peer (see
    /// [`super::Session::accept_paired`]).
    pub fn accept_paired(&mut self, id: LinkId, now: Instant) {
        self.accept(id, 0, now);
        if let Some(l) = self.pending.iter_mut().find(|l| l.id == id) {
            l.paired = true;
        }
    }

    /// While the room is up or down, a new connection can only be a resume
    /// of it, and none of them costs a try: one always gets a slot. When
    /// the caps are reached, the oldest attempt of the source that holds
    /// the most (the newcomer's own when it is at its cap) makes way, so a
    /// flooder displaces its own before anyone else's, and the room's own
    /// resume is displaced only by sources with as few attempts in flight
    /// as itself.
    pub(super) fn admit_resume(&mut self, id: LinkId, source: u128, now: Instant) {
        let count = |s: u128| self.pending.iter().filter(|l| l.source == s).count();
        let same = count(source);
        // Whose oldest attempt makes way: None for the oldest of all.
        let victim = if same >= MAX_RESUMES_PER_SOURCE {
            Some(Some(source))
        } else if self.pending.len() >= MAX_PENDING {
            let most = self
                .pending
                .iter()
                .map(|l| (count(l.source), l.source))
                .max_by_key(|(n, _)| *n);
            Some(match most {
                // The newcomer's source would hold the most: its own.
                _ if same > 0 && most.is_none_or(|(n, _)| same + 1 >= n) => Some(source),
                Some((n, s)) if n > 1 => Some(s),
                _ => None,
            })
        } else {
            None
        };
        if let Some(among) = victim {
            let oldest = self
                .pending
                .iter()
                .enumerate()
                .filter(|(_, l)| among.is_none_or(|s| l.source == s))
                .min_by_key(|(_, l)| l.started)
                .map(|(i, _)| i);
            if let Some(i) = oldest {
                let link = self.pending.swap_remove(i);
                self.outbox.actions.push_back(Action::Close(link.id));
            }
        }
        let link = self.start_link(id, source, now);
        self.pending.push(link);
    }

    /// Closes the oldest pending connection that has not sent its whole
    /// first flight (from `source`, or from anyone): such a client makes
    /// way for a new one, since a real dialer sends the flight in its first
    /// write, so neither silence nor a preface alone keeps the real peer
    /// out.
    pub(super) fn evict_incomplete(&mut self, source: Option<u128>) -> bool {
        let oldest = self
            .pending
            .iter()
            .enumerate()
            .filter(|(_, l)| !l.first_flight_seen() && source.is_none_or(|s| l.source == s))
            .min_by_key(|(_, l)| l.started)
            .map(|(i, _)| i);
        let Some(i) = oldest else { return false };
        let link = self.pending.swap_remove(i);
        self.outbox.actions.push_back(Action::Close(link.id));
        true
    }

    /// The process is out of descriptors: close the oldest pending
    /// connection short of its first flight, if any, so that accepting can
    /// go on. Returns whether one was closed.
    pub fn shed_load(&mut self) -> bool {
        self.evict_incomplete(None)
    }

    pub(super) fn drop_attempt(&mut self, i: usize, e: Error, now: Instant) {
        let link = self.pending.swap_remove(i);
        let counted = link.revealed();
        if counted {
            self.failed_attempts += 1;
        }
        // A client that said nothing at all (a port scan, an idle
        // connection) is dropped without a word; so is a failed resume,
        // which while the room is up can only be a stranger's: a storm of
        // them must not flood the user's screen.
        let silent = !link.heard || link.resuming;
        if link.told_why() {
            // A dialer of a new room while ours is up: the line that says
            // the room is taken goes out before the close.
            self.outbox.actions.push_back(Action::Linger {
                link: link.id,
                flush: link.tx.data().to_vec(),
                until: now + ABORT_DRAIN,
            });
        } else if silent {
            self.outbox.actions.push_back(Action::Close(link.id));
        } else {
            self.outbox.events.push_back(Event::FailedAttempt {
                link: link.id,
                why: e.to_string(),
                counted,
                failed: self.failed_attempts,
                tries: self.tries_here(),
            });
            self.outbox.actions.push_back(Action::Linger {
                link: link.id,
                flush: link.tx.data().to_vec(),
                until: now + ABORT_DRAIN,
            });
        }
        let burned = self.proof.one_time && self.failed_attempts > self.cfg.failed_before;
        if self.failed_attempts < self.cfg.tries && !burned {
            if let Farewell::Leaving(reason) = self.farewell {
                if !self.handshake_in_flight() {
                    // We were leaving, waiting for that handshake only.
                    return self.abandon(reason, Signal::Int, now);
                }
            }
            self.resume_held(now);
            return;
        }
        let n = self.failed_attempts;
        let why = if self.failed_attempts < self.cfg.tries {
            String::from(
                "a failed attempt to join the room (a wrong code, or someone guessing): \
                 the code is burned; run again for a new code",
            )
        } else {
            let (what, fresh) = match &self.proof.secret {
                Some(Pake { room: Some(_), .. }) => ("the one-time codes", "code"),
                Some(_) => ("the shared secret", "secret"),
                None => ("the verify code", "verify code"),
            };
            format!(
                "{n} failed attempt{} to join: someone may be guessing {what}; \
                 giving up (start again, with a fresh {fresh})",
                if n == 1 { "" } else { "s" },
            )
        };
        self.fail(Error::AuthFailed(why), now);
    }

    /// The failed attempts after which this room gives up: the process's
    /// budget, and for a one-time code the first failure in this room.
    pub(super) fn tries_here(&self) -> u32 {
        if self.proof.one_time {
            self.cfg.tries.min(self.cfg.failed_before + 1)
        } else {
            self.cfg.tries
        }
    }

    /// Failed attempts so far, counting those of earlier rooms.
    pub fn failed_attempts(&self) -> u32 {
        self.failed_attempts
    }

    /// Returns true if and only if one more key exchange may be served:
    /// the attempts already failed plus those in flight stay below `tries`,
    /// so no more than `tries` guesses are ever answered.
    pub(super) fn may_reveal(&self) -> bool {
        let in_flight = self.pending.iter().filter(|l| l.revealed()).count() as u32;
        // A one-time code: one attempt per room, and within the budget.
        let this_room = self.failed_attempts - self.cfg.failed_before + in_flight;
        self.failed_attempts + in_flight < self.cfg.tries && (!self.proof.one_time || this_room < 1)
    }

    /// Lets connections held back by [`Room::may_reveal`] go on, now that
    /// an attempt in flight has ended.
    pub(super) fn resume_held(&mut self, now: Instant) {
        while self.outbox.outcome.is_none() && self.current.is_none() && self.may_reveal() {
            let Some(i) = self
                .pending
                .iter()
                .position(|l| l.first_flight_seen() && !l.revealed())
            else {
                return;
            };
            let id = self.pending[i].id;
            self.process_pending(i, now);
            let still_held = self.pending.iter().any(|l| l.id == id && !l.revealed());
            if still_held {
                return;
            }
        }
    }

    pub(super) fn process_pending(&mut self, i: usize, now: Instant) {
        let may_reveal = self.may_reveal();
        let link = &mut self.pending[i];
        if !link.is_keyed() {
            match link.advance(self.cfg.role, &mut *self.rng, may_reveal) {
                Err(e) => return self.drop_attempt(i, e, now),
                Ok(false) => return,
                Ok(true) => {}
            }
        }
        // The listener's key confirmation: the dialer's HELLO (or RESUME)
        // comes first and we seal nothing of ours before it verifies.
        let opened = match link.open_next() {
            Err(e) => return self.drop_attempt(i, e, now),
            Ok(None) => return,
            Ok(Some(o)) => o,
        };
        if link.resuming {
            if opened.kind != Kind::Resume {
                return self.drop_attempt(i, violation("a resume without RESUME"), now);
            }
            let parsed = self.parse_resume(&self.pending[i].rx.data()[opened.payload.clone()]);
            let peer = match parsed {
                Ok(p) => p,
                Err(e) => return self.drop_attempt(i, e, now),
            };
            let mut link = self.pending.swap_remove(i);
            link.rx.consume(opened.consumed);
            link.confirm();
            link.recv_pos = self.recv.accepted();
            let ours = self.resume_record();
            if link.seal(Kind::Resume, &ours, now).is_err() {
                return self.outbox.actions.push_back(Action::Close(link.id));
            }
            self.resumed(link, peer, now);
            return self.process_current(now);
        }
        if opened.kind != Kind::Hello {
            return self.drop_attempt(i, violation("the first record was not HELLO"), now);
        }
        let payload = link.rx.data()[opened.payload.clone()].to_vec();
        link.rx.consume(opened.consumed);
        link.confirm();
        let mut link = self.pending.swap_remove(i);
        let name = self.take_hello(&mut link, &payload);
        // One room, two people: everyone else is turned away. With resume
        // the port stays open, for resumes of this room only.
        for other in self.pending.drain(..) {
            self.outbox.actions.push_back(Action::Close(other.id));
        }
        if self.resume.is_none() {
            self.outbox.actions.push_back(Action::StopAccepting);
        }
        let ours = self.hello();
        if let Err(e) = link.seal(Kind::Hello, &ours, now) {
            self.current = Some(link);
            return self.fail(e, now);
        }
        self.joined(&mut link, name);
        self.current = Some(link);
        self.seal_pending(now);
        self.process_current(now);
    }

    pub(super) fn joined(&mut self, link: &mut Link, name: String) {
        self.outbox.events.push_back(Event::Joined {
            link: link.id,
            name: Some(name),
            verify_code: link.verify_code.take(),
            failed_attempts: self.failed_attempts,
        });
    }

    /// Listener: the connections at the door whose handshake ran out of
    /// time. One short of its first flight goes without a word; one with
    /// it is a failed attempt.
    pub(super) fn admission_timeout(&mut self, now: Instant) {
        let role = self.cfg.role;
        while let Some(i) = self
            .pending
            .iter()
            .position(|l| now >= l.handshake_deadline(role))
        {
            let link = &self.pending[i];
            if link.paired && !link.heard && self.down.is_none() {
                // Not a byte from the peer a relay paired us with, for the
                // whole handshake timeout: a dialer sends at once.
                let secs = self.cfg.handshake_timeout.as_secs_f64();
                let link = self.pending.swap_remove(i);
                self.outbox.actions.push_back(Action::Close(link.id));
                return self.fail(
                    Error::Handshake(format!(
                        "the relay paired us with a peer that sent nothing in {secs} s: \
                         the relay is not relaying, or it paired two listeners"
                    )),
                    now,
                );
            }
            if !self.pending[i].first_flight_seen() {
                // Short of its first flight: no attempt, and not a word.
                let link = self.pending.swap_remove(i);
                self.outbox.actions.push_back(Action::Close(link.id));
                continue;
            }
            let e = self.pending[i].timeout_error(role, now);
            self.drop_attempt(i, e, now);
            if self.outbox.outcome.is_some() {
                return;
            }
        }
    }
}
