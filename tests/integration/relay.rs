//! Meeting through a transit relay (issue 11): rooms through `p2pchat
//! relay` and through the real Python transit relay, one-time codes that
//! burn, a mistyped room, lying relays, and a relay under a flood.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::util::*;

/// Starts `p2pchat relay` on a free loopback port.
pub fn p2p_relay() -> (Proc, u16) {
    let p = Proc::p2p(&["relay", "0", "--bind", "127.0.0.1"], In::Null);
    let line = stderr_after(&p, "relaying on ");
    let port = line
        .split_whitespace()
        .next()
        .and_then(|a| a.rsplit(':').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    (p, port)
}

/// The Python transit relay from its package, if installed: `twist` from
/// `$P2PCHAT_TWIST` or the PATH.
fn python_relay() -> Option<(Proc, u16)> {
    let twist = std::env::var("P2PCHAT_TWIST").unwrap_or_else(|_| "twist".into());
    if !have(&twist) {
        if std::env::var_os("P2PCHAT_REQUIRE_ALL").is_some() {
            panic!("{twist} is required here (pip install magic-wormhole-transit-relay)");
        }
        eprintln!(
            "SKIPPED: the Python transit relay (`twist`) is not installed; \
                   pip install magic-wormhole-transit-relay"
        );
        return None;
    }
    let port = free_port();
    let endpoint = format!("--port=tcp:{port}:interface=127.0.0.1:backlog=1024");
    let p = Proc::spawn(&twist, &["transitrelay", &endpoint], In::Null, &[]);
    wait_until(
        "the transit relay to listen",
        Duration::from_secs(30),
        || TcpStream::connect(("127.0.0.1", port)).is_ok(),
    );
    Some((p, port))
}

/// A listener in a relay room; returns it with its code.
fn listen_at(relay: u16, input: In) -> (Proc, String) {
    let r = format!("127.0.0.1:{relay}");
    let p = Proc::p2p(&["listen", "--relay", &r], input);
    let code = stderr_after(&p, "code: ").trim().to_string();
    p.wait_stderr("waiting for the peer in room");
    (p, code)
}

fn dial_at(relay: u16, code: &str, input: In, extra: &[&str]) -> Proc {
    let r = format!("127.0.0.1:{relay}");
    let mut args = vec!["dial", "--relay", &r];
    args.extend_from_slice(extra);
    Proc::p2p_env(&args, input, &[("P2PCHAT_CODE", code)])
}

/// Both ways at once, byte-exact, with half-close, through `relay`.
fn both_ways_through(relay: u16, size: usize) {
    let dir = TempDir::new("relay-room");
    let (a, b) = (random_bytes(size, 1), random_bytes(size / 2 + 7, 2));
    let (fa, fb) = (dir.file("a", &a), dir.file("b", &b));
    let (mut l, code) = listen_at(relay, In::File(fa));
    assert!(
        code.split('-').count() == 4 && code.len() > 12,
        "a code like 482913-acid-bulk-cactus: {code:?}"
    );
    let mut d = dial_at(relay, &code, In::File(fb), &[]);
    assert_both_ok(&mut l, &mut d);
    assert_same_bytes(&d.stdout(), &a, "listener to dialer");
    assert_same_bytes(&l.stdout(), &b, "dialer to listener");
    assert!(
        l.stderr().contains("authenticated by one-time code"),
        "{}",
        l.stderr()
    );
    assert!(
        d.stderr().contains("through relay 127.0.0.1:"),
        "{}",
        d.stderr()
    );
}

#[test]
fn a_room_through_p2pchat_relay_is_byte_exact_both_ways() {
    let (_relay, port) = p2p_relay();
    both_ways_through(port, 24 << 20);
}

#[test]
fn a_room_through_the_python_transit_relay_is_byte_exact_both_ways() {
    let Some((_relay, port)) = python_relay() else {
        return;
    };
    both_ways_through(port, 24 << 20);
}

#[test]
fn a_wrong_code_burns_it_and_both_sides_exit_3() {
    let (_relay, port) = p2p_relay();
    let (mut l, code) = listen_at(port, In::Null);
    let room = code.split('-').next().unwrap().to_string();
    // The right room, the wrong words (unless we hit 1 in 8.6 billion).
    let wrong = if code.ends_with("-abandon-ability-zoo") {
        format!("{room}-abandon-ability-zone")
    } else {
        format!("{room}-abandon-ability-zoo")
    };
    let mut d = dial_at(port, &wrong, In::Null, &[]);
    assert_eq!(d.code(), 3, "{}", d.stderr());
    assert_eq!(l.code(), 3, "{}", l.stderr());
    assert!(l.stderr().contains("the code is burned"), "{}", l.stderr());
    // The burned code opens nothing: nobody waits in its room any more.
    let mut late = dial_at(port, &code, In::Null, &["--wait", "1"]);
    assert_eq!(late.code(), 1, "{}", late.stderr());
    assert!(
        late.stderr().contains("nobody came to room"),
        "{}",
        late.stderr()
    );
}

#[test]
fn a_mistyped_room_gives_up_with_a_clear_message() {
    let (_relay, port) = p2p_relay();
    let (_l, code) = listen_at(port, In::Null);
    let room: u32 = code.split('-').next().unwrap().parse().unwrap();
    let words = code.split_once('-').unwrap().1;
    let typo = format!("{:06}-{words}", (room + 1) % 1_000_000);
    let mut d = dial_at(port, &typo, In::Null, &["--wait", "1.5"]);
    assert_eq!(d.code(), 1, "{}", d.stderr());
    let err = d.stderr();
    assert!(
        err.contains("nobody came to room") && err.contains("check the room number"),
        "{err}"
    );
}

#[test]
fn relay_usage_errors_say_why() {
    for (args, says) in [
        (
            &["listen", "--relay", "h", "--plain"][..],
            "cannot be combined with --plain",
        ),
        (&["dial", "--relay", "h:0"][..], "not a port"),
        (
            &["listen", "--relay", "h", "--keep"][..],
            "--keep hosts chat rooms at a terminal",
        ),
        (
            &["relay", "1", "--plain"][..],
            "--plain is for listen and dial, not relay",
        ),
        (
            &["relay", "0", "--idle-timeout", "5", "--resume-buffer", "7"][..],
            "--idle-timeout is for listen and dial, not relay",
        ),
    ] {
        let mut p = Proc::p2p(args, In::Null);
        assert_eq!(p.code(), 2, "{args:?}: {}", p.stderr());
        assert!(p.stderr().contains(says), "{args:?}: {}", p.stderr());
    }
    // A dialer without a terminal and without P2PCHAT_CODE cannot be asked.
    let mut p = Proc::spawn(
        "setsid",
        &[BIN, "dial", "--relay", "127.0.0.1:1"],
        In::Null,
        &[],
    );
    assert_eq!(p.code(), 2, "{}", p.stderr());
    assert!(p.stderr().contains("P2PCHAT_CODE"), "{}", p.stderr());
    let mut p = Proc::p2p_env(
        &["dial", "--relay", "127.0.0.1:1"],
        In::Null,
        &[("P2PCHAT_CODE", "12-abandon")],
    );
    assert_eq!(p.code(), 2, "{}", p.stderr());
    assert!(p.stderr().contains("6-digit room number"), "{}", p.stderr());
}

#[test]
fn p2pchat_relay_answers_strangers_as_the_reference_does() {
    let (_relay, port) = p2p_relay();
    let say = |bytes: &[u8]| -> Vec<u8> {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.write_all(bytes).unwrap();
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got);
        got
    };
    assert_eq!(say(b"GET / HTTP/1.1\r\n\r\n"), b"bad handshake\n");
    let token = "ab".repeat(32);
    let hello = format!("please relay {token} for side 0000000000000001\n");
    assert_eq!(say(format!("{hello}EARLY").as_bytes()), b"impatient\n");
    // Two clients of one token and different sides pair, and bytes flow,
    // including a half-close in one direction while the other still runs.
    let mut a = TcpStream::connect(("127.0.0.1", port)).unwrap();
    a.write_all(hello.as_bytes()).unwrap();
    let mut b = TcpStream::connect(("127.0.0.1", port)).unwrap();
    b.write_all(format!("please relay {token} for side 0000000000000002\n").as_bytes())
        .unwrap();
    let mut ok = [0u8; 3];
    a.read_exact(&mut ok).unwrap();
    assert_eq!(&ok, b"ok\n");
    b.read_exact(&mut ok).unwrap();
    assert_eq!(&ok, b"ok\n");
    a.write_all(b"from a").unwrap();
    a.shutdown(std::net::Shutdown::Write).unwrap();
    let mut got = [0u8; 6];
    b.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"from a");
    let mut rest = Vec::new();
    b.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    b.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "a's FIN arrives as b's EOF");
    b.write_all(b"reply after a's FIN").unwrap();
    b.shutdown(std::net::Shutdown::Write).unwrap();
    let mut reply = Vec::new();
    a.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    a.read_to_end(&mut reply).unwrap();
    assert_eq!(
        reply, b"reply after a's FIN",
        "half-close is forwarded, not fatal"
    );
}

