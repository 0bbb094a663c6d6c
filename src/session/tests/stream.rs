//! The stream types on their own: a [`SendStream`] and a [`RecvStream`]
//! sealing into a sink that takes a set number of records, no link and no
//! room around them.

use std::time::Instant;

use crate::error::Error;
use crate::protocol::record::{Kind, MAX_PAYLOAD};
use crate::session::stream::{
    Receiving, RecordSink, RecvStream, SendStream, Sending, StreamId, MAIN_WINDOW,
};
use crate::session::IO_CAP;

/// A sink that takes up to `room` records and remembers them.
struct Sink {
    room: usize,
    records: Vec<(Kind, Vec<u8>)>,
}

impl Sink {
    fn new(room: usize) -> Sink {
        Sink {
            room,
            records: Vec::new(),
        }
    }

    fn data(&self) -> Vec<u8> {
        self.records
            .iter()
            .filter(|(k, _)| *k == Kind::Data)
            .flat_map(|(_, p)| p.iter().copied())
            .collect()
    }
}

impl RecordSink for Sink {
    fn seal(&mut self, kind: Kind, payload: &[u8], _: Instant) -> Result<bool, Error> {
        if self.room == 0 {
            return Ok(false);
        }
        self.room -= 1;
        self.records.push((kind, payload.to_vec()));
        Ok(true)
    }
}

fn write(s: &mut SendStream, bytes: &[u8]) {
    let buf = s.input_buf();
    assert!(buf.len() >= bytes.len(), "input_buf too small");
    buf[..bytes.len()].copy_from_slice(bytes);
    s.input_received(bytes.len());
}

