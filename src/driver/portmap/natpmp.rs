//! NAT-PMP (RFC 6886) and PCP (RFC 6887), sans IO: the messages, and a
//! client that asks the gateway for the public address and one TCP
//! mapping, renews it at half its lifetime and deletes it.
//!
//! It asks with NAT-PMP, which both old NAT-PMP routers and most PCP
//! routers answer; a router that speaks only PCP answers a NAT-PMP
//! request with "unsupported version" (RFC 6887 section 9), and then the
//! client asks again with a PCP MAP request. A PCP mapping is renewed and
//! deleted with PCP and the same nonce: a NAT-PMP delete does not remove
//! it. It takes datagrams and the time, and gives
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

const PCP_VERSION: u8 = 2;
const PCP_MAP: u8 = 1;
/// IANA's number for TCP, as PCP names the protocol.
const TCP: u8 = 6;

/// A PCP MAP request (60 bytes) for TCP `internal` from our address
/// `client`, suggesting `external` (0: any) on any IPv4 address, for
/// `lifetime` seconds (0 deletes the mapping of this `nonce`).
pub fn pcp_map_request(
    nonce: &[u8; 12],
    client: Ipv4Addr,
    internal: u16,
    external: u16,
    lifetime: u32,
) -> [u8; 60] {
    let mut m = [0u8; 60];
    m[0] = PCP_VERSION;
    m[1] = PCP_MAP;
    m[4..8].copy_from_slice(&lifetime.to_be_bytes());
    m[8..24].copy_from_slice(&client.to_ipv6_mapped().octets());
    m[24..36].copy_from_slice(nonce);
    m[36] = TCP;
    m[40..42].copy_from_slice(&internal.to_be_bytes());
    m[42..44].copy_from_slice(&external.to_be_bytes());
    // ::ffff:0.0.0.0: an IPv4 address, no preference which.
    m[44..60].copy_from_slice(&Ipv4Addr::UNSPECIFIED.to_ipv6_mapped().octets());
    m
}

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
    /// A PCP MAP response.
    PcpMap {
        result: u8,
        lifetime: u32,
        nonce: [u8; 12],
        internal: u16,
        external: u16,
        ip: Ipv4Addr,
    },
    /// Any other PCP response: a PCP router's answer to a NAT-PMP request
    /// ("unsupported version").
    Pcp {
        result: u8,
    },
}

/// A PCP response (version 2, the R bit set).
fn parse_pcp(d: &[u8]) -> Option<Response> {
    if d.len() < 24 || d[1] & 0x80 == 0 {
        return None;
    }
    let result = d[3];
    if d[1] & 0x7f != PCP_MAP || d.len() < 60 {
        return Some(Response::Pcp { result });
    }
    let be16 = |i: usize| u16::from_be_bytes([d[i], d[i + 1]]);
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(&d[24..36]);
    let mut ip6 = [0u8; 16];
    ip6.copy_from_slice(&d[44..60]);
    let ip = std::net::Ipv6Addr::from(ip6)
        .to_ipv4_mapped()
        .unwrap_or(Ipv4Addr::UNSPECIFIED);
    (d[36] == TCP).then_some(Response::PcpMap {
        result,
        lifetime: u32::from_be_bytes([d[4], d[5], d[6], d[7]]),
        nonce,
        internal: be16(40),
        external: be16(42),
        ip,
    })
}

