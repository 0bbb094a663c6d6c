//! The room's file streams (protocol v3, PROTOCOL.md §9): an [`OutFile`]
//! for each file we offer, an [`InFile`] for each the peer offers, in one
//! [`Transfers`] table addressed by [`StreamId`].
//!
//! A file stream is one-way. Its sender offers it (OFFER: size and name);
//! nothing of it moves, and nothing is written, before the receiver takes
//! it (ACCEPT, with the offset to go on from and a credit limit). The
//! receiver grants credit as its disk takes the bytes (CREDIT), so a slow
//! disk holds back that file only, never the chat or the socket. The
//! sender ends with FIN and the SHA-256 of the whole file, which the
//! receiver checks before the file gets its name; CLOSE says how a stream
//! ended (saved, rejected, cancelled, failed), either way.
//!
//! The file on the sender's disk is its own replay buffer: across a lost
//! connection the receiver says on the new one where it stopped (ACCEPT
//! again), and the sender reads the file again from there. Nothing of a
//! file is kept in memory beyond one buffer each way.
//!
//! The core does no I/O: the driver reads the file into
//! [`Transfers::read_buf`] at [`Transfers::to_read`]'s offset, and writes
//! what [`Transfers::to_write`] gives to the file it created at ACCEPT.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use ring::digest;

use super::link::Link;
use super::stream::{violation, RecordSink, StreamId};
use super::{Event, IO_CAP};
use crate::buf::ByteBuf;
use crate::error::Error;
use crate::protocol::file::{self, Accept, Close, CloseCode, Credit, Offer, DIGEST_LEN, ID_LEN};
use crate::protocol::record::{Kind, MAX_PAYLOAD, OVERHEAD};
use crate::protocol::Role;

/// The credit a receiver grants beyond what its disk has taken: the most of
/// one file it holds in memory, and so the most one file can have in
/// flight per round trip (2 MiB: 100 MB/s at 20 ms, 20 MB/s at 100 ms),
/// as for the chat stream.
pub const FILE_WINDOW: u64 = 2 * 1024 * 1024;
/// A receiver grants more credit once its disk took this much more.
const CREDIT_STEP: u64 = FILE_WINDOW / 4;
/// Offers of the peer's not yet ended at once: more are rejected, so a
/// peer cannot make us hold a buffer per offer without end.
pub const MAX_OPEN_OFFERS: usize = 64;
/// File bytes are sealed only while the link holds less than this to
/// send: one CHUNK, into an empty buffer. A chat line typed during a
/// transfer so waits behind at most one record of file data of ours (and
/// what the socket holds unsent, which the driver bounds with
/// `TCP_NOTSENT_LOWAT`); on loopback a file moves as fast as with more.
pub const FILE_TX_BUDGET: usize = 1;
/// The most file bytes one CHUNK carries.
const CHUNK_MAX: usize = MAX_PAYLOAD - ID_LEN;
/// What a CHUNK puts on the wire besides its file bytes.
const CHUNK_OVERHEAD: usize = OVERHEAD + ID_LEN;
/// While TCP's window limits file bytes, a CHUNK smaller than this waits
/// for more room (unless it ends its file): short segments each take a
/// whole slot of the window.
const MIN_PACED_CHUNK: usize = 1024;

/// Where file chunks are sealed: a link, which says how much it holds to
/// send and how many file bytes the transport takes now.
pub trait ChunkSink: RecordSink {
    /// Wire bytes waiting to be written.
    fn queued(&self) -> usize;
    /// Wire bytes of file data that may be sealed now: what the driver
    /// last said the transport takes without filling TCP's window, less
    /// what was sealed since; `usize::MAX` without such a limit.
    fn room(&self) -> usize;
    /// `n` wire bytes of file data were sealed.
    fn took(&mut self, n: usize);
    /// File bytes are waiting for room: the driver must look again.
    fn hold(&mut self);
}

impl ChunkSink for Link {
    fn queued(&self) -> usize {
        self.tx.len()
    }

    fn room(&self) -> usize {
        self.send_room.unwrap_or(usize::MAX)
    }

    fn took(&mut self, n: usize) {
        if let Some(r) = self.send_room.as_mut() {
            *r = r.saturating_sub(n);
        }
    }

    fn hold(&mut self) {
        self.room_held = true;
    }
}

/// How a file stream ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileOutcome {
    /// The receiver verified its SHA-256 and saved it.
    Saved,
    /// The receiver did not take it.
    Rejected { by_peer: bool, why: String },
    /// A user stopped it.
    Cancelled { by_peer: bool, why: String },
    /// It could not go on: the side that failed says why.
    Failed { by_peer: bool, why: String },
}

