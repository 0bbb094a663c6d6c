//! As a new user meets the chat room (issue 20, and issue 21 item 9): what
//! the screen shows for emoji and separators, the words of status lines,
//! and the room's small commands, at a real pseudo-terminal.

use crate::pty::Pty;
use crate::util::*;

/// Alice listening at a terminal of `cols` columns, Bob dialing from a
/// pipe with `bob_flags` (`--name bob` unless they name him); returns once
/// Alice sees him join.
fn room(alice_flags: &[&str], bob_flags: &[&str], cols: u16) -> (Pty, Proc) {
    let mut args = vec!["listen", "--name", "alice"];
    args.extend_from_slice(alice_flags);
    args.extend(["0", "--bind", "127.0.0.1"]);
    let alice = Pty::spawn(&args, &[], 24, cols);
    let port = alice.listening_port();
    let mut flags = bob_flags.to_vec();
    if !flags.contains(&"--name") {
        flags.extend(["--name", "bob"]);
    }
    let bob = dial(&flags, "127.0.0.1", port, In::Pipe);
    alice.wait_for("joined from 127.0.0.1:");
    alice.wait_cursor_row("alice>");
    (alice, bob)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// U+2028 and U+2029 never reach the terminal raw: shown as `<U+2028>` in
/// a message, and dropped from a name.
#[test]
fn line_and_paragraph_separators_are_shown_not_obeyed() {
    let (alice, mut bob) = room(&[], &["--name", "bo\u{2028}b\u{2029}"], 80);
    alice.wait_for("\"bob\" joined");
    bob.write("x\u{2028}12:03 alice: forged\u{2029}y\n".as_bytes());
    alice.wait_for("bob: x<U+2028>12:03 alice: forged<U+2029>y");
    let raw = alice.raw();
    for sep in ["\u{2028}", "\u{2029}"] {
        assert!(
            !contains(&raw, sep.as_bytes()),
            "{sep:?} reached the terminal:\n{}",
            alice.text()
        );
    }
}
