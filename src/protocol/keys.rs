//! The key schedule: transcript hash, HKDF-SHA256, one key per direction and
//! the verify code. Secrets live in `Zeroizing` buffers.

use ring::{digest, hkdf};
use zeroize::Zeroizing;

pub const KEY_LEN: usize = 32;

/// SHA-256 over length-prefixed parts: `lp(label) || lp(p1) || lp(p2) ...`
/// where `lp(x) = u32_be(len(x)) || x`, so no two transcripts collide.
pub fn transcript_hash(label: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for part in std::iter::once(label).chain(parts.iter().copied()) {
        ctx.update(&(part.len() as u32).to_be_bytes());
        ctx.update(part);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// The keys both sides derive from one handshake.
pub struct Keys {
    pub dialer_to_listener: Zeroizing<[u8; KEY_LEN]>,
    pub listener_to_dialer: Zeroizing<[u8; KEY_LEN]>,
    /// Eight bytes both sides can compare; the verify code is made from it.
    pub verifier: [u8; 8],
    /// The room's resume key: a later connection proves itself with it
    /// (mixed with fresh ephemeral keys), so it must never leave memory.
    pub resume: Zeroizing<[u8; KEY_LEN]>,
}

struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn expand(prk: &hkdf::Prk, label: &[u8], out: &mut [u8]) {
    // Invariant: HKDF-SHA256 can expand up to 255 * 32 bytes; we ask for at
    // most 32, so neither call can fail.
    prk.expand(&[label], Len(out.len()))
        .and_then(|okm| okm.fill(out))
        .expect("HKDF output length is within bounds");
}

/// `PRK = HKDF-Extract(salt = TH, IKM)`, then one labelled expansion per key.
pub fn derive(transcript: &[u8; 32], ikm: &[u8]) -> Keys {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, transcript).extract(ikm);
    let mut keys = Keys {
        dialer_to_listener: Zeroizing::new([0; KEY_LEN]),
        listener_to_dialer: Zeroizing::new([0; KEY_LEN]),
        verifier: [0; 8],
        resume: Zeroizing::new([0; KEY_LEN]),
    };
    expand(
        &prk,
        b"p2pchat/1 key dialer->listener",
        &mut keys.dialer_to_listener[..],
    );
    expand(
        &prk,
        b"p2pchat/1 key listener->dialer",
        &mut keys.listener_to_dialer[..],
    );
    expand(&prk, b"p2pchat/1 verifier", &mut keys.verifier);
    expand(&prk, b"p2pchat/2 resume psk", &mut keys.resume[..]);
    keys
}

/// The keys of a resumed connection: `PRK = HKDF-Extract(salt = TH_g,
/// IKM = resume_psk || Z_g)` with fresh ephemeral keys on both sides, so
/// every connection of a room has its own keys (and nonces start at 0
/// under keys never used before), and only holders of the room's resume
/// key can derive them.
pub fn derive_resumed(transcript: &[u8; 32], psk: &[u8; KEY_LEN], z: &[u8]) -> Keys {
    let ikm = Zeroizing::new([&psk[..], z].concat());
    derive(transcript, &ikm)
}

/// Six digits in two groups, e.g. `482 913`.
pub fn verify_code(verifier: &[u8; 8]) -> String {
    let n = u64::from_be_bytes(*verifier) % 1_000_000;
    format!("{:03} {:03}", n / 1000, n % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// Known answers computed with an independent HKDF (Python's hmac and
    /// hashlib); a change to a label or to the order of the transcript fails here.
    #[test]
    fn key_schedule_known_answers() {
        let th = transcript_hash(b"p2pchat/1 transcript sas", &[b"p2pchat/1 sas\n", b"abc"]);
        assert_eq!(hex(&th), KAT_TH);
        let keys = derive(&th, &[7u8; 32]);
        assert_eq!(hex(&keys.dialer_to_listener[..]), KAT_D2L);
        assert_eq!(hex(&keys.listener_to_dialer[..]), KAT_L2D);
        assert_eq!(hex(&keys.verifier), KAT_VERIFIER);
        assert_eq!(verify_code(&keys.verifier), KAT_CODE);
    }

    #[test]
    fn verify_code_is_six_digits_in_two_groups() {
        assert_eq!(verify_code(&[0; 8]), "000 000");
        assert_eq!(verify_code(&1_482_913u64.to_be_bytes()), "482 913");
    }

    const KAT_TH: &str = "48f6d9c01e0639b8fef2262c48a2f65e56cfd9b82191d5831e08a71eeb51d2d5";
    const KAT_D2L: &str = "85fe81d225f6dc43a40cbe7ddb83c55a3f5b6bdbd40653db30950b37faf1d020";
    const KAT_L2D: &str = "eacdcdcecbcfc6c8514ab3509987aa8d8e3f4044948feade9fc1caa331821f7a";
    const KAT_VERIFIER: &str = "38c0a4f804c1127f";
    const KAT_CODE: &str = "017 087";
}
