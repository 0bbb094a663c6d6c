//! How a peer can reach a listener: which of this machine's addresses to
//! print, best first, and the command the other side runs. Pure: the
//! driver reads the interfaces (`driver::net::interface_addrs`).

use std::net::{IpAddr, SocketAddr};

use crate::names::unmapped;

/// The most addresses a listener prints besides the one in the command.
pub const MAX_SHOWN: usize = 4;

/// What kind of address it is, for a peer somewhere else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// Routable on the internet.
    Public,
    /// Only on this network: RFC 1918, carrier-grade NAT, IPv6 ULA.
    Private,
    /// Not dialable from another machine: loopback, link-local (which
    /// needs a zone), unspecified, multicast.
    Local,
}

pub fn scope(ip: IpAddr) -> Scope {
    match unmapped(ip) {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            if v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
            {
                Scope::Local
            } else if v4.is_private() || (a == 100 && (64..128).contains(&b)) {
                Scope::Private
            } else {
                Scope::Public
            }
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            if v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || first & 0xffc0 == 0xfe80
            {
                Scope::Local
            } else if first & 0xfe00 == 0xfc00 {
                Scope::Private
            } else {
                Scope::Public
            }
        }
    }
}

/// The addresses a listener tells the user about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reach {
    /// Dialable addresses, best first: public before private, IPv4 before
    /// IPv6 (more peers have it). Empty when only this machine can dial.
    pub addrs: Vec<IpAddr>,
    pub port: u16,
}

impl Reach {
    /// `bound` is the listening socket's address; `interfaces` the
    /// machine's addresses (used when `bound` is unspecified).
    pub fn new(bound: SocketAddr, interfaces: &[IpAddr]) -> Reach {
        let port = bound.port();
        let candidates: Vec<IpAddr> = match bound.ip() {
            IpAddr::V6(v6) if v6.is_unspecified() => interfaces.to_vec(),
            IpAddr::V4(v4) if v4.is_unspecified() => {
                interfaces.iter().copied().filter(IpAddr::is_ipv4).collect()
            }
            ip => vec![ip],
        };
        let mut addrs: Vec<IpAddr> = candidates
            .into_iter()
            .map(unmapped)
            .filter(|ip| scope(*ip) != Scope::Local)
            .collect();
        addrs.sort_by_key(|ip| (scope(*ip), ip.is_ipv6()));
        addrs.dedup();
        Reach { addrs, port }
    }

    /// The address in the command, if another machine can dial us at all.
    pub fn best(&self) -> Option<IpAddr> {
        self.addrs.first().copied()
    }

    /// The command the other side runs, with `extra` flags appended.
    pub fn command(&self, extra: &str) -> Option<String> {
        let ip = self.best()?;
        Some(format!("p2pchat dial {ip} {}{extra}", self.port))
    }

    /// True if and only if there are addresses and none is public: a peer
    /// on another network cannot dial any of them.
    pub fn all_private(&self) -> bool {
        !self.addrs.is_empty() && self.addrs.iter().all(|ip| scope(*ip) == Scope::Private)
    }

    /// The addresses after the best one, at most [`MAX_SHOWN`], and how
    /// many more there are.
    pub fn others(&self) -> (&[IpAddr], usize) {
        let rest = self.addrs.get(1..).unwrap_or(&[]);
        let shown = rest.len().min(MAX_SHOWN);
        (&rest[..shown], rest.len() - shown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn scopes() {
        for local in [
            "127.0.0.1",
            "::1",
            "169.254.3.4",
            "fe80::1",
            "0.0.0.0",
            "::",
            "ff02::1",
        ] {
            assert_eq!(scope(ip(local)), Scope::Local, "{local}");
        }
        for private in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "fd00::2",
        ] {
            assert_eq!(scope(ip(private)), Scope::Private, "{private}");
        }
        for public in [
            "192.0.2.7",
            "8.8.8.8",
            "100.128.0.1",
            "2001:db8::7",
            "::ffff:8.8.8.8",
        ] {
            assert_eq!(scope(ip(public)), Scope::Public, "{public}");
        }
        assert_eq!(scope(ip("::ffff:10.0.0.1")), Scope::Private);
    }

    #[test]
    fn public_first_then_ipv4_and_never_loopback() {
        let ifs = [
            ip("127.0.0.1"),
            ip("::1"),
            ip("10.0.0.3"),
            ip("fe80::1"),
            ip("2001:db8::7"),
            ip("fd00::2"),
            ip("192.0.2.7"),
        ];
        let r = Reach::new("[::]:51423".parse().unwrap(), &ifs);
        assert_eq!(
            r.addrs,
            [
                ip("192.0.2.7"),
                ip("2001:db8::7"),
                ip("10.0.0.3"),
                ip("fd00::2")
            ]
        );
        assert_eq!(
            r.command(" --code").as_deref(),
            Some("p2pchat dial 192.0.2.7 51423 --code")
        );
        assert!(!r.all_private());
        assert_eq!(r.others(), (&r.addrs[1..], 0));
    }

    #[test]
    fn an_ipv4_listener_offers_ipv4_and_a_bound_address_only_itself() {
        let ifs = [ip("2001:db8::7"), ip("10.0.0.3")];
        let r = Reach::new("0.0.0.0:5".parse().unwrap(), &ifs);
        assert_eq!(r.addrs, [ip("10.0.0.3")]);
        assert!(r.all_private());
        let r = Reach::new("[2001:db8::9]:5".parse().unwrap(), &ifs);
        assert_eq!(r.command("").as_deref(), Some("p2pchat dial 2001:db8::9 5"));
    }

    #[test]
    fn loopback_only_means_no_command() {
        let r = Reach::new("127.0.0.1:5".parse().unwrap(), &[ip("10.0.0.3")]);
        assert_eq!(r.command(""), None);
        assert!(!r.all_private());
        let r = Reach::new("[::]:5".parse().unwrap(), &[ip("127.0.0.1")]);
        assert_eq!(r.best(), None);
    }

    #[test]
    fn many_addresses_are_capped() {
        let ifs: Vec<IpAddr> = (1..=9).map(|i| ip(&format!("10.0.0.{i}"))).collect();
        let r = Reach::new("[::]:5".parse().unwrap(), &ifs);
        let (shown, more) = r.others();
        assert_eq!((shown.len(), more), (MAX_SHOWN, 8 - MAX_SHOWN));
    }
}
