//! One direction of a relayed pair: the bytes on their way from one side's
//! socket to the other's. The relay never looks at them, so they need not
//! pass through user space: a kernel pipe moved with `splice(2)` carries
//! them socket → pipe → socket without a copy into the process (measured
//! in `scripts/bench --only-relay`). Where no pipe can be had (out of
//! descriptors), a plain buffer does the same job with read and write.
//!
//! Either way the channel holds at most its capacity; the relay reads a
//! side only while the channel toward its partner has room (backpressure).
//! The first bytes (the `ok\n` line, and whatever the partner sent after
//! its hello) go out before anything read later.

use std::io::{self, Read, Write};
#[cfg(target_os = "linux")]
use std::os::fd::{AsRawFd, OwnedFd};

#[cfg(target_os = "linux")]
use crate::sys::relay_pipe::splice;

use mio::net::TcpStream;

/// What filling from the source did.
#[derive(Debug, PartialEq, Eq)]
pub enum Fill {
    Moved(usize),
    /// The source's FIN: nothing more will come.
    Eof,
    /// The source has nothing to read now.
    WouldBlock,
    /// The channel is full: read again once something was drained.
    Full,
}

pub struct Channel {
    /// Bytes that go first, then `first_at` of them are gone.
    first: Vec<u8>,
    first_at: usize,
    inner: Inner,
}

enum Inner {
    /// Linux: a pipe the bytes are spliced through.
    #[cfg(target_os = "linux")]
    Pipe {
        read: OwnedFd,
        write: OwnedFd,
        /// Bytes in the pipe now.
        len: usize,
        cap: usize,
        /// The kernel said full before `cap` (a pipe counts pages, not
        /// bytes): no more until a drain moved something.
        full: bool,
    },
    Buffer {
        buf: Box<[u8]>,
        start: usize,
        end: usize,
    },
}

impl Channel {
    /// A channel of about `cap` bytes that sends `first` before anything.
    /// A kernel pipe on Linux (unless `P2PCHAT_PORTABLE`), else a buffer.
    pub fn new(cap: usize, first: &[u8]) -> Channel {
        #[cfg(target_os = "linux")]
        if crate::sys::fast_paths() {
            if let Ok(pipe) = pipe(cap) {
                return Channel::with(pipe, first);
            }
        }
        Channel::with(buffer(cap), first)
    }

    /// A channel that copies through a buffer, never a pipe.
    #[cfg(test)]
    pub fn buffered(cap: usize, first: &[u8]) -> Channel {
        Channel::with(buffer(cap), first)
    }

    fn with(inner: Inner, first: &[u8]) -> Channel {
        Channel {
            first: first.to_vec(),
            first_at: 0,
            inner,
        }
    }

    /// Nothing waits to be written.
    pub fn is_empty(&self) -> bool {
        self.first_at == self.first.len()
            && match &self.inner {
                #[cfg(target_os = "linux")]
                Inner::Pipe { len, .. } => *len == 0,
                Inner::Buffer { start, end, .. } => start == end,
            }
    }

    /// A read from the source may add bytes.
    pub fn has_room(&self) -> bool {
        match &self.inner {
            #[cfg(target_os = "linux")]
            Inner::Pipe { len, cap, full, .. } => !*full && len < cap,
            Inner::Buffer { buf, start, end } => start == end || *end < buf.len(),
        }
    }

