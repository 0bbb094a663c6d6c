//! File streams (protocol v3) between two sessions in memory: a file
//! crosses whole and verified, nothing moves before ACCEPT, the chat
//! goes ahead of a file's bytes, either side may stop one, a cut
//! connection carries a half-sent file on from where it stopped, and a
//! hostile peer cannot make us take more than it offered or write before
//! we said yes.

use std::collections::HashMap;

use super::*;
use crate::protocol::file::{self as wire, Accept, Close, CloseCode, Offer};
use crate::protocol::record::Kind;
use crate::session::stream::StreamId;
use crate::testkit::ScriptedDialer;

/// One side's disk: the files it offers and what it wrote of the peer's.
#[derive(Default)]
struct Disk {
    offered: HashMap<StreamId, Vec<u8>>,
    written: HashMap<StreamId, Vec<u8>>,
    /// Bytes read from our files, rereads after a resume included.
    read: u64,
    saved: Vec<StreamId>,
    /// Accept every offer as it comes (`--receive`).
    accept_all: bool,
    /// Name verified files only when told (the driver's naming thread
    /// is slow): they wait in `complete`.
    defer_naming: bool,
    complete: Vec<StreamId>,
    /// Files whose disk does not answer: the driver passes them over.
    stalled: Vec<StreamId>,
}

impl Disk {
    /// Does the driver's file I/O for `side` until nothing moves.
    fn pump(&mut self, side: &mut Side, now: Instant) -> bool {
        let mut moved = false;
        while let Some((id, at)) = side.s.file_to_read(&self.stalled) {
            let content = &self.offered[&id];
            let buf = side.s.file_read_buf(id);
            let n = buf.len().min(content.len() - at as usize);
            buf[..n].copy_from_slice(&content[at as usize..at as usize + n]);
            self.read += n as u64;
            side.s.file_read(id, n, now);
            moved = true;
            if n == 0 {
                break;
            }
        }
        while let Some((id, data)) = side.s.file_to_write(&self.stalled) {
            let n = data.len();
            self.written.entry(id).or_default().extend_from_slice(data);
            side.s.file_written(id, n, now);
            moved = true;
        }
        side.drain(now);
        let fresh: Vec<Event> = side.events.clone();
        for ev in fresh {
            match ev {
                Event::FileOffered { id, .. }
                    if self.accept_all && !self.written.contains_key(&id) =>
                {
                    self.written.insert(id, Vec::new());
                    side.s.accept_file(id, now).expect("an offer to accept");
                    moved = true;
                }
                Event::FileComplete { id } if self.defer_naming && !self.complete.contains(&id) => {
                    self.complete.push(id);
                }
                Event::FileComplete { .. } if self.defer_naming => {}
                Event::FileComplete { id } if !self.saved.contains(&id) => {
                    self.saved.push(id);
                    assert!(side.s.file_saved(id, now), "a verified file is wanted");
                    moved = true;
                }
                _ => {}
            }
        }
        side.drain(now);
        moved
    }
}

/// A pair with a disk each; `run` moves wire and file bytes until still.
struct Files {
    p: Pair,
    d: Disk,
    l: Disk,
}

impl Files {
    fn new(p: Pair) -> Files {
        Files {
            p,
            d: Disk::default(),
            l: Disk::default(),
        }
    }

    fn run(&mut self) {
        for _ in 0..100_000 {
            let now = self.p.now;
            let a = self.p.step();
            let b = self.d.pump(&mut self.p.dialer, now);
            let c = self.l.pump(&mut self.p.listener, now);
            if !(a || b || c) {
                return;
            }
        }
        panic!("the pair never settled");
    }

