//! NAT-PMP (RFC 6886), sans IO: the messages, and a client that asks the
//! gateway for the public address and one TCP mapping, renews it at half
//! its lifetime and deletes it. It takes datagrams and the time, and gives
//! datagrams to send, news and its next deadline; the caller owns the
//! socket (UDP to the gateway's port 5351) and the clock.
//!
//! Written here rather than taken from the `natpmp` crate: that crate owns
//! its socket and reads the system's gateway itself, while this one must
//! run inside the program's one mio loop and must be testable with made-up
//! datagrams. The wire format is twelve bytes each way.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

/// The gateway's NAT-PMP (and PCP) port.
pub const SERVER_PORT: u16 = 5351;

/// The first retransmission waits this long, each next one twice as long
/// (RFC 6886 3.1).
const FIRST_WAIT: Duration = Duration::from_millis(250);
/// A request with no answer within this is given up: no router speaks
/// NAT-PMP here (the RFC's full 64 s is too long for a person waiting,
/// and UPnP is still to be asked).
const GIVE_UP: Duration = Duration::from_millis(1750);
/// A delete at the end is given up sooner: the program is leaving.
const GIVE_UP_DELETE: Duration = Duration::from_millis(1750);

const OP_ADDRESS: u8 = 0;
const OP_MAP_TCP: u8 = 2;
const RESPONSE: u8 = 128;

/// `[0, 0]`: what is your public address?
pub fn address_request() -> [u8; 2] {
    [0, OP_ADDRESS]
}

/// Map TCP `internal` to `external` (a suggestion; 0 for any) for
/// `lifetime` seconds; a lifetime of 0 with external 0 deletes.
pub fn map_request(internal: u16, external: u16, lifetime: u32) -> [u8; 12] {
    let mut m = [0u8; 12];
    m[1] = OP_MAP_TCP;
    m[4..6].copy_from_slice(&internal.to_be_bytes());
    m[6..8].copy_from_slice(&external.to_be_bytes());
    m[8..12].copy_from_slice(&lifetime.to_be_bytes());
    m
}

/// A gateway's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    Address {
        result: u16,
        ip: Ipv4Addr,
    },
    Map {
        result: u16,
        internal: u16,
        external: u16,
        lifetime: u32,
    },
}

