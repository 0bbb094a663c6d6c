//! The core room over real loopback sockets: byte-exact pipes both ways,
//! half-close, backpressure, one peer only, errors and usage.

use std::io::Read;
use std::net::TcpStream;

use crate::util::*;

/// Both modes: every pipe property must hold encrypted and plain.
const MODES: [&[&str]; 2] = [&[], &["--plain"]];

fn all_bytes() -> Vec<u8> {
    let mut v: Vec<u8> = (0..=255u8).collect();
    v.extend((0..=255u8).rev());
    v.extend(random_bytes(100_000, 7));
    v // deliberately no trailing newline
}

#[test]
fn both_directions_are_byte_exact_and_binary_safe() {
    for mode in MODES {
        let tmp = TempDir::new("exact");
        let a = all_bytes();
        let b = random_bytes(77_777, 3);
        let (mut l, port) = listen(mode, "127.0.0.1", In::File(tmp.file("a", &a)));
        let mut d = dial(mode, "127.0.0.1", port, In::File(tmp.file("b", &b)));
        assert_eq!(d.code(), 0, "dialer stderr: {}", d.stderr());
        assert_eq!(l.code(), 0, "listener stderr: {}", l.stderr());
        assert!(
            d.stdout() == a,
            "mode {mode:?}: dialer got {} bytes",
            d.stdout_len()
        );
        assert!(
            l.stdout() == b,
            "mode {mode:?}: listener got {} bytes",
            l.stdout_len()
        );
    }
}

#[test]
fn a_ten_mib_random_file_arrives_exactly() {
    for mode in MODES {
        let tmp = TempDir::new("10mib");
        let data = random_bytes(10 * 1024 * 1024 + 12_345, 11);
        let (mut l, port) = listen(mode, "127.0.0.1", In::Null);
        let mut d = dial(mode, "127.0.0.1", port, In::File(tmp.file("big", &data)));
        assert_eq!(d.code(), 0, "{}", d.stderr());
        assert_eq!(l.code(), 0, "{}", l.stderr());
        assert!(
            l.stdout() == data,
            "mode {mode:?}: got {} of {} bytes",
            l.stdout_len(),
            data.len()
        );
    }
}

#[test]
fn half_close_then_a_late_reply_still_arrives() {
    for mode in MODES {
        let (mut l, port) = listen(mode, "127.0.0.1", In::Pipe);
        let mut d = dial(mode, "127.0.0.1", port, In::Pipe);
        d.write(b"question\n");
        d.close_stdin(); // we are done sending; we keep receiving
        l.wait_stdout(9);
        assert_eq!(l.stdout(), b"question\n");
        l.wait_stderr("stopped sending");
        l.write(b"late answer\n");
        l.close_stdin();
        assert_eq!(d.code(), 0, "{}", d.stderr());
        assert_eq!(l.code(), 0, "{}", l.stderr());
        assert_eq!(d.stdout(), b"late answer\n", "mode {mode:?}");
    }
}

#[test]
fn stdout_closes_as_soon_as_the_peer_is_done() {
    for mode in MODES {
        let (mut l, port) = listen(mode, "127.0.0.1", In::Pipe);
        let mut d = dial(mode, "127.0.0.1", port, In::Pipe);
        d.write(b"payload");
        d.close_stdin();
        // The listener's stdout ends (its reader sees EOF) while its own
        // stdin is still open: `p2pchat listen | tar x` finishes.
        wait_until("listener stdout to reach EOF", DEADLINE, || {
            l.stdout() == b"payload" && !l.stdout_open()
        });
        assert!(
            l.child.try_wait().unwrap().is_none(),
            "listener must still run: its stdin is open"
        );
        l.close_stdin();
        assert_eq!(l.code(), 0);
        assert_eq!(d.code(), 0);
    }
}

