//! One-time codes: `482913-acid-bulk-cactus`.
//!
//! The number is the room: a relay matches the two sides on a hash of it,
//! and both sides bind it into the SPAKE2 identities, so a relay that pairs
//! the wrong rooms causes an authentication failure. The three words are
//! the SPAKE2 password (33 bits) and never leave the two machines; a
//! listener answers one guess per code, so a stranger's chance is one in
//! 8.6 billion.
//!
//! The words are the BIP-39 English list (2048 words, MIT licence, from
//! trezor/python-mnemonic): every word is decided by its first four
//! letters, which makes typing and completing them forgiving.

use std::fmt;

use zeroize::Zeroizing;

use super::Random;

/// Digits of the room number.
pub const ROOM_DIGITS: usize = 6;
/// Words of the password.
pub const WORDS: usize = 3;
const ROOMS: u32 = 1_000_000;
/// Letters that decide a word of the list.
const UNIQUE_PREFIX: usize = 4;

static WORDLIST: &str = include_str!("wordlist.txt");

fn words() -> impl Iterator<Item = &'static str> {
    WORDLIST.lines()
}

fn word(i: usize) -> &'static str {
    // Invariant: the list has 2048 lines (a test checks) and `i` < 2048.
    words().nth(i).expect("index within the word list")
}

/// A one-time code: the room and the password.
#[derive(Clone)]
pub struct Code {
    room: String,
    password: Zeroizing<String>,
}

impl Code {
    /// A fresh code: a uniform room number and three uniform words.
    pub fn generate(rng: &mut dyn Random) -> Code {
        let room = loop {
            let mut b = [0u8; 4];
            rng.fill(&mut b);
            let n = u32::from_le_bytes(b);
            // Rejection sampling: no number is likelier than another.
            if n < u32::MAX - u32::MAX % ROOMS {
                break n % ROOMS;
            }
        };
        let mut password = Zeroizing::new(String::new());
        for i in 0..WORDS {
            let mut b = Zeroizing::new([0u8; 2]);
            rng.fill(&mut b[..]);
            if i > 0 {
                password.push('-');
            }
            password.push_str(word(usize::from(u16::from_le_bytes(*b) & 0x7ff)));
        }
        Code {
            room: format!("{room:06}"),
            password,
        }
    }

    /// Reads a code as a person types it: any case, words separated by
    /// `-` or spaces, a word by its first four letters or more.
    pub fn parse(input: &str) -> Result<Code, String> {
        const SHAPE: &str = "a code looks like 482913-acid-bulk-cactus";
        let lower = Zeroizing::new(input.trim().to_ascii_lowercase());
        let mut parts = lower
            .split(|c: char| c == '-' || c.is_whitespace())
            .filter(|p| !p.is_empty());
        let room = parts
            .next()
            .ok_or_else(|| format!("the code is empty; {SHAPE}"))?;
        if room.len() != ROOM_DIGITS || !room.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "the code must start with the {ROOM_DIGITS}-digit room number; {SHAPE}"
            ));
        }
        let mut password = Zeroizing::new(String::new());
        let mut n = 0;
        for part in parts {
            n += 1;
            if n > WORDS {
                break;
            }
            let w = lookup(part).ok_or_else(|| {
                format!("word {n} of the code is not one of the code words (check the spelling)")
            })?;
            if n > 1 {
                password.push('-');
            }
            password.push_str(w);
        }
        if n != WORDS {
            return Err(format!(
                "the code needs the room number and {WORDS} words; {SHAPE}"
            ));
        }
        Ok(Code {
            room: room.to_string(),
            password,
        })
    }

    /// The room number, which is not secret.
    pub fn room(&self) -> &str {
        &self.room
    }

    /// The SPAKE2 password: the words in their canonical spelling.
    pub fn password(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(self.password.as_bytes().to_vec())
    }
}

