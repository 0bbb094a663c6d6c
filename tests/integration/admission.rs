//! Strangers, round two (issue 21): the `--tries` budget of `listen
//! --keep`, connections that send a preface and stop, slot holders that
//! shut out a resume, a relay listener whose partner leaves without a byte.
//! Each test plays the attacker over real loopback sockets.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use spake2::{Ed25519Group, Identity, Password, Spake2};

use crate::pty::Pty;
use crate::util::*;

const PAKE_PREFACE: &[u8] = b"p2pchat/3 pake\n";
const SAS_PREFACE: &[u8] = b"p2pchat/3 sas\n";

/// Connects from `ip` (a loopback source address), or None once the
/// listener no longer accepts.
fn connect_from(ip: &str, port: u16) -> Option<TcpStream> {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).ok()?;
    let from: SocketAddr = format!("{ip}:0").parse().ok()?;
    sock.bind(&from.into()).ok()?;
    let to: SocketAddr = ([127, 0, 0, 1], port).into();
    sock.connect(&to.into()).ok()?;
    let s: TcpStream = sock.into();
    s.set_read_timeout(Some(Duration::from_secs(20))).ok()?;
    Some(s)
}

fn connect(port: u16) -> Option<TcpStream> {
    connect_from("127.0.0.1", port)
}

/// One online guess: SPAKE2 message A made with `guess` (and `room` in the
/// identities, as a one-time code binds it), take message B, and leave
/// without a HELLO. Returns whether the listener served the key exchange.
fn guess_once(port: u16, guess: &str, room: Option<&str>) -> bool {
    let Some(mut s) = connect(port) else {
        return false;
    };
    let id = |who: &str| match room {
        Some(r) => format!("p2pchat/2 {who} room {r}"),
        None => format!("p2pchat/2 {who}"),
    };
    let (_spake, msg_a) = Spake2::<Ed25519Group>::start_a(
        &Password::new(guess.as_bytes()),
        &Identity::new(id("dialer").as_bytes()),
        &Identity::new(id("listener").as_bytes()),
    );
    let mut flight = PAKE_PREFACE.to_vec();
    flight.extend_from_slice(&msg_a);
    if s.write_all(&flight).is_err() {
        return false;
    }
    let mut got = vec![0u8; PAKE_PREFACE.len() + 33];
    s.read_exact(&mut got).is_ok()
}

/// How many times `needle` is on the terminal so far.
fn count(p: &Pty, needle: &str) -> usize {
    String::from_utf8_lossy(&p.raw()).matches(needle).count()
}

/// Waits until the `n`th room of a `--keep` host listens.
fn wait_room(p: &Pty, n: usize) {
    wait_until_lazy(
        || format!("room {n} listening; screen:\n{}", p.text()),
        DEADLINE,
        || count(p, "listening on") >= n,
    );
}

#[test]
fn keep_holds_one_tries_budget_for_all_its_rooms() {
    // A shared secret, one guess in the first room, a real peer, then the
    // second room: two more guesses use up the budget of three, and the
    // hosting ends. (A budget per room would serve three more.)
    let port = free_port().to_string();
    let env = [("P2PCHAT_SECRET", "4821")];
    let args = [
        "listen",
        &port,
        "--bind",
        "127.0.0.1",
        "--keep",
        "--name",
        "alice",
    ];
    let mut alice = Pty::spawn(&args, &env, 30, 120);
    let port: u16 = port.parse().unwrap();
    wait_room(&alice, 1);
    assert!(guess_once(port, "0000", None), "the first guess is served");
    alice.wait_for("1 of 3 failed attempts");
    let mut bob = dial_env(&["--name", "bob"], "127.0.0.1", port, In::Pipe, &env);
    bob.write(b"hello\n");
    alice.wait_for("bob: hello");
    bob.close_stdin();
    bob.signal(libc::SIGTERM);
    bob.wait();
    alice.wait_for("\"bob\" left the room");
    alice.type_text("x");
    wait_room(&alice, 2);
    assert!(guess_once(port, "0001", None), "the second guess is served");
    alice.wait_for("2 of 3 failed attempts");
    assert!(guess_once(port, "0002", None), "the third guess is served");
    assert_eq!(alice.code(), 3, "{}", alice.text());
    let everything = String::from_utf8_lossy(&alice.raw()).into_owned();
    assert!(
        everything.contains("3 failed attempts to join: someone may be guessing"),
        "{everything}"
    );
    assert!(!guess_once(port, "4821", None), "the hosting is over");
}