    /// The dialer offers `content` as `name`.
    fn offer(&mut self, name: &str, content: Vec<u8>) -> StreamId {
        let id = self
            .p
            .dialer
            .s
            .offer_file(name.as_bytes(), content.len() as u64, self.p.now)
            .expect("an offer");
        self.d.offered.insert(id, content);
        id
    }
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

fn ended(side: &Side, id: StreamId) -> Option<FileOutcome> {
    side.events.iter().find_map(|e| match e {
        Event::FileEnded { id: i, outcome, .. } if *i == id => Some(outcome.clone()),
        _ => None,
    })
}

#[test]
fn a_file_crosses_whole_verified_and_both_sides_hear_it_was_saved() {
    let mut f = Files::new(Pair::default_mode());
    f.l.accept_all = true;
    let content = pattern(3 * 1024 * 1024 + 17);
    let id = f.offer("report.pdf", content.clone());
    f.run();
    assert!(f.l.written[&id] == content, "every byte, in order");
    assert_eq!(ended(&f.p.listener, id), Some(FileOutcome::Saved));
    assert_eq!(ended(&f.p.dialer, id), Some(FileOutcome::Saved));
    assert!(f.p.listener.events.iter().any(|e| matches!(
        e,
        Event::FileOffered { name, size, .. } if name == b"report.pdf" && *size == content.len() as u64
    )));
    // The chat stream is untouched, and the room still ends cleanly.
    f.p.finish();
    f.p.assert_both(Status::Ended(Ok(())));
}

#[test]
fn nothing_moves_or_is_written_before_accept_and_a_reject_says_why() {
    let mut f = Files::new(Pair::default_mode());
    let id = f.offer("a.bin", pattern(100_000));
    f.run();
    assert!(f
        .p
        .listener
        .events
        .iter()
        .any(|e| matches!(e, Event::FileOffered { .. })));
    assert!(f.l.written.is_empty(), "nothing to write before /accept");
    assert_eq!(f.d.read, 0, "the sender reads nothing before the answer");
    f.p.listener.s.reject_file(id, "not now", f.p.now);
    f.run();
    match ended(&f.p.dialer, id) {
        Some(FileOutcome::Rejected { by_peer: true, why }) => assert_eq!(why, "not now"),
        other => panic!("the sender hears the reject: {other:?}"),
    }
    assert_eq!(f.d.read, 0);
    f.p.finish();
    f.p.assert_both(Status::Ended(Ok(())));
}

#[test]
fn a_chat_line_typed_during_a_transfer_arrives_before_the_file_is_done() {
    let mut f = Files::new(Pair::default_mode());
    f.l.accept_all = true;
    let content = pattern(8 * 1024 * 1024);
    let id = f.offer("big.iso", content.clone());
    // Let the transfer get going.
    for _ in 0..20 {
        let now = f.p.now;
        f.p.step();
        f.d.pump(&mut f.p.dialer, now);
        f.l.pump(&mut f.p.listener, now);
    }
    let before = f.l.written.get(&id).map_or(0, Vec::len);
    assert!(
        before > 0 && before < content.len(),
        "mid-transfer: {before}"
    );
    f.p.dialer.input(b"hello during the file\n", f.p.now);
    // Run only until the line is shown.
    for _ in 0..1000 {
        if f.p.listener.shown.ends_with(b"hello during the file\n") {
            break;
        }
        let now = f.p.now;
        f.p.step();
        f.d.pump(&mut f.p.dialer, now);
        f.l.pump(&mut f.p.listener, now);
    }
    assert_eq!(f.p.listener.shown, b"hello during the file\n");
    let at_line = f.l.written.get(&id).map_or(0, Vec::len);
    // Behind the line: at most what our link and the wire held, not the
    // rest of the file.
    assert!(
        at_line - before < 1024 * 1024,
        "the line waited behind {} bytes of file",
        at_line - before
    );
    f.run();
    assert!(f.l.written[&id] == content);
}

#[test]
fn file_bytes_take_only_the_room_the_driver_gives_and_the_chat_none() {
    let mut f = Files::new(Pair::default_mode());
    f.l.accept_all = true;
    f.p.run();
    let link = f.p.dialer.link;
    // TCP's window is full: no file byte may go, and the driver must
    // hear that some wait.
    f.p.dialer.s.set_send_room(link, Some(0), f.p.now);
    let content = pattern(200_000);
    let id = f.offer("a.bin", content.clone());
    f.run();
    assert_eq!(f.l.written.get(&id).map_or(0, Vec::len), 0);
    assert!(
        f.p.dialer.s.room_held(link),
        "the driver is told to look again"
    );
    // The chat is never held.
    f.p.dialer.input(b"still here\n", f.p.now);
    f.run();
    assert_eq!(f.p.listener.shown, b"still here\n");
    // A sliver of room (under 1 KiB of file bytes) waits for more.
    f.p.dialer.s.set_send_room(link, Some(600), f.p.now);
    f.run();
    assert_eq!(f.l.written.get(&id).map_or(0, Vec::len), 0);
    assert!(f.p.dialer.s.room_held(link));
    // Room for 5000 wire bytes: that many go, the record's overhead
    // included, then the rest waits again.
    let overhead = crate::protocol::record::OVERHEAD + wire::ID_LEN;
    f.p.dialer.s.set_send_room(link, Some(5000), f.p.now);
    f.run();
    assert_eq!(f.l.written[&id], content[..5000 - overhead]);
    assert!(f.p.dialer.s.room_held(link));
    // The same room again (the window has not moved): nothing more.
    f.p.dialer.s.set_send_room(link, Some(0), f.p.now);
    f.run();
    assert_eq!(f.l.written[&id].len(), 5000 - overhead);
    // No limit: the rest follows and the file is saved.
    f.p.dialer.s.set_send_room(link, None, f.p.now);
    f.run();
    assert!(f.l.written[&id] == content);
    assert!(!f.p.dialer.s.room_held(link));
    assert_eq!(ended(&f.p.dialer, id), Some(FileOutcome::Saved));
}

#[test]
fn either_side_may_cancel_a_transfer_and_the_other_hears_it() {
    for receiver_cancels in [false, true] {
        let mut f = Files::new(Pair::default_mode());
        f.l.accept_all = true;
        let id = f.offer("c.bin", pattern(6 * 1024 * 1024));
        for _ in 0..10 {
            let now = f.p.now;
            f.p.step();
            f.d.pump(&mut f.p.dialer, now);
            f.l.pump(&mut f.p.listener, now);
        }
        let now = f.p.now;
        let (who, other) = if receiver_cancels {
            (&mut f.p.listener, &f.p.dialer)
        } else {
            (&mut f.p.dialer, &f.p.listener)
        };
        let _ = other;
        assert!(who.s.cancel_file(id, now));
        f.run();
        let (canceller, peer) = if receiver_cancels {
            (&f.p.listener, &f.p.dialer)
        } else {
            (&f.p.dialer, &f.p.listener)
        };
        assert!(matches!(
            ended(canceller, id),
            Some(FileOutcome::Cancelled { by_peer: false, .. })
        ));
        assert!(matches!(
            ended(peer, id),
            Some(FileOutcome::Cancelled { by_peer: true, .. })
        ));
        assert!(!f.l.saved.contains(&id), "a cancelled file is never saved");
        f.p.finish();
        f.p.assert_both(Status::Ended(Ok(())));
    }
}

#[test]
fn a_strict_room_ends_with_an_error_when_a_file_did_not_arrive() {
    let mut dc = config(Role::Dialer, Security::VerifyCode, "dana");
    dc.room.files_strict = true;
    let lc = config(Role::Listener, Security::VerifyCode, "lee");
    let mut f = Files::new(Pair::from_configs(dc, lc, 1));
    let id = f.offer("x", pattern(10));
    f.run();
    f.p.listener.s.reject_file(id, "no", f.p.now);
    f.p.finish();
    assert!(matches!(f.p.dialer.failure(), Error::Lost(m) if m.contains("did not arrive")));
    assert_eq!(f.p.listener.s.status(), Status::Ended(Ok(())));
}

#[test]
fn the_room_does_not_end_while_a_file_moves() {
    let mut f = Files::new(Pair::default_mode());
    f.l.accept_all = true;
    let content = pattern(2 * 1024 * 1024);
    let id = f.offer("f", content.clone());
    // Both inputs end at once, before the file has moved.
    f.p.dialer.s.input_ended(f.p.now);
    f.p.listener.s.input_ended(f.p.now);
    f.run();
    f.p.deliver_ends();
    f.run();
    assert!(
        f.l.written[&id] == content,
        "the file arrived before the room ended"
    );
    f.p.assert_both(Status::Ended(Ok(())));
}

#[test]
fn an_empty_file_and_several_at_once_arrive() {
    let mut f = Files::new(Pair::default_mode());
    f.l.accept_all = true;
    let a = f.offer("empty", Vec::new());
    let b = f.offer("b", pattern(70_000));
    let c = f.offer("c", pattern(1));
    f.run();
    for (id, len) in [(a, 0), (b, 70_000), (c, 1)] {
        assert_eq!(f.l.written[&id].len(), len);
        assert_eq!(ended(&f.p.dialer, id), Some(FileOutcome::Saved));
    }
}

/// The driver passes over a file whose disk does not answer (its reader
/// has nothing, its writer is full): the others move on meanwhile, and it
/// arrives whole once its disk answers again.
#[test]
fn a_stalled_disk_holds_back_its_own_file_only() {
    let mut f = Files::new(Pair::default_mode());
    f.l.accept_all = true;
    let read_stalled = f.offer("a", pattern(300_000));
    let write_stalled = f.offer("b", pattern(200_000));
    let free = f.offer("c", pattern(100_000));
    f.d.stalled.push(read_stalled);
    f.l.stalled.push(write_stalled);
    f.run();
    assert_eq!(ended(&f.p.dialer, free), Some(FileOutcome::Saved));
    assert_eq!(f.l.written[&free], pattern(100_000));
    for id in [read_stalled, write_stalled] {
        assert_eq!(ended(&f.p.dialer, id), None, "a stalled file ended");
        assert!(f.l.written[&id].is_empty(), "a stalled file was written");
    }
    f.d.stalled.clear();
    f.l.stalled.clear();
    f.run();
    for (id, len) in [(read_stalled, 300_000), (write_stalled, 200_000)] {
        assert_eq!(ended(&f.p.dialer, id), Some(FileOutcome::Saved));
        assert_eq!(f.l.written[&id], pattern(len));
    }
}

#[test]
fn the_listener_offers_too_with_its_own_stream_ids() {
    let mut f = Files::new(Pair::default_mode());
    f.d.accept_all = true;
    f.p.run();
    let content = pattern(40_000);
    let id =
        f.p.listener
            .s
            .offer_file(b"from-lee", content.len() as u64, f.p.now)
            .expect("an offer");
    assert_eq!(id.0 % 2, 1, "the listener's ids are odd");
    f.l.offered.insert(id, content.clone());
    f.run();
    assert!(f.d.written[&id] == content);
}

#[test]
fn plain_mode_has_no_files() {
    let mut s = session(config(Role::Dialer, Security::Plain, "x"), 1);
    let e = s
        .offer_file(b"a", 1, Instant::now())
        .expect_err("no files in plain");
    assert!(e.to_string().contains("encrypted room"), "{e}");
}

// ----- resume ---------------------------------------------------------------

fn resume_files() -> Files {
    let mut dc = config(Role::Dialer, Security::VerifyCode, "dana");
    let mut lc = config(Role::Listener, Security::VerifyCode, "lee");
    dc.room.resume = Some(Duration::from_secs(60));
    lc.room.resume = Some(Duration::from_secs(60));
    Files::new(Pair::from_configs(dc, lc, 3))
}

impl Files {
    /// Cuts the connection mid-flight (some bytes of a record lost), then
    /// the dialer redials on `link`.
    fn cut_and_resume(&mut self, link: LinkId) {
        let now = self.p.now;
        let keep = self.p.d2l.len() / 3 + 5;
        self.p.d2l.truncate(keep);
        self.p.l2d.truncate(self.p.l2d.len() / 2);
        let (d, l) = (self.p.dialer.link, self.p.listener.link);
        let e = io::Error::from(io::ErrorKind::ConnectionReset);
        let (wd, wl) = (
            std::mem::take(&mut self.p.d2l),
            std::mem::take(&mut self.p.l2d),
        );
        self.p.listener.feed(&wd, now);
        self.p.dialer.feed(&wl, now);
        self.p.dialer.s.transport_failed(d, &e, now);
        self.p.listener.s.transport_failed(l, &e, now);
        self.p.dialer.drain(now);
        self.p.listener.drain(now);
        // A connection cut soon after it came up is redialed after a
        // backoff, not at once: wait for it.
        for _ in 0..20 {
            if self.p.dialer.actions.contains(&Action::Redial) {
                break;
            }
            let due = self.p.dialer.s.poll_timeout().expect("a redial is due");
            self.p.advance(due.saturating_duration_since(self.p.now));
        }
        assert!(self.p.dialer.actions.contains(&Action::Redial));
        self.p.dialer.actions.retain(|a| *a != Action::Redial);
        let now = self.p.now;
        self.p.dialer.link = link;
        self.p.listener.link = link;
        self.p.listener.s.accept(link, 1, now);
        self.p.dialer.s.connected(link, now);
    }
}

#[test]
fn a_half_sent_file_resumes_from_where_it_stopped_and_arrives_whole() {
    let mut f = resume_files();
    f.l.accept_all = true;
    let content = pattern(5 * 1024 * 1024 + 3);
    let id = f.offer("movie.mkv", content.clone());
    for (round, link) in (0..3).zip(17..) {
        for _ in 0..25 {
            let now = f.p.now;
            f.p.step();
            f.d.pump(&mut f.p.dialer, now);
            f.l.pump(&mut f.p.listener, now);
        }
        let got = f.l.written.get(&id).map_or(0, Vec::len);
        assert!(got < content.len(), "round {round}: still moving ({got})");
        f.cut_and_resume(LinkId(link));
    }
    f.run();
    assert!(f.l.written[&id] == content, "every byte once, in order");
    assert_eq!(ended(&f.p.listener, id), Some(FileOutcome::Saved));
    assert_eq!(ended(&f.p.dialer, id), Some(FileOutcome::Saved));
    // The file on disk is the replay buffer: it is read again from where
    // the receiver stopped, not from the start.
    assert!(
        f.d.read < content.len() as u64 + 3 * 2 * 1024 * 1024,
        "read {} for a file of {}",
        f.d.read,
        content.len()
    );
    f.p.finish();
    f.p.deliver_ends();
    f.p.assert_both(Status::Ended(Ok(())));
}

#[test]
fn an_offer_and_a_cancel_lost_with_the_connection_are_said_again() {
    let mut f = resume_files();
    f.p.run();
    let id = f.offer("late", pattern(10));
    // The offer is sealed but never leaves: the cut takes it.
    f.cut_and_resume(LinkId(20));
    f.run();
    assert!(f
        .p
        .listener
        .events
        .iter()
        .any(|e| matches!(e, Event::FileOffered { id: i, .. } if *i == id)));
    // The listener rejects; the answer is lost; a resume says it again.
    let now = f.p.now;
    f.p.listener.s.reject_file(id, "no thanks", now);
    f.p.listener.drain(now);
    f.cut_and_resume(LinkId(21));
    f.run();
    assert!(matches!(
        ended(&f.p.dialer, id),
        Some(FileOutcome::Rejected { by_peer: true, .. })
    ));
}

// ----- a hostile peer -------------------------------------------------------

/// A listener joined by a scripted dialer that seals whatever it likes.
fn hostile() -> (Session, ScriptedDialer, Instant) {
    let now = Instant::now();
    let mut s = session(config(Role::Listener, Security::VerifyCode, "lee"), 5);
    s.accept(LINK, 1, now);
    let mut d = ScriptedDialer::new(LINK, None, 6);
    assert!(d.exchange_keys(&mut s, now));
    let hello = d.record(Kind::Hello, b"mallory");
    d.push_to(&mut s, &hello, now);
    assert!(s.is_established());
    (s, d, now)
}

fn send(s: &mut Session, d: &mut ScriptedDialer, kind: Kind, payload: &[u8], now: Instant) {
    let rec = d.record(kind, payload);
    d.push_to(s, &rec, now);
}

fn chunk(id: u32, data: &[u8]) -> Vec<u8> {
    let mut p = wire::chunk_header(id).to_vec();
    p.extend_from_slice(data);
    p
}

fn offer(id: u32, size: u64, name: &[u8]) -> Vec<u8> {
    Offer { id, size, name }.encode()
}

fn violated(s: &Session) -> bool {
    matches!(s.status(), Status::Ended(Err(Error::Integrity(_))))
}

/// Takes the listener's events, accepting offers; returns what it wrote.
fn take(s: &mut Session, now: Instant, accept: bool) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(ev) = s.poll_event() {
        if let (Event::FileOffered { id, .. }, true) = (ev, accept) {
            s.accept_file(id, now).expect("accept");
        }
    }
    while let Some((id, data)) = s.file_to_write(&[]) {
        out.extend_from_slice(data);
        let n = data.len();
        s.file_written(id, n, now);
    }
    out
}

