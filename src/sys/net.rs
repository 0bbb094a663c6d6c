//! Sockets: the options and questions the sockets crate does not cover.
//!
//! | what | Linux | macOS | FreeBSD | Windows |
//! |---|---|---|---|---|
//! | give up on unacknowledged data | `TCP_USER_TIMEOUT` | `TCP_RXT_CONNDROPTIME` | keepalive alone | `TCP_MAXRT` |
//! | bytes the peer acknowledged | `TCP_INFO` (or the send queue, portable) | send queue (`SO_NWRITE`) | send queue (`FIONWRITE`) | unknown |
//! | congestion window, unsent bytes | `TCP_INFO` (none, portable) | none | none | none |
//! | interface addresses | `getifaddrs` | `getifaddrs` | `getifaddrs` | `GetAdaptersAddresses` |
//! | the IPv4 default gateway (`--map`) | `/proc/net/route` | unknown | unknown | unknown |

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use mio::net::TcpStream;
use socket2::SockRef;

/// Whether a short read, which empties a socket, re-arms the poller for
/// the next bytes. epoll and kqueue report every new arrival; mio's
/// Windows backend (AFD polling) asks for the next event only once an
/// operation has returned `WouldBlock`, so there every read must go on
/// until it does, or the socket is never reported again.
pub const SHORT_READ_REARMS: bool = cfg!(not(windows));

