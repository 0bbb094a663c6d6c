//! `listen --map`: asks the default gateway to forward a public TCP port
//! to our listening port, keeps the lease alive and deletes the mapping
//! when the room ends, whichever way it ends.
//!
//! NAT-PMP (and PCP) runs inside the room's one loop: its UDP socket is
//! registered with the poll like any connection, and [`natpmp::Client`] is
//! a sans-IO state machine with deadlines, so nothing here ever waits on
//! its own during the room. UPnP-IGD, whose library blocks, runs on one
//! helper thread ([`upnp`]) that reports through the loop's waker. Only
//! the deletes at the very end wait, on the same poll, for at most 3 s
//! ([`PortMap::remove`]).

pub mod natpmp;
pub mod upnp;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use mio::{Interest, Registry, Token, Waker};

use super::config::MapConfig;
use super::user::{Notice, UserSide};
use super::Reactor;
use natpmp::News;
use upnp::{Report, Upnp};

/// The protocols a listener asks with, in order, as the "not mapped" line
/// names them.
pub const PROTOCOLS: &str = "NAT-PMP, PCP or UPnP";

/// How long the end of a room waits for the router to confirm a delete.
const REMOVE_WAIT: Duration = Duration::from_secs(3);

/// The mapping of one listening port.
pub struct PortMap {
    sock: UdpSocket,
    token: Token,
    client: natpmp::Client,
    readable: bool,
    /// Searching from the start; asked to map once NAT-PMP gave none.
    upnp: Option<Upnp>,
    /// NAT-PMP gave no mapping: None while it may, then the router's
    /// refusal, if it refused.
    natpmp_failed: Option<Option<String>>,
    /// No router answered UPnP's search.
    upnp_no_answer: bool,
    /// The "not mapped" line was said.
    said_not_mapped: bool,
    /// `--code`: the dial command carries it.
    dial_suffix: &'static str,
}

/// What asking needs from the loop.
pub struct Loop<'a> {
    pub registry: &'a Registry,
    pub token: Token,
    pub waker: Arc<Waker>,
}

/// Starts asking for a mapping of TCP `port`; None (after a line saying
/// why) when there is nobody to ask.
pub fn start(
    lp: Loop<'_>,
    port: u16,
    cfg: &MapConfig,
    dial_suffix: &'static str,
    ui: &mut dyn UserSide,
) -> Option<PortMap> {
    let Some(gateway) = crate::sys::net::default_gateway_v4() else {
        ui.notice(Notice::NotMapped {
            why: "no IPv4 default gateway is known here; not mapped",
        });
        return None;
    };
    let open = || -> std::io::Result<(UdpSocket, Ipv4Addr)> {
        let mut sock = UdpSocket::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)))?;
        sock.connect(SocketAddr::from((gateway, natpmp::SERVER_PORT)))?;
        let ours = match sock.local_addr()?.ip() {
            IpAddr::V4(ip) => ip,
            IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
        };
        lp.registry
            .register(&mut sock, lp.token, Interest::READABLE)?;
        Ok((sock, ours))
    };
    let (sock, ours) = match open() {
        Ok(s) => s,
        Err(e) => {
            let why = format!(
                "cannot ask the router {gateway}: {}; not mapped",
                crate::error::describe_io(&e)
            );
            ui.notice(Notice::NotMapped { why: &why });
            return None;
        }
    };
    let upnp = Upnp::start(SocketAddrV4::new(ours, port), cfg.lease, lp.waker);
    let no_upnp = upnp.is_none();
    let mut pm = PortMap {
        client: natpmp::Client::new(port, cfg.lease, ours, nonce(), Instant::now()),
        token: lp.token,
        readable: false,
        upnp,
        natpmp_failed: None,
        // No helper thread: nobody will answer UPnP.
        upnp_no_answer: no_upnp,
        said_not_mapped: false,
        dial_suffix,
        sock,
    };
    pm.send(Instant::now());
    Some(pm)
}

impl PortMap {
    /// The socket has datagrams (or an error) to read.
    pub fn set_readable(&mut self) {
        self.readable = true;
    }

    pub fn busy(&self) -> bool {
        self.readable
    }

    pub fn deadline(&self) -> Option<Instant> {
        self.client.deadline()
    }

    fn send(&mut self, now: Instant) {
        while let Some(d) = self.client.transmit(now) {
            // A lost request is retransmitted; a full buffer is the same.
            let _ = self.sock.send(&d);
        }
    }

