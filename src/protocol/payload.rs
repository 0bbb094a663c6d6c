//! The payloads of the HELLO and RESUME records (PROTOCOL.md §4 and §8):
//! what each end says about itself once the keys are confirmed, and where
//! a resumed connection picks the streams up. Pure encodings, with the
//! room's policy (who agrees to what) left to the session.

use std::time::Duration;

/// HELLO: our name, and after a NUL (names never hold one) the resume
/// offer: version 1, the grace period in seconds (u16, big-endian), then a
/// flags byte. Older peers ignore what follows the grace period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello<'a> {
    pub name: &'a [u8],
    /// The resume offer, if any.
    pub resume: Option<ResumeOffer>,
}

/// What a HELLO offers for resume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResumeOffer {
    pub grace: Duration,
    /// [`OFFER_RELAY_TOKEN`] and bits to come; 0 from versions that send
    /// no flags byte.
    pub flags: u8,
}

/// HELLO's resume flags, bit 0: we come back to a relay with
/// `transit::resume_token` (a peer that does not set it is met with the
/// room's token, as before).
pub const OFFER_RELAY_TOKEN: u8 = 1;

impl<'a> Hello<'a> {
    /// Our HELLO, offering resume with `grace` (clamped to 1..=65535 s).
    pub fn encode(name: &str, grace: Option<Duration>) -> Vec<u8> {
        let mut hello = name.as_bytes().to_vec();
        if let Some(grace) = grace {
            let secs = grace.as_secs().clamp(1, u64::from(u16::MAX)) as u16;
            hello.push(0);
            hello.push(1);
            hello.extend_from_slice(&secs.to_be_bytes());
            hello.push(OFFER_RELAY_TOKEN);
        }
        hello
    }

    /// The peer's HELLO. Never fails: an offer of an unknown version, or
    /// none, is no offer.
    pub fn decode(payload: &'a [u8]) -> Hello<'a> {
        let (name, offer) = match payload.iter().position(|&b| b == 0) {
            Some(i) => (&payload[..i], &payload[i + 1..]),
            None => (payload, &[][..]),
        };
        let resume = match offer {
            [1, hi, lo, rest @ ..] => Some(ResumeOffer {
                grace: Duration::from_secs(u64::from(u16::from_be_bytes([*hi, *lo]))),
                flags: rest.first().copied().unwrap_or(0),
            }),
            _ => None,
        };
        Hello { name, resume }
    }
}

/// RESUME: where the sender's delivery of the other's stream stopped
/// (u64, big-endian), then flags about both ends of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resume {
    /// Bytes of the peer's stream we accepted: it resends from there.
    pub at: u64,
    /// The peer's EOF arrived.
    pub peer_eof: bool,
    /// The peer's DONE arrived: our EOF is confirmed.
    pub our_eof_confirmed: bool,
    /// The peer's BYE arrived.
    pub peer_bye: bool,
}

/// The size of a RESUME payload.
pub const RESUME_LEN: usize = 9;

impl Resume {
    pub fn encode(&self) -> [u8; RESUME_LEN] {
        let mut r = [0u8; RESUME_LEN];
        r[..8].copy_from_slice(&self.at.to_be_bytes());
        r[8] = u8::from(self.peer_eof)
            | (u8::from(self.our_eof_confirmed) << 1)
            | (u8::from(self.peer_bye) << 2);
        r
    }

    /// The peer's RESUME, or None if it is not [`RESUME_LEN`] bytes.
    /// Unknown flag bits are ignored.
    pub fn decode(payload: &[u8]) -> Option<Resume> {
        let r = <[u8; RESUME_LEN]>::try_from(payload).ok()?;
        let mut n = [0u8; 8];
        n.copy_from_slice(&r[..8]);
        Some(Resume {
            at: u64::from_be_bytes(n),
            peer_eof: r[8] & 1 != 0,
            our_eof_confirmed: r[8] & 2 != 0,
            peer_bye: r[8] & 4 != 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hello_carries_the_name_and_the_resume_offer() {
        let ours = Hello::encode("alice", Some(Duration::from_secs(60)));
        assert_eq!(ours, b"alice\0\x01\x00\x3c\x01");
        let h = Hello::decode(&ours);
        assert_eq!(h.name, b"alice");
        assert_eq!(
            h.resume,
            Some(ResumeOffer {
                grace: Duration::from_secs(60),
                flags: OFFER_RELAY_TOKEN
            })
        );
        assert_eq!(Hello::decode(&Hello::encode("bob", None)).resume, None);
        // The grace period is clamped to what a u16 of seconds holds.
        let long = Hello::encode("x", Some(Duration::from_secs(1 << 20)));
        assert_eq!(
            Hello::decode(&long).resume.map(|o| o.grace.as_secs()),
            Some(65535)
        );
    }

    #[test]
    fn a_resume_offer_without_flags_is_an_older_peers_and_meets_at_the_room() {
        let offer = |tail: &[u8]| {
            let mut p = b"n\0".to_vec();
            p.extend_from_slice(tail);
            Hello::decode(&p)
                .resume
                .map(|o| (o.grace.as_secs(), o.flags))
        };
        assert_eq!(offer(&[1, 0, 60]), Some((60, 0)));
        assert_eq!(offer(&[1, 0, 60, OFFER_RELAY_TOKEN]), Some((60, 1)));
        // Unknown bits and bytes after the flags are the caller's to ignore.
        assert_eq!(offer(&[1, 0, 60, 0xff, 9, 9]), Some((60, 0xff)));
        assert_eq!(offer(&[2, 0, 60, 1]), None, "an unknown version");
        assert_eq!(offer(&[]), None);
        assert_eq!(Hello::decode(b"no offer").resume, None);
    }

    #[test]
    fn a_resume_round_trips_and_only_nine_bytes_are_one() {
        let r = Resume {
            at: 0x0102_0304_0506_0708,
            peer_eof: true,
            our_eof_confirmed: false,
            peer_bye: true,
        };
        let bytes = r.encode();
        assert_eq!(bytes, [1, 2, 3, 4, 5, 6, 7, 8, 0b101]);
        assert_eq!(Resume::decode(&bytes), Some(r));
        assert_eq!(Resume::decode(&bytes[..8]), None);
        assert_eq!(Resume::decode(&[0; 10]), None);
        let mut odd = bytes;
        odd[8] = 0xf8;
        let d = Resume::decode(&odd).expect("nine bytes");
        assert!(!d.peer_eof && !d.our_eof_confirmed && !d.peer_bye);
    }
}