#[test]
fn a_peer_cannot_send_a_file_before_we_accept_it() {
    let (mut s, mut d, now) = hostile();
    send(&mut s, &mut d, Kind::Offer, &offer(2, 10, b"x"), now);
    let _ = take(&mut s, now, false);
    send(&mut s, &mut d, Kind::Chunk, &chunk(2, b"0123456789"), now);
    assert!(violated(&s), "{:?}", s.status());
    assert!(s.file_to_write(&[]).is_none(), "nothing to write");
}

#[test]
fn a_peer_cannot_send_more_than_it_announced() {
    let (mut s, mut d, now) = hostile();
    send(&mut s, &mut d, Kind::Offer, &offer(2, 4, b"x"), now);
    let _ = take(&mut s, now, true);
    send(&mut s, &mut d, Kind::Chunk, &chunk(2, b"12345"), now);
    assert!(violated(&s));
    assert!(take(&mut s, now, true).is_empty(), "not a byte of it");
}

#[test]
fn a_peer_cannot_send_beyond_the_credit_we_granted() {
    let (mut s, mut d, now) = hostile();
    let size = 10 * transfer::FILE_WINDOW;
    send(&mut s, &mut d, Kind::Offer, &offer(2, size, b"x"), now);
    let _ = take(&mut s, now, true);
    // Fill the window without letting the disk take any of it.
    let block = vec![7u8; 16 * 1024 - 4];
    let mut sent = 0u64;
    while sent + block.len() as u64 <= transfer::FILE_WINDOW {
        send(&mut s, &mut d, Kind::Chunk, &chunk(2, &block), now);
        sent += block.len() as u64;
    }
    assert_eq!(s.status(), Status::Running, "within the credit is fine");
    send(&mut s, &mut d, Kind::Chunk, &chunk(2, &block), now);
    assert!(violated(&s), "beyond the credit: {:?}", s.status());
}

