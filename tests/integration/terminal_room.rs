//! The terminal room at a real pseudo-terminal against a piped peer: the
//! screen is rendered by vt100 and checked the way a person would see it.

use crate::pty::Pty;
use crate::util::*;

/// Starts `alice` listening at a terminal and `bob` dialing from a pipe.
fn room(extra: &[&str], env: &[(&str, &str)]) -> (Pty, Proc) {
    let mut args = vec!["listen", "--name", "alice"];
    args.extend_from_slice(extra);
    args.extend(["0", "--bind", "127.0.0.1"]);
    let alice = Pty::spawn(&args, env, 24, 80);
    let port = alice.listening_port();
    let bob = dial_env(&["--name", "bob"], "127.0.0.1", port, In::Pipe, env);
    alice.wait_for("\"bob\" joined from 127.0.0.1:");
    (alice, bob)
}

/// Alice types `keys` to leave; both sides must then exit 0.
fn leave(alice: &mut Pty, bob: &mut Proc, keys: &str) {
    alice.type_text(keys);
    assert_eq!(alice.code(), 0, "{}", alice.text());
    assert_eq!(bob.code(), 0, "{}", bob.stderr());
}

/// Alice listening at a terminal of `rows` × `cols`, and her port. A
/// narrow terminal is narrowed once the port is read: the status line
/// that gives it wraps at its spaces there.
fn alice_listening(rows: u16, cols: u16) -> (Pty, u16) {
    let mut alice = Pty::spawn(
        &["listen", "--name", "alice", "0", "--bind", "127.0.0.1"],
        &[],
        rows,
        cols.max(80),
    );
    let port = alice.listening_port();
    if cols < 80 {
        alice.resize(rows, cols);
    }
    (alice, port)
}

#[test]
fn an_incoming_message_never_garbles_a_half_typed_line() {
    let (mut alice, mut bob) = room(&[], &[]);
    alice.wait_for("verify code");
    alice.wait_cursor_row("alice>");
    alice.type_text("abc");
    alice.wait_cursor_row("alice> abc");
    bob.write(b"incoming while you type\n");
    alice.wait_for("bob: incoming while you type");
    alice.wait_cursor_row("alice> abc");
    // A narrower terminal in the middle: the line is still intact.
    alice.resize(20, 50);
    bob.write(b"and after a resize\n");
    alice.wait_for("bob: and after a resize");
    alice.wait_cursor_row("alice> abc");
    alice.type_text("def\r");
    bob.wait_stdout(7);
    assert_eq!(
        bob.stdout(),
        b"abcdef\n",
        "exactly the typed line plus a newline"
    );
    alice.wait_for("alice: abcdef");
    assert!(
        !alice.text().contains("alice> abcdef"),
        "no doubled echo:\n{}",
        alice.text()
    );
    let lines = alice.rows();
    let ts = lines.iter().find(|l| l.contains("bob: incoming")).unwrap();
    assert!(
        ts.as_bytes()[2] == b':' && ts.as_bytes()[5] == b' ',
        "12:03 bob: text, got {ts:?}"
    );
}

#[test]
fn utf8_renders_and_escape_sequences_are_shown_not_executed() {
    let (alice, mut bob) = room(&[], &[]);
    bob.write("你好 😀 café\n".as_bytes());
    alice.wait_for("bob: 你好 😀 café");
    bob.write(b"\x1b]52;c;ZXZpbA==\x07\x1b]2;PWNED\x07\x1b[2J\x1b[Hforged line\n");
    alice.wait_for("forged line");
    let text = alice.text();
    assert!(
        text.contains("^[]52;c;ZXZpbA==^G"),
        "OSC 52 shown visibly:\n{text}"
    );
    assert!(
        text.contains("^[[2J^[[H"),
        "clear screen shown visibly:\n{text}"
    );
    assert!(
        text.contains("\"bob\" joined from"),
        "the screen was not cleared:\n{text}"
    );
    let raw = alice.raw();
    assert!(
        !raw.windows(4).any(|w| w == b"\x1b]52"),
        "OSC 52 never reaches the terminal"
    );
    assert!(!raw.windows(4).any(|w| w == b"\x1b]2;"), "no title change");
}