#[test]
fn bulk_both_ways_keeps_memory_bounded() {
    for mode in MODES {
        let tmp = TempDir::new("bulk");
        let size = 64 * 1024 * 1024;
        let a = tmp.file("a", &random_bytes(size, 21));
        let b = tmp.file("b", &random_bytes(size, 22));
        let (mut l, port) = listen(mode, "127.0.0.1", In::File(a.clone()));
        let mut d = dial(mode, "127.0.0.1", port, In::File(b.clone()));
        let (mut peak_l, mut peak_d) = (0, 0);
        wait_until("the transfer to finish", DEADLINE * 2, || {
            peak_l = peak_l.max(l.peak_rss_kib().unwrap_or(0));
            peak_d = peak_d.max(d.peak_rss_kib().unwrap_or(0));
            l.child.try_wait().unwrap().is_some() && d.child.try_wait().unwrap().is_some()
        });
        assert_both_ok(&mut l, &mut d);
        assert!(
            l.stdout() == std::fs::read(&b).unwrap(),
            "listener got {} bytes",
            l.stdout_len()
        );
        assert!(
            d.stdout() == std::fs::read(&a).unwrap(),
            "dialer got {} bytes",
            d.stdout_len()
        );
        // A few MiB however much flows; the buffers are 64 KiB each way.
        for (who, kib) in [("listener", peak_l), ("dialer", peak_d)] {
            assert!(kib < 12 * 1024, "mode {mode:?}: {who} peaked at {kib} KiB");
        }
    }
}

#[test]
fn a_closed_stdout_exits_quietly() {
    for mode in MODES {
        let tmp = TempDir::new("head");
        let data = random_bytes(4 * 1024 * 1024, 5);
        // The real pipeline; bash reports p2pchat's own exit status.
        let script = format!(
            "{BIN} listen {} 0 --bind 127.0.0.1 </dev/null | head -c 5; echo \" status=${{PIPESTATUS[0]}}\"",
            mode.join(" ")
        );
        let mut l = Proc::spawn("bash", &["-c", &script], In::Null, &[]);
        let port = wait_port(&l);
        let mut d = dial(mode, "127.0.0.1", port, In::File(tmp.file("d", &data)));
        assert_eq!(l.code(), 0, "{}", l.stderr());
        let out = l.stdout();
        assert_eq!(&out[..5], &data[..5]);
        assert_eq!(
            &out[5..],
            b" status=0\n",
            "p2pchat must exit 0: {}",
            l.stderr()
        );
        assert!(!l.stderr().contains("panick"), "{}", l.stderr());
        let code = d.code();
        assert!(code == 0 || code == 1, "dialer: {code} {}", d.stderr());
    }
}

#[test]
fn a_third_party_never_gets_in() {
    for mode in MODES {
        let (mut l, port) = listen(mode, "127.0.0.1", In::Pipe);
        let mut d = dial(mode, "127.0.0.1", port, In::Pipe);
        l.wait_stderr("connected to");
        // The room is up: a third connection is refused or closed at once,
        // and its bytes never reach anyone's stdout.
        if let Ok(mut intruder) = TcpStream::connect(("127.0.0.1", port)) {
            use std::io::Write;
            let _ = intruder.write_all(b"INTRUDER\n");
            let mut buf = [0u8; 64];
            intruder.set_read_timeout(Some(DEADLINE)).unwrap();
            let n = intruder.read(&mut buf).unwrap_or(0);
            assert_eq!(n, 0, "the intruder must be closed at once");
        }
        d.write(b"real\n");
        d.close_stdin();
        l.close_stdin();
        assert_both_ok(&mut l, &mut d);
        assert_eq!(l.stdout(), b"real\n");
    }
}

#[test]
fn ipv6_loopback_and_bracket_form() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("SKIPPED: no IPv6 loopback on this machine");
        return;
    }
    for mode in MODES {
        let (mut l, port) = listen(mode, "::1", In::Pipe);
        let mut d = dial(mode, "[::1]", port, In::Pipe);
        d.write(b"over ipv6\n");
        d.close_stdin();
        l.wait_stdout(10);
        l.close_stdin();
        assert_both_ok(&mut l, &mut d);
        assert_eq!(l.stdout(), b"over ipv6\n");
    }
}

#[test]
fn the_default_listener_takes_ipv4_peers_too() {
    let mut l = Proc::p2p(&["listen", "--plain", "0"], In::Null);
    let port = wait_port(&l);
    assert!(
        l.stderr().contains("[::]:") || l.stderr().contains("0.0.0.0:"),
        "{}",
        l.stderr()
    );
    let mut d = dial(&["--plain"], "127.0.0.1", port, In::Pipe);
    d.write(b"v4\n");
    d.close_stdin();
    assert_both_ok(&mut l, &mut d);
    assert_eq!(l.stdout(), b"v4\n");
}

#[test]
fn a_name_with_several_addresses_is_tried_in_turn() {
    // `localhost` is ::1 and 127.0.0.1; a listener on only one still works.
    let (mut l, port) = listen(&["--plain"], "127.0.0.1", In::Null);
    let mut d = dial(&["--plain"], "localhost", port, In::Pipe);
    d.write(b"hi\n");
    d.close_stdin();
    assert_both_ok(&mut l, &mut d);
    assert_eq!(l.stdout(), b"hi\n");
}

