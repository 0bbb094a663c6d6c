//! The room's records: what the peer's mean (the handshake's last step,
//! key confirmation, then each stream's records), and what we seal, in
//! order: acknowledgement and credit, the chat's data, the files'
//! answers and bytes, then the chat's ends and the goodbye.

use super::*;

impl Room {
    pub(super) fn process_current(&mut self, now: Instant) {
        let Some(link) = self.current.as_mut() else {
            return;
        };
        if !link.is_keyed() {
            match link.advance(self.cfg.role, &mut *self.rng, true) {
                Err(e) => return self.fail(e, now),
                Ok(false) => return,
                Ok(true) if link.resuming => {
                    // A resume: our RESUME first; the streams go on once
                    // the listener's has verified.
                    link.recv_pos = self.recv.accepted();
                    let ours = self.resume_record();
                    let Some(link) = self.current.as_mut() else {
                        return;
                    };
                    if let Err(e) = link.seal(Kind::Resume, &ours, now) {
                        return self.fail(e, now);
                    }
                }
                Ok(true) => {
                    // The dialer confirms first: its HELLO, then its data,
                    // in the same write as its last key message.
                    let ours = self.hello();
                    let Some(link) = self.current.as_mut() else {
                        return;
                    };
                    if let Err(e) = link.seal(Kind::Hello, &ours, now) {
                        return self.fail(e, now);
                    }
                    self.seal_pending(now);
                }
            }
        }
        self.open_records(now);
    }

    pub(super) fn open_records(&mut self, now: Instant) {
        loop {
            if self.outbox.outcome.is_some()
                || self.farewell == Farewell::PeerLeft
                || !self.recv.reading()
            {
                return;
            }
            let Some(link) = self.current.as_mut() else {
                return;
            };
            let opened = match link.open_next() {
                Ok(Some(o)) => o,
                Ok(None) => return,
                Err(e) => return self.fail(e, now),
            };
            let confirmed = link.is_confirmed();
            if !confirmed && link.resuming {
                // The dialer's resume: the listener's RESUME verifies it.
                if opened.kind != Kind::Resume {
                    return self.fail(violation("a resume answered without RESUME"), now);
                }
                let payload = link.rx.data()[opened.payload.clone()].to_vec();
                link.rx.consume(opened.consumed);
                let peer = match self.parse_resume(&payload) {
                    Ok(p) => p,
                    Err(e) => return self.fail(e, now),
                };
                let Some(mut link) = self.current.take() else {
                    return;
                };
                link.confirm();
                self.resumed(link, peer, now);
                continue;
            }
            if !confirmed && opened.kind == Kind::Hello {
                let payload = link.rx.data()[opened.payload.clone()].to_vec();
                link.rx.consume(opened.consumed);
                let Some(mut link) = self.current.take() else {
                    return;
                };
                let name = self.take_hello(&mut link, &payload);
                link.confirm();
                self.outbox.events.push_back(Event::Joined {
                    link: link.id,
                    name: Some(name),
                    verify_code: link.verify_code.take(),
                    failed_attempts: 0,
                });
                self.current = Some(link);
                self.seal_pending(now);
                continue;
            }
            let Some(link) = self.current.as_mut() else {
                return;
            };
            let payload = &link.rx.data()[opened.payload.clone()];
            let resume = self.resume.is_some();
            let outcome = match opened.kind {
                _ if !confirmed => Err(violation("the first record was not HELLO")),
                Kind::Resume => Err(violation("a RESUME on a running connection")),
                Kind::Ack => match <[u8; 8]>::try_from(payload) {
                    Ok(n) => self
                        .send
                        .check_offset(u64::from_be_bytes(n), "an ACK")
                        .map(|at| self.send.on_ack(at)),
                    Err(_) => Err(violation("an ACK record of the wrong size")),
                },
                Kind::Hello => Err(violation("a second HELLO")),
                Kind::Data => self.recv.on_data(&mut link.recv_pos, payload),
                Kind::Credit if file::Credit::decode(payload).is_some_and(|c| c.id == 0) => {
                    if let Some(c) = file::Credit::decode(payload) {
                        self.send.on_credit(c.limit);
                    }
                    Ok(())
                }
                Kind::Offer
                | Kind::Accept
                | Kind::Credit
                | Kind::Chunk
                | Kind::Fin
                | Kind::Close => {
                    self.files
                        .on_record(opened.kind, payload, resume, &mut self.outbox.events, now)
                }
                Kind::Received => self.send.on_received(payload, resume),
                Kind::WriteFailed if payload.len() > MAX_WHY => {
                    Err(violation("a WRITE_FAILED reason too long"))
                }
                Kind::WriteFailed => {
                    // Words for our user from the peer: shown safely.
                    let why = String::from_utf8_lossy(payload)
                        .chars()
                        .map(|c| if c.is_control() { '?' } else { c })
                        .collect();
                    self.peer_write_failed = Some(why);
                    self.farewell = Farewell::PeerLeft;
                    self.files
                        .peer_gone("the peer could not go on", &mut self.outbox.events, now);
                    Ok(())
                }
                _ if !payload.is_empty() => Err(violation("a control record with a payload")),
                // A resume may repeat an end the old connection delivered.
                Kind::Eof => self.recv.on_eof(resume).map(|news| {
                    if news {
                        self.outbox.events.push_back(Event::PeerDone);
                    }
                }),
                Kind::Done => self.send.on_done(resume),
                Kind::Bye => {
                    self.farewell = Farewell::PeerLeft;
                    self.files
                        .peer_gone("the peer left the room", &mut self.outbox.events, now);
                    self.outbox.events.push_back(Event::PeerLeft);
                    Ok(())
                }
                Kind::Ping => Ok(()),
            };
            link.rx.consume(opened.consumed);
            if let Err(e) = outcome {
                return self.fail(e, now);
            }
            // An EOF is answered with DONE (sealed now, or once tx has room).
            self.seal_pending(now);
        }
    }

