//! Resume: a room that survives its connection. Through a proxy that cuts
//! the connection mid-transfer and forwards the next one when told, every
//! byte arrives exactly once, both ways, directly and through a relay, at a
//! pipe and at a terminal; a peer that is really gone is still reported.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::util::*;

/// Forwards connections to `target` until told to cut: then it drops the
/// connection and turns every new one away until released.
pub(crate) struct HoldProxy {
    pub(crate) port: u16,
    held: Arc<AtomicBool>,
    live: Arc<std::sync::Mutex<Vec<TcpStream>>>,
}

impl HoldProxy {
    pub(crate) fn start(target: u16) -> HoldProxy {
        HoldProxy::paced(target, None)
    }

    /// As [`HoldProxy::start`], forwarding at most `rate` bytes a second
    /// each way when given: a slow link, so a cut falls mid-transfer.
    pub(crate) fn paced(target: u16, rate: Option<u64>) -> HoldProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy bind");
        let port = listener.local_addr().expect("addr").port();
        let held = Arc::new(AtomicBool::new(false));
        let live = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (h, l) = (held.clone(), live.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                if h.load(Ordering::SeqCst) {
                    continue; // dropped: closed at once
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    return;
                };
                l.lock()
                    .unwrap()
                    .extend([client.try_clone().unwrap(), server.try_clone().unwrap()]);
                for (from, to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || pump(from, to, rate));
                }
            }
        });
        HoldProxy { port, held, live }
    }

    pub(crate) fn cut_and_hold(&self) {
        self.held.store(true, Ordering::SeqCst);
        for s in self.live.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    pub(crate) fn release(&self) {
        self.held.store(false, Ordering::SeqCst);
    }

    /// Cuts, waits until both sides report their `nth` lost connection,
    /// and lets them back in.
    pub(crate) fn cut_noticed(&self, sides: [&Proc; 2], nth: usize) {
        self.cut_and_hold();
        let lost = |p: &Proc| p.stderr().matches("connection lost").count() >= nth;
        wait_until("both notice the cut", DEADLINE, || {
            sides.iter().all(|p| lost(p))
        });
        self.release();
    }
}

/// Both sides exit 0, each got the other's stream (`sent.0` the dialer's,
/// `sent.1` the listener's) byte for byte, and each reconnected `times`.
fn assert_resumed_intact(l: &mut Proc, d: &mut Proc, sent: (&[u8], &[u8]), times: usize) {
    assert_both_ok(l, d);
    assert_same_bytes(&l.stdout(), sent.0, "dialer to listener");
    assert_same_bytes(&d.stdout(), sent.1, "listener to dialer");
    for (who, p) in [("listener", &*l), ("dialer", &*d)] {
        let err = p.stderr();
        assert_eq!(
            err.matches("reconnected after").count(),
            times,
            "{who}:\n{err}"
        );
    }
}

/// Forwards `from` to `to` until either end goes, at most `rate` bytes a
/// second when given (a slow link's pace, not a wait for anything).
fn pump(mut from: TcpStream, mut to: TcpStream, rate: Option<u64>) {
    let mut buf = [0u8; 16 * 1024];
    let start = std::time::Instant::now();
    let mut moved = 0u64;
    loop {
        if let Some(rate) = rate {
            let due = std::time::Duration::from_secs_f64(moved as f64 / rate as f64);
            if let Some(ahead) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(ahead);
            }
        }
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => n,
        };
        if to.write_all(&buf[..n]).is_err() {
            return;
        }
        moved += n as u64;
    }
}

