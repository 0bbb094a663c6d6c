//! The room's streams, as types (on the model of quinn-proto's
//! `connection/streams/send.rs` and `send_buffer.rs`): a [`SendStream`]
//! owns our direction (its offsets, its resume replay, the peer's
//! acknowledgements and our EOF), a [`RecvStream`] the peer's. Each is
//! addressed by a [`StreamId`]: stream 0, which carries the chat or the
//! piped bytes, one of each way. The room's file streams, one-way and
//! read again from disk on a resume, are in `transfer.rs`. The streams seal their own
//! records into a [`RecordSink`] (the room's link), so they can be tested
//! without one. The room's own states, its links and how it ends, stay in
//! [`super::room::Room`]; [`Farewell`] is the room's, not a stream's.

use std::time::Instant;

use super::link::Link;
use super::{LeaveReason, IO_CAP};
use crate::buf::Ring;
use crate::error::Error;
use crate::protocol::record::{Kind, MAX_PAYLOAD};

/// A stream's number within its room, as the wire carries it (protocol
/// v3): 0 is the chat stream; file streams are numbered by their sender
/// (`transfer.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(pub u32);

impl StreamId {
    /// Today's chat and pipe stream, the one every room has.
    pub const MAIN: StreamId = StreamId(0);
}

/// Stream 0's credit (protocol v3): the most of its data that may be sent
/// beyond what the receiver's user has taken. Both sides start with it, and
/// the receiver raises it (CREDIT with stream id 0) as its user reads, so a
/// receiver never stops reading its socket for stream 0's sake and a slow
/// reader of the chat stream holds back that stream only, never the
/// files beside it. 2 MiB per round trip (100 MB/s at 20 ms), as much as
/// resume already keeps by default; it is also what a slow reader makes
/// us hold in memory.
pub const MAIN_WINDOW: u64 = 2 * 1024 * 1024;
/// The receiver grants more once its user took this much more.
const MAIN_CREDIT_STEP: u64 = MAIN_WINDOW / 4;

/// Where a stream's records go: the room's current link. Sealing may not
/// fit (`Ok(false)`: try again once the link's buffer drains).
pub trait RecordSink {
    fn seal(&mut self, kind: Kind, payload: &[u8], now: Instant) -> Result<bool, Error>;
}

impl RecordSink for Link {
    fn seal(&mut self, kind: Kind, payload: &[u8], now: Instant) -> Result<bool, Error> {
        Link::seal(self, kind, payload, now)
    }
}

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

/// Our half of a stream: the user's input is read straight into `ring`,
/// sealed from it at `cursor` (the offset the current link seals next),
/// and kept until the peer acknowledges it while resume may be agreed
/// (`retain`), or dropped once sealed otherwise, also when the input is
/// rewindable: a resume then reads it again from an earlier offset. At
/// most [`IO_CAP`] of it waits unsealed: that is what stops the input.
pub struct SendStream {
    id: StreamId,
    state: Sending,
    /// Our data from offset `acked` on.
    ring: Ring,
    /// The most `ring` holds.
    limit: usize,
    acked: u64,
    cursor: u64,
    /// The most we ever sealed, over all connections.
    sent: u64,
    /// The offset of ours the peer acknowledged (ACK, RESUME, DONE). Equal
    /// to `acked` while the ring keeps sealed data; ahead of it when the
    /// input itself is read again instead.
    peer_acked: u64,
    /// A rewindable input must be read again from this offset before any
    /// more of it is taken.
    rewind: Option<u64>,
    /// Keep sealed data for a resume (until the HELLOs say otherwise).
    retain: bool,
    /// What the peer said it delivered of ours (its RECEIVED), if it did.
    peer_received: Option<u64>,
    /// The peer's credit: we seal data up to this offset.
    credit: u64,
}

impl SendStream {
    /// A stream that keeps sealed data for a resume when `retain`, up to
    /// `keep` bytes (never less than [`IO_CAP`]).
    pub fn new(id: StreamId, retain: bool, keep: usize) -> SendStream {
        let cap = if retain { keep.max(IO_CAP) } else { IO_CAP };
        SendStream {
            id,
            state: Sending::Open,
            // A ring: what it keeps is never moved, so keeping costs no
            // copy beyond reading the input into it.
            ring: Ring::with_capacity(cap),
            limit: cap,
            acked: 0,
            cursor: 0,
            sent: 0,
            peer_acked: 0,
            rewind: None,
            retain,
            peer_received: None,
            credit: MAIN_WINDOW,
        }
    }

    /// The peer's CREDIT: it takes our data up to `limit`.
    pub fn on_credit(&mut self, limit: u64) {
        self.credit = self.credit.max(limit);
    }

