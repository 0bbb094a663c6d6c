//! The private room over real sockets: encryption by default, verify codes,
//! shared secrets from each source, tampering, impostors and dead peers.

use std::io::Write;
use std::net::TcpStream;

use crate::proxy::{Fault, Proxy};
use crate::util::*;

fn code_of(p: &Proc) -> String {
    stderr_after(p, "verify code ")
}

#[test]
fn the_default_room_is_encrypted_and_both_sides_show_one_code() {
    let (mut l, port) = listen(&[], "127.0.0.1", In::Pipe);
    let mut proxy = Proxy::start(port, None);
    let mut d = dial(&[], "127.0.0.1", proxy.port, In::Pipe);
    d.write(b"CANARY-1234 meet at noon\n");
    l.write(b"CANARY-5678 agreed\n");
    d.close_stdin();
    l.close_stdin();
    assert_both_ok(&mut d, &mut l);
    proxy.join();
    assert_eq!(l.stdout(), b"CANARY-1234 meet at noon\n");
    assert_eq!(d.stdout(), b"CANARY-5678 agreed\n");
    let (dc, lc) = (code_of(&d), code_of(&l));
    assert_eq!(dc, lc);
    assert!(
        dc.len() == 7 && dc.as_bytes()[3] == b' ',
        "six digits in two groups: {dc:?}"
    );
    let wire = proxy.captured();
    assert!(
        !wire.windows(6).any(|w| w == b"CANARY"),
        "plaintext on the wire"
    );
    assert!(wire.starts_with(b"p2pchat/3 sas\n"));
    assert!(
        // Both sides are "tester": the peer is told apart by its address.
        d.stderr().contains("connected to \"tester@127.0.0.1\""),
        "{}",
        d.stderr()
    );
}

/// Sends 2 MiB through a proxy that applies `fault` at offset 100,000,
/// well past the handshake and inside a DATA record: the listener aborts
/// with exit `code` saying `why`, having shown only an exact prefix, and
/// the dialer fails too.
fn assert_abort(fault: Fault, code: i32, why: &str) {
    // Without resume: a cut would be carried on over a new connection.
    assert_abort_with(&["--resume", "0"], fault, code, why);
}

fn assert_abort_with(flags: &[&str], fault: Fault, code: i32, why: &str) {
    let tmp = TempDir::new("fault");
    let data = random_bytes(2 * 1024 * 1024, 9);
    let (mut l, port) = listen(flags, "127.0.0.1", In::Null);
    let proxy = Proxy::start(port, Some(fault));
    let mut d = dial(
        flags,
        "127.0.0.1",
        proxy.port,
        In::File(tmp.file("d", &data)),
    );
    assert_eq!(l.code(), code, "{}", l.stderr());
    assert!(l.stderr().contains(why), "{}", l.stderr());
    let got = l.stdout();
    assert!(got.len() < 100_000, "nothing past the faulty record");
    assert!(data.starts_with(&got), "what was shown is an exact prefix");
    assert_ne!(d.code(), 0);
}

#[test]
fn a_flipped_byte_ends_the_room_with_exit_4_and_nothing_corrupt() {
    assert_abort(Fault::Flip(100_000), 4, "integrity");
}

/// Resume covers lost connections, not forged records: tampering ends a
/// room that could resume just the same.
#[test]
fn a_flipped_byte_ends_a_resumable_room_too() {
    assert_abort_with(&[], Fault::Flip(100_000), 4, "integrity");
}

#[test]
fn a_record_cut_short_is_a_lost_connection_not_tampering() {
    // Records are 16,403 bytes: this offset is in the middle of one. A
    // crashed peer cuts a record as easily as an attacker: exit 1.
    assert_abort(Fault::Cut(100_000), 1, "middle of a record");
}

