//! `listen --map`: asks the default gateway to forward a public TCP port
//! to our listening port, keeps the lease alive and deletes the mapping
//! when the room ends, whichever way it ends.
//!
//! NAT-PMP runs inside the room's one loop: its UDP socket is registered
//! with the poll like any connection, and [`natpmp::Client`] is a sans-IO
//! state machine with deadlines, so nothing here ever waits on its own
//! during the room. Only the delete at the very end waits, on the same
//! poll, for at most two seconds ([`PortMap::remove`]).

pub mod natpmp;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;

use mio::net::UdpSocket;
use mio::{Interest, Registry, Token};

use super::config::MapConfig;
use super::user::{Notice, UserSide};
use super::Reactor;
use natpmp::News;

/// The protocols a listener asks with, in order, as the "not mapped" line
/// names them.
pub const PROTOCOLS: &str = "NAT-PMP";

/// The mapping of one listening port.
pub struct PortMap {
    sock: UdpSocket,
    token: Token,
    client: natpmp::Client,
    readable: bool,
    /// `--code`: the dial command carries it.
    dial_suffix: &'static str,
}

/// Starts asking for a mapping of TCP `port`; None (after a line saying
/// why) when there is nobody to ask.
pub fn start(
    registry: &Registry,
    token: Token,
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
    let open = || -> std::io::Result<UdpSocket> {
        let sock = UdpSocket::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)))?;
        sock.connect(SocketAddr::from((gateway, natpmp::SERVER_PORT)))?;
        Ok(sock)
    };
    let sock = match open().and_then(|mut s| {
        registry.register(&mut s, token, Interest::READABLE)?;
        Ok(s)
    }) {
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
    let mut pm = PortMap {
        client: natpmp::Client::new(port, cfg.lease, Instant::now()),
        token,
        readable: false,
        dial_suffix,
        sock,
    };
    pm.send(Instant::now());
    Some(pm)
}

impl PortMap {
    pub fn token(&self) -> Token {
        self.token
    }

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

    /// One turn: read answers, let time pass, send what is due, and tell
    /// the user what happened.
    pub fn turn(&mut self, now: Instant, ui: &mut dyn UserSide) {
        let mut news = Vec::new();
        if self.readable {
            let mut buf = [0u8; 64];
            loop {
                match self.sock.recv(&mut buf) {
                    Ok(n) => news.extend(self.client.on_datagram(&buf[..n], now)),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        self.readable = false;
                        break;
                    }
                    // The gateway's port is closed (ICMP port unreachable):
                    // nobody speaks NAT-PMP there; the deadline says so.
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        self.readable = false;
                        break;
                    }
                }
            }
        }
        if self.client.deadline().is_some_and(|t| now >= t) {
            news.extend(self.client.on_timeout(now));
        }
        self.send(now);
        for n in news {
            self.tell(n, ui);
        }
    }

    fn tell(&self, news: News, ui: &mut dyn UserSide) {
        match news {
            News::Mapped { ip, port, .. } => {
                if behind_another_nat(ip) {
                    let why = format!(
                        "the router's own public address {ip} is private or carrier-grade \
                         NAT (100.64.0.0/10): it is behind a second NAT, where a mapping \
                         cannot help; meet through a relay instead (--relay)"
                    );
                    ui.notice(Notice::NotMapped { why: &why });
                } else {
                    let public = SocketAddr::from((ip, port));
                    let command = format!("p2pchat dial {ip} {port}{}", self.dial_suffix);
                    ui.notice(Notice::Mapped {
                        public,
                        how: "NAT-PMP",
                        command: &command,
                    });
                }
            }
            News::Failed { refusal: None } => {
                let why = format!("no router answered {PROTOCOLS}; not mapped");
                ui.notice(Notice::NotMapped { why: &why });
            }
            News::Failed {
                refusal: Some(text),
            } => {
                let why = format!("the router refused the mapping ({text}); not mapped");
                ui.notice(Notice::NotMapped { why: &why });
            }
            News::Lapsing => ui.notice(Notice::NotMapped {
                why: "the router stopped answering: the port mapping lapses",
            }),
            News::Renewed { .. } | News::Done => {}
        }
    }

    /// Deletes the mapping, waiting on the poll for the router's answer
    /// for at most two seconds. Called on every way out of a room.
    pub fn remove(mut self, reactor: &mut Reactor) {
        let now = Instant::now();
        if !self.client.delete(now) {
            return;
        }
        self.send(now);
        let token = self.token;
        while !self.client.done() {
            let now = Instant::now();
            let timeout = self
                .client
                .deadline()
                .map(|t| t.saturating_duration_since(now));
            let mut readable = false;
            if reactor
                .wait(timeout, |ev| readable |= ev.token() == token)
                .is_err()
            {
                break;
            }
            self.readable |= readable;
            let now = Instant::now();
            let mut buf = [0u8; 64];
            while self.readable {
                match self.sock.recv(&mut buf) {
                    Ok(n) => {
                        self.client.on_datagram(&buf[..n], now);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
                    Err(_) => self.readable = false,
                }
            }
            if self.client.deadline().is_some_and(|t| now >= t) {
                self.client.on_timeout(now);
            }
            self.send(now);
        }
        let _ = reactor.registry().deregister(&mut self.sock);
    }
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
