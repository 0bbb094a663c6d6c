//! The payloads of protocol v3's file-stream records (PROTOCOL.md §9):
//! OFFER, ACCEPT, CREDIT, CHUNK, FIN and CLOSE. Each starts with the
//! stream id (u32, big-endian); numbers are big-endian. Pure encodings:
//! what a stream may do with them is the session's to decide, and a
//! payload that does not parse is a protocol violation there.

/// The bytes of a stream id.
pub const ID_LEN: usize = 4;
/// The longest name an OFFER carries, in bytes. A longer one is refused:
/// file systems allow 255, and the receiver shortens names anyway.
pub const MAX_NAME: usize = 1024;
/// The longest reason a CLOSE carries, in bytes.
pub const MAX_REASON: usize = 200;
/// The bytes of a SHA-256.
pub const DIGEST_LEN: usize = 32;

fn id_and_rest(payload: &[u8]) -> Option<(u32, &[u8])> {
    let (id, rest) = payload.split_first_chunk::<ID_LEN>()?;
    Some((u32::from_be_bytes(*id), rest))
}

fn u64_at(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let (n, rest) = bytes.split_first_chunk::<8>()?;
    Some((u64::from_be_bytes(*n), rest))
}

/// OFFER: stream id, size (u64), then the name as the sender has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer<'a> {
    pub id: u32,
    pub size: u64,
    pub name: &'a [u8],
}

impl<'a> Offer<'a> {
    pub fn encode(&self) -> Vec<u8> {
        let mut p = Vec::with_capacity(ID_LEN + 8 + self.name.len());
        p.extend_from_slice(&self.id.to_be_bytes());
        p.extend_from_slice(&self.size.to_be_bytes());
        p.extend_from_slice(&self.name[..self.name.len().min(MAX_NAME)]);
        p
    }

    /// None when it is short, or its name is empty or over [`MAX_NAME`].
    pub fn decode(payload: &'a [u8]) -> Option<Offer<'a>> {
        let (id, rest) = id_and_rest(payload)?;
        let (size, name) = u64_at(rest)?;
        if name.is_empty() || name.len() > MAX_NAME {
            return None;
        }
        Some(Offer { id, size, name })
    }
}

/// ACCEPT: stream id, the offset the sender goes on from (u64), and the
/// credit: the offset up to which it may send (u64).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accept {
    pub id: u32,
    pub at: u64,
    pub limit: u64,
}

impl Accept {
    pub const LEN: usize = ID_LEN + 16;

    pub fn encode(&self) -> [u8; Accept::LEN] {
        let mut p = [0u8; Accept::LEN];
        p[..4].copy_from_slice(&self.id.to_be_bytes());
        p[4..12].copy_from_slice(&self.at.to_be_bytes());
        p[12..].copy_from_slice(&self.limit.to_be_bytes());
        p
    }

    pub fn decode(payload: &[u8]) -> Option<Accept> {
        if payload.len() != Accept::LEN {
            return None;
        }
        let (id, rest) = id_and_rest(payload)?;
        let (at, rest) = u64_at(rest)?;
        let (limit, _) = u64_at(rest)?;
        Some(Accept { id, at, limit })
    }
}

/// CREDIT: stream id and the new limit (u64).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credit {
    pub id: u32,
    pub limit: u64,
}

impl Credit {
    pub const LEN: usize = ID_LEN + 8;

    pub fn encode(&self) -> [u8; Credit::LEN] {
        let mut p = [0u8; Credit::LEN];
        p[..4].copy_from_slice(&self.id.to_be_bytes());
        p[4..].copy_from_slice(&self.limit.to_be_bytes());
        p
    }

    pub fn decode(payload: &[u8]) -> Option<Credit> {
        if payload.len() != Credit::LEN {
            return None;
        }
        let (id, rest) = id_and_rest(payload)?;
        let (limit, _) = u64_at(rest)?;
        Some(Credit { id, limit })
    }
}

/// CHUNK: stream id, then bytes. Its offset is implicit: the first CHUNK
/// of a stream on a connection sits at the ACCEPT's offset on that
/// connection, and each follows the one before.
pub fn chunk_header(id: u32) -> [u8; ID_LEN] {
    id.to_be_bytes()
}

/// The stream id and bytes of a CHUNK; None when it has no id.
pub fn decode_chunk(payload: &[u8]) -> Option<(u32, &[u8])> {
    id_and_rest(payload)
}

/// FIN: stream id and the SHA-256 of the whole file.
pub fn encode_fin(id: u32, digest: &[u8; DIGEST_LEN]) -> [u8; ID_LEN + DIGEST_LEN] {
    let mut p = [0u8; ID_LEN + DIGEST_LEN];
    p[..4].copy_from_slice(&id.to_be_bytes());
    p[4..].copy_from_slice(digest);
    p
}

