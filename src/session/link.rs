//! One connection of an encrypted room: the handshake, key confirmation,
//! the record keys, the wire buffers and the heartbeat clock. A [`Link`]
//! knows nothing about the room's streams; the [`Room`](super::room::Room)
//! decides what its records mean.

use std::time::{Duration, Instant};

use super::LinkId;
use zeroize::Zeroizing;

use crate::buf::ByteBuf;
use crate::error::Error;
use crate::protocol::handshake::{Established, Handshake, Method};
use crate::protocol::record::{Kind, Opened, Opener, RecordError, Sealer, MAX_RECORD};
use crate::protocol::{Random, Role};

/// Capacity of the wire buffers: four full records.
pub const WIRE_CAP: usize = 4 * MAX_RECORD;
/// A connection that has not sent its whole first flight (its preface and
/// first key message) by then is dropped: a real dialer sends it in its
/// first write.
pub const FIRST_FLIGHT_DEADLINE: Duration = Duration::from_secs(2);

/// The record keys of one connection.
pub struct Channel {
    pub sealer: Sealer,
    pub opener: Opener,
}

/// How far the connection got.
pub enum Phase {
    Handshaking(Handshake),
    /// Keys are in; the peer's HELLO has not been verified yet.
    Keyed(Box<Channel>),
    /// The peer's HELLO verified: this is the room's connection.
    Confirmed(Box<Channel>),
    /// Only while changing phase.
    Changing,
}

pub struct Link {
    pub id: LinkId,
    /// The peer's address as an opaque number (for the per-source cap).
    pub source: u128,
    pub phase: Phase,
    /// Wire bytes to send.
    pub tx: ByteBuf,
    /// Wire bytes received and not yet opened.
    pub rx: ByteBuf,
    /// The socket read returned end-of-file.
    pub transport_eof: bool,
    /// Any byte at all arrived.
    pub heard: bool,
    uses_secret: bool,
    /// When the connection came up (for the preface deadline and eviction).
    pub started: Instant,
    handshake_deadline: Instant,
    pub last_recv: Instant,
    pub last_send: Instant,
    /// The verify code, held until the peer's HELLO confirms the keys.
    pub verify_code: Option<String>,
    /// The room's resume key from this connection's handshake (the first
    /// connection's is the room's).
    pub resume_psk: Option<Zeroizing<[u8; 32]>>,
    /// A later connection of the room: its first record is RESUME, not
    /// HELLO, and nothing of the streams goes out before the peer's.
    pub resuming: bool,
    /// The stream offset of the next DATA byte the peer sends on this
    /// connection (what we reported in RESUME, or 0 on the first).
    pub recv_pos: u64,
    /// A relay paired us with this connection's peer (listener): it has
    /// the whole handshake timeout for its first flight, and silence until
    /// then is not a stranger's but a relay's fault.
    pub paired: bool,
    /// Bytes of `tx` written to the socket so far.
    pub flushed: u64,
    /// Where our DONE ends in the bytes this connection sends (`flushed`
    /// counts up to it once it left), if it was sealed here.
    pub done_end: Option<u64>,
    /// File bytes the transport takes now without filling TCP's window
    /// ([`Session::set_send_room`](super::Session::set_send_room)); None:
    /// no such limit.
    pub send_room: Option<usize>,
    /// File bytes waited for `send_room`: the driver looks again later.
    pub room_held: bool,
}

impl Link {
    pub fn start(
        id: LinkId,
        source: u128,
        role: Role,
        method: Method,
        handshake_timeout: Duration,
        rng: &mut dyn Random,
        now: Instant,
    ) -> Link {
        let mut tx = ByteBuf::with_capacity(WIRE_CAP);
        let uses_secret = matches!(method, Method::Secret(_));
        let resuming = matches!(method, Method::Resume(_));
        let hs = Handshake::start(role, method, rng, &mut tx);
        Link {
            id,
            source,
            phase: Phase::Handshaking(hs),
            tx,
            rx: ByteBuf::with_capacity(WIRE_CAP),
            transport_eof: false,
            heard: false,
            uses_secret,
            started: now,
            handshake_deadline: now + handshake_timeout,
            last_recv: now,
            last_send: now,
            verify_code: None,
            resume_psk: None,
            resuming,
            recv_pos: 0,
            paired: false,
            flushed: 0,
            done_end: None,
            send_room: None,
            room_held: false,
        }
    }

