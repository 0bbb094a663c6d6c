//! A received file is written on a thread of its own, so a slow disk
//! never holds the loop: a USB stick, a network share, a virus scanner
//! or the kernel's dirty-page throttling can stall a `write` for a second
//! or more, and on the loop thread that would stall the chat, the
//! heartbeats and the other transfers with it. Disks have no
//! non-blocking writes that work everywhere, so this is one of the few
//! places a thread is the right tool.
//!
//! The loop hands bytes over with [`DiskWriter::hand`], which never
//! blocks: it copies what fits under [`QUEUE_CAP`] and returns at once.
//! The thread writes them in order and wakes the loop when it made room
//! for a loop that found the queue full, so the loop never spins waiting.
//! [`DiskWriter::finish`] asks the thread to write the rest, make the
//! file durable and name it; dropping a `DiskWriter` instead removes the
//! temporary file. Every outcome (named, or the first error) is reported
//! once through the channel the caller gives, with the loop's waker.

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

use mio::Waker;

use crate::files::disk::Incoming;
use crate::session::stream::StreamId;

/// The most bytes handed over and not yet written, per file. The session
/// grants the peer credit only for bytes handed over, and holds up to its
/// window (`FILE_WINDOW`, 2 MiB) beyond them, which is what rides out a
/// disk's hiccup; this queue only keeps the disk busy while the loop
/// works. 1 MiB per file, with up to `MAX_OPEN_OFFERS` files moving at
/// once, bounds what a stalled disk makes us hold.
pub const QUEUE_CAP: usize = 1024 * 1024;

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

enum Msg {
    Data(Vec<u8>),
    /// Everything is handed over: make it durable and name it.
    Finish,
}

/// What the loop and the thread share.
struct Shared {
    /// Bytes handed over and not yet written (or dropped).
    queued: AtomicUsize,
    /// The loop found the queue full: wake it when there is room.
    wants_room: AtomicBool,
    /// The file is given up: write nothing more, remove it.
    stop: AtomicBool,
}

/// One received file being written off the loop.
pub struct DiskWriter {
    tx: Option<Sender<Msg>>,
    /// Buffers written, back from the thread to be filled again.
    reusable: Receiver<Vec<u8>>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl DiskWriter {
    /// Starts the thread that writes file `id` into `sink`; its outcome
    /// goes to `report`, and the loop is woken through `waker`.
    pub fn spawn<S: Sink>(
        id: StreamId,
        sink: S,
        report: Sender<Outcome>,
        waker: Arc<Waker>,
    ) -> io::Result<DiskWriter> {
        let (tx, rx) = channel::<Msg>();
        let (spent, reusable) = channel::<Vec<u8>>();
        let shared = Arc::new(Shared {
            queued: AtomicUsize::new(0),
            wants_room: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        });
        let theirs = shared.clone();
        let thread = std::thread::Builder::new()
            .name("p2pchat-disk".into())
            .spawn(move || {
                let mut sink = Some(sink);
                let mut outcome = None;
                // Ends when the loop finishes the file, drops its writer
                // (the channel closes), or after the first error.
                while let Ok(msg) = rx.recv() {
                    if theirs.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    match msg {
                        Msg::Data(buf) => {
                            let result = sink.as_mut().map(|s| s.write_all(&buf));
                            theirs.queued.fetch_sub(buf.len(), Ordering::SeqCst);
                            let _ = spent.send(buf);
                            if theirs.wants_room.swap(false, Ordering::SeqCst) {
                                let _ = waker.wake();
                            }
                            if let Some(Err(e)) = result {
                                outcome = Some(Err(e));
                                break;
                            }
                        }
                        Msg::Finish => {
                            outcome = sink.take().map(Sink::finish);
                            break;
                        }
                    }
                }
                if let Some(s) = sink {
                    s.abort();
                }
                if let Some(outcome) = outcome {
                    let _ = report.send((id, outcome));
                    let _ = waker.wake();
                }
            })?;
        Ok(DiskWriter {
            tx: Some(tx),
            reusable,
            shared,
            thread: Some(thread),
        })
    }

    /// Hands over as much of `data` as the queue has room for, and
    /// returns how much that was: 0 when it is full (the thread wakes the
    /// loop once it wrote some).
    pub fn hand(&mut self, data: &[u8]) -> usize {
        let room = || QUEUE_CAP.saturating_sub(self.shared.queued.load(Ordering::SeqCst));
        let mut free = room();
        if free == 0 {
            self.shared.wants_room.store(true, Ordering::SeqCst);
            // The thread may have made room between the two: look again,
            // so that no wake-up is lost.
            free = room();
            if free == 0 {
                return 0;
            }
            self.shared.wants_room.store(false, Ordering::SeqCst);
        }
        let n = data.len().min(free);
        if n == 0 {
            return 0;
        }
        self.shared.queued.fetch_add(n, Ordering::SeqCst);
        match &self.tx {
            Some(tx) if tx.send(Msg::Data(self.filled(&data[..n]))).is_ok() => {}
            // The thread stopped after an error, which it reports: the
            // bytes are taken, and go nowhere, like the rest of the file.
            _ => {
                self.shared.queued.fetch_sub(n, Ordering::SeqCst);
            }
        }
        n
    }

    /// A buffer holding `data`: one the thread is done with, if any (their
    /// number is bounded by what the queue holds), or a new one.
    fn filled(&self, data: &[u8]) -> Vec<u8> {
        let mut buf = self.reusable.try_recv().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(data);
        buf
    }

    /// Everything is handed over: the thread writes the rest, makes the
    /// file durable and names it, and reports. Returns the thread, to be
    /// joined before the program exits.
    pub fn finish(mut self) -> Option<JoinHandle<()>> {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Msg::Finish);
        }
        self.thread.take()
    }

    /// Gives the file up (see [`Drop`]) and returns the thread, to be
    /// joined before the program exits.
    pub fn abort(mut self) -> Option<JoinHandle<()>> {
        self.stop();
        self.thread.take()
    }

    fn stop(&mut self) {
        if let Some(tx) = self.tx.take() {
            self.shared.stop.store(true, Ordering::SeqCst);
            drop(tx);
        }
    }
}