impl FileOutcome {
    fn from_close(code: CloseCode, why: &[u8]) -> FileOutcome {
        let why = shown(why);
        match code {
            CloseCode::Saved => FileOutcome::Saved,
            CloseCode::Rejected => FileOutcome::Rejected { by_peer: true, why },
            CloseCode::Cancelled => FileOutcome::Cancelled { by_peer: true, why },
            CloseCode::Failed => FileOutcome::Failed { by_peer: true, why },
        }
    }

    /// The CLOSE that tells the peer of an end of ours.
    fn close(&self) -> (CloseCode, &str) {
        match self {
            FileOutcome::Saved => (CloseCode::Saved, ""),
            FileOutcome::Rejected { why, .. } => (CloseCode::Rejected, why),
            FileOutcome::Cancelled { why, .. } => (CloseCode::Cancelled, why),
            FileOutcome::Failed { why, .. } => (CloseCode::Failed, why),
        }
    }
}

/// Words from the peer, for our user: control characters replaced.
fn shown(why: &[u8]) -> String {
    String::from_utf8_lossy(why)
        .chars()
        .map(|c| {
            if c.is_control() || crate::names::is_invisible(c) {
                '?'
            } else {
                c
            }
        })
        .collect()
}

/// One transfer, as the front-end shows its progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProgress {
    pub id: StreamId,
    /// We send it (else we receive it).
    pub outgoing: bool,
    /// The name as offered (the peer's bytes for an incoming file).
    pub name: Vec<u8>,
    pub size: u64,
    /// Bytes sent (outgoing) or handed to the disk (incoming: written, or
    /// queued to be).
    pub done: u64,
    /// When it was accepted; None while it waits for an answer.
    pub since: Option<Instant>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum OutState {
    /// Waiting for the peer's ACCEPT or CLOSE.
    Offered,
    /// Sending from `pos`.
    Sending,
    /// FIN is sealed; waiting for the peer's CLOSE.
    FinSent,
    /// A resumed connection: nothing goes until the peer says again where
    /// it stopped (ACCEPT).
    Reaccept,
    Ended(FileOutcome),
}

/// A file we offer.
pub struct OutFile {
    id: StreamId,
    name: Vec<u8>,
    size: u64,
    state: OutState,
    /// Our OFFER is sealed on the current connection.
    offer_sealed: bool,
    /// The next offset to seal.
    pos: u64,
    /// The peer's credit: we may seal up to this offset.
    limit: u64,
    /// File bytes read from `pos` on and not sealed yet.
    buf: ByteBuf,
    /// The offset the next read lands at: `pos + buf.len()`.
    read_at: u64,
    hasher: Option<digest::Context>,
    /// The SHA-256 covers the file up to here (each byte once, also when
    /// a resume reads part of it again).
    hashed: u64,
    digest: Option<[u8; DIGEST_LEN]>,
    /// The most we ever sealed, over all connections.
    sent: u64,
    /// Our CLOSE (a cancel or a failure of ours) is due on this connection.
    close_due: bool,
    /// The end is ours to tell (a resume tells it again).
    tell: bool,
    since: Option<Instant>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum InState {
    /// Shown to the user; waiting for an answer.
    Offered,
    Receiving,
    /// FIN came and the SHA-256 matched; what is buffered goes to disk.
    Verified,
    /// All of it is on disk: the driver gives it its name.
    Committing,
    Ended(FileOutcome),
}

/// A file the peer offers.
pub struct InFile {
    id: StreamId,
    name: Vec<u8>,
    size: u64,
    state: InState,
    /// Bytes taken from the peer, over all connections.
    accepted: u64,
    /// Bytes the driver wrote to disk.
    written: u64,
    /// The credit we granted.
    limit: u64,
    /// What waits for the disk.
    buf: ByteBuf,
    hasher: Option<digest::Context>,
    /// Our ACCEPT (where to go on, and the credit) is due on this connection.
    accept_due: bool,
    /// A CREDIT is due.
    credit_due: bool,
    /// Our CLOSE is due on this connection.
    close_due: bool,
    /// The end is ours to tell (a resume tells it again).
    tell: bool,
    since: Option<Instant>,
}

/// Every file stream of a room.
pub struct Transfers {
    role: Role,
    /// Files we offer, by id.
    out: Vec<OutFile>,
    /// Files the peer offers, by id.
    inc: Vec<InFile>,
    /// The id of our next offer.
    next_id: u32,
    /// The highest id the peer offered.
    peer_max: u32,
    scratch: Vec<u8>,
}

/// Whom a stream id belongs to: the dialer's offers have even ids from 2,
/// the listener's odd ids from 3; 0 and 1 are the chat stream's.
fn offered_by(id: u32) -> Option<Role> {
    match id {
        0 | 1 => None,
        n if n % 2 == 0 => Some(Role::Dialer),
        _ => Some(Role::Listener),
    }
}

impl Transfers {
    pub fn new(role: Role) -> Transfers {
        Transfers {
            role,
            out: Vec::new(),
            inc: Vec::new(),
            next_id: if role == Role::Dialer { 2 } else { 3 },
            peer_max: 0,
            scratch: Vec::with_capacity(MAX_PAYLOAD),
        }
    }

