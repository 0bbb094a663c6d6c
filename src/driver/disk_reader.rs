//! A file we send is read on a thread of its own, ahead of the network,
//! so a slow disk never holds the loop: a file on a network share, a
//! sleeping USB disk or a cold spinning one can take a second to answer
//! a read, and on the loop thread that would stall the chat, the
//! heartbeats and the other transfers with it (the twin of
//! [`super::disk_writer`]).
//!
//! The thread starts at the loop's first take (an offer may wait long
//! for its answer, or never get one), and reads in order from where it
//! was last asked to start, at most [`READ_AHEAD`] ahead of the loop
//! (and a piece it holds for a full queue).
//! [`DiskReader::take`] never blocks: it says [`Took::Waiting`] when the
//! thread has nothing ready, and the thread then wakes the loop with its
//! next piece. A resume that reads the file again
//! from an earlier offset is a `take` at that offset: the thread starts
//! over there, and what it read ahead from the old place is dropped.

use std::io;
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;

use mio::Waker;

use crate::files::disk::Outgoing;

/// The most read in one piece.
const PIECE: usize = 512 * 1024;
/// The most read ahead of the loop, in pieces: 1 MiB, which rides out a
/// disk's hiccup of 60 ms at 16 MB/s. With the piece being taken, the
/// one the thread holds for a full queue and one spare on its way back, a
/// file being read costs at most 2.5 MiB, and one that was read whole
/// none but the piece being taken. (Pieces this large keep the threads' switches few: each piece
/// handed over may wake the other side.)
const PIECES_AHEAD: usize = 2;
pub const READ_AHEAD: usize = PIECE * PIECES_AHEAD;

/// Where a sent file's bytes come from: [`Outgoing`], or a test's
/// stand-in.
pub trait Source: Send + 'static {
    /// Reads from `offset` into `buf`; 0 only at or past [`Source::size`].
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<usize>;
    /// The size offered: nothing past it is read.
    fn size(&self) -> u64;
    /// The name for an error about it.
    fn name(&self) -> &str;
}

impl Source for Outgoing {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        Outgoing::read_at(self, offset, buf)
    }

    fn size(&self) -> u64 {
        Outgoing::len(self)
    }

    fn name(&self) -> &str {
        Outgoing::name(self)
    }
}

/// What the loop got from [`DiskReader::take`].
#[derive(Debug)]
pub enum Took {
    /// This many bytes, from the offset asked.
    Bytes(usize),
    /// Nothing is ready: the thread wakes the loop when something is.
    Waiting,
    /// Reading failed; the transfer cannot go on.
    Failed(io::Error),
}

/// A piece the thread read, or why it could not, for the reads started at
/// `start` (the loop's count of its requests to start over).
enum Piece {
    Data { start: u64, bytes: Vec<u8> },
    Failed { start: u64, error: io::Error },
}

/// The loop found nothing ready: the thread wakes it with its next piece.
type Wants = AtomicBool;

/// One file being read ahead of the network, off the loop.
pub struct DiskReader {
    /// The file, until the first take starts the thread.
    idle: Option<Box<dyn Source>>,
    /// Its size, as offered.
    size: u64,
    waker: Arc<Waker>,
    /// The thread, once started.
    running: Option<Running>,
    /// The number of the last request to start over.
    start: u64,
    /// The offset of the next byte the loop takes (`u64::MAX` before the
    /// first take).
    next: u64,
    /// The piece being taken, and how much of it was.
    front: Option<(Vec<u8>, usize)>,
}

/// The loop's ends of a running reader's channels.
struct Running {
    /// Where to start over: (the request's number, the offset).
    restart: Sender<(u64, u64)>,
    pieces: Receiver<Piece>,
    /// Pieces taken, back to the thread to be read into again (a fresh
    /// one would be zeroed first, a pass over memory for nothing); one at
    /// most waits there, so a reader that read all keeps no more.
    spent: SyncSender<Vec<u8>>,
    wants: Arc<Wants>,
    #[cfg_attr(not(test), allow(dead_code))]
    thread: JoinHandle<()>,
}