#[test]
fn a_man_in_the_middle_yields_different_codes() {
    let (mut l, port) = listen(&[], "127.0.0.1", In::Pipe);
    // The attacker terminates both legs with two p2pchats joined by fifos.
    let tmp = TempDir::new("mitm");
    let fifo = tmp.0.join("f");
    let script = format!(
        "mkfifo {f}; {BIN} listen 0 --bind 127.0.0.1 < {f} | {BIN} -q dial 127.0.0.1 {port} > {f}",
        f = fifo.display()
    );
    let m = Proc::spawn("bash", &["-c", &script], In::Null, &[]);
    let mport = wait_port(&m);
    let mut d = dial(&[], "127.0.0.1", mport, In::Pipe);
    let (dc, lc) = (code_of(&d), code_of(&l));
    assert_ne!(dc, lc, "the codes must reveal the man in the middle");
    d.close_stdin();
    l.close_stdin();
    let _ = (d.wait(), l.wait());
}

#[test]
fn a_shared_secret_from_each_source_opens_the_room() {
    let tmp = TempDir::new("secret");
    let file = tmp.file("s", b"  tangerine-dream \nignored second line\n");
    let env = [("P2PCHAT_SECRET", "tangerine-dream")];
    let file_flag = format!("--secret-file={}", file.display());
    for (l_flags, d_flags, d_env) in [
        (&[][..], &[][..], &env[..]),
        (&[][..], &[file_flag.as_str()][..], &[][..]),
    ] {
        let (mut l, port) = listen_env(l_flags, "127.0.0.1", In::Pipe, &env);
        let mut d = dial_env(d_flags, "127.0.0.1", port, In::Pipe, d_env);
        d.write(b"hello with a secret\n");
        d.close_stdin();
        l.close_stdin();
        assert_both_ok(&mut d, &mut l);
        assert_eq!(l.stdout(), b"hello with a secret\n");
        assert!(!l.stderr().contains("verify code"), "no code with a secret");
    }
}

#[test]
fn wrong_secrets_fail_both_ways_and_the_listener_gives_up_after_three() {
    let (mut l, port) = listen_env(&[], "127.0.0.1", In::Null, &[("P2PCHAT_SECRET", "right")]);
    for attempt in 1..=3 {
        let mut d = dial_env(
            &[],
            "127.0.0.1",
            port,
            In::Pipe,
            &[("P2PCHAT_SECRET", "wrong")],
        );
        d.write(b"let me in\n");
        assert_eq!(d.code(), 3, "{}", d.stderr());
        assert!(d.stderr().contains("secrets differ"), "{}", d.stderr());
        if attempt < 3 {
            wait_until("the failed attempt to be reported", DEADLINE, || {
                l.stderr().matches("still waiting").count() == attempt
            });
            assert!(
                l.stderr().contains("connection from 127.0.0.1:"),
                "{}",
                l.stderr()
            );
        }
    }
    assert_eq!(l.code(), 3, "{}", l.stderr());
    assert!(l.stderr().contains("giving up"), "{}", l.stderr());
    assert!(l.stdout().is_empty());
}

#[test]
fn a_wrong_secret_then_the_right_one_gets_in() {
    let env = [("P2PCHAT_SECRET", "right")];
    let (mut l, port) = listen_env(&[], "127.0.0.1", In::Pipe, &env);
    let mut bad = dial_env(
        &[],
        "127.0.0.1",
        port,
        In::Null,
        &[("P2PCHAT_SECRET", "wrong")],
    );
    assert_eq!(bad.code(), 3);
    let mut good = dial_env(&[], "127.0.0.1", port, In::Pipe, &env);
    good.write(b"it's me\n");
    good.close_stdin();
    l.close_stdin();
    assert_both_ok(&mut good, &mut l);
    assert_eq!(l.stdout(), b"it's me\n");
}

#[test]
fn mode_mismatches_are_clear_errors_never_plaintext() {
    // Secret on one side only.
    let (l, port) = listen_env(&[], "127.0.0.1", In::Pipe, &[("P2PCHAT_SECRET", "s")]);
    let mut d = dial(&[], "127.0.0.1", port, In::Pipe);
    d.write(b"SECRET-TEXT\n");
    assert_eq!(d.code(), 3);
    assert!(d.stderr().contains("shared secret"), "{}", d.stderr());
    l.wait_stderr("still waiting");
    drop(l);

    // Encrypted listener, --plain dialer: the listener answers with its
    // greeting, which the plain side passes on as data with a warning, and
    // the encrypted side never shows the plain text.
    let (l, port) = listen(&["--handshake-timeout", "30"], "127.0.0.1", In::Null);
    let mut d = dial(&["--plain"], "127.0.0.1", port, In::Pipe);
    d.write(b"PLAIN-TEXT\n");
    d.wait_stderr("may be an encrypted p2pchat");
    d.close_stdin();
    assert_eq!(d.code(), 0, "{}", d.stderr());
    assert_eq!(
        d.stdout(),
        b"p2pchat/3 sas\n",
        "bytes are data in plain mode"
    );
    l.wait_stderr("still waiting");
    assert!(l.stdout().is_empty());
}