#[test]
fn retry_waits_for_a_listener_started_later() {
    for mode in MODES {
        let port = free_port();
        let p = port.to_string();
        let mut args = vec!["dial"];
        args.extend(mode);
        args.extend(["127.0.0.1", &p, "--retry", "30"]);
        let mut d = Proc::p2p(&args, In::Pipe);
        d.write(b"early bird\n");
        d.close_stdin();
        let mut args = vec!["listen"];
        args.extend(mode);
        args.extend([&p, "--bind", "127.0.0.1"]);
        let mut l = Proc::p2p(&args, In::Null);
        assert_eq!(d.code(), 0, "{}", d.stderr());
        assert_eq!(l.code(), 0, "{}", l.stderr());
        assert_eq!(l.stdout(), b"early bird\n");
    }
}

#[test]
fn connection_errors_are_one_clear_line_and_exit_1() {
    let port = free_port();
    let mut d = dial(&[], "127.0.0.1", port, In::Null);
    assert_eq!(d.code(), 1);
    assert!(d.stderr().contains("connection refused"), "{}", d.stderr());
    assert_eq!(d.stderr().lines().count(), 1, "{}", d.stderr());

    let mut d = dial(&[], "no-such-host.invalid", 5000, In::Null);
    assert_eq!(d.code(), 1);
    assert!(d.stderr().contains("cannot resolve host"), "{}", d.stderr());

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let mut l = Proc::p2p(&["listen", &port, "--bind", "127.0.0.1"], In::Null);
    assert_eq!(l.code(), 1);
    assert!(
        l.stderr().contains("address already in use"),
        "{}",
        l.stderr()
    );
    assert_eq!(l.stderr().lines().count(), 1, "{}", l.stderr());
}

#[test]
fn usage_errors_exit_2_and_help_shows_both_commands() {
    for args in [
        &["listen", "notaport"][..],
        &["listen", "70000"],
        &["dial", "host"],
        &["dial", "host", "0"],
        &["frobnicate"],
        &[],
        &["listen", "1", "--bind", "not-an-ip"],
        &["listen", "--idle-timeout", "0", "1"],
    ] {
        let mut p = Proc::p2p(args, In::Null);
        assert_eq!(p.code(), 2, "{args:?}: {}", p.stderr());
        assert!(!p.stderr().is_empty());
    }
    let mut p = Proc::p2p(&["--help"], In::Null);
    assert_eq!(p.code(), 0);
    let help = String::from_utf8(p.stdout()).unwrap();
    for needle in ["listen", "dial", "p2pchat listen 51423", "p2pchat dial"] {
        assert!(help.contains(needle), "help lacks {needle:?}:\n{help}");
    }
    let mut p = Proc::p2p(&["--version"], In::Null);
    assert_eq!(p.code(), 0);
    assert!(String::from_utf8(p.stdout())
        .unwrap()
        .starts_with("p2pchat "));
}

#[test]
fn ctrl_c_says_goodbye_and_the_peer_can_tell_the_stream_was_cut() {
    for mode in MODES {
        let (mut l, port) = listen(mode, "127.0.0.1", In::Pipe);
        let mut d = dial(mode, "127.0.0.1", port, In::Pipe);
        d.write(b"before the interrupt\n");
        l.wait_stdout(21);
        d.signal(libc::SIGINT);
        // Our stdin was still open: we cut the conversation short (130).
        assert_eq!(d.code(), 130, "{}", d.stderr());
        if mode.is_empty() {
            // Encrypted: BYE ends the room even though the listener's stdin
            // is still open, and says the dialer's data did not end.
            l.wait_stderr("left the room");
            assert_eq!(l.code(), 1, "{}", l.stderr());
            assert!(
                l.stderr().contains("left before it finished sending"),
                "{}",
                l.stderr()
            );
        } else {
            // Plain TCP has no goodbye: the peer sees our FIN and carries on
            // until its own input ends, like nc.
            l.wait_stderr("stopped sending");
            l.close_stdin();
            assert_eq!(l.code(), 0, "{}", l.stderr());
        }
        assert_eq!(l.stdout(), b"before the interrupt\n", "mode {mode:?}");
    }
}

