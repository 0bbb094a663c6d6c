//! stdin and stdout as the event loop needs them, whatever they are.
//!
//! | stdin/stdout is | Linux | portable (macOS, FreeBSD, `P2PCHAT_PORTABLE`) | Windows |
//! |---|---|---|---|
//! | pipe, FIFO | private non-blocking description, polled | blocking thread | blocking thread |
//! | terminal | private non-blocking description, polled (stdout: blocking writes) | thread (stdout: blocking writes) | thread (stdout: blocking writes) |
//! | socket | polled; per-call `MSG_DONTWAIT` | the same | a thread (it is a pipe to Windows) |
//! | regular file, `/dev/null` | blocking reads and writes, which never wait long | the same | the same |
//!
//! `O_NONBLOCK` is never set on fd 0 or fd 1 themselves: that flag lives
//! on the open file description shared with the shell and the other
//! processes of a pipeline. Linux re-opens `/proc/self/fd/N` for a private
//! description; elsewhere the threads of [`threads`] do the blocking.

mod threads;

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::sync::Arc;
use std::time::Duration;

use mio::{Registry, Token, Waker};

use crate::sys;
use crate::sys::stdio::{Kind, Std};
use threads::{ThreadReader, ThreadWriter};

/// How long an exit that did not close stdout waits for the writing
/// thread to finish what it accepted.
const FLUSH_ON_ERROR: Duration = Duration::from_secs(2);

enum Reader {
    /// Linux: a private non-blocking description, polled.
    #[cfg(target_os = "linux")]
    Polled(File),
    /// fd 0 is a socket: recv with MSG_DONTWAIT.
    #[cfg(unix)]
    Socket,
    /// Blocking reads that cannot block for long (a file, /dev/null),
    /// through a descriptor sharing fd 0's offset.
    Direct(File),
    /// Blocking reads on a thread of their own.
    Thread(ThreadReader),
}

/// Standard input for the loop.
pub struct Stdin {
    reader: Option<Reader>,
    /// Cached readiness: set by events (or the waker, for the thread),
    /// cleared by WouldBlock or a short read that proves the pipe or
    /// socket empty.
    pub ready: bool,
    /// The fd registered with the poll, to deregister.
    #[cfg(unix)]
    registered: Option<std::os::fd::RawFd>,
    /// A short read means "empty now" (pipes and sockets, unlike a tty in
    /// cooked mode, which returns one line per read).
    short_read_drains: bool,
    /// The writer hung up: read on until EOF whatever the read sizes.
    hup: bool,
    /// fd 0 is a regular file and this is where it stood when we began:
    /// what we read of it can be read again.
    file_start: Option<u64>,
}

impl Stdin {
    pub fn open(registry: &Registry, token: Token, waker: Arc<Waker>) -> io::Result<Stdin> {
        let mut input = Stdin {
            reader: None,
            ready: true,
            #[cfg(unix)]
            registered: None,
            short_read_drains: false,
            hup: false,
            file_start: None,
        };
        let kind = sys::stdio::kind(Std::In);
        let reader = match kind {
            Kind::File | Kind::Other => {
                input.file_start = sys::stdio::file_position(Std::In).map(|(at, _)| at);
                Reader::Direct(sys::stdio::dup(Std::In)?)
            }
            #[cfg(unix)]
            Kind::Socket => {
                if sys::stdio::register(registry, 0, token, mio::Interest::READABLE)? {
                    input.registered = Some(0);
                }
                input.short_read_drains = true;
                Reader::Socket
            }
            #[cfg(target_os = "linux")]
            Kind::Pipe | Kind::Terminal if sys::fast_paths() => {
                use std::os::fd::AsRawFd;
                let file = sys::stdio::reopen_private(Std::In)?;
                if kind == Kind::Pipe {
                    sys::stdio::enlarge_pipe(&file);
                    input.short_read_drains = true;
                }
                let fd = file.as_raw_fd();
                if sys::stdio::register(registry, fd, token, mio::Interest::READABLE)? {
                    input.registered = Some(fd);
                }
                Reader::Polled(file)
            }
            _ => {
                let _ = (registry, token);
                Reader::Thread(ThreadReader::attach(waker)?)
            }
        };
        input.reader = Some(reader);
        Ok(input)
    }

