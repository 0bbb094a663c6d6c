//! The record layer: `u16 length || AES-256-GCM(type || payload) || tag`.
//!
//! The nonce is `0u32 || seq_be64` with an implicit per-direction counter that
//! never travels on the wire; the additional data is the length header. Any
//! failure is fatal to the connection: there is no resynchronising.

use std::ops::Range;

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};

use crate::buf::ByteBuf;

pub const HEADER_LEN: usize = 2;
pub const TAG_LEN: usize = 16;
/// The most plaintext one record carries.
pub const MAX_PAYLOAD: usize = 16 * 1024;
const MIN_BODY: usize = 1 + TAG_LEN;
const MAX_BODY: usize = 1 + MAX_PAYLOAD + TAG_LEN;
/// The largest record on the wire.
pub const MAX_RECORD: usize = HEADER_LEN + MAX_BODY;
/// Bytes a record adds to its payload.
pub const OVERHEAD: usize = HEADER_LEN + 1 + TAG_LEN;

/// What a record means; the type byte is encrypted, so an observer cannot
/// tell a goodbye from data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Key confirmation, first record each way; carries the sender's name.
    Hello = 1,
    /// Chat text or piped bytes.
    Data = 2,
    /// The sender is done sending and still reading.
    Eof = 3,
    /// The sender is leaving; the room ends.
    Bye = 4,
    /// Heartbeat while idle; no payload.
    Ping = 5,
    /// The sender received our EOF, and so everything we sent before it.
    Done = 6,
    /// How many DATA bytes the sender has delivered to its user: a u64,
    /// big-endian. Sent just before BYE, so the one left behind knows
    /// whether everything it sent was read.
    Received = 7,
    /// Resume: how many DATA bytes the sender has accepted from us so far,
    /// a u64, big-endian; the peer's replay buffer frees what it covers.
    Ack = 8,
    /// Resume: the first record each way on a resumed connection: the
    /// sender's accepted count (u64) and flags (u8: bit 0, our EOF
    /// arrived; bit 1, our DONE arrived; bit 2, our BYE arrived).
    Resume = 9,
    /// The sender could not write what it received (its disk is full, its
    /// output failed) and ends the room; the payload says why, in words
    /// for the user (UTF-8, at most [`MAX_WHY`] bytes). Not tampering,
    /// not a lost connection: the peer stops at once.
    WriteFailed = 10,
    /// Protocol v3, file streams (`protocol::file`): the sender offers a
    /// file: stream id, size, name.
    Offer = 11,
    /// The receiver takes an offered stream from an offset, and grants
    /// credit up to a limit; also how a resumed connection goes on.
    Accept = 12,
    /// The receiver grants more credit on a stream (a higher limit).
    Credit = 13,
    /// A file stream's bytes: stream id, then data.
    Chunk = 14,
    /// The sender sent a file stream's last byte: its SHA-256.
    Fin = 15,
    /// A file stream ends: saved, rejected, cancelled or failed, and why.
    Close = 16,
}

/// The longest reason a WRITE_FAILED record carries.
pub const MAX_WHY: usize = 200;

impl Kind {
    fn from_byte(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Hello,
            2 => Kind::Data,
            3 => Kind::Eof,
            4 => Kind::Bye,
            5 => Kind::Ping,
            6 => Kind::Done,
            7 => Kind::Received,
            8 => Kind::Ack,
            9 => Kind::Resume,
            10 => Kind::WriteFailed,
            11 => Kind::Offer,
            12 => Kind::Accept,
            13 => Kind::Credit,
            14 => Kind::Chunk,
            15 => Kind::Fin,
            16 => Kind::Close,
            _ => return None,
        })
    }
}

/// Why a record was refused. All of them end the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordError {
    /// The length header is outside the allowed range.
    BadLength(usize),
    /// The record did not authenticate: tampered, replayed, reordered,
    /// dropped, reflected, or sealed with another key.
    Forged,
    /// It authenticated but carries a type we do not know.
    UnknownKind(u8),
    /// The sequence counter would wrap (after 2^64 records).
    Exhausted,
}

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordError::BadLength(n) => write!(f, "record length {n} is out of range"),
            RecordError::Forged => f.write_str("a record failed authentication"),
            RecordError::UnknownKind(k) => write!(f, "unknown record type {k}"),
            RecordError::Exhausted => f.write_str("record counter exhausted"),
        }
    }
}

