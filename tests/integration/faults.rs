//! Fault injection, each bounded in time: a vanished host, a frozen peer, a
//! slow reader, a connection storm, and one enormous line. Traffic stays on
//! loopback or inside network namespaces the test creates itself.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::netns::Namespaces;
use crate::util::*;

/// Two network namespaces joined by a veth pair, removed on drop.
struct Netns {
    _lab: Namespaces,
    a: String,
    b: String,
}

impl Netns {
    /// Host A is 10.77.0.1 and host B is 10.77.0.2, each only in its own
    /// namespace. None if this machine cannot make them (not root, no ip).
    fn create() -> Option<Netns> {
        let lab = Namespaces::create("f", &["a", "b"], "the fault tests")?;
        let (a, b) = (lab.name("a"), lab.name("b"));
        lab.veth(("a", "va"), ("b", "vb"));
        lab.ip(&["-n", &a, "addr", "add", "10.77.0.1/30", "dev", "va"]);
        lab.ip(&["-n", &b, "addr", "add", "10.77.0.2/30", "dev", "vb"]);
        Some(Netns { _lab: lab, a, b })
    }

    /// Drops every packet in and out of `ns`: its host vanished.
    fn blackhole(&self, ns: &str) {
        for chain in ["INPUT", "OUTPUT"] {
            let ok = Command::new("ip")
                .args(["netns", "exec", ns, "iptables", "-A", chain, "-j", "DROP"])
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            assert!(ok, "iptables in {ns} failed");
        }
    }
}

#[test]
fn a_vanished_host_is_reported_within_the_idle_timeout() {
    let Some(ns) = Netns::create() else { return };
    let idle = 3;
    let idle_s = idle.to_string();
    let mut l = Proc::spawn(
        "ip",
        &[
            "netns",
            "exec",
            &ns.a,
            BIN,
            "listen",
            "--idle-timeout",
            &idle_s,
            // The idle timeout itself; resume would wait on past it.
            "--resume",
            "0",
            "0",
            "--bind",
            "10.77.0.1",
        ],
        In::Pipe,
        &[],
    );
    let port = wait_port(&l).to_string();
    let d = Proc::spawn(
        "ip",
        &[
            "netns",
            "exec",
            &ns.b,
            BIN,
            "dial",
            "--idle-timeout",
            &idle_s,
            "--resume",
            "0",
            "10.77.0.1",
            &port,
        ],
        In::Pipe,
        &[],
    );
    l.wait_stderr("connected to");
    d.wait_stderr("connected to");
    ns.blackhole(&ns.b);
    let cut = Instant::now();
    assert_eq!(l.code(), 1, "{}", l.stderr());
    let took = cut.elapsed();
    assert!(l.stderr().contains("connection lost"), "{}", l.stderr());
    assert!(
        took < Duration::from_secs(idle + 5),
        "noticed after {took:?}, idle timeout {idle} s"
    );
}

#[test]
fn a_frozen_peer_is_detected_by_the_heartbeat() {
    let flags = ["--idle-timeout", "2", "--resume", "0"];
    let (mut l, port) = listen(&flags, "127.0.0.1", In::Pipe);
    let d = dial(&flags, "127.0.0.1", port, In::Pipe);
    l.wait_stderr("connected to");
    // The kernel still ACKs for a stopped process: only the app-level
    // heartbeat can tell.
    d.signal(libc::SIGSTOP);
    let frozen = Instant::now();
    assert_eq!(l.code(), 1, "{}", l.stderr());
    assert!(l.stderr().contains("no sign of life"), "{}", l.stderr());
    assert!(frozen.elapsed() < Duration::from_secs(2 + 5));
    d.signal(libc::SIGCONT);
}