    pub fn id(&self) -> StreamId {
        self.id
    }

    pub fn state(&self) -> Sending {
        self.state
    }

    /// Resume was not agreed: sealed data need not be kept.
    pub fn no_resume(&mut self) {
        self.retain = false;
        let sealed = (self.cursor - self.acked) as usize;
        self.ring.consume(sealed);
        self.acked = self.cursor;
        self.limit = IO_CAP;
    }

    /// Returns true if and only if [`SendStream::input_buf`] is not empty.
    pub fn can_take_input(&self) -> bool {
        self.state == Sending::Open && self.rewind.is_none() && self.input_room() > 0
    }

    /// Where the user's input is read into.
    pub fn input_buf(&mut self) -> &mut [u8] {
        if !self.can_take_input() {
            return &mut [];
        }
        let n = self.input_room();
        let spare = self.ring.spare();
        let n = n.min(spare.len());
        &mut spare[..n]
    }

    /// `n` bytes were read into [`SendStream::input_buf`].
    pub fn input_received(&mut self, n: usize) {
        self.ring.commit(n);
    }

    /// Our input ended. Returns false when the end was read before a
    /// rewind, and so does not count: the input is read again from an
    /// earlier offset, and ends again there.
    pub fn input_ended(&mut self) -> bool {
        if self.rewind.is_some() {
            return false;
        }
        if self.state == Sending::Open {
            self.state = Sending::Ending;
        }
        true
    }

    /// The offset our input must be read again from before more of it is
    /// given.
    pub fn rewind_needed(&self) -> Option<u64> {
        self.rewind
    }

    /// Our input was rewound to [`SendStream::rewind_needed`].
    pub fn input_rewound(&mut self) {
        self.rewind = None;
    }

    /// Our data read and not yet sealed.
    pub fn unsealed(&self) -> usize {
        self.ring.len() - (self.cursor - self.acked) as usize
    }

    /// How much more input may be taken now: unsealed input is bounded by
    /// [`IO_CAP`], and everything kept by the limit.
    fn input_room(&self) -> usize {
        let unsealed = IO_CAP.saturating_sub(self.unsealed());
        let kept = self.limit.saturating_sub(self.ring.len());
        unsealed.min(kept)
    }

    /// All our data so far, sealed or not.
    pub fn taken(&self) -> u64 {
        self.acked + self.ring.len() as u64
    }

    /// The most of our data sealed, over all connections.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Our data taken that the peer has not acknowledged.
    pub fn unconfirmed(&self) -> u64 {
        self.taken().saturating_sub(self.peer_acked)
    }

    /// What the peer said it delivered of ours (RECEIVED), if it did.
    pub fn peer_received(&self) -> Option<u64> {
        self.peer_received
    }

    /// A stream offset of ours the peer reports (in ACK or RESUME): it
    /// must lie between what it already acknowledged and what we sent.
    pub fn check_offset(&self, at: u64, record: &str) -> Result<u64, Error> {
        if at < self.peer_acked || at > self.sent {
            return Err(violation(&format!("{record} from outside what we sent")));
        }
        Ok(at)
    }

    /// The peer has everything of ours before `at` (an ACK, RESUME or DONE
    /// says so): note it, and free it from the ring when that keeps sealed
    /// data. (A rewindable input keeps none: its ring holds only what is
    /// not sealed yet, which an acknowledgement never covers.)
    pub fn on_ack(&mut self, at: u64) {
        self.peer_acked = self.peer_acked.max(at);
        if self.retain && at > self.acked {
            let n = (at - self.acked).min(self.ring.len() as u64);
            self.ring.consume(n as usize);
            self.acked = at;
        }
    }

    /// The peer's DONE: it received our EOF and everything before it. A
    /// resume (`resumable`) may bring it again.
    pub fn on_done(&mut self, resumable: bool) -> Result<(), Error> {
        match self.state {
            Sending::Confirmed if resumable => Ok(()),
            Sending::EofSent => {
                self.state = Sending::Confirmed;
                // The peer has all of it.
                self.on_ack(self.sent);
                Ok(())
            }
            _ => Err(violation("an unexpected DONE")),
        }
    }

    /// The peer's RECEIVED: how much of ours it delivered. A resume
    /// (`resumable`) may bring it again, with the BYE it precedes.
    pub fn on_received(&mut self, payload: &[u8], resumable: bool) -> Result<(), Error> {
        match <[u8; 8]>::try_from(payload) {
            Ok(n) if self.peer_received.is_none() || resumable => {
                let n = u64::from_be_bytes(n);
                self.peer_received = Some(self.peer_received.map_or(n, |p| p.max(n)));
                Ok(())
            }
            Ok(_) => Err(violation("a second RECEIVED")),
            Err(_) => Err(violation("a RECEIVED record of the wrong size")),
        }
    }