/// Bounds how much of what we wrote may wait unsent in the socket
/// (`TCP_NOTSENT_LOWAT`): the socket says it is writable, and takes more,
/// only while less than `bytes` waits. A room's file bytes then never
/// queue megabytes in the kernel ahead of a chat line typed meanwhile; the
/// congestion window still fills. Where the system has no such option the
/// socket buffer alone bounds it.
pub fn set_notsent_lowat(stream: &TcpStream, bytes: u32) {
    let sock = SockRef::from(stream);
    imp(&sock, bytes);

    #[cfg(target_os = "linux")]
    fn imp(sock: &SockRef<'_>, bytes: u32) {
        let _ = sock.set_tcp_notsent_lowat(bytes);
    }

    #[cfg(target_os = "macos")]
    fn imp(sock: &SockRef<'_>, bytes: u32) {
        use std::os::fd::AsRawFd;
        // <netinet/tcp.h>
        const TCP_NOTSENT_LOWAT: libc::c_int = 0x201;
        let v = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
        // SAFETY: setsockopt reads one c_int from a valid pointer.
        unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::IPPROTO_TCP,
                TCP_NOTSENT_LOWAT,
                (&v as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
    }

    #[cfg(not(any(target_os = "linux", target_os = "macos")))]
    fn imp(_sock: &SockRef<'_>, _bytes: u32) {}
}

/// Tells the kernel to give up on a connection whose data stays
/// unacknowledged for `timeout`. A backstop only (keepalive and the room's
/// own idle timeout decide first); where the system has no such option,
/// keepalive alone does the job, and this does nothing.
pub fn set_user_timeout(stream: &TcpStream, timeout: Duration) {
    let sock = SockRef::from(stream);
    imp(&sock, timeout);

    #[cfg(target_os = "linux")]
    fn imp(sock: &SockRef<'_>, timeout: Duration) {
        let _ = sock.set_tcp_user_timeout(Some(timeout));
    }

    #[cfg(target_os = "macos")]
    fn imp(sock: &SockRef<'_>, timeout: Duration) {
        use std::os::fd::AsRawFd;
        // <netinet/tcp.h>: seconds of retransmission before the drop.
        const TCP_RXT_CONNDROPTIME: libc::c_int = 0x80;
        let secs = libc::c_int::try_from(timeout.as_secs()).unwrap_or(libc::c_int::MAX);
        // SAFETY: setsockopt reads one c_int from a valid pointer.
        unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::IPPROTO_TCP,
                TCP_RXT_CONNDROPTIME,
                (&secs as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
    }

    #[cfg(windows)]
    fn imp(sock: &SockRef<'_>, timeout: Duration) {
        use std::os::windows::io::AsRawSocket;
        use windows_sys::Win32::Networking::WinSock::{setsockopt, IPPROTO_TCP, TCP_MAXRT};
        let secs = i32::try_from(timeout.as_secs()).unwrap_or(i32::MAX);
        // SAFETY: setsockopt reads one i32 (seconds) from a valid pointer
        // on a socket we own.
        unsafe {
            setsockopt(
                sock.as_raw_socket() as usize,
                IPPROTO_TCP,
                TCP_MAXRT,
                (&secs as *const i32).cast(),
                std::mem::size_of::<i32>() as i32,
            )
        };
    }

    #[cfg(not(any(target_os = "linux", target_os = "macos", windows)))]
    fn imp(_sock: &SockRef<'_>, _timeout: Duration) {}
}

/// How many of our bytes the peer's TCP has acknowledged so far, given
/// that we have written `written` bytes to the socket; None when the
/// system will not say. Linux reads `TCP_INFO`; elsewhere (and in the
/// portable mode) it is what we wrote less what still sits in the send
/// queue, which holds exactly the bytes not yet acknowledged.
pub fn bytes_acked(stream: &TcpStream, written: u64) -> Option<u64> {
    #[cfg(target_os = "linux")]
    if super::fast_paths() {
        return tcp_info_acked(stream);
    }
    let unsent = send_queue(stream)?;
    Some(written.saturating_sub(unsent))
}

/// Linux: `tcpi_bytes_acked` from `TCP_INFO`.
#[cfg(target_os = "linux")]
fn tcp_info_acked(stream: &TcpStream) -> Option<u64> {
    tcp_info(stream).map(|(info, _)| info.tcpi_bytes_acked)
}

/// Linux: `TCP_INFO`, and how many of its bytes the kernel filled in
/// (an older kernel fills fewer; the rest stay zero).
#[cfg(target_os = "linux")]
fn tcp_info(stream: &TcpStream) -> Option<(libc::tcp_info, usize)> {
    use std::os::fd::AsRawFd;
    // SAFETY: tcp_info is plain data, for which all zeroes is a value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `info`.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some((info, len as usize))
}

/// TCP's sending state: what the driver needs to keep file bytes from
/// filling the congestion window (`driver::pacing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendWindow {
    /// The congestion window, in segments.
    pub cwnd: u32,
    /// Still in slow start, and not recovering from a loss: the window
    /// doubles each round trip.
    pub slow_start: bool,
    /// Segments sent and not yet acknowledged.
    pub unacked: u32,
    /// Bytes written to the socket and not yet sent.
    pub notsent: u32,
    /// The segment size, in bytes.
    pub mss: u32,
    /// The smoothed round trip.
    pub rtt: Duration,
}

/// TCP's sending state for `stream`; None where the system will not say:
/// Linux reads `TCP_INFO` (and not in the portable mode); elsewhere None.
pub fn send_window(stream: &TcpStream) -> Option<SendWindow> {
    #[cfg(target_os = "linux")]
    if super::fast_paths() {
        let (info, len) = tcp_info(stream)?;
        // `tcpi_notsent_bytes` came with Linux 4.6.
        let needed = std::mem::offset_of!(libc::tcp_info, tcpi_notsent_bytes) + 4;
        if len < needed || info.tcpi_snd_mss == 0 {
            return None;
        }
        return Some(SendWindow {
            cwnd: info.tcpi_snd_cwnd,
            // The kernel says 0 while the first slow start lasts. In
            // recovery (`tcpi_ca_state` above TCP_CA_Disorder) the window
            // is below the threshold too, but does not grow by use.
            slow_start: info.tcpi_ca_state <= 1
                && (info.tcpi_snd_ssthresh == 0 || info.tcpi_snd_cwnd < info.tcpi_snd_ssthresh),
            unacked: info.tcpi_unacked,
            notsent: info.tcpi_notsent_bytes,
            mss: info.tcpi_snd_mss,
            rtt: Duration::from_micros(u64::from(info.tcpi_rtt)),
        });
    }
    let _ = stream;
    None
}

/// The bytes in the socket's send queue: written by us, not yet
/// acknowledged by the peer.
fn send_queue(stream: &TcpStream) -> Option<u64> {
    return imp(stream);

    #[cfg(any(target_os = "linux", target_os = "freebsd"))]
    fn imp(stream: &TcpStream) -> Option<u64> {
        use std::os::fd::AsRawFd;
        // Linux SIOCOUTQ (= TIOCOUTQ); FreeBSD FIONWRITE: the same question.
        #[cfg(target_os = "linux")]
        let request = libc::TIOCOUTQ;
        #[cfg(target_os = "freebsd")]
        let request = libc::FIONWRITE;
        let mut queued: libc::c_int = 0;
        // SAFETY: the ioctl writes one c_int into `queued`.
        let rc = unsafe { libc::ioctl(stream.as_raw_fd(), request, &mut queued) };
        (rc == 0).then(|| u64::try_from(queued).ok()).flatten()
    }

    #[cfg(target_os = "macos")]
    fn imp(stream: &TcpStream) -> Option<u64> {
        use std::os::fd::AsRawFd;
        let mut queued: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes into `queued`.
        let rc = unsafe {
            libc::getsockopt(
                stream.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_NWRITE,
                (&mut queued as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        (rc == 0).then(|| u64::try_from(queued).ok()).flatten()
    }

    #[cfg(not(any(target_os = "linux", target_os = "freebsd", target_os = "macos")))]
    fn imp(_stream: &TcpStream) -> Option<u64> {
        None
    }
}

/// Out of descriptors (or sockets) or memory: pause accepting for a
/// moment instead of ending the program.
pub fn is_resource_exhaustion(e: &io::Error) -> bool {
    #[cfg(unix)]
    let codes = [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM];
    #[cfg(windows)]
    let codes = {
        use windows_sys::Win32::Networking::WinSock::{WSAEMFILE, WSAENOBUFS};
        [WSAEMFILE, WSAENOBUFS]
    };
    e.raw_os_error().is_some_and(|c| codes.contains(&c))
}

/// This machine cannot bind that address family or address (no IPv6).
pub fn is_family_unavailable(e: &io::Error) -> bool {
    #[cfg(unix)]
    let codes = [libc::EAFNOSUPPORT, libc::EADDRNOTAVAIL];
    #[cfg(windows)]
    let codes = {
        use windows_sys::Win32::Networking::WinSock::{WSAEADDRNOTAVAIL, WSAEAFNOSUPPORT};
        [WSAEAFNOSUPPORT, WSAEADDRNOTAVAIL]
    };
    e.raw_os_error().is_some_and(|c| codes.contains(&c))
}

/// The addresses of this machine's interfaces that are up, loopback
/// excluded; empty if the system will not say.
pub fn interface_addrs() -> Vec<IpAddr> {
    return imp();

    #[cfg(unix)]
    fn imp() -> Vec<IpAddr> {
        let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
        // SAFETY: getifaddrs allocates a list we walk read-only and free once.
        if unsafe { libc::getifaddrs(&mut head) } != 0 {
            return Vec::new();
        }
        let mut addrs = Vec::new();
        let mut cur = head;
        while !cur.is_null() {
            // SAFETY: `cur` is a node of the list getifaddrs returned.
            let ifa = unsafe { &*cur };
            cur = ifa.ifa_next;
            let flags = ifa.ifa_flags as libc::c_int;
            if ifa.ifa_addr.is_null()
                || flags & libc::IFF_UP == 0
                || flags & libc::IFF_LOOPBACK != 0
            {
                continue;
            }
            // SAFETY: ifa_addr is non-null and points at a sockaddr.
            let family = i32::from(unsafe { (*ifa.ifa_addr).sa_family });
            match family {
                libc::AF_INET => {
                    // SAFETY: the family says this sockaddr is a sockaddr_in.
                    let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                    addrs.push(IpAddr::from(sin.sin_addr.s_addr.to_ne_bytes()));
                }
                libc::AF_INET6 => {
                    // SAFETY: the family says this sockaddr is a sockaddr_in6.
                    let sin6 = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                    addrs.push(IpAddr::from(sin6.sin6_addr.s6_addr));
                }
                _ => {}
            }
        }
        // SAFETY: `head` came from getifaddrs and is freed once.
        unsafe { libc::freeifaddrs(head) };
        addrs
    }

    #[cfg(windows)]
    fn imp() -> Vec<IpAddr> {
        use windows_sys::Win32::NetworkManagement::IpHelper::{
            GetAdaptersAddresses, GAA_FLAG_SKIP_ANYCAST, GAA_FLAG_SKIP_DNS_SERVER,
            GAA_FLAG_SKIP_MULTICAST, IF_TYPE_SOFTWARE_LOOPBACK, IP_ADAPTER_ADDRESSES_LH,
        };
        use windows_sys::Win32::NetworkManagement::Ndis::IfOperStatusUp;
        use windows_sys::Win32::Networking::WinSock::{
            AF_INET, AF_INET6, AF_UNSPEC, SOCKADDR_IN, SOCKADDR_IN6,
        };
        const ERROR_BUFFER_OVERFLOW: u32 = 111;
        let flags = GAA_FLAG_SKIP_ANYCAST | GAA_FLAG_SKIP_MULTICAST | GAA_FLAG_SKIP_DNS_SERVER;
        // u64s keep the buffer aligned for the structs Windows writes.
        let mut buf: Vec<u64> = vec![0; 16 * 1024 / 8];
        let mut rc = ERROR_BUFFER_OVERFLOW;
        for _ in 0..3 {
            let mut size = u32::try_from(buf.len() * 8).unwrap_or(u32::MAX);
            // SAFETY: the buffer holds `size` writable bytes; Windows fills
            // it with a linked list of adapters or says how much it needs.
            rc = unsafe {
                GetAdaptersAddresses(
                    u32::from(AF_UNSPEC),
                    flags,
                    std::ptr::null(),
                    buf.as_mut_ptr().cast(),
                    &mut size,
                )
            };
            if rc != ERROR_BUFFER_OVERFLOW {
                break;
            }
            buf.resize((size as usize).div_ceil(8), 0);
        }
        if rc != 0 {
            return Vec::new();
        }
        let mut addrs = Vec::new();
        let mut adapter = buf.as_ptr().cast::<IP_ADAPTER_ADDRESSES_LH>();
        while !adapter.is_null() {
            // SAFETY: a node of the list GetAdaptersAddresses wrote into
            // `buf`, which outlives this walk.
            let a = unsafe { &*adapter };
            adapter = a.Next;
            if a.OperStatus != IfOperStatusUp || a.IfType == IF_TYPE_SOFTWARE_LOOPBACK {
                continue;
            }
            let mut unicast = a.FirstUnicastAddress;
            while !unicast.is_null() {
                // SAFETY: a node of the adapter's unicast list, in `buf`.
                let u = unsafe { &*unicast };
                unicast = u.Next;
                let sa = u.Address.lpSockaddr;
                if sa.is_null() {
                    continue;
                }
                // SAFETY: lpSockaddr points at a sockaddr whose family says
                // its type; both are in `buf`.
                unsafe {
                    match (*sa).sa_family {
                        AF_INET => {
                            let sin = &*sa.cast::<SOCKADDR_IN>();
                            addrs.push(IpAddr::from(sin.sin_addr.S_un.S_addr.to_ne_bytes()));
                        }
                        AF_INET6 => {
                            let sin6 = &*sa.cast::<SOCKADDR_IN6>();
                            addrs.push(IpAddr::from(sin6.sin6_addr.u.Byte));
                        }
                        _ => {}
                    }
                }
            }
        }
        addrs
    }
}

/// The IPv4 default gateway, which `listen --map` asks for a port
/// mapping. None where the system does not say (the caller then tells the
/// user that the gateway is unknown, rather than guessing one).
pub fn default_gateway_v4() -> Option<Ipv4Addr> {
    #[cfg(target_os = "linux")]
    {
        let table = std::fs::read_to_string("/proc/net/route").ok()?;
        parse_proc_net_route(&table)
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// The gateway of the default route in Linux's `/proc/net/route`: the
/// line whose destination and mask are 0 and whose flags have
/// `RTF_GATEWAY`, the lowest metric first. Addresses are hexadecimal in
/// the kernel's (little-endian) byte order.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn parse_proc_net_route(table: &str) -> Option<Ipv4Addr> {
    const RTF_UP: u32 = 0x1;
    const RTF_GATEWAY: u32 = 0x2;
    let hex = |s: &str| u32::from_str_radix(s, 16).ok();
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            // Iface Destination Gateway Flags RefCnt Use Metric Mask ...
            let (dest, gw, flags, metric, mask) = (
                hex(f.get(1)?)?,
                hex(f.get(2)?)?,
                hex(f.get(3)?)?,
                f.get(6)?,
                hex(f.get(7)?)?,
            );
            let metric: u32 = metric.parse().ok()?;
            let default =
                dest == 0 && mask == 0 && flags & (RTF_UP | RTF_GATEWAY) == RTF_UP | RTF_GATEWAY;
            (default && gw != 0).then(|| (metric, Ipv4Addr::from(gw.to_le_bytes())))
        })
        .min_by_key(|(metric, _)| *metric)
        .map(|(_, gw)| gw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_route_of_proc_net_route_names_the_gateway() {
        let table =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
            eth1\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n\
            eth0\t00000000\t014DA8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n\
            eth0\t004DA8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        assert_eq!(
            parse_proc_net_route(table),
            Some(Ipv4Addr::new(192, 168, 77, 1))
        );
        // No default route (or only a link route): no gateway.
        let table = "Iface\tDestination\tGateway\n\
            eth0\t004DA8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        assert_eq!(parse_proc_net_route(table), None);
        assert_eq!(parse_proc_net_route("garbage\nmore garbage here"), None);
    }
}