fn input(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

#[test]
fn a_send_stream_seals_its_input_in_records_and_ends_with_eof() {
    let now = Instant::now();
    let mut s = SendStream::new(StreamId::MAIN, false, 0);
    assert_eq!(s.id(), StreamId::MAIN);
    let data = input(MAX_PAYLOAD + 10);
    write(&mut s, &data);
    assert_eq!(s.unsealed(), data.len());
    // Room for one record: the first full one goes, the rest waits.
    let mut sink = Sink::new(1);
    assert!(!s.seal_data(&mut sink, now).unwrap());
    assert_eq!(s.sent(), MAX_PAYLOAD as u64);
    assert_eq!(s.unsealed(), 10);
    assert!(s.input_ended());
    assert_eq!(s.state(), Sending::Ending);
    sink.room = 2;
    assert!(s.seal_data(&mut sink, now).unwrap());
    assert!(s.seal_eof(&mut sink, now).unwrap());
    assert_eq!(sink.data(), data);
    assert_eq!(sink.records.last().map(|r| r.0), Some(Kind::Eof));
    assert_eq!(s.state(), Sending::EofSent);
    assert!(!s.can_take_input(), "no input after its end");
    assert!(s.input_buf().is_empty());
    // DONE confirms it all; a second one is a violation, unless a
    // resume may bring it again.
    s.on_done(false).unwrap();
    assert_eq!(s.state(), Sending::Confirmed);
    assert_eq!(s.unconfirmed(), 0);
    assert!(s.on_done(true).is_ok());
    assert!(s.on_done(false).is_err());
}

#[test]
fn unsealed_input_is_bounded_by_io_cap() {
    let mut s = SendStream::new(StreamId::MAIN, true, 4 * IO_CAP);
    let mut taken = 0;
    while s.can_take_input() {
        let n = s.input_buf().len();
        s.input_received(n);
        taken += n;
    }
    assert_eq!(taken, IO_CAP, "input stops at IO_CAP unsealed");
    assert!(s.input_buf().is_empty());
}

#[test]
fn a_retaining_stream_keeps_sealed_data_until_acknowledged() {
    let now = Instant::now();
    let keep = 2 * IO_CAP;
    let mut s = SendStream::new(StreamId::MAIN, true, keep);
    let mut sink = Sink::new(usize::MAX);
    // Fill the replay: sealed data is kept, up to its limit.
    while s.can_take_input() {
        let n = s.input_buf().len();
        s.input_received(n);
        s.seal_data(&mut sink, now).unwrap();
    }
    assert_eq!(s.sent(), keep as u64);
    assert_eq!(s.unconfirmed(), keep as u64);
    // Acknowledgements must lie within what we sent.
    assert!(s.check_offset(keep as u64 + 1, "an ACK").is_err());
    let at = s.check_offset(1000, "an ACK").unwrap();
    s.on_ack(at);
    assert_eq!(s.unconfirmed(), keep as u64 - 1000);
    assert!(s.check_offset(999, "an ACK").is_err(), "not backwards");
    assert!(s.can_take_input(), "an ACK frees room");
    // A resume from 1000 seals everything after it again, from memory.
    assert_eq!(s.on_resume(1000, false), keep as u64 - 1000);
    assert_eq!(s.rewind_needed(), None);
    let mut again = Sink::new(usize::MAX);
    assert!(s.seal_data(&mut again, now).unwrap());
    assert_eq!(again.data(), sink.data()[1000..]);
}

#[test]
fn a_rewindable_stream_asks_for_its_input_again_on_resume() {
    let now = Instant::now();
    // Resume agreed, but the input is a file: nothing sealed is kept.
    let mut s = SendStream::new(StreamId::MAIN, false, 0);
    let mut sink = Sink::new(usize::MAX);
    write(&mut s, &input(5000));
    s.seal_data(&mut sink, now).unwrap();
    write(&mut s, &input(300));
    assert!(s.input_ended());
    assert_eq!(s.unsealed(), 300);
    // The peer had 4000: the input must be read again from there,
    // and its end read before the rewind does not count.
    assert_eq!(s.on_resume(4000, false), 1000);
    assert_eq!(s.rewind_needed(), Some(4000));
    assert_eq!(s.state(), Sending::Open, "it ends again when read");
    assert_eq!(s.unsealed(), 0);
    assert!(!s.can_take_input());
    assert!(!s.input_ended());
    s.input_rewound();
    write(&mut s, &input(10));
    s.seal_data(&mut sink, now).unwrap();
    assert_eq!(s.sent(), 5000, "nothing counted twice");
    assert_eq!(s.taken(), 4010);
}

#[test]
fn a_resume_without_our_eof_seals_it_again() {
    let now = Instant::now();
    let mut s = SendStream::new(StreamId::MAIN, true, IO_CAP);
    let mut sink = Sink::new(usize::MAX);
    write(&mut s, b"hello");
    assert!(s.input_ended());
    s.seal_data(&mut sink, now).unwrap();
    s.seal_eof(&mut sink, now).unwrap();
    assert_eq!(s.state(), Sending::EofSent);
    assert_eq!(s.on_resume(5, false), 0);
    assert_eq!(s.state(), Sending::Ending);
    assert!(s.seal_eof(&mut Sink::new(0), now).is_ok_and(|fit| !fit));
    s.seal_eof(&mut sink, now).unwrap();
    assert_eq!(s.state(), Sending::EofSent);
    // The peer had it: it stays sent.
    assert_eq!(s.on_resume(5, true), 0);
    assert_eq!(s.state(), Sending::EofSent);
}

#[test]
fn received_counts_are_checked() {
    let mut s = SendStream::new(StreamId::MAIN, false, 0);
    assert!(s.on_received(&[0; 7], false).is_err());
    s.on_received(&7u64.to_be_bytes(), false).unwrap();
    assert_eq!(s.peer_received(), Some(7));
    assert!(s.on_received(&9u64.to_be_bytes(), false).is_err());
    s.on_received(&3u64.to_be_bytes(), true).unwrap();
    assert_eq!(s.peer_received(), Some(7), "never backwards");
}

#[test]
fn without_resume_sealed_data_is_dropped() {
    let now = Instant::now();
    let mut s = SendStream::new(StreamId::MAIN, true, 4 * IO_CAP);
    write(&mut s, &input(1000));
    s.seal_data(&mut Sink::new(usize::MAX), now).unwrap();
    write(&mut s, &input(10));
    s.no_resume();
    assert_eq!(s.unsealed(), 10);
    assert_eq!(s.taken(), 1010);
    // The limit is back to IO_CAP of unsealed input.
    assert_eq!(s.input_buf().len(), IO_CAP - 10);
}

#[test]
fn a_recv_stream_delivers_once_what_a_resume_brings_again() {
    let mut r = RecvStream::new(StreamId::MAIN);
    assert_eq!(r.id(), StreamId::MAIN);
    let mut pos = 0;
    r.on_data(&mut pos, b"hello ").unwrap();
    assert_eq!((pos, r.accepted()), (6, 6));
    // A new connection goes on from an older offset: the overlap is
    // dropped, the rest delivered.
    let mut pos = 3;
    r.on_data(&mut pos, b"lo world").unwrap();
    assert_eq!((pos, r.accepted()), (11, 11));
    assert_eq!(r.output(), b"hello world");
    // Data from beyond what we have is a violation.
    let mut pos = 12;
    assert!(r.on_data(&mut pos, b"x").is_err());
    r.output_written(6);
    assert_eq!(r.output(), b"world");
    assert_eq!(r.delivered(), 6);
    assert!(!r.output_is_empty());
}

#[test]
fn a_recv_stream_holds_what_its_credit_allows_and_refuses_more() {
    let mut r = RecvStream::new(StreamId::MAIN);
    let mut pos = 0;
    let record = vec![7u8; MAX_PAYLOAD];
    // A whole window fits, and the wire is still read all along.
    while r.accepted() + MAX_PAYLOAD as u64 <= MAIN_WINDOW {
        assert!(r.reading());
        r.on_data(&mut pos, &record).unwrap();
    }
    assert!(r.reading());
    let past = vec![7u8; (MAIN_WINDOW - r.accepted()) as usize + 1];
    let mut at = pos;
    assert!(r.on_data(&mut at, &past).is_err(), "beyond the credit");
    // Reading a step's worth raises the credit, and a CREDIT is due.
    r.output_written(MAIN_WINDOW as usize / 4);
    let mut sink = Sink::new(8);
    r.seal_credit(&mut sink, Instant::now()).unwrap();
    assert_eq!(sink.records.len(), 1);
    assert_eq!(sink.records[0].0, Kind::Credit);
    r.on_data(&mut pos, &past).unwrap();
    // A discarded output drops what waits and what comes, and still
    // counts it as accepted.
    r.discard();
    assert!(r.output_is_empty());
    r.on_data(&mut pos, b"more").unwrap();
    assert!(r.output_is_empty());
    assert_eq!(r.accepted(), pos);
}

#[test]
fn eof_done_and_acks_of_a_recv_stream() {
    let now = Instant::now();
    let mut r = RecvStream::new(StreamId::MAIN);
    let mut sink = Sink::new(usize::MAX);
    let mut pos = 0;
    r.on_data(&mut pos, &input(100)).unwrap();
    // An ACK goes out once enough came in since the last one.
    r.seal_ack(&mut sink, 101, now).unwrap();
    assert!(sink.records.is_empty());
    r.seal_ack(&mut sink, 100, now).unwrap();
    r.seal_ack(&mut sink, 1, now).unwrap();
    assert_eq!(
        sink.records,
        vec![(Kind::Ack, 100u64.to_be_bytes().to_vec())]
    );
    // No DONE before the EOF; then one, and only once.
    r.seal_done(&mut sink, now).unwrap();
    assert_eq!(sink.records.len(), 1);
    assert!(r.on_eof(false).unwrap());
    assert_eq!(r.state(), Receiving::Ended);
    assert!(r.on_data(&mut pos, b"x").is_err(), "data after EOF");
    r.seal_done(&mut Sink::new(0), now).unwrap();
    assert_eq!(r.state(), Receiving::Ended, "a DONE that did not fit waits");
    r.seal_done(&mut sink, now).unwrap();
    r.seal_done(&mut sink, now).unwrap();
    assert_eq!(sink.records.last().map(|r| r.0), Some(Kind::Done));
    assert_eq!(sink.records.len(), 2);
    assert_eq!(r.state(), Receiving::DoneSent);
    // A second EOF is a violation, unless a resume repeats it.
    assert!(r.on_eof(false).is_err());
    assert!(!r.on_eof(true).unwrap());
    // A resume whose peer lacks our DONE has it sealed again.
    r.on_resume(true);
    assert_eq!(r.state(), Receiving::DoneSent);
    r.on_resume(false);
    assert_eq!(r.state(), Receiving::Ended);
}

#[test]
fn no_credit_is_granted_once_the_peers_stream_ended() {
    // A CREDIT after our DONE would trail it on the wire and hold up the
    // clean end: the last bytes written after the peer's EOF grant none.
    let mut r = RecvStream::new(StreamId::MAIN);
    let mut pos = 0;
    let record = vec![1u8; MAX_PAYLOAD];
    while r.accepted() + (MAX_PAYLOAD as u64) <= MAIN_WINDOW {
        r.on_data(&mut pos, &record).unwrap();
    }
    assert!(r.on_eof(false).unwrap());
    let n = r.output().len();
    r.output_written(n);
    let mut sink = Sink::new(8);
    r.seal_credit(&mut sink, Instant::now()).unwrap();
    assert!(sink.records.is_empty(), "{:?}", sink.records.len());
}