    /// Standard input, a terminal, read until the line editor takes over
    /// (dropping this gives the keys back), where that can be done: polled
    /// on Linux, on a thread whose wait can be cancelled elsewhere on Unix.
    /// None on Windows, whose console read cannot be given up.
    pub fn open_until_editor(
        registry: &Registry,
        token: Token,
        waker: Arc<Waker>,
    ) -> io::Result<Option<Stdin>> {
        #[cfg(unix)]
        return Ok(Some(Stdin::open(registry, token, waker)?));
        #[cfg(windows)]
        {
            let _ = (registry, token, waker);
            Ok(None)
        }
    }

    /// A readiness event arrived; `closed` if it reports a hang-up.
    pub fn on_ready(&mut self, closed: bool) {
        self.ready = true;
        self.hup |= closed;
    }

    /// The loop's waker fired: the reading thread may have something.
    pub fn on_wake(&mut self) {
        if let Some(Reader::Thread(_)) = self.reader {
            self.ready = true;
        }
    }

    /// Reads, and clears `ready` when the read proves the source empty: an
    /// edge-triggered poll reports the next write, so the extra read that
    /// would only return WouldBlock is saved (one syscall per message).
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.read_raw(buf)?;
        if self.short_read_drains && !self.hup && n > 0 && n < buf.len() {
            self.ready = false;
        }
        Ok(n)
    }

    pub fn is_open(&self) -> bool {
        self.reader.is_some()
    }

    /// Returns true if and only if stdin is a regular file we can seek in.
    pub fn rewindable(&self) -> bool {
        self.file_start.is_some()
    }

    /// Reads again from `at` bytes past where stdin stood when we began,
    /// also after EOF closed it. The offset is shared with whoever else
    /// has the file open through the same description (the shell): it is
    /// where a plain reader would be, having read that far.
    pub fn rewind(&mut self, at: u64) -> io::Result<()> {
        let start = self
            .file_start
            .ok_or_else(|| io::Error::from(io::ErrorKind::Unsupported))?;
        let to = start
            .checked_add(at)
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        let mut file = match self.reader.take() {
            Some(Reader::Direct(f)) => f,
            _ => sys::stdio::dup(Std::In)?,
        };
        file.seek(SeekFrom::Start(to))?;
        self.reader = Some(Reader::Direct(file));
        self.ready = true;
        Ok(())
    }

    fn read_raw(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.reader {
            #[cfg(target_os = "linux")]
            Some(Reader::Polled(f)) => f.read(buf),
            #[cfg(unix)]
            Some(Reader::Socket) => sys::stdio::recv_nowait(buf),
            Some(Reader::Direct(f)) => f.read(buf),
            Some(Reader::Thread(t)) => t.read(buf),
            None => Ok(0),
        }
    }

    /// Stops watching stdin (after EOF).
    pub fn close(&mut self, registry: &Registry) {
        #[cfg(unix)]
        if let Some(fd) = self.registered.take() {
            sys::stdio::deregister(registry, fd);
        }
        let _ = registry;
        self.reader = None;
        self.ready = false;
    }
}

enum Writer {
    #[cfg(target_os = "linux")]
    Polled(File),
    #[cfg(unix)]
    Socket,
    /// Blocking writes: a terminal, a file, /dev/null.
    Direct(File),
    Thread(ThreadWriter),
}

/// Standard output for the loop.
pub struct Stdout {
    writer: Option<Writer>,
    pub ready: bool,
    #[cfg(unix)]
    registered: Option<std::os::fd::RawFd>,
    /// The writing thread, kept after `close` until it has finished.
    thread: Option<ThreadWriter>,
}