    /// Offers a file of `size` bytes: it goes out once the room is up.
    pub fn offer(&mut self, name: &[u8], size: u64) -> Result<StreamId, Error> {
        let id = self.next_id;
        self.next_id = id
            .checked_add(2)
            .ok_or_else(|| Error::Usage("too many files offered in one room".into()))?;
        let name = name[..name.len().min(file::MAX_NAME)].to_vec();
        self.out.push(OutFile {
            id: StreamId(id),
            name,
            size,
            state: OutState::Offered,
            offer_sealed: false,
            pos: 0,
            limit: 0,
            buf: ByteBuf::with_capacity(0),
            read_at: 0,
            hasher: Some(digest::Context::new(&digest::SHA256)),
            hashed: 0,
            digest: None,
            sent: 0,
            close_due: false,
            tell: false,
            since: None,
        });
        Ok(StreamId(id))
    }

    fn out_mut(&mut self, id: StreamId) -> Option<&mut OutFile> {
        self.out.iter_mut().find(|f| f.id == id)
    }

    fn inc_mut(&mut self, id: StreamId) -> Option<&mut InFile> {
        self.inc.iter_mut().find(|f| f.id == id)
    }

    /// Returns true if and only if no stream is still moving or waiting,
    /// and every CLOSE of ours is sealed: the room may end.
    pub fn idle(&self) -> bool {
        self.out
            .iter()
            .all(|f| matches!(f.state, OutState::Ended(_)) && !f.close_due)
            && self
                .inc
                .iter()
                .all(|f| matches!(f.state, InState::Ended(_)) && !f.close_due)
    }

    /// Returns true if and only if bytes of a file of ours are moving.
    pub fn sending(&self) -> bool {
        self.out.iter().any(|f| f.state == OutState::Sending)
    }

    /// Returns true if and only if we offered files and every one ended.
    pub fn all_sent_ended(&self) -> bool {
        !self.out.is_empty()
            && self
                .out
                .iter()
                .all(|f| matches!(f.state, OutState::Ended(_)))
    }

    /// The files that did not arrive whole, in words, or None when all did
    /// (both ways): what `--send` and `--receive` exit on.
    pub fn verdict(&self) -> Option<String> {
        let failed_out = self
            .out
            .iter()
            .filter(|f| f.state != OutState::Ended(FileOutcome::Saved))
            .count();
        let failed_in = self
            .inc
            .iter()
            .filter(|f| f.state != InState::Ended(FileOutcome::Saved))
            .count();
        let files = |n: usize| if n == 1 { "file" } else { "files" };
        match (failed_out, failed_in) {
            (0, 0) => None,
            (o, 0) => Some(format!(
                "{o} of the {} {} we offered did not arrive",
                self.out.len(),
                files(self.out.len())
            )),
            (0, i) => Some(format!(
                "{i} of the {} {} the peer offered did not arrive whole",
                self.inc.len(),
                files(self.inc.len())
            )),
            (o, i) => Some(format!(
                "{o} file{} we offered and {i} the peer offered did not arrive whole",
                if o == 1 { "" } else { "s" }
            )),
        }
    }

    /// Every transfer not ended yet, for a progress line.
    pub fn progress(&self) -> Vec<FileProgress> {
        let out = self
            .out
            .iter()
            .filter(|f| !matches!(f.state, OutState::Ended(_)))
            .map(|f| FileProgress {
                id: f.id,
                outgoing: true,
                name: f.name.clone(),
                size: f.size,
                done: f.sent,
                since: f.since,
            });
        let inc = self
            .inc
            .iter()
            .filter(|f| !matches!(f.state, InState::Ended(_)))
            .map(|f| FileProgress {
                id: f.id,
                outgoing: false,
                name: f.name.clone(),
                size: f.size,
                done: f.written,
                since: f.since,
            });
        out.chain(inc).collect()
    }

    // ----- the user's answers -------------------------------------------

