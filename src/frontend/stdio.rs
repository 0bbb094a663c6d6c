//! stdin and stdout as the event loop needs them: non-blocking where epoll
//! can watch them, always-ready where it cannot (regular files, /dev/null).
//!
//! O_NONBLOCK is never set on fd 0 or fd 1 themselves: that flag lives on the
//! open file description shared with the shell and the other processes of a
//! pipeline. Pipes, FIFOs and terminals are re-opened through
//! `/proc/self/fd/N` instead, which gives a private description; sockets are
//! read and written with per-call `MSG_DONTWAIT`.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};

/// What kind of object a standard fd is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FdKind {
    /// Pipe, FIFO or terminal: re-open non-blocking and poll.
    Stream,
    /// Socket: poll fd itself and use MSG_DONTWAIT.
    Socket,
    /// Regular file, /dev/null and other things epoll refuses: never blocks
    /// for long, so treat as always ready.
    Always,
}

fn kind_of(fd: RawFd) -> FdKind {
    // SAFETY: fstat on a valid fd number fills the struct or fails.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return FdKind::Always;
    }
    match st.st_mode & libc::S_IFMT {
        libc::S_IFIFO => FdKind::Stream,
        libc::S_IFSOCK => FdKind::Socket,
        libc::S_IFCHR if is_terminal(fd) => FdKind::Stream,
        _ => FdKind::Always,
    }
}

