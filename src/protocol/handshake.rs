//! The handshake as a sans-IO state machine: preface lines, then either the
//! verify-code exchange (ephemeral X25519 with commit-then-reveal) or SPAKE2
//! with the shared secret, then the key schedule. Key confirmation (HELLO)
//! is the record layer's first record and lives in the session.
//!
//! The dialer speaks first and each side sends its flight in one write. The
//! listener sends nothing until the dialer's first flight has arrived, so a
//! port scanner learns nothing and costs no attempt:
//!
//! ```text
//! verify code (no secret)                    shared secret (SPAKE2)
//! D -> L  "p2pchat/3 sas\n" || C             D -> L  "p2pchat/3 pake\n" || msg A
//! L -> D  "p2pchat/3 sas\n" || E_l           L -> D  "p2pchat/3 pake\n" || msg B
//! D -> L  E_d || HELLO_d || DATA ...         D -> L  HELLO_d || DATA ...
//! L -> D  HELLO_l (after checking HELLO_d)   L -> D  HELLO_l (after checking HELLO_d)
//! ```
//!
//! `C = H(lp(label) || lp(E_d))`. The listener reveals `E_l` only after `C`,
//! and checks `E_d` against `C`: that order is what makes the code unforgeable.

use spake2::{Ed25519Group, Identity, Password, Spake2};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use super::keys::{self, Keys};
use super::{RandCore, Random, Role};
use crate::buf::ByteBuf;
use crate::error::Error;

const PREFIX: &[u8] = b"p2pchat/";
const PREFACE_SAS: &[u8] = b"p2pchat/3 sas\n";
const PREFACE_PAKE: &[u8] = b"p2pchat/3 pake\n";
const PREFACE_RESUME: &[u8] = b"p2pchat/3 resume\n";
/// A listener's answer, instead of its preface, to a new room's preface
/// while its own room is up (it listens for that room's resume only).
const ROOM_TAKEN: &[u8] = b"p2pchat/3 taken\n";
/// A one-time-code listener's answer, instead of its preface, to a dialer
/// that came without the code.
const WANTS_CODE: &[u8] = b"p2pchat/3 code\n";
/// Why a dialer stops at [`ROOM_TAKEN`]; the driver names the address.
pub const TAKEN_WHY: &str = "the listener's room is taken: someone else is in that room";
/// Why a dialer without a code stops at [`WANTS_CODE`]; the driver adds
/// the command that works.
pub const WANTS_CODE_WHY: &str = "the listener expects a one-time code, and we have none";
/// A listener whose handshake slots are all taken by connections that sent
/// their whole first flight says this, instead of its preface, and closes:
/// the dialer may try again later (`--retry` does).
pub const BUSY: &[u8] = b"p2pchat/3 busy\n";
/// A preface line longer than this is not one.
const MAX_PREFACE: usize = 32;
const KEY_BYTES: usize = 32;
const PAKE_MSG: usize = 33;

/// How the two sides agree on keys.
pub enum Method {
    /// No secret: ephemeral keys and a verify code for the users to compare.
    VerifyCode,
    /// SPAKE2 over a shared secret or a one-time code.
    Secret(Pake),
    /// A later connection of an established room: fresh X25519 keys both
    /// ways, mixed with the room's resume key. Both sides send their key
    /// at once; the RESUME records that follow prove the key was held.
    Resume(Zeroizing<[u8; KEY_BYTES]>),
}

/// What SPAKE2 runs on: the password, and for a one-time code the room,
/// which goes into both identities so that the two sides of different
/// rooms never agree on a key, whatever a relay pairs.
#[derive(Clone)]
pub struct Pake {
    pub password: Zeroizing<Vec<u8>>,
    pub room: Option<String>,
}

impl Pake {
    /// A shared secret: no room.
    pub fn secret(password: Zeroizing<Vec<u8>>) -> Pake {
        Pake {
            password,
            room: None,
        }
    }
}

/// What a finished handshake yields.
pub struct Established {
    pub keys: Keys,
    /// The code both sides show, in verify-code mode.
    pub verify_code: Option<String>,
}

enum State {
    /// Listener: nothing sent yet; the state after the preface depends on
    /// the method.
    Preface,
    /// Listener, verify code: preface in, waiting for the commitment.
    AwaitCommit,
    /// Listener, shared secret: preface in; message B waits until the
    /// caller allows another key exchange (see `may_reveal`).
    AwaitReveal,
    /// Verify code: our key pair is made; waiting for the peer's key (the
    /// dialer has sent its commitment, the listener its key).
    AwaitKey {
        secret: Box<StaticSecret>,
        public: [u8; KEY_BYTES],
        commit: [u8; 32],
    },
    /// Resume: our key is sent; waiting for the peer's.
    AwaitResumeKey {
        secret: Box<StaticSecret>,
        public: [u8; KEY_BYTES],
        psk: Zeroizing<[u8; KEY_BYTES]>,
    },
    /// SPAKE2: our message is sent; waiting for the peer's.
    AwaitPake {
        spake: Box<Spake2<Ed25519Group>>,
        ours: Vec<u8>,
    },
    Done,
}