    /// Our user takes the peer's offer `id`: the driver has a file to
    /// write it to.
    pub fn accept(&mut self, id: StreamId, now: Instant) -> Result<(), String> {
        let f = self.inc_mut(id).ok_or("no such offer")?;
        if f.state != InState::Offered {
            return Err("that offer was answered already".into());
        }
        f.state = InState::Receiving;
        f.buf = ByteBuf::with_capacity(FILE_WINDOW as usize);
        f.limit = FILE_WINDOW.min(f.size);
        f.accept_due = true;
        f.since = Some(now);
        Ok(())
    }

    /// Our user turns the peer's offer `id` down.
    pub fn reject(&mut self, id: StreamId, why: &str, events: &mut VecDeque<Event>, now: Instant) {
        if let Some(f) = self.inc_mut(id).filter(|f| f.state == InState::Offered) {
            let outcome = FileOutcome::Rejected {
                by_peer: false,
                why: why.into(),
            };
            end_in(f, outcome, true, events, now);
        }
    }

    /// Our user stops transfer `id`, either way. Returns false when there
    /// is no such transfer running.
    pub fn cancel(
        &mut self,
        id: StreamId,
        why: &str,
        events: &mut VecDeque<Event>,
        now: Instant,
    ) -> bool {
        let outcome = FileOutcome::Cancelled {
            by_peer: false,
            why: why.into(),
        };
        if let Some(f) = self
            .out_mut(id)
            .filter(|f| !matches!(f.state, OutState::Ended(_)))
        {
            end_out(f, outcome, true, events, now);
            return true;
        }
        if let Some(f) = self
            .inc_mut(id)
            .filter(|f| !matches!(f.state, InState::Ended(_)))
        {
            end_in(f, outcome, true, events, now);
            return true;
        }
        false
    }

    /// Stops everything still running (we leave the room), but for a file
    /// of ours sent whole (its FIN is out): the receiver names it.
    pub fn cancel_all(&mut self, why: &str, events: &mut VecDeque<Event>, now: Instant) {
        let ids: Vec<StreamId> = self
            .out
            .iter()
            .filter(|f| f.state != OutState::FinSent)
            .map(|f| f.id)
            .chain(self.inc.iter().map(|f| f.id))
            .collect();
        for id in ids {
            self.cancel(id, why, events, now);
        }
    }

    /// The peer is gone for good: whatever still runs failed.
    pub fn peer_gone(&mut self, why: &str, events: &mut VecDeque<Event>, now: Instant) {
        let outcome = FileOutcome::Failed {
            by_peer: true,
            why: why.into(),
        };
        for f in &mut self.out {
            if !matches!(f.state, OutState::Ended(_)) {
                end_out(f, outcome.clone(), false, events, now);
            }
        }
        for f in &mut self.inc {
            // A verified file is whole: it is still written and named.
            if !matches!(
                f.state,
                InState::Ended(_) | InState::Verified | InState::Committing
            ) {
                end_in(f, outcome.clone(), false, events, now);
            }
        }
    }

    /// Returns true if and only if a verified file of the peer's is still
    /// being written or named here: the room waits for it before it ends.
    pub fn finishing(&self) -> bool {
        self.inc
            .iter()
            .any(|f| matches!(f.state, InState::Verified | InState::Committing))
    }

    // ----- the driver's file I/O ----------------------------------------

    /// A file of ours, not among `skip`, with room for more of it: read
    /// it at the offset.
    pub fn to_read(&self, skip: &[StreamId]) -> Option<(StreamId, u64)> {
        self.out
            .iter()
            .filter(|f| !skip.contains(&f.id))
            .find(|f| f.state == OutState::Sending && f.read_at < f.size && f.buf.room() > 0)
            .map(|f| (f.id, f.read_at))
    }

    /// Where to read file `id` into; empty when it wants nothing.
    pub fn read_buf(&mut self, id: StreamId) -> &mut [u8] {
        let Some(f) = self.out_mut(id).filter(|f| f.state == OutState::Sending) else {
            return &mut [];
        };
        let left = (f.size - f.read_at).min(usize::MAX as u64) as usize;
        let spare = f.buf.spare();
        let n = spare.len().min(left);
        &mut spare[..n]
    }

    /// `n` bytes of file `id` were read into [`Transfers::read_buf`].
    pub fn read_done(&mut self, id: StreamId, n: usize) {
        let Some(f) = self.out_mut(id).filter(|f| f.state == OutState::Sending) else {
            return;
        };
        f.buf.commit(n);
        let end = f.read_at + n as u64;
        if end > f.hashed {
            // Only what the hash has not seen: a resume reads again from
            // an offset the hash is past.
            let data = f.buf.data();
            let fresh = (end - f.hashed) as usize;
            if let Some(h) = f.hasher.as_mut() {
                h.update(&data[data.len() - fresh..]);
            }
            f.hashed = end;
        }
        f.read_at = end;
        f.finish_digest();
    }

