//! Standard input and output on blocking threads, for the streams the
//! loop cannot poll without changing them for everyone else: pipes and
//! FIFOs on macOS and FreeBSD (whose only non-blocking mode is shared
//! with the whole pipeline), terminals where kqueue refuses them, and
//! everything on Windows. Also used on Linux in the portable mode.
//!
//! Each thread hands bytes to the one loop through a small shared state
//! and the loop's `mio::Waker`, keeping the loop's promises:
//! * **Bounded memory.** The reader holds at most what the loop last
//!   asked for, and reads again only once the loop took it all; the writer
//!   holds at most [`WRITE_BUFFER`] bytes, and the loop's write gives
//!   `WouldBlock` when they are not yet written.
//! * **No read-ahead.** The reader reads only when the loop asked for
//!   input, and at most as much as the loop had room for then, so nothing
//!   sits read but unwanted when the room ends.
//! * **Nothing lost.** What the writer accepted is written before the
//!   program exits ([`ThreadWriter::flush`]), and a write error (the
//!   reader of our stdout went away) reaches the loop at its next write.

use std::io::{self, Read, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use mio::Waker;

use crate::sys::stdio as sys;

/// The most one read asks of stdin.
const READ_CHUNK: usize = 64 * 1024;
/// The bytes the writer holds that are not yet written.
pub const WRITE_BUFFER: usize = 64 * 1024;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A thread that panicked while holding the lock left plain data.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn wake(waker: &Option<Arc<Waker>>) {
    if let Some(w) = waker {
        let _ = w.wake();
    }
}

struct ReadState {
    /// How much the loop asked for; 0 when it asked for nothing.
    want: usize,
    /// Read and not yet taken, from `at` on.
    data: Vec<u8>,
    at: usize,
    end: bool,
    error: Option<io::Error>,
    waker: Option<Arc<Waker>>,
}

struct ReadShared {
    state: Mutex<ReadState>,
    asked: Condvar,
    /// Unix, a terminal: what ends a wait for keys nobody wants any more.
    #[cfg(unix)]
    cancel: Option<sys::Canceller>,
}

/// Standard input read on a thread. There is one thread per process (it
/// may be blocked in a read when a room ends, and what it then reads
/// belongs to the next room of `--keep`); each room attaches its waker.
pub struct ThreadReader {
    shared: Arc<ReadShared>,
}

impl Drop for ThreadReader {
    fn drop(&mut self) {
        self.cancel();
    }
}

impl ThreadReader {
    pub fn attach(waker: Arc<Waker>) -> io::Result<ThreadReader> {
        static SHARED: OnceLock<io::Result<Arc<ReadShared>>> = OnceLock::new();
        let shared = SHARED.get_or_init(|| {
            let shared = Arc::new(ReadShared {
                state: Mutex::new(ReadState {
                    want: 0,
                    data: Vec::new(),
                    at: 0,
                    end: false,
                    error: None,
                    waker: None,
                }),
                asked: Condvar::new(),
                #[cfg(unix)]
                cancel: match sys::kind(sys::Std::In) {
                    sys::Kind::Terminal => Some(sys::Canceller::new()?),
                    _ => None,
                },
            });
            let source = Source::open()?;
            let theirs = shared.clone();
            std::thread::Builder::new()
                .name("stdin".into())
                .spawn(move || read_loop(&theirs, source))?;
            Ok(shared)
        });
        let shared = match shared {
            Ok(s) => s.clone(),
            Err(e) => return Err(io::Error::new(e.kind(), e.to_string())),
        };
        lock(&shared.state).waker = Some(waker);
        Ok(ThreadReader { shared })
    }

    /// Asks for nothing more, and forgets keys read but not taken: the
    /// terminal's keys go to someone else now (the line editor). A wait
    /// for keys ends without reading; a read of a pipe already under way
    /// completes, and its bytes wait for the next reader.
    pub fn cancel(&self) {
        let mut st = lock(&self.shared.state);
        st.want = 0;
        #[cfg(unix)]
        if let Some(c) = &self.shared.cancel {
            st.data.clear();
            st.at = 0;
            c.cancel();
        }
    }

    /// Takes what was read, or asks the thread for up to `buf.len()` bytes
    /// and says `WouldBlock`; the waker fires when they are there.
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut st = lock(&self.shared.state);
        if st.at < st.data.len() {
            let n = buf.len().min(st.data.len() - st.at);
            buf[..n].copy_from_slice(&st.data[st.at..st.at + n]);
            st.at += n;
            if st.at == st.data.len() {
                st.data.clear();
                st.at = 0;
            }
            return Ok(n);
        }
        if let Some(e) = st.error.take() {
            return Err(e);
        }
        if st.end || buf.is_empty() {
            return Ok(0);
        }
        if st.want == 0 {
            st.want = buf.len().min(READ_CHUNK);
            self.shared.asked.notify_one();
        }
        Err(io::ErrorKind::WouldBlock.into())
    }
}

