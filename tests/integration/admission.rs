//! Strangers, round two (issue 21): the `--tries` budget of `listen
//! --keep`, connections that send a preface and stop, slot holders that
//! shut out a resume, a relay listener whose partner leaves without a byte.
//! Each test plays the attacker over real loopback sockets.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use spake2::{Ed25519Group, Identity, Password, Spake2};

use crate::pty::Pty;
use crate::util::*;

const PAKE_PREFACE: &[u8] = b"p2pchat/2 pake\n";

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
        "--name",
        "alice",
        "listen",
        &port,
        "--bind",
        "127.0.0.1",
        "--keep",
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