#[test]
fn a_non_p2pchat_client_is_dropped_and_the_listener_keeps_waiting() {
    let (mut l, port) = listen(&[], "127.0.0.1", In::Pipe);
    let mut curl = TcpStream::connect(("127.0.0.1", port)).unwrap();
    curl.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    l.wait_stderr("not speaking the p2pchat protocol");
    assert!(l.stderr().contains("GET / HTTP/1.1"), "{}", l.stderr());
    drop(curl);
    let mut d = dial(&[], "127.0.0.1", port, In::Pipe);
    d.write(b"real peer\n");
    d.close_stdin();
    l.close_stdin();
    assert_both_ok(&mut d, &mut l);
    assert_eq!(
        l.stdout(),
        b"real peer\n",
        "the impostor's bytes never reach stdout"
    );
}

#[test]
fn a_stalled_handshake_times_out() {
    use std::io::Read;
    let (l, port) = listen(&["--handshake-timeout", "1"], "127.0.0.1", In::Null);
    let mut silent = TcpStream::connect(("127.0.0.1", port)).unwrap();
    silent
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    // A client that says nothing is dropped without a word (EOF, no bytes).
    let mut got = Vec::new();
    assert_eq!(silent.read_to_end(&mut got).unwrap(), 0, "{got:?}");
    assert!(!l.stderr().contains("failed"), "{}", l.stderr());
    let mut d = dial(
        &["--handshake-timeout", "1"],
        "127.0.0.1",
        free_port(),
        In::Null,
    );
    assert_eq!(d.code(), 1);
}

#[test]
fn a_killed_peer_is_reported_with_exit_1() {
    // Without resume (with it, see resume.rs).
    let off = ["--resume", "0"];
    let (mut l, port) = listen(&off, "127.0.0.1", In::Pipe);
    let d = dial(&off, "127.0.0.1", port, In::Pipe);
    l.wait_stderr("connected to");
    d.signal(libc::SIGKILL);
    assert_eq!(l.code(), 1, "{}", l.stderr());
    assert!(l.stderr().contains("connection lost"), "{}", l.stderr());
}

#[test]
fn bye_ends_the_room_even_while_our_stdin_is_open() {
    let (mut l, port) = listen(&[], "127.0.0.1", In::Pipe);
    let mut d = dial(&["--name", "dora"], "127.0.0.1", port, In::Pipe);
    l.wait_stderr("connected to \"dora\"");
    d.signal(libc::SIGTERM);
    // The dialer's stream had not ended: the listener says so (exit 1), so
    // `listen > file && echo complete` never lies.
    assert_eq!(l.code(), 1, "{}", l.stderr());
    assert!(
        l.stderr().contains("\"dora\" left the room"),
        "{}",
        l.stderr()
    );
    assert!(
        l.stderr().contains("left before it finished sending"),
        "{}",
        l.stderr()
    );
    assert_eq!(d.code(), 143, "SIGTERM is 128 + 15");
}

#[test]
fn the_plain_mode_warns_unless_quiet() {
    let (mut l, port) = listen(&["--plain"], "127.0.0.1", In::Null);
    let mut d = dial(&["--plain", "-q"], "127.0.0.1", port, In::Null);
    assert_both_ok(&mut d, &mut l);
    assert!(l.stderr().contains("not encrypted"));
    assert!(!d.stderr().contains("not encrypted"));
}