#[test]
fn keep_with_one_time_codes_ends_after_tries_burned_codes() {
    // Each wrong code burns its room's code and a fresh one is shown; the
    // third failure in all ends the hosting, instead of a guess per room
    // for ever.
    let port = free_port().to_string();
    let args = ["listen", &port, "--bind", "127.0.0.1", "--code", "--keep"];
    let mut alice = Pty::spawn(&args, &[], 30, 120);
    let port: u16 = port.parse().unwrap();
    for round in 1..=3 {
        wait_room(&alice, round);
        assert!(
            guess_once(port, "acid-bulk-cactus", Some("123456")),
            "guess {round} is served"
        );
        if round < 3 {
            wait_until_lazy(
                || format!("burned code {round}; screen:\n{}", alice.text()),
                DEADLINE,
                || count(&alice, "the code is burned") >= round,
            );
        }
    }
    assert_eq!(alice.code(), 3, "{}", alice.text());
    let everything = String::from_utf8_lossy(&alice.raw()).into_owned();
    assert!(
        everything
            .contains("3 failed attempts to join: someone may be guessing the one-time codes"),
        "{everything}"
    );
    assert_eq!(count(&alice, "listening on"), 3, "no fourth room");
}

/// Opens `n` connections from `ip` that each send `bytes` and stay open.
fn holders(ip: &str, port: u16, n: usize, bytes: &[u8]) -> Vec<TcpStream> {
    (0..n)
        .filter_map(|_| {
            let mut s = connect_from(ip, port)?;
            s.write_all(bytes).ok()?;
            Some(s)
        })
        .collect()
}