/// What the reading thread reads: a descriptor of its own; on Windows,
/// std's stdin for a console (it turns the console's UTF-16 into UTF-8).
enum Source {
    File(std::fs::File),
    #[cfg(windows)]
    Console(io::Stdin),
}

impl Source {
    fn open() -> io::Result<Source> {
        #[cfg(windows)]
        if sys::kind(sys::Std::In) == sys::Kind::Terminal {
            return Ok(Source::Console(io::stdin()));
        }
        Ok(Source::File(sys::dup(sys::Std::In)?))
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            // A pipe's read returns what is there, once there is some.
            Source::File(f) => f.read(buf),
            #[cfg(windows)]
            Source::Console(s) => s.read(buf),
        }
    }
}

fn read_loop(shared: &ReadShared, mut source: Source) {
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let want = {
            let mut st = lock(&shared.state);
            while st.want == 0 {
                st = shared.asked.wait(st).unwrap_or_else(|e| e.into_inner());
            }
            st.want
        };
        // A terminal: read only once there are keys, and give up the wait
        // when the reader is cancelled (the line editor takes over).
        #[cfg(unix)]
        if let Some(c) = &shared.cancel {
            match sys::wait_input(c) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(_) => {}
            }
            if lock(&shared.state).want == 0 {
                continue;
            }
        }
        let got = loop {
            match source.read(&mut buf[..want]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => break r,
            }
        };
        let mut st = lock(&shared.state);
        st.want = 0;
        let done = match got {
            Ok(0) => {
                st.end = true;
                true
            }
            Ok(n) => {
                st.data.extend_from_slice(&buf[..n]);
                false
            }
            Err(e) => {
                st.error = Some(e);
                true
            }
        };
        wake(&st.waker);
        if done {
            return;
        }
    }
}

struct WriteState {
    /// Accepted and not yet written.
    data: Vec<u8>,
    /// Being written by the thread now.
    writing: bool,
    /// The loop closed stdout: write what is left, then close it.
    closing: bool,
    closed: bool,
    error: Option<Failed>,
    waker: Option<Arc<Waker>>,
}

/// A write error, kept to be told again at every later write.
#[derive(Clone, Copy)]
struct Failed {
    kind: io::ErrorKind,
    code: Option<i32>,
}

impl Failed {
    fn of(e: &io::Error) -> Failed {
        Failed {
            kind: e.kind(),
            code: e.raw_os_error(),
        }
    }

    fn error(self) -> io::Error {
        match self.code {
            Some(code) => io::Error::from_raw_os_error(code),
            None => self.kind.into(),
        }
    }
}

struct WriteShared {
    state: Mutex<WriteState>,
    changed: Condvar,
}

/// Standard output written on a thread.
pub struct ThreadWriter {
    shared: Arc<WriteShared>,
}

