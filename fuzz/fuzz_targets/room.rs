//! Past the handshake: an honest key exchange and HELLO inside the harness,
//! then arbitrary records (well sealed, with any kind and payload), raw
//! wire bytes, user input, time and socket ends against the established
//! room. The same script runs under proptest in every `cargo test`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use p2pchat::testkit::{run_room_script, Step};

fuzz_target!(|data: &[u8]| {
    run_room_script(&Step::parse(data));
});