pub struct Handshake {
    role: Role,
    method: Method,
    state: State,
    /// The peer's preface line arrived and was ours.
    preface_seen: bool,
    /// We sent our key material (E_l or SPAKE2 msg B as listener; C or
    /// msg A as dialer): from here on, an unfinished exchange is an attempt.
    revealed: bool,
    /// Listener: we told the peer something it must read before we close
    /// ([`ROOM_TAKEN`]).
    told_why: bool,
    /// Dialer: the listener answered [`BUSY`].
    busy: bool,
}

impl Handshake {
    /// Starts a handshake. The dialer writes its first flight into `tx`; the
    /// listener waits for it.
    pub fn start(role: Role, method: Method, rng: &mut dyn Random, tx: &mut ByteBuf) -> Handshake {
        let mut hs = Handshake {
            role,
            method,
            state: State::Preface,
            preface_seen: false,
            revealed: false,
            told_why: false,
            busy: false,
        };
        if role == Role::Dialer {
            tx.extend(hs.preface());
            hs.state = hs.key_flight(rng, tx);
        }
        hs
    }

    fn preface(&self) -> &'static [u8] {
        match self.method {
            Method::VerifyCode => PREFACE_SAS,
            Method::Secret(_) => PREFACE_PAKE,
            Method::Resume(_) => PREFACE_RESUME,
        }
    }

    /// Returns true if and only if this handshake runs on a shared secret.
    pub fn uses_secret(&self) -> bool {
        matches!(self.method, Method::Secret(_))
    }

    /// Returns true if and only if we answered the peer with a line it
    /// must read before the connection closes (the room is taken).
    pub fn told_why(&self) -> bool {
        self.told_why
    }

    /// Returns true if and only if the peer's preface line has arrived.
    pub fn preface_seen(&self) -> bool {
        self.preface_seen
    }

    /// Returns true if and only if the dialer's whole first flight (its
    /// preface line and its first key message) has arrived, `buffered`
    /// being the bytes received and not yet taken. A real dialer sends it
    /// in one write; a listener gives a connection short of it little time
    /// and lets it make way for others.
    pub fn first_flight_in(&self, buffered: usize) -> bool {
        match &self.state {
            State::Preface => false,
            State::AwaitCommit | State::AwaitResumeKey { .. } => buffered >= KEY_BYTES,
            State::AwaitReveal | State::AwaitPake { .. } => buffered >= PAKE_MSG,
            State::AwaitKey { .. } | State::Done => true,
        }
    }

    /// Returns true if and only if the listener answered that it is busy.
    pub fn peer_busy(&self) -> bool {
        self.busy
    }

    /// Returns true if and only if we sent key material to the peer: a
    /// listener counts every such connection that does not end in key
    /// confirmation as a failed attempt. A resume never counts: its key
    /// cannot be guessed online.
    pub fn revealed(&self) -> bool {
        self.revealed && !matches!(self.method, Method::Resume(_))
    }

    /// Our key-exchange message: the dialer's commitment or SPAKE2 message
    /// A, the listener's SPAKE2 message B. (The listener's X25519 key waits
    /// for the commitment; see [`State::AwaitCommit`].)
    fn key_flight(&mut self, rng: &mut dyn Random, tx: &mut ByteBuf) -> State {
        self.revealed = true;
        match &self.method {
            Method::Resume(psk) => {
                let (secret, public) = ephemeral(rng);
                tx.extend(&public);
                State::AwaitResumeKey {
                    secret,
                    public,
                    psk: psk.clone(),
                }
            }
            Method::VerifyCode => {
                let (secret, public) = ephemeral(rng);
                let commit = commitment(&public);
                tx.extend(&commit);
                State::AwaitKey {
                    secret,
                    public,
                    commit,
                }
            }
            Method::Secret(pake) => {
                let room = pake.room.as_deref();
                let (pw, a, b) = (
                    Password::new(&pake.password[..]),
                    id(b"dialer", room),
                    id(b"listener", room),
                );
                let rng = RandCore(rng);
                let (spake, ours) = match self.role {
                    Role::Dialer => Spake2::<Ed25519Group>::start_a_with_rng(&pw, &a, &b, rng),
                    Role::Listener => Spake2::<Ed25519Group>::start_b_with_rng(&pw, &a, &b, rng),
                };
                tx.extend(&ours);
                State::AwaitPake {
                    spake: Box::new(spake),
                    ours,
                }
            }
        }
    }

    /// Consumes what it can from `rx`, writes replies into `tx`. Returns the
    /// keys once the exchange is complete. A listener reveals its key
    /// material only while `may_reveal` holds, so it can bound how many key
    /// exchanges (guesses) it ever serves; until then it waits.
    pub fn advance(
        &mut self,
        rx: &mut ByteBuf,
        tx: &mut ByteBuf,
        rng: &mut dyn Random,
        may_reveal: bool,
    ) -> Result<Option<Established>, Error> {
        if !self.preface_seen && !self.on_preface(rx, tx, rng)? {
            return Ok(None);
        }
        loop {
            let state = std::mem::replace(&mut self.state, State::Done);
            let (next, progressed) = match state {
                State::Preface | State::Done => (state, false),
                State::AwaitCommit if !may_reveal => (state, false),
                State::AwaitCommit => self.on_commit(rx, tx, rng),
                // Message B waits for message A too: a connection that
                // sent only its preface learns nothing and costs no try.
                State::AwaitReveal if !may_reveal || rx.len() < PAKE_MSG => (state, false),
                State::AwaitReveal => (self.key_flight(rng, tx), true),
                State::AwaitKey {
                    secret,
                    public,
                    commit,
                } => match take::<KEY_BYTES>(rx) {
                    Some(theirs) => {
                        return self.on_key(*secret, public, commit, theirs, tx).map(Some)
                    }
                    None => (
                        State::AwaitKey {
                            secret,
                            public,
                            commit,
                        },
                        false,
                    ),
                },
                State::AwaitResumeKey {
                    secret,
                    public,
                    psk,
                } => match take::<KEY_BYTES>(rx) {
                    Some(theirs) => {
                        return on_resume_key(self.role, &psk, *secret, public, theirs).map(Some)
                    }
                    None => (
                        State::AwaitResumeKey {
                            secret,
                            public,
                            psk,
                        },
                        false,
                    ),
                },
                State::AwaitPake { spake, ours } => match take::<PAKE_MSG>(rx) {
                    Some(theirs) => return on_pake(self.role, *spake, &ours, &theirs).map(Some),
                    None => (State::AwaitPake { spake, ours }, false),
                },
            };
            self.state = next;
            if !progressed {
                return Ok(None);
            }
        }
    }

    /// Takes the peer's preface line; returns true once it is in and ours.
    fn on_preface(
        &mut self,
        rx: &mut ByteBuf,
        tx: &mut ByteBuf,
        rng: &mut dyn Random,
    ) -> Result<bool, Error> {
        let line = match take_preface(rx) {
            Ok(Some(line)) => line,
            Ok(None) => return Ok(false),
            Err(e) => {
                if self.role == Role::Listener && !matches!(self.method, Method::Resume(_)) {
                    // Tell a netcat user or a --plain p2pchat what it
                    // reached; our preface carries nothing secret. (A room
                    // open for its resume only tells strangers nothing.)
                    tx.extend(self.preface());
                }
                return Err(e);
            }
        };
        if self.role == Role::Listener {
            // Our preface answers any p2pchat preface, even a mismatched
            // one, so the dialer can name the mismatch too. Where the
            // preface alone would mislead, a line that says why instead:
            // our room is up (we listen for its resume only), or we expect
            // a one-time code the dialer did not bring.
            let new_room = line == PREFACE_SAS || line == PREFACE_PAKE;
            let answer = match &self.method {
                Method::Resume(_) if new_room => {
                    self.told_why = true;
                    ROOM_TAKEN
                }
                Method::Secret(Pake { room: Some(_), .. }) if line == PREFACE_SAS => WANTS_CODE,
                _ => self.preface(),
            };
            tx.extend(answer);
        }
        self.check_preface(&line)?;
        self.preface_seen = true;
        if self.role == Role::Listener {
            self.state = match self.method {
                Method::VerifyCode => State::AwaitCommit,
                Method::Secret(_) => State::AwaitReveal,
                // Nothing to guess: the key goes out with the preface.
                Method::Resume(_) => self.key_flight(rng, tx),
            };
        }
        Ok(true)
    }

    fn on_commit(
        &mut self,
        rx: &mut ByteBuf,
        tx: &mut ByteBuf,
        rng: &mut dyn Random,
    ) -> (State, bool) {
        let Some(commit) = take::<32>(rx) else {
            return (State::AwaitCommit, false);
        };
        // The listener reveals its key only after the commitment has arrived.
        self.revealed = true;
        let (secret, public) = ephemeral(rng);
        tx.extend(&public);
        (
            State::AwaitKey {
                secret,
                public,
                commit,
            },
            true,
        )
    }

    fn on_key(
        &mut self,
        secret: StaticSecret,
        public: [u8; KEY_BYTES],
        commit: [u8; 32],
        theirs: [u8; KEY_BYTES],
        tx: &mut ByteBuf,
    ) -> Result<Established, Error> {
        let (listener_key, dialer_key) = match self.role {
            Role::Dialer => {
                // The reveal, only now that the listener's key is in.
                tx.extend(&public);
                (theirs, public)
            }
            Role::Listener => {
                if commitment(&theirs) != commit {
                    return Err(Error::Handshake(
                        "handshake failed: the peer's key does not match its commitment \
                         (someone is tampering with the connection)"
                            .into(),
                    ));
                }
                (public, theirs)
            }
        };
        let z = secret.diffie_hellman(&PublicKey::from(theirs));
        if !z.was_contributory() {
            return Err(Error::Handshake(
                "handshake failed: the peer sent an invalid key".into(),
            ));
        }
        let th = keys::transcript_hash(
            b"p2pchat/2 transcript sas",
            &[
                PREFACE_SAS,
                PREFACE_SAS,
                &commit,
                &listener_key,
                &dialer_key,
            ],
        );
        let keys = keys::derive(&th, z.as_bytes());
        let verify_code = Some(keys::verify_code(&keys.verifier));
        Ok(Established { keys, verify_code })
    }

    fn check_preface(&mut self, line: &[u8]) -> Result<(), Error> {
        if line == self.preface() {
            return Ok(());
        }
        if line == ROOM_TAKEN && self.role == Role::Dialer {
            return Err(Error::Connect(TAKEN_WHY.into()));
        }
        if line == WANTS_CODE && self.role == Role::Dialer {
            return Err(Error::Handshake(WANTS_CODE_WHY.into()));
        }
        if line == BUSY && self.role == Role::Dialer {
            self.busy = true;
            return Err(Error::Connect(
                "the listener is busy: all its handshake slots are taken (someone may be \
                 flooding it); try again, or dial with --retry SECS"
                    .into(),
            ));
        }
        if line == PREFACE_RESUME {
            return Err(Error::Handshake(
                "the peer tried to resume a room this one is not (it may have been restarted)"
                    .into(),
            ));
        }
        if matches!(self.method, Method::Resume(_)) {
            return Err(Error::Handshake(
                "the peer no longer has this room (it answered a resume with a new room)".into(),
            ));
        }
        let peer_secret = line == PREFACE_PAKE;
        let code = matches!(self.method, Method::Secret(Pake { room: Some(_), .. }));
        if code && line == PREFACE_SAS {
            return Err(Error::Handshake(match self.role {
                Role::Dialer => "the listener uses no one-time code: dial without --code".into(),
                Role::Listener => "the peer dialed without the one-time code (--code)".into(),
            }));
        }
        if peer_secret || line == PREFACE_SAS {
            return Err(Error::Handshake(if peer_secret {
                "the peer uses a shared secret and we do not: set the same secret on both sides, or on neither".into()
            } else {
                "the peer has no shared secret and we do: set the same secret on both sides, or on neither".into()
            }));
        }
        Err(Error::Handshake(format!(
            "the peer speaks another p2pchat protocol version ({}); we speak version 3: both sides need a p2pchat of the same protocol version",
            printable(line.strip_suffix(b"\n").unwrap_or(line))
        )))
    }

    /// The error to report when the connection ends before the handshake does.
    pub fn eof_error(&self) -> Error {
        if self.uses_secret() {
            Error::Handshake(
                "the peer closed the connection during the handshake (most likely the codes or shared secrets differ)".into(),
            )
        } else {
            Error::Handshake("the peer closed the connection during the handshake".into())
        }
    }

    /// The error to report when a key confirmation (HELLO) fails.
    pub fn auth_error(uses_secret: bool) -> Error {
        Error::AuthFailed(if uses_secret {
            "authentication failed: the codes or shared secrets differ (or someone tampered with the handshake)".into()
        } else {
            "authentication failed: someone tampered with the handshake".into()
        })
    }
}