    /// A file of the peer's, not among `skip`, with bytes for the disk.
    pub fn to_write(&self, skip: &[StreamId]) -> Option<(StreamId, &[u8])> {
        self.inc
            .iter()
            .filter(|f| !skip.contains(&f.id))
            .find(|f| {
                matches!(f.state, InState::Receiving | InState::Verified) && !f.buf.is_empty()
            })
            .map(|f| (f.id, f.buf.data()))
    }

    /// Returns true if and only if every byte of the peer's file `id` is
    /// here and verified: what [`Transfers::to_write`] gives of it is all
    /// there will be.
    pub fn all_here(&self, id: StreamId) -> bool {
        self.inc
            .iter()
            .any(|f| f.id == id && f.state == InState::Verified)
    }

    /// `n` bytes of [`Transfers::to_write`] were handed to the disk
    /// (written, or queued to be: the driver's writer reports a failure
    /// later, through [`Transfers::io_failed`]).
    pub fn written(&mut self, id: StreamId, n: usize, events: &mut VecDeque<Event>) {
        let Some(f) = self.inc_mut(id) else { return };
        if !matches!(f.state, InState::Receiving | InState::Verified) {
            return;
        }
        f.buf.consume(n);
        f.written += n as u64;
        let grant = (f.written + FILE_WINDOW).min(f.size);
        if grant >= f.limit + CREDIT_STEP || (grant == f.size && grant > f.limit) {
            f.limit = grant;
            f.credit_due = true;
        }
        committing(f, events);
    }

    /// The driver gave a verified file its name. Returns false if the
    /// transfer had ended meanwhile (a cancel): the file is not wanted.
    pub fn saved(&mut self, id: StreamId, events: &mut VecDeque<Event>, now: Instant) -> bool {
        let Some(f) = self.inc_mut(id).filter(|f| f.state == InState::Committing) else {
            return false;
        };
        end_in(f, FileOutcome::Saved, true, events, now);
        true
    }

    /// The driver could not read or write file `id`: it ends, and the peer
    /// is told why.
    pub fn io_failed(
        &mut self,
        id: StreamId,
        why: &str,
        events: &mut VecDeque<Event>,
        now: Instant,
    ) {
        let outcome = FileOutcome::Failed {
            by_peer: false,
            why: why.into(),
        };
        if let Some(f) = self
            .out_mut(id)
            .filter(|f| !matches!(f.state, OutState::Ended(_)))
        {
            return end_out(f, outcome, true, events, now);
        }
        if let Some(f) = self
            .inc_mut(id)
            .filter(|f| !matches!(f.state, InState::Ended(_)))
        {
            end_in(f, outcome, true, events, now);
        }
    }

    // ----- the peer's records -------------------------------------------

    /// One of the peer's file records. `resumable`: a resume may repeat
    /// what the old connection already delivered.
    pub fn on_record(
        &mut self,
        kind: Kind,
        payload: &[u8],
        resumable: bool,
        events: &mut VecDeque<Event>,
        now: Instant,
    ) -> Result<(), Error> {
        match kind {
            Kind::Offer => self.on_offer(payload, resumable, events),
            Kind::Accept => self.on_accept(payload, now),
            Kind::Credit => self.on_credit(payload),
            Kind::Chunk => self.on_chunk(payload),
            Kind::Fin => self.on_fin(payload, resumable, events, now),
            Kind::Close => self.on_close(payload, events, now),
            _ => Ok(()),
        }
    }

    fn on_offer(
        &mut self,
        payload: &[u8],
        resumable: bool,
        events: &mut VecDeque<Event>,
    ) -> Result<(), Error> {
        let o = Offer::decode(payload).ok_or_else(|| violation("an OFFER that does not parse"))?;
        if offered_by(o.id) == Some(self.role) || offered_by(o.id).is_none() {
            return Err(violation(
                "an OFFER with a stream id that is not the peer's",
            ));
        }
        if o.id <= self.peer_max {
            // A resume offers again what may not have arrived.
            return match self.inc.iter().find(|f| f.id.0 == o.id) {
                Some(f) if resumable && f.size == o.size && f.name == o.name => Ok(()),
                _ => Err(violation("an OFFER that reuses a stream id")),
            };
        }
        self.peer_max = o.id;
        let open = self
            .inc
            .iter()
            .filter(|f| !matches!(f.state, InState::Ended(_)))
            .count();
        let mut f = InFile {
            id: StreamId(o.id),
            name: o.name.to_vec(),
            size: o.size,
            state: InState::Offered,
            accepted: 0,
            written: 0,
            limit: 0,
            buf: ByteBuf::with_capacity(0),
            hasher: Some(digest::Context::new(&digest::SHA256)),
            accept_due: false,
            credit_due: false,
            close_due: false,
            tell: false,
            since: None,
        };
        if open >= MAX_OPEN_OFFERS {
            let outcome = FileOutcome::Rejected {
                by_peer: false,
                why: format!("more than {MAX_OPEN_OFFERS} files offered at once"),
            };
            f.state = InState::Ended(outcome);
            f.close_due = true;
            f.tell = true;
        } else {
            events.push_back(Event::FileOffered {
                id: f.id,
                name: f.name.clone(),
                size: f.size,
            });
        }
        self.inc.push(f);
        Ok(())
    }