impl Stdout {
    pub fn open(registry: &Registry, token: Token, waker: Arc<Waker>) -> io::Result<Stdout> {
        let mut out = Stdout {
            writer: None,
            ready: true,
            #[cfg(unix)]
            registered: None,
            thread: None,
        };
        let writer = match sys::stdio::kind(Std::Out) {
            Kind::Terminal | Kind::File | Kind::Other => Writer::Direct(sys::stdio::dup(Std::Out)?),
            #[cfg(unix)]
            Kind::Socket => {
                sys::stdio::quiet_socket_stdout();
                if sys::stdio::register(registry, 1, token, mio::Interest::WRITABLE)? {
                    out.registered = Some(1);
                }
                Writer::Socket
            }
            #[cfg(target_os = "linux")]
            Kind::Pipe if sys::fast_paths() => match sys::stdio::reopen_private(Std::Out) {
                Ok(file) => {
                    use std::os::fd::AsRawFd;
                    sys::stdio::enlarge_pipe(&file);
                    let fd = file.as_raw_fd();
                    if sys::stdio::register(registry, fd, token, mio::Interest::WRITABLE)? {
                        out.registered = Some(fd);
                    }
                    Writer::Polled(file)
                }
                // No reader left on the pipe: writes fail as a closed stdout.
                Err(e) if sys::stdio::no_reader(&e) => Writer::Direct(sys::stdio::dup(Std::Out)?),
                Err(e) => return Err(e),
            },
            _ => {
                let _ = (registry, token);
                Writer::Thread(ThreadWriter::start(waker)?)
            }
        };
        out.writer = Some(writer);
        Ok(out)
    }

    pub fn is_open(&self) -> bool {
        self.writer.is_some()
    }

    /// The loop's waker fired: the writing thread may have room again.
    pub fn on_wake(&mut self) {
        if let Some(Writer::Thread(_)) = self.writer {
            self.ready = true;
        }
    }

    pub fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match &mut self.writer {
            #[cfg(target_os = "linux")]
            Some(Writer::Polled(f)) => f.write(data),
            #[cfg(unix)]
            Some(Writer::Socket) => sys::stdio::send_nowait(data),
            Some(Writer::Direct(f)) => f.write(data),
            Some(Writer::Thread(t)) => t.write(data),
            None => Err(io::Error::from(io::ErrorKind::BrokenPipe)),
        }
    }

    /// Closes stdout for good, so a consumer downstream sees EOF now: our
    /// own descriptor is dropped and stdout becomes the null device (by
    /// the writing thread, once it has written what it holds).
    pub fn close(&mut self, registry: &Registry) {
        #[cfg(unix)]
        if let Some(fd) = self.registered.take() {
            sys::stdio::deregister(registry, fd);
        }
        let _ = registry;
        self.ready = false;
        match self.writer.take() {
            Some(Writer::Thread(mut t)) => {
                t.close();
                self.thread = Some(t);
            }
            Some(other) => {
                drop(other);
                sys::stdio::stdout_to_null();
            }
            None => {}
        }
    }

    /// Before the program exits: what the writing thread accepted is
    /// written (and stdout closed, if we closed it).
    pub fn finish(&mut self) {
        if let Some(t) = &self.thread {
            t.flush(Duration::MAX);
        } else if let Some(Writer::Thread(t)) = &self.writer {
            t.flush(FLUSH_ON_ERROR);
        }
    }
}

/// The bytes left to read in stdin when it is a regular file (its size
/// less the offset already read), else None.
pub fn regular_file_left() -> Option<u64> {
    let (at, size) = sys::stdio::file_position(Std::In)?;
    size.checked_sub(at)
}

/// Returns true if and only if standard fd `fd` (0, 1 or 2) is a terminal.
pub fn is_terminal(fd: u8) -> bool {
    sys::stdio::is_terminal(fd)
}
