//! The record decoder on arbitrary bytes: it must never panic and never
//! accept a record it did not see sealed; after one valid record, nothing
//! that follows may open.
#![no_main]

use libfuzzer_sys::fuzz_target;
use p2pchat::protocol::record::{Kind, Opener, Sealer};
use p2pchat::buf::ByteBuf;

const KEY: [u8; 32] = [9; 32];

fuzz_target!(|data: &[u8]| {
    // (a) arbitrary bytes under a fixed key never decode.
    let mut wire = data.to_vec();
    let mut opener = Opener::new(&KEY);
    assert!(!matches!(opener.open(&mut wire), Ok(Some(_))));

    // (b) one valid record, then the arbitrary bytes.
    let mut buf = ByteBuf::with_capacity(64 * 1024);
    Sealer::new(&KEY).seal(Kind::Data, b"genuine", &mut buf).unwrap();
    let mut wire = buf.data().to_vec();
    wire.extend_from_slice(data);
    let mut opener = Opener::new(&KEY);
    let first = opener.open(&mut wire).unwrap().expect("the genuine record");
    assert_eq!(&wire[first.payload.clone()], b"genuine");
    let rest = &mut wire[first.consumed..];
    assert!(!matches!(opener.open(rest), Ok(Some(_))));
});
