//! As a new user meets the chat room (issue 20, and issue 21 item 9): what
//! the screen shows for emoji and separators, the words of status lines,
//! and the room's small commands, at a real pseudo-terminal.

use crate::pty::Pty;
use crate::reflow::Tmux;
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

/// Emoji sequences arrive as emoji: the variation selector and the joiner
/// inside them are shown as they are; a stray joiner or selector is not.
#[test]
fn emoji_are_emoji_and_stray_invisibles_are_shown() {
    let (alice, mut bob) = room(&[], &[], 80);
    let emoji = "❤️ 👩‍💻 🏳️‍🌈 👨‍👩‍👧";
    bob.write(format!("{emoji} end\nx\u{200d}y z\u{fe0f}\n").as_bytes());
    alice.wait_for("bob: x<U+200D>y z<U+FE0F>");
    let raw = alice.raw();
    assert!(
        contains(&raw, format!("bob: {emoji} end").as_bytes())
            || contains(&raw, format!("{emoji} end").as_bytes()),
        "the emoji as sent:\n{}",
        alice.text()
    );
    assert!(!alice.text().contains("<U+FE0F> "), "{}", alice.text());
}

/// A draft with emoji sequences, erased with Ctrl-U, leaves the prompt
/// whole: in tmux, which draws a ZWJ sequence narrower than rustyline
/// counts it, the cursor went back too far and ate the prompt.
#[test]
fn ctrl_u_on_an_emoji_draft_leaves_the_prompt_whole() {
    let (bob, port) = listen(&["--name", "bob"], "127.0.0.1", In::Pipe);
    let port = port.to_string();
    let Some(alice) = Tmux::start(&["dial", "--name", "alice", "127.0.0.1", &port], 60, 12) else {
        return;
    };
    alice.wait_for("alice's prompt", |t| t.contains("alice>"));
    alice.keys(&["-l", "a ❤️ b 👩‍💻 c 🏳️‍🌈 d 👨‍👩‍👧 e"]);
    alice.wait_for("the draft", |t| t.contains(" e"));
    alice.keys(&["C-u"]);
    // Each key on its own, as typed: no redraw of the whole line between.
    alice.wait_for("the draft erased", |t| !t.contains(" e"));
    alice.keys(&["-l", "xyz"]);
    alice.wait_for("the new draft after the prompt", |t| {
        t.lines().any(|l| l.trim_end() == "alice> xyz")
    });
    let cursor = alice.tmux(&["display-message", "-p", "-t", "0", "#{cursor_x}"]);
    assert_eq!(cursor.trim(), "10", "{}", alice.screen());
    alice.keys(&["Enter"]);
    bob.wait_stdout(4);
    assert_eq!(bob.stdout(), b"xyz\n");
    alice.keys(&["/quit", "Enter"]);
    let mut bob = bob;
    assert_eq!(bob.code(), 0, "{}", bob.stderr());
}

