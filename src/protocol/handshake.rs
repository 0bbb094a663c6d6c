//! The handshake as a sans-IO state machine: preface lines, then either the
//! verify-code exchange (ephemeral X25519 with commit-then-reveal) or SPAKE2
//! with the shared secret, then the key schedule. Key confirmation (HELLO)
//! is the record layer's first record and lives in the session.
//!
//! ```text
//! verify code (no secret)                   shared secret (SPAKE2)
//! D -> L  "p2pchat/1 sas\n"                 D -> L  "p2pchat/1 pake\n"
//! L -> D  "p2pchat/1 sas\n"                 L -> D  "p2pchat/1 pake\n"
//! D -> L  C = H(lp(label) || lp(E_d))       D -> L  SPAKE2 msg A (33 bytes)
//! L -> D  E_l        (only after C)         L -> D  SPAKE2 msg B (33 bytes)
//! D -> L  E_d        (only after E_l)
//! ```

use ring::agreement::{self, EphemeralPrivateKey, UnparsedPublicKey, X25519};
use ring::rand::SystemRandom;
use spake2::{Ed25519Group, Identity, Password, Spake2};
use zeroize::Zeroizing;

use super::keys::{self, Keys};
use crate::cli::Role;
use crate::error::Error;
use crate::session::buffer::ByteBuf;

const PREFIX: &[u8] = b"p2pchat/";
const PREFACE_SAS: &[u8] = b"p2pchat/1 sas\n";
const PREFACE_PAKE: &[u8] = b"p2pchat/1 pake\n";
/// A preface line longer than this is not one.
const MAX_PREFACE: usize = 32;
const KEY_BYTES: usize = 32;
const PAKE_MSG: usize = 33;

/// How the two sides agree on keys.
pub enum Method {
    /// No secret: ephemeral keys and a verify code for the users to compare.
    VerifyCode,
    /// SPAKE2 over the shared secret.
    Secret(Zeroizing<Vec<u8>>),
}

/// What a finished handshake yields.
pub struct Established {
    pub keys: Keys,
    /// The code both sides show, in verify-code mode.
    pub verify_code: Option<String>,
}

enum State {
    Preface,
    /// Listener, verify code: waiting for the dialer's commitment.
    AwaitCommit,
    /// Verify code, either side: our key pair is made; waiting for the
    /// peer's key (the dialer has sent its commitment, the listener its
    /// key, and checks the dialer's against the commitment).
    AwaitKey {
        secret: EphemeralPrivateKey,
        public: [u8; KEY_BYTES],
        commit: [u8; 32],
    },
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
    rng: SystemRandom,
}

impl Handshake {
    /// Starts a handshake, writing our preface line into `tx`.
    pub fn start(role: Role, method: Method, tx: &mut ByteBuf) -> Handshake {
        let hs = Handshake {
            role,
            method,
            state: State::Preface,
            rng: SystemRandom::new(),
        };
        tx.extend(hs.preface());
        hs
    }