    fn on_accept(&mut self, payload: &[u8], now: Instant) -> Result<(), Error> {
        let a = Accept::decode(payload).ok_or_else(|| violation("an ACCEPT of the wrong size"))?;
        let f = self
            .out_mut(StreamId(a.id))
            .ok_or_else(|| violation("an ACCEPT of a stream we did not offer"))?;
        match f.state {
            OutState::Offered | OutState::Reaccept => {}
            // Crossed with our cancel or failure: nothing to do.
            OutState::Ended(_) => return Ok(()),
            _ => return Err(violation("a second ACCEPT on one connection")),
        }
        if a.at > f.size || a.at > f.sent || a.limit < a.at {
            return Err(violation("an ACCEPT from outside what we sent"));
        }
        f.state = OutState::Sending;
        f.pos = a.at;
        f.read_at = a.at;
        f.limit = a.limit.min(f.size);
        if f.buf.capacity() == 0 {
            f.buf = ByteBuf::with_capacity(IO_CAP);
        }
        let pending = f.buf.len();
        f.buf.consume(pending);
        f.since.get_or_insert(now);
        // An empty file is hashed whole already.
        f.finish_digest();
        Ok(())
    }

    fn on_credit(&mut self, payload: &[u8]) -> Result<(), Error> {
        let c = Credit::decode(payload).ok_or_else(|| violation("a CREDIT of the wrong size"))?;
        let f = self
            .out_mut(StreamId(c.id))
            .ok_or_else(|| violation("a CREDIT for a stream we did not offer"))?;
        if matches!(f.state, OutState::Sending | OutState::FinSent) {
            f.limit = f.limit.max(c.limit.min(f.size));
        }
        Ok(())
    }

    fn on_chunk(&mut self, payload: &[u8]) -> Result<(), Error> {
        let (id, data) =
            file::decode_chunk(payload).ok_or_else(|| violation("a CHUNK without a stream id"))?;
        let f = self
            .inc_mut(StreamId(id))
            .ok_or_else(|| violation("a CHUNK of a stream never offered"))?;
        match f.state {
            InState::Receiving => {}
            // In flight when we ended it.
            InState::Ended(_) => return Ok(()),
            InState::Offered => return Err(violation("a CHUNK before ACCEPT")),
            _ => return Err(violation("a CHUNK after FIN")),
        }
        let n = data.len() as u64;
        if f.accepted + n > f.size {
            return Err(violation("more of a file than its OFFER announced"));
        }
        if f.accepted + n > f.limit {
            return Err(violation("a CHUNK beyond the credit we granted"));
        }
        f.buf.extend(data);
        if let Some(h) = f.hasher.as_mut() {
            h.update(data);
        }
        f.accepted += n;
        Ok(())
    }

    fn on_fin(
        &mut self,
        payload: &[u8],
        resumable: bool,
        events: &mut VecDeque<Event>,
        now: Instant,
    ) -> Result<(), Error> {
        let (id, theirs) =
            file::decode_fin(payload).ok_or_else(|| violation("a FIN of the wrong size"))?;
        let f = self
            .inc_mut(StreamId(id))
            .ok_or_else(|| violation("a FIN of a stream never offered"))?;
        match f.state {
            InState::Receiving => {}
            InState::Ended(_) => return Ok(()),
            InState::Verified | InState::Committing if resumable => return Ok(()),
            _ => return Err(violation("a FIN out of place")),
        }
        if f.accepted != f.size {
            return Err(violation("a FIN before the whole file"));
        }
        let ours = f.hasher.take().map(|h| h.finish());
        if ours.as_ref().map(|d| d.as_ref()) == Some(&theirs[..]) {
            f.state = InState::Verified;
            committing(f, events);
        } else {
            let outcome = FileOutcome::Failed {
                by_peer: false,
                why: "its SHA-256 does not match: it was damaged or changed while it was sent"
                    .into(),
            };
            end_in(f, outcome, true, events, now);
        }
        Ok(())
    }