/// Parses a datagram from the gateway; None for anything that is not a
/// NAT-PMP answer we asked about (ignored, as the RFC says).
pub fn parse(d: &[u8]) -> Option<Response> {
    let (&version, &op) = (d.first()?, d.get(1)?);
    if version == PCP_VERSION {
        return parse_pcp(d);
    }
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

/// What a PCP result code means (RFC 6887 section 7.4).
pub fn pcp_result_text(code: u8) -> String {
    match code {
        1 => "it does not speak this PCP version".into(),
        2 => "it refused (mapping is switched off or not allowed)".into(),
        7 => "it is not connected to the Internet".into(),
        8 | 10 => "it has no ports left".into(),
        11 => "it cannot give the external address or port".into(),
        12 => "it sees us at another address (a second NAT in between)".into(),
        n => format!("PCP result code {n}"),
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
        /// "NAT-PMP" or "PCP".
        how: &'static str,
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
    /// Asking with PCP (the router answered that it speaks only that).
    pcp: bool,
    /// PCP: our address as the router sees it, and the mapping's nonce.
    client: Ipv4Addr,
    nonce: [u8; 12],
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
    /// A client for TCP port `internal` at our address `client`, asking
    /// for `lease`; `nonce` (random) names a PCP mapping. It sends its
    /// first request at once.
    pub fn new(
        internal: u16,
        lease: Duration,
        client: Ipv4Addr,
        nonce: [u8; 12],
        now: Instant,
    ) -> Client {
        Client {
            internal,
            pcp: false,
            client,
            nonce,
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
        if self.pcp {
            let lifetime = match self.step {
                Step::Map | Step::Mapped => self.lease,
                Step::Delete => 0,
                Step::Address | Step::Failed | Step::Done => {
                    self.send_at = None;
                    return None;
                }
            };
            self.asked_map = true;
            let external = if lifetime == 0 { 0 } else { self.external };
            return Some(
                pcp_map_request(&self.nonce, self.client, self.internal, external, lifetime)
                    .to_vec(),
            );
        }
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
        let response = parse(d)?;
        if self.pcp {
            return self.on_pcp(response, now);
        }
        match (self.step, response) {
            // A router that speaks only PCP: ask it with PCP.
            (Step::Address | Step::Map, Response::Pcp { .. } | Response::PcpMap { .. })
            | (Step::Address, Response::Address { result: 1, .. })
            | (Step::Map, Response::Map { result: 1, .. }) => {
                self.pcp = true;
                self.request(Step::Map, now);
                None
            }
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
                Some(self.granted(self.ip, external, lifetime, "NAT-PMP", now))
            }
            (Step::Delete, Response::Map { internal, .. }) if internal == self.internal => {
                self.step = Step::Done;
                self.send_at = None;
                Some(News::Done)
            }
            _ => None,
        }
    }

    /// The router granted (or renewed) the mapping of `external` on `ip`
    /// for `lifetime` seconds, by `how`: renew at half of it.
    fn granted(
        &mut self,
        ip: std::net::Ipv4Addr,
        external: u16,
        lifetime: u32,
        how: &'static str,
        now: Instant,
    ) -> News {
        let first = self.step == Step::Map;
        let lifetime = Duration::from_secs(lifetime.into());
        self.step = Step::Mapped;
        self.ip = ip;
        self.external = external;
        self.send_at = None;
        self.renew_at = Some(now + lifetime / 2);
        self.expires = Some(now + lifetime);
        if first {
            News::Mapped {
                ip,
                port: external,
                lifetime,
                how,
            }
        } else {
            News::Renewed { lifetime }
        }
    }

    /// A datagram while asking with PCP: only answers with our nonce and
    /// port count.
    fn on_pcp(&mut self, response: Response, now: Instant) -> Option<News> {
        let Response::PcpMap {
            result,
            lifetime,
            nonce,
            internal,
            external,
            ip,
        } = response
        else {
            return None;
        };
        if nonce != self.nonce || internal != self.internal {
            return None;
        }
        match self.step {
            Step::Map if result != 0 => {
                self.step = Step::Failed;
                self.send_at = None;
                Some(News::Failed {
                    refusal: Some(pcp_result_text(result)),
                })
            }
            Step::Map | Step::Mapped if result == 0 && lifetime > 0 => {
                Some(self.granted(ip, external, lifetime, "PCP", now))
            }
            Step::Delete => {
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

    const NONCE: [u8; 12] = [7; 12];
    const HOME: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 2);

    fn client(now: Instant) -> Client {
        Client::new(4000, Duration::from_secs(60), HOME, NONCE, now)
    }

    fn pcp_answer(result: u8, nonce: [u8; 12], external: u16, lifetime: u32) -> Vec<u8> {
        let mut d = vec![2, 0x81, 0, result];
        d.extend_from_slice(&lifetime.to_be_bytes());
        d.extend_from_slice(&[0; 16]); // epoch, reserved
        d.extend_from_slice(&nonce);
        d.extend_from_slice(&[6, 0, 0, 0]);
        d.extend_from_slice(&4000u16.to_be_bytes());
        d.extend_from_slice(&external.to_be_bytes());
        d.extend_from_slice(&Ipv4Addr::new(203, 0, 113, 1).to_ipv6_mapped().octets());
        d
    }

    #[test]
    fn a_pcp_only_router_is_asked_with_pcp_and_the_mapping_deleted_by_its_nonce() {
        let t0 = Instant::now();
        let mut c = client(t0);
        assert_eq!(c.transmit(t0), Some(vec![0, 0]));
        // RFC 6887 section 9: a PCP-only server's UNSUPP_VERSION.
        let mut unsupported = vec![2, 0x80, 0, 1];
        unsupported.extend_from_slice(&[0; 20]);
        assert_eq!(c.on_datagram(&unsupported, t0), None);
        let request = c.transmit(t0).expect("a PCP request");
        assert_eq!(request, pcp_map_request(&NONCE, HOME, 4000, 4000, 60));
        assert_eq!(request.len(), 60);
        assert_eq!(&request[..2], &[2, 1]);
        assert_eq!(&request[8..24], &HOME.to_ipv6_mapped().octets());
        // Another client's mapping (another nonce) is not ours.
        assert_eq!(c.on_datagram(&pcp_answer(0, [9; 12], 4000, 60), t0), None);
        assert_eq!(
            c.on_datagram(&pcp_answer(0, NONCE, 4000, 30), t0),
            Some(News::Mapped {
                ip: Ipv4Addr::new(203, 0, 113, 1),
                port: 4000,
                lifetime: Duration::from_secs(30),
                how: "PCP",
            })
        );
        let t1 = t0 + Duration::from_secs(15);
        c.on_timeout(t1);
        assert_eq!(
            c.transmit(t1),
            Some(pcp_map_request(&NONCE, HOME, 4000, 4000, 60).to_vec())
        );
        assert_eq!(
            c.on_datagram(&pcp_answer(0, NONCE, 4000, 30), t1),
            Some(News::Renewed {
                lifetime: Duration::from_secs(30)
            })
        );
        // Deleted with PCP and the same nonce, not with NAT-PMP.
        assert!(c.delete(t1));
        assert_eq!(
            c.transmit(t1),
            Some(pcp_map_request(&NONCE, HOME, 4000, 0, 0).to_vec())
        );
        assert_eq!(
            c.on_datagram(&pcp_answer(0, NONCE, 0, 0), t1),
            Some(News::Done)
        );
        // A PCP refusal is said in PCP's words.
        let mut c = client(t0);
        c.transmit(t0);
        c.on_datagram(&unsupported, t0);
        c.transmit(t0);
        assert_eq!(
            c.on_datagram(&pcp_answer(2, NONCE, 0, 0), t0),
            Some(News::Failed {
                refusal: Some(pcp_result_text(2))
            })
        );
    }

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
        let mut c = client(t0);
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
                lifetime: Duration::from_secs(20),
                how: "NAT-PMP",
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
        let mut c = client(t0);
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
        let mut c = client(t0);
        c.transmit(t0);
        c.on_datagram(&address_answer([203, 0, 113, 1]), t0);
        c.transmit(t0);
        assert_eq!(
            c.on_datagram(&map_answer(2, 4000, 0, 0), t0),
            Some(News::Failed {
                refusal: Some(result_text(2))
            })
        );
        let mut c = client(t0);
        c.transmit(t0);
        c.on_datagram(&address_answer([203, 0, 113, 1]), t0);
        c.transmit(t0);
        // Leaving before the answer: the router may hold the mapping.
        assert!(c.delete(t0));
    }
}