#[test]
fn preface_only_connections_make_way_and_time_out() {
    // Four from each of two addresses, each sending its preface line and
    // nothing more, fill every slot; the real dialer still gets in at once.
    let (mut l, port) = listen(&["--handshake-timeout", "600"], "127.0.0.1", In::Pipe);
    let mut held = holders("127.0.0.2", port, 4, SAS_PREFACE);
    held.extend(holders("127.0.0.3", port, 4, SAS_PREFACE));
    // The listener has read every preface before the real dialer comes.
    let first = Instant::now();
    let mut d = dial(&["--handshake-timeout", "600"], "127.0.0.1", port, In::Pipe);
    d.write(b"real peer\n");
    d.close_stdin();
    l.wait_stdout(10);
    assert!(
        first.elapsed() < Duration::from_secs(2),
        "{:?}",
        first.elapsed()
    );
    l.close_stdin();
    assert_both_ok(&mut d, &mut l);
    assert_eq!(l.stdout(), b"real peer\n");
    assert!(!l.stderr().contains("failed"), "{}", l.stderr());
    // And those that were not evicted were closed within about 2 s.
    for mut s in held {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut b = [0u8; 64];
        let mut total = 0;
        loop {
            match s.read(&mut b) {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
        assert!(total <= 64, "nothing but a preface reached a holder");
    }
    assert!(
        first.elapsed() < Duration::from_secs(5),
        "{:?}",
        first.elapsed()
    );
}

#[test]
fn a_preface_alone_is_closed_at_the_first_flight_deadline() {
    let (_l, port) = listen(&["--handshake-timeout", "600"], "127.0.0.1", In::Pipe);
    let started = Instant::now();
    let mut s = holders("127.0.0.2", port, 1, SAS_PREFACE).pop().unwrap();
    let mut b = [0u8; 64];
    loop {
        match s.read(&mut b) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(4),
        "closed after {took:?}"
    );
}

/// A whole verify-code first flight: preface and a commitment.
fn sas_flight(i: u8) -> Vec<u8> {
    let mut f = SAS_PREFACE.to_vec();
    f.extend_from_slice(&[i; 32]);
    f
}

#[test]
fn a_full_listener_says_busy_and_retry_dials_again() {
    // Eight whole first flights (each a key exchange in flight) from two
    // addresses take every slot: a real dialer is told why it cannot get
    // in, and with --retry it comes back once a slot frees.
    let mut l = Proc::p2p(
        &[
            "listen",
            "0",
            "--bind",
            "127.0.0.1",
            "--handshake-timeout",
            "600",
            "--tries",
            "10",
        ],
        In::Pipe,
    );
    let port = wait_port(&l);
    let mut held = Vec::new();
    for (i, ip) in ["127.0.0.2", "127.0.0.3"].iter().enumerate() {
        for k in 0..4u8 {
            held.extend(holders(ip, port, 1, &sas_flight(i as u8 * 4 + k)));
        }
    }
    // Each holder got the listener's key: every slot is a real exchange.
    for s in held.iter_mut() {
        let mut got = vec![0u8; SAS_PREFACE.len() + 32];
        s.read_exact(&mut got).unwrap();
    }
    let mut d = dial(&[], "127.0.0.1", port, In::Pipe);
    assert_eq!(d.code(), 1, "{}", d.stderr());
    assert!(
        d.stderr().contains("the listener is busy"),
        "{}",
        d.stderr()
    );
    assert!(d.stderr().contains("--retry"), "{}", d.stderr());

    let port_s = port.to_string();
    let args = ["dial", "127.0.0.1", &port_s, "--retry", "30"];
    let mut d = Proc::p2p(&args, In::Pipe);
    wait_until_lazy(
        || {
            format!(
                "the dialer waits; dialer:\n{}\nlistener:\n{}",
                d.stderr(),
                l.stderr()
            )
        },
        DEADLINE,
        || {
            d.stderr()
                .contains("(the listener is busy; retrying for 30 s)")
        },
    );
    // One holder gives up: a failed attempt, and a free slot.
    drop(held.pop());
    d.write(b"came back\n");
    d.close_stdin();
    l.wait_stdout(10);
    l.close_stdin();
    assert_both_ok(&mut d, &mut l);
    assert_eq!(l.stdout(), b"came back\n");
    let err = d.stderr();
    assert_eq!(
        err.matches("the listener is busy").count(),
        1,
        "said once: {err}"
    );
    drop(held);
}

#[test]
fn slot_holders_never_shut_out_the_rooms_resume() {
    // The room is up; strangers from four addresses hold eight resume
    // flights open (a preface and a key, and never a RESUME record). The
    // connection is cut: the dialer's resume still finds a slot.
    let resume_preface = b"p2pchat/3 resume\n";
    let (mut l, port) = listen(&["--handshake-timeout", "600"], "127.0.0.1", In::Pipe);
    let proxy = crate::resume::HoldProxy::start(port);
    let mut d = dial(&[], "127.0.0.1", proxy.port, In::Pipe);
    l.wait_stderr("connected to");
    d.wait_stderr("connected to");
    let mut flight = resume_preface.to_vec();
    flight.extend_from_slice(&[9; 32]);
    let mut held = Vec::new();
    for ip in ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"] {
        held.extend(holders(ip, port, 2, &flight));
    }
    for s in held.iter_mut() {
        // Each got the listener's preface and key: it holds a slot.
        let mut got = vec![0u8; resume_preface.len() + 32];
        s.read_exact(&mut got).unwrap();
    }
    d.write(b"before\n");
    l.wait_stdout(7);
    proxy.cut_noticed([&l, &d], 1);
    wait_until_lazy(
        || format!("the resume; dialer:\n{}", d.stderr()),
        DEADLINE,
        || d.stderr().contains("reconnected after"),
    );
    d.write(b"after\n");
    d.close_stdin();
    l.close_stdin();
    assert_both_ok(&mut d, &mut l);
    assert_eq!(l.stdout(), b"before\nafter\n");
    drop(held);
}

/// A transit relay of the test's own, driven step by step: it sorts the
/// connections by the side in their hello, and the test decides whom to
/// answer `ok`, whom to pair and whom to drop.
struct ScriptedRelay {
    port: u16,
    listeners: std::sync::mpsc::Receiver<TcpStream>,
    dialers: std::sync::mpsc::Receiver<TcpStream>,
}

const LISTENER_SIDE: &[u8] = b"d7e1aaa9ddbb4636";

impl ScriptedRelay {
    fn start() -> ScriptedRelay {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let (lt, lr) = std::sync::mpsc::channel();
        let (dt, dr) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { return };
                let mut hello = [0u8; 104];
                if s.read_exact(&mut hello).is_err() {
                    continue;
                }
                let to = if hello.windows(16).any(|w| w == LISTENER_SIDE) {
                    &lt
                } else {
                    &dt
                };
                if to.send(s).is_err() {
                    return;
                }
            }
        });
        ScriptedRelay {
            port,
            listeners: lr,
            dialers: dr,
        }
    }

    fn next(rx: &std::sync::mpsc::Receiver<TcpStream>, who: &str) -> TcpStream {
        let mut s = rx
            .recv_timeout(DEADLINE)
            .unwrap_or_else(|_| panic!("no {who} came to the relay"));
        s.write_all(b"ok\n").unwrap();
        s
    }

    fn listener(&self) -> TcpStream {
        ScriptedRelay::next(&self.listeners, "listener")
    }

    fn dialer(&self) -> TcpStream {
        ScriptedRelay::next(&self.dialers, "dialer")
    }
}

