//! A received file is written on a thread of its own, so a slow disk
//! never holds the loop: a USB stick, a network share, a virus scanner
//! or the kernel's dirty-page throttling can stall a `write` for a second
//! or more, and on the loop thread that would stall the chat, the
//! heartbeats and the other transfers with it. Disks have no
//! non-blocking writes that work everywhere, so this is one of the few
//! places a thread is the right tool.
//!
//! The loop hands bytes over with [`DiskWriter::hand`], which never
//! blocks: it copies a piece if the queue has room for one ([`PIECES`])
//! and returns at once. The thread writes them in order and wakes the
//! loop when it made room for a loop that found the queue full, so the
//! loop never spins waiting. [`DiskWriter::finish`] asks the thread to
//! write the rest, make the file durable and name it; giving the file up
//! ([`DiskWriter::abort`], or dropping an unfinished writer) removes the
//! temporary file instead, also after `finish` if the thread has not
//! begun naming it yet. Every outcome (named, or the first error) is
//! reported once through the channel the caller gives, with the loop's
//! waker.

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;

use mio::Waker;

use crate::files::disk::Incoming;
use crate::session::stream::StreamId;

/// The most handed over in one piece.
const PIECE: usize = 512 * 1024;
/// The most pieces handed over and not yet written, per file: 1 MiB. The
/// session grants the peer credit only for bytes handed over, and holds
/// up to its window (`FILE_WINDOW`, 2 MiB) beyond them, which is what
/// rides out a disk's hiccup; this queue only keeps the disk busy while
/// the loop works. Counting pieces, not bytes, bounds the memory whatever
/// sizes the bytes come in: with the piece being written and the loop's
/// spare one, at most `PIECES + 2` buffers of `PIECE` bytes per file.
const PIECES: usize = 2;

/// Where a received file's bytes go: [`Incoming`], or a test's stand-in.
pub trait Sink: Send + 'static {
    /// Writes all of `buf`, after what was written before.
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()>;
    /// Makes the file durable and names it; returns where it is.
    fn finish(self) -> io::Result<PathBuf>;
    /// Removes what was written.
    fn abort(self);
}

impl Sink for Incoming {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.write(buf).map(drop)
    }

    fn finish(self) -> io::Result<PathBuf> {
        Incoming::finish(self)
    }

    fn abort(self) {
        Incoming::abort(self)
    }
}

/// The outcome of one file: its final path, or why it failed.
pub type Outcome = (StreamId, io::Result<PathBuf>);

/// What the loop and the thread share.
struct Shared {
    /// The loop found the queue full: wake it when there is room.
    wants_room: AtomicBool,
    /// All was handed over: make the file durable and name it, once the
    /// queue is written and the channel closed.
    finish: AtomicBool,
    /// The file is given up: write nothing more, remove it.
    stop: AtomicBool,
}

/// One received file being written off the loop.
pub struct DiskWriter {
    tx: Option<SyncSender<Vec<u8>>>,
    /// Buffers written, back from the thread to be filled again.
    reusable: Receiver<Vec<u8>>,
    /// A buffer filled for a full queue, to be filled again next time.
    spare: Option<Vec<u8>>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    /// [`DiskWriter::finish`] was called: dropping it no longer stops it.
    finished: bool,
}

impl DiskWriter {
    /// Starts the thread that writes file `id` into `sink`; its outcome
    /// goes to `report`, and the loop is woken through `waker`.
    pub fn spawn<S: Sink>(
        id: StreamId,
        mut sink: S,
        report: Sender<Outcome>,
        waker: Arc<Waker>,
    ) -> io::Result<DiskWriter> {
        let (tx, rx) = sync_channel::<Vec<u8>>(PIECES);
        let (spent, reusable) = channel::<Vec<u8>>();
        let shared = Arc::new(Shared {
            wants_room: AtomicBool::new(false),
            finish: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        });
        let theirs = shared.clone();
        let thread = std::thread::Builder::new()
            .name("p2pchat-disk".into())
            .spawn(move || {
                let mut failed = None;
                // Until the loop closes the channel (finished, or given
                // up), or the first error.
                while let Ok(buf) = rx.recv() {
                    // Either the loop sees the room this made when it
                    // tries again after asking to be woken, or this sees
                    // that it asked.
                    fence(Ordering::SeqCst);
                    if theirs.wants_room.swap(false, Ordering::SeqCst) {
                        let _ = waker.wake();
                    }
                    if theirs.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Err(e) = sink.write_all(&buf) {
                        failed = Some(e);
                        break;
                    }
                    let _ = spent.send(buf);
                }
                let finish = theirs.finish.load(Ordering::SeqCst);
                let outcome = match failed {
                    Some(e) => {
                        sink.abort();
                        Err(e)
                    }
                    // A failed finish removes the file itself.
                    None if finish && !theirs.stop.load(Ordering::SeqCst) => sink.finish(),
                    None => return sink.abort(),
                };
                let _ = report.send((id, outcome));
                let _ = waker.wake();
            })?;
        Ok(DiskWriter {
            tx: Some(tx),
            reusable,
            spare: None,
            shared,
            thread: Some(thread),
            finished: false,
        })
    }