    /// A new connection carries the stream on from `at`, where the peer's
    /// delivery stopped (checked by [`SendStream::check_offset`]);
    /// `eof_seen` when the peer has our EOF. Returns how much is sent
    /// again.
    pub fn on_resume(&mut self, at: u64, eof_seen: bool) -> u64 {
        self.on_ack(at);
        let resent = self.sent - at;
        if self.state == Sending::EofSent && !eof_seen {
            self.state = Sending::Ending;
        }
        if !self.retain {
            // Nothing sealed was kept: the input is read again from `at`,
            // and what was read past it and not sealed goes with it.
            let taken = self.taken();
            self.ring.consume(self.ring.len());
            self.acked = at;
            if at < taken {
                self.rewind = Some(at);
                if matches!(self.state, Sending::Ending | Sending::EofSent) {
                    self.state = Sending::Open; // it ends again when read
                }
            }
        }
        self.cursor = at;
        resent
    }

    /// Seals what waits as DATA, from the ring at the cursor, so a resume
    /// can seal it again. Returns false when the sink filled first.
    pub fn seal_data(&mut self, sink: &mut impl RecordSink, now: Instant) -> Result<bool, Error> {
        loop {
            let from = (self.cursor - self.acked) as usize;
            let waiting = self.ring.data_from(from);
            if waiting.is_empty() {
                return Ok(true);
            }
            let allowed = self.credit.saturating_sub(self.cursor);
            let n = waiting.len().min(MAX_PAYLOAD).min(allowed as usize);
            if n == 0 {
                // Out of credit: the rest waits for the peer's reader.
                return Ok(true);
            }
            if !sink.seal(Kind::Data, &waiting[..n], now)? {
                return Ok(false);
            }
            self.cursor += n as u64;
            self.sent = self.sent.max(self.cursor);
            if !self.retain {
                self.ring.consume(n);
                self.acked += n as u64;
            }
        }
    }

    /// Seals our EOF when it is due. Returns false when it is due and did
    /// not fit.
    pub fn seal_eof(&mut self, sink: &mut impl RecordSink, now: Instant) -> Result<bool, Error> {
        if self.unsealed() > 0 {
            // Data still waits (for credit): the end comes after it.
            return Ok(false);
        }
        if self.state == Sending::Ending {
            if !sink.seal(Kind::Eof, &[], now)? {
                return Ok(false);
            }
            self.state = Sending::EofSent;
        }
        Ok(true)
    }
}

/// The peer's half of a stream: what it sent, until our user has it.
/// `accepted` counts the data taken from the peer over all connections
/// (the offset a resume goes on from, and what ACK reports); `delivered`
/// what our user took from [`RecvStream::output`].
pub struct RecvStream {
    id: StreamId,
    state: Receiving,
    /// Plaintext for the user: a ring, so that a slow reader, which keeps
    /// it nearly full, never makes it move what it holds (a compacting
    /// buffer moved three times the data to a reader a little slower
    /// than the link).
    out: Ring,
    accepted: u64,
    /// What the last ACK we sealed carried.
    ack_sent: u64,
    delivered: u64,
    /// Nobody reads our output any more: drop what arrives.
    discard: bool,
    /// The credit we granted: the peer may send up to this offset.
    granted: u64,
    /// A CREDIT is due.
    credit_due: bool,
}

impl RecvStream {
    pub fn new(id: StreamId) -> RecvStream {
        RecvStream {
            id,
            state: Receiving::Open,
            // What the credit allows, and a record's worth: the peer
            // never makes us stop reading the socket.
            out: Ring::with_capacity(MAIN_WINDOW as usize + MAX_PAYLOAD),
            accepted: 0,
            ack_sent: 0,
            delivered: 0,
            discard: false,
            granted: MAIN_WINDOW,
            credit_due: false,
        }
    }

    pub fn id(&self) -> StreamId {
        self.id
    }

    pub fn state(&self) -> Receiving {
        self.state
    }

    /// Returns true if and only if a whole record's payload fits in the
    /// output: the stream reads its link only then.
    pub fn reading(&self) -> bool {
        self.out.room() >= MAX_PAYLOAD
    }

    /// The peer's data taken so far, over all connections.
    pub fn accepted(&self) -> u64 {
        self.accepted
    }