#[test]
fn a_peer_thawed_before_the_timeout_loses_nothing() {
    let tmp = TempDir::new("thaw");
    let data = random_bytes(8 * 1024 * 1024, 31);
    let (mut l, port) = listen(&["--idle-timeout", "10"], "127.0.0.1", In::Null);
    let mut d = dial(
        &["--idle-timeout", "10"],
        "127.0.0.1",
        port,
        In::File(tmp.file("d", &data)),
    );
    l.wait_stdout(1);
    d.signal(libc::SIGSTOP);
    // The fault itself: the sender stays frozen for a second.
    std::thread::sleep(Duration::from_secs(1));
    d.signal(libc::SIGCONT);
    assert_both_ok(&mut d, &mut l);
    assert_same_bytes(&l.stdout(), &data, "l stdout");
}

#[test]
fn a_slow_reader_blocks_the_sender_without_growing_memory() {
    for mode in [&[][..], &["--plain"][..]] {
        let total = 32 * 1024 * 1024;
        let data = Arc::new(random_bytes(total, 41));
        let mut largs: Vec<&str> = vec!["listen"];
        largs.extend(mode);
        largs.extend(["0", "--bind", "127.0.0.1"]);
        let mut l = Command::new(BIN)
            .args(&largs)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lerr = l.stderr.take().unwrap();
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while !String::from_utf8_lossy(&line).contains("listening on")
            || line.last() != Some(&b'\n')
        {
            assert_eq!(lerr.read(&mut byte).unwrap(), 1, "listener died");
            line.push(byte[0]);
        }
        let text = String::from_utf8_lossy(&line).to_string();
        let port: u16 = text.trim().rsplit(':').next().unwrap().parse().unwrap();
        std::thread::spawn(move || std::io::copy(&mut lerr, &mut std::io::sink()));

        let mut d = dial(mode, "127.0.0.1", port, In::Pipe);
        let mut sender_in = d.stdin.take().unwrap();
        let written = Arc::new(AtomicUsize::new(0));
        let (w, src) = (written.clone(), data.clone());
        let writer = std::thread::spawn(move || {
            for chunk in src.chunks(64 * 1024) {
                if sender_in.write_all(chunk).is_err() {
                    return;
                }
                w.fetch_add(chunk.len(), Ordering::SeqCst);
            }
        });
        let mut out = l.stdout.take().unwrap();
        let mut got = Vec::with_capacity(total);
        let mut buf = vec![0u8; 4096];
        // Drain at about 16 KiB/s for two seconds.
        let slow_until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < slow_until {
            let n = out.read(&mut buf).unwrap();
            got.extend_from_slice(&buf[..n]);
            std::thread::sleep(Duration::from_millis(250));
        }
        let in_flight = written.load(Ordering::SeqCst);
        assert!(
            in_flight < total,
            "{mode:?}: the sender never blocked ({in_flight} bytes taken)"
        );
        let rss = [l.id(), d.child.id()].map(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/status"))
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find(|x| x.starts_with("VmHWM:"))
                        .map(str::to_string)
                })
                .and_then(|x| {
                    x.split_whitespace()
                        .nth(1)
                        .and_then(|v| v.parse::<u64>().ok())
                })
                .unwrap_or(0)
        });
        assert!(
            rss.iter().all(|&k| k < 12 * 1024),
            "{mode:?}: peak RSS {rss:?} KiB"
        );
        // Now read at full speed: every byte arrives, in order.
        out.read_to_end(&mut got).unwrap();
        writer.join().unwrap();
        assert_eq!(l.wait().unwrap().code(), Some(0));
        assert_eq!(d.code(), 0, "{}", d.stderr());
        assert!(got == *data, "{mode:?}: got {} of {total} bytes", got.len());
    }
}