#[test]
fn a_peer_cannot_reuse_or_forge_stream_ids() {
    for (first, second) in [
        (offer(2, 1, b"a"), offer(2, 1, b"b")), // reused id
        (offer(4, 1, b"a"), offer(2, 1, b"b")), // going back
        (offer(3, 1, b"a"), Vec::new()),        // the listener's own parity
        (offer(0, 1, b"a"), Vec::new()),        // the chat stream
    ] {
        let (mut s, mut d, now) = hostile();
        send(&mut s, &mut d, Kind::Offer, &first, now);
        if !second.is_empty() {
            send(&mut s, &mut d, Kind::Offer, &second, now);
        }
        assert!(violated(&s), "{first:?} then {second:?}: {:?}", s.status());
    }
}

#[test]
fn a_file_whose_digest_does_not_match_is_never_saved() {
    let (mut s, mut d, now) = hostile();
    send(&mut s, &mut d, Kind::Offer, &offer(2, 3, b"x"), now);
    let _ = take(&mut s, now, true);
    send(&mut s, &mut d, Kind::Chunk, &chunk(2, b"abc"), now);
    let _ = take(&mut s, now, true);
    send(
        &mut s,
        &mut d,
        Kind::Fin,
        &wire::encode_fin(2, &[0; 32]),
        now,
    );
    let mut complete = false;
    let mut failed = false;
    while let Some(ev) = s.poll_event() {
        match ev {
            Event::FileComplete { .. } => complete = true,
            Event::FileEnded {
                outcome:
                    FileOutcome::Failed {
                        by_peer: false,
                        why,
                    },
                ..
            } => failed = why.contains("SHA-256"),
            _ => {}
        }
    }
    assert!(!complete && failed, "the file fails, and says why");
    assert_eq!(s.status(), Status::Running, "the room goes on");
    // The sender hears it: our CLOSE says it failed.
    d.pull_from(&mut s, now);
}

