//! How many file bytes a room's socket takes now: enough to keep TCP's
//! congestion window growing, never so many that a chat line typed
//! meanwhile finds the window full.
//!
//! While TCP is in slow start its window is small and its segments leave
//! in bursts, one per round trip: once a burst has filled the window,
//! nothing more leaves until its acknowledgements return a round trip
//! later. A chat line written then waits that round trip, and everything
//! written ahead of it waits with it (over a 100 ms link, a line typed
//! as a file started took up to 200 ms). So during slow start file bytes
//! leave a few segments of the window free, which the chat's records use
//! at once; TCP still grows its window, as it does in slow start while
//! at least half of it is in use. Once slow start ends, file bytes fill
//! the window again: TCP grows it then only while it is full, and the
//! acknowledgements, spread over the round trip by then, free room for a
//! line within a fraction of it.

use std::time::Duration;

use crate::sys::net::SendWindow;

/// Below this round trip a full window delays a line by less than the
/// chat notices (the bench's goal on loopback is 10 ms), and file bytes
/// are not held back at all.
pub const MIN_RTT: Duration = Duration::from_millis(5);

/// The most segments of the window left free for the chat: a line, an
/// acknowledgement and a credit record fit in two.
const HEADROOM_MAX: u32 = 4;

/// The file bytes the socket takes now (None: as many as it will take),
/// on a link of at least `min_rtt` ([`MIN_RTT`] but in tests).
pub fn file_room(w: &SendWindow, min_rtt: Duration) -> Option<usize> {
    if !w.slow_start || w.rtt < min_rtt {
        return None;
    }
    // A quarter of the window at most, so that three quarters stay in use
    // and the window keeps doubling; none at all for a window under four
    // segments, which could otherwise never grow.
    let headroom = (w.cwnd / 4).min(HEADROOM_MAX);
    let free = w.cwnd.saturating_sub(headroom).saturating_sub(w.unacked);
    let bytes = u64::from(free) * u64::from(w.mss);
    let room = bytes.saturating_sub(u64::from(w.notsent));
    Some(usize::try_from(room).unwrap_or(usize::MAX))
}

/// How soon to look again at a socket whose window held file bytes back:
/// acknowledgements come a round trip after a burst, so a sixteenth of it
/// loses little of the window, between 1 ms and 10 ms.
pub fn recheck_after(w: &SendWindow) -> Duration {
    (w.rtt / 16).clamp(Duration::from_millis(1), Duration::from_millis(10))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: u32 = 1448;

    fn window(cwnd: u32, unacked: u32, notsent: u32) -> SendWindow {
        SendWindow {
            cwnd,
            slow_start: true,
            unacked,
            notsent,
            mss: MSS,
            rtt: Duration::from_millis(100),
        }
    }

    #[test]
    fn a_fresh_window_keeps_room_for_the_chat() {
        // Ten segments, none in flight: eight for the file, two free.
        assert_eq!(
            file_room(&window(10, 0, 0), MIN_RTT),
            Some(8 * MSS as usize)
        );
        // Seven in flight: one more.
        assert_eq!(file_room(&window(10, 7, 0), MIN_RTT), Some(MSS as usize));
        // Eight in flight: the rest is the chat's.
        assert_eq!(file_room(&window(10, 8, 0), MIN_RTT), Some(0));
        assert_eq!(file_room(&window(10, 10, 0), MIN_RTT), Some(0));
        // Bytes written and not yet sent count against it too.
        assert_eq!(
            file_room(&window(10, 0, 3 * MSS), MIN_RTT),
            Some(5 * MSS as usize)
        );
        assert_eq!(file_room(&window(10, 0, 20 * MSS), MIN_RTT), Some(0));
    }

    #[test]
    fn the_headroom_is_a_few_segments_at_most() {
        assert_eq!(
            file_room(&window(100, 0, 0), MIN_RTT),
            Some(96 * MSS as usize)
        );
        assert_eq!(
            file_room(&window(1000, 990, 0), MIN_RTT),
            Some(6 * MSS as usize)
        );
    }

    #[test]
    fn a_tiny_window_is_never_held_shut() {
        // After a timeout the window is one segment: with nothing in
        // flight there is always room for one more, or it never grows.
        for cwnd in 1..4 {
            assert_eq!(
                file_room(&window(cwnd, 0, 0), MIN_RTT),
                Some((cwnd * MSS) as usize)
            );
        }
        for cwnd in 1..64 {
            let r = file_room(&window(cwnd, 0, 0), MIN_RTT).unwrap();
            // ...and at least half of the window is for the file.
            assert!(r >= ((cwnd * MSS / 2) as usize), "cwnd {cwnd}: {r}");
        }
    }

    #[test]
    fn no_limit_after_slow_start_or_on_a_short_round_trip() {
        let mut w = window(10, 10, 0);
        w.slow_start = false;
        assert_eq!(file_room(&w, MIN_RTT), None);
        let mut w = window(10, 10, 0);
        w.rtt = Duration::from_micros(50);
        assert_eq!(file_room(&w, MIN_RTT), None);
    }

    #[test]
    fn a_held_socket_is_looked_at_again_soon() {
        let mut w = window(10, 10, 0);
        assert_eq!(recheck_after(&w), Duration::from_micros(6250));
        w.rtt = Duration::from_secs(2);
        assert_eq!(recheck_after(&w), Duration::from_millis(10));
        w.rtt = Duration::from_millis(5);
        assert_eq!(recheck_after(&w), Duration::from_millis(1));
    }
}