/// Three cuts, each while data flows both ways (some of it in flight,
/// so it is lost and must be sent again), each once both sides are in the
/// room.
#[test]
fn cuts_in_the_middle_of_a_transfer_lose_and_double_nothing() {
    let a = random_bytes(8 << 20, 71);
    let b = random_bytes(6 << 20, 72);
    let (mut l, port) = listen(&[], "127.0.0.1", In::Pipe);
    let proxy = HoldProxy::start(port);
    let mut d = dial(&[], "127.0.0.1", proxy.port, In::Pipe);
    l.wait_stderr("connected to");
    d.wait_stderr("connected to");
    let (ca, cb) = (a.len() / 4, b.len() / 4);
    for k in 0..4 {
        d.write(&a[k * ca..(k + 1) * ca]);
        l.write(&b[k * cb..(k + 1) * cb]);
        if k == 3 {
            break;
        }
        // Cut with part of this quarter still on its way.
        wait_until("half a quarter through", DEADLINE, || {
            l.stdout_len() >= k * ca + ca / 2 && d.stdout_len() >= k * cb + cb / 2
        });
        proxy.cut_noticed([&l, &d], k + 1);
        let back = |p: &Proc| p.stderr().matches("reconnected after").count() > k;
        wait_until("both reconnected", DEADLINE, || back(&l) && back(&d));
    }
    d.close_stdin();
    l.close_stdin();
    assert_resumed_intact(&mut l, &mut d, (&a, &b), 3);
    for (who, p) in [("listener", &l), ("dialer", &d)] {
        let err = p.stderr();
        assert!(err.contains("nothing lost"), "{who}:\n{err}");
    }
    assert!(
        d.stderr().contains("reconnecting for up to 60 s"),
        "{}",
        d.stderr()
    );
    assert!(
        l.stderr()
            .contains("waiting up to 60 s for the peer to reconnect"),
        "{}",
        l.stderr()
    );
}

/// With files for input nothing sent is kept in memory: each resume reads
/// the file again from where the peer's delivery stopped. Three cuts with
/// data in flight, both ways and one way; every byte arrives once.
#[test]
fn a_file_for_input_is_read_again_after_each_cut() {
    for b_len in [40 << 20, 0] {
        let a = random_bytes(48 << 20, 81);
        let b = random_bytes(b_len, 82);
        let tmp = TempDir::new("resume-files");
        let (fa, fb) = (tmp.file("a", &a), tmp.file("b", &b));
        // No heartbeat for minutes: one way, nothing else wakes the
        // sender, and the rewind must not wait for a timer.
        let slow = ["--idle-timeout", "600"];
        let (mut l, port) = listen(&slow, "127.0.0.1", In::File(fb));
        let proxy = HoldProxy::start(port);
        let mut d = dial(&slow, "127.0.0.1", proxy.port, In::File(fa));
        for k in 1..=3 {
            wait_until("a quarter more through", DEADLINE, || {
                l.stdout_len() >= k * a.len() / 4 && d.stdout_len() >= k * b.len() / 4
            });
            proxy.cut_noticed([&l, &d], k);
        }
        assert_resumed_intact(&mut l, &mut d, (&a, &b), 3);
    }
}

/// A listener killed outright: the dialer's redials are refused, and it
/// says the peer is gone without waiting out the grace period.
#[test]
fn a_killed_listener_is_reported_soon() {
    let (mut l, port) = listen(&[], "127.0.0.1", In::Pipe);
    let mut d = dial(&[], "127.0.0.1", port, In::Pipe);
    d.wait_stderr("connected to");
    l.signal(libc::SIGKILL);
    let _ = l.wait();
    assert_eq!(d.code(), 1, "{}", d.stderr());
    assert!(
        d.stderr()
            .contains("has refused connections for 10 s: the peer's p2pchat has ended"),
        "{}",
        d.stderr()
    );
}

/// A dialer killed outright cannot come back: the listener reports it
/// once the grace period is over, with what was not confirmed.
#[test]
fn a_killed_dialer_is_reported_after_the_grace_period() {
    let grace = ["--resume", "2"];
    let (mut l, port) = listen(&grace, "127.0.0.1", In::Pipe);
    let mut d = dial(&grace, "127.0.0.1", port, In::Pipe);
    l.wait_stderr("connected to");
    d.signal(libc::SIGKILL);
    let _ = d.wait();
    assert_eq!(l.code(), 1, "{}", l.stderr());
    let err = l.stderr();
    assert!(err.contains("waiting up to 2 s for the peer"), "{err}");
    assert!(err.contains("not resumed within 2 s"), "{err}");
}