/// The peer's resume key: X25519 with ours, mixed with the room's resume
/// key, so only a side that holds it derives the same keys.
fn on_resume_key(
    role: Role,
    psk: &[u8; KEY_BYTES],
    secret: StaticSecret,
    public: [u8; KEY_BYTES],
    theirs: [u8; KEY_BYTES],
) -> Result<Established, Error> {
    let z = secret.diffie_hellman(&PublicKey::from(theirs));
    if !z.was_contributory() {
        return Err(Error::Handshake(
            "resume failed: the peer sent an invalid key".into(),
        ));
    }
    let (dialer_key, listener_key) = match role {
        Role::Dialer => (public, theirs),
        Role::Listener => (theirs, public),
    };
    let th = keys::transcript_hash(
        b"p2pchat/2 transcript resume",
        &[PREFACE_RESUME, &dialer_key, &listener_key],
    );
    Ok(Established {
        keys: keys::derive_resumed(&th, psk, z.as_bytes()),
        verify_code: None,
    })
}

fn on_pake(
    role: Role,
    spake: Spake2<Ed25519Group>,
    ours: &[u8],
    theirs: &[u8],
) -> Result<Established, Error> {
    let k = Zeroizing::new(spake.finish(theirs).map_err(|_| {
        Error::Handshake("handshake failed: the peer sent an invalid key-exchange message".into())
    })?);
    let (msg_a, msg_b) = match role {
        Role::Dialer => (ours, theirs),
        Role::Listener => (theirs, ours),
    };
    let th = keys::transcript_hash(
        b"p2pchat/2 transcript pake",
        &[PREFACE_PAKE, PREFACE_PAKE, msg_a, msg_b],
    );
    Ok(Established {
        keys: keys::derive(&th, &k),
        verify_code: None,
    })
}