/// A relay of the test's own that lies: it answers `ok` and then does
/// what `behave` says with the connections it got.
fn lying_relay(
    conns: usize,
    behave: impl FnOnce(Vec<TcpStream>) + Send + 'static,
) -> (u16, std::thread::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let h = std::thread::spawn(move || {
        let mut got = Vec::new();
        for _ in 0..conns {
            let (mut s, _) = l.accept().unwrap();
            let mut hello = [0u8; 104];
            s.read_exact(&mut hello).unwrap();
            s.write_all(b"ok\n").unwrap();
            got.push(s);
        }
        behave(got);
    });
    (port, h)
}

fn splice(a: TcpStream, b: TcpStream, seen: Arc<Mutex<Vec<u8>>>) {
    let copy = |mut from: TcpStream, mut to: TcpStream, seen: Arc<Mutex<Vec<u8>>>| {
        std::thread::spawn(move || {
            let mut buf = [0u8; 16384];
            while let Ok(n) = from.read(&mut buf) {
                if n == 0 || to.write_all(&buf[..n]).is_err() {
                    break;
                }
                seen.lock().unwrap().extend_from_slice(&buf[..n]);
            }
            let _ = to.shutdown(std::net::Shutdown::Write);
        })
    };
    copy(a.try_clone().unwrap(), b.try_clone().unwrap(), seen.clone());
    copy(b, a, seen);
}