    /// Moves what the source has into the channel, once.
    pub fn fill(&mut self, src: &mut TcpStream) -> io::Result<Fill> {
        match &mut self.inner {
            #[cfg(target_os = "linux")]
            Inner::Pipe {
                write,
                len,
                cap,
                full,
                ..
            } => {
                if *full || *len >= *cap {
                    return Ok(Fill::Full);
                }
                match splice(src.as_raw_fd(), write.as_raw_fd(), *cap - *len) {
                    Ok(0) => Ok(Fill::Eof),
                    Ok(n) => {
                        *len += n;
                        Ok(Fill::Moved(n))
                    }
                    // An empty pipe has room, so the socket is empty; with
                    // bytes in the pipe the kernel may mean either.
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock && *len == 0 => {
                        Ok(Fill::WouldBlock)
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        *full = true;
                        Ok(Fill::Full)
                    }
                    Err(e) => Err(e),
                }
            }
            Inner::Buffer { buf, start, end } => {
                if start == end {
                    (*start, *end) = (0, 0);
                }
                if *end == buf.len() {
                    return Ok(Fill::Full);
                }
                match src.read(&mut buf[*end..]) {
                    Ok(0) => Ok(Fill::Eof),
                    Ok(n) => {
                        *end += n;
                        Ok(Fill::Moved(n))
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Fill::WouldBlock),
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// Writes what waits to `dst`, once: the first bytes, then the rest.
    /// Ok(0) when nothing was waiting; WouldBlock when `dst` is full.
    pub fn drain(&mut self, dst: &mut TcpStream) -> io::Result<usize> {
        if self.first_at < self.first.len() {
            let n = dst.write(&self.first[self.first_at..])?;
            self.first_at += n;
            if self.first_at == self.first.len() {
                self.first = Vec::new();
                self.first_at = 0;
            }
            return Ok(n);
        }
        match &mut self.inner {
            #[cfg(target_os = "linux")]
            Inner::Pipe {
                read, len, full, ..
            } => {
                if *len == 0 {
                    return Ok(0);
                }
                let n = splice(read.as_raw_fd(), dst.as_raw_fd(), *len)?;
                *len -= n;
                *full &= n == 0;
                Ok(n)
            }
            Inner::Buffer { buf, start, end } => {
                if start == end {
                    return Ok(0);
                }
                let n = dst.write(&buf[*start..*end])?;
                *start += n;
                Ok(n)
            }
        }
    }
}

/// An empty buffer of `cap` bytes.
fn buffer(cap: usize) -> Inner {
    Inner::Buffer {
        buf: vec![0u8; cap].into_boxed_slice(),
        start: 0,
        end: 0,
    }
}

/// A pipe channel of about `cap` bytes.
#[cfg(target_os = "linux")]
fn pipe(cap: usize) -> io::Result<Inner> {
    let (read, write, cap) = crate::sys::relay_pipe::pipe(cap)?;
    Ok(Inner::Pipe {
        read,
        write,
        len: 0,
        cap,
        full: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener as StdListener;

    /// A connected pair of non-blocking loopback sockets.
    fn pair() -> (TcpStream, TcpStream) {
        let l = StdListener::bind("127.0.0.1:0").expect("bind");
        let a = std::net::TcpStream::connect(l.local_addr().expect("addr")).expect("connect");
        let (b, _) = l.accept().expect("accept");
        a.set_nonblocking(true).expect("nonblocking");
        b.set_nonblocking(true).expect("nonblocking");
        (TcpStream::from_std(a), TcpStream::from_std(b))
    }

    /// Pushes `data` from one socket pair through `ch` into another and
    /// returns what came out, with the first bytes in front.
    fn through(mut ch: Channel, data: &[u8]) -> Vec<u8> {
        let (mut src_w, mut src) = pair();
        let (mut dst, mut dst_r) = pair();
        let mut sent = 0;
        let mut got = Vec::new();
        let mut eof = false;
        let mut buf = [0u8; 65536];
        while !(eof && ch.is_empty()) {
            if sent < data.len() {
                match src_w.write(&data[sent..]) {
                    Ok(n) => sent += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => panic!("{e}"),
                }
                if sent == data.len() {
                    src_w.shutdown(std::net::Shutdown::Write).expect("shutdown");
                }
            }
            if !eof && ch.has_room() {
                match ch.fill(&mut src).expect("fill") {
                    Fill::Eof => eof = true,
                    Fill::Moved(_) | Fill::WouldBlock | Fill::Full => {}
                }
            }
            match ch.drain(&mut dst) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("{e}"),
            }
            match dst_r.read(&mut buf) {
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("{e}"),
            }
        }
        dst.shutdown(std::net::Shutdown::Write).expect("shutdown");
        loop {
            match dst_r.read(&mut buf) {
                Ok(0) => return got,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("{e}"),
            }
        }
    }

    fn data() -> Vec<u8> {
        (0..3_000_000u32).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_pipe_channel_moves_every_byte_in_order_after_the_first_ones() {
        let ch = Channel::with(pipe(65536).expect("a pipe"), b"ok\n");
        let mut want = b"ok\n".to_vec();
        want.extend_from_slice(&data());
        assert!(through(ch, &data()) == want);
    }

    #[test]
    fn a_buffer_channel_does_the_same() {
        let mut want = b"ok\nsurplus".to_vec();
        want.extend_from_slice(&data());
        assert!(through(Channel::buffered(4096, b"ok\nsurplus"), &data()) == want);
    }
}
