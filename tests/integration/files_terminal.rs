//! Files in the room at two real terminals: `/send` with Tab, the offer
//! line, `/accept`, `/reject` and `/cancel`, the progress line redrawn in
//! place, the summary on both screens, and a chat line that overtakes a
//! big file. The big file goes through a slow link (a proxy that forwards
//! at a fixed rate, as a real network would), so the transfer lasts long
//! enough to type during it however fast the machine is.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::pty::Pty;
use crate::util::*;

/// Wide enough that no line of these tests wraps.
const COLS: u16 = 200;

/// The big file: 100 MiB through a link of 20 MiB/s, about 5 s (slow
/// enough to type during it, light enough for a busy machine).
const BIG: usize = 100 * 1024 * 1024;
const BIG_SHOWN: &str = "100.0 MiB";
const LINK_RATE: u64 = 20 * 1024 * 1024;
/// What the progress line of the big file shows.
const BIG_PROGRESS: &str = "% of 100.0 MiB";

/// A TCP link of `rate` bytes a second each way, for one connection.
struct SlowLink {
    port: u16,
}

impl SlowLink {
    fn start(target: u16, rate: u64) -> SlowLink {
        let listener = TcpListener::bind("127.0.0.1:0").expect("link bind");
        let port = listener.local_addr().expect("addr").port();
        std::thread::spawn(move || {
            let Ok((client, _)) = listener.accept() else {
                return;
            };
            let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                return;
            };
            let up = (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || forward(up.0, up.1, rate));
            forward(server, client, rate);
        });
        SlowLink { port }
    }
}

/// Copies `from` to `to` at no more than `rate` bytes a second (the pace
/// of the link, not a wait for anything).
fn forward(mut from: TcpStream, mut to: TcpStream, rate: u64) {
    let start = Instant::now();
    let mut sent = 0u64;
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        sent += n as u64;
        let due = start + Duration::from_secs_f64(sent as f64 / rate as f64);
        if let Some(ahead) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(ahead);
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}

/// Alice and Bob in a room at two terminals; Bob saves into `saves`,
/// Alice's files to send are in `files`.
struct Room {
    alice: Pty,
    bob: Pty,
    files: TempDir,
    saves: TempDir,
    _link: Option<SlowLink>,
}

fn room(link_rate: Option<u64>, bob_flags: &[&str]) -> Room {
    room_env(link_rate, bob_flags, &[])
}

/// As `room`, with `alice_env` for Alice.
fn room_env(link_rate: Option<u64>, bob_flags: &[&str], alice_env: &[(&str, &str)]) -> Room {
    let files = TempDir::new("files-send");
    let saves = TempDir::new("files-save");
    let alice = Pty::spawn(
        &["listen", "--name", "alice", "0", "--bind", "127.0.0.1"],
        alice_env,
        24,
        COLS,
    );
    let port = alice.listening_port();
    let link = link_rate.map(|rate| SlowLink::start(port, rate));
    let dial_port = link.as_ref().map_or(port, |l| l.port).to_string();
    let save_dir = saves.0.to_str().expect("utf-8 temp dir").to_string();
    let mut args = vec!["dial", "--name", "bob", "--save-dir", &save_dir];
    args.extend_from_slice(bob_flags);
    args.extend(["127.0.0.1", &dial_port]);
    let bob = Pty::spawn(&args, &[], 24, COLS);
    alice.wait_for("\"bob\" joined from");
    bob.wait_for("\"alice\" joined from");
    if alice_env.is_empty() {
        alice.wait_cursor_row("alice>");
    }
    bob.wait_cursor_row("bob>");
    Room {
        alice,
        bob,
        files,
        saves,
        _link: link,
    }
}

impl Room {
    /// Both leave: Bob with /quit, then Alice once told.
    fn leave(mut self) {
        self.bob.type_text("/quit\r");
        assert_eq!(self.bob.code(), 0, "{}", self.bob.text());
        self.alice.wait_for("\"bob\" left the room");
        self.alice.type_text("x");
        assert_eq!(self.alice.code(), 0, "{}", self.alice.text());
    }
}

/// A file of `len` bytes, made of one random MiB over and over (fast to
/// write, and still no run of equal bytes).
fn big_file(dir: &Path, name: &str, len: usize) -> std::path::PathBuf {
    let path = dir.join(name);
    let block = random_bytes(1024 * 1024, 22);
    let mut f = std::fs::File::create(&path).expect("create big file");
    let mut left = len;
    while left > 0 {
        let n = left.min(block.len());
        f.write_all(&block[..n]).expect("write big file");
        left -= n;
    }
    path
}