impl fmt::Display for Code {
    /// The whole code, to show to the person who will pass it on.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.room, &*self.password)
    }
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Code({}-..)", self.room)
    }
}

/// The list word `typed` stands for: itself, or the one word it is a
/// prefix of when it has at least the four letters that decide one.
fn lookup(typed: &str) -> Option<&'static str> {
    if let Some(w) = words().find(|w| *w == typed) {
        return Some(w);
    }
    if typed.len() < UNIQUE_PREFIX {
        return None;
    }
    let mut found = words().filter(|w| w.starts_with(typed));
    match (found.next(), found.next()) {
        (Some(w), None) => Some(w),
        _ => None,
    }
}

/// The code words that start with `prefix`, for completion at a prompt.
pub fn complete(prefix: &str) -> Vec<&'static str> {
    let prefix = prefix.to_ascii_lowercase();
    if prefix.is_empty() {
        return Vec::new();
    }
    words().filter(|w| w.starts_with(&prefix)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::DeterministicRng;

    #[test]
    fn the_list_has_2048_distinct_words_each_decided_by_four_letters() {
        let all: Vec<&str> = words().collect();
        assert_eq!(all.len(), 2048);
        let mut prefixes: Vec<&str> = all.iter().map(|w| &w[..w.len().min(4)]).collect();
        prefixes.sort_unstable();
        prefixes.dedup();
        assert_eq!(prefixes.len(), 2048);
        assert!(all
            .iter()
            .all(|w| w.bytes().all(|b| b.is_ascii_lowercase())));
    }

    #[test]
    fn a_generated_code_reads_back_as_itself() {
        let mut rng = DeterministicRng::new(7);
        for _ in 0..200 {
            let code = Code::generate(&mut rng);
            let shown = code.to_string();
            assert_eq!(code.room().len(), 6);
            assert_eq!(shown.split('-').count(), 4, "{shown}");
            let back = Code::parse(&shown).unwrap();
            assert_eq!(back.room(), code.room());
            assert_eq!(&back.password()[..], &code.password()[..]);
        }
    }

    #[test]
    fn codes_vary() {
        let mut rng = DeterministicRng::new(1);
        let a = Code::generate(&mut rng).to_string();
        let b = Code::generate(&mut rng).to_string();
        assert_ne!(a, b);
    }

    #[test]
    fn people_type_codes_loosely() {
        let canonical = Code::parse("012345-abandon-ability-zoo").unwrap();
        for typed in [
            " 012345 Abandon ABILITY zoo \n",
            "012345-aban-abil-zoo",
            "012345--abandon  ability-zoo",
        ] {
            let c = Code::parse(typed).unwrap();
            assert_eq!(c.room(), "012345");
            assert_eq!(&c.password()[..], &canonical.password()[..], "{typed}");
        }
    }

    #[test]
    fn bad_codes_say_what_is_wrong() {
        for (typed, says) in [
            ("", "empty"),
            ("12345-abandon-ability-zoo", "6-digit"),
            ("12345a-abandon-ability-zoo", "6-digit"),
            ("012345-abandon-ability", "3 words"),
            ("012345-abandon-ability-zoo-zoo", "3 words"),
            ("012345-abandon-abilty-zoo", "word 2"),
            ("012345-aba-ability-zoo", "word 1"),
        ] {
            let err = Code::parse(typed).unwrap_err();
            assert!(err.contains(says), "{typed:?}: {err}");
        }
    }

    #[test]
    fn completion_offers_the_words_with_a_prefix() {
        assert_eq!(complete("zo"), vec!["zone", "zoo"]);
        assert_eq!(complete("ABAN"), vec!["abandon"]);
        assert!(complete("").is_empty());
        assert!(complete("qq").is_empty());
    }

    #[test]
    fn debug_hides_the_words() {
        let code = Code::parse("012345-abandon-ability-zoo").unwrap();
        assert_eq!(format!("{code:?}"), "Code(012345-..)");
    }
}