#[test]
fn secrets_are_never_taken_from_argv_and_bad_sources_are_usage_errors() {
    let mut p = Proc::p2p(&["listen", "--secret", "x", "0"], In::Null);
    assert_eq!(p.code(), 2);
    let mut p = Proc::p2p(
        &["listen", "--secret-file", "/nonexistent/s", "0"],
        In::Null,
    );
    assert_eq!(p.code(), 2);
    assert!(
        p.stderr().contains("cannot read secret file"),
        "{}",
        p.stderr()
    );
    let mut p = Proc::p2p_env(&["listen", "0"], In::Null, &[("P2PCHAT_SECRET", "   ")]);
    assert_eq!(p.code(), 2);
    assert!(p.stderr().contains("empty"), "{}", p.stderr());
    let mut p = Proc::p2p_env(
        &["listen", "--plain", "0"],
        In::Null,
        &[("P2PCHAT_SECRET", "s")],
    );
    assert_eq!(p.code(), 2);
}

// Reads /proc/PID/status to see the handler installed.
#[cfg(target_os = "linux")]
#[test]
fn ctrl_c_works_at_every_step_before_the_room_is_up() {
    // Waiting for a peer.
    let (mut l, _) = listen(&[], "127.0.0.1", In::Null);
    l.signal(libc::SIGINT);
    assert_eq!(l.code(), 130, "{}", l.stderr());

    // Re-dialing a peer that is not there yet.
    let port = free_port().to_string();
    let mut d = Proc::p2p(&["dial", "127.0.0.1", &port, "--retry", "600"], In::Null);
    wait_until("the dialer to handle SIGINT", DEADLINE, || {
        catches_sigint(d.child.id())
    });
    d.signal(libc::SIGINT);
    assert_eq!(d.code(), 130, "{}", d.stderr());

    // In the middle of a handshake with a peer that says nothing.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let mut d = dial(&["--handshake-timeout", "600"], "127.0.0.1", port, In::Null);
    let (mut conn, _) = silent.accept().unwrap();
    let mut preface = [0u8; 14];
    use std::io::Read;
    conn.read_exact(&mut preface).unwrap(); // the handshake has begun
    assert_eq!(&preface, b"p2pchat/3 sas\n");
    d.signal(libc::SIGINT);
    assert_eq!(d.code(), 130, "{}", d.stderr());
    assert!(d.stderr().contains("interrupted"), "{}", d.stderr());
}

/// Returns true if and only if process `pid` has a SIGINT handler installed.
#[cfg(target_os = "linux")]
fn catches_sigint(pid: u32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (libc::SIGINT - 1)) != 0)
}

// Reads /proc/PID/environ, which is Linux's.
#[cfg(target_os = "linux")]
#[test]
fn the_secret_leaves_the_environment_and_weak_sources_are_warned_of() {
    let (mut l, port) = listen_env(
        &[],
        "127.0.0.1",
        In::Pipe,
        &[("P2PCHAT_SECRET", "wolf-hat-99")],
    );
    let environ = std::fs::read(format!("/proc/{}/environ", l.child.id())).unwrap_or_default();
    assert!(
        !environ.windows(11).any(|w| w == b"wolf-hat-99"),
        "the secret is still in /proc/PID/environ"
    );
    assert!(!l.stderr().contains("warning"), "{}", l.stderr());
    let mut d = dial_env(
        &[],
        "127.0.0.1",
        port,
        In::Pipe,
        &[("P2PCHAT_SECRET", "wolf-hat-99")],
    );
    d.close_stdin();
    l.close_stdin();
    assert_both_ok(&mut d, &mut l);

    // A secret file others can read, and a one-character secret.
    let tmp = TempDir::new("weak");
    let file = tmp.file("secret", b"x\n");
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let path = file.display().to_string();
    let mut l = Proc::p2p(
        &["listen", "--secret-file", &path, "0", "--bind", "127.0.0.1"],
        In::Null,
    );
    let _ = wait_port(&l);
    let err = l.stderr();
    assert!(
        err.contains("can be read or changed by other users"),
        "{err}"
    );
    assert!(err.contains("only 1 character"), "{err}");
    l.signal(libc::SIGINT);
    assert_eq!(l.code(), 130);
}
