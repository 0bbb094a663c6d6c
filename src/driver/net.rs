//! Sockets: the dual-stack listener, dialing with retry, and the options a
//! chat connection wants (no Nagle delay, keepalive, a user timeout).

use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use socket2::{Domain, Protocol, SockRef, Socket, TcpKeepalive, Type};

use super::signals::Interrupts;
use crate::error::{describe_io, Error};

/// Binds the listening socket. Without `bind`, listens on `[::]` for both
/// IPv6 and IPv4, falling back to `0.0.0.0` where IPv6 is unavailable.
pub fn listen(bind: Option<IpAddr>, port: u16) -> Result<TcpListener, Error> {
    let result = match bind {
        Some(ip) => bind_one(SocketAddr::new(ip, port), false),
        None => {
            bind_one(SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port), true).or_else(|e| match e
                .raw_os_error()
            {
                Some(libc::EAFNOSUPPORT) | Some(libc::EADDRNOTAVAIL) => {
                    bind_one(SocketAddr::new([0, 0, 0, 0].into(), port), false)
                }
                _ => Err(e),
            })
        }
    };
    result.map_err(|e| {
        let shown = match bind {
            Some(ip) => SocketAddr::new(ip, port).to_string(),
            None => format!("port {port}"),
        };
        Error::Connect(format!("cannot listen on {shown}: {}", describe_io(&e)))
    })
}

fn bind_one(addr: SocketAddr, dual_stack: bool) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if dual_stack {
        socket.set_only_v6(false)?;
    }
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(8)?;
    socket.set_nonblocking(true)?;
    Ok(TcpListener::from_std(socket.into()))
}

/// An address as people write it: IPv4-mapped IPv6 shown as IPv4.
pub fn display_addr(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), v6.port()).to_string(),
            None => addr.to_string(),
        },
        SocketAddr::V4(_) => addr.to_string(),
    }
}

/// Connects to `host:port`, address by address; with `retry`, keeps trying
/// a refused or unreachable peer until that much time has passed. Ctrl-C
/// ends the wait.
pub fn dial(
    poll: &mut Poll,
    interrupts: &Interrupts,
    host: &str,
    port: u16,
    retry: Option<Duration>,
    connect_timeout: Duration,
) -> Result<(TcpStream, SocketAddr), Error> {
    let started = Instant::now();
    let give_up = started + retry.unwrap_or(Duration::ZERO);
    let mut backoff = Duration::from_millis(100);
    loop {
        let addrs: Vec<SocketAddr> = (host, port)
            .to_socket_addrs()
            .map_err(|_| Error::Connect(format!("cannot resolve host '{host}'")))?
            .collect();
        if addrs.is_empty() {
            return Err(Error::Connect(format!(
                "cannot resolve host '{host}': it has no addresses"
            )));
        }
        let mut last = None;
        for addr in addrs {
            match connect_one(poll, interrupts, addr, connect_timeout)? {
                Ok(stream) => return Ok((stream, addr)),
                Err(e) => last = Some((addr, e)),
            }
        }
        // Invariant: the loop above ran at least once (addrs is not empty).
        let (addr, e) = last.expect("at least one address was tried");
        let retryable = matches!(
            e.kind(),
            io::ErrorKind::ConnectionRefused
                | io::ErrorKind::HostUnreachable
                | io::ErrorKind::NetworkUnreachable
                | io::ErrorKind::TimedOut
                | io::ErrorKind::ConnectionReset
        );
        let now = Instant::now();
        if !retryable || now + backoff > give_up {
            return Err(Error::Connect(format!(
                "cannot connect to {}: {}",
                display_addr(addr),
                describe_io(&e)
            )));
        }
        wait(poll, interrupts, backoff)?;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}

/// Sleeps in `poll` so that Ctrl-C (the waker) cuts the wait short.
fn wait(poll: &mut Poll, interrupts: &Interrupts, d: Duration) -> Result<(), Error> {
    let until = Instant::now() + d;
    let mut events = Events::with_capacity(4);
    loop {
        if interrupts.count() > 0 {
            return Err(Error::Interrupted);
        }
        let now = Instant::now();
        if now >= until {
            return Ok(());
        }
        match poll.poll(&mut events, Some(until - now)) {
            Err(e) if e.kind() != io::ErrorKind::Interrupted => {
                return Err(Error::Local(format!(
                    "event loop failed: {}",
                    describe_io(&e)
                )))
            }
            _ => {}
        }
    }
}

const CONNECTING: Token = Token(usize::MAX - 2);

/// One non-blocking connect, waited for in the loop. The outer error is
/// ours (interrupted); the inner one is the connection's.
fn connect_one(
    poll: &mut Poll,
    interrupts: &Interrupts,
    addr: SocketAddr,
    timeout: Duration,
) -> Result<io::Result<TcpStream>, Error> {
    let mut stream = match TcpStream::connect(addr) {
        Ok(s) => s,
        Err(e) => return Ok(Err(e)),
    };
    if let Err(e) = poll
        .registry()
        .register(&mut stream, CONNECTING, Interest::WRITABLE)
    {
        return Ok(Err(e));
    }
    let deadline = Instant::now() + timeout;
    let mut events = Events::with_capacity(4);
    let result = loop {
        if interrupts.count() > 0 {
            let _ = poll.registry().deregister(&mut stream);
            return Err(Error::Interrupted);
        }
        let now = Instant::now();
        if now >= deadline {
            break Err(io::Error::from(io::ErrorKind::TimedOut));
        }
        if let Err(e) = poll.poll(&mut events, Some(deadline - now)) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            break Err(e);
        }
        if events.iter().any(|e| e.token() == CONNECTING) {
            if let Ok(Some(e)) | Err(e) = stream.take_error() {
                break Err(e);
            }
            match stream.peer_addr() {
                Ok(_) => break Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotConnected => continue,
                Err(e) => break Err(e),
            }
        }
    };
    let _ = poll.registry().deregister(&mut stream);
    Ok(result.map(|()| stream))
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
    let _ = sock.set_tcp_user_timeout(Some(idle.max(Duration::from_secs(1))));
}