#[test]
fn ctrl_c_after_our_input_ended_is_a_clean_goodbye() {
    let (mut l, port) = listen(&[], "127.0.0.1", In::Pipe);
    let mut d = dial(&[], "127.0.0.1", port, In::Pipe);
    d.write(b"all of it\n");
    d.close_stdin();
    l.wait_stderr("stopped sending");
    d.signal(libc::SIGINT);
    l.wait_stderr("left the room");
    assert_eq!(l.code(), 0, "{}", l.stderr());
    assert_eq!(l.stdout(), b"all of it\n");
    let _ = d.code();
}

#[test]
fn quiet_silences_status_lines() {
    let (mut l, port) = listen(&[], "127.0.0.1", In::Null);
    let mut d = dial(&["-q"], "127.0.0.1", port, In::Null);
    assert_both_ok(&mut d, &mut l);
    assert_eq!(d.stderr(), "");
}

#[test]
fn stdin_and_stdout_may_be_a_socket() {
    use std::os::unix::net::UnixStream;
    use std::process::{Command, Stdio};
    for mode in MODES {
        let (l, port) = listen(mode, "127.0.0.1", In::Pipe);
        let mut l = l;
        // inetd style: one socket is both stdin and stdout.
        let (mut ours, theirs) = UnixStream::pair().unwrap();
        let mut args = vec!["dial"];
        args.extend(mode);
        let p = port.to_string();
        args.extend(["-q", "127.0.0.1", &p]);
        let mut d = Command::new(BIN)
            .args(&args)
            .stdin(Stdio::from(std::os::fd::OwnedFd::from(
                theirs.try_clone().unwrap(),
            )))
            .stdout(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        use std::io::Write;
        ours.write_all(b"through a socket\n").unwrap();
        ours.shutdown(std::net::Shutdown::Write).unwrap();
        l.wait_stdout(17);
        l.write(b"back through it\n");
        l.close_stdin();
        let mut got = Vec::new();
        ours.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"back through it\n", "mode {mode:?}");
        assert_eq!(d.wait().unwrap().code(), Some(0));
        assert_eq!(l.code(), 0, "{}", l.stderr());
        assert_eq!(l.stdout(), b"through a socket\n");
    }
}

#[test]
fn a_sender_whose_receiver_lost_its_consumer_does_not_exit_0() {
    // `tar c dir | p2pchat dial h P` against `p2pchat listen P | tar x -C
    // /nonexistent`: the consumer dies at once.
    let tmp = TempDir::new("deadconsumer");
    let data = random_bytes(8 * 1024 * 1024, 31);
    let cmd = format!("{BIN} listen 0 --bind 127.0.0.1 | true");
    let l = Proc::spawn("sh", &["-c", &cmd], In::Pipe, &[]);
    let port = wait_port(&l);
    let mut d = dial(&[], "127.0.0.1", port, In::File(tmp.file("d", &data)));
    assert_eq!(d.code(), 1, "{}", d.stderr());
    assert!(
        d.stderr().contains("the peer stopped reading"),
        "{}",
        d.stderr()
    );
    // Counted in the user's terms: how much of the input did not arrive.
    assert!(
        d.stderr()
            .contains("of your input; the rest was not delivered")
            || d.stderr().contains("MiB of input was not delivered"),
        "{}",
        d.stderr()
    );
    assert!(!d.stderr().contains("bytes"), "{}", d.stderr());
    drop(l);
}

#[test]
fn a_killed_sender_is_a_lost_connection_every_time_never_tampering() {
    for run in 0..5 {
        // Without resume: with it the listener would wait for a redial.
        let off = ["--resume", "0"];
        let (mut l, port) = listen(&off, "127.0.0.1", In::Null);
        let d = dial(&off, "127.0.0.1", port, In::Pipe);
        l.wait_stderr("connected to");
        let data = random_bytes(256 * 1024, run);
        let mut d = d;
        d.write(&data);
        l.wait_stdout(64 * 1024);
        d.signal(libc::SIGKILL);
        assert_eq!(l.code(), 1, "run {run}: {}", l.stderr());
        assert!(
            l.stderr().contains("connection lost"),
            "run {run}: {}",
            l.stderr()
        );
        // What we know is that the connection dropped; the peer may live.
        assert!(
            !l.stderr().contains("vanished") && l.stderr().contains("the connection dropped"),
            "run {run}: {}",
            l.stderr()
        );
        assert!(data.starts_with(&l.stdout()), "run {run}: an exact prefix");
    }
}