    fn on_close(
        &mut self,
        payload: &[u8],
        events: &mut VecDeque<Event>,
        now: Instant,
    ) -> Result<(), Error> {
        let c = Close::decode(payload).ok_or_else(|| violation("a CLOSE that does not parse"))?;
        let id = StreamId(c.id);
        let outcome = FileOutcome::from_close(c.code, c.why);
        if let Some(f) = self.out_mut(id) {
            match (&f.state, c.code) {
                (OutState::Ended(_), _) => return Ok(()),
                (OutState::FinSent | OutState::Reaccept, CloseCode::Saved)
                    if f.digest.is_some() && f.sent == f.size => {}
                (_, CloseCode::Saved) => return Err(violation("a file saved before it was sent")),
                (OutState::Offered | OutState::Reaccept, CloseCode::Rejected) => {}
                (_, CloseCode::Rejected) => return Err(violation("a REJECT after ACCEPT")),
                _ => {}
            }
            end_out(f, outcome, false, events, now);
            return Ok(());
        }
        if let Some(f) = self.inc_mut(id) {
            match (&f.state, c.code) {
                (InState::Ended(_), _) => return Ok(()),
                // Verified whole: a sender's late cancel changes nothing,
                // the file is named.
                (InState::Verified | InState::Committing, _) => return Ok(()),
                (_, CloseCode::Saved | CloseCode::Rejected) => {
                    return Err(violation("a sender's CLOSE that only a receiver may send"))
                }
                _ => {}
            }
            end_in(f, outcome, false, events, now);
            return Ok(());
        }
        Err(violation("a CLOSE of an unknown stream"))
    }

    // ----- sealing --------------------------------------------------------

    /// Seals what the file streams owe the peer: offers, answers, credit
    /// and ends (their bytes are [`Transfers::seal_chunks`]'). Returns
    /// false when the sink filled.
    pub fn seal_control(
        &mut self,
        sink: &mut impl RecordSink,
        now: Instant,
    ) -> Result<bool, Error> {
        for f in &mut self.out {
            if f.state == OutState::Offered && !f.offer_sealed {
                let p = Offer {
                    id: f.id.0,
                    size: f.size,
                    name: &f.name,
                }
                .encode();
                if !sink.seal(Kind::Offer, &p, now)? {
                    return Ok(false);
                }
                f.offer_sealed = true;
            }
            if f.close_due {
                if let OutState::Ended(o) = &f.state {
                    if !seal_close(sink, f.id, o, now)? {
                        return Ok(false);
                    }
                }
                f.close_due = false;
            }
        }
        for f in &mut self.inc {
            if f.accept_due {
                let p = Accept {
                    id: f.id.0,
                    at: f.accepted,
                    limit: f.limit,
                }
                .encode();
                if !sink.seal(Kind::Accept, &p, now)? {
                    return Ok(false);
                }
                f.accept_due = false;
                f.credit_due = false;
            }
            if f.credit_due {
                let p = Credit {
                    id: f.id.0,
                    limit: f.limit,
                }
                .encode();
                if !sink.seal(Kind::Credit, &p, now)? {
                    return Ok(false);
                }
                f.credit_due = false;
            }
            if f.close_due {
                if let InState::Ended(o) = &f.state {
                    if !seal_close(sink, f.id, o, now)? {
                        return Ok(false);
                    }
                }
                f.close_due = false;
            }
        }
        Ok(true)
    }