#[test]
fn a_connection_storm_never_disturbs_the_room() {
    // With resume the port stays open for resumes of this room only; the
    // storm is turned away all the same.
    for (mode, port_closes) in [
        (&[][..], false),
        (&["--resume", "0"][..], true),
        (&["--plain"][..], true),
    ] {
        let (mut l, port) = listen(mode, "127.0.0.1", In::Pipe);
        let mut d = dial(mode, "127.0.0.1", port, In::Pipe);
        l.wait_stderr("connected to");
        d.write(b"before the storm\n");
        l.wait_stdout(17);
        let mut reached = 0;
        for i in 0..300 {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
                reached += 1;
                let _ = s.write_all(format!("GARBAGE {i}\r\n\x00\x01").as_bytes());
            }
        }
        d.write(b"after the storm\n");
        l.write(b"reply\n");
        d.close_stdin();
        l.close_stdin();
        assert_both_ok(&mut l, &mut d);
        assert_eq!(
            l.stdout(),
            b"before the storm\nafter the storm\n",
            "{mode:?}"
        );
        assert_eq!(d.stdout(), b"reply\n");
        assert!(!l.stderr().contains("GARBAGE"));
        if port_closes {
            assert_eq!(
                reached, 0,
                "{mode:?}: the port must refuse everyone once the room is up"
            );
        }
    }
}

#[test]
fn a_single_100_mib_line_arrives_exactly() {
    let tmp = TempDir::new("line");
    let mut data = random_bytes(100 * 1024 * 1024, 51);
    for b in data.iter_mut().filter(|b| **b == b'\n') {
        *b = b'x';
    }
    let (mut l, port) = listen(&[], "127.0.0.1", In::Null);
    let mut d = dial(&[], "127.0.0.1", port, In::File(tmp.file("line", &data)));
    assert_both_ok(&mut d, &mut l);
    assert_same_bytes(&l.stdout(), &data, "l stdout");
}

impl Netns {
    /// Runs iptables in `ns`.
    fn iptables(&self, ns: &str, args: &[&str]) {
        let ok = Command::new("ip")
            .args(["netns", "exec", ns, "iptables"])
            .args(args)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "iptables {args:?} in {ns} failed");
    }

    /// A listener on host A and a dialer on host B, both with `flags`,
    /// connected: the room is up on the listener's side.
    fn room(&self, flags: &[&str], l_in: In, d_in: In) -> (Proc, Proc) {
        let mut largs = vec!["listen"];
        largs.extend(flags);
        largs.extend(["0", "--bind", "10.77.0.1"]);
        let l = self.p2p(&self.a, &largs, l_in);
        let port = wait_port(&l).to_string();
        let mut dargs = vec!["dial"];
        dargs.extend(flags);
        dargs.extend(["10.77.0.1", &port]);
        let d = self.p2p(&self.b, &dargs, d_in);
        l.wait_stderr("connected to");
        (l, d)
    }

    /// Starts p2pchat in namespace `ns` with `args`.
    fn p2p(&self, ns: &str, args: &[&str], input: In) -> Proc {
        let mut full = vec!["netns", "exec", ns, BIN];
        full.extend_from_slice(args);
        Proc::spawn("ip", &full, input, &[])
    }
}

#[test]
fn an_outage_shorter_than_the_idle_timeout_is_survived_by_a_one_way_transfer() {
    let Some(ns) = Netns::create() else { return };
    // Default idle timeout (30 s); a 20 s outage in the middle of a paced
    // one-way encrypted transfer.
    let (mut l, mut d) = ns.room(&[], In::Null, In::Pipe);
    let data = random_bytes(12 * 1024 * 1024, 21);
    let started = Instant::now();
    let mut sent = 0;
    let mut cut = false;
    while sent < data.len() {
        let n = (64 * 1024).min(data.len() - sent);
        d.write(&data[sent..sent + n]);
        sent += n;
        if !cut && sent >= 2 * 1024 * 1024 {
            // The outage: everything in and out of the dialer's host drops.
            for chain in ["INPUT", "OUTPUT"] {
                ns.iptables(&ns.b, &["-I", chain, "-j", "DROP"]);
            }
            cut = true;
            let outage = Instant::now();
            while outage.elapsed() < Duration::from_secs(20) {
                assert!(l.child.try_wait().unwrap().is_none(), "{}", l.stderr());
                std::thread::sleep(Duration::from_millis(100)); // the outage's length, not a sync
            }
            for chain in ["INPUT", "OUTPUT"] {
                ns.iptables(&ns.b, &["-D", chain, "-j", "DROP"]);
            }
        }
        std::thread::sleep(Duration::from_millis(20)); // pacing the producer
    }
    d.close_stdin();
    assert_eq!(l.code(), 0, "{}", l.stderr());
    assert_eq!(
        d.code(),
        0,
        "the sender survives the outage: {}",
        d.stderr()
    );
    assert_same_bytes(&l.stdout(), &data, "the transfer across the outage");
    assert!(started.elapsed() > Duration::from_secs(20));
}