/// `p2pchat/2 dialer`, or with a code's room `p2pchat/2 dialer room 482913`.
fn id(side: &[u8], room: Option<&str>) -> Identity {
    let mut id = [b"p2pchat/2 ".as_slice(), side].concat();
    if let Some(room) = room {
        id.extend_from_slice(b" room ");
        id.extend_from_slice(room.as_bytes());
    }
    Identity::new(&id)
}

fn ephemeral(rng: &mut dyn Random) -> (Box<StaticSecret>, [u8; KEY_BYTES]) {
    let mut seed = Zeroizing::new([0u8; KEY_BYTES]);
    rng.fill(&mut seed[..]);
    let secret = Box::new(StaticSecret::from(*seed));
    let public = PublicKey::from(&*secret).to_bytes();
    (secret, public)
}

fn commitment(public: &[u8; KEY_BYTES]) -> [u8; 32] {
    keys::transcript_hash(b"p2pchat/2 sas commit", &[public])
}

fn take<const N: usize>(rx: &mut ByteBuf) -> Option<[u8; N]> {
    if rx.len() < N {
        return None;
    }
    let mut out = [0u8; N];
    out.copy_from_slice(&rx.data()[..N]);
    rx.consume(N);
    Some(out)
}

/// Takes the peer's preface line, failing as soon as the bytes cannot be one
/// (a netcat user typing, an HTTP client, a port scanner).
fn take_preface(rx: &mut ByteBuf) -> Result<Option<Vec<u8>>, Error> {
    let data = rx.data();
    let n = data.len().min(PREFIX.len());
    let newline = data.iter().take(MAX_PREFACE).position(|&b| b == b'\n');
    if data[..n] != PREFIX[..n] || (newline.is_none() && data.len() >= MAX_PREFACE) {
        let shown = &data[..data.len().min(MAX_PREFACE)];
        return Err(Error::Handshake(format!(
            "the peer is not speaking the p2pchat protocol (it sent \"{}\"); is it running --plain or netcat?",
            printable(shown)
        )));
    }
    let Some(end) = newline else { return Ok(None) };
    let line = data[..=end].to_vec();
    rx.consume(end + 1);
    Ok(Some(line))
}

/// Bytes as visible ASCII for an error message: nothing the peer sends may
/// reach our terminal raw.
pub fn printable(bytes: &[u8]) -> String {
    bytes
        .iter()
        .flat_map(|&b| std::ascii::escape_default(b))
        .map(char::from)
        .collect()
}

/// Whether `data` begins with a p2pchat preface line: `Some(true)` it does,
/// `Some(false)` it cannot, `None` too few bytes to tell. A plain-mode
/// session uses it to spot an encrypted peer.
pub fn looks_like_preface(data: &[u8]) -> Option<bool> {
    for p in [PREFACE_SAS, PREFACE_PAKE, PREFACE_RESUME] {
        let n = data.len().min(p.len());
        if data[..n] == p[..n] {
            return if data.len() >= p.len() {
                Some(true)
            } else {
                None
            };
        }
    }
    Some(false)
}
