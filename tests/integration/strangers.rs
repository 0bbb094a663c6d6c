//! A listener facing strangers, attacked the way issue 9 found it open:
//! online guessing of a short secret, grinding the verify code, lockout by
//! silent clients, a connection flood, and a name that forges a code.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use spake2::{Ed25519Group, Identity, Password, Spake2};

use crate::util::*;

const PAKE_PREFACE: &[u8] = b"p2pchat/3 pake\n";
const SAS_PREFACE: &[u8] = b"p2pchat/3 sas\n";

/// Connects, or None once the listener has gone (refused).
fn connect(port: u16) -> Option<TcpStream> {
    let s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(20))).ok()?;
    Some(s)
}

/// One online guess by the method of issue 9: send SPAKE2 message A made
/// with `guess`, take message B (and, on the old code, the listener's HELLO
/// to test offline), then vanish without a HELLO. Returns the bytes the
/// listener sent, or None if it no longer accepts.
fn guess_once(port: u16, guess: &str) -> Option<Vec<u8>> {
    let mut s = connect(port)?;
    let (_spake, msg_a) = Spake2::<Ed25519Group>::start_a(
        &Password::new(guess.as_bytes()),
        &Identity::new(b"p2pchat/2 dialer"),
        &Identity::new(b"p2pchat/2 listener"),
    );
    let mut flight = PAKE_PREFACE.to_vec();
    flight.extend_from_slice(&msg_a);
    s.write_all(&flight).ok()?;
    let mut got = vec![0u8; PAKE_PREFACE.len() + 33];
    if s.read_exact(&mut got).is_err() {
        return Some(Vec::new());
    }
    // Anything more would be sealed under the listener's key: wait a
    // little for it (a HELLO would come at once), then leave.
    s.set_read_timeout(Some(Duration::from_millis(300))).ok()?;
    let mut more = [0u8; 256];
    if let Ok(n) = s.read(&mut more) {
        got.extend_from_slice(&more[..n]);
    }
    Some(got)
}

#[test]
fn a_guesser_gets_at_most_tries_guesses_and_never_gets_in() {
    let (mut l, port) = listen_env(&[], "127.0.0.1", In::Pipe, &[("P2PCHAT_SECRET", "4821")]);
    // The right guess is in the list, after the first three wrong ones.
    let guesses = ["0000", "0001", "0002", "4821", "0003", "0004"];
    let mut answered = 0;
    for g in guesses {
        let Some(got) = guess_once(port, g) else {
            break;
        };
        if got.is_empty() {
            break;
        }
        answered += 1;
        assert_eq!(
            got.len(),
            PAKE_PREFACE.len() + 33,
            "the listener sent more than its key-exchange message to an unverified dialer"
        );
    }
    assert_eq!(answered, 3, "exactly --tries (3) guesses were served");
    assert_eq!(l.code(), 3, "{}", l.stderr());
    assert!(
        l.stderr().contains("someone may be guessing"),
        "{}",
        l.stderr()
    );
    assert!(
        l.stderr().contains("3 of 3 failed attempts"),
        "{}",
        l.stderr()
    );
    assert!(l.stdout().is_empty(), "nobody got in");
    assert!(connect(port).is_none(), "the listener is gone");
}

#[test]
fn tries_sets_the_number_of_guesses() {
    let args = ["listen", "0", "--bind", "127.0.0.1", "--tries", "1"];
    let mut l = Proc::p2p_env(&args, In::Pipe, &[("P2PCHAT_SECRET", "s")]);
    let port = wait_port(&l);
    assert!(guess_once(port, "wrong").is_some_and(|g| !g.is_empty()));
    assert_eq!(l.code(), 3, "{}", l.stderr());
    assert!(
        l.stderr().contains("1 failed attempt to join"),
        "{}",
        l.stderr()
    );
}

#[test]
fn a_verify_code_listener_serves_at_most_tries_key_exchanges() {
    // The grinding man in the middle: commit, read E_l, compute the code,
    // reset on a mismatch, again and again.
    let (mut l, port) = listen(&[], "127.0.0.1", In::Pipe);
    let mut served = 0;
    for i in 0..20u8 {
        let Some(mut s) = connect(port) else { break };
        let mut flight = SAS_PREFACE.to_vec();
        flight.extend_from_slice(&[i; 32]); // a commitment
        if s.write_all(&flight).is_err() {
            break;
        }
        let mut got = vec![0u8; SAS_PREFACE.len() + 32];
        if s.read_exact(&mut got).is_err() {
            break;
        }
        served += 1;
        // Reset: SO_LINGER 0 then close.
        let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
    }
    assert_eq!(served, 3, "only --tries key exchanges were served");
    assert_eq!(l.code(), 3, "{}", l.stderr());
    assert!(
        l.stderr().contains("guessing the verify code"),
        "{}",
        l.stderr()
    );
}