#[test]
fn a_peer_cannot_claim_we_saved_or_rejected_what_we_send() {
    let (mut s, mut d, now) = hostile();
    let id = s.offer_file(b"ours", 5, now).expect("offer");
    let _ = take(&mut s, now, false);
    // The peer says it saved our file before a byte was sent.
    let close = Close {
        id: id.0,
        code: CloseCode::Saved,
        why: b"",
    }
    .encode();
    send(&mut s, &mut d, Kind::Close, &close, now);
    assert!(violated(&s));
    // An ACCEPT that starts past what we sent is a violation too.
    let (mut s, mut d, now) = hostile();
    let id = s.offer_file(b"ours", 5, now).expect("offer");
    let acc = Accept {
        id: id.0,
        at: 3,
        limit: 5,
    }
    .encode();
    send(&mut s, &mut d, Kind::Accept, &acc, now);
    assert!(violated(&s));
}

#[test]
fn too_many_offers_at_once_are_turned_down_not_held() {
    let (mut s, mut d, now) = hostile();
    for i in 0..(transfer::MAX_OPEN_OFFERS as u32 + 5) {
        send(&mut s, &mut d, Kind::Offer, &offer(2 + 2 * i, 1, b"f"), now);
    }
    let offered = std::iter::from_fn(|| s.poll_event())
        .filter(|e| matches!(e, Event::FileOffered { .. }))
        .count();
    assert_eq!(offered, transfer::MAX_OPEN_OFFERS);
    assert_eq!(s.status(), Status::Running);
}