    /// Hands over as much of `data` as fits in a piece, if the queue has
    /// room for one, and returns how much that was: 0 when it is full (the
    /// thread wakes the loop once it took a piece).
    pub fn hand(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(PIECE);
        let Some(tx) = &self.tx else { return 0 };
        if n == 0 {
            return 0;
        }
        let mut buf = self
            .spare
            .take()
            .or_else(|| self.reusable.try_recv().ok())
            .unwrap_or_else(|| Vec::with_capacity(PIECE));
        buf.clear();
        buf.extend_from_slice(&data[..n]);
        let buf = match tx.try_send(buf) {
            Ok(()) => return n,
            Err(TrySendError::Full(buf)) => buf,
            // The thread stopped after an error, which it reports: the
            // bytes are taken, and go nowhere, like the rest of the file.
            Err(TrySendError::Disconnected(_)) => return n,
        };
        self.shared.wants_room.store(true, Ordering::SeqCst);
        // The thread may have taken a piece since: try again, so that no
        // wake-up is lost.
        fence(Ordering::SeqCst);
        match tx.try_send(buf) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => n,
            Err(TrySendError::Full(buf)) => {
                self.spare = Some(buf);
                0
            }
        }
    }

    /// Everything is handed over: the thread writes the rest, makes the
    /// file durable and names it, and reports.
    pub fn finish(&mut self) {
        self.shared.finish.store(true, Ordering::SeqCst);
        self.finished = true;
        self.tx = None;
    }

    /// Gives the file up: the thread writes nothing more and removes the
    /// temporary file (unless it is already naming it). Returns the
    /// thread, to be joined before the program exits.
    pub fn abort(mut self) -> Option<JoinHandle<()>> {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.tx = None;
        self.thread.take()
    }

    /// The thread, to be joined before the program exits; a writer not
    /// finished is given up first.
    pub fn into_thread(mut self) -> Option<JoinHandle<()>> {
        if !self.finished {
            return self.abort();
        }
        self.thread.take()
    }
}