/// Copies both ways between `a` and `b` until either ends; returns the
/// streams to cut them with.
fn pair(a: TcpStream, b: TcpStream) -> [TcpStream; 2] {
    let cut = [a.try_clone().unwrap(), b.try_clone().unwrap()];
    for (mut from, mut to) in [(a.try_clone().unwrap(), b.try_clone().unwrap()), (b, a)] {
        std::thread::spawn(move || {
            let mut buf = [0u8; 16384];
            while let Ok(n) = from.read(&mut buf) {
                if n == 0 || to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            let _ = to.shutdown(std::net::Shutdown::Write);
        });
    }
    cut
}

fn relay_listener(relay: &ScriptedRelay, input: In) -> (Proc, String) {
    let r = format!("127.0.0.1:{}", relay.port);
    let p = Proc::p2p(&["listen", "--relay", &r], input);
    let code = stderr_after(&p, "code: ").trim().to_string();
    (p, code)
}

fn relay_dialer(relay: &ScriptedRelay, code: &str) -> Proc {
    let r = format!("127.0.0.1:{}", relay.port);
    Proc::p2p_env(
        &["dial", "--relay", &r],
        In::Pipe,
        &[("P2PCHAT_CODE", code)],
    )
}

#[test]
fn a_relay_partner_that_leaves_without_a_byte_sends_the_listener_back() {
    // A stranger with the room number (or a faulty relay): paired, gone
    // without a byte. The listener goes back, and the real dialer's one
    // attempt at the code still gets in.
    let relay = ScriptedRelay::start();
    let (mut l, code) = relay_listener(&relay, In::Pipe);
    drop(relay.listener());
    let back = relay.listener();
    l.wait_stderr("left before the handshake; waiting in room");
    let mut d = relay_dialer(&relay, &code);
    let _cut = pair(back, relay.dialer());
    d.write(b"got in\n");
    d.close_stdin();
    l.wait_stdout(7);
    l.close_stdin();
    assert_both_ok(&mut d, &mut l);
    assert_eq!(l.stdout(), b"got in\n");
}

#[test]
fn a_relay_that_pairs_two_listeners_ends_in_exit_3() {
    let relay = ScriptedRelay::start();
    let r = format!("127.0.0.1:{}", relay.port);
    let args = ["listen", "--relay", &r, "--handshake-timeout", "2"];
    let l1 = Proc::p2p(&args, In::Pipe);
    let a = relay.listener();
    // The second waits longer, so the first is the first to give up
    // however the two are scheduled on a loaded machine.
    let l2 = Proc::p2p(
        &["listen", "--relay", &r, "--handshake-timeout", "30"],
        In::Pipe,
    );
    let b = relay.listener();
    let _cut = pair(a, b);
    // The first to give up ends with exit 3 (which one is a race); to the
    // other, its partner then left without a byte, and it goes back to
    // wait for its dialer (or it gave up in the same moment: exit 3 too).
    let mut both = [l1, l2];
    let exited = |p: &mut Proc| p.child.try_wait().ok().flatten().is_some();
    wait_until("one listener to give up", DEADLINE, || {
        both.iter_mut().any(&exited)
    });
    let [mut gone, mut stays] = both;
    if !exited(&mut gone) {
        std::mem::swap(&mut gone, &mut stays);
    }
    assert_eq!(gone.code(), 3, "{}", gone.stderr());
    assert!(
        gone.stderr().contains("paired two listeners"),
        "{}",
        gone.stderr()
    );
    assert!(gone.stdout().is_empty());
    let end = std::time::Instant::now() + DEADLINE;
    while !stays
        .stderr()
        .contains("left before the handshake; waiting in room")
    {
        if exited(&mut stays) {
            assert_eq!(stays.code(), 3, "{}", stays.stderr());
            break;
        }
        assert!(
            std::time::Instant::now() < end,
            "the other listener neither waits again nor gives up:\n{}",
            stays.stderr()
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(stays.stdout().is_empty());
}

#[test]
fn a_partner_that_leaves_without_a_byte_does_not_stop_a_resume() {
    let relay = ScriptedRelay::start();
    let (mut l, code) = relay_listener(&relay, In::Pipe);
    let first = relay.listener();
    let mut d = relay_dialer(&relay, &code);
    let cut = pair(first, relay.dialer());
    d.write(b"before\n");
    l.wait_stdout(7);
    for s in cut {
        let _ = s.shutdown(std::net::Shutdown::Both);
    }
    // Both come back; the listener is first paired with nobody at all.
    drop(relay.listener());
    let back = relay.listener();
    let _cut = pair(back, relay.dialer());
    wait_until_lazy(
        || format!("the resume; listener:\n{}", l.stderr()),
        DEADLINE,
        || l.stderr().contains("reconnected after") && d.stderr().contains("reconnected after"),
    );
    d.write(b"after\n");
    d.close_stdin();
    l.close_stdin();
    assert_both_ok(&mut d, &mut l);
    assert_eq!(l.stdout(), b"before\nafter\n");
}

/// A pipe for a child's stderr that the test never reads, shrunk to one
/// page so that a few dozen log lines fill it.
fn unread_pipe() -> (std::fs::File, std::process::Stdio) {
    let (r, w) = std::io::pipe().expect("a pipe");
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: fcntl on a descriptor we own; a refusal leaves 64 KiB.
        unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, 4096) };
    }
    (
        std::fs::File::from(std::os::fd::OwnedFd::from(r)),
        std::process::Stdio::from(w),
    )
}

