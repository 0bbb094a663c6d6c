//! A scripted dialer for tests and fuzzing: it runs an honest handshake
//! against a listening [`Session`] through the public protocol types, then
//! seals whatever records the test wants, valid or not. With it, tests and
//! fuzzers reach the established room, past key confirmation.
//!
//! Built only for the crate's tests and with the `testkit` feature (the
//! fuzz targets); it is never part of the program.

use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use crate::buf::ByteBuf;
use crate::error::Signal;
use crate::protocol::handshake::{Handshake, Method, Pake};
use crate::protocol::record::{Kind, Opener, Sealer, MAX_RECORD};
use crate::protocol::{DeterministicRng, Role};
use crate::session::{LinkId, RoomSettings, Session};

/// The idle and handshake timeouts of [`room_settings`] (the program's
/// defaults).
pub const IDLE: Duration = Duration::from_secs(30);
pub const HANDSHAKE: Duration = Duration::from_secs(10);

/// A room's settings as tests and fuzzers start from: the program's
/// default timeouts and budget, output for a program, no resume, no files
/// required. Each test changes what it is about.
pub fn room_settings(role: Role, name: &str) -> RoomSettings {
    RoomSettings {
        role,
        name: name.into(),
        idle_timeout: IDLE,
        handshake_timeout: HANDSHAKE,
        tries: 3,
        failed_before: 0,
        retry_busy: None,
        output_is_data: true,
        resume: None,
        resume_buffer: crate::session::room::REPLAY_CAP,
        input_rewindable: false,
        files_strict: false,
    }
}

pub struct ScriptedDialer {
    pub link: LinkId,
    hs: Handshake,
    rng: DeterministicRng,
    tx: ByteBuf,
    rx: ByteBuf,
    pub sealer: Option<Sealer>,
    pub opener: Option<Opener>,
    /// Everything the listener sent us.
    pub received: Vec<u8>,
}

impl ScriptedDialer {
    /// Starts a dialer with `secret` (None: verify-code mode).
    pub fn new(link: LinkId, secret: Option<&[u8]>, seed: u64) -> ScriptedDialer {
        let method = match secret {
            Some(s) => Method::Secret(Pake::secret(Zeroizing::new(s.to_vec()))),
            None => Method::VerifyCode,
        };
        let mut rng = DeterministicRng::new(seed);
        let mut tx = ByteBuf::with_capacity(4 * MAX_RECORD);
        let hs = Handshake::start(Role::Dialer, method, &mut rng, &mut tx);
        ScriptedDialer {
            link,
            hs,
            rng,
            tx,
            rx: ByteBuf::with_capacity(4 * MAX_RECORD),
            sealer: None,
            opener: None,
            received: Vec::new(),
        }
    }

    /// Takes the bytes the script wants to send.
    pub fn take_tx(&mut self) -> Vec<u8> {
        let out = self.tx.data().to_vec();
        self.tx.consume(out.len());
        out
    }

    /// Hands the session's bytes for our link to the script.
    pub fn pull_from(&mut self, s: &mut Session, now: Instant) {
        let bytes = s.to_send(self.link).to_vec();
        s.sent(self.link, bytes.len(), now);
        self.received.extend_from_slice(&bytes);
        self.rx.extend(&bytes);
        if self.sealer.is_none() {
            if let Ok(Some(est)) = self
                .hs
                .advance(&mut self.rx, &mut self.tx, &mut self.rng, true)
            {
                self.sealer = Some(Sealer::new(&est.keys.dialer_to_listener));
                self.opener = Some(Opener::new(&est.keys.listener_to_dialer));
            }
        }
    }

    /// Delivers bytes to the session's receive buffer for our link.
    pub fn push_to(&self, s: &mut Session, bytes: &[u8], now: Instant) {
        let mut fed = 0;
        while fed < bytes.len() {
            let buf = s.receive_buf(self.link);
            if buf.is_empty() {
                return;
            }
            let n = buf.len().min(bytes.len() - fed);
            buf[..n].copy_from_slice(&bytes[fed..fed + n]);
            s.received(self.link, n, now);
            fed += n;
        }
    }

    /// Runs the key exchange against `s` (which has accepted our link)
    /// until we hold the keys. Returns false if it never got there.
    pub fn exchange_keys(&mut self, s: &mut Session, now: Instant) -> bool {
        for _ in 0..8 {
            let out = self.take_tx();
            self.push_to(s, &out, now);
            self.pull_from(s, now);
            if self.sealer.is_some() {
                let out = self.take_tx();
                self.push_to(s, &out, now);
                return true;
            }
        }
        false
    }

    /// One sealed record, or nothing before the keys are in.
    pub fn record(&mut self, kind: Kind, payload: &[u8]) -> Vec<u8> {
        let mut out = ByteBuf::with_capacity(MAX_RECORD);
        match self.sealer.as_mut() {
            Some(sealer) => {
                let _ = sealer.seal(kind, payload, &mut out);
                out.data().to_vec()
            }
            None => Vec::new(),
        }
    }
}

