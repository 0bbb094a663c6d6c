//! Sockets: the dual-stack listener, resolving, error classes, and the options a
//! chat connection wants (no Nagle delay, keepalive, a user timeout).

use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use mio::net::{TcpListener, TcpStream};
use socket2::{Domain, Protocol, SockRef, Socket, TcpKeepalive, Type};

use crate::error::{describe_io, Error};

/// Binds the listening socket. Without `bind`, listens on `[::]` for both
/// IPv6 and IPv4, falling back to `0.0.0.0` where IPv6 is unavailable.
pub fn listen(bind: Option<IpAddr>, port: u16) -> Result<TcpListener, Error> {
    // Room for a burst of strangers; the core decides who stays.
    listen_with_backlog(bind, port, 128)
}

/// [`listen`] with the given accept backlog.
pub fn listen_with_backlog(
    bind: Option<IpAddr>,
    port: u16,
    backlog: i32,
) -> Result<TcpListener, Error> {
    let result = match bind {
        Some(ip) => bind_one(SocketAddr::new(ip, port), false, backlog),
        None => bind_one(
            SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port),
            true,
            backlog,
        )
        .or_else(|e| {
            if crate::sys::net::is_family_unavailable(&e) {
                bind_one(SocketAddr::new([0, 0, 0, 0].into(), port), false, backlog)
            } else {
                Err(e)
            }
        }),
    };
    result.map_err(|e| {
        let shown = match bind {
            Some(ip) => SocketAddr::new(ip, port).to_string(),
            None => format!("port {port}"),
        };
        let hint = if e.kind() == io::ErrorKind::PermissionDenied && (1..1024).contains(&port) {
            " (ports below 1024 need root or CAP_NET_BIND_SERVICE: pick one from 1024 up)"
        } else {
            ""
        };
        Error::Connect(format!(
            "cannot listen on {shown}: {}{hint}",
            describe_io(&e)
        ))
    })
}

fn bind_one(addr: SocketAddr, dual_stack: bool, backlog: i32) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if dual_stack {
        socket.set_only_v6(false)?;
    }
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    socket.set_nonblocking(true)?;
    Ok(TcpListener::from_std(socket.into()))
}

/// Resolves `host:port` into the addresses to try, in order.
pub fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, Error> {
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|_| Error::Connect(format!("cannot resolve host '{host}'")))?
        .collect();
    if addrs.is_empty() {
        return Err(Error::Connect(format!(
            "cannot resolve host '{host}': it has no addresses"
        )));
    }
    Ok(addrs)
}

/// Returns true if and only if a failed connect is worth trying again
/// with `--retry` (the peer may not be listening yet).
pub fn is_retryable(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
            | io::ErrorKind::TimedOut
            | io::ErrorKind::ConnectionReset
    )
}

/// Accept errors that concern one connection only: go on accepting.
pub fn is_transient_accept_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

/// Out of file descriptors (`EMFILE`, `ENFILE`) or memory: pause accepting
/// for a moment instead of ending the program.
pub fn is_resource_exhaustion(e: &io::Error) -> bool {
    crate::sys::net::is_resource_exhaustion(e)
}

/// The address as a number, for per-source accounting in the core (which
/// does not know `std::net`). IPv4 and IPv4-mapped IPv6 count as one.
pub fn source_key(addr: SocketAddr) -> u128 {
    let v6 = match addr.ip() {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    };
    u128::from(v6)
}

/// Options for the connected socket: no Nagle delay for typed lines, and
/// keepalive plus a user timeout so a vanished host is noticed within about
/// `idle` even when no data flows.
pub fn tune(stream: &TcpStream, idle: Duration) {
    let _ = stream.set_nodelay(true);
    let sock = SockRef::from(stream);
    let probe_every = (idle / 6).max(Duration::from_secs(1));
    let keepalive = TcpKeepalive::new()
        .with_time((idle / 2).max(Duration::from_secs(1)))
        .with_interval(probe_every)
        .with_retries(3);
    let _ = sock.set_tcp_keepalive(&keepalive);
    // A backstop only: the room's own idle timeout decides (it counts acks
    // of our data as a sign of life), so on a lossy but live link TCP must
    // not give up first, while retransmissions back off.
    crate::sys::net::set_user_timeout(stream, user_timeout(idle));
    crate::sys::net::set_notsent_lowat(stream, NOTSENT_LOWAT);
}

/// What may wait unsent in a room's socket: enough to keep a fast link
/// busy between two turns of the loop (loopback runs as fast with 16 KiB
/// as with none), little enough that a chat line typed during a file
/// transfer waits behind at most this much of it: 16 KiB is 13 ms at
/// 10 Mbit/s. (While TCP's window is still small, any unsent byte ahead
/// of a line costs it a round trip: see the README's bench notes.)
pub const NOTSENT_LOWAT: u32 = 16 * 1024;

/// `TCP_USER_TIMEOUT` for an idle timeout: three times it, and at least
/// 30 s, so that a live link whose retransmissions back off under loss is
/// never cut before the idle timeout could.
pub fn user_timeout(idle: Duration) -> Duration {
    (idle * 3).max(Duration::from_secs(30))
}

/// The addresses of this machine's interfaces that are up, loopback
/// excluded; empty if the system will not say.
pub fn interface_addrs() -> Vec<IpAddr> {
    crate::sys::net::interface_addrs()
}