#[test]
fn many_silent_connections_do_not_keep_the_real_peer_out() {
    // Held open and renewed, from the same address the peer comes from.
    let (mut l, port) = listen(&["--handshake-timeout", "600"], "127.0.0.1", In::Pipe);
    let silent: Vec<TcpStream> = (0..40).filter_map(|_| connect(port)).collect();
    let started = Instant::now();
    let mut d = dial(&["--handshake-timeout", "600"], "127.0.0.1", port, In::Pipe);
    d.write(b"patient peer\n");
    d.close_stdin();
    l.wait_stdout(13);
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(3),
        "the real peer waited {waited:?}"
    );
    l.close_stdin();
    assert_both_ok(&mut d, &mut l);
    assert_eq!(l.stdout(), b"patient peer\n");
    assert!(
        !l.stderr().contains("failed"),
        "silence is not reported: {}",
        l.stderr()
    );
    drop(silent);
}

/// A connection from 127.0.0.2, another source address on loopback.
fn connect_from_other(port: u16) -> Option<TcpStream> {
    connect_from("127.0.0.2", port)
}

/// A connection from `ip`, a source address on loopback.
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

#[test]
fn a_flood_beyond_the_cap_is_refused_while_the_real_peer_completes() {
    let (mut l, port) = listen(&[], "127.0.0.1", In::Pipe);
    // A stranger on another address opens connection after connection,
    // each sending a valid preface so that it cannot simply be evicted.
    let mut flood = Vec::new();
    for _ in 0..60 {
        if let Some(mut s) = connect_from_other(port) {
            let _ = s.write_all(SAS_PREFACE);
            flood.push(s);
        }
    }
    // Beyond the per-source cap they are closed at once: EOF, no bytes.
    let mut closed = 0;
    for s in flood.iter_mut() {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut b = [0u8; 1];
        if matches!(s.read(&mut b), Ok(0) | Err(_)) {
            closed += 1;
        }
    }
    assert_eq!(
        closed,
        flood.len() - 4,
        "all but four (the per-source cap) were turned away"
    );
    let mut d = dial(&[], "127.0.0.1", port, In::Pipe);
    d.write(b"real peer\n");
    d.close_stdin();
    l.wait_stdout(10);
    l.close_stdin();
    assert_both_ok(&mut d, &mut l);
    assert_eq!(l.stdout(), b"real peer\n");
}

#[test]
fn a_name_cannot_forge_the_verify_code() {
    let (mut l, port) = listen(&[], "127.0.0.1", In::Pipe);
    let mut d = dial(
        &["--name", "verify code 111 111"],
        "127.0.0.1",
        port,
        In::Pipe,
    );
    let code = stderr_after(&d, "verify code ");
    l.wait_stderr("connected to");
    d.close_stdin();
    l.close_stdin();
    assert_both_ok(&mut d, &mut l);
    let err = l.stderr();
    let lines: Vec<&str> = err.lines().collect();
    let code_lines: Vec<&&str> = lines
        .iter()
        .filter(|x| x.starts_with("verify code"))
        .collect();
    assert_eq!(code_lines.len(), 1, "{err}");
    assert_eq!(code_lines[0], &format!("verify code {code}"), "{err}");
    let at = lines
        .iter()
        .position(|x| x.starts_with("verify code"))
        .unwrap();
    assert!(
        lines[at + 1].starts_with("connected to \"verify code 111 111\""),
        "the name comes after, in quotes: {err}"
    );
}

#[test]
fn a_stranger_who_keeps_sending_is_cut_off_at_the_drain_deadline() {
    let (mut l, port) = listen(&[], "127.0.0.1", In::Pipe);
    let mut s = connect(port).unwrap();
    // Not a p2pchat preface: the attempt fails, and the drain that follows
    // (1 s) must end even though bytes never stop arriving.
    let started = Instant::now();
    let junk = vec![b'x'; 64 * 1024];
    let mut cut = false;
    while started.elapsed() < Duration::from_secs(20) {
        if s.write_all(&junk).is_err() {
            cut = true;
            break;
        }
    }
    assert!(cut, "the listener kept draining for 20 s");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    l.wait_stderr("not speaking the p2pchat protocol");
    let mut d = dial(&[], "127.0.0.1", port, In::Pipe);
    d.close_stdin();
    l.close_stdin();
    assert_both_ok(&mut d, &mut l);
}

#[test]
fn running_out_of_file_descriptors_pauses_accepting_and_never_ends_the_room() {
    // A listener allowed 16 descriptors (room for about six connections)
    // and 60 silent strangers from three addresses (so the per-source cap
    // does not keep them below the limit) ahead of the real peer in the
    // backlog: accept meets EMFILE, a silent stranger makes way each time,
    // and the real peer gets in at once, not after anyone's timeout.
    let cmd = format!("ulimit -n 16 && exec {BIN} listen 0 --bind 127.0.0.1");
    let mut l = Proc::spawn("sh", &["-c", &cmd], In::Pipe, &[]);
    let port = wait_port(&l);
    let silent: Vec<TcpStream> = (0..60)
        .filter_map(|i| connect_from(&format!("127.0.0.{}", 1 + i % 3), port))
        .collect();
    let started = Instant::now();
    let mut d = dial(&["--handshake-timeout", "30"], "127.0.0.1", port, In::Pipe);
    d.write(b"got in\n");
    d.close_stdin();
    l.wait_stdout(7);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    l.close_stdin();
    assert_both_ok(&mut d, &mut l);
    assert_eq!(l.stdout(), b"got in\n");
    drop(silent);
}