/// `listen --keep`: a room that ends, well or badly, is a normal event.
/// Nothing asks for a key to leave (nobody leaves), and a peer that drops
/// is a status line, not an error of the program's (`p2pchat: ...`).
#[test]
fn keep_moves_on_without_a_key_and_without_an_error_prefix() {
    let port = free_port().to_string();
    let mut alice = Pty::spawn(
        &[
            "listen",
            "--name",
            "alice",
            "--keep",
            "--resume",
            "0",
            &port,
            "--bind",
            "127.0.0.1",
        ],
        &[],
        30,
        100,
    );
    alice.wait_for("listening on");
    let joined = |alice: &Pty, n: usize| {
        wait_until_lazy(
            || format!("join number {n}; screen:\n{}", alice.text()),
            DEADLINE,
            || {
                String::from_utf8_lossy(&alice.raw())
                    .matches("\"bob\" joined")
                    .count()
                    >= n
            },
        )
    };
    let dial = || {
        Proc::p2p(
            &[
                "dial",
                "--name",
                "bob",
                "127.0.0.1",
                &port,
                "--retry",
                "30",
                "--resume",
                "0",
            ],
            In::Pipe,
        )
    };
    // Bob leaves politely.
    let mut bob = dial();
    joined(&alice, 1);
    bob.signal(libc::SIGTERM);
    bob.wait();
    alice.wait_for("\"bob\" left the room");
    wait_until_lazy(
        || format!("the next room; screen:\n{}", alice.text()),
        DEADLINE,
        || String::from_utf8_lossy(&alice.raw()).contains("hosting the next one"),
    );
    // Bob's machine drops off without a word.
    let mut bob = dial();
    joined(&alice, 2);
    bob.write(b"hello\n");
    alice.wait_for("bob: hello");
    bob.signal(libc::SIGKILL);
    bob.wait();
    wait_until_lazy(
        || format!("the third room; screen:\n{}", alice.text()),
        DEADLINE,
        || {
            String::from_utf8_lossy(&alice.raw())
                .matches("hosting the next one")
                .count()
                >= 2
        },
    );
    // Leaving at the prompt ends the hosting.
    let mut bob = dial();
    joined(&alice, 3);
    alice.wait_cursor_row("alice>");
    alice.type_text("/quit\r");
    assert_eq!(alice.code(), 0, "{}", alice.text());
    assert_eq!(bob.code(), 0, "{}", bob.stderr());
    let everything = String::from_utf8_lossy(&alice.raw()).into_owned();
    assert!(!everything.contains("press any key"), "{everything}");
    assert!(!everything.contains("p2pchat:"), "{everything}");
    assert!(
        everything.contains("the room ended: connection lost: the connection dropped"),
        "{everything}"
    );
}

/// Status lines wrap at spaces like messages, with indented continuation
/// rows, instead of being cut mid-word by the terminal.
#[test]
fn status_lines_wrap_at_word_boundaries() {
    let alice = Pty::spawn(&["listen", "0", "--bind", "127.0.0.1"], &[], 24, 40);
    let port = alice.listening_port().to_string();
    let line = format!("only this machine can dial it: p2pchat dial 127.0.0.1 {port}");
    alice.wait_for(&port);
    wait_until_lazy(
        || format!("the whole status line; screen:\n{}", alice.text()),
        DEADLINE,
        || alice.text().contains(&port) && alice.text().matches(&port).count() >= 2,
    );
    let rows = alice.rows();
    for word in line.split(' ') {
        assert!(
            rows.iter().any(|r| r.split(' ').any(|w| w == word)),
            "{word:?} is cut:\n{}",
            alice.text()
        );
    }
    assert!(
        rows.iter()
            .any(|r| r.starts_with("  ") && r.contains("127.0.0.1")),
        "continuations are indented:\n{}",
        alice.text()
    );
}

/// A name longer than a name may be is cut, and the user is told so.
#[test]
fn a_name_cut_to_32_characters_is_warned_of() {
    let long = "abcdefghij".repeat(4);
    let (mut l, port) = listen(&["--name", &long], "127.0.0.1", In::Null);
    let mut d = dial(&["--name", "bob"], "127.0.0.1", port, In::Null);
    assert_both_ok(&mut l, &mut d);
    assert!(
        l.stderr().contains(&format!(
            "--name is cut to 32 characters: the peer sees \"{}\"",
            &long[..32]
        )),
        "{}",
        l.stderr()
    );
    assert!(!d.stderr().contains("cut to"), "{}", d.stderr());
}