fn nonce(seq: u64) -> Nonce {
    let mut n = [0u8; aead::NONCE_LEN];
    n[4..].copy_from_slice(&seq.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

fn key(bytes: &[u8; 32]) -> LessSafeKey {
    // Invariant: a 32-byte key is exactly what AES-256-GCM takes.
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, bytes).expect("32-byte AES-256 key"))
}

/// Seals records for one direction.
pub struct Sealer {
    key: LessSafeKey,
    seq: u64,
}

impl Sealer {
    pub fn new(key_bytes: &[u8; 32]) -> Sealer {
        Sealer {
            key: key(key_bytes),
            seq: 0,
        }
    }

    /// Appends one record to `out`. Returns Ok(false), writing nothing, if
    /// it does not fit.
    ///
    /// # Panics
    /// If `payload` is longer than [`MAX_PAYLOAD`]: callers split first.
    pub fn seal(
        &mut self,
        kind: Kind,
        payload: &[u8],
        out: &mut ByteBuf,
    ) -> Result<bool, RecordError> {
        assert!(payload.len() <= MAX_PAYLOAD, "payload larger than a record");
        if self.seq == u64::MAX {
            return Err(RecordError::Exhausted);
        }
        let body_len = 1 + payload.len() + TAG_LEN;
        let header = (body_len as u16).to_be_bytes();
        let Some(slot) = out.reserve(HEADER_LEN + body_len) else {
            return Ok(false);
        };
        slot[..HEADER_LEN].copy_from_slice(&header);
        slot[HEADER_LEN] = kind as u8;
        slot[HEADER_LEN + 1..HEADER_LEN + 1 + payload.len()].copy_from_slice(payload);
        let (plain, tag_slot) = slot[HEADER_LEN..].split_at_mut(1 + payload.len());
        // Invariant: AES-GCM sealing only fails for inputs over 64 GiB.
        let tag = self
            .key
            .seal_in_place_separate_tag(nonce(self.seq), Aad::from(header), plain)
            .expect("record far below the AES-GCM size limit");
        tag_slot.copy_from_slice(tag.as_ref());
        self.seq += 1;
        Ok(true)
    }
}

/// One record opened in place.
#[derive(Debug)]
pub struct Opened {
    pub kind: Kind,
    /// Where the plaintext payload now lies in the buffer given to `open`.
    pub payload: Range<usize>,
    /// How many bytes of the buffer the record took.
    pub consumed: usize,
}

/// Opens records for one direction.
pub struct Opener {
    key: LessSafeKey,
    seq: u64,
}

impl Opener {
    pub fn new(key_bytes: &[u8; 32]) -> Opener {
        Opener {
            key: key(key_bytes),
            seq: 0,
        }
    }