    /// Runs the key exchange on what arrived; Ok(true) once the keys are
    /// in, Ok(false) while more is needed, and the handshake's error once
    /// the connection has ended before it could finish. A listener reveals
    /// its key material only while `may_reveal` holds.
    pub fn advance(
        &mut self,
        role: Role,
        rng: &mut dyn Random,
        may_reveal: bool,
    ) -> Result<bool, Error> {
        let Phase::Handshaking(hs) = &mut self.phase else {
            return Ok(false);
        };
        let Some(Established { keys, verify_code }) =
            hs.advance(&mut self.rx, &mut self.tx, rng, may_reveal)?
        else {
            return if self.transport_eof {
                Err(hs.eof_error())
            } else {
                Ok(false)
            };
        };
        let (ours, theirs) = match role {
            Role::Dialer => (keys.dialer_to_listener, keys.listener_to_dialer),
            Role::Listener => (keys.listener_to_dialer, keys.dialer_to_listener),
        };
        self.verify_code = verify_code;
        self.resume_psk = Some(keys.resume.clone());
        #[cfg(test)]
        keys_used::record(&ours);
        self.phase = Phase::Keyed(Box::new(Channel {
            sealer: Sealer::new(&ours),
            opener: Opener::new(&theirs),
        }));
        Ok(true)
    }

    /// Returns true if and only if the handshake answered with a line the
    /// peer must read before we close (our room is taken).
    pub fn told_why(&self) -> bool {
        match &self.phase {
            Phase::Handshaking(hs) => hs.told_why(),
            _ => false,
        }
    }

    /// Returns true if and only if the peer's preface has arrived, or the
    /// handshake is past it.
    pub fn preface_seen(&self) -> bool {
        match &self.phase {
            Phase::Handshaking(hs) => hs.preface_seen(),
            _ => true,
        }
    }

    /// Returns true if and only if the peer's whole first flight has
    /// arrived (listener), or the handshake is past it.
    pub fn first_flight_seen(&self) -> bool {
        match &self.phase {
            Phase::Handshaking(hs) => hs.first_flight_in(self.rx.len()),
            _ => true,
        }
    }

    /// Returns true if and only if the listener answered that it is busy.
    pub fn peer_busy(&self) -> bool {
        match &self.phase {
            Phase::Handshaking(hs) => hs.peer_busy(),
            _ => false,
        }
    }

    /// Returns true if and only if we sent our key material on this
    /// connection: it counts as an attempt unless it ends confirmed.
    pub fn revealed(&self) -> bool {
        match &self.phase {
            Phase::Handshaking(hs) => hs.revealed(),
            // A resume's key cannot be guessed online: never an attempt.
            _ => !self.resuming,
        }
    }

    pub fn is_keyed(&self) -> bool {
        matches!(self.phase, Phase::Keyed(_) | Phase::Confirmed(_))
    }

    pub fn is_confirmed(&self) -> bool {
        matches!(self.phase, Phase::Confirmed(_))
    }

    /// The peer's HELLO verified.
    pub fn confirm(&mut self) {
        self.phase = match std::mem::replace(&mut self.phase, Phase::Changing) {
            Phase::Keyed(ch) | Phase::Confirmed(ch) => Phase::Confirmed(ch),
            other => other,
        };
    }

    /// Seals one record into `tx`: Ok(false) if it does not fit now.
    pub fn seal(&mut self, kind: Kind, payload: &[u8], now: Instant) -> Result<bool, Error> {
        let ch = match &mut self.phase {
            Phase::Keyed(ch) | Phase::Confirmed(ch) => ch,
            Phase::Handshaking(_) | Phase::Changing => return Ok(false),
        };
        let fitted = ch
            .sealer
            .seal(kind, payload, &mut self.tx)
            .map_err(|e| Error::Integrity(format!("cannot send: {e}")))?;
        if fitted {
            self.last_send = now;
        }
        Ok(fitted)
    }