impl Drop for DiskWriter {
    /// A writer dropped before [`DiskWriter::finish`] gives its file up:
    /// the thread writes nothing more and removes the temporary file.
    fn drop(&mut self) {
        if !self.finished {
            self.shared.stop.store(true, Ordering::SeqCst);
            self.tx = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::TestWake;
    use std::sync::{Condvar, Mutex};
    use std::time::Duration;

    /// A stand-in disk: it blocks every write until the test opens its
    /// gate, can fail on demand, and records what it was asked.
    #[derive(Clone, Default)]
    struct Disk {
        state: Arc<(Mutex<DiskState>, Condvar)>,
    }

    #[derive(Default)]
    struct DiskState {
        open: bool,
        fail: bool,
        data: Vec<u8>,
        finished: bool,
        aborted: bool,
    }

    impl Disk {
        fn open(&self) {
            self.state.0.lock().unwrap().open = true;
            self.state.1.notify_all();
        }

        fn with<T>(&self, f: impl FnOnce(&mut DiskState) -> T) -> T {
            f(&mut self.state.0.lock().unwrap())
        }

        /// Waits, with a deadline, until `cond` holds.
        fn wait_for(&self, what: &str, cond: impl Fn(&DiskState) -> bool) {
            let (lock, cv) = &*self.state;
            let mut s = lock.lock().unwrap();
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while !cond(&s) {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                assert!(!left.is_zero(), "timed out waiting for {what}");
                s = cv.wait_timeout(s, left).unwrap().0;
            }
        }
    }

    impl Sink for Disk {
        fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
            let (lock, cv) = &*self.state;
            let mut s = cv.wait_while(lock.lock().unwrap(), |s| !s.open).unwrap();
            if s.fail {
                return Err(io::Error::other("no space left on device"));
            }
            s.data.extend_from_slice(buf);
            cv.notify_all();
            Ok(())
        }

        fn finish(self) -> io::Result<PathBuf> {
            self.with(|s| s.finished = true);
            self.state.1.notify_all();
            Ok(PathBuf::from("saved"))
        }

        fn abort(self) {
            self.with(|s| s.aborted = true);
            self.state.1.notify_all();
        }
    }

    fn writer(disk: &Disk) -> (DiskWriter, Receiver<Outcome>, TestWake) {
        let (poll, waker) = TestWake::new();
        let (tx, rx) = channel();
        let w = DiskWriter::spawn(StreamId(7), disk.clone(), tx, waker).unwrap();
        (w, rx, poll)
    }

    #[test]
    fn a_stalled_disk_never_blocks_the_hand_over_and_bounds_the_queue() {
        let disk = Disk::default();
        let (mut w, rx, mut poll) = writer(&disk);
        let chunk: Vec<u8> = (0..3 * PIECE / 2).map(|i| (i % 251) as u8).collect();
        let mut handed = Vec::new();
        // The disk does not move, yet handing over returns every time,
        // a piece at most each, until the queue is full (the piece the
        // thread is writing, and PIECES more); then it takes nothing.
        let mut pieces = 0;
        loop {
            let n = w.hand(&chunk);
            if n == 0 {
                break;
            }
            assert!(n <= PIECE, "more than a piece at once");
            handed.extend_from_slice(&chunk[..n]);
            pieces += 1;
            assert!(pieces <= PIECES + 1, "the queue grew past its bound");
        }
        assert!(pieces >= PIECES, "a queue with room took nothing");
        // The disk moves again: the loop is woken, finds room, and every
        // byte reaches the disk in order; then the file is named.
        disk.open();
        assert!(poll.woken(), "a full queue that drained must wake the loop");
        while handed.len() < 3 * PIECES * PIECE {
            let n = w.hand(&chunk);
            if n == 0 {
                assert!(poll.woken(), "the loop must be woken when room comes");
                continue;
            }
            handed.extend_from_slice(&chunk[..n]);
        }
        w.finish();
        let thread = w.into_thread().unwrap();
        let (id, outcome) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(id, StreamId(7));
        assert_eq!(outcome.unwrap(), PathBuf::from("saved"));
        thread.join().unwrap();
        disk.with(|s| {
            assert!(
                s.data == handed,
                "the disk got other bytes than were handed over"
            );
            assert!(s.finished && !s.aborted);
        });
    }

    #[test]
    fn a_write_error_is_reported_once_and_the_file_is_removed() {
        let disk = Disk::default();
        disk.with(|s| s.fail = true);
        let (mut w, rx, _poll) = writer(&disk);
        assert_eq!(w.hand(b"hello"), 5);
        disk.open();
        let (_, outcome) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(outcome.unwrap_err().to_string(), "no space left on device");
        disk.wait_for("the abort", |s| s.aborted);
        // Later bytes are taken and go nowhere; nothing more is reported.
        assert_eq!(w.hand(b"more"), 4);
        w.finish();
        w.into_thread().unwrap().join().unwrap();
        assert!(rx.try_recv().is_err(), "an outcome was reported twice");
        disk.with(|s| assert!(!s.finished && s.data.is_empty()));
    }

    #[test]
    fn tiny_pieces_fill_the_queue_as_soon_as_big_ones() {
        // Memory is bounded by the number of pieces, whatever their size:
        // a peer's one-byte chunks on a stalled disk cannot queue more.
        let disk = Disk::default();
        let (mut w, _rx, _poll) = writer(&disk);
        let mut pieces = 0;
        while w.hand(b"x") == 1 {
            pieces += 1;
            assert!(pieces <= PIECES + 1, "the queue grew past its bound");
        }
        disk.open();
        w.into_thread().unwrap().join().unwrap();
    }

    #[test]
    fn a_file_given_up_after_finish_is_removed_if_not_yet_named() {
        let disk = Disk::default();
        let (mut w, rx, _poll) = writer(&disk);
        assert_eq!(w.hand(b"all of it"), 9);
        w.finish();
        // A cancel comes while the disk still holds the last bytes.
        let thread = w.abort().unwrap();
        disk.open();
        thread.join().unwrap();
        disk.with(|s| assert!(s.aborted && !s.finished));
        assert!(rx.try_recv().is_err(), "a file given up reports nothing");
    }

    #[test]
    fn a_writer_given_up_writes_nothing_more_and_removes_its_file() {
        let disk = Disk::default();
        let (mut w, rx, _poll) = writer(&disk);
        assert_eq!(w.hand(b"first"), 5);
        disk.open();
        disk.wait_for("the first write", |s| s.data == b"first");
        disk.with(|s| s.open = false);
        assert_eq!(w.hand(b"second"), 6);
        let thread = w.abort().unwrap();
        disk.open();
        thread.join().unwrap();
        disk.with(|s| {
            assert!(s.aborted && !s.finished);
            assert!(s.data == b"first" || s.data == b"firstsecond");
        });
        assert!(rx.try_recv().is_err(), "a file given up reports nothing");
    }
}
