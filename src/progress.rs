//! `--progress`: how far a transfer has come, in words. Pure: the driver
//! counts the bytes and passes the time; a front-end prints the lines.

use std::time::{Duration, Instant};

/// Counts a transfer both ways and words it when a report is due.
#[derive(Debug, Clone)]
pub struct Progress {
    /// When the first byte moved; rates count from there.
    started: Option<Instant>,
    /// The bytes stdin had left to read when the room began, if it is a
    /// regular file: the 100 % of "percent" and "time left".
    total: Option<u64>,
    sent: u64,
    received: u64,
    every: Duration,
    next: Option<Instant>,
    /// The counts and time of the last report, and the smoothed rates.
    last: Option<(Instant, u64, u64)>,
    rate_sent: f64,
    rate_received: f64,
}

impl Progress {
    /// A report every `every` once data flows; `total` is the size of
    /// stdin when it is a regular file.
    pub fn new(total: Option<u64>, every: Duration) -> Progress {
        Progress {
            started: None,
            total,
            sent: 0,
            received: 0,
            every,
            next: None,
            last: None,
            rate_sent: 0.0,
            rate_received: 0.0,
        }
    }

    /// `n` bytes of ours were handed to the room.
    pub fn sent(&mut self, n: usize, now: Instant) {
        self.start(now);
        self.sent += n as u64;
    }

    /// A resume reads our input again from `at`: what was read past it is
    /// counted again as it is read again.
    pub fn rewound(&mut self, at: u64) {
        self.sent = self.sent.min(at);
        if let Some((t, sent, received)) = self.last {
            self.last = Some((t, sent.min(at), received));
        }
    }

    /// `n` bytes of the peer's were written out.
    pub fn received(&mut self, n: usize, now: Instant) {
        self.start(now);
        self.received += n as u64;
    }

    fn start(&mut self, now: Instant) {
        if self.started.is_none() {
            self.started = Some(now);
            self.next = Some(now + self.every);
            self.last = Some((now, 0, 0));
        }
    }

    /// Returns true if and only if any byte moved.
    pub fn moved(&self) -> bool {
        self.started.is_some()
    }

    /// When the next report is due, once data flows.
    pub fn deadline(&self) -> Option<Instant> {
        self.next
    }

    /// The report, if one is due at `now`.
    pub fn report(&mut self, now: Instant) -> Option<String> {
        if self.next.is_none_or(|t| now < t) {
            return None;
        }
        self.next = Some(now + self.every);
        if let Some((then, sent, received)) = self.last {
            let secs = now.saturating_duration_since(then).as_secs_f64();
            if secs > 0.0 {
                let smooth = |old: f64, new: f64| if old == 0.0 { new } else { (old + new) / 2.0 };
                self.rate_sent = smooth(self.rate_sent, (self.sent - sent) as f64 / secs);
                self.rate_received =
                    smooth(self.rate_received, (self.received - received) as f64 / secs);
            }
        }
        self.last = Some((now, self.sent, self.received));
        let mut parts = Vec::new();
        if self.sent > 0 || self.received == 0 {
            let mut part = format!("sent {}", self.of_total(self.sent));
            part.push_str(&format!(" at {}/s", bytes(self.rate_sent as u64)));
            if let Some(total) = self.total.filter(|&t| t > self.sent) {
                if self.rate_sent >= 1.0 {
                    let left = (total - self.sent) as f64 / self.rate_sent;
                    part.push_str(&format!(
                        ", {} left",
                        duration(Duration::from_secs_f64(left))
                    ));
                }
            }
            parts.push(part);
        }
        if self.received > 0 {
            parts.push(format!(
                "received {} at {}/s",
                bytes(self.received),
                bytes(self.rate_received as u64)
            ));
        }
        Some(parts.join("; "))
    }

    /// The last line: everything moved, in how long, at what average rate.
    pub fn summary(&self, now: Instant) -> String {
        let elapsed = self
            .started
            .map(|t| now.saturating_duration_since(t))
            .unwrap_or_default();
        let secs = elapsed.as_secs_f64().max(1e-3);
        let rate = |n: u64| bytes((n as f64 / secs) as u64);
        let mut parts = Vec::new();
        if self.sent > 0 || self.received == 0 {
            parts.push(format!(
                "sent {} at {}/s",
                self.of_total(self.sent),
                rate(self.sent)
            ));
        }
        if self.received > 0 {
            parts.push(format!(
                "received {} at {}/s",
                bytes(self.received),
                rate(self.received)
            ));
        }
        format!("in {}: {}", duration(elapsed), parts.join("; "))
    }

    /// `12.0 MiB`, or `12.0 MiB of 100.0 MiB (12%)` when the total is known.
    fn of_total(&self, n: u64) -> String {
        match self.total {
            Some(total) if total > 0 => format!(
                "{} of {} ({}%)",
                bytes(n),
                bytes(total),
                (n.min(total) * 100 / total)
            ),
            _ => bytes(n),
        }
    }
}

/// `512 B`, `1.5 KiB`, `12.3 MiB`, `2.0 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `0.4 s`, `12 s`, `3:05`, `1:02:03`.
pub fn duration(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0..=9 => format!("{:.1} s", d.as_secs_f64()),
        10..=59 => format!("{secs} s"),
        60..=3599 => format!("{}:{:02}", secs / 60, secs % 60),
        _ => format!("{}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_read_as_people_write_them() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(100 * 1024 * 1024), "100.0 MiB");
        assert_eq!(duration(Duration::from_millis(400)), "0.4 s");
        assert_eq!(duration(Duration::from_secs(42)), "42 s");
        assert_eq!(duration(Duration::from_secs(185)), "3:05");
        assert_eq!(duration(Duration::from_secs(3723)), "1:02:03");
    }

    #[test]
    fn reports_come_on_time_with_percent_rate_and_time_left() {
        let t0 = Instant::now();
        let mib = 1024 * 1024;
        let mut p = Progress::new(Some(100 * mib), Duration::from_secs(1));
        assert_eq!(p.deadline(), None, "nothing is due before data flows");
        p.sent(10 * mib as usize, t0);
        assert_eq!(p.report(t0), None, "not due yet");
        assert_eq!(p.deadline(), Some(t0 + Duration::from_secs(1)));
        p.sent(10 * mib as usize, t0 + Duration::from_millis(500));
        let line = p.report(t0 + Duration::from_secs(1)).expect("due");
        assert_eq!(
            line,
            "sent 20.0 MiB of 100.0 MiB (20%) at 20.0 MiB/s, 4.0 s left"
        );
        p.received(3 * mib as usize, t0 + Duration::from_secs(2));
        let line = p.report(t0 + Duration::from_secs(2)).expect("due");
        assert!(line.ends_with("; received 3.0 MiB at 3.0 MiB/s"), "{line}");
        assert_eq!(
            p.summary(t0 + Duration::from_secs(4)),
            "in 4.0 s: sent 20.0 MiB of 100.0 MiB (20%) at 5.0 MiB/s; received 3.0 MiB at 768.0 KiB/s"
        );
    }

    #[test]
    fn without_a_known_size_there_is_no_percent() {
        let t0 = Instant::now();
        let mut p = Progress::new(None, Duration::from_secs(5));
        p.received(2048, t0);
        let line = p.report(t0 + Duration::from_secs(5)).expect("due");
        assert_eq!(line, "received 2.0 KiB at 409 B/s");
    }
}