    fn preface(&self) -> &'static [u8] {
        match self.method {
            Method::VerifyCode => PREFACE_SAS,
            Method::Secret(_) => PREFACE_PAKE,
        }
    }

    /// Returns true if and only if this handshake runs on a shared secret.
    pub fn uses_secret(&self) -> bool {
        matches!(self.method, Method::Secret(_))
    }

    /// Consumes what it can from `rx`, writes replies into `tx`. Returns the
    /// keys once the exchange is complete.
    pub fn advance(
        &mut self,
        rx: &mut ByteBuf,
        tx: &mut ByteBuf,
    ) -> Result<Option<Established>, Error> {
        let state = std::mem::replace(&mut self.state, State::Done);
        let (next, done) = self.step(state, rx, tx)?;
        self.state = next;
        Ok(done)
    }

    fn step(
        &mut self,
        state: State,
        rx: &mut ByteBuf,
        tx: &mut ByteBuf,
    ) -> Result<(State, Option<Established>), Error> {
        let s = match state {
            State::Preface => {
                let Some(line) = take_preface(rx)? else {
                    return Ok((State::Preface, None));
                };
                self.check_preface(&line)?;
                match (&self.method, self.role) {
                    (Method::VerifyCode, Role::Dialer) => {
                        let secret = EphemeralPrivateKey::generate(&X25519, &self.rng)
                            .map_err(rng_failed)?;
                        let public = public_key(&secret)?;
                        let commit = commitment(&public);
                        tx.extend(&commit);
                        State::AwaitKey {
                            secret,
                            public,
                            commit,
                        }
                    }
                    (Method::VerifyCode, Role::Listener) => State::AwaitCommit,
                    (Method::Secret(pw), role) => {
                        let (pw, a, b) = (Password::new(&pw[..]), id(b"dialer"), id(b"listener"));
                        let (spake, ours) = match role {
                            Role::Dialer => Spake2::<Ed25519Group>::start_a(&pw, &a, &b),
                            Role::Listener => Spake2::<Ed25519Group>::start_b(&pw, &a, &b),
                        };
                        tx.extend(&ours);
                        State::AwaitPake {
                            spake: Box::new(spake),
                            ours,
                        }
                    }
                }
            }
            State::AwaitCommit => {
                let Some(commit) = take::<32>(rx) else {
                    return Ok((State::AwaitCommit, None));
                };
                // The listener reveals its key only after the commitment has
                // arrived: that order is what makes the code unforgeable.
                let secret =
                    EphemeralPrivateKey::generate(&X25519, &self.rng).map_err(rng_failed)?;
                let public = public_key(&secret)?;
                tx.extend(&public);
                State::AwaitKey {
                    secret,
                    public,
                    commit,
                }
            }
            State::AwaitKey {
                secret,
                public,
                commit,
            } => {
                let Some(theirs) = take::<KEY_BYTES>(rx) else {
                    return Ok((
                        State::AwaitKey {
                            secret,
                            public,
                            commit,
                        },
                        None,
                    ));
                };
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
                let z = agree(secret, &theirs)?;
                let done = self.finish_sas(&commit, &listener_key, &dialer_key, &z);
                return Ok((State::Done, Some(done)));
            }
            State::AwaitPake { spake, ours } => {
                let Some(theirs) = take::<PAKE_MSG>(rx) else {
                    return Ok((State::AwaitPake { spake, ours }, None));
                };
                let k = Zeroizing::new(spake.finish(&theirs).map_err(|_| {
                    Error::Handshake(
                        "handshake failed: the peer sent an invalid key-exchange message".into(),
                    )
                })?);
                let (msg_a, msg_b) = match self.role {
                    Role::Dialer => (&ours[..], &theirs[..]),
                    Role::Listener => (&theirs[..], &ours[..]),
                };
                let th = keys::transcript_hash(
                    b"p2pchat/1 transcript pake",
                    &[PREFACE_PAKE, PREFACE_PAKE, msg_a, msg_b],
                );
                let keys = keys::derive(&th, &k);
                return Ok((
                    State::Done,
                    Some(Established {
                        keys,
                        verify_code: None,
                    }),
                ));
            }
            State::Done => return Ok((State::Done, None)),
        };
        // A state changed: step again in case its input is already buffered.
        self.step(s, rx, tx)
    }

    fn finish_sas(
        &self,
        commit: &[u8; 32],
        listener_key: &[u8; 32],
        dialer_key: &[u8; 32],
        z: &[u8],
    ) -> Established {
        let th = keys::transcript_hash(
            b"p2pchat/1 transcript sas",
            &[PREFACE_SAS, PREFACE_SAS, commit, listener_key, dialer_key],
        );
        let keys = keys::derive(&th, z);
        let verify_code = Some(keys::verify_code(&keys.verifier));
        Established { keys, verify_code }
    }

    fn check_preface(&self, line: &[u8]) -> Result<(), Error> {
        if line == self.preface() {
            return Ok(());
        }
        let peer_secret = line == PREFACE_PAKE;
        if peer_secret || line == PREFACE_SAS {
            return Err(Error::Handshake(if peer_secret {
                "the peer uses a shared secret and we do not: set the same secret on both sides, or on neither".into()
            } else {
                "the peer has no shared secret and we do: set the same secret on both sides, or on neither".into()
            }));
        }
        Err(Error::Handshake(format!(
            "the peer speaks another p2pchat protocol version ({}); we speak version 1",
            printable(line.strip_suffix(b"\n").unwrap_or(line))
        )))
    }

    /// The error to report when the connection ends before the handshake does.
    pub fn eof_error(&self) -> Error {
        if self.uses_secret() {
            Error::Handshake(
                "the peer closed the connection during the handshake (most likely the shared secrets differ)".into(),
            )
        } else {
            Error::Handshake("the peer closed the connection during the handshake".into())
        }
    }

    /// The error to report when a key confirmation (HELLO) fails.
    pub fn auth_error(uses_secret: bool) -> Error {
        Error::AuthFailed(if uses_secret {
            "authentication failed: the shared secrets differ (or someone tampered with the handshake)".into()
        } else {
            "authentication failed: someone tampered with the handshake".into()
        })
    }
}

fn id(side: &[u8]) -> Identity {
    Identity::new(&[b"p2pchat/1 ".as_slice(), side].concat())
}

fn rng_failed(_: ring::error::Unspecified) -> Error {
    Error::Local("the system random number generator failed".into())
}

fn public_key(secret: &EphemeralPrivateKey) -> Result<[u8; KEY_BYTES], Error> {
    let public = secret.compute_public_key().map_err(rng_failed)?;
    let mut out = [0u8; KEY_BYTES];
    out.copy_from_slice(public.as_ref());
    Ok(out)
}

fn commitment(public: &[u8; KEY_BYTES]) -> [u8; 32] {
    keys::transcript_hash(b"p2pchat/1 sas commit", &[public])
}

/// X25519; ring refuses low-order points (an all-zero shared secret).
fn agree(
    secret: EphemeralPrivateKey,
    theirs: &[u8; KEY_BYTES],
) -> Result<Zeroizing<Vec<u8>>, Error> {
    agreement::agree_ephemeral(secret, &UnparsedPublicKey::new(&X25519, theirs), |z| {
        Zeroizing::new(z.to_vec())
    })
    .map_err(|_| Error::Handshake("handshake failed: the peer sent an invalid key".into()))
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
    for p in [PREFACE_SAS, PREFACE_PAKE] {
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