impl DiskReader {
    /// A reader of `source` that starts its thread at the first take (an
    /// offer may wait long for its answer, or never get one), and wakes
    /// the loop through `waker`.
    pub fn new<S: Source>(source: S, waker: Arc<Waker>) -> DiskReader {
        DiskReader {
            size: source.size(),
            idle: Some(Box::new(source)),
            waker,
            running: None,
            start: 0,
            next: u64::MAX,
            front: None,
        }
    }

    /// Returns true if and only if its thread runs and has more to read:
    /// the file costs memory and reads now.
    pub fn reading(&self) -> bool {
        self.running.is_some() && self.next < self.size
    }

    /// Returns true if and only if its thread has started.
    pub fn started(&self) -> bool {
        self.running.is_some()
    }

    /// Takes the file's bytes from offset `at` into `buf` (not empty):
    /// as many as are ready, at once, or [`Took::Waiting`].
    pub fn take(&mut self, at: u64, buf: &mut [u8]) -> Took {
        if let Some(source) = self.idle.take() {
            match Running::spawn(source, self.waker.clone()) {
                Ok(running) => self.running = Some(running),
                Err(e) => return Took::Failed(e),
            }
        }
        let Some(running) = &mut self.running else {
            return Took::Failed(io::Error::other("the file's reader did not start"));
        };
        if at != self.next {
            // Asks the thread to read from `at` on. What it read from
            // elsewhere is dropped as it comes below (never all at once
            // here, where a piece already read from `at` could be among
            // it); that also makes room for a thread blocked on a full
            // queue to see the request.
            self.start += 1;
            self.next = at;
            if let Some((bytes, _)) = self.front.take() {
                let _ = running.spent.try_send(bytes);
            }
            let _ = running.restart.send((self.start, at));
        }
        loop {
            if let Some((bytes, taken)) = &mut self.front {
                let n = buf.len().min(bytes.len() - *taken);
                buf[..n].copy_from_slice(&bytes[*taken..*taken + n]);
                *taken += n;
                let used_up = *taken == bytes.len();
                self.next += n as u64;
                if let Some((bytes, _)) = self.front.take_if(|_| used_up) {
                    // Back for the next read, if there is one.
                    if self.next < self.size {
                        let _ = running.spent.try_send(bytes);
                    }
                }
                return Took::Bytes(n);
            }
            match running.receive() {
                Ok(Piece::Data { start, bytes }) if start == self.start => {
                    self.front = Some((bytes, 0));
                }
                Ok(Piece::Failed { start, error }) if start == self.start => {
                    return Took::Failed(error)
                }
                // Read ahead from where the loop no longer wants it.
                Ok(Piece::Data { bytes, .. }) => {
                    let _ = running.spent.try_send(bytes);
                }
                Ok(Piece::Failed { .. }) => {}
                Err(TryRecvError::Empty) => return Took::Waiting,
                Err(TryRecvError::Disconnected) => {
                    return Took::Failed(io::Error::other("the file's reader stopped"))
                }
            }
        }
    }

    /// Stops the thread (after the read it is in) and returns it, for a
    /// test to see it end. The program does not wait for it: a reader
    /// leaves nothing behind, and a read stuck on a dead disk must not
    /// hold the program's exit. Dropping a reader closes its channels,
    /// which stops the thread: its next send, or its wait for a request,
    /// fails.
    #[cfg(test)]
    pub fn close(mut self) -> Option<JoinHandle<()>> {
        self.running.take().map(|r| r.thread)
    }
}

