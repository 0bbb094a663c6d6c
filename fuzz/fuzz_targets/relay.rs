//! The relay core on arbitrary input: bytes split into arbitrary reads on
//! a few connections, closes and time steps. It must never panic, never
//! hold more than a hello's worth of a stranger's bytes, and its counts
//! must add up: connections = waiting + 2 × pairs + those still in hello.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use p2pchat::protocol::transit::{self, Parse};
use p2pchat::relay::{Action, ConnId, Limits, Relay};

fuzz_target!(|data: &[u8]| {
    // The parser alone: a verdict for every prefix, and a hello is never
    // longer than the longest valid one.
    match transit::parse(data) {
        Parse::Hello(h) => assert!(h.len <= transit::MAX_HELLO && h.len <= data.len()),
        Parse::Incomplete => assert!(data.len() < transit::MAX_HELLO),
        Parse::Bad => {}
    }
    let mut relay = Relay::new(Limits {
        max_per_source: 3,
        max_pairs: 2,
        max_waiting: 3,
        ..Limits::default()
    });
    let mut now = Instant::now();
    let mut open = [false; 8];
    let mut i = 0;
    while i + 2 <= data.len() {
        let (op, arg) = (data[i], data[i + 1]);
        i += 2;
        let conn = usize::from(arg % 8);
        match op % 5 {
            0 if !open[conn] => open[conn] = relay.accept(ConnId(conn), u128::from(arg % 3), now),
            1 if open[conn] => {
                let n = usize::from(op / 5).min(data.len() - i);
                relay.received(ConnId(conn), &data[i..i + n], now);
                i += n;
            }
            2 if open[conn] => {
                // A well-formed hello for one of two rooms and two sides.
                let side = if arg & 16 == 0 {
                    transit::LISTENER_SIDE
                } else {
                    transit::DIALER_SIDE
                };
                let room = if arg & 32 == 0 { "1" } else { "2" };
                relay.received(
                    ConnId(conn),
                    &transit::hello(&transit::token(room), side),
                    now,
                );
            }
            3 if open[conn] => relay.closed(ConnId(conn), now),
            _ => {
                now += Duration::from_secs(u64::from(arg));
                if relay.poll_timeout().is_some_and(|t| t <= now) {
                    relay.handle_timeout(now);
                }
            }
        }
        while let Some(a) = relay.poll_action() {
            match a {
                Action::Refuse { conn, .. } | Action::Close(conn) => open[conn.0] = false,
                Action::EndPair(a, b) => {
                    open[a.0] = false;
                    open[b.0] = false;
                }
                Action::Pair(..) => {}
            }
        }
        while relay.poll_log().is_some() {}
        assert!(relay.connections() >= relay.waiting() + 2 * relay.pairs());
        assert!(relay.connections() <= open.iter().filter(|o| **o).count());
    }
});