/// `/code` shows the verify code again, `/status` the connection, and
/// `/save FILE` the transcript so far, into a new file only. None of them
/// is sent to the peer.
#[test]
fn code_status_and_save_are_commands() {
    let (mut alice, mut bob) = room(&[], &[], 100);
    let first = alice
        .rows()
        .into_iter()
        .find_map(|r| r.strip_prefix("verify code ").map(str::to_string))
        .expect("a verify code on the screen");
    bob.write(b"hello from bob\n");
    alice.wait_for("bob: hello from bob");
    alice.type_text("hi bob\r");
    alice.wait_for("alice: hi bob");
    alice.type_text("/code\r");
    alice.wait_for(&format!(
        "verify code {first}: the peer's screen shows the same one"
    ));
    alice.type_text("/status\r");
    alice.wait_for("connected direct to 127.0.0.1:");
    alice.wait_for("encrypted; 0 resumes so far; sent 7 B, received 15 B");

    let tmp = TempDir::new("save");
    let path = tmp.file("seed", b"").with_file_name("chat.txt");
    let path_str = path.to_str().expect("a UTF-8 path").to_string();
    alice.type_text(&format!("/save {path_str}\r"));
    alice.wait_for("saved the transcript so far");
    let saved = std::fs::read_to_string(&path).expect("the saved transcript");
    for line in [
        "bob: hello from bob",
        "alice: hi bob",
        "\"bob\" joined from",
    ] {
        assert!(saved.contains(line), "{line:?} in:\n{saved}");
    }
    assert!(!saved.contains('\x1b'), "plain text:\n{saved:?}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "for the user alone");
    // Never over an existing file.
    alice.type_text(&format!("/save {path_str}\r"));
    alice.wait_for("already exists: nothing was saved or overwritten");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), saved);
    alice.type_text("/save\r");
    alice.wait_for("/save needs a file name");

    alice.type_text("/quit\r");
    assert_eq!(alice.code(), 0, "{}", alice.text());
    assert_eq!(bob.code(), 0, "{}", bob.stderr());
    assert_eq!(bob.stdout(), b"hi bob\n", "commands are not messages");
}

/// A message after 30 s without keys or messages rings the terminal bell
/// (once, at that message); `--no-bell` turns it off. The quiet spell has
/// to pass, so this test waits it out, both rooms at once.
#[test]
fn a_message_after_a_quiet_spell_rings_the_bell() {
    let (ringing, mut bob1) = room(&[], &[], 80);
    let (silent, mut bob2) = room(&["--no-bell"], &[], 80);
    let bells = |p: &Pty| p.raw().iter().filter(|&&b| b == 0x07).count();
    for (p, bob) in [(&ringing, &mut bob1), (&silent, &mut bob2)] {
        bob.write(b"right away\n");
        p.wait_for("bob: right away");
        assert_eq!(bells(p), 0, "no bell in a lively room");
    }
    // The quiet spell itself: time has to pass, nothing to wait on.
    std::thread::sleep(std::time::Duration::from_secs(31));
    for (p, bob) in [(&ringing, &mut bob1), (&silent, &mut bob2)] {
        bob.write(b"after a while\n");
        p.wait_for("bob: after a while");
    }
    wait_until("the bell", DEADLINE, || bells(&ringing) == 1);
    assert_eq!(bells(&silent), 0, "--no-bell");
    // Right after, the room is lively again: no second bell.
    bob1.write(b"and again\n");
    ringing.wait_for("bob: and again");
    assert_eq!(bells(&ringing), 1);
}

/// A URL longer than the line is written whole, for the terminal to wrap:
/// selecting it gives it whole. What follows it starts an indented row,
/// and the rows the terminal wraps hold the word alone.
#[test]
fn a_long_url_is_not_broken_with_an_indent() {
    let (alice, mut bob) = room(&[], &[], 60);
    let url = format!("https://example.org/{}", "abcdefghij".repeat(12));
    bob.write(format!("see {url} now\n").as_bytes());
    alice.wait_for("bob: see https://example.org/");
    wait_until_lazy(
        || format!("the URL whole; screen:\n{}", alice.text()),
        DEADLINE,
        || alice.rows().concat().contains(&url),
    );
    assert!(contains(&alice.raw(), url.as_bytes()), "{}", alice.text());
    let rows = alice.rows();
    let end = rows
        .iter()
        .position(|r| r.ends_with("abcdefghij"))
        .expect("the row the URL ends on");
    assert!(
        rows[end + 1].starts_with("  ") && rows[end + 1].trim() == "now",
        "{}",
        alice.text()
    );
}