impl Running {
    fn spawn(mut source: Box<dyn Source>, waker: Arc<Waker>) -> io::Result<Running> {
        let (restart, restarts) = channel::<(u64, u64)>();
        let (tx, pieces) = sync_channel::<Piece>(PIECES_AHEAD);
        let (spent, reusable) = sync_channel::<Vec<u8>>(1);
        let wants = Arc::new(Wants::new(false));
        let theirs = wants.clone();
        let thread = std::thread::Builder::new()
            .name("p2pchat-read".into())
            .spawn(move || {
                let len = source.size();
                // Nothing is read before the loop asks.
                let Ok((mut start, mut at)) = restarts.recv() else {
                    return;
                };
                loop {
                    // The newest request to start over wins.
                    while let Ok((s, a)) = restarts.try_recv() {
                        (start, at) = (s, a);
                    }
                    if at >= len {
                        // All read: wait for a request to start over.
                        match restarts.recv() {
                            Ok((s, a)) => (start, at) = (s, a),
                            Err(_) => return,
                        }
                        continue;
                    }
                    let want = usize::try_from(len - at).map_or(PIECE, |l| l.min(PIECE));
                    let mut bytes = reusable.try_recv().unwrap_or_default();
                    bytes.resize(want, 0);
                    let piece = match source.read_at(at, &mut bytes) {
                        Ok(0) => Piece::Failed {
                            start,
                            error: io::Error::new(
                                io::ErrorKind::UnexpectedEof,
                                format!("{} is shorter than when it was offered", source.name()),
                            ),
                        },
                        Ok(n) => {
                            bytes.truncate(n);
                            at += n as u64;
                            Piece::Data { start, bytes }
                        }
                        Err(error) => Piece::Failed { start, error },
                    };
                    if let Piece::Failed { .. } = piece {
                        // Nothing more from here: wait to be asked again.
                        at = len;
                    }
                    // Blocks while the loop is READ_AHEAD behind; fails
                    // once the loop has dropped the reader.
                    if tx.send(piece).is_err() {
                        return;
                    }
                    // Either the loop sees this piece when it looks again
                    // after asking to be woken, or this sees that it asked.
                    fence(Ordering::SeqCst);
                    if theirs.swap(false, Ordering::SeqCst) {
                        let _ = waker.wake();
                    }
                }
            })?;
        Ok(Running {
            restart,
            pieces,
            spent,
            wants,
            thread,
        })
    }