/// One pair through the relay at `port` from `ip`: two hellos for room
/// `token`, both answered `ok`, then `bytes` each way.
fn relay_pair(ip: &str, port: u16, token: usize, bytes: usize) {
    let t = format!("{token:064x}");
    let mut a = connect_from(ip, port).expect("connect");
    let mut b = connect_from(ip, port).expect("connect");
    for (s, side) in [(&mut a, "d7e1aaa9ddbb4636"), (&mut b, "995caf422c857c91")] {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(format!("please relay {t} for side {side}\n").as_bytes())
            .unwrap();
    }
    for s in [&mut a, &mut b] {
        let mut ok = [0u8; 3];
        s.read_exact(&mut ok).expect("the relay answers ok");
        if &ok != b"ok\n" {
            let mut rest = String::new();
            let _ = s.read_to_string(&mut rest);
            panic!(
                "pair {token} from {ip}: {}{rest}",
                String::from_utf8_lossy(&ok)
            );
        }
    }
    if bytes > 0 {
        let data = random_bytes(bytes, token as u64);
        let mut w = a.try_clone().unwrap();
        let d = data.clone();
        let writer = std::thread::spawn(move || w.write_all(&d).unwrap());
        let mut got = vec![0u8; bytes];
        b.read_exact(&mut got).expect("the pair moves bytes");
        writer.join().unwrap();
        assert!(got == data, "byte-exact");
    }
}