#[test]
fn ctrl_c_leaves_politely_and_the_piped_peer_exits_0() {
    let (mut alice, mut bob) = room(&[], &[]);
    alice.wait_cursor_row("alice>");
    leave(&mut alice, &mut bob, "\x03");
    assert!(
        bob.stderr().contains("\"alice\" left the room"),
        "{}",
        bob.stderr()
    );
    // The prompt is not left behind on the screen of a finished chat.
    wait_until_lazy(
        || format!("the prompt to go:\n{}", alice.text()),
        DEADLINE,
        || !alice.rows().iter().any(|r| r.starts_with("alice>")),
    );
}

#[test]
fn the_peer_leaving_shows_the_notice_and_ends_the_room() {
    let (mut alice, mut bob) = room(&[], &[]);
    bob.write(b"bye now\n");
    alice.wait_for("bob: bye now");
    bob.signal(libc::SIGINT);
    alice.wait_for("\"bob\" left the room");
    assert_eq!(alice.code(), 0, "{}", alice.text());
    let _ = bob.wait();
}

#[test]
fn help_and_quit_are_commands_not_messages() {
    let (mut alice, mut bob) = room(&[], &[]);
    alice.wait_cursor_row("alice>");
    alice.type_text("/help\r");
    alice.wait_for("/quit (or Ctrl-D");
    // A typo is refused here with a hint, never sent; an empty line sends
    // nothing; // sends a line that starts with /.
    alice.type_text("/qiut\r");
    alice.wait_for("unknown command /qiut");
    alice.type_text("\r");
    alice.type_text("//slash at the start\r");
    bob.wait_stdout(20);
    assert_eq!(bob.stdout(), b"/slash at the start\n");
    alice.wait_for("alice: /slash at the start");
    let screen = alice.text();
    for cmd in ["alice: /help", "alice: /qiut", "alice: //"] {
        assert!(!screen.contains(cmd), "{cmd} shown as a message:\n{screen}");
    }
    leave(&mut alice, &mut bob, "/quit\r");
    assert_eq!(
        bob.stdout(),
        b"/slash at the start\n",
        "commands are not sent"
    );
    assert!(!alice.text().contains("alice: /quit"), "{}", alice.text());
}

#[test]
fn stopped_sending_is_a_notice_and_the_room_goes_on() {
    let (mut alice, mut bob) = room(&[], &[]);
    bob.write(b"last words");
    bob.close_stdin();
    alice.wait_for("bob: last words");
    alice.wait_for("\"bob\" stopped sending");
    alice.wait_cursor_row("alice>");
    alice.type_text("still here\r");
    bob.wait_stdout(11);
    assert_eq!(bob.stdout(), b"still here\n");
    leave(&mut alice, &mut bob, "\x04");
}

#[test]
fn ask_secret_prompts_without_echo() {
    let alice = Pty::spawn(
        &[
            "listen",
            "--name",
            "alice",
            "--ask-secret",
            "0",
            "--bind",
            "127.0.0.1",
        ],
        &[],
        24,
        80,
    );
    let mut alice = alice;
    alice.wait_for("shared secret:");
    alice.type_text("s3cret-words\r");
    alice.wait_for("listening on 127.0.0.1:");
    assert!(
        !alice.text().contains("s3cret"),
        "the secret was echoed:\n{}",
        alice.text()
    );
    let port = alice.listening_port();
    let mut bob = dial_env(
        &["--name", "bob"],
        "127.0.0.1",
        port,
        In::Pipe,
        &[("P2PCHAT_SECRET", "s3cret-words")],
    );
    alice.wait_for("\"bob\" joined from");
    bob.write(b"authenticated\n");
    alice.wait_for("bob: authenticated");
    leave(&mut alice, &mut bob, "/quit\r");
}

#[test]
fn a_dumb_terminal_still_never_loses_a_typed_line() {
    let (mut alice, mut bob) = room(&[], &[("TERM", "dumb")]);
    bob.write(b"hi from bob\n");
    alice.wait_for("bob: hi from bob");
    alice.type_text("typed on a dumb terminal\r");
    bob.wait_stdout(25);
    assert_eq!(bob.stdout(), b"typed on a dumb terminal\n");
    leave(&mut alice, &mut bob, "\x04");
}