#[test]
fn a_lossy_but_live_chat_is_not_cut_before_the_idle_timeout() {
    let Some(ns) = Netns::create() else { return };
    let (mut l, mut d) = ns.room(&["--idle-timeout", "5"], In::Pipe, In::Pipe);
    // 20 % of packets lost each way.
    for chain in ["INPUT", "OUTPUT"] {
        ns.iptables(
            &ns.b,
            &[
                "-I",
                chain,
                "-m",
                "statistic",
                "--mode",
                "random",
                "--probability",
                "0.2",
                "-j",
                "DROP",
            ],
        );
    }
    let mut want_l = Vec::new();
    let mut want_d = Vec::new();
    for i in 0..40 {
        let a = format!("from the dialer {i}\n");
        let b = format!("from the listener {i}\n");
        d.write(a.as_bytes());
        l.write(b.as_bytes());
        want_l.extend_from_slice(a.as_bytes());
        want_d.extend_from_slice(b.as_bytes());
        std::thread::sleep(Duration::from_millis(500)); // a person typing
    }
    d.close_stdin();
    l.close_stdin();
    assert_both_ok(&mut d, &mut l);
    assert_eq!(l.stdout(), want_l);
    assert_eq!(d.stdout(), want_d);
}

#[test]
fn acks_of_our_data_are_a_sign_of_life_when_the_peers_own_packets_are_stuck() {
    let Some(ns) = Netns::create() else { return };
    // What happens after an outage: the receiver's PINGs sit behind a
    // backed-off retransmission while its kernel acknowledges our data
    // again. Modelled exactly: for longer than the idle timeout, every
    // packet of the receiver that carries payload is dropped; its pure
    // ACKs (with at most one SACK block: 64 bytes) pass.
    let (mut l, mut d) = ns.room(
        &["--idle-timeout", "4", "--resume", "0"],
        In::Pipe,
        In::Pipe,
    );
    let stuck = [
        "-p", "tcp", "-m", "length", "--length", "65:65535", "-j", "DROP",
    ];
    let mut rule = vec!["-I", "OUTPUT"];
    rule.extend_from_slice(&stuck);
    ns.iptables(&ns.a, &rule);
    let data = random_bytes(8 * 1024 * 1024, 23);
    let started = Instant::now();
    let mut sent = 0;
    // Less than stream 0's credit (2 MiB) in those 7 s: the receiver's
    // CREDIT records are stuck too, so beyond it the sender would wait
    // for one, sending nothing that could be acknowledged.
    while started.elapsed() < Duration::from_secs(7) {
        let n = (4 * 1024).min(data.len() - sent);
        assert!(
            d.child.try_wait().unwrap().is_none() && !d.stderr().contains("p2pchat:"),
            "the sender gave up after {:?}: {}; the receiver: {}",
            started.elapsed(),
            d.stderr(),
            l.stderr()
        );
        d.write(&data[sent..sent + n]);
        sent += n;
        std::thread::sleep(Duration::from_millis(20)); // pacing the producer
    }
    let mut rule = vec!["-D", "OUTPUT"];
    rule.extend_from_slice(&stuck);
    ns.iptables(&ns.a, &rule);
    d.write(&data[sent..]);
    d.close_stdin();
    l.wait_stdout(data.len());
    l.close_stdin();
    assert_eq!(d.code(), 0, "{}", d.stderr());
    assert_eq!(l.code(), 0, "{}", l.stderr());
    assert_same_bytes(&l.stdout(), &data, "the transfer");
}