/// One step of the script the `room` fuzz target and the proptest drive
/// against an established room.
#[derive(Debug, Clone)]
pub enum Step {
    /// A well-sealed record of kind `k % 13` (see `kind_of`) with this payload.
    Record(u8, Vec<u8>),
    /// Raw bytes on the wire (forged, cut, garbage).
    Raw(Vec<u8>),
    /// The user types.
    Input(Vec<u8>),
    InputEnded,
    Leave,
    Interrupt,
    /// Time passes, in units of 50 ms.
    Wait(u16),
    /// The socket ends.
    Fin,
    Reset,
    /// Our output stops (true) or resumes being read.
    Stall(bool),
}

impl Step {
    /// Decodes fuzzer bytes into steps.
    pub fn parse(mut data: &[u8]) -> Vec<Step> {
        let mut steps = Vec::new();
        while let Some((&op, rest)) = data.split_first() {
            let len = rest
                .first()
                .map_or(0, |&b| usize::from(b) % 80)
                .min(rest.len().saturating_sub(1));
            let body = rest.get(1..1 + len).unwrap_or(&[]).to_vec();
            data = rest.get(1 + len..).unwrap_or(&[]);
            steps.push(match op % 11 {
                0 | 1 => Step::Record(op / 11, body),
                2 => Step::Raw(body),
                3 => Step::Input(body),
                4 => Step::InputEnded,
                5 => Step::Leave,
                6 => Step::Interrupt,
                7 => Step::Wait(u16::from(op)),
                8 => Step::Fin,
                9 => Step::Reset,
                _ => Step::Stall(op & 0x80 != 0),
            });
        }
        steps
    }
}

fn kind_of(b: u8) -> Kind {
    match b % 13 {
        0 => Kind::Hello,
        1 => Kind::Data,
        2 => Kind::Eof,
        3 => Kind::Bye,
        4 => Kind::Ping,
        5 => Kind::WriteFailed,
        6 => Kind::Offer,
        7 => Kind::Accept,
        8 => Kind::Credit,
        9 => Kind::Chunk,
        10 => Kind::Fin,
        11 => Kind::Close,
        _ => Kind::Done,
    }
}

/// Runs `steps` against a listener that a scripted dialer joined honestly.
/// Panics if the session panics, shows a byte that never arrived in an
/// authentic DATA record, or wants a timer after it ended.
pub fn run_room_script(steps: &[Step]) {
    use crate::protocol::record::MAX_PAYLOAD;
    use crate::session::Security;
    use crate::session::{LeaveReason, SessionConfig, Status};

    let link = LinkId(16);
    let mut now = Instant::now();
    let mut s = Session::new(
        SessionConfig {
            security: Security::VerifyCode,
            room: room_settings(Role::Listener, "l"),
        },
        Box::new(DeterministicRng::new(1)),
    );
    s.accept(link, 1, now);
    let mut d = ScriptedDialer::new(link, None, 2);
    assert!(d.exchange_keys(&mut s, now), "an honest handshake");
    let hello = d.record(Kind::Hello, b"d");
    d.push_to(&mut s, &hello, now);
    assert!(s.is_established(), "the room is up");
    let (mut sealed, mut shown, mut reading) = (Vec::new(), Vec::new(), true);
    for step in steps {
        match step {
            Step::Record(k, payload) => {
                let payload = &payload[..payload.len().min(MAX_PAYLOAD)];
                if kind_of(*k) == Kind::Data {
                    sealed.extend_from_slice(payload);
                }
                let rec = d.record(kind_of(*k), payload);
                d.push_to(&mut s, &rec, now);
            }
            Step::Raw(bytes) => d.push_to(&mut s, bytes, now),
            Step::Input(bytes) => {
                let buf = s.input_buf();
                let n = buf.len().min(bytes.len());
                buf[..n].copy_from_slice(&bytes[..n]);
                s.input_received(n, now);
            }
            Step::InputEnded => s.input_ended(now),
            Step::Leave => s.leave(LeaveReason::User, now),
            Step::Interrupt => s.interrupted(Signal::Int, now),
            Step::Wait(units) => {
                now += Duration::from_millis(u64::from(*units) * 50);
                s.handle_timeout(now);
            }
            Step::Fin => s.transport_closed(link, now),
            Step::Reset => {
                let e = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
                s.transport_failed(link, &e, now);
            }
            Step::Stall(stalled) => reading = !stalled,
        }
        d.pull_from(&mut s, now);
        while reading && !s.output().is_empty() {
            let n = s.output().len();
            shown.extend_from_slice(s.output());
            s.output_written(n, now);
        }
        // Every offer is taken, and what arrives of it is written: the
        // file records reach every state.
        while let Some(ev) = s.poll_event() {
            match ev {
                crate::session::Event::FileOffered { id, .. } => {
                    let _ = s.accept_file(id, now);
                }
                crate::session::Event::FileComplete { id } => {
                    let _ = s.file_saved(id, now);
                }
                _ => {}
            }
        }
        while let Some((id, data)) = s.file_to_write(&[]) {
            let n = data.len();
            s.file_written(id, n, now);
        }
        while s.poll_action().is_some() {}
        assert!(
            sealed.starts_with(&shown),
            "output that was never sealed as DATA"
        );
        if let Status::Ended(_) = s.status() {
            assert!(s.poll_timeout().is_none(), "an ended room wants no timer");
        }
    }
}