#[test]
fn resume_cannot_be_combined_with_plain() {
    let mut p = Proc::p2p(&["listen", "--plain", "--resume", "5", "0"], In::Null);
    assert_eq!(p.code(), 2);
    assert!(p
        .stderr()
        .contains("--resume cannot be combined with --plain"));
    // --resume 0 is no resume at all, which plain mode is anyway.
    let (mut l, port) = listen(&["--plain", "--resume", "0"], "127.0.0.1", In::Null);
    let mut d = dial(&["--plain"], "127.0.0.1", port, In::Null);
    assert_both_ok(&mut l, &mut d);
}

/// Through `p2pchat relay`, with the path to the relay cut mid-transfer
/// (once both sides are in the room: a cut before the dialer has the
/// listener's HELLO is a failed handshake, not a resume): both sides go
/// back to the relay with the same room and carry on.
#[test]
fn through_a_relay_both_sides_come_back_to_the_same_room() {
    let (a, b) = (random_bytes(4 << 20, 81), random_bytes(3 << 20, 82));
    let (_relay, relay_port) = crate::relay::p2p_relay();
    let proxy = HoldProxy::start(relay_port);
    let relay = format!("127.0.0.1:{}", proxy.port);
    let mut l = Proc::p2p(&["listen", "--relay", &relay], In::Pipe);
    let code = stderr_after(&l, "code: ");
    let mut d = Proc::p2p_env(
        &["dial", "--relay", &relay],
        In::Pipe,
        &[("P2PCHAT_CODE", code.trim())],
    );
    l.wait_stderr("connected to");
    d.wait_stderr("connected to");
    let (ha, hb) = (a.len() / 2, b.len() / 2);
    d.write(&a[..ha]);
    l.write(&b[..hb]);
    l.wait_stdout(ha);
    d.wait_stdout(hb);
    proxy.cut_and_hold();
    l.wait_stderr("connection lost");
    d.wait_stderr("connection lost");
    proxy.release();
    d.write(&a[ha..]);
    l.write(&b[hb..]);
    d.close_stdin();
    l.close_stdin();
    assert_both_ok(&mut l, &mut d);
    assert_same_bytes(&l.stdout(), &a, "dialer to listener");
    assert_same_bytes(&d.stdout(), &b, "listener to dialer");
    for p in [&l, &d] {
        assert!(p.stderr().contains("reconnected after"), "{}", p.stderr());
    }
}