    /// Seals pending input into DATA records, then DONE, EOF, and on
    /// leaving RECEIVED (what we delivered) followed by BYE, when due.
    pub(super) fn seal_pending(&mut self, now: Instant) {
        if self.outbox.outcome.is_some() {
            return;
        }
        if let Err(e) = self.seal_streams(now) {
            self.fail(e, now);
        }
    }

    /// Seals, in this order: an ACK when one is due, our pending DATA,
    /// and then (unless a BYE ended the room) DONE for the peer's EOF,
    /// our EOF, and on leaving RECEIVED (what we delivered) with BYE.
    pub(super) fn seal_streams(&mut self, now: Instant) -> Result<(), Error> {
        let Some(link) = self.current.as_mut() else {
            return Ok(());
        };
        if !link.is_keyed() || (link.resuming && !link.is_confirmed()) {
            return Ok(());
        }
        if self.resume.is_some() {
            self.recv.seal_ack(link, ACK_EVERY, now)?;
        }
        self.recv.seal_credit(link, now)?;
        if !self.send.seal_data(link, now)? {
            return Ok(());
        }
        if matches!(self.farewell, Farewell::PeerLeft | Farewell::ByeSent(_)) {
            return Ok(());
        }
        // The files after the chat: their answers and ends, then their
        // bytes while the link is nearly empty, so a line typed meanwhile
        // goes out ahead of them.
        if !self.files.seal_control(link, now)? {
            return Ok(());
        }
        self.files.seal_chunks(link, now)?;
        let done_before = self.recv.state() == Receiving::DoneSent;
        self.recv.seal_done(link, now)?;
        if !done_before && self.recv.state() == Receiving::DoneSent {
            link.done_end = Some(link.flushed + link.tx.len() as u64);
        }
        if !self.send.seal_eof(link, now)? {
            return Ok(());
        }
        if let Farewell::Leaving(reason) = self.farewell {
            // RECEIVED and BYE go together or not at all.
            if link.tx.room() < 2 * (crate::protocol::record::OVERHEAD + 8) {
                return Ok(());
            }
            link.seal(Kind::Received, &self.recv.delivered().to_be_bytes(), now)?;
            link.seal(Kind::Bye, &[], now)?;
            self.farewell = Farewell::ByeSent(reason);
        }
        Ok(())
    }
}
