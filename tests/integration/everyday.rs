//! Everyday situations a new user meets, each with the right ending and
//! the right words (issue 20): leaving a room nobody joined, a receiver
//! that cannot write, a room already taken, a forgotten `--code`.

use std::net::TcpStream;

use crate::pty::Pty;
use crate::util::*;

/// Nobody listens on 127.0.0.1:`port` any more.
fn port_closed(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_err()
}

#[test]
fn quit_and_ctrl_d_end_a_listener_nobody_joined() {
    for mode in [&[][..], &["--plain"], &["--keep"], &["--code"]] {
        for keys in ["/quit\r", "\x04"] {
            let mut args = vec!["listen", "0", "--bind", "127.0.0.1"];
            args.extend_from_slice(mode);
            let mut alice = Pty::spawn(&args, &[], 24, 80);
            let port = alice.listening_port();
            alice.type_text(keys);
            assert_eq!(alice.code(), 0, "{mode:?} {keys:?}:\n{}", alice.text());
            assert!(
                port_closed(port),
                "{mode:?} {keys:?}: the port is still open"
            );
            assert!(
                !alice.text().contains("p2pchat:"),
                "{mode:?} {keys:?}: leaving is no error:\n{}",
                alice.text()
            );
        }
    }
}

#[test]
fn a_line_typed_before_anyone_joined_goes_out_when_the_peer_comes() {
    let mut alice = Pty::spawn(
        &["--name", "alice", "listen", "0", "--bind", "127.0.0.1"],
        &[],
        24,
        80,
    );
    let port = alice.listening_port();
    alice.type_text("early bird\r");
    alice.wait_for("early bird");
    let mut bob = dial(&["--name", "bob"], "127.0.0.1", port, In::Pipe);
    bob.wait_stdout(11);
    assert_eq!(bob.stdout(), b"early bird\n");
    alice.wait_cursor_row("alice>");
    alice.type_text("/quit\r");
    assert_eq!(alice.code(), 0, "{}", alice.text());
    assert_eq!(bob.code(), 0, "{}", bob.stderr());
}