/// Ctrl-Z, then `fg` in the shell: the prompt comes back with the draft,
/// keys are not echoed raw (`^[[A`), and the next message is what the
/// screen showed. rustyline stopped itself with kill(0, SIGTSTP), which
/// could return before the stop took hold: it set raw mode again before
/// stopping, and after `fg` the terminal stayed cooked.
#[test]
fn ctrl_z_then_fg_restores_the_line_editor() {
    if !have("bash") {
        return;
    }
    for run in 0..5 {
        let (mut bob, port) = listen(&["--name", "bob"], "127.0.0.1", In::Pipe);
        let Some(shell) = Tmux::start_command("exec bash --norc --noprofile", 80, 20) else {
            return;
        };
        shell.wait_for("the shell", |t| t.contains('$') || t.contains('#'));
        shell.keys(&[
            "-l",
            &format!("PS1='sh$ '; '{BIN}' dial --name alice 127.0.0.1 {port}"),
        ]);
        shell.keys(&["Enter"]);
        shell.wait_for("alice's prompt", |t| t.contains("alice>"));
        shell.keys(&["-l", "abc"]);
        shell.wait_for("the draft", |t| t.contains("alice> abc"));
        shell.keys(&["C-z"]);
        shell.wait_for("the shell after the stop", |t| t.contains("Stopped"));
        shell.keys(&["-l", "fg"]);
        shell.keys(&["Enter"]);
        shell.wait_for("the prompt and draft again", |t| {
            t.lines()
                .last_nonblank()
                .is_some_and(|l| l.trim_end() == "alice> abc")
        });
        shell.keys(&["-l", "def"]);
        shell.keys(&["Up", "Down", "Enter"]);
        bob.wait_stdout(7);
        assert_eq!(bob.stdout(), b"abcdef\n", "run {run}: {}", shell.screen());
        assert!(
            !shell.screen().contains("^[["),
            "run {run}: {}",
            shell.screen()
        );
        shell.keys(&["-l", "/quit"]);
        shell.keys(&["Enter"]);
        assert_eq!(bob.code(), 0, "run {run}: {}", bob.stderr());
    }
}

trait LastNonblank<'a> {
    fn last_nonblank(self) -> Option<&'a str>;
}

impl<'a, I: DoubleEndedIterator<Item = &'a str>> LastNonblank<'a> for I {
    fn last_nonblank(mut self) -> Option<&'a str> {
        self.rfind(|l| !l.trim().is_empty())
    }
}

/// A bracketed paste of several lines is one message: one timestamp and
/// continuation lines on our screen, the lines exactly as pasted on the
/// peer's pipe. Alt-Enter adds a newline to the draft by hand.
#[test]
fn a_pasted_block_is_one_message_and_alt_enter_adds_a_line() {
    let (mut alice, mut bob) = room(&["--resume", "0"], &[], 80);
    assert!(
        contains(&alice.raw(), b"\x1b[?2004h"),
        "bracketed paste is on"
    );
    alice.type_text("\x1b[200~one\r\ntwo\nthree\x1b[201~");
    alice.wait_for("three");
    alice.type_text("\r");
    bob.wait_stdout(14);
    assert_eq!(bob.stdout(), b"one\ntwo\nthree\n");
    alice.wait_for("alice: one");
    let rows = alice.rows();
    let at = rows.iter().position(|r| r.ends_with("alice: one")).unwrap();
    assert!(
        rows[at + 1].trim() == "two" && rows[at + 1].starts_with("  "),
        "{}",
        alice.text()
    );
    assert!(rows[at + 2].trim() == "three", "{}", alice.text());
    assert_eq!(
        alice.text().matches("alice:").count(),
        1,
        "{}",
        alice.text()
    );
    // Alt-Enter: ESC, then Enter.
    alice.type_text("four\x1b\rfive");
    alice.wait_for("five");
    alice.type_text("\r");
    bob.wait_stdout(24);
    assert_eq!(bob.stdout(), b"one\ntwo\nthree\nfour\nfive\n");
    alice.wait_for("alice: four");
    assert!(!alice.text().contains("^J"), "{}", alice.text());
    alice.wait_cursor_row("alice>");
    for echo in ["alice> one", "alice> four", "two\nthree\n"] {
        assert!(
            !alice.text().contains(echo),
            "a stale echo: {}",
            alice.text()
        );
    }
    alice.type_text("/quit\r");
    assert_eq!(alice.code(), 0, "{}", alice.text());
    assert_eq!(bob.code(), 0, "{}", bob.stderr());
}
