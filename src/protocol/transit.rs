//! The magic-wormhole transit relay handshake, both ends of it: the hello
//! line a client sends and a relay parses, the token a room number maps
//! to, and the relay's one-line replies. Nothing else is ever said to a
//! relay; after `ok\n` the bytes are the peers' own (see `PROTOCOL.md` §7).
//!
//! ```text
//! client -> relay   "please relay " TOKEN " for side " SIDE "\n"   (104 bytes)
//! relay  -> client  "ok\n"   (then raw bytes both ways)
//!                 | "bad handshake\n" | "impatient\n" | "error " REASON "\n"   (then close)
//! ```
//!
//! TOKEN is 64 and SIDE 16 "word" characters (`[A-Za-z0-9_]`), as the
//! reference server's regular expression has them; the older form without
//! `for side` is accepted too. A client says nothing more until `ok`.

use super::keys;

pub const TOKEN_LEN: usize = 64;
pub const SIDE_LEN: usize = 16;
const HEAD: &[u8] = b"please relay ";
const SIDE_KEYWORD: &[u8] = b" for side ";
/// The longest hello: the sided form.
pub const MAX_HELLO: usize = HEAD.len() + TOKEN_LEN + SIDE_KEYWORD.len() + SIDE_LEN + 1;

pub const OK: &[u8] = b"ok\n";
pub const BAD_HANDSHAKE: &[u8] = b"bad handshake\n";
pub const IMPATIENT: &[u8] = b"impatient\n";
/// The longest reply a client reads before giving up on a relay.
pub const MAX_REPLY: usize = 256;

/// The fixed sides of p2pchat's two roles: a relay never pairs two
/// connections of one side, so two listeners (or two dialers) of one room
/// can never be put together. The first 16 hex digits of
/// SHA-256 of "p2pchat/1 listener side" and "p2pchat/1 dialer side".
pub const LISTENER_SIDE: &[u8; SIDE_LEN] = b"d7e1aaa9ddbb4636";
pub const DIALER_SIDE: &[u8; SIDE_LEN] = b"995caf422c857c91";

/// What the relay is asked to match on: the hex of
/// `SHA-256(lp("p2pchat/1 relay token") || lp(room))`. The room is public
/// (a relay can try every room number against a token in milliseconds);
/// the code's words never leave the two machines.
pub fn token(room: &str) -> [u8; TOKEN_LEN] {
    let digest = keys::transcript_hash(b"p2pchat/1 relay token", &[room.as_bytes()]);
    hex(&digest)
}

/// The token both sides use to come back to the relay for a resume: the
/// hex of `SHA-256(lp("p2pchat/2 relay resume token") || lp(psk))`, from
/// the room's resume key. Only the two ends of the room can name it, so a
/// stranger who knows the room number (or watched the first hello) cannot
/// be paired into a resume, nor hold its place at the relay. A relay that
/// sees both tokens learns nothing it did not know: that a room went on.
pub fn resume_token(psk: &[u8; 32]) -> [u8; TOKEN_LEN] {
    let digest = keys::transcript_hash(b"p2pchat/2 relay resume token", &[psk]);
    hex(&digest)
}

/// Lower-case hex of 32 bytes.
pub fn hex(bytes: &[u8; 32]) -> [u8; 64] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 64];
    for (i, b) in bytes.iter().enumerate() {
        out[2 * i] = DIGITS[usize::from(b >> 4)];
        out[2 * i + 1] = DIGITS[usize::from(b & 15)];
    }
    out
}

/// The line a client sends.
pub fn hello(token: &[u8; TOKEN_LEN], side: &[u8; SIDE_LEN]) -> Vec<u8> {
    [HEAD, token, SIDE_KEYWORD, side, b"\n"].concat()
}

/// A parsed hello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    pub token: [u8; TOKEN_LEN],
    /// None for the old form, which pairs with any side.
    pub side: Option<[u8; SIDE_LEN]>,
    /// Bytes the line took, with its LF.
    pub len: usize,
}

