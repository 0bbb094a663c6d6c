//! Standard input and output as the system has them: what kind of object
//! each is, a descriptor of our own to read or write it, and on Unix the
//! calls that read a socket or write one without blocking.
//!
//! Linux alone can give us a *private* non-blocking description of a pipe
//! or terminal (re-opening `/proc/self/fd/N`). Elsewhere a pipe is shared
//! with the rest of the user's pipeline, so `O_NONBLOCK` is never set on
//! it: the front-end reads and writes such streams on blocking threads
//! instead (`frontend/stdio`).

use std::fs::File;
use std::io;

/// One of the two standard streams we carry data on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Std {
    In,
    Out,
}

/// What kind of object a standard stream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A pipe or FIFO.
    Pipe,
    /// A terminal (a console on Windows).
    Terminal,
    /// A socket (Unix: `nc -e`, inetd, systemd).
    Socket,
    /// A regular file: it can be read again from an earlier offset.
    File,
    /// Anything else (`/dev/null`, a device): never blocks for long.
    Other,
}

/// Returns true if and only if standard stream `which` (or stderr) is a
/// terminal.
pub fn is_terminal(fd: u8) -> bool {
    use std::io::IsTerminal;
    match fd {
        0 => io::stdin().is_terminal(),
        1 => io::stdout().is_terminal(),
        2 => io::stderr().is_terminal(),
        _ => false,
    }
}

/// A descriptor of our own for a standard stream, sharing its open file
/// description (and so its offset and flags) with the original.
pub fn dup(which: Std) -> io::Result<File> {
    #[cfg(unix)]
    {
        use std::os::fd::AsFd;
        let fd = match which {
            Std::In => io::stdin().as_fd().try_clone_to_owned()?,
            Std::Out => io::stdout().as_fd().try_clone_to_owned()?,
        };
        Ok(File::from(fd))
    }
    #[cfg(windows)]
    {
        use std::os::windows::io::AsHandle;
        let handle = match which {
            Std::In => io::stdin().as_handle().try_clone_to_owned()?,
            Std::Out => io::stdout().as_handle().try_clone_to_owned()?,
        };
        Ok(File::from(handle))
    }
}

/// What kind of object standard stream `which` is.
pub fn kind(which: Std) -> Kind {
    let fd = match which {
        Std::In => 0,
        Std::Out => 1,
    };
    if is_terminal(fd) {
        return Kind::Terminal;
    }
    imp(which)
}

#[cfg(unix)]
fn imp(which: Std) -> Kind {
    use std::os::unix::fs::FileTypeExt;
    let Ok(meta) = dup(which).and_then(|f| f.metadata()) else {
        return Kind::Other;
    };
    let t = meta.file_type();
    if t.is_file() {
        Kind::File
    } else if t.is_fifo() {
        Kind::Pipe
    } else if t.is_socket() {
        Kind::Socket
    } else {
        Kind::Other
    }
}

/// Windows: `GetFileType`, not std's metadata, which calls a pipe a file.
#[cfg(windows)]
fn imp(which: Std) -> Kind {
    use std::os::windows::io::AsRawHandle;
    use windows_sys::Win32::Storage::FileSystem::{GetFileType, FILE_TYPE_DISK, FILE_TYPE_PIPE};
    let Ok(f) = dup(which) else {
        return Kind::Other;
    };
    // SAFETY: GetFileType only inspects a handle we hold.
    match unsafe { GetFileType(f.as_raw_handle()) } {
        FILE_TYPE_DISK => Kind::File,
        // Anonymous and named pipes, and sockets: read on a thread.
        FILE_TYPE_PIPE => Kind::Pipe,
        _ => Kind::Other,
    }
}

/// Unix: wakes a thread waiting in [`wait_input`] without input: the
/// write end of a pipe the wait also watches.
#[cfg(unix)]
pub struct Canceller {
    read: std::io::PipeReader,
    write: std::io::PipeWriter,
}

#[cfg(unix)]
impl Canceller {
    pub fn new() -> io::Result<Canceller> {
        let (read, write) = std::io::pipe()?;
        Ok(Canceller { read, write })
    }

    /// Ends the current (or the next) wait with "cancelled".
    pub fn cancel(&self) {
        use std::io::Write;
        let _ = (&self.write).write(&[1]);
    }
}

