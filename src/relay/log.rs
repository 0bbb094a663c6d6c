//! The relay's log lines on their way to stderr, which nobody may be
//! reading (a pipe whose reader stopped, a stopped terminal): a bounded
//! queue that drops new lines and counts them rather than make the relay
//! wait. When lines fit again, a line says how many were dropped, where
//! they were.

use std::collections::VecDeque;

/// The most bytes of log lines kept while stderr does not take them:
/// about 250 lines, plenty for a burst while a reader is slow.
pub const LOG_CAP: usize = 16 * 1024;

/// Log lines waiting for stderr; see the module documentation.
#[derive(Debug, Default)]
pub struct LogQueue {
    lines: VecDeque<Vec<u8>>,
    /// Bytes in `lines`.
    bytes: usize,
    /// Lines dropped since the last note of it.
    dropped: u64,
    /// Lines dropped in all.
    dropped_total: u64,
}

impl LogQueue {
    /// Queues `line` (without its newline), or drops it when the queue is
    /// full. A line noting earlier drops goes first when there are some.
    pub fn push(&mut self, line: &str) {
        let line = format!("p2pchat relay: {line}\n").into_bytes();
        // Room for this line and for the note of drops after it.
        if self.bytes + line.len() + 96 > LOG_CAP {
            self.dropped += 1;
            self.dropped_total += 1;
            return;
        }
        self.note_drops();
        self.bytes += line.len();
        self.lines.push_back(line);
    }

    /// Queues the note of lines dropped so far, if any (also at the end).
    pub fn note_drops(&mut self) {
        if self.dropped == 0 {
            return;
        }
        let n = std::mem::take(&mut self.dropped);
        let note = format!(
            "p2pchat relay: {n} log line{} dropped: stderr was not being read\n",
            if n == 1 { "" } else { "s" }
        )
        .into_bytes();
        self.bytes += note.len();
        self.lines.push_back(note);
    }

    /// The bytes to write next.
    pub fn front(&self) -> Option<&[u8]> {
        self.lines.front().map(Vec::as_slice)
    }

    /// `n` bytes of [`LogQueue::front`] were written.
    pub fn written(&mut self, n: usize) {
        let Some(front) = self.lines.front_mut() else {
            return;
        };
        let n = n.min(front.len());
        front.drain(..n);
        self.bytes -= n;
        if front.is_empty() {
            self.lines.pop_front();
        }
    }

    /// stderr is gone for good: forget what waits, and stop keeping lines.
    pub fn clear(&mut self) {
        self.lines.clear();
        self.bytes = 0;
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Lines dropped since the start.
    pub fn dropped_total(&self) -> u64 {
        self.dropped_total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_drops_and_counts_then_says_so_in_place() {
        let mut q = LogQueue::default();
        let line = "x".repeat(100);
        let mut pushed = 0;
        while q.dropped_total() == 0 {
            q.push(&line);
            pushed += 1;
        }
        assert!(q.bytes <= LOG_CAP);
        for _ in 0..9 {
            q.push(&line);
        }
        assert_eq!(q.dropped_total(), 10);
        // The reader takes one line in two writes: there is room again.
        let first = q.front().unwrap().len();
        q.written(first / 2);
        q.written(first - first / 2);
        q.push("after");
        let mut all = Vec::new();
        while let Some(f) = q.front() {
            all.extend_from_slice(f);
            let n = f.len();
            q.written(n);
        }
        let text = String::from_utf8(all).unwrap();
        assert_eq!(text.lines().count(), pushed - 1 - 1 + 2, "{text}");
        assert!(text.ends_with(
            "p2pchat relay: 10 log lines dropped: stderr was not being read\n\
             p2pchat relay: after\n"
        ));
        assert!(q.is_empty() && q.bytes == 0);
    }
}