impl Hello {
    /// Returns true if and only if the relay may pair these two: the same
    /// token, and different sides unless either has none.
    pub fn matches(&self, other: &Hello) -> bool {
        self.token == other.token
            && match (self.side, other.side) {
                (Some(a), Some(b)) => a != b,
                _ => true,
            }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Parse {
    /// Could still become a hello: wait for more bytes.
    Incomplete,
    Hello(Hello),
    /// Cannot be a hello, whatever follows.
    Bad,
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Parses the start of what a client sent. Decides as early as the bytes
/// allow: anything that is not a prefix of a hello is `Bad` at once, so a
/// relay never holds more than [`MAX_HELLO`] bytes of a stranger's.
pub fn parse(buf: &[u8]) -> Parse {
    // Walk the grammar; `at` is how far the bytes matched.
    let n = buf.len();
    let head = HEAD.len().min(n);
    if buf[..head] != HEAD[..head] {
        return Parse::Bad;
    }
    if n <= HEAD.len() {
        return Parse::Incomplete;
    }
    let token_end = HEAD.len() + TOKEN_LEN;
    let token_part = &buf[HEAD.len()..token_end.min(n)];
    if !token_part.iter().copied().all(is_word) {
        return Parse::Bad;
    }
    if n <= token_end {
        return Parse::Incomplete;
    }
    let mut token = [0u8; TOKEN_LEN];
    token.copy_from_slice(&buf[HEAD.len()..token_end]);
    if buf[token_end] == b'\n' {
        return Parse::Hello(Hello {
            token,
            side: None,
            len: token_end + 1,
        });
    }
    let kw_end = token_end + SIDE_KEYWORD.len();
    let kw = &buf[token_end..kw_end.min(n)];
    if kw != &SIDE_KEYWORD[..kw.len()] {
        return Parse::Bad;
    }
    let side_end = kw_end + SIDE_LEN;
    if n > kw_end && !buf[kw_end..side_end.min(n)].iter().copied().all(is_word) {
        return Parse::Bad;
    }
    if n <= side_end {
        return Parse::Incomplete;
    }
    if buf[side_end] != b'\n' {
        return Parse::Bad;
    }
    let mut side = [0u8; SIDE_LEN];
    side.copy_from_slice(&buf[kw_end..side_end]);
    Parse::Hello(Hello {
        token,
        side: Some(side),
        len: side_end + 1,
    })
}

/// What a relay said before the peers' bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// Not a whole line yet.
    Incomplete,
    /// Paired: the first `len` bytes were the reply; what follows is the
    /// peer's.
    Ok { len: usize },
    /// Refused, with the reason for the user.
    Refused(String),
}

/// Reads a relay's reply line.
pub fn parse_reply(buf: &[u8]) -> Reply {
    let Some(lf) = buf.iter().position(|&b| b == b'\n') else {
        if buf.len() >= MAX_REPLY {
            return Reply::Refused(
                "the relay sent something that is not a transit relay reply".into(),
            );
        }
        return Reply::Incomplete;
    };
    let line = &buf[..=lf];
    if line == OK {
        return Reply::Ok { len: lf + 1 };
    }
    Reply::Refused(if line == BAD_HANDSHAKE {
        "the relay said \"bad handshake\": it is not a transit relay, or it rejected our hello"
            .into()
    } else if line == IMPATIENT {
        "the relay said \"impatient\" (it saw bytes before pairing; this is a bug)".into()
    } else if let Some(reason) = line.strip_prefix(b"error ") {
        format!(
            "the relay refused: {}",
            super::handshake::printable(&reason[..reason.len() - 1])
        )
    } else {
        format!(
            "the relay sent \"{}\", not a transit relay reply",
            super::handshake::printable(&line[..line.len() - 1])
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: [u8; 64] = [b'a'; 64];

    #[test]
    fn the_sides_are_what_their_comment_says() {
        for (label, side) in [
            (&b"p2pchat/1 listener side"[..], LISTENER_SIDE),
            (b"p2pchat/1 dialer side", DIALER_SIDE),
        ] {
            let d = ring::digest::digest(&ring::digest::SHA256, label);
            let mut bytes = [0u8; 32];
            bytes.copy_from_slice(d.as_ref());
            assert_eq!(&hex(&bytes)[..16], &side[..]);
        }
        assert_ne!(LISTENER_SIDE, DIALER_SIDE);
    }

    #[test]
    fn our_hello_is_the_reference_servers_104_bytes() {
        let h = hello(&token("482913"), LISTENER_SIDE);
        assert_eq!(h.len(), 104);
        assert_eq!(h.len(), MAX_HELLO);
        match parse(&h) {
            Parse::Hello(p) => {
                assert_eq!(p.len, 104);
                assert_eq!(p.side.as_ref(), Some(LISTENER_SIDE));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn tokens_are_lower_hex_and_differ_per_room() {
        let a = token("482913");
        assert!(a
            .iter()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_ne!(a, token("482914"));
    }

    /// Known answer from Python's hashlib; the resume token is no room's.
    #[test]
    fn the_resume_token_comes_from_the_key_alone() {
        assert_eq!(
            &resume_token(&[7; 32]),
            b"9a3cc6bfd423da356fcaae92b07029a49d4fd67f59544077c1f498cf4ed52d85"
        );
        assert_ne!(resume_token(&[7; 32]), resume_token(&[8; 32]));
    }

    #[test]
    fn every_prefix_of_a_hello_is_incomplete_and_then_it_parses() {
        for h in [hello(&T, DIALER_SIDE), [HEAD, &T, b"\n"].concat()] {
            for cut in 0..h.len() {
                assert_eq!(parse(&h[..cut]), Parse::Incomplete, "cut at {cut}");
            }
            assert!(matches!(parse(&h), Parse::Hello(_)));
            // Bytes after the line are not part of it.
            let mut more = h.clone();
            more.extend_from_slice(b"EARLY");
            assert!(matches!(parse(&more), Parse::Hello(Hello { len, .. }) if len == h.len()));
        }
    }

    #[test]
    fn what_the_reference_server_refuses_we_refuse() {
        let sided = hello(&T, DIALER_SIDE);
        let cases: Vec<Vec<u8>> = vec![
            b"hello relay\n".to_vec(),
            b"GET / HTTP/1.1\r\n".to_vec(),
            [HEAD, &T[..63], b"\n"].concat(),
            [&sided[..sided.len() - 2], b"\n"].concat(),
            [&sided[..sided.len() - 1], b"\r\n"].concat(),
            [&sided[..sided.len() - 1], b"0\n"].concat(),
            [HEAD, &[b'-'; 64][..], b"\n"].concat(),
            b"\x16\x03\x01\x02\x00".to_vec(),
            b"p2pchat/3 pake\n".to_vec(),
        ];
        for c in cases {
            assert_eq!(parse(&c), Parse::Bad, "{:?}", String::from_utf8_lossy(&c));
        }
    }

    #[test]
    fn word_characters_are_what_python_means_by_them() {
        let odd = [
            HEAD,
            &[b'Z'; 32][..],
            &[b'_'; 32][..],
            b" for side zz__ZZ__zz__ZZ__\n",
        ]
        .concat();
        assert!(matches!(parse(&odd), Parse::Hello(_)));
    }

    #[test]
    fn matching_follows_the_sides() {
        let h = |side: Option<&[u8; 16]>| Hello {
            token: T,
            side: side.copied(),
            len: 0,
        };
        assert!(h(Some(LISTENER_SIDE)).matches(&h(Some(DIALER_SIDE))));
        assert!(!h(Some(LISTENER_SIDE)).matches(&h(Some(LISTENER_SIDE))));
        assert!(h(None).matches(&h(Some(LISTENER_SIDE))));
        assert!(h(None).matches(&h(None)));
        let mut other = h(Some(DIALER_SIDE));
        other.token[0] = b'b';
        assert!(!h(Some(LISTENER_SIDE)).matches(&other));
    }

    #[test]
    fn replies() {
        assert_eq!(parse_reply(b"o"), Reply::Incomplete);
        assert_eq!(parse_reply(b"ok\n"), Reply::Ok { len: 3 });
        assert_eq!(parse_reply(b"ok\nfirst bytes"), Reply::Ok { len: 3 });
        for (line, says) in [
            (&b"bad handshake\n"[..], "bad handshake"),
            (b"impatient\n", "impatient"),
            (b"error relay is full\n", "relay is full"),
            (b"ok then\n", "ok then"),
        ] {
            match parse_reply(line) {
                Reply::Refused(why) => assert!(why.contains(says), "{why}"),
                other => panic!("{other:?}"),
            }
        }
        assert!(matches!(parse_reply(&[b'x'; MAX_REPLY]), Reply::Refused(_)));
    }
}