    /// Reads the gateway's datagrams into the client. A closed port at the
    /// gateway (ICMP port unreachable) means no NAT-PMP there: given up at
    /// once rather than after the retransmissions.
    fn receive(&mut self, now: Instant) -> Vec<News> {
        let mut news = Vec::new();
        let mut buf = [0u8; 64];
        while self.readable {
            match self.sock.recv(&mut buf) {
                Ok(n) => news.extend(self.client.on_datagram(&buf[..n], now)),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                // Windows says "reset" for the same ICMP.
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::ConnectionReset
                    ) =>
                {
                    news.extend(self.client.give_up());
                }
                Err(_) => self.readable = false,
            }
        }
        news
    }

    /// One turn: read answers, let time pass, send what is due, and tell
    /// the user what happened.
    pub fn turn(&mut self, now: Instant, ui: &mut dyn UserSide) {
        let mut news = self.receive(now);
        if self.client.deadline().is_some_and(|t| now >= t) {
            news.extend(self.client.on_timeout(now));
        }
        self.send(now);
        for n in news {
            self.tell(n, ui);
        }
        let reports = self.upnp.as_mut().map(Upnp::reports).unwrap_or_default();
        for r in reports {
            self.report(r, ui);
        }
    }

    fn tell(&mut self, news: News, ui: &mut dyn UserSide) {
        match news {
            News::Mapped { ip, port, how, .. } => self.mapped(IpAddr::V4(ip), port, how, ui),
            News::Failed { refusal } => {
                // Then UPnP, on its helper thread.
                self.natpmp_failed = Some(refusal);
                if let Some(u) = &self.upnp {
                    u.map();
                }
                self.not_mapped(ui);
            }
            News::Lapsing => ui.notice(Notice::NotMapped {
                why: "the router stopped answering: the port mapping lapses",
            }),
            News::Renewed { .. } | News::Done => {}
        }
    }

    /// Says once that nobody mapped the port, when both NAT-PMP and
    /// UPnP's search have come to nothing.
    fn not_mapped(&mut self, ui: &mut dyn UserSide) {
        let Some(refusal) = &self.natpmp_failed else {
            return;
        };
        if !self.upnp_no_answer || self.said_not_mapped {
            return;
        }
        self.said_not_mapped = true;
        let why = match refusal {
            None => format!("no router answered {PROTOCOLS}; not mapped"),
            Some(text) => format!(
                "the router refused NAT-PMP ({text}) and no router answered UPnP; not mapped"
            ),
        };
        ui.notice(Notice::NotMapped { why: &why });
    }

    fn report(&mut self, report: Report, ui: &mut dyn UserSide) {
        let why = match report {
            Report::Mapped { ip, port } => return self.mapped(ip, port, "UPnP", ui),
            Report::NoAnswer => {
                self.upnp_no_answer = true;
                return self.not_mapped(ui);
            }
            Report::Refused(text) => {
                format!("the router refused the mapping (UPnP: {text}); not mapped")
            }
            Report::Lapsing => "the router did not renew the port mapping: it lapses".into(),
            Report::Done => return,
        };
        ui.notice(Notice::NotMapped { why: &why });
    }

    fn mapped(&self, ip: IpAddr, port: u16, how: &str, ui: &mut dyn UserSide) {
        let private = match ip {
            IpAddr::V4(v4) => behind_another_nat(v4),
            IpAddr::V6(_) => false,
        };
        if private {
            let why = format!(
                "the router's own public address {ip} is private or carrier-grade NAT \
                 (100.64.0.0/10): it is behind a second NAT, where a mapping cannot help; \
                 meet through a relay instead (--relay)"
            );
            ui.notice(Notice::NotMapped { why: &why });
        } else {
            let public = SocketAddr::new(ip, port);
            let command = format!("p2pchat dial {ip} {port}{}", self.dial_suffix);
            ui.notice(Notice::Mapped {
                public,
                how,
                command: &command,
            });
        }
    }

    /// Deletes the mapping, waiting on the poll for the router's answers
    /// for at most [`REMOVE_WAIT`]. Called on every way out of a room.
    pub fn remove(mut self, reactor: &mut Reactor) {
        let start = Instant::now();
        self.client.delete(start);
        self.send(start);
        if let Some(u) = &self.upnp {
            u.stop();
        }
        // Only a thread told to map may hold a mapping to wait for.
        if self.natpmp_failed.is_none() {
            self.upnp = None;
        }
        let token = self.token;
        loop {
            let upnp_done = self.upnp.as_ref().is_none_or(Upnp::done);
            let now = Instant::now();
            if (self.client.done() && upnp_done) || now >= start + REMOVE_WAIT {
                break;
            }
            let until = self
                .client
                .deadline()
                .into_iter()
                .chain([start + REMOVE_WAIT])
                .min()
                .unwrap_or(now);
            let mut readable = false;
            if reactor
                .wait(Some(until.saturating_duration_since(now)), |ev| {
                    readable |= ev.token() == token;
                })
                .is_err()
            {
                break;
            }
            self.readable |= readable;
            let now = Instant::now();
            self.receive(now);
            if self.client.deadline().is_some_and(|t| now >= t) {
                self.client.on_timeout(now);
            }
            self.send(now);
            if let Some(u) = self.upnp.as_mut() {
                u.reports();
            }
        }
        let _ = reactor.registry().deregister(&mut self.sock);
    }
}

/// A PCP mapping's nonce: random, so no other host can renew or delete
/// it. (Without a working generator, which `main` has already checked,
/// the clock's nanoseconds.)
fn nonce() -> [u8; 12] {
    use crate::protocol::Random;
    let mut n = [0u8; 12];
    match super::SystemRng::new() {
        Ok(mut rng) => rng.fill(&mut n),
        Err(_) => {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            n.copy_from_slice(&t.to_le_bytes()[..12]);
        }
    }
    n
}

/// A public address that is not one: RFC 1918 or carrier-grade NAT
/// (RFC 6598). Documentation ranges (TEST-NET) count as public.
pub fn behind_another_nat(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_private() || (a == 100 && (64..128).contains(&b)) || ip.is_unspecified()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_cgnat_public_addresses_are_a_second_nat_test_net_is_not() {
        for ip in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "100.127.255.254",
        ] {
            assert!(behind_another_nat(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "203.0.113.1",
            "198.51.100.7",
            "192.0.2.1",
            "100.128.0.1",
            "8.8.8.8",
        ] {
            assert!(!behind_another_nat(ip.parse().unwrap()), "{ip}");
        }
    }
}