/// Parses a datagram from the gateway; None for anything that is not a
/// NAT-PMP answer we asked about (ignored, as the RFC says).
pub fn parse(d: &[u8]) -> Option<Response> {
    let (&version, &op) = (d.first()?, d.get(1)?);
    if version != 0 {
        return None;
    }
    let u16_at = |i: usize| d.get(i..i + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    let u32_at = |i: usize| {
        d.get(i..i + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let result = u16_at(2)?;
    match op {
        o if o == RESPONSE + OP_ADDRESS => {
            // A failed answer may be short (RFC 6886 3.5); the address
            // matters only on success.
            let ip = u32_at(8).map_or(Ipv4Addr::UNSPECIFIED, Ipv4Addr::from);
            if result == 0 && d.len() < 12 {
                return None;
            }
            Some(Response::Address { result, ip })
        }
        o if o == RESPONSE + OP_MAP_TCP => Some(Response::Map {
            result,
            internal: u16_at(8).unwrap_or(0),
            external: u16_at(10).unwrap_or(0),
            lifetime: u32_at(12).unwrap_or(0),
        })
        .filter(|_| result != 0 || d.len() >= 16),
        _ => None,
    }
}

/// What a result code means, for the one line the user sees.
pub fn result_text(code: u16) -> String {
    match code {
        1 => "it does not speak this NAT-PMP version".into(),
        2 => "it refused (mapping is switched off or not allowed)".into(),
        3 => "it is not connected to the Internet".into(),
        4 => "it has no ports left".into(),
        5 => "it does not know the request".into(),
        n => format!("result code {n}"),
    }
}

/// News for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum News {
    /// The port is mapped: reachable at `ip:port` for `lifetime`.
    Mapped {
        ip: Ipv4Addr,
        port: u16,
        lifetime: Duration,
    },
    /// The mapping was renewed.
    Renewed { lifetime: Duration },
    /// No mapping: no answer (`None`) or the gateway's refusal.
    Failed { refusal: Option<String> },
    /// A renewal went unanswered: the mapping lapses when its lease ends.
    Lapsing,
    /// The delete was acknowledged, or given up; nothing more to do.
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Address,
    Map,
    Mapped,
    Delete,
    Failed,
    Done,
}

/// One mapping of one TCP port, from the first request to its delete.
#[derive(Debug)]
pub struct Client {
    internal: u16,
    /// The lifetime asked for.
    lease: u32,
    step: Step,
    ip: Ipv4Addr,
    /// The external port asked for, then the one granted.
    external: u16,
    /// The current request: first sent at, next send at, next wait.
    started: Instant,
    send_at: Option<Instant>,
    wait: Duration,
    /// When to renew, once mapped.
    renew_at: Option<Instant>,
    /// The mapping's end at the gateway.
    expires: Option<Instant>,
    /// A map request went out: the gateway may hold a mapping to delete.
    asked_map: bool,
}

impl Client {
    /// A client for TCP port `internal`, asking for `lease`; it sends its
    /// first request at once.
    pub fn new(internal: u16, lease: Duration, now: Instant) -> Client {
        Client {
            internal,
            lease: u32::try_from(lease.as_secs()).unwrap_or(u32::MAX).max(1),
            step: Step::Address,
            ip: Ipv4Addr::UNSPECIFIED,
            // The same port outside as inside, if the router can.
            external: internal,
            started: now,
            send_at: Some(now),
            wait: FIRST_WAIT,
            renew_at: None,
            expires: None,
            asked_map: false,
        }
    }

    fn request(&mut self, step: Step, now: Instant) {
        self.step = step;
        self.started = now;
        self.send_at = Some(now);
        self.wait = FIRST_WAIT;
    }

    /// The datagram due at `now`, if any (then the next is scheduled).
    pub fn transmit(&mut self, now: Instant) -> Option<Vec<u8>> {
        let due = self.send_at.is_some_and(|t| now >= t);
        if !due {
            return None;
        }
        self.send_at = Some(now + self.wait);
        self.wait *= 2;
        Some(match self.step {
            Step::Address => address_request().to_vec(),
            Step::Map | Step::Mapped => {
                self.asked_map = true;
                map_request(self.internal, self.external, self.lease).to_vec()
            }
            Step::Delete => map_request(self.internal, 0, 0).to_vec(),
            Step::Failed | Step::Done => {
                self.send_at = None;
                return None;
            }
        })
    }

    /// When [`Client::on_timeout`] or [`Client::transmit`] next has work.
    pub fn deadline(&self) -> Option<Instant> {
        let give_up = match self.step {
            Step::Address | Step::Map => Some(self.started + GIVE_UP),
            Step::Delete => Some(self.started + GIVE_UP_DELETE),
            Step::Mapped if self.send_at.is_some() => self.expires,
            _ => None,
        };
        [self.send_at, give_up, self.renew_at]
            .into_iter()
            .flatten()
            .min()
    }

    /// Time passes: renewals fall due and unanswered requests are given up.
    pub fn on_timeout(&mut self, now: Instant) -> Option<News> {
        match self.step {
            Step::Address | Step::Map if now >= self.started + GIVE_UP => {
                self.step = Step::Failed;
                self.send_at = None;
                Some(News::Failed { refusal: None })
            }
            Step::Delete if now >= self.started + GIVE_UP_DELETE => {
                self.step = Step::Done;
                self.send_at = None;
                Some(News::Done)
            }
            Step::Mapped => {
                if self.renew_at.is_some_and(|t| now >= t) {
                    self.renew_at = None;
                    self.started = now;
                    self.send_at = Some(now);
                    self.wait = FIRST_WAIT;
                }
                if self.send_at.is_some() && self.expires.is_some_and(|t| now >= t) {
                    self.send_at = None;
                    self.expires = None;
                    return Some(News::Lapsing);
                }
                None
            }
            _ => None,
        }
    }

    /// A datagram from the gateway.
    pub fn on_datagram(&mut self, d: &[u8], now: Instant) -> Option<News> {
        match (self.step, parse(d)?) {
            (Step::Address, Response::Address { result: 0, ip }) => {
                self.ip = ip;
                self.request(Step::Map, now);
                None
            }
            (Step::Address, Response::Address { result, .. })
            | (Step::Map, Response::Map { result, .. })
                if result != 0 =>
            {
                self.step = Step::Failed;
                self.send_at = None;
                Some(News::Failed {
                    refusal: Some(result_text(result)),
                })
            }
            (
                Step::Map | Step::Mapped,
                Response::Map {
                    result: 0,
                    internal,
                    external,
                    lifetime,
                },
            ) if internal == self.internal && lifetime > 0 => {
                let first = self.step == Step::Map;
                let lifetime = Duration::from_secs(lifetime.into());
                self.step = Step::Mapped;
                self.external = external;
                self.send_at = None;
                self.renew_at = Some(now + lifetime / 2);
                self.expires = Some(now + lifetime);
                Some(if first {
                    News::Mapped {
                        ip: self.ip,
                        port: external,
                        lifetime,
                    }
                } else {
                    News::Renewed { lifetime }
                })
            }
            (Step::Delete, Response::Map { internal, .. }) if internal == self.internal => {
                self.step = Step::Done;
                self.send_at = None;
                Some(News::Done)
            }
            _ => None,
        }
    }

    /// Nobody speaks NAT-PMP at the gateway (its port is closed): the
    /// request is given up now. News only while still asking.
    pub fn give_up(&mut self) -> Option<News> {
        if !self.pending() {
            return None;
        }
        self.step = Step::Failed;
        self.send_at = None;
        Some(News::Failed { refusal: None })
    }

    /// The program is leaving: delete the mapping (if one may exist).
    /// Returns false when there is nothing to delete.
    pub fn delete(&mut self, now: Instant) -> bool {
        if !self.asked_map || matches!(self.step, Step::Done | Step::Delete) {
            self.step = Step::Done;
            return false;
        }
        self.renew_at = None;
        self.expires = None;
        self.request(Step::Delete, now);
        true
    }

    /// Waiting for the gateway's first answers.
    pub fn pending(&self) -> bool {
        matches!(self.step, Step::Address | Step::Map)
    }

    pub fn done(&self) -> bool {
        matches!(self.step, Step::Done | Step::Failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address_answer(ip: [u8; 4]) -> Vec<u8> {
        let mut d = vec![0, 128, 0, 0, 0, 0, 0, 9];
        d.extend_from_slice(&ip);
        d
    }

    fn map_answer(result: u16, internal: u16, external: u16, lifetime: u32) -> Vec<u8> {
        let mut d = vec![0, 130];
        d.extend_from_slice(&result.to_be_bytes());
        d.extend_from_slice(&[0, 0, 0, 9]);
        d.extend_from_slice(&internal.to_be_bytes());
        d.extend_from_slice(&external.to_be_bytes());
        d.extend_from_slice(&lifetime.to_be_bytes());
        d
    }

    #[test]
    fn the_requests_are_rfc_6886s_bytes() {
        assert_eq!(address_request(), [0, 0]);
        assert_eq!(
            map_request(51423, 51423, 7200),
            [0, 2, 0, 0, 0xc8, 0xdf, 0xc8, 0xdf, 0, 0, 0x1c, 0x20]
        );
        assert_eq!(map_request(51423, 0, 0)[6..], [0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn answers_parse_and_garbage_is_ignored() {
        assert_eq!(
            parse(&address_answer([203, 0, 113, 1])),
            Some(Response::Address {
                result: 0,
                ip: Ipv4Addr::new(203, 0, 113, 1)
            })
        );
        assert_eq!(
            parse(&map_answer(0, 5, 6, 7)),
            Some(Response::Map {
                result: 0,
                internal: 5,
                external: 6,
                lifetime: 7
            })
        );
        // A refusal may be cut short; a success may not.
        assert!(matches!(
            parse(&[0, 130, 0, 2]),
            Some(Response::Map { result: 2, .. })
        ));
        for junk in [
            &[][..],
            &[0],
            &[0, 130, 0, 0, 1],
            &[0, 128, 0, 0, 0, 0, 0, 0, 1],
            &[2, 129, 0, 0],
            &[0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        ] {
            assert_eq!(parse(junk), None, "{junk:?}");
        }
    }

    #[test]
    fn a_mapping_is_made_renewed_at_half_its_lifetime_and_deleted() {
        let t0 = Instant::now();
        let mut c = Client::new(4000, Duration::from_secs(60), t0);
        assert_eq!(c.transmit(t0), Some(vec![0, 0]));
        assert_eq!(c.transmit(t0), None);
        assert_eq!(c.on_datagram(&address_answer([203, 0, 113, 1]), t0), None);
        assert_eq!(c.transmit(t0), Some(map_request(4000, 4000, 60).to_vec()));
        // An answer about another port is not ours.
        assert_eq!(c.on_datagram(&map_answer(0, 4001, 9, 60), t0), None);
        assert_eq!(
            c.on_datagram(&map_answer(0, 4000, 51423, 20), t0),
            Some(News::Mapped {
                ip: Ipv4Addr::new(203, 0, 113, 1),
                port: 51423,
                lifetime: Duration::from_secs(20)
            })
        );
        // Renewed at half the granted lifetime, asking for the same port.
        assert_eq!(c.deadline(), Some(t0 + Duration::from_secs(10)));
        let t1 = t0 + Duration::from_secs(10);
        assert_eq!(c.on_timeout(t1), None);
        assert_eq!(c.transmit(t1), Some(map_request(4000, 51423, 60).to_vec()));
        assert_eq!(
            c.on_datagram(&map_answer(0, 4000, 51423, 20), t1),
            Some(News::Renewed {
                lifetime: Duration::from_secs(20)
            })
        );
        assert!(c.delete(t1));
        assert_eq!(c.transmit(t1), Some(map_request(4000, 0, 0).to_vec()));
        assert_eq!(
            c.on_datagram(&map_answer(0, 4000, 0, 0), t1),
            Some(News::Done)
        );
        assert!(c.done());
    }

    #[test]
    fn silence_is_given_up_within_two_seconds_after_backing_off() {
        let t0 = Instant::now();
        let mut c = Client::new(4000, Duration::from_secs(60), t0);
        let mut sent = Vec::new();
        let mut now = t0;
        let mut news = None;
        while news.is_none() {
            if c.transmit(now).is_some() {
                sent.push(now - t0);
            }
            now = c.deadline().expect("a deadline while asking");
            news = c.on_timeout(now);
        }
        assert_eq!(news, Some(News::Failed { refusal: None }));
        assert!(now - t0 <= Duration::from_secs(2));
        let ms: Vec<u128> = sent.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [0, 250, 750]);
        // Nothing was asked to map: nothing to delete.
        assert!(!c.delete(now));
    }

    #[test]
    fn a_refusal_is_said_and_a_started_request_is_still_deleted() {
        let t0 = Instant::now();
        let mut c = Client::new(4000, Duration::from_secs(60), t0);
        c.transmit(t0);
        c.on_datagram(&address_answer([203, 0, 113, 1]), t0);
        c.transmit(t0);
        assert_eq!(
            c.on_datagram(&map_answer(2, 4000, 0, 0), t0),
            Some(News::Failed {
                refusal: Some(result_text(2))
            })
        );
        let mut c = Client::new(4000, Duration::from_secs(60), t0);
        c.transmit(t0);
        c.on_datagram(&address_answer([203, 0, 113, 1]), t0);
        c.transmit(t0);
        // Leaving before the answer: the router may hold the mapping.
        assert!(c.delete(t0));
    }
}
