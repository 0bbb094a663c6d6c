//! Linux: the kernel pipe a relayed direction is spliced through, so its
//! bytes never enter user space (`driver/relay_channel.rs`).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// A non-blocking pipe of about `cap` bytes: its read end, its write end
/// and the capacity the kernel granted.
pub fn pipe(cap: usize) -> io::Result<(OwnedFd, OwnedFd, usize)> {
    let mut fds: [RawFd; 2] = [-1, -1];
    // SAFETY: pipe2 fills two fds or fails; O_NONBLOCK on both ends.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both fds were just created and are ours alone.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let want = libc::c_int::try_from(cap).unwrap_or(libc::c_int::MAX);
    // F_SETPIPE_SZ rounds up to a power of two pages; a refusal (above
    // /proc/sys/fs/pipe-max-size) leaves the default 64 KiB.
    // SAFETY: fcntl on our own pipe.
    unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, want) };
    // SAFETY: as above; F_GETPIPE_SZ only reports.
    let got = unsafe { libc::fcntl(write.as_raw_fd(), libc::F_GETPIPE_SZ) };
    let cap = usize::try_from(got).map_err(|_| io::Error::last_os_error())?;
    Ok((read, write, cap))
}

/// splice(2) up to `len` bytes from `from` to `to`, one of them a pipe,
/// without blocking on the pipe (the sockets are non-blocking).
pub fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    loop {
        // SAFETY: splice between two descriptors the caller owns; null
        // offsets (neither is a file).
        let n = unsafe {
            libc::splice(
                from,
                std::ptr::null_mut(),
                to,
                std::ptr::null_mut(),
                len,
                libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
            )
        };
        match usize::try_from(n) {
            Ok(n) => return Ok(n),
            Err(_) => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
}