/// Returns true if and only if the two files hold the same bytes.
fn same_file(a: &Path, b: &Path) -> bool {
    let (Ok(mut a), Ok(mut b)) = (std::fs::File::open(a), std::fs::File::open(b)) else {
        return false;
    };
    let (mut x, mut y) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = read_full(&mut a, &mut x);
        let m = read_full(&mut b, &mut y);
        if n != m || x[..n] != y[..m] {
            return false;
        }
        if n == 0 {
            return true;
        }
    }
}

fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> usize {
    let mut got = 0;
    while got < buf.len() {
        match f.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => panic!("read: {e}"),
        }
    }
    got
}

/// The names in `dir`.
fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("read dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// Where `needle` first occurs in `hay`.
fn find(hay: &[u8], needle: &str) -> Option<usize> {
    hay.windows(needle.len())
        .position(|w| w == needle.as_bytes())
}

/// How many times `needle` occurs in `hay`.
fn count(hay: &[u8], needle: &str) -> usize {
    hay.windows(needle.len())
        .filter(|w| *w == needle.as_bytes())
        .count()
}

#[test]
fn send_offer_accept_and_both_see_the_summary() {
    // Bob runs with -q: the files are part of the chat all the same.
    let mut r = room(None, &["-q"]);
    let data = random_bytes(3 * 1024 * 1024 + 5, 7);
    let path = r.files.file("report.pdf", &data);
    r.alice
        .type_text(&format!("/send {}\r", path.to_str().expect("utf-8")));
    r.alice
        .wait_for("offering #1 \"report.pdf\" (3.0 MiB): waiting for the peer to accept");
    r.bob
        .wait_for("\"alice\" offers #1 \"report.pdf\" (3.0 MiB): /accept 1 or /reject 1");
    // Nothing is written before /accept.
    assert!(entries(&r.saves.0).is_empty(), "{:?}", entries(&r.saves.0));
    r.bob.type_text("/accept\r");
    r.alice
        .wait_for("sent #1 \"report.pdf\" (3.0 MiB, SHA-256 verified by the peer) in ");
    r.bob
        .wait_for("saved #1 \"report.pdf\" (3.0 MiB, SHA-256 verified) in ");
    // The summary took the progress line's row: no stale figures stay.
    for screen in [&r.alice, &r.bob] {
        assert!(!screen.text().contains("% of 3.0 MiB"), "{}", screen.text());
    }
    let saved = r.saves.0.join("report.pdf");
    assert_eq!(entries(&r.saves.0), ["report.pdf"]);
    assert!(same_file(&path, &saved), "the saved file differs");
    // The commands were not sent as messages.
    for (screen, line) in [
        (r.alice.text(), "alice: /send"),
        (r.bob.text(), "bob: /accept"),
    ] {
        assert!(!screen.contains(line), "{screen}");
    }
    r.leave();
}

#[test]
fn a_chat_line_overtakes_a_big_file_and_the_progress_line_is_redrawn() {
    let mut r = room(Some(LINK_RATE), &[]);
    let path = big_file(&r.files.0, "big.bin", BIG);
    r.alice
        .type_text(&format!("/send {}\r", path.to_str().expect("utf-8")));
    r.bob
        .wait_for(&format!("offers #1 \"big.bin\" ({BIG_SHOWN})"));
    r.bob.type_text("/accept 1\r");
    // The transfer runs: Alice's progress line is up. She types.
    r.alice.wait_for("#1 \"big.bin\" ");
    r.alice.wait_for(BIG_PROGRESS);
    r.alice.type_text("hello during the transfer\r");
    r.bob.wait_for("alice: hello during the transfer");
    r.alice.wait_for(&format!(
        "sent #1 \"big.bin\" ({BIG_SHOWN}, SHA-256 verified by the peer)"
    ));
    r.bob.wait_for(&format!(
        "saved #1 \"big.bin\" ({BIG_SHOWN}, SHA-256 verified)"
    ));
    // The line arrived while the file was still on its way.
    let raw = r.bob.raw();
    let line = find(&raw, "hello during the transfer").expect("the line");
    let summary = find(&raw, "saved #1").expect("the summary");
    assert!(line < summary, "the chat line came after the file");
    assert!(
        find(&raw[line..], BIG_PROGRESS).is_some(),
        "no progress after the chat line: it did not overtake the file"
    );
    assert!(same_file(&path, &r.saves.0.join("big.bin")));
    assert_eq!(entries(&r.saves.0), ["big.bin"]);
    // Progress lines were drawn again and again, each over the last, and
    // the summary took the last one's row: what stays on a screen is at
    // most the progress line from before the chat line (Alice's for sure:
    // she typed once she saw it).
    for (who, screen, before) in [("alice", &r.alice, 1..=1), ("bob", &r.bob, 0..=1)] {
        let raw = screen.raw();
        let drawn = count(&raw, BIG_PROGRESS);
        let rows = screen
            .rows()
            .iter()
            .filter(|row| row.contains(BIG_PROGRESS))
            .count();
        assert!(drawn >= 3, "{who}: {drawn} progress lines drawn");
        assert!(
            before.contains(&rows),
            "{who}: {rows} progress rows on the screen:\n{}",
            screen.text()
        );
        assert!(
            find(&raw, "\x1b[1A\x1b[2K").is_some(),
            "{who}: never redrawn"
        );
    }
    // Alice's own line, which her editor drew between two progress lines,
    // was not taken for the progress line and erased.
    assert!(
        r.alice.text().contains("alice: hello during the transfer"),
        "{}",
        r.alice.text()
    );
    r.leave();
}

#[test]
fn cancel_by_the_receiver_leaves_no_file_and_the_room_goes_on() {
    let mut r = room(Some(LINK_RATE), &[]);
    let path = big_file(&r.files.0, "big.bin", BIG);
    r.alice
        .type_text(&format!("/send \"{}\"\r", path.to_str().expect("utf-8")));
    r.bob
        .wait_for(&format!("offers #1 \"big.bin\" ({BIG_SHOWN})"));
    r.bob.type_text("/accept #1\r");
    r.bob.wait_for(BIG_PROGRESS);
    // Under way: a temporary file is in the directory.
    wait_until("a temporary file", DEADLINE, || {
        !entries(&r.saves.0).is_empty()
    });
    r.bob.type_text("/cancel\r");
    r.bob.wait_for("cancelled #1 \"big.bin\"");
    r.alice.wait_for("the peer cancelled #1 \"big.bin\"");
    wait_until_lazy(
        || format!("an empty save dir: {:?}", entries(&r.saves.0)),
        DEADLINE,
        || entries(&r.saves.0).is_empty(),
    );
    r.bob.type_text("still here\r");
    r.alice.wait_for("bob: still here");
    assert!(!r.bob.text().contains("saved #1"), "{}", r.bob.text());
    assert!(entries(&r.saves.0).is_empty());
    r.leave();
}

#[test]
fn tab_completes_the_file_after_send_and_reject_turns_it_down() {
    let mut r = room(None, &[]);
    r.files.file("unique-report.txt", b"just a few bytes\n");
    r.files.file("other.txt", b"x");
    let dir = r.files.0.to_str().expect("utf-8").to_string();
    r.alice.type_text(&format!("/send {dir}/uni\t"));
    r.alice
        .wait_cursor_row(&format!("alice> /send {dir}/unique-report.txt"));
    r.alice.type_text("\r");
    r.alice.wait_for("offering #1 \"unique-report.txt\" (17 B)");
    r.bob
        .wait_for("\"alice\" offers #1 \"unique-report.txt\" (17 B): /accept 1 or /reject 1");
    // A bad number is a hint, never a message.
    r.bob.type_text("/reject first\r");
    r.bob.wait_for("/reject takes the number of a transfer");
    r.bob.type_text("/reject\r");
    r.bob.wait_for("turned down #1 \"unique-report.txt\"");
    r.alice
        .wait_for("the peer turned down #1 \"unique-report.txt\"");
    assert!(entries(&r.saves.0).is_empty());
    assert!(
        !r.alice.text().contains("bob: /reject"),
        "{}",
        r.alice.text()
    );
    r.leave();
}

#[test]
fn a_dumb_terminal_sends_files_too() {
    // No line editor: the commands come from the plain line reader.
    let mut r = room_env(None, &[], &[("TERM", "dumb")]);
    let data = random_bytes(100_000, 3);
    let path = r.files.file("notes.txt", &data);
    r.alice
        .type_text(&format!("/send '{}'\r", path.to_str().expect("utf-8")));
    r.bob
        .wait_for("\"alice\" offers #1 \"notes.txt\" (97.7 KiB)");
    r.bob.type_text("/accept\r");
    r.alice
        .wait_for("sent #1 \"notes.txt\" (97.7 KiB, SHA-256 verified by the peer)");
    r.bob
        .wait_for("saved #1 \"notes.txt\" (97.7 KiB, SHA-256 verified)");
    assert!(same_file(&path, &r.saves.0.join("notes.txt")));
    assert!(
        find(&r.alice.raw(), "\x1b[").is_none(),
        "escape sequences on a dumb terminal"
    );
    r.leave();
}
