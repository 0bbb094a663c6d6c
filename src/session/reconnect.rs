//! When the room makes a new connection, and when it stops trying: the
//! dialer's redials after a lost connection (and through a relay, both
//! sides' returns to it), the dialer's retries of a busy listener, and the
//! verdict that the peer's process has ended. Pure: the time is passed in
//! and the jitter drawn from the room's [`Random`].
//!
//! [`super::room::Room`] asks for an attempt with [`Reconnect::schedule`];
//! once it is due ([`super::timer::Timer::Reconnect`]) the driver is told
//! with an [`super::Action::Redial`] and reports how it went: a connection
//! that came up ([`Reconnect::came_up`]) or one that failed
//! ([`Reconnect::failed`]).

use std::time::{Duration, Instant};

use crate::protocol::Random;

/// The wait before the second attempt since the room had a connection,
/// the least a busy listener is given, and the driver's first wait when a
/// first dial with `--retry` fails; it doubles with each attempt...
pub const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// ...up to this.
pub const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// Each wait is longer by up to this fraction of it, drawn at random, so two
/// peers' redials do not march in step.
pub const JITTER: f64 = 0.2;
/// A lost connection resets the backoff only if it lasted this long: a
/// path or a peer that drops every connection at once is not redialed in
/// a tight loop, while a room that ran a while gets its first try at once.
pub const STABLE: Duration = Duration::from_secs(2);
/// How long redials must have been refused, every one, before the peer's
/// process is taken for gone (its port is closed) rather than waiting out
/// the grace period. A time, not a count: a forwarder or a tunnel that
/// restarts refuses a few quick redials too. Long enough that when both
/// sides' grace periods run out together (the listener exits, its port
/// refuses), the dialer reaches its own end of grace first and both say
/// the same: not resumed in time.
pub const REFUSED_FOR: Duration = Duration::from_secs(10);

/// How long the `n`th attempt since the room had a connection waits:
/// nothing for the first, then [`FIRST_BACKOFF`] doubling to at most
/// [`MAX_BACKOFF`], plus up to [`JITTER`] of it more (`jitter` in [0, 1)).
pub fn delay(n: u32, jitter: f64) -> Duration {
    if n == 0 {
        return Duration::ZERO;
    }
    let step = (FIRST_BACKOFF * 2u32.saturating_pow(n - 1)).min(MAX_BACKOFF);
    step + step.mul_f64(jitter.clamp(0.0, 1.0) * JITTER)
}

/// A number in [0, 1) from `rng`.
fn draw(rng: &mut dyn Random) -> f64 {
    let mut b = [0u8; 4];
    rng.fill(&mut b);
    f64::from(u32::from_le_bytes(b)) / (f64::from(u32::MAX) + 1.0)
}

/// The room's attempts at a new connection.
#[derive(Debug, Default)]
pub struct Reconnect {
    /// Attempts since the room last had a connection; each waits longer.
    attempts: u32,
    /// The next attempt is due then (and not yet asked of the driver).
    due: Option<Instant>,
    /// Since when every attempt was refused (None after any other outcome).
    refused_since: Option<Instant>,
}

impl Reconnect {
    /// The room had a connection until now: the next attempt goes at once.
    pub fn reset(&mut self) {
        self.attempts = 0;
    }

    /// Asks for the next attempt: at once the first time since
    /// [`Reconnect::reset`], later after each, and never sooner than
    /// `at_least` from `now`. Returns when it is due.
    pub fn schedule(&mut self, at_least: Duration, now: Instant, rng: &mut dyn Random) -> Instant {
        let n = self.attempts;
        self.attempts = self.attempts.saturating_add(1);
        // The first goes at once and draws nothing.
        let wait = if n == 0 {
            Duration::ZERO
        } else {
            delay(n, draw(rng))
        };
        let at = now + wait.max(at_least);
        self.due = Some(at);
        at
    }

    /// When the next attempt is due, if one was asked for.
    pub fn due(&self) -> Option<Instant> {
        self.due
    }

    /// The attempt is handed to the driver: it is no longer due.
    pub fn take_due(&mut self, now: Instant) -> bool {
        let due = self.due.is_some_and(|t| now >= t);
        if due {
            self.due = None;
        }
        due
    }

    /// A connection came up: whatever answered is not a closed port.
    pub fn came_up(&mut self) {
        self.refused_since = None;
    }

    /// An attempt failed at `now`, `refused` or otherwise. Returns true if
    /// and only if every attempt has been refused for [`REFUSED_FOR`]: the
    /// peer's process is gone.
    pub fn failed(&mut self, refused: bool, now: Instant) -> bool {
        if !refused {
            self.refused_since = None;
            return false;
        }
        let since = *self.refused_since.get_or_insert(now);
        now >= since + REFUSED_FOR
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::DeterministicRng;

    #[test]
    fn delays_back_off_with_jitter_and_a_cap() {
        assert_eq!(delay(0, 0.5), Duration::ZERO, "the first at once");
        assert_eq!(delay(1, 0.0), Duration::from_millis(100));
        assert_eq!(delay(2, 0.0), Duration::from_millis(200));
        assert_eq!(delay(4, 0.0), Duration::from_millis(800));
        assert_eq!(delay(5, 0.0), Duration::from_secs(1), "capped");
        assert_eq!(delay(60, 0.0), Duration::from_secs(1));
        assert_eq!(delay(u32::MAX, 0.0), Duration::from_secs(1));
        assert_eq!(delay(1, 0.5), Duration::from_millis(110));
        assert!(delay(9, 0.999) < Duration::from_millis(1200));
        assert_eq!(delay(3, 7.0), Duration::from_millis(480), "clamped");
    }

    #[test]
    fn draws_stay_below_one() {
        let mut rng = DeterministicRng::new(5);
        for _ in 0..1000 {
            let j = draw(&mut rng);
            assert!((0.0..1.0).contains(&j), "{j}");
        }
    }
}