/// Unix: waits until standard input has something to read (Ok(true)) or
/// `cancel` was called (Ok(false)), so that a thread reading a terminal
/// never sits in a read that would take keys meant for someone else.
/// select(2), not poll(2): macOS's poll does not support terminals.
#[cfg(unix)]
pub fn wait_input(cancel: &Canceller) -> io::Result<bool> {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    let c = cancel.read.as_raw_fd();
    loop {
        // SAFETY: fd_set is plain data, for which zeroes are a value.
        let mut set: libc::fd_set = unsafe { std::mem::zeroed() };
        // SAFETY: FD_ZERO and FD_SET write into our set; both fds are
        // below FD_SETSIZE (0, and a pipe made at start).
        unsafe {
            libc::FD_ZERO(&mut set);
            libc::FD_SET(0, &mut set);
            libc::FD_SET(c, &mut set);
        }
        // SAFETY: select reads and writes our set; no timeout (null).
        let n = unsafe {
            libc::select(
                c.max(0) + 1,
                &mut set,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        // SAFETY: FD_ISSET reads our set.
        if unsafe { libc::FD_ISSET(c, &set) } {
            // Readable: this read does not wait, and takes the pending
            // cancellations at once.
            let _ = (&cancel.read).read(&mut [0u8; 64]);
            return Ok(false);
        }
        return Ok(true);
    }
}

/// Where standard input stands in a regular file and how long the file
/// is, if it is one and can seek.
pub fn file_position(which: Std) -> Option<(u64, u64)> {
    use std::io::Seek;
    if kind(which) != Kind::File {
        return None;
    }
    let mut f = dup(which).ok()?;
    let meta = f.metadata().ok()?;
    let at = f.stream_position().ok()?;
    Some((at, meta.len()))
}

/// Linux: a private non-blocking description of a pipe, FIFO or terminal
/// on standard stream `which`, by re-opening `/proc/self/fd/N`: the flag
/// never reaches the description the shell and the pipeline share. A pipe
/// with no reader left gives `ENXIO` ([`no_reader`]).
#[cfg(target_os = "linux")]
pub fn reopen_private(which: Std) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let (fd, write) = match which {
        Std::In => (0, false),
        Std::Out => (1, true),
    };
    File::options()
        .read(!write)
        .write(write)
        .custom_flags(libc::O_NONBLOCK)
        .open(format!("/proc/self/fd/{fd}"))
}

/// The error of opening a pipe's write end that has no reader.
#[cfg(target_os = "linux")]
pub fn no_reader(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENXIO)
}

/// Linux: enlarges a pipe to 1 MiB (the unprivileged maximum) to cut
/// wake-ups on both ends; harmless to fail.
#[cfg(target_os = "linux")]
pub fn enlarge_pipe(pipe: &File) {
    use std::os::fd::AsRawFd;
    // SAFETY: F_SETPIPE_SZ on a pipe we hold; errors are ignored.
    unsafe { libc::fcntl(pipe.as_raw_fd(), libc::F_SETPIPE_SZ, 1 << 20) };
}