#[test]
fn a_relay_that_reflects_our_bytes_gets_an_authentication_failure() {
    let (port, _h) = lying_relay(1, |conns| {
        for mut s in conns {
            let mut buf = [0u8; 4096];
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 || s.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    });
    let mut d = dial_at(port, "123456-abandon-ability-zoo", In::Null, &[]);
    let code = d.code();
    assert!(
        code == 3,
        "a reflection is never a room: exit {code}; {}",
        d.stderr()
    );
}

#[test]
fn a_relay_that_cross_pairs_two_rooms_gets_two_failures_and_sees_no_plaintext() {
    // The relay takes two listeners and two dialers and pairs each
    // listener with the other room's dialer.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let (port, _h) = lying_relay(4, move |mut c| {
        let (d2, l2, d1, l1) = (
            c.pop().unwrap(),
            c.pop().unwrap(),
            c.pop().unwrap(),
            c.pop().unwrap(),
        );
        splice(l1, d2, seen2.clone());
        splice(l2, d1, seen2);
    });
    let secret = b"the plaintext the relay must never see".repeat(10);
    let dir = TempDir::new("cross");
    let f = dir.file("msg", &secret);
    let (mut l1, c1) = listen_at(port, In::File(f.clone()));
    let (mut l2, c2) = listen_at(port, In::File(f.clone()));
    let mut d1 = dial_at(port, &c1, In::File(f.clone()), &[]);
    d1.wait_stderr("waiting for the peer");
    let mut d2 = dial_at(port, &c2, In::File(f), &[]);
    for p in [&mut l1, &mut l2, &mut d1, &mut d2] {
        assert_eq!(p.code(), 3, "{}", p.stderr());
        assert!(p.stdout().is_empty(), "nothing delivered");
    }
    let seen = seen.lock().unwrap();
    assert!(!seen.is_empty());
    assert!(
        !seen.windows(16).any(|w| w == &secret[..16]),
        "the relay saw plaintext"
    );
}

#[test]
fn a_flood_of_idle_and_garbage_connections_does_not_disturb_a_room() {
    let (relay, port) = p2p_relay();
    let mut idle = Vec::new();
    for i in 0..300u32 {
        // Ten strangers' addresses (beyond the per-source limits some are
        // refused, which is fine: the room must still be served).
        let from: std::net::SocketAddr = format!("127.0.0.{}:0", 2 + i % 10).parse().unwrap();
        let sock =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        sock.bind(&from.into()).unwrap();
        let to: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        sock.connect(&to.into()).unwrap();
        let mut s: TcpStream = sock.into();
        if i % 3 == 0 {
            let _ = s.write_all(b"\x16\x03\x01garbage\n");
        } else if i % 3 == 1 {
            let token = format!("{i:064}");
            let _ =
                s.write_all(format!("please relay {token} for side 0000000000000001\n").as_bytes());
        }
        idle.push(s);
    }
    both_ways_through(port, 4 << 20);
    let rss = relay.peak_rss_kib().unwrap();
    assert!(
        rss < 16 * 1024,
        "relay peak RSS {rss} KiB with 300 strangers"
    );
}