    /// Opens the record at the front of `wire` in place. Ok(None) means more
    /// bytes are needed. The length is checked before anything else.
    pub fn open(&mut self, wire: &mut [u8]) -> Result<Option<Opened>, RecordError> {
        if wire.len() < HEADER_LEN {
            return Ok(None);
        }
        let header = [wire[0], wire[1]];
        let body_len = u16::from_be_bytes(header) as usize;
        if !(MIN_BODY..=MAX_BODY).contains(&body_len) {
            return Err(RecordError::BadLength(body_len));
        }
        if wire.len() < HEADER_LEN + body_len {
            return Ok(None);
        }
        if self.seq == u64::MAX {
            return Err(RecordError::Exhausted);
        }
        let body = &mut wire[HEADER_LEN..HEADER_LEN + body_len];
        let plain_len = self
            .key
            .open_in_place(nonce(self.seq), Aad::from(header), body)
            .map_err(|_| RecordError::Forged)?
            .len();
        self.seq += 1;
        let kind = Kind::from_byte(body[0]).ok_or(RecordError::UnknownKind(body[0]))?;
        Ok(Some(Opened {
            kind,
            payload: HEADER_LEN + 1..HEADER_LEN + plain_len,
            consumed: HEADER_LEN + body_len,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const K1: [u8; 32] = [1; 32];
    const K2: [u8; 32] = [2; 32];

    fn sealed(records: &[(Kind, &[u8])]) -> Vec<u8> {
        let mut s = Sealer::new(&K1);
        let mut out = ByteBuf::with_capacity(1 << 20);
        for (k, p) in records {
            assert!(s.seal(*k, p, &mut out).unwrap());
        }
        out.data().to_vec()
    }

    /// Opens every record in `wire`; Err on the first failure.
    fn open_all(key: &[u8; 32], wire: &mut [u8]) -> Result<Vec<(Kind, Vec<u8>)>, RecordError> {
        let mut o = Opener::new(key);
        let mut at = 0;
        let mut got = Vec::new();
        while let Some(r) = o.open(&mut wire[at..])? {
            got.push((
                r.kind,
                wire[at + r.payload.start..at + r.payload.end].to_vec(),
            ));
            at += r.consumed;
        }
        if at != wire.len() {
            return Err(RecordError::BadLength(wire.len() - at)); // truncated tail
        }
        Ok(got)
    }

    #[test]
    fn every_kind_round_trips() {
        let recs: Vec<(Kind, &[u8])> = vec![
            (Kind::Hello, b"alice"),
            (Kind::Data, b"hi\n"),
            (Kind::Data, &[0u8; MAX_PAYLOAD]),
            (Kind::Ping, b""),
            (Kind::Eof, b""),
            (Kind::Bye, b""),
            (Kind::Done, b""),
            (Kind::WriteFailed, b"no space left on device"),
        ];
        let mut wire = sealed(&recs);
        let got = open_all(&K1, &mut wire).unwrap();
        assert_eq!(got.len(), recs.len());
        for ((k, p), (gk, gp)) in recs.iter().zip(&got) {
            assert_eq!((k, p.to_vec()), (gk, gp.clone()));
        }
    }

    #[test]
    fn replay_reorder_drop_and_wrong_key_are_forged() {
        let one = sealed(&[(Kind::Data, b"a")]);
        let two = sealed(&[(Kind::Data, b"a"), (Kind::Data, b"b")]);
        let (r0, r1) = two.split_at(one.len());
        let replay = [r0, r0].concat();
        let reorder = [r1, r0].concat();
        let dropped = r1.to_vec();
        for mut wire in [replay, reorder, dropped] {
            assert_eq!(open_all(&K1, &mut wire), Err(RecordError::Forged));
        }
        let mut other_key = one.clone();
        assert_eq!(open_all(&K2, &mut other_key), Err(RecordError::Forged));
    }

    #[test]
    fn lengths_are_checked_before_reading_the_body() {
        let mut o = Opener::new(&K1);
        for len in [0usize, 16, MAX_BODY + 1, 65535] {
            let mut wire = (len as u16).to_be_bytes().to_vec();
            assert_eq!(o.open(&mut wire).unwrap_err(), RecordError::BadLength(len));
        }
        let mut max = (MAX_BODY as u16).to_be_bytes().to_vec();
        assert!(
            o.open(&mut max).unwrap().is_none(),
            "max length waits for the body"
        );
    }

    #[test]
    fn a_full_buffer_refuses_a_record_without_writing() {
        let mut s = Sealer::new(&K1);
        let mut out = ByteBuf::with_capacity(OVERHEAD + 3);
        assert!(!s.seal(Kind::Data, b"abcd", &mut out).unwrap());
        assert!(out.is_empty());
        assert!(s.seal(Kind::Data, b"abc", &mut out).unwrap());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_open(mut wire in proptest::collection::vec(any::<u8>(), 0..40_000)) {
            let mut o = Opener::new(&K1);
            let r = o.open(&mut wire);
            prop_assert!(!matches!(r, Ok(Some(_))));
        }

        #[test]
        fn any_bit_flip_is_refused(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..6),
                                   pos in any::<prop::sample::Index>(), bit in 0u8..8) {
            let recs: Vec<(Kind, &[u8])> = chunks.iter().map(|c| (Kind::Data, c.as_slice())).collect();
            let mut wire = sealed(&recs);
            let i = pos.index(wire.len());
            wire[i] ^= 1 << bit;
            prop_assert!(open_all(&K1, &mut wire).is_err());
        }

        #[test]
        fn any_cut_is_never_a_complete_stream(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..300), 1..6),
                                              cut in any::<prop::sample::Index>()) {
            let recs: Vec<(Kind, &[u8])> = chunks.iter().map(|c| (Kind::Data, c.as_slice())).collect();
            let wire = sealed(&recs);
            let at = cut.index(wire.len());
            let mut prefix = wire[..at].to_vec();
            if let Ok(got) = open_all(&K1, &mut prefix) {
                prop_assert!(got.len() < recs.len());
            }
        }

        #[test]
        fn round_trip_is_exact(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..2000), 0..8)) {
            let recs: Vec<(Kind, &[u8])> = chunks.iter().map(|c| (Kind::Data, c.as_slice())).collect();
            let mut wire = sealed(&recs);
            let got = open_all(&K1, &mut wire).unwrap();
            let joined: Vec<u8> = got.into_iter().flat_map(|(_, p)| p).collect();
            prop_assert_eq!(joined, chunks.concat());
        }
    }
}