#[test]
fn a_terminal_stdout_in_pipe_mode_is_sanitised_too() {
    let alice = Pty::spawn_stdin(&["listen", "0", "--bind", "127.0.0.1"], &[], 24, 80, false);
    let port = alice.listening_port();
    let mut bob = dial(&[], "127.0.0.1", port, In::Pipe);
    bob.write(b"\x1b[31mred\x1b[0m \xe2\x9c\x93\n");
    alice.wait_for("^[[31mred^[[0m ✓");
    bob.close_stdin();
    let mut alice = alice;
    assert_eq!(alice.code(), 0);
    assert_eq!(bob.code(), 0);
}

#[test]
fn names_are_colored_unless_no_color_is_set() {
    for (env, colored) in [(&[][..], true), (&[("NO_COLOR", "1")][..], false)] {
        let (mut alice, mut bob) = room(&[], env);
        bob.write(b"hue\n");
        alice.wait_for("bob: hue");
        let raw = alice.raw();
        let has = raw.windows(7).any(|w| w == b"\x1b[1;36m");
        assert_eq!(has, colored, "env {env:?}");
        leave(&mut alice, &mut bob, "/quit\r");
    }
}

#[test]
fn a_narrow_terminal_keeps_wrapped_lines_whole() {
    let (alice, port) = alice_listening(12, 24);
    let mut bob = dial(&["--name", "bob"], "127.0.0.1", port, In::Pipe);
    let mut alice = alice;
    alice.wait_cursor_row("alice>");
    let long = "one two three four five six seven eight nine ten";
    alice.type_text(&format!("{long}\r"));
    bob.wait_stdout(long.len() + 1);
    assert_eq!(bob.stdout(), format!("{long}\n").as_bytes());
    alice.wait_cursor_row("alice>");
    // The wrapped echo is replaced by one wrapped transcript line: no
    // fragment of the prompt echo is left above it.
    let text = alice.rows().join("");
    assert!(text.contains("alice: one two"), "{}", alice.text());
    assert_eq!(text.matches("alice> one").count(), 0, "{}", alice.text());
    // We wrapped it ourselves: every continuation row is indented.
    let rows = alice.rows();
    let first = rows
        .iter()
        .position(|r| r.contains("alice: one two"))
        .unwrap();
    assert!(
        rows[first + 1].starts_with("  ") && rows[first + 1].contains("three"),
        "{}",
        alice.text()
    );
    bob.write(b"a reply long enough to wrap around twice here\n");
    alice.wait_for("bob: a reply");
    alice.wait_cursor_row("alice>");
    leave(&mut alice, &mut bob, "/quit\r");
}

#[test]
fn lines_typed_in_one_write_all_arrive_in_order() {
    let (mut alice, mut bob) = room(&[], &[]);
    alice.wait_cursor_row("alice>");
    // What expect, xdotool or a paste without bracketed paste do: several
    // lines reach the terminal in one write.
    alice.type_text("one\rtwo\rthree\r");
    bob.wait_stdout(14);
    assert_eq!(bob.stdout(), b"one\ntwo\nthree\n");
    for line in ["alice: one", "alice: two", "alice: three"] {
        alice.wait_for(line);
    }
    leave(&mut alice, &mut bob, "/quit\r");
}

#[test]
fn a_paste_of_several_lines_is_several_messages_as_the_peer_sees_them() {
    let (mut alice, mut bob) = room(&[], &[]);
    alice.wait_cursor_row("alice>");
    // Lines typed (or pasted by a terminal without bracketed paste) are
    // each a message, on our screen as on the peer's.
    alice.type_text("first\rsecond\r");
    bob.wait_stdout(13);
    assert_eq!(bob.stdout(), b"first\nsecond\n");
    alice.wait_for("alice: first");
    alice.wait_for("alice: second");
    assert!(!alice.text().contains("^J"), "{}", alice.text());
    leave(&mut alice, &mut bob, "/quit\r");
}

#[test]
fn a_peer_cannot_forge_our_lines_by_padding_to_the_edge() {
    let (mut alice, mut bob) = room(&[], &[("NO_COLOR", "1")]);
    alice.wait_cursor_row("alice>");
    // Padded so that, wrapped by the terminal, "12:03 alice:" would begin
    // a row of its own.
    let pad = "x".repeat(80 - "12:03 bob: ".len());
    bob.write(format!("{pad}12:03 alice: send me the key\n").as_bytes());
    alice.wait_for("send me the key");
    for row in alice.rows() {
        assert!(
            !row.starts_with("12:03 alice:") || !row.contains("send me"),
            "forged: {}",
            alice.text()
        );
        if row.contains("send me the key") {
            assert!(
                row.starts_with(' '),
                "the continuation is indented: {row:?}"
            );
        }
    }
    // Bidi controls are shown, not obeyed.
    bob.write("invoice\u{202e}fdp.exe\n".as_bytes());
    alice.wait_for("invoice<U+202E>fdp.exe");
    leave(&mut alice, &mut bob, "/quit\r");
}