/// Opens a private, non-blocking description of standard fd `fd`.
fn reopen(fd: RawFd, write: bool) -> io::Result<OwnedFd> {
    let path = format!("/proc/self/fd/{fd}\0");
    let mode = if write {
        libc::O_WRONLY
    } else {
        libc::O_RDONLY
    };
    // SAFETY: the path is NUL-terminated; open returns a new fd or -1.
    let new = unsafe {
        libc::open(
            path.as_ptr().cast(),
            mode | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    if new < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `new` is a freshly opened fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// Enlarges a pipe to 1 MiB (the unprivileged maximum) to cut wake-ups on
/// both ends; harmless to fail.
fn enlarge_pipe(fd: RawFd) {
    // SAFETY: F_SETPIPE_SZ on a pipe fd; errors are ignored.
    unsafe { libc::fcntl(fd, libc::F_SETPIPE_SZ, 1 << 20) };
}

/// The bytes left to read in standard fd `fd` when it is a regular file
/// (its size less the offset already read), else None.
pub fn regular_file_left(fd: RawFd) -> Option<u64> {
    let (at, size) = regular_file_position(fd)?;
    size.checked_sub(at)
}

/// Where regular file `fd` stands and how long it is, if it is one and
/// can seek.
fn regular_file_position(fd: RawFd) -> Option<(u64, u64)> {
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as in kind_of; lseek with SEEK_CUR only reports the offset.
    if unsafe { libc::fstat(fd, &mut st) } != 0 || st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return None;
    }
    let at = u64::try_from(unsafe { libc::lseek(fd, 0, libc::SEEK_CUR) }).ok()?;
    Some((at, u64::try_from(st.st_size).ok()?))
}

fn is_fifo(fd: RawFd) -> bool {
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as in kind_of.
    unsafe { libc::fstat(fd, &mut st) == 0 && st.st_mode & libc::S_IFMT == libc::S_IFIFO }
}

/// Registers `fd` for `interest`; false if epoll refuses it (EPERM).
fn try_register(
    registry: &Registry,
    fd: RawFd,
    token: Token,
    interest: Interest,
) -> io::Result<bool> {
    match registry.register(&mut SourceFd(&fd), token, interest) {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => Ok(false),
        Err(e) => Err(e),
    }
}

enum Reader {
    /// A private non-blocking description, polled.
    Polled(File),
    /// fd 0 is a socket: recv with MSG_DONTWAIT.
    Socket,
    /// Blocking reads of fd 0 that cannot block for long.
    Direct,
}

/// Standard input for the loop.
pub struct Stdin {
    reader: Option<Reader>,
    /// Cached readiness: set by events, cleared by WouldBlock or a short
    /// read that proves the pipe or socket empty.
    pub ready: bool,
    registered: Option<RawFd>,
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
    pub fn open(registry: &Registry, token: Token) -> io::Result<Stdin> {
        let mut input = Stdin {
            reader: None,
            ready: true,
            registered: None,
            short_read_drains: false,
            hup: false,
            file_start: None,
        };
        let reader = match kind_of(0) {
            FdKind::Stream => {
                let file = File::from(reopen(0, false)?);
                if is_fifo(0) {
                    enlarge_pipe(file.as_raw_fd());
                    input.short_read_drains = true;
                }
                if try_register(registry, file.as_raw_fd(), token, Interest::READABLE)? {
                    input.registered = Some(file.as_raw_fd());
                }
                Reader::Polled(file)
            }
            FdKind::Socket => {
                if try_register(registry, 0, token, Interest::READABLE)? {
                    input.registered = Some(0);
                }
                input.short_read_drains = true;
                Reader::Socket
            }
            FdKind::Always => {
                input.file_start = regular_file_position(0).map(|(at, _)| at);
                Reader::Direct
            }
        };
        input.reader = Some(reader);
        Ok(input)
    }

    /// A readiness event arrived; `closed` if it reports a hang-up.
    pub fn on_ready(&mut self, closed: bool) {
        self.ready = true;
        self.hup |= closed;
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

    /// Returns true if and only if fd 0 is a regular file we can seek in.
    pub fn rewindable(&self) -> bool {
        self.file_start.is_some()
    }

    /// Reads again from `at` bytes past where fd 0 stood when we began,
    /// also after EOF closed it. The offset is shared with whoever else
    /// has the file open through the same description (the shell): it is
    /// where a plain reader would be, having read that far.
    pub fn rewind(&mut self, at: u64) -> io::Result<()> {
        let start = self
            .file_start
            .ok_or_else(|| io::Error::from(io::ErrorKind::Unsupported))?;
        let to = start
            .checked_add(at)
            .and_then(|o| libc::off_t::try_from(o).ok())
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: lseek on fd 0, a regular file; it fails or moves.
        if unsafe { libc::lseek(0, to, libc::SEEK_SET) } < 0 {
            return Err(io::Error::last_os_error());
        }
        self.reader = Some(Reader::Direct);
        self.ready = true;
        Ok(())
    }

    fn read_raw(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.reader {
            Some(Reader::Polled(f)) => f.read(buf),
            Some(Reader::Socket) => {
                // SAFETY: buf is valid for buf.len() bytes.
                let n = unsafe {
                    libc::recv(0, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT)
                };
                syscall_result(n)
            }
            Some(Reader::Direct) => {
                // SAFETY: reading into a valid buffer from fd 0.
                let n = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
                syscall_result(n)
            }
            None => Ok(0),
        }
    }

    /// Stops watching stdin (after EOF).
    pub fn close(&mut self, registry: &Registry) {
        if let Some(fd) = self.registered.take() {
            let _ = registry.deregister(&mut SourceFd(&fd));
        }
        self.reader = None;
        self.ready = false;
    }
}

enum Writer {
    Polled(File),
    Socket,
    /// Blocking writes to fd 1: a terminal, a file, /dev/null.
    Direct,
}

/// Standard output for the loop.
pub struct Stdout {
    writer: Option<Writer>,
    pub ready: bool,
    registered: Option<RawFd>,
}

impl Stdout {
    pub fn open(registry: &Registry, token: Token) -> io::Result<Stdout> {
        let mut out = Stdout {
            writer: None,
            ready: true,
            registered: None,
        };
        let writer = match kind_of(1) {
            FdKind::Stream if is_terminal(1) => Writer::Direct,
            FdKind::Stream => match reopen(1, true) {
                Ok(fd) => {
                    let file = File::from(fd);
                    enlarge_pipe(file.as_raw_fd());
                    if try_register(registry, file.as_raw_fd(), token, Interest::WRITABLE)? {
                        out.registered = Some(file.as_raw_fd());
                    }
                    Writer::Polled(file)
                }
                // No reader left on the pipe: writes fail as a closed stdout.
                Err(e) if e.raw_os_error() == Some(libc::ENXIO) => Writer::Direct,
                Err(e) => return Err(e),
            },
            FdKind::Socket => {
                if try_register(registry, 1, token, Interest::WRITABLE)? {
                    out.registered = Some(1);
                }
                Writer::Socket
            }
            FdKind::Always => Writer::Direct,
        };
        out.writer = Some(writer);
        Ok(out)
    }

    pub fn is_open(&self) -> bool {
        self.writer.is_some()
    }

    pub fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match &mut self.writer {
            Some(Writer::Polled(f)) => f.write(data),
            Some(Writer::Socket) => {
                // SAFETY: data is valid for data.len() bytes.
                let n = unsafe {
                    libc::send(
                        1,
                        data.as_ptr().cast(),
                        data.len(),
                        libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                    )
                };
                syscall_result(n)
            }
            Some(Writer::Direct) => {
                // SAFETY: writing a valid buffer to fd 1.
                let n = unsafe { libc::write(1, data.as_ptr().cast(), data.len()) };
                syscall_result(n)
            }
            None => Err(io::Error::from(io::ErrorKind::BrokenPipe)),
        }
    }

    /// Closes stdout for good, so a consumer downstream sees EOF now: our
    /// private description is dropped and fd 1 becomes /dev/null.
    pub fn close(&mut self, registry: &Registry) {
        if let Some(fd) = self.registered.take() {
            let _ = registry.deregister(&mut SourceFd(&fd));
        }
        self.writer = None;
        self.ready = false;
        if let Ok(null) = File::options().write(true).open("/dev/null") {
            // SAFETY: dup2 onto fd 1 atomically replaces it; `null` stays ours.
            unsafe { libc::dup2(null.as_raw_fd(), 1) };
        }
    }
}

/// A read/write/recv/send return value as an io::Result.
fn syscall_result(n: isize) -> io::Result<usize> {
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Returns true if and only if standard fd `fd` (0, 1 or 2) is a terminal.
pub fn is_terminal(fd: RawFd) -> bool {
    use std::io::IsTerminal;
    match fd {
        0 => io::stdin().is_terminal(),
        1 => io::stdout().is_terminal(),
        2 => io::stderr().is_terminal(),
        _ => false,
    }
}
