//! Wire protocol v3: the preface, the key exchange, the key schedule and the
//! record layer. Pure functions and state machines over byte buffers; the
//! full description with the record diagram is in `PROTOCOL.md`.
//!
//! Nothing here owns a clock, a socket or a source of randomness: time comes
//! in as an argument and random bytes through [`Random`], so a seeded test
//! makes every handshake reproducible.

pub mod code;
pub mod file;
pub mod handshake;
pub mod keys;
pub mod payload;
pub mod record;
pub mod transit;

/// Which side of the key exchange we are. The dialer speaks first; the
/// listener answers and verifies the dialer's key confirmation before it
/// sends anything sealed with its own keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Listener,
    Dialer,
}

/// Where the core gets its random bytes: the driver passes the system's
/// generator, tests a seeded one.
pub trait Random {
    /// Fills `buf` with cryptographically secure random bytes.
    fn fill(&mut self, buf: &mut [u8]);
}

/// Lends a [`Random`] to crates that want `rand_core`'s traits (SPAKE2).
pub(crate) struct RandCore<'a>(pub &'a mut dyn Random);

impl rand_core::RngCore for RandCore<'_> {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.0.fill(&mut b);
        u32::from_le_bytes(b)
    }
    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.0.fill(&mut b);
        u64::from_le_bytes(b)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.0.fill(dest);
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.0.fill(dest);
        Ok(())
    }
}

impl rand_core::CryptoRng for RandCore<'_> {}

/// A reproducible [`Random`] for tests and fuzzing: SHA-256 of a seed and a
/// counter. Never for real keys: anyone who knows the seed knows the keys.
pub struct DeterministicRng {
    seed: u64,
    counter: u64,
}

impl DeterministicRng {
    pub fn new(seed: u64) -> DeterministicRng {
        DeterministicRng { seed, counter: 0 }
    }
}

impl Random for DeterministicRng {
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(32) {
            let block = keys::transcript_hash(
                b"p2pchat test rng",
                &[&self.seed.to_be_bytes(), &self.counter.to_be_bytes()],
            );
            self.counter += 1;
            chunk.copy_from_slice(&block[..chunk.len()]);
        }
    }
}
