//! The record decoder on arbitrary bytes: it must never panic and never
//! accept a record it did not see sealed; after one valid record, nothing
//! that follows may open. The HELLO and RESUME payload decoders take the
//! same bytes: never a panic, and what decodes encodes back the same; so
//! do the file streams' payloads (OFFER, ACCEPT, CREDIT, FIN, CLOSE).
#![no_main]

use libfuzzer_sys::fuzz_target;
use p2pchat::buf::ByteBuf;
use p2pchat::protocol::file::{self, Accept, Close, Credit, Offer};
use p2pchat::protocol::payload::{Hello, Resume};
use p2pchat::protocol::record::{Kind, Opener, Sealer};

const KEY: [u8; 32] = [9; 32];

fuzz_target!(|data: &[u8]| {
    // (a) arbitrary bytes under a fixed key never decode.
    let mut wire = data.to_vec();
    let mut opener = Opener::new(&KEY);
    assert!(!matches!(opener.open(&mut wire), Ok(Some(_))));

    // (b) one valid record, then the arbitrary bytes.
    let mut buf = ByteBuf::with_capacity(64 * 1024);
    Sealer::new(&KEY)
        .seal(Kind::Data, b"genuine", &mut buf)
        .unwrap();
    let mut wire = buf.data().to_vec();
    wire.extend_from_slice(data);
    let mut opener = Opener::new(&KEY);
    let first = opener.open(&mut wire).unwrap().expect("the genuine record");
    assert_eq!(&wire[first.payload.clone()], b"genuine");
    let rest = &mut wire[first.consumed..];
    assert!(!matches!(opener.open(rest), Ok(Some(_))));

    // (c) the payloads a confirmed peer sends.
    let hello = Hello::decode(data);
    assert!(!hello.name.contains(&0), "a name ends at the NUL");
    if let Some(r) = Resume::decode(data) {
        let mut again = r.encode();
        again[8] &= 0b111;
        let mut want = [0u8; 9];
        want.copy_from_slice(data);
        want[8] &= 0b111;
        assert_eq!(again, want, "a RESUME round-trips but for unknown flags");
    }

    // (d) the file streams' payloads round-trip exactly.
    if let Some(o) = Offer::decode(data) {
        assert_eq!(o.encode(), data);
    }
    if let Some(a) = Accept::decode(data) {
        assert_eq!(&a.encode()[..], data);
    }
    if let Some(c) = Credit::decode(data) {
        assert_eq!(&c.encode()[..], data);
    }
    if let Some((id, digest)) = file::decode_fin(data) {
        assert_eq!(&file::encode_fin(id, &digest)[..], data);
    }
    if let Some(c) = Close::decode(data) {
        assert_eq!(c.encode(), data);
    }
});