#[test]
fn a_stalled_reader_of_the_chat_stream_does_not_hold_back_a_file() {
    // Stream 0 has credit of its own: its reader stalling stops stream 0's
    // sender, while the file beside it goes on and is saved.
    let mut f = Files::new(Pair::default_mode());
    f.l.accept_all = true;
    f.p.run();
    f.p.listener.reading = false;
    let chat = pattern(8 << 20);
    let mut fed = 0;
    for _ in 0..200 {
        fed += f.p.dialer.input(&chat[fed..], f.p.now);
        let now = f.p.now;
        f.p.step();
        f.d.pump(&mut f.p.dialer, now);
        f.l.pump(&mut f.p.listener, now);
    }
    assert!(fed < chat.len(), "stream 0 is held back by its reader");
    let content = pattern(3 << 20);
    let id = f.offer("beside.bin", content.clone());
    f.run();
    assert!(f.l.written[&id] == content, "the file went past the stall");
    assert_eq!(ended(&f.p.dialer, id), Some(FileOutcome::Saved));
    assert!(
        f.p.listener.shown.is_empty(),
        "the stalled reader took nothing"
    );
}

#[test]
fn a_verified_file_is_still_named_when_the_peer_leaves_meanwhile() {
    // The sender leaves as soon as its file is sent; the receiver is still
    // making it durable. The room waits for that, and the file is saved.
    let mut dc = config(Role::Dialer, Security::VerifyCode, "dana");
    dc.room.files_strict = true;
    let mut lc = config(Role::Listener, Security::VerifyCode, "lee");
    lc.room.files_strict = true;
    let mut f = Files::new(Pair::from_configs(dc, lc, 4));
    f.l.accept_all = true;
    f.l.defer_naming = true;
    let content = pattern(300_000);
    let id = f.offer("late.bin", content.clone());
    f.run();
    assert_eq!(f.l.complete, [id], "verified, waiting to be named");
    let now = f.p.now;
    // `/quit` at the prompt: our input ends, then we leave.
    f.p.dialer.s.input_ended(now);
    f.p.dialer.s.leave(LeaveReason::User, now);
    f.run();
    f.p.deliver_ends();
    assert_eq!(
        f.p.listener.s.status(),
        Status::Running,
        "waits for the naming"
    );
    assert!(
        f.p.listener.s.file_saved(id, now),
        "the file is still wanted"
    );
    f.p.listener.drain(now);
    f.run();
    f.p.deliver_ends();
    assert_eq!(ended(&f.p.listener, id), Some(FileOutcome::Saved));
    assert_eq!(f.p.listener.s.status(), Status::Ended(Ok(())));
}