impl Drop for DiskWriter {
    /// A writer dropped before [`DiskWriter::finish`] gives its file up:
    /// the thread writes nothing more and removes the temporary file.
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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

    fn writer(disk: &Disk) -> (DiskWriter, Receiver<Outcome>, mio::Poll) {
        let poll = mio::Poll::new().unwrap();
        let waker = Arc::new(Waker::new(poll.registry(), mio::Token(0)).unwrap());
        let (tx, rx) = channel();
        let w = DiskWriter::spawn(StreamId(7), disk.clone(), tx, waker).unwrap();
        (w, rx, poll)
    }

    /// Waits for the waker, with a deadline.
    fn woken(poll: &mut mio::Poll) -> bool {
        let mut events = mio::Events::with_capacity(4);
        poll.poll(&mut events, Some(Duration::from_secs(10)))
            .unwrap();
        !events.is_empty()
    }

    #[test]
    fn a_stalled_disk_never_blocks_the_hand_over_and_bounds_the_queue() {
        let disk = Disk::default();
        let (mut w, rx, mut poll) = writer(&disk);
        let chunk: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
        let mut handed = Vec::new();
        // The disk does not move, yet handing over returns every time,
        // until the queue is full; then it takes nothing.
        loop {
            let n = w.hand(&chunk);
            if n == 0 {
                break;
            }
            handed.extend_from_slice(&chunk[..n]);
            assert!(handed.len() <= QUEUE_CAP, "the queue grew past its cap");
        }
        assert_eq!(handed.len(), QUEUE_CAP);
        // The disk moves again: the loop is woken, finds room, and every
        // byte reaches the disk in order; then the file is named.
        disk.open();
        assert!(
            woken(&mut poll),
            "a full queue that drained must wake the loop"
        );
        while handed.len() < 3 * QUEUE_CAP {
            let n = w.hand(&chunk);
            if n == 0 {
                assert!(woken(&mut poll), "the loop must be woken when room comes");
                continue;
            }
            handed.extend_from_slice(&chunk[..n]);
        }
        let thread = w.finish().unwrap();
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
        w.finish().unwrap().join().unwrap();
        assert!(rx.try_recv().is_err(), "an outcome was reported twice");
        disk.with(|s| assert!(!s.finished && s.data.is_empty()));
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
