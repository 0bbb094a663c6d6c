//! A fixed-capacity byte buffer: the only kind of buffer the core uses, so
//! memory stays bounded however much data flows.

/// A contiguous FIFO of bytes with a fixed capacity.
///
/// Data lives in `buf[start..end]`; free space is `buf[end..]` after an
/// occasional compaction. Readers take from the front with [`consume`];
/// writers fill [`spare`] and then [`commit`].
///
/// [`consume`]: ByteBuf::consume
/// [`spare`]: ByteBuf::spare
/// [`commit`]: ByteBuf::commit
pub struct ByteBuf {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
}

impl ByteBuf {
    pub fn with_capacity(capacity: usize) -> ByteBuf {
        ByteBuf {
            buf: vec![0; capacity].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// The most it holds.
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// How many more bytes fit (after compaction).
    pub fn room(&self) -> usize {
        self.buf.len() - self.len()
    }

    pub fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.end]
    }

    /// Drops `n` bytes from the front.
    pub fn consume(&mut self, n: usize) {
        assert!(n <= self.len(), "consume past the end of the buffer");
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// The free space at the back, moving the data to the front first when
    /// that frees more than it costs.
    pub fn spare(&mut self) -> &mut [u8] {
        if self.start > 0 && self.buf.len() - self.end < self.buf.len() / 2 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        &mut self.buf[self.end..]
    }

    /// Marks `n` bytes written into [`ByteBuf::spare`] as data.
    pub fn commit(&mut self, n: usize) {
        assert!(
            n <= self.buf.len() - self.end,
            "commit past the spare space"
        );
        self.end += n;
    }

    /// Reserves exactly `n` bytes at the back, compacting if needed.
    /// Returns None if they do not fit.
    pub fn reserve(&mut self, n: usize) -> Option<&mut [u8]> {
        if self.room() < n {
            return None;
        }
        if self.buf.len() - self.end < n {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let at = self.end;
        self.end += n;
        Some(&mut self.buf[at..at + n])
    }

    /// Copies as much of `data` as fits; returns how much did.
    pub fn extend(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.room());
        if let Some(dst) = self.reserve(n) {
            dst.copy_from_slice(&data[..n]);
        }
        n
    }
}

/// A fixed-capacity ring of bytes: what goes in at the back comes out at
/// the front, and nothing is ever moved. Reads and writes see contiguous
/// pieces, which stop where the ring wraps. For a buffer that holds a lot
/// for long (resume's replay buffer), where [`ByteBuf`]'s compaction would
/// copy its contents again and again.
pub struct Ring {
    buf: Box<[u8]>,
    /// Where the data starts, and how much there is.
    head: usize,
    len: usize,
}

impl Ring {
    pub fn with_capacity(capacity: usize) -> Ring {
        Ring {
            buf: vec![0; capacity.max(1)].into_boxed_slice(),
            head: 0,
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Free space, in all.
    pub fn room(&self) -> usize {
        self.buf.len() - self.len
    }

    /// The contiguous data from `offset` bytes past the front, up to where
    /// the ring wraps or the data ends.
    pub fn data_from(&self, offset: usize) -> &[u8] {
        if offset >= self.len {
            return &[];
        }
        let cap = self.buf.len();
        let at = (self.head + offset) % cap;
        let stop = if self.head + offset < cap {
            // Before the wrap: up to the data's end or the ring's.
            (self.head + self.len).min(cap)
        } else {
            // Past the wrap: up to the data's end.
            self.head + self.len - cap
        };
        &self.buf[at..stop]
    }

    /// Drops `n` bytes from the front.
    pub fn consume(&mut self, n: usize) {
        assert!(n <= self.len, "consume past the end of the ring");
        self.head = (self.head + n) % self.buf.len();
        self.len -= n;
        if self.len == 0 {
            self.head = 0;
        }
    }

    /// The contiguous free space at the back (up to the wrap or the data's
    /// front).
    pub fn spare(&mut self) -> &mut [u8] {
        let cap = self.buf.len();
        let tail = self.head + self.len;
        if tail < cap {
            &mut self.buf[tail..]
        } else {
            let at = tail - cap;
            &mut self.buf[at..self.head]
        }
    }

    /// Marks `n` bytes written into [`Ring::spare`] as data.
    pub fn commit(&mut self, n: usize) {
        assert!(n <= self.room(), "commit past the spare space");
        self.len += n;
    }

    /// Copies as much of `data` as fits, across the wrap; returns how
    /// much did.
    pub fn extend(&mut self, data: &[u8]) -> usize {
        let mut done = 0;
        while done < data.len() {
            let spare = self.spare();
            let n = spare.len().min(data.len() - done);
            if n == 0 {
                break;
            }
            spare[..n].copy_from_slice(&data[done..done + n]);
            self.commit(n);
            done += n;
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ring_wraps_without_moving_anything() {
        let mut r = Ring::with_capacity(8);
        r.spare()[..6].copy_from_slice(b"abcdef");
        r.commit(6);
        r.consume(4);
        assert_eq!(r.data_from(0), b"ef");
        // Two free bytes to the end, then the wrap.
        assert_eq!(r.spare().len(), 2);
        r.spare().copy_from_slice(b"gh");
        r.commit(2);
        assert_eq!(r.spare().len(), 4);
        r.spare().copy_from_slice(b"ijkl");
        r.commit(4);
        assert_eq!(r.room(), 0);
        assert_eq!(r.spare().len(), 0);
        assert_eq!(r.data_from(0), b"efgh");
        assert_eq!(r.data_from(1), b"fgh");
        assert_eq!(r.data_from(4), b"ijkl");
        assert_eq!(r.data_from(6), b"kl");
        assert_eq!(r.data_from(8), b"");
        r.consume(5);
        assert_eq!(r.data_from(0), b"jkl");
        r.consume(3);
        assert!(r.is_empty());
        assert_eq!(r.spare().len(), 8);
    }

    #[test]
    fn a_ring_takes_data_across_its_wrap_and_no_more_than_fits() {
        let mut r = Ring::with_capacity(8);
        assert_eq!(r.extend(b"abcdef"), 6);
        r.consume(5);
        // Two bytes to the end, then five before the front.
        assert_eq!(r.extend(b"ghijklmnop"), 7);
        assert_eq!(r.room(), 0);
        assert_eq!(r.data_from(0), b"fgh");
        r.consume(3);
        assert_eq!(r.data_from(0), b"ijklm");
        assert_eq!(r.extend(b""), 0);
        r.consume(5);
        assert!(r.is_empty());
    }

    #[test]
    fn fifo_order_and_capacity_hold_across_compaction() {
        let mut b = ByteBuf::with_capacity(8);
        assert_eq!(b.extend(b"abcdef"), 6);
        b.consume(4);
        assert_eq!(b.room(), 6);
        assert_eq!(b.extend(b"ghijklmn"), 6);
        assert_eq!(b.data(), b"efghijkl");
        assert_eq!(b.room(), 0);
        assert!(b.reserve(1).is_none());
        b.consume(8);
        assert!(b.is_empty());
        assert_eq!(b.spare().len(), 8);
    }
}