/// Two hosts on a veth pair; 100 MiB each way while the path is broken
/// three ways: a middlebox reset (REJECT with tcp-reset), the dialer's
/// address changing under the connection (roaming), and a black hole both
/// ways longer than the idle timeout. Each fault waits for data to flow
/// past a mark and is lifted once the dialer has noticed it.
#[test]
fn a_transfer_survives_resets_roaming_and_a_black_hole() {
    let Some(lab) = crate::netns::Namespaces::create("r", &["a", "b"], "the resume rig") else {
        return;
    };
    let (a, b) = (lab.name("a"), lab.name("b"));
    lab.veth(("a", "ra"), ("b", "rb"));
    lab.ip(&["-n", &a, "addr", "add", "10.78.0.1/24", "dev", "ra"]);
    lab.ip(&["-n", &b, "addr", "add", "10.78.0.2/24", "dev", "rb"]);
    let tmp = TempDir::new("resume-ns");
    let mib = 1 << 20;
    let up = random_bytes(100 * mib, 91);
    let down = random_bytes(100 * mib, 92);
    let flags = ["--idle-timeout", "3"];
    let mut largs = vec!["listen"];
    largs.extend(flags);
    largs.extend(["0", "--bind", "10.78.0.1"]);
    let mut l = lab.p2p("a", &largs, In::File(tmp.file("down", &down)), &[]);
    let port = wait_port(&l).to_string();
    let mut dargs = vec!["dial"];
    dargs.extend(flags);
    dargs.extend(["10.78.0.1", &port]);
    let mut d = lab.p2p("b", &dargs, In::File(tmp.file("up", &up)), &[]);
    let lost = |n: usize| move |p: &Proc| p.stderr().matches("connection lost").count() >= n;
    let flowed = |p: &Proc, n: usize| p.stdout_len() >= n * mib;

    // 1. A middlebox resets the dialer's connection.
    wait_until("20 MiB", DEADLINE, || flowed(&l, 20));
    let reset = [
        "-A",
        "OUTPUT",
        "-p",
        "tcp",
        "-j",
        "REJECT",
        "--reject-with",
        "tcp-reset",
    ];
    lab.exec("b", "iptables", &reset);
    wait_until_lazy(
        || {
            format!(
                "the reset noticed; stderr:\n{}\n---\n{}",
                l.stderr(),
                d.stderr()
            )
        },
        DEADLINE,
        || lost(1)(&d),
    );
    lab.exec("b", "iptables", &["-F", "OUTPUT"]);

    // 2. The dialer's address changes under the connection.
    wait_until("45 MiB", DEADLINE, || flowed(&l, 45));
    // (Deleted first: deleting a primary address takes its secondaries.)
    lab.ip(&["-n", &b, "addr", "del", "10.78.0.2/24", "dev", "rb"]);
    lab.ip(&["-n", &b, "addr", "add", "10.78.0.3/24", "dev", "rb"]);
    wait_until_lazy(
        || {
            format!(
                "the roaming noticed; stderr:\n{}\n---\n{}",
                l.stderr(),
                d.stderr()
            )
        },
        DEADLINE,
        || lost(2)(&d),
    );

    // 3. A black hole both ways, longer than the idle timeout.
    wait_until_lazy(
        || format!("70 MiB; stderr:\n{}\n---\n{}", l.stderr(), d.stderr()),
        DEADLINE,
        || flowed(&l, 70),
    );
    lab.exec("b", "iptables", &["-A", "INPUT", "-j", "DROP"]);
    lab.exec("b", "iptables", &["-A", "OUTPUT", "-j", "DROP"]);
    wait_until_lazy(
        || {
            format!(
                "the black hole noticed; stderr:\n{}\n---\n{}",
                l.stderr(),
                d.stderr()
            )
        },
        DEADLINE,
        || lost(3)(&d),
    );
    lab.exec("b", "iptables", &["-F"]);

    assert_both_ok(&mut l, &mut d);
    assert_same_bytes(&l.stdout(), &up, "dialer to listener");
    assert_same_bytes(&d.stdout(), &down, "listener to dialer");
    let reconnects = d.stderr().matches("reconnected after").count();
    assert!(reconnects >= 3, "{}", d.stderr());
}

/// At a terminal: the connection goes down, a line typed meanwhile is
/// marked as queued, and it arrives once the connection is back.
#[test]
fn at_a_terminal_lines_typed_while_down_are_queued_and_delivered() {
    use crate::pty::Pty;
    let mut alice = Pty::spawn(
        &["listen", "--name", "alice", "0", "--bind", "127.0.0.1"],
        &[],
        24,
        100,
    );
    let port = alice.listening_port();
    let proxy = HoldProxy::start(port);
    let mut bob = dial(&["--name", "bob"], "127.0.0.1", proxy.port, In::Pipe);
    alice.wait_for("\"bob\" joined");
    alice.type_text("before\r");
    bob.wait_stdout(7);
    proxy.cut_and_hold();
    alice.wait_for("waiting up to 60 s");
    alice.type_text("while down\r");
    alice.wait_for("(queued: sent when the connection is back)");
    assert_eq!(bob.stdout(), b"before\n", "nothing gets through while down");
    proxy.release();
    alice.wait_for("reconnected after");
    bob.wait_stdout(18);
    assert_eq!(bob.stdout(), b"before\nwhile down\n");
    alice.type_text("/quit\r");
    assert_eq!(alice.code(), 0, "{}", alice.text());
    assert_eq!(bob.code(), 0, "{}", bob.stderr());
}
