//! Codes and relays at a real terminal (issue 11): the code typed at the
//! prompt with Tab completing its words, a mistyped code asked again, and
//! `listen --keep` hosting one room after another with a fresh code each.

use crate::pty::Pty;
use crate::relay::p2p_relay;
use crate::util::*;

/// The keys a person would press to enter `code` with Tab: the room and
/// Tab; each word's first four letters and Tab (the whole word when it
/// is no longer, then `-` unless it is the last).
fn keys_with_tab(code: &str) -> String {
    let mut parts = code.split('-');
    let mut keys = format!("{}\t", parts.next().unwrap());
    let words: Vec<&str> = parts.collect();
    for (i, w) in words.iter().enumerate() {
        if w.len() > 4 {
            keys.push_str(&w[..4]);
            keys.push('\t');
        } else {
            keys.push_str(w);
            if i + 1 < words.len() {
                keys.push('-');
            }
        }
    }
    keys
}

/// The last code a listener showed on its screen, if any.
fn last_code(p: &Pty) -> Option<String> {
    let text = p.text();
    text.lines()
        .rev()
        .find_map(|l| l.strip_prefix("code: "))
        .map(|c| c.trim().to_string())
}

/// The code of the room the listener waits in now.
fn code_on_screen(p: &Pty) -> String {
    p.wait_for("waiting for the peer in room");
    last_code(p).expect("a code line")
}

#[test]
fn the_code_is_typed_at_the_prompt_with_tab_completing_each_word() {
    let (_relay, port) = p2p_relay();
    let r = format!("127.0.0.1:{port}");
    let dir = TempDir::new("relay-tty");
    let hello = dir.file("hello", b"hello from the listener\n");
    let mut l = Proc::p2p(&["listen", "--name", "lee", "--relay", &r], In::File(hello));
    let code = stderr_after(&l, "code: ").trim().to_string();

    let mut bob = Pty::spawn(&["dial", "--name", "bob", "--relay", &r], &[], 24, 80);
    bob.wait_cursor_row("code:");
    // A mistyped code is refused and asked for again, nothing is sent.
    bob.type_text("123456-zzzz-qqqq-xxxx\r");
    bob.wait_for("not one of the code words");
    bob.wait_cursor_row("code:");
    // A prefix of several words completes no further; a second Tab lists
    // them, as a shell does, and the line is left as typed.
    bob.type_text("123456-tow\t");
    bob.wait_cursor_row("code: 123456-tow");
    bob.type_text("\t");
    wait_until_lazy(
        || format!("the words of \"tow\" listed:\n{}", bob.text()),
        DEADLINE,
        || {
            bob.rows()
                .iter()
                .any(|r| r.split_whitespace().eq(["toward", "tower", "town"]))
        },
    );
    bob.wait_cursor_row("code: 123456-tow");
    bob.type_text("\x15"); // Ctrl-U: start again
    bob.wait_cursor_row("code:");
    bob.type_text(&keys_with_tab(&code));
    bob.wait_cursor_row(&format!("code: {code}"));
    bob.type_text("\r");
    bob.wait_for("\"lee\" joined through relay 127.0.0.1:");
    bob.wait_for("authenticated by one-time code");
    bob.wait_for("lee: hello from the listener");
    bob.type_text("and back\r");
    l.wait_stdout(9);
    bob.type_text("/quit\r");
    assert_eq!(bob.code(), 0, "{}", bob.text());
    assert_eq!(l.code(), 0, "{}", l.stderr());
    assert_eq!(l.stdout(), b"and back\n");
}

#[test]
fn keep_hosts_one_room_after_another_with_a_fresh_code_each() {
    let (_relay, port) = p2p_relay();
    let r = format!("127.0.0.1:{port}");
    let mut alice = Pty::spawn(
        &["listen", "--name", "alice", "--relay", &r, "--keep"],
        &[],
        30,
        100,
    );
    let mut codes = Vec::new();
    for round in 0..2 {
        let code = code_on_screen(&alice);
        assert!(!codes.contains(&code), "a fresh code each room: {codes:?}");
        codes.push(code.clone());
        let mut bob = Proc::p2p_env(
            &["dial", "--name", "bob", "--relay", &r],
            In::Pipe,
            &[("P2PCHAT_CODE", &code)],
        );
        let said = format!("message {round}");
        bob.write(format!("{said}\n").as_bytes());
        alice.wait_for(&format!("bob: {said}"));
        // The peer leaves: its room is over and the next one is hosted.
        bob.signal(libc::SIGTERM);
        bob.wait();
        alice.wait_for("\"bob\" left the room");
        // No key to press: the next room is hosted at once.
        wait_until_lazy(
            || format!("the next room; screen:\n{}", alice.text()),
            DEADLINE,
            || last_code(&alice).is_some_and(|c| c != code),
        );
    }
    // Leaving at the prompt ends the hosting itself.
    let code = code_on_screen(&alice);
    let mut bob = Proc::p2p_env(
        &["dial", "--name", "bob", "--relay", &r],
        In::Pipe,
        &[("P2PCHAT_CODE", &code)],
    );
    // The third "joined" line: `/quit` before it would end a room that
    // nobody has joined yet, and bob would wait at the relay.
    wait_until_lazy(
        || format!("the third join; screen:\n{}", alice.text()),
        DEADLINE,
        || {
            String::from_utf8_lossy(&alice.raw())
                .matches("\"bob\" joined")
                .count()
                >= 3
        },
    );
    alice.type_text("/quit\r");
    assert_eq!(alice.code(), 0, "{}", alice.text());
    assert_eq!(bob.code(), 0, "{}", bob.stderr());
    let everything = String::from_utf8_lossy(&alice.raw()).into_owned();
    assert!(
        !everything.contains("p2pchat: cannot") && !everything.contains("internal error"),
        "no error: {everything}"
    );
    assert!(everything.contains("hosting the next one"), "{everything}");
}