    /// The next piece, or Empty after asking to be woken for it.
    fn receive(&mut self) -> Result<Piece, TryRecvError> {
        match self.pieces.try_recv() {
            Err(TryRecvError::Empty) => {
                self.wants.store(true, Ordering::SeqCst);
                // A piece sent before the thread looked at `wants` is in
                // the channel now: take it rather than sleep past it.
                fence(Ordering::SeqCst);
                self.pieces.try_recv()
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::TestWake;
    use std::sync::{Condvar, Mutex};
    use std::time::Duration;

    /// A stand-in file of `len` bytes (byte i is `i % 251`): every read
    /// waits until the test opens the gate, and it can fail on demand.
    #[derive(Clone)]
    struct Disk {
        len: u64,
        state: Arc<(Mutex<DiskState>, Condvar)>,
    }

    #[derive(Default)]
    struct DiskState {
        open: bool,
        fail: bool,
        reads: usize,
    }

    impl Disk {
        fn new(len: u64) -> Disk {
            Disk {
                len,
                state: Arc::default(),
            }
        }

        fn set(&self, f: impl FnOnce(&mut DiskState)) {
            f(&mut self.state.0.lock().unwrap());
            self.state.1.notify_all();
        }

        /// Waits up to `limit` while `cond` holds; returns how many reads
        /// there were then, and whether it held throughout.
        fn wait_while(&self, limit: Duration, cond: impl Fn(&DiskState) -> bool) -> (usize, bool) {
            let (lock, cv) = &*self.state;
            let (s, waited) = cv
                .wait_timeout_while(lock.lock().unwrap(), limit, |s| cond(s))
                .unwrap();
            (s.reads, waited.timed_out())
        }
    }

    impl Source for Disk {
        fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
            let (lock, cv) = &*self.state;
            let mut s = cv.wait_while(lock.lock().unwrap(), |s| !s.open).unwrap();
            s.reads += 1;
            cv.notify_all();
            if s.fail {
                return Err(io::Error::other("input/output error"));
            }
            let n = buf.len().min((self.len - offset) as usize);
            for (i, b) in buf[..n].iter_mut().enumerate() {
                *b = ((offset + i as u64) % 251) as u8;
            }
            Ok(n)
        }

        fn size(&self) -> u64 {
            self.len
        }

        fn name(&self) -> &str {
            "stand-in"
        }
    }

    fn reader(disk: &Disk) -> (DiskReader, TestWake) {
        let (poll, waker) = TestWake::new();
        (DiskReader::new(disk.clone(), waker), poll)
    }

    /// Takes from `at` until `want` bytes came, waiting on the waker
    /// whenever nothing is ready.
    fn take_all(
        r: &mut DiskReader,
        poll: &mut TestWake,
        at: u64,
        want: usize,
        piece: usize,
    ) -> Vec<u8> {
        let mut got = Vec::new();
        let mut buf = vec![0; piece];
        while got.len() < want {
            let n = piece.min(want - got.len());
            match r.take(at + got.len() as u64, &mut buf[..n]) {
                Took::Bytes(n) => got.extend_from_slice(&buf[..n]),
                Took::Waiting => assert!(poll.woken(), "nothing ready, and no wake-up came"),
                Took::Failed(e) => panic!("reading failed: {e}"),
            }
        }
        got
    }

    fn expected(from: u64, n: usize) -> Vec<u8> {
        (from..from + n as u64).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn a_stalled_disk_never_blocks_the_loop_and_the_bytes_come_in_order() {
        let len = 3 * READ_AHEAD as u64 + 12_345;
        let disk = Disk::new(len);
        let (mut r, mut poll) = reader(&disk);
        let mut buf = vec![0; 64 * 1024];
        // The disk does not answer, yet take returns at once.
        assert!(matches!(r.take(0, &mut buf), Took::Waiting));
        disk.set(|s| s.open = true);
        // Odd sizes, so takes straddle the pieces.
        let got = take_all(&mut r, &mut poll, 0, len as usize, 7_777);
        assert!(
            got == expected(0, len as usize),
            "the bytes differ from the file's"
        );
        r.close().unwrap().join().unwrap();
    }

    #[test]
    fn nothing_is_read_before_the_first_take() {
        let disk = Disk::new(10 * READ_AHEAD as u64);
        let (mut r, mut poll) = reader(&disk);
        disk.set(|s| s.open = true);
        let (reads, held) = disk.wait_while(Duration::from_millis(300), |s| s.reads == 0);
        assert!(held, "{reads} pieces read before anyone asked");
        let got = take_all(&mut r, &mut poll, 0, 1000, 1000);
        assert!(got == expected(0, 1000));
        r.close().unwrap().join().unwrap();
    }

    #[test]
    fn the_thread_reads_no_further_ahead_than_its_bound() {
        let disk = Disk::new(64 * READ_AHEAD as u64);
        let (mut r, mut poll) = reader(&disk);
        disk.set(|s| s.open = true);
        take_all(&mut r, &mut poll, 0, 1000, 1000);
        // The piece being taken, the queue, and the one the thread holds
        // waiting for room: the thread gets there...
        let bound = PIECES_AHEAD + 2;
        let (reads, _) = disk.wait_while(Duration::from_secs(10), |s| s.reads < bound);
        assert_eq!(reads, bound, "the thread did not read ahead");
        // ...and no further, however long it is given.
        let (reads, held) = disk.wait_while(Duration::from_millis(300), |s| s.reads <= bound);
        assert!(held, "{reads} pieces read ahead");
        drop(r);
    }

    #[test]
    fn a_resume_from_an_earlier_offset_starts_the_thread_over_there() {
        let len = 2 * READ_AHEAD as u64;
        let disk = Disk::new(len);
        let (mut r, mut poll) = reader(&disk);
        disk.set(|s| s.open = true);
        let first = take_all(&mut r, &mut poll, 0, 300_000, 65_536);
        assert!(first == expected(0, 300_000));
        // The peer had only 100,000 bytes: read again from there, to the end.
        let again = take_all(&mut r, &mut poll, 100_000, len as usize - 100_000, 65_536);
        assert!(
            again == expected(100_000, len as usize - 100_000),
            "a restart gave other bytes"
        );
        r.close().unwrap().join().unwrap();
    }

    #[test]
    fn a_read_error_reaches_the_loop_and_a_restart_can_try_again() {
        let disk = Disk::new(1_000_000);
        let (mut r, mut poll) = reader(&disk);
        disk.set(|s| {
            s.open = true;
            s.fail = true;
        });
        let mut buf = vec![0; 4096];
        let error = loop {
            match r.take(0, &mut buf) {
                Took::Waiting => assert!(poll.woken(), "an error must wake the loop"),
                Took::Failed(e) => break e,
                Took::Bytes(_) => panic!("bytes from a failing disk"),
            }
        };
        assert_eq!(error.to_string(), "input/output error");
        disk.set(|s| s.fail = false);
        let got = take_all(&mut r, &mut poll, 5, 10_000, 4096);
        assert!(got == expected(5, 10_000));
        r.close().unwrap().join().unwrap();
    }
}