#[test]
fn a_relay_whose_stderr_nobody_reads_keeps_serving_and_stops_on_sigterm() {
    use std::process::{Command, Stdio};
    let (mut unread, stderr) = unread_pipe();
    let port = free_port();
    /// Kills the relay if the test fails before it ends.
    struct Reaped(std::process::Child);
    impl Drop for Reaped {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut relay = Reaped(
        Command::new(BIN)
            .args(["relay", &port.to_string(), "--bind", "127.0.0.1"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap(),
    );
    wait_until("the relay to listen", DEADLINE, || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    // A line per finished pair: far more than the pipe and the relay's
    // queue of log lines hold.
    for i in 0..480 {
        relay_pair(
            &format!("127.0.{}.{}", 2 + i / 200, 1 + i % 200),
            port,
            i,
            0,
        );
    }
    // Still serving, and bytes still flow.
    relay_pair("127.0.1.1", port, 1000, 1 << 20);
    // Someone reads at last: the relay says how many lines it dropped.
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        libc::fcntl(
            std::os::fd::AsRawFd::as_raw_fd(&unread),
            libc::F_SETFL,
            libc::O_NONBLOCK,
        )
    };
    let mut log = Vec::new();
    let mut buf = [0u8; 4096];
    let mut more = 0;
    let started = Instant::now();
    while !String::from_utf8_lossy(&log).contains("log lines dropped") {
        assert!(
            started.elapsed() < DEADLINE,
            "{}",
            String::from_utf8_lossy(&log)
        );
        match unread.read(&mut buf) {
            Ok(n) => log.extend_from_slice(&buf[..n]),
            Err(_) => {
                more += 1;
                relay_pair(&format!("127.0.9.{}", 1 + more % 200), port, 2000 + more, 0);
            }
        }
    }
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(relay.0.id() as i32, libc::SIGTERM) };
    let started = Instant::now();
    let status = loop {
        if let Some(s) = relay.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "SIGTERM ignored"
        );
        std::thread::yield_now();
    };
    assert_eq!(status.code(), Some(0));
}

#[test]
fn a_few_addresses_cannot_take_the_relays_rooms() {
    // Sixteen addresses each try to hold twenty waiting rooms: each gets
    // its share of eight, the rest are told why, and a real room pairs.
    let (_relay, port) = crate::relay::p2p_relay();
    let mut held = Vec::new();
    for src in 0..16 {
        for k in 0..20 {
            let mut s = connect_from(&format!("127.0.3.{}", 1 + src), port).expect("connect");
            let t = format!("{:064x}", src * 100 + k);
            let _ = s.write_all(format!("please relay {t} for side d7e1aaa9ddbb4636\n").as_bytes());
            s.set_nonblocking(true).expect("non-blocking");
            held.push((src, s, String::new()));
        }
    }
    // Which eight of a source's twenty the relay seats depends on the order
    // it reads their hellos: count per source, whichever they are.
    let refused = |held: &[(usize, TcpStream, String)], src: usize| {
        held.iter()
            .filter(|(s, _, said)| *s == src && said.starts_with("error too many"))
            .count()
    };
    let mut buf = [0u8; 256];
    wait_until_lazy(
        || "each address to be told why for all but eight of its rooms".into(),
        DEADLINE,
        || {
            for (_, s, said) in held.iter_mut() {
                if let Ok(n) = s.read(&mut buf) {
                    said.push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            }
            (0..16).all(|src| refused(&held, src) >= 12)
        },
    );
    for src in 0..16 {
        assert_eq!(
            refused(&held, src),
            12,
            "address {src}: eight seats, no more"
        );
    }
    relay_pair("127.0.4.1", port, 99_999, 1 << 16);
    drop(held);
}

/// A stranger who knows the room number (`room`) and keeps two
/// connections waiting in it on the listener's side at the relay on
/// `port`, from addresses of its own: each one the relay pairs is held
/// open in silence and replaced at once, so whoever comes as a dialer
/// meets the stranger, and a listener finds the room full.
struct RoomSquatter {
    stop: Arc<AtomicBool>,
    paired: Arc<AtomicUsize>,
}

impl RoomSquatter {
    fn start(port: u16, room: &str) -> RoomSquatter {
        let token = p2pchat::protocol::transit::token(room);
        let hello = [
            b"please relay ".as_slice(),
            &token,
            b" for side ",
            LISTENER_SIDE,
            b"\n",
        ]
        .concat();
        let stop = Arc::new(AtomicBool::new(false));
        let paired = Arc::new(AtomicUsize::new(0));
        let (st, pa) = (stop.clone(), paired.clone());
        std::thread::spawn(move || {
            let (free_tx, free_rx) = std::sync::mpsc::channel::<()>();
            let mut waiting = 0;
            let mut n = 0u32;
            while !st.load(Ordering::SeqCst) {
                if waiting >= 2 {
                    if free_rx.recv_timeout(Duration::from_millis(50)).is_ok() {
                        waiting -= 1;
                    }
                    continue;
                }
                n += 1;
                let ip = format!("127.0.6.{}", 1 + n % 200);
                let Some(mut s) = connect_from(&ip, port) else {
                    continue;
                };
                if s.write_all(&hello).is_err() {
                    continue;
                }
                waiting += 1;
                let (tx, st, pa) = (free_tx.clone(), st.clone(), pa.clone());
                std::thread::spawn(move || {
                    let _ = s.set_read_timeout(Some(Duration::from_millis(100)));
                    let mut reply = [0u8; 3];
                    let mut got = 0;
                    while got < 3 && !st.load(Ordering::SeqCst) {
                        match s.read(&mut reply[got..]) {
                            Ok(0) => break,
                            Ok(k) => got += k,
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                            Err(_) => break,
                        }
                    }
                    let _ = tx.send(());
                    if &reply == b"ok\n" {
                        // Paired with someone who came back to the room:
                        // hold it, and say nothing.
                        pa.fetch_add(1, Ordering::SeqCst);
                        let mut sink = [0u8; 4096];
                        while !st.load(Ordering::SeqCst) {
                            match s.read(&mut sink) {
                                Ok(0) => break,
                                Ok(_) => {}
                                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                                Err(_) => break,
                            }
                        }
                    }
                });
            }
        });
        RoomSquatter { stop, paired }
    }
}

impl Drop for RoomSquatter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

#[test]
fn a_stranger_with_the_room_number_cannot_stop_a_relay_rooms_resume() {
    // The room is up through `p2pchat relay`. A stranger who knows the
    // room number keeps the room's two waiting places at the relay taken
    // and holds whatever the relay pairs it with. The path to the relay
    // is cut: both ends come back with the resume token, which the
    // stranger cannot name, and the room goes on within its grace period.
    let (_relay, relay_port) = crate::relay::p2p_relay();
    let proxy = crate::resume::HoldProxy::start(relay_port);
    let relay = format!("127.0.0.1:{}", proxy.port);
    let flags = ["--resume", "15", "--handshake-timeout", "30"];
    let mut largs = vec!["listen", "--relay", &relay];
    largs.extend(flags);
    let mut l = Proc::p2p(&largs, In::Pipe);
    let code = stderr_after(&l, "code: ");
    let code = code.trim().to_string();
    let mut dargs = vec!["dial", "--relay", &relay];
    dargs.extend(flags);
    let mut d = Proc::p2p_env(&dargs, In::Pipe, &[("P2PCHAT_CODE", &code)]);
    l.wait_stderr("connected to");
    d.wait_stderr("connected to");
    d.write(b"before\n");
    l.wait_stdout(7);
    let room = code.split('-').next().unwrap().to_string();
    let squatter = RoomSquatter::start(relay_port, &room);
    proxy.cut_noticed([&l, &d], 1);
    wait_until_lazy(
        || {
            format!(
                "the resume; listener:\n{}\ndialer:\n{}",
                l.stderr(),
                d.stderr()
            )
        },
        DEADLINE,
        || l.stderr().contains("reconnected after") && d.stderr().contains("reconnected after"),
    );
    d.write(b"after\n");
    l.write(b"back\n");
    d.close_stdin();
    l.close_stdin();
    assert_both_ok(&mut d, &mut l);
    assert_eq!(l.stdout(), b"before\nafter\n");
    assert_eq!(d.stdout(), b"back\n");
    assert_eq!(
        squatter.paired.load(Ordering::SeqCst),
        0,
        "nobody came back to the room's own token"
    );
}

#[test]
fn one_address_cannot_sweep_the_relays_room_numbers() {
    // A stranger tries room after room from one address, closing each
    // connection when nobody answers: after sixteen in a minute the relay
    // turns it away, while a real room from another address pairs.
    let (_relay, port) = crate::relay::p2p_relay();
    let try_room = |ip: &str, room: usize| {
        let mut s = connect_from(ip, port).expect("connect");
        let t = format!("{room:064x}");
        s.write_all(format!("please relay {t} for side 995caf422c857c91\n").as_bytes())
            .unwrap();
        s
    };
    for room in 0..16 {
        let mut s = try_room("127.0.7.1", room);
        // Nobody waits there: the relay says nothing; the prober leaves.
        s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let mut b = [0u8; 1];
        assert!(s.read(&mut b).is_err(), "room {room}: no answer yet");
    }
    let mut s = try_room("127.0.7.1", 16);
    let mut said = String::new();
    let _ = s.read_to_string(&mut said);
    assert_eq!(
        said,
        "error too many rooms tried from your address, slow down\n"
    );
    relay_pair("127.0.7.2", port, 17, 1 << 16);
}

#[test]
fn a_pipe_in_verify_code_mode_says_the_data_went_before_the_codes() {
    // Verify codes in a pipe: the data flows before anyone can compare
    // them. The room still works (a netcat replacement), and each side
    // says on stderr what the code does and does not protect, and how to
    // authenticate first. With a one-time code or a secret: no warning.
    let warning = "in a pipe the data flows before anyone can compare verify codes";
    let (mut l, port) = listen(&[], "127.0.0.1", In::Pipe);
    let mut d = dial(&[], "127.0.0.1", port, In::Pipe);
    d.write(b"tar stream\n");
    d.close_stdin();
    l.close_stdin();
    assert_both_ok(&mut l, &mut d);
    assert_eq!(l.stdout(), b"tar stream\n");
    for p in [&l, &d] {
        let err = p.stderr();
        let code_at = err.find("verify code ").expect("a verify code");
        let warned_at = err.find(warning).unwrap_or_else(|| panic!("{err}"));
        assert!(code_at < warned_at, "{err}");
        assert!(err.contains("--code on both sides"), "{err}");
    }

    let secret = [("P2PCHAT_SECRET", "correct horse battery staple")];
    let (mut l, port) = listen_env(&[], "127.0.0.1", In::Pipe, &secret);
    let mut d = dial_env(&[], "127.0.0.1", port, In::Pipe, &secret);
    d.close_stdin();
    l.close_stdin();
    assert_both_ok(&mut l, &mut d);

    let mut l2 = Proc::p2p(&["listen", "0", "--bind", "127.0.0.1", "--code"], In::Pipe);
    let code = stderr_after(&l2, "code: ");
    let port = wait_port(&l2);
    let mut d2 = dial_env(
        &["--code"],
        "127.0.0.1",
        port,
        In::Pipe,
        &[("P2PCHAT_CODE", code.trim())],
    );
    d2.close_stdin();
    l2.close_stdin();
    assert_both_ok(&mut l2, &mut d2);
    for p in [&l, &d, &l2, &d2] {
        assert!(!p.stderr().contains(warning), "{}", p.stderr());
    }
}