    /// Opens the next record in `rx` in place: Ok(None) means more bytes are
    /// needed. The payload lies at `opened.payload` in `rx.data()` until the
    /// caller consumes `opened.consumed` bytes.
    pub fn open_next(&mut self) -> Result<Option<Opened>, Error> {
        let (ch, confirmed) = match &mut self.phase {
            Phase::Keyed(ch) => (ch, false),
            Phase::Confirmed(ch) => (ch, true),
            Phase::Handshaking(_) | Phase::Changing => return Ok(None),
        };
        match ch.opener.open(self.rx.data_mut()) {
            Ok(Some(r)) => Ok(Some(r)),
            Ok(None) if self.transport_eof && !confirmed => Err(self.eof_error()),
            // A crashed peer or a dropped link cuts records as readily as
            // an attacker does: a lost connection, not tampering.
            Ok(None) if self.transport_eof && !self.rx.is_empty() => Err(Error::Lost(
                "connection lost: the connection dropped in the middle of a record".into(),
            )),
            Ok(None) => Ok(None),
            Err(RecordError::Forged) if !confirmed => Err(Handshake::auth_error(self.uses_secret)),
            Err(e) => Err(Error::Integrity(format!(
                "integrity check failed: {e}; connection aborted"
            ))),
        }
    }

    /// The error for a connection that ended before key confirmation.
    pub fn eof_error(&self) -> Error {
        match &self.phase {
            Phase::Handshaking(hs) => hs.eof_error(),
            _ if self.uses_secret => Error::Handshake(
                "the peer closed the connection after the key exchange (most likely the \
                 codes or secrets differ, or someone tampered with the handshake)"
                    .into(),
            ),
            _ => Error::Handshake(
                "the peer closed the connection after the key exchange (someone may have \
                 tampered with the handshake)"
                    .into(),
            ),
        }
    }

    /// The deadline before key confirmation: the first-flight deadline
    /// until the dialer's first flight is in (listener), then the
    /// handshake deadline.
    pub fn handshake_deadline(&self, role: Role) -> Instant {
        if role == Role::Listener && !self.paired && !self.first_flight_seen() {
            (self.started + FIRST_FLIGHT_DEADLINE).min(self.handshake_deadline)
        } else {
            self.handshake_deadline
        }
    }

    /// The error for a handshake past its deadline.
    pub fn timeout_error(&self, role: Role, now: Instant) -> Error {
        if role == Role::Listener
            && !self.paired
            && !self.first_flight_seen()
            && now < self.handshake_deadline
        {
            return Error::Handshake(format!(
                "the peer did not send its first flight within {} s",
                FIRST_FLIGHT_DEADLINE.as_secs()
            ));
        }
        let secs = (self.handshake_deadline - self.started).as_secs_f64();
        Error::Handshake(format!(
            "the handshake did not finish in time ({secs} s); is the peer a p2pchat in the same mode?"
        ))
    }
}

/// Every sealing key a test's sessions made, so a test can check that no
/// key (and so no key and nonce pair: each sealer counts from 0) is used
/// on two connections.
// The initializer is const already: clippy 1.96 still asks for it on
// Windows targets, whose thread_local! expands differently.
#[cfg(test)]
#[allow(clippy::missing_const_for_thread_local)]
pub mod keys_used {
    use std::cell::RefCell;

    thread_local! {
        static KEYS: RefCell<Vec<[u8; 32]>> = const { RefCell::new(Vec::new()) };
    }

    pub fn record(key: &[u8; 32]) {
        KEYS.with(|k| k.borrow_mut().push(*key));
    }

    /// The keys recorded on this thread so far, and forgets them.
    pub fn take() -> Vec<[u8; 32]> {
        KEYS.with(|k| std::mem::take(&mut *k.borrow_mut()))
    }
}