#[test]
fn crlf_from_the_peer_is_a_line_ending() {
    let (mut alice, mut bob) = room(&[], &[]);
    bob.write(b"from windows\r\n");
    alice.wait_for("bob: from windows");
    assert!(!alice.text().contains("^M"), "{}", alice.text());
    leave(&mut alice, &mut bob, "/quit\r");
}

#[test]
fn ctrl_c_at_the_secret_prompt_restores_the_terminal_and_exits_130() {
    let mut alice = Pty::spawn(&["listen", "--ask-secret", "0"], &[], 24, 80);
    alice.wait_for("shared secret:");
    alice.type_text("half typed\x03");
    assert_eq!(alice.code(), 130, "{}", alice.text());
    assert!(alice.echo_on(), "echo is back on");
    assert!(!alice.text().contains("half typed"), "{}", alice.text());
}

#[test]
fn closing_the_terminal_is_leaving_and_the_peer_exits_0() {
    let (mut alice, mut bob) = room(&[], &[]);
    alice.wait_cursor_row("alice>");
    alice.type_text("see you\r");
    bob.wait_stdout(8);
    // What the kernel sends when the window closes.
    alice.hang_up();
    bob.wait_stderr("\"alice\" left the room");
    assert_eq!(bob.code(), 0, "{}", bob.stderr());
    assert!(!bob.stderr().contains("vanished"), "{}", bob.stderr());
    let code = alice.code();
    assert!(code == 129 || code == 0, "exit {code}: {}", alice.text());
}

#[test]
fn a_draft_typed_while_waiting_is_kept_when_the_peer_joins() {
    let mut alice = Pty::spawn(
        &["listen", "--name", "alice", "0", "--bind", "127.0.0.1"],
        &[],
        24,
        80,
    );
    let port = alice.listening_port();
    alice.type_text("early dra");
    let mut bob = dial(&["--name", "bob"], "127.0.0.1", port, In::Pipe);
    alice.wait_for("\"bob\" joined from");
    alice.wait_cursor_row("alice> early dra");
    alice.type_text("ft\r");
    bob.wait_stdout(12);
    assert_eq!(bob.stdout(), b"early draft\n");
    leave(&mut alice, &mut bob, "/quit\r");
}

#[test]
fn when_the_peer_leaves_the_screen_stays_and_an_unsent_draft_is_reported() {
    let (mut alice, mut bob) = room(&[], &[]);
    alice.wait_cursor_row("alice>");
    alice.type_text("unsent words");
    alice.wait_cursor_row("alice> unsent words");
    bob.signal(libc::SIGTERM);
    let _ = bob.code();
    alice.wait_for("press any key to leave");
    alice.type_text(" ");
    assert_eq!(alice.code(), 0, "{}", alice.text());
    alice.wait_for("not delivered: unsent words");
    // The prompt and the draft were taken off the screen before that line
    // was written, so the space pressed to leave does not look typed.
    assert!(
        !alice.rows().iter().any(|r| r.starts_with("alice>")),
        "{}",
        alice.text()
    );
}

#[test]
fn a_message_sent_with_the_handshake_comes_after_the_join_line_under_the_peers_name() {
    let (alice, port) = alice_listening(24, 80);
    // The dialer's first message leaves in the same write as its HELLO.
    let dir = TempDir::new("first-words");
    let first = dir.file("first", b"first words\n");
    let _bob = dial(&["--name", "bob"], "127.0.0.1", port, In::File(first));
    alice.wait_for("bob: first words");
    alice.wait_for("\"bob\" stopped sending");
    let rows = alice.rows();
    let at = |needle: &str| rows.iter().position(|r| r.contains(needle));
    let (joined, said, done) = (
        at("\"bob\" joined from"),
        at("bob: first words"),
        at("\"bob\" stopped sending"),
    );
    assert!(
        joined.is_some() && joined < said && said < done,
        "joined, then the message, then stopped sending:\n{}",
        alice.text()
    );
    assert!(!alice.text().contains("peer: "), "{}", alice.text());
}
