//! A whole session fed arbitrary peer bytes in arbitrary chunks, with time
//! moving on: the handshake and record layer must end in an error or keep
//! waiting, never panic, never show unauthenticated bytes.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use p2pchat::protocol::{DeterministicRng, Role};
use p2pchat::session::{LinkId, RoomSettings, Security, Session, SessionConfig, Status};
use p2pchat::testkit;
use zeroize::Zeroizing;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let security = match mode % 3 {
        0 => Security::VerifyCode,
        1 => Security::Secret(Zeroizing::new(b"fuzz".to_vec())),
        _ => Security::Plain,
    };
    let role = if mode & 0x80 == 0 {
        Role::Listener
    } else {
        Role::Dialer
    };
    let mut now = Instant::now();
    let mut s = Session::new(
        SessionConfig {
            security,
            room: RoomSettings {
                // Half the inputs also offer resume, so its HELLO field and a
                // RESUME where a HELLO belongs are fuzzed too.
                resume: (mode & 0x40 != 0).then(|| Duration::from_secs(60)),
                resume_buffer: 1 << 20,
                ..testkit::room_settings(role, "fuzz")
            },
        },
        Box::new(DeterministicRng::new(u64::from(mode))),
    );
    let link = LinkId(16);
    match role {
        Role::Listener => s.accept(link, 1, now),
        Role::Dialer => s.connected(link, now),
    }
    let plain = mode % 3 == 2;
    let mut chunks = rest.chunks(1 + (mode as usize % 61));
    loop {
        let n = s.to_send(link).len();
        s.sent(link, n, now);
        let shown = s.output().len();
        assert!(
            plain || shown == 0 || s.is_established(),
            "output before the handshake"
        );
        s.output_written(shown, now);
        while s.poll_event().is_some() {}
        while s.poll_action().is_some() {}
        if let Status::Ended(_) = s.status() {
            return;
        }
        let Some(chunk) = chunks.next() else { break };
        let buf = s.receive_buf(link);
        let k = buf.len().min(chunk.len());
        buf[..k].copy_from_slice(&chunk[..k]);
        s.received(link, k, now);
        now += Duration::from_millis(chunk[0] as u64 * 50);
        if s.poll_timeout().is_some_and(|t| t <= now) {
            s.handle_timeout(now);
        }
    }
    s.transport_closed(link, now);
    let _ = s.status();
});