impl ThreadWriter {
    pub fn start(waker: Arc<Waker>) -> io::Result<ThreadWriter> {
        let shared = Arc::new(WriteShared {
            state: Mutex::new(WriteState {
                data: Vec::with_capacity(WRITE_BUFFER),
                writing: false,
                closing: false,
                closed: false,
                error: None,
                waker: Some(waker),
            }),
            changed: Condvar::new(),
        });
        let sink = Sink::open()?;
        let theirs = shared.clone();
        std::thread::Builder::new()
            .name("stdout".into())
            .spawn(move || write_loop(&theirs, sink))?;
        Ok(ThreadWriter { shared })
    }

    /// Hands bytes to the thread: as many as fit, or `WouldBlock` when
    /// none do (the waker fires once some were written).
    pub fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let mut st = lock(&self.shared.state);
        if let Some(failed) = st.error {
            return Err(failed.error());
        }
        if st.closing {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        let room = WRITE_BUFFER.saturating_sub(st.data.len());
        if room == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = room.min(data.len());
        st.data.extend_from_slice(&data[..n]);
        self.shared.changed.notify_all();
        Ok(n)
    }

    /// Writes what is left, then closes stdout (in the background).
    pub fn close(&mut self) {
        let mut st = lock(&self.shared.state);
        st.closing = true;
        self.shared.changed.notify_all();
    }

    /// Waits until everything accepted is written (or failed) and, when
    /// closing, stdout is closed: after `limit` when not closing, so an
    /// error exit never hangs on a reader that stopped reading.
    pub fn flush(&self, limit: Duration) {
        let give_up = Instant::now().checked_add(limit);
        let mut st = lock(&self.shared.state);
        loop {
            let done = st.error.is_some()
                || if st.closing {
                    st.closed
                } else {
                    st.data.is_empty() && !st.writing
                };
            if done {
                return;
            }
            let wait = if st.closing {
                Duration::from_secs(3600)
            } else {
                match give_up.map(|t| t.checked_duration_since(Instant::now())) {
                    Some(Some(d)) => d,
                    Some(None) => return,
                    None => Duration::from_secs(3600),
                }
            };
            st = match self.shared.changed.wait_timeout(st, wait) {
                Ok((st, _)) => st,
                Err(e) => e.into_inner().0,
            };
        }
    }
}

/// Where the writing thread writes: a descriptor of its own on Unix;
/// std's stdout on Windows (which writes a console as UTF-16).
enum Sink {
    #[cfg(unix)]
    File(std::fs::File),
    #[cfg(windows)]
    Std(io::Stdout),
}

impl Sink {
    fn open() -> io::Result<Sink> {
        #[cfg(unix)]
        return Ok(Sink::File(sys::dup(sys::Std::Out)?));
        #[cfg(windows)]
        return Ok(Sink::Std(io::stdout()));
    }

    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            #[cfg(unix)]
            Sink::File(f) => f.write_all(data),
            #[cfg(windows)]
            Sink::Std(s) => {
                let mut s = s.lock();
                s.write_all(data)?;
                s.flush()
            }
        }
    }
}

fn write_loop(shared: &WriteShared, sink: Sink) {
    let mut sink = Some(sink);
    let mut chunk = Vec::with_capacity(WRITE_BUFFER);
    loop {
        {
            let mut st = lock(&shared.state);
            while st.data.is_empty() && !st.closing {
                st = shared.changed.wait(st).unwrap_or_else(|e| e.into_inner());
            }
            if st.data.is_empty() {
                // Closing, and all is written: let the reader see the end.
                // Our descriptor first: then stdout's pipe has no writer.
                let _ = sink.take();
                sys::stdout_to_null();
                st.closed = true;
                wake(&st.waker);
                shared.changed.notify_all();
                return;
            }
            std::mem::swap(&mut chunk, &mut st.data);
            st.writing = true;
        }
        let result = match sink.as_mut() {
            Some(s) => s.write_all(&chunk),
            None => Ok(()),
        };
        chunk.clear();
        let mut st = lock(&shared.state);
        st.writing = false;
        if let Err(e) = result {
            st.error = Some(Failed::of(&e));
            st.data.clear();
            st.closed = true;
        }
        wake(&st.waker);
        shared.changed.notify_all();
        if st.error.is_some() {
            return;
        }
    }
}