    /// What our user took from the output.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// The peer's DATA, which the link it came on places at `*link_pos`
    /// (the link counts from where the resume went on). After a resume
    /// the old connection may have delivered more than we reported: what
    /// we already have is dropped.
    pub fn on_data(&mut self, link_pos: &mut u64, payload: &[u8]) -> Result<(), Error> {
        if self.state.ended() {
            return Err(violation("data after EOF"));
        }
        let start = *link_pos;
        let n = payload.len() as u64;
        *link_pos += n;
        if start > self.accepted {
            return Err(violation("data beyond what we received"));
        }
        let skip = (self.accepted - start).min(n) as usize;
        if self.accepted + (n - skip as u64) > self.granted {
            return Err(violation("DATA beyond the credit we granted"));
        }
        if !self.discard {
            // The credit keeps the peer within the ring's capacity; were
            // it ever not to, no byte may be dropped silently.
            if self.out.extend(&payload[skip..]) < payload.len() - skip {
                return Err(violation("DATA beyond what the output holds"));
            }
        }
        self.accepted += n - skip as u64;
        Ok(())
    }

    /// The peer's EOF. Returns true when it is news; a resume
    /// (`resumable`) may repeat one the old connection delivered.
    pub fn on_eof(&mut self, resumable: bool) -> Result<bool, Error> {
        match self.state {
            Receiving::Open => {
                self.state = Receiving::Ended;
                Ok(true)
            }
            _ if resumable => Ok(false),
            _ => Err(violation("a second EOF")),
        }
    }

    /// A new connection carries the stream on; `done_seen` when the peer
    /// has our DONE.
    pub fn on_resume(&mut self, done_seen: bool) {
        if self.state == Receiving::DoneSent && !done_seen {
            self.state = Receiving::Ended;
        }
        // A CREDIT may have been lost with the old connection (none is
        // owed once the peer's EOF is in).
        self.credit_due = self.granted > MAIN_WINDOW && !self.state.ended();
    }

    /// Seals our CREDIT for stream 0 when one is due. One that does not
    /// fit waits for the next turn.
    pub fn seal_credit(&mut self, sink: &mut impl RecordSink, now: Instant) -> Result<(), Error> {
        if self.credit_due {
            let p = crate::protocol::file::Credit {
                id: self.id.0,
                limit: self.granted,
            }
            .encode();
            if sink.seal(Kind::Credit, &p, now)? {
                self.credit_due = false;
            }
        }
        Ok(())
    }

    /// What waits for our user, up to where the ring wraps (the rest
    /// follows once this is taken).
    pub fn output(&self) -> &[u8] {
        self.out.data_from(0)
    }

    pub fn output_is_empty(&self) -> bool {
        self.out.is_empty()
    }

    /// Our user took `n` bytes of the output.
    pub fn output_written(&mut self, n: usize) {
        self.delivered += n as u64;
        self.out.consume(n);
        self.grant(self.delivered);
    }

    /// Raises the credit to `taken` plus the window, once that is a step
    /// up from the last grant.
    fn grant(&mut self, taken: u64) {
        if self.state.ended() {
            // The peer's EOF is in: nothing more comes, and a CREDIT
            // sealed now would only trail our DONE, holding up the
            // clean end (its FIN would find our buffer not empty).
            return;
        }
        let limit = taken + MAIN_WINDOW;
        if limit >= self.granted + MAIN_CREDIT_STEP {
            self.granted = limit;
            self.credit_due = true;
        }
    }

    /// Nobody reads the output any more: drop what waits and what comes.
    pub fn discard(&mut self) {
        self.discard = true;
        let pending = self.out.len();
        self.out.consume(pending);
        // What is dropped counts as taken: the peer is not held back.
        self.grant(self.accepted);
    }

    /// Seals an ACK of what we accepted, once `after` more bytes came in
    /// since the last one. One that does not fit waits for the next turn.
    pub fn seal_ack(
        &mut self,
        sink: &mut impl RecordSink,
        after: u64,
        now: Instant,
    ) -> Result<(), Error> {
        let n = self.accepted;
        if n >= self.ack_sent + after && sink.seal(Kind::Ack, &n.to_be_bytes(), now)? {
            self.ack_sent = n;
        }
        Ok(())
    }

    /// Seals our DONE when the peer's EOF is in.
    pub fn seal_done(&mut self, sink: &mut impl RecordSink, now: Instant) -> Result<(), Error> {
        if self.state == Receiving::Ended && sink.seal(Kind::Done, &[], now)? {
            self.state = Receiving::DoneSent;
        }
        Ok(())
    }
}

/// A record that breaks the protocol: the connection is aborted.
pub fn violation(what: &str) -> Error {
    Error::Integrity(format!("protocol violation: {what}; connection aborted"))
}
