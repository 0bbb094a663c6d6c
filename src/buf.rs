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

#[cfg(test)]
mod tests {
    use super::*;

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