pub fn decode_fin(payload: &[u8]) -> Option<(u32, [u8; DIGEST_LEN])> {
    let (id, rest) = id_and_rest(payload)?;
    let digest = <[u8; DIGEST_LEN]>::try_from(rest).ok()?;
    Some((id, digest))
}

/// How a file stream ended, as CLOSE says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseCode {
    /// The receiver verified and saved it (receiver to sender only).
    Saved = 0,
    /// The receiver does not want it (receiver to sender only).
    Rejected = 1,
    /// Its user stopped it (either way).
    Cancelled = 2,
    /// It could not go on: a disk full, a file that changed, a digest that
    /// does not match (either way).
    Failed = 3,
}

/// CLOSE: stream id, a code, and a reason in words (UTF-8, at most
/// [`MAX_REASON`] bytes; shown with control characters replaced).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Close<'a> {
    pub id: u32,
    pub code: CloseCode,
    pub why: &'a [u8],
}

impl<'a> Close<'a> {
    pub fn encode(&self) -> Vec<u8> {
        let mut why = self.why;
        if why.len() > MAX_REASON {
            // Cut at a character boundary, so it stays UTF-8.
            let mut end = MAX_REASON;
            while end > 0 && (why[end] & 0xc0) == 0x80 {
                end -= 1;
            }
            why = &why[..end];
        }
        let mut p = Vec::with_capacity(ID_LEN + 1 + why.len());
        p.extend_from_slice(&self.id.to_be_bytes());
        p.push(self.code as u8);
        p.extend_from_slice(why);
        p
    }

    /// None when it is short, its code is unknown or its reason too long.
    pub fn decode(payload: &'a [u8]) -> Option<Close<'a>> {
        let (id, rest) = id_and_rest(payload)?;
        let (&code, why) = rest.split_first()?;
        let code = match code {
            0 => CloseCode::Saved,
            1 => CloseCode::Rejected,
            2 => CloseCode::Cancelled,
            3 => CloseCode::Failed,
            _ => return None,
        };
        if why.len() > MAX_REASON {
            return None;
        }
        Some(Close { id, code, why })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_payload_round_trips_and_a_short_or_long_one_is_refused() {
        let o = Offer {
            id: 2,
            size: 5,
            name: b"a.txt",
        };
        let b = o.encode();
        assert_eq!(b, b"\0\0\0\x02\0\0\0\0\0\0\0\x05a.txt");
        assert_eq!(Offer::decode(&b), Some(o));
        assert_eq!(Offer::decode(&b[..12]), None, "no name");
        let long = [b'x'; MAX_NAME + 1];
        let mut p = b[..12].to_vec();
        p.extend_from_slice(&long);
        assert_eq!(Offer::decode(&p), None);

        let a = Accept {
            id: 3,
            at: 7,
            limit: 9,
        };
        assert_eq!(Accept::decode(&a.encode()), Some(a));
        assert_eq!(Accept::decode(&a.encode()[..19]), None);
        let c = Credit { id: 3, limit: 1 };
        assert_eq!(Credit::decode(&c.encode()), Some(c));
        assert_eq!(Credit::decode(&[0; 13]), None);

        let mut ch = chunk_header(4).to_vec();
        ch.extend_from_slice(b"data");
        assert_eq!(decode_chunk(&ch), Some((4, &b"data"[..])));
        assert_eq!(decode_chunk(&[0, 0, 1]), None);

        let f = encode_fin(6, &[7; 32]);
        assert_eq!(decode_fin(&f), Some((6, [7; 32])));
        assert_eq!(decode_fin(&f[..35]), None);

        let cl = Close {
            id: 9,
            code: CloseCode::Failed,
            why: b"no space left on device",
        };
        assert_eq!(Close::decode(&cl.encode()), Some(cl));
        assert_eq!(Close::decode(&[0, 0, 0, 9, 4]), None, "unknown code");
        assert_eq!(Close::decode(&[0, 0, 0, 9]), None);
    }

    #[test]
    fn a_long_reason_is_cut_at_a_character_boundary() {
        let why = "é".repeat(150); // 300 bytes
        let cl = Close {
            id: 1,
            code: CloseCode::Cancelled,
            why: why.as_bytes(),
        };
        let b = cl.encode();
        let back = Close::decode(&b).expect("fits");
        assert!(back.why.len() <= MAX_REASON);
        assert!(std::str::from_utf8(back.why).is_ok());
    }
}