/// The receiver's cancel that comes while the driver names a verified
/// file wins: the naming that ends after it is not wanted (the driver
/// removes the file), and the transfer stays cancelled on both sides. A
/// sender's cancel that late changes nothing: the file is whole, and named.
#[test]
fn a_file_named_after_the_receivers_cancel_is_not_wanted() {
    for receiver_cancels in [true, false] {
        let mut f = Files::new(Pair::default_mode());
        f.l.accept_all = true;
        f.l.defer_naming = true;
        let id = f.offer("late.bin", pattern(300_000));
        f.run();
        assert_eq!(f.l.complete, [id], "verified, waiting to be named");
        let now = f.p.now;
        let who = if receiver_cancels {
            &mut f.p.listener
        } else {
            &mut f.p.dialer
        };
        assert!(who.s.cancel_file(id, now));
        f.run();
        let wanted = f.p.listener.s.file_saved(id, f.p.now);
        f.run();
        let received = ended(&f.p.listener, id);
        if receiver_cancels {
            assert!(!wanted, "a file cancelled by its receiver was still wanted");
            assert!(
                matches!(
                    received,
                    Some(FileOutcome::Cancelled { by_peer: false, .. })
                ),
                "{received:?}"
            );
            assert!(matches!(
                ended(&f.p.dialer, id),
                Some(FileOutcome::Cancelled { by_peer: true, .. })
            ));
        } else {
            assert!(wanted, "a whole file was not wanted after a late cancel");
            assert_eq!(received, Some(FileOutcome::Saved));
        }
    }
}