    /// Seals file bytes, one CHUNK per stream in turn, while the sink
    /// takes them (see [`ChunkSink`]); a FIN follows each file's last
    /// byte, room or not (it carries no file bytes).
    pub fn seal_chunks(&mut self, sink: &mut impl ChunkSink, now: Instant) -> Result<(), Error> {
        let mut out_of_room = false;
        loop {
            let mut progress = false;
            for f in &mut self.out {
                if f.state != OutState::Sending {
                    continue;
                }
                if sink.queued() >= FILE_TX_BUDGET {
                    return Ok(());
                }
                let credit = f.limit.saturating_sub(f.pos).min(CHUNK_MAX as u64) as usize;
                let mut n = f.buf.len().min(credit);
                if n > 0 && !out_of_room {
                    // The room counts wire bytes: a record's overhead
                    // too. A sliver of room waits for more, unless it
                    // takes what is left.
                    let usable = sink.room().saturating_sub(CHUNK_OVERHEAD);
                    if usable < n.min(MIN_PACED_CHUNK) {
                        sink.hold();
                        out_of_room = true;
                    } else {
                        n = n.min(usable);
                    }
                }
                if n > 0 && !out_of_room {
                    self.scratch.clear();
                    self.scratch.extend_from_slice(&file::chunk_header(f.id.0));
                    self.scratch.extend_from_slice(&f.buf.data()[..n]);
                    if !sink.seal(Kind::Chunk, &self.scratch, now)? {
                        return Ok(());
                    }
                    sink.took(n + CHUNK_OVERHEAD);
                    f.buf.consume(n);
                    f.pos += n as u64;
                    f.sent = f.sent.max(f.pos);
                    progress = true;
                }
                if f.pos == f.size {
                    if let Some(d) = f.digest {
                        if !sink.seal(Kind::Fin, &file::encode_fin(f.id.0, &d), now)? {
                            return Ok(());
                        }
                        f.state = OutState::FinSent;
                        f.buf = ByteBuf::with_capacity(0);
                        progress = true;
                    }
                }
            }
            if !progress {
                return Ok(());
            }
        }
    }

    /// A new connection carries the room on: offers not answered go again,
    /// a sender waits to hear where its receiver stopped, a receiver says
    /// so, and our CLOSEs go again (the peer ignores one it had).
    pub fn on_resume(&mut self) {
        for f in &mut self.out {
            match f.state {
                OutState::Offered => f.offer_sealed = false,
                OutState::Sending | OutState::FinSent => {
                    f.state = OutState::Reaccept;
                    let pending = f.buf.len();
                    f.buf.consume(pending);
                }
                OutState::Reaccept => {}
                OutState::Ended(_) => f.close_due = f.tell,
            }
        }
        for f in &mut self.inc {
            match f.state {
                InState::Offered => {}
                InState::Receiving | InState::Verified | InState::Committing => {
                    f.accept_due = true;
                }
                InState::Ended(_) => f.close_due = f.tell,
            }
        }
    }
}

impl OutFile {
    /// Once every byte went through the hash, the digest FIN carries.
    fn finish_digest(&mut self) {
        if self.hashed == self.size && self.digest.is_none() {
            if let Some(h) = self.hasher.take() {
                let mut d = [0u8; DIGEST_LEN];
                d.copy_from_slice(h.finish().as_ref());
                self.digest = Some(d);
            }
        }
    }
}

/// Seals the CLOSE that tells the peer how stream `id` ended (`outcome`,
/// ours). Returns false when it did not fit.
fn seal_close(
    sink: &mut impl RecordSink,
    id: StreamId,
    outcome: &FileOutcome,
    now: Instant,
) -> Result<bool, Error> {
    let (code, why) = outcome.close();
    let p = Close {
        id: id.0,
        code,
        why: why.as_bytes(),
    }
    .encode();
    sink.seal(Kind::Close, &p, now)
}

/// A verified file whose bytes are all on disk: the driver names it.
fn committing(f: &mut InFile, events: &mut VecDeque<Event>) {
    if f.state == InState::Verified && f.buf.is_empty() {
        f.state = InState::Committing;
        events.push_back(Event::FileComplete { id: f.id });
    }
}

/// What both directions tell the user when a stream ends.
fn ended_event(
    (id, outgoing, name, size): (StreamId, bool, &[u8], u64),
    outcome: &FileOutcome,
    since: Option<Instant>,
    now: Instant,
) -> Event {
    Event::FileEnded {
        id,
        outgoing,
        name: name.to_vec(),
        size,
        outcome: outcome.clone(),
        elapsed: since.map_or(Duration::ZERO, |s| now.saturating_duration_since(s)),
    }
}

fn end_out(
    f: &mut OutFile,
    outcome: FileOutcome,
    tell: bool,
    events: &mut VecDeque<Event>,
    now: Instant,
) {
    f.close_due = tell;
    f.tell = tell;
    let what = (f.id, true, &f.name[..], f.size);
    events.push_back(ended_event(what, &outcome, f.since, now));
    f.state = OutState::Ended(outcome);
    f.buf = ByteBuf::with_capacity(0);
    f.hasher = None;
}

fn end_in(
    f: &mut InFile,
    outcome: FileOutcome,
    tell: bool,
    events: &mut VecDeque<Event>,
    now: Instant,
) {
    f.close_due = tell;
    f.tell = tell;
    f.accept_due = false;
    f.credit_due = false;
    let what = (f.id, false, &f.name[..], f.size);
    events.push_back(ended_event(what, &outcome, f.since, now));
    f.state = InState::Ended(outcome);
    f.buf = ByteBuf::with_capacity(0);
    f.hasher = None;
}