/// Unix: registers `fd` with the poll; false if the poller refuses that
/// kind of object (epoll: EPERM for files; kqueue: EINVAL for some
/// devices), which is then read as if always ready.
#[cfg(unix)]
pub fn register(
    registry: &mio::Registry,
    fd: std::os::fd::RawFd,
    token: mio::Token,
    interest: mio::Interest,
) -> io::Result<bool> {
    match registry.register(&mut mio::unix::SourceFd(&fd), token, interest) {
        Ok(()) => Ok(true),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM | libc::EINVAL)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Unix: stops watching `fd`.
#[cfg(unix)]
pub fn deregister(registry: &mio::Registry, fd: std::os::fd::RawFd) {
    let _ = registry.deregister(&mut mio::unix::SourceFd(&fd));
}

/// Unix: reads standard input, a socket, without blocking.
#[cfg(unix)]
pub fn recv_nowait(buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: buf is valid for buf.len() bytes.
    let n = unsafe { libc::recv(0, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// Unix: writes standard output, a socket, without blocking, and without
/// SIGPIPE when the peer has gone (MSG_NOSIGNAL where there is one; on
/// macOS `SO_NOSIGPIPE`, set by [`quiet_socket_stdout`]).
#[cfg(unix)]
pub fn send_nowait(data: &[u8]) -> io::Result<usize> {
    #[cfg(target_os = "macos")]
    let flags = libc::MSG_DONTWAIT;
    #[cfg(not(target_os = "macos"))]
    let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
    // SAFETY: data is valid for data.len() bytes.
    let n = unsafe { libc::send(1, data.as_ptr().cast(), data.len(), flags) };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// Writes what it can of `buf` to stderr without ever waiting: Ok(0)
/// when stderr takes nothing now. A socket is written with MSG_DONTWAIT;
/// anything else (a pipe, a terminal, a file) only when poll(2) says it
/// is writable, and at most PIPE_BUF bytes, which a pipe with any room
/// takes whole. (Setting O_NONBLOCK on stderr would change it for every
/// process that shares it, such as the shell.)
#[cfg(unix)]
pub fn write_stderr_nowait(buf: &[u8]) -> io::Result<usize> {
    let fd = libc::STDERR_FILENO;
    // SAFETY: send(2) reads `buf.len()` bytes from a live slice.
    let n = unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), NOWAIT_NOSIGNAL) };
    if n >= 0 {
        return Ok(n as usize);
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EAGAIN) => return Ok(0),
        Some(libc::EINTR) => return Ok(0),
        Some(libc::ENOTSOCK) => {}
        _ => return Err(e),
    }
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: poll(2) on one pollfd we own, without waiting.
    let ready = unsafe { libc::poll(&mut pfd, 1, 0) };
    if ready <= 0 {
        return Ok(0);
    }
    if pfd.revents & (libc::POLLERR | libc::POLLNVAL) != 0 {
        return Err(io::Error::from(io::ErrorKind::BrokenPipe));
    }
    if pfd.revents & libc::POLLOUT == 0 {
        return Ok(0);
    }
    let len = buf.len().min(libc::PIPE_BUF);
    // SAFETY: write(2) reads `len` bytes from a live slice.
    let n = unsafe { libc::write(fd, buf.as_ptr().cast(), len) };
    if n >= 0 {
        return Ok(n as usize);
    }
    let e = io::Error::last_os_error();
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
        _ => Err(e),
    }
}

/// Windows: a plain write (the console or a pipe); Windows has no way to
/// ask a pipe whether a write would wait short of overlapped I/O on a
/// handle we did not open, so a stderr nobody reads can still stall there.
#[cfg(windows)]
pub fn write_stderr_nowait(buf: &[u8]) -> io::Result<usize> {
    use std::io::Write;
    io::stderr().write(buf)
}

/// send(2) flags: never wait, never SIGPIPE (macOS: SO_NOSIGPIPE is not
/// ours to set on a shared stderr, and std ignores SIGPIPE anyway).
#[cfg(all(unix, not(target_os = "macos")))]
const NOWAIT_NOSIGNAL: libc::c_int = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
#[cfg(target_os = "macos")]
const NOWAIT_NOSIGNAL: libc::c_int = libc::MSG_DONTWAIT;

/// macOS: a write to standard output, a socket whose peer has gone, gives
/// EPIPE and no SIGPIPE (std ignores SIGPIPE anyway; this is for certain).
pub fn quiet_socket_stdout() {
    #[cfg(target_os = "macos")]
    {
        let one: libc::c_int = 1;
        // SAFETY: setsockopt reads one c_int; fd 1 is a socket here.
        unsafe {
            libc::setsockopt(
                1,
                libc::SOL_SOCKET,
                libc::SO_NOSIGPIPE,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
    }
}

/// Points standard output at the null device, closing what it was, so a
/// consumer downstream sees the end now (while stderr stays).
pub fn stdout_to_null() {
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        if let Ok(null) = File::options().write(true).open("/dev/null") {
            // SAFETY: dup2 onto fd 1 atomically replaces it; `null` stays ours.
            unsafe { libc::dup2(null.as_raw_fd(), 1) };
        }
    }
    #[cfg(windows)]
    {
        use std::os::windows::io::IntoRawHandle;
        use windows_sys::Win32::Foundation::CloseHandle;
        use windows_sys::Win32::System::Console::{GetStdHandle, SetStdHandle, STD_OUTPUT_HANDLE};
        let Ok(null) = File::options().write(true).open("NUL") else {
            return;
        };
        // SAFETY: swaps the process's standard output handle for NUL (which
        // the process then owns) and closes the old one, which nothing of
        // ours uses any more: std asks for the handle at every write.
        unsafe {
            let old = GetStdHandle(STD_OUTPUT_HANDLE);
            if SetStdHandle(STD_OUTPUT_HANDLE, null.into_raw_handle()) != 0 && !old.is_null() {
                CloseHandle(old);
            }
        }
    }
}
